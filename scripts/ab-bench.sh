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
rounds="${1:?usage: scripts/ab-bench.sh ROUNDS REV... [-- options]}"
shift
revs=()
while (($#)) && [[ $1 != -- ]]; do revs+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
((${#revs[@]})) || { echo "name at least one REV" >&2; exit 2; }
opts=("$@")
((${#opts[@]})) || opts=(W2 W3 --reps 3 --engines keystone,redb)

target="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
cleanup() {
  for w in "$work"/wt-*; do [[ -d $w ]] && { git worktree remove --force "$w" || true; }; done
  rm -rf "$work"
}
trap cleanup EXIT

bins=()
for i in "${!revs[@]}"; do
  rev=${revs[$i]}
  if [[ $rev == . ]]; then
    cargo build --quiet --release -p keystone-bench
    cp "$target/keystone-bench" "$work/bench-$i"
  else
    wt="$work/wt-$i"
    git worktree add --quiet --detach "$wt" "$rev"
    (cd "$wt" && CARGO_TARGET_DIR="$work/target" cargo build --quiet --release -p keystone-bench)
    cp "$work/target/release/keystone-bench" "$work/bench-$i"
  fi
  bins+=("$work/bench-$i")
done

for round in $(seq "$rounds"); do
  for i in "${!revs[@]}"; do
    dir="$(mktemp -d "$work/stores.XXXX")"
    "${bins[$i]}" "${opts[@]}" --dir "$dir" 2>/dev/null | grep '^| W' | sed "s/^/round $round  ${revs[$i]}  /"
    rm -rf "$dir"
  done
done
