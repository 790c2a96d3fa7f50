//! The backward passes of SPEC 1-3 on device tensors (kernels/bwd.cu): check the
//! descriptors, size the scratch (stream-ordered), zero the accumulated gradients,
//! launch, and round the f32 accumulators into the activations' type.
//!
//! Memory: besides the gradients themselves, the scans keep one state per row every
//! `R * 32 >= N` steps (about `b * rows * L` floats: it grows with `L * d`, never with
//! `L * d * N`), f32 accumulators for dB and dC (B's and C's sizes) and, for SSD, for
//! d dt (b, L, h). The convolution keeps `dout * act'` (b, c, L) in f32.
//!
//! Time split: when the rows are too few to fill the device (Mamba-1 at batch 2,
//! d 384: 768 warps), the sequence is cut into K <= 16 chunks of whole tiles. A local
//! pass runs each chunk from zero (final state, adjoint at its start, product of its
//! decays: 3 * K * N floats per row), then the main kernel runs every chunk at once,
//! each starting from the state and adjoint the other chunks' local results give.
//! `MAMBA_CUDA_BWD_SPLIT=K` forces K chunks (0 or 1: no split).
//!
//! Mamba-1 with B and C both varying in time and N <= 16 (f32) or 32 < N <= 64 takes
//! `bwd_scan1q_*` (four states per lane, 8-step tiles; `QShape`, `MAMBA_CUDA_BWD1Q=0`
//! switches it off). Otherwise, with N <= 64, it takes `bwd_scan1t_*`
//! (`scan1_bwd_t` in bwd.cu: a thread per (channel, state lane), a tile's 16 states in
//! registers, inputs loaded one tile ahead); `MAMBA_CUDA_BWD1=0` selects the general
//! kernel instead.
//!
//! SSD without seq_idx, p <= 64 and N <= 128 (multiples of 4 and 8), many rows, takes the
//! chunked form (ssd_bwdc.rs, `MAMBA_CUDA_SSD_BWDC`); otherwise, without seq_idx, N <= 128,
//! many rows, `bwd_ssdt_*` (`ssd_bwd_t`: two p-rows
//! per warp, tiles of 8 steps in registers, one exponential per row and step, dB/dC summed
//! over the block's 16 rows); `MAMBA_CUDA_BWD2=0` selects the general kernel, `=1` forces
//! the new one wherever it applies (also for few rows: no time split then).

use mamba_core::abi::{
    activation, dtype, Conv1dBwdDesc, SelectiveScanBwdDesc, SsdBwdDesc, TensorDesc,
};

use super::ops::{
    bc_groups, conv_dims, dense, env_str, env_usize, gcd, inner_dense, opt, req, spans_meet,
    suffix, ConvDims,
};
use super::params::{BwdCastParams, ConvBwdParams, ScanBwdParams};
use super::{gpu, Gpu};
use crate::{PErr, PResult};

/// Steps per tile of the scan kernel (`BT` in bwd.cu).
const BT: usize = 32;
/// Row arrays per warp (`RV_COUNT` in bwd.cu).
const RV_COUNT: usize = 9;

/// The scan kernels' parameter block (`ScanBwdSplit` in bwd.cu): the common block and
/// the time split (K chunks of `ctiles` tiles; `loc` holds the local passes' results).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ScanBwdSplitParams {
    p: ScanBwdParams,
    loc: u64,
    k: i32,
    ctiles: i32,
    pad0: i32,
    pad1: i32,
    /// `scan1_bwd_v` / `scan1_loc_v`: the checkpoint-segment step sums of the local pass.
    cks: u64,
    /// `scan1_bwd_v` / `scan1_loc_v`: the chunk length in steps (0: `ctiles` * 32).
    clen: i32,
    /// `scan1_bwd_v`: the local pass stored the checkpoints (no forward pass).
    pre: i32,
}

const _: () =
    assert!(std::mem::size_of::<ScanBwdSplitParams>() == 23 * 8 + 20 * 4 + 8 + 4 * 4 + 16);

/// At most this many time chunks (the main kernel folds the other chunks' local
/// results, K - 1 of them, before it starts).
const MAX_CHUNKS: usize = 16;

/// The shortest run (in tiles of 32 steps) that is split in time.
const SPLIT_MIN_TILES: usize = 16;

/// Whether `rows` rows (one warp each) are too few to fill the device: under 8 per SM.
fn few_rows(g: &Gpu, rows: usize) -> bool {
    rows < 8 * g.sm_count.max(1) as usize
}

/// The time chunks for `ntiles` tiles: the most (16) when the rows are few and the run
/// is long, else none. Measured on the H200, Mamba-1 b2 d384 N64 (8 rows per block),
/// fwd+bwd with 1 / 16 chunks: L100 85 / 92 us, L400 217 / 214 us, L800 397 / 378 us.
fn split_chunks(few: bool, ntiles: usize) -> usize {
    let k = match env_usize("MAMBA_CUDA_BWD_SPLIT") {
        Some(k) => k.max(1),
        None if few && ntiles >= SPLIT_MIN_TILES => MAX_CHUNKS,
        None => 1,
    };
    k.min(MAX_CHUNKS).min(ntiles).max(1)
}

/// The launch shape of `scan1_bwd_t` (bwd.cu, `bwd_scan1t_*`): `nl` lanes per channel,
/// `s` states per lane, `nw` warps per block (fixed per kernel), a checkpoint every `r`
/// tiles of 16 steps (`r * 16 >= N`).
struct T1Shape {
    nl: usize,
    s: usize,
    nw: usize,
    r: usize,
    /// The kernel's name suffix after `_n{np}` (N <= 16 has variants).
    var: &'static str,
}

/// Steps per tile of `scan1_bwd_t` (`BT1` in bwd.cu).
const BT1: usize = 16;
/// Per-step row arrays of `scan1_bwd_t` (`V_COUNT` in bwd.cu).
const V_COUNT: usize = 6;

impl T1Shape {
    /// The kernel for N states, if there is one (N <= 64).
    fn new(n: usize) -> Option<T1Shape> {
        let (nl, s, nw) = match n {
            1..=16 => (16, 1, 8),
            17..=32 => (32, 1, 16),
            33..=64 => (32, 2, 8),
            _ => return None,
        };
        // N <= 16 has four kernels (`MAMBA_CUDA_BWD1_VAR`): "w16" (16 warps, one block
        // per SM, 128 registers), "w8" (8 warps, two blocks per SM), "o3" (8 warps, the
        // decays recomputed in the sweep, 80 registers: three blocks per SM) and "o4"
        // (the same in 64 registers, 28 bytes spilled: four blocks per SM). H200, b8 d2048
        // N16 L2048 fwd+bwd f32 / bf16: 3.41 / 4.09, 3.27 / 3.84, 3.03 / 3.33 and
        // 2.95 / 3.15 ms.
        let (nw, var) = if nl == 16 {
            match env_str("MAMBA_CUDA_BWD1_VAR").as_deref() {
                Some("w16") => (16, ""),
                Some("w8") => (8, "w8"),
                Some("o3") => (8, "o3"),
                _ => (8, "o4"),
            }
        } else {
            (nw, "")
        };
        Some(T1Shape {
            nl,
            s,
            nw,
            r: n.div_ceil(BT1),
            var,
        })
    }
    /// The kernel's name.
    fn func(&self, sfx: &str) -> String {
        format!("bwd_scan1t_{sfx}_n{}{}", self.nl * self.s, self.var)
    }
    fn np(&self) -> usize {
        self.nl * self.s
    }
    /// Channels per block.
    fn channels(&self) -> usize {
        self.nw * 32 / self.nl
    }
    /// Must match the carve-up at the top of scan1_bwd_t.
    fn smem(&self) -> usize {
        let ns = self.np() + 1;
        4 * (2 * BT1 * ns
            + V_COUNT * self.channels() * BT1
            + self.nw * 2 * BT1 * ns
            + self.r * self.s * self.nw * 32)
    }
    /// Whether `rows` channels give under 16 warps per SM.
    fn few(&self, g: &Gpu, rows: usize) -> bool {
        rows * self.nl * self.s < 16 * 32 * g.sm_count.max(1) as usize
    }
}

/// At most this many time chunks for `scan1_bwd_t` (H200, b2 d384 N64 L800 fwd+bwd: 16
/// chunks 304 us, 25 chunks 326 us, 8 chunks 346 us).
const MAX_CHUNKS_T: usize = 16;

/// The time chunks (in 32-step tiles) for `scan1_bwd_t`: as many as 16 when the
/// channels are few, else none; `MAMBA_CUDA_BWD_SPLIT=K` forces K.
fn split_chunks_t(few: bool, ntiles: usize) -> usize {
    let k = match env_usize("MAMBA_CUDA_BWD_SPLIT") {
        Some(k) => k.max(1),
        None if few => MAX_CHUNKS_T,
        None => 1,
    };
    k.min(MAX_CHUNKS_T).min(ntiles).max(1)
}

/// Steps per tile of `scan1_bwd_q` (`TQ` in bwd.cu).
const TQ: usize = 8;

