//! A short run of the training example: the loss must fall.

use mamba_model::backend::build;
use mamba_model::toy::{make_batch, ToyModel};
use mamba_model::{BackendKind, Mamba2Config, SplitMix64};

#[test]
fn short_training_run_reduces_the_loss() {
    let cfg = Mamba2Config {
        d_model: 16,
        d_state: 8,
        headdim: 8,
        chunk_size: 32,
        ..Mamba2Config::default()
    };
    let sel = build(BackendKind::CpuSimd).unwrap();
    let mut model = ToyModel::new(&cfg, 2, 0, &sel, 3e-3).unwrap();
    let eval = make_batch(&mut SplitMix64(777), 8, 64);
    let start = model.loss(&eval).unwrap();
    // Predicting zero everywhere scores the target's mean square; training must beat it.
    let zero: f32 = eval.target.iter().map(|t| t * t).sum::<f32>() / eval.target.len() as f32;
    let mut rng = SplitMix64(3);
    for _ in 0..40 {
        let b = make_batch(&mut rng, 4, 64);
        let loss = model.train_step(&b).unwrap();
        assert!(loss.is_finite());
    }
    let end = model.loss(&eval).unwrap();
    assert!(end < start / 5.0, "eval loss {start} -> {end}");
    assert!(
        end < zero / 2.0,
        "eval loss {end} does not beat predicting zero ({zero})"
    );
}
