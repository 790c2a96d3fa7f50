//! Training: `Mamba2Block::forward_train` keeps what the backward pass needs, and
//! `Mamba2Block::backward` returns the gradients of the input, every parameter and the
//! initial state. AdamW for the training example and for users.

use std::sync::Arc;

use mamba_core::element::convert;
use mamba_core::plugin::{BlockGrads, BlockSaved};
use mamba_core::scratch;
use mamba_core::{Backend, Element, Kernels, Tensor};

use crate::block::{Activations, Mamba2Block, Mamba2State};
use crate::error::ModelError;
use crate::linear::{linear_backward, GemmImpl};
use crate::weights::Mamba2Weights;

/// What [`Mamba2Block::forward_train`] keeps for [`Mamba2Block::backward`].
#[derive(Clone, Debug)]
pub struct Mamba2Tape<T: Send + 'static> {
    kind: TapeKind<T>,
    batch: usize,
    seqlen: usize,
    init: Option<Mamba2State>,
}

/// The host path keeps every activation; the device path keeps, when the block keeps
/// activations, the input and the forward's activations on the device (`input` is then
/// empty), else the input on the host (the plugin's backward recomputes the rest).
#[derive(Clone, Debug)]
enum TapeKind<T: Send + 'static> {
    Host(Activations<T>),
    Device {
        input: Vec<f32>,
        out: Vec<T>,
        state: Mamba2State,
        saved: Option<Arc<BlockSaved>>,
    },
}

impl<T: Send + 'static> Mamba2Tape<T> {
    /// The block's output of this forward pass.
    pub fn output(&self) -> &[T] {
        match &self.kind {
            TapeKind::Host(a) => &a.out,
            TapeKind::Device { out, .. } => out,
        }
    }
    /// The state after the last step.
    pub fn state(&self) -> &Mamba2State {
        match &self.kind {
            TapeKind::Host(a) => &a.state,
            TapeKind::Device { state, .. } => state,
        }
    }
    /// `true` when this pass ran on the device-resident training path (its backward
    /// runs on the GPU too).
    pub fn on_device(&self) -> bool {
        matches!(self.kind, TapeKind::Device { .. })
    }
    /// Bytes of device memory this tape holds (the kept input and activations; 0 on
    /// the host path or when the block recomputes them).
    pub fn device_bytes(&self) -> usize {
        match &self.kind {
            TapeKind::Device { saved: Some(s), .. } => s.bytes(),
            _ => 0,
        }
    }
}

/// Gradients of `sum(dout * out) + <dstate, state>` for one block.
#[derive(Clone, Debug)]
pub struct Mamba2Grads<T> {
    /// With respect to the input, (batch, frames, d_model).
    pub input: Vec<T>,
    /// With respect to every parameter, in the weights' own layout (`a_log` is the
    /// gradient with respect to `A_log`).
    pub weights: Mamba2Weights,
    /// With respect to the initial state, when one was given.
    pub initial_state: Option<Mamba2State>,
}

