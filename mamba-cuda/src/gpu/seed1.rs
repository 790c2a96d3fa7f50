//! The Mamba-1 forward for few channels (the seed shape b2 d384 N64), one pass with small
//! blocks (kernels/scan1_seed.cu, `s1s_fwd_{f32,bf16,f16}`): 16 threads per channel with
//! 4 of its (at most 64) states each, CPB channels per block, tiles of 32 steps through a
//! ring of three shared-memory stages filled by cp.async. Applies with B and C both
//! varying in time and N <= 64.
//!
//! `MAMBA_CUDA_S1S=1` forces it wherever it applies, `=0` never takes it; unset: the
//! automatic choice (`auto`). `MAMBA_CUDA_S1S_CPB` sets the channels per block (default 6
//! with 32 threads per channel, 8 with 16);
//! `MAMBA_CUDA_S1S_V=1` takes the first form (`_v1`: three barriers per tile), `=3` the
//! second with 1 of every 8 exponentials on the FMA pipe (`_p`);
//! `MAMBA_CUDA_S1S_G=16`: 16 threads per channel with 4 states each (default: 32 threads
//! with 2 states, `_g32`); `=64`: 64 threads with one state each (`_g64`, 384 threads at
//! 6 channels per block; at most 6 channels per block).
//! `MAMBA_CUDA_S1S_V=4`: the warp-specialised form `_ws` (32 threads x 2 states per
//! channel run only the step loop; two more warps stage, prep and store; at most 6
//! channels per block); `=5`: `_g32f` (the default form with the 16-byte staging from
//! per-thread slots set up once and the outputs' partial sums by 16-byte reads and two
//! shuffle rounds); `=6`: `_t2` (the time split in two halves inside the block: 12
//! warps at 6 channels per block, half 1 corrected by half 0's end state; at most 6
//! channels per block, and only while its shared memory fits (L up to ~2800)). None of
//! `_g64`, `_ws`, `_g32f`, `_t2` was faster than `_g32` on the H200 (NOTES.md, fourth
//! session): they stay selectable only.
//! `MAMBA_CUDA_S1S_V=7`: `_g32i` (the default form with the outputs of the previous tile
//! and the prep of the next written without branches inside the step loop, so that their
//! latency overlaps it; sixth session); `=8`: `_g32j` (`_g32i` with the staging of tile
//! k + 3 issued after the step loop of tile k instead of before it); `=9`: `_g32k`
//! (`_g32i` with each 4-step group's exponentials computed one group ahead from dt read
//! two groups ahead); `=10`: `_g32l` (`_g32j` and `_g32k` together); `=11`: `_g32m`
//! (`_g32l` with the 16-byte staging from per-thread slots set up once, as `_g32f`).
//! `=12`: `_g32n` (`_g32l` with an mbarrier ring instead of the per-tile `__syncthreads`:
//! per slot "full" by `cp.async.mbarrier.arrive.noinc`, "free" by one arrival per warp;
//! seventh session); `=13`: `_g32o` (`_g32n` with the staging by warps 2 and 3 only:
//! with 6 warps per block, warps w and w + 4 share scheduler w, so 2 and 3 run alone);
//! `=14`: `_g32q` (`_g32l` with the staging by warps 2 and 3 only); `=15`: `_g32r`
//! (`_g32q` and the outputs of every channel by warps 2 and 3 too; a third buffer of the
//! per-step arrays); `=16`: `_g32s` (`_g32q`, and at 6 channels per block the outputs of
//! the channels of warps 0, 1, 4, 5 by warps 2 and 3, each warp's step loop specialised
//! for its output count; the third buffer).
//! Unset: `_g32q` (=14), the default since the seventh session (the staging by warps 2
//! and 3: measured faster on the H200). Before it `_g32l` (=10, the sixth session's
//! continuation's default: the outputs,
//! the prep and the staging off the step loop's critical path, the exponentials one group
//! ahead: measured faster on the H200); `=8` is `_g32j` (the default for one round of the
//! sixth session); `=2` (with 32 threads per channel) is `_g32`, the default before.
//!
//! `MAMBA_S1S_DIAG` (read once; not a `MAMBA_CUDA_*` name, so the other overrides stay
//! off): a measurement aid for the per-call host time. `=1`: `selective_scan` returns
//! right after its checks and the choice of this path, before the launch (no output is
//! written); `=2`: it returns on entry, before the checks.

