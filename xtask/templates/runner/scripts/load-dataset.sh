#!/bin/sh
# Loads a released AOC dataset (or any backfill input) into a raw store.
# usage: load-dataset.sh DATASET STORE [stella aoc backfill options...]
#   DATASET  aoc-dataset-<hash>.tar.gz (or OSV/CSAF files, NDJSON revision feeds)
#   STORE    sqlite://PATH | postgres://USER@HOST:PORT/DB
# Safe to re-run: existing documents are no-ops; an interrupted run resumes from its checkpoint.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
stella=${STELLA:-"$here/bin/stella"}
if [ "$#" -lt 2 ]; then
    echo "usage: $0 DATASET STORE [stella aoc backfill options...]" >&2
    exit 2
fi
dataset=$1
store=$2
shift 2
exec "$stella" aoc backfill --from "$dataset" --store "$store" "$@"
