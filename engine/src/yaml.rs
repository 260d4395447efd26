//! YAML files as a tree of positioned nodes.
//!
//! Every input (scenarios, datasets, packs, config) is first parsed into a [`Node`] tree whose
//! nodes remember their file, line and column. Typed structs are then read from that tree by
//! [`crate::de`], so any later error — a misspelt key, a bad template, a failed assertion — can
//! point at the exact YAML line. serde-saphyr does the parsing and rejects duplicate keys.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::diag::{Diagnostic, Pos};

/// One YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the node starts.
    pub pos: Pos,
}

/// The value of a YAML node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order; keys are nodes so they keep their position.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// A short name of the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// A node without a position, for values built by the engine.
    pub fn synthetic(value: Value) -> Self {
        Node {
            value,
            pos: Pos::default(),
        }
    }

    /// The string value, if this node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Looks up a key of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a JSON pointer (`/a/0/b`) through the tree, returning the deepest node reached.
    /// Keys compare by their text, as [`Node::to_json`] writes them (`200:` is `/200`).
    pub fn locate(&self, pointer: &str) -> &Node {
        let mut node = self;
        for raw in pointer.split('/').skip(1) {
            let part = raw.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.scalar_text() == part)
                    .map(|(_, v)| v),
                Value::Seq(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The position of a key of a mapping node, for "unknown key" style errors.
    pub fn key_pos(&self, key: &str) -> Option<&Pos> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text() == key)
                .map(|(k, _)| &k.pos),
            _ => None,
        }
    }

    /// Converts the tree to JSON (mapping keys become strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The text of a scalar node (numbers and booleans printed as YAML would).
    pub fn scalar_text(&self) -> String {
        match &self.value {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            Value::Seq(_) | Value::Map(_) => String::new(),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

thread_local! {
    /// The file being parsed, stamped on every node position.
    static CURRENT_FILE: RefCell<Option<Arc<PathBuf>>> = const { RefCell::new(None) };
}

/// Stack of the thread that parses: each nesting level costs tens of KiB in debug builds.
const PARSE_STACK: usize = 64 << 20;

/// Parses YAML text into a node tree; `path` is used for positions and messages.
///
/// The reader recurses once per nesting level. Parsing runs on its own thread with a generous
/// stack, so the nesting limit (64 levels, an error) decides what is too deep — not the
/// caller's stack size (2 MiB on test threads), which would abort the process instead.
pub fn parse(path: &Path, text: &str) -> Result<Node, Diagnostic> {
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("yaml".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || parse_here(path, text))
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => parse_here(path, text),
        }
    })
}

fn parse_here(path: &Path, text: &str) -> Result<Node, Diagnostic> {
    let file = Arc::new(path.to_path_buf());
    CURRENT_FILE.with(|c| *c.borrow_mut() = Some(file.clone()));
    // YAML 1.2 booleans only: `n`, `y`, `yes`, `on` stay strings (a query key `n` is a key).
    // Flow collections (`[[[…]]]`) get the same depth limit as block ones, so no input
    // nests deep enough to exhaust the stack of the recursive readers that follow.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! { flow_nesting_limit: 64 },
    };
    let result = serde_saphyr::from_str_with_options::<Node>(text, options);
    CURRENT_FILE.with(|c| *c.borrow_mut() = None);
    match result {
        Ok(node) => Ok(node),
        Err(e) => {
            let (line, mut col) = e
                .location()
                .map_or((0, 0), |l| (l.line() as u32, l.column() as u32));
            let message = parser_message(&e);
            // The parser points past the indentation; the problem is the tab in it.
            if message.contains("tab") {
                if let Some(at) = text
                    .lines()
                    .nth((line as usize).saturating_sub(1))
                    .and_then(|l| l.chars().position(|c| c == '\t'))
                {
                    col = at as u32 + 1;
                }
            }
            Err(Diagnostic::new(Pos::new(&file, line, col), message))
        }
    }
}

/// Reads (from disk or the embedded packs, see [`crate::source`]) and parses a YAML file.
pub fn load(path: &Path) -> Result<Node, Diagnostic> {
    let text = crate::source::read_to_string(path)
        .map_err(|e| Diagnostic::new(Pos::file(path), format!("cannot read file: {e}")))?;
    parse(path, &text)
}

