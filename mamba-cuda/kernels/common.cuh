// Shared helpers of the Mamba kernels: element loads/stores in f32 arithmetic, the
// SPEC's scalar functions, and the parameter blocks (mirrored field by field by the
// `#[repr(C)]` structs of src/gpu/params.rs: keep the two in the same order).
#pragma once
// MAMBA_EMU: a host build of the f32 kernels of bwd.cu under a thread emulator
// (mamba-cuda/emu/), for checking them where no GPU is.
#ifndef MAMBA_EMU
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif
#include <stdint.h>

#ifndef MAMBA_EMU
typedef __nv_bfloat16 bf16_t;
typedef __half f16_t;
#endif

template <typename T> __device__ __forceinline__ float ldf(const T* p);
template <> __device__ __forceinline__ float ldf<float>(const float* p) { return *p; }
#ifndef MAMBA_EMU
template <> __device__ __forceinline__ float ldf<bf16_t>(const bf16_t* p) { return __bfloat162float(*p); }
template <> __device__ __forceinline__ float ldf<f16_t>(const f16_t* p) { return __half2float(*p); }
#endif

template <typename T> __device__ __forceinline__ T cvt(float v);
template <> __device__ __forceinline__ float cvt<float>(float v) { return v; }
#ifndef MAMBA_EMU
template <> __device__ __forceinline__ bf16_t cvt<bf16_t>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ f16_t cvt<f16_t>(float v) { return __float2half_rn(v); }
#endif

// V consecutive elements, loaded or stored as one access (the address aligned to V elements).
template <typename T, int V>
struct alignas(V * sizeof(T)) VecN {
    T v[V];
};

// softplus(v) = ln(1 + e^v), exactly v above 20 (SPEC shared definitions).
__device__ __forceinline__ float softplus_f(float v) { return v > 20.f ? v : log1pf(__expf(v)); }
// silu with the hardware exponential (relative error ~1e-7, far inside the tolerances).
__device__ __forceinline__ float silu_f(float v) { return __fdividef(v, 1.f + __expf(-v)); }

// The step of ops 1, 2 and 4: raw + bias, softplus if asked, clamp if asked.
__device__ __forceinline__ float step_size(float raw, int softplus, int has_limit, float lo, float hi) {
    float s = softplus ? softplus_f(raw) : raw;
    if (has_limit) {
        s = s < lo ? lo : s;
        s = s > hi ? hi : s;
    }
    return s;
}

#define LOG2E_F 1.4426950408889634f

