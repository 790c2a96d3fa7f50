//! SPEC 2 with `seq_idx` (packed sequences) at the language-model widths: the backward as one
//! call per sequence. Since the fifty-fifth session the chunked kernels reset the state where
//! a sequence starts themselves (the forward's LM kernels through their header kernels,
//! `ops::ssd_lm_seq`; the chunked backward through its prep kernel, `ssd_bwdc::seq_ok`), and
//! a call with `seq_idx` takes the time of the call without it, so this form now runs only
//! where the chunked backward does not take the call (or `MAMBA_CUDA_SSD_BWDC_SEQ=0`), or where
//! forced (`MAMBA_CUDA_SSD_SEGMENTS=1`). What follows is the fifty-fourth session's case, when
//! no chunked kernel had resets inside a row, so a call with
//! `seq_idx` took the recurrent kernels: at b8 L2048 h80 p64 N128 with 8 sequences per row,
//! 2.9 ms forward and 117 ms forward+backward in bf16 on an H100, against 0.36 / 3.3 ms
//! without `seq_idx` (fifty-fourth session, `bench-results/h100-s54d-segments.txt`). Packed
//! sequences are independent (the state restarts at 0 where `seq_idx` changes; the initial
//! state belongs to each row's first sequence, the final state to its last), so each
//! sequence of a row can be a call of its own on a (1, len, ...) view of the tensors,
//! without `seq_idx`; the backward's sums over the batch and time (dA, dD, d dt_bias) add up
//! per sequence.
//!
//! Measured there (two rounds, default against `MAMBA_CUDA_SSD_SEGMENTS=0`): forward+backward
//! bf16 11.8-11.9 ms against 117.0-117.7, f32 14.8 against 91.6-92.2; at b2 L2048 h24 bf16
//! 1.88-1.89 against 11.0-11.1 ms, f32 2.39 against 8.68-8.69. The forward per sequence
//! measured slower than the recurrent kernel where it matters (bf16 LM 3.10-3.13 against
//! 2.92 ms, f32 4.23-4.27 against 3.53-3.54: 64 calls of ~50 us, mostly launches), so only
//! the backward takes it by default; at the seed width (h p N = 24576) both keep the
//! recurrent kernels (per sequence: 0.57-0.62 against 0.42-0.50 ms forward+backward).
//!
//! The plan reads `seq_idx` back to the host: the backward waits for the stream to reach
//! it. It is skipped while the stream is being recorded into a graph, where nothing may
//! wait. `MAMBA_CUDA_SSD_SEGMENTS=1` takes the per-sequence form for the forward and the
//! backward at any width, `0` never.

use mamba_core::abi::{dtype, SsdBwdDesc, SsdDesc, TensorDesc};

use super::ops::env_usize;
use super::Gpu;
use crate::PResult;

/// One packed sequence: batch row, first step, length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seq {
    row: usize,
    start: usize,
    len: usize,
    last: bool,
}

/// `h p N` from which the per-sequence form is taken by default: the LM shape (80 x 64 x 128)
/// is 4x this, the seed (6 x 64 x 64) a tenth of it, where the recurrent kernels take
/// ~0.1 ms for a whole forward+backward and a call per sequence would cost more in launches.
const MIN_WIDTH: usize = 1 << 17;
/// The shortest mean sequence, and the most sequences per batch row, taken by default (each
/// sequence costs a handful of launches per call).
const MIN_MEAN_LEN: usize = 64;
const MAX_PER_ROW: usize = 32;

/// Whether `MAMBA_CUDA_SSD_SEGMENTS=1` asks for the per-sequence form.
pub(crate) fn forced() -> bool {
    env_usize("MAMBA_CUDA_SSD_SEGMENTS").is_some_and(|v| v != 0)
}

/// The sequences of a call with `seq_idx` (dense (b, L) i32, checked by the caller), where
/// the per-sequence form takes it (the forward only where forced); `None` where the
/// recurrent kernels keep it.
pub(crate) fn plan(
    seq_idx: &TensorDesc,
    (b, l, h, p, n): (usize, usize, usize, usize, usize),
    backward: bool,
    stream: u64,
) -> PResult<Option<Vec<Seq>>> {
    let forced = env_usize("MAMBA_CUDA_SSD_SEGMENTS");
    // By default only where each sequence's backward can take the chunked kernels (the
    // shapes of `ssd_bwdc::wanted`): elsewhere every sequence would run the recurrent
    // kernels too, only in more launches.
    let chunked = p <= 64 && p.is_multiple_of(4) && n <= 128 && n.is_multiple_of(8);
    if forced == Some(0) || (forced.is_none() && (!backward || !chunked || h * p * n < MIN_WIDTH)) {
        return Ok(None);
    }
    if super::stream_capturing(stream)? {
        return Ok(None);
    }
    let mut ids = vec![0i32; b * l];
    // SAFETY: `ids` holds b L i32, the size of the dense (b, L) seq_idx; the call waits for
    // the copy.
    unsafe { super::memcpy_dtoh(ids.as_mut_ptr().cast(), seq_idx.ptr, b * l * 4, stream)? };
    let mut seqs = Vec::new();
    for (row, r) in ids.chunks_exact(l).enumerate() {
        let mut start = 0;
        for t in 1..=l {
            if t == l || r[t] != r[t - 1] {
                seqs.push(Seq {
                    row,
                    start,
                    len: t - start,
                    last: t == l,
                });
                start = t;
            }
        }
    }
    let take =
        forced.is_some() || (seqs.len() <= MAX_PER_ROW * b && b * l >= MIN_MEAN_LEN * seqs.len());
    Ok(take.then_some(seqs))
}

