#!/bin/bash
# Thirty-ninth session, call 2: cuBLASLt's workspace per stream, the block backward's
# independent products beside each other on the plugin's side stream (dW_out beside dn and
# the norm's backward, dW_in beside du; MAMBA_CUDA_BB_OVERLAP=0 keeps them in order) and a
# 16-bit block's in_proj products in f32 on cuBLASLt (MAMBA_CUDA_BB_MIXED=own keeps them on
# bb_gemm). Checks (and the new concurrent-threads test against the thirty-eighth session's
# plugin, `prev`, which shares one workspace), then three rounds alternating prev, this
# plugin with both switches off (`s39a`: call 1's behaviour) and this plugin's default.
. "$PWD/.device-carry/device_common.sh"
NEW=$C/libmamba_cuda.so
PREV=$C/prev/libmamba_cuda.so
{
timeout 200 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|passed|agree|threads x|ok$" /tmp/t.log | cut -c1-160 | head -20
MAMBA_CUDA_BB_OVERLAP=0 MAMBA_CUDA_BB_MIXED=own timeout 200 "$C/gpu_block_train" block_train_device --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train (both switches off) rc=$?"; grep -E "test result|panicked|passed" /tmp/t.log | head -6
for i in 1 2 3; do
  MAMBA_CUDA_PLUGIN=$PREV timeout 100 "$C/gpu_block_train" block_train_concurrent --nocapture > /tmp/t.log 2>&1
  echo "prev plugin, concurrent threads, try $i rc=$?"; grep -E "threads x|differs|test result" /tmp/t.log | cut -c1-160 | head -3
done
timeout 200 "$C/gpu" mamba2_block --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "gpu mamba2_block rc=$?"; grep -E "comparisons|test result|panicked" /tmp/t.log
for dt in f32 bf16 f16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -1
done
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 200 compute-sanitizer --tool $tool --print-limit 20 "$C/gpu_block_train" block_train_d --test-threads=1 > /tmp/t.log 2>&1
  echo "$tool gpu_block_train rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/t.log | tail -1 | cut -c1-70)"
done
el
for r in 1 2 3; do
  for form in prev s39a new; do
    unset MAMBA_CUDA_BB_OVERLAP MAMBA_CUDA_BB_MIXED; export MAMBA_CUDA_PLUGIN=$NEW
    [ $form = prev ] && export MAMBA_CUDA_PLUGIN=$PREV
    [ $form = s39a ] && export MAMBA_CUDA_BB_OVERLAP=0 MAMBA_CUDA_BB_MIXED=own
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
