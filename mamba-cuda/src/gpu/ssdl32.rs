//! `ssdl32`: the f32 SSD forward at the language-model shape on tensor cores in 3xTF32
//! (kernels/ssd_lm32.cu), Q = 128 and PB = 64 fixed and N = 64 or 128. By default four
//! launches: C B^T per (batch, group, chunk) on the f64 tensor cores (`ssdl32_cb`), the
//! chunk headers (`ssdl32_hdr8`: the dt scan, cumulative sums, decays, weights, once for
//! both big kernels), B split into scaled f16 halves (`ssdl32_bsplit_n{N}`), the chunk
//! states with the combine folded in on the f16 tensor cores (`ssdl32_sseqh_n{N}`: each
//! block walks one head's chunks for N columns of n (64 at N 64) with the running state in
//! registers and writes every chunk's incoming state and the final state), and the
//! outputs (`ssdl32_out_n*_pf`, with `ssdl32_csplit` before it at N 128).
//!
//! `MAMBA_CUDA_SSD_IMPL=lm32` forces it wherever it applies; `MAMBA_CUDA_SSD32=0` never
//! takes it; by default (`MAMBA_CUDA_SSD_IMPL` unset or `auto`) f32 with at least two
//! (batch, head) pairs per SM and L >= `ops::SSD_LM_MIN_L` (128) takes it. Older forms, by env:
//! `MAMBA_CUDA_SSD32_CB=0`: C B^T on the CUDA cores in f64 (`ssdl_cb_f32_q128` of
//! kernels/ssd_chunk.cu; the same sums). `MAMBA_CUDA_SSD32_HDR=0`: the one-warp-per-header
//! `ssdl32_hdr`. `MAMBA_CUDA_SSD32_SEQ` (0-6, see `sseq_mode`; default 6): 0 = the chunk
//! states from zero (`ssdl32_states_n*`, several heads of a group per block,
//! `MAMBA_CUDA_SSD32_HB` 1, 2, 4, 8, default 4, halved until it divides the heads per
//! group) and the separate combine (`ssdl32_combine`); 1-4 the `sseq` forms in 3xTF32 (3 =
//! `ssdl32_sseq_s1b3`, the default until the eighteenth session); 5 `ssdl32_sseqh_n64`.
//! `MAMBA_CUDA_SSD32_OPF=0`: the outputs kernel without the C B^T prefetch;
//! `MAMBA_CUDA_SSD32_OB=3`: the outputs kernel capped for three blocks per SM (`_b3`).
//! With N = 128 and the prefetch (the default) the outputs kernel computes C S^T on the f16
//! tensor cores (`ssdl32_out_n128_pfh`, seventeenth session): C split once per call by
//! `ssdl32_csplit` into scaled f16 hi / lo halves (scratch of C's size), S split in the
//! kernel after staging; more accurate than 3xTF32 and ~1% faster per call (NOTES.md).
//! `MAMBA_CUDA_SSD32_F16=0` keeps 3xTF32 there (`ssdl32_out_n128_pf`). Since the nineteenth
//! session M X left of the diagonal runs there too (`ssdl32_csplit_m` splits C B^T in place
//! with C's row scales, `ssdl32_out_n128_pfm` splits V X once per block;
//! `MAMBA_CUDA_SSD32_MX16=0` keeps `_pfh`, M X in 3xTF32). `MAMBA_CUDA_SSD32_WG=1` runs the
//! states pass at N 128 on wgmma (`ssdlw_states_f32_q128_n128`, kernels/ssd_wg.cu, where the
//! sm_90a module is loaded; twenty-eighth session: correct, and slower than `sseqh`).
//! Where the sm_90a module is loaded, `_pfm` runs as `ssdlw_out_f32_pfw` (its C S^T on
//! wgmma; twenty-ninth session, ~1.5% per call); `MAMBA_CUDA_SSD32_OWG=0` keeps `_pfm`.
//! Thirty-sixth session: the states pass as `ssdl32_sseqh_n{N}e` (less of the next chunk's
//! staging between chunks; `MAMBA_CUDA_SSD32_SE=0` keeps `_n{N}`) and the wgmma outputs as
//! `ssdlw_out_f32_pfw2` (M X's split C B^T quads two tiles ahead; `MAMBA_CUDA_SSD32_MXD=1`
//! keeps `_pfw`), both the default.

