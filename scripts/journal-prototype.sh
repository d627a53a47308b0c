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
rounds="${1:?usage: scripts/journal-prototype.sh ROUNDS [-- options]}"
shift
[[ ${1:-} == -- ]] && shift
opts=("$@")
((${#opts[@]})) || opts=(W1 --reps 3 --engines keystone,redb)
work="$(mktemp -d)"
cleanup() {
  [[ -d $work/wt ]] && { git worktree remove --force "$work/wt" || true; }
  rm -rf "$work"
}
trap cleanup EXIT
git worktree add --quiet --detach "$work/wt" HEAD
for build in plain journal; do
  (
    cd "$work/wt"
    [[ $build == journal ]] && git apply "$OLDPWD/docs/experiments/redo-journal-prototype.patch"
    CARGO_TARGET_DIR="$work/target" cargo build --quiet --release -p keystone-bench
  )
  cp "$work/target/release/keystone-bench" "$work/bench-$build"
done
for round in $(seq "$rounds"); do
  for build in plain journal; do
    dir="$(mktemp -d "$work/stores.XXXX")"
    journal=()
    [[ $build == journal ]] && journal=(env "KS_PROTO_JOURNAL=$dir")
    "${journal[@]}" "$work/bench-$build" "${opts[@]}" --dir "$dir" 2>/dev/null | grep '^| W' | sed "s/^/round $round  $build  /"
    rm -rf "$dir"
  done
done
