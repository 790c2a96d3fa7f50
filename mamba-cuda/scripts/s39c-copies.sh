#!/bin/bash
# Thirty-ninth session, call 3: bb_copyn with eight rows per thread (loads of four rows
# before their stores) and the side-stream overlap from 512 token rows on. Checks (the
# overlap forced on for the small test shapes too), then three rounds alternating the
# thirty-eighth session's plugin (prev), this plugin with the overlap and the f32 in_proj
# products off (s39a), with the overlap off (wide), and this plugin's default (new).
. "$PWD/.device-carry/device_common.sh"
NEW=$C/libmamba_cuda.so
PREV=$C/prev/libmamba_cuda.so
{
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|passed|agree|threads x|ok$" /tmp/t.log | cut -c1-160 | head -20
MAMBA_CUDA_BB_OVERLAP=1 timeout 200 "$C/gpu_block_train" block_train_d block_train_k --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train (overlap forced on) rc=$?"; grep -E "test result|panicked|passed" /tmp/t.log | head -6
timeout 200 "$C/gpu" mamba2_block --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu mamba2_block rc=$?"; grep -E "comparisons|test result|panicked" /tmp/t.log
for dt in f32 bf16 f16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -1
done
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 MAMBA_CUDA_BB_OVERLAP=1 timeout 200 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_d --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu_block_train rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in prev s39a wide new; do
    unset MAMBA_CUDA_BB_OVERLAP MAMBA_CUDA_BB_MIXED; export MAMBA_CUDA_PLUGIN=$NEW
    [ $form = prev ] && export MAMBA_CUDA_PLUGIN=$PREV
    [ $form = s39a ] && export MAMBA_CUDA_BB_OVERLAP=0 MAMBA_CUDA_BB_MIXED=own
    [ $form = wide ] && export MAMBA_CUDA_BB_OVERLAP=0
    for dt in f32 bf16; do
      timeout 60 "$C/xtask" bench --backend cuda --no-reference --dtype $dt --only mamba2_block --out /tmp/bx > /tmp/bx.log 2>&1
      grep -E "^\| mamba2_block .*forward\+backward.*CUDA" /tmp/bx.log | sed "s/^/r$r $form /" | cut -d'|' -f1-8
    done
  done
done
unset MAMBA_CUDA_BB_OVERLAP MAMBA_CUDA_BB_MIXED; export MAMBA_CUDA_PLUGIN=$NEW
el
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 150 "$C/gpu_block_train" block_train_bench --nocapture > /tmp/t.log 2>&1
echo "block_train_bench rc=$?"; grep -E "block train" /tmp/t.log
MAMBA_BLOCK_TRAIN_BENCH=1 MAMBA_BLOCK_TRAIN_L=800 timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv -c 300 "$C/gpu_block_train" block_train_bench > "$OUT/ncu-f32.csv" 2> /tmp/ncu.err
echo "ncu f32 rc=$?"
el
} > "$OUT/summary.txt" 2>&1
tail -5 "$OUT/summary.txt"
