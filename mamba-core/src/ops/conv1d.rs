//! SPEC sections 3 and 5: depthwise `causal_conv1d` and its decode step
//! `causal_conv1d_update`.

use alloc::vec::Vec;

use super::check;
use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorMut};

const OP: &str = "causal_conv1d";
const OP_UPDATE: &str = "causal_conv1d_update";

/// The activation applied after the convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// None.
    #[default]
    None,
    /// `silu(v) = v / (1 + e^-v)`.
    Silu,
}

impl Activation {
    /// Parses `none`/`identity` and `silu`/`swish`.
    pub fn parse(s: &str) -> Option<Activation> {
        match s {
            "none" | "identity" | "" => Some(Activation::None),
            "silu" | "swish" => Some(Activation::Silu),
            _ => None,
        }
    }
}

/// Memory layout of the input and output of [`causal_conv1d`](crate::Kernels::causal_conv1d).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvLayout {
    /// (b, c, L): channel-first, as the SPEC writes it.
    #[default]
    ChannelFirst,
    /// (b, L, c): channel-last, as a projection's output lies in memory.
    ChannelLast,
}

/// Arguments of [`causal_conv1d`](crate::Kernels::causal_conv1d).
///
/// `T` is the storage type of `x` and `out`; `P` that of the weights and states.
#[derive(Clone, Copy, Debug)]
pub struct CausalConv1dArgs<'a, T, P = f32> {
    /// Input, (b, c, L) or (b, L, c) by `layout`.
    pub x: Tensor<'a, T>,
    /// Filter taps, (c, W); `weight[ch, W-1]` multiplies the current sample.
    pub weight: Tensor<'a, P>,
    /// (c).
    pub bias: Option<Tensor<'a, P>>,
    /// The `W-1` samples before the first, (b, c, W-1); zeros when absent.
    pub initial_states: Option<Tensor<'a, P>>,
    /// The activation.
    pub activation: Activation,
    /// Layout of `x` and `out`.
    pub layout: ConvLayout,
}

impl<'a, T, P> CausalConv1dArgs<'a, T, P> {
    /// Required arguments; no bias, no state, no activation, channel-first.
    pub fn new(x: Tensor<'a, T>, weight: Tensor<'a, P>) -> Self {
        CausalConv1dArgs {
            x,
            weight,
            bias: None,
            initial_states: None,
            activation: Activation::None,
            layout: ConvLayout::ChannelFirst,
        }
    }
    /// Sets the bias.
    pub fn with_bias(mut self, bias: Tensor<'a, P>) -> Self {
        self.bias = Some(bias);
        self
    }
    /// Sets the initial states.
    pub fn with_initial_states(mut self, s: Tensor<'a, P>) -> Self {
        self.initial_states = Some(s);
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
    /// Sets the layout of `x` and `out`.
    pub fn with_layout(mut self, l: ConvLayout) -> Self {
        self.layout = l;
        self
    }

    /// Checks every shape and buffer length; returns the dimensions.
    pub fn validate(&self) -> Result<Conv1dDims> {
        let names = match self.layout {
            ConvLayout::ChannelFirst => "b, c, L",
            ConvLayout::ChannelLast => "b, L, c",
        };
        check::rank(OP, "x", &self.x, 3, names)?;
        let d = self.x.dims();
        let (batch, channels, seqlen) = match self.layout {
            ConvLayout::ChannelFirst => (d[0], d[1], d[2]),
            ConvLayout::ChannelLast => (d[0], d[2], d[1]),
        };
        match self.layout {
            ConvLayout::ChannelFirst => check::nonzero(OP, "x", &self.x, &["b", "c", "L"])?,
            ConvLayout::ChannelLast => check::nonzero(OP, "x", &self.x, &["b", "L", "c"])?,
        }
        let width = check_weight(OP, &self.weight, channels)?;
        check::opt_shape(OP, "bias", &self.bias, &[channels], "c")?;
        check::opt_shape(
            OP,
            "initial_states",
            &self.initial_states,
            &[batch, channels, width - 1],
            "b, c, W-1",
        )?;
        Ok(Conv1dDims {
            batch,
            channels,
            seqlen,
            width,
            layout: self.layout,
        })
    }

    /// Validates the arguments and the forward outputs' lengths.
    pub fn validate_forward(&self, out: usize, final_states: Option<usize>) -> Result<Conv1dDims> {
        let dims = self.validate()?;
        check::out_len(OP, "out", out, self.x.dims())?;
        if let Some(n) = final_states {
            check::out_len(OP, "final_states", n, &dims.state_shape())?;
        }
        Ok(dims)
    }

    /// Validates the arguments and the upstream gradients' lengths.
    pub fn validate_backward(
        &self,
        dout: usize,
        dfinal_states: Option<usize>,
    ) -> Result<Conv1dDims> {
        let dims = self.validate()?;
        check::out_len(OP, "dout", dout, self.x.dims())?;
        if let Some(n) = dfinal_states {
            check::out_len(OP, "dfinal_states", n, &dims.state_shape())?;
        }
        Ok(dims)
    }
}

fn check_weight<P>(op: &'static str, w: &Tensor<'_, P>, channels: usize) -> Result<usize> {
    check::rank(op, "weight", w, 2, "c, W")?;
    if w.shape.dim(0) != channels {
        return Err(Error::ShapeMismatch {
            op,
            arg: "weight",
            expected: check::describe(&[channels, w.shape.dim(1)], "c, W"),
            got: w.shape,
        });
    }
    check::nonzero(op, "weight", w, &["c", "W"])?;
    Ok(w.shape.dim(1))
}

/// The dimensions of a validated convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dDims {
    /// `b`.
    pub batch: usize,
    /// `c`.
    pub channels: usize,
    /// `L`.
    pub seqlen: usize,
    /// `W`.
    pub width: usize,
    /// Layout of `x` and `out`.
    pub layout: ConvLayout,
}

