#!/bin/bash
# Thirty-ninth session, call 5: the pipelined 3xTF32 GEMM (`bb_gemmt2_k` / `_i`: K tiles of
# 32 by cp.async, two buffers) for the block backward's f32 products (MAMBA_CUDA_BB_GEMM=tc)
# against cuBLASLt (=lt, the default). Checks with =tc forced, three rounds alternating,
# per-kernel ncu with =tc.
. "$PWD/.device-carry/device_common.sh"
{
MAMBA_CUDA_BB_GEMM=tc timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train (tc) rc=$?"; grep -E "test result|panicked|passed|agree|threads x" /tmp/t.log | cut -c1-200 | head -12
grep -E "b2 L(100|400) dm192.*f32:" /tmp/t.log | cut -c1-220 | head -4
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 MAMBA_CUDA_BB_GEMM=tc timeout 200 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_d --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu_block_train (tc) rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in lt tc; do
    export MAMBA_CUDA_BB_GEMM=$form
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      grep -E "^\| mamba2_block .*forward\+backward.*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
  done
done
unset MAMBA_CUDA_BB_GEMM
el
MAMBA_CUDA_BB_GEMM=tc MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv -c 300 "$C/gpu_block_train" block_train_bench > "$OUT/ncu-tc2.csv" 2> /tmp/ncu.err
echo "ncu tc rc=$?"
el
} > "$OUT/summary.txt" 2>&1
tail -5 "$OUT/summary.txt"
