//! SPEC 2: `ssd` (Mamba-2), forward and backward.
//!
//! Each (batch, head) is a recurrence over a `p x N` state whose update is rank one:
//! `S = decay * S + outer(x * step, B)`, `y = S C`. Rows of `S` are independent, so
//! the forward keeps a block of `LANES` rows by up to 16 columns of `S` in registers
//! (vectorised across rows, columns broadcast) for the whole sequence: three vector
//! operations per state element and step, no horizontal sums, and `S` never goes to
//! memory. A reset (`seq_idx` changes) is a step whose decay is 0.
//!
//! The backward recomputes: a first pass stores the state every [`SUB_BLOCK`] steps,
//! then each block is recomputed a few rows at a time (vectorised across `N`; the rows
//! of a pass share the loads of `B` and `C` and one update of `dB` and `dC` per step)
//! and walked back with the adjoint `g`; the gradients of `B` and `C`, shared by the
//! heads of a group, go to per-task partial sums reduced afterwards in task order.
//!
//! With fewer (batch, head) pairs than threads, time is chunked as in the Mamba-1
//! scan; the carried state's contribution is `y[t] += (prod decay) S_in C[t]`, the
//! same kernel run without input.

use std::borrow::Cow;

use mamba_core::scratch;
use mamba_core::{Element, Result, SsdArgs, SsdDims, SsdGrads};

use crate::convert::{
    opt_to_f32, set_opt, size_for_overwrite, size_opt_zeroed, size_zeroed, to_f32, F32Out, F32s,
};
use crate::par::{chunks, split_mut, Disjoint, OutSink, Par};
use crate::simd::{math, pad, Kernel, Simd, SimdLevel, MAX_LANES};
use crate::CpuSimd;

/// Steps per recompute block of the backward pass: short enough that a block's
/// recomputed states for a pass of rows (`SUB_BLOCK x rows x N`), its `B`, `C`, `dB`
/// and `dC` stay in L1 (at 64 steps the states alone spill it, and the recompute
/// and reverse loops wait on L2).
const SUB_BLOCK: usize = 16;
/// Steps per time block of the forward pass.
const TIME_BLOCK: usize = 256;

/// The inputs as `f32`.
struct Problem<'a> {
    dims: SsdDims,
    /// `N` padded to whole vectors (for the row-wise backward).
    np: usize,
    x: F32s<'a>,
    dt: F32s<'a>,
    b: F32s<'a>,
    c: F32s<'a>,
    z: Option<F32s<'a>>,
    a: &'a [f32],
    d: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    init: Option<&'a [f32]>,
    seq_idx: Option<&'a [i32]>,
    softplus: bool,
    limit: Option<(f32, f32)>,
}

impl<'a> Problem<'a> {
    fn new<T: Element>(lanes: usize, args: &SsdArgs<'a, T>, dims: SsdDims) -> Self {
        Problem {
            dims,
            np: pad(dims.dstate, lanes),
            x: to_f32(args.x.data),
            dt: to_f32(args.dt.data),
            b: to_f32(args.b.data),
            c: to_f32(args.c.data),
            z: opt_to_f32(args.z.map(|t| t.data)),
            a: args.a.data,
            d: args.d.map(|t| t.data),
            bias: args.dt_bias.map(|t| t.data),
            init: args.initial_states.map(|t| t.data),
            seq_idx: args.seq_idx.map(|t| t.data),
            softplus: args.dt_softplus,
            limit: args.dt_limit,
        }
    }

    /// `D` of head `j`, channel `q`.
    #[inline(always)]
    fn skip(&self, j: usize, q: usize) -> f32 {
        match self.d {
            None => 0.0,
            Some(d) if self.dims.d_per_channel => d[j * self.dims.headdim + q],
            Some(d) => d[j],
        }
    }

    /// Offset of `B[i, t, group(j), 0]` (also of `C`) and the stride between steps.
    #[inline]
    fn bc_base(&self, i: usize, j: usize, t: usize) -> (usize, usize) {
        let d = &self.dims;
        (
            ((i * d.seqlen + t) * d.ngroups + d.group(j)) * d.dstate,
            d.ngroups * d.dstate,
        )
    }

    /// Offset of `x[i, t, j, 0]`.
    #[inline]
    fn x_base(&self, i: usize, j: usize, t: usize) -> usize {
        let d = &self.dims;
        ((i * d.seqlen + t) * d.nheads + j) * d.headdim
    }

    /// Whether the state resets before step `t` of batch `i`.
    #[inline]
    fn resets(&self, i: usize, t: usize) -> bool {
        match self.seq_idx {
            Some(s) if t > 0 => s[i * self.dims.seqlen + t] != s[i * self.dims.seqlen + t - 1],
            _ => false,
        }
    }
}

/// The step, its derivative and the decay (0 at a reset) of one head over a range.
struct Steps {
    step: Vec<f32>,
    dstep: Vec<f32>,
    decay: Vec<f32>,
}

impl Steps {
    #[inline(always)]
    fn new<S: Simd>(s: S, p: &Problem<'_>, i: usize, j: usize, t0: usize, t1: usize) -> Steps {
        let len = t1 - t0;
        let n = pad(len, MAX_LANES);
        let h = p.dims.nheads;
        let bias = p.bias.map_or(0.0, |b| b[j]);
        let mut step = vec![0.0f32; n];
        for (k, v) in step[..len].iter_mut().enumerate() {
            *v = p.dt[(i * p.dims.seqlen + t0 + k) * h + j] + bias;
        }
        let mut dstep = vec![0.0f32; n];
        let mut decay = vec![0.0f32; n];
        let a = s.splat(p.a[j]);
        for k in (0..len).step_by(S::LANES) {
            let (st, ds) = math::step_size(s, s.load(&step[k..]), p.softplus, p.limit);
            s.store(&mut step[k..], st);
            s.store(&mut dstep[k..], ds);
            s.store(&mut decay[k..], math::exp(s, s.mul(st, a)));
        }
        for k in 0..len {
            if p.resets(i, t0 + k) {
                decay[k] = 0.0;
            }
        }
        Steps { step, dstep, decay }
    }
}

/// What the forward kernel does: with or without the input term, and whether it
/// writes, adds or skips `y`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `S = decay S + x step B`, `y = S C`.
    Write,
    /// `S = decay S + x step B` only.
    StateOnly,
    /// `y += (prod decay) S C` with `S` the carried state, left unchanged: the fix-up
    /// of a chunk.
    CarryAdd,
}

/// Columns of `S` a kernel keeps in registers, by instruction set.
const fn col_block(level: SimdLevel) -> usize {
    match level {
        SimdLevel::Avx512 | SimdLevel::Neon => 16,
        SimdLevel::Avx2 => 8,
        SimdLevel::Scalar => 4,
    }
}

