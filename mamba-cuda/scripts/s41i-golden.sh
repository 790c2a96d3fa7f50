#!/bin/bash
# Forty-first session, call 9: the goldens (f32, bf16; the 28 files under 5 MB) on the
# final plugin (its misc module rebuilt with sumsq_f32 and the AdamW gradient scale), and
# the training example.
. "$PWD/.device-carry/device_common.sh"
{
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
MAMBA_BACKEND=cuda timeout 100 "$C/train" --steps 400 > /tmp/tr.log 2>&1
echo "train rc=$?"; head -1 /tmp/tr.log; grep -E 'step  400|->' /tmp/tr.log
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
