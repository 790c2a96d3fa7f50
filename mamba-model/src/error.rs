//! The model crate's error type.

use thiserror::Error;

/// Errors of `mamba-model`: kernel errors, weight loading, configuration, files.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelError {
    /// A kernel refused its arguments or failed.
    #[error(transparent)]
    Kernel(#[from] mamba_core::Error),
    /// A weight is missing from a checkpoint.
    #[error("weight `{name}` is missing{hint}")]
    MissingWeight {
        /// The full name looked for.
        name: String,
        /// Names that were there, to help spot a prefix mistake.
        hint: String,
    },
    /// A weight has the wrong shape.
    #[error("weight `{name}` has shape {got:?}, expected {expected:?}")]
    WeightShape {
        /// The weight's name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// The configuration is inconsistent.
    #[error("invalid Mamba2 configuration: {0}")]
    Config(String),
    /// The input or state does not match the block.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// Which tensor.
        what: &'static str,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A backend was asked for by name but is unavailable.
    #[error("backend `{name}` was requested but is unavailable: {reason}")]
    BackendUnavailable {
        /// The name asked for.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
}
