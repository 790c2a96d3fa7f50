//! The golden conformance runner: every `*.safetensors` case of a folder (format in
//! `shared/golden/README.md`) through a backend, every `expected.*` it can produce
//! compared with the SPEC's tolerances. Used by `cargo xtask golden` and the tests.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use mamba_core::element::convert;
use mamba_core::{
    bf16, f16, Activation, Backend, CausalConv1dArgs, CausalConv1dUpdateArgs, ConvLayout, DType,
    Element, Kernels, SelectiveScanArgs, SelectiveStateUpdateArgs, SsdArgs, Tensor, TensorMut,
};

use crate::backend::Selection;
use crate::block::Mamba2Block;
use crate::config::Mamba2Config;
use crate::io::{HostTensor, TensorFile};
use crate::weights::Mamba2Weights;

/// The outcome of one output of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Within tolerance.
    Pass,
    /// Outside tolerance, not finite, or the call failed.
    Fail,
    /// The backend lacks the operation or option (counts as a failure).
    Unsupported,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The case's file stem.
    pub case: String,
    /// The output compared (`out`, `last_state`, `grad_u`, ...).
    pub output: String,
    /// The verdict.
    pub status: Status,
    /// Relative L2 error, when computed.
    pub rel_err: Option<f64>,
    /// The tolerance applied.
    pub tol: f64,
    /// Why it failed or is unsupported.
    pub message: Option<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Unsupported => "UNSUPPORTED",
        };
        write!(f, "{tag:<11} {:<34} {:<22}", self.case, self.output)?;
        if let Some(e) = self.rel_err {
            write!(f, " rel_err {e:.3e} (tol {:.0e})", self.tol)?;
        }
        if let Some(m) = &self.message {
            write!(f, "  {m}")?;
        }
        Ok(())
    }
}

/// All outcomes of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One entry per case and output.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Outcomes that passed.
    pub fn passed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Pass)
            .count()
    }
    /// Outcomes that failed or are unsupported.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }
    /// The closing line: `N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Relative L2 error `||got - exp|| / ||exp||`; infinite if anything is not finite.
/// When `exp` is all zeros the absolute norm of `got` is returned.
pub fn rel_l2(got: &[f64], exp: &[f64]) -> f64 {
    if got.len() != exp.len() || got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let num: f64 = got.iter().zip(exp).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = exp.iter().map(|b| b * b).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// SPEC tolerances: (forward, gradient) for a storage type.
pub fn tolerances(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 | DType::F64 => (1e-5, 1e-4),
        DType::BF16 => (2e-2, 2e-2),
        DType::F16 => (5e-3, 5e-3),
    }
}

/// The `*.safetensors` files of a folder, sorted.
pub fn list_cases(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    Ok(v)
}

/// Runs every case of `dir`, calling `progress` with each outcome as it comes.
pub fn run_dir(
    dir: &Path,
    sel: &Selection,
    dtype: DType,
    mut progress: impl FnMut(&Outcome),
) -> std::io::Result<Report> {
    let mut report = Report::default();
    for path in list_cases(dir)? {
        for o in run_file(&path, sel, dtype) {
            progress(&o);
            report.outcomes.push(o);
        }
    }
    Ok(report)
}

/// Runs one case file.
pub fn run_file(path: &Path, sel: &Selection, dtype: DType) -> Vec<Outcome> {
    let case = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match TensorFile::read(path) {
        Ok(f) => f,
        Err(e) => {
            return vec![Outcome {
                case,
                output: "(file)".into(),
                status: Status::Fail,
                rel_err: None,
                tol: 0.0,
                message: Some(e.to_string()),
            }]
        }
    };
    run_case(&case, &file, sel, dtype)
}

