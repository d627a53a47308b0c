#!/usr/bin/env python3
"""boto3 and hand-signed (hostile) requests against a running `keystone serve`.

Environment: KS_ENDPOINT (http://127.0.0.1:PORT), KS_AK, KS_SK, KS_WORK (a scratch directory),
KS_STORE_DIR (the directory holding the store: nothing else may appear there).
Prints one line per check and a final "N passed, M failed"; exits non-zero on a failure.
"""
import base64, datetime, hashlib, hmac, http.client, os, socket, sys, time, urllib.parse, zlib

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP, AK, SK = os.environ["KS_ENDPOINT"], os.environ["KS_AK"], os.environ["KS_SK"]
WORK, STORE_DIR = os.environ["KS_WORK"], os.environ["KS_STORE_DIR"]
HOST, PORT = urllib.parse.urlparse(EP).hostname, urllib.parse.urlparse(EP).port
REGION = "us-east-1"
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else '  -- ' + str(detail)}", flush=True)


def s3(secret=SK):
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=EP, aws_access_key_id=AK, aws_secret_access_key=secret,
                        region_name=REGION, config=cfg)


def err_code(fn):
    try:
        fn()
        return "OK"
    except ClientError as e:
        return e.response["Error"].get("Code") or str(e.response["ResponseMetadata"]["HTTPStatusCode"])


# ---------------------------------------------------------------- hand-signed requests (SigV4)

def sha(b):
    return hashlib.sha256(b).hexdigest()


def _hm(k, m):
    return hmac.new(k, m.encode(), hashlib.sha256).digest()


def _signing_key(date, secret, region=REGION):
    k = _hm(("AWS4" + secret).encode(), date)
    return _hm(_hm(_hm(k, region), "s3"), "aws4_request")


