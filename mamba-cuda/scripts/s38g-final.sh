#!/bin/bash
# Thirty-eighth session, call 7 (the final plugin: the CL conv forms load 8 steps at a time):
# the conv / block checks, the goldens, memcheck / racecheck, and the conv and block times
# against the session's first plugin's kernels (MAMBA_CUDA_CONV=generic
# MAMBA_CUDA_BB_GEMM=own), plus cpu-simd's block forward on this host for the ratio.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu conv + block rc=$?"; grep -E "comparisons|test result|panicked" /tmp/t.log
timeout 200 "$C/gpu_backward" causal_conv1d --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_backward conv rc=$?"; grep -E "checks|test result|panicked|grad|out" /tmp/t.log | head -20
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked" /tmp/t.log
for dt in f32 bf16 f16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -1
done
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu conv+block rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
  MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_backward" causal_conv1d --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu_backward conv rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
  MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_device --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool block_train_device rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in new old; do
    unset MAMBA_CUDA_BB_GEMM MAMBA_CUDA_CONV
    [ $form = old ] && export MAMBA_CUDA_BB_GEMM=own MAMBA_CUDA_CONV=generic
    for dt in f32 bf16; do
      for op in mamba2_block causal_conv1d; do
        timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only $op --out /tmp/bx > /tmp/bx.log 2>&1
        grep -E "^\| $op .*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
      done
    done
  done
done
unset MAMBA_CUDA_BB_GEMM MAMBA_CUDA_CONV
el
timeout 120 "$C/xtask" bench --backend cpu-simd --backend cuda --no-reference --only mamba2_block --out /tmp/bc > /tmp/bc.log 2>&1
echo "cpu-simd vs cuda rc=$?"; grep -E "^\| mamba2_block" /tmp/bc.log | head -8
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$C/gpu_block_train" block_train_bench --nocapture > /tmp/t.log 2>&1
echo "block_train_bench rc=$?"; grep -E "block train" /tmp/t.log
el
} > "$OUT/summary.txt" 2>&1
