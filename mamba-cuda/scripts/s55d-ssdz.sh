#!/bin/bash
# Fifty-fifth session, call 4: `ssdz` (the seed-shape chunked forward in one launch) with
# seq_idx (its scans add SSDZ_RESET where a sequence starts). Its tests (every form, with
# seq_idx), the LM seq_idx test (now with the seed shape in its default section), the
# segments test, the goldens (f32, bf16), memcheck / racecheck on the ssdz test's sanitizer
# shapes, and the seq_idx timings (default against MAMBA_CUDA_SSD_LM_SEQ=0), two rounds.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
echo "$(el) tests"
timeout 300 ./gpu ssd_cluster_chunks_z ssd_ssdz_segments ssd_lm_packed_sequences ssd_matches_the_oracle --nocapture 2>&1 | grep -E "^test |result|comparisons|FAIL|panicked" | cut -c1-300 | tee "$OUT/tests.txt"
timeout 200 ./gpu_backward ssd_packed_sequences ssd_backward_matches_the_oracle 2>&1 | grep -E "^test |result|FAIL|panicked" | cut -c1-300 | tee -a "$OUT/tests.txt"
echo "$(el) goldens"
for dt in f32 bf16; do timeout 150 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -2 | tee -a "$OUT/golden.txt"; done
echo "$(el) timings"
for r in 1 2; do
  for mode in default old; do
    if [ $mode = old ]; then export MAMBA_CUDA_SSD_LM_SEQ=0; else unset MAMBA_CUDA_SSD_LM_SEQ; fi
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="seq_idx" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 200 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "64x32" | sed "s/^/r$r $mode /" | tee -a "$OUT/time.txt"
  done
  unset MAMBA_CUDA_SSD_LM_SEQ
done
MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="2 L800 h6" MAMBA_GPU_BWD_BENCH_SEED_L=1 MAMBA_GPU_BWD_SSD_SHAPE="2,800,6,64" timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "seq_idx" | tee -a "$OUT/time.txt"
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_SSDZ_SAN=1 timeout 150 "$SAN" --tool memcheck --print-limit 10 "$C/gpu" ssd_cluster_chunks_z --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
MAMBA_GPU_SSDZ_SAN=1 timeout 200 "$SAN" --tool racecheck --print-limit 10 "$C/gpu" ssd_cluster_chunks_z --test-threads=1 > /tmp/s.log 2>&1
echo "racecheck rc=$?: $(grep -E "RACECHECK SUMMARY|ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) done"
