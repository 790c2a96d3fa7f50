//! The plugin links `libcuda.so.1`; no host binary does. Checked with `readelf -d` on
//! this test binary, the built xtask binaries, and the plugin where it was built. Also:
//! the plugin built without the `cuda` feature answers with how to build it, and on a
//! machine without the driver loading the real plugin fails with the loader's reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use mamba_core::plugin;
use mamba_core::Error;

/// The NEEDED entries of an ELF file, or None when readelf is missing.
fn needed(path: &Path) -> Option<Vec<String>> {
    let out = Command::new("readelf").arg("-d").arg(path).output().ok()?;
    assert!(
        out.status.success(),
        "readelf -d {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| {
                l.split('[')
                    .nth(1)
                    .map(|s| s.trim_end_matches(']').to_string())
            })
            .collect(),
    )
}

/// `<target>` from this test's path, `<target>/<profile>/deps/linkage-<hash>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

#[test]
fn host_binaries_do_not_link_libcuda() {
    let exe = std::env::current_exe().unwrap();
    let Some(n) = needed(&exe) else {
        eprintln!("skipping: readelf is not installed");
        return;
    };
    assert!(
        !n.is_empty(),
        "readelf found no NEEDED entry in {}",
        exe.display()
    );
    assert!(
        n.iter().all(|l| !l.contains("libcuda")),
        "{} links {n:?}",
        exe.display()
    );
    let mut checked = 1;
    for profile in ["debug", "release"] {
        let xtask = target_dir().join(profile).join("xtask");
        if xtask.is_file() {
            let n = needed(&xtask).unwrap();
            assert!(
                n.iter().all(|l| !l.contains("libcuda")),
                "{} links {n:?}",
                xtask.display()
            );
            checked += 1;
        }
    }
    eprintln!("{checked} host binaries checked: none links libcuda");
}

#[test]
fn the_cuda_plugin_links_libcuda() {
    let plugin = target_dir().join("cuda").join(plugin::library_name());
    let plugin = std::env::var_os("MAMBA_CUDA_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or(plugin);
    if !plugin.is_file() {
        eprintln!(
            "skipping: no plugin at {} (run `cargo xtask cuda build`)",
            plugin.display()
        );
        return;
    }
    let Some(n) = needed(&plugin) else {
        eprintln!("skipping: readelf is not installed");
        return;
    };
    assert!(
        n.iter().any(|l| l == "libcuda.so.1"),
        "{} needs {n:?}, not libcuda.so.1",
        plugin.display()
    );
    // Without a driver, loading it fails with the loader's reason; with one, it loads.
    let driver = Path::new("/usr/lib/x86_64-linux-gnu/libcuda.so.1").exists()
        || Path::new("/usr/local/nvidia/lib64/libcuda.so.1").exists()
        || Path::new("/usr/lib64/libcuda.so.1").exists();
    match plugin::load_from(&plugin) {
        Ok(b) => eprintln!("the plugin loaded: {}", b.describe()),
        Err(Error::Unavailable { backend, reason }) => {
            assert_eq!(backend, "cuda");
            if !driver {
                assert!(reason.contains("libcuda.so.1"), "{reason}");
            }
            eprintln!("the plugin is unavailable here, as expected: {reason}");
        }
        Err(other) => panic!("unexpected error type: {other:?}"),
    }
}

#[test]
fn the_plugin_without_cuda_says_how_to_build_it() {
    if cfg!(feature = "cuda") {
        eprintln!("skipping: this build has the `cuda` feature");
        return;
    }
    // Cargo builds this crate's cdylib (without `cuda`) next to the test's deps folder.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let lib = profile_dir.join(plugin::library_name());
    if !lib.is_file() {
        eprintln!("skipping: {} not built", lib.display());
        return;
    }
    // The same folder may hold a build with the feature (e.g. after `cargo build
    // --features cuda`); that one links libcuda and is tested above.
    if needed(&lib).is_some_and(|n| n.iter().any(|l| l.contains("libcuda"))) {
        eprintln!(
            "skipping: {} was built with the `cuda` feature",
            lib.display()
        );
        return;
    }
    match plugin::load_from(&lib) {
        Err(Error::Unavailable { backend, reason }) => {
            assert_eq!(backend, "cuda");
            assert!(
                reason.contains("built without the `cuda` feature; run `cargo xtask cuda build`"),
                "{reason}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