impl Mamba2Block {
    /// Forward that keeps the activations for [`backward`](Self::backward).
    pub fn forward_train<T: Element>(
        &self,
        input: Tensor<'_, T>,
        state: Option<&Mamba2State>,
    ) -> Result<Mamba2Tape<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let (batch, seqlen) = self.checked_dims(&input, state)?;
        if self.trains_on_device(T::DTYPE) {
            if let Some(tape) = self.forward_train_saving(&input, batch, seqlen, state)? {
                return Ok(tape);
            }
            // The device route of the forward; the backward recomputes on the device.
            let (out, st) = self.forward_with_state(input, state)?;
            return Ok(Mamba2Tape {
                kind: TapeKind::Device {
                    input: convert(input.data),
                    out,
                    state: st,
                    saved: None,
                },
                batch,
                seqlen,
                init: state.cloned(),
            });
        }
        let acts = self.forward_parts(&input, batch, seqlen, state)?;
        Ok(Mamba2Tape {
            kind: TapeKind::Host(acts),
            batch,
            seqlen,
            init: state.cloned(),
        })
    }

    /// The device forward that keeps its activations on the device, where the block
    /// keeps them and the plugin can; `None` otherwise.
    fn forward_train_saving<T: Element>(
        &self,
        input: &Tensor<'_, T>,
        batch: usize,
        seqlen: usize,
        state: Option<&Mamba2State>,
    ) -> Result<Option<Mamba2Tape<T>>, ModelError> {
        if !self.keep_activations() {
            return Ok(None);
        }
        let Some((blk, cuda)) = self.device_train_block(T::DTYPE) else {
            return Ok(None);
        };
        let blk = blk?;
        if !blk.has_saving() {
            return Ok(None);
        }
        let mut st = state.cloned().unwrap_or_else(|| self.zero_state(batch));
        // An f32 input is read in place; the tape keeps no host copy (the device one
        // serves the backward).
        let owned: Vec<f32>;
        let inp: &[f32] = match T::as_f32_slice(input.data) {
            Some(v) => v,
            None => {
                owned = convert(input.data);
                &owned
            }
        };
        let mut out = vec![0.0f32; inp.len()];
        let saved = blk.forward_train_host(
            cuda,
            inp,
            batch,
            seqlen,
            &mut st.conv,
            &mut st.ssm,
            &mut out,
        )?;
        Ok(Some(Mamba2Tape {
            kind: TapeKind::Device {
                input: Vec::new(),
                out: T::vec_from_f32(out),
                state: st,
                saved: Some(Arc::new(saved)),
            },
            batch,
            seqlen,
            init: state.cloned(),
        }))
    }

    /// Backward through the block: given `dout` (the upstream gradient of the output)
    /// and optionally `dstate` (of the final state), the gradients of the input, every
    /// parameter and the initial state.
    pub fn backward<T: Element>(
        &self,
        tape: &Mamba2Tape<T>,
        dout: &[T],
        dstate: Option<&Mamba2State>,
    ) -> Result<Mamba2Grads<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let (batch, seqlen) = (tape.batch, tape.seqlen);
        let dm = self.config().d_model;
        if dout.len() != batch * seqlen * dm {
            return Err(ModelError::Shape {
                what: "dout (batch, frames, d_model)",
                expected: vec![batch, seqlen, dm],
                got: vec![dout.len()],
            });
        }
        if let Some(ds) = dstate {
            let st = tape.state();
            if ds.batch != batch || ds.conv.len() != st.conv.len() || ds.ssm.len() != st.ssm.len() {
                return Err(ModelError::Shape {
                    what: "dstate",
                    expected: vec![batch, st.conv.len(), st.ssm.len()],
                    got: vec![ds.batch, ds.conv.len(), ds.ssm.len()],
                });
            }
        }
        match &tape.kind {
            TapeKind::Host(acts) => self.backward_host(acts, tape, dout, dstate),
            TapeKind::Device { input, saved, .. } => {
                match self.backward_device(input, saved.as_deref(), tape, dout, dstate) {
                    // An older plugin without the block's backward: the host path.
                    Err(ModelError::Kernel(mamba_core::Error::Unsupported { .. })) => {
                        let t: Vec<T> = convert(input);
                        let acts = self.forward_parts(
                            &Tensor::new(&t, [batch, seqlen, dm]),
                            batch,
                            seqlen,
                            tape.init.as_ref(),
                        )?;
                        self.backward_host(&acts, tape, dout, dstate)
                    }
                    other => other,
                }
            }
        }
    }

    /// The backward of the device-resident path: one plugin call.
    fn backward_device<T: Element>(
        &self,
        input: &[f32],
        saved: Option<&BlockSaved>,
        tape: &Mamba2Tape<T>,
        dout: &[T],
        dstate: Option<&Mamba2State>,
    ) -> Result<Mamba2Grads<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let (blk, cuda) = self.device_train_block(T::DTYPE).ok_or_else(|| {
            ModelError::Kernel(mamba_core::Error::unsupported(
                "cuda",
                "Mamba2Block backward",
                "no device block",
            ))
        })?;
        let blk = blk?;
        let owned: Vec<f32>;
        let dout32: &[f32] = match T::as_f32_slice(dout) {
            Some(v) => v,
            None => {
                owned = convert(dout);
                &owned
            }
        };
        let init = tape
            .init
            .as_ref()
            .map(|s| (s.conv.as_slice(), s.ssm.as_slice()));
        let dfinal = dstate.map(|s| (s.conv.as_slice(), s.ssm.as_slice()));
        let mut g = match saved {
            Some(sv) => blk.backward_host_saved(cuda, sv, dout32, init, dfinal)?,
            None => {
                blk.backward_host(cuda, input, dout32, tape.batch, tape.seqlen, init, dfinal)?
            }
        };
        let initial_state = tape.init.as_ref().map(|_| Mamba2State {
            batch: tape.batch,
            conv: g.conv_init.clone().unwrap_or_default(),
            ssm: g.ssm_init.clone().unwrap_or_default(),
        });
        let input = T::vec_from_f32(std::mem::take(&mut g.input));
        Ok(Mamba2Grads {
            input,
            weights: self.weights_from_grads(g),
            initial_state,
        })
    }

    /// The device block's parameter gradients in the weights' own layout (a block on
    /// the device has no projection biases; no conv-bias gradient without a conv bias).
    pub(crate) fn weights_from_grads(&self, g: BlockGrads) -> Mamba2Weights {
        Mamba2Weights {
            in_proj: g.in_proj,
            in_proj_bias: None,
            conv_weight: g.conv_weight,
            conv_bias: self.weights().conv_bias.as_ref().map(|_| g.conv_bias),
            dt_bias: g.dt_bias,
            a_log: g.a_log,
            d: g.d,
            norm_weight: g.norm_weight,
            out_proj: g.out_proj,
            out_proj_bias: None,
        }
    }

    /// The backward on the host from the kept activations.
    fn backward_host<T: Element>(
        &self,
        acts: &Activations<T>,
        tape: &Mamba2Tape<T>,
        dout: &[T],
        dstate: Option<&Mamba2State>,
    ) -> Result<Mamba2Grads<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let cfg = self.config();
        let w = self.weights();
        let (batch, seqlen) = (tape.batch, tape.seqlen);
        let rows = batch * seqlen;
        let (dm, di, cd, h, g, n) = (
            cfg.d_model,
            cfg.d_inner(),
            cfg.conv_dim(),
            cfg.nheads(),
            cfg.ngroups,
            cfg.d_state,
        );
        let dip = cfg.d_in_proj();
        let mut gw = Mamba2Weights {
            in_proj: vec![0.0; w.in_proj.len()],
            in_proj_bias: w.in_proj_bias.as_ref().map(|b| vec![0.0; b.len()]),
            conv_weight: vec![0.0; w.conv_weight.len()],
            conv_bias: w.conv_bias.as_ref().map(|b| vec![0.0; b.len()]),
            dt_bias: vec![0.0; w.dt_bias.len()],
            a_log: vec![0.0; w.a_log.len()],
            d: vec![0.0; w.d.len()],
            norm_weight: vec![0.0; w.norm_weight.len()],
            out_proj: vec![0.0; w.out_proj.len()],
            out_proj_bias: w.out_proj_bias.as_ref().map(|b| vec![0.0; b.len()]),
        };

        // 6. out_proj.
        let dout32 = f32_view(dout);
        let mut dnormed = scratch::for_overwrite::<f32>(rows * di);
        linear_backward(
            self.gemm(),
            &acts.normed,
            rows,
            di,
            &w.out_proj,
            dm,
            &dout32,
            &mut dnormed,
            &mut gw.out_proj,
            gw.out_proj_bias.as_deref_mut(),
        );

        // 5. Gated RMS norm.
        let y = f32_view(&acts.y);
        let z = f32_view(&acts.z);
        let norm_backward = match self.gemm() {
            GemmImpl::Naive => gated_rmsnorm_backward,
            GemmImpl::Blocked => gated_rmsnorm_backward_fast,
        };
        let (dy, dz) = norm_backward(
            &y,
            &z,
            &w.norm_weight,
            &dnormed,
            rows,
            di,
            g,
            cfg.rmsnorm_eps,
            cfg.norm_before_gate,
            &mut gw.norm_weight,
        );
        scratch::give(dnormed);

        // 4. SSD.
        let init = tape
            .init
            .as_ref()
            .map(|s| (s.conv.as_slice(), s.ssm.as_slice()));
        let args = self.ssd_args(
            &acts.x,
            &acts.dt,
            &acts.bm,
            &acts.cm,
            batch,
            seqlen,
            init.map(|i| i.1),
        );
        let dy_t: Vec<T> = T::vec_from_f32(dy);
        let sg = <dyn Backend as Kernels<T>>::ssd_backward(
            &**self.backend(),
            &args,
            &dy_t,
            dstate.map(|s| s.ssm.as_slice()),
        )?;
        scratch::give(dy_t);
        let a = self.weights().a();
        for j in 0..h {
            // A = -exp(A_log): dA/dA_log = A.
            gw.a_log[j] = sg.a[j] * a[j];
        }
        gw.dt_bias = sg.dt_bias.clone().unwrap_or_else(|| vec![0.0; h]);
        gw.d = sg.d.clone().unwrap_or_else(|| vec![0.0; w.d.len()]);

        // 3. The gradient of the conv's output: [dx | dB | dC] per row.
        let gn = g * n;
        let mut dxbc_act = scratch::for_overwrite::<T>(rows * cd);
        for r in 0..rows {
            let row = &mut dxbc_act[r * cd..(r + 1) * cd];
            row[..di].copy_from_slice(&sg.x[r * di..(r + 1) * di]);
            row[di..di + gn].copy_from_slice(&sg.b[r * gn..(r + 1) * gn]);
            row[di + gn..].copy_from_slice(&sg.c[r * gn..(r + 1) * gn]);
        }

        // 2. Conv + silu.
        let cargs = self.conv_args(&acts.xbc, batch, seqlen, init.map(|i| i.0));
        let cgr = <dyn Backend as Kernels<T>>::causal_conv1d_backward(
            &**self.backend(),
            &cargs,
            &dxbc_act,
            dstate.map(|s| s.conv.as_slice()),
        )?;
        scratch::give(dxbc_act);
        gw.conv_weight = cgr.weight.clone();
        if let Some(b) = gw.conv_bias.as_mut() {
            *b = cgr.bias.clone().unwrap_or_else(|| vec![0.0; cd]);
        }

        // 1. in_proj: d zxbcdt = [dz | dxbc | ddt].
        let mut dzx = scratch::for_overwrite::<f32>(rows * dip);
        for r in 0..rows {
            let row = &mut dzx[r * dip..(r + 1) * dip];
            row[..di].copy_from_slice(&dz[r * di..(r + 1) * di]);
            for (o, v) in row[di..di + cd]
                .iter_mut()
                .zip(&cgr.x[r * cd..(r + 1) * cd])
            {
                *o = v.to_f32();
            }
            for (o, v) in row[di + cd..].iter_mut().zip(&sg.dt[r * h..(r + 1) * h]) {
                *o = v.to_f32();
            }
        }
        scratch::give(dz);
        let mut du = scratch::for_overwrite::<f32>(rows * dm);
        linear_backward(
            self.gemm(),
            &acts.u,
            rows,
            dm,
            &w.in_proj,
            dip,
            &dzx,
            &mut du,
            &mut gw.in_proj,
            gw.in_proj_bias.as_deref_mut(),
        );
        scratch::give(dzx);

        let initial_state = tape.init.as_ref().map(|_| Mamba2State {
            batch,
            conv: cgr.initial_states.unwrap_or_default(),
            ssm: sg.initial_states.unwrap_or_default(),
        });
        // The kernels' gradients go to the scratch pool for the next backward.
        for v in [sg.x, sg.b, sg.c, sg.dt, cgr.x] {
            scratch::give(v);
        }
        Ok(Mamba2Grads {
            input: T::vec_from_f32(du),
            weights: gw,
            initial_state,
        })
    }
}

