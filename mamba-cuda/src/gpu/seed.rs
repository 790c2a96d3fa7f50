//! The seed shapes in one launch with no chain across time chunks (kernels/seed.cu).
//!
//! SSD: `seed_ssd_{f32,bf16,f16}`, one block per (batch, head, chunk of 32 steps), taken
//! by ticket; each block publishes its chunk's local end state and sums the decayed local
//! states of the earlier chunks of its group of ~sqrt(K) chunks and the aggregates of
//! the earlier groups itself (`MAMBA_CUDA_SEED_GROUP` sets the group). Applies without `seq_idx`,
//! with headdim <= 64 and dstate <= 64. `MAMBA_CUDA_SEED=1` forces it where it applies,
//! `=0` keeps the older paths; unset: the automatic choice (`ssd_auto`).

use super::ops::{env_str, env_usize};
use super::params::SsdParams;
use super::Gpu;
use crate::PResult;

/// Steps per chunk, padded headdim and dstate of `seed_ssd_*` (kernels/seed.cu).
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
pub(crate) fn ssd_wanted(g: &Gpu, prm: &SsdParams) -> bool {
    if !ssd_applies(prm) {
        return false;
    }
    if let Some(f) = forced() {
        return f;
    }
    ssd_auto(g, prm)
}

/// The automatic choice (off until measured on the device).
fn ssd_auto(_g: &Gpu, _prm: &SsdParams) -> bool {
    false
}

/// Launches `seed_ssd_*` (the caller checked `ssd_applies`).
pub(crate) fn ssd_launch(g: &Gpu, mut prm: SsdParams, sfx: &str, stream: u64) -> PResult<()> {
    let (b, h, l) = (prm.batch as usize, prm.nheads as usize, prm.seqlen as usize);
    let k = l.div_ceil(SQ);
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
    prm.chunk_len = SQ as i32;
    let ss = SN * SP * 4;
    let states_bytes = blocks * ss;
    let decay_bytes = blocks.div_ceil(4) * 16;
    let agg_bytes = bh * ngroups * ss;
    let f = g.func(&format!("seed_ssd_{sfx}"))?;
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
                group: group as i32,
            };
            g.launch(f, (blocks as u32, 1, 1), 256, SSD_SMEM, stream, &sp)
        },
    )
}
