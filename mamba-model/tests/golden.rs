//! The golden conformance cases through every available backend: `tests/golden` (the
//! copy in the repository) always, and `../shared/golden` (the full set) when present.

use std::path::{Path, PathBuf};

use mamba_model::backend::{build, select, BackendPreference};
use mamba_model::golden::{run_dir, Status};
use mamba_model::{BackendKind, DType};

fn dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut v = vec![root.join("tests/golden")];
    let shared = root.join("../shared/golden");
    if shared.is_dir() {
        v.push(shared);
    } else {
        eprintln!("note: ../shared/golden not found; only the repository's copy is run");
    }
    v
}

fn run(kind: BackendKind, dtype: DType) {
    let sel = build(kind).expect("CPU backends are always available");
    for dir in dirs() {
        let report = run_dir(&dir, &sel, dtype, |_| {}).expect("golden folder is readable");
        let bad: Vec<String> = report
            .outcomes
            .iter()
            .filter(|o| o.status != Status::Pass)
            .map(|o| o.to_string())
            .collect();
        assert!(
            report.passed() > 0,
            "no golden case ran from {}",
            dir.display()
        );
        assert!(
            bad.is_empty(),
            "{kind} at {dtype} on {}: {}\n{}",
            dir.display(),
            report.summary(),
            bad.join("\n")
        );
    }
}

#[test]
fn reference_f32() {
    run(BackendKind::Reference, DType::F32);
}

#[test]
fn reference_bf16() {
    run(BackendKind::Reference, DType::BF16);
}

#[test]
fn reference_f16() {
    run(BackendKind::Reference, DType::F16);
}

#[test]
fn cpu_simd_f32() {
    run(BackendKind::CpuSimd, DType::F32);
}

#[test]
fn cpu_simd_bf16() {
    run(BackendKind::CpuSimd, DType::BF16);
}

#[test]
fn cpu_simd_f16() {
    run(BackendKind::CpuSimd, DType::F16);
}

#[test]
fn cuda_f32_when_available() {
    match select(BackendPreference::Force(BackendKind::Cuda)) {
        Err(e) => eprintln!("skipping the CUDA golden run: {e}"),
        Ok(sel) => {
            for dir in dirs() {
                let report = run_dir(&dir, &sel, DType::F32, |_| {}).unwrap();
                // Forward outputs and states must pass; gradients are another issue's.
                let bad: Vec<String> = report
                    .outcomes
                    .iter()
                    .filter(|o| !o.output.starts_with("grad_") && o.status != Status::Pass)
                    .map(|o| o.to_string())
                    .collect();
                assert!(bad.is_empty(), "cuda: {}", bad.join("\n"));
            }
        }
    }
}

/// The runner must fail on a wrong answer, not only pass right ones: a case whose
/// expectation is perturbed fails, and one with an unknown op is UNSUPPORTED.
#[test]
fn runner_detects_wrong_answers_and_unknown_ops() {
    use mamba_model::io::TensorFile;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut file = TensorFile::read(&root.join("tests/golden/ssd_01.safetensors")).unwrap();
    let sel = build(BackendKind::Reference).unwrap();
    let ok = mamba_model::golden::run_case("ssd_01", &file, &sel, DType::F32);
    assert!(ok.iter().all(|o| o.status == Status::Pass));
    let exp = file.tensors.get_mut("expected.out").unwrap();
    exp.data[3] += 1e-3 * exp.data.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let bad = mamba_model::golden::run_case("ssd_01", &file, &sel, DType::F32);
    let out = bad.iter().find(|o| o.output == "out").unwrap();
    assert_eq!(out.status, Status::Fail, "{out}");
    file.metadata.insert("op".into(), "no_such_op".into());
    let unknown = mamba_model::golden::run_case("ssd_01", &file, &sel, DType::F32);
    assert!(unknown.iter().all(|o| o.status == Status::Unsupported));
}
