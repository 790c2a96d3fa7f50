#!/bin/bash
# Thirty-sixth session, call 4: the f32 SSD LM outputs kernel with M X's split C B^T quads two
# tiles ahead (`MAMBA_CUDA_SSD32_MXD=2`, `ssdlw_out_f32_pfw2`) against `_pfw`: the forced
# tests, per-call timing alternating, ncu of the two outputs kernels, sanitizers.
. "$PWD/.device-carry/device_common.sh"
MAMBA_GPU_SSD_IMPLS=lm32 MAMBA_GPU_SSD32_SEQS=6phcfmoed,6phcfmoe timeout 150 "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 --nocapture > "$OUT/test-d.log" 2>&1
echo "mxd forced rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test-d.log" | head -6
MAMBA_CUDA_SSD32_MXD=2 timeout 100 "$C/gpu" ssd_batch --test-threads=1 --nocapture > "$OUT/test-db.log" 2>&1
echo "mxd batch rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test-db.log" | head -4
el
for r in 1 2 3; do
  for v in 1 2; do
    MAMBA_CUDA_SSD32_MXD=$v MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;4,2048,32,64,128;2,2048,80,64,128" \
      timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r mxd=$v /"
  done
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
for v in 1 2; do
  MAMBA_CUDA_SSD32_MXD=$v MAMBA_BENCH_SSD="8,2048,80,64,128" timeout 100 $NCU --clock-control none -k regex:"ssdlw_out" -c 2 \
    --metrics gpu__time_duration.sum,smsp__inst_executed.sum \
    --csv "$C/mamba-cuda-bench" > "$OUT/ncu-d$v.csv" 2> "$OUT/ncu-d$v.err"
  echo "ncu mxd=$v rc=$?"; grep -E "ssdlw_out" "$OUT/ncu-d$v.csv" | awk -F'","' '{print $5, $(NF-2), $NF}' | head -4
done
el
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 MAMBA_GPU_SSD_IMPLS=lm32 MAMBA_GPU_SSD32_SEQS=6phcfmoed timeout 100 compute-sanitizer --tool $tool --print-limit 20 \
    "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > "$OUT/san-$tool.log" 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/san-$tool.log" | head -3
done
el
