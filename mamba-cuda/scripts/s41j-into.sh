#!/bin/bash
# Forty-first session, call 10: `Mamba2Stack::backward_update_into` (the input's gradient
# into a reused vector, or not brought back): the GPU block-training tests, memcheck on the
# stack tests, `stack_train_bench` (now with both forms), and the training example.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-250 | head -6
grep -A3 panicked /tmp/t.log | head -6
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 200 "$SAN" --tool memcheck "$C/gpu_block_train" stack_ --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 240 "$C/gpu_block_train" stack_train_bench --nocapture > /tmp/b.log 2>&1
echo "bench rc=$?"; grep -E "^stack" /tmp/b.log
el
MAMBA_BACKEND=cuda timeout 100 "$C/train" --steps 400 > /tmp/tr.log 2>&1
echo "train rc=$?"; grep -E 'step  400|->' /tmp/tr.log
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