/// The parser's message without its own location prefix and snippet.
fn parser_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 2 column 1: duplicate mapping key: a, set DuplicateKeyPolicy …"
    let msg = match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => first,
    };
    let msg = msg.split(", set DuplicateKeyPolicy").next().unwrap_or(msg);
    // The position is shown with the file name; the parser's own copy of it goes.
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(", column ") => &msg[..i],
        _ => msg,
    };
    if msg.contains("budget breached: Depth")
        || msg.contains("budget breached: FlowNesting")
        || msg.contains("recursion limit exceeded")
    {
        return "invalid YAML: nested too deeply".to_string();
    }
    format!("invalid YAML: {msg}")
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned: serde_saphyr::Spanned<Inner> = serde_saphyr::Spanned::deserialize(d)?;
        let file = CURRENT_FILE.with(|c| c.borrow().clone());
        let pos = Pos {
            file,
            line: spanned.referenced.line() as u32,
            col: spanned.referenced.column() as u32,
        };
        Ok(Node {
            value: spanned.value.0,
            pos,
        })
    }
}

struct Inner(Value);

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InnerVisitor)
    }
}

struct InnerVisitor;

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = Inner;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Inner, E> {
        Ok(Inner(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Inner, E> {
        Ok(Inner(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Inner, D::Error> {
        Inner::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Inner, E> {
        Ok(Inner(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Inner, E> {
        Ok(Inner(Value::Int(v)))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Inner, E> {
        i64::try_from(v)
            .map(|i| Inner(Value::Int(i)))
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Inner, E> {
        Ok(Inner(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Inner, E> {
        Ok(Inner(Value::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Inner, E> {
        Ok(Inner(Value::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inner, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Inner(Value::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inner, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Inner(Value::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_positions() {
        let n = parse(Path::new("t.yaml"), "a: 1\nb:\n  - x: 'y'\n").unwrap();
        let b = n.get("b").unwrap();
        assert_eq!((b.pos.line, b.pos.col), (3, 3));
        let x = n.locate("/b/0/x");
        assert_eq!(x.as_str(), Some("y"));
        assert_eq!((x.pos.line, x.pos.col), (3, 8));
        assert_eq!(n.key_pos("b").map(|p| p.line), Some(2));
    }

    #[test]
    fn pointers_reach_non_string_keys() {
        let n = parse(Path::new("t.yaml"), "codes:\n  200: ok\n  true: yes\n").unwrap();
        assert_eq!(n.locate("/codes/200").as_str(), Some("ok"));
        assert_eq!(n.locate("/codes/true").pos.line, 3);
        assert_eq!(
            n.locate("/codes/404").pos.line,
            2,
            "stops at the deepest node found"
        );
        assert_eq!(
            n.get("codes").unwrap().key_pos("200").map(|p| p.col),
            Some(3)
        );
    }

    #[test]
    fn only_yaml_1_2_booleans() {
        let n = parse(Path::new("b.yaml"), "n: 1\ny: yes\nz: true\n").unwrap();
        assert_eq!(n.to_json().to_string(), r#"{"n":1,"y":"yes","z":true}"#);
        // What docs/format.md says: the YAML 1.2 spellings, and no others.
        let n = parse(
            Path::new("b.yaml"),
            "[true, True, TRUE, false, False, FALSE, yes, no, on, off, y, n, Yes, tRue]\n",
        )
        .unwrap();
        assert_eq!(
            n.to_json().to_string(),
            r#"[true,true,true,false,false,false,"yes","no","on","off","y","n","Yes","tRue"]"#
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let e = parse(Path::new("d.yaml"), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert!(!e.message.contains("DuplicateKeyPolicy"), "{}", e.message);
    }

    #[test]
    fn a_tab_in_the_indentation_is_pointed_at() {
        let e = parse(Path::new("t.yaml"), "a:\n  b:\n\t  c: 1\n").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (3, 1), "{e}");
        assert!(e.message.contains("tab"), "{}", e.message);
        assert!(!e.message.contains("at line"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_position() {
        let e = parse(Path::new("s.yaml"), "a: [1,\n").unwrap_err();
        assert!(e.pos.line >= 1);
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for text in [
            format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000)),
            (0..3000)
                .map(|i| format!("{}a:\n", "  ".repeat(i)))
                .collect(),
        ] {
            let e = parse(Path::new("deep.yaml"), &text).unwrap_err();
            assert_eq!(e.message, "invalid YAML: nested too deeply");
            assert!(e.pos.line >= 1);
        }
    }

    #[test]
    fn json_conversion_keeps_order_and_types() {
        let n = parse(Path::new("j.yaml"), "z: 1\na: [true, 2.5, ~, s]\n").unwrap();
        assert_eq!(
            n.to_json().to_string(),
            r#"{"z":1,"a":[true,2.5,null,"s"]}"#
        );
    }
}
