//! SPEC 2 backward in chunked form (kernels/ssd_bwdc.cu, `ssdbc_*`): chunk states forward
//! (S_c), state gradients backward (G_{c+1}), then every gradient per chunk of 32 steps from
//! small matrix products. For SSD (with seq_idx since the fifty-fifth session: `seq_ok`),
//! headdim <= 64 (a multiple of 4) and
//! N <= 128 (a multiple of 8), where the recurrent kernels spend one exponential and a dozen
//! instructions per (row, state, step) (`bwd_ssdt_*`: ~40 ms at the language-model shape).
//! The products run on the tensor cores for (p, N) = (64, 128) and (64, 64) with 16-byte
//! aligned rows (`_tc`: tf32 products for the 16-bit types; `_tc3`: 3xTF32 for f32), in f32
//! on the CUDA cores elsewhere.
//!
//! Scratch: the steps, their chunk cumulative sums, derivative factors and the walks'
//! weights (5 x b h L f32), S_c for c = 0..K and G_{c+1} for c = 0..K-1 ((2K + 1) x b h P N
//! f32: N / 16 floats per element of x at Q = 32) and f32 accumulators of dB, dC.
//! `MAMBA_CUDA_SSD_BWDC=1` takes this path wherever it applies, `=0` never.

use mamba_core::abi::{dtype, SsdBwdDesc, TensorDesc};

use super::ops::{env_usize, suffix};
use super::params::{BwdCastParams, GateBwdParams};
use super::Gpu;
use crate::PResult;

/// The kernels' parameter block (`SsdbcParams` in ssd_bwdc.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SsdbcParams {
    x: u64,
    dt: u64,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    z: u64,
    dt_bias: u64,
    init: u64,
    dout: u64,
    dfinal: u64,
    dx: u64,
    ddt: u64,
    da: u64,
    dd: u64,
    dz: u64,
    ddt_bias: u64,
    dinit: u64,
    db: u64,
    dc: u64,
    sv: u64,
    csv: u64,
    dsv: u64,
    s: u64,
    g: u64,
    batch: i32,
    seqlen: i32,
    nheads: i32,
    headdim: i32,
    ngroups: i32,
    dstate: i32,
    nchunks: i32,
    softplus: i32,
    has_limit: i32,
    d_per_channel: i32,
    lo: f32,
    hi: f32,
    wv: u64,
    ev: u64,
    hpb: i32,
    q64: i32,
    /// Packed sequences: the caller's seq_idx (kernels/ssd_bwdc.cu `SBC_RESET`), or 0.
    seq_idx: u64,
    /// (b, h, K Q): cs_t's f32 remainder beside `csv` (kernels/ssd_bwdc.cu `sbc_dcs`).
    cse: u64,
    /// (batch row, step) strides in elements of x, dout (z, dz), dx, B, C, dt, d dt.
    x_sb: i64,
    x_st: i64,
    y_sb: i64,
    y_st: i64,
    dx_sb: i64,
    dx_st: i64,
    b_sb: i64,
    b_st: i64,
    c_sb: i64,
    c_st: i64,
    dt_sb: i64,
    dt_st: i64,
    ddt_sb: i64,
    ddt_st: i64,
}

const _: () = assert!(std::mem::size_of::<SsdbcParams>() == 29 * 8 + 14 * 4 + 14 * 8);

/// The 64-step kernels' parameter block (`SsdblParams` in ssd_bwdl.cuh).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SsdblParams {
    b: SsdbcParams,
    cb: u64,
    dcb: u64,
    dcs: u64,
    dsd: u64,
    last: u64,
    su: u64,
    rq: u64,
    k64: i32,
    hpb: i32,
    hpbx: i32,
    pad: i32,
}

const _: () =
    assert!(std::mem::size_of::<SsdblParams>() == 29 * 8 + 14 * 4 + 14 * 8 + 7 * 8 + 4 * 4);

/// Row strides (in floats) of the 64-step kernels' shared tiles (ssd_bwdl.cuh `SBL_LP`,
/// `SBL_WQ`).
const LP: usize = 68;
const WQ: usize = 65;

/// Shared memory (bytes) of the 64-step kernels (`sbl_*_smem` in ssd_bwdl.cuh): cb, x, s, cbg.
fn q64_smem(n: usize) -> [usize; 4] {
    [
        4 * 2 * 64 * (n + 4),
        4 * (4 * 64 * LP + 2 * 64 * (n + 4) + 5 * 64 + 16 + 64 * WQ),
        4 * (5 * 64 * LP + 5 * 64 + 16),
        4 * 3 * 64 * LP,
    ]
}

