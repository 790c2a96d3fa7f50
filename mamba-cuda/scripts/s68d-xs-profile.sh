#!/bin/bash
# Sixty-eighth session, fourth call: where `ssdbl_xs` (bf16, the LM-width block's largest backward
# kernel, ~660 us on an H100, one 16-warp block per SM, ~24% excess shared wavefronts) loses
# its time, per SASS instruction: ncu's source counters (stall samples, shared wavefronts and
# their excess) exported, then printed per instruction. Then the launch probe (refactored)
# again, and the split forms' agreement test with the default pairing.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
E="MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK=8,2048,768,128"
env $E timeout 200 "$NCU" --clock-control none -k regex:"ssdbl_xs" -c 1 --section SourceCounters --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section SchedulerStats -o "$OUT/xs" ./mamba-cuda-bench > /tmp/n.log 2>&1
echo "$(el) ncu rc=$? $(tail -2 /tmp/n.log | tr '\n' ' ')" | tee -a "$T"
"$NCU" -i "$OUT/xs.ncu-rep" --page details --print-details all > "$OUT/xs-details.txt" 2>&1
echo "$(el) details rc=$? $(wc -l < "$OUT/xs-details.txt")" | tee -a "$T"
"$NCU" -i "$OUT/xs.ncu-rep" --page source --csv --print-source sass > "$OUT/xs-sass.csv" 2>&1
echo "$(el) source rc=$? $(wc -l < "$OUT/xs-sass.csv")" | tee -a "$T"
head -c 3000 "$OUT/xs-sass.csv" | tee -a "$T"
NVCC=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc | head -1)
$NVCC -O2 -arch=sm_90 -cubin -o /tmp/lp.cubin launch_probe.cu -DKERNELS_ONLY && $NVCC -O2 -arch=sm_90 -o /tmp/lp launch_probe.cu -lcuda && /tmp/lp /tmp/lp.cubin 2>&1 | grep "round 1" | tee -a "$T"
timeout 120 ./gpu_block_train block_f32_split --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "$(el) split tests rc=$?" | tee -a "$T"; grep -E "case|passed|test result|FAIL|panicked" /tmp/t.log | cut -c1-200 | tail -16 | tee -a "$T"
echo "$(el) done" | tee -a "$T"
