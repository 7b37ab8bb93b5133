//! The defensive reader against hostile archives built with the `tar` crate's raw header API: each
//! must be refused with the error that names the problem and the entry, quickly and in bounded
//! memory.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use aoc_archive::{ArchiveError, ArchiveReader, Format, Limits, PathProblem};
use flate2::{Compress, Crc, FlushCompress};

/// A GNU header for `name` (written raw, so `tar` cannot refuse or rewrite it).
fn header(name: &[u8], kind: u8, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    h
}

fn block(mut out: Vec<u8>, h: &tar::Header, data: &[u8]) -> Vec<u8> {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A plain tar of `(name, type, data)` members with the end-of-archive marker.
fn tar_of(members: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data) in members {
        out = block(out, &header(name, *kind, data.len() as u64), data);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn read(bytes: &[u8], limits: Limits) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    ArchiveReader::new(bytes, limits)?.read_all()
}

/// Reads every entry to its end, as a callback that insists on reading would: the error that
/// stopped it, and how many bytes it was handed first.
fn drain(bytes: &[u8], limits: Limits) -> (ArchiveError, u64) {
    let mut seen = 0u64;
    let err = ArchiveReader::new(bytes, limits)
        .unwrap()
        .for_each_entry(|_, r| {
            let mut buf = [0u8; 65536];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    return Ok::<_, ArchiveError>(());
                }
                seen += n as u64;
            }
        })
        .expect_err("the bound was not enforced");
    (err, seen)
}

fn refuse(bytes: &[u8]) -> ArchiveError {
    read(bytes, Limits::default()).expect_err("hostile archive accepted")
}

fn gnu_long_name(name: &[u8], kind: u8, data: &[u8]) -> Vec<u8> {
    let mut long = name.to_vec();
    long.push(0);
    let mut out = block(
        Vec::new(),
        &header(b"././@LongLink", b'L', long.len() as u64),
        &long,
    );
    out = block(out, &header(&name[..100], kind, data.len() as u64), data);
    out.extend_from_slice(&[0; 1024]);
    out
}

#[test]
fn a_well_formed_archive_is_read_in_order() {
    let bytes = tar_of(&[
        (b"./", b'5', b""),
        (b"./a.txt", b'0', b"A"),
        (b"./d/", b'5', b""),
        (b"d/b", b'0', b"B"),
    ]);
    let files = read(&bytes, Limits::default()).unwrap();
    assert_eq!(
        files,
        vec![
            ("a.txt".into(), b"A".to_vec()),
            ("d/b".into(), b"B".to_vec())
        ]
    );
}

#[test]
fn absolute_paths_are_refused() {
    let err = refuse(&tar_of(&[(b"/etc/passwd", b'0', b"root")]));
    assert!(
        matches!(&err, ArchiveError::AbsolutePath { entry } if entry == "/etc/passwd"),
        "{err}"
    );
}

#[test]
fn parent_components_are_refused() {
    for name in [&b"../x"[..], b"a/../../x", b"a/.."] {
        let err = refuse(&tar_of(&[(name, b'0', b"x")]));
        assert!(
            matches!(&err, ArchiveError::ParentComponent { .. }),
            "{err}"
        );
    }
}

#[test]
fn symlinks_hardlinks_devices_and_fifos_are_refused() {
    let err = refuse(&tar_of(&[(b"link", b'2', b"")]));
    assert!(
        matches!(&err, ArchiveError::Symlink { entry } if entry == "link"),
        "{err}"
    );
    let err = refuse(&tar_of(&[(b"a", b'0', b"x"), (b"hard", b'1', b"")]));
    assert!(
        matches!(&err, ArchiveError::Hardlink { entry } if entry == "hard"),
        "{err}"
    );
    for kind in [b'3', b'4'] {
        let err = refuse(&tar_of(&[(b"dev/null", kind, b"")]));
        assert!(
            matches!(&err, ArchiveError::Device { entry } if entry == "dev/null"),
            "{err}"
        );
    }
    let err = refuse(&tar_of(&[(b"pipe", b'6', b"")]));
    assert!(matches!(&err, ArchiveError::Fifo { .. }), "{err}");
    for kind in [b'7', b'S', b'V', b'M', b'Z'] {
        let err = refuse(&tar_of(&[(b"odd", kind, b"")]));
        assert!(
            matches!(&err, ArchiveError::UnsupportedType { type_flag, .. } if *type_flag == kind as char),
            "{err}"
        );
    }
}

