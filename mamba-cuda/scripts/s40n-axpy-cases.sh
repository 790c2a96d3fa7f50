#!/bin/bash
# Fortieth session, call 15: the block training tests after the axpy checks were folded
# into one generic case per storage type (same assertions).
. "$PWD/.device-carry/device_common.sh"
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|residual stack" /tmp/t.log | cut -c1-240 | head -8
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