/// The launch shape of `scan1_bwd_q` (bwd.cu, `bwd_scan1q_*`): `nl` lanes per channel
/// (4 for N <= 16, 8 for N <= 32), 4 states per lane, `nw` warps per block, tiles of 8
/// steps, a checkpoint every `r` tiles.
struct QShape {
    nl: usize,
    nw: usize,
    r: usize,
    /// The kernel's name suffix after `_n{np}`.
    var: &'static str,
    /// `scan1_bwd_v` (vector shared-memory reads; the suffixes with a `v`).
    v: bool,
}

impl QShape {
    /// The kernel for N states, if there is one and it is not switched off
    /// (`MAMBA_CUDA_BWD1Q=0`: `bwd_scan1t` everywhere). `MAMBA_CUDA_BWD1Q_VAR` picks
    /// the kernel: "q" (`scan1_bwd_q`: 8 warps, two blocks per SM; N <= 32), "w4" (4 warps, four blocks), "r3" (4
    /// warps, three blocks per SM: more registers), "v" / "vr3" (the shapes of "q" and
    /// "r3" in `scan1_bwd_v`: 16-byte shared-memory reads of B, C and the
    /// per-step values, dB/dC block sums by 16-byte reads; "v" also picks the N <= 32
    /// kernel `n32v` and, for 32 < N <= 64, `n64v`: 16 lanes per channel, lane pairs
    /// finishing a step), "x" (as "v", with the dB/dC values of a thread's four states
    /// stored by two 16-byte stores per step; N <= 64), "vd" / "xd" (as "v" / "x" with the
    /// decays recomputed in the sweep: 32 registers fewer, one exponential more per state
    /// and step; N <= 16 and N 33-64), "vdo" / "xdo" (as "vd" / "xd", du, d delta
    /// and dz staged in shared memory and written per 16-step pair: whole sectors in
    /// bf16; N <= 16, "vdo" also N <= 64). `MAMBA_CUDA_BWD1Q_R` sets the
    /// checkpoint interval in tiles (default: a checkpoint every 16 steps or fewer, at
    /// most 2 floats per channel and step; N <= 16 keeps one every tile).
    fn new(n: usize, f32: bool) -> Option<QShape> {
        let on = env_usize("MAMBA_CUDA_BWD1Q");
        if on == Some(0) {
            return None;
        }
        // Defaults (H200, two device calls, backward alone, bwd_scan1t -> new): N <= 16
        // in f32 "xd" (b8 d2048 L2048: 2264-2288 -> 2089-2110 us); in bf16 it was not
        // faster (2408-2430 -> 2445 us), so bf16 / f16 keep bwd_scan1t there; 32 < N <= 64
        // "vd" (b2 d384 fwd+bwd L100 / 400 / 800: 75.2 / 177.3 / 304.4 -> 67.1 / 173.0 /
        // 280.9 us); 16 < N <= 32 keeps bwd_scan1t unless MAMBA_CUDA_BWD1Q=1 (not timed).
        let want = env_str("MAMBA_CUDA_BWD1Q_VAR").filter(|v| !v.is_empty());
        // 32 < N <= 64 in f32: "xd" (H200, b2 d384 N64 fwd+bwd with the local pass
        // scan1_loc_v2, env read per call: L800 "vd" 195.2 -> "xd" 187.5 us; the final
        // binary's default, no env, 186.1 / 186.4 us against the old "vd" + scan1_loc_v
        // 201.7 / 200.5); bf16 / f16 keep "vd" (not timed).
        let want = want.as_deref().or(match n {
            1..=16 if f32 => Some("xd"),
            33..=64 if f32 => Some("xd"),
            33..=64 => Some("vd"),
            _ if on == Some(1) => Some("q"),
            _ => None,
        });
        let (nl, nw, var) = match (n, want) {
            (1..=16, Some("w4")) => (4, 4, "w4"),
            (1..=16, Some("r3")) => (4, 4, "r3"),
            (1..=16, Some("v")) => (4, 8, "v"),
            (1..=16, Some("vr3")) => (4, 4, "vr3"),
            (1..=16, Some("x")) => (4, 8, "x"),
            (1..=16, Some("vd")) => (4, 8, "vd"),
            (1..=16, Some("xd")) => (4, 8, "xd"),
            (1..=16, Some("xdo")) => (4, 8, "xdo"),
            (1..=16, Some("vdo")) => (4, 8, "vdo"),
            (1..=16, Some(_)) => (4, 8, ""),
            (17..=32, Some("v" | "vr3" | "vd" | "vdo")) => (8, 8, "v"),
            (17..=32, Some("x" | "xd" | "xdo")) => (8, 8, "x"),
            (17..=32, Some(_)) => (8, 8, ""),
            (33..=64, Some("v" | "vr3")) => (16, 8, "v"),
            (33..=64, Some("vd")) => (16, 8, "vd"),
            (33..=64, Some("v1")) => (16, 8, "v1"),
            (33..=64, Some("vd1")) => (16, 8, "vd1"),
            (33..=64, Some("vdw")) => (16, 16, "vdw"),
            (33..=64, Some("vdo" | "xdo")) => (16, 8, "vdo"),
            (33..=64, Some("x")) => (16, 8, "x"),
            (33..=64, Some("xd")) => (16, 8, "xd"),
            _ => return None,
        };
        let r = env_usize("MAMBA_CUDA_BWD1Q_R")
            .unwrap_or_else(|| n.div_ceil(2 * TQ))
            .clamp(1, 64);
        Some(QShape {
            nl,
            nw,
            r,
            var,
            v: var.starts_with('v') || var.starts_with('x'),
        })
    }
    fn func(&self, sfx: &str) -> String {
        format!("bwd_scan1q_{sfx}_n{}{}", self.np(), self.var)
    }
    fn np(&self) -> usize {
        self.nl * 4
    }
    fn channels(&self) -> usize {
        self.nw * 32 / self.nl
    }
    /// Checkpoint segments per chunk of `ctiles` 32-step tiles.
    fn nseg(&self, ctiles: usize) -> usize {
        (ctiles * (BT / TQ)).div_ceil(self.r)
    }
    /// Must match the carve-up at the top of scan1_bwd_q.
    fn smem(&self) -> usize {
        let (np, cb) = (self.np(), self.channels());
        let (bc_row, red_pad) = match (self.v, self.var) {
            (true, v) if v.starts_with('x') => (np, 16),
            (true, _) => (np, self.nl),
            _ => (np + 1, 1),
        };

        4 * (2 * TQ * bc_row
            + V_COUNT * cb * (TQ + 1)
            + cb * (2 * np * TQ + red_pad)
            + self.r * 4 * self.nw * 32
            + cb
            + if self.var.ends_with('o') {
                3 * cb * 16
            } else {
                0
            }
            + if self.v { 4 * self.nw * 32 } else { 0 })
    }
    /// Whether `rows` channels give under 8 warps per SM.
    fn few(&self, g: &Gpu, rows: usize) -> bool {
        rows * self.nl < 8 * 32 * g.sm_count.max(1) as usize
    }
    /// The local pass `scan1_loc_v` (bwd.cu, `bwd_scan1q_loc_*`) of a "v" kernel: its
    /// name, channels per block, threads per block and shared memory. S states per
    /// thread (`MAMBA_CUDA_BWD1Q_LOCS` = 1, 2 (N > 32 only) or 4; default 4): S = 4 has
    /// the main kernel's block shape, S = 1 / 2 blocks of 256 threads with NP / S
    /// threads per channel (more warps for the same chunk, but not faster: H200, b2 d384
    /// N64 fwd+bwd L100 / 400 / 800, S = 4 / 2 / 1: 52.1 / 127.1 / 225.0, 52.7 / 132.7 /
    /// 235.9, 58.8 / 145.6 / 255.0 us).
    fn loc_kernel(&self, sfx: &str) -> (String, usize, usize, usize) {
        let np = self.np();
        let s = match env_usize("MAMBA_CUDA_BWD1Q_LOCS") {
            Some(1) => 1,
            Some(2) if np == 64 => 2,
            Some(2) => 1,
            _ => 4,
        };
        // `MAMBA_CUDA_BWD1Q_LOCV=2`: `scan1_loc_v2` (float4 B / C loads in f32, unrolled
        // 8-step runs without a division per checkpoint; S = 4 with 8 or 16 warps, two
        // blocks per SM; S = 2 at N 33-64 (`MAMBA_CUDA_BWD1Q_LOCS=2`), four blocks per SM,
        // slower: 45.5 us), the default in f32 (H200, b2 d384 N64 L800, ncu: local pass
        // 39.8 -> 32.8-33.5 us), where it was timed: f32, 32 < N <= 64; `=1`: `scan1_loc_v`
        // (the default elsewhere: bf16 / f16 and N <= 32 were not timed).
        // `MAMBA_CUDA_BWD1Q_LOCU=1` (S = 4): `scan1_loc_v` in unrolled runs of 8 steps.
        let v2 = match env_usize("MAMBA_CUDA_BWD1Q_LOCV") {
            Some(2) => true,
            Some(_) => false,
            None => sfx == "f32" && np == 64,
        };
        let u = if env_usize("MAMBA_CUDA_BWD1Q_LOCU") == Some(1) {
            "u"
        } else if v2 && (self.nw == 8 || (self.nw == 16 && np == 64)) {
            "v2"
        } else {
            ""
        };
        let u2 = if v2 && s == 2 && np == 64 { "v2" } else { "" };
        let (name, cb, threads) = if s == 4 {
            (
                format!("bwd_scan1q_loc_{sfx}_n{np}w{}{u}", self.nw),
                self.channels(),
                self.nw * 32,
            )
        } else {
            (
                format!("bwd_scan1q_loc_{sfx}_n{np}s{s}{u2}"),
                256 / (np / s),
                256,
            )
        };
        // Must match the carve-up at the top of scan1_loc_v.
        let smem = 16 * cb * (32 + 1) + 4 * (2 * 32 * (np + 4) + cb);
        (name, cb, threads, smem)
    }
    /// Blocks of the main kernel per SM (the "1" variants: one, no register cap).
    fn blocks_per_sm(&self) -> usize {
        if self.var.ends_with('1') || self.var.ends_with('w') {
            1
        } else {
            2
        }
    }
}

