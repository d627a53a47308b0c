#!/usr/bin/env bash
# Instructions per W3 get, Keystone against raw redb, counted by callgrind: unlike gets/s, the
# count does not move with the machine's noise, so it tells whether Keystone does more work per
# get than raw redb or only waits longer on memory (BENCHMARKS.md, W3).
#
#   scripts/get-instructions.sh [COUNT]    # objects in the store (default 5000)
#
# callgrind runs the program on a simulated CPU without AVX-512, so CRC32C takes crc-fast's
# SSE path here: more instructions than on this machine's CPU, which has AVX-512.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
source scripts/lib/callgrind.sh
# One repetition, one thread: a warm-up pass, then the "1 thr" and "N thr" runs with N = 1:
# three passes over the store, 3 × COUNT gets per engine.
valgrind --tool=callgrind --callgrind-out-file="$out/cg" target/release/keystone-bench W3 --reps 1 \
    --engines keystone,redb --w3-count "$count" --w3-threads 1 >"$out/log" 2>&1 ||
    { cat "$out/log" >&2; exit 1; }
gets=$((3 * count))
read -r k kn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg" "$KEYSTONE_GET")
read -r r rn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg" "$REDB_GET")
read -r c cn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg" "keystone::data::crc::crc")
((kn == gets && rn == gets)) || { echo "expected $gets gets per engine, counted $kn and $rn" >&2; exit 1; }
echo "W3, $count objects of 10 KiB ± 2 KiB, $gets gets per engine (callgrind)"
echo "keystone: $k instructions per get"
echo "raw redb: $r instructions per get"
echo "CRC32C (SSE path): $c instructions per call of keystone::data::crc::crc not inlined ($cn calls, puts' included)"
