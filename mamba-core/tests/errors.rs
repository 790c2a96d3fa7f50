//! Every kind of bad input gets a typed error that names the argument and the shapes,
//! before anything is written, and never a panic.
#![cfg(feature = "testing")]

use mamba_core::testing::{
    BcKind, ConvCase, ConvConfig, ConvUpdateCase, ConvUpdateConfig, Rng, ScanCase, ScanConfig,
    SsdCase, SsdConfig, StateUpdateCase, StateUpdateConfig, UpdateLayout,
};
use mamba_core::{
    Activation, CausalConv1dArgs, CausalConv1dUpdateArgs, ConvLayout, Error, Kernels, Reference,
    SelectiveScanArgs, SelectiveStateUpdateArgs, Shape, SsdArgs, Tensor, TensorMut,
};
use proptest::prelude::*;

/// What outputs hold before a call; a call that fails must leave them so.
const SENTINEL: f32 = -12345.5;

fn untouched(v: &[f32]) -> bool {
    v.iter().all(|x| x.to_bits() == SENTINEL.to_bits())
}

fn backend() -> Reference<f32> {
    Reference::new()
}

/// The expected kind of error.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Shape,
    Zero(&'static str),
    Buffer,
    Divisible,
    Invalid,
}

/// Checks the variant, the operation and the argument, and that the message names the
/// argument (in backticks) and contains every needle (shapes, values).
#[track_caller]
fn assert_error(err: &Error, op: &str, arg: &str, kind: Kind, needles: &[&str]) {
    let msg = err.to_string();
    let (got_op, got_arg) = match (kind, err) {
        (Kind::Shape, Error::ShapeMismatch { op, arg, .. })
        | (Kind::Buffer, Error::BufferLength { op, arg, .. })
        | (Kind::Invalid, Error::InvalidArgument { op, arg, .. }) => (*op, *arg),
        (Kind::Zero(want), Error::ZeroDim { op, arg, dim, .. }) => {
            assert_eq!(*dim, want, "wrong zero dimension in {msg}");
            (*op, *arg)
        }
        // `NotDivisible` names the counts, not an argument.
        (Kind::Divisible, Error::NotDivisible { op, .. }) => (*op, arg),
        _ => panic!("expected a {kind:?} error for `{arg}`, got {err:?}: {msg}"),
    };
    assert_eq!(got_op, op, "{msg}");
    assert_eq!(got_arg, arg, "{msg}");
    assert!(
        msg.starts_with(op),
        "message does not name the operation: {msg}"
    );
    if !matches!(kind, Kind::Divisible) {
        assert!(
            msg.contains(&format!("`{arg}`")),
            "message does not name `{arg}`: {msg}"
        );
    }
    for needle in needles {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
}

// ---------------------------------------------------------------------------------
// Callers that fill outputs with a sentinel and check them after the error
// ---------------------------------------------------------------------------------

/// Forward and backward of a selective scan; argument errors must agree.
fn scan_err(args: &SelectiveScanArgs<'_, f32>, case: &ScanCase) -> Error {
    let io = case.u.len();
    let st = case.batch * case.dim * case.dstate;
    let (mut out, mut last) = (vec![SENTINEL; io], vec![SENTINEL; st]);
    let err = backend()
        .selective_scan(args, &mut out, Some(&mut last))
        .expect_err("forward accepted bad input");
    assert!(
        untouched(&out) && untouched(&last),
        "outputs written: {err}"
    );
    let berr = backend()
        .selective_scan_backward(args, &case.dout, case.dlast_state.as_deref())
        .expect_err("backward accepted bad input");
    assert_eq!(err, berr);
    err
}

fn ssd_err(args: &SsdArgs<'_, f32>, case: &SsdCase) -> Error {
    let io = case.x.len();
    let st: usize = case.state_shape().iter().product();
    let (mut out, mut fin) = (vec![SENTINEL; io], vec![SENTINEL; st]);
    let err = backend()
        .ssd(args, &mut out, Some(&mut fin))
        .expect_err("forward accepted bad input");
    assert!(untouched(&out) && untouched(&fin), "outputs written: {err}");
    let berr = backend()
        .ssd_backward(args, &case.dout, case.dfinal_states.as_deref())
        .expect_err("backward accepted bad input");
    assert_eq!(err, berr);
    err
}

fn conv_err(args: &CausalConv1dArgs<'_, f32>, case: &ConvCase) -> Error {
    let st: usize = case.state_shape().iter().product();
    let (mut out, mut fin) = (vec![SENTINEL; case.x.len()], vec![SENTINEL; st]);
    let err = backend()
        .causal_conv1d(args, &mut out, Some(&mut fin))
        .expect_err("forward accepted bad input");
    assert!(untouched(&out) && untouched(&fin), "outputs written: {err}");
    let berr = backend()
        .causal_conv1d_backward(args, &case.dout, case.dfinal_states.as_deref())
        .expect_err("backward accepted bad input");
    assert_eq!(err, berr);
    err
}

fn update_err(args: &SelectiveStateUpdateArgs<'_, f32>, state_len: usize, out_len: usize) -> Error {
    let (mut state, mut out) = (vec![SENTINEL; state_len], vec![SENTINEL; out_len]);
    let err = backend()
        .selective_state_update(args, &mut state, &mut out)
        .expect_err("accepted bad input");
    assert!(
        untouched(&state) && untouched(&out),
        "state or output written: {err}"
    );
    err
}

fn conv_update_err(
    args: &CausalConv1dUpdateArgs<'_, f32>,
    state_shape: Shape,
    state_len: usize,
    out_len: usize,
) -> Error {
    let (mut state, mut out) = (vec![SENTINEL; state_len], vec![SENTINEL; out_len]);
    let err = backend()
        .causal_conv1d_update(args, TensorMut::new(&mut state, state_shape), &mut out)
        .expect_err("accepted bad input");
    assert!(
        untouched(&state) && untouched(&out),
        "state or output written: {err}"
    );
    err
}

// ---------------------------------------------------------------------------------
// Valid cases to break
// ---------------------------------------------------------------------------------

/// b = 2, d = 4, L = 5, N = 3; B grouped (2 groups), C per step; every option.
fn scan_case() -> ScanCase {
    let cfg = ScanConfig {
        b_kind: BcKind::Grouped(2),
        c_kind: BcKind::Varying,
        ..ScanConfig::new(2, 4, 5, 3).all_options()
    };
    ScanCase::random(&cfg, &mut Rng::new(1))
}

/// b = 2, L = 6, h = 4, p = 3, g = 2, N = 5; every option.
fn ssd_case() -> SsdCase {
    SsdCase::random(
        &SsdConfig::new(2, 6, 4, 3, 2, 5).all_options(),
        &mut Rng::new(2),
    )
}

/// b = 2, c = 3, L = 5, W = 4; bias, initial states, silu.
fn conv_case(layout: ConvLayout) -> ConvCase {
    let cfg = ConvConfig {
        bias: true,
        initial_states: true,
        activation: Activation::Silu,
        layout,
        dfinal_states: true,
        ..ConvConfig::new(2, 3, 5, 4)
    };
    ConvCase::random(&cfg, &mut Rng::new(3))
}

fn update_case(layout: UpdateLayout) -> StateUpdateCase {
    let cfg = StateUpdateConfig {
        batch: 2,
        layout,
        dstate: 3,
        d: true,
        z: true,
        dt_bias: true,
        dt_softplus: true,
        dt_limit: Some((0.01, 0.5)),
    };
    StateUpdateCase::random(&cfg, &mut Rng::new(4))
}

fn mamba1_case() -> StateUpdateCase {
    update_case(UpdateLayout::Mamba1 {
        dim: 4,
        groups: Some(2),
    })
}

fn multihead_case() -> StateUpdateCase {
    update_case(UpdateLayout::Multihead {
        nheads: 4,
        headdim: 2,
        ngroups: 2,
    })
}

/// b = 2, c = 3, W = 4, S = 5, Ln = 2.
fn conv_update_case() -> ConvUpdateCase {
    let cfg = ConvUpdateConfig {
        batch: 2,
        channels: 3,
        width: 4,
        state_len: 5,
        steps: Some(2),
        bias: true,
        activation: Activation::Silu,
    };
    ConvUpdateCase::random(&cfg, &mut Rng::new(5))
}

/// A buffer of the right length for any shape.
fn buf(dims: &[usize]) -> Vec<f32> {
    vec![0.5; dims.iter().product()]
}

#[test]
fn the_valid_cases_are_valid() {
    let c = scan_case();
    c.args().validate().unwrap();
    let c = ssd_case();
    c.args().validate().unwrap();
    for layout in [ConvLayout::ChannelFirst, ConvLayout::ChannelLast] {
        conv_case(layout).args().validate().unwrap();
    }
    for c in [mamba1_case(), multihead_case()] {
        c.args().validate(c.state.len(), c.x.len()).unwrap();
    }
    let mut c = conv_update_case();
    let (shape, out) = (c.state_shape(), c.x.len());
    let mut state = std::mem::take(&mut c.conv_state);
    c.args()
        .validate(&TensorMut::new(&mut state, shape), out)
        .unwrap();
}

// ---------------------------------------------------------------------------------
// selective_scan
// ---------------------------------------------------------------------------------

const SCAN: &str = "selective_scan";

#[test]
fn scan_mismatched_dimensions_of_each_argument() {
    let c = scan_case();
    let (b, d, l, n) = (2usize, 4usize, 5usize, 3usize);
    // (argument, wrong dims, expected text)
    let cases: Vec<(&str, Vec<usize>, &str)> = vec![
        ("u", vec![b, d], "3 dimensions (b, d, L)"),
        ("delta", vec![b, d, l + 1], "[2, 4, 5] (b, d, L)"),
        ("delta", vec![b + 1, d, l], "[2, 4, 5] (b, d, L)"),
        ("A", vec![d + 1, n], "[4, 3] (d, N)"),
        ("A", vec![d, n, 1], "2 dimensions (d, N)"),
        ("B", vec![d + 1, n], "[4, 3] (d, N)"),
        ("B", vec![b, n + 1, l], "[2, 3, 5] (b, N, L)"),
        ("B", vec![b, 2, n, l + 1], "[2, 2, 3, 5] (b, g, N, L)"),
        (
            "B",
            vec![b, 2, n, l, 1],
            "(d, N) | (b, N, L) | (b, g, N, L)",
        ),
        ("B", vec![n], "(d, N) | (b, N, L) | (b, g, N, L)"),
        ("C", vec![d, n + 1], "[4, 3] (d, N)"),
        ("C", vec![b + 1, n, l], "[2, 3, 5] (b, N, L)"),
        ("C", vec![b, 1, n - 1, l], "[2, 1, 3, 5] (b, g, N, L)"),
        ("D", vec![d + 1], "[4] (d)"),
        ("D", vec![d, 1], "[4] (d)"),
        ("z", vec![b, d, l - 1], "[2, 4, 5] (b, d, L)"),
        ("delta_bias", vec![d - 1], "[4] (d)"),
        ("initial_state", vec![b, d, n + 1], "[2, 4, 3] (b, d, N)"),
        ("initial_state", vec![b, d], "[2, 4, 3] (b, d, N)"),
    ];
    for (arg, dims, expected) in cases {
        let data = buf(&dims);
        let t = Tensor::new(&data[..], Shape::from_slice(&dims, "test").unwrap());
        let tp = t; // parameters share the storage type f32 here
        let mut args = c.args();
        match arg {
            "u" => args.u = t,
            "delta" => args.delta = t,
            "A" => args.a = tp,
            "B" => args.b = t,
            "C" => args.c = t,
            "D" => args.d = Some(tp),
            "z" => args.z = Some(t),
            "delta_bias" => args.delta_bias = Some(tp),
            "initial_state" => args.initial_state = Some(tp),
            _ => unreachable!(),
        }
        let err = scan_err(&args, &c);
        let got = t.shape.to_string();
        assert_error(&err, SCAN, arg, Kind::Shape, &[&got, expected]);
    }
}

#[test]
fn scan_zero_dimensions() {
    let c = scan_case();
    let empty: Vec<f32> = Vec::new();
    for (dims, dim) in [([0, 4, 5], "b"), ([2, 0, 5], "d"), ([2, 4, 0], "L")] {
        let mut args = c.args();
        args.u = Tensor::new(&empty, dims);
        let err = scan_err(&args, &c);
        assert_error(
            &err,
            SCAN,
            "u",
            Kind::Zero(dim),
            &[&Shape::new(dims).to_string()],
        );
    }
    // N = 0 with every other argument consistent with it.
    let c0 = ScanCase::random(&ScanConfig::new(1, 2, 3, 1), &mut Rng::new(9));
    let mut args = c0.args();
    args.a = Tensor::new(&empty, [2, 0]);
    args.b = Tensor::new(&empty, [2, 0]);
    args.c = Tensor::new(&empty, [2, 0]);
    let err = scan_err(&args, &c0);
    assert_error(&err, SCAN, "A", Kind::Zero("N"), &["[2, 0]"]);
    // g = 0 in a grouped B.
    let mut args = c.args();
    args.b = Tensor::new(&empty, [2, 0, 3, 5]);
    let err = scan_err(&args, &c);
    assert_error(&err, SCAN, "B", Kind::Zero("g"), &["[2, 0, 3, 5]"]);
}

#[test]
fn scan_channels_not_divisible_by_groups() {
    let c = scan_case();
    for (arg, g) in [("B", 3usize), ("C", 8)] {
        let data = buf(&[2, g, 3, 5]);
        let mut args = c.args();
        let t = Tensor::new(&data[..], [2, g, 3, 5]);
        if arg == "B" {
            args.b = t;
        } else {
            args.c = t;
        }
        let err = scan_err(&args, &c);
        assert_error(
            &err,
            SCAN,
            arg,
            Kind::Divisible,
            &["channels d = 4", &format!("groups g = {g}")],
        );
    }
}

#[test]
fn scan_wrong_buffer_lengths() {
    let c = scan_case();
    // Inputs: one element short or long, shape right.
    for arg in [
        "u",
        "delta",
        "A",
        "B",
        "C",
        "D",
        "z",
        "delta_bias",
        "initial_state",
    ] {
        let mut args = c.args();
        let shrink = |t: &mut Tensor<'_, f32>| {
            t.data = &t.data[..t.data.len() - 1];
        };
        match arg {
            "u" => shrink(&mut args.u),
            "delta" => shrink(&mut args.delta),
            "A" => shrink(&mut args.a),
            "B" => shrink(&mut args.b),
            "C" => shrink(&mut args.c),
            "D" => shrink(args.d.as_mut().unwrap()),
            "z" => shrink(args.z.as_mut().unwrap()),
            "delta_bias" => shrink(args.delta_bias.as_mut().unwrap()),
            "initial_state" => shrink(args.initial_state.as_mut().unwrap()),
            _ => unreachable!(),
        }
        let err = scan_err(&args, &c);
        assert_error(&err, SCAN, arg, Kind::Buffer, &["elements"]);
    }
    let longer: Vec<f32> = c.u.iter().copied().chain([1.0]).collect();
    let mut args = c.args();
    args.u = Tensor::new(&longer, [2, 4, 5]);
    assert_error(
        &scan_err(&args, &c),
        SCAN,
        "u",
        Kind::Buffer,
        &["41 elements", "[2, 4, 5] needs 40"],
    );

    // Outputs and upstream gradients.
    let args = c.args();
    for (out_len, state_len, arg) in [(39, 24, "out"), (41, 24, "out"), (40, 23, "last_state")] {
        let (mut out, mut last) = (vec![SENTINEL; out_len], vec![SENTINEL; state_len]);
        let err = backend()
            .selective_scan(&args, &mut out, Some(&mut last))
            .unwrap_err();
        assert!(untouched(&out) && untouched(&last));
        assert_error(
            &err,
            SCAN,
            arg,
            Kind::Buffer,
            &[&format!(
                "{} elements",
                if arg == "out" { out_len } else { state_len }
            )],
        );
    }
    let err = backend()
        .selective_scan_backward(&args, &c.dout[..39], None)
        .unwrap_err();
    assert_error(
        &err,
        SCAN,
        "dout",
        Kind::Buffer,
        &["39 elements", "[2, 4, 5] needs 40"],
    );
    let dl = vec![1.0f32; 25];
    let err = backend()
        .selective_scan_backward(&args, &c.dout, Some(&dl))
        .unwrap_err();
    assert_error(
        &err,
        SCAN,
        "dlast_state",
        Kind::Buffer,
        &["25 elements", "[2, 4, 3] needs 24"],
    );
}

