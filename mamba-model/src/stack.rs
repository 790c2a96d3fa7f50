//! `Mamba2Stack`: residual Mamba2 blocks of one width, `h_{k+1} = h_k + block_k(h_k)`.
//!
//! On the CUDA backend the stack's passes keep the residual stream on the device: a
//! forward uploads the input once and downloads the output once, with every block and
//! every residual add in between on device buffers; a training forward keeps each
//! block's activations there, and the backward uploads the upstream gradient once and
//! downloads the input's gradient and each block's parameter gradients. Chained
//! `Mamba2Block` calls instead copy the stream to the host and back around every block.
//! Elsewhere (or where a block cannot run on the device) the same passes run block by
//! block through [`Mamba2Block`]'s own methods, with the same results.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mamba_core::plugin::{
    BlockGrads, CudaBackend, CudaBlock, CudaStream, DeviceActivations, DeviceBackward,
    DeviceBuffer, DeviceElement, DeviceGrads,
};
use mamba_core::{Backend, DType, Element, Kernels, Tensor};

use crate::block::{Mamba2Block, Mamba2State};
use crate::error::ModelError;
use crate::train::{AdamW, Mamba2Tape};
use crate::weights::Mamba2Weights;

/// Gives every stack its own number, so that a tape is used with the stack that made it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where a stack keeps the device buffers of its last pass for the next one of the same
/// shape (a training step then allocates no device memory).
type Spare = Arc<Mutex<Option<Box<dyn Any + Send>>>>;

fn lock(s: &Mutex<Option<Box<dyn Any + Send>>>) -> MutexGuard<'_, Option<Box<dyn Any + Send>>> {
    // The slot holds plain data; a panic while it was locked leaves it consistent.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A residual stack of [`Mamba2Block`]s of one `d_model`: the output of `input` is
/// `h_K`, with `h_0 = input` and `h_{k+1} = h_k + block_k(h_k)`, each block from the zero
/// state.
///
/// ```
/// use mamba_model::{Mamba2Block, Mamba2Config, Mamba2Stack, Tensor};
///
/// let cfg = Mamba2Config { d_model: 32, d_state: 16, headdim: 16, ..Default::default() };
/// let blocks = (0..2)
///     .map(|k| Mamba2Block::init(cfg.clone(), k))
///     .collect::<Result<Vec<_>, _>>()?;
/// let stack = Mamba2Stack::new(blocks)?;
/// let x = vec![0.1f32; 2 * 10 * 32];
/// let tape = stack.forward_train(Tensor::new(&x, [2, 10, 32]))?;
/// let dout = vec![1.0f32; x.len()];
/// let grads = stack.backward(&tape, &dout)?;
/// assert_eq!(grads.input.len(), x.len());
/// assert_eq!(grads.blocks.len(), 2);
/// # Ok::<(), mamba_model::ModelError>(())
/// ```
pub struct Mamba2Stack {
    blocks: Vec<Mamba2Block>,
    id: u64,
    /// Counts the changes that may have touched the weights (a tape is refused after one).
    version: u64,
    spare: Spare,
}

impl Clone for Mamba2Stack {
    /// The same blocks (sharing their device copies until either changes its weights),
    /// as a stack of its own: tapes of one are refused by the other.
    fn clone(&self) -> Self {
        Self::from_blocks(self.blocks.clone())
    }
}

impl std::fmt::Debug for Mamba2Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mamba2Stack")
            .field("blocks", &self.blocks)
            .finish_non_exhaustive()
    }
}

/// What [`Mamba2Stack::forward_train`] keeps for [`Mamba2Stack::backward`].
pub struct StackTape<T: DeviceElement> {
    output: Vec<T>,
    batch: usize,
    seqlen: usize,
    stack: u64,
    version: u64,
    kind: StackTapeKind<T>,
}

enum StackTapeKind<T: DeviceElement> {
    /// Each block's own tape, the residual stream on the host.
    Host(Vec<Mamba2Tape<T>>),
    /// The residual stream and the activations on the device, handed back to the
    /// stack when the tape is dropped.
    Device {
        bufs: Mutex<Option<TrainBuffers<T>>>,
        bytes: usize,
        spare: Spare,
    },
}

impl<T: DeviceElement> Drop for StackTape<T> {
    fn drop(&mut self) {
        if let StackTapeKind::Device { bufs, spare, .. } = &mut self.kind {
            // Every pass that used the buffers waited for the device before returning.
            let bufs = bufs.get_mut().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut b) = bufs {
                // The output's host memory serves the next pass too.
                b.out_host = std::mem::take(&mut self.output);
                let old = lock(spare).replace(Box::new(b));
                drop(old);
            }
        }
    }
}

impl<T: DeviceElement> std::fmt::Debug for StackTape<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackTape")
            .field("batch", &self.batch)
            .field("seqlen", &self.seqlen)
            .field("on_device", &self.on_device())
            .finish_non_exhaustive()
    }
}