/// The time split of the "v" kernels with the local pass `scan1_loc_v`: (chunks, chunk
/// length in steps, a multiple of TQ). `MAMBA_CUDA_BWD_SPLIT=K` forces about K chunks;
/// else, when the channels are few, the K <= MAX_CHUNKS_V that minimises the waves of
/// main-kernel blocks (`per_chunk` blocks per chunk, `slots` resident at a time) times
/// the chunk length plus a per-chunk overhead of 16 steps; then [`split_tail`] may
/// shorten the chunks so that a short last chunk runs in the slots the full ones leave
/// free (`MAMBA_CUDA_BWD_SPLIT_TAIL=0`: never). `MAMBA_CUDA_BWD_CLEN` forces the length.
fn split_v(few: bool, l: usize, per_chunk: usize, slots: usize) -> (usize, usize) {
    let len = |k: usize| l.div_ceil(k.max(1)).div_ceil(TQ) * TQ;
    let forced = env_usize("MAMBA_CUDA_BWD_SPLIT");
    let want = match forced {
        Some(k) => k.clamp(1, MAX_CHUNKS_V),
        None if few => (1..=MAX_CHUNKS_V)
            .min_by_key(|&k| {
                let cl = len(k);
                let kk = l.div_ceil(cl);
                (kk * per_chunk).div_ceil(slots.max(1)) * (cl + 16)
            })
            .unwrap_or(1),
        None => 1,
    };
    let cl = len(want);
    let cl = if few && forced.is_none() && env_usize("MAMBA_CUDA_BWD_SPLIT_TAIL") != Some(0) {
        split_tail(l, cl, per_chunk, slots)
    } else {
        cl
    };
    // `MAMBA_CUDA_BWD_CLEN=S`: chunks of S steps (rounded up to TQ; at most MAX_CHUNKS_V
    // chunks), for measurement.
    let cl = match env_usize("MAMBA_CUDA_BWD_CLEN") {
        Some(s) => s.max(l.div_ceil(MAX_CHUNKS_V)).div_ceil(TQ).max(1) * TQ,
        None => cl,
    };
    (l.div_ceil(cl), cl)
}

/// A shorter chunk length than `cl` (a multiple of TQ) when the blocks of the full chunks
/// fit in one wave of `slots` and those of the short last chunk run in the slots left
/// free, each of these slots taking several short blocks one after the other while the
/// full ones run (blocks start in grid order, the last chunk's last). Modelled time:
/// (chunk length + 16) for one wave of full chunks; kept only when it is below the
/// current split's one wave of (cl + 16). (H200, b2 d384 N64 L800: 5 chunks of 160
/// steps, 240 blocks in 264 slots, against 5 of 152 and one of 40 whose 48 blocks take
/// the 24 free slots twice.)
fn split_tail(l: usize, cl: usize, per_chunk: usize, slots: usize) -> usize {
    let k = l.div_ceil(cl);
    if per_chunk == 0 || k * per_chunk > slots {
        return cl;
    }
    let mut best = (cl + 16, cl);
    let mut c = cl - TQ.min(cl);
    while c >= TQ && c + 16 < best.0 {
        let kk = l.div_ceil(c);
        let full = (kk - 1) * per_chunk;
        let r = l - (kk - 1) * c;
        if kk > MAX_CHUNKS_V {
            break;
        }
        if kk * per_chunk <= slots {
            best = (c + 16, c);
        } else if full < slots {
            let spare = slots - full;
            let runs = (c + 16) / (r + 16);
            if spare * runs >= per_chunk {
                best = (c + 16, c);
            }
        }
        c -= TQ;
    }
    best.1
}

/// At most this many chunks for `split_v`.
const MAX_CHUNKS_V: usize = 32;

/// Warps per block of `ssd_bwd_t` (bwd.cu, `bwd_ssdt_*`).
const SSDT_NW: usize = 8;
/// Per-(row, step) arrays of `ssd_bwd_t` (`W_COUNT` in bwd.cu).
const SSDT_V: usize = 9;

/// The launch shape of `ssd_bwd_t` (bwd.cu, `bwd_ssdt_*`): the SSD backward without
/// seq_idx and without a time split. A warp holds `rp` p-rows, its lanes along N (`s`
/// states per lane), 8 warps per block, tiles of `16 / rp` steps, a checkpoint every
/// `r` tiles (`r * 16 / rp >= N`).
struct SsdTShape {
    s: usize,
    rp: usize,
    r: usize,
    /// `_b1`: one block per SM, no register cap below 255 (N > 64, 2 rows per warp).
    b1: bool,
}

impl SsdTShape {
    /// The kernel for N states, if there is one (N <= 128). `MAMBA_CUDA_BWD2_RP` = 1, 2
    /// or 4 picks the rows per warp at N > 64 (default 2), `MAMBA_CUDA_BWD2_B1=1` the
    /// one-block-per-SM build of the 2-row kernel.
    fn new(n: usize) -> Option<SsdTShape> {
        let s = match n {
            1..=32 => 1,
            33..=64 => 2,
            65..=128 => 4,
            _ => return None,
        };
        let rp = match (s, env_usize("MAMBA_CUDA_BWD2_RP")) {
            (4, Some(1)) => 1,
            (4, Some(4)) => 4,
            _ => 2,
        };
        Some(SsdTShape {
            s,
            rp,
            r: n.div_ceil(BT1 / rp),
            b1: s == 4 && rp == 2 && env_str("MAMBA_CUDA_BWD2_B1").as_deref() == Some("1"),
        })
    }
    fn ts(&self) -> usize {
        BT1 / self.rp
    }
    fn func(&self, sfx: &str) -> String {
        let v = if self.b1 { "_b1" } else { "" };
        format!("bwd_ssdt_{sfx}_s{}_r{}{v}", self.s, self.rp)
    }
    /// Rows per block.
    fn rows(&self) -> usize {
        SSDT_NW * self.rp
    }
    /// Checkpoint segments for `l` steps.
    fn nseg(&self, l: usize) -> usize {
        l.div_ceil(self.ts()).div_ceil(self.r)
    }
    /// Must match the carve-up at the top of ssd_bwd_t.
    fn smem(&self) -> usize {
        let (ts, ns) = (self.ts(), 32 * self.s + 1);
        4 * (2 * ts * ns + SSDT_V * self.rows() * ts + SSDT_NW * 2 * ts * ns)
    }
}

/// The launch shape of `scan_bwd`: states per lane, rows per block, tiles per
/// checkpoint segment, dynamic shared memory.
struct ScanShape {
    s: usize,
    w: usize,
    r: usize,
    smem: usize,
}

fn scan_shape(g: &Gpu, op: &str, n: usize, seg: usize, few: bool) -> PResult<ScanShape> {
    let s = match n.div_ceil(32) {
        0 | 1 => 1,
        2 => 2,
        3 | 4 => 4,
        5..=8 => 8,
        _ => {
            return Err(PErr::unsupported(format!(
                "{op}: N = {n} is larger than 256 (the backward keeps at most 8 states per lane)"
            )))
        }
    };
    let np = 32 * s;
    // A checkpoint every R tiles with R * BT >= N: (L / (R BT)) * np <= ~L floats per row.
    let r = n.div_ceil(BT).max(1);
    // Must match the carve-up at the top of scan_bwd.
    let block = 2 * BT * (np + 1) + BT;
    let per_warp = BT * (np + 1) + r * np + 2 * BT * (BT + 1) + RV_COUNT * BT;
    let fits = |budget: usize| (budget / 4).saturating_sub(block) / per_warp;
    // Many rows: two blocks per SM when that leaves at least four rows per block, else
    // one. Few rows (split in time): the most rows per block, one block per SM; every
    // block of a B/C group adds into the same dB/dC elements, so fewer blocks mean fewer
    // atomics (H200, b2 d384 N64 L400: 8 rows per block 241 us, 5 rows 326 us).
    // `MAMBA_CUDA_BWD_ROWS` asks for that many rows per block (as far as they fit).
    let one = fits(g.max_smem()).min(8).min(seg);
    let two = fits(110 * 1024).min(8).min(seg);
    let mut w = if few || two < 4 { one } else { two };
    if let Some(want) = env_usize("MAMBA_CUDA_BWD_ROWS") {
        w = want.clamp(1, 8).min(fits(g.max_smem())).min(seg);
    }
    if w == 0 {
        return Err(PErr::unsupported(format!(
            "{op}: N = {n} needs more shared memory than the device has"
        )));
    }
    Ok(ScanShape {
        s,
        w,
        r,
        smem: 4 * (block + w * per_warp),
    })
}

