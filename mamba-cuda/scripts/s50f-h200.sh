#!/bin/bash
# Fiftieth session, call 6 (on an H200 if one comes): the committed kernels (call 4's plugin,
# prev.so) at the SSD LM shape against the two-kernel form (XS=0) and the 32-step kernel
# (BWDL=0), three rounds; the q64 test.
. "$PWD/.device-carry/device_common.sh"
export MAMBA_CUDA_PLUGIN=$C/prev.so
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
timeout 300 "$C/gpu_backward" ssd_backward_q64_matches_the_oracle --nocapture --test-threads=1 > /tmp/t.log 2>&1
echo "q64 rc=$?"; grep -E "test result|panicked|checks" /tmp/t.log | head -3
B() { env "$@" MAMBA_GPU_BWD_BENCH=1 timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 2>&1 | grep -E "TIMING|panicked" | cut -c8-200; }
for round in 1 2 3; do
  for E in "MAMBA_S50=default" "MAMBA_CUDA_SSD_BWDL_XS=0" "MAMBA_CUDA_SSD_BWDL=0"; do
    for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do echo "r$round $E $(B $E MAMBA_GPU_BWD_BENCH_ONLY="$only")"; done
  done
done
B MAMBA_GPU_BWD_BENCH_ONLY="ssd" | sed "s/^/all /"
el
} > "$OUT/s50f.txt" 2>&1
cat "$OUT/s50f.txt"
