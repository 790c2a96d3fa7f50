//! One conformance suite, run against every backend this machine has (as ggml runs
//! every op on every backend against the CPU): random cases of every op with every
//! option, forward and backward against the f64 oracle, streaming, decode steps and
//! chunk-size independence, in every storage type. The CUDA backend is run where a GPU
//! and the plugin are found, and skipped with a message elsewhere.

use mamba_core::testing::{conformance, Tolerance};
use mamba_core::{bf16, f16, Backend};
use mamba_model::backend::{build, select, BackendPreference};
use mamba_model::BackendKind;

fn run_all(name: &str, backend: &dyn Backend, rounds: usize) {
    let f32r = conformance::<f32, _>(backend, 11, rounds, Tolerance::F32)
        .unwrap_or_else(|e| panic!("{name} f32: {e}"));
    let bf16r = conformance::<bf16, _>(backend, 12, rounds, Tolerance::BF16)
        .unwrap_or_else(|e| panic!("{name} bf16: {e}"));
    let f16r = conformance::<f16, _>(backend, 13, rounds, Tolerance::F16)
        .unwrap_or_else(|e| panic!("{name} f16: {e}"));
    for (dt, r) in [("f32", &f32r), ("bf16", &bf16r), ("f16", &f16r)] {
        eprintln!(
            "{name} {dt}: {} checks passed, {} unsupported",
            r.reports.len(),
            r.unsupported.len()
        );
        assert!(!r.reports.is_empty());
        assert!(r.unsupported.is_empty(), "{name} {dt}: {:?}", r.unsupported);
    }
}

#[test]
fn reference() {
    let sel = build(BackendKind::Reference).unwrap();
    run_all("reference", &*sel.backend, 6);
}

#[test]
fn cpu_simd() {
    let sel = build(BackendKind::CpuSimd).unwrap();
    run_all("cpu-simd", &*sel.backend, 12);
}

#[test]
fn cuda_when_available() {
    match select(BackendPreference::Force(BackendKind::Cuda)) {
        Err(e) => eprintln!("skipping the CUDA conformance run: {e}"),
        Ok(sel) => run_all("cuda", &*sel.backend, 6),
    }
}
