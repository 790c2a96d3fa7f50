// SPEC 2 at the language-model shape in f32 storage: `ssdl32_*` (fifth session, helper C).
//
// Seventh session (the default since): `ssdl32_cb` (C B^T on the f64 tensor cores, 1b),
// `ssdl32_hdr8` (1''), `ssdl32_sseq_s1b3` (states with the combine folded in, 2') and
// `ssdl32_out_n*_pf` (4 with the C B^T prefetch); the forms below stay behind env vars
// (src/gpu/ssdl32.rs). Seventeenth / eighteenth sessions: C S^T of the outputs (`_pfh`)
// and the states pass (`ssdl32_bsplit_n*` + `ssdl32_sseqh_n*`, the default) as split-f16
// products on the f16 tensor cores; nineteenth session: M X left of the diagonal too
// (`ssdl32_csplit_m` + `ssdl32_out_n128_pfm`, the default at N 128).
// The four-kernel chunked form of `ssdl` (kernels/ssd_chunk.cu): C B^T per (batch, group,
// chunk) (`ssdl_cb_f32_q128` of ssd_chunk.cu, unchanged), the chunk states
// (`ssdl32_states_n*`), the combine (`ssdl32_combine`, 16-byte accesses) and the outputs
// (`ssdl32_out_n*`), with Q = 128 and PB = 64 fixed and N = 64 or 128, on mma.sync
// m16n8k8 tf32 in 3xTF32 (a b ~ a_hi b_hi + a_hi b_lo + a_lo b_hi, f32 accumulation).
//
// What differs from the generic f32 `ssdl` kernels (scalar fragment loads, both operands
// split with two cvt.rna per element at every mma):
// - the split is hi = v & 0xffffe000 (the tensor cores read tf32 operands truncated, so
//   hi is exact and lo = v - hi is exact in f32; lo is passed as is and truncated by the
//   hardware: an error of 2^-11 of lo, ~2^-21 of v), done once per loaded fragment value
//   and reused by every tile it feeds;
// - fragments load with 64/128-bit shared (or global) loads: the contraction index k of a
//   k8 step and the m / n indices of a tile group are permuted so that each lane's
//   fragment values are consecutive in memory (a permutation of k is free when both
//   operands use it; a permutation of m / n only moves the accumulators, which the stores
//   follow), with row strides chosen so that the loads are free of bank conflicts;
// - fixed sizes (Q, PB, N template constants), several heads of a group per states block
//   (B staged once for them).
// The C B^T scratch lies after chunk_decay (as `ssdl_cb_base`): chunk_decay +
// align4(b * h * K), (b, g, K, Q, Q) floats.
#include "common.cuh"
#include "tf32x3.cuh"
#include "mma_f16.cuh"
#include "l32_split.cuh"

#define L32_THREADS 256
#define L32_PB 64

// The kernels of this file. With L32_HELPERS_ONLY (kernels/ssd_wg.cu, which includes this
// file for `ssdlw_out_f32_pfw`) they become uninstantiated templates: not compiled there.
#ifdef L32_HELPERS_ONLY
#define L32_GLOBAL template <int = 0> __global__
#else
#define L32_GLOBAL extern "C" __global__
#endif

__device__ __forceinline__ void l32_cp16(void* smem, const void* gmem, int bytes) {
#ifdef MAMBA_EMU
    emu_cp16(smem, gmem, bytes);  // lands at the wait that covers its group (emu/emu_cuda.h)
#else
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
#endif
}
__device__ __forceinline__ void l32_commit() {
#ifndef MAMBA_EMU
    asm volatile("cp.async.commit_group;\n" ::);
#else
    emu_cp_commit();
#endif
}
// Waits until at most N of this thread's committed copy groups are in flight.
template <int N>
__device__ __forceinline__ void l32_wait_group() {
#ifndef MAMBA_EMU
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#else
    emu_cp_wait(N);
#endif
}
__device__ __forceinline__ void l32_wait_all() { l32_wait_group<0>(); }

// `rows` rows of `cols` floats (a multiple of 4) with 16-byte async copies: src row r at
// src + r * st, dst row r at dst + r * ld; rows >= nvalid are zero-filled (src not read).
__device__ __forceinline__ void l32_stage(float* dst, int ld, const float* src, long long st, int rows, int nvalid,
                                          int cols) {
    const int vc = cols / 4, rstep = (int)blockDim.x / vc, tid = threadIdx.x;
    if (tid >= rstep * vc) return;
    const int col = (tid % vc) * 4;
    for (int r = tid / vc; r < rows; r += rstep)
        l32_cp16(dst + r * ld + col, r < nvalid ? src + r * st + col : src, r < nvalid ? 16 : 0);
}

// As l32_stage with the sizes fixed and L32_THREADS threads (eighteenth session): unrolled,
// one pointer step per copy, and no row test where every row is valid (l32_stage's loop
// took ~20 instructions per copy).
// `dummy` (default src): the address of the zero-size copies of rows at or past nvalid.
template <int ROWS, int COLS, int LD>
__device__ __forceinline__ void l32_stage_t(float* dst, const float* src, long long st, int nvalid,
                                            const float* dummy = nullptr) {
    constexpr int VC = COLS / 4, RSTEP = L32_THREADS / VC, IT = ROWS / RSTEP;
    static_assert(L32_THREADS % VC == 0 && ROWS % RSTEP == 0, "whole rows per pass");
    const int tid = threadIdx.x, col = (tid % VC) * 4, r0 = tid / VC;
    float* d = dst + r0 * LD + col;
    const float* s = src + r0 * st + col;
    const long long step = RSTEP * st;
    if (nvalid >= ROWS) {
#pragma unroll
        for (int it = 0; it < IT; ++it, s += step) l32_cp16(d + it * RSTEP * LD, s, 16);
    } else {
#pragma unroll
        for (int it = 0; it < IT; ++it, s += step) {
            const bool v = r0 + it * RSTEP < nvalid;
            l32_cp16(d + it * RSTEP * LD, v ? s : dummy ? dummy : src, v ? 16 : 0);
        }
    }
}

// The header: s_cs (f64 cumulative sums of dt A inside the chunk), s_ecs = exp(cs),
// s_w = exp(cs_end - cs) dt, s_dt, s_misc[0] = exp(cs_end). Warp 0 writes it.
// l32_hdr_bytes(): l32_split.cuh.
// Packed sequences (fifty-fifth session): with p.seq_ids (the caller's seq_idx; p.seq_idx
// carries the headers' address) a step whose seq_idx differs from the step before's starts a
// sequence, and its term of the sum gets -L32_RESET on top of dt A. Every decay the kernels
// take is exp of a difference of these sums, later step minus earlier (or of one sum: from
// the chunk's start), so a decay across a start is exp(-2^20 + ...) = 0, the state reset the
// SPEC asks for (the incoming state and the earlier sequence's terms drop out), and a decay
// inside one sequence is unchanged: the sums are f64, whose rounding at 2^20 times the
// starts in a chunk (<= 2^27) is below 2^-25.
// `ssd_starts`: common.cuh.
#define L32_RESET 1048576.0

template <class RAW>
__device__ __forceinline__ void l32_scan_f(const SsdParams& p, unsigned char* smem, int i, int j, int c, int lane, RAW raw_at);
__device__ __forceinline__ void l32_scan(const SsdParams& p, unsigned char* smem, int i, int j, int c, int lane) {
    const float* dtp = static_cast<const float*>(p.dt);
    const long long base = i * p.dt_sb + (long long)c * L32_Q * p.dt_st + j;
    l32_scan_f(p, smem, i, j, c, lane, [&](int t) { return dtp[base + (long long)t * p.dt_st]; });
}
template <class RAW>
__device__ __forceinline__ void l32_scan_f(const SsdParams& p, unsigned char* smem, int i, int j, int c, int lane, RAW raw_at) {
    constexpr int Q = L32_Q, E = Q / 32;
    double* s_cs = reinterpret_cast<double*>(smem);
    float* s_ecs = reinterpret_cast<float*>(s_cs + Q);
    float* s_w = s_ecs + Q;
    float* s_dt = s_w + Q;
    float* s_misc = s_dt + Q;
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    const int t0 = c * Q, tn = min(Q, p.seqlen - t0);
    float dtv[E];
    double pre[E];
    double loc = 0.0;
#pragma unroll
    for (int e = 0; e < E; ++e) {
        const int t = lane * E + e;
        const float raw = t < tn ? raw_at(t) : 0.f;
        dtv[e] = t < tn ? step_size(raw + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
        loc += (double)(dtv[e] * Aj) - (t < tn && ssd_starts(p, i, t0 + t) ? L32_RESET : 0.0);
        pre[e] = loc;
    }
    double incl = loc;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const double v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
    }
    double excl = __shfl_up_sync(0xffffffffu, incl, 1);
    if (lane == 0) excl = 0.0;
    const double cs_end = __shfl_sync(0xffffffffu, incl, 31);
#pragma unroll
    for (int e = 0; e < E; ++e) {
        const int t = lane * E + e;
        const double cs = excl + pre[e];
        s_cs[t] = cs;
        s_dt[t] = dtv[e];
        s_ecs[t] = expf((float)cs);
        s_w[t] = expf((float)(cs_end - cs)) * dtv[e];
    }
    // The whole last 16 bytes (the readers stage l32_hdr_used() bytes by 16-byte copies; only
    // s_misc[0] is read, but an unwritten tail would be read from uninitialised memory).
    if (lane == 0) *reinterpret_cast<float4*>(s_misc) = make_float4(expf((float)cs_end), 0.f, 0.f, 0.f);
}

// 1'. The headers of every (batch, head, chunk), one warp each (grid (ceil(b h K / 8)), 256
// threads): the scan above into global scratch (p.seq_idx carries its address; the chunked
// forms do not read seq_idx), l32_hdr_bytes() apart, and exp(cs_end) into chunk_decay. The
// states and outputs kernels stage them with their tiles (no serial scan in those blocks).
__host__ __device__ constexpr int l32_hdr_used() { return L32_Q * 20 + 16; }
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_hdr(const __grid_constant__ SsdParams p) {
    const int H = p.nheads, K = p.nchunks;
    const int w = (int)blockIdx.x * (L32_THREADS / 32) + (int)threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= p.batch * H * K) return;
    const int c = w % K, j = (w / K) % H, i = w / (K * H);
    unsigned char* hdr = reinterpret_cast<unsigned char*>(const_cast<int*>(p.seq_idx)) + (size_t)w * l32_hdr_bytes();
    l32_scan(p, hdr, i, j, c, lane);
    if (lane == 0) p.chunk_decay[w] = reinterpret_cast<const float*>(hdr)[5 * L32_Q];
}

