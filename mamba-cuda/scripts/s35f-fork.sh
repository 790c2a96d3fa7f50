#!/bin/bash
# Thirty-fifth session, call 6: `MAMBA_CUDA_SSDL_CBH=6` (bf16: `ssdl_hdr3_*`, then the states
# kernel, with `ssdl_cb_*_i` beside them on the plugin's own stream) against `=3` (the
# default) and `=5`: the forced tests of `=6`, per-call timing alternating.
. "$PWD/.device-carry/device_common.sh"
MAMBA_CUDA_SSDL_CBH=6 MAMBA_GPU_SSD_IMPLS=lm,lm16 MAMBA_GPU_SSDL_VARS=60,70,71 timeout 150 "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 --nocapture > "$OUT/test6v.log" 2>&1
echo "cbh6 vars rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test6v.log" | head -8
MAMBA_CUDA_SSDL_CBH=6 timeout 200 "$C/gpu" ssd_aliased ssd_batch --test-threads=1 > "$OUT/test6b.log" 2>&1
echo "cbh6 batch rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test6b.log" | head -8
el
for r in 1 2 3; do
  for m in 3 6 5; do
    MAMBA_CUDA_SSDL_CBH=$m MAMBA_BENCH_DTYPE=bf16 \
      MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;2,1000,24,64,128;4,2048,32,64,128;2,2048,80,64,128" \
      timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r cbh=$m /"
  done
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
for tool in memcheck racecheck; do
  MAMBA_CUDA_SSDL_CBH=6 MAMBA_GPU_QUICK=1 MAMBA_GPU_SSD_IMPLS=lm,lm16 MAMBA_GPU_SSDL_VARS=71 timeout 120 compute-sanitizer --tool $tool --print-limit 20 \
    "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > "$OUT/san-$tool.log" 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/san-$tool.log" | head -3
done
el
