//! `selective_scan_backward_into` / `ssd_backward_into` give the bits of the by-value
//! backward whatever the buffers passed in held: vectors too long and full of NaN,
//! optional fields in the wrong state, the previous call's exact buffers refilled
//! with NaN (so every gradient the kernels add into must be cleared first, and every
//! one they overwrite must be overwritten in full), in each storage type, on the
//! row-parallel and the time-chunked paths. A call with bad input leaves `grads` alone.

mod common;

use common::{backends, Layout, ScanCase, ScanShape, Skip, SsdCase, SsdShape};
use mamba_core::{bf16, f16, Element, Kernels, SelectiveScanGrads, SsdGrads, Tensor};
use mamba_cpu_simd::{CpuSimd, TimeChunking};

/// The bits of every value (as `f32`, which every storage type widens to exactly).
fn bits<T: Element>(v: &[T]) -> Vec<u32> {
    v.iter().map(|x| x.to_f32().to_bits()).collect()
}

fn opt_bits<T: Element>(v: &Option<Vec<T>>) -> Option<Vec<u32>> {
    v.as_deref().map(bits)
}

/// A vector longer than `v`, all NaN.
fn junk<T: Element>(v: &[T]) -> Vec<T> {
    vec![T::from_f32(f32::NAN); v.len() + 17]
}

/// `Some(junk)` where `v` is `None` and `None` where it is `Some`.
fn flipped<T: Element>(v: &Option<Vec<T>>) -> Option<Vec<T>> {
    match v {
        Some(_) => None,
        None => Some(vec![T::from_f32(f32::NAN); 5]),
    }
}

fn nan_fill<T: Element>(v: &mut [T]) {
    v.fill(T::from_f32(f32::NAN));
}

fn nan_fill_opt<T: Element>(v: &mut Option<Vec<T>>) {
    if let Some(v) = v {
        nan_fill(v);
    }
}

type ScanBits = [Option<Vec<u32>>; 9];

fn scan_bits<T: Element>(g: &SelectiveScanGrads<T>) -> ScanBits {
    [
        Some(bits(&g.u)),
        Some(bits(&g.delta)),
        Some(bits(&g.a)),
        Some(bits(&g.b)),
        Some(bits(&g.c)),
        opt_bits(&g.d),
        opt_bits(&g.z),
        opt_bits(&g.delta_bias),
        opt_bits(&g.initial_state),
    ]
}

fn ssd_bits<T: Element>(g: &SsdGrads<T>) -> ScanBits {
    [
        Some(bits(&g.x)),
        Some(bits(&g.dt)),
        Some(bits(&g.a)),
        Some(bits(&g.b)),
        Some(bits(&g.c)),
        opt_bits(&g.d),
        opt_bits(&g.z),
        opt_bits(&g.dt_bias),
        opt_bits(&g.initial_states),
    ]
}