// ---------------------------------------------------------------------------------
// ssd
// ---------------------------------------------------------------------------------

const SSD: &str = "ssd";

#[test]
fn ssd_mismatched_dimensions_of_each_argument() {
    let c = ssd_case();
    let (b, l, h, p, g, n) = (2usize, 6usize, 4usize, 3usize, 2usize, 5usize);
    let cases: Vec<(&str, Vec<usize>, &str)> = vec![
        ("x", vec![b, l, h], "4 dimensions (b, L, h, p)"),
        ("dt", vec![b, l, h + 1], "[2, 6, 4] (b, L, h)"),
        ("dt", vec![b, l], "[2, 6, 4] (b, L, h)"),
        ("A", vec![h - 1], "[4] (h)"),
        ("A", vec![h, p], "[4] (h)"),
        ("B", vec![b, l + 1, g, n], "[2, 6, 2, 5] (b, L, g, N)"),
        ("B", vec![b, l, g * n], "4 dimensions (b, L, g, N)"),
        ("C", vec![b, l, g, n + 1], "[2, 6, 2, 5] (b, L, g, N)"),
        ("C", vec![b, l, 1, n], "[2, 6, 2, 5] (b, L, g, N)"),
        ("D", vec![h + 1], "[4] (h)"),
        ("D", vec![h, p + 1], "[4, 3] (h, p)"),
        ("z", vec![b, l, h, p - 1], "[2, 6, 4, 3] (b, L, h, p)"),
        ("dt_bias", vec![h, 1], "[4] (h)"),
        (
            "initial_states",
            vec![b, h, n, p],
            "[2, 4, 3, 5] (b, h, p, N)",
        ),
        (
            "initial_states",
            vec![b, h, p, n + 1],
            "[2, 4, 3, 5] (b, h, p, N)",
        ),
    ];
    for (arg, dims, expected) in cases {
        let data = buf(&dims);
        let t = Tensor::new(&data[..], Shape::from_slice(&dims, "test").unwrap());
        let mut args = c.args();
        match arg {
            "x" => args.x = t,
            "dt" => args.dt = t,
            "A" => args.a = t,
            "B" => args.b = t,
            "C" => args.c = t,
            "D" => args.d = Some(t),
            "z" => args.z = Some(t),
            "dt_bias" => args.dt_bias = Some(t),
            "initial_states" => args.initial_states = Some(t),
            _ => unreachable!(),
        }
        let err = ssd_err(&args, &c);
        assert_error(
            &err,
            SSD,
            arg,
            Kind::Shape,
            &[&t.shape.to_string(), expected],
        );
    }
    // seq_idx of the wrong shape.
    let s = vec![0i32; b * (l + 1)];
    let mut args = c.args();
    args.seq_idx = Some(Tensor::new(&s, [b, l + 1]));
    assert_error(
        &ssd_err(&args, &c),
        SSD,
        "seq_idx",
        Kind::Shape,
        &["[2, 7]", "[2, 6] (b, L)"],
    );
}

