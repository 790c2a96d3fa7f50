#!/bin/bash
# Fifty-sixth session, call 2: two mutant plugins of the segments' seq_idx (host side,
# src/gpu/seed.rs `ssdz_segmented_launch`): `seq_back` always 0 (no look back at a segment's
# first step) and `seq_st` 0 (seq_idx rows read seqlen = the segment's length apart). The
# segments test must fail with each, and pass with the real plugin.
. .device-carry/device_common.sh
cd "$C"
for m in mut_back mut_st real; do
  if [ $m = real ]; then export MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so; else export MAMBA_CUDA_PLUGIN=$C/$m.so; fi
  echo "## $m" | tee -a "$OUT/mutants.txt"
  timeout 200 ./gpu ssd_ssdz_segments --nocapture 2>&1 | grep -E "^test |comparisons|FAIL|panicked" | cut -c1-250 | head -8 | tee -a "$OUT/mutants.txt"
done
echo "$(el) done"