fn scan_shapes() -> Vec<ScanShape> {
    let all = ScanShape {
        batch: 2,
        dim: 6,
        seqlen: 150,
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
    let none = ScanShape {
        b_layout: Layout::Shared,
        c_layout: Layout::Shared,
        d: false,
        z: false,
        bias: false,
        init: false,
        softplus: false,
        dlast: false,
        dstate: 5,
        ..all
    };
    vec![all, none]
}

fn scan_case<T: Element>(be: &(impl Kernels<T> + std::fmt::Debug), case: &ScanCase) {
    let what = format!("{:?} {} on {be:?}", case.shape, core::any::type_name::<T>());
    let want = scan_bits(&case.backward::<T, _>(be));
    // Too-long NaN buffers, the optional fields the other way round.
    let w = case.backward::<T, _>(be);
    let mut grads = SelectiveScanGrads {
        u: junk(&w.u),
        delta: junk(&w.delta),
        a: junk(&w.a),
        b: junk(&w.b),
        c: junk(&w.c),
        d: flipped(&w.d),
        z: flipped(&w.z),
        delta_bias: flipped(&w.delta_bias),
        initial_state: flipped(&w.initial_state),
    };
    case.backward_into(be, &mut grads);
    assert_eq!(scan_bits(&grads), want, "{what}: into junk");
    // The same buffers again, every value NaN.
    for v in [&mut grads.u, &mut grads.delta, &mut grads.b, &mut grads.c] {
        nan_fill(v);
    }
    nan_fill(&mut grads.a);
    nan_fill_opt(&mut grads.d);
    nan_fill_opt(&mut grads.z);
    nan_fill_opt(&mut grads.delta_bias);
    nan_fill_opt(&mut grads.initial_state);
    let ptr = grads.u.as_ptr();
    case.backward_into(be, &mut grads);
    assert_eq!(
        scan_bits(&grads),
        want,
        "{what}: into the last call's buffers"
    );
    assert_eq!(grads.u.as_ptr(), ptr, "{what}: du was reallocated");
    // Empty buffers.
    let mut grads = SelectiveScanGrads::default();
    case.backward_into(be, &mut grads);
    assert_eq!(scan_bits(&grads), want, "{what}: into empty buffers");
}

#[test]
fn scan_backward_into_matches_the_backward_bit_for_bit() {
    for (k, shape) in scan_shapes().into_iter().enumerate() {
        let case = ScanCase::random(shape, 40 + k as u64);
        for chunking in [TimeChunking::Auto, TimeChunking::Fixed(37)] {
            for be in backends(2, chunking) {
                scan_case::<f32>(&be, &case);
                scan_case::<bf16>(&be, &case);
                scan_case::<f16>(&be, &case);
            }
        }
    }
}

fn ssd_shapes() -> Vec<SsdShape> {
    let all = SsdShape {
        batch: 2,
        seqlen: 130,
        nheads: 4,
        headdim: 8,
        ngroups: 2,
        dstate: 16,
        d: Skip::PerChannel,
        z: true,
        bias: true,
        init: true,
        seqs: 2,
        softplus: true,
        limit: None,
        chunk_size: 64,
        dfinal: true,
    };
    let none = SsdShape {
        d: Skip::None,
        z: false,
        bias: false,
        init: false,
        seqs: 1,
        softplus: false,
        dfinal: false,
        ngroups: 1,
        dstate: 7,
        ..all
    };
    let per_head = SsdShape {
        d: Skip::PerHead,
        ..all
    };
    vec![all, none, per_head]
}

fn ssd_case<T: Element>(be: &(impl Kernels<T> + std::fmt::Debug), case: &SsdCase) {
    let what = format!("{:?} {} on {be:?}", case.shape, core::any::type_name::<T>());
    let w = case.backward::<T, _>(be);
    let want = ssd_bits(&w);
    let mut grads = SsdGrads {
        x: junk(&w.x),
        dt: junk(&w.dt),
        a: junk(&w.a),
        b: junk(&w.b),
        c: junk(&w.c),
        d: flipped(&w.d),
        z: flipped(&w.z),
        dt_bias: flipped(&w.dt_bias),
        initial_states: flipped(&w.initial_states),
    };
    case.backward_into(be, &mut grads);
    assert_eq!(ssd_bits(&grads), want, "{what}: into junk");
    for v in [&mut grads.x, &mut grads.dt, &mut grads.b, &mut grads.c] {
        nan_fill(v);
    }
    nan_fill(&mut grads.a);
    nan_fill_opt(&mut grads.d);
    nan_fill_opt(&mut grads.z);
    nan_fill_opt(&mut grads.dt_bias);
    nan_fill_opt(&mut grads.initial_states);
    let ptr = grads.x.as_ptr();
    case.backward_into(be, &mut grads);
    assert_eq!(
        ssd_bits(&grads),
        want,
        "{what}: into the last call's buffers"
    );
    assert_eq!(grads.x.as_ptr(), ptr, "{what}: dx was reallocated");
    let mut grads = SsdGrads::default();
    case.backward_into(be, &mut grads);
    assert_eq!(ssd_bits(&grads), want, "{what}: into empty buffers");
}

#[test]
fn ssd_backward_into_matches_the_backward_bit_for_bit() {
    for (k, shape) in ssd_shapes().into_iter().enumerate() {
        let case = SsdCase::random(shape, 50 + k as u64);
        for chunking in [TimeChunking::Auto, TimeChunking::Fixed(29)] {
            for be in backends(2, chunking) {
                ssd_case::<f32>(&be, &case);
                ssd_case::<bf16>(&be, &case);
                ssd_case::<f16>(&be, &case);
            }
        }
    }
}

/// A wrong `dout` length is an error, and `grads` keeps what it held; so on the
/// reference backend, whose `_into` is the trait's default.
#[test]
fn bad_input_leaves_the_buffers_alone() {
    let (b, d, l, n) = (1, 2, 8, 4);
    let u = vec![0.5f32; b * d * l];
    let delta = vec![0.1f32; b * d * l];
    let a = vec![-1.0f32; d * n];
    let bm = vec![0.3f32; b * n * l];
    let args = mamba_core::SelectiveScanArgs::new(
        Tensor::new(&u, [b, d, l]),
        Tensor::new(&delta, [b, d, l]),
        Tensor::new(&a, [d, n]),
        Tensor::new(&bm, [b, n, l]),
        Tensor::new(&bm, [b, n, l]),
    );
    let short = vec![1.0f32; b * d * l - 1];
    let backends: Vec<Box<dyn Kernels<f32>>> = vec![
        Box::new(CpuSimd::with_threads(1)),
        Box::new(mamba_core::Reference::oracle()),
    ];
    for be in &backends {
        let mut grads = SelectiveScanGrads {
            u: vec![7.0f32; 3],
            d: Some(vec![8.0]),
            ..Default::default()
        };
        let before = grads.clone();
        let err = be.selective_scan_backward_into(&args, &short, None, &mut grads);
        assert!(err.is_err(), "a short dout must be an error");
        assert_eq!(grads, before);
        // And a good call sizes and fills them.
        let full = vec![1.0f32; b * d * l];
        be.selective_scan_backward_into(&args, &full, None, &mut grads)
            .expect("valid");
        let want = be
            .selective_scan_backward(&args, &full, None)
            .expect("valid");
        assert_eq!(scan_bits(&grads), scan_bits(&want));
    }
}

/// The shared checks of `mamba_core::testing` on this backend: the conv (which takes
/// the trait's default `_into`) and random scan / SSD cases, on one and two threads.
#[test]
fn shared_backward_into_checks() {
    use mamba_core::testing::{
        check_causal_conv1d_backward_into, check_selective_scan_backward_into,
        check_ssd_backward_into, ConvCase, ConvConfig, Rng, ScanCase as TScan, ScanConfig,
        SsdCase as TSsd, SsdConfig,
    };
    let mut rng = Rng::new(77);
    for threads in [1, 2] {
        let be = CpuSimd::with_threads(threads);
        for _ in 0..4 {
            let conv = ConvCase::random(&ConvConfig::random(&mut rng), &mut rng);
            check_causal_conv1d_backward_into::<f32, _>(&be, &conv, None).unwrap();
            check_causal_conv1d_backward_into::<bf16, _>(&be, &conv, None).unwrap();
            let scan = TScan::random(&ScanConfig::random(&mut rng), &mut rng);
            check_selective_scan_backward_into::<f32, _>(&be, &scan, None).unwrap();
            check_selective_scan_backward_into::<f16, _>(&be, &scan, None).unwrap();
            let ssd = TSsd::random(&SsdConfig::random(&mut rng), &mut rng);
            check_ssd_backward_into::<f32, _>(&be, &ssd, None).unwrap();
            check_ssd_backward_into::<bf16, _>(&be, &ssd, None).unwrap();
        }
    }
}
