#!/bin/sh
# RUSTC_WORKSPACE_WRAPPER of the runner's release build (xtask/src/kit/runner.rs): cargo runs it
# as `rustc-workspace-remap.sh RUSTC ARGS...` for the workspace's own crates only, and it adds
# AOC_REMAP_WORKSPACE (`<workspace path>=/aoc-backfill`) as a path remap. The dependencies'
# flags then do not depend on where the clone is, so clones that share a target directory share
# their release build, and every clone's binary names the same paths.
set -eu
rustc=$1
shift
exec "$rustc" "$@" "--remap-path-prefix=${AOC_REMAP_WORKSPACE:?set by cargo xtask aoc-release}"
