//! SPEC section 2: `ssd` (Mamba-2 state-space dual), its arguments and gradients.

use alloc::vec::Vec;

use super::check;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const OP: &str = "ssd";

/// The chunk size mamba-ssm uses by default.
pub const DEFAULT_CHUNK_SIZE: usize = 256;

/// Arguments of [`ssd`](crate::Kernels::ssd).
///
/// `T` is the storage type of the activations (`x, dt, B, C, z`, `out`); `P` the type of
/// the parameters and states (`A, D, dt_bias, initial_states`).
#[derive(Clone, Copy, Debug)]
pub struct SsdArgs<'a, T, P = f32> {
    /// Input, (b, L, h, p).
    pub x: Tensor<'a, T>,
    /// Step sizes before bias, softplus and clamp, (b, L, h).
    pub dt: Tensor<'a, T>,
    /// One decay rate per head, (h).
    pub a: Tensor<'a, P>,
    /// (b, L, g, N), `h % g == 0`.
    pub b: Tensor<'a, T>,
    /// (b, L, g, N).
    pub c: Tensor<'a, T>,
    /// Skip connection, (h) or (h, p).
    pub d: Option<Tensor<'a, P>>,
    /// Gate, (b, L, h, p).
    pub z: Option<Tensor<'a, T>>,
    /// Added to `dt`, (h).
    pub dt_bias: Option<Tensor<'a, P>>,
    /// State before the first step, (b, h, p, N).
    pub initial_states: Option<Tensor<'a, P>>,
    /// Packed-sequence ids, (b, L), non-decreasing along L.
    pub seq_idx: Option<Tensor<'a, i32>>,
    /// Apply softplus to `dt + dt_bias`.
    pub dt_softplus: bool,
    /// Clamp of the step to `[lo, hi]`; `None` (mamba-ssm's `(0, inf)`) clamps nothing.
    pub dt_limit: Option<(f32, f32)>,
    /// Chunk length of the chunked algorithm; changes rounding only.
    pub chunk_size: usize,
}

