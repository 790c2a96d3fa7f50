//! The reference backend: the SPEC's definitions written for clarity, not speed.
//!
//! `Reference<f32>` accumulates in `f32` as every backend must; `Reference<f64>`
//! accumulates in `f64` and, with `P = f64`, is the oracle of the test suite.

mod conv;
mod decode;
mod scan;
mod ssd;

use alloc::string::String;
use core::marker::PhantomData;

use crate::backend::{Backend, Kernels};
use crate::element::{Element, Real};
use crate::error::Result;
use crate::ops::conv1d::{CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs};
use crate::ops::selective_scan::{SelectiveScanArgs, SelectiveScanGrads};
use crate::ops::ssd::{SsdArgs, SsdGrads};
use crate::ops::state_update::SelectiveStateUpdateArgs;
use crate::tensor::TensorMut;

/// The reference backend, accumulating in `A` (`f32` or `f64`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference<A: Real = f32> {
    _acc: PhantomData<A>,
}

impl Reference<f32> {
    /// The reference backend accumulating in `f32`.
    pub const fn new() -> Self {
        Reference { _acc: PhantomData }
    }
}

impl Reference<f64> {
    /// The reference backend accumulating in `f64`: the oracle.
    pub const fn oracle() -> Self {
        Reference { _acc: PhantomData }
    }
}

impl<T: Element, P: Element, A: Real> Kernels<T, P> for Reference<A> {
    fn selective_scan(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        out: &mut [T],
        last_state: Option<&mut [P]>,
    ) -> Result<()> {
        scan::forward::<T, P, A>(args, out, last_state)
    }

    fn selective_scan_backward(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        dout: &[T],
        dlast_state: Option<&[P]>,
    ) -> Result<SelectiveScanGrads<T, P>> {
        scan::backward::<T, P, A>(args, dout, dlast_state)
    }

    fn ssd(
        &self,
        args: &SsdArgs<'_, T, P>,
        out: &mut [T],
        final_states: Option<&mut [P]>,
    ) -> Result<()> {
        ssd::forward::<T, P, A>(args, out, final_states)
    }

    fn ssd_backward(
        &self,
        args: &SsdArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
    ) -> Result<SsdGrads<T, P>> {
        ssd::backward::<T, P, A>(args, dout, dfinal_states)
    }

    fn causal_conv1d(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        out: &mut [T],
        final_states: Option<&mut [P]>,
    ) -> Result<()> {
        conv::forward::<T, P, A>(args, out, final_states)
    }

    fn causal_conv1d_backward(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
    ) -> Result<CausalConv1dGrads<T, P>> {
        conv::backward::<T, P, A>(args, dout, dfinal_states)
    }

    fn selective_state_update(
        &self,
        args: &SelectiveStateUpdateArgs<'_, T, P>,
        state: &mut [P],
        out: &mut [T],
    ) -> Result<()> {
        decode::state_update::<T, P, A>(args, state, out)
    }

    fn causal_conv1d_update(
        &self,
        args: &CausalConv1dUpdateArgs<'_, T, P>,
        conv_state: TensorMut<'_, P>,
        out: &mut [T],
    ) -> Result<()> {
        conv::update::<T, P, A>(args, conv_state, out)
    }
}

impl<A: Real> Backend for Reference<A> {
    fn name(&self) -> &'static str {
        "reference"
    }
    fn detail(&self) -> String {
        alloc::format!("exact recurrence, {} accumulation, 1 thread", A::DTYPE)
    }
}
