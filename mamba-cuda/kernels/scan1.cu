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

#ifndef DYN_SMEM
#define DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif

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

// 2^x with one MUFU instruction (max relative error 2^-22, well inside the SPEC's
// tolerances; the library exp2f adds range handling that costs several instructions).
__device__ __forceinline__ float fast_exp2(float x) {
#ifdef MAMBA_EMU
    return exp2f(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// Four consecutive elements as floats (16 bytes of f32, 8 of bf16/f16; p aligned to that).
template <typename T>
__device__ __forceinline__ void ld4f(const T* p, float (&v)[4]) {
    if constexpr (sizeof(T) == 4) {
        const float4 q = *reinterpret_cast<const float4*>(p);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
        T e[4];
        *reinterpret_cast<uint2*>(e) = *reinterpret_cast<const uint2*>(p);
#pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = ldf(e + k);
    }
}

// Stages the columns t0 .. t0+31 of the rows n < NP of `rows` (N rows of length L,
// L % 4 == 0, t0 % 4 == 0) into dst[t * npad + n], zero past t_end or N: lane = 8 * (row
// of 4) + (group of 4 steps), so a warp reads 4 rows of 128 bytes (f32) per load.
template <typename T>
__device__ __forceinline__ void stage_cols4(float* dst, const T* rows, int t0, int t_end, int L, int N, int NP,
                                            int npad, int warp, int nwarps, int lane) {
    const int q = lane & 7, rr = lane >> 3;
    const int t = t0 + 4 * q;
#pragma unroll 2
    for (int n = 4 * warp + rr; n < NP; n += 4 * nwarps) {
        float v[4] = {0.f, 0.f, 0.f, 0.f};
        if (n < N && t < t_end) ld4f(rows + (size_t)n * L + t, v);
#pragma unroll
        for (int k = 0; k < 4; ++k) dst[(4 * q + k) * npad + n] = t + k < t_end ? v[k] : 0.f;
    }
}

// One tile's recurrence, from h: with OUT, each step's partial output (this thread's S
// states) goes to sy[t]; without, the steps' dt are summed into dtsum. VV: B and C both
// vary in time (the usual layouts), so the loop has no branch on the layout; else the
// runtime flags choose between the staged columns and the registers bsh/csh.
template <int S, bool LITE, bool OUT, bool VV>
__device__ __forceinline__ void tile_steps(float (&h)[S], float& dtsum, const float (&a2)[S], const float (&bsh)[S],
                                           const float (&csh)[S], const float* sdt, const float* sdu, const float* sB,
                                           const float* sC, float* sy, int tn, int npad, bool b_var, bool c_var) {
    const bool bvar = VV || b_var, cvar = VV || c_var;
    // Unrolled so that the exponentials of later steps overlap the recurrence.
#pragma unroll(S >= 8 ? 2 : (LITE ? 4 : 8))
    for (int t = 0; t < tn; ++t) {
        const float dt = sdt[t];
        const float du = sdu[t];
        float bv[S], cv[S];
        if (bvar) lds_vec<S>(bv, sB + t * npad);
        else {
#pragma unroll
            for (int s = 0; s < S; ++s) bv[s] = bsh[s];
        }
        if (OUT) {
            if (cvar) lds_vec<S>(cv, sC + t * npad);
            else {
#pragma unroll
                for (int s = 0; s < S; ++s) cv[s] = csh[s];
            }
        }
        float y = 0.f;
#pragma unroll
        for (int s = 0; s < S; ++s) {
            h[s] = fmaf(fast_exp2(dt * a2[s]), h[s], du * bv[s]);
            if (OUT) y = fmaf(cv[s], h[s], y);
        }
        if (OUT) sy[t] = y;
        else dtsum += dt;
    }
}

// MODE 0: the scan with outputs, from the initial state (or, when the sequence is split
// in time chunks, from the chunk's incoming state). MODE 1: a chunk's local final state
// from zero, and the sum of its steps (its decay is exp(A * sum dt)).
// MODE 2: the whole time split in one launch: a chunk runs its steps from zero (local
// state), publishes that, looks back for its incoming state (common.cuh), publishes its
// outgoing state, and reruns its steps from the incoming state with outputs (a chunk of
// one tile stages it once). Chunk 0 runs once, from the initial state.
// LITE: half the unrolling (fewer registers, so three blocks fit on an SM).
template <typename T, int S, int MODE, bool LITE>
__device__ void scan1_fwd(const Scan1Params& p) {
    DYN_SMEM(smem);
    const int G = p.G, CB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int NP = G * S, NPAD = NP + 4;
    const int nthreads = blockDim.x;
    const bool b_var = p.b_groups > 0, c_var = MODE != 1 && p.c_groups > 0;
    const int K = p.nchunks;
    const int tid = threadIdx.x;
    // The block's place: from blockIdx, or (MODE 2) from its ticket, chunk-major.
    int kc = blockIdx.z, bx = blockIdx.x, i = blockIdx.y;
    const int nrows = gridDim.x * gridDim.y;  // block rows (MODE 2)
    int* s_tk = reinterpret_cast<int*>(smem + 4 * round4(CB * (TT + 1)) + 2 * TT * (G * S + 4) +
                                       round4(CB * G * (TT + 1)));
    if (MODE == 2) {
        if (tid == 0) {
            const unsigned tk = atomicAdd(p.flags, 1u);
            // The last ticket resets the counter for the next call on the stream (every
            // block of this launch has taken its ticket).
            if (tk == gridDim.x * gridDim.y * gridDim.z - 1) atomicExch(p.flags, 0u);
            s_tk[0] = (int)tk;
        }
        __syncthreads();
        const int tk = s_tk[0];
        kc = tk / nrows;
        bx = (tk % nrows) % gridDim.x;
        i = (tk % nrows) / gridDim.x;
    }
    const int rowid = i * gridDim.x + bx;  // this block's row (MODE 2 flags)
    const int t_begin = kc * p.chunk_len, t_end = min(L, t_begin + p.chunk_len);
    float* s_dt = smem;
    float* s_du = s_dt + round4(CB * (TT + 1));
    float* s_B = s_du + round4(CB * (TT + 1));
    float* s_C = s_B + TT * NPAD;
    float* s_y = s_C + TT * NPAD;
    float* s_u = s_y + round4(CB * G * (TT + 1));  // raw u and z, for the output phase
    float* s_z = s_u + round4(CB * (TT + 1));

    const int seg_id = bx / p.blocks_per_seg;
    const int blk = bx % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CB;
    const int cn = min(CB, (seg_id + 1) * p.seg - c0);
    const int cl = tid / G, g = tid % G;
    const int c = c0 + cl;
    const bool active = cl < cn;
    const size_t srow = (size_t)i * dim + c;  // (batch, channel) row of the state buffers
    // This thread's columns of the staged tile.
    const float* sdt = s_dt + cl * (TT + 1);
    const float* sdu = s_du + cl * (TT + 1);
    const float* sB = s_B + g * S;
    const float* sC = s_C + g * S;
    float* sy = s_y + (cl * G + g) * (TT + 1);

    const T* u = static_cast<const T*>(p.u) + ((size_t)i * dim + c0) * L;
    const T* delta = static_cast<const T*>(p.delta) + ((size_t)i * dim + c0) * L;
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = p.z ? static_cast<const T*>(p.z) + ((size_t)i * dim + c0) * L : nullptr;
    T* out = static_cast<T*>(p.out) + ((size_t)i * dim + c0) * L;

    // This block's B/C rows (varying layouts): (i, group, n, t).
    const T* brow = b_var ? Bp + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L : nullptr;
    const T* crow = c_var ? Cp + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L : nullptr;

    // Rows of B/C (length L) start 4-element aligned: stage them 4 steps per load.
    const bool vec4 = (L & 3) == 0 && (!brow || ((size_t)brow & (4 * sizeof(T) - 1)) == 0) &&
                      (!crow || ((size_t)crow & (4 * sizeof(T) - 1)) == 0);
    float h[S], a2[S], bsh[S], csh[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g * S + s;
        const bool ok = active && n < N;
        const float* h0 = nullptr;
        if (MODE == 0) h0 = K > 1 ? p.chunk_states + (((size_t)i * dim + c) * K + kc) * N : p.h0 ? p.h0 + ((size_t)i * dim + c) * N : nullptr;
        if (MODE == 2 && kc == 0 && p.h0) h0 = p.h0 + srow * N;
        h[s] = (ok && h0) ? h0[n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
        bsh[s] = (ok && !b_var) ? ldf(Bp + (size_t)c * N + n) : 0.f;
        csh[s] = (ok && MODE != 1 && p.c_groups == 0) ? ldf(Cp + (size_t)c * N + n) : 0.f;
    }

    float dtsum = 0.f;
    // Rows of the tile: warp w takes rows w, w + nwarps, ...; lanes run along time.
    const int warp = tid >> 5, lane = tid & 31, nwarps = (nthreads + 31) >> 5;

    // MODE 2, chunks after the first ("chained"): the local state from zero first, then
    // the look-back, then the outputs from the incoming state. A chunk of one tile stages
    // it once and runs it twice; a longer chunk makes two passes over its tiles.
    const bool chained = MODE == 2 && kc > 0;
    const int ntiles = (t_end - t_begin + TT - 1) / TT;
    const int npass = (chained && ntiles > 1) ? 2 : 1;
    if (chained) {
#pragma unroll
        for (int s = 0; s < S; ++s) h[s] = 0.f;
    }
    // Publishes the local state (h, dtsum) of this chunk (flag 1), waits for the look-back,
    // publishes the outgoing state (flag 2) and leaves the incoming state in h.
    auto publish_and_look_back = [&]() {
        if (active) {
#pragma unroll
            for (int s = 0; s < S; ++s) {
                const int n = g * S + s;
                if (n < N) p.chunk_states[(srow * K + kc) * N + n] = h[s];
            }
            if (g == 0) p.chunk_dtsum[srow * K + kc] = dtsum;
        }
        __threadfence();
        __syncthreads();
        unsigned* my_flag = p.flags + 1 + (size_t)kc * nrows + rowid;
        if (tid == 0) st_release_u32(my_flag, p.flag_base);
        if (warp == 0) {
            const int j0 = lookback_warp(p.flags, kc, nrows, rowid, p.flag_base, lane);
            if (lane == 0) s_tk[1] = j0;
            __threadfence();
        }
        __syncthreads();
        const int j0 = s_tk[1];
        if (active) {
            float hin[S];
#pragma unroll
            for (int s = 0; s < S; ++s) {
                const int n = g * S + s;
                hin[s] = n < N ? __ldcg(p.chunk_incl + (srow * K + j0) * N + n) : 0.f;
            }
            // The aggregates of j0+1 .. kc-1, LB chunks' loads in flight at a time.
            constexpr int LB = (S >= 8 || LITE) ? 2 : (S >= 4 ? 4 : 8);  // no spills
            for (int j = j0 + 1; j < kc; j += LB) {
                float dsum[LB], loc[LB][S];
#pragma unroll
                for (int e = 0; e < LB; ++e) {
                    const bool ok = j + e < kc;
                    dsum[e] = ok ? __ldcg(p.chunk_dtsum + srow * K + j + e) : 0.f;
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        const int n = g * S + s;
                        loc[e][s] = (ok && n < N) ? __ldcg(p.chunk_states + (srow * K + j + e) * N + n) : 0.f;
                    }
                }
#pragma unroll
                for (int e = 0; e < LB; ++e) {
                    if (j + e < kc) {
#pragma unroll
                        for (int s = 0; s < S; ++s) hin[s] = fmaf(fast_exp2(dsum[e] * a2[s]), hin[s], loc[e][s]);
                    }
                }
            }
#pragma unroll
            for (int s = 0; s < S; ++s) {
                const int n = g * S + s;
                if (kc < K - 1 && n < N)
                    p.chunk_incl[(srow * K + kc) * N + n] = fmaf(fast_exp2(dtsum * a2[s]), hin[s], h[s]);
                h[s] = hin[s];
            }
        }
        if (kc < K - 1) {
            __threadfence();
            __syncthreads();
            if (tid == 0) st_release_u32(my_flag, p.flag_base + 1u);
        }
    };

    for (int pass = 0; pass < npass; ++pass) {
        // The first of two passes: states only (no outputs, no z).
        const bool local = npass == 2 && pass == 0;
        for (int t0 = t_begin; t0 < t_end; t0 += TT) {
            const int tn = min(TT, t_end - t0);
            const bool in_t = lane < tn;
            const bool last_tile = t0 + TT >= t_end;
            // dt and dt*u per (channel, step); the loads of a warp are one 128-byte line.
#pragma unroll(LITE ? 4 : 8)
            for (int r = warp; r < CB; r += nwarps) {
                float dt = 0.f, uv = 0.f, zv = 0.f;
                if (r < cn && in_t) {
                    const size_t off = (size_t)r * L + t0 + lane;
                    dt = ldf(delta + off) + (p.delta_bias ? p.delta_bias[c0 + r] : 0.f);
                    uv = ldf(u + off);
                    if (MODE != 1 && !local && zp) zv = ldf(zp + off);
                    if (p.softplus) dt = softplus_f(dt);
                }
                s_dt[r * (TT + 1) + lane] = dt;
                s_du[r * (TT + 1) + lane] = dt * uv;
                if (MODE != 1 && !local) {
                    s_u[r * (TT + 1) + lane] = uv;
                    s_z[r * (TT + 1) + lane] = zv;
                }
            }
            // B and C columns: 4 steps per lane (one 16-byte load for f32) when the rows
            // allow it, else one step per lane.
            if (b_var) {
                if (vec4) stage_cols4(s_B, brow, t0, t_end, L, N, NP, NPAD, warp, nwarps, lane);
                else {
#pragma unroll(LITE ? 2 : 8)
                    for (int n = warp; n < NP; n += nwarps)
                        s_B[lane * NPAD + n] = (n < N && in_t) ? ldf(brow + (size_t)n * L + t0 + lane) : 0.f;
                }
            }
            if (c_var && !local) {
                if (vec4) stage_cols4(s_C, crow, t0, t_end, L, N, NP, NPAD, warp, nwarps, lane);
                else {
#pragma unroll(LITE ? 2 : 8)
                    for (int n = warp; n < NP; n += nwarps)
                        s_C[lane * NPAD + n] = (n < N && in_t) ? ldf(crow + (size_t)n * L + t0 + lane) : 0.f;
                }
            }
            __syncthreads();
            if (chained && (local || npass == 1)) {
                // The tile from the running local state.
                if (active) {
                    if (b_var) tile_steps<S, LITE, false, true>(h, dtsum, a2, bsh, csh, sdt, sdu, sB, sC, sy, tn, NPAD, b_var, c_var);
                    else tile_steps<S, LITE, false, false>(h, dtsum, a2, bsh, csh, sdt, sdu, sB, sC, sy, tn, NPAD, b_var, c_var);
                }
                if (last_tile) publish_and_look_back();
            }
            if (active && !local) {
                constexpr bool OUT = MODE != 1;
                if (b_var && (c_var || !OUT))
                    tile_steps<S, LITE, OUT, true>(h, dtsum, a2, bsh, csh, sdt, sdu, sB, sC, sy, tn, NPAD, b_var, c_var);
                else tile_steps<S, LITE, OUT, false>(h, dtsum, a2, bsh, csh, sdt, sdu, sB, sC, sy, tn, NPAD, b_var, c_var);
            }
            if (MODE == 2 && kc == 0 && K > 1 && last_tile) {
                // Chunk 0 publishes its outgoing state as soon as it has it.
                if (active) {
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        const int n = g * S + s;
                        if (n < N) p.chunk_incl[srow * K * N + n] = h[s];
                    }
                }
                __threadfence();
                __syncthreads();
                if (tid == 0) st_release_u32(p.flags + 1 + rowid, p.flag_base + 1u);
            }
            __syncthreads();
            if (MODE != 1 && !local) {
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
    }
    float* dst = nullptr;
    if (MODE == 1) dst = p.chunk_states + (((size_t)i * dim + c) * K + kc) * N;
    else if (MODE == 0 && K == 1 && p.hlast) dst = p.hlast + ((size_t)i * dim + c) * N;
    else if (MODE == 2 && kc == K - 1 && p.hlast) dst = p.hlast + srow * N;
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

// The fused time split (MODE 2), one launch: three blocks per SM like the lite variant.
#define SCAN1_FUSED(T, NAME, S, LITE, SFX, MINB)                                                                     \
    extern "C" __global__ void __launch_bounds__(256, MINB) scan1_fused_##NAME##_s##S##SFX(const __grid_constant__ Scan1Params p) { \
        scan1_fwd<T, S, 2, LITE>(p);                                                                                 \
    }

#define SCAN1_ALL(T, NAME) SCAN1_INST(T, NAME, 1) SCAN1_INST(T, NAME, 2) SCAN1_INST(T, NAME, 4) SCAN1_INST(T, NAME, 8) SCAN1_INST(T, NAME, 16) \
    SCAN1_LITE(T, NAME, 2) SCAN1_LITE(T, NAME, 4)                                                                  \
    SCAN1_FUSED(T, NAME, 1, false, , 2) SCAN1_FUSED(T, NAME, 2, false, , 2) SCAN1_FUSED(T, NAME, 4, false, , 2)     \
    SCAN1_FUSED(T, NAME, 8, false, , 2) SCAN1_FUSED(T, NAME, 16, false, , 2)                                        \
    SCAN1_FUSED(T, NAME, 2, true, _lite, 3) SCAN1_FUSED(T, NAME, 4, true, _lite, 3)

SCAN1_ALL(float, f32)
#ifndef MAMBA_EMU
SCAN1_ALL(bf16_t, bf16)
SCAN1_ALL(f16_t, f16)
#endif

// ---------------------------------------------------------------- parallel in time
//
// scan1_par: the recurrence parallel in time inside a warp, so that few rows (the seed
// shapes) still give many independent warps and each step runs once (one exponential
// per (state, step), no second pass). A warp's lanes are PCW = 4 channels x PSEG = 8
// time segments of PT consecutive steps (a chunk of PSEG * PT steps); a warp owns a group
// of the N states (the block's NSG warps per channel quad split N). Per state, a lane
//   1. runs its segment from zero: e_j = exp(dt_j A), w_j = dt_j u_j B_j, h = e_j h + w_j,
//      keeping e_j and w_j in registers, and the segment's decay P = exp(A sum dt);
//   2. scans the segments' affine maps (P, h) across its 8 lanes (3 shuffle steps) and
//      applies the chunk's incoming state (the carry), so it knows its segment's
//      incoming state; the last segment's outgoing state becomes the carry;
//   3. reruns its segment from that state out of registers: h = e_j h + w_j, y_j += C_j h.
// The block then sums the NSG warps' partial outputs (shared memory), adds D u, gates by
// silu(z) and writes the chunk. B/C chunks are staged in shared memory (f32: cp.async,
// double-buffered, the next chunk's copy in flight during this chunk's steps); dt, dt*u
// of the next chunk are prefetched into registers. Needs B and C both varying in time.
#define PSEG 8
#define PCW 4

__device__ __forceinline__ void cp_async4(float* dst, const float* src, int bytes) {
#ifdef MAMBA_EMU
    emu_cp(dst, src, bytes, 4);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void cp_async16(float* dst, const float* src, int bytes) {
#ifdef MAMBA_EMU
    emu_cp(dst, src, bytes, 16);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#ifdef MAMBA_EMU
    emu_cp_wait_all();
#else
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Position of step j of segment s inside a staged row of PSEG * PT floats: segment-major,
// with the 16-byte quarters of a segment swapped by (s * PT / 32) so that the 8 segments'
// j-th steps fall in 8 different banks (each quarter stays 16-byte aligned).
template <int PT>
__device__ __forceinline__ int par_swz(int s) {
    return PT >= 8 ? ((s * PT / 32) & (PT / 4 - 1)) * 4 : 0;
}
template <int PT>
__device__ __forceinline__ int par_pos(int t_rel) {
    const int s = t_rel / PT, j = t_rel % PT;
    return s * PT + (j ^ par_swz<PT>(s));
}

// Shared memory of scan1_par, in floats (host: scan1_par_smem in ops.rs).
__host__ __device__ constexpr int par_smem_floats(int N, int CPB, int NSG, int PT) {
    return 4 * N * PSEG * PT                    // B, C: two buffers
           + 8 * CPB * (PSEG * PT + 1)          // dt, dt*u, u, z: two buffers each
           + 2 * NSG * CPB * (PSEG * PT + 1)    // partial outputs: two buffers
           + 2 * CPB * N + CPB;                 // A * log2(e), carries, D
}

template <typename T, int PT, int V>
__device__ void scan1_par(const Scan1Params& p) {
    DYN_SMEM(smem);
    constexpr int CH = PSEG * PT;  // steps per chunk
    constexpr int RW = CH;         // B/C row
    constexpr int RWD = CH + 1;    // dt, du, y rows (odd: the 4 channels of a warp in 4 banks)
    const int CPB = p.cb, NSG = p.G, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int tid = threadIdx.x, nthreads = blockDim.x;
    const int warp = tid >> 5, lane = tid & 31;
    const int i = blockIdx.y;
    const int seg_id = blockIdx.x / p.blocks_per_seg, blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CPB;
    const int cn = min(CPB, (seg_id + 1) * p.seg - c0);

    float* s_bc = smem;                           // [buf][B, C][N][RW]
    float* s_dt = s_bc + 4 * N * RW;              // [buf][CPB][RWD]
    float* s_du = s_dt + 2 * CPB * RWD;           // [buf][CPB][RWD]
    float* s_uu = s_du + 2 * CPB * RWD;           // [buf][CPB][RWD]: raw u, for the outputs
    float* s_zz = s_uu + 2 * CPB * RWD;           // [buf][CPB][RWD]: z
    float* s_y = s_zz + 2 * CPB * RWD;            // [buf][NSG][CPB][RWD]
    float* s_a2 = s_y + 2 * NSG * CPB * RWD;      // [CPB][N]
    float* s_h = s_a2 + CPB * N;                  // [CPB][N]
    float* s_D = s_h + CPB * N;                   // [CPB]

    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* brow = Bp + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L;
    const T* crow = Cp + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L;
    const size_t row0 = (size_t)i * dim + c0;  // (batch, channel) row of the block's first channel
    const T* up = static_cast<const T*>(p.u) + row0 * L;
    const T* dp = static_cast<const T*>(p.delta) + row0 * L;
    const T* zp = p.z ? static_cast<const T*>(p.z) + row0 * L : nullptr;
    T* out = static_cast<T*>(p.out) + row0 * L;
    const int K = (L + CH - 1) / CH;

    // Whole 16-byte copies of B/C rows when f32 rows are 16-byte aligned.
    bool vec = false;
    if constexpr (sizeof(T) == 4)
        vec = (L & 3) == 0 && ((size_t)brow & 15) == 0 && ((size_t)crow & 15) == 0;
    // Stages the B/C columns of chunk k into buffer b (f32: asynchronous copies).
    auto stage_bc = [&](int k, int b) {
        const int t0 = k * CH;
        float* dstB = s_bc + (size_t)b * 2 * N * RW;
        float* dstC = dstB + N * RW;
        if constexpr (sizeof(T) == 4) {
            const float* fb = reinterpret_cast<const float*>(brow);
            const float* fc = reinterpret_cast<const float*>(crow);
            if (vec) {
                for (int e = tid; e < N * (CH / 4); e += nthreads) {
                    const int n = e / (CH / 4), tr = 4 * (e % (CH / 4));
                    const int t = t0 + tr;
                    const int bytes = t < L ? 4 * min(4, L - t) : 0;
                    const size_t off = (size_t)n * L + (t < L ? t : 0);
                    const int pos = n * RW + par_pos<PT>(tr);
                    cp_async16(dstB + pos, fb + off, bytes);
                    cp_async16(dstC + pos, fc + off, bytes);
                }
            } else {
                for (int e = tid; e < N * CH; e += nthreads) {
                    const int n = e / CH, tr = e % CH;
                    const int t = t0 + tr;
                    const int bytes = t < L ? 4 : 0;
                    const size_t off = (size_t)n * L + (t < L ? t : 0);
                    const int pos = n * RW + par_pos<PT>(tr);
                    cp_async4(dstB + pos, fb + off, bytes);
                    cp_async4(dstC + pos, fc + off, bytes);
                }
            }
        } else {
            for (int e = tid; e < N * CH; e += nthreads) {
                const int n = e / CH, tr = e % CH;
                const int t = t0 + tr;
                const size_t off = (size_t)n * L + t;
                const int pos = n * RW + par_pos<PT>(tr);
                dstB[pos] = t < L ? ldf(brow + off) : 0.f;
                dstC[pos] = t < L ? ldf(crow + off) : 0.f;
            }
        }
    };
    // dt and dt*u of chunk k: raw loads into registers (the next chunk's, in flight during
    // this chunk's steps), then the step sizes into buffer b.
    constexpr int PE = 4;  // elements per thread: CPB * CH <= PE * threads (host: NSG >= 2)
    float rd[PE], ru[PE], rz[PE];
    auto load_dtu = [&](int k) {
#pragma unroll
        for (int q = 0; q < PE; ++q) {
            const int e = tid + q * nthreads;
            const int r = e / CH, t = k * CH + e % CH;
            const bool ok = e < CPB * CH && r < cn && t < L;
            rd[q] = ok ? ldf(dp + (size_t)r * L + t) : 0.f;
            ru[q] = ok ? ldf(up + (size_t)r * L + t) : 0.f;
            rz[q] = (ok && zp) ? ldf(zp + (size_t)r * L + t) : 0.f;
        }
    };
    auto store_dtu = [&](int k, int b) {
#pragma unroll
        for (int q = 0; q < PE; ++q) {
            const int e = tid + q * nthreads;
            if (e < CPB * CH) {
                const int r = e / CH, tr = e % CH, t = k * CH + tr;
                float dt = 0.f, du = 0.f;
                if (r < cn && t < L) {
                    dt = rd[q] + (p.delta_bias ? p.delta_bias[c0 + r] : 0.f);
                    if (p.softplus) dt = softplus_f(dt);
                    du = dt * ru[q];
                }
                const int o = (b * CPB + r) * RWD + par_pos<PT>(tr);
                s_dt[o] = dt;
                s_du[o] = du;
                s_uu[o] = ru[q];
                s_zz[o] = rz[q];
            }
        }
    };

    // Prologue: A, the initial carries, chunk 0.
    for (int e = tid; e < CPB * N; e += nthreads) {
        const int r = e / N, n = e % N;
        const bool ok = r < cn;
        s_a2[e] = ok ? p.A[(size_t)(c0 + r) * N + n] * LOG2E_F : 0.f;
        s_h[e] = (ok && p.h0) ? p.h0[(row0 + r) * N + n] : 0.f;
    }
    for (int r = tid; r < CPB; r += nthreads) s_D[r] = (r < cn && p.D) ? p.D[c0 + r] : 0.f;
    stage_bc(0, 0);
    load_dtu(0);
    store_dtu(0, 0);
    cp_async_wait_all();
    __syncthreads();

    // This thread's place: channel quad q, state group sg; channel cl (local), segment sgi.
    const int NQ = CPB / PCW;
    const int q = warp / NSG, sg = warp % NSG;
    (void)NQ;
    const int cl = q * PCW + (lane >> 3), sgi = lane & 7;
    const int ns = (N + NSG - 1) / NSG;
    const int n_begin = sg * ns, n_end = min(N, n_begin + ns);
    const int swz = par_swz<PT>(sgi);
    const int base = sgi * PT;

    for (int k = 0; k < K; ++k) {
        const int b = k & 1;
        if (k + 1 < K) {
            if constexpr (sizeof(T) == 4) stage_bc(k + 1, b ^ 1);
            load_dtu(k + 1);
        }
        // This lane's steps of the chunk.
        float dt[PT], du[PT], y[PT];
        float dtsum = 0.f;
        {
            const float* rdt = s_dt + (b * CPB + cl) * RWD + base;
            const float* rdu = s_du + (b * CPB + cl) * RWD + base;
#pragma unroll
            for (int j = 0; j < PT; ++j) {
                dt[j] = rdt[j ^ swz];
                du[j] = rdu[j ^ swz];
                dtsum += dt[j];
                y[j] = 0.f;
            }
        }
        const float* sB = s_bc + (size_t)b * 2 * N * RW + base;
        const float* sC = sB + N * RW;
        if constexpr (V == 1) {
            // Two states at a time (their shuffle chains overlap). Per state a lane keeps
            // cp_j = C_j P_j (P_j: the decay from the segment start to step j) and adds
            // C_j h_j of the local run at once: y_j = sum C_j h_loc_j + cp_j h_in, so the
            // second pass is one fma per step, independent of the others.
            for (int n = n_begin; n < n_end; n += 2) {
                const bool two = n + 1 < n_end;
                float a2[2], h[2], P[2], cp[2][PT], hc[2];
                hc[0] = s_h[cl * N + n];
                hc[1] = s_h[cl * N + n + two];
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    const int nn = (u == 1 && two) ? n + 1 : n;
                    a2[u] = s_a2[cl * N + nn];
                    h[u] = 0.f;
                    P[u] = 1.f;
                    const float cm = (u == 0 || two) ? 1.f : 0.f;  // a missing second state adds nothing
                    float bv[PT], cv[PT];
#pragma unroll
                    for (int g4 = 0; g4 < PT / 4; ++g4) {
                        const float4 vb = *reinterpret_cast<const float4*>(sB + nn * RW + ((4 * g4) ^ swz));
                        const float4 vc = *reinterpret_cast<const float4*>(sC + nn * RW + ((4 * g4) ^ swz));
                        bv[4 * g4] = vb.x; bv[4 * g4 + 1] = vb.y; bv[4 * g4 + 2] = vb.z; bv[4 * g4 + 3] = vb.w;
                        cv[4 * g4] = cm * vc.x; cv[4 * g4 + 1] = cm * vc.y; cv[4 * g4 + 2] = cm * vc.z; cv[4 * g4 + 3] = cm * vc.w;
                    }
#pragma unroll
                    for (int j = 0; j < PT; ++j) {
                        const float e = fast_exp2(dt[j] * a2[u]);
                        h[u] = fmaf(e, h[u], du[j] * bv[j]);
                        P[u] *= e;
                        y[j] = fmaf(cv[j], h[u], y[j]);
                        cp[u][j] = cv[j] * P[u];
                    }
                }
#pragma unroll
                for (int d = 1; d < PSEG; d <<= 1) {
#pragma unroll
                    for (int u = 0; u < 2; ++u) {
                        const float Pp = __shfl_up_sync(0xffffffffu, P[u], d, PSEG);
                        const float hp = __shfl_up_sync(0xffffffffu, h[u], d, PSEG);
                        const bool in = sgi >= d;  // branch-free: no divergence
                        h[u] = fmaf(P[u], in ? hp : 0.f, h[u]);
                        P[u] *= in ? Pp : 1.f;
                    }
                }
                float hs[2];
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    const float Pe = __shfl_up_sync(0xffffffffu, P[u], 1, PSEG);
                    const float he = __shfl_up_sync(0xffffffffu, h[u], 1, PSEG);
                    hs[u] = sgi == 0 ? hc[u] : fmaf(Pe, hc[u], he);
                }
                __syncwarp();
                if (sgi == PSEG - 1) {
                    s_h[cl * N + n] = fmaf(P[0], hc[0], h[0]);
                    if (two) s_h[cl * N + n + 1] = fmaf(P[1], hc[1], h[1]);
                }
#pragma unroll
                for (int j = 0; j < PT; ++j) y[j] = fmaf(cp[1][j], hs[1], fmaf(cp[0][j], hs[0], y[j]));
            }
        } else
        for (int n = n_begin; n < n_end; ++n) {
            const float a2 = s_a2[cl * N + n];
            float bv[PT], e[PT], w[PT];
            {
                // Two 16-byte quarters at a time, in swizzled order.
#pragma unroll
                for (int g4 = 0; g4 < PT / 4; ++g4) {
                    const float4 v = *reinterpret_cast<const float4*>(sB + n * RW + ((4 * g4) ^ swz));
                    bv[4 * g4] = v.x; bv[4 * g4 + 1] = v.y; bv[4 * g4 + 2] = v.z; bv[4 * g4 + 3] = v.w;
                }
            }
            float h = 0.f;
#pragma unroll
            for (int j = 0; j < PT; ++j) {
                e[j] = fast_exp2(dt[j] * a2);
                w[j] = du[j] * bv[j];
                h = fmaf(e[j], h, w[j]);
            }
            float P = fast_exp2(dtsum * a2);
            // Inclusive scan of the segments' maps (P, h) over the 8 lanes of the channel.
#pragma unroll
            for (int d = 1; d < PSEG; d <<= 1) {
                const float Pp = __shfl_up_sync(0xffffffffu, P, d, PSEG);
                const float hp = __shfl_up_sync(0xffffffffu, h, d, PSEG);
                if (sgi >= d) {
                    h = fmaf(P, hp, h);
                    P *= Pp;
                }
            }
            float* carry = s_h + cl * N + n;
            const float hc = *carry;
            const float Pe = __shfl_up_sync(0xffffffffu, P, 1, PSEG);
            const float he = __shfl_up_sync(0xffffffffu, h, 1, PSEG);
            float hs = sgi == 0 ? hc : fmaf(Pe, hc, he);
            __syncwarp();
            if (sgi == PSEG - 1) *carry = fmaf(P, hc, h);
            float cv[PT];
#pragma unroll
            for (int g4 = 0; g4 < PT / 4; ++g4) {
                const float4 v = *reinterpret_cast<const float4*>(sC + n * RW + ((4 * g4) ^ swz));
                cv[4 * g4] = v.x; cv[4 * g4 + 1] = v.y; cv[4 * g4 + 2] = v.z; cv[4 * g4 + 3] = v.w;
            }
#pragma unroll
            for (int j = 0; j < PT; ++j) {
                hs = fmaf(e[j], hs, w[j]);
                y[j] = fmaf(cv[j], hs, y[j]);
            }
        }
        {
            float* ry = s_y + ((size_t)(b * NSG + sg) * CPB + cl) * RWD + base;
#pragma unroll
            for (int j = 0; j < PT; ++j) ry[j ^ swz] = y[j];
        }
        if (k + 1 < K) {
            if constexpr (sizeof(T) != 4) stage_bc(k + 1, b ^ 1);
            store_dtu(k + 1, b ^ 1);
        }
        cp_async_wait_all();
        __syncthreads();
        // The chunk's outputs: sum the state groups, D u, the gate.
        for (int e2 = tid; e2 < cn * CH; e2 += nthreads) {
            const int r = e2 / CH, tr = e2 % CH, t = k * CH + tr;
            if (t >= L) continue;
            const int o = par_pos<PT>(tr);
            const float* yy = s_y + ((size_t)b * NSG * CPB + r) * RWD + o;
            float acc = 0.f;
            for (int g2 = 0; g2 < NSG; ++g2) acc += yy[(size_t)g2 * CPB * RWD];
            const int ob = (b * CPB + r) * RWD + o;
            acc = fmaf(s_D[r], s_uu[ob], acc);
            if (zp) acc *= silu_f(s_zz[ob]);
            out[(size_t)r * L + t] = cvt<T>(acc);
        }
    }
    // The last state: the carries after the last chunk (each warp its own).
    __syncwarp();
    if (p.hlast && cl < cn) {
        for (int n = n_begin + sgi; n < n_end; n += PSEG) p.hlast[(row0 + cl) * N + n] = s_h[cl * N + n];
    }
}

// V = 1 (two states at a time, one fma per step in the second pass) is the default; V = 0
// (one state at a time, e_j and w_j kept for a rerun) is kept for f32 as `_v0`.
#define SCAN1_PAR(T, NAME, PT, V, SFX)                                                                 \
    extern "C" __global__ void __launch_bounds__(512) scan1_par_##NAME##_t##PT##SFX(const __grid_constant__ Scan1Params p) { \
        scan1_par<T, PT, V>(p);                                                                        \
    }
SCAN1_PAR(float, f32, 8, 1, )
SCAN1_PAR(float, f32, 8, 0, _v0)
#ifndef MAMBA_EMU
SCAN1_PAR(bf16_t, bf16, 8, 1, )
SCAN1_PAR(f16_t, f16, 8, 1, )
#endif

// ---------------------------------------------------------------- time-parallel tiles
//
// scan1_tp: the single-pass layout above (G threads per channel, S states each, tiles of
// TT = 32 steps staged in shared memory), but each tile's 32 steps are split into
// TPW = 4 segments of TPS = 8 steps run by 4 groups of threads at once. A thread runs its
// segment from zero keeping e_j = exp(dt_j A) and w_j = dt_j u_j B_j in registers (one
// exponential per (state, step)), publishes the segment's map (P = exp(A sum dt), h), and
// after a barrier folds the maps of the earlier segments onto the tile's incoming state
// (the carry), reruns its 8 steps out of registers with outputs, and leaves per-step
// partial sums over its S states; the block sums the G partials, adds D u, gates, writes.
// No shuffles; 4x the threads of the single pass per tile, each step run once.
#define TPS 8
#define TPW 4

__host__ __device__ constexpr int tp_smem_floats(int N, int S, int CB, int G) {
    return 4 * round4(CB * (TT + 1))          // dt, dt*u, u, z
           + 2 * TT * (G * S + 4)             // B, C
           + 2 * TPW * CB * G * S             // segment maps
           + round4(CB * G * (TT + 1))        // partial outputs
           + CB * G * S;                      // carries
}

template <typename T, int S>
__device__ void scan1_tp(const Scan1Params& p) {
    DYN_SMEM(smem);
    const int G = p.G, CB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int NP = G * S, NPAD = NP + 4;
    const int tid = threadIdx.x, nthreads = blockDim.x;
    const int warp = tid >> 5, lane = tid & 31, nwarps = (nthreads + 31) >> 5;
    const int RG = CB * G;  // threads of one segment group
    const int wseg = tid / RG, rem = tid % RG, cl = rem / G, g = rem % G;
    const bool worker = wseg < TPW;
    const int i = blockIdx.y;
    const int seg_id = blockIdx.x / p.blocks_per_seg, blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CB;
    const int cn = min(CB, (seg_id + 1) * p.seg - c0);
    const int c = c0 + cl;
    const bool active = worker && cl < cn;

    float* s_dt = smem;
    float* s_du = s_dt + round4(CB * (TT + 1));
    float* s_u = s_du + round4(CB * (TT + 1));
    float* s_z = s_u + round4(CB * (TT + 1));
    float* s_B = s_z + round4(CB * (TT + 1));
    float* s_C = s_B + TT * NPAD;
    float* s_P = s_C + TT * NPAD;          // [TPW][CB][NP]
    float* s_H = s_P + TPW * CB * NP;      // [TPW][CB][NP]
    float* s_y = s_H + TPW * CB * NP;      // [CB][G][TT + 1]
    float* s_carry = s_y + round4(CB * G * (TT + 1));  // [CB][NP]

    const size_t row0 = (size_t)i * dim + c0;
    const T* u = static_cast<const T*>(p.u) + row0 * L;
    const T* delta = static_cast<const T*>(p.delta) + row0 * L;
    const T* zp = p.z ? static_cast<const T*>(p.z) + row0 * L : nullptr;
    T* out = static_cast<T*>(p.out) + row0 * L;
    const T* brow = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L;
    const T* crow = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L;
    const bool vec4 = (L & 3) == 0 && ((size_t)brow & (4 * sizeof(T) - 1)) == 0 && ((size_t)crow & (4 * sizeof(T) - 1)) == 0;

    float a2[S], newc[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g * S + s;
        const bool ok = active && n < N;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
        newc[s] = 0.f;
        if (worker && wseg == 0) s_carry[cl * NP + n] = (ok && p.h0) ? p.h0[(row0 + cl) * N + n] : 0.f;
    }
    float* syrow = s_y + (cl * G + g) * (TT + 1);

    for (int t0 = 0; t0 < L; t0 += TT) {
        const int tn = min(TT, L - t0);
        const bool in_t = lane < tn;
        for (int r = warp; r < CB; r += nwarps) {
            float dt = 0.f, uv = 0.f, zv = 0.f;
            if (r < cn && in_t) {
                const size_t off = (size_t)r * L + t0 + lane;
                dt = ldf(delta + off) + (p.delta_bias ? p.delta_bias[c0 + r] : 0.f);
                uv = ldf(u + off);
                if (zp) zv = ldf(zp + off);
                if (p.softplus) dt = softplus_f(dt);
            }
            s_dt[r * (TT + 1) + lane] = dt;
            s_du[r * (TT + 1) + lane] = dt * uv;
            s_u[r * (TT + 1) + lane] = uv;
            s_z[r * (TT + 1) + lane] = zv;
        }
        if (vec4) {
            stage_cols4(s_B, brow, t0, L, L, N, NP, NPAD, warp, nwarps, lane);
            stage_cols4(s_C, crow, t0, L, L, N, NP, NPAD, warp, nwarps, lane);
        } else {
            for (int n = warp; n < NP; n += nwarps) {
                s_B[lane * NPAD + n] = (n < N && in_t) ? ldf(brow + (size_t)n * L + t0 + lane) : 0.f;
                s_C[lane * NPAD + n] = (n < N && in_t) ? ldf(crow + (size_t)n * L + t0 + lane) : 0.f;
            }
        }
        __syncthreads();
        float e[TPS][S], w[TPS][S], h[S], hin[S];
        if (worker) {
            const float* sdt = s_dt + cl * (TT + 1) + wseg * TPS;
            const float* sdu = s_du + cl * (TT + 1) + wseg * TPS;
            float dtsum = 0.f;
#pragma unroll
            for (int s = 0; s < S; ++s) h[s] = 0.f;
#pragma unroll
            for (int j = 0; j < TPS; ++j) {
                const float dt = sdt[j], du = sdu[j];
                float bv[S];
                lds_vec<S>(bv, s_B + (wseg * TPS + j) * NPAD + g * S);
                dtsum += dt;
#pragma unroll
                for (int s = 0; s < S; ++s) {
                    e[j][s] = fast_exp2(dt * a2[s]);
                    w[j][s] = du * bv[s];
                    h[s] = fmaf(e[j][s], h[s], w[j][s]);
                }
            }
#pragma unroll
            for (int s = 0; s < S; ++s) {
                s_P[(wseg * CB + cl) * NP + g * S + s] = fast_exp2(dtsum * a2[s]);
                s_H[(wseg * CB + cl) * NP + g * S + s] = h[s];
            }
        }
        __syncthreads();
        if (worker) {
#pragma unroll
            for (int s = 0; s < S; ++s) hin[s] = s_carry[cl * NP + g * S + s];
            for (int k = 0; k < wseg; ++k) {
                float pk[S], hk[S];
                lds_vec<S>(pk, s_P + (k * CB + cl) * NP + g * S);
                lds_vec<S>(hk, s_H + (k * CB + cl) * NP + g * S);
#pragma unroll
                for (int s = 0; s < S; ++s) hin[s] = fmaf(pk[s], hin[s], hk[s]);
            }
            if (wseg == TPW - 1) {
                float pk[S];
                lds_vec<S>(pk, s_P + (wseg * CB + cl) * NP + g * S);
#pragma unroll
                for (int s = 0; s < S; ++s) newc[s] = fmaf(pk[s], hin[s], h[s]);
            }
#pragma unroll
            for (int j = 0; j < TPS; ++j) {
                float cv[S];
                lds_vec<S>(cv, s_C + (wseg * TPS + j) * NPAD + g * S);
                float y = 0.f;
#pragma unroll
                for (int s = 0; s < S; ++s) {
                    hin[s] = fmaf(e[j][s], hin[s], w[j][s]);
                    y = fmaf(cv[s], hin[s], y);
                }
                syrow[wseg * TPS + j] = y;
            }
        }
        __syncthreads();
        if (worker && wseg == TPW - 1) {
#pragma unroll
            for (int s = 0; s < S; ++s) s_carry[cl * NP + g * S + s] = newc[s];
        }
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
    if (p.hlast && active && wseg == TPW - 1) {
#pragma unroll
        for (int s = 0; s < S; ++s) {
            const int n = g * S + s;
            if (n < N) p.hlast[(row0 + cl) * N + n] = newc[s];
        }
    }
}

#define SCAN1_TP(T, NAME, S)                                                                          \
    extern "C" __global__ void __launch_bounds__(512) scan1_tp_##NAME##_s##S(const __grid_constant__ Scan1Params p) { \
        scan1_tp<T, S>(p);                                                                            \
    }
SCAN1_TP(float, f32, 4)
#ifndef MAMBA_EMU
SCAN1_TP(bf16_t, bf16, 4)
SCAN1_TP(f16_t, f16, 4)
#endif
