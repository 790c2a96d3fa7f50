//! `MAMBA_SIMD` forces a path. The only test of this binary, so changing the
//! environment races with nothing.

use mamba_cpu_simd::{simd_level_name, CpuSimd, SimdLevel, SIMD_ENV};

#[test]
fn mamba_simd_forces_a_path() {
    let saved = std::env::var(SIMD_ENV).ok();
    for level in SimdLevel::ALL {
        std::env::set_var(SIMD_ENV, level.name());
        if level.is_available() {
            assert_eq!(CpuSimd::with_threads(1).simd_level(), level);
            assert_eq!(CpuSimd::from_env(1).expect("available").simd_level(), level);
            assert_eq!(simd_level_name(), level.name());
        } else {
            eprintln!("skipping {level}: host lacks it");
            assert!(CpuSimd::from_env(1).is_err());
            // The lenient constructor falls back to the best path.
            assert_eq!(CpuSimd::with_threads(1).simd_level(), SimdLevel::best());
        }
    }
    std::env::set_var(SIMD_ENV, "mmx");
    assert!(CpuSimd::from_env(1).is_err());
    assert_eq!(CpuSimd::with_threads(1).simd_level(), SimdLevel::best());
    std::env::set_var(SIMD_ENV, "");
    assert_eq!(
        CpuSimd::from_env(1).expect("unset").simd_level(),
        SimdLevel::best()
    );
    match saved {
        Some(v) => std::env::set_var(SIMD_ENV, v),
        None => std::env::remove_var(SIMD_ENV),
    }
}
