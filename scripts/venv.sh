# Sourced, not run: `. scripts/venv.sh; venv=$(ensure_venv DIR)`.
#
# ensure_venv DIR: makes DIR a Python virtual environment, once, at DIR's physical path, and
# prints that path. A venv is not relocatable: its console scripts (pip, pyspdxtools,
# moto_server, cargo-zigbuild) name the interpreter by the path the venv was made at. Made
# through a symlink (a clone's target/ pointing into .ci/run's cache) it breaks once that clone
# is gone, and every later clone sharing the cache would find "pyspdxtools: not found". So the
# venv is made at the physical path, and one whose pip names another path is made again.
# PYTHON chooses the interpreter (default python3).
ensure_venv() {
    mkdir -p "$1"
    _venv=$(cd "$1" && pwd -P)
    if [ -x "$_venv/bin/python" ] && [ -f "$_venv/bin/pip" ] && ! _venv_made_at "$_venv"; then
        echo "venv.sh: $_venv was made at another path ($(head -n 1 "$_venv/bin/pip")); making it again" >&2
        rm -rf "$_venv"
        mkdir -p "$_venv"
    fi
    if [ ! -x "$_venv/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$_venv" >&2
    fi
    echo "$_venv"
}

# Whether pip's interpreter lies in the venv at $1: `#!$1/bin/python3.11` on the first line, or,
# for a path too long for a shebang, the /bin/sh trampoline's `'''exec' $1/bin/python3 ...` on
# the second (the path in double quotes when it holds a space).
_venv_made_at() {
    case "$(head -n 1 "$1/bin/pip")" in "#!$1/bin/"*) return 0 ;; esac
    case "$(sed -n 2p "$1/bin/pip")" in
        "'''exec' $1/bin/"* | "'''exec' \"$1/bin/"*) return 0 ;;
    esac
    return 1
}