/// Where the forward of a head puts `y`.
enum YOut<'a> {
    /// Nothing (the state is all that is wanted).
    None,
    /// `S C` before `D` and the gate, (len x p).
    Pre(&'a mut [f32]),
    /// The finished `(S C + D x) * silu(z)` at this head's places of the (b, L, h, p)
    /// output.
    Final(&'a dyn OutSink),
    /// In `CarryAdd` mode: the carried state's contribution, times the gate, added to
    /// the finished outputs.
    FinalAdd(&'a dyn OutSink),
}

/// One head's forward over steps `t0..t1` from `state` (layout
/// [row block][n][lane]), leaving the end state there; `y` by `mode` and `out`.
#[inline(always)]
fn fwd_head<S: Simd>(
    s: S,
    p: &Problem<'_>,
    i: usize,
    j: usize,
    t0: usize,
    t1: usize,
    st: &Steps,
    mode: Mode,
    state: &mut [f32],
    mut out: YOut<'_>,
) {
    let l = S::LANES;
    let (n, hp) = (p.dims.dstate, p.dims.headdim);
    let mut len = t1 - t0;
    if mode == Mode::CarryAdd {
        // The carried state only matters up to the last step where it is not below
        // 1e-30 of itself; past it (typically most of a long chunk) there is no work.
        let mut cum = 1.0f32;
        let mut live = 0;
        for k in 0..len {
            cum *= st.decay[k];
            if cum.abs() >= 1e-30 {
                live = k + 1;
            }
        }
        len = live;
    }
    let (bc0, bcs) = p.bc_base(i, j, t0);
    let xs = p.dims.nheads * hp;
    let x0 = p.x_base(i, j, t0);
    let rs = Rescaled::new(st, if mode == Mode::CarryAdd { 0 } else { len });
    // Time blocks keep a block's B and C (TIME_BLOCK x N x 2 floats) and the x and y
    // buffers in cache while every row block and column block of the head walks it.
    let tbl = TIME_BLOCK.min(len);
    let mut xdt = vec![0.0f32; tbl * l];
    let mut ybuf = vec![0.0f32; tbl * l];
    let mut tmp = [0.0f32; MAX_LANES];
    for (qb, sblk) in state.chunks_mut(n * l).enumerate() {
        let q0 = qb * l;
        let nq = l.min(hp - q0);
        let mut cum = 1.0f32;
        for k0 in (0..len).step_by(TIME_BLOCK) {
            let bl = TIME_BLOCK.min(len - k0);
            let last_block = k0 + bl == len;
            if mode == Mode::CarryAdd {
                // This mode accumulates into the buffer from its first column on.
                ybuf.fill(0.0);
            } else {
                for kk in 0..bl {
                    let k = k0 + kk;
                    let xr = &p.x[x0 + k * xs + q0..];
                    if nq == l {
                        s.store(&mut xdt[kk * l..], s.mul(s.load(xr), s.splat(rs.xscale[k])));
                    } else {
                        for (d, &xv) in xdt[kk * l..kk * l + nq].iter_mut().zip(&xr[..nq]) {
                            *d = xv * rs.xscale[k];
                        }
                    }
                }
            }
            // The state stays rescaled between time blocks; the last one restores it.
            let scales = if mode == Mode::CarryAdd {
                (&rs.renorm[..], 1.0)
            } else {
                (&rs.renorm[k0..], if last_block { rs.c_end } else { 1.0 })
            };
            let nb = col_block(S::LEVEL);
            let mut n0 = 0;
            while n0 < n {
                let first = n0 == 0;
                let sb = &mut sblk[n0 * l..];
                let b = &p.b[bc0 + k0 * bcs + n0..];
                let c = &p.c[bc0 + k0 * bcs + n0..];
                let (xb, yb) = (&xdt[..], &mut ybuf[..]);
                if n - n0 >= nb {
                    match nb {
                        16 => block::<S, 16>(s, mode, first, sb, b, c, bcs, scales, xb, yb, bl),
                        8 => block::<S, 8>(s, mode, first, sb, b, c, bcs, scales, xb, yb, bl),
                        _ => block::<S, 4>(s, mode, first, sb, b, c, bcs, scales, xb, yb, bl),
                    }
                    n0 += nb;
                } else {
                    block::<S, 1>(s, mode, first, sb, b, c, bcs, scales, xb, yb, bl);
                    n0 += 1;
                }
            }
            let at = x0 + k0 * xs + q0;
            match &mut out {
                YOut::None => {}
                YOut::FinalAdd(o) => {
                    for kk in 0..bl {
                        let k = k0 + kk;
                        cum *= st.decay[k];
                        let e = x0 + k * xs + q0;
                        let mut v = s.mul(s.splat(cum), s.load(&ybuf[kk * l..]));
                        if let Some(z) = &p.z {
                            let zv = if nq == l {
                                s.load(&z[e..])
                            } else {
                                tmp[..nq].copy_from_slice(&z[e..e + nq]);
                                s.load(&tmp)
                            };
                            v = s.mul(v, math::silu(s, zv));
                        }
                        s.store(&mut ybuf[kk * l..], v);
                    }
                    // SAFETY: these are this head's channels q0..q0+nq at these steps of
                    // batch i; within one parallel pass every (batch, head, step) belongs
                    // to exactly one task.
                    unsafe { o.add(at, xs, nq, bl, &ybuf, l) };
                }
                YOut::Pre(y) => {
                    for kk in 0..bl {
                        let k = k0 + kk;
                        let dst = &mut y[k * hp + q0..k * hp + q0 + nq];
                        for (d, &v) in dst.iter_mut().zip(&ybuf[kk * l..kk * l + nq]) {
                            *d = v * rs.yscale[k];
                        }
                    }
                }
                YOut::Final(o) => {
                    for (qq, d) in tmp[..nq].iter_mut().enumerate() {
                        *d = p.skip(j, q0 + qq);
                    }
                    let skip = s.load(&tmp);
                    for kk in 0..bl {
                        let k = k0 + kk;
                        let e = x0 + k * xs + q0;
                        let xv = if nq == l {
                            s.load(&p.x[e..])
                        } else {
                            tmp[..nq].copy_from_slice(&p.x[e..e + nq]);
                            s.load(&tmp)
                        };
                        let y = s.mul(s.load(&ybuf[kk * l..]), s.splat(rs.yscale[k]));
                        let mut v = s.mul_add(skip, xv, y);
                        if let Some(z) = &p.z {
                            let zv = if nq == l {
                                s.load(&z[e..])
                            } else {
                                tmp[..nq].copy_from_slice(&z[e..e + nq]);
                                s.load(&tmp)
                            };
                            v = s.mul(v, math::silu(s, zv));
                        }
                        s.store(&mut ybuf[kk * l..], v);
                    }
                    // SAFETY: these are this head's channels q0..q0+nq at these steps of
                    // batch i; within one parallel pass every (batch, head, step) belongs
                    // to exactly one task, which writes it once.
                    unsafe { o.write(at, xs, nq, bl, &ybuf, l) };
                }
            }
        }
    }
}

/// `NB` columns of a block of rows over `len` steps, the columns in registers.
///
/// The columns hold the rescaled state `S / c` of [`Rescaled`]: a step is
/// `S += xdt B` (xdt already divided by `c`) and `y += S C`, after `S *= renorm[k]`
/// on the rare steps that fold `c` in; the end state is multiplied by `c_end`.
#[inline(always)]
fn block<S: Simd, const NB: usize>(
    s: S,
    mode: Mode,
    first: bool,
    sblk: &mut [f32],
    b: &[f32],
    c: &[f32],
    bcs: usize,
    (renorm, c_end): (&[f32], f32),
    xdt: &[f32],
    ybuf: &mut [f32],
    len: usize,
) {
    let l = S::LANES;
    let mut sv = [s.zero(); NB];
    for (n, v) in sv.iter_mut().enumerate() {
        *v = s.load(&sblk[n * l..]);
    }
    for k in 0..len {
        let bk = &b[k * bcs..k * bcs + NB];
        let ck = &c[k * bcs..k * bcs + NB];
        if mode == Mode::CarryAdd {
            // The carried state is the initial one scaled by the decays' product,
            // which the caller applies.
            let mut y0 = s.load(&ybuf[k * l..]);
            for n in 0..NB {
                y0 = s.mul_add(sv[n], s.splat(ck[n]), y0);
            }
            s.store(&mut ybuf[k * l..], y0);
            continue;
        }
        if renorm[k] != 1.0 {
            let r = s.splat(renorm[k]);
            for v in sv.iter_mut() {
                *v = s.mul(*v, r);
            }
        }
        let xv = s.load(&xdt[k * l..]);
        if mode == Mode::StateOnly {
            for n in 0..NB {
                sv[n] = s.mul_add(xv, s.splat(bk[n]), sv[n]);
            }
            continue;
        }
        // Two accumulators halve the dependency chain through `y`.
        let mut y0 = if first {
            s.zero()
        } else {
            s.load(&ybuf[k * l..])
        };
        let mut y1 = s.zero();
        for n in 0..NB {
            sv[n] = s.mul_add(xv, s.splat(bk[n]), sv[n]);
            if n % 2 == 0 {
                y0 = s.mul_add(sv[n], s.splat(ck[n]), y0);
            } else {
                y1 = s.mul_add(sv[n], s.splat(ck[n]), y1);
            }
        }
        s.store(&mut ybuf[k * l..], s.add(y0, y1));
    }
    let ce = s.splat(if mode == Mode::CarryAdd { 1.0 } else { c_end });
    for (n, v) in sv.iter().enumerate() {
        s.store(&mut sblk[n * l..], s.mul(*v, ce));
    }
}

/// The rescaled recurrence of one head over a range. With `c[k]` the product of the
/// decays since the last renormalisation, `S~ = S / c` obeys `S~ += (x step / c) B` and
/// `y = c (S~ C)`: two vector operations per state element and step instead of three
/// (the decay multiply is gone). `c` is kept within `[2^-20, 2^20]` by folding it into
/// `S~` (`renorm[k] = c` for that step, `c = 1` after) whenever it would leave; a reset
/// (decay 0) is such a fold, to zero.
struct Rescaled {
    /// `step / c` per step: multiplies `x`.
    xscale: Vec<f32>,
    /// `c` per step: multiplies `y`.
    yscale: Vec<f32>,
    /// The factor `S~` is multiplied by before the step (1 on most steps).
    renorm: Vec<f32>,
    /// `c` after the last step: `S = c_end S~`.
    c_end: f32,
}

impl Rescaled {
    const LO: f32 = 1.0 / 1_048_576.0;
    const HI: f32 = 1_048_576.0;

    fn new(st: &Steps, len: usize) -> Rescaled {
        let mut r = Rescaled {
            xscale: vec![0.0; len],
            yscale: vec![0.0; len],
            renorm: vec![1.0; len],
            c_end: 1.0,
        };
        let mut c = 1.0f32;
        for k in 0..len {
            let ck = c * st.decay[k];
            // Written so that a NaN folds too (and propagates).
            if !(Self::LO..=Self::HI).contains(&ck) {
                r.renorm[k] = ck;
                c = 1.0;
            } else {
                c = ck;
            }
            r.xscale[k] = st.step[k] / c;
            r.yscale[k] = c;
        }
        r.c_end = c;
        r
    }
}

/// (p, N) row-major -> [row block][n][lane], zero padded.
fn to_lanes(src: &[f32], dst: &mut [f32], hp: usize, n: usize, l: usize) {
    dst.fill(0.0);
    for q in 0..hp {
        let (qb, lane) = (q / l, q % l);
        for k in 0..n {
            dst[(qb * n + k) * l + lane] = src[q * n + k];
        }
    }
}

/// [row block][n][lane] -> (p, ld) row-major with row stride `ld >= N`.
fn from_lanes(src: &[f32], dst: &mut [f32], hp: usize, n: usize, l: usize, ld: usize) {
    for q in 0..hp {
        let (qb, lane) = (q / l, q % l);
        for k in 0..n {
            dst[q * ld + k] = src[(qb * n + k) * l + lane];
        }
    }
}

/// One head's initial state in lane layout.
fn init_lanes(p: &Problem<'_>, i: usize, j: usize, l: usize) -> Vec<f32> {
    let (hp, n) = (p.dims.headdim, p.dims.dstate);
    let mut out = vec![0.0f32; hp.div_ceil(l) * n * l];
    if let Some(init) = p.init {
        let base = (i * p.dims.nheads + j) * hp * n;
        to_lanes(&init[base..base + hp * n], &mut out, hp, n, l);
    }
    out
}

/// The product of the decays of a range: the carry factor of a chunk.
fn decay_product(st: &Steps, len: usize) -> f32 {
    st.decay[..len].iter().product()
}

struct Forward<'p, 'a> {
    par: &'p Par,
    p: &'p Problem<'a>,
    /// (b, L, h, p).
    out: &'p dyn OutSink,
    /// (b, h, p, N).
    last: &'p mut [f32],
}

impl Kernel for Forward<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        forward_impl(s, self.par, self.p, self.out, self.last);
    }
}