use std::sync::OnceLock;

use super::ops::{env_str, env_usize};
use super::params::Scan1Params;
use super::{Func, Gpu};
use crate::PResult;

/// Shared memory in bytes (kernels/scan1_seed.cu `s1s2_smem_bytes`, `s1s_smem_bytes` for
/// the first form): a ring of 4 (3) stages of raw rows, then the f32 per-step arrays.
fn smem(es: usize, cpb: usize, gt: usize, form: usize, l: usize) -> usize {
    let rs = if es == 4 { 36 } else { 40 };
    let stage = ((128 + 3 * cpb) * rs * es).div_ceil(16) * 16;
    if form == 9 {
        // `s1s5_smem_bytes`: 3 stages x 2 halves, then per half the f32 per-step arrays
        // and one y-partial buffer, S_t of half 1, h_mid and the decay exponents.
        let lh = 32 * l.div_ceil(64);
        2 * 3 * stage + 4 * (2 * 8 * cpb * 36 + 2 * cpb * 32 * 36 + cpb * lh + 2 * cpb * 64)
    } else if form == 1 {
        3 * stage + 4 * (2 * cpb * 36 + cpb * 16 * 36)
    } else {
        4 * stage + 4 * (8 * cpb * 36 + 2 * cpb * gt * 36)
    }
}

/// `s1s_fwd_{f32,bf16,f16}` + `_v1` (form 1), `` (2), `_p` (3), `_g32` (4), `_g32_p` (5),
/// `_g64` (6), `_ws` (7), `_g32f` (8), `_t2` (9), `_g32i` (10), `_g32j` (11),
/// `_g32k` (12), `_g32l` (13), `_g32m` (14), `_g32n` (15), `_g32o` (16), `_g32q` (17),
/// `_g32r` (18), `_g32s` (19), looked up once.
fn func(g: &Gpu, act: usize, form: usize) -> PResult<Func> {
    static FUNCS: [OnceLock<Func>; 57] = [const { OnceLock::new() }; 57];
    let slot = &FUNCS[act * 19 + form - 1];
    if let Some(f) = slot.get() {
        return Ok(*f);
    }
    let sfx = ["f32", "bf16", "f16"][act];
    let tag = [
        "_v1", "", "_p", "_g32", "_g32_p", "_g64", "_ws", "_g32f", "_t2", "_g32i", "_g32j",
        "_g32k", "_g32l", "_g32m", "_g32n", "_g32o", "_g32q", "_g32r", "_g32s",
    ][form - 1];
    let f = g.func(&format!("s1s_fwd_{sfx}{tag}"))?;
    Ok(*slot.get_or_init(|| f))
}

/// `MAMBA_S1S_DIAG` (module doc), read once: 0 when unset.
pub(crate) fn diag() -> u32 {
    static D: OnceLock<u32> = OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("MAMBA_S1S_DIAG")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// Whether `s1s_fwd` computes this call.
pub(crate) fn applies(prm: &Scan1Params) -> bool {
    prm.b_groups > 0 && prm.c_groups > 0 && prm.dstate <= 64 && prm.seqlen > 0 && prm.seg > 0
}

/// Whether `s1s_fwd` takes this call: `MAMBA_CUDA_S1S` forces it, else `auto`.
/// `act`: 0 f32, 1 bf16, 2 f16.
pub(crate) fn wanted(g: &Gpu, prm: &Scan1Params, act: usize) -> bool {
    if !applies(prm) {
        return false;
    }
    match env_str("MAMBA_CUDA_S1S").as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => auto(g, prm, act),
    }
}

