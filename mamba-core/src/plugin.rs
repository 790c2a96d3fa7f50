//! The host side of the CUDA plugin: finds and loads `libmamba_cuda.so` at run time,
//! checks its ABI, and wraps it as [`CudaBackend`], a [`Backend`] like any other.
//! No host binary links `libcuda`: only the plugin does, so a machine without the
//! driver gets a reason ([`Error::Unavailable`]) instead of a failed start.
//!
//! # Finding the plugin
//!
//! [`load`] (cached for the process) searches, in order:
//! 1. `MAMBA_CUDA_PLUGIN`: a path to the library (when set, only this is tried);
//! 2. beside the current executable;
//! 3. the build's target folder, found from the executable's path: `<target>/cuda/`
//!    (where `cargo xtask cuda build` puts it), then `<target>/release/`, then
//!    `<target>/debug/`.
//!
//! A candidate that loads but was built without the `cuda` feature is skipped (its
//! reason is kept); the error lists every candidate and why it failed, e.g.
//! `libcuda.so.1: cannot open shared object file: No such file or directory`.
//! Library handles are leaked: they stay loaded for the life of the process.
//!
//! # Three ways to use it
//!
//! - As a [`Backend`]: `Kernels<f32>`, `Kernels<bf16>` and `Kernels<f16>` on host
//!   slices (upload, run, download), forward and backward ops. A plugin built before the
//!   backward entries were appended to the table loads, and its backward ops return
//!   [`Error::Unsupported`].
//! - Device-resident: [`DeviceBuffer`] (typed device memory), [`CudaStream`], and the
//!   `*_device` launches that take [`abi`] descriptors of device tensors, enqueued on a
//!   stream, with no host round trip.
//! - A whole Mamba2Block (SPEC 6): [`CudaBackend::block`] uploads the weights once and
//!   returns a [`CudaBlock`], whose [`CudaBlock::forward`] runs the five stages on the
//!   GPU on device buffers (so a stack of blocks chains on one stream), or
//!   [`CudaBlock::forward_host`] on host slices. Training: [`CudaBlock::forward_train`]
//!   keeps the forward's activations in a [`DeviceActivations`] and
//!   [`CudaBlock::backward`] writes every gradient into a [`DeviceGrads`], all on device
//!   buffers; [`CudaBlock::forward_train_host`] / [`CudaBlock::backward_host_saved`] do
//!   the same from host slices; [`CudaBlock::set_weights`] replaces the weights in place
//!   after an optimiser step.
//!
//! Host-slice calls copy through a pool of device buffers, streams and page-locked host
//! buffers kept between calls (see [`STAGING_POOL_BYTES`], [`STAGING_PINNED_BYTES`],
//! [`CudaBackend::release_staging`]).
//!
//! Timing: [`CudaBackend::time_calls`] times any closure as a user calls it (CUDA events
//! around each call on a stream, after warm-up; no graph capture) and [`median`] reduces
//! the samples; `mamba-cuda/examples/mamba-cuda-bench.rs` uses it for the benchmark
//! shapes. Launch-shape overrides for tuning: `MAMBA_CUDA_SCAN1_S`,
//! `MAMBA_CUDA_SCAN1_CHUNKS`, `MAMBA_CUDA_SCAN1_LITE`, `MAMBA_CUDA_SCAN1_PAR`,
//! `MAMBA_CUDA_SSD_TILE`, `MAMBA_CUDA_SSD_QB`, `MAMBA_CUDA_SSD_CHUNKS` (see the plugin's
//! NOTES.md); the plugin reads them at each call only when some `MAMBA_CUDA_*` variable
//! (other than `MAMBA_CUDA_PLUGIN`), or `MAMBA_CUDA_ENV_LIVE=1`, is set when it first
//! looks, so a program that changes them at run time sets `MAMBA_CUDA_ENV_LIVE=1` first.
//! `MAMBA_CUBLASLT` names (or, with `0`, disables) the cuBLASLt library.
//!
//! ```no_run
//! use mamba_core::abi::BlockConfigC;
//! use mamba_core::plugin::{self, BlockWeights};
//!
//! let cuda = plugin::load()?;
//! println!("{}", cuda.describe()); // "NVIDIA H200 (sm_90, 132 SMs), projections: cuBLASLt (...)"
//! let cfg = BlockConfigC::new(192, 64);
//! # let (in_proj, conv_w, conv_b, dt_bias, a_log, d, norm, out_proj) =
//! #     (vec![0f32; 0], vec![0f32; 0], vec![0f32; 0], vec![0f32; 0], vec![0f32; 0], vec![0f32; 0], vec![0f32; 0], vec![0f32; 0]);
//! let w = BlockWeights {
//!     in_proj: &in_proj, conv_weight: &conv_w, conv_bias: Some(&conv_b), dt_bias: &dt_bias,
//!     a_log: &a_log, d: &d, norm_weight: &norm, out_proj: &out_proj,
//! };
//! let block = cuda.block(&cfg, &w)?;
//! let (b, l) = (2, 400);
//! let stream = cuda.stream()?;
//! let input = cuda.upload(&vec![0.5f32; b * l * 192], &stream)?;
//! let mut out = cuda.alloc::<f32>(b * l * 192)?;
//! let mut conv_state = cuda.zeros::<f32>(block.conv_state_len(b), &stream)?;
//! let mut ssm_state = cuda.zeros::<f32>(block.ssm_state_len(b), &stream)?;
//! block.forward(&input, b, l, &mut out, Some((&mut conv_state, &mut ssm_state)), true, &stream)?;
//! let y = out.to_vec(&stream)?;
//! # Ok::<(), mamba_core::Error>(())
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use half::{bf16, f16};

use crate::abi::{
    self, activation, status, BlockBackwardDesc, BlockConfigC, BlockForwardDesc, BlockWeightsC,
    Conv1dBwdDesc, Conv1dDesc, ConvUpdateDesc, DeviceInfoC, PluginApi, SelectiveScanBwdDesc,
    SelectiveScanDesc, SsdBwdDesc, SsdDesc, StateUpdateDesc, TensorDesc,
};
use crate::backend::{Backend, Kernels};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::ops::conv1d::{
    Activation, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs, ConvLayout,
};
use crate::ops::selective_scan::{SelectiveScanArgs, SelectiveScanGrads};
use crate::ops::ssd::{SsdArgs, SsdGrads};
use crate::ops::state_update::SelectiveStateUpdateArgs;
use crate::tensor::{Tensor, TensorMut};

const BACKEND: &str = "cuda";

/// An element type that device buffers hold: `f32`, `bf16`, `f16` or `i32`.
pub trait DeviceElement: Copy + Default + Send + Sync + 'static {
    /// The ABI dtype code.
    const CODE: u32;
}
impl DeviceElement for f32 {
    const CODE: u32 = abi::dtype::F32;
}
impl DeviceElement for bf16 {
    const CODE: u32 = abi::dtype::BF16;
}
impl DeviceElement for f16 {
    const CODE: u32 = abi::dtype::F16;
}
impl DeviceElement for i32 {
    const CODE: u32 = abi::dtype::I32;
}

/// The loaded plugin: the GPU behind the C ABI. Obtain it with [`load`].
#[derive(Debug)]
pub struct CudaBackend {
    api: &'static PluginApi,
    /// The plugin's `struct_size`: entries past it are absent.
    table_size: usize,
    info: DeviceInfoC,
    path: PathBuf,
    /// Streams, device buffers and pinned host buffers of finished host-slice calls,
    /// kept for the next ones (shared with [`BlockSaved`], which gives its buffers back).
    pool: std::sync::Arc<Pool>,
    /// [`CudaBackend::set_scan_training_path`].
    scan_saved: core::sync::atomic::AtomicBool,
}

/// What the host-slice calls ([`Kernels`] on `CudaBackend`) keep between calls: a call
/// used to create a stream, `cuMemAlloc` each of its buffers and free them all at its
/// end (`cuMemFree` waits for the whole device). Buffers come back here once their
/// call's stream has finished, by size class (`staging_class`), up to
/// [`STAGING_POOL_BYTES`]; `MAMBA_STAGING_CACHE=0` (read when the backend is loaded)
/// turns this off, and [`CudaBackend::release_staging`] frees what is kept.
///
/// Host-slice copies of 64 KiB to 64 MiB go through page-locked host buffers of the same
/// size classes (the plugin's `host_alloc`, where it has it; up to
/// [`STAGING_PINNED_BYTES`] kept): a copy between the device and pageable memory runs at a
/// fraction of the bus's rate, and much slower still into freshly allocated pages.
/// `MAMBA_STAGING_PINNED=0` copies from and to the caller's memory directly.
#[derive(Debug, Default)]
struct StagingPool {
    enabled: bool,
    pinned_on: bool,
    streams: Vec<u64>,
    /// (size class in bytes, device pointer)
    bufs: Vec<(usize, u64)>,
    bytes: usize,
    /// (size class in bytes, host address) of page-locked buffers.
    pinned: Vec<(usize, usize)>,
    pinned_bytes: usize,
}

/// The staging pool with the plugin it allocates from.
#[derive(Debug)]
struct Pool {
    api: &'static PluginApi,
    state: std::sync::Mutex<StagingPool>,
}

/// The most page-locked host memory the staging pool keeps between host-slice calls.
pub const STAGING_PINNED_BYTES: usize = 256 << 20;
/// Host-slice copies from this size up go through a page-locked buffer ...
const PINNED_MIN: usize = 64 << 10;
/// ... up to this size (a larger one copies from pageable memory directly: making and
/// freeing a page-locked buffer that large would cost more than it saves).
const PINNED_MAX: usize = 64 << 20;

/// The most device memory the staging pool keeps between host-slice calls.
pub const STAGING_POOL_BYTES: usize = 1 << 30;
/// The most idle streams the staging pool keeps.
const STAGING_POOL_STREAMS: usize = 16;

/// The C view of `w` (pointers into its slices, valid while they are).
fn weights_c(w: &BlockWeights<'_>) -> BlockWeightsC {
    BlockWeightsC {
        in_proj: w.in_proj.as_ptr(),
        in_proj_len: w.in_proj.len(),
        conv_weight: w.conv_weight.as_ptr(),
        conv_weight_len: w.conv_weight.len(),
        conv_bias: w.conv_bias.map_or(core::ptr::null(), |b| b.as_ptr()),
        conv_bias_len: w.conv_bias.map_or(0, |b| b.len()),
        dt_bias: w.dt_bias.as_ptr(),
        dt_bias_len: w.dt_bias.len(),
        a_log: w.a_log.as_ptr(),
        a_log_len: w.a_log.len(),
        d: w.d.as_ptr(),
        d_len: w.d.len(),
        norm_weight: w.norm_weight.as_ptr(),
        norm_weight_len: w.norm_weight.len(),
        out_proj: w.out_proj.as_ptr(),
        out_proj_len: w.out_proj.len(),
    }
}

/// The size class of a staging allocation: powers of two from 64 KiB up to 64 MiB, whole
/// multiples of 2 MiB above (so that a large call does not ask for twice its memory).
fn staging_class(bytes: usize) -> usize {
    if bytes <= 64 << 20 {
        bytes.max(64 << 10).next_power_of_two()
    } else {
        bytes.div_ceil(2 << 20) * (2 << 20)
    }
}

/// The size of the table before the backward entries were appended (ABI version 1 as
/// first published): the smallest table the host accepts.
const TABLE_SIZE_V1_FORWARD: usize = core::mem::offset_of!(PluginApi, selective_scan_backward);

/// The error of a failed call: the status and the plugin's message for this thread.
fn call_error(api: &PluginApi, code: i32, op: &'static str) -> Error {
    let mut buf = vec![0u8; 1024];
    // SAFETY: `buf` has 1024 writable bytes, as passed.
    let n = unsafe { (api.last_error)(buf.as_mut_ptr(), buf.len()) };
    let msg = String::from_utf8_lossy(&buf[..n.min(buf.len() - 1)]).into_owned();
    match code {
        status::UNSUPPORTED => Error::Unsupported {
            backend: BACKEND,
            op,
            what: msg,
        },
        status::INVALID_ARGUMENT => Error::InvalidArgument {
            op,
            arg: "descriptor",
            reason: msg,
        },
        status::NOT_BUILT | status::NO_DEVICE => Error::Unavailable {
            backend: BACKEND,
            reason: msg,
        },
        _ => Error::Backend {
            backend: BACKEND,
            message: format!("{op}: {} ({})", msg, status::name(code)),
        },
    }
}

fn ok(api: &PluginApi, code: i32, op: &'static str) -> Result<()> {
    if code == status::OK {
        Ok(())
    } else {
        Err(call_error(api, code, op))
    }
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// The file name of the plugin on this platform (`libmamba_cuda.so` on Linux).
pub fn library_name() -> String {
    libloading::library_filename("mamba_cuda")
        .to_string_lossy()
        .into_owned()
}

/// The places [`load`] tries, in order (without `MAMBA_CUDA_PLUGIN`).
pub fn search_paths() -> Vec<PathBuf> {
    let name = library_name();
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            push(dir.join(&name));
            // The target folder is an ancestor of the executable: target/<profile>/x,
            // target/<profile>/deps/x, target/<profile>/examples/x, target/<triple>/...
            for anc in dir.ancestors().take(4) {
                for sub in ["cuda", "release", "debug"] {
                    push(anc.join(sub).join(&name));
                }
            }
        }
    }
    out
}

/// Loads the plugin at `path` and initialises device 0. Not cached; the library stays
/// loaded for the life of the process.
pub fn load_from(path: &Path) -> Result<CudaBackend> {
    // SAFETY: loading runs the plugin's initialisers; the plugin is our own cdylib,
    // whose static initialisers have no preconditions.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| unavailable(e.to_string()))?;
    let lib: &'static libloading::Library = std::boxed::Box::leak(std::boxed::Box::new(lib));
    // SAFETY: the entry symbol has the signature of abi::EntryFn by the ABI contract.
    let entry = unsafe { lib.get::<abi::EntryFn>(abi::ENTRY_SYMBOL) }
        .map_err(|e| unavailable(format!("{}: not a mamba-cuda plugin ({e})", path.display())))?;
    // SAFETY: the entry takes no arguments and returns a pointer to a static table.
    let api_ptr = unsafe { entry() };
    if api_ptr.is_null() {
        return Err(unavailable("the plugin returned no function table"));
    }
    // The version and size come first in every version of the table, so reading them
    // is safe before anything else.
    // SAFETY: non-null pointer to the plugin's static table; this field is in every version.
    let version = unsafe { (*api_ptr).abi_version };
    // SAFETY: as above.
    let size = unsafe { (*api_ptr).struct_size };
    if version != abi::ABI_VERSION {
        return Err(unavailable(format!(
            "ABI version mismatch: plugin {} has version {version}, host expects {}",
            path.display(),
            abi::ABI_VERSION
        )));
    }
    if size < TABLE_SIZE_V1_FORWARD {
        return Err(unavailable(format!(
            "ABI table too small: plugin has {size} bytes, host needs at least {TABLE_SIZE_V1_FORWARD}"
        )));
    }
    // SAFETY: version and size checked: the table has every field this host reads
    // unconditionally (later fields are read only after `has_entry`), and it is static
    // in a library that is never unloaded.
    let api: &'static PluginApi = unsafe { &*api_ptr };
    // SAFETY: a plain C call of the table with a device ordinal.
    let code = unsafe { (api.init)(0) };
    if code != status::OK {
        let err = call_error(api, code, "init");
        return Err(match err {
            Error::Unavailable { .. } => err,
            other => unavailable(other.to_string()),
        });
    }
    let mut info = DeviceInfoC::default();
    // SAFETY: `info` is a writable DeviceInfoC.
    ok(api, unsafe { (api.device_info)(&mut info) }, "device_info")?;
    let enabled = std::env::var("MAMBA_STAGING_CACHE").map_or(true, |v| v != "0");
    let pool = StagingPool {
        enabled,
        pinned_on: enabled
            && size >= core::mem::offset_of!(PluginApi, host_free) + core::mem::size_of::<usize>()
            && std::env::var("MAMBA_STAGING_PINNED").map_or(true, |v| v != "0"),
        ..StagingPool::default()
    };
    Ok(CudaBackend {
        api,
        table_size: size,
        info,
        path: path.to_path_buf(),
        pool: std::sync::Arc::new(Pool {
            api,
            state: std::sync::Mutex::new(pool),
        }),
        scan_saved: core::sync::atomic::AtomicBool::new(false),
    })
}

