#!/bin/bash
# Fortieth session, call 14: the `axpy` entry (y += alpha x on the device) and a residual
# stack of two blocks trained on device buffers against the host-slice API; every block
# training test; memcheck of the new test; goldens f32 (the misc module was rebuilt).
. "$PWD/.device-carry/device_common.sh"
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|device training API|residual stack|threads x|errors: ok" /tmp/t.log | cut -c1-240 | head -16
timeout 200 compute-sanitizer --tool memcheck "$C/gpu_block_train" block_stack --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
