#!/bin/bash
# Forty-first session, call 6: the final binaries (stack.rs gained forward_with_state and
# step, host-side only): the GPU block-training tests, racecheck on the stack tests (the
# new kernels use no shared memory), the forward GPU tests of the block and the device
# errors, and the training example.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-250 | head -6
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 200 "$SAN" --tool racecheck "$C/gpu_block_train" stack_ --test-threads=1 > /tmp/m.log 2>&1
echo "racecheck rc=$?"; grep -E "RACECHECK SUMMARY|ERROR SUMMARY|test result" /tmp/m.log | head -3
el
for f in mamba2_block device_errors; do
  timeout 120 "$C/gpu" $f --test-threads=1 > /tmp/t.log 2>&1
  echo "gpu $f rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-200 | head -3
done
el
MAMBA_BACKEND=cuda timeout 100 "$C/train" --steps 400 > /tmp/tr.log 2>&1
echo "train rc=$?"; head -1 /tmp/tr.log; grep -E 'step  400|->' /tmp/tr.log
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
