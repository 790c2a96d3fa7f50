//! The C ABI between the host and the CUDA plugin (`mamba-cuda`, a `cdylib` loaded at
//! run time by [`plugin`](crate::plugin)).
//!
//! Nothing of Rust's ABI crosses it: the plugin exports one symbol,
//! [`ENTRY_SYMBOL`], an `extern "C"` function that returns a pointer to a static
//! [`PluginApi`], a `#[repr(C)]` table of `extern "C"` functions. The host reads
//! [`PluginApi::abi_version`] and [`PluginApi::struct_size`] before any other call:
//! a different version is refused, and the table only ever grows at its end (a newer
//! host checks `struct_size` before it touches a field added later).
//!
//! Every function returns an `i32` status ([`status`]); on failure the plugin keeps a
//! thread-local message that [`PluginApi::last_error`] copies out. Tensors are plain
//! descriptors ([`TensorDesc`]: a device pointer, a dtype code, a shape and strides in
//! elements); an absent optional tensor has a null pointer. Streams are `CUstream`
//! handles passed as `u64` (0 is the default stream). Every export of the plugin
//! runs inside `catch_unwind`, so a panic comes back as [`status::PANIC`].
//!
//! This module is `no_std`: it holds only plain data types and constants.

use core::ffi::c_void;

use crate::element::DType;

/// The version of this ABI; the host refuses a plugin that reports another.
pub const ABI_VERSION: u32 = 1;

/// The one symbol the plugin exports, NUL-terminated (for `dlsym`).
pub const ENTRY_SYMBOL: &[u8] = b"mamba_cuda_plugin_entry\0";

/// The type of [`ENTRY_SYMBOL`]: returns the plugin's static function table (never null).
pub type EntryFn = unsafe extern "C" fn() -> *const PluginApi;

/// The most dimensions a [`TensorDesc`] holds.
pub const DESC_MAX_RANK: usize = 6;

/// Status codes returned by every function of the table.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// An argument is invalid (shape, dtype, null pointer); the message says which.
    pub const INVALID_ARGUMENT: i32 = 1;
    /// The plugin lacks this operation, option or type.
    pub const UNSUPPORTED: i32 = 2;
    /// The device is out of memory.
    pub const OUT_OF_MEMORY: i32 = 3;
    /// Any other CUDA driver error (launch failure, illegal address, ...).
    pub const CUDA_ERROR: i32 = 4;
    /// The driver loaded but no CUDA device could be used.
    pub const NO_DEVICE: i32 = 5;
    /// The plugin was built without the `cuda` feature.
    pub const NOT_BUILT: i32 = 6;
    /// A panic inside the plugin was caught at the boundary.
    pub const PANIC: i32 = 7;
    /// [`init`](super::PluginApi::init) has not succeeded yet.
    pub const NOT_INITIALIZED: i32 = 8;

    /// A short name of a status code, for messages.
    pub fn name(code: i32) -> &'static str {
        match code {
            OK => "ok",
            INVALID_ARGUMENT => "invalid argument",
            UNSUPPORTED => "unsupported",
            OUT_OF_MEMORY => "out of memory",
            CUDA_ERROR => "CUDA error",
            NO_DEVICE => "no CUDA device",
            NOT_BUILT => "plugin built without CUDA",
            PANIC => "panic in plugin",
            NOT_INITIALIZED => "not initialised",
            _ => "unknown status",
        }
    }
}

/// Element type codes of [`TensorDesc::dtype`].
pub mod dtype {
    /// No tensor (an absent optional argument).
    pub const NONE: u32 = 0;
    /// IEEE binary32.
    pub const F32: u32 = 1;
    /// IEEE binary16.
    pub const F16: u32 = 2;
    /// bfloat16.
    pub const BF16: u32 = 3;
    /// 32-bit signed integer (`seq_idx`).
    pub const I32: u32 = 4;

    /// Size of one element in bytes (0 for unknown codes).
    pub const fn size(code: u32) -> usize {
        match code {
            F32 | I32 => 4,
            F16 | BF16 => 2,
            _ => 0,
        }
    }

    /// The name of a code, for messages.
    pub const fn name(code: u32) -> &'static str {
        match code {
            NONE => "none",
            F32 => "f32",
            F16 => "f16",
            BF16 => "bf16",
            I32 => "i32",
            _ => "unknown",
        }
    }
}

/// The ABI code of a storage type (`F64` has none: the plugin never sees it).
pub const fn dtype_code(d: DType) -> u32 {
    match d {
        DType::F32 => dtype::F32,
        DType::F16 => dtype::F16,
        DType::BF16 => dtype::BF16,
        DType::F64 => dtype::NONE,
    }
}

