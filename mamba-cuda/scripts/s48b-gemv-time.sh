#!/bin/bash
# Forty-eighth session, call 2: the decoder timings of s48a in rounds 2-3 (four forms), the
# sanitizers on the recording and decoder tests, ncu of one token at d_model 768 (default).
. "$PWD/.device-carry/device_common.sh"
{
for round in 2 3; do
for form in old gemv both g16; do
  case $form in old) E="MAMBA_CUDA_GEMV=0 MAMBA_CUDA_NORM_WIDE=0";; gemv) E="MAMBA_CUDA_GEMV=1 MAMBA_CUDA_NORM_WIDE=0";; both) E="MAMBA_CUDA_GEMV=1";; g16) E="MAMBA_CUDA_GEMV_M=16";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r$round $form rc=$?"; grep -E "panicked|decode bench" /tmp/d$form.log | sed 's/(median of 200 tokens, 4 blocks; graphs true \/ true)//' | cut -c1-200 | head -6
done
done
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_CUDA_GEMV_M=16 timeout 150 "$SAN" --tool $tool "$C/gpu_block_train" recorded residual_forward stack_decoder --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | head -3
  el
done
for bf in 0 1; do
  MAMBA_PROFILE_DM=768 MAMBA_PROFILE_BF16=$bf timeout 100 "$NCU" --launch-skip 400 --launch-count 8 --metrics gpu__time_duration.sum --csv "$C/gpu_block_train" decode_profile --ignored --test-threads=1 > /tmp/n.log 2>&1
  echo "ncu dm=768 bf16=$bf rc=$?"
  grep '"gpu__time_duration.sum"' /tmp/n.log | awk -F'","' '{printf "%s %s %s %s\n", substr($5,1,60), $8, $9, $NF}' | head -8
done
el
} > "$OUT/s48b.txt" 2>&1
cat "$OUT/s48b.txt"