#[test]
fn ssd_zero_dimensions() {
    let c = ssd_case();
    let empty: Vec<f32> = Vec::new();
    for (dims, dim) in [
        ([0, 6, 4, 3], "b"),
        ([2, 0, 4, 3], "L"),
        ([2, 6, 0, 3], "h"),
        ([2, 6, 4, 0], "p"),
    ] {
        let mut args = c.args();
        args.x = Tensor::new(&empty, dims);
        assert_error(
            &ssd_err(&args, &c),
            SSD,
            "x",
            Kind::Zero(dim),
            &[&Shape::new(dims).to_string()],
        );
    }
    for (dims, dim) in [([2, 6, 0, 5], "g"), ([2, 6, 2, 0], "N")] {
        let mut args = c.args();
        args.b = Tensor::new(&empty, dims);
        args.c = Tensor::new(&empty, dims);
        args.initial_states = None;
        assert_error(
            &ssd_err(&args, &c),
            SSD,
            "B",
            Kind::Zero(dim),
            &[&Shape::new(dims).to_string()],
        );
    }
}

#[test]
fn ssd_heads_not_divisible_by_groups() {
    let c = ssd_case();
    let data = buf(&[2, 6, 3, 5]);
    let mut args = c.args();
    args.b = Tensor::new(&data, [2, 6, 3, 5]);
    args.c = Tensor::new(&data, [2, 6, 3, 5]);
    assert_error(
        &ssd_err(&args, &c),
        SSD,
        "B",
        Kind::Divisible,
        &["heads h = 4", "groups g = 3"],
    );
}

