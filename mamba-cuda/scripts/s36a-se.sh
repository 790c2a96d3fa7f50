#!/bin/bash
# Thirty-sixth session, call 1: the f32 SSD LM states pass with less staging between chunks
# (`MAMBA_CUDA_SSD32_SE=1`, `ssdl32_sseqh_n128e` / `_n64e`) against the default `_n128`:
# the forced tests, ncu of the two states kernels, per-call timing alternating, sanitizers.
. "$PWD/.device-carry/device_common.sh"
MAMBA_GPU_SSD_IMPLS=lm32 MAMBA_GPU_SSD32_SEQS=6phcfmoe,5phcfe,6phcfmo timeout 150 "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 --nocapture > "$OUT/test-se.log" 2>&1
echo "se forced rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test-se.log" | head -12
MAMBA_CUDA_SSD32_SE=1 timeout 100 "$C/gpu" ssd_batch ssd_aliased --test-threads=1 --nocapture > "$OUT/test-seb.log" 2>&1
echo "se batch rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test-seb.log" | head -6
el
for r in 1 2 3; do
  for v in 0 1; do
    MAMBA_CUDA_SSD32_SE=$v MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;4,2048,32,64,128;2,2048,80,64,128" \
      timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r se=$v /"
  done
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
for v in 0 1; do
  MAMBA_CUDA_SSD32_SE=$v MAMBA_BENCH_SSD="8,2048,80,64,128" timeout 100 $NCU --clock-control none -k regex:"sseqh" -c 4 \
    --metrics gpu__time_duration.sum,smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    --csv "$C/mamba-cuda-bench" > "$OUT/ncu-se$v.csv" 2> "$OUT/ncu-se$v.err"
  echo "ncu se=$v rc=$?"; grep -E "sseqh" "$OUT/ncu-se$v.csv" | awk -F'","' '{print $5, $(NF-2), $NF}' | head -8
done
el
for tool in memcheck racecheck; do
  MAMBA_CUDA_SSD32_SE=1 MAMBA_GPU_QUICK=1 MAMBA_GPU_SSD_IMPLS=lm32 MAMBA_GPU_SSD32_SEQS=6phcfmoe,5phcfe timeout 100 compute-sanitizer --tool $tool --print-limit 20 \
    "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > "$OUT/san-$tool.log" 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/san-$tool.log" | head -3
done
el
