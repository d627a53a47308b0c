#!/usr/bin/env bash
# Kills `keystone mb` while it creates a new store, N times, at delays of 0–5.9 ms, and counts
# how the next command finds the store: opened ("ok") or refused (docs/design.md, "Creating a
# store"). The same check, at fixed delays, is the CLI test a_store_killed_while_being_created_still_opens.
#
#   scripts/kill-create.sh [N] [BINARY]    # default 200 kills of target/release/keystone
set -euo pipefail
n=${1:-200}
cd "$(dirname "$0")/.."
if [[ -z ${2:-} ]]; then
    cargo build --release -q -p keystone-cli
    bin=$PWD/target/release/keystone
else
    bin=$(realpath "$2")
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cd "$d"
declare -A out
for ((i = 0; i < n; i++)); do
    rm -f s.keystone
    "$bin" --store s.keystone -q mb bbb >/dev/null 2>&1 &
    pid=$!
    sleep "0.00$((RANDOM % 6))$((RANDOM % 10))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if msg=$("$bin" --store s.keystone mb ccc 2>&1); then r=ok; else r="refused: ${msg:0:70}"; fi
    out["$r"]=$((${out["$r"]:-0} + 1))
done
for k in "${!out[@]}"; do echo "${out[$k]}  $k"; done | sort -rn
