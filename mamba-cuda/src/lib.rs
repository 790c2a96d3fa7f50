//! # mamba-cuda
//!
//! The CUDA plugin of the Mamba kernels: a `cdylib` that the host loads at run time
//! through `mamba_core::plugin` (never linked by a binary). It exports one symbol,
//! [`mamba_cuda_plugin_entry`], which returns the function table of
//! [`mamba_core::abi::PluginApi`]; every entry runs inside `catch_unwind` and reports
//! failures as an `i32` status plus a thread-local message.
//!
//! ```no_run
//! // The host side: load the plugin (searching MAMBA_CUDA_PLUGIN, beside the
//! // executable, then the target folder) and use it as any backend.
//! let cuda = mamba_core::plugin::load()?;
//! println!("{}", cuda.describe());
//! # Ok::<(), mamba_core::Error>(())
//! ```
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `cuda`  | no      | compiles `kernels/*.cu` with the pinned nvcc 13.0 (sm_90 machine code plus PTX) and links the driver through `cust`. Without it every call answers "built without the `cuda` feature; run `cargo xtask cuda build`". |
//!
//! Build it with `cargo xtask cuda build`: that installs the compiler from PyPI into
//! `target/cuda-toolchain`, makes a `libcuda.so` stub to link against, builds this
//! crate in release with `--features cuda` and copies it to `target/cuda/`.
//!
//! The kernels (see `NOTES.md` for their costs and timings):
//! - `scan1.cu`: SPEC 1, one block per (batch, channel run), G threads per channel with
//!   S states each, time in tiles staged through shared memory; for few rows at
//!   moderate L, `scan1_par` (lanes across time segments, a warp scan of the segments'
//!   affine maps, one exponential per state and step).
//! - `ssd.cu`: SPEC 2 as a rescaled recurrence, optionally split in time chunks with a
//!   state pass between them.
//! - `ssd_chunk.cu`: SPEC 2 in chunked (matrix) form on tensor cores (bf16 mma, 3xTF32
//!   for f32): the default for bf16 when (batch, head) pairs fill the device; the
//!   three-kernel form (split3) for f32 with few (batch, head) pairs at 640 <= L <= 1024.
//! - `misc.cu`: SPEC 3-5, the fallback GEMM and the gated RMS norm of SPEC 6.
//! - `bwd.cu`: the backward passes of SPEC 1-3 (recomputing scan kernels, states
//!   checkpointed every >= N steps, never stored per step): a general kernel for both
//!   selective scans, `bwd_scan1t` (a thread per channel and state lane, tile states in
//!   registers) for Mamba-1 with N <= 64, `bwd_ssdt` (two rows per warp, lanes along N)
//!   for SSD when the rows fill the device and the chunked form does not apply.
//! - `bwd_lm.cu`: the Mamba-1 backward for many channels (`bwdlm_*`), and `q4pbs`, its form
//!   that reads the checkpoints of the training forward (`selective_scan_forward_saving`:
//!   the `_w6ck` / `_w9ck` kernels of `scan1_lm.cu`).
//! - `ssd_bwdc.cu`: the SSD backward in chunked form (`ssdbc_*`: chunk states and their
//!   gradients, then every gradient per 32-step chunk from f32 products), the default
//!   where the rows fill the device (no seq_idx, p <= 64, N <= 128).

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mamba_core::abi::{
    self, status, AdamWC, BlockBackwardDesc, BlockConfigC, BlockForwardDesc, BlockWeightsC,
    Conv1dBwdDesc, Conv1dDesc, ConvUpdateDesc, DeviceInfoC, PluginApi, SelectiveScanBwdDesc,
    SelectiveScanDesc, SsdBwdDesc, SsdDesc, StateUpdateDesc,
};

#[cfg(feature = "cuda")]
mod gpu;
#[cfg(feature = "cuda")]
use gpu as imp;

#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
use stub as imp;

/// An error inside the plugin: a status code and a message.
#[derive(Debug, Clone)]
pub(crate) struct PErr {
    pub code: i32,
    pub msg: String,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl PErr {
    pub(crate) fn new(code: i32, msg: impl Into<String>) -> PErr {
        PErr {
            code,
            msg: msg.into(),
        }
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> PErr {
        PErr::new(status::INVALID_ARGUMENT, msg)
    }
    pub(crate) fn unsupported(msg: impl Into<String>) -> PErr {
        PErr::new(status::UNSUPPORTED, msg)
    }
}

pub(crate) type PResult<T> = Result<T, PErr>;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(msg);
    });
}

/// Runs `f` behind the ABI boundary: panics and errors become a status and a message.
fn guard(f: impl FnOnce() -> PResult<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => status::OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.code
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("panic in the CUDA plugin: {msg}"));
            status::PANIC
        }
    }
}