impl<T: DeviceElement> StackTape<T> {
    /// The stack's output of this pass, (batch, frames, d_model).
    pub fn output(&self) -> &[T] {
        &self.output
    }
    /// `true` when the pass kept the residual stream on the device (its backward runs
    /// there too).
    pub fn on_device(&self) -> bool {
        matches!(self.kind, StackTapeKind::Device { .. })
    }
    /// Bytes of device memory the tape holds (0 on the host path).
    pub fn device_bytes(&self) -> usize {
        match &self.kind {
            StackTapeKind::Device { bytes, .. } => *bytes,
            StackTapeKind::Host(t) => t.iter().map(|t| t.device_bytes()).sum(),
        }
    }
}

/// Gradients of `sum(dout * output)` for a stack.
#[derive(Clone, Debug)]
pub struct StackGrads<T> {
    /// With respect to the input, (batch, frames, d_model).
    pub input: Vec<T>,
    /// With respect to each block's parameters, in the stack's order (see
    /// [`crate::Mamba2Grads::weights`]).
    pub blocks: Vec<Mamba2Weights>,
}

/// The device buffers of a training pass in storage type `D`.
struct TrainBuffers<D: DeviceElement> {
    batch: usize,
    seqlen: usize,
    /// `h_0 .. h_K`.
    h: Vec<DeviceBuffer<D>>,
    /// Per block: the kept activations, or `None` where the block recomputes them.
    acts: Vec<Option<DeviceActivations>>,
    /// The backward's running gradient of `h_k` and the next one.
    g: [DeviceBuffer<D>; 2],
    grads: Vec<DeviceGrads>,
    /// The host memory of the last tape's output, for the next one.
    out_host: Vec<D>,
}

impl<D: DeviceElement> TrainBuffers<D> {
    fn bytes(&self) -> usize {
        let el = core::mem::size_of::<D>();
        (self.h.len() + 2) * self.h[0].len() * el
            + self.acts.iter().flatten().map(|a| a.bytes()).sum::<usize>()
            + self
                .grads
                .iter()
                .map(|g| g.buffer().len() * 4)
                .sum::<usize>()
    }
}

/// The device buffers of an inference forward in storage type `D`: the stream and the
/// next block's output.
struct ForwardBuffers<D: DeviceElement>([DeviceBuffer<D>; 2]);

impl Mamba2Stack {
    fn from_blocks(blocks: Vec<Mamba2Block>) -> Self {
        Mamba2Stack {
            blocks,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: 0,
            spare: Arc::default(),
        }
    }

    /// A stack of `blocks` (at least one, all of one `d_model`), applied in order.
    pub fn new(blocks: Vec<Mamba2Block>) -> Result<Self, ModelError> {
        let Some(first) = blocks.first() else {
            return Err(ModelError::Config(
                "a stack needs at least one block".into(),
            ));
        };
        let dm = first.config().d_model;
        if let Some((k, b)) = blocks
            .iter()
            .enumerate()
            .find(|(_, b)| b.config().d_model != dm)
        {
            return Err(ModelError::Config(format!(
                "block {k} has d_model {}, block 0 has {dm}: a residual stack needs one width",
                b.config().d_model
            )));
        }
        Ok(Self::from_blocks(blocks))
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Mamba2Block] {
        &self.blocks
    }
    /// Block `k`, to change its weights or its training options (tapes made before are
    /// refused afterwards).
    pub fn block_mut(&mut self, k: usize) -> &mut Mamba2Block {
        self.version += 1;
        &mut self.blocks[k]
    }
    /// The blocks, giving up the stack.
    pub fn into_blocks(self) -> Vec<Mamba2Block> {
        self.blocks
    }
    /// The number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }
    /// Never `true` (a stack has a block); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
    /// The width of the residual stream.
    pub fn d_model(&self) -> usize {
        self.blocks[0].config().d_model
    }
    /// Replaces every block's weights (one per block, in order), as
    /// [`Mamba2Block::set_weights`] does.
    pub fn set_weights(&mut self, weights: Vec<Mamba2Weights>) -> Result<(), ModelError> {
        if weights.len() != self.blocks.len() {
            return Err(ModelError::Config(format!(
                "{} weight sets for a stack of {} blocks",
                weights.len(),
                self.blocks.len()
            )));
        }
        for (k, w) in weights.iter().enumerate() {
            w.validate(self.blocks[k].config())?;
        }
        self.version += 1;
        for (b, w) in self.blocks.iter_mut().zip(weights) {
            b.set_weights(w)?;
        }
        Ok(())
    }

    /// Whether passes in storage type `dtype` keep the residual stream on the device:
    /// (inference forward, training passes).
    pub fn on_device(&self, dtype: DType) -> (bool, bool) {
        (
            self.device_chain(dtype, false).is_some(),
            self.device_chain(dtype, true).is_some(),
        )
    }

    /// (batch, frames) of an input, checked.
    fn dims<T>(&self, input: &Tensor<'_, T>) -> Result<(usize, usize), ModelError> {
        self.blocks[0].checked_dims(input, None)
    }

