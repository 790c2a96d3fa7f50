#!/bin/bash
# Thirty-third session, call 3: `ssdl_cbh3` (the fused C B^T + headers launch with the header
# blocks' dt loads issued at once) and `=4` (two launches, the header kernel likewise) against
# `ssdl_cbh` at the SSD LM shapes: ncu kernel times, per-call timing alternating, the forced
# tests and the sanitizer.
. "$PWD/.device-carry/device_common.sh"
for m in 0 3 1 4; do
  MAMBA_CUDA_SSDL_CBH=$m MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_SSD="8,2048,80,64,128" \
    timeout 60 $NCU --clock-control none -k regex:"ssdl_cb|ssdl_hdr" -c 4 --metrics gpu__time_duration.sum \
    "$C/mamba-cuda-bench" --quick > "$OUT/ncu-cbh-$m.txt" 2>&1
  grep -E "^  ssdl|duration" "$OUT/ncu-cbh-$m.txt" | sed "s/^/cbh=$m /" | head -8
done
el
for r in 1 2 3; do
  for m in 0 3 4; do
    for ty in bf16 f16; do
      [ $ty = f16 ] && [ $m = 4 ] && continue
      MAMBA_CUDA_SSDL_CBH=$m MAMBA_BENCH_DTYPE=$ty \
        MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;2,1000,24,64,128;4,2048,32,64,128;2,2048,80,64,64" \
        timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r cbh=$m hs=- /"
    done
  done
done > "$OUT/timing.txt"
el
MAMBA_CUDA_SSDL_CBH=3 MAMBA_GPU_SSD_IMPLS=lm,lm16 timeout 150 "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 --nocapture > "$OUT/test3.log" 2>&1
echo "cbh3 rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/test3.log" | head -8
el
for tool in memcheck racecheck; do
  MAMBA_CUDA_SSDL_CBH=3 MAMBA_GPU_QUICK=1 MAMBA_GPU_SSD_IMPLS=lm,lm16 MAMBA_GPU_SSDL_VARS=71,28 timeout 120 compute-sanitizer --tool $tool --print-limit 20 \
    "$C/gpu" ssd_chunked_matches_the_oracle --test-threads=1 > "$OUT/san-$tool.log" 2>&1
  echo "$tool rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/san-$tool.log" | head -3
done
el
