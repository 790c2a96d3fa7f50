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

/// Sizes a caller's output vector to `len` values for a kernel that writes every one:
/// its allocation is kept where it is large enough (the old values stay until the kernel
/// overwrites them), else it goes to the scratch pool and the pool's or a fresh one
/// (lazily zeroed pages) takes its place.
pub(crate) fn size_for_overwrite<T: Element>(v: &mut Vec<T>, len: usize) {
    if v.capacity() < len {
        scratch::give(core::mem::replace(v, scratch::for_overwrite(len)));
    } else {
        v.truncate(len);
        v.resize(len, T::from_f32(0.0));
    }
}

/// Sizes a caller's output vector to `len` zeros (for a kernel that adds into it),
/// keeping its allocation where it is large enough (else as [`size_for_overwrite`]).
pub(crate) fn size_zeroed<T: Element>(v: &mut Vec<T>, len: usize) {
    if v.capacity() < len {
        scratch::give(core::mem::replace(v, scratch::zeroed(len)));
    } else {
        v.clear();
        v.resize(len, T::from_f32(0.0));
    }
}

/// An optional output: `Some` of `len` zeros where `len` is given (its allocation kept
/// where large enough), `None` otherwise.
pub(crate) fn size_opt_zeroed<T: Element>(o: &mut Option<Vec<T>>, len: Option<usize>) {
    match len {
        Some(len) => size_zeroed(o.get_or_insert_with(Vec::new), len),
        None => *o = None,
    }
}

/// An optional output: a copy of `src` where it is given (the allocation kept where
/// large enough), `None` otherwise.
pub(crate) fn set_opt<T: Copy>(o: &mut Option<Vec<T>>, src: Option<&[T]>) {
    match src {
        Some(src) => {
            let v = o.get_or_insert_with(Vec::new);
            v.clear();
            v.extend_from_slice(src);
        }
        None => *o = None,
    }
}

/// The `f32` working buffer of an output in storage type `T`: the output itself when `T`
/// is `f32`, else a buffer of the scratch pool that [`F32Out::finish`] rounds into the
/// output and gives back.
pub(crate) enum F32Out<'a, T> {
    Direct(&'a mut [f32]),
    Staged(Vec<f32>, &'a mut [T]),
}

impl<'a, T: Element> F32Out<'a, T> {
    /// `zero`: the kernel adds into the buffer, which starts at zero; otherwise it writes
    /// every value.
    pub(crate) fn new(out: &'a mut [T], zero: bool) -> Self {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            let s = as_f32_mut(out).expect("T is f32");
            if zero {
                s.fill(0.0);
            }
            Self::Direct(s)
        } else if zero {
            Self::Staged(scratch::zeroed(out.len()), out)
        } else {
            Self::Staged(scratch::for_overwrite(out.len()), out)
        }
    }

    /// The buffer the kernel writes.
    pub(crate) fn buf(&mut self) -> &mut [f32] {
        match self {
            Self::Direct(s) => s,
            Self::Staged(v, _) => v,
        }
    }

    /// Rounds a staged buffer into the output and gives it back to the pool.
    pub(crate) fn finish(self) {
        if let Self::Staged(v, out) = self {
            convert_slice(&v, out);
            scratch::give(v);
        }
    }
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
