//! An empty dataset pin is a usage error, never a way to lift the pin: `--expect-dataset-hash ""`
//! (an unset variable expanded) over a set `DATASET_HASH`, or an empty `DATASET_HASH`, stops
//! `stella aoc backfill` and `stella aoc verify --input` before any input is read or any store
//! is opened.

use std::process::Command;

#[test]
fn an_empty_pin_stops_the_loader_and_the_verifier_before_anything_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let url = format!("sqlite://{}", store.display());
    // Not a dataset at all: the pin is refused before it is read.
    let input = dir.path().join("aoc-dataset-input.tar.gz");
    std::fs::write(&input, b"not read").unwrap();
    let pinned = "a".repeat(64);
    let cases: [(&[&str], Option<&str>); 3] = [
        (&["--expect-dataset-hash", ""], None),
        (&["--expect-dataset-hash", ""], Some(pinned.as_str())),
        (&["--expect-dataset-hash", "  "], None),
    ];
    let empty_env: [(&[&str], Option<&str>); 1] = [(&[], Some(""))];
    for (extra, env) in cases.iter().chain(empty_env.iter()) {
        for command in [
            vec!["aoc", "backfill", "--store", &url, "--from"],
            vec!["aoc", "verify", "--input"],
        ] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_stella"));
            cmd.args(&command).arg(&input).args(*extra);
            match env {
                Some(v) => cmd.env("DATASET_HASH", v),
                None => cmd.env_remove("DATASET_HASH"),
            };
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command:?} {extra:?} DATASET_HASH={env:?}: {stderr}"
            );
            assert!(
                stderr.contains("--expect-dataset-hash / DATASET_HASH is empty"),
                "{stderr}"
            );
            assert!(!store.exists(), "the store was opened");
        }
    }
}

/// A pin that is not 64 lower-case hex digits (upper case, one digit short, a stray letter) is
/// refused with its value and the cause, before anything is opened.
#[test]
fn a_malformed_pin_is_refused_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("aoc-dataset-input.tar.gz");
    std::fs::write(&input, b"not read").unwrap();
    let upper = "A".repeat(64);
    let short = "a".repeat(63);
    let letter = format!("{}g", "a".repeat(63));
    for (pin, cause) in [
        (&upper, "it has an upper-case digit at position 0"),
        (&short, "it has 63 characters"),
        (
            &letter,
            "it has a character that is not a hex digit at position 63",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_stella"))
            .args(["aoc", "verify", "--input"])
            .arg(&input)
            .args(["--expect-dataset-hash", pin])
            .env_remove("DATASET_HASH")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{pin}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--expect-dataset-hash {pin:?}: not a dataset hash (64 lowercase hex digits): {cause}"
            )),
            "{stderr}"
        );
    }
}
