//! `Mamba2Block` (SPEC section 6): forward, streaming with state, one-step decode.

use std::sync::{Arc, OnceLock};

use mamba_core::abi::BlockConfigC;
use mamba_core::plugin::{BlockGrads, CudaBackend, CudaBlock};
use mamba_core::DType;

use mamba_core::element::convert;
use mamba_core::scratch;
use mamba_core::{
    Activation, Backend, CausalConv1dArgs, CausalConv1dUpdateArgs, ConvLayout, Element, Kernels,
    SelectiveStateUpdateArgs, SsdArgs, Tensor, TensorMut,
};

use crate::backend::{self, BackendKind, Selection};
use crate::config::Mamba2Config;
use crate::error::ModelError;
use crate::linear::{linear, linear_packed, GemmImpl};
use crate::weights::Mamba2Weights;

/// The recurrent state of a block after the last step it processed.
#[derive(Clone, Debug, PartialEq)]
pub struct Mamba2State {
    /// Batch size.
    pub batch: usize,
    /// The last `W-1` inputs of the convolution, (b, conv_dim, W-1).
    pub conv: Vec<f32>,
    /// The SSM state, (b, h, p, N).
    pub ssm: Vec<f32>,
}

impl Mamba2State {
    /// The zero state (the state before any input).
    pub fn zeros(cfg: &Mamba2Config, batch: usize) -> Self {
        Mamba2State {
            batch,
            conv: vec![0.0; batch * cfg.conv_dim() * (cfg.d_conv - 1)],
            ssm: vec![0.0; batch * cfg.nheads() * cfg.headdim * cfg.d_state],
        }
    }

    pub(crate) fn check(&self, cfg: &Mamba2Config, batch: usize) -> Result<(), ModelError> {
        let conv = [batch, cfg.conv_dim(), cfg.d_conv - 1];
        let ssm = [batch, cfg.nheads(), cfg.headdim, cfg.d_state];
        if self.batch != batch || self.conv.len() != conv.iter().product::<usize>() {
            return Err(ModelError::Shape {
                what: "state.conv",
                expected: conv.to_vec(),
                got: vec![self.batch, self.conv.len()],
            });
        }
        if self.ssm.len() != ssm.iter().product::<usize>() {
            return Err(ModelError::Shape {
                what: "state.ssm",
                expected: ssm.to_vec(),
                got: vec![self.batch, self.ssm.len()],
            });
        }
        Ok(())
    }
}

/// One Mamba-2 block: in_proj, causal conv + silu, SSD, gated RMS norm, out_proj.
#[derive(Clone)]
pub struct Mamba2Block {
    cfg: Mamba2Config,
    weights: Mamba2Weights,
    /// `A = -exp(A_log)`, computed once.
    a: Vec<f32>,
    backend: Arc<dyn Backend>,
    kind: BackendKind,
    /// On the CUDA backend: the plugin and this block's weights on the device, one
    /// upload per storage type, made on first use.
    cuda: Option<Arc<DeviceBlocks>>,
    /// On the CUDA backend: `forward_train` / `backward` on the device (default; off
    /// with `MAMBA_BLOCK_TRAIN=host` or [`Mamba2Block::set_device_training`]).
    device_training: bool,
    /// On the device path: `forward_train` keeps its activations on the device for
    /// `backward` (default; off with `MAMBA_BLOCK_TRAIN=recompute` or
    /// [`Mamba2Block::set_keep_activations`]).
    keep_activations: bool,
    /// Names the present weights (unique to them but for clones of this block, which
    /// hold the same): a device optimizer's master copy follows it.
    generation: u64,
    /// The decode step's per-channel constants, made by the first [`step`](Self::step)
    /// after the weights last changed.
    decode: OnceLock<Arc<DecodeConsts>>,
}

/// A, dt_bias and D repeated over the head's channels, as the multi-head
/// `selective_state_update` takes them: (h, p, N), (h, p), (h, p); and on the fast CPU
/// backend the projections' weights packed for the step's few rows.
struct DecodeConsts {
    a: Vec<f32>,
    dt_bias: Vec<f32>,
    d: Vec<f32>,
    proj: Option<DecodeProj>,
}

/// in_proj's three parts (z, xBC, dt rows) and out_proj packed for
/// [`mamba_cpu_simd::matmul_nt_packed`]: vectorised across outputs, so a step of several
/// rows runs at the SGEMM rate instead of ending each output in horizontal sums (a
/// 768-wide block's step at batch 16: its products 2x faster), and one row reads each
/// weight once, in order. As much memory again as the two projections; not made with
/// `MAMBA_DECODE_PACK=0`.
struct DecodeProj {
    in_parts: [mamba_cpu_simd::PackedNt; 3],
    out: mamba_cpu_simd::PackedNt,
}

/// Whether the CPU decode step packs the projections (`MAMBA_DECODE_PACK=0`: no).
fn decode_pack_wanted() -> bool {
    std::env::var("MAMBA_DECODE_PACK").map_or(true, |v| v.trim() != "0")
}

