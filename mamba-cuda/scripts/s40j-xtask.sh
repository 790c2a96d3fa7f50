#!/bin/bash
# Fortieth session, call 11: `cargo xtask bench`'s Mamba2Block forward+backward rows now on
# the safe device-buffer training API (`CudaBlock::forward_train` / `backward`) instead of
# the raw entries: the same kernels, so the same times as the thirty-ninth session's
# (f32 L800 279-280 us); kept and recomputed, f32 and bf16, two rounds.
. "$PWD/.device-carry/device_common.sh"
{
for r in 1 2; do
  for form in keep rec; do
    unset MAMBA_BLOCK_TRAIN; [ $form = rec ] && export MAMBA_BLOCK_TRAIN=recompute
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      echo "r$r $form $dt rc=$?"; grep -E "^\| mamba2_block .*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