fn search() -> Result<CudaBackend> {
    if let Some(p) = std::env::var_os("MAMBA_CUDA_PLUGIN") {
        let p = PathBuf::from(p);
        return load_from(&p).map_err(|e| match e {
            Error::Unavailable { reason, .. } => {
                unavailable(format!("MAMBA_CUDA_PLUGIN={}: {reason}", p.display()))
            }
            other => other,
        });
    }
    let mut tried = Vec::new();
    for p in search_paths() {
        if !p.is_file() {
            continue;
        }
        match load_from(&p) {
            Ok(b) => return Ok(b),
            Err(Error::Unavailable { reason, .. }) => {
                tried.push(format!("{}: {reason}", p.display()))
            }
            Err(other) => tried.push(format!("{}: {other}", p.display())),
        }
    }
    if tried.is_empty() {
        let searched: Vec<String> = search_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(unavailable(format!(
            "no plugin found (searched: MAMBA_CUDA_PLUGIN unset, {}); run `cargo xtask cuda build`",
            searched.join(", ")
        )));
    }
    Err(unavailable(tried.join("; ")))
}

static LOADED: OnceLock<core::result::Result<CudaBackend, Error>> = OnceLock::new();

/// The CUDA backend, loaded once per process (see the module docs for the search).
pub fn load() -> Result<&'static CudaBackend> {
    match LOADED.get_or_init(search) {
        Ok(b) => Ok(b),
        Err(e) => Err(e.clone()),
    }
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl CudaBackend {
    /// One line for the report: GPU name, compute capability, SMs, and how the
    /// projections run.
    pub fn describe(&self) -> String {
        format!(
            "{} (sm_{}{}, {} SMs, {:.0} GiB), projections: {}",
            self.device_name(),
            self.info.cc_major,
            self.info.cc_minor,
            self.info.sm_count,
            self.info.total_memory as f64 / (1u64 << 30) as f64,
            self.gemm_detail()
        )
    }
    /// The GPU's name.
    pub fn device_name(&self) -> String {
        cstr(&self.info.name)
    }
    /// `true` when the block's projections run through cuBLASLt.
    pub fn uses_cublaslt(&self) -> bool {
        self.info.cublaslt != 0
    }
    /// Which GEMM the projections use, and the cuBLASLt library (or why none).
    pub fn gemm_detail(&self) -> String {
        cstr(&self.info.gemm_detail)
    }
    /// Everything the plugin reported about the device.
    pub fn device_info(&self) -> &DeviceInfoC {
        &self.info
    }
    /// The file the plugin was loaded from.
    pub fn plugin_path(&self) -> &Path {
        &self.path
    }
    /// The raw function table (for callers that speak the ABI themselves).
    pub fn api(&self) -> &'static PluginApi {
        self.api
    }

    // ------------------------------------------------------------ memory, streams

    /// A new non-blocking stream.
    pub fn stream(&self) -> Result<CudaStream> {
        let mut s = 0u64;
        // SAFETY: writes a handle into a local.
        let code = unsafe { (self.api.stream_create)(&mut s) };
        ok(self.api, code, "stream_create")?;
        Ok(CudaStream {
            raw: s,
            api: Some(self.api),
        })
    }

    /// Uninitialised device memory for `len` elements.
    pub fn alloc<T: DeviceElement>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let mut p = 0u64;
        // SAFETY: writes a device pointer into a local.
        let code = unsafe { (self.api.mem_alloc)(len.max(1) * core::mem::size_of::<T>(), &mut p) };
        ok(self.api, code, "mem_alloc")?;
        Ok(DeviceBuffer {
            ptr: p,
            len,
            api: self.api,
            pool: self.pool.clone(),
            _t: PhantomData,
        })
    }

    /// Device memory holding a copy of `data`.
    pub fn upload<T: DeviceElement>(
        &self,
        data: &[T],
        stream: &CudaStream,
    ) -> Result<DeviceBuffer<T>> {
        let mut b = self.alloc::<T>(data.len())?;
        b.copy_from_host(data, stream)?;
        Ok(b)
    }

    /// One AdamW update of `param` from `grad` with the moments `m` and `v` (f32 device
    /// buffers of one length), enqueued on `stream`, with the arithmetic of mamba-model's
    /// `AdamW::step` (`hyper.bc1` / `bc2`: `1 - beta^t` at step `t`). Errors as
    /// `Unsupported` where the plugin predates it.
    pub fn adamw(
        &self,
        hyper: &abi::AdamWC,
        param: &mut DeviceBuffer<f32>,
        grad: &DeviceBuffer<f32>,
        m: &mut DeviceBuffer<f32>,
        v: &mut DeviceBuffer<f32>,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "adamw";
        self.require_entry(core::mem::offset_of!(PluginApi, adamw), OP)?;
        let n = param.len();
        if grad.len() != n || m.len() != n || v.len() != n {
            return Err(Error::invalid(
                OP,
                "param/grad/m/v",
                format!("{n}, {}, {} and {} elements", grad.len(), m.len(), v.len()),
            ));
        }
        // SAFETY: the entry exists (checked); the four buffers are live buffers of this
        // plugin of `n` f32 each, freed only after the device has finished.
        let code =
            unsafe { (self.api.adamw)(n, param.ptr, grad.ptr, m.ptr, v.ptr, hyper, stream.raw) };
        ok(self.api, code, OP)
    }

    /// The sum of the squares of every element of `bufs`, accumulated in f64 on the device
    /// after the work on `stream` (it waits for the result): gradient norms. Errors as
    /// `Unsupported` where the plugin predates it.
    pub fn sum_squares(&self, bufs: &[&DeviceBuffer<f32>], stream: &CudaStream) -> Result<f64> {
        const OP: &str = "sum_squares";
        self.require_entry(core::mem::offset_of!(PluginApi, sum_squares), OP)?;
        let ptrs: Vec<u64> = bufs.iter().map(|b| b.ptr).collect();
        let lens: Vec<usize> = bufs.iter().map(|b| b.len).collect();
        let mut out = 0f64;
        // SAFETY: the entry exists (checked); `ptrs` / `lens` hold `bufs.len()` entries
        // describing live buffers of this plugin; `out` is a local.
        let code = unsafe {
            (self.api.sum_squares)(
                bufs.len(),
                ptrs.as_ptr(),
                lens.as_ptr(),
                &mut out,
                stream.raw,
            )
        };
        ok(self.api, code, OP)?;
        Ok(out)
    }

    /// `true` when the plugin records graphs ([`Self::record`]).
    pub fn has_graphs(&self) -> bool {
        self.has_entry(
            core::mem::offset_of!(PluginApi, graph_destroy) + core::mem::size_of::<usize>(),
        )
    }

    /// Records the work that `enqueue` puts on `stream` (a stream from [`Self::stream`])
    /// into a [`CudaGraph`] instead of running it: [`CudaGraph::launch`] then runs all of
    /// it with one call. The recorded work reads and writes the device addresses it was
    /// given, so their buffers must outlive the graph. Work that cannot be recorded (an
    /// entry that would allocate synchronously, or wait for the device) fails, and so
    /// does the recording; nothing of it runs. Errors as `Unsupported` where the plugin
    /// predates it.
    pub fn record(
        &self,
        stream: &CudaStream,
        enqueue: impl FnOnce(&CudaStream) -> Result<()>,
    ) -> Result<CudaGraph> {
        const OP: &str = "graph_begin";
        self.require_entry(core::mem::offset_of!(PluginApi, graph_destroy), OP)?;
        // SAFETY: the entries exist (checked); the stream is live.
        let code = unsafe { (self.api.graph_begin)(stream.raw) };
        ok(self.api, code, OP)?;
        let r = enqueue(stream);
        let mut g = 0u64;
        // SAFETY: ends the recording begun above (whatever `enqueue` did).
        let code = unsafe { (self.api.graph_end)(stream.raw, &mut g) };
        let graph = CudaGraph {
            raw: g,
            api: self.api,
        };
        r?;
        ok(self.api, code, "graph_end")?;
        Ok(graph)
    }

    /// `true` when the plugin has [`Self::axpy`].
    pub fn has_axpy(&self) -> bool {
        self.has_entry(core::mem::offset_of!(PluginApi, axpy) + core::mem::size_of::<usize>())
    }

    /// `y = y + alpha x` on device buffers of one storage type (f32, bf16 or f16; f32
    /// arithmetic), enqueued on `stream`: the residual adds of a stack of blocks trained
    /// on the device. Errors as `Unsupported` where the plugin predates it.
    pub fn axpy<T: DeviceElement>(
        &self,
        alpha: f32,
        x: &DeviceBuffer<T>,
        y: &mut DeviceBuffer<T>,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "axpy";
        self.require_entry(core::mem::offset_of!(PluginApi, axpy), OP)?;
        if x.len() != y.len() {
            return Err(Error::invalid(
                OP,
                "x/y",
                format!("{} and {} elements", x.len(), y.len()),
            ));
        }
        // SAFETY: the entry exists (checked); `x` and `y` are live buffers of this plugin
        // with `y.len()` elements of `T` each, freed only after the device has finished.
        let code = unsafe { (self.api.axpy)(T::CODE, y.len(), alpha, x.ptr, y.ptr, stream.raw) };
        ok(self.api, code, OP)
    }

    /// Zeroed device memory for `len` elements.
    pub fn zeros<T: DeviceElement>(
        &self,
        len: usize,
        stream: &CudaStream,
    ) -> Result<DeviceBuffer<T>> {
        let b = self.alloc::<T>(len)?;
        // SAFETY: fills the buffer just allocated, `len` elements long.
        let code =
            unsafe { (self.api.memset)(b.ptr, 0, len * core::mem::size_of::<T>(), stream.raw) };
        ok(self.api, code, "memset")?;
        Ok(b)
    }

    // ------------------------------------------------------------ device launches

    /// SPEC 1 on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// Every non-null pointer of `desc` is device memory of this plugin holding the
    /// tensor its descriptor states, alive until the stream has run the op.
    pub unsafe fn selective_scan_device(
        &self,
        desc: &SelectiveScanDesc,
        stream: &CudaStream,
    ) -> Result<()> {
        // SAFETY: the caller's contract covers the descriptor's pointers.
        let code = unsafe { (self.api.selective_scan)(desc, stream.raw) };
        ok(self.api, code, "selective_scan")
    }
    /// SPEC 2 on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn ssd_device(&self, desc: &SsdDesc, stream: &CudaStream) -> Result<()> {
        // SAFETY: the caller's contract covers the descriptor's pointers.
        ok(self.api, unsafe { (self.api.ssd)(desc, stream.raw) }, "ssd")
    }
    /// SPEC 3 on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn causal_conv1d_device(
        &self,
        desc: &Conv1dDesc,
        stream: &CudaStream,
    ) -> Result<()> {
        // SAFETY: the caller's contract covers the descriptor's pointers.
        let code = unsafe { (self.api.causal_conv1d)(desc, stream.raw) };
        ok(self.api, code, "causal_conv1d")
    }
    /// SPEC 4 on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn selective_state_update_device(
        &self,
        desc: &StateUpdateDesc,
        stream: &CudaStream,
    ) -> Result<()> {
        // SAFETY: the caller's contract covers the descriptor's pointers.
        let code = unsafe { (self.api.selective_state_update)(desc, stream.raw) };
        ok(self.api, code, "selective_state_update")
    }
    /// SPEC 5 on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn causal_conv1d_update_device(
        &self,
        desc: &ConvUpdateDesc,
        stream: &CudaStream,
    ) -> Result<()> {
        // SAFETY: the caller's contract covers the descriptor's pointers.
        let code = unsafe { (self.api.causal_conv1d_update)(desc, stream.raw) };
        ok(self.api, code, "causal_conv1d_update")
    }

    /// `true` when the plugin's table has the entry that ends at byte `end` (entries
    /// appended after the first release of ABI version 1).
    fn has_entry(&self, end: usize) -> bool {
        self.table_size >= end
    }

    fn require_entry(&self, offset: usize, op: &'static str) -> Result<()> {
        if self.has_entry(offset + core::mem::size_of::<usize>()) {
            Ok(())
        } else {
            Err(Error::unsupported(
                BACKEND,
                op,
                format!(
                    "the plugin at {} predates this entry of the ABI table; rebuild it",
                    self.path.display()
                ),
            ))
        }
    }

    /// SPEC 1, backward, on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn selective_scan_backward_device(
        &self,
        desc: &SelectiveScanBwdDesc,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "selective_scan_backward";
        self.require_entry(
            core::mem::offset_of!(PluginApi, selective_scan_backward),
            OP,
        )?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code = unsafe { (self.api.selective_scan_backward)(desc, stream.raw) };
        ok(self.api, code, OP)
    }
    /// The bytes of device memory that [`Self::selective_scan_forward_saving_device`]
    /// fills for this call's backward (checkpoints of the recurrence), 0 where the plugin
    /// has no saving form for the call. Training: allocate that much, run the saving
    /// forward, keep the buffer until [`Self::selective_scan_backward_saved_device`] has run
    /// on the same inputs; the backward then skips its own forward pass. Today the saving
    /// form covers B and C varying in time with N <= 16 at many channels and L >= 1024 (the
    /// language-model shape), `b * d * ceil(L / 8) * 64` bytes.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`] (only the descriptor's shapes are read).
    pub unsafe fn selective_scan_saved_bytes(&self, desc: &SelectiveScanDesc) -> Result<usize> {
        const OP: &str = "selective_scan_saved_bytes";
        if !self.has_entry(
            core::mem::offset_of!(PluginApi, selective_scan_saved_bytes)
                + core::mem::size_of::<usize>(),
        ) {
            // An older plugin: no saving form; the plain backward serves.
            return Ok(0);
        }
        let mut n = 0usize;
        // SAFETY: the entry exists (checked); `n` is writable; the caller's contract covers
        // the descriptor.
        let code = unsafe { (self.api.selective_scan_saved_bytes)(desc, &mut n) };
        ok(self.api, code, OP)?;
        Ok(n)
    }

    /// With `on`, the host-slice `selective_scan` and `selective_scan_backward` of this
    /// backend ([`Kernels`]) go through the training pair wherever the call has a saving
    /// form ([`Self::selective_scan_saved_bytes`] > 0): the forward is
    /// [`Self::selective_scan_forward_saving_device`] (its checkpoints to a scratch buffer),
    /// and the backward runs that forward, then
    /// [`Self::selective_scan_backward_saved_device`]. So the oracle checks of
    /// `mamba_core::testing` cover the path a training loop on device tensors takes. Off by
    /// default (the plain backward needs no second buffer).
    pub fn set_scan_training_path(&self, on: bool) {
        self.scan_saved
            .store(on, core::sync::atomic::Ordering::Relaxed);
    }

    fn scan_training_path(&self) -> bool {
        self.scan_saved.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// SPEC 1 forward on device tensors that also writes the checkpoints its backward
    /// reads into `saved` (`bytes` from [`Self::selective_scan_saved_bytes`]; 0: the plain
    /// forward).
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`]; `saved` is device memory of `bytes` bytes,
    /// 16-byte aligned, that stays alive until the backward that reads it has run.
    pub unsafe fn selective_scan_forward_saving_device(
        &self,
        desc: &SelectiveScanDesc,
        saved: u64,
        bytes: usize,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "selective_scan_forward_saving";
        if bytes == 0 {
            // SAFETY: the caller's contract.
            return unsafe { self.selective_scan_device(desc, stream) };
        }
        self.require_entry(
            core::mem::offset_of!(PluginApi, selective_scan_forward_saving),
            OP,
        )?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code =
            unsafe { (self.api.selective_scan_forward_saving)(desc, saved, bytes, stream.raw) };
        ok(self.api, code, OP)
    }

    /// SPEC 1 backward on device tensors from the checkpoints that
    /// [`Self::selective_scan_forward_saving_device`] wrote into `saved` for the same inputs
    /// and options (`bytes` 0: the plain backward).
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`]; `saved` as the saving forward left it.
    pub unsafe fn selective_scan_backward_saved_device(
        &self,
        desc: &SelectiveScanBwdDesc,
        saved: u64,
        bytes: usize,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "selective_scan_backward_saved";
        if bytes == 0 {
            // SAFETY: the caller's contract.
            return unsafe { self.selective_scan_backward_device(desc, stream) };
        }
        self.require_entry(
            core::mem::offset_of!(PluginApi, selective_scan_backward_saved),
            OP,
        )?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code =
            unsafe { (self.api.selective_scan_backward_saved)(desc, saved, bytes, stream.raw) };
        ok(self.api, code, OP)
    }

    /// SPEC 2, backward, on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn ssd_backward_device(&self, desc: &SsdBwdDesc, stream: &CudaStream) -> Result<()> {
        const OP: &str = "ssd_backward";
        self.require_entry(core::mem::offset_of!(PluginApi, ssd_backward), OP)?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code = unsafe { (self.api.ssd_backward)(desc, stream.raw) };
        ok(self.api, code, OP)
    }
    /// SPEC 3, backward, on device tensors, enqueued on `stream`.
    ///
    /// # Safety
    /// As [`CudaBackend::selective_scan_device`].
    pub unsafe fn causal_conv1d_backward_device(
        &self,
        desc: &Conv1dBwdDesc,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "causal_conv1d_backward";
        self.require_entry(core::mem::offset_of!(PluginApi, causal_conv1d_backward), OP)?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code = unsafe { (self.api.causal_conv1d_backward)(desc, stream.raw) };
        ok(self.api, code, OP)
    }

    // ------------------------------------------------------------ the block

    /// A Mamba2Block on the GPU: checks the config and uploads the weights once
    /// (converted to the config's storage type for the projections).
    pub fn block(&self, cfg: &BlockConfigC, w: &BlockWeights<'_>) -> Result<CudaBlock> {
        let c = weights_c(w);
        let mut handle: *mut c_void = core::ptr::null_mut();
        // SAFETY: every pointer of `c` comes from a live slice with its length.
        let code = unsafe { (self.api.block_create)(cfg, &c, &mut handle) };
        ok(self.api, code, "Mamba2Block")?;
        let entry = |end: usize| self.has_entry(end + core::mem::size_of::<usize>());
        Ok(CudaBlock {
            handle: BlockHandle(handle),
            api: self.api,
            cfg: *cfg,
            has_backward: entry(core::mem::offset_of!(PluginApi, block_backward)),
            has_saving: entry(core::mem::offset_of!(PluginApi, block_backward_saved)),
            has_set_weights: entry(core::mem::offset_of!(PluginApi, block_set_weights)),
            has_set_weights_device: entry(core::mem::offset_of!(
                PluginApi,
                block_set_weights_device
            )),
            adds: self.features() & abi::features::BLOCK_FORWARD_ADD != 0,
        })
    }

    /// The plugin's [`abi::features`] bits (0 for a plugin older than the entry).
    pub fn features(&self) -> u64 {
        if self
            .has_entry(core::mem::offset_of!(PluginApi, features) + core::mem::size_of::<usize>())
        {
            // SAFETY: the entry exists (checked); it takes nothing and returns bits.
            unsafe { (self.api.features)() }
        } else {
            0
        }
    }

    // ------------------------------------------------------------ timing

    /// Times `f` as a user calls it: `warmup` untimed calls, then `iters` calls, each
    /// between two CUDA events recorded on `stream` (no graph capture); returns the
    /// per-call times in microseconds, in call order.
    pub fn time_calls(
        &self,
        stream: &CudaStream,
        warmup: usize,
        iters: usize,
        mut f: impl FnMut() -> Result<()>,
    ) -> Result<Vec<f64>> {
        let api = self.api;
        let (mut e0, mut e1) = (0u64, 0u64);
        // SAFETY: creates two events into locals.
        ok(api, unsafe { (api.event_create)(&mut e0) }, "event_create")?;
        // SAFETY: as above.
        ok(api, unsafe { (api.event_create)(&mut e1) }, "event_create")?;
        let run = || -> Result<Vec<f64>> {
            for _ in 0..warmup {
                f()?;
            }
            // SAFETY: waits on a live stream.
            let code = unsafe { (api.stream_synchronize)(stream.raw) };
            ok(api, code, "stream_synchronize")?;
            let mut out = Vec::with_capacity(iters);
            for _ in 0..iters {
                // SAFETY: records a live event on a live stream.
                let code = unsafe { (api.event_record)(e0, stream.raw) };
                ok(api, code, "event_record")?;
                f()?;
                // SAFETY: as above.
                let code = unsafe { (api.event_record)(e1, stream.raw) };
                ok(api, code, "event_record")?;
                let mut ms = 0f32;
                // SAFETY: reads two recorded events into a local.
                let code = unsafe { (api.event_elapsed_ms)(e0, e1, &mut ms) };
                ok(api, code, "event_elapsed_ms")?;
                out.push(ms as f64 * 1000.0);
            }
            Ok(out)
        };
        let mut f2 = run;
        let r = f2();
        // SAFETY: destroys the two events made above, once.
        unsafe {
            (api.event_destroy)(e0);
        }
        // SAFETY: as above.
        unsafe {
            (api.event_destroy)(e1);
        }
        r
    }
}

