//! Gradients of Mamba2Block against central finite differences of an independent f64
//! implementation of SPEC section 6 (built on the f64 reference kernels), on small
//! random blocks and on the golden cases' blocks.

use std::path::Path;

use mamba_core::{Activation, CausalConv1dArgs, ConvLayout, Kernels, Reference, SsdArgs, Tensor};
use mamba_model::backend::build;
use mamba_model::io::TensorFile;
use mamba_model::{BackendKind, Mamba2Block, Mamba2Config, Mamba2State, Mamba2Weights, SplitMix64};

/// Every differentiable quantity of a block call, in f64.
#[derive(Clone)]
struct Point {
    u: Vec<f64>,
    w: Vec<Vec<f64>>,
    conv0: Vec<f64>,
    ssm0: Vec<f64>,
}

fn weights_f64(w: &Mamba2Weights) -> Vec<Vec<f64>> {
    w.tensors()
        .iter()
        .map(|t| t.iter().map(|&v| v as f64).collect())
        .collect()
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

/// SPEC 6 in f64: returns (out, conv_state, ssm_state).
fn forward64(
    cfg: &Mamba2Config,
    p: &Point,
    batch: usize,
    l: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (dm, di, cd, h, hp, g, n, wd) = (
        cfg.d_model,
        cfg.d_inner(),
        cfg.conv_dim(),
        cfg.nheads(),
        cfg.headdim,
        cfg.ngroups,
        cfg.d_state,
        cfg.d_conv,
    );
    let dip = cfg.d_in_proj();
    // Tensor order of Mamba2Weights::tensors: in_proj, conv_weight, dt_bias, a_log, d,
    // norm_weight, out_proj, then conv_bias (the only bias in these configurations).
    let (win, cw, dtb, alog, dd, nw, wout, cb) = (
        &p.w[0], &p.w[1], &p.w[2], &p.w[3], &p.w[4], &p.w[5], &p.w[6], &p.w[7],
    );
    let rows = batch * l;
    let mut zx = vec![0.0; rows * dip];
    for r in 0..rows {
        for o in 0..dip {
            zx[r * dip + o] = (0..dm).map(|i| p.u[r * dm + i] * win[o * dm + i]).sum();
        }
    }
    let col = |src: &[f64], stride: usize, start: usize, width: usize| -> Vec<f64> {
        src.chunks_exact(stride)
            .flat_map(|row| row[start..start + width].to_vec())
            .collect()
    };
    let z = col(&zx, dip, 0, di);
    let xbc = col(&zx, dip, di, cd);
    let dt = col(&zx, dip, di + cd, h);
    let oracle = Reference::<f64>::oracle();
    let cargs = CausalConv1dArgs::<f64, f64>::new(
        Tensor::new(&xbc, [batch, l, cd]),
        Tensor::new(cw, [cd, wd]),
    )
    .with_bias(Tensor::new(cb, [cd]))
    .with_initial_states(Tensor::new(&p.conv0, [batch, cd, wd - 1]))
    .with_layout(ConvLayout::ChannelLast)
    .with_activation(Activation::Silu);
    let mut xa = vec![0.0; rows * cd];
    let mut conv_state = vec![0.0; batch * cd * (wd - 1)];
    oracle
        .causal_conv1d(&cargs, &mut xa, Some(&mut conv_state))
        .unwrap();
    let x = col(&xa, cd, 0, di);
    let bm = col(&xa, cd, di, g * n);
    let cm = col(&xa, cd, di + g * n, g * n);
    let a: Vec<f64> = alog.iter().map(|v| -v.exp()).collect();
    let mut sargs = SsdArgs::<f64, f64>::new(
        Tensor::new(&x, [batch, l, h, hp]),
        Tensor::new(&dt, [batch, l, h]),
        Tensor::new(&a, [h]),
        Tensor::new(&bm, [batch, l, g, n]),
        Tensor::new(&cm, [batch, l, g, n]),
    )
    .with_d(Tensor::new(dd, [h]))
    .with_dt_bias(Tensor::new(dtb, [h]))
    .with_dt_softplus(true)
    .with_initial_states(Tensor::new(&p.ssm0, [batch, h, hp, n]));
    sargs.dt_limit = cfg.dt_limit;
    let mut y = vec![0.0; rows * di];
    let mut ssm = vec![0.0; batch * h * hp * n];
    oracle.ssd(&sargs, &mut y, Some(&mut ssm)).unwrap();
    let gs = di / g;
    let mut normed = vec![0.0; rows * di];
    for r in 0..rows {
        for k in 0..g {
            let idx: Vec<usize> = (0..gs).map(|e| r * di + k * gs + e).collect();
            let v: Vec<f64> = idx
                .iter()
                .map(|&i| {
                    if cfg.norm_before_gate {
                        y[i]
                    } else {
                        y[i] * silu(z[i])
                    }
                })
                .collect();
            let ms = v.iter().map(|a| a * a).sum::<f64>() / gs as f64;
            let rinv = 1.0 / (ms + cfg.rmsnorm_eps as f64).sqrt();
            for (e, &i) in idx.iter().enumerate() {
                let mut o = v[e] * rinv * nw[k * gs + e];
                if cfg.norm_before_gate {
                    o *= silu(z[i]);
                }
                normed[i] = o;
            }
        }
    }
    let mut out = vec![0.0; rows * dm];
    for r in 0..rows {
        for o in 0..dm {
            out[r * dm + o] = (0..di).map(|i| normed[r * di + i] * wout[o * di + i]).sum();
        }
    }
    (out, conv_state, ssm)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct Upstream {
    dout: Vec<f64>,
    dconv: Vec<f64>,
    dssm: Vec<f64>,
}

fn loss(cfg: &Mamba2Config, p: &Point, batch: usize, l: usize, up: &Upstream) -> f64 {
    let (out, conv, ssm) = forward64(cfg, p, batch, l);
    dot(&out, &up.dout) + dot(&conv, &up.dconv) + dot(&ssm, &up.dssm)
}

fn randv(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.normal() as f64).collect()
}

/// Checks the block's analytic gradients (backend `kind`, f32) against central
/// differences of `forward64` along random directions, for the input, every weight
/// tensor and both initial states.
fn check(
    cfg: &Mamba2Config,
    weights: Mamba2Weights,
    u: Vec<f32>,
    batch: usize,
    l: usize,
    kind: BackendKind,
    seed: u64,
) {
    let mut rng = SplitMix64(seed);
    let blk =
        Mamba2Block::with_selection(cfg.clone(), weights.clone(), &build(kind).unwrap()).unwrap();
    let mut init = Mamba2State::zeros(cfg, batch);
    init.conv.iter_mut().for_each(|v| *v = rng.normal() * 0.5);
    init.ssm.iter_mut().for_each(|v| *v = rng.normal() * 0.1);
    let up = Upstream {
        dout: randv(&mut rng, u.len()),
        dconv: randv(&mut rng, init.conv.len()),
        dssm: randv(&mut rng, init.ssm.len()),
    };
    let tape = blk
        .forward_train(Tensor::new(&u, [batch, l, cfg.d_model]), Some(&init))
        .unwrap();
    let dout32: Vec<f32> = up.dout.iter().map(|&v| v as f32).collect();
    let dstate = Mamba2State {
        batch,
        conv: up.dconv.iter().map(|&v| v as f32).collect(),
        ssm: up.dssm.iter().map(|&v| v as f32).collect(),
    };
    let grads = blk.backward(&tape, &dout32, Some(&dstate)).unwrap();
    let p0 = Point {
        u: u.iter().map(|&v| v as f64).collect(),
        w: weights_f64(&weights),
        conv0: init.conv.iter().map(|&v| v as f64).collect(),
        ssm0: init.ssm.iter().map(|&v| v as f64).collect(),
    };
    let gin = grads.initial_state.as_ref().unwrap();
    let mut named: Vec<(String, Vec<f64>)> = vec![
        (
            "input".into(),
            grads.input.iter().map(|&v| v as f64).collect(),
        ),
        (
            "initial conv state".into(),
            gin.conv.iter().map(|&v| v as f64).collect(),
        ),
        (
            "initial ssm state".into(),
            gin.ssm.iter().map(|&v| v as f64).collect(),
        ),
    ];
    let names = [
        "in_proj",
        "conv_weight",
        "dt_bias",
        "A_log",
        "D",
        "norm_weight",
        "out_proj",
        "conv_bias",
    ];
    for (name, t) in names.iter().zip(grads.weights.tensors()) {
        named.push((name.to_string(), t.iter().map(|&v| v as f64).collect()));
    }
    let eps = 1e-5;
    for (which, (name, analytic)) in named.iter().enumerate() {
        let dir = randv(&mut rng, analytic.len());
        let shift = |s: f64| {
            let mut p = p0.clone();
            let target: &mut Vec<f64> = match which {
                0 => &mut p.u,
                1 => &mut p.conv0,
                2 => &mut p.ssm0,
                k => &mut p.w[k - 3],
            };
            for (t, d) in target.iter_mut().zip(&dir) {
                *t += s * d;
            }
            p
        };
        let fd = (loss(cfg, &shift(eps), batch, l, &up) - loss(cfg, &shift(-eps), batch, l, &up))
            / (2.0 * eps);
        let an = dot(analytic, &dir);
        let scale = fd
            .abs()
            .max(1e-3 * analytic.iter().map(|v| v.abs()).sum::<f64>().max(1.0));
        assert!(
            (an - fd).abs() <= 2e-4 * scale,
            "{kind}: d/d {name}: analytic {an:.8e} vs finite differences {fd:.8e}"
        );
    }
}

fn random_block(cfg: &Mamba2Config, seed: u64) -> Mamba2Weights {
    let mut w = Mamba2Weights::init(cfg, seed).unwrap();
    // Non-trivial D, norm weight and conv bias so their gradients are tested.
    let mut rng = SplitMix64(seed + 1);
    w.d.iter_mut().for_each(|v| *v = rng.normal());
    w.norm_weight
        .iter_mut()
        .for_each(|v| *v = 1.0 + 0.3 * rng.normal());
    w
}

/// The three small configurations of the finite-difference checks, each checked on
/// every backend of `kinds` with the same weights, input and seed.
fn check_small_blocks(kinds: &[BackendKind]) {
    for (i, cfg) in [
        Mamba2Config {
            d_model: 16,
            d_state: 4,
            headdim: 8,
            ngroups: 2,
            d_conv: 3,
            ..Mamba2Config::default()
        },
        Mamba2Config {
            d_model: 8,
            d_state: 8,
            headdim: 4,
            expand: 2,
            norm_before_gate: true,
            chunk_size: 3,
            ..Mamba2Config::default()
        },
        Mamba2Config {
            d_model: 8,
            d_state: 4,
            headdim: 8,
            d_conv: 2,
            dt_limit: Some((0.01, 0.05)),
            ..Mamba2Config::default()
        },
    ]
    .into_iter()
    .enumerate()
    {
        let (batch, l) = (2, 7);
        let w = random_block(&cfg, 10 + i as u64);
        let mut rng = SplitMix64(99 + i as u64);
        let u: Vec<f32> = (0..batch * l * cfg.d_model).map(|_| rng.normal()).collect();
        for &kind in kinds {
            check(&cfg, w.clone(), u.clone(), batch, l, kind, 5 + i as u64);
        }
    }
}

#[test]
fn small_blocks_match_finite_differences() {
    check_small_blocks(&[BackendKind::Reference, BackendKind::CpuSimd]);
}

/// The same checks on the CUDA backend, whose training passes run device-resident
/// (skipped where no GPU is found).
#[test]
fn small_blocks_match_finite_differences_cuda() {
    if let Err(e) = build(BackendKind::Cuda) {
        eprintln!("skipping the CUDA block gradient checks: {e}");
        return;
    }
    check_small_blocks(&[BackendKind::Cuda]);
    println!("cuda block gradients vs finite differences: 3 configurations ok");
}

#[test]
fn golden_blocks_match_finite_differences() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("tests/golden");
    for case in ["mamba2_block_02", "mamba2_block_03"] {
        let file = TensorFile::read(&root.join(format!("{case}.safetensors"))).unwrap();
        let cfg = mamba_model::golden::block_config(&file.metadata).unwrap();
        let w = Mamba2Weights::from_tensor_file(&file, &cfg, Some("weight.")).unwrap();
        let hs = &file.tensors["hidden_states"];
        let (batch, l) = (hs.shape[0], hs.shape[1]);
        check(&cfg, w, hs.to_f32(), batch, l, BackendKind::CpuSimd, 3);
    }
}
