//! Pulling members one at a time (`next_entry` + `entry`), as a record reader does: what is left
//! unread is skipped, a directory is never returned, and an archive that ends early fails at the
//! member it ends in.

use aoc_archive::{pack_to_writer, ArchiveError, ArchiveReader, Compression, Entry, Limits};
use std::io::Read;

/// Members are packed in path order (`d.txt` before `dir/`), with directory entries when asked.
fn archive(compression: Compression, include_directories: bool) -> Vec<u8> {
    let entries = vec![
        Entry::bytes("a.txt", b"alpha alpha alpha".to_vec()),
        Entry::bytes("dir/b.txt", vec![b'b'; 3000]),
        Entry::bytes("dir/c.txt", b"".to_vec()),
        Entry::bytes("d.txt", b"delta".to_vec()),
    ];
    let mut out = Vec::new();
    let options = aoc_archive::PackOptions {
        compression,
        source_date_epoch: 0,
        include_directories,
    };
    pack_to_writer(entries, &mut out, &options).unwrap();
    out
}

#[test]
fn members_are_pulled_in_order_and_unread_data_is_skipped() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let bytes = archive(compression, true);
        let mut reader = ArchiveReader::new(&bytes[..], Limits::default()).unwrap();
        let mut seen = Vec::new();
        while let Some(name) = reader.next_entry().unwrap() {
            let mut first = [0u8; 5];
            let n = reader.entry().read(&mut first).unwrap();
            assert_eq!(reader.entry().size() > 0, n > 0, "{name}");
            seen.push((name, first[..n].to_vec()));
        }
        assert_eq!(
            seen,
            vec![
                ("a.txt".to_owned(), b"alpha".to_vec()),
                ("d.txt".to_owned(), b"delta".to_vec()),
                ("dir/b.txt".to_owned(), b"bbbbb".to_vec()),
                ("dir/c.txt".to_owned(), Vec::new()),
            ],
            "{compression:?}"
        );
        assert!(reader.next_entry().unwrap().is_none(), "stays at the end");
    }
}

#[test]
fn a_truncated_archive_fails_at_the_member_it_ends_in() {
    let bytes = archive(Compression::None, false);
    // Cut inside dir/b.txt's data: after a.txt and d.txt (a header and a data block each) and
    // b's header.
    let cut = &bytes[..512 * 5 + 100];
    let mut reader = ArchiveReader::new(cut, Limits::default()).unwrap();
    assert_eq!(reader.next_entry().unwrap().as_deref(), Some("a.txt"));
    assert_eq!(reader.next_entry().unwrap().as_deref(), Some("d.txt"));
    assert_eq!(reader.next_entry().unwrap().as_deref(), Some("dir/b.txt"));
    let mut data = Vec::new();
    let err = reader.entry().read_to_end(&mut data).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(matches!(
        reader.entry_failure(),
        Some(ArchiveError::TruncatedEntry { entry }) if entry == "dir/b.txt"
    ));
    // Skipping instead of reading meets the same end.
    let mut reader = ArchiveReader::new(cut, Limits::default()).unwrap();
    for _ in 0..3 {
        reader.next_entry().unwrap();
    }
    assert!(matches!(
        reader.next_entry(),
        Err(ArchiveError::TruncatedEntry { entry }) if entry == "dir/b.txt"
    ));
}
