//! The instruction-set paths themselves: the accuracy of the vectorised `exp` (and of
//! the scans' `2^x`) on every
//! path this host has, and the detection and parsing of levels.

mod common;

use mamba_cpu_simd::{simd_exp, simd_exp2, SimdLevel};

/// The distance from `got` to `exact` in units of the last place of the exact value
/// (subnormal results measured in the smallest subnormal).
fn ulps(got: f32, exact: f64) -> f64 {
    let e = if exact == 0.0 {
        -149
    } else {
        (exact.log2().floor() as i32).max(-126) - 23
    };
    (got as f64 - exact).abs() / 2f64.powi(e)
}

/// An entry point that maps a slice on one instruction set (`simd_exp`, `simd_exp2`).
type MapFn = fn(SimdLevel, &[f32], &mut [f32]) -> Option<()>;

/// Runs `f` on every path this host has over `xs` and checks it within 2 ulp of
/// `exact` (computed in `f64`), over normal results and over all of them: subnormal
/// results lose relative precision by nature, so they are held to a couple of units of
/// the smallest subnormal.
fn check_accuracy(name: &str, f: MapFn, exact: fn(f64) -> f64, xs: &[f32]) {
    for level in common::levels() {
        let mut out = vec![0.0f32; xs.len()];
        f(level, xs, &mut out).expect("available level");
        let (mut worst, mut at) = (0.0f64, 0.0f32);
        let (mut worst_normal, mut at_normal) = (0.0f64, 0.0f32);
        for (&x, &y) in xs.iter().zip(&out) {
            let want = exact(x as f64);
            let u = ulps(y, want);
            if u > worst {
                (worst, at) = (u, x);
            }
            if want >= f32::MIN_POSITIVE as f64 && u > worst_normal {
                (worst_normal, at_normal) = (u, x);
            }
        }
        eprintln!(
            "{name} on {level}: max error {worst_normal:.2} ulp over normal results (at {at_normal}), {worst:.2} ulp overall (at {at}), {} inputs",
            xs.len()
        );
        assert!(
            worst_normal <= 2.0,
            "{level}: {name} is {worst_normal} ulp off at {at_normal}"
        );
        assert!(worst <= 2.0, "{level}: {name} is {worst} ulp off at {at}");
    }
}

#[test]
fn exp_is_accurate_on_every_path() {
    // Every 2^-10 over the range where exp is finite and nonzero, plus edges.
    let mut xs: Vec<f32> = (0..=((104.0 + 88.7) * 1024.0) as i32)
        .map(|k| -104.0 + k as f32 / 1024.0)
        .collect();
    xs.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        88.72,
        88.7228,
        -87.33,
        -87.34,
        -103.0,
        0.5f32.ln(),
    ]);
    check_accuracy("exp", simd_exp, f64::exp, &xs);
}

/// Runs `f` on every path over the edge cases `(x, want)` and checks each result bit for
/// bit (a NaN `want`: any NaN).
fn check_edges(name: &str, f: MapFn, cases: &[(f32, f32, &str)]) {
    let xs: Vec<f32> = cases.iter().map(|c| c.0).collect();
    for level in common::levels() {
        let mut out = vec![0.0f32; xs.len()];
        f(level, &xs, &mut out).expect("available level");
        for (&(x, want, what), &got) in cases.iter().zip(&out) {
            let ok = if want.is_nan() {
                got.is_nan()
            } else {
                got.to_bits() == want.to_bits()
            };
            assert!(ok, "{level}: {name}({x}) = {got}, want {want} ({what})");
        }
    }
}

#[test]
fn exp_edges_on_every_path() {
    let inf = f32::INFINITY;
    check_edges(
        "exp",
        simd_exp,
        &[
            (f32::NAN, f32::NAN, "NaN"),
            (inf, inf, "inf"),
            (-inf, 0.0, "-inf"),
            (89.0, inf, "overflows"),
            (1e10, inf, "overflows"),
            (-104.0, 0.0, "underflows"),
            (-1e10, 0.0, "underflows"),
            (0.0, 1.0, "exact"),
        ],
    );
}

#[test]
fn exp2_is_accurate_on_every_path() {
    // Every 2^-12 over the range where 2^x is finite and nonzero (subnormal results
    // included), plus the points where the reduction's nearest integer changes.
    let mut xs: Vec<f32> = (0..((150.0 + 128.0) * 4096.0) as i32)
        .map(|k| -150.0 + k as f32 / 4096.0)
        .collect();
    xs.extend([
        0.0, -0.0, 1e-30, -1e-30, 127.99, -126.0, -126.5, -149.5, 0.5, -0.5,
    ]);
    xs.extend((0..64).map(|k| k as f32 - 32.5));
    check_accuracy("exp2", simd_exp2, f64::exp2, &xs);
}

#[test]
fn exp2_edges_on_every_path() {
    let inf = f32::INFINITY;
    check_edges(
        "exp2",
        simd_exp2,
        &[
            (f32::NAN, f32::NAN, "NaN"),
            (inf, inf, "inf"),
            (-inf, 0.0, "-inf"),
            (128.0, inf, "overflows"),
            (1e10, inf, "overflows"),
            (-151.0, 0.0, "underflows"),
            (-1e10, 0.0, "underflows"),
            (0.0, 1.0, "exact"),
            (-149.0, f32::from_bits(1), "the smallest subnormal"),
            (1.0, 2.0, "exact"),
        ],
    );
}

#[test]
fn levels_parse_and_detect() {
    for level in SimdLevel::ALL {
        assert_eq!(SimdLevel::parse(level.name()), Some(level));
        assert_eq!(SimdLevel::parse(&level.name().to_uppercase()), Some(level));
    }
    assert_eq!(SimdLevel::parse("sse9"), None);
    assert!(SimdLevel::Scalar.is_available());
    let available = SimdLevel::available();
    assert_eq!(available[0], SimdLevel::Scalar);
    assert!(available.contains(&SimdLevel::best()));
    assert!(simd_exp(SimdLevel::best(), &[1.0], &mut [0.0]).is_some());
    for level in SimdLevel::ALL {
        if !level.is_available() {
            eprintln!("skipping {level}: host lacks it");
            assert!(simd_exp(level, &[1.0], &mut [0.0]).is_none());
            assert!(mamba_cpu_simd::CpuSimd::with_threads(1)
                .with_simd(level)
                .is_err());
        }
    }
}
