#!/usr/bin/env bash
# Runs the benchmark suite in --quick mode so it cannot rot. Fails only if a run errors,
# never on timing (the table's "Met" column is informational here).
# It runs the debug build scripts/test's `cargo test` made (a release build of its own cost
# ~160 s of a cold CI run, for figures CI does not judge): the numbers it prints are not the
# benchmark's. BENCHMARKS.md's come from `cargo run --release -p keystone-bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/build.sh
build_debug
"$DEBUG_BIN/keystone-bench" --quick
# The examples BENCHMARKS.md quotes, on tiny sizes: they error out, not rot, when the API moves
# (get_path checks nothing but that every get finds its object; extent_model checks each
# chunk's CRC32C and the lengths read back).
"$DEBUG_BIN/examples/get_path" 50 1000 1 >/dev/null
"$DEBUG_BIN/examples/crc_speed" 5000 >/dev/null
"$DEBUG_BIN/examples/extent_model" 2 1 >/dev/null
