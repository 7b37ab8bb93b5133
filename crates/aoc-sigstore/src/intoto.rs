//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>):
//! building the DSSE payload and reading its subjects back.

use aoc_digest::Sha256Digest;
use serde_json::{json, Value};

pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// One statement subject: an artefact name and its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub sha256: Sha256Digest,
}

/// A parsed statement, as [`parse_statement`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub subjects: Vec<Subject>,
    pub predicate_type: String,
    pub predicate: Value,
}

/// Serializes a Statement v1 as compact JSON in the order `_type, subject, predicateType,
/// predicate`. Subjects keep the caller's order (callers sort them for reproducible output).
pub fn statement_json(subjects: &[Subject], predicate_type: &str, predicate: &Value) -> Vec<u8> {
    let subject: Vec<Value> = subjects
        .iter()
        .map(|s| json!({"name": s.name, "digest": {"sha256": s.sha256.to_string()}}))
        .collect();
    let statement = json!({
        "_type": STATEMENT_TYPE_V1,
        "subject": subject,
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&statement).expect("a JSON value always serializes")
}

/// Reads a Statement v1 payload (e.g. from [`crate::verify_dsse_bundle`]); every subject must carry
/// a sha256 digest.
pub fn parse_statement(payload: &[u8]) -> Result<Statement, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let kind = value.get("_type").and_then(Value::as_str).unwrap_or("");
    if kind != STATEMENT_TYPE_V1 {
        return Err(format!(
            "_type is \"{kind}\", expected \"{STATEMENT_TYPE_V1}\""
        ));
    }
    let raw_subjects = value
        .get("subject")
        .and_then(Value::as_array)
        .ok_or("statement has no subject array")?;
    let mut subjects = Vec::with_capacity(raw_subjects.len());
    for (i, s) in raw_subjects.iter().enumerate() {
        let name = s
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("subject[{i}] has no name"))?;
        let hex = s
            .pointer("/digest/sha256")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("subject[{i}] ({name}) has no sha256 digest"))?;
        let sha256 = Sha256Digest::parse_hex(hex).map_err(|e| {
            format!("subject[{i}] ({name}) sha256 is not 64 lowercase hex digits: it {e}")
        })?;
        subjects.push(Subject {
            name: name.to_string(),
            sha256,
        });
    }
    let predicate_type = value
        .get("predicateType")
        .and_then(Value::as_str)
        .ok_or("statement has no predicateType")?
        .to_string();
    let predicate = value.get("predicate").cloned().unwrap_or(Value::Null);
    Ok(Statement {
        subjects,
        predicate_type,
        predicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_has_spec_key_order_and_round_trips() {
        let subjects = vec![Subject {
            name: "a.tar.gz".into(),
            sha256: Sha256Digest([0xab; 32]),
        }];
        let json = statement_json(
            &subjects,
            "https://slsa.dev/provenance/v1",
            &json!({"k": 1}),
        );
        let text = String::from_utf8(json.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{{\"name\":\"a.tar.gz\",\
                 \"digest\":{{\"sha256\":\"{}\"}}}}],\"predicateType\":\"https://slsa.dev/provenance/v1\",\
                 \"predicate\":{{\"k\":1}}}}",
                "ab".repeat(32)
            )
        );
        let parsed = parse_statement(&json).unwrap();
        assert_eq!(parsed.subjects, subjects);
        assert_eq!(parsed.predicate_type, "https://slsa.dev/provenance/v1");
        assert_eq!(parsed.predicate, json!({"k": 1}));
    }

    /// A kit's digests are lowercase hex everywhere; an uppercase (or short) one is refused here
    /// as SHA256SUMS and the dataset hash refuse it.
    #[test]
    fn parse_refuses_a_digest_that_is_not_64_lowercase_hex_digits() {
        let statement = |digest: &str| {
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"a","digest":{{"sha256":"{digest}"}}}}],"predicateType":"p"}}"#
            )
        };
        assert!(parse_statement(statement(&"ab".repeat(32)).as_bytes()).is_ok());
        for bad in [
            "AB".repeat(32),
            "Ab".repeat(32),
            "ab".repeat(31),
            format!("{}g", "a".repeat(63)),
        ] {
            let err = parse_statement(statement(&bad).as_bytes()).unwrap_err();
            assert!(
                err.contains("not 64 lowercase hex digits: it has"),
                "{bad}: {err}"
            );
        }
        let err = parse_statement(statement(&"Ab".repeat(32)).as_bytes()).unwrap_err();
        assert!(
            err.ends_with("it has an upper-case digit at position 0"),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_other_statement_types() {
        let err = parse_statement(br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#).unwrap_err();
        assert!(
            err.contains("expected \"https://in-toto.io/Statement/v1\""),
            "{err}"
        );
    }
}
