#!/usr/bin/env python3
"""Puts a native and a vgpu run of vgpu-bench side by side, with the issue's targets.

    tools/bench/compare.py NATIVE_OUTPUT VGPU_OUTPUT [--fail-on-missed]

Each file is what vgpu-bench printed (other lines are ignored, so a whole log
will do); its figures are the lines

    figure <name> <value> <unit>        or    figure <name> FAILED <reason>

For every figure of either run it prints native, vgpu, the ratio vgpu/native
and, where the performance issue sets one, the target with "met" or "MISSED".
The targets are for the H100 over the local transport; figures without one are
informational. Exit status: 0 (also when a target is missed, unless
--fail-on-missed is given: then 1), 2 when an input cannot be read or holds no
figure.
"""
import re
import sys

# name -> (kind, bound, text). Kinds:
#   ratio_ge   vgpu / native >= bound          (rates, bandwidth, TFLOP/s)
#   ratio_le   vgpu / native <= bound          (latencies)
#   plus_us    vgpu <= native + bound (us)     (round trips a call must not pay)
TARGETS = {
    "launch_rate": ("ratio_ge", 0.9, ">= 0.9x"),
    "launch_sync": ("ratio_le", 1.5, "<= 1.5x"),
    "memgetinfo": ("plus_us", 5.0, "<= native+5us"),
    "h2d_4k_pageable": ("plus_us", 5.0, "<= native+5us"),
    "d2h_4k_pageable": ("plus_us", 5.0, "<= native+5us"),
    "h2d_64m_pinned": ("ratio_ge", 0.9, ">= 0.9x"),
    "d2h_64m_pinned": ("ratio_ge", 0.9, ">= 0.9x"),
    "h2d_64m_pageable": ("ratio_ge", 1.0, ">= 1.0x"),
    "d2h_64m_pageable": ("ratio_ge", 1.0, ">= 1.0x"),
    "sgemm_4096": ("ratio_ge", 0.98, ">= 0.98x"),
    "sgemm_64_rate": ("ratio_ge", 0.8, ">= 0.8x"),
}

# Exactly vgpu-bench's machine-readable lines (not its human table): a value is
# a plain number or FAILED.
FIGURE = re.compile(r"^figure (\S+) (FAILED|[0-9][0-9.]*)(?: (.*))?$")


def read_run(path):
    """(figures in order as {name: (value or None, unit or reason)}, header lines)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        sys.exit(f"compare: cannot read {path}: {e.strerror}")
    figures, header = {}, []
    for line in lines:
        if line.startswith("vgpu-bench: ") and len(header) < 3:
            header.append(line)
        m = FIGURE.match(line)
        if not m:
            continue
        name, value, rest = m.group(1), m.group(2), (m.group(3) or "").strip()
        if value == "FAILED":
            figures[name] = (None, rest or "FAILED")
            continue
        try:
            figures[name] = (float(value), rest)
        except ValueError:
            figures[name] = (None, f"unreadable value {value!r}")
    if not figures:
        print(f"compare: {path} holds no 'figure' line (is it vgpu-bench's output?)", file=sys.stderr)
        sys.exit(2)
    return figures, header


def verdict(name, native, vgpu):
    """(target text, 'met' / 'MISSED' / '' (no target) / 'not measured')."""
    if name not in TARGETS:
        return "-", ""
    kind, bound, text = TARGETS[name]
    if native is None or vgpu is None or native <= 0:
        return text, "not measured"
    if kind == "ratio_ge":
        ok = vgpu / native >= bound
    elif kind == "ratio_le":
        ok = vgpu / native <= bound
    else:
        ok = vgpu <= native + bound
    return text, "met" if ok else "MISSED"


def fmt(v):
    if v is None:
        return "FAILED"
    return f"{v:.0f}" if v >= 1000 else f"{v:.3g}"


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    if "--help" in flags or "-h" in argv[1:]:
        print(__doc__.strip())
        return 0
    if len(args) != 2 or any(f != "--fail-on-missed" for f in flags):
        print("usage: compare.py NATIVE_OUTPUT VGPU_OUTPUT [--fail-on-missed]", file=sys.stderr)
        return 2
    native, native_head = read_run(args[0])
    vgpu, vgpu_head = read_run(args[1])

    # The two files the wrong way round would invert every ratio: say so.
    if any(" vgpu (" in h for h in native_head):
        print(f"compare: WARNING: {args[0]} (given as native) says it ran through vgpu")
    if any(" native (" in h for h in vgpu_head):
        print(f"compare: WARNING: {args[1]} (given as vgpu) says it ran natively")
    for path, head in ((args[0], native_head), (args[1], vgpu_head)):
        if any("--quick" in h for h in head):
            print(f"compare: WARNING: {path} is a --quick run: its figures are a smoke test, not the issue's")
    print("native: " + (" | ".join(h[len("vgpu-bench: "):] for h in native_head) or args[0]))
    print("vgpu:   " + (" | ".join(h[len("vgpu-bench: "):] for h in vgpu_head) or args[1]))
    print()

    names = list(native) + [n for n in vgpu if n not in native]
    row = "{:<24} {:>12} {:>12} {:<11} {:>8} {:<15} {}"
    print(row.format("figure", "native", "vgpu", "unit", "ratio", "target", ""))
    counts = {"met": 0, "MISSED": 0, "not measured": 0}
    reasons = []
    for n in names:
        nv, nu = native.get(n, (None, "(absent)"))
        vv, vu = vgpu.get(n, (None, "(absent)"))
        unit = nu if nv is not None else (vu if vv is not None else "")
        ratio = f"{vv / nv:.2f}x" if nv and vv is not None else "-"
        target, v = verdict(n, nv, vv)
        if v in counts:
            counts[v] += 1
        print(row.format(n, fmt(nv) if n in native else "-", fmt(vv) if n in vgpu else "-", unit, ratio,
                         target, v))
        for side, val, why, src in (("native", nv, nu, native), ("vgpu", vv, vu, vgpu)):
            if val is None and n in src:
                reasons.append(f"  {n} [{side}]: {why}")
    if reasons:
        print("\nnot measured:")
        print("\n".join(reasons))
    missing = [n for n in TARGETS if n not in native and n not in vgpu]
    print()
    print(f"targets: {counts['met']} met, {counts['MISSED']} MISSED, {counts['not measured']} not measured"
          + (f", {len(missing)} absent from both runs ({' '.join(missing)})" if missing else ""))
    print("(ratio = vgpu / native; targets are the issue's, for the H100 over the local transport;"
          " figures without one are informational)")
    if "--fail-on-missed" in flags and (counts["MISSED"] or counts["not measured"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
