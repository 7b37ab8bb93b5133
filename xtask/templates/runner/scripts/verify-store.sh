#!/bin/sh
# Runs the AOC guard over a raw store; read-only.
# usage: verify-store.sh STORE [stella aoc verify options...]
#   STORE  sqlite://PATH | postgres://USER@HOST:PORT/DB
# Exit codes are stella's: 0 no violations, 1 violations, 2 configuration/connection/input error
# or a store that holds no document (--allow-empty accepts one).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
stella=${STELLA:-"$here/bin/stella"}
if [ "$#" -lt 1 ]; then
    echo "usage: $0 STORE [stella aoc verify options...]" >&2
    exit 2
fi
store=$1
shift
exec "$stella" aoc verify --store "$store" "$@"
