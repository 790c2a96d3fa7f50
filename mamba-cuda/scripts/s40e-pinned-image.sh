#!/bin/bash
# Fortieth session, call 6: as call 5, set_weights writing the image into a page-locked buffer of the block (one copy at the bus rate); a block's weights in one device allocation written from one
# host image (creation and set_weights: one copy instead of nine): the block training
# tests, memcheck of the set_weights test, goldens (f32, bf16); the step's parts against
# the previous plugin, three rounds.
. "$PWD/.device-carry/device_common.sh"
OLD=$C/prev/libmamba_cuda_s40a.so
{
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED|set_weights:|threads x|errors: ok" /tmp/t.log | cut -c1-200 | head -14
timeout 200 compute-sanitizer --tool memcheck "$C/gpu_block_train" block_set_weights --test-threads=1 > /tmp/m.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/m.log | head -3
el
for dt in f32 bf16; do
  timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
for r in 1 2 3; do
  for form in new old; do
    P=$C/libmamba_cuda.so; [ $form = old ] && P=$OLD
    MAMBA_CUDA_PLUGIN=$P MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$C/gpu_block_train" block_train_phases --nocapture > /tmp/t.log 2>&1
    grep -E "block train phases.*step" /tmp/t.log | sed "s/^/r$r $form /" | cut -c1-330
  done
done
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
