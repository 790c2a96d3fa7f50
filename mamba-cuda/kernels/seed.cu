// The seed shapes (few (batch, head) pairs / rows, L in the hundreds) in ONE launch with
// no chain across time chunks (issue #5).
//
// SSD (`seed_ssd_*`): one block per (batch, head, chunk of SQ = 32 steps); blocks take a
// ticket (chunk-major), so a block only waits on blocks that took an earlier ticket and
// are running or done: no deadlock whatever the residency. Each block
//   1. computes its chunk's step sizes and the inclusive cumulative sum of dt*A (f64),
//   2. stages x, B, C of the chunk (f32, zero padded to SP x SN = 64 x 64),
//   3. computes its LOCAL end state S_loc = sum_s exp(cs_end - cs_s) dt_s B_s x_s^T
//      (layout [n][p]) and publishes it with its decay exp(cs_end) (global + flag), unless
//      it is the last chunk,
//   4. computes the intra-chunk output M X, M[t][s] = (C_t . B_s) exp(cs_t - cs_s) dt_s,
//   5. waits on the flags of the earlier chunks of its group of G chunks and sums their
//      decayed local states; the group's last chunk publishes the group's aggregate;
//      then it waits on the aggregates of all earlier groups and sums them, decayed, and
//      the decayed initial state: S_in (at most two hops, G - 1 + K / G states of 64 x 64
//      per block; G = K folds every earlier chunk's local state),
//   6. adds exp(cs_t) C_t . S_in, D x, the z gate, stores y; the last chunk stores the
//      final state exp(cs_end) S_in + S_loc.
// Plain f32 SIMT arithmetic (register tiles from shared memory): the work is small at
// these shapes and f32 needs 1e-5, which single TF32 would miss.
#include "common.cuh"

// Mirrored by `SeedSsdParams` in src/gpu/seed.rs.
struct SeedSsdParams {
    SsdParams s;
    unsigned* flags;  // [0] block ticket, one flag per (chunk, batch, head), one per (group, batch, head)
    unsigned flag_base;
    int group;  // chunks per fold group (>= 1)
};

namespace seed {
constexpr int SQ = 32;   // steps per chunk
constexpr int SP = 64;   // headdim, padded
constexpr int SN = 64;   // dstate, padded
constexpr int NT = 256;  // threads
}  // namespace seed

