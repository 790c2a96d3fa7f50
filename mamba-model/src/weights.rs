//! `Mamba2Weights`: loaded from safetensors under mamba-ssm's / transformers' names,
//! or initialised in code as mamba-ssm initialises them.

use std::path::Path;

use crate::config::Mamba2Config;
use crate::error::ModelError;
use crate::io::TensorFile;

/// The parameters of one block, in `f32`, row-major, in checkpoint layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Mamba2Weights {
    /// `in_proj.weight`, (2 d_inner + 2 g N + h, d_model).
    pub in_proj: Vec<f32>,
    /// `in_proj.bias`, when the configuration has projection biases.
    pub in_proj_bias: Option<Vec<f32>>,
    /// `conv1d.weight`, (conv_dim, 1, W) stored as (conv_dim, W).
    pub conv_weight: Vec<f32>,
    /// `conv1d.bias`, (conv_dim).
    pub conv_bias: Option<Vec<f32>>,
    /// `dt_bias`, (h).
    pub dt_bias: Vec<f32>,
    /// `A_log`, (h); `A = -exp(A_log)`.
    pub a_log: Vec<f32>,
    /// `D`, (h), or (h p) with `d_has_hdim`.
    pub d: Vec<f32>,
    /// `norm.weight`, (d_inner).
    pub norm_weight: Vec<f32>,
    /// `out_proj.weight`, (d_model, d_inner).
    pub out_proj: Vec<f32>,
    /// `out_proj.bias`, when the configuration has projection biases.
    pub out_proj_bias: Option<Vec<f32>>,
}

/// The checkpoint names and shapes a configuration implies (name, shape, required).
pub fn expected_tensors(cfg: &Mamba2Config) -> Vec<(&'static str, Vec<usize>, bool)> {
    let (h, di) = (cfg.nheads(), cfg.d_inner());
    vec![
        ("in_proj.weight", vec![cfg.d_in_proj(), cfg.d_model], true),
        ("in_proj.bias", vec![cfg.d_in_proj()], cfg.bias),
        ("conv1d.weight", vec![cfg.conv_dim(), 1, cfg.d_conv], true),
        ("conv1d.bias", vec![cfg.conv_dim()], cfg.conv_bias),
        ("dt_bias", vec![h], true),
        ("A_log", vec![h], true),
        ("D", if cfg.d_has_hdim { vec![di] } else { vec![h] }, true),
        ("norm.weight", vec![di], true),
        ("out_proj.weight", vec![cfg.d_model, di], true),
        ("out_proj.bias", vec![cfg.d_model], cfg.bias),
    ]
}

