#!/bin/bash
# Thirty-fifth session, call 8: where C B^T goes when it runs beside the SSD LM states kernel:
# `=6` (ordered after the call's start: it may take SM slots before the states kernel's first
# wave is out) against `=7` (ordered after the header kernel, when the states grid is queued)
# and `=3`, per call, four rounds; then the full benchmark with `=7`.
. "$PWD/.device-carry/device_common.sh"
MAMBA_CUDA_SSDL_CBH=7 MAMBA_GPU_SSD_IMPLS=lm,lm16 MAMBA_GPU_SSDL_VARS=71 timeout 100 "$C/gpu" ssd_chunked_matches_the_oracle ssd_batch --test-threads=1 > "$OUT/test7.log" 2>&1
echo "cbh7 rc=$?"; grep -E "test result|panicked" "$OUT/test7.log" | head -3
for r in 1 2 3 4; do
  for m in 3 6 7; do
    for ty in bf16 f16; do
      MAMBA_CUDA_SSDL_CBH=$m MAMBA_BENCH_DTYPE=$ty MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128" \
        timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r cbh=$m /"
    done
  done
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
MAMBA_CUDA_SSDL_CBH=7 bash "$C/device_run.sh" bench > "$OUT/bench.txt" 2>&1
grep -E "rc=|^ssd (f32|bf16|f16) b8 L2048|^scan1 f32 b2 d384 N64 L(400|800)|block" "$OUT/bench.txt" | head -20
el
