//! The seed shapes in one launch with no chain across time chunks (kernels/seed.cu).
//!
//! SSD: `seed_ssd_{f32,bf16,f16}`, one block per (batch, head, chunk of 32 steps), taken
//! by ticket; each block publishes its chunk's local end state and sums the decayed local
//! states of the earlier chunks of its group of ~sqrt(K) chunks and the aggregates of
//! the earlier groups itself (`MAMBA_CUDA_SEED_GROUP` sets the group). Applies without `seq_idx`,
//! with headdim <= 64 and dstate <= 64. `MAMBA_CUDA_SEED=1` forces it where it applies,
//! `=0` keeps the older paths; unset: the automatic choice (`ssd_auto`).
//!
//! Mamba-1: `seed_scan1_{f32,bf16,f16}`, one block per (16 channels, chunk of 16 steps),
//! by ticket; one pass over the chunk from a zero state with one exponential per
//! (state, step), keeping C_t * P_t in registers, so the incoming state (folded as in the
//! SSD, per-state decays) only adds (C_t * P_t) . h_in. Applies with B and C varying in
//! time and N <= 64; `MAMBA_CUDA_SEED` as above, automatic choice `scan1_auto`.

use super::ops::{env_str, env_usize};
use super::params::{Scan1Params, SsdAxis, SsdParams};
use super::Gpu;
use crate::PResult;
use mamba_core::abi::dtype;

/// Steps per chunk (the larger of the two forms), padded headdim and dstate of
/// `seed_ssd_*` (kernels/seed.cu); the shared memory is sized for SQ = 32 in both.
const SQ: usize = 32;
const SP: usize = 64;
const SN: usize = 64;
/// Dynamic shared memory of `seed_ssd_*`: the f64 cumsums (SQ + 2), then f32 tiles
/// x, B*w, B^T, C^T, M^T, S_in and the step arrays.
const SSD_SMEM: usize =
    8 * (SQ + 2) + 4 * (SQ * SP + SQ * SN + 2 * SN * SQ + SQ * SQ + SN * SP + 2 * SQ + 4);

/// Mirrors `SeedSsdParams` of kernels/seed.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SeedSsdParams {
    s: SsdParams,
    flags: u64,
    flag_base: u32,
    /// Chunks per fold group.
    group: i32,
}

/// The forced choice: `MAMBA_CUDA_SEED` = `1` (new path where it applies) or `0` (old).
pub(crate) fn forced() -> Option<bool> {
    match env_str("MAMBA_CUDA_SEED").as_deref() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    }
}

/// `MAMBA_CUDA_SEED_NOWAIT=1`: timing diagnostics only; the kernels skip every wait and
/// fold of the incoming state (the outputs are WRONG past the first chunk).
fn nowait() -> bool {
    env_str("MAMBA_CUDA_SEED_NOWAIT").as_deref() == Some("1")
}

/// Whether `seed_ssd_*` computes this call.
pub(crate) fn ssd_applies(prm: &SsdParams) -> bool {
    prm.seq_idx == 0
        && prm.headdim as usize <= SP
        && prm.dstate as usize <= SN
        && prm.seqlen > 0
        && prm.ngroups > 0
}

/// Whether the seed SSD takes this call: forced by `MAMBA_CUDA_SEED`, else where it
/// applies with at most `SSD_AUTO_WAVES` waves of two blocks per SM (few (batch, head)
/// pairs) and L >= 64.
pub(crate) fn ssd_wanted(g: &Gpu, prm: &SsdParams, act: u32) -> bool {
    if !ssd_applies(prm) {
        return false;
    }
    if let Some(f) = forced() {
        return f;
    }
    ssd_auto(g, prm)
        && !(act != dtype::F32
            && ssd_blocks(prm) > 2 * g.sm_count as usize
            && super::ops::ssdl_takes(g, prm, act))
}

/// The automatic choice: few (batch, head) pairs (at most a quarter of the SMs) at
/// 256 <= L <= 1024, where it was measured (H200, f32 b2 h6 p64 N64: L400 47.2 -> 29.6 us,
/// L800 57.5 -> 45.7 us). bf16 (`ssd_wanted`) only while its blocks (one per (batch, head,
/// 32 steps)) fit in one wave of two per SM, where `ssdl` takes the call: past that wave
/// the seed kernel's time jumps and `ssdl` is faster (H200, p64 N64, the seed kernel against
/// `MAMBA_CUDA_SEED=0` (`ssdl`), twenty-third session: b2 h12 L256 / 320 / 352 (192 / 240 /
/// 264 blocks) 30.5 / 32.8 / 33.7 us against 37.4 / 38.9 / 43.3; L384 / 448 / 512 / 1024
/// (288 blocks on) 46.8 / 50.3 / 50.6 / 79.4 against 42.4 / 39.5 / 38.1 / 40.9; b2 h9 L448
/// (252) 34.6 against 41.9, L512 (288) 47.9 against 41.6; b4 h8 L320 (320) 48.6 against
/// 41.7, L1024 99.5 against 42.5; b1 h20 L800 55.0 against 41.4). f16 the same rule since the
/// twenty-fifth session, where its `ssdl` form applies (N 128, `ops::ssdl_takes`); elsewhere
/// the seed kernel stays (the recurrent kernels are slower there: b2 h12 L512 66.4 against
/// 51.3).
fn ssd_auto(g: &Gpu, prm: &SsdParams) -> bool {
    let bh = (prm.batch * prm.nheads) as usize;
    bh * 4 <= g.sm_count as usize && (256..=1024).contains(&prm.seqlen)
}

