// SPEC 1 backward, the Mamba-1 selective scan for many channels (the language-model shape
// b8 d2048 N16 L2048), `bwdlm_*` (host: src/gpu/bwd_lm.rs). B and C vary in time ((b, N, L)
// or (b, g, N, L)), N <= 16.
//
// The layout of the forward `lm1` `_w*` (scan1_lm.cu): G = 8 threads per channel, each
// holding two states (n = 2g, 2g + 1), CB = 32 channels of one batch row and one B/C segment
// per block of 256 threads. Time goes in tiles of TT = 16 steps.
// - Phase F: the recurrence forward over all tiles, the state at every tile start written to
//   a checkpoint buffer (b, d, ntiles, 16) (f32).
// - Phase B: the tiles in reverse. Per tile: the tile's inputs (loaded into registers one tile
//   ahead, with the next checkpoint) are prepared by the channel's own threads into shared
//   memory (dt, dt u, dy, u, softplus', the gate's derivative factor); the 16 states and
//   decays are recomputed from the checkpoint into registers (y summed for dz); then the
//   reverse sweep with the adjoint g in registers, in two halves of 8 steps:
//     g = dA_{t+1} g + C_t dy_t, hd = h_t - dt u B_t (= dA_t h_{t-1}), e = g hd,
//     P_t = sum_n g B, Q_t = sum_n A g hd (log2 scale), dA += dt e, dB = g dt u, dC = dy h.
//   P and Q are reduce-scattered over the channel's 8 threads (thread g ends with step g of
//   the half); dB / dC go to shared memory as [channel][slot][step] (step swizzled by the
//   state pair: conflict-free stores) and are summed over the block's channels (16-byte
//   reads), then one 16-byte atomic per (slot, 4 steps) and block into f32 accumulators.
//   The channel's threads then write du = D dy + dt P, d delta = (Q ln 2 + u P) sp',
//   dz = dout silu'(z) (y + D u) for their steps and sum dD and d delta_bias.
#include "common.cuh"

#define BL_TT 16
#define BL_CB 32
#define BL_G 8
// Per-channel rows of 16 float4 (steps), padded by one float4 (the 8 threads of a channel
// read the same 16 bytes; the warp's four channels land in different bank groups).
#define BL_SVS (BL_TT * 4 + 4)
// The dB/dC staging: per channel 32 slots (dB n, then dC n) of 8 steps; channel stride
// = 8 mod 32 floats.
#define BL_CS (32 * 8 + 8)

#ifndef DYN_SMEM
#define DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif

struct BwdLmParams {
    const void* u;
    const void* delta;
    const float* A;
    const void* B;
    const void* C;
    const float* D;
    const void* z;
    const float* bias;
    const float* h0;
    const void* dout;
    const float* dlast;
    void* du;
    void* ddelta;
    void* dz;
    float* dA;
    float* dD;
    float* dbias;
    float* dh0;
    float* db;  // f32 accumulators, B's shape
    float* dc;  // f32 accumulators, C's shape
    float* ck;  // checkpoints (b, dim, ntiles, 16)
    int batch, dim, seqlen, dstate;
    int b_groups, c_groups, softplus, seg;
    int blocks_per_seg, vec, vec4, pad;
};

// Shared memory in floats: sbc[2][TT][8][4], sv[CB][SVS], sr[CB][SVS], ssig[CB][TT],
// sdbc[2][CB][CS].
__host__ __device__ constexpr int bl_smem_floats() {
    return 2 * BL_TT * 32 + 2 * BL_CB * BL_SVS + BL_CB * BL_TT + 2 * BL_CB * BL_CS;
}

// Two consecutive elements (t, t + 1) of a row, raw: float2 for f32, one 32-bit word for the
// 16-bit types. `vec`: L even and 8-byte aligned rows (one load); zero past L.
template <typename T>
struct BlRaw {
    typedef unsigned type;
};
template <>
struct BlRaw<float> {
    typedef float2 type;
};

template <typename T>
__device__ __forceinline__ typename BlRaw<T>::type bl_ld2(const T* row, int t, int L, bool vec);
template <>
__device__ __forceinline__ float2 bl_ld2<float>(const float* row, int t, int L, bool vec) {
    if (vec) return t < L ? *reinterpret_cast<const float2*>(row + t) : make_float2(0.f, 0.f);
    return make_float2(t < L ? row[t] : 0.f, t + 1 < L ? row[t + 1] : 0.f);
}
template <typename T>
__device__ __forceinline__ float2 bl_cv2(typename BlRaw<T>::type r);
template <>
__device__ __forceinline__ float2 bl_cv2<float>(float2 r) {
    return r;
}
template <typename T>
__device__ __forceinline__ void bl_st2(T* row, int t, int L, bool vec, float a, float b);
template <>
__device__ __forceinline__ void bl_st2<float>(float* row, int t, int L, bool vec, float a, float b) {
    if (vec) {
        if (t < L) *reinterpret_cast<float2*>(row + t) = make_float2(a, b);
    } else {
        if (t < L) row[t] = a;
        if (t + 1 < L) row[t + 1] = b;
    }
}
#ifndef MAMBA_EMU
template <>
__device__ __forceinline__ unsigned bl_ld2<bf16_t>(const bf16_t* row, int t, int L, bool vec) {
    if (vec) return t < L ? *reinterpret_cast<const unsigned*>(row + t) : 0u;
    const unsigned lo = t < L ? __bfloat16_as_ushort(row[t]) : 0u;
    const unsigned hi = t + 1 < L ? __bfloat16_as_ushort(row[t + 1]) : 0u;
    return lo | (hi << 16);
}
template <>
__device__ __forceinline__ unsigned bl_ld2<f16_t>(const f16_t* row, int t, int L, bool vec) {
    if (vec) return t < L ? *reinterpret_cast<const unsigned*>(row + t) : 0u;
    const unsigned lo = t < L ? __half_as_ushort(row[t]) : 0u;
    const unsigned hi = t + 1 < L ? __half_as_ushort(row[t + 1]) : 0u;
    return lo | (hi << 16);
}
template <>
__device__ __forceinline__ float2 bl_cv2<bf16_t>(unsigned w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}
template <>
__device__ __forceinline__ float2 bl_cv2<f16_t>(unsigned w) {
    return __half22float2(*reinterpret_cast<const __half2*>(&w));
}
template <>
__device__ __forceinline__ void bl_st2<bf16_t>(bf16_t* row, int t, int L, bool vec, float a, float b) {
    if (vec) {
        if (t < L) *reinterpret_cast<__nv_bfloat162*>(row + t) = __floats2bfloat162_rn(a, b);
    } else {
        if (t < L) row[t] = __float2bfloat16_rn(a);
        if (t + 1 < L) row[t + 1] = __float2bfloat16_rn(b);
    }
}
template <>
__device__ __forceinline__ void bl_st2<f16_t>(f16_t* row, int t, int L, bool vec, float a, float b) {
    if (vec) {
        if (t < L) *reinterpret_cast<__half2*>(row + t) = __floats2half2_rn(a, b);
    } else {
        if (t < L) row[t] = __float2half_rn(a);
        if (t + 1 < L) row[t + 1] = __float2half_rn(b);
    }
}
#endif

// Reduce-scatter of 8 per-step values over the 8 threads of a channel (lanes 8k .. 8k + 7):
// thread g returns the sum over the threads of v[g].
__device__ __forceinline__ float bl_rs8(const float (&v)[8], int g) {
    const bool h4 = (g & 4) != 0, h2 = (g & 2) != 0, h1 = (g & 1) != 0;
    float a[4];
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        const float s = h4 ? v[m] : v[m + 4];
        const float k = h4 ? v[m + 4] : v[m];
        a[m] = k + __shfl_xor_sync(0xffffffffu, s, 4);
    }
    float b[2];
#pragma unroll
    for (int m = 0; m < 2; ++m) {
        const float s = h2 ? a[m] : a[m + 2];
        const float k = h2 ? a[m + 2] : a[m];
        b[m] = k + __shfl_xor_sync(0xffffffffu, s, 2);
    }
    const float s = h1 ? b[0] : b[1];
    const float k = h1 ? b[1] : b[0];
    return k + __shfl_xor_sync(0xffffffffu, s, 1);
}

