#!/usr/bin/env python3
"""Instructions per call of the functions whose names end with each NAME, from a callgrind
output file: the inclusive cost of every call to it (callgrind_annotate --tree=calling lists
each call edge with its count), summed over its callers, over the number of calls.

    python3 scripts/lib/callgrind_per_call.py CALLGRIND_OUT NAME...

Prints one line per NAME: `<instructions per call> <calls>`. Reading the call edges, not the
function's own line, keeps code inlined into it from other files (which callgrind_annotate
may list as functions of their own) in its count; `--threshold=100` keeps functions that are a
tiny share of the whole run (W6's gets after loading a million objects) in the listing."""
import re
import subprocess
import sys

out, names = sys.argv[1], sys.argv[2:]
text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=calling", "--threshold=100", out],
                      check=True, capture_output=True, text=True).stdout
edge = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+>\s+(.*) \(([\d,]+)x\)")
for name in names:
    cost = calls = 0
    for line in text.splitlines():
        m = edge.match(line)
        # "file:function [object]": the function name ends just before the object's bracket.
        if m and m.group(2).split(" [")[0].endswith(name):
            cost += int(m.group(1).replace(",", ""))
            calls += int(m.group(3).replace(",", ""))
    if calls == 0:
        sys.exit(f"no calls to a function named ...{name} in {out}")
    print(cost // calls, calls)
