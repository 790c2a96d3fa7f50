#!/bin/bash
# Fifty-seventh session, call 2: the q64 backward test's full output on the new plugin and on
# the previous one (the large-decay draws' dA), then every other GPU test of the final plugin
# (s57a-verify.sh without the tests call 1 ran), as far as the budget goes.
. .device-carry/device_common.sh
cd "$C"
for v in new old; do
  if [ $v = old ]; then export MAMBA_CUDA_PLUGIN=$C/libmamba_cuda_old.so; else export MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so; fi
  MAMBA_GPU_QUICK=0 timeout 60 ./gpu_backward ssd_backward_q64_matches_the_oracle --exact --nocapture > "$OUT/q64-$v.txt" 2>&1; echo "q64 $v rc=$?" | tee -a "$OUT/verify.txt"
done
export MAMBA_CUDA_PLUGIN=$C/libmamba_cuda.so
cd "$OLDPWD"
BUDGET=${BUDGET:-480} EXCLUDE='^(ssd_backward_q64_matches_the_oracle|ssd_backward_matches_the_oracle|ssd_packed_sequences_match_the_oracle|backward_into_matches_the_backward|ssd_backward_gated_without_dz|default_rules_backward_at_random_sizes|block_train_at_random_sizes)$' bash .device-carry/s57a-verify.sh
