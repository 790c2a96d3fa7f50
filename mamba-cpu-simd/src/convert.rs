//! The storage-type boundary: every kernel computes in `f32`, so activations are read
//! as `f32` (borrowed as they are when they already are `f32`) and outputs are
//! rounded into the storage type once, at the end.
//!
//! The 16-bit conversions run over whole slices ([`mamba_core::element::convert_into`]:
//! `bf16` in integer lanes, here compiled for the best instruction set; `f16` through
//! `half`'s slice conversions), with the same bits as `half`'s element-wise ones. The
//! f32 copies of 16-bit inputs come from and go back to the scratch pool ([`F32s`]).

use std::any::TypeId;
use std::borrow::Cow;

use mamba_core::element::{cast_slice, cast_slice_mut, convert_into};
use mamba_core::{scratch, Element};

use crate::SimdLevel;

/// An activation as `f32`: the caller's slice when it is `f32`, else a converted copy
/// in a buffer of the scratch pool, which goes back to the pool when this is dropped
/// (so a call of the same shape reuses it instead of faulting in fresh pages).
pub(crate) struct F32s<'a>(Cow<'a, [f32]>);

impl core::ops::Deref for F32s<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl AsRef<[f32]> for F32s<'_> {
    fn as_ref(&self) -> &[f32] {
        &self.0
    }
}

impl Drop for F32s<'_> {
    fn drop(&mut self) {
        if let Cow::Owned(v) = core::mem::replace(&mut self.0, Cow::Borrowed(&[])) {
            scratch::give(v);
        }
    }
}

/// `src` as `f32`: borrowed when `T` is `f32`, converted otherwise.
pub(crate) fn to_f32<T: Element>(src: &[T]) -> F32s<'_> {
    if let Some(s) = cast_slice::<T, f32>(src) {
        F32s(Cow::Borrowed(s))
    } else {
        let mut v = scratch::for_overwrite::<f32>(src.len());
        convert_slice(src, &mut v);
        F32s(Cow::Owned(v))
    }
}

/// An optional activation as `f32`.
pub(crate) fn opt_to_f32<T: Element>(src: Option<&[T]>) -> Option<F32s<'_>> {
    src.map(to_f32)
}

/// Converts `src` into `dst` (equal lengths: widening a 16-bit input or rounding an
/// output), vectorised for the best instruction set.
pub(crate) fn convert_slice<A: Element, B: Element>(src: &[A], dst: &mut [B]) {
    crate::vectorized(
        SimdLevel::best(),
        #[inline(always)]
        || convert_into(src, dst),
    );
}

/// An `f32` vector as a vector of the storage type (no copy for `f32`; otherwise the
/// `f32` buffer goes back to the scratch pool).
pub(crate) fn into_storage<T: Element>(v: Vec<f32>) -> Vec<T> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let mut v = core::mem::ManuallyDrop::new(v);
        // SAFETY: `T` is `f32` (same TypeId): the allocation, length, capacity and
        // layout are those of a `Vec<f32>`, whose ownership moves into the new Vec.
        unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
    } else {
        let mut out = vec![T::from_f32(0.0); v.len()];
        convert_slice(&v, &mut out);
        scratch::give(v);
        out
    }
}

/// `s` as `f32` when the storage type is `f32` (an output to write in place).
pub(crate) fn as_f32_mut<T: Element>(s: &mut [T]) -> Option<&mut [f32]> {
    cast_slice_mut::<T, f32>(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mamba_core::{bf16, f16};

    /// Every bf16 and f16 value widens to what `half` gives, and a spread of f32 values
    /// (every exponent, the rounding boundaries, infinities, NaNs) narrows to the same bits.
    #[test]
    fn conversions_match_half_bit_for_bit() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let b: Vec<bf16> = all.iter().map(|&x| bf16::from_bits(x)).collect();
        let h: Vec<f16> = all.iter().map(|&x| f16::from_bits(x)).collect();
        let mut wide = vec![0.0f32; all.len()];
        convert_slice(&b, &mut wide);
        for (x, w) in b.iter().zip(&wide) {
            assert_eq!(
                x.to_f32().to_bits(),
                w.to_bits(),
                "bf16 {:#06x}",
                x.to_bits()
            );
        }
        convert_slice(&h, &mut wide);
        for (x, w) in h.iter().zip(&wide) {
            assert_eq!(
                x.to_f32().to_bits(),
                w.to_bits(),
                "f16 {:#06x}",
                x.to_bits()
            );
        }
        let mut f: Vec<f32> = Vec::new();
        for e in 0..=255u32 {
            for m in [
                0u32, 1, 0x7fff, 0x8000, 0x8001, 0x1_7fff, 0x1_8000, 0x7f_ffff, 0x40_0000,
            ] {
                for sign in [0u32, 1 << 31] {
                    f.push(f32::from_bits(sign | (e << 23) | m));
                }
            }
        }
        f.extend([
            0.1f32,
            -1.0 / 3.0,
            65504.0,
            65520.0,
            1e-8,
            6e-8,
            f32::MIN_POSITIVE,
        ]);
        let mut nb = vec![bf16::ZERO; f.len()];
        convert_slice(&f, &mut nb);
        let mut nh = vec![f16::ZERO; f.len()];
        convert_slice(&f, &mut nh);
        for (k, &x) in f.iter().enumerate() {
            assert_eq!(
                bf16::from_f32(x).to_bits(),
                nb[k].to_bits(),
                "bf16 of {:#010x}",
                x.to_bits()
            );
            assert_eq!(
                f16::from_f32(x).to_bits(),
                nh[k].to_bits(),
                "f16 of {:#010x}",
                x.to_bits()
            );
        }
        let v: Vec<bf16> = into_storage(f.clone());
        assert!(v.iter().zip(&nb).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
