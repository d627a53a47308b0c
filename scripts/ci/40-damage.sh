#!/usr/bin/env bash
# A short run of scripts/damage-loop: B-tree pages of a store damaged on disk, CLI commands on
# each copy, and a salvage of each into a new store; fails if any command panics or a salvaged
# store does not verify clean (docs/reliability.md, "Damaged B-tree pages").
set -euo pipefail
cd "$(dirname "$0")/../.."
# Release: a debug build of redb validates every page at open, so nothing would get further.
cargo test -q --release -p keystone --test damaged_index
cargo build -q --release -p keystone-cli
# The loop is a Python script.
source scripts/lib/apt.sh
command -v python3 >/dev/null || apt_install python3
# Only the summary lines (each unopenable store is listed by a full run).
python3 scripts/damage-loop 3 target/release/keystone | tail -n 2
