#!/bin/bash
# Fifty-fourth session, call 5: the final tree. The session's tests (gated SSD backward,
# packed sequences) and the SSD backward tests, the goldens on the cuda backend (f32, bf16),
# seq_idx timings at the default rule (the backward per sequence, the forward recurrent),
# memcheck on the packed-sequence test.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
echo "$(el) tests"
timeout 250 ./gpu_backward ssd_packed_sequences ssd_backward_gated_without_dz ssd_backward_q64_matches_the_oracle ssd_backward_matches_the_oracle backward_into_matches --nocapture 2>&1 | grep -E "^test |result|checks|FAIL|panicked" | cut -c1-300 | tee "$OUT/tests.txt"
echo "$(el) goldens"
for dt in f32 bf16; do timeout 150 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -2 | tee -a "$OUT/golden.txt"; done
echo "$(el) timings"
MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="seq_idx" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 200 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | tee -a "$OUT/time.txt"
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool memcheck --print-limit 10 "$C/gpu_backward" ssd_packed_sequences --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) done"
