#!/bin/bash
# Thirty-sixth session, call 3: `ssdl32_sseqh_n*e` the default (`MAMBA_CUDA_SSD32_SE` unset):
# the SSD and Mamba2Block GPU tests on the default path, stall samples of the f32 LM path's
# two big kernels, then the full benchmark.
. "$PWD/.device-carry/device_common.sh"
timeout 240 "$C/gpu" ssd_aliased ssd_batch ssd_chunked ssd_matches mamba2_block --test-threads=1 --nocapture > "$OUT/gpu-ssd.log" 2>&1
echo "gpu ssd + block tests rc=$?"; grep -E "comparisons|test result|panicked|FAILED" "$OUT/gpu-ssd.log" | grep -E "lm32|test result|panicked|FAILED|block|batch" | head -30
el
for k in sseqh_n128e ssdlw_out_f32_pfw; do
  MAMBA_BENCH_SSD="8,2048,80,64,128" timeout 100 $NCU --clock-control none -c 1 --section SourceCounters --section WarpStateStats \
    -k regex:"$k" -o "$OUT/rep-$k" -f "$C/mamba-cuda-bench" > "$OUT/ncu-src-$k.err" 2>&1
  timeout 60 $NCU -i "$OUT/rep-$k.ncu-rep" --page source --csv --print-source sass > "$OUT/src-$k.csv" 2>> "$OUT/ncu-src-$k.err"
  python3 "$C/ncu_stalls.py" "$OUT/src-$k.csv" 30 > "$OUT/stalls-$k.txt" 2>&1; head -24 "$OUT/stalls-$k.txt"
  rm -f "$OUT/rep-$k.ncu-rep"
done
el
bash "$C/device_run.sh" bench > "$OUT/bench.txt" 2>&1
grep -E "rc=|^ssd (f32|bf16|f16) b8 L2048|^scan1 f32 b2 d384 N64 L(400|800)|block" "$OUT/bench.txt" | head -20
el
