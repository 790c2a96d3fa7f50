#!/bin/bash
# Thirty-fourth session, call 4: the full benchmark with `ssdl_cbh3` the default, then the
# SSD and Mamba2Block GPU tests on the default path.
. "$PWD/.device-carry/device_common.sh"
bash "$C/device_run.sh" bench | grep -E "rc=|^ssd (f32|bf16) b8 L2048|^scan1 f32 b2 d384 N64 L(400|800)|block" | head -20
el
timeout 220 "$C/gpu" ssd_aliased ssd_batch ssd_chunked ssd_matches mamba2_block --test-threads=1 --nocapture > "$OUT/gpu-ssd.log" 2>&1
echo "gpu ssd + block tests rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu-ssd.log" | head -12
el
