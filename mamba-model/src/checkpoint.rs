//! Saving blocks, stacks and their optimizer's state to safetensors files, and loading
//! them back.
//!
//! - [`Mamba2Block::save_safetensors`] / [`Mamba2Block::load_safetensors`]: one block's
//!   weights under mamba-ssm's names, its configuration in the file's metadata.
//! - [`Mamba2Stack::save_safetensors`] / [`Mamba2Stack::load_safetensors`]: every block
//!   under `layers.{k}.mixer.` (mamba-ssm's layer names without `backbone.`), each
//!   block's configuration in the metadata; [`Mamba2Stack::from_safetensors`] reads the
//!   blocks of a file written elsewhere with one configuration given.
//! - [`StackAdamW::save_safetensors`] / [`StackAdamW::load_safetensors`]: the step
//!   count, the hyperparameters and both moments of every parameter (PyTorch's
//!   `exp_avg` / `exp_avg_sq`), so that training resumes where it stopped.
//!
//! Files are written to a temporary file beside the target and renamed over it, so an
//! interrupted save leaves the previous file whole.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{Map, Value};

use crate::block::Mamba2Block;
use crate::config::Mamba2Config;
use crate::error::ModelError;
use crate::io::TensorFile;
use crate::stack::{Mamba2Stack, StackAdamW};
use crate::weights::{block_prefixes, expected_tensors, Mamba2Weights};
use mamba_core::DType;

/// The metadata key of a single block's configuration.
const BLOCK_CONFIG: &str = "mamba_rs.config";
/// The metadata key of a stack's block count; block `k`'s configuration is under
/// `mamba_rs.config.{k}`.
const STACK_LAYERS: &str = "mamba_rs.layers";
/// The metadata key of the optimizer's hyperparameters and step count.
const OPTIMIZER: &str = "mamba_rs.adamw";

fn stack_prefix(k: usize) -> String {
    format!("layers.{k}.mixer.")
}

