//! The Mamba-1 forward for many channels (kernels/scan1_lm.cu, `lm1_fwd_*`): launch
//! planning. One launch, no time split: G threads per channel (1, 2 or 4) hold all of its
//! N <= 16 states in registers; tiles of 32 steps go through a ring of three shared-memory
//! stages (cp.async when the rows are 16-byte aligned).
//!
//! `MAMBA_CUDA_SCAN1_LM=1` forces it wherever it applies, `=0` never takes it;
//! `MAMBA_CUDA_SCAN1_LM_G` (1, 2 or 4; 4 for N > 8 only) and `MAMBA_CUDA_SCAN1_LM_CB` (channels per block) shape it;
//! `MAMBA_CUDA_SCAN1_LM_POLY=1` takes the `_p` kernels (N > 8: 3 of 16 exponentials per
//! thread, 2 of 8 with G = 2, on the FMA pipe by a polynomial); `MAMBA_CUDA_SCAN1_LM_PREP=1`
//! the `_q` kernels (dt and dt * u of the tile computed block-wide into shared memory, D
//! and the gate applied in the store pass: a step loop with the recurrence only);
//! `MAMBA_CUDA_SCAN1_LM_RS=1` the `_r` kernels (G > 1: y reduce-scattered once per G steps
//! instead of all-reduced every step; full tiles without the tail checks).
//! `MAMBA_CUDA_SCAN1_LM_G=8` (N > 8) takes the `_w3` kernels: eight threads per channel,
//! two states each (32 warps per SM at the LM shape), dt and dt * u staged per tile, y
//! reduce-scattered once per eight steps, D and the gate in the store pass, two stages;
//! bf16 with the softplus by lg2 and the gate by tanh.approx; each thread prepares and
//! stores four steps of its own channel. `MAMBA_CUDA_SCAN1_LM_WV=1` / `=2` take the
//! earlier versions `_w` (exact softplus and gate, block-wide index loops) / `_w2`; `=4`
//! `_w4` (y's partial sums transposed through shared memory instead of shuffles); `=5`
//! `_w5` (16-bit types: B and C packed in their storage type, one 16-byte load per two
//! steps); `=6` `_w6` (`_w5` with the tile loads on offsets computed once); `=7` `_w7`
//! (`_w6` with the B/C conversion straight-line from 256 threads on); `=8` `_w8` (`_w6`
//! reading B and C straight from the staged rows: no conversion pass, one barrier per
//! tile); `=9` `_w9` (`_w7` with 64-step tiles: half the barriers and per-tile passes).
//! The default for N > 8 is G 8 (from 30 channels per SM): `_w9` for bf16 in 64-channel
//! blocks, `_w6` for f32 and other bf16 blocks, `_w3` for f16 (`=3` forces `_w3`, `=5`
//! `_w5`, `=6` `_w6`); N <= 8 G 2. Where every staged row is 16-byte aligned, `_w6`, `_w9`
//! and their checkpoint forms run as `_w6a`, `_w9a`, `_w6cka`, `_w9cka` (the unaligned
//! staging compiled out: no spills; see `aligned_form`).

use std::sync::OnceLock;

use super::ops::{env_str, env_usize};
use super::params::Scan1Params;
use super::{Func, Gpu};
use crate::{PErr, PResult};

/// Steps per tile and stages of the ring (kernels/scan1_lm.cu `LM_TT`, `LM_NST`).
const TT: usize = 32;
const NST: usize = 3;

/// Shared memory of `lm1_fwd` in bytes (kernels/scan1_lm.cu `lm_smem_bytes`).
pub(crate) fn lm1_smem(es: usize, cb: usize, ns: usize, prep: bool) -> usize {
    let rb = (TT + 16 / es) * es;
    NST * (3 * cb + 2 * ns) * rb + TT * 2 * ns * 4 + if prep { 3 } else { 1 } * cb * (TT + 4) * 4
}

