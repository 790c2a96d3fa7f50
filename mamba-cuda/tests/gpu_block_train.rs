//! The Mamba2Block's device-resident training path (`forward_train` + `backward` on the
//! CUDA backend: one plugin call `block_backward` that recomputes the activations and
//! runs every backward step on the device) against the host backward on the
//! reference backend (itself checked against f64 finite differences in
//! mamba-model/tests/block_grad.rs), on odd shapes and the default configuration, at
//! the SPEC gradient tolerances (f32 1e-4, bf16 2e-2, f16 5e-3). Skips with a message
//! where no GPU is found. `MAMBA_BLOCK_TRAIN_BENCH=1` adds timings of the forward +
//! backward at the benchmark shape (device-resident with CUDA events, and through the
//! host API, and the host path for comparison).

use mamba_core::Tensor;
use mamba_model::backend::build;
use mamba_model::{
    bf16, f16, BackendKind, Element, Mamba2Block, Mamba2Config, Mamba2Grads, Mamba2State,
    Mamba2Weights, Selection, SplitMix64,
};

mod sweep;

fn cuda_available() -> bool {
    // `block_train_switches_match_host` changes the plugin's overrides at run time: the
    // plugin must read them on every call (it reads none when none was set at its first look).
    std::env::set_var("MAMBA_CUDA_ENV_LIVE", "1");
    match build(BackendKind::Cuda) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping the GPU block training tests: {e}");
            false
        }
    }
}

fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    if den == 0.0 {
        return num.sqrt();
    }
    (num / den).sqrt()
}

fn named<T: Element>(g: &Mamba2Grads<T>) -> Vec<(String, Vec<f64>)> {
    let mut v: Vec<(String, Vec<f64>)> = vec![(
        "input".into(),
        g.input.iter().map(|x| x.to_f32() as f64).collect(),
    )];
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
    for (n, t) in names.iter().zip(g.weights.tensors()) {
        v.push((n.to_string(), t.iter().map(|&x| x as f64).collect()));
    }
    if let Some(s) = &g.initial_state {
        v.push((
            "initial conv".into(),
            s.conv.iter().map(|&x| x as f64).collect(),
        ));
        v.push((
            "initial ssm".into(),
            s.ssm.iter().map(|&x| x as f64).collect(),
        ));
    }
    v
}

/// A small block (d_model 24, N 8, headdim 8: 6 heads) for the API tests.
fn small_cfg() -> Mamba2Config {
    Mamba2Config {
        d_model: 24,
        d_state: 8,
        headdim: 8,
        ..Mamba2Config::default()
    }
}

fn random_weights(cfg: &Mamba2Config, seed: u64) -> Mamba2Weights {
    let mut w = Mamba2Weights::init(cfg, seed).unwrap();
    let mut rng = SplitMix64(seed + 1);
    w.d.iter_mut().for_each(|v| *v = rng.normal());
    w.norm_weight
        .iter_mut()
        .for_each(|v| *v = 1.0 + 0.3 * rng.normal());
    if let Some(b) = w.conv_bias.as_mut() {
        b.iter_mut().for_each(|v| *v = 0.2 * rng.normal());
    }
    w
}

struct Case {
    cfg: Mamba2Config,
    batch: usize,
    l: usize,
    init: bool,
    dstate: bool,
}

/// Runs one case in storage type `T` on the device path and compares every gradient
/// with the reference backend's host backward in f32; returns the worst error.
/// `keep`: the forward keeps its activations on the device (the default), else the
/// backward recomputes them.
fn run_case<T: Element>(c: &Case, seed: u64, tol: f64, keep: bool) -> Result<f64, String>
where
    dyn mamba_core::Backend: mamba_core::Kernels<T>,
{
    run_case_against::<T>(c, seed, tol, keep, false, &[])
}

/// Variables set for a while: the earlier values come back on drop.
struct LateEnv(Vec<(String, Option<String>)>);

impl LateEnv {
    fn set(vars: &[(&str, &str)]) -> Self {
        LateEnv(
            vars.iter()
                .map(|(k, v)| {
                    let before = std::env::var(k).ok();
                    std::env::set_var(k, v);
                    (k.to_string(), before)
                })
                .collect(),
        )
    }
}

