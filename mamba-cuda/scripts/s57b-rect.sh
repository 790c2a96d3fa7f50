#!/bin/bash
# Fifty-seventh session, call 1: the 64-step SSD backward's W part of da summed as the rectangle
# it is (`sbl_rect_cols` / `sbl_rect_rows`, ssd_bwdl.cuh) instead of prefix sums of W's column
# sums minus its row sums. The backward tests on the new plugin, the goldens (f32, bf16), the
# SSD LM forward+backward timed against the previous plugin (libmamba_cuda_old.so, HEAD
# b661bed) alternating, two rounds, and memcheck / racecheck on the q64 test (quick).
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
NEW=$C/libmamba_cuda.so OLD=$C/libmamba_cuda_old.so
echo "$(el) tests" | tee -a "$OUT/tests.txt"
for t in ssd_backward_q64_matches_the_oracle ssd_backward_matches_the_oracle ssd_packed_sequences_match_the_oracle backward_into_matches_the_backward ssd_backward_gated_without_dz default_rules_backward_at_random_sizes; do
  timeout 150 ./gpu_backward $t --exact --test-threads=1 --nocapture > /tmp/t.log 2>&1; echo "$t rc=$?" | tee -a "$OUT/tests.txt"
  grep -E "checks|worst|FAIL|panicked" /tmp/t.log | cut -c1-250 | tail -6 >> "$OUT/tests.txt"
done
timeout 120 ./gpu_block_train block_train_at_random_sizes --exact --nocapture > /tmp/t.log 2>&1; echo "block_train_at_random_sizes rc=$?" | tee -a "$OUT/tests.txt"
grep -E "passed|FAIL|panicked" /tmp/t.log | tail -3 >> "$OUT/tests.txt"
echo "$(el) goldens" | tee -a "$OUT/tests.txt"
for dt in f32 bf16; do timeout 100 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -1 | tee -a "$OUT/tests.txt"; done
echo "$(el) timings" | tee -a "$OUT/time.txt"
for r in 1 2; do
  for v in new old; do
    if [ $v = old ]; then export MAMBA_CUDA_PLUGIN=$OLD; else export MAMBA_CUDA_PLUGIN=$NEW; fi
    MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="b8 L2048 h80 p64 N128" MAMBA_GPU_BWD_BENCH_SEED_L=1 timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "seq_idx\|gated" | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
  done
done
export MAMBA_CUDA_PLUGIN=$NEW
echo "$(el) sanitizer" | tee -a "$OUT/san.txt"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  MAMBA_GPU_QUICK=1 timeout 150 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" ssd_backward_q64_matches_the_oracle --test-threads=1 > /tmp/s.log 2>&1
  echo "$tool rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
done
echo "$(el) done"
