#!/bin/bash
# Thirty-ninth session, call 4: the block backward's products on our 3xTF32 tensor-core
# kernel (`bb_gemmt_*`, MAMBA_CUDA_BB_GEMM=tc) against cuBLASLt's f32 kernels (=lt, the
# default) and our FMA kernel (=own). Checks with =tc forced, then three rounds alternating.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train (default) rc=$?"; grep -E "test result|panicked|threads x" /tmp/t.log | cut -c1-160 | head -6
MAMBA_CUDA_BB_GEMM=tc timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train (tc) rc=$?"; grep -E "test result|panicked|passed|agree|threads x|worst" /tmp/t.log | cut -c1-200 | head -24
MAMBA_CUDA_BB_GEMM=tc MAMBA_CUDA_BB_MIXED=own timeout 200 "$C/gpu_block_train" block_train_device_matches_host_half --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train half (tc, mixed types on it) rc=$?"; grep -E "test result|panicked|passed" /tmp/t.log | head -4
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 MAMBA_CUDA_BB_GEMM=tc timeout 200 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_d --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu_block_train (tc) rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in lt tc own; do
    export MAMBA_CUDA_BB_GEMM=$form
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      grep -E "^\| mamba2_block .*forward\+backward.*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
  done
done
unset MAMBA_CUDA_BB_GEMM
el
MAMBA_CUDA_BB_GEMM=tc MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv -c 300 "$C/gpu_block_train" block_train_bench > "$OUT/ncu-tc.csv" 2> /tmp/ncu.err
echo "ncu tc rc=$?"
el
} > "$OUT/summary.txt" 2>&1
tail -5 "$OUT/summary.txt"