impl<'a, T, P> SsdArgs<'a, T, P> {
    /// The required arguments; every option off, `chunk_size` 256.
    pub fn new(
        x: Tensor<'a, T>,
        dt: Tensor<'a, T>,
        a: Tensor<'a, P>,
        b: Tensor<'a, T>,
        c: Tensor<'a, T>,
    ) -> Self {
        SsdArgs {
            x,
            dt,
            a,
            b,
            c,
            d: None,
            z: None,
            dt_bias: None,
            initial_states: None,
            seq_idx: None,
            dt_softplus: false,
            dt_limit: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
    /// Sets `D`, (h) or (h, p).
    pub fn with_d(mut self, d: Tensor<'a, P>) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets the gate `z`.
    pub fn with_z(mut self, z: Tensor<'a, T>) -> Self {
        self.z = Some(z);
        self
    }
    /// Sets `dt_bias`.
    pub fn with_dt_bias(mut self, bias: Tensor<'a, P>) -> Self {
        self.dt_bias = Some(bias);
        self
    }
    /// Sets the initial states.
    pub fn with_initial_states(mut self, s: Tensor<'a, P>) -> Self {
        self.initial_states = Some(s);
        self
    }
    /// Sets `seq_idx`.
    pub fn with_seq_idx(mut self, s: Tensor<'a, i32>) -> Self {
        self.seq_idx = Some(s);
        self
    }
    /// Sets `dt_softplus`.
    pub fn with_dt_softplus(mut self, on: bool) -> Self {
        self.dt_softplus = on;
        self
    }
    /// Sets `dt_limit`; `(0, inf)` means no clamp, as in mamba-ssm.
    pub fn with_dt_limit(mut self, lo: f32, hi: f32) -> Self {
        self.dt_limit = normalize_dt_limit(Some((lo, hi)));
        self
    }
    /// Sets `chunk_size`.
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Checks every shape, buffer length and value constraint; returns the dimensions.
    pub fn validate(&self) -> Result<SsdDims> {
        check::rank(OP, "x", &self.x, 4, "b, L, h, p")?;
        check::nonzero(OP, "x", &self.x, &["b", "L", "h", "p"])?;
        let d = self.x.dims();
        let (batch, seqlen, nheads, headdim) = (d[0], d[1], d[2], d[3]);
        check::shape(OP, "dt", &self.dt, &[batch, seqlen, nheads], "b, L, h")?;
        check::shape(OP, "A", &self.a, &[nheads], "h")?;
        check::rank(OP, "B", &self.b, 4, "b, L, g, N")?;
        let (ngroups, dstate) = (self.b.shape.dim(2), self.b.shape.dim(3));
        check::shape(
            OP,
            "B",
            &self.b,
            &[batch, seqlen, ngroups, dstate],
            "b, L, g, N",
        )?;
        check::nonzero(OP, "B", &self.b, &["b", "L", "g", "N"])?;
        check::divisible(OP, "heads h", nheads, "groups g", ngroups)?;
        check::shape(
            OP,
            "C",
            &self.c,
            &[batch, seqlen, ngroups, dstate],
            "b, L, g, N",
        )?;
        let d_per_channel = match &self.d {
            None => false,
            Some(t) if t.shape.rank() == 1 => {
                check::shape(OP, "D", t, &[nheads], "h")?;
                false
            }
            Some(t) => {
                check::shape(OP, "D", t, &[nheads, headdim], "h, p")?;
                true
            }
        };
        check::opt_shape(
            OP,
            "z",
            &self.z,
            &[batch, seqlen, nheads, headdim],
            "b, L, h, p",
        )?;
        check::opt_shape(OP, "dt_bias", &self.dt_bias, &[nheads], "h")?;
        check::opt_shape(
            OP,
            "initial_states",
            &self.initial_states,
            &[batch, nheads, headdim, dstate],
            "b, h, p, N",
        )?;
        if let Some(s) = &self.seq_idx {
            check::shape(OP, "seq_idx", s, &[batch, seqlen], "b, L")?;
            for i in 0..batch {
                let row = &s.data[i * seqlen..(i + 1) * seqlen];
                if let Some(t) = row.windows(2).position(|w| w[1] < w[0]) {
                    return Err(Error::invalid(
                        OP,
                        "seq_idx",
                        alloc::format!(
                            "must be non-decreasing along L, but in batch {i} it goes from {} at t={} to {} at t={}",
                            row[t],
                            t,
                            row[t + 1],
                            t + 1
                        ),
                    ));
                }
            }
        }
        check::dt_limit(OP, self.dt_limit)?;
        if self.chunk_size == 0 {
            return Err(Error::invalid(OP, "chunk_size", "must be at least 1"));
        }
        Ok(SsdDims {
            batch,
            seqlen,
            nheads,
            headdim,
            ngroups,
            dstate,
            d_per_channel,
        })
    }

    /// Validates the arguments and the forward outputs' lengths.
    pub fn validate_forward(&self, out: usize, final_states: Option<usize>) -> Result<SsdDims> {
        let dims = self.validate()?;
        check::out_len(OP, "out", out, &dims.io_shape())?;
        if let Some(n) = final_states {
            check::out_len(OP, "final_states", n, &dims.state_shape())?;
        }
        Ok(dims)
    }

    /// Validates the arguments and the upstream gradients' lengths.
    pub fn validate_backward(&self, dout: usize, dfinal_states: Option<usize>) -> Result<SsdDims> {
        let dims = self.validate()?;
        check::out_len(OP, "dout", dout, &dims.io_shape())?;
        if let Some(n) = dfinal_states {
            check::out_len(OP, "dfinal_states", n, &dims.state_shape())?;
        }
        Ok(dims)
    }
}

/// mamba-ssm treats `dt_limit == (0, inf)` as "no clamp"; so do we.
pub fn normalize_dt_limit(limit: Option<(f32, f32)>) -> Option<(f32, f32)> {
    match limit {
        Some((lo, hi)) if lo == 0.0 && hi == f32::INFINITY => None,
        other => other,
    }
}

/// The dimensions of a validated SSD call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsdDims {
    /// `b`.
    pub batch: usize,
    /// `L`.
    pub seqlen: usize,
    /// `h`.
    pub nheads: usize,
    /// `p`.
    pub headdim: usize,
    /// `g`.
    pub ngroups: usize,
    /// `N`.
    pub dstate: usize,
    /// `D` is (h, p) rather than (h).
    pub d_per_channel: bool,
}

impl SsdDims {
    /// (b, L, h, p).
    pub fn io_shape(&self) -> [usize; 4] {
        [self.batch, self.seqlen, self.nheads, self.headdim]
    }
    /// (b, h, p, N).
    pub fn state_shape(&self) -> [usize; 4] {
        [self.batch, self.nheads, self.headdim, self.dstate]
    }
    /// The group of head `j`.
    #[inline(always)]
    pub fn group(&self, head: usize) -> usize {
        head / (self.nheads / self.ngroups)
    }
}

/// Gradients of an SSD call; each optional field is present when its input was.
#[derive(Clone, Debug, PartialEq)]
pub struct SsdGrads<T, P = f32> {
    /// (b, L, h, p).
    pub x: Vec<T>,
    /// (b, L, h).
    pub dt: Vec<T>,
    /// (h).
    pub a: Vec<P>,
    /// (b, L, g, N).
    pub b: Vec<T>,
    /// (b, L, g, N).
    pub c: Vec<T>,
    /// In `D`'s shape.
    pub d: Option<Vec<P>>,
    /// (b, L, h, p).
    pub z: Option<Vec<T>>,
    /// (h).
    pub dt_bias: Option<Vec<P>>,
    /// (b, h, p, N).
    pub initial_states: Option<Vec<P>>,
}

/// Empty gradients, to pass to
/// [`Kernels::ssd_backward_into`](crate::Kernels::ssd_backward_into), which sizes them.
impl<T, P> Default for SsdGrads<T, P> {
    fn default() -> Self {
        Self {
            x: Vec::new(),
            dt: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            c: Vec::new(),
            d: None,
            z: None,
            dt_bias: None,
            initial_states: None,
        }
    }
}
