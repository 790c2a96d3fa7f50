// SPEC 2 for few (batch, head) pairs: a plain recurrent SSD with the state split across
// many small blocks and no communication between blocks (`ssdr_*`, src/gpu/seed.rs).
//
// A block owns one (batch, head) and RB = WB * 32 / G rows of the head's p-by-N state
// and runs the whole sequence; thread (row r = tid / G, g = tid % G) keeps the 4 states
// n = 4g .. 4g+3 of its row in registers. The decay of a head is one scalar per step, so
// inside a tile of 32 steps the state is kept as S_t = P_t * R_t (P_t the product of
// the tile's decays up to t): a step is R += (x_t dt_t / P_t) B_t and y_t = P_t (C_t . R_t),
// two FMAs per state element and step. At the tile end R *= P_end. A tile where a decay
// product leaves [1e-30, 1e30] or seq_idx resets runs the plain form R = a_t R + x dt B
// (the "slow" loop; `p.mode = 1` forces it everywhere, for the tests).
//
// Per tile: B, C, x tiles are staged (f32: cp.async, 16-byte where rows are aligned,
// double-buffered, zero-filled past L / N / p); warp 0 computes dt, the decays and their
// prefix products (a warp scan, one lane per step) for the tile, with the next tile's raw
// dt already in a register; x * w is formed once per (step, row); each thread stores its
// partial C . R per step to shared memory, and the partials of a row (G of them) are
// summed once per tile in the epilogue (no shuffles in the step loop).
//
// Launch: grid (ceil(p / RB), h, b), WB * 32 threads, p.qb = RB, p.G = G (4, 8, 16 or
// 32 with 4 * G >= N), p.async_copy = 1 where 16-byte copies are legal (f32 only),
// dynamic shared memory = ssdr_smem (mirrored in seed.rs).
#include "common.cuh"

#define SQT 32

#ifndef MAMBA_EMU
__device__ __forceinline__ void ssdr_cp16(void* smem, const void* gmem, bool valid) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void ssdr_cp4(void* smem, const void* gmem, bool valid) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void ssdr_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void ssdr_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }
__device__ __forceinline__ void ssdr_wait1() { asm volatile("cp.async.wait_group 1;\n" ::); }
template <int NW>
__device__ __forceinline__ void ssdr_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(NW)); }
#endif

