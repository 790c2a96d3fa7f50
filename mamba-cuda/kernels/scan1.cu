// SPEC 1: the Mamba-1 selective scan, forward.
//
// A block owns one batch row and `cb` channels of one "segment" (a run of channels
// whose B and C groups are the same). Each channel is served by G threads, each
// holding S of its N states in registers. Time advances in tiles of TT steps: the
// block stages dt, dt*u and the B/C columns of the tile in shared memory (coalesced
// along time), every thread runs its S recurrences over the tile and leaves one
// partial output per step, and the block then sums the G partials, adds D*u, applies
// the gate and writes the tile (coalesced along time).
#include "common.cuh"

#define TT 32

template <int S>
__device__ __forceinline__ void lds_vec(float (&dst)[S], const float* src) {
    if constexpr (S % 4 == 0) {
#pragma unroll
        for (int s = 0; s < S; s += 4) {
            float4 v = *reinterpret_cast<const float4*>(src + s);
            dst[s] = v.x; dst[s + 1] = v.y; dst[s + 2] = v.z; dst[s + 3] = v.w;
        }
    } else if constexpr (S % 2 == 0) {
#pragma unroll
        for (int s = 0; s < S; s += 2) {
            float2 v = *reinterpret_cast<const float2*>(src + s);
            dst[s] = v.x; dst[s + 1] = v.y;
        }
    } else {
#pragma unroll
        for (int s = 0; s < S; ++s) dst[s] = src[s];
    }
}

__host__ __device__ constexpr int round4(int v) { return (v + 3) & ~3; }
__host__ __device__ constexpr int align16(int bytes) { return (bytes + 15) & ~15; }

__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Copies `n` elements of a row: 4-byte async copies when aligned (`async`), else plainly.
template <typename T>
__device__ __forceinline__ void copy_row(T* dst, const T* src, int n, int lane, int lanes, bool async) {
    if (async) {
        constexpr int PER = 4 / sizeof(T);
        for (int e = lane * PER; e < n; e += lanes * PER) cp_async4(dst + e, src + e);
    } else {
        for (int e = lane; e < n; e += lanes) dst[e] = src[e];
    }
}