/// `v` as `f32`: borrowed where it is `f32` already, else converted.
fn f32_view<T: Element>(v: &[T]) -> std::borrow::Cow<'_, [f32]> {
    T::as_f32_slice(v).map_or_else(
        || std::borrow::Cow::Owned(convert(v)),
        std::borrow::Cow::Borrowed,
    )
}

/// Rows per task of [`gated_rmsnorm_backward`]: fixed, so that the norm weight's
/// gradient is summed in the same order whatever the number of threads.
const NORM_ROWS_PER_TASK: usize = 32;

/// Backward of [`gated_rmsnorm`](crate::block::gated_rmsnorm): returns `(dy, dz)` and
/// adds the norm weight's gradient to `dweight`. Rows run in parallel, in tasks of
/// [`NORM_ROWS_PER_TASK`] rows whose partial weight gradients (f64) are added in task
/// order.
pub(crate) fn gated_rmsnorm_backward(
    y: &[f32],
    z: &[f32],
    weight: &[f32],
    dout: &[f32],
    rows: usize,
    di: usize,
    groups: usize,
    eps: f32,
    norm_before_gate: bool,
    dweight: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let gs = di / groups;
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    // Every value is written below.
    let mut dy = mamba_core::scratch::for_overwrite::<f32>(rows * di);
    let mut dz = mamba_core::scratch::for_overwrite::<f32>(rows * di);
    let chunk = NORM_ROWS_PER_TASK * di.max(1);
    let partials: Vec<Vec<f64>> = dy
        .par_chunks_mut(chunk)
        .zip(dz.par_chunks_mut(chunk))
        .enumerate()
        .map(|(task, (dy, dz))| {
            let r0 = task * NORM_ROWS_PER_TASK;
            let mut dw = vec![0.0f64; di];
            // v is what is normalised; g the gradient arriving at the normalised value
            // times the weight, per element.
            let mut v = vec![0.0f32; gs];
            let mut gvals = vec![0.0f64; gs];
            // sigmoid(z) once per element (silu and its derivative both use it).
            let mut sg = vec![0.0f32; gs];
            for lr in 0..dy.len() / di.max(1) {
                let r = r0 + lr;
                for k in 0..groups {
                    let base = r * di + k * gs;
                    let lbase = lr * di + k * gs;
                    let zg = &z[base..base + gs];
                    for (s, &zv) in sg.iter_mut().zip(zg) {
                        *s = sig(zv);
                    }
                    let silu = |e: usize| zg[e] * sg[e];
                    let silu_grad = |e: usize| {
                        let s = sg[e];
                        s * (1.0 + zg[e] * (1.0 - s))
                    };
                    for (e, ve) in v.iter_mut().enumerate() {
                        let i = base + e;
                        *ve = if norm_before_gate {
                            y[i]
                        } else {
                            y[i] * silu(e)
                        };
                    }
                    let ms = v.iter().map(|&a| a as f64 * a as f64).sum::<f64>() / gs as f64;
                    let rinv = 1.0 / (ms + eps as f64).sqrt();
                    for (e, gv) in gvals.iter_mut().enumerate() {
                        let i = base + e;
                        let gate = if norm_before_gate {
                            silu(e) as f64
                        } else {
                            1.0
                        };
                        *gv = dout[i] as f64 * gate * weight[k * gs + e] as f64;
                    }
                    let dot: f64 = gvals.iter().zip(&v).map(|(&gv, &vv)| gv * vv as f64).sum();
                    for e in 0..gs {
                        let i = base + e;
                        let vv = v[e] as f64;
                        let normed = vv * rinv;
                        let gate = if norm_before_gate {
                            silu(e) as f64
                        } else {
                            1.0
                        };
                        dw[k * gs + e] += dout[i] as f64 * gate * normed;
                        let dv = rinv * gvals[e] - vv * rinv * rinv * rinv * dot / gs as f64;
                        if norm_before_gate {
                            dy[lbase + e] = dv as f32;
                            let out_pre = normed * weight[k * gs + e] as f64;
                            dz[lbase + e] = (dout[i] as f64 * out_pre * silu_grad(e) as f64) as f32;
                        } else {
                            dy[lbase + e] = (dv * silu(e) as f64) as f32;
                            dz[lbase + e] = (dv * y[i] as f64 * silu_grad(e) as f64) as f32;
                        }
                    }
                }
            }
            dw
        })
        .collect();
    add_task_partials(&partials, dweight);
    (dy, dz)
}