// U: the unroll factor of the k loops (0: 4 / 2, the first form; 1: compact code, a
// smaller instruction footprint for blocks that run each instruction once).
template <typename T, int U, int QQ>
__device__ __forceinline__ void seed_ssd_body(const SeedSsdParams& sp, float* sm, double* s_cs) {
    using namespace seed;
    const SsdParams& p = sp.s;
    const int tid = threadIdx.x;
    const int H = p.nheads, P = p.headdim, N = p.dstate, L = p.seqlen;
    const int BH = p.batch * H, K = p.nchunks;

    float* s_x = sm;               // [QQ][SP]
    float* s_bw = s_x + QQ * SP;   // [QQ][SN]: B_s * w_s
    float* s_ct = s_bw + QQ * SN;  // [SN][QQ]: C transposed
    float* s_bt = s_ct + SN * QQ;  // [SN][QQ]: B transposed
    float* s_mt = s_bt + SN * QQ;  // [QQ][QQ]: M transposed ([s][t])
    float* s_S = s_mt + QQ * QQ;   // [SN][SP]: incoming state
    float* s_dt = s_S + SN * SP;   // [QQ]
    float* s_w = s_dt + QQ;        // [QQ]: exp(cs_end - cs_s) dt_s
    int* s_tk = reinterpret_cast<int*>(s_w + QQ);

    if (tid == 0) {
        const unsigned tk = atomicAdd(sp.flags, 1u);
        if (tk == (unsigned)(BH * K) - 1u) atomicExch(sp.flags, 0u);
        s_tk[0] = (int)tk;
    }
    __syncthreads();
    const int tk = s_tk[0];
    const int c = tk / BH, bh = tk % BH;
    const int i = bh / H, j = bh % H;
    const int kg = j / (H / p.ngroups);
    const int t0 = c * QQ;
    const int tn = min(QQ, L - t0);

    const T* xg = static_cast<const T*>(p.x);
    const T* Bg = static_cast<const T*>(p.B);
    const T* Cg = static_cast<const T*>(p.C);

    // Loads of x, B, C into registers first (in flight while warp 0 does the steps).
    constexpr int XE = QQ * SP / NT, BE = QQ * SN / NT;
    float xv[XE], bv[BE], cv[BE];
#pragma unroll
    for (int k = 0; k < XE; ++k) {
        const int e = tid + k * NT, t = e / SP, q = e % SP;
        xv[k] = (t < tn && q < P) ? ldf(xg + i * p.x_sb + (long long)(t0 + t) * p.x_st + (long long)j * P + q) : 0.f;
    }
#pragma unroll
    for (int k = 0; k < BE; ++k) {
        const int e = tid + k * NT, t = e / SN, n = e % SN;
        const bool ok = t < tn && n < N;
        const long long tt = t0 + t;
        bv[k] = ok ? ldf(Bg + i * p.B_sb + tt * p.B_st + (long long)kg * N + n) : 0.f;
        cv[k] = ok ? ldf(Cg + i * p.C_sb + tt * p.C_st + (long long)kg * N + n) : 0.f;
    }
    // 1. The steps (warp 0): dt, dt*A, the inclusive cumsum in f64.
    if (tid < 32) {
        const int t = tid;
        float dt = 0.f;
        if (t < tn) {
            const float raw = ldf(static_cast<const T*>(p.dt) + i * p.dt_sb + (long long)(t0 + t) * p.dt_st + j);
            dt = step_size(raw + (p.dt_bias ? p.dt_bias[j] : 0.f), p.softplus, p.has_limit, p.lo, p.hi);
        }
        double cs = (double)dt * (double)p.A[j];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double v = __shfl_up_sync(0xffffffffu, cs, o);
            if (t >= o) cs += v;
        }
        const double cse = __shfl_sync(0xffffffffu, cs, 31);
        if (t < QQ) {
            s_cs[t] = cs;
            s_dt[t] = dt;
            s_w[t] = expf((float)(cse - cs)) * dt;
        }
        if (t == 0) s_cs[QQ] = cse;
    }
    __syncthreads();
    // 2. Stage (f32): x [t][p], B*w [t][n], B^T and C^T [n][t].
#pragma unroll
    for (int k = 0; k < XE; ++k) s_x[tid + k * NT] = xv[k];
#pragma unroll
    for (int k = 0; k < BE; ++k) {
        const int e = tid + k * NT, t = e / SN, n = e % SN;
        s_bw[e] = bv[k] * s_w[t];
        s_bt[n * QQ + t] = bv[k];
        s_ct[n * QQ + t] = cv[k];
    }
    __syncthreads();
    const int nk = (N + 3) & ~3;  // state columns that can be non-zero, rounded up to 4
    const size_t SS = (size_t)SN * SP;
    constexpr int TR = QQ / 16;  // rows of t per thread in M (TR x TR) and Y (TR x 4)
    float* gstates = p.chunk_states;
    float* gdecay = p.chunk_decay;
    const float cse = (float)s_cs[QQ];
    const float chunk_decay = expf(cse);

    // 3. Local end state, this thread's 4 x 4 block of [n][p]: rows 4*rn, columns 4*rp.
    const int rn = tid >> 4, rp = tid & 15;
    float Sl[4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) Sl[a][b] = 0.f;
