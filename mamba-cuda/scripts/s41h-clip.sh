#!/bin/bash
# Forty-first session, call 8: gradient clipping by the global norm (`StackAdamW::
# max_grad_norm`; appended ABI entry `sum_squares`, and `AdamWC::grad_scale` in place of
# the reserved field): the GPU block-training tests, memcheck on the stack tests, a mutant
# whose device update ignores the scale (mutE, must fail), and the goldens (f32) on the
# rebuilt plugin.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-250 | head -6
grep -A3 panicked /tmp/t.log | head -8
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 200 "$SAN" --tool memcheck "$C/gpu_block_train" stack_ --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
timeout 120 "$C/mut/gpu_block_train_mutE" stack_updates --test-threads=1 > /tmp/t.log 2>&1
echo "mutE rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -3; grep -A2 panicked /tmp/t.log | tail -2
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