fn forward_impl<S: Simd>(s: S, par: &Par, p: &Problem<'_>, dst: &dyn OutSink, last: &mut [f32]) {
    let d = p.dims;
    let (heads, l, hp, n) = (d.batch * d.nheads, d.seqlen, d.headdim, d.dstate);
    let lanes = S::LANES;
    let chunk = par.time_chunk(heads, l);
    if chunk >= l {
        // One pass: each (batch, head) task writes its finished outputs in place.
        let tasks: Vec<_> = last.chunks_mut(hp * n).enumerate().collect();
        par.map(tasks, |(hd, fs)| {
            let (i, j) = (hd / d.nheads, hd % d.nheads);
            s.vectorize(
                #[inline(always)]
                || {
                    let st = Steps::new(s, p, i, j, 0, l);
                    let mut state = init_lanes(p, i, j, lanes);
                    fwd_head(
                        s,
                        p,
                        i,
                        j,
                        0,
                        l,
                        &st,
                        Mode::Write,
                        &mut state,
                        YOut::Final(dst),
                    );
                    from_lanes(&state, fs, hp, n, lanes, n);
                },
            )
        });
        return;
    }
    // The chunked scan: every chunk from a zero state (chunk 0 from the initial state)
    // writes its outputs, then the carry, then the fix-up adds the carried states'
    // contributions.
    let spans = chunks(l, chunk);
    let nc = spans.len();
    let tasks: Vec<usize> = (0..heads * nc).collect();
    let locals = par.map(tasks, |task| {
        let (hd, k) = (task / nc, task % nc);
        let (i, j) = (hd / d.nheads, hd % d.nheads);
        let (t0, t1) = spans[k];
        s.vectorize(
            #[inline(always)]
            || {
                let st = Steps::new(s, p, i, j, t0, t1);
                let mut state = if k == 0 {
                    init_lanes(p, i, j, lanes)
                } else {
                    vec![0.0f32; hp.div_ceil(lanes) * n * lanes]
                };
                fwd_head(
                    s,
                    p,
                    i,
                    j,
                    t0,
                    t1,
                    &st,
                    Mode::Write,
                    &mut state,
                    YOut::Final(dst),
                );
                (state, decay_product(&st, t1 - t0))
            },
        )
    });
    let mut fixups = Vec::new();
    for hd in 0..heads {
        let mut h = locals[hd * nc].0.clone();
        for k in 1..nc {
            fixups.push((hd, k, h.clone()));
            let (local, prod) = &locals[hd * nc + k];
            for (hv, lv) in h.iter_mut().zip(local) {
                *hv = prod * *hv + lv;
            }
        }
        from_lanes(
            &h,
            &mut last[hd * hp * n..(hd + 1) * hp * n],
            hp,
            n,
            lanes,
            n,
        );
    }
    par.map(fixups, |(hd, k, mut h)| {
        let (i, j) = (hd / d.nheads, hd % d.nheads);
        let (t0, t1) = spans[k];
        s.vectorize(
            #[inline(always)]
            || {
                let st = Steps::new(s, p, i, j, t0, t1);
                fwd_head(
                    s,
                    p,
                    i,
                    j,
                    t0,
                    t1,
                    &st,
                    Mode::CarryAdd,
                    &mut h,
                    YOut::FinalAdd(dst),
                );
            },
        )
    });
}

pub(crate) fn forward<T: Element>(
    be: &CpuSimd,
    args: &SsdArgs<'_, T>,
    out: &mut [T],
    final_states: Option<&mut [f32]>,
) -> Result<()> {
    let dims = args.validate_forward(out.len(), final_states.as_deref().map(<[f32]>::len))?;
    let p = Problem::new(be.isa.lanes(), args, dims);
    let mut last = vec![0.0f32; dims.batch * dims.nheads * dims.headdim * dims.dstate];
    let sink = Disjoint::new(out);
    be.isa.dispatch(Forward {
        par: &be.par,
        p: &p,
        out: &sink,
        last: &mut last,
    });
    if let Some(fs) = final_states {
        fs.copy_from_slice(&last);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Backward.

/// A backward task: heads `j0..j1` of batch `i` (one group) over steps `t0..t1`.
struct BwdTask<'o> {
    i: usize,
    j0: usize,
    j1: usize,
    t0: usize,
    t1: usize,
    /// Per head, the state before `t0` in lane layout.
    s_in: Vec<Vec<f32>>,
    /// Per head, the adjoint of the state at `t1 - 1` from later steps, (p, np).
    g_in: Vec<Vec<f32>>,
    /// (heads, len).
    ddt: &'o mut [f32],
}

/// Where the backward puts `dx` and `dz`: the finished gradients, in the storage type
/// and the (b, L, h, p) layout of the inputs, written by each task at its own heads
/// and steps.
#[derive(Clone, Copy)]
struct GradSinks<'o> {
    x: &'o dyn OutSink,
    /// `None` without `z`.
    z: Option<&'o dyn OutSink>,
}

