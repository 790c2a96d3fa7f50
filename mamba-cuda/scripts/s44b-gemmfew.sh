#!/bin/bash
# Forty-fourth session, call 3: `gemm_few` (kernels/misc.cu: projections of <= 16 rows, one
# warp per output column; off by default); the decoder test and its timings without it,
# with it for f32 (`MAMBA_CUDA_GEMM_FEW=f32`) and for every type (`=all`), two rounds;
# memcheck on the decoder test with `=all`; the block and decode GPU tests and goldens;
# `cargo xtask bench`'s decode rows on cuda and cpu-simd.
. "$PWD/.device-carry/device_common.sh"
{
for r in 1 2; do
for form in off f32 all; do
  E=""; [ $form != off ] && E="MAMBA_CUDA_GEMM_FEW=$form"
  env $E MAMBA_DECODE_BENCH=1 timeout 100 "$C/gpu_block_train" stack_decoder --nocapture --test-threads=1 > /tmp/d.log 2>&1
  echo "r$r gemm_few=$form rc=$?"; grep -E "test result|panicked|checks passed|decode bench" -A1 /tmp/d.log | grep -v "^--" | cut -c1-250 | head -8
done
done
el
timeout 60 "$C/gpu_block_train" recorded_graphs --test-threads=1 > /tmp/r.log 2>&1
echo "recorded_graphs rc=$?"; grep -E "test result|panicked" -A1 /tmp/r.log | head -4
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
MAMBA_CUDA_GEMM_FEW=all timeout 120 "$SAN" --tool memcheck "$C/gpu_block_train" stack_decoder --test-threads=1 > /tmp/s.log 2>&1
echo "memcheck (all) rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/s.log | head -3
for f in mamba2_block decode_steps; do
  timeout 150 "$C/gpu" $f --test-threads=2 > /tmp/g.log 2>&1
  echo "gpu $f rc=$? $(grep -E 'test result' /tmp/g.log | cut -c1-90)"; grep -E "panicked" /tmp/g.log | head -3
done
timeout 200 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-240 | head -6
for dt in f32 bf16; do
  timeout 100 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
el
# `cargo xtask bench`'s decode rows (through the decoder): cuda and cpu-simd (16 cores).
for dt in f32 bf16; do
  timeout 120 "$C/xtask" bench --backend cuda --backend cpu-simd --no-reference --dtype $dt --only decode --out /tmp/bx > /tmp/bx.log 2>&1
  echo "xtask bench decode $dt rc=$?"; grep -E "decode|error" /tmp/bx.log | cut -c1-200 | head -12
done
el
} > "$OUT/s44b.txt" 2>&1
cat "$OUT/s44b.txt"
