#!/bin/bash
# Thirty-seventh session, call 2: where initcheck's reports come from (kernel, thread, host frames).
. "$PWD/.device-carry/device_common.sh"
for spec in "gpu ssd_chunked_matches_the_oracle" "gpu ssd_batch_split_matches_the_oracle" "gpu_block_train block_train_device_matches_host_half"; do
  set -- $spec
  MAMBA_GPU_QUICK=1 timeout 60 compute-sanitizer --tool initcheck --print-limit 100000 "$C/$1" "$2" --test-threads=1 > "$OUT/full.log" 2>&1
  echo "=== $spec rc=$?"
  grep -E "^=========     at " "$OUT/full.log" | sed 's/+0x[0-9a-f]*//' | sort | uniq -c | sort -rn | head -12
  grep -E "Host API memory access error|Uninitialized access" "$OUT/full.log" | sed 's/0x[0-9a-f]*/ADDR/g' | sort | uniq -c | head -5
  grep -B2 -A12 -m2 "Uninitialized __global__" "$OUT/full.log" | head -40 > "$OUT/ex-$2.txt"
  grep -E "Host Frame" "$OUT/full.log" | sed 's/\[0x[0-9a-f]*\]//' | sort | uniq -c | sort -rn | head -8
done
el