/// Runs one case already read.
pub fn run_case(case: &str, file: &TensorFile, sel: &Selection, dtype: DType) -> Vec<Outcome> {
    let produced = match dtype {
        DType::F32 => produce::<f32>(file, sel, dtype),
        DType::F16 => produce::<f16>(file, sel, dtype),
        DType::BF16 => produce::<bf16>(file, sel, dtype),
        DType::F64 => {
            Produced::all_failed("f64 storage is for the reference's own tests, not golden runs")
        }
    };
    let (tol_fwd, tol_grad) = tolerances(dtype);
    let mut expected: Vec<(&String, &HostTensor)> = file
        .tensors
        .iter()
        .filter(|(k, _)| k.starts_with("expected."))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(b.0));
    let mut outcomes = Vec::new();
    for (key, exp) in expected {
        let name = key.trim_start_matches("expected.").to_string();
        let tol = if name.starts_with("grad_") {
            tol_grad
        } else {
            tol_fwd
        };
        let mut o = Outcome {
            case: case.to_string(),
            output: name.clone(),
            status: Status::Fail,
            rel_err: None,
            tol,
            message: None,
        };
        let group = if name.starts_with("grad_") {
            &produced.backward
        } else {
            &produced.forward
        };
        match group {
            Err((status, msg)) => {
                o.status = *status;
                o.message = Some(msg.clone());
            }
            Ok(map) => match map.get(&name) {
                None => {
                    o.status = Status::Unsupported;
                    o.message = Some(format!(
                        "the runner or backend does not produce `{name}` for this op"
                    ));
                }
                Some(got) if got.len() != exp.data.len() => {
                    o.message = Some(format!(
                        "produced {} values, expected {}",
                        got.len(),
                        exp.data.len()
                    ));
                }
                Some(got) => {
                    let e = rel_l2(got, &exp.data);
                    o.rel_err = Some(e);
                    o.status = if e <= tol { Status::Pass } else { Status::Fail };
                }
            },
        }
        outcomes.push(o);
    }
    if outcomes.is_empty() {
        outcomes.push(Outcome {
            case: case.to_string(),
            output: "(none)".into(),
            status: Status::Fail,
            rel_err: None,
            tol: tol_fwd,
            message: Some("the case has no expected.* tensors".into()),
        });
    }
    outcomes
}

type Outputs = BTreeMap<String, Vec<f64>>;
type Group = Result<Outputs, (Status, String)>;

struct Produced {
    forward: Group,
    backward: Group,
}

impl Produced {
    fn all_failed(msg: &str) -> Produced {
        Produced {
            forward: Err((Status::Fail, msg.to_string())),
            backward: Err((Status::Fail, msg.to_string())),
        }
    }
}

fn verdict(e: mamba_core::Error) -> (Status, String) {
    match e {
        mamba_core::Error::Unsupported { .. } => (Status::Unsupported, e.to_string()),
        other => (Status::Fail, other.to_string()),
    }
}

/// Typed access to a case's inputs.
struct Inputs<'f> {
    file: &'f TensorFile,
}

impl<'f> Inputs<'f> {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.file.tensors.get(name).map(|t| t.shape.clone())
    }
    fn act<T: Element>(&self, name: &str) -> Option<(Vec<T>, Vec<usize>)> {
        self.file.tensors.get(name).map(|t| {
            (
                t.data
                    .iter()
                    .map(|&v| T::from_f64(v as f32 as f64))
                    .collect(),
                t.shape.clone(),
            )
        })
    }
    fn param(&self, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
        self.file
            .tensors
            .get(name)
            .map(|t| (t.to_f32(), t.shape.clone()))
    }
    fn flag(&self, name: &str) -> bool {
        self.file
            .metadata
            .get(name)
            .is_some_and(|v| v == "true" || v == "True" || v == "1")
    }
    fn meta(&self, name: &str) -> Option<&str> {
        self.file.metadata.get(name).map(String::as_str)
    }
}

fn view<'a, T>(v: &'a Option<(Vec<T>, Vec<usize>)>) -> Option<Tensor<'a, T>> {
    v.as_ref().and_then(|(d, s)| {
        mamba_core::Shape::from_slice(s, "input")
            .ok()
            .map(|shape| Tensor {
                data: d.as_slice(),
                shape,
            })
    })
}

fn need<'a, T>(
    v: &'a Option<(Vec<T>, Vec<usize>)>,
    name: &str,
) -> Result<Tensor<'a, T>, (Status, String)> {
    view(v).ok_or_else(|| {
        (
            Status::Fail,
            format!("the case lacks input `{name}` (or it has too many dimensions)"),
        )
    })
}

fn widen<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn insert<T: Element>(m: &mut Outputs, name: &str, v: &[T]) {
    m.insert(name.to_string(), widen(v));
}

