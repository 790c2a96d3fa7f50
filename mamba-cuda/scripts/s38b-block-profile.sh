#!/bin/bash
# Thirty-eighth session, call 2: where the Mamba2Block forward+backward's time goes on the
# device (ncu, per-kernel durations over the first kernels of the L800 training loop), the
# conv kernels under memcheck, and the bf16 conv / block times against the generic conv.
. "$PWD/.device-carry/device_common.sh"
{
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 120 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 > "$OUT/san.log" 2>&1
  echo "$tool gpu conv+block rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san.log" | tail -1 | cut -c1-70)"
  MAMBA_GPU_QUICK=1 timeout 120 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_backward" causal_conv1d --test-threads=1 > "$OUT/san.log" 2>&1
  echo "$tool gpu_backward conv rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san.log" | tail -1 | cut -c1-70)"
done
el
MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 60 "$C/gpu_block_train" block_train_bench --nocapture > "$OUT/tb.log" 2>&1
echo "block_train_bench L800 rc=$?"; grep -vE '^$|running|test ' "$OUT/tb.log" | head -8
MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv -c 400 "$C/gpu_block_train" block_train_bench > "$OUT/ncu-block.csv" 2> "$OUT/ncu-block.err"
echo "ncu block rc=$?"
el
for r in 1 2; do
  for form in new generic; do
    if [ $form = generic ]; then export MAMBA_CUDA_CONV=generic; else unset MAMBA_CUDA_CONV; fi
    for op in causal_conv1d mamba2_block; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype bf16 --only $op --out "/tmp/bx" > "$OUT/bx.log" 2>&1
      grep -E "^\| $op .*CUDA" "$OUT/bx.log" | sed "s/^/r$r $form /"
    done
  done
done
unset MAMBA_CUDA_CONV
el
} 2>&1 | tee "$OUT/summary.txt"