template <typename T>
__device__ __forceinline__ void ssdr_body(const SsdParams& p, float* sm) {
    const int G = p.G, RB = p.qb, N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen;
    const int NP = 4 * G;                // padded row of B / C
    const int nthreads = blockDim.x;
    const int PS = nthreads + 4;         // row of the partials
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const int q0 = blockIdx.x * RB;
    const int r = tid / G, g = tid % G, n0 = 4 * g;
    const int q = q0 + r;

    // Shared memory (floats): B[2][32][NP], C[2][32][NP], x[2][32][RB], xw[32][RB],
    // partials[32][PS], w[2][32], a[2][32], P[2][32], info[2][4].
    float* sB = sm;
    float* sC = sB + 2 * SQT * NP;
    float* sX = sC + 2 * SQT * NP;
    float* sXW = sX + 2 * SQT * RB;
    float* sPart = sXW + SQT * RB;
    float* sW = sPart + SQT * PS;
    float* sA = sW + 2 * SQT;
    float* sP = sA + 2 * SQT;
    float* sInfo = sP + 2 * SQT;

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const bool vec = p.async_copy != 0;

    // Stages tile `tile` (steps t0 .. t0 + 31) into buffer `buf`, zeros past L, N and p.
    auto stage = [&](int tile, int buf) {
        const int t0 = tile * SQT;
        float* bb = sB + buf * SQT * NP;
        float* bc = sC + buf * SQT * NP;
        float* bx = sX + buf * SQT * RB;
        if constexpr (sizeof(T) == 4) {
            if (vec) {
                const int nc = NP / 4;  // 16-byte chunks per B / C row
                for (int e = tid; e < SQT * nc; e += nthreads) {
                    const int t = e / nc, c = e % nc;
                    const bool ok = t0 + t < L && 4 * c < N;
                    const long long tt = ok ? t0 + t : 0;
                    const int cc = ok ? c : 0;
                    ssdr_cp16(bb + t * NP + 4 * c, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + 4 * cc, ok);
                    ssdr_cp16(bc + t * NP + 4 * c, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + 4 * cc, ok);
                }
                const int xc = RB / 4;
                for (int e = tid; e < SQT * xc; e += nthreads) {
                    const int t = e / xc, c = e % xc;
                    const bool ok = t0 + t < L && q0 + 4 * c < P;
                    const long long tt = ok ? t0 + t : 0;
                    const int qq = ok ? q0 + 4 * c : 0;
                    ssdr_cp16(bx + t * RB + 4 * c, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                }
            } else {
                for (int e = tid; e < SQT * NP; e += nthreads) {
                    const int t = e / NP, n = e % NP;
                    const bool ok = t0 + t < L && n < N;
                    const long long tt = ok ? t0 + t : 0;
                    const int nn = ok ? n : 0;
                    ssdr_cp4(bb + e, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + nn, ok);
                    ssdr_cp4(bc + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + nn, ok);
                }
                for (int e = tid; e < SQT * RB; e += nthreads) {
                    const int t = e / RB, rr = e % RB;
                    const bool ok = t0 + t < L && q0 + rr < P;
                    const long long tt = ok ? t0 + t : 0;
                    const int qq = ok ? q0 + rr : 0;
                    ssdr_cp4(bx + e, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                }
            }
            ssdr_commit();
        } else {
            for (int e = tid; e < SQT * NP; e += nthreads) {
                const int t = e / NP, n = e % NP;
                const bool ok = t0 + t < L && n < N;
                const long long tt = t0 + t;
                bb[e] = ok ? ldf(Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + n) : 0.f;
                bc[e] = ok ? ldf(Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + n) : 0.f;
            }
            for (int e = tid; e < SQT * RB; e += nthreads) {
                const int t = e / RB, rr = e % RB;
                const bool ok = t0 + t < L && q0 + rr < P;
                const long long tt = t0 + t;
                bx[e] = ok ? ldf(x + i * p.x_sb + tt * p.x_st + (long long)j * P + q0 + rr) : 0.f;
            }
        }
    };

    // The state slice: R[s] = S[q][n0 + s] (zero past p and N).
    float R[4];
    {
        const float* src = p.init ? p.init + ((size_t)i * H + j) * P * N : nullptr;
#pragma unroll
        for (int s = 0; s < 4; ++s) R[s] = (src && q < P && n0 + s < N) ? src[(size_t)q * N + n0 + s] : 0.f;
    }

    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    const int ntiles = (L + SQT - 1) / SQT;
    // Warp 0: the raw dt of the next tile and its reset flag (lane = step).
    float raw = 0.f;
    int reset = 0;
    auto load_dt = [&](int tile) {
        const int tt = tile * SQT + lane;
        raw = 0.f;
        reset = 0;
        if (tt < L) {
            raw = ldf(dtp + i * p.dt_sb + (long long)tt * p.dt_st + j);
            if (p.seq_idx && tt > 0) {
                const int* sq = p.seq_idx + (size_t)i * L;
                reset = sq[tt] != sq[tt - 1];
            }
        }
    };
    if (warp == 0) load_dt(0);
    stage(0, 0);

    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
    for (int tile = 0; tile < ntiles; ++tile) {
        const int buf = tile & 1;
        const int t0 = tile * SQT;
        if (warp == 0) {
            const bool valid = t0 + lane < L;
            float dt = 0.f, a = 1.f;
            if (valid) {
                dt = step_size(raw + bias, p.softplus, p.has_limit, p.lo, p.hi);
                a = reset ? 0.f : expf(dt * Aj);
            }
            float Pp = a;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float v = __shfl_up_sync(0xffffffffu, Pp, o);
                if (lane >= o) Pp *= v;
            }
            const bool ok = reset == 0 && Pp >= 1e-30f && Pp <= 1e30f;
            const bool fast = p.mode == 0 && __all_sync(0xffffffffu, ok);
            sW[buf * SQT + lane] = fast ? dt / Pp : dt;
            sA[buf * SQT + lane] = a;
            sP[buf * SQT + lane] = fast ? Pp : 1.f;
            if (lane == 31) {
                sInfo[buf * 4] = fast ? 1.f : 0.f;
                sInfo[buf * 4 + 1] = fast ? Pp : 1.f;
            }
            if (tile + 1 < ntiles) load_dt(tile + 1);
        }
        if constexpr (sizeof(T) == 4) ssdr_wait_all();
        __syncthreads();  // (A) tile `tile` staged, its step scalars written
        if (tile + 1 < ntiles) stage(tile + 1, buf ^ 1);
        {
            const float* bx = sX + buf * SQT * RB;
            const float* w = sW + buf * SQT;
            for (int e = tid; e < SQT * RB; e += nthreads) sXW[e] = bx[e] * w[e / RB];
        }
        __syncthreads();  // (B)
        {
            const float* bB = sB + buf * SQT * NP + n0;
            const float* bC = sC + buf * SQT * NP + n0;
            const float* xw = sXW + r;
            float* part = sPart + tid;
            if (sInfo[buf * 4] != 0.f) {
#pragma unroll 8
                for (int t = 0; t < SQT; ++t) {
                    const float4 b = *reinterpret_cast<const float4*>(bB + t * NP);
                    const float4 c = *reinterpret_cast<const float4*>(bC + t * NP);
                    const float u = xw[t * RB];
                    R[0] = fmaf(u, b.x, R[0]);
                    R[1] = fmaf(u, b.y, R[1]);
                    R[2] = fmaf(u, b.z, R[2]);
                    R[3] = fmaf(u, b.w, R[3]);
                    float y = c.x * R[0];
                    y = fmaf(c.y, R[1], y);
                    y = fmaf(c.z, R[2], y);
                    y = fmaf(c.w, R[3], y);
                    part[t * PS] = y;
                }
                const float pend = sInfo[buf * 4 + 1];
#pragma unroll
                for (int s = 0; s < 4; ++s) R[s] *= pend;
            } else {
                const float* av = sA + buf * SQT;
#pragma unroll 4
                for (int t = 0; t < SQT; ++t) {
                    const float4 b = *reinterpret_cast<const float4*>(bB + t * NP);
                    const float4 c = *reinterpret_cast<const float4*>(bC + t * NP);
                    const float u = xw[t * RB];
                    const float a = av[t];
                    R[0] = fmaf(a, R[0], u * b.x);
                    R[1] = fmaf(a, R[1], u * b.y);
                    R[2] = fmaf(a, R[2], u * b.z);
                    R[3] = fmaf(a, R[3], u * b.w);
                    float y = c.x * R[0];
                    y = fmaf(c.y, R[1], y);
                    y = fmaf(c.z, R[2], y);
                    y = fmaf(c.w, R[3], y);
                    part[t * PS] = y;
                }
            }
        }
        __syncthreads();  // (C) the partials of the tile
        {
            const float* bx = sX + buf * SQT * RB;
            const float* pv = sP + buf * SQT;
            for (int e = tid; e < SQT * RB; e += nthreads) {
                const int t = e / RB, rr = e % RB;
                const int tt = t0 + t, qq = q0 + rr;
                if (tt >= L || qq >= P) continue;
                const float* src = sPart + t * PS + rr * G;
                float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
                for (int u = 0; u < G; u += 4) {
                    const float4 v = *reinterpret_cast<const float4*>(src + u);
                    s0 += v.x;
                    s1 += v.y;
                    s2 += v.z;
                    s3 += v.w;
                }
                float y = ((s0 + s1) + (s2 + s3)) * pv[t];
                if (p.D) y += (p.d_per_channel ? p.D[j * P + qq] : dj) * bx[e];
                if (zp) y *= silu_f(ldf(zp + i * p.z_sb + (long long)tt * p.z_st + (long long)j * P + qq));
                out[i * p.out_sb + (long long)tt * p.out_st + (long long)j * P + qq] = cvt<T>(y);
            }
        }
    }
    if (p.final_states && q < P) {
        float* dst = p.final_states + ((size_t)i * H + j) * P * N + (size_t)q * N;
#pragma unroll
        for (int s = 0; s < 4; ++s)
            if (n0 + s < N) dst[n0 + s] = R[s];
    }
}

#include "ssd_seed_steps.cuh"

// The same with two helper warps (`ssdr_h_*`, the block's last two warps): helper 0
// stages B and C (three buffers), helper 1 stages x (four buffers) and computes the step
// scalars and x * w of tile k+1, while the WB compute warps run tile k's steps and the
// epilogue of tile k-1; one __syncthreads per tile. So no serial per-tile work (the dt
// chain: softplus, exp, the scan; the copies) sits on the compute warps' path.
// Launch: (WB + 2) * 32 threads, p.qb = WB * 32 / G.
// GC, WBC: G and the compute warps as compile-time constants (0: from p / blockDim), so
// that the step loop's shared-memory offsets are immediates.
template <typename T, int GC = 0, int WBC = 0, bool PIPE = false>
__device__ __forceinline__ void ssdr_h_body(const SsdParams& p, float* sm) {
    const int G = GC ? GC : p.G;
    const int RB = (GC && WBC) ? WBC * 32 / GC : p.qb;
    const int N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen;
    const int NP = 4 * G;
    const int ncomp = WBC ? WBC * 32 : blockDim.x - 64;  // compute threads
    const int PS = ncomp + 4;
    const int tid = threadIdx.x, lane = tid & 31;
    const bool helper = tid >= ncomp;
    const int j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const int q0 = blockIdx.x * RB;
    const int r = tid / G, g = tid % G, n0 = 4 * g;
    const int q = q0 + r;

    // Shared memory (floats): B[3][32][NP], C[3][32][NP], x[4][32][RB], xw[2][32][RB],
    // partials[2][32][PS], a[3][32], P[4][32], w[2][32], info[3][4].
    float* sB = sm;
    float* sC = sB + 3 * SQT * NP;
    float* sX = sC + 3 * SQT * NP;
    float* sXW = sX + 4 * SQT * RB;
    float* sPart = sXW + 2 * SQT * RB;
    float* sA = sPart + 2 * SQT * PS;
    float* sP = sA + 3 * SQT;
    float* sW = sP + 4 * SQT;
    float* sInfo = sW + 2 * SQT;
    // `p.mode & 4` (split): helper 0 stages B, C and x and forms x * w; helper 1 runs only
    // the dt chain, two tiles ahead (w through shared memory), so that no warp carries
    // both the copies and the chain's latency.
    const bool split = (p.mode & 4) != 0;
    constexpr bool pipe = PIPE;  // the step loop and the epilogue software-pipelined (`_p`)
    // Timing diagnostics of the `_p` kernels only (WRONG outputs): `p.mode` bits 16 no dt
    // chain, 32 no epilogues, 64 no step loop, 128 no B / C copies.
    const int diag = PIPE ? p.mode >> 4 : 0;

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const bool vec = p.async_copy != 0;
    const int ntiles = (L + SQT - 1) / SQT;

    // Helper warp 0: stages B and C of tile `tile` into buffer tile % 3 (zeros past L and
    // N); one commit group per call (empty past the last tile).
    auto stage_bc = [&](int tile, bool commit) {
        if (tile < ntiles) {
            const int t0 = tile * SQT;
            float* bb = sB + (tile % 3) * SQT * NP;
            float* bc = sC + (tile % 3) * SQT * NP;
            if constexpr (sizeof(T) == 4) {
                if (vec) {
                    // Lane (row ts, chunk c); rows ts, ts + rpp, ...: pointers stepped, no
                    // index arithmetic per copy.
                    const int nc = NP / 4, rpp = 32 / nc;
                    const int c = lane % nc, ts = lane / nc;
                    const T* bsrc = Bp + i * p.B_sb + (long long)(t0 + ts) * p.B_st + (long long)k * N + 4 * c;
                    const T* csrc = Cp + i * p.C_sb + (long long)(t0 + ts) * p.C_st + (long long)k * N + 4 * c;
                    const long long bstep = rpp * p.B_st, cstep = rpp * p.C_st;
                    float* bd = bb + ts * NP + 4 * c;
                    float* cd = bc + ts * NP + 4 * c;
                    if (t0 + SQT <= L && NP == N) {
#pragma unroll 8
                        for (int t = ts; t < SQT; t += rpp) {
                            ssdr_cp16(bd, bsrc, true);
                            ssdr_cp16(cd, csrc, true);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    } else {
                        const bool cok = 4 * c < N;
                        for (int t = ts; t < SQT; t += rpp) {
                            const bool ok = cok && t0 + t < L;
                            ssdr_cp16(bd, ok ? bsrc : Bp, ok);
                            ssdr_cp16(cd, ok ? csrc : Cp, ok);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    }
                } else {
                    for (int e = lane; e < SQT * NP; e += 32) {
                        const int t = e / NP, n = e % NP;
                        const bool ok = t0 + t < L && n < N;
                        const long long tt = ok ? t0 + t : 0;
                        const int nn = ok ? n : 0;
                        ssdr_cp4(bb + e, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + nn, ok);
                        ssdr_cp4(bc + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + nn, ok);
                    }
                }
            } else {
                for (int e = lane; e < SQT * NP; e += 32) {
                    const int t = e / NP, n = e % NP;
                    const bool ok = t0 + t < L && n < N;
                    const long long tt = t0 + t;
                    bb[e] = ok ? ldf(Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + n) : 0.f;
                    bc[e] = ok ? ldf(Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + n) : 0.f;
                }
            }
        }
        if constexpr (sizeof(T) == 4)
            if (commit) ssdr_commit();
    };
    // Helper warp 1: stages x of tile `tile` into buffer tile % 4 (zeros past L and p).
    auto stage_x = [&](int tile, bool commit) {
        if (tile < ntiles) {
            const int t0 = tile * SQT;
            float* bx = sX + (tile % 4) * SQT * RB;
            if constexpr (sizeof(T) == 4) {
                if (vec) {
                    const int xc = RB / 4;
                    for (int e = lane; e < SQT * xc; e += 32) {
                        const int t = e / xc, c = e % xc;
                        const bool ok = t0 + t < L && q0 + 4 * c < P;
                        const long long tt = ok ? t0 + t : 0;
                        const int qq = ok ? q0 + 4 * c : 0;
                        ssdr_cp16(bx + t * RB + 4 * c, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                    }
                } else {
                    for (int e = lane; e < SQT * RB; e += 32) {
                        const int t = e / RB, rr = e % RB;
                        const bool ok = t0 + t < L && q0 + rr < P;
                        const long long tt = ok ? t0 + t : 0;
                        const int qq = ok ? q0 + rr : 0;
                        ssdr_cp4(bx + e, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                    }
                }
            } else {
                for (int e = lane; e < SQT * RB; e += 32) {
                    const int t = e / RB, rr = e % RB;
                    const bool ok = t0 + t < L && q0 + rr < P;
                    const long long tt = t0 + t;
                    bx[e] = ok ? ldf(x + i * p.x_sb + tt * p.x_st + (long long)j * P + q0 + rr) : 0.f;
                }
            }
        }
        if constexpr (sizeof(T) == 4)
            if (commit) ssdr_commit();
    };
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    float raw = 0.f;
    int reset = 0;
    auto load_dt = [&](int tile) {
        const int tt = tile * SQT + lane;
        raw = 0.f;
        reset = 0;
        if (tt < L) {
            raw = ldf(dtp + i * p.dt_sb + (long long)tt * p.dt_st + j);
            if (p.seq_idx && tt > 0) {
                const int* sq = p.seq_idx + (size_t)i * L;
                reset = sq[tt] != sq[tt - 1];
            }
        }
    };
    // Helper warp: the step scalars of tile `tile` (from `raw`) and x * w, once its stage
    // has landed (the caller waited).
    auto chain = [&](int tile) -> float {
        const int t0 = tile * SQT;
        const bool valid = t0 + lane < L;
        float dt = 0.f, a = 1.f;
        if (valid) {
            dt = step_size(raw + bias, p.softplus, p.has_limit, p.lo, p.hi);
            a = reset ? 0.f : expf(dt * Aj);
        }
        float Pp = a;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float v = __shfl_up_sync(0xffffffffu, Pp, o);
            if (lane >= o) Pp *= v;
        }
        const bool ok = reset == 0 && Pp >= 1e-30f && Pp <= 1e30f;
        const bool fast = (p.mode & 1) == 0 && __all_sync(0xffffffffu, ok);
        sA[(tile % 3) * SQT + lane] = a;
        sP[(tile % 4) * SQT + lane] = fast ? Pp : 1.f;
        if (lane == 31) {
            sInfo[(tile % 3) * 4] = fast ? 1.f : 0.f;
            sInfo[(tile % 3) * 4 + 1] = fast ? Pp : 1.f;
        }
        return fast ? dt / Pp : dt;
    };
    // x * w of tile `tile` (its stage has landed): w in a register (lane = step) ...
    auto make_xw = [&](int tile, float w) {
        const float* bx = sX + (tile % 4) * SQT * RB;
        float* xw = sXW + (tile & 1) * SQT * RB;
        for (int e = lane; e < SQT * RB; e += 32) xw[e] = bx[e] * __shfl_sync(0xffffffffu, w, e / RB);
    };
    // ... or in shared memory (split).
    auto make_xw_s = [&](int tile) {
        const float* bx = sX + (tile % 4) * SQT * RB;
        const float* wv = sW + (tile & 1) * SQT;
        float* xw = sXW + (tile & 1) * SQT * RB;
        for (int e = lane; e < SQT * RB; e += 32) xw[e] = bx[e] * wv[e / RB];
    };

    float R[4] = {0.f, 0.f, 0.f, 0.f};
    if (!helper && p.init) {
        const float* src = p.init + ((size_t)i * H + j) * P * N;
#pragma unroll
        for (int s = 0; s < 4; ++s)
            if (q < P && n0 + s < N) R[s] = src[(size_t)q * N + n0 + s];
    }
    const int hw = helper ? (tid - ncomp) >> 5 : -1;  // helper warp 0: B, C; 1: x, dt
    if (split) {
        if (hw == 0) {
            stage_bc(0, false);
            stage_x(0, true);
            stage_bc(1, false);
            stage_x(1, true);
        } else if (hw == 1) {
            load_dt(0);
            sW[lane] = chain(0);
            if (ntiles > 1) {
                load_dt(1);
                sW[SQT + lane] = chain(1);
                if (ntiles > 2) load_dt(2);
            }
        }
        __syncthreads();
        if (hw == 0) {
            if constexpr (sizeof(T) == 4) ssdr_wait1();
            __syncwarp();
            make_xw_s(0);
        }
    } else if (hw == 0) {
        stage_bc(0, true);
        stage_bc(1, true);
        if constexpr (sizeof(T) == 4) ssdr_wait1();
    } else if (hw == 1) {
        load_dt(0);
        stage_x(0, true);
        stage_x(1, true);
        if constexpr (sizeof(T) == 4) ssdr_wait1();
        __syncwarp();
        make_xw(0, chain(0));
        if (ntiles > 1) load_dt(1);
    }
    __syncthreads();

    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
    // The epilogue of tile `tile` (compute threads): sum the G partials of each (step, row).
    // `p.mode & 2`: helper warp 0 runs the epilogues (lanes 0..31), else the compute threads.
    const bool epi_h = (p.mode & 2) != 0;
    auto epilogue = [&](int tile, int first, int stride) {
        const int t0 = tile * SQT;
        const float* bx = sX + (tile % 4) * SQT * RB;
        const float* pv = sP + (tile % 4) * SQT;
        const float* part = sPart + (tile & 1) * SQT * PS;
        if constexpr (pipe) {
            // Batches of 4 (step, row) pairs: every shared-memory (and z) load of a batch
            // before its stores (a load cannot pass a generic store that may alias it).
            for (int e0 = first; e0 < SQT * RB; e0 += 4 * stride) {
                float sum[4], xv[4], pt[4], zv[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int e = e0 + u * stride;
                    sum[u] = 0.f;
                    xv[u] = 0.f;
                    pt[u] = 0.f;
                    zv[u] = 0.f;
                    if (e < SQT * RB) {
                        const int t = e / RB, rr = e % RB;
                        const float* src = part + t * PS + rr * G;
                        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
                        for (int v4 = 0; v4 < G; v4 += 4) {
                            const float4 v = *reinterpret_cast<const float4*>(src + v4);
                            s0 += v.x;
                            s1 += v.y;
                            s2 += v.z;
                            s3 += v.w;
                        }
                        sum[u] = (s0 + s1) + (s2 + s3);
                        xv[u] = bx[e];
                        pt[u] = pv[t];
                        const int tt = t0 + t, qq = q0 + rr;
                        if (zp && tt < L && qq < P)
                            zv[u] = ldf(zp + i * p.z_sb + (long long)tt * p.z_st + (long long)j * P + qq);
                    }
                }
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int e = e0 + u * stride;
                    if (e >= SQT * RB) continue;
                    const int t = e / RB, rr = e % RB;
                    const int tt = t0 + t, qq = q0 + rr;
                    if (tt >= L || qq >= P) continue;
                    float y = sum[u] * pt[u];
                    if (p.D) y += (p.d_per_channel ? p.D[j * P + qq] : dj) * xv[u];
                    if (zp) y *= silu_f(zv[u]);
                    out[i * p.out_sb + (long long)tt * p.out_st + (long long)j * P + qq] = cvt<T>(y);
                }
            }
        } else {
        for (int e = first; e < SQT * RB; e += stride) {
            const int t = e / RB, rr = e % RB;
            const int tt = t0 + t, qq = q0 + rr;
            if (tt >= L || qq >= P) continue;
            const float* src = part + t * PS + rr * G;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
            for (int u = 0; u < G; u += 4) {
                const float4 v = *reinterpret_cast<const float4*>(src + u);
                s0 += v.x;
                s1 += v.y;
                s2 += v.z;
                s3 += v.w;
            }
            float y = ((s0 + s1) + (s2 + s3)) * pv[t];
            if (p.D) y += (p.d_per_channel ? p.D[j * P + qq] : dj) * bx[e];
            if (zp) y *= silu_f(ldf(zp + i * p.z_sb + (long long)tt * p.z_st + (long long)j * P + qq));
            out[i * p.out_sb + (long long)tt * p.out_st + (long long)j * P + qq] = cvt<T>(y);
        }
        }
    };

    for (int tile = 0; tile < ntiles; ++tile) {
        if (split && hw >= 0) {
            if (hw == 0) {
                stage_bc(tile + 2, false);
                stage_x(tile + 2, true);
                if constexpr (sizeof(T) == 4) ssdr_wait1();
                __syncwarp();
                if (tile + 1 < ntiles) make_xw_s(tile + 1);
            } else {
                if (tile + 2 < ntiles) {
                    sW[(tile & 1) * SQT + lane] = chain(tile + 2);
                    if (tile + 3 < ntiles) load_dt(tile + 3);
                }
                if (epi_h && tile > 0) epilogue(tile - 1, lane, 32);
            }
        } else if (hw == 0) {
            if (diag & 8) {
                if constexpr (sizeof(T) == 4) ssdr_commit();
            } else {
                stage_bc(tile + 2, true);
            }
            if (epi_h && tile > 0 && !(diag & 2)) epilogue(tile - 1, lane, 32);
            if constexpr (sizeof(T) == 4) ssdr_wait1();
        } else if (hw == 1) {
            stage_x(tile + 2, true);
            if (tile + 1 < ntiles) {
                if constexpr (sizeof(T) == 4) ssdr_wait1();
                __syncwarp();
                if (diag & 1) {
                    if (lane == 31) {
                        sInfo[((tile + 1) % 3) * 4] = 1.f;
                        sInfo[((tile + 1) % 3) * 4 + 1] = 1.f;
                    }
                    make_xw(tile + 1, 0.01f);
                } else {
                    make_xw(tile + 1, chain(tile + 1));
                }
                if (tile + 2 < ntiles) load_dt(tile + 2);
            }
        } else if (diag & 4) {
            if (!epi_h && tile > 0 && !(diag & 2)) epilogue(tile - 1, tid, ncomp);
        } else {
            const float* bB = sB + (tile % 3) * SQT * NP + n0;
            const float* bC = sC + (tile % 3) * SQT * NP + n0;
            const float* xw = sXW + (tile & 1) * SQT * RB + r;
            float* part = sPart + (tile & 1) * SQT * PS + tid;
            if constexpr (pipe) {
                // Pipelined: the operands of 8 steps are loaded before the previous 8 steps'
                // partials are stored (a load cannot pass a store that may alias it).
                if (sInfo[(tile % 3) * 4] != 0.f) {
                    ssdr_steps8<false>(R, bB, bC, xw, nullptr, part, NP, RB, PS);
                    const float pend = sInfo[(tile % 3) * 4 + 1];
#pragma unroll
                    for (int s = 0; s < 4; ++s) R[s] *= pend;
                } else {
                    ssdr_steps8<true>(R, bB, bC, xw, sA + (tile % 3) * SQT, part, NP, RB, PS);
                }
            } else if (sInfo[(tile % 3) * 4] != 0.f) {
#pragma unroll 8
                for (int t = 0; t < SQT; ++t) {
                    const float4 b = *reinterpret_cast<const float4*>(bB + t * NP);
                    const float4 c = *reinterpret_cast<const float4*>(bC + t * NP);
                    const float u = xw[t * RB];
                    R[0] = fmaf(u, b.x, R[0]);
                    R[1] = fmaf(u, b.y, R[1]);
                    R[2] = fmaf(u, b.z, R[2]);
                    R[3] = fmaf(u, b.w, R[3]);
                    float y = c.x * R[0];
                    y = fmaf(c.y, R[1], y);
                    y = fmaf(c.z, R[2], y);
                    y = fmaf(c.w, R[3], y);
                    part[t * PS] = y;
                }
                const float pend = sInfo[(tile % 3) * 4 + 1];
#pragma unroll
                for (int s = 0; s < 4; ++s) R[s] *= pend;
            } else {
                const float* av = sA + (tile % 3) * SQT;
#pragma unroll 4
                for (int t = 0; t < SQT; ++t) {
                    const float4 b = *reinterpret_cast<const float4*>(bB + t * NP);
                    const float4 c = *reinterpret_cast<const float4*>(bC + t * NP);
                    const float u = xw[t * RB];
                    const float a = av[t];
                    R[0] = fmaf(a, R[0], u * b.x);
                    R[1] = fmaf(a, R[1], u * b.y);
                    R[2] = fmaf(a, R[2], u * b.z);
                    R[3] = fmaf(a, R[3], u * b.w);
                    float y = c.x * R[0];
                    y = fmaf(c.y, R[1], y);
                    y = fmaf(c.z, R[2], y);
                    y = fmaf(c.w, R[3], y);
                    part[t * PS] = y;
                }
            }
            if (!epi_h && tile > 0 && !(diag & 2)) epilogue(tile - 1, tid, ncomp);
        }
        __syncthreads();
    }
    if (epi_h ? hw == (split ? 1 : 0) : !helper) epilogue(ntiles - 1, epi_h ? lane : tid, epi_h ? 32 : ncomp);
    if (!helper) {
        if (p.final_states && q < P) {
            float* dst = p.final_states + ((size_t)i * H + j) * P * N + (size_t)q * N;
#pragma unroll
            for (int s = 0; s < 4; ++s)
                if (n0 + s < N) dst[n0 + s] = R[s];
        }
    }
}

// `ssdr_h2_*` (`_q1`, `_q2`; `MAMBA_CUDA_SSDR_Q=1|2`): a copy of the pipelined `ssdr_h`
// (so that the measured kernels keep their code) with helper 1 running the dt chain of the
// next tile BEFORE it waits for that tile's x copies (the copy latency overlaps the chain),
// and LA tiles of look-ahead for the copies (B / C buffers LA + 2, x buffers LA + 3).
template <typename T, int GC = 0, int WBC = 0, int LA = 1>
__device__ __forceinline__ void ssdr_h2_body(const SsdParams& p, float* sm) {
    const int G = GC ? GC : p.G;
    const int RB = (GC && WBC) ? WBC * 32 / GC : p.qb;
    const int N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen;
    const int NP = 4 * G;
    const int ncomp = WBC ? WBC * 32 : blockDim.x - 64;  // compute threads
    const int PS = ncomp + 4;
    const int tid = threadIdx.x, lane = tid & 31;
    const bool helper = tid >= ncomp;
    const int j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const int q0 = blockIdx.x * RB;
    const int r = tid / G, g = tid % G, n0 = 4 * g;
    const int q = q0 + r;

    // Shared memory (floats): B[3][32][NP], C[3][32][NP], x[4][32][RB], xw[2][32][RB],
    // partials[2][32][PS], a[3][32], P[4][32], w[2][32], info[3][4].
    constexpr int NBC = LA + 2, NBX = LA + 3;
    float* sB = sm;
    float* sC = sB + NBC * SQT * NP;
    float* sX = sC + NBC * SQT * NP;
    float* sXW = sX + NBX * SQT * RB;
    float* sPart = sXW + 2 * SQT * RB;
    float* sA = sPart + 2 * SQT * PS;
    float* sP = sA + 3 * SQT;
    float* sW = sP + 4 * SQT;
    float* sInfo = sW + 2 * SQT;
    // `p.mode & 4` (split): helper 0 stages B, C and x and forms x * w; helper 1 runs only
    // the dt chain, two tiles ahead (w through shared memory), so that no warp carries
    // both the copies and the chain's latency.
    constexpr bool split = false;
    constexpr bool pipe = true;  // the step loop and the epilogue software-pipelined (`_p`)
    // Timing diagnostics of the `_p` kernels only (WRONG outputs): `p.mode` bits 16 no dt
    // chain, 32 no epilogues, 64 no step loop, 128 no B / C copies.
    const int diag = p.mode >> 4;

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    // async_copy bit 0: B / C rows 16-byte copies; bit 1: x rows too (RB % 4 == 0).
    const bool vec = (p.async_copy & 1) != 0;
    const bool vecx = (p.async_copy & 2) != 0;
    const int ntiles = (L + SQT - 1) / SQT;

    // Helper warp 0: stages B and C of tile `tile` into buffer tile % 3 (zeros past L and
    // N); one commit group per call (empty past the last tile).
    auto stage_bc = [&](int tile, bool commit) {
        if (tile < ntiles) {
            const int t0 = tile * SQT;
            float* bb = sB + (tile % NBC) * SQT * NP;
            float* bc = sC + (tile % NBC) * SQT * NP;
            if constexpr (sizeof(T) == 4) {
                if (vec) {
                    // Lane (row ts, chunk c); rows ts, ts + rpp, ...: pointers stepped, no
                    // index arithmetic per copy.
                    const int nc = NP / 4, rpp = 32 / nc;
                    const int c = lane % nc, ts = lane / nc;
                    const T* bsrc = Bp + i * p.B_sb + (long long)(t0 + ts) * p.B_st + (long long)k * N + 4 * c;
                    const T* csrc = Cp + i * p.C_sb + (long long)(t0 + ts) * p.C_st + (long long)k * N + 4 * c;
                    const long long bstep = rpp * p.B_st, cstep = rpp * p.C_st;
                    float* bd = bb + ts * NP + 4 * c;
                    float* cd = bc + ts * NP + 4 * c;
                    if (t0 + SQT <= L && NP == N) {
#pragma unroll 8
                        for (int t = ts; t < SQT; t += rpp) {
                            ssdr_cp16(bd, bsrc, true);
                            ssdr_cp16(cd, csrc, true);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    } else {
                        const bool cok = 4 * c < N;
                        for (int t = ts; t < SQT; t += rpp) {
                            const bool ok = cok && t0 + t < L;
                            ssdr_cp16(bd, ok ? bsrc : Bp, ok);
                            ssdr_cp16(cd, ok ? csrc : Cp, ok);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    }
                } else {
                    for (int e = lane; e < SQT * NP; e += 32) {
                        const int t = e / NP, n = e % NP;
                        const bool ok = t0 + t < L && n < N;
                        const long long tt = ok ? t0 + t : 0;
                        const int nn = ok ? n : 0;
                        ssdr_cp4(bb + e, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + nn, ok);
                        ssdr_cp4(bc + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + nn, ok);
                    }
                }
            } else {
                for (int e = lane; e < SQT * NP; e += 32) {
                    const int t = e / NP, n = e % NP;
                    const bool ok = t0 + t < L && n < N;
                    const long long tt = t0 + t;
                    bb[e] = ok ? ldf(Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + n) : 0.f;
                    bc[e] = ok ? ldf(Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + n) : 0.f;
                }
            }
        }
        if constexpr (sizeof(T) == 4)
            if (commit) ssdr_commit();
    };
    // Helper warp 1: stages x of tile `tile` into buffer tile % 4 (zeros past L and p).
    auto stage_x = [&](int tile, bool commit) {
        if (tile < ntiles) {
            const int t0 = tile * SQT;
            float* bx = sX + (tile % NBX) * SQT * RB;
            if constexpr (sizeof(T) == 4) {
                if (vecx) {
                    const int xc = RB / 4;
                    for (int e = lane; e < SQT * xc; e += 32) {
                        const int t = e / xc, c = e % xc;
                        const bool ok = t0 + t < L && q0 + 4 * c < P;
                        const long long tt = ok ? t0 + t : 0;
                        const int qq = ok ? q0 + 4 * c : 0;
                        ssdr_cp16(bx + t * RB + 4 * c, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                    }
                } else {
                    for (int e = lane; e < SQT * RB; e += 32) {
                        const int t = e / RB, rr = e % RB;
                        const bool ok = t0 + t < L && q0 + rr < P;
                        const long long tt = ok ? t0 + t : 0;
                        const int qq = ok ? q0 + rr : 0;
                        ssdr_cp4(bx + e, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                    }
                }
            } else {
                for (int e = lane; e < SQT * RB; e += 32) {
                    const int t = e / RB, rr = e % RB;
                    const bool ok = t0 + t < L && q0 + rr < P;
                    const long long tt = t0 + t;
                    bx[e] = ok ? ldf(x + i * p.x_sb + tt * p.x_st + (long long)j * P + q0 + rr) : 0.f;
                }
            }
        }
        if constexpr (sizeof(T) == 4)
            if (commit) ssdr_commit();
    };
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    float raw = 0.f;
    int reset = 0;
    auto load_dt = [&](int tile) {
        const int tt = tile * SQT + lane;
        raw = 0.f;
        reset = 0;
        if (tt < L) {
            raw = ldf(dtp + i * p.dt_sb + (long long)tt * p.dt_st + j);
            if (p.seq_idx && tt > 0) {
                const int* sq = p.seq_idx + (size_t)i * L;
                reset = sq[tt] != sq[tt - 1];
            }
        }
    };
    // Helper warp: the step scalars of tile `tile` (from `raw`) and x * w, once its stage
    // has landed (the caller waited).
    auto chain = [&](int tile) -> float {
        const int t0 = tile * SQT;
        const bool valid = t0 + lane < L;
        float dt = 0.f, a = 1.f;
        if (valid) {
            dt = step_size(raw + bias, p.softplus, p.has_limit, p.lo, p.hi);
            a = reset ? 0.f : expf(dt * Aj);
        }
        float Pp = a;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float v = __shfl_up_sync(0xffffffffu, Pp, o);
            if (lane >= o) Pp *= v;
        }
        const bool ok = reset == 0 && Pp >= 1e-30f && Pp <= 1e30f;
        const bool fast = (p.mode & 1) == 0 && __all_sync(0xffffffffu, ok);
        sA[(tile % 3) * SQT + lane] = a;
        sP[(tile % 4) * SQT + lane] = fast ? Pp : 1.f;
        if (lane == 31) {
            sInfo[(tile % 3) * 4] = fast ? 1.f : 0.f;
            sInfo[(tile % 3) * 4 + 1] = fast ? Pp : 1.f;
        }
        return fast ? dt / Pp : dt;
    };
    // x * w of tile `tile` (its stage has landed): w in a register (lane = step) ...
    auto make_xw = [&](int tile, float w) {
        const float* bx = sX + (tile % NBX) * SQT * RB;
        float* xw = sXW + (tile & 1) * SQT * RB;
        for (int e = lane; e < SQT * RB; e += 32) xw[e] = bx[e] * __shfl_sync(0xffffffffu, w, e / RB);
    };
    // ... or in shared memory (split).
    auto make_xw_s = [&](int tile) {
        const float* bx = sX + (tile % NBX) * SQT * RB;
        const float* wv = sW + (tile & 1) * SQT;
        float* xw = sXW + (tile & 1) * SQT * RB;
        for (int e = lane; e < SQT * RB; e += 32) xw[e] = bx[e] * wv[e / RB];
    };

    float R[4] = {0.f, 0.f, 0.f, 0.f};
    if (!helper && p.init) {
        const float* src = p.init + ((size_t)i * H + j) * P * N;
#pragma unroll
        for (int s = 0; s < 4; ++s)
            if (q < P && n0 + s < N) R[s] = src[(size_t)q * N + n0 + s];
    }
    const int hw = helper ? (tid - ncomp) >> 5 : -1;  // helper warp 0: B, C; 1: x, dt
    if (split) {
        if (hw == 0) {
            stage_bc(0, false);
            stage_x(0, true);
            stage_bc(1, false);
            stage_x(1, true);
        } else if (hw == 1) {
            load_dt(0);
            sW[lane] = chain(0);
            if (ntiles > 1) {
                load_dt(1);
                sW[SQT + lane] = chain(1);
                if (ntiles > 2) load_dt(2);
            }
        }
        __syncthreads();
        if (hw == 0) {
            if constexpr (sizeof(T) == 4) ssdr_wait1();
            __syncwarp();
            make_xw_s(0);
        }
    } else if (hw == 0) {
        stage_bc(0, true);
        stage_bc(1, true);
        if constexpr (LA == 2) stage_bc(2, true);
        if constexpr (sizeof(T) == 4) ssdr_wait<LA>();
    } else if (hw == 1) {
        load_dt(0);
        stage_x(0, true);
        stage_x(1, true);
        if constexpr (LA == 2) stage_x(2, true);
        if constexpr (sizeof(T) == 4) ssdr_wait<LA>();
        __syncwarp();
        make_xw(0, chain(0));
        if (ntiles > 1) load_dt(1);
    }
    __syncthreads();

    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
    // The epilogue of tile `tile` (compute threads): sum the G partials of each (step, row).
    // `p.mode & 2`: helper warp 0 runs the epilogues (lanes 0..31), else the compute threads.
    const bool epi_h = (p.mode & 2) != 0;
    auto epilogue = [&](int tile, int first, int stride) {
        const int t0 = tile * SQT;
        const float* bx = sX + (tile % NBX) * SQT * RB;
        const float* pv = sP + (tile % 4) * SQT;
        const float* part = sPart + (tile & 1) * SQT * PS;
        if constexpr (pipe) {
            // Batches of 4 (step, row) pairs: every shared-memory (and z) load of a batch
            // before its stores (a load cannot pass a generic store that may alias it).
            for (int e0 = first; e0 < SQT * RB; e0 += 4 * stride) {
                float sum[4], xv[4], pt[4], zv[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int e = e0 + u * stride;
                    sum[u] = 0.f;
                    xv[u] = 0.f;
                    pt[u] = 0.f;
                    zv[u] = 0.f;
                    if (e < SQT * RB) {
                        const int t = e / RB, rr = e % RB;
                        const float* src = part + t * PS + rr * G;
                        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
                        for (int v4 = 0; v4 < G; v4 += 4) {
                            const float4 v = *reinterpret_cast<const float4*>(src + v4);
                            s0 += v.x;
                            s1 += v.y;
                            s2 += v.z;
                            s3 += v.w;
                        }
                        sum[u] = (s0 + s1) + (s2 + s3);
                        xv[u] = bx[e];
                        pt[u] = pv[t];
                        const int tt = t0 + t, qq = q0 + rr;
                        if (zp && tt < L && qq < P)
                            zv[u] = ldf(zp + i * p.z_sb + (long long)tt * p.z_st + (long long)j * P + qq);
                    }
                }
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int e = e0 + u * stride;
                    if (e >= SQT * RB) continue;
                    const int t = e / RB, rr = e % RB;
                    const int tt = t0 + t, qq = q0 + rr;
                    if (tt >= L || qq >= P) continue;
                    float y = sum[u] * pt[u];
                    if (p.D) y += (p.d_per_channel ? p.D[j * P + qq] : dj) * xv[u];
                    if (zp) y *= silu_f(zv[u]);
                    out[i * p.out_sb + (long long)tt * p.out_st + (long long)j * P + qq] = cvt<T>(y);
                }
            }
        } else {
        for (int e = first; e < SQT * RB; e += stride) {
            const int t = e / RB, rr = e % RB;
            const int tt = t0 + t, qq = q0 + rr;
            if (tt >= L || qq >= P) continue;
            const float* src = part + t * PS + rr * G;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
            for (int u = 0; u < G; u += 4) {
                const float4 v = *reinterpret_cast<const float4*>(src + u);
                s0 += v.x;
                s1 += v.y;
                s2 += v.z;
                s3 += v.w;
            }
            float y = ((s0 + s1) + (s2 + s3)) * pv[t];
            if (p.D) y += (p.d_per_channel ? p.D[j * P + qq] : dj) * bx[e];
            if (zp) y *= silu_f(ldf(zp + i * p.z_sb + (long long)tt * p.z_st + (long long)j * P + qq));
            out[i * p.out_sb + (long long)tt * p.out_st + (long long)j * P + qq] = cvt<T>(y);
        }
        }
    };

    for (int tile = 0; tile < ntiles; ++tile) {
        if (split && hw >= 0) {
            if (hw == 0) {
                stage_bc(tile + 2, false);
                stage_x(tile + 2, true);
                if constexpr (sizeof(T) == 4) ssdr_wait1();
                __syncwarp();
                if (tile + 1 < ntiles) make_xw_s(tile + 1);
            } else {
                if (tile + 2 < ntiles) {
                    sW[(tile & 1) * SQT + lane] = chain(tile + 2);
                    if (tile + 3 < ntiles) load_dt(tile + 3);
                }
                if (epi_h && tile > 0) epilogue(tile - 1, lane, 32);
            }
        } else if (hw == 0) {
            if (diag & 8) {
                if constexpr (sizeof(T) == 4) ssdr_commit();
            } else {
                stage_bc(tile + LA + 1, true);
            }
            if (epi_h && tile > 0 && !(diag & 2)) epilogue(tile - 1, lane, 32);
            if constexpr (sizeof(T) == 4) ssdr_wait<LA>();
        } else if (hw == 1) {
            stage_x(tile + LA + 1, true);
            if (tile + 1 < ntiles) {
                // The chain first: it needs only dt, so the x copies land meanwhile.
                float w = 0.01f;
                if (diag & 1) {
                    if (lane == 31) {
                        sInfo[((tile + 1) % 3) * 4] = 1.f;
                        sInfo[((tile + 1) % 3) * 4 + 1] = 1.f;
                    }
                } else {
                    w = chain(tile + 1);
                }
                if (tile + 2 < ntiles) load_dt(tile + 2);
                if constexpr (sizeof(T) == 4) ssdr_wait<LA>();
                __syncwarp();
                make_xw(tile + 1, w);
            }
        } else if (diag & 4) {
            if (!epi_h && tile > 0 && !(diag & 2)) epilogue(tile - 1, tid, ncomp);
        } else {
            const float* bB = sB + (tile % NBC) * SQT * NP + n0;
            const float* bC = sC + (tile % NBC) * SQT * NP + n0;
            const float* xw = sXW + (tile & 1) * SQT * RB + r;
            float* part = sPart + (tile & 1) * SQT * PS + tid;
            if constexpr (pipe) {
                // Pipelined: the operands of 8 steps are loaded before the previous 8 steps'
                // partials are stored (a load cannot pass a store that may alias it).
                if (sInfo[(tile % 3) * 4] != 0.f) {
                    ssdr_steps8<false>(R, bB, bC, xw, nullptr, part, NP, RB, PS);
                    const float pend = sInfo[(tile % 3) * 4 + 1];
#pragma unroll
                    for (int s = 0; s < 4; ++s) R[s] *= pend;
                } else {
                    ssdr_steps8<true>(R, bB, bC, xw, sA + (tile % 3) * SQT, part, NP, RB, PS);
                }
            } else if (sInfo[(tile % 3) * 4] != 0.f) {
#pragma unroll 8
                for (int t = 0; t < SQT; ++t) {
                    const float4 b = *reinterpret_cast<const float4*>(bB + t * NP);
                    const float4 c = *reinterpret_cast<const float4*>(bC + t * NP);
                    const float u = xw[t * RB];
                    R[0] = fmaf(u, b.x, R[0]);
                    R[1] = fmaf(u, b.y, R[1]);
                    R[2] = fmaf(u, b.z, R[2]);
                    R[3] = fmaf(u, b.w, R[3]);
                    float y = c.x * R[0];
                    y = fmaf(c.y, R[1], y);
                    y = fmaf(c.z, R[2], y);
                    y = fmaf(c.w, R[3], y);
                    part[t * PS] = y;
                }
                const float pend = sInfo[(tile % 3) * 4 + 1];
#pragma unroll
                for (int s = 0; s < 4; ++s) R[s] *= pend;
            } else {
                const float* av = sA + (tile % 3) * SQT;
#pragma unroll 4
                for (int t = 0; t < SQT; ++t) {
                    const float4 b = *reinterpret_cast<const float4*>(bB + t * NP);
                    const float4 c = *reinterpret_cast<const float4*>(bC + t * NP);
                    const float u = xw[t * RB];
                    const float a = av[t];
                    R[0] = fmaf(a, R[0], u * b.x);
                    R[1] = fmaf(a, R[1], u * b.y);
                    R[2] = fmaf(a, R[2], u * b.z);
                    R[3] = fmaf(a, R[3], u * b.w);
                    float y = c.x * R[0];
                    y = fmaf(c.y, R[1], y);
                    y = fmaf(c.z, R[2], y);
                    y = fmaf(c.w, R[3], y);
                    part[t * PS] = y;
                }
            }
            if (!epi_h && tile > 0 && !(diag & 2)) epilogue(tile - 1, tid, ncomp);
        }
        __syncthreads();
    }
    if (epi_h ? hw == (split ? 1 : 0) : !helper) epilogue(ntiles - 1, epi_h ? lane : tid, epi_h ? 32 : ncomp);
    if (!helper) {
        if (p.final_states && q < P) {
            float* dst = p.final_states + ((size_t)i * H + j) * P * N + (size_t)q * N;
#pragma unroll
            for (int s = 0; s < 4; ++s)
                if (n0 + s < N) dst[n0 + s] = R[s];
        }
    }
}

// `ssdr_h3_*` (`_r`, `MAMBA_CUDA_SSDR_Q=3`): the dt chain of the WHOLE sequence (dt,
// the decays, their prefix products per 32-step tile, w = dt / P) computed once at the
// start by every thread of the block (8 steps per thread, the 4 segments of a tile
// combined by shuffles) into shared memory (L <= SSDR_LMAX), so that no warp runs a
// chain per tile; the compute warps form x * w themselves (one broadcast load and one
// multiply per step); ONE helper warp stages B, C and x (LA tiles of look-ahead, one
// commit group per tile) and runs the epilogues. One `__syncthreads` per tile.
#define SSDR_LMAX 1024
template <bool SLOW>
__device__ __forceinline__ void ssdr_steps8x(float (&R)[4], const float* bB, const float* bC, const float* xs,
                                             const float* ws, const float* av, float* part, const int NP,
                                             const int RB, const int PS) {
    float4 bq[8], cq[8];
    float uq[8], aq[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        bq[e] = *reinterpret_cast<const float4*>(bB + e * NP);
        cq[e] = *reinterpret_cast<const float4*>(bC + e * NP);
        uq[e] = xs[e * RB] * ws[e];
        aq[e] = SLOW ? av[e] : 1.f;
    }
#pragma unroll
    for (int t8 = 0; t8 < SQT; t8 += 8) {
        float4 bn[8], cn[8];
        float un[8], an[8];
        if (t8 + 8 < SQT) {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                bn[e] = *reinterpret_cast<const float4*>(bB + (t8 + 8 + e) * NP);
                cn[e] = *reinterpret_cast<const float4*>(bC + (t8 + 8 + e) * NP);
                un[e] = xs[(t8 + 8 + e) * RB] * ws[t8 + 8 + e];
                an[e] = SLOW ? av[t8 + 8 + e] : 1.f;
            }
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) {
            const float u = uq[e];
            if (SLOW) {
                const float a = aq[e];
                R[0] = fmaf(a, R[0], u * bq[e].x);
                R[1] = fmaf(a, R[1], u * bq[e].y);
                R[2] = fmaf(a, R[2], u * bq[e].z);
                R[3] = fmaf(a, R[3], u * bq[e].w);
            } else {
                R[0] = fmaf(u, bq[e].x, R[0]);
                R[1] = fmaf(u, bq[e].y, R[1]);
                R[2] = fmaf(u, bq[e].z, R[2]);
                R[3] = fmaf(u, bq[e].w, R[3]);
            }
            float y = cq[e].x * R[0];
            y = fmaf(cq[e].y, R[1], y);
            y = fmaf(cq[e].z, R[2], y);
            y = fmaf(cq[e].w, R[3], y);
            part[(t8 + e) * PS] = y;
        }
        if (t8 + 8 < SQT) {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                bq[e] = bn[e];
                cq[e] = cn[e];
                uq[e] = un[e];
                aq[e] = an[e];
            }
        }
    }
}

template <typename T, int GC = 0, int WBC = 0, int LA = 2>
__device__ __forceinline__ void ssdr_h3_body(const SsdParams& p, float* sm) {
    const int G = GC ? GC : p.G;
    const int RB = (GC && WBC) ? WBC * 32 / GC : p.qb;
    const int N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen;
    const int NP = 4 * G;
    const int ncomp = WBC ? WBC * 32 : blockDim.x - 32;  // compute threads
    const int nthr = ncomp + 32;
    const int PS = ncomp + 4;
    const int tid = threadIdx.x, lane = tid & 31;
    const bool helper = tid >= ncomp;
    const int j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const int q0 = blockIdx.x * RB;
    const int r = tid / G, g = tid % G, n0 = 4 * g;
    const int q = q0 + r;

    // Shared memory (floats): B[NBC][32][NP], C[NBC][32][NP], x[NBX][32][RB],
    // partials[2][32][PS], w[LMAX], P[LMAX], a[LMAX], info[32][2].
    constexpr int NBC = LA + 2, NBX = LA + 3;
    float* sB = sm;
    float* sC = sB + NBC * SQT * NP;
    float* sX = sC + NBC * SQT * NP;
    float* sPart = sX + NBX * SQT * RB;
    float* sWv = sPart + 2 * SQT * PS;
    float* sPv = sWv + SSDR_LMAX;
    float* sAv = sPv + SSDR_LMAX;
    float* sInfo = sAv + SSDR_LMAX;
    // Timing diagnostics (WRONG outputs): `p.mode` bits 32 no epilogues, 64 no step loop,
    // 128 no B / C copies. `p.mode & 2`: the epilogues on the compute warps (helper: copies only).
    const int diag = p.mode >> 4;
    const bool epi_c = (p.mode & 2) != 0;

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    // async_copy bit 0: B / C rows 16-byte copies; bit 1: x rows too (RB % 4 == 0).
    const bool vec = (p.async_copy & 1) != 0;
    const bool vecx = (p.async_copy & 2) != 0;
    const int ntiles = (L + SQT - 1) / SQT;

    // The helper warp: stages B, C and x of tile `tile` (zeros past L, N and p); one
    // commit group per call (empty past the last tile).
    auto stage = [&](int tile) {
        if (tile < ntiles) {
            const int t0 = tile * SQT;
            const bool nobc = (diag & 8) != 0;
            float* bb = sB + (tile % NBC) * SQT * NP;
            float* bc = sC + (tile % NBC) * SQT * NP;
            float* bx = sX + (tile % NBX) * SQT * RB;
            if constexpr (sizeof(T) == 4) {
                if (nobc) {
                } else if (vec) {
                    const int nc = NP / 4, rpp = 32 / nc;
                    const int c = lane % nc, ts = lane / nc;
                    const T* bsrc = Bp + i * p.B_sb + (long long)(t0 + ts) * p.B_st + (long long)k * N + 4 * c;
                    const T* csrc = Cp + i * p.C_sb + (long long)(t0 + ts) * p.C_st + (long long)k * N + 4 * c;
                    const long long bstep = rpp * p.B_st, cstep = rpp * p.C_st;
                    float* bd = bb + ts * NP + 4 * c;
                    float* cd = bc + ts * NP + 4 * c;
                    if (t0 + SQT <= L && NP == N) {
#pragma unroll 8
                        for (int t = ts; t < SQT; t += rpp) {
                            ssdr_cp16(bd, bsrc, true);
                            ssdr_cp16(cd, csrc, true);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    } else {
                        const bool cok = 4 * c < N;
                        for (int t = ts; t < SQT; t += rpp) {
                            const bool ok = cok && t0 + t < L;
                            ssdr_cp16(bd, ok ? bsrc : Bp, ok);
                            ssdr_cp16(cd, ok ? csrc : Cp, ok);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    }
                } else {
                    for (int e = lane; e < SQT * NP; e += 32) {
                        const int t = e / NP, n = e % NP;
                        const bool ok = t0 + t < L && n < N;
                        const long long tt = ok ? t0 + t : 0;
                        const int nn = ok ? n : 0;
                        ssdr_cp4(bb + e, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + nn, ok);
                        ssdr_cp4(bc + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + nn, ok);
                    }
                }
                if (vecx) {
                    const int xc = RB / 4;
                    for (int e = lane; e < SQT * xc; e += 32) {
                        const int t = e / xc, c = e % xc;
                        const bool ok = t0 + t < L && q0 + 4 * c < P;
                        const long long tt = ok ? t0 + t : 0;
                        const int qq = ok ? q0 + 4 * c : 0;
                        ssdr_cp16(bx + t * RB + 4 * c, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                    }
                } else {
                    for (int e = lane; e < SQT * RB; e += 32) {
                        const int t = e / RB, rr = e % RB;
                        const bool ok = t0 + t < L && q0 + rr < P;
                        const long long tt = ok ? t0 + t : 0;
                        const int qq = ok ? q0 + rr : 0;
                        ssdr_cp4(bx + e, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                    }
                }
            } else {
                for (int e = lane; e < SQT * NP; e += 32) {
                    const int t = e / NP, n = e % NP;
                    const bool ok = t0 + t < L && n < N;
                    const long long tt = t0 + t;
                    bb[e] = ok ? ldf(Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + n) : 0.f;
                    bc[e] = ok ? ldf(Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + n) : 0.f;
                }
                for (int e = lane; e < SQT * RB; e += 32) {
                    const int t = e / RB, rr = e % RB;
                    const bool ok = t0 + t < L && q0 + rr < P;
                    const long long tt = t0 + t;
                    bx[e] = ok ? ldf(x + i * p.x_sb + tt * p.x_st + (long long)j * P + q0 + rr) : 0.f;
                }
            }
        }
        if constexpr (sizeof(T) == 4) ssdr_commit();
    };

    if (helper) {
#pragma unroll
        for (int s = 0; s <= LA; ++s) stage(s);
    }
    float R[4] = {0.f, 0.f, 0.f, 0.f};
    if (!helper && p.init) {
        const float* src = p.init + ((size_t)i * H + j) * P * N;
#pragma unroll
        for (int s = 0; s < 4; ++s)
            if (q < P && n0 + s < N) R[s] = src[(size_t)q * N + n0 + s];
    }
    // The chain of the whole sequence: thread s of a pass takes steps 8s .. 8s+7 (segment
    // s & 3 of tile s >> 2; the 4 segments of a tile are 4 consecutive lanes). Steps past L
    // (up to the last tile's end): dt = 0, a = 1.
    {
        const float Aj = p.A[j];
        const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
        const int nseg = ntiles * 4;
        const int sub = lane & 3;
        for (int base = 0; base < nseg; base += nthr) {
            const int s = base + tid;
            const int t0 = 8 * s;
            float dtv[8], Pl[8];
            float raw[8];
            int rs[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int tt = t0 + e;
                raw[e] = 0.f;
                rs[e] = 0;
                if (tt < L) {
                    raw[e] = ldf(dtp + i * p.dt_sb + (long long)tt * p.dt_st + j);
                    if (p.seq_idx && tt > 0) {
                        const int* sq = p.seq_idx + (size_t)i * L;
                        rs[e] = sq[tt] != sq[tt - 1];
                    }
                }
            }
            float acc = 1.f;
            bool ok = true;
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int tt = t0 + e;
                float dt = 0.f, a = 1.f;
                if (tt < L) {
                    dt = step_size(raw[e] + bias, p.softplus, p.has_limit, p.lo, p.hi);
                    a = rs[e] ? 0.f : expf(dt * Aj);
                    ok = ok && rs[e] == 0;
                }
                if (s < nseg) sAv[tt] = a;
                acc *= a;
                Pl[e] = acc;
                dtv[e] = dt;
            }
            // Inclusive products over the tile's segments, then the exclusive one.
            float incl = acc;
            float v = __shfl_up_sync(0xffffffffu, incl, 1);
            if (sub >= 1) incl *= v;
            v = __shfl_up_sync(0xffffffffu, incl, 2);
            if (sub >= 2) incl *= v;
            float ex = __shfl_up_sync(0xffffffffu, incl, 1);
            if (sub == 0) ex = 1.f;
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                Pl[e] *= ex;
                ok = ok && Pl[e] >= 1e-30f && Pl[e] <= 1e30f;
            }
            float okf = ok ? 1.f : 0.f;
            okf = fminf(okf, __shfl_sync(0xffffffffu, okf, lane ^ 1));
            okf = fminf(okf, __shfl_sync(0xffffffffu, okf, lane ^ 2));
            const bool fast = (p.mode & 1) == 0 && okf != 0.f;
            if (s < nseg) {
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    sPv[t0 + e] = fast ? Pl[e] : 1.f;
                    sWv[t0 + e] = fast ? dtv[e] / Pl[e] : dtv[e];
                }
                if (sub == 3) {
                    sInfo[2 * (s >> 2)] = fast ? 1.f : 0.f;
                    sInfo[2 * (s >> 2) + 1] = fast ? Pl[7] : 1.f;
                }
            }
        }
    }
    if (helper) {
        if constexpr (sizeof(T) == 4) ssdr_wait<LA>();
    }
    __syncthreads();

    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
    // The epilogue of tile `tile` (the helper warp's lanes, or the compute threads): sum the
    // G partials of each (step, row), batches of 4 (step, row) pairs (every load of a batch
    // before its stores).
    auto epilogue = [&](int tile, int first, int stride) {
        const int t0 = tile * SQT;
        const float* bx = sX + (tile % NBX) * SQT * RB;
        const float* pv = sPv + t0;
        const float* part = sPart + (tile & 1) * SQT * PS;
        for (int e0 = first; e0 < SQT * RB; e0 += 4 * stride) {
            float sum[4], xv[4], pt[4], zv[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int e = e0 + u * stride;
                sum[u] = 0.f;
                xv[u] = 0.f;
                pt[u] = 0.f;
                zv[u] = 0.f;
                if (e < SQT * RB) {
                    const int t = e / RB, rr = e % RB;
                    const float* src = part + t * PS + rr * G;
                    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
                    for (int v4 = 0; v4 < G; v4 += 4) {
                        const float4 v = *reinterpret_cast<const float4*>(src + v4);
                        s0 += v.x;
                        s1 += v.y;
                        s2 += v.z;
                        s3 += v.w;
                    }
                    sum[u] = (s0 + s1) + (s2 + s3);
                    xv[u] = bx[e];
                    pt[u] = pv[t];
                    const int tt = t0 + t, qq = q0 + rr;
                    if (zp && tt < L && qq < P)
                        zv[u] = ldf(zp + i * p.z_sb + (long long)tt * p.z_st + (long long)j * P + qq);
                }
            }
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int e = e0 + u * stride;
                if (e >= SQT * RB) continue;
                const int t = e / RB, rr = e % RB;
                const int tt = t0 + t, qq = q0 + rr;
                if (tt >= L || qq >= P) continue;
                float y = sum[u] * pt[u];
                if (p.D) y += (p.d_per_channel ? p.D[j * P + qq] : dj) * xv[u];
                if (zp) y *= silu_f(zv[u]);
                out[i * p.out_sb + (long long)tt * p.out_st + (long long)j * P + qq] = cvt<T>(y);
            }
        }
    };

    for (int tile = 0; tile < ntiles; ++tile) {
        if (helper) {
            stage(tile + LA + 1);
            if (!epi_c && tile > 0 && !(diag & 2)) epilogue(tile - 1, lane, 32);
            if constexpr (sizeof(T) == 4) ssdr_wait<LA>();
        } else {
            if (!(diag & 4)) {
            const float* bB = sB + (tile % NBC) * SQT * NP + n0;
            const float* bC = sC + (tile % NBC) * SQT * NP + n0;
            const float* xs = sX + (tile % NBX) * SQT * RB + r;
            const float* ws = sWv + tile * SQT;
            float* part = sPart + (tile & 1) * SQT * PS + tid;
            if (sInfo[2 * tile] != 0.f) {
                ssdr_steps8x<false>(R, bB, bC, xs, ws, nullptr, part, NP, RB, PS);
                const float pend = sInfo[2 * tile + 1];
#pragma unroll
                for (int s = 0; s < 4; ++s) R[s] *= pend;
            } else {
                ssdr_steps8x<true>(R, bB, bC, xs, ws, sAv + tile * SQT, part, NP, RB, PS);
            }
            }
            if (epi_c && tile > 0 && !(diag & 2)) epilogue(tile - 1, tid, ncomp);
        }
        __syncthreads();
    }
    if (helper) {
        if (!epi_c && !(diag & 2)) epilogue(ntiles - 1, lane, 32);
    } else {
        if (epi_c && !(diag & 2)) epilogue(ntiles - 1, tid, ncomp);
    }
    if (!helper && p.final_states && q < P) {
        float* dst = p.final_states + ((size_t)i * H + j) * P * N + (size_t)q * N;
#pragma unroll
        for (int s = 0; s < 4; ++s)
            if (n0 + s < N) dst[n0 + s] = R[s];
    }
}

#ifndef MAMBA_EMU
#define SSDR_INST(T, NAME)                                                                  \
    extern "C" __global__ void __launch_bounds__(256) ssdr_##NAME(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_body<T>(p, ssdr_sm);                                                           \
    }
#define SSDR_H_INST(T, NAME)                                                                \
    extern "C" __global__ void __launch_bounds__(320) ssdr_h_##NAME(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h_body<T>(p, ssdr_sm);                                                         \
    }
SSDR_INST(float, f32)
SSDR_INST(bf16_t, bf16)
SSDR_INST(f16_t, f16)
SSDR_H_INST(float, f32)
SSDR_H_INST(bf16_t, bf16)
SSDR_H_INST(f16_t, f16)
// The seed shape (N 33..64: G = 16) with 2 or 4 compute warps, constants folded.
#define SSDR_H_FIX(WB)                                                                      \
    extern "C" __global__ void __launch_bounds__(WB * 32 + 64) ssdr_h_f32_g16_w##WB(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h_body<float, 16, WB>(p, ssdr_sm);                                             \
    }
