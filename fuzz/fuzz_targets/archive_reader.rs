//! The defensive archive reader over arbitrary bytes (tar, gzip or zstd by magic) with small
//! limits: it must return `Ok` or an `ArchiveError`, never panic, hang or allocate past the bound.
#![no_main]

use aoc_archive::{ArchiveReader, Limits};
use libfuzzer_sys::fuzz_target;

/// Small enough that a bomb stops within milliseconds, big enough for real multi-member archives.
const LIMITS: Limits = Limits {
    max_entry_bytes: 1 << 20,
    max_total_bytes: 4 << 20,
    max_entries: 64,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = ArchiveReader::new(data, LIMITS) {
        if let Ok(members) = reader.digest_all() {
            // Whatever is accepted obeys the limits and names only canonical relative paths.
            assert!(members.len() as u64 <= LIMITS.max_entries);
            let mut total = 0u64;
            for m in &members {
                assert!(m.size <= LIMITS.max_entry_bytes);
                total += m.size;
                assert!(
                    !m.path.is_empty() && !m.path.starts_with('/'),
                    "{:?}",
                    m.path
                );
                assert!(
                    m.path
                        .split('/')
                        .all(|c| !c.is_empty() && c != ".." && c != "."),
                    "{:?}",
                    m.path
                );
            }
            assert!(total <= LIMITS.max_total_bytes);
        }
    }
});
