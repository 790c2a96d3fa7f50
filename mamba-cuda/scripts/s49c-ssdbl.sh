#!/bin/bash
# Forty-ninth session, call 4: the 64-step chunked SSD backward (kernels/ssd_bwdl.cuh, the
# default of the chunked path at p 64, N 128 / 64 without z; its kernels found in the
# ssd_bwdc module, the walks storing only the 64-step chunks' states): its tests, the
# chunked tests, the SSD and block goldens, timings against the 32-step chunk kernel
# (MAMBA_CUDA_SSD_BWDL=0) alternating, memcheck and racecheck on the quick test, ncu of one
# LM-shape backward's kernels.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle; do
  timeout 200 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
  echo "$t rc=$?"; grep -E "test result|panicked|checks|worst|FAIL|Error|error" /tmp/t.log | cut -c1-300 | head -12
done
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -3; grep -E "ssd_0[25].*grad_(A|dt|x)" /tmp/g.log | cut -c1-150
done
for dt in f32 bf16; do
  MAMBA_CUDA_SSD_BWDL=1 timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt BWDL=1 rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2; grep -E "ssd_0[25].*grad_(A|dt|x)" /tmp/g.log | cut -c1-150
done
el
for round in 1 2; do
for form in old new; do
  case $form in old) E="MAMBA_CUDA_SSD_BWDL=0";; new) E="MAMBA_CUDA_SSD_BWDL=1";; esac
  for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048" "ssd f16 b8 L2048" "ssd f32 b2" "ssd bf16 b2"; do
    env $E MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
    echo "r$round $form rc=$?"; grep -E "TIMING|panicked|rror" /tmp/b.log | cut -c1-240 | head -4
  done
done
done
el
for only in "ssd bf16 b8 L2048" "ssd f32 b2"; do
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
  echo "default rc=$?"; grep -E "TIMING|panicked|rror" /tmp/b.log | cut -c1-240 | head -4
done
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_q64 --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result|Invalid|Error" /tmp/s.log | head -6
  el
done
if [ -n "$NCU" ]; then
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048" timeout 150 "$NCU" --clock-control none -k regex:"ssdb|bwd_cast" -c 9 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/n.log 2>&1
  echo "ncu bf16 rc=$?"; grep -E "^  ssdb|^  bwd_cast|Duration|Registers Per|Achieved Occ|Compute \(SM\) Thr|Memory Thr" /tmp/n.log | head -60
  el
fi
} > "$OUT/s49c.txt" 2>&1
cat "$OUT/s49c.txt"
