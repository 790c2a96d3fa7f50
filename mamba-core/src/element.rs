//! Storage types: the element types tensors may hold, and the accumulator types
//! arithmetic may run in.

use core::fmt::Debug;

use half::{bf16, f16};
use num_traits::Float;

/// The storage type of a tensor, as a value (for messages, the plugin ABI and files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16: binary32 with the low 16 mantissa bits dropped.
    BF16,
    /// IEEE 754 binary64; accepted by the reference backend only (the oracle).
    F64,
}

impl DType {
    /// The lower-case name used on command lines and in reports (`f32`, `bf16`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
        }
    }

    /// Parses a name as written by [`DType::name`].
    pub fn parse(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            "f16" => Some(DType::F16),
            "bf16" => Some(DType::BF16),
            "f64" => Some(DType::F64),
            _ => None,
        }
    }

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::F64 => 8,
        }
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A type a tensor can be stored in. Sealed: `f32`, `f16`, `bf16` for activations on
/// every backend, and `f64` for the reference oracle.
pub trait Element:
    sealed::Sealed + Copy + Default + Debug + PartialEq + Send + Sync + 'static
{
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Widens (or, for `f64`, rounds) to `f32`.
    fn to_f32(self) -> f32;
    /// Rounds an `f32` to this type (round to nearest even).
    fn from_f32(v: f32) -> Self;
    /// Widens to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Rounds an `f64` to this type.
    fn from_f64(v: f64) -> Self;
    /// The slice itself when this type is `f32` (no copy), else `None`.
    #[inline(always)]
    fn as_f32_slice(_s: &[Self]) -> Option<&[f32]> {
        None
    }
    /// Rounds a vector of `f32` into this type; free (the same allocation) for `f32`.
    fn vec_from_f32(v: alloc::vec::Vec<f32>) -> alloc::vec::Vec<Self> {
        v.into_iter().map(Self::from_f32).collect()
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn as_f32_slice(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    #[inline(always)]
    fn vec_from_f32(v: alloc::vec::Vec<f32>) -> alloc::vec::Vec<Self> {
        v
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

/// An accumulator type: the type arithmetic runs in (`f32`, or `f64` for the oracle).
pub trait Real: Float + Element {
    /// Converts any element into this accumulator type.
    #[inline(always)]
    fn of<E: Element>(e: E) -> Self {
        Self::from_f64(e.to_f64())
    }
    /// Converts an `f64` constant.
    #[inline(always)]
    fn c(v: f64) -> Self {
        Self::from_f64(v)
    }
    /// Rounds into a storage type.
    #[inline(always)]
    fn to<E: Element>(self) -> E {
        E::from_f64(self.to_f64())
    }
}

impl Real for f32 {
    #[inline(always)]
    fn of<E: Element>(e: E) -> Self {
        e.to_f32()
    }
    #[inline(always)]
    fn to<E: Element>(self) -> E {
        E::from_f32(self)
    }
}
impl Real for f64 {}

/// Converts a slice of one element type into a vector of another.
pub fn convert<A: Element, B: Element>(src: &[A]) -> alloc::vec::Vec<B> {
    src.iter().map(|&v| B::from_f64(v.to_f64())).collect()
}
