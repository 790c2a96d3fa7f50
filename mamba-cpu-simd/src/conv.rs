//! SPEC 3: depthwise `causal_conv1d`, forward and backward.
//!
//! Channel-first rows are independent and contiguous in time, so each row is
//! vectorised across time: a row is copied once into a buffer with its `W-1` earlier
//! samples in front (the `xp` of the SPEC), and every output vector is `W` fused
//! multiply-adds of shifted loads. The channel-last forward (the layout of Mamba-2's
//! projections) and its backward run directly, vectorised across channels, one time
//! step after another, in tasks of blocks of time steps (no transposes).

use mamba_core::ops::conv1d::Conv1dDims;
use mamba_core::scratch;
use mamba_core::{Activation, CausalConv1dArgs, CausalConv1dGrads, ConvLayout, Element, Result};

use crate::convert::{into_storage, to_f32, F32s};
use crate::par::{split_mut, Par};
use crate::simd::{math, pad, Kernel, Simd, MAX_LANES};
use crate::CpuSimd;

/// At most this many rows per task.
const MAX_ROW_BLOCK: usize = 256;

/// Channel-first views of the inputs.
struct Problem<'a> {
    dims: Conv1dDims,
    /// (b, c, L).
    x: F32s<'a>,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    init: Option<&'a [f32]>,
    activation: Activation,
}

impl<'a> Problem<'a> {
    /// For the channel-first layout (the channel-last passes have their own kernels).
    fn new<T: Element>(args: &CausalConv1dArgs<'a, T>, dims: Conv1dDims) -> Self {
        debug_assert_eq!(dims.layout, ConvLayout::ChannelFirst);
        let x = to_f32(args.x.data);
        Problem {
            dims,
            x,
            weight: args.weight.data,
            bias: args.bias.map(|t| t.data),
            init: args.initial_states.map(|t| t.data),
            activation: args.activation,
        }
    }

    /// Fills `xp` (padded) with row `r`'s `W-1` earlier samples and its `L` samples.
    fn fill_xp(&self, r: usize, xp: &mut [f32]) {
        let (w, l) = (self.dims.width, self.dims.seqlen);
        match self.init {
            Some(init) => xp[..w - 1].copy_from_slice(&init[r * (w - 1)..(r + 1) * (w - 1)]),
            None => xp[..w - 1].fill(0.0),
        }
        xp[w - 1..w - 1 + l].copy_from_slice(&self.x[r * l..(r + 1) * l]);
        xp[w - 1 + l..].fill(0.0);
    }
}

/// `pre[t] = bias + sum_k w[k] xp[t + k]` for `t < len`, a vector at a time.
#[inline(always)]
fn conv_row<S: Simd>(s: S, w: &[f32], bias: f32, xp: &[f32], pre: &mut [f32], len: usize) {
    for t in (0..len).step_by(S::LANES) {
        let mut acc = s.splat(bias);
        for (k, &wk) in w.iter().enumerate() {
            acc = s.mul_add(s.splat(wk), s.load(&xp[t + k..]), acc);
        }
        s.store(&mut pre[t..], acc);
    }
}

struct Forward<'p, 'a> {
    par: &'p Par,
    p: &'p Problem<'a>,
    /// (b, c, L).
    out: &'p mut [f32],
    /// (b, c, W-1).
    last: &'p mut [f32],
}

impl Kernel for Forward<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let p = self.p;
        let d = p.dims;
        let (rows, l, w) = (d.batch * d.channels, d.seqlen, d.width);
        let rb = self.par.row_block(rows, MAX_ROW_BLOCK);
        let counts: Vec<usize> = (0..rows).step_by(rb).map(|r0| rb.min(rows - r0)).collect();
        let lasts = split_mut(self.last, counts.iter().map(|k| k * (w - 1)));
        let tasks: Vec<_> = self.out.chunks_mut(rb * l).zip(lasts).enumerate().collect();
        self.par.map(tasks, |(k, (out, last))| {
            s.vectorize(
                #[inline(always)]
                || {
                    let lp = pad(l, MAX_LANES);
                    let mut xp = vec![0.0f32; lp + w - 1 + MAX_LANES];
                    let mut pre = vec![0.0f32; lp];
                    for (rr, orow) in out.chunks_mut(l).enumerate() {
                        let r = k * rb + rr;
                        let ch = r % d.channels;
                        p.fill_xp(r, &mut xp);
                        let bias = p.bias.map_or(0.0, |b| b[ch]);
                        conv_row(s, &p.weight[ch * w..(ch + 1) * w], bias, &xp, &mut pre, l);
                        if p.activation == Activation::Silu {
                            for t in (0..l).step_by(S::LANES) {
                                let v = math::silu(s, s.load(&pre[t..]));
                                s.store(&mut pre[t..], v);
                            }
                        }
                        orow.copy_from_slice(&pre[..l]);
                        if w > 1 {
                            last[rr * (w - 1)..(rr + 1) * (w - 1)]
                                .copy_from_slice(&xp[l..l + w - 1]);
                        }
                    }
                },
            )
        });
    }
}

