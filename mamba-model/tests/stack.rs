//! `Mamba2Stack` on the CPU backends: the same numbers as chaining the blocks by hand,
//! gradients against central finite differences of the stack's own forward, and the
//! refusals. (The device-resident passes are checked on the GPU in
//! mamba-cuda/tests/gpu_block_train.rs.)

use mamba_model::backend::build;
use mamba_model::{
    bf16, BackendKind, Element, Mamba2Block, Mamba2Config, Mamba2Stack, Mamba2Weights, ModelError,
    SplitMix64, Tensor,
};

fn cfg() -> Mamba2Config {
    Mamba2Config {
        d_model: 16,
        d_state: 8,
        headdim: 8,
        chunk_size: 4,
        ..Mamba2Config::default()
    }
}

fn random_weights(cfg: &Mamba2Config, seed: u64) -> Mamba2Weights {
    let mut w = Mamba2Weights::init(cfg, seed).unwrap();
    let mut rng = SplitMix64(seed + 100);
    w.d.iter_mut().for_each(|v| *v = rng.normal());
    w.norm_weight
        .iter_mut()
        .for_each(|v| *v = 1.0 + 0.3 * rng.normal());
    w.out_proj.iter_mut().for_each(|v| *v *= 0.5);
    w
}

fn stack_on(kind: BackendKind, cfg: &Mamba2Config, n: usize, seed: u64) -> Mamba2Stack {
    let sel = build(kind).unwrap();
    let blocks = (0..n)
        .map(|k| {
            Mamba2Block::with_selection(cfg.clone(), random_weights(cfg, seed + k as u64), &sel)
                .unwrap()
        })
        .collect();
    Mamba2Stack::new(blocks).unwrap()
}