    /// Every block on the device for `dtype` and the plugin, where all of them can run
    /// the pass there (`training`: the training passes) and the plugin has the residual
    /// add; `None` otherwise. A block whose device copy failed to be made gives `None`
    /// too: its own methods report the error.
    pub(crate) fn device_chain(
        &self,
        dtype: DType,
        training: bool,
    ) -> Option<(Vec<&CudaBlock>, &'static CudaBackend)> {
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return None;
        }
        let mut cuda = None;
        let mut out = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            if training && !b.trains_on_device(dtype) {
                return None;
            }
            let (blk, be) = b.device_train_block(dtype)?;
            let blk = blk.ok()?;
            if training && !blk.has_backward() {
                return None;
            }
            cuda = Some(be);
            out.push(blk);
        }
        let cuda = cuda?;
        cuda.has_axpy().then_some((out, cuda))
    }

    /// Takes the spare buffers when they are a `W` that `fits`.
    fn take_spare<W: 'static>(&self, fits: impl FnOnce(&W) -> bool) -> Option<W> {
        let mut slot = lock(&self.spare);
        if slot.as_ref()?.downcast_ref::<W>().is_some_and(fits) {
            slot.take()?.downcast::<W>().ok().map(|b| *b)
        } else {
            None
        }
    }

    /// Keeps `w` for the next pass (in place of what waited there).
    fn put_spare<W: Send + 'static>(&self, w: W) {
        let old = lock(&self.spare).replace(Box::new(w));
        drop(old);
    }

    /// Frees the device buffers the stack keeps for its next pass (they come back with
    /// the next pass). Returns whether there were any.
    pub fn release_buffers(&self) -> bool {
        let old = lock(&self.spare).take();
        old.is_some()
    }

    /// Forward through every block: input (batch, frames, d_model) -> output of the same
    /// shape.
    pub fn forward<T: Element + DeviceElement>(
        &self,
        input: Tensor<'_, T>,
    ) -> Result<Vec<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let (batch, seqlen) = self.dims(&input)?;
        if let Some(r) = self.device_forward(input.data, batch, seqlen) {
            return r;
        }
        let mut h = input.data.to_vec();
        for b in &self.blocks {
            let (y, _) = b.forward(Tensor::new(&h, [batch, seqlen, self.d_model()]))?;
            add_into(&mut h, &y);
        }
        Ok(h)
    }

    fn device_forward<T: Element + DeviceElement>(
        &self,
        input: &[T],
        batch: usize,
        seqlen: usize,
    ) -> Option<Result<Vec<T>, ModelError>> {
        let x = input;
        let (blocks, cuda) = self.device_chain(T::DTYPE, false)?;
        let run = || -> Result<Vec<T>, ModelError> {
            let stream = &CudaStream::DEFAULT;
            let n = x.len();
            let mut bufs = match self.take_spare::<ForwardBuffers<T>>(|b| b.0[0].len() == n) {
                Some(b) => b,
                None => ForwardBuffers([cuda.alloc::<T>(n)?, cuda.alloc::<T>(n)?]),
            };
            let [h, y] = &mut bufs.0;
            h.copy_from_host(x, stream)?;
            for blk in &blocks {
                if blk.has_residual() {
                    blk.forward_residual(h, batch, seqlen, None, false, stream)?;
                } else {
                    blk.forward(h, batch, seqlen, y, None, false, stream)?;
                    cuda.axpy(1.0, h, y, stream)?;
                    std::mem::swap(h, y);
                }
            }
            let out = h.to_vec(stream)?;
            self.put_spare(bufs);
            Ok(out)
        };
        Some(run())
    }

    /// The zero state of every block for `batch` sequences (for
    /// [`forward_with_state`](Self::forward_with_state) and [`step`](Self::step)).
    pub fn zero_state(&self, batch: usize) -> Vec<Mamba2State> {
        self.blocks.iter().map(|b| b.zero_state(batch)).collect()
    }

    fn check_states(&self, states: &[Mamba2State]) -> Result<(), ModelError> {
        if states.len() != self.blocks.len() {
            return Err(ModelError::Config(format!(
                "{} states for a stack of {} blocks",
                states.len(),
                self.blocks.len()
            )));
        }
        Ok(())
    }

    /// One state per block, each fitting its block for `batch` rows.
    pub(crate) fn check_states_for(
        &self,
        states: &[Mamba2State],
        batch: usize,
    ) -> Result<(), ModelError> {
        self.check_states(states)?;
        for (b, s) in self.blocks.iter().zip(states) {
            s.check(b.config(), batch)?;
        }
        Ok(())
    }

    /// Forward continuing from `states` (one per block, as
    /// [`zero_state`](Self::zero_state) makes them) and leaving there the states after the
    /// last frame: a sequence processed in chunks, each from the previous chunk's states,
    /// gives what it gives whole. Each block runs its own
    /// [`Mamba2Block::forward_with_state`] (on the device: one round trip per block; a
    /// prompt to be decoded after runs on the device without them through
    /// [`StackDecoder::prefill`](crate::StackDecoder::prefill)).
    pub fn forward_with_state<T: Element + DeviceElement>(
        &self,
        input: Tensor<'_, T>,
        states: &mut [Mamba2State],
    ) -> Result<Vec<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        self.check_states(states)?;
        let (batch, seqlen) = self.dims(&input)?;
        // Every state checked before any changes.
        self.check_states_for(states, batch)?;
        let mut h = input.data.to_vec();
        for (b, st) in self.blocks.iter().zip(states.iter_mut()) {
            let (y, next) =
                b.forward_with_state(Tensor::new(&h, [batch, seqlen, self.d_model()]), Some(st))?;
            add_into(&mut h, &y);
            *st = next;
        }
        Ok(h)
    }

    /// One frame through every block (decoding): `x` is (batch, d_model), `states` one per
    /// block, updated in place ([`Mamba2Block::step`]).
    pub fn step<T: Element + DeviceElement>(
        &self,
        x: Tensor<'_, T>,
        states: &mut [Mamba2State],
    ) -> Result<Vec<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        self.check_states(states)?;
        let d = x.dims();
        if d.len() != 2 || d[1] != self.d_model() || d[0] == 0 || x.data.len() != d[0] * d[1] {
            return Err(ModelError::Shape {
                what: "step input (batch, d_model)",
                expected: vec![states[0].batch, self.d_model()],
                got: d.to_vec(),
            });
        }
        let batch = d[0];
        self.check_states_for(states, batch)?;
        let mut h = x.data.to_vec();
        for (b, st) in self.blocks.iter().zip(states.iter_mut()) {
            let y = b.step(Tensor::new(&h, [batch, self.d_model()]), st)?;
            add_into(&mut h, &y);
        }
        Ok(h)
    }

    /// Forward that keeps what [`backward`](Self::backward) needs (each block from the
    /// zero state).
    pub fn forward_train<T: Element + DeviceElement>(
        &self,
        input: Tensor<'_, T>,
    ) -> Result<StackTape<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let (batch, seqlen) = self.dims(&input)?;
        if let Some(r) = self.device_forward_train(input.data, batch, seqlen) {
            return r;
        }
        let shape = [batch, seqlen, self.d_model()];
        let mut h = input.data.to_vec();
        let mut tapes = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let tape = b.forward_train(Tensor::new(&h, shape), None)?;
            add_into(&mut h, tape.output());
            tapes.push(tape);
        }
        Ok(StackTape {
            output: h,
            batch,
            seqlen,
            stack: self.id,
            version: self.version,
            kind: StackTapeKind::Host(tapes),
        })
    }

    fn device_forward_train<T: Element + DeviceElement>(
        &self,
        input: &[T],
        batch: usize,
        seqlen: usize,
    ) -> Option<Result<StackTape<T>, ModelError>> {
        let x = input;
        let (blocks, cuda) = self.device_chain(T::DTYPE, true)?;
        let keep: Vec<bool> = self
            .blocks
            .iter()
            .zip(&blocks)
            .map(|(b, d)| b.keep_activations() && d.has_saving())
            .collect();
        let run = || -> Result<StackTape<T>, ModelError> {
            let stream = &CudaStream::DEFAULT;
            let n = x.len();
            let fits = |b: &TrainBuffers<T>| {
                (b.batch, b.seqlen) == (batch, seqlen)
                    && b.h.len() == blocks.len() + 1
                    && b.acts.iter().map(Option::is_some).eq(keep.iter().copied())
            };
            let mut bufs = match self.take_spare::<TrainBuffers<T>>(fits) {
                Some(b) => b,
                None => TrainBuffers {
                    batch,
                    seqlen,
                    h: (0..=blocks.len())
                        .map(|_| cuda.alloc::<T>(n))
                        .collect::<Result<_, _>>()?,
                    acts: blocks
                        .iter()
                        .zip(&keep)
                        .map(|(d, &k)| k.then(|| d.activations(cuda, batch, seqlen)).transpose())
                        .collect::<Result<_, _>>()?,
                    g: [cuda.alloc::<T>(n)?, cuda.alloc::<T>(n)?],
                    grads: blocks
                        .iter()
                        .map(|d| d.grads(cuda))
                        .collect::<Result<_, _>>()?,
                    out_host: Vec::new(),
                },
            };
            bufs.h[0].copy_from_host(x, stream)?;
            for (k, blk) in blocks.iter().enumerate() {
                let (lo, hi) = bufs.h.split_at_mut(k + 1);
                let (h, y) = (&lo[k], &mut hi[0]);
                match &mut bufs.acts[k] {
                    Some(a) => blk.forward_train(h, batch, seqlen, y, None, false, a, stream)?,
                    None => blk.forward(h, batch, seqlen, y, None, false, stream)?,
                }
                cuda.axpy(1.0, h, y, stream)?;
            }
            let mut out = std::mem::take(&mut bufs.out_host);
            out.resize(n, T::default());
            bufs.h[blocks.len()].copy_to_host(&mut out, stream)?;
            let bytes = bufs.bytes();
            Ok(StackTape {
                output: out,
                batch,
                seqlen,
                stack: self.id,
                version: self.version,
                kind: StackTapeKind::Device {
                    bufs: Mutex::new(Some(bufs)),
                    bytes,
                    spare: self.spare.clone(),
                },
            })
        };
        Some(run())
    }

    /// Backward through the stack: given `dout`, the upstream gradient of the output of
    /// [`forward_train`](Self::forward_train), the gradients of the input and of every
    /// block's parameters. The tape must be this stack's, and the weights those it ran
    /// with.
    pub fn backward<T: Element + DeviceElement>(
        &self,
        tape: &StackTape<T>,
        dout: &[T],
    ) -> Result<StackGrads<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let mut grads = StackGrads {
            input: Vec::new(),
            blocks: Vec::new(),
        };
        self.backward_into(tape, dout, &mut grads)?;
        Ok(grads)
    }

    /// As [`backward`](Self::backward), into `grads` (overwritten). On the device path
    /// the gradients land in `grads`' own vectors where they already have the right
    /// lengths, so a training loop that passes the same `grads` every step allocates no
    /// host memory for them (fresh allocations cost as much as the copies).
    pub fn backward_into<T: Element + DeviceElement>(
        &self,
        tape: &StackTape<T>,
        dout: &[T],
        grads: &mut StackGrads<T>,
    ) -> Result<(), ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        self.check_tape(tape, dout)?;
        match &tape.kind {
            StackTapeKind::Host(tapes) => {
                let mut g = dout.to_vec();
                let mut blocks = Vec::with_capacity(tapes.len());
                for (b, t) in self.blocks.iter().zip(tapes).rev() {
                    let gb = b.backward(t, &g, None)?;
                    add_into(&mut g, &gb.input);
                    blocks.push(gb.weights);
                }
                blocks.reverse();
                *grads = StackGrads { input: g, blocks };
                Ok(())
            }
            StackTapeKind::Device { bufs, .. } => {
                let mut bufs = bufs.lock().unwrap_or_else(|e| e.into_inner());
                let bufs = bufs.as_mut().ok_or_else(|| {
                    ModelError::Config("the tape's device buffers were lost by a panic".into())
                })?;
                self.device_backward(bufs, dout, grads).unwrap_or_else(|| {
                    Err(ModelError::Config(
                        "the stack no longer runs on the device in this storage type".into(),
                    ))
                })
            }
        }
    }

    /// The tape is this stack's, made with the present weights, and `dout` fits it.
    fn check_tape<T: DeviceElement>(
        &self,
        tape: &StackTape<T>,
        dout: &[T],
    ) -> Result<(), ModelError> {
        if tape.stack != self.id {
            return Err(ModelError::Config(
                "the tape was made by another stack (or a clone of this one)".into(),
            ));
        }
        if tape.version != self.version {
            return Err(ModelError::Config(
                "the stack's weights may have changed since the tape was made (set_weights, \
                 block_mut or backward_update): run forward_train again"
                    .into(),
            ));
        }
        let shape = [tape.batch, tape.seqlen, self.d_model()];
        if dout.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Shape {
                what: "dout (batch, frames, d_model)",
                expected: shape.to_vec(),
                got: vec![dout.len()],
            });
        }
        Ok(())
    }

    /// The backward chain on the device: the gradients of every block's parameters in
    /// `bufs.grads`, the input's downloaded into `dinput` (`None`: not formed).
    fn device_backward_chain<T: Element + DeviceElement>(
        blocks: &[&CudaBlock],
        cuda: &CudaBackend,
        bufs: &mut TrainBuffers<T>,
        dout: &[T],
        dinput: Option<&mut Vec<T>>,
    ) -> Result<(), ModelError> {
        let stream = &CudaStream::DEFAULT;
        let (batch, seqlen) = (bufs.batch, bufs.seqlen);
        let [g, next] = &mut bufs.g;
        g.copy_from_host(dout, stream)?;
        for (k, blk) in blocks.iter().enumerate().rev() {
            let pass = DeviceBackward {
                input: &bufs.h[k],
                dout: g,
                batch,
                seqlen,
                activations: bufs.acts[k].as_ref(),
                init: None,
                dfinal: None,
            };
            blk.backward(&pass, next, &mut bufs.grads[k], None, stream)?;
            if k == 0 && dinput.is_none() {
                // The input's gradient is not wanted: the block's part of it is enough.
                break;
            }
            cuda.axpy(1.0, g, next, stream)?;
            std::mem::swap(g, next);
        }
        if let Some(dinput) = dinput {
            dinput.resize(dout.len(), T::default());
            g.copy_to_host(dinput, stream)?;
        }
        Ok(())
    }

    fn device_backward<T: Element + DeviceElement>(
        &self,
        bufs: &mut TrainBuffers<T>,
        dout: &[T],
        out: &mut StackGrads<T>,
    ) -> Option<Result<(), ModelError>> {
        let (blocks, cuda) = self.device_chain(T::DTYPE, true)?;
        let mut run = || -> Result<(), ModelError> {
            let stream = &CudaStream::DEFAULT;
            Self::device_backward_chain(&blocks, cuda, bufs, dout, Some(&mut out.input))?;
            out.blocks.truncate(blocks.len());
            for (k, (b, d)) in self.blocks.iter().zip(&bufs.grads).enumerate() {
                // The vectors of the previous step's gradients, where there are some.
                let mut host = match out.blocks.get_mut(k) {
                    Some(w) => block_grads_of(w),
                    None => BlockGrads::default(),
                };
                d.copy_to_host(&mut host, stream)?;
                let w = b.weights_from_grads(host);
                match out.blocks.get_mut(k) {
                    Some(slot) => *slot = w,
                    None => out.blocks.push(w),
                }
            }
            Ok(())
        };
        Some(run())
    }
}