/// A task's partial sums.
struct BwdPartial {
    /// Per head.
    da: Vec<f32>,
    dbias: Vec<f32>,
    /// Per head, `p` values (summed into one when `D` is per head).
    dd: Vec<f32>,
    /// (len, np) each.
    db: Vec<f32>,
    dc: Vec<f32>,
    /// Per head, the adjoint of the state before `t0`, (p, np).
    g_out: Vec<Vec<f32>>,
}

/// Per-(step, channel) inputs of one head over a range: `x`, `x * step` and `dy`.
struct HeadIo {
    x: Vec<f32>,
    dy: Vec<f32>,
}

#[inline(always)]
fn bwd_task<S: Simd>(
    s: S,
    p: &Problem<'_>,
    dout: &[f32],
    sinks: GradSinks<'_>,
    task: BwdTask<'_>,
) -> BwdPartial {
    let lanes = S::LANES;
    let d = p.dims;
    let (hp, n, np) = (d.headdim, d.dstate, p.np);
    let (t0, t1) = (task.t0, task.t1);
    let len = t1 - t0;
    let nsb = len.div_ceil(SUB_BLOCK);
    let blk = SUB_BLOCK.min(len);
    let nheads = task.j1 - task.j0;
    let (bc0, bcs) = p.bc_base(task.i, task.j0, t0);
    let mut part = BwdPartial {
        da: vec![0.0; nheads],
        dbias: vec![0.0; nheads],
        dd: vec![0.0; nheads * hp],
        db: vec![0.0; len * np],
        dc: vec![0.0; len * np],
        g_out: task.g_in,
    };
    let mut ckpt = vec![0.0f32; nsb * hp * np];
    // A head's initial state in row layout (the padding columns stay zero).
    let mut srow = vec![0.0f32; hp * np];
    let rows = bwd_rows_per_pass(S::LEVEL, np / lanes);
    let mut hs = vec![0.0f32; blk * rows * np];
    let mut dgs = vec![0.0f32; len];
    let mut dxgb = vec![0.0f32; len];
    let mut vgs = vec![0.0f32; len * lanes];
    let mut vgb = vec![0.0f32; rows * blk * lanes];
    let mut gbs = vec![0.0f32; blk];
    let mut skipv = vec![0.0f32; pad(hp, lanes)];
    let mut ddv = vec![0.0f32; pad(hp, lanes)];
    let mut io = HeadIo {
        x: vec![0.0; len * hp],
        dy: vec![0.0; len * hp],
    };
    // B and C padded to np per step, for the row-wise kernels.
    // (When N is whole vectors they are read in place, `bcs` apart.)
    let (bpad, cpad, bs) = if n == np {
        (Cow::Borrowed(&p.b[bc0..]), Cow::Borrowed(&p.c[bc0..]), bcs)
    } else {
        let mut bpad = vec![0.0f32; len * np];
        let mut cpad = vec![0.0f32; len * np];
        for k in 0..len {
            bpad[k * np..k * np + n].copy_from_slice(&p.b[bc0 + k * bcs..bc0 + k * bcs + n]);
            cpad[k * np..k * np + n].copy_from_slice(&p.c[bc0 + k * bcs..bc0 + k * bcs + n]);
        }
        (Cow::Owned(bpad), Cow::Owned(cpad), np)
    };
    // One head's dx and dz, (len, p), reused by the task's heads: every element is
    // written before it is read.
    let mut dxb = vec![0.0f32; len * hp];
    let mut dzb = vec![0.0f32; if p.z.is_some() { len * hp } else { 0 }];
    for (h, ddt) in task.ddt.chunks_mut(len).enumerate() {
        let dx = &mut dxb[..];
        let mut dz = if p.z.is_some() {
            Some(&mut dzb[..])
        } else {
            None
        };
        let j = task.j0 + h;
        let i = task.i;
        let st = Steps::new(s, p, i, j, t0, t1);
        let a = p.a[j];
        let x0 = p.x_base(i, j, t0);
        let xs = d.nheads * hp;
        for k in 0..len {
            io.x[k * hp..(k + 1) * hp].copy_from_slice(&p.x[x0 + k * xs..x0 + k * xs + hp]);
            io.dy[k * hp..(k + 1) * hp].copy_from_slice(&dout[x0 + k * xs..x0 + k * xs + hp]);
        }
        // Phase 1: checkpoints, and `y` (before D and the gate) into dz for the gate's
        // gradient. Without the gate the checkpoints come from the row kernels'
        // recurrence, straight in the row layout phase 2 reads (no transposes).
        let by_rows = dz.is_none() && matches!(np / lanes, 1 | 2 | 4 | 8);
        if by_rows {
            from_lanes(&task.s_in[h], &mut srow, hp, n, lanes, np);
            let mut q0 = 0;
            while q0 < hp {
                let r = if hp - q0 >= rows { rows } else { 1 };
                ckpt_rows(
                    s,
                    r,
                    &srow[q0 * np..(q0 + r) * np],
                    &mut ckpt,
                    (&st, &io),
                    (q0, hp),
                    (&bpad, bs),
                    len,
                );
                q0 += r;
            }
        }
        let mut state = task.s_in[h].clone();
        for sb in (0..nsb).filter(|_| !by_rows) {
            let (tb0, tb1) = (t0 + sb * SUB_BLOCK, (t0 + (sb + 1) * SUB_BLOCK).min(t1));
            from_lanes(
                &state,
                &mut ckpt[sb * hp * np..(sb + 1) * hp * np],
                hp,
                n,
                lanes,
                np,
            );
            let sst = Steps {
                step: st.step[tb0 - t0..tb1 - t0].to_vec(),
                dstep: Vec::new(),
                decay: st.decay[tb0 - t0..tb1 - t0].to_vec(),
            };
            match dz.as_deref_mut() {
                Some(dz) => fwd_head(
                    s,
                    p,
                    i,
                    j,
                    tb0,
                    tb1,
                    &sst,
                    Mode::Write,
                    &mut state,
                    YOut::Pre(&mut dz[(tb0 - t0) * hp..]),
                ),
                None => fwd_head(
                    s,
                    p,
                    i,
                    j,
                    tb0,
                    tb1,
                    &sst,
                    Mode::StateOnly,
                    &mut state,
                    YOut::None,
                ),
            }
        }
        // The gate: dy = dout silu(z); dz = dout (y + D x) silu'(z).
        if let (Some(z), Some(dz)) = (&p.z, &mut dz) {
            let mut zt = [0.0f32; MAX_LANES];
            let mut yt = [0.0f32; MAX_LANES];
            let mut xt = [0.0f32; MAX_LANES];
            let mut gt = [0.0f32; MAX_LANES];
            for k in 0..len {
                for q0 in (0..hp).step_by(lanes) {
                    let nq = (hp - q0).min(lanes);
                    let e = k * hp + q0;
                    zt[..nq].copy_from_slice(&z[x0 + k * xs + q0..x0 + k * xs + q0 + nq]);
                    yt[..nq].copy_from_slice(&dz[e..e + nq]);
                    for (qq, v) in xt[..nq].iter_mut().enumerate() {
                        *v = p.skip(j, q0 + qq) * io.x[e + qq];
                    }
                    gt[..nq].copy_from_slice(&io.dy[e..e + nq]);
                    let (sz, dsz) = math::silu_and_grad(s, s.load(&zt));
                    let go = s.load(&gt);
                    let y = s.add(s.load(&yt), s.load(&xt));
                    s.store(&mut yt, s.mul(s.mul(go, y), dsz));
                    s.store(&mut gt, s.mul(go, sz));
                    dz[e..e + nq].copy_from_slice(&yt[..nq]);
                    io.dy[e..e + nq].copy_from_slice(&gt[..nq]);
                }
            }
        }
        // Phase 2: back through the blocks, `rows` rows of the state at a time.
        vgs.fill(0.0);
        let g = &mut part.g_out[h];
        for sb in (0..nsb).rev() {
            let (kb0, kb1) = (sb * SUB_BLOCK, ((sb + 1) * SUB_BLOCK).min(len));
            let mut q0 = 0;
            while q0 < hp {
                let r = if hp - q0 >= rows { rows } else { 1 };
                bwd_rows(
                    s,
                    r,
                    &ckpt[(sb * hp + q0) * np..(sb * hp + q0 + r) * np],
                    &mut g[q0 * np..(q0 + r) * np],
                    &st,
                    &io,
                    q0,
                    hp,
                    (&bpad, &cpad, bs),
                    &mut hs[..blk * r * np],
                    (&mut part.db, &mut part.dc),
                    (&mut vgs, &mut vgb[..r * blk * lanes]),
                    kb0,
                    kb1,
                );
                // `sum_n g B` per row and step goes to dx for now; the pass below
                // finishes it.
                for rr in 0..r {
                    let vr = &vgb[rr * blk * lanes..];
                    s.reduce_sums(&vr[..(kb1 - kb0) * lanes], &mut gbs[..kb1 - kb0]);
                    for (k, &gb) in (kb0..kb1).zip(&gbs[..kb1 - kb0]) {
                        dx[k * hp + q0 + rr] = gb;
                    }
                }
                q0 += r;
            }
        }
        // dx = step gb + D dy, and the sums over channels (`x gb`, for the step's
        // gradient) and over steps (`dy x`, for D's), vectorised across channels.
        for (q, v) in skipv[..hp].iter_mut().enumerate() {
            *v = p.skip(j, q);
        }
        ddv.fill(0.0);
        let full = hp - hp % lanes;
        for k in 0..len {
            let row = k * hp;
            let step = s.splat(st.step[k]);
            let mut acc = s.zero();
            for q in (0..full).step_by(lanes) {
                let e = row + q;
                let gb = s.load(&dx[e..]);
                let xv = s.load(&io.x[e..]);
                let dyv = s.load(&io.dy[e..]);
                acc = s.mul_add(xv, gb, acc);
                let v = s.mul_add(step, gb, s.mul(s.load(&skipv[q..]), dyv));
                s.store(&mut dx[e..], v);
                let d = s.mul_add(dyv, xv, s.load(&ddv[q..]));
                s.store(&mut ddv[q..], d);
            }
            let mut xgb = s.reduce_sum(acc);
            for q in full..hp {
                let e = row + q;
                let gb = dx[e];
                xgb += io.x[e] * gb;
                dx[e] = st.step[k] * gb + skipv[q] * io.dy[e];
                ddv[q] += io.dy[e] * io.x[e];
            }
            dxgb[k] = xgb;
        }
        for (dd, &v) in part.dd[h * hp..(h + 1) * hp].iter_mut().zip(&ddv[..hp]) {
            *dd += v;
        }
        s.reduce_sums(&vgs, &mut dgs);
        for k in 0..len {
            let draw = (st.decay[k] * a * dgs[k] + dxgb[k]) * st.dstep[k];
            ddt[k] = draw;
            part.dbias[h] += draw;
            part.da[h] += st.decay[k] * st.step[k] * dgs[k];
        }
        // SAFETY: these are head j's channels at steps t0..t1 of batch i; the backward
        // tasks split (batch, head, step) disjointly, and each task writes each of its
        // heads once.
        unsafe { sinks.x.write(x0, xs, hp, len, dx, hp) };
        if let (Some(o), Some(dz)) = (sinks.z, dz) {
            // SAFETY: as for dx just above.
            unsafe { o.write(x0, xs, hp, len, dz, hp) };
        }
    }
    part
}