fn randn(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

/// A random direction of unit length.
fn direction(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    let v = randn(rng, n);
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.into_iter().map(|a| a / norm).collect()
}

/// The stack's passes equal the blocks chained by hand, residual adds on the host.
fn check_against_chained<T: Element + mamba_core::plugin::DeviceElement>(kind: BackendKind)
where
    dyn mamba_core::Backend: mamba_core::Kernels<T>,
{
    let cfg = cfg();
    let stack = stack_on(kind, &cfg, 3, 7);
    let (b, l) = (2, 11);
    let shape = [b, l, cfg.d_model];
    let mut rng = SplitMix64(5);
    let to_t = |v: Vec<f32>| v.into_iter().map(T::from_f32).collect::<Vec<T>>();
    let x = to_t(randn(&mut rng, b * l * cfg.d_model));
    let dout = to_t(randn(&mut rng, x.len()));
    let add = |h: &mut Vec<T>, y: &[T]| {
        h.iter_mut()
            .zip(y)
            .for_each(|(a, c)| *a = T::from_f64(a.to_f64() + c.to_f64()))
    };

    let mut h = x.clone();
    let mut tapes = Vec::new();
    for blk in stack.blocks() {
        let t = blk.forward_train(Tensor::new(&h, shape), None).unwrap();
        add(&mut h, t.output());
        tapes.push(t);
    }
    let mut g = dout.clone();
    let mut want_w = Vec::new();
    for (blk, t) in stack.blocks().iter().zip(&tapes).rev() {
        let gb = blk.backward(t, &g, None).unwrap();
        add(&mut g, &gb.input);
        want_w.push(gb.weights);
    }
    want_w.reverse();

    let out = stack.forward(Tensor::new(&x, shape)).unwrap();
    assert_eq!(out, h, "{kind:?} {}: forward", T::DTYPE);
    let tape = stack.forward_train(Tensor::new(&x, shape)).unwrap();
    assert!(!tape.on_device());
    assert_eq!(tape.device_bytes(), 0);
    assert_eq!(
        tape.output(),
        &h[..],
        "{kind:?} {}: forward_train",
        T::DTYPE
    );
    let grads = stack.backward(&tape, &dout).unwrap();
    assert_eq!(grads.input, g, "{kind:?} {}: d input", T::DTYPE);
    assert_eq!(grads.blocks.len(), 3);
    for (k, (got, want)) in grads.blocks.iter().zip(&want_w).enumerate() {
        assert_eq!(
            got.tensors(),
            want.tensors(),
            "{kind:?} {}: block {k}",
            T::DTYPE
        );
    }
    // A second backward of the same tape gives the same gradients, also into the
    // vectors of another pass's gradients.
    let again = stack.backward(&tape, &dout).unwrap();
    assert_eq!(again.input, grads.input);
    let other = stack.forward_train(Tensor::new(&dout, shape)).unwrap();
    let mut into = stack.backward(&other, &x).unwrap();
    stack.backward_into(&tape, &dout, &mut into).unwrap();
    assert_eq!(into.input, grads.input);
    for (a, b) in into.blocks.iter().zip(&grads.blocks) {
        assert_eq!(a.tensors(), b.tensors());
    }
}

#[test]
fn stack_equals_the_blocks_chained_by_hand() {
    for kind in [BackendKind::Reference, BackendKind::CpuSimd] {
        check_against_chained::<f32>(kind);
        check_against_chained::<bf16>(kind);
    }
}

/// `sum(dout * stack(x))` with every tensor given.
fn objective(stack: &Mamba2Stack, x: &[f32], dout: &[f32], shape: [usize; 3]) -> f64 {
    let y = stack.forward(Tensor::new(x, shape)).unwrap();
    y.iter().zip(dout).map(|(a, b)| *a as f64 * *b as f64).sum()
}

#[test]
fn stack_gradients_match_finite_differences() {
    // Directional derivatives: along a random direction of the input, and of each
    // block's in_proj, conv weight, A_log and out_proj, against <gradient, direction>.
    let cfg = Mamba2Config {
        d_model: 8,
        d_state: 4,
        headdim: 4,
        chunk_size: 3,
        ..Mamba2Config::default()
    };
    let stack = stack_on(BackendKind::Reference, &cfg, 2, 41);
    let (b, l) = (2, 6);
    let shape = [b, l, cfg.d_model];
    let mut rng = SplitMix64(8);
    let x = randn(&mut rng, b * l * cfg.d_model);
    let dout = randn(&mut rng, x.len());
    let tape = stack.forward_train(Tensor::new(&x, shape)).unwrap();
    let grads = stack.backward(&tape, &dout).unwrap();
    let eps = 1e-2f32;
    let dot =
        |g: &[f32], v: &[f32]| -> f64 { g.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum() };
    let close = |what: &str, fd: f64, an: f64| {
        let err = (fd - an).abs() / an.abs().max(0.05);
        assert!(
            err < 2e-3,
            "{what}: finite differences {fd:.6e}, backward {an:.6e}"
        );
    };

    let v = direction(&mut rng, x.len());
    let shifted = |s: f32| -> Vec<f32> { x.iter().zip(&v).map(|(a, d)| a + s * d).collect() };
    let fd = (objective(&stack, &shifted(eps), &dout, shape)
        - objective(&stack, &shifted(-eps), &dout, shape))
        / (2.0 * eps as f64);
    close("input", fd, dot(&grads.input, &v));

    // Tensor indices of Mamba2Weights::tensors: 0 in_proj, 1 conv weight, 3 A_log,
    // 6 out_proj.
    for k in 0..stack.len() {
        for t in [0usize, 1, 3, 6] {
            let base = stack.blocks()[k].weights().clone();
            let v = direction(&mut rng, base.tensors()[t].len());
            let at = |s: f32| -> f64 {
                let mut w = base.clone();
                w.tensors_mut()[t]
                    .iter_mut()
                    .zip(&v)
                    .for_each(|(a, d)| *a += s * d);
                let mut st = stack.clone();
                st.block_mut(k).set_weights(w).unwrap();
                objective(&st, &x, &dout, shape)
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            close(
                &format!("block {k} tensor {t}"),
                fd,
                dot(grads.blocks[k].tensors()[t], &v),
            );
        }
    }
}

#[test]
fn stack_refuses_what_does_not_fit() {
    let cfg = cfg();
    let sel = build(BackendKind::Reference).unwrap();
    let blk = |c: &Mamba2Config| Mamba2Block::with_selection(c.clone(), random_weights(c, 1), &sel);
    let e = Mamba2Stack::new(Vec::new()).unwrap_err();
    assert!(e.to_string().contains("at least one block"), "{e}");
    let wide = Mamba2Config {
        d_model: 32,
        ..cfg.clone()
    };
    let e = Mamba2Stack::new(vec![blk(&cfg).unwrap(), blk(&wide).unwrap()]).unwrap_err();
    assert!(e.to_string().contains("block 1 has d_model 32"), "{e}");

    let mut stack = Mamba2Stack::new(vec![blk(&cfg).unwrap(), blk(&cfg).unwrap()]).unwrap();
    assert_eq!(
        (stack.len(), stack.d_model(), stack.is_empty()),
        (2, 16, false)
    );
    assert_eq!(stack.on_device(mamba_model::DType::F32), (false, false));
    assert!(
        !stack.release_buffers(),
        "the host path keeps no device buffers"
    );
    let (b, l) = (1, 5);
    let x = vec![0.5f32; b * l * 16];
    // A wrong width, and a buffer that does not match its shape.
    let e = stack.forward(Tensor::new(&x, [b, l * 2, 8])).unwrap_err();
    assert!(matches!(e, ModelError::Shape { .. }), "{e}");
    let e = stack
        .forward_train(Tensor::new(&x[1..], [b, l, 16]))
        .unwrap_err();
    assert!(matches!(e, ModelError::Shape { .. }), "{e}");
    let tape = stack.forward_train(Tensor::new(&x, [b, l, 16])).unwrap();
    let e = stack.backward(&tape, &x[1..]).unwrap_err();
    assert!(e.to_string().contains("dout"), "{e}");
    // A tape of another stack, or of a clone, is refused.
    let other = stack.clone();
    let e = other.backward(&tape, &x).unwrap_err();
    assert!(e.to_string().contains("another stack"), "{e}");
    assert!(stack.backward(&tape, &x).is_ok());
    // set_weights: one set per block, each of the block's shapes; nothing changes on refusal.
    let before: Vec<Vec<f32>> = stack.blocks()[0]
        .weights()
        .tensors()
        .iter()
        .map(|t| t.to_vec())
        .collect();
    let w = random_weights(&cfg, 9);
    let e = stack.set_weights(vec![w.clone()]).unwrap_err();
    assert!(
        e.to_string().contains("1 weight sets for a stack of 2"),
        "{e}"
    );
    let mut bad = w.clone();
    bad.out_proj.pop();
    assert!(stack.set_weights(vec![w.clone(), bad]).is_err());
    let now: Vec<Vec<f32>> = stack.blocks()[0]
        .weights()
        .tensors()
        .iter()
        .map(|t| t.to_vec())
        .collect();
    assert_eq!(before, now);
    stack.set_weights(vec![w.clone(), w.clone()]).unwrap();
    assert_eq!(stack.blocks()[1].weights().out_proj, w.out_proj);
    // swap_weights hands back the weights it replaced, and refuses what does not fit.
    let mut w2 = random_weights(&cfg, 10);
    let keep = w2.clone();
    stack.block_mut(0).swap_weights(&mut w2).unwrap();
    assert_eq!((stack.blocks()[0].weights(), &w2), (&keep, &w));
    let mut bad = w.clone();
    bad.d.push(1.0);
    assert!(stack.block_mut(0).swap_weights(&mut bad).is_err());
    assert_eq!(stack.blocks()[0].weights(), &keep);
    assert_eq!(stack.into_blocks().len(), 2);
}

#[test]
fn backward_update_equals_backward_then_adamw() {
    // The host path of backward_update: the gradients of backward, then AdamW::step over
    // every block's tensors in order, then set_weights; bit for bit, over three steps.
    use mamba_model::{AdamW, StackAdamW};
    let cfg = cfg();
    let mut a = stack_on(BackendKind::CpuSimd, &cfg, 2, 17);
    let mut b = a.clone();
    let mut opt_a = StackAdamW::new(1e-2);
    let mut opt_b = AdamW::new(1e-2);
    let (bs, l) = (2, 9);
    let shape = [bs, l, cfg.d_model];
    let mut rng = SplitMix64(23);
    for step in 0..3 {
        let x = randn(&mut rng, bs * l * cfg.d_model);
        let dout = randn(&mut rng, x.len());
        let ta = a.forward_train(Tensor::new(&x, shape)).unwrap();
        // backward_update, then its _into form into another vector, then with no input
        // gradient wanted.
        let dx = match step {
            0 => a.backward_update(&ta, &dout, &mut opt_a).unwrap(),
            1 => {
                let mut v = vec![7.0f32; 3];
                a.backward_update_into(&ta, &dout, &mut opt_a, Some(&mut v))
                    .unwrap();
                v
            }
            _ => {
                a.backward_update_into(&ta, &dout, &mut opt_a, None)
                    .unwrap();
                Vec::new()
            }
        };
        // The tape is spent: its weights changed.
        let e = a.backward(&ta, &dout).unwrap_err();
        assert!(e.to_string().contains("changed since the tape"), "{e}");

        let tb = b.forward_train(Tensor::new(&x, shape)).unwrap();
        let g = b.backward(&tb, &dout).unwrap();
        let mut ws: Vec<Mamba2Weights> = b.blocks().iter().map(|k| k.weights().clone()).collect();
        let mut params: Vec<&mut [f32]> = ws.iter_mut().flat_map(|w| w.tensors_mut()).collect();
        let grads: Vec<&[f32]> = g.blocks.iter().flat_map(|w| w.tensors()).collect();
        opt_b.step(&mut params, &grads);
        b.set_weights(ws).unwrap();

        if step < 2 {
            assert_eq!(dx, g.input, "step {step}: d input");
        }
        for (k, (wa, wb)) in a.blocks().iter().zip(b.blocks()).enumerate() {
            assert_eq!(wa.weights(), wb.weights(), "step {step}: block {k}");
        }
        assert_ne!(
            a.blocks()[0].weights(),
            stack_on(BackendKind::CpuSimd, &cfg, 2, 17).blocks()[0].weights()
        );
    }
    assert_eq!((opt_a.adamw.steps(), opt_b.steps()), (3, 3));
    // set_weights and block_mut spend tapes too.
    let x = vec![0.1f32; bs * l * cfg.d_model];
    let t = a.forward_train(Tensor::new(&x, shape)).unwrap();
    a.block_mut(0).set_keep_activations(true);
    assert!(a.backward(&t, &x).is_err());
    let t = a.forward_train(Tensor::new(&x, shape)).unwrap();
    let ws: Vec<Mamba2Weights> = a.blocks().iter().map(|k| k.weights().clone()).collect();
    a.set_weights(ws).unwrap();
    assert!(a.backward_update(&t, &x, &mut opt_a).is_err());
    assert_eq!(opt_a.adamw.steps(), 3, "a refused update counts no step");
}

#[test]
fn stack_streams_in_chunks_and_steps() {
    // forward_with_state over two chunks, and step frame by frame, equal the whole
    // sequence's forward (within the chunked SSD's rounding); states are checked first.
    let cfg = cfg();
    let stack = stack_on(BackendKind::CpuSimd, &cfg, 3, 29);
    let (b, l, dm) = (2, 10, cfg.d_model);
    let mut rng = SplitMix64(31);
    let x = randn(&mut rng, b * l * dm);
    let whole = stack.forward(Tensor::new(&x, [b, l, dm])).unwrap();
    let rel = |got: &[f32], want: &[f32]| {
        let num: f64 = got
            .iter()
            .zip(want)
            .map(|(a, c)| ((a - c) as f64).powi(2))
            .sum();
        let den: f64 = want.iter().map(|c| (*c as f64).powi(2)).sum();
        (num / den).sqrt()
    };
    // Chunks of 6 and 4 frames.
    let frames = |v: &[f32], lo: usize, hi: usize| -> Vec<f32> {
        (0..b)
            .flat_map(|r| v[(r * l + lo) * dm..(r * l + hi) * dm].to_vec())
            .collect()
    };
    let mut st = stack.zero_state(b);
    let y1 = stack
        .forward_with_state(Tensor::new(&frames(&x, 0, 6), [b, 6, dm]), &mut st)
        .unwrap();
    let y2 = stack
        .forward_with_state(Tensor::new(&frames(&x, 6, 10), [b, 4, dm]), &mut st)
        .unwrap();
    let mut chunked = vec![0.0f32; whole.len()];
    for r in 0..b {
        chunked[r * l * dm..(r * l + 6) * dm].copy_from_slice(&y1[r * 6 * dm..(r + 1) * 6 * dm]);
        chunked[(r * l + 6) * dm..(r + 1) * l * dm]
            .copy_from_slice(&y2[r * 4 * dm..(r + 1) * 4 * dm]);
    }
    let e = rel(&chunked, &whole);
    assert!(e < 1e-5, "two chunks against the whole: {e:.2e}");
    // Frame by frame.
    let mut st = stack.zero_state(b);
    let mut stepped = vec![0.0f32; whole.len()];
    for t in 0..l {
        let xt = frames(&x, t, t + 1);
        let yt = stack.step(Tensor::new(&xt, [b, dm]), &mut st).unwrap();
        for r in 0..b {
            stepped[(r * l + t) * dm..(r * l + t + 1) * dm]
                .copy_from_slice(&yt[r * dm..(r + 1) * dm]);
        }
    }
    let e = rel(&stepped, &whole);
    assert!(e < 1e-5, "frame by frame against the whole: {e:.2e}");
    // A wrong number of states, or one of another batch, changes nothing.
    let mut two = stack.zero_state(b)[..2].to_vec();
    let e = stack
        .step(Tensor::new(&x[..b * dm], [b, dm]), &mut two)
        .unwrap_err();
    assert!(e.to_string().contains("2 states for a stack of 3"), "{e}");
    let mut mixed = stack.zero_state(b);
    mixed[2] = stack.zero_state(1).pop().unwrap();
    let before = mixed.clone();
    assert!(stack
        .forward_with_state(Tensor::new(&x, [b, l, dm]), &mut mixed)
        .is_err());
    assert!(mixed
        .iter()
        .zip(&before)
        .all(|(a, c)| a.conv == c.conv && a.ssm == c.ssm));
}

#[test]
fn decoder_continues_a_prompt_as_step_does() {
    // A prompt through forward_with_state, then frames through a decoder made from its
    // states: every output and the final states are those of Mamba2Stack::step from the
    // same states (on the CPU the decoder holds them on the host and steps with them).
    let cfg = cfg();
    for kind in [BackendKind::Reference, BackendKind::CpuSimd] {
        let stack = stack_on(kind, &cfg, 3, 41);
        let (b, l, dm) = (2, 5, cfg.d_model);
        let mut rng = SplitMix64(43);
        let prompt = randn(&mut rng, b * l * dm);
        let mut st = stack.zero_state(b);
        stack
            .forward_with_state(Tensor::new(&prompt, [b, l, dm]), &mut st)
            .unwrap();
        let mut dec = stack.decoder_from::<f32>(st.clone()).unwrap();
        assert_eq!(dec.batch(), b);
        assert!(!dec.on_device());
        assert_eq!(dec.states().unwrap(), st);
        for _ in 0..4 {
            let x = randn(&mut rng, b * dm);
            let want = stack.step(Tensor::new(&x, [b, dm]), &mut st).unwrap();
            let got = dec.step(Tensor::new(&x, [b, dm])).unwrap();
            assert_eq!(got, want, "{kind:?}");
        }
        assert_eq!(dec.states().unwrap(), st);
        // From the zero state: the first frame's output is a fresh step's.
        let mut dec = stack.decoder::<f32>(b).unwrap();
        let x = randn(&mut rng, b * dm);
        let mut zero = stack.zero_state(b);
        assert_eq!(
            dec.step(Tensor::new(&x, [b, dm])).unwrap(),
            stack.step(Tensor::new(&x, [b, dm]), &mut zero).unwrap()
        );
        // Refusals: a frame of another batch or width (the states unchanged), no rows,
        // states that do not fit the stack.
        let before = dec.states().unwrap();
        let e = dec
            .step(Tensor::new(&x[..dm], [1, dm]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("decoder step input"), "{e}");
        assert!(dec.step(Tensor::new(&x[..b * 8], [b, 8])).is_err());
        assert_eq!(dec.states().unwrap(), before);
        assert!(stack.decoder::<f32>(0).is_err());
        let e = stack
            .decoder_from::<f32>(stack.zero_state(b)[..2].to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 states for a stack of 3"), "{e}");
        let mut mixed = stack.zero_state(b);
        mixed[1] = stack.zero_state(1).pop().unwrap();
        assert!(stack.decoder_from::<f32>(mixed.clone()).is_err());
        // set_states: refused where the states do not fit (nothing changes), then the
        // next step continues from them; reset: the zero state again.
        let before = dec.states().unwrap();
        assert!(dec.set_states(&mixed).is_err());
        let e = dec.set_states(&st[..1]).unwrap_err().to_string();
        assert!(e.contains("1 states for a stack of 3"), "{e}");
        assert_eq!(dec.states().unwrap(), before);
        dec.set_states(&st).unwrap();
        assert_eq!(dec.states().unwrap(), st);
        let x = randn(&mut rng, b * dm);
        let mut want_st = st.clone();
        let want = stack.step(Tensor::new(&x, [b, dm]), &mut want_st).unwrap();
        assert_eq!(
            dec.step(Tensor::new(&x, [b, dm])).unwrap(),
            want,
            "{kind:?}"
        );
        assert_eq!(dec.states().unwrap(), want_st);
        dec.reset().unwrap();
        assert_eq!(dec.states().unwrap(), stack.zero_state(b));
        let mut zero = stack.zero_state(b);
        assert_eq!(
            dec.step(Tensor::new(&x, [b, dm])).unwrap(),
            stack.step(Tensor::new(&x, [b, dm]), &mut zero).unwrap()
        );
        // prefill: a prompt from the decoder's states, as forward_with_state from the
        // same states; the steps after it continue from the prompt's end.
        let prompt2 = randn(&mut rng, b * 3 * dm);
        let got = dec.prefill(Tensor::new(&prompt2, [b, 3, dm])).unwrap();
        let want = stack
            .forward_with_state(Tensor::new(&prompt2, [b, 3, dm]), &mut zero)
            .unwrap();
        assert_eq!(got, want, "{kind:?} prefill");
        assert_eq!(dec.states().unwrap(), zero);
        let x = randn(&mut rng, b * dm);
        assert_eq!(
            dec.step(Tensor::new(&x, [b, dm])).unwrap(),
            stack.step(Tensor::new(&x, [b, dm]), &mut zero).unwrap()
        );
        let before = dec.states().unwrap();
        let e = dec
            .prefill(Tensor::new(&prompt2[..3 * dm], [1, 3, dm]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("decoder prefill input"), "{e}");
        assert!(dec.prefill(Tensor::new(&x, [b, dm])).is_err());
        assert_eq!(dec.states().unwrap(), before);
    }
}

#[test]
fn backward_update_clips_by_the_global_norm() {
    // The host path with max_grad_norm: the norm of every block's gradients together,
    // reported by grad_norm, and the gradients scaled by min(1, max / (norm + 1e-6))
    // before AdamW::step (PyTorch's clip_grad_norm_), bit for bit; no scaling when the
    // norm is under the limit.
    use mamba_model::{AdamW, StackAdamW};
    let cfg = cfg();
    let (bs, l) = (2, 7);
    let shape = [bs, l, cfg.d_model];
    let mut rng = SplitMix64(37);
    let x = randn(&mut rng, bs * l * cfg.d_model);
    let dout = randn(&mut rng, x.len());
    for max in [1e-3f32, 1e6] {
        let mut a = stack_on(BackendKind::CpuSimd, &cfg, 2, 47);
        let b = a.clone();
        let mut opt = StackAdamW::new(1e-2);
        opt.max_grad_norm = Some(max);
        assert_eq!(opt.grad_norm(), None);
        let t = a.forward_train(Tensor::new(&x, shape)).unwrap();
        a.backward_update(&t, &dout, &mut opt).unwrap();

        let t = b.forward_train(Tensor::new(&x, shape)).unwrap();
        let g = b.backward(&t, &dout).unwrap();
        let norm = g
            .blocks
            .iter()
            .flat_map(|w| w.tensors())
            .flat_map(|t| t.iter())
            .map(|&v| v as f64 * v as f64)
            .sum::<f64>()
            .sqrt() as f32;
        assert_eq!(opt.grad_norm(), Some(norm));
        let scale = (max / (norm + 1e-6)).min(1.0);
        assert_eq!(scale < 1.0, max < 1.0, "norm {norm}");
        let scaled: Vec<Vec<f32>> = g
            .blocks
            .iter()
            .flat_map(|w| w.tensors())
            .map(|t| t.iter().map(|v| v * scale).collect())
            .collect();
        let mut ws: Vec<Mamba2Weights> = b.blocks().iter().map(|k| k.weights().clone()).collect();
        let mut params: Vec<&mut [f32]> = ws.iter_mut().flat_map(|w| w.tensors_mut()).collect();
        let mut host = AdamW::new(1e-2);
        host.step(
            &mut params,
            &scaled.iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
        );
        for (k, (wa, w)) in a.blocks().iter().zip(&ws).enumerate() {
            assert_eq!(wa.weights(), w, "max {max}: block {k}");
        }
    }
}
