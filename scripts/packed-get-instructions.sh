#!/usr/bin/env bash
# Instructions per W5 get after `compact` (small objects packed), Keystone against raw redb,
# counted by callgrind: the work a packed get does, which the machine's noise does not move
# (BENCHMARKS.md, W5). The store is small enough for both engines' caches, so the count is the
# work alone; gets/s at the full run's million objects also wait on page reads.
#
#   scripts/packed-get-instructions.sh [COUNT]    # objects loaded (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20000}
source scripts/lib/callgrind.sh
# W5 only: load, list, delete a tenth, compact, list, then the random gets this counts.
valgrind --tool=callgrind --callgrind-out-file="$out/cg" target/release/keystone-bench W5 --reps 1 \
    --engines keystone,redb --w5-count "$count" --w5-prefixes $(((count + 999) / 1000)) >"$out/log" 2>&1 ||
    { cat "$out/log" >&2; exit 1; }
read -r k kn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg" "$KEYSTONE_GET")
read -r r rn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg" "$REDB_GET")
((kn == rn && kn > 0)) || { echo "expected as many gets per engine, counted $kn and $rn" >&2; exit 1; }
echo "W5 after compact, $count objects of 1 KiB, $kn gets per engine (callgrind)"
echo "keystone: $k instructions per get"
echo "raw redb: $r instructions per get"
