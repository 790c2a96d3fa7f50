#!/bin/bash
# Fifty-fourth session, call 4: SSD with seq_idx as one call per packed sequence
# (gpu/segments.rs). The new oracle test (forced on, the default rule, forced off) and the
# SSD tests that have seq_idx cases, compute-sanitizer memcheck, then timings with seq_idx
# (8 sequences per row at the LM shape and at 24 heads, 4 at the seed width): the default,
# `MAMBA_CUDA_SSD_SEGMENTS=0` (the recurrent kernels) and `=1`, two rounds; the ungated LM
# rows for reference.
. .device-carry/device_common.sh
cd "$C"
echo "$(el) oracle"
timeout 300 ./gpu_backward ssd_packed_sequences ssd_backward_matches_the_oracle --nocapture 2>&1 | grep -E "^test |result|checks|FAIL|fail|panicked" | cut -c1-400 | tee "$OUT/oracle.txt"
MAMBA_CUDA_SSD_SEGMENTS=1 timeout 200 ./gpu ssd_matches_the_oracle 2>&1 | grep -E "^test |result|FAIL" | cut -c1-300 | tee -a "$OUT/oracle.txt"
echo "$(el) timings"
for r in 1 2; do
  for seg in default 0 1; do
    if [ $seg = default ]; then unset MAMBA_CUDA_SSD_SEGMENTS; else export MAMBA_CUDA_SSD_SEGMENTS=$seg; fi
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="seq_idx" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 200 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r SEG=$seg /" | tee -a "$OUT/time.txt"
  done
  unset MAMBA_CUDA_SSD_SEGMENTS
done
MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="bf16 b8 L2048 h80 p64 N128" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v seq_idx | tee -a "$OUT/time.txt"
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_QUICK=1 timeout 250 "$SAN" --tool memcheck --print-limit 10 "$C/gpu_backward" ssd_packed_sequences --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) done"
