// SPEC 1, the Mamba-1 selective scan forward, for many channels (the language-model
// shape: b8 d2048 N16 L2048), `lm1_fwd_*`.
//
// G threads per channel (G = 1, 2 or 4; 4 for NS = 16 only), each holding NS / G of the channel's states in
// registers (NS = 8 or 16 >= N; the states past N have A = B = C = 0, so they stay 0). A
// block owns CB channels of one batch row and of one "segment" (B and C groups constant
// inside), CB * G threads. Time goes in tiles of TT steps through a ring of NST shared
// memory stages, filled with cp.async (16-byte copies; rows must be 16-byte aligned: the
// host sets `async_copy`; the `_w` kernels also 4- / 8-byte copies for rows aligned to
// that) or, for unaligned rows, with plain loads, LM_AHEAD tiles ahead of
// the tile being computed, so the loads overlap the exponentials.
// Per tile: B and C columns are converted to f32 into sbc[t][B n.., C n..] (broadcast
// float4 reads in the step loop); each thread reads its channel's delta, u, z rows
// (16 bytes at a time, its own row: no bank conflicts with the 16-byte row padding), runs
// the recurrence, finishes y (+ D u, * silu(z)) and leaves it in sy; the block then writes
// the tile's outputs coalesced along time.
#include "common.cuh"

#define LM_TT 32
#define LM_NST 3

#ifndef DYN_SMEM
#define DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif




template <typename T>
struct lm_is_bf16 {
    static constexpr bool value = false;
};
#ifndef MAMBA_EMU
template <>
struct lm_is_bf16<bf16_t> {
    static constexpr bool value = true;
};
#endif

// Two 16-bit values of one 32-bit word as floats (low, high).
template <typename T>
__device__ __forceinline__ void lm_unpack2(unsigned w, float& lo, float& hi) {
#ifdef MAMBA_EMU
    (void)w;
    lo = hi = 0.f;
#else
    if constexpr (lm_is_bf16<T>::value) {
        lo = __uint_as_float(w << 16);
        hi = __uint_as_float(w & 0xffff0000u);
    } else {
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w));
        lo = f.x;
        hi = f.y;
    }
#endif
}

// bf16 only (the `_w2` kernels): softplus as max(v, 0) + ln 2 * lg2(1 + 2^(-|v| log2 e))
// (2 MUFU, 4 other instructions) and silu(z) = z (1 + tanh(z / 2)) / 2 by tanh.approx
// (1 MUFU; absolute error of the sigmoid < 3e-4).
__device__ __forceinline__ float lm_softplus_fast(float v) {
#ifdef MAMBA_EMU
    return fmaxf(v, 0.f) + std::log1p(std::exp(-std::fabs(v)));
#else
    const float x = ex2_fast(-fabsf(v) * LOG2E_F);
    float l;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(l) : "f"(1.f + x));
    return fmaf(l, 0.6931471805599453f, fmaxf(v, 0.f));
#endif
}
__device__ __forceinline__ float lm_silu_fast(float z) {
#ifdef MAMBA_EMU
    return z / (1.f + std::exp(-z));
#else
    const float hz = 0.5f * z;
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(hz));
    return fmaf(hz, t, hz);
#endif
}

// The plain-load path of the `_w` kernels: raw element words of ES bytes.
template <int ES>
struct LmRawT {
    typedef unsigned type;
};
template <>
struct LmRawT<2> {
    typedef unsigned short type;
};
// Elements per thread loaded before their stores (the `_w` kernels' plain-load path,
// `async_copy` 2).
#ifndef LMW_PL
#define LMW_PL 8
#endif
__device__ __forceinline__ void lm_cp16(void* dst, const void* src) {
#ifdef MAMBA_EMU
    emu_cp(dst, src, 16, 16);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
#endif
}
// cp.async of `wb` = 4 or 8 bytes (rows aligned to wb but not to 16: `lm1_fwd_*_w*`).
__device__ __forceinline__ void lm_cpw(void* dst, const void* src, int wb) {
#ifdef MAMBA_EMU
    emu_cp(dst, src, wb, wb);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    if (wb == 8)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(d), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(src) : "memory");
#endif
}
__device__ __forceinline__ void lm_commit() {
#ifdef MAMBA_EMU
    emu_cp_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void lm_wait1() {
#ifdef MAMBA_EMU
    emu_cp_wait(1);
#else
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void lm_wait0() {
#ifdef MAMBA_EMU
    emu_cp_wait(0);
#else
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

// Raw elements of one 16-byte chunk as floats (bf16 / f16 unpacked from 32-bit words).
template <typename T>
__device__ __forceinline__ void lm_ld16(const T* src, float (&v)[16 / sizeof(T)]) {
    if constexpr (sizeof(T) == 4) {
        const float4 q = *reinterpret_cast<const float4*>(src);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
        const uint4 q = *reinterpret_cast<const uint4*>(src);
        const unsigned w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const unsigned short lo = (unsigned short)(w[k] & 0xffffu), hi = (unsigned short)(w[k] >> 16);
            v[2 * k] = ldf(reinterpret_cast<const T*>(&lo));
            v[2 * k + 1] = ldf(reinterpret_cast<const T*>(&hi));
        }
    }
}

// Two floats as one 32-bit word of two 16-bit elements (low: a).
template <typename T>
__device__ __forceinline__ unsigned lm_pack2(float a, float b) {
    const T x = cvt<T>(a), y = cvt<T>(b);
    unsigned short xs, ys;
    memcpy(&xs, &x, 2);
    memcpy(&ys, &y, 2);
    return (unsigned)xs | ((unsigned)ys << 16);
}

// a[e0 + g] for a thread-dependent g < G without indexing registers at run time.
template <int G, int V>
__device__ __forceinline__ float lm_pick(const float (&a)[V], int e0, int g) {
    float v = a[e0];
#pragma unroll
    for (int k = 1; k < G; ++k) v = g == k ? a[e0 + k] : v;
    return v;
}

// Shared memory in bytes (the host's `lm1_smem` mirrors this).
__host__ __device__ constexpr int lm_row_bytes(int es) { return (LM_TT + 16 / es) * es; }
__host__ __device__ constexpr int lm_stage_bytes(int es, int cb, int ns) { return (3 * cb + 2 * ns) * lm_row_bytes(es); }
__host__ __device__ constexpr int lm_smem_bytes(int es, int cb, int ns, bool prep) {
    return LM_NST * lm_stage_bytes(es, cb, ns) + LM_TT * 2 * ns * 4 + (prep ? 3 : 1) * cb * (LM_TT + 4) * 4;
}

// Four raw elements as floats (16 bytes of f32, 8 of bf16/f16; aligned to that).
template <typename T>
__device__ __forceinline__ void lm_ld4(const T* src, float (&v)[4]) {
    if constexpr (sizeof(T) == 4) {
        const float4 q = *reinterpret_cast<const float4*>(src);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
        const uint2 q = *reinterpret_cast<const uint2*>(src);
        const unsigned w[2] = {q.x, q.y};
#pragma unroll
        for (int k = 0; k < 2; ++k) {
            const unsigned short lo = (unsigned short)(w[k] & 0xffffu), hi = (unsigned short)(w[k] >> 16);
            v[2 * k] = ldf(reinterpret_cast<const T*>(&lo));
            v[2 * k + 1] = ldf(reinterpret_cast<const T*>(&hi));
        }
    }
}

// lm_ld4 from a row staged `sh` (0 or 1) elements on (`async_copy` 3: 16-bit rows 2 bytes
// off their 4-byte alignment): element reads where sh is 1.
template <typename T>
__device__ __forceinline__ void lm_ld4s(const T* src, int sh, float (&v)[4]) {
    if (sh == 0) {
        lm_ld4<T>(src, v);
    } else {
        // Elements 1 .. 4: the aligned 8 bytes at src and the 4 after them (two reads instead
        // of four element reads; src is 8-byte aligned as for lm_ld4, and the row's staging
        // holds VEC elements past the tile).
        const uint2 q = *reinterpret_cast<const uint2*>(src);
        const unsigned w2 = *reinterpret_cast<const unsigned*>(src + 4);
        const unsigned short h[4] = {(unsigned short)(q.x >> 16), (unsigned short)(q.y & 0xffffu),
                                     (unsigned short)(q.y >> 16), (unsigned short)(w2 & 0xffffu)};
#pragma unroll
        for (int e = 0; e < 4; ++e) v[e] = ldf(reinterpret_cast<const T*>(&h[e]));
    }
}

// PREP: a block-wide pass per tile computes every (channel, step)'s dt and dt * u into
// shared memory before the step loop, and the store pass applies D and the gate, so the
// step loop holds only the recurrence (the `_q` kernels).
template <bool B>
struct lm_bool {
    static constexpr bool value = B;
};

// RS (G > 1, the `_r` kernels): the G partial sums of y are reduce-scattered once per G
// steps (each thread ends with the sum of the step it gates) instead of all-reduced every
// step, and full tiles run a step loop without the tail checks.
template <typename T, int NS, int G, int PE, bool PREP, bool RS = false>
__device__ void lm1_fwd(const Scan1Params& p) {
    constexpr int ES = sizeof(T);
    constexpr int VEC = 16 / ES;         // elements per 16-byte chunk
    constexpr int TTP = LM_TT + VEC;     // row stride of the stages, elements
    constexpr int RB = TTP * ES;         // row bytes
    constexpr int CPR = LM_TT / VEC;     // chunks per tile row
    constexpr int S = NS / G;            // states per thread
    constexpr int YS = LM_TT + 4;        // row stride of sy, floats
    DYN_SMEM(smem);
    unsigned char* sm = reinterpret_cast<unsigned char*>(smem);
    const int CB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int tid = threadIdx.x, nthr = blockDim.x;
    const int stage_bytes = (3 * CB + 2 * NS) * RB;
    float* sbc = reinterpret_cast<float*>(sm + LM_NST * stage_bytes);
    float* sy = sbc + LM_TT * 2 * NS;
    float* sdt = sy + CB * YS;  // PREP: dt, then dt * u, [CB][YS]
    float* sdu = sdt + CB * YS;
    const bool vec = p.async_copy == 1;  // 4 / 8 (rows aligned to that): the `_w` kernels only

    const int i = blockIdx.y;
    const int seg_id = blockIdx.x / p.blocks_per_seg;
    const int blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CB;
    const int cn = min(CB, (seg_id + 1) * p.seg - c0);
    const int gb = c0 / (dim / p.b_groups), gc = c0 / (dim / p.c_groups);
    const T* gu = static_cast<const T*>(p.u) + ((size_t)i * dim + c0) * L;
    const T* gd = static_cast<const T*>(p.delta) + ((size_t)i * dim + c0) * L;
    const T* gz = p.z ? static_cast<const T*>(p.z) + ((size_t)i * dim + c0) * L : nullptr;
    const T* gB = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + gb) * N * L;
    const T* gC = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + gc) * N * L;
    T* gout = static_cast<T*>(p.out) + ((size_t)i * dim + c0) * L;

    const int ntiles = (L + LM_TT - 1) / LM_TT;
    // Stage layout: u rows, delta rows, z rows (CB each), B rows, C rows (N of NS used).
    auto load_tile = [&](int k) {
        if (k >= ntiles) return;
        unsigned char* st = sm + (k % LM_NST) * stage_bytes;
        const int t0 = k * LM_TT, tn = min(LM_TT, L - t0);
        const T* rows[3] = {gu, gd, gz};
        if (vec) {
            const int nv = tn / VEC;  // L % VEC == 0: whole chunks
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                unsigned char* dst = st + a * CB * RB;
                for (int idx = tid; idx < cn * CPR; idx += nthr) {
                    const int r = idx / CPR, q = idx % CPR;
                    if (q < nv) lm_cp16(dst + r * RB + q * 16, rows[a] + (size_t)r * L + t0 + q * VEC);
                }
            }
            unsigned char* dst = st + 3 * CB * RB;
            for (int idx = tid; idx < 2 * N * CPR; idx += nthr) {
                const int r = idx / CPR, q = idx % CPR;
                const int n = r % N;
                const T* src = r < N ? gB : gC;
                if (q < nv) lm_cp16(dst + (r < N ? n : NS + n) * RB + q * 16, src + (size_t)n * L + t0 + q * VEC);
            }
        } else {
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                T* dst = reinterpret_cast<T*>(st + a * CB * RB);
                for (int idx = tid; idx < cn * LM_TT; idx += nthr) {
                    const int r = idx / LM_TT, t = idx % LM_TT;
                    if (t < tn) dst[r * TTP + t] = rows[a][(size_t)r * L + t0 + t];
                }
            }
            T* dst = reinterpret_cast<T*>(st + 3 * CB * RB);
            for (int idx = tid; idx < 2 * N * LM_TT; idx += nthr) {
                const int r = idx / LM_TT, t = idx % LM_TT;
                const int n = r % N;
                const T* src = r < N ? gB : gC;
                if (t < tn) dst[(r < N ? n : NS + n) * TTP + t] = src[(size_t)n * L + t0 + t];
            }
        }
    };

    // This thread's channel and states.
    const int cl = tid / G, g = tid % G;
    const int glane0 = (tid & 31) & ~(G - 1);  // the channel's first lane
    const bool active = cl < cn;
    const int c = c0 + (active ? cl : 0);
    float h[S], a2[S];
