#!/bin/bash
# Sixty-fifth session: the golden case that never travelled (causal_conv1d_04, carried alone
# with GOLDEN_PART=large) in every storage type; the saved Mamba-1 backward's sweep with e
# from the previous state (`q4pbse`, MAMBA_CUDA_BWD_LM_NE=1): the saved-path test with it forced,
# the training pair alternating NE 0 / 1 (three rounds), ncu instruction counts of both kernels.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$T"
for dt in f32 bf16 f16; do
  timeout 120 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt > "$OUT/golden-$dt.log" 2>&1
  echo "$(el) golden $dt rc=$?" | tee -a "$T"; tail -3 "$OUT/golden-$dt.log" | tee -a "$T"
done
for ne in 1 0; do
  MAMBA_CUDA_BWD_LM_NE=$ne timeout 150 ./gpu_backward selective_scan_saved_path --test-threads=1 --nocapture > /tmp/t.log 2>&1
  echo "$(el) saved path NE=$ne rc=$?" | tee -a "$T"; grep -E "test result|panicked|worst|checks" /tmp/t.log | tail -6 | tee -a "$T"
  cp /tmp/t.log "$OUT/saved-ne$ne.log"
done
for r in 1 2 3; do for ne in 0 1; do
  MAMBA_CUDA_BWD_LM_NE=$ne MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="scan1 bf16 b8" timeout 100 ./gpu_backward forward_backward_timings --nocapture --test-threads=1 2>&1 | grep TIMING | sed "s/^/r$r NE=$ne /" | tee -a "$T"
done; done
for ne in 0 1; do
  MAMBA_CUDA_BWD_LM_NE=$ne MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="scan1 bf16 b8" timeout 150 "$NCU" --clock-control none -k regex:"q4pbs" -c 2 --metrics gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active ./gpu_backward forward_backward_timings --nocapture --test-threads=1 > "$OUT/ncu-ne$ne.txt" 2>&1
  echo "$(el) ncu NE=$ne rc=$?" | tee -a "$T"; grep -E "q4pbs|duration|inst_executed|warps_active|issue_active" "$OUT/ncu-ne$ne.txt" | tail -10 | tee -a "$T"
done
echo "$(el) done" | tee -a "$T"