/// `MAMBA_BLOCK_TRAIN`: `host` keeps the block's training passes on the host path
/// (per-kernel uploads, host GEMMs) on the CUDA backend; `recompute` runs them on the
/// device with the backward recomputing the forward's activations (less device memory
/// between the passes); anything else, or unset, runs them on the device with the
/// activations kept. Returns (device training, keep activations).
fn device_training_default() -> (bool, bool) {
    static ON: OnceLock<(bool, bool)> = OnceLock::new();
    *ON.get_or_init(|| {
        let v = std::env::var("MAMBA_BLOCK_TRAIN").unwrap_or_default();
        let v = v.trim();
        (
            !v.eq_ignore_ascii_case("host"),
            !v.eq_ignore_ascii_case("recompute"),
        )
    })
}

/// A number no block's weights had before.
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The slot of [`DeviceBlocks::blocks`] for a storage type (f32 for anything but bf16 and
/// f16).
fn slot_index(dtype: DType) -> usize {
    match dtype {
        DType::BF16 => 1,
        DType::F16 => 2,
        _ => 0,
    }
}

/// The device copies of a block's weights, per storage type.
struct DeviceBlocks {
    backend: &'static CudaBackend,
    blocks: [OnceLock<Result<CudaBlock, mamba_core::Error>>; 3],
}

impl DeviceBlocks {
    /// Overwrites the weights of every device copy made so far in place; a copy that
    /// cannot be (an older plugin, a failed upload, one that failed to be made) is
    /// dropped, to be made again on its next use.
    fn set_weights(&mut self, w: &Mamba2Weights) {
        for slot in &mut self.blocks {
            let keep = match slot.get_mut() {
                Some(Ok(b)) => b.set_weights(&w.plugin_view()).is_ok(),
                Some(Err(_)) => false,
                None => true,
            };
            if !keep {
                *slot = OnceLock::new();
            }
        }
    }
}

impl std::fmt::Debug for Mamba2Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mamba2Block")
            .field("cfg", &self.cfg)
            .field("backend", &self.kind)
            .finish()
    }
}

/// Copies columns `[start, start + width)` of a (rows, stride) matrix into a dense
/// (rows, width) buffer.
fn columns_t<T: Element>(src: &[T], stride: usize, start: usize, width: usize) -> Vec<T> {
    let mut out = scratch::with_capacity(src.len() / stride * width);
    for row in src.chunks_exact(stride) {
        out.extend_from_slice(&row[start..start + width]);
    }
    out
}

impl Mamba2Block {
    /// A block with the given weights on the process-wide backend (`MAMBA_BACKEND`,
    /// default `auto`); the first call in a process prints which backend and why.
    pub fn new(cfg: Mamba2Config, weights: Mamba2Weights) -> Result<Self, ModelError> {
        let sel = backend::default_selection()?;
        Self::with_selection(cfg, weights, sel)
    }

    /// A block with weights initialised as mamba-ssm does, from `seed`.
    pub fn init(cfg: Mamba2Config, seed: u64) -> Result<Self, ModelError> {
        let w = Mamba2Weights::init(&cfg, seed)?;
        Self::new(cfg, w)
    }

    /// A block whose weights are read from a safetensors checkpoint (see
    /// [`Mamba2Weights::from_safetensors`]).
    pub fn from_safetensors(
        path: impl AsRef<std::path::Path>,
        cfg: Mamba2Config,
        prefix: Option<&str>,
    ) -> Result<Self, ModelError> {
        let w = Mamba2Weights::from_safetensors(path, &cfg, prefix)?;
        Self::new(cfg, w)
    }

    /// A block on an explicitly chosen backend.
    pub fn with_selection(
        cfg: Mamba2Config,
        weights: Mamba2Weights,
        sel: &Selection,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        weights.validate(&cfg)?;
        let cuda = match sel.kind {
            BackendKind::Cuda => Some(Arc::new(DeviceBlocks {
                backend: backend::cuda_backend().map_err(|reason| {
                    ModelError::BackendUnavailable {
                        name: "cuda".into(),
                        reason,
                    }
                })?,
                blocks: Default::default(),
            })),
            _ => None,
        };
        Ok(Mamba2Block {
            a: weights.a(),
            cfg,
            weights,
            backend: sel.backend.clone(),
            kind: sel.kind,
            cuda,
            device_training: device_training_default().0,
            keep_activations: device_training_default().1,
            generation: next_generation(),
            decode: OnceLock::new(),
        })
    }

    /// On the CUDA backend, chooses where [`forward_train`](Self::forward_train) and
    /// [`backward`](Self::backward) run: `true` (the default unless
    /// `MAMBA_BLOCK_TRAIN=host`) on the device with one upload and one download per
    /// pass, `false` on the host path (each kernel call uploads its inputs; the
    /// projections' and the norm's backward on the CPU). No effect elsewhere.
    pub fn set_device_training(&mut self, on: bool) {
        self.device_training = on;
    }

    /// On the device training path, chooses what [`forward_train`](Self::forward_train)
    /// keeps for [`backward`](Self::backward): `true` (the default unless
    /// `MAMBA_BLOCK_TRAIN=recompute`) its activations on the device, so the backward
    /// skips one forward's work; they hold (b L) (d_in_proj + conv_dim + 2 d_inner)
    /// elements of the storage type plus the input per tape until the tape is dropped.
    /// `false`: the tape keeps the input only and the backward recomputes the rest.
    /// No effect elsewhere, or with a plugin that predates the saving entries.
    pub fn set_keep_activations(&mut self, on: bool) {
        self.keep_activations = on;
    }

