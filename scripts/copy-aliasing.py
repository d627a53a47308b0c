#!/usr/bin/env python3
"""4K aliasing in the kernel's copy from the page cache (BENCHMARKS.md, W4).

Writes a 100 MiB file in DIR (default /tmp), reads it once to warm the page cache, then times
1 MiB `preadv` calls into an anonymous mmap at chosen offsets: each row is a destination
offset past a page and a file offset, and their difference modulo 4096. On the bench machine's
AMD EPYC a difference of 1-31 bytes ran ~4x slower than 0 or 32 and more.

    python3 scripts/copy-aliasing.py [DIR] [READS]
"""
import mmap
import os
import sys
import tempfile
import time

MIB = 1 << 20
SIZE = 100 * MIB
PAIRS = [(0, 0), (16, 0), (16, 16), (32, 0), (48, 0), (48, 32), (80, 0), (80, 64), (0, 4080), (0, 4090), (8, 0), (1, 0)]


def main():
    where = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    reads = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    with tempfile.NamedTemporaryFile(dir=where) as f:
        f.write(os.urandom(MIB) * (SIZE // MIB))
        f.flush()
        os.fsync(f.fileno())
        fd = os.open(f.name, os.O_RDONLY)
        try:
            while os.read(fd, MIB):
                pass
            buf = mmap.mmap(-1, MIB + 2 * 4096)
            for dst, src in PAIRS:
                view = memoryview(buf)[dst:dst + MIB]
                t = time.perf_counter()
                for i in range(reads):
                    os.preadv(fd, [view], (i * MIB) % (SIZE - MIB) + src)
                us = (time.perf_counter() - t) / reads * 1e6
                view.release()
                print(f"destination {dst:5d} past a page, file offset +{src:5d}, "
                      f"difference mod 4096 {(dst - src) % 4096:5d}: {us:6.0f} us per MiB")
        finally:
            os.close(fd)


if __name__ == "__main__":
    main()
