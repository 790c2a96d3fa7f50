//! The Mamba-1 backward for many channels (kernels/bwd_lm.cu, `bwdlm_*`): B and C varying
//! in time ((b, N, L) or (b, g, N, L)), N <= 16. Two forms. `w8`: eight threads per channel
//! with two states each, blocks of 32 channels, tiles of 16 steps: a forward pass writes the
//! state at every tile start (checkpoints: b * d * ceil(L / 16) * 16 floats), then the tiles
//! in reverse recompute their states into registers and sweep back; dB / dC are summed over
//! the block's channels in shared memory, then one 16-byte atomic per (n, 4 steps) and block
//! into f32 accumulators, rounded into the outputs at the end. `q4*`: four threads per
//! channel with four states each, blocks of 32 channels (128 threads), tiles of 8 steps
//! (checkpoints every 8 steps), dB / dC reduce-scattered over a warp's channels by shuffles.
//!
//! `MAMBA_CUDA_BWD_LM=1` forces it wherever it applies, `=0` never; by default it is taken
//! at any L for bf16 and f16 from 30 channels per SM (b * d >= 30 * SMs) and for f32 from 64
//! (the language-model shape). The form: `MAMBA_CUDA_BWD_LM_V`, by
//! default `q4pb` (the `q4*` form with lane-permuted states and one block barrier per tile)
//! above 64 channels per SM, `w8` below.

use mamba_core::abi::{dtype, SelectiveScanBwdDesc, TensorDesc};

use super::ops::{env_str, env_usize, suffix};
use super::params::BwdCastParams;
use super::Gpu;
use crate::PResult;

/// The kernel's parameter block (`BwdLmParams` in bwd_lm.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BwdLmParams {
    u: u64,
    delta: u64,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    z: u64,
    bias: u64,
    h0: u64,
    dout: u64,
    dlast: u64,
    du: u64,
    ddelta: u64,
    dz: u64,
    da: u64,
    dd: u64,
    dbias: u64,
    dh0: u64,
    db: u64,
    dc: u64,
    ck: u64,
    batch: i32,
    dim: i32,
    seqlen: i32,
    dstate: i32,
    b_groups: i32,
    c_groups: i32,
    softplus: i32,
    seg: i32,
    blocks_per_seg: i32,
    vec: i32,
    vec4: i32,
    pad: i32,
}

const _: () = assert!(std::mem::size_of::<BwdLmParams>() == 21 * 8 + 12 * 4);

/// Channels per block (`BL_CB`, `BQ_CB`), steps per tile (`BL_TT`).
const CB: usize = 32;
const TT: usize = 16;
/// Must match `bl_smem_floats` in bwd_lm.cu.
const SMEM: usize = 4 * (2 * TT * 32 + 2 * CB * (TT * 4 + 4) + CB * TT + 2 * CB * (32 * 8 + 8));
/// `_q4`: steps per tile (`BQ_TT`), threads per block (`BQ_NT`); must match
/// `bq_smem_floats` in bwd_lm.cu.
const TT4: usize = 8;
const NT4: usize = CB * 4;
const SMEM4: usize = 4 * (2 * TT4 * 32 + CB * (TT4 * 4 + 4) + NT4 * 4 + CB * (32 * TT4 + 4));
/// `_q4p`: B / C in four permuted copies of `PCS4` floats; must match `bq_smem_floats_p`.
const PCS4: usize = TT4 * 32 + 16;
const SMEM4P: usize = 4 * (2 * 4 * PCS4 + CB * (TT4 * 4 + 4) + NT4 * 4 + 2 * (NT4 / 32) * 256);

