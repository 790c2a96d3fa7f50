//! The plugin with CUDA: the driver context, the kernel modules, memory, streams and
//! events (through `cust` and its raw driver bindings), and the operations.

mod block;
mod block_bwd;
mod bwd;
mod bwd_lm;
mod gemm;
mod lm1;
mod ops;
pub(crate) mod params;
mod seed;
mod seed1;
mod segments;
mod ssd_bwdc;
mod ssdl32;

use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::sync::{Mutex, OnceLock};

use cust::context::Context;
use cust::device::{Device, DeviceAttribute};
use cust::module::Module;
use cust::sys as cu;
use mamba_core::abi::{dtype as abi_dtype, status, AdamWC, DeviceInfoC};

use crate::{PErr, PResult};

pub(crate) use block::{
    block_create, block_destroy, block_forward, block_forward_saving, block_saved_bytes,
    block_set_weights, block_set_weights_device,
};
pub(crate) use block_bwd::{block_backward, block_backward_saved};
pub(crate) use bwd::{
    causal_conv1d_backward, selective_scan_backward, selective_scan_backward_saved, ssd_backward,
};
pub(crate) use ops::{
    causal_conv1d, causal_conv1d_update, selective_scan, selective_scan_forward_saving,
    selective_scan_saved_bytes, selective_state_update, ssd,
};

const FATBINS: &[(&str, &[u8])] = &[
    (
        "scan1",
        include_bytes!(concat!(env!("OUT_DIR"), "/scan1.fatbin")),
    ),
    (
        "ssd",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd.fatbin")),
    ),
    (
        "misc",
        include_bytes!(concat!(env!("OUT_DIR"), "/misc.fatbin")),
    ),
    (
        "bwd",
        include_bytes!(concat!(env!("OUT_DIR"), "/bwd.fatbin")),
    ),
    (
        "ssd_chunk",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_chunk.fatbin")),
    ),
    (
        "scan1_lm",
        include_bytes!(concat!(env!("OUT_DIR"), "/scan1_lm.fatbin")),
    ),
    (
        "seed",
        include_bytes!(concat!(env!("OUT_DIR"), "/seed.fatbin")),
    ),
    (
        "scan1_seed",
        include_bytes!(concat!(env!("OUT_DIR"), "/scan1_seed.fatbin")),
    ),
    (
        "ssd_seed",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_seed.fatbin")),
    ),
    (
        "block_bwd",
        include_bytes!(concat!(env!("OUT_DIR"), "/block_bwd.fatbin")),
    ),
    (
        "bwd_lm",
        include_bytes!(concat!(env!("OUT_DIR"), "/bwd_lm.fatbin")),
    ),
    (
        "ssd_lm32",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_lm32.fatbin")),
    ),
    (
        "ssd_seed2",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_seed2.fatbin")),
    ),
    (
        "ssd_lm",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_lm.fatbin")),
    ),
    (
        "ssd_bwdc",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_bwdc.fatbin")),
    ),
    (
        "ssd_seed3",
        include_bytes!(concat!(env!("OUT_DIR"), "/ssd_seed3.fatbin")),
    ),
];

/// kernels/ssd_wg.cu: sm_90a machine code only (wgmma), loaded where the device is compute
/// capability 9.0, as the module after FATBINS (`Gpu::has_wgmma`).
const FATBIN_WG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ssd_wg.fatbin"));

/// A kernel handle. Driver handles may be used from any thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Func(cu::CUfunction);
// SAFETY: CUfunction handles are thread-safe driver objects; the module that owns
// them lives for the whole process (the Gpu is never dropped).
unsafe impl Send for Func {}
// SAFETY: as above.
unsafe impl Sync for Func {}

pub(crate) struct Gpu {
    ctx: Context,
    modules: Vec<Module>,
    funcs: Mutex<HashMap<String, Func>>,
    pub(crate) sm_count: i32,
    max_smem_optin: i32,
    pub(crate) gemm: gemm::Gemm,
    info: DeviceInfoC,
    /// Scratch of the chained (one-launch) scans, kept per stream across calls.
    chain: Mutex<HashMap<u64, ChainScratch>>,
    /// Resident blocks per SM by (kernel, threads, dynamic shared memory).
    occupancy: Mutex<HashMap<(usize, u32, usize), u32>>,
    /// The plugin's own streams and events for work it splits over streams
    /// ([`Gpu::concurrently`]); created on first use, held under this lock while a split
    /// call enqueues.
    aux: Mutex<AuxStreams>,
}

/// Streams the plugin creates for itself and the fork / join events of
/// [`Gpu::concurrently`].
#[derive(Default)]
pub(crate) struct AuxStreams {
    streams: Vec<u64>,
    fork: u64,
    joins: Vec<u64>,
}

