#!/bin/bash
# Fifty-second session, call 2: cpu-simd on the GPU host's 16 cores, the Mamba-1 scan's
# decays by exp2 (xtask, 5cc9a89) against the tree before it (prev-xtask, d27600b),
# alternating, three rounds; then the keep-every-state budget against the recompute
# (MAMBA_CPU_SCAN_KEEP_KIB=0) with exp2, at 4, 8 and 16 threads.
. "$PWD/.device-carry/device_common.sh"
{
for round in 1 2 3; do
  for X in prev-xtask xtask; do
    "$C/$X" bench --backend cpu-simd --no-reference --only "selective_scan" --out /tmp/b > /tmp/b.log 2>&1
    grep "^| selective_scan |" /tmp/b.log | sed "s/^/r$round $X /"
  done
done
el
for th in 4 8 16; do
  for keep in "" 0; do
    MAMBA_CPU_SCAN_KEEP_KIB=$keep MAMBA_CPU_THREADS=$th "$C/xtask" bench --backend cpu-simd --no-reference --only "selective_scan forward+backward" --out /tmp/b > /tmp/b.log 2>&1
    grep "^| selective_scan" /tmp/b.log | sed "s/^/threads=$th keep=$keep /"
  done
done
el
} > "$OUT/s52b.txt" 2>&1
cat "$OUT/s52b.txt"
