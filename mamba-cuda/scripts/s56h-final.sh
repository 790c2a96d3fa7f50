#!/bin/bash
# Fifty-sixth session, call 10: the final test binaries (the sweeps' shared module): the three
# sweeps at their defaults, each alone, then the whole gpu binary one test at a time.
. .device-carry/device_common.sh
cd "$C"
echo "$(el) sweeps" | tee -a "$OUT/final.txt"
timeout 120 ./gpu default_rules_match_the_oracle_at_random_sizes --nocapture 2>&1 | grep -E "^test |comparisons|panicked" | tee -a "$OUT/final.txt"
timeout 120 ./gpu_backward default_rules_backward_at_random_sizes --nocapture 2>&1 | grep -E "^test |checks;|panicked" | tee -a "$OUT/final.txt"
timeout 120 ./gpu_block_train block_train_at_random_sizes --nocapture 2>&1 | grep -E "^test |passed|panicked" | tee -a "$OUT/final.txt"
echo "$(el) gpu, all tests" | tee -a "$OUT/final.txt"
timeout 330 ./gpu --test-threads=1 --nocapture > /tmp/g.log 2>&1; echo "rc=$?" >> /tmp/g.log
grep -E "^test |test result|comparisons|rc=" /tmp/g.log | cut -c1-200 | tee -a "$OUT/final.txt"
echo "$(el) done"
