//! The Mamba2Block's backward on the device (`kernels/block_bwd.cu`): the forward's
//! activations are read from what the saving forward kept (`block_backward_saved`) or
//! recomputed from the input (`block_backward`: one forward's work, nothing kept between
//! calls), then every step runs on the device in stream order: out_proj's two GEMMs,
//! the gated RMS norm's backward, the SSD backward and the conv backward of `bwd.rs`
//! on dense copies of their slices (three copy launches), and in_proj's two GEMMs. Only
//! the caller's buffers are written; scratch is stream-ordered.

use std::ffi::c_void;

use mamba_core::abi::{
    activation, dtype, BlockBackwardDesc, Conv1dBwdDesc, Conv1dDesc, SsdBwdDesc, SsdDesc,
    TensorDesc,
};

use super::block::{live, Block, FwdBufs};
use super::gemm::{SharedSplit, Strided};
use super::{gpu, Gpu};
use crate::{PErr, PResult};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbGemmParams {
    a: u64,
    b: u64,
    c: u64,
    a_si: i64,
    a_sk: i64,
    b_sk: i64,
    b_sj: i64,
    ldc: i64,
    split_stride: i64,
    m: i32,
    n: i32,
    k: i32,
    kps: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbCopyParams {
    src: u64,
    dst: u64,
    sld: i64,
    dld: i64,
    rows: i64,
    cols: i64,
    /// 4: four columns per load and store (row starts aligned to 4 elements), else 1.
    vec: i32,
    pad0: i32,
}

/// The products' default route (`MAMBA_CUDA_BB_GEMM`, see [`gemm`]).
const BB_GEMM_DEFAULT: &str = "lt";

/// `kernels/block_bwd.cu`'s `BB_NORM_PAIRS`: column pairs per thread of `bb_norm_bwd_pairs`.
const BB_NORM_PAIRS: usize = 4;

/// `kernels/block_bwd.cu`'s `BB_COPIES`.
const BB_COPIES: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbCopyNParams {
    c: [BbCopyParams; BB_COPIES],
    n: i32,
    pad0: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbSumParams {
    parts: u64,
    out: u64,
    count: i64,
    stride: i64,
    splits: i32,
    pad0: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbNormBwdParams {
    y: u64,
    z: u64,
    weight: u64,
    dn: u64,
    dy: u64,
    dz: u64,
    dwrow: u64,
    z_ld: i64,
    dz_ld: i64,
    m: i32,
    d_inner: i32,
    group: i32,
    norm_before_gate: i32,
    eps: f32,
    /// Rows per block (kernels/block_bwd.cu `BbNormBwdParams::rpb`).
    rpb: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbColsumParams {
    src: u64,
    dst: u64,
    ld: i64,
    rows: i32,
    cols: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BbMulParams {
    a: u64,
    b: u64,
    out: u64,
    n: i32,
    pad0: i32,
}

const _: () = assert!(std::mem::size_of::<BbGemmParams>() == 9 * 8 + 4 * 4);
const _: () = assert!(std::mem::size_of::<BbCopyParams>() == 7 * 8);
const _: () = assert!(std::mem::size_of::<BbCopyNParams>() == BB_COPIES * 7 * 8 + 8);
const _: () = assert!(std::mem::size_of::<BbSumParams>() == 5 * 8);
const _: () = assert!(std::mem::size_of::<BbNormBwdParams>() == 12 * 8);
const _: () = assert!(std::mem::size_of::<BbColsumParams>() == 4 * 8);
const _: () = assert!(std::mem::size_of::<BbMulParams>() == 4 * 8);

/// One operand of a strided product: its address, type suffix and element strides
/// (`s0` along the product's row or reduction index, `s1` along the other).
#[derive(Clone, Copy)]
struct Operand {
    ptr: u64,
    ty: &'static str,
    s0: i64,
    s1: i64,
}

fn grid1(total: usize, threads: usize) -> u32 {
    total.div_ceil(threads).clamp(1, 1 << 16) as u32
}

/// One 2D copy: `rows` x `cols` elements from `src` (row stride `sld` elements) to
/// `dst` (row stride `dld`).
#[derive(Clone, Copy)]
pub(crate) struct Copy2d {
    src: u64,
    sld: usize,
    dst: u64,
    dld: usize,
    rows: usize,
    cols: usize,
}

/// The 2D copies between a (b, L, ...) view `t` (inner dimensions dense, batch and step
/// strides non-negative) and a dense tensor of its shape at `dense` with elements of
/// `dense_size` bytes: into the dense one (`to_dense`) or out of it. One copy where the rows
/// are evenly spaced, else one per batch row.
pub(crate) fn view_copies(
    t: &TensorDesc,
    dense: u64,
    dense_size: usize,
    to_dense: bool,
) -> Vec<Copy2d> {
    let sh = t.shape();
    let (b, l) = (sh[0] as usize, sh[1] as usize);
    let cols = sh[2..].iter().product::<u64>() as usize;
    let (sb, st) = (t.strides[0] as usize, t.strides[1] as usize);
    let es = dtype::size(t.dtype) as u64;
    let one = |view: u64, dn: u64, rows: usize, ld: usize| {
        if to_dense {
            Copy2d {
                src: view,
                sld: ld,
                dst: dn,
                dld: cols,
                rows,
                cols,
            }
        } else {
            Copy2d {
                src: dn,
                sld: cols,
                dst: view,
                dld: ld,
                rows,
                cols,
            }
        }
    };
    if b * l * cols == 0 {
        Vec::new()
    } else if l == 1 {
        vec![one(t.ptr, dense, b, sb)]
    } else if b == 1 || sb == l * st {
        vec![one(t.ptr, dense, b * l, st)]
    } else {
        (0..b)
            .map(|i| {
                one(
                    t.ptr + (i * sb) as u64 * es,
                    dense + (i * l * cols * dense_size) as u64,
                    l,
                    st,
                )
            })
            .collect()
    }
}

/// [`copy2d`] for any number of copies (launches of up to `BB_COPIES`).
pub(crate) fn copies(g: &Gpu, ts: &str, td: &str, cs: &[Copy2d], stream: u64) -> PResult<()> {
    for part in cs.chunks(BB_COPIES) {
        copy2d(g, ts, td, part, stream)?;
    }
    Ok(())
}

/// The element size of a type suffix.
fn type_size(t: &str) -> usize {
    if t == "f32" {
        4
    } else {
        2
    }
}

/// Whether copies may move four columns per thread (`MAMBA_CUDA_BB_VEC=1` / `0`; the
/// default [`VEC_DEFAULT`]).
fn vec_copies() -> bool {
    super::ops::env_switch("MAMBA_CUDA_BB_VEC", VEC_DEFAULT)
}

/// The defaults of the sixtieth session's three changes (NOTES.md), on since the sixty-first
/// session ran them on an H100: every `gpu_block_train` test and the goldens pass with them;
/// bf16 forward+backward at the LM width (b8 L2048 d_model 768) 2574-2588 us with all three
/// against 3256-3258 without (without VEC 2754-2770, without DZX16 3027, without PAIRS
/// 2578-2612; the pairs' forward 491-497 against 516-519).
const VEC_DEFAULT: bool = true;
const DZX16_DEFAULT: bool = true;

/// Whether a 16-bit block's backward keeps dzx in the storage type
/// (`MAMBA_CUDA_BB_DZX16=1` / `0`; the default [`DZX16_DEFAULT`]).
pub(super) fn dzx16_on() -> bool {
    super::ops::env_switch("MAMBA_CUDA_BB_DZX16", DZX16_DEFAULT)
}
pub(super) const NORM_PAIRS_DEFAULT: bool = true;
/// The norm backward's pairs form with the next row's loads issued before the block sums
/// (kernels/block_bwd.cu `bb_norm_bwd_pairs` PF; sixty-fourth session, NOTES.md): H100, ncu at
/// the LM width (bf16) 184 against 212 us, 64 registers and 46% occupancy against 80 and 33%;
/// the block's bf16 backward there 1715-1718 against 1746-1748 us.
const NORM_PF_DEFAULT: bool = true;
/// The conv backward on strided views of zx and dzx (sixty-second session): every
/// `gpu_block_train` test passes with it on an H100 (the switch test with it on and off); bf16
/// forward+backward at the LM width 2482 us against 2568-2573 with the dense copies.
const CONV_DIRECT_DEFAULT: bool = true;
/// The SSD backward on strided views of the conv output, in_proj's rows and their gradients
/// (sixty-fourth session; NOTES.md).
const SSD_DIRECT_DEFAULT: bool = true;

/// Converts (or copies) every copy of `cs` from type `ts` to `td` in one launch.
fn copy2d(g: &Gpu, ts: &str, td: &str, cs: &[Copy2d], stream: u64) -> PResult<()> {
    if cs.is_empty() || cs.len() > BB_COPIES {
        return Err(PErr::invalid(format!(
            "Mamba2Block backward: {} copies in one launch (1..={BB_COPIES})",
            cs.len()
        )));
    }
    let f = g.func(&format!("bb_copyn_{ts}_{td}"))?;
    let mut p = BbCopyNParams {
        n: cs.len() as i32,
        ..Default::default()
    };
    // Four columns per thread where every row start of both sides is aligned to four
    // elements (8 or 16 bytes): a warp moved 64 bytes per 16-bit access before.
    let (ss, ds) = (type_size(ts), type_size(td));
    let vec_ok = vec_copies();
    let vec = |c: &Copy2d| {
        let aligned = c.src.is_multiple_of((4 * ss) as u64)
            && c.dst.is_multiple_of((4 * ds) as u64)
            && c.sld.is_multiple_of(4)
            && c.dld.is_multiple_of(4);
        if aligned && vec_ok {
            4
        } else {
            1
        }
    };
    for (d, c) in p.c.iter_mut().zip(cs) {
        *d = BbCopyParams {
            src: c.src,
            dst: c.dst,
            sld: c.sld as i64,
            dld: c.dld as i64,
            rows: c.rows as i64,
            cols: c.cols as i64,
            vec: vec(c),
            pad0: 0,
        };
    }
    // The widest copy's threads along x.
    let cols = p.c[..cs.len()]
        .iter()
        .map(|c| (c.cols as usize).div_ceil(c.vec as usize))
        .max()
        .unwrap_or(1);
    let rows = cs.iter().map(|c| c.rows).max().unwrap_or(1);
    // Eight rows per thread (two groups of four loads in flight): a block per row was
    // ~15 waves of blocks that each moved one element per thread.
    let gy = rows.div_ceil(8).clamp(1, 65535) as u32;
    g.launch(
        f,
        (cols.div_ceil(256).max(1) as u32, gy, cs.len() as u32),
        256,
        0,
        stream,
        &p,
    )
}

fn strided(o: Operand) -> Strided {
    Strided {
        ptr: o.ptr,
        s0: o.s0,
        s1: o.s1,
    }
}

/// Whether [`gemm`] may hand products to cuBLASLt (`MAMBA_CUDA_BB_GEMM` not `own` / `tc`).
fn bb_lt() -> bool {
    let mode = super::ops::env_str("MAMBA_CUDA_BB_GEMM");
    !matches!(mode.as_deref(), Some("own") | Some("tc"))
}

/// `c (m, n1) = X . W` from a shared split where there is one and cuBLASLt takes it, else
/// `own` (the product as [`gemm`] does it).
fn rows_or(
    g: &Gpu,
    sh: Option<&SharedSplit>,
    c: u64,
    ldc: usize,
    stream: u64,
    own: impl FnOnce() -> PResult<()>,
) -> PResult<()> {
    if let Some(sh) = sh {
        if g.gemm.shared_rows(sh, c, ldc, stream)? {
            return Ok(());
        }
    }
    own()
}

/// `c (k, n2) = X^T . U` from a shared split, as [`rows_or`].
fn cols_or(
    g: &Gpu,
    sh: Option<&SharedSplit>,
    c: u64,
    ldc: usize,
    stream: u64,
    own: impl FnOnce() -> PResult<()>,
) -> PResult<()> {
    if let Some(sh) = sh {
        if g.gemm.shared_cols(sh, c, ldc, stream)? {
            return Ok(());
        }
    }
    own()
}

/// `out (m, n) = A (m, k) . B (k, n)` with f32 accumulation; `A(i, k) = a[i a.s0 + k
/// a.s1]`, `B(k, j) = b[k b.s0 + j b.s1]`. Written dense to `out` in type `out_ty`
/// ("f32" or the storage type). Few output tiles: split along k into f32 partials,
/// then summed. `tf32`: f32 operands on cuBLASLt's TF32 tensor-core kernels (where
/// cuBLASLt takes the product; our kernels stay f32).
#[allow(clippy::too_many_arguments)]
fn gemm(
    g: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    out: u64,
    out_ty: &str,
    tf32: bool,
    stream: u64,
) -> PResult<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    // `MAMBA_CUDA_BB_GEMM`: `lt` (the default, and any other value) cuBLASLt where it is
    // loaded and both operands have one type (f32, or the 16-bit storage type with an f32
    // or 16-bit output), else our f32 FMA kernel (`bb_gemm_*`); `own` that kernel always;
    // `tc` our 3xTF32 tensor-core kernel (`bb_gemmt_*`) always (slower than cuBLASLt's f32
    // kernels at the seed's shapes: NOTES.md, thirty-ninth session).
    let mode = super::ops::env_str("MAMBA_CUDA_BB_GEMM");
    let mode = mode.as_deref().unwrap_or(BB_GEMM_DEFAULT);
    let ty_code = |t: &str| match t {
        "f32" => Some(dtype::F32),
        "bf16" => Some(dtype::BF16),
        "f16" => Some(dtype::F16),
        _ => None,
    };
    if let (Some(ab), Some(ot)) = (ty_code(a.ty), ty_code(out_ty)) {
        if a.ty == b.ty && (ot == dtype::F32 || ot == ab) && mode != "own" && mode != "tc" {
            let st = |o: Operand| Strided {
                ptr: o.ptr,
                s0: o.s0,
                s1: o.s1,
            };
            if g.gemm
                .run_strided(ab, ot, tf32, m, n, k, st(a), st(b), out, n, stream)?
            {
                return Ok(());
            }
        }
    }
    let kernel = if mode == "tc" { "bb_gemmt" } else { "bb_gemm" };
    let f = g.func(&format!("{kernel}_{}_{}", a.ty, b.ty))?;
    let tiles = m.div_ceil(64) * n.div_ceil(64);
    let want = 2 * g.sm_count.max(1) as usize;
    let mut splits = if tiles >= want / 2 {
        1
    } else {
        want.div_ceil(tiles).min((k / 128).max(1))
    };
    let kps = k.div_ceil(splits).div_ceil(16).max(1) * 16;
    splits = k.div_ceil(kps).max(1);
    if m > 65535 * 64 || splits > 65535 {
        return Err(PErr::unsupported("Mamba2Block backward: GEMM too large"));
    }
    let direct = splits == 1 && out_ty == "f32";
    let parts = if direct {
        0
    } else {
        g.alloc_async(splits * m * n * 4, stream)?
    };
    let run = || -> PResult<()> {
        let p = BbGemmParams {
            a: a.ptr,
            b: b.ptr,
            c: if direct { out } else { parts },
            a_si: a.s0,
            a_sk: a.s1,
            b_sk: b.s0,
            b_sj: b.s1,
            ldc: n as i64,
            split_stride: (m * n) as i64,
            m: m as i32,
            n: n as i32,
            k: k as i32,
            kps: kps as i32,
        };
        g.launch(
            f,
            (n.div_ceil(64) as u32, m.div_ceil(64) as u32, splits as u32),
            256,
            0,
            stream,
            &p,
        )?;
        if !direct {
            let fs = g.func(&format!("bb_sum_{out_ty}"))?;
            let s = BbSumParams {
                parts,
                out,
                count: (m * n) as i64,
                stride: (m * n) as i64,
                splits: splits as i32,
                pad0: 0,
            };
            g.launch(fs, (grid1(m * n, 256), 1, 1), 256, 0, stream, &s)?;
        }
        Ok(())
    };
    let r = run();
    if parts != 0 {
        let fr = g.free_async(parts, stream);
        return r.and(fr);
    }
    r
}

/// # Safety
/// `block` came from `block_create` and is alive; the pointers of `desc` are device
/// memory holding the tensors the ABI documents for [`BlockBackwardDesc`].
pub(crate) unsafe fn block_backward(
    block: *mut c_void,
    desc: &BlockBackwardDesc,
    stream: u64,
) -> PResult<()> {
    let g = gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "backward") }?;
    b.backward(g, desc, None, stream)
}

/// # Safety
/// As [`block_backward`]; `saved` is what `block_forward_saving` wrote for the same
/// input and initial states, `bytes` long.
pub(crate) unsafe fn block_backward_saved(
    block: *mut c_void,
    desc: &BlockBackwardDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> PResult<()> {
    let g = gpu()?;
    // SAFETY: the caller passes a live block from block_create (or null).
    let b = unsafe { live(block, "backward_saved") }?;
    b.backward(g, desc, Some((saved, bytes)), stream)
}

impl Block {
    fn backward(
        &self,
        g: &Gpu,
        f: &BlockBackwardDesc,
        saved: Option<(u64, usize)>,
        stream: u64,
    ) -> PResult<()> {
        let c = &self.cfg;
        if f.batch == 0 || f.seqlen == 0 {
            return Err(PErr::invalid(
                "Mamba2Block backward: batch and seqlen must be positive",
            ));
        }
        for (name, p) in [
            ("input", f.input),
            ("dout", f.dout),
            ("dinput", f.dinput),
            ("din_proj", f.din_proj),
            ("dconv_weight", f.dconv_weight),
            ("ddt_bias", f.ddt_bias),
            ("da_log", f.da_log),
            ("dd", f.dd),
            ("dnorm_weight", f.dnorm_weight),
            ("dout_proj", f.dout_proj),
        ] {
            if p == 0 {
                return Err(PErr::invalid(format!(
                    "Mamba2Block backward: `{name}` is required"
                )));
            }
        }
        let act = self.act;
        let ty = super::ops::suffix(act, "Mamba2Block backward")?;
        let (b, l) = (f.batch as usize, f.seqlen as usize);
        let m = b * l;
        let (dm, di, h, p, n, ng, cd, wd) = (
            c.d_model as usize,
            c.d_inner(),
            c.nheads(),
            c.headdim as usize,
            c.d_state as usize,
            c.ngroups as usize,
            c.conv_dim(),
            c.d_conv as usize,
        );
        if m > 65535 * 65535 || ng > 65535 {
            return Err(PErr::unsupported(
                "Mamba2Block backward: too many tokens for one launch",
            ));
        }
        let dip = c.d_in_proj();
        let gn = ng * n;
        let es = dtype::size(act);
        let align = |v: usize| v.div_ceil(256) * 256;
        // The forward's activations: kept by the saving forward, or recomputed here.
        let kept = match saved {
            Some((ptr, bytes)) => {
                Some(self.saved_slots("Mamba2Block backward_saved", b, l, ptr, bytes)?)
            }
            None => None,
        };
        let act_bytes = |k: usize| if kept.is_some() { 0 } else { m * k * es };
        // A 16-bit block's in_proj products in f32 on cuBLASLt (the input converted to
        // f32, the f32 copy of the weight); `MAMBA_CUDA_BB_MIXED=own` keeps them on our
        // mixed-type GEMM.
        // Products beside each other on a side stream from 512 token rows on (below it
        // the fork / join costs more than the overlap gives: at b2 L100 f32 a step took
        // ~25 us longer); `MAMBA_CUDA_BB_OVERLAP=0` / `=1` forces it off / on.
        let overlap = match super::ops::env_str("MAMBA_CUDA_BB_OVERLAP").as_deref() {
            Some("0") => false,
            Some("1") => true,
            _ => m >= 512,
        };
        // A 16-bit block's dzx (the gradient of in_proj's output) in the storage type, and
        // in_proj's two backward products on the 16-bit tensor cores with f32 sums, as
        // mamba-ssm's under autocast (sixtieth session: NOTES.md). bf16 rounds dzx to 8
        // significant bits, f16 to 11 (TF32's); the input's gradient is stored in that type
        // anyway. `MAMBA_CUDA_BB_DZX16=1` / `0` (default [`DZX16_DEFAULT`]); off, dzx is f32
        // with the products below.
        let dz16 = act != dtype::F32 && dzx16_on();
        let (dzx_ty, zs) = if dz16 { (ty, es) } else { ("f32", 4) };
        // The conv backward reads its input where in_proj's output holds it and, where dzx is
        // in the storage type, writes its input's gradient into dzx's columns (strided: no
        // dense copies of either; sixty-second session). `MAMBA_CUDA_BB_CONV_DIRECT=1` / `0`
        // (default [`CONV_DIRECT_DEFAULT`]); off, dense copies as before.
        let conv_strided = super::ops::env_switch("MAMBA_CUDA_BB_CONV_DIRECT", CONV_DIRECT_DEFAULT);
        let conv_direct = conv_strided && dzx_ty == ty;
        // The SSD backward reads x, B, C from the conv output's rows and dt from in_proj's,
        // and writes dx, dB, dC into the conv output gradient's rows and, where dzx is in the
        // storage type, d dt into dzx's columns (strided views: no dense copies; sixty-fourth
        // session). `MAMBA_CUDA_BB_SSD_DIRECT=1` / `0` (default [`SSD_DIRECT_DEFAULT`]); off,
        // dense copies as before.
        let ssd_direct = super::ops::env_switch("MAMBA_CUDA_BB_SSD_DIRECT", SSD_DIRECT_DEFAULT);
        let ddt_direct = ssd_direct && dzx_ty == ty;
        let wide = !dz16
            && self.in_proj_f32 != 0
            && super::ops::env_str("MAMBA_CUDA_BB_MIXED").as_deref() != Some("own");
        // ... and those two products on the TF32 tensor cores: dzx (f32) rounded to 11
        // significant bits, the weight's and the input's 16-bit values exact, f32 sums; the
        // 16-bit storage rounds the input's gradient further. In f32 arithmetic they were
        // most of the step at a language model's width (fifty-ninth session: NOTES.md);
        // `MAMBA_CUDA_BB_TF32=0` keeps f32 arithmetic.
        let tf32 = wide && super::ops::env_str("MAMBA_CUDA_BB_TF32").as_deref() != Some("0");
        // The norm's backward sums the weight's gradient over k rows per block in shared
        // memory (one f32 per column of a group) and writes a row of partial sums per block,
        // instead of (b L, d_inner) f32 terms that the column sum reads back. The default: 16
        // rows per block where that still leaves 4 blocks per SM, else a row per block
        // (sixty-first session, H100: bf16 forward+backward at the LM width (b8 L2048
        // d_model 768) 2520-2545 against 2574-2588 us; at (2, 400 / 800, 192), 50-100 blocks,
        // 16 rows per block were 4-7% slower). `MAMBA_CUDA_BB_NORM_RPB=k` forces k. One row
        // per block where a group's columns take more than 40 KB (the 48 KB a launch may use
        // without opting in, less the block sum's).
        let group_bytes = di / ng * 4;
        let norm_rpb = if group_bytes <= 40 << 10 {
            let wide_rows = m.div_ceil(16) * ng >= 4 * g.sm_count.max(1) as usize;
            super::ops::env_usize("MAMBA_CUDA_BB_NORM_RPB")
                .unwrap_or(if wide_rows { 16 } else { 1 })
                .clamp(1, 1024)
        } else {
            1
        };
        let norm_smem = if norm_rpb > 1 { group_bytes } else { 0 };
        // Scratch: (name, bytes), carved from one stream-ordered allocation.
        let sizes = [
            act_bytes(dip),                       // 0 zx: in_proj's output
            act_bytes(cd),                        // 1 xbc: conv + silu's output
            act_bytes(di),                        // 2 y
            act_bytes(di),                        // 3 normed
            m * di * 4,                           // 4 dn: d normed (f32)
            m * di * es,                          // 5 dy
            m * di * 4,                           // 6 dwrow
            m * dip * zs,                         // 7 dzx: d in_proj's output (f32 or 16-bit)
            m * di * es * !ssd_direct as usize,   // 8 x dense
            m * h * es * !ssd_direct as usize,    // 9 dt dense
            m * gn * es * !ssd_direct as usize,   // 10 B dense
            m * gn * es * !ssd_direct as usize,   // 11 C dense
            m * di * es * !ssd_direct as usize,   // 12 dx
            m * h * es * !ddt_direct as usize,    // 13 ddt
            m * gn * es * !ssd_direct as usize,   // 14 dB
            m * gn * es * !ssd_direct as usize,   // 15 dC
            h * 4,                                // 16 dA
            m * cd * es,                          // 17 d conv output (dense)
            m * cd * es * !conv_strided as usize, // 18 conv input (dense)
            m * cd * es * !conv_direct as usize,  // 19 d conv input (dense)
            m * dm * 4 * wide as usize,           // 20 u as f32 (16-bit blocks)
            m * dm * 4 * wide as usize,           // 21 d input as f32 (16-bit blocks)
        ];
        let total: usize = sizes.iter().map(|&s| align(s)).sum();
        let scratch = g.alloc_async(total, stream)?;
        let mut at = [0u64; 22];
        let mut off = scratch;
        for (i, s) in sizes.iter().enumerate() {
            at[i] = off;
            off += align(*s) as u64;
        }
        if let Some(k) = kept {
            at[..4].copy_from_slice(&k);
        }
        let [zx, xbc, y, normed, dn, dy, dwrow, dzx, xg, dtg, bg, cg, dxg, ddtg, dbg, dcg, da, dxbc, xpre, dxpre, u32s, din32] =
            at;
        let run = || -> PResult<()> {
            // The forward's activations, unless the saving forward kept them.
            if kept.is_none() {
                self.forward_into(
                    g,
                    b,
                    l,
                    &FwdBufs {
                        input: f.input,
                        zx,
                        xbc,
                        y,
                        normed,
                        out: 0,
                        conv_init: f.conv_init,
                        conv_final: 0,
                        ssm_init: f.ssm_init,
                        ssm_final: 0,
                        add: false,
                    },
                    stream,
                )?;
            }
            // 6. out_proj: dn = dout . W_out; dW_out = dout^T . normed.
            let dout_rows = Operand {
                ptr: f.dout,
                ty,
                s0: dm as i64,
                s1: 1,
            };
            let dout_cols = Operand {
                ptr: f.dout,
                ty,
                s0: 1,
                s1: dm as i64,
            };
            let w_out = Operand {
                ptr: self.out_proj,
                ty,
                s0: di as i64,
                s1: 1,
            };
            let normed_op = Operand {
                ptr: normed,
                ty,
                s0: di as i64,
                s1: 1,
            };
            // dW_out needs only dout and normed: it runs on the plugin's side stream
            // beside dn and the norm's backward (`MAMBA_CUDA_BB_OVERLAP=0`: in order).
            // f32: dout split once for both products (`Gemm::split_shared`).
            let shared = if ty == "f32" && bb_lt() {
                g.gemm.split_shared(
                    m,
                    dm,
                    di,
                    di,
                    strided(dout_rows),
                    strided(w_out),
                    strided(normed_op),
                    stream,
                )?
            } else {
                None
            };
            let main = |s: u64| -> PResult<()> {
                rows_or(g, shared.as_ref(), dn, di, s, || {
                    gemm(g, m, di, dm, dout_rows, w_out, dn, "f32", false, s)
                })?;
                // 5. The gated RMS norm: dy, dz (into dzx's first d_inner columns), d
                // weight.
                let dz_sfx = if dz16 { "_dz16" } else { "" };
                // Column pairs per access with the row kept in registers where every row
                // start is aligned to two elements and the group fits (`MAMBA_CUDA_NORM_PAIRS=1`
                // / `0`, default `NORM_PAIRS_DEFAULT`; off: a column per access, the values
                // loaded twice).
                let gs = di / ng;
                let pairs = gs.is_multiple_of(2)
                    && gs / 2 <= BB_NORM_PAIRS * 256
                    && di.is_multiple_of(2)
                    && dip.is_multiple_of(2)
                    && [(y, es), (zx, es), (dy, es), (dn, 4), (dzx, zs)]
                        .iter()
                        .all(|&(a, size)| a.is_multiple_of(2 * size as u64))
                    && super::ops::env_switch("MAMBA_CUDA_NORM_PAIRS", NORM_PAIRS_DEFAULT);
                // The pairs form loading each row's values before the previous row's block
                // sums where its block has several rows (`MAMBA_CUDA_NORM_PF=1` / `0`, default
                // `NORM_PF_DEFAULT`; sixty-fourth session).
                let pf =
                    norm_rpb > 1 && super::ops::env_switch("MAMBA_CUDA_NORM_PF", NORM_PF_DEFAULT);
                let (form, threads) = if pairs {
                    (
                        if pf { "_pairspf" } else { "_pairs" },
                        (gs / 2).next_power_of_two().clamp(32, 256) as u32,
                    )
                } else {
                    ("", gs.next_power_of_two().clamp(32, 256) as u32)
                };
                let fnorm = g.func(&format!("bb_norm_bwd{form}_{ty}{dz_sfx}"))?;
                let np = BbNormBwdParams {
                    y,
                    z: zx,
                    weight: self.norm_w,
                    dn,
                    dy,
                    dz: dzx,
                    dwrow,
                    z_ld: dip as i64,
                    dz_ld: dip as i64,
                    m: m as i32,
                    d_inner: di as i32,
                    group: (di / ng) as i32,
                    norm_before_gate: (c.norm_before_gate != 0) as i32,
                    eps: c.rmsnorm_eps,
                    rpb: norm_rpb as i32,
                };
                let (blocks, smem) = (m.div_ceil(norm_rpb), norm_smem);
                g.launch(fnorm, (blocks as u32, ng as u32, 1), threads, smem, s, &np)?;
                let fcol = g.func("bb_colsum_f32")?;
                let cp = BbColsumParams {
                    src: dwrow,
                    dst: f.dnorm_weight,
                    ld: di as i64,
                    rows: blocks as i32,
                    cols: di as i32,
                };
                g.launch(fcol, (di.div_ceil(32) as u32, 1, 1), 1024, 0, s, &cp)
            };
            let side = |s: u64| {
                cols_or(g, shared.as_ref(), f.dout_proj, di, s, || {
                    gemm(
                        g,
                        dm,
                        di,
                        m,
                        dout_cols,
                        normed_op,
                        f.dout_proj,
                        "f32",
                        false,
                        s,
                    )
                })
            };
            let r = if overlap {
                g.overlapped(stream, main, side)
            } else {
                main(stream).and_then(|_| side(stream))
            };
            let fr = shared.map_or(Ok(()), |sh| g.gemm.shared_free(sh, stream));
            r?;
            fr?;
            // 4. SSD backward on strided views of x, dt, B, C (or dense copies of them).
            let cp = |src: u64, sld: usize, dst: u64, dld: usize, cols: usize| Copy2d {
                src,
                sld,
                dst,
                dld,
                rows: m,
                cols,
            };
            let at = |base: u64, col: usize, size: usize| base + (col * size) as u64;
            let mut ins = Vec::new();
            if !ssd_direct {
                ins.extend([
                    cp(xbc, cd, xg, di, di),
                    cp(at(xbc, di, es), cd, bg, gn, gn),
                    cp(at(xbc, di + gn, es), cd, cg, gn, gn),
                    cp(at(zx, dip - h, es), dip, dtg, h, h),
                ]);
            }
            if !conv_strided {
                ins.push(cp(at(zx, di, es), dip, xpre, cd, cd));
            }
            if !ins.is_empty() {
                copy2d(g, ty, ty, &ins, stream)?;
            }
            // A (b, l, ...) view of `cols` columns of rows `ld` elements apart.
            let rows = |ptr: u64, ty: u32, dims: &[usize], ld: usize| {
                let r = dims.len();
                let mut st = vec![0i64; r];
                st[r - 1] = 1;
                for k in (2..r - 1).rev() {
                    st[k] = st[k + 1] * dims[k + 1] as i64;
                }
                st[1] = ld as i64;
                st[0] = (l * ld) as i64;
                TensorDesc::dense(ptr, ty, dims).with_strides(&st)
            };
            let io = [b, l, h, p];
            let bcd = [b, l, ng, n];
            let (xv, dtv, bv, cv, dxv, dbv, dcv) = if ssd_direct {
                (
                    rows(xbc, act, &io, cd),
                    rows(at(zx, dip - h, es), act, &[b, l, h], dip),
                    rows(at(xbc, di, es), act, &bcd, cd),
                    rows(at(xbc, di + gn, es), act, &bcd, cd),
                    rows(dxbc, act, &io, cd),
                    rows(at(dxbc, di, es), act, &bcd, cd),
                    rows(at(dxbc, di + gn, es), act, &bcd, cd),
                )
            } else {
                (
                    TensorDesc::dense(xg, act, &io),
                    TensorDesc::dense(dtg, act, &[b, l, h]),
                    TensorDesc::dense(bg, act, &bcd),
                    TensorDesc::dense(cg, act, &bcd),
                    TensorDesc::dense(dxg, act, &io),
                    TensorDesc::dense(dbg, act, &bcd),
                    TensorDesc::dense(dcg, act, &bcd),
                )
            };
            let ddtv = if ddt_direct {
                rows(at(dzx, di + cd, zs), act, &[b, l, h], dip)
            } else {
                TensorDesc::dense(ddtg, act, &[b, l, h])
            };
            let opt_f32 = |ptr: u64, dims: &[usize]| {
                if ptr == 0 {
                    TensorDesc::NONE
                } else {
                    TensorDesc::dense(ptr, dtype::F32, dims)
                }
            };
            let st = [b, h, p, n];
            let sd = SsdBwdDesc {
                fwd: SsdDesc {
                    x: xv,
                    dt: dtv,
                    a: TensorDesc::dense(self.a, dtype::F32, &[h]),
                    b: bv,
                    c: cv,
                    d: TensorDesc::dense(self.d, dtype::F32, &[h]),
                    z: TensorDesc::NONE,
                    dt_bias: TensorDesc::dense(self.dt_bias, dtype::F32, &[h]),
                    initial_states: opt_f32(f.ssm_init, &st),
                    seq_idx: TensorDesc::NONE,
                    out: TensorDesc::NONE,
                    final_states: TensorDesc::NONE,
                    dt_softplus: 1,
                    has_dt_limit: c.has_dt_limit,
                    dt_lo: c.dt_lo,
                    dt_hi: c.dt_hi,
                    chunk_size: c.chunk_size,
                    reserved: 0,
                },
                dout: TensorDesc::dense(dy, act, &io),
                dfinal_states: opt_f32(f.dssm_final, &st),
                dx: dxv,
                ddt: ddtv,
                da: TensorDesc::dense(da, dtype::F32, &[h]),
                db: dbv,
                dc: dcv,
                dd: TensorDesc::dense(f.dd, dtype::F32, &[h]),
                dz: TensorDesc::NONE,
                ddt_bias: TensorDesc::dense(f.ddt_bias, dtype::F32, &[h]),
                dinitial_states: opt_f32(f.dssm_init, &st),
            };
            super::bwd::ssd_backward(&sd, stream)?;
            // dA_log = dA * A (A = -exp(A_log)).
            let fmul = g.func("bb_mul_f32")?;
            let mp = BbMulParams {
                a: da,
                b: self.a,
                out: f.da_log,
                n: h as i32,
                pad0: 0,
            };
            g.launch(fmul, (1, 1, 1), 256, 0, stream, &mp)?;
            // 3. The conv output's gradient [dx | dB | dC], dense (written in place with
            // `ssd_direct`).
            if !ssd_direct {
                copy2d(
                    g,
                    ty,
                    ty,
                    &[
                        cp(dxg, di, dxbc, cd, di),
                        cp(dbg, gn, at(dxbc, di, es), cd, gn),
                        cp(dcg, gn, at(dxbc, di + gn, es), cd, gn),
                    ],
                    stream,
                )?;
            }
            // 2. Conv + silu backward on the dense copy of its input.
            let cst = [b, cd, wd - 1];
            // A (b, l, cd) view whose rows are in_proj's (zx / dzx): row stride dip.
            let in_rows = |ptr| rows(ptr, act, &[b, l, cd], dip);
            let has_bias = self.conv_b != 0;
            let cb = Conv1dBwdDesc {
                fwd: Conv1dDesc {
                    x: if conv_strided {
                        in_rows(at(zx, di, es))
                    } else {
                        TensorDesc::dense(xpre, act, &[b, l, cd])
                    },
                    weight: TensorDesc::dense(self.conv_w, dtype::F32, &[cd, wd]),
                    bias: if has_bias {
                        TensorDesc::dense(self.conv_b, dtype::F32, &[cd])
                    } else {
                        TensorDesc::NONE
                    },
                    initial_states: opt_f32(f.conv_init, &cst),
                    out: TensorDesc::NONE,
                    final_states: TensorDesc::NONE,
                    activation: activation::SILU,
                    channel_last: 1,
                },
                dout: TensorDesc::dense(dxbc, act, &[b, l, cd]),
                dfinal_states: opt_f32(f.dconv_final, &cst),
                dx: if conv_direct {
                    in_rows(at(dzx, di, zs))
                } else {
                    TensorDesc::dense(dxpre, act, &[b, l, cd])
                },
                dweight: TensorDesc::dense(f.dconv_weight, dtype::F32, &[cd, wd]),
                dbias: if has_bias {
                    opt_f32(f.dconv_bias, &[cd])
                } else {
                    TensorDesc::NONE
                },
                dinitial_states: opt_f32(f.dconv_init, &cst),
            };
            super::bwd::causal_conv1d_backward(&cb, stream)?;
            if !has_bias && f.dconv_bias != 0 {
                super::memset(f.dconv_bias, 0, cd * 4, stream)?;
            }
            // 1. dzx = [dz | d conv input | ddt], then in_proj: du = dzx . W_in and
            // dW_in = dzx^T . u.
            let mut up = Vec::new();
            if !ddt_direct {
                up.push(cp(ddtg, h, at(dzx, di + cd, zs), dip, h));
            }
            if !conv_direct {
                up.push(cp(dxpre, cd, at(dzx, di, zs), dip, cd));
            }
            if wide {
                up.push(cp(f.input, dm, u32s, dm, dm));
            }
            if !up.is_empty() {
                copy2d(g, ty, dzx_ty, &up, stream)?;
            }
            let dzx_rows = Operand {
                ptr: dzx,
                ty: dzx_ty,
                s0: dip as i64,
                s1: 1,
            };
            let dzx_cols = Operand {
                ptr: dzx,
                ty: dzx_ty,
                s0: 1,
                s1: dip as i64,
            };
            let (w_ptr, u_ptr, wty) = if wide {
                (self.in_proj_f32, u32s, "f32")
            } else {
                (self.in_proj, f.input, ty)
            };
            let w_in = Operand {
                ptr: w_ptr,
                ty: wty,
                s0: dm as i64,
                s1: 1,
            };
            let u = Operand {
                ptr: u_ptr,
                ty: wty,
                s0: dm as i64,
                s1: 1,
            };
            // f32 products: dzx split once for both (`Gemm::split_shared`).
            let shared = if dzx_ty == "f32" && wty == "f32" && !tf32 && bb_lt() {
                g.gemm.split_shared(
                    m,
                    dip,
                    dm,
                    dm,
                    strided(dzx_rows),
                    strided(w_in),
                    strided(u),
                    stream,
                )?
            } else {
                None
            };
            // du and dW_in, one beside the other.
            let main = |s: u64| -> PResult<()> {
                if wide {
                    // f32 products write f32; the input's gradient is then converted.
                    rows_or(g, shared.as_ref(), din32, dm, s, || {
                        gemm(g, m, dm, dip, dzx_rows, w_in, din32, "f32", tf32, s)
                    })?;
                    copy2d(g, "f32", ty, &[cp(din32, dm, f.dinput, dm, dm)], s)
                } else {
                    rows_or(g, shared.as_ref(), f.dinput, dm, s, || {
                        gemm(g, m, dm, dip, dzx_rows, w_in, f.dinput, ty, false, s)
                    })
                }
            };
            let side = |s: u64| {
                cols_or(g, shared.as_ref(), f.din_proj, dm, s, || {
                    gemm(g, dip, dm, m, dzx_cols, u, f.din_proj, "f32", tf32, s)
                })
            };
            let r = if overlap {
                g.overlapped(stream, main, side)
            } else {
                main(stream).and_then(|_| side(stream))
            };
            let fr = shared.map_or(Ok(()), |sh| g.gemm.shared_free(sh, stream));
            r.and(fr)
        };
        let r = run();
        let fr = g.free_async(scratch, stream);
        r.and(fr)
    }
}
