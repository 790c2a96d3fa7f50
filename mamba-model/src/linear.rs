//! Projections `y = x W^T (+ bias)`: the `gemm` crate's SGEMM on the fast backends (a
//! product of its own for a decode step's few rows), a
//! plain loop on the reference (which is written for clarity, not speed).

/// How a projection is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmImpl {
    /// A triple loop accumulating in `f64` (the reference).
    Naive,
    /// Up to [`mamba_cpu_simd::FEW_ROWS_MAX`] rows `mamba_cpu_simd::matmul_nt_few_rows`
    /// (no packing), else the `gemm` crate's SGEMM (packed, SIMD kernels, on rayon's
    /// threads).
    Blocked,
}

/// `c (m, n) = alpha c + a (m, k) b (k, n)` with element (i, j) of each matrix at
/// `ptr + i * row_stride + j * col_stride`; `alpha` 0 writes `c` without reading it.
///
/// # Safety
/// The strides must address only elements inside allocations of those sizes that stay
/// valid for the call, and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    alpha: f32,
    c: (*mut f32, isize, isize),
) {
    // SAFETY: the caller's contract; gemm reads `c` only when `alpha` is not 0.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0,
            c.2,
            c.1,
            alpha != 0.0,
            a.0,
            a.2,
            a.1,
            b.0,
            b.2,
            b.1,
            alpha,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(gemm_threads()),
        )
    }
}

/// The threads of a projection: `MAMBA_CPU_THREADS` where it is set (the count the
/// `cpu-simd` kernels run on), else 0, every thread of rayon's current pool.
fn gemm_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| mamba_cpu_simd::env_thread_count().unwrap_or(0))
}

