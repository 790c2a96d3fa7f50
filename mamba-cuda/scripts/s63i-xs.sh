#!/bin/bash
# Sixty-third session: ncu of `ssdbl_xs` (662 us, a third of the LM-width bf16 backward), for the
# next session's work on it.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$T"
MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 200 "$NCU" --clock-control none -k regex:"ssdbl_xs|ssdbc_walks" -c 2 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section ComputeWorkloadAnalysis --section SchedulerStats --section InstructionStats --section SourceCounters ./mamba-cuda-bench > "$OUT/ncu_xs.txt" 2>&1
echo "$(el) ncu rc=$?" | tee -a "$T"
grep -E "^  [a-z_0-9]+ \(|Duration|DRAM Throughput|Compute \(SM\)|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Executed Ipc|Shared Memory Configuration|Block Limit" "$OUT/ncu_xs.txt" | head -40 | tee -a "$T"