/// The median of a sample (0 for an empty one).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// A CUDA stream of the plugin (destroyed on drop), or the default stream.
#[derive(Debug)]
pub struct CudaStream {
    raw: u64,
    api: Option<&'static PluginApi>,
}

impl CudaStream {
    /// The default (legacy) stream.
    pub const DEFAULT: CudaStream = CudaStream { raw: 0, api: None };
    /// The raw `CUstream` handle as the ABI passes it.
    pub fn raw(&self) -> u64 {
        self.raw
    }
    /// Waits for everything enqueued on this stream.
    pub fn synchronize(&self, backend: &CudaBackend) -> Result<()> {
        // SAFETY: waits on a live stream.
        let code = unsafe { (backend.api.stream_synchronize)(self.raw) };
        ok(backend.api, code, "stream_synchronize")
    }
}

impl Drop for CudaStream {
    fn drop(&mut self) {
        if let Some(api) = self.api {
            // SAFETY: our own stream, destroyed once.
            unsafe {
                (api.stream_destroy)(self.raw);
            }
        }
    }
}

/// Recorded device work ([`CudaBackend::record`]), destroyed on drop.
#[derive(Debug)]
pub struct CudaGraph {
    raw: u64,
    api: &'static PluginApi,
}

impl CudaGraph {
    /// Runs the recorded work on `stream` (enqueued; nothing waits).
    pub fn launch(&self, stream: &CudaStream) -> Result<()> {
        // SAFETY: a live graph of this plugin (made by `record`, which checked the entries).
        let code = unsafe { (self.api.graph_launch)(self.raw, stream.raw) };
        ok(self.api, code, "graph_launch")
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        if self.raw != 0 {
            // SAFETY: our own graph, destroyed once; the plugin waits for nothing, so the
            // owner drops it after the work that runs it (the decoder waits for its
            // downloads first).
            unsafe {
                (self.api.graph_destroy)(self.raw);
            }
        }
    }
}

/// Typed device memory of the plugin, freed on drop.
#[derive(Debug)]
pub struct DeviceBuffer<T: DeviceElement> {
    ptr: u64,
    len: usize,
    api: &'static PluginApi,
    /// The backend's staging pool (page-locked buffers for downloads).
    pool: std::sync::Arc<Pool>,
    _t: PhantomData<T>,
}

impl<T: DeviceElement> DeviceBuffer<T> {
    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// `true` when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// A dense descriptor of this buffer with the given shape (whose element count must
    /// not exceed the buffer's).
    pub fn desc(&self, dims: &[usize]) -> TensorDesc {
        let n: usize = dims.iter().product();
        assert!(
            n <= self.len,
            "shape {dims:?} needs {n} elements; the buffer has {}",
            self.len
        );
        TensorDesc::dense(self.ptr, T::CODE, dims)
    }
    /// Copies `src` (exactly `len` elements) to the device, ordered on `stream`.
    pub fn copy_from_host(&mut self, src: &[T], stream: &CudaStream) -> Result<()> {
        if src.len() != self.len {
            return Err(Error::invalid(
                "copy_from_host",
                "src",
                format!("{} elements for a buffer of {}", src.len(), self.len),
            ));
        }
        let bytes = core::mem::size_of_val(src);
        // SAFETY: `src` is a live slice of `bytes` bytes; the buffer holds as many.
        let code = unsafe {
            (self.api.memcpy_htod)(self.ptr, src.as_ptr() as *const c_void, bytes, stream.raw)
        };
        ok(self.api, code, "memcpy_htod")
    }
    /// Copies the buffer into `dst` (exactly `len` elements) after the work on `stream`
    /// (through a page-locked buffer of the backend's staging pool from 64 KiB to 64 MiB);
    /// returns once the copy has landed.
    pub fn copy_to_host(&self, dst: &mut [T], stream: &CudaStream) -> Result<()> {
        if dst.len() != self.len {
            return Err(Error::invalid(
                "copy_to_host",
                "dst",
                format!("{} elements for a buffer of {}", dst.len(), self.len),
            ));
        }
        // SAFETY: `dst` is a live mutable slice of exactly as many bytes as the buffer.
        unsafe {
            self.pool.dtoh(
                dst.as_mut_ptr() as *mut u8,
                self.ptr,
                core::mem::size_of_val(dst),
                stream.raw,
            )
        }
    }
    /// The buffer's contents.
    pub fn to_vec(&self, stream: &CudaStream) -> Result<Vec<T>> {
        let mut v = vec![T::default(); self.len];
        self.copy_to_host(&mut v, stream)?;
        Ok(v)
    }
}

impl<T: DeviceElement> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        // SAFETY: our own allocation, freed once. The legacy free waits for the device.
        unsafe {
            (self.api.mem_free)(self.ptr);
        }
    }
}

/// The weights of a Mamba2Block (SPEC 6), f32, in host memory, shaped as mamba-ssm
/// stores them (`conv1d.weight` (conv_dim, 1, W) given flat as (conv_dim, W)).
#[derive(Clone, Copy, Debug)]
pub struct BlockWeights<'a> {
    /// `in_proj.weight` (2 d_inner + 2 g N + h, d_model).
    pub in_proj: &'a [f32],
    /// `conv1d.weight` (conv_dim, W).
    pub conv_weight: &'a [f32],
    /// `conv1d.bias` (conv_dim).
    pub conv_bias: Option<&'a [f32]>,
    /// `dt_bias` (h).
    pub dt_bias: &'a [f32],
    /// `A_log` (h).
    pub a_log: &'a [f32],
    /// `D` (h).
    pub d: &'a [f32],
    /// `norm.weight` (d_inner).
    pub norm_weight: &'a [f32],
    /// `out_proj.weight` (d_model, d_inner).
    pub out_proj: &'a [f32],
}

#[derive(Debug)]
struct BlockHandle(*mut c_void);
// SAFETY: the plugin's block object is immutable after creation and its forward may be
// called from any thread (each call enqueues on the caller's stream).
unsafe impl Send for BlockHandle {}
// SAFETY: as above.
unsafe impl Sync for BlockHandle {}

/// A Mamba2Block whose weights live on the GPU (destroyed on drop).
#[derive(Debug)]
pub struct CudaBlock {
    handle: BlockHandle,
    api: &'static PluginApi,
    cfg: BlockConfigC,
    /// The plugin's table has `block_backward`.
    has_backward: bool,
    /// The plugin's table has `block_saved_bytes`, `block_forward_saving` and
    /// `block_backward_saved`.
    has_saving: bool,
    /// The plugin's table has `block_set_weights`.
    has_set_weights: bool,
    /// The plugin's table has `adamw` and `block_set_weights_device`.
    has_set_weights_device: bool,
    /// The plugin's block forward takes [`abi::block_flags::ADD`].
    adds: bool,
}

/// What [`CudaBlock::forward_train_host`] keeps on the device for
/// [`CudaBlock::backward_host_saved`]: the forward's input (in the block's storage type)
/// and its activations (in_proj's, the conv's, the SSD's and the norm's outputs), so the
/// backward neither uploads the input again nor recomputes the forward. Its device
/// memory comes from the backend's staging pool and goes back there on drop (so a
/// training step of the same shape allocates nothing); sizes are rounded up to 2 MiB.
#[derive(Debug)]
pub struct BlockSaved {
    /// (size, device pointer) of the input and of the activations.
    input: (usize, u64),
    acts: (usize, u64),
    acts_bytes: usize,
    batch: usize,
    seqlen: usize,
    pool: std::sync::Arc<Pool>,
}

impl Drop for BlockSaved {
    fn drop(&mut self) {
        // Every call that used the buffers waited for its stream before returning.
        self.pool
            .give_back(None, vec![self.input, self.acts], Vec::new(), true);
    }
}

/// Byte offsets of consecutive parts of `lens` bytes in one buffer, each 256-byte
/// aligned, and the buffer's length.
fn pack<const K: usize>(lens: [usize; K]) -> ([usize; K], usize) {
    let mut offs = [0usize; K];
    let mut at = 0usize;
    for (o, l) in offs.iter_mut().zip(lens) {
        *o = at.next_multiple_of(256);
        at = *o + l;
    }
    (offs, at)
}