/// `y (rows, w.out()) = x (rows, w.inp()) @ w^T` with `w` packed once for many calls
/// (a decode step's projections, token after token), plus `bias`: the SIMD product over
/// packed panels, one pass over the weights at any number of rows.
pub fn linear_packed(
    x: &[f32],
    rows: usize,
    w: &mamba_cpu_simd::PackedNt,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let level = mamba_cpu_simd::SimdLevel::best();
    // Lengths are checked there (release builds too).
    mamba_cpu_simd::matmul_nt_packed(level, x, rows, w, y)
        .expect("the best SIMD level is available");
    if let Some(b) = bias {
        assert_eq!(b.len(), w.out(), "linear_packed: bias is not out long");
        for row in y.chunks_exact_mut(w.out()) {
            for (v, &bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
}

/// `y (rows, out) = x (rows, inp) @ w^T` with `w` (out, inp) row-major, plus `bias`.
pub fn linear(
    imp: GemmImpl,
    x: &[f32],
    rows: usize,
    inp: usize,
    w: &[f32],
    out: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    // Checked in release builds too: the SGEMM below reads and writes through raw
    // pointers over exactly these lengths.
    assert_eq!(x.len(), rows * inp, "linear: x is not rows x inp");
    assert_eq!(w.len(), out * inp, "linear: w is not out x inp");
    assert_eq!(y.len(), rows * out, "linear: y is not rows x out");
    if let Some(b) = bias {
        assert_eq!(b.len(), out, "linear: bias is not out long");
    }
    match imp {
        GemmImpl::Naive => {
            for r in 0..rows {
                let xr = &x[r * inp..(r + 1) * inp];
                for o in 0..out {
                    let wr = &w[o * inp..(o + 1) * inp];
                    let acc: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    y[r * out + o] = acc as f32;
                }
            }
        }
        GemmImpl::Blocked if rows <= mamba_cpu_simd::FEW_ROWS_MAX => {
            // A decode step's few rows: one pass over `w`, no packing.
            let level = mamba_cpu_simd::SimdLevel::best();
            mamba_cpu_simd::matmul_nt_few_rows(level, x, rows, inp, w, out, y)
                .expect("the best SIMD level is available");
        }
        GemmImpl::Blocked if inp == 0 || out == 0 => y.fill(0.0),
        GemmImpl::Blocked => {
            // SAFETY: the asserted lengths cover every element the strides address:
            // x is rows x inp with row stride inp; w^T is read as inp x out through
            // (row stride 1, column stride inp) over w's out x inp elements; y is
            // rows x out with row stride out. The slices do not overlap (y is &mut).
            unsafe {
                sgemm(
                    rows,
                    inp,
                    out,
                    (x.as_ptr(), inp as isize, 1),
                    (w.as_ptr(), 1, inp as isize),
                    0.0,
                    (y.as_mut_ptr(), out as isize, 1),
                );
            }
        }
    }
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(out) {
            for (v, &bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
}

/// Gradients of [`linear`]: given `dy` (rows, out), returns `dx` (rows, inp) and adds
/// `dw += dy^T x` (out, inp) and, if given, `dbias += sum_rows dy`.
pub fn linear_backward(
    imp: GemmImpl,
    x: &[f32],
    rows: usize,
    inp: usize,
    w: &[f32],
    out: usize,
    dy: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
) {
    // Checked in release builds too: the SGEMMs below read and write through raw
    // pointers over exactly these lengths.
    assert_eq!(x.len(), rows * inp, "linear_backward: x is not rows x inp");
    assert_eq!(w.len(), out * inp, "linear_backward: w is not out x inp");
    assert_eq!(
        dy.len(),
        rows * out,
        "linear_backward: dy is not rows x out"
    );
    assert_eq!(
        dx.len(),
        rows * inp,
        "linear_backward: dx is not rows x inp"
    );
    assert_eq!(dw.len(), out * inp, "linear_backward: dw is not out x inp");
    if let Some(b) = dbias.as_deref() {
        assert_eq!(b.len(), out, "linear_backward: dbias is not out long");
    }
    match imp {
        GemmImpl::Naive => {
            for r in 0..rows {
                for i in 0..inp {
                    let mut acc = 0.0f64;
                    for o in 0..out {
                        acc += dy[r * out + o] as f64 * w[o * inp + i] as f64;
                    }
                    dx[r * inp + i] = acc as f32;
                }
            }
            for o in 0..out {
                for i in 0..inp {
                    let mut acc = 0.0f64;
                    for r in 0..rows {
                        acc += dy[r * out + o] as f64 * x[r * inp + i] as f64;
                    }
                    dw[o * inp + i] += acc as f32;
                }
            }
        }
        GemmImpl::Blocked if rows > 0 && out > 0 && inp > 0 => {
            // SAFETY: dx (rows x inp) = dy (rows x out, row stride out) @ w (out x inp,
            // row stride inp); all three slices have exactly those lengths (asserted
            // above) and dx is exclusively borrowed.
            unsafe {
                sgemm(
                    rows,
                    out,
                    inp,
                    (dy.as_ptr(), out as isize, 1),
                    (w.as_ptr(), inp as isize, 1),
                    0.0,
                    (dx.as_mut_ptr(), inp as isize, 1),
                );
            }
            // SAFETY: dw (out x inp) += dy^T (read as out x rows through row stride 1,
            // column stride out over dy's rows x out elements) @ x (rows x inp); the
            // lengths are asserted above and dw is exclusively borrowed.
            unsafe {
                sgemm(
                    out,
                    rows,
                    inp,
                    (dy.as_ptr(), 1, out as isize),
                    (x.as_ptr(), inp as isize, 1),
                    1.0,
                    (dw.as_mut_ptr(), inp as isize, 1),
                );
            }
        }
        // No outputs: dx = dy w is all zeros.
        GemmImpl::Blocked => dx.fill(0.0),
    }
    if let Some(db) = dbias {
        for row in dy.chunks_exact(out) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "linear: w is not out x inp")]
    fn linear_checks_lengths_in_every_build() {
        let mut y = vec![0.0f32; 6];
        linear(
            GemmImpl::Blocked,
            &[1.0; 6],
            2,
            3,
            &[1.0; 8],
            3,
            None,
            &mut y,
        );
    }

    #[test]
    #[should_panic(expected = "linear_backward: x is not rows x inp")]
    fn linear_backward_checks_lengths_in_every_build() {
        let (mut dx, mut dw) = (vec![0.0f32; 6], vec![0.0f32; 9]);
        linear_backward(
            GemmImpl::Blocked,
            &[1.0; 5],
            2,
            3,
            &[1.0; 9],
            3,
            &[1.0; 6],
            &mut dx,
            &mut dw,
            None,
        );
    }

    #[test]
    fn both_forms_agree() {
        // Few rows (the decode product) and many (the SGEMM), y holding NaN before.
        for (rows, inp, out) in [(5, 7, 3), (40, 37, 3), (33, 64, 130), (70, 5, 1)] {
            agree(rows, inp, out);
        }
    }

    #[test]
    fn no_inputs_give_zeros_and_the_bias() {
        for rows in [3, 40] {
            let mut y = vec![f32::NAN; rows * 2];
            linear(
                GemmImpl::Blocked,
                &[],
                rows,
                0,
                &[],
                2,
                Some(&[1.5, -2.0]),
                &mut y,
            );
            assert!(y.chunks(2).all(|r| r == [1.5, -2.0]), "{rows} rows: {y:?}");
        }
    }

    fn agree(rows: usize, inp: usize, out: usize) {
        let x: Vec<f32> = (0..rows * inp).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.11).cos()).collect();
        let b: Vec<f32> = (0..out).map(|i| 0.5 - i as f32).collect();
        let dy: Vec<f32> = (0..rows * out).map(|i| (i as f32 * 0.7).sin()).collect();
        let mut results = Vec::new();
        for imp in [GemmImpl::Naive, GemmImpl::Blocked] {
            let mut y = vec![f32::NAN; rows * out];
            linear(imp, &x, rows, inp, &w, out, Some(&b), &mut y);
            let (mut dx, mut dw, mut db) = (
                vec![f32::NAN; rows * inp],
                vec![0.25; out * inp],
                vec![0.0; out],
            );
            linear_backward(
                imp,
                &x,
                rows,
                inp,
                &w,
                out,
                &dy,
                &mut dx,
                &mut dw,
                Some(&mut db),
            );
            results.push((y, dx, dw, db));
        }
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-4);
        let (n, f) = (&results[0], &results[1]);
        assert!(
            close(&n.0, &f.0) && close(&n.1, &f.1) && close(&n.2, &f.2) && close(&n.3, &f.3),
            "({rows}, {inp}, {out})"
        );
    }
}
