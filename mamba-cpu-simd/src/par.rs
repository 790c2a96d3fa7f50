//! How work is split: a fixed number of threads, tasks over independent rows, and
//! the time chunks of the two-pass scan when rows are too few to fill the threads.
//!
//! Every split depends only on the shapes, the thread count and the configured
//! [`TimeChunking`], never on which thread runs what, and every reduction over
//! tasks runs afterwards in task order; so a fixed thread count gives bitwise
//! identical results run to run.

use std::sync::Arc;

use rayon::prelude::*;

/// Whether and how the scans split a sequence into time chunks that run in
/// parallel (local scans, then a carry pass, then a fix-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeChunking {
    /// Split only when there are fewer independent rows than twice the threads,
    /// into chunks of at least 256 steps.
    #[default]
    Auto,
    /// Never split: one task per block of rows.
    Off,
    /// Always split into chunks of this many steps (tests use it to force the
    /// chunked path on small problems).
    Fixed(usize),
}

/// Shortest time chunk [`TimeChunking::Auto`] makes: below this the carry pass and
/// the fix-up cost more than the parallelism gains.
const MIN_AUTO_CHUNK: usize = 256;

/// The threads and the chunking policy of a backend.
#[derive(Clone, Debug)]
pub(crate) struct Par {
    pub(crate) threads: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    pub(crate) chunking: TimeChunking,
}

impl Par {
    /// `threads` workers; a single thread runs everything on the caller's thread.
    pub(crate) fn new(threads: usize) -> Par {
        let mut threads = threads.max(1);
        let pool = if threads > 1 {
            match rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("mamba-cpu-simd-{i}"))
                .build()
            {
                Ok(pool) => Some(Arc::new(pool)),
                Err(e) => {
                    // A machine that cannot start threads still runs every kernel, on
                    // the caller's thread.
                    eprintln!(
                        "mamba-cpu-simd: cannot start {threads} threads ({e}); running on one"
                    );
                    threads = 1;
                    None
                }
            }
        } else {
            None
        };
        Par {
            threads,
            pool,
            chunking: TimeChunking::Auto,
        }
    }

    /// Maps `f` over `items` on the pool; the results come back in `items`' order.
    pub(crate) fn map<I, R, F>(&self, items: Vec<I>, f: F) -> Vec<R>
    where
        I: Send,
        R: Send,
        F: Fn(I) -> R + Sync + Send,
    {
        match &self.pool {
            None => items.into_iter().map(f).collect(),
            Some(pool) => pool.install(|| items.into_par_iter().map(f).collect()),
        }
    }

    /// The time-chunk length for `rows` independent rows of `seqlen` steps;
    /// `seqlen` itself means "do not split".
    pub(crate) fn time_chunk(&self, rows: usize, seqlen: usize) -> usize {
        match self.chunking {
            TimeChunking::Off => seqlen,
            TimeChunking::Fixed(len) => len.clamp(1, seqlen.max(1)),
            TimeChunking::Auto => {
                if self.threads == 1 || rows >= 2 * self.threads {
                    return seqlen;
                }
                let wanted = (2 * self.threads).div_ceil(rows.max(1));
                let chunks = wanted.min(seqlen / MIN_AUTO_CHUNK).max(1);
                seqlen.div_ceil(chunks)
            }
        }
    }

    /// Rows per task when rows are split without a reduction across them: about four
    /// tasks per thread, so that uneven rows still balance.
    pub(crate) fn row_block(&self, rows: usize, max: usize) -> usize {
        rows.div_ceil(4 * self.threads).clamp(1, max.max(1))
    }

    /// Rows per task when tasks keep partial sums that are reduced afterwards: about
    /// two tasks per thread, so that the partial buffers stay few.
    pub(crate) fn reduce_block(&self, rows: usize) -> usize {
        rows.div_ceil(2 * self.threads).max(1)
    }
}

/// Splits `buf` into consecutive pieces of the given lengths (which must not add up
/// to more than its length).
pub(crate) fn split_mut<T>(
    mut buf: &mut [T],
    lens: impl IntoIterator<Item = usize>,
) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lens {
        let (head, tail) = core::mem::take(&mut buf).split_at_mut(len);
        out.push(head);
        buf = tail;
    }
    out
}

