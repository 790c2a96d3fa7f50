#!/bin/bash
# Fifty-sixth session, call 1: `ssdz` in time segments (L > 1024 at the seed widths) with
# seq_idx (each segment reads seq_idx rows L apart and looks one step back: `seq_st`,
# `seq_back`). The segments test (now with seq_idx), the other SSD forward tests, the packed
# backward test, the goldens (f32, bf16), memcheck on the segments test; then the timings of
# seq_idx against none over a grid of shapes (the default rules), and the segments' shapes
# against MAMBA_CUDA_SSD_LM_SEQ=0 (the recurrent kernels), two rounds.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
echo "$(el) tests"
timeout 300 ./gpu ssd_ssdz_segments ssd_cluster_chunks_z ssd_lm_packed_sequences ssd_matches_the_oracle --nocapture 2>&1 | grep -E "^test |result|comparisons|FAIL|panicked" | cut -c1-300 | tee "$OUT/tests.txt"
timeout 200 ./gpu_backward ssd_packed_sequences ssd_backward_matches_the_oracle 2>&1 | grep -E "^test |result|FAIL|panicked" | cut -c1-300 | tee -a "$OUT/tests.txt"
echo "$(el) goldens"
for dt in f32 bf16; do timeout 150 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -1 | tee -a "$OUT/golden.txt"; done
echo "$(el) sanitizer"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_GPU_QUICK=1 timeout 200 "$SAN" --tool memcheck --print-limit 10 "$C/gpu" ssd_ssdz_segments --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck rc=$?: $(grep -E "ERROR SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
echo "$(el) timings"
GRID="2,2048,6,64;2,2048,6,64,8;2,4096,6,64;2,4096,6,64,16;1,1500,4,64;1,1500,4,64,4;2,800,24,64;2,800,24,64,4;2,800,24,128;2,800,24,128,4;4,1000,24,128;4,1000,24,128,4;2,512,12,64;2,512,12,64,4;8,512,80,128;8,512,80,128,4"
for r in 1 2; do
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY=none MAMBA_GPU_BWD_SSD_SHAPE="$GRID" timeout 250 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r default /" | tee -a "$OUT/time.txt"
  MAMBA_CUDA_SSD_LM_SEQ=0 MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY=none MAMBA_GPU_BWD_SSD_SHAPE="2,2048,6,64,8;2,4096,6,64,16;1,1500,4,64,4" timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/r$r old /" | tee -a "$OUT/time.txt"
done
echo "$(el) done"