/// Shared memory of the `_w` kernels (kernels/scan1_lm.cu `lmw_smem_bytes`): two stages,
/// B and C in f32, dt and dt * u; `red` (`_w4`): per warp 4 x 72 floats for y's partials;
/// `tt`: steps per tile (64 for `_w9`, else 32).
pub(crate) fn lm1w_smem(es: usize, cb: usize, red: bool, tt: usize) -> usize {
    let rb = (tt + 16 / es) * es;
    2 * (3 * cb + 32) * rb
        + tt * 32 * 4
        + 2 * cb * (tt + 4) * 4
        + if red {
            (cb * 8).div_ceil(32) * 4 * 72 * 4
        } else {
            0
        }
}

/// `lm1_fwd_{f32,bf16,f16}_n{8,16}_g{1,2,4}[_p|_q]`, looked up once (`g4`: N = 16 only;
/// form 1 `_p`: N = 16 and G <= 2 only, part of the exponentials on the FMA pipe; form 2
/// `_q`: dt, dt * u staged per tile and D and the gate in the store pass; form 3 `_r`: G > 1
/// only, y reduce-scattered once per G steps, full tiles without tail checks; forms 4 `_w`,
/// 5 `_w2`, 6 `_w3`, 7 `_w4`, 8 `_w5`, 9 `_w6`, 10 `_w7` and 11 `_w8`: G = 8, N > 8 only;
/// 12 `_w9`; 13 `_w6ck` and 14 `_w9ck`: the training forward that saves checkpoints;
/// 15 `_w6a`, 16 `_w9a`, 17 `_w6cka`, 18 `_w9cka`: those for 16-byte aligned rows only, see
/// `aligned_form`).
fn lm1_func(g: &Gpu, act: usize, ns: usize, gth: usize, form: usize) -> PResult<Func> {
    static FUNCS: [OnceLock<Func>; 456] = [const { OnceLock::new() }; 456];
    let gi = gth.trailing_zeros() as usize;
    let slot = &FUNCS[((act * 2 + (ns == 16) as usize) * 4 + gi) * 19 + form];
    if let Some(f) = slot.get() {
        return Ok(*f);
    }
    let sfx = ["f32", "bf16", "f16"][act];
    let p = [
        "", "_p", "_q", "_r", "_w", "_w2", "_w3", "_w4", "_w5", "_w6", "_w7", "_w8", "_w9",
        "_w6ck", "_w9ck", "_w6a", "_w9a", "_w6cka", "_w9cka",
    ][form];
    let f = g.func(&format!("lm1_fwd_{sfx}_n{ns}_g{gth}{p}"))?;
    Ok(*slot.get_or_init(|| f))
}

/// Forms 9 `_w6`, 12 `_w9`, 13 `_w6ck` and 14 `_w9ck` as their aligned-only kernels
/// (`_w6a`, `_w9a`, `_w6cka`, `_w9cka`) where every staged row is 16-byte aligned
/// (`async_copy` 1): the unaligned staging compiled out (twenty-ninth session: with it, ptxas
/// spilled 80-140 bytes in those kernels under their 64-register cap, and the LM shape ran
/// 8-17% slower: H200 b8 d2048 N16 L2048, bf16 290 -> 312 us, f32 330 -> 387; NOTES.md).
/// `MAMBA_CUDA_SCAN1_LM_AL=0` keeps the general kernels.
fn aligned_form(form: usize, p: &Scan1Params) -> usize {
    if p.async_copy != 1 || env_usize("MAMBA_CUDA_SCAN1_LM_AL") == Some(0) {
        return form;
    }
    match form {
        9 => 15,
        12 => 16,
        13 => 17,
        14 => 18,
        f => f,
    }
}

/// The call, as `selective_scan` checked it.
pub(crate) struct Lm1Call {
    /// Storage type: 0 f32, 1 bf16, 2 f16.
    pub act: usize,
    pub b: usize,
    pub d: usize,
    pub l: usize,
    pub n: usize,
    pub b_groups: i32,
    pub c_groups: i32,
    /// Channels whose B and C groups are the same.
    pub seg: usize,
}