#pragma unroll (U ? U : 4)
    for (int s = 0; s < tn; ++s) {
        const float4 bw = *reinterpret_cast<const float4*>(s_bw + s * SN + 4 * rn);
        const float4 xx = *reinterpret_cast<const float4*>(s_x + s * SP + 4 * rp);
        const float ba[4] = {bw.x, bw.y, bw.z, bw.w}, xa[4] = {xx.x, xx.y, xx.z, xx.w};
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int b = 0; b < 4; ++b) Sl[a][b] = fmaf(ba[a], xa[b], Sl[a][b]);
    }
    if (c < K - 1) {
        float* dst = gstates + ((size_t)bh * K + c) * SS;
#pragma unroll
        for (int a = 0; a < 4; ++a)
            *reinterpret_cast<float4*>(dst + (4 * rn + a) * SP + 4 * rp) =
                make_float4(Sl[a][0], Sl[a][1], Sl[a][2], Sl[a][3]);
        if (tid == 0) gdecay[(size_t)bh * K + c] = chunk_decay;
        __threadfence();
        __syncthreads();
        if (tid == 0) st_release_u32(sp.flags + 1 + (size_t)c * BH + bh, sp.flag_base);
    }

    // 4. M (transposed into s_mt[s][t]): this thread's 2 x 2 block, rows 2*rt, columns 2*rs.
    {
        const int rt = tid >> 4, rs = tid & 15;
        float g[TR][TR];
#pragma unroll
        for (int a = 0; a < TR; ++a)
#pragma unroll
            for (int b = 0; b < TR; ++b) g[a][b] = 0.f;
        if (TR * rs <= TR * rt + TR - 1) {
#pragma unroll (U ? U : 4)
            for (int n = 0; n < nk; ++n) {
                float cc[TR], bb[TR];
#pragma unroll
                for (int a = 0; a < TR; ++a) {
                    cc[a] = s_ct[n * QQ + TR * rt + a];
                    bb[a] = s_bt[n * QQ + TR * rs + a];
                }
#pragma unroll
                for (int a = 0; a < TR; ++a)
#pragma unroll
                    for (int b = 0; b < TR; ++b) g[a][b] = fmaf(cc[a], bb[b], g[a][b]);
            }
        }
#pragma unroll
        for (int a = 0; a < TR; ++a)
#pragma unroll
            for (int b = 0; b < TR; ++b) {
                const int t = TR * rt + a, s = TR * rs + b;
                const float m = s <= t ? g[a][b] * expf((float)(s_cs[t] - s_cs[s])) * s_dt[s] : 0.f;
                s_mt[s * QQ + t] = m;
            }
    }
    __syncthreads();
    // 5. Y = M X: this thread's 2 x 4 block of [t][p], rows 2*yt, columns 4*yp.
    const int yt = tid >> 4, yp = tid & 15;
    float Y[TR][4];
#pragma unroll
    for (int a = 0; a < TR; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) Y[a][b] = 0.f;
    {
        const int smax = min(TR * yt + TR, tn);
#pragma unroll (U ? U : 2)
        for (int s = 0; s < smax; ++s) {
            float ma[TR];
#pragma unroll
            for (int a = 0; a < TR; ++a) ma[a] = s_mt[s * QQ + TR * yt + a];
            const float4 xx = *reinterpret_cast<const float4*>(s_x + s * SP + 4 * yp);
            const float xa[4] = {xx.x, xx.y, xx.z, xx.w};
#pragma unroll
            for (int a = 0; a < TR; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) Y[a][b] = fmaf(ma[a], xa[b], Y[a][b]);
        }
    }

    // 6. The incoming state: the decayed local states of all earlier chunks (their flags
    // first), then the decayed initial state. Same 4 x 4 blocks as S_loc.
    const bool has_in = c > 0 || p.init != nullptr;
    float Si[4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) Si[a][b] = 0.f;
    {
        // Chunks in groups of G: the locals of the earlier chunks of this group, then the
        // aggregates of the earlier groups (each published by its group's last chunk once
        // it has folded its own group), so a block folds < G + K / G states.
        // sp.group < 0: timing diagnostics only (MAMBA_CUDA_SEED_NOWAIT=1): no waits, no
        // folds, wrong outputs past the first chunk.
        const bool nowait = sp.group < 0;
        const int G = nowait ? 1 : sp.group, m = nowait ? 0 : c / G, c0 = nowait ? c : m * G, ng = (K + G - 1) / G;
        const unsigned fb = sp.flag_base;
        const unsigned* lflags = sp.flags + 1;
        const unsigned* gflags = sp.flags + 1 + (size_t)K * BH;
        float* gagg = gdecay + (((size_t)BH * K + 3) & ~(size_t)3);
        for (int cc = c0 + tid; cc < c; cc += NT)
            while (ld_acquire_u32(lflags + (size_t)cc * BH + bh) != fb) {
            }
        __threadfence();
        __syncthreads();
        float dec = 1.f;
        auto fold = [&](const float* src) {
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const float4 v = __ldcg(reinterpret_cast<const float4*>(src + (4 * rn + a) * SP + 4 * rp));
                Si[a][0] = fmaf(dec, v.x, Si[a][0]);
                Si[a][1] = fmaf(dec, v.y, Si[a][1]);
                Si[a][2] = fmaf(dec, v.z, Si[a][2]);
                Si[a][3] = fmaf(dec, v.w, Si[a][3]);
            }
        };
