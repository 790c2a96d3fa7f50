#!/bin/bash
# Sixty-fourth session: the SSD backward on strided views (x / B / C / dt read from the
# Mamba2Block's conv output and in_proj rows, dx / dB / dC / d dt written into their gradients'
# rows; `MAMBA_CUDA_BB_SSD_DIRECT`): tests, sanitizers, block timings on and off.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|strided:|RACECHECK SUMMARY|ERROR SUMMARY" /tmp/t.log | cut -c1-400 | tail -6 | tee -a "$T"; }
t "ssd strided" timeout 150 ./gpu_backward ssd_backward_strided --test-threads=1 --nocapture
cp /tmp/t.log "$OUT/strided.txt"
t "ssd backward tests" timeout 280 ./gpu_backward ssd_backward_q64 ssd_backward_chunked ssd_backward_gated ssd_packed backward_into_matches --test-threads=1
cp /tmp/t.log "$OUT/ssdtests.txt"
t "block train (all)" timeout 200 ./gpu_block_train --test-threads=1
for dt in f32 bf16; do timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype $dt 2>&1 | grep -iE "passed" | tail -1 | sed "s/^/golden $dt /" | tee -a "$T"; done
for dt in bf16 f32 bf16-q64; do
  Q=""; [ $dt = bf16-q64 ] && { dt=bf16; Q="MAMBA_CUDA_SSD_BWDL=1"; }
  env $Q MAMBA_CUBLASLT=0 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="1,200,512,64;2,100,512,128" timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --kernel-name regex=ssdb ./mamba-cuda-bench > /tmp/r.log 2>&1; echo "$(el) racecheck block $dt $Q rc=$?" | tee -a "$T"; grep -E "RACECHECK SUMMARY|Error" /tmp/r.log | tail -3 | tee -a "$T"
  env $Q MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="1,200,512,64;2,100,512,128" timeout 100 compute-sanitizer --tool memcheck ./mamba-cuda-bench > /tmp/r.log 2>&1; echo "$(el) memcheck block $dt $Q rc=$?" | tee -a "$T"; grep -E "ERROR SUMMARY" /tmp/r.log | tail -2 | tee -a "$T"
done
echo "$(el) timings" | tee -a "$T"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_BB_SSD_DIRECT=1"; OFF="MAMBA_CUDA_BB_SSD_DIRECT=0"
for r in 1 2; do
  case $r in 1) order="ON OFF";; 2) order="OFF ON";; esac
  for v in $order; do
    eval "e=\$$v"
    bench "$e" 10,60 bf16 "8,2048,768,128;4,1024,512,64;2,800,512,64;2,400,192,64" "r$r $v"
    bench "$e" 5,30 f32 "8,2048,768,128;2,400,192,64" "r$r $v"
  done
done
echo "$(el) done" | tee -a "$T"