__device__ __forceinline__ float bl_sigmoid(float v) { return __fdividef(1.f, 1.f + __expf(-v)); }

// V (`MAMBA_CUDA_BWD_LM_V`): 0 the decays of the tile kept in registers from the recompute
// to the sweep; 2 the decays recomputed in the sweep (one more exponential per state and
// step, 32 registers fewer; not instantiated: at 80 registers it spills 116 bytes, and the
// shared memory allows two blocks per SM anyway); 1 (`_nodbc`, a timing diagnostic only:
// dB and dC are not added); 3 (`_lean`) fewer shared-memory wavefronts (ncu, V 0 at the LM
// shape: the L1/shared pipe 78% busy, issue 52%; a 16-byte shared read costs 4 wavefronts
// even when 8 lanes share it): the forward pass reads B only (8 bytes), the sweep dt, dt u
// by one 8-byte read and dy by a 4-byte one instead of the 16-byte {dt, dt u, dy, u}.
template <typename T, int V>
__device__ void bwd_lm(const BwdLmParams& p) {
    constexpr bool RE = V == 2, NODBC = V == 1, LEAN = V == 3;
    typedef typename BlRaw<T>::type R;
    DYN_SMEM(smem);
    float* sbc = smem;                              // [2][TT][8] float4 {B 2j, B 2j+1, C 2j, C 2j+1}
    float* sv = sbc + 2 * BL_TT * 32;               // [CB][SVS] float4 {dt, dt u, dy, u}
    float* sr = sv + BL_CB * BL_SVS;                // [CB][SVS] float4 {P, Q, y, dout silu'(z)}
    float* ssig = sr + BL_CB * BL_SVS;              // [CB][TT] softplus'
    float* sdbc = ssig + BL_CB * BL_TT;             // [2][CB][CS]
    const int N = p.dstate, L = p.seqlen, dim = p.dim;
    const int tid = threadIdx.x;
    const int i = blockIdx.y;
    const int seg_id = blockIdx.x / p.blocks_per_seg;
    const int blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * BL_CB;
    const int cn = min(BL_CB, (seg_id + 1) * p.seg - c0);
    const int gb = c0 / (dim / p.b_groups), gcg = c0 / (dim / p.c_groups);
    const int cl = tid / BL_G, g = tid % BL_G;
    const bool active = cl < cn;
    const int c = c0 + (active ? cl : 0);
    const bool vec = p.vec != 0;
    const bool has_z = p.z != nullptr, softplus = p.softplus != 0;
    const size_t rowo = ((size_t)i * dim + c) * L;
    const T* gu = static_cast<const T*>(p.u) + rowo;
    const T* gd = static_cast<const T*>(p.delta) + rowo;
    const T* gz = has_z ? static_cast<const T*>(p.z) + rowo : nullptr;
    const T* go = static_cast<const T*>(p.dout) + rowo;
    // B/C staging: thread -> row r = tid / 8 (B n = r, or C n = r - 16), steps 2 (tid % 8), + 1.
    const int br = tid >> 3, bq = tid & 7;
    const int bn = br & 15;
    const bool bis_c = br >= 16, bok = bn < N;
    const T* gbc = bis_c ? static_cast<const T*>(p.C) + (((size_t)i * p.c_groups + gcg) * N + (bok ? bn : 0)) * L
                         : static_cast<const T*>(p.B) + (((size_t)i * p.b_groups + gb) * N + (bok ? bn : 0)) * L;
    const int ntiles = (L + BL_TT - 1) / BL_TT;
    float* ck = p.ck + ((size_t)i * dim + c) * ntiles * 16 + 2 * g;

    const int n0 = 2 * g, n1 = 2 * g + 1;
    float a0 = 0.f, a1 = 0.f, h0 = 0.f, h1 = 0.f;
    if (active && n0 < N) {
        a0 = p.A[(size_t)c * N + n0] * LOG2E_F;
        if (p.h0) h0 = p.h0[((size_t)i * dim + c) * N + n0];
    }
    if (active && n1 < N) {
        a1 = p.A[(size_t)c * N + n1] * LOG2E_F;
        if (p.h0) h1 = p.h0[((size_t)i * dim + c) * N + n1];
    }
    const float Dc = p.D && active ? p.D[c] : 0.f;
    const float bias = p.bias && active ? p.bias[c] : 0.f;

    // Raw inputs of the next visited tile (registers).
    R ru{}, rd{}, rz{}, ro{}, rbc{};
    auto fetch = [&](int k, bool back) {
        const int t = k * BL_TT + 2 * g;
        ru = bl_ld2<T>(gu, t, L, vec);
        rd = bl_ld2<T>(gd, t, L, vec);
        if (back) {
            ro = bl_ld2<T>(go, t, L, vec);
            if (has_z) rz = bl_ld2<T>(gz, t, L, vec);
        }
        if (bok && (back || !bis_c)) rbc = bl_ld2<T>(gbc, k * BL_TT + 2 * bq, L, vec);
    };
    // B/C of the fetched tile into sbc[buf] (rows past N: zero).
    auto put_bc = [&](int buf) {
        float2 v = bok ? bl_cv2<T>(rbc) : make_float2(0.f, 0.f);
        float* d = sbc + buf * BL_TT * 32 + (bn >> 1) * 4 + (bn & 1) + (bis_c ? 2 : 0);
        d[(2 * bq) * 32] = v.x;
        d[(2 * bq + 1) * 32] = v.y;
    };
    float4* svc = reinterpret_cast<float4*>(sv + cl * BL_SVS);
    float4* src = reinterpret_cast<float4*>(sr + cl * BL_SVS);
    float* ssc = ssig + cl * BL_TT;

    // ---- Phase F: checkpoints at every tile start.
    float2 ckv;  // the checkpoint of the next backward tile
    fetch(0, ntiles == 1);
    for (int k = 0; k < ntiles; ++k) {
        const int buf = k & 1;
        put_bc(buf);
        {
            const float2 u2 = bl_cv2<T>(ru), d2 = bl_cv2<T>(rd);
            const int t = k * BL_TT + 2 * g;
            float dt[2];
            dt[0] = d2.x + bias;
            dt[1] = d2.y + bias;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                if (softplus) dt[e] = softplus_series(dt[e]);
                if (!active || t + e >= L) dt[e] = 0.f;
            }
            svc[2 * g] = make_float4(dt[0], dt[0] * u2.x, 0.f, 0.f);
            svc[2 * g + 1] = make_float4(dt[1], dt[1] * u2.y, 0.f, 0.f);
        }
        if (k + 1 < ntiles) fetch(k + 1, false);
        else fetch(ntiles - 1, true);
        __syncthreads();
        if (active) *reinterpret_cast<float2*>(ck + (size_t)k * 16) = make_float2(h0, h1);
        ckv = make_float2(h0, h1);
        const float4* bc = reinterpret_cast<const float4*>(sbc + buf * BL_TT * 32) + g;
#pragma unroll
        for (int t = 0; t < BL_TT; ++t) {
            float2 b;
            if constexpr (LEAN) {
                b = *reinterpret_cast<const float2*>(bc + t * 8);  // B only: 8-byte reads
            } else {
                const float4 b4 = bc[t * 8];
                b = make_float2(b4.x, b4.y);
            }
            const float2 s = *reinterpret_cast<const float2*>(svc + t);
            h0 = fmaf(ex2_fast(s.x * a0), h0, s.y * b.x);
            h1 = fmaf(ex2_fast(s.x * a1), h1, s.y * b.y);
        }
        __syncwarp();
    }
    __syncthreads();

    // ---- Phase B.
    float g0 = 0.f, g1 = 0.f;  // the adjoint of the state after the current step
    if (p.dlast && active) {
        if (n0 < N) g0 = p.dlast[((size_t)i * dim + c) * N + n0];
        if (n1 < N) g1 = p.dlast[((size_t)i * dim + c) * N + n1];
    }
    float dn0 = 1.f, dn1 = 1.f;  // the decay of the step after the current one
    float da0 = 0.f, da1 = 0.f, dDacc = 0.f, dbacc = 0.f;
    // dB/dC staging: this thread's slots 2g, 2g + 1 (dB) and 16 + 2g, 17 + 2g (dC); step
    // position t8 ^ g.
    float* sdw = sdbc + cl * BL_CS + (2 * g) * 8;
    // The block sums: slot s = 4 warp + (lane >> 1) & 3, position quad q = lane & 1, channel
    // part kp = lane >> 3 (channels 8 kp .. 8 kp + 7).
    const int lane = tid & 31;
    const int kp = lane >> 3, ss = (tid >> 5) * 4 + ((lane >> 1) & 3), sq = lane & 1;
    const float* sdr = sdbc + (kp * 8) * BL_CS + ss * 8 + 4 * sq;
    const int sn = ss & 15, sj = sn >> 1;
    const bool s_is_c = ss >= 16;
    float* acc = s_is_c ? p.dc + (((size_t)i * p.c_groups + gcg) * N + sn) * L
                        : p.db + (((size_t)i * p.b_groups + gb) * N + sn) * L;
    const bool s_ok = sn < N && kp == 0;
    const int stq = sq ^ (sj >> 2), sperm = sj & 3;

    for (int k = ntiles - 1; k >= 0; --k) {
        const int buf = k & 1;
        const int tb = k * BL_TT;
        put_bc(buf);
        {
            const float2 u2 = bl_cv2<T>(ru), d2 = bl_cv2<T>(rd), o2 = bl_cv2<T>(ro);
            const float2 z2 = has_z ? bl_cv2<T>(rz) : make_float2(0.f, 0.f);
            const float uu[2] = {u2.x, u2.y}, dd[2] = {d2.x, d2.y}, oo[2] = {o2.x, o2.y}, zz[2] = {z2.x, z2.y};
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float v = dd[e] + bias;
                float dt = v, sig = 1.f;
                if (softplus) {
                    dt = softplus_series(v);
                    sig = bl_sigmoid(v);
                }
                float dy = oo[e], kz = 0.f;
                if (has_z) {
                    const float sz = bl_sigmoid(zz[e]);
                    dy = oo[e] * zz[e] * sz;
                    kz = oo[e] * sz * fmaf(zz[e], 1.f - sz, 1.f);
                }
                if (!active || tb + 2 * g + e >= L) dt = dy = 0.f;
                svc[2 * g + e] = make_float4(dt, dt * uu[e], dy, uu[e]);
                src[2 * g + e].w = kz;
                ssc[2 * g + e] = sig;
            }
        }
        float2 hs = ckv;
        if (k > 0) {
            fetch(k - 1, true);
            ckv = *reinterpret_cast<const float2*>(ck + (size_t)(k - 1) * 16);
        }
        __syncthreads();
        const float4* bc = reinterpret_cast<const float4*>(sbc + buf * BL_TT * 32) + g;
        // Recompute the tile's states and decays.
        float H0[BL_TT], H1[BL_TT], E0[BL_TT], E1[BL_TT];
        {
            float x0 = hs.x, x1 = hs.y;
            float yp[8];
#pragma unroll
            for (int t = 0; t < BL_TT; ++t) {
                const float4 s = svc[t];
                const float4 b = bc[t * 8];
                const float q0 = ex2_fast(s.x * a0), q1 = ex2_fast(s.x * a1);
                if constexpr (!RE) {
                    E0[t] = q0;
                    E1[t] = q1;
                }
                x0 = fmaf(q0, x0, s.y * b.x);
                x1 = fmaf(q1, x1, s.y * b.y);
                H0[t] = x0;
                H1[t] = x1;
                yp[t & 7] = fmaf(b.z, x0, b.w * x1);
                if ((t & 7) == 7 && has_z) {
                    const float y = bl_rs8(yp, g);
                    src[(t & 8) + g].z = y;
                }
            }
        }
        // The reverse sweep, two halves of 8 steps.