/// Whether the default (no override) takes the new kernel: enough channels to give every
/// SM LM1_MIN_CH_PER_SM of them (LM1_MIN_CH_PER_SM_W with the `_w3` kernels, N > 8; one
/// launch, no time split: fewer channels leave SMs idle, where the older kernels split
/// time) and a sequence of at least LM1_MIN_L steps (where it was measured: H200, b8 / b4 /
/// b2 d2048 N16 L2048, NOTES.md).
fn by_default(g: &Gpu, c: &Lm1Call) -> bool {
    let per_sm = if c.n > 8 {
        LM1_MIN_CH_PER_SM_W
    } else {
        LM1_MIN_CH_PER_SM
    };
    LM1_DEFAULT && c.b * c.d >= per_sm * g.sm_count as usize && c.l >= LM1_MIN_L
}

/// The default rule (see [`by_default`]).
const LM1_DEFAULT: bool = true;
const LM1_MIN_CH_PER_SM: usize = 60;
const LM1_MIN_CH_PER_SM_W: usize = 30;
const LM1_MIN_L: usize = 256;
/// Default threads per channel (`MAMBA_CUDA_SCAN1_LM_G`): 8 (`_w3`) for N > 8, 2 below.
const LM1_G: usize = 8;
/// Default form (`MAMBA_CUDA_SCAN1_LM_PREP`): the step loop with softplus and gate inside.
const LM1_PREP: bool = false;

/// The kernels' parameters for blocks of `cb` channels and `gth` threads per channel (`es`:
/// bytes per element), and the blocks per segment.
fn launch_params(
    base: &Scan1Params,
    c: &Lm1Call,
    es: usize,
    cb: usize,
    gth: usize,
) -> (Scan1Params, usize) {
    // 16-byte rows for cp.async: every staged or written tensor aligned, rows a multiple
    // of 16 bytes.
    let aligned = (c.l * es).is_multiple_of(16)
        && [base.u, base.delta, base.z, base.b, base.c, base.out]
            .iter()
            .all(|p| p.is_multiple_of(16));
    // Rows aligned to 8 or 4 bytes only (f32 at L not a multiple of 4, the 16-bit types at
    // even L not a multiple of 8): the `_w` kernels stage them with cp.async of that size
    // (`async_copy` 8 / 4; the other kernels take plain loads there). Before the twenty-
    // second session every such row went through plain loads: H200, b8 d2048 N16, f32
    // L2046 / 2047 709-711 us against 330 at L2048 (NOTES.md). With the small copies (H200,
    // b8 d2048 N16 forward, against `MAMBA_CUDA_SCAN1_LM_CPW=0`, the plain loads): f32 L1002
    // (8-byte rows) 256 us against 371, L2046 (8) 494 against 724, L2047 (4) 637 against
    // 725; bf16 L1002 (4) 238 against 328, L2044 (8) 395 against 645, L2046 (4) 468 against
    // 644, L2047 (2-byte rows: plain loads) 644. Still 1.3-2x the aligned length's time.
    let staged = [base.u, base.delta, base.z, base.b, base.c];
    let small = [8usize, 4]
        .into_iter()
        .find(|&w| {
            (c.l * es).is_multiple_of(w) && staged.iter().all(|p| p.is_multiple_of(w as u64))
        })
        .filter(|_| env_usize("MAMBA_CUDA_SCAN1_LM_CPW") != Some(0));
    let bps = c.seg.div_ceil(cb);
    let mut p = *base;
    p.cb = cb as i32;
    p.g = gth as i32;
    p.blocks_per_seg = bps as i32;
    p.nchunks = 1;
    p.chunk_len = c.l as i32;
    // Rows aligned to the element only (the 16-bit types at odd L): element loads, LMW_PL
    // per thread issued before their stores (`async_copy` 2; `MAMBA_CUDA_SCAN1_LM_PLB=0`:
    // one by one, each waiting its load, as before the twenty-third session).
    let batched = env_usize("MAMBA_CUDA_SCAN1_LM_PLB") != Some(0);
    p.async_copy = if aligned {
        1
    } else if let Some(w) = small {
        w as i32
    } else if batched {
        2
    } else {
        0
    };
    (p, bps)
}

/// `async_copy` 3 for the `_w9` forms (16-bit types) where `launch_params` gave 2 (rows
/// aligned to the element only): 4-byte cp.async of each row from the aligned word at or
/// before its tile, rows 2 bytes off staged one element on and read with that offset
/// (`MAMBA_CUDA_SCAN1_LM_SHIFT=0`: the element loads of `async_copy` 2). Twenty-third session.
fn shifted(p: &mut Scan1Params, w9: bool, act: usize) {
    if w9 && act != 0 && p.async_copy == 2 && env_usize("MAMBA_CUDA_SCAN1_LM_SHIFT") != Some(0) {
        p.async_copy = 3;
    }
}

