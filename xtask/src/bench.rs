//! `cargo xtask bench [--quick] [--backend NAME]... [--no-reference] [--dtype f32|bf16|f16] [--out DIR] [--only SUBSTR]`
//!
//! The seed's `benchmark_mamba_ssm.py`, in Rust: Mamba2Block forward at batch 2,
//! 100/400/800 frames, d_model 192, on every available backend, plus the kernels alone
//! (selective_scan, ssd, causal_conv1d at the seed's shapes), forward and
//! forward+backward where the backend has it. Warm-up, then the median of repeated
//! runs; a table of milliseconds and speed-ups over the reference; the fraction of
//! the machine's measured SGEMM rate each kernel reaches. Writes
//! `target/bench/bench.json`, `bench.md` and the chart `bench.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mamba_core::element::convert;
use mamba_core::{
    Activation, Backend, CausalConv1dArgs, DType, Element, Kernels, SelectiveScanArgs, SsdArgs,
    Tensor,
};
use mamba_model::backend::{build, select, BackendPreference};
use mamba_model::{
    BackendKind, Mamba2Block, Mamba2Config, Mamba2Stack, Mamba2Weights, Selection, SplitMix64,
    StackAdamW,
};

/// A measurement to make on one backend.
type Job = Box<dyn FnMut(&Selection) -> Result<Row, String>>;

/// One measured configuration.
#[derive(Clone, Debug)]
struct Row {
    op: &'static str,
    pass: &'static str,
    backend: BackendKind,
    dtype: DType,
    batch: usize,
    seqlen: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    runs: usize,
    flops: f64,
    exps: f64,
    /// The fewest bytes the call must move (each input read once, each output written
    /// once), for bandwidth.
    bytes: f64,
    timing: &'static str,
}

const HOST_TIMING: &str = "host clock, whole call";
const DEVICE_TIMING: &str = "CUDA events, device-resident inputs";
const HOST_SLICES_TIMING: &str = "host clock, host slices (transfers included)";

/// How a measurement by the host clock was taken on backend `kind`: through host
/// slices (transfers included) on CUDA, the whole call elsewhere.
fn host_clock_timing(kind: BackendKind) -> &'static str {
    if kind == BackendKind::Cuda {
        HOST_SLICES_TIMING
    } else {
        HOST_TIMING
    }
}

fn cuda_be() -> Result<&'static mamba_core::plugin::CudaBackend, String> {
    mamba_model::backend::cuda_backend()
}

struct Options {
    quick: bool,
    no_reference: bool,
    backends: Vec<BackendKind>,
    dtype: DType,
    out_dir: PathBuf,
    /// Only the jobs whose name contains this (`--only mamba2_block`).
    only: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        no_reference: false,
        backends: Vec::new(),
        dtype: DType::F32,
        out_dir: crate::golden::workspace_root().join("target/bench"),
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--no-reference" => o.no_reference = true,
            "--backend" => {
                let v = it.next().ok_or("--backend needs a value")?;
                match BackendPreference::parse(v).map_err(|e| e.to_string())? {
                    BackendPreference::Force(k) => o.backends.push(k),
                    BackendPreference::Auto => {}
                }
            }
            "--dtype" => {
                let v = it.next().ok_or("--dtype needs a value")?;
                o.dtype = match DType::parse(v) {
                    Some(d @ (DType::F32 | DType::BF16 | DType::F16)) => d,
                    _ => return Err(format!("--dtype {v}: expected f32, bf16 or f16")),
                };
            }
            "--out" => o.out_dir = PathBuf::from(it.next().ok_or("--out needs a value")?),
            "--only" => o.only = Some(it.next().ok_or("--only needs a value")?.clone()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(o)
}

/// Times `f`: warm-up, then runs until `max_runs` or the time budget (at least
/// `min_runs`). Returns (median, min, max, runs) in milliseconds.
fn measure(
    mut f: impl FnMut() -> Result<(), String>,
    min_runs: usize,
    max_runs: usize,
    budget: Duration,
) -> Result<(f64, f64, f64, usize), String> {
    // Warm-up: caches, thread pools, page faults of fresh buffers.
    let t0 = Instant::now();
    f()?;
    let first = t0.elapsed();
    if first < Duration::from_millis(50) {
        f()?;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < max_runs && (times.len() < min_runs || start.elapsed() < budget) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        0.5 * (times[times.len() / 2 - 1] + times[times.len() / 2])
    };
    Ok((median, times[0], *times.last().unwrap(), times.len()))
}

fn randn(rng: &mut SplitMix64, n: usize, scale: f32, shift: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * scale + shift).collect()
}

/// The seed's Mamba-1 shape: batch 2, d 384, N 64, per-step B and C, D, z, bias, softplus.
struct ScanInputs {
    b: usize,
    d: usize,
    l: usize,
    n: usize,
    u: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    bm: Vec<f32>,
    cm: Vec<f32>,
    dvec: Vec<f32>,
    z: Vec<f32>,
    bias: Vec<f32>,
    dout: Vec<f32>,
}

impl ScanInputs {
    fn new(l: usize, rng: &mut SplitMix64) -> Self {
        let (b, d, n) = (2, 384, 64);
        ScanInputs {
            b,
            d,
            l,
            n,
            u: randn(rng, b * d * l, 1.0, 0.0),
            delta: randn(rng, b * d * l, 0.5, -2.0),
            a: (0..d * n).map(|_| -(rng.next_f32() * 15.0 + 1.0)).collect(),
            bm: randn(rng, b * n * l, 1.0, 0.0),
            cm: randn(rng, b * n * l, 1.0, 0.0),
            dvec: randn(rng, d, 1.0, 0.0),
            z: randn(rng, b * d * l, 1.0, 0.0),
            bias: randn(rng, d, 0.1, 0.0),
            dout: randn(rng, b * d * l, 1.0, 0.0),
        }
    }
    fn flops(&self) -> f64 {
        6.0 * (self.b * self.d * self.l * self.n) as f64
    }
    fn exps(&self) -> f64 {
        (self.b * self.d * self.l * self.n) as f64
    }
    fn bytes(&self, dtype: DType) -> f64 {
        let io = (self.b * self.d * self.l) as f64;
        dtype.size() as f64 * (4.0 * io + 2.0 * (self.b * self.n * self.l) as f64)
            + 4.0 * (self.d * self.n + 2 * self.d + self.b * self.d * self.n) as f64
    }
}

struct SsdInputs {
    b: usize,
    l: usize,
    h: usize,
    p: usize,
    n: usize,
    x: Vec<f32>,
    dt: Vec<f32>,
    a: Vec<f32>,
    bm: Vec<f32>,
    cm: Vec<f32>,
    dvec: Vec<f32>,
    dt_bias: Vec<f32>,
    dout: Vec<f32>,
}

impl SsdInputs {
    fn new(l: usize, rng: &mut SplitMix64) -> Self {
        let (b, h, p, n) = (2, 6, 64, 64);
        SsdInputs {
            b,
            l,
            h,
            p,
            n,
            x: randn(rng, b * l * h * p, 1.0, 0.0),
            dt: randn(rng, b * l * h, 0.5, -2.0),
            a: (0..h).map(|_| -(rng.next_f32() * 15.0 + 1.0)).collect(),
            bm: randn(rng, b * l * n, 1.0, 0.0),
            cm: randn(rng, b * l * n, 1.0, 0.0),
            dvec: randn(rng, h, 1.0, 0.0),
            dt_bias: randn(rng, h, 0.1, 0.0),
            dout: randn(rng, b * l * h * p, 1.0, 0.0),
        }
    }
    fn flops(&self) -> f64 {
        5.0 * (self.b * self.l * self.h * self.p * self.n) as f64
    }
    fn exps(&self) -> f64 {
        (self.b * self.l * self.h) as f64
    }
    fn bytes(&self, dtype: DType) -> f64 {
        let io = (self.b * self.l * self.h * self.p) as f64;
        dtype.size() as f64
            * (2.0 * io + (self.b * self.l * self.h + 2 * self.b * self.l * self.n) as f64)
            + 4.0 * (self.b * self.h * self.p * self.n + 3 * self.h) as f64
    }
}

