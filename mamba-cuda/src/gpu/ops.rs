//! SPEC 1-5 on device tensors: check the descriptors, pick a launch shape, launch.

use mamba_core::abi::{
    activation, dtype, Conv1dDesc, ConvUpdateDesc, SelectiveScanDesc, SsdDesc, StateUpdateDesc,
    TensorDesc,
};

use std::sync::OnceLock;

use super::lm1::{try_lm1, Lm1Call};
use super::params::{
    ssd_rev_b, ConvParams, ConvUpdateParams, Scan1Params, SsdAxis, SsdParams, StateUpdateParams,
};
use super::{gpu, Func, Gpu};
use crate::{PErr, PResult};

/// The kernel-name suffix of an activation dtype.
pub(crate) fn suffix(code: u32, op: &str) -> PResult<&'static str> {
    match code {
        dtype::F32 => Ok("f32"),
        dtype::BF16 => Ok("bf16"),
        dtype::F16 => Ok("f16"),
        other => Err(PErr::invalid(format!(
            "{op}: activations must be f32, bf16 or f16, got {}",
            dtype::name(other)
        ))),
    }
}

fn dims_str(d: &[u64]) -> String {
    format!("{d:?}")
}

/// `t` is present, of `dt`, with shape `dims`.
pub(crate) fn req(op: &str, name: &str, t: &TensorDesc, dt: u32, dims: &[u64]) -> PResult<()> {
    if t.is_none() {
        return Err(PErr::invalid(format!("{op}: `{name}` is required")));
    }
    if t.dtype != dt {
        return Err(PErr::invalid(format!(
            "{op}: `{name}` must be {}, got {}",
            dtype::name(dt),
            dtype::name(t.dtype)
        )));
    }
    if t.shape() != dims {
        return Err(PErr::invalid(format!(
            "{op}: `{name}` has shape {}, expected {}",
            dims_str(t.shape()),
            dims_str(dims)
        )));
    }
    Ok(())
}

pub(crate) fn opt(op: &str, name: &str, t: &TensorDesc, dt: u32, dims: &[u64]) -> PResult<()> {
    if t.is_none() {
        Ok(())
    } else {
        req(op, name, t, dt, dims)
    }
}

pub(crate) fn dense(op: &str, name: &str, t: &TensorDesc) -> PResult<()> {
    if !t.is_none() && !t.is_dense() {
        return Err(PErr::unsupported(format!(
            "{op}: `{name}` must be dense row-major (strides {:?} for shape {:?})",
            &t.strides[..t.rank as usize],
            t.shape()
        )));
    }
    Ok(())
}

/// The bytes `t`'s elements may touch, `[lo, hi)` (its strides may be negative); empty for
/// an absent tensor or one without elements.
pub(crate) fn byte_span(t: &TensorDesc) -> (u64, u64) {
    let r = t.rank as usize;
    if t.is_none() || t.dims[..r].contains(&0) {
        return (0, 0);
    }
    let es = dtype::size(t.dtype) as i128;
    let (mut lo, mut hi) = (0i128, 0i128);
    for i in 0..r {
        let e = (t.dims[i] as i128 - 1) * t.strides[i] as i128;
        if e < 0 {
            lo += e;
        } else {
            hi += e;
        }
    }
    let base = t.ptr as i128;
    let clamp = |v: i128| v.clamp(0, u64::MAX as i128) as u64;
    (clamp(base + lo * es), clamp(base + (hi + 1) * es))
}

/// Whether the spans ([`byte_span`]) of two tensors intersect.
pub(crate) fn spans_meet(a: &TensorDesc, b: &TensorDesc) -> bool {
    let ((a0, a1), (b0, b1)) = (byte_span(a), byte_span(b));
    a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1
}

/// The innermost `k` dimensions of `t` are dense (row-major among themselves).
pub(crate) fn inner_dense(op: &str, name: &str, t: &TensorDesc, k: usize) -> PResult<()> {
    if t.is_none() {
        return Ok(());
    }
    let r = t.rank as usize;
    let mut stride = 1i64;
    for i in (r - k..r).rev() {
        if t.dims[i] > 1 && t.strides[i] != stride {
            return Err(PErr::unsupported(format!(
                "{op}: the last {k} dimensions of `{name}` must be dense (strides {:?} for shape {:?})",
                &t.strides[..r],
                t.shape()
            )));
        }
        stride *= t.dims[i] as i64;
    }
    Ok(())
}

fn ptr(t: &TensorDesc) -> u64 {
    t.ptr
}

/// Whether the launch-shape overrides (`MAMBA_CUDA_*` variables) are read on every call:
/// only when one was set when the plugin first looked (or `MAMBA_CUDA_ENV_LIVE=1`, which the
/// tests set because they change overrides at run time). Otherwise a call reads no
/// environment (each read takes the environment lock, a scan and an allocation).
pub(crate) fn env_live() -> bool {
    static LIVE: OnceLock<bool> = OnceLock::new();
    *LIVE.get_or_init(|| {
        std::env::vars_os().any(|(k, _)| {
            k.to_str()
                .is_some_and(|k| k.starts_with("MAMBA_CUDA_") && k != "MAMBA_CUDA_PLUGIN")
        })
    })
}

/// A launch-shape override (see [`env_live`]).
pub(crate) fn env_str(name: &str) -> Option<String> {
    if env_live() {
        std::env::var(name).ok()
    } else {
        None
    }
}

pub(crate) fn env_usize(name: &str) -> Option<usize> {
    env_str(name)?.parse().ok()
}

