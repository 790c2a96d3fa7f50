#!/bin/bash
# Fifty-sixth session, call 12: `ssdc` / `ssdm` / `split3` with seq_idx (their f64 scans reset
# the state, SSDM_RESET): the new test, the SSD forward tests beside it that run quickly, the
# forward sweep, the goldens (f32), and the split3 default shape's timing with seq_idx against
# MAMBA_CUDA_SSD_LM_SEQ=0 (the recurrent kernels) and without seq_idx.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
echo "$(el) tests"
for t in ssd_chunked_packed_sequences ssd_matches_the_oracle default_rules_match_the_oracle_at_random_sizes; do
  timeout 100 ./gpu $t --test-threads=1 --nocapture 2>&1 | grep -E "^test |comparisons|rel-L2 .* >|panicked" | cut -c1-300 | tee -a "$OUT/tests.txt"
done
echo "$(el) goldens"
timeout 60 ./xtask golden --backend cuda --dir "$C/golden" --dtype f32 2>&1 | tail -1 | tee -a "$OUT/tests.txt"
echo "$(el) timings"
for mode in default old; do
  if [ $mode = old ]; then export MAMBA_CUDA_SSD_LM_SEQ=0; else unset MAMBA_CUDA_SSD_LM_SEQ; fi
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY=none MAMBA_GPU_BWD_SSD_SHAPE="1,800,8,128;1,800,8,128,4;2,700,4,128,4" timeout 60 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | sed "s/^/$mode /" | tee -a "$OUT/time.txt"
done
echo "$(el) done"