/// Time steps per task of the channel-last forward.
const TIME_BLOCK: usize = 32;

/// The channel-last forward, without transposes: for each time step, every channel at
/// once, a vector of channels at a time (channels are contiguous in this layout).
struct ForwardLast<'p, 'a, T> {
    par: &'p Par,
    dims: Conv1dDims,
    /// (b, L, c) in f32.
    x: &'p [f32],
    /// Per batch, the `W-1` earlier samples as (W-1, c) rows.
    head: &'p [f32],
    /// The weight as (W, c).
    wt: &'p [f32],
    bias: Option<&'a [f32]>,
    activation: Activation,
    /// (b, L, c).
    out: &'p mut [T],
}

impl<T: Element> Kernel for ForwardLast<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let d = self.dims;
        let (l, c, w) = (d.seqlen, d.channels, d.width);
        let (x, head, wt, bias, act) = (self.x, self.head, self.wt, self.bias, self.activation);
        let blocks = l.div_ceil(TIME_BLOCK);
        // One task per (batch, block of time steps).
        let mut chunks: Vec<(usize, usize, &mut [T])> = Vec::with_capacity(d.batch * blocks);
        for (i, batch_out) in self.out.chunks_mut(l * c).enumerate() {
            for (bi, o) in batch_out.chunks_mut(TIME_BLOCK * c).enumerate() {
                chunks.push((i, bi * TIME_BLOCK, o));
            }
        }
        self.par.map(chunks, |(i, t0, o)| {
            s.vectorize(
                #[inline(always)]
                || {
                    let cv = c - c % S::LANES;
                    let mut row = vec![0.0f32; c];
                    // The input row at time j of batch i (j may reach back W-1 steps).
                    let src = |j: isize| last_row(x, head, d, i, j);
                    for (tt, orow) in o.chunks_mut(c).enumerate() {
                        let t = (t0 + tt) as isize;
                        for ch in (0..cv).step_by(S::LANES) {
                            let mut acc = match bias {
                                Some(b) => s.load(&b[ch..]),
                                None => s.zero(),
                            };
                            for k in 0..w {
                                let xs = src(t + k as isize + 1 - w as isize);
                                acc = s.mul_add(s.load(&wt[k * c + ch..]), s.load(&xs[ch..]), acc);
                            }
                            if act == Activation::Silu {
                                acc = math::silu(s, acc);
                            }
                            s.store(&mut row[ch..], acc);
                        }
                        for ch in cv..c {
                            let mut acc = bias.map_or(0.0, |b| b[ch]);
                            for k in 0..w {
                                let xs = src(t + k as isize + 1 - w as isize);
                                acc = wt[k * c + ch].mul_add(xs[ch], acc);
                            }
                            if act == Activation::Silu {
                                acc /= 1.0 + (-acc).exp();
                            }
                            row[ch] = acc;
                        }
                        // Inside the kernel: compiled for its instruction set.
                        mamba_core::element::convert_into(&row, orow);
                    }
                },
            )
        });
    }
}

/// For the channel-last passes: the weight as (W, c), and the samples before the first
/// as (b, W-1, c) (the initial states transposed, or zeros).
fn last_weight_and_head<T: Element>(
    args: &CausalConv1dArgs<'_, T>,
    dims: Conv1dDims,
) -> (Vec<f32>, Vec<f32>) {
    let (b, c, w) = (dims.batch, dims.channels, dims.width);
    let mut wt = vec![0.0f32; w * c];
    for ch in 0..c {
        for k in 0..w {
            wt[k * c + ch] = args.weight.data[ch * w + k];
        }
    }
    let mut head = vec![0.0f32; b * (w - 1) * c];
    if let Some(init) = args.initial_states {
        for i in 0..b {
            for ch in 0..c {
                for k in 0..w - 1 {
                    head[(i * (w - 1) + k) * c + ch] = init.data[(i * c + ch) * (w - 1) + k];
                }
            }
        }
    }
    (wt, head)
}

