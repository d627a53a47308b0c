#!/usr/bin/env bash
# A/B of the embedded library across commits: builds keystone-bench at each REV (in a temporary
# git worktree; "." is the working tree) and runs the same workloads with each in turn, ROUNDS
# times, so that machine drift hits every build alike. Each run prints its table rows,
# prefixed with the round and the REV; compare the keystone/redb ratios (raw redb runs in every
# build and is the same code, so it calibrates each run).
#   scripts/ab-bench.sh ROUNDS REV... [-- keystone-bench options]
# Default options: W2 W3, three repetitions, Keystone and raw redb.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ab-lib.sh
ab_parse "scripts/ab-bench.sh ROUNDS REV... [-- options]" "$@"
((${#opts[@]})) || opts=(W2 W3 --reps 3 --engines keystone,redb)
ab_build keystone-bench keystone-bench

for round in $(seq "$rounds"); do
  for i in "${!revs[@]}"; do
    dir="$(mktemp -d "$work/stores.XXXX")"
    "${bins[$i]}" "${opts[@]}" --dir "$dir" 2>/dev/null | grep '^| W' | sed "s/^/round $round  ${revs[$i]}  /"
    rm -rf "$dir"
  done
done