/// Shared memory (bytes) of `ssdbl_xs` (`sbl_xs_smem`): the x and s passes in one kernel.
fn q64_xs_smem(n: usize) -> usize {
    4 * (4 * 64 * LP + 3 * 64 * (n + 4) + 64 * (n + 8) + 7 * 64 + 32 + 64 * WQ)
}

/// Heads per block of `ssdbl_x` / `ssdbl_xs`: the largest divisor of the heads per group up to
/// `bound` (8 / 16) that leaves at least 4 blocks per SM (one head where none does);
/// `MAMBA_CUDA_SSD_BWDL_HPBX` forces the bound (then the largest divisor up to it, blocks or
/// not).
fn q64_hpbx(g: &Gpu, b: usize, h: usize, ng: usize, k64: usize, bound: usize) -> usize {
    let forced = env_usize("MAMBA_CUDA_SSD_BWDL_HPBX");
    let fill = 4 * g.sm_count.max(1) as usize;
    q64_heads(h / ng.max(1), forced, bound, |d| {
        k64 * ng * (h / ng.max(1) / d) * b >= fill
    })
}

/// Heads per block of `ssdbl_s`: the largest divisor of the heads per group that leaves at
/// least 8 blocks per SM; `MAMBA_CUDA_SSD_BWDL_HPB` forces the bound (as `q64_hpbx`).
fn q64_hpb(g: &Gpu, b: usize, h: usize, ng: usize, n: usize, k64: usize) -> usize {
    let forced = env_usize("MAMBA_CUDA_SSD_BWDL_HPB");
    let fill = 8 * g.sm_count.max(1) as usize;
    let per_group = h / ng.max(1);
    q64_heads(per_group, forced, per_group, |d| {
        k64 * ng * (n / 64) * (per_group / d) * b >= fill
    })
}

/// The largest divisor d of `per_group` up to the bound (`forced`, else `dflt`) with `fills(d)`
/// (d = 1 always; a forced bound needs no fill).
fn q64_heads(
    per_group: usize,
    forced: Option<usize>,
    dflt: usize,
    fills: impl Fn(usize) -> bool,
) -> usize {
    let want = forced.unwrap_or(dflt).max(1);
    (1..=want.min(per_group))
        .filter(|&d| per_group.is_multiple_of(d) && (d == 1 || forced.is_some() || fills(d)))
        .max()
        .unwrap_or(1)
}

/// Steps per chunk (`SBC_Q`) and threads of the chunk kernel (`SBC_NT`).
const Q: usize = 32;
const NT: usize = 256;

/// `sbc_chunk_floats` in ssd_bwdc.cu, in bytes (`pad`: 1 for the CUDA-core products, 4 for
/// the tensor-core kernels, which also hold G, dout silu'(z), and dy, Mx diag(s), Mb diag(s)
/// as mma operands in buffers of their own).
fn chunk_smem(p: usize, n: usize, pad: usize) -> usize {
    let own = if pad == 4 {
        p * (n + pad) + Q * p + Q * (p + pad) + 2 * Q * (Q + pad)
    } else {
        0
    };
    4 * (2 * Q * (p + pad)
        + 2 * Q * (n + pad)
        + p * (n + pad)
        + 2 * Q * p
        + 2 * Q * n
        + 3 * Q * (Q + pad)
        + Q * (Q + 1)
        + 8 * Q
        + 64
        + own)
}

/// The kernels' name suffix for the shape: P and N fixed at compile time for (64, 128) and
/// (64, 64), else the generic kernels.
fn shape_suffix(p: usize, n: usize) -> &'static str {
    match (p, n) {
        (64, 128) => "_p64n128",
        (64, 64) => "_p64n64",
        _ => "",
    }
}

/// The call's shape: (b, L, h, p, g, N).
pub(crate) type Dims = (usize, usize, usize, usize, usize, usize);

