//! # mamba-core
//!
//! The foundation of the Mamba kernels: the exact meaning of every operation
//! (`../shared/SPEC.md` sections 1-5), the traits a backend implements, the typed
//! errors, and the reference backend that every other backend is tested against.
//!
//! ```
//! use mamba_core::{Kernels, Reference, SelectiveScanArgs, Tensor};
//!
//! // One batch, two channels, three steps, state size two.
//! let (b, d, l, n) = (1, 2, 3, 2);
//! let u = [1.0f32, 0.5, -0.25, 2.0, 0.0, 1.0];
//! let delta = [0.1f32; 6];
//! let a = [-1.0f32, -0.5, -2.0, -0.25];
//! let bmat = [1.0f32, 0.0, 0.5, 0.5];
//! let cmat = [1.0f32, 1.0, 0.0, 2.0];
//! let args = SelectiveScanArgs::new(
//!     Tensor::new(&u, [b, d, l]),
//!     Tensor::new(&delta, [b, d, l]),
//!     Tensor::new(&a, [d, n]),
//!     Tensor::new(&bmat, [d, n]),
//!     Tensor::new(&cmat, [d, n]),
//! )
//! .with_delta_softplus(true);
//! let mut out = [0.0f32; 6];
//! let mut last = [0.0f32; 4];
//! Reference::new().selective_scan(&args, &mut out, Some(&mut last))?;
//! assert!(out.iter().all(|v| v.is_finite()));
//!
//! // Bad input is a typed error that names the argument and the shapes.
//! let bad = SelectiveScanArgs { delta: Tensor::new(&delta[..4], [1, 2, 2]), ..args };
//! let err = Reference::new().selective_scan(&bad, &mut out, None).unwrap_err();
//! assert!(err.to_string().contains("`delta`"));
//! # Ok::<(), mamba_core::Error>(())
//! ```
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `std`   | yes     | `std::error::Error` for [`Error`]; the backend registry that loads the CUDA plugin at run time; [`scratch`], the CPU backends' pool of temporaries. Without it the crate is `no_std` + `alloc`, with `libm` for the math. |
//! | `testing` | no    | `mamba_core::testing`: random cases of every op, error measures and the property checks (oracle, streaming, decode, chunk size) every backend's tests reuse. Implies `std`. |
//!
//! Storage types: activations in `f32`, `f16` or `bf16` ([`Element`]); parameters and
//! states in `f32`; arithmetic in `f32` ([`Reference<f32>`]) or `f64`
//! ([`Reference<f64>`], the oracle).
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod abi;
mod backend;
pub mod element;
mod error;
pub mod math;
pub mod ops;
#[cfg(feature = "std")]
pub mod plugin;
pub mod reference;
#[cfg(feature = "std")]
pub mod scratch;
mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{Backend, Kernels};
pub use element::{DType, Element, Real};
pub use error::{Error, Result};
pub use ops::conv1d::{
    Activation, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs, Conv1dDims,
    ConvLayout, ConvUpdateDims,
};
pub use ops::selective_scan::{BcLayout, SelectiveScanArgs, SelectiveScanDims, SelectiveScanGrads};
pub use ops::ssd::{SsdArgs, SsdDims, SsdGrads, DEFAULT_CHUNK_SIZE};
pub use ops::state_update::{SelectiveStateUpdateArgs, StateUpdateDims};
pub use reference::Reference;
pub use tensor::{Shape, Tensor, TensorMut, MAX_RANK};

pub use half::{bf16, f16};