def raw(method, path, body=b"", query="", headers=None, mode="single", tamper=None, when=None,
        secret=SK, decoded_len=None, content_length=None, shutdown_write=False, chunk=65536, region=REGION):
    """Sends one signed request over a fresh socket; returns (status, code). `path` is sent as is
    (already percent-encoded). mode: single | unsigned | signed-chunks | unsigned-trailer."""
    now = when or datetime.datetime.now(datetime.timezone.utc)
    amzdate, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{date}/{region}/s3/aws4_request"
    hdrs = {"host": f"{HOST}:{PORT}", "x-amz-date": amzdate}
    hdrs.update(headers or {})
    data = body
    if mode == "single":
        csha = sha(data) if tamper != "sha" else sha(data + b"extra")
    elif mode == "unsigned":
        csha = "UNSIGNED-PAYLOAD"
    elif mode == "signed-chunks":
        csha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    else:
        csha = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    hdrs["x-amz-content-sha256"] = csha
    if mode in ("signed-chunks", "unsigned-trailer"):
        hdrs["content-encoding"] = "aws-chunked"
        hdrs["x-amz-decoded-content-length"] = str(decoded_len if decoded_len is not None else len(data))
    if mode == "unsigned-trailer":
        hdrs["x-amz-trailer"] = "x-amz-checksum-crc32"
    signed = sorted(hdrs)
    canon_q = "&".join(sorted(query.split("&"))) if query else ""
    canon = "\n".join([method, path, canon_q, "".join(f"{k}:{hdrs[k]}\n" for k in signed), ";".join(signed), csha])
    key = _signing_key(date, secret, region)
    sign = lambda s: hmac.new(key, s.encode(), hashlib.sha256).hexdigest()
    seed = sign("\n".join(["AWS4-HMAC-SHA256", amzdate, scope, sha(canon.encode())]))
    if mode in ("signed-chunks", "unsigned-trailer"):
        parts, prev = [], seed
        for c in [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]:
            if mode == "unsigned-trailer":
                parts.append(f"{len(c):x}\r\n".encode() + c + (b"\r\n" if c else b""))
            else:
                sig = sign("\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amzdate, scope, prev, sha(b""), sha(c)]))
                prev = sig
                parts.append(f"{len(c):x};chunk-signature={sig}\r\n".encode() + c + (b"\r\n" if c else b""))
        if mode == "unsigned-trailer":
            crc = zlib.crc32(data) ^ (1 if tamper == "crc" else 0)
            if tamper != "no-trailer":
                parts.append(b"x-amz-checksum-crc32:" + base64.b64encode(crc.to_bytes(4, "big")) + b"\r\n")
        parts.append(b"\r\n")
        body = b"".join(parts)
    hdrs["authorization"] = (f"AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={';'.join(signed)}, "
                             f"Signature={seed}")
    hdrs["content-length"] = str(len(body) if content_length is None else content_length)
    target = path + ("?" + query if query else "")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "connection: close\r\n\r\n"
    sock = socket.create_connection((HOST, PORT), timeout=30)
    try:
        try:
            sock.sendall(head.encode() + body)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; read what it said
        resp = b""
        while True:
            try:
                b = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            resp += b
    finally:
        sock.close()
    if not resp:
        return 0, "closed"
    status = int(resp.split(b" ", 2)[1])
    code = resp.split(b"<Code>")[1].split(b"</Code>")[0].decode() if b"<Code>" in resp else ""
    return status, code


# ---------------------------------------------------------------- protocol details

def b64md5(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def protocol_checks(c):
    """Integrity headers on XML bodies, ranges, regions, listing of uploads (each once wrong)."""
    c.create_bucket(Bucket="proto")
    c.put_object(Bucket="proto", Key="keep", Body=b"0123456789")
    xml = b"<Delete><Object><Key>keep</Key></Object></Delete>"
    st, code = raw("POST", "/proto", xml, query="delete=", headers={"content-md5": b64md5(b"other")})
    check("DeleteObjects with a wrong Content-MD5 -> BadDigest", (st, code) == (400, "BadDigest"), (st, code))
    crc = base64.b64encode((zlib.crc32(xml) ^ 1).to_bytes(4, "big")).decode()
    st, code = raw("POST", "/proto", xml, query="delete=", headers={"x-amz-checksum-crc32": crc})
    check("DeleteObjects with a wrong x-amz-checksum-crc32 -> BadDigest", (st, code) == (400, "BadDigest"), (st, code))
    st, code = raw("POST", "/proto", xml, query="delete=")
    check("DeleteObjects without Content-MD5 or a checksum -> InvalidRequest", (st, code) == (400, "InvalidRequest"), (st, code))
    check("a refused DeleteObjects deleted nothing", c.head_object(Bucket="proto", Key="keep")["ContentLength"] == 10)
    up = c.create_multipart_upload(Bucket="proto", Key="mpu")["UploadId"]
    etag = c.upload_part(Bucket="proto", Key="mpu", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    done = f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>".encode()
    st, code = raw("POST", "/proto/mpu", done, query=f"uploadId={up}", headers={"content-md5": b64md5(b"other")})
    check("CompleteMultipartUpload with a wrong Content-MD5 -> BadDigest", (st, code) == (400, "BadDigest"), (st, code))
    check("... and the object was not published", err_code(lambda: c.head_object(Bucket="proto", Key="mpu")) == "404")
    st, code = raw("POST", "/proto/mpu", done, query=f"uploadId={up}", headers={"content-md5": b64md5(done)})
    check("CompleteMultipartUpload with the right Content-MD5 -> 200", st == 200, (st, code))
    # On CompleteMultipartUpload x-amz-checksum-* is the whole object's checksum, not the body's.
    whole = os.urandom(6 * 1024 * 1024)
    up = c.create_multipart_upload(Bucket="proto", Key="full", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")["UploadId"]
    parts = []
    for n, piece in enumerate([whole[:5 * 1024 * 1024], whole[5 * 1024 * 1024:]], 1):
        r = c.upload_part(Bucket="proto", Key="full", UploadId=up, PartNumber=n, Body=piece, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    crc = base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
    code = err_code(lambda: c.complete_multipart_upload(Bucket="proto", Key="full", UploadId=up, ChecksumCRC32=crc,
                                                        ChecksumType="FULL_OBJECT", MultipartUpload={"Parts": parts}))
    check("CompleteMultipartUpload with a whole-object CRC32 -> OK", code == "OK", code)
    # An unsigned request is refused before its body is read (no body is ever sent here).
    sock = socket.create_connection((HOST, PORT), timeout=10)
    try:
        sock.sendall(f"POST /proto?delete= HTTP/1.1\r\nhost: {HOST}:{PORT}\r\ncontent-md5: {b64md5(b'x')}\r\n"
                     "content-length: 1000\r\n\r\n".encode())
        head = sock.recv(65536)
    except (socket.timeout, ConnectionResetError):
        head = b"no answer"
    finally:
        sock.close()
    check("unsigned DeleteObjects with Content-MD5 -> 403 without waiting for its body", head.startswith(b"HTTP/1.1 403"),
          head[:60])
    st, _ = raw("HEAD", "/proto/keep", headers={"range": "bytes=0-3"})
    check("ranged HEAD -> 206", st == 206, st)
    r = c.head_object(Bucket="proto", Key="keep", Range="bytes=0-3")
    check("ranged HEAD has the range's length and Content-Range",
          (r["ContentLength"], r.get("ContentRange")) == (4, "bytes 0-3/10"), r)
    c.put_object(Bucket="proto", Key="empty", Body=b"")
    for rg in ["bytes=-5", "bytes=0-0", "bytes=0-"]:
        st, _ = raw("GET", "/proto/empty", headers={"range": rg})
        check(f"{rg} on an empty object -> 416", st == 416, st)
    up = c.create_multipart_upload(Bucket="proto", Key="copy")["UploadId"]
    for rg in ["bytes=5-100", "bytes=20-30"]:
        code = err_code(lambda: c.upload_part_copy(Bucket="proto", Key="copy", UploadId=up, PartNumber=1,
                                                   CopySource={"Bucket": "proto", "Key": "keep"}, CopySourceRange=rg))
        check(f"UploadPartCopy {rg} of a 10-byte source -> InvalidArgument", code == "InvalidArgument", code)
    c.abort_multipart_upload(Bucket="proto", Key="copy", UploadId=up)
    for k in ["u/a/1", "u/a/2", "u/b", "u/c/1"]:
        c.create_multipart_upload(Bucket="proto", Key=k)
    seen, km, im = [], "", ""
    for _ in range(10):
        out = c.list_multipart_uploads(Bucket="proto", Prefix="u/", Delimiter="/", MaxUploads=1, KeyMarker=km,
                                       UploadIdMarker=im)
        seen += [p["Prefix"] for p in out.get("CommonPrefixes", [])] + [u["Key"] for u in out.get("Uploads", [])]
        if not out["IsTruncated"]:
            break
        km, im = out.get("NextKeyMarker", ""), out.get("NextUploadIdMarker", "")
    check("ListMultipartUploads pages list each common prefix once", seen == ["u/a/", "u/b", "u/c/"], seen)
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    other = boto3.client("s3", endpoint_url=EP, aws_access_key_id=AK, aws_secret_access_key=SK,
                         region_name="eu-west-1", config=cfg)
    st, code = raw("GET", "/proto/keep", region="eu-west-1")
    check("a signature for another region -> 400 AuthorizationHeaderMalformed",
          (st, code) == (400, "AuthorizationHeaderMalformed"), (st, code))
    loc = other.get_bucket_location(Bucket="proto").get("LocationConstraint")
    check("GetBucketLocation answers whatever the signature's region", loc in (None, "", REGION), loc)
    url = other.generate_presigned_url("get_object", Params={"Bucket": "proto", "Key": "keep"}, ExpiresIn=60)
    r = http.client.HTTPConnection(HOST, PORT, timeout=30)
    r.request("GET", url[len(EP):])
    resp = r.getresponse()
    body = resp.read()
    check("a presigned URL for another region -> AuthorizationQueryParametersError",
          resp.status == 400 and b"AuthorizationQueryParametersError" in body, (resp.status, body[:200]))
    r.close()


def complete_retry_checks(c):
    """A CompleteMultipartUpload retried after success (SDKs retry one whose answer was lost)."""
    c.create_bucket(Bucket="retry")
    up = c.create_multipart_upload(Bucket="retry", Key="obj", ContentType="text/first")["UploadId"]
    pieces = [os.urandom(5 * 1024 * 1024), b"tail"]
    parts = []
    for n, piece in enumerate(pieces, 1):
        parts.append({"PartNumber": n, "ETag": c.upload_part(Bucket="retry", Key="obj", UploadId=up, PartNumber=n,
                                                             Body=piece)["ETag"]})
    done = lambda ps: c.complete_multipart_upload(Bucket="retry", Key="obj", UploadId=up, MultipartUpload={"Parts": ps})
    first = done(parts)
    check("CompleteMultipartUpload Location is an absolute URL", first.get("Location") == f"{EP}/retry/obj",
          first.get("Location"))
    try:
        again = done(parts)
        same = (again["ResponseMetadata"]["HTTPStatusCode"], again["ETag"], again["Key"]) == (200, first["ETag"], "obj")
    except ClientError as e:
        again, same = e.response["Error"], False
    check("CompleteMultipartUpload retried after success -> 200 and the same ETag", same, again)
    code = err_code(lambda: done(parts[:1]))
    check("... a completion naming other parts -> NoSuchUpload", code == "NoSuchUpload", code)
    # An aborted upload of the key with the same parts (so the same ETag) and other metadata.
    ab = c.create_multipart_upload(Bucket="retry", Key="obj", ContentType="text/aborted")["UploadId"]
    ab_parts = [{"PartNumber": n, "ETag": c.upload_part(Bucket="retry", Key="obj", UploadId=ab, PartNumber=n,
                                                         Body=piece)["ETag"]} for n, piece in enumerate(pieces, 1)]
    c.abort_multipart_upload(Bucket="retry", Key="obj", UploadId=ab)
    code = err_code(lambda: c.complete_multipart_upload(Bucket="retry", Key="obj", UploadId=ab,
                                                        MultipartUpload={"Parts": ab_parts}))
    head = c.head_object(Bucket="retry", Key="obj")
    check("CompleteMultipartUpload of an aborted upload with a completed one's parts -> NoSuchUpload, object kept",
          (code, head.get("ContentType"), head["ETag"]) == ("NoSuchUpload", "text/first", first["ETag"]),
          (code, head.get("ContentType"), head["ETag"], first["ETag"]))
    up = c.create_multipart_upload(Bucket="retry", Key="aborted")["UploadId"]
    etag = c.upload_part(Bucket="retry", Key="aborted", UploadId=up, PartNumber=1, Body=b"x")["ETag"]
    c.abort_multipart_upload(Bucket="retry", Key="aborted", UploadId=up)
    code = err_code(lambda: c.complete_multipart_upload(Bucket="retry", Key="aborted", UploadId=up,
                                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}))
    check("CompleteMultipartUpload of an aborted upload -> NoSuchUpload", code == "NoSuchUpload", code)


# ---------------------------------------------------------------- boto3

def listing_checks(c):
    """Truncated listings paged as boto3 pages them (ListObjects: NextMarker, or the last Key
    without a delimiter, where S3 sends no NextMarker)."""
    keys = sorted(["pg/0", "pg/1", "pg/d/2", "pg/d/3", "pg/e/4", "pg/5"])
    for k in keys:
        c.put_object(Bucket="boto", Key=k, Body=b"p")
    p = c.get_paginator("list_objects")
    pages = list(p.paginate(Bucket="boto", Prefix="pg/", PaginationConfig={"PageSize": 2}))
    got = [o["Key"] for pg in pages for o in pg.get("Contents", [])]
    check("boto3 ListObjects (v1) paginator without a delimiter: every key once, no NextMarker",
          got == keys and len(pages) == 3 and not any("NextMarker" in pg for pg in pages), (got, len(pages)))
    pages = list(p.paginate(Bucket="boto", Prefix="pg/", Delimiter="/", PaginationConfig={"PageSize": 2}))
    got = sorted([o["Key"] for pg in pages for o in pg.get("Contents", [])]
                 + [cp["Prefix"] for pg in pages for cp in pg.get("CommonPrefixes", [])])
    check("boto3 ListObjects (v1) paginator with a delimiter: every key and prefix once, NextMarker",
          got == ["pg/0", "pg/1", "pg/5", "pg/d/", "pg/e/"] and all("NextMarker" in pg for pg in pages[:-1]), got)
    first = c.list_objects_v2(Bucket="boto", Prefix="pg/", MaxKeys=2)
    r = c.list_objects_v2(Bucket="boto", Prefix="pg/", MaxKeys=2, ContinuationToken=first["NextContinuationToken"],
                          StartAfter="pg/d/3")
    got = [o["Key"] for o in r.get("Contents", [])]
    check("boto3 ListObjectsV2 with a token ignores StartAfter (as S3)", got == keys[2:4], got)
    c.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})


def boto3_checks():
    c = s3()
    c.create_bucket(Bucket="boto")
    check("boto3 list_buckets sees the bucket", "boto" in [b["Name"] for b in c.list_buckets()["Buckets"]])
    for name, size in [("zero", 0), ("small", 1234), ("fifty", 50 * 1024 * 1024)]:
        src = os.path.join(WORK, f"boto-{name}")
        with open(src, "wb") as f:
            f.write(os.urandom(size))
        c.upload_file(src, "boto", f"up/{name}")
        dst = src + ".back"
        c.download_file("boto", f"up/{name}", dst)
        same = open(src, "rb").read() == open(dst, "rb").read()
        etag = c.head_object(Bucket="boto", Key=f"up/{name}")["ETag"]
        check(f"boto3 upload_file/download_file {name} ({size} bytes) byte-equal", same, etag)
    check("boto3 50 MiB went multipart (ETag has -N)", "-" in c.head_object(Bucket="boto", Key="up/fifty")["ETag"])
    # Reads by part number, as downloaders that fetch part by part make them: the part count,
    # each part's length and bytes (boto3 uploaded in parts of its 8 MiB chunk size).
    fifty = open(os.path.join(WORK, "boto-fifty"), "rb").read()
    n = int(c.head_object(Bucket="boto", Key="up/fifty")["ETag"].strip('"').split("-")[1])
    h1 = c.head_object(Bucket="boto", Key="up/fifty", PartNumber=1)
    part = h1["ContentLength"]
    last = c.get_object(Bucket="boto", Key="up/fifty", PartNumber=n)
    want = fifty[(n - 1) * part:]
    check("boto3 HEAD/GET by PartNumber of a multipart object: count, 206, the part's bytes",
          h1.get("PartsCount") == n and h1["ResponseMetadata"]["HTTPStatusCode"] == 206
          and last["ContentRange"] == f"bytes {(n - 1) * part}-{len(fifty) - 1}/{len(fifty)}"
          and last["Body"].read() == want, (n, h1.get("PartsCount"), part))
    check("boto3 GET by a PartNumber past the last -> InvalidPartNumber",
          err_code(lambda: c.get_object(Bucket="boto", Key="up/fifty", PartNumber=n + 1)) == "InvalidPartNumber")
    r = c.get_object(Bucket="boto", Key="up/small", Range="bytes=10-19")
    check("boto3 ranged GET", r["ContentRange"] == "bytes 10-19/1234" and len(r["Body"].read()) == 10)
    check("boto3 GET with PartNumber and Range -> InvalidRequest (as S3)",
          err_code(lambda: c.get_object(Bucket="boto", Key="up/small", PartNumber=1, Range="bytes=0-9")) == "InvalidRequest")
    check("boto3 PUT If-Match on a missing key -> NoSuchKey (as S3), nothing stored",
          err_code(lambda: c.put_object(Bucket="boto", Key="if-match-none", Body=b"x", IfMatch='"00000000000000000000000000000000"'))
          == "NoSuchKey" and err_code(lambda: c.head_object(Bucket="boto", Key="if-match-none")) == "404")
    listing_checks(c)
    c.put_object(Bucket="boto", Key="meta", Body=b"x", ContentType="text/x", Metadata={"a": "b"},
                 CacheControl="no-cache", ContentEncoding="identity", ContentLanguage="de",
                 ContentDisposition="inline", Expires=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    h = c.head_object(Bucket="boto", Key="meta")
    check("boto3 metadata round trip",
          (h["ContentType"], h["Metadata"], h["CacheControl"], h["ContentEncoding"], h["ContentLanguage"],
           h["ContentDisposition"], h["Expires"].year) == ("text/x", {"a": "b"}, "no-cache", "identity", "de", "inline", 2030), h)
    r = c.get_object(Bucket="boto", Key="meta", ResponseContentType="application/override")
    check("boto3 response-content-type override", r["ContentType"] == "application/override", r["ContentType"])
    check("boto3 conditional GET If-None-Match -> 304",
          err_code(lambda: c.get_object(Bucket="boto", Key="meta", IfNoneMatch=h["ETag"])) == "304")
    check("boto3 PUT If-None-Match:* on existing -> 412",
          err_code(lambda: c.put_object(Bucket="boto", Key="meta", Body=b"y", IfNoneMatch="*")) in ("PreconditionFailed", "412"))
    # Conditions on the destination of a copy, and conditional deletes (ignored before: the
    # copy overwrote and the delete deleted).
    c.put_object(Bucket="boto", Key="cp-dst", Body=b"original")
    dst = c.head_object(Bucket="boto", Key="cp-dst")["ETag"]
    src = {"Bucket": "boto", "Key": "meta"}
    check("boto3 CopyObject If-None-Match:* onto an existing key -> 412",
          err_code(lambda: c.copy_object(Bucket="boto", Key="cp-dst", CopySource=src, IfNoneMatch="*")) in ("PreconditionFailed", "412"))
    check("boto3 CopyObject If-Match with another ETag -> 412",
          err_code(lambda: c.copy_object(Bucket="boto", Key="cp-dst", CopySource=src, IfMatch='"nope"')) in ("PreconditionFailed", "412"))
    check("... and the destination was not overwritten",
          c.get_object(Bucket="boto", Key="cp-dst")["Body"].read() == b"original")
    c.copy_object(Bucket="boto", Key="cp-dst", CopySource=src, IfMatch=dst)
    check("boto3 CopyObject If-Match with its ETag copies",
          c.head_object(Bucket="boto", Key="cp-dst")["ETag"] == h["ETag"])
    check("boto3 DeleteObject If-Match with another ETag -> 412",
          err_code(lambda: c.delete_object(Bucket="boto", Key="cp-dst", IfMatch='"nope"')) in ("PreconditionFailed", "412"))
    check("... and the object is still there", c.head_object(Bucket="boto", Key="cp-dst")["ETag"] == h["ETag"])
    out = c.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "cp-dst", "ETag": '"nope"'}]})
    check("boto3 DeleteObjects entry with another ETag -> its PreconditionFailed error",
          [e.get("Code") for e in out.get("Errors", [])] == ["PreconditionFailed"] and not out.get("Deleted"), out)
    check("... and the object is still there", c.head_object(Bucket="boto", Key="cp-dst")["ETag"] == h["ETag"])
    c.delete_object(Bucket="boto", Key="cp-dst", IfMatch=h["ETag"])
    check("boto3 DeleteObject If-Match with its ETag deletes",
          err_code(lambda: c.head_object(Bucket="boto", Key="cp-dst")) == "404")
    c.put_object(Bucket="boto", Key="cp-any", Body=b"x")
    c.delete_object(Bucket="boto", Key="cp-any", IfMatch="*")
    check("boto3 DeleteObject If-Match:* deletes an existing object",
          err_code(lambda: c.head_object(Bucket="boto", Key="cp-any")) == "404")
    check("boto3 DeleteObject If-Match on a missing object -> NoSuchKey (as S3)",
          err_code(lambda: c.delete_object(Bucket="boto", Key="cp-any", IfMatch='"nope"')) == "NoSuchKey"
          and err_code(lambda: c.delete_object(Bucket="boto", Key="cp-any", IfMatch="*")) == "NoSuchKey")
    r = c.delete_object(Bucket="boto", Key="cp-any")
    check("boto3 DeleteObject without a condition on a missing object -> 204",
          r["ResponseMetadata"]["HTTPStatusCode"] == 204, r["ResponseMetadata"]["HTTPStatusCode"])
    check("boto3 CopyObject If-Match onto a missing key -> NoSuchKey (as S3), nothing stored",
          err_code(lambda: c.copy_object(Bucket="boto", Key="cp-none", CopySource=src, IfMatch=h["ETag"])) == "NoSuchKey"
          and err_code(lambda: c.head_object(Bucket="boto", Key="cp-none")) == "404")
    # A virtual-hosted-style request is refused, not taken as path-style (which made
    # `PUT /key` on bucket.localhost create a bucket named after the key).
    st, code = raw("PUT", "/vh-key", headers={"host": f"boto.localhost:{PORT}"})
    check("a virtual-hosted-style request -> 400 InvalidRequest", (st, code) == (400, "InvalidRequest"), (st, code))
    check("... and no bucket was created", "vh-key" not in [b["Name"] for b in c.list_buckets()["Buckets"]])
    st, code = raw("GET", "/boto", query="list-type=2", headers={"host": f"s3.localhost:{PORT}"})
    check("a path-style endpoint on a name under localhost that is no bucket still works", st == 200, (st, code))
    # Protections the store does not give are refused, not silently dropped.
    check("boto3 PUT with SSE-C -> 501",
          err_code(lambda: c.put_object(Bucket="boto", Key="ssec", Body=b"secret", SSECustomerAlgorithm="AES256",
                                        SSECustomerKey="k" * 32)) in ("NotImplemented", "501"))
    check("boto3 PUT with Object Lock -> 501",
          err_code(lambda: c.put_object(Bucket="boto", Key="lock", Body=b"x", ObjectLockMode="COMPLIANCE",
                                        ObjectLockRetainUntilDate=datetime.datetime(2030, 1, 1))) in ("NotImplemented", "501"))
    check("... and neither was stored", err_code(lambda: c.head_object(Bucket="boto", Key="ssec")) == "404"
          and err_code(lambda: c.head_object(Bucket="boto", Key="lock")) == "404")
    check("boto3 PUT with StorageClass GLACIER -> 400 InvalidStorageClass, nothing stored",
          err_code(lambda: c.put_object(Bucket="boto", Key="cold", Body=b"x", StorageClass="GLACIER")) == "InvalidStorageClass"
          and err_code(lambda: c.head_object(Bucket="boto", Key="cold")) == "404")
    c.put_object(Bucket="boto", Key="std-class", Body=b"x", StorageClass="STANDARD")
    check("boto3 PUT with StorageClass STANDARD is stored",
          c.get_object(Bucket="boto", Key="std-class")["Body"].read() == b"x")
    check("boto3 CreateMultipartUpload with StorageClass STANDARD_IA -> InvalidStorageClass",
          err_code(lambda: c.create_multipart_upload(Bucket="boto", Key="cold-mpu", StorageClass="STANDARD_IA"))
          == "InvalidStorageClass")
    check("boto3 CreateBucket with Object Lock -> 501",
          err_code(lambda: c.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)) in ("NotImplemented", "501"))
    # 90 metadata entries (hyper's default limit of 100 header fields answered 431).
    many = {f"k{i}": "v" for i in range(90)}
    c.put_object(Bucket="boto", Key="many-meta", Body=b"m", Metadata=many)
    check("boto3 PUT with 90 metadata entries round-trips",
          c.head_object(Bucket="boto", Key="many-meta")["Metadata"] == many)
    check("boto3 GetBucketVersioning: never enabled (no Status)",
          "Status" not in c.get_bucket_versioning(Bucket="boto"))
    # ListBuckets with a prefix and pages (the parameters were ignored).
    for name in ("lb-a", "lb-b", "lb-c"):
        c.create_bucket(Bucket=name)
    names = [b["Name"] for b in c.list_buckets(Prefix="lb-")["Buckets"]]
    check("boto3 ListBuckets Prefix", names == ["lb-a", "lb-b", "lb-c"], names)
    page = c.list_buckets(Prefix="lb-", MaxBuckets=2)
    rest = c.list_buckets(Prefix="lb-", MaxBuckets=2, ContinuationToken=page.get("ContinuationToken", ""))
    check("boto3 ListBuckets MaxBuckets and ContinuationToken page through",
          [b["Name"] for b in page["Buckets"]] == ["lb-a", "lb-b"] and [b["Name"] for b in rest["Buckets"]] == ["lb-c"]
          and "ContinuationToken" not in rest, (page.get("ContinuationToken"), rest.get("ContinuationToken")))
    for name in ("lb-a", "lb-b", "lb-c"):
        c.delete_bucket(Bucket=name)
    out = c.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "meta"}, {"Key": "nope"}], "Quiet": True})
    check("boto3 DeleteObjects quiet", not out.get("Deleted") and not out.get("Errors"), out)
    check("boto3 wrong secret -> SignatureDoesNotMatch",
          err_code(lambda: s3("wrong-secret").list_buckets()) == "SignatureDoesNotMatch")


