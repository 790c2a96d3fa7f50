#!/bin/bash
# Fifty-fifth session, call 2: the chunked SSD backward with seq_idx (its prep kernel takes
# SBC_RESET off the cumulative log-decays from each sequence's first step on), and the
# generic `ssdl` forward kernels with seq_idx (their own scan adds SSDL_RESET2). The SSD
# tests (backward: packed sequences through the 64- and 32-step kernels, forced and by
# default; forward: the LM kernels with seq_idx, the chunked forms), the goldens (f32, bf16),
# seq_idx timings (default against the old forms: `MAMBA_CUDA_SSD_LM_SEQ=0
# MAMBA_CUDA_SSD_BWDC_SEQ=0`, the recurrent forward and the backward per sequence), two
# rounds, and memcheck on the packed-sequence tests.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
echo "$(el) tests"
timeout 300 ./gpu_backward ssd_packed_sequences ssd_backward_gated_without_dz ssd_backward_q64_matches_the_oracle ssd_backward_matches_the_oracle backward_into_matches --nocapture 2>&1 | grep -E "^test |result|checks|FAIL|panicked" | cut -c1-300 | tee "$OUT/tests.txt"
timeout 200 ./gpu ssd_lm_packed_sequences ssd_matches_the_oracle --nocapture 2>&1 | grep -E "^test |result|comparisons|FAIL|panicked" | cut -c1-300 | tee -a "$OUT/tests.txt"
MAMBA_GPU_QUICK=1 timeout 200 ./gpu ssd_chunked_matches_the_oracle 2>&1 | grep -E "^test |result|FAIL|panicked" | cut -c1-300 | tee -a "$OUT/tests.txt"
echo "$(el) goldens"
for dt in f32 bf16; do timeout 150 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -2 | tee -a "$OUT/golden.txt"; done
echo "$(el) timings"
for r in 1 2; do
  for mode in default old; do
    if [ $mode = old ]; then export MAMBA_CUDA_SSD_LM_SEQ=0 MAMBA_CUDA_SSD_BWDC_SEQ=0; else unset MAMBA_CUDA_SSD_LM_SEQ MAMBA_CUDA_SSD_BWDC_SEQ; fi
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="seq_idx" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 200 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r $mode /" | tee -a "$OUT/time.txt"
  done
  unset MAMBA_CUDA_SSD_LM_SEQ MAMBA_CUDA_SSD_BWDC_SEQ
done
MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="b8 L2048 h80 p64 N128" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "seq_idx\|gated" | tee -a "$OUT/time.txt"
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool memcheck --print-limit 10 "$C/gpu_backward" ssd_packed_sequences --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) done"
