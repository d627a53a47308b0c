#!/usr/bin/env bash
# Measures the server's peak RSS (VmHWM) across a 1 GiB PUT and GET through boto3, then
# `aws s3 cp` of the same file up and down.
# Usage: scripts/s3-rss.sh [path/to/keystone] [MIB,MIB,...] (default: release build). With a
# list of sizes, a fresh server gets only `aws s3 cp` up and down of a file of each size, in
# order, and VmHWM is printed after each. Needs the venv that scripts/ci/50-s3.sh installs.
# Not run in CI (it writes gigabytes).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/keystone}
PY=${KEYSTONE_S3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/keystone-s3-venv}/bin/python
TMP=$(mktemp -d)
PID=
cleanup() { [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" || true; rm -rf "$TMP"; }
trap cleanup EXIT
export AK=KSRSSACCESSKEY000001 SK=rss-secret-0123456789abcdefghijklmnopqrstu
KEYSTONE_ACCESS_KEY=$AK KEYSTONE_SECRET_KEY=$SK "$BIN" --store "$TMP/s.redb" serve --addr 127.0.0.1:0 \
  --log-level warn >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 1 100); do grep -q 'http://' "$TMP/out" 2>/dev/null && break; sleep 0.1; done
EP=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/out" | head -n1)
hwm() { awk '/VmHWM/ {print $2 " " $3}' "/proc/$PID/status"; }
echo "idle: VmHWM $(hwm)"
AWS=$(dirname "$PY")/aws
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null
if [[ -n ${2:-} ]]; then
  "$AWS" --endpoint-url "$EP" s3 mb s3://rss >/dev/null
  IFS=, read -ra SIZES <<<"$2"
  for mib in "${SIZES[@]}"; do
    head -c $((mib * 1024 * 1024)) /dev/urandom >"$TMP/f"
    "$AWS" --endpoint-url "$EP" s3 cp --only-show-errors "$TMP/f" "s3://rss/f$mib"
    "$AWS" --endpoint-url "$EP" s3 cp --only-show-errors "s3://rss/f$mib" "$TMP/f.back"
    cmp "$TMP/f" "$TMP/f.back"
    echo "after aws s3 cp of $mib MiB up and down (bytes equal): VmHWM $(hwm)"
    rm -f "$TMP/f" "$TMP/f.back"
  done
  exit 0
fi
head -c $((1024 * 1024 * 1024)) /dev/urandom >"$TMP/big"
EP=$EP BIG=$TMP/big "$PY" - <<'PY'
import os, time, hashlib, boto3
from botocore.config import Config
c = boto3.client("s3", endpoint_url=os.environ["EP"], aws_access_key_id=os.environ["AK"],
                 aws_secret_access_key=os.environ["SK"], region_name="us-east-1",
                 config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
c.create_bucket(Bucket="rss")
t = time.time()
with open(os.environ["BIG"], "rb") as f:
    c.put_object(Bucket="rss", Key="big", Body=f)       # one PUT, streamed
print(f"PUT 1 GiB: {time.time() - t:.1f} s")
t = time.time()
h = hashlib.md5()
body = c.get_object(Bucket="rss", Key="big")["Body"]
for piece in iter(lambda: body.read(1 << 20), b""):
    h.update(piece)
print(f"GET 1 GiB: {time.time() - t:.1f} s")
w = hashlib.md5()
with open(os.environ["BIG"], "rb") as f:
    for piece in iter(lambda: f.read(1 << 20), b""):
        w.update(piece)
want = w.hexdigest()
print("GET bytes equal:", h.hexdigest() == want)
PY
echo "after 1 GiB single PUT + GET (boto3): VmHWM $(hwm)"
t=$(date +%s.%N)
"$AWS" --endpoint-url "$EP" s3 cp --only-show-errors "$TMP/big" s3://rss/big-mpu
"$AWS" --endpoint-url "$EP" s3 cp --only-show-errors s3://rss/big-mpu "$TMP/big.back"
cmp "$TMP/big" "$TMP/big.back" && echo "aws s3 cp 1 GiB up and down (multipart, 10 concurrent requests): $(echo "$(date +%s.%N) - $t" | bc) s, bytes equal"
echo "after that too: VmHWM $(hwm)"
