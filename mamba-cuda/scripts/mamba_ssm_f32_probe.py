# Probe (runs on the GPU machine, Python + PyTorch + Triton): mamba-ssm's f32 SSD forward at the
# language-model shape (b8 L2048 h80 p64 N128, one group, chunk 256, D, dt_bias, softplus):
# its time (CUDA events around each call, median of 30 after 5 warm-up calls, no graph
# capture) and its rel-L2 error against an f64 reference on batch 0 (the chunked quadratic
# form in f64, itself checked against the plain SPEC 2 recurrence on 300 steps of 2 heads).
# Run with TRITON_F32_DEFAULT unset (Triton's default `tl.dot` precision for f32 operands,
# tf32 on NVIDIA tensor cores: mamba-ssm's SSD kernels do not set `input_precision`) and, for
# comparison, with TRITON_F32_DEFAULT=ieee.
#
# The GPU machine has no mamba-ssm and no network: `py/` beside this file (PYTHONPATH) held
# mamba-ssm 2.3.2.post1's `mamba_ssm/utils` and `mamba_ssm/ops/triton` from its PyPI sdist
# (empty `mamba_ssm/__init__.py` and `mamba_ssm/ops/__init__.py`, so the CUDA extension is not
# imported), with the einops and packaging wheels unpacked. Results: NOTES.md, twelfth session.
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import torch
print("torch", torch.__version__, torch.cuda.get_device_name(), "TRITON_F32_DEFAULT=", os.environ.get("TRITON_F32_DEFAULT"))
try:
    import triton
    print("triton", triton.__version__)
except Exception as e:
    print("no triton:", e); sys.exit(0)
try:
    import mamba_ssm
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    print("mamba_ssm", getattr(mamba_ssm, "__version__", "?"))
except Exception as e:
    print("no mamba_ssm:", e); sys.exit(0)
torch.manual_seed(0)
dev = "cuda"
b, L, h, p, n, g, cs = 8, 2048, 80, 64, 128, 1, 256
x = torch.randn(b, L, h, p, device=dev)
dt = torch.rand(b, L, h, device=dev) * 2 - 3
A = -torch.rand(h, device=dev) * 7.5 - 0.5
B = torch.randn(b, L, g, n, device=dev)
C = torch.randn(b, L, g, n, device=dev)
D = torch.randn(h, device=dev)
bias = torch.rand(h, device=dev) - 0.5
f = lambda: mamba_chunk_scan_combined(x, dt, A, B, C, cs, D=D, dt_bias=bias, dt_softplus=True)
for _ in range(5):
    y = f()
torch.cuda.synchronize()
ts = []
for _ in range(30):
    e0 = torch.cuda.Event(enable_timing=True); e1 = torch.cuda.Event(enable_timing=True)
    e0.record(); f(); e1.record(); torch.cuda.synchronize(); ts.append(e0.elapsed_time(e1) * 1000)
ts.sort()
print(f"mamba_chunk_scan_combined f32 b8 L2048 h80 p64 N128: median {ts[len(ts)//2]:.1f} us (min {ts[0]:.1f})")
# f64 reference for batch 0 (chunked quadratic form, all f64)
def ref(i):
    xd, dtd, Ad, Bd, Cd, Dd, bd = [t.double() for t in (x[i:i+1], dt[i:i+1], A, B[i:i+1], C[i:i+1], D, bias)]
    dts = torch.nn.functional.softplus(dtd + bd)                     # (1, L, h)
    a = dts * Ad                                                      # (1, L, h)
    Bh = Bd.expand(1, L, h, n) if g == 1 else Bd.repeat_interleave(h // g, 2)
    Chh = Cd.expand(1, L, h, n) if g == 1 else Cd.repeat_interleave(h // g, 2)
    out = torch.empty(1, L, h, p, dtype=torch.float64, device=dev)
    S = torch.zeros(1, h, p, n, dtype=torch.float64, device=dev)
    for c0 in range(0, L, cs):
        sl = slice(c0, c0 + cs)
        cum = torch.cumsum(a[:, sl], 1)                               # (1, q, h)
        seg = cum[:, :, None, :] - cum[:, None, :, :]                 # (1, t, s, h)
        q = cum.shape[1]
        mask = torch.tril(torch.ones(q, q, dtype=torch.bool, device=dev))[None, :, :, None]
        Lm = torch.where(mask, torch.exp(seg.clamp(max=0)), torch.zeros((), dtype=torch.float64, device=dev))
        G = torch.einsum("bthn,bshn->btsh", Chh[:, sl], Bh[:, sl])
        M = G * Lm * dts[:, sl][:, None, :, :]
        y = torch.einsum("btsh,bshp->bthp", M, xd[:, sl])
        y += torch.einsum("bthn,bhpn->bthp", Chh[:, sl] * torch.exp(cum)[..., None], S)
        out[:, sl] = y + Dd[None, None, :, None] * xd[:, sl]
        w = torch.exp(cum[:, -1:, :] - cum) * dts[:, sl]                # (1, q, h)
        S = S * torch.exp(cum[:, -1, :])[:, :, None, None] + torch.einsum("bshn,bshp->bhpn", Bh[:, sl] * w[..., None], xd[:, sl])
    return out
def naive(i, Lp, hs):
    # the plain recurrence (SPEC 2) in f64 over the first Lp steps of heads hs
    dts = torch.nn.functional.softplus(dt[i, :Lp, hs].double() + bias[hs].double())   # (Lp, H)
    S = torch.zeros(len(hs), p, n, dtype=torch.float64, device=dev)
    out = torch.empty(Lp, len(hs), p, dtype=torch.float64, device=dev)
    for t in range(Lp):
        a = torch.exp(dts[t] * A[hs].double())
        Bt = B[i, t, 0].double(); Ct = C[i, t, 0].double()
        S = S * a[:, None, None] + (dts[t][:, None] * x[i, t, hs].double())[:, :, None] * Bt[None, None, :]
        out[t] = S @ Ct + D[hs].double()[:, None] * x[i, t, hs].double()
    return out
for i in (0,):
    r = ref(i)
    if i == 0:
        hs = [0, 41]
        nv = naive(i, 300, hs)
        print(f"f64 reference against the plain recurrence (300 steps, 2 heads): {((r[0, :300, hs] - nv).norm() / nv.norm()).item():.3e}")
    err = ((y[i:i+1].double() - r).norm() / r.norm()).item()
    print(f"rel-L2 error of batch {i} against f64: {err:.3e}")
