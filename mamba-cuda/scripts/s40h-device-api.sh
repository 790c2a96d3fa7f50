#!/bin/bash
# Fortieth session, call 9: the safe training API on device buffers (`CudaBlock::
# forward_train` / `backward`, `DeviceActivations`, `DeviceGrads`) against the host-slice
# pair; every block training test; memcheck of the new test.
. "$PWD/.device-carry/device_common.sh"
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|device training API|threads x|errors: ok" /tmp/t.log | cut -c1-240 | head -16
timeout 200 compute-sanitizer --tool memcheck "$C/gpu_block_train" block_device_training --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
