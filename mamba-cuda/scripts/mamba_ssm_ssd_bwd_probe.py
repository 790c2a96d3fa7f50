# Probe (runs on the GPU machine, Python + PyTorch + Triton): mamba-ssm's SSD forward and
# forward+backward at the language-model shape (b8 L2048 h80 p64 N128, one group, chunk 256,
# D per head, dt_bias, softplus, no z; bf16 and f32 storage), as `forward_backward_timings` in
# tests/gpu_backward.rs times ours: CUDA events around each call (forward, or forward then
# backward of the sum of out * dout), median of 20 after 5 warm-up calls, no graph capture.
# mamba-ssm 2.3.2.post1's Triton sources on PYTHONPATH as in mamba_ssm_f32_probe.py (`py/`
# beside this file, or MSSM_PY).
import os, sys
sys.path.insert(0, os.environ.get("MSSM_PY", os.path.join(os.path.dirname(os.path.abspath(__file__)), "py")))
import torch
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
print("torch", torch.__version__, torch.cuda.get_device_name())
torch.manual_seed(0)
dev = "cuda"
b, L, h, p, n, cs = 8, 2048, 80, 64, 128, 256
def inputs(dt_):
    """x, dt, A, B, C, D, dt_bias (leaves with gradients) and dout, storage type dt_."""
    x = (torch.rand(b, L, h, p, device=dev) * 2 - 1).to(dt_).requires_grad_()
    dt = (torch.rand(b, L, h, device=dev) * -3).to(dt_).requires_grad_()
    A = (-(torch.rand(h, device=dev) + 0.5)).requires_grad_()
    B = (torch.rand(b, L, 1, n, device=dev) * 2 - 1).to(dt_).requires_grad_()
    C = (torch.rand(b, L, 1, n, device=dev) * 2 - 1).to(dt_).requires_grad_()
    D = (torch.rand(h, device=dev) * 2 - 1).requires_grad_()
    bias = (-torch.rand(h, device=dev)).requires_grad_()
    dout = (torch.rand(b, L, h, p, device=dev) * 2 - 1).to(dt_)
    return x, dt, A, B, C, D, bias, dout
# MSSM_PROFILE=only: the profile below without the timings.
for dt_ in (() if os.environ.get("MSSM_PROFILE") == "only" else (torch.bfloat16, torch.float32)):
    x, dt, A, B, C, D, bias, dout = inputs(dt_)
    fwd = lambda: mamba_chunk_scan_combined(x, dt, A, B, C, cs, D=D, dt_bias=bias, dt_softplus=True)
    def fb():
        y = fwd()
        y.backward(dout)
    for name, f in (("fwd", lambda: fwd()), ("fwd+bwd", fb)):
        for _ in range(5):
            f()
        torch.cuda.synchronize()
        ts = []
        for _ in range(20):
            e0 = torch.cuda.Event(enable_timing=True); e1 = torch.cuda.Event(enable_timing=True)
            e0.record(); f(); e1.record(); torch.cuda.synchronize(); ts.append(e0.elapsed_time(e1) * 1000)
        ts.sort()
        print(f"mamba-ssm ssd {str(dt_).split('.')[-1]} b8 L2048 h80 p64 N128 {name}: median {ts[len(ts)//2]:.1f} us (min {ts[0]:.1f})", flush=True)

# MSSM_PROFILE=1: the bf16 forward+backward's kernels by CUDA time (torch.profiler; one
# profiled call after the timed ones), to see where mamba-ssm's backward spends it.
if os.environ.get("MSSM_PROFILE"):
    from torch.profiler import profile, ProfilerActivity
    x, dt, A, B, C, D, bias, dout = inputs(torch.bfloat16)
    for _ in range(3):
        mamba_chunk_scan_combined(x, dt, A, B, C, cs, D=D, dt_bias=bias, dt_softplus=True).backward(dout)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            mamba_chunk_scan_combined(x, dt, A, B, C, cs, D=D, dt_bias=bias, dt_softplus=True).backward(dout)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=60))