// 2^x with one MUFU instruction (max relative error 2^-22, well inside the SPEC's
// tolerances; the library exp2f adds range handling that costs several instructions).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// MODE 0: the scan with outputs, from the initial state (or, when the sequence is split
// in time chunks, from the chunk's incoming state). MODE 1: a chunk's local final state
// from zero, and the sum of its steps (its decay is exp(A * sum dt)).
// LITE: half the unrolling (fewer registers, so three blocks fit on an SM).
template <typename T, int S, int MODE, bool LITE>
__device__ void scan1_fwd(const Scan1Params& p) {
    extern __shared__ __align__(16) float smem[];
    const int G = p.G, CB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int NP = G * S, NPAD = NP + 4;
    const int nthreads = blockDim.x;
    const bool b_var = p.b_groups > 0, c_var = MODE == 0 && p.c_groups > 0;
    const int K = p.nchunks, kc = blockIdx.z;
    const int t_begin = kc * p.chunk_len, t_end = min(L, t_begin + p.chunk_len);
    float* s_dt = smem;
    float* s_du = s_dt + round4(CB * (TT + 1));
    float* s_B = s_du + round4(CB * (TT + 1));
    float* s_C = s_B + TT * NPAD;
    float* s_y = s_C + TT * NPAD;
    float* s_u = s_y + round4(CB * G * (TT + 1));  // raw u and z, for the output phase
    float* s_z = s_u + round4(CB * (TT + 1));

    const int seg_id = blockIdx.x / p.blocks_per_seg;
    const int blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CB;
    const int cn = min(CB, (seg_id + 1) * p.seg - c0);
    const int i = blockIdx.y;
    const int tid = threadIdx.x;
    const int cl = tid / G, g = tid % G;
    const int c = c0 + cl;
    const bool active = cl < cn;

    const T* u = static_cast<const T*>(p.u) + ((size_t)i * dim + c0) * L;
    const T* delta = static_cast<const T*>(p.delta) + ((size_t)i * dim + c0) * L;
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = p.z ? static_cast<const T*>(p.z) + ((size_t)i * dim + c0) * L : nullptr;
    T* out = static_cast<T*>(p.out) + ((size_t)i * dim + c0) * L;

    // This block's B/C rows (varying layouts): (i, group, n, t).
    const T* brow = b_var ? Bp + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L : nullptr;
    const T* crow = c_var ? Cp + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L : nullptr;

    float h[S], a2[S], bsh[S], csh[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g * S + s;
        const bool ok = active && n < N;
        const float* h0 = nullptr;
        if (MODE == 0) h0 = K > 1 ? p.chunk_states + (((size_t)i * dim + c) * K + kc) * N : p.h0 ? p.h0 + ((size_t)i * dim + c) * N : nullptr;
        h[s] = (ok && h0) ? h0[n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
        bsh[s] = (ok && !b_var) ? ldf(Bp + (size_t)c * N + n) : 0.f;
        csh[s] = (ok && MODE == 0 && p.c_groups == 0) ? ldf(Cp + (size_t)c * N + n) : 0.f;
    }

    float dtsum = 0.f;
    // Rows of the tile: warp w takes rows w, w + nwarps, ...; lanes run along time.
    const int warp = tid >> 5, lane = tid & 31, nwarps = (nthreads + 31) >> 5;
    for (int t0 = t_begin; t0 < t_end; t0 += TT) {
        const int tn = min(TT, t_end - t0);
        const bool in_t = lane < tn;
        // dt and dt*u per (channel, step); the loads of a warp are one 128-byte line.
#pragma unroll(LITE ? 4 : 8)
        for (int r = warp; r < CB; r += nwarps) {
            float dt = 0.f, uv = 0.f, zv = 0.f;
            if (r < cn && in_t) {
                const size_t off = (size_t)r * L + t0 + lane;
                dt = ldf(delta + off) + (p.delta_bias ? p.delta_bias[c0 + r] : 0.f);
                uv = ldf(u + off);
                if (MODE == 0 && zp) zv = ldf(zp + off);
                if (p.softplus) dt = softplus_f(dt);
            }
            s_dt[r * (TT + 1) + lane] = dt;
            s_du[r * (TT + 1) + lane] = dt * uv;
            if (MODE == 0) {
                s_u[r * (TT + 1) + lane] = uv;
                s_z[r * (TT + 1) + lane] = zv;
            }
        }
        if (b_var) {
#pragma unroll(LITE ? 2 : 8)
            for (int n = warp; n < NP; n += nwarps)
                s_B[lane * NPAD + n] = (n < N && in_t) ? ldf(brow + (size_t)n * L + t0 + lane) : 0.f;
        }
        if (c_var) {
#pragma unroll(LITE ? 2 : 8)
            for (int n = warp; n < NP; n += nwarps)
                s_C[lane * NPAD + n] = (n < N && in_t) ? ldf(crow + (size_t)n * L + t0 + lane) : 0.f;
        }
        __syncthreads();
        if (active) {
            // Unrolled so that the exponentials of later steps overlap the recurrence.
#pragma unroll(S >= 8 ? 2 : (LITE ? 4 : 8))
            for (int t = 0; t < tn; ++t) {
                const float dt = s_dt[cl * (TT + 1) + t];
                const float du = s_du[cl * (TT + 1) + t];
                float bv[S], cv[S];
                if (b_var) lds_vec<S>(bv, s_B + t * NPAD + g * S);
                else {
#pragma unroll
                    for (int s = 0; s < S; ++s) bv[s] = bsh[s];
                }
                if (c_var) lds_vec<S>(cv, s_C + t * NPAD + g * S);
                else {
#pragma unroll
                    for (int s = 0; s < S; ++s) cv[s] = csh[s];
                }
                float y = 0.f;
#pragma unroll
                for (int s = 0; s < S; ++s) {
                    h[s] = fmaf(fast_exp2(dt * a2[s]), h[s], du * bv[s]);
                    y = fmaf(cv[s], h[s], y);
                }
                if (MODE == 0) s_y[(cl * G + g) * (TT + 1) + t] = y;
                else dtsum += dt;
            }
        }
        __syncthreads();
        if (MODE == 0) {
            for (int r = warp; r < cn; r += nwarps) {
                if (!in_t) continue;
                const float* row = s_y + (size_t)r * G * (TT + 1) + lane;
                float y0 = 0.f, y1 = 0.f;
                int gg = 0;
                for (; gg + 1 < G; gg += 2) {
                    y0 += row[gg * (TT + 1)];
                    y1 += row[(gg + 1) * (TT + 1)];
                }
                if (gg < G) y0 += row[gg * (TT + 1)];
                float y = y0 + y1;
                const size_t off = (size_t)r * L + t0 + lane;
                if (p.D) y += p.D[c0 + r] * s_u[r * (TT + 1) + lane];
                if (zp) y *= silu_f(s_z[r * (TT + 1) + lane]);
                out[off] = cvt<T>(y);
            }
            __syncthreads();
        }
    }
    float* dst = nullptr;
    if (MODE == 1) dst = p.chunk_states + (((size_t)i * dim + c) * K + kc) * N;
    else if (K == 1 && p.hlast) dst = p.hlast + ((size_t)i * dim + c) * N;
    if (dst && active) {
#pragma unroll
        for (int s = 0; s < S; ++s) {
            const int n = g * S + s;
            if (n < N) dst[n] = h[s];
        }
    }
    if (MODE == 1 && active && g == 0) p.chunk_dtsum[((size_t)i * dim + c) * K + kc] = dtsum;
}

// Passes states across time chunks: chunk_states holds each chunk's local final state on
// entry and each chunk's incoming state on exit; the last state goes to hlast.
extern "C" __global__ void scan1_combine(const __grid_constant__ Scan1Params p) {
    const int N = p.dstate, K = p.nchunks;
    const size_t total = (size_t)p.batch * p.dim * N;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t row = idx / N;  // (i, c)
        const int n = (int)(idx % N);
        const int c = (int)(row % p.dim);
        const float a = p.A[(size_t)c * N + n];
        float S = p.h0 ? p.h0[idx] : 0.f;
        // Eight chunks at a time: their loads are in flight together.
        for (int k0 = 0; k0 < K; k0 += 8) {
            float loc[8], dts[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int k = k0 + e;
                loc[e] = k < K ? p.chunk_states[(row * K + k) * N + n] : 0.f;
                dts[e] = k < K ? p.chunk_dtsum[row * K + k] : 0.f;
            }
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int k = k0 + e;
                if (k < K) {
                    p.chunk_states[(row * K + k) * N + n] = S;
                    S = __expf(a * dts[e]) * S + loc[e];
                }
            }
        }
        if (p.hlast) p.hlast[idx] = S;
    }
}