    /// Whether [`forward_train`](Self::forward_train) keeps activations on the device
    /// (see [`set_keep_activations`](Self::set_keep_activations)).
    pub fn keep_activations(&self) -> bool {
        self.keep_activations
    }

    /// Whether the training passes run device-resident (CUDA backend, device training
    /// on, and a configuration the device block supports: no projection biases, D per
    /// head).
    pub fn device_training(&self) -> bool {
        self.trains_on_device(DType::F32)
    }

    pub(crate) fn trains_on_device(&self, dtype: DType) -> bool {
        self.device_training
            && self.cuda.is_some()
            && matches!(dtype, DType::F32 | DType::BF16 | DType::F16)
            && !self.cfg.bias
            && !self.cfg.d_has_hdim
    }

    /// The device block and the plugin for the training passes.
    pub(crate) fn device_train_block(
        &self,
        dtype: DType,
    ) -> Option<(Result<&CudaBlock, ModelError>, &'static CudaBackend)> {
        let backend = self.cuda.as_ref()?.backend;
        Some((self.device_block(dtype)?, backend))
    }

    /// On the CUDA backend, this block on the device for storage type `dtype` (weights
    /// uploaded on the first call): for chaining blocks on device buffers with
    /// [`CudaBlock::forward`], with no host round trip between them. `None` elsewhere.
    pub fn device_block(&self, dtype: DType) -> Option<Result<&CudaBlock, ModelError>> {
        let dev = self.cuda.as_ref()?;
        let slot = &dev.blocks[slot_index(dtype)];
        let code = match dtype {
            DType::BF16 => mamba_core::abi::dtype::BF16,
            DType::F16 => mamba_core::abi::dtype::F16,
            _ => mamba_core::abi::dtype::F32,
        };
        let made = slot.get_or_init(|| {
            let cfg = &self.cfg;
            let w = &self.weights;
            if cfg.bias || cfg.d_has_hdim {
                return Err(mamba_core::Error::unsupported(
                    "cuda",
                    "Mamba2Block",
                    "projection biases or D per channel",
                ));
            }
            let mut c = BlockConfigC::new(cfg.d_model as u32, cfg.d_state as u32);
            c.d_conv = cfg.d_conv as u32;
            c.expand = cfg.expand as u32;
            c.headdim = cfg.headdim as u32;
            c.ngroups = cfg.ngroups as u32;
            c.chunk_size = cfg.chunk_size as u32;
            c.norm_before_gate = cfg.norm_before_gate as u32;
            c.rmsnorm_eps = cfg.rmsnorm_eps;
            if let Some((lo, hi)) = mamba_core::ops::ssd::normalize_dt_limit(cfg.dt_limit) {
                c.has_dt_limit = 1;
                c.dt_lo = lo;
                c.dt_hi = hi;
            }
            c.dtype = code;
            dev.backend.block(&c, &w.plugin_view())
        });
        Some(made.as_ref().map_err(|e| ModelError::Kernel(e.clone())))
    }

    /// The configuration.
    pub fn config(&self) -> &Mamba2Config {
        &self.cfg
    }
    /// The weights.
    pub fn weights(&self) -> &Mamba2Weights {
        &self.weights
    }
    /// Replaces the weights (after an optimiser step, say), checking their shapes.
    /// On the CUDA backend the device copies are overwritten in place when this block
    /// alone holds them (no clone shares them) and the plugin can; otherwise they are
    /// made again on their next use.
    pub fn set_weights(&mut self, mut weights: Mamba2Weights) -> Result<(), ModelError> {
        self.swap_weights(&mut weights)
    }