#pragma unroll (U ? U : 2)
        for (int cc = c - 1; cc >= c0; --cc) {
            fold(gstates + ((size_t)bh * K + cc) * SS);
            dec *= __ldcg(gdecay + (size_t)bh * K + cc);
        }
        if (!nowait && c == c0 + G - 1 && c < K - 1) {
            float* dst = gagg + ((size_t)bh * ng + m) * SS;
#pragma unroll
            for (int a = 0; a < 4; ++a)
                *reinterpret_cast<float4*>(dst + (4 * rn + a) * SP + 4 * rp) =
                    make_float4(fmaf(chunk_decay, Si[a][0], Sl[a][0]), fmaf(chunk_decay, Si[a][1], Sl[a][1]),
                                fmaf(chunk_decay, Si[a][2], Sl[a][2]), fmaf(chunk_decay, Si[a][3], Sl[a][3]));
            __threadfence();
            __syncthreads();
            if (tid == 0) st_release_u32(sp.flags + 1 + (size_t)K * BH + (size_t)m * BH + bh, fb);
        }
        if (m > 0) {
            for (int mm = tid; mm < m; mm += NT)
                while (ld_acquire_u32(gflags + (size_t)mm * BH + bh) != fb) {
                }
            __threadfence();
            __syncthreads();
            for (int mm = m - 1; mm >= 0; --mm) {
                fold(gagg + ((size_t)bh * ng + mm) * SS);
                for (int cc = mm * G; cc < mm * G + G; ++cc) dec *= __ldcg(gdecay + (size_t)bh * K + cc);
            }
        }
        if (p.init) {
            const float* src = p.init + (size_t)bh * P * N;
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) {
                    const int n = 4 * rn + a, q = 4 * rp + b;
                    if (n < N && q < P) Si[a][b] = fmaf(dec, src[(size_t)q * N + n], Si[a][b]);
                }
        }
    }
    if (has_in) {
#pragma unroll
        for (int a = 0; a < 4; ++a)
            *reinterpret_cast<float4*>(s_S + (4 * rn + a) * SP + 4 * rp) = make_float4(Si[a][0], Si[a][1], Si[a][2], Si[a][3]);
        __syncthreads();
        // Y += diag(exp(cs)) C S_in.
        float Y2[TR][4];
#pragma unroll
        for (int a = 0; a < TR; ++a)
#pragma unroll
            for (int b = 0; b < 4; ++b) Y2[a][b] = 0.f;
#pragma unroll (U ? U : 4)
        for (int n = 0; n < nk; ++n) {
            float ca[TR];
#pragma unroll
            for (int a = 0; a < TR; ++a) ca[a] = s_ct[n * QQ + TR * yt + a];
            const float4 ss = *reinterpret_cast<const float4*>(s_S + n * SP + 4 * yp);
            const float sa[4] = {ss.x, ss.y, ss.z, ss.w};
#pragma unroll
            for (int a = 0; a < TR; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) Y2[a][b] = fmaf(ca[a], sa[b], Y2[a][b]);
        }
#pragma unroll
        for (int a = 0; a < TR; ++a) {
            const float e = expf((float)s_cs[TR * yt + a]);
#pragma unroll
            for (int b = 0; b < 4; ++b) Y[a][b] = fmaf(e, Y2[a][b], Y[a][b]);
        }
    }
    // 7. D, z, store.
    {
        const T* zg = static_cast<const T*>(p.z);
        T* og = static_cast<T*>(p.out);
        const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
#pragma unroll
        for (int a = 0; a < TR; ++a) {
            const int t = TR * yt + a;
            if (t >= tn) continue;
            const long long tt = t0 + t;
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int q = 4 * yp + b;
                if (q >= P) continue;
                float y = Y[a][b];
                if (p.D) y = fmaf(p.d_per_channel ? p.D[j * P + q] : dj, s_x[t * SP + q], y);
                if (zg) y *= silu_f(ldf(zg + i * p.z_sb + tt * p.z_st + (long long)j * P + q));
                og[i * p.out_sb + tt * p.out_st + (long long)j * P + q] = cvt<T>(y);
            }
        }
    }
    // 8. The final state (last chunk).
    if (c == K - 1 && p.final_states) {
        float* dst = p.final_states + (size_t)bh * P * N;
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int n = 4 * rn + a, q = 4 * rp + b;
                if (n < N && q < P) dst[(size_t)q * N + n] = fmaf(chunk_decay, Si[a][b], Sl[a][b]);
            }
    }
}

