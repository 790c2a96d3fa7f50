#!/bin/bash
# Thirty-eighth session, call 5: cuBLASLt told the buffers' alignments (the 16-bit block
# backward's products were refused with status 15 in call 4), then the block's checks and
# times with the backward's products on cuBLASLt against bb_gemm (MAMBA_CUDA_BB_GEMM=own).
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|case|status" /tmp/t.log | cut -c1-300
timeout 200 "$C/gpu" mamba2_block causal_conv1d --test-threads=1 > /tmp/t.log 2>&1
echo "gpu block + conv rc=$?"; grep -E "test result|panicked" /tmp/t.log
for dt in f32 bf16 f16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 150 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_device --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool block_train_device rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in new own; do
    unset MAMBA_CUDA_BB_GEMM
    [ $form = own ] && export MAMBA_CUDA_BB_GEMM=own
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      grep -E "^\| mamba2_block .*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
  done
done
unset MAMBA_CUDA_BB_GEMM
el
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$C/gpu_block_train" block_train_bench --nocapture > /tmp/t.log 2>&1
echo "block_train_bench rc=$?"; grep -E "block train" /tmp/t.log
} > "$OUT/summary.txt" 2>&1
