//! The operations of SPEC sections 1-5: argument types, validation, gradients.

pub(crate) mod check;
pub mod conv1d;
pub mod selective_scan;
pub mod ssd;
pub mod state_update;