/// Runs the call with `lm1_fwd` when it supports it (B and C varying in time, N <= 16) and
/// it is chosen; `Ok(false)` leaves the call to the older kernels.
pub(crate) fn try_lm1(g: &Gpu, base: &Scan1Params, c: &Lm1Call, stream: u64) -> PResult<bool> {
    let forced = match env_str("MAMBA_CUDA_SCAN1_LM").as_deref() {
        Some("0") => return Ok(false),
        Some("1") => true,
        _ => false,
    };
    if c.b_groups <= 0 || c.c_groups <= 0 || c.n > 16 || c.n == 0 {
        return Ok(false);
    }
    if !forced && !by_default(g, c) {
        return Ok(false);
    }
    let es = [4usize, 2, 2][c.act];
    let ns = if c.n <= 8 { 8 } else { 16 };
    let gth = match env_usize("MAMBA_CUDA_SCAN1_LM_G").unwrap_or(LM1_G) {
        8 if ns == 16 => 8,
        4 if ns == 16 => 4,
        2 | 4 | 8 => 2,
        _ => 1,
    };
    let sms = g.sm_count as usize;
    let nseg = c.d / c.seg;
    let mut cb = match env_usize("MAMBA_CUDA_SCAN1_LM_CB") {
        Some(v) if v >= 1 => v.min(if gth == 8 { 64 } else { 256 / gth }),
        _ => {
            // The least channel work on the busiest SM (every SM runs its blocks' channels
            // through one exponential unit), ties to the larger block.
            let mut best = (usize::MAX, 0);
            let cands: [usize; 3] = if gth == 8 {
                [64, 32, 16]
            } else {
                [128, 64, 32]
            };
            for cand in cands {
                let cand = cand.min(if gth == 8 { 64 } else { 256 / gth }).min(c.seg);
                let blocks = nseg * c.seg.div_ceil(cand) * c.b;
                let cost = blocks.div_ceil(sms) * cand;
                if cost < best.0 {
                    best = (cost, cand);
                }
            }
            best.1
        }
    }
    .min(c.seg);
    let poly = ns == 16 && gth < 4 && env_str("MAMBA_CUDA_SCAN1_LM_POLY").as_deref() == Some("1");
    let prep = match env_str("MAMBA_CUDA_SCAN1_LM_PREP").as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => LM1_PREP,
    } && !poly;
    let wide = gth == 8;
    let wv = match env_str("MAMBA_CUDA_SCAN1_LM_WV").as_deref() {
        Some("1") => 4,
        Some("2") => 5,
        Some("3") => 6,
        Some("4") => 7,
        Some("5") => 8,
        Some("6") => 9,
        Some("7") => 10,
        Some("8") => 11,
        Some("9") => 12,
        // The 16-bit types in 32- or 64-channel blocks: `_w9` (see `w9_default`). f32 and other
        // bf16 shapes: `_w6` (round 3 bench of the third session: f32 331.5 vs 356.7 us for
        // `_w3`, bf16 313.3 vs 320.1 for `_w5`); other f16 shapes (not timed): `_w3`.
        _ if w9_default(c, cb) => 12,
        _ if c.act == 2 => 6,
        _ => 9,
    };
    let smem_of = |cb| {
        if wide {
            lm1w_smem(es, cb, wv == 7, if wv == 12 { 64 } else { TT })
        } else {
            lm1_smem(es, cb, ns, prep)
        }
    };
    while cb > 1 && smem_of(cb) > g.max_smem() {
        cb /= 2;
    }
    let smem = smem_of(cb);
    if smem > g.max_smem() {
        return Ok(false);
    }
    let (mut p, bps) = launch_params(base, c, es, cb, gth);
    shifted(&mut p, wide && wv == 12, c.act);
    let rs = gth > 1 && !prep && !poly && env_str("MAMBA_CUDA_SCAN1_LM_RS").as_deref() == Some("1");
    let form = if wide {
        wv
    } else if prep {
        2
    } else if rs {
        3
    } else {
        poly as usize
    };
    let f = lm1_func(g, c.act, ns, gth, aligned_form(form, &p))?;
    let threads = (cb * gth).div_ceil(32) as u32 * 32;
    let grid = ((nseg * bps) as u32, c.b as u32, 1);
    g.launch(f, grid, threads, smem, stream, &p)?;
    Ok(true)
}