/// An on / off override (see [`env_live`]): `0` off, `1` on, unset (or anything else) the
/// default.
pub(crate) fn env_switch(name: &str, default: bool) -> bool {
    match env_str(name).as_deref() {
        Some("0") => false,
        Some("1") => true,
        _ => default,
    }
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

// ---------------------------------------------------------------- SPEC 1

pub(crate) fn bc_groups(
    op: &str,
    name: &str,
    t: &TensorDesc,
    act: u32,
    b: u64,
    d: u64,
    n: u64,
    l: u64,
) -> PResult<i32> {
    match t.rank {
        2 => {
            req(op, name, t, act, &[d, n])?;
            Ok(0)
        }
        3 => {
            req(op, name, t, act, &[b, n, l])?;
            Ok(1)
        }
        4 => {
            let g = t.dims[1];
            req(op, name, t, act, &[b, g, n, l])?;
            if g == 0 || !d.is_multiple_of(g) {
                return Err(PErr::invalid(format!(
                    "{op}: channels d = {d} not divisible by groups of `{name}` = {g}"
                )));
            }
            Ok(g as i32)
        }
        _ => Err(PErr::invalid(format!(
            "{op}: `{name}` must be (d, N), (b, N, L) or (b, g, N, L), got shape {:?}",
            t.shape()
        ))),
    }
}

/// The Mamba-1 forward kernels: 0 `scan1_fwd`, 1 `scan1_states`, 2 `scan1_fused`, 3
/// `scan1_par`, 4 `scan1_combine`, 5 `scan1_tp`.
const SCAN1_KINDS: [&str; 6] = ["fwd", "states", "fused", "par", "combine", "tp"];
const SCAN1_FUNCS: usize = SCAN1_KINDS.len() * 3 * 5 * 2;

/// A Mamba-1 forward kernel, looked up once (a per-call lookup formats its name and takes
/// a lock): `kind` indexes [`SCAN1_KINDS`], `act` the storage type (f32, bf16, f16),
/// `s` the states per thread (1..16; the `_t8` steps per lane for `par`, whose `lite` is
/// its f32 `_v0` form).
fn scan1_func(g: &Gpu, kind: usize, act: usize, s: usize, lite: bool) -> PResult<Func> {
    static FUNCS: [OnceLock<Func>; SCAN1_FUNCS] = [const { OnceLock::new() }; SCAN1_FUNCS];
    let si = s.trailing_zeros() as usize;
    let slot = &FUNCS[((kind * 3 + act) * 5 + si.min(4)) * 2 + lite as usize];
    if let Some(f) = slot.get() {
        return Ok(*f);
    }
    let sfx = ["f32", "bf16", "f16"][act];
    let name = match (kind, lite) {
        (3, v0) => format!("scan1_par_{sfx}_t{s}{}", if v0 { "_v0" } else { "" }),
        (4, _) => "scan1_combine".to_string(),
        (5, _) => format!("scan1_tp_{sfx}_s{s}"),
        (_, lite) => format!(
            "scan1_{}_{sfx}_s{s}{}",
            SCAN1_KINDS[kind],
            if lite { "_lite" } else { "" }
        ),
    };
    let f = g.func(&name)?;
    Ok(*slot.get_or_init(|| f))
}

/// Steps per lane of `scan1_par` (its chunk is 8 lanes x PAR_PT steps).
const PAR_PT: usize = 8;
/// The sequence lengths where `scan1_par` is the default for few rows (H200, seed shape,
/// NOTES.md v11: under one chunk the single pass is faster (L1: 10 vs 14.5 us); it is ahead
/// of the split forms at L100-300 (17.4 vs 23.9, 29.2 vs 31.5, 34.8 vs 39.1 us), level at
/// L400 and behind at L800 (68-72 vs 62-65 us).
const PAR_MIN_L: usize = 64;
const PAR_MAX_L: usize = 384;

/// Shared memory of `scan1_tp` in bytes (kernels/scan1.cu, `tp_smem_floats`; S = 4).
fn scan1_tp_smem(g: usize, cb: usize) -> usize {
    let r4 = |v: usize| (v + 3) & !3;
    4 * (4 * r4(cb * 33) + 2 * 32 * (g * 4 + 4) + 2 * 4 * cb * g * 4 + r4(cb * g * 33) + cb * g * 4)
}

/// Shared memory of `scan1_par` in bytes (kernels/scan1.cu, `par_smem_floats`).
fn scan1_par_smem(n: usize, cpb: usize, nsg: usize) -> usize {
    let ch = 8 * PAR_PT;
    4 * (4 * n * ch + 8 * cpb * (ch + 1) + 2 * nsg * cpb * (ch + 1) + 2 * cpb * n + cpb)
}

pub(crate) fn selective_scan(p: &SelectiveScanDesc, stream: u64) -> PResult<()> {
    selective_scan_with(p, None, stream)
}

/// The checked dimensions of a SPEC 1 call: (b, d, L, N), the B / C groups (0: time-
/// invariant) and the storage type's index (0 f32, 1 bf16, 2 f16).
struct Scan1Dims {
    b: usize,
    d: usize,
    l: usize,
    n: usize,
    bg: i32,
    cg: i32,
    ai: usize,
}

/// `need_out`: `out` must be present (a forward; the backward's descriptor leaves it out).
fn check_scan1(p: &SelectiveScanDesc, op: &'static str, need_out: bool) -> PResult<Scan1Dims> {
    let act = p.u.dtype;
    suffix(act, op)?;
    let ai = match act {
        dtype::F32 => 0,
        dtype::BF16 => 1,
        _ => 2,
    };
    if p.u.rank != 3 {
        return Err(PErr::invalid(format!(
            "{op}: `u` must be (b, d, L), got {:?}",
            p.u.shape()
        )));
    }
    let (b, d, l) = (p.u.dims[0], p.u.dims[1], p.u.dims[2]);
    if p.a.rank != 2 {
        return Err(PErr::invalid(format!(
            "{op}: `A` must be (d, N), got {:?}",
            p.a.shape()
        )));
    }
    let n = p.a.dims[1];
    req(op, "u", &p.u, act, &[b, d, l])?;
    req(op, "delta", &p.delta, act, &[b, d, l])?;
    req(op, "A", &p.a, dtype::F32, &[d, n])?;
    let bg = bc_groups(op, "B", &p.b, act, b, d, n, l)?;
    let cg = bc_groups(op, "C", &p.c, act, b, d, n, l)?;
    opt(op, "D", &p.d, dtype::F32, &[d])?;
    opt(op, "z", &p.z, act, &[b, d, l])?;
    opt(op, "delta_bias", &p.delta_bias, dtype::F32, &[d])?;
    opt(
        op,
        "initial_state",
        &p.initial_state,
        dtype::F32,
        &[b, d, n],
    )?;
    if need_out {
        req(op, "out", &p.out, act, &[b, d, l])?;
    } else {
        opt(op, "out", &p.out, act, &[b, d, l])?;
    }
    opt(op, "last_state", &p.last_state, dtype::F32, &[b, d, n])?;
    for (name, t) in [
        ("u", &p.u),
        ("delta", &p.delta),
        ("A", &p.a),
        ("B", &p.b),
        ("C", &p.c),
        ("D", &p.d),
        ("z", &p.z),
        ("delta_bias", &p.delta_bias),
        ("initial_state", &p.initial_state),
        ("out", &p.out),
        ("last_state", &p.last_state),
    ] {
        dense(op, name, t)?;
    }
    if b == 0 || d == 0 || l == 0 || n == 0 {
        return Err(PErr::invalid(format!(
            "{op}: zero dimension in b={b}, d={d}, L={l}, N={n}"
        )));
    }
    Ok(Scan1Dims {
        b: b as usize,
        d: d as usize,
        l: l as usize,
        n: n as usize,
        bg,
        cg,
        ai,
    })
}

/// The bytes of saved checkpoints that `selective_scan_forward_saving` writes for this call
/// and `selective_scan_backward_saved` reads (`lm1_fwd_*_w6ck` / `_w9ck` forward,
/// `bwdlm_*_q4pbs` backward: (b, ceil(L / 8), d, 16) f32, the state before every eighth
/// step), or 0 where the call has no saving form (the backward then recomputes the states
/// itself). Where: B and C varying in time, N <= 16, any L, f32 from 60 channels per SM,
/// bf16 and f16 from 30 (where the backward takes `bwdlm_*` at all: `q4pbs` replaces `w8`
/// there). `MAMBA_CUDA_SAVED=1` extends it to every
/// call with B / C varying and N <= 16 (any type, any size: the tests), `=0` turns it off.
/// Never where the checkpoints would hold 2^32 floats or more (the saving forward's 32-bit
/// offsets).
///
/// Until the twenty-second session the default was L >= 1024 and more than 64 channels per
/// SM in both types (where it had been measured: b8 d2048 L2048). Forward + backward on the
/// H200, d2048 N16, the default pair against the saving pair (`MAMBA_CUDA_SAVED=1`), us:
///
/// | shape | L128 | L256 | L512 | L1000 | L2048 |
/// |---|---|---|---|---|---|
/// | b8 f32 (124 ch/SM) | 204 / 119 | 350 / 211 | 674 / 389 | 1335 / 758 | 1606 / 1439 |
/// | b8 bf16 | 208 / 104 | 349 / 179 | 693 / 329 | 1358 / 602 | 1425 / 1210 |
/// | b2 bf16 (31 ch/SM) | 113 / 74 | 164 / 107 | 307 / 190 | 554 / 349 | 749 / 684 |
/// | b2 f32 | 76 / 76 | 114 / 117 | 211 / 211 | 400 / 396 | 762 / 752 |
/// | b4 f32 (62 ch/SM) | 146 / 85 | | 378 / 268 | | |
///
/// b2 f32 is level, so f32 starts at 60 channels per SM. Shorter, b8: L32 / L64 f32 72 / 111
/// against 53 / 75, bf16 71 / 112 against 51 / 67. The twenty-second session's bound L >= 32
/// and f16 (off) were untimed; the twenty-third session timed them (H200, b8 d2048, default
/// against `MAMBA_CUDA_SAVED=1`): L1 / 4 / 8 / 16 / 24 f32 42 / 43 / 42 / 47 / 54 against 43
/// / 37 / 40 / 42 / 44, bf16 59 / 51 / 57 / 48 / 66 against 40 / 41 / 38 / 41 / 54; f16 b8
/// L512 / 2048 700 / 2728 against 349 / 1297, b2 L2048 1095 against 700.
fn saved_bytes_of(g: &Gpu, x: &Scan1Dims) -> usize {
    if x.bg <= 0 || x.cg <= 0 || x.n > 16 {
        return 0;
    }
    let sms = g.sm_count.max(1) as usize;
    let on = match env_str("MAMBA_CUDA_SAVED").as_deref() {
        Some("0") => false,
        Some("1") => true,
        _ => {
            x.b * x.d
                >= match x.ai {
                    0 => 60,
                    _ => 30,
                } * sms
        }
    };
    // The saving forward addresses the checkpoints by 32-bit element offsets: beyond 2^32
    // floats (16 GiB) the plain pair runs (no saving form).
    let floats = x.b * x.d * x.l.div_ceil(8) * 16;
    if on && floats < (1usize << 32) {
        floats * 4
    } else {
        0
    }
}

/// `selective_scan_saved_bytes`: see [`saved_bytes_of`].
pub(crate) fn selective_scan_saved_bytes(p: &SelectiveScanDesc) -> PResult<usize> {
    let g = gpu()?;
    let x = check_scan1(p, "selective_scan_saved_bytes", false)?;
    Ok(saved_bytes_of(g, &x))
}

/// Checks a caller's saved buffer against the call: `bytes` must be what
/// `selective_scan_saved_bytes` gives (0: none) and the pointer 16-byte aligned.
pub(crate) fn check_saved(
    p: &SelectiveScanDesc,
    saved: u64,
    bytes: usize,
    op: &'static str,
) -> PResult<usize> {
    if bytes == 0 {
        return Ok(0);
    }
    let g = gpu()?;
    let x = check_scan1(p, op, false)?;
    let want = saved_bytes_of(g, &x);
    if want != bytes {
        return Err(PErr::invalid(format!(
            "{op}: the saved buffer has {bytes} bytes, this call's is {want} \
             (selective_scan_saved_bytes; 0 where the call saves nothing)"
        )));
    }
    if saved == 0 || !saved.is_multiple_of(16) {
        return Err(PErr::invalid(format!(
            "{op}: the saved buffer must be a non-null 16-byte aligned device pointer, got {saved:#x}"
        )));
    }
    Ok(bytes)
}

/// `selective_scan_forward_saving`: the forward, and where the call has a saving form
/// (`bytes` > 0) the checkpoints for its backward into `saved`.
pub(crate) fn selective_scan_forward_saving(
    p: &SelectiveScanDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> PResult<()> {
    if check_saved(p, saved, bytes, "selective_scan_forward_saving")? == 0 {
        return selective_scan_with(p, None, stream);
    }
    selective_scan_with(p, Some(saved), stream)
}

fn selective_scan_with(p: &SelectiveScanDesc, saved: Option<u64>, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "selective_scan";
    if super::seed1::diag() == 2 {
        return Ok(());
    }
    let Scan1Dims {
        b,
        d,
        l,
        n,
        bg,
        cg,
        ai,
    } = check_scan1(p, OP, true)?;
    let act = p.u.dtype;
    // States per thread: enough threads to fill the device, at most 512 per channel.
    // States per thread: 4 measured best on the H200 at both benchmark shapes (NOTES.md).
    let s = match env_usize("MAMBA_CUDA_SCAN1_S") {
        Some(s) if [1, 2, 4, 8, 16].contains(&s) => s,
        _ => 4,
    };
    let s = s.max(n.div_ceil(256));
    if s > 16 {
        return Err(PErr::unsupported(format!(
            "{OP}: N = {n} is larger than 4096"
        )));
    }
    let gthreads = n.div_ceil(s);
    let gsize = |groups: i32| if groups == 0 { d } else { d / groups as usize };
    let seg = gcd(gsize(bg), gsize(cg));
    let cb = (env_usize("MAMBA_CUDA_SCAN1_CB").unwrap_or(256) / gthreads)
        .clamp(1, seg)
        .min(256 / gthreads)
        .max(1);
    let blocks_per_seg = seg.div_ceil(cb);
    let nseg = d / seg;
    let np = gthreads * s;
    let round4 = |v: usize| (v + 3) & !3;
    let smem_bytes = 4 * (4 * round4(cb * 33) + 2 * 32 * (np + 4) + round4(cb * gthreads * 33));
    // Few rows for a long sequence: split time in chunks (states pass, then outputs).
    // Split when the grid has fewer than ~8 warps per SM (the split costs a second pass).
    let warps = nseg * blocks_per_seg * b * (cb * gthreads).div_ceil(32);
    let sms = g.sm_count as usize;
    let mut nchunks = match env_usize("MAMBA_CUDA_SCAN1_CHUNKS") {
        Some(k) if k >= 1 => k,
        _ if warps < 8 * sms && l >= 64 => (32 * sms).div_ceil(warps).min(l / 32).max(1),
        _ => 1,
    };
    let chunk_len = if nchunks <= 1 {
        l
    } else {
        ((l / nchunks + 16) / 32).max(1) * 32
    };
    nchunks = l.div_ceil(chunk_len);
    // Several forms read the initial state in many blocks of one launch while others write
    // the last state, so the two must not share memory (abi.rs).
    if !p.last_state.is_none() && !p.initial_state.is_none() {
        let bytes = (b * d * n * 4) as u64;
        let (i0, l0) = (p.initial_state.ptr, p.last_state.ptr);
        if i0 < l0 + bytes && l0 < i0 + bytes {
            return Err(PErr::invalid(format!(
                "{OP}: `last_state` must not alias `initial_state`"
            )));
        }
    }
    let mut params = Scan1Params {
        u: ptr(&p.u),
        delta: ptr(&p.delta),
        a: ptr(&p.a),
        b: ptr(&p.b),
        c: ptr(&p.c),
        d: ptr(&p.d),
        z: ptr(&p.z),
        delta_bias: ptr(&p.delta_bias),
        h0: ptr(&p.initial_state),
        out: ptr(&p.out),
        hlast: ptr(&p.last_state),
        chunk_states: 0,
        chunk_dtsum: 0,
        chunk_incl: 0,
        flags: 0,
        batch: b as i32,
        dim: d as i32,
        seqlen: l as i32,
        dstate: n as i32,
        b_groups: bg,
        c_groups: cg,
        softplus: (p.delta_softplus != 0) as i32,
        seg: seg as i32,
        cb: cb as i32,
        g: gthreads as i32,
        blocks_per_seg: blocks_per_seg as i32,
        async_copy: 0,
        nchunks: nchunks as i32,
        chunk_len: chunk_len as i32,
        flag_base: 0,
        reserved: 0,
    };
    // Many channels, N <= 16, B and C varying in time (the language-model shape): one
    // thread (or two) per channel with every state in registers, loads ahead of the
    // exponentials (lm1.rs; MAMBA_CUDA_SCAN1_LM=1 / 0 forces it on / off).
    let lm = Lm1Call {
        act: ai,
        b,
        d,
        l,
        n,
        b_groups: bg,
        c_groups: cg,
        seg,
    };
    if let Some(ck) = saved {
        // The training forward: the `_w` kernel that writes the checkpoints (lm1.rs).
        return super::lm1::launch_saving(g, &params, &lm, ck, stream);
    }
    if try_lm1(g, &params, &lm, stream)? {
        return Ok(());
    }
    // Few channels, N <= 64, B and C varying: one pass with small blocks (seed1.rs,
    // `MAMBA_CUDA_S1S`).
    if super::seed1::wanted(g, &params, ai) {
        return super::seed1::launch(g, params, ai, stream);
    }
    // The seed shapes: one launch, one exponential per (state, step), no chain across
    // chunks (seed.rs, `MAMBA_CUDA_SEED`).
    if super::seed::scan1_wanted(g, &params) {
        return super::seed::scan1_launch(g, params, suffix(act, OP)?, stream);
    }
    // Few rows (under ~8 warps per SM in the forms above, which then split time and run
    // steps twice): the parallel-in-time form (`scan1_par`), one launch, one exponential
    // per (state, step), no scratch. It needs B and C both varying in time.
    // MAMBA_CUDA_SCAN1_PAR=1 / 0 forces it on / off; MAMBA_CUDA_SCAN1_PAR_CQ (channel
    // quads per block) and MAMBA_CUDA_SCAN1_PAR_NSG (warps splitting N) set its shape.
    let par = bg > 0
        && cg > 0
        && match env_str("MAMBA_CUDA_SCAN1_PAR").as_deref() {
            Some("1") => true,
            Some("0") => false,
            _ => warps < 8 * sms && (PAR_MIN_L..=PAR_MAX_L).contains(&l),
        };
    // The single-pass layout with each 32-step tile split in 4 time segments run at once
    // (`scan1_tp`): MAMBA_CUDA_SCAN1_TP=1 turns it on (it takes precedence over
    // `scan1_par`); MAMBA_CUDA_SCAN1_TP_CB sets its channels per block.
    // It measured slower everywhere (NOTES.md v11), so it is never the default.
    let tp = bg > 0 && cg > 0 && env_str("MAMBA_CUDA_SCAN1_TP").as_deref() == Some("1");
    if tp {
        let gt = n.div_ceil(4);
        let max_cb = (128 / gt).max(1);
        let cbt = env_usize("MAMBA_CUDA_SCAN1_TP_CB")
            .unwrap_or(2)
            .clamp(1, max_cb);
        let smem = scan1_tp_smem(gt, cbt);
        if 4 * cbt * gt <= 512 && smem <= g.max_smem() {
            let bps = seg.div_ceil(cbt);
            params.cb = cbt as i32;
            params.g = gt as i32;
            params.blocks_per_seg = bps as i32;
            params.nchunks = 1;
            params.chunk_len = l as i32;
            let f = scan1_func(g, 5, ai, 4, false)?;
            let grid = ((nseg * bps) as u32, b as u32, 1);
            let threads = (4 * cbt * gt).div_ceil(32) as u32 * 32;
            return g.launch(f, grid, threads, smem, stream, &params);
        }
    }
    if par {
        let cq = env_usize("MAMBA_CUDA_SCAN1_PAR_CQ")
            .unwrap_or(1)
            .clamp(1, 4);
        let mut nsg = env_usize("MAMBA_CUDA_SCAN1_PAR_NSG")
            .unwrap_or(8)
            .clamp(2, 16)
            .min(n.max(2));
        while cq * nsg > 16 {
            nsg -= 1;
        }
        let cpb = 4 * cq;
        let smem = scan1_par_smem(n, cpb, nsg);
        if smem <= g.max_smem() {
            let bps = seg.div_ceil(cpb);
            params.cb = cpb as i32;
            params.g = nsg as i32;
            params.blocks_per_seg = bps as i32;
            params.nchunks = 1;
            params.chunk_len = l as i32;
            // MAMBA_CUDA_SCAN1_PAR_V=0 (f32): the form with one state at a time.
            let v0 = ai == 0 && env_str("MAMBA_CUDA_SCAN1_PAR_V").as_deref() == Some("0");
            let f = scan1_func(g, 3, ai, PAR_PT, v0)?;
            let grid = ((nseg * bps) as u32, b as u32, 1);
            return g.launch(f, grid, (32 * cq * nsg) as u32, smem, stream, &params);
        }
    }
    let threads = (cb * gthreads).div_ceil(32) as u32 * 32;
    let grid = ((nseg * blocks_per_seg) as u32, b as u32, nchunks as u32);
    // A split run goes in one launch (MODE 2: chained chunks with a decoupled look-back,
    // scan1.cu) when its blocks fill at most two waves of resident blocks, else in three
    // launches (chunk-local states, state passing, outputs): with more waves the chained
    // blocks wait on one another wave after wave, and the three launches measured faster
    // on the H200 (NOTES.md, v10: the one launch ahead at 0.7 and 1.3 waves, level or
    // behind at 2.4). MAMBA_CUDA_SCAN1_FUSED=1 / 0 forces either.
    let fused = nchunks > 1
        && match env_str("MAMBA_CUDA_SCAN1_FUSED").as_deref() {
            Some("1") => true,
            Some("0") => false,
            _ => {
                let ff = scan1_func(g, 2, ai, s, false)?;
                let resident = g.blocks_per_sm(ff, threads, smem_bytes + 16)? as usize * sms;
                grid.0 as usize * grid.1 as usize * nchunks <= 2 * resident
            }
        };
    // The lighter variant (less unrolling, three blocks per SM) exists for S = 2 and 4; it
    // measured faster on the three-launch split (short, latency-bound) runs and slower on
    // long ones and on the one-launch split.
    let lite = match env_str("MAMBA_CUDA_SCAN1_LITE").as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => nchunks > 1 && !fused,
    } && (s == 2 || s == 4);
    if nchunks == 1 {
        let f = scan1_func(g, 0, ai, s, lite)?;
        return g.launch(f, grid, threads, smem_bytes, stream, &params);
    }
    let states_bytes = b * d * nchunks * n * 4;
    let dtsum_bytes = b * d * nchunks * 4;
    if fused {
        // Flags: the block ticket, then one per (chunk, block row). Data: local states,
        // dt sums, outgoing states.
        let nflags = 1 + nchunks * (grid.0 * grid.1) as usize;
        let ff = scan1_func(g, 2, ai, s, lite)?;
        return g.with_chain_scratch(
            nflags,
            2 * states_bytes + dtsum_bytes,
            stream,
            |flags, data, base| {
                params.flags = flags;
                params.chunk_states = data;
                params.chunk_dtsum = data + states_bytes as u64;
                params.chunk_incl = params.chunk_dtsum + dtsum_bytes as u64;
                params.flag_base = base;
                // Two more ints (the ticket, the look-back's answer) after the tiles.
                g.launch(ff, grid, threads, smem_bytes + 16, stream, &params)
            },
        );
    }
    let scratch = g.alloc_async(states_bytes + dtsum_bytes, stream)?;
    params.chunk_states = scratch;
    params.chunk_dtsum = scratch + states_bytes as u64;
    let run = || -> PResult<()> {
        let f = scan1_func(g, 0, ai, s, lite)?;
        let f1 = scan1_func(g, 1, ai, s, lite)?;
        g.launch(f1, grid, threads, smem_bytes, stream, &params)?;
        let fc = scan1_func(g, 4, 0, 1, false)?;
        let total = b * d * n;
        g.launch(
            fc,
            (total.div_ceil(256).min(65535) as u32, 1, 1),
            256,
            0,
            stream,
            &params,
        )?;
        g.launch(f, grid, threads, smem_bytes, stream, &params)
    };
    let r = run();
    let fr = g.free_async(scratch, stream);
    r.and(fr)
}

// ---------------------------------------------------------------- SPEC 2

/// The SSD launch shape: register tile, rows per block, time chunks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SsdShape {
    qr: usize,
    nr: usize,
    qb: usize,
    nchunks: usize,
    chunk_len: usize,
    gth: usize,
}

