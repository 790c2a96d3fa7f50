//! SPEC 1: `selective_scan` (Mamba-1), forward and backward.
//!
//! Each (batch, channel) row is an independent recurrence over a state of `N`
//! values, vectorised across `N` (padded to whole vectors with `A = B = C = 0`, which
//! keeps the padding lanes at zero). `B` and `C` in the per-step layouts are
//! transposed once to (b, g, L, N) so that a step's values are contiguous, and tasks
//! walk time in blocks so that a block of `B` and `C` stays in cache while every
//! channel of the task scans it.
//!
//! With fewer rows than threads, each row is cut into time chunks: a first pass scans
//! every chunk from a zero state (chunk 0 from the initial state), a sequential carry
//! pass turns the chunks' end states into each chunk's true initial state
//! (`h_in[k+1] = exp(A * sum(dt over chunk k)) * h_in[k] + h_local[k]`), and a
//! fix-up pass adds the carried state's contribution, `C . (prod exp(dt A)) h_in`, to
//! the outputs. The backward pass does the same for the adjoint, backwards in time.

use mamba_core::ops::selective_scan::{BcLayout, SelectiveScanDims};
use mamba_core::{Element, Result, SelectiveScanArgs, SelectiveScanGrads, Tensor};

use crate::convert::{
    opt_to_f32, set_opt, size_for_overwrite, size_opt_zeroed, size_zeroed, to_f32, F32Out, F32s,
};
use crate::par::{chunks, split_mut, Disjoint, OutSink, Par};
use crate::simd::math;
use crate::simd::{pad, Kernel, Simd, MAX_LANES};
use crate::CpuSimd;

/// Steps per time block of the forward pass: one block of `B` and `C`
/// (`TIME_BLOCK * N * 2` floats) stays in L2 while every channel of a task scans it.
const TIME_BLOCK: usize = 256;
/// Steps per recompute block of the backward pass: the states and decays of one block
/// of one channel (`SUB_BLOCK * N * 2` floats) stay in L1.
const SUB_BLOCK: usize = 64;
/// The backward keeps the states and decays of a whole task's range (instead of
/// recomputing them block by block after a checkpointing pass) when they take at
/// most this many floats: 2 MiB per task in flight. (At 512 KiB, the L2 size it was
/// first chosen for, rows of 1 025 to 4 096 steps at N 64 took the recompute; at the
/// seed shape, L 4096, forward+backward went 190-193 -> 152-153 ms with the larger
/// budget, on the 2-core development machine, 2026-12-04.)
pub(crate) const STORE_ALL: usize = 1 << 19;

/// [`STORE_ALL`], or `MAMBA_CPU_SCAN_KEEP_KIB` KiB per row where that is set (0: always
/// checkpoint and recompute): a measurement hook for machines with many cores sharing
/// one last-level cache, where keeping 2 MiB per thread may cost more memory traffic
/// than the recompute's second exponential (not measured yet on one).
pub(crate) fn store_all_floats() -> usize {
    static FLOATS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *FLOATS.get_or_init(|| {
        std::env::var("MAMBA_CPU_SCAN_KEEP_KIB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(STORE_ALL, |kib| kib * 256)
    })
}
/// At most this many rows per forward task.
const MAX_ROW_BLOCK: usize = 64;

/// `B` or `C`, prepared for vector reads.
enum Bc {
    /// (d, np): one row per channel, the same at every step.
    Shared(Vec<f32>),
    /// (b, g, L, np): a contiguous row per batch, group and step.
    Varying { groups: usize, data: Vec<f32> },
}

impl Bc {
    fn new<T: Element>(
        par: &Par,
        t: &Tensor<'_, T>,
        layout: BcLayout,
        dims: &SelectiveScanDims,
        np: usize,
    ) -> Bc {
        let n = dims.dstate;
        match layout {
            BcLayout::Shared => {
                let mut data = vec![0.0f32; dims.dim * np];
                for (row, src) in data.chunks_mut(np).zip(t.data.chunks(n)) {
                    for (d, s) in row.iter_mut().zip(src) {
                        *d = s.to_f32();
                    }
                }
                Bc::Shared(data)
            }
            BcLayout::Varying { groups } => {
                let l = dims.seqlen;
                let mut data = vec![0.0f32; dims.batch * groups * l * np];
                let blocks: Vec<_> = data.chunks_mut(l * np).zip(t.data.chunks(n * l)).collect();
                par.map(blocks, |(dst, src)| transpose_in(src, dst, n, l, np));
                Bc::Varying { groups, data }
            }
        }
    }

    /// The rows of channel `c` of batch `i` from step 0, and the stride between steps.
    #[inline]
    fn rows(&self, dims: &SelectiveScanDims, np: usize, i: usize, c: usize) -> (&[f32], usize) {
        match self {
            Bc::Shared(data) => (&data[c * np..(c + 1) * np], 0),
            Bc::Varying { groups, data } => {
                let g = c / (dims.dim / groups);
                let l = dims.seqlen;
                (
                    &data[(i * groups + g) * l * np..(i * groups + g + 1) * l * np],
                    np,
                )
            }
        }
    }

    fn group_of(&self, dims: &SelectiveScanDims, c: usize) -> usize {
        match self {
            Bc::Shared(_) => 0,
            Bc::Varying { groups, .. } => c / (dims.dim / groups),
        }
    }
}

/// (N, L) -> (L, np), zero padding; blocked over L so both sides stay in cache.
fn transpose_in<T: Element>(src: &[T], dst: &mut [f32], n: usize, l: usize, np: usize) {
    for t0 in (0..l).step_by(64) {
        let t1 = (t0 + 64).min(l);
        for s in 0..n {
            let row = &src[s * l..(s + 1) * l];
            for t in t0..t1 {
                dst[t * np + s] = row[t].to_f32();
            }
        }
    }
}

/// The inputs as `f32`, padded for vector reads.
struct Problem<'a> {
    dims: SelectiveScanDims,
    np: usize,
    u: F32s<'a>,
    delta: F32s<'a>,
    z: Option<F32s<'a>>,
    /// (d, np).
    a: Vec<f32>,
    b: Bc,
    c: Bc,
    d: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    init: Option<&'a [f32]>,
    softplus: bool,
}

/// One row's view of the problem.
struct Row<'p> {
    a: &'p [f32],
    b: &'p [f32],
    bs: usize,
    c: &'p [f32],
    cs: usize,
    u: &'p [f32],
    delta: &'p [f32],
    z: Option<&'p [f32]>,
    bias: f32,
    skip: f32,
}

impl<'a> Problem<'a> {
    fn new<T: Element>(
        par: &Par,
        lanes: usize,
        args: &SelectiveScanArgs<'a, T>,
        dims: SelectiveScanDims,
    ) -> Self {
        let np = pad(dims.dstate, lanes);
        let mut a = vec![0.0f32; dims.dim * np];
        for (row, src) in a.chunks_mut(np).zip(args.a.data.chunks(dims.dstate)) {
            row[..dims.dstate].copy_from_slice(src);
        }
        Problem {
            dims,
            np,
            u: to_f32(args.u.data),
            delta: to_f32(args.delta.data),
            z: opt_to_f32(args.z.map(|t| t.data)),
            a,
            b: Bc::new(par, &args.b, dims.b_layout, &dims, np),
            c: Bc::new(par, &args.c, dims.c_layout, &dims, np),
            d: args.d.map(|t| t.data),
            bias: args.delta_bias.map(|t| t.data),
            init: args.initial_state.map(|t| t.data),
            softplus: args.delta_softplus,
        }
    }

