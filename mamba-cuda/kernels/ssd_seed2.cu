// `ssdq_*` (sixth session, helper D; src/gpu/seed.rs `ssdr_launch`, `MAMBA_CUDA_SSDR_Q=4`):
// the pipelined `ssdr_h` kernel of ssd_seed.cu (`_p`) with its roles decoupled. In `_p`
// every 32-step tile ends at one __syncthreads, so a tile costs the slowest role's time
// plus the barrier, and a late copy or a slow dt chain stalls every warp. Here there is
// no barrier in the tile loop: every per-tile buffer is a ring of NS slots, and four
// mbarriers per slot say when a slot is full or free:
//   bc_full[s]   helper 0 (B, C copies; cp.async.mbarrier.arrive.noinc per lane),
//   xw_full[s]   helper 1 (x copies, the dt chain, x * w, the decays and prefix products),
//   part_full[s] the compute threads (the tile's steps done: partials written, B / C /
//                x * w of the slot read),
//   epi_done[s]  helper 2 (the tile's epilogue done: partials, x and P of the slot read).
// Helper 0 stages tile t once part_full(t - NS) completed, helper 1 stages x of tile
// t + XLA once epi_done(t + XLA - NS) completed, the compute threads write partials of
// tile t once epi_done(t - NS) completed; so each role runs up to NS tiles ahead of the
// next one and a tile's time is the slowest role's average, not the sum of each tile's
// worst. Every waiter is at most one phase ahead of the barrier it waits on (the role
// that completes the next phase depends on the waiter), so parity waits are exact.
// The step loop, the chain and the epilogue are the `_p` kernel's.
// Launch: grid (ceil(p / RB), h, b), (WB + 3) * 32 threads, p.qb = RB, p.G = G, dynamic
// shared memory = ssdq_smem in seed.rs.
#include "common.cuh"

#define SQT 32

#ifndef MAMBA_EMU
__device__ __forceinline__ void ssdq_cp16(void* smem, const void* gmem, bool valid) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ __forceinline__ void ssdq_cp4(void* smem, const void* gmem, bool valid) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ __forceinline__ void ssdq_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int NW>
__device__ __forceinline__ void ssdq_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(NW) : "memory"); }
__device__ __forceinline__ unsigned ssdq_sa(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mb_init(unsigned long long* b, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(ssdq_sa(b)), "r"(count) : "memory");
}
// Arrive (release, CTA scope).
__device__ __forceinline__ void mb_arrive(unsigned long long* b) {
    asm volatile(
        "{\n .reg .b64 st;\n mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(ssdq_sa(b))
        : "memory");
}
// Arrive once every earlier cp.async of this thread has landed (counts as one arrival).
__device__ __forceinline__ void mb_cp_arrive(unsigned long long* b) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(ssdq_sa(b)) : "memory");
}
// Wait (acquire) until the phase of the given parity has completed.
__device__ __forceinline__ void mb_wait(unsigned long long* b, unsigned parity) {
    asm volatile(
        "{\n .reg .pred P1;\n LAB_WAIT:\n"
        " mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
        " @P1 bra DONE;\n bra LAB_WAIT;\n DONE:\n}\n" ::"r"(ssdq_sa(b)),
        "r"(parity)
        : "memory");
}
#endif

// The step loop of a tile (`ssdr_steps8`, shared with ssd_seed.cu).
#include "ssd_seed_steps.cuh"