fn ssd_shape(
    g: &Gpu,
    es: usize,
    batch: usize,
    seqlen: usize,
    nheads: usize,
    headdim: usize,
    dstate: usize,
) -> PResult<SsdShape> {
    let large = batch * nheads * headdim * dstate >= 1 << 20;
    let (mut qr, mut nr) = match env_str("MAMBA_CUDA_SSD_TILE").as_deref() {
        Some("q1n4") => (1, 4),
        Some("q2n8") => (2, 8),
        Some("q4n8") => (4, 8),
        Some("q4n16") => (4, 16),
        // Large problems: the bigger tile (fewer shuffles per element); small ones: more
        // threads per state (measured on the H200, NOTES.md).
        _ if dstate >= 64 && headdim >= 4 && large && es == 2 => (4, 16),
        _ if dstate >= 32 && headdim >= 4 && large => (4, 8),
        _ if dstate >= 32 && headdim >= 4 => (2, 8),
        _ if dstate >= 16 && headdim >= 2 => (2, 8),
        _ => (1, 4),
    };
    // G threads share a row's N states; they reduce with warp shuffles, so G is a power
    // of two of at most 32.
    if dstate.div_ceil(nr).next_power_of_two() > 32 {
        (qr, nr) = (4, 16);
    }
    let gth = dstate.div_ceil(nr).next_power_of_two();
    if gth > 32 {
        return Err(PErr::unsupported(format!(
            "ssd: N = {dstate} is larger than 512"
        )));
    }
    let mut qb = env_usize("MAMBA_CUDA_SSD_QB").unwrap_or(64).max(qr);
    qb = qb.min(headdim.div_ceil(qr) * qr);
    qb = qb.div_ceil(qr) * qr;
    while qb > qr && (qb / qr) * gth > 256 {
        qb -= qr;
    }
    // Split when the grid has fewer than ~16 warps per SM.
    let warps = batch * nheads * headdim.div_ceil(qb) * ((qb / qr) * gth).div_ceil(32);
    let sms = g.sm_count as usize;
    let mut nchunks = match env_usize("MAMBA_CUDA_SSD_CHUNKS") {
        Some(k) if k >= 1 => k,
        _ if warps < 16 * sms && seqlen >= 64 => (32 * sms).div_ceil(warps).min(seqlen / 32).max(1),
        _ => 1,
    };
    // Chunks of whole tiles: round the length to the nearest multiple of 32.
    let chunk_len = if nchunks <= 1 {
        seqlen
    } else {
        ((seqlen / nchunks + 16) / 32).max(1) * 32
    };
    nchunks = seqlen.div_ceil(chunk_len);
    Ok(SsdShape {
        qr,
        nr,
        qb,
        nchunks,
        chunk_len,
        gth,
    })
}

fn ssd_smem(shape: &SsdShape, mode: i32, es: usize) -> usize {
    let a16 = |v: usize| v.div_ceil(16) * 16;
    let npad = shape.gth * shape.nr + 16 / es;
    let xbytes = a16(32 * shape.qb * es);
    let bbytes = a16(32 * npad * es);
    let stage = xbytes + bbytes * if mode == 0 { 2 } else { 1 };
    6 * 32 * 4 + 16 + 2 * stage + if mode == 0 { 32 * shape.qb * 4 } else { 0 }
}

/// The rows the SSD stages (x, B, C) can be copied with 4-byte async copies: every row
/// starts and ends on a 4-byte boundary.
fn ssd_async_ok(prm: &SsdParams, es: usize, qb: usize) -> bool {
    if es == 4 {
        return true;
    }
    let even = |v: i64| v % 2 == 0;
    [prm.x, prm.b, prm.c].iter().all(|p| p % 4 == 0)
        && [prm.x_sb, prm.x_st, prm.b_sb, prm.b_st, prm.c_sb, prm.c_st]
            .iter()
            .all(|&s| even(s))
        && even(prm.headdim as i64)
        && even(prm.dstate as i64)
        && even(qb as i64)
}

/// Shared memory of the chunked SSD kernel: mirrors `ssdc_layout` in kernels/ssd_chunk.cu.
fn ssdc_smem(es: usize, q: usize, pb: usize, n: usize) -> usize {
    let a128 = |v: usize| v.div_ceil(128) * 128;
    let pad = 16 / es;
    let (ldn, ldp, ldq, ldcb, ldy, lds) = (n + pad, pb + pad, q + pad, q + 4, pb + 4, n + 4);
    let mut o = a128(q * 20 + 16);
    o += 2 * (a128(q * ldp * es) + 2 * a128(q * ldn * es));
    o += a128(4 * (q * ldcb).max(q * ldy));
    o += a128(q * ldq * es);
    o += a128(4 * pb * lds);
    if es != 4 {
        o += a128(pb * ldn * es);
    }
    o + a128(q * ldp * es)
}

/// Shared memory of the mma.sync chunked SSD kernel: mirrors `ssdm_layout` (mode 0: the
/// one-pass kernel, two stage buffers; 1: `ssd3_states`, one buffer without C and no
/// state buffer; 2: `ssd3_out`, one buffer).
fn ssdm_smem(es: usize, q: usize, pb: usize, n: usize, mode: usize) -> usize {
    let a128 = |v: usize| v.div_ceil(128) * 128;
    let pad = 16 / es;
    let (ldn, ldp) = (n + pad, pb + pad);
    let xb = a128(q * ldp * es) + a128(q * ldn * es);
    match mode {
        0 => a128(q * 20 + 16) + 2 * (xb + a128(q * ldn * es)) + a128(pb * ldn * es),
        1 => a128(q * 20 + 16) + xb,
        _ => a128(q * 20 + 16) + xb + a128(q * ldn * es) + a128(pb * ldn * es),
    }
}

/// Shared memory of the `ssdl` kernels: mirrors `ssdl_layout` (kind 0: `ssdl_states`,
/// 1: `ssdl_out`, 2: `ssdl_cb`, 3: `ssdl_one`).
fn ssdl_smem(es: usize, q: usize, pb: usize, n: usize, kind: usize) -> usize {
    let a128 = |v: usize| v.div_ceil(128) * 128;
    let pad = 16 / es;
    let (ldn, ldp) = (n + pad, pb + pad);
    let hdr = a128(q * 20 + 16);
    let (xs, ns) = (a128(q * ldp * es), a128(q * ldn * es));
    match kind {
        0 => hdr + xs + ns,
        1 => hdr + xs + ns + a128(pb * ldn * es),
        2 => 2 * ns,
        _ => hdr + xs + 2 * ns + a128(pb * ldn * es),
    }
}

/// The chunked SSD (kernels/ssd_chunk.cu, tensor cores) that a call takes, if any.
#[derive(Clone, Copy, Debug)]
struct SsdChunkPlan {
    /// `ssdm` (mma.sync, fragments in registers), `ssdc` (wmma, first version),
    /// `ssd3` (three kernels: chunk states, ssd_combine, outputs; mma.sync) or `ssdl`
    /// (four kernels: C B^T per group, chunk states, combine, outputs; ldmatrix).
    kernel: &'static str,
    q: usize,
    pb: usize,
    smem: usize,
    /// `ssd3`: shared memory of the chunk-states kernel (`smem` is the outputs kernel's).
    smem_states: usize,
    m2: bool,
}

/// Which SSD forward runs: `MAMBA_CUDA_SSD_IMPL` = `recurrent` (kernels/ssd.cu),
/// `chunked` (the mma.sync chunked kernel wherever it applies), `wmma` (the first
/// chunked kernel wherever it applies), `auto` (default: the mma.sync kernel, Q = 32,
/// 128 registers, only where it measured faster, see NOTES.md). The chunked kernels cover f32 and bf16 storage
/// (f16: `ssdl` at Q 128 only, `ssdl_f16_fits`)
/// with p and N multiples of 16, N <= 128, x/B/C rows 16-byte aligned; every
/// option (D, z, dt_bias, softplus, dt_limit, initial and final states, and seq_idx: `ssdl`
/// in the forms of `ssdl_seq_ok` since the fifty-fifth session, the others since the
/// fifty-sixth) exactly.
/// `MAMBA_CUDA_SSD_Q` (32 or 64), `MAMBA_CUDA_SSD_PB` (16, 32, 64) and
/// `MAMBA_CUDA_SSD_MINB=2` (the variant capped at 128 registers) override the shape.
/// `split3` (the default for f32 with fewer (batch, head) pairs than SMs at 640 <= L <=
/// 1024 where `ssdl32` does not take the call: since the twenty-third session it takes
/// every such call from `ssdl32::SSD32_MIN_PAIRS` pairs on, NOTES.md): the three-kernel form, chunk states
/// in parallel over (b, h, chunk), `ssd_combine`, outputs in parallel; Q = 128 unless
/// `MAMBA_CUDA_SSD_Q` (32, 64, 128) says otherwise or it would leave SMs idle.
/// `lm` (the default for bf16 at L >= `SSD_LM_MIN_L` where `ssdz` and the seed kernel do not
/// take the call):
/// `ssdl`, C B^T per group, chunk states, combine, outputs (`ssdl_plan`,
/// `MAMBA_CUDA_SSDL_FUSE`).
/// The shortest sequence the SSD's language-model kernels (`ssdl` bf16, `ssdl32` f32) take
/// by default where there are at least two (batch, head) pairs per SM. 1024 until the
/// twenty-first session (where they had been measured: L 2048), which left L 64-1023 on the
/// older chunked forms, 1.8-3.8x slower than the same kernels at that width (H200, b8 h80
/// p64 N128, two passes, the default against the LM kernels forced: bf16 L128 / 256 / 512 /
/// 768 / 1000 120 / 234 / 438 / 679 / 899 us against 66 / 88 / 155 / 178 / 240; f32 229 /
/// 444 / 872-878 / 1306-1310 / 1695-1705 against 130-136 / 183-201 / 297-298 / 410-427 /
/// 513-538; at L64 level: bf16 65 against 62, f32 120 against 120-124; NOTES.md).
pub(crate) const SSD_LM_MIN_L: usize = 128;

/// Whether `ssd_launch` would run this call with `ssdl` (the seed kernel's bf16 rule).
pub(crate) fn ssdl_takes(g: &Gpu, prm: &SsdParams, act: u32) -> bool {
    ssd_chunk_plan(g, prm, act).is_some_and(|p| p.kernel == "ssdl")
}

fn ssd_chunk_plan(g: &Gpu, prm: &SsdParams, act: u32) -> Option<SsdChunkPlan> {
    let bh = prm.batch as usize * prm.nheads as usize;
    let sms = g.sm_count as usize;
    let (kernel, forced) = match env_str("MAMBA_CUDA_SSD_IMPL").as_deref() {
        Some("recurrent") => return None,
        Some("wmma") => ("ssdc", true),
        Some("chunked") => ("ssdm", true),
        Some("split3") => ("ssd3", true),
        Some("lm") => ("ssdl", true),
        // `auto`, f32 with few (batch, head) pairs at 640 <= L <= 1024: split3 (seed
        // b2 h6 p64 N64 L800: 56 vs 70 us recurrent on the H200, NOTES.md).
        _ if act == dtype::F32 && bh < sms && (640..=1024).contains(&prm.seqlen) => ("ssd3", false),
        // `auto`, bf16 at L >= SSD_LM_MIN_L: ssdl (LM shape b8 L2048 h80 p64 N128 on the
        // H200, NOTES.md). Until the twenty-second session only with >= 2 (batch, head) pairs
        // per SM; fewer pairs went to the recurrent kernels wherever `ssdz` and the seed kernel
        // (checked before this, ops.rs `ssd_dispatch_one`) do not take the call, 2.5-5x
        // slower (H200, p64 N64, default against `MAMBA_CUDA_SSD_IMPL=lm`: b2 h24 L512 / 2048
        // / 4096 106 / 283 / 530 us against 43 / 74 / 133; b4 h24 179 / 647 / 1199 against 49 /
        // 129 / 233; b2 h80 262 / 920 / 1796 against 71 / 214 / 379; the seed width b2 h6 past
        // `ssdz`'s 1024 steps, L 1500 / 2048 / 4096 / 8192: 95 / 108 / 160 / 284 against 41 /
        // 43 / 50 / 80).
        // f16 likewise since the twenty-fifth session, where its `ssdl` kernels apply (Q 128:
        // `ssdl_f16_fits`); f16 has no other chunked kernels.
        _ if act != dtype::F32 && prm.seqlen as usize >= SSD_LM_MIN_L => ("ssdl", false),
        _ => ("ssdm", false),
    };
    if act == dtype::F16 && kernel != "ssdl" {
        return None;
    }
    if act != dtype::F32 && act != dtype::BF16 && act != dtype::F16 {
        return None;
    }
    // `auto`: only where it measured faster than the recurrent kernels on the H200:
    // bf16 with at least two (batch, head) pairs per SM (LM shape 1772 vs 2880 us; f32,
    // the seeds and the (2, 400, 192) block are faster recurrent, NOTES.md), and the
    // split3 case above.
    if !forced && kernel == "ssdm" && (act != dtype::BF16 || bh < 2 * sms) {
        return None;
    }
    let es = dtype::size(act);
    let (p, n) = (prm.headdim as usize, prm.dstate as usize);
    // seq_idx: `ssdl` in the forms that reset the state from their headers (`ssdl_seq_ok`,
    // checked below); `ssdc`, `ssdm` and `ssd3`, whose own f64 scans reset it (fifty-sixth
    // session, kernels/ssd_chunk.cu `SSDM_RESET`); none with `MAMBA_CUDA_SSD_LM_SEQ=0`.
    let seq = prm.seq_idx != 0;
    if (seq && !ssd_lm_seq()) || !p.is_multiple_of(16) || !n.is_multiple_of(16) || n > 128 {
        return None;
    }
    let ev = (16 / es) as i64;
    if [prm.x, prm.b, prm.c].iter().any(|a| a % 16 != 0)
        || [prm.x_sb, prm.x_st, prm.b_sb, prm.b_st, prm.c_sb, prm.c_st]
            .iter()
            .any(|s| s % ev != 0)
    {
        return None;
    }
    if kernel == "ssd3" {
        return ssd3_plan(g, prm, es, bh, p, n);
    }
    if kernel == "ssdl" {
        let mut plan = ssdl_plan(g, prm, es, p, n);
        if seq {
            let sfx = if act == dtype::F16 { "f16" } else { "bf16" };
            let applies = plan.is_some();
            plan = plan.filter(|pl| {
                act != dtype::F32
                    && (act != dtype::F16 || ssdl_f16_fits(pl.q))
                    && ssdl_seq_ok(g, prm, sfx, pl)
            });
            // bf16 where `ssdl` does not apply: `ssdm`, as without seq_idx (below).
            if !applies && !forced && act == dtype::BF16 {
                return ssd_chunk_plan_ssdm(g, es, bh, p, n, "ssdm", false);
            }
            return plan;
        }
        if act == dtype::F16 {
            // f16 has the `ssdl` kernels at Q 128 only; elsewhere the recurrent kernels.
            return plan.filter(|pl| ssdl_f16_fits(pl.q));
        }
        if plan.is_some() || forced {
            return plan;
        }
        // `auto` where ssdl does not apply (out / z rows): the one-pass mma kernel.
        return ssd_chunk_plan_ssdm(g, es, bh, p, n, "ssdm", false);
    }
    ssd_chunk_plan_ssdm(g, es, bh, p, n, kernel, forced)
}

