#!/bin/bash
# Fortieth session, call 1: where the host-slice training step's time goes (the parts of
# a step, wall clock, `block_train_phases`), and the training example on the GPU against
# cpu-simd on this machine's 16 cores.
. "$PWD/.device-carry/device_common.sh"
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 200 "$C/gpu_block_train" block_train_phases --nocapture > /tmp/t.log 2>&1
echo "phases rc=$?"; grep -E "block train phases|panicked" /tmp/t.log | cut -c1-400
el
for be in cuda cpu-simd; do
  MAMBA_BACKEND=$be timeout 150 "$C/train" --steps 100 > /tmp/tr.log 2>&1
  echo "train $be rc=$?"; grep -E "backend|step  100|step    1 |->" /tmp/tr.log | cut -c1-200
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
