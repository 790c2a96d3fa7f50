#!/bin/bash
# Forty-first session, call 5: `cargo xtask bench`'s new row (a training step of a stack of
# four seed blocks through `Mamba2Stack::backward_update`) next to the block rows, f32 and
# bf16, two rounds; the goldens (f32, bf16) and the forward GPU tests on this session's
# plugin (its misc module gained adamw_f32 and set_image_*).
. "$PWD/.device-carry/device_common.sh"
{
for r in 1 2; do
  for dt in f32 bf16; do
    timeout 120 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_ --out /tmp/bx > /tmp/bx.log 2>&1
    echo "r$r $dt rc=$?"; grep -E "^\| mamba2_" /tmp/bx.log | grep -v "n/a | n/a |$" | sed "s/^/r$r /" | cut -c1-160
    grep -E "^\| mamba2_" /tmp/bx.log | grep "GB/s\|host\|CUDA" | sed "s/^/r$r /" | cut -c1-200 | head -12
  done
done
el
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
timeout 300 "$C/gpu" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-200 | head -6
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
