# The debug build every end-to-end script uses: the whole workspace, all targets (examples
# included), all features (the bench's S3 mode) — the same selection as scripts/test's
# `cargo test`, so after it this finds everything built. Selecting one package (`-p`) instead
# unifies its dependencies' features differently and rebuilt half the dependency graph.
# Sets DEBUG_BIN to the directory of the binaries.
build_debug() {
  cargo build -q --workspace --all-targets --all-features
  DEBUG_BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug
}