/// The chunks `[t0, t1)` of `0..seqlen` of length `chunk` (the last may be shorter).
pub(crate) fn chunks(seqlen: usize, chunk: usize) -> Vec<(usize, usize)> {
    (0..seqlen)
        .step_by(chunk.max(1))
        .map(|t0| (t0, (t0 + chunk).min(seqlen)))
        .collect()
}

/// An output buffer that parallel tasks write at disjoint but interleaved places (one
/// head's channels at every step of a (b, L, h, p) tensor), which `split_mut` cannot
/// express.
pub(crate) struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _buf: core::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: a `Disjoint` is a `&mut [T]` shared between tasks that, by the contract of
// `Disjoint::piece`, never touch the same element; sending or sharing it is sending
// `&mut [T]` pieces, which is sound for `T: Send`.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}
// SAFETY: as above: concurrent callers of `piece` get disjoint elements.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    /// Borrows `buf` for the tasks.
    pub(crate) fn new(buf: &'a mut [T]) -> Self {
        Disjoint {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: core::marker::PhantomData,
        }
    }

    /// The `len` elements from `start` (panics if out of bounds).
    ///
    /// # Safety
    ///
    /// While the returned slice lives, no other call (on any thread) may return a
    /// range that overlaps it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn piece(&self, start: usize, len: usize) -> &mut [T] {
        assert!(
            start <= self.len && len <= self.len - start,
            "piece out of bounds"
        );
        // SAFETY: `start <= len` (asserted above), so the offset stays inside the
        // buffer's allocation or one past its end.
        let first = unsafe { self.ptr.add(start) };
        // SAFETY: the range is inside the buffer (asserted above), the buffer is
        // mutably borrowed for 'a, and the caller guarantees no overlapping piece is
        // alive, so this is the only reference to these elements.
        unsafe { core::slice::from_raw_parts_mut(first, len) }
    }
}

/// Where kernels put finished outputs: a storage-type buffer behind an interface that
/// does not name the type, so that the kernels are compiled once per instruction set
/// rather than once per instruction set and storage type.
pub(crate) trait OutSink: Sync {
    /// Rounds `rows` rows of `width` values into the output: row `r` comes from
    /// `v[r * vstride..]` and goes to `at + r * stride`.
    ///
    /// # Safety
    ///
    /// No other call that runs at the same time may touch the same output elements.
    unsafe fn write(
        &self,
        at: usize,
        stride: usize,
        width: usize,
        rows: usize,
        v: &[f32],
        vstride: usize,
    );

    /// As [`OutSink::write`], but adds the values to the outputs.
    ///
    /// # Safety
    ///
    /// As [`OutSink::write`].
    unsafe fn add(
        &self,
        at: usize,
        stride: usize,
        width: usize,
        rows: usize,
        v: &[f32],
        vstride: usize,
    );
}

impl<T: mamba_core::Element> OutSink for Disjoint<'_, T> {
    unsafe fn write(
        &self,
        at: usize,
        stride: usize,
        width: usize,
        rows: usize,
        v: &[f32],
        vstride: usize,
    ) {
        for r in 0..rows {
            // SAFETY: the caller guarantees that no concurrent call touches these
            // elements.
            let dst = unsafe { self.piece(at + r * stride, width) };
            mamba_core::element::convert_into(&v[r * vstride..r * vstride + width], dst);
        }
    }

    unsafe fn add(
        &self,
        at: usize,
        stride: usize,
        width: usize,
        rows: usize,
        v: &[f32],
        vstride: usize,
    ) {
        for r in 0..rows {
            // SAFETY: the caller guarantees that no concurrent call touches these
            // elements.
            let dst = unsafe { self.piece(at + r * stride, width) };
            for (d, &x) in dst.iter_mut().zip(&v[r * vstride..r * vstride + width]) {
                *d = T::from_f32(d.to_f32() + x);
            }
        }
    }
}
