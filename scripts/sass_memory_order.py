#!/usr/bin/env python3
"""The order of a kernel's memory operations, barriers and tensor-core instructions in its SASS,
runs of the same operation folded into one line: where a thread waits for one global load after
another (a load, its use, the next load), which no profile of a single kernel shows as such.

Usage (the cubins from scripts/ptxas_report.py with PTXAS_KEEP, `cuobjdump` from the pip
wheels nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm on PATH):
  PTXAS_KEEP=/tmp/cubins python3 scripts/ptxas_report.py /tmp/ks gemm_wgmma_ws > /dev/null
  python3 scripts/sass_memory_order.py /tmp/cubins/<entry>.cubin [first-line [last-line]]

Prints `line: OP xN` for each run of N consecutive operations OP (LDG, STG, LDS, STS, LDGSTS,
cp.async/TMA, mbarrier, BAR, IGMMA/IMMA, branches to a convergence point: BSSY), then the totals.
A global load whose value the next instructions need before the following load is issued shows
as alternating `LDG x1` / `STG ...` lines: a round trip each.
"""
import re
import subprocess
import sys

KINDS = [
    ("LDGSTS", "cp.async"), ("UBLKCP", "bulk copy"), ("UTMALDG", "TMA load"),
    ("LDGDEPBAR", "cp.async commit"), ("DEPBAR", "cp.async wait"),
    ("LDG", "LDG"), ("STG", "STG"), ("LDS", "LDS"), ("STS", "STS"), ("LDL", "LDL (spill)"),
    ("STL", "STL (spill)"), ("SYNCS", "mbarrier"), ("BAR", "BAR"), ("IGMMA", "IGMMA"),
    ("HGMMA", "HGMMA"), ("IMMA", "IMMA"), ("SHFL", "SHFL"), ("BSSY", "BSSY"), ("EXIT", "EXIT"),
]


def kind(op):
    for prefix, name in KINDS:
        if op.startswith(prefix):
            return name
    return None


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    last = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 30
    text = subprocess.run(["cuobjdump", "-sass", sys.argv[1]], capture_output=True, text=True,
                          check=True).stdout
    ops = []
    for line in text.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if not m:
            continue
        words = m.group(2).split()
        if words and words[0].startswith("@"):
            words = words[1:]
        if words:
            ops.append(words[0])
    runs, totals = [], {}
    for i, op in enumerate(ops):
        k = kind(op)
        if k is None or not first <= i <= last:
            continue
        totals[k] = totals.get(k, 0) + 1
        if runs and runs[-1][1] == k:
            runs[-1][2] += 1
        else:
            runs.append([i, k, 1])
    for i, k, n in runs:
        print(f"{i}: {k} x{n}")
    print("totals: " + ", ".join(f"{k} {n}" for k, n in sorted(totals.items())))


if __name__ == "__main__":
    main()