#[test]
fn ssd_decreasing_seq_idx() {
    let c = ssd_case();
    let s = [0, 0, 1, 1, 2, 2, /* batch 1: */ 0, 1, 2, 1, 3, 3];
    let mut args = c.args();
    args.seq_idx = Some(Tensor::new(&s, [2, 6]));
    let err = ssd_err(&args, &c);
    assert_error(
        &err,
        SSD,
        "seq_idx",
        Kind::Invalid,
        &["non-decreasing", "batch 1", "t=2", "t=3"],
    );
    // Equal neighbours and jumps are fine.
    let s = [0, 0, 1, 5, 5, 9, 3, 3, 3, 3, 3, 4];
    args.seq_idx = Some(Tensor::new(&s, [2, 6]));
    assert!(args.validate().is_ok());
}

#[test]
fn ssd_invalid_dt_limit_and_chunk_size() {
    let c = ssd_case();
    for limit in [(0.5, 0.1), (f32::NAN, 1.0), (0.0, f32::NAN)] {
        let mut args = c.args();
        args.dt_limit = Some(limit);
        assert_error(
            &ssd_err(&args, &c),
            SSD,
            "dt_limit",
            Kind::Invalid,
            &["lo <= hi"],
        );
    }
    // An empty interval lo == hi is valid (a constant step), and so are infinite bounds.
    for limit in [(0.1, 0.1), (f32::NEG_INFINITY, f32::INFINITY)] {
        let mut args = c.args();
        args.dt_limit = Some(limit);
        assert!(args.validate().is_ok());
    }
    let args = c.args().with_chunk_size(0);
    assert_error(
        &ssd_err(&args, &c),
        SSD,
        "chunk_size",
        Kind::Invalid,
        &["at least 1"],
    );
}

#[test]
fn ssd_wrong_buffer_lengths() {
    let c = ssd_case();
    for arg in [
        "x",
        "dt",
        "A",
        "B",
        "C",
        "D",
        "z",
        "dt_bias",
        "initial_states",
    ] {
        let mut args = c.args();
        let shrink = |t: &mut Tensor<'_, f32>| t.data = &t.data[..t.data.len() - 1];
        match arg {
            "x" => shrink(&mut args.x),
            "dt" => shrink(&mut args.dt),
            "A" => shrink(&mut args.a),
            "B" => shrink(&mut args.b),
            "C" => shrink(&mut args.c),
            "D" => shrink(args.d.as_mut().unwrap()),
            "z" => shrink(args.z.as_mut().unwrap()),
            "dt_bias" => shrink(args.dt_bias.as_mut().unwrap()),
            "initial_states" => shrink(args.initial_states.as_mut().unwrap()),
            _ => unreachable!(),
        }
        assert_error(&ssd_err(&args, &c), SSD, arg, Kind::Buffer, &["elements"]);
    }
    let s = vec![0i32; 11];
    let mut args = c.args();
    args.seq_idx = Some(Tensor::new(&s, [2, 6]));
    assert_error(
        &ssd_err(&args, &c),
        SSD,
        "seq_idx",
        Kind::Buffer,
        &["11 elements", "[2, 6] needs 12"],
    );

    let args = c.args();
    let (io, st) = (2 * 6 * 4 * 3, 2 * 4 * 3 * 5);
    for (out_len, fin_len, arg) in [(io - 1, st, "out"), (io, st + 1, "final_states")] {
        let (mut out, mut fin) = (vec![SENTINEL; out_len], vec![SENTINEL; fin_len]);
        let err = backend().ssd(&args, &mut out, Some(&mut fin)).unwrap_err();
        assert!(untouched(&out) && untouched(&fin));
        assert_error(&err, SSD, arg, Kind::Buffer, &["[2, "]);
    }
    let err = backend()
        .ssd_backward(&args, &c.dout[1..], None)
        .unwrap_err();
    assert_error(
        &err,
        SSD,
        "dout",
        Kind::Buffer,
        &[&format!("{} elements", io - 1), "[2, 6, 4, 3]"],
    );
    let dfs = vec![0.0f32; st - 1];
    let err = backend()
        .ssd_backward(&args, &c.dout, Some(&dfs))
        .unwrap_err();
    assert_error(
        &err,
        SSD,
        "dfinal_states",
        Kind::Buffer,
        &["[2, 4, 3, 5] needs 120"],
    );
}