/// Rows of the state the backward walks together, for `nv` vectors per row: the
/// rows share the loads of `B` and `C` and one read-modify-write of `dB` and `dC`
/// per step, and their adjoints stay in registers (`rows x nv` of them, half the
/// register file). 1 where the row width has no fixed kernel.
const fn bwd_rows_per_pass(level: SimdLevel, nv: usize) -> usize {
    let budget = match level {
        SimdLevel::Avx512 | SimdLevel::Neon => 16,
        SimdLevel::Avx2 | SimdLevel::Scalar => 8,
    };
    match nv {
        1 | 2 | 4 | 8 => {
            let r = budget / nv;
            if r >= 4 {
                4
            } else if r >= 2 {
                2
            } else {
                1
            }
        }
        _ => 1,
    }
}

/// The backward of rows `q..q + rows` of one head over steps `kb0..kb1` of the
/// task's range: recomputes the rows' states from `h0` (the rows' checkpoints,
/// `rows x np`), adding `dC[t] += dy[t] S[t]` while each state is in a register, then
/// walks back with the adjoints `g` (`rows x np`), accumulating `dB` (per step, np
/// wide; the walk reads only the previous states), adding the vectors of `sum_n g S[t-1]` into
/// `vgs` (per step of the range) and leaving those of `sum_n g B` in `vgb` (row `r`
/// at `r * vgb.len() / rows`, per step of the block) for bulk lane sums. The sums
/// over rows run in row order, as one row at a time would.
#[inline(always)]
fn bwd_rows<S: Simd>(
    s: S,
    rows: usize,
    h0: &[f32],
    g: &mut [f32],
    st: &Steps,
    io: &HeadIo,
    q: usize,
    hp: usize,
    (bpad, cpad, bs): (&[f32], &[f32], usize),
    hs: &mut [f32],
    (db, dc): (&mut [f32], &mut [f32]),
    (vgs, vgb): (&mut [f32], &mut [f32]),
    kb0: usize,
    kb1: usize,
) {
    let np = h0.len() / rows;
    let nv = np / S::LANES;
    if rows > 1 {
        let args = (
            h0,
            &mut *g,
            st,
            io,
            q,
            hp,
            (bpad, cpad, bs),
            &mut *hs,
            (&mut *db, &mut *dc),
            (&mut *vgs, &mut *vgb),
            kb0,
            kb1,
        );
        match (nv, rows) {
            (1, 4) => return bwd_rows_fixed::<S, 1, 4>(s, args),
            (2, 4) => return bwd_rows_fixed::<S, 2, 4>(s, args),
            (4, 4) => return bwd_rows_fixed::<S, 4, 4>(s, args),
            (1, 2) => return bwd_rows_fixed::<S, 1, 2>(s, args),
            (2, 2) => return bwd_rows_fixed::<S, 2, 2>(s, args),
            (4, 2) => return bwd_rows_fixed::<S, 4, 2>(s, args),
            (8, 2) => return bwd_rows_fixed::<S, 8, 2>(s, args),
            _ => {}
        }
    }
    // One row at a time (in row order, so the sums are the same).
    let vstride = vgb.len() / rows;
    for r in 0..rows {
        let args = (
            &h0[r * np..(r + 1) * np],
            &mut g[r * np..(r + 1) * np],
            st,
            io,
            q + r,
            hp,
            (bpad, cpad, bs),
            &mut *hs,
            (&mut *db, &mut *dc),
            (&mut *vgs, &mut vgb[r * vstride..(r + 1) * vstride]),
            kb0,
            kb1,
        );
        match nv {
            1 => bwd_rows_fixed::<S, 1, 1>(s, args),
            2 => bwd_rows_fixed::<S, 2, 1>(s, args),
            4 => bwd_rows_fixed::<S, 4, 1>(s, args),
            8 => bwd_rows_fixed::<S, 8, 1>(s, args),
            _ => bwd_row_dyn(s, args),
        }
    }
}