/// `dst` from little-endian f32 bytes.
fn put_f32(dst: &mut [f32], b: &[u8]) {
    dst.iter_mut()
        .zip(b.chunks_exact(4))
        .for_each(|(d, c)| *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
}

/// `dst` from little-endian bytes of the storage type `code` (f32, bf16 or f16).
fn put_act(dst: &mut [f32], b: &[u8], code: u32) {
    match code {
        abi::dtype::BF16 => dst
            .iter_mut()
            .zip(b.chunks_exact(2))
            .for_each(|(d, c)| *d = bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        abi::dtype::F16 => dst
            .iter_mut()
            .zip(b.chunks_exact(2))
            .for_each(|(d, c)| *d = f16::from_le_bytes([c[0], c[1]]).to_f32()),
        _ => put_f32(dst, b),
    }
}

/// The size class of memory kept between a training forward and its backward: the
/// staging classes up to 2 MiB, whole multiples of 2 MiB above (steps of one shape reuse
/// the same buffers, with less rounding than a power of two).
fn kept_class(bytes: usize) -> usize {
    if bytes <= 2 << 20 {
        staging_class(bytes)
    } else {
        bytes.div_ceil(2 << 20) * (2 << 20)
    }
}

impl BlockSaved {
    /// Device memory held, in bytes (the input and the activations, each rounded up to
    /// its size class).
    pub fn bytes(&self) -> usize {
        self.input.0 + self.acts.0
    }
    /// (batch, seqlen) of the forward that filled it.
    pub fn dims(&self) -> (usize, usize) {
        (self.batch, self.seqlen)
    }
}

/// Where [`CudaBlock`]'s host-slice backward finds the forward's input.
enum BwdInput<'a> {
    /// Uploaded from the host; the activations are recomputed.
    Host(&'a [f32]),
    /// Kept on the device by the saving forward, with its activations.
    Saved(&'a BlockSaved),
}

/// What [`CudaBlock::forward_train`] keeps on the device for [`CudaBlock::backward`]: the
/// forward's activations for `batch` sequences of `seqlen` steps (in_proj's, the conv's,
/// the SSD's and the norm's outputs, in the block's storage type). Made by
/// [`CudaBlock::activations`]; freed on drop (which waits for the device).
#[derive(Debug)]
pub struct DeviceActivations {
    buf: DeviceBuffer<u8>,
    batch: usize,
    seqlen: usize,
    /// Filled by a training forward (a backward refuses it before).
    filled: bool,
}

impl DeviceActivations {
    /// Device memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
    /// (batch, seqlen) it is made for.
    pub fn dims(&self) -> (usize, usize) {
        (self.batch, self.seqlen)
    }
}

/// Every parameter gradient of a block on the device, f32, in one buffer (in_proj,
/// conv weight, conv bias, dt_bias, A_log, D, norm weight, out_proj, each in the weights'
/// own layout), overwritten by each [`CudaBlock::backward`]. Made by [`CudaBlock::grads`].
#[derive(Debug)]
pub struct DeviceGrads {
    buf: DeviceBuffer<f32>,
    lens: [usize; 8],
}

impl DeviceGrads {
    /// The whole buffer (the gradients one after the other, in the order above).
    pub fn buffer(&self) -> &DeviceBuffer<f32> {
        &self.buf
    }
    /// The whole buffer, to write (for example master weights, which share this layout:
    /// [`CudaBlock::set_weights_device`]).
    pub fn buffer_mut(&mut self) -> &mut DeviceBuffer<f32> {
        &mut self.buf
    }
    /// Elements of each gradient, in the order above.
    pub fn lens(&self) -> [usize; 8] {
        self.lens
    }
    /// The gradients on the host after the work on `stream` (`input`, `conv_init` and
    /// `ssm_init` are left empty: those live in the caller's buffers).
    pub fn to_host(&self, stream: &CudaStream) -> Result<BlockGrads> {
        let mut g = BlockGrads::default();
        self.copy_to_host(&mut g, stream)?;
        Ok(g)
    }

    /// As [`Self::to_host`], into `dst`'s vectors (each resized to its gradient's length,
    /// keeping its memory when it is already that long: a training loop that passes the
    /// same `dst` every step allocates nothing); `input`, `conv_init` and `ssm_init` are
    /// left as they are. One download.
    pub fn copy_to_host(&self, dst: &mut BlockGrads, stream: &CudaStream) -> Result<()> {
        let [a, b, c, d, e, f, g, h] = self.lens;
        let parts: [(&mut Vec<f32>, usize); 8] = [
            (&mut dst.in_proj, a),
            (&mut dst.conv_weight, b),
            (&mut dst.conv_bias, c),
            (&mut dst.dt_bias, d),
            (&mut dst.a_log, e),
            (&mut dst.d, f),
            (&mut dst.norm_weight, g),
            (&mut dst.out_proj, h),
        ];
        let bytes = self.buf.len() * 4;
        self.buf
            .pool
            .dtoh_with(self.buf.ptr, bytes, stream.raw, |all| {
                let mut at = 0;
                for (v, l) in parts {
                    v.resize(l, 0.0);
                    put_f32(v, &all[at..at + 4 * l]);
                    at += 4 * l;
                }
            })
    }
}

/// The inputs of [`CudaBlock::backward`] on device buffers, in the block's storage type
/// `T` (states f32).
#[derive(Debug)]
pub struct DeviceBackward<'a, T: DeviceElement> {
    /// The forward's input, (b, L, d_model).
    pub input: &'a DeviceBuffer<T>,
    /// The upstream gradient of the output, (b, L, d_model).
    pub dout: &'a DeviceBuffer<T>,
    /// Batch `b`.
    pub batch: usize,
    /// Sequence length `L`.
    pub seqlen: usize,
    /// What the training forward kept for this input and these initial states; `None`:
    /// the backward recomputes the forward (one forward's work more).
    pub activations: Option<&'a DeviceActivations>,
    /// The forward's initial (conv, ssm) states; `None`: zeros.
    pub init: Option<(&'a DeviceBuffer<f32>, &'a DeviceBuffer<f32>)>,
    /// The upstream gradients of the final (conv, ssm) states; `None`: zeros.
    pub dfinal: Option<(&'a DeviceBuffer<f32>, &'a DeviceBuffer<f32>)>,
}

/// The gradients of [`CudaBlock::backward_host`], f32, on the host, in the weights'
/// own layouts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockGrads {
    /// d/dinput, (b, L, d_model).
    pub input: Vec<f32>,
    /// d/d in_proj.weight, (d_in_proj, d_model).
    pub in_proj: Vec<f32>,
    /// d/d conv1d.weight, (conv_dim, W).
    pub conv_weight: Vec<f32>,
    /// d/d conv1d.bias, (conv_dim) (zeros for a block without a conv bias).
    pub conv_bias: Vec<f32>,
    /// d/d dt_bias, (h).
    pub dt_bias: Vec<f32>,
    /// d/d A_log, (h).
    pub a_log: Vec<f32>,
    /// d/d D, (h).
    pub d: Vec<f32>,
    /// d/d norm.weight, (d_inner).
    pub norm_weight: Vec<f32>,
    /// d/d out_proj.weight, (d_model, d_inner).
    pub out_proj: Vec<f32>,
    /// d/d the initial conv state, (b, conv_dim, W-1), when initial states were given.
    pub conv_init: Option<Vec<f32>>,
    /// d/d the initial SSM state, (b, h, p, N), when initial states were given.
    pub ssm_init: Option<Vec<f32>>,
}

impl CudaBlock {
    /// The configuration.
    pub fn config(&self) -> &BlockConfigC {
        &self.cfg
    }
    /// Elements of the conv state for `batch` rows: (b, conv_dim, W-1).
    pub fn conv_state_len(&self, batch: usize) -> usize {
        batch * self.cfg.conv_dim() * (self.cfg.d_conv as usize - 1)
    }
    /// Elements of the SSM state for `batch` rows: (b, h, p, N).
    pub fn ssm_state_len(&self, batch: usize) -> usize {
        batch * self.cfg.nheads() * self.cfg.headdim as usize * self.cfg.d_state as usize
    }

    /// The forward on raw device pointers, enqueued on `stream`.
    ///
    /// # Safety
    /// The pointers of `desc` are device memory of this plugin holding the tensors the
    /// ABI documents for [`BlockForwardDesc`], alive until the stream has run it.
    pub unsafe fn forward_raw(&self, desc: &BlockForwardDesc, stream: &CudaStream) -> Result<()> {
        // SAFETY: the caller's contract covers the pointers.
        let code = unsafe { (self.api.block_forward)(self.handle.0, desc, stream.raw) };
        ok(self.api, code, "Mamba2Block")
    }

    /// The device addresses of a forward's states after checking their lengths for
    /// `batch` rows; (0, 0) without states.
    fn state_ptrs(
        &self,
        op: &'static str,
        batch: usize,
        states: Option<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)>,
    ) -> Result<(u64, u64)> {
        match states {
            Some((c, s)) => {
                self.check_states(op, "states", batch, c.len(), s.len())?;
                Ok((c.ptr, s.ptr))
            }
            None => Ok((0, 0)),
        }
    }

    /// The descriptor of a forward on device buffers, after checking the storage type and
    /// every length.
    #[allow(clippy::too_many_arguments)]
    fn device_forward_desc<T: DeviceElement>(
        &self,
        op: &'static str,
        input: &DeviceBuffer<T>,
        batch: usize,
        seqlen: usize,
        out: &mut DeviceBuffer<T>,
        states: Option<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)>,
        continue_from_state: bool,
    ) -> Result<BlockForwardDesc> {
        self.check_storage::<T>(op, "input")?;
        let n = batch * seqlen * self.cfg.d_model as usize;
        if n == 0 || input.len() != n || out.len() != n {
            return Err(Error::invalid(
                op,
                "input/out",
                format!(
                    "need {n} elements (b={batch}, L={seqlen}, d_model={}), got {} and {}",
                    self.cfg.d_model,
                    input.len(),
                    out.len()
                ),
            ));
        }
        let (conv_state, ssm_state) = self.state_ptrs(op, batch, states)?;
        Ok(BlockForwardDesc {
            batch: batch as u32,
            seqlen: seqlen as u32,
            input: input.ptr,
            out: out.ptr,
            conv_state,
            ssm_state,
            has_state: (continue_from_state && conv_state != 0) as u32,
            flags: 0,
        })
    }

    /// The forward on device buffers, enqueued on `stream` (nothing waits): `input` and
    /// `out` are (b, L, d_model) in the block's storage type; `states` (conv (b,
    /// conv_dim, W-1), ssm (b, h, p, N), f32) are read when `continue_from_state` and
    /// overwritten with the state after the last step.
    pub fn forward<T: DeviceElement>(
        &self,
        input: &DeviceBuffer<T>,
        batch: usize,
        seqlen: usize,
        out: &mut DeviceBuffer<T>,
        states: Option<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)>,
        continue_from_state: bool,
        stream: &CudaStream,
    ) -> Result<()> {
        let desc = self.device_forward_desc(
            "Mamba2Block",
            input,
            batch,
            seqlen,
            out,
            states,
            continue_from_state,
        )?;
        // SAFETY: every pointer is a live buffer of this plugin with the length checked above.
        unsafe { self.forward_raw(&desc, stream) }
    }

    /// `true` when [`Self::forward_residual`] runs as one call (the plugin adds the
    /// block's output into the residual stream itself); otherwise it errors as
    /// `Unsupported` and a caller runs [`Self::forward`] and [`CudaBackend::axpy`].
    pub fn has_residual(&self) -> bool {
        self.adds
    }

    /// A residual block on device buffers, enqueued on `stream`: `h = h + block(h)` in
    /// place, `h` (b, L, d_model) in the block's storage type (the add done in f32 by the
    /// output projection, then rounded once); `states` as in [`Self::forward`]. Errors as
    /// `Unsupported` where the plugin predates it ([`Self::has_residual`]).
    pub fn forward_residual<T: DeviceElement>(
        &self,
        h: &mut DeviceBuffer<T>,
        batch: usize,
        seqlen: usize,
        states: Option<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)>,
        continue_from_state: bool,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "Mamba2Block residual forward";
        if !self.adds {
            return Err(Error::unsupported(
                BACKEND,
                OP,
                "the plugin's block forward predates the ADD flag; rebuild it",
            ));
        }
        self.check_storage::<T>(OP, "h")?;
        let n = batch * seqlen * self.cfg.d_model as usize;
        if n == 0 || h.len() != n {
            return Err(Error::invalid(
                OP,
                "h",
                format!(
                    "need {n} elements (b={batch}, L={seqlen}, d_model={}), got {}",
                    self.cfg.d_model,
                    h.len()
                ),
            ));
        }
        let (conv_state, ssm_state) = self.state_ptrs(OP, batch, states)?;
        let desc = BlockForwardDesc {
            batch: batch as u32,
            seqlen: seqlen as u32,
            input: h.ptr,
            out: h.ptr,
            conv_state,
            ssm_state,
            has_state: (continue_from_state && conv_state != 0) as u32,
            flags: abi::block_flags::ADD,
        };
        // SAFETY: `h` and the states are live buffers of this plugin with the lengths
        // checked above; the ABI allows `out == input`.
        unsafe { self.forward_raw(&desc, stream) }
    }

    /// The forward on host slices, continuing from `conv_state`/`ssm_state` (zeros for a
    /// fresh start) and leaving the new state there. `input`/`out` are (b, L, d_model) f32;
    /// for a bf16/f16 block they are rounded to the storage type on the way.
    pub fn forward_host(
        &self,
        backend: &CudaBackend,
        input: &[f32],
        batch: usize,
        seqlen: usize,
        conv_state: &mut [f32],
        ssm_state: &mut [f32],
        out: &mut [f32],
    ) -> Result<()> {
        self.forward_host_impl(
            backend, input, batch, seqlen, conv_state, ssm_state, out, None,
        )
    }

    /// [`Self::forward_host`]; with `keep`, the input goes to `keep`'s input buffer (its
    /// bytes in the storage type given) and the activations to its other buffer.
    #[allow(clippy::too_many_arguments)]
    fn forward_host_impl(
        &self,
        backend: &CudaBackend,
        input: &[f32],
        batch: usize,
        seqlen: usize,
        conv_state: &mut [f32],
        ssm_state: &mut [f32],
        out: &mut [f32],
        keep: Option<(&BlockSaved, &[u8])>,
    ) -> Result<()> {
        // Staging buffers of the backend's pool (no cuMemAlloc / cuMemFree per call).
        let n = batch * seqlen * self.cfg.d_model as usize;
        if input.len() != n || out.len() != n {
            return Err(Error::invalid(
                "Mamba2Block",
                "input/out",
                format!(
                    "need {n} elements (b={batch}, L={seqlen}, d_model={}), got {} and {}",
                    self.cfg.d_model,
                    input.len(),
                    out.len()
                ),
            ));
        }
        if conv_state.len() != self.conv_state_len(batch)
            || ssm_state.len() != self.ssm_state_len(batch)
        {
            return Err(Error::invalid(
                "Mamba2Block",
                "states",
                format!(
                    "conv state needs {} elements and ssm state {}, got {} and {}",
                    self.conv_state_len(batch),
                    self.ssm_state_len(batch),
                    conv_state.len(),
                    ssm_state.len()
                ),
            ));
        }
        let mut st = Staging::new(backend)?;
        let code = self.cfg.dtype;
        // The output and both states in one buffer, downloaded by one copy.
        let (y_bytes, cs_bytes, ss_bytes) = (
            n * abi::dtype::size(code),
            core::mem::size_of_val(conv_state),
            core::mem::size_of_val(ssm_state),
        );
        let (o, total) = pack([y_bytes, cs_bytes, ss_bytes]);
        let region = st.alloc(total)?;
        let at = |k: usize| region + o[k] as u64;
        let (y, cs, ss) = (at(0), at(1), at(2));
        st.upload_to(cs, as_bytes(conv_state))?;
        st.upload_to(ss, as_bytes(ssm_state))?;
        let x = match keep {
            Some((sv, bytes)) => {
                // `sv.input` holds at least `bytes.len()` bytes (sized from them).
                st.upload_to(sv.input.1, bytes)?;
                sv.input.1
            }
            None => st.bytes(&self.act_bytes(input))?,
        };
        let desc = BlockForwardDesc {
            batch: batch as u32,
            seqlen: seqlen as u32,
            input: x,
            out: y,
            conv_state: cs,
            ssm_state: ss,
            has_state: 1,
            flags: 0,
        };
        match keep {
            // SAFETY: every pointer is a staging buffer of this call with the length
            // checked or sized above, alive until `st` is dropped after its stream has
            // finished.
            None => unsafe { self.forward_raw(&desc, &st.stream) }?,
            Some((sv, _)) => {
                let (p, n) = (sv.acts.1, sv.acts_bytes);
                // SAFETY: as above; the input and the activations are `sv`'s buffers,
                // sized for this call, which outlive it.
                unsafe { self.forward_saving_raw(&desc, p, n, &st.stream) }?
            }
        }
        st.download_with(region, total, |b| {
            put_act(out, &b[o[0]..o[0] + y_bytes], code);
            put_f32(conv_state, &b[o[1]..o[1] + cs_bytes]);
            put_f32(ssm_state, &b[o[2]..o[2] + ss_bytes]);
        })
    }
}

impl CudaBlock {
    /// `true` when the plugin has the block's backward (an older plugin does not).
    pub fn has_backward(&self) -> bool {
        self.has_backward
    }

    /// `Unsupported` for `op` unless the plugin's table has the `entries` it needs.
    fn require(present: bool, op: &'static str, entries: &str) -> Result<()> {
        if present {
            Ok(())
        } else {
            Err(Error::unsupported(
                BACKEND,
                op,
                format!("the plugin predates the block's {entries}; rebuild it"),
            ))
        }
    }

    fn require_saving(&self, op: &'static str) -> Result<()> {
        Self::require(self.has_saving, op, "saving entries")
    }

    /// `true` when the plugin can replace the weights in place ([`Self::set_weights`]).
    pub fn has_set_weights(&self) -> bool {
        self.has_set_weights
    }