/// A tensor in device memory: pointer, element type, shape and strides (in elements,
/// outermost first). A null `ptr` means "absent".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    /// Device address of element `[0, 0, ...]`; 0 when the tensor is absent.
    pub ptr: u64,
    /// One of [`dtype`].
    pub dtype: u32,
    /// Number of dimensions used in `dims`/`strides`.
    pub rank: u32,
    /// The shape, outermost first; entries past `rank` are 0.
    pub dims: [u64; DESC_MAX_RANK],
    /// Strides in elements, outermost first; entries past `rank` are 0.
    pub strides: [i64; DESC_MAX_RANK],
}

impl TensorDesc {
    /// The absent tensor.
    pub const NONE: TensorDesc = TensorDesc {
        ptr: 0,
        dtype: dtype::NONE,
        rank: 0,
        dims: [0; DESC_MAX_RANK],
        strides: [0; DESC_MAX_RANK],
    };

    /// A dense row-major tensor at `ptr` (at most [`DESC_MAX_RANK`] dimensions;
    /// extra dimensions are ignored).
    pub fn dense(ptr: u64, dtype: u32, dims: &[usize]) -> TensorDesc {
        let mut d = TensorDesc {
            ptr,
            dtype,
            rank: dims.len().min(DESC_MAX_RANK) as u32,
            ..TensorDesc::NONE
        };
        let rank = d.rank as usize;
        let mut stride = 1i64;
        for i in (0..rank).rev() {
            d.dims[i] = dims[i] as u64;
            d.strides[i] = stride;
            stride *= dims[i] as i64;
        }
        d
    }

    /// The same tensor with the given strides (in elements).
    pub fn with_strides(mut self, strides: &[i64]) -> TensorDesc {
        for (i, &s) in strides.iter().take(self.rank as usize).enumerate() {
            self.strides[i] = s;
        }
        self
    }

    /// `true` when the pointer is null (an absent optional tensor).
    pub fn is_none(&self) -> bool {
        self.ptr == 0
    }

    /// The shape as a slice.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..(self.rank as usize).min(DESC_MAX_RANK)]
    }

    /// The number of elements.
    pub fn numel(&self) -> u64 {
        self.shape().iter().product()
    }

    /// `true` when the strides are those of a dense row-major tensor.
    pub fn is_dense(&self) -> bool {
        let rank = (self.rank as usize).min(DESC_MAX_RANK);
        let mut stride = 1i64;
        for i in (0..rank).rev() {
            if self.dims[i] > 1 && self.strides[i] != stride {
                return false;
            }
            stride *= self.dims[i] as i64;
        }
        true
    }
}

impl Default for TensorDesc {
    fn default() -> Self {
        TensorDesc::NONE
    }
}

/// SPEC 1, forward. `b`/`c` are (d, N), (b, N, L) or (b, g, N, L); optional tensors
/// may be absent; `last_state` is written when present.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectiveScanDesc {
    /// (b, d, L).
    pub u: TensorDesc,
    /// (b, d, L).
    pub delta: TensorDesc,
    /// (d, N), f32.
    pub a: TensorDesc,
    /// (d, N) | (b, N, L) | (b, g, N, L).
    pub b: TensorDesc,
    /// (d, N) | (b, N, L) | (b, g, N, L).
    pub c: TensorDesc,
    /// (d), f32.
    pub d: TensorDesc,
    /// (b, d, L).
    pub z: TensorDesc,
    /// (d), f32.
    pub delta_bias: TensorDesc,
    /// (b, d, N), f32.
    pub initial_state: TensorDesc,
    /// (b, d, L), written.
    pub out: TensorDesc,
    /// (b, d, N), f32, written when present. Must not alias `initial_state` (the CUDA
    /// plugin rejects overlapping ones).
    pub last_state: TensorDesc,
    /// Non-zero: softplus on `delta + delta_bias`.
    pub delta_softplus: u32,
    /// Reserved, 0.
    pub reserved: u32,
}

/// SPEC 2, forward. Inner dimensions (`p` of x/z/out, `N` of B/C) must be dense; the
/// batch and time strides are free (so slices of a projection's output serve).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SsdDesc {
    /// (b, L, h, p).
    pub x: TensorDesc,
    /// (b, L, h).
    pub dt: TensorDesc,
    /// (h), f32.
    pub a: TensorDesc,
    /// (b, L, g, N).
    pub b: TensorDesc,
    /// (b, L, g, N).
    pub c: TensorDesc,
    /// (h) or (h, p), f32.
    pub d: TensorDesc,
    /// (b, L, h, p).
    pub z: TensorDesc,
    /// (h), f32.
    pub dt_bias: TensorDesc,
    /// (b, h, p, N), f32.
    pub initial_states: TensorDesc,
    /// (b, L), i32.
    pub seq_idx: TensorDesc,
    /// (b, L, h, p), written.
    pub out: TensorDesc,
    /// (b, h, p, N), f32, written when present. May alias `initial_states` (the CUDA
    /// plugin then copies the initial state first).
    pub final_states: TensorDesc,
    /// Non-zero: softplus on `dt + dt_bias`.
    pub dt_softplus: u32,
    /// Non-zero: clamp the step to `[dt_lo, dt_hi]`.
    pub has_dt_limit: u32,
    /// Lower clamp.
    pub dt_lo: f32,
    /// Upper clamp.
    pub dt_hi: f32,
    /// The chunk length knob (changes rounding only; 0 = the plugin's choice).
    pub chunk_size: u32,
    /// Reserved, 0.
    pub reserved: u32,
}