// 1''. The same headers with dt read in rows (`MAMBA_CUDA_SSD32_HDR=1`): grid (ceil(h / 8), K,
// b), the block stages dt of its chunk for 8 consecutive heads (32 bytes of each step's
// row, where `ssdl32_hdr` reads 4 bytes of each row per head), then warp w scans head j0 + w
// with lane l on steps l + 32 e (four chained warp scans), so every store of the header is
// 32 consecutive values (`ssdl32_hdr` stores 4 values per lane, 16-byte apart lanes).
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_hdr8(const __grid_constant__ SsdParams p) {
    __shared__ float s_raw[L32_Q][9];
    __shared__ double s_rst[L32_Q];  // -L32_RESET where a sequence starts, else 0
    constexpr int Q = L32_Q, E = Q / 32;
    const int H = p.nheads, K = p.nchunks, j0 = blockIdx.x * 8, c = blockIdx.y, i = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int t0 = c * Q, tn = min(Q, p.seqlen - t0);
    const float* dtp = static_cast<const float*>(p.dt) + i * p.dt_sb + (long long)t0 * p.dt_st + j0;
    if (tid < Q) s_rst[tid] = tid < tn && ssd_starts(p, i, t0 + tid) ? -L32_RESET : 0.0;
    {
        const int jj = tid & 7;
#pragma unroll
        for (int r = 0; r < Q / 32; ++r) {
            const int t = (tid >> 3) + 32 * r;
            s_raw[t][jj] = t < tn && j0 + jj < H ? dtp[(long long)t * p.dt_st + jj] : 0.f;
        }
    }
    __syncthreads();
    const int j = j0 + warp;
    if (j >= H) return;
    const size_t w = ((size_t)i * H + j) * K + c;
    unsigned char* hdr = reinterpret_cast<unsigned char*>(const_cast<int*>(p.seq_idx)) + w * l32_hdr_bytes();
    double* s_cs = reinterpret_cast<double*>(hdr);
    float* s_ecs = reinterpret_cast<float*>(s_cs + Q);
    float* s_w = s_ecs + Q;
    float* s_dt = s_w + Q;
    float* s_misc = s_dt + Q;
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    float dtv[E];
    double cs[E];
    double carry = 0.0;
#pragma unroll
    for (int e = 0; e < E; ++e) {
        const int t = lane + 32 * e;
        dtv[e] = t < tn ? step_size(s_raw[t][warp] + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
        double incl = (double)(dtv[e] * Aj) + s_rst[t];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double v = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += v;
        }
        cs[e] = carry + incl;
        carry = __shfl_sync(0xffffffffu, cs[e], 31);
    }
    const double cs_end = carry;
#pragma unroll
    for (int e = 0; e < E; ++e) {
        const int t = lane + 32 * e;
        s_cs[t] = cs[e];
        s_dt[t] = dtv[e];
        s_ecs[t] = expf((float)cs[e]);
        s_w[t] = expf((float)(cs_end - cs[e])) * dtv[e];
    }
    if (lane == 0) {
        const float dec = expf((float)cs_end);
        *reinterpret_cast<float4*>(s_misc) = make_float4(dec, 0.f, 0.f, 0.f);  // all 16 bytes (l32_scan_f)
        p.chunk_decay[w] = dec;
    }
}

// Stages the header of (head, chunk) hc (16-byte async copies).
__device__ __forceinline__ void l32_stage_hdr(unsigned char* smem, const SsdParams& p, size_t hc) {
    const unsigned char* src = reinterpret_cast<const unsigned char*>(p.seq_idx) + hc * l32_hdr_bytes();
    for (int v = threadIdx.x; v < l32_hdr_used() / 16; v += blockDim.x) l32_cp16(smem + 16 * v, src + 16 * v, 16);
}

template <int V> struct L32Vec;
template <> struct L32Vec<1> {
    static __device__ __forceinline__ void ld(float (&o)[1], const float* p) { o[0] = *p; }
    static __device__ __forceinline__ void st(float* p, const float (&o)[1]) { *p = o[0]; }
};
template <> struct L32Vec<2> {
    static __device__ __forceinline__ void ld(float (&o)[2], const float* p) {
        const float2 v = *reinterpret_cast<const float2*>(p);
        o[0] = v.x;
        o[1] = v.y;
    }
    static __device__ __forceinline__ void st(float* p, const float (&o)[2]) {
        *reinterpret_cast<float2*>(p) = make_float2(o[0], o[1]);
    }
};
template <> struct L32Vec<4> {
    static __device__ __forceinline__ void ld(float (&o)[4], const float* p) {
        const float4 v = *reinterpret_cast<const float4*>(p);
        o[0] = v.x;
        o[1] = v.y;
        o[2] = v.z;
        o[3] = v.w;
    }
    static __device__ __forceinline__ void st(float* p, const float (&o)[4]) {
        *reinterpret_cast<float4*>(p) = make_float4(o[0], o[1], o[2], o[3]);
    }
};

__device__ __forceinline__ float* l32_cb_base(const SsdParams& p) {
    return p.chunk_decay + (((size_t)p.batch * p.nheads * p.nchunks + 3) & ~(size_t)3);
}

// 1b. C B^T per (batch, group, chunk) on the f64 tensor cores (`MAMBA_CUDA_SSD32_CB=1`):
// mma.sync m8n8k4 f64 with the f32 values of C and B converted exactly, so each entry is
// the sum over N of exact products, accumulated in f64 and rounded once to f32, as the
// CUDA-core f64 `ssdl_cb_f32_q128` does (the accuracy of the sixth session's fix). The lower
// 16 x 16 tiles only (36 of 64), warp w takes tiles w, w + 8, ...; each tile is four m8n8
// tiles: lane (g, c4) holds rows g, g + 8 and columns 2 c4, 2 c4 + 1 of each 16 x 8 half.
__device__ __forceinline__ void l32_dmma(double (&d)[2], double a, double b) {
#ifdef MAMBA_EMU
    emu_dmma(d, a, b);
#else
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
                 : "+d"(d[0]), "+d"(d[1])
                 : "d"(a), "d"(b));
#endif
}
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_cb(const __grid_constant__ SsdParams p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int Q = L32_Q;
    const int N = p.dstate, L = p.seqlen, ld = N + 4;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int c = blockIdx.x, k = blockIdx.y, i = blockIdx.z, t0 = c * Q;
    float* sc = reinterpret_cast<float*>(smem_raw);
    float* sb = sc + Q * ld;
    const float* Bp = static_cast<const float*>(p.B);
    const float* Cp = static_cast<const float*>(p.C);
    l32_stage(sb, ld, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N, p.B_st, Q, L - t0, N);
    l32_stage(sc, ld, Cp + i * p.C_sb + (long long)t0 * p.C_st + (long long)k * N, p.C_st, Q, L - t0, N);
    l32_commit();
    l32_wait_all();
    __syncthreads();
    float* cb = l32_cb_base(p) + (((size_t)i * p.ngroups + k) * p.nchunks + c) * (size_t)Q * Q;
    constexpr int QT = Q / 16, NTL = QT * (QT + 1) / 2;
    for (int it = warp; it < NTL; it += L32_THREADS / 32) {
        int ti = 0;
        while ((ti + 1) * (ti + 2) / 2 <= it) ++ti;
        const int sj = it - ti * (ti + 1) / 2;
        double d[2][2][2] = {};
        const float* a0p = sc + (ti * 16 + g) * ld + c4;
        const float* b0p = sb + (sj * 16 + g) * ld + c4;
#pragma unroll 4
        for (int kk = 0; kk < N; kk += 4) {
            const double a0 = a0p[kk], a1 = a0p[8 * ld + kk];
            const double b0 = b0p[kk], b1 = b0p[8 * ld + kk];
            l32_dmma(d[0][0], a0, b0);
            l32_dmma(d[0][1], a0, b1);
            l32_dmma(d[1][0], a1, b0);
            l32_dmma(d[1][1], a1, b1);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const int t = ti * 16 + 8 * r + g, s0 = sj * 16 + 8 * h2 + 2 * c4;
                *reinterpret_cast<float2*>(cb + (size_t)t * Q + s0) =
                    make_float2(static_cast<float>(d[r][h2][0]), static_cast<float>(d[r][h2][1]));
            }
    }
}

// Shared memory (the host repeats it in src/gpu/ssdl32.rs).
__host__ __device__ constexpr int l32_states_ldx() { return L32_PB + 8; }
__host__ __device__ constexpr int l32_states_ldb(int n) { return n + 8; }
__host__ __device__ constexpr int l32_states_smem(int n) {
    return l32_hdr_bytes() + L32_Q * l32_states_ldx() * 4 + L32_Q * l32_states_ldb(n) * 4;
}
__host__ __device__ constexpr int l32_out_ldx() { return L32_PB + 4; }
__host__ __device__ constexpr int l32_out_lds(int n) { return n + 4; }
__host__ __device__ constexpr int l32_out_smem(int n) {
    return l32_hdr_bytes() + L32_Q * l32_out_ldx() * 4 + L32_PB * l32_out_lds(n) * 4;
}

// 2. Chunk states: S_loc[q][n] = sum_t x[t][q] w_t B[t][n] for HB = H / gridDim.y heads of one
// group per block, grid ((p / PB) K, H / HB, b); B is staged once, x once per head (scaled
// by w in place). Warp (mp, ng): m tiles 2 mp, 2 mp + 1 (rows q of 32 mp .. + 31) and NT =
// N / 32 n8 tiles (columns n of NT * 8 ng .. + 8 NT - 1). Permutations: tile row g of m tile
// mi at q = 32 mp + 4 g + 2 mi, row g + 8 at + 1 (so a0 / a1 of both tiles are one float4);
// column g of n tile ni at n = 8 NT ng + NT g + ni (b0 of the NT tiles is one vector).
template <int N>
__device__ void l32_states(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int Q = L32_Q, PB = L32_PB, LDX = l32_states_ldx(), LDB = l32_states_ldb(N), NT = N / 32;
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int ptiles = P / PB, HB = H / (int)gridDim.y;
    const int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j0 = blockIdx.y * HB, i = blockIdx.z;
    const int q0 = pt * PB, k = j0 / (H / p.ngroups), t0 = c * Q;
    const float* s_w = reinterpret_cast<const float*>(smem_raw) + 3 * Q;
    float* bx = reinterpret_cast<float*>(smem_raw + l32_hdr_bytes());
    float* bb = bx + Q * LDX;
    const float* x = static_cast<const float*>(p.x);
    const float* Bp = static_cast<const float*>(p.B);
    l32_stage(bb, LDB, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N, p.B_st, Q, L - t0, N);
    const int mp = warp & 1, ng = warp >> 1;
    const float* xa = bx + 32 * mp + 4 * g;
    const float* ba = bb + 8 * NT * ng + NT * g;
    for (int hh = 0; hh < HB; ++hh) {
        const int j = j0 + hh;
        const size_t head = (size_t)i * H + j;
        if (hh > 0) __syncthreads();  // every warp is past the previous head's mma (x, header)
        l32_stage(bx, LDX, x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0, p.x_st, Q, L - t0, PB);
        l32_stage_hdr(smem_raw, p, head * K + c);
        l32_commit();
        l32_wait_all();
        __syncthreads();
        float acc[2][NT][4];
#pragma unroll
        for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int s = 0; s < NT; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[a][s][e] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < Q; kk += 8) {
            float r0[4], r1[4];
            L32Vec<4>::ld(r0, xa + (kk + c4) * LDX);
            L32Vec<4>::ld(r1, xa + (kk + c4 + 4) * LDX);
            // x^T diag(w): the weight of the fragment's two rows t.
            const float w0 = s_w[kk + c4], w1 = s_w[kk + c4 + 4];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                r0[e] *= w0;
                r1[e] *= w1;
            }
            Tf32x3A a0, a1;
            tf32x3_a(a0, r0[0], r0[1], r1[0], r1[1]);
            tf32x3_a(a1, r0[2], r0[3], r1[2], r1[3]);
            float v0[NT], v1[NT];
            L32Vec<NT>::ld(v0, ba + (kk + c4) * LDB);
            L32Vec<NT>::ld(v1, ba + (kk + c4 + 4) * LDB);
#pragma unroll
            for (int s = 0; s < NT; ++s) {
                Tf32x3B b;
                tf32x3_b(b, v0[s], v1[s]);
                mma_tf32x3(acc[0][s], a0, b);
                mma_tf32x3(acc[1][s], a1, b);
            }
        }
        // acc[mi][ni][2 h + e]: q = 32 mp + 4 g + 2 mi + h, n = 8 NT ng + NT (2 c4 + e) + ni.
        float* base = p.chunk_states + ((head * K + c) * P + q0) * (size_t)N;
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int q = 32 * mp + 4 * g + 2 * mi + h;
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float o[NT];
#pragma unroll
                    for (int s = 0; s < NT; ++s) o[s] = acc[mi][s][2 * h + e];
                    L32Vec<NT>::st(base + (size_t)q * N + 8 * NT * ng + NT * (2 * c4 + e), o);
                }
            }
    }
}

