#!/bin/bash
# Fifty-ninth session, call 2 (not run in that session): the block backward's default (the
# 16-bit in_proj backward on TF32) against MAMBA_CUDA_BB_TF32=0 and against the norm's weight
# gradient summed over 16 rows per block (MAMBA_CUDA_BB_NORM_RPB=16, opt-in) at small, middle
# and LM shapes, three
# rounds in rotating order, after every gpu_block_train test (not the benches), the block
# test of `gpu`, and the goldens (the timings stop at BUDGET seconds, default 300).
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/time.txt"
echo "$(el) tests" | tee -a "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
MAMBA_CUDA_BB_NORM_RPB=16 timeout 150 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > /tmp/t.log 2>&1; echo "gpu_block_train rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | cut -c1-200 | tail -40 >> "$OUT/time.txt"
MAMBA_CUDA_BB_NORM_RPB=16 timeout 60 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | tail -8 >> "$OUT/time.txt"
for dt in f32 bf16 f16; do timeout 40 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed" | tail -2 | tee -a "$OUT/time.txt"; done
echo "$(el) timings" | tee -a "$OUT/time.txt"
V_new="MAMBA_CUDA_BB_TF32=1"; V_tf0="MAMBA_CUDA_BB_TF32=0"; V_rpb16="MAMBA_CUDA_BB_NORM_RPB=16"
for r in 1 2 3; do
  [ $(( $(date +%s) - S0 )) -gt ${BUDGET:-300} ] && break
  case $r in 1) order="new tf0 rpb16";; 2) order="tf0 rpb16 new";; 3) order="rpb16 new tf0";; esac
  for v in $order; do
    eval "e=\$V_$v"
    for dt in bf16 f32; do
      env $e MAMBA_BENCH_ITERS=10,60 MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="2,400,192,64;2,800,192,64;4,1024,384,64" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
    done
    env $e MAMBA_BENCH_ITERS=5,20 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
  done
done
for v in new tf0; do
  [ $(( $(date +%s) - S0 )) -gt ${BUDGET:-300} ] && break
  eval "e=\$V_$v"
  env $e MAMBA_BENCH_ITERS=5,20 MAMBA_BENCH_DTYPE=f16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/$v /" | tee -a "$OUT/time.txt"
done
echo "$(el) done" | tee -a "$OUT/time.txt"