/// The seed kernel's blocks at its default chunk of 32 steps.
fn ssd_blocks(prm: &SsdParams) -> usize {
    (prm.batch * prm.nheads) as usize * (prm.seqlen.max(0) as usize).div_ceil(32)
}

/// Launches `seed_ssd_*` (the caller checked `ssd_applies`).
pub(crate) fn ssd_launch(g: &Gpu, mut prm: SsdParams, sfx: &str, stream: u64) -> PResult<()> {
    let (b, h, l) = (prm.batch as usize, prm.nheads as usize, prm.seqlen as usize);
    // Steps per chunk: 32 unless `MAMBA_CUDA_SEED_Q=16` (`_q16`: twice the blocks, half
    // the work each; measured slower on the H200, round 3).
    let q = match env_usize("MAMBA_CUDA_SEED_Q") {
        Some(16) => 16,
        _ => 32,
    };
    let k = l.div_ceil(q);
    let bh = b * h;
    let blocks = bh * k;
    // Fold groups of ~sqrt(K) chunks (`MAMBA_CUDA_SEED_GROUP` overrides; >= K: every block
    // folds all earlier chunks' local states).
    let group = match env_usize("MAMBA_CUDA_SEED_GROUP") {
        Some(v) if v >= 1 => v.min(k),
        _ => ((k as f64).sqrt().ceil() as usize).clamp(1, k),
    };
    let ngroups = k.div_ceil(group);
    prm.nchunks = k as i32;
    prm.chunk_len = q as i32;
    let ss = SN * SP * 4;
    let states_bytes = blocks * ss;
    let decay_bytes = blocks.div_ceil(4) * 16;
    let agg_bytes = bh * ngroups * ss;
    // `MAMBA_CUDA_SEED_COMPACT=1`: the variant with rolled k loops (`_c`, less code).
    let compact = env_str("MAMBA_CUDA_SEED_COMPACT").as_deref() == Some("1");
    let f = g.func(&format!(
        "seed_ssd_{sfx}{}",
        match (q, compact) {
            (16, _) => "_q16",
            (_, true) => "_c",
            _ => "",
        }
    ))?;
    g.with_chain_scratch(
        1 + (k + ngroups) * bh,
        states_bytes + decay_bytes + agg_bytes,
        stream,
        |flags, data, base| {
            prm.chunk_states = data;
            prm.chunk_decay = data + states_bytes as u64;
            let sp = SeedSsdParams {
                s: prm,
                flags,
                flag_base: base,
                group: if nowait() { -1 } else { group as i32 },
            };
            g.launch(f, (blocks as u32, 1, 1), 256, SSD_SMEM, stream, &sp)
        },
    )
}

/// Steps per chunk of `seed_scan1_*`.
const Q1: usize = 16;
/// Dynamic shared memory of `seed_scan1_*`: B and C tiles [16][68], dt and dt*u [16][16],
/// the output partials [16][16][17], the ticket.
const SCAN1_SMEM: usize = 4 * (2 * Q1 * 68 + 2 * 16 * Q1 + 16 * Q1 * 17 + 4);

/// Whether `seed_scan1_*` computes this call (B and C varying, N <= 64).
pub(crate) fn scan1_applies(prm: &Scan1Params) -> bool {
    prm.b_groups > 0 && prm.c_groups > 0 && prm.dstate <= 64 && prm.seqlen > 0 && prm.seg > 0
}

/// Whether the seed Mamba-1 kernel takes this call (forced by `MAMBA_CUDA_SEED`, else
/// `scan1_auto`).
pub(crate) fn scan1_wanted(g: &Gpu, prm: &Scan1Params) -> bool {
    if !scan1_applies(prm) {
        return false;
    }
    if let Some(f) = forced() {
        return f;
    }
    scan1_auto(g, prm)
}

/// The automatic choice (off until measured on the device).
fn scan1_auto(_g: &Gpu, _prm: &Scan1Params) -> bool {
    false
}

/// Launches `seed_scan1_*` (the caller checked `scan1_applies`). Rows per block: the
/// largest power of two <= 16 that divides the channel run with constant B / C groups.
pub(crate) fn scan1_launch(g: &Gpu, mut prm: Scan1Params, sfx: &str, stream: u64) -> PResult<()> {
    let mut rb = 16usize;
    while !(prm.seg as usize).is_multiple_of(rb) {
        rb /= 2;
    }
    let (b, d, l) = (prm.batch as usize, prm.dim as usize, prm.seqlen as usize);
    let k = l.div_ceil(Q1);
    let bd = b * d;
    let nrg = bd / rb;
    let blocks = nrg * k;
    let group = match env_usize("MAMBA_CUDA_SEED_GROUP") {
        Some(v) if v >= 1 => v.min(k),
        _ => ((k as f64).sqrt().ceil() as usize).clamp(1, k),
    };
    let ng = k.div_ceil(group);
    let loc_bytes = k * bd * 64 * 4;
    let agg_bytes = ng * bd * 64 * 4;
    prm.cb = rb as i32;
    prm.nchunks = k as i32;
    prm.chunk_len = Q1 as i32;
    prm.reserved = if nowait() { -1 } else { group as i32 };
    let f = g.func(&format!("seed_scan1_{sfx}"))?;
    g.with_chain_scratch(
        1 + (k + ng) * nrg,
        2 * loc_bytes + 2 * agg_bytes,
        stream,
        |flags, data, base| {
            prm.flags = flags;
            prm.chunk_states = data;
            prm.chunk_dtsum = data + loc_bytes as u64;
            prm.chunk_incl = data + 2 * loc_bytes as u64;
            prm.flag_base = base;
            g.launch(
                f,
                (blocks as u32, 1, 1),
                (rb * 16) as u32,
                SCAN1_SMEM,
                stream,
                &prm,
            )
        },
    )
}