/// Whether the tensor-core kernels can take the call: (p, N) = (64, 128) or (64, 64), every
/// row of x, dout, z, B, C 16-byte aligned (their 16-byte vector loads: the base and the
/// batch and step strides), dx's rows aligned to two elements (the 64-step kernels store it
/// in pairs), and their shared memory within the device's.
fn tc_capable(g: &Gpu, d: &SsdBwdDesc, p: usize, n: usize) -> bool {
    let es = dtype::size(d.fwd.x.dtype) as i64;
    let rows = |t: &TensorDesc, bytes: i64| {
        t.is_none()
            || (t.ptr.is_multiple_of(bytes as u64)
                && (t.strides[0] * es) % bytes == 0
                && (t.strides[1] * es) % bytes == 0)
    };
    let aligned = [&d.fwd.x, &d.fwd.b, &d.fwd.c, &d.dout, &d.fwd.z]
        .iter()
        .all(|t| rows(t, 16))
        && rows(&d.dx, 2 * es);
    !shape_suffix(p, n).is_empty() && aligned && chunk_smem(p, n, 4) <= g.max_smem()
}

/// Whether the chunked backward takes calls with seq_idx (fifty-fifth session: `ssdbc_prep`
/// takes `SBC_RESET` off the cumulative log-decays from each sequence's first step on, so every
/// decay across a start vanishes): by default; `MAMBA_CUDA_SSD_BWDC_SEQ=0` leaves them to the
/// per-sequence form (segments.rs) or the recurrent kernels, as before.
pub(crate) fn seq_ok() -> bool {
    env_usize("MAMBA_CUDA_SSD_BWDC_SEQ") != Some(0)
}

/// Whether the chunked backward takes the call: seq_idx only with [`seq_ok`], p <= 64 and a multiple of 4,
/// N <= 128 and a multiple of 8, its shared memory within the device's; by default where the
/// tensor-core kernels apply (H200, seed shape b2 h6 p64 N64 f32, forward+backward: 98-101 /
/// 152-155 us at L400 / L800 against 237-240 / 417-419 us in recurrent form) or where the rows
/// fill the device (b h p >= 8 per SM, as `bwd_ssdt`); `MAMBA_CUDA_SSD_BWDC` 1 / 0 forces it
/// on / off.
pub(crate) fn wanted(g: &Gpu, d: &SsdBwdDesc, (b, _l, h, p, _ng, n): Dims, has_seq: bool) -> bool {
    if (has_seq && !seq_ok()) || p > 64 || !p.is_multiple_of(4) || n > 128 || !n.is_multiple_of(8) {
        return false;
    }
    if chunk_smem(p, n, 1) > g.max_smem() {
        return false;
    }
    match env_usize("MAMBA_CUDA_SSD_BWDC") {
        Some(0) => false,
        Some(_) => true,
        None => tc_capable(g, d, p, n) || b * h * p >= 8 * g.sm_count.max(1) as usize,
    }
}

/// Heads per block of the chunk kernel: the largest divisor of the heads per group up to
/// `MAMBA_CUDA_SSD_BWDC_HPB` (default 8) that leaves at least 4 blocks per SM (a block takes
/// an SM by its shared memory). The block stages B, C and computes C B^T once for its heads
/// and adds their dB, dC to the accumulators once. H200, SSD LM shape (b8 L2048 h80 p64 N128)
/// forward+backward, one call: bf16 6.15-6.25 ms at 8 heads per block (6.22-6.27 at 4,
/// 6.21 at 16, 6.62-6.64 at 1) against 6.42-6.46 ms before; f32 7.67-7.71 against 7.98-8.03.
fn heads_per_block(g: &Gpu, b: usize, h: usize, ng: usize, k: usize) -> usize {
    let per_group = h / ng.max(1);
    let forced = env_usize("MAMBA_CUDA_SSD_BWDC_HPB");
    let want = forced.unwrap_or(8).max(1);
    let fill = 4 * g.sm_count.max(1) as usize;
    (1..=want.min(per_group))
        .filter(|&d| {
            per_group.is_multiple_of(d) && (d == 1 || forced.is_some() || k * (h / d) * b >= fill)
        })
        .max()
        .unwrap_or(1)
}

fn ptr(t: &TensorDesc) -> u64 {
    if t.is_none() {
        0
    } else {
        t.ptr
    }
}

fn a256(v: usize) -> usize {
    v.div_ceil(256) * 256
}