/// The P block (state rows per block) of the chunked SSD kernels before each plan's
/// own halving: `MAMBA_CUDA_SSD_PB` (16, 32 or 64, dividing p) when set, else the largest
/// of 64 / 32 / 16 that divides p; then halved while a warp would hold more than 4 state
/// tiles of 16 x 16 (8 warps). The second value says whether the env var chose it.
fn ssd_pb(p: usize, n: usize) -> (usize, bool) {
    let (mut pb, set) = match env_usize("MAMBA_CUDA_SSD_PB") {
        Some(v) if [16, 32, 64].contains(&v) && p.is_multiple_of(v) => (v, true),
        _ => {
            let pb = [64, 32, 16]
                .into_iter()
                .find(|v| p.is_multiple_of(*v))
                .unwrap_or(16);
            (pb, false)
        }
    };
    while (pb / 16) * (n / 16) > 32 {
        pb /= 2;
    }
    (pb, set)
}

/// The one-pass chunked kernels (`ssdm`, `ssdc`): the launch shape.
#[allow(clippy::too_many_arguments)]
fn ssd_chunk_plan_ssdm(
    g: &Gpu,
    es: usize,
    bh: usize,
    p: usize,
    n: usize,
    kernel: &'static str,
    forced: bool,
) -> Option<SsdChunkPlan> {
    let blocks = |pb: usize| bh * (p / pb);
    let (mut pb, pb_set) = ssd_pb(p, n);
    // Few (batch, head) pairs: more blocks with fewer state rows each.
    while !pb_set && pb > 16 && blocks(pb) < g.sm_count as usize {
        pb /= 2;
    }
    let smem_of = |q: usize| {
        if kernel == "ssdm" {
            ssdm_smem(es, q, pb, n, 0)
        } else {
            ssdc_smem(es, q, pb, n)
        }
    };
    let mut q = match env_usize("MAMBA_CUDA_SSD_Q") {
        Some(32) => 32,
        Some(64) => 64,
        _ if !forced => 32,
        _ if kernel == "ssdm" || es == 2 => 64,
        _ => 32,
    };
    if smem_of(q) > g.max_smem() {
        q = 32;
    }
    let smem = smem_of(q);
    // The measured default of `auto` (bf16): Q = 32, the 128-register variant.
    let m2 = env_usize("MAMBA_CUDA_SSD_MINB").map_or(!forced, |v| v == 2)
        && if kernel == "ssdm" { es == 2 } else { q == 32 };
    (smem <= g.max_smem()).then_some(SsdChunkPlan {
        kernel,
        q,
        pb,
        smem,
        smem_states: 0,
        m2,
    })
}

/// The `split3` launch shape: Q = 128 (or `MAMBA_CUDA_SSD_Q`), halved while the grid
/// would have fewer than two blocks per SM; PB = 64 (or `MAMBA_CUDA_SSD_PB`), halved
/// likewise and while the shared memory does not fit.
fn ssd3_plan(
    g: &Gpu,
    prm: &SsdParams,
    es: usize,
    bh: usize,
    p: usize,
    n: usize,
) -> Option<SsdChunkPlan> {
    let l = prm.seqlen as usize;
    let want = 2 * g.sm_count as usize;
    let blocks = |q: usize, pb: usize| bh * l.div_ceil(q) * (p / pb);
    let (mut pb, pb_set) = ssd_pb(p, n);
    let mut q = match env_usize("MAMBA_CUDA_SSD_Q") {
        Some(v) if [32, 64, 128].contains(&v) => v,
        _ => {
            let mut q = 128;
            while q > 32 && blocks(q, pb) < want {
                q /= 2;
            }
            q
        }
    };
    while !pb_set && pb > 16 && blocks(q, pb) < want {
        pb /= 2;
    }
    let fits = |q: usize, pb: usize| ssdm_smem(es, q, pb, n, 2) <= g.max_smem();
    while !fits(q, pb) && pb > 16 {
        pb /= 2;
    }
    while !fits(q, pb) && q > 32 {
        q /= 2;
    }
    fits(q, pb).then(|| SsdChunkPlan {
        kernel: "ssd3",
        q,
        pb,
        smem: ssdm_smem(es, q, pb, n, 2),
        smem_states: ssdm_smem(es, q, pb, n, 1),
        m2: false,
    })
}

/// The `ssdl` launch shape: Q = 128 (or `MAMBA_CUDA_SSD_Q`: 64, 128, 256), PB = 64 (or
/// `MAMBA_CUDA_SSD_PB`), halved while the shared memory does not fit. Needs `out` and `z`
/// rows 16-byte aligned too (the outputs go out in 16-byte vectors).
fn ssdl_plan(g: &Gpu, prm: &SsdParams, es: usize, p: usize, n: usize) -> Option<SsdChunkPlan> {
    let ev = (16 / es) as i64;
    let zs = if prm.z != 0 {
        [prm.z_sb, prm.z_st]
    } else {
        [0, 0]
    };
    if [prm.out, prm.z].iter().any(|a| a % 16 != 0)
        || [prm.out_sb, prm.out_st, zs[0], zs[1]]
            .iter()
            .any(|s| s % ev != 0)
    {
        return None;
    }
    let (mut pb, _) = ssd_pb(p, n);
    let mut q = match env_usize("MAMBA_CUDA_SSD_Q") {
        Some(v) if [64, 128, 256].contains(&v) => v,
        _ => 128,
    };
    let kinds = if ssdl_fuse() == 2 { 2..4 } else { 0..3 };
    let fits = |q: usize, pb: usize| {
        kinds
            .clone()
            .all(|k| ssdl_smem(es, q, pb, n, k) <= g.max_smem())
    };
    while !fits(q, pb) && pb > 16 {
        pb /= 2;
    }
    while !fits(q, pb) && q > 64 {
        q /= 2;
    }
    fits(q, pb).then(|| SsdChunkPlan {
        kernel: "ssdl",
        q,
        pb,
        smem: ssdl_smem(es, q, pb, n, if ssdl_fuse() == 2 { 3 } else { 1 }),
        smem_states: ssdl_smem(es, q, pb, n, 0),
        m2: false,
    })
}

/// Whether the f16 `ssdl` kernels (twenty-fifth session) run this plan: Q 128, no fused
/// form; at N 128 and PB 64 VAR 28's three (`ssdl_cbh_f16_q128_i`,
/// `ssdlb_states1_f16_q128_n128_v`, `ssdl_out_f16_q128_hy`), elsewhere the generic four
/// (`ssdl_cb_f16_q128`, `ssdl_states_f16_q128`, `ssdl_combine_f16`, `ssdl_out_f16_q128`),
/// as bf16 takes them. Their operands are f16 where bf16's are bf16 (the chunk states
/// between the passes too, as mamba-ssm's f16 path converts them), so a state beyond
/// f16's range (|S| > 65504) overflows there.
fn ssdl_f16_fits(q: usize) -> bool {
    q == 128 && ssdl_fuse() == 0
}

/// `MAMBA_CUDA_SSDL_FUSE`: 0 (default) the four kernels; 1 the state pass chained inside
/// the states kernel (`ssdl_statesf`, no combine kernel); 2 one pass after C B^T
/// (`ssdl_one`: local state, chained state pass and outputs in one block per chunk).
fn ssdl_fuse() -> usize {
    match env_usize("MAMBA_CUDA_SSDL_FUSE") {
        Some(v) if v <= 2 => v,
        _ => 0,
    }
}

/// `MAMBA_CUDA_SSDL_VAR` (bf16, Q 128, N 128, PB 64; FUSE 0 or 1): 0 the generic
/// `ssdl_states(f)` / `ssdl_out`; 1 the `_s` kernels (N and PB fixed at compile
/// time); 2 `ssdl_states(f)_*_s` and `ssdl_out_*_d` (M X off the diagonal tiles as
/// diag(u) CB diag(v) X: two exponentials per tile instead of eight, CB loaded a tile ahead);
/// 3 (FUSE 0 only, else 1) `ssdl_states_*_m` (HB heads of a group per block: B staged
/// once for them, the next head's x prefetched) and `ssdl_out_*_s`; 4 (FUSE 0
/// only, else 2) `ssdl_states_*_m` and `ssdl_out_*_d`; 5 (FUSE 0 only, else 2) the
/// per-chunk headers (cs log2 e, dt) written once by `ssdl_hdr_*` and staged by
/// `ssdl_states_*_mx` / `ssdl_out_*_dx` (4 without the dt scan on warp 0); 6 (FUSE 0
/// only) 5 with `ssdl_out_*_dxb` (the triangular M X balanced over the warps); 7, 8 (FUSE
/// 0 only) 5, 6 with `ssdl_states_*_mxc` (the combine folded into the states kernel: the
/// last block of each group runs the state pass of its heads; no combine launch); 9 (FUSE 0
/// only, else 2) 5 with `ssdl_out_*_h` (HB heads per outputs block, `ssdl_hbo`: C staged
/// once as register fragments, C B^T as a bf16 tile image from `ssdl_cb_*_i`, the next
/// head's header, S_in and x in flight while one computes); 10 (FUSE 0 only, else 2) 9
/// with C B^T and the headers in one launch (`ssdl_cbh_*_i`); 11-13 (FUSE 0 only, else 2):
/// 10 with `ssdl_states_*_mw` (w applied to the x fragments, one barrier per head; 11),
/// with `ssdl_out_*_hv` (v applied to the x fragments, no scaled-x buffer; 12), both
/// (13); 14 12 with `ssdl_states_*_mxk` (each warp's state columns
/// contiguous: both halves of a 32-byte sector of the stored states from one warp); 15
/// 14 with `ssdl_out_*_hy` (Y out in 16-byte row stores
/// through a shared-memory region per warp); 16-18 (FUSE 0 only, else 2): 14 with the
/// chunk states and the state pass in one kernel (`ssdl_statesw_*`, no combine launch:
/// each block walks the chunks of PB x NB state elements of one head, `ssdl_sw`) with
/// PB x NB = 64 x 128 (16), 64 x 64 (17), 32 x 128 (18); 19: 16 with `_hy` outputs;
/// 20, 21: 16, 17 with w applied to the x fragments (one barrier per chunk); 22, 23
/// (kernels/ssd_lm.cu): 19 with two heads of a group per states block (`ssdlb_states2_*`,
/// B staged once for both; 64 x 128 / 64 x 64 state tiles; where the heads per group are
/// odd the one-head kernel of 19); 24-27: 19 with more stages in flight in the states
/// kernel (kernels/ssd_lm.cu, one head per block): 64 x 64 and three buffers of a chunk
/// (24), 64 x 128 and three buffers of a chunk (25), 64 x 128 and four / three buffers of
/// half a chunk (26 / 27); 28 (the default until the twenty-sixth session): 19 with the
/// S_in of the states kernel in 16-byte stores (`ssdlb_states1_*_v`); 60 (the default of
/// the twenty-sixth session): 28 with its states kernel on wgmma (`ssdlw_states_*`,
/// kernels/ssd_wg.cu, sm_90a: only where that module is loaded, else 28); 61-67 (bf16)
/// other shapes of that kernel (`ssdlw_shape`); 70 / 71: 60 with the outputs on wgmma too
/// (`ssdlw_out_*`; 71, the **default** since the twenty-seventh session, bf16 and f16 at N
/// 128, with its M X tiles pipelined). At N 64 / 32
/// (twenty-fifth session) only 28 (its `ssdlb_states1_*_q128_n{64,32}_v` and
/// `ssdl_out_*_q128_n{64,32}_hy`) and 0 (any other value) exist.
fn ssdl_var(sfx: &str, q: usize, n: usize, pb: usize, few: bool) -> usize {
    if (sfx != "bf16" && sfx != "f16") || q != 128 || ![32, 64, 128].contains(&n) || pb != 64 {
        return 0;
    }
    // `few`: fewer VAR 28 states blocks (one per (batch, head, 64 rows of p), walking every
    // chunk) than half the SMs. There the generic kernels (parallel over the chunks) are
    // faster (H200, bf16, generic against 28, twenty-fifth session: b2 h24 p64 L1000 N64 44
    // against 58 us, N128 55 against 71; b2 h48 N64 69 against 59, b2 h66 92 against 61, b2
    // h66 L2048 N128 220 against 128), so 28 takes the call from half the SMs on unless a VAR
    // is asked for.
    let var = env_usize("MAMBA_CUDA_SSDL_VAR");
    if n != 128 && ssdl_fuse() != 0 {
        return 0; // the fused forms' VARs (`_s`, `_d`) fix N at 128
    }
    if sfx == "f16" || n != 128 {
        // f16 has VAR 28 and the generic kernels only (`ssdl_f16_fits`); N 64 / 32 VAR 28
        // (its `_n64` / `_n32` kernels, twenty-fifth session: bf16 b8 L2048 h80 p64 N64 707
        // -> 315 us, NOTES.md) or, asked for by any other VAR, the generic ones.
        return match var {
            Some(28) => 28,
            Some(v @ (60 | 70 | 71)) if n == 128 => v,
            Some(_) if sfx == "bf16" => 0,
            _ if few => 0,
            _ if n == 128 => 71,
            _ => 28,
        };
    }
    // Default 28 (VAR 19 with the chunk states in 16-byte stores): 418.0-425.4 us against
    // 476.1-480.2 (19) at the LM shape in alternating passes of the merged tree's first
    // call, its forced tests (19, 28) and racecheck passed in the same binary (H200, seventh
    // session, NOTES.md). Before: 19 (477.7 / 482.0 against 526.8 / 520.9 for 14, seventh
    // session round 1), 14 (sixth session), 5 (fifth session).
    // 60 (twenty-sixth session): 28 with its states kernel on wgmma, where the sm_90a module
    // is loaded (`ssdl_launch` takes 28 otherwise). H200, one call alternating: b8 L2048 h80
    // p64 N128 376-379 against 420-422 us (the states kernel 163 -> 120 us).
    // 71 (twenty-seventh session): 60 with the outputs on wgmma, M X tiles pipelined
    // (`ssdlw_out_*_q128p`, no spills): 359-361 against 374-375 us (L1000: 196-200 against
    // 213-220), one call alternating, three rounds.
    match var {
        Some(v) if v <= 28 || (60..=67).contains(&v) || v == 70 || v == 71 => v,
        _ if few => 0,
        _ => 71,
    }
}

