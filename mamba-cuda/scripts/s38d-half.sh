#!/bin/bash
# Thirty-eighth session, call 4: the half-precision block-train test with the backward's
# products on cuBLASLt (it failed in call 3; the message), and the times of call 3 again.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" block_train_device_matches_host_f32 block_train_host --test-threads=1 > /tmp/t.log 2>&1
echo "block_train f32 + host fallback rc=$?"; grep -E "test result|panicked" /tmp/t.log
timeout 200 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 > /tmp/t.log 2>&1
echo "gpu conv + block rc=$?"; grep -E "test result|panicked" /tmp/t.log
timeout 200 "$C/gpu_backward" causal_conv1d --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_backward conv rc=$?"; grep -E "test result|panicked" /tmp/t.log
MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 "$C/gpu_block_train" block_train_device_matches_host_f32 --test-threads=1 > /tmp/t.log 2>&1
echo "memcheck block_train f32 rc=$? $(grep -E 'ERROR SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool racecheck --print-limit 20 "$C/gpu_block_train" block_train_device_matches_host_f32 --test-threads=1 > /tmp/t.log 2>&1
echo "racecheck block_train f32 rc=$? $(grep -E 'RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
el
for v in "" own; do
  MAMBA_CUDA_BB_GEMM=$v timeout 200 "$C/gpu_block_train" block_train_device_matches_host_half --test-threads=1 --nocapture > /tmp/train.log 2>&1
  echo "== half BB_GEMM=$v rc=$?"; grep -E "bf16|f16|panicked|case|passed" /tmp/train.log | cut -c1-600
done
el
for r in 1 2 3; do
  for form in new own generic; do
    unset MAMBA_CUDA_BB_GEMM MAMBA_CUDA_CONV
    [ $form = own ] && export MAMBA_CUDA_BB_GEMM=own
    [ $form = generic ] && export MAMBA_CUDA_BB_GEMM=own MAMBA_CUDA_CONV=generic
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      grep -E "^\| mamba2_block .*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
    timeout 60 "$C/xtask" bench --backend cuda --no-reference --only causal_conv1d --out /tmp/bx > /tmp/bx.log 2>&1
    grep -E "^\| causal_conv1d .*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
  done
done
unset MAMBA_CUDA_BB_GEMM MAMBA_CUDA_CONV
el
} > "$OUT/summary.txt" 2>&1
