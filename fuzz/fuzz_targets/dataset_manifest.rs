//! The dataset manifest's strict reader over arbitrary bytes: `Manifest::from_slice` returns a
//! manifest or an error, never panics, and a manifest it accepts renders to bytes it reads back
//! to the same manifest.
#![no_main]

use aoc_dataset::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_slice(data) {
        let again =
            Manifest::from_slice(&manifest.to_bytes()).expect("rendered manifest re-parses");
        assert_eq!(again, manifest);
    }
});
