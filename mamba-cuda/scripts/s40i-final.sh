#!/bin/bash
# Fortieth session, call 10: the final tree (downloads into DeviceBuffer / to_vec through the
# pool's page-locked buffers too; page-locked copies capped at 64 MiB; the pool freed by its
# last holder). Checks: the block training tests, goldens (f32, bf16) through host slices,
# the forward GPU tests that use host slices and to_vec; then the step's parts against the
# session's first plugin, two rounds.
. "$PWD/.device-carry/device_common.sh"
OLD=$C/prev/libmamba_cuda_s40a.so
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|device training API|threads x|errors: ok" /tmp/t.log | cut -c1-240 | head -16
el
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
for f in causal_conv1d decode_steps device_errors mamba2_block ssd_matches ssd_aliased selective_scan_matches; do
  timeout 200 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
el
for r in 1 2; do
  for form in new old; do
    P=$C/libmamba_cuda.so; [ $form = old ] && P=$OLD
    MAMBA_CUDA_PLUGIN=$P MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$C/gpu_block_train" block_train_phases --nocapture > /tmp/t.log 2>&1
    grep -E "block train phases.*(step|host memory)" /tmp/t.log | sed "s/^/r$r $form /" | cut -c1-330
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
