#!/usr/bin/env python3
"""What a durable commit costs when its pages land in a hole of the file, against blocks already
written, and with zeros written ahead of the growth (what crates/keystone/src/storage/prefill.rs
does). Each "commit" is one pwrite of WRITE bytes appended after the last, then fdatasync.

    python3 scripts/fsync-holes.py [DIR] [WRITE_BYTES] [COMMITS]

DIR defaults to the current directory (put it on the disk the store lives on)."""
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
write = int(sys.argv[2]) if len(sys.argv) > 2 else 12288
commits = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
SPAN = 256 << 20


def run(name, prepare, ahead=0):
    path = os.path.join(directory, f".fsync-holes-{os.getpid()}-{name}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        prepare(fd)
        os.fsync(fd)
        buf = os.urandom(write)
        filled = 0
        start = time.perf_counter()
        for i in range(commits):
            at = (i * write) % (SPAN - write)
            os.pwrite(fd, buf, at)
            if ahead and at + write > filled:
                os.pwrite(fd, bytes(ahead), at + write)
                filled = at + write + ahead
            os.fdatasync(fd)
        per = (time.perf_counter() - start) / commits
        print(f"{name:28} {per * 1e6:7.0f} µs per commit")
    finally:
        os.close(fd)
        os.unlink(path)


def zeros(fd):
    block = bytes(1 << 20)
    for i in range(SPAN >> 20):
        os.pwrite(fd, block, i << 20)


print(f"{commits} commits of {write} bytes + fdatasync, in {os.path.abspath(directory)}")
for _ in range(2):
    run("into a hole (set_len)", lambda fd: os.ftruncate(fd, SPAN))
    run("into fallocated blocks", lambda fd: os.posix_fallocate(fd, 0, SPAN))
    run("into written blocks", zeros)
    run("hole, zeros 1 MiB ahead", lambda fd: os.ftruncate(fd, SPAN), ahead=1 << 20)
