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

template <typename T, int S>
__device__ void scan1_fwd(const Scan1Params& p) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int G = p.G, CB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int NP = G * S, NPAD = NP + 4;
    const int nthreads = blockDim.x;
    const bool b_var = p.b_groups > 0, c_var = p.c_groups > 0;
    const bool has_z = p.z != nullptr;
    const bool async = p.async_copy != 0;
    // Shared memory: f32 working tiles, then two stages of raw tiles.
    float* s_dt = reinterpret_cast<float*>(smem_raw);
    float* s_du = s_dt + round4(CB * (TT + 1));
    float* s_B = s_du + round4(CB * (TT + 1));
    float* s_C = s_B + TT * NPAD;
    float* s_y = s_C + TT * NPAD;
    unsigned char* base = reinterpret_cast<unsigned char*>(s_y + round4(CB * G * (TT + 1)));
    const int rowb = align16(CB * TT * (int)sizeof(T));
    const int bcb = align16(NP * TT * (int)sizeof(T));
    const int stage = 3 * rowb + 2 * bcb;
    auto ru = [&](int b) { return reinterpret_cast<T*>(base + b * stage); };
    auto rd = [&](int b) { return reinterpret_cast<T*>(base + b * stage + rowb); };
    auto rz = [&](int b) { return reinterpret_cast<T*>(base + b * stage + 2 * rowb); };
    auto rB = [&](int b) { return reinterpret_cast<T*>(base + b * stage + 3 * rowb); };
    auto rC = [&](int b) { return reinterpret_cast<T*>(base + b * stage + 3 * rowb + bcb); };

    const int seg_id = blockIdx.x / p.blocks_per_seg;
    const int blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CB;
    const int cn = min(CB, (seg_id + 1) * p.seg - c0);
    const int i = blockIdx.y;
    const int tid = threadIdx.x;
    const int cl = tid / G, g = tid % G;
    const int c = c0 + cl;
    const bool active = cl < cn;

    const T* u = static_cast<const T*>(p.u);
    const T* delta = static_cast<const T*>(p.delta);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);

    // Base of this block's B/C rows (varying layouts): (i, group, n, t).
    size_t b_base = 0, c_base = 0;
    if (b_var) b_base = ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L;
    if (c_var) c_base = ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L;

    // Stage a tile's raw rows: one warp per row, lanes along time.
    const int warp = tid / 32, lane = tid % 32, nwarps = nthreads / 32;
    auto stage_tile = [&](int t0, int b) {
        const int tn = min(TT, L - t0);
        const int nrow_io = has_z ? 3 * cn : 2 * cn;
        const int nb = b_var ? N : 0, nc = c_var ? N : 0;
        for (int r = warp; r < nrow_io + nb + nc; r += nwarps) {
            if (r < nrow_io) {
                const int which = r / cn, cl2 = r % cn;
                const size_t off = ((size_t)i * dim + c0 + cl2) * L + t0;
                const T* src = which == 0 ? u + off : which == 1 ? delta + off : zp + off;
                T* dst = (which == 0 ? ru(b) : which == 1 ? rd(b) : rz(b)) + cl2 * TT;
                copy_row(dst, src, tn, lane, 32, async);
            } else if (r < nrow_io + nb) {
                const int n = r - nrow_io;
                copy_row(rB(b) + n * TT, Bp + b_base + (size_t)n * L + t0, tn, lane, 32, async);
            } else {
                const int n = r - nrow_io - nb;
                copy_row(rC(b) + n * TT, Cp + c_base + (size_t)n * L + t0, tn, lane, 32, async);
            }
        }
        cp_async_commit();
    };

    float h[S], a2[S], bsh[S], csh[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g * S + s;
        const bool ok = active && n < N;
        h[s] = (ok && p.h0) ? p.h0[((size_t)i * dim + c) * N + n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
        bsh[s] = (ok && !b_var) ? ldf(Bp + (size_t)c * N + n) : 0.f;
        csh[s] = (ok && !c_var) ? ldf(Cp + (size_t)c * N + n) : 0.f;
    }

    stage_tile(0, 0);
    int buf = 0;
    for (int t0 = 0; t0 < L; t0 += TT, buf ^= 1) {
        const int tn = min(TT, L - t0);
        const bool more = t0 + TT < L;
        if (more) stage_tile(t0 + TT, buf ^ 1);  // in flight while this tile computes
        if (more) cp_async_wait<1>();
        else cp_async_wait<0>();
        __syncthreads();
        // Prepare: dt and dt*u per (channel, step); B and C transposed to [t][n] in f32.
        for (int idx = tid; idx < CB * TT; idx += nthreads) {
            const int cl2 = idx / TT, t = idx % TT;
            float dt = 0.f, du = 0.f;
            if (cl2 < cn && t < tn) {
                dt = ldf(rd(buf) + cl2 * TT + t) + (p.delta_bias ? p.delta_bias[c0 + cl2] : 0.f);
                if (p.softplus) dt = softplus_f(dt);
                du = dt * ldf(ru(buf) + cl2 * TT + t);
            }
            s_dt[cl2 * (TT + 1) + t] = dt;
            s_du[cl2 * (TT + 1) + t] = du;
        }
        if (b_var) {
            for (int idx = tid; idx < TT * NP; idx += nthreads) {
                const int n = idx / TT, t = idx % TT;
                s_B[t * NPAD + n] = (n < N && t < tn) ? ldf(rB(buf) + n * TT + t) : 0.f;
            }
        }
        if (c_var) {
            for (int idx = tid; idx < TT * NP; idx += nthreads) {
                const int n = idx / TT, t = idx % TT;
                s_C[t * NPAD + n] = (n < N && t < tn) ? ldf(rC(buf) + n * TT + t) : 0.f;
            }
        }
        __syncthreads();
        if (active) {
            // Unrolled so that the exponentials of later steps overlap the recurrence.
#pragma unroll(S >= 8 ? 2 : 8)
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
                    h[s] = exp2f(dt * a2[s]) * h[s] + du * bv[s];
                    y += cv[s] * h[s];
                }
                s_y[(cl * G + g) * (TT + 1) + t] = y;
            }
        }
        __syncthreads();
        for (int idx = tid; idx < CB * TT; idx += nthreads) {
            const int cl2 = idx / TT, t = idx % TT;
            if (cl2 < cn && t < tn) {
                const int ch = c0 + cl2;
                float y0 = 0.f, y1 = 0.f;
                const float* row = s_y + (size_t)cl2 * G * (TT + 1) + t;
                int gg = 0;
                for (; gg + 1 < G; gg += 2) {
                    y0 += row[gg * (TT + 1)];
                    y1 += row[(gg + 1) * (TT + 1)];
                }
                if (gg < G) y0 += row[gg * (TT + 1)];
                float y = y0 + y1;
                if (p.D) y += p.D[ch] * ldf(ru(buf) + cl2 * TT + t);
                if (has_z) y *= silu_f(ldf(rz(buf) + cl2 * TT + t));
                out[((size_t)i * dim + ch) * L + t0 + t] = cvt<T>(y);
            }
        }
        __syncthreads();
    }
    if (p.hlast && active) {
#pragma unroll
        for (int s = 0; s < S; ++s) {
            const int n = g * S + s;
            if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = h[s];
        }
    }
}

#define SCAN1_INST(T, NAME, S)                                                              \
    extern "C" __global__ void __launch_bounds__(256, 1) scan1_fwd_##NAME##_s##S(const __grid_constant__ Scan1Params p) { \
        scan1_fwd<T, S>(p);                                                                 \
    }

#define SCAN1_ALL(T, NAME) SCAN1_INST(T, NAME, 1) SCAN1_INST(T, NAME, 2) SCAN1_INST(T, NAME, 4) SCAN1_INST(T, NAME, 8) SCAN1_INST(T, NAME, 16)

SCAN1_ALL(float, f32)
SCAN1_ALL(bf16_t, bf16)
SCAN1_ALL(f16_t, f16)
