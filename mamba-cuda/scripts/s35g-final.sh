#!/bin/bash
# Thirty-fifth session, call 7: `MAMBA_CUDA_SSDL_CBH=6` the default (bf16 and, with its two new
# entry points, f16): the SSD and Mamba2Block GPU tests on the default path, per-call timing
# against `=3`, the sanitizers on the f16 form, then the full benchmark.
. "$PWD/.device-carry/device_common.sh"
timeout 220 "$C/gpu" ssd_aliased ssd_batch ssd_chunked ssd_matches mamba2_block --test-threads=1 --nocapture > "$OUT/gpu-ssd.log" 2>&1
echo "gpu ssd + block tests rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu-ssd.log" | head -12
el
for r in 1 2 3; do
  for m in 3 6; do
    for ty in bf16 f16; do
      MAMBA_CUDA_SSDL_CBH=$m MAMBA_BENCH_DTYPE=$ty MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;4,2048,32,64,128" \
        timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r cbh=$m /"
    done
  done
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 MAMBA_GPU_SSD_IMPLS=lm16 MAMBA_GPU_SSDL_VARS=71 timeout 100 compute-sanitizer --tool $tool --print-limit 20 \
    "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > "$OUT/san-$tool.log" 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/san-$tool.log" | head -3
done
el
bash "$C/device_run.sh" bench > "$OUT/bench.txt" 2>&1
grep -E "rc=|^ssd (f32|bf16|f16) b8 L2048|^scan1 f32 b2 d384 N64 L(400|800)|block" "$OUT/bench.txt" | head -20
el
