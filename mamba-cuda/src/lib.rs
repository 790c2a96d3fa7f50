//! The CUDA plugin (placeholder).
