//! # mamba-model
//!
//! `Mamba2Block` (SPEC section 6) on any backend, weights from safetensors, and the
//! run-time backend choice.
//!
//! ```
//! use mamba_model::{Mamba2Block, Mamba2Config, Tensor};
//!
//! // The seed's block: d_model 192, d_state 64, mamba-ssm's other defaults.
//! let block = Mamba2Block::init(Mamba2Config::new(192, 64), 0)?;
//! let (batch, frames) = (2, 16);
//! let input = vec![0.1f32; batch * frames * 192];
//! let (output, state) = block.forward(Tensor::new(&input, [batch, frames, 192]))?;
//! assert_eq!(output.len(), input.len());
//! assert_eq!(state.ssm.len(), batch * 6 * 64 * 64);
//! # Ok::<(), mamba_model::ModelError>(())
//! ```
//!
//! | module | what |
//! |--------|------|
//! | [`backend`] | `MAMBA_BACKEND=auto|cuda|cpu-simd|reference`, the one-line report |
//! | [`golden`] | the conformance runner over golden safetensors cases |
//! | [`io`] | safetensors reading |

pub mod backend;
mod block;
mod checkpoint;
mod config;
mod decode;
mod error;
pub mod golden;
pub mod io;
pub mod linear;
mod stack;
pub mod toy;
mod train;
mod weights;

pub use backend::{BackendKind, BackendPreference, Selection};
pub use block::{Mamba2Block, Mamba2State};
pub use config::Mamba2Config;
pub use decode::StackDecoder;
pub use error::ModelError;
pub use mamba_core::{bf16, f16, scratch, DType, Element, Tensor};
pub use stack::{Mamba2Stack, StackAdamW, StackGrads, StackTape};
pub use train::{AdamW, Mamba2Grads, Mamba2Tape};
pub use weights::{expected_tensors, Mamba2Weights, SplitMix64};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
