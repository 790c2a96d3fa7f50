#!/bin/bash
# Fiftieth session, call 3: the 64-step kernels' products read their operands stored along k
# with ldmatrix: the q64 / chunked tests, goldens, timings against call 2's plugin (prev.so)
# alternating; the 64-step form against the 32-step kernel at 300-500 (row, head, chunk)
# triples, for the default rule.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle; do
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
for round in 1 2; do
  for E in "MAMBA_CUDA_SSD_BWDL=0" "MAMBA_CUDA_SSD_BWDL=1"; do
    for sh in "2,800,12,64" "2,1024,12,128" "1,2048,12,128" "2,2048,8,64" "4,512,12,64"; do
      B $E MAMBA_GPU_BWD_BENCH_ONLY=none MAMBA_GPU_BWD_SSD_SHAPE=$sh | sed "s/^/r$round $E /"
    done
  done
done
el
if [ -n "$NCU" ]; then
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048" timeout 200 "$NCU" --clock-control none -k regex:"ssdbl_xs|ssdbc_walks" -c 2 --section SpeedOfLight --section WarpStateStats --section InstructionStats --section SourceCounters --section LaunchStats "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > "$OUT/ncu_s50c.txt" 2>&1
  echo "ncu rc=$?"; grep -vE "^==PROF==|^\s*$" "$OUT/ncu_s50c.txt" | grep -A200 "ssdbl_xs" | head -120
fi
el
} > "$OUT/s50c.txt" 2>&1
cat "$OUT/s50c.txt"