# ---------------------------------------------------------------- hostile inputs

def store_dir_clean():
    extra = [f for f in os.listdir(STORE_DIR) if not f.startswith("store.redb")]
    return not extra, extra


def hostile_checks():
    c = s3()
    c.create_bucket(Bucket="hostile")
    c.create_bucket(Bucket="neighbor")
    c.put_object(Bucket="neighbor", Key="only", Body=b"n")
    odd = ["..", "../../escape", "a/../b", "\\", "a\\..\\b", "%00", "a//b", "//lead", "./.", "k" * 1024]
    for k in odd:
        c.put_object(Bucket="hostile", Key=k, Body=k.encode())
    keys = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket="hostile"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    check("odd keys are stored literally, inside the bucket", sorted(keys) == sorted(odd), sorted(set(keys) ^ set(odd)))
    same = all(c.get_object(Bucket="hostile", Key=k)["Body"].read() == k.encode() for k in odd)
    check("odd keys read back their own bytes", same)
    neighbor = [o["Key"] for o in c.list_objects_v2(Bucket="neighbor").get("Contents", [])]
    check("odd keys did not reach another bucket", neighbor == ["only"], neighbor)
    ok, extra = store_dir_clean()
    check("nothing written next to the store", ok, extra)
    check("1025-byte key -> KeyTooLongError",
          err_code(lambda: c.put_object(Bucket="hostile", Key="k" * 1025, Body=b"x")) == "KeyTooLongError")
    st, code = raw("PUT", "/hostile/a%00b", b"x")
    check("NUL in a key -> 400", st == 400, (st, code))
    for name in ["ab", "UPPER", "a_b", "-ab", "a..b", "192.168.1.1", "x" * 64, "sthree-x", "abc--x-s3"]:
        st, code = raw("PUT", f"/{name}")
        check(f"invalid bucket name {name[:20]!r} -> InvalidBucketName", (st, code) == (400, "InvalidBucketName"), (st, code))
    for xml in [b"<Delete><Object><Key>a</Key>", b"not xml", b"<Wrong/>"]:
        st, code = raw("POST", "/hostile", xml, query="delete=",
                       headers={"content-md5": base64.b64encode(hashlib.md5(xml).digest()).decode()})
        check(f"DeleteObjects malformed XML {xml[:12]!r} -> MalformedXML", (st, code) == (400, "MalformedXML"), (st, code))
    up = c.create_multipart_upload(Bucket="hostile", Key="mpu")["UploadId"]
    for xml in [b"<CompleteMultipartUpload><Part>", b"garbage", b""]:
        st, code = raw("POST", "/hostile/mpu", xml, query=f"uploadId={up}")
        check(f"CompleteMultipartUpload malformed XML {xml[:12]!r} -> MalformedXML", (st, code) == (400, "MalformedXML"), (st, code))
    data = os.urandom(200_000)
    st, code = raw("PUT", "/hostile/trunc", data[:100_000], mode="unsigned", content_length=len(data), shutdown_write=True)
    check("truncated body (Content-Length larger than sent) rejected", st in (0, 400), (st, code))
    st, code = raw("PUT", "/hostile/longer", data, mode="single", content_length=100_000)
    check("body larger than declared (signed hash of full body) -> XAmzContentSHA256Mismatch",
          (st, code) == (400, "XAmzContentSHA256Mismatch"), (st, code))
    st, code = raw("PUT", "/hostile/chunked-lie", data, mode="signed-chunks", decoded_len=10)
    check("aws-chunked decoded length smaller than sent -> 400", st == 400, (st, code))
    st, code = raw("PUT", "/hostile/chunked-short", data, mode="unsigned-trailer", decoded_len=len(data) + 5)
    check("aws-chunked decoded length larger than sent -> IncompleteBody", (st, code) == (400, "IncompleteBody"), (st, code))
    st, code = raw("PUT", "/hostile/badcrc", data, mode="unsigned-trailer", tamper="crc")
    check("wrong x-amz-checksum-crc32 trailer -> BadDigest", (st, code) == (400, "BadDigest"), (st, code))
    st, code = raw("PUT", "/hostile/notrailer", data, mode="unsigned-trailer", tamper="no-trailer")
    check("declared trailer missing -> 400", st == 400, (st, code))
    st, code = raw("PUT", "/hostile/badsha", data, tamper="sha")
    check("wrong x-amz-content-sha256 -> XAmzContentSHA256Mismatch", (st, code) == (400, "XAmzContentSHA256Mismatch"), (st, code))
    st, code = raw("PUT", "/hostile/good", data, mode="unsigned-trailer")
    check("well-formed unsigned-trailer upload accepted", st == 200, (st, code))
    st, code = raw("PUT", "/hostile/good2", data, mode="signed-chunks")
    check("well-formed signed-chunks upload accepted", st == 200, (st, code))
    st, code = raw("PUT", "/hostile/md5", b"abc", headers={"content-md5": base64.b64encode(b"0" * 16).decode()})
    check("Content-MD5 mismatch -> BadDigest", (st, code) == (400, "BadDigest"), (st, code))
    present = set()
    for page in c.get_paginator("list_objects_v2").paginate(Bucket="hostile"):
        present |= {o["Key"] for o in page.get("Contents", [])}
    bad = {"trunc", "longer", "chunked-lie", "chunked-short", "badcrc", "notrailer", "badsha", "md5", "a\0b"} & present
    check("no rejected upload became visible", not bad and {"good", "good2"} <= present, bad)
    protocol_checks(c)
    complete_retry_checks(c)
    # Authentication edge cases.
    st, code = raw("GET", "/", secret="wrong")
    check("wrong secret -> 403 SignatureDoesNotMatch", (st, code) == (403, "SignatureDoesNotMatch"), (st, code))
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    st, code = raw("GET", "/", when=old)
    check("clock skew 20 min behind -> 403 RequestTimeTooSkewed", (st, code) == (403, "RequestTimeTooSkewed"), (st, code))
    ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=20)
    st, code = raw("GET", "/", when=ahead)
    check("clock skew 20 min ahead -> 403 RequestTimeTooSkewed", (st, code) == (403, "RequestTimeTooSkewed"), (st, code))
    st, code = raw("GET", "/", when=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10))
    check("clock skew 10 min -> accepted", st == 200, (st, code))
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    conn.request("GET", "/hostile")
    r = conn.getresponse()
    check("anonymous -> 403", r.status == 403, r.status)
    r.read()
    conn.request("GET", "/", headers={"Authorization": "AWS " + AK + ":c2lnbmF0dXJl"})
    r = conn.getresponse()
    check("SigV2 -> 403", r.status == 403, r.status)
    r.read()
    url = s3().generate_presigned_url("get_object", Params={"Bucket": "hostile", "Key": "good"}, ExpiresIn=1)
    time.sleep(2.5)
    conn.request("GET", url[len(EP):])
    r = conn.getresponse()
    check("expired presigned URL -> 403", r.status == 403, r.status)
    r.read()
    url = s3().generate_presigned_url("get_object", Params={"Bucket": "hostile", "Key": "good"}, ExpiresIn=8 * 86400)
    conn.request("GET", url[len(EP):])
    r = conn.getresponse()
    check("presigned X-Amz-Expires over 7 days -> 400", r.status == 400, r.status)
    r.read()
    # Size limits: request head 64 KiB, XML bodies 4 MiB.
    sock = socket.create_connection((HOST, PORT), timeout=30)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 100_000 + b"\r\n\r\n")
        head = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        head = b"reset"
    finally:
        sock.close()
    check("100 KB request head -> 431", head.startswith(b"HTTP/1.1 431"), head[:40])
    big = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 200_000 + b"</Delete>"
    st, code = raw("POST", "/hostile", big, query="delete=",
                   headers={"content-md5": base64.b64encode(hashlib.md5(big).digest()).decode()})
    check("5.8 MB DeleteObjects body -> MaxMessageLengthExceeded", (st, code) == (400, "MaxMessageLengthExceeded"), (st, code))
    # Idle limits (the CI server runs with --idle-timeout 5).
    sock = socket.create_connection((HOST, PORT), timeout=60)
    started = time.time()
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n")  # half a request head, then silence
        closed = sock.recv(65536) is not None
    except (ConnectionResetError, socket.timeout):
        closed = False
    finally:
        sock.close()
    check("silent connection dropped by the idle timeout", closed and time.time() - started < 60)
    st, code = raw("PUT", "/hostile/stalled", b"x" * 10, mode="unsigned", content_length=100)
    check("stalled upload body -> RequestTimeout", (st, code) == (400, "RequestTimeout"), (st, code))
    check("stalled upload not visible", err_code(lambda: c.head_object(Bucket="hostile", Key="stalled")) == "404")
    # Bodies s3s reads itself: the XML of DeleteObjects, and the body of an STS-scoped request,
    # which it hashes before it checks the signature (a known access key id is enough, no secret).
    xml = b"<Delete><Object><Key>k</Key></Object></Delete>"
    st, code = raw("POST", "/hostile", xml[:10], query="delete=", mode="unsigned", content_length=len(xml),
                   headers={"content-md5": base64.b64encode(hashlib.md5(xml).digest()).decode()})
    check("stalled DeleteObjects body -> RequestTimeout", (st, code) == (400, "RequestTimeout"), (st, code))
    now = datetime.datetime.now(datetime.timezone.utc)
    head = (f"POST / HTTP/1.1\r\nhost: {HOST}:{PORT}\r\nx-amz-date: {now.strftime('%Y%m%dT%H%M%SZ')}\r\n"
            f"authorization: AWS4-HMAC-SHA256 Credential={AK}/{now.strftime('%Y%m%d')}/{REGION}/sts/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}\r\n"
            "content-type: application/x-www-form-urlencoded\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n")
    sock = socket.create_connection((HOST, PORT), timeout=60)
    started, resp = time.time(), b""
    try:
        sock.sendall(head.encode() + b"Action=AssumeRole")
        while chunk := sock.recv(65536):
            resp += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        sock.close()
    check("stalled STS-scoped body with a forged signature answered and closed",
          resp.startswith(b"HTTP/1.1 4") and time.time() - started < 50, resp[:80])
    check("server still answers", "hostile" in [b["Name"] for b in c.list_buckets()["Buckets"]])


boto3_checks()
hostile_checks()
print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