fn produce<T: Element>(file: &TensorFile, sel: &Selection, dtype: DType) -> Produced
where
    dyn Backend: Kernels<T>,
{
    let inp = Inputs { file };
    let k: &(dyn Backend + 'static) = &*sel.backend;
    let op = inp.meta("op").unwrap_or("").to_string();
    let no_grads = || {
        Err((
            Status::Unsupported,
            format!("op `{op}` has no gradients in the runner"),
        ))
    };
    match op.as_str() {
        "selective_scan" => selective_scan::<T>(&inp, k),
        "ssd" => ssd::<T>(&inp, k),
        "causal_conv1d" => conv1d::<T>(&inp, k),
        "selective_state_update" => Produced {
            forward: state_update::<T>(&inp, k),
            backward: no_grads(),
        },
        "causal_conv1d_update" => Produced {
            forward: conv_update::<T>(&inp, k),
            backward: no_grads(),
        },
        "mamba2_block" => block::<T>(&inp, sel, dtype),
        other => Produced {
            forward: Err((Status::Unsupported, format!("unknown op `{other}`"))),
            backward: Err((Status::Unsupported, format!("unknown op `{other}`"))),
        },
    }
}

fn selective_scan<T: Element>(inp: &Inputs<'_>, k: &(dyn Backend + 'static)) -> Produced
where
    dyn Backend: Kernels<T>,
{
    let (u, delta, b, c, z) = (
        inp.act::<T>("u"),
        inp.act::<T>("delta"),
        inp.act::<T>("B"),
        inp.act::<T>("C"),
        inp.act::<T>("z"),
    );
    let (a, d, bias, init) = (
        inp.param("A"),
        inp.param("D"),
        inp.param("delta_bias"),
        inp.param("initial_state"),
    );
    let dout = inp.act::<T>("dout");
    let dlast = inp.param("dlast_state");
    let build = || -> Result<SelectiveScanArgs<'_, T>, (Status, String)> {
        Ok(SelectiveScanArgs {
            u: need(&u, "u")?,
            delta: need(&delta, "delta")?,
            a: need(&a, "A")?,
            b: need(&b, "B")?,
            c: need(&c, "C")?,
            d: view(&d),
            z: view(&z),
            delta_bias: view(&bias),
            initial_state: view(&init),
            delta_softplus: inp.flag("delta_softplus"),
        })
    };
    let forward = build().and_then(|args| {
        let (bsz, dim, l) = (
            args.u.shape.dim(0),
            args.u.shape.dim(1),
            args.u.shape.dim(2),
        );
        let n = args.a.shape.dims().get(1).copied().unwrap_or(0);
        let mut out = vec![T::default(); bsz * dim * l];
        let mut last = vec![0.0f32; bsz * dim * n];
        <dyn Backend as Kernels<T>>::selective_scan(k, &args, &mut out, Some(&mut last))
            .map_err(verdict)?;
        let mut m = Outputs::new();
        insert(&mut m, "out", &out);
        insert(&mut m, "last_state", &last);
        Ok(m)
    });
    let backward = build().and_then(|args| {
        let dout = need(&dout, "dout")?;
        let g = <dyn Backend as Kernels<T>>::selective_scan_backward(
            k,
            &args,
            dout.data,
            dlast.as_ref().map(|v| v.0.as_slice()),
        )
        .map_err(verdict)?;
        let mut m = Outputs::new();
        insert(&mut m, "grad_u", &g.u);
        insert(&mut m, "grad_delta", &g.delta);
        insert(&mut m, "grad_A", &g.a);
        insert(&mut m, "grad_B", &g.b);
        insert(&mut m, "grad_C", &g.c);
        for (name, v) in [
            ("grad_D", &g.d),
            ("grad_delta_bias", &g.delta_bias),
            ("grad_initial_state", &g.initial_state),
        ] {
            if let Some(v) = v {
                insert(&mut m, name, v);
            }
        }
        if let Some(v) = &g.z {
            insert(&mut m, "grad_z", v);
        }
        Ok(m)
    });
    Produced { forward, backward }
}

