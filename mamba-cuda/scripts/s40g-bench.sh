#!/bin/bash
# Fortieth session, call 8: the host-slice training step (`block_train_bench`: forward_train
# + backward through the host API, kept and recomputed) with this session's plugin (`new`:
# page-locked staging, kept buffers from the pool, weights in one image) against the
# previous one (`old`), three rounds alternating; then the training example (400 steps,
# two blocks, with set_weights each step) on each (the call as run had `bc` for the wall
# clock, which the machine lacks; the example's own elapsed time is what it reported).
. "$PWD/.device-carry/device_common.sh"
OLD=$C/prev/libmamba_cuda_s40a.so
{
for r in 1 2 3; do
  for form in new old; do
    P=$C/libmamba_cuda.so; [ $form = old ] && P=$OLD
    MAMBA_CUDA_PLUGIN=$P MAMBA_BLOCK_TRAIN_BENCH=1 timeout 150 "$C/gpu_block_train" block_train_bench --nocapture > /tmp/t.log 2>&1
    grep -E "block train" /tmp/t.log | sed "s/^/r$r $form /" | cut -c1-150
  done
done
el
for r in 1 2 3; do
  for form in new old; do
    P=$C/libmamba_cuda.so; [ $form = old ] && P=$OLD
    s=$(date +%s%N)
    MAMBA_CUDA_PLUGIN=$P MAMBA_BACKEND=cuda timeout 100 "$C/train" --steps 400 > /tmp/tr.log 2>&1
    e=$(date +%s%N)
    echo "r$r $form train rc=$? wall $(( (e - s) / 1000000 )) ms; $(grep -E 'step  400|->' /tmp/tr.log | tr '\n' ' ')"
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