impl Mamba2Stack {
    /// The second half of a training step: the backward from `dout` (as
    /// [`backward`](Self::backward)) and one AdamW update of every block's weights by
    /// `opt`; returns the gradient of the input. On the device path the parameter
    /// gradients, the moments and an f32 master copy of the weights stay on the device:
    /// the update runs there, the device copies of the weights are rewritten there, and
    /// only the updated weights come back (into the blocks' own vectors). Elsewhere the
    /// gradients come to the host and `opt` updates the weights there, with the same
    /// arithmetic. The tape cannot be used again afterwards. After an error the device
    /// copies of the weights may be ahead of `weights()`: [`set_weights`](Self::set_weights)
    /// makes them one again.
    pub fn backward_update<T: Element + DeviceElement>(
        &mut self,
        tape: &StackTape<T>,
        dout: &[T],
        opt: &mut StackAdamW,
    ) -> Result<Vec<T>, ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        let mut dinput = Vec::new();
        self.backward_update_into(tape, dout, opt, Some(&mut dinput))?;
        Ok(dinput)
    }

    /// As [`backward_update`](Self::backward_update), with the input's gradient written
    /// into `dinput` (its memory kept where it has the right length: a loop that passes
    /// the same vector allocates nothing) or, with `None`, not brought back at all (the
    /// input is data, not the output of something to train).
    pub fn backward_update_into<T: Element + DeviceElement>(
        &mut self,
        tape: &StackTape<T>,
        dout: &[T],
        opt: &mut StackAdamW,
        dinput: Option<&mut Vec<T>>,
    ) -> Result<(), ModelError>
    where
        dyn Backend: Kernels<T>,
    {
        self.check_tape(tape, dout)?;
        let mut dinput = dinput;
        if let StackTapeKind::Device { bufs, .. } = &tape.kind {
            let mut bufs = bufs.lock().unwrap_or_else(|e| e.into_inner());
            let bufs = bufs.as_mut().ok_or_else(|| {
                ModelError::Config("the tape's device buffers were lost by a panic".into())
            })?;
            if let Some(r) = self.device_update(bufs, dout, opt, dinput.as_deref_mut()) {
                self.version += 1;
                return r;
            }
        }
        // The host path: gradients on the host, AdamW there, the weights set. Moments
        // that earlier updates left on the device come to the host first.
        if !opt.device.is_empty() {
            let moments = opt.moments(self)?;
            let step = opt.adamw.steps();
            opt.set_moments(step, moments);
        }
        let mut g = StackGrads {
            input: Vec::new(),
            blocks: std::mem::take(&mut opt.grads),
        };
        self.backward_into(tape, dout, &mut g)?;
        opt.grads = g.blocks;
        let sq: f64 = opt
            .grads
            .iter()
            .flat_map(|g| g.tensors())
            .flat_map(|t| t.iter())
            .map(|&v| v as f64 * v as f64)
            .sum();
        let scale = opt.clip_scale(sq.sqrt() as f32);
        if scale != 1.0 {
            for g in opt.grads.iter_mut() {
                for t in g.tensors_mut() {
                    t.iter_mut().for_each(|v| *v *= scale);
                }
            }
        }
        let scratch = &mut opt.scratch;
        scratch.truncate(self.blocks.len());
        for (k, b) in self.blocks.iter().enumerate() {
            match scratch.get_mut(k) {
                Some(w) => w.clone_from(b.weights()),
                None => scratch.push(b.weights().clone()),
            }
        }
        let mut params: Vec<&mut [f32]> = Vec::new();
        for w in scratch.iter_mut() {
            params.extend(w.tensors_mut());
        }
        let grads: Vec<&[f32]> = opt.grads.iter().flat_map(|g| g.tensors()).collect();
        opt.adamw.step(&mut params, &grads);
        self.version += 1;
        for (b, w) in self.blocks.iter_mut().zip(scratch.iter_mut()) {
            b.swap_weights(w)?;
        }
        if let Some(d) = dinput {
            *d = g.input;
        }
        Ok(())
    }

    /// The device path of [`backward_update`](Self::backward_update); `None` where the
    /// blocks cannot be updated on the device (the host path runs).
    fn device_update<T: Element + DeviceElement>(
        &mut self,
        bufs: &mut TrainBuffers<T>,
        dout: &[T],
        opt: &mut StackAdamW,
        mut dinput: Option<&mut Vec<T>>,
    ) -> Option<Result<(), ModelError>> {
        let dtype = T::DTYPE;
        {
            let (blocks, _) = self.device_chain(dtype, true)?;
            if !blocks.iter().all(|b| b.has_set_weights_device()) {
                return None;
            }
        }
        let mut run = || -> Result<(), ModelError> {
            let stream = &CudaStream::DEFAULT;
            {
                let (blocks, cuda) = self.device_chain(dtype, true).ok_or_else(lost)?;
                Self::device_backward_chain(&blocks, cuda, bufs, dout, dinput.as_deref_mut())?;
                // Master weights and moments, made (or refreshed from the blocks' weights
                // where those changed) before the first update.
                opt.device.truncate(blocks.len());
                // Moments on the host (loaded, or left by host-path updates) go to the
                // device with the first device update.
                let host_moments = opt.host_moments_of(&self.blocks)?;
                for (k, (blk, d)) in self.blocks.iter().zip(&blocks).enumerate() {
                    let fresh = opt
                        .device
                        .get(k)
                        .is_none_or(|s| s.generation != blk.generation());
                    if opt.device.get(k).is_none() {
                        let mut m = d.grads(cuda)?;
                        let mut v = d.grads(cuda)?;
                        match host_moments.get(k) {
                            Some((hm, hv)) => {
                                let hm = d.pack_master(&hm.plugin_view())?;
                                let hv = d.pack_master(&hv.plugin_view())?;
                                m.buffer_mut().copy_from_host(&hm, stream)?;
                                v.buffer_mut().copy_from_host(&hv, stream)?;
                            }
                            None => {
                                let zero = vec![0.0f32; d.master_len()];
                                m.buffer_mut().copy_from_host(&zero, stream)?;
                                v.buffer_mut().copy_from_host(&zero, stream)?;
                            }
                        }
                        opt.device.push(DeviceMoments {
                            master: d.grads(cuda)?,
                            m,
                            v,
                            generation: 0,
                            host: BlockGrads::default(),
                        });
                    }
                    if fresh {
                        let packed = d.pack_master(&blk.weights().plugin_view())?;
                        opt.device[k]
                            .master
                            .buffer_mut()
                            .copy_from_host(&packed, stream)?;
                    }
                }
                // The moments now live on the device only.
                opt.adamw.clear_moments();
                let bufs_g: Vec<&DeviceBuffer<f32>> =
                    bufs.grads.iter().map(|g| g.buffer()).collect();
                let norm = cuda.sum_squares(&bufs_g, stream)?.sqrt() as f32;
                let grad_scale = opt.clip_scale(norm);
                let t = opt.adamw.next_step();
                let (bc1, bc2) = opt.adamw.bias_corrections(t);
                let a = &opt.adamw;
                let hyper = mamba_core::abi::AdamWC {
                    lr: a.lr,
                    beta1: a.beta1,
                    beta2: a.beta2,
                    eps: a.eps,
                    weight_decay: a.weight_decay,
                    bc1,
                    bc2,
                    grad_scale,
                };
                for (s, g) in opt.device.iter_mut().zip(&bufs.grads) {
                    cuda.adamw(
                        &hyper,
                        s.master.buffer_mut(),
                        g.buffer(),
                        s.m.buffer_mut(),
                        s.v.buffer_mut(),
                        stream,
                    )?;
                }
            }
            for (k, s) in opt.device.iter_mut().enumerate() {
                let blk = &mut self.blocks[k];
                blk.device_block_mut(dtype)
                    .ok_or_else(lost)??
                    .set_weights_device(s.master.buffer(), stream)?;
                // The updated weights, through vectors that the block's previous weights
                // then become (for the next step).
                s.master.copy_to_host(&mut s.host, stream)?;
                blk.take_device_weights(&mut s.host, dtype);
                s.generation = blk.generation();
            }
            Ok(())
        };
        Some(run())
    }
}

