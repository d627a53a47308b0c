#!/usr/bin/env bash
# End-to-end S3 checks with unmodified real clients against `keystone serve`:
# aws CLI and boto3 (PyPI, in a venv), rclone and curl (Debian). Starts the server on a free
# 127.0.0.1 port over a temporary store and stops it (SIGTERM, graceful) at the end.
# Cost: ~1 min when the clients are installed and the debug binaries are built (plus a one-time
# pip/apt install of ~1 min; run alone, it first builds what scripts/test's `cargo test` builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${KEYSTONE_S3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/keystone-s3-venv}

# ---- clients (installed once, quiet when present)
source scripts/lib/apt.sh
need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v rclone >/dev/null || need_apt+=(rclone)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
apt_install "${need_apt[@]}"
if ! "$VENV/bin/python" -c 'import boto3, awscli' 2>/dev/null; then
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check awscli boto3
fi
AWS=$VENV/bin/aws
PY=$VENV/bin/python

# ---- server (and the bench's S3 mode, built before the server starts)
source scripts/lib/build.sh
build_debug
BIN=$DEBUG_BIN/keystone
TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/store" "$TMP/work"
export AWS_ACCESS_KEY_ID=KSE2EACCESSKEY000001 AWS_SECRET_ACCESS_KEY=e2e-secret-0123456789abcdefghijklmnopqrst
export AWS_DEFAULT_REGION=us-east-1 AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=$TMP/aws-config
printf '[default]\nregion = us-east-1\ns3 =\n    signature_version = s3v4\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
KEYSTONE_ACCESS_KEY=$AWS_ACCESS_KEY_ID KEYSTONE_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
  "$BIN" --store "$TMP/store/store.redb" serve --addr 127.0.0.1:0 --log-level warn --idle-timeout 5 >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