/// The VAR `ssdl_launch` runs (`ssdl_var`, with `few`: fewer VAR 28 states blocks than half
/// the SMs): the wgmma forms (60-67, 70, 71) where their module is loaded and the heads per
/// block divide the group's heads, else 28.
fn ssdl_var_for(g: &Gpu, prm: &SsdParams, sfx: &str, q: usize, pb: usize) -> usize {
    let (b, h, p, n, ng) = (
        prm.batch as usize,
        prm.nheads as usize,
        prm.headdim as usize,
        prm.dstate as usize,
        prm.ngroups as usize,
    );
    let few = b * h * (p / 64) * 2 < g.sm_count as usize;
    let v = ssdl_var(sfx, q, n, pb, few);
    if v >= 60 && (!g.has_wgmma() || !(h / ng).is_multiple_of(ssdlw_shape(v).1)) {
        28
    } else {
        v
    }
}

/// Whether the SSD forward's chunked kernels (`ssdl` in the forms of `ssdl_seq_ok`, `ssdl32`,
/// and at the seed shapes `ssdz`, fifty-fifth session; `ssdz` in segments, `ssdc`, `ssdm` and
/// `split3`, fifty-sixth) take calls with seq_idx (their scans reset the state where a
/// sequence starts): by default; `MAMBA_CUDA_SSD_LM_SEQ=0` leaves those calls to the
/// recurrent kernels, as before.
pub(crate) fn ssd_lm_seq() -> bool {
    env_usize("MAMBA_CUDA_SSD_LM_SEQ") != Some(0)
}

/// Whether `ssdl_launch` runs this plan with packed sequences (seq_idx; fifty-fifth session):
/// without a fused form, the VARs whose kernels take every decay as exp / exp2 of a later
/// step's cumulative sum minus an earlier one's, from the headers of `ssdl_hdr_k` (28, 60-67,
/// 70, 71) or from their own scan (`ssdl_scan`, the generic kernels of VAR 0), where a
/// sequence's first step adds a reset term (kernels/ssd_chunk.cu, `SSDL_RESET2`). The other
/// VARs (env only) were not checked with it and leave such calls to the recurrent kernels.
fn ssdl_seq_ok(g: &Gpu, prm: &SsdParams, sfx: &str, plan: &SsdChunkPlan) -> bool {
    ssdl_fuse() == 0
        && matches!(
            ssdl_var_for(g, prm, sfx, plan.q, plan.pb),
            0 | 28 | 60..=67 | 70 | 71
        )
}

/// VAR 60-67 (twenty-sixth session): VAR 28 with its states kernel on the warpgroup tensor
/// cores (`ssdlw_states_*`, kernels/ssd_wg.cu, sm_90a): (state columns per block, heads per
/// block, buffers, kernel suffix: `r` the wait for the previous chunk's products after the
/// next chunk's x is scaled, `m` that with S_in out by stmatrix).
fn ssdlw_shape(var: usize) -> (usize, usize, usize, &'static str) {
    if var == 70 || var == 71 {
        return ssdlw_shape(60); // 70, 71: 60 with the outputs on wgmma (`ssdlw_out_*`)
    }
    [
        (128, 1, 2, ""),
        (128, 2, 2, ""),
        (64, 1, 2, ""),
        (64, 2, 2, ""),
        (64, 1, 3, ""),
        (128, 1, 3, ""),
        (128, 1, 2, "r"),
        (128, 1, 2, "m"),
    ][var - 60]
}

/// The state tile (PB, NB) of `ssdl_statesw_*` for VAR 16-21 (see `ssdl_var`) and the
/// kernel name's suffix (`a`: w on the x fragments).
fn ssdl_sw(var: usize) -> (usize, usize, &'static str) {
    match var {
        17 => (64, 64, ""),
        18 => (32, 128, ""),
        20 => (64, 128, "a"),
        21 => (64, 64, "a"),
        _ => (64, 128, ""),
    }
}

/// The `ssdlb_states*` kernel of VAR 22-28 (kernels/ssd_lm.cu): heads per block, state
/// columns per block, buffers, steps per buffer.
fn ssdlb_shape(var: usize) -> (usize, usize, usize, usize) {
    match var {
        23 => (2, 64, 2, 128),
        24 => (1, 64, 3, 128),
        25 => (1, 128, 3, 128),
        26 => (1, 128, 4, 64),
        27 => (1, 128, 3, 64),
        28 => (1, 128, 2, 128),
        _ => (2, 128, 2, 128),
    }
}

/// Heads per block of `ssdl_states_*_m` (and `_mx`, `_mxk`, `_mw`): `MAMBA_CUDA_SSDL_HB`
/// (default 4), halved until it divides the heads per group.
fn ssdl_hb(heads_per_group: usize) -> usize {
    ssd_heads_per_block("MAMBA_CUDA_SSDL_HB", heads_per_group)
}

/// Heads per block of `ssdl_out_*_h` / `_hv` (VAR 9-14): `MAMBA_CUDA_SSDL_HBO` (1-16,
/// default 8), lowered until it divides the heads per group.
fn ssdl_hbo(heads_per_group: usize) -> usize {
    let mut hb = match env_usize("MAMBA_CUDA_SSDL_HBO") {
        Some(v) if (1..=16).contains(&v) => v,
        _ => 8,
    };
    while !heads_per_group.is_multiple_of(hb) {
        hb -= 1;
    }
    hb
}

/// Shared memory of `ssdl_out_*_h`: the C B^T tile image (bf16 lower 16 x 16 tiles), the
/// scaled x, two buffers of (header, S_in, x); mirrors `ssdl_out_h`.
/// `vb` (`_hv`): without the scaled x; `ys` (`_hy`): a 16-row Y region per warp after.
fn ssdl_h_smem(q: usize, pb: usize, n: usize, vb: bool, ys: bool) -> usize {
    let qt = q / 16;
    let xs = if vb { 0 } else { q * (pb + 8) * 2 };
    let yw = if ys { 8 * 16 * (pb + 8) * 2 } else { 0 };
    qt * (qt + 1) / 2 * 512 + xs + 2 * (2 * q * 4 + pb * (n + 8) * 2 + q * (pb + 8) * 2) + yw
}

/// Heads of one group per block of the LM-shape SSD states kernels (`ssdl` `_m` and
/// `ssdl32`): the env var `var` (1, 2, 4 or 8; default 4), halved until it divides the
/// heads per group.
pub(crate) fn ssd_heads_per_block(var: &str, heads_per_group: usize) -> usize {
    let mut hb = match env_usize(var) {
        Some(v) if [1, 2, 4, 8].contains(&v) => v,
        _ => 4,
    };
    while !heads_per_group.is_multiple_of(hb) {
        hb /= 2;
    }
    hb
}

/// `MAMBA_CUDA_SSDL_CBH` unset (VAR 10 on: C B^T and the per-chunk headers): 7 where the
/// states kernel is VAR 60's `ssdlw_states_*_q128_n128_h1s2` (the bf16 / f16 LM shapes): the
/// header kernel `ssdl_hdr3_*`, then the states kernel, with C B^T (`ssdl_cb_*_i`) beside the
/// states kernel on the plugin's own stream ([`Gpu::overlapped`]), ordered after the header
/// kernel so that its blocks find the states grid queued first and fill its last wave; the
/// states kernel starts after the 8 us header kernel instead of the 15 us fused launch. bf16
/// b8 L2048 h80 on the H200, per call, four rounds: 330.9-333.0 us against 336.7-339.7 for 3;
/// the full benchmark 329.8 (338.96 in the thirty-fourth session's); level at b8 L1000 and
/// at the smaller shapes (thirty-fifth session). 6: the same with C B^T ordered after the
/// call's start only (beside the header kernel too): 327.6-340.5 us, two modes (when its
/// blocks take SM slots before the states grid is out, the states kernel's last wave is left
/// unfilled). Elsewhere 3, `ssdl_cbh3_*_i`, the fused launch with the header blocks' dt
/// loads issued at once (15.2 us against 18.5 for `ssdl_cbh_*_i`; thirty-fourth session).
/// 0: `ssdl_cbh_*_i`, the header loads in a loop; 1 / 4 (bf16): two launches on one stream,
/// the header kernel as in 0 / 3.
const CBH_DEFAULT: usize = 7;

