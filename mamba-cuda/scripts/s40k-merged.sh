#!/bin/bash
# Fortieth session, call 12: the block's host-slice forward downloads its output and both
# states in one copy, the backward d input and every gradient in one copy (from one
# page-locked buffer, no intermediate Vec). Checks: the block training tests, goldens (f32,
# bf16); the step's parts, this test binary (`new`) against call 10's (`s40i`), both on
# this plugin, three rounds alternating.
. "$PWD/.device-carry/device_common.sh"
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|device training API|threads x|errors: ok" /tmp/t.log | cut -c1-240 | head -16
el
for dt in f32 bf16 f16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
for r in 1 2 3; do
  for form in new s40i; do
    B=$C/gpu_block_train; [ $form = s40i ] && B=$C/prev/gpu_block_train_s40i
    MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$B" block_train_phases --nocapture > /tmp/t.log 2>&1
    grep -E "block train phases.*step" /tmp/t.log | sed "s/^/r$r $form /" | cut -c1-200
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
