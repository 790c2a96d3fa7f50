#!/bin/bash
# Fifty-first session (no device that session; owed to the next one): cpu-simd on the GPU
# host's 16 cores, the scans' backward with the parallel dB / dC reduction (xtask, this tree)
# against the tree before it (prev-xtask: built from d49638f), alternating, three rounds;
# then the Mamba-1 backward at 4, 8 and 16 threads (MAMBA_CPU_THREADS), every state kept and
# recomputed from checkpoints (MAMBA_CPU_SCAN_KEEP_KIB=0).
. "$PWD/.device-carry/device_common.sh"
{
nproc; lscpu | grep -E "Model name|L2|L3"
for round in 1 2 3; do
  for X in prev-xtask xtask; do
    [ -x "$C/$X" ] || continue
    "$C/$X" bench --backend cpu-simd --no-reference --only "selective_scan forward+backward" --out /tmp/b > /tmp/b.log 2>&1
    grep "^| selective_scan" /tmp/b.log | sed "s/^/r$round $X /"
    "$C/$X" bench --backend cpu-simd --no-reference --only "ssd forward+backward" --out /tmp/b > /tmp/b.log 2>&1
    grep "^| ssd" /tmp/b.log | sed "s/^/r$round $X /"
  done
done
el
for th in 4 8 16; do
  for keep in "" 0; do
    # MAMBA_CPU_SCAN_KEEP_KIB=0: checkpoints and a recompute instead of every state kept
    # (2 MiB per row at L 4096; on the 2-core machine the recompute is 40-50% slower).
    MAMBA_CPU_SCAN_KEEP_KIB=$keep MAMBA_CPU_THREADS=$th "$C/xtask" bench --backend cpu-simd --no-reference --only "selective_scan forward+backward" --out /tmp/b > /tmp/b.log 2>&1
    grep "^| selective_scan" /tmp/b.log | sed "s/^/threads=$th keep=$keep /"
  done
done
el
} > "$OUT/s51a.txt" 2>&1
cat "$OUT/s51a.txt"
