#!/usr/bin/env python3
"""Writes {value, "name"} lines for every member of NVIDIA's error enum.

usage: gen_error_names.py driver_types.h OUT.inc          (cudaError: the runtime's)
       gen_error_names.py cuda.h OUT.inc --driver         (CUresult: the driver's)
"""
import re
import sys

driver = len(sys.argv) == 4 and sys.argv[3] == "--driver"
src = open(sys.argv[1]).read()
if driver:
    body = re.search(r"typedef\s+enum\s+cudaError_enum\s*\{(.*?)\}", src, re.S)
    member = r"(CUDA_\w+)\s*=\s*(\d+)"
else:
    body = re.search(r"enum\s+__device_builtin__\s+cudaError\s*\{(.*?)\}", src, re.S)
    member = r"(cudaError\w*|cudaSuccess)\s*=\s*(\d+)"
if not body:
    sys.exit("error enum not found in " + sys.argv[1])
text = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
entries = re.findall(member, text)
if len(entries) < 50:
    sys.exit("too few error members parsed: %d" % len(entries))
out = "".join('{%s, "%s"},\n' % (v, n) for n, v in entries)
with open(sys.argv[2], "w") as f:
    f.write(out)
