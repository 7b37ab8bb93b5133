#!/usr/bin/env bash
# Installs the Rust toolchain rust-toolchain.toml pins (with rustfmt and clippy), and rustup
# itself when the machine has none, for CI runners that start from a stock image. A toolchain
# that is already installed is left alone: nothing is downloaded again.
#
#   scripts/install-rust-toolchain.sh
#
# Under GitHub Actions syntax runners (Gitea act_runner), ~/.cargo/bin is added to the PATH of
# the job's later steps through $GITHUB_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

pinned=$(sed -n 's/^channel *= *"\(.*\)"$/\1/p' rust-toolchain.toml)
[ -n "$pinned" ] || { echo "install-rust-toolchain: no channel in rust-toolchain.toml" >&2; exit 1; }

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v rustup >/dev/null 2>&1; then
    if [ ! -x "$cargo_bin/rustup" ]; then
        echo "install-rust-toolchain: installing rustup (no default toolchain)" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | sh -s -- -y --profile minimal --default-toolchain none --no-modify-path
    fi
    export PATH="$cargo_bin:$PATH"
    if [ -n "${GITHUB_PATH:-}" ]; then
        echo "$cargo_bin" >>"$GITHUB_PATH"
    fi
fi

if rustup toolchain list | grep -q "^$pinned-"; then
    echo "install-rust-toolchain: $pinned is already installed" >&2
else
    rustup toolchain install "$pinned" --profile minimal --component rustfmt,clippy
fi
# In the repository, rustup picks the pinned toolchain from rust-toolchain.toml.
rustc --version
cargo --version
