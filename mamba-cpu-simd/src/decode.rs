//! SPEC 4 and 5: the decode steps `selective_state_update` and
//! `causal_conv1d_update`.
//!
//! A decode step touches each state value once, so the work is small and
//! memory-bound: rows are split over threads only when there are enough of them to
//! pay for the hand-off, and the state update is vectorised across `N`.

use mamba_core::ops::state_update::StateUpdateDims;
use mamba_core::scratch;
use mamba_core::{
    Activation, CausalConv1dUpdateArgs, Element, Result, SelectiveStateUpdateArgs, TensorMut,
};

use crate::convert::{convert_slice, opt_to_f32, to_f32};
use crate::par::split_mut;
use crate::simd::{math, Kernel, Scalar, Simd, MAX_LANES};
use crate::CpuSimd;

/// Below this many state values a decode step runs on one thread: handing work to
/// rayon's sleeping workers cost ~40 µs a call on the 2-core development VM, more
/// than a single thread takes for 2^18 values (at 2^16, one token through four
/// 256-wide blocks took 0.52-0.55 ms, at 2^18 0.36-0.37).
const PARALLEL_MIN: usize = 1 << 18;

/// The read-only inputs of a state update, as `f32`.
struct Fields<'p> {
    dims: StateUpdateDims,
    x: &'p [f32],
    dt: &'p [f32],
    b: &'p [f32],
    c: &'p [f32],
    z: Option<&'p [f32]>,
    a: &'p [f32],
    d: Option<&'p [f32]>,
    bias: Option<&'p [f32]>,
    softplus: bool,
    limit: Option<(f32, f32)>,
}

struct StateUpdate<'p> {
    be: &'p CpuSimd,
    fields: Fields<'p>,
    state: &'p mut [f32],
    out: &'p mut [f32],
}

impl Kernel for StateUpdate<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let k = &self.fields;
        let dims = k.dims;
        let (h, p, n) = (dims.nheads, dims.headdim, dims.dstate);
        // Tasks of whole (batch, head) pairs: p rows of N state values each.
        let heads = dims.batch * h;
        let threads = if heads * p * n >= PARALLEL_MIN {
            self.be.par.threads
        } else {
            1
        };
        let per_task = heads.div_ceil(4 * threads).max(1);
        let tasks: Vec<_> = self
            .state
            .chunks_mut(per_task * p * n)
            .zip(self.out.chunks_mut(per_task * p))
            .enumerate()
            .collect();
        let body = |(task, (state, out)): (usize, (&mut [f32], &mut [f32]))| {
            s.vectorize(
                #[inline(always)]
                || {
                    for (hh, (st, o)) in state.chunks_mut(p * n).zip(out.chunks_mut(p)).enumerate()
                    {
                        let head = task * per_task + hh;
                        update_head(s, k, head / h, head % h, st, o);
                    }
                },
            )
        };
        if threads > 1 {
            self.be.par.map(tasks, body);
        } else {
            tasks.into_iter().for_each(body);
        }
    }
}

/// One (batch, head): `p` rows of the state, vectorised across `N`.
#[inline(always)]
fn update_head<S: Simd>(
    s: S,
    k: &Fields<'_>,
    i: usize,
    j: usize,
    state: &mut [f32],
    out: &mut [f32],
) {
    let dims = k.dims;
    let (h, p, n, g) = (dims.nheads, dims.headdim, dims.dstate, dims.ngroups);
    let bc0 = (i * g + dims.group(j)) * n;
    let (brow, crow) = (&k.b[bc0..bc0 + n], &k.c[bc0..bc0 + n]);
    let full = n - n % S::LANES;
    for q in 0..p {
        let r = j * p + q;
        let xi = i * h * p + r;
        let raw = k.dt[xi] + k.bias.map_or(0.0, |b| b[r]);
        let (step, _) = math::step_size(Scalar, raw, k.softplus, k.limit);
        let xv = k.x[xi];
        let arow = &k.a[r * n..(r + 1) * n];
        let st = &mut state[q * n..(q + 1) * n];
        let vstep = s.splat(step);
        let vdx = s.splat(step * xv);
        let mut acc = s.zero();
        let mut e = 0;
        if uniform(arow) {
            // One A for the row (Mamba-2 repeats the head's A over p and N): one
            // exponential for the row, the same values the per-element path computes.
            let decay = math::exp(s, s.mul(vstep, s.splat(arow[0])));
            while e < full {
                let v = s.mul_add(decay, s.load(&st[e..]), s.mul(vdx, s.load(&brow[e..])));
                s.store(&mut st[e..], v);
                acc = s.mul_add(v, s.load(&crow[e..]), acc);
                e += S::LANES;
            }
        } else {
            while e < full {
                let decay = math::exp(s, s.mul(vstep, s.load(&arow[e..])));
                let v = s.mul_add(decay, s.load(&st[e..]), s.mul(vdx, s.load(&brow[e..])));
                s.store(&mut st[e..], v);
                acc = s.mul_add(v, s.load(&crow[e..]), acc);
                e += S::LANES;
            }
        }
        let mut y = s.reduce_sum(acc);
        for e in full..n {
            let decay = math::exp(Scalar, step * arow[e]);
            let v = decay * st[e] + step * xv * brow[e];
            st[e] = v;
            y += v * crow[e];
        }
        y += k.d.map_or(0.0, |d| d[r]) * xv;
        if let Some(z) = k.z {
            y *= math::silu(Scalar, z[xi]);
        }
        out[q] = y;
    }
}

