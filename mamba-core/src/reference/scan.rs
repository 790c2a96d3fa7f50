//! Reference `selective_scan`: the SPEC's recurrence, one channel at a time.

use alloc::vec;
use alloc::vec::Vec;

use crate::element::{Element, Real};
use crate::error::Result;
use crate::math::{silu, silu_grad, step_size};
use crate::ops::selective_scan::{SelectiveScanArgs, SelectiveScanDims, SelectiveScanGrads};

/// Reads the optional parameter `t[idx]`, or `default`.
#[inline]
pub(crate) fn opt<A: Real, E: Element>(
    t: &Option<crate::Tensor<'_, E>>,
    idx: usize,
    default: A,
) -> A {
    t.as_ref().map_or(default, |t| A::of(t.data[idx]))
}

pub(crate) fn forward<T: Element, P: Element, A: Real>(
    args: &SelectiveScanArgs<'_, T, P>,
    out: &mut [T],
    mut last_state: Option<&mut [P]>,
) -> Result<()> {
    let dims = args.validate_forward(out.len(), last_state.as_deref().map(<[P]>::len))?;
    let SelectiveScanDims {
        batch,
        dim,
        seqlen,
        dstate,
        b_layout,
        c_layout,
    } = dims;
    let mut h = vec![A::zero(); dstate];
    for i in 0..batch {
        for c in 0..dim {
            let row = (i * dim + c) * seqlen;
            let srow = (i * dim + c) * dstate;
            for (n, hn) in h.iter_mut().enumerate() {
                *hn = opt(&args.initial_state, srow + n, A::zero());
            }
            for t in 0..seqlen {
                let raw = A::of(args.delta.data[row + t]) + opt(&args.delta_bias, c, A::zero());
                let (dt, _) = step_size(raw, args.delta_softplus, None);
                let u = A::of(args.u.data[row + t]);
                let mut y = A::zero();
                for n in 0..dstate {
                    let a = A::of(args.a.data[c * dstate + n]);
                    let bv = A::of(args.b.data[b_layout.index(&dims, i, c, n, t)]);
                    let cv = A::of(args.c.data[c_layout.index(&dims, i, c, n, t)]);
                    h[n] = (dt * a).exp() * h[n] + dt * bv * u;
                    y = y + cv * h[n];
                }
                y = y + opt(&args.d, c, A::zero()) * u;
                if let Some(z) = &args.z {
                    y = y * silu(A::of(z.data[row + t]));
                }
                out[row + t] = y.to();
            }
            if let Some(ls) = last_state.as_deref_mut() {
                for n in 0..dstate {
                    ls[srow + n] = h[n].to();
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn backward<T: Element, P: Element, A: Real>(
    args: &SelectiveScanArgs<'_, T, P>,
    dout: &[T],
    dlast_state: Option<&[P]>,
) -> Result<SelectiveScanGrads<T, P>> {
    let dims = args.validate_backward(dout.len(), dlast_state.map(<[P]>::len))?;
    let SelectiveScanDims {
        batch,
        dim,
        seqlen,
        dstate,
        b_layout,
        c_layout,
    } = dims;
    let io = batch * dim * seqlen;
    let mut du = vec![A::zero(); io];
    let mut ddelta = vec![A::zero(); io];
    let mut dz = vec![A::zero(); io];
    let mut da = vec![A::zero(); dim * dstate];
    let mut db = vec![A::zero(); args.b.data.len()];
    let mut dc = vec![A::zero(); args.c.data.len()];
    let mut dd = vec![A::zero(); dim];
    let mut dbias = vec![A::zero(); dim];
    let mut dinit = vec![A::zero(); batch * dim * dstate];

    // hs[t + 1] is h[t]; hs[0] is the initial state.
    let mut hs = vec![A::zero(); (seqlen + 1) * dstate];
    let mut steps = vec![(A::zero(), A::zero()); seqlen];
    let mut ys = vec![A::zero(); seqlen];
    let mut g = vec![A::zero(); dstate];
    for i in 0..batch {
        for c in 0..dim {
            let row = (i * dim + c) * seqlen;
            let srow = (i * dim + c) * dstate;
            // Forward again, keeping every state.
            for n in 0..dstate {
                hs[n] = opt(&args.initial_state, srow + n, A::zero());
            }
            for t in 0..seqlen {
                let raw = A::of(args.delta.data[row + t]) + opt(&args.delta_bias, c, A::zero());
                steps[t] = step_size(raw, args.delta_softplus, None);
                let dt = steps[t].0;
                let u = A::of(args.u.data[row + t]);
                let mut y = A::zero();
                for n in 0..dstate {
                    let a = A::of(args.a.data[c * dstate + n]);
                    let bv = A::of(args.b.data[b_layout.index(&dims, i, c, n, t)]);
                    let cv = A::of(args.c.data[c_layout.index(&dims, i, c, n, t)]);
                    let h = (dt * a).exp() * hs[t * dstate + n] + dt * bv * u;
                    hs[(t + 1) * dstate + n] = h;
                    y = y + cv * h;
                }
                ys[t] = y + opt(&args.d, c, A::zero()) * u;
            }
            // Backward through time.
            for n in 0..dstate {
                g[n] = dlast_state.map_or(A::zero(), |s| A::of(s[srow + n]));
            }
            for t in (0..seqlen).rev() {
                let go = A::of(dout[row + t]);
                let dy = match &args.z {
                    Some(z) => {
                        let zv = A::of(z.data[row + t]);
                        dz[row + t] = go * ys[t] * silu_grad(zv);
                        go * silu(zv)
                    }
                    None => go,
                };
                let u = A::of(args.u.data[row + t]);
                let mut du_t = A::zero();
                if let Some(d) = &args.d {
                    dd[c] = dd[c] + dy * u;
                    du_t = du_t + dy * A::of(d.data[c]);
                }
                let (dt, dstep) = steps[t];
                let mut ddt = A::zero();
                for n in 0..dstate {
                    let a = A::of(args.a.data[c * dstate + n]);
                    let bi = b_layout.index(&dims, i, c, n, t);
                    let ci = c_layout.index(&dims, i, c, n, t);
                    let bv = A::of(args.b.data[bi]);
                    let cv = A::of(args.c.data[ci]);
                    let h = hs[(t + 1) * dstate + n];
                    let hprev = hs[t * dstate + n];
                    let decay = (dt * a).exp();
                    g[n] = g[n] + dy * cv;
                    dc[ci] = dc[ci] + dy * h;
                    ddt = ddt + g[n] * (decay * a * hprev + bv * u);
                    da[c * dstate + n] = da[c * dstate + n] + g[n] * decay * dt * hprev;
                    db[bi] = db[bi] + g[n] * dt * u;
                    du_t = du_t + g[n] * dt * bv;
                    g[n] = g[n] * decay;
                }
                let draw = ddt * dstep;
                ddelta[row + t] = draw;
                dbias[c] = dbias[c] + draw;
                du[row + t] = du_t;
            }
            dinit[srow..srow + dstate].copy_from_slice(&g);
        }
    }
    Ok(SelectiveScanGrads {
        u: store(&du),
        delta: store(&ddelta),
        a: store(&da),
        b: store(&db),
        c: store(&dc),
        d: args.d.map(|_| store(&dd)),
        z: args.z.map(|_| store(&dz)),
        delta_bias: args.delta_bias.map(|_| store(&dbias)),
        initial_state: args.initial_state.map(|_| store(&dinit)),
    })
}

/// Rounds an accumulator buffer into a storage type.
pub(crate) fn store<A: Real, E: Element>(v: &[A]) -> Vec<E> {
    v.iter().map(|&x| x.to()).collect()
}
