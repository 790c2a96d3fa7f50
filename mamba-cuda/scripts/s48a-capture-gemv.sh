#!/bin/bash
# Forty-eighth session, call 1. (1) The recording fixes (gemm.rs: a plan first made while its
# stream is recorded is kept, untimed; cuBLASLt's workspace allocated outside stream order;
# mod.rs: chain scratch fresh while recording): the new test
# `recorded_block_forward_replays_with_new_inputs`, the graph and decoder tests. (2) The
# forty-seventh session's patch (s47-gemv-norm-wide, applied): the decoder / residual checks
# in four forms (old = both off, gemv, both = the default, g16 = gemv up to 16 rows),
# gpu_block_train whole, gpu tests, goldens, one timing round of the decoder in the four forms.
. "$PWD/.device-carry/device_common.sh"
{
timeout 120 "$C/gpu_block_train" recorded --nocapture --test-threads=1 > /tmp/r.log 2>&1
echo "recorded tests rc=$?"; grep -E "test result|panicked|recorded block|^test " -A1 /tmp/r.log | cut -c1-240 | head -12
el
for form in old gemv both g16; do
  case $form in old) E="MAMBA_CUDA_GEMV=0 MAMBA_CUDA_NORM_WIDE=0";; gemv) E="MAMBA_CUDA_GEMV=1 MAMBA_CUDA_NORM_WIDE=0";; both) E="MAMBA_CUDA_GEMV=1";; g16) E="MAMBA_CUDA_GEMV_M=16";; esac
  env $E timeout 120 "$C/gpu_block_train" residual_forward stack_decoder --nocapture --test-threads=1 > /tmp/c$form.log 2>&1
  echo "check $form rc=$?"; grep -E "test result|panicked|checks passed|cases" -A1 /tmp/c$form.log | cut -c1-220 | head -8
done
el
timeout 240 "$C/gpu_block_train" --test-threads=2 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$? $(grep -E 'test result' /tmp/t.log | cut -c1-90)"; grep -E "panicked" -A2 /tmp/t.log | head -8
el
for f in mamba2_block decode_steps device_errors; do
  timeout 100 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
for dt in f32 bf16; do
  timeout 60 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
for form in old gemv both g16; do
  case $form in old) E="MAMBA_CUDA_GEMV=0 MAMBA_CUDA_NORM_WIDE=0";; gemv) E="MAMBA_CUDA_GEMV=1 MAMBA_CUDA_NORM_WIDE=0";; both) E="MAMBA_CUDA_GEMV=1";; g16) E="MAMBA_CUDA_GEMV_M=16";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r1 $form rc=$?"; grep -E "panicked|decode bench" /tmp/d$form.log | sed 's/(median of 200 tokens, 4 blocks; graphs true \/ true)//' | cut -c1-200 | head -6
done
el
} > "$OUT/s48a.txt" 2>&1
cat "$OUT/s48a.txt"