    /// Replaces the weights in place (the same shapes, and a conv bias exactly where the
    /// block was made with one), after all work on the device has finished: no
    /// allocation, no new handle, so a training step's optimiser update costs one upload.
    /// Errors as `Unsupported` where the plugin predates it (make a new block instead).
    /// After any other error the block holds a mix of old and new weights: drop it.
    pub fn set_weights(&mut self, w: &BlockWeights<'_>) -> Result<()> {
        const OP: &str = "Mamba2Block set_weights";
        Self::require(self.has_set_weights, OP, "set_weights entry")?;
        let c = weights_c(w);
        // SAFETY: the entry exists (checked); every pointer of `c` comes from a live
        // slice with its length; `&mut self` keeps this block's other calls out.
        let code = unsafe { (self.api.block_set_weights)(self.handle.0, &c) };
        ok(self.api, code, OP)
    }

    /// `true` when the plugin can replace the weights from master weights on the device
    /// ([`Self::set_weights_device`]) and has [`CudaBackend::adamw`].
    pub fn has_set_weights_device(&self) -> bool {
        self.has_set_weights_device
    }

    /// Elements of the f32 master weights of [`Self::set_weights_device`] (and of the
    /// gradients of [`DeviceGrads`], whose layout they share).
    pub fn master_len(&self) -> usize {
        self.grads_lens().iter().sum()
    }

    /// `w` packed as master weights for [`Self::set_weights_device`]: every weight one
    /// after the other in the order of [`DeviceGrads`] (zeros for an absent conv bias).
    pub fn pack_master(&self, w: &BlockWeights<'_>) -> Result<Vec<f32>> {
        const OP: &str = "Mamba2Block pack_master";
        let lens = self.grads_lens();
        let cb = w
            .conv_bias
            .map(<[f32]>::to_vec)
            .unwrap_or_else(|| vec![0.0; lens[2]]);
        let parts: [(&str, &[f32]); 8] = [
            ("in_proj", w.in_proj),
            ("conv_weight", w.conv_weight),
            ("conv_bias", &cb),
            ("dt_bias", w.dt_bias),
            ("a_log", w.a_log),
            ("d", w.d),
            ("norm_weight", w.norm_weight),
            ("out_proj", w.out_proj),
        ];
        let mut out = Vec::with_capacity(self.master_len());
        for ((name, t), l) in parts.into_iter().zip(lens) {
            if t.len() != l {
                return Err(Error::invalid(
                    OP,
                    name,
                    format!("{} elements for a weight of {l}", t.len()),
                ));
            }
            out.extend_from_slice(t);
        }
        Ok(out)
    }

    /// Replaces the weights from f32 master weights on the device (packed as
    /// [`Self::pack_master`] does; the conv bias is read only where the block has one),
    /// enqueued on `stream`: no host copy. Work reading this block on other streams must
    /// be finished or ordered before it. Errors as `Unsupported` where the plugin
    /// predates it.
    pub fn set_weights_device(
        &mut self,
        master: &DeviceBuffer<f32>,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "Mamba2Block set_weights_device";
        Self::require(self.has_set_weights_device, OP, "set_weights_device entry")?;
        if master.len() != self.master_len() {
            return Err(Error::invalid(
                OP,
                "master",
                format!(
                    "{} elements for a block of {}",
                    master.len(),
                    self.master_len()
                ),
            ));
        }
        // SAFETY: the entry exists (checked); `master` is a live buffer of this plugin
        // with the length checked above, freed only after the device has finished;
        // `&mut self` keeps this block's other calls out.
        let code = unsafe {
            (self.api.block_set_weights_device)(self.handle.0, master.ptr, master.len(), stream.raw)
        };
        ok(self.api, code, OP)
    }

    /// `true` when the plugin can keep a forward's activations for the backward
    /// ([`Self::forward_train_host`], [`Self::saved_bytes`]); an older plugin cannot.
    pub fn has_saving(&self) -> bool {
        self.has_saving
    }

    /// The bytes of device memory the saving forward fills for `batch` sequences of
    /// `seqlen` steps: (b L) (d_in_proj + conv_dim + 2 d_inner) elements of the storage
    /// type, each part rounded up to 256 bytes. 0 where the plugin predates it.
    pub fn saved_bytes(&self, batch: usize, seqlen: usize) -> Result<usize> {
        const OP: &str = "Mamba2Block saved_bytes";
        if !self.has_saving {
            return Ok(0);
        }
        let (b, l) = match (u32::try_from(batch), u32::try_from(seqlen)) {
            (Ok(b), Ok(l)) if b > 0 && l > 0 => (b, l),
            _ => {
                return Err(Error::invalid(
                    OP,
                    "batch/seqlen",
                    format!("must be in 1..=u32::MAX, got {batch} and {seqlen}"),
                ))
            }
        };
        let mut n = 0usize;
        // SAFETY: the entry exists (checked); `n` is writable; the block is alive.
        let code = unsafe { (self.api.block_saved_bytes)(self.handle.0, b, l, &mut n) };
        ok(self.api, code, OP)?;
        Ok(n)
    }

    /// The forward on raw device pointers that also keeps its activations in `saved`.
    ///
    /// # Safety
    /// As [`Self::forward_raw`]; `saved` is 256-byte aligned device memory of this plugin,
    /// `bytes` >= [`Self::saved_bytes`] long, alive until the backward that reads it ran.
    pub unsafe fn forward_saving_raw(
        &self,
        desc: &BlockForwardDesc,
        saved: u64,
        bytes: usize,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "Mamba2Block forward_saving";
        self.require_saving(OP)?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code = unsafe {
            (self.api.block_forward_saving)(self.handle.0, desc, saved, bytes, stream.raw)
        };
        ok(self.api, code, OP)
    }

    /// The backward on raw device pointers from the activations that
    /// [`Self::forward_saving_raw`] kept in `saved` for the same `input` and initial
    /// states (no recomputed forward).
    ///
    /// # Safety
    /// As [`Self::backward_raw`]; `saved` as the saving forward left it.
    pub unsafe fn backward_saved_raw(
        &self,
        desc: &BlockBackwardDesc,
        saved: u64,
        bytes: usize,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "Mamba2Block backward_saved";
        self.require_saving(OP)?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code = unsafe {
            (self.api.block_backward_saved)(self.handle.0, desc, saved, bytes, stream.raw)
        };
        ok(self.api, code, OP)
    }

    /// The training forward on host slices: as [`Self::forward_host`], and keeps on the
    /// device what [`Self::backward_host_saved`] reads (the input and the activations,
    /// [`BlockSaved::bytes`]). Errors as `Unsupported` where the plugin predates it.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_train_host(
        &self,
        backend: &CudaBackend,
        input: &[f32],
        batch: usize,
        seqlen: usize,
        conv_state: &mut [f32],
        ssm_state: &mut [f32],
        out: &mut [f32],
    ) -> Result<BlockSaved> {
        const OP: &str = "Mamba2Block forward_saving";
        self.require_saving(OP)?;
        let n = batch * seqlen * self.cfg.d_model as usize;
        if batch == 0 || seqlen == 0 || input.len() != n {
            return Err(Error::invalid(
                OP,
                "input",
                format!(
                    "need {n} elements (b={batch}, L={seqlen}, d_model={}), got {}",
                    self.cfg.d_model,
                    input.len()
                ),
            ));
        }
        let acts_bytes = self.saved_bytes(batch, seqlen)?;
        let bytes = self.act_bytes(input);
        let pool = &backend.pool;
        let acts = pool.alloc_class(kept_class(acts_bytes))?;
        let input_buf = match pool.alloc_class(kept_class(bytes.len())) {
            Ok(b) => b,
            Err(e) => {
                pool.give_back(None, vec![acts], Vec::new(), true);
                return Err(e);
            }
        };
        let saved = BlockSaved {
            input: input_buf,
            acts,
            acts_bytes,
            batch,
            seqlen,
            pool: pool.clone(),
        };
        self.forward_host_impl(
            backend,
            input,
            batch,
            seqlen,
            conv_state,
            ssm_state,
            out,
            Some((&saved, &bytes)),
        )?;
        Ok(saved)
    }

    /// `v` in the block's storage type, as bytes.
    /// (An f32 block borrows `v`'s bytes: no copy.)
    fn act_bytes<'v>(&self, v: &'v [f32]) -> alloc::borrow::Cow<'v, [u8]> {
        match self.cfg.dtype {
            abi::dtype::BF16 => v
                .iter()
                .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
                .collect(),
            abi::dtype::F16 => v
                .iter()
                .flat_map(|x| f16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => alloc::borrow::Cow::Borrowed(as_bytes(v)),
        }
    }

    fn check_storage<T: DeviceElement>(&self, op: &'static str, what: &'static str) -> Result<()> {
        if T::CODE == self.cfg.dtype {
            Ok(())
        } else {
            Err(Error::invalid(
                op,
                what,
                format!(
                    "is {}, the block stores {}",
                    abi::dtype::name(T::CODE),
                    abi::dtype::name(self.cfg.dtype)
                ),
            ))
        }
    }

    fn check_states(
        &self,
        op: &'static str,
        what: &'static str,
        batch: usize,
        conv: usize,
        ssm: usize,
    ) -> Result<()> {
        let (c, s) = (self.conv_state_len(batch), self.ssm_state_len(batch));
        if conv == c && ssm == s {
            Ok(())
        } else {
            Err(Error::invalid(
                op,
                what,
                format!("conv state needs {c} elements and ssm state {s}, got {conv} and {ssm}"),
            ))
        }
    }

    /// Device memory for a training forward's activations at (batch, seqlen)
    /// ([`Self::saved_bytes`] bytes). Errors as `Unsupported` where the plugin predates it.
    pub fn activations(
        &self,
        backend: &CudaBackend,
        batch: usize,
        seqlen: usize,
    ) -> Result<DeviceActivations> {
        self.require_saving("Mamba2Block activations")?;
        let bytes = self.saved_bytes(batch, seqlen)?;
        Ok(DeviceActivations {
            buf: backend.alloc::<u8>(bytes)?,
            batch,
            seqlen,
            filled: false,
        })
    }

    /// Device memory for every parameter gradient ([`DeviceGrads`]).
    pub fn grads(&self, backend: &CudaBackend) -> Result<DeviceGrads> {
        let lens = self.grads_lens();
        Ok(DeviceGrads {
            buf: backend.alloc::<f32>(lens.iter().sum())?,
            lens,
        })
    }

    /// The training forward on device buffers, enqueued on `stream` (nothing waits): as
    /// [`Self::forward`], and keeps its activations in `acts` (made for the same batch
    /// and seqlen by [`Self::activations`]) for [`Self::backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward_train<T: DeviceElement>(
        &self,
        input: &DeviceBuffer<T>,
        batch: usize,
        seqlen: usize,
        out: &mut DeviceBuffer<T>,
        states: Option<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)>,
        continue_from_state: bool,
        acts: &mut DeviceActivations,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "Mamba2Block forward_train";
        self.require_saving(OP)?;
        if acts.dims() != (batch, seqlen) {
            return Err(Error::invalid(
                OP,
                "acts",
                format!(
                    "made for (b, L) = {:?}, the call is ({batch}, {seqlen})",
                    acts.dims()
                ),
            ));
        }
        let desc =
            self.device_forward_desc(OP, input, batch, seqlen, out, states, continue_from_state)?;
        acts.filled = false;
        // SAFETY: every pointer is a live buffer of this plugin with the length checked
        // above; `acts` holds `saved_bytes(batch, seqlen)` bytes (its dims checked), and
        // every buffer is freed only after the device has finished (cuMemFree waits).
        unsafe { self.forward_saving_raw(&desc, acts.buf.ptr, acts.buf.len(), stream) }?;
        acts.filled = true;
        Ok(())
    }

    /// The backward on device buffers, enqueued on `stream` (nothing waits): the gradients
    /// of `sum(dout * out) + <dfinal, final states>` with respect to the input (into
    /// `dinput`, (b, L, d_model) in the storage type), every parameter (into `grads`) and,
    /// with `dinit`, the initial states (f32). From `pass.activations` where given (the
    /// training forward's, for the same input and initial states), else recomputing them.
    pub fn backward<T: DeviceElement>(
        &self,
        pass: &DeviceBackward<'_, T>,
        dinput: &mut DeviceBuffer<T>,
        grads: &mut DeviceGrads,
        dinit: Option<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)>,
        stream: &CudaStream,
    ) -> Result<()> {
        const OP: &str = "Mamba2Block backward";
        Self::require(self.has_backward, OP, "backward entry")?;
        self.check_storage::<T>(OP, "input")?;
        let (batch, seqlen) = (pass.batch, pass.seqlen);
        let n = batch * seqlen * self.cfg.d_model as usize;
        if n == 0 || pass.input.len() != n || pass.dout.len() != n || dinput.len() != n {
            return Err(Error::invalid(
                OP,
                "input/dout/dinput",
                format!(
                    "need {n} elements (b={batch}, L={seqlen}, d_model={}), got {}, {} and {}",
                    self.cfg.d_model,
                    pass.input.len(),
                    pass.dout.len(),
                    dinput.len()
                ),
            ));
        }
        let want = self.grads_lens();
        if grads.lens != want {
            return Err(Error::invalid(
                OP,
                "grads",
                format!(
                    "made for a block with gradients of {:?} elements, this one has {want:?}",
                    grads.lens
                ),
            ));
        }
        let mut ptrs = [0u64; 6];
        for (k, (name, st)) in [("init", pass.init), ("dfinal", pass.dfinal)]
            .into_iter()
            .enumerate()
        {
            if let Some((c, s)) = st {
                self.check_states(OP, name, batch, c.len(), s.len())?;
                ptrs[2 * k] = c.ptr;
                ptrs[2 * k + 1] = s.ptr;
            }
        }
        if let Some((c, s)) = &dinit {
            self.check_states(OP, "dinit", batch, c.len(), s.len())?;
            ptrs[4] = c.ptr;
            ptrs[5] = s.ptr;
        }
        if let Some(a) = pass.activations {
            self.require_saving(OP)?;
            if a.dims() != (batch, seqlen) || !a.filled {
                return Err(Error::invalid(
                    OP,
                    "activations",
                    format!(
                        "made for (b, L) = {:?}{}, the call is ({batch}, {seqlen})",
                        a.dims(),
                        if a.filled {
                            ""
                        } else {
                            " and not filled by a training forward"
                        }
                    ),
                ));
            }
        }
        let mut at = grads.buf.ptr;
        let mut offs = [0u64; 8];
        for (o, l) in offs.iter_mut().zip(grads.lens) {
            *o = at;
            at += (l * 4) as u64;
        }
        let desc = BlockBackwardDesc {
            batch: batch as u32,
            seqlen: seqlen as u32,
            input: pass.input.ptr,
            dout: pass.dout.ptr,
            conv_init: ptrs[0],
            ssm_init: ptrs[1],
            dconv_final: ptrs[2],
            dssm_final: ptrs[3],
            dinput: dinput.ptr,
            din_proj: offs[0],
            dconv_weight: offs[1],
            dconv_bias: offs[2],
            ddt_bias: offs[3],
            da_log: offs[4],
            dd: offs[5],
            dnorm_weight: offs[6],
            dout_proj: offs[7],
            dconv_init: ptrs[4],
            dssm_init: ptrs[5],
        };
        match pass.activations {
            // SAFETY: every pointer is a live buffer of this plugin with the length
            // checked above (the gradients' from `grads`, made for this configuration);
            // buffers are freed only after the device has finished (cuMemFree waits).
            None => unsafe { self.backward_raw(&desc, stream) },
            // SAFETY: as above; the activations hold `saved_bytes(batch, seqlen)` bytes
            // written by a training forward (dims and `filled` checked).
            Some(a) => unsafe { self.backward_saved_raw(&desc, a.buf.ptr, a.buf.len(), stream) },
        }
    }

    /// Elements of each parameter gradient, in [`DeviceGrads`]'s order.
    fn grads_lens(&self) -> [usize; 8] {
        let c = &self.cfg;
        let (dm, di, h, cd) = (c.d_model as usize, c.d_inner(), c.nheads(), c.conv_dim());
        [
            c.d_in_proj() * dm,
            cd * c.d_conv as usize,
            cd,
            h,
            h,
            h,
            di,
            dm * di,
        ]
    }

    /// The backward on raw device pointers, enqueued on `stream`.
    ///
    /// # Safety
    /// The pointers of `desc` are device memory of this plugin holding the tensors the
    /// ABI documents for [`BlockBackwardDesc`], alive until the stream has run it.
    pub unsafe fn backward_raw(&self, desc: &BlockBackwardDesc, stream: &CudaStream) -> Result<()> {
        const OP: &str = "Mamba2Block backward";
        Self::require(self.has_backward, OP, "backward entry")?;
        // SAFETY: the entry exists (checked); the caller's contract covers the pointers.
        let code = unsafe { (self.api.block_backward)(self.handle.0, desc, stream.raw) };
        ok(self.api, code, OP)
    }

    /// The backward on host slices: `input` and `dout` are (b, L, d_model) f32 (rounded
    /// to the storage type of a bf16/f16 block on the way); `init` the forward's initial
    /// (conv, ssm) states if it had them, `dfinal` the upstream gradients of the final
    /// states. One upload, one call, one download of every gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_host(
        &self,
        backend: &CudaBackend,
        input: &[f32],
        dout: &[f32],
        batch: usize,
        seqlen: usize,
        init: Option<(&[f32], &[f32])>,
        dfinal: Option<(&[f32], &[f32])>,
    ) -> Result<BlockGrads> {
        self.backward_impl(
            backend,
            BwdInput::Host(input),
            dout,
            batch,
            seqlen,
            init,
            dfinal,
        )
    }

    /// As [`Self::backward_host`], from what [`Self::forward_train_host`] kept on the
    /// device (its input and activations: one upload and one forward less). `init` must
    /// be the initial states that forward started from (None: zeros).
    pub fn backward_host_saved(
        &self,
        backend: &CudaBackend,
        saved: &BlockSaved,
        dout: &[f32],
        init: Option<(&[f32], &[f32])>,
        dfinal: Option<(&[f32], &[f32])>,
    ) -> Result<BlockGrads> {
        self.backward_impl(
            backend,
            BwdInput::Saved(saved),
            dout,
            saved.batch,
            saved.seqlen,
            init,
            dfinal,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_impl(
        &self,
        backend: &CudaBackend,
        input: BwdInput<'_>,
        dout: &[f32],
        batch: usize,
        seqlen: usize,
        init: Option<(&[f32], &[f32])>,
        dfinal: Option<(&[f32], &[f32])>,
    ) -> Result<BlockGrads> {
        const OP: &str = "Mamba2Block backward";
        let c = &self.cfg;
        let rows = batch * seqlen;
        let dm = c.d_model as usize;
        let (cs, ss) = (self.conv_state_len(batch), self.ssm_state_len(batch));
        let input_len = match input {
            BwdInput::Host(v) => v.len(),
            BwdInput::Saved(_) => rows * dm,
        };
        if rows == 0 || input_len != rows * dm || dout.len() != rows * dm {
            return Err(Error::invalid(
                OP,
                "input/dout",
                format!(
                    "need {} elements (b={batch}, L={seqlen}, d_model={dm}), got {} and {}",
                    rows * dm,
                    input_len,
                    dout.len()
                ),
            ));
        }
        for (name, st) in [("init", init), ("dfinal", dfinal)] {
            if let Some((a, b)) = st {
                if a.len() != cs || b.len() != ss {
                    return Err(Error::invalid(
                        OP,
                        name,
                        format!(
                            "conv state needs {cs} elements and ssm state {ss}, got {} and {}",
                            a.len(),
                            b.len()
                        ),
                    ));
                }
            }
        }
        let mut st = Staging::new(backend)?;
        let code = c.dtype;
        let d_input = match input {
            BwdInput::Host(v) => st.bytes(&self.act_bytes(v))?,
            BwdInput::Saved(sv) => sv.input.1,
        };
        let d_dout = st.bytes(&self.act_bytes(dout))?;
        let (conv_init, ssm_init) = match init {
            Some((a, b)) => (st.bytes(as_bytes(a))?, st.bytes(as_bytes(b))?),
            None => (0, 0),
        };
        let (dconv_final, dssm_final) = match dfinal {
            Some((a, b)) => (st.bytes(as_bytes(a))?, st.bytes(as_bytes(b))?),
            None => (0, 0),
        };
        let es = abi::dtype::size(code);
        // d input and every parameter's gradient (f32) in one buffer, one download.
        let want_init = init.is_some();
        let mut lens = [0usize; 10];
        lens[..8].copy_from_slice(&self.grads_lens());
        if want_init {
            (lens[8], lens[9]) = (cs, ss);
        }
        let total: usize = lens.iter().sum();
        let (o, region_bytes) = pack([rows * dm * es, total * 4]);
        let region = st.alloc(region_bytes)?;
        let (dinput, grads) = (region + o[0] as u64, region + o[1] as u64);
        let mut offs = [0u64; 10];
        let mut at = grads;
        for (o, l) in offs.iter_mut().zip(lens) {
            *o = if l == 0 { 0 } else { at };
            at += (l * 4) as u64;
        }
        let desc = BlockBackwardDesc {
            batch: batch as u32,
            seqlen: seqlen as u32,
            input: d_input,
            dout: d_dout,
            conv_init,
            ssm_init,
            dconv_final,
            dssm_final,
            dinput,
            din_proj: offs[0],
            dconv_weight: offs[1],
            dconv_bias: offs[2],
            ddt_bias: offs[3],
            da_log: offs[4],
            dd: offs[5],
            dnorm_weight: offs[6],
            dout_proj: offs[7],
            dconv_init: offs[8],
            dssm_init: offs[9],
        };
        match input {
            // SAFETY: every pointer is a staging buffer of this call with the length the
            // ABI documents (checked or sized above); they live until `st` is dropped,
            // after its stream has finished.
            BwdInput::Host(_) => unsafe { self.backward_raw(&desc, &st.stream) }?,
            BwdInput::Saved(sv) => {
                let (p, n) = (sv.acts.1, sv.acts_bytes);
                // SAFETY: as above; the input and activations are `sv`'s buffers, filled
                // by the saving forward for these (batch, seqlen), borrowed for the call.
                unsafe { self.backward_saved_raw(&desc, p, n, &st.stream) }?
            }
        }
        let (input_grad, parts) = st.download_with(region, region_bytes, |b| {
            let mut ig = vec![0f32; rows * dm];
            put_act(&mut ig, &b[o[0]..o[0] + rows * dm * es], code);
            let mut at = o[1];
            let parts: Vec<Vec<f32>> = lens
                .iter()
                .map(|&l| {
                    let mut v = vec![0f32; l];
                    put_f32(&mut v, &b[at..at + 4 * l]);
                    at += 4 * l;
                    v
                })
                .collect();
            (ig, parts)
        })?;
        let parts: [Vec<f32>; 10] = parts
            .try_into()
            .map_err(|_| unavailable("Mamba2Block backward: gradient parts"))?;
        let [in_proj, conv_weight, conv_bias, dt_bias, a_log, d, norm_weight, out_proj, ci, si] =
            parts;
        Ok(BlockGrads {
            input: input_grad,
            in_proj,
            conv_weight,
            conv_bias,
            dt_bias,
            a_log,
            d,
            norm_weight,
            out_proj,
            conv_init: want_init.then_some(ci),
            ssm_init: want_init.then_some(si),
        })
    }
}

impl Drop for CudaBlock {
    fn drop(&mut self) {
        // SAFETY: our own block, destroyed once.
        unsafe {
            (self.api.block_destroy)(self.handle.0);
        }
    }
}

// ---------------------------------------------------------------- Kernels on host slices

/// Device copies of one call's host tensors, given back together (to the backend's
/// staging pool, or freed) when the call's stream has finished.
struct Staging<'b> {
    be: &'b CudaBackend,
    /// A stream of the pool: not destroyed by this handle (`api: None`).
    stream: CudaStream,
    /// (size class or exact size, device pointer) of every buffer of this call.
    bufs: Vec<(usize, u64)>,
    /// (size class, address) of the page-locked buffers this call's uploads read.
    pinned: Vec<(usize, usize)>,
}