/// Rounds `n` f32 values at `src` into `dst` (the activations' type `sfx`).
fn cast(g: &Gpu, sfx: &str, src: u64, dst: u64, n: usize, stream: u64) -> PResult<()> {
    if n == 0 {
        return Ok(());
    }
    let f = g.func(&format!("bwd_cast_{sfx}"))?;
    let prm = BwdCastParams {
        src,
        dst,
        n: n as i64,
    };
    let blocks = n.div_ceil(256).min(1 << 16) as u32;
    g.launch(f, (blocks, 1, 1), 256, 0, stream, &prm)
}

fn zero(t: &TensorDesc, stream: u64) -> PResult<()> {
    if t.is_none() {
        return Ok(());
    }
    super::memset(t.ptr, 0, t.numel() as usize * dtype::size(t.dtype), stream)
}

/// An optional gradient may be requested only with its input.
fn grad_needs_input(op: &str, grad: &str, g: &TensorDesc, input: &TensorDesc) -> PResult<()> {
    if !g.is_none() && input.is_none() {
        return Err(PErr::invalid(format!(
            "{op}: `{grad}` is requested but its input is absent"
        )));
    }
    Ok(())
}

/// Scratch for one call (stream-ordered), freed on every path.
struct Scratch<'g> {
    g: &'g Gpu,
    ptr: u64,
    stream: u64,
}

