//! Tests of `mamba_core::testing` itself: the generators make valid, reproducible,
//! kink-free cases; `rel_l2` handles the edge cases; and every property check fails
//! on a backend that breaks the property it checks (so a check can fail).
#![cfg(feature = "testing")]

use mamba_core::testing::{
    check_causal_conv1d, check_causal_conv1d_backward_into, check_causal_conv1d_streaming,
    check_conv_update, check_conv_update_vs_conv, check_selective_scan,
    check_selective_scan_backward_into, check_selective_scan_streaming, check_ssd,
    check_ssd_backward_into, check_ssd_chunk_sizes, check_ssd_streaming, check_state_update,
    check_state_update_vs_scan, check_state_update_vs_ssd, conformance, rel_l2, rel_l2_floor,
    CheckResult, ConvCase, ConvConfig, ConvUpdateCase, ConvUpdateConfig, Failure, Rng, ScanCase,
    ScanConfig, SsdCase, SsdConfig, StateUpdateCase, StateUpdateConfig, Tolerance, SSD_CHUNK_SIZES,
};
use mamba_core::{
    bf16, f16, Backend, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs, Error,
    Kernels, Reference, SelectiveScanArgs, SelectiveScanGrads, SelectiveStateUpdateArgs, SsdArgs,
    SsdGrads, TensorMut,
};

#[test]
fn rng_is_deterministic_and_in_range() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    for _ in 0..100 {
        assert_eq!(a.next_u64(), b.next_u64());
    }
    assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    let mut r = Rng::new(3);
    let n = 20_000;
    let (mut sum, mut sq) = (0.0, 0.0);
    for _ in 0..n {
        let u = r.uniform();
        assert!((0.0..1.0).contains(&u));
        let x = r.normal();
        sum += x;
        sq += x * x;
        assert!(r.below(5) < 5);
        let k = r.int(2, 4);
        assert!((2..=4).contains(&k));
        assert_eq!(12 % r.divisor(12), 0);
    }
    let mean = sum / n as f64;
    let var = sq / n as f64 - mean * mean;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "{mean} {var}"
    );
}

#[test]
fn rel_l2_edge_cases() {
    assert_eq!(rel_l2(&[1.0f32, 2.0], &[1.0f64, 2.0]), 0.0);
    let e = rel_l2(&[3.0f32, 0.0], &[4.0f32, 0.0]);
    assert!((e - 0.25).abs() < 1e-12);
    // NaN or Inf anywhere never passes.
    assert_eq!(rel_l2(&[f32::NAN, 1.0], &[1.0f32, 1.0]), f64::INFINITY);
    assert_eq!(rel_l2(&[f32::INFINITY], &[1.0f32]), f64::INFINITY);
    assert_eq!(rel_l2(&[1.0f32], &[f64::NAN]), f64::INFINITY);
    assert_eq!(rel_l2(&[bf16::NAN], &[1.0f32]), f64::INFINITY);
    // Lengths differ.
    assert_eq!(rel_l2(&[1.0f32], &[1.0f32, 1.0]), f64::INFINITY);
    // Expected all zero: the absolute error.
    assert_eq!(rel_l2(&[0.0f32; 3], &[0.0f32; 3]), 0.0);
    assert!((rel_l2(&[3e-7f32, 4e-7], &[0.0f32; 2]) - 5e-7).abs() < 1e-12);
    assert_eq!(rel_l2::<f32, f32>(&[], &[]), 0.0);
    // With a floor, a tensor whose RMS is below it is compared absolutely.
    let tiny = [1e-40f64, -1e-41];
    assert_eq!(rel_l2(&[0.0f32, 0.0], &tiny), 1.0);
    assert!(rel_l2_floor(&[0.0f32, 0.0], &tiny, 0.1) < 1e-38);
    let e = rel_l2_floor(&[1e-3f32, 0.0], &[0.0f32, 0.0], 0.1);
    assert!((e - 1e-3 / (0.1 * 2f64.sqrt())).abs() < 1e-9, "{e}");
    // Above the floor, it is the plain relative error.
    assert_eq!(rel_l2_floor(&[3.0f32, 0.0], &[4.0f32, 0.0], 0.1), 0.25);
    assert_eq!(rel_l2_floor(&[f32::NAN], &[0.0f32], 0.1), f64::INFINITY);
    // Mixed storage types compare in f64.
    let x = [f16::from_f32(0.1), f16::from_f32(-2.0)];
    assert!(rel_l2(&x, &[0.1f64, -2.0]) < 1e-3);
}

