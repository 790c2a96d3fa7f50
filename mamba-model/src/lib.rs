//! Mamba2Block (work in progress).
