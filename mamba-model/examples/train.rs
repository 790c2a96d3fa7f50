//! `cargo run --release --example train [-- --steps N --blocks K]`
//!
//! Trains a small stack of Mamba2 blocks with AdamW to separate the low-frequency
//! component from a sum of two sinusoids, on the best available backend, and shows the
//! loss falling.

use mamba_model::backend::{default_selection, report};
use mamba_model::toy::{make_batch, ToyModel};
use mamba_model::{Mamba2Config, SplitMix64};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut steps = 400usize;
    let mut n_blocks = 2usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--steps" => steps = it.next().ok_or("--steps N")?.parse()?,
            "--blocks" => n_blocks = it.next().ok_or("--blocks K")?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let sel = default_selection()?;
    println!("{}", report().unwrap_or(""));
    let cfg = Mamba2Config {
        d_model: 32,
        d_state: 16,
        headdim: 16,
        chunk_size: 64,
        ..Mamba2Config::default()
    };
    let mut model = ToyModel::new(&cfg, n_blocks, 0, sel, 3e-3)?;
    let mut rng = SplitMix64(1);
    let eval = make_batch(&mut SplitMix64(12345), 16, 128);
    let first = model.loss(&eval)?;
    let zero: f32 = eval.target.iter().map(|t| t * t).sum::<f32>() / eval.target.len() as f32;
    println!("predicting zero would score {zero:.5}");
    println!(
        "{n_blocks} blocks of d_model {}, d_state {}; eval loss at start {first:.5}",
        cfg.d_model, cfg.d_state
    );
    let started = std::time::Instant::now();
    for step in 1..=steps {
        let batch = make_batch(&mut rng, 8, 128);
        let loss = model.train_step(&batch)?;
        if step % 25 == 0 || step == 1 {
            println!(
                "step {step:>4}  train loss {loss:.5}  eval loss {:.5}  ({:.1} s)",
                model.loss(&eval)?,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let last = model.loss(&eval)?;
    println!(
        "eval loss {first:.5} -> {last:.5}: {:.1}x lower",
        first / last
    );
    Ok(())
}
