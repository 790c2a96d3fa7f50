#!/bin/bash
# Thirty-eighth session, call 3: the block backward's products through cuBLASLt
# (Gemm::run_strided; MAMBA_CUDA_BB_GEMM=own keeps bb_gemm) and the conv backward with the
# block-summed dw (32 channels x 4 segments per block). Checks, then times alternating.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu" causal_conv1d mamba2_block --test-threads=1 --nocapture > "$OUT/gpu.log" 2>&1
echo "gpu conv + block rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu.log" | head -6
timeout 200 "$C/gpu_backward" causal_conv1d --test-threads=1 --nocapture > "$OUT/gpub.log" 2>&1
echo "gpu_backward conv rc=$?"; grep -E "checks|test result|panicked|FAILED" "$OUT/gpub.log" | head -4
for v in "" own; do
  MAMBA_CUDA_BB_GEMM=$v timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > "$OUT/train.log" 2>&1
  echo "gpu_block_train BB_GEMM=$v rc=$?"; grep -E "test result|panicked|FAILED|worst|rel" "$OUT/train.log" | head -12
done
for dt in f32 bf16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > "$OUT/golden-$dt.log" 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" "$OUT/golden-$dt.log" | tail -2
done
el
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 120 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_backward" causal_conv1d --test-threads=1 > "$OUT/san.log" 2>&1
  echo "$tool gpu_backward conv rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san.log" | tail -1 | cut -c1-70)"
done
MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 "$C/gpu_block_train" block_train_device --test-threads=1 > "$OUT/san.log" 2>&1
echo "memcheck block_train_device rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/san.log" | tail -1 | cut -c1-70)"
el
MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv -c 400 "$C/gpu_block_train" block_train_bench > "$OUT/ncu-block.csv" 2> "$OUT/ncu-block.err"
echo "ncu block rc=$?"
el
for r in 1 2 3; do
  for form in new own generic; do
    unset MAMBA_CUDA_BB_GEMM MAMBA_CUDA_CONV
    [ $form = own ] && export MAMBA_CUDA_BB_GEMM=own
    [ $form = generic ] && export MAMBA_CUDA_BB_GEMM=own MAMBA_CUDA_CONV=generic
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > "$OUT/bx.log" 2>&1
      grep -E "^\| mamba2_block .*CUDA" "$OUT/bx.log" | sed "s/^/r$r $form /"
    done
    timeout 60 "$C/xtask" bench --backend cuda --no-reference --only causal_conv1d --out /tmp/bx > "$OUT/bx.log" 2>&1
    grep -E "^\| causal_conv1d .*backward.*CUDA" "$OUT/bx.log" | sed "s/^/r$r $form /"
  done
done
unset MAMBA_CUDA_BB_GEMM MAMBA_CUDA_CONV
el
} 2>&1 | tee "$OUT/summary.txt"
