//! The error type of every operation: what was wrong, which argument, which shapes.

use alloc::string::String;
use core::fmt;

use crate::tensor::Shape;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything an operation or backend can refuse or fail with.
///
/// Every variant names the operation and the argument involved, so a message alone
/// says what to fix.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer's length differs from the number of elements of its shape.
    BufferLength {
        /// The operation (`selective_scan`, ...).
        op: &'static str,
        /// The argument (`u`, `out`, ...).
        arg: &'static str,
        /// The shape the buffer should hold.
        shape: Shape,
        /// Elements the shape needs.
        expected: usize,
        /// Elements the buffer has.
        got: usize,
    },
    /// A tensor's shape is not the one the other arguments imply.
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// The expected shape, with the names of its dimensions, e.g. `[2, 8, 7] (b, d, L)`.
        expected: String,
        /// The shape given.
        got: Shape,
    },
    /// A dimension that must be positive is zero.
    ZeroDim {
        /// The operation.
        op: &'static str,
        /// The argument the dimension was read from.
        arg: &'static str,
        /// The dimension's name (`L`, `N`, `W`, ...).
        dim: &'static str,
        /// The argument's shape.
        shape: Shape,
    },
    /// A count that must divide another does not.
    NotDivisible {
        /// The operation.
        op: &'static str,
        /// What is divided, e.g. `channels d`.
        what: &'static str,
        /// Its value.
        value: usize,
        /// What must divide it, e.g. `groups g`.
        by_what: &'static str,
        /// Its value.
        by: usize,
    },
    /// An argument's value (not its shape) is invalid.
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// Why.
        reason: String,
    },
    /// The backend lacks this operation, option or storage type.
    Unsupported {
        /// The backend (`reference`, `cpu-simd`, `cuda`).
        backend: &'static str,
        /// The operation.
        op: &'static str,
        /// The missing option or type.
        what: String,
    },
    /// A backend failed while running (device errors, plugin errors).
    Backend {
        /// The backend.
        backend: &'static str,
        /// What it reported.
        message: String,
    },
    /// A backend could not be loaded or is unavailable (e.g. no CUDA driver).
    Unavailable {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, arg: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            op,
            arg,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(backend: &'static str, op: &'static str, what: impl Into<String>) -> Error {
        Error::Unsupported {
            backend,
            op,
            what: what.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BufferLength {
                op,
                arg,
                shape,
                expected,
                got,
            } => write!(
                f,
                "{op}: argument `{arg}` has {got} elements, but its shape {shape} needs {expected}"
            ),
            Error::ShapeMismatch {
                op,
                arg,
                expected,
                got,
            } => write!(
                f,
                "{op}: argument `{arg}` has shape {got}, expected {expected}"
            ),
            Error::ZeroDim {
                op,
                arg,
                dim,
                shape,
            } => write!(
                f,
                "{op}: dimension {dim} of argument `{arg}` (shape {shape}) is zero; it must be at least 1"
            ),
            Error::NotDivisible {
                op,
                what,
                value,
                by_what,
                by,
            } => write!(
                f,
                "{op}: {what} = {value} is not divisible by {by_what} = {by}"
            ),
            Error::InvalidArgument { op, arg, reason } => {
                write!(f, "{op}: invalid argument `{arg}`: {reason}")
            }
            Error::Unsupported { backend, op, what } => {
                write!(f, "{op}: backend {backend} does not support {what}")
            }
            Error::Backend { backend, message } => write!(f, "backend {backend}: {message}"),
            Error::Unavailable { backend, reason } => {
                write!(f, "backend {backend} is unavailable: {reason}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