impl<'b> Staging<'b> {
    fn new(be: &'b CudaBackend) -> Result<Self> {
        Ok(Staging {
            be,
            stream: CudaStream {
                raw: be.pool.stream()?,
                api: None,
            },
            bufs: Vec::new(),
            pinned: Vec::new(),
        })
    }

    /// Device memory for `bytes` bytes, owned by this call.
    fn alloc(&mut self, bytes: usize) -> Result<u64> {
        // Reserve first, so that a failed push cannot lose the allocation.
        self.bufs.reserve(1);
        let b = self.be.pool.alloc(bytes)?;
        self.bufs.push(b);
        Ok(b.1)
    }

    fn bytes(&mut self, bytes: &[u8]) -> Result<u64> {
        let p = self.alloc(bytes.len())?;
        self.upload_to(p, bytes)?;
        Ok(p)
    }

    /// Copies `bytes` to the device memory at `dst` (at least as long), ordered on this
    /// call's stream: through a page-locked buffer of the pool where it has one.
    fn upload_to(&mut self, dst: u64, bytes: &[u8]) -> Result<()> {
        let mut src = bytes.as_ptr() as *const c_void;
        if let Some(b) = self.be.pool.pinned(bytes.len()) {
            self.pinned.push(b);
            // SAFETY: the pinned buffer holds at least `bytes.len()` bytes (its size
            // class), is this call's alone, and does not overlap the caller's slice.
            unsafe {
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), b.1 as *mut u8, bytes.len());
            }
            src = b.1 as *const c_void;
        }
        // SAFETY: `src` holds `bytes.len()` readable bytes (the caller's slice, or the
        // pinned copy, which is kept unchanged until this call's stream has finished);
        // `dst` holds as many.
        let code = unsafe { (self.be.api.memcpy_htod)(dst, src, bytes.len(), self.stream.raw) };
        ok(self.be.api, code, "memcpy_htod")
    }

    fn tensor<E: Element>(&mut self, t: &Tensor<'_, E>) -> Result<TensorDesc> {
        let code = abi::dtype_code(E::DTYPE);
        let bytes = as_bytes(t.data);
        let p = self.bytes(bytes)?;
        Ok(TensorDesc::dense(p, code, t.dims()))
    }

    fn opt<E: Element>(&mut self, t: &Option<Tensor<'_, E>>) -> Result<TensorDesc> {
        match t {
            Some(t) => self.tensor(t),
            None => Ok(TensorDesc::NONE),
        }
    }

    fn i32s(&mut self, t: &Option<Tensor<'_, i32>>) -> Result<TensorDesc> {
        match t {
            Some(t) => {
                // SAFETY: i32 is plain old data; the slice is live for the call.
                let bytes = unsafe {
                    core::slice::from_raw_parts(
                        t.data.as_ptr() as *const u8,
                        core::mem::size_of_val(t.data),
                    )
                };
                let p = self.bytes(bytes)?;
                Ok(TensorDesc::dense(p, abi::dtype::I32, t.dims()))
            }
            None => Ok(TensorDesc::NONE),
        }
    }

    fn output(&mut self, len: usize, code: u32, dims: &[usize]) -> Result<TensorDesc> {
        let p = self.alloc(len * abi::dtype::size(code))?;
        Ok(TensorDesc::dense(p, code, dims))
    }

    /// An output buffer like [`Staging::output`] when `want`, else the absent tensor.
    fn output_if(
        &mut self,
        want: bool,
        len: usize,
        code: u32,
        dims: &[usize],
    ) -> Result<TensorDesc> {
        if want {
            self.output(len, code, dims)
        } else {
            Ok(TensorDesc::NONE)
        }
    }

    /// Like [`Staging::slice`], for a host slice that may be absent.
    fn slice_opt<E: Element>(&mut self, v: Option<&[E]>, dims: &[usize]) -> Result<TensorDesc> {
        match v {
            Some(v) => self.slice(v, dims),
            None => Ok(TensorDesc::NONE),
        }
    }

    /// A dense device copy of a host slice with the given shape.
    fn slice<E: Element>(&mut self, v: &[E], dims: &[usize]) -> Result<TensorDesc> {
        let p = self.bytes(as_bytes(v))?;
        Ok(TensorDesc::dense(p, abi::dtype_code(E::DTYPE), dims))
    }

    /// A new vector holding the device tensor `d` (`E` matches its type).
    fn fetch<E: Element>(&self, d: &TensorDesc) -> Result<Vec<E>> {
        let mut v = vec![E::from_f32(0.0); d.numel() as usize];
        self.download(d, &mut v)?;
        Ok(v)
    }

    /// [`Staging::fetch`] into `v`: resized to the tensor's length (its allocation kept
    /// where large enough), then overwritten.
    fn fetch_into<E: Element>(&self, d: &TensorDesc, v: &mut Vec<E>) -> Result<()> {
        let n = d.numel() as usize;
        if v.capacity() < n {
            *v = vec![E::from_f32(0.0); n];
        } else {
            v.truncate(n);
            v.resize(n, E::from_f32(0.0));
        }
        self.download(d, v)
    }

    /// [`Staging::fetch_into`] for a tensor that may be absent (`None` then).
    fn fetch_opt_into<E: Element>(&self, d: &TensorDesc, v: &mut Option<Vec<E>>) -> Result<()> {
        if d.is_none() {
            *v = None;
            Ok(())
        } else {
            self.fetch_into(d, v.get_or_insert_with(Vec::new))
        }
    }

    /// Like [`Staging::fetch`], for a tensor that may be absent.
    fn fetch_opt<E: Element>(&self, d: &TensorDesc) -> Result<Option<Vec<E>>> {
        if d.is_none() {
            Ok(None)
        } else {
            self.fetch(d).map(Some)
        }
    }

    /// `bytes` bytes of this call's device memory at `src`, handed to `f` after the
    /// call's work (one copy, one wait).
    fn download_with<R>(&self, src: u64, bytes: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.be.pool.dtoh_with(src, bytes, self.stream.raw, f)
    }

    fn download<E: Element>(&self, d: &TensorDesc, dst: &mut [E]) -> Result<()> {
        // SAFETY: `dst` is a live mutable slice of exactly as many bytes; `d` is our
        // allocation of as many.
        unsafe {
            self.be.pool.dtoh(
                dst.as_mut_ptr() as *mut u8,
                d.ptr,
                core::mem::size_of_val(dst),
                self.stream.raw,
            )
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        // SAFETY: waits on this call's stream (live: it came from the pool or was made
        // for this call).
        let idle = unsafe { (self.be.api.stream_synchronize)(self.stream.raw) } == status::OK;
        self.be.pool.give_back(
            Some(self.stream.raw),
            core::mem::take(&mut self.bufs),
            core::mem::take(&mut self.pinned),
            idle,
        );
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, StagingPool> {
        // A panic while holding the lock leaves the lists consistent (plain pushes/pops).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream for a host-slice call: from the pool, or a new one.
    fn stream(&self) -> Result<u64> {
        if let Some(s) = self.lock().streams.pop() {
            return Ok(s);
        }
        let mut s = 0u64;
        // SAFETY: writes a handle into a local.
        let code = unsafe { (self.api.stream_create)(&mut s) };
        ok(self.api, code, "stream_create")?;
        Ok(s)
    }

    /// Device memory of size class `class` (or exactly `class` bytes when the pool is
    /// off): (size, pointer), from the pool when it holds a buffer of the class.
    fn alloc_class(&self, class: usize) -> Result<(usize, u64)> {
        let size = {
            let mut pool = self.lock();
            if pool.enabled {
                if let Some(i) = pool.bufs.iter().position(|b| b.0 == class) {
                    let b = pool.bufs.swap_remove(i);
                    pool.bytes -= b.0;
                    return Ok(b);
                }
            }
            class.max(1)
        };
        let mut p = 0u64;
        // SAFETY: writes a device pointer into a local.
        let mut code = unsafe { (self.api.mem_alloc)(size, &mut p) };
        if code == status::OUT_OF_MEMORY {
            // What the pool keeps may be what is missing: give it back and try again.
            self.release();
            // SAFETY: as above.
            code = unsafe { (self.api.mem_alloc)(size, &mut p) };
        }
        ok(self.api, code, "mem_alloc")?;
        Ok((size, p))
    }

    /// Device memory for a host-slice call: (size, pointer).
    fn alloc(&self, bytes: usize) -> Result<(usize, u64)> {
        let class = if self.lock().enabled {
            staging_class(bytes)
        } else {
            bytes.max(1)
        };
        self.alloc_class(class)
    }

    /// A page-locked host buffer of at least `bytes` bytes, (size class, address), where
    /// the pool uses them and `bytes` is large enough to gain from one; `None` otherwise
    /// or when the plugin cannot give one (the caller copies from pageable memory).
    fn pinned(&self, bytes: usize) -> Option<(usize, usize)> {
        let class = {
            let mut pool = self.lock();
            if !pool.pinned_on || !(PINNED_MIN..=PINNED_MAX).contains(&bytes) {
                return None;
            }
            let class = staging_class(bytes);
            if let Some(i) = pool.pinned.iter().position(|b| b.0 == class) {
                let b = pool.pinned.swap_remove(i);
                pool.pinned_bytes -= b.0;
                return Some(b);
            }
            class
        };
        let mut p: *mut c_void = core::ptr::null_mut();
        // SAFETY: the entry exists (`pinned_on` checked the table); writes into a local.
        let code = unsafe { (self.api.host_alloc)(class, &mut p) };
        (code == status::OK && !p.is_null()).then_some((class, p as usize))
    }

    /// Copies `bytes` bytes from the device address `src` into `dst` after the work on
    /// `stream`, through a page-locked buffer where the pool gives one (much faster into
    /// freshly allocated host memory); returns once the bytes have landed.
    ///
    /// # Safety
    /// `dst` holds `bytes` writable bytes; `src` is device memory of at least as many.
    unsafe fn dtoh(&self, dst: *mut u8, src: u64, bytes: usize, stream: u64) -> Result<()> {
        let pinned = self.pinned(bytes);
        let to = match pinned {
            Some(b) => b.1 as *mut c_void,
            None => dst as *mut c_void,
        };
        // SAFETY: `to` holds `bytes` writable bytes (the caller's memory or the pinned
        // buffer of at least that size class); the plugin's copy returns once it has
        // landed.
        let code = unsafe { (self.api.memcpy_dtoh)(to, src, bytes, stream) };
        if let Some(b) = pinned {
            if code == status::OK {
                // SAFETY: the copy has landed in the pinned buffer, which holds `bytes`
                // bytes and does not overlap `dst` (the caller's).
                unsafe { core::ptr::copy_nonoverlapping(b.1 as *const u8, dst, bytes) };
            }
            self.give_back(None, Vec::new(), vec![b], code == status::OK);
        }
        ok(self.api, code, "memcpy_dtoh")
    }

    /// Copies `bytes` bytes from the device address `src` after the work on `stream` and
    /// hands them to `f` (from a page-locked buffer where the pool gives one, else from a
    /// host copy): several results in one copy and one wait.
    fn dtoh_with<R>(
        &self,
        src: u64,
        bytes: usize,
        stream: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        match self.pinned(bytes) {
            Some(b) => {
                // SAFETY: the pinned buffer holds at least `bytes` bytes (its size class)
                // and is this call's alone; the plugin's copy returns once it has landed.
                let code =
                    unsafe { (self.api.memcpy_dtoh)(b.1 as *mut c_void, src, bytes, stream) };
                let r = (code == status::OK).then(|| {
                    // SAFETY: `bytes` initialised bytes of the pinned buffer (just landed),
                    // not written again until it goes back to the pool below.
                    f(unsafe { core::slice::from_raw_parts(b.1 as *const u8, bytes) })
                });
                self.give_back(None, Vec::new(), vec![b], code == status::OK);
                ok(self.api, code, "memcpy_dtoh")?;
                r.ok_or_else(|| unavailable("memcpy_dtoh: no result"))
            }
            None => {
                let mut v = vec![0u8; bytes];
                // SAFETY: `v` holds `bytes` writable bytes; `src` is device memory of as
                // many; the plugin's copy returns once it has landed.
                let code = unsafe {
                    (self.api.memcpy_dtoh)(v.as_mut_ptr() as *mut c_void, src, bytes, stream)
                };
                ok(self.api, code, "memcpy_dtoh")?;
                Ok(f(&v))
            }
        }
    }

    /// Takes back a finished call's stream and buffers; `idle` says its stream was
    /// synchronised (else everything is freed, as before the pool existed).
    fn give_back(
        &self,
        stream: Option<u64>,
        bufs: Vec<(usize, u64)>,
        pinned: Vec<(usize, usize)>,
        idle: bool,
    ) {
        let mut free = Vec::new();
        let mut free_host = Vec::new();
        let mut destroy = None;
        {
            let mut pool = self.lock();
            for b in bufs {
                if idle && pool.enabled && pool.bytes + b.0 <= STAGING_POOL_BYTES {
                    pool.bytes += b.0;
                    pool.bufs.push(b);
                } else {
                    free.push(b.1);
                }
            }
            for b in pinned {
                if idle && pool.pinned_on && pool.pinned_bytes + b.0 <= STAGING_PINNED_BYTES {
                    pool.pinned_bytes += b.0;
                    pool.pinned.push(b);
                } else {
                    free_host.push(b.1);
                }
            }
            if let Some(stream) = stream {
                if idle && pool.streams.len() < STAGING_POOL_STREAMS {
                    pool.streams.push(stream);
                } else {
                    destroy = Some(stream);
                }
            }
        }
        self.free(free, free_host, destroy.into_iter().collect());
    }

    fn free(&self, bufs: Vec<u64>, pinned: Vec<usize>, streams: Vec<u64>) {
        for p in bufs {
            // SAFETY: our own allocation, no longer used (its call has ended), freed once.
            unsafe {
                (self.api.mem_free)(p);
            }
        }
        for p in pinned {
            // SAFETY: our own page-locked buffer (so the entry exists), no copy in flight
            // on it (its call has ended), freed once.
            unsafe {
                (self.api.host_free)(p as *mut c_void);
            }
        }
        for s in streams {
            // SAFETY: our own stream, destroyed once.
            unsafe {
                (self.api.stream_destroy)(s);
            }
        }
    }

    /// Frees everything kept; returns the bytes of device memory freed.
    fn release(&self) -> usize {
        let (bufs, pinned, streams, bytes) = {
            let mut pool = self.lock();
            let bytes = pool.bytes;
            pool.bytes = 0;
            pool.pinned_bytes = 0;
            (
                core::mem::take(&mut pool.bufs),
                core::mem::take(&mut pool.pinned),
                core::mem::take(&mut pool.streams),
                bytes,
            )
        };
        self.free(
            bufs.into_iter().map(|b| b.1).collect(),
            pinned.into_iter().map(|b| b.1).collect(),
            streams,
        );
        bytes
    }
}

impl CudaBackend {
    /// Frees the device memory, page-locked host memory and streams that the host-slice
    /// calls keep between calls (see [`STAGING_POOL_BYTES`], [`STAGING_PINNED_BYTES`]);
    /// returns the bytes of device memory freed.
    pub fn release_staging(&self) -> usize {
        self.pool.release()
    }

    /// The work of `selective_scan_backward` on host slices: the arguments checked and
    /// staged, the backward enqueued; the gradients are in the returned staging's
    /// buffers, which `fetch` / `fetch_into` bring back.
    fn scan_backward_run<'s, T: Element>(
        &'s self,
        args: &SelectiveScanArgs<'_, T, f32>,
        dout: &[T],
        dlast_state: Option<&[f32]>,
    ) -> Result<(Staging<'s>, SelectiveScanBwdDesc)> {
        const OP: &str = "selective_scan_backward";
        let dims = args.validate_backward(dout.len(), dlast_state.map(<[f32]>::len))?;
        let code = check_dtype::<T>(OP)?;
        let f32c = abi::dtype::F32;
        let (io, st) = (dims.io_shape(), dims.state_shape());
        let io_n: usize = io.iter().product();
        let st_n: usize = st.iter().product();
        let (d, n) = (dims.dim, dims.dstate);
        let mut s = Staging::new(self)?;
        let fwd = SelectiveScanDesc {
            u: s.tensor(&args.u)?,
            delta: s.tensor(&args.delta)?,
            a: s.tensor(&args.a)?,
            b: s.tensor(&args.b)?,
            c: s.tensor(&args.c)?,
            d: s.opt(&args.d)?,
            z: s.opt(&args.z)?,
            delta_bias: s.opt(&args.delta_bias)?,
            initial_state: s.opt(&args.initial_state)?,
            out: TensorDesc::NONE,
            last_state: TensorDesc::NONE,
            delta_softplus: args.delta_softplus as u32,
            reserved: 0,
        };
        let desc = SelectiveScanBwdDesc {
            fwd,
            dout: s.slice(dout, &io)?,
            dlast_state: s.slice_opt(dlast_state, &st)?,
            du: s.output(io_n, code, &io)?,
            ddelta: s.output(io_n, code, &io)?,
            da: s.output(d * n, f32c, &[d, n])?,
            db: s.output(args.b.data.len(), code, args.b.dims())?,
            dc: s.output(args.c.data.len(), code, args.c.dims())?,
            dd: s.output_if(args.d.is_some(), d, f32c, &[d])?,
            dz: s.output_if(args.z.is_some(), io_n, code, &io)?,
            ddelta_bias: s.output_if(args.delta_bias.is_some(), d, f32c, &[d])?,
            dinitial_state: s.output_if(args.initial_state.is_some(), st_n, f32c, &st)?,
        };
        let saved = if self.scan_training_path() {
            // SAFETY: only the descriptor's shapes are read.
            unsafe { self.selective_scan_saved_bytes(&desc.fwd) }?
        } else {
            0
        };
        if saved > 0 {
            // The training pair: the saving forward (its outputs to scratch), then the
            // backward from its checkpoints.
            let mut fwd = desc.fwd;
            fwd.out = s.output(io_n, code, &io)?;
            let ck = s.alloc(saved)?;
            // SAFETY: every descriptor points to a staging buffer that lives until `s`
            // drops, after the downloads below have waited for the stream.
            unsafe { self.selective_scan_forward_saving_device(&fwd, ck, saved, &s.stream) }?;
            // SAFETY: as above; `ck` holds what the forward wrote.
            unsafe { self.selective_scan_backward_saved_device(&desc, ck, saved, &s.stream) }?;
        } else {
            // SAFETY: every descriptor points to a staging buffer that lives until `s`
            // drops, after the downloads below have waited for the stream.
            unsafe { self.selective_scan_backward_device(&desc, &s.stream) }?;
        }
        Ok((s, desc))
    }

    /// The work of `causal_conv1d_backward` on host slices (see `scan_backward_run`).
    fn conv_backward_run<'s, T: Element>(
        &'s self,
        args: &CausalConv1dArgs<'_, T, f32>,
        dout: &[T],
        dfinal_states: Option<&[f32]>,
    ) -> Result<(Staging<'s>, Conv1dBwdDesc)> {
        const OP: &str = "causal_conv1d_backward";
        let dims = args.validate_backward(dout.len(), dfinal_states.map(<[f32]>::len))?;
        let code = check_dtype::<T>(OP)?;
        let f32c = abi::dtype::F32;
        let (c, w) = (dims.channels, dims.width);
        let st = dims.state_shape();
        let st_n: usize = st.iter().product();
        let mut s = Staging::new(self)?;
        let fwd = Conv1dDesc {
            x: s.tensor(&args.x)?,
            weight: s.tensor(&args.weight)?,
            bias: s.opt(&args.bias)?,
            initial_states: s.opt(&args.initial_states)?,
            out: TensorDesc::NONE,
            final_states: TensorDesc::NONE,
            activation: match args.activation {
                Activation::None => activation::NONE,
                Activation::Silu => activation::SILU,
            },
            channel_last: (args.layout == ConvLayout::ChannelLast) as u32,
        };
        let desc = Conv1dBwdDesc {
            fwd,
            dout: s.slice(dout, args.x.dims())?,
            dfinal_states: s.slice_opt(dfinal_states, &st)?,
            dx: s.output(args.x.data.len(), code, args.x.dims())?,
            dweight: s.output(c * w, f32c, &[c, w])?,
            dbias: s.output_if(args.bias.is_some(), c, f32c, &[c])?,
            dinitial_states: s.output_if(args.initial_states.is_some(), st_n, f32c, &st)?,
        };
        // SAFETY: as in selective_scan_backward: staging buffers outlive the call.
        unsafe { self.causal_conv1d_backward_device(&desc, &s.stream) }?;
        Ok((s, desc))
    }

    /// The work of `ssd_backward` on host slices (see `scan_backward_run`).
    fn ssd_backward_run<'s, T: Element>(
        &'s self,
        args: &SsdArgs<'_, T, f32>,
        dout: &[T],
        dfinal_states: Option<&[f32]>,
    ) -> Result<(Staging<'s>, SsdBwdDesc)> {
        const OP: &str = "ssd_backward";
        let dims = args.validate_backward(dout.len(), dfinal_states.map(<[f32]>::len))?;
        let code = check_dtype::<T>(OP)?;
        let f32c = abi::dtype::F32;
        let (io, st) = (dims.io_shape(), dims.state_shape());
        let io_n: usize = io.iter().product();
        let st_n: usize = st.iter().product();
        let (b, l, h) = (dims.batch, dims.seqlen, dims.nheads);
        let mut s = Staging::new(self)?;
        let limit = args.dt_limit;
        let fwd = SsdDesc {
            x: s.tensor(&args.x)?,
            dt: s.tensor(&args.dt)?,
            a: s.tensor(&args.a)?,
            b: s.tensor(&args.b)?,
            c: s.tensor(&args.c)?,
            d: s.opt(&args.d)?,
            z: s.opt(&args.z)?,
            dt_bias: s.opt(&args.dt_bias)?,
            initial_states: s.opt(&args.initial_states)?,
            seq_idx: s.i32s(&args.seq_idx)?,
            out: TensorDesc::NONE,
            final_states: TensorDesc::NONE,
            dt_softplus: args.dt_softplus as u32,
            has_dt_limit: limit.is_some() as u32,
            dt_lo: limit.map_or(0.0, |l| l.0),
            dt_hi: limit.map_or(f32::INFINITY, |l| l.1),
            chunk_size: args.chunk_size as u32,
            reserved: 0,
        };
        let desc = SsdBwdDesc {
            fwd,
            dout: s.slice(dout, &io)?,
            dfinal_states: s.slice_opt(dfinal_states, &st)?,
            dx: s.output(io_n, code, &io)?,
            ddt: s.output(b * l * h, code, &[b, l, h])?,
            da: s.output(h, f32c, &[h])?,
            db: s.output(args.b.data.len(), code, args.b.dims())?,
            dc: s.output(args.c.data.len(), code, args.c.dims())?,
            dd: match &args.d {
                Some(t) => s.output(t.data.len(), f32c, t.dims())?,
                None => TensorDesc::NONE,
            },
            dz: s.output_if(args.z.is_some(), io_n, code, &io)?,
            ddt_bias: s.output_if(args.dt_bias.is_some(), h, f32c, &[h])?,
            dinitial_states: s.output_if(args.initial_states.is_some(), st_n, f32c, &st)?,
        };
        // SAFETY: as in selective_scan_backward: staging buffers outlive the call.
        unsafe { self.ssd_backward_device(&desc, &s.stream) }?;
        Ok((s, desc))
    }
}

