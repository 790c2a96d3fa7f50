#!/bin/bash
# Thirty-ninth session, call 8: the host-slice training API with fewer host copies (an f32
# input and dout read in place, no host copy of the input in a tape that keeps activations
# on the device, the f32 uploads from the caller's slices): the block training tests, then
# `block_train_bench` (host API per step) three rounds alternating the previous test binary
# (`old`, call 7's) and this one (`new`), both on this plugin.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|passed|agree|threads x|errors: ok" /tmp/t.log | cut -c1-160 | head -12
el
for r in 1 2 3; do
  for form in old new; do
    B=$C/gpu_block_train; [ $form = old ] && B=$C/prev/gpu_block_train_s39f
    MAMBA_BLOCK_TRAIN_BENCH=1 timeout 150 "$B" block_train_bench --nocapture > /tmp/t.log 2>&1
    grep -E "block train" /tmp/t.log | sed "s/^/r$r $form /" | cut -c1-140
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