/// The checkpoints of rows `q..q + rows` of one head (`h0`, `rows x np`, the state
/// before the range) every [`SUB_BLOCK`] steps into `ckpt` ([block][p][np]), by the
/// same recurrence as [`bwd_rows_fixed`]'s recompute. Needs a fixed kernel's width.
#[inline(always)]
fn ckpt_rows<S: Simd>(
    s: S,
    rows: usize,
    h0: &[f32],
    ckpt: &mut [f32],
    (st, io): (&Steps, &HeadIo),
    (q, hp): (usize, usize),
    (bpad, bs): (&[f32], usize),
    len: usize,
) {
    let np = h0.len() / rows;
    let args = (h0, ckpt, (st, io), (q, hp), (bpad, bs), len);
    match (np / S::LANES, rows) {
        (1, 4) => ckpt_rows_fixed::<S, 1, 4>(s, args),
        (2, 4) => ckpt_rows_fixed::<S, 2, 4>(s, args),
        (4, 4) => ckpt_rows_fixed::<S, 4, 4>(s, args),
        (1, 2) => ckpt_rows_fixed::<S, 1, 2>(s, args),
        (2, 2) => ckpt_rows_fixed::<S, 2, 2>(s, args),
        (4, 2) => ckpt_rows_fixed::<S, 4, 2>(s, args),
        (8, 2) => ckpt_rows_fixed::<S, 8, 2>(s, args),
        _ => {
            // One row at a time.
            let (h0, ckpt) = (args.0, args.1);
            for r in 0..rows {
                let a = (
                    &h0[r * np..(r + 1) * np],
                    &mut *ckpt,
                    (st, io),
                    (q + r, hp),
                    (bpad, bs),
                    len,
                );
                match np / S::LANES {
                    1 => ckpt_rows_fixed::<S, 1, 1>(s, a),
                    2 => ckpt_rows_fixed::<S, 2, 1>(s, a),
                    4 => ckpt_rows_fixed::<S, 4, 1>(s, a),
                    _ => ckpt_rows_fixed::<S, 8, 1>(s, a),
                }
            }
        }
    }
}

/// The arguments of [`ckpt_rows`]' kernels.
type CkptArgs<'x> = (
    &'x [f32],
    &'x mut [f32],
    (&'x Steps, &'x HeadIo),
    (usize, usize),
    (&'x [f32], usize),
    usize,
);

/// [`ckpt_rows`] for `R` rows of `NV` vectors, the rows' states in registers.
#[inline(always)]
fn ckpt_rows_fixed<S: Simd, const NV: usize, const R: usize>(s: S, args: CkptArgs<'_>) {
    let (h0, ckpt, (st, io), (q, hp), (bpad, bs), len) = args;
    let l = S::LANES;
    let w = NV * l;
    let mut hv = [[s.zero(); NV]; R];
    for (r, hr) in hv.iter_mut().enumerate() {
        for (v, x) in hr.iter_mut().enumerate() {
            *x = s.load(&h0[r * w + v * l..]);
        }
    }
    for (sb, k0) in (0..len).step_by(SUB_BLOCK).enumerate() {
        let c = &mut ckpt[(sb * hp + q) * w..(sb * hp + q + R) * w];
        for (r, hr) in hv.iter().enumerate() {
            for (v, x) in hr.iter().enumerate() {
                s.store(&mut c[r * w + v * l..], *x);
            }
        }
        if k0 + SUB_BLOCK >= len {
            // The state after the range is not needed.
            break;
        }
        for k in k0..k0 + SUB_BLOCK {
            let dec = s.splat(st.decay[k]);
            let mut xdt = [s.zero(); R];
            for (r, x) in xdt.iter_mut().enumerate() {
                *x = s.splat(io.x[k * hp + q + r] * st.step[k]);
            }
            let bk = &bpad[k * bs..k * bs + w];
            for v in 0..NV {
                let b = s.load(&bk[v * l..]);
                for r in 0..R {
                    hv[r][v] = s.mul_add(xdt[r], b, s.mul(dec, hv[r][v]));
                }
            }
        }
    }
}

/// The arguments of [`bwd_rows`]' kernels, as one tuple.
type RowArgs<'x> = (
    &'x [f32],
    &'x mut [f32],
    &'x Steps,
    &'x HeadIo,
    usize,
    usize,
    (&'x [f32], &'x [f32], usize),
    &'x mut [f32],
    (&'x mut [f32], &'x mut [f32]),
    (&'x mut [f32], &'x mut [f32]),
    usize,
    usize,
);

/// [`bwd_rows`] for `R` rows of `NV` vectors: the rows' states and adjoints stay in
/// registers; the recomputed states go to `hs` as [step][row][np].
#[inline(always)]
fn bwd_rows_fixed<S: Simd, const NV: usize, const R: usize>(s: S, args: RowArgs<'_>) {
    let (h0, g, st, io, q, hp, (bpad, cpad, bs), hs, (db, dc), (vgs, vgb), kb0, kb1) = args;
    let l = S::LANES;
    let w = NV * l;
    let rw = R * w;
    let vstride = vgb.len() / R;
    let mut hv = [[s.zero(); NV]; R];
    for (r, hr) in hv.iter_mut().enumerate() {
        for (v, x) in hr.iter_mut().enumerate() {
            *x = s.load(&h0[r * w + v * l..]);
        }
    }
    for k in kb0..kb1 {
        let dec = s.splat(st.decay[k]);
        let mut xdt = [s.zero(); R];
        let mut dy = [s.zero(); R];
        for r in 0..R {
            let e = k * hp + q + r;
            xdt[r] = s.splat(io.x[e] * st.step[k]);
            dy[r] = s.splat(io.dy[e]);
        }
        let bk = &bpad[k * bs..k * bs + w];
        let cur = &mut hs[(k - kb0) * rw..(k - kb0 + 1) * rw];
        let dck = &mut dc[k * w..(k + 1) * w];
        for v in 0..NV {
            let b = s.load(&bk[v * l..]);
            let mut dcv = s.load(&dck[v * l..]);
            for r in 0..R {
                hv[r][v] = s.mul_add(xdt[r], b, s.mul(dec, hv[r][v]));
                s.store(&mut cur[r * w + v * l..], hv[r][v]);
                // dC[k] += dy[k] S[k], while the state is in a register.
                dcv = s.mul_add(dy[r], hv[r][v], dcv);
            }
            s.store(&mut dck[v * l..], dcv);
        }
    }
    let mut gv = [[s.zero(); NV]; R];
    for (r, gr) in gv.iter_mut().enumerate() {
        for (v, x) in gr.iter_mut().enumerate() {
            *x = s.load(&g[r * w + v * l..]);
        }
    }
    for k in (kb0..kb1).rev() {
        let kk = k - kb0;
        let dec = s.splat(st.decay[k]);
        let mut dy = [s.zero(); R];
        let mut xdt = [s.zero(); R];
        for r in 0..R {
            let e = k * hp + q + r;
            dy[r] = s.splat(io.dy[e]);
            xdt[r] = s.splat(io.x[e] * st.step[k]);
        }
        let bk = &bpad[k * bs..k * bs + w];
        let ck = &cpad[k * bs..k * bs + w];
        let prev: &[f32] = if kk == 0 {
            &h0[..rw]
        } else {
            &hs[(kk - 1) * rw..kk * rw]
        };
        let dbk = &mut db[k * w..(k + 1) * w];
        let mut acc_gs = [s.zero(); R];
        let mut acc_gb = [s.zero(); R];
        for v in 0..NV {
            let c = s.load(&ck[v * l..]);
            let b = s.load(&bk[v * l..]);
            let mut dbv = s.load(&dbk[v * l..]);
            for r in 0..R {
                let g1 = s.mul_add(dy[r], c, gv[r][v]);
                acc_gs[r] = s.mul_add(g1, s.load(&prev[r * w + v * l..]), acc_gs[r]);
                acc_gb[r] = s.mul_add(g1, b, acc_gb[r]);
                dbv = s.mul_add(g1, xdt[r], dbv);
                gv[r][v] = s.mul(g1, dec);
            }
            s.store(&mut dbk[v * l..], dbv);
        }
        let mut gs = s.load(&vgs[k * l..]);
        for a in acc_gs {
            gs = s.add(gs, a);
        }
        s.store(&mut vgs[k * l..], gs);
        for (r, a) in acc_gb.into_iter().enumerate() {
            s.store(&mut vgb[r * vstride + kk * l..], a);
        }
    }
    for (r, gr) in gv.iter().enumerate() {
        for (v, x) in gr.iter().enumerate() {
            s.store(&mut g[r * w + v * l..], *x);
        }
    }
}