#define SCAN1_INST(T, NAME, S)                                                                                        \
    extern "C" __global__ void __launch_bounds__(256, 2) scan1_fwd_##NAME##_s##S(const __grid_constant__ Scan1Params p) {    \
        scan1_fwd<T, S, 0, false>(p);                                                                                     \
    }                                                                                                                     \
    extern "C" __global__ void __launch_bounds__(256, 2) scan1_states_##NAME##_s##S(const __grid_constant__ Scan1Params p) { \
        scan1_fwd<T, S, 1, false>(p);                                                                                     \
    }
#define SCAN1_LITE(T, NAME, S)                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 3) scan1_fwd_##NAME##_s##S##_lite(const __grid_constant__ Scan1Params p) {    \
        scan1_fwd<T, S, 0, true>(p);                                                                                           \
    }                                                                                                                          \
    extern "C" __global__ void __launch_bounds__(256, 3) scan1_states_##NAME##_s##S##_lite(const __grid_constant__ Scan1Params p) { \
        scan1_fwd<T, S, 1, true>(p);                                                                                           \
    }

#define SCAN1_ALL(T, NAME) SCAN1_INST(T, NAME, 1) SCAN1_INST(T, NAME, 2) SCAN1_INST(T, NAME, 4) SCAN1_INST(T, NAME, 8) SCAN1_INST(T, NAME, 16) \
    SCAN1_LITE(T, NAME, 2) SCAN1_LITE(T, NAME, 4)

SCAN1_ALL(float, f32)
SCAN1_ALL(bf16_t, bf16)
SCAN1_ALL(f16_t, f16)
