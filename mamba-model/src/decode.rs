//! [`StackDecoder`]: token-by-token decoding through a [`Mamba2Stack`] with the blocks'
//! recurrent states kept where the stack runs.
//!
//! [`Mamba2Stack::step`] takes the states as host vectors ([`Mamba2State`]), so on the
//! CUDA backend every step would copy every block's SSM state to the device and back. A
//! decoder made by [`Mamba2Stack::decoder`] keeps them in device memory instead: one step
//! uploads the frame, runs every block on the device (in_proj, the conv and SSM steps in
//! one launch, the gated norm, out_proj with the residual add in its epilogue: the
//! plugin's one-step form of the block forward, states updated in place), and downloads
//! the output. From the second step on, that device work is one recorded graph
//! ([`CudaBackend::record`]) launched with one call instead of some twenty launches and
//! allocations (`MAMBA_DECODE_GRAPH=0`
//! enqueues them one by one, as the first step does). Elsewhere the decoder holds the
//! states on the host and each step is [`Mamba2Stack::step`].

use mamba_core::plugin::{
    CudaBackend, CudaBlock, CudaGraph, CudaStream, DeviceBuffer, DeviceElement,
};
use mamba_core::{Backend, Element, Kernels, Tensor};

use crate::block::Mamba2State;
use crate::error::ModelError;
use crate::stack::Mamba2Stack;

/// Decoding through a [`Mamba2Stack`], one frame of `batch` rows per
/// [`step`](Self::step), with the blocks' states kept between steps (on the device for
/// the CUDA backend). The stack cannot change while a decoder borrows it.
///
/// ```
/// use mamba_model::{Mamba2Block, Mamba2Config, Mamba2Stack, Tensor};
///
/// let cfg = Mamba2Config { d_model: 32, d_state: 16, headdim: 16, ..Default::default() };
/// let blocks = (0..2)
///     .map(|k| Mamba2Block::init(cfg.clone(), k))
///     .collect::<Result<Vec<_>, _>>()?;
/// let stack = Mamba2Stack::new(blocks)?;
/// let mut dec = stack.decoder::<f32>(1)?;
/// let mut x = vec![0.1f32; 32];
/// for _ in 0..4 {
///     x = dec.step(Tensor::new(&x, [1, 32]))?;
/// }
/// let states = dec.states()?; // where the stream stands, as host vectors
/// assert_eq!(states.len(), 2);
/// # Ok::<(), mamba_model::ModelError>(())
/// ```
pub struct StackDecoder<'s, T: DeviceElement> {
    stack: &'s Mamba2Stack,
    batch: usize,
    kind: Kind<'s, T>,
}

enum Kind<'s, T: DeviceElement> {
    /// The states on the host; each step is `Mamba2Stack::step`.
    Host(Vec<Mamba2State>),
    /// The states in device memory.
    Device(DeviceDecode<'s, T>),
}

struct DeviceDecode<'s, T: DeviceElement> {
    cuda: &'static CudaBackend,
    blocks: Vec<&'s CudaBlock>,
    /// The device work of a step, recorded at the second step (the first fills the
    /// plugin's per-stream caches, such as cuBLASLt's workspace, outside any graph).
    graph: Option<CudaGraph>,
    /// Whether to record: not after a recording failed, nor with `MAMBA_DECODE_GRAPH=0`
    /// or a plugin without graphs.
    record: bool,
    /// Whether each block adds its output into the residual stream itself
    /// ([`CudaBlock::forward_residual`]): where every block can, unless
    /// `MAMBA_DECODE_ADD=0` (a forward and a separate add, as before).
    add: bool,
    steps: u64,
    /// Per block: the conv state (b, conv_dim, W-1) and the SSM state (b, h, p, N), f32.
    states: Vec<(DeviceBuffer<f32>, DeviceBuffer<f32>)>,
    /// The residual stream and a block's output, (b, d_model) each.
    h: DeviceBuffer<T>,
    y: DeviceBuffer<T>,
    /// The decoder's own stream (a graph cannot be recorded on the default one).
    stream: CudaStream,
}

