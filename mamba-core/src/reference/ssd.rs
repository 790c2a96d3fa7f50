//! Reference `ssd`: the SPEC's matrix recurrence, one (batch, head) at a time. The
//! chunked algorithm is how fast backends compute it; `chunk_size` does not matter here.

use alloc::vec;

use super::scan::{opt, store};
use crate::element::{Element, Real};
use crate::error::Result;
use crate::math::{silu, silu_grad, step_size};
use crate::ops::ssd::{SsdArgs, SsdDims, SsdGrads};

/// `true` when the state is reset to zero before step `t` of batch `i`.
#[inline]
pub(crate) fn resets<T, P>(args: &SsdArgs<'_, T, P>, dims: &SsdDims, i: usize, t: usize) -> bool {
    match &args.seq_idx {
        Some(s) if t > 0 => s.data[i * dims.seqlen + t] != s.data[i * dims.seqlen + t - 1],
        _ => false,
    }
}

/// `D` for head `j`, channel `q`.
#[inline]
fn skip<A: Real, T, P: Element>(args: &SsdArgs<'_, T, P>, dims: &SsdDims, j: usize, q: usize) -> A {
    let idx = if dims.d_per_channel {
        j * dims.headdim + q
    } else {
        j
    };
    opt(&args.d, idx, A::zero())
}