#pragma unroll
        for (int hh = 1; hh >= 0; --hh) {
            float pp[8], qq[8];
            float* sd = sdw + hh * BL_CB * BL_CS;
#pragma unroll
            for (int m = 7; m >= 0; --m) {
                const int t = hh * 8 + m;
                float4 s;
                if constexpr (LEAN) {  // dt, dt u by one 8-byte read, dy by a 4-byte one
                    const float2 s2 = *reinterpret_cast<const float2*>(svc + t);
                    s = make_float4(s2.x, s2.y, reinterpret_cast<const float*>(svc + t)[2], 0.f);
                } else {
                    s = svc[t];
                }
                const float4 b = bc[t * 8];
                g0 = fmaf(g0, dn0, b.z * s.z);
                g1 = fmaf(g1, dn1, b.w * s.z);
                const float hd0 = fmaf(-s.y, b.x, H0[t]);
                const float hd1 = fmaf(-s.y, b.y, H1[t]);
                const float e0 = g0 * hd0, e1 = g1 * hd1;
                qq[m] = fmaf(a0, e0, a1 * e1);
                da0 = fmaf(s.x, e0, da0);
                da1 = fmaf(s.x, e1, da1);
                pp[m] = fmaf(g0, b.x, g1 * b.y);
                const int pos = m ^ g;
                sd[pos] = g0 * s.y;
                sd[8 + pos] = g1 * s.y;
                sd[128 + pos] = H0[t] * s.z;
                sd[136 + pos] = H1[t] * s.z;
                if constexpr (RE) {
                    dn0 = ex2_fast(s.x * a0);
                    dn1 = ex2_fast(s.x * a1);
                } else {
                    dn0 = E0[t];
                    dn1 = E1[t];
                }
            }
            const float P = bl_rs8(pp, g);
            const float Q = bl_rs8(qq, g);
            src[hh * 8 + g].x = P;
            src[hh * 8 + g].y = Q;
            __syncthreads();
            // Block sums of this half's dB / dC.
            {
                const float* r = sdr + hh * BL_CB * BL_CS;
                float4 a = *reinterpret_cast<const float4*>(r);
#pragma unroll
                for (int m = 1; m < 8; ++m) {
                    const float4 v = *reinterpret_cast<const float4*>(r + m * BL_CS);
                    a.x += v.x;
                    a.y += v.y;
                    a.z += v.z;
                    a.w += v.w;
                }
#pragma unroll
                for (int x = 8; x <= 16; x <<= 1) {
                    a.x += __shfl_xor_sync(0xffffffffu, a.x, x);
                    a.y += __shfl_xor_sync(0xffffffffu, a.y, x);
                    a.z += __shfl_xor_sync(0xffffffffu, a.z, x);
                    a.w += __shfl_xor_sync(0xffffffffu, a.w, x);
                }
                if (s_ok && !NODBC) {
                    // Position quad sq holds steps 4 stq + (m ^ sperm).
                    const float av[4] = {a.x, a.y, a.z, a.w};
                    float o[4];
#pragma unroll
                    for (int m = 0; m < 4; ++m) {
                        const int from = m ^ sperm;
                        o[m] = from == 0 ? av[0] : from == 1 ? av[1] : from == 2 ? av[2] : av[3];
                    }
                    const int t = tb + hh * 8 + 4 * stq;
                    if (p.vec4 && t + 3 < L) {
                        atomicAdd(reinterpret_cast<float4*>(acc + t), make_float4(o[0], o[1], o[2], o[3]));
                    } else {
#pragma unroll
                        for (int m = 0; m < 4; ++m)
                            if (t + m < L) atomicAdd(acc + t + m, o[m]);
                    }
                }
            }
        }
        __syncwarp();
        // Outputs of the channel's steps 2g, 2g + 1.
        {
            float dub[2], ddb[2], dzb[2];
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float4 s = svc[2 * g + e];
                const float4 r = src[2 * g + e];
                const float sig = ssc[2 * g + e];
                dub[e] = fmaf(Dc, s.z, s.x * r.x);
                const float ddt = fmaf(r.y, 0.6931471805599453f, s.w * r.x);
                ddb[e] = ddt * sig;
                dzb[e] = r.w * fmaf(Dc, s.w, r.z);
                if (tb + 2 * g + e < L) {
                    dDacc = fmaf(s.z, s.w, dDacc);
                    dbacc += ddb[e];
                }
            }
            if (active) {
                const int t = tb + 2 * g;
                bl_st2<T>(static_cast<T*>(p.du) + rowo, t, L, vec, dub[0], dub[1]);
                bl_st2<T>(static_cast<T*>(p.ddelta) + rowo, t, L, vec, ddb[0], ddb[1]);
                if (p.dz) bl_st2<T>(static_cast<T*>(p.dz) + rowo, t, L, vec, dzb[0], dzb[1]);
            }
        }
        __syncwarp();
    }
    // dh0 = dA_0 g_0; dA, dD, d delta_bias summed over the batch (atomics).
    if (active) {
        if (p.dh0) {
            if (n0 < N) p.dh0[((size_t)i * dim + c) * N + n0] = dn0 * g0;
            if (n1 < N) p.dh0[((size_t)i * dim + c) * N + n1] = dn1 * g1;
        }
        if (n0 < N) atomicAdd(p.dA + (size_t)c * N + n0, da0);
        if (n1 < N) atomicAdd(p.dA + (size_t)c * N + n1, da1);
    }