// ---------------------------------------------------------------------------------
// causal_conv1d
// ---------------------------------------------------------------------------------

const CONV: &str = "causal_conv1d";

#[test]
fn conv_mismatched_dimensions_of_each_argument() {
    for layout in [ConvLayout::ChannelFirst, ConvLayout::ChannelLast] {
        let c = conv_case(layout);
        let (b, ch, w) = (2usize, 3usize, 4usize);
        let cases: Vec<(&str, Vec<usize>, &str)> = vec![
            ("x", vec![b, ch], "3 dimensions"),
            ("weight", vec![ch + 1, w], "[3, 4] (c, W)"),
            ("weight", vec![ch * w], "2 dimensions (c, W)"),
            ("bias", vec![ch + 1], "[3] (c)"),
            ("initial_states", vec![b, ch, w], "[2, 3, 3] (b, c, W-1)"),
            (
                "initial_states",
                vec![b, ch + 1, w - 1],
                "[2, 3, 3] (b, c, W-1)",
            ),
        ];
        for (arg, dims, expected) in cases {
            let data = buf(&dims);
            let t = Tensor::new(&data[..], Shape::from_slice(&dims, "test").unwrap());
            let mut args = c.args();
            match arg {
                "x" => args.x = t,
                "weight" => args.weight = t,
                "bias" => args.bias = Some(t),
                "initial_states" => args.initial_states = Some(t),
                _ => unreachable!(),
            }
            let err = conv_err(&args, &c);
            assert_error(
                &err,
                CONV,
                arg,
                Kind::Shape,
                &[&t.shape.to_string(), expected],
            );
        }
    }
}

#[test]
fn conv_zero_dimensions_and_zero_width() {
    let empty: Vec<f32> = Vec::new();
    for layout in [ConvLayout::ChannelFirst, ConvLayout::ChannelLast] {
        let c = conv_case(layout);
        let names = match layout {
            ConvLayout::ChannelFirst => ["b", "c", "L"],
            ConvLayout::ChannelLast => ["b", "L", "c"],
        };
        for k in 0..3 {
            let mut dims = c.x_shape();
            dims[k] = 0;
            let mut args = c.args();
            args.x = Tensor::new(&empty, dims);
            let err = conv_err(&args, &c);
            assert_error(
                &err,
                CONV,
                "x",
                Kind::Zero(names[k]),
                &[&Shape::new(dims).to_string()],
            );
        }
        // W = 0.
        let mut args = c.args();
        args.weight = Tensor::new(&empty, [3, 0]);
        args.initial_states = None;
        let err = conv_err(&args, &c);
        assert_error(&err, CONV, "weight", Kind::Zero("W"), &["[3, 0]"]);
    }
}

#[test]
fn conv_wrong_buffer_lengths() {
    let c = conv_case(ConvLayout::ChannelFirst);
    for arg in ["x", "weight", "bias", "initial_states"] {
        let mut args = c.args();
        let shrink = |t: &mut Tensor<'_, f32>| t.data = &t.data[..t.data.len() - 1];
        match arg {
            "x" => shrink(&mut args.x),
            "weight" => shrink(&mut args.weight),
            "bias" => shrink(args.bias.as_mut().unwrap()),
            "initial_states" => shrink(args.initial_states.as_mut().unwrap()),
            _ => unreachable!(),
        }
        assert_error(&conv_err(&args, &c), CONV, arg, Kind::Buffer, &["elements"]);
    }
    let args = c.args();
    for (out_len, fin_len, arg) in [(29, 18, "out"), (30, 17, "final_states")] {
        let (mut out, mut fin) = (vec![SENTINEL; out_len], vec![SENTINEL; fin_len]);
        let err = backend()
            .causal_conv1d(&args, &mut out, Some(&mut fin))
            .unwrap_err();
        assert!(untouched(&out) && untouched(&fin));
        assert_error(&err, CONV, arg, Kind::Buffer, &["elements"]);
    }
    let err = backend()
        .causal_conv1d_backward(&args, &c.dout[..29], None)
        .unwrap_err();
    assert_error(
        &err,
        CONV,
        "dout",
        Kind::Buffer,
        &["29 elements", "[2, 3, 5] needs 30"],
    );
    let dfs = vec![0.0f32; 19];
    let err = backend()
        .causal_conv1d_backward(&args, &c.dout, Some(&dfs))
        .unwrap_err();
    assert_error(
        &err,
        CONV,
        "dfinal_states",
        Kind::Buffer,
        &["19 elements", "[2, 3, 3] needs 18"],
    );
}

// ---------------------------------------------------------------------------------
// selective_state_update
// ---------------------------------------------------------------------------------

const UPDATE: &str = "selective_state_update";

#[test]
fn state_update_mismatched_dimensions_mamba1() {
    let c = mamba1_case();
    let (b, d, n) = (2usize, 4usize, 3usize);
    let cases: Vec<(&str, Vec<usize>, &str)> = vec![
        ("x", vec![b, d, 1, 1], "(b, d) or (b, h, p)"),
        ("dt", vec![b, d + 1], "[2, 4] (b, d)"),
        ("A", vec![d + 1, n], "[4, 3] (d, N)"),
        ("A", vec![d], "(d, N)"),
        ("B", vec![b, 2, n + 1], "[2, 2, 3] (b, g, N)"),
        ("B", vec![b * n], "(b, N) or (b, g, N)"),
        ("C", vec![b, n], "[2, 2, 3] (b, g, N)"),
        ("D", vec![d + 1], "[4] (d)"),
        ("z", vec![b + 1, d], "[2, 4] (b, d)"),
        ("dt_bias", vec![d, 1], "[4] (d)"),
    ];
    update_mismatch(&c, cases);
}

