#!/bin/bash
# Forty-ninth session, call 5: the SSD LM forward+backward on an H200 (the card of mamba-ssm's
# numbers), the 64-step form against the 32-step chunk kernel, alternating, two rounds.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
for round in 1 2; do
for form in old new; do
  case $form in old) E="MAMBA_CUDA_SSD_BWDL=0";; new) E="MAMBA_S49=1";; esac
  for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do
    env $E MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
    echo "r$round $form rc=$?"; grep -E "TIMING|panicked|rror" /tmp/b.log | cut -c1-240 | head -4
  done
done
done
el
timeout 200 "$C/gpu_backward" ssd_backward_q64_matches_the_oracle --nocapture --test-threads=1 > /tmp/t.log 2>&1
echo "q64 test rc=$?"; grep -E "test result|checks" /tmp/t.log | head -3
} > "$OUT/s49d.txt" 2>&1
cat "$OUT/s49d.txt"