/// The channel-last forward (see [`ForwardLast`]).
fn forward_channel_last<T: Element>(
    be: &CpuSimd,
    args: &CausalConv1dArgs<'_, T>,
    dims: Conv1dDims,
    out: &mut [T],
    final_states: Option<&mut [f32]>,
) {
    let (b, l, c, w) = (dims.batch, dims.seqlen, dims.channels, dims.width);
    let x = to_f32(args.x.data);
    let (wt, head) = last_weight_and_head(args, dims);
    be.isa.dispatch(ForwardLast {
        par: &be.par,
        dims,
        x: &x,
        head: &head,
        wt: &wt,
        bias: args.bias.map(|t| t.data),
        activation: args.activation,
        out,
    });
    if let Some(fs) = final_states {
        // The last W-1 columns of xp: x's last samples, reaching into the head when L < W-1.
        for i in 0..b {
            for ch in 0..c {
                for k in 0..w - 1 {
                    let j = l as isize - (w as isize - 1) + k as isize;
                    fs[(i * c + ch) * (w - 1) + k] = if j >= 0 {
                        x[(i * l + j as usize) * c + ch]
                    } else {
                        head[(i * (w - 1) + (w as isize - 1 + j) as usize) * c + ch]
                    };
                }
            }
        }
    }
}

pub(crate) fn forward<T: Element>(
    be: &CpuSimd,
    args: &CausalConv1dArgs<'_, T>,
    out: &mut [T],
    final_states: Option<&mut [f32]>,
) -> Result<()> {
    let dims = args.validate_forward(out.len(), final_states.as_deref().map(<[f32]>::len))?;
    if dims.layout == ConvLayout::ChannelLast {
        forward_channel_last(be, args, dims, out, final_states);
        return Ok(());
    }
    let p = Problem::new(args, dims);
    let mut last = vec![0.0f32; dims.batch * dims.channels * (dims.width - 1)];
    let mut run = |y: &mut [f32]| {
        be.isa.dispatch(Forward {
            par: &be.par,
            p: &p,
            out: y,
            last: &mut last,
        })
    };
    // f32 outputs are written in place; others through a pooled f32 buffer.
    if let Some(y) = crate::convert::as_f32_mut(out) {
        run(y);
    } else {
        let mut y = scratch::for_overwrite::<f32>(out.len());
        run(&mut y);
        crate::convert::convert_slice(&y, out);
        scratch::give(y);
    }
    if let Some(fs) = final_states {
        fs.copy_from_slice(&last);
    }
    Ok(())
}

/// One row's gradients.
struct RowGrads {
    /// (W).
    dw: Vec<f32>,
    dbias: f32,
}

struct Backward<'p, 'a> {
    par: &'p Par,
    p: &'p Problem<'a>,
    /// Channel-first.
    dout: &'p [f32],
    dfinal: Option<&'p [f32]>,
    /// (b, c, L), channel-first.
    dx: &'p mut [f32],
    /// (b, c, W-1).
    dinit: &'p mut [f32],
}

