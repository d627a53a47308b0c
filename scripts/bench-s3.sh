#!/usr/bin/env bash
# Measures `keystone serve` with the bench's S3 mode (the AWS SDK as client): starts a server on
# a fresh store in a temporary directory on 127.0.0.1, runs PUT, GET and mixed phases with small
# and large objects, and stops the server. Any other S3 endpoint can be driven the same way:
#   cargo run --release -p keystone-bench --features s3 -- s3 --endpoint URL --access-key K --secret-key S
# Extra arguments are passed to every run (e.g. --ops 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/release"
dir="$(mktemp -d)"
server=
trap '[[ -n $server ]] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }; rm -rf "$dir"' EXIT
# The server is built on its own: built together with the bench (and the AWS SDK), cargo would
# unify the features of their shared dependencies into a different server binary.
cargo build --quiet --release -p keystone-cli
cp "$target/keystone" "$dir/keystone"
cargo build --quiet --release -p keystone-bench --features s3
port="${KEYSTONE_BENCH_PORT:-19377}"
"$dir/keystone" serve --addr "127.0.0.1:$port" --store "$dir/bench.keystone" \
  --access-key benchak --secret-key benchsecret123 --log-level error -q >"$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
run() { timeout 300 "$target/keystone-bench" s3 --endpoint "http://127.0.0.1:$port" \
  --access-key benchak --secret-key benchsecret123 "$@"; }
run --concurrency 16 --size 4096 --ops 2000 "$@"
run --concurrency 4 --size 16777216 --ops 40 --objects 8 "$@"
