#!/bin/bash
# Fifty-seventh session: every GPU test of the final plugin (3150fdc's kernels), one test per
# process, in order, each with its own time limit; resumable: SKIP=n skips the first n of the
# list (the previous call's last line says where it stopped). Benches are left out. Then the
# goldens in f32 / bf16 / f16 when the list is done.
. .device-carry/device_common.sh
rm -rf "$C/golden" && ln -s "$PWD/tests/golden" "$C/golden"
cd "$C"
BUDGET=${BUDGET:-540}
LIST=""
for b in gpu gpu_backward gpu_block_train linkage; do
  for t in $(./$b --list 2>/dev/null | grep ": test" | sed 's/: test//'); do
    case $t in *timings|*_bench|decode_profile) continue ;; esac
    # EXCLUDE: an extended regex of tests run already (e.g. by s57b-rect.sh).
    if [ -n "${EXCLUDE:-}" ] && echo "$t" | grep -Eq "$EXCLUDE"; then continue; fi
    LIST="$LIST $b:$t"
  done
done
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
for dt in f32 bf16 f16; do
  timeout 90 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | tail -1 | tee -a "$OUT/verify.txt"
done
echo "$(el) done" | tee -a "$OUT/verify.txt"
