#!/bin/sh
# Installs the runner's pinned cross toolchain (cargo-zigbuild and zig, from PyPI; versions and
# wheel digests in scripts/zigbuild-requirements.txt) into DIR, once, and prints the
# cargo-zigbuild binary's path on stdout. DIR defaults to the release build's target directory's
# zigbuild/ (target/aoc-release/zigbuild, or under CARGO_TARGET_DIR), where
# `cargo xtask aoc-release` installs it before building the runner; a second run only checks
# the installed versions.
#   sh scripts/install-zigbuild.sh [DIR]   (needs python3 >= 3.8 with venv, and PyPI on first use)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
requirements="$root/scripts/zigbuild-requirements.txt"
. "$root/scripts/venv.sh"
venv=${1:-${CARGO_TARGET_DIR:-$root/target}/aoc-release/zigbuild}
mkdir -p "$venv"
venv=$(cd "$venv" && pwd -P)
want_zigbuild=$(sed -n 's/^cargo-zigbuild==\([^ ]*\).*/\1/p' "$requirements")
want_zig=$(sed -n 's/^ziglang==\([^ ]*\).*/\1/p' "$requirements")

installed() {
    [ -x "$venv/bin/cargo-zigbuild" ] \
        && [ "$("$venv/bin/cargo-zigbuild" --version 2>/dev/null)" = "cargo-zigbuild $want_zigbuild" ] \
        && [ "$("$venv/bin/python" -m ziglang version 2>/dev/null)" = "$want_zig" ]
}

if ! installed; then
    echo "install-zigbuild: installing cargo-zigbuild $want_zigbuild and zig $want_zig into $venv" >&2
    rm -rf "$venv"
    venv=$(ensure_venv "$venv")
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --require-hashes -r "$requirements" >&2
    installed || { echo "install-zigbuild: the installed versions do not answer as pinned" >&2; exit 1; }
fi
echo "$venv/bin/cargo-zigbuild"