fn lost() -> ModelError {
    ModelError::Config("a block left the device during the update".into())
}

/// AdamW over every block of a [`Mamba2Stack`] ([`Mamba2Stack::backward_update`]): the
/// hyperparameters, and the moments where the updates run (on the device: with an f32
/// master copy of each block's weights).
pub struct StackAdamW {
    /// The hyperparameters (`lr`, `beta1`, `beta2`, `eps`, `weight_decay`), the step
    /// count, and the host path's moments.
    pub adamw: AdamW,
    /// Gradient clipping by the global norm, as PyTorch's `clip_grad_norm_`: when set,
    /// every gradient is multiplied by `min(1, max / (norm + 1e-6))` before the update,
    /// `norm` being the L2 norm of all the blocks' parameter gradients together.
    pub max_grad_norm: Option<f32>,
    grad_norm: Option<f32>,
    device: Vec<DeviceMoments>,
    /// The host path's gradients and weights, whose memory the next step reuses.
    grads: Vec<Mamba2Weights>,
    scratch: Vec<Mamba2Weights>,
}

/// One block's optimizer state on the device.
struct DeviceMoments {
    master: DeviceGrads,
    m: DeviceGrads,
    v: DeviceGrads,
    /// The block's weights generation the master copy holds.
    generation: u64,
    /// Host vectors the updated weights land in.
    host: BlockGrads,
}

