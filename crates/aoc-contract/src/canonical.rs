//! Canonical JSON per RFC 8785 (JCS) and the `sha256:<hex>` content hash built on it.
//!
//! JCS fixes three things plain serialisation leaves open: object members sorted by their UTF-16
//! code units, numbers printed as ECMAScript's `Number.prototype.toString` does (via `ryu-js`), and
//! a minimal string escape set. We write the canonical form straight into a reusable buffer instead
//! of going through a serde `Serializer` (as `serde_jcs` does) so that hashing a document costs one
//! walk and no intermediate tree.

use crate::tree::{Json, JsonTree};
use aoc_digest::Sha256Digest;
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// Prefix of every content hash.
pub const HASH_PREFIX: &str = aoc_digest::PREFIX;

/// Returns the RFC 8785 canonical serialisation of `value`.
pub fn to_canonical_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_canonical(value, &mut out);
    out
}

/// Appends the RFC 8785 canonical serialisation of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    let unique = write_canonical_tree(value, out);
    debug_assert!(unique, "a Value holds each key once");
}

/// [`write_canonical`] of any [`JsonTree`]; false (and `out` unfinished) when an object repeats a
/// key, which has no canonical form.
pub fn write_canonical_tree<T: JsonTree>(value: &T, out: &mut Vec<u8>) -> bool {
    // One scratch stack for the sorted members of every object on the current path, instead of a
    // vector per object.
    let mut members: Vec<(&str, &T)> = Vec::new();
    write_value(value, out, &mut members)
}

fn write_value<'a, T: JsonTree>(
    value: &'a T,
    out: &mut Vec<u8>,
    members: &mut Vec<(&'a str, &'a T)>,
) -> bool {
    match value.json() {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Number(n) => write_number(n, out),
        Json::String(s) => write_string(s, out),
        Json::PlainString(s) => {
            debug_assert!(is_plain_string(s));
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !write_value(item, out, members) {
                    return false;
                }
            }
            out.push(b']');
        }
        Json::Object(map) => return write_object(map, out, members),
    }
    true
}

fn write_object<'a, T: JsonTree>(
    map: impl Iterator<Item = (&'a str, &'a T)>,
    out: &mut Vec<u8>,
    members: &mut Vec<(&'a str, &'a T)>,
) -> bool {
    let base = members.len();
    members.extend(map);
    members[base..].sort_unstable_by(|a, b| utf16_cmp(a.0, b.0));
    if members[base..].windows(2).any(|w| w[0].0 == w[1].0) {
        return false;
    }
    out.push(b'{');
    for i in base..members.len() {
        let (key, value) = members[i];
        if i > base {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        if !write_value(value, out, members) {
            return false;
        }
    }
    out.push(b'}');
    members.truncate(base);
    true
}

/// RFC 8785 §3.2.3: member names sort by UTF-16 code units. UTF-8 byte order agrees with that
/// except between a character U+E000..U+FFFF (lead byte 0xEE or 0xEF) and one beyond U+FFFF
/// (lead byte 0xF0 and up, a surrogate pair in UTF-16, which sorts first): at the first byte two
/// names differ in, that pair is the only case where the order flips.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).position(|(x, y)| x != y) {
        None => a.len().cmp(&b.len()),
        Some(i) => {
            let (x, y) = (a[i], b[i]);
            let high_bmp = |c: u8| c == 0xEE || c == 0xEF;
            let astral = |c: u8| c >= 0xF0;
            if (high_bmp(x) && astral(y)) || (astral(x) && high_bmp(y)) {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        }
    }
}

/// Integers up to 2^53 print exactly; beyond that JCS treats every number as an IEEE double.
fn write_number(n: &Number, out: &mut Vec<u8>) {
    use std::io::Write;
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64().filter(|u| *u <= EXACT) {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= EXACT) {
        let _ = write!(out, "{i}");
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format(f).as_bytes());
    }
}

/// Whether any of the 8 bytes of `word` is `"`, `\` or a C0 control (below 0x20).
#[inline]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_0x20 = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (below_0x20
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\'))))
        != 0
}