impl Drop for LateEnv {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// `run_case` against the reference backend accumulating in f32 (`oracle` false) or in f64
/// (`Reference::oracle()`, storage still `T`): at long lengths the f32 reference's own
/// error in the per-head sums (d A_log: 2.8e-5 at b3 L1024 d_model 192 N16, measured
/// against the f64-accumulating one) is a large part of the 1e-4 tolerance. `late`: variables
/// set after the device block is made, for the rest of the case.
fn run_case_against<T: Element>(
    c: &Case,
    seed: u64,
    tol: f64,
    keep: bool,
    oracle: bool,
    late: &[(&str, &str)],
) -> Result<f64, String>
where
    dyn mamba_core::Backend: mamba_core::Kernels<T>,
{
    let cfg = &c.cfg;
    let w = random_weights(cfg, seed);
    let mut dev =
        Mamba2Block::with_selection(cfg.clone(), w.clone(), &build(BackendKind::Cuda).unwrap())
            .unwrap();
    dev.set_keep_activations(keep);
    let _late = LateEnv::set(late);
    let sel = if oracle {
        Selection {
            kind: BackendKind::Reference,
            backend: std::sync::Arc::new(mamba_core::Reference::<f64>::oracle()),
            report: "reference (f64 accumulation)".into(),
        }
    } else {
        build(BackendKind::Reference).unwrap()
    };
    let reff = Mamba2Block::with_selection(cfg.clone(), w, &sel).unwrap();
    let mut rng = SplitMix64(seed * 7 + 3);
    let n = c.batch * c.l * cfg.d_model;
    let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let dout: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut init = Mamba2State::zeros(cfg, c.batch);
    init.conv.iter_mut().for_each(|v| *v = rng.normal() * 0.5);
    init.ssm.iter_mut().for_each(|v| *v = rng.normal() * 0.1);
    let mut ds = Mamba2State::zeros(cfg, c.batch);
    ds.conv.iter_mut().for_each(|v| *v = rng.normal());
    ds.ssm.iter_mut().for_each(|v| *v = rng.normal());
    let init = c.init.then_some(&init);
    let ds = c.dstate.then_some(&ds);
    let ut: Vec<T> = u.iter().map(|&v| T::from_f32(v)).collect();
    let dt: Vec<T> = dout.iter().map(|&v| T::from_f32(v)).collect();
    let shape = [c.batch, c.l, cfg.d_model];
    let tape = dev
        .forward_train(Tensor::new(&ut, shape), init)
        .map_err(|e| e.to_string())?;
    if !tape.on_device() {
        return Err("the CUDA block did not take the device training path".into());
    }
    if keep != (tape.device_bytes() > 0) {
        return Err(format!(
            "keep_activations {keep} but the tape holds {} device bytes",
            tape.device_bytes()
        ));
    }
    let gd = dev.backward(&tape, &dt, ds).map_err(|e| e.to_string())?;
    // The reference backend's host backward in the same storage type: the same
    // activations are rounded to it (z, xBC, x, B, C, dt, y, dy), so the comparison
    // measures the device path, not the type's conditioning.
    let tr = reff
        .forward_train::<T>(Tensor::new(&ut, shape), init)
        .map_err(|e| e.to_string())?;
    let gr = reff
        .backward::<T>(&tr, &dt, ds)
        .map_err(|e| e.to_string())?;
    // The forward's output and state too.
    let out_d: Vec<f64> = tape.output().iter().map(|v| v.to_f32() as f64).collect();
    let out_r: Vec<f64> = tr.output().iter().map(|v| v.to_f32() as f64).collect();
    let mut worst = rel_l2(&out_d, &out_r);
    let mut msg = format!("out {worst:.2e}");
    let (a, b) = (named(&gd), named(&gr));
    if a.len() != b.len() {
        return Err(format!("{} gradients vs {}", a.len(), b.len()));
    }
    // In bf16/f16 the per-head sums (dD, d dt_bias, dA_log over L*p terms) cancel,
    // and one rounding of an activation to the storage type moves them far: a miss
    // passes only within 50x of the reference's own change when the input moves by
    // about one unit in the last place of the type (the cpu-simd tests' rule).
    let mut jitter: Option<Vec<(String, Vec<f64>)>> = None;
    for (k, ((na, va), (_, vb))) in a.iter().zip(&b).enumerate() {
        let e = rel_l2(va, vb);
        msg.push_str(&format!(" {na} {e:.2e}"));
        if e.is_nan() || e > tol {
            if T::DTYPE == mamba_model::DType::F32 {
                return Err(format!(
                    "d/d {na}: relative L2 error {e:.3e} > {tol:.0e} ({msg})"
                ));
            }
            if jitter.is_none() {
                let step = if T::DTYPE == mamba_model::DType::BF16 {
                    1.0 / 128.0
                } else {
                    1.0 / 1024.0
                };
                let mut jr = SplitMix64(seed + 17);
                let uj: Vec<T> = ut
                    .iter()
                    .map(|v| {
                        let s = if jr.next_f32() < 0.5 { -step } else { step };
                        T::from_f32(v.to_f32() * (1.0 + s))
                    })
                    .collect();
                let tj = reff
                    .forward_train::<T>(Tensor::new(&uj, shape), init)
                    .map_err(|e| e.to_string())?;
                let gj = reff
                    .backward::<T>(&tj, &dt, ds)
                    .map_err(|e| e.to_string())?;
                jitter = Some(named(&gj));
            }
            let noise = rel_l2(&jitter.as_ref().unwrap()[k].1, vb);
            msg.push_str(&format!(" (ref. change under one-ulp jitter {noise:.2e})"));
            if e.is_nan() || e > 50.0 * noise {
                return Err(format!(
                    "d/d {na}: relative L2 error {e:.3e} > {tol:.0e} and > 50x the \
                     reference's one-ulp change {noise:.2e} ({msg})"
                ));
            }
            continue;
        }
        worst = worst.max(e);
    }
    println!(
        "  b{} L{} dm{} N{} hd{} g{} W{} nbg{} init{} dstate{} keep{} {}: worst {worst:.2e} [{msg}]",
        c.batch,
        c.l,
        cfg.d_model,
        cfg.d_state,
        cfg.headdim,
        cfg.ngroups,
        cfg.d_conv,
        cfg.norm_before_gate as u8,
        c.init as u8,
        c.dstate as u8,
        keep as u8,
        std::any::type_name::<T>()
    );
    Ok(worst)
}

fn cases() -> Vec<Case> {
    let small = |d_model, d_state, headdim, ngroups, d_conv, nbg: bool| Mamba2Config {
        d_model,
        d_state,
        headdim,
        ngroups,
        d_conv,
        norm_before_gate: nbg,
        ..Mamba2Config::default()
    };
    let mut v = vec![
        // The default configuration at the benchmark width.
        Case {
            cfg: Mamba2Config::new(192, 64),
            batch: 2,
            l: 100,
            init: false,
            dstate: false,
        },
        Case {
            cfg: Mamba2Config::new(192, 64),
            batch: 2,
            l: 400,
            init: true,
            dstate: true,
        },
        // L = 1.
        Case {
            cfg: small(16, 4, 8, 2, 3, false),
            batch: 1,
            l: 1,
            init: true,
            dstate: true,
        },
        // L not a multiple of any tile, three sequences, groups.
        Case {
            cfg: small(16, 4, 8, 2, 3, false),
            batch: 3,
            l: 77,
            init: true,
            dstate: false,
        },
        Case {
            cfg: small(8, 8, 4, 1, 4, true),
            batch: 2,
            l: 33,
            init: false,
            dstate: true,
        },
        Case {
            cfg: Mamba2Config {
                dt_limit: Some((0.01, 0.05)),
                chunk_size: 3,
                ..small(24, 16, 12, 2, 2, false)
            },
            batch: 1,
            l: 129,
            init: true,
            dstate: true,
        },
        Case {
            cfg: Mamba2Config {
                conv_bias: false,
                ..small(40, 32, 20, 4, 4, true)
            },
            batch: 2,
            l: 65,
            init: false,
            dstate: false,
        },
    ];
    // Eight heads: in_proj's rows (the conv input's row stride) a multiple of 8 elements, so
    // the conv backward's staged form (16-byte vectors) takes the strided views in bf16 too.
    v.push(Case {
        cfg: small(32, 8, 8, 1, 4, false),
        batch: 2,
        l: 70,
        init: true,
        dstate: true,
    });
    // W = 1 (no conv state).
    v.push(Case {
        cfg: small(16, 8, 16, 1, 1, false),
        batch: 2,
        l: 9,
        init: true,
        dstate: true,
    });
    // MAMBA_GPU_QUICK=1 (compute-sanitizer): the small shapes only;
    // MAMBA_BLOCK_TRAIN_CASE=i: case i only.
    if std::env::var_os("MAMBA_GPU_QUICK").is_some() {
        v.retain(|c| c.cfg.d_model <= 40);
    }
    if let Some(i) = std::env::var("MAMBA_BLOCK_TRAIN_CASE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        v = v.into_iter().skip(i).take(1).collect();
    }
    v
}

#[test]
fn block_train_device_matches_host_f32() {
    if !cuda_available() {
        return;
    }
    let mut pass = 0;
    let mut fails = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        for keep in [true, false] {
            match run_case::<f32>(c, 100 + i as u64, 1e-4, keep) {
                Ok(_) => pass += 1,
                Err(e) => fails.push(format!("case {i} keep {keep}: {e}")),
            }
        }
    }
    println!("block train f32: {pass} passed, {} failed", fails.len());
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn block_train_device_matches_host_half() {
    if !cuda_available() {
        return;
    }
    let mut pass = 0;
    let mut fails = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        // The kept activations in bf16, the recomputed ones in f16 (f32 runs both).
        match run_case::<bf16>(c, 200 + i as u64, 2e-2, true) {
            Ok(_) => pass += 1,
            Err(e) => fails.push(format!("bf16 case {i}: {e}")),
        }
        match run_case::<f16>(c, 300 + i as u64, 5e-3, i % 2 == 0) {
            Ok(_) => pass += 1,
            Err(e) => fails.push(format!("f16 case {i}: {e}")),
        }
    }
    println!(
        "block train bf16/f16: {pass} passed, {} failed",
        fails.len()
    );
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// The block backward's switchable paths against the host, all on and all off whatever the
/// defaults (sixtieth session, NOTES.md; all on by default since the sixty-first, the rows per
/// block where the rows fill the GPU): a 16-bit dzx with in_proj's backward on the 16-bit
/// tensor cores (`MAMBA_CUDA_BB_DZX16`), copies four columns per thread (`MAMBA_CUDA_BB_VEC`),
/// the gated norm forward and backward in column pairs (`MAMBA_CUDA_NORM_PAIRS`), the norm
/// weight's gradient summed over 16 rows per block (`MAMBA_CUDA_BB_NORM_RPB`), the conv
/// backward on strided views of in_proj's output and its gradient (`MAMBA_CUDA_BB_CONV_DIRECT`,
/// sixty-second session), the conv backward staged through shared memory
/// (`MAMBA_CUDA_CONV_BWD_CLS`, sixty-third session), the SSD backward on strided views of the
/// conv output, in_proj's rows and their gradients (`MAMBA_CUDA_BB_SSD_DIRECT`, sixty-fourth
/// session), the norm backward loading each row before the previous row's block sums
/// (`MAMBA_CUDA_NORM_PF`, sixty-fourth session); and a 16-bit block made with the 16-bit dzx, then run with it off
/// (no f32 copy of in_proj: the mixed-type GEMM; the conv's input strided, its gradient dense).
/// The other tests of this binary may run meanwhile under these settings; they hold them to
/// the same tolerances.
#[test]
fn block_train_switches_match_host() {
    if !cuda_available() {
        return;
    }
    const KEYS: [&str; 8] = [
        "MAMBA_CUDA_BB_DZX16",
        "MAMBA_CUDA_BB_VEC",
        "MAMBA_CUDA_NORM_PAIRS",
        "MAMBA_CUDA_BB_NORM_RPB",
        "MAMBA_CUDA_BB_CONV_DIRECT",
        "MAMBA_CUDA_CONV_BWD_CLS",
        "MAMBA_CUDA_BB_SSD_DIRECT",
        "MAMBA_CUDA_NORM_PF",
    ];
    let before: Vec<Option<String>> = KEYS.iter().map(|k| std::env::var(k).ok()).collect();
    let mut pass = 0;
    let mut fails = Vec::new();
    // The third round makes each 16-bit block with the 16-bit dzx (so without in_proj's f32
    // copy) and runs it with `MAMBA_CUDA_BB_DZX16=0`: f32 dzx on our mixed-type GEMM.
    for (round, vals) in [
        ["1", "1", "1", "16", "1", "1", "1", "1"],
        ["0", "0", "0", "1", "0", "0", "0", "0"],
        ["1", "1", "1", "1", "1", "1", "1", "1"],
    ]
    .into_iter()
    .enumerate()
    {
        let late: &[(&str, &str)] = if round == 2 {
            &[("MAMBA_CUDA_BB_DZX16", "0")]
        } else {
            &[]
        };
        for (k, v) in KEYS.iter().zip(vals) {
            std::env::set_var(k, v);
        }
        for (i, c) in cases().iter().enumerate() {
            let seed = 400 + i as u64;
            let mut runs = vec![
                (
                    "bf16",
                    run_case_against::<bf16>(c, seed, 2e-2, i % 2 == 0, false, late),
                ),
                (
                    "f16",
                    run_case_against::<f16>(c, seed, 5e-3, i % 2 == 1, false, late),
                ),
            ];
            if round < 2 {
                runs.push(("f32", run_case::<f32>(c, seed, 1e-4, true)));
            }
            for (ty, r) in runs {
                match r {
                    Ok(_) => pass += 1,
                    Err(e) => fails.push(format!("{vals:?} {ty} case {i}: {e}")),
                }
            }
        }
    }
    // The caller's settings back (a device script may have set them for the whole run).
    for (k, v) in KEYS.iter().zip(before) {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    println!(
        "block train switches: {pass} passed, {} failed",
        fails.len()
    );
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// f32 products split on the f16 tensor cores (gemm.rs `run_split`): the block's forward
/// (output and final state) within the f32 output tolerance (1e-5) of the f64 oracle and
/// its training pass's gradients within the gradient tolerance (1e-4). Every case with
/// `MAMBA_CUDA_F32_SPLIT=1` (the split at every size), then one case large enough for the
/// default rule to split in_proj's products (b1 L4096 d_model 256: m n k >= 2^30; the
/// weight gradient sums 4096 rows).
#[test]
fn block_f32_split_products_match_the_oracle() {
    if !cuda_available() {
        return;
    }
    const SPLIT: &[(&str, &str)] = &[("MAMBA_CUDA_F32_SPLIT", "1")];
    let mut pass = 0;
    let mut fails = Vec::new();
    let big = Case {
        cfg: Mamba2Config::new(256, 64),
        batch: 1,
        l: 4096,
        init: false,
        dstate: false,
    };
    let runs = cases()
        .into_iter()
        .map(|c| (c, SPLIT))
        .chain(std::iter::once((big, &[][..])));
    for (i, (c, env)) in runs.enumerate() {
        let seed = 700 + i as u64;
        match run_case_against::<f32>(&c, seed, 1e-4, i % 2 == 0, true, env) {
            Ok(_) => pass += 1,
            Err(e) => fails.push(format!("case {i} training: {e}")),
        }
        let cfg = &c.cfg;
        let w = random_weights(cfg, seed);
        let dev =
            Mamba2Block::with_selection(cfg.clone(), w.clone(), &build(BackendKind::Cuda).unwrap())
                .unwrap();
        let sel = Selection {
            kind: BackendKind::Reference,
            backend: std::sync::Arc::new(mamba_core::Reference::<f64>::oracle()),
            report: "reference (f64 accumulation)".into(),
        };
        let oracle = Mamba2Block::with_selection(cfg.clone(), w, &sel).unwrap();
        let mut rng = SplitMix64(seed * 5 + 1);
        let u: Vec<f32> = (0..c.batch * c.l * cfg.d_model)
            .map(|_| rng.normal())
            .collect();
        let shape = [c.batch, c.l, cfg.d_model];
        let (od, sd) = {
            let _split = LateEnv::set(env);
            dev.forward(Tensor::new(&u, shape)).unwrap()
        };
        let (or, sr) = oracle.forward(Tensor::new(&u, shape)).unwrap();
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let eo = rel_l2(&f(&od), &f(&or));
        let es = rel_l2(&f(&sd.ssm), &f(&sr.ssm)).max(rel_l2(&f(&sd.conv), &f(&sr.conv)));
        println!("  case {i} forward (split products): out {eo:.2e} state {es:.2e}");
        if eo <= 1e-5 && es <= 1e-5 {
            pass += 1;
        } else {
            fails.push(format!(
                "case {i} forward: out {eo:.3e} state {es:.3e} > 1e-5"
            ));
        }
    }
    println!("f32 split products: {pass} passed, {} failed", fails.len());
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// The split kernels' forms give the same f32 block forward: both first forms
/// (`MAMBA_CUDA_SPLIT_V2=0`), both second (`1`) and the default (the max pass's second form
/// with the split's first; any other value) write the same split bytes, so the outputs agree
/// to the products' own run-to-run differences (none expected; <= 1e-7 allowed). A split that
/// dropped or misplaced its lo halves would be ~1e-4 off (the host emulator's mutants).
#[test]
fn block_f32_split_forms_agree() {
    if !cuda_available() {
        return;
    }
    let mut fails = Vec::new();
    for (i, c) in cases().into_iter().take(6).enumerate() {
        let cfg = &c.cfg;
        let seed = 900 + i as u64;
        let dev = Mamba2Block::with_selection(
            cfg.clone(),
            random_weights(cfg, seed),
            &build(BackendKind::Cuda).unwrap(),
        )
        .unwrap();
        let mut rng = SplitMix64(seed * 3 + 1);
        let u: Vec<f32> = (0..c.batch * c.l * cfg.d_model)
            .map(|_| rng.normal())
            .collect();
        let shape = [c.batch, c.l, cfg.d_model];
        let run = |v2: &str| {
            let _env = LateEnv::set(&[("MAMBA_CUDA_F32_SPLIT", "1"), ("MAMBA_CUDA_SPLIT_V2", v2)]);
            dev.forward(Tensor::new(&u, shape)).unwrap().0
        };
        let first = run("0");
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        for (label, v2) in [("both second forms", "1"), ("the default forms", "default")] {
            let other = run(v2);
            let e = rel_l2(&f(&other), &f(&first));
            let same = first
                .iter()
                .zip(&other)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
            println!(
                "  case {i}, {label}: rel {e:.2e}, {same} of {} outputs bit-equal",
                first.len()
            );
            if e.is_nan() || e > 1e-7 {
                fails.push(format!(
                    "case {i}: {label} differ from the first forms by {e:.3e}"
                ));
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// The host fallback on the CUDA backend (`set_device_training(false)`) still works and
/// agrees with the device path.
#[test]
fn block_train_host_fallback_on_cuda() {
    if !cuda_available() {
        return;
    }
    let cfg = Mamba2Config {
        d_model: 16,
        d_state: 8,
        headdim: 8,
        ..Mamba2Config::default()
    };
    let w = random_weights(&cfg, 5);
    let mut blk =
        Mamba2Block::with_selection(cfg.clone(), w, &build(BackendKind::Cuda).unwrap()).unwrap();
    let mut rng = SplitMix64(9);
    let (b, l) = (2, 21);
    let u: Vec<f32> = (0..b * l * 16).map(|_| rng.normal()).collect();
    let dout: Vec<f32> = (0..b * l * 16).map(|_| rng.normal()).collect();
    let t1 = blk
        .forward_train(Tensor::new(&u, [b, l, 16]), None)
        .unwrap();
    assert!(t1.on_device());
    let g1 = blk.backward(&t1, &dout, None).unwrap();
    blk.set_device_training(false);
    let t2 = blk
        .forward_train(Tensor::new(&u, [b, l, 16]), None)
        .unwrap();
    assert!(!t2.on_device());
    let g2 = blk.backward(&t2, &dout, None).unwrap();
    for ((n, a), (_, bb)) in named(&g1).iter().zip(&named(&g2)) {
        let e = rel_l2(a, bb);
        assert!(e <= 1e-4, "d/d {n}: device vs host fallback {e:.3e}");
    }
    println!("host fallback on cuda: ok");
}

/// Kept activations against recomputed ones on the same block and data: the same
/// gradients (up to the order of the atomics' sums), a tape read twice gives the same
/// gradients again, and a tape outlives a second forward on the block.
#[test]
fn block_train_kept_activations_match_recompute() {
    if !cuda_available() {
        return;
    }
    let cfg = Mamba2Config {
        d_model: 48,
        d_state: 16,
        headdim: 16,
        ngroups: 2,
        ..Mamba2Config::default()
    };
    let w = random_weights(&cfg, 11);
    let mut blk =
        Mamba2Block::with_selection(cfg.clone(), w, &build(BackendKind::Cuda).unwrap()).unwrap();
    let mut rng = SplitMix64(13);
    let (b, l) = (3, 70);
    let n = b * l * cfg.d_model;
    let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let u2: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let dout: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let shape = [b, l, cfg.d_model];
    let mut init = Mamba2State::zeros(&cfg, b);
    init.conv.iter_mut().for_each(|v| *v = rng.normal() * 0.5);
    init.ssm.iter_mut().for_each(|v| *v = rng.normal() * 0.1);
    blk.set_keep_activations(true);
    let tk = blk
        .forward_train(Tensor::new(&u, shape), Some(&init))
        .unwrap();
    // A second tape in between: the first one's device buffers are its own.
    let other = blk.forward_train(Tensor::new(&u2, shape), None).unwrap();
    assert!(tk.device_bytes() > 0 && other.device_bytes() > 0);
    let gk = blk.backward(&tk, &dout, None).unwrap();
    let gk2 = blk.backward(&tk, &dout, None).unwrap();
    drop(other);
    blk.set_keep_activations(false);
    let tr = blk
        .forward_train(Tensor::new(&u, shape), Some(&init))
        .unwrap();
    assert_eq!(tr.device_bytes(), 0);
    let gr = blk.backward(&tr, &dout, None).unwrap();
    let out_k: Vec<f64> = tk.output().iter().map(|&v| v as f64).collect();
    let out_r: Vec<f64> = tr.output().iter().map(|&v| v as f64).collect();
    assert!(rel_l2(&out_k, &out_r) <= 1e-6, "outputs differ");
    let mut checked = 0;
    for (((n, a), (_, a2)), (_, r)) in named(&gk).iter().zip(&named(&gk2)).zip(&named(&gr)) {
        let e = rel_l2(a, r);
        let e2 = rel_l2(a, a2);
        assert!(e <= 1e-5, "d/d {n}: kept vs recomputed {e:.3e}");
        assert!(e2 <= 1e-5, "d/d {n}: the same tape twice {e2:.3e}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} gradients compared");
    println!("kept activations vs recompute: {checked} gradients agree");
}

/// The saved-activations entries refuse a buffer too small, misaligned or null with a
/// typed error that names the size needed, and write nothing.
#[test]
fn block_saved_buffer_errors() {
    if !cuda_available() {
        return;
    }
    let cfg = Mamba2Config {
        d_model: 16,
        d_state: 8,
        headdim: 8,
        ..Mamba2Config::default()
    };
    let blk = Mamba2Block::with_selection(
        cfg.clone(),
        random_weights(&cfg, 3),
        &build(BackendKind::Cuda).unwrap(),
    )
    .unwrap();
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let dblk = blk.device_block(mamba_model::DType::F32).unwrap().unwrap();
    let (b, l) = (2, 37);
    let n = b * l * cfg.d_model;
    let keep = dblk.saved_bytes(b, l).unwrap();
    assert!(keep > 0, "the plugin has the saving entries");
    let stream = cuda.stream().unwrap();
    let x = cuda.upload(&vec![0.5f32; n], &stream).unwrap();
    let out = cuda.alloc::<f32>(n).unwrap();
    let saved = cuda.alloc::<f32>(keep.div_ceil(4) + 64).unwrap();
    let fdesc = mamba_core::abi::BlockForwardDesc {
        batch: b as u32,
        seqlen: l as u32,
        input: x.ptr(),
        out: out.ptr(),
        ..Default::default()
    };
    for (ptr, bytes, what) in [
        (saved.ptr(), keep - 1, "too small"),
        (saved.ptr() + 4, keep, "misaligned"),
        (0, keep, "null"),
    ] {
        // SAFETY: live buffers of the documented sizes; the call must refuse `ptr` / `bytes`.
        let r = unsafe { dblk.forward_saving_raw(&fdesc, ptr, bytes, &stream) };
        let e = r.expect_err(what).to_string();
        assert!(
            e.contains("saved"),
            "{what}: the error should name the saved buffer: {e}"
        );
        if what == "too small" {
            assert!(e.contains(&keep.to_string()), "{what}: {e}");
        }
    }
    // The full size works, and a zero-length shape is refused by saved_bytes.
    // SAFETY: as above, with the size saved_bytes gave.
    unsafe { dblk.forward_saving_raw(&fdesc, saved.ptr(), keep, &stream) }.unwrap();
    assert!(dblk.saved_bytes(0, l).is_err());
    println!("saved-buffer errors: ok ({keep} bytes at b{b} L{l})");
}

/// Several threads training one block at once (each call on its own staging stream):
/// every thread's gradients equal those of the same inputs run alone. cuBLASLt's split-K
/// plans write partial sums into their workspace, so products on two streams at once need
/// a workspace each (the plugin's was one shared buffer until the thirty-ninth session).
#[test]
fn block_train_concurrent_threads_match_sequential() {
    if !cuda_available() {
        return;
    }
    let cfg = Mamba2Config::new(192, 64);
    let w = random_weights(&cfg, 21);
    let blk =
        Mamba2Block::with_selection(cfg.clone(), w, &build(BackendKind::Cuda).unwrap()).unwrap();
    let (b, l) = (2, 800);
    let n = b * l * cfg.d_model;
    let shape = [b, l, cfg.d_model];
    let threads = 4;
    let rounds = 6;
    let inputs: Vec<(Vec<f32>, Vec<f32>)> = (0..threads)
        .map(|t| {
            let mut rng = SplitMix64(1000 + t as u64);
            (
                (0..n).map(|_| rng.normal()).collect(),
                (0..n).map(|_| rng.normal()).collect(),
            )
        })
        .collect();
    let step = |u: &[f32], dout: &[f32]| {
        let tape = blk.forward_train(Tensor::new(u, shape), None).unwrap();
        let g = blk.backward(&tape, dout, None).unwrap();
        (tape.output().to_vec(), named(&g))
    };
    let alone: Vec<_> = inputs.iter().map(|(u, d)| step(u, d)).collect();
    let worst = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (u, d) = (&inputs[t].0, &inputs[t].1);
                let want = &alone[t];
                let step = &step;
                sc.spawn(move || {
                    let mut worst = 0f64;
                    for _ in 0..rounds {
                        let (out, grads) = step(u, d);
                        let o: Vec<f64> = out.iter().map(|&v| v as f64).collect();
                        let ow: Vec<f64> = want.0.iter().map(|&v| v as f64).collect();
                        worst = worst.max(rel_l2(&o, &ow));
                        for ((name, a), (_, bb)) in grads.iter().zip(&want.1) {
                            let e = rel_l2(a, bb);
                            assert!(
                                e <= 1e-5,
                                "thread {t}: d/d {name} differs from the same inputs alone: {e:.3e}"
                            );
                            worst = worst.max(e);
                        }
                    }
                    worst
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold(0f64, f64::max)
    });
    println!(
        "{threads} threads x {rounds} steps at once: worst {worst:.2e} against the same inputs alone"
    );
}

/// f32 elements of every parameter gradient of a block of `cfg` (one buffer).
fn grads_len(cfg: &Mamba2Config) -> usize {
    let (dm, di, h, cd) = (cfg.d_model, cfg.d_inner(), cfg.nheads(), cfg.conv_dim());
    cfg.d_in_proj() * dm + cd * cfg.d_conv + cd + 3 * h + di + dm * di
}

/// The backward's descriptor for (b, l) with every parameter gradient in one buffer of
/// [`grads_len`] f32 at `grads` (no initial or final states).
fn grads_desc(
    cfg: &Mamba2Config,
    b: usize,
    l: usize,
    input: u64,
    dout: u64,
    dinput: u64,
    grads: u64,
) -> mamba_core::abi::BlockBackwardDesc {
    let (dm, di, h, cd) = (cfg.d_model, cfg.d_inner(), cfg.nheads(), cfg.conv_dim());
    let mut off = 0u64;
    let mut take = |len: usize| {
        let p = grads + off * 4;
        off += len as u64;
        p
    };
    mamba_core::abi::BlockBackwardDesc {
        batch: b as u32,
        seqlen: l as u32,
        input,
        dout,
        dinput,
        din_proj: take(cfg.d_in_proj() * dm),
        dconv_weight: take(cd * cfg.d_conv),
        dconv_bias: take(cd),
        ddt_bias: take(h),
        da_log: take(h),
        dd: take(h),
        dnorm_weight: take(di),
        dout_proj: take(dm * di),
        ..Default::default()
    }
}

/// Timings (not assertions): forward_train + backward through the host API, the host
/// path, and the device-resident backward alone with CUDA events.
#[test]
fn block_train_bench() {
    if std::env::var("MAMBA_BLOCK_TRAIN_BENCH").ok().as_deref() != Some("1") || !cuda_available() {
        return;
    }
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    // MAMBA_BLOCK_TRAIN_L: one length only (a profiler run).
    let lens: Vec<usize> = match std::env::var("MAMBA_BLOCK_TRAIN_L") {
        Ok(v) => vec![v.parse().expect("MAMBA_BLOCK_TRAIN_L: a length")],
        Err(_) => vec![100, 400, 800],
    };
    for l in lens {
        let cfg = Mamba2Config::new(192, 64);
        let b = 2;
        let w = random_weights(&cfg, 1);
        let mut blk =
            Mamba2Block::with_selection(cfg.clone(), w, &build(BackendKind::Cuda).unwrap())
                .unwrap();
        let mut rng = SplitMix64(2);
        let n = b * l * 192;
        let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let time = |blk: &Mamba2Block, iters: usize| {
            let mut v = Vec::new();
            for i in 0..iters + 3 {
                let t0 = std::time::Instant::now();
                let t = blk
                    .forward_train(Tensor::new(&u, [b, l, 192]), None)
                    .unwrap();
                let g = blk.backward(&t, &dout, None).unwrap();
                std::hint::black_box(&g);
                if i >= 3 {
                    v.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            mamba_core::plugin::median(&v)
        };
        let dev_ms = time(&blk, 20);
        blk.set_keep_activations(false);
        let dev_rec_ms = time(&blk, 20);
        blk.set_keep_activations(true);
        blk.set_device_training(false);
        let host_ms = time(&blk, 5);
        // The device-resident backward alone (buffers on the device, CUDA events).
        let dblk = blk.device_block(mamba_model::DType::F32).unwrap().unwrap();
        let stream = cuda.stream().unwrap();
        let du = cuda.upload(&u, &stream).unwrap();
        let dd = cuda.upload(&dout, &stream).unwrap();
        let dx = cuda.alloc::<f32>(n).unwrap();
        let gr = cuda.alloc::<f32>(grads_len(&cfg)).unwrap();
        let desc = grads_desc(&cfg, b, l, du.ptr(), dd.ptr(), dx.ptr(), gr.ptr());
        let mut out = cuda.alloc::<f32>(n).unwrap();
        let fwd = cuda
            .time_calls(&stream, 20, 100, || {
                dblk.forward(&du, b, l, &mut out, None, false, &stream)
            })
            .unwrap();
        let bwd = cuda
            .time_calls(&stream, 20, 100, || {
                // SAFETY: every pointer is a live buffer of the sizes the ABI documents.
                unsafe { dblk.backward_raw(&desc, &stream) }
            })
            .unwrap();
        // The saving forward and the backward from its activations.
        let keep = dblk.saved_bytes(b, l).unwrap();
        let saved = cuda.alloc::<f32>(keep.div_ceil(4)).unwrap();
        let fdesc = mamba_core::abi::BlockForwardDesc {
            batch: b as u32,
            seqlen: l as u32,
            input: du.ptr(),
            out: out.ptr(),
            ..Default::default()
        };
        let fwd_s = cuda
            .time_calls(&stream, 20, 100, || {
                // SAFETY: live buffers of the documented sizes; `saved` holds `keep` bytes.
                unsafe { dblk.forward_saving_raw(&fdesc, saved.ptr(), keep, &stream) }
            })
            .unwrap();
        let bwd_s = cuda
            .time_calls(&stream, 20, 100, || {
                // SAFETY: as above; `saved` was filled by the saving forward on `du`.
                unsafe { dblk.backward_saved_raw(&desc, saved.ptr(), keep, &stream) }
            })
            .unwrap();
        println!(
            "block train (2, {l}, 192) f32: forward_train+backward (host API, device path) {dev_ms:.3} ms kept / {dev_rec_ms:.3} ms recomputed; host path {host_ms:.3} ms; device-resident forward {:.1} us, backward {:.1} us; saving forward {:.1} us, backward from it {:.1} us, {} KiB kept (CUDA events, median of 100)",
            mamba_core::plugin::median(&fwd),
            mamba_core::plugin::median(&bwd),
            mamba_core::plugin::median(&fwd_s),
            mamba_core::plugin::median(&bwd_s),
            keep / 1024
        );
    }
}

/// Timings (not assertions) of the host-slice training step's parts on the device path,
/// wall clock, medians: `forward_train`, `backward`, dropping the tape (frees what it
/// kept), `set_weights` + the device block's re-creation, a pageable upload / download
/// of one (b, L, d_model) f32 tensor, and an alloc + free of the kept bytes.
#[test]
fn block_train_phases() {
    if std::env::var("MAMBA_BLOCK_TRAIN_BENCH").ok().as_deref() != Some("1") || !cuda_available() {
        return;
    }
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let med = |mut f: Box<dyn FnMut() -> f64 + '_>, iters: usize| {
        let mut v: Vec<f64> = (0..iters + 3).map(|_| f()).collect();
        v.drain(..3);
        mamba_core::plugin::median(&v)
    };
    let ms = |t0: std::time::Instant| t0.elapsed().as_secs_f64() * 1e3;
    for (dm, n_state, hd, b, l) in [
        (192, 64, 64, 2, 100),
        (192, 64, 64, 2, 400),
        (192, 64, 64, 2, 800),
        (32, 16, 16, 8, 128),
    ] {
        let mut cfg = Mamba2Config::new(dm, n_state);
        cfg.headdim = hd;
        let w = random_weights(&cfg, 1);
        let mut blk =
            Mamba2Block::with_selection(cfg.clone(), w.clone(), &build(BackendKind::Cuda).unwrap())
                .unwrap();
        let mut rng = SplitMix64(2);
        let n = b * l * dm;
        let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let shape = [b, l, dm];
        let step = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let t = blk.forward_train(Tensor::new(&u, shape), None).unwrap();
                let g = blk.backward(&t, &dout, None).unwrap();
                drop(t);
                std::hint::black_box(&g);
                ms(t0)
            }),
            20,
        );
        let fwd = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let t = blk.forward_train(Tensor::new(&u, shape), None).unwrap();
                let e = ms(t0);
                drop(t);
                e
            }),
            20,
        );
        let mut bwd_v = Vec::new();
        let mut drop_v = Vec::new();
        for _ in 0..23 {
            let t = blk.forward_train(Tensor::new(&u, shape), None).unwrap();
            let t0 = std::time::Instant::now();
            let g = blk.backward(&t, &dout, None).unwrap();
            bwd_v.push(ms(t0));
            std::hint::black_box(&g);
            let t0 = std::time::Instant::now();
            drop(t);
            drop_v.push(ms(t0));
        }
        bwd_v.drain(..3);
        drop_v.drain(..3);
        let (bwd, dropt) = (
            mamba_core::plugin::median(&bwd_v),
            mamba_core::plugin::median(&drop_v),
        );
        let setw = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                blk.set_weights(w.clone()).unwrap();
                blk.device_block(mamba_model::DType::F32).unwrap().unwrap();
                ms(t0)
            }),
            20,
        );
        // The plugin's update alone, on a block made from the same weights, and the
        // clone of the weights the timing above includes.
        let cfgc = *blk
            .device_block(mamba_model::DType::F32)
            .unwrap()
            .unwrap()
            .config();
        let mut raw = cuda.block(&cfgc, &w.plugin_view()).unwrap();
        let raw_set = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                if raw.has_set_weights() {
                    raw.set_weights(&w.plugin_view()).unwrap();
                }
                ms(t0)
            }),
            20,
        );
        let raw_make = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let b = cuda.block(&cfgc, &w.plugin_view()).unwrap();
                drop(b);
                ms(t0)
            }),
            20,
        );
        let wclone = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let c = w.clone();
                std::hint::black_box(&c);
                ms(t0)
            }),
            20,
        );
        println!(
            "block train phases ({b}, {l}, {dm}) N{n_state} f32: weights: CudaBlock::set_weights {raw_set:.3} ms, a new CudaBlock made and dropped {raw_make:.3}, a clone of the weights {wclone:.3}"
        );
        let stream = cuda.stream().unwrap();
        let up = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let d = cuda.upload(&u, &stream).unwrap();
                stream.synchronize(cuda).unwrap();
                let e = ms(t0);
                drop(d);
                e
            }),
            20,
        );
        let dbuf = cuda.upload(&u, &stream).unwrap();
        let mut host = vec![0f32; n];
        let down = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                dbuf.copy_to_host(&mut host, &stream).unwrap();
                stream.synchronize(cuda).unwrap();
                ms(t0)
            }),
            20,
        );
        let dblk = blk.device_block(mamba_model::DType::F32).unwrap().unwrap();
        let keep = dblk.saved_bytes(b, l).unwrap();
        let allocf = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let a = cuda.alloc::<f32>(keep.div_ceil(4)).unwrap();
                drop(a);
                ms(t0)
            }),
            20,
        );
        // The device calls alone, wall clock (enqueue + wait), on buffers made once.
        let dd = cuda.upload(&dout, &stream).unwrap();
        let dx = cuda.alloc::<f32>(n).unwrap();
        let total = grads_len(&cfg);
        let gr = cuda.alloc::<f32>(total).unwrap();
        let desc = grads_desc(&cfg, b, l, dbuf.ptr(), dd.ptr(), dx.ptr(), gr.ptr());
        let out = cuda.alloc::<f32>(n).unwrap();
        let saved = cuda.alloc::<f32>(keep.div_ceil(4)).unwrap();
        let fdesc = mamba_core::abi::BlockForwardDesc {
            batch: b as u32,
            seqlen: l as u32,
            input: dbuf.ptr(),
            out: out.ptr(),
            ..Default::default()
        };
        let fwd_wall = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                // SAFETY: live buffers of the documented sizes; `saved` holds `keep` bytes.
                unsafe { dblk.forward_saving_raw(&fdesc, saved.ptr(), keep, &stream) }.unwrap();
                stream.synchronize(cuda).unwrap();
                ms(t0)
            }),
            20,
        );
        let bwd_wall = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                // SAFETY: as above; `saved` was filled by the saving forward on `dbuf`.
                unsafe { dblk.backward_saved_raw(&desc, saved.ptr(), keep, &stream) }.unwrap();
                stream.synchronize(cuda).unwrap();
                ms(t0)
            }),
            20,
        );
        let mut gh = vec![0f32; total];
        let gdown = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                gr.copy_to_host(&mut gh, &stream).unwrap();
                stream.synchronize(cuda).unwrap();
                ms(t0)
            }),
            20,
        );
        let sync = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                stream.synchronize(cuda).unwrap();
                ms(t0)
            }),
            20,
        );
        // Host memory: a fresh zeroed Vec of one tensor (first touch of its pages), a
        // download into a fresh Vec, and a host-to-host copy into a reused one.
        let fresh = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let v = vec![1f32; n];
                std::hint::black_box(&v);
                ms(t0)
            }),
            20,
        );
        let fresh_down = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                let v = dbuf.to_vec(&stream).unwrap();
                std::hint::black_box(&v);
                ms(t0)
            }),
            20,
        );
        let mut reuse = vec![0f32; n];
        let h2h = med(
            Box::new(|| {
                let t0 = std::time::Instant::now();
                reuse.copy_from_slice(&u);
                std::hint::black_box(&reuse);
                ms(t0)
            }),
            20,
        );
        println!(
            "block train phases ({b}, {l}, {dm}) N{n_state} f32: host memory: fresh Vec filled with ones {fresh:.3} ms, download into a fresh Vec {fresh_down:.3}, host copy into a reused Vec {h2h:.3}"
        );
        println!(
            "block train phases ({b}, {l}, {dm}) N{n_state} f32: device calls alone (wall, enqueue + wait): saving forward {fwd_wall:.3} ms, backward from it {bwd_wall:.3} ms; download of the gradients ({} KiB) {gdown:.3}; an idle stream's synchronize {sync:.4}",
            total * 4 / 1024
        );
        println!(
            "block train phases ({b}, {l}, {dm}) N{n_state} f32: step {step:.3} ms = forward_train {fwd:.3} + backward {bwd:.3} + tape drop {dropt:.3}; set_weights + re-create {setw:.3}; upload {up:.3} / download {down:.3} of {} KiB; alloc+free of {} KiB kept {allocf:.3}",
            n * 4 / 1024,
            keep / 1024
        );
    }
}

