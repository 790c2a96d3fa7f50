//! Products with few rows, `y (rows, out) = x (rows, inp) · wᵀ` with `w` (out, inp)
//! row-major: the projections of a decode step.
//!
//! A packed GEMM copies `w` into panels on every call, which for a handful of rows
//! costs more than the product itself: a step of a 768-wide Mamba2Block spent 45% of
//! its time packing weights. Here each output is the dot products of one row of `w`,
//! read once from memory, with every row of `x` (which stays in cache), so the cost
//! is one pass over `w`. Outputs are split over the threads of rayon's current pool.

use rayon::prelude::*;

use crate::simd::{Isa, Kernel, Simd, SimdLevel};

/// The most rows [`matmul_nt_few_rows`] is meant for: up to here it beat a packed
/// SGEMM on the projections of a decode step (see the crate's bench notes); past it,
/// each row of `w` is reused enough for packing to pay.
pub const FEW_ROWS_MAX: usize = 32;

/// Below this many multiply-adds the product runs on the caller's thread (waking
/// rayon's workers cost more: at 2^16, one token through four 192-wide blocks took
/// 0.53-0.54 ms, at 2^18 0.21; at 2^20, 512-wide blocks went 1.5 -> 2.3 ms).
const PARALLEL_MIN: usize = 1 << 18;

/// `y (rows, out) = x (rows, inp) · wᵀ` with `w` (out, inp) row-major, on the
/// instruction set `level` (`None` if this CPU lacks it), outputs split over the
/// threads of rayon's current pool. Accumulates in `f32` in a fixed order that does
/// not depend on the number of threads, so results are reproducible run to run.
///
/// Any number of rows is accepted; it pays up to about [`FEW_ROWS_MAX`].
///
/// # Panics
/// If a slice's length is not the product of its dimensions.
pub fn matmul_nt_few_rows(
    level: SimdLevel,
    x: &[f32],
    rows: usize,
    inp: usize,
    w: &[f32],
    out: usize,
    y: &mut [f32],
) -> Option<()> {
    assert_eq!(
        x.len(),
        rows * inp,
        "matmul_nt_few_rows: x is not rows x inp"
    );
    assert_eq!(w.len(), out * inp, "matmul_nt_few_rows: w is not out x inp");
    assert_eq!(
        y.len(),
        rows * out,
        "matmul_nt_few_rows: y is not rows x out"
    );
    let isa = Isa::new(level)?;
    if rows == 0 || out == 0 {
        return Some(());
    }
    if inp == 0 {
        y.fill(0.0);
        return Some(());
    }
    if rows == 1 {
        // y is one row: outputs are contiguous, no transpose needed.
        run(isa, x, 1, inp, w, out, y);
        return Some(());
    }
    // Outputs by task, written transposed (out, rows), then put in place.
    let mut yt = vec![0.0f32; out * rows];
    run(isa, x, rows, inp, w, out, &mut yt);
    for (o, col) in yt.chunks_exact(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * out + o] = v;
        }
    }
    Some(())
}

/// Runs `f(first, chunk)` over `buf`, `units` units of `unit` values, cut into tasks of
/// whole units (`first`: the task's first unit): all on the calling thread below
/// `PARALLEL_MIN` multiply-adds (`work`) or with one thread, else a few tasks per thread
/// of at least `min_units` each, on rayon's current pool.
fn in_tasks(
    buf: &mut [f32],
    units: usize,
    unit: usize,
    work: usize,
    min_units: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let threads = rayon::current_num_threads();
    let per_task = if work < PARALLEL_MIN || threads == 1 {
        units
    } else {
        units.div_ceil(4 * threads).max(min_units)
    };
    if per_task >= units {
        f(0, buf);
    } else {
        buf.par_chunks_mut(per_task * unit)
            .enumerate()
            .for_each(|(t, chunk)| f(t * per_task, chunk));
    }
}

