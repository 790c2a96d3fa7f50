//! Criterion benches of `selective_scan` and `ssd` at the seed shapes, forward and
//! forward+backward, named `op/backend/L<len>` (e.g. `selective_scan/cpu-simd/L400`).
//!
//! The reference backend runs at L <= 800 only (at L = 4096 one call takes seconds);
//! `cargo run --release -p mamba-cpu-simd --example ratio` prints the speed ratios at
//! every length from one run of each.

mod seed;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mamba_core::{Backend, Kernels, Reference};
use mamba_cpu_simd::CpuSimd;

const LENGTHS: [usize; 4] = [100, 400, 800, 4096];
const REFERENCE_MAX_LEN: usize = 800;

fn backends() -> Vec<(Box<dyn Backend>, usize)> {
    vec![
        (Box::new(CpuSimd::new()), usize::MAX),
        (Box::new(Reference::new()), REFERENCE_MAX_LEN),
    ]
}

fn selective_scan(c: &mut Criterion) {
    for (fwd_only, name) in [(true, "selective_scan"), (false, "selective_scan_fwd_bwd")] {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for l in LENGTHS {
            let case = seed::Scan::new(l);
            let args = case.args();
            let mut out = vec![0.0f32; case.out_len()];
            for (be, max_len) in backends() {
                if l > max_len {
                    continue;
                }
                let id = BenchmarkId::new(be.name(), format!("L{l}"));
                group.bench_function(id, |bch| {
                    bch.iter(|| {
                        Kernels::<f32>::selective_scan(&*be, &args, &mut out, None)
                            .expect("forward");
                        if !fwd_only {
                            Kernels::<f32>::selective_scan_backward(&*be, &args, &case.dout, None)
                                .expect("backward");
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

fn ssd(c: &mut Criterion) {
    for (fwd_only, name) in [(true, "ssd"), (false, "ssd_fwd_bwd")] {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for l in LENGTHS {
            let case = seed::Ssd::new(l);
            let args = case.args();
            let mut out = vec![0.0f32; case.out_len()];
            for (be, max_len) in backends() {
                if l > max_len {
                    continue;
                }
                let id = BenchmarkId::new(be.name(), format!("L{l}"));
                group.bench_function(id, |bch| {
                    bch.iter(|| {
                        Kernels::<f32>::ssd(&*be, &args, &mut out, None).expect("forward");
                        if !fwd_only {
                            Kernels::<f32>::ssd_backward(&*be, &args, &case.dout, None)
                                .expect("backward");
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, selective_scan, ssd);
criterion_main!(benches);
