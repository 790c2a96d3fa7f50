//! Borrowed, dense, row-major tensor views: a slice plus its shape.

use core::fmt;

use crate::error::{Error, Result};

/// The most dimensions any argument of any operation has.
pub const MAX_RANK: usize = 6;

/// A tensor shape, outermost dimension first (at most [`MAX_RANK`] dimensions).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
}

impl Shape {
    /// A shape from a fixed-size array; more than [`MAX_RANK`] dimensions fails to compile.
    pub const fn new<const R: usize>(dims: [usize; R]) -> Shape {
        const { assert!(R <= MAX_RANK, "more dimensions than MAX_RANK") };
        let mut out = [0usize; MAX_RANK];
        let mut i = 0;
        while i < R {
            out[i] = dims[i];
            i += 1;
        }
        Shape { dims: out, rank: R }
    }

    /// A shape from a slice, or an error naming `what` if it has too many dimensions.
    pub fn from_slice(dims: &[usize], what: &'static str) -> Result<Shape> {
        if dims.len() > MAX_RANK {
            return Err(Error::invalid(
                "tensor",
                what,
                alloc::format!(
                    "{} dimensions; at most {MAX_RANK} are supported",
                    dims.len()
                ),
            ));
        }
        let mut out = [0usize; MAX_RANK];
        out[..dims.len()].copy_from_slice(dims);
        Ok(Shape {
            dims: out,
            rank: dims.len(),
        })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of elements (1 for a scalar shape `[]`).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Dimension `i`, outermost first.
    pub fn dim(&self, i: usize) -> usize {
        self.dims()[i]
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl<const R: usize> From<[usize; R]> for Shape {
    fn from(dims: [usize; R]) -> Shape {
        Shape::new(dims)
    }
}

/// A read-only tensor: dense row-major data and its shape.
///
/// The length of `data` is checked against the shape when an operation validates its
/// arguments, so building a view never fails.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a, T> {
    /// The elements, row-major.
    pub data: &'a [T],
    /// The shape, outermost first.
    pub shape: Shape,
}

impl<'a, T> Tensor<'a, T> {
    /// A view of `data` with the given shape.
    pub fn new(data: &'a [T], shape: impl Into<Shape>) -> Self {
        Tensor {
            data,
            shape: shape.into(),
        }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
}

/// A mutable tensor (used for states updated in place).
#[derive(Debug)]
pub struct TensorMut<'a, T> {
    /// The elements, row-major.
    pub data: &'a mut [T],
    /// The shape, outermost first.
    pub shape: Shape,
}

impl<'a, T> TensorMut<'a, T> {
    /// A mutable view of `data` with the given shape.
    pub fn new(data: &'a mut [T], shape: impl Into<Shape>) -> Self {
        TensorMut {
            data,
            shape: shape.into(),
        }
    }

    /// A read-only view of the same data.
    pub fn as_ref(&self) -> Tensor<'_, T> {
        Tensor {
            data: self.data,
            shape: self.shape,
        }
    }
}
