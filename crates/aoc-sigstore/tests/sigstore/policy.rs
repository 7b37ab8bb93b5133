//! Signing-key selection from the environment: production key, dev key, and the one-line error for
//! every misconfiguration. The environment is a map, never the process's own.

use std::collections::HashMap;
use std::path::PathBuf;

use aoc_sigstore::policy::{dev_public_key, DEV_KEY_PATH};
use aoc_sigstore::{select_signing_key, KeySelectionError, SelectedKey, Signer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::repo_root;

fn select(vars: &[(&str, &str)]) -> Result<SelectedKey, KeySelectionError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    select_signing_key(|k| env.get(k).cloned(), &repo_root())
}

fn err(vars: &[(&str, &str)]) -> String {
    let e = select(vars).unwrap_err().to_string();
    assert!(!e.contains('\n'), "errors are one line: {e}");
    e
}

/// A production key in a temp dir, password `prod-pw`.
fn prod_key() -> (tempfile::TempDir, PathBuf, Signer) {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate();
    let path = dir.path().join("cosign.key");
    std::fs::write(&path, signer.to_cosign_pem(b"prod-pw").unwrap()).unwrap();
    (dir, path, signer)
}

#[test]
fn no_configuration_explains_both_options() {
    assert_eq!(
        err(&[]),
        "no signing key: set COSIGN_KEY (a path) or COSIGN_KEY_B64 (base64 of the PEM) with \
         COSIGN_PASSWORD, or set COSIGN_ALLOW_DEV_KEY=1 to use the dev key"
    );
}

#[test]
fn dev_key_is_used_only_when_allowed() {
    let selected = select(&[("COSIGN_ALLOW_DEV_KEY", "1")]).unwrap();
    assert!(selected.description.is_dev);
    assert!(selected.description.source.ends_with(DEV_KEY_PATH));
    assert_eq!(selected.description.key_id, dev_public_key().key_id());
    assert_eq!(selected.signer.key_id(), dev_public_key().key_id());

    assert!(err(&[("COSIGN_ALLOW_DEV_KEY", "0")]).starts_with("no signing key"));
    assert!(err(&[("COSIGN_ALLOW_DEV_KEY", "yes please")]).starts_with("no signing key"));
}

#[test]
fn require_prod_key_refuses_the_dev_key() {
    let e = err(&[("COSIGN_ALLOW_DEV_KEY", "1"), ("AOC_REQUIRE_PROD_KEY", "1")]);
    assert!(
        e.starts_with("no production signing key and AOC_REQUIRE_PROD_KEY=1 refuses the dev key"),
        "{e}"
    );
    // Any value but an explicit off switch keeps the requirement on.
    let e = err(&[
        ("COSIGN_ALLOW_DEV_KEY", "1"),
        ("AOC_REQUIRE_PROD_KEY", "yes"),
    ]);
    assert!(e.contains("refuses the dev key"), "{e}");
    assert!(select(&[("COSIGN_ALLOW_DEV_KEY", "1"), ("AOC_REQUIRE_PROD_KEY", "0")]).is_ok());
}

#[test]
fn require_prod_key_refuses_the_dev_key_given_as_cosign_key() {
    let dev = repo_root().join(DEV_KEY_PATH);
    let dev = dev.to_str().unwrap();
    let e = err(&[
        ("COSIGN_KEY", dev),
        ("COSIGN_PASSWORD", "stellaops-dev"),
        ("AOC_REQUIRE_PROD_KEY", "1"),
    ]);
    assert!(
        e.contains("is the public dev key and AOC_REQUIRE_PROD_KEY=1 refuses it"),
        "{e}"
    );

    let selected = select(&[("COSIGN_KEY", dev), ("COSIGN_PASSWORD", "stellaops-dev")]).unwrap();
    assert!(
        selected.description.is_dev,
        "the dev key is reported as such by any route"
    );
}

#[test]
fn production_key_from_a_path() {
    let (_dir, path, signer) = prod_key();
    let selected = select(&[
        ("COSIGN_KEY", path.to_str().unwrap()),
        ("COSIGN_PASSWORD", "prod-pw"),
        ("AOC_REQUIRE_PROD_KEY", "1"),
        ("COSIGN_ALLOW_DEV_KEY", "1"),
    ])
    .unwrap();
    assert!(!selected.description.is_dev);
    assert_eq!(
        selected.description.source,
        format!("COSIGN_KEY={}", path.display())
    );
    assert_eq!(selected.description.key_id, signer.key_id());
}

#[test]
fn production_key_from_base64() {
    let (_dir, path, signer) = prod_key();
    let b64 = STANDARD.encode(std::fs::read(&path).unwrap());
    let selected = select(&[("COSIGN_KEY_B64", &b64), ("COSIGN_PASSWORD", "prod-pw")]).unwrap();
    assert_eq!(selected.description.source, "COSIGN_KEY_B64");
    assert_eq!(selected.signer.key_id(), signer.key_id());

    let e = err(&[("COSIGN_KEY_B64", "%%%"), ("COSIGN_PASSWORD", "prod-pw")]);
    assert!(e.starts_with("COSIGN_KEY_B64 is not valid base64"), "{e}");
}

#[test]
fn missing_password_names_the_fix() {
    let (_dir, path, _) = prod_key();
    let e = err(&[("COSIGN_KEY", path.to_str().unwrap())]);
    assert!(
        e.starts_with("COSIGN_PASSWORD is not set: export it"),
        "{e}"
    );
    assert!(
        e.ends_with("or set COSIGN_ALLOW_DEV_KEY=1 to use the dev key"),
        "{e}"
    );
}

#[test]
fn wrong_password_names_the_key() {
    let (_dir, path, _) = prod_key();
    let e = err(&[
        ("COSIGN_KEY", path.to_str().unwrap()),
        ("COSIGN_PASSWORD", "nope"),
    ]);
    assert!(
        e.starts_with(&format!(
            "wrong password for cosign key COSIGN_KEY={}",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn unreadable_key_path_names_the_path() {
    let e = err(&[
        ("COSIGN_KEY", "/nonexistent/cosign.key"),
        ("COSIGN_PASSWORD", "x"),
    ]);
    assert!(
        e.starts_with("cannot read signing key /nonexistent/cosign.key"),
        "{e}"
    );
}

#[test]
fn both_key_variables_are_ambiguous() {
    let e = err(&[
        ("COSIGN_KEY", "/a"),
        ("COSIGN_KEY_B64", "Yg=="),
        ("COSIGN_PASSWORD", "x"),
    ]);
    assert_eq!(
        e,
        "both COSIGN_KEY and COSIGN_KEY_B64 are set: unset one of them"
    );
}

#[test]
fn empty_variables_count_as_unset() {
    // CI expands a missing secret to "": that must read as "no production key", not as a path "".
    let e = err(&[
        ("COSIGN_KEY", ""),
        ("COSIGN_KEY_B64", ""),
        ("AOC_REQUIRE_PROD_KEY", "1"),
    ]);
    assert!(e.starts_with("no production signing key"), "{e}");
}
