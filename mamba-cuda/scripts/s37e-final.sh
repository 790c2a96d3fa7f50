#!/bin/bash
# Thirty-seventh session, call 5 (the final plugin, header kernels writing their last 16
# bytes): the SSD and Mamba2Block GPU tests on the default path (full, not quick), initcheck
# on the test s37d's 25 s limit cut short, and the f32 SSD LM call's time.
. "$PWD/.device-carry/device_common.sh"
timeout 260 "$C/gpu" ssd_aliased ssd_batch ssd_chunked ssd_matches mamba2_block --test-threads=1 --nocapture > "$OUT/gpu-ssd.log" 2>&1
echo "gpu ssd + block tests rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu-ssd.log" | grep -E "lm32 f32|test result|panicked|FAILED" | head -8
el
MAMBA_GPU_QUICK=1 timeout 170 compute-sanitizer --tool initcheck --print-limit 20 "$C/gpu_backward" selective_scan_backward_four_states_per_lane --test-threads=1 > "$OUT/one.log" 2>&1
echo "initcheck four_states rc=$? $(grep 'ERROR SUMMARY' "$OUT/one.log" | tail -1 | cut -c1-60) $(grep 'test result' "$OUT/one.log" | cut -c1-40)"
rm -f "$OUT/one.log"
el
for r in 1 2; do MAMBA_BENCH_SSD="8,2048,80,64,128;2,2048,80,64,128" timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r /"; done
el
