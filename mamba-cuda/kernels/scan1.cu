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