    fn row(&self, r: usize) -> Row<'_> {
        let dims = &self.dims;
        let (i, c) = (r / dims.dim, r % dims.dim);
        let l = dims.seqlen;
        let (b, bs) = self.b.rows(dims, self.np, i, c);
        let (cm, cs) = self.c.rows(dims, self.np, i, c);
        Row {
            a: &self.a[c * self.np..(c + 1) * self.np],
            b,
            bs,
            c: cm,
            cs,
            u: &self.u[r * l..(r + 1) * l],
            delta: &self.delta[r * l..(r + 1) * l],
            z: self.z.as_deref().map(|z| &z[r * l..(r + 1) * l]),
            bias: self.bias.map_or(0.0, |b| b[c]),
            skip: self.d.map_or(0.0, |d| d[c]),
        }
    }

    /// The initial state of row `r`, padded.
    fn init_state(&self, r: usize, h: &mut [f32]) {
        let n = self.dims.dstate;
        h.fill(0.0);
        if let Some(init) = self.init {
            h[..n].copy_from_slice(&init[r * n..(r + 1) * n]);
        }
    }
}

/// Per-step scalars of one row over a time range, in buffers padded to whole vectors.
struct StepScratch {
    dt: Vec<f32>,
    dstep: Vec<f32>,
    dtu: Vec<f32>,
    u: Vec<f32>,
    sums: Sums,
}

impl StepScratch {
    fn new(len: usize) -> Self {
        let n = pad(len, MAX_LANES);
        StepScratch {
            dt: vec![0.0; n],
            dstep: vec![0.0; n],
            dtu: vec![0.0; n],
            u: vec![0.0; n],
            sums: Sums::new(len),
        }
    }

    /// Fills `dt`, `dstep`, `u` and `dt * u` for steps `t0..t1` of `row`.
    #[inline(always)]
    fn fill<S: Simd>(&mut self, s: S, row: &Row<'_>, softplus: bool, t0: usize, t1: usize) {
        let len = t1 - t0;
        self.dt[..len].copy_from_slice(&row.delta[t0..t1]);
        self.u[..len].copy_from_slice(&row.u[t0..t1]);
        let bias = s.splat(row.bias);
        for k in (0..len).step_by(S::LANES) {
            let raw = s.add(s.load(&self.dt[k..]), bias);
            let (dt, dstep) = math::step_size(s, raw, softplus, None);
            s.store(&mut self.dt[k..], dt);
            s.store(&mut self.dstep[k..], dstep);
            s.store(&mut self.dtu[k..], s.mul(dt, s.load(&self.u[k..])));
        }
    }
}

/// What a forward pass over rows computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum YMode {
    /// Only the states.
    Skip,
    /// The states and `C . h` (the outputs).
    Write,
    /// The contribution of a chunk's carried state to its outputs (the fix-up of the
    /// chunked scan; [`fixup_row`]).
    Add,
}

/// Per-step vectors waiting for their lane sums, summed in bulk with
/// [`Simd::reduce_sums`] after a block of steps.
struct Sums {
    vecs: Vec<f32>,
    out: Vec<f32>,
}

impl Sums {
    fn new(steps: usize) -> Sums {
        Sums {
            vecs: vec![0.0; steps * MAX_LANES],
            out: vec![0.0; steps],
        }
    }
}

/// The recurrence of one row over `len` steps: `h = exp(dt A) h + dtu B`, and with
/// `YMode::Write` `y[k] = C . h`. `b` and `c` start at the first step, `bs`/`cs` apart.
#[inline(always)]
fn fwd_row<S: Simd>(
    s: S,
    mode: YMode,
    a: &[f32],
    h: &mut [f32],
    dt: &[f32],
    dtu: &[f32],
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    y: &mut [f32],
    sums: &mut Sums,
    len: usize,
) {
    let np = a.len();
    let l = S::LANES;
    let acc = &mut sums.vecs[..len * l];
    match np / l {
        1 => fwd_row_fixed::<S, 1>(s, mode, a, h, dt, dtu, (b, bs), (c, cs), acc, len),
        2 => fwd_row_fixed::<S, 2>(s, mode, a, h, dt, dtu, (b, bs), (c, cs), acc, len),
        4 => fwd_row_fixed::<S, 4>(s, mode, a, h, dt, dtu, (b, bs), (c, cs), acc, len),
        8 => fwd_row_fixed::<S, 8>(s, mode, a, h, dt, dtu, (b, bs), (c, cs), acc, len),
        _ => fwd_row_dyn(s, mode, a, h, dt, dtu, (b, bs), (c, cs), acc, len),
    }
    if mode == YMode::Write {
        s.reduce_sums(acc, &mut y[..len]);
    }
}

/// [`fwd_row`] for `NV` vectors of state, kept in registers across the steps; the
/// vectors of `C h` go to `acc` (len x LANES).
#[inline(always)]
fn fwd_row_fixed<S: Simd, const NV: usize>(
    s: S,
    mode: YMode,
    a: &[f32],
    h: &mut [f32],
    dt: &[f32],
    dtu: &[f32],
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    acc: &mut [f32],
    len: usize,
) {
    let l = S::LANES;
    let mut hv = [s.zero(); NV];
    let mut av = [s.zero(); NV];
    for v in 0..NV {
        hv[v] = s.load(&h[v * l..]);
        av[v] = s.load(&a[v * l..]);
    }
    for k in 0..len {
        let vdt = s.splat(dt[k] * math::LOG2E);
        let vdu = s.splat(dtu[k]);
        let bk = &b[k * bs..k * bs + NV * l];
        if mode == YMode::Skip {
            for v in 0..NV {
                let dec = math::exp2(s, s.mul(vdt, av[v]));
                hv[v] = s.mul_add(dec, hv[v], s.mul(vdu, s.load(&bk[v * l..])));
            }
        } else {
            let ck = &c[k * cs..k * cs + NV * l];
            let mut y = s.zero();
            for v in 0..NV {
                let dec = math::exp2(s, s.mul(vdt, av[v]));
                hv[v] = s.mul_add(dec, hv[v], s.mul(vdu, s.load(&bk[v * l..])));
                y = s.mul_add(s.load(&ck[v * l..]), hv[v], y);
            }
            s.store(&mut acc[k * l..], y);
        }
    }
    for v in 0..NV {
        s.store(&mut h[v * l..], hv[v]);
    }
}

/// [`fwd_row`] for any number of state vectors, kept in memory.
#[inline(always)]
fn fwd_row_dyn<S: Simd>(
    s: S,
    mode: YMode,
    a: &[f32],
    h: &mut [f32],
    dt: &[f32],
    dtu: &[f32],
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    acc: &mut [f32],
    len: usize,
) {
    let np = a.len();
    let l = S::LANES;
    for k in 0..len {
        let vdt = s.splat(dt[k] * math::LOG2E);
        let vdu = s.splat(dtu[k]);
        let bk = &b[k * bs..k * bs + np];
        let ck = &c[k * cs..k * cs + np];
        let mut y = s.zero();
        for v in (0..np).step_by(l) {
            let dec = math::exp2(s, s.mul(vdt, s.load(&a[v..])));
            let hv = s.mul_add(dec, s.load(&h[v..]), s.mul(vdu, s.load(&bk[v..])));
            s.store(&mut h[v..], hv);
            if mode != YMode::Skip {
                y = s.mul_add(s.load(&ck[v..]), hv, y);
            }
        }
        s.store(&mut acc[k * l..], y);
    }
}