fn io_error(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A float as JSON: a number where finite, else `"inf"`, `"-inf"` or `"nan"`.
fn float_json(v: f32) -> Value {
    if v.is_finite() {
        Value::from(v as f64)
    } else if v.is_nan() {
        Value::from("nan")
    } else if v > 0.0 {
        Value::from("inf")
    } else {
        Value::from("-inf")
    }
}

fn json_float(key: &str, v: &Value) -> Result<f32, ModelError> {
    let bad = || ModelError::Config(format!("`{key}` is not a number: {v}"));
    match v {
        Value::Number(n) => n.as_f64().map(|x| x as f32).ok_or_else(bad),
        Value::String(s) => match s.as_str() {
            "inf" => Ok(f32::INFINITY),
            "-inf" => Ok(f32::NEG_INFINITY),
            "nan" => Ok(f32::NAN),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn json_pair(key: &str, v: &Value) -> Result<(f32, f32), ModelError> {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((json_float(key, a)?, json_float(key, b)?)),
        _ => Err(ModelError::Config(format!(
            "`{key}` is not a pair of numbers: {v}"
        ))),
    }
}

impl Mamba2Config {
    /// The configuration as one JSON object, under mamba-ssm's argument names
    /// (`D_has_hdim`, `A_init_range`; `dt_limit` is `null` for mamba-ssm's `(0, inf)`).
    /// Floats round-trip exactly through [`Mamba2Config::from_json`].
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        let mut int = |k: &str, v: usize| m.insert(k.into(), Value::from(v));
        int("d_model", self.d_model);
        int("d_state", self.d_state);
        int("d_conv", self.d_conv);
        int("expand", self.expand);
        int("headdim", self.headdim);
        int("ngroups", self.ngroups);
        int("chunk_size", self.chunk_size);
        m.insert("rmsnorm_eps".into(), float_json(self.rmsnorm_eps));
        m.insert("norm_before_gate".into(), self.norm_before_gate.into());
        m.insert(
            "dt_limit".into(),
            match self.dt_limit {
                None => Value::Null,
                Some((lo, hi)) => Value::Array(vec![float_json(lo), float_json(hi)]),
            },
        );
        m.insert("conv_bias".into(), self.conv_bias.into());
        m.insert("bias".into(), self.bias.into());
        m.insert("D_has_hdim".into(), self.d_has_hdim.into());
        m.insert("dt_min".into(), float_json(self.dt_min));
        m.insert("dt_max".into(), float_json(self.dt_max));
        m.insert("dt_init_floor".into(), float_json(self.dt_init_floor));
        let (lo, hi) = self.a_init_range;
        m.insert(
            "A_init_range".into(),
            Value::Array(vec![float_json(lo), float_json(hi)]),
        );
        Value::Object(m).to_string()
    }

    /// Reads a configuration written by [`Mamba2Config::to_json`]. `d_model` and
    /// `d_state` are required; every other key missing takes its default; keys this
    /// version does not know are ignored. The result is validated.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("configuration is not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(ModelError::Config(
                "configuration is not a JSON object".into(),
            ));
        };
        let mut cfg = Mamba2Config::default();
        for required in ["d_model", "d_state"] {
            if !m.contains_key(required) {
                return Err(ModelError::Config(format!(
                    "configuration has no `{required}`"
                )));
            }
        }
        for (key, v) in &m {
            let int = || {
                v.as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .ok_or_else(|| {
                        ModelError::Config(format!("`{key}` is not a whole number: {v}"))
                    })
            };
            let boolean = || {
                v.as_bool()
                    .ok_or_else(|| ModelError::Config(format!("`{key}` is not a boolean: {v}")))
            };
            match key.as_str() {
                "d_model" => cfg.d_model = int()?,
                "d_state" => cfg.d_state = int()?,
                "d_conv" => cfg.d_conv = int()?,
                "expand" => cfg.expand = int()?,
                "headdim" => cfg.headdim = int()?,
                "ngroups" => cfg.ngroups = int()?,
                "chunk_size" => cfg.chunk_size = int()?,
                "rmsnorm_eps" => cfg.rmsnorm_eps = json_float(key, v)?,
                "norm_before_gate" => cfg.norm_before_gate = boolean()?,
                "dt_limit" => {
                    cfg.dt_limit = match v {
                        Value::Null => None,
                        v => Some(json_pair(key, v)?),
                    }
                }
                "conv_bias" => cfg.conv_bias = boolean()?,
                "bias" => cfg.bias = boolean()?,
                "D_has_hdim" => cfg.d_has_hdim = boolean()?,
                "dt_min" => cfg.dt_min = json_float(key, v)?,
                "dt_max" => cfg.dt_max = json_float(key, v)?,
                "dt_init_floor" => cfg.dt_init_floor = json_float(key, v)?,
                "A_init_range" => cfg.a_init_range = json_pair(key, v)?,
                _ => {}
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// One tensor to write: name, shape, values.
type Named<'a> = (String, Vec<usize>, &'a [f32]);

/// The values in `dtype`'s little-endian bytes (bf16 and f16 rounded to nearest even).
fn encode(values: &[f32], dtype: DType) -> Result<(Dtype, Vec<u8>), ModelError> {
    Ok(match dtype {
        DType::F32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        DType::BF16 => (
            Dtype::BF16,
            values
                .iter()
                .flat_map(|&v| mamba_core::bf16::from_f32(v).to_le_bytes())
                .collect(),
        ),
        DType::F16 => (
            Dtype::F16,
            values
                .iter()
                .flat_map(|&v| mamba_core::f16::from_f32(v).to_le_bytes())
                .collect(),
        ),
        other => {
            return Err(ModelError::Config(format!(
                "checkpoints are written in f32, bf16 or f16, not {other:?}"
            )))
        }
    })
}

/// Writes `tensors` in `dtype` with `metadata` to `path`, through a temporary file
/// beside it that is renamed over it once complete.
fn write_file(
    path: &Path,
    tensors: &[Named<'_>],
    dtype: DType,
    mut metadata: HashMap<String, String>,
) -> Result<(), ModelError> {
    let encoded = tensors
        .iter()
        .map(|(name, shape, v)| Ok((name.clone(), shape.clone(), encode(v, dtype)?)))
        .collect::<Result<Vec<_>, ModelError>>()?;
    let views = encoded
        .iter()
        .map(|(name, shape, (dt, bytes))| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|view| (name.as_str(), view))
                .map_err(|e| io_error(path, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    metadata.insert("format".into(), "pt".into());
    let bytes = safetensors::serialize(views, &Some(metadata)).map_err(|e| io_error(path, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| io_error(path, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, e)
    })
}

impl Mamba2Weights {
    /// Each tensor with its checkpoint name (after `prefix`) and shape, in
    /// [`expected_tensors`]' order, the optional ones only where present.
    fn named(&self, cfg: &Mamba2Config, prefix: &str) -> Vec<Named<'_>> {
        expected_tensors(cfg)
            .into_iter()
            .zip(self.fields())
            .filter_map(|((name, shape, _), v)| {
                v.map(|v| (format!("{prefix}{name}"), shape, v.as_slice()))
            })
            .collect()
    }
}

fn read_config(file: &TensorFile, key: &str, path: &Path) -> Result<Mamba2Config, ModelError> {
    let text = file.metadata.get(key).ok_or_else(|| {
        io_error(
            path,
            format!(
                "no `{key}` in the metadata: not written by save_safetensors \
                 (use from_safetensors with a configuration)"
            ),
        )
    })?;
    Mamba2Config::from_json(text)
}

impl Mamba2Block {
    /// Saves the block's weights under mamba-ssm's names (`in_proj.weight`, ...) and its
    /// configuration (in the metadata, as [`Mamba2Config::to_json`]) to a safetensors
    /// file, stored in `dtype`: `F32` keeps every weight exactly, `BF16` / `F16` round to
    /// nearest even. The file is replaced only once the new one is complete.
    pub fn save_safetensors(&self, path: impl AsRef<Path>, dtype: DType) -> Result<(), ModelError> {
        let cfg = self.config();
        let metadata = HashMap::from([(BLOCK_CONFIG.to_string(), cfg.to_json())]);
        write_file(
            path.as_ref(),
            &self.weights().named(cfg, ""),
            dtype,
            metadata,
        )
    }

    /// Loads a block saved by [`Mamba2Block::save_safetensors`], its configuration from
    /// the file (a file without one: [`Mamba2Block::from_safetensors`]).
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let cfg = read_config(&file, BLOCK_CONFIG, path)?;
        let w = Mamba2Weights::from_tensor_file(&file, &cfg, Some(""))?;
        Mamba2Block::new(cfg, w)
    }
}

impl Mamba2Stack {
    /// Saves every block's weights, block `k` under `layers.{k}.mixer.` (mamba-ssm's
    /// layer names without `backbone.`), and every block's configuration in the metadata,
    /// stored in `dtype` (`F32` exactly; `BF16` / `F16` rounded to nearest even). The file
    /// is replaced only once the new one is complete. [`Mamba2Stack::load_safetensors`]
    /// reads it back.
    pub fn save_safetensors(&self, path: impl AsRef<Path>, dtype: DType) -> Result<(), ModelError> {
        let mut metadata = HashMap::from([(STACK_LAYERS.to_string(), self.len().to_string())]);
        let mut tensors = Vec::new();
        for (k, b) in self.blocks().iter().enumerate() {
            metadata.insert(format!("{BLOCK_CONFIG}.{k}"), b.config().to_json());
            tensors.extend(b.weights().named(b.config(), &stack_prefix(k)));
        }
        write_file(path.as_ref(), &tensors, dtype, metadata)
    }

    /// Loads a stack saved by [`Mamba2Stack::save_safetensors`] (or a single block saved
    /// by [`Mamba2Block::save_safetensors`]), the blocks' configurations from the file.
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let Some(count) = file.metadata.get(STACK_LAYERS) else {
            let cfg = read_config(&file, BLOCK_CONFIG, path)?;
            let w = Mamba2Weights::from_tensor_file(&file, &cfg, Some(""))?;
            return Mamba2Stack::new(vec![Mamba2Block::new(cfg, w)?]);
        };
        let count: usize = count
            .parse()
            .map_err(|_| io_error(path, format!("`{STACK_LAYERS}` is not a count: {count}")))?;
        let blocks = (0..count)
            .map(|k| {
                let cfg = read_config(&file, &format!("{BLOCK_CONFIG}.{k}"), path)?;
                let w = Mamba2Weights::from_tensor_file(&file, &cfg, Some(&stack_prefix(k)))?;
                Mamba2Block::new(cfg, w)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Mamba2Stack::new(blocks)
    }

    /// Loads the blocks of a safetensors file written elsewhere, all with configuration
    /// `cfg`: the names that end in `in_proj.weight` give the blocks' prefixes, which must
    /// differ in one dot-separated number that runs 0, 1, 2, ... (as `layers.{k}.mixer.`
    /// or `backbone.layers.{k}.mixer.`); a file of one block is a stack of one. The
    /// blocks are in the order of that number.
    pub fn from_safetensors(path: impl AsRef<Path>, cfg: Mamba2Config) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let prefixes = layer_prefixes(&file).map_err(|reason| io_error(path, reason))?;
        let blocks = prefixes
            .iter()
            .map(|p| {
                let w = Mamba2Weights::from_tensor_file(&file, &cfg, Some(p))?;
                Mamba2Block::new(cfg.clone(), w)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Mamba2Stack::new(blocks)
    }
}

/// The blocks' prefixes of a file, ordered by their layer number.
fn layer_prefixes(file: &TensorFile) -> Result<Vec<String>, String> {
    let prefixes = block_prefixes(file);
    match prefixes.len() {
        0 => return Err("no tensor name ends with `in_proj.weight`".into()),
        1 => return Ok(vec![prefixes[0].to_string()]),
        _ => {}
    }
    let listed = || prefixes.join(", ");
    let parts: Vec<Vec<&str>> = prefixes.iter().map(|p| p.split('.').collect()).collect();
    let n = parts[0].len();
    if parts.iter().any(|p| p.len() != n) {
        return Err(format!(
            "the blocks' prefixes are not one pattern: {}",
            listed()
        ));
    }
    let varying: Vec<usize> = (0..n)
        .filter(|&i| parts.iter().any(|p| p[i] != parts[0][i]))
        .collect();
    let [at] = varying[..] else {
        return Err(format!(
            "the blocks' prefixes differ in more than one place: {}",
            listed()
        ));
    };
    let mut numbered = parts
        .iter()
        .zip(&prefixes)
        .map(|(p, full)| {
            p[at]
                .parse::<usize>()
                .map(|k| (k, full.to_string()))
                .map_err(|_| format!("`{}` in prefix `{full}` is not a layer number", p[at]))
        })
        .collect::<Result<Vec<_>, _>>()?;
    numbered.sort_unstable();
    if numbered.iter().enumerate().any(|(i, (k, _))| i != *k) {
        return Err(format!(
            "the layer numbers are not 0..{}: {}",
            numbered.len(),
            listed()
        ));
    }
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

impl StackAdamW {
    /// Saves the optimizer's state for `stack` (the stack it updates): the step count,
    /// the hyperparameters and `max_grad_norm` in the metadata, and both moments of every
    /// parameter in f32 as `layers.{k}.exp_avg.{name}` and `layers.{k}.exp_avg_sq.{name}`
    /// (none before the first update). Moments that live on the device are copied from
    /// it. With [`Mamba2Stack::save_safetensors`] and
    /// [`StackAdamW::load_safetensors`] a run resumes where it stopped: on the host path
    /// bit for bit.
    pub fn save_safetensors(
        &self,
        stack: &Mamba2Stack,
        path: impl AsRef<Path>,
    ) -> Result<(), ModelError> {
        let path = path.as_ref();
        let moments = self.moments(stack)?;
        let mut tensors = Vec::new();
        for (k, (m, v)) in moments.iter().enumerate() {
            let cfg = stack.blocks()[k].config();
            tensors.extend(m.named(cfg, &format!("layers.{k}.exp_avg.")));
            tensors.extend(v.named(cfg, &format!("layers.{k}.exp_avg_sq.")));
        }
        let a = &self.adamw;
        let mut h = Map::new();
        h.insert("step".into(), Value::from(a.steps()));
        h.insert("lr".into(), float_json(a.lr));
        h.insert("beta1".into(), float_json(a.beta1));
        h.insert("beta2".into(), float_json(a.beta2));
        h.insert("eps".into(), float_json(a.eps));
        h.insert("weight_decay".into(), float_json(a.weight_decay));
        h.insert(
            "max_grad_norm".into(),
            self.max_grad_norm.map_or(Value::Null, float_json),
        );
        h.insert("layers".into(), Value::from(stack.len()));
        let metadata = HashMap::from([(OPTIMIZER.to_string(), Value::Object(h).to_string())]);
        write_file(path, &tensors, DType::F32, metadata)
    }

    /// Loads an optimizer saved by [`StackAdamW::save_safetensors`] for `stack`: the
    /// moments are checked against its blocks' shapes, and its next update continues
    /// the saved run (on the device the moments go there on that update).
    pub fn load_safetensors(
        path: impl AsRef<Path>,
        stack: &Mamba2Stack,
    ) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let file = TensorFile::read(path)?;
        let text = file
            .metadata
            .get(OPTIMIZER)
            .ok_or_else(|| io_error(path, format!("no `{OPTIMIZER}` in the metadata")))?;
        let h: Value = serde_json::from_str(text)
            .map_err(|e| io_error(path, format!("`{OPTIMIZER}` is not JSON: {e}")))?;
        let get = |key: &str| {
            h.get(key)
                .ok_or_else(|| io_error(path, format!("`{OPTIMIZER}` has no `{key}`")))
        };
        let step = get("step")?
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| io_error(path, "`step` is not a step count"))?;
        let layers = get("layers")?.as_u64();
        if layers != Some(stack.len() as u64) {
            return Err(ModelError::Config(format!(
                "the optimizer was saved for {} blocks, the stack has {}",
                get("layers")?,
                stack.len()
            )));
        }
        let mut adamw = crate::train::AdamW::new(json_float("lr", get("lr")?)?);
        adamw.beta1 = json_float("beta1", get("beta1")?)?;
        adamw.beta2 = json_float("beta2", get("beta2")?)?;
        adamw.eps = json_float("eps", get("eps")?)?;
        adamw.weight_decay = json_float("weight_decay", get("weight_decay")?)?;
        let max_grad_norm = match get("max_grad_norm")? {
            Value::Null => None,
            v => Some(json_float("max_grad_norm", v)?),
        };
        let mut moments = Vec::new();
        if step > 0 {
            for (k, b) in stack.blocks().iter().enumerate() {
                let read = |kind: &str| {
                    let prefix = format!("layers.{k}.{kind}.");
                    Mamba2Weights::from_tensor_file(&file, b.config(), Some(&prefix))
                };
                moments.push((read("exp_avg")?, read("exp_avg_sq")?));
            }
        }
        let mut opt = StackAdamW::from(adamw);
        opt.max_grad_norm = max_grad_norm;
        opt.set_moments(step, moments);
        Ok(opt)
    }
}
