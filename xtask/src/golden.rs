//! `cargo xtask golden [--backend reference|cpu-simd|cuda] [--dir DIR] [--dtype f32|bf16|f16] [--forward-only]`
//!
//! Runs every `*.safetensors` case in DIR (default `../shared/golden`, else the
//! repository's `tests/golden`) against the backend, prints one line per case and
//! output, ends with `N passed, N failed`, and fails on any failure.

use std::path::PathBuf;

use mamba_model::backend::{select, BackendPreference};
use mamba_model::golden::run_dir;
use mamba_model::DType;

/// The workspace root (xtask's manifest is one level down).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The default golden folder: the full set beside the checkout if present, else the
/// copy in the repository.
pub fn default_dir() -> PathBuf {
    let root = workspace_root();
    let shared = root.join("../shared/golden");
    if shared.is_dir() {
        shared
    } else {
        root.join("tests/golden")
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut backend = "reference".to_string();
    let mut dir = None;
    let mut dtype = DType::F32;
    let mut forward_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--backend" => backend = value("--backend")?,
            "--forward-only" => forward_only = true,
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--dtype" => {
                let v = value("--dtype")?;
                dtype = match DType::parse(&v) {
                    Some(d @ (DType::F32 | DType::BF16 | DType::F16)) => d,
                    _ => return Err(format!("--dtype {v}: expected f32, bf16 or f16")),
                };
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    let dir = dir.unwrap_or_else(default_dir);
    let pref = BackendPreference::parse(&backend).map_err(|e| e.to_string())?;
    let sel = select(pref).map_err(|e| e.to_string())?;
    eprintln!("{}", sel.report);
    println!(
        "golden: {} cases in {} on {} at {}",
        mamba_model::golden::list_cases(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .len(),
        dir.display(),
        sel.kind,
        dtype
    );
    let keep = |o: &mamba_model::golden::Outcome| !(forward_only && o.output.starts_with("grad_"));
    let mut report = run_dir(&dir, &sel, dtype, |o| {
        if keep(o) {
            println!("{o}")
        }
    })
    .map_err(|e| format!("{}: {e}", dir.display()))?;
    let before = report.outcomes.len();
    report.outcomes.retain(keep);
    if before > report.outcomes.len() {
        println!(
            "({} gradient outputs not compared: --forward-only)",
            before - report.outcomes.len()
        );
    }
    println!("{}", report.summary());
    if report.failed() > 0 {
        return Err(report.summary());
    }
    Ok(())
}
