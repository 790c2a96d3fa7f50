#!/bin/bash
# Forty-ninth session, call 7: the final plugin (both walks in one launch with the 64-step
# kernels; forced heads per block honoured at any shape): the q64 test (now with 2-4 heads per
# x / s block forced, and 8 / 16 at 16 heads per group), the chunked tests, the goldens,
# memcheck and racecheck with 2 heads per block forced, the LM timings at the default.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle; do
  timeout 200 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
  echo "$t rc=$?"; grep -E "test result|panicked|checks|FAIL|rror" /tmp/t.log | cut -c1-300 | head -8
done
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_CUDA_SSD_BWDL_HPB=2 MAMBA_CUDA_SSD_BWDL_HPBX=2 MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_q64 --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool (2 heads per block) rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
  el
done
for round in 1 2; do
  for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048" "ssd f32 b2"; do
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
    echo "r$round default rc=$?"; grep -E "TIMING|panicked" /tmp/b.log | cut -c1-200 | head -3
  done
done
el
} > "$OUT/s49f.txt" 2>&1
cat "$OUT/s49f.txt"
