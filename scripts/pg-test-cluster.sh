#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests (docs/ARCHITECTURE.md §12).
#
#   scripts/pg-test-cluster.sh start   # initdb + start on a free loopback port; prints `export AOC_TEST_PG=...`
#   scripts/pg-test-cluster.sh env     # prints `export AOC_TEST_PG=...` for the running cluster
#   scripts/pg-test-cluster.sh url     # prints the bare URL
#   scripts/pg-test-cluster.sh stop    # immediate stop, then removes the cluster directory
#
# Typical use:  eval "$(scripts/pg-test-cluster.sh start)"; cargo test -p aoc-store; scripts/pg-test-cluster.sh stop
#
# initdb and postgres refuse to run as root, so as root everything runs as the `postgres` user
# (runuser) in a directory that user owns; as any other user it runs as that user. Durability is
# off (fsync=off): the cluster exists for tests and is thrown away.
#
# Environment: AOC_PG_DIR (default /tmp/aoc-pg-test), AOC_PG_PORT (default: first free port from
# 55432), PG_BIN (default: newest /usr/lib/postgresql/*/bin, else `pg_config --bindir`).
set -euo pipefail

DIR="${AOC_PG_DIR:-/tmp/aoc-pg-test}"

die() { echo "pg-test-cluster: $*" >&2; exit 1; }

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$newest" ]; then echo "$newest"; return; fi
    if command -v pg_config >/dev/null 2>&1; then pg_config --bindir; return; fi
    die "no PostgreSQL server binaries found: install the Debian package \`postgresql\` or set PG_BIN"
}

# Runs a server binary as the cluster owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a \`postgres\` user (initdb refuses root)"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p="${AOC_PG_PORT:-55432}"
    while port_in_use "$p"; do
        p=$((p + 1))
        [ "$p" -lt 65535 ] || die "no free port found"
    done
    echo "$p"
}

url() {
    [ -f "$DIR/aoc-port" ] || die "no cluster in $DIR: run \`$0 start\` first"
    echo "postgres://postgres@127.0.0.1:$(cat "$DIR/aoc-port")/postgres"
}

start() {
    local bin port
    bin="$(pg_bin)"
    if [ -f "$DIR/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
        echo "pg-test-cluster: already running in $DIR" >&2
        echo "export AOC_TEST_PG=$(url)"
        return
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR"; fi
    as_owner "$bin/initdb" -D "$DIR" -A trust -U postgres -E UTF8 --no-locale >"$DIR.initdb.log" 2>&1 \
        || { cat "$DIR.initdb.log" >&2; die "initdb failed"; }
    port="$(free_port)"
    as_owner "$bin/pg_ctl" -D "$DIR" -l "$DIR/server.log" \
        -o "-p $port -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        -w start >&2 || { cat "$DIR/server.log" >&2; die "pg_ctl start failed"; }
    echo "$port" | as_owner tee "$DIR/aoc-port" >/dev/null
    echo "pg-test-cluster: PostgreSQL ($bin) listening on 127.0.0.1:$port, data in $DIR" >&2
    echo "export AOC_TEST_PG=$(url)"
}

stop() {
    local bin
    bin="$(pg_bin)"
    if [ -f "$DIR/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$DIR" -m immediate -w stop >&2 || true
    fi
    rm -rf "$DIR" "$DIR.initdb.log"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export AOC_TEST_PG=$(url)" ;;
    url) url ;;
    *) echo "usage: $0 start|stop|env|url" >&2; exit 2 ;;
esac