#[test]
fn generated_cases_are_valid_reproducible_and_castable() {
    let mut rng = Rng::new(11);
    for _ in 0..300 {
        let seed = rng.next_u64();
        let scan_cfg = ScanConfig::random(&mut rng);
        let scan = ScanCase::random(&scan_cfg, &mut Rng::new(seed));
        assert_eq!(scan, ScanCase::random(&scan_cfg, &mut Rng::new(seed)));
        scan.args().validate().unwrap();
        scan.cast::<bf16, f32>().args().validate().unwrap();
        assert_eq!(scan.cast::<f64, f64>().cast::<f32, f32>(), scan);
        // Slices along L are valid too.
        if scan.seqlen > 1 {
            let half = scan.slice_time(1, scan.seqlen);
            half.args().validate().unwrap();
        }

        let ssd = SsdCase::random(&SsdConfig::random(&mut rng), &mut Rng::new(seed));
        ssd.args().validate().unwrap();
        ssd.cast::<f16, f32>().args().validate().unwrap();
        if let Some(s) = &ssd.seq_idx {
            for row in s.chunks(ssd.seqlen) {
                assert!(row.windows(2).all(|w| w[0] <= w[1]));
            }
        }
        // Steps keep away from the clamp's bounds (the kinks of the step function).
        if let Some((lo, hi)) = ssd.dt_limit {
            for (r, &dt) in ssd.dt.iter().enumerate() {
                let raw = dt as f64
                    + ssd
                        .dt_bias
                        .as_ref()
                        .map_or(0.0, |b| b[r % ssd.nheads] as f64);
                let s = if ssd.dt_softplus && raw <= 20.0 {
                    raw.exp().ln_1p()
                } else {
                    raw
                };
                assert!((s - lo as f64).abs() > 1e-5 && (s - hi as f64).abs() > 1e-5);
            }
        }

        let conv = ConvCase::random(&ConvConfig::random(&mut rng), &mut Rng::new(seed));
        conv.args().validate().unwrap();

        let upd = StateUpdateCase::random(&StateUpdateConfig::random(&mut rng), &mut rng);
        upd.args().validate(upd.state.len(), upd.x.len()).unwrap();

        let cu = ConvUpdateCase::random(&ConvUpdateConfig::random(&mut rng), &mut rng);
        let mut state = cu.conv_state.clone();
        cu.args()
            .validate(&TensorMut::new(&mut state, cu.state_shape()), cu.x.len())
            .unwrap();
    }
}

/// The checks take `&dyn Backend` as well as concrete backends.
#[test]
fn checks_run_on_a_dyn_backend() {
    let boxed: Box<dyn Backend> = Box::new(Reference::new());
    let backend: &dyn Backend = &*boxed;
    let mut rng = Rng::new(5);
    let case = SsdCase::random(&SsdConfig::random(&mut rng).all_options(), &mut rng);
    let report = check_ssd::<f32, dyn Backend>(backend, &case, Tolerance::F32).unwrap();
    assert!(report.passed() && !report.comparisons.is_empty());
    assert!(report.to_string().contains("worst"));
    check_ssd::<bf16, _>(backend, &case, Tolerance::BF16).unwrap();
    let sweep = conformance::<f16, dyn Backend>(backend, 3, 2, Tolerance::F16).unwrap();
    assert!(sweep.unsupported.is_empty() && sweep.reports.len() == 24);
}

// ---------------------------------------------------------------------------------
// A backend with one deliberate fault at a time
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// `out` of the scan is off by a relative 1e-4 at one element.
    ScanOut,
    /// The scan forgets the initial state (streaming breaks).
    ScanIgnoresInitialState,
    /// `d/dA` of the scan is 1% off.
    ScanGradA,
    /// The decode step ignores `z`.
    DecodeIgnoresZ,
    /// The SSD's result depends on `chunk_size`.
    SsdChunkDependent,
    /// The SSD resets to the initial states on a `seq_idx` change (not to zero); modelled
    /// by ignoring `seq_idx`.
    SsdIgnoresSeqIdx,
    /// The convolution's `final_states` are shifted by one column.
    ConvFinalStates,
    /// The convolution decode leaves the state unchanged.
    ConvUpdateKeepsState,
    /// Every SSD call is unsupported.
    SsdUnsupported,
    /// `selective_scan_backward_into` adds dA into what the caller's vector held.
    IntoAccumulates,
    /// `ssd_backward_into` leaves a `d` the call has no gradient for.
    IntoKeepsOptions,
}

#[derive(Debug)]
struct Faulty(Fault);

const R: Reference<f32> = Reference::new();