// ---- Mamba-1 (`seed_scan1_*`): B and C varying in time (b, G, N, L), N <= 64 ----
//
// One block per (row group of RB <= 16 channels, chunk of Q1 = 16 steps), by ticket
// (chunk-major). Thread (row r, quad g) keeps 4 states n = 4g..4g+3. One pass over the
// chunk from a zero state with ONE exponential per (state, step): the local state h, the
// decay products P_t, the local output partials yl_t = C_t . h_t and C_t * P_t (in
// registers); the local end state and P_end are published; the incoming state is folded
// as in the SSD (earlier locals of the group, then earlier group aggregates, vectors of
// per-state decays instead of scalars); then y_t = yl_t + (C_t * P_t) . h_in, summed over
// the row's 16 threads through shared memory. Scratch (floats): chunk_states = local
// states (K, b*d, 64), chunk_dtsum = their decays (K, b*d, 64), chunk_incl = group
// aggregates (ng, b*d, 64) then their decays (ng, b*d, 64). p.cb = RB, p.reserved = G.
namespace seed1 {
constexpr int Q = 16;    // steps per chunk
constexpr int SN = 64;   // states, padded
constexpr int BS = 68;   // row stride of the staged B / C tiles
}  // namespace seed1

__device__ __forceinline__ float seed_ex2(float x) {
#ifdef MAMBA_EMU
    return exp2f(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

template <typename T>
__device__ __forceinline__ void seed_scan1_body(const Scan1Params& p, float* sm) {
    using namespace seed1;
    const int tid = threadIdx.x, nthreads = blockDim.x;
    const int RB = p.cb, d = p.dim, N = p.dstate, L = p.seqlen, K = p.nchunks;
    const int BD = p.batch * d, NRG = BD / RB;
    float* s_B = sm;                 // [Q][BS]
    float* s_C = s_B + Q * BS;       // [Q][BS]
    float* s_dt = s_C + Q * BS;      // [RB][Q]
    float* s_dtu = s_dt + 16 * Q;    // [RB][Q]
    float* s_red = s_dtu + 16 * Q;   // [RB][Q][17]
    int* s_tk = reinterpret_cast<int*>(s_red + 16 * Q * 17);
    if (tid == 0) {
        const unsigned tk = atomicAdd(p.flags, 1u);
        if (tk == (unsigned)(NRG * K) - 1u) atomicExch(p.flags, 0u);
        s_tk[0] = (int)tk;
    }
    __syncthreads();
    const int tk = s_tk[0];
    const int c = tk / NRG, rg = tk % NRG;
    const int R0 = rg * RB;               // first global row (i * d + channel)
    const int i = R0 / d, ch0 = R0 % d;
    const int t0 = c * Q, tn = min(Q, L - t0);
    const int kb = ch0 / (d / p.b_groups), kcg = ch0 / (d / p.c_groups);
    const T* Bg = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + kb) * N * (size_t)L;
    const T* Cg = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + kcg) * N * (size_t)L;
    // Stage B, C [t][n] (zero past L and N), dt and dt*u [r][t].
    for (int e = tid; e < SN * Q; e += nthreads) {
        const int n = e / Q, t = e % Q;
        const bool ok = n < N && t < tn;
        s_B[t * BS + n] = ok ? ldf(Bg + (size_t)n * L + t0 + t) : 0.f;
        s_C[t * BS + n] = ok ? ldf(Cg + (size_t)n * L + t0 + t) : 0.f;
    }
    // The output thread (orow, ot) keeps u for D.
    const int orow = tid / Q, ot = tid % Q;
    float u_keep = 0.f;
    {
        const size_t o = (size_t)(R0 + orow) * L + t0 + ot;
        float dt = 0.f, u = 0.f;
        if (ot < tn) {
            u = ldf(static_cast<const T*>(p.u) + o);
            const float raw = ldf(static_cast<const T*>(p.delta) + o) + (p.delta_bias ? p.delta_bias[ch0 + orow] : 0.f);
            dt = p.softplus ? softplus_f(raw) : raw;
        }
        u_keep = u;
        s_dt[orow * Q + ot] = dt;
        s_dtu[orow * Q + ot] = dt * u;
    }
    __syncthreads();
    const int r = tid >> 4, g = tid & 15;
    const int R = R0 + r, ch = ch0 + r;
    float a2[4], h[4], P[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        const int n = 4 * g + s;
        a2[s] = n < N ? p.A[(size_t)ch * N + n] * LOG2E_F : 0.f;
        h[s] = 0.f;
        P[s] = 1.f;
    }
    float yl[Q], cp[Q][4];
#pragma unroll
    for (int t = 0; t < Q; ++t) {
        const float dt = s_dt[r * Q + t], dtu = s_dtu[r * Q + t];
        const float4 b4 = *reinterpret_cast<const float4*>(s_B + t * BS + 4 * g);
        const float4 c4 = *reinterpret_cast<const float4*>(s_C + t * BS + 4 * g);
        const float bb[4] = {b4.x, b4.y, b4.z, b4.w}, cc[4] = {c4.x, c4.y, c4.z, c4.w};
        float y = 0.f;
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const float a = seed_ex2(dt * a2[s]);
            h[s] = fmaf(a, h[s], dtu * bb[s]);
            P[s] *= a;
            y = fmaf(cc[s], h[s], y);
            cp[t][s] = cc[s] * P[s];
        }
        yl[t] = y;
    }
    float* gloc = p.chunk_states;
    float* gpend = p.chunk_dtsum;
    const bool nowait = p.reserved < 0;  // timing diagnostics only, as in the SSD
    const int G = nowait ? 1 : p.reserved, m = nowait ? 0 : c / G, c0 = nowait ? c : m * G, ng = (K + G - 1) / G;
    float* gagg = p.chunk_incl;
    float* gaggd = gagg + (size_t)ng * BD * SN;
    const unsigned fb = p.flag_base;
    if (c < K - 1) {
        const size_t o = ((size_t)c * BD + R) * SN + 4 * g;
        *reinterpret_cast<float4*>(gloc + o) = make_float4(h[0], h[1], h[2], h[3]);
        *reinterpret_cast<float4*>(gpend + o) = make_float4(P[0], P[1], P[2], P[3]);
        __threadfence();
        __syncthreads();
        if (tid == 0) st_release_u32(p.flags + 1 + (size_t)c * NRG + rg, fb);
    }
    // The incoming state.
    float si[4] = {0.f, 0.f, 0.f, 0.f}, dec[4] = {1.f, 1.f, 1.f, 1.f};
    auto fold = [&](const float* st, const float* dc) {
        const float4 v = __ldcg(reinterpret_cast<const float4*>(st));
        const float4 w = __ldcg(reinterpret_cast<const float4*>(dc));
        si[0] = fmaf(dec[0], v.x, si[0]);
        si[1] = fmaf(dec[1], v.y, si[1]);
        si[2] = fmaf(dec[2], v.z, si[2]);
        si[3] = fmaf(dec[3], v.w, si[3]);
        dec[0] *= w.x;
        dec[1] *= w.y;
        dec[2] *= w.z;
        dec[3] *= w.w;
    };
    for (int k2 = c0 + tid; k2 < c; k2 += nthreads)
        while (ld_acquire_u32(p.flags + 1 + (size_t)k2 * NRG + rg) != fb) {
        }
    __threadfence();
    __syncthreads();
    for (int k2 = c - 1; k2 >= c0; --k2) {
        const size_t o = ((size_t)k2 * BD + R) * SN + 4 * g;
        fold(gloc + o, gpend + o);
    }
    if (!nowait && c == c0 + G - 1 && c < K - 1) {
        const size_t o = ((size_t)m * BD + R) * SN + 4 * g;
        *reinterpret_cast<float4*>(gagg + o) = make_float4(fmaf(P[0], si[0], h[0]), fmaf(P[1], si[1], h[1]),
                                                            fmaf(P[2], si[2], h[2]), fmaf(P[3], si[3], h[3]));
        *reinterpret_cast<float4*>(gaggd + o) = make_float4(P[0] * dec[0], P[1] * dec[1], P[2] * dec[2], P[3] * dec[3]);
        __threadfence();
        __syncthreads();
        if (tid == 0) st_release_u32(p.flags + 1 + (size_t)K * NRG + (size_t)m * NRG + rg, fb);
    }
    if (m > 0) {
        for (int mm = tid; mm < m; mm += nthreads)
            while (ld_acquire_u32(p.flags + 1 + (size_t)K * NRG + (size_t)mm * NRG + rg) != fb) {
            }
        __threadfence();
        __syncthreads();
        for (int mm = m - 1; mm >= 0; --mm) {
            const size_t o = ((size_t)mm * BD + R) * SN + 4 * g;
            fold(gagg + o, gaggd + o);
        }
    }
    if (p.h0) {
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const int n = 4 * g + s;
            if (n < N) si[s] = fmaf(dec[s], p.h0[(size_t)R * N + n], si[s]);
        }
    }
    // Outputs: partial sums over this thread's states, then over the row's 16 threads.
