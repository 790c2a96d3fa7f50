#!/bin/bash
# Fortieth session, call 16: do the new tests fail where the code they check is broken?
# mutA: a plugin whose block_set_weights returns OK without copying the weights;
# mutB: a test binary whose DeviceGrads::to_host hands out conv_bias and dt_bias swapped;
# mutC: a test binary whose page-locked downloads (Pool::dtoh, behind to_vec) leave the
# last 4 bytes unwritten (second run: the set_weights test now starts its in-place update
# from other weights, and the new `pinned_copies_round_trip_exactly`). Then the final
# binaries, which must pass.
. "$PWD/.device-carry/device_common.sh"
M=$C/mut
{
MAMBA_CUDA_PLUGIN=$M/libmamba_cuda_mutA.so timeout 120 "$C/gpu_block_train" block_set_weights --test-threads=1 > /tmp/t.log 2>&1
echo "mutA set_weights rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -3
timeout 120 "$M/gpu_block_train_mutB" block_device_training block_stack --test-threads=1 > /tmp/t.log 2>&1
echo "mutB rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -4
timeout 120 "$M/gpu_block_train_mutC" --test-threads=1 > /tmp/t.log 2>&1
echo "mutC rc=$?"; grep -E "test result|panicked" /tmp/t.log | cut -c1-200 | head -6
el
timeout 240 "$C/gpu_block_train" --test-threads=1 --nocapture > /tmp/t.log 2>&1
echo "final gpu_block_train rc=$?"; grep -E "test result|panicked|FAILED" /tmp/t.log | cut -c1-200 | head -4
el
} > "$OUT/summary.txt" 2>&1
tail -3 "$OUT/summary.txt"
