#!/usr/bin/env python3
"""What a durable commit costs by the number of separate places it writes, against the bytes it
writes. Each "commit" is some pwrites over blocks already written, then one fdatasync.

    python3 scripts/fsync-extents.py [DIR] [COMMITS]
    python3 scripts/fsync-extents.py DIR COMMITS STRACE

The first form writes 4 KiB and 8 KiB pages at random places (scattered) or side by side
(contiguous), and whole ranges in one write; then many scattered pages synced at once. The
second replays the commits of a real run, taken with `strace -f -e trace=pwrite64,fdatasync -o STRACE target/release/keystone-bench W1
--reps 1 --engines keystone`: each commit's pwrites (offsets and sizes, not its bytes) and its
fdatasync, on a file of the same size, for the run's first commits (one writer) and its last
(the batches of eight), as written and with the gaps of up to 16 and 64 KiB between them
written too (what merging nearby writes into one would give).

DIR defaults to the current directory (put it on the disk the store lives on)."""
import os
import random
import re
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
try:
    commits = int(sys.argv[2]) if len(sys.argv) > 2 else 300
except ValueError:
    sys.exit(f"COMMITS must be a whole number, got {sys.argv[2]!r}")
if commits < 8:
    sys.exit(f"COMMITS must be at least 8, got {commits}")
trace = sys.argv[3] if len(sys.argv) > 3 else None
if not os.path.isdir(directory):
    sys.exit(f"{directory}: not a directory")
SPAN = 64 << 20


def open_filled(span):
    path = os.path.join(directory, f".fsync-extents-{os.getpid()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    block = os.urandom(1 << 20)
    for at in range(0, span, 1 << 20):
        os.pwrite(fd, block, at)
    os.fsync(fd)
    return path, fd


def timed(fd, name, plan):
    """`plan()` gives one commit's writes as (offset, size); prints µs per commit."""
    buf = os.urandom(1 << 20)
    start = time.perf_counter()
    extents = written = 0
    for _ in range(commits):
        writes = plan()
        extents += len(merged(writes, 0))
        for at, size in writes:
            os.pwrite(fd, buf[:size] if size <= len(buf) else bytes(size), at)
            written += size
        os.fdatasync(fd)
    per = (time.perf_counter() - start) / commits
    print(f"{name:48} {per * 1e6:7.0f} µs per commit  {extents / commits:5.1f} extents  "
          f"{written / commits / 1024:6.1f} KiB")


def scattered(pages, size):
    return lambda: [(random.randrange(0, SPAN - size) // 4096 * 4096, size) for _ in range(pages)]


def contiguous(pages, size):
    def plan():
        base = random.randrange(0, SPAN - pages * size) // 4096 * 4096
        return [(base + i * size, size) for i in range(pages)]
    return plan


def merged(writes, gap):
    """The writes sorted, with those at most `gap` bytes apart made one (the gap written too)."""
    out = []
    for at, size in sorted(writes):
        if out and at <= out[-1][0] + out[-1][1] + gap:
            end = max(out[-1][0] + out[-1][1], at + size)
            out[-1] = (out[-1][0], end - out[-1][0])
        else:
            out.append((at, size))
    return out


def replay(fd, label, recorded):
    for gap in (None, 16384, 65536):
        picks = iter(recorded * (commits // max(len(recorded), 1) + 1))
        name = f"{label}, {'as written' if gap is None else f'gaps <= {gap // 1024} KiB filled'}"
        timed(fd, name, lambda: (lambda c: c if gap is None else merged(c, gap))(next(picks)))


def parse(path):
    """Each fdatasync's preceding pwrites, as (offset, size) lists."""
    found, current = [], []
    try:
        lines = open(path).readlines()
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    for line in lines:
        m = re.search(r"pwrite64\(\d+, .*?, (\d+), (\d+)\) = ", line)
        if m:
            current.append((int(m.group(2)), int(m.group(1))))
        elif "fdatasync(" in line and "=" in line:
            found.append(current)
            current = []
    return found


if trace is None:
    print(f"{commits} commits each, on {SPAN >> 20} MiB of written blocks in {os.path.abspath(directory)}")
    path, fd = open_filled(SPAN)
    try:
        for _ in range(2):
            timed(fd, "1 x 4 KiB", scattered(1, 4096))
            timed(fd, "8 x 4 KiB, scattered", scattered(8, 4096))
            timed(fd, "8 x 4 KiB, side by side", contiguous(8, 4096))
            timed(fd, "32 KiB in one write", contiguous(1, 32768))
            timed(fd, "8 x 8 KiB, scattered", scattered(8, 8192))
            timed(fd, "8 x 8 KiB, side by side", contiguous(8, 8192))
            timed(fd, "128 KiB in one write", contiguous(1, 131072))
        # Many pages in one sync (what a checkpoint of a journal would do): the disk takes
        # several at a time, so each costs less than alone.
        buf = os.urandom(8192)
        for pages in (64, 512, 4096):
            for at in [random.randrange(0, SPAN - 8192) // 8192 * 8192 for _ in range(pages)]:
                os.pwrite(fd, buf, at)
            start = time.perf_counter()
            os.fdatasync(fd)
            took = time.perf_counter() - start
            print(f"{pages:5} x 8 KiB scattered, one fdatasync: {took * 1e3:7.1f} ms, {took / pages * 1e6:5.1f} µs per page")
    finally:
        os.close(fd)
        os.unlink(path)
else:
    recorded = [c for c in parse(trace) if c]
    if len(recorded) < 40:
        sys.exit(f"{trace}: only {len(recorded)} commits with writes; expected a W1 run's")
    span = max(at + size for c in recorded for at, size in c) + (1 << 20)
    path, fd = open_filled(span)
    try:
        # W1 runs one writer first, then eight: the first commits are single puts, the last
        # ones batches (a few at each end left out: the store's creation, the last stragglers).
        replay(fd, "one writer's commits", recorded[10:10 + commits])
        # (W1's eight writers make ~125 batches of its 1,000 puts: at most 100 are taken.)
        replay(fd, "eight writers' batches", recorded[-min(commits // 4, 100) - 5:-5])
    finally:
        os.close(fd)
        os.unlink(path)
