#!/bin/bash
# Sixtieth session (owed: no device came). Its three block changes, opt-in until this runs:
# MAMBA_CUDA_BB_DZX16=1 (a 16-bit block's dzx in the storage type, in_proj's backward on the
# 16-bit tensor cores), MAMBA_CUDA_BB_VEC=1 (the backward's copies four columns per thread),
# MAMBA_CUDA_NORM_PAIRS=1 (the gated norm forward and backward in column pairs held in
# registers); and the fifty-ninth session's owed MAMBA_CUDA_BB_NORM_RPB=16.
# Tests: every gpu_block_train test (not the benches) with all four, the 16-bit block test
# again with f32 dzx and the pairs / copies on, the block test of `gpu` and the goldens with the
# pairs. Then ncu of one bf16 LM-width training pass (per-kernel durations; sections of the
# small kernels), timings in two rounds of: new (the three), old (none: the defaults), dzx
# (new without DZX16), rpb16 (new with RPB=16), vec0 (new without VEC), pairs0 (new without
# PAIRS); the SSD backward's heads per x block at 24 heads; f16 new / old.
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/time.txt"
echo "$(el) tests" | tee -a "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
NEW="MAMBA_CUDA_BB_DZX16=1 MAMBA_CUDA_BB_VEC=1 MAMBA_CUDA_NORM_PAIRS=1"
env $NEW MAMBA_CUDA_BB_NORM_RPB=16 timeout 150 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > /tmp/t.log 2>&1; echo "gpu_block_train new rpb16 rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test |worst" /tmp/t.log | cut -c1-260 | tail -40 >> "$OUT/time.txt"
env MAMBA_CUDA_BB_VEC=1 MAMBA_CUDA_NORM_PAIRS=1 timeout 60 ./gpu_block_train --test-threads=1 block_train_device_matches_host_half > /tmp/t.log 2>&1; echo "gpu_block_train half, f32 dzx rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test |worst" /tmp/t.log | cut -c1-260 | tail -10 >> "$OUT/time.txt"
MAMBA_CUDA_NORM_PAIRS=1 timeout 60 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block pairs rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | tail -8 >> "$OUT/time.txt"
for dt in f32 bf16 f16; do MAMBA_CUDA_NORM_PAIRS=1 timeout 40 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed" | tail -2 | tee -a "$OUT/time.txt"; done
echo "$(el) ncu" | tee -a "$OUT/time.txt"
# LEAN=1 (a short call): no ncu, the LM width only, one round.
[ -z "${LEAN:-}" ] && env $NEW MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 90 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv ./mamba-cuda-bench > "$OUT/ncu_bf16.csv" 2> "$OUT/ncu_err.txt"
echo "ncu rc=$? $(wc -l < "$OUT/ncu_bf16.csv") lines" | tee -a "$OUT/time.txt"
[ -z "${LEAN:-}" ] && [ $(( $(date +%s) - S0 )) -lt 200 ] && env $NEW MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 60 "$NCU" --clock-control none --kernel-name regex:"bwd_convt|conv1d_fwdt|bb_norm_bwd|gated_rmsnorm|bb_copyn" --launch-count 8 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats ./mamba-cuda-bench > "$OUT/ncu_small.txt" 2>&1
echo "ncu small rc=$?" | tee -a "$OUT/time.txt"
echo "$(el) timings" | tee -a "$OUT/time.txt"
V_new="$NEW"; V_old="MAMBA_CUDA_BB_X=1"; V_dzx="MAMBA_CUDA_BB_VEC=1 MAMBA_CUDA_NORM_PAIRS=1"
V_rpb16="$NEW MAMBA_CUDA_BB_NORM_RPB=16"; V_vec0="MAMBA_CUDA_BB_DZX16=1 MAMBA_CUDA_NORM_PAIRS=1"; V_pairs0="MAMBA_CUDA_BB_DZX16=1 MAMBA_CUDA_BB_VEC=1"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$OUT/time.txt"; }
for r in $(seq 1 ${ROUNDS:-2}); do
  [ $(( $(date +%s) - S0 )) -gt ${BUDGET:-300} ] && break
  case $r in 1) order="new old dzx rpb16 vec0 pairs0";; 2) order="pairs0 vec0 rpb16 dzx old new";; esac
  for v in $order; do
    eval "e=\$V_$v"
    [ -z "${LEAN:-}" ] && bench "$e" 10,60 bf16 "2,400,192,64;2,800,192,64;4,1024,384,64" "r$r $v"
    bench "$e" 5,20 bf16 "8,2048,768,128" "r$r $v"
    [ -z "${LEAN:-}" ] && case $v in rpb16|new|old) bench "$e" 10,60 f32 "2,400,192,64;8,2048,768,128" "r$r $v";; esac
  done
done
# The SSD backward's heads per x block at 24 heads (the rule was tuned at 80).
for x in ${LEAN:+none} 0 4 12 24 0; do
  [ $x = none ] && break
  [ $(( $(date +%s) - S0 )) -gt $(( ${BUDGET:-300} + 20 )) ] && break
  e="$NEW"; [ $x != 0 ] && e="$NEW MAMBA_CUDA_SSD_BWDL_HPBX=$x"
  bench "$e" 5,20 bf16 "8,2048,768,128" "hpbx$x"
done
for v in new old; do
  [ $(( $(date +%s) - S0 )) -gt $(( ${BUDGET:-300} + 30 )) ] && break
  eval "e=\$V_$v"
  bench "$e" 5,20 f16 "2,400,192,64;8,2048,768,128" "$v"
done
echo "$(el) done" | tee -a "$OUT/time.txt"