use mamba_core::abi::dtype;

use super::ops::{env_str, env_usize};
use super::params::SsdParams;
use super::Gpu;
use crate::PResult;

/// Steps per chunk and state rows per block (kernels/ssd_lm32.cu `L32_Q`, `L32_PB`).
const Q: usize = 128;
const PB: usize = 64;

/// Shared memory: mirrors `l32_states_smem` / `l32_out_smem` and the C B^T kernel's
/// `ssdl_layout(4, 128, 16, n, 2)`.
fn hdr_bytes() -> usize {
    (Q * 20 + 16).div_ceil(128) * 128
}
fn states_smem(n: usize) -> usize {
    hdr_bytes() + Q * (PB + 8) * 4 + Q * (n + 8) * 4
}
fn out_smem(n: usize) -> usize {
    hdr_bytes() + Q * (PB + 4) * 4 + PB * (n + 4) * 4
}
/// One stage of `ssdl32_sseq_*` (`l32_sseq_stage(nb)`): header, x (Q x PB), B (Q x nb).
fn sseq_stage(nb: usize) -> usize {
    hdr_bytes() + Q * (PB + 8) * 4 + Q * (nb + 8) * 4
}
/// The states pass: `MAMBA_CUDA_SSD32_SEQ` 0 = chunk states + combine (`ssdl32_states_n*`,
/// `ssdl32_combine`), 1 = the combine folded into the states (`ssdl32_sseq_s1`, one stage,
/// 2 blocks per SM), 2 = the same double-buffered (`_s2`, 1 block per SM), 3 = `_s1b3`
/// (one stage, 3 blocks per SM), 4 = `_w16_n{N}` (512 threads, the whole state row n per
/// block, two stages, 1 block per SM). 3 was the default from the seventh session (H200:
/// 12-13 us faster than 0 in two rounds; NOTES.md).
/// 5 / 6 = the products on the f16 tensor cores (`ssdl32_sseqh_n64`, 3 blocks per SM /
/// `_n128`, 2 per SM, N 128 only: N 64 takes `_n64`), after `ssdl32_bsplit_n{N}` splits B
/// once per call (eighteenth session). Default 6 (H200, b8 L2048 h80 N128: the states
/// kernel 338 -> 210 us per run of 4 batch rows, the call 1345-1400 -> 1073-1102 us, and
/// more accurate; NOTES.md).
fn sseq_mode() -> usize {
    env_usize("MAMBA_CUDA_SSD32_SEQ")
        .filter(|&m| m <= 6)
        .unwrap_or(6)
}
/// `l32_sseqh_smem(nb, e)`: the header (two with `e`), x (Q x (PB + 4)), 1 / s_q, the split
/// B (Q x (nb + 4)), 1 / s_n.
fn sseqh_smem(nb: usize, e: bool) -> usize {
    (1 + usize::from(e)) * hdr_bytes() + Q * (PB + 4) * 4 + PB * 4 + Q * (nb + 4) * 4 + nb * 4
}
/// Whether the split-f16 states pass runs its `e` form (`ssdl32_sseqh_n{64,128}e`, thirty-
/// sixth session; `MAMBA_CUDA_SSD32_SE=0` keeps `ssdl32_sseqh_n{64,128}`, whose second half
/// of the next chunk's stage is issued after a chunk and waited for at once): the header of
/// the next chunk staged mid-chunk, the rest of its stage in two copy groups, so that the
/// split waits for x only and the B rows are waited for behind the first half of the
/// products. The default (H200, b8 L2048 h80 N128: the states kernel 208 -> 200-202 us per run
/// of 4 batch rows; per call 1-2% less in two device calls, inside the spread of processes in a
/// third, and 1-3% less at the smaller LM shapes; NOTES.md).
fn sseqh_early() -> bool {
    env_usize("MAMBA_CUDA_SSD32_SE") != Some(0)
}
/// `LW32_SMEM` of kernels/ssd_wg.cu: a ring of four quarter chunks (B hi / lo and x, 24 KB
/// each), s_w, exp(cs_end) and 1 / s_n by chunk parity, the column maxima of 8 warps, 1 / s_q
/// by quarter parity.
const WG_STATES_SMEM: usize = 98304 + 512 + 32 + 1024 + 2048 + 512;
/// Whether the N 128 states pass runs on wgmma (`ssdlw_states_f32_q128_n128`, twenty-eighth
/// session): only with `MAMBA_CUDA_SSD32_WG=1`, where the sm_90a module is loaded. Not the
/// default: four forms of it measured 298-334 us per run of 4 batch rows on the H200 (ncu),
/// against 207 us for `ssdl32_sseqh_n128` (NOTES.md, twenty-eighth session).
fn wg_states(g: &Gpu) -> bool {
    env_usize("MAMBA_CUDA_SSD32_WG") == Some(1)
        && g.has_wgmma()
        && WG_STATES_SMEM + 1024 <= g.max_smem()
}
/// Whether the N 128 outputs run `_pfm` with C S^T on wgmma (`ssdlw_out_f32_pfw`, kernels/
/// ssd_lm32.cu's WG compiled into the sm_90a module; twenty-ninth session): the default
/// where the sm_90a module is loaded (H200, b8 L2048 h80 N128, alternating in one call, three
/// rounds: 961-978 us against 974-1003 for `_pfm`; the outputs kernel 304 -> 301 us per run of 4
/// batch rows, 5% fewer instructions; NOTES.md). `MAMBA_CUDA_SSD32_OWG=0` keeps `_pfm`.
fn wg_out(g: &Gpu) -> bool {
    env_usize("MAMBA_CUDA_SSD32_OWG") != Some(0) && g.has_wgmma()
}
fn cb_smem(n: usize) -> usize {
    2 * (Q * (n + 4) * 4).div_ceil(128) * 128
}

