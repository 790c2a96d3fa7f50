#!/bin/bash
# Sixty-third session: the staged conv kernels below the 1 M-element default, forced on and off:
# the seed widths on the dense-copy path (MAMBA_CUDA_BB_CONV_DIRECT=0, whose dense rows are
# aligned) and d_model 256 (8 heads: in_proj's rows aligned for the direct path).
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$T"; }
for r in 1 2; do
  case $r in 1) order="1 0";; 2) order="0 1";; esac
  for v in $order; do
    E="MAMBA_CUDA_CONV_BWD_CLS=$v MAMBA_CUDA_CONV_FWD_CLS=$v"
    bench "$E MAMBA_CUDA_BB_CONV_DIRECT=0" 20,100 bf16 "2,400,192,64;2,800,192,64;4,1024,384,64" "r$r dense cls=$v"
    bench "$E" 20,100 bf16 "2,400,256,64;2,800,256,64" "r$r direct cls=$v"
    bench "$E MAMBA_CUDA_BB_CONV_DIRECT=0" 20,100 f32 "2,400,192,64;2,800,192,64" "r$r dense f32 cls=$v"
  done
done
echo "$(el) done" | tee -a "$T"
