//! `selective_scan_backward_into` / `ssd_backward_into` / `causal_conv1d_backward_into`
//! give the bits of the by-value backward whatever the vectors passed in held (the shared
//! checks of `mamba_core::testing`: vectors too long and full of NaN, optional fields in
//! the wrong state, the previous call's vectors refilled with NaN, empty ones), in each
//! storage type, on every instruction set, on the row-parallel and the time-chunked
//! paths; the scan reuses the caller's allocations; a call with bad input leaves `grads`
//! alone.

mod common;

use common::backends;
use mamba_core::testing::{
    check_causal_conv1d_backward_into, check_selective_scan_backward_into, check_ssd_backward_into,
    BcKind, ConvCase, ConvConfig, DShape, Rng, ScanCase, ScanConfig, SsdCase, SsdConfig,
};
use mamba_core::{bf16, f16, Kernels, SelectiveScanGrads, Tensor};
use mamba_cpu_simd::{CpuSimd, TimeChunking};

fn scan_configs() -> Vec<ScanConfig> {
    let all = ScanConfig {
        b_kind: BcKind::Grouped(3),
        c_kind: BcKind::Varying,
        ..ScanConfig::new(2, 6, 150, 16).all_options()
    };
    let none = ScanConfig {
        b_kind: BcKind::Shared,
        c_kind: BcKind::Shared,
        ..ScanConfig::new(2, 6, 150, 5)
    };
    vec![all, none]
}

fn ssd_configs() -> Vec<SsdConfig> {
    let all = SsdConfig {
        d: Some(DShape::PerChannel),
        chunk_size: 64,
        ..SsdConfig::new(2, 130, 4, 8, 2, 16).all_options()
    };
    let none = SsdConfig::new(2, 130, 4, 8, 1, 7);
    let per_head = SsdConfig {
        chunk_size: 64,
        ..SsdConfig::new(2, 130, 4, 8, 2, 16).all_options()
    };
    vec![all, none, per_head]
}

/// Every option table, storage type, instruction set and chunking, bit for bit.
#[test]
fn backward_into_matches_the_backward_bit_for_bit() {
    let mut rng = Rng::new(40);
    let scans: Vec<_> = scan_configs()
        .iter()
        .map(|c| ScanCase::random(c, &mut rng))
        .collect();
    let ssds: Vec<_> = ssd_configs()
        .iter()
        .map(|c| SsdCase::random(c, &mut rng))
        .collect();
    for chunking in [TimeChunking::Auto, TimeChunking::Fixed(37)] {
        for be in backends(2, chunking) {
            let what = |e: String| format!("{be:?}: {e}");
            for case in &scans {
                check_selective_scan_backward_into::<f32, _>(&be, case, None)
                    .map_err(what)
                    .unwrap();
                check_selective_scan_backward_into::<bf16, _>(&be, case, None)
                    .map_err(what)
                    .unwrap();
                check_selective_scan_backward_into::<f16, _>(&be, case, None)
                    .map_err(what)
                    .unwrap();
            }
            for case in &ssds {
                check_ssd_backward_into::<f32, _>(&be, case, None)
                    .map_err(what)
                    .unwrap();
                check_ssd_backward_into::<bf16, _>(&be, case, None)
                    .map_err(what)
                    .unwrap();
                check_ssd_backward_into::<f16, _>(&be, case, None)
                    .map_err(what)
                    .unwrap();
            }
        }
    }
}

/// Random shapes and options (the conv takes the trait's default `_into`), on one and two
/// threads.
#[test]
fn backward_into_random_cases() {
    let mut rng = Rng::new(77);
    for threads in [1, 2] {
        let be = CpuSimd::with_threads(threads);
        for _ in 0..4 {
            let conv = ConvCase::random(&ConvConfig::random(&mut rng), &mut rng);
            check_causal_conv1d_backward_into::<f32, _>(&be, &conv, None).unwrap();
            check_causal_conv1d_backward_into::<bf16, _>(&be, &conv, None).unwrap();
            let scan = ScanCase::random(&ScanConfig::random(&mut rng), &mut rng);
            check_selective_scan_backward_into::<f32, _>(&be, &scan, None).unwrap();
            check_selective_scan_backward_into::<f16, _>(&be, &scan, None).unwrap();
            let ssd = SsdCase::random(&SsdConfig::random(&mut rng), &mut rng);
            check_ssd_backward_into::<f32, _>(&be, &ssd, None).unwrap();
            check_ssd_backward_into::<bf16, _>(&be, &ssd, None).unwrap();
        }
    }
}

/// A second call of the same shape writes the scan's gradients into the first call's
/// allocations. (The SSD and the conv take the trait's default, which moves the by-value
/// result in.)
#[test]
fn backward_into_reuses_the_callers_vectors() {
    let mut rng = Rng::new(5);
    let be = CpuSimd::with_threads(2);
    let scan = ScanCase::random(&scan_configs()[0], &mut rng);
    let args = scan.args();
    let mut g = SelectiveScanGrads::default();
    be.selective_scan_backward_into(&args, &scan.dout, scan.dlast_state.as_deref(), &mut g)
        .unwrap();
    let ptrs = (
        g.u.as_ptr(),
        g.delta.as_ptr(),
        g.b.as_ptr(),
        g.z.as_ref().unwrap().as_ptr(),
    );
    be.selective_scan_backward_into(&args, &scan.dout, scan.dlast_state.as_deref(), &mut g)
        .unwrap();
    let again = (
        g.u.as_ptr(),
        g.delta.as_ptr(),
        g.b.as_ptr(),
        g.z.as_ref().unwrap().as_ptr(),
    );
    assert_eq!(
        ptrs, again,
        "selective_scan: a gradient vector was reallocated"
    );
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
        assert_eq!(grads, want);
    }
}
