#!/bin/bash
# The default-rule sweep (twenty-first session): every default rule of the plugin was
# chosen at a few benchmark rows; this times the defaults at other lengths and types, beside
# the alternatives the rules choose between, so that a cliff shows as one row far off its
# neighbours. Run on the GPU machine from the carry folder (mamba-cuda/scripts/carry.sh):
#   bash .device-carry/sweep_defaults.sh [quick]
# Output: one line per row, prefixed by the variant. About 2 minutes (quick: 40 s).
# Each list is one bench call (`MAMBA_BENCH_SCAN1` / `MAMBA_BENCH_SSD`, `MAMBA_BENCH_DTYPE`) or
# one `forward_backward_timings` call (`MAMBA_GPU_BWD_BENCH_SEED_L`, `_LM_L`).
C=${C:-$PWD/.device-carry}
export MAMBA_CUDA_PLUGIN=${MAMBA_CUDA_PLUGIN:-$C/libmamba_cuda.so}
Q=${1:-}
bench() { # label, dtype, var (MAMBA_BENCH_SCAN1 / MAMBA_BENCH_SSD), list, env...
  local lab=$1 ty=$2 var=$3 list=$4; shift 4
  env "$@" MAMBA_BENCH_DTYPE=$ty "$var=$list" timeout 120 "$C/mamba-cuda-bench" 2>&1 |
    grep -E "^(scan1|ssd) " | sed "s/^/$lab /"
}
timings() { # label, only, seed Ls, LM Ls, env...
  local lab=$1 only=$2 sl=$3 ll=$4; shift 4
  env "$@" MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" MAMBA_GPU_BWD_BENCH_SEED_L="$sl" \
    MAMBA_GPU_BWD_BENCH_LM_L="$ll" timeout 200 "$C/gpu_backward" forward_backward_timings \
    --test-threads=1 --nocapture 2>&1 | grep TIMING | sed "s/^TIMING /$lab /"
}
# Mamba-1, LM width: aligned and unaligned lengths, lm1 against the older kernels.
S1="8,2048,16,256;8,2048,16,512;8,2048,16,1000;8,2048,16,1002;8,2048,16,2046;8,2048,16,2048"
# SSD, LM width: below and above the LM kernels' threshold (ops::SSD_LM_MIN_L).
SS="8,64,80,64,128;8,128,80,64,128;8,512,80,64,128;8,1000,80,64,128;8,2048,80,64,128"
# Seed widths over L.
S1S="2,384,64,16;2,384,64,100;2,384,64,130;2,384,64,301;2,384,64,800;2,384,64,2048"
SSS="2,16,6,64,64;2,100,6,64,64;2,301,6,64,64;2,800,6,64,64;2,2048,6,64,64"
for ty in f32 bf16; do
  bench def $ty MAMBA_BENCH_SCAN1 "$S1"
  bench lm1off $ty MAMBA_BENCH_SCAN1 "$S1" MAMBA_CUDA_SCAN1_LM=0
  bench def $ty MAMBA_BENCH_SSD "$SS"
  bench lmforced $ty MAMBA_BENCH_SSD "$SS" MAMBA_CUDA_SSD_IMPL=$([ $ty = f32 ] && echo lm32 || echo lm)
  bench def $ty MAMBA_BENCH_SCAN1 "$S1S"
  bench s1soff $ty MAMBA_BENCH_SCAN1 "$S1S" MAMBA_CUDA_S1S=0
  bench def $ty MAMBA_BENCH_SSD "$SSS"
  bench ssdzoff $ty MAMBA_BENCH_SSD "$SSS" MAMBA_CUDA_SSDZ=0