#[test]
fn duplicate_names_are_refused_also_after_normalisation() {
    let err = refuse(&tar_of(&[(b"a.txt", b'0', b"1"), (b"a.txt", b'0', b"2")]));
    assert!(
        matches!(&err, ArchiveError::DuplicateName { entry } if entry == "a.txt"),
        "{err}"
    );
    let err = refuse(&tar_of(&[(b"a.txt", b'0', b"1"), (b"./a.txt", b'0', b"2")]));
    assert!(matches!(&err, ArchiveError::DuplicateName { .. }), "{err}");
    let err = refuse(&tar_of(&[
        (b"d/", b'5', b""),
        (b"d", b'0', b"file over dir"),
    ]));
    assert!(matches!(&err, ArchiveError::DuplicateName { .. }), "{err}");
}

#[test]
fn non_utf8_names_are_refused() {
    let err = refuse(&tar_of(&[(b"caf\xe9.txt", b'0', b"x")]));
    assert!(
        matches!(&err, ArchiveError::NonUtf8Name { entry } if entry.starts_with("caf")),
        "{err}"
    );
}

#[test]
fn overlong_names_are_refused() {
    let component = vec![b'x'; 300];
    let err = refuse(&gnu_long_name(&component, b'0', b"x"));
    assert!(
        matches!(
            &err,
            ArchiveError::OverlongName {
                problem: PathProblem::ComponentTooLong { bytes: 300 },
                ..
            }
        ),
        "{err}"
    );
    let deep = ["dir"; 300].join("/").into_bytes();
    let err = refuse(&gnu_long_name(&deep, b'0', b"x"));
    assert!(
        matches!(
            &err,
            ArchiveError::OverlongName {
                problem: PathProblem::PathTooLong { .. },
                ..
            }
        ),
        "{err}"
    );
    // A long-name header declaring a gigabyte is refused before anything is read or allocated.
    let mut bytes = block(Vec::new(), &header(b"././@LongLink", b'L', 1 << 30), b"");
    bytes.extend_from_slice(&[0; 1024]);
    let err = refuse(&bytes);
    assert!(matches!(&err, ArchiveError::OverlongName { .. }), "{err}");
    // A legitimate 200-byte name is fine.
    let ok = ["abcdefghi"; 20].join("/").into_bytes();
    let files = read(&gnu_long_name(&ok, b'0', b"x"), Limits::default()).unwrap();
    assert_eq!(files[0].0.len(), 199);
}

#[test]
fn pax_path_overrides_are_checked_too() {
    let record = b"16 path=../evil\n";
    let mut bytes = block(
        Vec::new(),
        &header(b"PaxHeader/x", b'x', record.len() as u64),
        record,
    );
    bytes = block(bytes, &header(b"innocent", b'0', 1), b"x");
    bytes.extend_from_slice(&[0; 1024]);
    let err = refuse(&bytes);
    assert!(
        matches!(&err, ArchiveError::ParentComponent { entry } if entry == "../evil"),
        "{err}"
    );
}

#[test]
fn huge_declared_sizes_are_refused_before_reading() {
    // 1 TiB declared (GNU base-256 size field), no data behind it.
    let mut bytes = block(Vec::new(), &header(b"huge", b'0', 1 << 40), b"");
    bytes.extend_from_slice(&[0; 1024]);
    let err = refuse(&bytes);
    assert!(
        matches!(&err, ArchiveError::EntryTooLarge { entry, size, .. } if entry == "huge" && *size == 1 << 40),
        "{err}"
    );
    let limits = Limits {
        max_entry_bytes: u64::MAX,
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = read(&bytes, limits).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TotalSizeExceeded { limit } if limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn the_per_entry_limit_is_exact() {
    let bytes = tar_of(&[(b"a", b'0', &[7u8; 1000])]);
    let limits = |max| Limits {
        max_entry_bytes: max,
        ..Limits::default()
    };
    assert!(read(&bytes, limits(1000)).is_ok());
    let err = read(&bytes, limits(999)).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::EntryTooLarge {
                size: 1000,
                limit: 999,
                ..
            }
        ),
        "{err}"
    );
}