/// Fills `yt` (out, rows) in tasks of contiguous outputs (at least 16 each).
fn run(isa: Isa, x: &[f32], rows: usize, inp: usize, w: &[f32], out: usize, yt: &mut [f32]) {
    in_tasks(yt, out, rows, rows * inp * out, 16, |o0, yt| {
        let n = yt.len() / rows;
        isa.dispatch(Outputs {
            x,
            rows,
            inp,
            w: &w[o0 * inp..(o0 + n) * inp],
            yt,
        });
    });
}

/// A block of outputs: `w` holds their rows, `yt` (outputs, rows) their values.
struct Outputs<'a> {
    x: &'a [f32],
    rows: usize,
    inp: usize,
    w: &'a [f32],
    yt: &'a mut [f32],
}

impl Kernel for Outputs<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let (rows, inp) = (self.rows, self.inp);
        let outs = self.yt.len() / rows;
        let mut o0 = 0;
        while o0 < outs {
            // One row: tiles of 8 outputs, eight weight rows streamed at once (a decode
            // step of one token reads its weights from memory: 2.97 -> 2.63-2.66 ms a
            // token through four 768-wide blocks on the 2-core development VM; each
            // output's sum in the same order as in a tile of 4).
            if rows == 1 && outs - o0 >= 8 {
                let t = Tile {
                    wt: &self.w[o0 * inp..],
                    xs: self.x,
                    inp,
                    rows,
                    r0: 0,
                };
                t.run::<S, 8, 1>(s, &mut self.yt[o0..]);
                o0 += 8;
                continue;
            }
            // Tiles of 4 outputs x 4 rows: each loaded vector of w serves 4 rows and
            // each of x 4 outputs.
            let wt = &self.w[o0 * inp..];
            let yt = &mut self.yt[o0 * rows..];
            let mut r0 = 0;
            while r0 < rows {
                let xs = &self.x[r0 * inp..];
                let t = Tile {
                    wt,
                    xs,
                    inp,
                    rows,
                    r0,
                };
                match (outs - o0 >= 4, (rows - r0).min(4)) {
                    (true, 1) => t.run::<S, 4, 1>(s, yt),
                    (true, 2) => t.run::<S, 4, 2>(s, yt),
                    (true, 3) => t.run::<S, 4, 3>(s, yt),
                    (true, _) => t.run::<S, 4, 4>(s, yt),
                    (false, 1) => t.run::<S, 1, 1>(s, yt),
                    (false, 2) => t.run::<S, 1, 2>(s, yt),
                    (false, 3) => t.run::<S, 1, 3>(s, yt),
                    (false, _) => t.run::<S, 1, 4>(s, yt),
                }
                r0 += 4;
            }
            o0 += if outs - o0 >= 4 { 4 } else { 1 };
        }
    }
}

/// `O` outputs (rows of `w` from `wt`) by `R` rows of `x` (from `xs`, row stride `inp`).
struct Tile<'a> {
    wt: &'a [f32],
    xs: &'a [f32],
    inp: usize,
    rows: usize,
    r0: usize,
}

impl Tile<'_> {
    /// Writes `yt[o * rows + r0 + r]` for `o < O`, `r < R`.
    #[inline(always)]
    fn run<S: Simd, const O: usize, const R: usize>(&self, s: S, yt: &mut [f32]) {
        let (l, inp) = (S::LANES, self.inp);
        let mut acc = [[s.zero(); R]; O];
        let mut i = 0;
        while i + l <= inp {
            let mut xv = [s.zero(); R];
            for (r, v) in xv.iter_mut().enumerate() {
                *v = s.load(&self.xs[r * inp + i..]);
            }
            for (o, a) in acc.iter_mut().enumerate() {
                let wv = s.load(&self.wt[o * inp + i..]);
                for (ar, &xr) in a.iter_mut().zip(&xv) {
                    *ar = s.mul_add(wv, xr, *ar);
                }
            }
            i += l;
        }
        for (o, a) in acc.iter().enumerate() {
            let wr = &self.wt[o * inp..(o + 1) * inp];
            for (r, &ar) in a.iter().enumerate() {
                let xr = &self.xs[r * inp..(r + 1) * inp];
                let mut v = s.reduce_sum(ar);
                for k in i..inp {
                    v += wr[k] * xr[k];
                }
                yt[o * self.rows + self.r0 + r] = v;
            }
        }
    }
}