#pragma unroll
    for (int j = 0; j < S; ++j) {
        const int n = g * S + j;
        const bool ok = active && n < N;
        a2[j] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
        h[j] = ok && p.h0 ? p.h0[((size_t)i * dim + c) * N + n] : 0.f;
    }
    const float Dc = p.D && active ? p.D[c] : 0.f;
    const float bias = p.delta_bias && active ? p.delta_bias[c] : 0.f;
    const bool softplus = p.softplus != 0, has_z = gz != nullptr;

    load_tile(0);
    lm_commit();
    load_tile(1);
    lm_commit();
    for (int k = 0; k < ntiles; ++k) {
        lm_wait1();
        __syncthreads();  // tile k staged; every thread is done with tile k - 1
        load_tile(k + 2);
        lm_commit();
        const unsigned char* st = sm + (k % LM_NST) * stage_bytes;
        const int t0 = k * LM_TT, tn = min(LM_TT, L - t0);
        {
            const T* sB = reinterpret_cast<const T*>(st + 3 * CB * RB);
            for (int idx = tid; idx < 2 * NS * LM_TT; idx += nthr) {
                const int n2 = idx % (2 * NS), t = idx / (2 * NS);  // n2: B n, then C n
                const int n = n2 % NS;
                sbc[idx] = n < N && t < tn ? ldf(sB + n2 * TTP + t) : 0.f;
            }
        }
        const T* su0 = reinterpret_cast<const T*>(st);
        const T* sd0 = su0 + CB * TTP;
        const T* sz0 = sd0 + CB * TTP;
        if constexpr (PREP) {
            for (int idx = tid; idx < cn * (LM_TT / 4); idx += nthr) {
                const int r = idx / (LM_TT / 4), t = 4 * (idx % (LM_TT / 4));
                const float bz = p.delta_bias ? p.delta_bias[c0 + r] : 0.f;
                float uu[4], dd[4], o1[4], o2[4];
                lm_ld4<T>(su0 + r * TTP + t, uu);
                lm_ld4<T>(sd0 + r * TTP + t, dd);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float v = dd[e] + bz;
                    v = softplus ? softplus_series(v) : v;
                    const bool ok = t + e < tn;
                    o1[e] = ok ? v : 0.f;
                    o2[e] = ok ? v * uu[e] : 0.f;
                }
                *reinterpret_cast<float4*>(sdt + r * YS + t) = make_float4(o1[0], o1[1], o1[2], o1[3]);
                *reinterpret_cast<float4*>(sdu + r * YS + t) = make_float4(o2[0], o2[1], o2[2], o2[3]);
            }
        }
        __syncthreads();  // sbc (and sdt, sdu) ready
        if constexpr (PREP) {
            const float* sdr = sdt + (active ? cl : 0) * YS;
            const float* sur = sdu + (active ? cl : 0) * YS;
#pragma unroll 1
            for (int tc = 0; tc < tn; tc += 4) {
                const float4 d4 = *reinterpret_cast<const float4*>(sdr + tc);
                const float4 u4 = *reinterpret_cast<const float4*>(sur + tc);
                const float dts[4] = {d4.x, d4.y, d4.z, d4.w}, dus[4] = {u4.x, u4.y, u4.z, u4.w};
                float yv[4];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float* bc = sbc + (tc + e) * 2 * NS + g * S;
                    float bv[S], cv[S];
#pragma unroll
                    for (int j = 0; j < S; j += 4) {
                        const float4 b4 = *reinterpret_cast<const float4*>(bc + j);
                        const float4 c4 = *reinterpret_cast<const float4*>(bc + NS + j);
                        bv[j] = b4.x; bv[j + 1] = b4.y; bv[j + 2] = b4.z; bv[j + 3] = b4.w;
                        cv[j] = c4.x; cv[j + 1] = c4.y; cv[j + 2] = c4.z; cv[j + 3] = c4.w;
                    }
                    float y = 0.f;
#pragma unroll
                    for (int j = 0; j < S; ++j) {
                        h[j] = fmaf(j < PE ? ex2_poly(dts[e] * a2[j]) : ex2_fast(dts[e] * a2[j]), h[j], dus[e] * bv[j]);
                        y = fmaf(cv[j], h[j], y);
                    }
#pragma unroll
                    for (int m = 1; m < G; m *= 2) y += __shfl_xor_sync(0xffffffffu, y, m);
                    yv[e] = y;
                }
                if (g == 0 && active) *reinterpret_cast<float4*>(sy + cl * YS + tc) = make_float4(yv[0], yv[1], yv[2], yv[3]);
            }
        }
        const T* su = su0 + (active ? cl : 0) * TTP;
        const T* sd = su + CB * TTP;
        const T* sz = sd + CB * TTP;
        auto steps = [&](auto full_c) {
        constexpr bool FULL = decltype(full_c)::value;
#pragma unroll 1
        for (int tc = 0; tc < (PREP ? 0 : tn); tc += VEC) {
            float uv[VEC], dv[VEC], zv[VEC], yv[VEC];
            lm_ld16<T>(su + tc, uv);
            lm_ld16<T>(sd + tc, dv);
            if (has_z) lm_ld16<T>(sz + tc, zv);
            // Steps: the G threads of a channel take every G-th step's softplus and gate
            // and share the step sizes by shuffles (no work done twice).
            float dtv[VEC];
            if constexpr (G == 1) {
#pragma unroll
                for (int e = 0; e < VEC; ++e) {
                    const float v = dv[e] + bias;
                    dtv[e] = softplus ? softplus_series(v) : v;
                }
            } else if constexpr (G == 2) {
#pragma unroll
                for (int e = 0; e < VEC; e += 2) {
                    float v = (g ? dv[e + 1] : dv[e]) + bias;
                    v = softplus ? softplus_series(v) : v;
                    const float o = __shfl_xor_sync(0xffffffffu, v, 1);
                    dtv[e] = g ? o : v;
                    dtv[e + 1] = g ? v : o;
                }
            } else {
#pragma unroll
                for (int e0 = 0; e0 < VEC; e0 += G) {
                    float v = lm_pick<G>(dv, e0, g) + bias;
                    v = softplus ? softplus_series(v) : v;
#pragma unroll
                    for (int k = 0; k < G; ++k) dtv[e0 + k] = __shfl_sync(0xffffffffu, v, glane0 + k);
                }
            }
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                const int t = tc + e;
                const float dt = FULL || t < tn ? dtv[e] : 0.f;
                const float du = FULL || t < tn ? dt * uv[e] : 0.f;
                const float* bc = sbc + t * 2 * NS + g * S;
                float bv[S], cv[S];
#pragma unroll
                for (int j = 0; j < S; j += 4) {
                    const float4 b4 = *reinterpret_cast<const float4*>(bc + j);
                    const float4 c4 = *reinterpret_cast<const float4*>(bc + NS + j);
                    bv[j] = b4.x; bv[j + 1] = b4.y; bv[j + 2] = b4.z; bv[j + 3] = b4.w;
                    cv[j] = c4.x; cv[j + 1] = c4.y; cv[j + 2] = c4.z; cv[j + 3] = c4.w;
                }
                float y = 0.f;
#pragma unroll
                for (int j = 0; j < S; ++j) {
                    h[j] = fmaf(j < PE ? ex2_poly(dt * a2[j]) : ex2_fast(dt * a2[j]), h[j], du * bv[j]);
                    y = fmaf(cv[j], h[j], y);
                }
                if constexpr (!RS) {
#pragma unroll
                    for (int m = 1; m < G; m *= 2) y += __shfl_xor_sync(0xffffffffu, y, m);
                }
                yv[e] = y;
            }
            if constexpr (RS && G == 2) {
#pragma unroll
                for (int e0 = 0; e0 < VEC; e0 += 2) {
                    const float send = g ? yv[e0] : yv[e0 + 1];
                    const float y = (g ? yv[e0 + 1] : yv[e0]) + __shfl_xor_sync(0xffffffffu, send, 1);  // step e0 + g
                    yv[e0] = y;
                }
            } else if constexpr (RS && G == 4) {
                const bool hi = (g & 2) != 0, lo = (g & 1) != 0;
#pragma unroll
                for (int e0 = 0; e0 < VEC; e0 += 4) {
                    const float s0 = hi ? yv[e0] : yv[e0 + 2], s1 = hi ? yv[e0 + 1] : yv[e0 + 3];
                    const float k0 = (hi ? yv[e0 + 2] : yv[e0]) + __shfl_xor_sync(0xffffffffu, s0, 2);
                    const float k1 = (hi ? yv[e0 + 3] : yv[e0 + 1]) + __shfl_xor_sync(0xffffffffu, s1, 2);
                    // k0, k1: steps e0 + (g & 2) and the next, summed over lanes g and g ^ 2.
                    const float y = (lo ? k1 : k0) + __shfl_xor_sync(0xffffffffu, lo ? k0 : k1, 1);  // step e0 + g
                    yv[e0] = y;
                }
            }
            if constexpr (G == 1) {
#pragma unroll
                for (int e = 0; e < VEC; ++e) {
                    float y = fmaf(Dc, uv[e], yv[e]);
                    if (has_z) y *= silu_f(zv[e]);
                    yv[e] = y;
                }
                if (active) {
#pragma unroll
                    for (int e = 0; e < VEC; e += 4)
                        *reinterpret_cast<float4*>(sy + cl * YS + tc + e) = make_float4(yv[e], yv[e + 1], yv[e + 2], yv[e + 3]);
                }
            } else {
#pragma unroll
                for (int e0 = 0; e0 < VEC; e0 += G) {
                    float y = fmaf(Dc, lm_pick<G>(uv, e0, g), RS ? yv[e0] : lm_pick<G>(yv, e0, g));
                    if (has_z) y *= silu_f(lm_pick<G>(zv, e0, g));
                    if (active) sy[cl * YS + tc + e0 + g] = y;
                }
            }
        }
        };
        if constexpr (RS) {
            if (tn == LM_TT) steps(lm_bool<true>{});
            else steps(lm_bool<false>{});
        } else {
            steps(lm_bool<false>{});
        }
        __syncthreads();  // sy complete
        if (vec) {
            for (int idx = tid; idx < cn * CPR; idx += nthr) {
                const int r = idx / CPR, q = idx % CPR;
                if (q * VEC < tn) {
                    const float* ys = sy + r * YS + q * VEC;
                    T* dst = gout + (size_t)r * L + t0 + q * VEC;
                    float yy[VEC];
#pragma unroll
                    for (int e = 0; e < VEC; e += 4) {
                        const float4 y4 = *reinterpret_cast<const float4*>(ys + e);
                        yy[e] = y4.x; yy[e + 1] = y4.y; yy[e + 2] = y4.z; yy[e + 3] = y4.w;
                    }
                    if constexpr (PREP) {
                        const float Dr = p.D ? p.D[c0 + r] : 0.f;
                        float uu[VEC], zz[VEC];
                        lm_ld16<T>(su0 + r * TTP + q * VEC, uu);
                        if (has_z) lm_ld16<T>(sz0 + r * TTP + q * VEC, zz);
#pragma unroll
                        for (int e = 0; e < VEC; ++e) {
                            float o = fmaf(Dr, uu[e], yy[e]);
                            if (has_z) o *= silu_f(zz[e]);
                            yy[e] = o;
                        }
                    }
                    if constexpr (ES == 4) {
                        *reinterpret_cast<float4*>(dst) = make_float4(yy[0], yy[1], yy[2], yy[3]);
                    } else {
                        *reinterpret_cast<uint4*>(dst) = make_uint4(lm_pack2<T>(yy[0], yy[1]), lm_pack2<T>(yy[2], yy[3]),
                                                                    lm_pack2<T>(yy[4], yy[5]), lm_pack2<T>(yy[6], yy[7]));
                    }
                }
            }
        } else {
            for (int idx = tid; idx < cn * LM_TT; idx += nthr) {
                const int r = idx / LM_TT, t = idx % LM_TT;
                if (t < tn) {
                    float o = sy[r * YS + t];
                    if constexpr (PREP) {
                        if (p.D) o = fmaf(p.D[c0 + r], ldf(su0 + r * TTP + t), o);
                        if (has_z) o *= silu_f(ldf(sz0 + r * TTP + t));
                    }
                    gout[(size_t)r * L + t0 + t] = cvt<T>(o);
                }
            }
        }
    }
    if (p.hlast && active) {
#pragma unroll
        for (int j = 0; j < S; ++j) {
            const int n = g * S + j;
            if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = h[j];
        }
    }
}

