//! SPEC section 1: `selective_scan` (Mamba-1), its arguments and gradients.

use alloc::vec::Vec;

use super::check;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const OP: &str = "selective_scan";

/// Where `B` (or `C`) of a Mamba-1 scan comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcLayout {
    /// Time-invariant, shape (d, N).
    Shared,
    /// Per step and per group, shape (b, g, N, L); `groups == 1` also covers (b, N, L).
    Varying {
        /// Number of groups `g` (channels `d` are split into `g` contiguous blocks).
        groups: usize,
    },
}

impl BcLayout {
    /// Index of element `(batch i, channel c, state n, time t)` in the tensor.
    #[inline(always)]
    pub fn index(self, dims: &SelectiveScanDims, i: usize, c: usize, n: usize, t: usize) -> usize {
        match self {
            BcLayout::Shared => c * dims.dstate + n,
            BcLayout::Varying { groups } => {
                let group = c / (dims.dim / groups);
                ((i * groups + group) * dims.dstate + n) * dims.seqlen + t
            }
        }
    }
}

/// Arguments of [`selective_scan`](crate::Kernels::selective_scan).
///
/// `T` is the storage type of the activations (`u, delta, B, C, z`, `out`); `P` the
/// type of the parameters and states (`A, D, delta_bias, initial_state`): `f32` on
/// every backend, `f64` as well in the reference.
#[derive(Clone, Copy, Debug)]
pub struct SelectiveScanArgs<'a, T, P = f32> {
    /// Input, (b, d, L).
    pub u: Tensor<'a, T>,
    /// Step sizes before bias and softplus, (b, d, L).
    pub delta: Tensor<'a, T>,
    /// State matrix, (d, N).
    pub a: Tensor<'a, P>,
    /// Input projection: (d, N), (b, N, L) or (b, g, N, L).
    pub b: Tensor<'a, T>,
    /// Output projection: (d, N), (b, N, L) or (b, g, N, L).
    pub c: Tensor<'a, T>,
    /// Skip connection, (d).
    pub d: Option<Tensor<'a, P>>,
    /// Gate, (b, d, L): the output is multiplied by `silu(z)`.
    pub z: Option<Tensor<'a, T>>,
    /// Added to `delta` before softplus, (d).
    pub delta_bias: Option<Tensor<'a, P>>,
    /// State before the first step, (b, d, N); zero when absent.
    pub initial_state: Option<Tensor<'a, P>>,
    /// Apply softplus to `delta + delta_bias`.
    pub delta_softplus: bool,
}

impl<'a, T, P> SelectiveScanArgs<'a, T, P> {
    /// The required arguments; every option off.
    pub fn new(
        u: Tensor<'a, T>,
        delta: Tensor<'a, T>,
        a: Tensor<'a, P>,
        b: Tensor<'a, T>,
        c: Tensor<'a, T>,
    ) -> Self {
        SelectiveScanArgs {
            u,
            delta,
            a,
            b,
            c,
            d: None,
            z: None,
            delta_bias: None,
            initial_state: None,
            delta_softplus: false,
        }
    }

