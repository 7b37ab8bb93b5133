//! Our bundles and keys checked by other implementations, offline:
//! - sigstore-js (@sigstore/bundle 4 + @sigstore/verify 3) verifies message-signature and DSSE
//!   bundles against the public key alone (empty trusted root, tlog/timestamp thresholds 0);
//! - securesystemslib verifies the DSSE envelope;
//! - hashlib.scrypt + PyNaCl decrypt our cosign keys, and keys they write load here.
//!
//! Set up with `sh crates/aoc-sigstore/tests/third_party/setup.sh`. Without the tools these tests
//! record a skip (`aoc_testkit::skip`), unless `AOC_THIRD_PARTY=1` or `CI`, which make a missing
//! tool a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aoc_sigstore::{
    dsse_bundle, message_signature_bundle, statement_json, Sha256Digest, Signer, Subject,
    IN_TOTO_PAYLOAD_TYPE,
};

use crate::{data, ARTEFACT};

const SETUP: &str = "sh crates/aoc-sigstore/tests/third_party/setup.sh";

struct Tools {
    node_modules: PathBuf,
    python: PathBuf,
    scripts: PathBuf,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The installed tools, or None after printing why (panics instead when AOC_THIRD_PARTY=1).
fn tools(test: &str) -> Option<Tools> {
    let dir = std::env::var_os("AOC_THIRD_PARTY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../target/third-party"));
    let tools = Tools {
        node_modules: dir.join("node"),
        python: dir.join("venv/bin/python"),
        scripts: manifest_dir().join("tests/third_party"),
    };
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !node_ok {
        Some("node is not on PATH".to_string())
    } else if !tools
        .node_modules
        .join("node_modules/@sigstore/verify/package.json")
        .is_file()
    {
        Some(format!(
            "@sigstore/verify is not installed in {}",
            tools.node_modules.display()
        ))
    } else if !tools.python.is_file() {
        Some(format!("no venv python at {}", tools.python.display()))
    } else {
        None
    };
    let Some(why) = missing else {
        return Some(tools);
    };
    let required = std::env::var("AOC_THIRD_PARTY").is_ok_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!("{test}: AOC_THIRD_PARTY=1 but {why}: run `{SETUP}` first");
    }
    aoc_testkit::skip(format!(
        "{test}: {why}. Third-party verification did NOT run: run `{SETUP}`, then \
         `AOC_THIRD_PARTY=1 cargo test -p aoc-sigstore --test sigstore third_party::`"
    ));
    None
}

impl Tools {
    fn node(&self, args: &[&Path]) -> Output {
        Command::new("node")
            .arg(self.scripts.join("verify_bundle.mjs"))
            .args(args)
            .env("AOC_NODE_MODULES", &self.node_modules)
            .output()
            .expect("node runs")
    }

    fn node_mode(&self, mode: &str, args: &[&Path]) -> Output {
        let mut all: Vec<&Path> = vec![Path::new(mode)];
        all.extend_from_slice(args);
        self.node(&all)
    }

    fn python(&self, args: &[&str]) -> Output {
        Command::new(&self.python)
            .arg(self.scripts.join("sslib_check.py"))
            .args(args)
            .output()
            .expect("venv python runs")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        stdout(o),
        stderr(o)
    );
}

#[track_caller]
fn assert_rejected(o: &Output, what: &str, expected: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what} must be rejected:\n{}{}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stderr(o).contains(expected),
        "{what}: expected `{expected}` in:\n{}",
        stderr(o)
    );
}

