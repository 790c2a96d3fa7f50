#!/bin/bash
# Fifty-third session, call 1: the host-slice `_into` backward on the GPU (bitwise against
# the by-value calls; host timings by value against into), the goldens on the cuda backend
# through the new host path, and the GPU backward tests that compare every gradient.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
echo "$(el) backward_into"
timeout 200 ./gpu_backward backward_into_matches --nocapture 2>&1 | tail -12 | cut -c1-400 | tee "$OUT/into.txt"
echo "$(el) host timings"
MAMBA_GPU_BWD_BENCH=1 timeout 120 ./gpu_backward backward_into_host_timings --nocapture 2>&1 | grep -E "host-slice|test result" | tee "$OUT/into-time.txt"
echo "$(el) goldens"
for dt in f32 bf16; do timeout 150 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -2 | tee -a "$OUT/golden.txt"; done
echo "$(el) backward tests"
timeout 200 ./gpu_backward selective_scan_backward_matches_the_oracle ssd_backward_matches_the_oracle 2>&1 | grep -E "test |result|checks" | tee "$OUT/bwd.txt"
echo "$(el) done"