/// The four-kernel chunked SSD (`ssdl`, kernels/ssd_chunk.cu): `ssdl_cb` (C B^T per
/// (batch, group, chunk)), `ssdl_states` (local chunk end states, bf16 for bf16 storage),
/// `ssdl_combine_bf16` / `ssd_combine` (incoming states in place, final state), `ssdl_out`.
/// Scratch: chunk states, chunk decays (padded to 4 floats), then C B^T (b, g, K, Q, Q) f32.
fn ssdl_launch(
    g: &Gpu,
    mut prm: SsdParams,
    sfx: &str,
    plan: &SsdChunkPlan,
    stream: u64,
) -> PResult<()> {
    let (b, h, p, n, ng) = (
        prm.batch as usize,
        prm.nheads as usize,
        prm.headdim as usize,
        prm.dstate as usize,
        prm.ngroups as usize,
    );
    let k = prm.nchunks as usize;
    let es = if sfx == "f32" { 4 } else { 2 };
    // Packed sequences: the header kernels read the caller's seq_idx there (p.seq_idx may
    // carry scratch below).
    prm.seq_ids = prm.seq_idx;
    // Fused forms: tickets and flags (the chain scratch); a two-slot f32 ring per row
    // after the C B^T scratch.
    let fuse = ssdl_fuse();
    let rows = (p / plan.pb) * h * b;
    let states_bytes = if fuse == 2 { 0 } else { b * h * k * p * n * es };
    let decay_bytes = (b * h * k).div_ceil(4) * 16;
    let cb_bytes = b * ng * k * plan.q * plan.q * 4;
    // VAR 5-8: the headers (2 Q floats per (batch, head, chunk)) where the ring would lie;
    // 7, 8: then one ticket word per group of `_mxc` blocks (zeroed before the launch).
    // The wgmma forms (60-67, 70, 71) where their module is loaded and the heads per block
    // divide the group's heads, else 28.
    let shape = prm;
    let var_of = |q: usize| ssdl_var_for(g, &shape, sfx, q, plan.pb);
    let var0 = if fuse == 0 { var_of(plan.q) } else { 0 };
    let hdr_bytes = if var0 >= 5 {
        b * h * k * 2 * plan.q * 4
    } else {
        0
    };
    let groups = if var0 == 7 || var0 == 8 {
        b * (h / ssdl_hb(h / ng)) * (p / plan.pb)
    } else {
        0
    };
    let ring_bytes = if fuse > 0 {
        rows * 2 * plan.pb * n * 4
    } else {
        hdr_bytes + groups * 4
    };
    let scratch = g.alloc_async(states_bytes + decay_bytes + cb_bytes + ring_bytes, stream)?;
    prm.chunk_states = scratch;
    prm.chunk_decay = scratch + states_bytes as u64;
    let tickets = prm.chunk_decay + (decay_bytes + cb_bytes + hdr_bytes) as u64;
    let grid = (((p / plan.pb) * k) as u32, h as u32, b as u32);
    let run = || -> PResult<()> {
        let q = plan.q;
        // VAR 9: C B^T as the bf16 tile image of `ssdl_out_*_h`; 10: with the headers
        // in the same launch (blocks past the groups).
        // MAMBA_CUDA_SSDL_CBH (`CBH_DEFAULT`): 7 where the states kernel is VAR 60's (one
        // head per block, two buffers): the header kernel, then the states kernel with C B^T
        // beside it (ordered after the header kernel); 6: C B^T beside both; elsewhere as 3
        // (`ssdl_cbh3_*`); 0: `ssdl_cbh_*`.
        let cbh = env_usize("MAMBA_CUDA_SSDL_CBH").unwrap_or(CBH_DEFAULT);
        let fork = (cbh == 6 || cbh == 7)
            && fuse == 0
            && q == 128
            && (sfx == "bf16" || sfx == "f16")
            && var0 >= 60
            && ssdlw_shape(var0) == (128, 1, 2, "");
        let f0 = g.func(&format!(
            "ssdl_cb{}_{sfx}_q{q}{}",
            if var0 >= 10 && (cbh == 3 || cbh == 6 || cbh == 7) {
                "h3"
            } else if var0 >= 10 {
                "h"
            } else {
                ""
            },
            if var0 >= 9 { "_i" } else { "" }
        ))?;
        let cb_smem = ssdl_smem(es, q, plan.pb, n, 2);
        // MAMBA_CUDA_SSDL_CBH=1 (bf16, VAR 10 on): C B^T and the headers as two launches
        // (`ssdl_cb_*_i`, then `ssdl_hdr_*` without dynamic shared memory).
        // =4: the same with the header kernel's loads issued at once (`ssdl_hdr3_*`); =6 / 7
        // (bf16 / f16) as 4 on two streams (above).
        let split_cbh = var0 >= 10 && (fork || (sfx == "bf16" && (cbh == 1 || cbh == 4)));
        let (fc, fh) = if split_cbh {
            (
                g.func(&format!("ssdl_cb_{sfx}_q{q}_i"))?,
                g.func(&format!(
                    "ssdl_hdr{}_{sfx}_q{q}",
                    if cbh == 1 { "" } else { "3" }
                ))?,
            )
        } else {
            (f0, f0)
        };
        let launch_cb =
            |s: u64| g.launch(fc, (k as u32, ng as u32, b as u32), 256, cb_smem, s, &prm);
        let launch_hdr = |s: u64| {
            g.launch(
                fh,
                (k as u32, h.div_ceil(8) as u32, b as u32),
                256,
                0,
                s,
                &prm,
            )
        };
        if split_cbh && !fork {
            launch_cb(stream)?;
            launch_hdr(stream)?;
        }
        if !split_cbh {
            let gy = if var0 >= 10 { ng + h.div_ceil(8) } else { ng };
            g.launch(
                f0,
                (k as u32, gy as u32, b as u32),
                256,
                cb_smem,
                stream,
                &prm,
            )?;
        }
        if fuse == 2 {
            let f1 = g.func(&format!("ssdl_one_{sfx}_q{q}"))?;
            return g.with_chain_scratch(1 + k * rows, 0, stream, |flags, _data, base| {
                let mut pf = prm;
                pf.seq_idx = flags;
                pf.mode = base as i32;
                g.launch(f1, grid, 256, plan.smem, stream, &pf)
            });
        }
        let mut prm = prm;
        if fuse == 1 {
            let var = [
                0, 1, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                2,
            ]
            .get(var_of(q))
            .copied()
            .unwrap_or(2);
            let f1 = g.func(&format!(
                "ssdl_statesf_{sfx}_q{q}{}",
                if var > 0 { "_s" } else { "" }
            ))?;
            g.with_chain_scratch(1 + k * rows, 0, stream, |flags, _data, base| {
                let mut pf = prm;
                pf.seq_idx = flags;
                pf.mode = base as i32;
                g.launch(f1, grid, 256, plan.smem_states, stream, &pf)
            })?;
        } else {
            let var = var_of(q);
            let (hb, nb, ns, qs) = ssdlb_shape(var);
            let nb = nb.min(n); // VAR 28 at N 64 / 32: 64 x N state tiles
            if var >= 60 {
                // `ssdlw_states`: VAR 28's walk on wgmma (one warpgroup per head); 1 KB more
                // shared memory to align the buffers to 1024 bytes.
                let (nb, hb, ns, sx) = ssdlw_shape(var);
                let f1 = g.func(&format!("ssdlw_states_{sfx}_q{q}_n{nb}_h{hb}s{ns}{sx}"))?;
                let smem = ns * (q * nb * 2 + hb * (q * 64 * 2 + 2 * q * 4)) + 1024;
                let grid_w = (((p / 64) * (n / nb)) as u32, (h / hb) as u32, b as u32);
                let states = |s: u64| g.launch(f1, grid_w, 128 * hb as u32, smem, s, &prm);
                if fork && cbh == 7 {
                    launch_hdr(stream)?;
                    g.overlapped(stream, states, launch_cb)?;
                } else if fork {
                    g.overlapped(stream, |s| launch_hdr(s).and_then(|_| states(s)), launch_cb)?;
                } else {
                    states(stream)?;
                }
            } else if var >= 22 && (h / ng).is_multiple_of(hb) {
                // `ssdlb_states{hb}`: HB heads per block (256 HB threads), B staged once;
                // `_s3`: three buffers of a chunk, `_h{ns}`: ns buffers of half a chunk.
                let sx = match (ns, qs) {
                    _ if var == 28 => "_v".to_string(),
                    (2, _) => String::new(),
                    (_, 128) => format!("_s{ns}"),
                    _ => format!("_h{ns}"),
                };
                let f1 = g.func(&format!("ssdlb_states{hb}_{sfx}_q{q}_n{nb}{sx}"))?;
                let smem = ns * (hb * (2 * q * 4 + qs * 72 * 2) + qs * (nb + 8) * 2);
                let grid_w = (((p / 64) * (n / nb)) as u32, (h / hb) as u32, b as u32);
                g.launch(f1, grid_w, 256 * hb as u32, smem, stream, &prm)?;
            } else if var >= 16 {
                // `_statesw`: chunk states and the state pass in one kernel (S_in of every
                // chunk and the final state; no combine launch).
                let (swp, swn, wa) = ssdl_sw(var);
                let f1 = g.func(&format!("ssdl_statesw_{sfx}_q{q}_p{swp}n{swn}{wa}"))?;
                let smem = 2 * (2 * q * 4 + q * (swp + 8) * 2 + q * (swn + 8) * 2);
                let grid_w = (((p / swp) * (n / swn)) as u32, h as u32, b as u32);
                g.launch(f1, grid_w, 256, smem, stream, &prm)?;
            } else if var >= 3 {
                // `_m`: HB heads per block, a second x buffer (VAR 5-8: `_mx` after the
                // header kernel; 7, 8: `_mxc`, the combine folded in).
                if (5..=9).contains(&var) {
                    let fh = g.func(&format!("ssdl_hdr_{sfx}_q{q}"))?;
                    let grid_h = (k as u32, h.div_ceil(8) as u32, b as u32);
                    g.launch(fh, grid_h, 256, 0, stream, &prm)?;
                }
                let hb = ssdl_hb(h / ng);
                let f1 = g.func(&format!(
                    "ssdl_states_{sfx}_q{q}_m{}",
                    [
                        "", "", "", "", "", "x", "x", "xc", "xc", "x", "x", "w", "x", "w", "xk",
                        "xk"
                    ][var]
                ))?;
                let xs = (q * (plan.pb + 8) * es).div_ceil(128) * 128;
                let grid_m = (grid.0, (h / hb) as u32, grid.2);
                let mut pm = prm;
                if var == 7 || var == 8 {
                    g.memset_u32(tickets, 0, groups, stream)?;
                    pm.seq_idx = tickets;
                }
                g.launch(f1, grid_m, 256, plan.smem_states + xs, stream, &pm)?;
            } else {
                let f1 = g.func(&format!(
                    "ssdl_states_{sfx}_q{q}{}",
                    if var > 0 { "_s" } else { "" }
                ))?;
                g.launch(f1, grid, 256, plan.smem_states, stream, &prm)?;
            }
            // bf16: 8 elements per thread (16-byte accesses); VAR 7, 8: done.
            let (fc, per) = if es == 2 {
                (format!("ssdl_combine_{sfx}"), 8)
            } else {
                ("ssd_combine".to_string(), 1)
            };
            let blocks = (b * h * p * n / per).div_ceil(256).min(65535) as u32;
            if var != 7 && var != 8 && var < 16 {
                g.launch(g.func(&fc)?, (blocks, 1, 1), 256, 0, stream, &prm)?;
            }
        }
        prm.final_states = 0;
        prm.rev_b = ssd_rev_b();
        let var = var_of(q);
        let var = if fuse == 1 && var >= 5 { 2 } else { var };
        if var == 70 || var == 71 {
            // `ssdlw_out`: the outputs on wgmma (kernels/ssd_wg.cu): the C B^T image, two
            // buffers of (S_in, x, header), the Y regions, 1 KB to align to 1024 bytes; 71:
            // the M X tiles pipelined through two register sets (`_q128p`).
            let f2 = g.func(&format!(
                "ssdlw_out_{sfx}_q{q}{}",
                if var == 71 { "p" } else { "" }
            ))?;
            let hbo = ssdl_hbo(h / ng);
            let grid_h = (grid.0, (h / hbo) as u32, grid.2);
            let smem =
                36 * 512 + 2 * (64 * 128 * 2 + 128 * 64 * 2 + 2 * 128 * 4) + 8 * 16 * 72 * 2 + 1024;
            return g.launch(f2, grid_h, 256, smem, stream, &prm);
        }
        if var >= 9 {
            // `_h`: HB heads of one group per block; `_hy` (Y in 16-byte row stores) for 15,
            // 19 and 22-28.
            let ys = var == 15 || var == 19 || var >= 22;
            let f2 = g.func(&format!(
                "ssdl_out_{sfx}_q{q}{}_h{}",
                if n == 128 {
                    String::new()
                } else {
                    format!("_n{n}")
                },
                ["", "v", "y"][(var >= 12) as usize + ys as usize]
            ))?;
            let hbo = ssdl_hbo(h / ng);
            let grid_h = (grid.0, (h / hbo) as u32, grid.2);
            return g.launch(
                f2,
                grid_h,
                256,
                ssdl_h_smem(q, plan.pb, n, var >= 12, ys),
                stream,
                &prm,
            );
        }
        let f2 = g.func(&format!(
            "ssdl_out_{sfx}_q{q}{}",
            ["", "_s", "_d", "_s", "_d", "_dx", "_dxb", "_dx", "_dxb"][var]
        ))?;
        g.launch(f2, grid, 256, plan.smem, stream, &prm)
    };
    let r = run();
    let fr = g.free_async(scratch, stream);
    r.and(fr)
}

/// Launches the SSD with a filled parameter block (pointers, strides, sizes, options);
/// the launch-shape fields are set here. Scratch for the chunk states is stream-ordered.
/// At the language-model shapes the batch rows go in [`ssd_split_parts`] parts on
/// streams of their own (see there).
pub(crate) fn ssd_launch(g: &Gpu, prm: SsdParams, act: u32, stream: u64) -> PResult<()> {
    let parts = ssd_split_parts(g, &prm, act);
    if parts <= 1 {
        return ssd_launch_one(g, prm, act, stream);
    }
    let es = dtype::size(act) as i64;
    let b = prm.batch as usize;
    let state = (prm.nheads as usize * prm.headdim as usize * prm.dstate as usize * 4) as u64;
    g.concurrently(stream, parts, |i, s| {
        let (b0, b1) = (i * b / parts, (i + 1) * b / parts);
        let mut q = prm;
        q.batch = (b1 - b0) as i32;
        q.offset_io(SsdAxis::Batch, b0 as i64, es);
        if prm.init != 0 {
            q.init = prm.init + b0 as u64 * state;
        }
        if prm.final_states != 0 {
            q.final_states = prm.final_states + b0 as u64 * state;
        }
        if prm.seq_idx != 0 {
            q.seq_idx = prm.seq_idx + (b0 * prm.seqlen as usize * 4) as u64;
        }
        ssd_launch_one(g, q, act, s)
    })
}

/// In how many parts (runs of batch rows, each on a stream of its own: `Gpu::concurrently`)
/// the SSD forward goes. The language-model kernels (`ssdl`, `ssdl32`) run a few waves of
/// blocks per kernel, one kernel after the other; the last wave of each leaves SMs idle.
/// With the rows in two parts, one part's next kernel can fill what the other part's last
/// wave leaves. Measured on the H200 at b8 L2048 h80 p64 N128 (NOTES.md, fifteenth
/// session): f32 (`ssdl32`, bound by its 3xTF32 products) 1441-1448 -> 1393-1397 us with
/// 2 parts (4 parts: no gain); bf16 (`ssdl`, bound by L2 traffic) 417 -> 422-433 us with
/// 2 parts, 417 with 3. So by default 2 parts for `ssdl32` where the whole call and every
/// part take it (the parts are independent calls over their rows, seq_idx's rows with
/// them since the fifty-fifth session), else 1; `MAMBA_CUDA_SSD_SPLIT=N` asks for N parts (0 or 1: none) on either LM
/// path under the same conditions.
/// Since the twenty-ninth session `ssdl32` takes 2 parts only past 1024 steps: with that
/// session's kernels (H200, h80 p64 N128, three rounds, 1 part / 2 parts) b8 L512 289-290 /
/// 307-326 us, b8 L1000 505-506 / 529-534, b4 L1000 h48 205-212 / 208-210; b8 L2048 984-989 /
/// 980-994, b4 L2048 548-549 / 550-556, b2 L2048 325-326 / 316-318, b8 L4096 1971-1976 /
/// 1936-1941 (NOTES.md).
fn ssd_split_parts(g: &Gpu, prm: &SsdParams, act: u32) -> usize {
    let b = prm.batch as usize;
    let set = env_usize("MAMBA_CUDA_SSD_SPLIT");
    let want = set.unwrap_or(if prm.seqlen <= 1024 { 1 } else { 2 }).min(b);
    if want < 2 {
        return 1;
    }
    let lm = |q: &SsdParams| {
        super::ssdl32::wanted(g, q, act)
            || (set.is_some()
                && ssd_chunk_plan(g, q, act).is_some_and(|plan| plan.kernel == "ssdl"))
    };
    let mut part = *prm;
    part.batch = (b / want) as i32;
    if lm(prm) && lm(&part) {
        want
    } else {
        1
    }
}