SSDR_H_FIX(2)
SSDR_H_FIX(4)
// The software-pipelined step loop and epilogue (`_p`, `MAMBA_CUDA_SSDR_PIPE=1`).
#define SSDR_HP_INST(T, NAME)                                                               \
    extern "C" __global__ void __launch_bounds__(320) ssdr_h_##NAME##_p(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h_body<T, 0, 0, true>(p, ssdr_sm);                                             \
    }
#define SSDR_HP_FIX(WB)                                                                     \
    extern "C" __global__ void __launch_bounds__(WB * 32 + 64) ssdr_h_f32_g16_w##WB##_p(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h_body<float, 16, WB, true>(p, ssdr_sm);                                       \
    }
SSDR_HP_INST(float, f32)
SSDR_HP_INST(bf16_t, bf16)
SSDR_HP_INST(f16_t, f16)
SSDR_HP_FIX(2)
SSDR_HP_FIX(4)
// ssdr_h2 (`_q1`, `_q2`): the chain before the wait for x, LA tiles of copy look-ahead.
#define SSDR_Q_INST(T, NAME, LA)                                                            \
    extern "C" __global__ void __launch_bounds__(320) ssdr_h_##NAME##_q##LA(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h2_body<T, 0, 0, LA>(p, ssdr_sm);                                              \
    }