/// A single gzip member holding a tar header that declares 2 GiB, followed by 2 GiB of zeros,
/// about 2 MB compressed: built from independently deflated pieces (as our parallel gzip writes),
/// so making it costs milliseconds.
fn gzip_bomb(zero_mib: u64) -> Vec<u8> {
    let tar_header = header(b"zeros.bin", b'0', zero_mib << 20);
    let piece = |data: &[u8], flush| {
        let mut c = Compress::new(flate2::Compression::new(9), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, flush).unwrap();
        assert_eq!(c.total_in(), data.len() as u64);
        out
    };
    let zeros = vec![0u8; 1 << 20];
    let mut crc = Crc::new();
    crc.update(tar_header.as_bytes());
    let mut zeros_crc = Crc::new();
    zeros_crc.update(&zeros);
    let zero_piece = piece(&zeros, FlushCompress::Sync);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(piece(tar_header.as_bytes(), FlushCompress::Sync));
    for _ in 0..zero_mib {
        out.extend_from_slice(&zero_piece);
        crc.combine(&zeros_crc);
    }
    // End-of-archive marker in the final deflate block.
    out.extend(piece(&[0u8; 1024], FlushCompress::Finish));
    crc.update(&[0u8; 1024]);
    let total = 512 + (zero_mib << 20) + 1024;
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out
}

#[test]
fn the_bomb_construction_is_a_valid_gzip_stream() {
    // Same recipe at 4 MiB: gzip agrees it is valid, and it reads fine under generous limits.
    let small = gzip_bomb(4);
    let mut child = Command::new("gzip")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&small).unwrap();
    assert!(child.wait().unwrap().success());
    let digests = ArchiveReader::new(&small[..], Limits::default())
        .unwrap()
        .digest_all()
        .unwrap();
    assert_eq!(digests[0].size, 4 << 20);
}

#[test]
fn a_gzip_bomb_stops_at_the_total_bound_quickly() {
    let bomb = gzip_bomb(2048);
    assert!(bomb.len() < 4_000_000, "bomb is {} bytes", bomb.len());
    let limits = Limits {
        max_entry_bytes: 4 << 30,
        max_total_bytes: 16 << 20,
        ..Limits::default()
    };
    let start = Instant::now();
    let reader = ArchiveReader::new(&bomb[..], limits).unwrap();
    assert_eq!(reader.format(), Format::Gzip);
    // The header declares 2 GiB, past what is left of the bound: refused before decompressing it.
    let err = reader.digest_all().unwrap_err();
    assert!(
        matches!(err, ArchiveError::TotalSizeExceeded { limit } if limit == 16 << 20),
        "{err}"
    );

    // Even when the callback insists on reading, decompression stops at the bound.
    let limits = Limits {
        max_entry_bytes: 4 << 30,
        max_total_bytes: 4 << 30,
        ..Limits::default()
    };
    let (err, seen) = drain(
        &bomb,
        Limits {
            max_total_bytes: 24 << 20,
            ..limits
        },
    );
    assert!(
        matches!(err, ArchiveError::TotalSizeExceeded { .. }),
        "{err}"
    );
    assert!(seen <= 24 << 20, "read {seen} bytes past the bound");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_zstd_bomb_stops_at_the_total_bound() {
    // Concatenated zstd frames: one with the tar header, then 2048 frames of 1 MiB of zeros.
    let mut bomb = zstd::encode_all(&header(b"z", b'0', 2048 << 20).as_bytes()[..], 3).unwrap();
    let frame = zstd::encode_all(&vec![0u8; 1 << 20][..], 3).unwrap();
    for _ in 0..2048 {
        bomb.extend_from_slice(&frame);
    }
    let limits = Limits {
        max_entry_bytes: u64::MAX,
        max_total_bytes: 8 << 20,
        ..Limits::default()
    };
    let reader = ArchiveReader::new(&bomb[..], limits).unwrap();
    assert_eq!(reader.format(), Format::Zstd);
    let err = reader.read_all().unwrap_err();
    assert!(
        matches!(err, ArchiveError::TotalSizeExceeded { .. }),
        "{err}"
    );
}

#[test]
fn truncated_archives_are_refused() {
    let whole = tar_of(&[(b"a", b'0', &[1u8; 2000])]);
    let err = refuse(&whole[..1500]);
    assert!(
        matches!(&err, ArchiveError::TruncatedEntry { entry } if entry == "a"),
        "{err}"
    );
    let err = refuse(&whole[..whole.len() - 1024]);
    assert!(matches!(err, ArchiveError::MissingEndMarker), "{err}");
    let gz = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&whole).unwrap();
        enc.finish().unwrap()
    };
    assert!(read(&gz, Limits::default()).is_ok());
    assert!(read(&gz[..gz.len() - 4], Limits::default()).is_err());
}

