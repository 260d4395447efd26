//! Positioned diagnostics: every error about an input file names the file, line and column,
//! and renders the offending source line with a caret, the way Hurl and just do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position inside an input file (1-based line and column; 0 means unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pos {
    /// The file the position belongs to.
    pub file: Option<Arc<PathBuf>>,
    /// 1-based line number, 0 when unknown.
    pub line: u32,
    /// 1-based column number, 0 when unknown.
    pub col: u32,
}

impl Pos {
    /// A position in `file` at `line`:`col`.
    pub fn new(file: &Arc<PathBuf>, line: u32, col: u32) -> Self {
        Pos {
            file: Some(file.clone()),
            line,
            col,
        }
    }

    /// A position that only names a file.
    pub fn file(path: &Path) -> Self {
        Pos {
            file: Some(Arc::new(path.to_path_buf())),
            line: 0,
            col: 0,
        }
    }

    /// Whether a line is known.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "<input>".to_string(), |p| display_path(p));
        if self.line == 0 {
            write!(f, "{file}")
        } else {
            write!(f, "{file}:{}:{}", self.line, self.col.max(1))
        }
    }
}

/// A path shown relative to the working directory when it lies below it; an embedded file as
/// its path in the repository (`specs/1.1/pack.yaml`).
pub fn display_path(path: &Path) -> String {
    if let Some(rel) = crate::source::embedded_relative(path) {
        return rel;
    }
    // The folder is looked up once: every recorded test names its file, and nothing changes
    // the working folder during a run.
    static CWD: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    if let Some(cwd) = CWD.get_or_init(|| std::env::current_dir().ok()) {
        if let Ok(rel) = path.strip_prefix(cwd) {
            return rel.display().to_string();
        }
    }
    path.display().to_string()
}

/// One problem found in an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong, in one line.
    pub message: String,
    /// An optional hint such as "did you mean `status`?".
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `pos`.
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the diagnostic with the source line and a caret under the column.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        // Values from variables and flags have no file; their message names them.
        if self.pos.file.is_some() || self.pos.is_known() {
            out.push_str(&format!("  --> {}\n", self.pos));
        }
        if let (Some(file), true) = (&self.pos.file, self.pos.is_known()) {
            if let Ok(text) = crate::source::read_to_string(file.as_path()) {
                if let Some(line) = text.lines().nth(self.pos.line as usize - 1) {
                    let num = self.pos.line.to_string();
                    let pad = " ".repeat(num.len());
                    let caret_at = line
                        .chars()
                        .take(self.pos.col.saturating_sub(1) as usize)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect::<String>();
                    out.push_str(&format!("{pad} |\n{num} | {line}\n{pad} | {caret_at}^\n"));
                }
            }
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  = help: {hint}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.file.is_some() || self.pos.is_known() {
            write!(f, "{}: ", self.pos)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// A list of diagnostics gathered while loading inputs; loading reports them all at once.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Renders all diagnostics, one block each.
    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(Diagnostic::render)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = word.len().div_ceil(3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance between two strings: insertions, deletions, substitutions, and swaps of two
/// neighbours (`psuh` is one edit from `push`), as typos are made.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 0..a.len() {
        let mut cur = vec![i + 1; b.len() + 1];
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                cur[j + 1] = cur[j + 1].min(before[j - 1] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(
            did_you_mean("stauts", ["status", "headers", "body"]),
            Some("status")
        );
        assert_eq!(
            did_you_mean("hedaers", ["status", "headers", "body"]),
            Some("headers")
        );
        assert_eq!(did_you_mean("zzzzzz", ["status", "headers"]), None);
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("psuh", "push"), 1);
        assert_eq!(levenshtein("tow", "two"), 1);
        assert_eq!(levenshtein("ab", "ba"), 1);
    }

    #[test]
    fn renders_caret_under_column() {
        let dir = std::env::temp_dir().join(format!("oci-diag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.yaml");
        std::fs::write(&file, "a: 1\n  stauts: 2\n").unwrap();
        let d = Diagnostic::new(Pos::new(&Arc::new(file), 2, 3), "unknown key `stauts`")
            .with_hint("did you mean `status`?");
        let r = d.render();
        assert!(r.contains("x.yaml:2:3"), "{r}");
        assert!(r.contains("2 |   stauts: 2\n  |   ^"), "{r}");
        assert!(r.contains("did you mean `status`?"), "{r}");
    }

    #[test]
    fn an_embedded_file_is_named_and_quoted_from_the_binary() {
        let file = std::path::Path::new(crate::source::EMBEDDED_ROOT).join("specs/1.1/pack.yaml");
        let line = crate::source::read_to_string(&file)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("specVersion:"))
            .unwrap() as u32
            + 1;
        let d = Diagnostic::new(Pos::new(&Arc::new(file), line, 14), "bad version");
        let r = d.render();
        assert!(
            r.contains(&format!("--> specs/1.1/pack.yaml:{line}:14\n")),
            "{r}"
        );
        assert!(r.contains(&format!("{line} | specVersion: ")), "{r}");
        assert!(!r.contains("<embedded>"), "{r}");
    }
}
