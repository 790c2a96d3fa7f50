//! SPEC section 4: `selective_state_update`, one decode step of ops 1 and 2.

use super::check;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const OP: &str = "selective_state_update";

/// Arguments of [`selective_state_update`](crate::Kernels::selective_state_update).
///
/// Two layouts, told apart by the rank of `x`:
/// - Mamba-1: `x, dt, z` (b, d); `A` (d, N); `B, C` (b, N) or (b, g, N); `D, dt_bias` (d);
///   state (b, d, N).
/// - Multi-head: `x, dt, z` (b, h, p); `A` (h, p, N); `B, C` (b, g, N);
///   `D, dt_bias` (h, p); state (b, h, p, N).
#[derive(Clone, Copy, Debug)]
pub struct SelectiveStateUpdateArgs<'a, T, P = f32> {
    /// This step's input.
    pub x: Tensor<'a, T>,
    /// This step's step size, before bias and softplus.
    pub dt: Tensor<'a, T>,
    /// State matrix.
    pub a: Tensor<'a, P>,
    /// Input projection.
    pub b: Tensor<'a, T>,
    /// Output projection.
    pub c: Tensor<'a, T>,
    /// Skip connection.
    pub d: Option<Tensor<'a, P>>,
    /// Gate.
    pub z: Option<Tensor<'a, T>>,
    /// Added to `dt`.
    pub dt_bias: Option<Tensor<'a, P>>,
    /// Apply softplus to `dt + dt_bias`.
    pub dt_softplus: bool,
    /// Clamp of the step (an extension: the same `dt_limit` as [`SsdArgs`](crate::SsdArgs),
    /// so a Mamba-2 decode step equals a step of its forward); `None` clamps nothing.
    pub dt_limit: Option<(f32, f32)>,
}

impl<'a, T, P> SelectiveStateUpdateArgs<'a, T, P> {
    /// Required arguments; every option off.
    pub fn new(
        x: Tensor<'a, T>,
        dt: Tensor<'a, T>,
        a: Tensor<'a, P>,
        b: Tensor<'a, T>,
        c: Tensor<'a, T>,
    ) -> Self {
        SelectiveStateUpdateArgs {
            x,
            dt,
            a,
            b,
            c,
            d: None,
            z: None,
            dt_bias: None,
            dt_softplus: false,
            dt_limit: None,
        }
    }
    /// Sets `D`.
    pub fn with_d(mut self, d: Tensor<'a, P>) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets the gate.
    pub fn with_z(mut self, z: Tensor<'a, T>) -> Self {
        self.z = Some(z);
        self
    }
    /// Sets `dt_bias`.
    pub fn with_dt_bias(mut self, bias: Tensor<'a, P>) -> Self {
        self.dt_bias = Some(bias);
        self
    }
    /// Sets `dt_softplus`.
    pub fn with_dt_softplus(mut self, on: bool) -> Self {
        self.dt_softplus = on;
        self
    }
    /// Sets `dt_limit`; `(0, inf)` means no clamp.
    pub fn with_dt_limit(mut self, lo: f32, hi: f32) -> Self {
        self.dt_limit = crate::ops::ssd::normalize_dt_limit(Some((lo, hi)));
        self
    }

    /// Checks the arguments, the state's and the output's lengths.
    pub fn validate(&self, state: usize, out: usize) -> Result<StateUpdateDims> {
        let (batch, nheads, headdim, multihead) = match self.x.shape.rank() {
            2 => {
                check::len(OP, "x", &self.x)?;
                check::nonzero(OP, "x", &self.x, &["b", "d"])?;
                (self.x.shape.dim(0), self.x.shape.dim(1), 1, false)
            }
            3 => {
                check::len(OP, "x", &self.x)?;
                check::nonzero(OP, "x", &self.x, &["b", "h", "p"])?;
                (
                    self.x.shape.dim(0),
                    self.x.shape.dim(1),
                    self.x.shape.dim(2),
                    true,
                )
            }
            _ => {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    arg: "x",
                    expected: "(b, d) or (b, h, p)".into(),
                    got: self.x.shape,
                })
            }
        };
        let xdims = self.x.dims();
        let (xnames, pnames) = if multihead {
            ("b, h, p", "h, p")
        } else {
            ("b, d", "d")
        };
        let pdims: &[usize] = if multihead {
            &[nheads, headdim]
        } else {
            &[nheads]
        };
        check::shape(OP, "dt", &self.dt, xdims, xnames)?;
        let dstate = *self.a.dims().last().unwrap_or(&0);
        let mut adims = alloc::vec::Vec::from(pdims);
        adims.push(dstate);
        check::shape(
            OP,
            "A",
            &self.a,
            &adims,
            if multihead { "h, p, N" } else { "d, N" },
        )?;
        let anames: &[&'static str] = if multihead {
            &["h", "p", "N"]
        } else {
            &["d", "N"]
        };
        check::nonzero(OP, "A", &self.a, anames)?;
        let ngroups = match self.b.shape.rank() {
            2 if !multihead => 1,
            3 => self.b.shape.dim(1),
            _ => {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    arg: "B",
                    expected: if multihead {
                        "(b, g, N)".into()
                    } else {
                        "(b, N) or (b, g, N)".into()
                    },
                    got: self.b.shape,
                })
            }
        };
        let bdims: &[usize] = if self.b.shape.rank() == 2 {
            &[batch, dstate]
        } else {
            &[batch, ngroups, dstate]
        };
        let (bnames, bdimnames): (&str, &[&'static str]) = if self.b.shape.rank() == 2 {
            ("b, N", &["b", "N"])
        } else {
            ("b, g, N", &["b", "g", "N"])
        };
        check::shape(OP, "B", &self.b, bdims, bnames)?;
        check::nonzero(OP, "B", &self.b, bdimnames)?;
        check::divisible(OP, "heads", nheads, "groups g", ngroups)?;
        check::shape(OP, "C", &self.c, bdims, bnames)?;
        check::opt_shape(OP, "D", &self.d, pdims, pnames)?;
        check::opt_shape(OP, "z", &self.z, xdims, xnames)?;
        check::opt_shape(OP, "dt_bias", &self.dt_bias, pdims, pnames)?;
        check::dt_limit(OP, self.dt_limit)?;
        let mut sdims = alloc::vec::Vec::from(xdims);
        sdims.push(dstate);
        check::out_len(OP, "state", state, &sdims)?;
        check::out_len(OP, "out", out, xdims)?;
        Ok(StateUpdateDims {
            batch,
            nheads,
            headdim,
            ngroups,
            dstate,
        })
    }
}

/// The dimensions of a validated decode step. Mamba-1 is `headdim == 1`, `nheads == d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateUpdateDims {
    /// `b`.
    pub batch: usize,
    /// `h` (or `d` for Mamba-1).
    pub nheads: usize,
    /// `p` (1 for Mamba-1).
    pub headdim: usize,
    /// `g`.
    pub ngroups: usize,
    /// `N`.
    pub dstate: usize,
}

impl StateUpdateDims {
    /// The group of head `j`.
    #[inline(always)]
    pub fn group(&self, head: usize) -> usize {
        head / (self.nheads / self.ngroups)
    }
}
