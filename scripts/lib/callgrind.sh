# Sourced by the scripts that count instructions per get with callgrind (get-instructions.sh,
# packed-get-instructions.sh, growth-instructions.sh), from the repository's root: checks for
# valgrind, builds the bench, makes a scratch directory ($out, removed on exit) and names the
# two engines' get functions, whose calls scripts/lib/callgrind_per_call.py counts.
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release -q -p keystone-bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
KEYSTONE_GET="Keystone as keystone_bench::engines::BenchEngine>::get"
REDB_GET="RawRedb as keystone_bench::engines::BenchEngine>::get"