impl<'g> Scratch<'g> {
    fn new(g: &'g Gpu, bytes: usize, stream: u64) -> PResult<Scratch<'g>> {
        Ok(Scratch {
            g,
            ptr: g.alloc_async(bytes, stream)?,
            stream,
        })
    }
    fn free(self) -> PResult<()> {
        let r = self.g.free_async(self.ptr, self.stream);
        std::mem::forget(self);
        r
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.g.free_async(self.ptr, self.stream);
    }
}

fn a256(v: usize) -> usize {
    v.div_ceil(256) * 256
}

/// Runs the scan kernel with a filled parameter block (pointers, sizes, options), with
/// `nrows_seg` rows per segment; allocates the checkpoints and the f32 accumulators,
/// zeroes them and the accumulated outputs, launches, casts dB and dC (and, for SSD,
/// d dt) into the outputs.
#[allow(clippy::too_many_arguments)]
fn scan_run(
    g: &Gpu,
    op: &str,
    mut prm: ScanBwdParams,
    ssd: bool,
    act: u32,
    b_numel: usize,
    c_numel: usize,
    db_out: &TensorDesc,
    dc_out: &TensorDesc,
    ddt_out: &TensorDesc,
    zeroed: &[&TensorDesc],
    stream: u64,
) -> PResult<()> {
    let sfx = suffix(act, op)?;
    let (b, rows, l, n) = (
        prm.batch as usize,
        prm.rows as usize,
        prm.seqlen as usize,
        prm.dstate as usize,
    );
    let seg = prm.seg as usize;
    let bc_var = !ssd && prm.b_groups > 0 && prm.c_groups > 0;
    let bwd1 = env_usize("MAMBA_CUDA_BWD1") != Some(0);
    let qk = bc_var
        .then(|| QShape::new(n, sfx == "f32"))
        .flatten()
        .filter(|_| bwd1);
    let tk = bc_var
        .then(|| T1Shape::new(n))
        .flatten()
        .filter(|_| bwd1 && qk.is_none());
    let few = match (&qk, &tk) {
        (Some(q), _) => q.few(g, b * rows),
        (None, Some(t)) => t.few(g, b * rows),
        (None, None) => few_rows(g, b * rows),
    };
    // SSD without seq_idx, N <= 128: `bwd_ssdt_*` when the rows fill the device (it has
    // no time split); `MAMBA_CUDA_BWD2=1` forces it wherever it applies, `=0` never.
    let st = (ssd && prm.seq_idx == 0)
        .then(|| SsdTShape::new(n))
        .flatten()
        .filter(|_| match env_str("MAMBA_CUDA_BWD2").as_deref() {
            Some("0") => false,
            Some("1") => true,
            _ => !few,
        });
    let shape = scan_shape(g, op, n, seg, few)?;
    let np = 32 * shape.s;
    let blocks_per_seg = seg.div_ceil(shape.w);
    let gx = (rows / seg) * blocks_per_seg;
    let ntiles = l.div_ceil(BT);
    let want = match (&tk, &st) {
        (_, Some(_)) => 1,
        _ if qk.is_some() => split_chunks_t(few, ntiles),
        (Some(_), None) => split_chunks_t(few, ntiles),
        (None, None) => split_chunks(few, ntiles),
    };
    let ctiles = ntiles.div_ceil(want);
    let mut k = ntiles.div_ceil(ctiles);
    let nseg = ctiles.div_ceil(shape.r);
    // The "v" kernels: the time split in TQ-step units with the local pass scan1_loc_v
    // (`MAMBA_CUDA_BWD1Q_LOC=0`: the old local pass and 32-step units), which also stores
    // the checkpoints so that the main kernel skips its forward pass
    // (`MAMBA_CUDA_BWD1Q_PRE=0`: it keeps it).
    let vloc = qk
        .as_ref()
        .filter(|q| q.v && env_usize("MAMBA_CUDA_BWD1Q_LOC") != Some(0));
    let mut clen = 0;
    if let Some(q) = vloc {
        let per_chunk = (rows / seg) * seg.div_ceil(q.channels()) * b;
        let slots = q.blocks_per_sm() * g.sm_count.max(1) as usize;
        (k, clen) = split_v(few, l, per_chunk, slots);
    }
    let pre = vloc.is_some() && k > 1 && env_usize("MAMBA_CUDA_BWD1Q_PRE") != Some(0);
    // With the checkpoints from the local pass, one per tile (no re-run tiles in the main
    // kernel; H200, b2 d384 N64 L400 / L800 bwd: R = 4 115.3 / 190.9 us, R = 2 113.9 /
    // 188.3, R = 1 110.7 / 180.2) while they take at most 64 MB (the channels are few
    // here); `MAMBA_CUDA_BWD1Q_R` overrides.
    let qr = qk.as_ref().map_or(1, |q| {
        let one = b * rows * l.div_ceil(TQ) * q.np() * 4 <= 64 << 20;
        if pre && one && env_usize("MAMBA_CUDA_BWD1Q_R").is_none() {
            1
        } else {
            q.r
        }
    });
    // Checkpoint segments per chunk of the "q"/"v" kernels.
    let nseg_q = qk.as_ref().map_or(0, |q| {
        if vloc.is_some() {
            (clen / TQ).div_ceil(qr)
        } else {
            q.nseg(ctiles)
        }
    });
    // The new kernel's checkpoints: every R tiles of 16 steps, R * 16 >= N.
    let nseg_t = tk.as_ref().map_or(0, |t| (2 * ctiles).div_ceil(t.r));
    let ckpt_bytes = match (&tk, &st) {
        (_, Some(t)) => a256(b * rows * t.nseg(l) * 32 * t.s * 4),
        _ if qk.is_some() => {
            let q = qk.as_ref().unwrap();
            a256(b * rows * k * nseg_q * q.np() * 4)
        }
        (Some(t), None) => a256(b * rows * k * nseg_t * t.np() * 4),
        (None, None) => a256(b * rows * k * nseg * np * 4),
    };
    let loc_np = match vloc {
        Some(q) => q.np(),
        None => np,
    };
    let loc_bytes = if k > 1 {
        a256(b * rows * k * 3 * loc_np * 4)
    } else {
        0
    };
    let cks_bytes = if pre {
        a256(b * rows * k * nseg_q * 4)
    } else {
        0
    };
    // f32 activations: dB and dC are accumulated straight into the outputs (no f32
    // scratch, no casts) when they are 16-byte aligned (the vector atomics);
    // `MAMBA_CUDA_BWD_DIRECT=0` keeps the scratch and the casts.
    let direct = sfx == "f32"
        && env_usize("MAMBA_CUDA_BWD_DIRECT") != Some(0)
        && db_out.ptr.is_multiple_of(16)
        && dc_out.ptr.is_multiple_of(16);
    let (db_bytes, dc_bytes) = if direct {
        (0, 0)
    } else {
        (a256(b_numel * 4), a256(c_numel * 4))
    };
    let ddt_bytes = if ssd {
        a256(b * l * prm.nheads as usize * 4)
    } else {
        0
    };
    let scratch = Scratch::new(
        g,
        ckpt_bytes + loc_bytes + cks_bytes + db_bytes + dc_bytes + ddt_bytes,
        stream,
    )?;
    prm.ckpt = scratch.ptr;
    let loc = scratch.ptr + ckpt_bytes as u64;
    let cks = loc + loc_bytes as u64;
    let acc = cks + cks_bytes as u64;
    prm.ddt_acc = if ssd {
        acc + (db_bytes + dc_bytes) as u64
    } else {
        0
    };
    // With the local pass scan1_loc_v, it zeroes dB, dC, dA, dD and d bias (Mamba-1: no
    // d dt) instead of the memsets (H200, b2 d384 N64 fwd+bwd L100 / 400 / 800: 52.7 /
    // 132.7 / 235.9 us against 68.2 / 141.9 / 245.7); `MAMBA_CUDA_BWD1Q_ZERO=0`: memsets.
    let zero_in_loc = vloc.is_some() && k > 1 && env_usize("MAMBA_CUDA_BWD1Q_ZERO") != Some(0);
    if direct {
        prm.db = db_out.ptr;
        prm.dc = dc_out.ptr;
        if !zero_in_loc {
            super::memset(prm.db, 0, b_numel * 4, stream)?;
            super::memset(prm.dc, 0, c_numel * 4, stream)?;
        }
        if ssd {
            super::memset(prm.ddt_acc, 0, ddt_bytes, stream)?;
        }
    } else {
        prm.db = acc;
        prm.dc = acc + db_bytes as u64;
        if !zero_in_loc {
            super::memset(prm.db, 0, db_bytes + dc_bytes + ddt_bytes, stream)?;
        }
    }
    if !zero_in_loc {
        for t in zeroed {
            zero(t, stream)?;
        }
    }
    prm.w = shape.w as i32;
    prm.r = shape.r as i32;
    prm.nseg = nseg as i32;
    prm.blocks_per_seg = blocks_per_seg as i32;
    let sp = ScanBwdSplitParams {
        p: prm,
        loc: if k > 1 { loc } else { 0 },
        k: k as i32,
        ctiles: ctiles as i32,
        ..ScanBwdSplitParams::default()
    };
    let grid = (gx as u32, b as u32, k as u32);
    let kind = if ssd { "ssd" } else { "scan1" };
    let threads = (shape.w * 32) as u32;
    if k > 1 && vloc.is_none() {
        // Must match the local pass's carve-up in scan_bwd (B, C, reset flags, row arrays).
        let smem = 4 * (2 * BT * (np + 1) + BT + shape.w * RV_COUNT * BT);
        let f = g.func(&format!("bwd_{kind}_loc_{sfx}_s{}", shape.s))?;
        g.launch(f, grid, threads, smem, stream, &sp)?;
    }
    if let Some(t) = &st {
        let cb = t.rows();
        let bps = seg.div_ceil(cb);
        let mut tp = sp;
        tp.p.w = cb as i32;
        tp.p.r = t.r as i32;
        tp.p.nseg = t.nseg(l) as i32;
        tp.p.blocks_per_seg = bps as i32;
        let f = g.func(&t.func(sfx))?;
        let grid = (((rows / seg) * bps) as u32, b as u32, 1);
        g.launch(f, grid, (SSDT_NW * 32) as u32, t.smem(), stream, &tp)?;
    } else if let Some(q) = &qk {
        let cb = q.channels();
        let bps = seg.div_ceil(cb);
        let mut tp = sp;
        tp.p.w = cb as i32;
        tp.p.r = qr as i32;
        tp.p.nseg = nseg_q as i32;
        tp.p.blocks_per_seg = bps as i32;
        tp.pad0 = loc_np as i32; // states per row of the local passes' results
        let grid = (((rows / seg) * bps) as u32, b as u32, k as u32);
        // 16-byte dB / dC atomics in the kernels with one channel group per sum unit
        // (32 < N <= 64, 8 warps, not "x") when L % 4 == 0 (dB / dC are 16-byte aligned:
        // the scratch, or the outputs when `direct`); `MAMBA_CUDA_BWD1Q_VEC4=0`: scalar.
        // (H200, b2 d384 N64 fwd+bwd: no faster than scalar, 133 vs 133 us at L400.)
        if n > 32
            && q.nw == 8
            && !q.var.starts_with('x')
            && l.is_multiple_of(4)
            && env_usize("MAMBA_CUDA_BWD1Q_VEC4") != Some(0)
        {
            tp.pre |= 4;
        }
        if vloc.is_some() {
            tp.clen = clen as i32;
            // MAMBA_CUDA_BWD1Q_DIAG_NODBC=1: a timing diagnostic only (dB, dC not added).
            tp.pre |= (pre as i32)
                | ((env_usize("MAMBA_CUDA_BWD1Q_DIAG_NODBC") == Some(1)) as i32 * 2)
                | (zero_in_loc as i32 * 8);
            tp.cks = if pre { cks } else { 0 };
            if k > 1 {
                let (name, lcb, threads, smem) = q.loc_kernel(sfx);
                let lbps = seg.div_ceil(lcb);
                let mut lp = tp;
                lp.p.blocks_per_seg = lbps as i32;
                let f = g.func(&name)?;
                let lgrid = (((rows / seg) * lbps) as u32, b as u32, k as u32);
                g.launch(f, lgrid, threads as u32, smem, stream, &lp)?;
            }
        }
        let f = g.func(&q.func(sfx))?;
        g.launch(f, grid, (q.nw * 32) as u32, q.smem(), stream, &tp)?;
    } else if let Some(t) = &tk {
        let cb = t.channels();
        let bps = seg.div_ceil(cb);
        let mut tp = sp;
        tp.p.w = cb as i32;
        tp.p.r = t.r as i32;
        tp.p.nseg = nseg_t as i32;
        tp.p.blocks_per_seg = bps as i32;
        tp.pad0 = np as i32; // states per row of the local passes' results
        let f = g.func(&t.func(sfx))?;
        let grid = (((rows / seg) * bps) as u32, b as u32, k as u32);
        g.launch(f, grid, (t.nw * 32) as u32, t.smem(), stream, &tp)?;
    } else {
        let f = g.func(&format!("bwd_{kind}_{sfx}_s{}", shape.s))?;
        g.launch(f, grid, threads, shape.smem, stream, &sp)?;
    }
    if !direct {
        cast(g, sfx, prm.db, db_out.ptr, b_numel, stream)?;
        cast(g, sfx, prm.dc, dc_out.ptr, c_numel, stream)?;
    }
    if ssd {
        cast(
            g,
            sfx,
            prm.ddt_acc,
            ddt_out.ptr,
            ddt_out.numel() as usize,
            stream,
        )?;
    }
    scratch.free()
}

// ---------------------------------------------------------------- SPEC 1

pub(crate) fn selective_scan_backward(d: &SelectiveScanBwdDesc, stream: u64) -> PResult<()> {
    selective_scan_backward_with(d, None, stream)
}

/// `selective_scan_backward_saved`: the backward from the checkpoints that
/// `selective_scan_forward_saving` wrote into `saved` for the same inputs (`bytes` 0: as
/// `selective_scan_backward`). The saving form's backward is `bwdlm_*_q4pbs` (bwd_lm.rs).
pub(crate) fn selective_scan_backward_saved(
    d: &SelectiveScanBwdDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> PResult<()> {
    if super::ops::check_saved(&d.fwd, saved, bytes, "selective_scan_backward_saved")? == 0 {
        return selective_scan_backward_with(d, None, stream);
    }
    selective_scan_backward_with(d, Some(saved), stream)
}

fn selective_scan_backward_with(
    d: &SelectiveScanBwdDesc,
    saved: Option<u64>,
    stream: u64,
) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "selective_scan_backward";
    let p = &d.fwd;
    let act = p.u.dtype;
    suffix(act, OP)?;
    if p.u.rank != 3 || p.a.rank != 2 {
        return Err(PErr::invalid(format!(
            "{OP}: `u` must be (b, d, L) and `A` (d, N); got {:?} and {:?}",
            p.u.shape(),
            p.a.shape()
        )));
    }
    let (b, dd, l) = (p.u.dims[0], p.u.dims[1], p.u.dims[2]);
    let n = p.a.dims[1];
    if b == 0 || dd == 0 || l == 0 || n == 0 {
        return Err(PErr::invalid(format!(
            "{OP}: zero dimension in b={b}, d={dd}, L={l}, N={n}"
        )));
    }
    let io = [b, dd, l];
    let st = [b, dd, n];
    req(OP, "u", &p.u, act, &io)?;
    req(OP, "delta", &p.delta, act, &io)?;
    req(OP, "A", &p.a, dtype::F32, &[dd, n])?;
    let bg = bc_groups(OP, "B", &p.b, act, b, dd, n, l)?;
    let cg = bc_groups(OP, "C", &p.c, act, b, dd, n, l)?;
    opt(OP, "D", &p.d, dtype::F32, &[dd])?;
    opt(OP, "z", &p.z, act, &io)?;
    opt(OP, "delta_bias", &p.delta_bias, dtype::F32, &[dd])?;
    opt(OP, "initial_state", &p.initial_state, dtype::F32, &st)?;
    req(OP, "dout", &d.dout, act, &io)?;
    opt(OP, "dlast_state", &d.dlast_state, dtype::F32, &st)?;
    req(OP, "du", &d.du, act, &io)?;
    req(OP, "ddelta", &d.ddelta, act, &io)?;
    req(OP, "dA", &d.da, dtype::F32, &[dd, n])?;
    req(OP, "dB", &d.db, act, p.b.shape())?;
    req(OP, "dC", &d.dc, act, p.c.shape())?;
    opt(OP, "dD", &d.dd, dtype::F32, &[dd])?;
    opt(OP, "dz", &d.dz, act, &io)?;
    opt(OP, "ddelta_bias", &d.ddelta_bias, dtype::F32, &[dd])?;
    opt(OP, "dinitial_state", &d.dinitial_state, dtype::F32, &st)?;
    grad_needs_input(OP, "dD", &d.dd, &p.d)?;
    grad_needs_input(OP, "dz", &d.dz, &p.z)?;
    grad_needs_input(OP, "ddelta_bias", &d.ddelta_bias, &p.delta_bias)?;
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
        ("dout", &d.dout),
        ("dlast_state", &d.dlast_state),
        ("du", &d.du),
        ("ddelta", &d.ddelta),
        ("dA", &d.da),
        ("dB", &d.db),
        ("dC", &d.dc),
        ("dD", &d.dd),
        ("dz", &d.dz),
        ("ddelta_bias", &d.ddelta_bias),
        ("dinitial_state", &d.dinitial_state),
    ] {
        dense(OP, name, t)?;
    }
    let (b, dd, l, n) = (b as usize, dd as usize, l as usize, n as usize);
    let gsize = |groups: i32| {
        if groups == 0 {
            dd
        } else {
            dd / groups as usize
        }
    };
    let seg = gcd(gsize(bg), gsize(cg));
    // Many channels, N <= 16, B/C varying: kernels/bwd_lm.cu (`MAMBA_CUDA_BWD_LM`).
    if saved.is_some() || super::bwd_lm::wanted(g, act, b, dd, n, bg, cg) {
        return super::bwd_lm::run(g, d, act, (b, dd, l, n), (bg, cg), seg, saved, stream);
    }
    let prm = ScanBwdParams {
        u: p.u.ptr,
        delta: p.delta.ptr,
        a: p.a.ptr,
        b: p.b.ptr,
        c: p.c.ptr,
        d: p.d.ptr,
        z: p.z.ptr,
        bias: p.delta_bias.ptr,
        h0: p.initial_state.ptr,
        seq_idx: 0,
        dout: d.dout.ptr,
        dlast: d.dlast_state.ptr,
        du: d.du.ptr,
        ddelta: d.ddelta.ptr,
        dz: d.dz.ptr,
        da: d.da.ptr,
        dd: d.dd.ptr,
        dbias: d.ddelta_bias.ptr,
        dh0: d.dinitial_state.ptr,
        batch: b as i32,
        rows: dd as i32,
        seqlen: l as i32,
        dstate: n as i32,
        nheads: 1,
        headdim: 1,
        b_groups: bg,
        c_groups: cg,
        softplus: (p.delta_softplus != 0) as i32,
        has_limit: 0,
        lo: 0.0,
        hi: f32::INFINITY,
        seg: seg as i32,
        ..ScanBwdParams::default()
    };
    scan_run(
        g,
        OP,
        prm,
        false,
        act,
        p.b.numel() as usize,
        p.c.numel() as usize,
        &d.db,
        &d.dc,
        &TensorDesc::NONE,
        &[&d.da, &d.dd, &d.ddelta_bias],
        stream,
    )
}

