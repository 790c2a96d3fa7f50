#!/bin/bash
# Forty-first session, call 7: the stack's kept buffers replaced by the newest pass's (not
# kept only when the slot was empty) and `Mamba2Stack::release_buffers`: the GPU
# block-training tests and memcheck on the stack tests.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-250 | head -6
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 200 "$SAN" --tool memcheck "$C/gpu_block_train" stack_ --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
