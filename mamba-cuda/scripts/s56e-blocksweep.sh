#!/bin/bash
# Fifty-sixth session, call 5: the Mamba2Block training path (device forward_train +
# backward) against the reference backend at random block sizes (`block_train_at_random_sizes`),
# two seeds, each alone; then the whole gpu / gpu_backward / gpu_block_train binaries one
# test at a time (the session's new default-size sweeps inside them at their defaults).
. .device-carry/device_common.sh
cd "$C"
for seed in 56 57; do
  echo "$(el) block sweep seed $seed" | tee -a "$OUT/block.txt"
  MAMBA_GPU_SWEEP=${NB:-12} MAMBA_GPU_SWEEP_SEED=$seed timeout 280 ./gpu_block_train block_train_at_random_sizes --nocapture 2>&1 | grep -E "^  b|^test |result|passed|panicked|case " | cut -c1-400 | tee -a "$OUT/block.txt"
done
echo "$(el) done"
