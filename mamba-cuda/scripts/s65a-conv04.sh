#!/bin/bash
# Sixty-fifth session, first call: the golden case that never travelled (causal_conv1d_04,
# 17 MB: carried alone with GOLDEN_PART=large) in every storage type on the GPU; then every
# kernel's duration in one bf16 training pass of the LM-width block after the sixty-fourth
# session's changes (as s63h).
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
ls -la golden | tee -a "$T"
for dt in f32 bf16 f16; do
  timeout 120 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt > "$OUT/golden-$dt.log" 2>&1
  echo "$(el) golden $dt rc=$?" | tee -a "$T"; tail -4 "$OUT/golden-$dt.log" | tee -a "$T"
done
MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 300 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv ./mamba-cuda-bench > "$OUT/prof.csv" 2>/tmp/e.log
echo "$(el) ncu rc=$? lines $(wc -l < "$OUT/prof.csv")" | tee -a "$T"
echo "$(el) done" | tee -a "$T"
