# Shared by scripts/ab-s3.sh and scripts/ab-bench.sh (sourced, not run): the arguments
# ROUNDS REV... [-- options] and one binary per REV, built in a temporary git worktree ("."
# is the working tree). Sets `rounds`, `revs`, `opts`, `work` (a temporary directory removed
# on exit, worktrees included) and, through ab_build, `bins`.

ab_parse() {
  local usage=$1
  shift
  rounds="${1:?usage: $usage}"
  shift
  revs=()
  while (($#)) && [[ $1 != -- ]]; do revs+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  ((${#revs[@]})) || { echo "name at least one REV" >&2; exit 2; }
  opts=("$@")
  target="${CARGO_TARGET_DIR:-target}/release"
  work="$(mktemp -d)"
  trap ab_cleanup EXIT
}

ab_cleanup() {
  [[ -n ${ab_on_exit:-} ]] && "$ab_on_exit"
  for w in "$work"/wt-*; do [[ -d $w ]] && { git worktree remove --force "$w" || true; }; done
  rm -rf "$work"
}

# ab_build PACKAGE BINARY: builds PACKAGE alone (built together with another package, cargo
# would unify the features of their shared dependencies into a different binary) at each REV.
# A REV whose entry in the optional array `ab_patches` names a patch file (from the repository's
# root) is built with that patch applied to its worktree.
ab_build() {
  local package=$1 binary=$2 i rev wt
  bins=()
  for i in "${!revs[@]}"; do
    rev=${revs[$i]}
    if [[ $rev == . ]]; then
      cargo build --quiet --release -p "$package"
      cp "$target/$binary" "$work/$binary-$i"
    else
      wt="$work/wt-$i"
      git worktree add --quiet --detach "$wt" "$rev"
      [[ -n ${ab_patches[$i]:-} ]] && git -C "$wt" apply "$PWD/${ab_patches[$i]}"
      (cd "$wt" && CARGO_TARGET_DIR="$work/target" cargo build --quiet --release -p "$package")
      cp "$work/target/release/$binary" "$work/$binary-$i"
    fi
    bins+=("$work/$binary-$i")
  done
}