impl Kernel for Backward<'_, '_> {
    type Output = Vec<RowGrads>;
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Vec<RowGrads> {
        let p = self.p;
        let d = p.dims;
        let (rows, l, w) = (d.batch * d.channels, d.seqlen, d.width);
        let rb = self.par.row_block(rows, MAX_ROW_BLOCK);
        let (dout, dfinal) = (self.dout, self.dfinal);
        let counts: Vec<usize> = (0..rows).step_by(rb).map(|r0| rb.min(rows - r0)).collect();
        let dinits = split_mut(self.dinit, counts.iter().map(|k| k * (w - 1)));
        let tasks: Vec<_> = self.dx.chunks_mut(rb * l).zip(dinits).enumerate().collect();
        let per_task = self.par.map(tasks, |(k, (dx, dinit))| {
            s.vectorize(
                #[inline(always)]
                || {
                    let lp = pad(l, MAX_LANES);
                    let mut xp = vec![0.0f32; lp + w - 1 + MAX_LANES];
                    let mut pre = vec![0.0f32; lp];
                    // dpre with W-1 zeros on both sides, so every shifted read is in range.
                    let mut dpp = vec![0.0f32; lp + 2 * (w - 1) + MAX_LANES];
                    let mut dxp = vec![0.0f32; pad(l + w - 1, MAX_LANES)];
                    let mut acc = vec![s.zero(); w];
                    let mut out = Vec::new();
                    for (rr, dxrow) in dx.chunks_mut(l).enumerate() {
                        let r = k * rb + rr;
                        let ch = r % d.channels;
                        let wr = &p.weight[ch * w..(ch + 1) * w];
                        p.fill_xp(r, &mut xp);
                        let bias = p.bias.map_or(0.0, |b| b[ch]);
                        conv_row(s, wr, bias, &xp, &mut pre, l);
                        // dpre = dout * act'(pre), zero past L.
                        let dp = &mut dpp[w - 1..];
                        dp[..l].copy_from_slice(&dout[r * l..(r + 1) * l]);
                        dp[l..].fill(0.0);
                        if p.activation == Activation::Silu {
                            for t in (0..l).step_by(S::LANES) {
                                let (_, g) = math::silu_and_grad(s, s.load(&pre[t..]));
                                let v = s.mul(s.load(&dp[t..]), g);
                                s.store(&mut dp[t..], v);
                            }
                        }
                        // dw[k] = sum_t dpre[t] xp[t + k]; dbias = sum_t dpre[t].
                        acc.iter_mut().for_each(|a| *a = s.zero());
                        let mut accb = s.zero();
                        for t in (0..l).step_by(S::LANES) {
                            let g = s.load(&dpp[w - 1 + t..]);
                            accb = s.add(accb, g);
                            for (kk, a) in acc.iter_mut().enumerate() {
                                *a = s.mul_add(g, s.load(&xp[t + kk..]), *a);
                            }
                        }
                        let dw: Vec<f32> = acc.iter().map(|&a| s.reduce_sum(a)).collect();
                        // dxp[m] = sum_k w[k] dpre[m - k], m over the W-1 + L columns.
                        for m in (0..l + w - 1).step_by(S::LANES) {
                            let mut v = s.zero();
                            for (kk, &wk) in wr.iter().enumerate() {
                                v = s.mul_add(s.splat(wk), s.load(&dpp[m + w - 1 - kk..]), v);
                            }
                            s.store(&mut dxp[m..], v);
                        }
                        if let Some(df) = dfinal {
                            for kk in 0..w - 1 {
                                dxp[l + kk] += df[r * (w - 1) + kk];
                            }
                        }
                        dxrow.copy_from_slice(&dxp[w - 1..w - 1 + l]);
                        if w > 1 {
                            dinit[rr * (w - 1)..(rr + 1) * (w - 1)].copy_from_slice(&dxp[..w - 1]);
                        }
                        out.push(RowGrads {
                            dw,
                            dbias: s.reduce_sum(accb),
                        });
                    }
                    out
                },
            )
        });
        per_task.into_iter().flatten().collect()
    }
}

/// The channel-last backward, without transposes: tasks of (batch, [`TIME_BLOCK`] time
/// steps) with every channel at once, as in [`ForwardLast`]. A task recomputes the
/// pre-activation of its steps and of the `W-1` after them (its outputs' gradients reach
/// that far), and returns its partial weight and bias gradients, summed in task order.
struct BackwardLast<'p> {
    par: &'p Par,
    inputs: LastInputs<'p>,
    /// (b, L, c) in f32.
    dout: &'p [f32],
    /// (b, c, W-1), as the final states.
    dfinal: Option<&'p [f32]>,
    /// (b, L, c).
    dx: &'p mut [f32],
    /// (b, c, W-1), as the initial states.
    dinit: &'p mut [f32],
}

/// The inputs of the channel-last passes.
struct LastInputs<'p> {
    dims: Conv1dDims,
    /// (b, L, c) in f32.
    x: &'p [f32],
    /// Per batch, the `W-1` earlier samples as (W-1, c) rows.
    head: &'p [f32],
    /// The weight as (W, c).
    wt: &'p [f32],
    bias: Option<&'p [f32]>,
    silu: bool,
}