#[test]
fn state_update_mismatched_dimensions_multihead() {
    let c = multihead_case();
    let (b, h, p, n) = (2usize, 4usize, 2usize, 3usize);
    let cases: Vec<(&str, Vec<usize>, &str)> = vec![
        ("dt", vec![b, h], "[2, 4, 2] (b, h, p)"),
        ("A", vec![h, n], "[4, 2, 3] (h, p, N)"),
        ("A", vec![h, p + 1, n], "[4, 2, 3] (h, p, N)"),
        ("B", vec![b, n], "(b, g, N)"),
        ("B", vec![b + 1, 2, n], "[2, 2, 3] (b, g, N)"),
        ("C", vec![b, 2, n - 1], "[2, 2, 3] (b, g, N)"),
        ("D", vec![h], "[4, 2] (h, p)"),
        ("z", vec![b, h, p + 1], "[2, 4, 2] (b, h, p)"),
        ("dt_bias", vec![h], "[4, 2] (h, p)"),
    ];
    update_mismatch(&c, cases);
}

fn update_mismatch(c: &StateUpdateCase, cases: Vec<(&str, Vec<usize>, &str)>) {
    for (arg, dims, expected) in cases {
        let data = buf(&dims);
        let t = Tensor::new(&data[..], Shape::from_slice(&dims, "test").unwrap());
        let mut args = c.args();
        match arg {
            "x" => args.x = t,
            "dt" => args.dt = t,
            "A" => args.a = t,
            "B" => args.b = t,
            "C" => args.c = t,
            "D" => args.d = Some(t),
            "z" => args.z = Some(t),
            "dt_bias" => args.dt_bias = Some(t),
            _ => unreachable!(),
        }
        let err = update_err(&args, c.state.len(), c.x.len());
        assert_error(
            &err,
            UPDATE,
            arg,
            Kind::Shape,
            &[&t.shape.to_string(), expected],
        );
    }
}

#[test]
fn state_update_zero_dimensions() {
    let empty: Vec<f32> = Vec::new();
    let c = mamba1_case();
    for (dims, dim) in [([0, 4], "b"), ([2, 0], "d")] {
        let mut args = c.args();
        args.x = Tensor::new(&empty, dims);
        let err = update_err(&args, c.state.len(), c.x.len());
        assert_error(
            &err,
            UPDATE,
            "x",
            Kind::Zero(dim),
            &[&Shape::new(dims).to_string()],
        );
    }
    let c = multihead_case();
    for (dims, dim) in [([0, 4, 2], "b"), ([2, 0, 2], "h"), ([2, 4, 0], "p")] {
        let mut args = c.args();
        args.x = Tensor::new(&empty, dims);
        let err = update_err(&args, c.state.len(), c.x.len());
        assert_error(
            &err,
            UPDATE,
            "x",
            Kind::Zero(dim),
            &[&Shape::new(dims).to_string()],
        );
    }
    // N = 0 (A, B and C agree on it).
    let mut args = c.args();
    args.a = Tensor::new(&empty, [4, 2, 0]);
    args.b = Tensor::new(&empty, [2, 2, 0]);
    args.c = Tensor::new(&empty, [2, 2, 0]);
    let err = update_err(&args, 0, c.x.len());
    assert_error(&err, UPDATE, "A", Kind::Zero("N"), &["[4, 2, 0]"]);
    // g = 0.
    let mut args = c.args();
    args.b = Tensor::new(&empty, [2, 0, 3]);
    let err = update_err(&args, c.state.len(), c.x.len());
    assert_error(&err, UPDATE, "B", Kind::Zero("g"), &["[2, 0, 3]"]);
}

/// Mamba-1 with `B`, `C` of shape (b, N): the messages name those dimensions.
#[test]
fn state_update_mamba1_ungrouped_names() {
    let c = update_case(UpdateLayout::Mamba1 {
        dim: 4,
        groups: None,
    });
    let data = buf(&[2, 4]);
    let mut args = c.args();
    args.c = Tensor::new(&data, [2, 4]);
    let err = update_err(&args, c.state.len(), c.x.len());
    assert_error(&err, UPDATE, "C", Kind::Shape, &["[2, 4]", "[2, 3] (b, N)"]);
    // N = 0 is the dimension N of A (d, N).
    let empty: Vec<f32> = Vec::new();
    let mut args = c.args();
    args.a = Tensor::new(&empty, [4, 0]);
    args.b = Tensor::new(&empty, [2, 0]);
    args.c = Tensor::new(&empty, [2, 0]);
    let err = update_err(&args, 0, c.x.len());
    assert_error(&err, UPDATE, "A", Kind::Zero("N"), &["[4, 0]"]);
}

#[test]
fn state_update_heads_not_divisible_by_groups() {
    for c in [mamba1_case(), multihead_case()] {
        let data = buf(&[2, 3, 3]);
        let mut args = c.args();
        args.b = Tensor::new(&data, [2, 3, 3]);
        args.c = Tensor::new(&data, [2, 3, 3]);
        let err = update_err(&args, c.state.len(), c.x.len());
        assert_error(&err, UPDATE, "B", Kind::Divisible, &["= 4", "groups g = 3"]);
    }
}