fn ssd_launch_one(g: &Gpu, mut prm: SsdParams, act: u32, stream: u64) -> PResult<()> {
    // f32 at the language-model shape: `ssdl32` (3xTF32 tensor cores, src/gpu/ssdl32.rs).
    if super::ssdl32::try_ssdl32(g, &prm, act, stream)? {
        return Ok(());
    }
    let sfx = suffix(act, "ssd")?;
    if let Some(plan) = ssd_chunk_plan(g, &prm, act) {
        prm.qb = plan.pb as i32;
        prm.chunk_len = plan.q as i32;
        prm.nchunks = (prm.seqlen as usize).div_ceil(plan.q) as i32;
        if plan.kernel == "ssd3" {
            return ssd3_launch(g, prm, sfx, &plan, stream);
        }
        if plan.kernel == "ssdl" {
            return ssdl_launch(g, prm, sfx, &plan, stream);
        }
        let name = format!(
            "{}_fwd_{sfx}_q{}{}",
            plan.kernel,
            plan.q,
            if plan.m2 { "_m2" } else { "" }
        );
        let f = g.func(&name)?;
        let grid = (
            (prm.headdim as usize / plan.pb) as u32,
            prm.nheads as u32,
            prm.batch as u32,
        );
        return g.launch(f, grid, 256, plan.smem, stream, &prm);
    }
    let (b, l, h, p, n) = (
        prm.batch as usize,
        prm.seqlen as usize,
        prm.nheads as usize,
        prm.headdim as usize,
        prm.dstate as usize,
    );
    let shape = ssd_shape(g, mamba_core::abi::dtype::size(act), b, l, h, p, n)?;
    let gth = shape.gth;
    let es = mamba_core::abi::dtype::size(act);
    prm.qb = shape.qb as i32;
    prm.g = gth as i32;
    prm.async_copy = ssd_async_ok(&prm, es, shape.qb) as i32;
    prm.nchunks = shape.nchunks as i32;
    prm.chunk_len = shape.chunk_len as i32;
    let threads = ((shape.qb / shape.qr) * gth).div_ceil(32) as u32 * 32;
    let qtiles = p.div_ceil(shape.qb);
    let tile = format!("{sfx}_q{}_n{}", shape.qr, shape.nr);
    if shape.nchunks == 1 {
        prm.mode = 0;
        let f = g.func(&format!("ssd_fwd_{tile}"))?;
        return g.launch(
            f,
            (qtiles as u32, h as u32, b as u32),
            threads,
            ssd_smem(&shape, 0, es),
            stream,
            &prm,
        );
    }
    let k = shape.nchunks;
    let states_bytes = b * h * k * p * n * 4;
    let decay_bytes = b * h * k * 4;
    let scratch = g.alloc_async(states_bytes + decay_bytes, stream)?;
    prm.chunk_states = scratch;
    prm.chunk_decay = scratch + states_bytes as u64;
    let mut run = || -> PResult<()> {
        let grid = ((qtiles * k) as u32, h as u32, b as u32);
        prm.mode = 1;
        let f1 = g.func(&format!("ssd_states_{tile}"))?;
        g.launch(f1, grid, threads, ssd_smem(&shape, 1, es), stream, &prm)?;
        let fc = g.func("ssd_combine")?;
        let total = b * h * p * n;
        let blocks = total.div_ceil(256).min(65535) as u32;
        g.launch(fc, (blocks, 1, 1), 256, 0, stream, &prm)?;
        prm.mode = 0;
        let f0 = g.func(&format!("ssd_fwd_{tile}"))?;
        g.launch(f0, grid, threads, ssd_smem(&shape, 0, es), stream, &prm)
    };
    let r = run();
    let fr = g.free_async(scratch, stream);
    r.and(fr)
}

/// The three-kernel chunked SSD: `ssd3_states` (each chunk's local end state and decay,
/// scratch (b, h, K, p, N)), `ssd_combine` (incoming states, final state), `ssd3_out`.
/// bf16 storage keeps the chunk states in bf16 (`ssd3_*_sb`, `ssd3_combine_bf16`: the
/// outputs kernel rounds them to bf16 operands anyway) unless
/// `MAMBA_CUDA_SSD3_STATES=f32`.
fn ssd3_launch(
    g: &Gpu,
    mut prm: SsdParams,
    sfx: &str,
    plan: &SsdChunkPlan,
    stream: u64,
) -> PResult<()> {
    let (b, h, p, n) = (
        prm.batch as usize,
        prm.nheads as usize,
        prm.headdim as usize,
        prm.dstate as usize,
    );
    let k = prm.nchunks as usize;
    let sb = sfx == "bf16" && env_str("MAMBA_CUDA_SSD3_STATES").as_deref() != Some("f32");
    let states_bytes = b * h * k * p * n * if sb { 2 } else { 4 };
    // `MAMBA_CUDA_SSD_MINB=2`: the 128-register variants (bf16 chunk states with Q 64 or
    // 128, f32 with Q 64; elsewhere ignored).
    let m2 = env_usize("MAMBA_CUDA_SSD_MINB") == Some(2)
        && if sb {
            plan.q >= 64
        } else {
            sfx == "f32" && plan.q == 64
        };
    let tag = match (sb, m2) {
        (true, true) => "_sb_m2",
        (true, false) => "_sb",
        (false, true) => "_m2",
        (false, false) => "",
    };
    let scratch = g.alloc_async(states_bytes + b * h * k * 4, stream)?;
    prm.chunk_states = scratch;
    prm.chunk_decay = scratch + states_bytes as u64;
    let grid = (((p / plan.pb) * k) as u32, h as u32, b as u32);
    let run = || -> PResult<()> {
        let f1 = g.func(&format!("ssd3_states_{sfx}_q{}{tag}", plan.q))?;
        g.launch(f1, grid, 256, plan.smem_states, stream, &prm)?;
        let fc = g.func(if sb {
            "ssd3_combine_bf16"
        } else {
            "ssd_combine"
        })?;
        let blocks = (b * h * p * n).div_ceil(256).min(65535) as u32;
        g.launch(fc, (blocks, 1, 1), 256, 0, stream, &prm)?;
        let f2 = g.func(&format!("ssd3_out_{sfx}_q{}{tag}", plan.q))?;
        g.launch(f2, grid, 256, plan.smem, stream, &prm)
    };
    let r = run();
    let fr = g.free_async(scratch, stream);
    r.and(fr)
}

pub(crate) fn ssd(p: &SsdDesc, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "ssd";
    let act = p.x.dtype;
    suffix(act, OP)?;
    if p.x.rank != 4 || p.b.rank != 4 {
        return Err(PErr::invalid(format!(
            "{OP}: `x` must be (b, L, h, p) and `B` (b, L, g, N); got {:?} and {:?}",
            p.x.shape(),
            p.b.shape()
        )));
    }
    let (b, l, h, hp) = (p.x.dims[0], p.x.dims[1], p.x.dims[2], p.x.dims[3]);
    let (ng, n) = (p.b.dims[2], p.b.dims[3]);
    req(OP, "x", &p.x, act, &[b, l, h, hp])?;
    req(OP, "dt", &p.dt, act, &[b, l, h])?;
    req(OP, "A", &p.a, dtype::F32, &[h])?;
    req(OP, "B", &p.b, act, &[b, l, ng, n])?;
    req(OP, "C", &p.c, act, &[b, l, ng, n])?;
    if b == 0 || l == 0 || h == 0 || hp == 0 || ng == 0 || n == 0 {
        return Err(PErr::invalid(format!(
            "{OP}: zero dimension in b={b}, L={l}, h={h}, p={hp}, g={ng}, N={n}"
        )));
    }
    if h % ng != 0 {
        return Err(PErr::invalid(format!(
            "{OP}: heads h = {h} not divisible by groups g = {ng}"
        )));
    }
    let d_per_channel = if p.d.is_none() {
        false
    } else if p.d.rank == 1 {
        req(OP, "D", &p.d, dtype::F32, &[h])?;
        false
    } else {
        req(OP, "D", &p.d, dtype::F32, &[h, hp])?;
        true
    };
    opt(OP, "z", &p.z, act, &[b, l, h, hp])?;
    opt(OP, "dt_bias", &p.dt_bias, dtype::F32, &[h])?;
    opt(
        OP,
        "initial_states",
        &p.initial_states,
        dtype::F32,
        &[b, h, hp, n],
    )?;
    opt(OP, "seq_idx", &p.seq_idx, dtype::I32, &[b, l])?;
    req(OP, "out", &p.out, act, &[b, l, h, hp])?;
    opt(
        OP,
        "final_states",
        &p.final_states,
        dtype::F32,
        &[b, h, hp, n],
    )?;
    inner_dense(OP, "x", &p.x, 2)?;
    inner_dense(OP, "dt", &p.dt, 1)?;
    inner_dense(OP, "B", &p.b, 2)?;
    inner_dense(OP, "C", &p.c, 2)?;
    inner_dense(OP, "z", &p.z, 2)?;
    inner_dense(OP, "out", &p.out, 2)?;
    for (name, t) in [
        ("A", &p.a),
        ("D", &p.d),
        ("dt_bias", &p.dt_bias),
        ("initial_states", &p.initial_states),
        ("seq_idx", &p.seq_idx),
        ("final_states", &p.final_states),
    ] {
        dense(OP, name, t)?;
    }
    if p.has_dt_limit != 0 && (p.dt_lo.is_nan() || p.dt_hi.is_nan() || p.dt_lo > p.dt_hi) {
        return Err(PErr::invalid(format!(
            "{OP}: dt_limit ({}, {}) is not an interval",
            p.dt_lo, p.dt_hi
        )));
    }
    // Packed sequences: one call per sequence where forced (segments.rs; by default only
    // the backward takes that form).
    if !p.seq_idx.is_none() {
        let dims = (b as usize, l as usize, h as usize, hp as usize, n as usize);
        if let Some(seqs) = super::segments::plan(&p.seq_idx, dims, false, stream)? {
            return super::segments::forward(p, &seqs, stream);
        }
    }
    let prm = SsdParams {
        x: p.x.ptr,
        dt: p.dt.ptr,
        a: p.a.ptr,
        b: p.b.ptr,
        c: p.c.ptr,
        d: p.d.ptr,
        z: p.z.ptr,
        dt_bias: p.dt_bias.ptr,
        init: p.initial_states.ptr,
        seq_idx: p.seq_idx.ptr,
        out: p.out.ptr,
        final_states: p.final_states.ptr,
        x_sb: p.x.strides[0],
        x_st: p.x.strides[1],
        dt_sb: p.dt.strides[0],
        dt_st: p.dt.strides[1],
        b_sb: p.b.strides[0],
        b_st: p.b.strides[1],
        c_sb: p.c.strides[0],
        c_st: p.c.strides[1],
        z_sb: p.z.strides[0],
        z_st: p.z.strides[1],
        out_sb: p.out.strides[0],
        out_st: p.out.strides[1],
        batch: b as i32,
        seqlen: l as i32,
        nheads: h as i32,
        headdim: hp as i32,
        ngroups: ng as i32,
        dstate: n as i32,
        d_per_channel: d_per_channel as i32,
        softplus: (p.dt_softplus != 0) as i32,
        has_limit: (p.has_dt_limit != 0) as i32,
        lo: p.dt_lo,
        hi: p.dt_hi,
        ..SsdParams::default()
    };
    ssd_dispatch(g, prm, act, stream)
}

/// The SSD forward's choice of form for a filled parameter block: with few (batch, head)
/// pairs the seed forms (seed.rs: `ssdz` / `ssdr`, the recurrent kernel over many small
/// blocks, `MAMBA_CUDA_SSDR`; or one launch with no chain across chunks,
/// `MAMBA_CUDA_SEED`), else [`ssd_launch`] (the chunked forms). Every SSD forward goes
/// through here: the operation and the Mamba2Block forward (whose SSD took `ssd_launch`
/// directly until the twentieth session, missing the seed forms at its own shapes).
///
/// `final_states` may alias `initial_states` (the ABI allows it, and the Mamba2Block passes
/// one state buffer for both): several forms read the initial state in many blocks of one
/// launch while one of them writes the final state (`ssdz`: every block of a cluster reads
/// it, the last one writes; found through the Mamba2Block golden case 00 in the twentieth
/// session), so an initial state that overlaps the final one is copied first.
pub(crate) fn ssd_dispatch(g: &Gpu, mut prm: SsdParams, act: u32, stream: u64) -> PResult<()> {
    let bytes = prm.batch as u64 * prm.nheads as u64 * prm.headdim as u64 * prm.dstate as u64 * 4;
    let overlap = prm.init != 0
        && prm.final_states != 0
        && prm.init < prm.final_states + bytes
        && prm.final_states < prm.init + bytes;
    if overlap {
        let copy = g.alloc_async(bytes as usize, stream)?;
        let r = super::memcpy_dtod(copy, prm.init, bytes as usize, stream).and_then(|_| {
            prm.init = copy;
            ssd_dispatch_one(g, prm, act, stream)
        });
        let fr = g.free_async(copy, stream);
        return r.and(fr);
    }
    ssd_dispatch_one(g, prm, act, stream)
}

fn ssd_dispatch_one(g: &Gpu, prm: SsdParams, act: u32, stream: u64) -> PResult<()> {
    const OP: &str = "ssd";
    if let Some(seg) = super::seed::ssdz_segments(g, &prm, act == dtype::F32) {
        return super::seed::ssdz_segmented_launch(g, prm, suffix(act, OP)?, seg, stream);
    }
    if super::seed::ssdr_wanted(g, &prm, act == dtype::F32) {
        return super::seed::ssdr_launch(g, prm, suffix(act, OP)?, stream);
    }
    if super::seed::ssd_wanted(g, &prm, act) {
        return super::seed::ssd_launch(g, prm, suffix(act, OP)?, stream);
    }
    ssd_launch(g, prm, act, stream)
}

// ---------------------------------------------------------------- SPEC 3

/// The tiled conv1d kernels (kernels/conv.cuh) for a width, unless `MAMBA_CUDA_CONV=generic`
/// asks for the one-thread-per-element kernels (the A/B switch that measured them).
pub(crate) fn conv_tiled(width: i32) -> bool {
    (2..=4).contains(&width) && env_str("MAMBA_CUDA_CONV").as_deref() != Some("generic")
}

/// Threads per block of the tiled conv kernels (`CONVT_NT`) and the time tile of their
/// time-dense form (`CONVT_TL`).
pub(crate) const CONVT_NT: u32 = 128;
pub(crate) const CONVT_TL: u32 = 512;

/// The grid of a tiled conv kernel, or None where it does not fit (the generic kernel runs):
/// time dense (`cf`): (time tiles, c, b); else (`cl`, a thread per channel walking a segment
/// of time), with enough segments for about a thread per SM lane (`sms` x 1024):
/// forward (128-channel blocks, segments of at least 8 steps, b); backward (32-channel
/// blocks, groups of 4 segments of at least 16 steps, b).
pub(crate) fn conv_tiled_grid(
    sms: i32,
    time_dense: bool,
    backward: bool,
    b: u32,
    c: u32,
    l: u32,
) -> Option<(u32, u32, u32)> {
    const MAXYZ: u32 = 65535;
    if b > MAXYZ {
        return None;
    }
    if time_dense {
        return (c <= MAXYZ).then_some((l.div_ceil(CONVT_TL), c, b));
    }
    let (cpb, min_steps) = if backward { (32, 16) } else { (CONVT_NT, 8) };
    let cb = c.div_ceil(cpb);
    let want = (sms.max(1) as u64 * 1024).div_ceil(b as u64 * (cb * cpb) as u64);
    let segs = want.min(l.div_ceil(min_steps) as u64).max(1);
    let y = if backward { segs.div_ceil(4) } else { segs };
    (y <= MAXYZ as u64).then_some((cb, y as u32, b))
}

