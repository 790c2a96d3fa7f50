//! The block's projections, `C (M, N) = A (M, K) . W (N, K)^T`: through cuBLASLt when
//! the plugin can open it at run time (libcublasLt.so.13, then .12), else our kernel.
//! cuBLASLt runs with `CUBLAS_COMPUTE_32F` (true f32 arithmetic, no TF32), so f32
//! results keep the SPEC's tolerance.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use mamba_core::abi::dtype;

use super::params::GemmParams;
use super::Gpu;
use crate::{PErr, PResult};

type Status = i32;
type Handle = *mut c_void;

const CUBLAS_COMPUTE_32F: i32 = 68;
const CUDA_R_32F: i32 = 0;
const CUDA_R_16F: i32 = 2;
const CUDA_R_16BF: i32 = 14;
const DESC_TRANSA: i32 = 3;
const PREF_MAX_WORKSPACE_BYTES: i32 = 1;
const OP_T: i32 = 1;
const WORKSPACE: usize = 32 << 20;

#[repr(C)]
#[derive(Clone, Copy)]
struct HeuristicResult {
    algo: [u64; 8],
    workspace_size: usize,
    state: Status,
    waves_count: f32,
    reserved: [i32; 4],
}

struct Lt {
    handle: Handle,
    matmul_desc_create: unsafe extern "C" fn(*mut Handle, i32, i32) -> Status,
    matmul_desc_set: unsafe extern "C" fn(Handle, i32, *const c_void, usize) -> Status,
    layout_create: unsafe extern "C" fn(*mut Handle, i32, u64, u64, i64) -> Status,
    pref_create: unsafe extern "C" fn(*mut Handle) -> Status,
    pref_set: unsafe extern "C" fn(Handle, i32, *const c_void, usize) -> Status,
    heuristic: unsafe extern "C" fn(
        Handle,
        Handle,
        Handle,
        Handle,
        Handle,
        Handle,
        Handle,
        i32,
        *mut HeuristicResult,
        *mut i32,
    ) -> Status,
    matmul: unsafe extern "C" fn(
        Handle,
        Handle,
        *const c_void,
        *const c_void,
        Handle,
        *const c_void,
        Handle,
        *const c_void,
        *const c_void,
        Handle,
        *mut c_void,
        Handle,
        *const c_void,
        *mut c_void,
        usize,
        *mut c_void,
    ) -> Status,
}

/// One planned product: the descriptors and the algorithm cuBLASLt chose.
#[derive(Clone, Copy)]
struct Plan {
    desc: Handle,
    a: Handle,
    b: Handle,
    c: Handle,
    algo: HeuristicResult,
}

/// dtype, m, n, k, lda, ldc.
type PlanKey = (u32, usize, usize, usize, usize, usize);

pub(crate) struct Gemm {
    lt: Option<Lt>,
    detail: String,
    workspace: Mutex<u64>,
    plans: Mutex<HashMap<PlanKey, Option<Plan>>>,
}

// SAFETY: the cuBLASLt handle and descriptors are used under the `plans` lock or are
// read-only after creation; cuBLASLt handles may be shared across threads.
unsafe impl Send for Gemm {}
// SAFETY: as above.
unsafe impl Sync for Gemm {}

fn sym<T: Copy>(lib: &'static libloading::Library, name: &[u8]) -> Result<T, String> {
    // SAFETY: each symbol is looked up with the C signature of cublasLt.h it has.
    unsafe { lib.get::<T>(name) }
        .map(|s| *s)
        .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(name)))
}

