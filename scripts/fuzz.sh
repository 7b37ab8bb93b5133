#!/bin/sh
# Fuzzes the kit's parsers of untrusted input (fuzz/, a cargo-fuzz workspace of its own):
#   archive_reader  ArchiveReader::new(bytes, small Limits) then digest_all
#   sha256sums      Sha256Sums::parse (and render/re-parse of what it accepts)
#   bundle_json     verify_message_bundle / verify_dsse_bundle / parse_statement
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, all three targets)
# Seeds: fuzz/seeds/<target>/ (small files kept in git), plus the files of a kit when one is at
# $AOC_FUZZ_KIT (default out/aoc). Crashes land in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly features (-Zsanitizer); on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks
# them. Not part of `cargo test` or CI's default run: it takes minutes per target by design.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-archive_reader sha256sums bundle_json}
kit=${AOC_FUZZ_KIT:-out/aoc}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

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
        esac
    fi
    echo "fuzz: $target for ${seconds}s (corpus $corpus)"
    cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1
done