// The `_w` form (G = 8, NS = 16; H200 bf16 LM shape): eight threads per channel, two
// states each, so that one wave of the LM grid holds 32 warps per SM (the G = 4 kernels
// hold 16: the channel count caps the threads, and the G = 4 step loop is latency-bound
// at four warps per scheduler). Per 32-step tile, a block-wide pass computes every
// (channel, step)'s dt and dt * u into shared memory (zero past the tile's end, so the
// step loop has no tail checks) and B, C in f32 as [t][state pair][B n, B n+1, C n, C n+1]
// (one float4 broadcast per thread and step); the step loop is the recurrence only (per
// thread and step: 2 FMUL, 2 MUFU, 2 FMUL, 2 FFMA, FMUL + FFMA for y, one LDS.128), y
// reduce-scattered over the eight threads once per eight steps (thread g ends with step
// tc + g) and written over dt; the store pass applies D and the gate. Two stages (one
// tile ahead): four blocks of 32 channels (f32 too) fit an SM's shared memory.
#define LMW_NST 2
#define LMW_G 8
// DIRECT (`_w8`): the staged row of B (C) state n: n itself, or (n & 1) * 8 + n / 2.
template <bool DIRECT>
__host__ __device__ constexpr int lmw_slot(int n) {
    return DIRECT ? (n & 1) * 8 + (n >> 1) : n;
}
// V4 (`_w4`): per warp, four channels' 8 x 8 partial sums of y, 72 floats apart (the
// loads of one step's partials hit 32 different banks).
#define LMW_RCH 72
__host__ __device__ constexpr int lmw_smem_bytes(int es, int cb, bool red = false, int tt = LM_TT) {
    return LMW_NST * (3 * cb + 32) * (tt + 16 / es) * es + tt * 32 * 4 + 2 * cb * (tt + 4) * 4 +
           (red ? (cb * 8 + 31) / 32 * 4 * LMW_RCH * 4 : 0);
}

