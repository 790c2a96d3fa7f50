#!/bin/bash
# Fiftieth session, call 1: the x and s passes of the 64-step SSD backward in one kernel
# (`ssdbl_xs`, MAMBA_CUDA_SSD_BWDL_XS=1): the q64 test (both forms), the SSD goldens with the
# 64-step form and `ssdbl_xs` forced, the LM timings against the two-kernel form (heads per
# block 8 / 16 / 20), ncu of both forms.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
t=ssd_backward_q64_matches_the_oracle
timeout 300 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
echo "$t rc=$?"; grep -E "test result|panicked|checks|FAIL|rror" /tmp/t.log | cut -c1-300 | head -12
el
for dt in f32 bf16; do
  MAMBA_CUDA_SSD_BWDL=1 MAMBA_CUDA_SSD_BWDL_XS=1 timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden xs $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -3
done
el
for round in 1 2; do
for E in "MAMBA_CUDA_SSD_BWDL_XS=0" "MAMBA_CUDA_SSD_BWDL_XS=1" "MAMBA_CUDA_SSD_BWDL_XS=1 MAMBA_CUDA_SSD_BWDL_HPBX=16" "MAMBA_CUDA_SSD_BWDL_XS=1 MAMBA_CUDA_SSD_BWDL_HPBX=20"; do
  for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do
    env $E MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
    echo "r$round $E rc=$? $(grep -E "TIMING|panicked" /tmp/b.log | cut -c8-200 | head -1)"
  done
done
done
el
if [ -n "$NCU" ]; then
  for X in 0 1; do
    MAMBA_CUDA_SSD_BWDL_XS=$X MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048" timeout 150 "$NCU" --clock-control none -k regex:"ssdbl_(x|s|xs)_" -c 2 --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/n.log 2>&1
    echo "ncu XS=$X rc=$?"; grep -E "^  ssdbl|Duration|Achieved Occ|Compute \(SM\) Thr|Memory Thr|DRAM Thr|Stall|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth|Warp Cycles Per Issued" /tmp/n.log | head -40
  done
fi
el
} > "$OUT/s50a.txt" 2>&1
cat "$OUT/s50a.txt"