/// `set_weights` overwrites the device copies in place (the same device block before and
/// after): the block then computes what a block made with the new weights computes, in
/// f32 and bf16, forward and backward; a clone made before keeps the old weights; and the
/// plugin refuses an update of the wrong shape or with a conv bias the block lacks.
#[test]
fn block_set_weights_in_place_matches_a_new_block() {
    if !cuda_available() {
        return;
    }
    let cfg = small_cfg();
    let sel = build(BackendKind::Cuda).unwrap();
    let (w1, w2) = (random_weights(&cfg, 5), random_weights(&cfg, 9));
    let mut blk = Mamba2Block::with_selection(cfg.clone(), w1.clone(), &sel).unwrap();
    let (b, l) = (2, 45);
    let shape = [b, l, cfg.d_model];
    let mut rng = SplitMix64(7);
    let u: Vec<f32> = (0..b * l * cfg.d_model).map(|_| rng.normal()).collect();
    let dout: Vec<f32> = (0..u.len()).map(|_| rng.normal()).collect();
    let ub: Vec<bf16> = u.iter().map(|&x| bf16::from_f32(x)).collect();
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let b64s = |v: &[bf16]| v.iter().map(|x| x.to_f32() as f64).collect::<Vec<_>>();
    // Make the f32 and bf16 device copies with the first weights.
    let before = blk.forward(Tensor::new(&u, shape)).unwrap().0;
    blk.forward(Tensor::new(&ub, shape)).unwrap();
    let dev_before = blk.device_block(mamba_model::DType::F32).unwrap().unwrap()
        as *const mamba_core::plugin::CudaBlock;
    let in_place = blk
        .device_block(mamba_model::DType::F32)
        .unwrap()
        .unwrap()
        .has_set_weights();
    assert!(in_place, "this plugin has block_set_weights");
    let old = blk.clone();
    // The clone shares the device copies, so this update makes new ones ...
    blk.set_weights(w2.clone()).unwrap();
    assert_ne!(
        blk.device_block(mamba_model::DType::F32).unwrap().unwrap() as *const _,
        dev_before
    );
    drop(old);
    // ... and with the clone gone, the next one overwrites them in place.
    let dev_mid = blk.device_block(mamba_model::DType::F32).unwrap().unwrap()
        as *const mamba_core::plugin::CudaBlock;
    // The device copies now hold w2 (f32 and bf16); the in-place update must bring them
    // to w1 (an update that copies nothing would leave w2 there and fail below).
    blk.forward(Tensor::new(&ub, shape)).unwrap();
    let at_w2 = blk.forward(Tensor::new(&u, shape)).unwrap().0;
    blk.set_weights(w1.clone()).unwrap();
    assert_eq!(
        blk.device_block(mamba_model::DType::F32).unwrap().unwrap() as *const _,
        dev_mid,
        "set_weights made a new device block where it could overwrite"
    );
    let fresh = Mamba2Block::with_selection(cfg.clone(), w1.clone(), &sel).unwrap();
    let got = blk.forward(Tensor::new(&u, shape)).unwrap().0;
    let want = fresh.forward(Tensor::new(&u, shape)).unwrap().0;
    assert!(rel_l2(&f64s(&before), &f64s(&want)) <= 1e-6);
    let moved = rel_l2(&f64s(&at_w2), &f64s(&want));
    assert!(
        moved > 1e-2,
        "the two weight sets should differ: {moved:.2e}"
    );
    let ef = rel_l2(&f64s(&got), &f64s(&want));
    assert!(ef <= 1e-6, "f32 forward after set_weights: {ef:.2e}");
    let gb = blk.forward(Tensor::new(&ub, shape)).unwrap().0;
    let wb = fresh.forward(Tensor::new(&ub, shape)).unwrap().0;
    let eb = rel_l2(&b64s(&gb), &b64s(&wb));
    assert!(eb <= 1e-2, "bf16 forward after set_weights: {eb:.2e}");
    for keep in [true, false] {
        blk.set_keep_activations(keep);
        let tg = blk.forward_train(Tensor::new(&u, shape), None).unwrap();
        let tw = fresh.forward_train(Tensor::new(&u, shape), None).unwrap();
        let gg = named(&blk.backward(&tg, &dout, None).unwrap());
        let gw = named(&fresh.backward(&tw, &dout, None).unwrap());
        for ((name, a), (_, c)) in gg.iter().zip(&gw) {
            let e = rel_l2(a, c);
            assert!(
                e <= 1e-6,
                "d/d {name} after set_weights (keep {keep}): {e:.2e}"
            );
        }
    }
    // The plugin refuses an update of the wrong shape, or a conv bias the block lacks
    // (or the reverse), and the block still works after a refusal.
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let cfgc = *blk
        .device_block(mamba_model::DType::F32)
        .unwrap()
        .unwrap()
        .config();
    let mut raw = cuda.block(&cfgc, &w1.plugin_view()).unwrap();
    let mut short = w2.clone();
    short.d.pop();
    let e = raw.set_weights(&short.plugin_view()).unwrap_err();
    assert!(
        matches!(e, mamba_core::Error::InvalidArgument { .. }) && e.to_string().contains('D'),
        "{e}"
    );
    let mut nobias = w2.clone();
    nobias.conv_bias = None;
    let e = raw.set_weights(&nobias.plugin_view()).unwrap_err();
    assert!(e.to_string().contains("conv1d.bias"), "{e}");
    raw.set_weights(&w2.plugin_view()).unwrap();
    println!(
        "set_weights: in place, f32 forward {ef:.1e}, bf16 {eb:.1e} against a new block; refusals ok"
    );
}

