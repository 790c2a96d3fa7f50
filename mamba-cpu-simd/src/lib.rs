//! The multithreaded SIMD CPU backend (work in progress).