/// Whether the `_w` kernels take their `_w9` form (64-step tiles) by default: the 16-bit
/// types in blocks of 32 or 64 channels (the block size is chosen first, by the wave cost).
/// Until the twenty-third session bf16 only, and only in 64-channel blocks filling the SMs
/// 1.5 times over (the LM shape: H200, fourth session, helper C round 3: 288.3-291.4 us
/// against 311.5-313.1 for `_w6`; the same shape in 32-channel blocks slower, 334.1); fewer
/// blocks and f16 were untimed. The twenty-third session (H200, d2048 N16 L2048, default
/// against `MAMBA_CUDA_SCAN1_LM_WV=9`): bf16 b2 (32-channel blocks) / b4 / b8 d1024 143.7 /
/// 194.0 / 193.8 us against 131.9 / 174.9 / 173.0; f16 (`_w3` before) b2 / b4 / b8 161.8 /
/// 212.4 / 338.5 against 148.5 / 188.2 / 312.7, b8 L512 92.3 against 88.8. f32 stays on
/// `_w6` (`_w9` slower: b2 154.5 against 166.8, b8 L512 90.0 against 110.5).
fn w9_default(c: &Lm1Call, cb: usize) -> bool {
    c.act != 0 && cb >= 32
}

/// The training forward (`selective_scan_forward_saving`): the `_w` kernel of the default
/// choice (`_w9` for the 16-bit types in 32- or 64-channel blocks, else `_w6`) in
/// its `ck` form, which also writes the state before every eighth step into `ck` ((b,
/// ceil(L / 8), d, 16) f32, natural state order) for `bwdlm_*_q4pbs`. No launch-shape
/// overrides apply (the checkpoints' layout must not depend on them); any N <= 16 with B and
/// C varying in time.
pub(crate) fn launch_saving(
    g: &Gpu,
    base: &Scan1Params,
    c: &Lm1Call,
    ck: u64,
    stream: u64,
) -> PResult<()> {
    if c.b_groups <= 0 || c.c_groups <= 0 || c.n > 16 || c.n == 0 {
        return Err(PErr::invalid(
            "selective_scan_forward_saving: the saving form needs B and C varying in time and N <= 16",
        ));
    }
    let es = [4usize, 2, 2][c.act];
    let sms = g.sm_count.max(1) as usize;
    let nseg = c.d / c.seg;
    // The default block size of the `_w` kernels (see `try_lm1`).
    let mut best = (usize::MAX, 0);
    for cand in [64usize, 32, 16] {
        let cand = cand.min(c.seg);
        let cost = (nseg * c.seg.div_ceil(cand) * c.b).div_ceil(sms) * cand;
        if cost < best.0 {
            best = (cost, cand);
        }
    }
    let mut cb = best.1.min(c.seg);
    let w9 = w9_default(c, cb);
    let tt = if w9 { 64 } else { TT };
    while cb > 1 && lm1w_smem(es, cb, false, tt) > g.max_smem() {
        cb /= 2;
    }
    let smem = lm1w_smem(es, cb, false, tt);
    if smem > g.max_smem() {
        return Err(PErr::unsupported(format!(
            "selective_scan_forward_saving: {smem} bytes of shared memory needed"
        )));
    }
    let (mut p, bps) = launch_params(base, c, es, cb, 8);
    shifted(&mut p, w9, c.act);
    p.chunk_states = ck;
    let f = lm1_func(g, c.act, 16, 8, aligned_form(if w9 { 14 } else { 13 }, &p))?;
    let threads = (cb * 8).div_ceil(32) as u32 * 32;
    let grid = ((nseg * bps) as u32, c.b as u32, 1);
    g.launch(f, grid, threads, smem, stream, &p)
}
