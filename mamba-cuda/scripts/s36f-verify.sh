#!/bin/bash
# Thirty-sixth session, call 6: the final build (`_e` as in calls 1-4, `_pfw2`) with no
# `MAMBA_CUDA_*` set: the SSD and Mamba2Block GPU tests, the goldens, ncu of the two kernels.
. "$PWD/.device-carry/device_common.sh"
timeout 240 "$C/gpu" ssd_aliased ssd_batch ssd_chunked ssd_matches mamba2_block --test-threads=1 --nocapture > "$OUT/gpu-ssd.log" 2>&1
echo "gpu ssd + block tests rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu-ssd.log" | grep -E "lm32 f32|sseq6phcfmo|sseq5phcfe|test result|panicked|FAILED|block|batch" | head -12
el
MAMBA_BENCH_SSD="8,2048,80,64,128" timeout 100 $NCU --clock-control none -k regex:"sseqh|ssdlw_out" -c 4 \
  --metrics gpu__time_duration.sum,smsp__inst_executed.sum --csv "$C/mamba-cuda-bench" > "$OUT/ncu-def.csv" 2> "$OUT/ncu-def.err"
echo "ncu rc=$?"; grep -E "sseqh|ssdlw_out" "$OUT/ncu-def.csv" | awk -F'","' '{print $5, $(NF-2), $NF}' | head -8
el
for r in 1 2 3; do
  MAMBA_BENCH_SSD="8,2048,80,64,128;2,2048,80,64,128" timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r v=final /"
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