/// `ssdr_{f32,bf16,f16}` (kernels/ssd_seed.cu): the plain recurrent SSD with the state
/// split across many small blocks (one (batch, head) and `qb` rows of p each, 4 states
/// per thread, the whole sequence per block, no communication between blocks). Applies
/// with N <= 128 (any p, groups, seq_idx, every option). `MAMBA_CUDA_SSDR=1` forces it
/// where it applies, `=0` keeps it off; unset: `ssdr_auto`. `MAMBA_CUDA_SSDR_WARPS`
/// (1, 2, 4, 8; default 2) sets the compute warps per block. The default form is
/// `ssdr_h_*`: two more warps per block stage the tiles, compute the step scalars a tile
/// ahead and run the epilogues (`MAMBA_CUDA_SSDR_EPI=0`: the epilogues on the compute
/// warps); `MAMBA_CUDA_SSDR_H=0` takes `ssdr_*` (the compute warps do it all).
/// The step loop and the epilogues are software-pipelined (`_p` kernels) unless
/// `MAMBA_CUDA_SSDR_PIPE=0`. `MAMBA_CUDA_SSDR_SPLIT=1` (helper 1 runs only the dt chain,
/// two tiles ahead) is an option;
/// `MAMBA_CUDA_SSDR_SLOW=1` runs the plain step (R = a R + dt x B) everywhere instead of
/// the rescaled one (tests); `MAMBA_CUDA_SSDR_FIX=0` the generic kernel at the seed shape.
pub(crate) fn ssdr_wanted(g: &Gpu, prm: &SsdParams, f32: bool) -> bool {
    if prm.dstate > 128 || prm.seqlen <= 0 || prm.ngroups <= 0 {
        return false;
    }
    if ssdz_wanted(g, prm, f32) {
        return true;
    }
    match env_str("MAMBA_CUDA_SSDR").as_deref() {
        Some("1") => true,
        Some("0") => false,
        // `MAMBA_CUDA_SEED` forced either way: that choice (seed kernel / older paths).
        _ => forced().is_none() && ssdr_auto(g, prm, f32),
    }
}

/// The automatic choice: the seed kernel's region (few (batch, head) pairs, at most a
/// quarter of the SMs, at 256 <= L <= 1024), where the pipelined form measured faster than
/// the seed kernel (H200 b2 h6 p64 N64, round 5: L400 25.8 vs 30.2 us, L800 39.5 vs
/// 47.6 us; NOTES.md). Where the default form is `ssdq` `_e2` (f32, N 33..64), the same
/// few pairs at any L up to 4096: it measured faster than the other paths at every L of
/// the sixth session's probe (b2 h6 p64 N64, three passes: L 16 10.0-12.3 vs 15.7-16.3 us,
/// L100 13.3-15.4 vs 33.2-35.9, L200 16.9-18.7 vs 35.3-38.0, L1025 45.3-47.5 vs 78.1-81.8,
/// L2048 79.5-81.9 vs 116.5-120.4, L4096 150.5-153.3 vs 171.7-177.9; L1 level). Every other
/// N (the other `ssdr` forms) kept the seed kernel's region (256 <= L <= 1024) until the
/// twenty-third session, untimed there against the other paths: 3.5-9.6x slower (H200, f32
/// b2 h6 p64, default against `MAMBA_CUDA_SSDR=0`: N16 L400 / 800 109 / 195 us against 30 /
/// 45 (the seed kernel); N128 L256 / 400 / 800 214 / 340 / 642 against 108 / 116 / 87, the
/// recurrent kernels 52 / 77 / 108; b2 h12 N128 L800 1268 against 166; b1 h16 N128 L800 855
/// against 103). Now they never take it by default.
/// The 16-bit types never take it by default: there `ssdr` is the generic `ssdr_h_*_p`,
/// 4x slower than the seed kernel in the same region (H200, bf16 b2 h6 p64 N64, twentieth
/// session: L400 129 / L800 242 us against 32-34 / 51-53 with the seed kernel).
fn ssdr_auto(g: &Gpu, prm: &SsdParams, f32: bool) -> bool {
    if !f32 {
        return false;
    }
    let bh = (prm.batch * prm.nheads) as usize;
    SSDQ_DEFAULT
        && (33..=64).contains(&prm.dstate)
        && bh * 4 <= g.sm_count as usize
        && prm.seqlen <= 4096
}

