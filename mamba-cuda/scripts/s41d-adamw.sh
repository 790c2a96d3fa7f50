#!/bin/bash
# Forty-first session, call 4: AdamW on the device (`adamw` and `block_set_weights_device`,
# appended ABI entries; `Mamba2Stack::backward_update` with `StackAdamW`). The GPU
# block-training tests (new: `stack_updates_its_weights_on_the_device`), memcheck on it,
# the timing-only `stack_train_bench` (now with a step with AdamW on the host and one
# with it on the device), the training example old / new, and two mutants the new test
# must fail (mutD1: a plugin whose image writes A = +exp(A_log); mutD2: a test binary
# whose update skips rewriting the device copy).
. "$PWD/.device-carry/device_common.sh"
{
timeout 300 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-250 | head -6
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 300 "$SAN" --tool memcheck "$C/gpu_block_train" stack_ --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
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
MAMBA_CUDA_PLUGIN=$C/mut/libmamba_cuda_mutD1.so timeout 120 "$C/gpu_block_train" stack_updates --test-threads=1 > /tmp/t.log 2>&1
echo "mutD1 rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -3
timeout 120 "$C/mut/gpu_block_train_mutD2" stack_updates --test-threads=1 > /tmp/t.log 2>&1
echo "mutD2 rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -3
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