fn open_lt() -> Result<(Lt, String), String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("MAMBA_CUBLASLT") {
        if p == "0" || p == "off" {
            return Err("disabled by MAMBA_CUBLASLT".into());
        }
        candidates.push(p);
    }
    for name in ["libcublasLt.so.13", "libcublasLt.so.12"] {
        candidates.push(name.into());
        candidates.push(format!("/usr/local/cuda/lib64/{name}"));
    }
    let mut errors = Vec::new();
    for c in candidates {
        // SAFETY: loading cuBLASLt runs its initialisers, which have no preconditions.
        match unsafe { libloading::Library::new(&c) } {
            Ok(lib) => {
                // Kept for the life of the process, like the plugin itself.
                let lib: &'static libloading::Library = Box::leak(Box::new(lib));
                let create: unsafe extern "C" fn(*mut Handle) -> Status =
                    sym(lib, b"cublasLtCreate\0")?;
                let mut handle: Handle = std::ptr::null_mut();
                // SAFETY: writes a handle into a local.
                let st = unsafe { create(&mut handle) };
                if st != 0 {
                    errors.push(format!("{c}: cublasLtCreate failed with status {st}"));
                    continue;
                }
                let lt = Lt {
                    handle,
                    matmul_desc_create: sym(lib, b"cublasLtMatmulDescCreate\0")?,
                    matmul_desc_set: sym(lib, b"cublasLtMatmulDescSetAttribute\0")?,
                    layout_create: sym(lib, b"cublasLtMatrixLayoutCreate\0")?,
                    pref_create: sym(lib, b"cublasLtMatmulPreferenceCreate\0")?,
                    pref_set: sym(lib, b"cublasLtMatmulPreferenceSetAttribute\0")?,
                    heuristic: sym(lib, b"cublasLtMatmulAlgoGetHeuristic\0")?,
                    matmul: sym(lib, b"cublasLtMatmul\0")?,
                };
                return Ok((lt, c));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors.join("; "))
}

impl Gemm {
    pub(crate) fn load() -> Gemm {
        match open_lt() {
            Ok((lt, path)) => Gemm {
                lt: Some(lt),
                detail: format!("cuBLASLt ({path})"),
                workspace: Mutex::new(0),
                plans: Mutex::new(HashMap::new()),
            },
            Err(why) => Gemm {
                lt: None,
                detail: format!("own GEMM kernel (cuBLASLt not loaded: {why})"),
                workspace: Mutex::new(0),
                plans: Mutex::new(HashMap::new()),
            },
        }
    }

    pub(crate) fn has_cublaslt(&self) -> bool {
        self.lt.is_some()
    }

    pub(crate) fn detail(&self) -> String {
        self.detail.clone()
    }

    /// `c (M, N) = a (M, K) . w (N, K)^T`, row-major, row strides `lda`/`ldc`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        g: &Gpu,
        act: u32,
        m: usize,
        n: usize,
        k: usize,
        a: u64,
        lda: usize,
        w: u64,
        c: u64,
        ldc: usize,
        stream: u64,
    ) -> PResult<()> {
        if let Some(lt) = &self.lt {
            match self.run_lt(lt, act, m, n, k, a, lda, w, c, ldc, stream) {
                // cuBLASLt has no algorithm for this shape/alignment: our kernel does it.
                Err(e) if e.msg.starts_with("no cuBLASLt algorithm") => {}
                other => return other,
            }
        }
        let sfx = super::ops::suffix(act, "gemm")?;
        let prm = GemmParams {
            a,
            w,
            c,
            lda: lda as i64,
            ldc: ldc as i64,
            m: m as i32,
            n: n as i32,
            k: k as i32,
            pad0: 0,
        };
        let f = g.func(&format!("gemm_nt_{sfx}"))?;
        g.launch(
            f,
            (n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1),
            256,
            0,
            stream,
            &prm,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn run_lt(
        &self,
        lt: &Lt,
        act: u32,
        m: usize,
        n: usize,
        k: usize,
        a: u64,
        lda: usize,
        w: u64,
        c: u64,
        ldc: usize,
        stream: u64,
    ) -> PResult<()> {
        let ty = match act {
            dtype::F32 => CUDA_R_32F,
            dtype::BF16 => CUDA_R_16BF,
            dtype::F16 => CUDA_R_16F,
            _ => return Err(PErr::unsupported("gemm dtype")),
        };
        let ws = {
            let mut ws = self.workspace.lock().unwrap_or_else(|e| e.into_inner());
            if *ws == 0 {
                *ws = super::mem_alloc(WORKSPACE)?;
            }
            *ws
        };
        let key = (act, m, n, k, lda, ldc);
        let plan = {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            match plans.get(&key) {
                Some(p) => *p,
                None => {
                    let p = match self.plan(lt, ty, m, n, k, lda, ldc) {
                        Ok(p) => Some(p),
                        Err(e) if e.msg.starts_with("no cuBLASLt algorithm") => None,
                        Err(e) => return Err(e),
                    };
                    plans.insert(key, p);
                    p
                }
            }
        };
        let Some(plan) = plan else {
            return Err(PErr::unsupported(format!(
                "no cuBLASLt algorithm for m={m} n={n} k={k}"
            )));
        };
        let (alpha, beta) = (1f32, 0f32);
        // Column-major view: C^T (N x M) = W (N x K, stored as K x N col-major, transposed)
        // . A^T (K x M col-major).
        // SAFETY: the descriptors describe the caller's device buffers (w: N x K dense,
        // a: M rows of stride lda, c: M rows of stride ldc); the workspace is ours.
        let st = unsafe {
            (lt.matmul)(
                lt.handle,
                plan.desc,
                &alpha as *const f32 as *const c_void,
                w as *const c_void,
                plan.a,
                a as *const c_void,
                plan.b,
                &beta as *const f32 as *const c_void,
                c as *const c_void,
                plan.c,
                c as *mut c_void,
                plan.c,
                plan.algo.algo.as_ptr() as *const c_void,
                ws as *mut c_void,
                WORKSPACE,
                stream as *mut c_void,
            )
        };
        if st != 0 {
            return Err(PErr::new(
                mamba_core::abi::status::CUDA_ERROR,
                format!("cublasLtMatmul: status {st}"),
            ));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        lt: &Lt,
        ty: i32,
        m: usize,
        n: usize,
        k: usize,
        lda: usize,
        ldc: usize,
    ) -> PResult<Plan> {
        let fail = |what: &str, st: Status| {
            PErr::new(
                mamba_core::abi::status::CUDA_ERROR,
                format!("{what}: status {st}"),
            )
        };
        let mut desc: Handle = std::ptr::null_mut();
        // SAFETY: creates a descriptor into a local.
        let st = unsafe { (lt.matmul_desc_create)(&mut desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) };
        if st != 0 {
            return Err(fail("cublasLtMatmulDescCreate", st));
        }
        let op_t = OP_T;
        // SAFETY: sets TRANSA from a live i32.
        let st = unsafe {
            (lt.matmul_desc_set)(desc, DESC_TRANSA, &op_t as *const i32 as *const c_void, 4)
        };
        if st != 0 {
            return Err(fail("cublasLtMatmulDescSetAttribute", st));
        }
        let mut la: Handle = std::ptr::null_mut();
        let mut lb: Handle = std::ptr::null_mut();
        let mut lc: Handle = std::ptr::null_mut();
        // SAFETY: creates the layout of W: K x N col-major, ld K.
        let st = unsafe { (lt.layout_create)(&mut la, ty, k as u64, n as u64, k as i64) };
        if st != 0 {
            return Err(fail("cublasLtMatrixLayoutCreate", st));
        }
        // SAFETY: creates the layout of A^T: K x M col-major, ld lda.
        let st = unsafe { (lt.layout_create)(&mut lb, ty, k as u64, m as u64, lda as i64) };
        if st != 0 {
            return Err(fail("cublasLtMatrixLayoutCreate", st));
        }
        // SAFETY: creates the layout of C^T: N x M col-major, ld ldc.
        let st = unsafe { (lt.layout_create)(&mut lc, ty, n as u64, m as u64, ldc as i64) };
        if st != 0 {
            return Err(fail("cublasLtMatrixLayoutCreate", st));
        }
        let mut pref: Handle = std::ptr::null_mut();
        // SAFETY: creates a preference into a local.
        let st = unsafe { (lt.pref_create)(&mut pref) };
        if st != 0 {
            return Err(fail("cublasLtMatmulPreferenceCreate", st));
        }
        let wsz = WORKSPACE as u64;
        // SAFETY: sets the workspace limit from a live u64.
        let st = unsafe {
            (lt.pref_set)(
                pref,
                PREF_MAX_WORKSPACE_BYTES,
                &wsz as *const u64 as *const c_void,
                8,
            )
        };
        if st != 0 {
            return Err(fail("cublasLtMatmulPreferenceSetAttribute", st));
        }
        // SAFETY: HeuristicResult is plain data; zero is a valid bit pattern.
        let mut res: HeuristicResult = unsafe { std::mem::zeroed() };
        let mut count = 0i32;
        // SAFETY: asks for one algorithm into a local result.
        let st = unsafe {
            (lt.heuristic)(
                lt.handle, desc, la, lb, lc, lc, pref, 1, &mut res, &mut count,
            )
        };
        if st != 0 || count < 1 {
            return Err(PErr::new(
                mamba_core::abi::status::UNSUPPORTED,
                format!(
                    "no cuBLASLt algorithm for m={m} n={n} k={k} lda={lda} ldc={ldc} (status {st})"
                ),
            ));
        }
        Ok(Plan {
            desc,
            a: la,
            b: lb,
            c: lc,
            algo: res,
        })
    }
}
