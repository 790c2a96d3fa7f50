#!/bin/bash
# Fifty-eighth session, final plugin: s58b's checks with cs's remainders for f32 storage only
# (`sbl_dcs<E>`, (lo, le) as float2), timings alternating with the previous plugin
# (libmamba_cuda_old.so, HEAD 08fdc7b) in three rounds, memcheck / racecheck (quick), then the
# owed list (s58a-owed.sh) with what is left of BUDGET.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
NEW=$C/libmamba_cuda.so OLD=$C/libmamba_cuda_old.so
export MAMBA_CUDA_PLUGIN=$NEW
echo "$(el) tests" | tee -a "$OUT/tests.txt"
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle ssd_backward_matches_the_oracle ssd_packed_sequences_match_the_oracle backward_into_matches_the_backward ssd_backward_gated_without_dz default_rules_backward_at_random_sizes; do
  t0=$(date +%s)
  timeout 150 ./gpu_backward $t --exact --test-threads=1 --nocapture > /tmp/t.log 2>&1; echo "$t rc=$? $(( $(date +%s) - t0 ))s" | tee -a "$OUT/tests.txt"
  grep -E "checks|worst|FAIL|panicked|large decays" /tmp/t.log | cut -c1-250 | tail -8 >> "$OUT/tests.txt"
  cp /tmp/t.log "$OUT/$t.log"
done
timeout 120 ./gpu_block_train block_train_at_random_sizes --exact --nocapture > /tmp/t.log 2>&1; echo "block_train_at_random_sizes rc=$?" | tee -a "$OUT/tests.txt"
grep -E "passed|FAIL|panicked" /tmp/t.log | tail -3 >> "$OUT/tests.txt"
echo "$(el) goldens" | tee -a "$OUT/tests.txt"
for dt in f32 bf16 f16; do timeout 100 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -1 | tee -a "$OUT/tests.txt"; done
echo "$(el) timings" | tee -a "$OUT/time.txt"
for r in 1 2 3; do
  for v in new old; do
    if [ $v = old ]; then export MAMBA_CUDA_PLUGIN=$OLD; else export MAMBA_CUDA_PLUGIN=$NEW; fi
    for only in "ssd f32 b8 L2048 h80 p64 N128" "ssd bf16 b8 L2048 h80 p64 N128" "ssd f32 b2 L" "ssd bf16 b2 L800"; do
      MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" MAMBA_GPU_BWD_BENCH_SEED_L=400,800 timeout 100 ./gpu_backward forward_backward_timings --nocapture 2>&1 | grep TIMING | grep -v "seq_idx\|gated" | sed "s/^/r$r $v /" | tee -a "$OUT/time.txt"
    done
  done
done
export MAMBA_CUDA_PLUGIN=$NEW
echo "$(el) sanitizer" | tee -a "$OUT/san.txt"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tt in "ssd_backward_chunked_matches_the_oracle memcheck" "ssd_backward_q64_matches_the_oracle memcheck" "ssd_backward_q64_matches_the_oracle racecheck" "ssd_backward_chunked_matches_the_oracle racecheck"; do
  set -- $tt
  [ $(( $(date +%s) - S0 )) -gt ${SAN_BY:-420} ] && { echo "skipped $1 $2 (time)" | tee -a "$OUT/san.txt"; continue; }
  MAMBA_GPU_QUICK=1 timeout 110 "$SAN" --tool $2 --print-limit 10 "$C/gpu_backward" $1 --exact --test-threads=1 > /tmp/s.log 2>&1
  echo "$1 $2 rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" /tmp/s.log | tr '\n' ' ')" | tee -a "$OUT/san.txt"
done
echo "$(el) owed" | tee -a "$OUT/tests.txt"
cd "$OLDPWD"
BUDGET=$(( ${BUDGET:-560} - ($(date +%s) - S0) )) bash .device-carry/s58a-owed.sh
