#!/bin/bash
# Thirty-fourth session, call 3: the SSD LM forward in runs of batch rows that share streams
# (`MAMBA_CUDA_SSD_SPLIT=P MAMBA_CUDA_SSD_LANES=S`: part i on stream i % S), so that one run's
# chunk states may still be in L2 when its outputs kernel reads them. Per-call timing
# (alternating, three rounds), ncu DRAM bytes and L2 hit rates, then the split test.
. "$PWD/.device-carry/device_common.sh"
for r in 1 2 3; do
  for cfg in "-:-" "8:1" "8:2" "8:4" "4:1" "4:2" "2:1"; do
    P=${cfg%:*}; S=${cfg#*:}; [ "$P" = - ] && P=; [ "$S" = - ] && S=
    for ty in bf16 f32; do
      MAMBA_CUDA_SSD_SPLIT=$P MAMBA_CUDA_SSD_LANES=$S MAMBA_BENCH_DTYPE=$ty \
        MAMBA_BENCH_SSD="8,2048,80,64,128;8,1000,80,64,128;4,2048,32,64,128" \
        timeout 60 "$C/mamba-cuda-bench" 2>&1 | grep -E "^ssd" | sed "s/^/r$r cfg=$cfg /"
    done
  done
done > "$OUT/timing.txt"
el
MD=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct
for cfg in "-:-" "8:2" "8:1"; do
  P=${cfg%:*}; S=${cfg#*:}; [ "$P" = - ] && P=; [ "$S" = - ] && S=
  for ty in bf16 f32; do
    MAMBA_CUDA_SSD_SPLIT=$P MAMBA_CUDA_SSD_LANES=$S MAMBA_BENCH_DTYPE=$ty MAMBA_BENCH_SSD="8,2048,80,64,128" \
      timeout 90 $NCU --clock-control none -k regex:"states|sseq|out" -c 16 --metrics $MD --csv \
      "$C/mamba-cuda-bench" --quick > "$OUT/ncu-$ty-${P:-d}-${S:-d}.csv" 2>/dev/null
    echo "ncu $ty $cfg rc=$?"
  done
done
el
timeout 200 "$C/gpu" ssd_batch_split_matches_the_oracle --test-threads=1 --nocapture > "$OUT/split.log" 2>&1
echo "split test rc=$?"; grep -E "comparisons|test result|panicked" "$OUT/split.log" | head -5
el