/// Activation codes.
pub mod activation {
    /// None.
    pub const NONE: u32 = 0;
    /// silu.
    pub const SILU: u32 = 1;
}

/// SPEC 3, forward. `x`/`out` are (b, c, L) when `channel_last == 0`, else (b, L, c);
/// the channel (or time) dimension must be dense, the other strides are free.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Conv1dDesc {
    /// Input.
    pub x: TensorDesc,
    /// (c, W), f32.
    pub weight: TensorDesc,
    /// (c), f32.
    pub bias: TensorDesc,
    /// (b, c, W-1), f32.
    pub initial_states: TensorDesc,
    /// Output, same shape as `x`.
    pub out: TensorDesc,
    /// (b, c, W-1), f32, written when present. Must not alias `initial_states`.
    pub final_states: TensorDesc,
    /// One of [`activation`].
    pub activation: u32,
    /// Non-zero: `x`/`out` are (b, L, c).
    pub channel_last: u32,
}

/// SPEC 4. Mamba-1 layout (x of rank 2) or multi-head (x of rank 3).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StateUpdateDesc {
    /// (b, d, N) or (b, h, p, N), f32, updated in place.
    pub state: TensorDesc,
    /// (b, d) or (b, h, p).
    pub x: TensorDesc,
    /// Like `x`.
    pub dt: TensorDesc,
    /// (d, N) or (h, p, N), f32.
    pub a: TensorDesc,
    /// (b, N) or (b, g, N).
    pub b: TensorDesc,
    /// Like `b`.
    pub c: TensorDesc,
    /// (d) or (h, p), f32.
    pub d: TensorDesc,
    /// Like `x`.
    pub z: TensorDesc,
    /// (d) or (h, p), f32.
    pub dt_bias: TensorDesc,
    /// Like `x`, written.
    pub out: TensorDesc,
    /// Non-zero: softplus.
    pub dt_softplus: u32,
    /// Non-zero: clamp to `[dt_lo, dt_hi]`.
    pub has_dt_limit: u32,
    /// Lower clamp.
    pub dt_lo: f32,
    /// Upper clamp.
    pub dt_hi: f32,
}

/// SPEC 5.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvUpdateDesc {
    /// (b, c, S), f32, updated in place.
    pub conv_state: TensorDesc,
    /// (b, c) or (b, c, Ln).
    pub x: TensorDesc,
    /// (c, W), f32.
    pub weight: TensorDesc,
    /// (c), f32.
    pub bias: TensorDesc,
    /// Like `x`, written.
    pub out: TensorDesc,
    /// One of [`activation`].
    pub activation: u32,
    /// Reserved, 0.
    pub reserved: u32,
}

/// SPEC 1, backward: every gradient of `sum(dout*out) + sum(dlast_state*last_state)`.
/// `fwd` holds the forward's inputs and options (its `out` and `last_state` are not
/// read). Every tensor must be dense. The required gradients (`du`, `ddelta`, `da`,
/// `db`, `dc`) are written whole; an optional one is written when present, and may be
/// present only when its input is (`dd` with `D`, `dz` with `z`, `ddelta_bias` with
/// `delta_bias`; `dinitial_state` always may).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SelectiveScanBwdDesc {
    /// The forward's inputs and options.
    pub fwd: SelectiveScanDesc,
    /// Upstream gradient of `out`, (b, d, L), the activations' type.
    pub dout: TensorDesc,
    /// Upstream gradient of `last_state`, (b, d, N), f32; may be absent (zero).
    pub dlast_state: TensorDesc,
    /// d/du, (b, d, L), written.
    pub du: TensorDesc,
    /// d/ddelta, (b, d, L), written.
    pub ddelta: TensorDesc,
    /// d/dA, (d, N), f32, written.
    pub da: TensorDesc,
    /// d/dB, in B's shape and type, written.
    pub db: TensorDesc,
    /// d/dC, in C's shape and type, written.
    pub dc: TensorDesc,
    /// d/dD, (d), f32.
    pub dd: TensorDesc,
    /// d/dz, (b, d, L).
    pub dz: TensorDesc,
    /// d/ddelta_bias, (d), f32.
    pub ddelta_bias: TensorDesc,
    /// d/dinitial_state, (b, d, N), f32.
    pub dinitial_state: TensorDesc,
}