// 2'. Chunk states and the combine in one pass (`ssdl32_sseq_*`, seventh session): each
// block owns one head's PB x NB tile of the state (NB = 64 columns of n) and walks the
// chunks in order, keeping the running state S in registers: at chunk c it stores S as
// S_in[c] (the slot the outputs kernel reads), then S = exp(cs_end) S + X^T diag(w) B of the
// chunk (the local product from a zero accumulator, added in f32 as the combine did). No
// separate combine pass (its read and rewrite of every chunk state), and the final state
// comes out of the registers. Grid ((p / PB) (N / NB), h, b); ST = 2 double-buffers the
// chunk's x, B and header (cp.async of chunk c + 1 while chunk c computes). Warp (mp, ng):
// m tiles 2 mp, 2 mp + 1 (as in l32_states) and NT = NB / 32 n8 tiles of the block's NB
// columns, with the same permutations.
__host__ __device__ constexpr int l32_sseq_stage(int nb) {
    return l32_hdr_bytes() + L32_Q * l32_states_ldx() * 4 + L32_Q * l32_states_ldb(nb) * 4;
}
template <int NB, int ST, int NW = 8>
__device__ void l32_sseq(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int Q = L32_Q, PB = L32_PB, LDX = l32_states_ldx(), LDB = l32_states_ldb(NB), NT = NB / (4 * NW);
    static_assert(NT >= 1 && NT * 4 * NW == NB, "NB / (4 NW) n8 tiles per warp");
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks, N = p.dstate;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int nsp = N / NB;
    const int pt = (int)blockIdx.x / nsp, nh = (int)blockIdx.x - pt * nsp, j = blockIdx.y, i = blockIdx.z;
    const int q0 = pt * PB, n0 = nh * NB, k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;
    const float* x = static_cast<const float*>(p.x);
    const float* Bp = static_cast<const float*>(p.B);
    const int mp = warp & 1, ng = warp >> 1;
    auto stage = [&](int c, int buf) {
        unsigned char* sm = smem_raw + buf * l32_sseq_stage(NB);
        float* bx = reinterpret_cast<float*>(sm + l32_hdr_bytes());
        float* bb = bx + Q * LDX;
        const int t0 = c * Q;
        l32_stage(bx, LDX, x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0, p.x_st, Q, L - t0, PB);
        l32_stage(bb, LDB, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N + n0, p.B_st, Q, L - t0, NB);
        l32_stage_hdr(sm, p, head * K + c);
        l32_commit();
    };
    // S[mi][ni][2 h + e]: q = 32 mp + 4 g + 2 mi + h, n = n0 + 8 NT ng + NT (2 c4 + e) + ni
    // (ng = warp / 2 < NW / 2).
    float S[2][NT][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int q = 32 * mp + 4 * g + 2 * mi + h;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float o[NT];
                if (p.init) L32Vec<NT>::ld(o, p.init + (head * P + q0 + q) * N + n0 + 8 * NT * ng + NT * (2 * c4 + e));
#pragma unroll
                for (int s = 0; s < NT; ++s) S[mi][s][2 * h + e] = p.init ? o[s] : 0.f;
            }
        }
    stage(0, 0);
    for (int c = 0; c < K; ++c) {
        const int buf = ST == 2 ? (c & 1) : 0;
        if (ST == 2 && c + 1 < K) {
            stage(c + 1, buf ^ 1);
#ifndef MAMBA_EMU
            asm volatile("cp.async.wait_group 1;\n" ::);
#endif
        } else {
            l32_wait_all();
        }
        __syncthreads();
        // S_in[c] out (the outputs kernel reads it), from the registers.
        float* base = p.chunk_states + ((head * K + c) * P + q0) * (size_t)N + n0;
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int q = 32 * mp + 4 * g + 2 * mi + h;
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float o[NT];
#pragma unroll
                    for (int s = 0; s < NT; ++s) o[s] = S[mi][s][2 * h + e];
                    L32Vec<NT>::st(base + (size_t)q * N + 8 * NT * ng + NT * (2 * c4 + e), o);
                }
            }
        const unsigned char* sm = smem_raw + buf * l32_sseq_stage(NB);
        const float* s_w = reinterpret_cast<const float*>(sm) + 3 * Q;
        const float dec = reinterpret_cast<const float*>(sm)[5 * Q];
        const float* bx = reinterpret_cast<const float*>(sm + l32_hdr_bytes());
        const float* xa = bx + 32 * mp + 4 * g;
        const float* ba = bx + Q * LDX + 8 * NT * ng + NT * g;
        float acc[2][NT][4];
#pragma unroll
        for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int s = 0; s < NT; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[a][s][e] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < Q; kk += 8) {
            float r0[4], r1[4];
            L32Vec<4>::ld(r0, xa + (kk + c4) * LDX);
            L32Vec<4>::ld(r1, xa + (kk + c4 + 4) * LDX);
            const float w0 = s_w[kk + c4], w1 = s_w[kk + c4 + 4];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                r0[e] *= w0;
                r1[e] *= w1;
            }
            Tf32x3A a0, a1;
            tf32x3_a(a0, r0[0], r0[1], r1[0], r1[1]);
            tf32x3_a(a1, r0[2], r0[3], r1[2], r1[3]);
            float v0[NT], v1[NT];
            L32Vec<NT>::ld(v0, ba + (kk + c4) * LDB);
            L32Vec<NT>::ld(v1, ba + (kk + c4 + 4) * LDB);
#pragma unroll
            for (int s = 0; s < NT; ++s) {
                Tf32x3B b;
                tf32x3_b(b, v0[s], v1[s]);
                mma_tf32x3(acc[0][s], a0, b);
                mma_tf32x3(acc[1][s], a1, b);
            }
        }
#pragma unroll
        for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int s = 0; s < NT; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) S[a][s][e] = fmaf(dec, S[a][s][e], acc[a][s][e]);
        if (ST == 1 && c + 1 < K) {
            __syncthreads();  // every warp is past this chunk's x, B and header
            stage(c + 1, 0);
        } else if (ST == 2) {
            __syncthreads();  // the next iteration's prefetch overwrites this buffer
        }
    }
    if (p.final_states) {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int q = 32 * mp + 4 * g + 2 * mi + h;
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float o[NT];
#pragma unroll
                    for (int s = 0; s < NT; ++s) o[s] = S[mi][s][2 * h + e];
                    L32Vec<NT>::st(p.final_states + (head * P + q0 + q) * N + n0 + 8 * NT * ng + NT * (2 * c4 + e), o);
                }
            }
    }
}

// 4. Outputs of one (batch, head, chunk, PB = 64 columns of p), grid ((p / PB) K, h, b):
// warp w owns rows t = 16 w .. 16 w + 15 of Y (8 n8 tiles over the 64 columns q).
// Y = diag(exp(cs)) C S_in^T + M X + D x, then * silu(z); M[t][s] = CB[t][s] exp(cs_t - cs_s)
// dt_s (s <= t). C comes from global memory straight into A fragments (each warp reads its
// own 16 rows; k permuted over pairs of k8 steps so that a lane's four values are one
// float4); S_in (PB x N) and x (Q x PB) are staged. n tile (grp, tt) (grp 0..1, tt 0..3),
// column g at q = 32 grp + 4 g + tt; in M X the k of step h of s tile kq is permuted as
// k = c4 <-> s = 16 kq + 8 h + 2 c4, k = c4 + 4 <-> s + 1 (CB as float2).
// f32 products on the f16 tensor cores (seventeenth session; `ssdl32_out_n128_pfh`, C S^T
// only): each operand scaled by a power of 2 (per row of C, per row q of S: the largest
// |value| lands in [2^14, 2^15)) and split into hi = f16(v s), lo = f16(v s - hi); C S^T =
// (C_hi S_lo + C_lo S_hi + C_hi S_hi) / (s_C s_S) on mma.sync m16n8k16 with f32
// accumulation: three mma per k16 (3xTF32: per k8) and no split per warp and fragment.
// On the H200 this is 2-2.5x more accurate than 3xTF32 (scripts/split_f16_probe.cu).
__device__ __forceinline__ void l32_mma_f16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    mma_f16_16816(d, a, b);
}
// l32_f2h, l32_h2f, l32_hscale, l32_hsplit2 / l32_hsplit2s: l32_split.cuh.

