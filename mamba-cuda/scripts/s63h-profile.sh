#!/bin/bash
# Sixty-third session: every kernel's duration (ncu, one launch each) in one bf16 training pass of
# the Mamba2Block at the LM width on the final defaults, for where the next session goes.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 300 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv ./mamba-cuda-bench > "$OUT/prof.csv" 2>/tmp/e.log
echo "$(el) ncu rc=$? lines $(wc -l < "$OUT/prof.csv")" | tee -a "$T"
echo "$(el) done" | tee -a "$T"
