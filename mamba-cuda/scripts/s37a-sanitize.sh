#!/bin/bash
# Thirty-seventh session: compute-sanitizer's initcheck (reads of uninitialised device
# memory) and synccheck (barriers and warp syncs used wrongly), neither run on the default
# paths before, over the GPU tests in quick mode (MAMBA_GPU_QUICK=1: small odd shapes).
# Argument: the tool. One log per tool; a summary line per test.
. "$PWD/.device-carry/device_common.sh"
tool=$1
LOG="$OUT/san-$tool.log"; : > "$LOG"
run() { # binary test [timeout]
  local b=$1 t=$2 lim=${3:-${LIM:-38}}
  MAMBA_GPU_QUICK=1 timeout $lim compute-sanitizer --tool $tool --print-limit 10 "$C/$b" "$t" --test-threads=1 > "$OUT/one.log" 2>&1
  local rc=$?
  echo "=== $b $t rc=$rc" >> "$LOG"
  grep -E "ERROR SUMMARY|========= (Uninitialized|Barrier|Invalid|Divergent|Warp)|test result|panicked" "$OUT/one.log" | sort | uniq -c | head -12 >> "$LOG"
  echo "$b $t rc=$rc $(grep -E 'ERROR SUMMARY' "$OUT/one.log" | tail -1) $(grep -E 'test result' "$OUT/one.log" | tail -1 | cut -c1-40)"
}
for t in selective_scan_lm_path_matches_the_oracle selective_scan_seed_matches_the_oracle ssd_chunked_matches_the_oracle \
         ssd_seed_matches_the_oracle ssd_cluster_chunks_z_match_the_oracle ssd_batch_split_matches_the_oracle \
         causal_conv1d_matches_the_oracle decode_steps_match_the_oracle mamba2_block_matches_spec6; do
  run gpu $t
done
for t in selective_scan_saved_path selective_scan_backward_lm_path ssd_backward_chunked_matches_the_oracle selective_scan_backward_seed_shape; do
  run gpu_backward $t
done
run gpu_block_train block_train_device_matches_host_half
el