impl std::fmt::Debug for StackAdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackAdamW")
            .field("adamw", &self.adamw)
            .field("on_device", &!self.device.is_empty())
            .finish_non_exhaustive()
    }
}

impl StackAdamW {
    /// AdamW with PyTorch's defaults but the given learning rate (see [`AdamW::new`]).
    pub fn new(lr: f32) -> Self {
        Self::from(AdamW::new(lr))
    }

    /// The global L2 norm of the last update's gradients (before clipping); `None`
    /// before the first.
    pub fn grad_norm(&self) -> Option<f32> {
        self.grad_norm
    }

    /// Both moments of every block of `stack`, wherever they live (from the device:
    /// copied back); empty before the first update.
    pub(crate) fn moments(
        &self,
        stack: &Mamba2Stack,
    ) -> Result<Vec<(Mamba2Weights, Mamba2Weights)>, ModelError> {
        if self.device.is_empty() {
            return self.host_moments_of(stack.blocks());
        }
        if self.device.len() != stack.len() {
            return Err(ModelError::Config(format!(
                "the optimizer holds moments of {} blocks, the stack has {}",
                self.device.len(),
                stack.len()
            )));
        }
        let stream = &CudaStream::DEFAULT;
        self.device
            .iter()
            .zip(stack.blocks())
            .map(|(s, blk)| {
                let m = blk.weights_from_grads(s.m.to_host(stream)?);
                let v = blk.weights_from_grads(s.v.to_host(stream)?);
                Ok((m, v))
            })
            .collect()
    }

