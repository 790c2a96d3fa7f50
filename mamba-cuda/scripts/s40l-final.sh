#!/bin/bash
# Fortieth session, call 13: the final tree (e12372e): the block training tests, the
# forward GPU tests (the block's device forward now shares its checked descriptor with the
# training forward), goldens through the xtask runner (f32, bf16, f16), memcheck of the
# block API tests.
. "$PWD/.device-carry/device_common.sh"
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|device training API|threads x|errors: ok" /tmp/t.log | cut -c1-240 | head -16
el
for f in mamba2_block device_errors causal_conv1d decode_steps ssd_matches selective_scan_matches; do
  timeout 200 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
el
for dt in f32 bf16 f16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
timeout 200 compute-sanitizer --tool memcheck "$C/gpu_block_train" block_device_training block_set_weights --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
