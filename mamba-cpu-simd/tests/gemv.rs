//! `matmul_nt_few_rows` (the decode step's projections) against an f64 product, on
//! every instruction-set path this CPU has.

use mamba_cpu_simd::{matmul_nt_few_rows, matmul_nt_packed, PackedNt, SimdLevel};

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

/// Every shape the packed product's tiles and panels meet (rows 1-9 and 16 / 17 for the
/// row tiles of 8 and 4; outputs under, at and over a panel of 48), on every path.
#[test]
fn packed_every_shape_every_path() {
    let mut shapes = Vec::new();
    for rows in [1usize, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17] {
        for inp in [1usize, 7, 16, 33] {
            for out in [1usize, 5, 47, 48, 49, 97] {
                shapes.push((rows, inp, out));
            }
        }
    }
    // Large enough to be split over threads, with a partial last panel.
    shapes.extend([
        (1, 768, 3352),
        (16, 193, 1031),
        (3, 1536, 771),
        (40, 200, 517),
    ]);
    for level in SimdLevel::available() {
        for (k, &(rows, inp, out)) in shapes.iter().enumerate() {
            let x = values(rows * inp, 3 * k as u64);
            let w = values(out * inp, 3 * k as u64 + 1);
            let packed = PackedNt::new(&w, out, inp);
            assert_eq!((packed.out(), packed.inp()), (out, inp));
            let mut y = vec![f32::NAN; rows * out];
            matmul_nt_packed(level, &x, rows, &packed, &mut y).unwrap();
            let what = format!("packed {level}, rows {rows}, inp {inp}, out {out}");
            check(&x, rows, inp, &w, out, &y, &what);
        }
    }
}

/// A row's outputs are the same bits whatever rows come with it and however many
/// threads share the panels.
#[test]
fn packed_rows_and_threads_do_not_change_the_bits() {
    let (rows, inp, out) = (11, 300, 2000);
    let x = values(rows * inp, 17);
    let w = values(out * inp, 18);
    let packed = PackedNt::new(&w, out, inp);
    let run = |threads: usize, rows: usize, x: &[f32]| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut y = vec![0.0f32; rows * out];
        pool.install(|| matmul_nt_packed(SimdLevel::best(), x, rows, &packed, &mut y).unwrap());
        y
    };
    let all = run(1, rows, &x);
    check(&x, rows, inp, &w, out, &all, "packed, one thread");
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
    for threads in [2, 3, 8] {
        assert!(same(&all, &run(threads, rows, &x)), "{threads} threads");
    }
    // Row 9 alone, and rows 5..11 (a tile of 4 on AVX2, of 6 elsewhere).
    assert!(same(
        &all[9 * out..10 * out],
        &run(2, 1, &x[9 * inp..10 * inp])
    ));
    assert!(same(&all[5 * out..], &run(2, 6, &x[5 * inp..])));
}

#[test]
fn packed_empty_dimensions_and_missing_levels() {
    let level = SimdLevel::best();
    let mut y = vec![f32::NAN; 6];
    matmul_nt_packed(level, &[], 2, &PackedNt::new(&[], 3, 0), &mut y).unwrap();
    assert_eq!(y, vec![0.0; 6]);
    let mut y: Vec<f32> = Vec::new();
    matmul_nt_packed(level, &[], 0, &PackedNt::new(&[1.0; 8], 2, 4), &mut y).unwrap();
    matmul_nt_packed(level, &[1.0; 8], 2, &PackedNt::new(&[], 0, 4), &mut y).unwrap();
    let packed = PackedNt::new(&[3.0, 4.0, 5.0, 6.0], 2, 2);
    for level in SimdLevel::ALL {
        let mut y = vec![0.0f32; 2];
        let r = matmul_nt_packed(level, &[1.0, 2.0], 1, &packed, &mut y);
        assert_eq!(r.is_some(), level.is_available(), "{level}");
        if r.is_some() {
            assert_eq!(y, vec![11.0, 17.0], "{level}");
        }
    }
}

#[test]
#[should_panic(expected = "x is not rows x inp")]
fn packed_a_short_input_panics() {
    let packed = PackedNt::new(&[3.0, 4.0, 5.0, 6.0], 2, 2);
    let mut y = vec![0.0f32; 4];
    let _ = matmul_nt_packed(SimdLevel::Scalar, &[1.0, 2.0, 3.0], 2, &packed, &mut y);
}

#[test]
#[should_panic(expected = "w is not out x inp")]
fn packing_a_short_weight_panics() {
    let _ = PackedNt::new(&[3.0, 4.0, 5.0], 2, 2);
}