impl Kernels<f32> for Faulty {
    fn selective_scan(
        &self,
        args: &SelectiveScanArgs<'_, f32>,
        out: &mut [f32],
        last_state: Option<&mut [f32]>,
    ) -> mamba_core::Result<()> {
        let mut args = *args;
        if self.0 == Fault::ScanIgnoresInitialState {
            args.initial_state = None;
        }
        R.selective_scan(&args, out, last_state)?;
        if self.0 == Fault::ScanOut {
            out[0] *= 1.0 + 1e-4;
            out[0] += 1e-4;
        }
        Ok(())
    }
    fn selective_scan_backward(
        &self,
        args: &SelectiveScanArgs<'_, f32>,
        dout: &[f32],
        dlast_state: Option<&[f32]>,
    ) -> mamba_core::Result<SelectiveScanGrads<f32>> {
        let mut g = R.selective_scan_backward(args, dout, dlast_state)?;
        if self.0 == Fault::ScanGradA {
            g.a.iter_mut().for_each(|v| *v *= 1.01);
        }
        Ok(g)
    }
    fn selective_scan_backward_into(
        &self,
        args: &SelectiveScanArgs<'_, f32>,
        dout: &[f32],
        dlast_state: Option<&[f32]>,
        grads: &mut SelectiveScanGrads<f32>,
    ) -> mamba_core::Result<()> {
        let g = self.selective_scan_backward(args, dout, dlast_state)?;
        let old_a = core::mem::take(&mut grads.a);
        *grads = g;
        if self.0 == Fault::IntoAccumulates && old_a.len() == grads.a.len() {
            grads.a.iter_mut().zip(old_a).for_each(|(o, v)| *o += v);
        }
        Ok(())
    }
    fn ssd_backward_into(
        &self,
        args: &SsdArgs<'_, f32>,
        dout: &[f32],
        dfinal_states: Option<&[f32]>,
        grads: &mut SsdGrads<f32>,
    ) -> mamba_core::Result<()> {
        let g = self.ssd_backward(args, dout, dfinal_states)?;
        let old_d = grads.d.take();
        *grads = g;
        if self.0 == Fault::IntoKeepsOptions && grads.d.is_none() {
            grads.d = old_d;
        }
        Ok(())
    }
    fn ssd(
        &self,
        args: &SsdArgs<'_, f32>,
        out: &mut [f32],
        final_states: Option<&mut [f32]>,
    ) -> mamba_core::Result<()> {
        let mut args = *args;
        match self.0 {
            Fault::SsdUnsupported => {
                return Err(Error::unsupported("faulty", "ssd", "anything"));
            }
            Fault::SsdIgnoresSeqIdx => args.seq_idx = None,
            _ => {}
        }
        R.ssd(&args, out, final_states)?;
        if self.0 == Fault::SsdChunkDependent && args.chunk_size < 4 {
            out.iter_mut().for_each(|v| *v *= 1.0 + 1e-3);
        }
        Ok(())
    }
    fn ssd_backward(
        &self,
        args: &SsdArgs<'_, f32>,
        dout: &[f32],
        dfinal_states: Option<&[f32]>,
    ) -> mamba_core::Result<SsdGrads<f32>> {
        if self.0 == Fault::SsdUnsupported {
            return Err(Error::unsupported("faulty", "ssd_backward", "anything"));
        }
        R.ssd_backward(args, dout, dfinal_states)
    }
    fn causal_conv1d(
        &self,
        args: &CausalConv1dArgs<'_, f32>,
        out: &mut [f32],
        final_states: Option<&mut [f32]>,
    ) -> mamba_core::Result<()> {
        match final_states {
            Some(fs) if self.0 == Fault::ConvFinalStates => {
                R.causal_conv1d(args, out, Some(&mut *fs))?;
                fs.rotate_left(1.min(fs.len()));
                Ok(())
            }
            fs => R.causal_conv1d(args, out, fs),
        }
    }
    fn causal_conv1d_backward(
        &self,
        args: &CausalConv1dArgs<'_, f32>,
        dout: &[f32],
        dfinal_states: Option<&[f32]>,
    ) -> mamba_core::Result<CausalConv1dGrads<f32>> {
        R.causal_conv1d_backward(args, dout, dfinal_states)
    }
    fn selective_state_update(
        &self,
        args: &SelectiveStateUpdateArgs<'_, f32>,
        state: &mut [f32],
        out: &mut [f32],
    ) -> mamba_core::Result<()> {
        let mut args = *args;
        if self.0 == Fault::DecodeIgnoresZ {
            args.z = None;
        }
        R.selective_state_update(&args, state, out)
    }
    fn causal_conv1d_update(
        &self,
        args: &CausalConv1dUpdateArgs<'_, f32>,
        conv_state: TensorMut<'_, f32>,
        out: &mut [f32],
    ) -> mamba_core::Result<()> {
        if self.0 == Fault::ConvUpdateKeepsState {
            let mut copy = conv_state.data.to_vec();
            return R.causal_conv1d_update(args, TensorMut::new(&mut copy, conv_state.shape), out);
        }
        R.causal_conv1d_update(args, conv_state, out)
    }
}

