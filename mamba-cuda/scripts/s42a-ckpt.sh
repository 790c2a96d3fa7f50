#!/bin/bash
# Forty-second session, call 1: the optimizer's state through files and between the device
# and the host (`stack_optimizer_state_saves_and_resumes_on_the_device`), the whole
# gpu_block_train binary, two mutants of mamba-model's moment handling (A: the device
# ignores loaded moments; B: the host path drops the device's), memcheck on the new test.
# Not run in the forty-second session (no device was lent). The mutant binaries
# (.device-carry/gbt_mutA, gbt_mutB) are gpu_block_train built with mamba-model/src/stack.rs
# changed: A: `match host_moments.get(k) {` -> `match None::<&(Mamba2Weights, Mamba2Weights)> {`;
# B: the host path's `let moments = opt.moments(self)?;` block replaced by
# `opt.set_moments(step, Vec::new())` (then carry.sh for the real binaries).
. "$PWD/.device-carry/device_common.sh"
{
timeout 100 "$C/gpu_block_train" stack_optimizer_state --nocapture --test-threads=1 > /tmp/n.log 2>&1
echo "new test rc=$?"; grep -E "test result|panicked|optimizer state" /tmp/n.log | cut -c1-250 | head -6
el
for m in A B; do
  timeout 100 "$C/gbt_mut$m" stack_optimizer_state --test-threads=1 > /tmp/m$m.log 2>&1
  echo "mutant $m rc=$?"; grep -E "test result|panicked" -A2 /tmp/m$m.log | cut -c1-250 | head -5
done
el
timeout 250 "$C/gpu_block_train" --test-threads=1 > /tmp/t.log 2>&1
echo "gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-250 | head -6
el
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 150 "$SAN" --tool memcheck "$C/gpu_block_train" stack_optimizer_state --test-threads=1 > /tmp/mc.log 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|test result" /tmp/mc.log | head -3
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
