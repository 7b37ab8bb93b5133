//! Puts the runner's dependency list into `OUT_DIR/dep-v0.bin`, which `main.rs` embeds as the
//! `.dep-v0` linker section (`cargo auditable`'s format: zlib-compressed JSON) so binary scanners
//! such as syft find the crates `stella` is built from.
//!
//! `cargo xtask aoc-release` computes the list from its SBOM graph (exactly the crates the SPDX
//! SBOM lists) and passes the file's path in `AOC_DEP_V0`. Other builds (`cargo build`, tests)
//! embed an empty list, `{"packages":[]}`: they claim nothing rather than something unchecked.

use std::path::PathBuf;

const ENV: &str = "AOC_DEP_V0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={ENV}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bytes = match std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("{ENV}={}: {e}", path.display()));
            // zlib: CMF 0x78 (deflate, 32 KiB window) and a header checksum divisible by 31.
            let is_zlib = bytes.len() > 6
                && bytes[0] == 0x78
                && (u16::from(bytes[0]) << 8 | u16::from(bytes[1])) % 31 == 0;
            assert!(is_zlib, "{ENV}={} is not zlib data", path.display());
            bytes
        }
        None => zlib_stored(br#"{"packages":[]}"#),
    };
    std::fs::write(out.join("dep-v0.bin"), bytes).expect("writing OUT_DIR/dep-v0.bin");
}

/// `data` as a zlib stream of one stored (uncompressed) deflate block: valid zlib without a
/// compressor, for the small placeholder.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("placeholder under 64 KiB");
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}
