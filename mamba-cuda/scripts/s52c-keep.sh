#!/bin/bash
# Fifty-second session, call 3: the Mamba-1 CPU backward's keep-every-state budget on the
# GPU host's 16 cores (tchk: the scratch timing example of mamba-cpu-simd at 5cc9a89, best
# of REPS calls each of forward and backward, seed shape b2 d384 N64), KEEP in KiB per row
# (0: always recompute; default 2048), at L 1024 / 2048 / 4096, 16 and 8 threads, two rounds.
. "$PWD/.device-carry/device_common.sh"
{
for round in 1 2; do
  for th in 16 8; do
    for keep in 0 512 1024 2048; do
      echo "r$round th=$th keep=$keep $(MAMBA_CPU_SCAN_KEEP_KIB=$keep TH=$th LENS=1024,2048,4096 REPS=5 $C/tchk)"
    done
  done
done
el
} > "$OUT/s52c.txt" 2>&1
cat "$OUT/s52c.txt"