/// The training pair on device buffers (`CudaBlock::forward_train` / `backward`, safe)
/// computes what the host-slice pair computes from the same inputs, initial states and
/// final-state gradients, in f32 and bf16, from kept activations and recomputing them;
/// and refuses a wrong storage type, activations of another shape or never filled, and
/// gradient buffers of another block.
#[test]
fn block_device_training_matches_the_host_api() {
    if !cuda_available() {
        return;
    }
    use mamba_core::plugin::{DeviceBackward, DeviceBuffer, DeviceElement};
    let cfg = small_cfg();
    let sel = build(BackendKind::Cuda).unwrap();
    let blk = Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 11), &sel).unwrap();
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let (b, l) = (2, 37);
    let n = b * l * cfg.d_model;
    let mut rng = SplitMix64(12);
    let mut randn = |k: usize, s: f32| (0..k).map(|_| s * rng.normal()).collect::<Vec<f32>>();
    let u = randn(n, 1.0);
    let dout = randn(n, 1.0);
    #[allow(clippy::too_many_arguments)]
    fn run<T: DeviceElement + Element>(
        blk: &Mamba2Block,
        dtype: mamba_model::DType,
        b: usize,
        l: usize,
        u: &[f32],
        dout: &[f32],
        tol: f64,
        rng: &mut SplitMix64,
    ) {
        let cuda = mamba_model::backend::cuda_backend().unwrap();
        let dblk = blk.device_block(dtype).unwrap().unwrap();
        let (cs_len, ss_len) = (dblk.conv_state_len(b), dblk.ssm_state_len(b));
        let mut r = |k: usize| (0..k).map(|_| 0.5 * rng.normal()).collect::<Vec<f32>>();
        let (c0, s0, dcf, dsf) = (r(cs_len), r(ss_len), r(cs_len), r(ss_len));
        // The host-slice pair.
        let (mut hc, mut hs) = (c0.clone(), s0.clone());
        let mut hout = vec![0f32; u.len()];
        let saved = dblk
            .forward_train_host(cuda, u, b, l, &mut hc, &mut hs, &mut hout)
            .unwrap();
        let hg = dblk
            .backward_host_saved(cuda, &saved, dout, Some((&c0, &s0)), Some((&dcf, &dsf)))
            .unwrap();
        // The same on device buffers.
        let stream = cuda.stream().unwrap();
        let to_t = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
        let up = |v: &[f32]| cuda.upload(v, &stream).unwrap();
        let du: DeviceBuffer<T> = cuda.upload(&to_t(u), &stream).unwrap();
        let dd: DeviceBuffer<T> = cuda.upload(&to_t(dout), &stream).unwrap();
        let (mut cs, mut ss) = (up(&c0), up(&s0));
        let (ci, si, dcfb, dsfb) = (up(&c0), up(&s0), up(&dcf), up(&dsf));
        let mut out = cuda.alloc::<T>(u.len()).unwrap();
        let mut acts = dblk.activations(cuda, b, l).unwrap();
        let mut grads = dblk.grads(cuda).unwrap();
        let mut dinput = cuda.alloc::<T>(u.len()).unwrap();
        let (mut dci, mut dsi) = (
            cuda.alloc::<f32>(cs_len).unwrap(),
            cuda.alloc::<f32>(ss_len).unwrap(),
        );
        // Activations never filled are refused.
        let unfilled = dblk.activations(cuda, b, l).unwrap();
        let mut pass = DeviceBackward {
            input: &du,
            dout: &dd,
            batch: b,
            seqlen: l,
            activations: Some(&unfilled),
            init: Some((&ci, &si)),
            dfinal: Some((&dcfb, &dsfb)),
        };
        let e = dblk
            .backward(&pass, &mut dinput, &mut grads, None, &stream)
            .unwrap_err();
        assert!(e.to_string().contains("not filled"), "{e}");
        dblk.forward_train(
            &du,
            b,
            l,
            &mut out,
            Some((&mut cs, &mut ss)),
            true,
            &mut acts,
            &stream,
        )
        .unwrap();
        let tf = |v: Vec<T>| v.iter().map(|x| x.to_f32() as f64).collect::<Vec<f64>>();
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let worst = std::cell::Cell::new(0f64);
        let check = |what: &str, got: &[f64], want: &[f32]| {
            let e = rel_l2(got, &f64s(want));
            worst.set(worst.get().max(e));
            assert!(
                e <= tol,
                "{} {what}: device API {e:.2e} from the host API",
                T::DTYPE
            );
        };
        check("out", &tf(out.to_vec(&stream).unwrap()), &hout);
        check("conv final", &f64s(&cs.to_vec(&stream).unwrap()), &hc);
        check("ssm final", &f64s(&ss.to_vec(&stream).unwrap()), &hs);
        for keep in [true, false] {
            pass.activations = keep.then_some(&acts);
            dblk.backward(
                &pass,
                &mut dinput,
                &mut grads,
                Some((&mut dci, &mut dsi)),
                &stream,
            )
            .unwrap();
            let g = grads.to_host(&stream).unwrap();
            let t = tol;
            let chk = |what: &str, got: &[f32], want: &[f32]| {
                let e = rel_l2(&f64s(got), &f64s(want));
                worst.set(worst.get().max(e));
                assert!(
                    e <= t,
                    "{} d/d {what} (kept {keep}): {e:.2e} from the host API",
                    T::DTYPE
                );
            };
            let di: Vec<f32> = dinput
                .to_vec(&stream)
                .unwrap()
                .iter()
                .map(|x| x.to_f32())
                .collect();
            chk("input", &di, &hg.input);
            chk("in_proj", &g.in_proj, &hg.in_proj);
            chk("conv_weight", &g.conv_weight, &hg.conv_weight);
            chk("conv_bias", &g.conv_bias, &hg.conv_bias);
            chk("dt_bias", &g.dt_bias, &hg.dt_bias);
            chk("A_log", &g.a_log, &hg.a_log);
            chk("D", &g.d, &hg.d);
            chk("norm_weight", &g.norm_weight, &hg.norm_weight);
            chk("out_proj", &g.out_proj, &hg.out_proj);
            chk(
                "conv init",
                &dci.to_vec(&stream).unwrap(),
                hg.conv_init.as_ref().unwrap(),
            );
            chk(
                "ssm init",
                &dsi.to_vec(&stream).unwrap(),
                hg.ssm_init.as_ref().unwrap(),
            );
        }
        // Activations of another shape are refused.
        let other = dblk.activations(cuda, b, l + 1).unwrap();
        pass.activations = Some(&other);
        let e = dblk
            .backward(&pass, &mut dinput, &mut grads, None, &stream)
            .unwrap_err();
        assert!(e.to_string().contains("activations"), "{e}");
        println!(
            "device training API {}: matches the host API (kept and recomputed), worst rel-L2 {:.2e}",
            T::DTYPE,
            worst.get()
        );
    }
    // Separate runs sum the gradients' atomics in another order: f32 1e-5; a bf16 input
    // gradient may round the other way where its f32 value sits on a rounding boundary.
    run::<f32>(
        &blk,
        mamba_model::DType::F32,
        b,
        l,
        &u,
        &dout,
        1e-5,
        &mut SplitMix64(3),
    );
    run::<bf16>(
        &blk,
        mamba_model::DType::BF16,
        b,
        l,
        &u,
        &dout,
        1e-2,
        &mut SplitMix64(4),
    );
    // A wrong storage type, and gradient buffers of another block, are refused.
    let dblk = blk.device_block(mamba_model::DType::F32).unwrap().unwrap();
    let stream = cuda.stream().unwrap();
    let ub = cuda
        .upload(
            &u.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>(),
            &stream,
        )
        .unwrap();
    let mut ob = cuda.alloc::<bf16>(n).unwrap();
    let mut acts = dblk.activations(cuda, b, l).unwrap();
    let e = dblk
        .forward_train(&ub, b, l, &mut ob, None, false, &mut acts, &stream)
        .unwrap_err();
    assert!(e.to_string().contains("bf16"), "{e}");
    let small = Mamba2Config {
        d_model: 16,
        ..cfg.clone()
    };
    let other =
        Mamba2Block::with_selection(small.clone(), random_weights(&small, 2), &sel).unwrap();
    let mut og = other
        .device_block(mamba_model::DType::F32)
        .unwrap()
        .unwrap()
        .grads(cuda)
        .unwrap();
    let du = cuda.upload(&u, &stream).unwrap();
    let dd = cuda.upload(&dout, &stream).unwrap();
    let mut dx = cuda.alloc::<f32>(n).unwrap();
    let pass = DeviceBackward {
        input: &du,
        dout: &dd,
        batch: b,
        seqlen: l,
        activations: None,
        init: None,
        dfinal: None,
    };
    let e = dblk
        .backward(&pass, &mut dx, &mut og, None, &stream)
        .unwrap_err();
    assert!(e.to_string().contains("grads"), "{e}");
}

/// `CudaBackend::axpy` (y += alpha x on the device) in every storage type against the
/// host, and a residual stack of two blocks trained on device buffers (forward_train,
/// the residual adds, backward from the top) against the same stack through the
/// host-slice API: outputs, d input and both blocks' gradients.
#[test]
fn block_stack_trains_on_device_buffers() {
    if !cuda_available() {
        return;
    }
    use mamba_core::plugin::DeviceBackward;
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let stream = cuda.stream().unwrap();
    // axpy alone.
    let mut rng = SplitMix64(21);
    let n = 1000;
    let xs: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let ys: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let want: Vec<f64> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (*y + -0.5 * *x) as f64)
        .collect();
    fn axpy_case<T: mamba_core::plugin::DeviceElement + Element>(
        xs: &[f32],
        ys: &[f32],
        want: &[f64],
        tol: f64,
    ) {
        let cuda = mamba_model::backend::cuda_backend().unwrap();
        let stream = cuda.stream().unwrap();
        let to_t = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
        let x = cuda.upload(&to_t(xs), &stream).unwrap();
        let mut y = cuda.upload(&to_t(ys), &stream).unwrap();
        cuda.axpy(-0.5, &x, &mut y, &stream).unwrap();
        let got: Vec<f64> = y
            .to_vec(&stream)
            .unwrap()
            .iter()
            .map(|v| v.to_f32() as f64)
            .collect();
        let e = rel_l2(&got, want);
        assert!(e <= tol, "axpy {}: {e:.2e}", T::DTYPE);
    }
    axpy_case::<f32>(&xs, &ys, &want, 1e-7);
    axpy_case::<bf16>(&xs, &ys, &want, 1e-2);
    axpy_case::<f16>(&xs, &ys, &want, 2e-3);
    let mut y = cuda.upload(&ys, &stream).unwrap();
    let short = cuda.alloc::<f32>(n - 1).unwrap();
    let e = cuda.axpy(1.0, &short, &mut y, &stream).unwrap_err();
    assert!(e.to_string().contains("999"), "{e}");

    // Two residual blocks: h1 = x + f1(x), h2 = h1 + f2(h1).
    let cfg = small_cfg();
    let sel = build(BackendKind::Cuda).unwrap();
    let blocks: Vec<Mamba2Block> = (0..2)
        .map(|k| {
            Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 31 + k), &sel).unwrap()
        })
        .collect();
    let (b, l) = (2, 41);
    let n = b * l * cfg.d_model;
    let shape = [b, l, cfg.d_model];
    let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let dtop: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    // The host-slice API, residuals on the host.
    let t1 = blocks[0]
        .forward_train(Tensor::new(&u, shape), None)
        .unwrap();
    let h1: Vec<f32> = u.iter().zip(t1.output()).map(|(a, c)| a + c).collect();
    let t2 = blocks[1]
        .forward_train(Tensor::new(&h1, shape), None)
        .unwrap();
    let h2: Vec<f32> = h1.iter().zip(t2.output()).map(|(a, c)| a + c).collect();
    let g2 = blocks[1].backward(&t2, &dtop, None).unwrap();
    let dh1: Vec<f32> = dtop.iter().zip(&g2.input).map(|(a, c)| a + c).collect();
    let g1 = blocks[0].backward(&t1, &dh1, None).unwrap();
    let dx: Vec<f32> = dh1.iter().zip(&g1.input).map(|(a, c)| a + c).collect();
    // The same on device buffers.
    let dev: Vec<_> = blocks
        .iter()
        .map(|blk| blk.device_block(mamba_model::DType::F32).unwrap().unwrap())
        .collect();
    let x = cuda.upload(&u, &stream).unwrap();
    let mut o1 = cuda.alloc::<f32>(n).unwrap();
    let mut o2 = cuda.alloc::<f32>(n).unwrap();
    let mut acts: Vec<_> = dev
        .iter()
        .map(|d| d.activations(cuda, b, l).unwrap())
        .collect();
    dev[0]
        .forward_train(&x, b, l, &mut o1, None, false, &mut acts[0], &stream)
        .unwrap();
    cuda.axpy(1.0, &x, &mut o1, &stream).unwrap(); // o1 = h1
    dev[1]
        .forward_train(&o1, b, l, &mut o2, None, false, &mut acts[1], &stream)
        .unwrap();
    cuda.axpy(1.0, &o1, &mut o2, &stream).unwrap(); // o2 = h2
    let top = cuda.upload(&dtop, &stream).unwrap();
    let mut d2 = cuda.alloc::<f32>(n).unwrap();
    let mut d1 = cuda.alloc::<f32>(n).unwrap();
    let mut grads: Vec<_> = dev.iter().map(|d| d.grads(cuda).unwrap()).collect();
    let pass2 = DeviceBackward {
        input: &o1,
        dout: &top,
        batch: b,
        seqlen: l,
        activations: Some(&acts[1]),
        init: None,
        dfinal: None,
    };
    dev[1]
        .backward(&pass2, &mut d2, &mut grads[1], None, &stream)
        .unwrap();
    cuda.axpy(1.0, &top, &mut d2, &stream).unwrap(); // d2 = dh1
    let pass1 = DeviceBackward {
        input: &x,
        dout: &d2,
        batch: b,
        seqlen: l,
        activations: Some(&acts[0]),
        init: None,
        dfinal: None,
    };
    dev[0]
        .backward(&pass1, &mut d1, &mut grads[0], None, &stream)
        .unwrap();
    cuda.axpy(1.0, &d2, &mut d1, &stream).unwrap(); // d1 = dx
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut worst = 0f64;
    let mut cmp = |what: &str, got: &[f64], want: &[f64]| {
        let e = rel_l2(got, want);
        assert!(
            e <= 1e-5,
            "stack on device buffers, {what}: {e:.2e} from the host-slice API"
        );
        worst = worst.max(e);
    };
    cmp("h2", &f64s(&o2.to_vec(&stream).unwrap()), &f64s(&h2));
    cmp("d input", &f64s(&d1.to_vec(&stream).unwrap()), &f64s(&dx));
    for (k, (gd, gh)) in grads.iter().zip([&g1, &g2]).enumerate() {
        let dev_grads = mamba_model::Mamba2Grads::<f32> {
            input: Vec::new(),
            weights: grads_weights(&gd.to_host(&stream).unwrap()),
            initial_state: None,
        };
        let (got, want) = (named(&dev_grads), named(gh));
        assert_eq!(got.len(), want.len());
        for ((name, a), (_, c)) in got.iter().zip(&want).skip(1) {
            cmp(&format!("block {k} d/d {name}"), a, c);
        }
    }
    println!("residual stack of 2 blocks on device buffers: worst rel-L2 {worst:.2e} against the host-slice API; axpy ok");
}

