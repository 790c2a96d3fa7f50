#!/bin/bash
# Sixty-third session: the staged conv backward's racecheck report at the block shape, and ncu of
# it against `cl` at the LM width.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
RC="compute-sanitizer --tool racecheck --racecheck-report all --kernel-name regex=bwd_convt"
MAMBA_CUDA_CONV_BWD_CLS=1 MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="1,200,512,16" timeout 100 $RC ./mamba-cuda-bench > "$OUT/race.txt" 2>&1; echo "$(el) racecheck block rc=$?" | tee -a "$T"
for v in 1 0; do
  env MAMBA_CUDA_CONV_BWD_CLS=$v MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 60 "$NCU" --clock-control none -k regex:"bwd_convt" -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats --section SourceCounters ./mamba-cuda-bench > "$OUT/ncu$v.txt" 2>&1
  echo "$(el) ncu cls=$v" | tee -a "$T"
  grep -E "bwd_convt|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size|Warp Cycles Per Issued|Shared Memory Configuration Size|Bank" "$OUT/ncu$v.txt" | head -14 | tee -a "$T"
done
echo "$(el) done" | tee -a "$T"
