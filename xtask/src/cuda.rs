//! `cargo xtask cuda build`: installs the pinned CUDA 13.0 compiler from PyPI into the
//! target folder, makes a `libcuda.so` stub to link against, builds the CUDA plugin
//! (release, `--features cuda`) and copies it to `<target>/cuda/libmamba_cuda.so`,
//! where `mamba_core::plugin::load` looks first.
//!
//! `<target>` is `CARGO_TARGET_DIR` when set, else `<workspace>/target`. Steps:
//! 1. `<target>/cuda-toolchain`: a Python venv with nvcc, nvvm, crt, the runtime headers
//!    and cccl (cub) at the pinned versions (skipped when already there).
//! 2. `<target>/cuda-stub/lib64/libcuda.so`: an empty shared library whose soname is
//!    `libcuda.so.1`. `cust` links against it; the plugin keeps `libcuda.so.1` in its
//!    NEEDED list and binds the real driver at load time.
//! 3. `cargo build --release -p mamba-cuda --features cuda` with `CUDA_LIBRARY_PATH`
//!    and `MAMBA_NVCC` pointing at the two above.
//!
//! `cargo xtask cuda path` prints where the plugin goes; `cargo xtask cuda nvcc` prints
//! the compiler (installing it if needed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned toolchain (PyPI names and versions).
const PINS: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
];

pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("build") => build().map(|p| println!("CUDA plugin: {}", p.display())),
        Some("path") => {
            println!("{}", plugin_path(&target_dir()).display());
            Ok(())
        }
        Some("nvcc") => {
            println!("{}", toolchain(&target_dir())?.display());
            Ok(())
        }
        _ => Err("usage: cargo xtask cuda <build|path|nvcc>".into()),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` (relative to the workspace when relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                workspace_root().join(t)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Where `cargo xtask cuda build` puts the plugin.
pub fn plugin_path(target: &Path) -> PathBuf {
    target.join("cuda").join("libmamba_cuda.so")
}

fn find_nvcc(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    for e in std::fs::read_dir(lib).ok()?.flatten() {
        let nvcc = e.path().join("site-packages/nvidia/cu13/bin/nvcc");
        if nvcc.is_file() {
            return Some(nvcc);
        }
    }
    None
}

fn status(cmd: &mut Command, what: &str) -> Result<(), String> {
    eprintln!("xtask cuda: {what}");
    let st = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what}: failed ({st})"))
    }
}

/// Installs the pinned compiler (once) and returns nvcc's path.
fn toolchain(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("cuda-toolchain");
    let marker = venv.join("mamba-pins.txt");
    let pins = PINS.join("\n");
    if let Some(nvcc) = find_nvcc(&venv) {
        if std::fs::read_to_string(&marker)
            .map(|m| m == pins)
            .unwrap_or(false)
        {
            return Ok(nvcc);
        }
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if !venv.join("bin").join("pip").is_file() {
        status(
            Command::new(&python).arg("-m").arg("venv").arg(&venv),
            &format!("creating {}", venv.display()),
        )?;
    }
    status(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PINS),
        "installing the pinned CUDA 13.0 compiler from PyPI",
    )?;
    let nvcc = find_nvcc(&venv)
        .ok_or_else(|| format!("nvcc not found in {} after the install", venv.display()))?;
    std::fs::write(&marker, pins).map_err(|e| e.to_string())?;
    Ok(nvcc)
}

/// The libcuda stub: an empty library with the driver's soname.
fn stub(target: &Path) -> Result<PathBuf, String> {
    let root = target.join("cuda-stub");
    let lib = root.join("lib64").join("libcuda.so");
    if lib.is_file() {
        return Ok(root);
    }
    std::fs::create_dir_all(root.join("lib64")).map_err(|e| e.to_string())?;
    let src = root.join("empty.c");
    std::fs::write(
        &src,
        "/* libcuda stub: the plugin binds the real driver at load time. */\n",
    )
    .map_err(|e| e.to_string())?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    status(
        Command::new(cc)
            .args(["-shared", "-Wl,-soname,libcuda.so.1", "-o"])
            .arg(&lib)
            .arg(&src),
        "making the libcuda.so stub",
    )?;
    Ok(root)
}

fn build() -> Result<PathBuf, String> {
    let target = target_dir();
    let nvcc = toolchain(&target)?;
    let stub = stub(&target)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(
        Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--release",
                "-p",
                "mamba-cuda",
                "--features",
                "cuda",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .env("CUDA_LIBRARY_PATH", &stub)
            .env("MAMBA_NVCC", &nvcc),
        "building the plugin (cargo build --release -p mamba-cuda --features cuda)",
    )?;
    let built = target.join("release").join("libmamba_cuda.so");
    let dest = plugin_path(&target);
    std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::copy(&built, &dest)
        .map_err(|e| format!("copying {} to {}: {e}", built.display(), dest.display()))?;
    Ok(dest)
}
