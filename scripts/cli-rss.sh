#!/usr/bin/env bash
# Peak resident memory of the CLI streaming one large object in and out: `put` of a file of
# MIB mebibytes, then `get` of it back (each process's maximum RSS, from getrusage).
# Usage: scripts/cli-rss.sh [path/to/keystone] [MIB] (default: the release build, 1024 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/keystone}
MIB=${2:-1024}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$TMP/big"
"$BIN" -q --store "$TMP/s.redb" mb rss
# Max RSS in KiB of `$@`, from python's resource module (no dependency on GNU time).
peak() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
put=$(peak "$BIN" -q --store "$TMP/s.redb" put "$TMP/big" rss/big)
get=$(peak "$BIN" -q --store "$TMP/s.redb" get rss/big "$TMP/back")
cmp "$TMP/big" "$TMP/back"
echo "$MIB MiB: put peak RSS $((put / 1024)) MiB, get peak RSS $((get / 1024)) MiB (bytes equal)"
