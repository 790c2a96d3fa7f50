//! The block's projections, `C (M, N) = A (M, K) . W (N, K)^T`: through cuBLASLt when
//! the plugin can open it at run time (libcublasLt.so.13, then .12), else our kernel.
//! cuBLASLt runs with `CUBLAS_COMPUTE_32F` (true f32 arithmetic, no TF32), so f32
//! results keep the SPEC's tolerance. Large f32 products (`m n k >= 2^30`, the LM-width
//! block's) run split on the f16 tensor cores instead ([`Gemm::run_split`]: each operand
//! as f16 hi + lo parts, three products summed in f32), as accurate as f32 arithmetic and
//! several times faster than cuBLASLt's f32 (SIMT) kernels. [`Gemm::run_strided`] takes the backward's products
//! (operands with element strides, one of them 1) through cuBLASLt too where it can; its
//! caller may ask for `CUBLAS_COMPUTE_32F_FAST_TF32` on f32 operands (the 16-bit block's
//! in_proj backward: block_bwd.rs).

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
/// f32 operands rounded to TF32 on the tensor cores, f32 accumulation.
const CUBLAS_COMPUTE_32F_FAST_TF32: i32 = 77;
const CUDA_R_32F: i32 = 0;
const CUDA_R_16F: i32 = 2;
const CUDA_R_16BF: i32 = 14;
/// CUBLASLT_MATMUL_DESC_POINTER_MODE and CUBLASLT_POINTER_MODE_DEVICE (alpha and beta read
/// from device memory: the split products' alpha is computed on the device).
const DESC_POINTER_MODE: i32 = 2;
const POINTER_MODE_DEVICE: i32 = 1;
const DESC_TRANSA: i32 = 3;
const DESC_TRANSB: i32 = 4;
const PREF_MAX_WORKSPACE_BYTES: i32 = 1;
/// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32; the heuristic assumes 256
/// without them and may pick a kernel that `cublasLtMatmul` then refuses, status 15).
const PREF_MIN_ALIGNMENT: [i32; 4] = [5, 6, 7, 8];
/// CUBLAS_STATUS_NOT_SUPPORTED.
const STATUS_NOT_SUPPORTED: Status = 15;
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

/// One matrix of cuBLASLt's column-major product `D = op(A) op(B)`: its stored rows,
/// columns and leading dimension, and whether the product reads it transposed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct LtMat {
    rows: u64,
    cols: u64,
    ld: i64,
    trans: bool,
}

/// A planned product: the compute type, the operands' and the output's cuBLASLt types,
/// the three layouts, and the three buffers' alignments (bytes, a power of two up to 256).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct PlanKey {
    compute: i32,
    ab_ty: i32,
    c_ty: i32,
    a: LtMat,
    b: LtMat,
    c: LtMat,
    align: [u32; 3],
    /// Alpha and beta in device memory (the split products).
    dev_scale: bool,
}

/// The largest power of two up to 256 that divides a device address.
fn align_of(ptr: u64) -> u32 {
    (1u64 << ptr.trailing_zeros().min(8)) as u32
}

fn lt_type(act: u32) -> Option<i32> {
    match act {
        dtype::F32 => Some(CUDA_R_32F),
        dtype::BF16 => Some(CUDA_R_16BF),
        dtype::F16 => Some(CUDA_R_16F),
        _ => None,
    }
}

/// A strided operand of [`Gemm::run_strided`]: element `(r, q)` (r along the product's
/// row or reduction index, q along the other) at `ptr + (r s0 + q s1) * size`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided {
    pub ptr: u64,
    pub s0: i64,
    pub s1: i64,
}

/// How cuBLASLt's column-major view holds a row-major operand `X (r, q)` with element
/// strides (s0, s1), as the matrix `X^T` (q x r): stored q x r with ld s0 when s1 == 1, or
/// stored r x q with ld s1 and read transposed when s0 == 1; None otherwise.
fn lt_view(r: usize, q: usize, x: Strided) -> Option<LtMat> {
    if x.s1 == 1 && x.s0 >= q.max(1) as i64 {
        Some(LtMat {
            rows: q as u64,
            cols: r as u64,
            ld: x.s0,
            trans: false,
        })
    } else if x.s0 == 1 && x.s1 >= r.max(1) as i64 {
        Some(LtMat {
            rows: r as u64,
            cols: q as u64,
            ld: x.s1,
            trans: true,
        })
    } else {
        None
    }
}

/// One operand of a split product (`SplitOp` in kernels/common.cuh).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SplitOp {
    x: u64,
    sr: i64,
    sk: i64,
    out: u64,
    rows: i32,
    k: i32,
    kp: i32,
    role: i32,
}

/// `SplitParams` (kernels/common.cuh).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SplitParams {
    op: [SplitOp; 3],
    amax: u64,
    scale: u64,
    add: i32,
    nops: i32,
    start: [i32; 4],
}
const _: () =
    assert!(std::mem::size_of::<SplitParams>() == 3 * (4 * 8 + 4 * 4) + 2 * 8 + 2 * 4 + 16);

/// The split products' small scratch: `amax` ([3] u32) at 0, the scales (alpha, beta pairs)
/// from `SPLIT_SCALE_AT`.
const SPLIT_SMALL: usize = 256;
const SPLIT_SCALE_AT: u64 = 16;