#[track_caller]
fn fails(r: CheckResult) -> Failure {
    match r {
        Ok(report) => panic!("the check passed a faulty backend: {report}"),
        Err(f) => f,
    }
}

#[test]
fn every_check_fails_on_a_backend_that_breaks_it() {
    let t = Tolerance::F32;
    let mut rng = Rng::new(99);
    let scan = ScanCase::random(&ScanConfig::new(2, 4, 8, 3).all_options(), &mut rng);
    let ssd_cfg = SsdConfig {
        chunk_size: 2,
        ..SsdConfig::new(2, 8, 4, 2, 2, 3).all_options()
    };
    let mut ssd = SsdCase::random(&ssd_cfg, &mut rng);
    ssd.seq_idx = Some(vec![
        0, 0, 0, 1, 1, 1, 1, 1, /* batch 1 */ 0, 0, 0, 0, 2, 2, 3, 3,
    ]);
    let conv_cfg = ConvConfig {
        initial_states: true,
        ..ConvConfig::new(2, 3, 6, 4)
    };
    let conv = ConvCase::random(&conv_cfg, &mut rng);
    let upd = StateUpdateCase::random(
        &StateUpdateConfig {
            z: true,
            ..StateUpdateConfig::random(&mut rng)
        },
        &mut rng,
    );
    let cu = ConvUpdateCase::random(&ConvUpdateConfig::random(&mut rng), &mut rng);

    // The faithful reference passes all of them.
    let ok = Reference::new();
    check_selective_scan::<f32, _>(&ok, &scan, t).unwrap();
    check_selective_scan_streaming::<f32, _>(&ok, &scan, 3, t).unwrap();
    check_state_update_vs_scan::<f32, _>(&ok, &scan, t).unwrap();
    check_ssd::<f32, _>(&ok, &ssd, t).unwrap();
    check_ssd_streaming::<f32, _>(&ok, &ssd, 3, t).unwrap();
    check_ssd_streaming::<f32, _>(&ok, &ssd, 4, t).unwrap();
    check_state_update_vs_ssd::<f32, _>(&ok, &ssd, t).unwrap();
    check_ssd_chunk_sizes::<f32, _>(&ok, &ssd, &SSD_CHUNK_SIZES, t).unwrap();
    check_causal_conv1d::<f32, _>(&ok, &conv, t).unwrap();
    check_causal_conv1d_streaming::<f32, _>(&ok, &conv, 2, t).unwrap();
    check_state_update::<f32, _>(&ok, &upd, t).unwrap();
    check_conv_update::<f32, _>(&ok, &cu, t).unwrap();
    check_conv_update_vs_conv::<f32, _>(&ok, &cu, t).unwrap();

    let f = fails(check_selective_scan::<f32, _>(
        &Faulty(Fault::ScanOut),
        &scan,
        t,
    ));
    assert!(f.to_string().contains("worst `out"), "{f}");
    fails(check_selective_scan::<f32, _>(
        &Faulty(Fault::ScanIgnoresInitialState),
        &scan,
        t,
    ));
    fails(check_selective_scan_streaming::<f32, _>(
        &Faulty(Fault::ScanIgnoresInitialState),
        &scan,
        3,
        t,
    ));
    let f = fails(check_selective_scan::<f32, _>(
        &Faulty(Fault::ScanGradA),
        &scan,
        t,
    ));
    assert!(f.to_string().contains("`grad A`"), "{f}");
    fails(check_state_update_vs_scan::<f32, _>(
        &Faulty(Fault::DecodeIgnoresZ),
        &scan,
        t,
    ));
    fails(check_state_update_vs_ssd::<f32, _>(
        &Faulty(Fault::DecodeIgnoresZ),
        &ssd,
        t,
    ));
    fails(check_state_update::<f32, _>(
        &Faulty(Fault::DecodeIgnoresZ),
        &upd,
        t,
    ));
    let f = fails(check_ssd_chunk_sizes::<f32, _>(
        &Faulty(Fault::SsdChunkDependent),
        &ssd,
        &SSD_CHUNK_SIZES,
        t,
    ));
    assert!(f.to_string().contains("chunk 16: out"), "{f}");
    fails(check_ssd::<f32, _>(
        &Faulty(Fault::SsdIgnoresSeqIdx),
        &ssd,
        t,
    ));
    fails(check_state_update_vs_ssd::<f32, _>(
        &Faulty(Fault::SsdIgnoresSeqIdx),
        &ssd,
        t,
    ));
    // Split right at batch 0's reset: the second half must start from zeros.
    fails(check_ssd_streaming::<f32, _>(
        &Faulty(Fault::SsdIgnoresSeqIdx),
        &ssd,
        3,
        t,
    ));
    fails(check_causal_conv1d::<f32, _>(
        &Faulty(Fault::ConvFinalStates),
        &conv,
        t,
    ));
    fails(check_causal_conv1d_streaming::<f32, _>(
        &Faulty(Fault::ConvFinalStates),
        &conv,
        2,
        t,
    ));
    fails(check_conv_update_vs_conv::<f32, _>(
        &Faulty(Fault::ConvFinalStates),
        &cu,
        t,
    ));
    fails(check_conv_update::<f32, _>(
        &Faulty(Fault::ConvUpdateKeepsState),
        &cu,
        t,
    ));
    fails(check_conv_update_vs_conv::<f32, _>(
        &Faulty(Fault::ConvUpdateKeepsState),
        &cu,
        t,
    ));

    // An `Unsupported` error is a kernel failure, and `conformance` lists it.
    let f = fails(check_ssd::<f32, _>(&Faulty(Fault::SsdUnsupported), &ssd, t));
    assert!(f.is_unsupported(), "{f}");
    let sweep = conformance::<f32, _>(&Faulty(Fault::SsdUnsupported), 1, 1, t).unwrap();
    assert_eq!(sweep.unsupported.len(), 4, "{:?}", sweep.unsupported);
    assert_eq!(sweep.reports.len(), 8);
    // Any other failure stops the sweep.
    assert!(conformance::<f32, _>(&Faulty(Fault::ScanGradA), 1, 1, t).is_err());
}

