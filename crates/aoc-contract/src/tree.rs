//! One way to read a JSON tree, for serde_json's [`Value`] and for [`Node`], a tree parsed
//! straight from a line whose strings borrow from it: the canonical hash and the store's
//! rendering check walk either. A `Node` costs about 60% of a `Value` to parse and free (no
//! per-object hash index, no copy of a string without escapes), which is what lets a verifier
//! that only reads documents keep up with a bare parse.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// A JSON value seen through [`JsonTree::json`].
pub enum Json<'t, T: JsonTree> {
    Null,
    Bool(bool),
    Number(&'t Number),
    String(&'t str),
    /// A string known to need no escape (no `"`, `\` or C0 control): written as it is.
    PlainString(&'t str),
    Array(&'t [T]),
    /// The members in the document's order.
    Object(T::Members<'t>),
}

/// A JSON tree that the canonical writer and the rendering check can walk.
pub trait JsonTree: Sized {
    type Members<'t>: Iterator<Item = (&'t str, &'t Self)>
    where
        Self: 't;

    fn json(&self) -> Json<'_, Self>;
}

type ValueMembers<'t> =
    std::iter::Map<serde_json::map::Iter<'t>, fn((&'t String, &'t Value)) -> (&'t str, &'t Value)>;

impl JsonTree for Value {
    type Members<'t> = ValueMembers<'t>;

    fn json<'t>(&'t self) -> Json<'t, Value> {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(s),
            Value::Array(items) => Json::Array(items),
            Value::Object(map) => Json::Object(
                map.iter()
                    .map(value_member as fn((&'t String, &'t Value)) -> (&'t str, &'t Value)),
            ),
        }
    }
}

/// A JSON value parsed from bytes that outlive it: strings without escapes borrow from them,
/// objects keep their members in order as a list (a repeated key stays repeated, where a
/// [`Value`] keeps the last; [`Node::to_value`] refuses it).
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

type NodeMembers<'t, 'a> = std::iter::Map<
    std::slice::Iter<'t, (Cow<'a, str>, Node<'a>)>,
    fn(&'t (Cow<'a, str>, Node<'a>)) -> (&'t str, &'t Node<'a>),
>;

impl<'a> JsonTree for Node<'a> {
    type Members<'t>
        = NodeMembers<'t, 'a>
    where
        Self: 't;

    fn json<'t>(&'t self) -> Json<'t, Self> {
        match self {
            Node::Null => Json::Null,
            Node::Bool(b) => Json::Bool(*b),
            Node::Number(n) => Json::Number(n),
            // serde_json borrows a string only when its text has no escape, and refuses raw
            // control characters: the text is the string, and it needs no escape.
            Node::String(Cow::Borrowed(s)) => Json::PlainString(s),
            Node::String(s) => Json::String(s),
            Node::Array(items) => Json::Array(items),
            Node::Object(members) => {
                Json::Object(members.iter().map(
                    node_member as fn(&'t (Cow<'a, str>, Node<'a>)) -> (&'t str, &'t Node<'a>),
                ))
            }
        }
    }
}

fn value_member<'t>((k, v): (&'t String, &'t Value)) -> (&'t str, &'t Value) {
    (k, v)
}

fn node_member<'t, 'a>((k, v): &'t (Cow<'a, str>, Node<'a>)) -> (&'t str, &'t Node<'a>) {
    (k, v)
}

impl<'a> Node<'a> {
    /// Parses one JSON text, exactly as `serde_json::from_slice::<Value>` reads it (the same
    /// deserializer, numbers and limits).
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Node<'a>> {
        serde_json::from_slice(bytes)
    }

    /// The same value as a [`Value`]; `None` when an object repeats a key (a `Value` would
    /// silently keep one of them).
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone().into_owned()),
            Node::Array(items) => {
                Value::Array(items.iter().map(Node::to_value).collect::<Option<_>>()?)
            }
            Node::Object(members) => {
                let mut map = Map::with_capacity(members.len());
                for (k, v) in members {
                    if map.insert(k.clone().into_owned(), v.to_value()?).is_some() {
                        return None;
                    }
                }
                Value::Object(map)
            }
        })
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Node<'de>, E> {
        // As serde_json's Value: JSON text has no NaN or infinity.
        Number::from_f64(n)
            .map(Node::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        // serde_json gives no size hint; raw documents' objects mostly have a few members.
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Node::Object(members))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLES: &[&str] = &[
        r#"{"a":1,"b":[true,false,null,-2,3.5,1e300,18446744073709551615,-9223372036854775808,123456789012345678901234567890],"c":{"d":"e\"\\\n\u0001\u00e9\ud83d\ude00","":{}},"e":[]}"#,
        r#"[1,2,{"x":"y"}]"#,
        r#""just a string with \/ escape""#,
        "0",
        "-0",
        "null",
        r#"{ "spaced" : [ 1 , 2 ] }"#,
    ];

    #[test]
    fn a_node_reads_as_the_value_does() {
        for s in SAMPLES {
            let value: Value = serde_json::from_str(s).unwrap();
            let node = Node::parse(s.as_bytes()).unwrap();
            assert_eq!(node.to_value().unwrap(), value, "{s}");
        }
        // The testdata documents, too.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
        let mut seen = 0;
        for line in std::fs::read_to_string(dir.join("history-sample.ndjson"))
            .unwrap()
            .lines()
        {
            let value: Value = serde_json::from_str(line).unwrap();
            let node = Node::parse(line.as_bytes()).unwrap();
            assert_eq!(node.to_value().unwrap(), value);
            seen += 1;
        }
        assert!(seen > 100, "{seen}");
    }

    #[test]
    fn strings_without_escapes_borrow_and_repeated_keys_are_refused() {
        let text = br#"{"plain":"abc","esc":"a\nb"}"#;
        let Node::Object(members) = Node::parse(text).unwrap() else {
            panic!()
        };
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(members[0].1, Node::String(Cow::Borrowed("abc"))));
        assert!(matches!(&members[1].1, Node::String(Cow::Owned(s)) if s == "a\nb"));
        for repeated in [&br#"{"a":1,"a":2}"#[..], br#"[{"x":{"b":1,"b":1}}]"#] {
            let node = Node::parse(repeated).unwrap();
            assert_eq!(node.to_value(), None);
        }
        for bad in [&b""[..], b"{", b"[1,]", b"\"\x01\"", b"{\"a\":1}x", b"NaN"] {
            assert!(Node::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_slice::<Value>(bad).is_err(), "{bad:?}");
        }
    }
}
