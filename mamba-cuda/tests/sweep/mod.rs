//! What the default-rule sweeps share (gpu.rs `default_rules_match_the_oracle_at_random_sizes`,
//! gpu_backward.rs `default_rules_backward_at_random_sizes`, gpu_block_train.rs
//! `block_train_at_random_sizes`): their settings from the environment, and clearing the
//! plugin's `MAMBA_CUDA_*` overrides so that the default rules choose every kernel.

/// A sweep's settings.
pub struct Sweep {
    /// Cases of each kind: `MAMBA_GPU_SWEEP`, else the test's default.
    pub cases: usize,
    /// The draw: `MAMBA_GPU_SWEEP_SEED`, else 56.
    pub seed: u64,
    /// The size caps times this: `MAMBA_GPU_SWEEP_SCALE` (at least 1), else 1.
    pub scale: usize,
}

fn env_num<V: std::str::FromStr>(name: &str) -> Option<V> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The settings, with `default_cases` cases unless `MAMBA_GPU_SWEEP` says otherwise.
pub fn settings(default_cases: usize) -> Sweep {
    Sweep {
        cases: env_num("MAMBA_GPU_SWEEP").unwrap_or(default_cases),
        seed: env_num("MAMBA_GPU_SWEEP_SEED").unwrap_or(56),
        scale: env_num::<usize>("MAMBA_GPU_SWEEP_SCALE")
            .unwrap_or(1)
            .max(1),
    }
}

/// Removes every `MAMBA_CUDA_*` variable but the plugin's path and the switch that makes the
/// plugin read them per call (the tests beside a sweep set some; run the sweeps alone).
pub fn clear_overrides() {
    for (k, _) in std::env::vars() {
        if k.starts_with("MAMBA_CUDA_") && k != "MAMBA_CUDA_ENV_LIVE" && k != "MAMBA_CUDA_PLUGIN" {
            std::env::remove_var(k);
        }
    }
}
