#!/bin/bash
# Fifty-fourth session, call 6: the session's tests against three mutant plugins (built
# here from the final tree with one line changed each): m1 gives every packed sequence the
# row's initial state; m2 adds only each row's last sequence's dA / dD / d dt_bias; m3 runs
# the gated backward's ungated pass from dout instead of dout silu(z).
. .device-carry/device_common.sh
cd "$C"
for m in 1 2 3; do
  echo "== m$m"
  MAMBA_CUDA_PLUGIN=$C/m$m.so timeout 120 ./gpu_backward ssd_packed_sequences ssd_backward_q64_matches_the_oracle 2>&1 | grep -E "^test |test result" | tee -a "$OUT/mutants.txt"
done
echo "$(el) done"
