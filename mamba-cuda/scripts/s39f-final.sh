#!/bin/bash
# Thirty-ninth session, call 7: the final plugin (bb_gemmt2 back out of the tree): the block
# training tests (with the new saved-buffer error test), the block forward test and goldens,
# memcheck on the training tests, and one round of the block rows.
. "$PWD/.device-carry/device_common.sh"
{
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|passed|agree|threads x|errors: ok" /tmp/t.log | cut -c1-160 | head -12
timeout 200 "$C/gpu" mamba2_block --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu mamba2_block rc=$?"; grep -E "comparisons|test result|panicked" /tmp/t.log
for dt in f32 bf16 f16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -1
done
MAMBA_GPU_QUICK=1 timeout 200 compute-sanitizer --tool memcheck --print-limit 20 "$C/gpu_block_train" block_ --test-threads=1 > /tmp/t.log 2>&1
echo "memcheck gpu_block_train rc=$? $(grep -E 'ERROR SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
el
for dt in f32 bf16; do
  timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
  grep -E "^\| mamba2_block .*CUDA" /tmp/bx.log | cut -d'|' -f1-8
done
el
} > "$OUT/summary.txt" 2>&1
tail -5 "$OUT/summary.txt"
