#!/bin/bash
# Forty-ninth session, call 9: the review commit (sbl_add_dbc): the q64 and chunked tests, the
# SSD goldens, the LM timings once.
. "$PWD/.device-carry/device_common.sh"
{
for t in ssd_backward_q64_matches_the_oracle ssd_backward_chunked_matches_the_oracle; do
  timeout 200 "$C/gpu_backward" $t --nocapture --test-threads=1 > /tmp/t.log 2>&1
  echo "$t rc=$?"; grep -E "test result|checks|FAIL" /tmp/t.log | cut -c1-200 | head -4
done
for dt in f32 bf16; do
  MAMBA_CUDA_SSD_BWDL=1 timeout 150 "$C/xtask" golden --backend cuda --dir "$C/golden" --dtype $dt > /tmp/g.log 2>&1
  echo "golden $dt BWDL=1 rc=$?"; grep -E "passed|FAIL" /tmp/g.log | tail -2
done
for only in "ssd bf16 b8 L2048" "ssd f32 b8 L2048"; do
  MAMBA_GPU_BWD_BENCH=1 MAMBA_GPU_BWD_BENCH_ONLY="$only" timeout 120 "$C/gpu_backward" forward_backward_timings --nocapture --test-threads=1 > /tmp/b.log 2>&1
  echo "default rc=$?"; grep -E "TIMING|panicked" /tmp/b.log | cut -c1-200 | head -2
done
el
} > "$OUT/s49h.txt" 2>&1
cat "$OUT/s49h.txt"