/// Outputs per panel of a [`PackedNt`]: three AVX-512 vectors, six AVX2 ones, twelve
/// NEON ones.
pub const PANEL: usize = 48;

/// A weight matrix `w` (out, inp) repacked for [`matmul_nt_packed`]: panels of
/// [`PANEL`] outputs, each stored input-major (for every input index, the panel's 48
/// weights side by side), the last panel padded with zeros.
///
/// Packing costs one pass over `w` and as much memory again; a decode step that uses the
/// same weights for token after token pays it once (the model crate keeps the packed
/// copy with a block's decode constants, dropped whenever the weights change).
#[derive(Clone, PartialEq)]
pub struct PackedNt {
    out: usize,
    inp: usize,
    data: Vec<f32>,
}

impl std::fmt::Debug for PackedNt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedNt")
            .field("out", &self.out)
            .field("inp", &self.inp)
            .finish_non_exhaustive()
    }
}

impl PackedNt {
    /// Packs `w` (out, inp) row-major.
    ///
    /// # Panics
    /// If `w.len() != out * inp`.
    pub fn new(w: &[f32], out: usize, inp: usize) -> PackedNt {
        assert_eq!(w.len(), out * inp, "PackedNt::new: w is not out x inp");
        let panels = out.div_ceil(PANEL);
        let mut data = vec![0.0f32; panels * PANEL * inp];
        if inp > 0 {
            for (p, panel) in data.chunks_exact_mut(PANEL * inp).enumerate() {
                let o0 = p * PANEL;
                for (j, row) in w[o0 * inp..].chunks_exact(inp).take(PANEL).enumerate() {
                    for (dst, &v) in panel[j..].iter_mut().step_by(PANEL).zip(row) {
                        *dst = v;
                    }
                }
            }
        }
        PackedNt { out, inp, data }
    }

    /// Outputs (rows of the original `w`).
    pub fn out(&self) -> usize {
        self.out
    }

    /// Inputs (columns of the original `w`).
    pub fn inp(&self) -> usize {
        self.inp
    }

    /// Bytes held by the packed copy.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }
}

/// `y (rows, out) = x (rows, inp) · wᵀ` with `w` packed by [`PackedNt::new`], on the
/// instruction set `level` (`None` if this CPU lacks it), panels split over the threads
/// of rayon's current pool.
///
/// Vectorised across outputs: each weight vector loaded serves up to 8 rows and no
/// horizontal sums are left at the end, so with the weights in cache it runs near the
/// machine's SGEMM rate, and with them in memory it reads them once, in order. Each
/// output is one `f32` multiply-add chain over the inputs in order, so every row's
/// result is the same bits whatever the number of rows or threads.
///
/// # Panics
/// If `x` is not `rows * w.inp()` long or `y` not `rows * w.out()`.
pub fn matmul_nt_packed(
    level: SimdLevel,
    x: &[f32],
    rows: usize,
    w: &PackedNt,
    y: &mut [f32],
) -> Option<()> {
    let (inp, out) = (w.inp, w.out);
    assert_eq!(x.len(), rows * inp, "matmul_nt_packed: x is not rows x inp");
    assert_eq!(y.len(), rows * out, "matmul_nt_packed: y is not rows x out");
    let isa = Isa::new(level)?;
    if rows == 0 || out == 0 {
        return Some(());
    }
    if inp == 0 {
        y.fill(0.0);
        return Some(());
    }
    let panels = out.div_ceil(PANEL);
    // Per panel its rows x PANEL outputs, then put in place.
    let mut t = vec![0.0f32; panels * rows * PANEL];
    in_tasks(
        &mut t,
        panels,
        rows * PANEL,
        rows * inp * out,
        1,
        |p0, t| {
            let n = t.len() / (rows * PANEL);
            isa.dispatch(Panels {
                x,
                rows,
                inp,
                w: &w.data[p0 * PANEL * inp..(p0 + n) * PANEL * inp],
                t,
            });
        },
    );
    for (p, tp) in t.chunks_exact(rows * PANEL).enumerate() {
        let o0 = p * PANEL;
        let n = (out - o0).min(PANEL);
        for (r, tr) in tp.chunks_exact(PANEL).enumerate() {
            y[r * out + o0..][..n].copy_from_slice(&tr[..n]);
        }
    }
    Some(())
}

