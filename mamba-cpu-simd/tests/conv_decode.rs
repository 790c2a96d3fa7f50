//! `causal_conv1d` (both layouts), `selective_state_update` and
//! `causal_conv1d_update` against the f64 oracle on every instruction-set path.

mod common;

use common::{backends, ConvCase, ConvShape, ConvStepCase, StepCase, StepShape};
use mamba_cpu_simd::TimeChunking;

fn conv(batch: usize, channels: usize, seqlen: usize, width: usize) -> ConvShape {
    ConvShape {
        batch,
        channels,
        seqlen,
        width,
        bias: true,
        init: true,
        silu: true,
        channel_last: false,
        dfinal: true,
    }
}

#[test]
fn conv_every_option_every_path() {
    let cases = [
        conv(2, 5, 37, 4),
        ConvShape {
            channel_last: true,
            ..conv(2, 7, 19, 3)
        },
        ConvShape {
            bias: false,
            init: false,
            silu: false,
            dfinal: false,
            ..conv(1, 3, 2, 5)
        },
        ConvShape {
            channel_last: true,
            silu: false,
            ..conv(1, 17, 1, 1)
        },
        ConvShape {
            channel_last: true,
            ..conv(3, 33, 50, 6)
        },
        // Channel-last over several time blocks (tasks starting past 0), at the widths
        // whose backward keeps its rings in registers, whole vectors and a tail; the
        // last block shorter than W-1 (514 = 2 * 256 + 2).
        ConvShape {
            channel_last: true,
            ..conv(2, 40, 514, 4)
        },
        ConvShape {
            channel_last: true,
            ..conv(1, 35, 300, 2)
        },
        ConvShape {
            channel_last: true,
            dfinal: false,
            ..conv(2, 20, 257, 3)
        },
    ];
    for (k, s) in cases.into_iter().enumerate() {
        let case = ConvCase::random(s, 200 + k as u64);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
    }
}

#[test]
fn state_update_every_option_every_path() {
    let base = StepShape {
        batch: 2,
        nheads: 3,
        headdim: 4,
        ngroups: 3,
        dstate: 19,
        d: true,
        z: true,
        bias: true,
        softplus: true,
        limit: None,
    };
    let cases = [
        base,
        StepShape {
            headdim: 0,
            ngroups: 1,
            ..base
        },
        StepShape {
            headdim: 0,
            ngroups: 3,
            limit: Some((0.05, 0.5)),
            ..base
        },
        StepShape {
            d: false,
            z: false,
            bias: false,
            softplus: false,
            dstate: 64,
            ngroups: 1,
            ..base
        },
        StepShape {
            batch: 4,
            nheads: 32,
            headdim: 64,
            dstate: 64,
            ngroups: 2,
            ..base
        },
    ];
    for (k, s) in cases.into_iter().enumerate() {
        let case = StepCase::random(s, 300 + k as u64);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
    }
}

#[test]
fn conv_update_every_option_every_path() {
    let cases = [
        ConvStepCase::random(2, 5, 3, 1, 4, true, true, 1),
        ConvStepCase::random(1, 7, 6, 3, 4, false, false, 2),
        ConvStepCase::random(3, 4, 0, 2, 1, true, true, 3),
        ConvStepCase::random(64, 300, 5, 4, 3, true, true, 4),
    ];
    for case in &cases {
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
    }
}

#[test]
fn state_update_with_a_repeated_over_the_state_every_path() {
    // Mamba-2's decode step repeats each head's A over p and N; cpu-simd then takes one
    // exponential per row instead of one per state value. Heads with one A, rows with
    // one A each, and rows of distinct values side by side, with N a multiple of every
    // vector width and not.
    for (k, dstate) in [19usize, 64, 128].into_iter().enumerate() {
        let shape = StepShape {
            batch: 2,
            nheads: 4,
            headdim: 8,
            ngroups: 2,
            dstate,
            d: true,
            z: true,
            bias: true,
            softplus: true,
            limit: None,
        };
        let mut case = StepCase::random(shape, 400 + k as u64);
        let row = dstate;
        let head = 8 * row;
        // Head 0 and head 2: one value each; head 1: one value per row; head 3 as drawn,
        // but for one row that is uniform except for its last value.
        for h in [0, 2] {
            let v = case.a[h * head];
            case.a[h * head..(h + 1) * head].fill(v);
        }
        for q in 0..8 {
            let r0 = head + q * row;
            let v = case.a[r0];
            case.a[r0..r0 + row].fill(v);
        }
        let r0 = 3 * head + 2 * row;
        let v = case.a[r0];
        case.a[r0..r0 + row - 1].fill(v);
        for be in backends(2, TimeChunking::Auto) {
            case.check(&be);
        }
    }
}