impl LastInputs<'_> {
    /// The input row at time `j` of batch `i` (`j` may reach back `W-1` steps).
    #[inline(always)]
    fn row(&self, i: usize, j: isize) -> &[f32] {
        last_row(self.x, self.head, self.dims, i, j)
    }
}

/// The row at time `j` of batch `i` of channel-last `x` (b, L, c), `j` reaching back
/// into `head` (b, W-1, c) for the `W-1` samples before the first.
#[inline(always)]
fn last_row<'x>(x: &'x [f32], head: &'x [f32], dims: Conv1dDims, i: usize, j: isize) -> &'x [f32] {
    let (l, c, w) = (dims.seqlen, dims.channels, dims.width);
    if j >= 0 {
        let j = j as usize;
        &x[(i * l + j) * c..(i * l + j + 1) * c]
    } else {
        let h = (w as isize - 1 + j) as usize;
        &head[(i * (w - 1) + h) * c..(i * (w - 1) + h + 1) * c]
    }
}

/// What one task of [`BackwardLast`] reads.
struct LastTask<'p> {
    inputs: &'p LastInputs<'p>,
    /// The task's batch and its first and last (excluded) step.
    i: usize,
    t0: usize,
    t1: usize,
    /// One past the last step whose pre-activation the task needs: min(t1 + W - 1, L).
    te: usize,
    dout: &'p [f32],
    dfinal: Option<&'p [f32]>,
}