EP=
for _ in $(seq 1 100); do
  EP=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/server.out" 2>/dev/null | head -n1 || true)
  [[ -n $EP ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.err"; exit 1; }
  sleep 0.1
done
[[ -n $EP ]] || { echo "server did not start"; cat "$TMP/server.err"; exit 1; }

passed=0 failed=0
check() { # name, command...
  local name=$1; shift
  if "$@" >"$TMP/check.log" 2>&1; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$TMP/check.log" | tail -n 20; fi
}
aws_() { "$AWS" --endpoint-url "$EP" "$@"; }
W=$TMP/work

# ---- aws CLI
check "aws s3 mb" aws_ s3 mb s3://cli
check "aws s3 ls lists the bucket" bash -c "$AWS --endpoint-url $EP s3 ls | grep -q ' cli$'"
head -c 0 /dev/null >"$W/zero"; head -c 4321 /dev/urandom >"$W/small"; head -c $((50 * 1024 * 1024)) /dev/urandom >"$W/fifty"
for f in zero small fifty; do
  check "aws s3 cp up+down $f byte-equal" bash -c "
    $AWS --endpoint-url $EP s3 cp --only-show-errors $W/$f s3://cli/files/$f &&
    $AWS --endpoint-url $EP s3 cp --only-show-errors s3://cli/files/$f $W/$f.back && cmp $W/$f $W/$f.back"
done
check "50 MiB went multipart" bash -c "$AWS --endpoint-url $EP s3api head-object --bucket cli --key files/fifty | grep -q '\-[0-9]*\\\\\"'"
check "ranged GET" bash -c "
  $AWS --endpoint-url $EP s3api get-object --bucket cli --key files/fifty --range bytes=1000-1999 $W/range >/dev/null &&
  cmp $W/range <(tail -c +1001 $W/fifty | head -c 1000)"
mkdir -p "$W/tree/a/b/c" "$W/tree/d" "$W/tree/e f"
for i in 1 2 3; do head -c $((i * 1000)) /dev/urandom >"$W/tree/a/file$i"; done
head -c 70000 /dev/urandom >"$W/tree/a/b/c/deep.bin"; : >"$W/tree/d/empty"; echo hi >"$W/tree/e f/with space.txt"
head -c $((9 * 1024 * 1024)) /dev/urandom >"$W/tree/d/nine-mib"
find "$W/tree" -exec touch -d '-1 minute' {} + # sync compares times; files are older than their uploads
check "aws s3 sync up" aws_ s3 sync --only-show-errors "$W/tree" s3://cli/tree
# An empty file next to a multipart one once tripped botocore on a reused connection.
check "aws s3 sync to 3 more prefixes" bash -c "
  for i in 1 2 3; do $AWS --endpoint-url $EP s3 sync --only-show-errors $W/tree s3://cli/again\$i || exit 1; done"
check "aws s3 sync back is identical" bash -c "
  $AWS --endpoint-url $EP s3 sync --only-show-errors s3://cli/tree $W/tree-back && diff -r $W/tree $W/tree-back"
check "second aws s3 sync uploads nothing" bash -c "
  out=\$($AWS --endpoint-url $EP s3 sync $W/tree s3://cli/tree) && [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
check "presigned URL fetched with curl" bash -c "
  url=\$($AWS --endpoint-url $EP s3 presign s3://cli/files/small --expires-in 300) &&
  curl -fsS -o $W/presigned \"\$url\" && cmp $W/small $W/presigned"
check "wrong secret rejected (SignatureDoesNotMatch)" bash -c "
  ! AWS_SECRET_ACCESS_KEY=wrong $AWS --endpoint-url $EP s3 ls 2>$W/wrong.err && grep -q SignatureDoesNotMatch $W/wrong.err"
check "anonymous curl rejected with 403" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $EP/cli)\" = 403 ]"

# ---- rclone
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_KS_TYPE=s3 RCLONE_CONFIG_KS_PROVIDER=Other RCLONE_CONFIG_KS_ENDPOINT=$EP
export RCLONE_CONFIG_KS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_KS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_KS_REGION=us-east-1 RCLONE_CONFIG_KS_FORCE_PATH_STYLE=true RCLONE_CONFIG_KS_LIST_URL_ENCODE=true
# rclone 1.60's AWS SDK refuses AWS_CA_BUNDLE on a plain-http endpoint.
rclone_() { env -u AWS_CA_BUNDLE rclone "$@"; }
check "rclone copy" rclone_ copy -q "$W/tree" ks:rclone/tree
check "rclone check" rclone_ check -q "$W/tree" ks:rclone/tree
# purge asks for the bucket's versioning first (it logged NotImplemented as an error before).
check "rclone purge, no errors logged" bash -c "env -u AWS_CA_BUNDLE rclone purge ks:rclone/tree 2>$W/purge.err \
  && ! grep -q ERROR $W/purge.err && [ -z \"\$(env -u AWS_CA_BUNDLE rclone lsf ks:rclone/tree 2>/dev/null)\" ]"

# ---- boto3 and hostile inputs
check "boto3 + hostile inputs (scripts/s3/e2e.py)" env KS_ENDPOINT="$EP" KS_AK="$AWS_ACCESS_KEY_ID" \
  KS_SK="$AWS_SECRET_ACCESS_KEY" KS_WORK="$W" KS_STORE_DIR="$TMP/store" "$PY" scripts/s3/e2e.py
sed 's/^/     /' "$TMP/check.log"

check "bucket delete with objects -> BucketNotEmpty" bash -c "
  ! $AWS --endpoint-url $EP s3 rb s3://boto 2>$W/rb.err && grep -q BucketNotEmpty $W/rb.err"
check "aws s3 rb --force" aws_ s3 rb --force s3://cli

# ---- the benchmark's S3 mode (the AWS SDK for Rust as client), so that it cannot rot; its
# figures are not checked here (scripts/bench-s3.sh measures them).
bench_s3() { "$DEBUG_BIN/keystone-bench" s3 --endpoint "$EP" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" --bucket bench "$@"; }
check "bench S3 mode, 4 KiB put/get/mixed" bench_s3 --concurrency 4 --size 4096 --ops 200 --objects 32
check "bench S3 mode, 2 MiB put/get/mixed" bench_s3 --concurrency 2 --size 2097152 --ops 6 --objects 2

# ---- graceful stop
kill -TERM "$SERVER_PID"
code=0; wait "$SERVER_PID" || code=$?
SERVER_PID=
check "SIGTERM: clean exit" test "$code" = 0
check "store reopens after shutdown" "$BIN" --store "$TMP/store/store.redb" ls
echo "s3: $passed passed, $failed failed"
((failed == 0))
