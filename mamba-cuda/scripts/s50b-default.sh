#!/bin/bash
# Fiftieth session, call 2: `ssdbl_xs` the default (up to 16 heads per block; dB / dC / dCB
# flushed by 8-byte vector reductions): the q64, chunked and default SSD backward tests, the
# goldens at the default, the LM timings against MAMBA_CUDA_SSD_BWDL_XS=0, the seed and two
# mid shapes with the 64-step form against the 32-step kernel, sanitizers, ncu.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle; do
  timeout 300 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
  echo "$t rc=$?"; grep -E "test result|panicked|checks|FAIL|rror" /tmp/t.log | cut -c1-300 | head -8
done
el
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden default $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -3
done
el
B() { env "$@" MAMBA_GPU_BWD_BENCH=1 timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 2>&1 | grep -E "TIMING|panicked" | cut -c8-200; }
for round in 1 2; do
  for E in "MAMBA_CUDA_SSD_BWDL_XS=0" "MAMBA_S50=default"; do
    for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do echo "r$round $E $(B $E MAMBA_GPU_BWD_BENCH_ONLY="$only")"; done
  done
  for E in "MAMBA_CUDA_SSD_BWDL=0" "MAMBA_CUDA_SSD_BWDL=1"; do
    B $E MAMBA_GPU_BWD_BENCH_ONLY="ssd f32 b2" | sed "s/^/r$round $E /"
    B $E MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b2" | sed "s/^/r$round $E /"
    for sh in "2,2048,24,128" "4,1024,32,64" "2,1024,24,128"; do
      B $E MAMBA_GPU_BWD_BENCH_ONLY=none MAMBA_GPU_BWD_SSD_SHAPE=$sh | sed "s/^/r$round $E /"
    done
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
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048" timeout 150 "$NCU" --clock-control none -k regex:"ssdb|bwd_cast" -c 9 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/n.log 2>&1
  echo "ncu bf16 rc=$?"; grep -E "^  ssdb|^  bwd_cast|Duration|Achieved Occ|Compute \(SM\) Thr|DRAM Thr" /tmp/n.log | head -50
fi
el
} > "$OUT/s50b.txt" 2>&1
cat "$OUT/s50b.txt"
