#!/bin/bash
# Forty-first session, call 1: `Mamba2Stack` (mamba-model/src/stack.rs), the residual
# stream of a stack of blocks on the device. The GPU block-training tests (with the new
# `stack_trains_with_its_stream_on_the_device`), memcheck on it, the timing-only
# `stack_train_bench` (a step of 4 seed blocks: chained by hand through the host-slice
# API against the stack), the training example at HEAD of the last session (`old`: blocks
# chained by hand) against this one (`new`: through the stack), three rounds alternating,
# and two mutants of the stack that the new test must fail (mut1: the backward without its
# residual add; mut2: the training forward without its residual add).
. "$PWD/.device-carry/device_common.sh"
{
timeout 300 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-200 | head -6
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 300 "$SAN" --tool memcheck "$C/gpu_block_train" stack_trains --test-threads=1 > /tmp/m.log 2>&1
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
for m in 1 2; do
  timeout 120 "$C/mut/gpu_block_train_mut$m" stack_trains --test-threads=1 > /tmp/t.log 2>&1
  echo "mut$m rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -3
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
