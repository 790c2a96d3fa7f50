#!/bin/bash
# Fifty-fourth session, call 1: the gated SSD backward through the 64-step kernels
# (`run_gated`: the ungated forward, `bwd_ssd_gate_*`, the ungated backward). The oracle
# tests with z (and the 64-step tests as before), the dz-less ABI call, compute-sanitizer
# on both, then the SSD LM shape with z, forward+backward, the new path against the 32-step
# kernel (`MAMBA_CUDA_SSD_BWDL_GATE=0`), three rounds alternating, and the ungated row.
. .device-carry/device_common.sh
cd "$C"
echo "$(el) oracle"
timeout 280 ./gpu_backward ssd_backward_q64_matches_the_oracle ssd_backward_gated_without_dz ssd_backward_chunked --nocapture 2>&1 | grep -E "^test |result|checks|failed|worst|gated|rel" | cut -c1-400 | tee "$OUT/oracle.txt"
echo "$(el) timings"
for r in 1 2 3; do
  for gate in 1 0; do
    MAMBA_CUDA_SSD_BWDL_GATE=$gate MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="b8 L2048 h80 p64 N128" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 120 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r GATE=$gate /" | tee -a "$OUT/time.txt"
  done
done
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_gated_without_dz ssd_backward_q64 --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
done
echo "$(el) done"