impl Conv1dDims {
    /// (b, c, W-1).
    pub fn state_shape(&self) -> [usize; 3] {
        [self.batch, self.channels, self.width - 1]
    }
    /// Index of `x[i, ch, t]` in the input's layout.
    #[inline(always)]
    pub fn index(&self, i: usize, ch: usize, t: usize) -> usize {
        match self.layout {
            ConvLayout::ChannelFirst => (i * self.channels + ch) * self.seqlen + t,
            ConvLayout::ChannelLast => (i * self.seqlen + t) * self.channels + ch,
        }
    }
}

/// Gradients of a convolution; optional fields are present when their input was.
#[derive(Clone, Debug, PartialEq)]
pub struct CausalConv1dGrads<T, P = f32> {
    /// In `x`'s layout.
    pub x: Vec<T>,
    /// (c, W).
    pub weight: Vec<P>,
    /// (c).
    pub bias: Option<Vec<P>>,
    /// (b, c, W-1).
    pub initial_states: Option<Vec<P>>,
}

/// Empty gradients, to pass to
/// [`Kernels::causal_conv1d_backward_into`](crate::Kernels::causal_conv1d_backward_into),
/// which sizes them.
impl<T, P> Default for CausalConv1dGrads<T, P> {
    fn default() -> Self {
        Self {
            x: Vec::new(),
            weight: Vec::new(),
            bias: None,
            initial_states: None,
        }
    }
}

/// Arguments of [`causal_conv1d_update`](crate::Kernels::causal_conv1d_update).
#[derive(Clone, Copy, Debug)]
pub struct CausalConv1dUpdateArgs<'a, T, P = f32> {
    /// New samples, (b, c) or (b, c, Ln).
    pub x: Tensor<'a, T>,
    /// (c, W).
    pub weight: Tensor<'a, P>,
    /// (c).
    pub bias: Option<Tensor<'a, P>>,
    /// The activation.
    pub activation: Activation,
}

impl<'a, T, P> CausalConv1dUpdateArgs<'a, T, P> {
    /// Required arguments; no bias, no activation.
    pub fn new(x: Tensor<'a, T>, weight: Tensor<'a, P>) -> Self {
        CausalConv1dUpdateArgs {
            x,
            weight,
            bias: None,
            activation: Activation::None,
        }
    }
    /// Sets the bias.
    pub fn with_bias(mut self, bias: Tensor<'a, P>) -> Self {
        self.bias = Some(bias);
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Checks the arguments against the state (b, c, S) and the output length.
    pub fn validate(&self, conv_state: &TensorMut<'_, P>, out: usize) -> Result<ConvUpdateDims> {
        let (batch, channels, steps) = match self.x.shape.rank() {
            2 => {
                check::len(OP_UPDATE, "x", &self.x)?;
                (self.x.shape.dim(0), self.x.shape.dim(1), 1)
            }
            3 => {
                check::len(OP_UPDATE, "x", &self.x)?;
                (
                    self.x.shape.dim(0),
                    self.x.shape.dim(1),
                    self.x.shape.dim(2),
                )
            }
            _ => {
                return Err(Error::ShapeMismatch {
                    op: OP_UPDATE,
                    arg: "x",
                    expected: "(b, c) or (b, c, Ln)".into(),
                    got: self.x.shape,
                })
            }
        };
        check::nonzero(
            OP_UPDATE,
            "x",
            &self.x,
            &["b", "c", "Ln"][..self.x.shape.rank()],
        )?;
        let width = check_weight(OP_UPDATE, &self.weight, channels)?;
        check::opt_shape(OP_UPDATE, "bias", &self.bias, &[channels], "c")?;
        let state = conv_state.as_ref();
        check::rank(OP_UPDATE, "conv_state", &state, 3, "b, c, S")?;
        let state_len = state.shape.dim(2);
        if state.shape.dim(0) != batch || state.shape.dim(1) != channels {
            return Err(Error::ShapeMismatch {
                op: OP_UPDATE,
                arg: "conv_state",
                expected: check::describe(&[batch, channels, state_len], "b, c, S"),
                got: state.shape,
            });
        }
        if state_len + 1 < width {
            return Err(Error::invalid(
                OP_UPDATE,
                "conv_state",
                alloc::format!(
                    "has S = {state_len} columns (shape {}), but a convolution of width W = {width} needs S >= W-1 = {}",
                    state.shape,
                    width - 1
                ),
            ));
        }
        check::out_len(OP_UPDATE, "out", out, &[batch, channels, steps])?;
        Ok(ConvUpdateDims {
            batch,
            channels,
            steps,
            width,
            state_len,
        })
    }
}

/// The dimensions of a validated convolution decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvUpdateDims {
    /// `b`.
    pub batch: usize,
    /// `c`.
    pub channels: usize,
    /// `Ln`, new samples per call.
    pub steps: usize,
    /// `W`.
    pub width: usize,
    /// `S`, columns of the state.
    pub state_len: usize,
}