#[test]
fn state_update_state_and_output_buffers() {
    for c in [mamba1_case(), multihead_case()] {
        let args = c.args();
        let (st, out) = (c.state.len(), c.x.len());
        let state_shape = c.state_shape().to_string();
        // A state buffer too short (or too long) for (b, ..., N).
        for len in [st - 1, st - c.dstate, st + 1] {
            let err = update_err(&args, len, out);
            assert_error(
                &err,
                UPDATE,
                "state",
                Kind::Buffer,
                &[&format!("{len} elements"), &state_shape],
            );
        }
        let err = update_err(&args, st, out - 1);
        assert_error(
            &err,
            UPDATE,
            "out",
            Kind::Buffer,
            &[&format!("{} elements", out - 1)],
        );
        // Inputs with short buffers.
        for arg in ["x", "dt", "A", "B", "C", "D", "z", "dt_bias"] {
            let mut args = c.args();
            let shrink = |t: &mut Tensor<'_, f32>| t.data = &t.data[..t.data.len() - 1];
            match arg {
                "x" => shrink(&mut args.x),
                "dt" => shrink(&mut args.dt),
                "A" => shrink(&mut args.a),
                "B" => shrink(&mut args.b),
                "C" => shrink(&mut args.c),
                "D" => shrink(args.d.as_mut().unwrap()),
                "z" => shrink(args.z.as_mut().unwrap()),
                "dt_bias" => shrink(args.dt_bias.as_mut().unwrap()),
                _ => unreachable!(),
            }
            let err = update_err(&args, st, out);
            assert_error(&err, UPDATE, arg, Kind::Buffer, &["elements"]);
        }
    }
}

#[test]
fn state_update_invalid_dt_limit() {
    let c = multihead_case();
    for limit in [(0.3, 0.2), (f32::NAN, f32::NAN)] {
        let mut args = c.args();
        args.dt_limit = Some(limit);
        let err = update_err(&args, c.state.len(), c.x.len());
        assert_error(&err, UPDATE, "dt_limit", Kind::Invalid, &["lo <= hi"]);
    }
}

// ---------------------------------------------------------------------------------
// causal_conv1d_update
// ---------------------------------------------------------------------------------

const CONV_UPDATE: &str = "causal_conv1d_update";

#[test]
fn conv_update_mismatched_dimensions() {
    let c = conv_update_case();
    let (st, out) = (c.conv_state.len(), c.x.len());
    let state_shape = Shape::new(c.state_shape());
    let cases: Vec<(&str, Vec<usize>, &str)> = vec![
        ("x", vec![2, 3, 2, 1], "(b, c) or (b, c, Ln)"),
        ("x", vec![6], "(b, c) or (b, c, Ln)"),
        ("weight", vec![4, 4], "[3, 4] (c, W)"),
        ("weight", vec![12], "2 dimensions (c, W)"),
        ("bias", vec![2], "[3] (c)"),
    ];
    for (arg, dims, expected) in cases {
        let data = buf(&dims);
        let t = Tensor::new(&data[..], Shape::from_slice(&dims, "test").unwrap());
        let mut args = c.args();
        match arg {
            "x" => args.x = t,
            "weight" => args.weight = t,
            "bias" => args.bias = Some(t),
            _ => unreachable!(),
        }
        let err = conv_update_err(&args, state_shape, st, out);
        assert_error(
            &err,
            CONV_UPDATE,
            arg,
            Kind::Shape,
            &[&t.shape.to_string(), expected],
        );
    }
    // The state's batch or channels differ, or its rank.
    for dims in [vec![3, 3, 5], vec![2, 4, 5], vec![2, 15]] {
        let shape = Shape::from_slice(&dims, "test").unwrap();
        let err = conv_update_err(&c.args(), shape, shape.numel(), out);
        assert_error(
            &err,
            CONV_UPDATE,
            "conv_state",
            Kind::Shape,
            &[&shape.to_string()],
        );
    }
}

#[test]
fn conv_update_zero_dimensions_and_zero_width() {
    let empty: Vec<f32> = Vec::new();
    let c = conv_update_case();
    for (dims, dim) in [([0, 3, 2], "b"), ([2, 0, 2], "c"), ([2, 3, 0], "Ln")] {
        let mut args = c.args();
        args.x = Tensor::new(&empty, dims);
        let err = conv_update_err(&args, Shape::new(c.state_shape()), c.conv_state.len(), 0);
        assert_error(
            &err,
            CONV_UPDATE,
            "x",
            Kind::Zero(dim),
            &[&Shape::new(dims).to_string()],
        );
    }
    let mut args = c.args();
    args.weight = Tensor::new(&empty, [3, 0]);
    let err = conv_update_err(
        &args,
        Shape::new(c.state_shape()),
        c.conv_state.len(),
        c.x.len(),
    );
    assert_error(&err, CONV_UPDATE, "weight", Kind::Zero("W"), &["[3, 0]"]);
}

#[test]
fn conv_update_state_too_short() {
    let c = conv_update_case();
    // W = 4 needs S >= 3.
    for s in [0usize, 1, 2] {
        let shape = Shape::new([2, 3, s]);
        let err = conv_update_err(&c.args(), shape, 6 * s, c.x.len());
        assert_error(
            &err,
            CONV_UPDATE,
            "conv_state",
            Kind::Invalid,
            &[
                &format!("S = {s}"),
                "W = 4",
                "S >= W-1 = 3",
                &shape.to_string(),
            ],
        );
    }
    // S = W-1 exactly is enough, and W = 1 works with S = 0.
    let mut state = vec![0.0f32; 18];
    let mut out = vec![0.0f32; c.x.len()];
    backend()
        .causal_conv1d_update(&c.args(), TensorMut::new(&mut state, [2, 3, 3]), &mut out)
        .unwrap();
    let w1 = vec![1.0f32; 3];
    let args = CausalConv1dUpdateArgs::new(Tensor::new(&c.x, [2, 3, 2]), Tensor::new(&w1, [3, 1]));
    let mut no_state: [f32; 0] = [];
    backend()
        .causal_conv1d_update(&args, TensorMut::new(&mut no_state, [2, 3, 0]), &mut out)
        .unwrap();
    assert_eq!(out, c.x);
}

#[test]
fn conv_update_wrong_buffer_lengths() {
    let c = conv_update_case();
    let shape = Shape::new(c.state_shape());
    let (st, out) = (c.conv_state.len(), c.x.len());
    let err = conv_update_err(&c.args(), shape, st - 1, out);
    assert_error(
        &err,
        CONV_UPDATE,
        "conv_state",
        Kind::Buffer,
        &[&format!("{} elements", st - 1), "[2, 3, 5]"],
    );
    let err = conv_update_err(&c.args(), shape, st, out + 1);
    assert_error(
        &err,
        CONV_UPDATE,
        "out",
        Kind::Buffer,
        &[&format!("{} elements", out + 1), "[2, 3, 2]"],
    );
    for arg in ["x", "weight", "bias"] {
        let mut args = c.args();
        let shrink = |t: &mut Tensor<'_, f32>| t.data = &t.data[..t.data.len() - 1];
        match arg {
            "x" => shrink(&mut args.x),
            "weight" => shrink(&mut args.weight),
            "bias" => shrink(args.bias.as_mut().unwrap()),
            _ => unreachable!(),
        }
        let err = conv_update_err(&args, shape, st, out);
        assert_error(&err, CONV_UPDATE, arg, Kind::Buffer, &["elements"]);
    }
}

