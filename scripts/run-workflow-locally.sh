#!/usr/bin/env bash
# Runs the release workflow on this machine as Gitea's act_runner would (see the header of
# scripts/run-workflow-locally.py for what runs for real and what is stood in for). Installs
# what the runner needs into target/third-party/venv first: PyYAML (the workflow's YAML) and
# moto (the S3 bucket stand-in), the same packages and versions xtask/third-party/setup.sh uses.
#
#   scripts/run-workflow-locally.sh --skip-job test --var DATASET_HASH=<hash>   # rehearsal, release, publish
#   scripts/run-workflow-locally.sh --help
#
# Needs python3 (>= 3.8, with venv), git, and the PostgreSQL server binaries for the service
# stand-in (scripts/pg-test-cluster.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/venv.sh"
venv=$(ensure_venv "$root/target/third-party/venv")
if ! "$venv/bin/python" -c 'import yaml, moto.server' 2>/dev/null || [ ! -x "$venv/bin/moto_server" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'moto[server]>=5.1,<6' 'PyYAML>=6'
fi
exec "$venv/bin/python" "$root/scripts/run-workflow-locally.py" "$@"