    /// The host path's moments cut into `blocks`' tensors; empty when there are none.
    fn host_moments_of(
        &self,
        blocks: &[Mamba2Block],
    ) -> Result<Vec<(Mamba2Weights, Mamba2Weights)>, ModelError> {
        let (m, v) = self.adamw.moments();
        if m.is_empty() {
            return Ok(Vec::new());
        }
        let lens: Vec<usize> = blocks
            .iter()
            .flat_map(|b| b.weights().tensors().into_iter().map(<[f32]>::len))
            .collect();
        let same = |x: &[Vec<f32>]| {
            x.len() == lens.len() && x.iter().zip(&lens).all(|(t, &l)| t.len() == l)
        };
        if !same(m) || !same(v) {
            return Err(ModelError::Config(
                "the optimizer's moments do not match the stack's parameters".into(),
            ));
        }
        let mut at = 0;
        let mut out = Vec::with_capacity(blocks.len());
        for b in blocks {
            let cut = |src: &[Vec<f32>]| {
                let mut w = b.weights().clone();
                for (t, s) in w.tensors_mut().into_iter().zip(&src[at..]) {
                    t.copy_from_slice(s);
                }
                w
            };
            let pair = (cut(m), cut(v));
            at += b.weights().tensors().len();
            out.push(pair);
        }
        Ok(out)
    }

