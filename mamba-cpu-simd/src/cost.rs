//! The arithmetic each kernel does, for reports of achieved FLOP/s and of the fraction
//! of a machine's peak.
//!
//! Counts are of the algorithm as this backend runs it (including the recomputation of
//! the backward passes), with a fused multiply-add counted as two FLOPs and every
//! `exp`, `ln` and division counted once in [`Cost::transcendentals`] rather than as
//! FLOPs. Elementwise work per step (step size, gate, skip) is included; index
//! arithmetic, conversions and the carry passes of the chunked scans (which are
//! `O(chunks x N)`) are not.
//!
//! | kernel | FLOPs per state element and step | `exp` per state element and step |
//! |--------|-------------------------------|-----------------------------|
//! | `selective_scan` forward | 6 (`dt A`, `(dt u) B`, `exp(.) h + .` as FMA, `C h` as FMA) | 1 |
//! | `selective_scan` backward, range fits in L2 | 20 (recompute 6, reverse 14) | 1 |
//! | `selective_scan` backward, checkpointed | 26 (forward 6, recompute 6, reverse 14) | 2 |
//! | `ssd` forward | 4 (`(x dt / c) B` and `S C` as FMAs on the rescaled state) | 0 (one per head and step) |
//! | `ssd` backward | 18 (forward 4, recompute 3, reverse 11) | 0 (two per head and step) |
//! | `selective_state_update` | 7 | 1 |
//!
//! A state element is one `(batch, channel, n)` of Mamba-1 or one
//! `(batch, head, p, n)` of SSD; `causal_conv1d` does `2 W` FLOPs per output forward
//! and `4 W` backward (plus the activation).

use mamba_core::ops::state_update::StateUpdateDims;
use mamba_core::{Activation, CausalConv1dArgs, Result, SelectiveScanArgs, SsdArgs};

/// Which pass of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The forward pass alone.
    Forward,
    /// The backward pass alone (which recomputes what it needs of the forward).
    Backward,
}

/// The arithmetic of one kernel call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Floating-point additions and multiplications (a fused multiply-add is two).
    pub flops: f64,
    /// Calls of `exp`, `ln` and divisions (counted once each).
    pub transcendentals: f64,
}

impl core::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            flops: self.flops + o.flops,
            transcendentals: self.transcendentals + o.transcendentals,
        }
    }
}

/// Softplus costs an `exp`, a `ln` and a division (of `log1p`); its derivative an
/// `exp` and a division.
const SOFTPLUS: (f64, f64) = (6.0, 3.0);
/// `silu(z)`: an `exp` and a division, and three FLOPs.
const SILU: (f64, f64) = (3.0, 2.0);

/// The cost of `selective_scan` on `args` (validated; errors as the kernel's).
pub fn selective_scan<T>(args: &SelectiveScanArgs<'_, T>, pass: Pass) -> Result<Cost> {
    let d = args.validate()?;
    let elems = (d.batch * d.dim * d.seqlen * d.dstate) as f64;
    let steps = (d.batch * d.dim * d.seqlen) as f64;
    let mut per_step = (2.0, 0.0); // bias, dt * u
    if args.delta_softplus {
        per_step.0 += SOFTPLUS.0;
        per_step.1 += SOFTPLUS.1;
    }
    if args.d.is_some() {
        per_step.0 += 2.0;
    }
    if args.z.is_some() {
        per_step.0 += SILU.0 + 1.0;
        per_step.1 += SILU.1;
    }
    // The backward keeps a row's states when they fit (see `scan::STORE_ALL`), else it
    // checkpoints and recomputes.
    let np = d.dstate.div_ceil(crate::simd::MAX_LANES) * crate::simd::MAX_LANES;
    let store_all = 2 * d.seqlen * np <= crate::scan::store_all_floats();
    let (bwd_flops, bwd_exps) = if store_all { (20.0, 1.0) } else { (26.0, 2.0) };
    Ok(match pass {
        Pass::Forward => Cost {
            flops: 6.0 * elems + per_step.0 * steps,
            transcendentals: elems + per_step.1 * steps,
        },
        Pass::Backward => Cost {
            // The recompute of the step size and the gate, and their derivatives.
            flops: bwd_flops * elems + (3.0 * per_step.0 + 6.0) * steps,
            transcendentals: bwd_exps * elems + 3.0 * per_step.1 * steps,
        },
    })
}

/// The cost of `ssd` on `args` (validated; errors as the kernel's).
pub fn ssd<T>(args: &SsdArgs<'_, T>, pass: Pass) -> Result<Cost> {
    let d = args.validate()?;
    let elems = (d.batch * d.seqlen * d.nheads * d.headdim * d.dstate) as f64;
    let head_steps = (d.batch * d.seqlen * d.nheads) as f64;
    let outs = (d.batch * d.seqlen * d.nheads * d.headdim) as f64;
    // Per head and step: bias, step * A, exp; per output: x * step, D x.
    let mut per_head = (2.0, 1.0);
    if args.dt_softplus {
        per_head.0 += SOFTPLUS.0;
        per_head.1 += SOFTPLUS.1;
    }
    let mut per_out = (1.0, 0.0);
    if args.d.is_some() {
        per_out.0 += 2.0;
    }
    if args.z.is_some() {
        per_out.0 += SILU.0 + 1.0;
        per_out.1 += SILU.1;
    }
    Ok(match pass {
        Pass::Forward => Cost {
            flops: 4.0 * elems + per_head.0 * head_steps + per_out.0 * outs,
            transcendentals: per_head.1 * head_steps + per_out.1 * outs,
        },
        Pass::Backward => Cost {
            flops: 18.0 * elems
                + (2.0 * per_head.0 + 6.0) * head_steps
                + (3.0 * per_out.0 + 2.0) * outs,
            transcendentals: 2.0 * per_head.1 * head_steps + 2.0 * per_out.1 * outs,
        },
    })
}

/// The cost of `causal_conv1d` on `args` (validated; errors as the kernel's).
pub fn causal_conv1d<T>(args: &CausalConv1dArgs<'_, T>, pass: Pass) -> Result<Cost> {
    let d = args.validate()?;
    let outs = (d.batch * d.channels * d.seqlen) as f64;
    let w = d.width as f64;
    let act = match args.activation {
        Activation::None => (0.0, 0.0),
        Activation::Silu => SILU,
    };
    Ok(match pass {
        Pass::Forward => Cost {
            flops: (2.0 * w + act.0) * outs,
            transcendentals: act.1 * outs,
        },
        Pass::Backward => Cost {
            flops: (6.0 * w + 2.0 * act.0 + 2.0) * outs,
            transcendentals: act.1 * outs,
        },
    })
}

/// The cost of one `selective_state_update` step of the given dimensions.
pub fn selective_state_update(dims: &StateUpdateDims, softplus: bool, gate: bool) -> Cost {
    let rows = (dims.batch * dims.nheads * dims.headdim) as f64;
    let elems = rows * dims.dstate as f64;
    let mut per_row = (5.0, 0.0);
    if softplus {
        per_row.0 += SOFTPLUS.0;
        per_row.1 += SOFTPLUS.1;
    }
    if gate {
        per_row.0 += SILU.0 + 1.0;
        per_row.1 += SILU.1;
    }
    Cost {
        flops: 7.0 * elems + per_row.0 * rows,
        transcendentals: elems + per_row.1 * rows,
    }
}