/// The `_into` checks pass the trait's default (the reference) and an override that
/// forwards to it, and fail an `_into` that adds into the caller's stale values or keeps
/// an optional gradient the call does not have.
#[test]
fn backward_into_checks_fail_a_broken_into() {
    let mut rng = Rng::new(9);
    for _ in 0..3 {
        let scan = ScanCase::random(&ScanConfig::random(&mut rng).all_options(), &mut rng);
        let ssd = SsdCase::random(&SsdConfig::random(&mut rng), &mut rng);
        check_selective_scan_backward_into::<f32, _>(&R, &scan, None).unwrap();
        check_selective_scan_backward_into::<bf16, _>(&R, &scan, None).unwrap();
        check_ssd_backward_into::<f32, _>(&R, &ssd, None).unwrap();
        check_ssd_backward_into::<f16, _>(&R, &ssd, None).unwrap();
        let conv = ConvCase::random(&ConvConfig::random(&mut rng), &mut rng);
        check_causal_conv1d_backward_into::<f32, _>(&R, &conv, None).unwrap();
        check_causal_conv1d_backward_into::<bf16, _>(&R, &conv, None).unwrap();
        let ok = Faulty(Fault::ScanOut);
        check_selective_scan_backward_into::<f32, _>(&ok, &scan, None).unwrap();
        check_ssd_backward_into::<f32, _>(&ok, &ssd, None).unwrap();
        let e = check_selective_scan_backward_into::<f32, _>(
            &Faulty(Fault::IntoAccumulates),
            &scan,
            None,
        )
        .unwrap_err();
        assert!(e.contains("grad a") && e.contains("last call"), "{e}");
        // The tolerance form (for a backend whose reductions are not deterministic)
        // catches it too: the stale values are NaN.
        check_selective_scan_backward_into::<f32, _>(&R, &scan, Some(1e-6)).unwrap();
        let e = check_selective_scan_backward_into::<f32, _>(
            &Faulty(Fault::IntoAccumulates),
            &scan,
            Some(1e-2),
        )
        .unwrap_err();
        assert!(e.contains("grad a") && e.contains("relative L2"), "{e}");
        // A case without D: the junk round hands the call a `d` it must drop.
        let no_d = SsdConfig {
            d: None,
            ..SsdConfig::random(&mut rng)
        };
        let no_d = SsdCase::random(&no_d, &mut rng);
        let e = check_ssd_backward_into::<f32, _>(&Faulty(Fault::IntoKeepsOptions), &no_d, None)
            .unwrap_err();
        assert!(e.contains("grad d"), "{e}");
    }
}