/// The fix-up of one row of a time chunk: adds the carried state's contribution
/// `C . exp(A cum) h_in` to `y`, where `cum` is the sum of `dt` from the chunk's start
/// through the step (`cum0` before this block). Computed from `h_in` directly rather
/// than by decaying a state step by step, whose values would sink into subnormals
/// (dozens of times slower on x86); steps where every component is below `e^-69`
/// (1e-30 of `h_in`) are skipped for the same reason. `h_in` is not changed.
#[inline(always)]
fn fixup_row<S: Simd>(
    s: S,
    a: &[f32],
    a_live: &[f32],
    h_in: &[f32],
    dt: &[f32],
    cum0: f32,
    (c, cs): (&[f32], usize),
    y: &mut [f32],
    sums: &mut Sums,
    len: usize,
) {
    let np = a.len();
    let l = S::LANES;
    let amin = a_live.iter().copied().fold(f32::INFINITY, f32::min);
    let amax = a_live.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let acc = &mut sums.vecs[..len * l];
    let mut cum = cum0;
    for k in 0..len {
        cum += dt[k];
        let largest = if cum >= 0.0 { amax * cum } else { amin * cum };
        let mut yv = s.zero();
        if largest >= -69.0 {
            let vc = s.splat(cum * math::LOG2E);
            let ck = &c[k * cs..k * cs + np];
            for v in (0..np).step_by(l) {
                let e = math::exp2(s, s.mul(vc, s.load(&a[v..])));
                yv = s.mul_add(s.mul(s.load(&ck[v..]), e), s.load(&h_in[v..]), yv);
            }
        }
        s.store(&mut acc[k * l..], yv);
    }
    s.reduce_sums(acc, &mut sums.out[..len]);
    for (yk, v) in y[..len].iter_mut().zip(&sums.out[..len]) {
        *yk += v;
    }
}

/// Scans rows `r0..r0 + rows` over steps `t0..t1` from the states in `h` (rows x np).
/// `Write` leaves the end states in `h` and writes the finished outputs
/// `(C . h + D u) * silu(z)` of those rows and steps into `out` ((b, d, L) layout);
/// `Add` (the fix-up of a chunk, `h` its carried state) adds the carried state's
/// contribution to them; `Skip` only advances the states. Returns each row's sum of
/// `dt` over the range (for the carry of the chunked scan).
///
/// The caller guarantees that no other task writes these rows and steps meanwhile.
#[inline(always)]
fn fwd_rows<S: Simd>(
    s: S,
    p: &Problem<'_>,
    mode: YMode,
    r0: usize,
    h: &mut [f32],
    out: Option<&dyn OutSink>,
    t0: usize,
    t1: usize,
) -> Vec<f32> {
    let np = p.np;
    let l = p.dims.seqlen;
    let rows = h.len() / np;
    let len = t1 - t0;
    let mut scratch = StepScratch::new(TIME_BLOCK.min(len));
    let mut yb = vec![0.0f32; pad(TIME_BLOCK.min(len), MAX_LANES)];
    let mut sums = vec![0.0f32; rows];
    for tb0 in (t0..t1).step_by(TIME_BLOCK) {
        let tb1 = (tb0 + TIME_BLOCK).min(t1);
        let bl = tb1 - tb0;
        for r in 0..rows {
            let row = p.row(r0 + r);
            scratch.fill(s, &row, p.softplus, tb0, tb1);
            let before = sums[r];
            sums[r] += scratch.dt[..bl].iter().sum::<f32>();
            let hr = &mut h[r * np..(r + 1) * np];
            let b = (&row.b[tb0 * row.bs..], row.bs);
            let c = (&row.c[tb0 * row.cs..], row.cs);
            let (dt, dtu, sm) = (&scratch.dt, &scratch.dtu, &mut scratch.sums);
            let at = (r0 + r) * l + tb0;
            match (mode, out) {
                (YMode::Write, Some(out)) => {
                    fwd_row(s, mode, row.a, hr, dt, dtu, b, c, &mut yb, sm, bl);
                    finish_range(s, &row, &mut yb, tb0, tb1, true);
                    // SAFETY: these steps of this row belong to this task (caller).
                    unsafe { out.write(at, 0, bl, 1, &yb, 0) };
                }
                (YMode::Add, Some(out)) => {
                    yb.fill(0.0);
                    let a_live = &row.a[..p.dims.dstate];
                    fixup_row(s, row.a, a_live, hr, dt, before, c, &mut yb, sm, bl);
                    // The gate is linear in y: the contribution is scaled by it too.
                    finish_range(s, &row, &mut yb, tb0, tb1, false);
                    // SAFETY: these steps of this row belong to this task (caller).
                    unsafe { out.add(at, 0, bl, 1, &yb, 0) };
                }
                _ => fwd_row(s, YMode::Skip, row.a, hr, dt, dtu, b, c, &mut [], sm, bl),
            }
        }
    }
    sums
}

/// `h_in` of every chunk of one row and its end state, from the initial state, the
/// chunks' local end states (chunk 0's started from the initial state) and their sums
/// of `dt`.
fn carry_forward(
    a: &[f32],
    init: Vec<f32>,
    local_ends: &[Vec<f32>],
    dt_sums: &[f32],
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let mut h_in = Vec::with_capacity(local_ends.len());
    let mut h = init;
    for (k, (end, &sum)) in local_ends.iter().zip(dt_sums).enumerate() {
        h_in.push(h.clone());
        for n in 0..a.len() {
            h[n] = if k == 0 {
                end[n]
            } else {
                (a[n] * sum).exp() * h[n] + end[n]
            };
        }
    }
    (h_in, h)
}

/// The forward kernel: writes `out` and the last states (padded rows).
struct Forward<'p, 'a> {
    par: &'p Par,
    p: &'p Problem<'a>,
    out: &'p dyn OutSink,
    last: &'p mut [f32],
}

impl Kernel for Forward<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        forward_impl(s, self.par, self.p, self.out, self.last);
    }
}

fn forward_impl<S: Simd>(s: S, par: &Par, p: &Problem<'_>, out: &dyn OutSink, last: &mut [f32]) {
    let dims = p.dims;
    let (rows, l, np) = (dims.batch * dims.dim, dims.seqlen, p.np);
    let chunk = par.time_chunk(rows, l);
    for (r, h) in last.chunks_mut(np).enumerate() {
        p.init_state(r, h);
    }
    if chunk >= l {
        // One pass: every task owns whole rows and writes their final outputs.
        let rb = par.row_block(rows, MAX_ROW_BLOCK);
        let tasks: Vec<_> = last.chunks_mut(rb * np).enumerate().collect();
        par.map(tasks, |(k, h)| {
            s.vectorize(
                #[inline(always)]
                || fwd_rows(s, p, YMode::Write, k * rb, h, Some(out), 0, l),
            )
        });
        return;
    }
    // The chunked two-pass scan: every chunk from a zero state (chunk 0 from the
    // initial state) writes its outputs, then the carry, then the fix-up adds the
    // carried states' contributions. Each task owns one chunk of one row.
    let spans = chunks(l, chunk);
    let nc = spans.len();
    let tasks: Vec<usize> = (0..rows * nc).collect();
    let locals = par.map(tasks, |task| {
        let (r, k) = (task / nc, task % nc);
        let (t0, t1) = spans[k];
        let mut h = vec![0.0f32; np];
        if k == 0 {
            p.init_state(r, &mut h);
        }
        let sums = s.vectorize(
            #[inline(always)]
            || fwd_rows(s, p, YMode::Write, r, &mut h, Some(out), t0, t1),
        );
        (h, sums[0])
    });
    let mut fixups = Vec::new();
    for (r, row_tasks) in locals.chunks(nc).enumerate() {
        let ends: Vec<Vec<f32>> = row_tasks.iter().map(|t| t.0.clone()).collect();
        let sums: Vec<f32> = row_tasks.iter().map(|t| t.1).collect();
        let c = r % dims.dim;
        let mut init = vec![0.0f32; np];
        p.init_state(r, &mut init);
        let (h_in, h_end) = carry_forward(&p.a[c * np..(c + 1) * np], init, &ends, &sums);
        last[r * np..(r + 1) * np].copy_from_slice(&h_end);
        fixups.extend(h_in.into_iter().enumerate().skip(1).map(|(k, h)| (r, k, h)));
    }
    par.map(fixups, |(r, k, mut h)| {
        let (t0, t1) = spans[k];
        s.vectorize(
            #[inline(always)]
            || fwd_rows(s, p, YMode::Add, r, &mut h, Some(out), t0, t1),
        );
    });
}

