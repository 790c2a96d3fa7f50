//! A small synthetic training task, used by `examples/train.rs` and its test: separate
//! the low-frequency component from a sum of two sinusoids of different frequency
//! bands, causally, with a stack of Mamba2 blocks.
//!
//! Model: `h = x * w_in + b_in` (one input channel to `d_model`), then `h = h +
//! block(h)` for each block, then `y = h . w_out + b_out`. Loss: mean squared error
//! against the low-frequency component. Optimiser: [`AdamW`].

use mamba_core::Tensor;

use crate::backend::Selection;
use crate::block::Mamba2Block;
use crate::config::Mamba2Config;
use crate::error::ModelError;
use crate::stack::{Mamba2Stack, StackAdamW};
use crate::train::AdamW;
use crate::weights::{Mamba2Weights, SplitMix64};

/// One batch: inputs (batch, len) and targets (batch, len).
#[derive(Clone, Debug)]
pub struct Batch {
    /// Sequences.
    pub batch: usize,
    /// Frames per sequence.
    pub len: usize,
    /// The mixture.
    pub input: Vec<f32>,
    /// Its low-frequency component.
    pub target: Vec<f32>,
}

/// Draws a batch: a low tone (0.04-0.12 cycles per 2π samples) plus a high tone
/// (0.8-1.6), random amplitudes and phases; the target is the low tone.
pub fn make_batch(rng: &mut SplitMix64, batch: usize, len: usize) -> Batch {
    let mut input = Vec::with_capacity(batch * len);
    let mut target = Vec::with_capacity(batch * len);
    for _ in 0..batch {
        let (w1, w2) = (0.04 + 0.08 * rng.next_f32(), 0.8 + 0.8 * rng.next_f32());
        let (a1, a2) = (0.5 + rng.next_f32(), 0.5 + rng.next_f32());
        let tau = std::f32::consts::TAU;
        let (p1, p2) = (tau * rng.next_f32(), tau * rng.next_f32());
        for t in 0..len {
            let lo = a1 * (w1 * t as f32 + p1).sin();
            let hi = a2 * (w2 * t as f32 + p2).sin();
            input.push(lo + hi);
            target.push(lo);
        }
    }
    Batch {
        batch,
        len,
        input,
        target,
    }
}

/// The toy model: an input projection, residual Mamba2 blocks, a read-out.
#[derive(Debug)]
pub struct ToyModel {
    /// (d_model).
    pub w_in: Vec<f32>,
    /// (d_model).
    pub b_in: Vec<f32>,
    /// The residual blocks.
    pub stack: Mamba2Stack,
    /// (d_model).
    pub w_out: Vec<f32>,
    /// (1).
    pub b_out: Vec<f32>,
    opt: AdamW,
    block_opt: StackAdamW,
    /// The input's gradient, its memory reused step after step.
    dinput: Vec<f32>,
}

impl ToyModel {
    /// A model of `n_blocks` blocks of `cfg` on the given backend.
    pub fn new(
        cfg: &Mamba2Config,
        n_blocks: usize,
        seed: u64,
        sel: &Selection,
        lr: f32,
    ) -> Result<Self, ModelError> {
        let mut rng = SplitMix64(seed);
        let dm = cfg.d_model;
        let blocks = (0..n_blocks)
            .map(|i| {
                let mut w = Mamba2Weights::init(cfg, seed.wrapping_add(1 + i as u64))?;
                // Small output projections keep the residual stream stable at the start.
                w.out_proj.iter_mut().for_each(|v| *v *= 0.5);
                Mamba2Block::with_selection(cfg.clone(), w, sel)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stack = Mamba2Stack::new(blocks)?;
        let mut opt = AdamW::new(lr);
        opt.weight_decay = 0.0;
        Ok(ToyModel {
            w_in: (0..dm).map(|_| rng.normal()).collect(),
            b_in: (0..dm).map(|_| 0.1 * rng.normal()).collect(),
            stack,
            w_out: (0..dm).map(|_| rng.normal() / (dm as f32).sqrt()).collect(),
            b_out: vec![0.0],
            opt: opt.clone(),
            block_opt: StackAdamW::from(opt),
            dinput: Vec::new(),
        })
    }

    /// The model's prediction (batch, len).
    pub fn predict(&self, b: &Batch) -> Result<Vec<f32>, ModelError> {
        let dm = self.w_in.len();
        let h = self.embed(b);
        let h = self.stack.forward(Tensor::new(&h, [b.batch, b.len, dm]))?;
        Ok(self.readout(&h))
    }

    fn embed(&self, b: &Batch) -> Vec<f32> {
        b.input
            .iter()
            .flat_map(|&x| {
                self.w_in
                    .iter()
                    .zip(&self.b_in)
                    .map(move |(w, c)| x * w + c)
            })
            .collect()
    }

    fn readout(&self, h: &[f32]) -> Vec<f32> {
        h.chunks_exact(self.w_in.len())
            .map(|row| row.iter().zip(&self.w_out).map(|(a, w)| a * w).sum::<f32>() + self.b_out[0])
            .collect()
    }

    /// Mean squared error of the prediction.
    pub fn loss(&self, b: &Batch) -> Result<f32, ModelError> {
        let p = self.predict(b)?;
        Ok(mse(&p, &b.target))
    }

    /// One AdamW step on a batch; returns the loss before the step.
    pub fn train_step(&mut self, b: &Batch) -> Result<f32, ModelError> {
        let dm = self.w_in.len();
        let shape = [b.batch, b.len, dm];
        // Forward, keeping the stack's tape.
        let x = self.embed(b);
        let tape = self.stack.forward_train(Tensor::new(&x, shape))?;
        let h = tape.output();
        let pred = self.readout(h);
        let loss = mse(&pred, &b.target);
        // d loss / d pred.
        let n = pred.len() as f32;
        let dpred: Vec<f32> = pred
            .iter()
            .zip(&b.target)
            .map(|(p, t)| 2.0 * (p - t) / n)
            .collect();
        let mut gw_out = vec![0.0f32; dm];
        let gb_out = vec![dpred.iter().sum::<f32>()];
        let mut dh = vec![0.0f32; h.len()];
        for (r, &g) in dpred.iter().enumerate() {
            for k in 0..dm {
                gw_out[k] += g * h[r * dm + k];
                dh[r * dm + k] = g * self.w_out[k];
            }
        }
        // Through the residual blocks, updating their weights (on the device where the
        // stack trains there).
        let mut dinput = std::mem::take(&mut self.dinput);
        self.stack
            .backward_update_into(&tape, &dh, &mut self.block_opt, Some(&mut dinput))?;
        drop(tape);
        let dh = &dinput;
        let mut gw_in = vec![0.0f32; dm];
        let mut gb_in = vec![0.0f32; dm];
        for (r, &x) in b.input.iter().enumerate() {
            for k in 0..dm {
                gw_in[k] += dh[r * dm + k] * x;
                gb_in[k] += dh[r * dm + k];
            }
        }
        // The same AdamW step for the input and read-out tensors.
        let mut params: Vec<&mut [f32]> = vec![
            &mut self.w_in,
            &mut self.b_in,
            &mut self.w_out,
            &mut self.b_out,
        ];
        self.opt
            .step(&mut params, &[&gw_in, &gb_in, &gw_out, &gb_out]);
        self.dinput = dinput;
        Ok(loss)
    }
}

fn mse(p: &[f32], t: &[f32]) -> f32 {
    (p.iter()
        .zip(t)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / p.len() as f64) as f32
}
