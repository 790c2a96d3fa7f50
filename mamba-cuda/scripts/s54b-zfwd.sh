#!/bin/bash
# Fifty-fourth session, call 2: the bf16 / f16 SSD LM outputs kernel (`lmw_out`) with the
# gate's loads issued before its stores. The chunked forward tests (every lm VAR, z in
# about half the cases), then the SSD LM shape with and without z, forward and
# forward+backward, this plugin against call 1's (`old.so`), three rounds alternating.
. .device-carry/device_common.sh
cd "$C"
echo "$(el) oracle"
timeout 300 ./gpu ssd_chunked_matches_the_oracle --nocapture 2>&1 | grep -E "^test |result|checks|FAIL|fail" | cut -c1-300 | tee "$OUT/oracle.txt"
echo "$(el) timings"
for r in 1 2 3; do
  for so in old.so libmamba_cuda.so; do
    MAMBA_CUDA_PLUGIN=$C/$so MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="16 b8 L2048 h80 p64 N128" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 120 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r $so /" | tee -a "$OUT/time.txt"
  done
done
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_QUICK=1 MAMBA_GPU_SSDL_VARS=70,71 timeout 200 "$SAN" --tool memcheck --print-limit 10 "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) done"
