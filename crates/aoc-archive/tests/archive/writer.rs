//! The writer's contract: byte-identical archives whatever the disk metadata or creation order,
//! accepted by GNU tar, gzip and zstd, and read back exactly by our own reader.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use aoc_archive::{
    entries_from_dir, pack, pack_with, ArchiveReader, Compression, Entry, Limits, PackError,
    PackOptions, PathProblem,
};

const EPOCH: u64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC
const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

fn long_name() -> String {
    format!(
        "docs/{}/{}.json",
        "nested-directory".repeat(5),
        "y".repeat(120)
    )
}

/// The files of a small kit: nested paths, an executable, an empty file, a >100-byte name (GNU
/// long name) and a file larger than the 1 MiB copy buffer.
fn kit_files() -> Vec<(String, Vec<u8>, bool)> {
    let osv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/osv-rustsec/RUSTSEC-2016-0001.json");
    let osv = fs::read(&osv).unwrap_or_else(|e| panic!("{}: {e}", osv.display()));
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    vec![
        ("README.md".into(), b"# kit\n".to_vec(), false),
        ("bin/stella".into(), b"\x7fELF not really".to_vec(), true),
        ("data/advisories/RUSTSEC-2016-0001.json".into(), osv, false),
        ("data/empty".into(), Vec::new(), false),
        ("data/big.bin".into(), big, false),
        (
            "scripts/verify-kit.sh".into(),
            b"#!/bin/sh\nexit 0\n".to_vec(),
            true,
        ),
        (long_name(), b"long\n".to_vec(), false),
    ]
}

/// Writes the kit files under `root` in the given order, with the given mtime and permission bits
/// (the execute bits follow the file's flag).
fn materialise(root: &Path, reverse: bool, mtime: SystemTime, read_bits: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mut files = kit_files();
    if reverse {
        files.reverse();
    }
    for (path, data, exec) in files {
        let disk = root.join(&path);
        fs::create_dir_all(disk.parent().unwrap()).unwrap();
        fs::write(&disk, &data).unwrap();
        let mode = if exec { read_bits | 0o100 } else { read_bits };
        fs::set_permissions(&disk, fs::Permissions::from_mode(mode)).unwrap();
        fs::File::options()
            .write(true)
            .open(&disk)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pack_dir(root: &Path, out: &Path, compression: Compression) -> Vec<u8> {
    pack(entries_from_dir(root, "").unwrap(), out, compression, EPOCH).unwrap();
    fs::read(out).unwrap()
}

#[test]
fn archives_are_identical_across_runs_mtimes_permissions_and_creation_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    materialise(
        &a,
        false,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1),
        0o644,
    );
    materialise(&b, true, SystemTime::now(), 0o600);
    for compression in ALL {
        let name = format!("kit.{}", compression.extension());
        let first = pack_dir(&a, &tmp.path().join(format!("1-{name}")), compression);
        let again = pack_dir(&a, &tmp.path().join(format!("2-{name}")), compression);
        let other = pack_dir(&b, &tmp.path().join(format!("3-{name}")), compression);
        assert!(first == again, "{compression:?}: two runs differ");
        assert!(
            first == other,
            "{compression:?}: disk metadata leaked into the archive"
        );
    }
}

#[test]
fn gnu_tar_lists_sorted_members_with_root_ownership_fixed_modes_and_the_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<Entry> = kit_files()
        .into_iter()
        .map(|(p, d, x)| Entry::bytes(p, d).executable(x))
        .collect();
    for compression in ALL {
        let out = tmp.path().join(format!("kit.{}", compression.extension()));
        let report = pack(entries.clone(), &out, compression, EPOCH).unwrap();
        let listing = run(Command::new("tar")
            .args(["--numeric-owner", "--utc", "-tvf"])
            .arg(&out));
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 7, "{listing}");
        for line in &lines {
            assert!(line.contains(" 0/0 "), "{line}");
            assert!(line.contains("2023-11-14 22:13"), "{line}");
            let exec = line.contains("bin/stella") || line.contains("verify-kit.sh");
            let mode = if exec { "-rwxr-xr-x" } else { "-rw-r--r--" };
            assert!(line.starts_with(mode), "{line}");
        }
        let names: Vec<&str> = lines
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&long_name().as_str()));
        let reported: Vec<&str> = report.members.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(reported, names);
    }
}

