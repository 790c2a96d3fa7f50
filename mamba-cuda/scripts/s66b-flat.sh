#!/bin/bash
# Sixty-sixth session, second call: X^T U as one product over 3 m; `split_f32` on a flat grid
# (a block per tile, operand after operand: no empty blocks); the beta-0 probe printed whole;
# the split test, the block
# training tests, the f32 goldens with the split forced; the f32 LM-width block with the shared
# split against without (alternating); ncu of the split passes.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
bash probe.sh 2>&1 | grep -v "^$" | sed "s/^/probe /" | tee -a "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|forward \(split|passed,|L4096" /tmp/t.log | cut -c1-300 | tail -16 | tee -a "$T"; }
t "split test" timeout 150 ./gpu_block_train block_f32_split_products --test-threads=1 --nocapture
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 120 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block" | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_F32_SPLIT_SHARED=1"; OFF="MAMBA_CUDA_F32_SPLIT_SHARED=0"
for v in ON OFF ON OFF; do eval "e=\$$v"; bench "$e" 2,8 f32 "8,2048,768,128" "$v"; done
t "block train" timeout 200 ./gpu_block_train --test-threads=1
MAMBA_CUDA_F32_SPLIT=1 timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype f32 2>&1 | grep -iE "passed|FAIL" | tail -3 | sed "s/^/golden f32 forced /" | tee -a "$T"
MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 "$NCU" --clock-control none -k regex:"split_" --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed --csv ./mamba-cuda-bench > "$OUT/prof-flat.csv" 2>/tmp/e.log
echo "$(el) ncu rc=$? lines $(wc -l < "$OUT/prof-flat.csv")" | tee -a "$T"
MAMBA_CUDA_F32_SPLIT=1 timeout 100 compute-sanitizer --tool memcheck ./gpu_block_train block_f32_split_products --test-threads=1 > /tmp/mc.log 2>&1
echo "$(el) memcheck rc=$? $(grep -E "ERROR SUMMARY|test result" /tmp/mc.log | tail -2 | tr '\n' ' ')" | tee -a "$T"
echo "$(el) done" | tee -a "$T"
