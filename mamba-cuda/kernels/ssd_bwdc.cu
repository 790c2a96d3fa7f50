// SPEC 2 backward in chunked form (`ssdbc_*`, host src/gpu/ssd_bwdc.rs): the gradients of
// the SSD through chunk states, as mamba-ssm's chunked backward computes them. For SSD
// (seq_idx: `SBC_RESET`, fifty-fifth session), headdim P <= 64 (P % 4 == 0) and N <= 128 (N % 8 == 0); the recurrent
// kernels (kernels/bwd.cu) take every other call. The products run in f32 on the CUDA cores
// (the generic kernels and `_w`), or, for (P, N) = (64, 128) / (64, 64), on the tensor cores
// (`_tc`: mma.sync tf32 with every operand rounded once, for the 16-bit types, whose
// tolerances are 2e-2 / 5e-3: relative errors ~4e-4; `_tc3`: 3xTF32, about f32 accuracy, for
// f32). The reductions after the products (da and its scans, <G, S>, dD, d dt) are f32 sums
// on the CUDA cores in every form.
//
// Per batch row i and head j (group k), chunks c of Q = 32 steps; within a chunk the step
// s_t (after bias, softplus, clamp), a_t = s_t A_j and cs_t = a_{c Q} + .. + a_t (steps past L:
// s = a = 0, x = B = C = dout = 0). The state entering chunk c is S_c (P x N; S_0 = the
// initial state) and
//   S_{c+1} = e^{cs_last} S_c + sum_s e^{cs_last - cs_s} s_s x_s B_s^T,
//   y_t = sum_{s <= t} e^{cs_t - cs_s} (C_t . B_s) s_s x_s + e^{cs_t} S_c C_t + D x_t,
// out = y silu(z). With dy = dout silu(z) and G_c = dL/dS_c (G_K = dfinal):
//   G_c = e^{cs_last} G_{c+1} + sum_t e^{cs_t} dy_t C_t^T,
//   dxh_s = sum_{t >= s} e^{cs_t - cs_s} (C_t . B_s) dy_t + e^{cs_last - cs_s} G_{c+1} B_s,
//   dx_s = s_s dxh_s + D dy_s,  d s_s (direct) = x_s . dxh_s,
//   dB_s = s_s (sum_{t >= s} e^{cs_t - cs_s} (dy_t . x_s) C_t + e^{cs_last - cs_s} G_{c+1}^T x_s),
//   dC_t = sum_{s <= t} e^{cs_t - cs_s} s_s (dy_t . x_s) B_s + e^{cs_t} S_c^T dy_t,
//   dL/dcs_t = sum_{s <= t} W_ts - sum_{t' >= t} W_t't + e^{cs_t} dy_t . S_c C_t
//              - s_t e^{cs_last - cs_t} x_t . G_{c+1} B_t + [t = Q - 1] <G_{c+1}, S_{c+1}>,
//   W_ts = e^{cs_t - cs_s} (C_t . B_s) s_s (dy_t . x_s), da_s = sum_{t >= s} dL/dcs_t,
//   d s_s = x_s . dxh_s + A da_s, dA_j += s_s da_s, d dt = d s_s softplus'() [not clamped].
// Kernels: `ssdbc_prep` (s, cs, the step's derivative factor and the walks' weights
// e^{cs_last - cs_t} s_t, e^{cs_t} per (i, j, t)), `ssdbc_states`
// (S_c for c = 0..K, one block per (i, j) walking the chunks), `ssdbc_gstates` (G_{c+1} for
// c = K-1..0 and dinitial = G_0), `ssdbc_chunk` (one block per (i, c) and `hpb` heads of one
// group, one head after another: every gradient; B, C and C B^T staged / computed once per
// block, dB / dC summed over the block's heads in shared memory and over the group's blocks
// by float4 atomics into f32 accumulators); the host
// casts the accumulators into the storage type with `bwd_cast_*` (kernels/bwd.cu).
#include "common.cuh"
#include "mma_tf32.cuh"

#ifndef DYN_SMEM
#define DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif

#define SBC_Q 32
#define SBC_NT 256

struct SsdbcParams {
    const void* x;
    const void* dt;
    const float* A;
    const void* B;
    const void* C;
    const float* D;
    const void* z;
    const float* dt_bias;
    const float* init;
    const void* dout;
    const float* dfinal;
    void* dx;
    void* ddt;
    float* dA;
    float* dD;
    void* dz;
    float* ddt_bias;
    float* dinit;
    float* dB;   // f32 accumulators (b, L, g, N), zeroed
    float* dC;
    float* sv;   // (b, h, K Q): the step s_t
    float* csv;  // (b, h, K Q): cs_t within its chunk
    float* dsv;  // (b, h, K Q): d s / d dt (0 where clamped or past L)
    float* S;    // (b, h, K + 1, P, N)
    float* G;    // (b, h, K, P, N): G[c] = dL/dS_{c+1}
    int batch, seqlen, nheads, headdim;
    int ngroups, dstate, nchunks, softplus;
    int has_limit, d_per_channel;
    float lo, hi;
    float* wv;   // (b, h, K Q): e^{cs_last - cs_t} s_t (the states walk's weights)
    float* ev;   // (b, h, K Q): e^{cs_t} (the state gradients walk's)
    int hpb;     // heads per block of the chunk kernel (a divisor of h / g)
    int q64;     // the tensor-core walks store for the 64-step kernels (ssd_bwdl.cuh)
    const int* seq_idx;  // (b, L) or null: packed sequences (`sbc_prep`, SBC_RESET)
    float* cse;  // (b, h, K Q): cs_t - csv_t, the f32 remainder of cs_t (`sbc_prep`, `sbc_dcs`)
    // (batch row, step) strides in elements of the (b, L, ...) views, whose inner dimensions
    // are dense (sixty-fourth session: slices of wider rows, as the Mamba2Block's conv output
    // and in_proj rows, without copies). z and dz are laid out as dout (the host passes a gate
    // only with every view dense); the dB / dC accumulators are dense.
    long long x_sb, x_st, y_sb, y_st, dx_sb, dx_st, b_sb, b_st, c_sb, c_st, dt_sb, dt_st, ddt_sb, ddt_st;
};

struct SbcIdx {
    int L, H, P, G, N, K;
    long long x_sb, x_st, y_sb, y_st, dx_sb, dx_st, b_sb, b_st, c_sb, c_st, dt_sb, dt_st, ddt_sb, ddt_st;
    // x; dout (and z, dz); dx.
    __device__ size_t x(int i, int t, int j, int p) const { return i * x_sb + t * x_st + (size_t)j * P + p; }
    __device__ size_t y(int i, int t, int j, int p) const { return i * y_sb + t * y_st + (size_t)j * P + p; }
    __device__ size_t dx(int i, int t, int j, int p) const { return i * dx_sb + t * dx_st + (size_t)j * P + p; }
    // dt; d dt.
    __device__ size_t dt(int i, int t, int j) const { return i * dt_sb + t * dt_st + j; }
    __device__ size_t ddt(int i, int t, int j) const { return i * ddt_sb + t * ddt_st + j; }
    // B; C; the dense f32 accumulators of dB and dC.
    __device__ size_t b(int i, int t, int k, int n) const { return i * b_sb + t * b_st + (size_t)k * N + n; }
    __device__ size_t c(int i, int t, int k, int n) const { return i * c_sb + t * c_st + (size_t)k * N + n; }
    __device__ size_t acc(int i, int t, int k, int n) const { return ((size_t)(i * (size_t)L + t) * G + k) * N + n; }
    __device__ size_t hv(int i, int j, int t) const { return ((size_t)i * H + j) * ((size_t)K * SBC_Q) + t; }
    __device__ size_t s(int i, int j, int c) const { return (((size_t)i * H + j) * (K + 1) + c) * (size_t)P * N; }
    __device__ size_t g(int i, int j, int c) const { return (((size_t)i * H + j) * K + c) * (size_t)P * N; }
};

__device__ __forceinline__ SbcIdx sbc_idx(const SsdbcParams& p) {
    return SbcIdx{p.seqlen, p.nheads, p.headdim, p.ngroups, p.dstate, p.nchunks, p.x_sb, p.x_st, p.y_sb, p.y_st,
                  p.dx_sb, p.dx_st, p.b_sb, p.b_st, p.c_sb, p.c_st, p.dt_sb, p.dt_st, p.ddt_sb, p.ddt_st};
}

// dy = dout silu(z) (dout without z) at (i, t, j, q); 0 past L.
template <typename T>
__device__ __forceinline__ float sbc_dy(const SsdbcParams& p, const SbcIdx& ix, int i, int t, int j, int q) {
    if (t >= ix.L) return 0.f;
    const size_t e = ix.y(i, t, j, q);
    float v = ldf(static_cast<const T*>(p.dout) + e);
    if (p.z) v *= silu_f(ldf(static_cast<const T*>(p.z) + e));
    return v;
}

// Packed sequences (seq_idx; fifty-fifth session): SBC_RESET times the number of sequence
// starts at steps <= t of the chunk (a step whose seq_idx differs from the step before's) is
// taken off cs_t, once, after the scan. Every decay the kernels take is e^ of a later step's
// cs minus an earlier one's (or of one cs: from the chunk's start; across the halves of a
// 64-step chunk, `sbl_dcs`), and cs is non-increasing (A < 0), so a decay across a start is
// <= e^-32 (1e-14: the SPEC's reset, to far below f32's rounding) and one inside a sequence is
// unchanged but for one f32 rounding of cs at 32 per start (2^-19 absolute at one start in
// the chunk; the gradients' tolerance is 1e-4). The gradients follow: dL/dcs and its suffix
// sums hold only terms with such decays, and the starts are constants of the steps.
#define SBC_RESET 32.f

