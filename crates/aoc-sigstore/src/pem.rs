//! Minimal PEM (RFC 7468) reading and writing: LF line endings, 64-column base64 bodies.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// One decoded PEM block.
#[derive(Debug)]
pub(crate) struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Decodes the first PEM block in `text`. Tolerates CRLF and surrounding text (cosign and
/// editors on Windows write CRLF); the error string says what is missing.
pub(crate) fn decode(text: &str) -> Result<PemBlock, String> {
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| "no PEM block (\"-----BEGIN ...-----\" line) found".to_string())?;
    let after_begin = &text[begin + "-----BEGIN ".len()..];
    let label_end = after_begin
        .find("-----")
        .ok_or_else(|| "unterminated PEM BEGIN line".to_string())?;
    let label = after_begin[..label_end].to_string();
    let body_start = &after_begin[label_end + "-----".len()..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_start
        .find(&end_marker)
        .ok_or_else(|| format!("PEM block \"{label}\" has no END line"))?;
    let body: String = body_start[..body_end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("PEM block \"{label}\" is not valid base64: {e}"))?;
    Ok(PemBlock { label, der })
}

/// Encodes `der` as a PEM block with LF line endings and a trailing newline.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips_and_wraps_at_64_columns() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("PUBLIC KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert!(!pem.contains('\r'));
        let block = decode(&pem).unwrap();
        assert_eq!(block.label, "PUBLIC KEY");
        assert_eq!(block.der, der);
    }

    #[test]
    fn decode_accepts_crlf() {
        let pem = encode("X", b"hello world").replace('\n', "\r\n");
        assert_eq!(decode(&pem).unwrap().der, b"hello world");
    }

    #[test]
    fn decode_without_block_says_so() {
        assert!(decode("just text").unwrap_err().contains("no PEM block"));
    }
}