// The same for two rows per thread (`R2`): B_t and C_t loaded once for rows r and r + 1
// (x * w of both rows in one 8-byte load), 16 FMAs per step; partials of row r + 1 at
// `part + G`.
template <bool SLOW>
__device__ __forceinline__ void ssdq_steps8_r2(float (&R)[8], const float* bB, const float* bC, const float* xw,
                                               const float* av, float* part, const int NP, const int RB,
                                               const int PS, const int G) {
    float4 bq[8], cq[8];
    float2 uq[8];
    float aq[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        bq[e] = *reinterpret_cast<const float4*>(bB + e * NP);
        cq[e] = *reinterpret_cast<const float4*>(bC + e * NP);
        uq[e] = *reinterpret_cast<const float2*>(xw + e * RB);
        aq[e] = SLOW ? av[e] : 1.f;
    }
#pragma unroll
    for (int t8 = 0; t8 < SQT; t8 += 8) {
        float4 bn[8], cn[8];
        float2 un[8];
        float an[8];
        if (t8 + 8 < SQT) {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                bn[e] = *reinterpret_cast<const float4*>(bB + (t8 + 8 + e) * NP);
                cn[e] = *reinterpret_cast<const float4*>(bC + (t8 + 8 + e) * NP);
                un[e] = *reinterpret_cast<const float2*>(xw + (t8 + 8 + e) * RB);
                an[e] = SLOW ? av[t8 + 8 + e] : 1.f;
            }
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) {
            const float u0 = uq[e].x, u1 = uq[e].y;
            if (SLOW) {
                const float a = aq[e];
                R[0] = fmaf(a, R[0], u0 * bq[e].x);
                R[1] = fmaf(a, R[1], u0 * bq[e].y);
                R[2] = fmaf(a, R[2], u0 * bq[e].z);
                R[3] = fmaf(a, R[3], u0 * bq[e].w);
                R[4] = fmaf(a, R[4], u1 * bq[e].x);
                R[5] = fmaf(a, R[5], u1 * bq[e].y);
                R[6] = fmaf(a, R[6], u1 * bq[e].z);
                R[7] = fmaf(a, R[7], u1 * bq[e].w);
            } else {
                R[0] = fmaf(u0, bq[e].x, R[0]);
                R[1] = fmaf(u0, bq[e].y, R[1]);
                R[2] = fmaf(u0, bq[e].z, R[2]);
                R[3] = fmaf(u0, bq[e].w, R[3]);
                R[4] = fmaf(u1, bq[e].x, R[4]);
                R[5] = fmaf(u1, bq[e].y, R[5]);
                R[6] = fmaf(u1, bq[e].z, R[6]);
                R[7] = fmaf(u1, bq[e].w, R[7]);
            }
            float y0 = cq[e].x * R[0];
            y0 = fmaf(cq[e].y, R[1], y0);
            y0 = fmaf(cq[e].z, R[2], y0);
            y0 = fmaf(cq[e].w, R[3], y0);
            float y1 = cq[e].x * R[4];
            y1 = fmaf(cq[e].y, R[5], y1);
            y1 = fmaf(cq[e].z, R[6], y1);
            y1 = fmaf(cq[e].w, R[7], y1);
            part[(t8 + e) * PS] = y0;
            part[(t8 + e) * PS + G] = y1;
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

// GC, WBC: G and the compute warps as compile-time constants (0: from p / blockDim).
// NS: ring slots per buffer (>= 3). EW: epilogue warps (helpers 2 .. 1 + EW split the
// (step, row) pairs of a tile). R2: two rows per compute thread (rows 2 (tid / G) and
// 2 (tid / G) + 1; needs GC and WBC). `p.mode`: bit 0 the plain step everywhere (tests);
// bits 4.. timing diagnostics (WRONG outputs): 32 no epilogues, 64 no step loop.
template <typename T, int GC = 0, int WBC = 0, int NS = 4, int EW = 1, bool R2 = false>
__device__ __forceinline__ void ssdq_body(const SsdParams& p, float* sm) {
    static_assert(!R2 || (GC && WBC), "two rows per thread: constants folded");
    static_assert(NS >= 3, "ring of at least 3 slots");
    constexpr int XLA = NS - 2;  // tiles of x copy look-ahead on helper 1
    const int G = GC ? GC : p.G;
    const int RB = (GC && WBC) ? (R2 ? 2 : 1) * WBC * 32 / GC : p.qb;
    const int N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen;
    const int NP = 4 * G;
    const int ncomp = WBC ? WBC * 32 : blockDim.x - 96;  // compute threads
    const int PS = RB * G + 4;  // partials of a step: [row][G] (RB * G = ncomp unless R2)
    const int tid = threadIdx.x, lane = tid & 31;
    const bool helper = tid >= ncomp;
    const int hw = helper ? (tid - ncomp) >> 5 : -1;  // 0: B, C; 1: x, dt; 2..: epilogues
    const int j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const int q0 = blockIdx.x * RB;
    const int r = (R2 ? 2 : 1) * (tid / G), g = tid % G, n0 = 4 * g;
    const int q = q0 + r;
    const int diag = p.mode >> 4;

    // Shared memory (floats): B[NS][32][NP], C[NS][32][NP], partials[NS][32][PS],
    // x[NS][32][RB], xw[NS][32][RB], a[NS][32], P[NS][32], info[NS][4]; then the
    // mbarriers bc_full[NS], xw_full[NS], part_full[NS], epi_done[NS].
    float* sB = sm;
    float* sC = sB + NS * SQT * NP;
    float* sPart = sC + NS * SQT * NP;
    float* sX = sPart + NS * SQT * PS;
    float* sXW = sX + NS * SQT * RB;
    float* sA = sXW + NS * SQT * RB;
    float* sP = sA + NS * SQT;
    float* sInfo = sP + NS * SQT;
    unsigned long long* bar = reinterpret_cast<unsigned long long*>(sInfo + 4 * NS);
    unsigned long long* bc_full = bar;
    unsigned long long* xw_full = bar + NS;
    unsigned long long* part_full = bar + 2 * NS;
    unsigned long long* epi_done = bar + 3 * NS;

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const bool vec_bc = (p.async_copy & 1) != 0;
    const bool vec_x = (p.async_copy & 2) != 0;
    const int ntiles = (L + SQT - 1) / SQT;

    if (tid == 0) {
        for (int s = 0; s < NS; ++s) {
            mb_init(bc_full + s, 32);
            mb_init(xw_full + s, 32);
            mb_init(part_full + s, ncomp);
            mb_init(epi_done + s, 32 * EW);
        }
    }
    __syncthreads();

    if (hw == 0) {
        // Helper 0: B and C of every tile into slot tile % NS (zeros past L and N).
        for (int tile = 0; tile < ntiles; ++tile) {
            const int s = tile % NS;
            if (tile >= NS) mb_wait(part_full + s, ((tile / NS) - 1) & 1);
            const int t0 = tile * SQT;
            float* bb = sB + s * SQT * NP;
            float* bc = sC + s * SQT * NP;
            if constexpr (sizeof(T) == 4) {
                if (vec_bc) {
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
                            ssdq_cp16(bd, bsrc, true);
                            ssdq_cp16(cd, csrc, true);
                            bsrc += bstep;
                            csrc += cstep;
                            bd += rpp * NP;
                            cd += rpp * NP;
                        }
                    } else {
                        const bool cok = 4 * c < N;
                        for (int t = ts; t < SQT; t += rpp) {
                            const bool ok = cok && t0 + t < L;
                            ssdq_cp16(bd, ok ? bsrc : Bp, ok);
                            ssdq_cp16(cd, ok ? csrc : Cp, ok);
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
                        ssdq_cp4(bb + e, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + nn, ok);
                        ssdq_cp4(bc + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + nn, ok);
                    }
                }
                mb_cp_arrive(bc_full + s);
            } else {
                for (int e = lane; e < SQT * NP; e += 32) {
                    const int t = e / NP, n = e % NP;
                    const bool ok = t0 + t < L && n < N;
                    const long long tt = t0 + t;
                    bb[e] = ok ? ldf(Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + n) : 0.f;
                    bc[e] = ok ? ldf(Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + n) : 0.f;
                }
                mb_arrive(bc_full + s);
            }
        }
    } else if (hw == 1) {
        // Helper 1: x of tile + XLA (cp.async groups), then tile's dt chain and x * w.
        auto stage_x = [&](int tile) {
            if (tile < ntiles) {
                const int t0 = tile * SQT;
                float* bx = sX + (tile % NS) * SQT * RB;
                if constexpr (sizeof(T) == 4) {
                    if (vec_x) {
                        const int xc = RB / 4;
                        for (int e = lane; e < SQT * xc; e += 32) {
                            const int t = e / xc, c = e % xc;
                            const bool ok = t0 + t < L && q0 + 4 * c < P;
                            const long long tt = ok ? t0 + t : 0;
                            const int qq = ok ? q0 + 4 * c : 0;
                            ssdq_cp16(bx + t * RB + 4 * c, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
                        }
                    } else {
                        for (int e = lane; e < SQT * RB; e += 32) {
                            const int t = e / RB, rr = e % RB;
                            const bool ok = t0 + t < L && q0 + rr < P;
                            const long long tt = ok ? t0 + t : 0;
                            const int qq = ok ? q0 + rr : 0;
                            ssdq_cp4(bx + e, x + i * p.x_sb + tt * p.x_st + (long long)j * P + qq, ok);
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
            if constexpr (sizeof(T) == 4) ssdq_commit();
        };
        const float Aj = p.A[j];
        const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
        auto load_dt = [&](int tile, float& raw, int& reset) {
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
        // One tile: stage x of tile + XLA, wait for tile's x, the chain, x * w, arrive.
        auto one = [&](int tile, float raw, int reset) {
            const int u = tile + XLA;
            if (u < ntiles && u >= NS) mb_wait(epi_done + u % NS, ((u / NS) - 1) & 1);
            stage_x(u);
            if constexpr (sizeof(T) == 4) ssdq_wait<XLA>();
            __syncwarp();
            const int s = tile % NS;
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
            sA[s * SQT + lane] = a;
            sP[s * SQT + lane] = fast ? Pp : 1.f;
            if (lane == 31) {
                sInfo[s * 4] = fast ? 1.f : 0.f;
                sInfo[s * 4 + 1] = fast ? Pp : 1.f;
            }
            const float w = fast ? dt / Pp : dt;
            const float* bx = sX + s * SQT * RB;
            float* xw = sXW + s * SQT * RB;
            for (int e = lane; e < SQT * RB; e += 32) xw[e] = bx[e] * __shfl_sync(0xffffffffu, w, e / RB);
            mb_arrive(xw_full + s);
        };
        for (int u = 0; u < XLA; ++u) stage_x(u);
        float rawA, rawB;
        int rsA, rsB;
        load_dt(0, rawA, rsA);
        load_dt(1, rawB, rsB);
        for (int tile = 0; tile < ntiles; tile += 2) {
            one(tile, rawA, rsA);
            load_dt(tile + 2, rawA, rsA);
            if (tile + 1 < ntiles) {
                one(tile + 1, rawB, rsB);
                load_dt(tile + 3, rawB, rsB);
            }
        }
    } else if (hw >= 2) {
        // Helper 2: the epilogue of every tile: sum the G partials of each (step, row),
        // batches of 4 (step, row) pairs (every load of a batch before its stores).
        const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
        for (int tile = 0; tile < ntiles; ++tile) {
            const int s = tile % NS;
            mb_wait(part_full + s, (tile / NS) & 1);
            const int t0 = tile * SQT;
            const float* bx = sX + s * SQT * RB;
            const float* pv = sP + s * SQT;
            const float* part = sPart + s * SQT * PS;
            if (!(diag & 2)) {
                const int first = (hw - 2) * 32 + lane;
                for (int e0 = first; e0 < SQT * RB; e0 += 4 * 32 * EW) {
                    float sum[4], xv[4], pt[4], zv[4];
#pragma unroll
                    for (int u = 0; u < 4; ++u) {
                        const int e = e0 + u * 32 * EW;
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
                        const int e = e0 + u * 32 * EW;
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
            }
            mb_arrive(epi_done + s);
        }
    } else if (!helper) {
        // The compute threads: tile's steps once its B / C and x * w are in and the
        // partials' slot is free.
        constexpr int NR = R2 ? 2 : 1;
        float R[4 * NR];
#pragma unroll
        for (int s = 0; s < 4 * NR; ++s) R[s] = 0.f;
        if (p.init) {
            const float* src = p.init + ((size_t)i * H + j) * P * N;
#pragma unroll
            for (int s = 0; s < 4 * NR; ++s)
                if (q + s / 4 < P && n0 + s % 4 < N) R[s] = src[(size_t)(q + s / 4) * N + n0 + s % 4];
        }
        for (int tile = 0; tile < ntiles; ++tile) {
            const int s = tile % NS;
            const unsigned ph = (tile / NS) & 1;
            if (tile >= NS) mb_wait(epi_done + s, ph ^ 1);
            mb_wait(xw_full + s, ph);
            mb_wait(bc_full + s, ph);
            if (!(diag & 4)) {
                const float* bB = sB + s * SQT * NP + n0;
                const float* bC = sC + s * SQT * NP + n0;
                const float* xw = sXW + s * SQT * RB + r;
                float* part = sPart + s * SQT * PS + r * G + g;
                if constexpr (R2) {
                    if (sInfo[s * 4] != 0.f) {
                        ssdq_steps8_r2<false>(R, bB, bC, xw, nullptr, part, NP, RB, PS, G);
                        const float pend = sInfo[s * 4 + 1];
#pragma unroll
                        for (int e = 0; e < 8; ++e) R[e] *= pend;
                    } else {
                        ssdq_steps8_r2<true>(R, bB, bC, xw, sA + s * SQT, part, NP, RB, PS, G);
                    }
                } else if (sInfo[s * 4] != 0.f) {
                    ssdr_steps8<false>(R, bB, bC, xw, nullptr, part, NP, RB, PS);
                    const float pend = sInfo[s * 4 + 1];
#pragma unroll
                    for (int e = 0; e < 4; ++e) R[e] *= pend;
                } else {
                    ssdr_steps8<true>(R, bB, bC, xw, sA + s * SQT, part, NP, RB, PS);
                }
            }
            mb_arrive(part_full + s);
        }
        if (p.final_states) {
#pragma unroll
            for (int s = 0; s < 4 * NR; ++s)
                if (q + s / 4 < P && n0 + s % 4 < N)
                    p.final_states[((size_t)i * H + j) * P * N + (size_t)(q + s / 4) * N + n0 + s % 4] = R[s];
        }
    }
}

#ifndef MAMBA_EMU
#define SSDQ_INST(T, NAME)                                                                   \
    extern "C" __global__ void __launch_bounds__(352) NAME(const __grid_constant__ SsdParams p) { \
        extern __shared__ __align__(16) float sm[];                                          \
        ssdq_body<T, 0, 0, 3>(p, sm);                                                        \
    }
SSDQ_INST(float, ssdq_f32)
SSDQ_INST(bf16_t, ssdq_bf16)
SSDQ_INST(f16_t, ssdq_f16)

// The seed shape (N 33..64: G = 16) with 2 compute warps (4 rows per block, two blocks
// per SM), 3 (6 rows per block: 132 blocks at b2 h6 p64, one per SM on the H200) or 4
// (8 rows, 96 blocks: half the B / C copies of 2 warps), constants folded; ring of 4
// slots or 3 (`_s3`).
#define SSDQ_FIX(WB, NSV, MINB, NAME) SSDQ_FIX_X(WB, NSV, MINB, 1, false, NAME)
#define SSDQ_FIX_X(WB, NSV, MINB, EW, R2, NAME)                                              \
    extern "C" __global__ void __launch_bounds__((WB + 2 + EW) * 32, MINB)                    \
        NAME(const __grid_constant__ SsdParams p) {                                          \
        extern __shared__ __align__(16) float sm[];                                          \
        ssdq_body<float, 16, WB, NSV, EW, R2>(p, sm);                                        \
    }
SSDQ_FIX(2, 4, 2, ssdq_f32_g16_w2)
SSDQ_FIX(2, 3, 2, ssdq_f32_g16_w2_s3)
SSDQ_FIX(3, 4, 1, ssdq_f32_g16_w3)
SSDQ_FIX(3, 3, 1, ssdq_f32_g16_w3_s3)
SSDQ_FIX(4, 4, 1, ssdq_f32_g16_w4)
SSDQ_FIX(4, 3, 1, ssdq_f32_g16_w4_s3)
// Ring 3 with two epilogue warps (`_e2`), and one compute warp carrying 4 rows, two per
// thread (`_w1_r2`: half the shared-memory reads of B and C per FMA), one or two
// epilogue warps.
SSDQ_FIX_X(2, 3, 2, 2, false, ssdq_f32_g16_w2_s3_e2)
SSDQ_FIX_X(1, 3, 2, 1, true, ssdq_f32_g16_w1_r2_s3)
SSDQ_FIX_X(1, 3, 2, 2, true, ssdq_f32_g16_w1_r2_s3_e2)
#endif