/// Whether the call takes `ssdl32` (see the module comment).
pub(crate) fn wanted(g: &Gpu, prm: &SsdParams, act: u32) -> bool {
    if act != dtype::F32 || env_usize("MAMBA_CUDA_SSD32") == Some(0) {
        return false;
    }
    let forced = match env_str("MAMBA_CUDA_SSD_IMPL").as_deref() {
        Some("lm32") => true,
        None | Some("auto") => false,
        _ => return false,
    };
    let (p, n) = (prm.headdim as usize, prm.dstate as usize);
    if (prm.seq_idx != 0 && !super::ops::ssd_lm_seq())
        || !p.is_multiple_of(PB)
        || !(n == 64 || n == 128)
    {
        return false;
    }
    // 16-byte rows: x, B, C, out, z (4-float vectors); init / final states as float4.
    let z = prm.z != 0;
    let ptrs = [
        prm.x,
        prm.b,
        prm.c,
        prm.out,
        prm.z,
        prm.init,
        prm.final_states,
    ];
    let mut strides = vec![
        prm.x_sb, prm.x_st, prm.b_sb, prm.b_st, prm.c_sb, prm.c_st, prm.out_sb, prm.out_st,
    ];
    if z {
        strides.extend([prm.z_sb, prm.z_st]);
    }
    if ptrs.iter().any(|a| a % 16 != 0) || strides.iter().any(|s| s % 4 != 0) {
        return false;
    }
    if [states_smem(n), out_smem(n), cb_smem(n), 2 * sseq_stage(64)]
        .iter()
        .any(|&s| s > g.max_smem())
    {
        return false;
    }
    // By default at L >= SSD_LM_MIN_L wherever the forms checked before it (`ssdz` and its
    // segments, `ssdq`, the seed kernel: ops.rs `ssd_dispatch_one`) do not take the call,
    // except with fewer than `SSD32_MIN_PAIRS` (batch, head) pairs at L <= 1024 (split3 from
    // L 640, else the recurrent kernels). Until the twenty-second session only with >= 2 pairs
    // per SM; fewer went to the recurrent kernels, 1.2-4x slower (H200, p64 N64, default
    // against `MAMBA_CUDA_SSD_IMPL=lm32`: b2 h24 L512 / 2048 / 4096 116 / 308 / 571 us against
    // 93 / 164 / 254; b4 h24 191 / 716 / 1333 against 103 / 202 / 345; b2 h80 290 / 1032 /
    // 2015 against 123 / 273 / 484). Until the twenty-third session split3 kept every call
    // with fewer pairs than SMs at 640 <= L <= 1024, untimed against this path there: 1.4-4.6x
    // slower from 16 pairs on (H200, default against `lm32`: b2 h24 p64 N64 L640 / 800 /
    // 1024 141 / 310 / 319 us against 99 / 140 / 149; b4 h24 L800 611 against 160; b1 h64
    // L1024 431 against 94; b2 h24 N128 L800 431 against 169; b1 h16 N128 L800 103 against
    // 88). At 12 pairs (b2 h6 p64 N128) the older forms stay faster: L256 / 400 / 800 recurrent
    // 52 / 77 us, split3 (L800) 87, this path 107 / 114 / 132; at L2048 level (174 / 179).
    let bh = prm.batch as usize * prm.nheads as usize;
    let few = bh < SSD32_MIN_PAIRS && prm.seqlen <= 1024;
    forced || (!few && prm.seqlen as usize >= super::ops::SSD_LM_MIN_L)
}

