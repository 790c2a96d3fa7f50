#!/bin/bash
# Thirty-ninth session, call 1: the Mamba2Block training step with its activations kept
# between the forward and the backward (block_forward_saving / block_backward_saved) and
# the backward's slice copies in three launches (bb_copyn). Checks: the block training
# tests (kept and recomputed), the block forward tests and goldens, memcheck / racecheck on
# the training tests; times: three rounds alternating the previous session's plugin
# (`prev`, recompute, ten copy launches), this plugin with MAMBA_BLOCK_TRAIN=recompute
# (`rec`) and this plugin's default (`keep`), all through the same xtask.
. "$PWD/.device-carry/device_common.sh"
NEW=$C/libmamba_cuda.so
PREV=$C/prev/libmamba_cuda.so
{
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|passed|agree|ok$|keep1|keep0" /tmp/t.log | cut -c1-150 | head -40
timeout 200 "$C/gpu" mamba2_block --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu mamba2_block rc=$?"; grep -E "comparisons|test result|panicked" /tmp/t.log
for dt in f32 bf16 f16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -1
done
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 200 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_ --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu_block_train rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in prev rec keep; do
    unset MAMBA_BLOCK_TRAIN; export MAMBA_CUDA_PLUGIN=$NEW
    [ $form = prev ] && export MAMBA_CUDA_PLUGIN=$PREV
    [ $form = rec ] && export MAMBA_BLOCK_TRAIN=recompute
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      grep -E "^\| mamba2_block .*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
  done
done
unset MAMBA_BLOCK_TRAIN; export MAMBA_CUDA_PLUGIN=$NEW
el
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 150 "$C/gpu_block_train" block_train_bench --nocapture > /tmp/t.log 2>&1
echo "block_train_bench rc=$?"; grep -E "block train" /tmp/t.log
el
} > "$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt" | tail -5