/// An f32 operand X (m, k) split once for the two products it takes part in (the block
/// backward's dzx and dout: [`Gemm::split_shared`]): `rows` C1 (m, n1) = X . W and
/// `cols` C2 (k, n2) = X^T . U. X's split rows serve both: C1 is one f16 product over 3 kp
/// (as [`Gemm::run_split`]), C2 one over 3 m, each third of X's and U's split rows
/// ([hi | hi | lo] against [hi | lo | hi]) taken as a row of its own.
pub(crate) struct SharedSplit {
    scratch: u64,
    xo: u64,
    wo: u64,
    uo: u64,
    m: usize,
    k: usize,
    n1: usize,
    n2: usize,
    kp: usize,
    kpu: usize,
}

/// Whether the block backward splits dzx and dout once for their two products
/// (`MAMBA_CUDA_F32_SPLIT_SHARED=0`: each product splits its own operands).
fn shared_wanted() -> bool {
    super::ops::env_str("MAMBA_CUDA_F32_SPLIT_SHARED").as_deref() != Some("0")
}

/// The f32 products the split form takes by default: `m n k` at least this (a smaller
/// product's four extra launches cost more than they save).
const SPLIT_MIN_MNK: usize = 1 << 30;

/// Whether the default rule splits f32 products at all.
const SPLIT_DEFAULT: bool = true;

/// Whether an f32 product of this size runs split on the f16 tensor cores
/// ([`Gemm::run_split`]): `MAMBA_CUDA_F32_SPLIT=0` never, `=1` at every size; unset (or
/// any other value): from `SPLIT_MIN_MNK` where `SPLIT_DEFAULT`.
fn split_wanted(m: usize, n: usize, k: usize) -> bool {
    match super::ops::env_str("MAMBA_CUDA_F32_SPLIT").as_deref() {
        Some("0") => false,
        Some("1") => true,
        _ => SPLIT_DEFAULT && m.saturating_mul(n).saturating_mul(k) >= SPLIT_MIN_MNK,
    }
}

impl SharedSplit {
    fn small(&self) -> u64 {
        self.uo + (self.m * 3 * self.kpu * 2).div_ceil(256) as u64 * 256
    }
}

/// One operand of a split: `x` (rows, k) with element strides (s0, s1), split into `out`
/// (rows, 3 kp) f16 in `role`'s order (0: [hi | hi | lo], 1: [hi | lo | hi]).
fn split_op(x: Strided, rows: i32, k: usize, kp: i32, out: u64, role: i32) -> SplitOp {
    SplitOp {
        x: x.ptr,
        sr: x.s0,
        sk: x.s1,
        out,
        rows,
        k: k as i32,
        kp,
        role,
    }
}

/// Scales and splits two or three operands on `stream` (kernels/misc.cu `split_max_f32`,
/// `split_f32`): their largest |x| into `small` ([3] u32), the products' alpha and beta
/// after it (`SPLIT_SCALE_AT`: op[0] . op[1], then op[0] . op[2], each with beta `add`).
fn split_operands(
    g: &super::Gpu,
    ops: &[SplitOp],
    small: u64,
    add: bool,
    stream: u64,
) -> PResult<()> {
    let mut op = [SplitOp::default(); 3];
    op[..ops.len()].copy_from_slice(ops);
    // `split_f32`: one block per tile of 32 rows x 64 columns, operand after operand.
    let too_many = || PErr::unsupported("f32 split product: too many tiles");
    let mut start = [0i32; 4];
    let mut total = 0usize;
    for (i, o) in ops.iter().enumerate() {
        start[i] = i32::try_from(total).map_err(|_| too_many())?;
        total += (o.kp as usize).div_ceil(64) * (o.rows as usize).div_ceil(32);
    }
    start[ops.len()] = i32::try_from(total).map_err(|_| too_many())?;
    let prm = SplitParams {
        op,
        amax: small,
        scale: small + SPLIT_SCALE_AT,
        add: add as i32,
        nops: ops.len() as i32,
        start,
    };
    super::memset(small, 0, SPLIT_SCALE_AT as usize, stream)?;
    let rows = ops.iter().map(|o| o.rows as usize).max().unwrap_or(1);
    let k = ops.iter().map(|o| o.k as usize).max().unwrap_or(1);
    // Blocks stride over the operands' outer (not dense) dimension.
    let blocks = (8 * g.sm_count.max(1) as usize).min(rows.max(k)) as u32;
    let n = ops.len() as u32;
    // The max pass's second form (four rows of its block stride in flight per thread) is the
    // default: H100, f32 block (8, 2048, 768, N 128), ncu per forward 510 -> 466 us over its
    // 8 launches (DRAM 68 -> 74% of peak); the split's second form (no shared-memory tile
    // where k is dense) measured level (1146 against 1157 us), so the split keeps the first
    // (sixty-eighth session, `bench-results/h100-s68a-split-v2.txt`).
    // `MAMBA_CUDA_SPLIT_V2=1` / `0`: both kernels' second / first forms (any other value: the
    // default).
    let (fmax, fsplit) = match super::ops::env_str("MAMBA_CUDA_SPLIT_V2").as_deref() {
        Some("1") => ("split_max_f32_v2", "split_f32_v2"),
        Some("0") => ("split_max_f32", "split_f32"),
        _ => ("split_max_f32_v2", "split_f32"),
    };
    g.launch(g.func(fmax)?, (blocks, n, 1), 256, 0, stream, &prm)?;
    g.launch(g.func(fsplit)?, (total as u32, 1, 1), 256, 0, stream, &prm)
}

