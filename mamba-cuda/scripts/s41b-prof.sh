#!/bin/bash
# Forty-first session, call 2: the fixed stack test (a second backward is compared within
# 1e-6, not bit for bit: the block's backward sums some gradients in a run-dependent
# order), and where a stack step's time goes (a build of stack.rs that prints the time at
# each phase, with a stream sync at the marked points, under STACK_PROF=1).
. "$PWD/.device-carry/device_common.sh"
{
timeout 300 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-200 | head -6
el
STACK_PROF=1 MAMBA_BLOCK_TRAIN_BENCH=1 timeout 240 "$C/mut/gpu_block_train_prof" stack_train_bench --nocapture > /tmp/b.log 2>&1
echo "prof rc=$?"; grep -E "^stack" /tmp/b.log | cut -c1-400
grep -n PROF /tmp/b.log | awk -F: 'NR%40==0' | cut -c1-400
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