// CK (`_w6ck`, `_w9ck`: the training forward, `selective_scan_forward_saving`): also the
// state at every 8-step boundary t = 8 k (before step t) into the saved checkpoints
// `p.chunk_states` (b, ceil(L / 8), d, 16) f32, states in natural order (16 per entry; zeros
// past N), which the backward (`bwdlm_*_q4pbs`, kernels/bwd_lm.cu) reads instead of running
// its own forward pass (phase F). One 8-byte store per thread and 8 steps (a warp's four
// channels write 256 contiguous bytes).
// AL (`_w6a`, `_w9a`, `_w6cka`, `_w9cka`; twenty-ninth session): rows 16-byte aligned only
// (`async_copy` 1), the 4- / 8-byte and shifted staging of the twenty-second to twenty-
// fifth sessions compiled out. With that code in, ptxas spilled 80-116 bytes in `_w9` /
// `_w6` under their 64-register cap (12 before it) and the LM shape ran 17-8% slower (H200:
// f32 330 -> 387 us, bf16 290 -> 312; NOTES.md, twenty-ninth session).
template <typename T, int V, bool CK = false, bool AL = false>
__device__ void lm1w_fwd(const Scan1Params& p) {
    constexpr bool V2 = V >= 2;
    // V3 (`_w3`): thread (channel, g) prepares and stores steps 4g..4g+3 of its own
    // channel (no index loops, bias and D loaded once), so the step loop and the store
    // pass need only the warp's own rows: __syncwarp between them instead of a barrier.
    // V2 (`_w2`): B, C converted per (step, state pair) (one 16-byte store each), full
    // tiles without the tail selects, the step loop on running pointers, and for bf16 the
    // softplus as ln 2 * lg2(1 + 2^x) and the gate by tanh.approx (fewer FMA-pipe
    // instructions, one MUFU fewer in the gate; bf16 rounding dwarfs their error).
    constexpr bool FAST = V2 && lm_is_bf16<T>::value;
    // V5 (`_w5`, 16-bit types; f32 runs the V3 code): B and C kept in their storage type,
    // packed per (step pair, state pair) as four 32-bit words (B n|n+1 at t, C n|n+1 at t,
    // the same at t + 1): one 16-byte load per thread and two steps instead of one per step
    // (half the shared-memory wavefronts of the step loop's B/C reads), 4 ALU unpacks a step.
    constexpr bool PACK = V >= 5 && sizeof(T) == 2;
    // V8 (`_w8`): V6 without the B/C conversion pass: the step loop reads B and C straight
    // from the staged rows (one 16-byte load per state row and 8 steps for 16-bit types, two
    // for f32), rows of state n at slot (n & 1) * 8 + n / 2 (the 8 threads of a channel read
    // 8 different bank groups); both stages' B/C rows zeroed once at the start (rows past N
    // and steps past the tile's end stay finite; dt = dt * u = 0 there). The block shares
    // only the staged tiles, so the second barrier per tile is a __syncwarp.
    constexpr bool DIRECT = V == 8;
    // `async_copy` 3 (`_w9` with 16-bit rows 2 bytes off): rows staged one element on where
    // they start 2 bytes off (see load_tile).
    constexpr bool SHIFT = V >= 9 && sizeof(T) == 2;
    // V7 (`_w7`): V6 with the B/C conversion pass straight-line (one item per thread from
    // 256 threads on).
    // V6 (`_w6`): V5 with the tile loads on offsets computed once: thread tid < cn * CPR
    // copies chunk (tid / CPR, tid % CPR) of the u, delta and z rows, the others (and a
    // second pass of all) the B and C chunks; no index arithmetic per tile.
    constexpr bool TRED = V == 4;
    // V9 (`_w9`, 16-bit types): V7 with 64-step tiles (half the barriers and per-tile work
    // per step; each thread prepares and stores 8 steps of its channel, two groups of 4).
    constexpr int TT = V >= 9 ? 64 : LM_TT;
    constexpr int NS = 16;
    constexpr int ES = sizeof(T);
    constexpr int VEC = 16 / ES;
    constexpr int TTP = TT + VEC;
    constexpr int RB = TTP * ES;
    constexpr int CPR = TT / VEC;
    constexpr int YS = TT + 4;
    DYN_SMEM(smem);
    unsigned char* sm = reinterpret_cast<unsigned char*>(smem);
    const int CB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int tid = threadIdx.x, nthr = blockDim.x;
    const int stage_bytes = (3 * CB + 2 * NS) * RB;  // RB: the row bytes of TT steps
    float* sbc = reinterpret_cast<float*>(sm + LMW_NST * stage_bytes);  // [TT][8][4]
    float* sdt = sbc + TT * 32;                                      // [CB][YS]: dt, then y
    float* sdu = sdt + CB * YS;                                         // [CB][YS]: dt * u
    float* sred = sdu + CB * YS;                                        // V4: [warps][4][LMW_RCH]
    // async_copy: 1 = 16-byte rows (cp.async of 16 bytes); 4 / 8 = rows aligned to 4 / 8
    // bytes only (cp.async of that size, twenty-second session); 2 = element loads in
    // batches (twenty-third session); 0 = element loads one by one.
    const bool vec = AL || p.async_copy == 1;
    const int wb = !AL && p.async_copy >= 4 ? p.async_copy : 0;

    const int i = blockIdx.y;
    // CK, V < 9: see the checkpoint store (always true where the host takes the form).
    [[maybe_unused]] const bool ck_small = (size_t)p.batch * ((L + 7) >> 3) * dim * 16 < ((size_t)1 << 32);
    const int seg_id = blockIdx.x / p.blocks_per_seg;
    const int blk = blockIdx.x % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CB;
    const int cn = min(CB, (seg_id + 1) * p.seg - c0);
    const int gb = c0 / (dim / p.b_groups), gc = c0 / (dim / p.c_groups);
    const T* gu = static_cast<const T*>(p.u) + ((size_t)i * dim + c0) * L;
    const T* gd = static_cast<const T*>(p.delta) + ((size_t)i * dim + c0) * L;
    const T* gz = p.z ? static_cast<const T*>(p.z) + ((size_t)i * dim + c0) * L : nullptr;
    const T* gB = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + gb) * N * L;
    const T* gC = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + gc) * N * L;
    T* gout = static_cast<T*>(p.out) + ((size_t)i * dim + c0) * L;

    const int ntiles = (L + TT - 1) / TT;
    // V6: the fixed chunk assignment (vec only; every chunk covered when cn * CPR <= nthr
    // and the B/C chunks fit the remaining threads plus one more pass).
    const bool fast = V >= 6 && vec && cn * CPR <= nthr && 2 * N * CPR <= 2 * nthr - cn * CPR && L < (1 << 24);
    const int lq = tid % CPR;
    const bool ldu = fast && tid < cn * CPR;
    const unsigned goff = (unsigned)(tid / CPR) * (unsigned)L + lq * VEC;
    const int soff = (tid / CPR) * RB + lq * 16;
    const T* bsrc[2];
    int bdst[2], bq[2];
