#!/usr/bin/env python3
"""Writes {value, "name"} lines for every member of NVIDIA's enum cudaError.

usage: gen_error_names.py driver_types.h OUT.inc
"""
import re
import sys

src = open(sys.argv[1]).read()
body = re.search(r"enum\s+__device_builtin__\s+cudaError\s*\{(.*?)\}", src, re.S)
if not body:
    sys.exit("enum cudaError not found in " + sys.argv[1])
text = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
entries = re.findall(r"(cudaError\w*|cudaSuccess)\s*=\s*(\d+)", text)
if len(entries) < 50:
    sys.exit("too few cudaError members parsed: %d" % len(entries))
out = "".join('{%s, "%s"},\n' % (v, n) for n, v in entries)
with open(sys.argv[2], "w") as f:
    f.write(out)