/// The sum of `f(i)` for `i < n`, in 16 interleaved `f32` partial sums (which the
/// compiler keeps in vector registers), added at the end in `f64`.
#[inline(always)]
fn sum16(n: usize, f: impl Fn(usize) -> f32) -> f64 {
    let mut acc = [0.0f32; 16];
    let full = n - n % 16;
    for i0 in (0..full).step_by(16) {
        for (k, a) in acc.iter_mut().enumerate() {
            *a += f(i0 + k);
        }
    }
    let mut total: f64 = acc.iter().map(|&a| a as f64).sum();
    for i in full..n {
        total += f(i) as f64;
    }
    total
}

/// Adds the tasks' partial weight gradients (f64) to `dweight`, summed in task order.
fn add_task_partials(partials: &[Vec<f64>], dweight: &mut [f32]) {
    let mut dw = vec![0.0f64; dweight.len()];
    for p in partials {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
    for (d, v) in dweight.iter_mut().zip(dw) {
        *d += v as f32;
    }
}

/// [`gated_rmsnorm_backward`] for the fast backends: the gate's exponentials
/// vectorised, the per-element work in `f32` (the two sums per group in 16 `f32`
/// partial sums each, the weight gradient still accumulated in `f64`), within ~1e-6
/// of the `f64` version. The same tasks, so the weight gradient is summed in the same
/// order whatever the number of threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gated_rmsnorm_backward_fast(
    y: &[f32],
    z: &[f32],
    weight: &[f32],
    dout: &[f32],
    rows: usize,
    di: usize,
    groups: usize,
    eps: f32,
    norm_before_gate: bool,
    dweight: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let gs = di / groups;
    let level = mamba_cpu_simd::SimdLevel::best();
    // Every value is written below.
    let mut dy = mamba_core::scratch::for_overwrite::<f32>(rows * di);
    let mut dz = mamba_core::scratch::for_overwrite::<f32>(rows * di);
    let chunk = NORM_ROWS_PER_TASK * di.max(1);
    let partials: Vec<Vec<f64>> = dy
        .par_chunks_mut(chunk)
        .zip(dz.par_chunks_mut(chunk))
        .enumerate()
        .map(|(task, (dy, dz))| {
            // Compiled for the best instruction set (the same arithmetic, wider).
            mamba_cpu_simd::vectorized(
                level,
                #[inline(always)]
                move || {
                    let e0 = task * chunk;
                    let n = dy.len();
                    let (yb, zb, db) = (&y[e0..e0 + n], &z[e0..e0 + n], &dout[e0..e0 + n]);
                    // sigmoid(z) for the task's rows, then silu(z) = z sigmoid(z).
                    let neg: Vec<f32> = zb.iter().map(|v| -v).collect();
                    let mut sg = vec![0.0f32; n];
                    if mamba_cpu_simd::simd_exp(level, &neg, &mut sg).is_none() {
                        sg.iter_mut().zip(&neg).for_each(|(o, v)| *o = v.exp());
                    }
                    sg.iter_mut().for_each(|e| *e = 1.0 / (1.0 + *e));
                    let mut dw = vec![0.0f64; di];
                    // What is normalised, and the gradient at the normalised value times the
                    // weight, per element of a group.
                    let mut v = vec![0.0f32; gs];
                    let mut gv = vec![0.0f32; gs];
                    for (base, ((dyg, dzg), ((yg, zg), (sgg, dg)))) in dy
                        .chunks_exact_mut(gs)
                        .zip(dz.chunks_exact_mut(gs))
                        .zip(
                            yb.chunks_exact(gs)
                                .zip(zb.chunks_exact(gs))
                                .zip(sg.chunks_exact(gs).zip(db.chunks_exact(gs))),
                        )
                        .enumerate()
                        .map(|(k, x)| (k % groups * gs, x))
                    {
                        let wg = &weight[base..base + gs];
                        let dwg = &mut dw[base..base + gs];
                        if norm_before_gate {
                            v.copy_from_slice(yg);
                            for e in 0..gs {
                                gv[e] = dg[e] * (zg[e] * sgg[e]) * wg[e];
                            }
                        } else {
                            for e in 0..gs {
                                v[e] = yg[e] * (zg[e] * sgg[e]);
                                gv[e] = dg[e] * wg[e];
                            }
                        }
                        let ms = sum16(gs, |e| v[e] * v[e]) / gs as f64;
                        let rinv64 = 1.0 / (ms + eps as f64).sqrt();
                        let dot = sum16(gs, |e| gv[e] * v[e]);
                        let rinv = rinv64 as f32;
                        let c = (rinv64 * rinv64 * rinv64 * dot / gs as f64) as f32;
                        for e in 0..gs {
                            let (s, zv) = (sgg[e], zg[e]);
                            let silu_grad = s * (1.0 + zv * (1.0 - s));
                            let normed = v[e] * rinv;
                            let dv = rinv * gv[e] - v[e] * c;
                            if norm_before_gate {
                                let gate = zv * s;
                                dwg[e] += (dg[e] * gate * normed) as f64;
                                dyg[e] = dv;
                                dzg[e] = dg[e] * normed * wg[e] * silu_grad;
                            } else {
                                dwg[e] += (dg[e] * normed) as f64;
                                dyg[e] = dv * (zv * s);
                                dzg[e] = dv * yg[e] * silu_grad;
                            }
                        }
                    }
                    dw
                },
            )
        })
        .collect();
    add_task_partials(&partials, dweight);
    (dy, dz)
}