impl Drop for Pool {
    /// The last holder (the backend, a `DeviceBuffer`, a `BlockSaved`) frees what is kept.
    fn drop(&mut self) {
        self.release();
    }
}

impl DeviceElement for u8 {
    const CODE: u32 = abi::dtype::NONE;
}

fn as_bytes<E: Element>(v: &[E]) -> &[u8] {
    // SAFETY: the Element types (f32, f64, f16, bf16) are plain old data without
    // padding; any initialised value is a valid byte sequence.
    unsafe { core::slice::from_raw_parts(v.as_ptr() as *const u8, core::mem::size_of_val(v)) }
}

fn check_dtype<T: Element>(op: &'static str) -> Result<u32> {
    let code = abi::dtype_code(T::DTYPE);
    if code == abi::dtype::NONE {
        return Err(Error::unsupported(
            BACKEND,
            op,
            format!("storage type {}", T::DTYPE),
        ));
    }
    Ok(code)
}

impl<T: Element> Kernels<T, f32> for CudaBackend {
    fn selective_scan(
        &self,
        args: &SelectiveScanArgs<'_, T, f32>,
        out: &mut [T],
        last_state: Option<&mut [f32]>,
    ) -> Result<()> {
        const OP: &str = "selective_scan";
        let dims = args.validate_forward(out.len(), last_state.as_deref().map(<[f32]>::len))?;
        let code = check_dtype::<T>(OP)?;
        let mut s = Staging::new(self)?;
        let desc = SelectiveScanDesc {
            u: s.tensor(&args.u)?,
            delta: s.tensor(&args.delta)?,
            a: s.tensor(&args.a)?,
            b: s.tensor(&args.b)?,
            c: s.tensor(&args.c)?,
            d: s.opt(&args.d)?,
            z: s.opt(&args.z)?,
            delta_bias: s.opt(&args.delta_bias)?,
            initial_state: s.opt(&args.initial_state)?,
            out: s.output(out.len(), code, &dims.io_shape())?,
            last_state: match &last_state {
                Some(ls) => s.output(ls.len(), abi::dtype::F32, &dims.state_shape())?,
                None => TensorDesc::NONE,
            },
            delta_softplus: args.delta_softplus as u32,
            reserved: 0,
        };
        let saved = if self.scan_training_path() {
            // SAFETY: only the descriptor's shapes are read.
            unsafe { self.selective_scan_saved_bytes(&desc) }?
        } else {
            0
        };
        if saved > 0 {
            let ck = s.alloc(saved)?;
            // SAFETY: as below; `ck` holds `saved` bytes until `s` drops.
            unsafe { self.selective_scan_forward_saving_device(&desc, ck, saved, &s.stream) }?;
        } else {
            // SAFETY: every descriptor points to a staging buffer that lives until `s`
            // drops, after the downloads below have waited for the stream.
            unsafe { self.selective_scan_device(&desc, &s.stream) }?;
        }
        s.download(&desc.out, out)?;
        if let Some(ls) = last_state {
            s.download(&desc.last_state, ls)?;
        }
        Ok(())
    }

