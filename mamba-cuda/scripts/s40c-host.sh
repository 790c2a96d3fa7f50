#!/bin/bash
# Fortieth session, call 4: the host-slice path with page-locked staging buffers, the kept
# activations from the staging pool, and set_weights in place (ABI entries host_alloc,
# host_free, block_set_weights). Checks: the block training tests (with the new
# set_weights test), goldens through the host-slice API (f32, bf16). Timings: the step's
# parts (`block_train_phases`) with this plugin, this plugin without page-locked buffers
# (MAMBA_STAGING_PINNED=0), and the previous plugin (no new entries: re-created blocks,
# pageable copies); then the training example on each.
. "$PWD/.device-carry/device_common.sh"
OLD=$C/prev/libmamba_cuda_s40a.so
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|threads x|errors: ok" /tmp/t.log | cut -c1-200 | head -14
el
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
for r in 1 2; do
  for form in new nopin old; do
    case $form in
      new) E="MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so";;
      nopin) E="MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so MAMBA_STAGING_PINNED=0";;
      old) E="MAMBA_CUDA_PLUGIN=$OLD";;
    esac
    env $E MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$C/gpu_block_train" block_train_phases --nocapture > /tmp/t.log 2>&1
    grep -E "block train phases.*step" /tmp/t.log | sed "s/^/r$r $form /" | cut -c1-330
  done
done
el
for r in 1 2; do
  for form in new old; do
    P=$C/libmamba_cuda.so; [ $form = old ] && P=$OLD
    MAMBA_CUDA_PLUGIN=$P MAMBA_BACKEND=cuda timeout 100 "$C/train" --steps 200 > /tmp/tr.log 2>&1
    echo "r$r $form train rc=$? $(grep -E 'step  200' /tmp/tr.log)"
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
