//! For a fixed thread count, results are bitwise identical run to run: tasks write
//! disjoint outputs and partial sums are reduced in task order, whatever thread ran
//! what. Checked on the row-parallel and the time-chunked paths.

mod common;

use common::{backends, ConvCase, ConvShape, Layout, ScanCase, ScanShape, Skip, SsdCase, SsdShape};
use mamba_cpu_simd::TimeChunking;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn scan_is_bitwise_reproducible() {
    let shape = ScanShape {
        batch: 2,
        dim: 12,
        seqlen: 300,
        dstate: 16,
        b_layout: Layout::Grouped(3),
        c_layout: Layout::Varying,
        d: true,
        z: true,
        bias: true,
        init: true,
        softplus: true,
        dlast: true,
    };
    let case = ScanCase::random(shape, 7);
    for chunking in [TimeChunking::Auto, TimeChunking::Fixed(37)] {
        for be in backends(3, chunking) {
            let runs: Vec<_> = (0..3)
                .map(|_| {
                    let (out, last) = case.forward::<f32, _>(&be);
                    let g = case.backward::<f32, _>(&be);
                    (
                        bits(&out),
                        bits(&last),
                        bits(&g.u),
                        bits(&g.delta),
                        bits(&g.a),
                        bits(&g.b),
                        bits(&g.c),
                    )
                })
                .collect();
            assert!(
                runs.windows(2).all(|w| w[0] == w[1]),
                "{be:?} differs between runs"
            );
        }
    }
}

#[test]
fn ssd_is_bitwise_reproducible() {
    let shape = SsdShape {
        batch: 1,
        seqlen: 200,
        nheads: 4,
        headdim: 8,
        ngroups: 2,
        dstate: 16,
        d: Skip::PerHead,
        z: true,
        bias: true,
        init: true,
        seqs: 2,
        softplus: true,
        limit: None,
        chunk_size: 64,
        dfinal: true,
    };
    let case = SsdCase::random(shape, 8);
    for chunking in [TimeChunking::Auto, TimeChunking::Fixed(29)] {
        for be in backends(3, chunking) {
            let runs: Vec<_> = (0..3)
                .map(|_| {
                    let (out, last) = case.forward::<f32, _>(&be);
                    let g = case.backward::<f32, _>(&be);
                    (
                        bits(&out),
                        bits(&last),
                        bits(&g.x),
                        bits(&g.dt),
                        bits(&g.a),
                        bits(&g.b),
                        bits(&g.c),
                    )
                })
                .collect();
            assert!(
                runs.windows(2).all(|w| w[0] == w[1]),
                "{be:?} differs between runs"
            );
        }
    }
}

#[test]
fn conv_is_bitwise_reproducible_whatever_the_thread_count() {
    // The channel-last backward sums its weight and bias gradients per block of time
    // steps, in task order: the same bits on 1, 2 or 3 threads.
    for channel_last in [false, true] {
        let shape = ConvShape {
            batch: 2,
            channels: 37,
            seqlen: 150,
            width: 4,
            bias: true,
            init: true,
            silu: true,
            channel_last,
            dfinal: true,
        };
        let case = ConvCase::random(shape, 11);
        let mut results = Vec::new();
        for threads in 1..=3 {
            let be = mamba_cpu_simd::CpuSimd::with_threads(threads);
            for _ in 0..2 {
                let (out, last) = case.forward::<f32, _>(&be);
                let g = case.backward::<f32, _>(&be);
                results.push((
                    bits(&out),
                    bits(&last),
                    bits(&g.x),
                    bits(&g.weight),
                    bits(g.bias.as_deref().unwrap()),
                    bits(g.initial_states.as_deref().unwrap()),
                ));
            }
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "channel_last {channel_last}: results differ between runs or thread counts"
        );
    }
}