    /// As [`set_weights`](Self::set_weights), leaving the weights replaced in `weights`
    /// (a training loop fills their memory with the next step's weights instead of
    /// allocating). Nothing changes when `weights` does not fit the configuration.
    pub fn swap_weights(&mut self, weights: &mut Mamba2Weights) -> Result<(), ModelError> {
        weights.validate(&self.cfg)?;
        self.a = weights.a();
        self.decode = OnceLock::new();
        self.generation = next_generation();
        std::mem::swap(&mut self.weights, weights);
        if let Some(dev) = &mut self.cuda {
            match Arc::get_mut(dev) {
                Some(d) => d.set_weights(&self.weights),
                None => {
                    *dev = Arc::new(DeviceBlocks {
                        backend: dev.backend,
                        blocks: Default::default(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Names the present weights (see the field).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes in weights updated on the device: `g` holds them in the device block's
    /// order (in_proj, conv weight, conv bias, dt_bias, A_log, D, norm weight, out_proj),
    /// and the device copy in storage type `dtype` already holds them; the other storage
    /// types' copies are dropped (made again from these weights on their next use).
    /// `g` is left with the previous weights' vectors.
    pub(crate) fn take_device_weights(&mut self, g: &mut BlockGrads, dtype: DType) {
        use std::mem::swap;
        let w = &mut self.weights;
        swap(&mut w.in_proj, &mut g.in_proj);
        swap(&mut w.conv_weight, &mut g.conv_weight);
        if let Some(b) = &mut w.conv_bias {
            swap(b, &mut g.conv_bias);
        }
        swap(&mut w.dt_bias, &mut g.dt_bias);
        swap(&mut w.a_log, &mut g.a_log);
        swap(&mut w.d, &mut g.d);
        swap(&mut w.norm_weight, &mut g.norm_weight);
        swap(&mut w.out_proj, &mut g.out_proj);
        self.a = self.weights.a();
        self.decode = OnceLock::new();
        self.generation = next_generation();
        if let Some(dev) = self.cuda.as_mut().and_then(Arc::get_mut) {
            let keep = slot_index(dtype);
            for (k, slot) in dev.blocks.iter_mut().enumerate() {
                if k != keep {
                    *slot = OnceLock::new();
                }
            }
        }
    }

    /// This block's device copy in storage type `dtype`, held by this block alone (a copy
    /// shared with a clone is left to the clone, and a new one made from the weights).
    pub(crate) fn device_block_mut(
        &mut self,
        dtype: DType,
    ) -> Option<Result<&mut CudaBlock, ModelError>> {
        let dev = self.cuda.as_mut()?;
        if Arc::get_mut(dev).is_none() {
            *dev = Arc::new(DeviceBlocks {
                backend: dev.backend,
                blocks: Default::default(),
            });
        }
        if let Err(e) = self.device_block(dtype)? {
            return Some(Err(e));
        }
        let dev = Arc::get_mut(self.cuda.as_mut()?)?;
        match dev.blocks[slot_index(dtype)].get_mut()? {
            Ok(b) => Some(Ok(b)),
            Err(e) => Some(Err(ModelError::Kernel(e.clone()))),
        }
    }

    /// Which backend runs this block.
    pub fn backend_kind(&self) -> BackendKind {
        self.kind
    }
    /// The backend's kernels.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub(crate) fn gemm(&self) -> GemmImpl {
        match self.kind {
            BackendKind::Reference => GemmImpl::Naive,
            _ => GemmImpl::Blocked,
        }
    }

    /// The zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize) -> Mamba2State {
        Mamba2State::zeros(&self.cfg, batch)
    }

    fn input_dims<T>(&self, input: &Tensor<'_, T>) -> Result<(usize, usize), ModelError> {
        let d = input.dims();
        if d.len() != 3 || d[2] != self.cfg.d_model || d[0] == 0 || d[1] == 0 {
            return Err(ModelError::Shape {
                what: "input (batch, frames, d_model)",
                expected: vec![
                    d.first().copied().unwrap_or(1),
                    d.get(1).copied().unwrap_or(1),
                    self.cfg.d_model,
                ],
                got: d.to_vec(),
            });
        }
        if input.data.len() != d.iter().product::<usize>() {
            return Err(ModelError::Shape {
                what: "input buffer length",
                expected: vec![d.iter().product()],
                got: vec![input.data.len()],
            });
        }
        Ok((d[0], d[1]))
    }

    /// The (batch, frames) of an input, checked together with the state.
    pub(crate) fn checked_dims<T>(
        &self,
        input: &Tensor<'_, T>,
        state: Option<&Mamba2State>,
    ) -> Result<(usize, usize), ModelError> {
        let (batch, seqlen) = self.input_dims(input)?;
        if let Some(s) = state {
            s.check(&self.cfg, batch)?;
        }
        Ok((batch, seqlen))
    }

    /// Forward from the zero state: input (batch, frames, d_model) -> output of the same
    /// shape and the state after the last frame.
    pub fn forward<T: Element>(
        &self,
        input: Tensor<'_, T>,
    ) -> Result<(Vec<T>, Mamba2State), ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        self.forward_with_state(input, None)
    }

    /// Forward continuing from `state` (or from zero): processing a sequence in chunks,
    /// each from the previous chunk's state, equals processing it whole.
    pub fn forward_with_state<T: Element>(
        &self,
        input: Tensor<'_, T>,
        state: Option<&Mamba2State>,
    ) -> Result<(Vec<T>, Mamba2State), ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let (batch, seqlen) = self.checked_dims(&input, state)?;
        if let Some(dev) = self.device_block(T::DTYPE) {
            // The whole block on the GPU: upload, one call, download.
            let blk = dev?;
            let cuda = self
                .cuda
                .as_ref()
                .map(|d| d.backend)
                .expect("device blocks");
            let mut st = state.cloned().unwrap_or_else(|| self.zero_state(batch));
            let inp: Vec<f32> = convert(input.data);
            let mut out = vec![0.0f32; inp.len()];
            blk.forward_host(
                cuda,
                &inp,
                batch,
                seqlen,
                &mut st.conv,
                &mut st.ssm,
                &mut out,
            )?;
            return Ok((T::vec_from_f32(out), st));
        }
        let acts = self.forward_parts(&input, batch, seqlen, state)?;
        let mut acts = acts;
        let out = std::mem::take(&mut acts.out);
        let state = std::mem::replace(&mut acts.state, Mamba2State::zeros(&self.cfg, 0));
        Ok((out, state))
    }

    /// The forward pass, keeping the intermediate activations (used by backward).
    pub(crate) fn forward_parts<T: Element>(
        &self,
        input: &Tensor<'_, T>,
        batch: usize,
        seqlen: usize,
        state: Option<&Mamba2State>,
    ) -> Result<Activations<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let cfg = &self.cfg;
        let w = &self.weights;
        let (di, cd, h, p, g, n) = (
            cfg.d_inner(),
            cfg.conv_dim(),
            cfg.nheads(),
            cfg.headdim,
            cfg.ngroups,
            cfg.d_state,
        );
        let rows = batch * seqlen;
        let u: Vec<f32> = T::as_f32_slice(input.data)
            .map_or_else(|| scratch::convert(input.data), scratch::copy_of);

        // 1. in_proj, straight into z, xBC and dt.
        let (z, xbc, dt) = self.in_proj(&u, rows);
        let (z, xbc, dt): (Vec<T>, Vec<T>, Vec<T>) = (
            T::vec_from_f32(z),
            T::vec_from_f32(xbc),
            T::vec_from_f32(dt),
        );

        // 2. Causal conv + silu over time, channel-last.
        let init = state.map(|s| (s.conv.as_slice(), s.ssm.as_slice()));
        let mut conv_state = vec![0.0f32; batch * cd * (cfg.d_conv - 1)];
        let mut xbc_act = scratch::zeroed::<T>(rows * cd);
        let args = self.conv_args(&xbc, batch, seqlen, init.map(|i| i.0));
        <dyn Backend as Kernels<T>>::causal_conv1d(
            &*self.backend,
            &args,
            &mut xbc_act,
            Some(&mut conv_state),
        )?;

        // 3. Split into x, B, C.
        let x: Vec<T> = columns_t(&xbc_act, cd, 0, di);
        let bm: Vec<T> = columns_t(&xbc_act, cd, di, g * n);
        let cm: Vec<T> = columns_t(&xbc_act, cd, di + g * n, g * n);

        // 4. SSD with D, dt_bias, softplus, dt_limit.
        let mut y = scratch::zeroed::<T>(rows * di);
        let mut ssm_state = vec![0.0f32; batch * h * p * n];
        let args = self.ssd_args(&x, &dt, &bm, &cm, batch, seqlen, init.map(|i| i.1));
        <dyn Backend as Kernels<T>>::ssd(&*self.backend, &args, &mut y, Some(&mut ssm_state))?;

        // 5. Gated RMS norm, 6. out_proj.
        let normed = self.norm(&y, &z, rows);
        let mut out = scratch::for_overwrite::<f32>(rows * cfg.d_model);
        linear(
            self.gemm(),
            &normed,
            rows,
            di,
            &w.out_proj,
            cfg.d_model,
            w.out_proj_bias.as_deref(),
            &mut out,
        );
        Ok(Activations {
            u,
            z,
            xbc,
            dt,
            x,
            bm,
            cm,
            y,
            normed,
            out: T::vec_from_f32(out),
            state: Mamba2State {
                batch,
                conv: conv_state,
                ssm: ssm_state,
            },
        })
    }

    /// in_proj of `rows` rows of `u`, computed straight into its three parts:
    /// `z` (rows, d_inner), `xBC` (rows, conv_dim), `dt` (rows, h).
    pub(crate) fn in_proj(&self, u: &[f32], rows: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        self.in_proj_with(u, rows, None)
    }

    /// The rows of in_proj's three parts: z, xBC and dt, (start, width) each.
    fn in_proj_parts(&self) -> [(usize, usize); 3] {
        let cfg = &self.cfg;
        let (di, cd) = (cfg.d_inner(), cfg.conv_dim());
        [(0, di), (di, cd), (di + cd, cfg.nheads())]
    }

    /// [`in_proj`](Self::in_proj), on the parts packed for the decode step where `packed`
    /// holds them.
    fn in_proj_with(
        &self,
        u: &[f32],
        rows: usize,
        packed: Option<&DecodeProj>,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (cfg, w) = (&self.cfg, &self.weights);
        let dm = cfg.d_model;
        let mut k = 0;
        let mut outs = self.in_proj_parts().map(|(start, width)| {
            let bias = w.in_proj_bias.as_deref().map(|b| &b[start..start + width]);
            // linear / linear_packed write every value.
            let mut o = scratch::for_overwrite::<f32>(rows * width);
            match packed {
                Some(p) => linear_packed(u, rows, &p.in_parts[k], bias, &mut o),
                None => {
                    let rows_w = &w.in_proj[start * dm..(start + width) * dm];
                    linear(self.gemm(), u, rows, dm, rows_w, width, bias, &mut o);
                }
            }
            k += 1;
            o
        });
        let dt = std::mem::take(&mut outs[2]);
        let xbc = std::mem::take(&mut outs[1]);
        let z = std::mem::take(&mut outs[0]);
        (z, xbc, dt)
    }

    /// The gated RMS norm of `y` by `z` (rows, d_inner): the reference's plain loop,
    /// or rows in parallel with the vectorised `exp` on the fast backends.
    pub(crate) fn norm<T: Element>(&self, y: &[T], z: &[T], rows: usize) -> Vec<f32> {
        let cfg = &self.cfg;
        let yf = T::as_f32_slice(y).map_or_else(
            || std::borrow::Cow::Owned(scratch::convert(y)),
            std::borrow::Cow::Borrowed,
        );
        let zf = T::as_f32_slice(z).map_or_else(
            || std::borrow::Cow::Owned(scratch::convert(z)),
            std::borrow::Cow::Borrowed,
        );
        let (di, g, eps, nbg) = (
            cfg.d_inner(),
            cfg.ngroups,
            cfg.rmsnorm_eps,
            cfg.norm_before_gate,
        );
        let out = match self.gemm() {
            GemmImpl::Naive => {
                gated_rmsnorm(&yf, &zf, &self.weights.norm_weight, rows, di, g, eps, nbg)
            }
            GemmImpl::Blocked => {
                gated_rmsnorm_fast(&yf, &zf, &self.weights.norm_weight, rows, di, g, eps, nbg)
            }
        };
        // The f32 copies of 16-bit activations go back to the pool.
        for c in [yf, zf] {
            if let std::borrow::Cow::Owned(v) = c {
                scratch::give(v);
            }
        }
        out
    }

    /// The convolution's arguments for `xbc` (b, L, conv_dim), channel-last, silu.
    pub(crate) fn conv_args<'a, T>(
        &'a self,
        xbc: &'a [T],
        batch: usize,
        seqlen: usize,
        init: Option<&'a [f32]>,
    ) -> CausalConv1dArgs<'a, T> {
        let (cfg, w, cd) = (&self.cfg, &self.weights, self.cfg.conv_dim());
        let mut args = CausalConv1dArgs::new(
            Tensor::new(xbc, [batch, seqlen, cd]),
            Tensor::new(&w.conv_weight, [cd, cfg.d_conv]),
        )
        .with_layout(ConvLayout::ChannelLast)
        .with_activation(Activation::Silu);
        if let Some(b) = &w.conv_bias {
            args = args.with_bias(Tensor::new(b, [cd]));
        }
        if let Some(s) = init {
            args = args.with_initial_states(Tensor::new(s, [batch, cd, cfg.d_conv - 1]));
        }
        args
    }

