#!/bin/bash
# Fifty-ninth session, call 2: the 16-bit block's in_proj backward on TF32 (the default) against
# f32 arithmetic (MAMBA_CUDA_BB_TF32=0) at small and middle shapes, alternating order, three
# rounds; f16 at the LM width; then every gpu_block_train test (not the benches), the block
# tests of `gpu`, and the f32 goldens.
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/time.txt"
for r in 1 2 3; do
  if [ $r = 2 ]; then order="0 1"; else order="1 0"; fi
  for tf in $order; do
    for dt in bf16 f16; do
      MAMBA_BENCH_ITERS=10,60 MAMBA_CUDA_BB_TF32=$tf MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="2,400,192,64;2,800,192,64;4,1024,384,64" timeout 100 ./mamba-cuda-bench 2>&1 | grep "forward+backward\|backward " | sed "s/^/r$r tf32=$tf /" | tee -a "$OUT/time.txt"
    done
  done
done
for tf in 1 0; do
  MAMBA_BENCH_ITERS=5,20 MAMBA_CUDA_BB_TF32=$tf MAMBA_BENCH_DTYPE=f16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block" | sed "s/^/tf32=$tf /" | tee -a "$OUT/time.txt"
done
echo "$(el) tests" | tee -a "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
timeout 300 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > /tmp/t.log 2>&1; echo "gpu_block_train rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | cut -c1-200 | tail -40 >> "$OUT/time.txt"
timeout 120 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | tail -8 >> "$OUT/time.txt"
timeout 90 ./xtask golden --backend cuda --dir "$C/golden" --dtype f32 2>&1 | grep -i "mamba2_block\|passed" | tail -6 | tee -a "$OUT/time.txt"
echo "$(el) done" | tee -a "$OUT/time.txt"