impl Mamba2Weights {
    /// The CUDA plugin's view of these weights (borrowed slices), for
    /// [`CudaBackend::block`](mamba_core::plugin::CudaBackend::block) and
    /// [`CudaBlock::set_weights`](mamba_core::plugin::CudaBlock::set_weights). The device
    /// block has no projection biases; they are not part of the view.
    pub fn plugin_view(&self) -> mamba_core::plugin::BlockWeights<'_> {
        mamba_core::plugin::BlockWeights {
            in_proj: &self.in_proj,
            conv_weight: &self.conv_weight,
            conv_bias: self.conv_bias.as_deref(),
            dt_bias: &self.dt_bias,
            a_log: &self.a_log,
            d: &self.d,
            norm_weight: &self.norm_weight,
            out_proj: &self.out_proj,
        }
    }

    /// Loads a block's weights from a safetensors file. `prefix` (e.g.
    /// `backbone.layers.0.mixer.`) is prepended to every name; with `None` it is found
    /// from the file when exactly one block is in it.
    pub fn from_safetensors(
        path: impl AsRef<Path>,
        cfg: &Mamba2Config,
        prefix: Option<&str>,
    ) -> Result<Self, ModelError> {
        let file = TensorFile::read(path.as_ref())?;
        Self::from_tensor_file(&file, cfg, prefix)
    }

    /// Like [`Mamba2Weights::from_safetensors`] for a file already read.
    pub fn from_tensor_file(
        file: &TensorFile,
        cfg: &Mamba2Config,
        prefix: Option<&str>,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        let prefix = match prefix {
            Some(p) => p.to_string(),
            None => find_prefix(file)?,
        };
        let get =
            |name: &str, shape: &[usize], required: bool| -> Result<Option<Vec<f32>>, ModelError> {
                let full = format!("{prefix}{name}");
                let Some(t) = file.tensors.get(&full) else {
                    if !required {
                        return Ok(None);
                    }
                    let mut near: Vec<&str> = file
                        .tensors
                        .keys()
                        .filter(|k| k.ends_with(name))
                        .map(String::as_str)
                        .collect();
                    near.sort_unstable();
                    let hint = if near.is_empty() {
                        String::new()
                    } else {
                        format!(" (the file has {})", near.join(", "))
                    };
                    return Err(ModelError::MissingWeight { name: full, hint });
                };
                // (c, 1, W) and (c, W) hold the same values; accept both for the conv weight.
                let same = t.shape == shape
                    || (name == "conv1d.weight" && t.shape == [shape[0], shape[2]]);
                if !same {
                    return Err(ModelError::WeightShape {
                        name: full,
                        expected: shape.to_vec(),
                        got: t.shape.clone(),
                    });
                }
                Ok(Some(t.to_f32()))
            };
        let mut found = Vec::new();
        for (name, shape, required) in expected_tensors(cfg) {
            found.push(get(name, &shape, required)?);
        }
        let mut it = found.into_iter();
        let mut next = || it.next().flatten();
        let in_proj = next().expect("required");
        let in_proj_bias = next();
        let conv_weight = next().expect("required");
        let conv_bias = next();
        let dt_bias = next().expect("required");
        let a_log = next().expect("required");
        let d = next().expect("required");
        let norm_weight = next().expect("required");
        let out_proj = next().expect("required");
        let out_proj_bias = next();
        Ok(Mamba2Weights {
            in_proj,
            in_proj_bias: in_proj_bias.filter(|_| cfg.bias),
            conv_weight,
            conv_bias: conv_bias.filter(|_| cfg.conv_bias),
            dt_bias,
            a_log,
            d,
            norm_weight,
            out_proj,
            out_proj_bias: out_proj_bias.filter(|_| cfg.bias),
        })
    }

    /// Initialises weights as mamba-ssm does, from a seed: projections and convolution
    /// uniform in `±1/sqrt(fan_in)` (PyTorch's default), `dt` log-uniform in
    /// `[dt_min, dt_max]` (floored) stored as its inverse softplus in `dt_bias`,
    /// `A` uniform in `a_init_range` stored as `A_log = ln A`, `D = 1`, norm weight 1.
    pub fn init(cfg: &Mamba2Config, seed: u64) -> Result<Self, ModelError> {
        cfg.validate()?;
        let mut rng = SplitMix64(seed);
        let (h, di) = (cfg.nheads(), cfg.d_inner());
        let uniform = |rng: &mut SplitMix64, n: usize, bound: f32| -> Vec<f32> {
            (0..n)
                .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
                .collect()
        };
        let in_bound = 1.0 / (cfg.d_model as f32).sqrt();
        let conv_bound = 1.0 / (cfg.d_conv as f32).sqrt();
        let out_bound = 1.0 / (di as f32).sqrt();
        let in_proj = uniform(&mut rng, cfg.d_in_proj() * cfg.d_model, in_bound);
        let in_proj_bias = cfg
            .bias
            .then(|| uniform(&mut rng, cfg.d_in_proj(), in_bound));
        let conv_weight = uniform(&mut rng, cfg.conv_dim() * cfg.d_conv, conv_bound);
        let conv_bias = cfg
            .conv_bias
            .then(|| uniform(&mut rng, cfg.conv_dim(), conv_bound));
        let (lmin, lmax) = (cfg.dt_min.ln(), cfg.dt_max.ln());
        let dt_bias = (0..h)
            .map(|_| {
                let dt = (rng.next_f32() * (lmax - lmin) + lmin)
                    .exp()
                    .max(cfg.dt_init_floor);
                // Inverse of softplus: dt + ln(1 - e^-dt).
                dt + (-(-dt).exp_m1()).ln()
            })
            .collect();
        let (alo, ahi) = cfg.a_init_range;
        let a_log = (0..h)
            .map(|_| (alo + rng.next_f32() * (ahi - alo)).ln())
            .collect();
        let d = vec![1.0; if cfg.d_has_hdim { di } else { h }];
        let norm_weight = vec![1.0; di];
        let out_proj = uniform(&mut rng, cfg.d_model * di, out_bound);
        let out_proj_bias = cfg.bias.then(|| uniform(&mut rng, cfg.d_model, out_bound));
        Ok(Mamba2Weights {
            in_proj,
            in_proj_bias,
            conv_weight,
            conv_bias,
            dt_bias,
            a_log,
            d,
            norm_weight,
            out_proj,
            out_proj_bias,
        })
    }

    /// Checks every buffer's length against the configuration.
    pub fn validate(&self, cfg: &Mamba2Config) -> Result<(), ModelError> {
        let check = |name: &str, v: Option<&Vec<f32>>, shape: &[usize], required: bool| match v {
            None if required => Err(ModelError::MissingWeight {
                name: name.to_string(),
                hint: String::new(),
            }),
            Some(v) if v.len() != shape.iter().product::<usize>() => Err(ModelError::WeightShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: vec![v.len()],
            }),
            _ => Ok(()),
        };
        for ((name, shape, required), v) in expected_tensors(cfg).into_iter().zip(self.fields()) {
            check(name, v, &shape, required)?;
        }
        Ok(())
    }

    /// Every field, in [`expected_tensors`]' order (`None` for an absent bias).
    pub(crate) fn fields(&self) -> [Option<&Vec<f32>>; 10] {
        [
            Some(&self.in_proj),
            self.in_proj_bias.as_ref(),
            Some(&self.conv_weight),
            self.conv_bias.as_ref(),
            Some(&self.dt_bias),
            Some(&self.a_log),
            Some(&self.d),
            Some(&self.norm_weight),
            Some(&self.out_proj),
            self.out_proj_bias.as_ref(),
        ]
    }

    /// `A = -exp(A_log)`.
    pub fn a(&self) -> Vec<f32> {
        self.a_log.iter().map(|v| -v.exp()).collect()
    }
}

/// The prefixes before `in_proj.weight` in a file (one per block), sorted as text.
pub(crate) fn block_prefixes(file: &TensorFile) -> Vec<&str> {
    let mut prefixes: Vec<&str> = file
        .tensors
        .keys()
        .filter_map(|k| k.strip_suffix("in_proj.weight"))
        .collect();
    prefixes.sort_unstable();
    prefixes
}

/// Finds the prefix before `in_proj.weight` when the file holds exactly one block.
fn find_prefix(file: &TensorFile) -> Result<String, ModelError> {
    let prefixes = block_prefixes(file);
    match prefixes.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(ModelError::MissingWeight {
            name: "in_proj.weight".into(),
            hint: " (no tensor name ends with it)".into(),
        }),
        many => Err(ModelError::Config(format!(
            "the file holds {} blocks (prefixes {}); pass the prefix of the one to load",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// A small deterministic generator (SplitMix64) for initialisation.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}
