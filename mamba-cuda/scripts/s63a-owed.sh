#!/bin/bash
# Sixty-third session: the goldens (the whole public set) and `gpu mamba2_block` on the current
# plugin; racecheck / synccheck / memcheck of the Mamba2Block training kernels on small bench
# shapes (the test binaries' cases ran the sanitizer's host memory past 130 GB), our GEMM
# kernels (MAMBA_CUBLASLT=0) and with cuBLASLt's kernels left out.
. .device-carry/device_common.sh
cd "$C"
T=$OUT/time.txt
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$T"
# Every public golden case: the repository's copy plus the three large ones carried beside it.
rm -rf "$C/gall" && mkdir -p "$C/gall" && ln -s "$OLDPWD"/tests/golden/*.safetensors "$C"/golden/*.safetensors "$C/gall/" 2>/dev/null
echo "golden files: $(ls "$C/gall" | wc -l)" | tee -a "$T"
timeout 60 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "$(el) gpu mamba2_block rc=$?" | tee -a "$T"
grep -E "test result|FAIL|panicked|^test " /tmp/t.log | cut -c1-200 | tail -6 | tee -a "$T"
for dt in f32 bf16 f16; do timeout 60 ./xtask golden --backend cuda --dir "$C/gall" --dtype $dt > /tmp/g.log 2>&1; echo "$(el) golden $dt rc=$?" | tee -a "$T"; grep -iE "passed|fail" /tmp/g.log | tail -3 | cut -c1-200 | tee -a "$T"; done
# A sanitizer run under a watchdog on the whole host's memory (killed past 60 GB in use).
san() {  # name, timeout, env / command...
  local name=$1 to=$2; shift 2
  ( env "$@" > /tmp/san.log 2>&1 ) & local pid=$!
  local t=0 peak=0
  while kill -0 $pid 2>/dev/null; do
    sleep 2; t=$((t + 2))
    local used=$(free -k | awk '/^Mem:/ {print $3}')
    [ "$used" -gt "$peak" ] && peak=$used
    if [ "$used" -gt 60000000 ] || [ $t -ge $to ]; then echo "$name: killed at $t s, used $((used / 1024)) MB" | tee -a "$T"; pkill -9 -f compute-sanitizer; pkill -9 -f mamba-cuda-bench; break; fi
  done
  wait $pid 2>/dev/null
  echo "$(el) $name: peak host memory used $((peak / 1024)) MB" | tee -a "$T"
  grep -E "RACECHECK SUMMARY|ERROR SUMMARY|Error|error|hazard|Mamba2Block train" /tmp/san.log | sort | uniq -c | head -14 | cut -c1-300 | tee -a "$T"
  { echo "=== $name"; head -c 20000 /tmp/san.log; } >> "$OUT/san.txt"
}
B="MAMBA_BENCH_ITERS=0,1"
RC="compute-sanitizer --tool racecheck --racecheck-report all --print-limit 30"
for dt in f32 bf16; do
  san rc-own-$dt 150 MAMBA_CUBLASLT=0 $B MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_BLOCK="2,100,64,16;2,100,64,128" $RC ./mamba-cuda-bench
done
san rc-lt-bf16 150 $B MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="2,100,64,16;2,100,64,128" $RC --kernel-name-exclude regex:"gemm|cutlass|xmma|sm90|cublas|Kernel" ./mamba-cuda-bench
san rc-own-f16 120 MAMBA_CUBLASLT=0 $B MAMBA_BENCH_DTYPE=f16 MAMBA_BENCH_BLOCK="2,100,64,128" $RC ./mamba-cuda-bench
san sync-own-bf16 120 MAMBA_CUBLASLT=0 $B MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="2,100,64,16;2,100,64,128" compute-sanitizer --tool synccheck ./mamba-cuda-bench
san mem-lt-bf16 120 $B MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="2,100,64,16;2,100,64,128" compute-sanitizer --tool memcheck ./mamba-cuda-bench
# The seed shape (head count 6) in f32, once, if there is time left.
[ $(( $(date +%s) - S0 )) -lt 380 ] && san rc-own-seed-f32 150 MAMBA_CUBLASLT=0 $B MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="2,400,192,64" $RC ./mamba-cuda-bench
echo "$(el) done" | tee -a "$T"