pub(crate) struct Gemm {
    lt: Option<Lt>,
    detail: String,
    /// cuBLASLt's workspace per stream (stream-ordered memory, made on a stream's first
    /// product and given back when the plugin destroys the stream): products enqueued on
    /// two streams at once (two threads' staging streams, or the pieces of a split call)
    /// must not share one, as a split-K plan writes its partial sums there.
    workspaces: Mutex<HashMap<u64, u64>>,
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

/// Rows up to which a projection runs on `gemm_few` (kernels/misc.cu `GEMM_FEW_M`).
const FEW_M: usize = 16;

/// Whether `run` takes `gemm_few` (one warp per output column) for an (m, n, k) product
/// of storage type `act` with m <= 16 rows: with `MAMBA_CUDA_GEMM_FEW=f32` for f32, `=all`
/// for every type; off by default: on the H200 it halved the f32 decode at 192 wide and
/// batch 16 (cuBLASLt's f32 products of 16 rows are slow there) and was 1.4-3x slower on
/// every other decode row (NOTES, forty-fourth session).
fn few_rows(act: u32, m: usize, n: usize, k: usize) -> bool {
    if m == 0 || m > FEW_M || n == 0 || k == 0 || n > u32::MAX as usize / 8 || k > i32::MAX as usize
    {
        return false;
    }
    match super::ops::env_str("MAMBA_CUDA_GEMM_FEW").as_deref() {
        Some("all") => true,
        Some("f32") => act == mamba_core::abi::dtype::F32,
        _ => false,
    }
}

/// Rows up to which a projection runs on `gemv_{type}_m{1,2,3,4}` (kernels/misc.cu
/// `gemv_vec`); `MAMBA_CUDA_GEMV_M=8` / `16` up to that many (on `_m8` / `_m16`).
const GEMV_M: usize = 4;

/// The `gemv_vec` instance for `m` rows (None past the rows allowed).
fn gemv_instance(m: usize) -> Option<usize> {
    let max = match super::ops::env_str("MAMBA_CUDA_GEMV_M").as_deref() {
        Some("16") => 16,
        Some("8") => 8,
        _ => GEMV_M,
    };
    [1, 2, 3, 4, 8, 16]
        .into_iter()
        .find(|&i| i >= m && m <= max)
}

/// The `gemv_vec` instance (its row count) that `run` takes (one warp per output column,
/// 16-byte loads along K) for an (m, n, k) product of storage type `act`, if any: 1-4 rows
/// (see `GEMV_M`), K a multiple of 16
/// bytes of values, A, W and A's row stride 16-byte aligned; for the 16-bit types unless
/// `MAMBA_CUDA_GEMV=0`, for f32 only with `MAMBA_CUDA_GEMV=1`. H100, a token through four
/// blocks on a recorded graph (forty-eighth session, three rounds): bf16 at d_model 192 /
/// 768, batch 1, 62.4-62.6 -> 54.7-57.4 us / 85.0-88.1 -> 79.8-80.8 us against cuBLASLt;
/// f32 level at 192 wide and slower at 768 wide (105.4-115.1 -> 112.8-116.4 us: with the
/// four blocks' 41 MB of weights held in L2 between tokens, cuBLAS's f32 GEMV reads them
/// faster, though under ncu, caches flushed, ours took 7.8 us against its 13.2-13.7).
/// `MAMBA_CUDA_GEMV_M=16` (up to 16 rows) was slower at batch 16 (f32 / bf16 at 768 wide
/// 254-256 -> 357-359 us / 151-154 -> 285-287 us).
fn gemv_rows(act: u32, m: usize, n: usize, k: usize, a: u64, lda: usize, w: u64) -> Option<usize> {
    let inst = gemv_instance(m)?;
    if m == 0 || n == 0 || k == 0 || n > u32::MAX as usize / 8 || k > i32::MAX as usize {
        return None;
    }
    let v = 16 / mamba_core::abi::dtype::size(act).max(1);
    if !k.is_multiple_of(v)
        || !lda.is_multiple_of(v)
        || !a.is_multiple_of(16)
        || !w.is_multiple_of(16)
    {
        return None;
    }
    let on = match super::ops::env_str("MAMBA_CUDA_GEMV").as_deref() {
        Some("0") => false,
        Some("1") => true,
        _ => act != mamba_core::abi::dtype::F32,
    };
    on.then_some(inst)
}

impl Gemm {
    pub(crate) fn load() -> Gemm {
        match open_lt() {
            Ok((lt, path)) => Gemm {
                lt: Some(lt),
                detail: format!("cuBLASLt ({path})"),
                workspaces: Mutex::new(HashMap::new()),
                plans: Mutex::new(HashMap::new()),
            },
            Err(why) => Gemm {
                lt: None,
                detail: format!("own GEMM kernel (cuBLASLt not loaded: {why})"),
                workspaces: Mutex::new(HashMap::new()),
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

    /// `stream`'s workspace, allocated on its first use and kept until the stream goes
    /// (only `stream` uses it). Not in stream order: a workspace first needed while the
    /// stream is being recorded must not become the graph's allocation (the graph would own
    /// it, and every later call on the stream would use memory that exists only while the
    /// graph runs).
    fn workspace(&self, stream: u64) -> PResult<u64> {
        let mut ws = self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&p) = ws.get(&stream) {
            return Ok(p);
        }
        let p = super::outside_capture(|| super::mem_alloc(WORKSPACE))?;
        ws.insert(stream, p);
        Ok(p)
    }

    /// Gives back `stream`'s workspace once the stream's work is done (before the stream
    /// goes).
    pub(crate) fn release_stream(&self, stream: u64) -> PResult<()> {
        let p = self
            .workspaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&stream);
        match p {
            Some(p) => {
                super::stream_synchronize(stream)?;
                super::mem_free(p)
            }
            None => Ok(()),
        }
    }

    /// `c (M, N) = a (M, K) . w (N, K)^T`, row-major, row strides `lda`/`ldc`; with `add`,
    /// `c += a . w^T` instead (the sum in f32, rounded once to the storage type).
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
        add: bool,
        stream: u64,
    ) -> PResult<()> {
        // Our kernels' parameters (gemm_few, or gemm_nt where cuBLASLt has nothing).
        let prm = GemmParams {
            a,
            w,
            c,
            lda: lda as i64,
            ldc: ldc as i64,
            m: m as i32,
            n: n as i32,
            k: k as i32,
            add: add as i32,
        };
        let sfx = super::ops::suffix(act, "gemm")?;
        let warp_per_column = if few_rows(act, m, n, k) {
            Some(format!("gemm_few_{sfx}"))
        } else {
            gemv_rows(act, m, n, k, a, lda, w).map(|inst| format!("gemv_{sfx}_m{inst}"))
        };
        if let Some(name) = warp_per_column {
            let f = g.func(&name)?;
            // 8 warps per block, one output column each.
            return g.launch(f, (n.div_ceil(8) as u32, 1, 1), 256, 0, stream, &prm);
        }
        if let (Some(lt), true) = (&self.lt, act == dtype::F32 && split_wanted(m, n, k)) {
            let a = Strided {
                ptr: a,
                s0: lda as i64,
                s1: 1,
            };
            let w = Strided {
                ptr: w,
                s0: k as i64,
                s1: 1,
            };
            if self.run_split(g, lt, m, n, k, a, w, c, ldc, add, stream)? {
                return Ok(());
            }
        }
        if let (Some(lt), Some(ty)) = (&self.lt, lt_type(act)) {
            // Column-major view: C^T (N x M) = W (N x K, stored as K x N col-major, read
            // transposed) . A^T (K x M col-major, ld lda).
            let key = PlanKey {
                compute: CUBLAS_COMPUTE_32F,
                ab_ty: ty,
                c_ty: ty,
                a: LtMat {
                    rows: k as u64,
                    cols: n as u64,
                    ld: k as i64,
                    trans: true,
                },
                b: LtMat {
                    rows: k as u64,
                    cols: m as u64,
                    ld: lda as i64,
                    trans: false,
                },
                c: LtMat {
                    rows: n as u64,
                    cols: m as u64,
                    ld: ldc as i64,
                    trans: false,
                },
                align: [align_of(w), align_of(a), align_of(c)],
                dev_scale: false,
            };
            match self.matmul(lt, key, w, a, c, add, None, stream) {
                // cuBLASLt has no algorithm for this shape/alignment: our kernel does it.
                Err(e) if e.msg.starts_with("no cuBLASLt algorithm") => {}
                other => return other,
            }
        }
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

    /// `c (m, n) = A (m, k) . B (k, n)` through cuBLASLt, row-major `c` with row stride
    /// `ldc`, `A(i, k) = a[i a.s0 + k a.s1]`, `B(k, j) = b[k b.s0 + j b.s1]`, both operands
    /// of type `ab`, `c` of type `c_ty` (f32 accumulation). With `tf32` and f32 operands the
    /// products run on the tensor cores with the operands rounded to TF32 (11 significant
    /// bits: a 16-bit type's values are exact there). Ok(false) where cuBLASLt is not
    /// loaded, an operand has no unit stride, or it has no algorithm for the shape (the
    /// caller's kernel does it then, in f32).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_strided(
        &self,
        ab: u32,
        c_ty: u32,
        tf32: bool,
        m: usize,
        n: usize,
        k: usize,
        a: Strided,
        b: Strided,
        c: u64,
        ldc: usize,
        stream: u64,
    ) -> PResult<bool> {
        let (Some(lt), Some(ab_ty), Some(c_lt)) = (&self.lt, lt_type(ab), lt_type(c_ty)) else {
            return Ok(false);
        };
        // Column-major view: C^T (n x m, ld ldc) = B^T (n x k) . A^T (k x m).
        let (Some(la), Some(lb)) = (lt_view(k, n, b), lt_view(m, k, a)) else {
            return Ok(false);
        };
        if m == 0 || n == 0 || k == 0 || ldc < n {
            return Ok(false);
        }
        if ab == dtype::F32 && c_ty == dtype::F32 && !tf32 && split_wanted(m, n, k) {
            // B^T (n, k): element (j, q) = B(q, j).
            let bt = Strided {
                ptr: b.ptr,
                s0: b.s1,
                s1: b.s0,
            };
            if self.run_split(super::gpu()?, lt, m, n, k, a, bt, c, ldc, false, stream)? {
                return Ok(true);
            }
        }
        let key = PlanKey {
            compute: if tf32 && ab == dtype::F32 {
                CUBLAS_COMPUTE_32F_FAST_TF32
            } else {
                CUBLAS_COMPUTE_32F
            },
            ab_ty,
            c_ty: c_lt,
            a: la,
            b: lb,
            c: LtMat {
                rows: n as u64,
                cols: m as u64,
                ld: ldc as i64,
                trans: false,
            },
            align: [align_of(b.ptr), align_of(a.ptr), align_of(c)],
            dev_scale: false,
        };
        match self.matmul(lt, key, b.ptr, a.ptr, c, false, None, stream) {
            Ok(()) => Ok(true),
            Err(e) if e.msg.starts_with("no cuBLASLt algorithm") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `c (m, n) (+)= A (m, k) . B^T` in f32 on the f16 tensor cores: `a` is A (m, k) and
    /// `bt` is B^T (n, k), element (r, q) at `ptr + (r s0 + q s1) * 4`; `c` row-major f32
    /// with row stride `ldc`. Each operand is scaled by a power of two (its largest |x|
    /// into [2^14, 2^15)) and split into f16 hi and lo (kernels/misc.cu `split_f32`); one
    /// cuBLASLt f16 product with f32 accumulation over 3 k sums A_hi B_hi + A_hi B_lo +
    /// A_lo B_hi, and its alpha (computed on the device) undoes the scales. Against f32
    /// arithmetic: the products lose A_lo B_lo (2^-22 of A_hi B_hi) and elements below
    /// ~2^-24 of their operand's largest lose bits in lo (their share of a sum is that
    /// small); the sums are f32 as before. Operands with a non-finite value go unscaled
    /// (non-finite results). Ok(false) where the split operands' scratch cannot be allocated
    /// or cuBLASLt has no algorithm for the f16 product (nothing written to `c`).
    #[allow(clippy::too_many_arguments)]
    fn run_split(
        &self,
        g: &Gpu,
        lt: &Lt,
        m: usize,
        n: usize,
        k: usize,
        a: Strided,
        bt: Strided,
        c: u64,
        ldc: usize,
        add: bool,
        stream: u64,
    ) -> PResult<bool> {
        if m == 0 || n == 0 || k == 0 {
            return Ok(false);
        }
        let kp = k.div_ceil(8) * 8;
        let (Ok(mi), Ok(ni), Ok(kpi)) = (i32::try_from(m), i32::try_from(n), i32::try_from(3 * kp))
        else {
            return Ok(false);
        };
        if i32::try_from(k).is_err() {
            return Ok(false);
        }
        let ab = (m * 3 * kp * 2).div_ceil(256) * 256;
        let bb = (n * 3 * kp * 2).div_ceil(256) * 256;
        // Where the split operands do not fit, the f32 kernels do the product.
        let Ok(scratch) = g.alloc_async(ab + bb + SPLIT_SMALL, stream) else {
            return Ok(false);
        };
        let res = (|| -> PResult<bool> {
            let (ao, bo, small) = (scratch, scratch + ab as u64, scratch + (ab + bb) as u64);
            let ops = [
                split_op(a, mi, k, kpi / 3, ao, 0),
                split_op(bt, ni, k, kpi / 3, bo, 1),
            ];
            split_operands(g, &ops, small, add, stream)?;
            self.split_matmul(
                lt,
                m,
                n,
                kp,
                ao,
                bo,
                c,
                ldc,
                add,
                small + SPLIT_SCALE_AT,
                stream,
            )
        })();
        let fr = g.free_async(scratch, stream);
        let r = res?;
        fr?;
        Ok(r)
    }

    /// The f16 product of split operands: `c (m, n) (+)= As . Bs^T` over 3 kp, row-major
    /// `c` with row stride `ldc`, alpha and beta read at `scale`. Ok(false) where cuBLASLt
    /// has no algorithm for it (nothing written).
    #[allow(clippy::too_many_arguments)]
    fn split_matmul(
        &self,
        lt: &Lt,
        m: usize,
        n: usize,
        kp: usize,
        ao: u64,
        bo: u64,
        c: u64,
        ldc: usize,
        add: bool,
        scale: u64,
        stream: u64,
    ) -> PResult<bool> {
        // Column-major view, as in `run`: C^T (n x m) = Bs (n x 3kp, read transposed)
        // . As^T (3kp x m).
        let k3 = 3 * kp;
        let key = PlanKey {
            compute: CUBLAS_COMPUTE_32F,
            ab_ty: CUDA_R_16F,
            c_ty: CUDA_R_32F,
            a: LtMat {
                rows: k3 as u64,
                cols: n as u64,
                ld: k3 as i64,
                trans: true,
            },
            b: LtMat {
                rows: k3 as u64,
                cols: m as u64,
                ld: k3 as i64,
                trans: false,
            },
            c: LtMat {
                rows: n as u64,
                cols: m as u64,
                ld: ldc as i64,
                trans: false,
            },
            align: [align_of(bo), align_of(ao), align_of(c)],
            dev_scale: true,
        };
        match self.matmul(lt, key, bo, ao, c, add, Some(scale), stream) {
            Ok(()) => Ok(true),
            Err(e) if e.msg.starts_with("no cuBLASLt algorithm") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Splits an f32 operand X (m, k) once for the two products C1 (m, n1) = X . W and
    /// C2 (k, n2) = X^T . U (`x`: X(i, q) at `x.ptr + (i s0 + q s1) 4`; `w`: W (k, n1) and
    /// `u`: U (m, n2) alike), on `stream`. None where the split form is not wanted for both
    /// products (`split_wanted`, `MAMBA_CUDA_F32_SPLIT_SHARED=0`), cuBLASLt is not loaded, or
    /// the scratch cannot be allocated: the caller's products then go their own way. Run
    /// the products with [`Gemm::shared_rows`] and [`Gemm::shared_cols`] (any streams
    /// ordered after this one), then give the scratch back with [`Gemm::shared_free`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn split_shared(
        &self,
        m: usize,
        k: usize,
        n1: usize,
        n2: usize,
        x: Strided,
        w: Strided,
        u: Strided,
        stream: u64,
    ) -> PResult<Option<SharedSplit>> {
        if self.lt.is_none()
            || m == 0
            || k == 0
            || n1 == 0
            || n2 == 0
            || !shared_wanted()
            || !split_wanted(m, n1, k)
            || !split_wanted(k, n2, m)
        {
            return Ok(None);
        }
        let (kp, kpu) = (k.div_ceil(8) * 8, n2.div_ceil(8) * 8);
        let fits = |v: usize| i32::try_from(v).is_ok();
        if !(fits(m) && fits(3 * kp) && fits(3 * kpu) && fits(n1)) {
            return Ok(None);
        }
        let g = super::gpu()?;
        let round = |b: usize| b.div_ceil(256) * 256;
        let (xb, wb, ub) = (
            round(m * 3 * kp * 2),
            round(n1 * 3 * kp * 2),
            round(m * 3 * kpu * 2),
        );
        let Ok(scratch) = g.alloc_async(xb + wb + ub + SPLIT_SMALL, stream) else {
            return Ok(None);
        };
        let sh = SharedSplit {
            scratch,
            xo: scratch,
            wo: scratch + xb as u64,
            uo: scratch + (xb + wb) as u64,
            m,
            k,
            n1,
            n2,
            kp,
            kpu,
        };
        // W^T (n1, k): element (j, q) = W(q, j).
        let wt = Strided {
            ptr: w.ptr,
            s0: w.s1,
            s1: w.s0,
        };
        let ops = [
            split_op(x, m as i32, k, kp as i32, sh.xo, 0),
            split_op(wt, n1 as i32, k, kp as i32, sh.wo, 1),
            split_op(u, m as i32, n2, kpu as i32, sh.uo, 1),
        ];
        match split_operands(g, &ops, sh.small(), false, stream) {
            Ok(()) => Ok(Some(sh)),
            Err(e) => {
                let _ = g.free_async(scratch, stream);
                Err(e)
            }
        }
    }

    /// `c (m, n1) = X . W` from a [`SharedSplit`] (row stride `ldc`). Ok(false) where
    /// cuBLASLt has no algorithm for it (nothing written: the caller's product does it).
    pub(crate) fn shared_rows(
        &self,
        sh: &SharedSplit,
        c: u64,
        ldc: usize,
        stream: u64,
    ) -> PResult<bool> {
        let Some(lt) = &self.lt else {
            return Ok(false);
        };
        let scale = sh.small() + SPLIT_SCALE_AT;
        self.split_matmul(
            lt, sh.m, sh.n1, sh.kp, sh.xo, sh.wo, c, ldc, false, scale, stream,
        )
    }

    /// `c (k, n2) = X^T . U` from a [`SharedSplit`] (row stride `ldc`): one f16 product over
    /// 3 m, the thirds of X's and U's split rows taken as rows of their own. Ok(false) where
    /// cuBLASLt has no algorithm for it (nothing written: the caller's product does it).
    pub(crate) fn shared_cols(
        &self,
        sh: &SharedSplit,
        c: u64,
        ldc: usize,
        stream: u64,
    ) -> PResult<bool> {
        let Some(lt) = &self.lt else {
            return Ok(false);
        };
        // X's split rows (m, 3 kp), [hi | hi | lo] each, are the matrix X' (3 m, kp) whose row
        // 3 i + t is third t of row i; U's (m, 3 kpu), [hi | lo | hi], likewise U' (3 m, kpu).
        // So X^T U = X'^T U' summed over 3 m: hi.hi + hi.lo + lo.hi per token, one product.
        // Column-major view: C^T (n2 x k, ld ldc) = U'^T (n2 x 3m: stored kpu x 3m, ld kpu,
        // its first n2 rows) . X' (3m x k: stored kp x 3m, ld kp, read transposed).
        let m3 = 3 * sh.m as u64;
        let key = PlanKey {
            compute: CUBLAS_COMPUTE_32F,
            ab_ty: CUDA_R_16F,
            c_ty: CUDA_R_32F,
            a: LtMat {
                rows: sh.n2 as u64,
                cols: m3,
                ld: sh.kpu as i64,
                trans: false,
            },
            b: LtMat {
                rows: sh.k as u64,
                cols: m3,
                ld: sh.kp as i64,
                trans: true,
            },
            c: LtMat {
                rows: sh.n2 as u64,
                cols: sh.k as u64,
                ld: ldc as i64,
                trans: false,
            },
            align: [align_of(sh.uo), align_of(sh.xo), align_of(c)],
            dev_scale: true,
        };
        // The second alpha / beta pair.
        let scale = sh.small() + SPLIT_SCALE_AT + 8;
        match self.matmul(lt, key, sh.uo, sh.xo, c, false, Some(scale), stream) {
            Ok(()) => Ok(true),
            Err(e) if e.msg.starts_with("no cuBLASLt algorithm") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives a [`SharedSplit`]'s scratch back, ordered after everything on `stream`
    /// (every stream that used it must be joined to `stream` first).
    pub(crate) fn shared_free(&self, sh: SharedSplit, stream: u64) -> PResult<()> {
        super::gpu()?.free_async(sh.scratch, stream)
    }

    /// `d = op(a) op(b)` (cuBLASLt's column-major operands as `key` lays them out), into
    /// `d` with beta 0, or with `add` `d += op(a) op(b)` (beta 1, `d` as C and D); the
    /// plan of a key is made once. `scale` (with `key.dev_scale`): alpha and beta as two
    /// f32 in device memory, `add` unused.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        lt: &Lt,
        key: PlanKey,
        a: u64,
        b: u64,
        d: u64,
        add: bool,
        scale: Option<u64>,
        stream: u64,
    ) -> PResult<()> {
        let ws = self.workspace(stream)?;
        let plan = {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            match plans.get(&key) {
                Some(p) => *p,
                None => {
                    let p = match self.plan(lt, &key) {
                        Ok((mut p, cands)) => {
                            // Where the stream is being recorded nothing may wait: the
                            // heuristic's first choice is kept for this key, untimed (a
                            // plan made and dropped would leak its descriptors, and a
                            // refusal at run time would not fall back as a kept plan's does).
                            // Tuning is optional: where it fails (its scratch or events
                            // refused) the first choice stays, and the product itself
                            // reports whatever is wrong with the device.
                            // (Not the split products: their beta is on the device.)
                            if cands.len() > 1
                                && !key.dev_scale
                                && tune_wanted()
                                && !super::stream_capturing(stream)?
                            {
                                if let Ok(algo) = self.tune(lt, &p, &key, &cands, a, b, ws, stream)
                                {
                                    p.algo = algo;
                                }
                            }
                            Some(p)
                        }
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
                "no cuBLASLt algorithm for {key:?}"
            )));
        };
        let st = lt_matmul(lt, &plan, &plan.algo, a, b, d, add, scale, ws, stream);
        if st == STATUS_NOT_SUPPORTED {
            // Refused at run time (nothing was launched): the caller's kernel does it, and
            // this key does not try cuBLASLt again.
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            plans.insert(key, None);
            return Err(PErr::unsupported(format!(
                "no cuBLASLt algorithm for {key:?} (cublasLtMatmul: status {st})"
            )));
        }
        if st != 0 {
            return Err(PErr::new(
                mamba_core::abi::status::CUDA_ERROR,
                format!("cublasLtMatmul: status {st}"),
            ));
        }
        Ok(())
    }

    /// The heuristic's candidates for `key` timed on the caller's operands with CUDA
    /// events on `stream` (it waits for the stream), into scratch of the output's size (the
    /// caller's output is not touched): each candidate once to warm up, then `TUNE_RUNS`
    /// times, in `TUNE_PASSES` passes over the list, a candidate's time the least of its
    /// passes. The heuristic's first choice is kept unless another is faster by more than
    /// `TUNE_MARGIN` of its time: a few-microsecond product timed back to back measures
    /// launches as much as the kernel, and a pick by noise made the decode step slower
    /// (forty-seventh session). A candidate that fails is passed over. Once per plan key
    /// (the plans are kept).
    #[allow(clippy::too_many_arguments)]
    fn tune(
        &self,
        lt: &Lt,
        plan: &Plan,
        key: &PlanKey,
        cands: &[HeuristicResult],
        a: u64,
        b: u64,
        ws: u64,
        stream: u64,
    ) -> PResult<HeuristicResult> {
        let g = super::gpu()?;
        let es = if key.c_ty == CUDA_R_32F { 4 } else { 2 };
        let bytes = (key.c.ld.max(0) as usize) * (key.c.cols as usize) * es;
        let d = g.alloc_async(bytes.max(256), stream)?;
        let (e0, e1) = (super::event_create()?, super::event_create()?);
        // Per candidate: the least time of its passes (None: it failed).
        let mut times: Vec<Option<f32>> = vec![None; cands.len()];
        let mut timed = || -> PResult<()> {
            for pass in 0..TUNE_PASSES {
                for (c, t) in cands.iter().zip(times.iter_mut()) {
                    if pass > 0 && t.is_none() {
                        continue;
                    }
                    if lt_matmul(lt, plan, c, a, b, d, false, None, ws, stream) != 0 {
                        *t = None;
                        continue;
                    }
                    super::event_record(e0, stream)?;
                    let mut ok = true;
                    for _ in 0..TUNE_RUNS {
                        ok &= lt_matmul(lt, plan, c, a, b, d, false, None, ws, stream) == 0;
                    }
                    super::event_record(e1, stream)?;
                    let ms = super::event_elapsed_ms(e0, e1)?;
                    *t = if ok {
                        Some(t.map_or(ms, |t: f32| t.min(ms)))
                    } else {
                        None
                    };
                }
            }
            Ok(())
        };
        let r = timed();
        let f = g.free_async(d, stream);
        let _ = super::event_destroy(e0);
        let _ = super::event_destroy(e1);
        r?;
        f?;
        Ok(cands[pick(&times)])
    }

    fn plan(&self, lt: &Lt, key: &PlanKey) -> PResult<(Plan, Vec<HeuristicResult>)> {
        let fail = |what: &str, st: Status| {
            PErr::new(
                mamba_core::abi::status::CUDA_ERROR,
                format!("{what}: status {st}"),
            )
        };
        let mut desc: Handle = std::ptr::null_mut();
        // SAFETY: creates a descriptor into a local.
        let st = unsafe { (lt.matmul_desc_create)(&mut desc, key.compute, CUDA_R_32F) };
        if st != 0 {
            return Err(fail("cublasLtMatmulDescCreate", st));
        }
        if key.dev_scale {
            // SAFETY: sets POINTER_MODE from a live i32.
            let st = unsafe {
                (lt.matmul_desc_set)(
                    desc,
                    DESC_POINTER_MODE,
                    &POINTER_MODE_DEVICE as *const i32 as *const c_void,
                    4,
                )
            };
            if st != 0 {
                return Err(fail("cublasLtMatmulDescSetAttribute", st));
            }
        }
        for (attr, t) in [(DESC_TRANSA, key.a.trans), (DESC_TRANSB, key.b.trans)] {
            let op = if t { OP_T } else { 0i32 };
            // SAFETY: sets TRANSA / TRANSB from a live i32.
            let st =
                unsafe { (lt.matmul_desc_set)(desc, attr, &op as *const i32 as *const c_void, 4) };
            if st != 0 {
                return Err(fail("cublasLtMatmulDescSetAttribute", st));
            }
        }
        let mut layouts = [std::ptr::null_mut(); 3];
        for (l, (m, ty)) in
            layouts
                .iter_mut()
                .zip([(key.a, key.ab_ty), (key.b, key.ab_ty), (key.c, key.c_ty)])
        {
            // SAFETY: creates a layout into a local from plain numbers.
            let st = unsafe { (lt.layout_create)(l, ty, m.rows, m.cols, m.ld) };
            if st != 0 {
                return Err(fail("cublasLtMatrixLayoutCreate", st));
            }
        }
        let [la, lb, lc] = layouts;
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
        let aligns = [key.align[0], key.align[1], key.align[2], key.align[2]];
        for (attr, al) in PREF_MIN_ALIGNMENT.into_iter().zip(aligns) {
            // SAFETY: sets a minimum alignment from a live u32.
            let st = unsafe { (lt.pref_set)(pref, attr, &al as *const u32 as *const c_void, 4) };
            if st != 0 {
                return Err(fail("cublasLtMatmulPreferenceSetAttribute", st));
            }
        }
        // SAFETY: HeuristicResult is plain data; zero is a valid bit pattern.
        let mut res: [HeuristicResult; TUNE_CANDIDATES] = unsafe { std::mem::zeroed() };
        let mut count = 0i32;
        // SAFETY: asks for up to TUNE_CANDIDATES algorithms into a local array of as many.
        let st = unsafe {
            (lt.heuristic)(
                lt.handle,
                desc,
                la,
                lb,
                lc,
                lc,
                pref,
                TUNE_CANDIDATES as i32,
                res.as_mut_ptr(),
                &mut count,
            )
        };
        let cands: Vec<HeuristicResult> = res[..count.clamp(0, TUNE_CANDIDATES as i32) as usize]
            .iter()
            .filter(|r| r.state == 0)
            .copied()
            .collect();
        if st != 0 || cands.is_empty() {
            return Err(PErr::new(
                mamba_core::abi::status::UNSUPPORTED,
                format!("no cuBLASLt algorithm for {key:?} (status {st})"),
            ));
        }
        Ok((
            Plan {
                desc,
                a: la,
                b: lb,
                c: lc,
                algo: cands[0],
            },
            cands,
        ))
    }
}

/// The heuristic's candidates per plan key, timed by [`Gemm::tune`].
const TUNE_CANDIDATES: usize = 8;
/// Timed runs per candidate and pass.
const TUNE_RUNS: usize = 16;
/// Passes over the candidates.
const TUNE_PASSES: usize = 2;
/// How much faster than the heuristic's first choice another must be to replace it.
const TUNE_MARGIN: f32 = 0.15;

/// The candidate [`Gemm::tune`] keeps, from the least times of the candidates (`None`:
/// failed): the fastest where it beats the first (the heuristic's choice) by more than
/// `TUNE_MARGIN`, or where the first failed; else the first.
fn pick(times: &[Option<f32>]) -> usize {
    let best = times
        .iter()
        .enumerate()
        .filter_map(|(k, t)| t.map(|t| (k, t)))
        .min_by(|x, y| x.1.total_cmp(&y.1));
    match (times.first().copied().flatten(), best) {
        (_, None) => 0,
        (None, Some((k, _))) => k,
        (Some(first), Some((k, t))) if t < first * (1.0 - TUNE_MARGIN) => k,
        _ => 0,
    }
}

/// Whether a new plan times the heuristic's candidates (`MAMBA_CUDA_LT_TUNE=0`: the first
/// candidate, as before the forty-fifth session).
fn tune_wanted() -> bool {
    super::ops::env_str("MAMBA_CUDA_LT_TUNE").as_deref() != Some("0")
}

/// `cublasLtMatmul` of `plan` with the algorithm `algo`: `d = op(a) op(b)`, or with `add`
/// `d += op(a) op(b)`; returns cuBLASLt's status. `scale`: alpha and beta in device memory
/// (a plan made with `dev_scale`), else 1 and `add` as 1 / 0 from here.
#[allow(clippy::too_many_arguments)]
fn lt_matmul(
    lt: &Lt,
    plan: &Plan,
    algo: &HeuristicResult,
    a: u64,
    b: u64,
    d: u64,
    add: bool,
    scale: Option<u64>,
    ws: u64,
    stream: u64,
) -> Status {
    let (alpha, beta) = (1f32, if add { 1f32 } else { 0f32 });
    let (pa, pb) = match scale {
        Some(s) => (s as *const c_void, (s + 4) as *const c_void),
        None => (
            &alpha as *const f32 as *const c_void,
            &beta as *const f32 as *const c_void,
        ),
    };
    // SAFETY: the descriptors describe the caller's device buffers (the layouts of the
    // plan's key); the workspace is ours.
    unsafe {
        (lt.matmul)(
            lt.handle,
            plan.desc,
            pa,
            a as *const c_void,
            plan.a,
            b as *const c_void,
            plan.b,
            pb,
            d as *const c_void,
            plan.c,
            d as *mut c_void,
            plan.c,
            algo.algo.as_ptr() as *const c_void,
            ws as *mut c_void,
            WORKSPACE,
            stream as *mut c_void,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn tuning_keeps_the_first_choice_unless_another_is_clearly_faster() {
        // Within the margin (10% faster): the heuristic's choice stays.
        assert_eq!(pick(&[Some(1.0), Some(0.9), Some(0.95)]), 0);
        // Past it: the fastest.
        assert_eq!(pick(&[Some(1.0), Some(0.9), Some(0.3)]), 2);
        assert_eq!(pick(&[Some(3.0), Some(1.0)]), 1);
        // The first failed: the fastest that ran; none ran: the first.
        assert_eq!(pick(&[None, Some(2.0), Some(1.5)]), 2);
        assert_eq!(pick(&[None, None]), 0);
        assert_eq!(pick(&[Some(1.0)]), 0);
        assert_eq!(pick(&[Some(1.0), None]), 0);
    }
}
