#!/bin/bash
# Forty-fifth session, call 1: the fused decode step (`block_step_fused`, conv and SSM in one
# launch, the B / C conv-state shift in the gated norm) and the residual block forward
# (`block_flags::ADD`: h += block(h), the add in out_proj's epilogue).
# 1. residual_forward_matches_forward_and_add, fused and two-launch step, outputs and states
#    compared bit for bit across the two runs (MAMBA_STEP_DUMP);
# 2. the decoder test (against the reference) and its timings in three forms, two rounds:
#    old (two-launch step, separate add), fused (separate add), new (fused + add: default);
# 3. memcheck / racecheck on both tests; gpu_block_train whole; gpu mamba2_block /
#    decode_steps / device_errors; the block / decode goldens.
. "$PWD/.device-carry/device_common.sh"
{
for f in 1 0; do
  MAMBA_CUDA_BLOCK_STEP_FUSED=$f MAMBA_STEP_DUMP=/tmp/dump$f timeout 120 "$C/gpu_block_train" residual_forward --nocapture --test-threads=1 > /tmp/r$f.log 2>&1
  echo "residual fused=$f rc=$?"; grep -E "test result|panicked|cases match" -A1 /tmp/r$f.log | cut -c1-250 | head -6
done
cmp /tmp/dump1 /tmp/dump0 && echo "dumps: same bits ($(stat -c %s /tmp/dump1) bytes)"
el
for round in 1 2; do
for form in old fused new; do
  case $form in old) E="MAMBA_CUDA_BLOCK_STEP_FUSED=0 MAMBA_DECODE_ADD=0";; fused) E="MAMBA_CUDA_BLOCK_STEP_FUSED=1 MAMBA_DECODE_ADD=0";; new) E="MAMBA_CUDA_BLOCK_STEP_FUSED=1";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r$round decoder $form rc=$?"; grep -E "test result|panicked|checks passed|decode bench" -A1 /tmp/d$form.log | cut -c1-250 | head -14
done
el
done
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  timeout 100 "$SAN" --tool $tool "$C/gpu_block_train" residual_forward stack_decoder --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
done
el
timeout 200 "$C/gpu_block_train" --test-threads=2 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$? $(grep -E 'test result' /tmp/t.log | cut -c1-90)"; grep -E "panicked" -A2 /tmp/t.log | head -8
for f in mamba2_block decode_steps device_errors; do
  timeout 100 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
for dt in f32 bf16; do
  timeout 60 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
} > "$OUT/s45a.txt" 2>&1
cat "$OUT/s45a.txt"