// ---------------------------------------------------------------- SPEC 2

pub(crate) fn ssd_backward(d: &SsdBwdDesc, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "ssd_backward";
    let p = &d.fwd;
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
    let io = [b, l, h, hp];
    let st = [b, h, hp, n];
    req(OP, "x", &p.x, act, &io)?;
    req(OP, "dt", &p.dt, act, &[b, l, h])?;
    req(OP, "A", &p.a, dtype::F32, &[h])?;
    req(OP, "B", &p.b, act, &[b, l, ng, n])?;
    req(OP, "C", &p.c, act, &[b, l, ng, n])?;
    let d_per_channel = if p.d.is_none() {
        false
    } else if p.d.rank == 1 {
        req(OP, "D", &p.d, dtype::F32, &[h])?;
        false
    } else {
        req(OP, "D", &p.d, dtype::F32, &[h, hp])?;
        true
    };
    opt(OP, "z", &p.z, act, &io)?;
    opt(OP, "dt_bias", &p.dt_bias, dtype::F32, &[h])?;
    opt(OP, "initial_states", &p.initial_states, dtype::F32, &st)?;
    opt(OP, "seq_idx", &p.seq_idx, dtype::I32, &[b, l])?;
    req(OP, "dout", &d.dout, act, &io)?;
    opt(OP, "dfinal_states", &d.dfinal_states, dtype::F32, &st)?;
    req(OP, "dx", &d.dx, act, &io)?;
    req(OP, "ddt", &d.ddt, act, &[b, l, h])?;
    req(OP, "dA", &d.da, dtype::F32, &[h])?;
    req(OP, "dB", &d.db, act, &[b, l, ng, n])?;
    req(OP, "dC", &d.dc, act, &[b, l, ng, n])?;
    if !d.dd.is_none() {
        req(OP, "dD", &d.dd, dtype::F32, p.d.shape())?;
    }
    opt(OP, "dz", &d.dz, act, &io)?;
    opt(OP, "ddt_bias", &d.ddt_bias, dtype::F32, &[h])?;
    opt(OP, "dinitial_states", &d.dinitial_states, dtype::F32, &st)?;
    grad_needs_input(OP, "dD", &d.dd, &p.d)?;
    grad_needs_input(OP, "dz", &d.dz, &p.z)?;
    grad_needs_input(OP, "ddt_bias", &d.ddt_bias, &p.dt_bias)?;
    // The (b, L, ...) tensors may be slices of wider rows, as the forward's (the Mamba2Block
    // passes its conv output's and in_proj's columns): inner dimensions dense, batch and step
    // strides non-negative. The chunked kernels read and write them in place; every other path
    // works on dense copies (`ssd_backward_via_dense`).
    let inputs = [
        ("x", &p.x, 2),
        ("dt", &p.dt, 1),
        ("B", &p.b, 2),
        ("C", &p.c, 2),
        ("z", &p.z, 2),
        ("dout", &d.dout, 2),
    ];
    let outputs = [
        ("dx", &d.dx, 2),
        ("ddt", &d.ddt, 1),
        ("dB", &d.db, 2),
        ("dC", &d.dc, 2),
        ("dz", &d.dz, 2),
    ];
    for &(name, t, k) in inputs.iter().chain(&outputs) {
        inner_dense(OP, name, t, k)?;
        if !t.is_none() && (t.strides[0] < 0 || t.strides[1] < 0) {
            return Err(PErr::unsupported(format!(
                "{OP}: `{name}` has a negative batch or step stride (strides {:?})",
                &t.strides[..t.rank as usize]
            )));
        }
    }
    // A gradient must not share bytes with an input or another gradient (the kernels read the
    // inputs in several launches while they write): column slices of one row buffer pass.
    for (i, &(name, t, _)) in outputs.iter().enumerate() {
        for &(other, u, _) in inputs.iter().chain(&outputs[..i]) {
            if !rows_disjoint(t, u) {
                return Err(PErr::invalid(format!(
                    "{OP}: `{name}` must not overlap `{other}` (their rows share bytes)"
                )));
            }
        }
    }
    for (name, t) in [
        ("A", &p.a),
        ("D", &p.d),
        ("dt_bias", &p.dt_bias),
        ("initial_states", &p.initial_states),
        ("seq_idx", &p.seq_idx),
        ("dfinal_states", &d.dfinal_states),
        ("dA", &d.da),
        ("dD", &d.dd),
        ("ddt_bias", &d.ddt_bias),
        ("dinitial_states", &d.dinitial_states),
    ] {
        dense(OP, name, t)?;
    }
    let strided = inputs
        .iter()
        .chain(&outputs)
        .any(|(_, t, _)| !t.is_none() && !t.is_dense());
    if p.has_dt_limit != 0 && (p.dt_lo.is_nan() || p.dt_hi.is_nan() || p.dt_lo > p.dt_hi) {
        return Err(PErr::invalid(format!(
            "{OP}: dt_limit ({}, {}) is not an interval",
            p.dt_lo, p.dt_hi
        )));
    }
    let (b, l, h, hp, ng, n) = (
        b as usize,
        l as usize,
        h as usize,
        hp as usize,
        ng as usize,
        n as usize,
    );
    // The chunked form (ssd_bwdc.rs) where it applies and its scratch fits; with seq_idx too
    // since the fifty-fifth session (its prep kernel resets the state where a sequence starts).
    let dims = (b, l, h, hp, ng, n);
    let chunked = super::ssd_bwdc::wanted(g, d, dims, !p.seq_idx.is_none());
    let segments = !p.seq_idx.is_none() && (!chunked || super::segments::forced());
    if strided && (!chunked || segments || !p.z.is_none()) {
        return ssd_backward_via_dense(g, d, stream);
    }
    // Packed sequences where the chunked form does not take them, or where forced
    // (`MAMBA_CUDA_SSD_SEGMENTS=1`): one call per sequence at the LM widths (segments.rs).
    if segments {
        if let Some(seqs) = super::segments::plan(&p.seq_idx, (b, l, h, hp, n), true, stream)? {
            return super::segments::backward(g, d, &seqs, stream);
        }
    }
    if chunked && super::ssd_bwdc::run(g, d, act, dims, d_per_channel, stream)? {
        return Ok(());
    }
    if strided {
        // The chunked form's scratch could not be allocated: the recurrent kernels, which take
        // dense tensors only.
        return ssd_backward_via_dense(g, d, stream);
    }
    let seg = (h / ng) * hp;
    let prm = ScanBwdParams {
        u: p.x.ptr,
        delta: p.dt.ptr,
        a: p.a.ptr,
        b: p.b.ptr,
        c: p.c.ptr,
        d: p.d.ptr,
        z: p.z.ptr,
        bias: p.dt_bias.ptr,
        h0: p.initial_states.ptr,
        seq_idx: p.seq_idx.ptr,
        dout: d.dout.ptr,
        dlast: d.dfinal_states.ptr,
        du: d.dx.ptr,
        ddelta: 0,
        dz: d.dz.ptr,
        da: d.da.ptr,
        dd: d.dd.ptr,
        dbias: d.ddt_bias.ptr,
        dh0: d.dinitial_states.ptr,
        batch: b as i32,
        rows: (h * hp) as i32,
        seqlen: l as i32,
        dstate: n as i32,
        nheads: h as i32,
        headdim: hp as i32,
        b_groups: ng as i32,
        c_groups: ng as i32,
        softplus: (p.dt_softplus != 0) as i32,
        has_limit: (p.has_dt_limit != 0) as i32,
        lo: p.dt_lo,
        hi: p.dt_hi,
        d_per_channel: d_per_channel as i32,
        seg: seg as i32,
        ..ScanBwdParams::default()
    };
    let bc = b * l * ng * n;
    scan_run(
        g,
        OP,
        prm,
        true,
        act,
        bc,
        bc,
        &d.db,
        &d.dc,
        &d.ddt,
        &[&d.da, &d.dd, &d.ddt_bias],
        stream,
    )
}