// The step, its cumulative log-decay within the chunk and its derivative factor: one warp
// per (chunk, head, batch row).
template <typename T>
__device__ void sbc_prep(const SsdbcParams& p) {
    const SbcIdx ix = sbc_idx(p);
    const int c = blockIdx.x, j = blockIdx.y, i = blockIdx.z, lane = threadIdx.x;
    const int t = c * SBC_Q + lane;
    float s = 0.f, ds = 0.f;
    if (t < ix.L) {
        const float raw = ldf(static_cast<const T*>(p.dt) + ix.dt(i, t, j)) + (p.dt_bias ? p.dt_bias[j] : 0.f);
        s = raw;
        ds = 1.f;
        if (p.softplus) {
            s = softplus_f(raw);
            ds = 1.f / (1.f + expf(-raw));
        }
        if (p.has_limit) {
            if (s < p.lo) {
                s = p.lo;
                ds = 0.f;
            } else if (s > p.hi) {
                s = p.hi;
                ds = 0.f;
            }
        }
    }
    // Inclusive scan over the chunk's 32 steps, in f64 (the products s_t A exactly). cs_t is
    // kept as two f32 values, csv_t = cs_t rounded and cse_t = cs_t - csv_t, so that a decay
    // between two steps is e^ of `sbc_dcs`, not of the difference of two rounded sums: with
    // strong decays |cs| reaches hundreds within a chunk, where one f32 rounding is ~3e-5, and
    // a decay of a few steps (e^-1 .. e^-5, not negligible) would carry that as its relative
    // error (the f32 gradients' dA came out 1e-5 .. 5e-5 from f64 on the golden ssd_05's
    // ranges before; fifty-eighth session).
    double a = (double)s * (double)p.A[j];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const double v = __shfl_sync(0xffffffffu, a, lane >= o ? lane - o : lane);
        if (lane >= o) a += v;
    }
    // Packed sequences: cs_t - SBC_RESET x (the sequence starts at steps <= t of the chunk).
    if (p.seq_idx) {
        const int* sq = p.seq_idx + (size_t)i * ix.L;
        const bool starts = t > 0 && t < ix.L && sq[t] != sq[t - 1];
        const unsigned upto = lane == 31 ? 0xffffffffu : (2u << lane) - 1u;
        a -= (double)SBC_RESET * (double)__popc(__ballot_sync(0xffffffffu, starts) & upto);
    }
    const double cl = __shfl_sync(0xffffffffu, a, 31);
    const float hi = (float)a;
    const size_t h = ix.hv(i, j, t);
    p.sv[h] = s;
    p.csv[h] = hi;
    p.cse[h] = (float)(a - (double)hi);
    p.dsv[h] = ds;
    p.wv[h] = expf((float)(cl - a)) * s;
    p.ev[h] = expf(hi);
}

// cs_t - cs_s from the pairs (csv, cse) of `sbc_prep`: the f32 parts' difference is exact where
// they are within a factor of 2 of each other and rounded once, relative to the result,
// elsewhere; the remainders' difference restores what rounding cs_t and cs_s took off.
__device__ __forceinline__ float sbc_dcs(float ct, float et, float cs, float es) { return (ct - cs) + (et - es); }

// S_c (FWD) or G_{c+1} (!FWD) for every chunk: one block per (head, batch row), thread
// (tp, tn) holding states p 4 tp .. + 3, n 8 tn .. + 7 in registers. FWD: per chunk the
// block stages w_s x_s (w_s = e^{cs_last - cs_s} s_s) and B_s, and S <- e^{cs_last} S +
// sum_s (w_s x_s) B_s^T. !FWD (chunks in reverse): e^{cs_t} dy_t and C_t, and
// G <- e^{cs_last} G + sum_t (e^{cs_t} dy_t) C_t^T. PC / NC: P and N at compile time (0:
// from the parameters), so that the staging loops unroll and their loads overlap. (Blocks
// of 32 rows p, twice the blocks with every block staging B / C, measured slower.)
template <typename T, bool FWD, int PC, int NC>
__device__ void sbc_walk(const SsdbcParams& p) {
    DYN_SMEM(sm);
    const SbcIdx ix = sbc_idx(p);
    const int j = blockIdx.x, i = blockIdx.y, k = j / (ix.H / ix.G);
    const int P = PC ? PC : ix.P, N = NC ? NC : ix.N, K = ix.K, tid = threadIdx.x;
    constexpr int NTH = PC ? ((PC / 4) * (NC / 8) + 31) / 32 * 32 : 0;
    const int nt = PC ? NTH : (int)blockDim.x;
    float* xw = sm;              // [Q][P]
    float* bs = sm + SBC_Q * P;  // [Q][N]
    const int ntn = N / 8, tp = tid / ntn, tn = tid % ntn;
    const bool act = tp < P / 4;
    const int p0 = 4 * (act ? tp : 0), n0 = 8 * tn;
    const size_t rowo = (size_t)p0 * N + n0;  // this thread's first state in a P x N block
    float st[4][8];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 8; ++b) {
            const float* src = FWD ? p.init : p.dfinal;
            st[a][b] = (act && src) ? src[((size_t)i * ix.H + j) * P * N + rowo + (size_t)a * N + b] : 0.f;
        }
    for (int r = 0; r < K; ++r) {
        const int c = FWD ? r : K - 1 - r;
        if (act) {
            float* dst = (FWD ? p.S + ix.s(i, j, c) : p.G + ix.g(i, j, c)) + rowo;
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                float* d = dst + (size_t)a * N;
                *reinterpret_cast<float4*>(d) = make_float4(st[a][0], st[a][1], st[a][2], st[a][3]);
                *reinterpret_cast<float4*>(d + 4) = make_float4(st[a][4], st[a][5], st[a][6], st[a][7]);
            }
        }
        __syncthreads();  // the previous chunk's staging is read
        const float csl = p.csv[ix.hv(i, j, c * SBC_Q + SBC_Q - 1)];
        if constexpr (PC != 0) {
            // Loads first (unrolled), then the weights and the stores.
            constexpr int EX = (SBC_Q * PC + NTH - 1) / NTH, EB = (SBC_Q * NC + NTH - 1) / NTH;
            float rv[EX], rb[EB];
#pragma unroll
            for (int u = 0; u < EX; ++u) {
                const int e = tid + u * NTH, s = e / PC, q = e - s * PC, t = c * SBC_Q + s;
                rv[u] = 0.f;
                if (e < SBC_Q * PC && t < ix.L) {
                    const size_t h = ix.hv(i, j, t);
                    if (FWD) rv[u] = p.wv[h] * ldf(static_cast<const T*>(p.x) + ix.x(i, t, j, q));
                    else rv[u] = p.ev[h] * sbc_dy<T>(p, ix, i, t, j, q);
                }
            }
#pragma unroll
            for (int u = 0; u < EB; ++u) {
                const int e = tid + u * NTH, s = e / NC, n = e - s * NC, t = c * SBC_Q + s;
                rb[u] = (e < SBC_Q * NC && t < ix.L) ? ldf(static_cast<const T*>(FWD ? p.B : p.C) + (FWD ? ix.b(i, t, k, n) : ix.c(i, t, k, n))) : 0.f;
            }
#pragma unroll
            for (int u = 0; u < EX; ++u)
                if (tid + u * NTH < SBC_Q * PC) xw[tid + u * NTH] = rv[u];
#pragma unroll
            for (int u = 0; u < EB; ++u)
                if (tid + u * NTH < SBC_Q * NC) bs[tid + u * NTH] = rb[u];
        } else {
            for (int e = tid; e < SBC_Q * P; e += nt) {
                const int s = e / P, q = e - s * P, t = c * SBC_Q + s;
                float v = 0.f;
                if (t < ix.L) {
                    const size_t h = ix.hv(i, j, t);
                    if (FWD) v = p.wv[h] * ldf(static_cast<const T*>(p.x) + ix.x(i, t, j, q));
                    else v = p.ev[h] * sbc_dy<T>(p, ix, i, t, j, q);
                }
                xw[e] = v;
            }
            for (int e = tid; e < SBC_Q * N; e += nt) {
                const int s = e / N, n = e - s * N, t = c * SBC_Q + s;
                bs[e] = t < ix.L ? ldf(static_cast<const T*>(FWD ? p.B : p.C) + (FWD ? ix.b(i, t, k, n) : ix.c(i, t, k, n))) : 0.f;
            }
        }
        __syncthreads();
        const float dec = expf(csl);
        float lc[4][8];
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int b = 0; b < 8; ++b) lc[a][b] = 0.f;
        if (act) {
#pragma unroll 4
            for (int s = 0; s < SBC_Q; ++s) {
                const float4 xv = *reinterpret_cast<const float4*>(xw + s * P + p0);
                const float4 b0 = *reinterpret_cast<const float4*>(bs + s * N + n0);
                const float4 b1 = *reinterpret_cast<const float4*>(bs + s * N + n0 + 4);
                const float xa[4] = {xv.x, xv.y, xv.z, xv.w};
                const float ba[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int a = 0; a < 4; ++a)
#pragma unroll
                    for (int b = 0; b < 8; ++b) lc[a][b] = fmaf(xa[a], ba[b], lc[a][b]);
            }
        }
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int b = 0; b < 8; ++b) st[a][b] = fmaf(dec, st[a][b], lc[a][b]);
    }
    if (act) {
        float* dst = FWD ? p.S + ix.s(i, j, K) : p.dinit ? p.dinit + ((size_t)i * ix.H + j) * P * N : nullptr;
        if (dst) {
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int b = 0; b < 8; ++b) dst[rowo + (size_t)a * N + b] = st[a][b];
        }
    }
}

