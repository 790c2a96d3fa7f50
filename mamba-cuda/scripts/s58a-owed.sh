#!/bin/bash
# Fifty-eighth session: the GPU tests the fifty-seventh session could not run on its final
# plugin (d3ce0ab), one test per process, each with its own time limit. ONLY: an extended
# regex of the tests to run (default: the owed list); SKIP=n resumes after item n.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
BUDGET=${BUDGET:-540}
ONLY=${ONLY:-'^(ssd_recurrent_blocks_(q_|r_)?match_the_oracle|selective_scan_backward_(four_states_per_lane|lm_path|seed_shape)|block_.*|stack_.*|pinned_.*|recorded_.*|residual_.*)$'}
LIST=""
for b in gpu gpu_backward gpu_block_train; do
  for t in $(./$b --list 2>/dev/null | grep ": test" | sed 's/: test//'); do
    case $t in *timings|*_bench|decode_profile) continue ;; esac
    echo "$t" | grep -Eq "$ONLY" || continue
    # Run on the final plugin last session already.
    echo "$t" | grep -Eq "${RAN:-^(block_train_at_random_sizes|block_device_training_matches_the_host_api|stack_trains_with_its_stream_on_the_device)$}" && continue
    LIST="$LIST $b:$t"
  done
done
echo "items: $LIST" | tee -a "$OUT/verify.txt"
i=0
for bt in $LIST; do
  i=$((i + 1))
  [ "$i" -le "${SKIP:-0}" ] && continue
  left=$(( BUDGET - ($(date +%s) - S0) ))
  if [ "$left" -lt 30 ]; then echo "STOPPED before item $i ($bt): SKIP=$((i - 1))" | tee -a "$OUT/verify.txt"; exit 0; fi
  b=${bt%%:*}; t=${bt#*:}
  lim=$(( left < 300 ? left : 300 ))
  t0=$(date +%s)
  timeout $lim ./$b "$t" --exact --test-threads=1 --nocapture > /tmp/t.log 2>&1; rc=$?
  res=$(grep -E "^test result" /tmp/t.log | head -1 | cut -c1-60)
  echo "$i $bt rc=$rc $(( $(date +%s) - t0 ))s $res" | tee -a "$OUT/verify.txt"
  grep -E "comparisons|checks|worst|panicked|FAIL" /tmp/t.log | cut -c1-220 | head -12 >> "$OUT/verify-detail.txt"
  [ $rc -ne 0 ] && { echo "== $bt" >> "$OUT/fail.txt"; tail -40 /tmp/t.log >> "$OUT/fail.txt"; }
done
echo "$(el) list done ($i items)" | tee -a "$OUT/verify.txt"
