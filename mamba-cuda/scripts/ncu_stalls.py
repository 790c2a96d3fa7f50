#!/usr/bin/env python3
"""Stall samples per SASS instruction from an Nsight Compute source page.

On the GPU machine:
    ncu --clock-control none -c 1 --section SourceCounters --section WarpStateStats \\
        -k regex:KERNEL -o rep -f PROGRAM ARGS
    ncu -i rep.ncu-rep --page source --csv --print-source sass > src.csv
Here (or there):
    python3 mamba-cuda/scripts/ncu_stalls.py src.csv [TOP]

Prints the total samples and warp instructions, the stall reasons' shares, the samples and
executions by opcode, and the TOP instructions by samples with their three largest reasons.
One instruction with a large share of long-scoreboard samples is usually a value used right
after its global (or spilled local) load. A report with several kernels prints one page per
kernel; split the CSV at its "Kernel Name" lines first.
"""
import collections
import csv
import sys


def main() -> None:
    rows = list(csv.reader(open(sys.argv[1])))
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    print("kernel:", rows[0][1] if len(rows[0]) > 1 else "?")
    hdr, data = rows[1], rows[2:]
    ix = {h: i for i, h in enumerate(hdr)}

    def num(r, k):
        try:
            return float(r[ix[k]])
        except (KeyError, ValueError, IndexError):
            return 0.0

    samples_key = "Warp Stall Sampling (All Samples)"
    stalls = [h for h in hdr if h.startswith("stall_") and "Not Issued" not in h]
    tot = sum(num(r, samples_key) for r in data) or 1.0
    ins = sum(num(r, "Instructions Executed") for r in data) or 1.0
    print(f"samples {tot:.0f}, warp instructions {ins:.0f}, SASS lines {len(data)}")
    agg = collections.Counter()
    for r in data:
        for k in stalls:
            agg[k] += num(r, k)
    print("stalls (% of samples):", ", ".join(f"{k[6:]} {100 * v / tot:.1f}" for k, v in agg.most_common(12)))
    by_op, by_op_n = collections.Counter(), collections.Counter()
    for r in data:
        words = r[ix["Source"]].split()
        if not words:
            continue
        op = (words[1] if words[0].startswith("@") and len(words) > 1 else words[0]).split(".")[0]
        by_op[op] += num(r, samples_key)
        by_op_n[op] += num(r, "Instructions Executed")
    print("opcode      %samples %executed")
    for op, v in by_op.most_common(20):
        print(f"  {op:10s} {100 * v / tot:6.1f} {100 * by_op_n[op] / ins:6.1f}")
    print("top instructions:")
    order = sorted(range(len(data)), key=lambda k: -num(data[k], samples_key))
    for k in order[:top]:
        r = data[k]
        reasons = sorted(((num(r, x), x[6:]) for x in stalls), reverse=True)[:3]
        print(
            f"{k:5d} {100 * num(r, samples_key) / tot:5.2f}% ex={num(r, 'Instructions Executed'):.0f} "
            f"{r[ix['Source']][:60]:60s} " + " ".join(f"{n}:{100 * v / tot:.2f}" for v, n in reasons)
        )


if __name__ == "__main__":
    main()