/// Turns a pointer argument into a reference, or an error naming it.
///
/// # Safety
/// `p` is null or points to a valid `T` for the duration of the call.
unsafe fn arg<'a, T>(p: *const T, name: &str) -> PResult<&'a T> {
    // SAFETY: the caller guarantees `p` is null or valid; null is checked here.
    unsafe { p.as_ref() }.ok_or_else(|| PErr::invalid(format!("`{name}` is a null pointer")))
}

unsafe extern "C" fn last_error(buf: *mut u8, cap: usize) -> usize {
    let r = catch_unwind(|| {
        LAST_ERROR.with(|e| {
            let e = e.borrow();
            let bytes = e.as_bytes();
            if !buf.is_null() && cap > 0 {
                let n = bytes.len().min(cap - 1);
                // SAFETY: the caller gives `cap` writable bytes at `buf`; we write n+1 <= cap.
                let out = unsafe { std::slice::from_raw_parts_mut(buf, n + 1) };
                out[..n].copy_from_slice(&bytes[..n]);
                out[n] = 0;
            }
            bytes.len()
        })
    });
    r.unwrap_or(0)
}

unsafe extern "C" fn init(ordinal: i32) -> i32 {
    guard(|| imp::init(ordinal))
}

unsafe extern "C" fn device_info(out: *mut DeviceInfoC) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        let info = imp::device_info()?;
        // SAFETY: `out` is non-null and, by the ABI, points to a writable DeviceInfoC.
        unsafe { out.write(info) };
        Ok(())
    })
}

unsafe extern "C" fn stream_create(out: *mut u64) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        let s = imp::stream_create()?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(s) };
        Ok(())
    })
}

unsafe extern "C" fn stream_destroy(stream: u64) -> i32 {
    guard(|| imp::stream_destroy(stream))
}

unsafe extern "C" fn stream_synchronize(stream: u64) -> i32 {
    guard(|| imp::stream_synchronize(stream))
}

unsafe extern "C" fn mem_alloc(bytes: usize, out: *mut u64) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        let p = imp::mem_alloc(bytes)?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(p) };
        Ok(())
    })
}

unsafe extern "C" fn mem_free(ptr: u64) -> i32 {
    guard(|| imp::mem_free(ptr))
}

unsafe extern "C" fn memcpy_htod(dst: u64, src: *const c_void, bytes: usize, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `src` holds `bytes` readable bytes.
    guard(|| unsafe { imp::memcpy_htod(dst, src, bytes, stream) })
}

unsafe extern "C" fn memcpy_dtoh(dst: *mut c_void, src: u64, bytes: usize, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `dst` holds `bytes` writable bytes.
    guard(|| unsafe { imp::memcpy_dtoh(dst, src, bytes, stream) })
}

unsafe extern "C" fn memcpy_dtod(dst: u64, src: u64, bytes: usize, stream: u64) -> i32 {
    guard(|| imp::memcpy_dtod(dst, src, bytes, stream))
}

unsafe extern "C" fn memset(dst: u64, value: u8, bytes: usize, stream: u64) -> i32 {
    guard(|| imp::memset(dst, value, bytes, stream))
}