/// A block's gradients from the plugin in the weights' layout.
fn grads_weights(g: &mamba_core::plugin::BlockGrads) -> Mamba2Weights {
    Mamba2Weights {
        in_proj: g.in_proj.clone(),
        in_proj_bias: None,
        conv_weight: g.conv_weight.clone(),
        conv_bias: Some(g.conv_bias.clone()),
        dt_bias: g.dt_bias.clone(),
        a_log: g.a_log.clone(),
        d: g.d.clone(),
        norm_weight: g.norm_weight.clone(),
        out_proj: g.out_proj.clone(),
        out_proj_bias: None,
    }
}

/// Host-slice copies at and above the page-locked threshold (64 KiB) come back exactly:
/// `to_vec` / `copy_to_host` of a pattern, in f32 and bf16, below, at and above the
/// threshold and past the pool's size classes; and a block's forward on host slices (whose
/// output and states come back in one page-locked copy) equals the same forward on device
/// buffers at a size above the threshold.
#[test]
fn pinned_copies_round_trip_exactly() {
    if !cuda_available() {
        return;
    }
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let stream = cuda.stream().unwrap();
    for n in [1000usize, 16_384, 16_385, 262_147, 3_000_001] {
        let v: Vec<f32> = (0..n).map(|i| (i as f32) * 0.25 - 7.0).collect();
        let d = cuda.upload(&v, &stream).unwrap();
        assert_eq!(d.to_vec(&stream).unwrap(), v, "to_vec of {n} f32");
        let mut back = vec![0f32; n];
        d.copy_to_host(&mut back, &stream).unwrap();
        assert_eq!(back, v, "copy_to_host of {n} f32");
        let vb: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
        let db = cuda.upload(&vb, &stream).unwrap();
        assert_eq!(db.to_vec(&stream).unwrap(), vb, "to_vec of {n} bf16");
    }
    let cfg = small_cfg();
    let blk = Mamba2Block::with_selection(
        cfg.clone(),
        random_weights(&cfg, 41),
        &build(BackendKind::Cuda).unwrap(),
    )
    .unwrap();
    let dblk = blk.device_block(mamba_model::DType::F32).unwrap().unwrap();
    let (b, l) = (2, 400); // 19 200 f32 = 75 KiB per tensor
    let n = b * l * cfg.d_model;
    let mut rng = SplitMix64(42);
    let u: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let (mut hc, mut hs) = (
        vec![0f32; dblk.conv_state_len(b)],
        vec![0f32; dblk.ssm_state_len(b)],
    );
    let mut hout = vec![0f32; n];
    dblk.forward_host(cuda, &u, b, l, &mut hc, &mut hs, &mut hout)
        .unwrap();
    let du = cuda.upload(&u, &stream).unwrap();
    let mut dout = cuda.alloc::<f32>(n).unwrap();
    let mut cs = cuda.zeros::<f32>(hc.len(), &stream).unwrap();
    let mut ss = cuda.zeros::<f32>(hs.len(), &stream).unwrap();
    dblk.forward(
        &du,
        b,
        l,
        &mut dout,
        Some((&mut cs, &mut ss)),
        true,
        &stream,
    )
    .unwrap();
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for (what, got, want) in [
        ("block output", dout.to_vec(&stream).unwrap(), &hout),
        ("conv state", cs.to_vec(&stream).unwrap(), &hc),
        ("ssm state", ss.to_vec(&stream).unwrap(), &hs),
    ] {
        let e = rel_l2(&f64s(&got), &f64s(want));
        assert!(
            e <= 1e-6,
            "{what}: host slices against device buffers {e:.2e}"
        );
    }
    println!(
        "pinned copies: exact round trips; the block's host-slice forward equals the device one"
    );
}

/// Each block's forward_train + backward chained by hand through the host-slice API,
/// residual adds on the host: (output, d input, each block's gradients).
fn chained_by_hand<T: Element + mamba_core::plugin::DeviceElement>(
    blocks: &[Mamba2Block],
    x: &[T],
    dout: &[T],
    shape: [usize; 3],
) -> (Vec<T>, Vec<T>, Vec<Mamba2Weights>)
where
    dyn mamba_core::Backend: mamba_core::Kernels<T>,
{
    let add = |h: &mut Vec<T>, y: &[T]| {
        h.iter_mut()
            .zip(y)
            .for_each(|(a, c)| *a = T::from_f64(a.to_f64() + c.to_f64()))
    };
    let mut h = x.to_vec();
    let mut tapes = Vec::new();
    for blk in blocks {
        let t = blk.forward_train(Tensor::new(&h, shape), None).unwrap();
        add(&mut h, t.output());
        tapes.push(t);
    }
    let mut g = dout.to_vec();
    let mut ws = Vec::new();
    for (blk, t) in blocks.iter().zip(&tapes).rev() {
        let gb = blk.backward(t, &g, None).unwrap();
        add(&mut g, &gb.input);
        ws.push(gb.weights);
    }
    ws.reverse();
    (h, g, ws)
}

/// `Mamba2Stack` with its residual stream on the device: the same numbers as the blocks
/// chained by hand through the host-slice API (f32 and bf16; kept and recomputed
/// activations; two shapes), buffers reused by the next step without changing a
/// result, two tapes alive at once, the inference forward, and a foreign tape refused.
#[test]
fn stack_trains_with_its_stream_on_the_device() {
    if !cuda_available() {
        return;
    }
    use mamba_model::{DType, Mamba2Stack};
    let cfg = small_cfg();
    let sel = build(BackendKind::Cuda).unwrap();
    let blocks: Vec<Mamba2Block> = (0..3)
        .map(|k| {
            Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 51 + k), &sel).unwrap()
        })
        .collect();
    let mut stack = Mamba2Stack::new(blocks.clone()).unwrap();
    assert_eq!(stack.on_device(DType::F32), (true, true));
    assert_eq!(stack.on_device(DType::BF16), (true, true));
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut rng = SplitMix64(61);
    for (b, l) in [(2usize, 41usize), (1, 130)] {
        let shape = [b, l, cfg.d_model];
        let n = b * l * cfg.d_model;
        let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let x2: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let (h, g, ws) = chained_by_hand(stack.blocks(), &x, &dout, shape);
        let check = |what: &str, out: &[f32], gi: &[f32], gw: &[Mamba2Weights], tol: f64| {
            let e = rel_l2(&f64s(out), &f64s(&h));
            assert!(e <= tol, "{what} (b {b}, L {l}): output {e:.2e}");
            let e = rel_l2(&f64s(gi), &f64s(&g));
            assert!(e <= tol, "{what} (b {b}, L {l}): d input {e:.2e}");
            for (k, (a, w)) in gw.iter().zip(&ws).enumerate() {
                for (t, (ta, tw)) in a.tensors().iter().zip(w.tensors()).enumerate() {
                    let e = rel_l2(&f64s(ta), &f64s(tw));
                    assert!(
                        e <= tol,
                        "{what} (b {b}, L {l}): block {k} tensor {t} {e:.2e}"
                    );
                }
            }
        };
        let tape = stack.forward_train(Tensor::new(&x, shape)).unwrap();
        assert!(tape.on_device() && tape.device_bytes() > 0);
        let gr = stack.backward(&tape, &dout).unwrap();
        check("stack", tape.output(), &gr.input, &gr.blocks, 1e-5);
        let first_out = tape.output().to_vec();
        let bytes = tape.device_bytes();
        drop(tape);
        // The next step takes the same buffers: the same results, bit for bit.
        let tape = stack.forward_train(Tensor::new(&x, shape)).unwrap();
        assert_eq!(tape.device_bytes(), bytes);
        assert_eq!(tape.output(), &first_out[..], "a step on reused buffers");
        // A second tape alive at once (another input) leaves the first one's alone.
        let other = stack.forward_train(Tensor::new(&x2, shape)).unwrap();
        let g_other = stack.backward(&other, &dout).unwrap();
        let again = stack.backward(&tape, &dout).unwrap();
        // (The block's backward sums some gradients in a run-dependent order: not bit for
        // bit, but a tape overwritten by the other input would be off by O(1).)
        let e = rel_l2(&f64s(&again.input), &f64s(&gr.input));
        assert!(e <= 1e-6, "backward with another tape alive: {e:.2e}");
        let (h2, g2, _) = chained_by_hand(stack.blocks(), &x2, &dout, shape);
        assert!(rel_l2(&f64s(other.output()), &f64s(&h2)) <= 1e-5);
        assert!(rel_l2(&f64s(&g_other.input), &f64s(&g2)) <= 1e-5);
        // backward_into: the same gradients, in the memory of the other tape's.
        let mut into = g_other.clone();
        let ptrs = |g: &mamba_model::StackGrads<f32>| {
            let mut p = vec![g.input.as_ptr() as usize];
            for w in &g.blocks {
                p.extend(w.tensors().iter().map(|t| t.as_ptr() as usize));
            }
            p
        };
        let before = ptrs(&into);
        stack.backward_into(&tape, &dout, &mut into).unwrap();
        assert_eq!(ptrs(&into), before, "backward_into allocated");
        let e = rel_l2(&f64s(&into.input), &f64s(&gr.input));
        assert!(e <= 1e-6, "backward_into, d input: {e:.2e}");
        for (k, (a, w)) in into.blocks.iter().zip(&gr.blocks).enumerate() {
            for (t, (ta, tw)) in a.tensors().iter().zip(w.tensors()).enumerate() {
                let e = rel_l2(&f64s(ta), &f64s(tw));
                assert!(e <= 1e-6, "backward_into: block {k} tensor {t} {e:.2e}");
            }
        }
        // The inference forward.
        let y = stack.forward(Tensor::new(&x, shape)).unwrap();
        let e = rel_l2(&f64s(&y), &f64s(&h));
        assert!(e <= 1e-5, "forward (b {b}, L {l}): {e:.2e}");
        // A tape of this stack is refused by a clone.
        let e = stack.clone().backward(&tape, &dout).unwrap_err();
        assert!(e.to_string().contains("another stack"), "{e}");
        drop((tape, other));
        // The kept buffers can be freed; the next pass makes new ones.
        assert!(stack.release_buffers());
        assert!(!stack.release_buffers());
        let tape = stack.forward_train(Tensor::new(&x, shape)).unwrap();
        assert_eq!(
            tape.output(),
            &first_out[..],
            "a step after release_buffers"
        );
        drop(tape);
        // Block 1 recomputes its activations.
        stack.block_mut(1).set_keep_activations(false);
        let tape = stack.forward_train(Tensor::new(&x, shape)).unwrap();
        assert!(tape.on_device());
        let gr = stack.backward(&tape, &dout).unwrap();
        check("recompute", tape.output(), &gr.input, &gr.blocks, 1e-5);
        drop(tape);
        stack.block_mut(1).set_keep_activations(true);
        // bf16 storage.
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let db: Vec<bf16> = dout.iter().map(|&v| bf16::from_f32(v)).collect();
        let (hb, gb, wb) = chained_by_hand(stack.blocks(), &xb, &db, shape);
        let tape = stack.forward_train(Tensor::new(&xb, shape)).unwrap();
        assert!(tape.on_device());
        let grb = stack.backward(&tape, &db).unwrap();
        let wide = |v: &[bf16]| v.iter().map(|x| x.to_f32() as f64).collect::<Vec<_>>();
        let e = rel_l2(&wide(tape.output()), &wide(&hb));
        assert!(e <= 1e-2, "bf16 output {e:.2e}");
        let e = rel_l2(&wide(&grb.input), &wide(&gb));
        assert!(e <= 2e-2, "bf16 d input {e:.2e}");
        for (k, (a, w)) in grb.blocks.iter().zip(&wb).enumerate() {
            for (t, (ta, tw)) in a.tensors().iter().zip(w.tensors()).enumerate() {
                let e = rel_l2(&f64s(ta), &f64s(tw));
                assert!(e <= 2e-2, "bf16 block {k} tensor {t} {e:.2e}");
            }
        }
    }
}

