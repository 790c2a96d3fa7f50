#!/bin/bash
# Thirty-sixth session, call 5: `ssdl32_sseqh_n*e` (S_in's stores now before the top wait)
# and `ssdlw_out_f32_pfw2` the default: the SSD and Mamba2Block GPU tests on the default
# path, ncu of the two kernels, per-call timing of the session's default against the
# previous one (`MAMBA_CUDA_SSD32_SE=0 MAMBA_CUDA_SSD32_MXD=1`), sanitizers, the full bench.
. "$PWD/.device-carry/device_common.sh"
timeout 240 "$C/gpu" ssd_aliased ssd_batch ssd_chunked ssd_matches mamba2_block --test-threads=1 --nocapture > "$OUT/gpu-ssd.log" 2>&1
echo "gpu ssd + block tests rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu-ssd.log" | grep -E "lm32 f32|sseq6phcfmo|sseq5phcfe|test result|panicked|FAILED|block|batch" | head -12
el
MAMBA_BENCH_SSD="8,2048,80,64,128" timeout 100 $NCU --clock-control none -k regex:"sseqh|ssdlw_out" -c 4 \
  --metrics gpu__time_duration.sum,smsp__inst_executed.sum --csv "$C/mamba-cuda-bench" > "$OUT/ncu-def.csv" 2> "$OUT/ncu-def.err"
echo "ncu rc=$?"; grep -E "sseqh|ssdlw_out" "$OUT/ncu-def.csv" | awk -F'","' '{print $5, $(NF-2), $NF}' | head -8
el
for r in 1 2 3; do
  for v in old new; do
    if [ $v = old ]; then e="MAMBA_CUDA_SSD32_SE=0 MAMBA_CUDA_SSD32_MXD=1"; else e="MAMBA_CUDA_SSD32_X=0"; fi
    env $e MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;4,2048,32,64,128;2,2048,80,64,128" \
      timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r v=$v /"
  done
done > "$OUT/timing.txt"
medians "$OUT/timing.txt"
el
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 MAMBA_GPU_SSD_IMPLS=lm32 MAMBA_GPU_SSD32_SEQS=6phcfmoe timeout 100 compute-sanitizer --tool $tool --print-limit 20 \
    "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > "$OUT/san-$tool.log" 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/san-$tool.log" | head -3
done
el
bash "$C/device_run.sh" bench > "$OUT/bench.txt" 2>&1
grep -E "rc=|^ssd (f32|bf16|f16) b8 L2048|^scan1 f32 b2 d384 N64 L(400|800)|Block" "$OUT/bench.txt" | head -20
el
