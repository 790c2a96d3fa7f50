#!/bin/bash
# Forty-ninth session, call 8: the q64 test against a mutant plugin (.device-carry/mut, built
# by hand: `ssdbl_s` takes the block's first head for every head of its loop, which only
# shows with several heads per s block): expected to fail.
. "$PWD/.device-carry/device_common.sh"
{
MAMBA_CUDA_PLUGIN=$C/mut/libmamba_cuda.so timeout 200 "$C/gpu_backward" ssd_backward_q64_matches_the_oracle --nocapture --test-threads=1 > /tmp/t.log 2>&1
echo "mutant plugin: q64 test rc=$?"; grep -E "test result|checks|FAIL|fail" /tmp/t.log | cut -c1-220 | head -8
el
} > "$OUT/s49g.txt" 2>&1
cat "$OUT/s49g.txt"
