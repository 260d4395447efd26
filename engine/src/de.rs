//! Reads typed structs out of a [`Node`] tree.
//!
//! A small serde `Deserializer` over positioned nodes: any error raised while reading a node
//! (wrong type, unknown key, missing key, bad enum value) is stamped with that node's position,
//! and unknown keys and values get a "did you mean" suggestion. [`Located`] keeps the position
//! of a value inside the typed struct so runtime errors can point back at the YAML.

use std::cell::RefCell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::yaml::{Node, Value};

/// Reads a typed value from a node tree.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node) -> Result<T, Diagnostic> {
    T::deserialize(node).map_err(|e| {
        let pos = e.pos.unwrap_or_else(|| node.pos.clone());
        let mut d = Diagnostic::new(pos, e.msg);
        d.hint = e.hint;
        d
    })
}

/// An error while reading typed data from a node.
#[derive(Debug)]
pub struct Error {
    pos: Option<Pos>,
    msg: String,
    hint: Option<String>,
}

impl Error {
    fn at(mut self, pos: &Pos) -> Self {
        if self.pos.is_none() && pos.is_known() {
            self.pos = Some(pos.clone());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            pos: None,
            msg: msg.to_string(),
            hint: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let hint = match did_you_mean(field, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", expected.join(", ")),
        };
        Error {
            pos: None,
            msg: format!("unknown key `{field}`"),
            hint: Some(hint),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let hint = match did_you_mean(variant, expected.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", expected.join(", ")),
        };
        Error {
            pos: None,
            msg: format!("unknown value `{variant}`"),
            hint: Some(hint),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            pos: None,
            msg: format!("missing key `{field}`"),
            hint: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        // Say it in YAML words, not Rust's (`struct NodeDef`, `unit value`).
        let exp = exp.to_string();
        let exp = if exp.starts_with("struct ") || exp.starts_with("a map") {
            "a mapping".to_string()
        } else {
            exp
        };
        let found = match unexp {
            de::Unexpected::Unit => "nothing (an empty value)".to_string(),
            other => other.to_string(),
        };
        Error {
            pos: None,
            msg: format!("expected {exp}, found {found}"),
            hint: None,
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        Error {
            pos: None,
            msg: format!("duplicate key `{field}`"),
            hint: None,
        }
    }
}

/// Name of the magic struct that makes the deserializer hand out positions.
const LOCATED: &str = "$oci_conform::Located";
/// Name of the magic struct that makes the deserializer hand out raw nodes.
const RAW: &str = "$oci_conform::Raw";

thread_local! {
    /// Raw nodes handed from the deserializer to [`Raw`]'s `Deserialize`, which cannot
    /// receive a borrowed node through serde's visitor interface.
    static RAW_SLOT: RefCell<Vec<Node>> = const { RefCell::new(Vec::new()) };
    /// Positions handed to [`Located`] the same way.
    static POS_SLOT: RefCell<Vec<Pos>> = const { RefCell::new(Vec::new()) };
}

/// A typed value together with the position of the YAML node it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    /// Where the value was written.
    pub pos: Pos,
    /// The value.
    pub value: T,
}

impl<T> Located<T> {
    /// A value with no source position (built by the engine).
    pub fn synthetic(value: T) -> Self {
        Located {
            pos: Pos::default(),
            value,
        }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Located<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Located<T>, D::Error> {
                let pos = POS_SLOT.with(|s| s.borrow_mut().pop()).unwrap_or_default();
                let value = T::deserialize(d)?;
                Ok(Located { pos, value })
            }
        }
        d.deserialize_newtype_struct(LOCATED, V(std::marker::PhantomData))
    }
}

/// A raw YAML subtree kept as-is inside a typed struct (value templates, dataset content).
#[derive(Clone, Debug, PartialEq)]
pub struct Raw(pub Node);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
                RAW_SLOT
                    .with(|s| s.borrow_mut().pop())
                    .map(Raw)
                    .ok_or_else(|| E::custom("raw YAML values can only be read from a node tree"))
            }
        }
        d.deserialize_newtype_struct(RAW, V)
    }
}

