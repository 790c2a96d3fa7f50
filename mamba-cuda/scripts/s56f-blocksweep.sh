#!/bin/bash
# Fifty-sixth session, call 7: block_train_at_random_sizes against the f64-accumulating
# reference (size cap 8e7 state updates), seeds 58-61, 30 cases each; the per-case lines
# and the tallies kept in $OUT.
. .device-carry/device_common.sh
cd "$C"
for seed in 58 59 60 61; do
  echo "$(el) block sweep seed $seed" | tee -a "$OUT/block.txt"
  MAMBA_GPU_SWEEP=${NB:-30} MAMBA_GPU_SWEEP_SEED=$seed timeout 250 ./gpu_block_train block_train_at_random_sizes --nocapture > /tmp/b.log 2>&1; echo "rc=$?" >> /tmp/b.log
  grep -E "^  b|^test |passed|panicked|case |rc=" /tmp/b.log | cut -c1-260 >> "$OUT/block.txt"
  grep -E "passed|rc=" /tmp/b.log | tail -2
done
echo "$(el) done"