#pragma unroll
    for (int x = 1; x < 8; x <<= 1) {
        dDacc += __shfl_xor_sync(0xffffffffu, dDacc, x);
        dbacc += __shfl_xor_sync(0xffffffffu, dbacc, x);
    }
    if (active && g == 0) {
        if (p.dD) atomicAdd(p.dD + c, dDacc);
        if (p.dbias) atomicAdd(p.dbias + c, dbacc);
    }
}

#define BL_KERNEL(T, SFX)                                                                                     \
    extern "C" __global__ void __launch_bounds__(256, 2) bwdlm_##SFX(const __grid_constant__ BwdLmParams p) {     \
        bwd_lm<T, 0>(p);                                                                                          \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 2) bwdlm_##SFX##_nodbc(const __grid_constant__ BwdLmParams p) { \
        bwd_lm<T, 1>(p);                                                                                          \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 2) bwdlm_##SFX##_lean(const __grid_constant__ BwdLmParams p) { \
        bwd_lm<T, 3>(p);                                                                                          \
    }

BL_KERNEL(float, f32)
#ifndef MAMBA_EMU
BL_KERNEL(bf16_t, bf16)
BL_KERNEL(f16_t, f16)
#endif

// ---------------------------------------------------------------------------------------
// `_q4` (`MAMBA_CUDA_BWD_LM_V=q4`): four threads per channel with four states each
// (n = 4g .. 4g + 3), blocks of 32 channels (128 threads), tiles of BQ_TT = 8 steps (the
// tile's states and decays in registers: 64 floats). Per channel and step the overheads of
// the `_w` form above (the three reduce-scatters over 8 threads, the shared reads of dt,
// dt u, dy and B/C by 8 threads) are shared by four states instead of two: the reduce-
// scatters run over 4 threads (thread g ends with steps 2g, 2g + 1 of the tile), each
// thread reads B / C of its four states by one 16-byte read each. Everything else as above:
// phase F writes the state at every tile start (checkpoints (b, d, ceil(L / 8), 16) f32),
// phase B recomputes the tile's states and sweeps back; dB / dC staged per channel as
// [slot][step] (step position t ^ g: conflict-free stores), summed over the block's 32
// channels (16-byte reads by two threads per (slot, 4 steps), combined by one shuffle),
// one 16-byte atomic per (slot, 4 steps) and block. Two block barriers per tile.
#define BQ_TT 8
#define BQ_CB 32
#define BQ_NT (BQ_CB * 4)
// Per-channel rows of 8 float4 {dt, dt u, dy, u}, padded by one float4 (a warp's 8
// channels land in different bank groups).
#define BQ_SVS (BQ_TT * 4 + 4)
// The dB/dC staging: per channel 32 slots (dB n, then dC n) of 8 steps; channel stride
// = 4 mod 32 floats.
#define BQ_CS (32 * BQ_TT + 4)

// Shared memory in floats: sbc[2][TT][32], sv[CB][SVS], sx[NT][4], sdbc[CB][CS].
__host__ __device__ constexpr int bq_smem_floats() {
    return 2 * BQ_TT * 32 + BQ_CB * BQ_SVS + BQ_NT * 4 + BQ_CB * BQ_CS;
}
// `q4p` (S 4): B / C staged in four copies, copy s with the states of each group of four
// permuted by j -> j ^ s; a copy's stride BQ_PCS floats (16 mod 32: the two copies a half
// warp reads by 8-byte loads sit in different banks). sbc[2][4][PCS], sv, sx as above, the
// per-warp dB / dC sums sred[2][4][32][8] (`q4pb` double-buffers them).
#define BQ_PCS (BQ_TT * 32 + 16)
__host__ __device__ constexpr int bq_smem_floats_p() {
    return 2 * 4 * BQ_PCS + BQ_CB * BQ_SVS + BQ_NT * 4 + 2 * (BQ_NT / 32) * 256;
}

// Reduce-scatter of 8 per-step values over the 4 threads of a channel (lanes 4k .. 4k + 3):
// thread g returns the sums over the threads of v[2g], v[2g + 1].
__device__ __forceinline__ float2 bq_rs4(const float (&v)[8], int g) {
    const bool h2 = (g & 2) != 0, h1 = (g & 1) != 0;
    float a[4];
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        const float s = h2 ? v[m] : v[m + 4];
        const float k = h2 ? v[m + 4] : v[m];
        a[m] = k + __shfl_xor_sync(0xffffffffu, s, 2);
    }
    float b[2];
#pragma unroll
    for (int m = 0; m < 2; ++m) {
        const float s = h1 ? a[m] : a[m + 2];
        const float k = h1 ? a[m + 2] : a[m];
        b[m] = k + __shfl_xor_sync(0xffffffffu, s, 1);
    }
    return make_float2(b[0], b[1]);
}