// ---------------------------------------------------------------------------------
// No panics on arbitrary shapes
// ---------------------------------------------------------------------------------

/// Any dimensions (rank 0 to 5, sizes 0 to 4) and any buffer length near theirs.
fn any_tensor() -> impl Strategy<Value = (Vec<usize>, isize)> {
    (prop::collection::vec(0..=4usize, 0..=5), -2..=2isize)
}

fn data_for(dims: &[usize], delta: isize) -> Vec<f32> {
    let n = dims.iter().product::<usize>() as isize + delta;
    vec![0.25; n.max(0) as usize]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6572_726f_7273),
        ..ProptestConfig::default()
    })]

    /// One argument of each operation replaced by a tensor of arbitrary shape and
    /// buffer length: the call returns (Ok if it happens to be consistent, or an error)
    /// and never panics; on error, nothing was written.
    #[test]
    fn arbitrary_shapes_never_panic(which in 0..9usize, (dims, delta) in any_tensor(), out_delta in -1..=1isize) {
        let data = data_for(&dims, delta);
        let t = Tensor::new(&data[..], Shape::from_slice(&dims, "t").unwrap());
        let grow = |n: usize| (n as isize + out_delta).max(0) as usize;

        let c = scan_case();
        let mut a = c.args();
        match which { 0 => a.u = t, 1 => a.delta = t, 2 => a.a = t, 3 => a.b = t, 4 => a.c = t,
            5 => a.d = Some(t), 6 => a.z = Some(t), 7 => a.delta_bias = Some(t), _ => a.initial_state = Some(t) }
        let (mut out, mut last) = (vec![SENTINEL; grow(c.u.len())], vec![SENTINEL; 24]);
        if backend().selective_scan(&a, &mut out, Some(&mut last)).is_err() {
            prop_assert!(untouched(&out) && untouched(&last));
        }
        let _ = backend().selective_scan_backward(&a, &c.dout, c.dlast_state.as_deref());

        let c = ssd_case();
        let mut a = c.args();
        match which { 0 => a.x = t, 1 => a.dt = t, 2 => a.a = t, 3 => a.b = t, 4 => a.c = t,
            5 => a.d = Some(t), 6 => a.z = Some(t), 7 => a.dt_bias = Some(t), _ => a.initial_states = Some(t) }
        let fin_len: usize = c.state_shape().iter().product();
        let (mut out, mut fin) = (vec![SENTINEL; grow(c.x.len())], vec![SENTINEL; fin_len]);
        if backend().ssd(&a, &mut out, Some(&mut fin)).is_err() {
            prop_assert!(untouched(&out) && untouched(&fin));
        }
        let _ = backend().ssd_backward(&a, &c.dout, c.dfinal_states.as_deref());

        let c = conv_case(if which % 2 == 0 { ConvLayout::ChannelFirst } else { ConvLayout::ChannelLast });
        let mut a = c.args();
        match which % 4 { 0 => a.x = t, 1 => a.weight = t, 2 => a.bias = Some(t), _ => a.initial_states = Some(t) }
        let (mut out, mut fin) = (vec![SENTINEL; grow(c.x.len())], vec![SENTINEL; 18]);
        if backend().causal_conv1d(&a, &mut out, Some(&mut fin)).is_err() {
            prop_assert!(untouched(&out) && untouched(&fin));
        }
        let _ = backend().causal_conv1d_backward(&a, &c.dout, c.dfinal_states.as_deref());

        for c in [mamba1_case(), multihead_case()] {
            let mut a = c.args();
            match which { 0 => a.x = t, 1 => a.dt = t, 2 => a.a = t, 3 => a.b = t, 4 => a.c = t,
                5 => a.d = Some(t), 6 => a.z = Some(t), _ => a.dt_bias = Some(t) }
            let (mut state, mut out) = (vec![SENTINEL; grow(c.state.len())], vec![SENTINEL; c.x.len()]);
            if backend().selective_state_update(&a, &mut state, &mut out).is_err() {
                prop_assert!(untouched(&state) && untouched(&out));
            }
        }

        let c = conv_update_case();
        let mut a = c.args();
        let mut state_dims = vec![2usize, 3, 5];
        match which % 4 { 0 => a.x = t, 1 => a.weight = t, 2 => a.bias = Some(t), _ => state_dims = dims.clone() }
        let state_shape = Shape::from_slice(&state_dims, "s").unwrap();
        let mut state = vec![SENTINEL; (state_shape.numel() as isize + delta).max(0) as usize];
        let mut out = vec![SENTINEL; grow(c.x.len())];
        if backend().causal_conv1d_update(&a, TensorMut::new(&mut state, state_shape), &mut out).is_err() {
            prop_assert!(untouched(&state) && untouched(&out));
        }
    }
}

/// Other storage types go through the same validation.
#[test]
fn errors_are_the_same_for_every_storage_type() {
    let c = ssd_case();
    let c16 = c.cast::<mamba_core::bf16, f32>();
    let mut args = c16.args();
    args.dt_limit = Some((1.0, 0.0));
    let mut out = vec![mamba_core::bf16::ZERO; c16.x.len()];
    let err = backend().ssd(&args, &mut out, None).unwrap_err();
    assert_error(&err, SSD, "dt_limit", Kind::Invalid, &["(1, 0)"]);
    let c64 = c.cast::<f64, f64>();
    let mut args = c64.args().with_chunk_size(0);
    args.seq_idx = None;
    let mut out = vec![0.0f64; c64.x.len()];
    let err = Reference::<f64>::oracle()
        .ssd(&args, &mut out, None)
        .unwrap_err();
    assert_error(&err, SSD, "chunk_size", Kind::Invalid, &[]);
}