    /// The SSD's arguments: D, dt_bias, softplus, dt_limit, chunk size, initial state.
    pub(crate) fn ssd_args<'a, T>(
        &'a self,
        x: &'a [T],
        dt: &'a [T],
        bm: &'a [T],
        cm: &'a [T],
        batch: usize,
        seqlen: usize,
        init: Option<&'a [f32]>,
    ) -> SsdArgs<'a, T> {
        let (cfg, w) = (&self.cfg, &self.weights);
        let (h, p, g, n) = (cfg.nheads(), cfg.headdim, cfg.ngroups, cfg.d_state);
        let d: Tensor<'_, f32> = if cfg.d_has_hdim {
            Tensor::new(&w.d, [h, p])
        } else {
            Tensor::new(&w.d, [h])
        };
        let mut args = SsdArgs::new(
            Tensor::new(x, [batch, seqlen, h, p]),
            Tensor::new(dt, [batch, seqlen, h]),
            Tensor::new(&self.a, [h]),
            Tensor::new(bm, [batch, seqlen, g, n]),
            Tensor::new(cm, [batch, seqlen, g, n]),
        )
        .with_d(d)
        .with_dt_bias(Tensor::new(&w.dt_bias, [h]))
        .with_dt_softplus(true)
        .with_chunk_size(cfg.chunk_size);
        args.dt_limit = mamba_core::ops::ssd::normalize_dt_limit(cfg.dt_limit);
        if let Some(s) = init {
            args = args.with_initial_states(Tensor::new(s, [batch, h, p, n]));
        }
        args
    }

    /// One decode step: `x` (batch, d_model) -> (batch, d_model), updating `state`.
    /// Equals the last row of [`forward_with_state`](Self::forward_with_state) on the
    /// sequence so far.
    ///
    /// On the CUDA backend the step runs on the device (the plugin's one-step block
    /// form), copying the frame and the state there and back; `MAMBA_BLOCK_STEP=host`
    /// keeps the projections and the norm on the host. For a stack decoded token by
    /// token, [`Mamba2Stack::decoder`](crate::Mamba2Stack::decoder) keeps the states on
    /// the device instead.
    ///
    /// On the cpu-simd backend the first step after the weights change packs in_proj and
    /// out_proj for the step's products (panels vectorised across outputs: at batch 16
    /// the products run about twice as fast as on the plain weights, at batch 1 a little
    /// faster). The packed copy takes as much memory again as the two projections and
    /// lives until the weights change; `MAMBA_DECODE_PACK=0` steps on the plain weights
    /// instead. Each output is then one multiply-add chain over its inputs, so a row's
    /// result does not depend on the batch it comes in.
    pub fn step<T: Element>(
        &self,
        x: Tensor<'_, T>,
        state: &mut Mamba2State,
    ) -> Result<Vec<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let cfg = &self.cfg;
        let w = &self.weights;
        let d = x.dims();
        if d.len() != 2 || d[1] != cfg.d_model || d[0] == 0 || x.data.len() != d[0] * d[1] {
            return Err(ModelError::Shape {
                what: "step input (batch, d_model)",
                expected: vec![state.batch, cfg.d_model],
                got: d.to_vec(),
            });
        }
        let batch = d[0];
        state.check(cfg, batch)?;
        if let Some(r) = self.device_step(&x, batch, state) {
            return r;
        }
        let (di, cd, h, p, g, n) = (
            cfg.d_inner(),
            cfg.conv_dim(),
            cfg.nheads(),
            cfg.headdim,
            cfg.ngroups,
            cfg.d_state,
        );
        let consts = self.decode.get_or_init(|| {
            let per_channel = |v: &[f32], k: usize| -> Vec<f32> {
                v.iter().flat_map(|&v| std::iter::repeat_n(v, k)).collect()
            };
            let dm = cfg.d_model;
            let proj =
                (self.gemm() == GemmImpl::Blocked && decode_pack_wanted()).then(|| DecodeProj {
                    in_parts: self.in_proj_parts().map(|(start, width)| {
                        let rows_w = &w.in_proj[start * dm..(start + width) * dm];
                        mamba_cpu_simd::PackedNt::new(rows_w, width, dm)
                    }),
                    out: mamba_cpu_simd::PackedNt::new(&w.out_proj, dm, cfg.d_inner()),
                });
            Arc::new(DecodeConsts {
                a: per_channel(&self.a, p * n),
                dt_bias: per_channel(&w.dt_bias, p),
                d: if cfg.d_has_hdim {
                    w.d.clone()
                } else {
                    per_channel(&w.d, p)
                },
                proj,
            })
        });
        let u: Vec<f32> = scratch::convert(x.data);
        let (z, xbc, dt_head) = self.in_proj_with(&u, batch, consts.proj.as_ref());
        let (z, xbc): (Vec<T>, Vec<T>) = (T::vec_from_f32(z), T::vec_from_f32(xbc));

        let mut xbc_act = scratch::zeroed::<T>(batch * cd);
        {
            let mut args = CausalConv1dUpdateArgs::new(
                Tensor::new(&xbc, [batch, cd]),
                Tensor::new(&w.conv_weight, [cd, cfg.d_conv]),
            )
            .with_activation(Activation::Silu);
            if let Some(b) = &w.conv_bias {
                args = args.with_bias(Tensor::new(b, [cd]));
            }
            let st = TensorMut::new(&mut state.conv, [batch, cd, cfg.d_conv - 1]);
            <dyn Backend as Kernels<T>>::causal_conv1d_update(
                &*self.backend,
                &args,
                st,
                &mut xbc_act,
            )?;
        }
        let xs: Vec<T> = columns_t(&xbc_act, cd, 0, di);
        let bm: Vec<T> = columns_t(&xbc_act, cd, di, g * n);
        let cm: Vec<T> = columns_t(&xbc_act, cd, di + g * n, g * n);

        // Mamba-2's per-head A, dt, dt_bias and D, repeated over p.
        let dt: Vec<T> = dt_head
            .iter()
            .flat_map(|&v| std::iter::repeat_n(T::from_f32(v), p))
            .collect();
        let (a_full, dtb, d_full) = (&consts.a, &consts.dt_bias, &consts.d);
        let mut y = scratch::zeroed::<T>(batch * di);
        {
            let mut args = SelectiveStateUpdateArgs::new(
                Tensor::new(&xs, [batch, h, p]),
                Tensor::new(&dt, [batch, h, p]),
                Tensor::new(a_full, [h, p, n]),
                Tensor::new(&bm, [batch, g, n]),
                Tensor::new(&cm, [batch, g, n]),
            )
            .with_d(Tensor::new(d_full, [h, p]))
            .with_dt_bias(Tensor::new(dtb, [h, p]))
            .with_dt_softplus(true);
            args.dt_limit = mamba_core::ops::ssd::normalize_dt_limit(cfg.dt_limit);
            <dyn Backend as Kernels<T>>::selective_state_update(
                &*self.backend,
                &args,
                &mut state.ssm,
                &mut y,
            )?;
        }
        let normed = self.norm(&y, &z, batch);
        let mut out = scratch::zeroed::<f32>(batch * cfg.d_model);
        match &consts.proj {
            Some(pk) => linear_packed(
                &normed,
                batch,
                &pk.out,
                w.out_proj_bias.as_deref(),
                &mut out,
            ),
            None => linear(
                self.gemm(),
                &normed,
                batch,
                di,
                &w.out_proj,
                cfg.d_model,
                w.out_proj_bias.as_deref(),
                &mut out,
            ),
        }
        // The temporaries serve the next step (a decode loop allocates nothing large).
        for v in [z, xbc, xbc_act, xs, bm, cm, dt, y] {
            scratch::give(v);
        }
        for v in [u, dt_head, normed] {
            scratch::give(v);
        }
        let result = convert(&out);
        scratch::give(out);
        Ok(result)
    }
}

