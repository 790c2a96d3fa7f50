#!/bin/bash
# Sixty-second session: a 16-bit block made with the 16-bit dzx has no f32 copy of in_proj
# (the switch test's third round runs such blocks with MAMBA_CUDA_BB_DZX16=0: the mixed-type
# GEMM); the conv backward on strided x / dout / dx (the block reads its conv input in zx and
# writes its gradient into dzx: MAMBA_CUDA_BB_CONV_DIRECT); racecheck of the block's training
# kernels on small cases (the sixty-first session's run on the full tests ran the host out of
# memory); timings of the block with the strided conv against the dense copies.
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
timeout 150 ./gpu_block_train --test-threads=1 --skip bench --skip decode_profile > "$OUT/t.log" 2>&1; echo "$(el) gpu_block_train rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test |switches" "$OUT/t.log" | cut -c1-300 | tail -30 >> "$OUT/time.txt"
timeout 100 ./gpu_backward causal_conv1d --test-threads=1 > "$OUT/c.log" 2>&1; echo "$(el) gpu_backward conv rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test |strided|causal_conv1d" "$OUT/c.log" | cut -c1-300 | tail -12 >> "$OUT/time.txt"
MAMBA_CUDA_CONV_BWD_CL2=1 timeout 100 ./gpu_backward causal_conv1d_backward_matches --test-threads=1 > "$OUT/c2.log" 2>&1; echo "$(el) gpu_backward conv cl2 rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|^test |causal_conv1d" "$OUT/c2.log" | cut -c1-300 | tail -6 >> "$OUT/time.txt"
MAMBA_CUDA_CONV_BWD_CL2=1 timeout 100 ./gpu_block_train block_train_switches --test-threads=1 > "$OUT/t2.log" 2>&1; echo "$(el) block switches cl2 rc=$?" | tee -a "$OUT/time.txt"
grep -E "test result|FAIL|panicked|switches" "$OUT/t2.log" | cut -c1-300 | tail -6 >> "$OUT/time.txt"
timeout 60 ./gpu mamba2_block --test-threads=1 > /tmp/t.log 2>&1; echo "gpu mamba2_block rc=$?" | tee -a "$OUT/time.txt"
for dt in f32 bf16; do timeout 40 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "passed" | tail -2 | sed "s/^/$dt /" | tee -a "$OUT/time.txt"; done
# racecheck with a watchdog on the sanitizer's host memory (kill past 40 GB RSS).
san() {  # name, timeout, env..., -- args
  local name=$1 to=$2; shift 2
  ( env "$@" > "$OUT/san-$name.log" 2>&1 ) & local pid=$!
  local t=0 peak=0
  while kill -0 $pid 2>/dev/null; do
    sleep 2; t=$((t + 2))
    local rss=$(ps -o rss= --ppid $pid 2>/dev/null | awk '{s+=$1} END{print s+0}')
    local rss2=$(pgrep -f compute-sanitizer | xargs -r -n1 ps -o rss= -p 2>/dev/null | awk '{s+=$1} END{print s+0}')
    [ "$rss2" -gt "$rss" ] && rss=$rss2
    [ "$rss" -gt "$peak" ] && peak=$rss
    if [ "$rss" -gt 40000000 ] || [ $t -ge $to ]; then echo "$name: killed at $t s, rss $rss KB" | tee -a "$OUT/time.txt"; pkill -9 -f compute-sanitizer; pkill -9 -f gpu_block_train; break; fi
  done
  wait $pid 2>/dev/null
  echo "$(el) $name: peak rss $((peak / 1024)) MB" | tee -a "$OUT/time.txt"
  grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|test result|panicked|passed" "$OUT/san-$name.log" | head -12 | cut -c1-300 | tee -a "$OUT/time.txt"
}
echo "$(el) timings" | tee -a "$OUT/time.txt"
bench() { env $1 MAMBA_BENCH_ITERS=$2 MAMBA_BENCH_DTYPE=$3 MAMBA_BENCH_BLOCK="$4" timeout 100 ./mamba-cuda-bench 2>&1 | grep "Mamba2Block train" | sed "s/^/$5 /" | tee -a "$OUT/time.txt"; }
V_a="MAMBA_CUDA_BB_CONV_DIRECT=1 MAMBA_CUDA_CONV_BWD_CL2=0"; V_b="MAMBA_CUDA_BB_CONV_DIRECT=0 MAMBA_CUDA_CONV_BWD_CL2=0"; V_c="MAMBA_CUDA_BB_CONV_DIRECT=1 MAMBA_CUDA_CONV_BWD_CL2=1"
for r in 1 2; do
  case $r in 1) order="a b c";; 2) order="c b a";; esac
  for v in $order; do
    eval "e=\$V_$v"
    bench "$e" 10,60 bf16 "2,400,192,64;2,800,192,64;4,1024,384,64;8,2048,768,128" "r$r $v"
  done
done
bench "MAMBA_CUDA_BB_CONV_DIRECT=1" 5,20 f32 "2,800,192,64;8,2048,768,128" "r1 f32"
bench "MAMBA_CUDA_BB_DZX16=0" 5,20 bf16 "8,2048,768,128" "r1 dzx32"
# ncu of the conv backward at the LM width (175 us in the fifty-ninth session's profile, ~1 TB/s).
for v in 1 0 2; do
  [ -n "$NCU" ] && env MAMBA_CUDA_BB_CONV_DIRECT=$(( v > 0 )) MAMBA_CUDA_CONV_BWD_CL2=$(( v == 2 )) MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 60 "$NCU" --clock-control none -k regex:"bwd_convt" -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats ./mamba-cuda-bench > "$OUT/ncu_conv$v.txt" 2>&1
  echo "$(el) ncu conv (1 direct, 0 dense copies, 2 direct + cl2) $v" | tee -a "$OUT/time.txt"
  grep -E "bwd_convt|Duration|DRAM Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|Achieved Occupancy|Registers Per|Grid Size|Warp Cycles Per Issued|Stall|Mem Busy|Max Bandwidth" "$OUT/ncu_conv$v.txt" | head -20 | tee -a "$OUT/time.txt"
done
CS="compute-sanitizer --tool racecheck --racecheck-report all"
san quick 120 MAMBA_GPU_QUICK=1 $CS ./gpu_block_train block_train_switches_match_host --test-threads=1
san seed0 90 MAMBA_BLOCK_TRAIN_CASE=0 $CS ./gpu_block_train block_train_switches_match_host --test-threads=1
echo "$(el) done" | tee -a "$OUT/time.txt"
