//! A process-wide pool of large host vectors for the CPU backends' temporaries.
//!
//! A CPU forward or backward of a block at the benchmark's shapes allocates tens of MB of
//! temporaries and frees them when it returns; the allocator hands such memory back to
//! the system, and the next call of the same shape pays a page fault and the kernel's
//! zeroing for every 4 KiB page again (a quarter to a third of a `Mamba2Block` call on
//! the CPU, measured). Vectors given back here are kept instead (up to a byte limit) and
//! handed out again by [`zeroed`] / [`with_capacity`] / [`copy_of`] / [`for_overwrite`]
//! to the next request
//! of the same element type that fits.
//!
//! - Only vectors of at least 64 KiB are kept; smaller requests go to the allocator.
//! - The limit is 256 MiB, or `MAMBA_SCRATCH_MB` (read once; `0` turns the pool off).
//!   Past it the oldest vectors are freed first.
//! - [`release`] frees everything the pool holds.
//! - What comes out is an ordinary `Vec` (zeroed by [`zeroed`], as `vec![T::default();
//!   len]` would be); giving it back is optional; dropping it frees it as usual.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::any::Any;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Vectors below this many bytes are not kept.
pub const MIN_BYTES: usize = 64 * 1024;

struct Pool {
    /// (bytes of capacity, a `Vec<T>`), oldest first.
    items: Vec<(usize, Box<dyn Any + Send>)>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    items: Vec::new(),
    bytes: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    // The pool holds plain vectors; a panic while it was locked leaves it consistent.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pool's byte limit.
pub fn limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("MAMBA_SCRATCH_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(256 << 20, |mb| mb << 20)
    })
}

/// A pooled `Vec<T>` with room for `len` values (at most about four times that, so that a
/// small request does not take a large vector), or `None`.
fn take<T: Send + 'static>(len: usize) -> Option<Vec<T>> {
    let bytes = len.checked_mul(core::mem::size_of::<T>())?;
    if bytes < MIN_BYTES {
        return None;
    }
    let mut p = pool();
    let mut best: Option<(usize, usize)> = None;
    for (i, (b, item)) in p.items.iter().enumerate() {
        if let Some(v) = item.downcast_ref::<Vec<T>>() {
            let cap = v.capacity();
            if cap >= len && *b <= 4 * bytes + MIN_BYTES && best.is_none_or(|(_, c)| cap < c) {
                best = Some((i, cap));
            }
        }
    }
    let (i, _) = best?;
    let (b, item) = p.items.remove(i);
    p.bytes -= b;
    drop(p);
    item.downcast::<Vec<T>>().ok().map(|v| *v)
}

/// An empty `Vec<T>` with room for at least `len` values, from the pool where it has
/// one.
pub fn with_capacity<T: Send + 'static>(len: usize) -> Vec<T> {
    match take::<T>(len) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

/// `len` copies of `T::default()` (zeros for the float types), in pooled memory where the
/// pool has some.
pub fn zeroed<T: Copy + Default + Send + 'static>(len: usize) -> Vec<T> {
    match take::<T>(len) {
        Some(mut v) => {
            v.clear();
            v.resize(len, T::default());
            v
        }
        None => alloc::vec![T::default(); len],
    }
}

/// `len` values for a caller that writes every one before reading any (a product's
/// output, say): a pooled vector keeps the values it held (no fill: the zeroing
/// [`zeroed`] does took a tenth of a block's CPU forward), a fresh one is zeroed. Every
/// value is initialised either way; only which values differs.
pub fn for_overwrite<T: Copy + Default + Send + 'static>(len: usize) -> Vec<T> {
    match take::<T>(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, T::default());
            v
        }
        None => alloc::vec![T::default(); len],
    }
}

/// A copy of `src`, in pooled memory where the pool has some.
pub fn copy_of<T: Copy + Send + 'static>(src: &[T]) -> Vec<T> {
    let mut v = with_capacity(src.len());
    v.extend_from_slice(src);
    v
}

/// `src` converted to `B` ([`crate::element::convert_into`]), in pooled memory where the
/// pool has some.
pub fn convert<A: crate::Element, B: crate::Element>(src: &[A]) -> Vec<B> {
    let mut v = for_overwrite::<B>(src.len());
    crate::element::convert_into(src, &mut v);
    v
}

/// Gives `v`'s memory to the pool (kept when it is at least [`MIN_BYTES`] and the limit
/// allows; the oldest vectors are freed to make room).
pub fn give<T: Send + 'static>(v: Vec<T>) {
    let bytes = v.capacity() * core::mem::size_of::<T>();
    let limit = limit();
    if bytes < MIN_BYTES || bytes > limit {
        return;
    }
    let mut freed = Vec::new();
    {
        let mut p = pool();
        while p.bytes + bytes > limit && !p.items.is_empty() {
            let (b, item) = p.items.remove(0);
            p.bytes -= b;
            freed.push(item);
        }
        p.items.push((bytes, Box::new(v)));
        p.bytes += bytes;
    }
    // Freed outside the lock.
    drop(freed);
}

/// Bytes the pool holds now.
pub fn held() -> usize {
    pool().bytes
}

/// Frees every vector the pool holds; returns how many bytes that was.
pub fn release() -> usize {
    let items = {
        let mut p = pool();
        p.bytes = 0;
        core::mem::take(&mut p.items)
    };
    items.iter().map(|(b, _)| b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    // One test: the pool is global, and tests run in parallel threads.
    #[test]
    fn vectors_come_back_zeroed_and_by_type() {
        let n = MIN_BYTES * 4; // 1 MiB of f32
        let mut a: Vec<f32> = zeroed(n);
        a.iter_mut().for_each(|v| *v = 1.5);
        let at = a.as_ptr();
        give(a);
        assert!(held() >= 4 * n);
        // Another type does not take it; the same type does, zeroed.
        let other: Vec<f64> = zeroed(n / 2);
        assert_ne!(other.as_ptr() as usize, at as usize);
        let b: Vec<f32> = zeroed(n - 7);
        assert_eq!(b.as_ptr(), at, "the pooled vector was not reused");
        assert_eq!(b.len(), n - 7);
        assert!(b.iter().all(|&v| v == 0.0));
        // A much smaller request does not take a large vector.
        give(b);
        let small: Vec<f32> = zeroed(MIN_BYTES / 4);
        assert_ne!(small.as_ptr(), at);
        let c = copy_of(&vec![2.0f32; 200_000]);
        assert_eq!(c.as_ptr(), at);
        assert!(c.iter().all(|&v| v == 2.0) && c.len() == 200_000);
        // for_overwrite: the pooled vector with its values, zeros past its old length.
        give(c);
        let d: Vec<f32> = for_overwrite(150_000);
        assert_eq!(d.as_ptr(), at);
        assert!(d.len() == 150_000 && d.iter().all(|&v| v == 2.0));
        give(d);
        let c: Vec<f32> = for_overwrite(210_000);
        assert_eq!(c.as_ptr(), at);
        assert!(c[..150_000].iter().all(|&v| v == 2.0) && c[150_000..].iter().all(|&v| v == 0.0));
        let fresh: Vec<f32> = for_overwrite(70_000);
        assert!(fresh.len() == 70_000 && fresh.iter().all(|&v| v == 0.0));
        // Small vectors are not kept.
        give(alloc::vec![0u8; 100]);
        give(c);
        give(other);
        assert!(release() >= 4 * n);
        assert_eq!(held(), 0);
    }
}