/// Timings (not assertions): a training step (forward_train + backward, and with the
/// weights set after it) of a stack of 4 seed blocks (d_model 192, N 64) on the device,
/// against the same blocks chained through the host-slice API, wall clock, medians.
#[test]
fn stack_train_bench() {
    if std::env::var("MAMBA_BLOCK_TRAIN_BENCH").ok().as_deref() != Some("1") || !cuda_available() {
        return;
    }
    use mamba_model::Mamba2Stack;
    let cfg = Mamba2Config::new(192, 64);
    let sel = build(BackendKind::Cuda).unwrap();
    let blocks: Vec<Mamba2Block> = (0..4)
        .map(|k| {
            Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 70 + k), &sel).unwrap()
        })
        .collect();
    let mut stack = Mamba2Stack::new(blocks).unwrap();
    let b = 2;
    for l in [100usize, 400, 800] {
        let shape = [b, l, 192];
        let n = b * l * 192;
        let mut rng = SplitMix64(3);
        let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let ws: Vec<Mamba2Weights> = stack.blocks().iter().map(|b| b.weights().clone()).collect();
        stack.set_weights(ws.clone()).unwrap();
        let median_ms = |f: &mut dyn FnMut()| {
            let mut v = Vec::new();
            for i in 0..23 {
                let t0 = std::time::Instant::now();
                f();
                if i >= 3 {
                    v.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            mamba_core::plugin::median(&v)
        };
        let mut rounds = Vec::new();
        let mut grads = mamba_model::StackGrads {
            input: Vec::new(),
            blocks: Vec::new(),
        };
        let mut scratch = ws.clone();
        // Tiny steps: the weights stay near where they started.
        let mut host_opt = mamba_model::AdamW::new(1e-7);
        let mut dev_opt = mamba_model::StackAdamW::new(1e-7);
        let mut dinput: Vec<f32> = Vec::new();
        for _ in 0..3 {
            let by_hand = median_ms(&mut || {
                std::hint::black_box(chained_by_hand(stack.blocks(), &x, &dout, shape));
            });
            let st = median_ms(&mut || {
                let t = stack.forward_train(Tensor::new(&x, shape)).unwrap();
                std::hint::black_box(stack.backward(&t, &dout).unwrap());
            });
            let st_into = median_ms(&mut || {
                let t = stack.forward_train(Tensor::new(&x, shape)).unwrap();
                stack.backward_into(&t, &dout, &mut grads).unwrap();
                std::hint::black_box(&grads);
            });
            // A training step with AdamW on the host: the gradients downloaded, the
            // weights updated there and set (their memory reused).
            let st_set = median_ms(&mut || {
                let t = stack.forward_train(Tensor::new(&x, shape)).unwrap();
                stack.backward_into(&t, &dout, &mut grads).unwrap();
                drop(t);
                for (w, b) in scratch.iter_mut().zip(stack.blocks()) {
                    w.clone_from(b.weights());
                }
                let mut params: Vec<&mut [f32]> =
                    scratch.iter_mut().flat_map(|w| w.tensors_mut()).collect();
                let gs: Vec<&[f32]> = grads.blocks.iter().flat_map(|w| w.tensors()).collect();
                host_opt.step(&mut params, &gs);
                for (k, w) in scratch.iter_mut().enumerate() {
                    stack.block_mut(k).swap_weights(w).unwrap();
                }
            });
            // The same on the device (backward_update), the input's gradient into a
            // reused vector, and not brought back at all.
            let st_dev = median_ms(&mut || {
                let t = stack.forward_train(Tensor::new(&x, shape)).unwrap();
                stack
                    .backward_update_into(&t, &dout, &mut dev_opt, Some(&mut dinput))
                    .unwrap();
                std::hint::black_box(&dinput);
            });
            let st_dev_none = median_ms(&mut || {
                let t = stack.forward_train(Tensor::new(&x, shape)).unwrap();
                stack
                    .backward_update_into(&t, &dout, &mut dev_opt, None)
                    .unwrap();
            });
            let fwd_hand = median_ms(&mut || {
                let mut h = x.clone();
                for blk in stack.blocks() {
                    let (y, _) = blk.forward(Tensor::new(&h, shape)).unwrap();
                    h.iter_mut().zip(&y).for_each(|(a, c)| *a += c);
                }
                std::hint::black_box(h);
            });
            let fwd = median_ms(&mut || {
                std::hint::black_box(stack.forward(Tensor::new(&x, shape)).unwrap());
            });
            rounds.push(format!(
                "step by hand {by_hand:.3} / stack {st:.3} / backward_into {st_into:.3}; with AdamW on the host {st_set:.3} / on the device {st_dev:.3} ({st_dev_none:.3} without d input); forward by hand {fwd_hand:.3} / stack {fwd:.3}"
            ));
        }
        println!(
            "stack of 4 blocks (2, {l}, 192) f32, ms: {}",
            rounds.join(" | ")
        );
    }
}

/// AdamW on the device: the `adamw` kernel equals `AdamW::step` bit for bit; a stack's
/// `backward_update` on the device tracks the host path (backward, AdamW on the host,
/// set_weights) over three steps; the device copies it rewrites equal copies made afresh
/// from the weights it brought back (f32, then a bf16 step, after which the f32 copy is
/// made again from the new weights).
#[test]
fn stack_updates_its_weights_on_the_device() {
    if !cuda_available() {
        return;
    }
    use mamba_model::{AdamW, DType, Mamba2Stack, StackAdamW};
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let stream = cuda.stream().unwrap();
    // The kernel against AdamW::step, three steps from zero moments.
    let mut rng = SplitMix64(81);
    let n = 10_007;
    let mut host = AdamW::new(3e-3);
    let (lr, beta1, beta2, eps, weight_decay) =
        (host.lr, host.beta1, host.beta2, host.eps, host.weight_decay);
    let hp = |t: i32| mamba_core::abi::AdamWC {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        bc1: 1.0 - beta1.powi(t),
        bc2: 1.0 - beta2.powi(t),
        grad_scale: 1.0,
    };
    let hyper: Vec<_> = (1..=3).map(hp).collect();
    let mut p: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut dp = cuda.upload(&p, &stream).unwrap();
    let mut m = cuda.zeros::<f32>(n, &stream).unwrap();
    let mut v = cuda.zeros::<f32>(n, &stream).unwrap();
    for hp in &hyper {
        // Gradients over many magnitudes, some zero.
        let g: Vec<f32> = (0..n)
            .map(|i| {
                if i % 97 == 0 {
                    0.0
                } else {
                    rng.normal() * 10f32.powi(i as i32 % 7 - 3)
                }
            })
            .collect();
        let dg = cuda.upload(&g, &stream).unwrap();
        cuda.adamw(hp, &mut dp, &dg, &mut m, &mut v, &stream)
            .unwrap();
        host.step(&mut [&mut p], &[&g]);
        let got = dp.to_vec(&stream).unwrap();
        let diff = got
            .iter()
            .zip(&p)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            diff, 0,
            "adamw kernel: {diff} of {n} parameters differ from AdamW::step"
        );
    }
    let short = cuda.alloc::<f32>(n - 1).unwrap();
    let e = cuda
        .adamw(&hyper[0], &mut dp, &short, &mut m, &mut v, &stream)
        .unwrap_err();
    assert!(e.to_string().contains("10006"), "{e}");
    // A gradient scale (clipping) multiplies each gradient first, as the host does.
    let g: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let dg = cuda.upload(&g, &stream).unwrap();
    let mut clipped = hp(4);
    clipped.grad_scale = 0.37;
    cuda.adamw(&clipped, &mut dp, &dg, &mut m, &mut v, &stream)
        .unwrap();
    let gs: Vec<f32> = g.iter().map(|x| x * 0.37).collect();
    host.step(&mut [&mut p], &[&gs]);
    let got = dp.to_vec(&stream).unwrap();
    assert!(
        got.iter().zip(&p).all(|(a, b)| a.to_bits() == b.to_bits()),
        "adamw with grad_scale"
    );
    clipped.grad_scale = 0.0;
    let e = cuda
        .adamw(&clipped, &mut dp, &dg, &mut m, &mut v, &stream)
        .unwrap_err();
    assert!(e.to_string().contains("grad_scale"), "{e}");
    // sum_squares over several buffers (and an empty list) against f64 on the host.
    let want: f64 = g.iter().chain(&p).map(|&x| x as f64 * x as f64).sum();
    let got = cuda.sum_squares(&[&dg, &dp], &stream).unwrap();
    assert!(
        (got - want).abs() <= 1e-12 * want,
        "sum_squares {got} against {want}"
    );
    assert_eq!(cuda.sum_squares(&[], &stream).unwrap(), 0.0);

    // A stack updated on the device against the host path.
    let cfg = small_cfg();
    let sel = build(BackendKind::Cuda).unwrap();
    let blocks: Vec<Mamba2Block> = (0..2)
        .map(|k| {
            Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 91 + k), &sel).unwrap()
        })
        .collect();
    let mut dev = Mamba2Stack::new(blocks.clone()).unwrap();
    let mut reference = Mamba2Stack::new(blocks).unwrap();
    let mut opt = StackAdamW::new(1e-3);
    let mut ref_opt = AdamW::new(1e-3);
    let (b, l) = (2, 37);
    let shape = [b, l, cfg.d_model];
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut last_dx: Vec<f32> = Vec::new();
    let fresh = |s: &Mamba2Stack| {
        Mamba2Stack::new(
            s.blocks()
                .iter()
                .map(|k| {
                    Mamba2Block::with_selection(cfg.clone(), k.weights().clone(), &sel).unwrap()
                })
                .collect(),
        )
        .unwrap()
    };
    for step in 0..3 {
        let x: Vec<f32> = (0..b * l * cfg.d_model).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
        let t = dev.forward_train(Tensor::new(&x, shape)).unwrap();
        assert!(t.on_device());
        // backward_update; its _into form into the last step's vector (no allocation);
        // with no input gradient wanted.
        let dx = match step {
            0 => dev.backward_update(&t, &dout, &mut opt).unwrap(),
            1 => {
                let mut v = last_dx.clone();
                let at = v.as_ptr();
                dev.backward_update_into(&t, &dout, &mut opt, Some(&mut v))
                    .unwrap();
                assert_eq!(v.as_ptr(), at, "backward_update_into allocated");
                v
            }
            _ => {
                dev.backward_update_into(&t, &dout, &mut opt, None).unwrap();
                Vec::new()
            }
        };
        let t = reference.forward_train(Tensor::new(&x, shape)).unwrap();
        let g = reference.backward(&t, &dout).unwrap();
        drop(t);
        let mut ws: Vec<Mamba2Weights> = reference
            .blocks()
            .iter()
            .map(|k| k.weights().clone())
            .collect();
        let mut params: Vec<&mut [f32]> = ws.iter_mut().flat_map(|w| w.tensors_mut()).collect();
        let gs: Vec<&[f32]> = g.blocks.iter().flat_map(|w| w.tensors()).collect();
        ref_opt.step(&mut params, &gs);
        reference.set_weights(ws).unwrap();
        if step < 2 {
            let e = rel_l2(&f64s(&dx), &f64s(&g.input));
            assert!(e <= 1e-5, "step {step}: d input {e:.2e}");
        }
        last_dx = dx;
        for (k, (wa, wb)) in dev.blocks().iter().zip(reference.blocks()).enumerate() {
            for (i, (ta, tb)) in wa
                .weights()
                .tensors()
                .iter()
                .zip(wb.weights().tensors())
                .enumerate()
            {
                let e = rel_l2(&f64s(ta), &f64s(tb));
                assert!(e <= 1e-5, "step {step}: block {k} tensor {i}: {e:.2e}");
            }
        }
        // The device copies hold the weights brought back.
        let y = dev.forward(Tensor::new(&x, shape)).unwrap();
        let want = fresh(&dev).forward(Tensor::new(&x, shape)).unwrap();
        let e = rel_l2(&f64s(&y), &f64s(&want));
        assert!(
            e <= 1e-6,
            "step {step}: the device copies against fresh ones: {e:.2e}"
        );
    }
    assert_eq!(opt.adamw.steps(), 3);
    // Clipping on the device: the norm it reports, and the update it makes against
    // AdamW::step on the host with the gradients (of a stack with the same weights, on
    // the device) scaled as PyTorch's clip_grad_norm_ does. eps = 1 makes the first
    // update proportional to the gradient, so the scale shows in it.
    let x: Vec<f32> = (0..b * l * cfg.d_model).map(|_| rng.normal()).collect();
    let dout: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
    let mut clip = fresh(&dev);
    let mut o_clip = StackAdamW::new(0.1);
    o_clip.adamw.eps = 1.0;
    o_clip.max_grad_norm = Some(0.05);
    let plain = fresh(&dev);
    let t = plain.forward_train(Tensor::new(&x, shape)).unwrap();
    let g = plain.backward(&t, &dout).unwrap();
    drop(t);
    let norm = g
        .blocks
        .iter()
        .flat_map(|w| w.tensors())
        .flat_map(|t| t.iter())
        .map(|&v| v as f64 * v as f64)
        .sum::<f64>()
        .sqrt() as f32;
    let scale = (0.05 / (norm + 1e-6)).min(1.0);
    assert!(scale < 0.5, "the test needs clipping to act: norm {norm}");
    let t = clip.forward_train(Tensor::new(&x, shape)).unwrap();
    clip.backward_update(&t, &dout, &mut o_clip).unwrap();
    let got = o_clip.grad_norm().unwrap();
    assert!(
        (got - norm).abs() <= 1e-5 * norm,
        "grad norm {got} against {norm}"
    );
    let mut want: Vec<Mamba2Weights> = plain.blocks().iter().map(|k| k.weights().clone()).collect();
    let mut host_opt = AdamW::new(0.1);
    host_opt.eps = 1.0;
    let scaled: Vec<Vec<f32>> = g
        .blocks
        .iter()
        .flat_map(|w| w.tensors())
        .map(|t| t.iter().map(|v| v * scale).collect())
        .collect();
    let mut params: Vec<&mut [f32]> = want.iter_mut().flat_map(|w| w.tensors_mut()).collect();
    host_opt.step(
        &mut params,
        &scaled.iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
    );
    for (k, (wa, wb)) in clip.blocks().iter().zip(&want).enumerate() {
        let start = plain.blocks()[k].weights().tensors();
        for (i, ((ta, tb), t0)) in wa
            .weights()
            .tensors()
            .iter()
            .zip(wb.tensors())
            .zip(start)
            .enumerate()
        {
            // The updates themselves (the weights differ from the start by ~lr scale g).
            let da: Vec<f64> = ta.iter().zip(t0).map(|(a, z)| (*a - *z) as f64).collect();
            let db: Vec<f64> = tb.iter().zip(t0).map(|(a, z)| (*a - *z) as f64).collect();
            let e = rel_l2(&da, &db);
            assert!(e <= 1e-3, "clipped update, block {k} tensor {i}: {e:.2e}");
        }
    }
    // A step in bf16: its device copies are rewritten; the f32 ones are made again.
    assert_eq!(dev.on_device(DType::BF16), (true, true));
    let x: Vec<f32> = (0..b * l * cfg.d_model).map(|_| rng.normal()).collect();
    let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let before = dev.blocks()[0].weights().clone();
    let t = dev.forward_train(Tensor::new(&xb, shape)).unwrap();
    dev.backward_update(&t, &xb, &mut opt).unwrap();
    assert_ne!(
        &before,
        dev.blocks()[0].weights(),
        "the bf16 step changed nothing"
    );
    let fr = fresh(&dev);
    let wide = |v: &[bf16]| v.iter().map(|x| x.to_f32() as f64).collect::<Vec<_>>();
    let e = rel_l2(
        &wide(&dev.forward(Tensor::new(&xb, shape)).unwrap()),
        &wide(&fr.forward(Tensor::new(&xb, shape)).unwrap()),
    );
    assert!(e <= 1e-3, "bf16 device copies against fresh ones: {e:.2e}");
    let e = rel_l2(
        &f64s(&dev.forward(Tensor::new(&x, shape)).unwrap()),
        &f64s(&fr.forward(Tensor::new(&x, shape)).unwrap()),
    );
    assert!(e <= 1e-6, "f32 copies after a bf16 step: {e:.2e}");
}

