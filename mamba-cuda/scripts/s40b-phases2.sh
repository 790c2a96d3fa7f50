. "$PWD/.device-carry/device_common.sh"
{
MAMBA_BLOCK_TRAIN_BENCH=1 timeout 200 "$C/gpu_block_train" block_train_phases --nocapture > /tmp/t.log 2>&1
echo "phases rc=$?"; grep -E "block train phases|panicked" /tmp/t.log | cut -c1-400
el
} > "$OUT/summary.txt" 2>&1
