#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the test suite needs when a CI image lacks them: the
# PostgreSQL server (scripts/pg-test-cluster.sh) and Python's venv module (the third-party
# verifiers' virtualenv). Node.js >= 20 with npm is checked, not installed: runner images for
# GitHub Actions syntax carry it for JavaScript actions. Nothing is installed when everything is
# present.
#
#   scripts/ci-system-packages.sh
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)

if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "ci-system-packages: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "ci-system-packages: PostgreSQL server and python3-venv are present" >&2
fi

node_major=$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\).*/\1/p')
if [ -z "$node_major" ] || [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
    echo "ci-system-packages: WARNING: Node.js >= 20 with npm is needed by the third-party verifiers (found ${node_major:-none})" >&2
fi
