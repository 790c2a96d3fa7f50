#!/bin/bash
# Sixtieth session, call 1: the 16-bit block's dzx in the storage type with in_proj's backward
# on the 16-bit tensor cores (the new default), and the fifty-ninth session's owed checks
# (s59b-tf32.sh): every gpu_block_train test (not the benches) and the block test of `gpu`
# with the norm's rows per block at 16, the goldens; then timings in three rotating rounds:
# new (defaults), dzx (MAMBA_CUDA_BB_DZX=f32: the fifty-ninth session's TF32 products),
# tf0 (f32 dzx and f32 products), rpb16 (defaults with MAMBA_CUDA_BB_NORM_RPB=16), vec0
# (MAMBA_CUDA_BB_VEC=0: the copies one column per thread, as before), pairs0
# (MAMBA_CUDA_NORM_PAIRS=0: the forward's gated norm one column per access, as before).
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/time.txt"
echo "$(el) tests" | tee -a "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
for e in "MAMBA_CUDA_BB_NORM_RPB=16" "MAMBA_CUDA_BB_DZX=f32 MAMBA_CUDA_BB_VEC=0 MAMBA_CUDA_NORM_PAIRS=0"; do
  env $e timeout 150 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > /tmp/t.log 2>&1; echo "gpu_block_train $e rc=$?" | tee -a "$OUT/time.txt"
  grep -E "test result|FAIL|panicked|^test |worst" /tmp/t.log | cut -c1-260 | tail -40 >> "$OUT/time.txt"
done
MAMBA_CUDA_BB_NORM_RPB=16 timeout 60 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | tail -8 >> "$OUT/time.txt"
for dt in f32 bf16 f16; do timeout 40 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed" | tail -2 | tee -a "$OUT/time.txt"; done
echo "$(el) timings" | tee -a "$OUT/time.txt"
V_new="MAMBA_CUDA_BB_X=1"; V_dzx="MAMBA_CUDA_BB_DZX=f32"; V_tf0="MAMBA_CUDA_BB_DZX=f32 MAMBA_CUDA_BB_TF32=0"; V_rpb16="MAMBA_CUDA_BB_NORM_RPB=16"; V_vec0="MAMBA_CUDA_BB_VEC=0"; V_pairs0="MAMBA_CUDA_NORM_PAIRS=0"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$OUT/time.txt"; }
for r in 1 2 3; do
  [ $(( $(date +%s) - S0 )) -gt ${BUDGET:-300} ] && break
  case $r in 1) order="new dzx tf0 rpb16 vec0 pairs0";; 2) order="vec0 pairs0 dzx tf0 rpb16 new";; 3) order="rpb16 pairs0 vec0 new dzx tf0";; esac
  for v in $order; do
    eval "e=\$V_$v"
    bench "$e" 10,60 bf16 "2,400,192,64;2,800,192,64;4,1024,384,64" "r$r $v"
    bench "$e" 5,20 bf16 "8,2048,768,128" "r$r $v"
    case $v in rpb16|new) bench "$e" 10,60 f32 "2,400,192,64;8,2048,768,128" "r$r $v";; esac
  done
done
for v in new dzx; do
  [ $(( $(date +%s) - S0 )) -gt $(( ${BUDGET:-300} + 30 )) ] && break
  eval "e=\$V_$v"
  bench "$e" 5,20 f16 "2,400,192,64;8,2048,768,128" "$v"
done
echo "$(el) done" | tee -a "$OUT/time.txt"