/// The staged channel-last conv kernels' tile (kernels/conv.cuh `CONVS_CT` channels by
/// `CONVS_TT` steps) and the blocks of them an SM keeps (`CONVS_BPS`: <= 21 KB of shared
/// memory and <= 64 registers a thread each).
const CONVS_CT: usize = 64;
const CONVS_TT: usize = 32;
const CONVS_PER_SM: usize = 8;
/// The waves of blocks their grids aim at (blocks at different phases overlap; the last
/// wave's tail is short), each block walking the rest of its row's tiles.
const CONVS_WAVES: usize = 4;

/// From how many elements (b c L) the staged forms run by default. Sixty-third session (H100,
/// `bench-results/h100-s63e-cls3.txt`): at the LM width (b8 L2048, 1792 bf16 channels) ncu
/// 99 us against 249 for `cl`'s backward, 53 against 70 for its forward (f32 130 / 168 and
/// 80 / 97); the Mamba2Block's bf16 forward+backward 2.32 ms against 2.48, at (4, 1024, 512)
/// 0.52-0.53 against 0.56, at (2, 800, 512) (1.8 M elements) 0.30 against 0.32. Smaller
/// calls, not measured, keep `cl`.
pub(crate) const CONV_CLS_MIN: usize = 1 << 20;

/// Whether the staged forms take a call: channels dense (`sc` all 1), C and every batch-row
/// and step stride a multiple of a 16-byte vector's elements, every base aligned to 16 bytes.
pub(crate) fn conv_staged_fits(
    es: u64,
    c: usize,
    sc: &[i64],
    strides: &[i64],
    ptrs: &[u64],
) -> bool {
    let ve = (16 / es.max(1)) as i64;
    (c as i64) % ve == 0
        && sc.iter().all(|&v| v == 1)
        && strides.iter().all(|v| v % ve == 0)
        && ptrs.iter().all(|a| a.is_multiple_of(16))
}

/// The staged forms' grid: (channel tiles, blocks along time, b), each block walking every
/// gridDim.y-th time tile of its row.
pub(crate) fn conv_staged_grid(sms: i32, b: usize, c: usize, l: usize) -> Option<(u32, u32, u32)> {
    let (cb, tiles) = (c.div_ceil(CONVS_CT), l.div_ceil(CONVS_TT));
    let per_row = (sms.max(1) as usize * CONVS_PER_SM * CONVS_WAVES)
        .div_ceil(cb * b)
        .clamp(1, tiles);
    (b <= 65535 && cb <= u32::MAX as usize).then_some((cb as u32, per_row as u32, b as u32))
}

/// Launches the convolution with a filled parameter block.
pub(crate) fn conv_launch(g: &Gpu, mut prm: ConvParams, act: u32, stream: u64) -> PResult<()> {
    let sfx = suffix(act, "causal_conv1d")?;
    if prm.width <= 1 {
        prm.final_states = 0;
        prm.init = 0;
    }
    if conv_tiled(prm.width) {
        let cf = prm.x_st == 1 && prm.o_st == 1;
        let (b, c, l) = (
            prm.batch as usize,
            prm.channels as usize,
            prm.seqlen as usize,
        );
        // Staged through shared memory (`cls`, 16-byte vectors) where channels are dense and
        // every row start of x and out is aligned to 16 bytes; `MAMBA_CUDA_CONV_FWD_CLS=1` /
        // `0` (default: from [`CONV_CLS_MIN`] elements on).
        if !cf
            && conv_staged_fits(
                dtype::size(act) as u64,
                c,
                &[prm.x_sc, prm.o_sc],
                &[prm.x_sb, prm.x_st, prm.o_sb, prm.o_st],
                &[prm.x, prm.out],
            )
            && env_switch("MAMBA_CUDA_CONV_FWD_CLS", b * c * l >= CONV_CLS_MIN)
        {
            if let Some(grid) = conv_staged_grid(g.sm_count, b, c, l) {
                let f = g.func(&format!("conv1d_fwdt_cls_{sfx}_w{}", prm.width))?;
                return g.launch(f, grid, CONVT_NT, 0, stream, &prm);
            }
        }
        let (b, c, l) = (b as u32, c as u32, l as u32);
        if let Some(grid) = conv_tiled_grid(g.sm_count, cf, false, b, c, l) {
            let form = if cf { "cf" } else { "cl" };
            let f = g.func(&format!("conv1d_fwdt_{form}_{sfx}_w{}", prm.width))?;
            return g.launch(f, grid, CONVT_NT, 0, stream, &prm);
        }
    }
    let total = prm.batch as u64 * prm.channels as u64 * prm.seqlen as u64
        + if prm.final_states != 0 {
            prm.batch as u64 * prm.channels as u64 * (prm.width as u64 - 1)
        } else {
            0
        };
    let blocks = total.div_ceil(256).min(1 << 20) as u32;
    let f = g.func(&format!("conv1d_fwd_{sfx}"))?;
    g.launch(f, (blocks, 1, 1), 256, 0, stream, &prm)
}

/// The convolution's dimensions from its forward descriptor.
pub(crate) struct ConvDims {
    pub b: u64,
    pub c: u64,
    pub l: u64,
    pub w: u64,
    /// `x` is (b, L, c) rather than (b, c, L).
    pub channel_last: bool,
}

/// Checks what the forward and the backward share: the ranks and sizes of `x` and
/// `weight`, `bias`, `initial_states` and the activation code.
pub(crate) fn conv_dims(op: &str, p: &Conv1dDesc) -> PResult<ConvDims> {
    if p.x.rank != 3 || p.weight.rank != 2 {
        return Err(PErr::invalid(format!(
            "{op}: `x` must have 3 dimensions and `weight` 2; got {:?} and {:?}",
            p.x.shape(),
            p.weight.shape()
        )));
    }
    let cl = p.channel_last != 0;
    let (b, c, l) = if cl {
        (p.x.dims[0], p.x.dims[2], p.x.dims[1])
    } else {
        (p.x.dims[0], p.x.dims[1], p.x.dims[2])
    };
    let w = p.weight.dims[1];
    if b == 0 || c == 0 || l == 0 || w == 0 {
        return Err(PErr::invalid(format!(
            "{op}: zero dimension in b={b}, c={c}, L={l}, W={w}"
        )));
    }
    req(op, "weight", &p.weight, dtype::F32, &[c, w])?;
    opt(op, "bias", &p.bias, dtype::F32, &[c])?;
    opt(
        op,
        "initial_states",
        &p.initial_states,
        dtype::F32,
        &[b, c, w - 1],
    )?;
    if p.activation > activation::SILU {
        return Err(PErr::invalid(format!(
            "{op}: unknown activation code {}",
            p.activation
        )));
    }
    Ok(ConvDims {
        b,
        c,
        l,
        w,
        channel_last: cl,
    })
}

pub(crate) fn causal_conv1d(p: &Conv1dDesc, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "causal_conv1d";
    let act = p.x.dtype;
    suffix(act, OP)?;
    let ConvDims {
        b,
        c,
        l,
        w,
        channel_last: cl,
    } = conv_dims(OP, p)?;
    req(OP, "out", &p.out, act, p.x.shape())?;
    opt(
        OP,
        "final_states",
        &p.final_states,
        dtype::F32,
        &[b, c, w - 1],
    )?;
    for (name, t) in [
        ("weight", &p.weight),
        ("bias", &p.bias),
        ("initial_states", &p.initial_states),
        ("final_states", &p.final_states),
    ] {
        dense(OP, name, t)?;
    }
    if !p.final_states.is_none() && p.final_states.ptr == p.initial_states.ptr {
        return Err(PErr::invalid(format!(
            "{OP}: `final_states` must not alias `initial_states`"
        )));
    }
    let (xs, os) = (&p.x.strides, &p.out.strides);
    let (x_sc, x_st, o_sc, o_st) = if cl {
        (xs[2], xs[1], os[2], os[1])
    } else {
        (xs[1], xs[2], os[1], os[2])
    };
    let prm = ConvParams {
        x: p.x.ptr,
        w: p.weight.ptr,
        bias: p.bias.ptr,
        init: p.initial_states.ptr,
        out: p.out.ptr,
        final_states: p.final_states.ptr,
        x_sb: xs[0],
        x_sc,
        x_st,
        o_sb: os[0],
        o_sc,
        o_st,
        batch: b as i32,
        channels: c as i32,
        seqlen: l as i32,
        width: w as i32,
        silu: (p.activation == activation::SILU) as i32,
        channel_last: cl as i32,
    };
    conv_launch(g, prm, act, stream)
}

// ---------------------------------------------------------------- SPEC 4

pub(crate) fn selective_state_update(p: &StateUpdateDesc, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "selective_state_update";
    let act = p.x.dtype;
    let sfx = suffix(act, OP)?;
    let (b, h, hp, multihead) = match p.x.rank {
        2 => (p.x.dims[0], p.x.dims[1], 1, false),
        3 => (p.x.dims[0], p.x.dims[1], p.x.dims[2], true),
        _ => {
            return Err(PErr::invalid(format!(
                "{OP}: `x` must be (b, d) or (b, h, p), got {:?}",
                p.x.shape()
            )))
        }
    };
    let xdims: Vec<u64> = p.x.shape().to_vec();
    let n = *p.a.shape().last().unwrap_or(&0);
    let pdims: Vec<u64> = if multihead { vec![h, hp] } else { vec![h] };
    let mut adims = pdims.clone();
    adims.push(n);
    req(OP, "x", &p.x, act, &xdims)?;
    req(OP, "dt", &p.dt, act, &xdims)?;
    req(OP, "A", &p.a, dtype::F32, &adims)?;
    let ng = match p.b.rank {
        2 if !multihead => 1,
        3 => p.b.dims[1],
        _ => {
            return Err(PErr::invalid(format!(
                "{OP}: `B` must be (b, N) or (b, g, N), got {:?}",
                p.b.shape()
            )))
        }
    };
    let bdims: Vec<u64> = if p.b.rank == 2 {
        vec![b, n]
    } else {
        vec![b, ng, n]
    };
    req(OP, "B", &p.b, act, &bdims)?;
    req(OP, "C", &p.c, act, &bdims)?;
    if b == 0 || h == 0 || hp == 0 || n == 0 || ng == 0 || h % ng != 0 {
        return Err(PErr::invalid(format!(
            "{OP}: bad dimensions b={b}, h={h}, p={hp}, N={n}, g={ng}"
        )));
    }
    opt(OP, "D", &p.d, dtype::F32, &pdims)?;
    opt(OP, "z", &p.z, act, &xdims)?;
    opt(OP, "dt_bias", &p.dt_bias, dtype::F32, &pdims)?;
    let mut sdims = xdims.clone();
    sdims.push(n);
    req(OP, "state", &p.state, dtype::F32, &sdims)?;
    req(OP, "out", &p.out, act, &xdims)?;
    for (name, t) in [
        ("state", &p.state),
        ("x", &p.x),
        ("dt", &p.dt),
        ("A", &p.a),
        ("B", &p.b),
        ("C", &p.c),
        ("D", &p.d),
        ("z", &p.z),
        ("dt_bias", &p.dt_bias),
        ("out", &p.out),
    ] {
        dense(OP, name, t)?;
    }
    let prm = StateUpdateParams {
        state: p.state.ptr,
        x: p.x.ptr,
        dt: p.dt.ptr,
        a: p.a.ptr,
        b: p.b.ptr,
        c: p.c.ptr,
        d: p.d.ptr,
        z: p.z.ptr,
        dt_bias: p.dt_bias.ptr,
        out: p.out.ptr,
        batch: b as i32,
        nheads: h as i32,
        headdim: hp as i32,
        ngroups: ng as i32,
        dstate: n as i32,
        softplus: (p.dt_softplus != 0) as i32,
        has_limit: (p.has_dt_limit != 0) as i32,
        lo: p.dt_lo,
        hi: p.dt_hi,
        pad0: 0,
    };
    let rows = b * h * hp;
    let blocks = (rows * 32).div_ceil(128) as u32;
    let f = g.func(&format!("state_update_{sfx}"))?;
    g.launch(f, (blocks, 1, 1), 128, 0, stream, &prm)
}

// ---------------------------------------------------------------- SPEC 5

pub(crate) fn causal_conv1d_update(p: &ConvUpdateDesc, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "causal_conv1d_update";
    let act = p.x.dtype;
    let sfx = suffix(act, OP)?;
    let (b, c, ln) = match p.x.rank {
        2 => (p.x.dims[0], p.x.dims[1], 1),
        3 => (p.x.dims[0], p.x.dims[1], p.x.dims[2]),
        _ => {
            return Err(PErr::invalid(format!(
                "{OP}: `x` must be (b, c) or (b, c, Ln), got {:?}",
                p.x.shape()
            )))
        }
    };
    if p.weight.rank != 2 || p.conv_state.rank != 3 {
        return Err(PErr::invalid(format!(
            "{OP}: `weight` must be (c, W) and `conv_state` (b, c, S); got {:?} and {:?}",
            p.weight.shape(),
            p.conv_state.shape()
        )));
    }
    let w = p.weight.dims[1];
    let s = p.conv_state.dims[2];
    req(OP, "x", &p.x, act, p.x.shape())?;
    req(OP, "weight", &p.weight, dtype::F32, &[c, w])?;
    opt(OP, "bias", &p.bias, dtype::F32, &[c])?;
    req(OP, "conv_state", &p.conv_state, dtype::F32, &[b, c, s])?;
    req(OP, "out", &p.out, act, p.x.shape())?;
    if b == 0 || c == 0 || ln == 0 || w == 0 || s + 1 < w {
        return Err(PErr::invalid(format!(
            "{OP}: bad dimensions b={b}, c={c}, Ln={ln}, W={w}, S={s} (S >= W-1 needed)"
        )));
    }
    for (name, t) in [
        ("x", &p.x),
        ("weight", &p.weight),
        ("bias", &p.bias),
        ("conv_state", &p.conv_state),
        ("out", &p.out),
    ] {
        dense(OP, name, t)?;
    }
    let prm = ConvUpdateParams {
        state: p.conv_state.ptr,
        x: p.x.ptr,
        w: p.weight.ptr,
        bias: p.bias.ptr,
        out: p.out.ptr,
        batch: b as i32,
        channels: c as i32,
        steps: ln as i32,
        width: w as i32,
        state_len: s as i32,
        silu: (p.activation == activation::SILU) as i32,
    };
    let blocks = (b * c).div_ceil(128).min(65535) as u32;
    let f = g.func(&format!("conv_update_{sfx}"))?;
    g.launch(f, (blocks, 1, 1), 128, 0, stream, &prm)
}