/// A chunk of one tensor for an AdamW update: ((parameters, gradients), m, v).
type AdamWChunk<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// AdamW (decoupled weight decay), as `torch.optim.AdamW`.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    step: u32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl AdamW {
    /// AdamW with PyTorch's defaults but the given learning rate.
    pub fn new(lr: f32) -> Self {
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Counts one more update and returns its number (1 first).
    pub(crate) fn next_step(&mut self) -> u32 {
        self.step += 1;
        self.step
    }

    /// `(1 - beta1^t, 1 - beta2^t)`.
    pub(crate) fn bias_corrections(&self, t: u32) -> (f32, f32) {
        let t = t as i32;
        (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t))
    }

    /// Updates done so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// The moments (first, second), one vector per parameter tensor in the order of
    /// [`step`](Self::step)'s lists; empty before the first update.
    pub(crate) fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.m, &self.v)
    }

    /// Sets the step count and the moments (empty: as before the first update).
    pub(crate) fn set_state(&mut self, step: u32, m: Vec<Vec<f32>>, v: Vec<Vec<f32>>) {
        self.step = step;
        self.m = m;
        self.v = v;
    }

    /// Gives up the moments (the step count stays), as when they move to the device.
    pub(crate) fn clear_moments(&mut self) {
        self.m = Vec::new();
        self.v = Vec::new();
    }

    /// One update of every parameter tensor from its gradient; the lists must keep the
    /// same order and lengths from step to step.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        assert_eq!(
            params.len(),
            grads.len(),
            "one gradient per parameter tensor"
        );
        if self.m.is_empty() {
            self.m = params.iter().map(|p| vec![0.0; p.len()]).collect();
            self.v = params.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        let t = self.next_step();
        let (bc1, bc2) = self.bias_corrections(t);
        let (lr, wd, beta1, beta2, eps) =
            (self.lr, self.weight_decay, self.beta1, self.beta2, self.eps);
        // Element by element in this order, each operation rounded on its own (the
        // device kernel `adamw_f32` matches it bit for bit); large tensors in parallel
        // chunks, which changes nothing in the result.
        let update = |(((p, g), m), v): AdamWChunk<'_>| {
            for j in 0..p.len() {
                p[j] *= 1.0 - lr * wd;
                m[j] = beta1 * m[j] + (1.0 - beta1) * g[j];
                v[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j];
                let mh = m[j] / bc1;
                let vh = v[j] / bc2;
                p[j] -= lr * mh / (vh.sqrt() + eps);
            }
        };
        const CHUNK: usize = 1 << 14;
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            assert!(
                g.len() == p.len() && m.len() == p.len(),
                "tensor {i}: {} parameters, {} gradients, {} moments",
                p.len(),
                g.len(),
                m.len()
            );
            if p.len() >= 2 * CHUNK {
                use rayon::prelude::*;
                p.par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(update);
            } else {
                update((((&mut **p, *g), &mut m[..]), &mut v[..]));
            }
        }
    }
}