done
bench def f16 MAMBA_BENCH_SCAN1 "$S1S"
bench def f16 MAMBA_BENCH_SSD "$SSS"
# Twenty-third session: f16 at the LM width (Mamba-1 forward forms; the SSD had no f16
# tensor-core form until the twenty-fifth session), odd L in the 16-bit types, the SSD at N 16 / 128 and at 12-48 pairs
# (the seed kernel's wave bound in bf16, ssdl32 against split3 / recurrent in f32).
bench def f16 MAMBA_BENCH_SCAN1 "$S1"
bench def f16 MAMBA_BENCH_SSD "8,2048,80,64,128;2,2048,24,64,64"
bench w6 bf16 MAMBA_BENCH_SCAN1 "2,2048,16,2048;8,2048,16,2047" MAMBA_CUDA_SCAN1_LM_WV=3
# Twenty-fourth session: rows not 16-byte aligned in the 16-bit types (odd L: the shifted
# staging, `async_copy` 3; even L not a multiple of 8: 4- / 8-byte copies) against L2048.
SU="8,2048,16,2047;8,2048,16,2048;2,2048,16,2047;8,2048,16,1001;8,2048,16,2046;8,2048,16,2044"
bench def bf16 MAMBA_BENCH_SCAN1 "$SU"
bench noshift bf16 MAMBA_BENCH_SCAN1 "$SU" MAMBA_CUDA_SCAN1_LM_SHIFT=0
bench def f16 MAMBA_BENCH_SCAN1 "$SU"
SN="2,400,6,64,16;2,256,6,64,128;2,800,6,64,128;1,800,16,64,128;2,800,24,64,64;2,800,12,64,128"
bench def f32 MAMBA_BENCH_SSD "$SN"
bench lm32 f32 MAMBA_BENCH_SSD "$SN" MAMBA_CUDA_SSD_IMPL=lm32
bench rec f32 MAMBA_BENCH_SSD "$SN" MAMBA_CUDA_SSD_IMPL=recurrent MAMBA_CUDA_SSDR=0
SB="2,320,12,64,64;2,384,12,64,64;2,448,9,64,64;2,512,9,64,64;4,320,8,64,64"
bench def bf16 MAMBA_BENCH_SSD "$SB"
bench seed0 bf16 MAMBA_BENCH_SSD "$SB" MAMBA_CUDA_SEED=0
# Twenty-fifth session: the SSD LM kernels in f16 and at N 64, and VAR 28 only from half the
# SMs' worth of states blocks (`ops::ssdl_var` `few`): the default against VAR 28 forced and
# the generic kernels (VAR 0) in bf16 (f16 follows the same rule; `SSDL_VAR=28` forces it).
SV="2,1000,24,64,64;2,1000,48,64,64;2,1000,24,64,128;2,2048,66,64,128;8,2048,80,64,64;8,2048,80,64,32"
for ty in bf16 f16; do bench def $ty MAMBA_BENCH_SSD "$SV"; done
bench var28 bf16 MAMBA_BENCH_SSD "$SV" MAMBA_CUDA_SSDL_VAR=28
bench var0 bf16 MAMBA_BENCH_SSD "$SV" MAMBA_CUDA_SSDL_VAR=0
# Twenty-sixth session: the states kernel on wgmma (VAR 60, the bf16 / f16 default at N 128
# where VAR 28 was) against 28, the outputs on wgmma (70; 71 pipelined, emulator-checked
# only when written), and whether the `few` threshold (measured for 28) should move for 60.
SW="8,2048,80,64,128;8,1000,80,64,128;2,1000,24,64,128;2,2048,66,64,128;4,2048,32,64,128"
for v in 28 60 70 71; do bench var$v bf16 MAMBA_BENCH_SSD "$SW" MAMBA_CUDA_SSDL_VAR=$v; done
bench def f16 MAMBA_BENCH_SSD "$SW"
bench var28 f16 MAMBA_BENCH_SSD "$SW" MAMBA_CUDA_SSDL_VAR=28
[ "$Q" = quick ] && exit 0
# Forward + backward: the seeds in every type; the Mamba-1 LM rows below L 1024, where the
# training pair (saved checkpoints) is not the default (`MAMBA_CUDA_SAVED=1` forces it).
timings def "b2" 100,400,800 2048
timings def "b8" 100 8,24,512,1000
timings saved "b8" 100 8,24,512,1000 MAMBA_CUDA_SAVED=1
timings plain "b8" 100 8,24,512 MAMBA_CUDA_SAVED=0
timings oldbwd "b8" 100 8,24,512 MAMBA_CUDA_SAVED=0 MAMBA_CUDA_BWD_LM=0
