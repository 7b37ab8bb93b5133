#!/bin/sh
# Installs the release preflight's key-check libraries (`cryptography`, PyNaCl: exactly the
# wheels pinned by hash in scripts/cosign_key_check.requirements.txt, binary wheels only) into
# DIR (default target/third-party/keycheck), unless DIR already holds exactly those pins, and
# prints DIR. No venv: creating one costs more than the check. Used by release-preflight.sh, and
# by xtask/third-party/setup.sh so that the local-workflow tests' preflight finds them installed.
#   sh scripts/install-keycheck-libs.sh [DIR]      (from the workspace root; needs python3 and pip)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
requirements="$root/scripts/cosign_key_check.requirements.txt"
libs=${1:-target/third-party/keycheck}
command -v python3 >/dev/null 2>&1 || { echo "install-keycheck-libs: no python3" >&2; exit 1; }
if ! cmp -s "$requirements" "$libs/installed-requirements.txt" \
    || ! PYTHONPATH="$libs" python3 -S -s -c 'import nacl.secret, cryptography' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore \
        --require-hashes --only-binary :all: --upgrade --target "$libs" -r "$requirements" >&2
    cp "$requirements" "$libs/installed-requirements.txt"
fi
echo "$libs"
