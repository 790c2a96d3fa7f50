#!/bin/bash
# Sixty-eighth session, second call: where a launch's host time goes (scripts/launch_probe.cu,
# built here with the machine's nvcc), and the plugin's seed call split by MAMBA_S1S_DIAG
# (1: return before the launch; 2: return on entry) against the full call.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
NVCC=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc | head -1)
$NVCC -O2 -arch=sm_90 -cubin -o /tmp/lp.cubin launch_probe.cu -DKERNELS_ONLY && $NVCC -O2 -arch=sm_90 -o /tmp/lp launch_probe.cu -lcuda
/tmp/lp /tmp/lp.cubin 2>&1 | tee -a "$T"
CUDA_MODULE_LOADING=EAGER /tmp/lp /tmp/lp.cubin 2>&1 | grep "round 1" | sed "s/^/eager /" | tee -a "$T"
for r in 1 2; do
  for dg in 0 1 2; do
    MAMBA_S1S_DIAG=$dg MAMBA_BENCH_ITERS=50,500 timeout 60 ./mamba-cuda-bench --only "scan1 f32 b2 d384 N64 L" 2>&1 | grep -B1 "^scan1" | paste - - | awk -v d=$dg -v r=$r '{print "r" r " diag=" d " " $0}' | tee -a "$T"
  done
done
echo "$(el) done" | tee -a "$T"
