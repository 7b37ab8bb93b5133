//! The strict SHA256SUMS parser over arbitrary bytes: never panics, and whatever it accepts
//! renders back to text that parses to the same set (names are bare, with no `/`, `..` or CR).
#![no_main]

use aoc_archive::Sha256Sums;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sums) = Sha256Sums::parse(data) {
        for (name, _) in sums.iter() {
            assert!(
                !name.contains('/') && !name.contains("..") && !name.contains('\r'),
                "{name:?}"
            );
        }
        let again = Sha256Sums::parse(sums.render().as_bytes()).expect("rendered sums re-parse");
        assert_eq!(again, sums);
    }
});