/// The fewest (batch, head) pairs for which `ssdl32` is the default at L <= 1024 (see
/// `wanted`).
pub(crate) const SSD32_MIN_PAIRS: usize = 16;

/// Heads per states block: `MAMBA_CUDA_SSD32_HB` (default 4), halved until it divides
/// the heads per group.
fn heads_per_block(heads_per_group: usize) -> usize {
    super::ops::ssd_heads_per_block("MAMBA_CUDA_SSD32_HB", heads_per_group)
}

/// Runs the SSD forward with `ssdl32` if the call takes it (true), else does nothing.
/// Scratch: chunk states (b, h, K, p, N) f32, chunk decays (padded to 4 floats),
/// C B^T (b, g, K, Q, Q) f32, then the headers (b, h, K) of `hdr_bytes()` each.
pub(crate) fn try_ssdl32(g: &Gpu, prm: &SsdParams, act: u32, stream: u64) -> PResult<bool> {
    if !wanted(g, prm, act) {
        return Ok(false);
    }
    let mut prm = *prm;
    let (b, h, p, n, ng) = (
        prm.batch as usize,
        prm.nheads as usize,
        prm.headdim as usize,
        prm.dstate as usize,
        prm.ngroups as usize,
    );
    let k = (prm.seqlen as usize).div_ceil(Q);
    prm.qb = PB as i32;
    prm.chunk_len = Q as i32;
    prm.nchunks = k as i32;
    let states_bytes = b * h * k * p * n * 4;
    let decay_bytes = (b * h * k).div_ceil(4) * 16;
    let cb_bytes = b * ng * k * Q * Q * 4;
    let hdr_bytes_all = b * h * k * hdr_bytes();
    // The outputs kernel: `_b3` (MAMBA_CUDA_SSD32_OB=3), else `_pf` (the C B^T prefetch;
    // MAMBA_CUDA_SSD32_OPF=0: none); `_pfh` (the split-f16 C S^T) at N 128 unless
    // MAMBA_CUDA_SSD32_F16=0.
    let out_sfx = if env_usize("MAMBA_CUDA_SSD32_OB") == Some(3) {
        "_b3"
    } else if env_usize("MAMBA_CUDA_SSD32_OPF") != Some(0) {
        "_pf"
    } else {
        ""
    };
    let f16 = out_sfx == "_pf" && n == 128 && env_usize("MAMBA_CUDA_SSD32_F16") != Some(0);
    // `_pfh`: the split C (b, Lp, g, n) in fragment order and 1 / scale per (batch, step,
    // group) row, rows to Lp = 16 ceil(L / 16) (`l32_csplit`).
    let l = prm.seqlen as usize;
    let lp = l.div_ceil(16) * 16;
    let chl_bytes = if f16 { b * lp * ng * n * 4 } else { 0 };
    let isc_bytes = if f16 {
        (b * lp * ng * 4).div_ceil(16) * 16
    } else {
        0
    };
    // The split-f16 states (modes 5 / 6): the split B (b, L, g, n) and 1 / scale per
    // (batch, chunk, group, n).
    let mode = sseq_mode();
    let hnb = if mode == 5 { 64 } else { n };
    let se = sseqh_early();
    let hsplit = mode >= 5 && sseqh_smem(hnb, se) <= g.max_smem();
    let bsp_bytes = if hsplit { b * l * ng * n * 4 } else { 0 };
    let bin_bytes = if hsplit { b * k * ng * n * 4 } else { 0 };
    let main_bytes = states_bytes + decay_bytes + cb_bytes + hdr_bytes_all;
    let scratch = g.alloc_async(
        main_bytes + chl_bytes + isc_bytes + bsp_bytes + bin_bytes,
        stream,
    )?;
    let (chl, isc) = (
        scratch + main_bytes as u64,
        scratch + (main_bytes + chl_bytes) as u64,
    );
    let bsp = scratch + (main_bytes + chl_bytes + isc_bytes) as u64;
    let bin = bsp + bsp_bytes as u64;
    prm.chunk_states = scratch;
    prm.chunk_decay = scratch + states_bytes as u64;
    // The headers (`ssdl32_hdr`) travel in seq_idx; the caller's seq_idx (packed sequences,
    // fifty-fifth session: the header kernels reset the state at each sequence's first step,
    // kernels/ssd_lm32.cu `L32_RESET`) in seq_ids.
    prm.seq_ids = prm.seq_idx;
    prm.seq_idx = scratch + (states_bytes + decay_bytes + cb_bytes) as u64;
    let grid_x = ((p / PB) * k) as u32;
    let run = || -> PResult<()> {
        if env_usize("MAMBA_CUDA_SSD32_CB") != Some(0) {
            // C B^T on the f64 tensor cores (`ssdl32_cb`): C and B staged, rows of n + 4.
            g.launch(
                g.func("ssdl32_cb")?,
                (k as u32, ng as u32, b as u32),
                256,
                2 * Q * (n + 4) * 4,
                stream,
                &prm,
            )?;
        } else {
            let f0 = g.func("ssdl_cb_f32_q128")?;
            g.launch(
                f0,
                (k as u32, ng as u32, b as u32),
                256,
                cb_smem(n),
                stream,
                &prm,
            )?;
        }
        if env_usize("MAMBA_CUDA_SSD32_HDR") != Some(0) {
            // dt read in rows of 8 heads (`ssdl32_hdr8`).
            g.launch(
                g.func("ssdl32_hdr8")?,
                (h.div_ceil(8) as u32, k as u32, b as u32),
                256,
                0,
                stream,
                &prm,
            )?;
        } else {
            let fh = g.func("ssdl32_hdr")?;
            g.launch(
                fh,
                ((b * h * k).div_ceil(8) as u32, 1, 1),
                256,
                0,
                stream,
                &prm,
            )?;
        }
        if hsplit {
            // B split once (`ssdl32_bsplit_n{N}`), then the states on the f16 tensor cores:
            // the split B in p.B, its 1 / scales in p.out (the states kernel writes no
            // output).
            let mut pb = prm;
            pb.out = bsp;
            pb.init = bin;
            g.launch(
                g.func(&format!("ssdl32_bsplit_n{n}"))?,
                (k as u32, ng as u32, b as u32),
                256,
                0,
                stream,
                &pb,
            )?;
            let mut ps = prm;
            ps.b = bsp;
            ps.b_sb = (l * ng * n) as i64;
            ps.b_st = (ng * n) as i64;
            ps.out = bin;
            if hnb == 128 && wg_states(g) {
                // The same walk on wgmma (kernels/ssd_wg.cu, sm_90a; two warpgroups per
                // block, 1 KB more for the 1024-byte alignment).
                g.launch(
                    g.func("ssdlw_states_f32_q128_n128")?,
                    ((p / PB) as u32, h as u32, b as u32),
                    256,
                    WG_STATES_SMEM + 1024,
                    stream,
                    &ps,
                )?;
            } else {
                g.launch(
                    g.func(&format!("ssdl32_sseqh_n{hnb}{}", if se { "e" } else { "" }))?,
                    (((p / PB) * (n / hnb)) as u32, h as u32, b as u32),
                    256,
                    sseqh_smem(hnb, se),
                    stream,
                    &ps,
                )?;
            }
        } else if mode == 0 {
            let hb = heads_per_block(h / ng);
            let f1 = g.func(&format!("ssdl32_states_n{n}"))?;
            g.launch(
                f1,
                (grid_x, (h / hb) as u32, b as u32),
                256,
                states_smem(n),
                stream,
                &prm,
            )?;
            let blocks = (b * h * p * n / 4).div_ceil(256).min(65535) as u32;
            g.launch(
                g.func("ssdl32_combine")?,
                (blocks, 1, 1),
                256,
                0,
                stream,
                &prm,
            )?;
        } else {
            // Chunk states and the combine in one pass: S_in of every chunk and the final
            // state (each block walks one head's chunks for 64 columns of n).
            let mode = if (mode == 4 && 2 * sseq_stage(n) > g.max_smem()) || mode >= 5 {
                1
            } else {
                mode
            };
            let (name, stages, nb, threads) = match mode {
                2 => ("ssdl32_sseq_s2".to_string(), 2, 64, 256),
                3 => ("ssdl32_sseq_s1b3".to_string(), 1, 64, 256),
                4 => (format!("ssdl32_sseq_w16_n{n}"), 2, n, 512),
                _ => ("ssdl32_sseq_s1".to_string(), 1, 64, 256),
            };
            g.launch(
                g.func(&name)?,
                (((p / PB) * (n / nb)) as u32, h as u32, b as u32),
                threads,
                stages * sseq_stage(nb),
                stream,
                &prm,
            )?;
        }
        let mut po = prm;
        po.final_states = 0;
        if f16 {
            // One warp per pair of rows t, t + 8 of C: their hi / lo halves as A fragment
            // quads and 1 / scale.
            let mut pc = prm;
            pc.out = chl;
            pc.init = isc;
            // By default (`MAMBA_CUDA_SSD32_MX16=0`: not) `ssdl32_csplit_m` also splits C B^T
            // left of the diagonal in place (one scale per row over C and C B^T), and `_pfm`
            // takes M X there on the f16 tensor cores (nineteenth session, H200: the outputs
            // kernel 331 -> 306 us per run of 4 batch rows, the call 1015-1028 -> 988-1008
            // us; NOTES.md).
            let mx16 = env_usize("MAMBA_CUDA_SSD32_MX16") != Some(0);
            g.launch(
                g.func(if mx16 {
                    "ssdl32_csplit_m"
                } else {
                    "ssdl32_csplit"
                })?,
                ((b * lp * ng / 2).div_ceil(8) as u32, 1, 1),
                256,
                0,
                stream,
                &pc,
            )?;
            po.c = chl;
            po.init = isc;
            po.rev_b = super::params::ssd_rev_b();
            // With MAMBA_CUDA_SSD32_MX16=0: MAMBA_CUDA_SSD32_OBAL=1 `_pfhb` (the causal M X
            // balanced over the warps; slower), 3 `_pfh3` (three blocks per SM).
            // `_pfw` aligns its S tile to 1024 bytes (up to 1 KB more).
            let owg = mx16 && wg_out(g);
            // `_pfw2` (the default; thirty-sixth session): M X's split C B^T quads two tiles
            // ahead (H200, b8 L2048 h80 N128: the kernel 300-301 -> 298 us per run of 4 batch
            // rows, the call's medians 1-3% lower at the four LM shapes; NOTES.md);
            // `MAMBA_CUDA_SSD32_MXD=1` keeps `_pfw` (one tile ahead).
            let f2 = g.func(match env_usize("MAMBA_CUDA_SSD32_OBAL") {
                _ if owg && env_usize("MAMBA_CUDA_SSD32_MXD") == Some(1) => "ssdlw_out_f32_pfw",
                _ if owg => "ssdlw_out_f32_pfw2",
                _ if mx16 => "ssdl32_out_n128_pfm",
                Some(1) => "ssdl32_out_n128_pfhb",
                Some(3) => "ssdl32_out_n128_pfh3",
                _ => "ssdl32_out_n128_pfh",
            })?;
            // After the S tile: 1 / s_q and D (PB each); `_pfm` then V, F (Q each), R (16),
            // s_q (PB) and the column maxima (8 x PB).
            let mx_smem = if mx16 { (2 * Q + 16 + 9 * PB) * 4 } else { 0 };
            return g.launch(
                f2,
                (grid_x, h as u32, b as u32),
                256,
                out_smem(n) + 2 * PB * 4 + mx_smem + if owg { 1024 } else { 0 },
                stream,
                &po,
            );
        }
        let f2 = g.func(&format!("ssdl32_out_n{n}{out_sfx}"))?;
        g.launch(
            f2,
            (grid_x, h as u32, b as u32),
            256,
            out_smem(n),
            stream,
            &po,
        )
    };
    let r = run();
    let fr = g.free_async(scratch, stream);
    r.and(fr).map(|()| true)
}
