#!/bin/bash
# Fifty-sixth session, call 8: the forward and forward + backward default-rule sweeps at
# 4x / 8x their size caps (longer sequences: the segments past 1024 steps, the LM kernels'
# split runs), two seeds each, tallies and failures kept in $OUT.
. .device-carry/device_common.sh
cd "$C"
for seed in 62 63; do
  echo "$(el) forward sweep seed $seed scale ${S1:-8}" | tee -a "$OUT/sweep.txt"
  MAMBA_GPU_SWEEP_SCALE=${S1:-8} MAMBA_GPU_SWEEP=${N1:-40} MAMBA_GPU_SWEEP_SEED=$seed timeout 250 ./gpu default_rules_match_the_oracle_at_random_sizes --nocapture > /tmp/f.log 2>&1; echo "rc=$?" >> /tmp/f.log
  grep -E "^test |comparisons|rel-L2 .* > |panicked|failures|rc=" /tmp/f.log | cut -c1-400 | tee -a "$OUT/sweep.txt"
done
for seed in 62 63; do
  echo "$(el) backward sweep seed $seed scale ${S2:-4}" | tee -a "$OUT/sweep.txt"
  MAMBA_GPU_SWEEP_SCALE=${S2:-4} MAMBA_GPU_SWEEP=${N2:-24} MAMBA_GPU_SWEEP_SEED=$seed timeout 250 ./gpu_backward default_rules_backward_at_random_sizes --nocapture > /tmp/b.log 2>&1; echo "rc=$?" >> /tmp/b.log
  grep -E "^test |checks;|panicked|failures|: rel|rc=" /tmp/b.log | cut -c1-400 | tee -a "$OUT/sweep.txt"
done
echo "$(el) done"