#pragma unroll
    for (int m = 0; m < 2; ++m) {
        const int j = tid - cn * CPR + m * nthr;
        const bool ok = fast && j >= 0 && j < 2 * N * CPR;
        const int r = ok ? j / CPR : 0, q = j % CPR;
        const int n = r % N;
        bsrc[m] = (r < N ? gB : gC) + (size_t)n * L + q * VEC;
        bdst[m] = 3 * CB * RB + (r < N ? lmw_slot<DIRECT>(n) : NS + lmw_slot<DIRECT>(n)) * RB + q * 16;
        bq[m] = ok ? q : CPR;  // CPR: never copied
    }
    auto load_tile = [&](int k) {
        if (k >= ntiles) return;
        if constexpr (V >= 6) {
            if (fast) {
                unsigned char* st = sm + (k % LMW_NST) * stage_bytes;
                const int t0 = k * TT, nv = min(TT, L - t0) / VEC;
                if (ldu && lq < nv) {
                    lm_cp16(st + soff, gu + goff + t0);
                    lm_cp16(st + CB * RB + soff, gd + goff + t0);
                    if (gz) lm_cp16(st + 2 * CB * RB + soff, gz + goff + t0);
                }
#pragma unroll
                for (int m = 0; m < 2; ++m)
                    if (bq[m] < nv) lm_cp16(st + bdst[m], bsrc[m] + t0);
                return;
            }
        }
        unsigned char* st = sm + (k % LMW_NST) * stage_bytes;
        const int t0 = k * TT, tn = min(TT, L - t0);
        const T* rows[3] = {gu, gd, gz};
        if (vec) {
            const int nv = tn / VEC;
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                unsigned char* dst = st + a * CB * RB;
                for (int idx = tid; idx < cn * CPR; idx += nthr) {
                    const int r = idx / CPR, q = idx % CPR;
                    if (q < nv) lm_cp16(dst + r * RB + q * 16, rows[a] + (size_t)r * L + t0 + q * VEC);
                }
            }
            unsigned char* dst = st + 3 * CB * RB;
            for (int idx = tid; idx < 2 * N * CPR; idx += nthr) {
                const int r = idx / CPR, q = idx % CPR;
                const int n = r % N;
                const T* src = r < N ? gB : gC;
                if (q < nv) lm_cp16(dst + (r < N ? lmw_slot<DIRECT>(n) : NS + lmw_slot<DIRECT>(n)) * RB + q * 16, src + (size_t)n * L + t0 + q * VEC);
            }
        } else if (wb) {
            // Copies of `per` elements (wb bytes); a tile's last partial copy element-wise.
            // cpr is a power of 2 (TT 32 / 64, per 1 / 2 / 4): the copy index is split by
            // shifts (twenty-fourth session; a division by the run-time cpr before).
            // (AL: not instantiated; wb is 0 there.)
            if constexpr (!AL) {
            const int per = wb / ES, cpr = TT / per, lcpr = __ffs(cpr) - 1;
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                T* dst = reinterpret_cast<T*>(st + a * CB * RB);
                for (int idx = tid; idx < cn * cpr; idx += nthr) {
                    const int r = idx >> lcpr, t = (idx & (cpr - 1)) * per;
                    const T* src = rows[a] + (size_t)r * L + t0 + t;
                    if (t + per <= tn)
                        lm_cpw(dst + r * TTP + t, src, wb);
                    else
                        for (int e = t; e < tn; ++e) dst[r * TTP + e] = src[e - t];
                }
            }
            T* dst = reinterpret_cast<T*>(st + 3 * CB * RB);
            for (int idx = tid; idx < 2 * N * cpr; idx += nthr) {
                const int r = idx >> lcpr, t = (idx & (cpr - 1)) * per;
                const int n = r < N ? r : r - N;
                const T* src = (r < N ? gB : gC) + (size_t)n * L + t0 + t;
                T* d = dst + (r < N ? lmw_slot<DIRECT>(n) : NS + lmw_slot<DIRECT>(n)) * TTP + t;
                if (t + per <= tn)
                    lm_cpw(d, src, wb);
                else
                    for (int e = t; e < tn; ++e) d[e - t] = src[e - t];
            }
            }
        } else if (SHIFT && !AL && p.async_copy == 3) {
            // 16-bit rows 2 bytes off their 4-byte alignment (odd L; `_w9` only): 4-byte
            // cp.async from the aligned word at or before each step pair, so a row that starts
            // 2 bytes off lands one element on (step t at element t + sh; the readers add sh).
            // Word k of a row holds steps 2k - sh, 2k + 1 - sh; a word partly outside the
            // tile is copied whole where both its elements lie inside the tensor (the extra
            // element lands where no reader looks), else element by element (the tensor's
            // first and last element). Twenty-third session; the twenty-fourth took the 64-bit
            // element index out of the per-word work (the word is inside the tensor unless it
            // reaches before the tensor's first row or past its last) and maps words by shifts
            // (words 0 .. TT / 2 - 1, then word TT / 2 of each row, used only where sh is 1):
            // the staging had issued ~60 instructions per word (H200, bf16 b8 d2048 L2047
            // 477 -> 421 us). Consecutive threads keep consecutive words of a row: a form with
            // two threads per row and its pointers once per row issued 16% fewer instructions
            // but ran 537 us (its copies uncoalesced).
            constexpr int WK = TT / 2;
            const bool first_tile = t0 == 0, last_tile = t0 + tn == L;
            // row: the row's step 0 of this tile; lo / hi: the row is the tensor's first / last.
            auto stage = [&](const T* row, bool lo, bool hi, unsigned short* dst, int k) {
                const int sh = (int)((reinterpret_cast<size_t>(row) >> 1) & 1);
                const int s0 = 2 * k - sh;
                if (s0 >= tn) return;
                const bool in = (s0 >= 0 || !(lo && first_tile)) && (s0 + 1 < tn || !(hi && last_tile));
                if (in) {
                    lm_cpw(dst + 2 * k, row + s0, 4);
                } else {
                    for (int s = s0; s < s0 + 2; ++s)
                        if (s >= 0 && s < tn) dst[s + sh] = reinterpret_cast<const unsigned short*>(row)[s];
                }
            };
            const int last_b = p.batch - 1;
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                unsigned short* base = reinterpret_cast<unsigned short*>(st + a * CB * RB);
                for (int idx = tid; idx < cn * (WK + 1); idx += nthr) {
                    // idx < cn * WK: word idx % WK of row idx / WK; then word WK of row idx - cn * WK.
                    const bool tail = idx >= cn * WK;
                    const int r = tail ? idx - cn * WK : (int)((unsigned)idx / WK), k = tail ? WK : (int)((unsigned)idx % WK);
                    const int gr = c0 + r;
                    stage(rows[a] + (size_t)r * L + t0, i == 0 && gr == 0, i == last_b && gr == dim - 1,
                          base + r * TTP, k);
                }
            }
            unsigned short* bbase = reinterpret_cast<unsigned short*>(st + 3 * CB * RB);
            for (int idx = tid; idx < 2 * N * (WK + 1); idx += nthr) {
                const bool tail = idx >= 2 * N * WK;
                const int r = tail ? idx - 2 * N * WK : (int)((unsigned)idx / WK), k = tail ? WK : (int)((unsigned)idx % WK);
                const bool isb = r < N;
                const int n = isb ? r : r - N;
                const int gr = isb ? p.b_groups : p.c_groups, gg = isb ? gb : gc;
                stage((isb ? gB : gC) + (size_t)n * L + t0, i == 0 && gg == 0 && n == 0,
                      i == last_b && gg == gr - 1 && n == N - 1,
                      bbase + (isb ? lmw_slot<DIRECT>(n) : NS + lmw_slot<DIRECT>(n)) * TTP, k);
            }
        } else if (p.async_copy == 2) {
            // Element loads (rows aligned to the element only: the 16-bit types at odd L),
            // LMW_PL per thread issued before their shared stores, so a thread waits one
            // load latency per LMW_PL elements instead of per element (the loads and the
            // shared stores are not reordered by the compiler). Twenty-third session.
            typedef typename LmRawT<ES>::type RT;
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                RT* dst = reinterpret_cast<RT*>(st + a * CB * RB);
                const RT* srow = reinterpret_cast<const RT*>(rows[a]);
                const int tot = cn * TT;
                for (int b0 = tid; b0 < tot; b0 += LMW_PL * nthr) {
                    RT v[LMW_PL];
#pragma unroll
                    for (int e = 0; e < LMW_PL; ++e) {
                        const int idx = b0 + e * nthr, r = idx / TT, t = idx % TT;
                        v[e] = idx < tot && t < tn ? srow[(size_t)r * L + t0 + t] : RT(0);
                    }
#pragma unroll
                    for (int e = 0; e < LMW_PL; ++e) {
                        const int idx = b0 + e * nthr, r = idx / TT, t = idx % TT;
                        if (idx < tot && t < tn) dst[r * TTP + t] = v[e];
                    }
                }
            }
            RT* dst = reinterpret_cast<RT*>(st + 3 * CB * RB);
            const int tot = 2 * N * TT;
            for (int b0 = tid; b0 < tot; b0 += LMW_PL * nthr) {
                RT v[LMW_PL];
#pragma unroll
                for (int e = 0; e < LMW_PL; ++e) {
                    const int idx = b0 + e * nthr, r = idx / TT, t = idx % TT, n = r % N;
                    const RT* src = reinterpret_cast<const RT*>(r < N ? gB : gC);
                    v[e] = idx < tot && t < tn ? src[(size_t)n * L + t0 + t] : RT(0);
                }
#pragma unroll
                for (int e = 0; e < LMW_PL; ++e) {
                    const int idx = b0 + e * nthr, r = idx / TT, t = idx % TT, n = r % N;
                    if (idx < tot && t < tn) dst[(r < N ? lmw_slot<DIRECT>(n) : NS + lmw_slot<DIRECT>(n)) * TTP + t] = v[e];
                }
            }
        } else {
#pragma unroll
            for (int a = 0; a < 3; ++a) {
                if (!rows[a]) continue;
                T* dst = reinterpret_cast<T*>(st + a * CB * RB);
                for (int idx = tid; idx < cn * TT; idx += nthr) {
                    const int r = idx / TT, t = idx % TT;
                    if (t < tn) dst[r * TTP + t] = rows[a][(size_t)r * L + t0 + t];
                }
            }
            T* dst = reinterpret_cast<T*>(st + 3 * CB * RB);
            for (int idx = tid; idx < 2 * N * TT; idx += nthr) {
                const int r = idx / TT, t = idx % TT;
                const int n = r % N;
                const T* src = r < N ? gB : gC;
                if (t < tn) dst[(r < N ? lmw_slot<DIRECT>(n) : NS + lmw_slot<DIRECT>(n)) * TTP + t] = src[(size_t)n * L + t0 + t];
            }
        }
    };

    const int cl = tid / LMW_G, g = tid % LMW_G;
    const bool active = cl < cn;
    const int c = c0 + (active ? cl : 0);
    float h0 = 0.f, h1 = 0.f, a0 = 0.f, a1 = 0.f;
    {
        const int n = 2 * g;
        if (active && n < N) {
            a0 = p.A[(size_t)c * N + n] * LOG2E_F;
            if (p.h0) h0 = p.h0[((size_t)i * dim + c) * N + n];
        }
        if (active && n + 1 < N) {
            a1 = p.A[(size_t)c * N + n + 1] * LOG2E_F;
            if (p.h0) h1 = p.h0[((size_t)i * dim + c) * N + n + 1];
        }
    }
    const bool softplus = p.softplus != 0, has_z = gz != nullptr;
    const float Dc = p.D && active ? p.D[c] : 0.f;
    const float bias = p.delta_bias && active ? p.delta_bias[c] : 0.f;
    const bool hi4 = (g & 4) != 0, hi2 = (g & 2) != 0, hi1 = (g & 1) != 0;
    // SHIFT with `async_copy` 3: a staged row sits one element on where its step 0 is 2 bytes
    // off (see load_tile); its readers add that. Row r of a tensor whose block base has
    // parity p0 (in elements) starts at parity p0 ^ (r L & 1) (tiles start at even steps).
    const bool shm = SHIFT && !AL && p.async_copy == 3;
    const int lo = shm ? (L & 1) : 0;
    auto par_of = [&](const void* q) { return shm ? (int)((reinterpret_cast<size_t>(q) >> 1) & 1) : 0; };
    const int pu = par_of(gu), pd = par_of(gd), pz = gz ? par_of(gz) : 0, pB = par_of(gB), pC = par_of(gC);

    if constexpr (DIRECT) {
        constexpr int W = 2 * NS * RB / 16;  // 16-byte words of one stage's B/C rows
        for (int idx = tid; idx < LMW_NST * W; idx += nthr)
            *reinterpret_cast<uint4*>(sm + (idx / W) * stage_bytes + 3 * CB * RB + (idx % W) * 16) = make_uint4(0u, 0u, 0u, 0u);
        __syncthreads();  // zeros before the copies
    }
    load_tile(0);
    lm_commit();
    for (int k = 0; k < ntiles; ++k) {
        lm_wait0();
        __syncthreads();  // tile k staged; the block is done with tile k - 1 (its stage, sdt, sdu)
        load_tile(k + 1);
        lm_commit();
        const unsigned char* st = sm + (k % LMW_NST) * stage_bytes;
        const int t0 = k * TT, tn = min(TT, L - t0);
        const T* su0 = reinterpret_cast<const T*>(st);
        const T* sd0 = su0 + CB * TTP;
        const T* sz0 = sd0 + CB * TTP;
        if constexpr (V2) {
            const T* sB = reinterpret_cast<const T*>(st + 3 * CB * RB);
            // V7: with at least 8 * TT threads (CB >= 32), thread tid converts item tid
            // (straight-line code, no loop); fewer threads loop as before.
            auto bc_item = [&](int idx) {
                const int t = idx >> 3, n = 2 * (idx & 7);
                const T* src = sB + n * TTP + t;
                if constexpr (PACK) {
                    const unsigned short* s16 = reinterpret_cast<const unsigned short*>(src);
                    unsigned b = 0, cc = 0;
                    if (t < tn) {
                        // (n even: rows n / n + 1 start at parities pB / pB ^ lo; C alike.)
                        if (n < N) b = s16[pB], cc = s16[NS * TTP + pC];
                        if (n + 1 < N) b |= (unsigned)s16[TTP + (pB ^ lo)] << 16, cc |= (unsigned)s16[(NS + 1) * TTP + (pC ^ lo)] << 16;
                    }
                    // [t / 2][pair][t % 2]: words (B, C)
                    reinterpret_cast<uint2*>(sbc)[((t >> 1) * 8 + (idx & 7)) * 2 + (t & 1)] = make_uint2(b, cc);
                } else {
                    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
                    if (t < tn) {
                        if (n < N) v.x = ldf(src), v.z = ldf(src + NS * TTP);
                        if (n + 1 < N) v.y = ldf(src + TTP), v.w = ldf(src + (NS + 1) * TTP);
                    }
                    reinterpret_cast<float4*>(sbc)[idx] = v;
                }
            };
            if constexpr (DIRECT) {
                (void)bc_item;
            } else if (V >= 7 && nthr >= 8 * TT) {
                if (tid < 8 * TT) bc_item(tid);
            } else {
                for (int idx = tid; idx < 8 * TT; idx += nthr) bc_item(idx);
            }
            const bool full = tn == TT;
            for (int hh = 0; hh < (V >= 3 ? TT / 32 : 1); ++hh)
            // (Inactive threads skip it: with 64-step tiles cn * 16 may exceed nthr.)
            for (int idx = V >= 3 ? (active ? tid : (TT == LM_TT ? nthr : cn * (TT / 4))) : tid; idx < cn * (TT / 4); idx += nthr) {
                const int r = V >= 3 ? cl : idx / (TT / 4), t = V >= 3 ? 4 * g + 32 * hh : 4 * (idx % (TT / 4));
                const float bz = V >= 3 ? bias : p.delta_bias ? p.delta_bias[c0 + r] : 0.f;
                float uu[4], dd[4], o1[4], o2[4];
                lm_ld4s<T>(su0 + r * TTP + t, pu ^ (r & lo), uu);
                lm_ld4s<T>(sd0 + r * TTP + t, pd ^ (r & lo), dd);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float v = dd[e] + bz;
                    if (softplus) v = FAST ? lm_softplus_fast(v) : softplus_series(v);
                    o1[e] = v;
                    o2[e] = v * uu[e];
                }
                if (!full) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const bool ok = t + e < tn;
                        o1[e] = ok ? o1[e] : 0.f;
                        o2[e] = ok ? o2[e] : 0.f;
                    }
                }
                *reinterpret_cast<float4*>(sdt + r * YS + t) = make_float4(o1[0], o1[1], o1[2], o1[3]);
                *reinterpret_cast<float4*>(sdu + r * YS + t) = make_float4(o2[0], o2[1], o2[2], o2[3]);
                if constexpr (V >= 3) break;
            }
        } else {
            const T* sB = reinterpret_cast<const T*>(st + 3 * CB * RB);
            for (int idx = tid; idx < 2 * NS * TT; idx += nthr) {
                // idx = t * 32 + pair * 4 + (C ? 2 : 0) + (n & 1)
                const int t = idx >> 5, w = idx & 31;
                const int n = 2 * (w >> 2) + (w & 1), isc = (w >> 1) & 1;
                sbc[idx] = n < N && t < tn ? ldf(sB + (isc * NS + n) * TTP + t) : 0.f;
            }
            for (int idx = tid; idx < cn * (TT / 4); idx += nthr) {
                const int r = idx / (TT / 4), t = 4 * (idx % (TT / 4));
                const float bz = p.delta_bias ? p.delta_bias[c0 + r] : 0.f;
                float uu[4], dd[4], o1[4], o2[4];
                lm_ld4<T>(su0 + r * TTP + t, uu);
                lm_ld4<T>(sd0 + r * TTP + t, dd);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float v = dd[e] + bz;
                    v = softplus ? softplus_series(v) : v;
                    const bool ok = t + e < tn;
                    o1[e] = ok ? v : 0.f;
                    o2[e] = ok ? v * uu[e] : 0.f;
                }
                *reinterpret_cast<float4*>(sdt + r * YS + t) = make_float4(o1[0], o1[1], o1[2], o1[3]);
                *reinterpret_cast<float4*>(sdu + r * YS + t) = make_float4(o2[0], o2[1], o2[2], o2[3]);
            }
        }
        if constexpr (DIRECT) {
            __syncwarp();  // the channel's sdt, sdu rows ready (this warp's own)
        } else {
            __syncthreads();  // sbc, sdt, sdu ready
        }
        {
            // Inactive threads (cl >= cn) read their own row (never stored; rows past CB,
            // in the last warp only, row CB - 1 of the same warp), never another warp's:
            // racecheck flags a read of row 0 against warp 0's y stores.
            const int rrow = min(cl, CB - 1);
            float* sdr = sdt + rrow * YS;
            const float* sur = sdu + rrow * YS;
            const float4* sbc4 = reinterpret_cast<const float4*>(sbc) + g;
            const uint4* sbcq = reinterpret_cast<const uint4*>(sbc) + g;  // PACK
            // DIRECT: the row of state 2g (slot g) of B; 2g + 1 at slot 8 + g, C NS slots on.
            const unsigned char* rbc = st + 3 * CB * RB + g * RB;
            // V2: y stored through yst (inactive threads store nothing).
            float* yst = sdr + g;
            [[maybe_unused]] unsigned ck32 = 0;
            if constexpr (CK) ck32 = (unsigned)((((size_t)i * ((L + 7) >> 3) + (t0 >> 3)) * dim + c) * 16 + 2 * g);
#pragma unroll 1
            for (int tc = 0; tc < tn; tc += 8) {
                if constexpr (CK) {
                    // This thread's states 2g, 2g + 1 of checkpoint (t0 + tc) / 8, at the
                    // 32-bit element offset ck32 (one register; a 64-bit pointer held across
                    // the loop costs the 64-register kernel spills, and the address in 64-bit
                    // arithmetic per store took ~28 instructions, ~12% of the kernel's). The
                    // host takes this form only where the checkpoints hold fewer than 2^32
                    // floats (ops.rs `saved_bytes_of`). V < 9 (`_w6ck`, the f32 default) keeps
                    // the 64-bit expression behind a uniform select: measured on the H200,
                    // each form is the faster one for its kernel (the register allocation
                    // differs; fourteenth session): `_w9ck` bf16 330 -> 311-317 us with the
                    // offset alone (329-331 with the select), `_w6ck` f32 400 -> 366-373 us with
                    // the select (403-406 with the offset alone). The aligned-only `_w6cka`
                    // (AL) takes the offset alone: 363-364 us there against 383-386 with the
                    // select (f32 training pair 1423-1429 against 1446-1452; thirtieth session).
                    if (active) {
                        float* dst = p.chunk_states + ck32;
                        if constexpr (V < 9 && !AL)
                            dst = ck_small ? dst
                                           : p.chunk_states +
                                                 (((size_t)i * ((L + 7) >> 3) + ((t0 + tc) >> 3)) * dim + c) * 16 + 2 * g;
                        *reinterpret_cast<float2*>(dst) = make_float2(h0, h1);
                    }
                    ck32 += (unsigned)dim * 16u;
                }
                const int to = V2 ? 0 : tc;
                const float4 d0 = *reinterpret_cast<const float4*>(sdr + to);
                const float4 d1 = *reinterpret_cast<const float4*>(sdr + to + 4);
                const float4 u0 = *reinterpret_cast<const float4*>(sur + to);
                const float4 u1 = *reinterpret_cast<const float4*>(sur + to + 4);
                const float dts[8] = {d0.x, d0.y, d0.z, d0.w, d1.x, d1.y, d1.z, d1.w};
                const float dus[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
                float yv[8];
                if constexpr (DIRECT) {
                    float b0[8], b1[8], c0[8], c1[8];
                    if constexpr (ES == 4) {
#pragma unroll
                        for (int q = 0; q < 8; q += 4) {
                            const float4 x0 = *reinterpret_cast<const float4*>(rbc + q * 4);
                            const float4 x1 = *reinterpret_cast<const float4*>(rbc + 8 * RB + q * 4);
                            const float4 x2 = *reinterpret_cast<const float4*>(rbc + NS * RB + q * 4);
                            const float4 x3 = *reinterpret_cast<const float4*>(rbc + (NS + 8) * RB + q * 4);
                            b0[q] = x0.x, b0[q + 1] = x0.y, b0[q + 2] = x0.z, b0[q + 3] = x0.w;
                            b1[q] = x1.x, b1[q + 1] = x1.y, b1[q + 2] = x1.z, b1[q + 3] = x1.w;
                            c0[q] = x2.x, c0[q + 1] = x2.y, c0[q + 2] = x2.z, c0[q + 3] = x2.w;
                            c1[q] = x3.x, c1[q + 1] = x3.y, c1[q + 2] = x3.z, c1[q + 3] = x3.w;
                        }
                    } else {
                        const uint4 x0 = *reinterpret_cast<const uint4*>(rbc);
                        const uint4 x1 = *reinterpret_cast<const uint4*>(rbc + 8 * RB);
                        const uint4 x2 = *reinterpret_cast<const uint4*>(rbc + NS * RB);
                        const uint4 x3 = *reinterpret_cast<const uint4*>(rbc + (NS + 8) * RB);
                        const unsigned w0[4] = {x0.x, x0.y, x0.z, x0.w}, w1[4] = {x1.x, x1.y, x1.z, x1.w};
                        const unsigned w2[4] = {x2.x, x2.y, x2.z, x2.w}, w3[4] = {x3.x, x3.y, x3.z, x3.w};
#pragma unroll
                        for (int q = 0; q < 4; ++q) {
                            lm_unpack2<T>(w0[q], b0[2 * q], b0[2 * q + 1]);
                            lm_unpack2<T>(w1[q], b1[2 * q], b1[2 * q + 1]);
                            lm_unpack2<T>(w2[q], c0[2 * q], c0[2 * q + 1]);
                            lm_unpack2<T>(w3[q], c1[2 * q], c1[2 * q + 1]);
                        }
                    }
#pragma unroll
                    for (int e = 0; e < 8; ++e) {
                        h0 = fmaf(ex2_fast(dts[e] * a0), h0, dus[e] * b0[e]);
                        h1 = fmaf(ex2_fast(dts[e] * a1), h1, dus[e] * b1[e]);
                        yv[e] = fmaf(c0[e], h0, c1[e] * h1);
                    }
                } else if constexpr (PACK) {
#pragma unroll
                    for (int e = 0; e < 8; e += 2) {
                        const uint4 q = sbcq[(e >> 1) * 8];
                        const unsigned w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
                        for (int k = 0; k < 2; ++k) {
                            float b0, b1, c0, c1;
                            lm_unpack2<T>(w[2 * k], b0, b1);
                            lm_unpack2<T>(w[2 * k + 1], c0, c1);
                            h0 = fmaf(ex2_fast(dts[e + k] * a0), h0, dus[e + k] * b0);
                            h1 = fmaf(ex2_fast(dts[e + k] * a1), h1, dus[e + k] * b1);
                            yv[e + k] = fmaf(c0, h0, c1 * h1);
                        }
                    }
                } else {
#pragma unroll
                    for (int e = 0; e < 8; ++e) {
                        const float4 bc = sbc4[(to + e) * 8];
                        h0 = fmaf(ex2_fast(dts[e] * a0), h0, dus[e] * bc.x);
                        h1 = fmaf(ex2_fast(dts[e] * a1), h1, dus[e] * bc.y);
                        yv[e] = fmaf(bc.z, h0, bc.w * h1);
                    }
                }
                float y;
                if constexpr (TRED) {
                    // Transpose through the warp's shared memory: two 16-byte stores of the
                    // eight partial sums, eight loads of step tc + g's partials, seven adds.
                    float* w = sred + ((tid >> 5) * 4 + ((tid >> 3) & 3)) * LMW_RCH;
                    *reinterpret_cast<float4*>(w + g * 8) = make_float4(yv[0], yv[1], yv[2], yv[3]);
                    *reinterpret_cast<float4*>(w + g * 8 + 4) = make_float4(yv[4], yv[5], yv[6], yv[7]);
                    __syncwarp();
                    y = w[g];
#pragma unroll
                    for (int l = 1; l < 8; ++l) y += w[l * 8 + g];
                    __syncwarp();
                } else {
                    // Reduce-scatter over the 8 threads: thread g ends with step tc + g.
                    float k4[4], k2[2];
#pragma unroll
                    for (int e = 0; e < 4; ++e)
                        k4[e] = (hi4 ? yv[4 + e] : yv[e]) + __shfl_xor_sync(0xffffffffu, hi4 ? yv[e] : yv[4 + e], 4);
#pragma unroll
                    for (int e = 0; e < 2; ++e)
                        k2[e] = (hi2 ? k4[2 + e] : k4[e]) + __shfl_xor_sync(0xffffffffu, hi2 ? k4[e] : k4[2 + e], 2);
                    y = (hi1 ? k2[1] : k2[0]) + __shfl_xor_sync(0xffffffffu, hi1 ? k2[0] : k2[1], 1);
                }
                // y over dt, once every thread of the channel has read sdr[tc..tc + 8) (the
                // shuffles above already order it; __syncwarp says so to the memory model).
                if constexpr (V2) {
                    __syncwarp();  // every thread of the channel has read sdr[tc..tc + 8)
                    if (active) *yst = y;
                    yst += 8;
                    sdr += 8;
                    sur += 8;
                    sbc4 += 64;
                    sbcq += 32;
                    rbc += 8 * ES;
                } else {
                    __syncwarp();
                    if (active) sdr[tc + g] = y;
                }
            }
        }
        if constexpr (V >= 3) {
            __syncwarp();  // the channel's y complete (in sdt; rows of this warp only)
            for (int hh = 0; hh < TT / 32; ++hh) {
            const int t = 4 * g + 32 * hh;
            if (active && t < tn) {
                const float4 y4 = *reinterpret_cast<const float4*>(sdt + cl * YS + t);
                float yy[4] = {y4.x, y4.y, y4.z, y4.w}, uu[4], zz[4];
                lm_ld4s<T>(su0 + cl * TTP + t, pu ^ (cl & lo), uu);
                if (has_z) lm_ld4s<T>(sz0 + cl * TTP + t, pz ^ (cl & lo), zz);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float o = fmaf(Dc, uu[e], yy[e]);
                    if (has_z) o *= FAST ? lm_silu_fast(zz[e]) : silu_f(zz[e]);
                    yy[e] = o;
                }
                T* dst = gout + (size_t)cl * L + t0 + t;
                if (vec) {  // tn is a multiple of 16 bytes: all four steps are in
                    if constexpr (ES == 4) {
                        *reinterpret_cast<float4*>(dst) = make_float4(yy[0], yy[1], yy[2], yy[3]);
                    } else {
                        *reinterpret_cast<uint2*>(dst) = make_uint2(lm_pack2<T>(yy[0], yy[1]), lm_pack2<T>(yy[2], yy[3]));
                    }
                } else if (ES == 2 && t + 3 < tn) {
                    // 16-bit rows aligned to less than 8 bytes (odd L): 8-, 4- or 2 + 4 + 2-byte
                    // stores by the address (twenty-fourth session; four element stores before).
                    if constexpr (ES == 2) {
                        const unsigned al = (unsigned)reinterpret_cast<size_t>(dst) & 7u;
                        if (al == 0) {
                            *reinterpret_cast<uint2*>(dst) = make_uint2(lm_pack2<T>(yy[0], yy[1]), lm_pack2<T>(yy[2], yy[3]));
                        } else if (al == 4) {
                            *reinterpret_cast<unsigned*>(dst) = lm_pack2<T>(yy[0], yy[1]);
                            *reinterpret_cast<unsigned*>(dst + 2) = lm_pack2<T>(yy[2], yy[3]);
                        } else {
                            dst[0] = cvt<T>(yy[0]);
                            *reinterpret_cast<unsigned*>(dst + 1) = lm_pack2<T>(yy[1], yy[2]);
                            dst[3] = cvt<T>(yy[3]);
                        }
                    }
                } else {
#pragma unroll
                    for (int e = 0; e < 4; ++e)
                        if (t + e < tn) dst[e] = cvt<T>(yy[e]);
                }
            }
            }
            continue;
        }
        __syncthreads();  // y complete (in sdt)
        if (vec) {
            for (int idx = tid; idx < cn * CPR; idx += nthr) {
                const int r = idx / CPR, q = idx % CPR;
                if (q * VEC < tn) {
                    const float* ys = sdt + r * YS + q * VEC;
                    T* dst = gout + (size_t)r * L + t0 + q * VEC;
                    float yy[VEC], uu[VEC], zz[VEC];
#pragma unroll
                    for (int e = 0; e < VEC; e += 4) {
                        const float4 y4 = *reinterpret_cast<const float4*>(ys + e);
                        yy[e] = y4.x; yy[e + 1] = y4.y; yy[e + 2] = y4.z; yy[e + 3] = y4.w;
                    }
                    const float Dr = p.D ? p.D[c0 + r] : 0.f;
                    lm_ld16<T>(su0 + r * TTP + q * VEC, uu);
                    if (has_z) lm_ld16<T>(sz0 + r * TTP + q * VEC, zz);
#pragma unroll
                    for (int e = 0; e < VEC; ++e) {
                        float o = fmaf(Dr, uu[e], yy[e]);
                        if (has_z) o *= FAST ? lm_silu_fast(zz[e]) : silu_f(zz[e]);
                        yy[e] = o;
                    }
                    if constexpr (ES == 4) {
                        *reinterpret_cast<float4*>(dst) = make_float4(yy[0], yy[1], yy[2], yy[3]);
                    } else {
                        *reinterpret_cast<uint4*>(dst) = make_uint4(lm_pack2<T>(yy[0], yy[1]), lm_pack2<T>(yy[2], yy[3]),
                                                                    lm_pack2<T>(yy[4], yy[5]), lm_pack2<T>(yy[6], yy[7]));
                    }
                }
            }
        } else {
            for (int idx = tid; idx < cn * TT; idx += nthr) {
                const int r = idx / TT, t = idx % TT;
                if (t < tn) {
                    float o = sdt[r * YS + t];
                    if (p.D) o = fmaf(p.D[c0 + r], ldf(su0 + r * TTP + t), o);
                    if (has_z) o *= silu_f(ldf(sz0 + r * TTP + t));
                    gout[(size_t)r * L + t0 + t] = cvt<T>(o);
                }
            }
        }
    }
    if (p.hlast && active) {
        const int n = 2 * g;
        if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = h0;
        if (n + 1 < N) p.hlast[((size_t)i * dim + c) * N + n + 1] = h1;
    }
}