impl Mamba2Block {
    /// [`step`](Self::step) on the device, where the block runs there, has a conv state
    /// (`d_conv` > 1) and `MAMBA_BLOCK_STEP` is not `host`; `None` otherwise.
    fn device_step<T: Element>(
        &self,
        x: &Tensor<'_, T>,
        batch: usize,
        state: &mut Mamba2State,
    ) -> Option<Result<Vec<T>, ModelError>> {
        if self.cfg.d_conv < 2 || std::env::var("MAMBA_BLOCK_STEP").as_deref() == Ok("host") {
            return None;
        }
        let blk = self.device_block(T::DTYPE)?;
        let cuda = self.cuda.as_ref()?.backend;
        let run = || -> Result<Vec<T>, ModelError> {
            let inp: Vec<f32> = convert(x.data);
            let mut out = vec![0.0f32; inp.len()];
            blk?.forward_host(
                cuda,
                &inp,
                batch,
                1,
                &mut state.conv,
                &mut state.ssm,
                &mut out,
            )?;
            Ok(T::vec_from_f32(out))
        };
        Some(run())
    }
}

/// Intermediate values of a forward pass, kept for the backward pass.
#[derive(Clone, Debug)]
pub(crate) struct Activations<T: Send + 'static> {
    /// The input in `f32`, (rows, d_model).
    pub u: Vec<f32>,
    /// The gate, (rows, d_inner).
    pub z: Vec<T>,
    /// The convolution's input, (b, L, conv_dim).
    pub xbc: Vec<T>,
    /// The raw step sizes, (b, L, h).
    pub dt: Vec<T>,
    /// The SSD's inputs after conv + silu.
    pub x: Vec<T>,
    pub bm: Vec<T>,
    pub cm: Vec<T>,
    /// The SSD's output, (rows, d_inner).
    pub y: Vec<T>,
    /// The gated norm's output, (rows, d_inner).
    pub normed: Vec<f32>,
    /// The block's output.
    pub out: Vec<T>,
    /// The state after the last step.
    pub state: Mamba2State,
}

