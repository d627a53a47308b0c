#!/usr/bin/env bash
# Runs the benchmark suite in --quick mode so it cannot rot. Fails only if a run errors,
# never on timing (the table's "Met" column is informational here).
# Cost: a release build of keystone-bench (bundled SQLite included) plus well under a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p keystone-bench -- --quick
# The examples BENCHMARKS.md quotes, on tiny sizes: they error out, not rot, when the API moves
# (get_path checks nothing but that every get finds its object).
cargo run --quiet --release -p keystone-bench --example get_path -- 50 1000 1 >/dev/null
cargo run --quiet --release -p keystone-bench --example crc_speed >/dev/null
