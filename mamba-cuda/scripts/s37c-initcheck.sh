#!/bin/bash
# Thirty-seventh session, call 3: initcheck again on the f32 LM SSD tests after the header
# kernels write the whole last 16 bytes of each header (the readers' 16-byte copies had
# read 12 unwritten bytes); the block-train test's uninitialised device-to-host copy with
# cuBLASLt and with our GEMM (MAMBA_CUBLASLT=off); then synccheck over s37a's list.
. "$PWD/.device-carry/device_common.sh"
for spec in "gpu ssd_chunked_matches_the_oracle" "gpu ssd_batch_split_matches_the_oracle" \
            "gpu_block_train block_train_device_matches_host_half" "gpu_block_train block_train_device_matches_host_half off"; do
  set -- $spec
  e=""; [ "${3:-}" = off ] && e="MAMBA_CUBLASLT=off"
  env $e MAMBA_GPU_QUICK=1 timeout 60 compute-sanitizer --tool initcheck --print-limit 100000 "$C/$1" "$2" --test-threads=1 > "$OUT/full.log" 2>&1
  echo "=== initcheck $spec rc=$? $(grep 'ERROR SUMMARY' "$OUT/full.log" | tail -1) $(grep 'test result' "$OUT/full.log" | cut -c1-30)"
  grep -E "^=========     at " "$OUT/full.log" | sed 's/+0x[0-9a-f]*//' | sort | uniq -c | sort -rn | head -6
  grep -E "by thread" "$OUT/full.log" | sed 's/in block.*//' | sort | uniq -c | sort -rn | head -3
  grep -E "Host API memory access error" "$OUT/full.log" | sed 's/0x[0-9a-f]*/ADDR/g' | sort | uniq -c | head -3
done
rm -f "$OUT/full.log"
el
bash "$C/s37a-sanitize.sh" synccheck