// out(m, n) = epi(m, n, sum_k A(m, k) kscale[k] B(k, n)) over the block's threads; a thread
// takes rows m0 .. m0 + RM - 1 and the columns c0 + j NN / RN (j < RN), so that the lanes of
// a warp read consecutive columns of B (no bank conflicts where B's column stride bn is 1 or
// odd) and share A's rows (broadcasts). A(m, k) = a[m * am + k * ak], B(k, n) =
// b[k * bk + n * bn]; kscale may be null. M % RM == 0, NN % RN == 0.
template <int RM, int RN, typename Epi>
__device__ __forceinline__ void sbc_mm(int M, int NN, int KD, const float* a, int am, int ak, const float* b, int bk,
                                       int bn, const float* kscale, Epi epi) {
    const int cg = NN / RN, tiles = (M / RM) * cg;
    for (int tt = threadIdx.x; tt < tiles; tt += blockDim.x) {
        const int m0 = RM * (tt / cg), c0 = tt % cg;
        float acc[RM][RN];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int q = 0; q < RN; ++q) acc[r][q] = 0.f;
        const float* ap = a + m0 * am;
        const float* bp = b + c0 * bn;
#pragma unroll 4
        for (int kk = 0; kk < KD; ++kk) {
            float av[RM], bv[RN];
            const float w = kscale ? kscale[kk] : 1.f;
#pragma unroll
            for (int r = 0; r < RM; ++r) av[r] = ap[r * am + kk * ak] * w;
#pragma unroll
            for (int q = 0; q < RN; ++q) bv[q] = bp[kk * bk + q * cg * bn];
#pragma unroll
            for (int r = 0; r < RM; ++r)
#pragma unroll
                for (int q = 0; q < RN; ++q) acc[r][q] = fmaf(av[r], bv[q], acc[r][q]);
        }
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int q = 0; q < RN; ++q) epi(m0 + r, c0 + q * cg, acc[r][q]);
    }
}

