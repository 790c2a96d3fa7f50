#!/bin/bash
# Sixty-fourth session, third call: the strided SSD backward test after the dense side's
# element size fix (bf16 dB / dC in per-batch copies), the block and SSD backward tests and the
# goldens with the norm prefetch the default; block timings, defaults against both changes off.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|strided:|switches:|rel-L2" /tmp/t.log | cut -c1-400 | tail -6 | tee -a "$T"; }
t "ssd strided" timeout 150 ./gpu_backward ssd_backward_strided --test-threads=1 --nocapture
cp /tmp/t.log "$OUT/strided.txt"
t "ssd backward tests" timeout 200 ./gpu_backward ssd_backward_q64 ssd_backward_chunked ssd_backward_gated ssd_packed backward_into_matches --test-threads=1
t "block train (all)" timeout 200 ./gpu_block_train --test-threads=1
t "gpu mamba2_block" timeout 100 ./gpu mamba2_block --test-threads=1
for dt in f32 bf16; do timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype $dt 2>&1 | grep -iE "passed" | tail -1 | sed "s/^/golden $dt /" | tee -a "$T"; done
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_BB_SSD_DIRECT=1"; OFF="MAMBA_CUDA_BB_SSD_DIRECT=0 MAMBA_CUDA_NORM_PF=0"
for v in ON OFF ON; do eval "e=\$$v"; bench "$e" 10,60 bf16 "8,2048,768,128;2,400,192,64" "$v"; done
echo "$(el) done" | tee -a "$T"