#pragma unroll
    for (int t = 0; t < Q; ++t) {
        float y = yl[t];
#pragma unroll
        for (int s = 0; s < 4; ++s) y = fmaf(cp[t][s], si[s], y);
        s_red[(r * Q + t) * 17 + g] = y;
    }
    __syncthreads();
    if (ot < tn) {
        float y = 0.f;
#pragma unroll
        for (int k = 0; k < 16; ++k) y += s_red[(orow * Q + ot) * 17 + k];
        const size_t o = (size_t)(R0 + orow) * L + t0 + ot;
        if (p.D) y = fmaf(p.D[ch0 + orow], u_keep, y);
        if (p.z) y *= silu_f(ldf(static_cast<const T*>(p.z) + o));
        static_cast<T*>(p.out)[o] = cvt<T>(y);
    }
    if (c == K - 1 && p.hlast) {
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const int n = 4 * g + s;
            if (n < N) p.hlast[(size_t)R * N + n] = fmaf(P[s], si[s], h[s]);
        }
    }
}

#ifndef MAMBA_EMU
#define SEED_SSD(NAME, T, U, QQ)                                                          \
    extern "C" __global__ void __launch_bounds__(256, 2) NAME(const __grid_constant__ SeedSsdParams sp) { \
        extern __shared__ __align__(16) unsigned char seed_smem[];                        \
        double* s_cs = reinterpret_cast<double*>(seed_smem);                              \
        float* sm = reinterpret_cast<float*>(seed_smem + 8 * (32 + 2));                   \
        seed_ssd_body<T, U, QQ>(sp, sm, s_cs);                                            \
    }