fn ssd<T: Element>(inp: &Inputs<'_>, k: &(dyn Backend + 'static)) -> Produced
where
    dyn Backend: Kernels<T>,
{
    let (x, dt, b, c, z) = (
        inp.act::<T>("x"),
        inp.act::<T>("dt"),
        inp.act::<T>("B"),
        inp.act::<T>("C"),
        inp.act::<T>("z"),
    );
    let (a, d, bias, init) = (
        inp.param("A"),
        inp.param("D"),
        inp.param("dt_bias"),
        inp.param("initial_states"),
    );
    let seq_idx: Option<(Vec<i32>, Vec<usize>)> = inp
        .file
        .tensors
        .get("seq_idx")
        .map(|t| (t.to_i32(), t.shape.clone()));
    let dout = inp.act::<T>("dout");
    let dfinal = inp.param("dfinal_states");
    let limit = match inp.meta("dt_limit").map(parse_pair) {
        Some(Some(l)) => mamba_core::ops::ssd::normalize_dt_limit(Some(l)),
        Some(None) => {
            let msg = format!("cannot parse dt_limit {:?}", inp.meta("dt_limit"));
            return Produced::all_failed(&msg);
        }
        None => None,
    };
    let chunk = inp
        .meta("chunk_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(mamba_core::DEFAULT_CHUNK_SIZE);
    let build = || -> Result<SsdArgs<'_, T>, (Status, String)> {
        Ok(SsdArgs {
            x: need(&x, "x")?,
            dt: need(&dt, "dt")?,
            a: need(&a, "A")?,
            b: need(&b, "B")?,
            c: need(&c, "C")?,
            d: view(&d),
            z: view(&z),
            dt_bias: view(&bias),
            initial_states: view(&init),
            seq_idx: view(&seq_idx),
            dt_softplus: inp.flag("dt_softplus"),
            dt_limit: limit,
            chunk_size: chunk,
        })
    };
    let forward = build().and_then(|args| {
        let s = args.x.dims().to_vec();
        let n = args.b.dims().get(3).copied().unwrap_or(0);
        let mut out = vec![T::default(); s.iter().product()];
        let mut fin = vec![0.0f32; s[0] * s[2] * s[3] * n];
        <dyn Backend as Kernels<T>>::ssd(k, &args, &mut out, Some(&mut fin)).map_err(verdict)?;
        let mut m = Outputs::new();
        insert(&mut m, "out", &out);
        insert(&mut m, "final_states", &fin);
        Ok(m)
    });
    let backward = build().and_then(|args| {
        let dout = need(&dout, "dout")?;
        let g = <dyn Backend as Kernels<T>>::ssd_backward(
            k,
            &args,
            dout.data,
            dfinal.as_ref().map(|v| v.0.as_slice()),
        )
        .map_err(verdict)?;
        let mut m = Outputs::new();
        insert(&mut m, "grad_x", &g.x);
        insert(&mut m, "grad_dt", &g.dt);
        insert(&mut m, "grad_A", &g.a);
        insert(&mut m, "grad_B", &g.b);
        insert(&mut m, "grad_C", &g.c);
        for (name, v) in [
            ("grad_D", &g.d),
            ("grad_dt_bias", &g.dt_bias),
            ("grad_initial_states", &g.initial_states),
        ] {
            if let Some(v) = v {
                insert(&mut m, name, v);
            }
        }
        if let Some(v) = &g.z {
            insert(&mut m, "grad_z", v);
        }
        Ok(m)
    });
    Produced { forward, backward }
}

fn parse_pair(s: &str) -> Option<(f32, f32)> {
    let t = s
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    let mut it = t.split(',').map(|v| v.trim());
    let parse = |v: &str| -> Option<f32> {
        match v.to_ascii_lowercase().as_str() {
            "inf" | "infinity" | "float('inf')" => Some(f32::INFINITY),
            other => other.parse().ok(),
        }
    };
    let lo = parse(it.next()?)?;
    let hi = parse(it.next()?)?;
    Some((lo, hi))
}

fn activation(inp: &Inputs<'_>) -> Result<Activation, (Status, String)> {
    let a = inp.meta("activation").unwrap_or("none");
    Activation::parse(a).ok_or_else(|| (Status::Unsupported, format!("activation `{a}`")))
}