unsafe extern "C" fn selective_scan(desc: *const SelectiveScanDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::selective_scan(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn ssd(desc: *const SsdDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::ssd(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn causal_conv1d(desc: *const Conv1dDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::causal_conv1d(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn selective_state_update(desc: *const StateUpdateDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::selective_state_update(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn causal_conv1d_update(desc: *const ConvUpdateDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::causal_conv1d_update(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn selective_scan_backward(
    desc: *const SelectiveScanBwdDesc,
    stream: u64,
) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::selective_scan_backward(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn selective_scan_saved_bytes(
    desc: *const SelectiveScanDesc,
    out: *mut usize,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid for the call.
        let n = imp::selective_scan_saved_bytes(unsafe { arg(desc, "desc") }?)?;
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

unsafe extern "C" fn selective_scan_forward_saving(
    desc: *const SelectiveScanDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid for the call.
        let desc = unsafe { arg(desc, "desc") }?;
        imp::selective_scan_forward_saving(desc, saved, bytes, stream)
    })
}

unsafe extern "C" fn selective_scan_backward_saved(
    desc: *const SelectiveScanBwdDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid for the call.
        let desc = unsafe { arg(desc, "desc") }?;
        imp::selective_scan_backward_saved(desc, saved, bytes, stream)
    })
}

unsafe extern "C" fn ssd_backward(desc: *const SsdBwdDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::ssd_backward(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn causal_conv1d_backward(desc: *const Conv1dBwdDesc, stream: u64) -> i32 {
    // SAFETY: the ABI contract: `desc` is null or valid for the call.
    guard(|| imp::causal_conv1d_backward(unsafe { arg(desc, "desc") }?, stream))
}

unsafe extern "C" fn block_create(
    config: *const BlockConfigC,
    weights: *const BlockWeightsC,
    out: *mut *mut c_void,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: each pointer is null or valid for the call.
        let config = unsafe { arg(config, "config") }?;
        // SAFETY: as above.
        let weights = unsafe { arg(weights, "weights") }?;
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        // SAFETY: the weight pointers of `weights` hold the lengths it states (ABI contract).
        let handle = unsafe { imp::block_create(config, weights) }?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

unsafe extern "C" fn block_destroy(block: *mut c_void) -> i32 {
    // SAFETY: the ABI contract: `block` came from block_create and is destroyed once.
    guard(|| unsafe { imp::block_destroy(block) })
}

unsafe extern "C" fn block_forward(
    block: *mut c_void,
    desc: *const BlockForwardDesc,
    stream: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid; `block` came from block_create.
        let desc = unsafe { arg(desc, "desc") }?;
        // SAFETY: the ABI contract: `block` came from block_create and is alive.
        unsafe { imp::block_forward(block, desc, stream) }
    })
}

unsafe extern "C" fn block_backward(
    block: *mut c_void,
    desc: *const BlockBackwardDesc,
    stream: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid; `block` came from block_create.
        let desc = unsafe { arg(desc, "desc") }?;
        // SAFETY: the ABI contract: `block` came from block_create and is alive.
        unsafe { imp::block_backward(block, desc, stream) }
    })
}

unsafe extern "C" fn block_saved_bytes(
    block: *mut c_void,
    batch: u32,
    seqlen: u32,
    out: *mut usize,
) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        // SAFETY: the ABI contract: `block` came from block_create and is alive.
        let n = unsafe { imp::block_saved_bytes(block, batch, seqlen) }?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(n) };
        Ok(())
    })
}

unsafe extern "C" fn block_forward_saving(
    block: *mut c_void,
    desc: *const BlockForwardDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid; `block` came from block_create.
        let desc = unsafe { arg(desc, "desc") }?;
        // SAFETY: the ABI contract: `block` is alive; `saved` holds `bytes` bytes.
        unsafe { imp::block_forward_saving(block, desc, saved, bytes, stream) }
    })
}

unsafe extern "C" fn block_backward_saved(
    block: *mut c_void,
    desc: *const BlockBackwardDesc,
    saved: u64,
    bytes: usize,
    stream: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `desc` is null or valid; `block` came from block_create.
        let desc = unsafe { arg(desc, "desc") }?;
        // SAFETY: the ABI contract: `block` is alive; `saved` as the saving forward left it.
        unsafe { imp::block_backward_saved(block, desc, saved, bytes, stream) }
    })
}

unsafe extern "C" fn host_alloc(bytes: usize, out: *mut *mut c_void) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        let p = imp::host_alloc(bytes)?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(p) };
        Ok(())
    })
}

unsafe extern "C" fn host_free(ptr: *mut c_void) -> i32 {
    // SAFETY: the ABI contract: `ptr` is null or came from host_alloc, freed once.
    guard(|| unsafe { imp::host_free(ptr) })
}

unsafe extern "C" fn block_set_weights(block: *mut c_void, weights: *const BlockWeightsC) -> i32 {
    guard(|| {
        // SAFETY: the ABI contract: `weights` is null or valid for the call.
        let weights = unsafe { arg(weights, "weights") }?;
        // SAFETY: the ABI contract: `block` came from block_create and is alive; the
        // weight pointers hold the lengths `weights` states.
        unsafe { imp::block_set_weights(block, weights) }
    })
}

unsafe extern "C" fn axpy(dtype: u32, n: usize, alpha: f32, x: u64, y: u64, stream: u64) -> i32 {
    guard(|| imp::axpy(dtype, n, alpha, x, y, stream))
}

unsafe extern "C" fn adamw(
    n: usize,
    param: u64,
    grad: u64,
    m: u64,
    v: u64,
    hyper: *const AdamWC,
    stream: u64,
) -> i32 {
    guard(|| {
        if hyper.is_null() {
            return Err(PErr::invalid("adamw: null hyperparameters"));
        }
        // SAFETY: non-null, and the caller passes a valid AdamWC.
        let hp = unsafe { *hyper };
        imp::adamw(n, param, grad, m, v, &hp, stream)
    })
}