/// The optimizer's state through files and between the device and the host: the moments
/// saved from the device against a host-path run's, a run resumed from the files on the
/// device against the one that went on, and a step on the host path after device steps
/// (its moments brought back) against a device step.
#[test]
fn stack_optimizer_state_saves_and_resumes_on_the_device() {
    if !cuda_available() {
        return;
    }
    use mamba_model::io::TensorFile;
    use mamba_model::{DType, Mamba2Stack, StackAdamW};
    let cfg = small_cfg();
    let sel = build(BackendKind::Cuda).unwrap();
    let make = |device: bool| {
        let blocks = (0..2)
            .map(|k| {
                let mut b =
                    Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 301 + k), &sel)
                        .unwrap();
                b.set_device_training(device);
                b
            })
            .collect();
        Mamba2Stack::new(blocks).unwrap()
    };
    let (b, l) = (2, 29);
    let shape = [b, l, cfg.d_model];
    let step = |stack: &mut Mamba2Stack, opt: &mut StackAdamW, s: u64, device: bool| {
        let mut rng = SplitMix64(700 + s);
        let x: Vec<f32> = (0..b * l * cfg.d_model).map(|_| rng.normal()).collect();
        let dout: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
        let t = stack.forward_train(Tensor::new(&x, shape)).unwrap();
        assert_eq!(t.on_device(), device, "step {s}");
        stack.backward_update_into(&t, &dout, opt, None).unwrap();
    };
    let new_opt = || {
        let mut o = StackAdamW::new(2e-3);
        o.max_grad_norm = Some(5.0);
        o
    };
    let dir = std::env::temp_dir().join(format!("mamba-gpu-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |n: &str| dir.join(n);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();

    // Two steps on the device and on the host path; the saved moments agree.
    let mut a = make(true);
    let mut opt_a = new_opt();
    let mut h = make(false);
    let mut opt_h = new_opt();
    for s in 0..2 {
        step(&mut a, &mut opt_a, s, true);
        step(&mut h, &mut opt_h, s, false);
    }
    a.save_safetensors(file("w.safetensors"), DType::F32)
        .unwrap();
    opt_a.save_safetensors(&a, file("opt.safetensors")).unwrap();
    opt_h
        .save_safetensors(&h, file("opt_h.safetensors"))
        .unwrap();
    let (fa, fh) = (
        TensorFile::read(&file("opt.safetensors")).unwrap(),
        TensorFile::read(&file("opt_h.safetensors")).unwrap(),
    );
    let mut names: Vec<&String> = fh.tensors.keys().collect();
    names.sort();
    assert_eq!(names.len(), 2 * 2 * 8, "{names:?}");
    for name in names {
        let (ta, th) = (&fa.tensors[name], &fh.tensors[name]);
        assert_eq!(ta.shape, th.shape, "{name}");
        assert!(th.data.iter().any(|&v| v != 0.0), "{name} is all zero");
        let e = rel_l2(&ta.data, &th.data);
        assert!(
            e <= 1e-4,
            "saved moment {name}: device against host {e:.2e}"
        );
    }

    // Resumed from the files (the moments go back to the device) against the run that
    // went on: the same updates.
    let w2: Vec<Mamba2Weights> = a.blocks().iter().map(|k| k.weights().clone()).collect();
    let mut r = Mamba2Stack::load_safetensors(file("w.safetensors")).unwrap();
    let r_blocks: Vec<Mamba2Block> = r
        .blocks()
        .iter()
        .map(|k| Mamba2Block::with_selection(cfg.clone(), k.weights().clone(), &sel).unwrap())
        .collect();
    r = Mamba2Stack::new(r_blocks).unwrap();
    let mut opt_r = StackAdamW::load_safetensors(file("opt.safetensors"), &r).unwrap();
    assert_eq!(opt_r.adamw.steps(), 2);
    // And a third copy whose last step runs on the host path (its moments come back
    // from the device first).
    let mut c = r.clone();
    let mut opt_c = StackAdamW::load_safetensors(file("opt.safetensors"), &c).unwrap();
    for s in 2..4 {
        step(&mut a, &mut opt_a, s, true);
        step(&mut r, &mut opt_r, s, true);
        if s == 3 {
            for k in 0..c.len() {
                c.block_mut(k).set_device_training(false);
            }
        }
        step(&mut c, &mut opt_c, s, s < 3);
    }
    assert_eq!(
        (opt_r.adamw.steps(), opt_c.adamw.steps()),
        (4, 4),
        "steps counted"
    );
    for (name, other) in [("resumed", &r), ("host last step", &c)] {
        for (k, (wa, wb)) in a.blocks().iter().zip(other.blocks()).enumerate() {
            let start = w2[k].tensors();
            for (i, ((ta, tb), t0)) in wa
                .weights()
                .tensors()
                .iter()
                .zip(wb.weights().tensors())
                .zip(start)
                .enumerate()
            {
                let da: Vec<f64> = ta.iter().zip(t0).map(|(x, z)| (*x - *z) as f64).collect();
                let db: Vec<f64> = tb.iter().zip(t0).map(|(x, z)| (*x - *z) as f64).collect();
                let e = rel_l2(&db, &da);
                assert!(
                    e <= 1e-3,
                    "{name}: block {k} tensor {i}: two updates {e:.2e} off"
                );
            }
        }
    }
    // The device copies of the resumed stack hold its weights.
    let x: Vec<f32> = (0..b * l * cfg.d_model)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let y = r.forward(Tensor::new(&x, shape)).unwrap();
    let blocks: Vec<Mamba2Block> = r
        .blocks()
        .iter()
        .map(|k| Mamba2Block::with_selection(cfg.clone(), k.weights().clone(), &sel).unwrap())
        .collect();
    let want = Mamba2Stack::new(blocks)
        .unwrap()
        .forward(Tensor::new(&x, shape))
        .unwrap();
    assert!(rel_l2(&f64s(&y), &f64s(&want)) <= 1e-6);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("optimizer state: saved from the device, resumed there, and on the host path");
}

/// `Mamba2Stack::decoder` on the device (the states in device memory, the plugin's
/// one-step block form): a prompt through the reference backend's `forward_with_state`,
/// then frames through the device decoder made from its states (and through the CUDA
/// stack's `step` with host states), each output and the final states against the
/// reference's `step` from the same states; f32 at 1e-5 and
/// bf16 at 2e-2, on configurations with one and two groups, a dt limit, no conv bias,
/// N above and below 32 (the SSM step's lanes). `MAMBA_CUDA_BLOCK_STEP=0` runs the same
/// checks on the general forward at L = 1, `MAMBA_DECODE_GRAPH=0` without the decoder's
/// recorded graph, `MAMBA_BLOCK_STEP=host` the block step with its
/// projections on the host. `MAMBA_DECODE_BENCH=1` adds timings: a token through four
/// blocks by `Mamba2Stack::step` (host states) and by the decoder.
/// The decode tests' blocks: N 8 / 48 / 64, one and two groups, a dt limit, no conv bias.
fn step_cfgs() -> Vec<Mamba2Config> {
    vec![
        small_cfg(),
        Mamba2Config {
            d_model: 32,
            d_state: 48,
            headdim: 16,
            ngroups: 2,
            dt_limit: Some((0.002, 0.05)),
            conv_bias: false,
            ..Mamba2Config::default()
        },
        Mamba2Config::new(64, 64),
    ]
}

#[test]
fn stack_decoder_on_the_device_matches_the_reference() {
    if !cuda_available() {
        return;
    }
    use mamba_model::{DType, Mamba2Stack};
    let cuda = build(BackendKind::Cuda).unwrap();
    let refb = build(BackendKind::Reference).unwrap();
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let cfgs = step_cfgs();
    let (mut checks, mut graphed) = (0, 0);
    for (ci, cfg) in cfgs.iter().enumerate() {
        let ws: Vec<Mamba2Weights> = (0..3)
            .map(|k| random_weights(cfg, 71 + 10 * ci as u64 + k))
            .collect();
        let on = |sel| {
            Mamba2Stack::new(
                ws.iter()
                    .map(|w| Mamba2Block::with_selection(cfg.clone(), w.clone(), sel).unwrap())
                    .collect(),
            )
            .unwrap()
        };
        let (dev, host) = (on(&cuda), on(&refb));
        assert!(dev.on_device(DType::F32).0);
        let dm = cfg.d_model;
        for b in [1usize, 2, 3, 4, 16] {
            let mut rng = SplitMix64(81 + b as u64);
            let l = 6;
            let prompt: Vec<f32> = (0..b * l * dm).map(|_| rng.normal()).collect();
            let frames: Vec<Vec<f32>> = (0..5)
                .map(|_| (0..b * dm).map(|_| rng.normal()).collect())
                .collect();
            // f32
            let mut st = host.zero_state(b);
            host.forward_with_state(Tensor::new(&prompt, [b, l, dm]), &mut st)
                .unwrap();
            let st0 = st.clone();
            let mut dec = dev.decoder_from::<f32>(st.clone()).unwrap();
            assert!(
                dec.on_device(),
                "the decoder keeps its states on the device"
            );
            // The CUDA stack's own step (host states, each block's step on the device).
            let mut st_dev = st.clone();
            for (t, x) in frames.iter().enumerate() {
                let want = host.step(Tensor::new(x, [b, dm]), &mut st).unwrap();
                let got = dec.step(Tensor::new(x, [b, dm])).unwrap();
                let e = rel_l2(&f64s(&got), &f64s(&want));
                assert!(e <= 1e-5, "cfg {ci} b {b} f32 frame {t}: {e:.2e}");
                let got = dev.step(Tensor::new(x, [b, dm]), &mut st_dev).unwrap();
                let e = rel_l2(&f64s(&got), &f64s(&want));
                assert!(
                    e <= 1e-5,
                    "cfg {ci} b {b} f32 frame {t}, stack step: {e:.2e}"
                );
                checks += 2;
            }
            for (g, w) in st_dev.iter().zip(&st) {
                let e = rel_l2(&f64s(&g.ssm), &f64s(&w.ssm));
                assert!(e <= 1e-5, "cfg {ci} b {b} stack step ssm state {e:.2e}");
                checks += 1;
            }
            // From the second step on the device work is one recorded graph.
            // (Checked on the default forms; with the others it is reported.)
            let defaults = ["MAMBA_DECODE_GRAPH", "MAMBA_CUDA_BLOCK_STEP"]
                .iter()
                .all(|v| std::env::var(v).as_deref() != Ok("0"));
            if defaults {
                assert!(dec.uses_graph(), "cfg {ci} b {b}: a recorded graph");
            }
            graphed += dec.uses_graph() as usize;
            let got = dec.states().unwrap();
            for (k, (g, w)) in got.iter().zip(&st).enumerate() {
                let e = rel_l2(&f64s(&g.ssm), &f64s(&w.ssm));
                assert!(e <= 1e-5, "cfg {ci} b {b} block {k} ssm state {e:.2e}");
                let e = rel_l2(&f64s(&g.conv), &f64s(&w.conv));
                assert!(e <= 1e-6, "cfg {ci} b {b} block {k} conv state {e:.2e}");
                checks += 2;
            }
            // set_states: the prompt's states again, into the buffers the recorded graph
            // reads; the next frames continue from them.
            dec.set_states(&st0).unwrap();
            let mut again = st0.clone();
            for (t, x) in frames.iter().take(2).enumerate() {
                let want = host.step(Tensor::new(x, [b, dm]), &mut again).unwrap();
                let got = dec.step(Tensor::new(x, [b, dm])).unwrap();
                let e = rel_l2(&f64s(&got), &f64s(&want));
                assert!(
                    e <= 1e-5,
                    "cfg {ci} b {b} f32 after set_states, frame {t}: {e:.2e}"
                );
                checks += 1;
            }
            // prefill: the prompt through the device chain from the zero state, in the
            // decoder's buffers; then a step from the prompt's end.
            dec.reset().unwrap();
            let mut again = host.zero_state(b);
            let want = host
                .forward_with_state(Tensor::new(&prompt, [b, l, dm]), &mut again)
                .unwrap();
            let got = dec.prefill(Tensor::new(&prompt, [b, l, dm])).unwrap();
            let e = rel_l2(&f64s(&got), &f64s(&want));
            assert!(e <= 1e-5, "cfg {ci} b {b} f32 prefill: {e:.2e}");
            for (k, (g, w)) in dec.states().unwrap().iter().zip(&again).enumerate() {
                let e = rel_l2(&f64s(&g.ssm), &f64s(&w.ssm));
                assert!(
                    e <= 1e-5,
                    "cfg {ci} b {b} prefill block {k} ssm state {e:.2e}"
                );
            }
            let want = host
                .step(Tensor::new(&frames[0], [b, dm]), &mut again)
                .unwrap();
            let got = dec.step(Tensor::new(&frames[0], [b, dm])).unwrap();
            let e = rel_l2(&f64s(&got), &f64s(&want));
            assert!(e <= 1e-5, "cfg {ci} b {b} f32 step after prefill: {e:.2e}");
            checks += 3;
            // bf16 storage against the reference's bf16 steps.
            let p16: Vec<bf16> = prompt.iter().map(|&v| bf16::from_f32(v)).collect();
            let mut st = host.zero_state(b);
            host.forward_with_state(Tensor::new(&p16, [b, l, dm]), &mut st)
                .unwrap();
            let mut dec = dev.decoder_from::<bf16>(st.clone()).unwrap();
            assert!(dec.on_device());
            for (t, x) in frames.iter().enumerate() {
                let x16: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
                let want = host.step(Tensor::new(&x16, [b, dm]), &mut st).unwrap();
                let got = dec.step(Tensor::new(&x16, [b, dm])).unwrap();
                let as64 = |v: &[bf16]| v.iter().map(|x| x.to_f32() as f64).collect::<Vec<_>>();
                let e = rel_l2(&as64(&got), &as64(&want));
                assert!(e <= 2e-2, "cfg {ci} b {b} bf16 frame {t}: {e:.2e}");
                checks += 1;
            }
        }
    }
    eprintln!(
        "stack decoder: {checks} checks passed, {graphed} of 6 f32 decoders on a recorded \
         graph (MAMBA_CUDA_BLOCK_STEP={}, MAMBA_DECODE_GRAPH={})",
        std::env::var("MAMBA_CUDA_BLOCK_STEP").unwrap_or_default(),
        std::env::var("MAMBA_DECODE_GRAPH").unwrap_or_default()
    );
    if std::env::var("MAMBA_DECODE_BENCH").as_deref() != Ok("1") {
        return;
    }
    for (dm, n) in [(192usize, 64usize), (768, 128)] {
        let cfg = Mamba2Config::new(dm, n);
        let stack = Mamba2Stack::new(
            (0..4)
                .map(|k| {
                    let w = Mamba2Weights::init(&cfg, 20 + k).unwrap();
                    Mamba2Block::with_selection(cfg.clone(), w, &cuda).unwrap()
                })
                .collect(),
        )
        .unwrap();
        for b in [1usize, 16] {
            let mut rng = SplitMix64(77);
            let x: Vec<f32> = (0..b * dm).map(|_| rng.normal()).collect();
            let time = |f: &mut dyn FnMut()| {
                for _ in 0..20 {
                    f();
                }
                let mut v: Vec<f64> = (0..200)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        f();
                        t.elapsed().as_secs_f64() * 1e6
                    })
                    .collect();
                v.sort_by(|a, c| a.partial_cmp(c).unwrap());
                v[v.len() / 2]
            };
            let mut st = stack.zero_state(b);
            let step_us = time(&mut || {
                stack.step(Tensor::new(&x, [b, dm]), &mut st).unwrap();
            });
            let mut dec = stack.decoder::<f32>(b).unwrap();
            let dec_us = time(&mut || {
                dec.step(Tensor::new(&x, [b, dm])).unwrap();
            });
            let x16: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            let mut dec16 = stack.decoder::<bf16>(b).unwrap();
            let dec16_us = time(&mut || {
                dec16.step(Tensor::new(&x16, [b, dm])).unwrap();
            });
            eprintln!(
                "decode bench d_model {dm} N {n} b {b}: Mamba2Stack::step {step_us:.1} us, \
                 decoder f32 {dec_us:.1} us, bf16 {dec16_us:.1} us (median of 200 tokens, 4 blocks; \
                 graphs {} / {})",
                dec.uses_graph(),
                dec16.uses_graph()
            );
        }
    }
}

