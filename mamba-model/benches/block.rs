//! Criterion benches of Mamba2Block forward (and forward+backward) at the seed's
//! shape, named by backend. `cargo xtask bench` is the main benchmark; these are for
//! tracking one configuration closely.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mamba_model::backend::build;
use mamba_model::{BackendKind, Mamba2Block, Mamba2Config, Mamba2Weights, SplitMix64, Tensor};

fn block(c: &mut Criterion) {
    let cfg = Mamba2Config::default();
    let w = Mamba2Weights::init(&cfg, 0).unwrap();
    let mut group = c.benchmark_group("mamba2_block");
    group.sample_size(10);
    for kind in [BackendKind::CpuSimd, BackendKind::Cuda] {
        let Ok(sel) = build(kind) else {
            eprintln!("mamba2_block: skipping {kind} (unavailable)");
            continue;
        };
        let blk = Mamba2Block::with_selection(cfg.clone(), w.clone(), &sel).unwrap();
        for l in [100usize, 400] {
            let mut rng = SplitMix64(l as u64);
            let x: Vec<f32> = (0..2 * l * cfg.d_model).map(|_| rng.normal()).collect();
            group.bench_with_input(
                BenchmarkId::new(format!("{kind}/forward"), l),
                &l,
                |b, &l| b.iter(|| blk.forward(Tensor::new(&x, [2, l, cfg.d_model])).unwrap()),
            );
            if kind != BackendKind::Cuda {
                let dout: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
                group.bench_with_input(
                    BenchmarkId::new(format!("{kind}/forward+backward"), l),
                    &l,
                    |b, &l| {
                        b.iter(|| {
                            let tape = blk
                                .forward_train(Tensor::new(&x, [2, l, cfg.d_model]), None)
                                .unwrap();
                            blk.backward(&tape, &dout, None).unwrap()
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, block);
criterion_main!(benches);