impl Mamba2Weights {
    /// Every parameter tensor, in a fixed order (for optimisers).
    pub fn tensors_mut(&mut self) -> Vec<&mut [f32]> {
        let mut v: Vec<&mut [f32]> = vec![
            &mut self.in_proj,
            &mut self.conv_weight,
            &mut self.dt_bias,
            &mut self.a_log,
            &mut self.d,
            &mut self.norm_weight,
            &mut self.out_proj,
        ];
        for b in [
            &mut self.in_proj_bias,
            &mut self.conv_bias,
            &mut self.out_proj_bias,
        ]
        .into_iter()
        .flatten()
        {
            v.push(b);
        }
        v
    }

    /// Every parameter tensor, in the order of [`tensors_mut`](Self::tensors_mut).
    pub fn tensors(&self) -> Vec<&[f32]> {
        let mut v: Vec<&[f32]> = vec![
            &self.in_proj,
            &self.conv_weight,
            &self.dt_bias,
            &self.a_log,
            &self.d,
            &self.norm_weight,
            &self.out_proj,
        ];
        for b in [&self.in_proj_bias, &self.conv_bias, &self.out_proj_bias]
            .into_iter()
            .flatten()
        {
            v.push(b);
        }
        v
    }
}

#[cfg(test)]
mod norm_tests {
    use super::*;
    use crate::weights::SplitMix64;

