#!/bin/bash
# Sixty-third session, third form of the staged conv kernels (cp.async into tiles of the storage type; 32-step tiles, 8 blocks an SM,
# several waves, a fast reciprocal in silu's derivative; the forward `conv1d_fwdt_cls_*` too): tests with them forced, racecheck on our
# own GEMM (the sanitizer fails inside cuBLASLt), ncu against `cl`, block timings on and off.
# The same script ran the second form (register stage, IEEE division) as s63d-cls2.sh.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
ON="MAMBA_CUDA_CONV_BWD_CLS=1 MAMBA_CUDA_CONV_FWD_CLS=1"; OFF="MAMBA_CUDA_CONV_BWD_CLS=0 MAMBA_CUDA_CONV_FWD_CLS=0"
t() { local name=$1 to=$2; shift 2; env "$@" > /tmp/t.log 2>&1; local rc=$?; echo "$(el) $name rc=$rc" | tee -a "$T"; grep -E "test result|FAIL|panicked|RACECHECK SUMMARY|ERROR SUMMARY" /tmp/t.log | cut -c1-300 | tail -4 | tee -a "$T"; }
t "gpu_backward conv" 100 timeout 100 ./gpu_backward causal_conv1d --test-threads=1
t "gpu conv + block fwd, cls forced" 100 $ON timeout 100 ./gpu causal_conv1d mamba2_block --test-threads=1
t "gpu conv + block fwd, cls off" 100 $OFF timeout 100 ./gpu causal_conv1d mamba2_block --test-threads=1
t "block switches, fwd cls forced" 150 MAMBA_CUDA_CONV_FWD_CLS=1 timeout 150 ./gpu_block_train block_train_switches --test-threads=1
t "block train, cls forced" 150 $ON timeout 150 ./gpu_block_train block_train_device_matches_host --test-threads=1
for dt in f32 bf16; do env $ON timeout 60 ./xtask golden --backend cuda --dir "$OLDPWD/tests/golden" --dtype $dt 2>&1 | grep -iE "passed" | tail -1 | sed "s/^/golden cls forced $dt /" | tee -a "$T"; done
RC="compute-sanitizer --tool racecheck --racecheck-report all --kernel-name regex=convt|conv1d_fwdt"
env $ON MAMBA_CUBLASLT=0 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="1,200,512,16;2,100,512,16" timeout 120 $RC ./mamba-cuda-bench > "$OUT/race.txt" 2>&1; echo "$(el) racecheck block bf16 rc=$?" | tee -a "$T"; grep -E "RACECHECK SUMMARY|Error" "$OUT/race.txt" | tail -3 | tee -a "$T"
env $ON MAMBA_CUBLASLT=0 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="1,200,512,16" timeout 120 $RC ./mamba-cuda-bench > /tmp/r.log 2>&1; echo "$(el) racecheck block f32 rc=$?" | tee -a "$T"; grep -E "RACECHECK SUMMARY|Error" /tmp/r.log | tail -3 | tee -a "$T"
env $ON MAMBA_CUBLASLT=0 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="1,200,512,16" timeout 120 compute-sanitizer --tool memcheck --kernel-name regex="convt|conv1d_fwdt" ./mamba-cuda-bench > /tmp/r.log 2>&1; echo "$(el) memcheck block bf16 rc=$?" | tee -a "$T"; grep -E "ERROR SUMMARY" /tmp/r.log | tail -2 | tee -a "$T"
for v in ON OFF; do for dt in bf16 f32; do
  eval "e=\$$v"
  env $e MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 60 "$NCU" --clock-control none -k regex:"bwd_convt|conv1d_fwdt" -c 3 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats ./mamba-cuda-bench > /tmp/ncu.txt 2>&1
  [ $v = ON ] && [ $dt = bf16 ] && cp /tmp/ncu.txt "$OUT/ncu_on_bf16.txt"
  echo "$(el) ncu $v $dt" | tee -a "$T"
  grep -E "^  [a-z_0-9]+ \(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued" /tmp/ncu.txt | head -21 | tee -a "$T"
done; done
echo "$(el) timings" | tee -a "$T"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$T"; }
BWDONLY="MAMBA_CUDA_CONV_BWD_CLS=1 MAMBA_CUDA_CONV_FWD_CLS=0"
for r in 1 2; do
  case $r in 1) order="ON OFF BWDONLY";; 2) order="BWDONLY OFF ON";; esac
  for v in $order; do
    eval "e=\$$v"
    bench "$e" 10,60 bf16 "8,2048,768,128;4,1024,512,64;2,800,512,64" "r$r $v"
  done
done
bench "$ON" 5,20 f32 "8,2048,768,128" "r1 f32 ON"
bench "$OFF" 5,20 f32 "8,2048,768,128" "r1 f32 OFF"
echo "$(el) done" | tee -a "$T"
