//! The traits every backend implements.

use alloc::string::String;
use core::fmt::Debug;

use half::{bf16, f16};

use crate::element::Element;
use crate::error::Result;
use crate::ops::conv1d::{CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs};
use crate::ops::selective_scan::{SelectiveScanArgs, SelectiveScanGrads};
use crate::ops::ssd::{SsdArgs, SsdGrads};
use crate::ops::state_update::SelectiveStateUpdateArgs;
use crate::tensor::TensorMut;

/// The kernels of SPEC sections 1-5 for storage type `T` (activations) and `P`
/// (parameters and states; `f32` on every backend but the reference).
///
/// Every method validates its arguments first and returns a typed error for bad
/// input; a backend that lacks an operation, option or type returns
/// [`Error::Unsupported`](crate::Error::Unsupported) naming it.
pub trait Kernels<T: Element, P: Element = f32> {
    /// SPEC 1, forward: writes `out` (b, d, L) and, if given, `last_state` (b, d, N).
    fn selective_scan(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        out: &mut [T],
        last_state: Option<&mut [P]>,
    ) -> Result<()>;

    /// SPEC 1, backward: gradients of `sum(dout*out) + sum(dlast_state*last_state)`.
    fn selective_scan_backward(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        dout: &[T],
        dlast_state: Option<&[P]>,
    ) -> Result<SelectiveScanGrads<T, P>>;

    /// SPEC 1, backward into caller-owned buffers: the gradients of
    /// [`selective_scan_backward`](Kernels::selective_scan_backward) written into `grads`
    /// (the same bits on `cpu-simd` and the reference, whose backward is deterministic;
    /// the cuda plugin's reductions use atomics, so any two of its calls may differ in
    /// the last bits).
    ///
    /// Each vector of `grads` is resized to its gradient's length, keeping its
    /// allocation where it is large enough, and each optional field is set to `Some` or
    /// `None` as the arguments ask. A loop that passes the same `grads` to calls of one
    /// shape allocates no output memory after the first call (fresh output memory costs a
    /// page fault per 4 KiB page on first write: a quarter of a one-thread CPU backward at
    /// the seed's shape). A call refused for its arguments leaves `grads` as it was; after
    /// a failure inside the backend (a device error) its contents are unspecified.
    ///
    /// The default implementation calls `selective_scan_backward` and moves its result
    /// into `grads`; `cpu-simd` writes into the buffers themselves, and `cuda` copies
    /// the gradients from the device straight into them (as for the conv and SSD forms,
    /// where `cpu-simd` takes the default).
    fn selective_scan_backward_into(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        dout: &[T],
        dlast_state: Option<&[P]>,
        grads: &mut SelectiveScanGrads<T, P>,
    ) -> Result<()> {
        *grads = self.selective_scan_backward(args, dout, dlast_state)?;
        Ok(())
    }

    /// SPEC 2, forward: writes `out` (b, L, h, p) and, if given, `final_states` (b, h, p, N).
    fn ssd(
        &self,
        args: &SsdArgs<'_, T, P>,
        out: &mut [T],
        final_states: Option<&mut [P]>,
    ) -> Result<()>;

    /// SPEC 2, backward: gradients of `sum(dout*out) + sum(dfinal_states*final_states)`.
    fn ssd_backward(
        &self,
        args: &SsdArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
    ) -> Result<SsdGrads<T, P>>;

    /// SPEC 2, backward into caller-owned buffers: the gradients of
    /// [`ssd_backward`](Kernels::ssd_backward) written into `grads`, which
    /// is resized and reused as in
    /// [`selective_scan_backward_into`](Kernels::selective_scan_backward_into), with the
    /// same guarantees on error.
    fn ssd_backward_into(
        &self,
        args: &SsdArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
        grads: &mut SsdGrads<T, P>,
    ) -> Result<()> {
        *grads = self.ssd_backward(args, dout, dfinal_states)?;
        Ok(())
    }

    /// SPEC 3, forward: writes `out` (in `x`'s layout) and, if given, `final_states`
    /// (b, c, W-1).
    fn causal_conv1d(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        out: &mut [T],
        final_states: Option<&mut [P]>,
    ) -> Result<()>;

    /// SPEC 3, backward: gradients of `sum(dout*out) + sum(dfinal_states*final_states)`.
    fn causal_conv1d_backward(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
    ) -> Result<CausalConv1dGrads<T, P>>;

