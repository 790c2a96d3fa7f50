#!/bin/bash
# Fifty-fourth session, call 3: the SSD at the LM shape with packed sequences (seq_idx, 8
# sequences of 256 steps per row), forward and forward+backward, against the same shape
# without seq_idx in the same process, two rounds.
. .device-carry/device_common.sh
cd "$C"
for r in 1 2; do
  for only in "seq_idx" "ssd bf16 b8 L2048 h80 p64 N128" "ssd f32 b8 L2048 h80 p64 N128"; do
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 200 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r /" | tee -a "$OUT/time.txt"
  done
done
echo "$(el) done"
