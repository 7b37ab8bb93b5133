#!/bin/sh
# Unpacks Debian 11's glibc 2.31 (package libc6, amd64; pinned by version and SHA-256) into
# target/third-party/glibc-2.31 with `dpkg-deb -x` (nothing is installed), so the tests can start
# the kit's `stella` through that glibc's own loader:
#   target/third-party/glibc-2.31/lib/x86_64-linux-gnu/ld-2.31.so \
#       --library-path target/third-party/glibc-2.31/lib/x86_64-linux-gnu stella --version
# Idempotent; prints the library directory on stdout. Needs curl (or wget) and dpkg-deb.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
package=libc6_2.31-13+deb11u11_amd64.deb
sha256=05f7264da867b37f4c5ce49266b558ea1e81e05a9464f623152fca70f3550282
dir="$root/target/third-party/glibc-2.31"
lib="$dir/lib/x86_64-linux-gnu"

if [ ! -x "$lib/ld-2.31.so" ]; then
    command -v dpkg-deb >/dev/null || { echo "fetch-old-glibc: dpkg-deb is needed" >&2; exit 1; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # bullseye is served by the main mirror while it is supported, then by Debian's archive.
    for mirror in http://deb.debian.org/debian http://archive.debian.org/debian; do
        url="$mirror/pool/main/g/glibc/$package"
        if command -v curl >/dev/null; then
            curl -fsSL --retry 2 -o "$tmp/$package" "$url" && break
        else
            wget -q -O "$tmp/$package" "$url" && break
        fi
        echo "fetch-old-glibc: $url failed" >&2
    done
    [ -s "$tmp/$package" ] || { echo "fetch-old-glibc: could not download $package" >&2; exit 1; }
    echo "$sha256  $tmp/$package" | sha256sum -c --quiet - >&2 \
        || { echo "fetch-old-glibc: $package does not have the pinned SHA-256" >&2; exit 1; }
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$tmp/$package" "$tmp/root"
    mv "$tmp/root/lib" "$dir/lib"
    echo "fetch-old-glibc: glibc 2.31 unpacked into $dir" >&2
fi
echo "$lib"