    /// Sets `D`.
    pub fn with_d(mut self, d: Tensor<'a, P>) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets the gate `z`.
    pub fn with_z(mut self, z: Tensor<'a, T>) -> Self {
        self.z = Some(z);
        self
    }
    /// Sets `delta_bias`.
    pub fn with_delta_bias(mut self, bias: Tensor<'a, P>) -> Self {
        self.delta_bias = Some(bias);
        self
    }
    /// Sets the initial state.
    pub fn with_initial_state(mut self, state: Tensor<'a, P>) -> Self {
        self.initial_state = Some(state);
        self
    }
    /// Sets `delta_softplus`.
    pub fn with_delta_softplus(mut self, on: bool) -> Self {
        self.delta_softplus = on;
        self
    }

    /// Checks every shape and buffer length; returns the dimensions.
    pub fn validate(&self) -> Result<SelectiveScanDims> {
        check::rank(OP, "u", &self.u, 3, "b, d, L")?;
        check::nonzero(OP, "u", &self.u, &["b", "d", "L"])?;
        let (batch, dim, seqlen) = (
            self.u.shape.dim(0),
            self.u.shape.dim(1),
            self.u.shape.dim(2),
        );
        check::shape(OP, "delta", &self.delta, &[batch, dim, seqlen], "b, d, L")?;
        check::rank(OP, "A", &self.a, 2, "d, N")?;
        if self.a.shape.dim(0) != dim {
            return Err(Error::ShapeMismatch {
                op: OP,
                arg: "A",
                expected: check::describe(&[dim, self.a.shape.dim(1)], "d, N"),
                got: self.a.shape,
            });
        }
        check::nonzero(OP, "A", &self.a, &["d", "N"])?;
        let dstate = self.a.shape.dim(1);
        let b_layout = bc_layout("B", &self.b, batch, dim, dstate, seqlen)?;
        let c_layout = bc_layout("C", &self.c, batch, dim, dstate, seqlen)?;
        check::opt_shape(OP, "D", &self.d, &[dim], "d")?;
        check::opt_shape(OP, "z", &self.z, &[batch, dim, seqlen], "b, d, L")?;
        check::opt_shape(OP, "delta_bias", &self.delta_bias, &[dim], "d")?;
        check::opt_shape(
            OP,
            "initial_state",
            &self.initial_state,
            &[batch, dim, dstate],
            "b, d, N",
        )?;
        Ok(SelectiveScanDims {
            batch,
            dim,
            seqlen,
            dstate,
            b_layout,
            c_layout,
        })
    }

    /// Validates the arguments and the forward outputs' lengths.
    pub fn validate_forward(
        &self,
        out: usize,
        last_state: Option<usize>,
    ) -> Result<SelectiveScanDims> {
        let dims = self.validate()?;
        check::out_len(OP, "out", out, &[dims.batch, dims.dim, dims.seqlen])?;
        if let Some(n) = last_state {
            check::out_len(OP, "last_state", n, &dims.state_shape())?;
        }
        Ok(dims)
    }

    /// Validates the arguments and the upstream gradients' lengths.
    pub fn validate_backward(
        &self,
        dout: usize,
        dlast_state: Option<usize>,
    ) -> Result<SelectiveScanDims> {
        let dims = self.validate()?;
        check::out_len(OP, "dout", dout, &[dims.batch, dims.dim, dims.seqlen])?;
        if let Some(n) = dlast_state {
            check::out_len(OP, "dlast_state", n, &dims.state_shape())?;
        }
        Ok(dims)
    }
}

fn bc_layout<T>(
    arg: &'static str,
    t: &Tensor<'_, T>,
    batch: usize,
    dim: usize,
    dstate: usize,
    seqlen: usize,
) -> Result<BcLayout> {
    let names = "(d, N) | (b, N, L) | (b, g, N, L)";
    match t.shape.rank() {
        2 => {
            check::shape(OP, arg, t, &[dim, dstate], "d, N")?;
            Ok(BcLayout::Shared)
        }
        3 => {
            check::shape(OP, arg, t, &[batch, dstate, seqlen], "b, N, L")?;
            Ok(BcLayout::Varying { groups: 1 })
        }
        4 => {
            let groups = t.shape.dim(1);
            check::nonzero(OP, arg, t, &["b", "g"])?;
            check::shape(OP, arg, t, &[batch, groups, dstate, seqlen], "b, g, N, L")?;
            check::divisible(OP, "channels d", dim, "groups g", groups)?;
            Ok(BcLayout::Varying { groups })
        }
        _ => Err(Error::ShapeMismatch {
            op: OP,
            arg,
            expected: alloc::format!("one of {names}"),
            got: t.shape,
        }),
    }
}

/// The dimensions of a validated selective scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectiveScanDims {
    /// `b`.
    pub batch: usize,
    /// `d`, channels.
    pub dim: usize,
    /// `L`.
    pub seqlen: usize,
    /// `N`.
    pub dstate: usize,
    /// Layout of `B`.
    pub b_layout: BcLayout,
    /// Layout of `C`.
    pub c_layout: BcLayout,
}

impl SelectiveScanDims {
    /// (b, d, L).
    pub fn io_shape(&self) -> [usize; 3] {
        [self.batch, self.dim, self.seqlen]
    }
    /// (b, d, N).
    pub fn state_shape(&self) -> [usize; 3] {
        [self.batch, self.dim, self.dstate]
    }
}

/// Gradients of a selective scan; each optional field is present when its input was.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectiveScanGrads<T, P = f32> {
    /// d/du, (b, d, L).
    pub u: Vec<T>,
    /// d/ddelta, (b, d, L).
    pub delta: Vec<T>,
    /// d/dA, (d, N).
    pub a: Vec<P>,
    /// d/dB, in B's layout.
    pub b: Vec<T>,
    /// d/dC, in C's layout.
    pub c: Vec<T>,
    /// d/dD, (d).
    pub d: Option<Vec<P>>,
    /// d/dz, (b, d, L).
    pub z: Option<Vec<T>>,
    /// d/ddelta_bias, (d).
    pub delta_bias: Option<Vec<P>>,
    /// d/dinitial_state, (b, d, N).
    pub initial_state: Option<Vec<P>>,
}

/// Empty gradients, to pass to
/// [`Kernels::selective_scan_backward_into`](crate::Kernels::selective_scan_backward_into),
/// which sizes them.
impl<T, P> Default for SelectiveScanGrads<T, P> {
    fn default() -> Self {
        Self {
            u: Vec::new(),
            delta: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            c: Vec::new(),
            d: None,
            z: None,
            delta_bias: None,
            initial_state: None,
        }
    }
}