    /// SPEC 3, backward into caller-owned buffers: the gradients of
    /// [`causal_conv1d_backward`](Kernels::causal_conv1d_backward) written into `grads`,
    /// which is resized and reused as in
    /// [`selective_scan_backward_into`](Kernels::selective_scan_backward_into), with the
    /// same guarantees on error.
    fn causal_conv1d_backward_into(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
        grads: &mut CausalConv1dGrads<T, P>,
    ) -> Result<()> {
        *grads = self.causal_conv1d_backward(args, dout, dfinal_states)?;
        Ok(())
    }

    /// SPEC 4: one decode step; updates `state` in place and writes `out` (`x`'s shape).
    fn selective_state_update(
        &self,
        args: &SelectiveStateUpdateArgs<'_, T, P>,
        state: &mut [P],
        out: &mut [T],
    ) -> Result<()>;

    /// SPEC 5: convolution decode; updates `conv_state` (b, c, S) in place and writes
    /// `out` (b, c, Ln).
    fn causal_conv1d_update(
        &self,
        args: &CausalConv1dUpdateArgs<'_, T, P>,
        conv_state: TensorMut<'_, P>,
        out: &mut [T],
    ) -> Result<()>;
}

/// A complete backend: the kernels for every storage type, a name and a description.
///
/// Object safe: the model holds an `Arc<dyn Backend>` chosen at run time.
pub trait Backend: Kernels<f32> + Kernels<f16> + Kernels<bf16> + Send + Sync + Debug {
    /// `reference`, `cpu-simd` or `cuda`.
    fn name(&self) -> &'static str;
    /// Details for the report line, e.g. `avx2+fma, 2 threads`.
    fn detail(&self) -> String;
}

/// A shared reference to a backend is a backend (so a `&'static` plugin handle can be
/// held as `Arc<dyn Backend>`).
impl<T: Element, P: Element, K: Kernels<T, P> + ?Sized> Kernels<T, P> for &K {
    fn selective_scan(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        out: &mut [T],
        last_state: Option<&mut [P]>,
    ) -> Result<()> {
        (**self).selective_scan(args, out, last_state)
    }
    fn selective_scan_backward(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        dout: &[T],
        dlast_state: Option<&[P]>,
    ) -> Result<SelectiveScanGrads<T, P>> {
        (**self).selective_scan_backward(args, dout, dlast_state)
    }
    fn selective_scan_backward_into(
        &self,
        args: &SelectiveScanArgs<'_, T, P>,
        dout: &[T],
        dlast_state: Option<&[P]>,
        grads: &mut SelectiveScanGrads<T, P>,
    ) -> Result<()> {
        (**self).selective_scan_backward_into(args, dout, dlast_state, grads)
    }
    fn ssd(
        &self,
        args: &SsdArgs<'_, T, P>,
        out: &mut [T],
        final_states: Option<&mut [P]>,
    ) -> Result<()> {
        (**self).ssd(args, out, final_states)
    }
    fn ssd_backward(
        &self,
        args: &SsdArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
    ) -> Result<SsdGrads<T, P>> {
        (**self).ssd_backward(args, dout, dfinal_states)
    }
    fn ssd_backward_into(
        &self,
        args: &SsdArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
        grads: &mut SsdGrads<T, P>,
    ) -> Result<()> {
        (**self).ssd_backward_into(args, dout, dfinal_states, grads)
    }
    fn causal_conv1d(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        out: &mut [T],
        final_states: Option<&mut [P]>,
    ) -> Result<()> {
        (**self).causal_conv1d(args, out, final_states)
    }
    fn causal_conv1d_backward(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
    ) -> Result<CausalConv1dGrads<T, P>> {
        (**self).causal_conv1d_backward(args, dout, dfinal_states)
    }
    fn causal_conv1d_backward_into(
        &self,
        args: &CausalConv1dArgs<'_, T, P>,
        dout: &[T],
        dfinal_states: Option<&[P]>,
        grads: &mut CausalConv1dGrads<T, P>,
    ) -> Result<()> {
        (**self).causal_conv1d_backward_into(args, dout, dfinal_states, grads)
    }
    fn selective_state_update(
        &self,
        args: &SelectiveStateUpdateArgs<'_, T, P>,
        state: &mut [P],
        out: &mut [T],
    ) -> Result<()> {
        (**self).selective_state_update(args, state, out)
    }
    fn causal_conv1d_update(
        &self,
        args: &CausalConv1dUpdateArgs<'_, T, P>,
        conv_state: TensorMut<'_, P>,
        out: &mut [T],
    ) -> Result<()> {
        (**self).causal_conv1d_update(args, conv_state, out)
    }
}

impl<B: Backend + ?Sized> Backend for &B {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn detail(&self) -> String {
        (**self).detail()
    }
}