// `_w`: at most 64 registers, so that 32 warps share an SM (four blocks of 32 channels or
// two of 64).
#define LM1_INST_W(T, NAME)                                                                                      \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 1>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w2(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 2>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w3(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 3>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w4(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 4>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w5(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 5>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w6(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 6>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w7(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 7>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w8(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 8>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w9(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 9>(p);                                                                                       \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w6ck(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 6, true>(p);                                                                                 \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w9ck(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 9, true>(p);                                                                                 \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w6a(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 6, false, true>(p);                                                                          \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w9a(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 9, false, true>(p);                                                                          \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w6cka(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 6, true, true>(p);                                                                           \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) lm1_fwd_##NAME##_n16_g8_w9cka(const __grid_constant__ Scan1Params p) { \
        lm1w_fwd<T, 9, true, true>(p);                                                                           \
    }

// PE: states per thread whose exponential runs on the FMA pipe (the `_p` variants); `_q`:
// the PREP form. G = 4: at most 128 registers, so that two blocks of 64 channels share an
// SM (16 warps).
#define LM1_INST(T, NAME, NS, G)                                                                                 \
    extern "C" __global__ void __launch_bounds__(256, G == 4 ? 2 : 1) lm1_fwd_##NAME##_n##NS##_g##G(const __grid_constant__ Scan1Params p) { \
        lm1_fwd<T, NS, G, 0, false>(p);                                                                          \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(256, G == 4 ? 2 : 1) lm1_fwd_##NAME##_n##NS##_g##G##_q(const __grid_constant__ Scan1Params p) { \
        lm1_fwd<T, NS, G, 0, true>(p);                                                                           \
    }
