#!/bin/bash
# Thirty-fourth session, call 5: the f32 SSD LM path with C B^T launched after the states
# kernel (`MAMBA_CUDA_SSD32_CBLATE=1`) against the default order; per-call timing
# (alternating, three rounds), then the forced tests.
. "$PWD/.device-carry/device_common.sh"
for r in 1 2 3; do
  for v in 0 1; do
    MAMBA_CUDA_SSD32_CBLATE=$v MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;4,2048,32,64,128;2,2048,80,64,128" \
      timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r cblate=$v /"
  done
done > "$OUT/timing.txt"
el
MAMBA_CUDA_SSD32_CBLATE=1 MAMBA_GPU_SSD_IMPLS=lm timeout 150 "$C/gpu" ssd_chunked ssd_batch ssd_aliased --test-threads=1 --nocapture > "$OUT/test.log" 2>&1
echo "cblate tests rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test.log" | head -8
el
