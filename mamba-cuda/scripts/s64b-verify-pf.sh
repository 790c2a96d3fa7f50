#!/bin/bash
# Sixty-fourth session, second call: the strided SSD backward test (its overlap rule fixed),
# racecheck of the block's SSD backward kernels one by one (the first call's filtered run
# stopped at "Internal Sanitizer Error"), the norm backward with the next row prefetched
# (`MAMBA_CUDA_NORM_PF`): tests, ncu, block timings on and off.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|strided:|switches:|RACECHECK SUMMARY|ERROR SUMMARY" /tmp/t.log | cut -c1-400 | tail -6 | tee -a "$T"; }
t "ssd strided" timeout 150 ./gpu_backward ssd_backward_strided --test-threads=1 --nocapture
cp /tmp/t.log "$OUT/strided.txt"
t "block train (all), PF on" MAMBA_CUDA_NORM_PF=1 timeout 200 ./gpu_block_train --test-threads=1
RC="compute-sanitizer --tool racecheck --racecheck-report all --print-limit 30"
B="MAMBA_CUBLASLT=0 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16"
env $B MAMBA_BENCH_BLOCK="1,200,512,64" timeout 100 $RC ./mamba-cuda-bench > "$OUT/race_all.txt" 2>&1; echo "$(el) racecheck d512 unfiltered rc=$?" | tee -a "$T"; grep -E "RACECHECK SUMMARY|Error" "$OUT/race_all.txt" | tail -3 | tee -a "$T"
for k in ssdbc_walks ssdbl_xs bb_norm_bwd; do
  env $B MAMBA_CUDA_SSD_BWDL=1 MAMBA_CUDA_NORM_PF=1 MAMBA_BENCH_BLOCK="1,200,512,64" timeout 100 $RC --kernel-name regex=$k ./mamba-cuda-bench > /tmp/rk.txt 2>&1; echo "$(el) racecheck only $k rc=$?" | tee -a "$T"; grep -E "RACECHECK SUMMARY|Error" /tmp/rk.txt | tail -2 | tee -a "$T"
done
for v in 1 0; do
  env MAMBA_CUDA_NORM_PF=$v MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 60 "$NCU" --clock-control none -k regex:"bb_norm_bwd" -c 1 --section SpeedOfLight --section Occupancy --section LaunchStats ./mamba-cuda-bench > /tmp/ncu.txt 2>&1
  echo "$(el) ncu norm bwd PF=$v" | tee -a "$T"
  grep -E "^  [a-z_0-9]+ \(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per" /tmp/ncu.txt | head -6 | tee -a "$T"
done
echo "$(el) timings" | tee -a "$T"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | grep -v " forward " | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_NORM_PF=1"; OFF="MAMBA_CUDA_NORM_PF=0"
for r in 1 2; do
  case $r in 1) order="ON OFF";; 2) order="OFF ON";; esac
  for v in $order; do
    eval "e=\$$v"
    bench "$e" 10,60 bf16 "8,2048,768,128;4,1024,512,64;2,800,512,64" "r$r $v"
  done
done
bench "$ON" 5,20 f32 "8,2048,768,128" "r1 f32 ON"
bench "$OFF" 5,20 f32 "8,2048,768,128" "r1 f32 OFF"
echo "$(el) done" | tee -a "$T"
