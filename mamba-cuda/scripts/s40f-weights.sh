. "$PWD/.device-carry/device_common.sh"
{
for form in new old; do
  P=$C/libmamba_cuda.so; [ $form = old ] && P=$C/prev/libmamba_cuda_s40a.so
  MAMBA_CUDA_PLUGIN=$P MAMBA_BLOCK_TRAIN_BENCH=1 timeout 100 "$C/gpu_block_train" block_train_phases --nocapture > /tmp/t.log 2>&1
  grep -E "block train phases.*(step|weights:)|panicked" /tmp/t.log | sed "s/^/$form /" | cut -c1-330
done
} > "$OUT/summary.txt" 2>&1
