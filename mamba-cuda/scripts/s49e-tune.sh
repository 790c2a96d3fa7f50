#!/bin/bash
# Forty-ninth session, call 6: the 64-step SSD backward's launch choices at the LM shape (bf16,
# f32): both walks in one launch, heads per x block (4, default 8, 16), heads per s block (10,
# default 20, 40); two rounds, each form in its own process.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for round in 1 2; do
for E in "MAMBA_S49=default" "MAMBA_CUDA_SSD_BWDC_WALKS=1" "MAMBA_CUDA_SSD_BWDL_HPBX=4" "MAMBA_CUDA_SSD_BWDL_HPBX=16" "MAMBA_CUDA_SSD_BWDL_HPB=10" "MAMBA_CUDA_SSD_BWDL_HPB=40"; do
  for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do
    env $E MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
    echo "r$round $E rc=$? $(grep -E "TIMING|panicked" /tmp/b.log | cut -c8-200 | head -1)"
  done
done
done
el
} > "$OUT/s49e.txt" 2>&1
cat "$OUT/s49e.txt"
