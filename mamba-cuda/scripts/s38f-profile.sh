#!/bin/bash
# Thirty-eighth session, call 6: per-kernel durations of the Mamba2Block forward+backward
# (f32 and bf16, L800) after calls 1-5.
. "$PWD/.device-carry/device_common.sh"
{
MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv -c 300 "$C/gpu_block_train" block_train_bench > "$OUT/ncu-f32.csv" 2> /tmp/ncu.err
echo "ncu f32 rc=$?"
el
} > "$OUT/summary.txt" 2>&1
