#!/bin/bash
# Sixty-fifth session, last call: the split passes with 16- / 8-byte loads and 4-byte stores
# (tiles of 32 x 64; the max pass over outer x inner with the dense dimension inner): the split
# test against the f64 oracle, the f32 goldens with the split forced, the f32 LM-width block
# with the split against without (alternating), ncu of the split kernels.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|forward \(split|passed,|L4096" /tmp/t.log | cut -c1-300 | tail -16 | tee -a "$T"; }
t "split test" timeout 150 ./gpu_block_train block_f32_split_products --test-threads=1 --nocapture
for dt in f32; do MAMBA_CUDA_F32_SPLIT=1 timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype $dt 2>&1 | grep -iE "passed|FAIL" | tail -3 | sed "s/^/golden $dt forced /" | tee -a "$T"; done
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 120 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block" | sed "s/^/$5 /" | tee -a "$T"; }
ON="MAMBA_CUDA_F32_SPLIT=2"; OFF="MAMBA_CUDA_F32_SPLIT=0"
for v in ON OFF ON; do eval "e=\$$v"; bench "$e" 2,8 f32 "8,2048,768,128" "$v"; done
MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 "$NCU" --clock-control none -k regex:split --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed --csv ./mamba-cuda-bench > "$OUT/prof-split.csv" 2>/tmp/e.log
echo "$(el) ncu rc=$? lines $(wc -l < "$OUT/prof-split.csv")" | tee -a "$T"
echo "$(el) done" | tee -a "$T"
