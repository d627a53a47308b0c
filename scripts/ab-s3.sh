#!/usr/bin/env bash
# A/B of `keystone serve` across commits: builds the server at each REV (in a temporary git
# worktree; "." is the working tree) and runs the bench's S3 mode against each in turn, ROUNDS
# times, on a fresh store each run, so that machine drift hits every build alike.
#   scripts/ab-s3.sh ROUNDS REV... [-- extra keystone-bench s3 options]
# Default client options: 4 KiB objects, 16 in flight, 2,000 requests per phase.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ab-lib.sh
ab_parse "scripts/ab-s3.sh ROUNDS REV... [-- options]" "$@"
((${#opts[@]})) || opts=(--concurrency 16 --size 4096 --ops 2000)
server=
stop_server() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
}
ab_on_exit=stop_server

ab_build keystone-cli keystone
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
