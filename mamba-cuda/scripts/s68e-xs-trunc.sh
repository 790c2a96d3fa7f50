#!/bin/bash
# Sixty-eighth session, fifth call: `ssdbl_xs` with G and S given to the tf32 products as raw
# f32 bits (the tensor cores truncate them) instead of rounding them per fragment (the 16.4%
# of its instructions that the fourth call's profile found), in a second plugin
# (libmamba_cuda_nr.so) against the committed one: A/B at the SSD LM shape and the LM-width
# block (bf16), ncu of the kernel, the q64 test and the bf16 goldens with it.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
NR="MAMBA_CUDA_PLUGIN=$C/libmamba_cuda_nr.so"; BASE="MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so"
B() { env "$@" MAMBA_GPU_BWD_BENCH=1 timeout 120 ./gpu_backward forward_backward_timings --nocapture --test-threads=1 2>&1 | grep -E "TIMING|panicked" | cut -c8-200 | head -1; }
bench() { env $1 MAMBA_BENCH_ITERS=10,60 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | grep -v " forward " | sed "s/^/$2 /" | tee -a "$T"; }
for r in 1 2 3; do
  case $r in 2) order="BASE NR";; *) order="NR BASE";; esac
  for v in $order; do
    eval "e=\$$v"
    echo "r$r $v $(B $e MAMBA_GPU_BWD_BENCH_ONLY="ssd bf16 b8 L2048")" | tee -a "$T"
    bench "$e" "r$r $v"
  done
done
for v in NR BASE; do
  eval "e=\$$v"
  env $e MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 "$NCU" --clock-control none -k regex:"ssdbl_xs" --metrics gpu__time_duration.sum,smsp__inst_executed.sum --csv ./mamba-cuda-bench 2>/dev/null | grep -E "ssdbl_xs" | cut -d, -f5,12- | sed "s/^/$v /" | tee -a "$T"
done
env $NR MAMBA_GPU_QUICK=1 timeout 200 ./gpu_backward ssd_backward_q64 --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "$(el) q64 NR rc=$?" | tee -a "$T"; grep -E "bf16|test result|panicked|tolerance" /tmp/t.log | cut -c1-400 | tee -a "$T"
env $BASE MAMBA_GPU_QUICK=1 timeout 200 ./gpu_backward ssd_backward_q64 --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "$(el) q64 BASE rc=$?" | tee -a "$T"; grep -E "bf16|test result|panicked" /tmp/t.log | cut -c1-200 | tee -a "$T"
env $NR timeout 100 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype bf16 2>&1 | grep -iE "passed|FAIL" | tail -2 | sed "s/^/golden bf16 NR /" | tee -a "$T"
echo "$(el) done" | tee -a "$T"