// The same products on the tensor cores (mma.sync m16n8k8 tf32, f32 accumulation): the
// warps take tasks of (16 TM) x 16 outputs (`sbc_tm`) in turn. MODE 1: both operands rounded to tf32 (cvt.rna; for the 16-bit storage types,
// whose tolerance is 2e-2 / 5e-3); MODE 3: 3xTF32 (v = hi + lo with hi = v & 0xffffe000,
// exact; a b ~ a_lo b_hi + a_hi b_lo + a_hi b_hi: about f32 accuracy). M % (16 TM) == 0,
// NN % 16 == 0, KD % 8 == 0. With row strides = 4 mod 32 words, the loads of an operand
// read along k (A(m, k) = a[m am + k], B(k, n) = b[n bn + k]) are free of bank conflicts;
// the transposed reads have two-way conflicts.
__device__ __forceinline__ unsigned sbc_tf32(float v) {
#ifdef MAMBA_EMU
    return emu_tf32_rna(v);
#else
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return r;
#endif
}
// ldmatrix (b16 view of 32-bit words): lane l gives the row address of matrix l / 8 (row
// l % 8, 16 bytes); lane T gets the word at row T / 4, word T % 4 of each matrix, which is the
// tf32 fragment layout when the matrices are the 8 x 4 quarters of a tile read along k.
__device__ __forceinline__ void sbc_ldm4(unsigned (&r)[4], const float* p) {
#ifdef MAMBA_EMU
    emu_ldm32(r, 4, p);
#else
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}
__device__ __forceinline__ void sbc_ldm2(unsigned (&r)[2], const float* p) {
#ifdef MAMBA_EMU
    emu_ldm32(r, 2, p);
#else
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
#endif
}
// d += a b from raw operand words: MODE 1 as they are (tf32 values already: rounded when
// they were stored, or exact; anything else is truncated by the tensor cores); MODE 3 split
// into hi + lo (AX / BX: exact, no lo part).
template <int MODE, bool AX, bool BX>
__device__ __forceinline__ void sbc_mma_u(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    if constexpr (MODE == 1) {
        mma_tf32_16x8x8(d, a, b);
    } else {
        unsigned ah[4], al[4], bh[2], bl[2];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            ah[e] = AX ? a[e] : a[e] & 0xffffe000u;
            al[e] = __float_as_uint(__uint_as_float(a[e]) - __uint_as_float(ah[e]));
        }
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            bh[e] = BX ? b[e] : b[e] & 0xffffe000u;
            bl[e] = __float_as_uint(__uint_as_float(b[e]) - __uint_as_float(bh[e]));
        }
        if (!AX) mma_tf32_16x8x8(d, al, bh);
        if (!BX) mma_tf32_16x8x8(d, ah, bl);
        mma_tf32_16x8x8(d, ah, bh);
    }
}
// FL: 1 A read along k (ak = 1), 2 B read along k (bk = 1): such an operand loads with
// ldmatrix (row strides = 4 mod 32 words and 16-byte aligned rows: free of bank conflicts);
// the others with scalar loads (two-way conflicts at those strides). 4 / 8: A / B exact in
// tf32 (x, B, C of a 16-bit type; MODE 3 then has no lo part). NW: warps of the block; w0,
// nwu: the warps that take the tasks (so that the products between two barriers balance). MODE 1 takes the
// operands as stored: the chunk kernel stores them rounded to tf32 (or they are exact), and
// stores the scaled operands (Mx diag(s), Mb diag(s)) itself: no per-k scale here.
__host__ __device__ constexpr int sbc_tm(int mode) { return mode == 1 ? 2 : 1; }
template <int MODE, int FL, int NW, typename Epi>
__device__ __forceinline__ void sbc_tc(int M, int NN, int KD, const float* a, int am, int ak, const float* b, int bk,
                                       int bn, int w0, int nwu, Epi epi) {
    constexpr bool AR = FL & 1, BR = FL & 2, AX = FL & 4, BX = FL & 8;
    // Warps w0 .. w0 + nwu - 1 (mod NW) take the tasks, task i on warp w0 + i mod nwu.
    const int lane = threadIdx.x & 31, warp = ((threadIdx.x >> 5) - w0 + NW) % NW;
    if (warp >= nwu) return;
    // A warp's task: a (16 TM) x 16 block of outputs (two n8 tiles sharing the A fragments,
    // TM m16 tiles sharing the B fragments); M % (16 TM) == 0. TM = 2 for MODE 1 (a quarter
    // less shared-memory traffic per mma; H200, SSD LM bf16 forward+backward 6.03-6.05 against
    // 6.21-6.25 ms with TM = 1), 1 for MODE 3 (with 2 its three mma per product spill:
    // f32 8.30-8.34 against 7.66-7.73 ms). The callers' warp offsets (w0) follow `sbc_tm`.
    constexpr int TM = sbc_tm(MODE);
    const int g = lane >> 2, t4 = lane & 3, tn = NN >> 4, tasks = (M / (16 * TM)) * tn;
    // ldmatrix rows: A x4 (matrices: rows 0-7 / 8-15 at k 0-3, then at k 4-7), B x2 (k 0-3, 4-7).
    const int la = (lane & 7) + 8 * ((lane >> 3) & 1), lka = 4 * (lane >> 4), lb = lane & 7, lkb = 4 * ((lane >> 3) & 1);
    for (int tt = warp; tt < tasks; tt += nwu) {
        const int mt = tt / tn, m0 = 16 * TM * mt, n0 = 16 * (tt - mt * tn);
        float d[TM][2][4];
#pragma unroll
        for (int q = 0; q < TM; ++q)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int e = 0; e < 4; ++e) d[q][h][e] = 0.f;
#pragma unroll
        for (int k0 = 0; k0 < KD; k0 += 8) {
            unsigned ua[TM][4], ub[2][2];
#pragma unroll
            for (int q = 0; q < TM; ++q) {
                const int mq = m0 + 16 * q;
                if constexpr (AR) {
                    sbc_ldm4(ua[q], a + (mq + la) * am + k0 + lka);
                } else {
                    const float* ap = a + (mq + g) * am + (k0 + t4) * ak;
                    ua[q][0] = __float_as_uint(ap[0]), ua[q][1] = __float_as_uint(ap[8 * am]);
                    ua[q][2] = __float_as_uint(ap[4 * ak]), ua[q][3] = __float_as_uint(ap[8 * am + 4 * ak]);
                }
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int nh = n0 + 8 * h;
                if constexpr (BR) {
                    sbc_ldm2(ub[h], b + (nh + lb) * bn + k0 + lkb);
                } else {
                    const float* bp = b + (nh + g) * bn + (k0 + t4) * bk;
                    ub[h][0] = __float_as_uint(bp[0]), ub[h][1] = __float_as_uint(bp[4 * bk]);
                }
            }
#pragma unroll
            for (int q = 0; q < TM; ++q)
#pragma unroll
                for (int h = 0; h < 2; ++h) sbc_mma_u<MODE, AX, BX>(d[q][h], ua[q], ub[h]);
        }
#pragma unroll
        for (int q = 0; q < TM; ++q)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int nh = n0 + 8 * h, mq = m0 + 16 * q;
                epi(mq + g, nh + 2 * t4, d[q][h][0]);
                epi(mq + g, nh + 2 * t4 + 1, d[q][h][1]);
                epi(mq + g + 8, nh + 2 * t4, d[q][h][2]);
                epi(mq + g + 8, nh + 2 * t4 + 1, d[q][h][3]);
            }
    }
}
// 16 bytes global -> shared, asynchronous (cp.async.cg: not cached in L1).
__device__ __forceinline__ void sbc_cp16(float* dst, const float* src) {
#ifdef MAMBA_EMU
    emu_cp(dst, src, 16, 16);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
#endif
}
__device__ __forceinline__ void sbc_cp_wait() {
#ifdef MAMBA_EMU
    emu_cp_wait_all();
#else
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// A product of the chunk kernel: on the CUDA cores (TCM 0, register tile RM x RN) or the
// tensor cores (TCM 1 / 3, `sbc_tc` MODE, flags FL, warps w0, nwu; kscale must be null there).
template <int TCM, int RM, int RN, int FL = 0, typename Epi>
__device__ __forceinline__ void sbc_prod(int M, int NN, int KD, const float* a, int am, int ak, const float* b, int bk,
                                         int bn, const float* kscale, Epi epi, int w0 = 0, int nwu = 16) {
    if constexpr (TCM == 0) sbc_mm<RM, RN>(M, NN, KD, a, am, ak, b, bk, bn, kscale, epi);
    else sbc_tc<TCM, FL, 16>(M, NN, KD, a, am, ak, b, bk, bn, w0, nwu, epi);  // 512 threads
}

// A fragment's operands prepared once for several mma: MODE 1 rounded to tf32, MODE 3 split
// into hi + lo.
template <int MODE, int NV>
struct SbcOp {
    unsigned h[NV], l[NV];
};
template <int MODE, int NV>
__device__ __forceinline__ void sbc_split(SbcOp<MODE, NV>& o, const float (&v)[NV]) {
#pragma unroll
    for (int e = 0; e < NV; ++e) {
        if constexpr (MODE == 1) {
            o.h[e] = sbc_tf32(v[e]);
        } else {
            o.h[e] = __float_as_uint(v[e]) & 0xffffe000u;
            o.l[e] = __float_as_uint(v[e] - __uint_as_float(o.h[e]));
        }
    }
}
template <int MODE>
__device__ __forceinline__ void sbc_mma_op(float (&d)[4], const SbcOp<MODE, 4>& a, const SbcOp<MODE, 2>& b) {
    if constexpr (MODE == 1) {
        mma_tf32_16x8x8(d, a.h, b.h);
    } else {
        mma_tf32_16x8x8(d, a.l, b.h);
        mma_tf32_16x8x8(d, a.h, b.l);
        mma_tf32_16x8x8(d, a.h, b.h);
    }
}

// Eight consecutive values of T from a 16-byte aligned address: one 16-byte load for the
// 16-bit types, two for f32 (`sbc_at` reads value e < 8; zero bits are 0.0 in every type).
template <typename T>
struct SbcV8 {
    uint4 u[sizeof(T) == 2 ? 1 : 2];
};
template <typename T>
__device__ __forceinline__ void sbc_ld8(SbcV8<T>& v, const T* src, bool ok) {
    const uint4* s4 = reinterpret_cast<const uint4*>(src);
#pragma unroll
    for (int w = 0; w < (int)(sizeof(v.u) / 16); ++w) v.u[w] = ok ? s4[w] : make_uint4(0u, 0u, 0u, 0u);
}
template <typename T>
__device__ __forceinline__ float sbc_at(const SbcV8<T>& v, int e) {
    return ldf(reinterpret_cast<const T*>(v.u) + e);
}

// The walk kernels with the chunk's product on the tensor cores (P, N fixed; MODE as
// `sbc_tc`): 256 threads; warp w holds the m16n8 accumulator tiles of state rows
// 16 (w & 3) .. + 15 and columns 8 NTW (w >> 2) .. + 8 NTW - 1 (NTW = N / 16 tiles). Per chunk
// the block stages (w_s x_s) and B_s (FWD) or (e^{cs_t} dy_t) and C_t with the weights from
// `ssdbc_prep`, in rows of P + 8 / N + 8 floats (= 8 mod 32 words: the fragment loads, which
// read down the columns of both tiles, are free of bank conflicts), double-buffered: the next
// chunk's loads are in flight during the products, one barrier per chunk. The tiles load as
// 16-byte vectors of eight values (rows of x, dout, z, B, C 16-byte aligned: the host checks).
// The entries `ssdbc_walks_*` run both walks in one launch (grid z 0: states, 1: gradients).
template <typename T, bool FWD, int PC, int NC, int MODE>
__device__ void sbc_walk_tc(const SsdbcParams& p) {
    DYN_SMEM(sm);
    constexpr int P = PC, N = NC, Q = SBC_Q, NTH = 256, LPW = P + 8, LNW = N + 8, NTW = N / 16;
    constexpr int BUF = Q * (LPW + LNW), EX = Q * P / 8 / NTH, EB = Q * N / 8 / NTH;
    static_assert(P == 64 && N % 16 == 0 && (Q * P / 8) % NTH == 0 && (Q * N / 8) % NTH == 0, "walk_tc shape");
    const SbcIdx ix = sbc_idx(p);
    const int j = blockIdx.x, i = blockIdx.y, k = j / (ix.H / ix.G), K = ix.K, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int m0 = 16 * (warp & 3), nb = 8 * NTW * (warp >> 2);
    // Accumulator e of tile nt: row m0 + g + 8 (e >> 1), column nb + 8 nt + 2 t4 + (e & 1).
    auto at = [&](int nt, int e) { return (size_t)(m0 + g + 8 * (e >> 1)) * N + nb + 8 * nt + 2 * t4 + (e & 1); };
    float st[NTW][4];
    {
        const float* src = FWD ? p.init : p.dfinal;
        const size_t head = ((size_t)i * ix.H + j) * P * N;
#pragma unroll
        for (int nt = 0; nt < NTW; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) st[nt][e] = src ? src[head + at(nt, e)] : 0.f;
    }
    // Vector u of a tile: row s = v / (W / 8), columns 8 (v % (W / 8)) .. + 7, v = tid + u NTH.
    SbcV8<T> rx[EX], rz[EX], rb[EB];
    float rw[EX], rcs;  // rcs: cs at the chunk's last step (its decay), fetched with the chunk
    const T* bsrc = static_cast<const T*>(FWD ? p.B : p.C);
    auto fetch = [&](int c) {
        rcs = p.csv[ix.hv(i, j, c * Q + Q - 1)];
#pragma unroll
        for (int u = 0; u < EX; ++u) {
            const int v = tid + u * NTH, s = v / (P / 8), q = 8 * (v - s * (P / 8)), t = c * Q + s;
            const bool ok = t < ix.L;
            const size_t o = ok ? (FWD ? ix.x(i, t, j, q) : ix.y(i, t, j, q)) : 0, h = ok ? ix.hv(i, j, t) : 0;
            rw[u] = ok ? (FWD ? p.wv[h] : p.ev[h]) : 0.f;
            sbc_ld8(rx[u], static_cast<const T*>(FWD ? p.x : p.dout) + o, ok);
            if (!FWD) sbc_ld8(rz[u], static_cast<const T*>(p.z) + o, ok && p.z);
        }
#pragma unroll
        for (int u = 0; u < EB; ++u) {
            const int v = tid + u * NTH, s = v / (N / 8), n = 8 * (v - s * (N / 8)), t = c * Q + s;
            const bool ok = t < ix.L;
            sbc_ld8(rb[u], bsrc + (ok ? (FWD ? ix.b(i, t, k, n) : ix.c(i, t, k, n)) : 0), ok);
        }
    };
    fetch(FWD ? 0 : K - 1);
    for (int r = 0; r < K; ++r) {
        const int c = FWD ? r : K - 1 - r;
        float* xw = sm + (r & 1) * BUF;
        float* bs = xw + Q * LPW;
#pragma unroll
        for (int u = 0; u < EX; ++u) {
            const int v = tid + u * NTH, s = v / (P / 8), q = 8 * (v - s * (P / 8));
            float f[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                float val = sbc_at(rx[u], e);
                if (!FWD && p.z) val *= silu_f(sbc_at(rz[u], e));  // dy = dout silu(z)
                f[e] = rw[u] * val;
                if (MODE == 1) f[e] = __uint_as_float(sbc_tf32(f[e]));  // an mma operand only
            }
            *reinterpret_cast<float4*>(xw + s * LPW + q) = make_float4(f[0], f[1], f[2], f[3]);
            *reinterpret_cast<float4*>(xw + s * LPW + q + 4) = make_float4(f[4], f[5], f[6], f[7]);
        }
#pragma unroll
        for (int u = 0; u < EB; ++u) {
            const int v = tid + u * NTH, s = v / (N / 8), n = 8 * (v - s * (N / 8));
            *reinterpret_cast<float4*>(bs + s * LNW + n) =
                make_float4(sbc_at(rb[u], 0), sbc_at(rb[u], 1), sbc_at(rb[u], 2), sbc_at(rb[u], 3));
            *reinterpret_cast<float4*>(bs + s * LNW + n + 4) =
                make_float4(sbc_at(rb[u], 4), sbc_at(rb[u], 5), sbc_at(rb[u], 6), sbc_at(rb[u], 7));
        }
        const float dec = expf(rcs);
        // This buffer was last read two chunks ago, before the previous barrier.
        __syncthreads();
        if (r + 1 < K) fetch(FWD ? c + 1 : c - 1);
        // q64 (the 64-step kernels, ssd_bwdl.cuh): only S_c of even c and G_c of odd c (and of
        // the last chunk), at c / 2 of (b, h, K64 + 1, P, N) / (b, h, K64, P, N) arrays.
        if (!p.q64 || (FWD ? (c & 1) == 0 : ((c & 1) == 1 || c == K - 1))) {
            const int K64 = (K + 1) >> 1;
            float* dst = !p.q64 ? (FWD ? p.S + ix.s(i, j, c) : p.G + ix.g(i, j, c))
                         : FWD  ? p.S + (((size_t)i * ix.H + j) * (K64 + 1) + (c >> 1)) * (size_t)(P * N)
                                : p.G + (((size_t)i * ix.H + j) * K64 + (c >> 1)) * (size_t)(P * N);
#pragma unroll
            for (int nt = 0; nt < NTW; ++nt) {
                *reinterpret_cast<float2*>(dst + at(nt, 0)) = make_float2(st[nt][0], st[nt][1]);
                *reinterpret_cast<float2*>(dst + at(nt, 2)) = make_float2(st[nt][2], st[nt][3]);
            }
        }
        // MODE 1 accumulates into the decayed state (32 registers fewer: no spills with the
        // prefetched values); MODE 3 sums the chunk's product apart and adds it with one FMA.
        constexpr bool DIRECT = MODE == 1;
        float lc[NTW][4];
#pragma unroll
        for (int nt = 0; nt < NTW; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                if (DIRECT) st[nt][e] *= dec;
                else lc[nt][e] = 0.f;
            }
#pragma unroll
        for (int k0 = 0; k0 < Q; k0 += 8) {
            // A(m, s) = xw[s][m], B(s, n) = bs[s][n].
            const float* xa = xw + (k0 + t4) * LPW + m0 + g;
            const float av[4] = {xa[0], xa[8], xa[4 * LPW], xa[4 * LPW + 8]};
            SbcOp<MODE, 4> ao;
            if (MODE == 1) {
#pragma unroll
                for (int e = 0; e < 4; ++e) ao.h[e] = __float_as_uint(av[e]);  // rounded when staged
            } else {
                sbc_split(ao, av);
            }
#pragma unroll
            for (int nt = 0; nt < NTW; ++nt) {
                const float* ba = bs + (k0 + t4) * LNW + nb + 8 * nt + g;
                const float bv[2] = {ba[0], ba[4 * LNW]};
                SbcOp<MODE, 2> bo;
                if (MODE == 1 && sizeof(T) == 2) {
                    // B / C of a 16-bit type are tf32 values already.
                    bo.h[0] = __float_as_uint(bv[0]);
                    bo.h[1] = __float_as_uint(bv[1]);
                } else {
                    sbc_split(bo, bv);
                }
                sbc_mma_op<MODE>(DIRECT ? st[nt] : lc[nt], ao, bo);
            }
        }
        if (!DIRECT) {
#pragma unroll
            for (int nt = 0; nt < NTW; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) st[nt][e] = fmaf(dec, st[nt][e], lc[nt][e]);
        }
    }
    // The final state (not read by the 64-step kernels).
    float* dst = FWD ? (p.q64 ? nullptr : p.S + ix.s(i, j, K))
                     : p.dinit ? p.dinit + ((size_t)i * ix.H + j) * P * N : nullptr;
    if (dst) {
#pragma unroll
        for (int nt = 0; nt < NTW; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) dst[at(nt, e)] = st[nt][e];
    }
}

// Shared memory of `ssdbc_chunk` in floats (src/gpu/ssd_bwdc.rs mirrors it): x, dy, B, C,
// S / G, C B^T and dy x^T with row strides P + PAD, N + PAD, Q + PAD (PAD 1 for the CUDA-core
// products: their column reads are free of bank conflicts; PAD 4 for the tensor-core kernels:
// their ldmatrix row reads are, the column reads have two-way conflicts), W with Q + 1; the
// tensor-core kernels also hold G in a buffer of its own (staged with S at the start),
// dout silu'(z) (for dz), and the mma operands dy, Mx diag(s), Mb diag(s) (rounded to tf32 for
// the tf32 products).
__host__ __device__ constexpr int sbc_chunk_floats(int P, int N, int PAD = 1) {
    return 2 * SBC_Q * (P + PAD) + 2 * SBC_Q * (N + PAD) + P * (N + PAD) + 2 * SBC_Q * P + 2 * SBC_Q * N +
           3 * SBC_Q * (SBC_Q + PAD) + SBC_Q * (SBC_Q + 1) + 8 * SBC_Q + 64 +
           (PAD == 4 ? P * (N + PAD) + SBC_Q * P + SBC_Q * (P + PAD) + 2 * SBC_Q * (SBC_Q + PAD) : 0);
}

// TPB: threads per block (256, or 512 for the `_w` kernels: 16 warps on the SM that the
// shared memory leaves one block; smaller register tiles so that the products use them).
// TCM: the products on the CUDA cores (0) or the tensor cores (1: tf32, 3: 3xTF32; `sbc_tc`).
template <typename T, int PC, int NC, int TPB = SBC_NT, int TCM = 0>
__device__ void sbc_chunk(const SsdbcParams& p) {
    constexpr bool W = TPB >= 512;
    constexpr int QQN = W ? 1 : 2, QPN = W ? 2 : 4, QNM = W ? 2 : 4;
    static_assert(TCM == 0 || TPB == 512, "the tensor-core chunk kernels have 16 warps");
    constexpr int PAD = TCM ? 4 : 1, QW = SBC_Q + 1;
    // The products' warp offsets (w0) for tasks of 32 x 16 outputs (`sbc_tm`), so that the
    // products between two barriers spread over the 16 warps.
    constexpr bool T2 = TCM != 0 && sbc_tm(TCM) == 2;
    // An operand stored for the tensor cores only: rounded to tf32 for MODE 1.
    auto rnd = [](float v) { return TCM == 1 ? __uint_as_float(sbc_tf32(v)) : v; };
    // The operands that are tf32 values already (x, B, C of a 16-bit type; `sbc_tc` FL 4 / 8).
    constexpr int X16 = sizeof(T) == 2 ? 12 : 0;
    DYN_SMEM(sm);
    constexpr int Q = SBC_Q, Q1 = SBC_Q + PAD;
    const SbcIdx ix = sbc_idx(p);
    const int c = blockIdx.x, i = blockIdx.z, hpb = p.hpb, j0 = blockIdx.y * hpb, k = j0 / (ix.H / ix.G);
    const int P = PC ? PC : ix.P, N = NC ? NC : ix.N, tid = threadIdx.x, t0 = c * Q;
    const int LP = P + PAD, LN = N + PAD;
    const int nt = PC ? TPB : (int)blockDim.x;
    float* xs = sm;               // [Q][LP] x
    float* dys = xs + Q * LP;     // [Q][LP] dy
    float* bs = dys + Q * LP;     // [Q][LN] B
    float* ct = bs + Q * LN;      // [Q][LN] C
    float* sg = ct + Q * LN;      // [P][LN] S_c, then G_{c+1}
    float* cb = sg + P * LN;      // [Q][Q1] Mx = E o CB
    float* yx = cb + Q * Q1;      // [Q][Q1] dy_t . x_s, then Mb = E o YX
    float* wm = yx + Q * Q1;      // [Q][QW] W_ts
    float* sc = wm + Q * QW;      // [Q][P] S_c C_t
    float* gb = sc + Q * P;       // [Q][P] e^{cs_last - cs_s} G_{c+1} B_s, then dxh
    float* dcm = gb + Q * P;      // [Q][N] dC, summed over the block's heads
    float* dbm = dcm + Q * N;     // [Q][N] dB, summed over the block's heads
    float* vs = dbm + Q * N;      // [Q] step
    float* vc = vs + Q;           // [Q] cs
    float* vd = vc + Q;           // [Q] d s / d dt
    float* vdcs = vd + Q;         // [Q] dL/dcs
    float* vex = vdcs + Q;        // [Q] e^{cs_t}
    float* vel = vex + Q;         // [Q] e^{cs_last - cs_t}, then (vel + Q) r_t below
    float* vce = vel + 2 * Q;     // [Q] cse_t (`sbc_dcs`)
    float* red = vce + Q;         // [64] reductions
    float* gsm = TCM ? red + 64 : sg;  // [P][LN] G_{c+1} (its own buffer in the tensor-core kernels)
    float* fzs = gsm + P * LN;         // [Q][P] dout silu'(z) (the tensor-core kernels, with z)
    float* dyr = fzs + Q * P;          // [Q][LP] dy as an mma operand (tensor-core kernels)
    float* cbs = dyr + Q * LP;         // [Q][Q1] Mx diag(s) (tensor-core kernels)
    float* yxs = cbs + Q * Q1;         // [Q][Q1] Mb diag(s) (tensor-core kernels)
    float* cbr = TCM ? yxs + Q * Q1 : red + 64;  // [Q][Q1] C_t . B_s (the group's: once per block)
    const T* gx = static_cast<const T*>(p.x);
    for (int e = tid; e < 2 * Q * N; e += nt) dcm[e] = 0.f;
    // The block's heads one after another (all of one group): B, C and C B^T staged and
    // computed once, dB and dC summed in shared memory and added to the accumulators once.
    for (int hh = 0; hh < hpb; ++hh) {
    const int j = j0 + hh;
    if constexpr (TCM != 0) {
        // S_c and G_{c+1} into shared memory while the rest is staged.
        const float* s_src = p.S + ix.s(i, j, c);
        const float* g_src = p.G + ix.g(i, j, c);
        for (int e = tid; e < P * N / 4; e += nt) {
            const int r = (4 * e) / N, n = 4 * e - r * N;
            sbc_cp16(sg + r * LN + n, s_src + 4 * e);
            sbc_cp16(gsm + r * LN + n, g_src + 4 * e);
        }
    }
    {
        // Loads first (unrolled where P, N are known), then the shared stores.
        constexpr int EX = PC ? (Q * PC + TPB - 1) / TPB : 1, EB = PC ? (Q * NC + TPB - 1) / TPB : 1;
        if constexpr (TCM != 0) {
            // 16-byte vectors of eight values (rows 16-byte aligned: the host checks): x, dy and
            // dout silu'(z) (dz = dout silu'(z) y) from one load of x, dout, z; B, C.
            constexpr int VX = Q * PC / 8, VB = Q * NC / 8, UX = (VX + TPB - 1) / TPB, UB = (VB + TPB - 1) / TPB;
            SbcV8<T> vx[UX], vo[UX], vz[UX], vb[UB], vc[UB];
#pragma unroll
            for (int u = 0; u < UX; ++u) {
                const int v = tid + u * TPB, s = v / (PC / 8), q = 8 * (v - s * (PC / 8)), t = t0 + s;
                const bool ok = v < VX && t < ix.L;
                const size_t o = ok ? ix.x(i, t, j, q) : 0, oy = ok ? ix.y(i, t, j, q) : 0;
                sbc_ld8(vx[u], gx + o, ok);
                sbc_ld8(vo[u], static_cast<const T*>(p.dout) + oy, ok);
                sbc_ld8(vz[u], static_cast<const T*>(p.z) + oy, ok && p.z);
            }
#pragma unroll
            for (int u = 0; u < UB; ++u) {
                const int v = tid + u * TPB, s = v / (NC / 8), n = 8 * (v - s * (NC / 8)), t = t0 + s;
                const bool ok = hh == 0 && v < VB && t < ix.L;
                sbc_ld8(vb[u], static_cast<const T*>(p.B) + (ok ? ix.b(i, t, k, n) : 0), ok);
                sbc_ld8(vc[u], static_cast<const T*>(p.C) + (ok ? ix.c(i, t, k, n) : 0), ok);
            }
            auto put8 = [](float* d, const float (&f)[8]) {
                *reinterpret_cast<float4*>(d) = make_float4(f[0], f[1], f[2], f[3]);
                *reinterpret_cast<float4*>(d + 4) = make_float4(f[4], f[5], f[6], f[7]);
            };
#pragma unroll
            for (int u = 0; u < UX; ++u) {
                const int v = tid + u * TPB, s = v / (PC / 8), q = 8 * (v - s * (PC / 8));
                if (v < VX) {
                    float fx[8], fy[8], fz[8];
#pragma unroll
                    for (int e = 0; e < 8; ++e) {
                        float go = sbc_at(vo[u], e), f = 0.f;
                        if (p.z) {
                            const float zv = sbc_at(vz[u], e), sgm = 1.f / (1.f + expf(-zv));
                            f = go * sgm * (1.f + zv * (1.f - sgm));
                            go *= zv * sgm;
                        }
                        fx[e] = sbc_at(vx[u], e);
                        fy[e] = go;
                        fz[e] = f;
                    }
                    put8(xs + s * LP + q, fx);
                    put8(dys + s * LP + q, fy);
                    put8(fzs + s * PC + q, fz);
#pragma unroll
                    for (int e = 0; e < 8; ++e) fy[e] = rnd(fy[e]);
                    put8(dyr + s * LP + q, fy);
                }
            }
#pragma unroll
            for (int u = 0; u < UB; ++u) {
                const int v = tid + u * TPB, s = v / (NC / 8), n = 8 * (v - s * (NC / 8));
                if (hh == 0 && v < VB) {
                    float fb[8], fc[8];
#pragma unroll
                    for (int e = 0; e < 8; ++e) fb[e] = sbc_at(vb[u], e), fc[e] = sbc_at(vc[u], e);
                    put8(bs + s * LN + n, fb);
                    put8(ct + s * LN + n, fc);
                }
            }
        } else if constexpr (PC != 0) {
            float rx[EX], ry[EX], rb[EB], rc[EB];
#pragma unroll
            for (int u = 0; u < EX; ++u) {
                const int e = tid + u * TPB, s = e / PC, q = e - s * PC, t = t0 + s;
                const bool ok = e < Q * PC && t < ix.L;
                rx[u] = ok ? ldf(gx + ix.x(i, t, j, q)) : 0.f;
                ry[u] = ok ? sbc_dy<T>(p, ix, i, t, j, q) : 0.f;
            }
#pragma unroll
            for (int u = 0; u < EB; ++u) {
                const int e = tid + u * TPB, s = e / NC, n = e - s * NC, t = t0 + s;
                const bool ok = hh == 0 && e < Q * NC && t < ix.L;
                rb[u] = ok ? ldf(static_cast<const T*>(p.B) + ix.b(i, t, k, n)) : 0.f;
                rc[u] = ok ? ldf(static_cast<const T*>(p.C) + ix.c(i, t, k, n)) : 0.f;
            }
#pragma unroll
            for (int u = 0; u < EX; ++u) {
                const int e = tid + u * TPB, s = e / PC, q = e - s * PC;
                if (e < Q * PC) xs[s * LP + q] = rx[u], dys[s * LP + q] = ry[u];
            }
#pragma unroll
            for (int u = 0; u < EB; ++u) {
                const int e = tid + u * TPB, s = e / NC, n = e - s * NC;
                if (hh == 0 && e < Q * NC) bs[s * LN + n] = rb[u], ct[s * LN + n] = rc[u];
            }
        } else {
            for (int e = tid; e < Q * P; e += nt) {
                const int s = e / P, q = e - s * P, t = t0 + s;
                xs[s * LP + q] = t < ix.L ? ldf(gx + ix.x(i, t, j, q)) : 0.f;
                dys[s * LP + q] = sbc_dy<T>(p, ix, i, t, j, q);
            }
            for (int e = hh ? Q * N : tid; e < Q * N; e += nt) {
                const int s = e / N, n = e - s * N, t = t0 + s;
                bs[s * LN + n] = t < ix.L ? ldf(static_cast<const T*>(p.B) + ix.b(i, t, k, n)) : 0.f;
                ct[s * LN + n] = t < ix.L ? ldf(static_cast<const T*>(p.C) + ix.c(i, t, k, n)) : 0.f;
            }
        }
    }
    // A P x N state (f32, dense in global memory) into sg's padded rows.
    auto load_pn = [&](const float* src) {
        const float4* s4 = reinterpret_cast<const float4*>(src);
        for (int e = tid; e < P * N / 4; e += nt) {
            const float4 v = s4[e];
            const int r = (4 * e) / N, n = 4 * e - r * N;
            float* d = sg + r * LN + n;
            d[0] = v.x;
            d[1] = v.y;
            d[2] = v.z;
            d[3] = v.w;
        }
    };
    if constexpr (TCM == 0) load_pn(p.S + ix.s(i, j, c));
    if (tid < Q) {
        const size_t h = ix.hv(i, j, t0 + tid);
        const size_t hl = ix.hv(i, j, t0 + Q - 1);
        const float cv = p.csv[h], ce = p.cse[h];
        vs[tid] = p.sv[h];
        vc[tid] = cv;
        vce[tid] = ce;
        vd[tid] = p.dsv[h];
        vex[tid] = p.ev[h];
        vel[tid] = expf(sbc_dcs(p.csv[hl], p.cse[hl], cv, ce));
    }
    // <G_{c+1}, S_c> from global memory (times e^{cs_last}: the derivative of S_{c+1} through
    // its e^{cs_last} S_c term).
    // (The tensor-core kernels: from the shared copies, after the barrier.)
    if constexpr (TCM == 0) {
        float gsn = 0.f;
        const float4* g1 = reinterpret_cast<const float4*>(p.G + ix.g(i, j, c));
        const float4* s1 = reinterpret_cast<const float4*>(p.S + ix.s(i, j, c));
        for (int e = tid; e < P * N / 4; e += nt) {
            const float4 a = g1[e], b = s1[e];
            gsn = fmaf(a.x, b.x, fmaf(a.y, b.y, fmaf(a.z, b.z, fmaf(a.w, b.w, gsn))));
        }
        for (int o = 16; o > 0; o >>= 1) gsn += __shfl_xor_sync(0xffffffffu, gsn, o);
        if ((tid & 31) == 0) red[tid >> 5] = gsn;
    } else {
        // Each thread's own copies (complete after its wait): <G, S> from them, then (MODE 1)
        // rounded to tf32 in place (mma operands only from here on).
        sbc_cp_wait();
        float gsn = 0.f;
        for (int e = tid; e < P * N / 4; e += nt) {
            const int r = (4 * e) / N, n = 4 * e - r * N;
            float4* ga = reinterpret_cast<float4*>(gsm + r * LN + n);
            float4* sa = reinterpret_cast<float4*>(sg + r * LN + n);
            const float4 a = *ga, b = *sa;
            gsn = fmaf(a.x, b.x, fmaf(a.y, b.y, fmaf(a.z, b.z, fmaf(a.w, b.w, gsn))));
            if (TCM == 1) {
                *ga = make_float4(rnd(a.x), rnd(a.y), rnd(a.z), rnd(a.w));
                *sa = make_float4(rnd(b.x), rnd(b.y), rnd(b.z), rnd(b.w));
            }
        }
        for (int o = 16; o > 0; o >>= 1) gsn += __shfl_xor_sync(0xffffffffu, gsn, o);
        if ((tid & 31) == 0) red[tid >> 5] = gsn;
    }
    __syncthreads();
    // C B^T, dy x^T, S_c C_t, e^{cs_t} S_c^T dy_t.
    if (hh == 0) sbc_prod<TCM, 2, QQN, 3 | X16>(Q, Q, N, ct, LN, 1, bs, 1, LN, nullptr, [&](int m, int n, float v) { cbr[m * Q1 + n] = v; });
    sbc_prod<TCM, 2, QQN, 3 | (X16 & 8)>(Q, Q, P, TCM ? dyr : dys, LP, 1, xs, 1, LP, nullptr, [&](int m, int n, float v) { yx[m * Q1 + n] = v; }, T2 ? 2 : 4);
    sbc_prod<TCM, 2, QPN, 3 | (X16 & 4)>(Q, P, N, ct, LN, 1, sg, 1, LN, nullptr, [&](int m, int n, float v) { sc[m * P + n] = v; }, T2 ? 4 : 8);
    sbc_prod<TCM, QNM, 4, 1>(Q, N, P, TCM ? dyr : dys, LP, 1, sg, LN, 1, nullptr, [&](int m, int n, float v) { dcm[m * N + n] += vex[m] * v; }, T2 ? 8 : 0);
    __syncthreads();  // sg (S_c) is read
    if constexpr (TCM == 0) load_pn(p.G + ix.g(i, j, c));
    // Mx = E o CB, Mb = E o YX, W = E o CB o s_s o YX (E_ts = e^{cs_t - cs_s}, s <= t).
    for (int e = tid; e < Q * Q; e += nt) {
        const int t = e / Q, s = e - t * Q;
        // With cs's remainders for f32 storage only (as `sbl_dcs`).
        const float em = s <= t ? expf(sizeof(T) == 4 ? sbc_dcs(vc[t], vce[t], vc[s], vce[s]) : vc[t] - vc[s]) : 0.f;
        const float mx = em * cbr[t * Q1 + s], y = yx[t * Q1 + s];
        wm[t * QW + s] = mx * vs[s] * y;
        cb[t * Q1 + s] = rnd(mx);
        yx[t * Q1 + s] = rnd(em * y);
        if constexpr (TCM != 0) {
            // The operands of (Mx diag(s)) x and (Mb diag(s)) B.
            cbs[t * Q1 + s] = rnd(mx * vs[s]);
            yxs[t * Q1 + s] = rnd(em * y * vs[s]);
        }
    }
    __syncthreads();
    // e^{cs_last - cs_s} G_{c+1} B_s, e^{cs_last - cs_s} G_{c+1}^T x_s.
    sbc_prod<TCM, 2, QPN, 3 | (X16 & 4)>(Q, P, N, bs, LN, 1, gsm, 1, LN, nullptr, [&](int m, int n, float v) { gb[m * P + n] = vel[m] * v; }, 0, T2 ? 16 : 8);
    sbc_prod<TCM, QNM, 4, 1 | (X16 & 4)>(Q, N, P, xs, LP, 1, gsm, LN, 1, nullptr, [&](int m, int n, float v) { dbm[m * N + n] += vs[m] * vel[m] * v; }, T2 ? 4 : 8, T2 ? 16 : 8);
    __syncthreads();
    // da_u = dL/da_u in a form without cancellation (the sums of dL/dcs_t over t >= u, with the
    // terms that cancel taken out):
    //   da_u = sum_{t >= u} e^{cs_t} dy_t . S_c C_t + e^{cs_last} <G_{c+1}, S_c>
    //          + sum_{t < u} s_t e^{cs_last - cs_t} x_t . G_{c+1} B_t + sum_{t >= u} sum_{s < u} W_ts.
    // First q_t and r_t (the two dot products), eight threads per step.
    float* vq = vdcs;     // [Q] q_t, then da
    float* vr = vel + Q;  // [Q] r_t
    float* vx = red + 32;  // [Q] R_t (see below; red[32..] is free until the d dt step)
    {
        // q_t, r_t, and the rectangle R_t = sum_{t2 >= t, s < t} W_{t2 s}: eight threads per step.
        const int t = tid >> 3, r = tid & 7;
        float d1 = 0.f, d2 = 0.f, d3 = 0.f, rr = 0.f;
        if (t < Q) {
            for (int q = r; q < P; q += 8) {
                const float dv = dys[t * LP + q], xv = xs[t * LP + q];
                d1 = fmaf(dv, sc[t * P + q], d1);
                d2 = fmaf(xv, gb[t * P + q], d2);
                d3 = fmaf(dv, xv, d3);
            }
            for (int t2 = t + r; t2 < Q; t2 += 8)
                for (int s2 = 0; s2 < t; ++s2) rr += wm[t2 * QW + s2];
        }
        for (int o = 4; o > 0; o >>= 1) {
            d1 += __shfl_xor_sync(0xffffffffu, d1, o);
            d2 += __shfl_xor_sync(0xffffffffu, d2, o);
            rr += __shfl_xor_sync(0xffffffffu, rr, o);
        }
        // dy_t . x_t summed over the warp's four steps (dD with D per head).
        d3 += __shfl_xor_sync(0xffffffffu, d3, 1);
        d3 += __shfl_xor_sync(0xffffffffu, d3, 2);
        d3 += __shfl_xor_sync(0xffffffffu, d3, 4);
        d3 += __shfl_xor_sync(0xffffffffu, d3, 8);
        d3 += __shfl_xor_sync(0xffffffffu, d3, 16);
        if ((tid & 31) == 0 && tid < 8 * Q) red[16 + (tid >> 5)] = d3;
        if (t < Q && r == 0) {
            vq[t] = vex[t] * d1;
            vr[t] = vs[t] * d2;
            vx[t] = rr;
        }
    }
    __syncthreads();
    // da_u by scans over the chunk (one warp, lane u): sum_{t >= u} q_t, sum_{t < u} r_t, and the
    // rectangle R_u = sum_{t >= u, s < u} W_ts as summed above. (R_u as the prefix sum of b_v - a_v,
    // a_v = sum_{s < v} W_vs and b_v = sum_{t > v} W_tv, telescopes: with strong decays W sits
    // beside the diagonal and each W_{v+1,v} enters b_v and a_{v+1} rounded in different
    // company; dA came out up to 1.7e-5 from f64 on the golden ssd_05's ranges, ~1e-6 now. The
    // 64-step kernels' `sbl_rect_*` are the same change, fifty-seventh session.)
    if (tid < 32) {
        const int u = tid;
        float qs = vq[u], rp = vr[u];
        // Inclusive prefix sums of r, inclusive suffix sums of q.
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float rv = __shfl_sync(0xffffffffu, rp, u >= o ? u - o : u);
            const float qv = __shfl_sync(0xffffffffu, qs, u + o < 32 ? u + o : u);
            if (u >= o) rp += rv;
            if (u + o < 32) qs += qv;
        }
        // Exclusive prefix: the previous lane's inclusive one.
        float re = __shfl_sync(0xffffffffu, rp, u ? u - 1 : 0);
        if (u == 0) re = 0.f;
        const float xe = vx[u];
        float g = 0.f;
        for (int w = 0; w < (nt + 31) / 32; ++w) g += red[w];
        vq[u] = qs + re + xe + vex[Q - 1] * g;
        // dD with D per head: one atomic per head and block.
        if (p.dD && !p.d_per_channel) {
            float dd = u < Q / 4 ? red[16 + u] : 0.f;
            for (int o = 4; o > 0; o >>= 1) dd += __shfl_xor_sync(0xffffffffu, dd, o);
            if (u == 0) atomicAdd(p.dD + j, dd);
        }
    }
    __syncthreads();
    const bool dpc = p.d_per_channel != 0;
    // y (for dz) = (Mx diag(s)) x + e^{cs_t} S_c C_t + D x, and dD.
    if (p.z) {
        sbc_prod<TCM, 2, QPN, 1 | (X16 & 8)>(Q, P, Q, TCM ? cbs : cb, Q1, 1, xs, LP, 1, TCM ? nullptr : vs, [&](int t, int q, float v) {
            if (t0 + t < ix.L) {
                const float dv = p.D ? (dpc ? p.D[j * P + q] : p.D[j]) : 0.f;
                const float y = v + vex[t] * sc[t * P + q] + dv * xs[t * LP + q];
                const size_t o = ix.y(i, t0 + t, j, q);
                if constexpr (TCM != 0) {
                    static_cast<T*>(p.dz)[o] = cvt<T>(fzs[t * P + q] * y);
                } else {
                    const float zv = ldf(static_cast<const T*>(p.z) + o), go = ldf(static_cast<const T*>(p.dout) + o);
                    const float sgm = 1.f / (1.f + expf(-zv));
                    static_cast<T*>(p.dz)[o] = cvt<T>(go * y * sgm * (1.f + zv * (1.f - sgm)));
                }
            }
        });
    }
    // dD: with D per head, one atomic per head and block (the scan above); per channel, a
    // thread per column q sums over the chunk, one atomic per column. (Atomics per element or
    // per warp of all the block's threads to the head's one address queued behind each other:
    // ~0.13 ms at the LM shape.)
    if (p.dD && dpc && tid < P) {
        float v = 0.f;
#pragma unroll 8
        for (int t = 0; t < Q; ++t) v = fmaf(dys[t * LP + tid], xs[t * LP + tid], v);
        if (v != 0.f) atomicAdd(p.dD + j * P + tid, v);
    }
    // dxh = Mx^T dy + gb (into gb), dx = s dxh + D dy.
    sbc_prod<TCM, 2, QPN>(Q, P, Q, cb, 1, Q1, TCM ? dyr : dys, LP, 1, nullptr, [&](int s, int q, float v) {
        const float h = v + gb[s * P + q];
        gb[s * P + q] = h;
        if (t0 + s < ix.L) {
            const float dv = p.D ? (dpc ? p.D[j * P + q] : p.D[j]) : 0.f;
            static_cast<T*>(p.dx)[ix.dx(i, t0 + s, j, q)] = cvt<T>(fmaf(vs[s], h, dv * dys[s * LP + q]));
        }
    }, T2 ? 4 : 8);
    // dB = diag(s) (Mb^T C + dbm) (into dbm); dC = (Mb diag(s)) B + dcm (into dcm).
    sbc_prod<TCM, QNM, 4, X16 & 8>(Q, N, Q, yx, 1, Q1, ct, LN, 1, nullptr, [&](int s, int n, float v) { dbm[s * N + n] += vs[s] * v; }, T2 ? 8 : 0);
    sbc_prod<TCM, QNM, 4, 1 | (X16 & 8)>(Q, N, Q, TCM ? yxs : yx, Q1, 1, bs, LN, 1, TCM ? nullptr : vs, [&](int t, int n, float v) { dcm[t * N + n] += v; });
    __syncthreads();
    // After the last head: dB, dC into the accumulators (issued before the last head's d dt,
    // which they overlap; at the block's end they kept the next block waiting: +0.26 ms at the
    // LM shape with one head per block).
    if (hh == hpb - 1) {
        for (int e = tid; e < Q * N / 4; e += nt) {
            const int s = (4 * e) / N, n = 4 * e - s * N, t = t0 + s;
            if (t < ix.L) {
                const size_t o = ix.acc(i, t, k, n);
                atomicAdd(reinterpret_cast<float4*>(p.dB + o), *reinterpret_cast<const float4*>(dbm + 4 * e));
                atomicAdd(reinterpret_cast<float4*>(p.dC + o), *reinterpret_cast<const float4*>(dcm + 4 * e));
            }
        }
    }
    // d dt, dA, d dt_bias: eight threads per step; da by a suffix scan over the warp.
    {
        const int s = tid >> 3, r = tid & 7;
        float dsd = 0.f;
        if (s < Q)
            for (int q = r; q < P; q += 8) dsd = fmaf(xs[s * LP + q], gb[s * P + q], dsd);
        for (int o = 4; o > 0; o >>= 1) dsd += __shfl_xor_sync(0xffffffffu, dsd, o);
        if (s < Q && r == 0) red[32 + s] = dsd;
    }
    __syncthreads();
    if (tid < Q) {
        const int s = tid, t = t0 + s;
        const float a = vdcs[s];  // da_s
        const float dstep = red[32 + s] + p.A[j] * a;
        float da = vs[s] * a;
        float draw = dstep * vd[s];
        if (t < ix.L) static_cast<T*>(p.ddt)[ix.ddt(i, t, j)] = cvt<T>(draw);
        else da = draw = 0.f;
        for (int o = 16; o > 0; o >>= 1) {
            da += __shfl_xor_sync(0xffffffffu, da, o);
            draw += __shfl_xor_sync(0xffffffffu, draw, o);
        }
        if (s == 0) {
            atomicAdd(p.dA + j, da);
            if (p.ddt_bias) atomicAdd(p.ddt_bias + j, draw);
        }
    }
    if (hh + 1 < hpb) __syncthreads();  // the head's buffers are read: the next head stages into them
    }
}

