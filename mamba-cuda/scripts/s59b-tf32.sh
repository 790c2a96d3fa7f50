#!/bin/bash
# Fifty-ninth session, call 2: the block backward's defaults (the 16-bit in_proj backward on
# TF32, the norm's weight gradient summed over 16 rows per block) against each change undone
# (MAMBA_CUDA_BB_TF32=0, MAMBA_CUDA_BB_NORM_RPB=1) at small, middle and LM shapes, three
# rounds in rotating order; then every gpu_block_train test (not the benches), the block test
# of `gpu`, and the goldens.
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/time.txt"
V_new="MAMBA_CUDA_BB_TF32=1"; V_tf0="MAMBA_CUDA_BB_TF32=0"; V_rpb1="MAMBA_CUDA_BB_NORM_RPB=1"
for r in 1 2 3; do
  case $r in 1) order="new tf0 rpb1";; 2) order="tf0 rpb1 new";; 3) order="rpb1 new tf0";; esac
  for v in $order; do
    eval "e=\$V_$v"
    for dt in bf16 f32; do
      env $e MAMBA_BENCH_ITERS=10,60 MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="2,400,192,64;2,800,192,64;4,1024,384,64" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
    done
    env $e MAMBA_BENCH_ITERS=5,20 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
  done
done
for v in new tf0; do
  eval "e=\$V_$v"
  env $e MAMBA_BENCH_ITERS=5,20 MAMBA_BENCH_DTYPE=f16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/$v /" | tee -a "$OUT/time.txt"
done
echo "$(el) tests" | tee -a "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
timeout 300 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > /tmp/t.log 2>&1; echo "gpu_block_train rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | cut -c1-200 | tail -40 >> "$OUT/time.txt"
timeout 120 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | tail -8 >> "$OUT/time.txt"
for dt in f32 bf16 f16; do timeout 60 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed" | tail -2 | tee -a "$OUT/time.txt"; done
echo "$(el) done" | tee -a "$OUT/time.txt"