/// Whether two (b, L, ...) views (inner dimensions dense, strides non-negative) share no
/// byte: their spans do not meet, or both are column slices of one row layout (the same batch
/// and step strides in bytes) whose rows fall in disjoint columns: with the batch stride a
/// multiple of the step's (every row on one lattice), or past a batch row's L rows and the
/// two bases within one row. Conservative: `false` where it cannot tell.
fn rows_disjoint(a: &TensorDesc, b: &TensorDesc) -> bool {
    if !spans_meet(a, b) {
        return true;
    }
    let bytes = |t: &TensorDesc| {
        let es = dtype::size(t.dtype) as i128;
        let sh = t.shape();
        let row = sh[2..].iter().product::<u64>() as i128 * es;
        // The row period: the step stride, or the batch stride for one step.
        let (sb, st) = (t.strides[0] as i128 * es, t.strides[1] as i128 * es);
        let period = if sh[1] > 1 { st } else { sb };
        (sh[0], sh[1], sb, st, period, row)
    };
    let (ab, al, asb, ast, ap, aw) = bytes(a);
    let (bb, bl, bsb, bst, bp, bw) = bytes(b);
    let same =
        (ab, al) == (bb, bl) && ap == bp && (al == 1 || ast == bst) && (ab == 1 || asb == bsb);
    if !same || ap <= 0 || aw > ap || bw > bp {
        return false;
    }
    let d = b.ptr as i128 - a.ptr as i128;
    if al == 1 || ab == 1 || asb % ast == 0 {
        let off = d.rem_euclid(ap);
        off >= aw && off + bw <= ap
    } else if asb >= al as i128 * ast && d.abs() < ap {
        // The lower view's row first, the other's within the same period.
        let (w0, w1) = if d >= 0 { (aw, bw) } else { (bw, aw) };
        d.abs() >= w0 && d.abs() + w1 <= ap
    } else {
        false
    }
}

/// The SSD backward on dense copies of its strided views: the inputs copied in, the call on
/// the copies, the gradients copied out (for the paths other than the chunked kernels).
fn ssd_backward_via_dense(g: &Gpu, d: &SsdBwdDesc, stream: u64) -> PResult<()> {
    let p = &d.fwd;
    let sfx = suffix(p.x.dtype, "ssd_backward")?;
    let mut dd = *d;
    let views = [
        &p.x, &p.dt, &p.b, &p.c, &p.z, &d.dout, &d.dx, &d.ddt, &d.db, &d.dc, &d.dz,
    ];
    let size = |t: &TensorDesc| (t.numel() as usize * dtype::size(t.dtype)).div_ceil(256) * 256;
    let total: usize = views
        .iter()
        .filter(|t| !t.is_none() && !t.is_dense())
        .map(|t| size(t))
        .sum();
    let buf = g.alloc_async(total.max(256), stream)?;
    let res = (|| {
        let mut o = buf;
        let (mut ins, mut outs) = (Vec::new(), Vec::new());
        let mut place = |t: &TensorDesc, input: bool| {
            if t.is_none() || t.is_dense() {
                return *t;
            }
            let dn = TensorDesc::dense(
                o,
                t.dtype,
                &t.shape().iter().map(|&v| v as usize).collect::<Vec<_>>(),
            );
            let es = dtype::size(t.dtype);
            if input {
                ins.extend(super::block_bwd::view_copies(t, o, es, true));
            } else {
                outs.extend(super::block_bwd::view_copies(t, o, es, false));
            }
            o += size(t) as u64;
            dn
        };
        dd.fwd.x = place(&p.x, true);
        dd.fwd.dt = place(&p.dt, true);
        dd.fwd.b = place(&p.b, true);
        dd.fwd.c = place(&p.c, true);
        dd.fwd.z = place(&p.z, true);
        dd.dout = place(&d.dout, true);
        dd.dx = place(&d.dx, false);
        dd.ddt = place(&d.ddt, false);
        dd.db = place(&d.db, false);
        dd.dc = place(&d.dc, false);
        dd.dz = place(&d.dz, false);
        if !ins.is_empty() {
            super::block_bwd::copies(g, sfx, sfx, &ins, stream)?;
        }
        ssd_backward(&dd, stream)?;
        if !outs.is_empty() {
            super::block_bwd::copies(g, sfx, sfx, &outs, stream)?;
        }
        Ok(())
    })();
    let fr = g.free_async(buf, stream);
    res.and(fr)
}

// ---------------------------------------------------------------- SPEC 3

/// Whether the channel-last conv backward takes two channels per thread where it can: off,
/// slower on an H100 (sixty-second session, ncu at the LM width: 288 us against 267, 106
/// registers and 22% occupancy against 72 and 32%).
const CONV_BWD_CL2_DEFAULT: bool = false;

