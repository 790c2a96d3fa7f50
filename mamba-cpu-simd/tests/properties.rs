//! Property tests: over random shapes and options (odd sizes, `L = 1`, prime channel
//! counts, `N` not a multiple of any vector width, groups, packed sequences, the
//! time-chunked path forced on), every op on every path of this host agrees with the
//! f64 oracle within the SPEC's tolerances (1e-5 forward, 1e-4 gradients, f32).

mod common;

use common::{
    backends, ConvCase, ConvShape, ConvStepCase, Layout, ScanCase, ScanShape, Skip, SsdCase,
    SsdShape, StepCase, StepShape,
};
use mamba_cpu_simd::TimeChunking;
use proptest::prelude::*;

/// Threads and chunking: automatic, forced chunks of a few steps, or none.
fn parallelism() -> impl Strategy<Value = (usize, TimeChunking)> {
    (
        1usize..=4,
        prop_oneof![
            Just(TimeChunking::Auto),
            (1usize..=9).prop_map(TimeChunking::Fixed),
            Just(TimeChunking::Off)
        ],
    )
}

/// Lengths with `L = 1` and short and long-ish ones.
fn seqlen() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), 2usize..=9, 10usize..=70]
}

/// Channel counts and state sizes with primes and sizes around the vector widths.
fn small_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        Just(5),
        Just(7),
        Just(11),
        Just(13),
        Just(16),
        Just(17)
    ]
}

fn layout(dim: usize) -> impl Strategy<Value = Layout> {
    let divisors: Vec<usize> = (2..=dim).filter(|g| dim.is_multiple_of(*g)).collect();
    let grouped = if divisors.is_empty() {
        Just(Layout::Varying).boxed()
    } else {
        proptest::sample::select(divisors)
            .prop_map(Layout::Grouped)
            .boxed()
    };
    prop_oneof![Just(Layout::Shared), Just(Layout::Varying), grouped]
}

fn scan_shape() -> impl Strategy<Value = ScanShape> {
    (1usize..=2, small_dim(), seqlen(), small_dim())
        .prop_flat_map(|(batch, dim, seqlen, dstate)| {
            (
                Just((batch, dim, seqlen, dstate)),
                layout(dim),
                layout(dim),
                any::<[bool; 7]>(),
            )
        })
        .prop_map(
            |((batch, dim, seqlen, dstate), b_layout, c_layout, f)| ScanShape {
                batch,
                dim,
                seqlen,
                dstate,
                b_layout,
                c_layout,
                d: f[0],
                z: f[1],
                bias: f[2],
                init: f[3],
                softplus: f[4],
                dlast: f[5],
            },
        )
}

fn ssd_shape() -> impl Strategy<Value = SsdShape> {
    (
        1usize..=2,
        seqlen(),
        prop_oneof![Just(1usize), Just(2), Just(3), Just(4), Just(6)],
        small_dim(),
        small_dim(),
    )
        .prop_flat_map(|(batch, seqlen, nheads, headdim, dstate)| {
            let groups: Vec<usize> = (1..=nheads).filter(|g| nheads.is_multiple_of(*g)).collect();
            (
                Just((batch, seqlen, nheads, headdim, dstate)),
                proptest::sample::select(groups),
                prop_oneof![
                    Just(Skip::None),
                    Just(Skip::PerHead),
                    Just(Skip::PerChannel)
                ],
                1usize..=4,
                prop_oneof![Just(None), Just(Some((0.02f32, 0.6f32)))],
                any::<[bool; 5]>(),
                1usize..=300,
            )
        })
        .prop_map(
            |((batch, seqlen, nheads, headdim, dstate), ngroups, d, seqs, limit, f, chunk_size)| {
                SsdShape {
                    batch,
                    seqlen,
                    nheads,
                    headdim,
                    ngroups,
                    dstate,
                    d,
                    z: f[0],
                    bias: f[1],
                    init: f[2],
                    seqs,
                    softplus: f[3],
                    limit,
                    chunk_size,
                    dfinal: f[4],
                }
            },
        )
}

fn conv_shape() -> impl Strategy<Value = ConvShape> {
    (
        1usize..=3,
        small_dim(),
        seqlen(),
        1usize..=5,
        any::<[bool; 5]>(),
    )
        .prop_map(|(batch, channels, seqlen, width, f)| ConvShape {
            batch,
            channels,
            seqlen,
            width,
            bias: f[0],
            init: f[1],
            silu: f[2],
            channel_last: f[3],
            dfinal: f[4],
        })
}

fn step_shape() -> impl Strategy<Value = StepShape> {
    (
        1usize..=3,
        prop_oneof![Just(1usize), Just(2), Just(3), Just(6)],
        0usize..=5,
        small_dim(),
        any::<[bool; 5]>(),
    )
        .prop_flat_map(|(batch, nheads, headdim, dstate, f)| {
            let groups: Vec<usize> = (1..=nheads).filter(|g| nheads.is_multiple_of(*g)).collect();
            (
                Just((batch, nheads, headdim, dstate, f)),
                proptest::sample::select(groups),
            )
        })
        .prop_map(|((batch, nheads, headdim, dstate, f), ngroups)| StepShape {
            batch,
            nheads,
            headdim,
            ngroups,
            dstate,
            d: f[0],
            z: f[1],
            bias: f[2],
            softplus: f[3],
            limit: f[4].then_some((0.05, 0.8)),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn selective_scan_matches_the_oracle(shape in scan_shape(), seed in any::<u64>(), (threads, chunking) in parallelism()) {
        let case = ScanCase::random(shape, seed);
        for be in backends(threads, chunking) {
            case.check(&be);
        }
    }

    #[test]
    fn ssd_matches_the_oracle(shape in ssd_shape(), seed in any::<u64>(), (threads, chunking) in parallelism()) {
        let case = SsdCase::random(shape, seed);
        for be in backends(threads, chunking) {
            case.check(&be);
        }
    }

    #[test]
    fn causal_conv1d_matches_the_oracle(shape in conv_shape(), seed in any::<u64>(), threads in 1usize..=3) {
        let case = ConvCase::random(shape, seed);
        for be in backends(threads, TimeChunking::Auto) {
            case.check(&be);
        }
    }

    #[test]
    fn selective_state_update_matches_the_oracle(shape in step_shape(), seed in any::<u64>()) {
        let case = StepCase::random(shape, seed);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
    }

    #[test]
    fn causal_conv1d_update_matches_the_oracle(
        (batch, channels, width) in (1usize..=3, small_dim(), 1usize..=5),
        extra in 0usize..=3,
        steps in 1usize..=4,
        flags in any::<[bool; 2]>(),
        seed in any::<u64>(),
    ) {
        let case = ConvStepCase::random(batch, channels, width - 1 + extra, steps, width, flags[0], flags[1], seed);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
    }
}