/// Shared memory of `ssdr_*` (`helper`: `ssdr_h_*`, whose `threads` counts the compute
/// threads only): mirrors the layouts in kernels/ssd_seed.cu.
fn ssdr_smem(np: usize, rb: usize, threads: usize, helper: bool, la: usize) -> usize {
    if helper {
        // B / C: la + 2 buffers, x: la + 3, x * w: 2.
        4 * (2 * (la + 2) * 32 * np + (la + 5) * 32 * rb + 2 * 32 * (threads + 4) + 9 * 32 + 12)
    } else {
        4 * (4 * 32 * np + 3 * 32 * rb + 32 * (threads + 4) + 6 * 32 + 8)
    }
}

/// Shared memory of `ssdq_*` (kernels/ssd_seed2.cu): rings of `ns` slots of B, C
/// [32][np], the partials [32][pw + 4] (pw = rows * G), x and x * w [32][rb], the decays
/// and prefix products [32], the tile flags [4]; then 4 * ns mbarriers (8 bytes each).
fn ssdq_smem(np: usize, rb: usize, pw: usize, ns: usize) -> usize {
    4 * ns * (2 * 32 * np + 32 * (pw + 4) + 2 * 32 * rb + 2 * 32 + 4) + 32 * ns
}

/// Whether `ssdq_*` is the default form of `ssdr` at the seed shape (f32, N 33..64, 2
/// compute warps; unset `MAMBA_CUDA_SSDR_Q`), as `_e2` (two epilogue warps, ring 3). On:
/// in the H200 rounds 3 and 4 of the sixth session `_e2` was faster than `_p` in every
/// alternating pass (round 4: 23.3-25.5 / 36.5-38.9 us at L400 / L800 against
/// 25.5-27.3 / 39.5-40.9), and memcheck, racecheck and synccheck were clean on it. The
/// one-epilogue-warp ring-3 kernel (`_w2_s3`) was not steadily faster, so it stays
/// forced-only (`MAMBA_CUDA_SSDR_Q=4`, `MAMBA_CUDA_SSDR_EW` unset); NOTES.md.
const SSDQ_DEFAULT: bool = true;

/// The longest sequence of `ssdr_h3_*` (its dt chain lives in shared memory).
const SSDR_LMAX: usize = 1024;

/// `ssdz_*` (kernels/ssd_seed3.cu): the chunked (state-space-dual) SSD forward in ONE
/// launch, grid (`SSDZ_CL` chunks, heads, batch) with `__cluster_dims__(SSDZ_CL, 1, 1)`:
/// block c computes its chunk's local end state, the blocks of a cluster exchange them
/// (through global scratch, one cluster barrier), then each block adds its incoming state's
/// part to its intra-chunk outputs. Chunk length Q = ceil(L / 8) rounded up to 4, at most
/// `SSDZ_QMAX`.
const SSDZ_CL: usize = 8;
const SSDZ_QMAX: usize = 128;
/// The shortest sequence `ssdz_*` takes by default (see `ssdz_wanted`).
const SSDZ_LMIN: i32 = 200;

/// Whether `ssdz_*` can compute this call: p <= 64, N <= 64, 1 <= L <= 1024 (every other
/// option: groups, D, z, dt_bias, softplus, dt limits, initial and final states; seq_idx
/// since the fifty-fifth session, kernels/ssd_seed3.cu `SSDZ_RESET`, unless
/// `MAMBA_CUDA_SSD_LM_SEQ=0`), any storage type (the 16-bit types through
/// `ssdz_{bf16,f16}_tc`, the same kernel with its loads widened to f32, since the twenty-first
/// session).
fn ssdz_applies(prm: &SsdParams) -> bool {
    (prm.seq_idx == 0 || super::ops::ssd_lm_seq())
        && prm.headdim > 0
        && prm.headdim as usize <= 64
        && prm.dstate > 0
        && prm.dstate as usize <= 64
        && prm.seqlen > 0
        && prm.seqlen as usize <= SSDZ_CL * SSDZ_QMAX
        && prm.ngroups > 0
}

/// Whether `ssdz_*` takes this call: `MAMBA_CUDA_SSDZ=1` forces it where it applies, `=0`
/// keeps it off; unset: the seed region, where it was measured faster than `ssdq` `_e2` (H200,
/// f32 b2 h6 p64 N64, eleventh session: L400 19.7-21.1 us against 24.0-25.3, L800 27.5-28.3
/// against 37.8-38.4, L1000 28.5-30.2 against 44.3-46.3; thirteenth session, `_tc`, env set
/// on both rows: L200 16.7-17.4 against 18.0, L256 17.0-17.1 against 18.7-18.9, but L150
/// 16.4-16.9 against 15.5-15.7 and L100 15.4-15.8 against 14.5-14.8): one wave of clusters
/// (8 blocks per (batch, head) pair, one block per SM) and 200 <= L <= 1024.
///
/// The 16-bit types (`ssdz_{bf16,f16}_tc`, twenty-first session) take it at 16 <= L <= 1024
/// in that region: their other forms are the seed kernel and the chunked path (f32's `ssdq`
/// is f32 only), and it measured faster at each length timed (H200, b2 h6 p64 N64, bf16,
/// forward, two passes against `MAMBA_CUDA_SSDZ=0`; NOTES.md): L16 13.8-15.4 us vs
/// 14.8-16.7, L32 14.4-14.8 vs 19.2, L64 14.5-15.6 vs 33.7-36.5, L100 14.3-16.5 vs
/// 33.5-36.9, L128 14.6-15.0 vs 34.8-34.9, L400 / L800 17.7-19.0 / 22.9-24.1 vs 32.4-33.1 /
/// 50.7-51.0, L1000 24.8 vs 56.6-56.8 (f16 alike at L16 / 64 / 100 / 400 / 800).
fn ssdz_wanted(g: &Gpu, prm: &SsdParams, f32: bool) -> bool {
    if !ssdz_applies(prm) {
        return false;
    }
    match env_str("MAMBA_CUDA_SSDZ").as_deref() {
        Some("1") => true,
        Some("0") => false,
        // Not where another seed form is forced (`MAMBA_CUDA_SEED`, `MAMBA_CUDA_SSDR`,
        // `MAMBA_CUDA_SSDR_Q`), and only at the measured sizes (p and N 33..64; the kernels pad
        // both to 64).
        _ => {
            forced().is_none()
                && env_str("MAMBA_CUDA_SSDR").is_none()
                && env_str("MAMBA_CUDA_SSDR_Q").is_none()
                && (33..=64).contains(&prm.dstate)
                && (33..=64).contains(&prm.headdim)
                && (prm.batch * prm.nheads) as usize * SSDZ_CL <= g.sm_count as usize
                && (if f32 { SSDZ_LMIN } else { 16 }..=1024).contains(&prm.seqlen)
        }
    }
}