// BQ_O32 (default 1): the saved f32 backward's 32-bit row offsets (see `O32` in bwd_lm4).
#ifndef BQ_O32
#define BQ_O32 1
#endif
#ifndef BQ_EMU_H16
#define BQ_EMU_H16 0
#endif
// f32 -> bf16 bits, round to nearest even (the host emulator's check of the `q4h` layout).
__device__ __forceinline__ unsigned bq_to_bf16(float x) {
    const unsigned u = __float_as_uint(x);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
// A word of two 16-bit values (n even, n odd) -> float2.
template <typename T>
__device__ __forceinline__ float2 bq_unpack(unsigned w) {
    if constexpr (sizeof(T) == 2) {
        return bl_cv2<T>(w);
    } else {
        return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
    }
}

__device__ __forceinline__ float bq_c(const float4& v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// S (`MAMBA_CUDA_BWD_LM_V`): 0 `q4`; 1 `q4s`, fewer shared-memory wavefronts: y = sum C h
// summed in the sweep (C is no longer read by the recompute), the sweep reads dt, dt u by
// one 8-byte read and dy by a 4-byte one, and dB / dC are reduce-scattered over the warp's
// 8 channels by shuffles (7 per step: lane 4 k + g ends with slot (k < 4 ? dB : dC) of state
// 4 g + (k & 3), summed over the warp), staged once per step and lane, and summed over the
// 4 warps by 64 threads (four 16-byte reads each) before the atomics.
//
// S 4 (`q4p`): `q4h` (f32: `q4s`) with the dB / dC reduce-scatter free of selects except in its
// last stage. A lane 4 k + g (k = the warp's channel, bits k2 k1 k0) keeps its four states in
// the order n = 4 g + (s ^ sg), sg = 2 k2 + k1 (read from B / C copy sg, which is staged in
// that order). Its 8 values v[2 s + kind] (kind 0: dB = g dt u, 1: dC = h dy) then need no
// selects in the first two stages: state bit 1 of register s is k2 ^ s1, so the values a lane
// keeps at the xor-16 stage are always registers 0..3 (and those of the xor-8 stage registers
// 0, 1); the last stage (xor 4) keeps kind k0 by one select pair. Lane 4 k + g ends with kind
// k0 of state 4 g + (k >> 1), summed over the warp's 8 channels. 2 selects per lane and step
// instead of 14.
// S 5 (`q4pb`): `q4p` with one block barrier per tile instead of two: the per-warp dB / dC
// sums are double-buffered, and the block sums of tile k + 1 are taken after the first
// barrier of tile k, by all 128 threads (two steps each: four 8-byte reads, one 8-byte
// atomic) instead of 64.
// SV (`q4pbs`, S 5 only: the backward of `selective_scan_backward_saved`): no phase F. The
// checkpoints come from the training forward (`lm1_fwd_*_w6ck` / `_w9ck`, kernels/
// scan1_lm.cu) in `p.ck`, (b, ceil(L / 8), d, 16) f32 with the states in natural order (a
// warp's eight channels read 512 contiguous bytes); each thread reads its 16 bytes (states
// 4g .. 4g + 3) and permutes them into its register order j -> 4g + (j ^ sg) (two select
// pairs per element).
__device__ __forceinline__ float4 bq_perm(float4 v, int sg) {
    if (sg & 1) v = make_float4(v.y, v.x, v.w, v.z);
    if (sg & 2) v = make_float4(v.z, v.w, v.x, v.y);
    return v;
}
template <typename T, int S, bool SV = false, bool OX = false>
__device__ void bwd_lm4(const BwdLmParams& p) {
    static_assert(!SV || S == 5, "SV: the q4pb form only");
    typedef typename BlRaw<T>::type R;
    constexpr int TT = BQ_TT;
    constexpr bool SH = S >= 1;
    constexpr bool PM = S >= 4;
    constexpr bool PB = S == 5;
    // `q4h` (S 2, 16-bit types): B / C staged in shared memory as 16-bit values (exact), a
    // step's {B 4g .. 4g + 3, C 4g .. 4g + 3} in 16 bytes: the sweep reads B and C by one
    // 16-byte read, the recompute and phase F B by one 8-byte read (half the wavefronts).
    constexpr bool H16 = S >= 2 && (sizeof(T) == 2 || BQ_EMU_H16);
    // `q4r` (S 3): `q4h` with the decays recomputed in the sweep (one more exponential per
    // state and step, 32 registers fewer).
    constexpr bool RE = S == 3;
    DYN_SMEM(smem);
    float* sbc = smem;                   // [2][TT][32] {B 0..15, C 0..15}
    float* sv = sbc + 2 * TT * 32;       // [CB][SVS] float4 {dt, dt u, dy, u}
    float* sx = sv + BQ_CB * BQ_SVS;     // [NT] float4 {kz, kz', sp', sp'} of the thread's 2 steps
    float* sdbc = sx + BQ_NT * 4;        // [CB][CS]
    if constexpr (PM) {
        sv = sbc + 2 * 4 * BQ_PCS;
        sx = sv + BQ_CB * BQ_SVS;
        sdbc = sx + BQ_NT * 4;
    }
    const int N = p.dstate, L = p.seqlen, dim = p.dim;
    const int tid = threadIdx.x;
    // `q4p`: the lane's state order (register j holds state 4 g + (j ^ sg)).
    const int sg = PM ? (tid >> 3) & 3 : 0;
    const int i = blockIdx.y;
    const int seg_id = blockIdx.x / p.blocks_per_seg;
    const int blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * BQ_CB;
    const int cn = min(BQ_CB, (seg_id + 1) * p.seg - c0);
    const int gb = c0 / (dim / p.b_groups), gcg = c0 / (dim / p.c_groups);
    const int cl = tid >> 2, g = tid & 3;
    const bool active = cl < cn;
    const int c = c0 + (active ? cl : 0);
    const bool vec = p.vec != 0;
    const bool has_z = p.z != nullptr, softplus = p.softplus != 0;
    const size_t rowo = ((size_t)i * dim + c) * L;
    const T* gu = static_cast<const T*>(p.u) + rowo;
    const T* gd = static_cast<const T*>(p.delta) + rowo;
    const T* gz = has_z ? static_cast<const T*>(p.z) + rowo : nullptr;
    const T* go = static_cast<const T*>(p.dout) + rowo;
    // O32 (SV, f32): the rows of u, delta, z, dout, du, ddelta, dz and the checkpoints
    // addressed by 32-bit element offsets from the parameters at each use (no 64-bit row
    // pointers held across the tile loop; ptxas: spills 40 / 76 -> 24 / 36 bytes). The saving
    // forward exists only where the checkpoints hold fewer than 2^32 floats (ops.rs
    // `saved_bytes_of`): b d ceil(L / 8) 16 < 2^32, so b d L < 2^31. H200, the f32 training
    // pair at b8 d2048 N16 L2048: 1425-1435 -> 1296-1300 us (thirtieth session). Not for the
    // 16-bit types: bf16 1190-1198 -> 1185-1195 (noise), f16 1177-1182 -> 1198-1200 (slower);
    // with B / C rows by offsets too, every type slower than this.
    // OX (`q4pbo`, f32, not SV): the same 32-bit offsets for the plain backward, whose own
    // checkpoints ((b, d, ntiles, 16) f32 scratch) are addressed the same way; the host takes
    // it only where that scratch holds fewer than 2^32 floats (bwd_lm.rs `o32_fits`), so
    // again b d L < 2^31. Off by default: on the H200 the plain f32 backward is 3-5% slower
    // with it (thirty-first session: ptxas 44 / 88 bytes of spills against 28 / 108).
    constexpr bool O32 = (SV || OX) && BQ_O32 && sizeof(T) == 4;
    static_assert(!OX || (S == 5 && !SV && sizeof(T) == 4), "OX: the f32 q4pb form only");
    [[maybe_unused]] const unsigned rowo32 = (unsigned)rowo;
    // B/C staging: thread -> row r = tid / 4 (B n = r, or C n = r - 16), steps 2 (tid % 4), + 1.
    const int br = tid >> 2, bq = tid & 3;
    const int bn = br & 15;
    const bool bis_c = br >= 16, bok = bn < N;
    const T* gbc = bis_c ? static_cast<const T*>(p.C) + (((size_t)i * p.c_groups + gcg) * N + (bok ? bn : 0)) * L
                         : static_cast<const T*>(p.B) + (((size_t)i * p.b_groups + gb) * N + (bok ? bn : 0)) * L;
    const int ntiles = (L + TT - 1) / TT;
    float* ck = p.ck + ((size_t)i * dim + c) * ntiles * 16 + 4 * g;
    // OX: the plain backward's checkpoint k of this thread at p.ck + cko32n + 16 k.
    [[maybe_unused]] const unsigned cko32n = (unsigned)(((size_t)i * dim + c) * ntiles * 16 + 4 * g);
    auto ckn = [&](int k) -> float* {
        if constexpr (O32 && !SV) return p.ck + (unsigned)(cko32n + (unsigned)k * 16u);
        return ck + (size_t)k * 16;
    };
    // SV: the saved checkpoints, (b, ntiles, d, 16): checkpoint k at cks + k * dim * 16.
    [[maybe_unused]] const float* cks = p.ck + ((size_t)i * ntiles * dim + c) * 16 + 4 * g;
    [[maybe_unused]] const unsigned cko32 = (unsigned)(((size_t)i * ntiles * dim + c) * 16 + 4 * g);
    // Checkpoint k's 16 bytes of this thread.
    auto ck_ld = [&](int k) -> float4 {
        if constexpr (O32) return *reinterpret_cast<const float4*>(p.ck + (unsigned)(cko32 + (unsigned)k * (unsigned)dim * 16u));
        return *reinterpret_cast<const float4*>(cks + (size_t)k * dim * 16);
    };

    float a[4], h[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int n = 4 * g + (j ^ sg);
        a[j] = 0.f;
        h[j] = 0.f;
        if (active && n < N) {
            a[j] = p.A[(size_t)c * N + n] * LOG2E_F;
            if (p.h0) h[j] = p.h0[((size_t)i * dim + c) * N + n];
        }
    }
    const float Dc = p.D && active ? p.D[c] : 0.f;
    const float bias = p.bias && active ? p.bias[c] : 0.f;

    R ru{}, rd{}, rz{}, ro{}, rbc{};
    auto fetch = [&](int k, bool back) {
        if constexpr (O32) {
            // Row offset and step relative to the tile (TT even: the same aligned addresses).
            const unsigned o = rowo32 + (unsigned)(k * TT);
            const int t = 2 * g, Lr = L - k * TT;
            ru = bl_ld2<T>(static_cast<const T*>(p.u) + o, t, Lr, vec);
            rd = bl_ld2<T>(static_cast<const T*>(p.delta) + o, t, Lr, vec);
            if (back) {
                ro = bl_ld2<T>(static_cast<const T*>(p.dout) + o, t, Lr, vec);
                if (has_z) rz = bl_ld2<T>(static_cast<const T*>(p.z) + o, t, Lr, vec);
            }
        } else {
            const int t = k * TT + 2 * g;
            ru = bl_ld2<T>(gu, t, L, vec);
            rd = bl_ld2<T>(gd, t, L, vec);
            if (back) {
                ro = bl_ld2<T>(go, t, L, vec);
                if (has_z) rz = bl_ld2<T>(gz, t, L, vec);
            }
        }
        if (bok && (back || !bis_c)) rbc = bl_ld2<T>(gbc, k * TT + 2 * bq, L, vec);
    };
    auto put_bc = [&](int buf) {
        if constexpr (PM) {
            // Four copies; copy s holds state 4 q + j at position 4 q + (j ^ s).
            if constexpr (H16) {
                unsigned lo, hi;
                if constexpr (sizeof(T) == 2) {
                    const unsigned w = bok ? (unsigned)rbc : 0u;
                    lo = w & 0xffffu;
                    hi = w >> 16;
                } else {
                    const float2 v = bok ? bl_cv2<T>(rbc) : make_float2(0.f, 0.f);
                    lo = bq_to_bf16(v.x);
                    hi = bq_to_bf16(v.y);
                }
#pragma unroll
                for (int s = 0; s < 4; ++s) {
                    unsigned short* d = reinterpret_cast<unsigned short*>(sbc + (buf * 4 + s) * BQ_PCS) +
                                        (bn >> 2) * 8 + (bis_c ? 4 : 0) + ((bn & 3) ^ s);
                    d[(2 * bq) * 32] = (unsigned short)lo;
                    d[(2 * bq + 1) * 32] = (unsigned short)hi;
                }
            } else {
                const float2 v = bok ? bl_cv2<T>(rbc) : make_float2(0.f, 0.f);
#pragma unroll
                for (int s = 0; s < 4; ++s) {
                    float* d = sbc + (buf * 4 + s) * BQ_PCS + (bis_c ? 16 : 0) + (bn & ~3) + ((bn & 3) ^ s);
                    d[(2 * bq) * 32] = v.x;
                    d[(2 * bq + 1) * 32] = v.y;
                }
            }
            return;
        }
        if constexpr (H16) {
            // Step words [g][B pair 0, B pair 1, C pair 0, C pair 1] (16 per step).
            unsigned lo, hi;
            if constexpr (sizeof(T) == 2) {
                const unsigned w = bok ? (unsigned)rbc : 0u;
                lo = w & 0xffffu;
                hi = w >> 16;
            } else {  // the host emulator: f32 rounded to bf16
                const float2 v = bok ? bl_cv2<T>(rbc) : make_float2(0.f, 0.f);
                lo = bq_to_bf16(v.x);
                hi = bq_to_bf16(v.y);
            }
            unsigned short* d = reinterpret_cast<unsigned short*>(sbc + buf * TT * 16) +
                                ((bn >> 2) * 4 + (bis_c ? 2 : 0) + ((bn & 3) >> 1)) * 2 + (bn & 1);
            d[(2 * bq) * 32] = (unsigned short)lo;
            d[(2 * bq + 1) * 32] = (unsigned short)hi;
        } else {
            const float2 v = bok ? bl_cv2<T>(rbc) : make_float2(0.f, 0.f);
            float* d = sbc + buf * TT * 32 + (bis_c ? 16 : 0) + bn;
            d[(2 * bq) * 32] = v.x;
            d[(2 * bq + 1) * 32] = v.y;
        }
    };
    // B (and C) of step t of the staged tile (bc: the buffer plus this thread's offset).
    auto ld_b = [&](const float* bc, int t) -> float4 {
        if constexpr (H16) {
            const uint2 w = *reinterpret_cast<const uint2*>(bc + t * 16);
            const float2 b0 = bq_unpack<T>(w.x), b1 = bq_unpack<T>(w.y);
            return make_float4(b0.x, b0.y, b1.x, b1.y);
        } else {
            return *reinterpret_cast<const float4*>(bc + t * 32);
        }
    };
    auto ld_bc = [&](const float* bc, int t, float4& b, float4& cc) {
        if constexpr (H16) {
            const uint4 w = *reinterpret_cast<const uint4*>(bc + t * 16);
            const float2 b0 = bq_unpack<T>(w.x), b1 = bq_unpack<T>(w.y);
            const float2 c0 = bq_unpack<T>(w.z), c1 = bq_unpack<T>(w.w);
            b = make_float4(b0.x, b0.y, b1.x, b1.y);
            cc = make_float4(c0.x, c0.y, c1.x, c1.y);
        } else {
            b = *reinterpret_cast<const float4*>(bc + t * 32);
            cc = *reinterpret_cast<const float4*>(bc + 16 + t * 32);
        }
    };
    // This thread's B / C of step 0 in staging buffer buf.
    auto bc_of = [&](int buf) -> const float* {
        if constexpr (PM) return sbc + (buf * 4 + sg) * BQ_PCS + 4 * g;
        return H16 ? sbc + buf * TT * 16 + 4 * g : sbc + buf * TT * 32 + 4 * g;
    };
    float4* svc = reinterpret_cast<float4*>(sv + cl * BQ_SVS);
    float4* sxt = reinterpret_cast<float4*>(sx) + tid;

    // ---- Phase F: checkpoints at every tile start.
    float4 ckv;
    if constexpr (SV) {
        // The saved checkpoints: the last tile's inputs and its checkpoint, as phase F's
        // last iteration leaves them.
        fetch(ntiles - 1, true);
        // Kept raw (natural state order) and permuted where it is used: see the loop.
        ckv = make_float4(0.f, 0.f, 0.f, 0.f);
        if (active) ckv = ck_ld(ntiles - 1);
    } else {
    fetch(0, ntiles == 1);
    for (int k = 0; k < ntiles; ++k) {
        const int buf = k & 1;
        put_bc(buf);
        {
            const float2 u2 = bl_cv2<T>(ru), d2 = bl_cv2<T>(rd);
            const int t = k * TT + 2 * g;
            float dt[2] = {d2.x + bias, d2.y + bias};
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                if (softplus) dt[e] = softplus_series(dt[e]);
                if (!active || t + e >= L) dt[e] = 0.f;
            }
            *reinterpret_cast<float2*>(svc + 2 * g) = make_float2(dt[0], dt[0] * u2.x);
            *reinterpret_cast<float2*>(svc + 2 * g + 1) = make_float2(dt[1], dt[1] * u2.y);
        }
        if (k + 1 < ntiles) fetch(k + 1, false);
        else fetch(ntiles - 1, true);
        __syncthreads();
        ckv = make_float4(h[0], h[1], h[2], h[3]);
        if (active) *reinterpret_cast<float4*>(ckn(k)) = ckv;
        const float* bc = bc_of(buf);
#pragma unroll
        for (int t = 0; t < TT; ++t) {
            const float4 b = ld_b(bc, t);
            const float2 s = *reinterpret_cast<const float2*>(svc + t);
#pragma unroll
            for (int j = 0; j < 4; ++j) h[j] = fmaf(ex2_fast(s.x * a[j]), h[j], s.y * bq_c(b, j));
        }
        __syncwarp();
    }
    __syncthreads();
    }

    // ---- Phase B.
    float gg[4], dn[4], da[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int n = 4 * g + (j ^ sg);
        gg[j] = p.dlast && active && n < N ? p.dlast[((size_t)i * dim + c) * N + n] : 0.f;
        dn[j] = 1.f;
        da[j] = 0.f;
    }
    float dDacc = 0.f, dbacc = 0.f;
    // dB/dC staging: slots 4g + j (dB) and 16 + 4g + j (dC), step position t ^ g.
    float* sdw = sdbc + cl * BQ_CS + (4 * g) * TT;
    // The block sums: output so = 16 warp + (lane & 15) = (slot ss, 4-step quad sq), channel
    // half kh = lane >> 4 (channels 16 kh .. 16 kh + 15).
    const int lane = tid & 31;
    const int so = (tid >> 5) * 16 + (lane & 15), ss = so >> 1, sq = so & 1, kh = lane >> 4;
    const float* sdr = sdbc + (kh * 16) * BQ_CS + ss * TT + 4 * sq;
    const int sn = ss & 15, sperm = (sn >> 2) & 3;
    const bool s_is_c = ss >= 16;
    float* acc = s_is_c ? p.dc + (((size_t)i * p.c_groups + gcg) * N + (sn < N ? sn : 0)) * L
                        : p.db + (((size_t)i * p.b_groups + gb) * N + (sn < N ? sn : 0)) * L;
    const bool s_ok = sn < N && kh == 0;
    // `q4s`: the per-warp dB/dC sums [warp][lane][8] (in sdbc's place) and their readers.
    float* sred = sdbc + (tid >> 5) * 256 + lane * 8;
    const int rL = (tid >> 1) & 31, rk = rL >> 2, rg = rL & 3, rn = 4 * rg + (PM ? rk >> 1 : rk & 3);
    const bool r_ok = tid < 64 && rn < N;
    const float* rrd = sdbc + rL * 8 + 4 * (tid & 1);
    float* racc = (PM ? (rk & 1) != 0 : rk >= 4) ? p.dc + (((size_t)i * p.c_groups + gcg) * N + (rn < N ? rn : 0)) * L
                          : p.db + (((size_t)i * p.b_groups + gb) * N + (rn < N ? rn : 0)) * L;

    // `q4pb`: thread -> lane slot qL (channel qk of a warp, state group qg), steps 2 qq, + 1
    // of the staged positions (position x holds step x ^ qk).
    const int qL = tid >> 2, qq = tid & 3, qk = qL >> 2, qn = 4 * (qL & 3) + (qk >> 1);
    const bool q_ok = qn < N;
    float* qacc = (qk & 1) ? p.dc + (((size_t)i * p.c_groups + gcg) * N + (q_ok ? qn : 0)) * L
                           : p.db + (((size_t)i * p.b_groups + gb) * N + (q_ok ? qn : 0)) * L;
    auto block_sums = [&](int kt, int b) {
        if (!q_ok) return;
        const float* r = sdbc + b * 1024 + qL * 8 + 2 * qq;
        float2 s2 = *reinterpret_cast<const float2*>(r);
#pragma unroll
        for (int w = 1; w < BQ_NT / 32; ++w) {
            const float2 v = *reinterpret_cast<const float2*>(r + w * 256);
            s2.x += v.x;
            s2.y += v.y;
        }
        const bool sw = (qk & 1) != 0;
        const float o0 = sw ? s2.y : s2.x, o1 = sw ? s2.x : s2.y;
        const int t = kt * TT + ((2 * qq) ^ (qk & 6));
        if ((L & 1) == 0 && t + 1 < L) {
            atomicAdd(reinterpret_cast<float2*>(qacc + t), make_float2(o0, o1));
        } else {
            if (t < L) atomicAdd(qacc + t, o0);
            if (t + 1 < L) atomicAdd(qacc + t + 1, o1);
        }
    };

    for (int k = ntiles - 1; k >= 0; --k) {
        const int buf = k & 1;
        const int tb = k * TT;
        if constexpr (PB) sred = sdbc + buf * 1024 + (tid >> 5) * 256 + lane * 8;
        put_bc(buf);
        {
            const float2 u2 = bl_cv2<T>(ru), d2 = bl_cv2<T>(rd), o2 = bl_cv2<T>(ro);
            const float2 z2 = has_z ? bl_cv2<T>(rz) : make_float2(0.f, 0.f);
            const float uu[2] = {u2.x, u2.y}, dd[2] = {d2.x, d2.y}, oo[2] = {o2.x, o2.y}, zz[2] = {z2.x, z2.y};
            float kz[2], sg[2];
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float v = dd[e] + bias;
                float dt = v, sig = 1.f;
                if (softplus) {
                    dt = softplus_series(v);
                    sig = bl_sigmoid(v);
                }
                float dy = oo[e];
                kz[e] = 0.f;
                if (has_z) {
                    const float sz = bl_sigmoid(zz[e]);
                    dy = oo[e] * zz[e] * sz;
                    kz[e] = oo[e] * sz * fmaf(zz[e], 1.f - sz, 1.f);
                }
                sg[e] = sig;
                if (!active || tb + 2 * g + e >= L) dt = dy = 0.f;
                svc[2 * g + e] = make_float4(dt, dt * uu[e], dy, uu[e]);
            }
            *sxt = make_float4(kz[0], kz[1], sg[0], sg[1]);
        }
        // SV: the checkpoint was loaded a tile ago in natural order; its permutation here
        // (selects on the loaded values) waits for nothing. Permuted right after its load,
        // the selects stalled every warp for the load's latency once per tile (ncu: 15% of
        // the stall samples on one FSEL, fourteenth session).
        const float4 hs = SV ? bq_perm(ckv, sg) : ckv;
        if (k > 0) {
            fetch(k - 1, true);
            if constexpr (SV) {
                ckv = make_float4(0.f, 0.f, 0.f, 0.f);
                if (active) ckv = ck_ld(k - 1);
            } else {
                ckv = active ? *reinterpret_cast<const float4*>(ckn(k - 1)) : make_float4(0.f, 0.f, 0.f, 0.f);
            }
        }
        __syncthreads();
        if constexpr (PB) {
            if (k + 1 < ntiles) block_sums(k + 1, buf ^ 1);
        }
        const float* bc = bc_of(buf);
        // Recompute the tile's states and decays.
        float H[4][TT], E[4][TT];
        float2 y2 = make_float2(0.f, 0.f);
        {
            float x[4] = {hs.x, hs.y, hs.z, hs.w};
            float yp[TT];
#pragma unroll
            for (int t = 0; t < TT; ++t) {
                const float2 s = *reinterpret_cast<const float2*>(svc + t);
                const float4 b = ld_b(bc, t);
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const float q = ex2_fast(s.x * a[j]);
                    if constexpr (!RE) E[j][t] = q;
                    x[j] = fmaf(q, x[j], s.y * bq_c(b, j));
                    H[j][t] = x[j];
                }
                if (has_z && !SH) {
                    const float4 cc = *reinterpret_cast<const float4*>(bc + 16 + t * 32);
                    yp[t] = fmaf(cc.x, x[0], fmaf(cc.y, x[1], fmaf(cc.z, x[2], cc.w * x[3])));
                }
            }
            if (has_z && !SH) y2 = bq_rs4(yp, g);
        }
        // The reverse sweep.
        float pp[TT], qq[TT], yq[TT];
#pragma unroll
        for (int t = TT - 1; t >= 0; --t) {
            float4 s;
            if constexpr (SH) {
                const float2 s2 = *reinterpret_cast<const float2*>(svc + t);
                s = make_float4(s2.x, s2.y, reinterpret_cast<const float*>(svc + t)[2], 0.f);
            } else {
                s = svc[t];
            }
            float4 b, cc;
            ld_bc(bc, t, b, cc);
            const int pos = t ^ g;
            float q = 0.f, pv = 0.f, yv = 0.f, v[8];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                gg[j] = fmaf(gg[j], dn[j], bq_c(cc, j) * s.z);
                const float hd = fmaf(-s.y, bq_c(b, j), H[j][t]);
                const float e = gg[j] * hd;
                q = fmaf(a[j], e, q);
                da[j] = fmaf(s.x, e, da[j]);
                pv = fmaf(gg[j], bq_c(b, j), pv);
                if constexpr (PM) {
                    v[2 * j] = gg[j] * s.y;
                    v[2 * j + 1] = H[j][t] * s.z;
                    yv = fmaf(bq_c(cc, j), H[j][t], yv);
                } else if constexpr (SH) {
                    v[j] = gg[j] * s.y;
                    v[4 + j] = H[j][t] * s.z;
                    yv = fmaf(bq_c(cc, j), H[j][t], yv);
                } else {
                    sdw[j * TT + pos] = gg[j] * s.y;
                    sdw[16 * TT + j * TT + pos] = H[j][t] * s.z;
                }
                dn[j] = RE ? ex2_fast(s.x * a[j]) : E[j][t];
            }
            qq[t] = q;
            pp[t] = pv;
            yq[t] = yv;
            if constexpr (PM) {
                float a4[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) a4[m] = v[m] + __shfl_xor_sync(0xffffffffu, v[m + 4], 16);
                float a2[2];
#pragma unroll
                for (int m = 0; m < 2; ++m) a2[m] = a4[m] + __shfl_xor_sync(0xffffffffu, a4[m + 2], 8);
                const bool b4 = (tid & 4) != 0;
                const float a1 = (b4 ? a2[1] : a2[0]) + __shfl_xor_sync(0xffffffffu, b4 ? a2[0] : a2[1], 4);
                sred[t ^ ((tid >> 2) & 7)] = a1;
            } else if constexpr (SH) {
                // Reduce-scatter over the warp's 8 channels (lane bits 4, 3, 2): lane 4 k + g
                // ends with v[k] summed; staged at [warp][lane][t ^ k].
                const bool b16 = (tid & 16) != 0, b8 = (tid & 8) != 0, b4 = (tid & 4) != 0;
                float a4[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) {
                    const float sn = b16 ? v[m] : v[m + 4];
                    const float kp = b16 ? v[m + 4] : v[m];
                    a4[m] = kp + __shfl_xor_sync(0xffffffffu, sn, 16);
                }
                float a2[2];
#pragma unroll
                for (int m = 0; m < 2; ++m) {
                    const float sn = b8 ? a4[m] : a4[m + 2];
                    const float kp = b8 ? a4[m + 2] : a4[m];
                    a2[m] = kp + __shfl_xor_sync(0xffffffffu, sn, 8);
                }
                const float a1 = (b4 ? a2[1] : a2[0]) + __shfl_xor_sync(0xffffffffu, b4 ? a2[0] : a2[1], 4);
                sred[t ^ ((tid >> 2) & 7)] = a1;
            }
        }
        const float2 P = bq_rs4(pp, g);
        const float2 Q = bq_rs4(qq, g);
        if (SH && has_z) y2 = bq_rs4(yq, g);
        if constexpr (!PB) __syncthreads();
        if constexpr (PB) {
        } else if constexpr (SH) {
            // The 4 warps' sums: thread o < 64 -> lane slot Ls = o >> 1 (k = Ls >> 2, g = Ls & 3),
            // positions 4 (o & 1) .. + 3 = steps 4 ((o & 1) ^ (k >> 2)) + (m ^ (k & 3)).
            if (r_ok) {
                float4 s4 = *reinterpret_cast<const float4*>(rrd);
#pragma unroll
                for (int w = 1; w < BQ_NT / 32; ++w) {
                    const float4 v = *reinterpret_cast<const float4*>(rrd + w * 256);
                    s4.x += v.x;
                    s4.y += v.y;
                    s4.z += v.z;
                    s4.w += v.w;
                }
                float o[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) o[m] = bq_c(s4, m ^ (rk & 3));
                const int t = tb + 4 * ((tid & 1) ^ (rk >> 2));
                if (p.vec4 && t + 3 < L) {
                    atomicAdd(reinterpret_cast<float4*>(racc + t), make_float4(o[0], o[1], o[2], o[3]));
                } else {
#pragma unroll
                    for (int m = 0; m < 4; ++m)
                        if (t + m < L) atomicAdd(racc + t + m, o[m]);
                }
            }
        } else {
            // Block sums of the tile's dB / dC.
            float4 s4 = *reinterpret_cast<const float4*>(sdr);
#pragma unroll
            for (int m = 1; m < 16; ++m) {
                const float4 v = *reinterpret_cast<const float4*>(sdr + m * BQ_CS);
                s4.x += v.x;
                s4.y += v.y;
                s4.z += v.z;
                s4.w += v.w;
            }
            s4.x += __shfl_xor_sync(0xffffffffu, s4.x, 16);
            s4.y += __shfl_xor_sync(0xffffffffu, s4.y, 16);
            s4.z += __shfl_xor_sync(0xffffffffu, s4.z, 16);
            s4.w += __shfl_xor_sync(0xffffffffu, s4.w, 16);
            if (s_ok) {
                // Position quad sq holds steps 4 sq + (m ^ sperm).
                float o[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) o[m] = bq_c(s4, m ^ sperm);
                const int t = tb + 4 * sq;
                if (p.vec4 && t + 3 < L) {
                    atomicAdd(reinterpret_cast<float4*>(acc + t), make_float4(o[0], o[1], o[2], o[3]));
                } else {
#pragma unroll
                    for (int m = 0; m < 4; ++m)
                        if (t + m < L) atomicAdd(acc + t + m, o[m]);
                }
            }
        }
        // Outputs of the channel's steps 2g, 2g + 1.
        {
            const float4 x = *sxt;
            const float Pv[2] = {P.x, P.y}, Qv[2] = {Q.x, Q.y}, yv[2] = {y2.x, y2.y};
            const float kz[2] = {x.x, x.y}, sg[2] = {x.z, x.w};
            float dub[2], ddb[2], dzb[2];
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float4 s = svc[2 * g + e];
                dub[e] = fmaf(Dc, s.z, s.x * Pv[e]);
                const float ddt = fmaf(Qv[e], 0.6931471805599453f, s.w * Pv[e]);
                ddb[e] = ddt * sg[e];
                dzb[e] = kz[e] * fmaf(Dc, s.w, yv[e]);
                if (tb + 2 * g + e < L) {
                    dDacc = fmaf(s.z, s.w, dDacc);
                    dbacc += ddb[e];
                }
            }
            if (active) {
                if constexpr (O32) {
                    const unsigned o = rowo32 + (unsigned)tb;
                    const int t = 2 * g, Lr = L - tb;
                    bl_st2<T>(static_cast<T*>(p.du) + o, t, Lr, vec, dub[0], dub[1]);
                    bl_st2<T>(static_cast<T*>(p.ddelta) + o, t, Lr, vec, ddb[0], ddb[1]);
                    if (p.dz) bl_st2<T>(static_cast<T*>(p.dz) + o, t, Lr, vec, dzb[0], dzb[1]);
                } else {
                    const int t = tb + 2 * g;
                    bl_st2<T>(static_cast<T*>(p.du) + rowo, t, L, vec, dub[0], dub[1]);
                    bl_st2<T>(static_cast<T*>(p.ddelta) + rowo, t, L, vec, ddb[0], ddb[1]);
                    if (p.dz) bl_st2<T>(static_cast<T*>(p.dz) + rowo, t, L, vec, dzb[0], dzb[1]);
                }
            }
        }
        __syncwarp();
    }
    if constexpr (PB) {
        __syncthreads();
        block_sums(0, 0);
    }
    if (active) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = 4 * g + (j ^ sg);
            if (n < N) {
                if (p.dh0) p.dh0[((size_t)i * dim + c) * N + n] = dn[j] * gg[j];
                atomicAdd(p.dA + (size_t)c * N + n, da[j]);
            }
        }
    }
