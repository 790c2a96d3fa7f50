#!/bin/bash
# Thirty-seventh session, call 4: initcheck and synccheck on the GPU tests s37a did not run
# (quick mode), then initcheck on the two longest seed tests with a longer limit.
. "$PWD/.device-carry/device_common.sh"
for tool in initcheck synccheck; do
  for spec in "gpu selective_scan_matches_the_oracle" "gpu selective_scan_parallel_in_time_matches_the_oracle" \
      "gpu ssd_matches_the_oracle" "gpu ssd_aliased_states_match_separate_buffers" "gpu ssd_recurrent_blocks_match_the_oracle" \
      "gpu ssd_recurrent_blocks_r_match_the_oracle" "gpu ssd_recurrent_blocks_q_match_the_oracle" "gpu ssd_ssdz_segments_match_the_oracle" \
      "gpu device_errors_come_back_typed" "gpu_backward selective_scan_backward_matches_the_oracle" \
      "gpu_backward selective_scan_backward_four_states_per_lane" "gpu_backward ssd_backward_matches_the_oracle" \
      "gpu_backward ssd_backward_time_in_registers_matches_the_oracle" "gpu_block_train block_train_host_fallback_on_cuda"; do
    set -- $spec
    MAMBA_GPU_QUICK=1 timeout 25 compute-sanitizer --tool $tool --print-limit 20 "$C/$1" "$2" --test-threads=1 > "$OUT/one.log" 2>&1
    echo "$tool $1 $2 rc=$? $(grep 'ERROR SUMMARY' "$OUT/one.log" | tail -1 | cut -c1-60) $(grep 'test result' "$OUT/one.log" | cut -c1-30)"
    grep -E "^=========     at |by thread|Host API" "$OUT/one.log" | sed 's/+0x[0-9a-f]*//; s/0x[0-9a-f]*/ADDR/g' | sort | uniq -c | sort -rn | head -4
  done
  el
done
rm -f "$OUT/one.log"
