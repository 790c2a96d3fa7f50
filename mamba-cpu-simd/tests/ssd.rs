//! `ssd` against the f64 oracle: fixed cases covering every option, on every
//! instruction-set path of this host.

mod common;

use common::{backends, Skip, SsdCase, SsdShape};
use mamba_cpu_simd::TimeChunking;

fn shape(
    batch: usize,
    seqlen: usize,
    nheads: usize,
    headdim: usize,
    ngroups: usize,
    dstate: usize,
) -> SsdShape {
    SsdShape {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        d: Skip::PerHead,
        z: true,
        bias: true,
        init: true,
        seqs: 1,
        softplus: true,
        limit: None,
        chunk_size: 256,
        dfinal: true,
    }
}

#[test]
fn all_options_every_path() {
    let cases = [
        shape(2, 33, 4, 8, 2, 16),
        SsdShape {
            d: Skip::PerChannel,
            seqs: 3,
            limit: Some((0.01, 0.5)),
            ..shape(1, 40, 3, 5, 1, 7)
        },
        SsdShape {
            d: Skip::None,
            z: false,
            bias: false,
            init: false,
            dfinal: false,
            softplus: false,
            ..shape(2, 1, 2, 17, 2, 3)
        },
        shape(1, 130, 2, 19, 1, 37),
    ];
    for (k, s) in cases.into_iter().enumerate() {
        let case = SsdCase::random(s, 100 + k as u64);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
        for be in backends(3, TimeChunking::Fixed(7)) {
            case.check(&be);
        }
    }
}

/// Chunks longer than the backward's recompute blocks (64 steps), and a carried state
/// that decays to nothing within a chunk.
#[test]
fn long_chunks() {
    let case = SsdCase::random(
        SsdShape {
            seqs: 2,
            ..shape(1, 900, 2, 8, 1, 16)
        },
        77,
    );
    for be in backends(2, TimeChunking::Fixed(300)) {
        case.check(&be);
    }
    for be in backends(2, TimeChunking::Auto) {
        case.check(&be);
    }
}