// The C split for `ssdl32_out_n128_pfh` / `_pfm` (N 128; src/gpu/ssdl32.rs): one warp per
// pair of rows t, t + 8 (t % 16 < 8) of C of one (batch, group), rows t < Lp = 16 ceil(L /
// 16) (rows >= L as zeros). The output (p.out) holds per (batch, 16-row tile T, group, g = t
// % 8, k16 step ks) the m16n8k16 A fragment quads of the lanes (g, c4), c4 = 0..3: four hi
// quads then four lo quads (128 bytes), lane c4's hi quad = {hi (t, n, n + 1), hi (t + 8, n,
// n + 1), hi (t, n + 2, n + 3), hi (t + 8, n + 2, n + 3)} with n = 16 ks + 4 c4 (the k order
// of the outputs kernel), so a lane loads each quad with one 16-byte load and the four
// lanes of a row pair read 64 contiguous bytes; 1 / s of row t to p.init[(i Lp + t) g + k].
// MX (`ssdl32_csplit_m`, for `ssdl32_out_n128_pfm`): a row's scale also covers the row
// t' = t % Q of its chunk's C B^T over the columns s < 16 (t' / 16) (the tiles left of the
// diagonal, M X's A operand there), and those tiles are split in place with it: the 64
// bytes of row t' in tile jj become 4 uint4, the one for c4 = {hi (2 c4, 2 c4 + 1),
// hi (2 c4 + 8, 2 c4 + 9), lo (2 c4, 2 c4 + 1), lo (2 c4 + 8, 2 c4 + 9)} of the tile's columns
// (a lane's A fragment values of that row); lane (jj, c4) reads and writes them.
template <bool MX>
__device__ __forceinline__ void l32_csplit(const SsdParams& p) {
    const int lane = threadIdx.x % 32;
    const long long r = (long long)blockIdx.x * (L32_THREADS / 32) + threadIdx.x / 32;
    const int G = p.ngroups, L = p.seqlen, Tn = (L + 15) >> 4;
    if (r >= (long long)p.batch * Tn * 8 * G) return;
    // r = ((i Tn + T) G + k) 8 + g
    const int g = (int)(r & 7);
    const long long rk = r >> 3;
    const int k = (int)(rk % G);
    const long long it = rk / G;
    const int T = (int)(it % Tn), i = (int)(it / Tn);
    const int jj = lane >> 2, c4 = lane & 3;
    float v[2][4], mx[2];
    float2 u[2][2];
    float* cbrow[2];
    const bool mxv = MX && jj < ((16 * T) % L32_Q) / 16;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int t = 16 * T + 8 * h + g;
        mx[h] = 0.f;
        if (t < L) {
            L32Vec<4>::ld(v[h], static_cast<const float*>(p.C) + i * p.C_sb + (long long)t * p.C_st + (long long)k * 128 + 4 * lane);
        } else {
            v[h][0] = v[h][1] = v[h][2] = v[h][3] = 0.f;
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) mx[h] = fmaxf(mx[h], fabsf(v[h][e]));
        u[h][0] = u[h][1] = make_float2(0.f, 0.f);
        cbrow[h] = nullptr;
        if constexpr (MX) {
            const int c = t / L32_Q, tl = t - c * L32_Q;
            cbrow[h] = l32_cb_base(p) + (((size_t)i * G + k) * p.nchunks + c) * (size_t)(L32_Q * L32_Q) + (size_t)tl * L32_Q;
            if (mxv && t < L) {
                u[h][0] = *reinterpret_cast<const float2*>(cbrow[h] + 16 * jj + 2 * c4);
                u[h][1] = *reinterpret_cast<const float2*>(cbrow[h] + 16 * jj + 2 * c4 + 8);
                mx[h] = fmaxf(mx[h], fmaxf(fmaxf(fabsf(u[h][0].x), fabsf(u[h][0].y)),
                                           fmaxf(fabsf(u[h][1].x), fabsf(u[h][1].y))));
            }
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        mx[0] = fmaxf(mx[0], __shfl_xor_sync(0xffffffffu, mx[0], o));
        mx[1] = fmaxf(mx[1], __shfl_xor_sync(0xffffffffu, mx[1], o));
    }
    const float sc[2] = {l32_hscale(mx[0]), l32_hscale(mx[1])};
    uint4 hq, lq;
    l32_hsplit2(v[0][0], v[0][1], sc[0], hq.x, lq.x);
    l32_hsplit2(v[1][0], v[1][1], sc[1], hq.y, lq.y);
    l32_hsplit2(v[0][2], v[0][3], sc[0], hq.z, lq.z);
    l32_hsplit2(v[1][2], v[1][3], sc[1], hq.w, lq.w);
    uint4* dst = reinterpret_cast<uint4*>(p.out) + (r * 8 + (lane >> 2)) * 8 + (lane & 3);
    dst[0] = hq;
    dst[4] = lq;
    if (lane < 2) {
        const long long t = 16LL * T + 8 * lane + g;
        const_cast<float*>(p.init)[((long long)i * 16 * Tn + t) * G + k] = 1.f / (lane ? sc[1] : sc[0]);
    }
    if (MX && mxv) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            if (16 * T + 8 * h + g >= L) continue;
            uint4 a;
            l32_hsplit2(u[h][0].x, u[h][0].y, sc[h], a.x, a.z);
            l32_hsplit2(u[h][1].x, u[h][1].y, sc[h], a.y, a.w);
            reinterpret_cast<uint4*>(cbrow[h] + 16 * jj)[c4] = a;
        }
    }
}
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_csplit(const __grid_constant__ SsdParams p) {
    l32_csplit<false>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_csplit_m(const __grid_constant__ SsdParams p) {
    l32_csplit<true>(p);
}

// The states pass on the f16 tensor cores (`ssdl32_sseqh_*`, eighteenth session): the f32
// products X^T B of each chunk as split-f16 products (as C S^T of `_pfh` above).
// 
// `ssdl32_bsplit_n*`: B split once per call, shared by the heads of a group (grid (K, g, b)):
// per (batch, chunk, group) and column n, the scale s_n from the largest |B[t][n]| over the
// chunk's 128 steps (the k range of the pass's per-chunk product); row (i, t, k) of the
// output (p.out; N floats' bytes, as a contiguous B) holds per 8 columns n the 8 hi halves
// (16 bytes) then the 8 lo halves; 1 / s_n to p.init[((i K + c) g + k) N + n]. Rows t >= L
// are not written (the states kernel zero-fills them).
template <int N>
__device__ void l32_bsplit(const SsdParams& p) {
    constexpr int Q = L32_Q, TG = 2 * L32_THREADS / N, PPW = 32 / TG, R = Q / TG;
    const int L = p.seqlen, G = p.ngroups, K = p.nchunks;
    const int c = blockIdx.x, k = blockIdx.y, i = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int np = warp * PPW + lane % PPW, tg = lane / PPW;
    const int t0 = c * Q, tn = min(Q, L - t0);
    const float* src = static_cast<const float*>(p.B) + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N + 2 * np;
    float v[R][2], m0 = 0.f, m1 = 0.f;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int t = tg + TG * r;
        float2 b = make_float2(0.f, 0.f);
        if (t < tn) b = *reinterpret_cast<const float2*>(src + (long long)t * p.B_st);
        v[r][0] = b.x;
        v[r][1] = b.y;
        m0 = fmaxf(m0, fabsf(b.x));
        m1 = fmaxf(m1, fabsf(b.y));
    }
#pragma unroll
    for (int o = PPW; o < 32; o <<= 1) {
        m0 = fmaxf(m0, __shfl_xor_sync(0xffffffffu, m0, o));
        m1 = fmaxf(m1, __shfl_xor_sync(0xffffffffu, m1, o));
    }
    const float s0 = l32_hscale(m0), s1 = l32_hscale(m1);
    unsigned char* dst = static_cast<unsigned char*>(p.out) + 4 * ((((long long)i * L + t0) * G + k) * N) +
                         32 * (np >> 2) + 4 * (np & 3);
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int t = tg + TG * r;
        if (t >= tn) break;
        unsigned hi, lo;
        l32_hsplit2s(v[r][0], v[r][1], s0, s1, hi, lo);
        unsigned char* row = dst + 4 * (long long)t * G * N;
        *reinterpret_cast<unsigned*>(row) = hi;
        *reinterpret_cast<unsigned*>(row + 16) = lo;
    }
    if (tg == 0) {
        float* inv = const_cast<float*>(p.init) + (((long long)i * K + c) * G + k) * N + 2 * np;
        inv[0] = 1.f / s0;
        inv[1] = 1.f / s1;
    }
}
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_bsplit_n128(const __grid_constant__ SsdParams p) {
    l32_bsplit<128>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS) ssdl32_bsplit_n64(const __grid_constant__ SsdParams p) {
    l32_bsplit<64>(p);
}