/// The automatic choice, where it was measured faster on the H200 (seed b2 d384 N64):
/// 32 < N <= 64, its blocks (32 threads per channel, `DEFAULT_CPB` channels per block) in
/// one wave (at most one per SM: its shared memory allows no more), 16 <= L <= 4096, and
/// every staged row 16-byte aligned (`staged`: L a multiple of 4 in f32, of 8 in the
/// 16-bit types), in every type.
///
/// - f32, aligned (sixth session's probe, three passes, the other path with the environment
///   read per call against `MAMBA_CUDA_S1S=1`): L16 10.9-11.5 vs 12.0-13.5 us, L64
///   12.3-13.2 vs 13.8-15.5, L100 14.2-15.1 vs 18.7-20.4, L1536 65.3-65.7 vs 103.6-106.3,
///   L2048 82.9-83.6 vs 146.7-147.9, L4096 156.8-158.5 vs 293.4-295.9 (b1 d384, b2 d192 and
///   N 48 at L2048: 81-83 vs 87-142); the seed rows L400 / L800 since the first sessions.
/// - The 16-bit types, aligned (twentieth session at L400 / L800: bf16 23.7-24.9 /
///   36.6-38.0 us against 41.9-43.3 / 62.2-63.7, f16 alike; twenty-first session, bf16, two
///   passes against `MAMBA_CUDA_S1S=0`): L16 8.7-9.5 vs 11.2-12.4, L32 10.5 vs 12.4-12.6, L64
///   9.7-10.8 vs 16.2-17.1, L96 11.1 vs 23.6-23.8, L104 13.3 vs 23.8-24.1, L2048 77.4-79.4 vs
///   147.4-149.7, L4096 146.4-146.7 vs 277.4 (f16 alike at L16 / 64 / 2048).
/// - Unaligned rows (4-byte copies, or 16-bit pairs / elements) are slower than the older
///   paths at every length measured, so they keep those. Until the twenty-first session f32
///   took `s1s` at 128 <= L <= 1024 whatever the alignment (measured only at the aligned
///   seed rows) and the 16-bit types since the twentieth: f32 L130 / 201 / 301 / 502 / 803
///   / 1002 took 54-55 / 72-73 / 100 / 155-158 / 245-249 / 300-303 us against 27-29 / 32-35 /
///   39-40 / 50-53 / 69-71 / 85-88 on the older paths, bf16 L130 / 300 / 500 / 802 / 1002
///   108 / 214 / 336 / 535 / 661 against 32-34 / 47-49 / 48-52 / 76 / 105-108 (H200, two
///   passes; NOTES.md).
fn auto(g: &Gpu, prm: &Scan1Params, act: usize) -> bool {
    let (b, d, l, n) = (
        prm.batch as usize,
        prm.dim as usize,
        prm.seqlen as usize,
        prm.dstate as usize,
    );
    let seg = prm.seg as usize;
    let blocks = b * (d / seg) * seg.div_ceil(DEFAULT_CPB);
    let es = if act == 0 { 4 } else { 2 };
    n > 32 && blocks <= g.sm_count as usize && (16..=4096).contains(&l) && staged(prm, es, 16)
}

/// Whether every row the kernel stages (B, C, delta, u, z) starts `align`-byte aligned with
/// elements of `es` bytes: 16 for the 16-byte copies (`async_copy` 1), 4 for the 16-bit
/// types' pair copies (`async_copy` 2: L even).
fn staged(prm: &Scan1Params, es: usize, align: u64) -> bool {
    let a = |v: u64| v.is_multiple_of(align);
    a(prm.seqlen as u64 * es as u64)
        && [prm.u, prm.delta, prm.b, prm.c].iter().all(|&v| a(v))
        && (prm.z == 0 || a(prm.z))
}

/// Channels per block of the default form (32 threads per channel): 6, so the seed's 768
/// channels make 128 blocks of 6 warps, one per SM (measured: 4 channels make 192 blocks,
/// two waves; 8 make 96 blocks, fewer SMs busy).
const DEFAULT_CPB: usize = 6;

/// The default form (`MAMBA_CUDA_S1S_V` unset): 14, `_g32q` (seventh session: 29.9-30.2
/// us at L800 under ncu against 32.5-32.8 for `_g32l` (10, the default before) in one
/// device round, forced tests passing in the same binary; NOTES.md).
const DEFAULT_V: usize = 14;