/// A temp dir with a fresh key pair, an artefact, and its message and DSSE bundles.
struct Fixture {
    dir: tempfile::TempDir,
    signer: Signer,
    statement: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate();
        let artefact: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let digest = Sha256Digest::of(&artefact);
        let statement = statement_json(
            &[Subject {
                name: "artefact.bin".into(),
                sha256: digest,
            }],
            "https://slsa.dev/provenance/v1",
            &serde_json::json!({"buildDefinition": {"buildType": "test"}, "runDetails": {}}),
        );
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("artefact.bin", &artefact);
        write("key.pub", signer.public_key().to_pem().as_bytes());
        write(
            "other.pub",
            Signer::generate().public_key().to_pem().as_bytes(),
        );
        write(
            "message.json",
            message_signature_bundle(&signer, &digest).as_bytes(),
        );
        write(
            "dsse.json",
            dsse_bundle(&signer, IN_TOTO_PAYLOAD_TYPE, &statement).as_bytes(),
        );
        Self {
            dir,
            signer,
            statement,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn sigstore_js_verifies_message_bundle_with_the_key_alone() {
    let Some(t) = tools("sigstore_js_verifies_message_bundle_with_the_key_alone") else {
        return;
    };
    let f = Fixture::new();
    let (bundle, key, artefact) = (
        f.path("message.json"),
        f.path("key.pub"),
        f.path("artefact.bin"),
    );

    let out = t.node_mode("message", &[&bundle, &key, &artefact]);
    assert_ok(&out, "sigstore-js message bundle");
    let result: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(result["hint"], f.signer.key_id());

    let mut flipped = std::fs::read(&artefact).unwrap();
    flipped[50_000] ^= 0x01;
    std::fs::write(f.path("flipped.bin"), flipped).unwrap();
    let out = t.node_mode("message", &[&bundle, &key, &f.path("flipped.bin")]);
    assert_rejected(&out, "flipped artefact byte", "SIGNATURE_ERROR");

    let out = t.node_mode("message", &[&bundle, &f.path("other.pub"), &artefact]);
    assert_rejected(&out, "another key", "PUBLIC_KEY_ERROR");
}

#[test]
fn sigstore_js_verifies_dsse_bundle_with_the_key_alone() {
    let Some(t) = tools("sigstore_js_verifies_dsse_bundle_with_the_key_alone") else {
        return;
    };
    let f = Fixture::new();
    let (bundle, key) = (f.path("dsse.json"), f.path("key.pub"));

    let out = t.node_mode("dsse", &[&bundle, &key]);
    assert_ok(&out, "sigstore-js DSSE bundle");
    let result: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(result["payloadType"], IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(
        result["payloadSha256"],
        Sha256Digest::of(&f.statement).to_string()
    );

    let out = t.node_mode("dsse", &[&bundle, &f.path("other.pub")]);
    assert_rejected(&out, "another key", "PUBLIC_KEY_ERROR");

    // Same envelope, one payload byte changed: the signature over the PAE no longer holds.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let mut payload = f.statement.clone();
    payload[10] ^= 0x01;
    use base64::Engine as _;
    v["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(&payload)
        .into();
    std::fs::write(f.path("tampered.json"), v.to_string()).unwrap();
    let out = t.node_mode("dsse", &[&f.path("tampered.json"), &key]);
    assert_rejected(&out, "tampered payload", "SIGNATURE_ERROR");
}

#[test]
fn sigstore_js_verifies_the_committed_golden_bundles() {
    let Some(t) = tools("sigstore_js_verifies_the_committed_golden_bundles") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let artefact = dir.path().join("artefact");
    std::fs::write(&artefact, ARTEFACT).unwrap();
    let key = data("fixture.pub");
    assert_ok(
        &t.node_mode(
            "message",
            &[&data("message.sigstore.json"), &key, &artefact],
        ),
        "golden message bundle",
    );
    assert_ok(
        &t.node_mode("dsse", &[&data("provenance.sigstore.json"), &key]),
        "golden provenance bundle",
    );
}

#[test]
fn securesystemslib_verifies_the_dsse_envelope() {
    let Some(t) = tools("securesystemslib_verifies_the_dsse_envelope") else {
        return;
    };
    let f = Fixture::new();
    let bundle = f.path("dsse.json");
    let out = t.python(&[
        "dsse",
        bundle.to_str().unwrap(),
        f.path("key.pub").to_str().unwrap(),
    ]);
    assert_ok(&out, "securesystemslib DSSE");
    assert_eq!(
        stdout(&out).trim(),
        Sha256Digest::of(&f.statement).to_string()
    );

    let out = t.python(&[
        "dsse",
        bundle.to_str().unwrap(),
        f.path("other.pub").to_str().unwrap(),
    ]);
    assert_rejected(&out, "another key", "VerificationError");
}

#[test]
fn pynacl_decrypts_our_cosign_key() {
    let Some(t) = tools("pynacl_decrypts_our_cosign_key") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate();
    let key_path = dir.path().join("cosign.key");
    std::fs::write(&key_path, signer.to_cosign_pem(b"s3cret").unwrap()).unwrap();

    let out = t.python(&["decrypt-key", key_path.to_str().unwrap(), "s3cret"]);
    assert_ok(&out, "python decrypt-key");
    assert_eq!(stdout(&out), signer.public_key().to_pem());

    let out = t.python(&["decrypt-key", key_path.to_str().unwrap(), "wrong"]);
    assert_rejected(&out, "wrong password", "CryptoError");
}

#[test]
fn keys_written_by_python_load_here() {
    let Some(t) = tools("keys_written_by_python_load_here") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for n in ["65536", "32768"] {
        let key_path = dir.path().join(format!("py-{n}.key"));
        let out = t.python(&["encrypt-key", key_path.to_str().unwrap(), "py-pw", n]);
        assert_ok(&out, "python encrypt-key");
        let pem = std::fs::read_to_string(&key_path).unwrap();
        let signer = Signer::from_cosign_pem(&pem, b"py-pw", "py.key").unwrap();
        assert_eq!(signer.public_key().to_pem(), stdout(&out), "N={n}");
    }
}