impl AuxStreams {
    /// Creates the fork event and `n` streams with their join events, where missing.
    fn ensure(&mut self, n: usize) -> PResult<()> {
        let event = || -> PResult<u64> {
            let mut e: cu::CUevent = std::ptr::null_mut();
            // SAFETY: creates an event into a local (timing off: fork / join only).
            let r = unsafe {
                cu::cuEventCreate(&mut e, 2 /* CU_EVENT_DISABLE_TIMING */)
            };
            check(r, "cuEventCreate")?;
            Ok(e as u64)
        };
        if self.fork == 0 {
            self.fork = event()?;
        }
        while self.streams.len() < n {
            let mut s: cu::CUstream = std::ptr::null_mut();
            // SAFETY: creates a stream into a local.
            let r = unsafe {
                cu::cuStreamCreate(&mut s, 1 /* CU_STREAM_NON_BLOCKING */)
            };
            check(r, "cuStreamCreate")?;
            self.streams.push(s as u64);
            self.joins.push(event()?);
        }
        Ok(())
    }
}

/// Records a live event (made by [`AuxStreams::ensure`]) on a live stream.
fn aux_record(e: u64, s: u64) -> PResult<()> {
    // SAFETY: both handles are live (the caller's stream, the plugin's event).
    let r = unsafe { cu::cuEventRecord(e as cu::CUevent, s as cu::CUstream) };
    check(r, "cuEventRecord")
}

/// Orders a live stream after a live event's last record.
fn aux_wait(s: u64, e: u64) -> PResult<()> {
    // SAFETY: as above.
    let r = unsafe { cu::cuStreamWaitEvent(s as cu::CUstream, e as cu::CUevent, 0) };
    check(r, "cuStreamWaitEvent")
}

/// A stream's kept scratch for the chained scans: flags (zeroed once when allocated; each
/// call uses two fresh flag values, so no call has to clear them) and data.
#[derive(Default)]
pub(crate) struct ChainScratch {
    flags: u64,
    flags_words: usize,
    data: u64,
    data_bytes: usize,
    /// The next call's first flag value (odd; 0 in the buffer means never written).
    next_base: u32,
}

static GPU: OnceLock<Result<Gpu, PErr>> = OnceLock::new();

