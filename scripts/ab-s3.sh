#!/usr/bin/env bash
# A/B of `keystone serve` across commits: builds the server at each REV (in a temporary git
# worktree; "." is the working tree) and runs the bench's S3 mode against each in turn, ROUNDS
# times, on a fresh store each run, so that machine drift hits every build alike.
#   scripts/ab-s3.sh ROUNDS REV... [-- extra keystone-bench s3 options]
# Default client options: 4 KiB objects, 16 in flight, 2,000 requests per phase.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:?usage: scripts/ab-s3.sh ROUNDS REV... [-- options]}"
shift
revs=()
while (($#)) && [[ $1 != -- ]]; do revs+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
((${#revs[@]})) || { echo "name at least one REV" >&2; exit 2; }
opts=("$@")
((${#opts[@]})) || opts=(--concurrency 16 --size 4096 --ops 2000)

cargo build --quiet --release -p keystone-cli -p keystone-bench --features keystone-bench/s3
target="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
trap 'for w in "$work"/wt-*; do [[ -d $w ]] && git worktree remove --force "$w"; done; rm -rf "$work"' EXIT
bins=()
for rev in "${revs[@]}"; do
  if [[ $rev == . ]]; then bins+=("$target/keystone"); continue; fi
  wt="$work/wt-$(git rev-parse --short "$rev")"
  git worktree add --quiet --detach "$wt" "$rev"
  (cd "$wt" && CARGO_TARGET_DIR="$work/target" cargo build --quiet --release -p keystone-cli)
  cp "$work/target/release/keystone" "$work/keystone-$(basename "$wt")"
  bins+=("$work/keystone-$(basename "$wt")")
done

port="${KEYSTONE_BENCH_PORT:-19378}"
for round in $(seq "$rounds"); do
  for i in "${!revs[@]}"; do
    store="$(mktemp -d "$work/store.XXXX")"
    "${bins[$i]}" serve --addr "127.0.0.1:$port" --store "$store/ab.keystone" \
      --access-key benchak --secret-key benchsecret123 --log-level error -q >"$store/serve.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    timeout 300 "$target/keystone-bench" s3 --endpoint "http://127.0.0.1:$port" \
      --access-key benchak --secret-key benchsecret123 "${opts[@]}" | grep '^| [a-z]' |
      sed "s/^/round $round  ${revs[$i]}  /"
    kill "$server"; wait "$server" 2>/dev/null || true
    rm -rf "$store"
  done
done
