//! `MAMBA_CPU_THREADS` sets the thread count of `CpuSimd::new`. The only test of this
//! binary, so changing the environment races with nothing.

use mamba_cpu_simd::{env_thread_count, CpuSimd, THREADS_ENV};

#[test]
fn mamba_cpu_threads_sets_the_default_pool() {
    let saved = std::env::var(THREADS_ENV).ok();
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::remove_var(THREADS_ENV);
    assert_eq!(CpuSimd::new().threads(), machine);
    assert_eq!(env_thread_count(), None);
    for n in [1, 3, 7] {
        std::env::set_var(THREADS_ENV, n.to_string());
        assert_eq!(CpuSimd::new().threads(), n);
        assert_eq!(env_thread_count(), Some(n));
    }
    std::env::set_var(THREADS_ENV, " 5 ");
    assert_eq!(CpuSimd::new().threads(), 5);
    // Not a positive integer: reported, and the machine's count is used.
    for bad in ["0", "-2", "many", "2.5"] {
        std::env::set_var(THREADS_ENV, bad);
        assert_eq!(CpuSimd::new().threads(), machine, "{bad}");
        assert_eq!(env_thread_count(), None, "{bad}");
    }
    std::env::set_var(THREADS_ENV, "");
    assert_eq!(CpuSimd::new().threads(), machine);
    // The explicit constructor is not affected.
    std::env::set_var(THREADS_ENV, "3");
    assert_eq!(CpuSimd::with_threads(2).threads(), 2);
    match saved {
        Some(v) => std::env::set_var(THREADS_ENV, v),
        None => std::env::remove_var(THREADS_ENV),
    }
}