#[test]
fn gzip_and_zstd_tools_accept_the_output_and_it_decompresses_to_the_plain_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<Entry> = kit_files()
        .into_iter()
        .map(|(p, d, x)| Entry::bytes(p, d).executable(x))
        .collect();
    let paths: Vec<PathBuf> = ALL
        .iter()
        .map(|c| {
            let out = tmp.path().join(format!("kit.{}", c.extension()));
            pack(entries.clone(), &out, *c, EPOCH).unwrap();
            out
        })
        .collect();
    let plain = fs::read(&paths[0]).unwrap();
    run(Command::new("gzip").arg("-t").arg(&paths[1]));
    run(Command::new("zstd").args(["-q", "-t"]).arg(&paths[2]));
    let gunzipped = Command::new("gzip")
        .arg("-dc")
        .arg(&paths[1])
        .output()
        .unwrap();
    assert!(
        gunzipped.stdout == plain,
        "gzip -dc differs from the plain tar"
    );
    let unzstd = Command::new("zstd")
        .args(["-dc"])
        .arg(&paths[2])
        .output()
        .unwrap();
    assert!(
        unzstd.stdout == plain,
        "zstd -dc differs from the plain tar"
    );

    // GNU tar extracts the same bytes.
    let dest = tmp.path().join("extracted");
    fs::create_dir(&dest).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&paths[1])
        .arg("-C")
        .arg(&dest));
    for (path, data, _) in kit_files() {
        assert!(fs::read(dest.join(&path)).unwrap() == data, "{path}");
    }
}

#[test]
fn the_reader_returns_exactly_what_was_packed_with_matching_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    materialise(&src, false, SystemTime::now(), 0o644);
    let mut expected: Vec<(String, Vec<u8>)> = kit_files()
        .into_iter()
        .map(|(p, d, _)| (format!("kit/{p}"), d))
        .collect();
    expected.sort();
    for compression in ALL {
        let out = tmp.path().join(format!("kit.{}", compression.extension()));
        let options = PackOptions {
            compression,
            source_date_epoch: EPOCH,
            include_directories: true,
        };
        let report = pack_with(entries_from_dir(&src, "kit").unwrap(), &out, &options).unwrap();
        let archive_bytes = fs::read(&out).unwrap();
        assert_eq!(report.archive_bytes, archive_bytes.len() as u64);
        assert_eq!(
            report.archive_sha256,
            aoc_archive::sha256_file(&out).unwrap().1
        );

        let reader = ArchiveReader::open(&out, Limits::default()).unwrap();
        assert_eq!(reader.read_all().unwrap(), expected, "{compression:?}");
        let digests = ArchiveReader::open(&out, Limits::default())
            .unwrap()
            .digest_all()
            .unwrap();
        assert_eq!(digests, report.members);
        let big = digests
            .iter()
            .find(|d| d.path == "kit/data/big.bin")
            .unwrap();
        assert_eq!(big.size, 3_000_000);
    }
    let listing = run(Command::new("tar")
        .arg("-tf")
        .arg(tmp.path().join("kit.tar")));
    assert!(
        listing.starts_with("kit/\nkit/README.md\nkit/bin/\nkit/bin/stella\nkit/data/\n"),
        "{listing}"
    );
}

