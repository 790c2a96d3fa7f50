#!/bin/bash
# Fiftieth session, call 4: `ssdbl_xs` with fewer shared-memory bank conflicts (S at rows 8
# mod 32 apart, C B^T transposed for the per-head passes) and dx stored in pairs; the 64-step
# form's rule at 2.25 triples per SM: tests, goldens, timings against call 3's plugin
# (prev.so), sanitizers, ncu.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle; do
  timeout 300 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
  echo "$t rc=$?"; grep -E "test result|panicked|checks|FAIL|rror" /tmp/t.log | cut -c1-300 | head -8
done
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden default $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -3
done
el
B() { env "$@" MAMBA_GPU_BWD_BENCH=1 timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 2>&1 | grep -E "TIMING|panicked" | cut -c8-200; }
for round in 1 2 3; do
  for P in prev.so libmamba_cuda.so; do
    for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do echo "r$round $P $(B MAMBA_CUDA_PLUGIN=$C/$P MAMBA_GPU_BWD_BENCH_ONLY="$only")"; done
    B MAMBA_CUDA_PLUGIN=$C/$P MAMBA_GPU_BWD_BENCH_ONLY=none MAMBA_GPU_BWD_SSD_SHAPE=2,1024,24,128 | sed "s/^/r$round $P /"
  done
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_CUDA_SSD_BWDL_HPB=2 MAMBA_CUDA_SSD_BWDL_HPBX=2 MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_q64 --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool (2 heads per block, both forms) rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
  el
done
if [ -n "$NCU" ]; then
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048" timeout 200 "$NCU" --clock-control none -k regex:"ssdbl_xs" -c 1 --section SpeedOfLight --section WarpStateStats --section InstructionStats --section SourceCounters --section LaunchStats "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > "$OUT/ncu_s50d.txt" 2>&1
  echo "ncu rc=$?"; grep -vE "^==PROF==|^\s*$" "$OUT/ncu_s50d.txt" | grep -A200 "ssdbl_xs" | head -120
fi
el
} > "$OUT/s50d.txt" 2>&1
cat "$OUT/s50d.txt"
