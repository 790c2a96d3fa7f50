#!/bin/bash
# Forty-first session, call 3: the stack's host copies into reused memory
# (`backward_into`, `DeviceGrads::copy_to_host`, the tape's output memory kept with the
# device buffers, `Mamba2Block::swap_weights`): the GPU block-training tests, the
# timing-only `stack_train_bench`, and the training example old / new, three rounds.
. "$PWD/.device-carry/device_common.sh"
{
timeout 300 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-200 | head -6
el
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 240 "$C/gpu_block_train" stack_train_bench --nocapture > /tmp/b.log 2>&1
echo "bench rc=$?"; grep -E "^stack" /tmp/b.log
el
for r in 1 2 3; do
  for form in new old; do
    T=$C/train; [ $form = old ] && T=$C/prev/train_s40h
    s=$(date +%s%N)
    MAMBA_BACKEND=cuda timeout 100 "$T" --steps 400 > /tmp/tr.log 2>&1
    rc=$?; e=$(date +%s%N)
    echo "r$r $form train rc=$rc wall $(( (e - s) / 1000000 )) ms; $(grep -E 'step  400|->' /tmp/tr.log | tr '\n' ' ')"
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
