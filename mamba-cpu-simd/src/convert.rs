//! The storage-type boundary: every kernel computes in `f32`, so activations are read
//! as `f32` (borrowed as they are when they already are `f32`) and outputs are
//! rounded into the storage type once, at the end.

use std::any::TypeId;
use std::borrow::Cow;

use mamba_core::Element;

/// `src` as `f32`: borrowed when `T` is `f32`, converted otherwise.
pub(crate) fn to_f32<T: Element>(src: &[T]) -> Cow<'_, [f32]> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32` (same TypeId), so the slice already is a `[f32]` with
        // the same pointer, length and lifetime.
        Cow::Borrowed(unsafe { core::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len()) })
    } else {
        Cow::Owned(src.iter().map(|v| v.to_f32()).collect())
    }
}

/// An optional activation as `f32`.
pub(crate) fn opt_to_f32<T: Element>(src: Option<&[T]>) -> Option<Cow<'_, [f32]>> {
    src.map(to_f32)
}

/// Rounds `src` into `dst` (equal lengths).
pub(crate) fn store<T: Element>(src: &[f32], dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_f32(s);
    }
}

/// An `f32` vector as a vector of the storage type (no copy for `f32`).
pub(crate) fn into_storage<T: Element>(v: Vec<f32>) -> Vec<T> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let mut v = core::mem::ManuallyDrop::new(v);
        // SAFETY: `T` is `f32` (same TypeId): the allocation, length, capacity and
        // layout are those of a `Vec<f32>`, whose ownership moves into the new Vec.
        unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
    } else {
        v.into_iter().map(T::from_f32).collect()
    }
}
