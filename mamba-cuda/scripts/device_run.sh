#!/bin/bash
# Runs on the GPU machine, from the repository root, over the binaries built here and
# carried in .device-carry/ (see mamba-cuda/scripts/carry.sh): the GPU tests, the
# linkage test, the benchmark, and compute-sanitizer (memcheck, racecheck) on a short
# test run. Logs go to $OUT. Usage: device_run.sh [test] [bwd] [golden] [bench] [sweep] [san]
# [sanbwd] [env]
set -u
C=$PWD/.device-carry
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so
export RUST_BACKTRACE=1
want() { [[ " $* " == *" all "* ]] || [[ " $ARGS " == *" $1 "* ]]; }
ARGS=" $* "
# cuBLASLt: the plugin looks for libcublasLt.so.13/.12 by name and in /usr/local/cuda/lib64;
# point it at a pip-installed copy only when neither is there.
if ! ldconfig -p | grep -q 'libcublasLt.so.1[23]' && ! ls /usr/local/cuda/lib64/libcublasLt.so.1[23] >/dev/null 2>&1; then
  f=$(find / -name 'libcublasLt.so.13' -not -path '/proc/*' 2>/dev/null | head -1)
  [ -n "$f" ] && export MAMBA_CUBLASLT=$f
fi
if want env; then
  { nvidia-smi; nvcc --version; echo "MAMBA_CUBLASLT=${MAMBA_CUBLASLT:-}"; ldconfig -p | grep -i cublas;
    ls /usr/local/cuda/lib64 2>/dev/null | grep -i cublas; which compute-sanitizer; } > "$OUT/env.txt" 2>&1
  head -30 "$OUT/env.txt"
fi
if want test; then
  "$C/linkage" --nocapture > "$OUT/linkage.log" 2>&1; echo "linkage rc=$?"
  timeout 300 "$C/gpu" --test-threads=1 --nocapture > "$OUT/gpu.log" 2>&1; echo "gpu tests rc=$?"
  grep -E "comparisons|test result|panicked|FAILED|failures|skipping" "$OUT/gpu.log" | head -30
  if [ -x "$C/gpu_block_train" ]; then
    timeout 120 "$C/gpu_block_train" --test-threads=1 --nocapture > "$OUT/gpu_block_train.log" 2>&1
    echo "gpu block train rc=$?"; grep -E "test result|panicked" "$OUT/gpu_block_train.log" | head -4
  fi
fi
if want bwd; then
  MAMBA_GPU_BWD_BENCH=1 timeout 200 "$C/gpu_backward" --test-threads=1 --nocapture > "$OUT/gpu_backward.log" 2>&1
  echo "gpu backward tests rc=$?"
  grep -E "checks|test result|panicked|FAILED|failures|skipping|TIMING|grad" "$OUT/gpu_backward.log" | cut -c1-160 | head -120
fi
if want golden; then
  for dt in f32 bf16 f16; do
    timeout 200 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > "$OUT/golden-$dt.log" 2>&1
    echo "golden $dt rc=$?"; grep -E "passed|FAIL|fail|error" "$OUT/golden-$dt.log" | tail -8
  done
fi
if want bench; then
  timeout 240 "$C/mamba-cuda-bench" --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "bench rc=$?"
  cat "$OUT/bench.log"
fi
if want sweep; then
  timeout 240 "$C/mamba-cuda-bench" --quick --sweep > "$OUT/sweep.log" 2>&1; echo "sweep rc=$?"
  grep -E "S=|qb|chunks" "$OUT/sweep.log" | awk '{printf "%s %s\n", $0, ""}' | cut -c1-75
fi
if want san; then
  export MAMBA_GPU_TEST_ROUNDS=1
  for tool in memcheck racecheck; do
    timeout 200 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu" --test-threads=1 \
      > "$OUT/san-$tool.log" 2>&1; echo "sanitizer $tool rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result|Invalid|Race" "$OUT/san-$tool.log" | head -8
  done
fi
if want sanbwd; then
  export MAMBA_GPU_TEST_ROUNDS=1
  timeout 150 compute-sanitizer --tool memcheck --print-limit 20 "$C/gpu_backward" --test-threads=1 \
    > "$OUT/san-bwd-memcheck.log" 2>&1; echo "sanitizer memcheck (backward) rc=$?"
  grep -E "ERROR SUMMARY|test result|Invalid" "$OUT/san-bwd-memcheck.log" | head -8
fi
if want ncu; then
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  for spec in "scan1_fwd_f32:scan1 f32 b2 d384 N64 L400" "ssd_fwd_f32:ssd f32 b8 L2048" "scan1_fwd_f32:scan1 f32 b8 d2048" "ssd_fwd_bf16:ssd bf16 b8 L2048"; do
    k=${spec%%:*}; only=${spec#*:}; tag=$(echo "$k-$only" | tr -c 'a-zA-Z0-9\n' '_' | cut -c1-40)
    timeout 120 $NCU --clock-control none -k regex:$k -c 1 --section SpeedOfLight --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      "$C/mamba-cuda-bench" --quick --only "$only" > "$OUT/ncu-$tag.txt" 2>&1; echo "ncu $k rc=$?"
    grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Block Limit|Stall|Warp Cycles Per Issued|Issued Ipc|One or More|No Eligible|Dynamic Shared|Waves" "$OUT/ncu-$tag.txt" | head -40
  done
fi
if want stalls; then
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  for spec in "scan1_fwd_f32:scan1 f32 b2 d384 N64 L400" "scan1_fwd_f32:scan1 f32 b8 d2048" "ssd_fwd_f32:ssd f32 b2 L400" "ssd_fwd_f32:ssd f32 b8 L2048"; do
    k=${spec%%:*}; only=${spec#*:}; tag=$(echo "$k-$only" | tr -c 'a-zA-Z0-9\n' '_' | cut -c1-40)
    timeout 120 $NCU --clock-control none -k regex:$k -c 1 \
      --metrics "regex:smsp__warp_issue_stalled_.*_per_warp_active.pct,smsp__inst_executed.sum,gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__block_size,launch__registers_per_thread" \
      "$C/mamba-cuda-bench" --quick --only "$only" > "$OUT/stall-$tag.txt" 2>&1; echo "== $k $only rc=$?"
    grep -E "stalled|inst_executed|duration|warps_active|issue_active|grid_size|block_size|registers" "$OUT/stall-$tag.txt" | awk '$NF+0 > 0.5 || /inst|dur|active|size|reg/' | sed 's/smsp__warp_issue_stalled_//; s/_per_warp_active.pct//' | head -30
  done
fi