impl<T: DeviceElement> DeviceDecode<'_, T> {
    /// Enqueues one step's device work on `stream`: every block from the frame in `h`
    /// (its states updated in place), each output added into `h`.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        cuda: &CudaBackend,
        blocks: &[&CudaBlock],
        add: bool,
        states: &mut [(DeviceBuffer<f32>, DeviceBuffer<f32>)],
        h: &mut DeviceBuffer<T>,
        y: &mut DeviceBuffer<T>,
        batch: usize,
        stream: &CudaStream,
    ) -> mamba_core::Result<()> {
        for (blk, (conv, ssm)) in blocks.iter().zip(states.iter_mut()) {
            if add {
                // h += block(h) in one call: the add in out_proj's epilogue.
                blk.forward_residual(h, batch, 1, Some((conv, ssm)), true, stream)?;
            } else {
                blk.forward(h, batch, 1, y, Some((conv, ssm)), true, stream)?;
                cuda.axpy(1.0, y, h, stream)?;
            }
        }
        Ok(())
    }

    /// A prompt of `seqlen` frames through every block from the states held, which it
    /// advances in place (the block forward with states, on the decoder's stream; the
    /// recorded graph keeps reading the same buffers). Returns the output.
    fn prefill(&mut self, x: &[T], batch: usize, seqlen: usize) -> mamba_core::Result<Vec<T>> {
        let stream = &self.stream;
        let mut h = self.cuda.upload(x, stream)?;
        let mut y = if self.add {
            None
        } else {
            Some(self.cuda.alloc::<T>(x.len())?)
        };
        for (blk, (conv, ssm)) in self.blocks.iter().zip(self.states.iter_mut()) {
            match &mut y {
                None => {
                    blk.forward_residual(&mut h, batch, seqlen, Some((conv, ssm)), true, stream)?
                }
                Some(y) => {
                    blk.forward(&h, batch, seqlen, y, Some((conv, ssm)), true, stream)?;
                    self.cuda.axpy(1.0, y, &mut h, stream)?;
                }
            }
        }
        h.to_vec(stream)
    }

    /// One step: the frame up, the device work (the graph where there is one), the
    /// output down.
    fn step(&mut self, x: &[T], batch: usize) -> mamba_core::Result<Vec<T>> {
        let stream = &self.stream;
        self.h.copy_from_host(x, stream)?;
        if self.graph.is_none() && self.record && self.steps >= 1 {
            let (cuda, blocks, add) = (self.cuda, &self.blocks, self.add);
            let (states, h, y) = (&mut self.states, &mut self.h, &mut self.y);
            match cuda.record(stream, |s| {
                Self::enqueue(cuda, blocks, add, states, h, y, batch, s)
            }) {
                Ok(g) => self.graph = Some(g),
                // Nothing recorded ran: the step runs launch by launch below, and so do
                // the next ones.
                Err(_) => self.record = false,
            }
        }
        match &self.graph {
            Some(g) => g.launch(stream)?,
            None => Self::enqueue(
                self.cuda,
                &self.blocks,
                self.add,
                &mut self.states,
                &mut self.h,
                &mut self.y,
                batch,
                stream,
            )?,
        }
        self.steps += 1;
        self.h.to_vec(stream)
    }
}

impl<T: DeviceElement> std::fmt::Debug for StackDecoder<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackDecoder")
            .field("batch", &self.batch)
            .field("on_device", &self.on_device())
            .finish_non_exhaustive()
    }
}

impl Mamba2Stack {
    /// A decoder for `batch` sequences starting from the zero state.
    pub fn decoder<T: Element + DeviceElement>(
        &self,
        batch: usize,
    ) -> Result<StackDecoder<'_, T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        if batch == 0 {
            return Err(ModelError::Config("a decoder needs batch >= 1".into()));
        }
        self.decoder_from(self.zero_state(batch))
    }

    /// A decoder continuing from `states` (one per block, as
    /// [`forward_with_state`](Self::forward_with_state) leaves them): a prompt processed
    /// whole, then decoded token by token.
    pub fn decoder_from<T: Element + DeviceElement>(
        &self,
        states: Vec<Mamba2State>,
    ) -> Result<StackDecoder<'_, T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let batch = states.first().map_or(0, |s| s.batch);
        self.check_states_for(&states, batch)?;
        if batch == 0 {
            return Err(ModelError::Config("a decoder needs batch >= 1".into()));
        }
        let kind = match self.device_decode::<T>(&states, batch) {
            Some(d) => Kind::Device(d?),
            None => Kind::Host(states),
        };
        Ok(StackDecoder {
            stack: self,
            batch,
            kind,
        })
    }

    /// The device form of a decoder, where every block runs on the device for `T`
    /// (and has a conv state to keep: `d_conv` > 1); `None` otherwise.
    fn device_decode<T: Element + DeviceElement>(
        &self,
        states: &[Mamba2State],
        batch: usize,
    ) -> Option<Result<DeviceDecode<'_, T>, ModelError>> {
        if self.blocks().iter().any(|b| b.config().d_conv < 2) {
            return None;
        }
        let (blocks, cuda) = self.device_chain(T::DTYPE, false)?;
        let make = || -> Result<DeviceDecode<'_, T>, ModelError> {
            let stream = cuda.stream()?;
            let n = batch * self.d_model();
            let states = states
                .iter()
                .map(|s| {
                    Ok((
                        cuda.upload(&s.conv, &stream)?,
                        cuda.upload(&s.ssm, &stream)?,
                    ))
                })
                .collect::<Result<Vec<_>, ModelError>>()?;
            let record =
                cuda.has_graphs() && std::env::var("MAMBA_DECODE_GRAPH").as_deref() != Ok("0");
            let add = blocks.iter().all(|b| b.has_residual())
                && std::env::var("MAMBA_DECODE_ADD").as_deref() != Ok("0");
            Ok(DeviceDecode {
                cuda,
                blocks,
                graph: None,
                record,
                add,
                steps: 0,
                states,
                h: cuda.alloc::<T>(n)?,
                y: cuda.alloc::<T>(n)?,
                stream,
            })
        };
        Some(make())
    }
}

