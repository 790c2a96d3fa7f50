#!/bin/bash
# Forty-ninth session, call 1: the 64-step chunked SSD backward (kernels/ssd_bwdl.cuh, the
# default of the chunked path at p 64, N 128 / 64 without z): its tests, the chunked tests,
# timings against the 32-step chunk kernel (MAMBA_CUDA_SSD_BWDL=0) alternating, memcheck and
# racecheck on the quick test, ncu of one LM-shape call's kernels.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle; do
  timeout 200 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
  echo "$t rc=$?"; grep -E "test result|panicked|checks|worst|FAIL" /tmp/t.log | cut -c1-260 | head -6
done
el
for round in 1 2; do
for form in old new; do
  case $form in old) E="MAMBA_CUDA_SSD_BWDL=0";; new) E="MAMBA_S49=1";; esac
  for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048" "ssd f32 b2" "ssd bf16 b2"; do
    env $E MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
    echo "r$round $form rc=$?"; grep -E "TIMING|panicked" /tmp/b.log | cut -c1-200
  done
done
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_q64 --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
  el
done
if [ -n "$NCU" ]; then
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048" timeout 150 "$NCU" --clock-control none -k regex:"ssdb|bwd_cast" -c 12 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/n.log 2>&1
  echo "ncu rc=$?"; grep -E "^  ssdb|^  bwd_cast|Duration" /tmp/n.log | head -40
  el
fi
} > "$OUT/s49a.txt" 2>&1
cat "$OUT/s49a.txt"
