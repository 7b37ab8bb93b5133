#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests (docs/ARCHITECTURE.md §12).
#
#   scripts/pg-test-cluster.sh start   # initdb + start on a free loopback port; prints `export AOC_TEST_PG=...`
#                                      # and `export AOC_TEST_PG_ROOTCERT=...` (see TLS below)
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
# TLS: the server also accepts TLS (`ssl=on`), with a certificate for localhost and 127.0.0.1
# from a throwaway CA made here with openssl (when openssl is on PATH); the CA's certificate is
# AOC_TEST_PG_ROOTCERT, for `sslmode=verify-full&sslrootcert=...` (plain connections still work).
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
    local p="${1:-${AOC_PG_PORT:-55432}}"
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
    local ssl=""
    if make_certificates; then ssl="-c ssl=on"; fi
    # A port found free can be taken by another cluster starting at the same moment (tests start
    # several): then the next free one, a few times, before giving up.
    local attempt=1 next="${AOC_PG_PORT:-55432}"
    while :; do
        port="$(free_port "$next")"
        rm -f "$DIR/server.log"
        if as_owner "$bin/pg_ctl" -D "$DIR" -l "$DIR/server.log" \
            -o "-p $port -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 $ssl" \
            -w start >&2; then
            break
        fi
        if [ "$attempt" -lt 8 ] && grep -q "could not bind\|could not create any TCP/IP sockets" "$DIR/server.log"; then
            echo "pg-test-cluster: port $port was taken meanwhile; trying another" >&2
            attempt=$((attempt + 1))
            next=$((port + 1 + RANDOM % 16))
            continue
        fi
        cat "$DIR/server.log" >&2
        die "pg_ctl start failed"
    done
    echo "$port" | as_owner tee "$DIR/aoc-port" >/dev/null
    echo "pg-test-cluster: PostgreSQL ($bin) listening on 127.0.0.1:$port, data in $DIR" >&2
    echo "export AOC_TEST_PG=$(url)"
    if [ -n "$ssl" ]; then echo "export AOC_TEST_PG_ROOTCERT=$(rootcert)"; fi
}

# The CA's certificate, beside the (owner-only) data directory so that any test can read it.
rootcert() { echo "$DIR.ca.pem"; }

# A throwaway CA and a server certificate for localhost/127.0.0.1 in the data directory
# (server.crt, server.key: PostgreSQL's defaults); false when openssl is missing.
make_certificates() {
    command -v openssl >/dev/null 2>&1 || {
        echo "pg-test-cluster: no openssl: the server runs without TLS" >&2
        return 1
    }
    local tmp
    tmp="$(mktemp -d)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=aoc test CA" -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -CAcreateserial -days 30 -extfile "$tmp/ext" -out "$tmp/server.crt" 2>/dev/null
    cp "$tmp/ca.pem" "$(rootcert)"
    chmod 644 "$(rootcert)"
    install -m 600 "$tmp/server.crt" "$tmp/server.key" "$DIR/"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR/server.crt" "$DIR/server.key"; fi
    rm -rf "$tmp"
}

stop() {
    local bin
    bin="$(pg_bin)"
    if [ -f "$DIR/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$DIR" -m immediate -w stop >&2 || true
    fi
    rm -rf "$DIR" "$DIR.initdb.log" "$(rootcert)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env)
        echo "export AOC_TEST_PG=$(url)"
        if [ -f "$(rootcert)" ]; then echo "export AOC_TEST_PG_ROOTCERT=$(rootcert)"; fi
        ;;
    url) url ;;
    *) echo "usage: $0 start|stop|env|url" >&2; exit 2 ;;
esac
