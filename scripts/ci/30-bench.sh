#!/usr/bin/env bash
# Runs the benchmark suite in --quick mode so it cannot rot. Fails only if a run errors,
# never on timing (the table's "Met" column is informational here).
# Cost: a release build of keystone-bench (bundled SQLite included) plus well under a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p keystone-bench -- --quick