struct ConvInputs {
    b: usize,
    c: usize,
    l: usize,
    w: usize,
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    dout: Vec<f32>,
}

impl ConvInputs {
    fn new(l: usize, rng: &mut SplitMix64) -> Self {
        // The block's convolution at the seed's shape: conv_dim = 384 + 2*64 = 512.
        let (b, c, w) = (2, 512, 4);
        ConvInputs {
            b,
            c,
            l,
            w,
            x: randn(rng, b * c * l, 1.0, 0.0),
            weight: randn(rng, c * w, 0.5, 0.0),
            bias: randn(rng, c, 0.1, 0.0),
            dout: randn(rng, b * c * l, 1.0, 0.0),
        }
    }
    fn flops(&self) -> f64 {
        (2 * self.b * self.c * self.l * self.w) as f64
    }
    fn exps(&self) -> f64 {
        (self.b * self.c * self.l) as f64
    }
    fn bytes(&self, dtype: DType) -> f64 {
        dtype.size() as f64 * (2 * self.b * self.c * self.l) as f64
            + 4.0 * (self.c * (self.w + 1) + self.b * self.c * (self.w - 1)) as f64
    }
}

fn block_flops(cfg: &Mamba2Config, batch: usize, l: usize) -> (f64, f64) {
    let rows = (batch * l) as f64;
    let gemm = 2.0 * rows * (cfg.d_model * cfg.d_in_proj() + cfg.d_inner() * cfg.d_model) as f64;
    let ssd = 5.0 * rows * (cfg.d_inner() * cfg.d_state) as f64;
    let conv = 2.0 * rows * (cfg.conv_dim() * cfg.d_conv) as f64;
    let norm = 6.0 * rows * cfg.d_inner() as f64;
    (
        gemm + ssd + conv + norm,
        rows * (cfg.nheads() + cfg.conv_dim() + cfg.d_inner()) as f64,
    )
}

/// Minimum runs, maximum runs and time budget of one measurement.
#[derive(Clone, Copy)]
struct Reps(usize, usize, Duration);

type Stats = (f64, f64, f64, usize);

