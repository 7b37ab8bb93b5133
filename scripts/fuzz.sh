#!/bin/sh
# Fuzzes the parsers of untrusted input (fuzz/, a cargo-fuzz workspace of its own):
#   archive_reader    ArchiveReader::new(bytes, small Limits) then digest_all
#   sha256sums        Sha256Sums::parse (and render/re-parse of what it accepts)
#   bundle_json       verify_message_bundle / verify_dsse_bundle / parse_statement
#   osv_csaf_mapping  map_document over JSON (hash of the untouched upstream, guard-clean output)
#   canonical_json    RFC 8785 canonical form (a fixed point) and the content hash
#   cosign_keys       PublicKey::from_pem and Signer::from_cosign_pem over text
#   dataset_manifest  Manifest::from_slice (and render/re-parse of what it accepts)
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, every target)
# Seeds: fuzz/seeds/<target>/ (small files kept in git), plus the files of a kit when one is at
# $AOC_FUZZ_KIT (default out/aoc). Crashes land in fuzz/artifacts/<target>/ and fail the run.
#
# cargo-fuzz needs nightly features (-Zsanitizer); on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks
# them. With AOC_FUZZ_SMOKE=1 (CI's short smoke) a machine that cannot fuzz (no cargo-fuzz and no
# way to install it, or a compiler without the address sanitizer) is a loud SKIP, not a failure.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^aoc-fuzz$')
targets=${*:-$all}
kit=${AOC_FUZZ_KIT:-out/aoc}
smoke=${AOC_FUZZ_SMOKE:-0}

skip() {
    echo "fuzz: SKIP: $* -- the fuzz targets did NOT run" >&2
    [ "$smoke" = 1 ] && exit 0
    exit 1
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz || skip "cargo-fuzz is not installed and could not be installed"
fi
export RUSTC_BOOTSTRAP=1
# Can this compiler build with the address sanitizer at all? (Its runtime ships with rust-std on
# x86_64 Linux.) Only that is a reason to skip; a target that does not build is a failure.
probe=$(mktemp -d)
if ! echo 'fn main() {}' | rustc -Zsanitizer=address -o "$probe/probe" - >/dev/null 2>&1; then
    rm -rf "$probe"
    skip "rustc cannot build with -Zsanitizer=address here"
fi
rm -rf "$probe"
# The lock file is committed: a build that would rewrite it fails here, naming the fix, instead
# of leaving the clone modified (a dirty tree fails the release's reproducibility test later).
if ! cargo metadata --locked --offline --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
    echo "fuzz: fuzz/Cargo.lock is out of date: run cargo metadata --offline --manifest-path fuzz/Cargo.toml and commit it" >&2
    exit 1
fi
echo "fuzz: building the targets with the address sanitizer"
cargo fuzz build --fuzz-dir fuzz -O

for target in $targets; do
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus"
    [ -d "fuzz/seeds/$target" ] && cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    if [ -d "$kit" ]; then
        case $target in
            archive_reader) for f in "$kit"/*.tar.gz; do
                    # The runner (MBs) would slow every iteration; the dataset of seed/ is ~250 kB.
                    [ -f "$f" ] && [ "$(wc -c < "$f")" -lt 1000000 ] && cp -n "$f" "$corpus"/ || true
                done ;;
            sha256sums) cp -n "$kit/SHA256SUMS" "$corpus"/ 2>/dev/null || true ;;
            bundle_json) for f in "$kit"/*.json; do cp -n "$f" "$corpus"/; done ;;
            cosign_keys) cp -n "$kit/cosign.pub" "$corpus"/ 2>/dev/null || true ;;
            dataset_manifest) for f in "$kit"/*.manifest.json; do cp -n "$f" "$corpus"/; done ;;
        esac
    fi
    echo "fuzz: $target for ${seconds}s (corpus $corpus)"
    # rss 2 GiB: a cosign key may ask scrypt for up to its 1 GiB bound.
    cargo fuzz run --fuzz-dir fuzz -O "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
echo "fuzz: $(echo "$targets" | wc -w) targets ran ${seconds}s each without a crash"
