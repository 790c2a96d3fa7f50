#!/bin/bash
# Sixty-first session: the sixtieth session's three block changes on by default (and the norm's
# 16 rows per block where they fill the GPU). Every gpu_block_train test, the block forward test
# and the goldens on the defaults; then default against all four off, two rounds.
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
timeout 150 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > "$OUT/t.log" 2>&1; echo "gpu_block_train defaults rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test |switches" "$OUT/t.log" | cut -c1-260 | tail -30 >> "$OUT/time.txt"
timeout 60 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | tail -8 >> "$OUT/time.txt"
for dt in f32 bf16 f16; do timeout 40 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed" | tail -2 | sed "s/^/$dt /" | tee -a "$OUT/time.txt"; done
echo "$(el) timings" | tee -a "$OUT/time.txt"
V_def=""; V_off="MAMBA_CUDA_BB_DZX16=0 MAMBA_CUDA_BB_VEC=0 MAMBA_CUDA_NORM_PAIRS=0 MAMBA_CUDA_BB_NORM_RPB=1"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$OUT/time.txt"; }
for r in 1 2; do
  case $r in 1) order="def off";; 2) order="off def";; esac
  for v in $order; do
    eval "e=\$V_$v"
    bench "$e" 10,60 bf16 "2,400,192,64;2,800,192,64;4,1024,384,64;8,2048,768,128" "r$r $v"
    bench "$e" 5,20 f16 "8,2048,768,128" "r$r $v"
  done
done
bench "" 5,20 f32 "8,2048,768,128" "r1 def"
echo "$(el) done" | tee -a "$OUT/time.txt"
