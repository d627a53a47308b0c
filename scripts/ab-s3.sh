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

target="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
server=
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  for w in "$work"/wt-*; do [[ -d $w ]] && { git worktree remove --force "$w" || true; }; done
  rm -rf "$work"
}
trap cleanup EXIT

# Every server is built on its own (`-p keystone-cli` alone): built together with the bench,
# cargo would unify the features of their shared dependencies into a different binary.
bins=()
for i in "${!revs[@]}"; do
  rev=${revs[$i]}
  if [[ $rev == . ]]; then
    cargo build --quiet --release -p keystone-cli
    cp "$target/keystone" "$work/keystone-$i"
  else
    wt="$work/wt-$i"
    git worktree add --quiet --detach "$wt" "$rev"
    (cd "$wt" && CARGO_TARGET_DIR="$work/target" cargo build --quiet --release -p keystone-cli)
    cp "$work/target/release/keystone" "$work/keystone-$i"
  fi
  bins+=("$work/keystone-$i")
done
cargo build --quiet --release -p keystone-bench --features s3

port="${KEYSTONE_BENCH_PORT:-19378}"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is in use (KEYSTONE_BENCH_PORT picks another)" >&2
  exit 1
fi
for round in $(seq "$rounds"); do
  for i in "${!revs[@]}"; do
    store="$(mktemp -d "$work/store.XXXX")"
    "${bins[$i]}" serve --addr "127.0.0.1:$port" --store "$store/ab.keystone" \
      --access-key benchak --secret-key benchsecret123 --log-level error -q >"$work/serve-$i.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    kill -0 "$server" 2>/dev/null || { echo "server ${revs[$i]} did not start:" >&2; cat "$work/serve-$i.log" >&2; exit 1; }
    timeout 300 "$target/keystone-bench" s3 --endpoint "http://127.0.0.1:$port" \
      --access-key benchak --secret-key benchsecret123 "${opts[@]}" | grep '^| [a-z]' |
      sed "s/^/round $round  ${revs[$i]}  /"
    kill "$server"; wait "$server" 2>/dev/null || true
    server=
    rm -rf "$store"
  done
done
