#!/bin/bash
# Fifty-sixth session, call 3: the default-rule sweeps (random sizes across the rules'
# regions and edges, every option, the three storage types, against the f64 oracle), each
# test alone: forward (SSD, Mamba-1) with MAMBA_GPU_SWEEP cases per kind and two seeds, then
# forward + backward likewise.
. .device-carry/device_common.sh
cd "$C"
N1=${N1:-60}; N2=${N2:-30}
for seed in 56 57; do
  echo "$(el) forward sweep seed $seed" | tee -a "$OUT/sweep.txt"
  MAMBA_GPU_SWEEP=$N1 MAMBA_GPU_SWEEP_SEED=$seed timeout 280 ./gpu default_rules_match_the_oracle_at_random_sizes --nocapture 2>&1 | grep -E "^test |result|comparisons|rel-L2 .* > |panicked" | cut -c1-400 | tee -a "$OUT/sweep.txt"
done
for seed in 56 57; do
  echo "$(el) backward sweep seed $seed" | tee -a "$OUT/sweep.txt"
  MAMBA_GPU_SWEEP=$N2 MAMBA_GPU_SWEEP_SEED=$seed timeout 280 ./gpu_backward default_rules_backward_at_random_sizes --nocapture 2>&1 | grep -vE "^GPU|^running|^$" | cut -c1-400 | tail -60 | tee -a "$OUT/sweep.txt"
done
echo "$(el) done"