/// `y = (y + D u) * silu(z)` for steps `t0..t1` of a row (`y` from `t0`, padded);
/// without `with_skip`, `y = y * silu(z)`.
#[inline(always)]
fn finish_range<S: Simd>(
    s: S,
    row: &Row<'_>,
    y: &mut [f32],
    t0: usize,
    t1: usize,
    with_skip: bool,
) {
    let skip = s.splat(if with_skip { row.skip } else { 0.0 });
    let mut tmp = [0.0f32; MAX_LANES];
    let len = t1 - t0;
    for k in (0..len).step_by(S::LANES) {
        let n = (len - k).min(S::LANES);
        let u = if n == S::LANES {
            s.load(&row.u[t0 + k..])
        } else {
            tmp[..n].copy_from_slice(&row.u[t0 + k..t0 + k + n]);
            s.load(&tmp)
        };
        let mut v = s.mul_add(skip, u, s.load(&y[k..]));
        if let Some(z) = row.z {
            let zv = if n == S::LANES {
                s.load(&z[t0 + k..])
            } else {
                tmp[..n].copy_from_slice(&z[t0 + k..t0 + k + n]);
                s.load(&tmp)
            };
            v = s.mul(v, math::silu(s, zv));
        }
        s.store(&mut y[k..], v);
    }
}