/// Dynamic shared memory of `ssdz_f32` / `_v7` at chunk length `q` (mirrors
/// kernels/ssd_seed3.cu `ssdz_body`): the f64 cumulative sums [QMAX] and the chunk total
/// [2], dt, w, exp(cs) [QMAX], S_c and S_in [64][64], x [q][64], B^T and C^T [64][qs], then
/// x * w / M (max(q * q, q * 64)).
fn ssdz_smem(q: usize) -> usize {
    let qs = q.div_ceil(8) * 8 + 4;
    8 * SSDZ_QMAX
        + 16
        + 4 * (3 * SSDZ_QMAX + 2 * 64 * 64 + q * 64 + 2 * 64 * qs + (q * q).max(q * 64))
}

/// Dynamic shared memory of `ssdz_f32_tc` (mirrors kernels/ssd_seed3.cu `ssdz_tc_body`):
/// the f64 cumulative sums [QMAX] and the total [2]; dt, w, exp(cs) [QMAX]; S_c, S_in
/// [64][68]; x [QMAX][68]; x again, B, C [QMAX][72]; D of every column [64].
const SSDZ_TC_SMEM: usize = 8 * (SSDZ_QMAX + 2)
    + 4 * (3 * SSDZ_QMAX + 2 * 64 * 68 + SSDZ_QMAX * 68 + 3 * SSDZ_QMAX * 72 + 64);

/// The default form is `ssdz_f32_tc` (the products on the tensor cores) at every chunk
/// length: since the thirteenth session's changes to it (loads off warp 0, term-by-term mma
/// order, a lean epilogue) it measured faster than `ssdz_f32_v7` (CUDA cores) at L 256 /
/// 400 / 520 too (15.8 / 17.5 / 20.5 us against 18.9 / 19.3 / 23.1, H200, the device probe
/// `scripts/ssdz_probe.cu`); before, `_v7` took chunks of at most 64 steps.
/// Launches `ssdz_*` (the caller checked `ssdz_applies`). `MAMBA_CUDA_SSDZ_V`: 0 `ssdz_f32`
/// (the exchange through distributed shared memory, two cluster barriers: the eighth
/// session's form), 7 `ssdz_f32_v7`, 8 `ssdz_f32_tc`; unset: `_tc`.
/// The 16-bit types have `_tc` only.
fn ssdz_launch(g: &Gpu, mut prm: SsdParams, sfx: &str, stream: u64) -> PResult<()> {
    let (b, h, l) = (prm.batch as usize, prm.nheads as usize, prm.seqlen as usize);
    let q = l.div_ceil(SSDZ_CL).div_ceil(4) * 4;
    prm.chunk_len = q as i32;
    prm.nchunks = SSDZ_CL as i32;
    // `MAMBA_CUDA_SSDZ_DIAG` (bits: 1 no Y products, 2 no M (X), 4 no S_c, 8 no exchange
    // reads; `_tc` also 16 no x / B / C loads, 32 no output stores): timing diagnostics
    // only, WRONG outputs.
    prm.mode = env_usize("MAMBA_CUDA_SSDZ_DIAG").unwrap_or(0) as i32 & 63;
    let v = match env_usize("MAMBA_CUDA_SSDZ_V") {
        Some(v) if sfx == "f32" => v,
        _ => 8,
    };
    let (name, smem) = match v {
        0 => ("ssdz_f32", ssdz_smem(q)),
        8 => (
            match sfx {
                "bf16" => "ssdz_bf16_tc",
                "f16" => "ssdz_f16_tc",
                _ => "ssdz_f32_tc",
            },
            SSDZ_TC_SMEM,
        ),
        _ => ("ssdz_f32_v7", ssdz_smem(q)),
    };
    let f = g.func(name)?;
    let grid = (SSDZ_CL as u32, h as u32, b as u32);
    if v == 0 {
        return g.launch(f, grid, 512, smem, stream, &prm);
    }
    // S_c (64 x 64 f32) and the chunk's total (f64) of every block through global scratch.
    let states = b * h * SSDZ_CL * 64 * 64 * 4;
    g.with_chain_scratch(
        1,
        states + b * h * SSDZ_CL * 8,
        stream,
        |_flags, data, _base| {
            prm.chunk_states = data;
            prm.chunk_decay = data + states as u64;
            g.launch(f, grid, 512, smem, stream, &prm)
        },
    )
}

