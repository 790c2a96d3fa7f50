#!/bin/bash
# Fiftieth session, call 7: the review's refactor (ssdbl_x / ssdbl_xs sharing sbl_dx_w, sbl_dxh,
# sbl_dd; ssdbl_x's dx in pairs): tests, goldens, timings against call 4's plugin (prev.so,
# the kernels before it) alternating, sanitizers.
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
    echo "r$round $P XS=0 $(B MAMBA_CUDA_PLUGIN=$C/$P MAMBA_CUDA_SSD_BWDL_XS=0 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048")"
  done
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_CUDA_SSD_BWDL_HPB=2 MAMBA_CUDA_SSD_BWDL_HPBX=2 MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_q64 --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool (2 heads per block, both forms) rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
  el
done
} > "$OUT/s50g.txt" 2>&1
cat "$OUT/s50g.txt"
