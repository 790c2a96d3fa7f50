//! `matmul_nt_few_rows` (the decode step's projections) against an f64 product, on
//! every instruction-set path this CPU has.

use mamba_cpu_simd::{matmul_nt_few_rows, SimdLevel};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Checks `y` against the f64 product, each output within 1e-6 of the sum of its
/// terms' magnitudes.
fn check(x: &[f32], rows: usize, inp: usize, w: &[f32], out: usize, y: &[f32], what: &str) {
    for r in 0..rows {
        for o in 0..out {
            let (mut sum, mut mag) = (0.0f64, 0.0f64);
            for i in 0..inp {
                let t = x[r * inp + i] as f64 * w[o * inp + i] as f64;
                sum += t;
                mag += t.abs();
            }
            let got = y[r * out + o] as f64;
            assert!(
                (got - sum).abs() <= 1e-6 * mag + 1e-30,
                "{what}: y[{r}, {o}] = {got}, expected {sum} (sum of |terms| {mag})"
            );
        }
    }
}

#[test]
fn every_shape_every_path() {
    let mut shapes = Vec::new();
    for rows in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 33] {
        for inp in [1usize, 7, 15, 16, 17, 33, 100] {
            // 8 / 13 / 17: one row's tiles of 8 outputs, then of 4, then single ones.
            for out in [1usize, 3, 4, 5, 8, 9, 13, 17] {
                shapes.push((rows, inp, out));
            }
        }
    }
    // Large enough to be split over threads, with tails everywhere.
    shapes.extend([
        (1, 768, 3352),
        (1, 193, 1031),
        (3, 193, 1031),
        (6, 1536, 771),
        (32, 200, 517),
    ]);
    for level in SimdLevel::available() {
        for (k, &(rows, inp, out)) in shapes.iter().enumerate() {
            let x = values(rows * inp, 2 * k as u64);
            let w = values(out * inp, 2 * k as u64 + 1);
            let mut y = vec![f32::NAN; rows * out];
            matmul_nt_few_rows(level, &x, rows, inp, &w, out, &mut y).unwrap();
            let what = format!("{level}, rows {rows}, inp {inp}, out {out}");
            check(&x, rows, inp, &w, out, &y, &what);
        }
    }
}

#[test]
fn empty_dimensions() {
    let level = SimdLevel::best();
    // No inputs: every output is zero, whatever y held.
    let mut y = vec![f32::NAN; 6];
    matmul_nt_few_rows(level, &[], 2, 0, &[], 3, &mut y).unwrap();
    assert_eq!(y, vec![0.0; 6]);
    let mut y: Vec<f32> = Vec::new();
    matmul_nt_few_rows(level, &[], 0, 4, &[1.0; 8], 2, &mut y).unwrap();
    matmul_nt_few_rows(level, &[1.0; 8], 2, 4, &[], 0, &mut y).unwrap();
}

#[test]
fn the_same_bits_on_one_thread_and_on_several() {
    let (rows, inp, out) = (5, 300, 2000);
    let x = values(rows * inp, 7);
    let w = values(out * inp, 8);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut y = vec![0.0f32; rows * out];
        pool.install(|| {
            matmul_nt_few_rows(SimdLevel::best(), &x, rows, inp, &w, out, &mut y).unwrap()
        });
        y
    };
    let one = run(1);
    check(&x, rows, inp, &w, out, &one, "one thread");
    for threads in [2, 3, 8] {
        let y = run(threads);
        assert!(
            one.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} threads gave other bits than one"
        );
    }
}

#[test]
fn a_level_this_cpu_lacks_is_none() {
    for level in SimdLevel::ALL {
        let mut y = vec![0.0f32; 2];
        let r = matmul_nt_few_rows(level, &[1.0, 2.0], 1, 2, &[3.0, 4.0, 5.0, 6.0], 2, &mut y);
        assert_eq!(r.is_some(), level.is_available(), "{level}");
        if r.is_some() {
            assert_eq!(y, vec![11.0, 17.0], "{level}");
        }
    }
}

#[test]
#[should_panic(expected = "w is not out x inp")]
fn a_short_weight_panics() {
    let mut y = vec![0.0f32; 2];
    let _ = matmul_nt_few_rows(
        SimdLevel::Scalar,
        &[1.0, 2.0],
        1,
        2,
        &[3.0, 4.0, 5.0],
        2,
        &mut y,
    );
}
