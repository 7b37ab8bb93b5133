#!/usr/bin/env bash
# The release job's first step: refuses, in seconds and before cargo builds anything, a release
# that could only fail later or produce a kit nobody can verify. Every missing piece is named on
# its own line; exit 1 when anything is missing, 0 when the release may start.
#
#   scripts/release-preflight.sh [--rehearsal-dir DIR]
#
# Reads the release job's environment:
#   AOC_RELEASE_PUBLIC_KEY   the committed production public key (default tools/cosign/cosign.pub)
#   COSIGN_KEY_B64 | COSIGN_KEY, COSIGN_PASSWORD   the signing key (secrets)
#   DATASET_HASH             the pinned dataset (repository variable)
# Checks: the public key file exists, is a P-256 public key and is not the public dev key; a
# signing key secret is set; DATASET_HASH is set, is not the dev placeholder and is a 64-digit
# hex hash; with --rehearsal-dir, the rehearsal handed over a report for exactly that hash; and
# the signing key decrypts with COSIGN_PASSWORD and is the committed public key
# (scripts/cosign_key_check.py, on `cryptography` and PyNaCl installed, pinned by hash, from
# scripts/cosign_key_check.requirements.txt into target/third-party/keycheck; AOC_KEYCHECK_LIBS
# names another directory). `cargo xtask aoc-release` repeats the key and DATASET_HASH checks
# before its own build (AOC_REQUIRE_PROD_KEY=1), so a runner without python3 or without access
# to the package index still refuses a mismatched key, only later.
set -uo pipefail
cd "$(dirname "$0")/.."

rehearsal_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rehearsal-dir) rehearsal_dir="${2:?--rehearsal-dir needs a directory}"; shift 2 ;;
        *) echo "usage: $0 [--rehearsal-dir DIR]" >&2; exit 2 ;;
    esac
done

public="${AOC_RELEASE_PUBLIC_KEY:-tools/cosign/cosign.pub}"
dev_public="tools/cosign/cosign.dev.pub"
placeholder="dev-rehearsal-placeholder"
refusals=0
refuse() {
    echo "release-preflight: REFUSED: $*" >&2
    refusals=$((refusals + 1))
}

have_public=0
if [ ! -f "$public" ]; then
    refuse "the production public key $public is missing: commit the public half of the production signing key there (cosign public-key --key ...)"
elif ! grep -q -- "-----BEGIN PUBLIC KEY-----" "$public"; then
    refuse "the production public key $public is not a PEM public key"
elif [ -f "$dev_public" ] && cmp -s "$public" "$dev_public"; then
    refuse "the production public key $public is the public dev key: commit the production public key there"
else
    have_public=1
fi

have_secret=0
if [ -z "${COSIGN_KEY_B64:-}" ] && [ -z "${COSIGN_KEY:-}" ]; then
    refuse "the signing key secret is missing: secrets.COSIGN_KEY_B64 is empty (base64 of the production cosign key; with secrets.COSIGN_PASSWORD)"
else
    have_secret=1
fi

hash="${DATASET_HASH:-}"
if [ -z "$hash" ]; then
    refuse "DATASET_HASH is missing: set the repository variable vars.DATASET_HASH to the hash the rehearsal printed (cargo xtask aoc-rehearsal)"
elif [ "$hash" = "$placeholder" ]; then
    refuse "DATASET_HASH is the placeholder $placeholder, which pins nothing: set vars.DATASET_HASH to the hash the rehearsal printed"
elif ! [[ "$hash" =~ ^[0-9a-f]{64}$ ]]; then
    refuse "DATASET_HASH=$hash is not a dataset hash (64 lowercase hex digits, as the rehearsal printed it)"
elif [ -n "$rehearsal_dir" ] && [ ! -f "$rehearsal_dir/rehearsal-$hash.json" ]; then
    found=$(cd "$rehearsal_dir" 2>/dev/null && ls rehearsal-*.json 2>/dev/null | tr '\n' ' ')
    refuse "the rehearsal did not rehearse DATASET_HASH=$hash: $rehearsal_dir holds ${found:-no report} (update vars.DATASET_HASH, or the seed changed since it was pinned)"
fi

# The key check's libraries: exactly the pinned wheels, installed once and reused while the pins
# are unchanged (scripts/install-keycheck-libs.sh). Python runs with -S -s, so nothing from the
# system's or the user's site-packages is imported.
keycheck_libs() {
    sh scripts/install-keycheck-libs.sh "${AOC_KEYCHECK_LIBS:-target/third-party/keycheck}"
}

if [ "$have_public" = 1 ] && [ "$have_secret" = 1 ]; then
    if libs=$(keycheck_libs); then
        dev=()
        [ -f "$dev_public" ] && dev=("$dev_public")
        if ! key_id=$(PYTHONPATH="$libs" python3 -S -s scripts/cosign_key_check.py "$public" ${dev[@]+"${dev[@]}"}); then
            refuse "the signing key does not match $public (see the line above)"
        fi
    else
        echo "release-preflight: WARNING: python3 with the pinned cryptography and PyNaCl is not available here (scripts/cosign_key_check.requirements.txt): the signing key is matched with $public by cargo xtask aoc-release, before its build" >&2
    fi
fi

if [ "$refusals" -gt 0 ]; then
    echo "release-preflight: $refusals problem(s): nothing was built" >&2
    exit 1
fi
echo "release-preflight: ok: signing key ${key_id:-(not matched here)} is $public; DATASET_HASH=$hash${rehearsal_dir:+, rehearsed}" >&2
