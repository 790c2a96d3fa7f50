#!/bin/bash
# Forty-eighth session, call 3: the committed default (gemv_vec for the 16-bit types at 1-4
# rows, f32 on cuBLASLt; the gated norm up to 1024 threads where its blocks are fewer than
# the SMs) against both off, three rounds alternating; the checks in the default form;
# racecheck on the residual test (the wide norm), memcheck on the recording test.
. "$PWD/.device-carry/device_common.sh"
{
timeout 120 "$C/gpu_block_train" recorded residual_forward stack_decoder --nocapture --test-threads=1 > /tmp/c.log 2>&1
echo "checks rc=$?"; grep -E "test result|panicked|checks passed|cases|recorded block" /tmp/c.log | cut -c1-220 | head -8
el
for round in 1 2 3; do
for form in old new; do
  case $form in old) E="MAMBA_CUDA_GEMV=0 MAMBA_CUDA_NORM_WIDE=0";; new) E="MAMBA_S48=1";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r$round $form rc=$?"; grep -E "panicked|decode bench" /tmp/d$form.log | sed 's/(median of 200 tokens, 4 blocks; graphs true \/ true)//' | cut -c1-200 | head -6
done
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 240 "$SAN" --tool racecheck "$C/gpu_block_train" residual_forward --test-threads=1 > /tmp/s.log 2>&1
echo "racecheck residual rc=$?"; grep -E "RACECHECK SUMMARY|test result" /tmp/s.log | head -3
el
timeout 150 "$SAN" --tool memcheck "$C/gpu_block_train" recorded --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck recorded rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/s.log | head -3
el
} > "$OUT/s48c.txt" 2>&1
cat "$OUT/s48c.txt"
# The recording test against the plugin of 88f9c7c (before the recording fixes; built by hand into
# .device-carry/old with gemm.rs and mod.rs of that commit): expected to fail.
MAMBA_CUDA_PLUGIN=$C/old/libmamba_cuda.so timeout 60 "$C/gpu_block_train" recorded_block --nocapture --test-threads=1 > /tmp/o.log 2>&1
echo "old plugin, recording test rc=$?"; grep -E "panicked|test result|error|Error" -A2 /tmp/o.log | cut -c1-300 | head -10
