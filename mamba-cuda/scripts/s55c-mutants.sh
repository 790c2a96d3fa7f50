#!/bin/bash
# Fifty-fifth session, call 3: two mutant plugins against the session's tests. mut_fwd.so:
# the forward's reset terms set to 0 (L32_RESET in ssd_lm32.cu, SSDL_RESET2 in
# ssd_chunk.cu): `ssd_lm_packed_sequences_match_the_oracle` must fail. mut_bwd.so: the
# backward prep's (SBC_RESET in ssd_bwdc.cu) set to 0: `ssd_packed_sequences_match_the_oracle`
# must fail (its forward is right). Then the real plugin passes both again.
. .device-carry/device_common.sh
cd "$C"
for m in mut_fwd mut_bwd; do
  echo "$(el) $m"
  MAMBA_CUDA_PLUGIN=$C/$m.so timeout 200 ./gpu ssd_lm_packed_sequences --nocapture 2>&1 | grep -E "^test |comparisons|FAIL" | head -6 | cut -c1-250 | sed "s/^/$m gpu: /" | tee -a "$OUT/mutants.txt"
  MAMBA_CUDA_PLUGIN=$C/$m.so timeout 200 ./gpu_backward ssd_packed_sequences --nocapture 2>&1 | grep -E "^test |checks|FAIL" | head -6 | cut -c1-250 | sed "s/^/$m gpu_backward: /" | tee -a "$OUT/mutants.txt"
done
echo "$(el) real"
timeout 200 ./gpu ssd_lm_packed_sequences 2>&1 | grep -E "^test " | sed "s/^/real gpu: /" | tee -a "$OUT/mutants.txt"
timeout 200 ./gpu_backward ssd_packed_sequences 2>&1 | grep -E "^test " | sed "s/^/real gpu_backward: /" | tee -a "$OUT/mutants.txt"
echo "$(el) done"