impl<T: Send + 'static> Drop for Activations<T> {
    /// The vectors go to the scratch pool, for the next pass of the same shape.
    fn drop(&mut self) {
        scratch::give(std::mem::take(&mut self.u));
        scratch::give(std::mem::take(&mut self.normed));
        for v in [
            &mut self.z,
            &mut self.xbc,
            &mut self.dt,
            &mut self.x,
            &mut self.bm,
            &mut self.cm,
            &mut self.y,
            &mut self.out,
        ] {
            scratch::give(std::mem::take(v));
        }
    }
}

/// [`gated_rmsnorm`] with rows in parallel and a vectorised `exp` for the gate.
pub(crate) fn gated_rmsnorm_fast(
    y: &[f32],
    z: &[f32],
    weight: &[f32],
    rows: usize,
    di: usize,
    groups: usize,
    eps: f32,
    norm_before_gate: bool,
) -> Vec<f32> {
    use rayon::prelude::*;
    let gs = di / groups;
    let level = mamba_cpu_simd::simd::SimdLevel::best();
    let mut out = scratch::for_overwrite::<f32>(rows * di);
    // Rows in blocks, so each task amortises its scratch buffer.
    let block = 16;
    out.par_chunks_mut(block * di)
        .enumerate()
        .for_each(|(bi, chunk)| {
            // Compiled for the best instruction set (the same arithmetic, wider).
            mamba_cpu_simd::vectorized(
                level,
                #[inline(always)]
                move || {
                    let r0 = bi * block;
                    let n = chunk.len();
                    let (yb, zb) = (&y[r0 * di..r0 * di + n], &z[r0 * di..r0 * di + n]);
                    // The gate silu(z) = z / (1 + e^-z).
                    let neg: Vec<f32> = zb.iter().map(|v| -v).collect();
                    let mut gate = vec![0.0f32; n];
                    if mamba_cpu_simd::simd_exp(level, &neg, &mut gate).is_none() {
                        gate.iter_mut().zip(&neg).for_each(|(o, v)| *o = v.exp());
                    }
                    gate.iter_mut()
                        .zip(zb)
                        .for_each(|(e, zv)| *e = zv / (1.0 + *e));
                    for (k, ((o, yg), gg)) in chunk
                        .chunks_exact_mut(gs)
                        .zip(yb.chunks_exact(gs))
                        .zip(gate.chunks_exact(gs))
                        .enumerate()
                    {
                        let wg = &weight[(k % groups) * gs..(k % groups + 1) * gs];
                        if norm_before_gate {
                            let ms = yg.iter().map(|&a| a * a).sum::<f32>() / gs as f32;
                            let inv = 1.0 / (ms + eps).sqrt();
                            for e in 0..gs {
                                o[e] = yg[e] * inv * wg[e] * gg[e];
                            }
                        } else {
                            for e in 0..gs {
                                o[e] = yg[e] * gg[e];
                            }
                            let ms = o.iter().map(|&a| a * a).sum::<f32>() / gs as f32;
                            let inv = 1.0 / (ms + eps).sqrt();
                            for e in 0..gs {
                                o[e] *= inv * wg[e];
                            }
                        }
                    }
                },
            )
        });
    out
}