pub(crate) fn forward<T: Element, P: Element, A: Real>(
    args: &SsdArgs<'_, T, P>,
    out: &mut [T],
    mut final_states: Option<&mut [P]>,
) -> Result<()> {
    let dims = args.validate_forward(out.len(), final_states.as_deref().map(<[P]>::len))?;
    let SsdDims {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        ..
    } = dims;
    let mut s = vec![A::zero(); headdim * dstate];
    for i in 0..batch {
        for j in 0..nheads {
            let k = dims.group(j);
            let state0 = ((i * nheads + j) * headdim) * dstate;
            for (e, v) in s.iter_mut().enumerate() {
                *v = opt(&args.initial_states, state0 + e, A::zero());
            }
            let a = A::of(args.a.data[j]);
            for t in 0..seqlen {
                if resets(args, &dims, i, t) {
                    s.iter_mut().for_each(|v| *v = A::zero());
                }
                let raw = A::of(args.dt.data[(i * seqlen + t) * nheads + j])
                    + opt(&args.dt_bias, j, A::zero());
                let (step, _) = step_size(raw, args.dt_softplus, args.dt_limit);
                let decay = (step * a).exp();
                let bc0 = ((i * seqlen + t) * ngroups + k) * dstate;
                let x0 = ((i * seqlen + t) * nheads + j) * headdim;
                for q in 0..headdim {
                    let xv = A::of(args.x.data[x0 + q]);
                    let mut y = A::zero();
                    for n in 0..dstate {
                        let e = q * dstate + n;
                        s[e] = decay * s[e] + step * xv * A::of(args.b.data[bc0 + n]);
                        y = y + s[e] * A::of(args.c.data[bc0 + n]);
                    }
                    y = y + skip::<A, T, P>(args, &dims, j, q) * xv;
                    if let Some(z) = &args.z {
                        y = y * silu(A::of(z.data[x0 + q]));
                    }
                    out[x0 + q] = y.to();
                }
            }
            if let Some(fs) = final_states.as_deref_mut() {
                for (e, v) in s.iter().enumerate() {
                    fs[state0 + e] = v.to();
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn backward<T: Element, P: Element, A: Real>(
    args: &SsdArgs<'_, T, P>,
    dout: &[T],
    dfinal_states: Option<&[P]>,
) -> Result<SsdGrads<T, P>> {
    let dims = args.validate_backward(dout.len(), dfinal_states.map(<[P]>::len))?;
    let SsdDims {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        d_per_channel,
    } = dims;
    let pn = headdim * dstate;
    let mut dx = vec![A::zero(); args.x.data.len()];
    let mut ddt = vec![A::zero(); args.dt.data.len()];
    let mut da = vec![A::zero(); nheads];
    let mut db = vec![A::zero(); args.b.data.len()];
    let mut dc = vec![A::zero(); args.c.data.len()];
    let mut dd = vec![
        A::zero();
        if d_per_channel {
            nheads * headdim
        } else {
            nheads
        }
    ];
    let mut dz = vec![A::zero(); args.x.data.len()];
    let mut dbias = vec![A::zero(); nheads];
    let mut dinit = vec![A::zero(); batch * nheads * pn];

    // states[t + 1] is S[t]; states[0] the initial state. A reset before t is applied
    // when S[t] is computed, and `prev` below reads 0 for it.
    let mut states = vec![A::zero(); (seqlen + 1) * pn];
    let mut steps = vec![(A::zero(), A::zero()); seqlen];
    let mut ys = vec![A::zero(); seqlen * headdim];
    let mut g = vec![A::zero(); pn];
    for i in 0..batch {
        for j in 0..nheads {
            let k = dims.group(j);
            let state0 = ((i * nheads + j) * headdim) * dstate;
            let a = A::of(args.a.data[j]);
            for e in 0..pn {
                states[e] = opt(&args.initial_states, state0 + e, A::zero());
            }
            for t in 0..seqlen {
                let raw = A::of(args.dt.data[(i * seqlen + t) * nheads + j])
                    + opt(&args.dt_bias, j, A::zero());
                steps[t] = step_size(raw, args.dt_softplus, args.dt_limit);
                let step = steps[t].0;
                let decay = (step * a).exp();
                let reset = resets(args, &dims, i, t);
                let bc0 = ((i * seqlen + t) * ngroups + k) * dstate;
                let x0 = ((i * seqlen + t) * nheads + j) * headdim;
                for q in 0..headdim {
                    let xv = A::of(args.x.data[x0 + q]);
                    let mut y = A::zero();
                    for n in 0..dstate {
                        let e = q * dstate + n;
                        let prev = if reset { A::zero() } else { states[t * pn + e] };
                        let v = decay * prev + step * xv * A::of(args.b.data[bc0 + n]);
                        states[(t + 1) * pn + e] = v;
                        y = y + v * A::of(args.c.data[bc0 + n]);
                    }
                    ys[t * headdim + q] = y + skip::<A, T, P>(args, &dims, j, q) * xv;
                }
            }
            for e in 0..pn {
                g[e] = dfinal_states.map_or(A::zero(), |s| A::of(s[state0 + e]));
            }
            for t in (0..seqlen).rev() {
                let (step, dstep) = steps[t];
                let decay = (step * a).exp();
                let reset = resets(args, &dims, i, t);
                let bc0 = ((i * seqlen + t) * ngroups + k) * dstate;
                let x0 = ((i * seqlen + t) * nheads + j) * headdim;
                let mut dstep_acc = A::zero();
                for q in 0..headdim {
                    let go = A::of(dout[x0 + q]);
                    let dy = match &args.z {
                        Some(z) => {
                            let zv = A::of(z.data[x0 + q]);
                            dz[x0 + q] = go * ys[t * headdim + q] * silu_grad(zv);
                            go * silu(zv)
                        }
                        None => go,
                    };
                    let xv = A::of(args.x.data[x0 + q]);
                    let mut dxv = A::zero();
                    if args.d.is_some() {
                        let di = if d_per_channel { j * headdim + q } else { j };
                        dd[di] = dd[di] + dy * xv;
                        dxv = dxv + dy * skip::<A, T, P>(args, &dims, j, q);
                    }
                    for n in 0..dstate {
                        let e = q * dstate + n;
                        let bv = A::of(args.b.data[bc0 + n]);
                        let cv = A::of(args.c.data[bc0 + n]);
                        let prev = if reset { A::zero() } else { states[t * pn + e] };
                        g[e] = g[e] + dy * cv;
                        dc[bc0 + n] = dc[bc0 + n] + dy * states[(t + 1) * pn + e];
                        dstep_acc = dstep_acc + g[e] * (decay * a * prev + xv * bv);
                        da[j] = da[j] + g[e] * decay * step * prev;
                        db[bc0 + n] = db[bc0 + n] + g[e] * step * xv;
                        dxv = dxv + g[e] * step * bv;
                        // The state before a reset does not reach S[t].
                        g[e] = if reset { A::zero() } else { g[e] * decay };
                    }
                    dx[x0 + q] = dxv;
                }
                let draw = dstep_acc * dstep;
                ddt[(i * seqlen + t) * nheads + j] = draw;
                dbias[j] = dbias[j] + draw;
            }
            dinit[state0..state0 + pn].copy_from_slice(&g);
        }
    }
    Ok(SsdGrads {
        x: store(&dx),
        dt: store(&ddt),
        a: store(&da),
        b: store(&db),
        c: store(&dc),
        d: args.d.map(|_| store(&dd)),
        z: args.z.map(|_| store(&dz)),
        dt_bias: args.dt_bias.map(|_| store(&dbias)),
        initial_states: args.initial_states.map(|_| store(&dinit)),
    })
}
