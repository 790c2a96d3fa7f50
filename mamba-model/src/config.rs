//! `Mamba2Config`: the hyperparameters of a block (SPEC section 6).

use crate::error::ModelError;

/// Hyperparameters of a [`Mamba2Block`](crate::Mamba2Block).
///
/// Defaults follow the seed (`d_model` 192, `d_state` 64) and mamba-ssm (`d_conv` 4,
/// `expand` 2, `headdim` 64, `ngroups` 1, `chunk_size` 256, `rmsnorm_eps` 1e-5).
#[derive(Clone, Debug, PartialEq)]
pub struct Mamba2Config {
    /// Width of the block's input and output.
    pub d_model: usize,
    /// State size `N`.
    pub d_state: usize,
    /// Convolution width `W`.
    pub d_conv: usize,
    /// `d_inner = expand * d_model`.
    pub expand: usize,
    /// Head size `p`.
    pub headdim: usize,
    /// Groups `g` sharing `B` and `C`.
    pub ngroups: usize,
    /// Chunk length of the SSD (changes rounding only).
    pub chunk_size: usize,
    /// Epsilon of the gated RMS norm.
    pub rmsnorm_eps: f32,
    /// Normalise before (true) or after (false) the gate.
    pub norm_before_gate: bool,
    /// Clamp of the step size; `None` is mamba-ssm's `(0, inf)`.
    pub dt_limit: Option<(f32, f32)>,
    /// The convolution has a bias (mamba-ssm default: true).
    pub conv_bias: bool,
    /// The projections have biases (mamba-ssm default: false).
    pub bias: bool,
    /// `D` per channel (h, p) rather than per head (mamba-ssm `D_has_hdim`, default false).
    pub d_has_hdim: bool,
    /// Initialisation: smallest initial step size.
    pub dt_min: f32,
    /// Initialisation: largest initial step size.
    pub dt_max: f32,
    /// Initialisation: floor of the initial step size.
    pub dt_init_floor: f32,
    /// Initialisation: `A = -U(lo, hi)`.
    pub a_init_range: (f32, f32),
}

impl Default for Mamba2Config {
    fn default() -> Self {
        Mamba2Config {
            d_model: 192,
            d_state: 64,
            d_conv: 4,
            expand: 2,
            headdim: 64,
            ngroups: 1,
            chunk_size: 256,
            rmsnorm_eps: 1e-5,
            norm_before_gate: false,
            dt_limit: None,
            conv_bias: true,
            bias: false,
            d_has_hdim: false,
            dt_min: 1e-3,
            dt_max: 0.1,
            dt_init_floor: 1e-4,
            a_init_range: (1.0, 16.0),
        }
    }
}

impl Mamba2Config {
    /// A configuration with the given widths and every other value at its default.
    pub fn new(d_model: usize, d_state: usize) -> Self {
        Mamba2Config {
            d_model,
            d_state,
            ..Default::default()
        }
    }

    /// BSMamba2's published configuration: `d_model` 256, `expand` 4, `d_state` 128.
    pub fn bsmamba2() -> Self {
        Mamba2Config {
            d_model: 256,
            d_state: 128,
            expand: 4,
            ..Default::default()
        }
    }

    /// `expand * d_model`.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }
    /// Heads `h = d_inner / headdim`.
    pub fn nheads(&self) -> usize {
        self.d_inner() / self.headdim
    }
    /// Channels of the convolution: `d_inner + 2 g N`.
    pub fn conv_dim(&self) -> usize {
        self.d_inner() + 2 * self.ngroups * self.d_state
    }
    /// Rows of `in_proj.weight`: `2 d_inner + 2 g N + h`.
    pub fn d_in_proj(&self) -> usize {
        2 * self.d_inner() + 2 * self.ngroups * self.d_state + self.nheads()
    }

    /// Checks that the sizes are positive and divide as they must.
    pub fn validate(&self) -> Result<(), ModelError> {
        let fields = [
            ("d_model", self.d_model),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("expand", self.expand),
            ("headdim", self.headdim),
            ("ngroups", self.ngroups),
            ("chunk_size", self.chunk_size),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(ModelError::Config(format!("{name} must be at least 1")));
            }
        }
        if !self.d_inner().is_multiple_of(self.headdim) {
            return Err(ModelError::Config(format!(
                "d_inner = expand * d_model = {} is not divisible by headdim = {}",
                self.d_inner(),
                self.headdim
            )));
        }
        if !self.nheads().is_multiple_of(self.ngroups) {
            return Err(ModelError::Config(format!(
                "heads = {} is not divisible by ngroups = {}",
                self.nheads(),
                self.ngroups
            )));
        }
        if self.rmsnorm_eps.is_nan() || self.rmsnorm_eps < 0.0 {
            return Err(ModelError::Config("rmsnorm_eps must be >= 0".into()));
        }
        if let Some((lo, hi)) = self.dt_limit {
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(ModelError::Config(format!(
                    "dt_limit ({lo}, {hi}) is not an interval"
                )));
            }
        }
        Ok(())
    }
}
