//! Bad arguments give the same typed errors as the reference backend, before any
//! work, for every storage type.

use mamba_core::{
    Activation, Backend, CausalConv1dArgs, CausalConv1dUpdateArgs, Error, Kernels, Reference,
    SelectiveScanArgs, SelectiveStateUpdateArgs, SsdArgs, Tensor, TensorMut,
};
use mamba_cpu_simd::CpuSimd;

fn same<R: std::fmt::Debug>(what: &str, got: Result<R, Error>, expected: Result<R, Error>) {
    let got = got.expect_err(what);
    let expected = expected.expect_err(what);
    assert_eq!(got, expected, "{what}");
    eprintln!("{what}: {got}");
}

#[test]
fn scan_errors_match_the_reference() {
    let be = CpuSimd::with_threads(2);
    let r = Reference::new();
    let v = vec![0.5f32; 64];
    let args = SelectiveScanArgs::new(
        Tensor::new(&v[..12], [1, 3, 4]),
        Tensor::new(&v[..12], [1, 3, 4]),
        Tensor::new(&v[..6], [3, 2]),
        Tensor::new(&v[..8], [1, 2, 4]),
        Tensor::new(&v[..6], [3, 2]),
    );
    let mut out = vec![0.0f32; 12];
    let bad_delta = SelectiveScanArgs {
        delta: Tensor::new(&v[..8], [1, 2, 4]),
        ..args
    };
    same(
        "delta shape",
        be.selective_scan(&bad_delta, &mut out, None),
        r.selective_scan(&bad_delta, &mut out, None),
    );
    let bad_groups = SelectiveScanArgs {
        b: Tensor::new(&v[..16], [1, 2, 2, 4]),
        ..args
    };
    same(
        "groups",
        be.selective_scan(&bad_groups, &mut out, None),
        r.selective_scan(&bad_groups, &mut out, None),
    );
    let mut short = vec![0.0f32; 11];
    same(
        "out length",
        be.selective_scan(&args, &mut short, None),
        r.selective_scan(&args, &mut short, None),
    );
    let mut last = vec![0.0f32; 5];
    same(
        "last_state length",
        be.selective_scan(&args, &mut out, Some(&mut last)),
        r.selective_scan(&args, &mut out, Some(&mut last)),
    );
    same(
        "dout length",
        be.selective_scan_backward(&args, &v[..5], None),
        r.selective_scan_backward(&args, &v[..5], None),
    );
    let zero_l = SelectiveScanArgs {
        u: Tensor::new(&v[..0], [1, 3, 0]),
        ..args
    };
    same(
        "zero L",
        be.selective_scan(&zero_l, &mut out, None),
        r.selective_scan(&zero_l, &mut out, None),
    );
}

#[test]
fn ssd_errors_match_the_reference() {
    let be = CpuSimd::with_threads(2);
    let r = Reference::new();
    let v = vec![0.25f32; 64];
    let seq = [0i32, 1, 0];
    let args = SsdArgs::new(
        Tensor::new(&v[..12], [1, 3, 2, 2]),
        Tensor::new(&v[..6], [1, 3, 2]),
        Tensor::new(&v[..2], [2]),
        Tensor::new(&v[..6], [1, 3, 1, 2]),
        Tensor::new(&v[..6], [1, 3, 1, 2]),
    );
    let mut out = vec![0.0f32; 12];
    let bad_seq = args.with_seq_idx(Tensor::new(&seq, [1, 3]));
    same(
        "seq_idx",
        be.ssd(&bad_seq, &mut out, None),
        r.ssd(&bad_seq, &mut out, None),
    );
    let bad_limit = args.with_dt_limit(1.0, 0.5);
    same(
        "dt_limit",
        be.ssd(&bad_limit, &mut out, None),
        r.ssd(&bad_limit, &mut out, None),
    );
    let bad_chunk = args.with_chunk_size(0);
    same(
        "chunk_size",
        be.ssd(&bad_chunk, &mut out, None),
        r.ssd(&bad_chunk, &mut out, None),
    );
    let bad_heads = SsdArgs {
        b: Tensor::new(&v[..12], [1, 3, 4, 1]),
        c: Tensor::new(&v[..12], [1, 3, 4, 1]),
        ..args
    };
    same(
        "heads % groups",
        be.ssd(&bad_heads, &mut out, None),
        r.ssd(&bad_heads, &mut out, None),
    );
    same(
        "dfinal length",
        be.ssd_backward(&args, &v[..12], Some(&v[..3])),
        r.ssd_backward(&args, &v[..12], Some(&v[..3])),
    );
}

#[test]
fn conv_and_decode_errors_match_the_reference() {
    let be = CpuSimd::with_threads(2);
    let r = Reference::new();
    let v = vec![0.5f32; 64];
    let args = CausalConv1dArgs::new(
        Tensor::new(&v[..12], [1, 3, 4]),
        Tensor::new(&v[..6], [2, 3]),
    );
    let mut out = vec![0.0f32; 12];
    same(
        "weight",
        be.causal_conv1d(&args, &mut out, None),
        r.causal_conv1d(&args, &mut out, None),
    );
    let ok = CausalConv1dArgs::new(
        Tensor::new(&v[..12], [1, 3, 4]),
        Tensor::new(&v[..6], [3, 2]),
    )
    .with_activation(Activation::Silu);
    let bad_init = ok.with_initial_states(Tensor::new(&v[..6], [1, 3, 2]));
    same(
        "initial_states",
        be.causal_conv1d(&bad_init, &mut out, None),
        r.causal_conv1d(&bad_init, &mut out, None),
    );

    let upd =
        CausalConv1dUpdateArgs::new(Tensor::new(&v[..3], [1, 3]), Tensor::new(&v[..12], [3, 4]));
    let mut st1 = vec![0.0f32; 3];
    let mut st2 = vec![0.0f32; 3];
    let mut o = vec![0.0f32; 3];
    same(
        "conv_state too short",
        be.causal_conv1d_update(&upd, TensorMut::new(&mut st1, [1, 3, 1]), &mut o),
        r.causal_conv1d_update(&upd, TensorMut::new(&mut st2, [1, 3, 1]), &mut o),
    );

    let su = SelectiveStateUpdateArgs::new(
        Tensor::new(&v[..3], [1, 3]),
        Tensor::new(&v[..3], [1, 3]),
        Tensor::new(&v[..6], [3, 2]),
        Tensor::new(&v[..3], [1, 3]),
        Tensor::new(&v[..2], [1, 2]),
    );
    let mut state = vec![0.0f32; 6];
    same(
        "B shape",
        be.selective_state_update(&su, &mut state, &mut o),
        r.selective_state_update(&su, &mut state, &mut o),
    );
}

#[test]
fn names_and_details() {
    let be = CpuSimd::with_threads(2);
    assert_eq!(be.name(), "cpu-simd");
    let detail = be.detail();
    assert!(detail.ends_with(", 2 threads"), "{detail}");
    assert!(
        detail.starts_with(be.simd_level().description()),
        "{detail}"
    );
    assert_eq!(
        CpuSimd::with_threads(1).detail().split(", ").nth(1),
        Some("1 thread")
    );
    assert!(CpuSimd::new().threads() >= 1);
}