pub(crate) fn causal_conv1d_backward(d: &Conv1dBwdDesc, stream: u64) -> PResult<()> {
    let g = gpu()?;
    const OP: &str = "causal_conv1d_backward";
    let p = &d.fwd;
    let act = p.x.dtype;
    let sfx = suffix(act, OP)?;
    let ConvDims {
        b,
        c,
        l,
        w,
        channel_last: cl,
    } = conv_dims(OP, p)?;
    let st = [b, c, w - 1];
    req(OP, "dout", &d.dout, act, p.x.shape())?;
    opt(OP, "dfinal_states", &d.dfinal_states, dtype::F32, &st)?;
    req(OP, "dx", &d.dx, act, p.x.shape())?;
    req(OP, "dweight", &d.dweight, dtype::F32, &[c, w])?;
    opt(OP, "dbias", &d.dbias, dtype::F32, &[c])?;
    opt(OP, "dinitial_states", &d.dinitial_states, dtype::F32, &st)?;
    grad_needs_input(OP, "dbias", &d.dbias, &p.bias)?;
    // x, dout and dx may have any strides (as the forward's x and out: a slice of a wider
    // activation, such as Mamba2Block's conv input inside in_proj's output); dx must not
    // overlap x or dout.
    for (name, t) in [
        ("weight", &p.weight),
        ("bias", &p.bias),
        ("initial_states", &p.initial_states),
        ("dfinal_states", &d.dfinal_states),
        ("dweight", &d.dweight),
        ("dbias", &d.dbias),
        ("dinitial_states", &d.dinitial_states),
    ] {
        dense(OP, name, t)?;
    }
    // The kernels read x and dout through restricted pointers while they write dx.
    for (name, t) in [("x", &p.x), ("dout", &d.dout)] {
        if super::ops::spans_meet(&d.dx, t) {
            return Err(PErr::invalid(format!(
                "{OP}: `dx` must not overlap `{name}` (the bytes their strides span meet)"
            )));
        }
    }
    let (b, c, l, w) = (b as usize, c as usize, l as usize, w as usize);
    // (batch row, channel, step) strides of a tensor shaped as x.
    let bct = |t: &TensorDesc| {
        let s = &t.strides;
        if cl {
            (s[0], s[2], s[1])
        } else {
            (s[0], s[1], s[2])
        }
    };
    let (x_sb, x_sc, x_st) = bct(&p.x);
    let (d_sb, d_sc, d_st) = bct(&d.dout);
    let (dx_sb, dx_sc, dx_st) = bct(&d.dx);
    // With W = 1 there are no states (the tensors have no elements).
    let wide = |t: &TensorDesc| if w > 1 { t.ptr } else { 0 };
    // The fused kernel (kernels/conv.cuh, W 2..4): one launch, no scratch; the time-dense
    // form where x, dout and dx are all dense along time, else the channel-walking one
    // (coalesced where channels are dense).
    let cf = x_st == 1 && d_st == 1 && dx_st == 1;
    let tiled = super::ops::conv_tiled(w as i32)
        .then(|| super::ops::conv_tiled_grid(g.sm_count, cf, true, b as u32, c as u32, l as u32))
        .flatten();
    let scratch = if tiled.is_some() {
        None
    } else {
        Some(Scratch::new(g, a256(b * c * l * 4), stream)?)
    };
    let prm = ConvBwdParams {
        x: p.x.ptr,
        w: p.weight.ptr,
        bias: p.bias.ptr,
        init: wide(&p.initial_states),
        dout: d.dout.ptr,
        dfinal: wide(&d.dfinal_states),
        dpre: scratch.as_ref().map_or(0, |s| s.ptr),
        dx: d.dx.ptr,
        dw: d.dweight.ptr,
        dbias: d.dbias.ptr,
        dinit: wide(&d.dinitial_states),
        x_sb,
        x_sc,
        x_st,
        batch: b as i32,
        channels: c as i32,
        seqlen: l as i32,
        width: w as i32,
        silu: (p.activation == activation::SILU) as i32,
        channel_last: cl as i32,
        d_sb,
        d_sc,
        d_st,
        dx_sb,
        dx_sc,
        dx_st,
    };
    zero(&d.dweight, stream)?;
    zero(&d.dbias, stream)?;
    let Some(scratch) = scratch else {
        let grid = tiled.expect("the tiled grid when no scratch");
        // Two channels per thread (`cl2`: 64-channel-wide accesses per warp) where channels are
        // dense and every row start of x, dout and dx is aligned to two elements;
        // `MAMBA_CUDA_CONV_BWD_CL2=1` / `0` (default [`CONV_BWD_CL2_DEFAULT`]).
        let es = dtype::size(act) as u64;
        let pairs = !cf
            && c.is_multiple_of(2)
            && [x_sc, d_sc, dx_sc] == [1, 1, 1]
            && [x_sb, x_st, d_sb, d_st, dx_sb, dx_st]
                .iter()
                .all(|v| v % 2 == 0)
            && [p.x.ptr, d.dout.ptr, d.dx.ptr]
                .iter()
                .all(|a| a.is_multiple_of(2 * es))
            && super::ops::env_switch("MAMBA_CUDA_CONV_BWD_CL2", CONV_BWD_CL2_DEFAULT);
        // Staged through shared memory (`cls`, 16-byte vectors) where channels are dense and
        // every row start of x, dout and dx is aligned to 16 bytes; `MAMBA_CUDA_CONV_BWD_CLS=1`
        // / `0` (default: from `ops::CONV_CLS_MIN` elements on).
        let staged =
            !cf && super::ops::conv_staged_fits(
                es,
                c,
                &[x_sc, d_sc, dx_sc],
                &[x_sb, x_st, d_sb, d_st, dx_sb, dx_st],
                &[p.x.ptr, d.dout.ptr, d.dx.ptr],
            ) && super::ops::env_switch(
                "MAMBA_CUDA_CONV_BWD_CLS",
                b * c * l >= super::ops::CONV_CLS_MIN,
            );
        let (form, grid) = if cf {
            ("cf", grid)
        } else if let Some(g3) = staged
            .then(|| super::ops::conv_staged_grid(g.sm_count, b, c, l))
            .flatten()
        {
            ("cls", g3)
        } else if pairs {
            let g2 = super::ops::conv_tiled_grid(
                g.sm_count,
                false,
                true,
                b as u32,
                c as u32 / 2,
                l as u32,
            );
            match g2 {
                Some(g2) => ("cl2", g2),
                None => ("cl", grid),
            }
        } else {
            ("cl", grid)
        };
        let f = g.func(&format!("bwd_convt_{form}_{sfx}_w{w}"))?;
        return g.launch(f, grid, super::ops::CONVT_NT, 0, stream, &prm);
    };
    let blocks = |total: usize| total.div_ceil(256).clamp(1, 1 << 20) as u32;
    let f1 = g.func(&format!("bwd_conv_dpre_{sfx}"))?;
    g.launch(f1, (blocks(b * c * l), 1, 1), 256, 0, stream, &prm)?;
    let f2 = g.func(&format!("bwd_conv_dx_{sfx}"))?;
    g.launch(
        f2,
        (blocks(b * c * (l + w - 1)), 1, 1),
        256,
        0,
        stream,
        &prm,
    )?;
    let f3 = g.func(&format!("bwd_conv_dw_{sfx}"))?;
    g.launch(f3, (c as u32, b as u32, 1), 256, 0, stream, &prm)?;
    scratch.free()
}

#[cfg(test)]
mod tests {
    use super::rows_disjoint;
    use mamba_core::abi::{dtype, TensorDesc};

    // A (b, L, cols) view at element `off` of bf16 rows `row` elements apart, batch rows
    // `sb` apart.
    fn view(off: u64, dims: [usize; 3], row: i64, sb: i64) -> TensorDesc {
        TensorDesc::dense(4096 + 2 * off, dtype::BF16, &dims).with_strides(&[sb, row, 1])
    }

    #[test]
    fn column_slices_of_one_row_layout_are_disjoint() {
        let (b, l, row) = (2, 10, 40i64);
        let sb = l as i64 * row;
        // Columns [0, 16), [16, 24), [24, 40) of the same rows: disjoint pairwise.
        let x = view(0, [b, l, 16], row, sb);
        let bv = view(16, [b, l, 8], row, sb);
        let cv = view(24, [b, l, 16], row, sb);
        for (p, q) in [(&x, &bv), (&x, &cv), (&bv, &cv), (&cv, &x)] {
            assert!(rows_disjoint(p, q) && rows_disjoint(q, p));
        }
        // Overlapping columns, the same view, a row wider than the period: not disjoint.
        assert!(!rows_disjoint(&x, &view(8, [b, l, 16], row, sb)));
        assert!(!rows_disjoint(&x, &x));
        assert!(!rows_disjoint(&view(0, [b, l, 48], row, sb), &bv));
        // Different row strides whose spans meet: cannot tell, so not disjoint.
        assert!(!rows_disjoint(&x, &view(16, [b, l, 8], 2 * row, 2 * sb)));
        // A batch stride past L rows but not a multiple of the row stride: disjoint where the
        // bases are within one row, whichever comes first; not where they are rows apart, nor
        // where the batch rows interleave.
        let odd = |off, cols| view(off, [b, l, cols], row, sb + 3);
        assert!(rows_disjoint(&odd(0, 16), &odd(16, 8)));
        assert!(rows_disjoint(&odd(16, 8), &odd(0, 16)));
        assert!(!rows_disjoint(&odd(0, 16), &odd(8, 8)));
        assert!(!rows_disjoint(&odd(0, 16), &odd(16 + 40, 8)));
        let inter = |off, cols| view(off, [b, l, cols], row, sb - row + 3);
        assert!(!rows_disjoint(&inter(0, 16), &inter(16, 8)));
        // Separate buffers: disjoint whatever the strides.
        let far = TensorDesc::dense(1 << 30, dtype::BF16, &[b, l, 16]);
        assert!(rows_disjoint(&x, &far));
        // One step: the batch stride is the period.
        let (x1, b1) = (view(0, [b, 1, 16], row, row), view(16, [b, 1, 8], row, row));
        assert!(rows_disjoint(&x1, &b1));
        assert!(!rows_disjoint(&x1, &view(15, [b, 1, 8], row, row)));
    }
}
