#!/bin/bash
# Fifty-eighth session: the chunked SSD backward's decays from f64 cumulative sums kept as two
# f32 values (`sbc_dcs`, `SsdbcParams::cse`) and the 32-step chunk kernel's W rectangle summed
# directly. The backward tests on the new plugin, the q64 test on the new and the previous
# plugin (libmamba_cuda_old.so, HEAD 08fdc7b: the same draws' worst errors), the goldens,
# forward+backward timed alternating (LM shape f32 / bf16: 64-step; seed shape f32: 32-step),
# memcheck / racecheck (quick), then the owed list (s58a-owed.sh) as far as BUDGET goes.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
NEW=$C/libmamba_cuda.so OLD=$C/libmamba_cuda_old.so
export MAMBA_CUDA_PLUGIN=$NEW
echo "$(el) tests" | tee -a "$OUT/tests.txt"
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle ssd_packed_sequences_match_the_oracle backward_into_matches_the_backward ssd_backward_gated_without_dz default_rules_backward_at_random_sizes; do
  t0=$(date +%s)
  timeout 150 ./gpu_backward $t --exact --test-threads=1 --nocapture > /tmp/t.log 2>&1; echo "$t rc=$? $(( $(date +%s) - t0 ))s" | tee -a "$OUT/tests.txt"
  grep -E "checks|worst|FAIL|panicked" /tmp/t.log | cut -c1-250 | tail -6 >> "$OUT/tests.txt"
done
timeout 120 ./gpu_block_train block_train_at_random_sizes --exact --nocapture > /tmp/t.log 2>&1; echo "block_train_at_random_sizes rc=$?" | tee -a "$OUT/tests.txt"
grep -E "passed|FAIL|panicked" /tmp/t.log | tail -3 >> "$OUT/tests.txt"
echo "$(el) goldens" | tee -a "$OUT/tests.txt"
for dt in f32 bf16; do timeout 100 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -1 | tee -a "$OUT/tests.txt"; done
for v in new old; do
  if [ $v = old ]; then export MAMBA_CUDA_PLUGIN=$OLD; else export MAMBA_CUDA_PLUGIN=$NEW; fi
  MAMBA_GPU_QUICK=0 timeout 60 ./gpu_backward ssd_backward_q64_matches_the_oracle --exact --nocapture > "$OUT/q64-$v.txt" 2>&1; echo "q64 $v rc=$?" | tee -a "$OUT/tests.txt"
  timeout 60 ./gpu_backward ssd_backward_chunked_matches_the_oracle --exact --nocapture > "$OUT/chunked-$v.txt" 2>&1; echo "chunked $v rc=$?" | tee -a "$OUT/tests.txt"
done
echo "$(el) timings" | tee -a "$OUT/time.txt"
for r in 1 2; do
  for v in new old; do
    if [ $v = old ]; then export MAMBA_CUDA_PLUGIN=$OLD; else export MAMBA_CUDA_PLUGIN=$NEW; fi
    for only in "ssd f32 b8 L2048 h80 p64 N128" "ssd bf16 b8 L2048 h80 p64 N128" "ssd f32 b2 L"; do
      MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" MAMBA_GPU_BWD_BENCH_SEED_L=400,800 timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "seq_idx\|gated" | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
    done
  done
done
export MAMBA_CUDA_PLUGIN=$NEW
echo "$(el) sanitizer" | tee -a "$OUT/san.txt"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for t in ssd_backward_chunked_matches_the_oracle ssd_backward_q64_matches_the_oracle; do
  for tool in memcheck racecheck; do
    [ $(( $(date +%s) - S0 )) -gt ${SAN_BY:-400} ] && { echo "skipped $t $tool (time)" | tee -a "$OUT/san.txt"; continue; }
    MAMBA_GPU_QUICK=1 timeout 130 "$SAN" --tool $tool --print-limit 10 "$C/gpu_backward" $t --exact --test-threads=1 > /tmp/s.log 2>&1
    echo "$t $tool rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
  done
done
echo "$(el) done" | tee -a "$OUT/tests.txt"