impl LastTask<'_> {
    /// The input row at time `j` of the task's batch.
    #[inline(always)]
    fn src(&self, j: isize) -> &[f32] {
        self.inputs.row(self.i, j)
    }

    /// The channels from `ch` on, `V::LANES` of them, in one pass over the task's steps
    /// (and the `W-1` after them): `grads` ((W + 1) c: dw as (W, c), then dbias) gets
    /// the task's partial sums, `dx` (rows t0..t1 of c) the input's gradient, and
    /// `dinit` ((c, W-1) of this batch), when given, the initial states'. The usual
    /// widths keep their rings in registers; any other width in memory.
    #[inline(always)]
    fn channels<V: Simd>(
        &self,
        v: V,
        ch: usize,
        grads: &mut [f32],
        dx: &mut [f32],
        dinit: Option<&mut [f32]>,
    ) {
        let z = v.zero();
        match self.inputs.dims.width {
            2 => self.fused(v, ch, grads, dx, dinit, [[z; 2]; 4]),
            3 => self.fused(v, ch, grads, dx, dinit, [[z; 3]; 4]),
            4 => self.fused(v, ch, grads, dx, dinit, [[z; 4]; 4]),
            w => self.fused(v, ch, grads, dx, dinit, [(); 4].map(|_| vec![z; w])),
        }
    }

    /// The pass of [`Self::channels`], with `W`-long rings for the weights, the last `W`
    /// input samples (`xr[k] = x[t + k + 1 - W]` once step `t`'s is in), the last `W`
    /// values of `dpre = dout * act'(pre)` (`dr[k] = dpre[t - k]`) and the weight
    /// gradient's sums. At step `t`, `dpre[t]` is formed, added into the weight and
    /// bias sums (steps before `t1`), and `dx[t - (W-1)] = sum_k w[k] dpre[t - k]`
    /// completed (`dpre` zero past `te`). The sums run over the same terms in the same
    /// order as the three separate passes this replaced (which read `x` twice and
    /// wrote and read back a `dpre` buffer).
    #[inline(always)]
    fn fused<V: Simd, R: AsMut<[V::V]>>(
        &self,
        v: V,
        ch: usize,
        grads: &mut [f32],
        dx: &mut [f32],
        mut dinit: Option<&mut [f32]>,
        rings: [R; 4],
    ) {
        let [mut wk, mut xr, mut dr, mut acc] = rings;
        let (wk, xr, dr, acc) = (wk.as_mut(), xr.as_mut(), dr.as_mut(), acc.as_mut());
        let d = self.inputs.dims;
        // The rings' length (a constant at the usual widths) is the width.
        let (l, c, w) = (d.seqlen, d.channels, wk.len());
        debug_assert_eq!(w, d.width);
        let (t0, t1, te) = (self.t0, self.t1, self.te);
        let z = v.zero();
        for (k, x) in wk.iter_mut().enumerate() {
            *x = v.load(&self.inputs.wt[k * c + ch..]);
        }
        let bias = self.inputs.bias.map_or(z, |b| v.load(&b[ch..]));
        xr.fill(z);
        for (k, x) in xr[1..].iter_mut().enumerate() {
            *x = v.load(&self.src(t0 as isize + k as isize + 1 - w as isize)[ch..]);
        }
        dr.fill(z);
        acc.fill(z);
        let mut accb = z;
        // dx rows before t0 are the initial states' (first task of a batch only).
        let first = if dinit.is_some() { 0 } else { t0 + w - 1 };
        for t in t0..t1 + w - 1 {
            let mut g = z;
            if t < te {
                xr.copy_within(1..w, 0);
                xr[w - 1] = v.load(&self.src(t as isize)[ch..]);
                let mut pre = bias;
                for k in 0..w {
                    pre = v.mul_add(wk[k], xr[k], pre);
                }
                g = v.load(&self.dout[(self.i * l + t) * c + ch..]);
                if self.inputs.silu {
                    g = v.mul(g, math::silu_and_grad(v, pre).1);
                }
                if t < t1 {
                    accb = v.add(accb, g);
                    for k in 0..w {
                        acc[k] = v.mul_add(g, xr[k], acc[k]);
                    }
                }
            }
            dr.copy_within(0..w - 1, 1);
            dr[0] = g;
            if t < first {
                continue;
            }
            // dx[tt] = sum_k w[k] dpre[tt + W-1 - k], tt = t - (W-1) (may be < t0 only
            // when the initial states' gradient is wanted, t0 = 0).
            let mut a = z;
            for k in 0..w {
                a = v.mul_add(wk[k], dr[k], a);
            }
            let tt = t as isize - (w as isize - 1);
            if tt >= t0 as isize {
                let tt = tt as usize;
                let o = &mut dx[(tt - t0) * c + ch..];
                v.store(o, a);
                if let Some(df) = self.dfinal {
                    if tt + w > l {
                        for (lane, o) in o[..V::LANES].iter_mut().enumerate() {
                            *o += df[(self.i * c + ch + lane) * (w - 1) + tt + w - 1 - l];
                        }
                    }
                }
            } else if let Some(di) = dinit.as_deref_mut() {
                // j = W-1 + tt: dinit[j] = sum_{k <= j} w[k] dpre[j - k], plus the final
                // states' gradient where the initial samples are among the last W-1.
                let j = (tt + w as isize - 1) as usize;
                let mut vals = [0.0f32; MAX_LANES];
                v.store(&mut vals, a);
                for (lane, &val) in vals[..V::LANES].iter().enumerate() {
                    let mut val = val;
                    if let Some(df) = self.dfinal {
                        if j >= l {
                            val += df[(self.i * c + ch + lane) * (w - 1) + j - l];
                        }
                    }
                    di[(ch + lane) * (w - 1) + j] = val;
                }
            }
        }
        for (k, &a) in acc.iter().enumerate() {
            v.store(&mut grads[k * c + ch..], a);
        }
        v.store(&mut grads[w * c + ch..], accb);
    }
}

impl Kernel for BackwardLast<'_> {
    /// Per task, its partial ((W, c) weight, then c bias) gradients.
    type Output = Vec<Vec<f32>>;
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Vec<Vec<f32>> {
        let d = self.inputs.dims;
        let (l, c, w) = (d.seqlen, d.channels, d.width);
        let blocks = l.div_ceil(TIME_BLOCK);
        // The initial states' gradient of batch i goes to its first task.
        let mut dinits: Vec<Option<&mut [f32]>> = self
            .dinit
            .chunks_mut((c * (w - 1)).max(1))
            .map(Some)
            .collect();
        dinits.resize_with(d.batch, || None);
        let mut tasks = Vec::with_capacity(d.batch * blocks);
        for (i, (batch_dx, dinit)) in self.dx.chunks_mut(l * c).zip(dinits).enumerate() {
            let mut dinit = if w > 1 { dinit } else { None };
            for (bi, dx) in batch_dx.chunks_mut(TIME_BLOCK * c).enumerate() {
                tasks.push((i, bi * TIME_BLOCK, dx, dinit.take()));
            }
        }
        let (inputs, dout, dfinal) = (&self.inputs, self.dout, self.dfinal);
        self.par.map(tasks, |(i, t0, dx, mut dinit)| {
            s.vectorize(
                #[inline(always)]
                || {
                    let t1 = t0 + dx.len() / c;
                    let task = LastTask {
                        inputs,
                        i,
                        t0,
                        t1,
                        te: (t1 + w - 1).min(l),
                        dout,
                        dfinal,
                    };
                    let mut grads = vec![0.0f32; (w + 1) * c];
                    let cv = c - c % S::LANES;
                    for ch in (0..cv).step_by(S::LANES) {
                        task.channels(s, ch, &mut grads, dx, dinit.as_deref_mut());
                    }
                    for ch in cv..c {
                        let sc = crate::simd::Scalar;
                        task.channels(sc, ch, &mut grads, dx, dinit.as_deref_mut());
                    }
                    grads
                },
            )
        })
    }
}

