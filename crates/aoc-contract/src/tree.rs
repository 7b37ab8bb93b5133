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

    /// The member `key` of an object, `None` for another value. Of a key an object repeats,
    /// the last, as a [`Value`] keeps it.
    fn member(&self, key: &str) -> Option<&Self> {
        match self.json() {
            Json::Object(members) => members.filter(|(k, _)| *k == key).last().map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self.json() {
            Json::String(s) | Json::PlainString(s) => Some(s),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self.json() {
            Json::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.json(), Json::Null)
    }

    fn is_object(&self) -> bool {
        matches!(self.json(), Json::Object(_))
    }

    /// The number of items of an array, `None` for another value.
    fn array_len(&self) -> Option<usize> {
        match self.json() {
            Json::Array(items) => Some(items.len()),
            _ => None,
        }
    }
}

type ValueMembers<'t> =
    std::iter::Map<serde_json::map::Iter<'t>, fn((&'t String, &'t Value)) -> (&'t str, &'t Value)>;

impl JsonTree for Value {
    type Members<'t> = ValueMembers<'t>;

    fn member(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

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
    /// deserializer, numbers and limits), with one exception: an object key that begins with
    /// [`RESERVED_KEY_PREFIX`] is refused, since a `Value` may give it a meaning of its own.
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Node<'a>> {
        // One UTF-8 check of the whole text, and a parse that does not check every string again
        // (from_slice does): the texts accepted are the same, as invalid UTF-8 is an error
        // either way, and a text that is not UTF-8 gets from_slice's own error.
        match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
    }

    /// Whether no object in the tree repeats a key.
    pub fn keys_unique(&self) -> bool {
        match self {
            Node::Array(items) => items.iter().all(Node::keys_unique),
            Node::Object(members) => {
                members_unique(members) && members.iter().all(|(_, v)| v.keys_unique())
            }
            _ => true,
        }
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

/// Keys that serde_json's own `Value` reads with a meaning of their own (its private tokens,
/// with some of its features): [`Node::parse`] refuses them rather than read them differently.
pub const RESERVED_KEY_PREFIX: &str = "$serde_json";

/// Whether no two members have the same key.
pub fn members_unique<V>(members: &[(Cow<'_, str>, V)]) -> bool {
    if members.len() <= 16 {
        return members
            .iter()
            .enumerate()
            .all(|(i, (k, _))| members[..i].iter().all(|(seen, _)| seen != k));
    }
    let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).all(|w| w[0] != w[1])
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

            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                key(Cow::Borrowed(s))
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                key(Cow::Owned(s.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Key<'de>, E> {
                key(Cow::Owned(s))
            }
        }
        fn key<E: serde::de::Error>(k: Cow<'_, str>) -> Result<Key<'_>, E> {
            if k.starts_with(RESERVED_KEY_PREFIX) {
                return Err(E::custom(format_args!(
                    "the key prefix {RESERVED_KEY_PREFIX} is reserved"
                )));
            }
            Ok(Key(k))
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
            assert!(!node.keys_unique());
        }
        // Objects past the pairwise comparison are sorted.
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let unique = format!("{{{}}}", many.join(","));
        assert!(Node::parse(unique.as_bytes()).unwrap().keys_unique());
        let repeated = format!("{{{},\"k7\":0}}", many.join(","));
        assert!(!Node::parse(repeated.as_bytes()).unwrap().keys_unique());
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"\"\x01\"",
            b"{\"a\":1}x",
            b"NaN",
            b"\"\xff\"",
            b"[\"\xc3\"]",
        ] {
            assert!(Node::parse(bad).is_err(), "{bad:?}");
            let err = serde_json::from_slice::<Value>(bad).unwrap_err();
            // The same error, where the text is not UTF-8 too.
            assert_eq!(Node::parse(bad).unwrap_err().to_string(), err.to_string());
        }
        assert!(Node::parse(br#"{"a":{"$serde_json::private::Number":"1"}}"#).is_err());
        assert!(Node::parse(br#"{"a":"$serde_json"}"#).is_ok());
    }
}