#pragma unroll
    for (int x = 1; x < 4; x <<= 1) {
        dDacc += __shfl_xor_sync(0xffffffffu, dDacc, x);
        dbacc += __shfl_xor_sync(0xffffffffu, dbacc, x);
    }
    if (active && g == 0) {
        if (p.dD) atomicAdd(p.dD + c, dDacc);
        if (p.dbias) atomicAdd(p.dbias + c, dbacc);
    }
}

#define BQ_KERNEL(T, SFX)                                                                                        \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 0>(p);                                                                                            \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4s(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 1>(p);                                                                                            \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4p(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 4>(p);                                                                                            \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4pb(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 5>(p);                                                                                            \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4pbs(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 5, true>(p);                                                                                      \
    }
// `q4pbo`: `q4pb` in f32 with 32-bit row and checkpoint offsets (OX).
extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_f32_q4pbo(const __grid_constant__ BwdLmParams p) {
    bwd_lm4<float, 5, false, true>(p);
}
#define BQ_KERNEL_H(T, SFX)                                                                                      \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4h(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 2>(p);                                                                                            \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(BQ_NT, 4) bwdlm_##SFX##_q4r(const __grid_constant__ BwdLmParams p) { \
        bwd_lm4<T, 3>(p);                                                                                            \
    }

BQ_KERNEL(float, f32)
#ifndef MAMBA_EMU
BQ_KERNEL(bf16_t, bf16)
BQ_KERNEL(f16_t, f16)
BQ_KERNEL_H(bf16_t, bf16)
BQ_KERNEL_H(f16_t, f16)
#elif BQ_EMU_H16
BQ_KERNEL_H(float, f32)
#endif
