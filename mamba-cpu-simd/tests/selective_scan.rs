//! `selective_scan` against the f64 oracle: fixed cases covering every option, on
//! every instruction-set path of this host.

mod common;

use common::{backends, Layout, ScanCase, ScanShape};
use mamba_cpu_simd::TimeChunking;

fn shape(batch: usize, dim: usize, seqlen: usize, dstate: usize) -> ScanShape {
    ScanShape {
        batch,
        dim,
        seqlen,
        dstate,
        b_layout: Layout::Varying,
        c_layout: Layout::Varying,
        d: true,
        z: true,
        bias: true,
        init: true,
        softplus: true,
        dlast: true,
    }
}

#[test]
fn all_options_every_path() {
    let cases = [
        shape(2, 5, 37, 16),
        ScanShape {
            b_layout: Layout::Shared,
            c_layout: Layout::Grouped(5),
            ..shape(1, 5, 9, 7)
        },
        ScanShape {
            b_layout: Layout::Grouped(3),
            c_layout: Layout::Shared,
            d: false,
            z: false,
            ..shape(2, 6, 1, 3)
        },
        ScanShape {
            bias: false,
            init: false,
            softplus: false,
            dlast: false,
            ..shape(1, 3, 300, 64)
        },
    ];
    for (k, s) in cases.into_iter().enumerate() {
        let case = ScanCase::random(s, k as u64);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
        for be in backends(3, TimeChunking::Fixed(4)) {
            case.check(&be);
        }
    }
}

/// Chunks longer than the kernels' time blocks (256 steps), and a carried state that
/// decays to nothing within a chunk.
#[test]
fn long_chunks() {
    let s = ScanShape {
        batch: 1,
        dim: 2,
        seqlen: 900,
        dstate: 16,
        ..shape(1, 2, 900, 16)
    };
    let case = ScanCase::random(s, 99);
    for be in backends(2, TimeChunking::Fixed(300)) {
        case.check(&be);
    }
    for be in backends(2, TimeChunking::Auto) {
        case.check(&be);
    }
}

/// Rows too long for the backward to keep every state (2 L N floats over the 512 K budget
/// of `scan::STORE_ALL`): checkpoints every 64 steps and a recompute of each block on the
/// way back, against the oracle.
#[test]
fn backward_recomputes_blocks_of_long_rows() {
    let case = ScanCase::random(
        ScanShape {
            dlast: true,
            ..shape(1, 2, 4200, 64)
        },
        7,
    );
    for be in backends(2, TimeChunking::Off) {
        case.check(&be);
    }
}
