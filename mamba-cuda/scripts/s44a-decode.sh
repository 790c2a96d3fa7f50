#!/bin/bash
# Forty-fourth session, call 1: the device decoder (`Mamba2Stack::decoder`, its recorded
# graph (`graph_begin` / `graph_end`), the plugin's
# one-step block form `block_conv_step` / `block_ssm_step`) against the reference, with the
# step form and with the general forward at L = 1 (`MAMBA_CUDA_BLOCK_STEP=0`), timings of
# a token through four blocks (host-slice step, decoder f32 / bf16); memcheck and racecheck
# on the decoder test; the block / decode / state-update goldens. (The session-42
# checkpoint test, s42a-ckpt.sh, runs in the next call.)
. "$PWD/.device-carry/device_common.sh"
{
# step: the one-step block form; general: the block forward at L = 1; host: the block
# step's projections and norm on the host (the previous `Mamba2Block::step` on CUDA).
# nograph: the decoder's steps launch by launch (no recorded graph).
for form in step nograph general host; do
  case $form in step) E="";; nograph) E="MAMBA_DECODE_GRAPH=0";; general) E="MAMBA_CUDA_BLOCK_STEP=0";; host) E="MAMBA_BLOCK_STEP=host";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "decoder $form rc=$?"; grep -E "test result|panicked|checks passed|decode bench" -A1 /tmp/d$form.log | cut -c1-250 | head -14
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  timeout 120 "$SAN" --tool $tool "$C/gpu_block_train" stack_decoder --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
done
el
for f in mamba2_block decode_steps device_errors; do
  timeout 150 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
for dt in f32 bf16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
} > "$OUT/s44a.txt" 2>&1
cat "$OUT/s44a.txt"