// Shared by scan1_lm.cu and scan1_seed.cu.
// 2^x on the exponential unit (ex2.approx.ftz: relative error ~2^-22; exp2f on the host).
__device__ __forceinline__ float ex2_fast(float x) {
#ifdef MAMBA_EMU
    return exp2f(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// 2^x on the FMA pipe (as FlashAttention-3 moves part of its exponentials off the MUFU):
// x = j + f with j = rint(x) (the 1.5 * 2^23 trick), |f| <= 1/2, 2^f by its Taylor
// polynomial of degree 7 (relative error < 1e-8 before rounding), j added to the
// exponent bits. x >= -125 (clamped: 2^-125 is 0 to the state update).
__device__ __forceinline__ float ex2_poly(float x) {
    x = fmaxf(x, -125.f);
    const float t = x + 12582912.f;  // 1.5 * 2^23: rint(x) in the low mantissa bits
    const float j = t - 12582912.f;
    const float f = x - j;
    float q = 1.5252733804059838e-05f;
    q = fmaf(q, f, 0.00015403530393381606f);
    q = fmaf(q, f, 0.0013333558146428441f);
    q = fmaf(q, f, 0.009618129107628477f);
    q = fmaf(q, f, 0.055504108664821576f);
    q = fmaf(q, f, 0.2402265069591007f);
    q = fmaf(q, f, 0.6931471805599453f);
    q = fmaf(q, f, 1.f);
#ifdef MAMBA_EMU
    unsigned qi, ti;
    memcpy(&qi, &q, 4);
    memcpy(&ti, &t, 4);
    qi += ti << 23;
    memcpy(&q, &qi, 4);
    return q;
#else
    return __int_as_float(__float_as_int(q) + (__float_as_int(t) << 23));
#endif
}

// softplus(v) = max(v, 0) + log1p(e^-|v|) (v + 2e-9 at most above 20: v in f32), log1p
// of x in (0, 1] by the atanh series in s = x / (2 + x) <= 1/3 to s^13 (relative error
// < 2e-8): 2 MUFU and 10 FMA-pipe instructions instead of the library's log1pf.
__device__ __forceinline__ float softplus_series(float v) {
    const float x = ex2_fast(-fabsf(v) * LOG2E_F);
    const float s = __fdividef(x, 2.f + x);
    const float w = s * s;
    float q = 1.f / 13.f;
    q = fmaf(q, w, 1.f / 11.f);
    q = fmaf(q, w, 1.f / 9.f);
    q = fmaf(q, w, 1.f / 7.f);
    q = fmaf(q, w, 1.f / 5.f);
    q = fmaf(q, w, 1.f / 3.f);
    q = fmaf(q, w, 1.f);
    return fmaxf(v, 0.f) + 2.f * s * q;
}

// ---- Chained scans in one launch (the fused time split) ----
//
// Blocks take a ticket (atomicAdd on flags[0]) and derive their time chunk from it, so a
// block only ever waits on blocks that took an earlier ticket, which are running or done:
// no deadlock whatever the scheduling order. Chunk k publishes its local aggregate
// (flag 1), then, once it knows its incoming state, its inclusive state (flag 2). Chunk
// k looks back over k-1, k-2, ... until a flag 2, folding the aggregates on the way
// (decoupled look-back). Chunk 0 publishes only an inclusive state.
#ifndef MAMBA_EMU
__device__ __forceinline__ unsigned ld_acquire_u32(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_release_u32(unsigned* p, unsigned v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
#endif

// One warp (all 32 lanes): waits until chunk `kc` of block row `r` can start its fold,
// and returns the chunk j0 < kc whose outgoing state it starts from (it then folds the
// local states of j0+1 .. kc-1). Lane l watches chunk kc-1-l, so the 32 nearest flags are
// read at once: done when some chunk has its outgoing state out and every chunk between
// it and kc has its local state out. Chunk kc-1 ends with its outgoing state out, so the
// wait ends. Flag of (chunk j, row r) is flags[1 + j * nrows + r]: fb once the chunk's
// local state is out, fb + 1 once its outgoing state is; any other value is stale.
__device__ __forceinline__ int lookback_warp(const unsigned* flags, int kc, int nrows, int r, unsigned fb, int lane) {
    const int j = kc - 1 - lane;
    for (;;) {
        const unsigned f = j >= 0 ? ld_acquire_u32(flags + 1 + (size_t)j * nrows + r) : 0u;
        const unsigned incl = __ballot_sync(0xffffffffu, j >= 0 && f == fb + 1u);
        const unsigned ready = __ballot_sync(0xffffffffu, j >= 0 && (f == fb || f == fb + 1u));
        if (incl) {
            const int i = __ffs(incl) - 1;  // the nearest chunk with its outgoing state
            const unsigned below = (1u << i) - 1u;
            if ((ready & below) == below) return kc - 1 - i;
        }
    }
}

// ---- Parameter blocks (pointers first, then 64-bit strides, then 32-bit scalars) ----

struct Scan1Params {
    const void* u;
    const void* delta;
    const float* A;
    const void* B;
    const void* C;
    const float* D;
    const void* z;
    const float* delta_bias;
    const float* h0;
    void* out;
    float* hlast;
    float* chunk_states;  // (b, d, K, N)
    float* chunk_dtsum;   // (b, d, K)
    float* chunk_incl;    // (b, d, K, N): fused launch, each chunk's outgoing state
    unsigned* flags;      // fused launch: [0] block ticket, then one flag per (chunk, block row)
    int batch, dim, seqlen, dstate;
    int b_groups, c_groups;  // 0: time-invariant (d, N)
    int softplus;
    int seg;             // channels of a segment (B and C groups constant inside)
    int cb;              // channels per block
    int G;               // threads per channel
    int blocks_per_seg;
    int async_copy;  // rows are 4-byte aligned: stage tiles with cp.async
    int nchunks, chunk_len;  // time split
    // Fused launch: this call's flag values are flag_base (a chunk's local state is out)
    // and flag_base + 1 (its outgoing state is out); older values are stale (kept scratch).
    unsigned flag_base;
    int reserved;
};

struct SsdParams {
    const void* x;
    const void* dt;
    const float* A;
    const void* B;
    const void* C;
    const float* D;
    const void* z;
    const float* dt_bias;
    const float* init;
    const int* seq_idx;
    void* out;
    float* final_states;
    float* chunk_states;  // (b, h, K, p, N)
    float* chunk_decay;   // (b, h, K)
    long long x_sb, x_st;
    long long dt_sb, dt_st;
    long long B_sb, B_st;
    long long C_sb, C_st;
    long long z_sb, z_st;
    long long out_sb, out_st;
    int batch, seqlen, nheads, headdim, ngroups, dstate;
    int d_per_channel, softplus, has_limit;
    float lo, hi;
    int nchunks, chunk_len;
    int mode;  // 0: full, 1: chunk-local states only
    int qb;    // rows of p per block
    int G;     // threads along N
    int async_copy;  // rows are 4-byte aligned: stage tiles with cp.async
    int rev_b;       // the LM outputs kernels: batch rows in reverse block order (ssd_rev_i)
    // The caller's seq_idx (b, L) where seq_idx carries the LM kernels' headers: their
    // header kernels reset the state at each packed sequence's first step (null: none).
    const int* seq_ids;
    // A call that is one time segment of its rows (seed.rs `ssdz_segmented_launch`): seq_idx
    // rows seq_st apart (0: seqlen), and with seq_back (a segment after the first, its
    // seq_idx pointer inside the row) step 0 compared with the step before it (`ssd_starts_seg`).
    int seq_st, seq_back;
};
// Whether step tt of batch row i starts a packed sequence: seq (b, L rows) set, tt > 0, and
// its seq_idx differs from the step before's.
__device__ __forceinline__ bool ssd_starts_in(const int* seq, int L, int i, int tt) {
    if (!seq || tt <= 0) return false;
    const int* s = seq + (size_t)i * L + tt;
    return s[0] != s[-1];
}
// The same for p.seq_idx of a call that may be a time segment of its rows (`ssdz`): rows
// p.seq_st apart (0: seqlen); with p.seq_back step 0 starts a sequence where it differs from
// the step before it (the previous segment's last), which drops the state passed in.
__device__ __forceinline__ bool ssd_starts_seg(const SsdParams& p, int i, int tt) {
    if (!p.seq_idx || tt < 0 || (tt == 0 && !p.seq_back)) return false;
    const int* s = p.seq_idx + (size_t)i * (p.seq_st ? p.seq_st : p.seqlen) + tt;
    return s[0] != s[-1];
}
// The same from p.seq_ids (the LM header kernels: ssd_lm32.cu, ssd_chunk.cu).
__device__ __forceinline__ bool ssd_starts(const SsdParams& p, int i, int tt) {
    return ssd_starts_in(p.seq_ids, p.seqlen, i, tt);
}
// The batch row of an LM outputs block: with p.rev_b the last rows first, so the first
// blocks read the S_in and x the states kernel's last wave left in L2.
__device__ __forceinline__ int ssd_rev_i(const SsdParams& p) {
    return p.rev_b ? (int)gridDim.z - 1 - (int)blockIdx.z : (int)blockIdx.z;
}

struct ConvParams {
    const void* x;
    const float* w;
    const float* bias;
    const float* init;
    void* out;
    float* final_states;
    long long x_sb, x_sc, x_st;
    long long o_sb, o_sc, o_st;
    int batch, channels, seqlen, width;
    int silu, channel_last;
};

struct StateUpdateParams {
    float* state;
    const void* x;
    const void* dt;
    const float* A;
    const void* B;
    const void* C;
    const float* D;
    const void* z;
    const float* dt_bias;
    void* out;
    int batch, nheads, headdim, ngroups, dstate;
    int softplus, has_limit;
    float lo, hi;
    int pad0;
};

struct ConvUpdateParams {
    float* state;
    const void* x;
    const float* w;
    const float* bias;
    void* out;
    int batch, channels, steps, width, state_len, silu;
};

// A Mamba2Block's decode step (one step, the state updated in place), in the block's
// layouts: the conv over the channel-last xBC columns of in_proj's output, and the SSM
// update reading x / B / C from the conv's output and dt from in_proj's output.
struct BlockConvStepParams {
    const void* x;      // (b, x_ld): channels [0, channels) of each row
    float* state;       // (b, channels, width - 1), f32
    const float* w;     // (channels, width)
    const float* bias;  // (channels) or null
    void* out;          // (b, channels), dense
    long long x_ld;
    int batch, channels, width, pad0;
};

struct BlockSsmStepParams {
    const void* xbc;    // (b, xbc_ld): x at [0, h p), B at h p + k N, C at h p + g N + k N
    const void* dt;     // (b, dt_ld): dt of head j at column j
    float* state;       // (b, h, p, N), f32
    const float* A;     // (h)
    const float* D;     // (h) or null
    const float* dt_bias;  // (h)
    void* y;            // (b, h p), dense
    long long xbc_ld, dt_ld;
    int batch, nheads, headdim, ngroups, dstate;
    int softplus, has_limit;
    float lo, hi;
    int pad0;
};

struct GemmParams {
    const void* a;  // (M, K), row stride lda
    const void* w;  // (N, K), dense
    void* c;        // (M, N), row stride ldc
    long long lda, ldc;
    int M, N, K, add;  // add != 0: C += A . W^T
};

// f32 products on the f16 tensor cores (gemm.rs `Gemm::run_split`): one operand of the
// product as a logical (rows, k) f32 matrix, element (r, q) at x[r sr + q sk].
struct SplitOp {
    const float* x;
    long long sr, sk;
    void* out;           // f16 [rows][3 kp]: role 0 [hi | hi | lo], role 1 [hi | lo | hi]
    int rows, k, kp, role;
};
struct SplitParams {
    SplitOp op[3];       // nops of them: op[0] . op[1] (and op[0] . op[2], gemm.rs `SharedSplit`)
    unsigned* amax;      // [nops] bits of each operand's largest |x| (zeroed before `split_max`)
    float* scale;        // [2] the product's alpha (the scales' inverse) and beta; with three
                         // operands [4]: then op[0] . op[2]'s alpha and beta
    int add, nops;
    int start[4];        // `split_f32`'s first block of each operand (its tiles row-major), then the total
};

struct NormParams {
    const void* y;  // (M, d_inner), dense
    const void* z;  // (M, d_inner), row stride z_ld
    const float* weight;
    void* out;      // (M, d_inner), dense
    long long z_ld;
    int M, d_inner, group, norm_before_gate;
    float eps;
    int pad0;
    // The fused decode step's deferred conv-state shift (null: none): channels
    // [shift_lo, shift_hi) of shift_state (M, shift_cd, shift_width - 1) shift left by one
    // and take their new input from shift_x (M, row stride shift_x_ld, channel ch at column ch).
    float* shift_state;
    const void* shift_x;
    long long shift_x_ld;
    int shift_lo, shift_hi, shift_cd, shift_width;
};

// A Mamba2Block's decode step, conv and SSM in one launch (block_step_fused): the conv of
// the B / C channels is recomputed by every block of a group and their conv state is shifted
// afterwards by the gated norm (NormParams shift_*); the x channels' conv state is shifted
// here by the one block that owns them.
struct BlockStepParams {
    const void* xin;    // (b, xin_ld): the conv's input, channel ch at column ch
    const void* dt;     // (b, dt_ld): dt of head j at column j
    float* conv_state;  // (b, conv_dim, width - 1), f32
    const float* conv_w;  // (conv_dim, width)
    const float* conv_b;  // (conv_dim) or null
    float* state;       // (b, h, p, N), f32
    const float* A;     // (h)
    const float* D;     // (h) or null
    const float* dt_bias;  // (h)
    void* y;            // (b, h p), dense
    long long xin_ld, dt_ld;
    int batch, nheads, headdim, ngroups, dstate, width;
    int softplus, has_limit;
    float lo, hi;
};

// y = y + alpha x, elementwise, f32 arithmetic (the plugin's `axpy` entry).
struct AxpyParams {
    const void* x;
    void* y;
    long long n;
    float alpha;
    int pad0;
};

struct NegExpParams {
    const float* src;
    float* dst;
    int n, pad0;
};

struct CastParams {
    const float* src;
    void* dst;
    long long n;
};

// ---- Backward passes (kernels/bwd.cu) ----

// SPEC 1 and 2, backward. One "row" is a Mamba-1 channel (batch i, channel c) or one
// row of an SSD head's state (batch i, head j, p-row q, r = j*p + q); both are a scan
// over N states with a per-row input u(t) and a per-row step.
struct ScanBwdParams {
    const void* u;        // Mamba-1 u (b, d, L); SSD x (b, L, h, p)
    const void* delta;    // Mamba-1 delta (b, d, L); SSD dt (b, L, h)
    const float* A;       // (d, N) or (h)
    const void* B;
    const void* C;
    const float* D;       // (d), (h) or (h, p)
    const void* z;
    const float* bias;    // delta_bias (d) or dt_bias (h)
    const float* h0;      // (b, rows, N)
    const int* seq_idx;   // (b, L), SSD only
    const void* dout;
    const float* dlast;   // (b, rows, N)
    void* du;             // like u, written
    void* ddelta;         // Mamba-1: like delta, written
    void* dz;             // like u, written
    float* ddt_acc;       // SSD: (b, L, h), accumulated
    float* dA;            // accumulated
    float* dB;            // f32 in B's layout, accumulated
    float* dC;
    float* dD;
    float* dbias;
    float* dh0;           // written
    float* ckpt;          // (b, rows, nseg, 32*S): states at segment starts
    int batch, rows, seqlen, dstate;
    int nheads, headdim;     // SSD
    int b_groups, c_groups;  // Mamba-1: 0 = (d, N); SSD: both ngroups
    int softplus, has_limit;
    float lo, hi;
    int d_per_channel;
    int seg;             // rows sharing B and C
    int W;               // rows (warps) per block
    int blocks_per_seg;
    int R;               // tiles per checkpoint segment
    int nseg;            // checkpoint segments
    int pad0, pad1;
};

// SPEC 3, backward. x, dout and dx share one layout (dense; strides given).
struct ConvBwdParams {
    const void* x;
    const float* w;
    const float* bias;
    const float* init;
    const void* dout;
    const float* dfinal;
    float* dpre;   // (b, c, L) scratch: dout * act'(pre)
    void* dx;
    float* dw;     // accumulated
    float* dbias;  // accumulated
    float* dinit;  // written
    long long x_sb, x_sc, x_st;
    int batch, channels, seqlen, width, silu, channel_last;
    // dout's and dx's strides (batch row, channel, step), in elements.
    long long d_sb, d_sc, d_st;
    long long dx_sb, dx_sc, dx_st;
};

struct BwdCastParams {
    const float* src;
    void* dst;
    long long n;
};

// The SSD gate's backward (`bwd_ssd_gate_*`): from dout, z and the ungated output y (in `y`),
// dz = dout y silu'(z) (when `dz` is set) and dy = dout silu(z), written over y.
struct GateBwdParams {
    const void* dout;
    const void* z;
    void* y;
    void* dz;
    long long n;
};