SEED_SSD(seed_ssd_f32, float, 0, 32)
SEED_SSD(seed_ssd_bf16, bf16_t, 0, 32)
SEED_SSD(seed_ssd_f16, f16_t, 0, 32)
SEED_SSD(seed_ssd_f32_c, float, 1, 32)
SEED_SSD(seed_ssd_bf16_c, bf16_t, 1, 32)
SEED_SSD(seed_ssd_f16_c, f16_t, 1, 32)
SEED_SSD(seed_ssd_f32_q16, float, 0, 16)
SEED_SSD(seed_ssd_bf16_q16, bf16_t, 0, 16)
SEED_SSD(seed_ssd_f16_q16, f16_t, 0, 16)
#endif

#ifndef MAMBA_EMU
#define SEED_SCAN1(NAME, T)                                                                       \
    extern "C" __global__ void __launch_bounds__(256, 2) NAME(const __grid_constant__ Scan1Params p) { \
        extern __shared__ __align__(16) float seed1_smem[];                                         \
        seed_scan1_body<T>(p, seed1_smem);                                                          \
    }
SEED_SCAN1(seed_scan1_f32, float)
SEED_SCAN1(seed_scan1_bf16, bf16_t)
SEED_SCAN1(seed_scan1_f16, f16_t)
#endif
