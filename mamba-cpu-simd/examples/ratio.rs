//! Prints the speed of `cpu-simd` against `Reference<f32>` at the seed shapes:
//! `selective_scan` and `ssd`, forward and forward+backward, L = 100, 400, 800, 4096.
//!
//! ```text
//! cargo run --release -p mamba-cpu-simd --example ratio [-- --threads N --simd avx2 --lens 100,400]
//! ```
//!
//! Times are the fastest of several runs (two of the reference at long lengths),
//! measured in one process so the ratios compare like with like.

#[path = "../benches/seed/mod.rs"]
mod seed;

use std::time::Instant;

use mamba_core::{Kernels, Reference};
use mamba_cpu_simd::cost::{self, Cost, Pass};
use mamba_cpu_simd::{CpuSimd, SimdLevel};

/// The fastest of several runs of `f`, in seconds: runs until half a second has passed
/// (at least twice, at most 50 times). The minimum is the run least disturbed by other
/// work on the machine.
fn time(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = f64::INFINITY;
    for k in 0..50 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        if k >= 1 && start.elapsed().as_secs_f64() > 0.5 {
            break;
        }
    }
    best
}

fn row(op: &str, l: usize, reference: f64, simd: f64, cost: Cost) {
    println!(
        "{op:<24} L={l:<5} reference {:>9.2} ms   cpu-simd {:>8.2} ms   ratio {:>6.1}x   {:>6.1} GFLOP/s  {:>6.2} G exp/s",
        reference * 1e3,
        simd * 1e3,
        reference / simd,
        cost.flops / simd * 1e-9,
        cost.transcendentals / simd * 1e-9,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut be = match flag("--threads") {
        Some(n) => CpuSimd::with_threads(n.parse().expect("--threads N")),
        None => CpuSimd::new(),
    };
    if let Some(s) = flag("--simd") {
        be = be
            .with_simd(SimdLevel::parse(&s).expect("--simd scalar|avx2|avx512|neon"))
            .expect("available path");
    }
    let lens: Vec<usize> = flag("--lens")
        .map(|s| {
            s.split(',')
                .map(|v| v.parse().expect("--lens 100,400"))
                .collect()
        })
        .unwrap_or_else(|| vec![100, 400, 800, 4096]);
    let reference = Reference::new();
    println!(
        "cpu-simd: {} ({}); reference: Reference<f32>",
        mamba_core::Backend::detail(&be),
        be.simd_level()
    );
    for &l in &lens {
        let case = seed::Scan::new(l);
        let args = case.args();
        let mut out = vec![0.0f32; case.out_len()];
        let r = time(|| {
            Kernels::<f32>::selective_scan(&reference, &args, &mut out, None).expect("fwd")
        });
        let s = time(|| be.selective_scan(&args, &mut out, None).expect("fwd"));
        let c = cost::selective_scan(&args, Pass::Forward).expect("valid");
        row("selective_scan fwd", l, r, s, c);
        let r = time(|| {
            Kernels::<f32>::selective_scan(&reference, &args, &mut out, None).expect("fwd");
            Kernels::<f32>::selective_scan_backward(&reference, &args, &case.dout, None)
                .expect("bwd");
        });
        let s = time(|| {
            be.selective_scan(&args, &mut out, None).expect("fwd");
            be.selective_scan_backward(&args, &case.dout, None)
                .expect("bwd");
        });
        let c = c + cost::selective_scan(&args, Pass::Backward).expect("valid");
        row("selective_scan fwd+bwd", l, r, s, c);

        let case = seed::Ssd::new(l);
        let args = case.args();
        let mut out = vec![0.0f32; case.out_len()];
        let r = time(|| Kernels::<f32>::ssd(&reference, &args, &mut out, None).expect("fwd"));
        let s = time(|| be.ssd(&args, &mut out, None).expect("fwd"));
        let c = cost::ssd(&args, Pass::Forward).expect("valid");
        row("ssd fwd", l, r, s, c);
        let r = time(|| {
            Kernels::<f32>::ssd(&reference, &args, &mut out, None).expect("fwd");
            Kernels::<f32>::ssd_backward(&reference, &args, &case.dout, None).expect("bwd");
        });
        let s = time(|| {
            be.ssd(&args, &mut out, None).expect("fwd");
            be.ssd_backward(&args, &case.dout, None).expect("bwd");
        });
        let c = c + cost::ssd(&args, Pass::Backward).expect("valid");
        row("ssd fwd+bwd", l, r, s, c);
    }
}