// Four 8 x 8 b16 matrices transposed (ldmatrix .trans): lane l gives the row address of
// matrix l / 8, row l % 8; lane T gets (rows 2 (T % 4), 2 (T % 4) + 1; column T / 4).
__device__ __forceinline__ void l32_ldm_t(unsigned (&r)[4], const void* addr) {
#ifdef MAMBA_EMU
    emu_ldmatrix(r, addr, true);
#else
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(addr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
#endif
}

// `ssdl32_sseqh_n{NB}`: `l32_sseq` (one stage, NB columns of n per block) with S_loc = X^T B
// from split halves. Per chunk: x staged as f32 (rows of PB + 4 floats), the split B of
// `ssdl32_bsplit` (p.B, p.B_sb, p.B_st its layout; p.out its 1 / s_n) as stored (rows of NB
// + 4 floats' bytes), 1 / s_n of the block's columns; then warp w splits x w of the columns
// q = 8 w .. 8 w + 7 in place: lane (qp = lane & 3, tg = lane >> 2) reads q = 8 w + 2 qp,
// + 1 at the 16 steps t = tb + 8 m (tb = 2 (tg & 3) + (tg >> 2): the float2 reads of a
// half-warp fall on 4 rows whose 8-bank windows differ), s_q from the largest |x w| over
// the chunk (shuffles over tg), and the hi / lo halves of the 8 columns go to the first /
// second 16 bytes of the warp's 32 bytes of row t (read by this warp only: __syncwarp
// orders it); 1 / s_q to shared memory. Rows of 68 / NB + 4 floats put the 8 rows of an
// ldmatrix 16 bytes apart mod 128 (no bank conflicts). Warp (mp, ng) then owns rows q
// 32 mp .. + 31 (m tiles mi: q = 32 mp + 16 mi + g (+ 8)) and NT = NB / 32 n8 tiles
// (n = 8 NT ng + 8 ni + 2 c4 (+ 1)); A fragments by ldmatrix .trans from the [t][q] halves,
// B from the [t][n] halves; three mma.sync m16n8k16 per tile and k16 (A_lo B_hi, A_hi B_lo,
// A_hi B_hi); S = dec S + (acc / s_q) / s_n.
// Shared memory: the header, the x tile, 1 / s_q, the split B tile, 1 / s_n.
//
// E (`_n128e` / `_n64e`, the default; `MAMBA_CUDA_SSD32_SE=0` keeps the kernels without it;
// thirty-sixth session): less of chunk c + 1's
// staging on the path between chunks. Without E, the second half of the stage (x and B rows
// Q / 2 .., 1 / s_n, the header: ~50 KB at NB 128) is issued after the fold of chunk c and
// waited for at once at the top of chunk c + 1. With E the header goes with the first half
// (mid-chunk; two header buffers, by chunk parity), and the second half is two copy groups:
// the x rows first, then the B rows and 1 / s_n; the top of the chunk waits for all but that
// last group (the split needs x and the header only), and the B rows are waited for before
// the second half of the products, behind the store of S_in, the split and the first half.
__host__ __device__ constexpr int l32_sseqh_smem(int nb, bool e = false) {
    return (e ? 2 : 1) * l32_hdr_bytes() + L32_Q * (L32_PB + 4) * 4 + L32_PB * 4 + L32_Q * (nb + 4) * 4 + nb * 4;
}
template <int NB, bool E = false>
__device__ void l32_sseqh(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int Q = L32_Q, PB = L32_PB, LDX = PB + 4, LDB = NB + 4, NT = NB / 32;
    static_assert(NT == 2 || NT == 4, "NB 64 or 128");
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks, N = p.dstate, G = p.ngroups;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int nsp = N / NB;
    const int pt = (int)blockIdx.x / nsp, nh = (int)blockIdx.x - pt * nsp, j = blockIdx.y, i = blockIdx.z;
    const int q0 = pt * PB, n0 = nh * NB, k = j / (H / G);
    const size_t head = (size_t)i * H + j;
    const float* x = static_cast<const float*>(p.x);
    const float* Bh = static_cast<const float*>(p.B);
    const float* inv_b = static_cast<const float*>(p.out);
    // E: chunk c's header in buffer c & 1.
    auto hdr_of = [&](int c) { return smem_raw + (E ? (c & 1) * l32_hdr_bytes() : 0); };
    float* bx = reinterpret_cast<float*>(smem_raw + (E ? 2 : 1) * l32_hdr_bytes());
    float* s_iq = bx + Q * LDX;
    float* bb = s_iq + PB;
    float* s_in = bb + Q * LDB;
    const int mp = warp & 1, ng = warp >> 1;
    const int qp = lane & 3, tg = lane >> 2, tb = 2 * (tg & 3) + (tg >> 2);
    // Chunk c's tiles in two halves of Q / 2 rows: half 0 (rows 0 .. Q / 2 - 1 of x and B)
    // is issued once every warp is past them in chunk c - 1's products (mid-loop), half 1
    // (the other rows, the 1 / s_n and the header) after the chunk (eighteenth session: the
    // whole stage after the chunk, its latency on the path of every chunk).
    auto stage = [&](int c, int half) {
        constexpr int QH = Q / 2;
        const int t0 = c * Q, r0 = half * QH;
        const float* xs = x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0;
        const float* bs = Bh + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N + n0;
        l32_stage_t<QH, PB, LDX>(bx + r0 * LDX, xs + r0 * p.x_st, p.x_st, L - t0 - r0, xs);
        if (E && half) l32_commit();  // the x rows: their own group
        l32_stage_t<QH, NB, LDB>(bb + r0 * LDB, bs + r0 * p.B_st, p.B_st, L - t0 - r0, bs);
        if (half) {
            const float* ib = inv_b + (((size_t)i * K + c) * G + k) * N + n0;
            if (tid < NB / 4) l32_cp16(s_in + 4 * tid, ib + 4 * tid, 16);
        }
        if (half != (int)E) l32_stage_hdr(hdr_of(c), p, head * K + c);  // E: with the first half
        l32_commit();
    };
    // S[mi][ni][2 h + e]: q = 32 mp + 16 mi + 8 h + g, n = n0 + 8 NT ng + 8 ni + 2 c4 + e.
    float S[2][NT][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int q = 32 * mp + 16 * mi + 8 * h + g;
#pragma unroll
            for (int ni = 0; ni < NT; ++ni) {
                float o[2] = {0.f, 0.f};
                if (p.init) L32Vec<2>::ld(o, p.init + (head * P + q0 + q) * N + n0 + 8 * NT * ng + 8 * ni + 2 * c4);
                S[mi][ni][2 * h] = o[0];
                S[mi][ni][2 * h + 1] = o[1];
            }
        }
    // The state rows of this thread to base + q N + n - n0 (chunk_states or final_states).
    auto store_S = [&](float* base) {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int q = 32 * mp + 16 * mi + 8 * h + g;
#pragma unroll
                for (int ni = 0; ni < NT; ++ni) {
                    const float o[2] = {S[mi][ni][2 * h], S[mi][ni][2 * h + 1]};
                    L32Vec<2>::st(base + (size_t)q * N + 8 * NT * ng + 8 * ni + 2 * c4, o);
                }
            }
    };
    const int mat = lane >> 3, r8 = lane & 7;
    // ldmatrix row addresses (bytes) at k16 step 0, hi part: A of m tile mi = aoff + 32 * 2 mi;
    // B of tile pair pr = boff + 32 * 2 pr.
    const unsigned char* aoff = reinterpret_cast<const unsigned char*>(bx) + (r8 + 8 * (mat >> 1)) * LDX * 4 +
                                32 * (4 * mp + (mat & 1));
    const unsigned char* boff = reinterpret_cast<const unsigned char*>(bb) + (r8 + 8 * (mat & 1)) * LDB * 4 +
                                32 * (NT * ng + (mat >> 1));
    stage(0, 0);
    stage(0, 1);
    for (int c = 0; c < K; ++c) {
        // E: the last group (chunk c's B rows Q / 2 .. and 1 / s_n) may stay in flight.
        if constexpr (E) l32_wait_group<1>();
        else l32_wait_all();
        __syncthreads();
        const unsigned char* hdr = hdr_of(c);
        // S_in[c] out (the outputs kernel reads it), from the registers.
        store_S(p.chunk_states + ((head * K + c) * P + q0) * (size_t)N + n0);
        {
            // x w of columns 8 warp .. + 7 split in place.
            const float* s_w = reinterpret_cast<const float*>(hdr) + 3 * Q;
            float v[16][2], m0 = 0.f, m1 = 0.f;
#pragma unroll
            for (int m = 0; m < 16; ++m) {
                const int t = tb + 8 * m;
                const float2 xv = *reinterpret_cast<const float2*>(bx + t * LDX + 8 * warp + 2 * qp);
                const float w = s_w[t];
                v[m][0] = xv.x * w;
                v[m][1] = xv.y * w;
                m0 = fmaxf(m0, fabsf(v[m][0]));
                m1 = fmaxf(m1, fabsf(v[m][1]));
            }
#pragma unroll
            for (int o = 4; o < 32; o <<= 1) {
                m0 = fmaxf(m0, __shfl_xor_sync(0xffffffffu, m0, o));
                m1 = fmaxf(m1, __shfl_xor_sync(0xffffffffu, m1, o));
            }
            const float s0 = l32_hscale(m0), s1 = l32_hscale(m1);
            __syncwarp();
            unsigned char* wb = reinterpret_cast<unsigned char*>(bx) + 32 * warp + 4 * qp;
#pragma unroll
            for (int m = 0; m < 16; ++m) {
                unsigned hi, lo;
                l32_hsplit2s(v[m][0], v[m][1], s0, s1, hi, lo);
                unsigned char* row = wb + (tb + 8 * m) * LDX * 4;
                *reinterpret_cast<unsigned*>(row) = hi;
                *reinterpret_cast<unsigned*>(row + 16) = lo;
            }
            if (tg == 0) {
                s_iq[8 * warp + 2 * qp] = 1.f / s0;
                s_iq[8 * warp + 2 * qp + 1] = 1.f / s1;
            }
        }
        __syncthreads();
        float acc[2][NT][4];
#pragma unroll
        for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int s = 0; s < NT; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[a][s][e] = 0.f;
        auto ksteps = [&](int k0, int k1) {
#pragma unroll 2
        for (int kk = k0; kk < k1; kk += 16) {
            unsigned ah[2][4], al[2][4], bh[NT / 2][4], bl[NT / 2][4];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                l32_ldm_t(ah[mi], aoff + kk * LDX * 4 + 64 * mi);
                l32_ldm_t(al[mi], aoff + kk * LDX * 4 + 64 * mi + 16);
            }
#pragma unroll
            for (int pr = 0; pr < NT / 2; ++pr) {
                l32_ldm_t(bh[pr], boff + kk * LDB * 4 + 64 * pr);
                l32_ldm_t(bl[pr], boff + kk * LDB * 4 + 64 * pr + 16);
            }
#pragma unroll
            for (int ni = 0; ni < NT; ++ni) {
                const unsigned bhi[2] = {bh[ni >> 1][2 * (ni & 1)], bh[ni >> 1][2 * (ni & 1) + 1]};
                const unsigned blo[2] = {bl[ni >> 1][2 * (ni & 1)], bl[ni >> 1][2 * (ni & 1) + 1]};
#pragma unroll
                for (int mi = 0; mi < 2; ++mi) {
                    l32_mma_f16(acc[mi][ni], al[mi], bhi);
                    l32_mma_f16(acc[mi][ni], ah[mi], blo);
                    l32_mma_f16(acc[mi][ni], ah[mi], bhi);
                }
            }
        }
        };
        ksteps(0, Q / 2);
        if constexpr (E) {
            l32_wait_all();
            __syncthreads();  // chunk c's B rows Q / 2 .. and 1 / s_n; every warp past rows .. Q / 2 - 1
            if (c + 1 < K) stage(c + 1, 0);
        } else if (c + 1 < K) {
            __syncthreads();  // every warp is past rows 0 .. Q / 2 - 1 of x and B
            stage(c + 1, 0);
        }
        ksteps(Q / 2, Q);
        const float dec = reinterpret_cast<const float*>(hdr)[5 * Q];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float iq = s_iq[32 * mp + 16 * mi + 8 * h + g];
#pragma unroll
                for (int ni = 0; ni < NT; ++ni) {
                    const float2 in = *reinterpret_cast<const float2*>(s_in + 8 * NT * ng + 8 * ni + 2 * c4);
                    S[mi][ni][2 * h] = fmaf(acc[mi][ni][2 * h] * iq, in.x, dec * S[mi][ni][2 * h]);
                    S[mi][ni][2 * h + 1] = fmaf(acc[mi][ni][2 * h + 1] * iq, in.y, dec * S[mi][ni][2 * h + 1]);
                }
            }
        if (c + 1 < K) {
            __syncthreads();  // every warp is past this chunk's tiles, scales and header
            stage(c + 1, 1);
        }
    }
    if (p.final_states) store_S(p.final_states + (head * P + q0) * N + n0);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 3) ssdl32_sseqh_n64(const __grid_constant__ SsdParams p) {
    l32_sseqh<64>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_sseqh_n128(const __grid_constant__ SsdParams p) {
    l32_sseqh<128>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 3) ssdl32_sseqh_n64e(const __grid_constant__ SsdParams p) {
    l32_sseqh<64, true>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_sseqh_n128e(const __grid_constant__ SsdParams p) {
    l32_sseqh<128, true>(p);
}

// M X left of the diagonal for `ssdl32_out_n128_pfm` (l32_out's MX16, see there): y holds C
// S^T in the common scaled units. V X is split into the S tile's bytes (dead after C S^T),
// warp w its rows s = 16 w .. + 15; the n8 tile of column q is (grp, tt) = (q / 32, q % 4)
// (C S^T's column order), stored as group gg = 4 grp + tt at position (q % 32) / 4; a row s
// is 256 bytes, 16-byte chunk 2 gg the group's hi halves and 2 gg + 1 its lo halves, chunk
// ch stored at ch ^ (s & 7) (the 8 rows of an ldmatrix then fall on distinct banks). Then
// warp mt = w: y = y R_j + CB_j (V X)_j for j < mt (A from the split C B^T in global
// memory, a tile ahead; B by ldmatrix .trans), and y F_t / (s_t s_q) through `undo`.
//
// D2 (`ssdlw_out_f32_pfw2`, the default; `MAMBA_CUDA_SSD32_MXD=1` keeps `_pfw`; thirty-sixth
// session): the A quads two
// tiles ahead instead of one (tiles 0 and 1 load while V X is split). The H200's stall
// samples of `_pfw` put 3.6% of them on the first use of the quads loaded one tile ahead.
template <int Q, int PB, int LDX, class UNDO, bool D2 = false>
__device__ __forceinline__ void l32_out_mx16(float (&y)[2][4][4], const float* bx, float* ss, const float* s_v,
                                             const float* s_f, const float* s_r, const float* s_sq, const float* cbm,
                                             int t0, int L, int warp, int lane, UNDO undo) {
    const int g = lane >> 2, c4 = lane & 3;
    unsigned char* vx = reinterpret_cast<unsigned char*>(ss);
    // The A quads of tile 0 load while V X is split.
    const int mt = warp, tr0 = 16 * mt + g, tr1 = tr0 + 8;
    const bool v0 = t0 + tr0 < L, v1 = t0 + tr1 < L;
    const uint4* a0p = reinterpret_cast<const uint4*>(cbm + (size_t)tr0 * Q) + c4;
    const uint4* a1p = reinterpret_cast<const uint4*>(cbm + (size_t)tr1 * Q) + c4;
    const uint4 z4 = {0u, 0u, 0u, 0u};
    uint4 w0 = mt > 0 && v0 ? a0p[0] : z4, w1 = mt > 0 && v1 ? a1p[0] : z4;
    // D2: tile 1's quads (then tile j + 2's at tile j).
    [[maybe_unused]] uint4 x0 = z4, x1 = z4;
    if constexpr (D2) {
        x0 = mt > 1 && v0 ? a0p[4] : z4;
        x1 = mt > 1 && v1 ? a1p[4] : z4;
    }
    __syncthreads();  // every warp is past C S^T
    {
        // Lane (hl, kq, tq) = (l / 16, (l / 4) % 4, l % 4), step m: row s = 16 w + 2 (m / 2) + hl,
        // columns q = 32 (m % 2) + 8 kq + tq and q + 4: positions 2 kq, 2 kq + 1 of group
        // gg = 4 (m % 2) + tq, so hi and lo go out as one word each. The loads of a step fall
        // on 32 banks (rows 68 floats apart), and so do the stores (the chunk swizzle).
        const int hl = lane >> 4, kq = (lane >> 2) & 3, tq = lane & 3;
        float sqa[2], sqb[2];
#pragma unroll
        for (int gp = 0; gp < 2; ++gp) {
            sqa[gp] = s_sq[32 * gp + 8 * kq + tq];
            sqb[gp] = s_sq[32 * gp + 8 * kq + tq + 4];
        }
#pragma unroll
        for (int m = 0; m < 16; ++m) {
            const int gp = m & 1, rr = m >> 1, s = 16 * warp + 2 * rr + hl, q = 32 * gp + 8 * kq + tq;
            const float vs = s_v[s];
            unsigned hi, lo;
            l32_hsplit2s(bx[s * LDX + q] * vs, bx[s * LDX + q + 4] * vs, sqa[gp], sqb[gp], hi, lo);
            // Chunk 2 gg (hi) at (2 gg) ^ (s & 7) = 8 gp + 2 (tq ^ (rr & 3)) + hl, lo at that ^ 1.
            const int ph = 8 * gp + 2 * (tq ^ (rr & 3)) + hl;
            unsigned char* row = vx + s * 256 + 4 * kq;
            *reinterpret_cast<unsigned*>(row + 16 * ph) = hi;
            *reinterpret_cast<unsigned*>(row + 16 * (ph ^ 1)) = lo;
        }
    }
    __syncthreads();
    const int mat = lane >> 3, r8 = lane & 7;
    const unsigned char* bbase = vx + (r8 + 8 * (mat & 1)) * 256;
    for (int j = 0; j < mt; ++j) {
        constexpr int AH = D2 ? 2 : 1;  // tiles ahead
        uint4 n0 = z4, n1 = z4;
        if (j + AH < mt) {
            n0 = v0 ? a0p[4 * (j + AH)] : z4;
            n1 = v1 ? a1p[4 * (j + AH)] : z4;
        }
        const float rj = s_r[j];
#pragma unroll
        for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int tt = 0; tt < 4; ++tt)
#pragma unroll
                for (int e = 0; e < 4; ++e) y[a][tt][e] *= rj;
        const unsigned ah[4] = {w0.x, w1.x, w0.y, w1.y}, al[4] = {w0.z, w1.z, w0.w, w1.w};
        const unsigned char* brow = bbase + j * 16 * 256;
#pragma unroll
        for (int pr = 0; pr < 4; ++pr) {
            const int gl = 2 * pr + (mat >> 1);
            unsigned bh[4], bl[4];
            l32_ldm_t(bh, brow + 16 * ((2 * gl) ^ r8));
            l32_ldm_t(bl, brow + 16 * ((2 * gl + 1) ^ r8));
#pragma unroll
            for (int u = 0; u < 2; ++u) {
                const int gg = 2 * pr + u;
                const unsigned bhi[2] = {bh[2 * u], bh[2 * u + 1]}, blo[2] = {bl[2 * u], bl[2 * u + 1]};
                float(&ya)[4] = y[gg >> 2][gg & 3];
                l32_mma_f16(ya, al, bhi);
                l32_mma_f16(ya, ah, blo);
                l32_mma_f16(ya, ah, bhi);
            }
        }
        if constexpr (D2) {
            w0 = x0;
            w1 = x1;
            x0 = n0;
            x1 = n1;
        } else {
            w0 = n0;
            w1 = n1;
        }
    }
    undo(s_f[tr0], s_f[tr1]);
}

// F16 (`_pfh`, N 128): C S^T from the split C of `ssdl32_csplit` (p.C, p.C_sb, p.C_st its
// layout; p.init its 1 / s per row) and S split in place after staging (hi / lo tiles of
// rows of 132 halves; 1 / s per row q after the f32 tile: 256 bytes more shared memory).
// The k index of a k16 step is permuted as in the 3xTF32 form: fragment slots 2 c4, 2 c4 + 1
// hold n = 4 c4, 4 c4 + 1 and slots 2 c4 + 8, + 9 hold n = 4 c4 + 2, + 3 (both operands), so
// a lane reads its C values with one 16-byte load per row and its S values with one
// 8-byte load per tile and part.
//
// MX16 (`_pfm`, N 128, after `ssdl32_csplit_m`): M X left of the diagonal on the f16 tensor
// cores too, from exact scales. With ref_j = 16 j + 15 the last step of s tile j,
// M[t][s] X[s] = e^(cs_t - cs_ref_j) CB[t][s] V_s X[s] with V_s = e^(cs_ref_j - cs_s) dt_s,
// both factors <= 1 (cs falls; t > ref_j >= s). So the A operand is C B^T itself, split once
// per call with C's row scale (`ssdl32_csplit_m`: one scale per row t over C[t][.] and
// CB[t][s < 16 (t / 16)]); the B operand V X is the same for every warp: split once per
// block (after C S^T, into the S tile's bytes) with a scale per column q shared with S's
// (over S[q][.] and V X[.][q]), so C S^T and every M X tile accumulate in the same units.
// The factors e^(cs_t - cs_ref_j) enter by Horner's rule: y = C S^T; for j < m tile mt:
// y = y R_j + CB_j (V X)_j with R_j = e^(cs_ref_j - cs_ref_(j-1)) (cs_ref_(-1) = 0, so C
// S^T gets its e^(cs_t)); then y F_t with F_t = e^(cs_t - cs_ref_(mt-1)): every factor <= 1.
// The diagonal tile stays in 3xTF32 (its e^(cs_t - cs_s) has no such split for s > 16 mt).
// V, F and R come from the header in global memory before the staging barrier.
//
// WG (`ssdlw_out_f32_pfw`, kernels/ssd_wg.cu, sm_90a; twenty-ninth session): `_pfm` with C S^T
// on wgmma. S is split into two 64 x 128 f16 tiles (hi, lo) in the wgmma B layout (K-major,
// 128-byte swizzle, two 64-column panels: lmw_out's S_in layout) over the f32 S tile, which
// starts 1024-aligned (1 KB more shared memory); the k index of a k16 step carries the split
// C's permutation (slot 2 c4 + e: n = 4 c4 + e; slot 8 + 2 c4 + e: n = 4 c4 + 2 + e) and the
// row jn of the B tile holds q = 32 (jn / 32) + 8 ((jn / 2) % 4) + 4 (jn % 2) + (jn / 8) % 4,
// so the m64n64 accumulators are `y` as `_pfm` lays it out. Each warpgroup (rows 64 wg ..)
// issues 3 wgmma per k16 step (C_lo S_hi, C_hi S_lo, C_hi S_hi), A = the split C quads from
// registers in two banks of two k16 steps.
template <int N, bool PF = false, bool F16 = false, bool BAL = false, bool MX16 = false, bool WG = false,
          bool D2 = false>
__device__ void l32_out(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int Q = L32_Q, PB = L32_PB, LDX = l32_out_ldx(), LDS = l32_out_lds(N);
    // BAL: warp w owns the m tiles (row blocks of 16) w / 2 and 7 - w / 2 for the 32 columns
    // q of half w % 2 (NM = 2 m tiles, NG = 1 column group); else m tile w for all 64
    // columns (NM = 1, NG = 2). y[a] holds m tile a (BAL) or column group a.
    static_assert(!BAL || F16, "the balanced form has the split-f16 C S^T");
    static_assert(!MX16 || (F16 && !BAL), "the split-f16 M X comes with the split-f16 C S^T");
    static_assert(!WG || MX16, "the wgmma C S^T is `_pfm`'s");
    constexpr int NM = BAL ? 2 : 1, NG = BAL ? 1 : 2;
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int ptiles = P / PB;
    const int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j = blockIdx.y, i = ssd_rev_i(p);
    const int q0 = pt * PB, k = j / (H / p.ngroups), t0 = c * Q;
    const size_t head = (size_t)i * H + j;
    // D of the head, loaded here (the epilogue waited on it).
    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
    const double* s_cs = reinterpret_cast<const double*>(smem_raw);
    const float* s_ecs = reinterpret_cast<const float*>(s_cs + Q);
    const float* s_dt = s_ecs + 2 * Q;
    float* bx = reinterpret_cast<float*>(smem_raw + l32_hdr_bytes());
    float* ss = bx + Q * LDX;
    if constexpr (WG) ss += ((1024u - (l32_sa(ss) & 1023u)) & 1023u) / 4;  // the wgmma B tiles
    const float* x = static_cast<const float*>(p.x);
    l32_stage_t<Q, PB, LDX>(bx, x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0, p.x_st, L - t0);
    l32_stage_t<PB, N, LDS>(ss, p.chunk_states + ((head * K + c) * P + q0) * (size_t)N, N, PB);
    l32_stage_hdr(smem_raw, p, head * K + c);
    l32_commit();
    // This warp's rows of C (global), loaded a k16 step ahead.
    const int hq = warp & 1;
    auto mtile = [&](int m) { return BAL ? (m ? 7 - (warp >> 1) : warp >> 1) : warp; };
    auto grp_of = [&](int a) { return BAL ? hq : a; };
    auto m_of = [&](int a) { return BAL ? a : 0; };
    int tra[NM][2];
#pragma unroll
    for (int m = 0; m < NM; ++m) {
        tra[m][0] = 16 * mtile(m) + g;
        tra[m][1] = tra[m][0] + 8;
    }
    const int tr0 = tra[0][0], tr1 = tra[0][1];
    const float* Cp = static_cast<const float*>(p.C) + i * p.C_sb + (long long)k * N + 4 * c4;
    const bool v0 = t0 + tr0 < L, v1 = t0 + tr1 < L;
    const float* c0 = Cp + (long long)(t0 + (v0 ? tr0 : 0)) * p.C_st;
    const float* c1 = Cp + (long long)(t0 + (v1 ? tr1 : 0)) * p.C_st;
    float ca[4], cb[4];
    auto ldc = [&](int kk, float (&a)[4], float (&b)[4]) {
        if (v0) L32Vec<4>::ld(a, c0 + kk);
        else a[0] = a[1] = a[2] = a[3] = 0.f;
        if (v1) L32Vec<4>::ld(b, c1 + kk);
        else b[0] = b[1] = b[2] = b[3] = 0.f;
    };
    if constexpr (!F16) ldc(0, ca, cb);
    // F16: this warp's A fragment quads of the split C (`l32_csplit`: hi, lo per k16 step),
    // the first step's loaded before the staging wait, then one step ahead; m tiles wholly
    // at or past L as zeros (rows past L in a tile are zeros there).
    const int Tn = (L + 15) >> 4;
    const uint4 z4 = {0u, 0u, 0u, 0u};
    const uint4* cp[NM];
    bool va[NM];
    float icv[NM][2];
    uint4 av[NM][2];
#pragma unroll
    for (int m = 0; m < (F16 ? NM : 0); ++m) {
        const int T = (t0 >> 4) + mtile(m);
        va[m] = T < Tn;
        cp[m] = static_cast<const uint4*>(p.C) + ((((long long)i * Tn + (va[m] ? T : 0)) * p.ngroups + k) * 8 + g) * 64 + c4;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            icv[m][r] = va[m] ? p.init[((long long)i * 16 * Tn + t0 + tra[m][r]) * p.ngroups + k] : 0.f;
            av[m][r] = va[m] ? cp[m][4 * r] : z4;
        }
    }
    // WG: the quads of k16 steps 1 .. 3 too (their L2 latency under the staging and the S
    // split; loaded after the split, the first wgmma waited for them: ncu, 5% of the stall
    // samples); banks 0, 1, 2 hold steps 0 .. 5 (2 each: 4, 5 loaded after the split), then
    // bank 0 steps 6, 7.
    [[maybe_unused]] uint4 bk[3][2][2];
    auto ldq = [&](int ks, uint4 (&d)[2]) {
        d[0] = va[0] ? cp[0][8 * ks] : z4;
        d[1] = va[0] ? cp[0][8 * ks + 4] : z4;
    };
    if constexpr (WG) {
        ldq(1, bk[0][1]);
        ldq(2, bk[1][0]);
        ldq(3, bk[1][1]);
    }
    // F16: after 1 / s_q (inv_s): D of the block's columns (PB; the epilogue reads it);
    // MX16 then V_s, F_t (128 each), R_j (8, padded to 16), the scale s_q (64), and the
    // column maxima of V X per warp (8 x 64).
    float* s_d = ss + PB * LDS + PB;
    if constexpr (F16) {
        if (tid < PB) s_d[tid] = !p.D ? 0.f : p.d_per_channel ? p.D[j * P + q0 + tid] : dj;
    }
    float* s_v = s_d + PB;
    float* s_f = s_v + Q;
    float* s_r = s_f + Q;
    float* s_sq = s_r + 16;
    float* s_mxp = s_sq + PB;
    if constexpr (MX16) {
        const unsigned char* gh = reinterpret_cast<const unsigned char*>(p.seq_idx) + (head * K + c) * l32_hdr_bytes();
        const double* gcs = reinterpret_cast<const double*>(gh);
        const float* gdt = reinterpret_cast<const float*>(gcs + Q) + 2 * Q;
        if (tid < Q) {
            const double cs = gcs[tid];
            s_v[tid] = expf((float)(gcs[tid | 15] - cs)) * gdt[tid];
            s_f[tid] = expf((float)(tid >= 16 ? cs - gcs[(tid & ~15) - 1] : cs));
        } else if (tid < Q + Q / 16) {
            const int jr = tid - Q;
            s_r[jr] = expf((float)(gcs[16 * jr + 15] - (jr ? gcs[16 * jr - 1] : 0.0)));
        }
    }
    l32_wait_all();
    __syncthreads();
    float y[2][4][4];
#pragma unroll
    for (int a = 0; a < 2; ++a)
#pragma unroll
        for (int s = 0; s < 4; ++s)
#pragma unroll
            for (int e = 0; e < 4; ++e) y[a][s][e] = 0.f;
    if constexpr (F16) {
        static_assert(N == 128, "the split C rows are 128 wide");
        constexpr int LDH = 132;  // halves: 4 rows are 32 bytes apart mod 128 (the 8-byte reads)
        unsigned short* sh = reinterpret_cast<unsigned short*>(ss);
        unsigned short* sl = sh + PB * LDH;
        float* inv_s = ss + PB * LDS;
        {
            // Row q of S by threads 4 q .. 4 q + 3 (32 values each): the row's largest |value|,
            // then hi / lo in place of the f32 tile (once every thread holds its values).
            const int q = tid >> 2, part = tid & 3;
            float v[32], mx = 0.f;
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                float f[4];
                L32Vec<4>::ld(f, ss + q * LDS + part * 32 + 4 * e);
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    v[4 * e + u] = f[u];
                    mx = fmaxf(mx, fabsf(f[u]));
                }
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            if constexpr (MX16) {
                // The largest |V_s X[s][q]| of this warp's s tile (rows 16 warp ..) for the
                // lane's columns 2 lane, 2 lane + 1.
                float m0 = 0.f, m1 = 0.f;
#pragma unroll
                for (int m = 0; m < 16; ++m) {
                    const int s = 16 * warp + m;
                    const float2 xv = *reinterpret_cast<const float2*>(bx + s * LDX + 2 * lane);
                    const float vs = s_v[s];
                    m0 = fmaxf(m0, fabsf(xv.x * vs));
                    m1 = fmaxf(m1, fabsf(xv.y * vs));
                }
                *reinterpret_cast<float2*>(s_mxp + PB * warp + 2 * lane) = make_float2(m0, m1);
            }
            __syncthreads();
            if constexpr (MX16) {
#pragma unroll
                for (int w = 0; w < L32_THREADS / 32; ++w) mx = fmaxf(mx, s_mxp[PB * w + q]);
            }
            const float sc = l32_hscale(mx);
            if (MX16 && part == 0) s_sq[q] = sc;
            if constexpr (WG) {
                // Row jn of the hi / lo tiles (lo 16 KB on); this thread's k16 steps 2 part,
                // 2 part + 1; per step chunk 0 = slots 0..7 (n' 0, 1, 4, 5, 8, 9, 12, 13),
                // chunk 1 = slots 8..15 (n' 2, 3, 6, 7, 10, 11, 14, 15).
                const int jn = 32 * (q >> 5) + 8 * (q & 3) + 2 * ((q >> 3) & 3) + ((q >> 2) & 1), sw = jn & 7;
                unsigned char* rowp = reinterpret_cast<unsigned char*>(ss) + jn * 128;
#pragma unroll
                for (int kh = 0; kh < 2; ++kh) {
                    const int ks = 2 * part + kh, o = 16 * kh;
                    uint4 h0, l0, h1, l1;
                    l32_hsplit2(v[o], v[o + 1], sc, h0.x, l0.x);
                    l32_hsplit2(v[o + 4], v[o + 5], sc, h0.y, l0.y);
                    l32_hsplit2(v[o + 8], v[o + 9], sc, h0.z, l0.z);
                    l32_hsplit2(v[o + 12], v[o + 13], sc, h0.w, l0.w);
                    l32_hsplit2(v[o + 2], v[o + 3], sc, h1.x, l1.x);
                    l32_hsplit2(v[o + 6], v[o + 7], sc, h1.y, l1.y);
                    l32_hsplit2(v[o + 10], v[o + 11], sc, h1.z, l1.z);
                    l32_hsplit2(v[o + 14], v[o + 15], sc, h1.w, l1.w);
                    unsigned char* pp = rowp + (ks >> 2) * (PB * 128);
                    const int ch = 2 * (ks & 3);
                    *reinterpret_cast<uint4*>(pp + ((ch ^ sw) << 4)) = h0;
                    *reinterpret_cast<uint4*>(pp + (((ch + 1) ^ sw) << 4)) = h1;
                    *reinterpret_cast<uint4*>(pp + 16384 + ((ch ^ sw) << 4)) = l0;
                    *reinterpret_cast<uint4*>(pp + 16384 + (((ch + 1) ^ sw) << 4)) = l1;
                }
            } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                uint2 hv, lv;
                l32_hsplit2(v[4 * e], v[4 * e + 1], sc, hv.x, lv.x);
                l32_hsplit2(v[4 * e + 2], v[4 * e + 3], sc, hv.y, lv.y);
                *reinterpret_cast<uint2*>(sh + q * LDH + part * 32 + 4 * e) = hv;
                *reinterpret_cast<uint2*>(sl + q * LDH + part * 32 + 4 * e) = lv;
            }
            }
            if (part == 0) inv_s[q] = 1.f / sc;
