//! The one escape for untrusted text on its way to a terminal (stderr, stdout, a report a person
//! reads): names and ids from a kit, a dataset, an input document, and error messages carrying
//! them. Every binary (`stella`, `aoc-dataset`, `cargo xtask`) prints such text through
//! [`escape`] or [`escape_os`], so a name cannot move the cursor, recolour the screen, retitle
//! the window or reorder what the reader sees.
//!
//! JSON documents keep their values: [`to_vec_pretty`] and [`to_writer_compact`] write the same
//! characters as `\uXXXX` JSON escapes (serde_json leaves C1, DEL, bidi and zero-width
//! characters raw), so a `--format json` document on a terminal is as harmless as the text.

use std::borrow::Cow;

/// `s` with every character that could act on a terminal or hide what the reader sees replaced
/// by a visible `\u{...}` escape: C0 controls, DEL and C1 controls (U+0080..U+009F: CSI is
/// U+009B), the bidirectional controls (U+061C, U+200E/U+200F, U+202A..U+202E,
/// U+2066..U+2069), zero-width and invisible characters (U+200B..U+200D, U+2060..U+2065, U+FEFF) and the line and
/// paragraph separators (U+2028, U+2029). `\n`, `\r`, `\t` show as `\n`, `\r`, `\t`; a backslash
/// is doubled so that an escape cannot be forged. Plain text comes back borrowed, unchanged.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// True for the characters [`escape`] replaces.
pub fn needs_escape(c: char) -> bool {
    c == '\\'
        // C0, DEL, C1.
        || c.is_control()
        || matches!(
            c as u32,
            0x061c | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff
        )
}

/// A name as the operating system gives it (a file name, a path), escaped; bytes that are not
/// UTF-8 show as `\xNN`.
pub fn escape_os(name: &std::ffi::OsStr) -> String {
    match name.to_str() {
        Some(s) => escape(s).into_owned(),
        None => {
            let mut out = String::new();
            for chunk in name.as_encoded_bytes().utf8_chunks() {
                out.push_str(&escape(chunk.valid()));
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// A path, escaped ([`escape_os`]).
pub fn escape_path(path: &std::path::Path) -> String {
    escape_os(path.as_os_str())
}

/// `value` as pretty JSON, every character [`escape`] replaces written as a `\uXXXX` escape
/// (the value is unchanged for any JSON reader).
pub fn to_vec_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let formatter = Safe(serde_json::ser::PrettyFormatter::new());
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    Ok(out)
}

/// `value` as compact JSON (one NDJSON line, without its newline) to `writer`, escaped as
/// [`to_vec_pretty`] escapes.
pub fn to_writer_compact<W: std::io::Write, T: serde::Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let formatter = Safe(serde_json::ser::CompactFormatter);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        writer, formatter,
    ))
}

/// A serde_json formatter that writes the characters [`needs_escape`] names (but the backslash,
/// which JSON escapes itself) as `\uXXXX`; all of them are in the Basic Multilingual Plane.
struct Safe<F>(F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for Safe<F> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c != '\\' && needs_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for plain in [
            "aoc-dataset-ab.tar.gz",
            "GHSA-xxxx-yyyy-zzzz",
            "données ünïcode 漢字 🙂",
            "",
        ] {
            assert!(matches!(escape(plain), Cow::Borrowed(s) if s == plain));
        }
    }

    #[test]
    fn every_terminal_control_and_invisible_reordering_character_is_made_visible() {
        let cases: &[(&str, &str)] = &[
            ("a\u{1b}[2Kb", "a\\u{1b}[2Kb"),
            ("line\nfeed\rret\ttab", "line\\nfeed\\rret\\ttab"),
            ("nul\u{0}bel\u{7}bs\u{8}", "nul\\u{0}bel\\u{7}bs\\u{8}"),
            ("del\u{7f}", "del\\u{7f}"),
            (
                "c1 \u{80} csi \u{9b}31m \u{9f}",
                "c1 \\u{80} csi \\u{9b}31m \\u{9f}",
            ),
            ("alm\u{61c}", "alm\\u{61c}"),
            ("lrm\u{200e}rlm\u{200f}", "lrm\\u{200e}rlm\\u{200f}"),
            ("rlo\u{202e}gpj.exe", "rlo\\u{202e}gpj.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            (
                "z\u{200b}w\u{200c}j\u{200d}w\u{2060}b\u{feff}",
                "z\\u{200b}w\\u{200c}j\\u{200d}w\\u{2060}b\\u{feff}",
            ),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("a\\u{1b}", "a\\\\u{1b}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), *shown, "{raw:?}");
        }
    }

    #[test]
    fn nothing_escaped_is_left_acting_on_a_terminal() {
        // Every code point up to U+FFFF and the supplementary planes' edges: the escaped form
        // holds none of the characters the escape exists for.
        let all: String = (0u32..=0xffff)
            .chain(0x10000..0x10100)
            .filter_map(char::from_u32)
            .collect();
        let escaped = escape(&all);
        assert!(escaped.chars().all(|c| c == '\\' || !needs_escape(c)));
        assert!(escaped.chars().all(|c| !c.is_control()));
    }

    #[test]
    fn json_keeps_the_value_and_escapes_what_would_act_on_a_terminal() {
        let value = serde_json::json!({
            "_id": "a\u{1b}[2J\u{9b}31m\u{7f}\u{202e}\u{2028}\u{feff}\\ plain é",
            "list": ["\u{61c}", 1, null],
        });
        for bytes in [to_vec_pretty(&value).unwrap(), {
            let mut line = Vec::new();
            to_writer_compact(&mut line, &value).unwrap();
            line
        }] {
            let text = String::from_utf8(bytes).unwrap();
            // Only the layout's own newlines.
            let raw = |c: char| c != '\\' && c != '\n' && needs_escape(c);
            assert!(!text.chars().any(raw), "{text}");
            assert!(text.contains(r"\u001b[2J\u009b31m\u007f\u202e\u2028\ufeff\\ plain é"));
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
        // Pretty output keeps serde_json's layout.
        let plain = serde_json::json!({"a": [1, "b"]});
        assert_eq!(
            to_vec_pretty(&plain).unwrap(),
            serde_json::to_vec_pretty(&plain).unwrap()
        );
    }

    #[test]
    fn os_names_show_invalid_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"a\xffb\x1b\xc2\x9b");
        assert_eq!(escape_os(name), "a\\xffb\\u{1b}\\u{9b}");
    }
}
