#!/bin/bash
# Forty-fifth session, call 2: where a decoded token's time goes, and cuBLASLt's candidates
# timed. The decoder's timings, two rounds, in three forms: base (MAMBA_CUDA_LT_TUNE=0: the
# heuristic's first algorithm, as before), tune (each new product's candidates timed, the
# default), tune + keep (MAMBA_CUDA_STEP_KEEP=1, a measurement switch: the step's scratch kept
# instead of alloc / free nodes in the graph). `xtask bench --only mamba2_block` (cuda) with
# and without tuning. The decoder test and gpu_block_train with tuning on. ncu durations of one
# token's kernels (decode_profile, d_model 192 / 768, batch 1, f32 / bf16). The kernels that now
# share common.cuh's warp_sum (misc.cu, conv.cuh, bwd.cu): their gpu / gpu_backward tests.
. "$PWD/.device-carry/device_common.sh"
{
for round in 1 2; do
for form in base tune keep; do
  case $form in base) E="MAMBA_CUDA_LT_TUNE=0 MAMBA_CUDA_STEP_KEEP=0";; tune) E="MAMBA_CUDA_LT_TUNE=1 MAMBA_CUDA_STEP_KEEP=0";; keep) E="MAMBA_CUDA_LT_TUNE=1 MAMBA_CUDA_STEP_KEEP=1";; esac
  env $E MAMBA_DECODE_BENCH=1 timeout 150 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d$form.log 2>&1
  echo "r$round $form rc=$?"; grep -E "test result|panicked|checks passed|decode bench" /tmp/d$form.log | sed 's/(median of 200 tokens, 4 blocks; graphs true \/ true)//' | cut -c1-200 | head -8
done
el
done
for t in 0 1; do
  MAMBA_CUDA_LT_TUNE=$t timeout 200 "$C/xtask" bench --backend cuda --no-reference --only mamba2_block --out /tmp/bt$t > /tmp/b.log 2>&1
  echo "xtask bench mamba2_block tune=$t rc=$?"; grep -E "^\| mamba2_block" /tmp/b.log | head -12
done
el
timeout 200 "$C/gpu_block_train" --test-threads=2 > /tmp/t.log 2>&1
echo "gpu_block_train (tuned) rc=$? $(grep -E 'test result' /tmp/t.log | cut -c1-90)"; grep -E "panicked" -A2 /tmp/t.log | head -8
# The ADD flag on our GEMM kernels (not run in the forty-fifth session: cuBLASLt took every
# product there): gemm_nt (no cuBLASLt) and gemm_few (all types).
for e in MAMBA_CUBLASLT=off MAMBA_CUDA_GEMM_FEW=all; do
  env $e timeout 120 "$C/gpu_block_train" residual_forward stack_decoder --test-threads=1 > /tmp/e.log 2>&1
  echo "$e rc=$? $(grep -E 'test result' /tmp/e.log | cut -c1-90)"; grep -E "panicked" -A2 /tmp/e.log | head -4
done
for f in causal_conv1d decode_steps mamba2_block device_errors; do
  timeout 100 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
for f in selective_scan_backward_matches causal_conv1d_backward; do
  timeout 150 "$C/gpu_backward" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu_backward $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
el
for dm in 192 768; do for bf in 0 1; do
  MAMBA_PROFILE_DM=$dm MAMBA_PROFILE_BF16=$bf timeout 100 "$NCU" --launch-skip 400 --launch-count 20 --metrics gpu__time_duration.sum --csv "$C/gpu_block_train" decode_profile --ignored --test-threads=1 > /tmp/n.log 2>&1
  echo "ncu dm=$dm bf16=$bf rc=$?"
  grep '"gpu__time_duration.sum"' /tmp/n.log | awk -F'","' '{printf "%s %s %s %s\n", substr($5,1,60), $8, $9, $NF}' | head -20
done; done
el
} > "$OUT/s45b.txt" 2>&1
cat "$OUT/s45b.txt"