/// The gated backward through the 64-step kernels: the ungated forward y' = SSD(x) + D x into
/// scratch of the storage type, the gate's backward (`bwd_ssd_gate_*`: dz = dout y' silu'(z),
/// and dy' = dout silu(z) written over y'), then the ungated backward from dy'. Costs one
/// forward and an elementwise pass over five (b, L, h, p) arrays more than the ungated call.
/// y' and dy' pass through the storage type: in bf16 each is rounded to ~2^-9 of its value
/// (the gradient tolerance there is 2e-2); f32 keeps them as the kernels compute them. H100, b8 L2048 h80 p64 N128 with z, forward+backward (fifty-fourth session,
/// `bench-results/h100-s54a-gate.txt`): bf16 4.13-4.16 ms against 6.81-6.85 with the 32-step
/// kernel, f32 6.84-6.94 against 8.31-8.32 (ungated: 3.31-3.35 / 5.12-5.19).
/// `Ok(None)`: its scratch could not be allocated (the caller goes on without it);
/// `Ok(Some(false))`: the ungated call's scratch could not be (the recurrent kernels then).
fn run_gated(
    g: &Gpu,
    d: &SsdBwdDesc,
    act: u32,
    dims: Dims,
    d_per_channel: bool,
    stream: u64,
) -> PResult<Option<bool>> {
    const OP: &str = "ssd_backward";
    let sfx = suffix(act, OP)?;
    let (b, l, h, hp, _, _) = dims;
    let elems = b * l * h * hp;
    let Ok(ybuf) = g.alloc_async(a256(elems * dtype::size(act)), stream) else {
        return Ok(None);
    };
    let res = (|| {
        let io = [b, l, h, hp];
        let y = TensorDesc::dense(ybuf, act, &io);
        // The ungated forward (the ABI's: every option of the call but z; no final state).
        let mut fwd = d.fwd;
        fwd.z = TensorDesc::NONE;
        fwd.out = y;
        fwd.final_states = TensorDesc::NONE;
        if !d.dz.is_none() {
            super::ops::ssd(&fwd, stream)?;
        }
        let gp = GateBwdParams {
            dout: d.dout.ptr,
            z: d.fwd.z.ptr,
            y: ybuf,
            dz: ptr(&d.dz),
            n: elems as i64,
        };
        let f = g.func(&format!("bwd_ssd_gate_{sfx}"))?;
        let blocks = elems
            .div_ceil(8 * 256)
            .clamp(1, 8 * g.sm_count.max(1) as usize) as u32;
        g.launch(f, (blocks, 1, 1), 256, 0, stream, &gp)?;
        let mut ungated = *d;
        ungated.fwd = fwd;
        ungated.dout = y;
        ungated.dz = TensorDesc::NONE;
        run(g, &ungated, act, dims, d_per_channel, stream)
    })();
    let fr = g.free_async(ybuf, stream);
    res.and_then(|done| fr.map(|()| Some(done)))
}

