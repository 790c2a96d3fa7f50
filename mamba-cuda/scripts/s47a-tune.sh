#!/bin/bash
# Forty-seventh session, call 2: cuBLASLt's candidates timed with a margin (16 runs x 2
# passes, the least of the passes; the heuristic's first choice kept unless another is 15%
# faster). The decoder's timings (base = MAMBA_CUDA_LT_TUNE=0, tune = the default), three
# rounds alternating; `xtask bench` mamba2_block and mamba2_stack4 rows, tune 0 / 1, two rounds
# alternating; the decoder test and gpu_block_train with tuning on; the gpu tests that use the
# products (mamba2_block, device_errors).
. "$PWD/.device-carry/device_common.sh"
{
for round in 1 2 3; do
for form in base tune; do
  case $form in base) E="MAMBA_CUDA_LT_TUNE=0";; tune) E="MAMBA_CUDA_LT_TUNE=1";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r$round $form rc=$?"; grep -E "test result|panicked|decode bench" /tmp/d$form.log | cut -c1-200 | head -8
done
done
el
for round in 1 2; do for t in 0 1; do
  MAMBA_CUDA_LT_TUNE=$t timeout 200 "$C/xtask" bench --backend cuda --no-reference --only mamba2_ --out /tmp/bt$t > /tmp/b.log 2>&1
  echo "r$round xtask bench tune=$t rc=$?"; grep -E "^\| mamba2_(block|stack4) \| [a-z+]* \| (f32|bf16)" /tmp/b.log | cut -d'|' -f2-7 | head -24
done; done
el
timeout 200 "$C/gpu_block_train" --test-threads=2 > /tmp/t.log 2>&1
echo "gpu_block_train (tuned) rc=$? $(grep -E 'test result' /tmp/t.log | cut -c1-90)"; grep -E "panicked" -A2 /tmp/t.log | head -8
for f in mamba2_block device_errors decode_steps; do
  timeout 100 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
for dt in f32 bf16; do
  timeout 60 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
} > "$OUT/s47a.txt" 2>&1
cat "$OUT/s47a.txt"