/// [`bwd_rows`] for one row of any number of vectors, kept in memory.
#[inline(always)]
fn bwd_row_dyn<S: Simd>(s: S, args: RowArgs<'_>) {
    let (h0, g, st, io, q, hp, (bpad, cpad, bs), hs, (db, dc), (vgs, vgb), kb0, kb1) = args;
    let np = h0.len();
    let l = S::LANES;
    for k in kb0..kb1 {
        let dec = s.splat(st.decay[k]);
        let xdt = s.splat(io.x[k * hp + q] * st.step[k]);
        let dy = s.splat(io.dy[k * hp + q]);
        let bk = &bpad[k * bs..k * bs + np];
        let dck = &mut dc[k * np..(k + 1) * np];
        let kk = k - kb0;
        let (prev, cur) = hs.split_at_mut(kk * np);
        let hp_: &[f32] = if kk == 0 { h0 } else { &prev[(kk - 1) * np..] };
        for v in (0..np).step_by(l) {
            let hv = s.mul_add(xdt, s.load(&bk[v..]), s.mul(dec, s.load(&hp_[v..])));
            s.store(&mut cur[v..], hv);
            let dcv = s.mul_add(dy, hv, s.load(&dck[v..]));
            s.store(&mut dck[v..], dcv);
        }
    }
    for k in (kb0..kb1).rev() {
        let kk = k - kb0;
        let e = k * hp + q;
        let dy = s.splat(io.dy[e]);
        let xdt = s.splat(io.x[e] * st.step[k]);
        let dec = s.splat(st.decay[k]);
        let bk = &bpad[k * bs..k * bs + np];
        let ck = &cpad[k * bs..k * bs + np];
        let hp_: &[f32] = if kk == 0 {
            h0
        } else {
            &hs[(kk - 1) * np..kk * np]
        };
        let dbk = &mut db[k * np..(k + 1) * np];
        let mut acc_gs = s.zero();
        let mut acc_gb = s.zero();
        for v in (0..np).step_by(l) {
            let gv = s.mul_add(dy, s.load(&ck[v..]), s.load(&g[v..]));
            acc_gs = s.mul_add(gv, s.load(&hp_[v..]), acc_gs);
            acc_gb = s.mul_add(gv, s.load(&bk[v..]), acc_gb);
            let dbv = s.mul_add(gv, xdt, s.load(&dbk[v..]));
            s.store(&mut dbk[v..], dbv);
            s.store(&mut g[v..], s.mul(gv, dec));
        }
        let gs = s.add(s.load(&vgs[k * l..]), acc_gs);
        s.store(&mut vgs[k * l..], gs);
        s.store(&mut vgb[kk * l..], acc_gb);
    }
}

/// The local adjoint of one head over a chunk, walked back from zero:
/// `g = (g + dy C) * decay`; (p, np).
#[inline(always)]
fn adjoint_local<S: Simd>(
    s: S,
    p: &Problem<'_>,
    dout: &[f32],
    i: usize,
    j: usize,
    t0: usize,
    t1: usize,
) -> Vec<f32> {
    let d = p.dims;
    let (hp, n, np) = (d.headdim, d.dstate, p.np);
    let st = Steps::new(s, p, i, j, t0, t1);
    let (bc0, bcs) = p.bc_base(i, j, t0);
    let x0 = p.x_base(i, j, t0);
    let xs = d.nheads * hp;
    let mut g = vec![0.0f32; hp * np];
    let mut crow = vec![0.0f32; np];
    let mut tmp = [0.0f32; MAX_LANES];
    let mut dy = vec![0.0f32; pad(hp, MAX_LANES)];
    for k in (0..t1 - t0).rev() {
        crow[..n].copy_from_slice(&p.c[bc0 + k * bcs..bc0 + k * bcs + n]);
        dy[..hp].copy_from_slice(&dout[x0 + k * xs..x0 + k * xs + hp]);
        if let Some(z) = &p.z {
            for q0 in (0..hp).step_by(S::LANES) {
                let nq = (hp - q0).min(S::LANES);
                tmp[..nq].copy_from_slice(&z[x0 + k * xs + q0..x0 + k * xs + q0 + nq]);
                let v = s.mul(s.load(&dy[q0..]), math::silu(s, s.load(&tmp)));
                s.store(&mut dy[q0..], v);
            }
        }
        let dec = s.splat(st.decay[k]);
        for q in 0..hp {
            let vdy = s.splat(dy[q]);
            let gq = &mut g[q * np..(q + 1) * np];
            for v in (0..np).step_by(S::LANES) {
                let gv = s.mul_add(vdy, s.load(&crow[v..]), s.load(&gq[v..]));
                s.store(&mut gq[v..], s.mul(gv, dec));
            }
        }
    }
    g
}

struct Backward<'p, 'a> {
    par: &'p Par,
    p: &'p Problem<'a>,
    dout: &'p [f32],
    dfinal: Option<&'p [f32]>,
    sinks: GradSinks<'p>,
    /// (b, h, L).
    ddt: &'p mut [f32],
}

/// (i, j0, j1, t0, t1) of a backward task.
type TaskKey = (usize, usize, usize, usize, usize);
/// A backward task before its output slices: its key, states in and adjoints in.
type TaskSpec = (TaskKey, Vec<Vec<f32>>, Vec<Vec<f32>>);

impl Kernel for Backward<'_, '_> {
    type Output = Vec<(TaskKey, BwdPartial)>;
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Self::Output {
        backward_impl(s, self)
    }
}

fn backward_impl<S: Simd>(s: S, k: Backward<'_, '_>) -> Vec<(TaskKey, BwdPartial)> {
    let (par, p) = (k.par, k.p);
    let d = p.dims;
    let (batch, nh, l, hp, n, np) = (d.batch, d.nheads, d.seqlen, d.headdim, d.dstate, p.np);
    let lanes = S::LANES;
    let heads = batch * nh;
    let chunk = par.time_chunk(heads, l);
    let g_final = |hd: usize| {
        let mut g = vec![0.0f32; hp * np];
        if let Some(df) = k.dfinal {
            for q in 0..hp {
                let src = &df[(hd * hp + q) * n..(hd * hp + q + 1) * n];
                g[q * np..q * np + n].copy_from_slice(src);
            }
        }
        g
    };
    let mut specs: Vec<TaskSpec> = Vec::new();
    if chunk >= l {
        let per_group = nh / d.ngroups;
        let blk = par.reduce_block(heads);
        for i in 0..batch {
            let mut j0 = 0;
            while j0 < nh {
                let j1 = (j0 + blk).min((j0 / per_group + 1) * per_group);
                let s_in = (j0..j1).map(|j| init_lanes(p, i, j, lanes)).collect();
                let g_in = (j0..j1).map(|j| g_final(i * nh + j)).collect();
                specs.push(((i, j0, j1, 0, l), s_in, g_in));
                j0 = j1;
            }
        }
    } else {
        let spans = chunks(l, chunk);
        let nc = spans.len();
        let items: Vec<usize> = (0..heads * nc).collect();
        let locals = par.map(items, |task| {
            let (hd, kk) = (task / nc, task % nc);
            let (i, j) = (hd / nh, hd % nh);
            let (t0, t1) = spans[kk];
            s.vectorize(
                #[inline(always)]
                || {
                    let st = Steps::new(s, p, i, j, t0, t1);
                    let mut state = if kk == 0 {
                        init_lanes(p, i, j, lanes)
                    } else {
                        vec![0.0f32; hp.div_ceil(lanes) * n * lanes]
                    };
                    fwd_head(
                        s,
                        p,
                        i,
                        j,
                        t0,
                        t1,
                        &st,
                        Mode::StateOnly,
                        &mut state,
                        YOut::None,
                    );
                    let g = if kk > 0 {
                        adjoint_local(s, p, k.dout, i, j, t0, t1)
                    } else {
                        Vec::new()
                    };
                    (state, decay_product(&st, t1 - t0), g)
                },
            )
        });
        for hd in 0..heads {
            let (i, j) = (hd / nh, hd % nh);
            let row = &locals[hd * nc..(hd + 1) * nc];
            let mut s_in = Vec::with_capacity(nc);
            let mut h = init_lanes(p, i, j, lanes);
            for kk in 0..nc {
                s_in.push(h.clone());
                let (local, prod, _) = &row[kk];
                if kk == 0 {
                    h.clone_from(local);
                } else {
                    for (hv, lv) in h.iter_mut().zip(local) {
                        *hv = prod * *hv + lv;
                    }
                }
            }
            let mut g_in = vec![Vec::new(); nc];
            let mut g = g_final(hd);
            for kk in (0..nc).rev() {
                g_in[kk] = g.clone();
                if kk > 0 {
                    let (_, prod, local) = &row[kk];
                    for (gv, lv) in g.iter_mut().zip(local) {
                        *gv = prod * *gv + lv;
                    }
                }
            }
            for (kk, (sv, gv)) in s_in.into_iter().zip(g_in).enumerate() {
                let (t0, t1) = spans[kk];
                specs.push(((i, j, j + 1, t0, t1), vec![sv], vec![gv]));
            }
        }
    }
    let lens: Vec<usize> = specs
        .iter()
        .map(|(key, _, _)| (key.2 - key.1) * (key.4 - key.3))
        .collect();
    let ddt = split_mut(k.ddt, lens.iter().copied());
    let tasks: Vec<_> = specs
        .into_iter()
        .zip(ddt)
        .map(|((key, s_in, g_in), ddt)| {
            (
                key,
                BwdTask {
                    i: key.0,
                    j0: key.1,
                    j1: key.2,
                    t0: key.3,
                    t1: key.4,
                    s_in,
                    g_in,
                    ddt,
                },
            )
        })
        .collect();
    let (dout, sinks) = (k.dout, k.sinks);
    par.map(tasks, |(key, task)| {
        let part = s.vectorize(
            #[inline(always)]
            || bwd_task(s, p, dout, sinks, task),
        );
        (key, part)
    })
}