#ifdef L32_WG
            if constexpr (WG) {
                ldq(4, bk[2][0]);
                ldq(5, bk[2][1]);
                lmw_proxy_fence();  // the tiles are read by wgmma
            }
#endif
            __syncthreads();
        }
        // B(k = n, col q) = S[q][n]: tile (grp, tt), column g is q = 32 grp + 4 g + tt.
        const unsigned short* shb = sh + 4 * g * LDH + 4 * c4;
        const unsigned short* slb = sl + 4 * g * LDH + 4 * c4;
#ifdef L32_WG
        if constexpr (WG) {
            float(&acc)[32] = *reinterpret_cast<float(*)[32]>(&y[0][0][0]);
            const unsigned char* th = reinterpret_cast<const unsigned char*>(ss);
            // The three products of k16 step ks from its split C quads (hi, lo).
            auto issue = [&](int ks, const uint4 (&d)[2]) {
                const unsigned ah[4] = {d[0].x, d[0].y, d[0].z, d[0].w}, al[4] = {d[1].x, d[1].y, d[1].z, d[1].w};
                const unsigned char* bp = th + (ks >> 2) * (PB * 128) + (ks & 3) * 32;
                LmwMma<64>::template mma<f16_t, false>(acc, al, lmw_desc(bp, 16, 1024));
                LmwMma<64>::template mma<f16_t, false>(acc, ah, lmw_desc(bp + 16384, 16, 1024));
                LmwMma<64>::template mma<f16_t, false>(acc, ah, lmw_desc(bp, 16, 1024));
            };
            bk[0][0][0] = av[0][0];
            bk[0][0][1] = av[0][1];
            lmw_pin(acc);
            lmw_fence();
            issue(0, bk[0][0]);
            issue(1, bk[0][1]);
            lmw_commit();
            issue(2, bk[1][0]);
            issue(3, bk[1][1]);
            lmw_commit();
            issue(4, bk[2][0]);
            issue(5, bk[2][1]);
            lmw_commit();
            lmw_wait<2>();  // steps 0, 1 done: bank 0 free (steps 6, 7 load under 2 .. 5)
            ldq(6, bk[0][0]);
            ldq(7, bk[0][1]);
            lmw_fence();
            issue(6, bk[0][0]);
            issue(7, bk[0][1]);
            lmw_commit();
            lmw_wait<0>();
            lmw_pin(acc);
        } else