fn conv1d<T: Element>(inp: &Inputs<'_>, k: &(dyn Backend + 'static)) -> Produced
where
    dyn Backend: Kernels<T>,
{
    let x = inp.act::<T>("x");
    let (w, bias, init) = (
        inp.param("weight"),
        inp.param("bias"),
        inp.param("initial_states"),
    );
    let dout = inp.act::<T>("dout");
    let dfinal = inp.param("dfinal_states");
    let layout = match inp.meta("layout") {
        Some("channel_last") | Some("channels_last") => ConvLayout::ChannelLast,
        _ => ConvLayout::ChannelFirst,
    };
    let build = || -> Result<CausalConv1dArgs<'_, T>, (Status, String)> {
        Ok(CausalConv1dArgs {
            x: need(&x, "x")?,
            weight: need(&w, "weight")?,
            bias: view(&bias),
            initial_states: view(&init),
            activation: activation(inp)?,
            layout,
        })
    };
    let forward = build().and_then(|args| {
        let mut out = vec![T::default(); args.x.data.len()];
        let s = args.x.dims();
        let (bsz, ch) = match layout {
            ConvLayout::ChannelFirst => (s[0], s[1]),
            ConvLayout::ChannelLast => (s[0], s[2]),
        };
        let wd = args.weight.dims().get(1).copied().unwrap_or(1);
        let mut fin = vec![0.0f32; bsz * ch * wd.saturating_sub(1)];
        <dyn Backend as Kernels<T>>::causal_conv1d(k, &args, &mut out, Some(&mut fin))
            .map_err(verdict)?;
        let mut m = Outputs::new();
        insert(&mut m, "out", &out);
        insert(&mut m, "final_states", &fin);
        Ok(m)
    });
    let backward = build().and_then(|args| {
        let dout = need(&dout, "dout")?;
        let g = <dyn Backend as Kernels<T>>::causal_conv1d_backward(
            k,
            &args,
            dout.data,
            dfinal.as_ref().map(|v| v.0.as_slice()),
        )
        .map_err(verdict)?;
        let mut m = Outputs::new();
        insert(&mut m, "grad_x", &g.x);
        insert(&mut m, "grad_weight", &g.weight);
        if let Some(v) = &g.bias {
            insert(&mut m, "grad_bias", v);
        }
        if let Some(v) = &g.initial_states {
            insert(&mut m, "grad_initial_states", v);
        }
        Ok(m)
    });
    Produced { forward, backward }
}

fn state_update<T: Element>(inp: &Inputs<'_>, k: &(dyn Backend + 'static)) -> Group
where
    dyn Backend: Kernels<T>,
{
    let (x, dt, b, c, z) = (
        inp.act::<T>("x"),
        inp.act::<T>("dt"),
        inp.act::<T>("B"),
        inp.act::<T>("C"),
        inp.act::<T>("z"),
    );
    let (a, d, bias) = (inp.param("A"), inp.param("D"), inp.param("dt_bias"));
    let mut state = inp
        .param("state")
        .ok_or((Status::Fail, "the case lacks input `state`".to_string()))?
        .0;
    let limit = inp.meta("dt_limit").and_then(parse_pair);
    let args = SelectiveStateUpdateArgs {
        x: need(&x, "x")?,
        dt: need(&dt, "dt")?,
        a: need(&a, "A")?,
        b: need(&b, "B")?,
        c: need(&c, "C")?,
        d: view(&d),
        z: view(&z),
        dt_bias: view(&bias),
        dt_softplus: inp.flag("dt_softplus"),
        dt_limit: mamba_core::ops::ssd::normalize_dt_limit(limit),
    };
    let mut out = vec![T::default(); args.x.data.len()];
    <dyn Backend as Kernels<T>>::selective_state_update(k, &args, &mut state, &mut out)
        .map_err(verdict)?;
    let mut m = Outputs::new();
    insert(&mut m, "out", &out);
    insert(&mut m, "state", &state);
    Ok(m)
}