    /// Sets the step count and the moments of every block (on the host; empty: none),
    /// dropping any on the device.
    pub(crate) fn set_moments(&mut self, step: u32, moments: Vec<(Mamba2Weights, Mamba2Weights)>) {
        let mut m = Vec::new();
        let mut v = Vec::new();
        for (bm, bv) in &moments {
            m.extend(bm.tensors().into_iter().map(<[f32]>::to_vec));
            v.extend(bv.tensors().into_iter().map(<[f32]>::to_vec));
        }
        self.adamw.set_state(step, m, v);
        self.device.clear();
    }

    /// Records the gradients' norm and returns their scale for this update.
    fn clip_scale(&mut self, norm: f32) -> f32 {
        self.grad_norm = Some(norm);
        match self.max_grad_norm {
            Some(max) => (max / (norm + 1e-6)).min(1.0),
            None => 1.0,
        }
    }
}

impl From<AdamW> for StackAdamW {
    fn from(adamw: AdamW) -> Self {
        StackAdamW {
            adamw,
            max_grad_norm: None,
            grad_norm: None,
            device: Vec::new(),
            grads: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

/// The vectors of `w` as a [`BlockGrads`] (left empty in `w`), to be filled again.
fn block_grads_of(w: &mut Mamba2Weights) -> BlockGrads {
    let take = std::mem::take::<Vec<f32>>;
    BlockGrads {
        in_proj: take(&mut w.in_proj),
        conv_weight: take(&mut w.conv_weight),
        conv_bias: w.conv_bias.take().unwrap_or_default(),
        dt_bias: take(&mut w.dt_bias),
        a_log: take(&mut w.a_log),
        d: take(&mut w.d),
        norm_weight: take(&mut w.norm_weight),
        out_proj: take(&mut w.out_proj),
        ..BlockGrads::default()
    }
}

/// `h += y` elementwise, in f64, rounded to the storage type.
fn add_into<T: Element>(h: &mut [T], y: &[T]) {
    h.iter_mut()
        .zip(y)
        .for_each(|(a, c)| *a = T::from_f64(a.to_f64() + c.to_f64()));
}