#define LM1_INST_R(T, NAME, NS, G)                                                                               \
    extern "C" __global__ void __launch_bounds__(256, G == 4 ? 2 : 1) lm1_fwd_##NAME##_n##NS##_g##G##_r(const __grid_constant__ Scan1Params p) { \
        lm1_fwd<T, NS, G, 0, false, true>(p);                                                                    \
    }
#define LM1_INST_P(T, NAME, G, PE)                                                                               \
    extern "C" __global__ void __launch_bounds__(256, 1) lm1_fwd_##NAME##_n16_g##G##_p(const __grid_constant__ Scan1Params p) { \
        lm1_fwd<T, 16, G, PE, false>(p);                                                                         \
    }

LM1_INST(float, f32, 16, 1)
LM1_INST(float, f32, 16, 2)
LM1_INST(float, f32, 8, 1)
LM1_INST(float, f32, 8, 2)
LM1_INST_P(float, f32, 1, 3)
LM1_INST_P(float, f32, 2, 2)
LM1_INST(float, f32, 16, 4)
LM1_INST_R(float, f32, 16, 4)
LM1_INST_R(float, f32, 16, 2)
LM1_INST_R(float, f32, 8, 2)
LM1_INST_W(float, f32)
#ifndef MAMBA_EMU
LM1_INST(bf16_t, bf16, 16, 1)
LM1_INST(bf16_t, bf16, 16, 2)
LM1_INST(bf16_t, bf16, 8, 1)
LM1_INST(bf16_t, bf16, 8, 2)
LM1_INST_P(bf16_t, bf16, 1, 3)
LM1_INST_P(bf16_t, bf16, 2, 2)
LM1_INST(bf16_t, bf16, 16, 4)
LM1_INST_R(bf16_t, bf16, 16, 4)
LM1_INST_R(bf16_t, bf16, 16, 2)
LM1_INST_R(bf16_t, bf16, 8, 2)
LM1_INST_W(bf16_t, bf16)
LM1_INST(f16_t, f16, 16, 1)
LM1_INST(f16_t, f16, 16, 2)
LM1_INST(f16_t, f16, 8, 1)
LM1_INST(f16_t, f16, 8, 2)
LM1_INST_P(f16_t, f16, 1, 3)
LM1_INST_P(f16_t, f16, 2, 2)
LM1_INST(f16_t, f16, 16, 4)
LM1_INST_R(f16_t, f16, 16, 4)
LM1_INST_R(f16_t, f16, 16, 2)
LM1_INST_R(f16_t, f16, 8, 2)
LM1_INST_W(f16_t, f16)
#endif