#endif
        // Fully unrolled (with unroll 2 the loop-carried C fragments and accumulators took
        // ~100 register moves per two k16 steps).
#pragma unroll
        for (int kk = 0; kk < N; kk += 16) {
            uint4 nv[NM][2];
#pragma unroll
            for (int m = 0; m < NM; ++m)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    nv[m][r] = av[m][r];
                    if (kk + 16 < N) nv[m][r] = va[m] ? cp[m][(kk + 16) / 2 + 4 * r] : z4;
                }
            unsigned ah[NM][4], al[NM][4];
#pragma unroll
            for (int m = 0; m < NM; ++m) {
                ah[m][0] = av[m][0].x;
                ah[m][1] = av[m][0].y;
                ah[m][2] = av[m][0].z;
                ah[m][3] = av[m][0].w;
                al[m][0] = av[m][1].x;
                al[m][1] = av[m][1].y;
                al[m][2] = av[m][1].z;
                al[m][3] = av[m][1].w;
            }
#pragma unroll
            for (int gi = 0; gi < NG; ++gi)
#pragma unroll
                for (int tt = 0; tt < 4; ++tt) {
                    const int grp = BAL ? hq : gi;
                    const uint2 hv = *reinterpret_cast<const uint2*>(shb + (32 * grp + tt) * LDH + kk);
                    const uint2 lv = *reinterpret_cast<const uint2*>(slb + (32 * grp + tt) * LDH + kk);
                    const unsigned bh[2] = {hv.x, hv.y}, bl[2] = {lv.x, lv.y};
#pragma unroll
                    for (int m = 0; m < NM; ++m) {
                        float(&ya)[4] = y[BAL ? m : gi][tt];
                        l32_mma_f16(ya, ah[m], bl);
                        l32_mma_f16(ya, al[m], bh);
                        l32_mma_f16(ya, ah[m], bh);
                    }
                }
#pragma unroll
            for (int m = 0; m < NM; ++m)
#pragma unroll
                for (int r = 0; r < 2; ++r) av[m][r] = nv[m][r];
        }
        // Undo the scales: rows tra[m][0] (e 0, 1) / tra[m][1] (e 2, 3), columns
        // q = 32 grp + 4 (2 c4 + e) + tt (MX16: after M X).
        auto undo = [&](float f0, float f1) {
#pragma unroll
        for (int a = 0; a < 2; ++a)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float is[4];
                L32Vec<4>::ld(is, inv_s + 32 * grp_of(a) + 4 * (2 * c4 + e));
#pragma unroll
                for (int tt = 0; tt < 4; ++tt) {
                    y[a][tt][e] *= f0 * icv[m_of(a)][0] * is[tt];
                    y[a][tt][2 + e] *= f1 * icv[m_of(a)][1] * is[tt];
                }
            }
        };
        if constexpr (!MX16) {
            undo(1.f, 1.f);
        } else {
            l32_out_mx16<Q, PB, LDX, decltype(undo), D2>(y, bx, ss, s_v, s_f, s_r, s_sq, l32_cb_base(p) +
                (((size_t)i * p.ngroups + k) * K + c) * (size_t)Q * Q, t0, L, warp, lane, undo);
        }
    } else {
    // C S^T: B(k = n, col q) = S[q][n]: lane reads S[q][kk + 4 c4 .. + 3] for its q.
    const float* sb = ss + 4 * g * LDS + 4 * c4;
#pragma unroll 2
    for (int kk = 0; kk < N; kk += 16) {
        float na[4], nb[4];
        if (kk + 16 < N) ldc(kk + 16, na, nb);
        Tf32x3A a[2];
        tf32x3_a(a[0], ca[0], cb[0], ca[1], cb[1]);
        tf32x3_a(a[1], ca[2], cb[2], ca[3], cb[3]);
#pragma unroll
        for (int grp = 0; grp < 2; ++grp)
#pragma unroll
            for (int tt = 0; tt < 4; ++tt) {
                float sv[4];
                L32Vec<4>::ld(sv, sb + (32 * grp + tt) * LDS + kk);
                Tf32x3B b0, b1;
                tf32x3_b(b0, sv[0], sv[1]);
                tf32x3_b(b1, sv[2], sv[3]);
                mma_tf32x3(y[grp][tt], a[0], b0);
                mma_tf32x3(y[grp][tt], a[1], b1);
            }
        if (kk + 16 < N) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                ca[e] = na[e];
                cb[e] = nb[e];
            }
        }
    }
    }