/// Turns a driver result into a status and a message that names the call.
pub(crate) fn check(r: cu::CUresult, what: &str) -> PResult<()> {
    if r == cu::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    let mut name: *const std::os::raw::c_char = std::ptr::null();
    let mut text: *const std::os::raw::c_char = std::ptr::null();
    // SAFETY: only writes a pointer to a static string (or leaves it null).
    unsafe { cu::cuGetErrorName(r, &mut name) };
    // SAFETY: as above.
    unsafe { cu::cuGetErrorString(r, &mut text) };
    let to_str = |p: *const std::os::raw::c_char| {
        if p.is_null() {
            String::from("?")
        } else {
            // SAFETY: the driver returns NUL-terminated static strings.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let code = match r {
        cu::CUresult::CUDA_ERROR_OUT_OF_MEMORY => status::OUT_OF_MEMORY,
        cu::CUresult::CUDA_ERROR_NO_DEVICE | cu::CUresult::CUDA_ERROR_INVALID_DEVICE => {
            status::NO_DEVICE
        }
        _ => status::CUDA_ERROR,
    };
    Err(PErr::new(
        code,
        format!("{what}: {} ({})", to_str(name), to_str(text)),
    ))
}

fn cust_err(e: cust::error::CudaError, what: &str) -> PErr {
    let code = match e {
        cust::error::CudaError::OutOfMemory => status::OUT_OF_MEMORY,
        cust::error::CudaError::NoDevice | cust::error::CudaError::InvalidDevice => {
            status::NO_DEVICE
        }
        _ => status::CUDA_ERROR,
    };
    PErr::new(code, format!("{what}: {e}"))
}

fn create(ordinal: i32) -> PResult<Gpu> {
    cust::init(cust::CudaFlags::empty()).map_err(|e| cust_err(e, "cuInit"))?;
    let n = Device::num_devices().map_err(|e| cust_err(e, "cuDeviceGetCount"))?;
    if n == 0 {
        return Err(PErr::new(status::NO_DEVICE, "no CUDA device"));
    }
    if ordinal < 0 || ordinal as u32 >= n {
        return Err(PErr::new(
            status::NO_DEVICE,
            format!("no CUDA device {ordinal} ({n} present)"),
        ));
    }
    let device = Device::get_device(ordinal as u32).map_err(|e| cust_err(e, "cuDeviceGet"))?;
    let ctx = Context::new(device).map_err(|e| cust_err(e, "cuDevicePrimaryCtxRetain"))?;
    let attr = |a: DeviceAttribute| device.get_attribute(a).unwrap_or(0);
    let cc_major = attr(DeviceAttribute::ComputeCapabilityMajor);
    let cc_minor = attr(DeviceAttribute::ComputeCapabilityMinor);
    if cc_major < 9 {
        return Err(PErr::new(
            status::NO_DEVICE,
            format!("the kernels are built for sm_90 (Hopper); device {ordinal} is sm_{cc_major}{cc_minor}"),
        ));
    }
    let mut modules = Vec::new();
    for (name, bin) in FATBINS {
        let m = Module::from_fatbin(bin, &[])
            .map_err(|e| cust_err(e, &format!("loading kernels/{name}.cu")))?;
        modules.push(m);
    }
    // The sm_90a module: only 9.0 runs it (arch-specific code does not carry to later GPUs).
    if (cc_major, cc_minor) == (9, 0) {
        // Not fatal: without it the calls take the sm_90 kernels (VAR 28).
        if let Ok(m) = Module::from_fatbin(FATBIN_WG, &[]) {
            modules.push(m);
        }
    }
    let mut info = DeviceInfoC {
        cc_major,
        cc_minor,
        sm_count: attr(DeviceAttribute::MultiprocessorCount),
        total_memory: device.total_memory().unwrap_or(0) as u64,
        driver_version: cust::CudaApiVersion::get()
            .map(|v| v.major() * 1000 + v.minor() * 10)
            .unwrap_or(0),
        ..DeviceInfoC::default()
    };
    let name = device.name().unwrap_or_else(|_| "unknown GPU".into());
    let nb = name.as_bytes();
    let len = nb.len().min(info.name.len() - 1);
    info.name[..len].copy_from_slice(&nb[..len]);
    let gemm = gemm::Gemm::load();
    info.cublaslt = gemm.has_cublaslt() as u32;
    let detail = gemm.detail();
    let db = detail.as_bytes();
    let len = db.len().min(info.gemm_detail.len() - 1);
    info.gemm_detail[..len].copy_from_slice(&db[..len]);
    // A block may take more than 48 KiB of shared memory only once each kernel's limit is
    // raised to this.
    let mut optin = 0i32;
    // SAFETY: plain attribute query into a local.
    let r = unsafe {
        cu::cuDeviceGetAttribute(
            &mut optin,
            cu::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            device.as_raw(),
        )
    };
    check(r, "cuDeviceGetAttribute")?;
    // Scratch comes from the stream-ordered pool; keep what it has reserved across
    // synchronisations (the default threshold of 0 returns it at every sync, and each
    // call would map fresh memory: ~150 us).
    let mut pool: cu::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: writes the device's default pool handle into a local.
    let r = unsafe { cu::cuDeviceGetDefaultMemPool(&mut pool, device.as_raw()) };
    check(r, "cuDeviceGetDefaultMemPool")?;
    let threshold: u64 = u64::MAX;
    // SAFETY: sets a u64 attribute of a live pool from a local.
    let r = unsafe {
        cu::cuMemPoolSetAttribute(
            pool,
            cu::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            &threshold as *const u64 as *mut c_void,
        )
    };
    check(r, "cuMemPoolSetAttribute")?;
    Ok(Gpu {
        ctx,
        modules,
        funcs: Mutex::new(HashMap::new()),
        sm_count: info.sm_count.max(1),
        max_smem_optin: optin,
        gemm,
        info,
        chain: Mutex::new(HashMap::new()),
        occupancy: Mutex::new(HashMap::new()),
        aux: Mutex::new(AuxStreams::default()),
    })
}

pub(crate) fn init(ordinal: i32) -> PResult<()> {
    match GPU.get_or_init(|| create(ordinal)) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

/// The initialised device, made current on this thread.
pub(crate) fn gpu() -> PResult<&'static Gpu> {
    match GPU.get() {
        Some(Ok(g)) => {
            // SAFETY: the primary context stays retained for the life of the process.
            let r = unsafe { cu::cuCtxSetCurrent(g.ctx.as_raw()) };
            check(r, "cuCtxSetCurrent")?;
            Ok(g)
        }
        Some(Err(e)) => Err(e.clone()),
        None => Err(PErr::new(
            status::NOT_INITIALIZED,
            "the CUDA plugin is not initialised (call init first)",
        )),
    }
}

impl Gpu {
    /// The kernel `name`, looked up once.
    pub(crate) fn func(&self, name: &str) -> PResult<Func> {
        let mut funcs = self.funcs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = funcs.get(name) {
            return Ok(*f);
        }
        // The module by the kernel's prefix (one lookup, so no failed driver calls).
        let module = if name.starts_with("scan1_") {
            0
        } else if name.starts_with("ssdc_")
            || name.starts_with("ssdm_")
            || name.starts_with("ssd3_")
            || name.starts_with("ssdl_")
        {
            4
        } else if name.starts_with("seed_") {
            6
        } else if name.starts_with("s1s_") {
            7
        } else if name.starts_with("ssdr_") {
            8
        } else if name.starts_with("ssd_") {
            1
        } else if name.starts_with("bwd_") {
            3
        } else if name.starts_with("lm1_") {
            5
        } else if name.starts_with("bb_") {
            9
        } else if name.starts_with("bwdlm_") {
            10
        } else if name.starts_with("ssdl32_") {
            11
        } else if name.starts_with("ssdlb_") {
            // kernels/ssd_lm.cu (helper A's module index 13 in the seventh session's brief;
            // found by its name as `ssdq_` is).
            FATBINS
                .iter()
                .position(|m| m.0 == "ssd_lm")
                .unwrap_or(usize::MAX)
        } else if name.starts_with("ssdlw_") {
            // kernels/ssd_wg.cu (sm_90a), after FATBINS when loaded.
            FATBINS.len()
        } else if name.starts_with("ssdbc_") || name.starts_with("ssdbl_") {
            // kernels/ssd_bwdc.cu (with ssd_bwdl.cuh), found by its name.
            FATBINS
                .iter()
                .position(|m| m.0 == "ssd_bwdc")
                .unwrap_or(usize::MAX)
        } else if name.starts_with("ssdz_") {
            // kernels/ssd_seed3.cu (eighth session, helper D; found by its name as
            // `ssdq_` is).
            FATBINS
                .iter()
                .position(|m| m.0 == "ssd_seed3")
                .unwrap_or(usize::MAX)
        } else if name.starts_with("ssdq_") {
            // kernels/ssd_seed2.cu (helper D's module index 15 in the brief; here found
            // by its name, so that the merge order of new modules does not matter).
            FATBINS
                .iter()
                .position(|m| m.0 == "ssd_seed2")
                .unwrap_or(usize::MAX)
        } else {
            2
        };
        if let Some(m) = self.modules.get(module) {
            if let Ok(f) = m.get_function(name) {
                let raw = f.to_raw();
                // The dynamic limit is what the static shared memory leaves of the opt-in maximum.
                let mut static_smem = 0i32;
                // SAFETY: `raw` is a live function of a module kept for the process.
                let r = unsafe {
                    cu::cuFuncGetAttribute(
                        &mut static_smem,
                        cu::CUfunction_attribute::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                        raw,
                    )
                };
                check(r, "cuFuncGetAttribute")?;
                // SAFETY: as above.
                let r = unsafe {
                    cu::cuFuncSetAttribute(
                        raw,
                        cu::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        self.max_smem_optin - static_smem,
                    )
                };
                check(r, "cuFuncSetAttribute")?;
                funcs.insert(name.to_string(), Func(raw));
                return Ok(Func(raw));
            }
        }
        Err(PErr::new(
            status::CUDA_ERROR,
            format!("kernel `{name}` not found in the plugin's modules"),
        ))
    }

    /// Whether the sm_90a kernels (wgmma, kernels/ssd_wg.cu) are loaded.
    pub(crate) fn has_wgmma(&self) -> bool {
        self.modules.len() > FATBINS.len()
    }

    /// The largest dynamic shared memory a block may use.
    pub(crate) fn max_smem(&self) -> usize {
        self.max_smem_optin.max(48 * 1024) as usize
    }

    /// Launches `f` with one parameter block passed by value, and checks the launch.
    pub(crate) fn launch<P: Copy>(
        &self,
        f: Func,
        grid: (u32, u32, u32),
        block: u32,
        smem: usize,
        stream: u64,
        params: &P,
    ) -> PResult<()> {
        if smem > self.max_smem() {
            return Err(PErr::unsupported(format!(
                "the kernel needs {smem} bytes of shared memory; the device allows {}",
                self.max_smem()
            )));
        }
        let mut args = [params as *const P as *mut c_void];
        // SAFETY: `f` is a live kernel whose one parameter is a struct laid out as `P`
        // (params.rs mirrors common.cuh); `args` holds one pointer to it, valid for the
        // call (the driver copies parameters at launch).
        let r = unsafe {
            cu::cuLaunchKernel(
                f.0,
                grid.0,
                grid.1,
                grid.2,
                block,
                1,
                1,
                smem as u32,
                stream as cu::CUstream,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        check(r, "cuLaunchKernel")
    }

    /// Stream-ordered scratch memory (freed with [`Gpu::free_async`] on the same stream).
    pub(crate) fn alloc_async(&self, bytes: usize, stream: u64) -> PResult<u64> {
        let mut p: cu::CUdeviceptr = 0;
        // SAFETY: writes one device pointer into a local.
        let r = unsafe { cu::cuMemAllocAsync(&mut p, bytes.max(256), stream as cu::CUstream) };
        check(r, "cuMemAllocAsync")?;
        Ok(p)
    }

    /// How many blocks of `f` (`threads` each, `smem` bytes of dynamic shared memory) an
    /// SM holds at once; asked of the driver once per shape.
    pub(crate) fn blocks_per_sm(&self, f: Func, threads: u32, smem: usize) -> PResult<u32> {
        let key = (f.0 as usize, threads, smem);
        let mut occ = self.occupancy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = occ.get(&key) {
            return Ok(n);
        }
        let mut n = 0i32;
        // SAFETY: `f` is a live kernel; the driver writes one count into a local.
        let r = unsafe {
            cu::cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut n, f.0, threads as i32, smem)
        };
        check(r, "cuOccupancyMaxActiveBlocksPerMultiprocessor")?;
        let n = n.max(0) as u32;
        occ.insert(key, n);
        Ok(n)
    }

    /// Runs `launch(flags, data, flag_base)` with scratch for a chained scan on `stream`:
    /// `flags` holds `flags_words` words whose first (the block ticket) is 0 and whose
    /// others never equal `flag_base` or `flag_base + 1`; `data` holds `data_bytes`. The
    /// scratch is kept per stream (calls on one stream are ordered, so they can share it)
    /// and the lock is held across the launch, so launches take flag values in stream
    /// order. The per-thread default stream (2), large scratch and a stream being recorded
    /// get fresh memory.
    pub(crate) fn with_chain_scratch(
        &self,
        flags_words: usize,
        data_bytes: usize,
        stream: u64,
        launch: impl FnOnce(u64, u64, u32) -> PResult<()>,
    ) -> PResult<()> {
        const PER_THREAD_STREAM: u64 = 2;
        // While the stream is being recorded the scratch is the graph's own (allocated,
        // zeroed, used and freed by every launch of the graph): kept scratch would hand
        // every launch of the graph the same flag values, which a chained scan reads as
        // already set by the launch before.
        let fresh = stream == PER_THREAD_STREAM
            || data_bytes > 64 << 20
            || matches!(
                ops::env_str("MAMBA_CUDA_CHAIN_SCRATCH").as_deref(),
                Some("fresh")
            )
            || stream_capturing(stream)?;
        let flags_bytes = (flags_words * 4).div_ceil(256) * 256;
        if fresh {
            let p = self.alloc_async(flags_bytes + data_bytes, stream)?;
            let r = self
                .memset_u32(p, 0, flags_words, stream)
                .and_then(|_| launch(p, p + flags_bytes as u64, 1));
            let fr = self.free_async(p, stream);
            return r.and(fr);
        }
        let mut map = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        let sc = map.entry(stream).or_default();
        if sc.flags_words < flags_words || sc.next_base > u32::MAX - 4 {
            if sc.flags != 0 {
                self.free_async(sc.flags, stream)?;
                sc.flags = 0;
                sc.flags_words = 0;
            }
            let words = flags_words.max(4096);
            sc.flags = self.alloc_async(words * 4, stream)?;
            sc.flags_words = words;
            self.memset_u32(sc.flags, 0, words, stream)?;
            sc.next_base = 1;
        }
        if sc.data_bytes < data_bytes {
            if sc.data != 0 {
                self.free_async(sc.data, stream)?;
                sc.data = 0;
                sc.data_bytes = 0;
            }
            let bytes = data_bytes.max(1 << 20);
            sc.data = self.alloc_async(bytes, stream)?;
            sc.data_bytes = bytes;
        }
        let base = sc.next_base;
        sc.next_base += 2;
        launch(sc.flags, sc.data, base)
    }

    /// Gives back the kept scratch of `stream` (before the stream goes).
    pub(crate) fn drop_chain_scratch(&self, stream: u64) -> PResult<()> {
        let sc = self
            .chain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&stream);
        if let Some(sc) = sc {
            for p in [sc.flags, sc.data] {
                if p != 0 {
                    self.free_async(p, stream)?;
                }
            }
        }
        Ok(())
    }

    /// Fills `count` 32-bit words at `p` (device memory) with `value`, on `stream`.
    pub(crate) fn memset_u32(&self, p: u64, value: u32, count: usize, stream: u64) -> PResult<()> {
        // SAFETY: `p` is device scratch of at least `count` words, owned by the caller and
        // used in stream order.
        let r = unsafe { cu::cuMemsetD32Async(p, value, count, stream as cu::CUstream) };
        check(r, "cuMemsetD32Async")
    }

    /// Runs `parts` pieces of one call at once: piece 0 on `stream`, piece i on the
    /// plugin's i-th own stream, each of those ordered after everything enqueued on
    /// `stream` before this call, and `stream` ordered after all of them (fork / join by
    /// events), so that for the caller the call behaves as if it ran on `stream` alone.
    /// `run(i, s)` enqueues piece i on stream `s`. If a piece fails, the pieces already
    /// enqueued are still joined, and the first error is returned.
    pub(crate) fn concurrently(
        &self,
        stream: u64,
        parts: usize,
        mut run: impl FnMut(usize, u64) -> PResult<()>,
    ) -> PResult<()> {
        if parts <= 1 {
            return run(0, stream);
        }
        let mut aux = self.aux.lock().unwrap_or_else(|e| e.into_inner());
        aux.ensure(parts - 1)?;
        aux_record(aux.fork, stream)?;
        for &s in &aux.streams[..parts - 1] {
            aux_wait(s, aux.fork)?;
        }
        let mut first = run(0, stream);
        for i in 1..parts {
            let (s, j) = (aux.streams[i - 1], aux.joins[i - 1]);
            let r = run(i, s);
            if first.is_ok() {
                first = r;
            }
            let r = aux_record(j, s).and_then(|_| aux_wait(stream, j));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// `main` on `stream` and `side` beside it on the plugin's first own stream, both
    /// ordered after everything enqueued on `stream` before, and `stream` after both (as
    /// [`Gpu::concurrently`] with two pieces, but `main` is enqueued first, so that its
    /// blocks are dispatched first). Where the plugin's streams are in use (this call is
    /// itself a piece of [`Gpu::concurrently`], or another thread is enqueuing a split
    /// call), `side` then `main` run on `stream`, one after the other.
    pub(crate) fn overlapped(
        &self,
        stream: u64,
        main: impl FnOnce(u64) -> PResult<()>,
        side: impl FnOnce(u64) -> PResult<()>,
    ) -> PResult<()> {
        let mut aux = match self.aux.try_lock() {
            Ok(a) => a,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                side(stream)?;
                return main(stream);
            }
        };
        aux.ensure(1)?;
        let (s, j) = (aux.streams[0], aux.joins[0]);
        aux_record(aux.fork, stream)?;
        let first = main(stream);
        let r = aux_wait(s, aux.fork)
            .and_then(|_| side(s))
            .and_then(|_| aux_record(j, s))
            .and_then(|_| aux_wait(stream, j));
        first.and(r)
    }

    pub(crate) fn free_async(&self, p: u64, stream: u64) -> PResult<()> {
        // SAFETY: `p` came from alloc_async and every use of it is ordered before this
        // on `stream`.
        check(
            unsafe { cu::cuMemFreeAsync(p, stream as cu::CUstream) },
            "cuMemFreeAsync",
        )
    }
}

pub(crate) fn device_info() -> PResult<DeviceInfoC> {
    Ok(gpu()?.info)
}

pub(crate) fn stream_create() -> PResult<u64> {
    gpu()?;
    let mut s: cu::CUstream = std::ptr::null_mut();
    // SAFETY: creates a stream into a local.
    let r = unsafe {
        cu::cuStreamCreate(&mut s, 1 /* CU_STREAM_NON_BLOCKING */)
    };
    check(r, "cuStreamCreate")?;
    Ok(s as u64)
}

pub(crate) fn stream_destroy(stream: u64) -> PResult<()> {
    let g = gpu()?;
    if stream == 0 {
        return Err(PErr::invalid("the default stream cannot be destroyed"));
    }
    g.drop_chain_scratch(stream)?;
    g.gemm.release_stream(stream)?;
    // SAFETY: the caller passes a stream from stream_create, destroyed once.
    let r = unsafe { cu::cuStreamDestroy_v2(stream as cu::CUstream) };
    check(r, "cuStreamDestroy")
}

/// `graph_begin`: the stream's work recorded by this thread from now on (thread-local
/// mode: an entry that would synchronise the device fails instead of running).
pub(crate) fn graph_begin(stream: u64) -> PResult<()> {
    gpu()?;
    if stream == 0 {
        return Err(PErr::invalid(
            "graph_begin: the default stream cannot be recorded; use one from stream_create",
        ));
    }
    // SAFETY: starts a capture on a live stream handle of the caller's.
    let r = unsafe {
        cu::cuStreamBeginCapture_v2(
            stream as cu::CUstream,
            cu::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )
    };
    check(r, "cuStreamBeginCapture")
}

/// `graph_end`: the recording ended and instantiated (its graph freed once instantiated).
pub(crate) fn graph_end(stream: u64) -> PResult<u64> {
    gpu()?;
    let mut graph: cu::CUgraph = std::ptr::null_mut();
    // SAFETY: ends the capture on the caller's stream; writes a graph handle into a local.
    let r = unsafe { cu::cuStreamEndCapture(stream as cu::CUstream, &mut graph) };
    check(
        r,
        "cuStreamEndCapture (an entry during the recording failed or could not be recorded)",
    )?;
    if graph.is_null() {
        return Err(PErr::invalid("graph_end: nothing was recorded"));
    }
    let mut exec: cu::CUgraphExec = std::ptr::null_mut();
    // SAFETY: instantiates the graph just captured into a local handle.
    let r = unsafe { cu::cuGraphInstantiateWithFlags(&mut exec, graph, 0) };
    // SAFETY: the graph is ours and no longer needed once instantiated (or not).
    let d = unsafe { cu::cuGraphDestroy(graph) };
    check(r, "cuGraphInstantiateWithFlags")?;
    check(d, "cuGraphDestroy")?;
    Ok(exec as u64)
}

pub(crate) fn graph_launch(graph: u64, stream: u64) -> PResult<()> {
    gpu()?;
    if graph == 0 {
        return Err(PErr::invalid("graph_launch: null graph"));
    }
    // SAFETY: runs the caller's executable graph (from graph_end) on its stream.
    let r = unsafe { cu::cuGraphLaunch(graph as cu::CUgraphExec, stream as cu::CUstream) };
    check(r, "cuGraphLaunch")
}

pub(crate) fn graph_destroy(graph: u64) -> PResult<()> {
    gpu()?;
    if graph == 0 {
        return Ok(());
    }
    // SAFETY: the caller's executable graph from graph_end, destroyed once.
    let r = unsafe { cu::cuGraphExecDestroy(graph as cu::CUgraphExec) };
    check(r, "cuGraphExecDestroy")
}

pub(crate) fn stream_synchronize(stream: u64) -> PResult<()> {
    gpu()?;
    // SAFETY: waits on a stream handle (0 is the default stream).
    let r = unsafe { cu::cuStreamSynchronize(stream as cu::CUstream) };
    check(r, "cuStreamSynchronize")
}

/// Whether `stream` is being recorded into a graph (then nothing may wait on it, and
/// what a call allocates in stream order belongs to the graph).
pub(crate) fn stream_capturing(stream: u64) -> PResult<bool> {
    let mut st = cu::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
    // SAFETY: reads the capture status of a live stream handle into a local.
    let r = unsafe { cu::cuStreamIsCapturing(stream as cu::CUstream, &mut st) };
    check(r, "cuStreamIsCapturing")?;
    Ok(st != cu::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE)
}

/// Runs `f` with this thread's capture mode relaxed, so that a memory allocation made
/// outside stream order (kept past the recording) is allowed while one of the thread's
/// streams is being recorded (`graph_begin`'s thread-local mode refuses it otherwise).
pub(crate) fn outside_capture<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    let mut mode = cu::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
    // SAFETY: swaps this thread's capture mode with a local (restored below).
    let r = unsafe { cu::cuThreadExchangeStreamCaptureMode(&mut mode) };
    check(r, "cuThreadExchangeStreamCaptureMode")?;
    let out = f();
    // SAFETY: puts back the mode swapped out above.
    let r = unsafe { cu::cuThreadExchangeStreamCaptureMode(&mut mode) };
    check(r, "cuThreadExchangeStreamCaptureMode")?;
    out
}

pub(crate) fn mem_alloc(bytes: usize) -> PResult<u64> {
    gpu()?;
    let mut p: cu::CUdeviceptr = 0;
    // SAFETY: allocates into a local.
    let r = unsafe { cu::cuMemAlloc_v2(&mut p, bytes.max(1)) };
    check(r, "cuMemAlloc")?;
    Ok(p)
}

/// Page-locked host memory of `bytes` bytes, usable by every context (portable).
pub(crate) fn host_alloc(bytes: usize) -> PResult<*mut c_void> {
    gpu()?;
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: allocates into a local.
    let r = unsafe { cu::cuMemHostAlloc(&mut p, bytes.max(1), cu::CU_MEMHOSTALLOC_PORTABLE) };
    check(r, "cuMemHostAlloc")?;
    Ok(p)
}

/// # Safety
/// `ptr` is null or came from [`host_alloc`], freed once, with no copy in flight on it.
pub(crate) unsafe fn host_free(ptr: *mut c_void) -> PResult<()> {
    gpu()?;
    if ptr.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's contract.
    check(unsafe { cu::cuMemFreeHost(ptr) }, "cuMemFreeHost")
}

pub(crate) fn mem_free(ptr: u64) -> PResult<()> {
    gpu()?;
    if ptr == 0 {
        return Ok(());
    }
    // SAFETY: `ptr` came from mem_alloc and is freed once (the caller's contract).
    check(unsafe { cu::cuMemFree_v2(ptr) }, "cuMemFree")
}

/// # Safety
/// `src` holds `bytes` readable bytes.
pub(crate) unsafe fn memcpy_htod(
    dst: u64,
    src: *const c_void,
    bytes: usize,
    stream: u64,
) -> PResult<()> {
    gpu()?;
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: the caller guarantees `src`; from pageable memory the call returns once the
    // source has been staged, so the host buffer may be reused afterwards.
    check(
        unsafe { cu::cuMemcpyHtoDAsync_v2(dst, src, bytes, stream as cu::CUstream) },
        "cuMemcpyHtoDAsync",
    )
}

/// # Safety
/// `dst` holds `bytes` writable bytes.
pub(crate) unsafe fn memcpy_dtoh(
    dst: *mut c_void,
    src: u64,
    bytes: usize,
    stream: u64,
) -> PResult<()> {
    gpu()?;
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: the caller guarantees `dst`; we wait for the copy before returning.
    let r = unsafe { cu::cuMemcpyDtoHAsync_v2(dst, src, bytes, stream as cu::CUstream) };
    check(r, "cuMemcpyDtoHAsync")?;
    // SAFETY: waits on the stream the copy was ordered on.
    let r = unsafe { cu::cuStreamSynchronize(stream as cu::CUstream) };
    check(r, "cuStreamSynchronize")
}

pub(crate) fn memcpy_dtod(dst: u64, src: u64, bytes: usize, stream: u64) -> PResult<()> {
    gpu()?;
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: device-to-device copy between caller-owned device buffers.
    let r = unsafe { cu::cuMemcpyDtoDAsync_v2(dst, src, bytes, stream as cu::CUstream) };
    check(r, "cuMemcpyDtoDAsync")
}

pub(crate) fn memset(dst: u64, value: u8, bytes: usize, stream: u64) -> PResult<()> {
    gpu()?;
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: fills a caller-owned device buffer.
    let r = unsafe { cu::cuMemsetD8Async(dst, value, bytes, stream as cu::CUstream) };
    check(r, "cuMemsetD8Async")
}

/// `y = y + alpha x` over `n` elements of the storage type `dt` (f32 arithmetic).
pub(crate) fn axpy(dt: u32, n: usize, alpha: f32, x: u64, y: u64, stream: u64) -> PResult<()> {
    let g = gpu()?;
    let name = match dt {
        abi_dtype::F32 => "axpy_f32",
        abi_dtype::BF16 => "axpy_bf16",
        abi_dtype::F16 => "axpy_f16",
        _ => {
            return Err(PErr::invalid(format!(
                "axpy: dtype must be f32, bf16 or f16, got {}",
                abi_dtype::name(dt)
            )))
        }
    };
    if n == 0 {
        return Ok(());
    }
    if x == 0 || y == 0 {
        return Err(PErr::invalid("axpy: null buffer"));
    }
    let i64n = i64::try_from(n).map_err(|_| PErr::invalid("axpy: too many elements"))?;
    let f = g.func(name)?;
    let blocks = n.div_ceil(256).min(g.sm_count.max(1) as usize * 8) as u32;
    let prm = params::AxpyParams {
        x,
        y,
        n: i64n,
        alpha,
        pad0: 0,
    };
    g.launch(f, (blocks, 1, 1), 256, 0, stream, &prm)
}

/// One AdamW update of `n` f32 parameters (the `adamw_f32` kernel).
pub(crate) fn adamw(
    n: usize,
    param: u64,
    grad: u64,
    m: u64,
    v: u64,
    hp: &AdamWC,
    stream: u64,
) -> PResult<()> {
    let g = gpu()?;
    if n == 0 {
        return Ok(());
    }
    if [param, grad, m, v].contains(&0) {
        return Err(PErr::invalid("adamw: null buffer"));
    }
    if !(hp.bc1 > 0.0 && hp.bc2 > 0.0) {
        return Err(PErr::invalid(format!(
            "adamw: bias corrections must be positive, got {} and {}",
            hp.bc1, hp.bc2
        )));
    }
    if !(hp.grad_scale > 0.0 && hp.grad_scale.is_finite()) {
        return Err(PErr::invalid(format!(
            "adamw: grad_scale must be positive and finite, got {}",
            hp.grad_scale
        )));
    }
    let i64n = i64::try_from(n).map_err(|_| PErr::invalid("adamw: too many elements"))?;
    let f = g.func("adamw_f32")?;
    let blocks = n.div_ceil(256).min(g.sm_count.max(1) as usize * 8) as u32;
    let prm = params::AdamWParams {
        param,
        grad,
        m,
        v,
        n: i64n,
        lr: hp.lr,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        weight_decay: hp.weight_decay,
        bc1: hp.bc1,
        bc2: hp.bc2,
        grad_scale: hp.grad_scale,
    };
    g.launch(f, (blocks, 1, 1), 256, 0, stream, &prm)
}

/// The sum of squares of several f32 device buffers, in f64, brought to the host.
pub(crate) fn sum_squares(bufs: &[(u64, usize)], stream: u64) -> PResult<f64> {
    let g = gpu()?;
    if bufs.iter().any(|&(p, n)| p == 0 && n > 0) {
        return Err(PErr::invalid("sum_squares: null buffer"));
    }
    let f = g.func("sumsq_f32")?;
    let acc = g.alloc_async(8, stream)?;
    let run = || -> PResult<f64> {
        memset(acc, 0, 8, stream)?;
        for &(x, n) in bufs.iter().filter(|b| b.1 > 0) {
            let i64n =
                i64::try_from(n).map_err(|_| PErr::invalid("sum_squares: too many elements"))?;
            let blocks = n.div_ceil(256).min(g.sm_count.max(1) as usize * 4) as u32;
            let prm = params::SumSqParams {
                x,
                out: acc,
                n: i64n,
            };
            g.launch(f, (blocks, 1, 1), 256, 0, stream, &prm)?;
        }
        let mut out = 0f64;
        // SAFETY: eight writable bytes; the copy is waited for.
        unsafe { memcpy_dtoh(&mut out as *mut f64 as *mut c_void, acc, 8, stream) }?;
        Ok(out)
    };
    let r = run();
    let fr = g.free_async(acc, stream);
    let v = r?;
    fr?;
    Ok(v)
}

pub(crate) fn event_create() -> PResult<u64> {
    gpu()?;
    let mut e: cu::CUevent = std::ptr::null_mut();
    // SAFETY: creates an event into a local.
    check(unsafe { cu::cuEventCreate(&mut e, 0) }, "cuEventCreate")?;
    Ok(e as u64)
}

pub(crate) fn event_destroy(event: u64) -> PResult<()> {
    gpu()?;
    // SAFETY: `event` came from event_create and is destroyed once.
    let r = unsafe { cu::cuEventDestroy_v2(event as cu::CUevent) };
    check(r, "cuEventDestroy")
}

pub(crate) fn event_record(event: u64, stream: u64) -> PResult<()> {
    gpu()?;
    // SAFETY: records a live event on a stream handle.
    let r = unsafe { cu::cuEventRecord(event as cu::CUevent, stream as cu::CUstream) };
    check(r, "cuEventRecord")
}

pub(crate) fn event_elapsed_ms(start: u64, end: u64) -> PResult<f32> {
    gpu()?;
    let mut ms = 0f32;
    // SAFETY: waits for a live event.
    let r = unsafe { cu::cuEventSynchronize(end as cu::CUevent) };
    check(r, "cuEventSynchronize")?;
    // SAFETY: reads the time between two recorded live events into a local.
    let r = unsafe { cu::cuEventElapsedTime(&mut ms, start as cu::CUevent, end as cu::CUevent) };
    check(r, "cuEventElapsedTime")?;
    Ok(ms)
}
