//! `SHA256SUMS`: the writer's exact format, `sha256sum -c` agreeing with it, and the strict parser
//! refusing each malformed line with its line number.

use std::process::Command;

use aoc_archive::{Sha256Digest, Sha256Sums, SumsError, SumsErrorKind};

const A: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const E: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn parse(text: &str) -> Result<Sha256Sums, SumsError> {
    Sha256Sums::parse(text.as_bytes())
}

fn rejected(text: &str) -> (usize, SumsErrorKind) {
    let err = parse(text).expect_err("malformed SHA256SUMS accepted");
    (err.line, err.kind)
}

#[test]
fn the_writer_emits_sorted_two_space_lines_that_sha256sum_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let names = [
        "z-last.tar.gz",
        "SHA256SUMS.sigstore.json",
        "aoc-dataset-1.manifest.json",
        "a b.txt",
    ];
    let mut paths = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = tmp.path().join(name);
        std::fs::write(&path, format!("artefact {i}\n").repeat(i * 1000 + 1)).unwrap();
        paths.push(path);
    }
    let sums = Sha256Sums::from_files(&paths).unwrap();
    let text = sums.render();
    let listed: Vec<&str> = text.lines().map(|l| &l[66..]).collect();
    assert_eq!(
        listed,
        [
            "SHA256SUMS.sigstore.json",
            "a b.txt",
            "aoc-dataset-1.manifest.json",
            "z-last.tar.gz"
        ]
    );
    for line in text.lines() {
        assert_eq!(&line[64..66], "  ");
        assert!(line[..64]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
    std::fs::write(tmp.path().join("SHA256SUMS"), &text).unwrap();
    let out = Command::new("sha256sum")
        .args(["--strict", "-c", "SHA256SUMS"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches(": OK").count(),
        4
    );
    assert_eq!(Sha256Sums::parse(text.as_bytes()).unwrap(), sums);

    // And sha256sum's own output for the same files parses to the same set.
    let theirs = Command::new("sha256sum")
        .args(names)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(Sha256Sums::parse(&theirs.stdout).unwrap(), sums);
}

#[test]
fn a_missing_final_newline_and_an_empty_file_are_accepted() {
    let sums = parse(&format!("{A}  a.txt\n{E}  empty")).unwrap();
    assert_eq!(sums.len(), 2);
    assert_eq!(sums.get("empty").unwrap().to_string(), E);
    assert!(parse("").unwrap().is_empty());
}

#[test]
fn malformed_lines_are_refused_with_their_line_number() {
    let ok = format!("{A}  ok.txt\n");
    let cases: Vec<(String, SumsErrorKind)> = vec![
        (
            format!("{ok}{A}  crlf.txt\r\n"),
            SumsErrorKind::CarriageReturn,
        ),
        (
            format!("{ok}{A} *binary.tar.gz\n"),
            SumsErrorKind::BinaryMarker,
        ),
        (
            format!("{ok}{A}  dir/file\n"),
            SumsErrorKind::Slash("dir/file".into()),
        ),
        (format!("{ok}{A}  ..\n"), SumsErrorKind::DotDot("..".into())),
        (
            format!("{ok}{A}  a..b\n"),
            SumsErrorKind::DotDot("a..b".into()),
        ),
        (
            format!("{ok}{A}  a\\b\n"),
            SumsErrorKind::Backslash("a\\b".into()),
        ),
        (
            format!("{ok}\\{A}  escaped\\nname\n"),
            SumsErrorKind::EscapedLine,
        ),
        (
            format!("{ok}{}  upper\n", A.to_uppercase()),
            SumsErrorKind::BadDigest,
        ),
        (
            format!("{ok}{}  short\n", &A[..63]),
            SumsErrorKind::BadDigest,
        ),
        (format!("{ok}{A}0  long\n"), SumsErrorKind::BadDigest),
        (
            format!("{ok}{A}   leading-space\n"),
            SumsErrorKind::SpaceAroundName(" leading-space".into()),
        ),
        (
            format!("{ok}{A}  trailing-space \n"),
            SumsErrorKind::SpaceAroundName("trailing-space ".into()),
        ),
        (format!("{ok}{A}\ttab\n"), SumsErrorKind::BadDigest),
        (format!("{ok}{A} \tx\n"), SumsErrorKind::BadSeparator),
        (format!("{ok}{A}  \n"), SumsErrorKind::EmptyName),
        (
            format!("{ok}{A}  tab\there\n"),
            SumsErrorKind::ControlCharacter("tab\there".into()),
        ),
        (
            format!("{ok}\n{A}  after-blank\n"),
            SumsErrorKind::EmptyLine,
        ),
        (
            format!("{ok}{E}  ok.txt\n"),
            SumsErrorKind::DuplicateName {
                name: "ok.txt".into(),
                first_line: 1,
            },
        ),
    ];
    for (text, kind) in cases {
        assert_eq!(rejected(&text), (2, kind), "{text:?}");
    }
    let err =
        Sha256Sums::parse(&[ok.as_bytes(), A.as_bytes(), b"  caf\xe9\n"].concat()).unwrap_err();
    assert_eq!((err.line, err.kind.clone()), (2, SumsErrorKind::NotUtf8));
    assert_eq!(err.to_string(), "SHA256SUMS line 2: not UTF-8");
}

#[test]
fn the_writer_refuses_names_the_parser_would_refuse() {
    let mut sums = Sha256Sums::new();
    sums.insert("ok", Sha256Digest([0; 32])).unwrap();
    for bad in ["", "a/b", "..", "x\ny", " lead", "c\\d"] {
        assert!(sums.insert(bad, Sha256Digest([0; 32])).is_err(), "{bad:?}");
    }
    assert!(matches!(
        sums.insert("ok", Sha256Digest([1; 32])).unwrap_err().kind,
        SumsErrorKind::DuplicateName { .. }
    ));
}
