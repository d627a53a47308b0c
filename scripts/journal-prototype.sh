#!/usr/bin/env bash
# The speed a redo journal under redb would give small durable writes (docs/design.md, "Not
# built: a redo journal under redb"): builds keystone-bench from HEAD as it is and with
# docs/experiments/redo-journal-prototype.patch applied — the journal's write path only (each
# commit's page writes appended to a journal file and that file synced; the store file synced
# at checkpoints), with no replay, so not safe to keep a store with — and runs the same
# workloads with each in turn, ROUNDS times.
#   scripts/journal-prototype.sh ROUNDS [-- keystone-bench options]
# Default options: W1, three repetitions, Keystone and raw redb.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ab-lib.sh
rounds_arg="${1:?usage: scripts/journal-prototype.sh ROUNDS [-- options]}"
shift
[[ ${1:-} == -- ]] && shift
ab_parse "scripts/journal-prototype.sh ROUNDS [-- options]" "$rounds_arg" HEAD HEAD -- "$@"
((${#opts[@]})) || opts=(W1 --reps 3 --engines keystone,redb)
ab_patches=("" docs/experiments/redo-journal-prototype.patch)
ab_build keystone-bench keystone-bench

names=(plain journal)
for round in $(seq "$rounds"); do
  for i in 0 1; do
    dir="$(mktemp -d "$work/stores.XXXX")"
    journal=()
    ((i == 1)) && journal=(env "KS_PROTO_JOURNAL=$dir")
    "${journal[@]}" "${bins[$i]}" "${opts[@]}" --dir "$dir" 2>/dev/null | grep '^| W' | sed "s/^/round $round  ${names[$i]}  /"
    rm -rf "$dir"
  done
done