/// Converts the inputs to the storage type and allocates the outputs once, then times
/// the call alone.
fn scan_call<T: Element>(
    k: &(dyn Backend + 'static),
    s: &ScanInputs,
    backward: bool,
    reps: Reps,
) -> Result<Stats, String>
where
    dyn Backend: Kernels<T>,
{
    let u: Vec<T> = convert(&s.u);
    let delta: Vec<T> = convert(&s.delta);
    let bm: Vec<T> = convert(&s.bm);
    let cm: Vec<T> = convert(&s.cm);
    let z: Vec<T> = convert(&s.z);
    let args = SelectiveScanArgs::new(
        Tensor::new(&u, [s.b, s.d, s.l]),
        Tensor::new(&delta, [s.b, s.d, s.l]),
        Tensor::new(&s.a, [s.d, s.n]),
        Tensor::new(&bm, [s.b, s.n, s.l]),
        Tensor::new(&cm, [s.b, s.n, s.l]),
    )
    .with_d(Tensor::new(&s.dvec, [s.d]))
    .with_z(Tensor::new(&z, [s.b, s.d, s.l]))
    .with_delta_bias(Tensor::new(&s.bias, [s.d]))
    .with_delta_softplus(true);
    let mut out = vec![T::default(); s.b * s.d * s.l];
    let mut last = vec![0.0f32; s.b * s.d * s.n];
    let dout: Vec<T> = convert(&s.dout);
    measure(
        || {
            <dyn Backend as Kernels<T>>::selective_scan(k, &args, &mut out, Some(&mut last))
                .map_err(|e| e.to_string())?;
            if backward {
                <dyn Backend as Kernels<T>>::selective_scan_backward(k, &args, &dout, None)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        reps.0,
        reps.1,
        reps.2,
    )
}

fn ssd_call<T: Element>(
    k: &(dyn Backend + 'static),
    s: &SsdInputs,
    backward: bool,
    reps: Reps,
) -> Result<Stats, String>
where
    dyn Backend: Kernels<T>,
{
    let (x, dt, bm, cm): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) = (
        convert(&s.x),
        convert(&s.dt),
        convert(&s.bm),
        convert(&s.cm),
    );
    let args = SsdArgs::new(
        Tensor::new(&x, [s.b, s.l, s.h, s.p]),
        Tensor::new(&dt, [s.b, s.l, s.h]),
        Tensor::new(&s.a, [s.h]),
        Tensor::new(&bm, [s.b, s.l, 1, s.n]),
        Tensor::new(&cm, [s.b, s.l, 1, s.n]),
    )
    .with_d(Tensor::new(&s.dvec, [s.h]))
    .with_dt_bias(Tensor::new(&s.dt_bias, [s.h]))
    .with_dt_softplus(true);
    let mut out = vec![T::default(); x.len()];
    let mut fin = vec![0.0f32; s.b * s.h * s.p * s.n];
    let dout: Vec<T> = convert(&s.dout);
    measure(
        || {
            <dyn Backend as Kernels<T>>::ssd(k, &args, &mut out, Some(&mut fin))
                .map_err(|e| e.to_string())?;
            if backward {
                <dyn Backend as Kernels<T>>::ssd_backward(k, &args, &dout, None)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        reps.0,
        reps.1,
        reps.2,
    )
}

fn conv_call<T: Element>(
    k: &(dyn Backend + 'static),
    s: &ConvInputs,
    backward: bool,
    reps: Reps,
) -> Result<Stats, String>
where
    dyn Backend: Kernels<T>,
{
    let x: Vec<T> = convert(&s.x);
    let args = CausalConv1dArgs::new(
        Tensor::new(&x, [s.b, s.c, s.l]),
        Tensor::new(&s.weight, [s.c, s.w]),
    )
    .with_bias(Tensor::new(&s.bias, [s.c]))
    .with_activation(Activation::Silu);
    let mut out = vec![T::default(); x.len()];
    let mut fin = vec![0.0f32; s.b * s.c * (s.w - 1)];
    let dout: Vec<T> = convert(&s.dout);
    measure(
        || {
            <dyn Backend as Kernels<T>>::causal_conv1d(k, &args, &mut out, Some(&mut fin))
                .map_err(|e| e.to_string())?;
            if backward {
                <dyn Backend as Kernels<T>>::causal_conv1d_backward(k, &args, &dout, None)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        reps.0,
        reps.1,
        reps.2,
    )
}

fn dispatch<R>(
    dtype: DType,
    f32f: impl FnOnce() -> R,
    f16f: impl FnOnce() -> R,
    bf16f: impl FnOnce() -> R,
) -> R {
    match dtype {
        DType::F16 => f16f(),
        DType::BF16 => bf16f(),
        _ => f32f(),
    }
}

/// The machine's practical FLOP rate: f32 SGEMM (the projections' `gemm`, all threads) at 768^3,
/// fastest of repeated runs.
fn sgemm_peak_gflops() -> f64 {
    let n = 768;
    let mut rng = SplitMix64(1);
    let a = randn(&mut rng, n * n, 1.0, 0.0);
    let b = randn(&mut rng, n * n, 1.0, 0.0);
    let mut c = vec![0.0f32; n * n];
    // The fastest run: the rate the machine reaches when nothing else competes.
    let (_, fastest, _, _) = measure(
        || {
            mamba_model::linear::linear(
                mamba_model::linear::GemmImpl::Blocked,
                &a,
                n,
                n,
                &b,
                n,
                None,
                &mut c,
            );
            Ok(())
        },
        5,
        20,
        Duration::from_secs(2),
    )
    .expect("sgemm cannot fail");
    2.0 * (n * n * n) as f64 / (fastest * 1e-3) / 1e9
}

/// Times the block on host slices: forward, or forward + backward (with the tape).
fn block_host<T: Element>(
    blk: &Mamba2Block,
    input: &[f32],
    l: usize,
    backward: bool,
    reps: Reps,
) -> Result<Stats, String>
where
    dyn Backend: Kernels<T>,
{
    let dm = blk.config().d_model;
    let x: Vec<T> = convert(input);
    let dout: Vec<T> = convert(&vec![1e-2f32; input.len()]);
    measure(
        || {
            let x = Tensor::new(&x, [2, l, dm]);
            if backward {
                let tape = blk.forward_train(x, None).map_err(|e| e.to_string())?;
                blk.backward(&tape, &dout, None)
                    .map_err(|e| e.to_string())?;
            } else {
                blk.forward(x).map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        reps.0,
        reps.1,
        reps.2,
    )
}

/// The measurement of the seed's block at one length on any backend. On CUDA both
/// passes run on device buffers, timed with CUDA events (the forward+backward: the
/// block's saving forward, then its device-resident backward from the kept activations,
/// or with `MAMBA_BLOCK_TRAIN=recompute` the plain forward and a backward that
/// recomputes them); a block the
/// device training path does not take (projection biases, D per channel) or
/// `MAMBA_BLOCK_TRAIN=host` times the host-slice path by the host clock.
fn block_job(
    cfg: &Mamba2Config,
    weights: &Mamba2Weights,
    input: Vec<f32>,
    l: usize,
    backward: bool,
    dtype: DType,
    quick: bool,
    budget: Duration,
) -> (String, Job) {
    let pass = if backward {
        "forward+backward"
    } else {
        "forward"
    };
    let (cfg, weights) = (cfg.clone(), weights.clone());
    let name = format!("mamba2_block {pass} L={l}");
    let job = move |sel: &Selection| {
        let blk = Mamba2Block::with_selection(cfg.clone(), weights.clone(), sel)
            .map_err(|e| e.to_string())?;
        let (min_runs, max_runs) = reps(sel.kind, quick);
        let r = Reps(min_runs, max_runs, budget);
        let ((median_ms, min_ms, max_ms, runs), timing) =
            if sel.kind == BackendKind::Cuda && !backward {
                (
                    device::block(cuda_be()?, &blk, &input, 2, l, dtype)?,
                    DEVICE_TIMING,
                )
            } else if sel.kind == BackendKind::Cuda && blk.device_training() {
                (
                    device::block_train(cuda_be()?, &blk, &input, 2, l, dtype)?,
                    DEVICE_TIMING,
                )
            } else {
                let host = dispatch(
                    dtype,
                    || block_host::<f32>(&blk, &input, l, backward, r),
                    || block_host::<mamba_core::f16>(&blk, &input, l, backward, r),
                    || block_host::<mamba_core::bf16>(&blk, &input, l, backward, r),
                )?;
                (host, host_clock_timing(sel.kind))
            };
        let (flops, exps) = block_flops(&cfg, 2, l);
        let mult = if backward { 3.0 } else { 1.0 };
        let bytes = dtype.size() as f64 * (2 * 2 * l * cfg.d_model) as f64
            + 4.0 * ((cfg.d_in_proj() + cfg.d_model) * cfg.d_inner()) as f64;
        Ok(Row {
            op: "mamba2_block",
            pass,
            backend: sel.kind,
            dtype,
            batch: 2,
            seqlen: l,
            median_ms,
            min_ms,
            max_ms,
            runs,
            flops: mult * flops,
            exps: mult * exps,
            bytes: mult * bytes,
            timing,
        })
    };
    (name, Box::new(job))
}

/// A training step of a residual stack of four of the seed's blocks on any backend, by
/// the host clock: `Mamba2Stack::forward_train`, then `backward_update` (the backward and
/// an AdamW step of every block). On CUDA the residual stream, the activations, the
/// gradients, the moments and the update stay on the device (one upload and one download
/// of the stream per pass, the updated weights brought back); elsewhere the update runs
/// on the host.
fn stack_job(
    cfg: &Mamba2Config,
    weights: &[Mamba2Weights],
    input: Vec<f32>,
    l: usize,
    dtype: DType,
    quick: bool,
    budget: Duration,
) -> (String, Job) {
    const PASS: &str = "train step (4 blocks, AdamW)";
    let (cfg, weights) = (cfg.clone(), weights.to_vec());
    let name = format!("mamba2_stack4 {PASS} L={l}");
    let job = move |sel: &Selection| {
        let blocks = weights
            .iter()
            .map(|w| Mamba2Block::with_selection(cfg.clone(), w.clone(), sel))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut stack = Mamba2Stack::new(blocks).map_err(|e| e.to_string())?;
        let (min_runs, max_runs) = reps(sel.kind, quick);
        let r = Reps(min_runs, max_runs, budget);
        let (median_ms, min_ms, max_ms, runs) = match dtype {
            DType::F16 => stack_step::<mamba_core::f16>(&mut stack, &input, l, r),
            DType::BF16 => stack_step::<mamba_core::bf16>(&mut stack, &input, l, r),
            _ => stack_step::<f32>(&mut stack, &input, l, r),
        }?;
        let (flops, exps) = block_flops(&cfg, 2, l);
        let n = weights.len() as f64;
        let bytes = dtype.size() as f64 * (2 * 2 * l * cfg.d_model) as f64
            + 4.0 * ((cfg.d_in_proj() + cfg.d_model) * cfg.d_inner()) as f64;
        Ok(Row {
            op: "mamba2_stack4",
            pass: PASS,
            backend: sel.kind,
            dtype,
            batch: 2,
            seqlen: l,
            median_ms,
            min_ms,
            max_ms,
            runs,
            flops: 3.0 * n * flops,
            exps: 3.0 * n * exps,
            bytes: 3.0 * n * bytes,
            timing: host_clock_timing(sel.kind),
        })
    };
    (name, Box::new(job))
}

/// Decoding: one token through a residual stack of four blocks (`Mamba2Stack::step`, the
/// states updated in place), by the host clock, for `batch` sequences at once. `wide`
/// takes the width of a language model (d_model 768, N 128, 24 heads of 64: the
/// mamba2-130m layer) instead of the seed's block.
fn decode_job(
    wide: bool,
    batch: usize,
    dtype: DType,
    quick: bool,
    budget: Duration,
) -> (String, Job) {
    let (pass, cfg) = if wide {
        (
            "decode step (4 blocks, d_model 768)",
            Mamba2Config::new(768, 128),
        )
    } else {
        (
            "decode step (4 blocks, d_model 192)",
            Mamba2Config::default(),
        )
    };
    let name = format!("mamba2_stack4 {pass} b={batch}");
    let job = move |sel: &Selection| {
        let blocks = (0..4u64)
            .map(|k| {
                let w = Mamba2Weights::init(&cfg, 20 + k).map_err(|e| e.to_string())?;
                Mamba2Block::with_selection(cfg.clone(), w, sel).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stack = Mamba2Stack::new(blocks).map_err(|e| e.to_string())?;
        let (min_runs, max_runs) = reps(sel.kind, quick);
        let r = Reps(
            min_runs,
            max_runs.max(if quick { 100 } else { 1000 }),
            budget,
        );
        let mut rng = SplitMix64(77);
        let x = randn(&mut rng, batch * cfg.d_model, 1.0, 0.0);
        let (median_ms, min_ms, max_ms, runs) = match dtype {
            DType::F16 => decode_steps::<mamba_core::f16>(&stack, &x, batch, r),
            DType::BF16 => decode_steps::<mamba_core::bf16>(&stack, &x, batch, r),
            _ => decode_steps::<f32>(&stack, &x, batch, r),
        }?;
        let (flops, exps) = block_flops(&cfg, batch, 1);
        // Every weight read once, the state read and written.
        let weights = 4.0 * ((cfg.d_in_proj() + cfg.d_model) * cfg.d_inner()) as f64;
        let state =
            8.0 * (batch * (cfg.d_inner() * cfg.d_state + cfg.conv_dim() * cfg.d_conv)) as f64;
        Ok(Row {
            op: "mamba2_stack4",
            pass,
            backend: sel.kind,
            dtype,
            batch,
            seqlen: 1,
            median_ms,
            min_ms,
            max_ms,
            runs,
            flops: 4.0 * flops,
            exps: 4.0 * exps,
            bytes: 4.0 * (weights + state),
            timing: host_clock_timing(sel.kind),
        })
    };
    (name, Box::new(job))
}

/// Times one token at a time from the same states, which go on evolving (a stable
/// block's state stays bounded).
fn decode_steps<T: Element + mamba_core::plugin::DeviceElement>(
    stack: &Mamba2Stack,
    input: &[f32],
    batch: usize,
    reps: Reps,
) -> Result<Stats, String>
where
    dyn Backend: Kernels<T>,
{
    let x: Vec<T> = convert(input);
    // The decoder keeps the states where the stack runs (device memory on CUDA).
    let mut dec = stack.decoder::<T>(batch).map_err(|e| e.to_string())?;
    measure(
        || {
            dec.step(Tensor::new(&x, [batch, stack.d_model()]))
                .map_err(|e| e.to_string())?;
            Ok(())
        },
        reps.0,
        reps.1,
        reps.2,
    )
}

fn stack_step<T: Element + mamba_core::plugin::DeviceElement>(
    stack: &mut Mamba2Stack,
    input: &[f32],
    l: usize,
    reps: Reps,
) -> Result<Stats, String>
where
    dyn Backend: Kernels<T>,
{
    let dm = stack.d_model();
    let x: Vec<T> = convert(input);
    let dout: Vec<T> = convert(&vec![1e-2f32; input.len()]);
    // Tiny steps: the weights stay where they started.
    let mut opt = StackAdamW::new(1e-7);
    measure(
        || {
            let tape = stack
                .forward_train(Tensor::new(&x, [2, l, dm]))
                .map_err(|e| e.to_string())?;
            stack
                .backward_update(&tape, &dout, &mut opt)
                .map_err(|e| e.to_string())?;
            Ok(())
        },
        reps.0,
        reps.1,
        reps.2,
    )
}

/// One kernel's inputs at one shape: what the bench needs to time it anywhere.
trait KernelCase: 'static {
    /// The op's name in the results.
    const OP: &'static str;
    fn batch(&self) -> usize;
    fn seqlen(&self) -> usize;
    fn flops(&self) -> f64;
    fn exps(&self) -> f64;
    fn bytes(&self, dtype: DType) -> f64;
    /// Timed through the `Kernels` trait on host slices (CPU backends).
    fn host(
        &self,
        k: &(dyn Backend + 'static),
        dtype: DType,
        backward: bool,
        reps: Reps,
    ) -> Result<Stats, String>;
    /// Timed on device-resident inputs with CUDA events.
    fn device(
        &self,
        be: &mamba_core::plugin::CudaBackend,
        dtype: DType,
        backward: bool,
    ) -> Result<Stats, String>;
}

macro_rules! kernel_case {
    ($ty:ty, $op:literal, $call:ident, $dev:path) => {
        impl KernelCase for $ty {
            const OP: &'static str = $op;
            fn batch(&self) -> usize {
                self.b
            }
            fn seqlen(&self) -> usize {
                self.l
            }
            fn flops(&self) -> f64 {
                <$ty>::flops(self)
            }
            fn exps(&self) -> f64 {
                <$ty>::exps(self)
            }
            fn bytes(&self, dtype: DType) -> f64 {
                <$ty>::bytes(self, dtype)
            }
            fn host(
                &self,
                k: &(dyn Backend + 'static),
                dtype: DType,
                backward: bool,
                reps: Reps,
            ) -> Result<Stats, String> {
                dispatch(
                    dtype,
                    || $call::<f32>(k, self, backward, reps),
                    || $call::<mamba_core::f16>(k, self, backward, reps),
                    || $call::<mamba_core::bf16>(k, self, backward, reps),
                )
            }
            fn device(
                &self,
                be: &mamba_core::plugin::CudaBackend,
                dtype: DType,
                backward: bool,
            ) -> Result<Stats, String> {
                $dev(be, backward, self, dtype)
            }
        }
    };
}

kernel_case!(ScanInputs, "selective_scan", scan_call, device::scan);
kernel_case!(SsdInputs, "ssd", ssd_call, device::ssd);
kernel_case!(ConvInputs, "causal_conv1d", conv_call, device::conv);

/// The measurement of one kernel case, forward or forward+backward, on any backend.
/// `make` builds the inputs at length `l` when the job first runs, so that rows left
/// out by `--only` cost nothing (a full run's inputs take seconds to draw).
fn kernel_job<C: KernelCase>(
    make: impl FnOnce() -> C + 'static,
    l: usize,
    backward: bool,
    dtype: DType,
    quick: bool,
    budget: Duration,
) -> (String, Job) {
    let pass = if backward {
        "forward+backward"
    } else {
        "forward"
    };
    // A backward pass costs about twice the forward's arithmetic and traffic.
    let mult = if backward { 3.0 } else { 1.0 };
    let name = format!("{} {pass} L={l}", C::OP);
    let (mut make, mut case) = (Some(make), None);
    let job = move |sel: &Selection| {
        let s: &C = case.get_or_insert_with(|| (make.take().expect("built once"))());
        let (min_runs, max_runs) = reps(sel.kind, quick);
        let ((median_ms, min_ms, max_ms, runs), timing) = match sel.kind {
            BackendKind::Cuda => (s.device(cuda_be()?, dtype, backward)?, DEVICE_TIMING),
            _ => (
                s.host(
                    &*sel.backend,
                    dtype,
                    backward,
                    Reps(min_runs, max_runs, budget),
                )?,
                HOST_TIMING,
            ),
        };
        Ok(Row {
            op: C::OP,
            pass,
            backend: sel.kind,
            dtype,
            batch: s.batch(),
            seqlen: s.seqlen(),
            median_ms,
            min_ms,
            max_ms,
            runs,
            flops: mult * s.flops(),
            exps: mult * s.exps(),
            bytes: mult * s.bytes(dtype),
            timing,
        })
    };
    (name, Box::new(job))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let kinds: Vec<BackendKind> = if opts.backends.is_empty() {
        vec![
            BackendKind::Reference,
            BackendKind::CpuSimd,
            BackendKind::Cuda,
        ]
    } else {
        let mut v = opts.backends.clone();
        if !v.contains(&BackendKind::Reference) && !opts.no_reference {
            // Speed-ups are over the reference; it is always measured.
            v.insert(0, BackendKind::Reference);
        }
        v
    };
    let auto = select(BackendPreference::Auto).map_err(|e| e.to_string())?;
    eprintln!("{}", auto.report);
    let mut sels: Vec<Selection> = Vec::new();
    for k in kinds {
        match build(k) {
            Ok(s) => sels.push(s),
            Err(e) => eprintln!("bench: skipping {k}: {e}"),
        }
    }
    eprintln!(
        "bench: measuring the machine's SGEMM rate (the peak the kernels are compared with) ..."
    );
    let peak = sgemm_peak_gflops();
    eprintln!(
        "bench: sgemm {peak:.1} GFLOP/s on {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let (kernel_lens, block_lens): (Vec<usize>, Vec<usize>) = if opts.quick {
        (vec![100, 400], vec![100, 400])
    } else {
        (vec![100, 400, 800, 4096], vec![100, 400, 800])
    };
    let budget = if opts.quick {
        Duration::from_millis(400)
    } else {
        Duration::from_millis(1500)
    };
    let mut rng = SplitMix64(2024);
    let mut rows: Vec<Row> = Vec::new();
    let mut plan: Vec<(String, Job)> = Vec::new();
    let dtype = opts.dtype;

    // The block first: it is the seed's table.
    let cfg = Mamba2Config::default();
    let weights = Mamba2Weights::init(&cfg, 0).map_err(|e| e.to_string())?;
    for backward in [false, true] {
        for &l in &block_lens {
            let input = randn(&mut rng, 2 * l * cfg.d_model, 1.0, 0.0);
            plan.push(block_job(
                &cfg, &weights, input, l, backward, dtype, opts.quick, budget,
            ));
        }
    }
    let stack_weights = (0..4u64)
        .map(|k| Mamba2Weights::init(&cfg, 10 + k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for &l in &block_lens {
        let input = randn(&mut rng, 2 * l * cfg.d_model, 1.0, 0.0);
        plan.push(stack_job(
            &cfg,
            &stack_weights,
            input,
            l,
            dtype,
            opts.quick,
            budget,
        ));
    }
    for wide in [false, true] {
        for batch in [1, 16] {
            plan.push(decode_job(wide, batch, dtype, opts.quick, budget));
        }
    }
    // Each kernel row draws its inputs from a generator of its own (op, length and
    // pass), when it first runs.
    for &l in &kernel_lens {
        for backward in [false, true] {
            let seed =
                |op: u64| SplitMix64(2024 + (op << 40) + ((l as u64) << 1) + backward as u64);
            let mut rng = seed(1);
            plan.push(kernel_job(
                move || ScanInputs::new(l, &mut rng),
                l,
                backward,
                dtype,
                opts.quick,
                budget,
            ));
            let mut rng = seed(2);
            plan.push(kernel_job(
                move || SsdInputs::new(l, &mut rng),
                l,
                backward,
                dtype,
                opts.quick,
                budget,
            ));
            let mut rng = seed(3);
            plan.push(kernel_job(
                move || ConvInputs::new(l, &mut rng),
                l,
                backward,
                dtype,
                opts.quick,
                budget,
            ));
        }
    }

    if let Some(only) = &opts.only {
        plan.retain(|(name, _)| name.contains(only.as_str()));
        if plan.is_empty() {
            return Err(format!(
                "--only {only:?} names no measurement; they are named like \"mamba2_block forward L=400\", \"ssd forward+backward L=800\", \"mamba2_stack4 decode\""
            ));
        }
    }
    let total = plan.len() * sels.len();
    let mut done = 0;
    let started = Instant::now();
    for (name, job) in plan.iter_mut() {
        for sel in &sels {
            done += 1;
            eprint!("[{done:>3}/{total}] {name:<40} {:<10} ", sel.kind.name());
            match job(sel) {
                Ok(row) => {
                    eprintln!(
                        "{:>10.3} ms  ({} runs, {:.0} s elapsed)",
                        row.median_ms,
                        row.runs,
                        started.elapsed().as_secs_f64()
                    );
                    rows.push(row);
                }
                Err(e) => eprintln!("n/a: {e}"),
            }
        }
    }

    if rows.is_empty() {
        return Err("no measurement succeeded (see the messages above)".into());
    }
    let copy = match sels.iter().find(|s| s.kind == BackendKind::Cuda) {
        Some(_) => {
            let c = device::copy_rate(cuda_be()?)?;
            eprintln!("bench: device-to-device copy {c:.0} GB/s (read + write)");
            Some(c)
        }
        None => None,
    };
    let mut md = table(&rows, peak);
    if let Some(c) = copy {
        md.push_str(&cuda_table(&rows, c));
    }
    println!("{md}");
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    write_json(
        &opts.out_dir.join("bench.json"),
        &rows,
        peak,
        copy,
        &auto.report,
    )?;
    std::fs::write(
        opts.out_dir.join("bench.md"),
        format!("# cargo xtask bench\n\n{}\n\n{md}\n", auto.report),
    )
    .map_err(|e| e.to_string())?;
    chart(&opts.out_dir.join("bench.svg"), &rows)?;
    eprintln!(
        "bench: wrote {}/bench.json, bench.md, bench.svg",
        opts.out_dir.display()
    );
    Ok(())
}

/// Minimum and maximum timed runs per backend: the reference is slow, so fewer.
fn reps(kind: BackendKind, quick: bool) -> (usize, usize) {
    match (kind, quick) {
        (BackendKind::Reference, true) => (1, 3),
        (BackendKind::Reference, false) => (3, 7),
        (_, true) => (5, 30),
        (_, false) => (9, 200),
    }
}

type Key = (&'static str, &'static str, usize, usize);

fn table(rows: &[Row], peak: f64) -> String {
    let mut by: BTreeMap<Key, BTreeMap<&'static str, &Row>> = BTreeMap::new();
    let order = |op: &str| match op {
        "mamba2_block" => 0,
        "mamba2_stack4" => 0,
        "selective_scan" => 1,
        "ssd" => 2,
        _ => 3,
    };
    let _ = order;
    for r in rows {
        by.entry((r.op, r.pass, r.batch, r.seqlen))
            .or_default()
            .insert(r.backend.name(), r);
    }
    let backends = ["reference", "cpu-simd", "cuda"];
    let present: Vec<&str> = backends
        .iter()
        .copied()
        .filter(|b| rows.iter().any(|r| r.backend.name() == *b))
        .collect();
    let mut s = String::new();
    let dtype = rows.first().map_or("f32", |r| r.dtype.name());
    let _ = writeln!(s, "Median milliseconds per call ({dtype}); speed-up over the reference; the fastest CPU backend's GFLOP/s and share of the machine's SGEMM rate ({peak:.1} GFLOP/s).\n");
    let _ = write!(s, "| op | pass | batch | L |");
    for b in &present {
        let _ = write!(s, " {b} ms |");
    }
    for b in present.iter().filter(|b| **b != "reference") {
        let _ = write!(s, " {b} × |");
    }
    let _ = writeln!(s, " best GFLOP/s | % of peak |");
    let _ = write!(s, "|---|---|---|---|");
    for _ in 0..(present.len() * 2).saturating_sub(1) {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s, "---|---|");
    let mut keys: Vec<&Key> = by.keys().collect();
    keys.sort_by_key(|k| (order(k.0), k.1, k.3));
    for key in keys {
        let m = &by[key];
        let _ = write!(s, "| {} | {} | {} | {} |", key.0, key.1, key.2, key.3);
        for b in &present {
            match m.get(b) {
                Some(r) => {
                    let _ = write!(s, " {:.3} |", r.median_ms);
                }
                None => {
                    let _ = write!(s, " n/a |");
                }
            }
        }
        let reference = m.get("reference").map(|r| r.median_ms);
        for b in present.iter().filter(|b| **b != "reference") {
            match (reference, m.get(b)) {
                (Some(r0), Some(r)) => {
                    let _ = write!(s, " {:.1}× |", r0 / r.median_ms);
                }
                _ => {
                    let _ = write!(s, " n/a |");
                }
            }
        }
        // The share of the CPU's SGEMM rate means something for the CPU backends only;
        // CUDA rows get their bandwidth table below.
        let Some(best) = m
            .values()
            .filter(|r| r.backend != BackendKind::Cuda)
            .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
        else {
            let _ = writeln!(s, " n/a | n/a |");
            continue;
        };
        let gf = best.flops / (best.median_ms * 1e-3) / 1e9;
        let _ = writeln!(
            s,
            " {gf:.1} ({}) | {:.1}% |",
            best.backend.name(),
            100.0 * gf / peak
        );
    }
    s
}

/// mamba-ssm on the same H200 and the targets, in microseconds per call, at
/// the seed's shapes in f32: (op, pass, L) -> (mamba-ssm, target).
fn cuda_reference(op: &str, pass: &str, l: usize) -> (Option<f64>, Option<f64>) {
    match (op, pass, l) {
        ("selective_scan", "forward", 100) => (Some(59.0), None),
        ("selective_scan", "forward", 400) => (Some(81.0), Some(25.0)),
        ("selective_scan", "forward", 800) => (Some(101.0), Some(25.0)),
        ("selective_scan", "forward+backward", 100) => (Some(440.0), Some(440.0 / 3.0)),
        ("selective_scan", "forward+backward", 400) => (Some(450.0), Some(150.0)),
        ("selective_scan", "forward+backward", 800) => (Some(550.0), Some(550.0 / 3.0)),
        ("ssd", "forward", 400) | ("ssd", "forward", 800) => (Some(430.0), Some(25.0)),
        ("ssd", "forward+backward", _) => (Some(3600.0), Some(1200.0)),
        ("mamba2_block", "forward", 400) => (None, Some(100.0)),
        _ => (None, None),
    }
}

fn cuda_table(rows: &[Row], copy: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nCUDA rows: achieved bandwidth (fewest bytes the call must move over its median time) against the measured device copy rate ({copy:.0} GB/s); mamba-ssm on the same H200 and the targets where the issue gives them (f32, seed shapes).\n"
    );
    let _ = writeln!(s, "| op | pass | dtype | batch | L | median µs | GB/s | % of copy | mamba-ssm µs | target µs | timing |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| r.backend == BackendKind::Cuda) {
        let us = r.median_ms * 1e3;
        let gbs = r.bytes / (r.median_ms * 1e-3) / 1e9;
        let (m, t) = cuda_reference(r.op, r.pass, r.seqlen);
        let f = |v: Option<f64>| v.map_or("".to_string(), |v| format!("{v:.0}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {us:.1} | {gbs:.0} | {:.1}% | {} | {} | {} |",
            r.op,
            r.pass,
            r.dtype.name(),
            r.batch,
            r.seqlen,
            100.0 * gbs / copy,
            f(m),
            f(t),
            r.timing
        );
    }
    s
}

fn write_json(
    path: &Path,
    rows: &[Row],
    peak: f64,
    copy: Option<f64>,
    report: &str,
) -> Result<(), String> {
    let reference: BTreeMap<Key, f64> = rows
        .iter()
        .filter(|r| r.backend == BackendKind::Reference)
        .map(|r| ((r.op, r.pass, r.batch, r.seqlen), r.median_ms))
        .collect();
    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let gflops = r.flops / (r.median_ms * 1e-3) / 1e9;
            serde_json::json!({
                "op": r.op,
                "backend": r.backend.name(),
                "dtype": r.dtype.name(),
                "batch": r.batch,
                "seqlen": r.seqlen,
                "pass": r.pass,
                "median_ms": r.median_ms,
                "min_ms": r.min_ms,
                "max_ms": r.max_ms,
                "runs": r.runs,
                "flops": r.flops,
                "exps": r.exps,
                "gflop_per_s": gflops,
                "gexp_per_s": r.exps / (r.median_ms * 1e-3) / 1e9,
                "fraction_of_sgemm_peak": gflops / peak,
                "min_bytes": r.bytes,
                "gbytes_per_s": r.bytes / (r.median_ms * 1e-3) / 1e9,
                "fraction_of_copy_rate": copy.filter(|_| r.backend == BackendKind::Cuda)
                    .map(|c| r.bytes / (r.median_ms * 1e-3) / 1e9 / c),
                "speedup_vs_reference": reference.get(&(r.op, r.pass, r.batch, r.seqlen)).map(|r0| r0 / r.median_ms),
                "timing": r.timing,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "report": report,
        "machine": {
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "sgemm_gflop_per_s": peak,
            "cuda_copy_gb_per_s": copy,
        },
        "results": results,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn chart(path: &Path, rows: &[Row]) -> Result<(), String> {
    use plotters::prelude::*;
    let ops = ["mamba2_block", "selective_scan", "ssd", "causal_conv1d"];
    let root = SVGBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 2));
    let color = |b: BackendKind| match b {
        BackendKind::Reference => RGBColor(120, 120, 120),
        BackendKind::CpuSimd => RGBColor(31, 119, 180),
        BackendKind::Cuda => RGBColor(44, 160, 44),
    };
    for (panel, op) in panels.iter().zip(ops) {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.op == op).collect();
        if mine.is_empty() {
            continue;
        }
        let (lmin, lmax) = mine.iter().fold((f64::MAX, 0.0f64), |(a, b), r| {
            (a.min(r.seqlen as f64), b.max(r.seqlen as f64))
        });
        let (tmin, tmax) = mine.iter().fold((f64::MAX, 0.0f64), |(a, b), r| {
            (a.min(r.median_ms), b.max(r.median_ms))
        });
        let mut ch = ChartBuilder::on(panel)
            .caption(
                format!("{op} (batch 2, {})", mine[0].dtype.name()),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (lmin * 0.8..lmax * 1.25).log_scale(),
                (tmin * 0.5..tmax * 2.0).log_scale(),
            )
            .map_err(|e| e.to_string())?;
        ch.configure_mesh()
            .x_desc("sequence length L")
            .y_desc("median ms per call")
            .draw()
            .map_err(|e| e.to_string())?;
        for kind in [
            BackendKind::Reference,
            BackendKind::CpuSimd,
            BackendKind::Cuda,
        ] {
            for pass in ["forward", "forward+backward"] {
                let mut pts: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|r| r.backend == kind && r.pass == pass)
                    .map(|r| (r.seqlen as f64, r.median_ms))
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let c = color(kind);
                let style = if pass == "forward" {
                    c.stroke_width(2)
                } else {
                    c.mix(0.5).stroke_width(2)
                };
                ch.draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(|e| e.to_string())?
                    .label(format!("{} {pass}", kind.name()))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                ch.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        ch.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// CUDA timings as a user calls the kernels on the GPU: inputs already on the device,
/// outputs preallocated there, CUDA events around each call, no graph capture.
mod device {
    use mamba_core::abi::{
        self, Conv1dBwdDesc, Conv1dDesc, SelectiveScanBwdDesc, SelectiveScanDesc, SsdBwdDesc,
        SsdDesc, TensorDesc,
    };
    use mamba_core::plugin::{
        median, CudaBackend, CudaStream, DeviceBackward, DeviceBuffer, DeviceElement,
    };
    use mamba_core::{bf16, f16, DType, Element};
    use mamba_model::{Mamba2Block, Tensor};

    use super::{ConvInputs, ScanInputs, SsdInputs, Stats};

    /// Warm-up calls and timed calls.
    const WARMUP: usize = 20;
    const ITERS: usize = 200;

    fn err(e: mamba_core::Error) -> String {
        e.to_string()
    }

    fn up<T: DeviceElement + Element>(
        be: &CudaBackend,
        s: &CudaStream,
        v: &[f32],
    ) -> Result<DeviceBuffer<T>, String> {
        let c: Vec<T> = v.iter().map(|&x| T::from_f32(x)).collect();
        be.upload(&c, s).map_err(err)
    }

    fn stats(t: Vec<f64>) -> Stats {
        let min = t.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = t.iter().cloned().fold(0.0, f64::max);
        (median(&t) / 1e3, min / 1e3, max / 1e3, t.len())
    }

    /// The device's copy rate (GB/s, bytes read plus written) from a 1 GiB copy.
    pub fn copy_rate(be: &CudaBackend) -> Result<f64, String> {
        let s = be.stream().map_err(err)?;
        let n = 256 << 20;
        let a = be.zeros::<f32>(n, &s).map_err(err)?;
        let b = be.zeros::<f32>(n, &s).map_err(err)?;
        let api = be.api();
        let (pa, pb, raw) = (a.ptr(), b.ptr(), s.raw());
        let t = be
            .time_calls(&s, 3, 20, || {
                // SAFETY: two live device buffers of n floats each, on this stream.
                let code = unsafe { (api.memcpy_dtod)(pb, pa, n * 4, raw) };
                if code == 0 {
                    Ok(())
                } else {
                    Err(mamba_core::Error::Backend {
                        backend: "cuda",
                        message: format!("memcpy_dtod: status {code}"),
                    })
                }
            })
            .map_err(err)?;
        Ok(2.0 * (n * 4) as f64 / median(&t) / 1e3)
    }

    pub fn scan(
        be: &CudaBackend,
        backward: bool,
        s: &ScanInputs,
        dtype: DType,
    ) -> Result<Stats, String> {
        match dtype {
            DType::BF16 => scan_t::<bf16>(be, backward, s),
            DType::F16 => scan_t::<f16>(be, backward, s),
            _ => scan_t::<f32>(be, backward, s),
        }
    }

    fn scan_t<T: DeviceElement + Element>(
        be: &CudaBackend,
        backward: bool,
        s: &ScanInputs,
    ) -> Result<Stats, String> {
        let st = be.stream().map_err(err)?;
        let (b, d, l, n) = (s.b, s.d, s.l, s.n);
        let u = up::<T>(be, &st, &s.u)?;
        let delta = up::<T>(be, &st, &s.delta)?;
        let z = up::<T>(be, &st, &s.z)?;
        let bm = up::<T>(be, &st, &s.bm)?;
        let cm = up::<T>(be, &st, &s.cm)?;
        let a = be.upload(&s.a, &st).map_err(err)?;
        let dv = be.upload(&s.dvec, &st).map_err(err)?;
        let bias = be.upload(&s.bias, &st).map_err(err)?;
        let out = be.alloc::<T>(b * d * l).map_err(err)?;
        let last = be.alloc::<f32>(b * d * n).map_err(err)?;
        let desc = SelectiveScanDesc {
            u: u.desc(&[b, d, l]),
            delta: delta.desc(&[b, d, l]),
            a: a.desc(&[d, n]),
            b: bm.desc(&[b, n, l]),
            c: cm.desc(&[b, n, l]),
            d: dv.desc(&[d]),
            z: z.desc(&[b, d, l]),
            delta_bias: bias.desc(&[d]),
            initial_state: TensorDesc::NONE,
            out: out.desc(&[b, d, l]),
            last_state: last.desc(&[b, d, n]),
            delta_softplus: 1,
            reserved: 0,
        };
        let dout = up::<T>(be, &st, &s.dout)?;
        let io = b * d * l;
        let (du, ddelta, dz) = (
            be.alloc::<T>(io).map_err(err)?,
            be.alloc::<T>(io).map_err(err)?,
            be.alloc::<T>(io).map_err(err)?,
        );
        let (db, dc) = (
            be.alloc::<T>(b * n * l).map_err(err)?,
            be.alloc::<T>(b * n * l).map_err(err)?,
        );
        let da = be.alloc::<f32>(d * n).map_err(err)?;
        let (dd, dbias) = (
            be.alloc::<f32>(d).map_err(err)?,
            be.alloc::<f32>(d).map_err(err)?,
        );
        let bwd = SelectiveScanBwdDesc {
            fwd: desc,
            dout: dout.desc(&[b, d, l]),
            dlast_state: TensorDesc::NONE,
            du: du.desc(&[b, d, l]),
            ddelta: ddelta.desc(&[b, d, l]),
            da: da.desc(&[d, n]),
            db: db.desc(&[b, n, l]),
            dc: dc.desc(&[b, n, l]),
            dd: dd.desc(&[d]),
            dz: dz.desc(&[b, d, l]),
            ddelta_bias: dbias.desc(&[d]),
            dinitial_state: TensorDesc::NONE,
        };
        let t = be.time_calls(&st, WARMUP, ITERS, || {
            // SAFETY: every pointer of `desc` and `bwd` is a live buffer above with its
            // descriptor's shape.
            unsafe { be.selective_scan_device(&desc, &st) }?;
            if backward {
                // SAFETY: as above.
                unsafe { be.selective_scan_backward_device(&bwd, &st) }?;
            }
            Ok(())
        });
        t.map(stats).map_err(err)
    }

    pub fn ssd(
        be: &CudaBackend,
        backward: bool,
        s: &SsdInputs,
        dtype: DType,
    ) -> Result<Stats, String> {
        match dtype {
            DType::BF16 => ssd_t::<bf16>(be, backward, s),
            DType::F16 => ssd_t::<f16>(be, backward, s),
            _ => ssd_t::<f32>(be, backward, s),
        }
    }

    fn ssd_t<T: DeviceElement + Element>(
        be: &CudaBackend,
        backward: bool,
        s: &SsdInputs,
    ) -> Result<Stats, String> {
        let st = be.stream().map_err(err)?;
        let (b, l, h, p, n) = (s.b, s.l, s.h, s.p, s.n);
        let x = up::<T>(be, &st, &s.x)?;
        let dt = up::<T>(be, &st, &s.dt)?;
        let bm = up::<T>(be, &st, &s.bm)?;
        let cm = up::<T>(be, &st, &s.cm)?;
        let a = be.upload(&s.a, &st).map_err(err)?;
        let dv = be.upload(&s.dvec, &st).map_err(err)?;
        let bias = be.upload(&s.dt_bias, &st).map_err(err)?;
        let out = be.alloc::<T>(b * l * h * p).map_err(err)?;
        let fin = be.alloc::<f32>(b * h * p * n).map_err(err)?;
        let desc = SsdDesc {
            x: x.desc(&[b, l, h, p]),
            dt: dt.desc(&[b, l, h]),
            a: a.desc(&[h]),
            b: bm.desc(&[b, l, 1, n]),
            c: cm.desc(&[b, l, 1, n]),
            d: dv.desc(&[h]),
            dt_bias: bias.desc(&[h]),
            out: out.desc(&[b, l, h, p]),
            final_states: fin.desc(&[b, h, p, n]),
            dt_softplus: 1,
            ..SsdDesc::default()
        };
        let dout = up::<T>(be, &st, &s.dout)?;
        let (dx, ddt) = (
            be.alloc::<T>(b * l * h * p).map_err(err)?,
            be.alloc::<T>(b * l * h).map_err(err)?,
        );
        let (db, dc) = (
            be.alloc::<T>(b * l * n).map_err(err)?,
            be.alloc::<T>(b * l * n).map_err(err)?,
        );
        let (da, dd, dbias) = (
            be.alloc::<f32>(h).map_err(err)?,
            be.alloc::<f32>(h).map_err(err)?,
            be.alloc::<f32>(h).map_err(err)?,
        );
        let bwd = SsdBwdDesc {
            fwd: desc,
            dout: dout.desc(&[b, l, h, p]),
            dfinal_states: TensorDesc::NONE,
            dx: dx.desc(&[b, l, h, p]),
            ddt: ddt.desc(&[b, l, h]),
            da: da.desc(&[h]),
            db: db.desc(&[b, l, 1, n]),
            dc: dc.desc(&[b, l, 1, n]),
            dd: dd.desc(&[h]),
            dz: TensorDesc::NONE,
            ddt_bias: dbias.desc(&[h]),
            dinitial_states: TensorDesc::NONE,
        };
        let t = be.time_calls(&st, WARMUP, ITERS, || {
            // SAFETY: every pointer of `desc` and `bwd` is a live buffer above with its
            // descriptor's shape.
            unsafe { be.ssd_device(&desc, &st) }?;
            if backward {
                // SAFETY: as above.
                unsafe { be.ssd_backward_device(&bwd, &st) }?;
            }
            Ok(())
        });
        t.map(stats).map_err(err)
    }

    pub fn conv(
        be: &CudaBackend,
        backward: bool,
        s: &ConvInputs,
        dtype: DType,
    ) -> Result<Stats, String> {
        match dtype {
            DType::BF16 => conv_t::<bf16>(be, backward, s),
            DType::F16 => conv_t::<f16>(be, backward, s),
            _ => conv_t::<f32>(be, backward, s),
        }
    }

    fn conv_t<T: DeviceElement + Element>(
        be: &CudaBackend,
        backward: bool,
        s: &ConvInputs,
    ) -> Result<Stats, String> {
        let st = be.stream().map_err(err)?;
        let (b, c, l, w) = (s.b, s.c, s.l, s.w);
        let x = up::<T>(be, &st, &s.x)?;
        let weight = be.upload(&s.weight, &st).map_err(err)?;
        let bias = be.upload(&s.bias, &st).map_err(err)?;
        let out = be.alloc::<T>(b * c * l).map_err(err)?;
        let fin = be.alloc::<f32>(b * c * (w - 1)).map_err(err)?;
        let desc = Conv1dDesc {
            x: x.desc(&[b, c, l]),
            weight: weight.desc(&[c, w]),
            bias: bias.desc(&[c]),
            initial_states: TensorDesc::NONE,
            out: out.desc(&[b, c, l]),
            final_states: fin.desc(&[b, c, w - 1]),
            activation: abi::activation::SILU,
            channel_last: 0,
        };
        let dout = up::<T>(be, &st, &s.dout)?;
        let dx = be.alloc::<T>(b * c * l).map_err(err)?;
        let (dw, dbias) = (
            be.alloc::<f32>(c * w).map_err(err)?,
            be.alloc::<f32>(c).map_err(err)?,
        );
        let bwd = Conv1dBwdDesc {
            fwd: desc,
            dout: dout.desc(&[b, c, l]),
            dfinal_states: TensorDesc::NONE,
            dx: dx.desc(&[b, c, l]),
            dweight: dw.desc(&[c, w]),
            dbias: dbias.desc(&[c]),
            dinitial_states: TensorDesc::NONE,
        };
        let t = be.time_calls(&st, WARMUP, ITERS, || {
            // SAFETY: every pointer of `desc` and `bwd` is a live buffer above with its
            // descriptor's shape.
            unsafe { be.causal_conv1d_device(&desc, &st) }?;
            if backward {
                // SAFETY: as above.
                unsafe { be.causal_conv1d_backward_device(&bwd, &st) }?;
            }
            Ok(())
        });
        t.map(stats).map_err(err)
    }

    /// The block's forward on device buffers (weights uploaded once, before timing).
    pub fn block(
        be: &CudaBackend,
        blk: &Mamba2Block,
        input: &[f32],
        batch: usize,
        l: usize,
        dtype: DType,
    ) -> Result<Stats, String> {
        match dtype {
            DType::BF16 => block_t::<bf16>(be, blk, input, batch, l),
            DType::F16 => block_t::<f16>(be, blk, input, batch, l),
            _ => block_t::<f32>(be, blk, input, batch, l),
        }
    }

    /// The block's forward and its device-resident backward on device buffers, one
    /// event pair around both.
    pub fn block_train(
        be: &CudaBackend,
        blk: &Mamba2Block,
        input: &[f32],
        batch: usize,
        l: usize,
        dtype: DType,
    ) -> Result<Stats, String> {
        match dtype {
            DType::BF16 => block_train_t::<bf16>(be, blk, input, batch, l),
            DType::F16 => block_train_t::<f16>(be, blk, input, batch, l),
            _ => block_train_t::<f32>(be, blk, input, batch, l),
        }
    }

    fn block_train_t<T: DeviceElement + Element>(
        be: &CudaBackend,
        blk: &Mamba2Block,
        input: &[f32],
        batch: usize,
        l: usize,
    ) -> Result<Stats, String> {
        let dev = blk
            .device_block(T::DTYPE)
            .ok_or("not a CUDA block")?
            .map_err(|e| e.to_string())?;
        let st = be.stream().map_err(err)?;
        let x = up::<T>(be, &st, input)?;
        let dout = up::<T>(be, &st, &vec![1e-2f32; input.len()])?;
        let mut out = be.alloc::<T>(input.len()).map_err(err)?;
        let mut dx = be.alloc::<T>(input.len()).map_err(err)?;
        let mut grads = dev.grads(be).map_err(err)?;
        // The block's default: the forward keeps its activations for the backward
        // (`MAMBA_BLOCK_TRAIN=recompute`, or a plugin without the saving entries: the
        // backward recomputes them).
        let mut acts = if blk.keep_activations() && dev.has_saving() {
            Some(dev.activations(be, batch, l).map_err(err)?)
        } else {
            None
        };
        let t = be.time_calls(&st, WARMUP, ITERS, || {
            match acts.as_mut() {
                Some(a) => dev.forward_train(&x, batch, l, &mut out, None, false, a, &st)?,
                None => dev.forward(&x, batch, l, &mut out, None, false, &st)?,
            }
            let pass = DeviceBackward {
                input: &x,
                dout: &dout,
                batch,
                seqlen: l,
                activations: acts.as_ref(),
                init: None,
                dfinal: None,
            };
            dev.backward(&pass, &mut dx, &mut grads, None, &st)
        });
        t.map(stats).map_err(err)
    }

    fn block_t<T: DeviceElement + Element>(
        be: &CudaBackend,
        blk: &Mamba2Block,
        input: &[f32],
        batch: usize,
        l: usize,
    ) -> Result<Stats, String> {
        let dev = blk
            .device_block(T::DTYPE)
            .ok_or("not a CUDA block")?
            .map_err(|e| e.to_string())?;
        let st = be.stream().map_err(err)?;
        let x = up::<T>(be, &st, input)?;
        let mut out = be.alloc::<T>(input.len()).map_err(err)?;
        let mut cs = be
            .zeros::<f32>(dev.conv_state_len(batch), &st)
            .map_err(err)?;
        let mut ss = be
            .zeros::<f32>(dev.ssm_state_len(batch), &st)
            .map_err(err)?;
        let _ = Tensor::new(input, [batch, l, input.len() / (batch * l)]);
        let t = be.time_calls(&st, WARMUP, ITERS, || {
            dev.forward(&x, batch, l, &mut out, Some((&mut cs, &mut ss)), false, &st)
        });
        t.map(stats).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_no_rows_is_a_header() {
        // The separator line once counted `present * 2 - 1` columns, which wrapped
        // around with no backend present and wrote until memory ran out.
        let t = table(&[], 100.0);
        assert!(t.len() < 1000, "{t}");
        assert!(t.contains("| op | pass | batch | L |"));
    }

    #[test]
    fn an_only_that_names_nothing_is_an_error() {
        let args: Vec<String> = ["--backend", "reference", "--quick", "--only", "no such row"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = run(&args).unwrap_err();
        assert!(e.contains("names no measurement"), "{e}");
    }
}