/// SPEC 2, backward: every gradient of `sum(dout*out) + sum(dfinal_states*final_states)`.
/// `fwd` holds the forward's inputs and options (`out`, `final_states` and `chunk_size`
/// are not read). x, dt, B, C, z, dout and their gradients dx, ddt, dB, dC, dz may be strided
/// as the forward's: inner dimensions dense, batch and time strides free but non-negative (so
/// slices of a projection's output, and its gradient's, serve); a gradient must not share
/// bytes with an input or another gradient (column slices of one row buffer do not). Every
/// other tensor must be dense. Required and optional gradients as in
/// [`SelectiveScanBwdDesc`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SsdBwdDesc {
    /// The forward's inputs and options.
    pub fwd: SsdDesc,
    /// Upstream gradient of `out`, (b, L, h, p).
    pub dout: TensorDesc,
    /// Upstream gradient of `final_states`, (b, h, p, N), f32; may be absent.
    pub dfinal_states: TensorDesc,
    /// d/dx, (b, L, h, p), written.
    pub dx: TensorDesc,
    /// d/ddt, (b, L, h), written.
    pub ddt: TensorDesc,
    /// d/dA, (h), f32, written.
    pub da: TensorDesc,
    /// d/dB, (b, L, g, N), written.
    pub db: TensorDesc,
    /// d/dC, (b, L, g, N), written.
    pub dc: TensorDesc,
    /// d/dD, in D's shape, f32.
    pub dd: TensorDesc,
    /// d/dz, (b, L, h, p).
    pub dz: TensorDesc,
    /// d/ddt_bias, (h), f32.
    pub ddt_bias: TensorDesc,
    /// d/dinitial_states, (b, h, p, N), f32.
    pub dinitial_states: TensorDesc,
}

/// SPEC 3, backward: every gradient of `sum(dout*out) + sum(dfinal_states*final_states)`.
/// `fwd` holds the forward's inputs and options (`out` and `final_states` are not
/// read). `x`, `dout` and `dx` are laid out as `fwd.channel_last` names, each with its own
/// strides (a slice of a wider activation serves, as in the forward); `dx` must not overlap
/// `x` or `dout`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Conv1dBwdDesc {
    /// The forward's inputs and options.
    pub fwd: Conv1dDesc,
    /// Upstream gradient of `out`, in `x`'s shape and type.
    pub dout: TensorDesc,
    /// Upstream gradient of `final_states`, (b, c, W-1), f32; may be absent.
    pub dfinal_states: TensorDesc,
    /// d/dx, in `x`'s shape and type, written.
    pub dx: TensorDesc,
    /// d/dweight, (c, W), f32, written.
    pub dweight: TensorDesc,
    /// d/dbias, (c), f32 (with `bias`).
    pub dbias: TensorDesc,
    /// d/dinitial_states, (b, c, W-1), f32.
    pub dinitial_states: TensorDesc,
}

/// The hyperparameters of a Mamba2Block (SPEC 6).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockConfigC {
    /// `d_model`.
    pub d_model: u32,
    /// `d_state` (N).
    pub d_state: u32,
    /// `d_conv` (W).
    pub d_conv: u32,
    /// `expand`.
    pub expand: u32,
    /// `headdim` (p).
    pub headdim: u32,
    /// `ngroups` (g).
    pub ngroups: u32,
    /// `chunk_size`.
    pub chunk_size: u32,
    /// Non-zero: normalise before the gate.
    pub norm_before_gate: u32,
    /// `rmsnorm_eps`.
    pub rmsnorm_eps: f32,
    /// Non-zero: clamp the step to `[dt_lo, dt_hi]`.
    pub has_dt_limit: u32,
    /// Lower clamp.
    pub dt_lo: f32,
    /// Upper clamp.
    pub dt_hi: f32,
    /// Storage type of activations and projection weights: [`dtype::F32`],
    /// [`dtype::BF16`] or [`dtype::F16`].
    pub dtype: u32,
    /// Reserved, 0.
    pub reserved: u32,
}

impl BlockConfigC {
    /// The SPEC's defaults for a model width and state size: `d_conv` 4, `expand` 2,
    /// `headdim` 64, `ngroups` 1, `chunk_size` 256, eps 1e-5, no clamp, f32.
    pub const fn new(d_model: u32, d_state: u32) -> BlockConfigC {
        BlockConfigC {
            d_model,
            d_state,
            d_conv: 4,
            expand: 2,
            headdim: 64,
            ngroups: 1,
            chunk_size: 256,
            norm_before_gate: 0,
            rmsnorm_eps: 1e-5,
            has_dt_limit: 0,
            dt_lo: 0.0,
            dt_hi: f32::INFINITY,
            dtype: dtype::F32,
            reserved: 0,
        }
    }
    /// `expand * d_model`.
    pub const fn d_inner(&self) -> usize {
        (self.expand * self.d_model) as usize
    }
    /// `d_inner / headdim`.
    pub const fn nheads(&self) -> usize {
        self.d_inner() / self.headdim as usize
    }
    /// `d_inner + 2 g N`.
    pub const fn conv_dim(&self) -> usize {
        self.d_inner() + 2 * (self.ngroups * self.d_state) as usize
    }
    /// Rows of `in_proj.weight`: `2 d_inner + 2 g N + h`.
    pub const fn d_in_proj(&self) -> usize {
        2 * self.d_inner() + 2 * (self.ngroups * self.d_state) as usize + self.nheads()
    }
}