#[test]
fn corrupt_headers_unknown_formats_and_too_many_entries_are_refused() {
    let mut bytes = tar_of(&[(b"a", b'0', b"x")]);
    bytes[0] = b'b';
    let err = refuse(&bytes);
    assert!(
        matches!(err, ArchiveError::CorruptHeader { offset: 0, .. }),
        "{err}"
    );
    assert!(matches!(
        refuse(b"PK\x03\x04 a zip file"),
        ArchiveError::UnknownFormat
    ));
    assert!(matches!(refuse(b""), ArchiveError::UnknownFormat));
    let three = tar_of(&[(b"a", b'0', b""), (b"b", b'0', b""), (b"c", b'0', b"")]);
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert!(matches!(
        read(&three, limits).unwrap_err(),
        ArchiveError::TooManyEntries { limit: 2 }
    ));
}

#[test]
fn archives_made_by_gnu_tar_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a.json"), "{}\n").unwrap();
    std::fs::write(src.join("b.txt"), "b\n").unwrap();
    let out = tmp.path().join("gnu.tar.gz");
    let status = Command::new("tar")
        .args(["--sort=name", "--format=pax", "-czf"])
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let files = ArchiveReader::open(&out, Limits::default())
        .unwrap()
        .read_all()
        .unwrap();
    assert_eq!(
        files,
        vec![
            ("b.txt".into(), b"b\n".to_vec()),
            ("sub/a.json".into(), b"{}\n".to_vec())
        ]
    );
}

/// One gzip member as our parallel writer frames it (FEXTRA subfield `AK` = total member size),
/// with `size_delta` added to the recorded size to make it lie.
fn sized_member(data: &[u8], size_delta: i64) -> Vec<u8> {
    let mut c = Compress::new(flate2::Compression::new(9), false);
    let mut body = Vec::with_capacity(data.len() / 2 + 1024);
    c.compress_vec(data, &mut body, FlushCompress::Finish)
        .unwrap();
    assert_eq!(c.total_in(), data.len() as u64);
    let mut out = vec![
        0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, b'A', b'K', 4, 0, 0, 0, 0, 0,
    ];
    out.extend(body);
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let size = (out.len() as i64 + size_delta) as u32;
    out[16..20].copy_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn sized_gzip_members_that_lie_or_inflate_past_the_member_bound_are_refused() {
    let tar = tar_of(&[(b"a", b'0', &[7u8; 3000]), (b"b", b'0', &[9u8; 100])]);
    let (first, second) = tar.split_at(2048);
    let good: Vec<u8> = [sized_member(first, 0), sized_member(second, 0)].concat();
    let files = read(&good, Limits::default()).unwrap();
    assert_eq!(files.len(), 2);
    for delta in [-1, 1, 64] {
        let lying: Vec<u8> = [sized_member(first, delta), sized_member(second, 0)].concat();
        assert!(
            matches!(refuse(&lying), ArchiveError::Io(_)),
            "delta {delta}"
        );
    }

    // A member of 32 MiB of zeros: refused as hostile by the member bound (16 MiB), even though
    // the total bound would allow it.
    let head = tar_of(&[]);
    let mut bomb = sized_member(header(b"z", b'0', 32 << 20).as_bytes(), 0);
    bomb.extend(sized_member(&vec![0u8; 32 << 20], 0));
    bomb.extend(sized_member(&head, 0));
    let err = read(
        &bomb,
        Limits {
            max_entry_bytes: 1 << 30,
            max_total_bytes: 1 << 30,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Io(e) if e.to_string().contains("decompression bomb")),
        "{err}"
    );
}

#[test]
fn the_total_bound_holds_for_parallel_gzip_too() {
    let zeros = vec![0u8; 12 << 20];
    let mut enc = aoc_archive::ParallelGzEncoder::new(Vec::new()).unwrap();
    enc.write_all(&tar_of(&[(b"z", b'0', &zeros)])).unwrap();
    let gz = enc.finish().unwrap();
    let limits = Limits {
        max_entry_bytes: u64::MAX,
        max_total_bytes: 4 << 20,
        ..Limits::default()
    };
    let (err, seen) = drain(&gz, limits);
    assert!(
        matches!(err, ArchiveError::TotalSizeExceeded { .. }),
        "{err}"
    );
    assert_eq!(seen, 0, "refused from the declared size before reading");
    let files = read(&gz, Limits::default()).unwrap();
    assert_eq!(files[0].1.len(), 12 << 20);
}