/// True when JSON writes `s` between quotes as it is: no `"`, `\` or C0 control in it (the set
/// RFC 8785 escapes, and serde_json too). Checked eight bytes at a time.
pub fn is_plain_string(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        if needs_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// RFC 8785 §3.2.2.2: escape only `"`, `\` and C0 controls; `\b \t \n \f \r` by name, others as
/// `\u00xx` in lowercase hex. Everything else is written as UTF-8. Runs of eight bytes with
/// nothing to escape (nearly all of them) are skipped a word at a time.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `sha256:` + lowercase hex of the canonical JSON of `value`.
pub fn content_hash(value: &Value) -> String {
    let mut buf = Vec::with_capacity(4096);
    content_hash_with(value, &mut buf)
}

/// Like [`content_hash`], reusing `buf` (cleared first) to avoid an allocation per document.
pub fn content_hash_with(value: &Value, buf: &mut Vec<u8>) -> String {
    content_hash_tree(value, buf).expect("a Value holds each key once")
}

/// [`content_hash_with`] of any [`JsonTree`]; `None` when an object repeats a key.
pub fn content_hash_tree<T: JsonTree>(value: &T, buf: &mut Vec<u8>) -> Option<String> {
    buf.clear();
    if !write_canonical_tree(value, buf) {
        return None;
    }
    Some(Sha256Digest::of(&buf[..]).prefixed())
}

/// True when `s` has the shape `sha256:` + 64 lowercase hex digits
/// ([`Sha256Digest::parse_prefixed`]).
pub fn is_content_hash(s: &str) -> bool {
    Sha256Digest::parse_prefixed(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value) -> String {
        String::from_utf8(to_canonical_vec(&v)).unwrap()
    }

    /// A borrowed tree of a text has the canonical form of its Value; a repeated key has none.
    #[test]
    fn a_node_has_the_canonical_form_of_its_value() {
        use crate::tree::Node;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
        let history = std::fs::read_to_string(dir.join("history-sample.ndjson")).unwrap();
        let texts = crate::tree::tests::SAMPLES
            .iter()
            .copied()
            .chain(history.lines());
        for text in texts {
            let value: Value = serde_json::from_str(text).unwrap();
            let node = Node::parse(text.as_bytes()).unwrap();
            let mut out = Vec::new();
            assert!(write_canonical_tree(&node, &mut out), "{text}");
            assert_eq!(out, to_canonical_vec(&value), "{text}");
        }
        for repeated in [&br#"{"a":1,"a":2}"#[..], br#"[{"x":{"b":1,"b":1}}]"#] {
            let node = Node::parse(repeated).unwrap();
            assert!(!write_canonical_tree(&node, &mut Vec::new()));
        }
    }

    #[test]
    fn plain_strings_are_those_written_unescaped() {
        for s in [
            "",
            "a",
            "abcdefgh",
            "abcdefghi",
            "é ünïcödé €😀 and more than eight bytes",
            "\u{7f}\u{2028}",
        ] {
            assert!(is_plain_string(s), "{s:?}");
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for bad in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..17 {
                let mut s = "x".repeat(16);
                s.insert(at, bad);
                assert!(!is_plain_string(&s), "{s:?}");
                assert_ne!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            }
        }
    }

    #[test]
    fn sorts_members_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, 2, {"z": null, "a": true}], "a": "x" }"#).unwrap();
        assert_eq!(canon(v), r#"{"a":"x","b":[1,2,{"a":true,"z":null}]}"#);
    }

    /// Test vector from RFC 8785 §3.2.3 (sorting by UTF-16 code units).
    #[test]
    fn rfc8785_sorting_vector() {
        let v: Value = serde_json::from_str(
            r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let keys: Vec<String> =
            match serde_json::from_slice::<Value>(&to_canonical_vec(&v)).unwrap() {
                Value::Object(m) => m.keys().cloned().collect(),
                _ => unreachable!(),
            };
        let expected = [
            "\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ];
        assert_eq!(keys, expected);
    }

    /// Number and string vectors from RFC 8785 §3.2.2 and Appendix B.
    #[test]
    fn rfc8785_number_and_string_vectors() {
        let v: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#,
        )
        .unwrap();
        assert_eq!(
            canon(v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn large_integers_follow_ieee_double() {
        assert_eq!(canon(json!(9007199254740992u64)), "9007199254740992");
        assert_eq!(
            canon(json!(18446744073709551615u64)),
            "18446744073709552000"
        );
        assert_eq!(canon(json!(-5)), "-5");
        assert_eq!(canon(json!(1.0)), "1");
    }

    /// Every pair of names from a set that mixes ASCII, two- and three-byte characters (below and
    /// above U+E000) and astral characters sorts as their UTF-16 code units do.
    #[test]
    fn member_order_is_utf16_order_for_every_kind_of_character() {
        let names = [
            "",
            "a",
            "ab",
            "b",
            "\u{7f}",
            "\u{80}",
            "\u{7ff}",
            "\u{800}",
            "\u{d7ff}",
            "\u{e000}",
            "\u{fb33}",
            "\u{ffff}",
            "\u{10000}",
            "\u{1f600}",
            "\u{10ffff}",
            "a\u{ffff}",
            "a\u{10000}",
            "\u{e000}x",
            "\u{1f600}x",
            "\u{20ac}",
            "\u{20ac}\u{1f600}",
            "\u{20ac}\u{e000}",
        ];
        for a in names {
            for b in names {
                let expected = a.encode_utf16().cmp(b.encode_utf16());
                assert_eq!(utf16_cmp(a, b), expected, "{a:?} vs {b:?}");
            }
        }
    }

    /// The word-at-a-time scan escapes exactly what a byte-by-byte one does, wherever in an
    /// eight-byte word the character to escape falls.
    #[test]
    fn string_escaping_agrees_with_a_byte_by_byte_reference() {
        fn reference(s: &str) -> Vec<u8> {
            let mut out = vec![b'"'];
            for c in s.chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\u{8}' => out.extend_from_slice(b"\\b"),
                    '\t' => out.extend_from_slice(b"\\t"),
                    '\n' => out.extend_from_slice(b"\\n"),
                    '\u{c}' => out.extend_from_slice(b"\\f"),
                    '\r' => out.extend_from_slice(b"\\r"),
                    c if (c as u32) < 0x20 => {
                        out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                    }
                    c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            out.push(b'"');
            out
        }
        let specials = [
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "\u{1f}",
            "\u{7f}",
            "\u{e9}",
            "\u{1f600}",
            " ",
        ];
        for len in 0..20 {
            for at in 0..=len {
                for special in specials {
                    let s: String = "x".repeat(at) + special + &"y".repeat(len - at);
                    let mut out = Vec::new();
                    write_string(&s, &mut out);
                    assert_eq!(out, reference(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"id":"X","aliases":["A","B"]}"#).unwrap();
        let b: Value =
            serde_json::from_str("{\n  \"aliases\" : [ \"A\", \"B\" ],\n  \"id\" : \"X\"\n}")
                .unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert!(is_content_hash(&content_hash(&a)));
        let c: Value = serde_json::from_str(r#"{"id":"X","aliases":["B","A"]}"#).unwrap();
        assert_ne!(content_hash(&a), content_hash(&c), "array order is content");
    }
}
