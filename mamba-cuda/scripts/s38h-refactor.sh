#!/bin/bash
# Thirty-eighth session, call 8: conv.cuh with its staging / taps helpers shared by the forms
# (no change of arithmetic): the conv and block checks and one round of times.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu conv + block rc=$?"; grep -E "comparisons|test result|panicked" /tmp/t.log
timeout 200 "$C/gpu_backward" causal_conv1d --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_backward conv rc=$?"; grep -E "checks|test result|panicked|f32 grad" /tmp/t.log
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked" /tmp/t.log
for dt in f32 bf16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -1
done
MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 "$C/gpu_backward" causal_conv1d --test-threads=1 > /tmp/t.log 2>&1
echo "memcheck gpu_backward conv rc=$? $(grep -E 'ERROR SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool racecheck --print-limit 20 "$C/gpu" causal_conv1d --test-threads=1 > /tmp/t.log 2>&1
echo "racecheck gpu conv rc=$? $(grep -E 'RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
el
for op in causal_conv1d mamba2_block; do
  timeout 60 "$C/xtask" bench --backend cuda --no-reference --only $op --out /tmp/bx > /tmp/bx.log 2>&1
  grep -E "^\| $op .*CUDA" /tmp/bx.log | cut -d'|' -f1-8
done
el
} > "$OUT/summary.txt" 2>&1