pub(crate) fn forward<T: Element>(
    be: &CpuSimd,
    args: &SelectiveScanArgs<'_, T>,
    out: &mut [T],
    last_state: Option<&mut [f32]>,
) -> Result<()> {
    let dims = args.validate_forward(out.len(), last_state.as_deref().map(<[f32]>::len))?;
    let p = Problem::new(&be.par, be.isa.lanes(), args, dims);
    let (rows, n, np) = (dims.batch * dims.dim, dims.dstate, p.np);
    let mut last = vec![0.0f32; rows * np];
    let sink = Disjoint::new(out);
    be.isa.dispatch(Forward {
        par: &be.par,
        p: &p,
        out: &sink,
        last: &mut last,
    });
    if let Some(ls) = last_state {
        for (dst, src) in ls.chunks_mut(n).zip(last.chunks(np)) {
            dst.copy_from_slice(&src[..n]);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Backward.

/// A backward task: channels `c0..c1` of batch `i` (all in one group of `B` and `C`)
/// over steps `t0..t1`, with the states and adjoints at the ends of the range.
struct BwdTask<'o> {
    i: usize,
    c0: usize,
    c1: usize,
    t0: usize,
    t1: usize,
    /// The state before `t0`, per row (rows x np).
    h_in: Vec<f32>,
    /// The adjoint of the state at `t1 - 1` from the steps after the range (rows x np).
    g_in: Vec<f32>,
    /// Outputs over the task's rows and steps, (rows x len) each.
    du: &'o mut [f32],
    ddelta: &'o mut [f32],
    /// Holds `C . h` after the first phase, then `dz`; empty without `z`.
    dz: &'o mut [f32],
}

/// A backward task's partial sums, reduced in task order afterwards.
struct BwdPartial {
    /// dA per row (rows x np).
    da: Vec<f32>,
    /// dD per row.
    dd: Vec<f32>,
    /// d delta_bias per row.
    dbias: Vec<f32>,
    /// dB: per row (rows x np) when shared, per step (len x np) when varying.
    db: Vec<f32>,
    /// dC, as dB.
    dc: Vec<f32>,
    /// The adjoint of the state before `t0`, per row (rows x np).
    g_out: Vec<f32>,
}

/// Where one row's `dB` (or `dC`) goes: a per-row vector at stride 0 when shared, the
/// task's per-step rows otherwise.
#[inline]
fn grad_rows<'g>(
    bc: &Bc,
    buf: &'g mut [f32],
    r: usize,
    np: usize,
    t_off: usize,
) -> (&'g mut [f32], usize) {
    match bc {
        Bc::Shared(_) => (&mut buf[r * np..(r + 1) * np], 0),
        Bc::Varying { .. } => (&mut buf[t_off * np..], np),
    }
}

/// The states and decays of one row over a block of `len` steps, recomputed from
/// `h0` (the state before the block) into `hs` and `dec` (len x np); with `vy`
/// (len x LANES), also the vectors of `C . h` for the gate's gradient. Adds the row's
/// `dC[k] += dy[k] h[k]` as it goes (the states are in registers here, so the walk
/// back neither reloads them nor touches `dC`).
#[inline(always)]
fn recompute_block<S: Simd>(
    s: S,
    a: &[f32],
    h0: &[f32],
    st: &StepScratch,
    b: (&[f32], usize),
    c: (&[f32], usize),
    (dy, dc): (&[f32], (&mut [f32], usize)),
    hs: &mut [f32],
    dec: &mut [f32],
    vy: Option<&mut [f32]>,
    len: usize,
) {
    let g = (dy, dc);
    match a.len() / S::LANES {
        1 => recompute_fixed::<S, 1>(s, a, h0, st, b, c, g, hs, dec, vy, len),
        2 => recompute_fixed::<S, 2>(s, a, h0, st, b, c, g, hs, dec, vy, len),
        4 => recompute_fixed::<S, 4>(s, a, h0, st, b, c, g, hs, dec, vy, len),
        8 => recompute_fixed::<S, 8>(s, a, h0, st, b, c, g, hs, dec, vy, len),
        _ => recompute_dyn(s, a, h0, st, b, c, g, hs, dec, vy, len),
    }
}

/// [`recompute_block`] for `NV` vectors of state, kept in registers.
#[inline(always)]
fn recompute_fixed<S: Simd, const NV: usize>(
    s: S,
    a: &[f32],
    h0: &[f32],
    st: &StepScratch,
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    (dy, (dc, dcs)): (&[f32], (&mut [f32], usize)),
    hs: &mut [f32],
    dec: &mut [f32],
    mut vy: Option<&mut [f32]>,
    len: usize,
) {
    let l = S::LANES;
    let w = NV * l;
    let mut av = [s.zero(); NV];
    let mut hv = [s.zero(); NV];
    for v in 0..NV {
        av[v] = s.load(&a[v * l..]);
        hv[v] = s.load(&h0[v * l..]);
    }
    for k in 0..len {
        let vdt = s.splat(st.dt[k] * math::LOG2E);
        let vdu = s.splat(st.dtu[k]);
        let bk = &b[k * bs..k * bs + w];
        let hk = &mut hs[k * w..(k + 1) * w];
        let dk = &mut dec[k * w..(k + 1) * w];
        let vdy = s.splat(dy[k]);
        let dck = &mut dc[k * dcs..k * dcs + w];
        for v in 0..NV {
            let d = math::exp2(s, s.mul(vdt, av[v]));
            s.store(&mut dk[v * l..], d);
            hv[v] = s.mul_add(d, hv[v], s.mul(vdu, s.load(&bk[v * l..])));
            s.store(&mut hk[v * l..], hv[v]);
            let dcv = s.mul_add(vdy, hv[v], s.load(&dck[v * l..]));
            s.store(&mut dck[v * l..], dcv);
        }
        if let Some(vy) = vy.as_deref_mut() {
            let ck = &c[k * cs..k * cs + w];
            let mut y = s.zero();
            for v in 0..NV {
                y = s.mul_add(s.load(&ck[v * l..]), hv[v], y);
            }
            s.store(&mut vy[k * l..], y);
        }
    }
}

/// [`recompute_block`] for any number of state vectors.
#[inline(always)]
fn recompute_dyn<S: Simd>(
    s: S,
    a: &[f32],
    h0: &[f32],
    st: &StepScratch,
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    (dy, (dc, dcs)): (&[f32], (&mut [f32], usize)),
    hs: &mut [f32],
    dec: &mut [f32],
    mut vy: Option<&mut [f32]>,
    len: usize,
) {
    let np = a.len();
    let l = S::LANES;
    for k in 0..len {
        let vdt = s.splat(st.dt[k] * math::LOG2E);
        let vdu = s.splat(st.dtu[k]);
        let bk = &b[k * bs..k * bs + np];
        let ck = &c[k * cs..k * cs + np];
        let (prev, cur) = hs.split_at_mut(k * np);
        let hp: &[f32] = if k == 0 { h0 } else { &prev[(k - 1) * np..] };
        let deck = &mut dec[k * np..(k + 1) * np];
        let vdy = s.splat(dy[k]);
        let dck = &mut dc[k * dcs..k * dcs + np];
        let mut y = s.zero();
        for v in (0..np).step_by(l) {
            let d = math::exp2(s, s.mul(vdt, s.load(&a[v..])));
            s.store(&mut deck[v..], d);
            let h = s.mul_add(d, s.load(&hp[v..]), s.mul(vdu, s.load(&bk[v..])));
            s.store(&mut cur[v..], h);
            let dcv = s.mul_add(vdy, h, s.load(&dck[v..]));
            s.store(&mut dck[v..], dcv);
            y = s.mul_add(s.load(&ck[v..]), h, y);
        }
        if let Some(vy) = vy.as_deref_mut() {
            s.store(&mut vy[k * l..], y);
        }
    }
}

/// The walk back through one block of one row, from the recomputed states and decays:
/// from the adjoint `g` (of the state at the block's last step, from later steps),
/// accumulates into `da` and `db` (`dc` was added by [`recompute_block`]) and writes `ddt[k]` (before the step-size
/// derivative) and `gb[k] = sum_n g B` for each step. `va` and `vb` (len x LANES) hold
/// the vectors of those two sums until they are summed in bulk.
#[inline(always)]
fn reverse_block<S: Simd>(
    s: S,
    a: &[f32],
    h0: &[f32],
    g: &mut [f32],
    st: &StepScratch,
    dy: &[f32],
    b: (&[f32], usize),
    c: (&[f32], usize),
    hs: &[f32],
    dec: &[f32],
    da: &mut [f32],
    db: (&mut [f32], usize),
    (va, vb): (&mut [f32], &mut [f32]),
    ddt: &mut [f32],
    gb: &mut [f32],
    len: usize,
) {
    let l = S::LANES;
    let (va, vb) = (&mut va[..len * l], &mut vb[..len * l]);
    match a.len() / l {
        1 => reverse_fixed::<S, 1>(s, a, h0, g, st, dy, b, c, hs, dec, da, db, va, vb, len),
        2 => reverse_fixed::<S, 2>(s, a, h0, g, st, dy, b, c, hs, dec, da, db, va, vb, len),
        4 => reverse_fixed::<S, 4>(s, a, h0, g, st, dy, b, c, hs, dec, da, db, va, vb, len),
        8 => reverse_fixed::<S, 8>(s, a, h0, g, st, dy, b, c, hs, dec, da, db, va, vb, len),
        _ => reverse_dyn(s, a, h0, g, st, dy, b, c, hs, dec, da, db, va, vb, len),
    }
    s.reduce_sums(va, &mut ddt[..len]);
    s.reduce_sums(vb, &mut gb[..len]);
}

/// [`reverse_block`] for `NV` vectors of state: the adjoint and dA stay in registers.
#[inline(always)]
fn reverse_fixed<S: Simd, const NV: usize>(
    s: S,
    a: &[f32],
    h0: &[f32],
    g: &mut [f32],
    st: &StepScratch,
    dy: &[f32],
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    hs: &[f32],
    dec: &[f32],
    da: &mut [f32],
    (db, dbs): (&mut [f32], usize),
    va: &mut [f32],
    vb: &mut [f32],
    len: usize,
) {
    let l = S::LANES;
    let w = NV * l;
    let mut av = [s.zero(); NV];
    let mut gv = [s.zero(); NV];
    let mut dav = [s.zero(); NV];
    for v in 0..NV {
        av[v] = s.load(&a[v * l..]);
        gv[v] = s.load(&g[v * l..]);
        dav[v] = s.load(&da[v * l..]);
    }
    for k in (0..len).rev() {
        let vdy = s.splat(dy[k]);
        let vdt = s.splat(st.dt[k]);
        let vdu = s.splat(st.dtu[k]);
        let bk = &b[k * bs..k * bs + w];
        let ck = &c[k * cs..k * cs + w];
        let prev: &[f32] = if k == 0 {
            &h0[..w]
        } else {
            &hs[(k - 1) * w..k * w]
        };
        let dk = &dec[k * w..(k + 1) * w];
        let dbk = &mut db[k * dbs..k * dbs + w];
        let mut acc_a = s.zero();
        let mut acc_b = s.zero();
        for v in 0..NV {
            let g1 = s.mul_add(vdy, s.load(&ck[v * l..]), gv[v]);
            let gd = s.mul(g1, s.load(&dk[v * l..]));
            let gdh = s.mul(gd, s.load(&prev[v * l..]));
            dav[v] = s.mul_add(gdh, vdt, dav[v]);
            acc_a = s.mul_add(gdh, av[v], acc_a);
            acc_b = s.mul_add(g1, s.load(&bk[v * l..]), acc_b);
            let dbv = s.mul_add(g1, vdu, s.load(&dbk[v * l..]));
            s.store(&mut dbk[v * l..], dbv);
            gv[v] = gd;
        }
        s.store(&mut va[k * l..], acc_a);
        s.store(&mut vb[k * l..], acc_b);
    }
    for v in 0..NV {
        s.store(&mut g[v * l..], gv[v]);
        s.store(&mut da[v * l..], dav[v]);
    }
}

/// [`reverse_block`] for any number of state vectors, kept in memory.
#[inline(always)]
fn reverse_dyn<S: Simd>(
    s: S,
    a: &[f32],
    h0: &[f32],
    g: &mut [f32],
    st: &StepScratch,
    dy: &[f32],
    (b, bs): (&[f32], usize),
    (c, cs): (&[f32], usize),
    hs: &[f32],
    dec: &[f32],
    da: &mut [f32],
    (db, dbs): (&mut [f32], usize),
    va: &mut [f32],
    vb: &mut [f32],
    len: usize,
) {
    let np = a.len();
    let l = S::LANES;
    for k in (0..len).rev() {
        let vdy = s.splat(dy[k]);
        let vdt = s.splat(st.dt[k]);
        let vdu = s.splat(st.dtu[k]);
        let bk = &b[k * bs..k * bs + np];
        let ck = &c[k * cs..k * cs + np];
        let hp: &[f32] = if k == 0 {
            h0
        } else {
            &hs[(k - 1) * np..k * np]
        };
        let deck = &dec[k * np..(k + 1) * np];
        let dbk = &mut db[k * dbs..k * dbs + np];
        let mut acc_a = s.zero();
        let mut acc_b = s.zero();
        for v in (0..np).step_by(l) {
            let gv = s.mul_add(vdy, s.load(&ck[v..]), s.load(&g[v..]));
            let gd = s.mul(gv, s.load(&deck[v..]));
            let gdh = s.mul(gd, s.load(&hp[v..]));
            let dav = s.mul_add(gdh, vdt, s.load(&da[v..]));
            s.store(&mut da[v..], dav);
            acc_a = s.mul_add(gdh, s.load(&a[v..]), acc_a);
            acc_b = s.mul_add(gv, s.load(&bk[v..]), acc_b);
            let dbv = s.mul_add(gv, vdu, s.load(&dbk[v..]));
            s.store(&mut dbk[v..], dbv);
            s.store(&mut g[v..], gd);
        }
        s.store(&mut va[k * l..], acc_a);
        s.store(&mut vb[k * l..], acc_b);
    }
}

/// Scratch of one backward task, sized for one recompute block.
struct BwdScratch {
    st: StepScratch,
    dy: Vec<f32>,
    /// `silu'(z)` per step (with `z`).
    dsz: Vec<f32>,
    ddt: Vec<f32>,
    gb: Vec<f32>,
    hs: Vec<f32>,
    dec: Vec<f32>,
    va: Vec<f32>,
    vb: Vec<f32>,
}

/// The gradient reaching `y` from the gate, for one row over `t0..t1`:
/// `dy = dout * silu(z)` (or `dout` without `z`) into `dy`, and `silu'(z)` into `dsz`
/// for [`gate_dz`].
#[inline(always)]
fn gate_dy<S: Simd>(
    s: S,
    row: &Row<'_>,
    dout: &[f32],
    dy: &mut [f32],
    dsz: &mut [f32],
    t0: usize,
    t1: usize,
) {
    let len = t1 - t0;
    dy[..len].copy_from_slice(&dout[t0..t1]);
    let Some(z) = row.z else { return };
    let mut zt = [0.0f32; MAX_LANES];
    for k in (0..len).step_by(S::LANES) {
        let n = (len - k).min(S::LANES);
        zt[..n].copy_from_slice(&z[t0 + k..t0 + k + n]);
        let (sz, d) = math::silu_and_grad(s, s.load(&zt));
        let go = s.load(&dy[k..]);
        s.store(&mut dy[k..], s.mul(go, sz));
        s.store(&mut dsz[k..], d);
    }
}

/// `dz = dout * (ypre + D u) * silu'(z)` over `dz` (which holds `ypre`), for one row
/// over `t0..t1`, with `silu'(z)` from [`gate_dy`].
#[inline(always)]
fn gate_dz<S: Simd>(
    s: S,
    row: &Row<'_>,
    dout: &[f32],
    dsz: &[f32],
    dz: &mut [f32],
    u: &[f32],
    t0: usize,
    t1: usize,
) {
    let len = t1 - t0;
    let skip = s.splat(row.skip);
    let mut gt = [0.0f32; MAX_LANES];
    let mut yt = [0.0f32; MAX_LANES];
    for k in (0..len).step_by(S::LANES) {
        let n = (len - k).min(S::LANES);
        gt[..n].copy_from_slice(&dout[t0 + k..t0 + k + n]);
        yt[..n].copy_from_slice(&dz[k..k + n]);
        let y = s.mul_add(skip, s.load(&u[k..]), s.load(&yt));
        s.store(&mut yt, s.mul(s.mul(s.load(&gt), y), s.load(&dsz[k..])));
        dz[k..k + n].copy_from_slice(&yt[..n]);
    }
}

#[inline(always)]
fn bwd_task<S: Simd>(s: S, p: &Problem<'_>, dout: &[f32], task: BwdTask<'_>) -> BwdPartial {
    let np = p.np;
    let l = p.dims.seqlen;
    let rows = task.c1 - task.c0;
    let len = task.t1 - task.t0;
    // The states and decays of the whole range when they fit the budget (no first
    // pass then), else of one recompute block at a time.
    let blk = if 2 * len * np <= store_all_floats() {
        len
    } else {
        SUB_BLOCK.min(len)
    };
    let nsb = len.div_ceil(blk);
    let has_z = p.z.is_some();
    let shared = |bc: &Bc| matches!(bc, Bc::Shared(_));
    let mut part = BwdPartial {
        da: vec![0.0; rows * np],
        dd: vec![0.0; rows],
        dbias: vec![0.0; rows],
        db: vec![0.0; if shared(&p.b) { rows * np } else { len * np }],
        dc: vec![0.0; if shared(&p.c) { rows * np } else { len * np }],
        g_out: task.g_in,
    };
    let mut sc = BwdScratch {
        st: StepScratch::new(blk),
        dy: vec![0.0; pad(blk, MAX_LANES)],
        dsz: vec![0.0; if has_z { pad(blk, MAX_LANES) } else { 0 }],
        ddt: vec![0.0; blk],
        gb: vec![0.0; blk],
        hs: vec![0.0; blk * np],
        dec: vec![0.0; blk * np],
        va: vec![0.0; blk * MAX_LANES],
        vb: vec![0.0; blk * MAX_LANES],
    };
    let block = |sb: usize| {
        let tb0 = task.t0 + sb * blk;
        (tb0, (tb0 + blk).min(task.t1))
    };
    // Phase 1 (with more than one block): checkpoints of the state at every block
    // start, and `C . h` for dz.
    let ckpt = if nsb == 1 {
        task.h_in
    } else {
        let mut ckpt = vec![0.0f32; rows * nsb * np];
        let mut h = task.h_in;
        for sb in 0..nsb {
            let (tb0, tb1) = block(sb);
            for r in 0..rows {
                let row = p.row(task.i * p.dims.dim + task.c0 + r);
                let hr = &mut h[r * np..(r + 1) * np];
                ckpt[(r * nsb + sb) * np..(r * nsb + sb + 1) * np].copy_from_slice(hr);
                sc.st.fill(s, &row, p.softplus, tb0, tb1);
                let mode = if has_z { YMode::Write } else { YMode::Skip };
                let y: &mut [f32] = if has_z {
                    &mut task.dz[r * len + (tb0 - task.t0)..]
                } else {
                    &mut []
                };
                fwd_row(
                    s,
                    mode,
                    row.a,
                    hr,
                    &sc.st.dt,
                    &sc.st.dtu,
                    (&row.b[tb0 * row.bs..], row.bs),
                    (&row.c[tb0 * row.cs..], row.cs),
                    y,
                    &mut sc.st.sums,
                    tb1 - tb0,
                );
            }
        }
        ckpt
    };
    // Phase 2: back through the blocks, recomputing each block's states.
    for sb in (0..nsb).rev() {
        let (tb0, tb1) = block(sb);
        let bl = tb1 - tb0;
        let off = tb0 - task.t0;
        for r in 0..rows {
            let rg = task.i * p.dims.dim + task.c0 + r;
            let row = p.row(rg);
            sc.st.fill(s, &row, p.softplus, tb0, tb1);
            let h0 = &ckpt[(r * nsb + sb) * np..(r * nsb + sb + 1) * np];
            let b = (&row.b[tb0 * row.bs..], row.bs);
            let c = (&row.c[tb0 * row.cs..], row.cs);
            let dout_r = &dout[rg * l..(rg + 1) * l];
            gate_dy(s, &row, dout_r, &mut sc.dy, &mut sc.dsz, tb0, tb1);
            // Without a first pass, `C . h` for the gate comes from the recompute.
            let vy = (nsb == 1 && has_z).then_some(&mut sc.va[..]);
            let want_y = vy.is_some();
            let dc = grad_rows(&p.c, &mut part.dc, r, np, off);
            let (hs, dec) = (&mut sc.hs, &mut sc.dec);
            recompute_block(s, row.a, h0, &sc.st, b, c, (&sc.dy, dc), hs, dec, vy, bl);
            if has_z {
                let dz = &mut task.dz[r * len + off..r * len + off + bl];
                if want_y {
                    s.reduce_sums(&sc.va[..bl * S::LANES], dz);
                }
                gate_dz(s, &row, dout_r, &sc.dsz, dz, &sc.st.u, tb0, tb1);
            }
            reverse_block(
                s,
                row.a,
                h0,
                &mut part.g_out[r * np..(r + 1) * np],
                &sc.st,
                &sc.dy,
                b,
                c,
                &sc.hs,
                &sc.dec,
                &mut part.da[r * np..(r + 1) * np],
                grad_rows(&p.b, &mut part.db, r, np, off),
                (&mut sc.va, &mut sc.vb),
                &mut sc.ddt,
                &mut sc.gb,
                bl,
            );
            let mut dd = 0.0f32;
            let mut dbias = 0.0f32;
            for k in 0..bl {
                let (dt, u, dy) = (sc.st.dt[k], sc.st.u[k], sc.dy[k]);
                let draw = (sc.ddt[k] + u * sc.gb[k]) * sc.st.dstep[k];
                task.ddelta[r * len + off + k] = draw;
                task.du[r * len + off + k] = dt * sc.gb[k] + row.skip * dy;
                dbias += draw;
                dd += dy * u;
            }
            part.dd[r] += dd;
            part.dbias[r] += dbias;
        }
    }
    part
}

/// The local adjoint of one chunk of one row, walked back from zero:
/// `g = (g + dy C) * exp(dt A)`; returns it and leaves nothing else.
#[inline(always)]
fn adjoint_local<S: Simd>(
    s: S,
    p: &Problem<'_>,
    r: usize,
    dout: &[f32],
    t0: usize,
    t1: usize,
) -> Vec<f32> {
    let np = p.np;
    let l = p.dims.seqlen;
    let row = p.row(r);
    let mut g = vec![0.0f32; np];
    let mut st = StepScratch::new(TIME_BLOCK.min(t1 - t0));
    let mut dy = vec![0.0f32; pad(TIME_BLOCK.min(t1 - t0), MAX_LANES)];
    let mut tb1 = t1;
    while tb1 > t0 {
        let tb0 = tb1.saturating_sub(TIME_BLOCK).max(t0);
        st.fill(s, &row, p.softplus, tb0, tb1);
        let len = tb1 - tb0;
        dy[..len].copy_from_slice(&dout[r * l + tb0..r * l + tb1]);
        if let Some(z) = row.z {
            let mut zt = [0.0f32; MAX_LANES];
            for k in (0..len).step_by(S::LANES) {
                let n = (len - k).min(S::LANES);
                zt[..n].copy_from_slice(&z[tb0 + k..tb0 + k + n]);
                let v = s.mul(s.load(&dy[k..]), math::silu(s, s.load(&zt)));
                s.store(&mut dy[k..], v);
            }
        }
        for k in (0..len).rev() {
            let t = tb0 + k;
            let vdy = s.splat(dy[k]);
            let vdt = s.splat(st.dt[k] * math::LOG2E);
            let ck = &row.c[t * row.cs..t * row.cs + np];
            for v in (0..np).step_by(S::LANES) {
                let gv = s.mul_add(vdy, s.load(&ck[v..]), s.load(&g[v..]));
                let d = math::exp2(s, s.mul(vdt, s.load(&row.a[v..])));
                s.store(&mut g[v..], s.mul(gv, d));
            }
        }
        tb1 = tb0;
    }
    g
}

/// Rows of `n` per item of the varying `dB` / `dC` reduction: one cache line of a
/// task's per-step partial row.
const REDUCE_ROWS: usize = 16;

/// `rows[jj][t] += src[(t - t0) * np + j0 + jj]` for the rows of `rows` (each `l`
/// long) and `t` in `t0..t1`: a task's per-step partial (steps x np) added into
/// (n x L) rows, in blocks of 64 steps so that the strided reads stay in L1 and
/// the writes run along the rows.
fn add_columns(
    src: &[f32],
    np: usize,
    j0: usize,
    (t0, t1): (usize, usize),
    rows: &mut [f32],
    l: usize,
) {
    for tb in (t0..t1).step_by(64) {
        let te = (tb + 64).min(t1);
        for (jj, row) in rows.chunks_mut(l).enumerate() {
            let j = j0 + jj;
            for (t, o) in (tb..te).zip(&mut row[tb..te]) {
                *o += src[(t - t0) * np + j];
            }
        }
    }
}

/// Inputs of the backward kernel.
struct Backward<'p, 'a> {
    par: &'p Par,
    p: &'p Problem<'a>,
    dout: &'p [f32],
    dlast: Option<&'p [f32]>,
    du: &'p mut [f32],
    ddelta: &'p mut [f32],
    dz: &'p mut [f32],
}

impl Kernel for Backward<'_, '_> {
    type Output = Vec<(usize, usize, usize, usize, usize, BwdPartial)>;
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Self::Output {
        backward_impl(s, self)
    }
}

/// A backward task before its output slices: (i, c0, c1, t0, t1, h_in, g_in).
type TaskSpec = (usize, usize, usize, usize, usize, Vec<f32>, Vec<f32>);

fn backward_impl<S: Simd>(
    s: S,
    k: Backward<'_, '_>,
) -> Vec<(usize, usize, usize, usize, usize, BwdPartial)> {
    let (par, p) = (k.par, k.p);
    let dims = p.dims;
    let (batch, dim, l, n, np) = (dims.batch, dims.dim, dims.seqlen, dims.dstate, p.np);
    let rows = batch * dim;
    let chunk = par.time_chunk(rows, l);
    let has_z = p.z.is_some();
    let pad_state = |src: Option<&[f32]>, r: usize| {
        let mut v = vec![0.0f32; np];
        if let Some(src) = src {
            v[..n].copy_from_slice(&src[r * n..(r + 1) * n]);
        }
        v
    };
    // (i, c0, c1, t0, t1, h_in, g_in) of every task, in the order their outputs tile
    // the (b, d, L) buffers.
    let mut specs: Vec<TaskSpec> = Vec::new();
    if chunk >= l {
        // Blocks of channels that share a group of B and of C (so varying partials
        // are per group), about two per thread.
        let bound = |bc: &Bc| match bc {
            Bc::Varying { groups, .. } => dim / groups,
            Bc::Shared(_) => dim,
        };
        let (gb, gc) = (bound(&p.b), bound(&p.c));
        let blk = par.reduce_block(rows);
        for i in 0..batch {
            let mut c0 = 0;
            while c0 < dim {
                let next_group = ((c0 / gb + 1) * gb).min((c0 / gc + 1) * gc);
                let c1 = (c0 + blk).min(next_group);
                let mut h_in = Vec::with_capacity((c1 - c0) * np);
                let mut g_in = Vec::with_capacity((c1 - c0) * np);
                for c in c0..c1 {
                    h_in.extend(pad_state(p.init, i * dim + c));
                    g_in.extend(pad_state(k.dlast, i * dim + c));
                }
                specs.push((i, c0, c1, 0, l, h_in, g_in));
                c0 = c1;
            }
        }
    } else {
        let spans = chunks(l, chunk);
        let nc = spans.len();
        // Pass 1: local end states and adjoints of every chunk, in parallel.
        let items: Vec<usize> = (0..rows * nc).collect();
        let locals = par.map(items, |task| {
            let (r, kk) = (task / nc, task % nc);
            let (t0, t1) = spans[kk];
            s.vectorize(
                #[inline(always)]
                || {
                    let mut h = if kk == 0 {
                        pad_state(p.init, r)
                    } else {
                        vec![0.0f32; np]
                    };
                    let sums = fwd_rows(s, p, YMode::Skip, r, &mut h, None, t0, t1);
                    let g = if kk > 0 {
                        adjoint_local(s, p, r, k.dout, t0, t1)
                    } else {
                        Vec::new()
                    };
                    (h, sums[0], g)
                },
            )
        });
        // Pass 2: the carries, forward for states and backward for adjoints.
        for r in 0..rows {
            let c = r % dim;
            let a = &p.a[c * np..(c + 1) * np];
            let row_tasks = &locals[r * nc..(r + 1) * nc];
            let ends: Vec<Vec<f32>> = row_tasks.iter().map(|t| t.0.clone()).collect();
            let sums: Vec<f32> = row_tasks.iter().map(|t| t.1).collect();
            let (h_in, _) = carry_forward(a, pad_state(p.init, r), &ends, &sums);
            let mut g_in = vec![Vec::new(); nc];
            let mut g = pad_state(k.dlast, r);
            for kk in (0..nc).rev() {
                g_in[kk] = g.clone();
                if kk > 0 {
                    let local = &row_tasks[kk].2;
                    for j in 0..np {
                        g[j] = (a[j] * sums[kk]).exp() * g[j] + local[j];
                    }
                }
            }
            for (kk, (h, g)) in h_in.into_iter().zip(g_in).enumerate() {
                let (t0, t1) = spans[kk];
                specs.push((r / dim, c, c + 1, t0, t1, h, g));
            }
        }
    }
    let lens: Vec<usize> = specs
        .iter()
        .map(|sp| (sp.2 - sp.1) * (sp.4 - sp.3))
        .collect();
    let du = split_mut(k.du, lens.iter().copied());
    let ddelta = split_mut(k.ddelta, lens.iter().copied());
    let mut dz = if has_z {
        split_mut(k.dz, lens.iter().copied())
    } else {
        Vec::new()
    };
    dz.resize_with(specs.len(), || &mut []);
    let tasks: Vec<_> = specs
        .into_iter()
        .zip(du)
        .zip(ddelta)
        .zip(dz)
        .map(
            |((((i, c0, c1, t0, t1, h_in, g_in), du), ddelta), dz)| BwdTask {
                i,
                c0,
                c1,
                t0,
                t1,
                h_in,
                g_in,
                du,
                ddelta,
                dz,
            },
        )
        .collect();
    let dout = k.dout;
    par.map(tasks, |task| {
        let key = (task.i, task.c0, task.c1, task.t0, task.t1);
        let part = s.vectorize(
            #[inline(always)]
            || bwd_task(s, p, dout, task),
        );
        (key.0, key.1, key.2, key.3, key.4, part)
    })
}

pub(crate) fn backward<T: Element>(
    be: &CpuSimd,
    args: &SelectiveScanArgs<'_, T>,
    dout: &[T],
    dlast_state: Option<&[f32]>,
) -> Result<SelectiveScanGrads<T>> {
    let mut grads = SelectiveScanGrads::default();
    backward_into(be, args, dout, dlast_state, &mut grads)?;
    Ok(grads)
}

/// The backward into `grads` (sized here; see `Kernels::selective_scan_backward_into`).
pub(crate) fn backward_into<T: Element>(
    be: &CpuSimd,
    args: &SelectiveScanArgs<'_, T>,
    dout: &[T],
    dlast_state: Option<&[f32]>,
    grads: &mut SelectiveScanGrads<T>,
) -> Result<()> {
    let dims = args.validate_backward(dout.len(), dlast_state.map(<[f32]>::len))?;
    let p = Problem::new(&be.par, be.isa.lanes(), args, dims);
    let (batch, dim, l, n, np) = (dims.batch, dims.dim, dims.seqlen, dims.dstate, p.np);
    let io = batch * dim * l;
    let dout = to_f32(dout);
    // du, ddelta and dz: every value written by the kernel.
    size_for_overwrite(&mut grads.u, io);
    size_for_overwrite(&mut grads.delta, io);
    match args.z {
        Some(_) => size_for_overwrite(grads.z.get_or_insert_with(Vec::new), io),
        None => grads.z = None,
    }
    let mut du = F32Out::new(&mut grads.u, false);
    let mut ddelta = F32Out::new(&mut grads.delta, false);
    let mut dz = F32Out::new(grads.z.as_deref_mut().unwrap_or(&mut []), false);
    let parts = be.isa.dispatch(Backward {
        par: &be.par,
        p: &p,
        dout: &dout,
        dlast: dlast_state,
        du: du.buf(),
        ddelta: ddelta.buf(),
        dz: dz.buf(),
    });
    du.finish();
    ddelta.finish();
    dz.finish();
    // Reduce the partial sums in task order.
    size_zeroed(&mut grads.a, dim * n);
    let da = &mut grads.a;
    let mut dd = vec![0.0f32; dim];
    let mut dbias = vec![0.0f32; dim];
    size_opt_zeroed(
        &mut grads.initial_state,
        args.initial_state.map(|_| batch * dim * n),
    );
    size_for_overwrite(&mut grads.b, args.b.data.len());
    size_for_overwrite(&mut grads.c, args.c.data.len());
    let mut db = F32Out::new(&mut grads.b, true);
    let mut dc = F32Out::new(&mut grads.c, true);
    for (i, c0, c1, t0, _, part) in &parts {
        for (r, c) in (*c0..*c1).enumerate() {
            for j in 0..n {
                da[c * n + j] += part.da[r * np + j];
            }
            dd[c] += part.dd[r];
            dbias[c] += part.dbias[r];
            if let (0, Some(dinit)) = (*t0, grads.initial_state.as_mut()) {
                let row = i * dim + c;
                dinit[row * n..(row + 1) * n].copy_from_slice(&part.g_out[r * np..r * np + n]);
            }
        }
        for (bc, buf, out) in [(&p.b, &part.db, db.buf()), (&p.c, &part.dc, dc.buf())] {
            if let Bc::Shared(_) = bc {
                for (r, c) in (*c0..*c1).enumerate() {
                    for j in 0..n {
                        out[c * n + j] += buf[r * np + j];
                    }
                }
            }
        }
    }
    // The per-step partials of varying B / C, in parallel over (batch, group, 16 rows
    // of n) slabs of the output, each slab's tasks in task order.
    let slab = |bc: &Bc, out: &mut [f32], pick: fn(&BwdPartial) -> &[f32]| {
        let Bc::Varying { .. } = bc else { return };
        let mut items = Vec::new();
        for (gi, grp) in out.chunks_mut(n * l).enumerate() {
            for (jb, rows) in grp.chunks_mut(REDUCE_ROWS * l).enumerate() {
                items.push((gi, jb * REDUCE_ROWS, rows));
            }
        }
        let (parts, dims) = (&parts, &dims);
        be.par.map(items, |(gi, j0, rows)| {
            for (i, c0, _, t0, t1, part) in parts {
                let groups = match bc {
                    Bc::Varying { groups, .. } => *groups,
                    Bc::Shared(_) => 1,
                };
                if i * groups + bc.group_of(dims, *c0) == gi {
                    add_columns(pick(part), np, j0, (*t0, *t1), rows, l);
                }
            }
        });
    };
    slab(&p.b, db.buf(), |part| &part.db);
    slab(&p.c, dc.buf(), |part| &part.dc);
    db.finish();
    dc.finish();
    set_opt(&mut grads.d, args.d.map(|_| &dd[..]));
    set_opt(&mut grads.delta_bias, args.delta_bias.map(|_| &dbias[..]));
    Ok(())
}
