//! f16 and bf16 storage through `Reference<f32>` (arithmetic in f32) stays within the
//! SPEC's tolerances against the f64 oracle, evaluated on the same rounded inputs.
#![cfg(feature = "testing")]

use mamba_core::testing::{
    check_causal_conv1d, check_conv_update, check_selective_scan, check_ssd, check_state_update,
    conformance, BcKind, ConvCase, ConvConfig, ConvUpdateCase, ConvUpdateConfig, DShape, Rng,
    ScanCase, ScanConfig, SsdCase, SsdConfig, StateUpdateCase, StateUpdateConfig, Tolerance,
    UpdateLayout,
};
use mamba_core::{bf16, f16, Activation, ConvLayout, Element, Kernels, Reference};

/// Random small cases of every operation, with every check (oracle, streaming,
/// decode, chunk sizes) in storage type `T`.
fn random_sweep<T: Element>(tol: Tolerance)
where
    Reference<f32>: Kernels<T>,
{
    let result = conformance::<T, _>(&Reference::new(), 0x0F16_BF16, 24, tol)
        .unwrap_or_else(|f| panic!("{f}"));
    assert!(result.unsupported.is_empty(), "{:?}", result.unsupported);
    eprintln!(
        "{}: {} checks, worst relative L2 error {:.2e} (tolerance {:.0e})",
        T::DTYPE,
        result.reports.len(),
        result.worst_error(),
        tol.forward
    );
}

/// Model-sized shapes (longer sequences, more channels) against the oracle.
fn realistic<T: Element>(tol: Tolerance)
where
    Reference<f32>: Kernels<T>,
{
    let backend = Reference::new();
    let mut rng = Rng::new(0x0570_9A6E);
    let mut worst = 0.0f64;
    for (b_kind, c_kind, softplus) in [
        (BcKind::Varying, BcKind::Varying, true),
        (BcKind::Grouped(2), BcKind::Shared, false),
    ] {
        let cfg = ScanConfig {
            b_kind,
            c_kind,
            delta_softplus: softplus,
            ..ScanConfig::new(2, 16, 64, 8).all_options()
        };
        let case = ScanCase::random(&cfg, &mut rng);
        let r =
            check_selective_scan::<T, _>(&backend, &case, tol).unwrap_or_else(|f| panic!("{f}"));
        worst = worst.max(r.worst_error());
    }
    for (d, limit) in [
        (DShape::PerHead, None),
        (DShape::PerChannel, Some((0.01, 0.2))),
    ] {
        let cfg = SsdConfig {
            d: Some(d),
            dt_limit: limit,
            chunk_size: 16,
            ..SsdConfig::new(2, 64, 4, 8, 2, 16).all_options()
        };
        let case = SsdCase::random(&cfg, &mut rng);
        let r = check_ssd::<T, _>(&backend, &case, tol).unwrap_or_else(|f| panic!("{f}"));
        worst = worst.max(r.worst_error());
    }
    for layout in [ConvLayout::ChannelFirst, ConvLayout::ChannelLast] {
        let cfg = ConvConfig {
            bias: true,
            initial_states: true,
            activation: Activation::Silu,
            layout,
            dfinal_states: true,
            ..ConvConfig::new(2, 32, 64, 4)
        };
        let case = ConvCase::random(&cfg, &mut rng);
        let r = check_causal_conv1d::<T, _>(&backend, &case, tol).unwrap_or_else(|f| panic!("{f}"));
        worst = worst.max(r.worst_error());
    }
    for layout in [
        UpdateLayout::Mamba1 {
            dim: 32,
            groups: None,
        },
        UpdateLayout::Multihead {
            nheads: 8,
            headdim: 16,
            ngroups: 2,
        },
    ] {
        let cfg = StateUpdateConfig {
            batch: 2,
            layout,
            dstate: 16,
            d: true,
            z: true,
            dt_bias: true,
            dt_softplus: true,
            dt_limit: None,
        };
        let case = StateUpdateCase::random(&cfg, &mut rng);
        let r = check_state_update::<T, _>(&backend, &case, tol).unwrap_or_else(|f| panic!("{f}"));
        worst = worst.max(r.worst_error());
    }
    let cfg = ConvUpdateConfig {
        batch: 2,
        channels: 32,
        width: 4,
        state_len: 3,
        steps: None,
        bias: true,
        activation: Activation::Silu,
    };
    let case = ConvUpdateCase::random(&cfg, &mut rng);
    let r = check_conv_update::<T, _>(&backend, &case, tol).unwrap_or_else(|f| panic!("{f}"));
    worst = worst.max(r.worst_error());
    eprintln!(
        "{} (model-sized): worst relative L2 error {worst:.2e} (tolerance {:.0e})",
        T::DTYPE,
        tol.forward
    );
}

#[test]
fn f16_storage_random_cases() {
    random_sweep::<f16>(Tolerance::F16);
}

#[test]
fn bf16_storage_random_cases() {
    random_sweep::<bf16>(Tolerance::BF16);
}

#[test]
fn f32_storage_random_cases() {
    random_sweep::<f32>(Tolerance::F32);
}

#[test]
fn f16_storage_model_sized() {
    realistic::<f16>(Tolerance::F16);
}

#[test]
fn bf16_storage_model_sized() {
    realistic::<bf16>(Tolerance::BF16);
}

#[test]
fn f32_storage_model_sized() {
    realistic::<f32>(Tolerance::F32);
}

/// The SPEC's tolerances are what `Tolerance::of` returns.
#[test]
fn spec_tolerances() {
    let f32_tol = Tolerance::for_type::<f32>();
    assert_eq!((f32_tol.forward, f32_tol.grad), (1e-5, 1e-4));
    let bf16_tol = Tolerance::for_type::<bf16>();
    assert_eq!((bf16_tol.forward, bf16_tol.grad), (2e-2, 2e-2));
    let f16_tol = Tolerance::for_type::<f16>();
    assert_eq!((f16_tol.forward, f16_tol.grad), (5e-3, 5e-3));
}