unsafe extern "C" fn block_set_weights_device(
    block: *mut c_void,
    master: u64,
    n: usize,
    stream: u64,
) -> i32 {
    // SAFETY: the caller passes a live block from block_create (or null: refused).
    guard(|| unsafe { imp::block_set_weights_device(block, master, n, stream) })
}

unsafe extern "C" fn sum_squares(
    count: usize,
    ptrs: *const u64,
    lens: *const usize,
    out: *mut f64,
    stream: u64,
) -> i32 {
    guard(|| {
        if out.is_null() || (count > 0 && (ptrs.is_null() || lens.is_null())) {
            return Err(PErr::invalid("sum_squares: null pointer"));
        }
        let bufs: Vec<(u64, usize)> = if count == 0 {
            Vec::new()
        } else {
            // SAFETY: the caller passes `count` entries in each array (non-null, checked).
            let ptrs = unsafe { std::slice::from_raw_parts(ptrs, count) };
            // SAFETY: as above.
            let lens = unsafe { std::slice::from_raw_parts(lens, count) };
            ptrs.iter().copied().zip(lens.iter().copied()).collect()
        };
        let v = imp::sum_squares(&bufs, stream)?;
        // SAFETY: non-null (checked), the caller's f64.
        unsafe { *out = v };
        Ok(())
    })
}

unsafe extern "C" fn graph_begin(stream: u64) -> i32 {
    guard(|| imp::graph_begin(stream))
}

unsafe extern "C" fn graph_end(stream: u64, out: *mut u64) -> i32 {
    guard(|| {
        if out.is_null() {
            // The recording still ends.
            let r = imp::graph_end(stream).and_then(imp::graph_destroy);
            return r.and(Err(PErr::invalid("`out` is a null pointer")));
        }
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(0) };
        let g = imp::graph_end(stream)?;
        // SAFETY: as above.
        unsafe { out.write(g) };
        Ok(())
    })
}

unsafe extern "C" fn graph_launch(graph: u64, stream: u64) -> i32 {
    guard(|| imp::graph_launch(graph, stream))
}

unsafe extern "C" fn graph_destroy(graph: u64) -> i32 {
    guard(|| imp::graph_destroy(graph))
}

/// The optional behaviours of this build (no status: it cannot fail). Plugins without
/// CUDA have none.
unsafe extern "C" fn features() -> u64 {
    if cfg!(feature = "cuda") {
        abi::features::BLOCK_FORWARD_ADD
    } else {
        0
    }
}

unsafe extern "C" fn event_create(out: *mut u64) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        let e = imp::event_create()?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(e) };
        Ok(())
    })
}

unsafe extern "C" fn event_destroy(event: u64) -> i32 {
    guard(|| imp::event_destroy(event))
}

unsafe extern "C" fn event_record(event: u64, stream: u64) -> i32 {
    guard(|| imp::event_record(event, stream))
}

unsafe extern "C" fn event_elapsed_ms(start: u64, end: u64, out: *mut f32) -> i32 {
    guard(|| {
        if out.is_null() {
            return Err(PErr::invalid("`out` is a null pointer"));
        }
        let ms = imp::event_elapsed_ms(start, end)?;
        // SAFETY: `out` is non-null and writable by the ABI contract.
        unsafe { out.write(ms) };
        Ok(())
    })
}

static API: PluginApi = PluginApi {
    struct_size: std::mem::size_of::<PluginApi>(),
    abi_version: abi::ABI_VERSION,
    built_with_cuda: cfg!(feature = "cuda") as u32,
    last_error,
    init,
    device_info,
    stream_create,
    stream_destroy,
    stream_synchronize,
    mem_alloc,
    mem_free,
    memcpy_htod,
    memcpy_dtoh,
    memcpy_dtod,
    memset,
    selective_scan,
    ssd,
    causal_conv1d,
    selective_state_update,
    causal_conv1d_update,
    block_create,
    block_destroy,
    block_forward,
    event_create,
    event_destroy,
    event_record,
    event_elapsed_ms,
    selective_scan_backward,
    ssd_backward,
    causal_conv1d_backward,
    block_backward,
    selective_scan_saved_bytes,
    selective_scan_forward_saving,
    selective_scan_backward_saved,
    block_saved_bytes,
    block_forward_saving,
    block_backward_saved,
    host_alloc,
    host_free,
    block_set_weights,
    axpy,
    adamw,
    block_set_weights_device,
    sum_squares,
    graph_begin,
    graph_end,
    graph_launch,
    graph_destroy,
    features,
};

/// The plugin's one export: the address of its static function table. The host checks
/// `abi_version` and `struct_size` before any other call.
#[no_mangle]
pub extern "C" fn mamba_cuda_plugin_entry() -> *const PluginApi {
    &API
}
