//! The one SHA-256 digest type of the workspace, [`Sha256Digest`], and the one rule for its text:
//! exactly 64 lower-case hex digits (`parse_hex`), or `sha256:` followed by them
//! (`parse_prefixed`, the raw document's `content_hash`). Upper case is refused everywhere: a kit,
//! a dataset name, `SHA256SUMS`, an in-toto subject and a pinned `DATASET_HASH` all write lower
//! case, so an upper-case digest is a hand-edited or forged one, never a second spelling.
//!
//! Also the one SHA-256 loop over a reader ([`copy_hashing`], [`Sha256Digest::of_reader`]), a
//! [`HashingReader`] for readers whose bytes are consumed by someone else, and a [`HashingWriter`]
//! for bytes hashed as they are written.
//!
//! With the `serde` feature a digest serializes as its 64 hex digits and deserializes through
//! [`Sha256Digest::parse_hex`]: a typed document's digest field refuses upper case, a short value
//! or a non-string at parse time, the error naming the cause.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// The prefix of the `sha256:<64 hex>` form.
pub const PREFIX: &str = "sha256:";

/// Length of the hex form.
pub const HEX_LEN: usize = 64;

/// A SHA-256 digest. Its text is always 64 lower-case hex digits ([`fmt::Display`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

/// Why a text is not a digest. The message names the cause, never the text: the caller names the
/// field and shows the value (escaped, when it may reach a terminal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Not 64 characters (the count given).
    Length(usize),
    /// An upper-case hex digit at this 0-based character position.
    UpperCase(usize),
    /// A character that is no hex digit at this 0-based character position.
    NotHex(usize),
    /// The `sha256:` prefix is missing.
    NoPrefix,
}

impl fmt::Display for DigestError {
    /// The cause alone, to follow the caller's "is not 64 lower-case hex digits: it ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Length(n) => write!(f, "has {n} characters"),
            DigestError::UpperCase(at) => write!(f, "has an upper-case digit at position {at}"),
            DigestError::NotHex(at) => {
                write!(
                    f,
                    "has a character that is not a hex digit at position {at}"
                )
            }
            DigestError::NoPrefix => write!(f, "does not start with `{PREFIX}`"),
        }
    }
}

impl std::error::Error for DigestError {}

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: impl AsRef<[u8]>) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes.as_ref()).into())
    }

    /// Hashes everything `reader` yields through a 64 KiB buffer, returning `(bytes, digest)`.
    pub fn of_reader(reader: impl Read) -> io::Result<(u64, Sha256Digest)> {
        copy_hashing(reader, &mut io::sink(), &mut vec![0; 64 << 10])
    }

    /// Exactly 64 lower-case hex digits: the rule for every digest and dataset hash.
    pub fn parse_hex(text: &str) -> Result<Sha256Digest, DigestError> {
        let chars = text.chars().count();
        if chars != HEX_LEN {
            return Err(DigestError::Length(chars));
        }
        if let Some((at, c)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(if c.is_ascii_hexdigit() {
                DigestError::UpperCase(at)
            } else {
                DigestError::NotHex(at)
            });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).expect("64 lower-case hex digits decode");
        Ok(Sha256Digest(out))
    }

    /// `sha256:` followed by exactly 64 lower-case hex digits (a raw document's `content_hash`).
    pub fn parse_prefixed(text: &str) -> Result<Sha256Digest, DigestError> {
        text.strip_prefix(PREFIX)
            .ok_or(DigestError::NoPrefix)
            .and_then(Sha256Digest::parse_hex)
    }

    /// The 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `sha256:` and the 64 lower-case hex digits.
    pub fn prefixed(&self) -> String {
        // Built in place: every raw document's content hash is one of these.
        let mut out = String::with_capacity(PREFIX.len() + HEX_LEN);
        out.push_str(PREFIX);
        out.push_str(self.hex_digits().as_str());
        out
    }

    fn hex_digits(&self) -> HexDigits {
        let mut digits = [0u8; HEX_LEN];
        hex::encode_to_slice(self.0, &mut digits).expect("64 bytes hold 32 in hex");
        HexDigits(digits)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex_digits().as_str())
    }
}

/// The 64 hex digits on the stack, for printing without an allocation.
struct HexDigits([u8; HEX_LEN]);

impl HexDigits {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl std::str::FromStr for Sha256Digest {
    type Err = DigestError;

