#!/bin/bash
# Fifty-sixth session, call 4: the default-rule sweeps at more seeds and cases (as s56c),
# keeping the tally lines and any failure.
. .device-carry/device_common.sh
cd "$C"
N1=${N1:-100}; N2=${N2:-60}
for seed in 58 59 60 61; do
  echo "$(el) forward sweep seed $seed, $N1 cases per kind" | tee -a "$OUT/sweep.txt"
  MAMBA_GPU_SWEEP=$N1 MAMBA_GPU_SWEEP_SEED=$seed timeout 200 ./gpu default_rules_match_the_oracle_at_random_sizes --nocapture 2>&1 | grep -E "^test |result|comparisons|rel-L2 .* > |panicked|failures" | cut -c1-400 | tee -a "$OUT/sweep.txt"
done
for seed in 58 59 60 61; do
  echo "$(el) backward sweep seed $seed, $N2 cases per kind" | tee -a "$OUT/sweep.txt"
  MAMBA_GPU_SWEEP=$N2 MAMBA_GPU_SWEEP_SEED=$seed timeout 200 ./gpu_backward default_rules_backward_at_random_sizes --nocapture 2>&1 | grep -E "^test |result|checks;|panicked|failures|Tolerance|: rel" | cut -c1-400 | tee -a "$OUT/sweep.txt"
done
echo "$(el) done"