fn conv_update<T: Element>(inp: &Inputs<'_>, k: &(dyn Backend + 'static)) -> Group
where
    dyn Backend: Kernels<T>,
{
    let x = inp.act::<T>("x");
    let (w, bias) = (inp.param("weight"), inp.param("bias"));
    let shape = inp.shape("conv_state").ok_or((
        Status::Fail,
        "the case lacks input `conv_state`".to_string(),
    ))?;
    let mut state = inp.param("conv_state").map(|v| v.0).unwrap_or_default();
    let args = CausalConv1dUpdateArgs {
        x: need(&x, "x")?,
        weight: need(&w, "weight")?,
        bias: view(&bias),
        activation: activation(inp)?,
    };
    let mut out = vec![T::default(); args.x.data.len()];
    let shape = mamba_core::Shape::from_slice(&shape, "conv_state").map_err(verdict)?;
    let st = TensorMut {
        data: &mut state,
        shape,
    };
    <dyn Backend as Kernels<T>>::causal_conv1d_update(k, &args, st, &mut out).map_err(verdict)?;
    let mut m = Outputs::new();
    insert(&mut m, "out", &out);
    insert(&mut m, "conv_state", &state);
    Ok(m)
}

/// Reads a block configuration from a case's metadata.
pub fn block_config(
    meta: &std::collections::HashMap<String, String>,
) -> Result<Mamba2Config, String> {
    let mut cfg = Mamba2Config::default();
    let num = |k: &str, d: usize| -> Result<usize, String> {
        match meta.get(k) {
            None => Ok(d),
            Some(v) => v
                .parse()
                .map_err(|_| format!("metadata {k} = {v:?} is not an integer")),
        }
    };
    cfg.d_model = num("d_model", cfg.d_model)?;
    cfg.d_state = num("d_state", cfg.d_state)?;
    cfg.d_conv = num("d_conv", cfg.d_conv)?;
    cfg.expand = num("expand", cfg.expand)?;
    cfg.headdim = num("headdim", cfg.headdim)?;
    cfg.ngroups = num("ngroups", cfg.ngroups)?;
    cfg.chunk_size = num("chunk_size", cfg.chunk_size)?;
    if let Some(v) = meta.get("rmsnorm_eps") {
        cfg.rmsnorm_eps = v.parse().map_err(|_| format!("rmsnorm_eps = {v:?}"))?;
    }
    if let Some(v) = meta.get("norm_before_gate") {
        cfg.norm_before_gate = v == "true" || v == "True";
    }
    if let Some(v) = meta.get("dt_limit") {
        cfg.dt_limit = mamba_core::ops::ssd::normalize_dt_limit(Some(
            parse_pair(v).ok_or(format!("dt_limit = {v:?}"))?,
        ));
    }
    Ok(cfg)
}

fn block<T: Element>(inp: &Inputs<'_>, sel: &Selection, _dtype: DType) -> Produced
where
    dyn Backend: Kernels<T>,
{
    let forward = (|| -> Group {
        let cfg = block_config(&inp.file.metadata).map_err(|e| (Status::Fail, e))?;
        let mut cfg = cfg;
        cfg.conv_bias = inp.file.tensors.contains_key("weight.conv1d.bias");
        cfg.bias = inp.file.tensors.contains_key("weight.in_proj.bias");
        cfg.d_has_hdim = inp
            .shape("weight.D")
            .is_some_and(|s| s.len() == 1 && s[0] == cfg.d_inner() && cfg.headdim > 1);
        let w = Mamba2Weights::from_tensor_file(inp.file, &cfg, Some("weight."))
            .map_err(|e| (Status::Fail, e.to_string()))?;
        let blk =
            Mamba2Block::with_selection(cfg, w, sel).map_err(|e| (Status::Fail, e.to_string()))?;
        let hs = inp.act::<T>("hidden_states");
        let hs = need(&hs, "hidden_states")?;
        let (out, state) = blk.forward(hs).map_err(|e| match e {
            crate::ModelError::Kernel(k) => verdict(k),
            other => (Status::Fail, other.to_string()),
        })?;
        let mut m = Outputs::new();
        insert(&mut m, "out", &out);
        insert(&mut m, "conv_state", &state.conv);
        insert(&mut m, "ssm_state", &state.ssm);
        Ok(m)
    })();
    Produced {
        forward,
        backward: Err((
            Status::Unsupported,
            "mamba2_block gradients are not in the runner yet".into(),
        )),
    }
}

/// Converts `f32` values to a storage type and back (what storing them costs).
pub fn round_trip<T: Element>(v: &[f32]) -> Vec<f32> {
    convert::<T, f32>(&convert::<f32, T>(v))
}