/// Beyond `ssdz`'s 1024 steps: the sequence in K = ceil(L / 1024) segments of equal length
/// (rounded up to 4 steps; the last one shorter), each one `ssdz` call over its rows (the
/// tensors' time strides make a segment a pointer offset), the state passed from one to the
/// next through f32 scratch (two buffers, alternating), the caller's initial state into the
/// first and its final state out of the last. Exact: the recurrence carried across a
/// segment boundary is the same recurrence. The segment length where the call takes this
/// form, else `None`: `MAMBA_CUDA_SSDZ_SEG=1` wherever `ssdz` applies to the segments, `=0`
/// never; by default f32 where `ssdz` would take a call of the segment's length
/// (`ssdz_wanted`: the seed region). H200, f32 b2 h6 p64 N64 forward, twenty-second session,
/// against `MAMBA_CUDA_SSDZ_SEG=0` (`ssdq` / the recurrent kernels): L 1025 / 1500 / 2048 /
/// 4096 / 8192 35 / 42 / 48 / 90 / 179 us against 49 / 64 / 84 / 156 / 320; b1 L2048 46
/// against 68. bf16 stays on `ssdl` there (41 / 41 / 43 / 50 / 80 us against 38 / 43 / 50 /
/// 93 / 183 in segments).
pub(crate) fn ssdz_segments(g: &Gpu, prm: &SsdParams, f32: bool) -> Option<usize> {
    let cap = SSDZ_CL * SSDZ_QMAX;
    let l = prm.seqlen.max(0) as usize;
    if l <= cap {
        return None;
    }
    let k = l.div_ceil(cap);
    let seg = l.div_ceil(k).div_ceil(4) * 4;
    let mut q = *prm;
    q.seqlen = seg as i32;
    // With seq_idx (since the fifty-sixth session) each segment reads its rows L apart and
    // looks one step back (`seq_st`, `seq_back`); `ssdz_applies` keeps it off where
    // `MAMBA_CUDA_SSD_LM_SEQ=0`.
    if seg > cap || (k - 1) * seg >= l || !ssdz_applies(&q) {
        return None;
    }
    match env_str("MAMBA_CUDA_SSDZ_SEG").as_deref() {
        Some("0") => None,
        Some("1") => Some(seg),
        _ => (f32 && ssdz_wanted(g, &q, f32)).then_some(seg),
    }
}

/// Runs `ssdz` segment by segment (`ssdz_segments` gave `seg`; the caller copied an
/// initial state that overlaps the final one).
pub(crate) fn ssdz_segmented_launch(
    g: &Gpu,
    prm: SsdParams,
    sfx: &str,
    seg: usize,
    stream: u64,
) -> PResult<()> {
    let l = prm.seqlen as usize;
    let k = l.div_ceil(seg);
    let es = match sfx {
        "f32" => 4,
        _ => 2,
    };
    let state =
        (prm.batch as usize * prm.nheads as usize * prm.headdim as usize) * prm.dstate as usize * 4;
    let bufs = if k > 1 {
        g.alloc_async(2 * state.div_ceil(256) * 256, stream)?
    } else {
        0
    };
    let buf = |i: usize| bufs + (i % 2 * state.div_ceil(256) * 256) as u64;
    let res = (|| {
        for i in 0..k {
            let len = seg.min(l - i * seg);
            let mut q = prm;
            q.seqlen = len as i32;
            q.offset_io(SsdAxis::Time, (i * seg) as i64, es);
            q.init = if i == 0 { prm.init } else { buf(i - 1) };
            q.final_states = if i + 1 == k { prm.final_states } else { buf(i) };
            if prm.seq_idx != 0 {
                // The segment's columns of seq_idx (b, L): rows L apart; after the first
                // segment step 0 compares with the previous segment's last step, so a
                // sequence starting there drops the state passed in.
                q.seq_idx = prm.seq_idx + (i * seg * 4) as u64;
                q.seq_st = l as i32;
                q.seq_back = (i > 0) as i32;
            }
            ssdz_launch(g, q, sfx, stream)?;
        }
        Ok(())
    })();
    if bufs != 0 {
        let fr = g.free_async(bufs, stream);
        return res.and(fr);
    }
    res
}