/// SPEC 6 step 5: RMS norm per group of `d_inner / g` channels, gated by `silu(z)`
/// after (`norm_before_gate = false`) or before normalising.
pub(crate) fn gated_rmsnorm(
    y: &[f32],
    z: &[f32],
    weight: &[f32],
    rows: usize,
    di: usize,
    groups: usize,
    eps: f32,
    norm_before_gate: bool,
) -> Vec<f32> {
    let gs = di / groups;
    let mut out = vec![0.0f32; rows * di];
    let silu = |v: f32| v / (1.0 + (-v).exp());
    for r in 0..rows {
        for k in 0..groups {
            let range = r * di + k * gs..r * di + (k + 1) * gs;
            let v: Vec<f32> = if norm_before_gate {
                y[range.clone()].to_vec()
            } else {
                y[range.clone()]
                    .iter()
                    .zip(&z[range.clone()])
                    .map(|(&a, &b)| a * silu(b))
                    .collect()
            };
            let ms = v.iter().map(|&a| a as f64 * a as f64).sum::<f64>() / gs as f64;
            let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
            for (e, idx) in range.enumerate() {
                let mut o = v[e] * inv * weight[k * gs + e];
                if norm_before_gate {
                    o *= silu(z[idx]);
                }
                out[idx] = o;
            }
        }
    }
    out
}