/// Runs the chunked backward (the descriptors were checked by the caller). `Ok(false)`:
/// its scratch could not be allocated (the caller takes the recurrent kernels).
pub(crate) fn run(
    g: &Gpu,
    d: &SsdBwdDesc,
    act: u32,
    dims: Dims,
    d_per_channel: bool,
    stream: u64,
) -> PResult<bool> {
    const OP: &str = "ssd_backward";
    let sfx = suffix(act, OP)?;
    let (b, l, h, hp, ng, n) = dims;
    let k = l.div_ceil(Q);
    let p = &d.fwd;
    // The fixed shapes: the products on the tensor cores, one tf32 product for the 16-bit
    // types (`_tc`: relative errors ~4e-4 against tolerances of 2e-2 / 5e-3) and 3xTF32
    // for f32 (`_tc3`: ~1e-6; one tf32 product misses f32's 1e-4);
    // `MAMBA_CUDA_SSD_BWDC_TC=1` / `3` / `0` forces `_tc` / `_tc3` / the CUDA cores. Else
    // the CUDA cores with 512 threads (`_w`; `MAMBA_CUDA_SSD_BWDC_W=0`: 256 threads).
    // H200, LM shape bf16, forward+backward: `_tc` 13.98 / 14.03 ms, `_tc3` 14.42 / 14.38,
    // `_w` 17.06 / 17.06 (one call, alternating; 256 threads: 19.5).
    let tc = if !tc_capable(g, d, hp, n) {
        0
    } else {
        match env_usize("MAMBA_CUDA_SSD_BWDC_TC") {
            Some(0) => 0,
            Some(1) => 1,
            Some(_) => 3,
            None if sfx == "f32" => 3,
            None => 1,
        }
    };
    let hv = a256(b * h * k * Q * 4);
    let bc = b * l * ng * n;
    let accb = a256(bc * 4);
    // The 64-step form (kernels/ssd_bwdl.cuh) where the tensor-core kernels apply, there is no
    // gate and there are enough (row, head, chunk) triples (b h ceil(L / 64) >= 2.25 per SM):
    // its C B^T and dCB per (row, chunk, group), dL/dcs and x . dxh per step, the last-step
    // terms per chunk. H100, forward+backward (fiftieth session, with `ssdbl_xs`;
    // `bench-results/h100-s50c-ldm.txt`, `h100-s50f-committed.txt`): at the LM shape (b8 L2048
    // h80 p64 N128) bf16 3.32-3.33 ms against 6.19-6.25 with the 32-step chunk kernel, f32
    // 5.13-5.18 against 7.52-7.60; at 384-512 triples 8-13% faster (b2 L1024 h12 N128 f32 297 against
    // 326-332 us), at 312 (b2 L800 h12 N64) level, at the seed shape (b2 h6 p64 N64, 156
    // triples at L800) 3-7% slower, so that shape keeps the 32-step kernel.
    // `MAMBA_CUDA_SSD_BWDL=1` / `0` forces it on / off.
    let k64 = l.div_ceil(64);
    let q64_fits = tc != 0
        && q64_smem(n).iter().all(|&m| m <= g.max_smem())
        && match env_usize("MAMBA_CUDA_SSD_BWDL") {
            Some(v) => v != 0,
            None => 4 * b * h * k64 >= 9 * g.sm_count.max(1) as usize,
        };
    // A gate z: the 64-step kernels have none, so the gate's backward runs around them
    // (`run_gated`) where the storage type has f32's exponent range (f32, bf16: dy = dout
    // silu(z) and the ungated output stored in it neither overflow nor lose bits to
    // subnormals where the 32-step kernel's f32 registers would not); f16 keeps the 32-step
    // kernel. `MAMBA_CUDA_SSD_BWDL_GATE=0` keeps it for every type.
    if !p.z.is_none()
        && q64_fits
        && act != dtype::F16
        && env_usize("MAMBA_CUDA_SSD_BWDL_GATE") != Some(0)
    {
        if let Some(done) = run_gated(g, d, act, dims, d_per_channel, stream)? {
            return Ok(done);
        }
    }
    let q64 = q64_fits && p.z.is_none();
    let (cbb, dcsb, lastb) = if q64 {
        (
            a256(b * k64 * ng * 4096 * 4),
            a256(b * h * k64 * 64 * 4),
            a256(b * h * k64 * 4),
        )
    } else {
        (0, 0, 0)
    };
    // The walks' states: every 32-step chunk's, or with q64 only those the 64-step kernels read.
    let (sb, gb) = if q64 {
        (
            a256(b * h * (k64 + 1) * hp * n * 4),
            a256(b * h * k64 * hp * n * 4),
        )
    } else {
        (
            a256(b * h * (k + 1) * hp * n * 4),
            a256(b * h * k * hp * n * 4),
        )
    };
    let total = 6 * hv + sb + gb + 2 * accb + 2 * cbb + 4 * dcsb + lastb;
    let Ok(scratch) = g.alloc_async(total, stream) else {
        return Ok(false);
    };
    let res = (|| {
        let mut o = scratch;
        let mut take = |bytes: usize| {
            let r = o;
            o += bytes as u64;
            r
        };
        let (sv, csv, dsv) = (take(hv), take(hv), take(hv));
        let (wv, ev, cse) = (take(hv), take(hv), take(hv));
        let (sbuf, gbuf) = (take(sb), take(gb));
        let (dbacc, dcacc) = (take(accb), take(accb));
        // Zeroed with the accumulators: dCB, dL/dcs, the last-step terms.
        let (dcbq, dcsq, lastq) = (take(cbb), take(dcsb), take(lastb));
        let (cbq, dsdq, suq, rqq) = (take(cbb), take(dcsb), take(dcsb), take(dcsb));
        super::memset(dbacc, 0, 2 * accb + cbb + dcsb + lastb, stream)?;
        for t in [&d.da, &d.dd, &d.ddt_bias] {
            if !t.is_none() {
                super::memset(t.ptr, 0, t.numel() as usize * 4, stream)?;
            }
        }
        let hpb = heads_per_block(g, b, h, ng, k);
        let prm = SsdbcParams {
            x: p.x.ptr,
            dt: p.dt.ptr,
            a: p.a.ptr,
            b: p.b.ptr,
            c: p.c.ptr,
            d: ptr(&p.d),
            z: ptr(&p.z),
            dt_bias: ptr(&p.dt_bias),
            init: ptr(&p.initial_states),
            dout: d.dout.ptr,
            dfinal: ptr(&d.dfinal_states),
            dx: d.dx.ptr,
            ddt: d.ddt.ptr,
            da: d.da.ptr,
            dd: ptr(&d.dd),
            dz: ptr(&d.dz),
            ddt_bias: ptr(&d.ddt_bias),
            dinit: ptr(&d.dinitial_states),
            db: dbacc,
            dc: dcacc,
            sv,
            csv,
            dsv,
            s: sbuf,
            g: gbuf,
            batch: b as i32,
            seqlen: l as i32,
            nheads: h as i32,
            headdim: hp as i32,
            ngroups: ng as i32,
            dstate: n as i32,
            nchunks: k as i32,
            softplus: (p.dt_softplus != 0) as i32,
            has_limit: (p.has_dt_limit != 0) as i32,
            d_per_channel: d_per_channel as i32,
            lo: p.dt_lo,
            hi: p.dt_hi,
            wv,
            ev,
            hpb: hpb as i32,
            q64: q64 as i32,
            seq_idx: ptr(&p.seq_idx),
            cse,
            x_sb: p.x.strides[0],
            x_st: p.x.strides[1],
            y_sb: d.dout.strides[0],
            y_st: d.dout.strides[1],
            dx_sb: d.dx.strides[0],
            dx_st: d.dx.strides[1],
            b_sb: p.b.strides[0],
            b_st: p.b.strides[1],
            c_sb: p.c.strides[0],
            c_st: p.c.strides[1],
            dt_sb: p.dt.strides[0],
            dt_st: p.dt.strides[1],
            ddt_sb: d.ddt.strides[0],
            ddt_st: d.ddt.strides[1],
        };
        let shp = shape_suffix(hp, n);
        let f = g.func(&format!("ssdbc_prep_{sfx}"))?;
        g.launch(f, (k as u32, h as u32, b as u32), 32, 0, stream, &prm)?;
        // The walk kernels: one block per (head, batch row); on the CUDA cores a thread per
        // 4 x 8 states, on the tensor cores (`_tc` / `_tc3`, with the chunk kernel's MODE) 256
        // threads and double-buffered staging.
        let wgrid = (h as u32, b as u32, 1);
        let (wt, wsm, wsfx) = match tc {
            0 => (
                ((hp / 4) * (n / 8)).div_ceil(32) as u32 * 32,
                4 * Q * (hp + n),
                "",
            ),
            1 => (256, 4 * 2 * Q * (hp + 8 + n + 8), "_tc"),
            _ => (256, 4 * 2 * Q * (hp + 8 + n + 8), "_tc3"),
        };
        // Both walks in one launch (they are independent) where all their blocks are resident
        // at once (3 / 2 blocks per SM for tf32 / 3xTF32): H200 seed shape f32 forward+backward
        // 46.7 / 80.6 / 119.0 us at L100 / 400 / 800 against 54.9 / 102.3 / 153.7 us with two
        // launches; at the LM shape (1280 blocks) two launches, 6.46 against 6.48-6.50 ms.
        // `MAMBA_CUDA_SSD_BWDC_WALKS=1` / `0` forces one / two launches.
        let slots = g.sm_count.max(1) as usize * if tc == 1 { 3 } else { 2 };
        // With the 64-step kernels (half the stores) one launch pays at the LM shape too: H100,
        // b8 L2048 h80 forward+backward bf16 4161-4170 against 4241-4250 us, f32 5633-5637
        // against 5708-5754 (forty-ninth session, `bench-results/h100-s49e-tune.txt`).
        let merged = match env_usize("MAMBA_CUDA_SSD_BWDC_WALKS") {
            Some(v) => v != 0,
            None => q64 || 2 * b * h <= slots,
        };
        if tc != 0 && merged {
            let f = g.func(&format!("ssdbc_walks_{sfx}{shp}{wsfx}"))?;
            g.launch(f, (wgrid.0, wgrid.1, 2), wt, wsm, stream, &prm)?;
        } else {
            let f = g.func(&format!("ssdbc_states_{sfx}{shp}{wsfx}"))?;
            g.launch(f, wgrid, wt, wsm, stream, &prm)?;
            let f = g.func(&format!("ssdbc_gstates_{sfx}{shp}{wsfx}"))?;
            g.launch(f, wgrid, wt, wsm, stream, &prm)?;
        }
        if q64 {
            let nb = n / 64;
            // The x and s passes in one kernel (`ssdbl_xs`: each head's x, dy, G and S read
            // once) where its shared memory fits, with up to 16 heads per block. H100, LM shape
            // forward+backward (fiftieth session, `bench-results/h100-s50d-conflicts.txt`,
            // `h100-s50e-final.txt`): bf16 3.28-3.32 ms against 4.11-4.14 with the two kernels,
            // f32 5.12-5.17 against 5.50-5.53. `MAMBA_CUDA_SSD_BWDL_XS=0` / `1` forces it
            // off / on.
            let xs = q64_xs_smem(n) <= g.max_smem()
                && env_usize("MAMBA_CUDA_SSD_BWDL_XS").is_none_or(|v| v != 0);
            let hpb = q64_hpb(g, b, h, ng, n, k64);
            let hpbx = q64_hpbx(g, b, h, ng, k64, if xs { 16 } else { 8 });
            let q = SsdblParams {
                b: prm,
                cb: cbq,
                dcb: dcbq,
                dcs: dcsq,
                dsd: dsdq,
                last: lastq,
                su: suq,
                rq: rqq,
                k64: k64 as i32,
                hpb: hpb as i32,
                hpbx: hpbx as i32,
                pad: 0,
            };
            let sm = q64_smem(n);
            let kn = |name: &str| g.func(&format!("ssdbl_{name}_{sfx}_n{n}_m{tc}"));
            let k32 = k64 as u32;
            g.launch(
                kn("cb")?,
                (k32, ng as u32, b as u32),
                256,
                sm[0],
                stream,
                &q,
            )?;
            let xy = (ng * (h / ng / hpbx)) as u32;
            if xs {
                g.launch(
                    kn("xs")?,
                    (k32, xy, b as u32),
                    512,
                    q64_xs_smem(n),
                    stream,
                    &q,
                )?;
            } else {
                g.launch(kn("x")?, (k32, xy, b as u32), 512, sm[1], stream, &q)?;
                let sy = (ng * nb * (h / ng / hpb)) as u32;
                g.launch(kn("s")?, (k32, sy, b as u32), 512, sm[2], stream, &q)?;
            }
            g.launch(
                kn("cbg")?,
                (k32, (ng * nb) as u32, b as u32),
                256,
                sm[3],
                stream,
                &q,
            )?;
            let f = g.func(&format!("ssdbl_fin_{sfx}"))?;
            g.launch(f, (k32, h as u32, b as u32), 64, 0, stream, &q)?;
        } else {
            let wide = !shp.is_empty() && env_usize("MAMBA_CUDA_SSD_BWDC_W") != Some(0);
            let (cw, cnt, pad) = match tc {
                1 => ("_tc", 512, 4),
                3 => ("_tc3", 512, 4),
                _ if wide => ("_w", 512, 1),
                _ => ("", NT, 1),
            };
            let smem = chunk_smem(hp, n, pad);
            let f = g.func(&format!("ssdbc_chunk_{sfx}{shp}{cw}"))?;
            g.launch(
                f,
                (k as u32, (h / hpb) as u32, b as u32),
                cnt as u32,
                smem,
                stream,
                &prm,
            )?;
        }
        if d.db.is_dense() && d.dc.is_dense() {
            let cast = g.func(&format!("bwd_cast_{sfx}"))?;
            for (src, dst) in [(dbacc, d.db.ptr), (dcacc, d.dc.ptr)] {
                let cp = BwdCastParams {
                    src,
                    dst,
                    n: bc as i64,
                };
                let blocks = bc.div_ceil(256).clamp(1, 1 << 16) as u32;
                g.launch(cast, (blocks, 1, 1), 256, 0, stream, &cp)?;
            }
        } else {
            // Strided dB / dC (slices of wider rows): the accumulators' rows into them.
            let mut cs = super::block_bwd::view_copies(&d.db, dbacc, 4, false);
            cs.extend(super::block_bwd::view_copies(&d.dc, dcacc, 4, false));
            super::block_bwd::copies(g, "f32", sfx, &cs, stream)?;
        }
        Ok(())
    })();
    let fr = g.free_async(scratch, stream);
    res.and(fr).map(|()| true)
}
