#!/bin/bash
# Fifty-ninth session: the Mamba2Block's training pass at a language-model width
# (b8 L2048 d_model 768 N128: 24 heads of 64), bf16 and f32, against the seed block; the SSD
# alone at its shape; the projections' GEMMs in PyTorch (the floor of that part); then
# ncu's per-kernel durations of one bf16 training pass (forward, forward+backward, backward).
. .device-carry/device_common.sh
cd "$C"
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$OUT/time.txt"
echo "$(el) block" | tee -a "$OUT/time.txt"
for r in 1 2; do for tf in 1 0; do
  echo "round $r MAMBA_CUDA_BB_TF32=$tf" | tee -a "$OUT/time.txt"
  MAMBA_BENCH_ITERS=5,30 MAMBA_CUDA_BB_TF32=$tf MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128;2,400,192,64" timeout 150 ./mamba-cuda-bench 2>&1 | grep -v "^device\|host time" | tee -a "$OUT/time.txt"
done; done
MAMBA_BENCH_ITERS=3,10 MAMBA_BENCH_DTYPE=f32 MAMBA_BENCH_BLOCK="8,2048,768,128;2,400,192,64" timeout 150 ./mamba-cuda-bench 2>&1 | grep -v "^device\|host time" | tee -a "$OUT/time.txt"
for dt in bf16 f32; do
  MAMBA_BENCH_DTYPE=$dt MAMBA_BENCH_SSD="8,2048,24,64,128" timeout 60 ./mamba-cuda-bench 2>&1 | grep -v "^device\|host time" | tee -a "$OUT/time.txt"
done
echo "$(el) torch gemms" | tee -a "$OUT/time.txt"
timeout 120 python3 - <<'PY' 2>&1 | tee -a "$OUT/time.txt"
import torch
def t(f, n=50):
    for _ in range(5): f()
    s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(n):
        s.record(); f(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) * 1e3)
    ts.sort(); return ts[len(ts) // 2]
M, D, DI, P = 16384, 768, 1536, 3352
for dt in (torch.bfloat16, torch.float32):
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(M, D, device='cuda', dtype=dt); w = torch.randn(P, D, device='cuda', dtype=dt)
    dy = torch.randn(M, P, device='cuda', dtype=dt)
    y2 = torch.randn(M, DI, device='cuda', dtype=dt); w2 = torch.randn(D, DI, device='cuda', dtype=dt)
    dy2 = torch.randn(M, D, device='cuda', dtype=dt)
    a = t(lambda: x @ w.t()); b = t(lambda: dy @ w); c = t(lambda: dy.t() @ x)
    d = t(lambda: y2 @ w2.t()); e2 = t(lambda: dy2 @ w2); f = t(lambda: dy2.t() @ y2)
    print(f"torch {dt}: in_proj fwd {a:.1f} us, dX {b:.1f}, dW {c:.1f}; out_proj fwd {d:.1f}, dX {e2:.1f}, dW {f:.1f}; fwd {a+d:.1f}, fwd+bwd {a+b+c+d+e2+f:.1f} us")
PY
echo "$(el) ncu" | tee -a "$OUT/time.txt"
MAMBA_BENCH_ITERS=0,1 MAMBA_BENCH_DTYPE=bf16 MAMBA_BENCH_BLOCK="8,2048,768,128" timeout 150 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv ./mamba-cuda-bench > "$OUT/ncu_bf16.csv" 2> "$OUT/ncu_err.txt"
echo "ncu rc=$? $(wc -l < "$OUT/ncu_bf16.csv") lines" | tee -a "$OUT/time.txt"
echo "$(el) tests" | tee -a "$OUT/time.txt"
rm -rf "$C/golden" && ln -s "$OLDPWD/tests/golden" "$C/golden"
late() { [ $(( $(date +%s) - S0 )) -gt ${1} ] && { echo "skipped (time)" | tee -a "$OUT/time.txt"; return 0; }; return 1; }
for t in block_train_device_matches_host_half block_train_device_matches_host_f32 block_device_training_matches_the_host_api block_train_kept_activations_match_recompute; do
  late 420 && continue
  timeout 100 ./gpu_block_train $t --exact --nocapture > /tmp/t.log 2>&1; echo "$t rc=$?" | tee -a "$OUT/time.txt"
  grep -E "passed|worst|FAIL|panicked|rel" /tmp/t.log | cut -c1-200 | tail -6 >> "$OUT/time.txt"
done
for dt in bf16 f16; do late 450 && continue; timeout 60 ./xtask golden --backend cuda --dir "$C/golden" --dtype $dt 2>&1 | grep -i "block\|passed" | tail -8 | tee -a "$OUT/time.txt"; done
echo "$(el) done" | tee -a "$OUT/time.txt"
