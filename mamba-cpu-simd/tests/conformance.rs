//! The shared conformance suite of `mamba-core` (oracle agreement forward and
//! backward, streaming, decode steps against the sequence ops, chunk-size invariance)
//! on every instruction-set path of this host, for every storage type, with the time
//! chunking both automatic and forced.

mod common;

use mamba_core::testing::{conformance, Tolerance};
use mamba_core::{bf16, f16, Element, Kernels};
use mamba_cpu_simd::{CpuSimd, TimeChunking};

fn run<T: Element>(be: &CpuSimd, seed: u64, rounds: usize)
where
    CpuSimd: Kernels<T>,
{
    let tol = Tolerance::for_type::<T>();
    match conformance::<T, _>(be, seed, rounds, tol) {
        Ok(c) => {
            assert!(
                c.unsupported.is_empty(),
                "unsupported on {be:?}: {:?}",
                c.unsupported
            );
            assert!(!c.reports.is_empty());
            eprintln!(
                "{} {} x{} {:?}: {} checks, worst error {:.2e}",
                T::DTYPE,
                be.simd_level(),
                be.threads(),
                be.time_chunking(),
                c.reports.len(),
                c.worst_error()
            );
        }
        Err(f) => panic!(
            "{} on {} x{} {:?}: {f}",
            T::DTYPE,
            be.simd_level(),
            be.threads(),
            be.time_chunking()
        ),
    }
}

#[test]
fn f32_every_path() {
    for be in common::backends(2, TimeChunking::Auto) {
        run::<f32>(&be, 1, 3);
    }
    for be in common::backends(3, TimeChunking::Fixed(5)) {
        run::<f32>(&be, 2, 2);
    }
}

#[test]
fn half_types_every_path() {
    for be in common::backends(2, TimeChunking::Auto) {
        run::<f16>(&be, 3, 2);
        run::<bf16>(&be, 4, 2);
    }
    for be in common::backends(2, TimeChunking::Fixed(6)) {
        run::<f16>(&be, 5, 1);
        run::<bf16>(&be, 6, 1);
    }
}
