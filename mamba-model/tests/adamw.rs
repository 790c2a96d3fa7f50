//! `AdamW::step` against torch.optim.AdamW's update written out element by element, bit
//! for bit, on tensors small enough for one pass and large enough for the parallel
//! chunks, over several steps.

use mamba_model::{AdamW, SplitMix64};

#[test]
fn adamw_equals_the_update_element_by_element() {
    let mut rng = SplitMix64(3);
    let sizes = [7usize, 1000, 40_000, 100_003];
    let mut params: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| (0..n).map(|_| rng.normal()).collect())
        .collect();
    let mut want = params.clone();
    let mut opt = AdamW::new(3e-3);
    opt.weight_decay = 0.02;
    let (lr, wd, b1, b2, eps) = (opt.lr, opt.weight_decay, opt.beta1, opt.beta2, opt.eps);
    let mut m: Vec<Vec<f32>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
    let mut v = m.clone();
    for t in 1..=3 {
        let grads: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|i| rng.normal() * 10f32.powi(i as i32 % 5 - 2))
                    .collect()
            })
            .collect();
        let mut views: Vec<&mut [f32]> = params.iter_mut().map(|p| p.as_mut_slice()).collect();
        let gs: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
        opt.step(&mut views, &gs);
        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for k in 0..sizes.len() {
            for j in 0..sizes[k] {
                let g = grads[k][j];
                let p = &mut want[k][j];
                *p *= 1.0 - lr * wd;
                m[k][j] = b1 * m[k][j] + (1.0 - b1) * g;
                v[k][j] = b2 * v[k][j] + (1.0 - b2) * g * g;
                *p -= lr * (m[k][j] / bc1) / ((v[k][j] / bc2).sqrt() + eps);
            }
            let differ = params[k]
                .iter()
                .zip(&want[k])
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differ, 0, "step {t}, tensor of {}", sizes[k]);
        }
    }
    assert_eq!(opt.steps(), 3);
}

#[test]
#[should_panic(expected = "tensor 1: 5 parameters, 4 gradients")]
fn adamw_refuses_a_gradient_of_another_length() {
    let mut opt = AdamW::new(1e-3);
    let (mut a, mut b) = (vec![0.0f32; 3], vec![0.0f32; 5]);
    opt.step(&mut [&mut a, &mut b], &[&[1.0; 3], &[1.0; 4]]);
}