#define SSDR_Q_FIX(WB, LA)                                                                  \
    extern "C" __global__ void __launch_bounds__(WB * 32 + 64) ssdr_h_f32_g16_w##WB##_q##LA(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h2_body<float, 16, WB, LA>(p, ssdr_sm);                                        \
    }
SSDR_Q_INST(float, f32, 1)
SSDR_Q_INST(bf16_t, bf16, 1)
SSDR_Q_INST(f16_t, f16, 1)
SSDR_Q_INST(float, f32, 2)
SSDR_Q_INST(bf16_t, bf16, 2)
SSDR_Q_INST(f16_t, f16, 2)
SSDR_Q_FIX(2, 1)
SSDR_Q_FIX(3, 1)
SSDR_Q_FIX(4, 1)
SSDR_Q_FIX(2, 2)
SSDR_Q_FIX(4, 2)
// ssdr_h3 (`_r`): the whole dt chain once at the start, one helper warp, LA tiles of
// copy look-ahead (`_r` LA 2; `_r1` LA 1).
#define SSDR_R_INST(T, NAME)                                                                \
    extern "C" __global__ void __launch_bounds__(288) ssdr_h3_##NAME(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float ssdr_sm[];                                    \
        ssdr_h3_body<T, 0, 0, 2>(p, ssdr_sm);                                               \
    }
SSDR_R_INST(float, f32)
SSDR_R_INST(bf16_t, bf16)
SSDR_R_INST(f16_t, f16)
extern "C" __global__ void __launch_bounds__(96) ssdr_h3_f32_g16_w2(const __grid_constant__ SsdParams p) {
    extern __shared__ __align__(16) float ssdr_sm[];
    ssdr_h3_body<float, 16, 2, 2>(p, ssdr_sm);
}
extern "C" __global__ void __launch_bounds__(96) ssdr_h3_f32_g16_w2_r1(const __grid_constant__ SsdParams p) {
    extern __shared__ __align__(16) float ssdr_sm[];
    ssdr_h3_body<float, 16, 2, 1>(p, ssdr_sm);
}
#endif
