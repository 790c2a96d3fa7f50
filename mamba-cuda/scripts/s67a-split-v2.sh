#!/bin/bash
# Sixty-seventh session, first call: the split kernels' second forms (`split_max_f32` with four
# rows in flight per thread, `split_f32` without the shared-memory tile where k is dense)
# (`MAMBA_CUDA_SPLIT_V2=1`) against the first (the default) at the f32 LM-width block,
# alternating; ncu of both; the split test, the block training tests, the forced-split f32
# goldens and memcheck on the new forms; then the full benchmark and every golden case in
# f32 / bf16 / f16 at the defaults. Not run in the sixty-seventh session (no device lent):
# owed to the next session with one.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$T"
t() { local name=$1; shift; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|passed,|worst" /tmp/t.log | cut -c1-300 | tail -12 | tee -a "$T"; }
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 120 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block" | sed "s/^/$5 /" | tee -a "$T"; }
V2="MAMBA_CUDA_SPLIT_V2=1"; V1="MAMBA_CUDA_SPLIT_V2=0"
for v in V2 V1 V2 V1 V2 V1; do eval "e=\$$v"; bench "$e" 2,8 f32 "8,2048,768,128" "$v"; done
for v in V2 V1; do
  eval "e=\$$v"
  env $e MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 100 "$NCU" --clock-control none -k regex:"split_" --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,dram__bytes_write.sum --csv ./mamba-cuda-bench > "$OUT/prof-$v.csv" 2>/tmp/e.log
  echo "$(el) ncu $v rc=$? lines $(wc -l < "$OUT/prof-$v.csv")" | tee -a "$T"
done
t "split test" timeout 150 env MAMBA_CUDA_SPLIT_V2=1 ./gpu_block_train block_f32_split_products --test-threads=1 --nocapture
t "split forms agree" timeout 100 ./gpu_block_train block_f32_split_forms_agree --test-threads=1 --nocapture
t "block train" timeout 200 env MAMBA_CUDA_SPLIT_V2=1 ./gpu_block_train --test-threads=1
MAMBA_CUDA_SPLIT_V2=1 MAMBA_CUDA_F32_SPLIT=1 timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype f32 2>&1 | grep -iE "passed|FAIL" | tail -3 | sed "s/^/golden f32 forced split /" | tee -a "$T"
MAMBA_CUDA_SPLIT_V2=1 MAMBA_CUDA_F32_SPLIT=1 timeout 100 compute-sanitizer --tool memcheck ./gpu_block_train block_f32_split_products --test-threads=1 > /tmp/mc.log 2>&1
echo "$(el) memcheck rc=$? $(grep -E "ERROR SUMMARY|test result" /tmp/mc.log | tail -2 | tr '\n' ' ')" | tee -a "$T"
timeout 240 ./mamba-cuda-bench --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
echo "$(el) bench rc=$?" | tee -a "$T"
for dt in f32 bf16 f16; do
  for d in "$OLDPWD/tests/golden" "$C/golden"; do
    timeout 100 ./xtask golden --backend cuda --dir "$d" --dtype $dt > /tmp/g.log 2>&1
    echo "$(el) golden $dt $(basename $(dirname $d))/$(basename $d) rc=$? $(grep -iE "passed|FAIL" /tmp/g.log | tail -2 | tr '\n' ' ')" | tee -a "$T"
  done
done
echo "$(el) done" | tee -a "$T"