// Entries: the generic kernels (P, N from the parameters) and, suffix `_p64n128` /
// `_p64n64`, the same with P and N fixed (the walk kernels then have 256 / 128 threads).
#define SBC_SHAPE(T, SFX, PC, NC)                                                                                 \
    extern "C" __global__ void __launch_bounds__((PC / 4) * (NC / 8), 512 / ((PC / 4) * (NC / 8))) ssdbc_states_##SFX##_p##PC##n##NC(const __grid_constant__ SsdbcParams p) { \
        sbc_walk<T, true, PC, NC>(p);                                                                             \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__((PC / 4) * (NC / 8), 512 / ((PC / 4) * (NC / 8))) ssdbc_gstates_##SFX##_p##PC##n##NC(const __grid_constant__ SsdbcParams p) { \
        sbc_walk<T, false, PC, NC>(p);                                                                            \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 3) ssdbc_walks_##SFX##_p##PC##n##NC##_tc(const __grid_constant__ SsdbcParams p) { \
        if (blockIdx.z == 0) sbc_walk_tc<T, true, PC, NC, 1>(p);                                                 \
        else sbc_walk_tc<T, false, PC, NC, 1>(p);                                                                \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 2) ssdbc_walks_##SFX##_p##PC##n##NC##_tc3(const __grid_constant__ SsdbcParams p) { \
        if (blockIdx.z == 0) sbc_walk_tc<T, true, PC, NC, 3>(p);                                                 \
        else sbc_walk_tc<T, false, PC, NC, 3>(p);                                                                \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 3) ssdbc_states_##SFX##_p##PC##n##NC##_tc(const __grid_constant__ SsdbcParams p) { \
        sbc_walk_tc<T, true, PC, NC, 1>(p);                                                                       \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 3) ssdbc_gstates_##SFX##_p##PC##n##NC##_tc(const __grid_constant__ SsdbcParams p) { \
        sbc_walk_tc<T, false, PC, NC, 1>(p);                                                                      \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 2) ssdbc_states_##SFX##_p##PC##n##NC##_tc3(const __grid_constant__ SsdbcParams p) { \
        sbc_walk_tc<T, true, PC, NC, 3>(p);                                                                       \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 2) ssdbc_gstates_##SFX##_p##PC##n##NC##_tc3(const __grid_constant__ SsdbcParams p) { \
        sbc_walk_tc<T, false, PC, NC, 3>(p);                                                                      \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(SBC_NT, 1) ssdbc_chunk_##SFX##_p##PC##n##NC(const __grid_constant__ SsdbcParams p) { \
        sbc_chunk<T, PC, NC>(p);                                                                                  \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(512, 1) ssdbc_chunk_##SFX##_p##PC##n##NC##_w(const __grid_constant__ SsdbcParams p) { \
        sbc_chunk<T, PC, NC, 512>(p);                                                                             \
    } \
    extern "C" __global__ void __launch_bounds__(512, 1) ssdbc_chunk_##SFX##_p##PC##n##NC##_tc(const __grid_constant__ SsdbcParams p) { \
        sbc_chunk<T, PC, NC, 512, 1>(p);                                                                          \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(512, 1) ssdbc_chunk_##SFX##_p##PC##n##NC##_tc3(const __grid_constant__ SsdbcParams p) { \
        sbc_chunk<T, PC, NC, 512, 3>(p);                                                                          \
    }
#define SBC_KERNELS(T, SFX)                                                                                       \
    extern "C" __global__ void __launch_bounds__(32) ssdbc_prep_##SFX(const __grid_constant__ SsdbcParams p) {    \
        sbc_prep<T>(p);                                                                                           \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(SBC_NT) ssdbc_states_##SFX(const __grid_constant__ SsdbcParams p) { \
        sbc_walk<T, true, 0, 0>(p);                                                                               \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(SBC_NT) ssdbc_gstates_##SFX(const __grid_constant__ SsdbcParams p) { \
        sbc_walk<T, false, 0, 0>(p);                                                                              \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(SBC_NT, 1) ssdbc_chunk_##SFX(const __grid_constant__ SsdbcParams p) { \
        sbc_chunk<T, 0, 0>(p);                                                                                    \
    }                                                                                                             \
    SBC_SHAPE(T, SFX, 64, 128)                                                                                    \
    SBC_SHAPE(T, SFX, 64, 64)

SBC_KERNELS(float, f32)
#ifndef MAMBA_EMU
SBC_KERNELS(bf16_t, bf16)
SBC_KERNELS(f16_t, f16)
#endif
#include "ssd_bwdl.cuh"