/// The weights of a Mamba2Block in host memory, f32, dense row-major, with their
/// lengths (checked by the plugin). Copied (and converted to the storage type) once.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockWeightsC {
    /// (d_in_proj, d_model).
    pub in_proj: *const f32,
    /// Its length.
    pub in_proj_len: usize,
    /// (conv_dim, W) (the stored (conv_dim, 1, W) squeezed).
    pub conv_weight: *const f32,
    /// Its length.
    pub conv_weight_len: usize,
    /// (conv_dim); may be null (no bias).
    pub conv_bias: *const f32,
    /// Its length.
    pub conv_bias_len: usize,
    /// (h).
    pub dt_bias: *const f32,
    /// Its length.
    pub dt_bias_len: usize,
    /// (h).
    pub a_log: *const f32,
    /// Its length.
    pub a_log_len: usize,
    /// (h).
    pub d: *const f32,
    /// Its length.
    pub d_len: usize,
    /// (d_inner).
    pub norm_weight: *const f32,
    /// Its length.
    pub norm_weight_len: usize,
    /// (d_model, d_inner).
    pub out_proj: *const f32,
    /// Its length.
    pub out_proj_len: usize,
}

/// One call of a block's forward on device memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockForwardDesc {
    /// Batch `b`.
    pub batch: u32,
    /// Sequence length `L`.
    pub seqlen: u32,
    /// Device address of the input (b, L, d_model), the block's storage type, dense.
    pub input: u64,
    /// Device address of the output (b, L, d_model), dense; may equal `input`.
    pub out: u64,
    /// Device address of the conv state (b, conv_dim, W-1), f32; read (if
    /// `has_state`) and then overwritten with the state after the last step. May be 0:
    /// then the forward starts from zeros and returns no state.
    pub conv_state: u64,
    /// Device address of the SSM state (b, h, p, N), f32; like `conv_state`.
    pub ssm_state: u64,
    /// Non-zero: continue from the states given; zero: start from zeros.
    pub has_state: u32,
    /// [`block_flags`] bits; 0 for a plain forward. A plugin refuses bits it does not
    /// know, and plugins older than [`features::BLOCK_FORWARD_ADD`] ignore this field
    /// (it was reserved): check [`PluginApi::features`] before setting a bit.
    pub flags: u32,
}

/// The bits of [`BlockForwardDesc::flags`].
pub mod block_flags {
    /// Add the block's output into `out` instead of overwriting it (`out += block(input)`,
    /// `out` may equal `input`: a residual connection in one call, the add done by the
    /// output projection's epilogue in f32 before `out` is rounded to the storage type).
    /// Needs [`super::features::BLOCK_FORWARD_ADD`].
    pub const ADD: u32 = 1;
}

/// The bits that [`PluginApi::features`] returns.
pub mod features {
    /// `block_forward` and `block_forward_saving` take [`super::block_flags::ADD`].
    pub const BLOCK_FORWARD_ADD: u64 = 1;
}

/// One call of a block's backward on device memory (appended to ABI version 1): the
/// gradients of `sum(dout * out) + <dconv_final, conv_final> + <dssm_final, ssm_final>`
/// where `out`, `conv_final`, `ssm_final` are what the block's forward makes from
/// `input` and the initial states. `block_backward` recomputes the forward's
/// activations from `input` (one forward's work); `block_backward_saved` reads them from
/// what `block_forward_saving` kept. Every buffer is dense; gradients of the parameters
/// are f32 and overwritten.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockBackwardDesc {
    /// Batch `b`.
    pub batch: u32,
    /// Sequence length `L`.
    pub seqlen: u32,
    /// The forward's input (b, L, d_model), the block's storage type.
    pub input: u64,
    /// Upstream gradient of the output (b, L, d_model), the block's storage type.
    pub dout: u64,
    /// The forward's initial conv state (b, conv_dim, W-1), f32; 0: zeros.
    pub conv_init: u64,
    /// The forward's initial SSM state (b, h, p, N), f32; 0: zeros.
    pub ssm_init: u64,
    /// Upstream gradient of the final conv state, f32; 0: none.
    pub dconv_final: u64,
    /// Upstream gradient of the final SSM state, f32; 0: none.
    pub dssm_final: u64,
    /// d/dinput (b, L, d_model), the block's storage type, written.
    pub dinput: u64,
    /// d/d in_proj.weight (d_in_proj, d_model), written.
    pub din_proj: u64,
    /// d/d conv1d.weight (conv_dim, W), written.
    pub dconv_weight: u64,
    /// d/d conv1d.bias (conv_dim); 0: not wanted (zeros are written for a block
    /// without a conv bias).
    pub dconv_bias: u64,
    /// d/d dt_bias (h), written.
    pub ddt_bias: u64,
    /// d/d A_log (h), written.
    pub da_log: u64,
    /// d/d D (h), written.
    pub dd: u64,
    /// d/d norm.weight (d_inner), written.
    pub dnorm_weight: u64,
    /// d/d out_proj.weight (d_model, d_inner), written.
    pub dout_proj: u64,
    /// d/d the initial conv state (b, conv_dim, W-1); 0: not wanted.
    pub dconv_init: u64,
    /// d/d the initial SSM state (b, h, p, N); 0: not wanted.
    pub dssm_init: u64,
}

