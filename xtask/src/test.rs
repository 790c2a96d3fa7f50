//! `cargo xtask test [--no-cuda] [-- <cargo test args>]`: what CI runs.
//!
//! 1. Builds the CUDA plugin (`cargo xtask cuda build`: installs the pinned CUDA 13.0
//!    compiler from PyPI into the target folder; no GPU or driver is needed to build).
//! 2. Runs `cargo test --workspace`, whose tests check that the host binaries do not
//!    link libcuda, that the plugin does, and that without a driver the host reports a
//!    clear reason and falls back; GPU tests skip with a message where no GPU is found.

use std::process::Command;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut cuda = true;
    let mut extra: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-cuda" => cuda = false,
            "--" => extra.extend(it.by_ref().cloned()),
            other => {
                return Err(format!(
                    "unknown option `{other}` (pass cargo test options after --)"
                ))
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = crate::golden::workspace_root();
    if cuda {
        eprintln!("xtask test: building the CUDA plugin (cargo xtask cuda build)");
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "xtask",
                "--",
                "cuda",
                "build",
            ])
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(
                "`cargo xtask cuda build` failed (use --no-cuda to test without the plugin)".into(),
            );
        }
    }
    eprintln!("xtask test: cargo test --workspace {}", extra.join(" "));
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(&extra)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo test --workspace failed".into());
    }
    Ok(())
}
