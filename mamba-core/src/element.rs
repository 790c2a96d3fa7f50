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
        convert(&v)
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

/// Converts a slice of one element type into a vector of another (see
/// [`convert_into`]).
pub fn convert<A: Element, B: Element>(src: &[A]) -> alloc::vec::Vec<B> {
    let mut out = alloc::vec![B::default(); src.len()];
    convert_into(src, &mut out);
    out
}

/// Converts `src` into `dst` (equal lengths), rounding to nearest even: the same bits
/// as converting element by element through `f64`. The conversions between `f32` and
/// the 16-bit types run over whole slices: `bf16` in integer lanes that compilers
/// vectorise, `f16` through `half`'s slice conversions (F16C on x86-64 where the CPU
/// has it, with `std`).
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
pub fn convert_into<A: Element, B: Element>(src: &[A], dst: &mut [B]) {
    use half::slice::HalfFloatSliceExt;
    assert_eq!(src.len(), dst.len(), "convert_into: lengths differ");
    if let Some(d) = cast_slice_mut::<B, A>(dst) {
        d.copy_from_slice(src);
    } else if let (Some(s), Some(d)) = (cast_slice::<A, bf16>(src), cast_slice_mut::<B, f32>(dst)) {
        widen_bf16(s, d);
    } else if let (Some(s), Some(d)) = (cast_slice::<A, f32>(src), cast_slice_mut::<B, bf16>(dst)) {
        narrow_bf16(s, d);
    } else if let (Some(s), Some(d)) = (cast_slice::<A, f16>(src), cast_slice_mut::<B, f32>(dst)) {
        s.convert_to_f32_slice(d);
    } else if let (Some(s), Some(d)) = (cast_slice::<A, f32>(src), cast_slice_mut::<B, f16>(dst)) {
        d.convert_from_f32_slice(s);
    } else {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = B::from_f64(v.to_f64());
        }
    }
}

/// `bf16` to `f32`, as `bf16::to_f32` (a NaN gets its quiet bit), in a loop compilers
/// vectorise. Lengths: `dst` as long as `src` (extra elements are left alone).
#[inline(always)]
pub fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
    for (d, &h) in dst.iter_mut().zip(src) {
        let x = u32::from(h.to_bits());
        let quiet = if (x & 0x7fff) > 0x7f80 { 0x40 } else { 0 };
        *d = f32::from_bits((x | quiet) << 16);
    }
}

/// `f32` to `bf16`, rounding to nearest even as `bf16::from_f32` (a NaN keeps its high
/// bits with the quiet bit set), in a loop compilers vectorise.
#[inline(always)]
pub fn narrow_bf16(src: &[f32], dst: &mut [bf16]) {
    for (d, &f) in dst.iter_mut().zip(src) {
        let x = f.to_bits();
        let nan = (x & 0x7fff_ffff) > 0x7f80_0000;
        let up = u32::from((x & 0x8000) != 0 && (x & 0x1_7fff) != 0);
        let bits = if nan {
            (x >> 16) | 0x40
        } else {
            (x >> 16) + up
        };
        *d = bf16::from_bits(bits as u16);
    }
}

/// `s` as a slice of `U` when `T` is `U` (the same type), else `None`.
#[inline(always)]
pub fn cast_slice<T: 'static, U: 'static>(s: &[T]) -> Option<&[U]> {
    if core::any::TypeId::of::<T>() == core::any::TypeId::of::<U>() {
        // SAFETY: `T` is `U` (same TypeId), so the slice already is a `[U]` with the
        // same pointer, length and lifetime.
        Some(unsafe { core::slice::from_raw_parts(s.as_ptr().cast::<U>(), s.len()) })
    } else {
        None
    }
}

/// `s` as a mutable slice of `U` when `T` is `U` (the same type), else `None`.
#[inline(always)]
pub fn cast_slice_mut<T: 'static, U: 'static>(s: &mut [T]) -> Option<&mut [U]> {
    if core::any::TypeId::of::<T>() == core::any::TypeId::of::<U>() {
        // SAFETY: as in `cast_slice`; the borrow moves into the result.
        Some(unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<U>(), s.len()) })
    } else {
        None
    }
}
