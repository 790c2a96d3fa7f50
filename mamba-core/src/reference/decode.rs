//! Reference `selective_state_update`: one step of the recurrence of ops 1 and 2.

use super::scan::opt;
use crate::element::{Element, Real};
use crate::error::Result;
use crate::math::{silu, step_size};
use crate::ops::state_update::SelectiveStateUpdateArgs;

pub(crate) fn state_update<T: Element, P: Element, A: Real>(
    args: &SelectiveStateUpdateArgs<'_, T, P>,
    state: &mut [P],
    out: &mut [T],
) -> Result<()> {
    let dims = args.validate(state.len(), out.len())?;
    let (h, p, n_state, g) = (dims.nheads, dims.headdim, dims.dstate, dims.ngroups);
    for i in 0..dims.batch {
        for j in 0..h {
            let k = dims.group(j);
            let bc0 = (i * g + k) * n_state;
            for q in 0..p {
                // Row index within (h, p); Mamba-1 is p = 1.
                let r = j * p + q;
                let xi = i * h * p + r;
                let raw = A::of(args.dt.data[xi]) + opt(&args.dt_bias, r, A::zero());
                let (step, _) = step_size(raw, args.dt_softplus, args.dt_limit);
                let xv = A::of(args.x.data[xi]);
                let mut y = A::zero();
                for n in 0..n_state {
                    let si = xi * n_state + n;
                    let decay = (step * A::of(args.a.data[r * n_state + n])).exp();
                    let v = decay * A::of(state[si]) + step * A::of(args.b.data[bc0 + n]) * xv;
                    state[si] = v.to();
                    y = y + v * A::of(args.c.data[bc0 + n]);
                }
                y = y + opt(&args.d, r, A::zero()) * xv;
                if let Some(z) = &args.z {
                    y = y * silu(A::of(z.data[xi]));
                }
                out[xi] = y.to();
            }
        }
    }
    Ok(())
}