    /// The fast norm backward against the f64 one, gate before and after, one group and
    /// several, rows that fill tasks and rows that do not, groups of odd width.
    #[test]
    fn fast_norm_backward_matches_the_f64_one() {
        for (k, &(rows, di, groups, nbg)) in [
            (70usize, 384usize, 1usize, false),
            (33, 384, 2, true),
            (5, 51, 3, false),
            (40, 64, 4, true),
        ]
        .iter()
        .enumerate()
        {
            let mut rng = SplitMix64(40 + k as u64);
            let mut v = |n: usize, s: f32| (0..n).map(|_| rng.normal() * s).collect::<Vec<f32>>();
            let (y, z, dout) = (v(rows * di, 1.0), v(rows * di, 2.0), v(rows * di, 1.0));
            let w: Vec<f32> = v(di, 0.3).iter().map(|x| 1.0 + x).collect();
            let mut dw0 = vec![0.5f32; di];
            let mut dw1 = dw0.clone();
            let (dy0, dz0) =
                gated_rmsnorm_backward(&y, &z, &w, &dout, rows, di, groups, 1e-5, nbg, &mut dw0);
            let (dy1, dz1) = gated_rmsnorm_backward_fast(
                &y, &z, &w, &dout, rows, di, groups, 1e-5, nbg, &mut dw1,
            );
            for (what, a, b) in [("dy", &dy0, &dy1), ("dz", &dz0, &dz1), ("dw", &dw0, &dw1)] {
                let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let err = a
                    .iter()
                    .zip(b.iter())
                    .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    err <= 2e-6 * scale,
                    "case {k} {what}: max error {err} against max |value| {scale}"
                );
            }
        }
    }
}