/// Launches `ssdr_*` (the caller checked `ssdr_wanted`).
pub(crate) fn ssdr_launch(g: &Gpu, mut prm: SsdParams, sfx: &str, stream: u64) -> PResult<()> {
    if ssdz_wanted(g, &prm, sfx == "f32") {
        return ssdz_launch(g, prm, sfx, stream);
    }
    let (b, h, p, n) = (
        prm.batch as usize,
        prm.nheads as usize,
        prm.headdim as usize,
        prm.dstate as usize,
    );
    let gth = n.div_ceil(4).next_power_of_two().max(4);
    // 3 only with `MAMBA_CUDA_SSDR_Q=1` at the seed shape (`ssdr_h_f32_g16_w3_q1`: 6 rows per
    // block, 132 blocks at b2 h6 p64, one per SM on the H200).
    let w3 =
        matches!(env_usize("MAMBA_CUDA_SSDR_Q"), Some(1) | Some(4)) && sfx == "f32" && gth == 16;
    let warps = match env_usize("MAMBA_CUDA_SSDR_WARPS") {
        Some(w) if [1, 2, 4, 8].contains(&w) => w,
        Some(3) if w3 => 3,
        _ => 2,
    };
    let threads = warps * 32;
    let rb = threads / gth;
    let a4 = |v: i64| v % 4 == 0;
    let vec_bc = sfx == "f32"
        && n % 4 == 0
        && [prm.b, prm.c].iter().all(|&a| a % 16 == 0)
        && [prm.b_sb, prm.b_st, prm.c_sb, prm.c_st]
            .iter()
            .all(|&s| a4(s));
    let vec_x = sfx == "f32"
        && p % 4 == 0
        && rb % 4 == 0
        && prm.x.is_multiple_of(16)
        && a4(prm.x_sb)
        && a4(prm.x_st);
    let vec = vec_bc && vec_x;
    prm.qb = rb as i32;
    prm.g = gth as i32;
    prm.async_copy = vec as i32;
    let helper = env_str("MAMBA_CUDA_SSDR_H").as_deref() != Some("0");
    // `ssdr_h3_*` (`MAMBA_CUDA_SSDR_Q=3`, L <= 1024): the whole dt chain at the start, one
    // helper warp (copies with two tiles of look-ahead, epilogues), x * w on the compute
    // warps. `MAMBA_CUDA_SSDR_LA=1`: one tile of look-ahead (seed shape only).
    if helper && env_usize("MAMBA_CUDA_SSDR_Q") == Some(3) && prm.seqlen as usize <= SSDR_LMAX {
        let slow = env_str("MAMBA_CUDA_SSDR_SLOW").as_deref() == Some("1");
        // `MAMBA_CUDA_SSDR_EPI=0`: the epilogues on the compute warps (mode bit 2; the helper
        // warp then only copies). `MAMBA_CUDA_SSDR_DIAG` bits 2 (no epilogues), 4 (no step
        // loop), 8 (no B / C copies): timing only, WRONG outputs.
        let epi_c = env_str("MAMBA_CUDA_SSDR_EPI").as_deref() == Some("0");
        prm.mode = slow as i32
            | if epi_c { 2 } else { 0 }
            | ((env_usize("MAMBA_CUDA_SSDR_DIAG").unwrap_or(0) as i32 & 14) << 4);
        prm.async_copy = vec_bc as i32 | ((vec_x as i32) << 1);
        let fixed = sfx == "f32" && gth == 16 && warps == 2;
        let la1 = fixed && env_usize("MAMBA_CUDA_SSDR_LA") == Some(1);
        let f = if fixed {
            g.func(if la1 {
                "ssdr_h3_f32_g16_w2_r1"
            } else {
                "ssdr_h3_f32_g16_w2"
            })?
        } else {
            g.func(&format!("ssdr_h3_{sfx}"))?
        };
        let la = if la1 { 1 } else { 2 };
        let smem = 4
            * (2 * (la + 2) * 32 * 4 * gth
                + (la + 3) * 32 * rb
                + 2 * 32 * (threads + 4)
                + 3 * SSDR_LMAX
                + 64);
        return g.launch(
            f,
            (p.div_ceil(rb) as u32, h as u32, b as u32),
            (threads + 32) as u32,
            smem,
            stream,
            &prm,
        );
    }
    // `ssdq_*` (kernels/ssd_seed2.cu, `MAMBA_CUDA_SSDR_Q=4`): the `_p` kernel's roles
    // decoupled by mbarrier rings (no barrier per tile) and the epilogues on a third helper
    // warp. `MAMBA_CUDA_SSDR_NS=3|4`: ring slots of the seed-shape kernels (default 3; the
    // generic kernels have 3); `MAMBA_CUDA_SSDR_WARPS=3|4` with `Q=4`: `ssdq_f32_g16_w3*` /
    // `_w4*` (6 / 8 rows per block).
    // Unset `MAMBA_CUDA_SSDR_Q`: `ssdq` at the seed shape (f32, N 33..64, 2 compute warps)
    // where `SSDQ_DEFAULT`; `MAMBA_CUDA_SSDR_Q=0` keeps `_p` there.
    let q_env = env_usize("MAMBA_CUDA_SSDR_Q");
    let seed_fixed = sfx == "f32"
        && gth == 16
        && (2..=4).contains(&warps)
        && env_str("MAMBA_CUDA_SSDR_FIX").as_deref() != Some("0");
    if helper && (q_env == Some(4) || (q_env.is_none() && SSDQ_DEFAULT && seed_fixed)) {
        let slow = env_str("MAMBA_CUDA_SSDR_SLOW").as_deref() == Some("1");
        // `MAMBA_CUDA_SSDR_DIAG` bits 2 (no epilogues), 4 (no step loop): timing only,
        // WRONG outputs.
        prm.mode = slow as i32 | ((env_usize("MAMBA_CUDA_SSDR_DIAG").unwrap_or(0) as i32 & 6) << 4);
        prm.async_copy = vec_bc as i32 | ((vec_x as i32) << 1);
        let ns = if seed_fixed && env_usize("MAMBA_CUDA_SSDR_NS") == Some(4) {
            4
        } else {
            3
        };
        // `MAMBA_CUDA_SSDR_R2=1`: one compute warp, two rows per thread (`_w1_r2`, ring 3);
        // `MAMBA_CUDA_SSDR_EW=2`: two epilogue warps (`_e2`, ring 3; with 2 compute warps or
        // R2). Seed-shape kernels only.
        let r2 = seed_fixed && warps == 2 && env_usize("MAMBA_CUDA_SSDR_R2") == Some(1);
        // Unset `MAMBA_CUDA_SSDR_Q` and `_EW` (the default): `_e2`; `MAMBA_CUDA_SSDR_EW=1`
        // one epilogue warp.
        let ew = env_usize("MAMBA_CUDA_SSDR_EW");
        let e2 = seed_fixed && warps == 2 && (ew == Some(2) || (ew.is_none() && q_env.is_none()));
        let ns = if r2 || e2 { 3 } else { ns };
        let ncomp = if r2 { 32 } else { threads };
        let f = if r2 || e2 {
            g.func(match (r2, e2) {
                (true, true) => "ssdq_f32_g16_w1_r2_s3_e2",
                (true, false) => "ssdq_f32_g16_w1_r2_s3",
                _ => "ssdq_f32_g16_w2_s3_e2",
            })?
        } else if seed_fixed {
            g.func(match (warps, ns) {
                (2, 4) => "ssdq_f32_g16_w2",
                (2, _) => "ssdq_f32_g16_w2_s3",
                (3, 4) => "ssdq_f32_g16_w3",
                (3, _) => "ssdq_f32_g16_w3_s3",
                (_, 4) => "ssdq_f32_g16_w4",
                _ => "ssdq_f32_g16_w4_s3",
            })?
        } else {
            g.func(&format!("ssdq_{sfx}"))?
        };
        return g.launch(
            f,
            (p.div_ceil(rb) as u32, h as u32, b as u32),
            (ncomp + if e2 { 128 } else { 96 }) as u32,
            ssdq_smem(4 * gth, rb, rb * gth, ns),
            stream,
            &prm,
        );
    }
    // Mode bits: 1 the plain step everywhere; `ssdr_h_*` only: 2 the epilogues on a helper
    // warp (unless `MAMBA_CUDA_SSDR_EPI=0`), 4 helper 1 runs only the dt chain, two tiles ahead,
    // helper 0 all the copies and x * w (`MAMBA_CUDA_SSDR_SPLIT=1`).
    let on = |k: &str| env_str(k).as_deref() == Some("1");
    let bit = |k: &str, b: i32| if helper && on(k) { b } else { 0 };
    // The epilogues on a helper warp are the default (H200 round 3, seed L400 / L800:
    // 28.4 / 46.5 us against 31.6 / 54.0 us on the compute warps); `=0` turns them off.
    let epi = if helper && env_str("MAMBA_CUDA_SSDR_EPI").as_deref() != Some("0") {
        2
    } else {
        0
    };
    prm.mode = on("MAMBA_CUDA_SSDR_SLOW") as i32 | epi | bit("MAMBA_CUDA_SSDR_SPLIT", 4);
    // `_p`: the step loop and the epilogues software-pipelined.
    // The pipelined kernels are the default (H200 round 5, seed L400 / L800: 25.8 / 39.5 us
    // against 29.0 / 46.9 us unpipelined and 30.2 / 47.6 us for the seed kernel);
    // `MAMBA_CUDA_SSDR_PIPE=0` takes the unpipelined ones.
    let pipe = if helper && env_str("MAMBA_CUDA_SSDR_PIPE").as_deref() != Some("0") {
        // `MAMBA_CUDA_SSDR_DIAG` (bits: 1 no dt chain, 2 no epilogues, 4 no step loop, 8 no
        // B / C copies): timing diagnostics of the `_p` kernels only, WRONG outputs.
        prm.mode |= (env_usize("MAMBA_CUDA_SSDR_DIAG").unwrap_or(0) as i32 & 15) << 4;
        // `MAMBA_CUDA_SSDR_Q=1|2`: `_q1` / `_q2` (the dt chain before the wait for x; 1 or 2
        // tiles of look-ahead for the copies; no split helpers).
        match env_usize("MAMBA_CUDA_SSDR_Q") {
            Some(1) => "_q1",
            Some(2) => "_q2",
            _ => "_p",
        }
    } else {
        ""
    };
    let la = if pipe == "_q2" { 2 } else { 1 };
    if pipe.starts_with("_q") {
        // `ssdr_h2`: B / C and x copies decided apart (bit 0, bit 1).
        prm.async_copy = vec_bc as i32 | ((vec_x as i32) << 1);
    }
    // The seed shape's constants folded (`ssdr_h_f32_g16_w{2,4}`) unless
    // `MAMBA_CUDA_SSDR_FIX=0`.
    let fixed = helper
        && sfx == "f32"
        && gth == 16
        && (warps == 2 || warps == 4 || warps == 3)
        && env_str("MAMBA_CUDA_SSDR_FIX").as_deref() != Some("0");
    let f = if fixed {
        g.func(&format!("ssdr_h_f32_g16_w{warps}{pipe}"))?
    } else {
        g.func(&format!(
            "ssdr_{}{sfx}{pipe}",
            if helper { "h_" } else { "" }
        ))?
    };
    g.launch(
        f,
        (p.div_ceil(rb) as u32, h as u32, b as u32),
        (threads + if helper { 64 } else { 0 }) as u32,
        ssdr_smem(4 * gth, rb, threads, helper, la),
        stream,
        &prm,
    )
}
