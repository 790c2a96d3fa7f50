#!/bin/bash
# Fifty-fifth session, call 1: the SSD forward's LM kernels with seq_idx (their header kernels
# reset the state where a packed sequence starts). The new oracle test (f32 forced and its
# older forms, bf16 / f16 VARs 28 / 60 / 70 / 71 forced, the default rule at the LM widths),
# the other SSD tests with seq_idx, memcheck and racecheck on the new test (quick), then
# timings with seq_idx (default against `MAMBA_CUDA_SSD_LM_SEQ=0`, the recurrent forward as
# before), two rounds; the ungated LM rows for reference.
. .device-carry/device_common.sh
cd "$C"
echo "$(el) oracle"
timeout 400 ./gpu ssd_lm_packed_sequences --nocapture 2>&1 | grep -E "^test |result|checks|FAIL|fail|panicked|worst" | cut -c1-400 | tee "$OUT/oracle.txt"
timeout 300 ./gpu_backward ssd_packed_sequences --nocapture 2>&1 | grep -E "^test |result|checks|FAIL|fail|panicked" | cut -c1-400 | tee -a "$OUT/oracle.txt"
timeout 200 ./gpu ssd_matches_the_oracle 2>&1 | grep -E "^test |result|FAIL" | cut -c1-300 | tee -a "$OUT/oracle.txt"
echo "$(el) timings"
for r in 1 2; do
  for lm in default 0; do
    if [ $lm = default ]; then unset MAMBA_CUDA_SSD_LM_SEQ; else export MAMBA_CUDA_SSD_LM_SEQ=$lm; fi
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="seq_idx" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 200 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r LMSEQ=$lm /" | tee -a "$OUT/time.txt"
  done
  unset MAMBA_CUDA_SSD_LM_SEQ
done
MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="b8 L2048 h80 p64 N128" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "seq_idx\|gated" | tee -a "$OUT/time.txt"
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool memcheck --print-limit 10 "$C/gpu" ssd_lm_packed_sequences --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool racecheck --print-limit 10 "$C/gpu" ssd_lm_packed_sequences --test-threads=1 > /tmp/s.log 2>&1
echo "racecheck rc=$?: $(grep -E "RACECHECK SUMMARY|ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) done"