/// Whole panels of packed weights: `w` holds them, `t` (panels, rows, PANEL) their
/// outputs.
struct Panels<'a> {
    x: &'a [f32],
    rows: usize,
    inp: usize,
    w: &'a [f32],
    t: &'a mut [f32],
}

impl Kernel for Panels<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let (rows, inp) = (self.rows, self.inp);
        // Row tiles of 8 where 32 vector registers hold 24 accumulators (AVX-512, NEON),
        // of 4 with 16 registers (AVX2: 12 accumulators, 3 weight vectors, a broadcast).
        let big = S::LANES != 8;
        let sub = 3 * S::LANES;
        for (wp, tp) in self
            .w
            .chunks_exact(PANEL * inp)
            .zip(self.t.chunks_exact_mut(rows * PANEL))
        {
            for q in (0..PANEL).step_by(sub) {
                let mut r0 = 0;
                while r0 < rows {
                    let x = &self.x[r0 * inp..];
                    let t = &mut tp[r0 * PANEL..];
                    let n = match (big, rows - r0) {
                        (true, 8..) => tile::<S, 8>(s, x, inp, wp, q, t),
                        (_, 7) => tile::<S, 7>(s, x, inp, wp, q, t),
                        (_, 6) => tile::<S, 6>(s, x, inp, wp, q, t),
                        (_, 5) => tile::<S, 5>(s, x, inp, wp, q, t),
                        (_, 3) => tile::<S, 3>(s, x, inp, wp, q, t),
                        (_, 2) => tile::<S, 2>(s, x, inp, wp, q, t),
                        (_, 1) => tile::<S, 1>(s, x, inp, wp, q, t),
                        _ => tile::<S, 4>(s, x, inp, wp, q, t),
                    };
                    r0 += n;
                }
            }
        }
    }
}

/// Outputs `q .. q + 3 LANES` of one panel `wp` for `R` rows of `x` (row stride `inp`),
/// into `t` (row stride `PANEL`). Returns `R`.
#[inline(always)]
fn tile<S: Simd, const R: usize>(
    s: S,
    x: &[f32],
    inp: usize,
    wp: &[f32],
    q: usize,
    t: &mut [f32],
) -> usize {
    let l = S::LANES;
    let xr: [&[f32]; R] = core::array::from_fn(|r| &x[r * inp..(r + 1) * inp]);
    let mut acc = [[s.zero(); 3]; R];
    for (k, wk) in wp.chunks_exact(PANEL).enumerate() {
        let wk = &wk[q..q + 3 * l];
        let w0 = s.load(wk);
        let w1 = s.load(&wk[l..]);
        let w2 = s.load(&wk[2 * l..]);
        for (a, xr) in acc.iter_mut().zip(&xr) {
            let xv = s.splat(xr[k]);
            a[0] = s.mul_add(w0, xv, a[0]);
            a[1] = s.mul_add(w1, xv, a[1]);
            a[2] = s.mul_add(w2, xv, a[2]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let tr = &mut t[r * PANEL + q..];
        for (v, &av) in a.iter().enumerate() {
            s.store(&mut tr[v * l..], av);
        }
    }
    R
}
