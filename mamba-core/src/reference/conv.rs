//! Reference `causal_conv1d` and `causal_conv1d_update`.

use alloc::vec;

use super::scan::{opt, store};
use crate::element::{Element, Real};
use crate::error::Result;
use crate::math::{silu, silu_grad};
use crate::ops::conv1d::{Activation, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs};
use crate::tensor::TensorMut;

#[inline]
fn act<A: Real>(a: Activation, v: A) -> A {
    match a {
        Activation::None => v,
        Activation::Silu => silu(v),
    }
}

#[inline]
fn act_grad<A: Real>(a: Activation, v: A) -> A {
    match a {
        Activation::None => A::one(),
        Activation::Silu => silu_grad(v),
    }
}

pub(crate) fn forward<T: Element, P: Element, A: Real>(
    args: &CausalConv1dArgs<'_, T, P>,
    out: &mut [T],
    mut final_states: Option<&mut [P]>,
) -> Result<()> {
    let dims = args.validate_forward(out.len(), final_states.as_deref().map(<[P]>::len))?;
    let (w, l) = (dims.width, dims.seqlen);
    // xp: the W-1 earlier samples, then x.
    let mut xp = vec![A::zero(); w - 1 + l];
    for i in 0..dims.batch {
        for ch in 0..dims.channels {
            let s0 = (i * dims.channels + ch) * (w - 1);
            for k in 0..w - 1 {
                xp[k] = opt(&args.initial_states, s0 + k, A::zero());
            }
            for t in 0..l {
                xp[w - 1 + t] = A::of(args.x.data[dims.index(i, ch, t)]);
            }
            for t in 0..l {
                let mut acc = opt(&args.bias, ch, A::zero());
                for k in 0..w {
                    acc = acc + A::of(args.weight.data[ch * w + k]) * xp[t + k];
                }
                out[dims.index(i, ch, t)] = act(args.activation, acc).to();
            }
            if let Some(fs) = final_states.as_deref_mut() {
                for k in 0..w - 1 {
                    fs[s0 + k] = xp[l + k].to();
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn backward<T: Element, P: Element, A: Real>(
    args: &CausalConv1dArgs<'_, T, P>,
    dout: &[T],
    dfinal_states: Option<&[P]>,
) -> Result<CausalConv1dGrads<T, P>> {
    let dims = args.validate_backward(dout.len(), dfinal_states.map(<[P]>::len))?;
    let (w, l) = (dims.width, dims.seqlen);
    let mut dx = vec![A::zero(); args.x.data.len()];
    let mut dw = vec![A::zero(); dims.channels * w];
    let mut dbias = vec![A::zero(); dims.channels];
    let mut dinit = vec![A::zero(); dims.batch * dims.channels * (w - 1)];
    let mut xp = vec![A::zero(); w - 1 + l];
    let mut dxp = vec![A::zero(); w - 1 + l];
    for i in 0..dims.batch {
        for ch in 0..dims.channels {
            let s0 = (i * dims.channels + ch) * (w - 1);
            for k in 0..w - 1 {
                xp[k] = opt(&args.initial_states, s0 + k, A::zero());
            }
            for t in 0..l {
                xp[w - 1 + t] = A::of(args.x.data[dims.index(i, ch, t)]);
            }
            dxp.iter_mut().for_each(|v| *v = A::zero());
            // The final states are the last W-1 columns of xp.
            if let Some(dfs) = dfinal_states {
                for k in 0..w - 1 {
                    dxp[l + k] = dxp[l + k] + A::of(dfs[s0 + k]);
                }
            }
            for t in 0..l {
                let mut pre = opt(&args.bias, ch, A::zero());
                for k in 0..w {
                    pre = pre + A::of(args.weight.data[ch * w + k]) * xp[t + k];
                }
                let dpre = A::of(dout[dims.index(i, ch, t)]) * act_grad(args.activation, pre);
                dbias[ch] = dbias[ch] + dpre;
                for k in 0..w {
                    dw[ch * w + k] = dw[ch * w + k] + dpre * xp[t + k];
                    dxp[t + k] = dxp[t + k] + dpre * A::of(args.weight.data[ch * w + k]);
                }
            }
            for t in 0..l {
                dx[dims.index(i, ch, t)] = dxp[w - 1 + t];
            }
            dinit[s0..s0 + w - 1].copy_from_slice(&dxp[..w - 1]);
        }
    }
    Ok(CausalConv1dGrads {
        x: store(&dx),
        weight: store(&dw),
        bias: args.bias.map(|_| store(&dbias)),
        initial_states: args.initial_states.map(|_| store(&dinit)),
    })
}

pub(crate) fn update<T: Element, P: Element, A: Real>(
    args: &CausalConv1dUpdateArgs<'_, T, P>,
    conv_state: TensorMut<'_, P>,
    out: &mut [T],
) -> Result<()> {
    let dims = args.validate(&conv_state, out.len())?;
    let (w, s, ln) = (dims.width, dims.state_len, dims.steps);
    let mut cat = vec![A::zero(); s + ln];
    for i in 0..dims.batch {
        for ch in 0..dims.channels {
            let s0 = (i * dims.channels + ch) * s;
            let x0 = (i * dims.channels + ch) * ln;
            for k in 0..s {
                cat[k] = A::of(conv_state.data[s0 + k]);
            }
            for t in 0..ln {
                cat[s + t] = A::of(args.x.data[x0 + t]);
            }
            for t in 0..ln {
                // The current sample sits at s + t and meets weight[W-1].
                let first = s + t + 1 - w;
                let mut acc = opt(&args.bias, ch, A::zero());
                for k in 0..w {
                    acc = acc + A::of(args.weight.data[ch * w + k]) * cat[first + k];
                }
                out[x0 + t] = act(args.activation, acc).to();
            }
            for k in 0..s {
                conv_state.data[s0 + k] = cat[ln + k].to();
            }
        }
    }
    Ok(())
}