/// Launches `s1s_fwd` (the caller checked `applies`). `act`: 0 f32, 1 bf16, 2 f16.
pub(crate) fn launch(g: &Gpu, mut prm: Scan1Params, act: usize, stream: u64) -> PResult<()> {
    let es = if act == 0 { 4 } else { 2 };
    // MAMBA_CUDA_S1S_V=1: the first form (three barriers per tile, 3 stages); =3: the
    // second with 1 of 8 exponentials on the FMA pipe; else the second.
    // MAMBA_CUDA_S1S_G=16: 16 threads per channel with 4 states each (forms 2 and 3;
    // default 32 threads with 2 states, which measured faster: more warps per scheduler).
    // =2 with 32 threads per channel: `_g32` (the default up to the fifth session).
    let v = env_str("MAMBA_CUDA_S1S_V")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|v| (1..=16).contains(v))
        .unwrap_or(0);
    let g_env = env_usize("MAMBA_CUDA_S1S_G");
    // Unset: the default form (`DEFAULT_V`), unless 16 or 64 threads per channel are asked
    // for (form 2's layouts).
    let v = match (v, g_env) {
        (0, Some(16 | 64)) => 2,
        (0, _) => DEFAULT_V,
        _ => v,
    };
    // =64: 64 threads per channel with one state each (form 2 only; `_g64`).
    let gt = match (v, g_env) {
        (4..=16, _) => 32,
        (1, _) | (_, Some(16)) => 16,
        (2, Some(64)) => 64,
        _ => 32,
    };
    let form = match (v, gt) {
        (4, _) => 7,
        (5, _) => 8,
        (6, _) => 9,
        (7..=16, _) => v + 3,
        (_, 64) => 6,
        (_, 32) => v + 2,
        _ => v,
    };
    let cpb = env_usize("MAMBA_CUDA_S1S_CPB")
        .unwrap_or(if gt == 16 { 8 } else { DEFAULT_CPB })
        .clamp(
            1,
            if gt == 64 || form == 7 || form == 9 {
                6
            } else {
                256 / gt
            },
        );
    let (b, d, l) = (prm.batch as usize, prm.dim as usize, prm.seqlen as usize);
    // `_t2` only while its shared memory (which grows with L) fits; else the default form.
    let form = if form == 9 && smem(es, cpb, 32, 9, l) + 1024 > g.max_smem() {
        DEFAULT_V + 3
    } else {
        form
    };
    let seg = prm.seg as usize;
    let bps = seg.div_ceil(cpb);
    let nseg = d / seg;
    // 1: 16-byte copies (every staged row (B, C, delta, u, z) starts 16-byte aligned); 2:
    // 16-bit element pairs by 4-byte copies (rows 4-byte aligned; the default form
    // `s1s_fwd2` only, the other forms stage such rows element by element); 0: elements.
    prm.async_copy = if staged(&prm, es, 16) {
        1
    } else if es == 2 && staged(&prm, es, 4) {
        2
    } else {
        0
    };
    prm.cb = cpb as i32;
    prm.g = gt as i32;
    prm.blocks_per_seg = bps as i32;
    prm.nchunks = 1;
    prm.chunk_len = l as i32;
    let f = func(g, act, form)?;
    if diag() == 1 {
        return Ok(());
    }
    // `_ws`: two helper warps after the compute warps; the shared memory of form 2.
    let (threads, sm) = match form {
        7 => (32 * (cpb + 2), smem(es, cpb, 32, 2, l)),
        9 => (64 * cpb, smem(es, cpb, 32, 9, l)),
        10..=14 | 17 => (32 * cpb, smem(es, cpb, 32, 4, l)),
        // A third buffer of the four per-step f32 arrays.
        18 | 19 => (32 * cpb, smem(es, cpb, 32, 4, l) + 4 * 4 * cpb * 36),
        // The mbarrier ring's 8 barriers after the y partials.
        15 | 16 => (32 * cpb, smem(es, cpb, 32, 4, l) + 64),
        _ => (gt * cpb, smem(es, cpb, gt, form, l)),
    };
    g.launch(
        f,
        ((nseg * bps) as u32, b as u32, 1),
        threads as u32,
        sm,
        stream,
        &prm,
    )
}