    fn selective_scan_backward(
        &self,
        args: &SelectiveScanArgs<'_, T, f32>,
        dout: &[T],
        dlast_state: Option<&[f32]>,
    ) -> Result<SelectiveScanGrads<T, f32>> {
        let (s, desc) = self.scan_backward_run(args, dout, dlast_state)?;
        Ok(SelectiveScanGrads {
            u: s.fetch(&desc.du)?,
            delta: s.fetch(&desc.ddelta)?,
            a: s.fetch(&desc.da)?,
            b: s.fetch(&desc.db)?,
            c: s.fetch(&desc.dc)?,
            d: s.fetch_opt(&desc.dd)?,
            z: s.fetch_opt(&desc.dz)?,
            delta_bias: s.fetch_opt(&desc.ddelta_bias)?,
            initial_state: s.fetch_opt(&desc.dinitial_state)?,
        })
    }

    fn selective_scan_backward_into(
        &self,
        args: &SelectiveScanArgs<'_, T, f32>,
        dout: &[T],
        dlast_state: Option<&[f32]>,
        grads: &mut SelectiveScanGrads<T, f32>,
    ) -> Result<()> {
        let (s, desc) = self.scan_backward_run(args, dout, dlast_state)?;
        s.fetch_into(&desc.du, &mut grads.u)?;
        s.fetch_into(&desc.ddelta, &mut grads.delta)?;
        s.fetch_into(&desc.da, &mut grads.a)?;
        s.fetch_into(&desc.db, &mut grads.b)?;
        s.fetch_into(&desc.dc, &mut grads.c)?;
        s.fetch_opt_into(&desc.dd, &mut grads.d)?;
        s.fetch_opt_into(&desc.dz, &mut grads.z)?;
        s.fetch_opt_into(&desc.ddelta_bias, &mut grads.delta_bias)?;
        s.fetch_opt_into(&desc.dinitial_state, &mut grads.initial_state)
    }

    fn ssd(
        &self,
        args: &SsdArgs<'_, T, f32>,
        out: &mut [T],
        final_states: Option<&mut [f32]>,
    ) -> Result<()> {
        const OP: &str = "ssd";
        let dims = args.validate_forward(out.len(), final_states.as_deref().map(<[f32]>::len))?;
        let code = check_dtype::<T>(OP)?;
        let mut s = Staging::new(self)?;
        let limit = args.dt_limit;
        let desc = SsdDesc {
            x: s.tensor(&args.x)?,
            dt: s.tensor(&args.dt)?,
            a: s.tensor(&args.a)?,
            b: s.tensor(&args.b)?,
            c: s.tensor(&args.c)?,
            d: s.opt(&args.d)?,
            z: s.opt(&args.z)?,
            dt_bias: s.opt(&args.dt_bias)?,
            initial_states: s.opt(&args.initial_states)?,
            seq_idx: s.i32s(&args.seq_idx)?,
            out: s.output(out.len(), code, &dims.io_shape())?,
            final_states: match &final_states {
                Some(fs) => s.output(fs.len(), abi::dtype::F32, &dims.state_shape())?,
                None => TensorDesc::NONE,
            },
            dt_softplus: args.dt_softplus as u32,
            has_dt_limit: limit.is_some() as u32,
            dt_lo: limit.map_or(0.0, |l| l.0),
            dt_hi: limit.map_or(f32::INFINITY, |l| l.1),
            chunk_size: args.chunk_size as u32,
            reserved: 0,
        };
        // SAFETY: as in selective_scan: staging buffers outlive the call and the downloads.
        unsafe { self.ssd_device(&desc, &s.stream) }?;
        s.download(&desc.out, out)?;
        if let Some(fs) = final_states {
            s.download(&desc.final_states, fs)?;
        }
        Ok(())
    }

    fn ssd_backward(
        &self,
        args: &SsdArgs<'_, T, f32>,
        dout: &[T],
        dfinal_states: Option<&[f32]>,
    ) -> Result<SsdGrads<T, f32>> {
        let (s, desc) = self.ssd_backward_run(args, dout, dfinal_states)?;
        Ok(SsdGrads {
            x: s.fetch(&desc.dx)?,
            dt: s.fetch(&desc.ddt)?,
            a: s.fetch(&desc.da)?,
            b: s.fetch(&desc.db)?,
            c: s.fetch(&desc.dc)?,
            d: s.fetch_opt(&desc.dd)?,
            z: s.fetch_opt(&desc.dz)?,
            dt_bias: s.fetch_opt(&desc.ddt_bias)?,
            initial_states: s.fetch_opt(&desc.dinitial_states)?,
        })
    }

    fn ssd_backward_into(
        &self,
        args: &SsdArgs<'_, T, f32>,
        dout: &[T],
        dfinal_states: Option<&[f32]>,
        grads: &mut SsdGrads<T, f32>,
    ) -> Result<()> {
        let (s, desc) = self.ssd_backward_run(args, dout, dfinal_states)?;
        s.fetch_into(&desc.dx, &mut grads.x)?;
        s.fetch_into(&desc.ddt, &mut grads.dt)?;
        s.fetch_into(&desc.da, &mut grads.a)?;
        s.fetch_into(&desc.db, &mut grads.b)?;
        s.fetch_into(&desc.dc, &mut grads.c)?;
        s.fetch_opt_into(&desc.dd, &mut grads.d)?;
        s.fetch_opt_into(&desc.dz, &mut grads.z)?;
        s.fetch_opt_into(&desc.ddt_bias, &mut grads.dt_bias)?;
        s.fetch_opt_into(&desc.dinitial_states, &mut grads.initial_states)
    }

    fn causal_conv1d(
        &self,
        args: &CausalConv1dArgs<'_, T, f32>,
        out: &mut [T],
        final_states: Option<&mut [f32]>,
    ) -> Result<()> {
        const OP: &str = "causal_conv1d";
        let dims = args.validate_forward(out.len(), final_states.as_deref().map(<[f32]>::len))?;
        let code = check_dtype::<T>(OP)?;
        let mut s = Staging::new(self)?;
        let want_final = final_states.is_some() && dims.width > 1;
        let desc = Conv1dDesc {
            x: s.tensor(&args.x)?,
            weight: s.tensor(&args.weight)?,
            bias: s.opt(&args.bias)?,
            initial_states: if dims.width > 1 {
                s.opt(&args.initial_states)?
            } else {
                TensorDesc::NONE
            },
            out: s.output(out.len(), code, args.x.dims())?,
            final_states: if want_final {
                s.output(
                    dims.batch * dims.channels * (dims.width - 1),
                    abi::dtype::F32,
                    &dims.state_shape(),
                )?
            } else {
                TensorDesc::NONE
            },
            activation: match args.activation {
                Activation::None => activation::NONE,
                Activation::Silu => activation::SILU,
            },
            channel_last: (args.layout == ConvLayout::ChannelLast) as u32,
        };
        // SAFETY: as in selective_scan: staging buffers outlive the call and the downloads.
        unsafe { self.causal_conv1d_device(&desc, &s.stream) }?;
        s.download(&desc.out, out)?;
        if let (Some(fs), true) = (final_states, want_final) {
            s.download(&desc.final_states, fs)?;
        }
        Ok(())
    }

    fn causal_conv1d_backward(
        &self,
        args: &CausalConv1dArgs<'_, T, f32>,
        dout: &[T],
        dfinal_states: Option<&[f32]>,
    ) -> Result<CausalConv1dGrads<T, f32>> {
        let (s, desc) = self.conv_backward_run(args, dout, dfinal_states)?;
        Ok(CausalConv1dGrads {
            x: s.fetch(&desc.dx)?,
            weight: s.fetch(&desc.dweight)?,
            bias: s.fetch_opt(&desc.dbias)?,
            initial_states: s.fetch_opt(&desc.dinitial_states)?,
        })
    }

    fn causal_conv1d_backward_into(
        &self,
        args: &CausalConv1dArgs<'_, T, f32>,
        dout: &[T],
        dfinal_states: Option<&[f32]>,
        grads: &mut CausalConv1dGrads<T, f32>,
    ) -> Result<()> {
        let (s, desc) = self.conv_backward_run(args, dout, dfinal_states)?;
        s.fetch_into(&desc.dx, &mut grads.x)?;
        s.fetch_into(&desc.dweight, &mut grads.weight)?;
        s.fetch_opt_into(&desc.dbias, &mut grads.bias)?;
        s.fetch_opt_into(&desc.dinitial_states, &mut grads.initial_states)
    }

    fn selective_state_update(
        &self,
        args: &SelectiveStateUpdateArgs<'_, T, f32>,
        state: &mut [f32],
        out: &mut [T],
    ) -> Result<()> {
        const OP: &str = "selective_state_update";
        let dims = args.validate(state.len(), out.len())?;
        let code = check_dtype::<T>(OP)?;
        let mut s = Staging::new(self)?;
        let mut sdims: Vec<usize> = args.x.dims().to_vec();
        sdims.push(dims.dstate);
        let state_d = {
            let p = s.bytes(as_bytes(state))?;
            TensorDesc::dense(p, abi::dtype::F32, &sdims)
        };
        let limit = args.dt_limit;
        let desc = StateUpdateDesc {
            state: state_d,
            x: s.tensor(&args.x)?,
            dt: s.tensor(&args.dt)?,
            a: s.tensor(&args.a)?,
            b: s.tensor(&args.b)?,
            c: s.tensor(&args.c)?,
            d: s.opt(&args.d)?,
            z: s.opt(&args.z)?,
            dt_bias: s.opt(&args.dt_bias)?,
            out: s.output(out.len(), code, args.x.dims())?,
            dt_softplus: args.dt_softplus as u32,
            has_dt_limit: limit.is_some() as u32,
            dt_lo: limit.map_or(0.0, |l| l.0),
            dt_hi: limit.map_or(f32::INFINITY, |l| l.1),
        };
        // SAFETY: as in selective_scan: staging buffers outlive the call and the downloads.
        unsafe { self.selective_state_update_device(&desc, &s.stream) }?;
        s.download(&desc.out, out)?;
        s.download(&desc.state, state)
    }

    fn causal_conv1d_update(
        &self,
        args: &CausalConv1dUpdateArgs<'_, T, f32>,
        conv_state: TensorMut<'_, f32>,
        out: &mut [T],
    ) -> Result<()> {
        const OP: &str = "causal_conv1d_update";
        args.validate(&conv_state, out.len())?;
        let code = check_dtype::<T>(OP)?;
        let mut s = Staging::new(self)?;
        let state_d = {
            let p = s.bytes(as_bytes(conv_state.data))?;
            TensorDesc::dense(p, abi::dtype::F32, conv_state.shape.dims())
        };
        let desc = ConvUpdateDesc {
            conv_state: state_d,
            x: s.tensor(&args.x)?,
            weight: s.tensor(&args.weight)?,
            bias: s.opt(&args.bias)?,
            out: s.output(out.len(), code, args.x.dims())?,
            activation: match args.activation {
                Activation::None => activation::NONE,
                Activation::Silu => activation::SILU,
            },
            reserved: 0,
        };
        // SAFETY: as in selective_scan: staging buffers outlive the call and the downloads.
        unsafe { self.causal_conv1d_update_device(&desc, &s.stream) }?;
        s.download(&desc.out, out)?;
        s.download(&desc.conv_state, conv_state.data)
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }
    fn detail(&self) -> String {
        self.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_classes_cover_the_request_and_waste_little_when_large() {
        for bytes in [
            0usize,
            1,
            4096,
            65536,
            65537,
            1 << 20,
            (1 << 20) + 1,
            64 << 20,
        ] {
            let c = staging_class(bytes);
            assert!(
                c >= bytes && c >= 64 << 10 && c.is_power_of_two(),
                "{bytes} -> {c}"
            );
            assert!(c < 2 * bytes.max(64 << 10), "{bytes} -> {c}");
        }
        for bytes in [(64 << 20) + 1, 600 << 20, (1 << 30) + 12345] {
            let c = staging_class(bytes);
            assert!(
                c >= bytes && c - bytes < 2 << 20 && c.is_multiple_of(2 << 20),
                "{bytes} -> {c}"
            );
        }
        // Requests of one class share buffers.
        assert_eq!(staging_class(70_000), staging_class(131_072));
    }

    #[test]
    fn kept_classes_round_large_buffers_to_2_mib() {
        for bytes in [1usize, 70_000, 2 << 20] {
            assert_eq!(kept_class(bytes), staging_class(bytes), "{bytes}");
        }
        for bytes in [(2 << 20) + 1, 13_964_288, 100 << 20] {
            let c = kept_class(bytes);
            assert!(
                c >= bytes && c - bytes < 2 << 20 && c.is_multiple_of(2 << 20),
                "{bytes} -> {c}"
            );
        }
    }

    #[test]
    fn search_paths_end_in_the_library_name() {
        let name = library_name();
        let paths = search_paths();
        assert!(!paths.is_empty());
        assert!(paths
            .iter()
            .all(|p| p.file_name().unwrap().to_string_lossy() == name));
        // The target folder's cuda/ comes before its release/ and debug/.
        let pos = |sub: &str| {
            paths
                .iter()
                .position(|p| p.parent().unwrap().ends_with(sub))
        };
        if let (Some(c), Some(r)) = (pos("cuda"), pos("release")) {
            assert!(c < r);
        }
    }

    #[test]
    fn a_missing_file_is_unavailable_with_the_loader_text() {
        let err = load_from(Path::new("/nonexistent/libmamba_cuda.so")).unwrap_err();
        match err {
            Error::Unavailable { backend, reason } => {
                assert_eq!(backend, "cuda");
                assert!(reason.contains("nonexistent"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
