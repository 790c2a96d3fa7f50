#!/bin/bash
# Thirty-fourth session, call 2: the default path's GPU tests with `ssdl_cbh3` the default
# (`CBH_DEFAULT = 3`), then a stall survey of every kernel of the open rows (ncu: time, warp
# instructions, and the stall reasons per issued instruction), to find kernels that wait on
# chains of global loads as `ssdl_cbh` did.
. "$PWD/.device-carry/device_common.sh"
M=gpu__time_duration.sum,smsp__inst_executed.sum,smsp__warps_active.avg.per_cycle_active,smsp__issue_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed
M=$M,smsp__average_warp_latency_per_inst_issued.ratio
for s in long_scoreboard short_scoreboard barrier wait math_pipe_throttle mio_throttle lg_throttle not_selected dispatch_stall no_instruction membar; do
  M=$M,smsp__average_warps_issue_stalled_${s}_per_issue_active.ratio
done
prof() { # name, kernel regex, count, command...
  local n=$1 k=$2 c=$3; shift 3
  timeout 150 $NCU --clock-control none -k regex:"$k" -c "$c" --metrics "$M" --csv "$@" > "$OUT/ncu-$n.csv" 2> "$OUT/ncu-$n.err"
  echo "$n rc=$? $(grep -c gpu__time_duration "$OUT/ncu-$n.csv") kernels"
}
timeout 300 "$C/gpu" --test-threads=1 --nocapture > "$OUT/gpu.log" 2>&1; echo "gpu tests rc=$?"
grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu.log" | head -30
el
prof ssd-f32 . 24 env MAMBA_BENCH_SSD="8,2048,80,64,128" "$C/mamba-cuda-bench" --quick
prof ssd-bf16 . 12 env MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_SSD="8,2048,80,64,128" "$C/mamba-cuda-bench" --quick
prof seed-f32 . 6 env MAMBA_BENCH_SCAN1="2,384,64,800" "$C/mamba-cuda-bench" --quick
prof pair-bf16 "ck|q4pbs" 6 env MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="scan1 bf16 b8" "$C/gpu_backward" forward_backward_timings --test-threads=1
el
