#!/usr/bin/env bash
# Instructions per W6 get at each store size, Keystone against raw redb, counted by callgrind,
# with a page cache that holds the whole store: the work a get does as the B-tree grows, apart
# from the memory hierarchy that W6's latencies also measure (BENCHMARKS.md, W6).
#
#   scripts/growth-instructions.sh [POINT...]    # store sizes (default: 10000 100000 1000000)
#
# One callgrind run per size (the load is counted too, but only the get functions are read).
# Slow: the load of 1,000,000 objects runs on callgrind's simulated CPU (about half an hour).
set -euo pipefail
cd "$(dirname "$0")/.."
points=("$@")
((${#points[@]})) || points=(10000 100000 1000000)
source scripts/lib/callgrind.sh
gets=5000
echo "W6, objects of 1 KiB, $gets random gets per engine and size, cache 4 GiB (callgrind)"
for n in "${points[@]}"; do
  valgrind --tool=callgrind --callgrind-out-file="$out/cg-$n" target/release/keystone-bench W6 --reps 1 \
      --engines keystone,redb --cache-mib 4096 --w6-points "$n" --w6-gets "$gets" >"$out/log-$n" 2>&1 ||
      { cat "$out/log-$n" >&2; exit 1; }
  read -r k kn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg-$n" "$KEYSTONE_GET")
  read -r r rn < <(python3 scripts/lib/callgrind_per_call.py "$out/cg-$n" "$REDB_GET")
  ((kn == gets && rn == gets)) || { echo "expected $gets gets per engine, counted $kn and $rn" >&2; exit 1; }
  echo "at $n objects: keystone $k, raw redb $r instructions per get"
done