/// Steps `start .. start + len` of batch row `row` of a (b, L, ...) tensor.
fn steps(t: &TensorDesc, s: &Seq) -> TensorDesc {
    if t.is_none() {
        return *t;
    }
    let es = dtype::size(t.dtype) as i64;
    let mut v = *t;
    let off = (s.row as i64 * t.strides[0] + s.start as i64 * t.strides[1]) * es;
    v.ptr = t.ptr.wrapping_add_signed(off);
    v.dims[0] = 1;
    v.dims[1] = s.len as u64;
    v
}

/// Batch row `row` of a (b, ...) tensor, where `keep`; else absent.
fn row(t: &TensorDesc, s: &Seq, keep: bool) -> TensorDesc {
    if t.is_none() || !keep {
        return TensorDesc::NONE;
    }
    let es = dtype::size(t.dtype) as i64;
    let mut v = *t;
    v.ptr = t.ptr.wrapping_add_signed(s.row as i64 * t.strides[0] * es);
    v.dims[0] = 1;
    v
}

/// The forward of one sequence: its steps, the row's initial state if it is the row's first
/// sequence, the final state if its last; no `seq_idx`.
fn forward_desc(p: &SsdDesc, s: &Seq) -> SsdDesc {
    let mut q = *p;
    q.x = steps(&p.x, s);
    q.dt = steps(&p.dt, s);
    q.b = steps(&p.b, s);
    q.c = steps(&p.c, s);
    q.z = steps(&p.z, s);
    q.out = steps(&p.out, s);
    q.seq_idx = TensorDesc::NONE;
    q.initial_states = row(&p.initial_states, s, s.start == 0);
    q.final_states = row(&p.final_states, s, s.last);
    q
}

/// The forward, one call per sequence (in order, so a final state aliasing the initial one
/// is written after the row's first sequence has read it).
pub(crate) fn forward(p: &SsdDesc, seqs: &[Seq], stream: u64) -> PResult<()> {
    for s in seqs {
        super::ops::ssd(&forward_desc(p, s), stream)?;
    }
    Ok(())
}

/// The backward, one call per sequence; dA, dD and d dt_bias of each sequence go to scratch
/// and are added into the caller's (zeroed first).
pub(crate) fn backward(g: &Gpu, d: &SsdBwdDesc, seqs: &[Seq], stream: u64) -> PResult<()> {
    let sums = [d.da, d.dd, d.ddt_bias];
    let lens: Vec<usize> = sums.iter().map(|t| t.numel() as usize).collect();
    let total: usize = lens.iter().sum();
    let scratch = g.alloc_async(total.max(1) * 4, stream)?;
    let res = (|| {
        let mut parts = [TensorDesc::NONE; 3];
        let mut off = scratch;
        for (k, t) in sums.iter().enumerate() {
            if !t.is_none() {
                super::memset(t.ptr, 0, lens[k] * 4, stream)?;
                let mut v = *t;
                v.ptr = off;
                // Dense, as the caller's (checked).
                parts[k] = v;
                off += lens[k] as u64 * 4;
            }
        }
        for s in seqs {
            let mut q = *d;
            q.fwd = forward_desc(&d.fwd, s);
            q.dout = steps(&d.dout, s);
            q.dx = steps(&d.dx, s);
            q.ddt = steps(&d.ddt, s);
            q.db = steps(&d.db, s);
            q.dc = steps(&d.dc, s);
            q.dz = steps(&d.dz, s);
            q.dfinal_states = row(&d.dfinal_states, s, s.last);
            q.dinitial_states = row(&d.dinitial_states, s, s.start == 0);
            [q.da, q.dd, q.ddt_bias] = parts;
            super::bwd::ssd_backward(&q, stream)?;
            for (k, t) in sums.iter().enumerate() {
                if !t.is_none() {
                    super::axpy(dtype::F32, lens[k], 1.0, parts[k].ptr, t.ptr, stream)?;
                }
            }
        }
        Ok(())
    })();
    let fr = g.free_async(scratch, stream);
    res.and(fr)
}