    /// [`Sha256Digest::parse_hex`].
    fn from_str(s: &str) -> Result<Sha256Digest, DigestError> {
        Sha256Digest::parse_hex(s)
    }
}

impl From<[u8; 32]> for Sha256Digest {
    fn from(bytes: [u8; 32]) -> Sha256Digest {
        Sha256Digest(bytes)
    }
}

impl From<Sha256Digest> for [u8; 32] {
    fn from(d: Sha256Digest) -> [u8; 32] {
        d.0
    }
}

impl PartialEq<[u8; 32]> for Sha256Digest {
    fn eq(&self, other: &[u8; 32]) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Sha256Digest> for [u8; 32] {
    fn eq(&self, other: &Sha256Digest) -> bool {
        self == &other.0
    }
}

impl AsRef<[u8]> for Sha256Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Sha256Digest {
    /// The 64 lower-case hex digits, as [`fmt::Display`] writes them.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex_digits().as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Sha256Digest {
    /// A string of exactly 64 lower-case hex digits ([`Sha256Digest::parse_hex`]); the error
    /// names the cause, never the value.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Sha256Digest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a SHA-256 digest of {HEX_LEN} lower-case hex digits")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Sha256Digest, E> {
                Sha256Digest::parse_hex(text).map_err(|e| {
                    E::custom(format_args!(
                        "a SHA-256 digest is {HEX_LEN} lower-case hex digits: this one {e}"
                    ))
                })
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

/// The one SHA-256 loop over a reader: reads `reader` to its end through `buf`, writing every
/// byte to `sink` (`io::sink()` to only hash) and hashing it; returns `(bytes, digest)`.
/// Interrupted reads are retried; any other error is returned as it is.
pub fn copy_hashing<W: Write + ?Sized>(
    mut reader: impl Read,
    sink: &mut W,
    buf: &mut [u8],
) -> io::Result<(u64, Sha256Digest)> {
    assert!(!buf.is_empty(), "copy_hashing needs a buffer");
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, Sha256Digest(hasher.finalize().into())))
}

/// A reader that hashes and counts what passes through it, for bytes that another reader
/// consumes (a parser, a line splitter); [`HashingReader::finish`] gives `(bytes, digest)`.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The count and digest of the bytes read so far.
    pub fn finish(self) -> (u64, Sha256Digest) {
        (self.bytes, Sha256Digest(self.hasher.finalize().into()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what it passes on to `inner` (an archive as it is written);
/// [`HashingWriter::finish`] gives back `inner` with `(bytes, digest)` of exactly what `inner`
/// accepted.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, and the count and digest of the bytes it accepted.
    pub fn finish(self) -> (W, u64, Sha256Digest) {
        (
            self.inner,
            self.bytes,
            Sha256Digest(self.hasher.finalize().into()),
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2's "abc" vector.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_digest_of_abc_is_the_fips_vector_in_every_form() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(d.to_hex(), ABC);
        assert_eq!(d.to_string(), ABC);
        assert_eq!(d.prefixed(), format!("sha256:{ABC}"));
        assert_eq!(format!("{d:?}"), format!("Sha256Digest({ABC})"));
        assert_eq!(Sha256Digest::parse_hex(ABC), Ok(d));
        assert_eq!(Sha256Digest::parse_prefixed(&d.prefixed()), Ok(d));
        assert_eq!(ABC.parse::<Sha256Digest>(), Ok(d));
        assert_eq!(<[u8; 32]>::from(d), *d.as_bytes());
        assert_eq!(d, d.0);
        assert_eq!(d.0, d);
        assert_eq!(hex::encode(d), ABC);
        assert_eq!(Sha256Digest::from(d.0), d);
    }

    #[test]
    fn every_digest_round_trips_through_both_text_forms() {
        for seed in 0u8..=255 {
            let d = Sha256Digest::of([seed]);
            assert_eq!(Sha256Digest::parse_hex(&d.to_hex()), Ok(d));
            assert_eq!(Sha256Digest::parse_prefixed(&d.prefixed()), Ok(d));
        }
        let all_bytes = Sha256Digest(std::array::from_fn(|i| (i * 8) as u8 | 0x07));
        assert_eq!(Sha256Digest::parse_hex(&all_bytes.to_hex()), Ok(all_bytes));
    }

    #[test]
    fn upper_case_is_refused_wherever_it_appears() {
        assert_eq!(
            Sha256Digest::parse_hex(&ABC.to_uppercase()),
            Err(DigestError::UpperCase(0))
        );
        let mut one = ABC.to_string();
        one.replace_range(5..6, "F");
        assert_eq!(
            Sha256Digest::parse_hex(&one),
            Err(DigestError::UpperCase(5))
        );
        assert_eq!(
            Sha256Digest::parse_prefixed(&format!("sha256:{one}")),
            Err(DigestError::UpperCase(5))
        );
        assert_eq!(
            Sha256Digest::parse_prefixed(&format!("SHA256:{ABC}")),
            Err(DigestError::NoPrefix)
        );
    }

    #[test]
    fn sixty_three_and_sixty_five_digits_are_refused() {
        assert_eq!(
            Sha256Digest::parse_hex(&ABC[1..]),
            Err(DigestError::Length(63))
        );
        assert_eq!(
            Sha256Digest::parse_hex(&format!("{ABC}0")),
            Err(DigestError::Length(65))
        );
        assert_eq!(Sha256Digest::parse_hex(""), Err(DigestError::Length(0)));
        assert_eq!(
            Sha256Digest::parse_prefixed(&format!("sha256:{}", &ABC[1..])),
            Err(DigestError::Length(63))
        );
        assert_eq!(
            Sha256Digest::parse_prefixed(ABC),
            Err(DigestError::NoPrefix)
        );
        // 64 bytes but 63 characters: counted as characters, as a reader counts them.
        let multibyte = format!("é{}", &ABC[2..]);
        assert_eq!(multibyte.len(), 64);
        assert_eq!(
            Sha256Digest::parse_hex(&multibyte),
            Err(DigestError::Length(63))
        );
    }

    #[test]
    fn non_hex_characters_are_refused_with_their_position() {
        for (at, c) in [
            (0, 'g'),
            (10, ' '),
            (63, 'x'),
            (31, '\n'),
            (40, '+'),
            (7, 'é'),
        ] {
            let mut bad = ABC.to_string();
            bad.replace_range(at..at + 1, &c.to_string());
            assert_eq!(
                Sha256Digest::parse_hex(&bad),
                Err(DigestError::NotHex(at)),
                "{bad:?}"
            );
        }
        let err = Sha256Digest::parse_hex(&"z".repeat(64)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "has a character that is not a hex digit at position 0"
        );
        assert_eq!(
            DigestError::UpperCase(3).to_string(),
            "has an upper-case digit at position 3"
        );
        assert_eq!(DigestError::Length(63).to_string(), "has 63 characters");
        assert_eq!(
            DigestError::NoPrefix.to_string(),
            "does not start with `sha256:`"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_writes_the_hex_digits_and_reads_them_strictly() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Doc {
            sha256: Sha256Digest,
        }
        let doc = Doc {
            sha256: Sha256Digest::of(b"abc"),
        };
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(json, format!(r#"{{"sha256":"{ABC}"}}"#));
        assert_eq!(serde_json::from_str::<Doc>(&json).unwrap(), doc);
        // From a reader too (no borrowed string to visit).
        assert_eq!(
            serde_json::from_reader::<_, Doc>(json.as_bytes()).unwrap(),
            doc
        );

        let refused = |value: &str| {
            serde_json::from_str::<Doc>(&format!(r#"{{"sha256":{value}}}"#))
                .unwrap_err()
                .to_string()
        };
        let mut one_upper = ABC.to_string();
        one_upper.replace_range(5..6, "F");
        assert_eq!(
            refused(&format!("{one_upper:?}")),
            "a SHA-256 digest is 64 lower-case hex digits: this one has an upper-case digit \
             at position 5 at line 1 column 76"
        );
        assert!(refused(&format!("{:?}", ABC.to_uppercase()))
            .contains("has an upper-case digit at position 0"));
        assert!(refused(&format!("{:?}", &ABC[1..])).contains("this one has 63 characters"));
        assert!(refused(&format!("\"sha256:{ABC}\"")).contains("this one has 71 characters"));
        assert!(refused(&format!("\"{}g\"", &ABC[1..])).contains("not a hex digit at position 63"));
        assert!(refused("12").contains("expected a SHA-256 digest of 64 lower-case hex digits"));
        assert!(refused("null").contains("expected a SHA-256 digest of 64 lower-case hex digits"));
        // The value itself never appears in the message.
        assert!(!refused(&format!("{one_upper:?}")).contains(&one_upper));
    }

    #[test]
    fn the_hashing_loop_and_reader_agree_with_the_one_shot_digest() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut copy = Vec::new();
        let (n, d) = copy_hashing(&data[..], &mut copy, &mut [0; 4096]).unwrap();
        assert_eq!((n, d), (data.len() as u64, Sha256Digest::of(&data)));
        assert_eq!(copy, data);
        assert_eq!(
            Sha256Digest::of_reader(&data[..]).unwrap(),
            (n, Sha256Digest::of(&data))
        );
        let mut reader = HashingReader::new(&data[..]);
        let mut consumed = Vec::new();
        reader.read_to_end(&mut consumed).unwrap();
        assert_eq!(reader.finish(), (n, Sha256Digest::of(&data)));
        // A writer that takes at most 1000 bytes a call: only what it accepted is hashed.
        struct Short(Vec<u8>);
        impl Write for Short {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(1000);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut writer = HashingWriter::new(Short(Vec::new()));
        writer.write_all(&data).unwrap();
        let (inner, written, digest) = writer.finish();
        assert_eq!((written, digest), (n, Sha256Digest::of(&data)));
        assert_eq!(inner.0, data);
    }
}