/// The kernel form: `MAMBA_CUDA_BWD_LM_V` = `w8` (eight threads per channel with two
/// states each, 16-step tiles; `lean` / `nodbc` its variants), `q4` (four threads per channel
/// with four states each, 8-step tiles), `q4s` (`q4` with fewer shared-memory wavefronts:
/// dB / dC reduce-scattered by shuffles, y summed in the sweep), `q4h` (`q4s` with B / C
/// staged as 16-bit values for bf16 / f16; f32 takes `q4s`), `q4r` (`q4h` with the decays
/// recomputed in the sweep; f32 takes `q4s`), `q4p` (`q4h`, for f32 `q4s`, with each lane's
/// states in a lane-dependent order read from one of four permuted B / C copies, so that the
/// dB / dC reduce-scatter needs 2 selects per lane and step instead of 14), `q4pb` (`q4p`
/// with one block barrier per tile instead of two: the block sums of dB / dC deferred by a
/// tile and spread over all threads). Default: `q4pb` above 64 channels per SM (before the
/// seventh session `q4h`, f32 `q4s`), `w8` below. H200, backward alone, b8 d2048 N16 L2048 (124 channels per
/// SM): `w8` -> `q4h` bf16 1684 -> 1217 us, f32 `w8` -> `q4s` 1790 -> 1403 us; b2 d2048
/// bf16 (31 channels per SM) `q4h` 692 us, slower than `w8` (623 us, earlier session): a
/// quarter of the threads, 3.9 warps per SM. Above 64 channels per SM `w8` (16 warps per
/// SM resident) needs a second wave; between 31 and 124 channels per SM not timed.
fn form(act: u32, channels: usize, sms: usize) -> (&'static str, usize, usize, usize) {
    let q4h = if act == dtype::F32 { "_q4s" } else { "_q4h" };
    let w8 = ("", TT, 256, SMEM);
    match env_str("MAMBA_CUDA_BWD_LM_V").as_deref() {
        Some("w8") => w8,
        Some("nodbc") => ("_nodbc", TT, 256, SMEM),
        Some("lean") => ("_lean", TT, 256, SMEM),
        Some("q4") => ("_q4", TT4, NT4, SMEM4),
        Some("q4s") => ("_q4s", TT4, NT4, SMEM4),
        Some("q4h") => (q4h, TT4, NT4, SMEM4),
        Some("q4r") if act != dtype::F32 => ("_q4r", TT4, NT4, SMEM4),
        Some("q4p") => ("_q4p", TT4, NT4, SMEM4P),
        // `q4pbo`: `q4pb`, in f32 with 32-bit offsets where they fit (`o32_fits`).
        Some("q4pb") | Some("q4pbo") => ("_q4pb", TT4, NT4, SMEM4P),
        // H200, b8 d2048 N16 L2048, backward alone (seventh session, three device calls,
        // alternating): bf16 `q4h` 1225-1244 us, `q4pb` 1146-1164; f32 `q4s` 1404-1419,
        // `q4pb` 1295-1311.
        _ if channels > 64 * sms => ("_q4pb", TT4, NT4, SMEM4P),
        _ => w8,
    }
}

/// Whether the backward takes this path (`MAMBA_CUDA_BWD_LM`: 1 forces it where it
/// applies, 0 never).
pub(crate) fn wanted(g: &Gpu, act: u32, b: usize, dd: usize, n: usize, bg: i32, cg: i32) -> bool {
    if n > 16 || bg == 0 || cg == 0 {
        return false;
    }
    match env_usize("MAMBA_CUDA_BWD_LM") {
        Some(0) => false,
        Some(_) => true,
        // H200, backward alone, old (`bwd_scan1t` bf16 / `bwd_scan1q` "xd" f32) -> this
        // kernel (`w8`): b8 d2048 N16 L2048 bf16 2423 -> 1691 us, f32 2293 -> 1798 us; b2
        // d2048 bf16 966 -> 627 us (`q4h` / `q4s` at b8: bf16 1217 us, f32 1403 us). The
        // default: bf16 and f16 from 30 channels per SM, f32 from 64 (b2 d2048 f32:
        // `bwd_scan1q` 612 us, `w8` 678, `q4s` 940). The length bound was L >= 1024 until
        // the twenty-second session, which left shorter calls on the older kernels: H200,
        // d2048 N16, forward + backward, default against this path forced
        // (`MAMBA_CUDA_BWD_LM=1`), L128 / 256 / 512 / 1000: b8 f32 204 / 350 / 674 / 1335 us
        // against 146 / 227 / 424 / 829; b8 bf16 208 / 349 / 693 / 1358 against 140 / 205 /
        // 380 / 704; b2 bf16 113 / 164 / 307 / 554 against 86 / 108 / 197 / 386 (b2 f32,
        // below the f32 bound: 76 / 114 / 211 / 400 against 83 / 118 / 221 / 431). That
        // session's L >= 128 and f16 (forced only) were untimed; the twenty-third timed them
        // (b8, plain forward + this backward against the older one, `MAMBA_CUDA_SAVED=0`):
        // L1 / 8 / 16 / 32 / 64 / 100 f32 49 / 52 / 68 / 77 / 112 / 180 us against 47 / 50 /
        // 55 / 58 / 86 / 134, bf16 62 / 64 / 63 / 75 / 111 / 183 against 49 / 49 / 52 / 55 /
        // 79 / 118; f16 L512 / 2048 700 / 2728 against 388 / 1460; b2 bf16 L16 / 64 44 / 77
        // against 45 / 61.
        None => {
            let per_sm = match act {
                dtype::BF16 | dtype::F16 => 30,
                dtype::F32 => 64,
                _ => return false,
            };
            b * dd >= per_sm * g.sm_count.max(1) as usize
        }
    }
}

/// Whether the plain f32 `q4pb` backward runs as `q4pbo`, its rows and checkpoints addressed
/// by 32-bit element offsets (kernels/bwd_lm.cu `OX`): its checkpoint scratch, (b, d,
/// ceil(L / 8), 16) f32, must hold fewer than 2^32 floats (so b d L < 2^31 too), as the
/// saving form's checkpoints must (`q4pbs`, which has used these offsets since the
/// thirtieth session). Off by default: slower here, unlike there (H200, b8 d2048 N16 L2048
/// f32, backward 1340-1345 us against 1282-1307 for `q4pb`, thirty-first session);
/// `MAMBA_CUDA_BWD_LM_O32=1` or `MAMBA_CUDA_BWD_LM_V=q4pbo` takes it where it fits.
const O32_DEFAULT: bool = false;