#[test]
fn pack_refuses_bad_paths_and_duplicates_and_leaves_no_file_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bad.tar.gz");
    let cases = [
        (vec![Entry::bytes("../evil", "x")], "`..`"),
        (vec![Entry::bytes("/etc/passwd", "x")], "absolute"),
        (
            vec![Entry::bytes("a", "1"), Entry::bytes("a", "2")],
            "duplicate",
        ),
    ];
    for (entries, expect) in cases {
        let err = pack(entries, &out, Compression::Gzip, EPOCH).unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
    }
    let err = pack(
        vec![Entry::file("missing", tmp.path().join("does-not-exist"))],
        &out,
        Compression::Gzip,
        EPOCH,
    )
    .unwrap_err();
    assert!(matches!(err, PackError::ReadInput { .. }), "{err}");
    let err = pack(
        vec![Entry::bytes("a/./b", "x")],
        &out,
        Compression::None,
        EPOCH,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        PackError::InvalidPath {
            problem: PathProblem::DotComponent,
            ..
        }
    ));
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn packed_archives_are_world_readable_and_replace_the_previous_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("kit.tar.zst");
    fs::write(&out, "old").unwrap();
    pack(
        vec![Entry::bytes("a", "new")],
        &out,
        Compression::Zstd,
        EPOCH,
    )
    .unwrap();
    let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o644, 0o644, "mode {mode:o}");
    let files = ArchiveReader::open(&out, Limits::default())
        .unwrap()
        .read_all()
        .unwrap();
    assert_eq!(files, vec![("a".to_owned(), b"new".to_vec())]);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
}

/// Pins the format: a change of header layout, gzip framing or zstd version shows up here.
/// Refresh on purpose with `UPDATE_GOLDEN=1 cargo test -p aoc-archive --test archive writer::`.
#[test]
fn small_archive_bytes_match_the_golden_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = vec![
        Entry::bytes("SHA256SUMS", "0".repeat(64) + "  x\n"),
        Entry::bytes("bin/tool", "#!/bin/sh\n").executable(true),
        Entry::bytes("data/records.ndjson", "{\"id\":1}\n".repeat(50_000)),
    ];
    let mut actual = String::new();
    for compression in ALL {
        let out = tmp
            .path()
            .join(format!("golden.{}", compression.extension()));
        let report = pack(entries.clone(), &out, compression, EPOCH).unwrap();
        actual.push_str(&format!(
            "{}  golden.{}\n",
            report.archive_sha256,
            compression.extension()
        ));
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small-archive.sha256");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &actual).unwrap();
    }
    let expected = fs::read_to_string(&golden).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert_eq!(actual, expected);
}

/// Several 1 MiB gzip members: gzip, GNU tar and Python read the concatenation as one stream, and
/// our reader (which inflates the members in parallel) returns exactly what was packed.
#[test]
fn multi_member_gzip_is_standard_gzip_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..3_500_000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                b'a' + (x % 26) as u8
            } else {
                b"{\"id\":\"GHSA\"}\n"[i % 14]
            }
        })
        .collect();
    let entries = vec![
        Entry::bytes("big.ndjson", big.clone()),
        Entry::bytes("small.txt", b"hello\n".to_vec()),
    ];
    let plain_path = tmp.path().join("kit.tar");
    let gz_path = tmp.path().join("kit.tar.gz");
    pack(entries.clone(), &plain_path, Compression::None, EPOCH).unwrap();
    pack(entries.clone(), &gz_path, Compression::Gzip, EPOCH).unwrap();
    let plain = fs::read(&plain_path).unwrap();
    let gz = fs::read(&gz_path).unwrap();
    assert!(gz.len() < plain.len());

    run(Command::new("gzip").arg("-t").arg(&gz_path));
    let gunzipped = Command::new("gzip")
        .arg("-dc")
        .arg(&gz_path)
        .output()
        .unwrap();
    assert!(
        gunzipped.status.success() && gunzipped.stdout == plain,
        "gzip -dc differs"
    );
    let listed = run(Command::new("tar").arg("-tzf").arg(&gz_path));
    assert_eq!(listed, "big.ndjson\nsmall.txt\n");
    let python = Command::new("python3")
        .args([
            "-c",
            "import gzip,sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())",
        ])
        .arg(&gz_path)
        .output();
    if let Ok(python) = python {
        assert!(
            python.status.success() && python.stdout == plain,
            "python gzip differs"
        );
    }

    let files = ArchiveReader::open(&gz_path, Limits::default())
        .unwrap()
        .read_all()
        .unwrap();
    assert_eq!(files.len(), 2);
    assert!(files[0].1 == big && files[1].1 == b"hello\n");

    // Same bytes on a second run.
    let again = tmp.path().join("again.tar.gz");
    pack(entries, &again, Compression::Gzip, EPOCH).unwrap();
    assert!(
        fs::read(&again).unwrap() == gz,
        "gzip output differs between runs"
    );
}