/// Whether every value of `row` is bitwise its first (so `exp(step * a)` is the same
/// for all of them; a NaN row takes the per-element path).
#[inline(always)]
fn uniform(row: &[f32]) -> bool {
    match row.first() {
        Some(&a0) => {
            // Branch-free within blocks of 16, so that it compiles to vector compares.
            let bits = a0.to_bits();
            let mut blocks = row.chunks_exact(16);
            let same = |b: &[f32]| b.iter().fold(true, |ok, v| ok & (v.to_bits() == bits));
            blocks.all(same) && same(blocks.remainder())
        }
        None => false,
    }
}

pub(crate) fn state_update<T: Element>(
    be: &CpuSimd,
    args: &SelectiveStateUpdateArgs<'_, T>,
    state: &mut [f32],
    out: &mut [T],
) -> Result<()> {
    let dims = args.validate(state.len(), out.len())?;
    let (x, dt, b, c) = (
        to_f32(args.x.data),
        to_f32(args.dt.data),
        to_f32(args.b.data),
        to_f32(args.c.data),
    );
    let z = opt_to_f32(args.z.map(|t| t.data));
    let mut y = scratch::zeroed::<f32>(out.len());
    be.isa.dispatch(StateUpdate {
        be,
        fields: Fields {
            dims,
            x: &x,
            dt: &dt,
            b: &b,
            c: &c,
            z: z.as_deref(),
            a: args.a.data,
            d: args.d.map(|t| t.data),
            bias: args.dt_bias.map(|t| t.data),
            softplus: args.dt_softplus,
            limit: args.dt_limit,
        },
        state,
        out: &mut y,
    });
    convert_slice(&y, out);
    scratch::give(y);
    Ok(())
}

pub(crate) fn conv_update<T: Element>(
    be: &CpuSimd,
    args: &CausalConv1dUpdateArgs<'_, T>,
    conv_state: TensorMut<'_, f32>,
    out: &mut [T],
) -> Result<()> {
    let dims = args.validate(&conv_state, out.len())?;
    let (w, sl, ln, ch) = (dims.width, dims.state_len, dims.steps, dims.channels);
    let x = to_f32(args.x.data);
    let weight = args.weight.data;
    let bias = args.bias.map(|t| t.data);
    let silu = args.activation == Activation::Silu;
    let rows = dims.batch * ch;
    let mut y = scratch::zeroed::<f32>(out.len());
    // Each row: the state and the new samples side by side, the convolution at the
    // last `Ln` positions, then the last `S` columns back into the state. `W` is small,
    // so this is plain scalar code; the activation runs vectorised over the task's
    // outputs afterwards (its scalar form held ~12% of a 768-wide CPU decode token at
    // batch 16); rows go to threads when there are many.
    let threads = if rows * (sl + ln) >= PARALLEL_MIN {
        be.par.threads
    } else {
        1
    };
    let per_task = rows.div_ceil(4 * threads).max(1);
    let starts: Vec<usize> = (0..rows).step_by(per_task).collect();
    let counts = starts.iter().map(|&r0| per_task.min(rows - r0));
    let states = split_mut(conv_state.data, counts.clone().map(|k| k * sl));
    let ys = split_mut(&mut y, counts.map(|k| k * ln));
    let tasks: Vec<_> = starts.into_iter().zip(states.into_iter().zip(ys)).collect();
    let body = |(r0, (state, yo)): (usize, (&mut [f32], &mut [f32]))| {
        let mut cat = vec![0.0f32; sl + ln];
        for (rr, yr) in yo.chunks_mut(ln).enumerate() {
            let r = r0 + rr;
            let c = r % ch;
            let st = &mut state[rr * sl..(rr + 1) * sl];
            cat[..sl].copy_from_slice(st);
            cat[sl..].copy_from_slice(&x[r * ln..(r + 1) * ln]);
            let wr = &weight[c * w..(c + 1) * w];
            for (t, yv) in yr.iter_mut().enumerate() {
                let first = sl + t + 1 - w;
                let mut acc = bias.map_or(0.0, |b| b[c]);
                for (k, &wk) in wr.iter().enumerate() {
                    acc += wk * cat[first + k];
                }
                *yv = acc;
            }
            st.copy_from_slice(&cat[ln..]);
        }
        if silu {
            be.isa.dispatch(SiluInPlace(yo));
        }
    };
    if threads > 1 {
        be.par.map(tasks, body);
    } else {
        tasks.into_iter().for_each(body);
    }
    convert_slice(&y, out);
    scratch::give(y);
    Ok(())
}

/// `v = silu(v)` over a slice, vectorised; the tail through a padded vector, so every
/// element gets the same arithmetic.
struct SiluInPlace<'a>(&'a mut [f32]);

impl Kernel for SiluInPlace<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let l = S::LANES;
        let mut chunks = self.0.chunks_exact_mut(l);
        for c in &mut chunks {
            let v = math::silu(s, s.load(c));
            s.store(c, v);
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut buf = [0.0f32; MAX_LANES];
            buf[..tail.len()].copy_from_slice(tail);
            let v = math::silu(s, s.load(&buf));
            s.store(&mut buf, v);
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }
}