#pragma unroll
    for (int a = 0; a < (MX16 ? 0 : 2); ++a) {
        const float e0 = s_ecs[tra[m_of(a)][0]], e1 = s_ecs[tra[m_of(a)][1]];
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            y[a][s][0] *= e0;
            y[a][s][1] *= e0;
            y[a][s][2] *= e1;
            y[a][s][3] *= e1;
        }
    }
    // + M X over the s tiles kq <= the m tile (one m tile: warp; BAL: two).
    const float* cbm = l32_cb_base(p) + (((size_t)i * p.ngroups + k) * K + c) * (size_t)Q * Q;
    const float* xb = bx + 4 * g;
#pragma unroll
    for (int m = 0; m < NM; ++m) {
    const int mt = mtile(m), r0 = tra[m][0], r1 = tra[m][1], kq0 = MX16 ? mt : 0;
    const double cs0 = s_cs[r0], cs1 = s_cs[r1];
    // PF: the CB values of the next s tile load while this one computes.
    float2 mc[2][2], mn[2][2];
    if (PF) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            mc[h][0] = *reinterpret_cast<const float2*>(cbm + (size_t)r0 * Q + 16 * kq0 + 8 * h + 2 * c4);
            mc[h][1] = *reinterpret_cast<const float2*>(cbm + (size_t)r1 * Q + 16 * kq0 + 8 * h + 2 * c4);
        }
    }
    for (int kq = kq0; kq <= mt; ++kq) {
        if (PF && kq < mt) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int s1 = 16 * (kq + 1) + 8 * h + 2 * c4;
                mn[h][0] = *reinterpret_cast<const float2*>(cbm + (size_t)r0 * Q + s1);
                mn[h][1] = *reinterpret_cast<const float2*>(cbm + (size_t)r1 * Q + s1);
            }
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int s0 = 16 * kq + 8 * h + 2 * c4;
            const float2 m0 = PF ? mc[h][0] : *reinterpret_cast<const float2*>(cbm + (size_t)r0 * Q + s0);
            const float2 m1 = PF ? mc[h][1] : *reinterpret_cast<const float2*>(cbm + (size_t)r1 * Q + s0);
            const double cA = s_cs[s0], cB = s_cs[s0 + 1];
            const float dA = s_dt[s0], dB = s_dt[s0 + 1];
            // __expf (ex2.approx of x log2 e): the rounding of x log2 e costs |x| 2^-24 of
            // e^x, at most 2^-24 / e of the term for x <= 0 (eighteenth session; expf's range
            // reduction took ~7 instructions per value more).
            float a00 = m0.x * __expf((float)(cs0 - cA)) * dA, a02 = m0.y * __expf((float)(cs0 - cB)) * dB;
            float a01 = m1.x * __expf((float)(cs1 - cA)) * dA, a03 = m1.y * __expf((float)(cs1 - cB)) * dB;
            if (kq == mt) {
                a00 = s0 <= r0 ? a00 : 0.f;
                a02 = s0 + 1 <= r0 ? a02 : 0.f;
                a01 = s0 <= r1 ? a01 : 0.f;
                a03 = s0 + 1 <= r1 ? a03 : 0.f;
            }
            Tf32x3A a;
            tf32x3_a(a, a00, a01, a02, a03);
#pragma unroll
            for (int gi = 0; gi < NG; ++gi) {
                const int grp = BAL ? hq : gi;
                float xv0[4], xv1[4];
                L32Vec<4>::ld(xv0, xb + s0 * LDX + 32 * grp);
                L32Vec<4>::ld(xv1, xb + (s0 + 1) * LDX + 32 * grp);
#pragma unroll
                for (int tt = 0; tt < 4; ++tt) {
                    Tf32x3B b;
                    tf32x3_b(b, xv0[tt], xv1[tt]);
                    mma_tf32x3(y[BAL ? m : gi][tt], a, b);
                }
            }
        }
        if (PF && kq < mt) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                mc[h][0] = mn[h][0];
                mc[h][1] = mn[h][1];
            }
        }
    }
    }
    // y[a][tt][2 h + e]: t = tra[m][h], q = 32 grp + 4 (2 c4 + e) + tt (m, grp of a): for
    // each (a, h) the lane holds q = 32 grp + 8 c4 .. + 7 of row t.
    const float* zp = static_cast<const float*>(p.z);
    float* out = static_cast<float*>(p.out);
#pragma unroll
    for (int a = 0; a < 2; ++a)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int t = tra[m_of(a)][h], grp = grp_of(a);
        if (t0 + t >= L) continue;
        const long long tt = t0 + t;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int q = 32 * grp + 8 * c4 + 4 * e;
                float o[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) o[u] = y[a][u][2 * h + e];
                if (F16 && p.D) {
                    float xv[4], dv[4];
                    L32Vec<4>::ld(xv, bx + t * LDX + q);
                    L32Vec<4>::ld(dv, s_d + q);
#pragma unroll
                    for (int u = 0; u < 4; ++u) o[u] += dv[u] * xv[u];
                } else if (p.D) {
                    float xv[4];
                    L32Vec<4>::ld(xv, bx + t * LDX + q);
#pragma unroll
                    for (int u = 0; u < 4; ++u)
                        o[u] += (p.d_per_channel ? p.D[j * P + q0 + q + u] : dj) * xv[u];
                }
                const long long col = (long long)j * P + q0 + q;
                if (zp) {
                    float zv[4];
                    L32Vec<4>::ld(zv, zp + i * p.z_sb + tt * p.z_st + col);
#pragma unroll
                    for (int u = 0; u < 4; ++u) o[u] *= silu_f(zv[u]);
                }
                L32Vec<4>::st(out + i * p.out_sb + tt * p.out_st + col, o);
            }
    }
}

__device__ __forceinline__ float4 l32_ldcs(const float4* p) {
#ifdef MAMBA_EMU
    return *p;
#else
    return __ldcs(p);
#endif
}
__device__ __forceinline__ void l32_stcs(float4* p, float4 v) {
#ifdef MAMBA_EMU
    *p = v;
#else
    __stcs(p, v);
#endif
}

// 3. The combine for f32 chunk states (b, h, K, p, N): incoming states in place, final
// state; each thread owns four consecutive elements of one (batch, head), eight chunks'
// loads in flight at once (streaming loads and stores: the states are read once here).
L32_GLOBAL void ssdl32_combine(const __grid_constant__ SsdParams p) {
    const size_t pN = (size_t)p.headdim * p.dstate, pN4 = pN / 4;
    const size_t total = (size_t)p.batch * p.nheads * pN4;
    const int K = p.nchunks;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t head = idx / pN4, e0 = (idx - head * pN4) * 4;
        float4 S = p.init ? *reinterpret_cast<const float4*>(p.init + head * pN + e0) : make_float4(0.f, 0.f, 0.f, 0.f);
        for (int k0 = 0; k0 < K; k0 += 8) {
            float4 loc[8];
            float dec[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const int k = k0 + u;
                if (k < K) {
                    loc[u] = l32_ldcs(reinterpret_cast<const float4*>(p.chunk_states + (head * K + k) * pN + e0));
                    dec[u] = p.chunk_decay[head * K + k];
                }
            }
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const int k = k0 + u;
                if (k < K) {
                    l32_stcs(reinterpret_cast<float4*>(p.chunk_states + (head * K + k) * pN + e0), S);
                    S.x = fmaf(dec[u], S.x, loc[u].x);
                    S.y = fmaf(dec[u], S.y, loc[u].y);
                    S.z = fmaf(dec[u], S.z, loc[u].z);
                    S.w = fmaf(dec[u], S.w, loc[u].w);
                }
            }
        }
        if (p.final_states) *reinterpret_cast<float4*>(p.final_states + head * pN + e0) = S;
    }
}

L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_states_n128(const __grid_constant__ SsdParams p) {
    l32_states<128>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_states_n64(const __grid_constant__ SsdParams p) {
    l32_states<64>(p);
}
// Outputs: 2 blocks per SM (no spills) or `_b3`, 3 blocks per SM (80 registers, ~64 bytes
// of spills; the shared memory fits three).
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n128(const __grid_constant__ SsdParams p) {
    l32_out<128>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n64(const __grid_constant__ SsdParams p) {
    l32_out<64>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 3) ssdl32_out_n128_b3(const __grid_constant__ SsdParams p) {
    l32_out<128>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 3) ssdl32_out_n64_b3(const __grid_constant__ SsdParams p) {
    l32_out<64>(p);
}

// The chunk states with the combine folded in (2'): NB = 64 columns of n per block; one
// stage and 2 or 3 blocks per SM, or two stages (double-buffered) and 1 block per SM.
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_sseq_s1(const __grid_constant__ SsdParams p) {
    l32_sseq<64, 1>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 3) ssdl32_sseq_s1b3(const __grid_constant__ SsdParams p) {
    l32_sseq<64, 1>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 1) ssdl32_sseq_s2(const __grid_constant__ SsdParams p) {
    l32_sseq<64, 2>(p);
}
// 16 warps (512 threads) and two stages, 1 block per SM: NB = N (the whole state row per
// block: x staged once per chunk), every chunk's loads in flight while the previous computes.
L32_GLOBAL void __launch_bounds__(2 * L32_THREADS, 1) ssdl32_sseq_w16_n128(const __grid_constant__ SsdParams p) {
    l32_sseq<128, 2, 16>(p);
}
L32_GLOBAL void __launch_bounds__(2 * L32_THREADS, 1) ssdl32_sseq_w16_n64(const __grid_constant__ SsdParams p) {
    l32_sseq<64, 2, 16>(p);
}
// PF: the M X loop loads the next s tile's CB values a tile ahead (MAMBA_CUDA_SSD32_OPF=1).
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n128_pf(const __grid_constant__ SsdParams p) {
    l32_out<128, true>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n128_pfh(const __grid_constant__ SsdParams p) {
    l32_out<128, true, true>(p);
}
// `_pfhb`: `_pfh` with the causal M X balanced over the warps (BAL in l32_out; eighteenth
// session: slower, 386 against 358 us per run at the LM shape: every warp prepares the M X
// operand of two m tiles, so the total work grows more than the longest warp's shrinks).
// `_pfh3`: `_pfh` capped for three blocks per SM (the shared memory fits three).
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n128_pfhb(const __grid_constant__ SsdParams p) {
    l32_out<128, true, true, true>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n128_pfm(const __grid_constant__ SsdParams p) {
    l32_out<128, true, true, false, true>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 3) ssdl32_out_n128_pfh3(const __grid_constant__ SsdParams p) {
    l32_out<128, true, true>(p);
}
L32_GLOBAL void __launch_bounds__(L32_THREADS, 2) ssdl32_out_n64_pf(const __grid_constant__ SsdParams p) {
    l32_out<64, true>(p);
}

#ifdef L32_WG
// `_pfm` with C S^T on wgmma (WG above; kernels/ssd_wg.cu includes this file for it).
extern "C" __global__ void __launch_bounds__(L32_THREADS, 2) ssdlw_out_f32_pfw(const __grid_constant__ SsdParams p) {
    l32_out<128, true, true, false, true, true>(p);
}
// D2 (see l32_out_mx16): the split C B^T quads of M X two tiles ahead.
extern "C" __global__ void __launch_bounds__(L32_THREADS, 2) ssdlw_out_f32_pfw2(const __grid_constant__ SsdParams p) {
    l32_out<128, true, true, false, true, true, true>(p);
}
#endif
