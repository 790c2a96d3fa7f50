#!/bin/bash
# Forty-seventh session, call 3: `gemv_vec` (kernels/misc.cu: one warp per output column,
# 16-byte loads, 1-4 rows; MAMBA_CUDA_GEMV=0 keeps cuBLASLt) and the wide gated norm for few
# tokens (up to 1024 threads per (token, group) where the blocks are fewer than the SMs;
# MAMBA_CUDA_NORM_WIDE=0 keeps 256). Checks: the decoder test (batches 1-4 against the
# reference, f32 / bf16) and the residual test in each form; gpu_block_train whole; gpu
# mamba2_block / decode_steps; goldens; memcheck / racecheck of both tests. Timings: the
# decoder in three forms (old = both off, gemv, both = the default), three rounds; ncu of one
# token at d_model 768 batch 1 f32 / bf16 (default). `g16`: the default with
# MAMBA_CUDA_GEMV_M=16 (gemv_vec up to 16 rows: the decoder test's batch 16 on `_m16`).
. "$PWD/.device-carry/device_common.sh"
{
for form in old gemv both g16; do
  case $form in old) E="MAMBA_CUDA_GEMV=0 MAMBA_CUDA_NORM_WIDE=0";; gemv) E="MAMBA_CUDA_GEMV=1 MAMBA_CUDA_NORM_WIDE=0";; both) E="MAMBA_CUDA_GEMV=1";; g16) E="MAMBA_CUDA_GEMV_M=16";; esac
  env $E timeout 120 "$C/gpu_block_train" residual_forward stack_decoder --nocapture --test-threads=1 > /tmp/c$form.log 2>&1
  echo "check $form rc=$?"; grep -E "test result|panicked|checks passed|cases" -A1 /tmp/c$form.log | cut -c1-220 | head -8
done
el
for round in 1 2 3; do
for form in old gemv both g16; do
  case $form in old) E="MAMBA_CUDA_GEMV=0 MAMBA_CUDA_NORM_WIDE=0";; gemv) E="MAMBA_CUDA_GEMV=1 MAMBA_CUDA_NORM_WIDE=0";; both) E="MAMBA_CUDA_GEMV=1";; g16) E="MAMBA_CUDA_GEMV_M=16";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r$round $form rc=$?"; grep -E "panicked|decode bench" /tmp/d$form.log | sed 's/(median of 200 tokens, 4 blocks; graphs true \/ true)//' | cut -c1-200 | head -6
done
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_CUDA_GEMV_M=16 timeout 150 "$SAN" --tool $tool "$C/gpu_block_train" residual_forward stack_decoder --test-threads=1 > /tmp/s.log 2>&1
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
for bf in 0 1; do
  MAMBA_PROFILE_DM=768 MAMBA_PROFILE_BF16=$bf timeout 100 "$NCU" --launch-skip 400 --launch-count 8 --metrics gpu__time_duration.sum --csv "$C/gpu_block_train" decode_profile --ignored --test-threads=1 > /tmp/n.log 2>&1
  echo "ncu dm=768 bf16=$bf rc=$?"
  grep '"gpu__time_duration.sum"' /tmp/n.log | awk -F'","' '{printf "%s %s %s %s\n", substr($5,1,60), $8, $9, $NF}' | head -8
done
el
} > "$OUT/s47b.txt" 2>&1
cat "$OUT/s47b.txt"