/// `CudaBackend::record`: a recorded residual add launched twice adds twice (and nothing
/// runs while recording); recording on the default stream is refused; an enqueue that
/// fails ends the recording with its error, nothing of it runs, and the stream works after.
#[test]
fn recorded_graphs_run_what_was_recorded() {
    if !cuda_available() {
        return;
    }
    use mamba_core::plugin::CudaStream;
    let cuda = mamba_core::plugin::load().unwrap();
    assert!(cuda.has_graphs());
    let stream = cuda.stream().unwrap();
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
    let xd = cuda.upload(&x, &stream).unwrap();
    let mut yd = cuda.zeros::<f32>(x.len(), &stream).unwrap();
    let graph = cuda
        .record(&stream, |s| cuda.axpy(1.0, &xd, &mut yd, s))
        .unwrap();
    assert!(
        yd.to_vec(&stream).unwrap().iter().all(|&v| v == 0.0),
        "recording ran nothing"
    );
    graph.launch(&stream).unwrap();
    graph.launch(&stream).unwrap();
    let y = yd.to_vec(&stream).unwrap();
    assert!(y.iter().zip(&x).all(|(a, b)| *a == 2.0 * b), "two launches");
    // The default stream cannot be recorded.
    let e = cuda
        .record(&CudaStream::DEFAULT, |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("default stream"), "{e}");
    // A failing enqueue: its error comes back, the recorded add never runs.
    let e = cuda
        .record(&stream, |s| {
            cuda.axpy(1.0, &xd, &mut yd, s)?;
            Err(mamba_core::Error::invalid(
                "test",
                "enqueue",
                "failed on purpose",
            ))
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("failed on purpose"), "{e}");
    let mut wrong = cuda.zeros::<f32>(3, &stream).unwrap();
    assert!(cuda
        .record(&stream, |s| cuda.axpy(1.0, &xd, &mut wrong, s))
        .is_err());
    cuda.axpy(1.0, &xd, &mut yd, &stream).unwrap();
    let y = yd.to_vec(&stream).unwrap();
    assert!(
        y.iter().zip(&x).all(|(a, b)| *a == 3.0 * b),
        "the stream after"
    );
    drop(graph);
}

/// A block forward recorded on a fresh stream (its products' plans, cuBLASLt's workspace
/// and the SSD's scratch all first needed while recording) and launched again with new
/// inputs copied into the same buffer: every launch gives what an unrecorded forward of the
/// same input gives, and the stream works unrecorded afterwards. L 333 at batch 2 takes the
/// SSD form with per-stream scratch (`ssdz`) at the default width; the row count 666 is
/// used by no other test, so the products' plans are made while recording.
#[test]
fn recorded_block_forward_replays_with_new_inputs() {
    if !cuda_available() {
        return;
    }
    use mamba_core::plugin::DeviceBuffer;
    use mamba_model::DType;
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let sel = build(BackendKind::Cuda).unwrap();
    let cfg = Mamba2Config::default();
    let blk = Mamba2Block::with_selection(cfg.clone(), random_weights(&cfg, 57), &sel).unwrap();
    let d32 = blk.device_block(DType::F32).unwrap().unwrap();
    let (b, l, dm) = (2usize, 333usize, cfg.d_model);
    let n = b * l * dm;
    let mut rng = SplitMix64(404);
    let inputs: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..n).map(|_| rng.normal()).collect())
        .collect();
    let stream = cuda.stream().unwrap();
    let mut xd: DeviceBuffer<f32> = cuda.upload(&inputs[0], &stream).unwrap();
    let mut out = cuda.zeros::<f32>(n, &stream).unwrap();
    let graph = cuda
        .record(&stream, |s| {
            d32.forward(&xd, b, l, &mut out, None, false, s)
        })
        .unwrap();
    assert!(
        out.to_vec(&stream).unwrap().iter().all(|&v| v == 0.0),
        "recording ran nothing"
    );
    // The same inputs, unrecorded, on another stream.
    let other = cuda.stream().unwrap();
    let plain = |x: &[f32]| -> Vec<f64> {
        let xd = cuda.upload(x, &other).unwrap();
        let mut o = cuda.alloc::<f32>(n).unwrap();
        d32.forward(&xd, b, l, &mut o, None, false, &other).unwrap();
        o.to_vec(&other)
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect()
    };
    let mut seen: Vec<Vec<f64>> = Vec::new();
    for (k, x) in inputs.iter().enumerate().chain([(0, &inputs[0])]) {
        xd.copy_from_host(x, &stream).unwrap();
        graph.launch(&stream).unwrap();
        let got: Vec<f64> = out
            .to_vec(&stream)
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let want = plain(x);
        let e = rel_l2(&got, &want);
        assert!(
            e <= 1e-6,
            "launch with input {k}: {e:.2e} from the unrecorded forward"
        );
        assert!(
            seen.iter().all(|s| s != &got) || k == 0,
            "input {k} gave an earlier output"
        );
        seen.push(got);
    }
    // The recording's stream, unrecorded, after the launches.
    let mut o2 = cuda.zeros::<f32>(n, &stream).unwrap();
    xd.copy_from_host(&inputs[2], &stream).unwrap();
    d32.forward(&xd, b, l, &mut o2, None, false, &stream)
        .unwrap();
    let got: Vec<f64> = o2
        .to_vec(&stream)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let e = rel_l2(&got, &plain(&inputs[2]));
    assert!(e <= 1e-6, "the stream after: {e:.2e}");
    drop(graph);
    eprintln!("recorded block forward: 5 launches, 4 inputs, the stream after: ok");
}

/// The residual form of the block forward (`CudaBlock::forward_residual`: `h += block(h)`
/// in one call, the add in out_proj's epilogue) against the plain forward and a host add,
/// at L 1 (the decode step's form) and L 5 (the general forward), f32 and bf16, with the
/// states it leaves bit for bit those of the plain forward; and the plugin's refusal of
/// unknown flags. `MAMBA_STEP_DUMP=FILE` writes every output and state bit to FILE, so two
/// runs (`MAMBA_CUDA_BLOCK_STEP_FUSED=0` and the default fused step) can be compared with
/// `cmp`: the fused and the two-launch step give the same bits.
#[test]
fn residual_forward_matches_forward_and_add() {
    if !cuda_available() {
        return;
    }
    use mamba_core::plugin::{DeviceBuffer, DeviceElement};
    use mamba_model::DType;
    let cuda = mamba_model::backend::cuda_backend().unwrap();
    let sel = build(BackendKind::Cuda).unwrap();
    let mut cfgs = step_cfgs();
    // headdim 12 (a partial block of 8 rows), N 200 (lanes past 32, shared memory past
    // 256 threads' one pass), width 2.
    cfgs.insert(
        2,
        Mamba2Config {
            d_model: 24,
            d_state: 200,
            headdim: 12,
            d_conv: 2,
            ..Mamba2Config::default()
        },
    );
    let mut dump: Vec<u8> = Vec::new();
    let mut checks = 0;
    #[allow(clippy::too_many_arguments)]
    fn one<T: DeviceElement + Element>(
        blk: &mamba_core::plugin::CudaBlock,
        cuda: &mamba_core::plugin::CudaBackend,
        b: usize,
        l: usize,
        rng: &mut SplitMix64,
        tol: f64,
        what: &str,
        dump: &mut Vec<u8>,
    ) {
        let dm = blk.config().d_model as usize;
        let stream = cuda.stream().unwrap();
        let n = b * l * dm;
        let x: Vec<T> = (0..n).map(|_| T::from_f32(rng.normal())).collect();
        let c0: Vec<f32> = (0..blk.conv_state_len(b))
            .map(|_| 0.5 * rng.normal())
            .collect();
        let s0: Vec<f32> = (0..blk.ssm_state_len(b))
            .map(|_| 0.5 * rng.normal())
            .collect();
        // The plain forward into `out`, then the add on the host in f32.
        let xd: DeviceBuffer<T> = cuda.upload(&x, &stream).unwrap();
        let mut out = cuda.alloc::<T>(n).unwrap();
        let (mut c1, mut s1) = (
            cuda.upload(&c0, &stream).unwrap(),
            cuda.upload(&s0, &stream).unwrap(),
        );
        blk.forward(&xd, b, l, &mut out, Some((&mut c1, &mut s1)), true, &stream)
            .unwrap();
        let y = out.to_vec(&stream).unwrap();
        let want: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a.to_f32() + b.to_f32()) as f64)
            .collect();
        // The residual form in place.
        let mut h: DeviceBuffer<T> = cuda.upload(&x, &stream).unwrap();
        let (mut c2, mut s2) = (
            cuda.upload(&c0, &stream).unwrap(),
            cuda.upload(&s0, &stream).unwrap(),
        );
        blk.forward_residual(&mut h, b, l, Some((&mut c2, &mut s2)), true, &stream)
            .unwrap();
        let got: Vec<f64> = h
            .to_vec(&stream)
            .unwrap()
            .iter()
            .map(|v| v.to_f32() as f64)
            .collect();
        let e = rel_l2(&got, &want);
        assert!(e <= tol, "{what}: residual form {e:.2e}");
        let (c1, s1) = (c1.to_vec(&stream).unwrap(), s1.to_vec(&stream).unwrap());
        let (c2, s2) = (c2.to_vec(&stream).unwrap(), s2.to_vec(&stream).unwrap());
        assert!(
            c1.iter().zip(&c2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: conv states differ"
        );
        assert!(
            s1.iter().zip(&s2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: ssm states differ"
        );
        // The states moved: the call did run.
        assert!(c1 != c0 && s1 != s0, "{what}: states unchanged");
        for v in y.iter().map(|v| v.to_f32()).chain(c1).chain(s1) {
            dump.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    for (ci, cfg) in cfgs.iter().enumerate() {
        let blk =
            Mamba2Block::with_selection(cfg.clone(), random_weights(cfg, 91 + ci as u64), &sel)
                .unwrap();
        for (b, l) in [(1usize, 1usize), (3, 1), (2, 5)] {
            let mut rng = SplitMix64(131 + 7 * ci as u64 + b as u64 + l as u64);
            let d32 = blk.device_block(DType::F32).unwrap().unwrap();
            assert!(d32.has_residual(), "this plugin adds in out_proj");
            let what = format!("cfg {ci} b {b} L {l}");
            one::<f32>(
                d32,
                cuda,
                b,
                l,
                &mut rng,
                1e-6,
                &format!("{what} f32"),
                &mut dump,
            );
            let d16 = blk.device_block(DType::BF16).unwrap().unwrap();
            one::<bf16>(
                d16,
                cuda,
                b,
                l,
                &mut rng,
                8e-3,
                &format!("{what} bf16"),
                &mut dump,
            );
            checks += 2;
        }
    }
    // Unknown flags are refused, not ignored.
    let blk =
        Mamba2Block::with_selection(small_cfg(), random_weights(&small_cfg(), 5), &sel).unwrap();
    let d32 = blk.device_block(DType::F32).unwrap().unwrap();
    let stream = cuda.stream().unwrap();
    let n = small_cfg().d_model;
    let x = cuda.zeros::<f32>(n, &stream).unwrap();
    let desc = mamba_core::abi::BlockForwardDesc {
        batch: 1,
        seqlen: 1,
        input: x.ptr(),
        out: x.ptr(),
        flags: 6,
        ..Default::default()
    };
    // SAFETY: `x` holds one row of d_model f32 values; no states.
    let e = unsafe { d32.forward_raw(&desc, &stream) }
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown flags"), "{e}");
    if let Ok(path) = std::env::var("MAMBA_STEP_DUMP") {
        std::fs::write(&path, &dump).unwrap();
    }
    eprintln!(
        "residual forward: {checks} cases match the forward and an add (MAMBA_CUDA_BLOCK_STEP_FUSED={})",
        std::env::var("MAMBA_CUDA_BLOCK_STEP_FUSED").unwrap_or_default()
    );
}

/// Not a check: 40 decoder steps of four blocks (d_model `MAMBA_PROFILE_DM`, default 192,
/// N 64 (128 from 768 up), batch `MAMBA_PROFILE_B`, default 1, bf16 with
/// `MAMBA_PROFILE_BF16=1`) for a profiler (`ncu --launch-skip ...`) to read one token's
/// kernels. Run with `--ignored`.
#[test]
#[ignore]
fn decode_profile() {
    if !cuda_available() {
        return;
    }
    use mamba_model::Mamba2Stack;
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (dm, b) = (env("MAMBA_PROFILE_DM", 192), env("MAMBA_PROFILE_B", 1));
    let cfg = Mamba2Config::new(dm, if dm >= 768 { 128 } else { 64 });
    let sel = build(BackendKind::Cuda).unwrap();
    let stack = Mamba2Stack::new(
        (0..4)
            .map(|k| {
                let w = Mamba2Weights::init(&cfg, 20 + k).unwrap();
                Mamba2Block::with_selection(cfg.clone(), w, &sel).unwrap()
            })
            .collect(),
    )
    .unwrap();
    let mut rng = SplitMix64(77);
    let x: Vec<f32> = (0..b * dm).map(|_| rng.normal()).collect();
    if env("MAMBA_PROFILE_BF16", 0) == 1 {
        let x: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let mut dec = stack.decoder::<bf16>(b).unwrap();
        for _ in 0..40 {
            dec.step(Tensor::new(&x, [b, dm])).unwrap();
        }
    } else {
        let mut dec = stack.decoder::<f32>(b).unwrap();
        for _ in 0..40 {
            dec.step(Tensor::new(&x, [b, dm])).unwrap();
        }
    }
}

/// The device training path (forward_train + backward) against the reference backend's
/// host backward at random block sizes under the default rules: d_model 16-320, N 16-128,
/// head sizes 16-64, groups, conv widths 2-4, norm before / after the gate, dt limits, with
/// and without the initial state and its gradient, lengths at and beside the kernels' edges
/// (the 32- / 64-step chunks, 128, 256, 640, 1024) or drawn log-uniform up to 1100, in
/// f32, bf16 and f16, the activations kept or recomputed; the reference accumulates in f64
/// (`run_case_against`). `MAMBA_GPU_SWEEP=N` cases
/// (default 6), `MAMBA_GPU_SWEEP_SEED` the draw, `MAMBA_GPU_SWEEP_SCALE=k` k times the size
/// caps. Sizes are capped so the reference stays quick.
#[test]
fn block_train_at_random_sizes() {
    if !cuda_available() {
        return;
    }
    sweep::clear_overrides();
    let quick = std::env::var_os("MAMBA_GPU_QUICK").is_some();
    let sweep::Sweep { cases, seed, scale } = sweep::settings(if quick { 2 } else { 6 });
    let mut rng = SplitMix64(seed);
    let mut pick = |n: usize| (rng.next_u64() % n as u64) as usize;
    let mut fails = Vec::new();
    let mut pass = 0;
    let mut k = 0;
    while k < cases {
        let d_model = 16 * (1 + pick(20));
        let headdim = [16usize, 32, 64][pick(3)];
        let d_inner = 2 * d_model;
        if !d_inner.is_multiple_of(headdim) {
            continue;
        }
        let heads = d_inner / headdim;
        let ngroups = if heads.is_multiple_of(2) && pick(2) == 0 {
            2
        } else {
            1
        };
        let d_state = [16usize, 32, 64, 64, 128][pick(5)];
        let batch = 1 + pick(3);
        const EDGES: [usize; 14] = [1, 2, 31, 32, 33, 63, 64, 65, 128, 129, 256, 640, 1024, 1025];
        let cap = (80_000_000 * scale / (batch * d_inner * d_state)).clamp(1, 1100 * scale.min(4));
        let l = if pick(2) == 0 {
            EDGES[pick(EDGES.len())].min(cap)
        } else {
            let u = (pick(1 << 20) as f64 + 0.5) / (1 << 20) as f64;
            ((u * (cap as f64).ln()).exp().round() as usize).clamp(1, cap)
        };
        let cfg = Mamba2Config {
            d_model,
            d_state,
            headdim,
            ngroups,
            d_conv: 2 + pick(3),
            norm_before_gate: pick(2) == 0,
            dt_limit: (pick(5) == 0).then_some((0.001, 0.5)),
            ..Mamba2Config::default()
        };
        let c = Case {
            cfg,
            batch,
            l,
            init: pick(2) == 0,
            dstate: pick(2) == 0,
        };
        let keep = pick(2) == 0;
        let s = seed * 1000 + k as u64;
        let r = match k % 3 {
            0 => run_case_against::<f32>(&c, s, 1e-4, keep, true, &[]),
            1 => run_case_against::<bf16>(&c, s, 2e-2, keep, true, &[]),
            _ => run_case_against::<f16>(&c, s, 5e-3, keep, true, &[]),
        };
        match r {
            Ok(_) => pass += 1,
            Err(e) => fails.push(format!(
                "case {k} (b{batch} L{l} {:?}, keep {keep}): {e}",
                c.cfg
            )),
        }
        k += 1;
    }
    println!(
        "block train at random sizes: {pass} passed, {} failed",
        fails.len()
    );
    assert!(pass > 0 || !fails.is_empty(), "nothing compared");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