/// (b, h, L, w) -> (b, L, h, w), rounded into the storage type.
fn unpermute<T: Element>(src: &[f32], d: &SsdDims, w: usize, out: &mut [T]) {
    let (b, l, h) = (d.batch, d.seqlen, d.nheads);
    for i in 0..b {
        for j in 0..h {
            for t in 0..l {
                let s0 = ((i * h + j) * l + t) * w;
                let d0 = ((i * l + t) * h + j) * w;
                for q in 0..w {
                    out[d0 + q] = T::from_f32(src[s0 + q]);
                }
            }
        }
    }
}

/// Steps per item of the parallel `dB` / `dC` reduction.
const REDUCE_STEPS: usize = 256;

/// `dst += src`, element by element.
#[inline]
fn add_into(dst: &mut [f32], src: &[f32]) {
    for (o, v) in dst.iter_mut().zip(src) {
        *o += v;
    }
}

pub(crate) fn backward<T: Element>(
    be: &CpuSimd,
    args: &SsdArgs<'_, T>,
    dout: &[T],
    dfinal_states: Option<&[f32]>,
) -> Result<SsdGrads<T>> {
    let mut grads = SsdGrads::default();
    backward_into(be, args, dout, dfinal_states, &mut grads)?;
    Ok(grads)
}

/// The backward into `grads`, sized here. `backward` passes empty ones; `CpuSimd` keeps
/// the trait's default `ssd_backward_into` (the by-value call, moved in): writing into the
/// caller's reused vectors measured no faster on 2 cores and 15-18% slower on 16
/// (NOTES.md, fifty-third session).
pub(crate) fn backward_into<T: Element>(
    be: &CpuSimd,
    args: &SsdArgs<'_, T>,
    dout: &[T],
    dfinal_states: Option<&[f32]>,
    grads: &mut SsdGrads<T>,
) -> Result<()> {
    let dims = args.validate_backward(dout.len(), dfinal_states.map(<[f32]>::len))?;
    let p = Problem::new(be.isa.lanes(), args, dims);
    let d = dims;
    let (batch, l, nh, hp, g, n, np) = (
        d.batch, d.seqlen, d.nheads, d.headdim, d.ngroups, d.dstate, p.np,
    );
    let dout = to_f32(dout);
    let io = batch * l * nh * hp;
    // dx and dz: every value written by the tasks' sinks.
    size_for_overwrite(&mut grads.x, io);
    match args.z {
        Some(_) => size_for_overwrite(grads.z.get_or_insert_with(Vec::new), io),
        None => grads.z = None,
    }
    let mut ddt = scratch::zeroed::<f32>(batch * l * nh);
    let parts = {
        let x_sink = Disjoint::new(&mut grads.x);
        let z_sink = Disjoint::new(grads.z.as_deref_mut().unwrap_or(&mut []));
        be.isa.dispatch(Backward {
            par: &be.par,
            p: &p,
            dout: &dout,
            dfinal: dfinal_states,
            sinks: GradSinks {
                x: &x_sink,
                z: p.z.as_ref().map(|_| &z_sink as &dyn OutSink),
            },
            ddt: &mut ddt,
        })
    };
    size_zeroed(&mut grads.a, nh);
    let da = &mut grads.a;
    let mut dbias = vec![0.0f32; nh];
    let mut dd = vec![0.0f32; if d.d_per_channel { nh * hp } else { nh }];
    size_for_overwrite(&mut grads.b, args.b.data.len());
    size_for_overwrite(&mut grads.c, args.c.data.len());
    let mut db = F32Out::new(&mut grads.b, true);
    let mut dc = F32Out::new(&mut grads.c, true);
    size_opt_zeroed(
        &mut grads.initial_states,
        args.initial_states.map(|_| batch * nh * hp * n),
    );
    for ((i, j0, j1, t0, _), part) in &parts {
        for (h, j) in (*j0..*j1).enumerate() {
            da[j] += part.da[h];
            dbias[j] += part.dbias[h];
            for q in 0..hp {
                let v = part.dd[h * hp + q];
                if d.d_per_channel {
                    dd[j * hp + q] += v;
                } else {
                    dd[j] += v;
                }
            }
            if let (0, Some(dinit)) = (*t0, grads.initial_states.as_mut()) {
                let base = (i * nh + j) * hp * n;
                for q in 0..hp {
                    dinit[base + q * n..base + (q + 1) * n]
                        .copy_from_slice(&part.g_out[h][q * np..q * np + n]);
                }
            }
        }
    }
    // The per-step partials of B and C, in parallel over blocks of steps of each batch
    // row ((b, L, g, n) is contiguous there), each block's tasks in task order.
    let row = l * g * n;
    let span = REDUCE_STEPS * g * n;
    let items: Vec<_> = db
        .buf()
        .chunks_mut(row)
        .zip(dc.buf().chunks_mut(row))
        .enumerate()
        .flat_map(|(i, (b, c))| {
            b.chunks_mut(span)
                .zip(c.chunks_mut(span))
                .enumerate()
                .map(move |(k, bc)| (i, k * REDUCE_STEPS, bc))
        })
        .collect();
    be.par.map(items, |(i, s0, (db, dc))| {
        let s1 = s0 + db.len() / (g * n);
        for ((pi, j0, _, t0, t1), part) in &parts {
            let (a, b) = ((*t0).max(s0), (*t1).min(s1));
            if *pi != i || a >= b {
                continue;
            }
            let k = d.group(*j0);
            for t in a..b {
                let dst = ((t - s0) * g + k) * n;
                let src = (t - t0) * np;
                add_into(&mut db[dst..dst + n], &part.db[src..src + n]);
                add_into(&mut dc[dst..dst + n], &part.dc[src..src + n]);
            }
        }
    });
    db.finish();
    dc.finish();
    size_for_overwrite(&mut grads.dt, batch * l * nh);
    unpermute(&ddt, &d, 1, &mut grads.dt);
    scratch::give(ddt);
    set_opt(&mut grads.d, args.d.map(|_| &dd[..]));
    set_opt(&mut grads.dt_bias, args.dt_bias.map(|_| &dbias[..]));
    Ok(())
}
