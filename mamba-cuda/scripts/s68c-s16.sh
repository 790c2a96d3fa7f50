#!/bin/bash
# Sixty-eighth session, third call: the 16-bit SSD backward's stored states in bf16 (`_s16`:
# `ssdbc_walks_bf16_*_tc_s16` + `ssdbl_xs_bf16_*_m1_s16`, the bf16 default with `ssdbl_xs`;
# `MAMBA_CUDA_SSD_BWDL_S16=0` keeps f32): A/B at the SSD LM shape and the LM-width block, ncu
# of the two kernels, the tests (q64 with both, chunked, gated, packed, block training),
# bf16 goldens (gradients included), memcheck and racecheck of the new kernels.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|checks|worst" /tmp/t.log | cut -c1-300 | tail -8 | tee -a "$T"; }
B() { env "$@" MAMBA_GPU_BWD_BENCH=1 timeout 120 ./gpu_backward forward_backward_timings --nocapture --test-threads=1 2>&1 | grep -E "TIMING|panicked" | cut -c8-200; }
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_SSD_BWDL_S16=1"; OFF="MAMBA_CUDA_SSD_BWDL_S16=0"
for r in 1 2 3; do
  case $r in 2) order="OFF ON";; *) order="ON OFF";; esac
  for v in $order; do
    eval "e=\$$v"
    echo "r$r $v $(B $e MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048")" | tee -a "$T"
    bench "$e" 10,60 bf16 "8,2048,768,128" "r$r $v"
  done
done
for v in ON OFF; do
  eval "e=\$$v"
  env $e MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 "$NCU" --clock-control none -k regex:"ssdbc_walks|ssdbl_xs" --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,launch__registers_per_thread --csv ./mamba-cuda-bench > "$OUT/prof-$v.csv" 2>/tmp/e.log
  echo "$(el) ncu $v rc=$? lines $(wc -l < "$OUT/prof-$v.csv")" | tee -a "$T"
done
t "q64 tests" timeout 200 env MAMBA_GPU_QUICK=1 ./gpu_backward ssd_backward_q64 --test-threads=1 --nocapture
cp /tmp/t.log "$OUT/q64.txt"
t "ssd backward tests" timeout 150 env MAMBA_GPU_QUICK=1 ./gpu_backward ssd_backward_chunked ssd_backward_gated ssd_packed ssd_backward_strided backward_into_matches --test-threads=1
t "block train" timeout 120 env MAMBA_GPU_QUICK=1 ./gpu_block_train --test-threads=1
for d in "$OLDPWD/tests/golden" "$C/golden"; do
  timeout 100 ./xtask golden --backend cuda --dir "$d" --dtype bf16 > /tmp/g.log 2>&1
  echo "$(el) golden bf16 $(basename $d) rc=$? $(grep -iE "passed|FAIL" /tmp/g.log | tail -2 | tr '\n' ' ')" | tee -a "$T"
done
MAMBA_CUDA_SSD_BWDL=1 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="2,300,512,128;1,200,512,64" timeout 100 compute-sanitizer --tool memcheck ./mamba-cuda-bench > /tmp/r.log 2>&1; echo "$(el) memcheck block bf16 rc=$? $(grep -E "ERROR SUMMARY" /tmp/r.log | tail -1)" | tee -a "$T"
MAMBA_CUDA_SSD_BWDL=1 MAMBA_CUBLASLT=0 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="2,300,512,128;1,200,512,64" timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --kernel-name regex=ssdbl_xs ./mamba-cuda-bench > /tmp/r.log 2>&1; echo "$(el) racecheck xs bf16 rc=$? $(grep -E "RACECHECK SUMMARY" /tmp/r.log | tail -1)" | tee -a "$T"
echo "$(el) done" | tee -a "$T"
