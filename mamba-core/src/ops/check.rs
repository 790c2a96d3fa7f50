//! Shared argument checks: each returns the typed error that names the argument.

use alloc::format;
use alloc::string::String;

use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

/// Formats an expected shape with the names of its dimensions: `[2, 8, 7] (b, d, L)`.
pub(crate) fn describe(dims: &[usize], names: &str) -> String {
    let shape = Shape::from_slice(dims, "expected").unwrap_or_default();
    format!("{shape} ({names})")
}

/// The buffer holds exactly as many elements as its shape says.
pub(crate) fn len<T>(op: &'static str, arg: &'static str, t: &Tensor<'_, T>) -> Result<()> {
    let expected = t.shape.numel();
    if t.data.len() != expected {
        return Err(Error::BufferLength {
            op,
            arg,
            shape: t.shape,
            expected,
            got: t.data.len(),
        });
    }
    Ok(())
}

/// The tensor has the given rank; `names` describes the expected dimensions.
pub(crate) fn rank<T>(
    op: &'static str,
    arg: &'static str,
    t: &Tensor<'_, T>,
    rank: usize,
    names: &str,
) -> Result<()> {
    if t.shape.rank() != rank {
        return Err(Error::ShapeMismatch {
            op,
            arg,
            expected: format!("{rank} dimensions ({names})"),
            got: t.shape,
        });
    }
    len(op, arg, t)
}

/// The tensor's shape equals `dims` exactly, and its buffer matches.
pub(crate) fn shape<T>(
    op: &'static str,
    arg: &'static str,
    t: &Tensor<'_, T>,
    dims: &[usize],
    names: &str,
) -> Result<()> {
    if t.shape.dims() != dims {
        return Err(Error::ShapeMismatch {
            op,
            arg,
            expected: describe(dims, names),
            got: t.shape,
        });
    }
    len(op, arg, t)
}

/// Like [`shape`] for an optional argument.
pub(crate) fn opt_shape<T>(
    op: &'static str,
    arg: &'static str,
    t: &Option<Tensor<'_, T>>,
    dims: &[usize],
    names: &str,
) -> Result<()> {
    match t {
        Some(t) => shape(op, arg, t, dims, names),
        None => Ok(()),
    }
}

/// Every listed dimension of `t` is positive.
pub(crate) fn nonzero<T>(
    op: &'static str,
    arg: &'static str,
    t: &Tensor<'_, T>,
    names: &[&'static str],
) -> Result<()> {
    for (i, &name) in names.iter().enumerate() {
        if t.shape.dim(i) == 0 {
            return Err(Error::ZeroDim {
                op,
                arg,
                dim: name,
                shape: t.shape,
            });
        }
    }
    Ok(())
}

/// An output buffer has exactly the elements of `dims`.
pub(crate) fn out_len(
    op: &'static str,
    arg: &'static str,
    got: usize,
    dims: &[usize],
) -> Result<()> {
    let shape = Shape::from_slice(dims, arg)?;
    if got != shape.numel() {
        return Err(Error::BufferLength {
            op,
            arg,
            shape,
            expected: shape.numel(),
            got,
        });
    }
    Ok(())
}

/// `value % by == 0`.
pub(crate) fn divisible(
    op: &'static str,
    what: &'static str,
    value: usize,
    by_what: &'static str,
    by: usize,
) -> Result<()> {
    if by == 0 || !value.is_multiple_of(by) {
        return Err(Error::NotDivisible {
            op,
            what,
            value,
            by_what,
            by,
        });
    }
    Ok(())
}

/// A `dt_limit` is a valid interval.
pub(crate) fn dt_limit(op: &'static str, limit: Option<(f32, f32)>) -> Result<()> {
    if let Some((lo, hi)) = limit {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::invalid(
                op,
                "dt_limit",
                format!("({lo}, {hi}) is not an interval lo <= hi"),
            ));
        }
    }
    Ok(())
}