/// What [`PluginApi::device_info`] reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DeviceInfoC {
    /// The GPU's name, NUL-terminated.
    pub name: [u8; 128],
    /// Compute capability, major.
    pub cc_major: i32,
    /// Compute capability, minor.
    pub cc_minor: i32,
    /// Multiprocessors.
    pub sm_count: i32,
    /// Device memory in bytes.
    pub total_memory: u64,
    /// Non-zero when the projections run through cuBLASLt.
    pub cublaslt: u32,
    /// Driver version as CUDA reports it (e.g. 13000).
    pub driver_version: i32,
    /// The cuBLASLt library that was loaded (or why none was), NUL-terminated.
    pub gemm_detail: [u8; 256],
}

impl Default for DeviceInfoC {
    fn default() -> Self {
        DeviceInfoC {
            name: [0; 128],
            cc_major: 0,
            cc_minor: 0,
            sm_count: 0,
            total_memory: 0,
            cublaslt: 0,
            driver_version: 0,
            gemm_detail: [0; 256],
        }
    }
}

/// The plugin's function table. Fields are only ever appended; check `struct_size`
/// before touching a field a newer ABI added. Every function returns a [`status`] code
/// unless it says otherwise.
#[repr(C)]
#[derive(Debug)]
pub struct PluginApi {
    /// `size_of::<PluginApi>()` in the plugin.
    pub struct_size: usize,
    /// [`ABI_VERSION`] of the plugin.
    pub abi_version: u32,
    /// Non-zero when the plugin was built with CUDA.
    pub built_with_cuda: u32,
    /// Copies the calling thread's last error message (UTF-8) into `buf` (at most
    /// `cap` bytes, NUL-terminated when room) and returns its full length in bytes.
    pub last_error: unsafe extern "C" fn(buf: *mut u8, cap: usize) -> usize,
    /// Initialises the driver and the context of device `ordinal` and loads the
    /// kernels. Idempotent; must succeed before any call below.
    pub init: unsafe extern "C" fn(ordinal: i32) -> i32,
    /// Fills `*out`.
    pub device_info: unsafe extern "C" fn(out: *mut DeviceInfoC) -> i32,
    /// Creates a non-blocking stream.
    pub stream_create: unsafe extern "C" fn(out: *mut u64) -> i32,
    /// Destroys a stream made by `stream_create`.
    pub stream_destroy: unsafe extern "C" fn(stream: u64) -> i32,
    /// Waits for all work on `stream`.
    pub stream_synchronize: unsafe extern "C" fn(stream: u64) -> i32,
    /// Allocates `bytes` of device memory (synchronously; never 0 on success).
    pub mem_alloc: unsafe extern "C" fn(bytes: usize, out: *mut u64) -> i32,
    /// Frees memory from `mem_alloc` (after the device is done with it).
    pub mem_free: unsafe extern "C" fn(ptr: u64) -> i32,
    /// Copies `bytes` from host to device, ordered on `stream`; returns after the
    /// host buffer has been read.
    pub memcpy_htod:
        unsafe extern "C" fn(dst: u64, src: *const c_void, bytes: usize, stream: u64) -> i32,
    /// Copies `bytes` from device to host on `stream` and waits for it.
    pub memcpy_dtoh:
        unsafe extern "C" fn(dst: *mut c_void, src: u64, bytes: usize, stream: u64) -> i32,
    /// Copies `bytes` between device buffers on `stream` (asynchronous).
    pub memcpy_dtod: unsafe extern "C" fn(dst: u64, src: u64, bytes: usize, stream: u64) -> i32,
    /// Sets `bytes` bytes to `value` on `stream` (asynchronous).
    pub memset: unsafe extern "C" fn(dst: u64, value: u8, bytes: usize, stream: u64) -> i32,
    /// SPEC 1 on device tensors, enqueued on `stream`.
    pub selective_scan: unsafe extern "C" fn(desc: *const SelectiveScanDesc, stream: u64) -> i32,
    /// SPEC 2 on device tensors.
    pub ssd: unsafe extern "C" fn(desc: *const SsdDesc, stream: u64) -> i32,
    /// SPEC 3 on device tensors.
    pub causal_conv1d: unsafe extern "C" fn(desc: *const Conv1dDesc, stream: u64) -> i32,
    /// SPEC 4 on device tensors.
    pub selective_state_update:
        unsafe extern "C" fn(desc: *const StateUpdateDesc, stream: u64) -> i32,
    /// SPEC 5 on device tensors.
    pub causal_conv1d_update: unsafe extern "C" fn(desc: *const ConvUpdateDesc, stream: u64) -> i32,
    /// Creates a Mamba2Block: checks the config, uploads the weights once.
    pub block_create: unsafe extern "C" fn(
        config: *const BlockConfigC,
        weights: *const BlockWeightsC,
        out: *mut *mut c_void,
    ) -> i32,
    /// Destroys a block (waits for the device first).
    pub block_destroy: unsafe extern "C" fn(block: *mut c_void) -> i32,
    /// Runs a block's forward on device memory, enqueued on `stream`.
    pub block_forward:
        unsafe extern "C" fn(block: *mut c_void, desc: *const BlockForwardDesc, stream: u64) -> i32,
    /// Creates a timing event.
    pub event_create: unsafe extern "C" fn(out: *mut u64) -> i32,
    /// Destroys an event.
    pub event_destroy: unsafe extern "C" fn(event: u64) -> i32,
    /// Records an event on `stream`.
    pub event_record: unsafe extern "C" fn(event: u64, stream: u64) -> i32,
    /// Waits for `end` and writes the milliseconds between `start` and `end`.
    pub event_elapsed_ms: unsafe extern "C" fn(start: u64, end: u64, out: *mut f32) -> i32,
    /// SPEC 1, backward, on device tensors (appended to ABI version 1).
    pub selective_scan_backward:
        unsafe extern "C" fn(desc: *const SelectiveScanBwdDesc, stream: u64) -> i32,
    /// SPEC 2, backward, on device tensors (appended to ABI version 1).
    pub ssd_backward: unsafe extern "C" fn(desc: *const SsdBwdDesc, stream: u64) -> i32,
    /// SPEC 3, backward, on device tensors (appended to ABI version 1).
    pub causal_conv1d_backward:
        unsafe extern "C" fn(desc: *const Conv1dBwdDesc, stream: u64) -> i32,
    /// A Mamba2Block's backward on device memory (appended to ABI version 1; check
    /// `struct_size` first).
    pub block_backward: unsafe extern "C" fn(
        block: *mut c_void,
        desc: *const BlockBackwardDesc,
        stream: u64,
    ) -> i32,
    /// SPEC 1 for training (appended to ABI version 1; check `struct_size` first): writes
    /// into `*out` how many bytes of device memory `selective_scan_forward_saving` fills for
    /// this call's backward (checkpoints of the recurrence), 0 where the plugin has no
    /// saving form for the call (its backward then recomputes the states itself).
    pub selective_scan_saved_bytes:
        unsafe extern "C" fn(desc: *const SelectiveScanDesc, out: *mut usize) -> i32,
    /// SPEC 1 forward, as `selective_scan`, that also writes what its backward needs into
    /// `saved` (`bytes` as `selective_scan_saved_bytes` says, 16-byte aligned device memory;
    /// `bytes` 0: the plain forward). Appended to ABI version 1.
    pub selective_scan_forward_saving: unsafe extern "C" fn(
        desc: *const SelectiveScanDesc,
        saved: u64,
        bytes: usize,
        stream: u64,
    ) -> i32,
    /// SPEC 1 backward, as `selective_scan_backward`, from what
    /// `selective_scan_forward_saving` wrote into `saved` for the same inputs (`bytes` 0: the
    /// plain backward). Appended to ABI version 1.
    pub selective_scan_backward_saved: unsafe extern "C" fn(
        desc: *const SelectiveScanBwdDesc,
        saved: u64,
        bytes: usize,
        stream: u64,
    ) -> i32,
    /// A Mamba2Block for training (appended to ABI version 1; check `struct_size` first):
    /// writes into `*out` how many bytes of device memory `block_forward_saving` fills for
    /// `batch` sequences of `seqlen` steps (the forward's activations: in_proj's output,
    /// the conv's output, the SSD's output and the norm's output, in the block's storage
    /// type), so that `block_backward_saved` need not recompute them.
    pub block_saved_bytes:
        unsafe extern "C" fn(block: *mut c_void, batch: u32, seqlen: u32, out: *mut usize) -> i32,
    /// A block's forward, as `block_forward`, that also keeps its activations in `saved`
    /// (`bytes` at least what `block_saved_bytes` says, 256-byte aligned device memory).
    /// Appended to ABI version 1.
    pub block_forward_saving: unsafe extern "C" fn(
        block: *mut c_void,
        desc: *const BlockForwardDesc,
        saved: u64,
        bytes: usize,
        stream: u64,
    ) -> i32,
    /// A block's backward, as `block_backward`, from the activations that
    /// `block_forward_saving` kept in `saved` for the same input and initial states
    /// (one forward's work less). Appended to ABI version 1.
    pub block_backward_saved: unsafe extern "C" fn(
        block: *mut c_void,
        desc: *const BlockBackwardDesc,
        saved: u64,
        bytes: usize,
        stream: u64,
    ) -> i32,
    /// Page-locked (pinned) host memory of `bytes` bytes into `*out`, for copies that run
    /// at the bus's rate (appended to ABI version 1; check `struct_size` first). A copy
    /// from it with `memcpy_htod` is asynchronous: the memory must not change until the
    /// stream has run the copy.
    pub host_alloc: unsafe extern "C" fn(bytes: usize, out: *mut *mut c_void) -> i32,
    /// Frees memory from `host_alloc` (null: nothing). Appended to ABI version 1.
    pub host_free: unsafe extern "C" fn(ptr: *mut c_void) -> i32,
    /// Replaces a block's weights in place, after all work on the device has finished
    /// (same shapes as at `block_create`, and a conv bias exactly where it had one): no
    /// allocation, the handle kept. After an error the block holds a mix of old and new
    /// weights and should be destroyed. Appended to ABI version 1.
    pub block_set_weights:
        unsafe extern "C" fn(block: *mut c_void, weights: *const BlockWeightsC) -> i32,
    /// `y = y + alpha x` over `n` elements of the storage type `dtype` (f32, bf16 or f16;
    /// f32 arithmetic), enqueued on `stream`: the residual adds of a stack of blocks on
    /// the device. `x` and `y` are dense device buffers of `n` elements (they may be the
    /// same). Appended to ABI version 1.
    pub axpy:
        unsafe extern "C" fn(dtype: u32, n: usize, alpha: f32, x: u64, y: u64, stream: u64) -> i32,
    /// One AdamW update of `n` f32 parameters from their gradients, with their first and
    /// second moments (dense device buffers of `n` f32 each), enqueued on `stream`, with
    /// the arithmetic of mamba-model's `AdamW::step` (the same results bit for bit).
    /// Appended to ABI version 1.
    pub adamw: unsafe extern "C" fn(
        n: usize,
        param: u64,
        grad: u64,
        m: u64,
        v: u64,
        hyper: *const AdamWC,
        stream: u64,
    ) -> i32,
    /// Replaces a block's weights from f32 master weights on the device, enqueued on
    /// `stream` (work that reads the block's weights on other streams must be ordered
    /// by the caller): `master` holds `n` f32, the weights one after the other in the
    /// order of the block's backward gradients (in_proj, conv weight, conv bias (read
    /// only where the block has one), dt_bias, A_log, D, norm weight, out_proj). Appended
    /// to ABI version 1.
    pub block_set_weights_device:
        unsafe extern "C" fn(block: *mut c_void, master: u64, n: usize, stream: u64) -> i32,
    /// The sum of the squares of every element of `count` dense f32 device buffers
    /// (`ptrs[i]` holding `lens[i]` elements), accumulated in f64, into `*out` on the host
    /// after the work on `stream` (it waits): gradient norms. Appended to ABI version 1.
    pub sum_squares: unsafe extern "C" fn(
        count: usize,
        ptrs: *const u64,
        lens: *const usize,
        out: *mut f64,
        stream: u64,
    ) -> i32,
    /// Starts recording the work that this thread enqueues on `stream` (a stream from
    /// `stream_create`, not the default stream) into a graph instead of running it.
    /// Appended to ABI version 1.
    pub graph_begin: unsafe extern "C" fn(stream: u64) -> i32,
    /// Ends the recording that `graph_begin` started on `stream` and writes into `*out`
    /// an executable graph of it. The recording ends whatever the outcome; where an
    /// entry called during it failed (or could not be recorded) this fails too and
    /// `*out` is 0. Appended to ABI version 1.
    pub graph_end: unsafe extern "C" fn(stream: u64, out: *mut u64) -> i32,
    /// Runs a graph from `graph_end` on `stream` (its work reads and writes the device
    /// addresses it was recorded with). Appended to ABI version 1.
    pub graph_launch: unsafe extern "C" fn(graph: u64, stream: u64) -> i32,
    /// Destroys a graph from `graph_end` (0: nothing), after the work that runs it has
    /// finished. Appended to ABI version 1.
    pub graph_destroy: unsafe extern "C" fn(graph: u64) -> i32,
    /// The optional behaviours this plugin has, as [`features`] bits (returns the bits,
    /// not a status). Appended to ABI version 1.
    pub features: unsafe extern "C" fn() -> u64,
}

/// The hyperparameters of one AdamW update (`adamw`): `bc1 = 1 - beta1^t` and `bc2 = 1 -
/// beta2^t` at step `t` (1 first), and the gradients' scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AdamWC {
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
    /// `1 - beta1^t`.
    pub bc1: f32,
    /// `1 - beta2^t`.
    pub bc2: f32,
    /// The gradients are multiplied by it first (gradient clipping; 1: as they are). Must
    /// be positive and finite.
    pub grad_scale: f32,
}
