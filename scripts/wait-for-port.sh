#!/usr/bin/env bash
# Waits until a TCP server accepts connections: a CI service container may still be starting
# when the job's steps begin.
#
#   scripts/wait-for-port.sh URL|HOST:PORT [SECONDS]     e.g. postgres://u:p@postgres:5432/db 120
#
# Exit 0 once a connection succeeds, 1 when SECONDS (default 60) pass first.
set -euo pipefail

target="${1:?usage: wait-for-port.sh URL|HOST:PORT [SECONDS]}"
seconds="${2:-60}"
hostport="${target#*://}"   # drop the scheme
hostport="${hostport##*@}"  # drop user:password@
hostport="${hostport%%/*}"  # drop /database
hostport="${hostport%%\?*}" # drop ?options
host="${hostport%:*}"
port="${hostport##*:}"
[[ "$port" =~ ^[0-9]+$ ]] || { echo "wait-for-port: no port in $hostport" >&2; exit 2; }

deadline=$((SECONDS + seconds))
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "wait-for-port: nothing accepts connections on $host:$port after $seconds s" >&2
        exit 1
    fi
    sleep 1
done
echo "wait-for-port: $host:$port accepts connections" >&2
