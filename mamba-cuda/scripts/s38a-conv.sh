#!/bin/bash
# Thirty-eighth session, call 1: the tiled conv1d forward and the fused conv1d backward
# (kernels/conv.cuh). Correctness (the conv and block GPU tests, the goldens, memcheck /
# racecheck), then per-call times against the generic kernels (MAMBA_CUDA_CONV=generic)
# in alternating processes.
. "$PWD/.device-carry/device_common.sh"
timeout 200 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 --nocapture > "$OUT/gpu.log" 2>&1
echo "gpu conv + block rc=$?"; grep -E "comparisons|worst|test result|panicked|FAILED" "$OUT/gpu.log" | head -12
timeout 200 "$C/gpu_backward" causal_conv1d --test-threads=1 --nocapture > "$OUT/gpub.log" 2>&1
echo "gpu_backward conv rc=$?"; grep -E "checks|worst|test result|panicked|FAILED" "$OUT/gpub.log" | head -8
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > "$OUT/train.log" 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|rel" "$OUT/train.log" | head -12
el
for dt in f32 bf16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > "$OUT/golden-$dt.log" 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL|fail|error" "$OUT/golden-$dt.log" | tail -3
done
el
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 120 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu" causal_conv1d --test-threads=1 > "$OUT/san.log" 2>&1
  echo "$tool gpu conv rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san.log" | tail -1 | cut -c1-70)"
  MAMBA_GPU_QUICK=1 timeout 120 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_backward" causal_conv1d --test-threads=1 > "$OUT/san.log" 2>&1
  echo "$tool gpu_backward conv rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san.log" | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in new generic; do
    if [ $form = generic ]; then export MAMBA_CUDA_CONV=generic; else unset MAMBA_CUDA_CONV; fi
    timeout 60 "$C/xtask" bench --backend cuda --no-reference --only causal_conv1d --out "$OUT/b-$form-$r" > "$OUT/bc.log" 2>&1
    grep -E "^\| causal_conv1d .*CUDA" "$OUT/bc.log" | sed "s/^/r$r $form /"
    timeout 60 "$C/xtask" bench --backend cuda --no-reference --only mamba2_block --out "$OUT/bb-$form-$r" > "$OUT/bb.log" 2>&1
    grep -E "^\| mamba2_block .*CUDA" "$OUT/bb.log" | sed "s/^/r$r $form /"
  done
done
unset MAMBA_CUDA_CONV
el
