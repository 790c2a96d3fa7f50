//! Compiles `kernels/*.cu` to fatbins (sm_90 machine code plus compute_90 PTX) with the
//! pinned nvcc, only when the `cuda` feature is on. Without the feature nothing runs.
//!
//! nvcc is found in this order: `MAMBA_NVCC` (a path), the toolchain that
//! `cargo xtask cuda build` installs (`<target>/cuda-toolchain`, with `<target>` from
//! `CARGO_TARGET_DIR` or found above `OUT_DIR`), then `nvcc` on `PATH`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNELS: &[&str] = &[
    "scan1",
    "ssd",
    "misc",
    "bwd",
    "ssd_chunk",
    "scan1_lm",
    "seed",
    "scan1_seed",
    "ssd_seed",
    "block_bwd",
    "bwd_lm",
    "ssd_lm32",
    "ssd_seed2",
    "ssd_lm",
    "ssd_bwdc",
    "ssd_seed3",
];
/// Kernels that use sm_90a-only instructions (wgmma): compiled for sm_90a alone, loaded by
/// the plugin only on compute capability 9.0 (the others run elsewhere).
const KERNELS_90A: &[&str] = &["ssd_wg"];
const NVCC_IN_VENV: &str = "nvidia/cu13/bin/nvcc";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MAMBA_NVCC");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=MAMBA_CUDA_FATBIN_SMALL");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    // The driver stub or the real libcuda: keep libcuda.so.1 NEEDED even though the
    // stub defines no symbols (the plugin's calls resolve against the real driver).
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-cdylib-link-arg=-lcuda");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--as-needed");
    println!("cargo:rerun-if-changed=kernels");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let nvcc = find_nvcc(&out_dir).unwrap_or_else(|| {
        panic!(
            "mamba-cuda: the `cuda` feature needs nvcc 13.0; none found (MAMBA_NVCC, \
             <target>/cuda-toolchain, PATH). Run `cargo xtask cuda build`, which installs it."
        )
    });
    println!(
        "cargo:warning=mamba-cuda: compiling kernels with {}",
        nvcc.display()
    );
    let kernel_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("kernels");
    // MAMBA_CUDA_FATBIN_SMALL=1 (development carries to the GPU machine): sm_90 machine
    // code only, no line table, compressed for size: about 15x smaller fatbins.
    let small = env::var_os("MAMBA_CUDA_FATBIN_SMALL").is_some_and(|v| v != "0");
    let flags: &[&str] = if small {
        &[
            "-gencode",
            "arch=compute_90,code=sm_90",
            "--compress-mode=size",
        ]
    } else {
        &[
            "-lineinfo",
            "-gencode",
            "arch=compute_90,code=sm_90",
            "-gencode",
            "arch=compute_90,code=compute_90",
        ]
    };
    let flags_90a: &[&str] = if small {
        &[
            "-gencode",
            "arch=compute_90a,code=sm_90a",
            "--compress-mode=size",
        ]
    } else {
        &["-lineinfo", "-gencode", "arch=compute_90a,code=sm_90a"]
    };
    // Headers every kernel file may include: a change there rebuilds them all.
    let mut headers = Vec::new();
    for e in std::fs::read_dir(&kernel_dir).expect("kernels/").flatten() {
        if e.path().extension().is_some_and(|x| x == "cuh") {
            headers.push(e.path());
        }
    }
    headers.sort();
    let mut children = Vec::new();
    let all = KERNELS
        .iter()
        .map(|n| (n, flags))
        .chain(KERNELS_90A.iter().map(|n| (n, flags_90a)));
    for (name, flags) in all {
        let src = kernel_dir.join(format!("{name}.cu"));
        println!("cargo:rerun-if-changed={}", src.display());
        let fatbin = out_dir.join(format!("{name}.fatbin"));
        let log = out_dir.join(format!("{name}.ptxas.log"));
        // Rebuild a fatbin only when its source, a header, the flags or nvcc changed:
        // the key of the last build sits beside it.
        let key_file = out_dir.join(format!("{name}.key"));
        let key = build_key(&nvcc, flags, &src, &headers);
        if fatbin.exists() && std::fs::read_to_string(&key_file).ok().as_deref() == Some(&key) {
            continue;
        }
        let _ = std::fs::remove_file(&key_file);
        let child = Command::new(&nvcc)
            .args(["-std=c++17", "-O3", "-Xptxas", "-v"])
            .args(flags)
            .arg("-fatbin")
            .arg("-o")
            .arg(&fatbin)
            .arg(&src)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("mamba-cuda: cannot run {}: {e}", nvcc.display()));
        children.push((name, child, log, key_file, key));
    }
    for (name, mut child, log, key_file, key) in children {
        let status = child.wait().expect("nvcc");
        if !status.success() {
            let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
            panic!("mamba-cuda: nvcc failed on kernels/{name}.cu:\n{err}");
        }
        std::fs::write(&key_file, key).expect("write the kernel build key");
    }
}

/// What a kernel's fatbin depends on, as text: nvcc's path, the flags, and a hash of the
/// file names and contents of the source and of every header (a stale key only costs a
/// rebuild). Names, not full paths: a copy of the target folder in another checkout of
/// the same sources (a git worktree) reuses the fatbins instead of recompiling them all.
/// The `.cu` files that a source includes (kernels/ssd_wg.cu includes ssd_lm.cu and
/// ssd_lm32.cu), directly or through each other, count as its source.
fn build_key(nvcc: &Path, flags: &[&str], src: &Path, headers: &[PathBuf]) -> String {
    use std::hash::{Hash, Hasher};
    let mut sources = vec![src.to_path_buf()];
    let mut i = 0;
    while i < sources.len() {
        let text = std::fs::read_to_string(&sources[i]).unwrap_or_default();
        for line in text.lines() {
            let inc = line.trim_start().strip_prefix("#include \"");
            if let Some(name) = inc.and_then(|r| r.split('"').next()) {
                let f = src.with_file_name(name);
                if name.ends_with(".cu") && !sources.contains(&f) {
                    sources.push(f);
                }
            }
        }
        i += 1;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in sources.iter().chain(headers.iter()) {
        f.file_name().hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    format!("{} {} {:016x}", nvcc.display(), flags.join(" "), h.finish())
}

fn find_nvcc(out_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("MAMBA_NVCC") {
        return Some(PathBuf::from(p));
    }
    let mut targets = Vec::new();
    if let Some(t) = env::var_os("CARGO_TARGET_DIR") {
        targets.push(PathBuf::from(t));
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (or one level deeper with
    // a target triple): every ancestor is a candidate.
    targets.extend(out_dir.ancestors().skip(1).map(Path::to_path_buf));
    if let Ok(manifest) = env::var("CARGO_MANIFEST_DIR") {
        targets.push(Path::new(&manifest).join("..").join("target"));
    }
    for t in targets {
        let lib = t.join("cuda-toolchain").join("lib");
        if let Ok(entries) = std::fs::read_dir(&lib) {
            for e in entries.flatten() {
                let nvcc = e.path().join("site-packages").join(NVCC_IN_VENV);
                if nvcc.is_file() {
                    return Some(nvcc);
                }
            }
        }
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join("nvcc"))
        .find(|p| p.is_file())
}