impl<T: Element + DeviceElement> StackDecoder<'_, T>
where
    dyn Backend: Kernels<T>,
{
    /// One frame through every block: `x` is (batch, d_model); returns the stack's output
    /// for it, (batch, d_model), and advances the states. The same values as
    /// [`Mamba2Stack::step`] with the same states (to rounding on the device).
    pub fn step(&mut self, x: Tensor<'_, T>) -> Result<Vec<T>, ModelError> {
        let dm = self.stack.d_model();
        let d = x.dims();
        if d != [self.batch, dm] || x.data.len() != self.batch * dm {
            return Err(ModelError::Shape {
                what: "decoder step input (batch, d_model)",
                expected: vec![self.batch, dm],
                got: d.to_vec(),
            });
        }
        match &mut self.kind {
            Kind::Host(states) => self.stack.step(x, states),
            Kind::Device(dev) => Ok(dev.step(x.data, self.batch)?),
        }
    }
}

impl<T: Element + DeviceElement> StackDecoder<'_, T>
where
    dyn Backend: Kernels<T>,
{
    /// A prompt through the stack from the decoder's states, advancing them: `x` is
    /// (batch, frames, d_model); returns the output of every frame, (batch, frames,
    /// d_model). The same as [`Mamba2Stack::forward_with_state`] with the decoder's
    /// states, without taking them out: on the device the prompt runs block after block
    /// there, each block's states read and written in the decoder's buffers, and only the
    /// prompt and the output cross the bus. Then [`step`](Self::step) continues from the
    /// prompt's last frame.
    pub fn prefill(&mut self, x: Tensor<'_, T>) -> Result<Vec<T>, ModelError> {
        let dm = self.stack.d_model();
        let d = x.dims();
        if d.len() != 3
            || d[0] != self.batch
            || d[2] != dm
            || d[1] == 0
            || x.data.len() != d[0] * d[1] * d[2]
        {
            return Err(ModelError::Shape {
                what: "decoder prefill input (batch, frames, d_model)",
                expected: vec![self.batch, d.get(1).copied().unwrap_or(1).max(1), dm],
                got: d.to_vec(),
            });
        }
        match &mut self.kind {
            Kind::Host(states) => self.stack.forward_with_state(x, states),
            Kind::Device(dev) => Ok(dev.prefill(x.data, self.batch, d[1])?),
        }
    }
}

impl<T: DeviceElement> StackDecoder<'_, T> {
    /// Rows per step.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Whether the states live in device memory (the CUDA backend).
    pub fn on_device(&self) -> bool {
        matches!(self.kind, Kind::Device(_))
    }

    /// Whether the steps run as one recorded graph (on the device, from the second step
    /// on, where the recording worked).
    pub fn uses_graph(&self) -> bool {
        matches!(&self.kind, Kind::Device(d) if d.graph.is_some())
    }

    /// Replaces the states (one per block, for this decoder's batch): the next step
    /// continues from them, as a decoder made by [`Mamba2Stack::decoder_from`] would. On
    /// the device they are copied into the buffers the decoder already has, so its
    /// recorded graph stays valid: one decoder can serve prompt after prompt (each
    /// processed whole by [`Mamba2Stack::forward_with_state`]) without recording again.
    /// Nothing changes where a state does not fit.
    pub fn set_states(&mut self, states: &[Mamba2State]) -> Result<(), ModelError> {
        self.stack.check_states_for(states, self.batch)?;
        match &mut self.kind {
            Kind::Host(held) => held.clone_from_slice(states),
            Kind::Device(dev) => {
                for ((conv, ssm), s) in dev.states.iter_mut().zip(states) {
                    conv.copy_from_host(&s.conv, &dev.stream)?;
                    ssm.copy_from_host(&s.ssm, &dev.stream)?;
                }
            }
        }
        Ok(())
    }

    /// Back to the zero state (a fresh sequence in every row), keeping the decoder's
    /// buffers and recorded graph.
    pub fn reset(&mut self) -> Result<(), ModelError> {
        let zero = self.stack.zero_state(self.batch);
        self.set_states(&zero)
    }

    /// The states after the last step, one per block, as host vectors (copied from the
    /// device there): to continue with [`Mamba2Stack::step`], or later with
    /// [`Mamba2Stack::decoder_from`].
    pub fn states(&self) -> Result<Vec<Mamba2State>, ModelError> {
        match &self.kind {
            Kind::Host(states) => Ok(states.clone()),
            Kind::Device(dev) => {
                let stream = &dev.stream;
                dev.states
                    .iter()
                    .map(|(conv, ssm)| {
                        Ok(Mamba2State {
                            batch: self.batch,
                            conv: conv.to_vec(stream)?,
                            ssm: ssm.to_vec(stream)?,
                        })
                    })
                    .collect()
            }
        }
    }
}
