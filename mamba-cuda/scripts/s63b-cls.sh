#!/bin/bash
# Sixty-third session: the channel-last conv backward staged through shared memory
# (`bwd_convt_cls_*`, MAMBA_CUDA_CONV_BWD_CLS): its GPU tests (strided against dense, the
# oracle, the block's switches with it forced), racecheck, ncu at the LM width against `cl`,
# and the block's training pass with it on and off.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
timeout 100 ./gpu_backward causal_conv1d --test-threads=1 > /tmp/c.log 2>&1; echo "$(el) gpu_backward conv rc=$?" | tee -a "$T"
grep -E "test result|FAIL|panicked|^test |strided" /tmp/c.log | cut -c1-300 | tail -8 | tee -a "$T"
MAMBA_CUDA_CONV_BWD_CLS=1 timeout 100 ./gpu_backward causal_conv1d_backward_matches --test-threads=1 > /tmp/c2.log 2>&1; echo "$(el) conv oracle cls=1 rc=$?" | tee -a "$T"
grep -E "test result|FAIL|panicked" /tmp/c2.log | cut -c1-300 | tail -4 | tee -a "$T"
timeout 150 ./gpu_block_train block_train_switches --test-threads=1 > /tmp/t.log 2>&1; echo "$(el) block switches rc=$?" | tee -a "$T"
grep -E "test result|FAIL|panicked|switches" /tmp/t.log | cut -c1-300 | tail -6 | tee -a "$T"
MAMBA_CUDA_CONV_BWD_CLS=1 timeout 100 ./gpu_block_train block_train_device_matches_host --test-threads=1 > /tmp/t2.log 2>&1; echo "$(el) block train cls=1 rc=$?" | tee -a "$T"
grep -E "test result|FAIL|panicked" /tmp/t2.log | cut -c1-300 | tail -6 | tee -a "$T"
# racecheck / memcheck of the staged kernel: the strided test (small shapes) and the block at a
# width whose rows are 16-byte aligned (d_model 512: 16 heads).
RC="compute-sanitizer --tool racecheck --racecheck-report all --kernel-name regex=bwd_convt"
MAMBA_CUDA_CONV_BWD_CLS=1 timeout 100 $RC ./gpu_backward causal_conv1d_backward_strided --test-threads=1 > /tmp/r1.log 2>&1; echo "$(el) racecheck strided test rc=$?" | tee -a "$T"
grep -E "RACECHECK SUMMARY|test result|panicked" /tmp/r1.log | tail -3 | tee -a "$T"
MAMBA_CUDA_CONV_BWD_CLS=1 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="1,200,512,16" timeout 100 $RC ./mamba-cuda-bench > /tmp/r2.log 2>&1; echo "$(el) racecheck block rc=$?" | tee -a "$T"
grep -E "RACECHECK SUMMARY" /tmp/r2.log | tail -2 | tee -a "$T"
MAMBA_CUDA_CONV_BWD_CLS=1 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="1,200,512,16" timeout 100 compute-sanitizer --tool memcheck --kernel-name regex=bwd_convt ./mamba-cuda-bench > /tmp/r3.log 2>&1; echo "$(el) memcheck block f32 rc=$?" | tee -a "$T"
grep -E "ERROR SUMMARY" /tmp/r3.log | tail -2 | tee -a "$T"
# ncu: the conv kernels at the LM width (bf16 and f32), cls on and off.
for v in 1 0; do for dt in bf16 f32; do
  [ -n "$NCU" ] && env MAMBA_CUDA_CONV_BWD_CLS=$v MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 60 "$NCU" --clock-control none -k regex:"bwd_convt|conv1d_fwdt" -c 2 --section SpeedOfLight --section Occupancy --section LaunchStats ./mamba-cuda-bench > /tmp/ncu.txt 2>&1
  echo "$(el) ncu cls=$v $dt" | tee -a "$T"
  grep -E "^  [a-z_0-9]+.*\(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size" /tmp/ncu.txt | head -14 | tee -a "$T"
done; done
echo "$(el) timings" | tee -a "$T"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | grep -v "forward " | sed "s/^/$5 /" | tee -a "$T"; }
for r in 1 2; do
  case $r in 1) order="1 0";; 2) order="0 1";; esac
  for v in $order; do
    bench "MAMBA_CUDA_CONV_BWD_CLS=$v" 10,60 bf16 "8,2048,768,128;4,1024,512,64;2,800,512,64" "r$r cls=$v"
    bench "MAMBA_CUDA_CONV_BWD_CLS=$v MAMBA_CUDA_BB_CONV_DIRECT=0" 10,60 bf16 "4,1024,384,64;2,400,192,64" "r$r dense cls=$v"
  done
done
bench "MAMBA_CUDA_CONV_BWD_CLS=1" 5,20 f32 "8,2048,768,128" "r1 f32 cls=1"
bench "MAMBA_CUDA_CONV_BWD_CLS=0" 5,20 f32 "8,2048,768,128" "r1 f32 cls=0"
echo "$(el) done" | tee -a "$T"
