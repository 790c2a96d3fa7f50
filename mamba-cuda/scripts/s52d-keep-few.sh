#!/bin/bash
# Fifty-second session, call 4: as s52c-keep.sh at 2 and 4 threads (L 2048 / 4096).
. "$PWD/.device-carry/device_common.sh"
{
for round in 1 2; do
  for th in 2 4; do
    for keep in 0 1024 2048; do
      echo "r$round th=$th keep=$keep $(MAMBA_CPU_SCAN_KEEP_KIB=$keep TH=$th LENS=2048,4096 REPS=3 $C/tchk)"
    done
  done
done
el
} > "$OUT/s52d.txt" 2>&1
cat "$OUT/s52d.txt"
