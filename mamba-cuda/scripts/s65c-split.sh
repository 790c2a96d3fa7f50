#!/bin/bash
# Sixty-fifth session: f32 products split on the f16 tensor cores (gemm.rs `run_split`,
# MAMBA_CUDA_F32_SPLIT): the new block test (every case forced, one large case at the default
# rule) against the f64 oracle, the block tests and goldens with the split forced, then the f32
# block at the LM width with the split (default) against without, alternating.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|split products|forward \(split|passed,|rel-L2" /tmp/t.log | cut -c1-300 | tail -24 | tee -a "$T"; }
t "split test" timeout 150 ./gpu_block_train block_f32_split_products --test-threads=1 --nocapture
cp /tmp/t.log "$OUT/split-test.log"
t "gpu mamba2_block forced" MAMBA_CUDA_F32_SPLIT=1 timeout 60 ./gpu mamba2_block --test-threads=1
for dt in f32; do MAMBA_CUDA_F32_SPLIT=1 timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype $dt 2>&1 | grep -iE "passed|FAIL" | tail -3 | sed "s/^/golden $dt forced /" | tee -a "$T"; done
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 120 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block" | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_F32_SPLIT=2"; OFF="MAMBA_CUDA_F32_SPLIT=0"
for v in ON OFF ON; do eval "e=\$$v"; bench "$e" 2,8 f32 "8,2048,768,128" "$v"; done
echo "$(el) done" | tee -a "$T"