fn o32_fits(act: u32, b: usize, dd: usize, ntiles: usize) -> bool {
    let on = match env_usize("MAMBA_CUDA_BWD_LM_O32") {
        Some(v) => v != 0,
        None => O32_DEFAULT || env_str("MAMBA_CUDA_BWD_LM_V").as_deref() == Some("q4pbo"),
    };
    act == dtype::F32
        && on
        && b.checked_mul(dd)
            .and_then(|x| x.checked_mul(ntiles))
            .and_then(|x| x.checked_mul(16))
            .is_some_and(|x| x < (1usize << 32))
}

fn a256(v: usize) -> usize {
    v.div_ceil(256) * 256
}

fn ptr(t: &TensorDesc) -> u64 {
    if t.is_none() {
        0
    } else {
        t.ptr
    }
}

/// Runs the backward (the descriptors were checked by the caller; `seg` channels share
/// their B and C groups). `saved`: the checkpoints of the training forward (`lm1_fwd_*_w6ck`
/// / `_w9ck`, (b, ceil(L / 8), d, 16) f32, checked by the caller), read by `q4pbs` (`q4pb`
/// without its own forward pass) whatever the overrides say.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    g: &Gpu,
    d: &SelectiveScanBwdDesc,
    act: u32,
    (b, dd, l, n): (usize, usize, usize, usize),
    (bg, cg): (i32, i32),
    seg: usize,
    saved: Option<u64>,
    stream: u64,
) -> PResult<()> {
    const OP: &str = "selective_scan_backward";
    let sfx = suffix(act, OP)?;
    let p = &d.fwd;
    let (v, tt, threads, smem) = match saved {
        Some(_) => ("_q4pbs", TT4, NT4, SMEM4P),
        None => form(act, b * dd, g.sm_count.max(1) as usize),
    };
    let ntiles = l.div_ceil(tt);
    let v = if v == "_q4pb" && o32_fits(act, b, dd, ntiles) {
        "_q4pbo"
    } else {
        v
    };
    let b_numel = p.b.numel() as usize;
    let c_numel = p.c.numel() as usize;
    let ck_bytes = if saved.is_some() {
        0
    } else {
        a256(b * dd * ntiles * 16 * 4)
    };
    let db_bytes = a256(b_numel * 4);
    let dc_bytes = a256(c_numel * 4);
    let scratch = g.alloc_async(ck_bytes + db_bytes + dc_bytes, stream)?;
    let res = (|| {
        let acc = scratch + ck_bytes as u64;
        super::memset(acc, 0, db_bytes + dc_bytes, stream)?;
        for t in [&d.da, &d.dd, &d.ddelta_bias] {
            if !t.is_none() {
                super::memset(t.ptr, 0, t.numel() as usize * dtype::size(t.dtype), stream)?;
            }
        }
        // Two elements per load / store: L even and every row 8-byte aligned.
        let align = [
            &p.u, &p.delta, &p.z, &d.dout, &d.du, &d.ddelta, &d.dz, &p.b, &p.c,
        ]
        .iter()
        .all(|t| t.is_none() || t.ptr.is_multiple_of(8));
        let prm = BwdLmParams {
            u: p.u.ptr,
            delta: p.delta.ptr,
            a: p.a.ptr,
            b: p.b.ptr,
            c: p.c.ptr,
            d: ptr(&p.d),
            z: ptr(&p.z),
            bias: ptr(&p.delta_bias),
            h0: ptr(&p.initial_state),
            dout: d.dout.ptr,
            dlast: ptr(&d.dlast_state),
            du: d.du.ptr,
            ddelta: d.ddelta.ptr,
            dz: ptr(&d.dz),
            da: d.da.ptr,
            dd: ptr(&d.dd),
            dbias: ptr(&d.ddelta_bias),
            dh0: ptr(&d.dinitial_state),
            db: acc,
            dc: acc + db_bytes as u64,
            ck: saved.unwrap_or(scratch),
            batch: b as i32,
            dim: dd as i32,
            seqlen: l as i32,
            dstate: n as i32,
            b_groups: bg,
            c_groups: cg,
            softplus: (p.delta_softplus != 0) as i32,
            seg: seg as i32,
            blocks_per_seg: seg.div_ceil(CB) as i32,
            vec: (align && l.is_multiple_of(2)) as i32,
            vec4: l.is_multiple_of(4) as i32,
            pad: 0,
        };
        let f = g.func(&format!("bwdlm_{sfx}{v}"))?;
        let grid = (((dd / seg) * seg.div_ceil(CB)) as u32, b as u32, 1);
        g.launch(f, grid, threads as u32, smem, stream, &prm)?;
        let cast = g.func(&format!("bwd_cast_{sfx}"))?;
        for (src, dst, n) in [(prm.db, d.db.ptr, b_numel), (prm.dc, d.dc.ptr, c_numel)] {
            let cp = BwdCastParams {
                src,
                dst,
                n: n as i64,
            };
            let blocks = n.div_ceil(256).min(1 << 16) as u32;
            g.launch(cast, (blocks, 1, 1), 256, 0, stream, &cp)?;
        }
        Ok(())
    })();
    let fr = g.free_async(scratch, stream);
    res.and(fr)
}