impl<'de> Deserializer<'de> for &'de Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let r = match &self.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Int(i) => v.visit_i64(*i),
            Value::Float(f) => v.visit_f64(*f),
            Value::Str(s) => v.visit_borrowed_str(s),
            Value::Seq(items) => v.visit_seq(Seq { iter: items.iter() }),
            Value::Map(entries) => v.visit_map(Map {
                iter: entries.iter(),
                value: None,
            }),
        };
        r.map_err(|e| e.at(&self.pos))
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
        .map_err(|e| e.at(&self.pos))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        // Scalars read as strings keep their text: `version: 1.1` is the string "1.1".
        match &self.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => v.visit_string(self.scalar_text()),
            _ => self.deserialize_any(v),
        }
        .map_err(|e| e.at(&self.pos))
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_string(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        match name {
            LOCATED => {
                POS_SLOT.with(|s| s.borrow_mut().push(self.pos.clone()));
                v.visit_newtype_struct(self)
            }
            RAW => {
                RAW_SLOT.with(|s| s.borrow_mut().push(self.clone()));
                v.visit_unit()
            }
            _ => v.visit_newtype_struct(self),
        }
        .map_err(|e| e.at(&self.pos))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match &self.value {
            Value::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => v.visit_enum(Enum {
                key: &entries[0].0,
                value: &entries[0].1,
            }),
            other => Err(de::Error::custom(format!(
                "expected a name or a mapping with a single key, found {}",
                other.kind()
            ))),
        }
        .map_err(|e: Error| e.at(&self.pos))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Seq<'a> {
    iter: std::slice::Iter<'a, Node>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some(n) => seed.deserialize(n).map(Some).map_err(|e| e.at(&n.pos)),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Map<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k).map(Some).map_err(|e| e.at(&k.pos))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(v).map_err(|e| e.at(&v.pos))
    }
}

struct Enum<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = &'de Node;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, &'de Node), Error> {
        let v = seed
            .deserialize(self.key)
            .map_err(|e| e.at(&self.key.pos))?;
        Ok((v, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for &'de Node {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use std::path::Path;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only to prove the loader accepts and rejects keys
    struct Expect {
        status: Vec<u16>,
        #[serde(default)]
        headers: indexmap::IndexMap<String, String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only to prove the loader accepts and rejects keys
    struct Step {
        name: Located<String>,
        expect: Expect,
        #[serde(default)]
        raw: Option<Raw>,
        #[serde(default)]
        level: Option<Level>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum Level {
        #[serde(rename = "MUST")]
        Must,
        #[serde(rename = "SHOULD")]
        Should,
    }

    #[test]
    fn unknown_key_is_positioned_with_suggestion() {
        let n = parse(Path::new("s.yaml"), "name: x\nexpect:\n  stauts: [200]\n").unwrap();
        let e = from_node::<Step>(&n).unwrap_err();
        assert_eq!(e.message, "unknown key `stauts`");
        assert_eq!((e.pos.line, e.pos.col), (3, 3));
        assert_eq!(e.hint.as_deref(), Some("did you mean `status`?"));
    }

    #[test]
    fn wrong_type_and_missing_key_are_positioned() {
        let n = parse(Path::new("s.yaml"), "name: x\nexpect:\n  status: [abc]\n").unwrap();
        let e = from_node::<Step>(&n).unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("expected u16"), "{}", e.message);

        let n = parse(Path::new("s.yaml"), "name: x\nexpect:\n  headers: {}\n").unwrap();
        let e = from_node::<Step>(&n).unwrap_err();
        assert_eq!(e.message, "missing key `status`");
        assert_eq!(e.pos.line, 3);
    }

    #[test]
    fn located_and_raw_values() {
        let n = parse(
            Path::new("s.yaml"),
            "name: hello\nexpect: {status: [1]}\nraw: {a: [1, 2]}\nlevel: MUST\n",
        )
        .unwrap();
        let s = from_node::<Step>(&n).unwrap();
        assert_eq!(s.name.value, "hello");
        assert_eq!((s.name.pos.line, s.name.pos.col), (1, 7));
        let raw = s.raw.unwrap().0;
        assert_eq!(raw.pos.line, 3);
        assert_eq!(raw.to_json().to_string(), r#"{"a":[1,2]}"#);
        assert_eq!(s.level, Some(Level::Must));
    }

    #[test]
    fn unknown_enum_value_suggests() {
        let n = parse(
            Path::new("s.yaml"),
            "name: x\nexpect: {status: [1]}\nlevel: SHUOLD\n",
        )
        .unwrap();
        let e = from_node::<Step>(&n).unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert_eq!(e.hint.as_deref(), Some("did you mean `SHOULD`?"));
    }

    #[test]
    fn numbers_read_as_strings_keep_their_text() {
        #[derive(Deserialize)]
        struct C {
            version: String,
        }
        let n = parse(Path::new("c.yaml"), "version: 1.1\n").unwrap();
        assert_eq!(from_node::<C>(&n).unwrap().version, "1.1");
    }
}