/// The channel-last backward (see [`BackwardLast`]).
fn backward_channel_last<T: Element>(
    be: &CpuSimd,
    args: &CausalConv1dArgs<'_, T>,
    dims: Conv1dDims,
    dout: &[T],
    dfinal_states: Option<&[f32]>,
) -> CausalConv1dGrads<T> {
    let (b, l, c, w) = (dims.batch, dims.seqlen, dims.channels, dims.width);
    let x = to_f32(args.x.data);
    let dout = to_f32(dout);
    let (wt, head) = last_weight_and_head(args, dims);
    let mut dx = scratch::zeroed::<f32>(b * l * c);
    let mut dinit = vec![0.0f32; b * c * (w - 1)];
    let partials = be.isa.dispatch(BackwardLast {
        par: &be.par,
        inputs: LastInputs {
            dims,
            x: &x,
            head: &head,
            wt: &wt,
            bias: args.bias.map(|t| t.data),
            silu: args.activation == Activation::Silu,
        },
        dout: &dout,
        dfinal: dfinal_states,
        dx: &mut dx,
        dinit: &mut dinit,
    });
    // The tasks' partial sums in task order: (W, c) -> the weight's (c, W).
    let mut sums = vec![0.0f32; (w + 1) * c];
    for p in &partials {
        for (a, v) in sums.iter_mut().zip(p) {
            *a += v;
        }
    }
    let mut dw = vec![0.0f32; c * w];
    for ch in 0..c {
        for k in 0..w {
            dw[ch * w + k] = sums[k * c + ch];
        }
    }
    // (The f32 copies of 16-bit inputs go back to the scratch pool as they drop.)
    drop((x, dout));
    CausalConv1dGrads {
        x: into_storage(dx),
        weight: dw,
        bias: args.bias.map(|_| sums[w * c..].to_vec()),
        initial_states: args.initial_states.map(|_| dinit),
    }
}

pub(crate) fn backward<T: Element>(
    be: &CpuSimd,
    args: &CausalConv1dArgs<'_, T>,
    dout: &[T],
    dfinal_states: Option<&[f32]>,
) -> Result<CausalConv1dGrads<T>> {
    let dims = args.validate_backward(dout.len(), dfinal_states.map(<[f32]>::len))?;
    if dims.layout == ConvLayout::ChannelLast {
        return Ok(backward_channel_last(be, args, dims, dout, dfinal_states));
    }
    let p = Problem::new(args, dims);
    let (b, c, l, w) = (dims.batch, dims.channels, dims.seqlen, dims.width);
    let dout = to_f32(dout);
    let mut dx = scratch::zeroed::<f32>(b * c * l);
    let mut dinit = vec![0.0f32; b * c * (w - 1)];
    let rows = be.isa.dispatch(Backward {
        par: &be.par,
        p: &p,
        dout: &dout,
        dfinal: dfinal_states,
        dx: &mut dx,
        dinit: &mut dinit,
    });
    // Sum the weight and bias gradients over the batch, in row order.
    let mut dw = vec![0.0f32; c * w];
    let mut dbias = vec![0.0f32; c];
    for (r, g) in rows.iter().enumerate() {
        let ch = r % c;
        for (d, v) in dw[ch * w..(ch + 1) * w].iter_mut().zip(&g.dw) {
            *d += v;
        }
        dbias[ch] += g.dbias;
    }
    let dx_out = into_storage(dx);
    Ok(CausalConv1dGrads {
        x: dx_out,
        weight: dw,
        bias: args.bias.map(|_| dbias),
        initial_states: args.initial_states.map(|_| dinit),
    })
}
