#!/bin/sh
# Installs the third-party verifiers that tests/sigstore/third_party.rs runs against our bundles:
#   - @sigstore/verify + @sigstore/bundle (sigstore-js, what npm provenance uses) under target/third-party/node
#   - securesystemslib[crypto] (the DSSE reference implementation's library) and PyNaCl (an independent
#     nacl/secretbox, to cross-check cosign's key format) in target/third-party/venv
# Everything stays inside the workspace's target/ directory; nothing global is touched.
# Usage: sh crates/aoc-sigstore/tests/third_party/setup.sh   (then AOC_THIRD_PARTY=1 cargo test -p aoc-sigstore)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
dest="${AOC_THIRD_PARTY_DIR:-$root/target/third-party}"

command -v node >/dev/null 2>&1 || { echo "setup.sh: node is not installed (need Node >= 20)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm is not installed" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "setup.sh: python3 is not installed" >&2; exit 1; }

mkdir -p "$dest/node"
# Major versions pinned: @sigstore/verify 3.x reads bundle v0.3 through @sigstore/bundle 4.x.
# Idempotent: once the packages load, a second run installs nothing (no registry round trip).
(cd "$dest/node" && [ -f package.json ] || echo '{"private":true}' > package.json)
if ! (cd "$dest/node" && node -e 'require("@sigstore/verify"); require("@sigstore/bundle"); require("@sigstore/core")') 2>/dev/null; then
    npm install --prefix "$dest/node" --no-audit --no-fund --loglevel=error \
        @sigstore/verify@3 @sigstore/bundle@4 @sigstore/core@3
fi

. "$root/scripts/venv.sh"
venv=$(ensure_venv "$dest/venv")
if ! "$venv/bin/python" -c 'import securesystemslib.signer, cryptography, nacl.secret' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'securesystemslib[crypto]>=1,<2' 'pynacl>=1.5,<2'
fi

echo "third-party verifiers installed in $dest"
