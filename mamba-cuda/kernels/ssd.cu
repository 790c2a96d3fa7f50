// SPEC 2: the Mamba-2 SSD forward, as a rescaled recurrence.
//
// A block owns one (batch, head), `qb` rows of the head's p-by-N state and one time
// chunk. Each thread holds a QR-by-NR tile of the state in registers. Because the
// decay of a head is one scalar per step, the state is kept as S_t = P_t * R_t with
// P_t the product of the decays since the last rescale point; then a step is
// R += (dt/P_t) x B  and  y = P_t * (C . R): two FMAs per state element and step,
// instead of three. Rescale points (where P would drop under 1e-15, at a seq_idx reset,
// and at every tile end) fold P back into R, so nothing overflows.
//
// Long sequences with few (batch, head) pairs are split into chunks: mode 1 computes
// each chunk's local final state from zero (and the chunk's total decay), the combine
// kernel passes states across chunks, and mode 0 reruns each chunk from its incoming
// state and writes the outputs.
#include "common.cuh"

#define TT 32
#define RESCALE_THRESHOLD 1e-15f

// Loads K consecutive elements of T from shared memory (vectorised) as floats.
template <typename T, int K>
__device__ __forceinline__ void lds_cvt(float (&dst)[K], const T* src) {
    if constexpr (sizeof(T) == 4) {
        const float* f = reinterpret_cast<const float*>(src);
        if constexpr (K % 4 == 0) {
#pragma unroll
            for (int s = 0; s < K; s += 4) {
                float4 v = *reinterpret_cast<const float4*>(f + s);
                dst[s] = v.x; dst[s + 1] = v.y; dst[s + 2] = v.z; dst[s + 3] = v.w;
            }
        } else if constexpr (K % 2 == 0) {
#pragma unroll
            for (int s = 0; s < K; s += 2) {
                float2 v = *reinterpret_cast<const float2*>(f + s);
                dst[s] = v.x; dst[s + 1] = v.y;
            }
        } else {
#pragma unroll
            for (int s = 0; s < K; ++s) dst[s] = f[s];
        }
    } else {
        if constexpr (K % 8 == 0) {
#pragma unroll
            for (int s = 0; s < K; s += 8) {
                uint4 v = *reinterpret_cast<const uint4*>(src + s);
                const T* h = reinterpret_cast<const T*>(&v);
#pragma unroll
                for (int e = 0; e < 8; ++e) dst[s + e] = ldf(h + e);
            }
        } else if constexpr (K % 4 == 0) {
#pragma unroll
            for (int s = 0; s < K; s += 4) {
                uint2 v = *reinterpret_cast<const uint2*>(src + s);
                const T* h = reinterpret_cast<const T*>(&v);
#pragma unroll
                for (int e = 0; e < 4; ++e) dst[s + e] = ldf(h + e);
            }
        } else {
#pragma unroll
            for (int s = 0; s < K; ++s) dst[s] = ldf(src + s);
        }
    }
}

__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__host__ __device__ constexpr int align16(int bytes) { return (bytes + 15) & ~15; }

// Copies `n` elements of T (a row) from global to shared memory: with 4-byte async
// copies when the row is 4-byte aligned at both ends (p.async_copy), else plainly.
template <typename T>
__device__ __forceinline__ void copy_row(T* dst, const T* src, int n, int lane, int lanes, bool async) {
    if (async) {
        constexpr int PER = 4 / sizeof(T);
        for (int e = lane * PER; e < n; e += lanes * PER) cp_async4(dst + e, src + e);
    } else {
        for (int e = lane; e < n; e += lanes) dst[e] = src[e];
    }
}

template <typename T, int QR, int NR, int MODE>
__device__ void ssd_fwd(const SsdParams& p) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int G = p.G, qb = p.qb, N = p.dstate, P = p.headdim, H = p.nheads;
    constexpr int PADE = 16 / sizeof(T);  // row padding: keeps 16-byte alignment
    const int NP = G * NR, NPAD = NP + PADE;
    const int nthreads = blockDim.x;
    const int tid = threadIdx.x;
    const int nqt = (P + qb - 1) / qb;
    const int qt = blockIdx.x % nqt, kc = blockIdx.x / nqt;
    const int j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const int q0 = qt * qb;
    const int qn = min(qb, P - q0);  // rows of x this block reads
    const int t_begin = kc * p.chunk_len;
    const int t_end = min(p.seqlen, t_begin + p.chunk_len);
    const bool async = p.async_copy != 0;

    // Shared memory: step scalars, then two buffers of the raw x, B, C tiles, then y.
    float* s_w = reinterpret_cast<float*>(smem_raw);  // TT: dt / P
    float* s_p = s_w + TT;                            // TT: P
    float* s_mul = s_p + TT;                          // TT: rescale factor before the step
    float* s_flag = s_mul + TT;                       // TT: non-zero where R is rescaled
    float* s_a = s_flag + TT;                         // TT: decay of the step
    float* s_dt = s_a + TT;                           // TT: dt of the step
    float* s_misc = s_dt + TT;                        // 4: P at the tile end, chunk decay
    unsigned char* base = smem_raw + 6 * TT * 4 + 16;
    const int xbytes = align16(TT * qb * (int)sizeof(T));
    const int bbytes = align16(TT * NPAD * (int)sizeof(T));
    const int stage = xbytes + bbytes * (MODE == 0 ? 2 : 1);
    float* s_y = reinterpret_cast<float*>(base + 2 * stage);  // TT * qb (mode 0)
    auto sx = [&](int buf) { return reinterpret_cast<T*>(base + buf * stage); };
    auto sB = [&](int buf) { return reinterpret_cast<T*>(base + buf * stage + xbytes); };
    auto sC = [&](int buf) { return reinterpret_cast<T*>(base + buf * stage + xbytes + bbytes); };

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);

    // Zero both buffers once: the padding (rows past p, states past N) is never copied.
    for (int e = tid; e < 2 * stage / 4; e += nthreads) reinterpret_cast<float*>(base)[e] = 0.f;
    __syncthreads();

    // Stage a tile: one warp per row of x/B/C, lanes along the row.
    const int warp = tid / 32, lane = tid % 32, nwarps = nthreads / 32;
    auto stage_tile = [&](int t0, int buf) {
        const int tn = min(TT, t_end - t0);
        T* bx = sx(buf);
        T* bb = sB(buf);
        T* bc = sC(buf);
        for (int t = warp; t < tn; t += nwarps) {
            const long long tt = t0 + t;
            copy_row(bx + t * qb, x + i * p.x_sb + tt * p.x_st + (long long)j * P + q0, qn, lane, 32, async);
            copy_row(bb + t * NPAD, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N, N, lane, 32, async);
            if (MODE == 0)
                copy_row(bc + t * NPAD, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N, N, lane, 32, async);
        }
        cp_async_commit();
    };

    const int qi = tid / G, g = tid % G;
    const int qrow0 = q0 + qi * QR;  // first state row of this thread
    const int n0 = g * NR;
    const bool active = qi * QR < qb;
    const float Aj = p.A[j];
    const size_t pN = (size_t)P * N;
    const size_t head = (size_t)i * H + j;

    float R[QR][NR];
    {
        const float* src = nullptr;
        if (MODE == 0) {
            if (p.nchunks > 1) src = p.chunk_states + (head * p.nchunks + kc) * pN;
            else if (p.init) src = p.init + head * pN;
        }
#pragma unroll
        for (int r = 0; r < QR; ++r)
#pragma unroll
            for (int s = 0; s < NR; ++s) {
                const int q = qrow0 + r, n = n0 + s;
                R[r][s] = (src && active && q < P && n < N) ? src[(size_t)q * N + n] : 0.f;
            }
    }
    if (tid == 0) s_misc[1] = 1.f;  // chunk decay accumulator

    // Warp 0 keeps the next tile's raw dt (and reset flag) in a register.
    auto load_dt = [&](int t0, float& raw, int& reset) {
        const int t = tid, tn = min(TT, t_end - t0);
        raw = 0.f;
        reset = 0;
        if (t < tn) {
            const int tt = t0 + t;
            raw = ldf(dtp + i * p.dt_sb + (long long)tt * p.dt_st + j);
            if (p.seq_idx && tt > 0) {
                const int* sq = p.seq_idx + (size_t)i * p.seqlen;
                reset = sq[tt] != sq[tt - 1];
            }
        }
    };
    float raw_next = 0.f;
    int reset_next = 0;
    if (tid < 32 && t_begin < t_end) load_dt(t_begin, raw_next, reset_next);
    if (t_begin < t_end) stage_tile(t_begin, 0);

    int buf = 0;
    for (int t0 = t_begin; t0 < t_end; t0 += TT, buf ^= 1) {
        const int tn = min(TT, t_end - t0);
        const bool more = t0 + TT < t_end;
        if (more) stage_tile(t0 + TT, buf ^ 1);  // in flight while this tile computes
        // The step scalars: warp 0 computes dt, the decay and the reset flag per step in
        // parallel, then the prefix products of the decays by a warp scan. When nothing
        // resets and the tile's total decay stays above 1e-30 (so 1/P fits in f32), P is
        // that prefix product; otherwise lane 0 walks the tile and places rescale points.
        if (tid < 32) {
            const int t = tid;
            const float raw_in = raw_next;
            const int reset = reset_next;
            if (more) load_dt(t0 + TT, raw_next, reset_next);
            float dt = 0.f, a = 1.f;
            if (t < tn) {
                dt = step_size(raw_in + (p.dt_bias ? p.dt_bias[j] : 0.f), p.softplus, p.has_limit, p.lo, p.hi);
                a = expf(dt * Aj);
            }
            float P_ = a;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float v = __shfl_up_sync(0xffffffffu, P_, o);
                if (t >= o) P_ *= v;
            }
            const float total = __shfl_sync(0xffffffffu, P_, 31);
            const bool any_reset = __any_sync(0xffffffffu, reset != 0);
            if (!any_reset && total >= 1e-30f) {
                s_p[t] = P_;
                s_w[t] = dt / P_;
                s_flag[t] = 0.f;
                s_mul[t] = 1.f;
                if (t == 0) {
                    s_misc[0] = total;
                    s_misc[1] *= total;
                }
            } else {
                s_dt[t] = dt;
                s_a[t] = a;
                s_flag[t] = reset ? 1.f : 0.f;
                __syncwarp();
                if (t == 0) {
                    float Q = 1.f, cd = s_misc[1];
                    for (int t2 = 0; t2 < tn; ++t2) {
                        const float a2 = s_a[t2];
                        float mul = 1.f, flag = 0.f;
                        if (s_flag[t2] != 0.f) {
                            mul = 0.f; flag = 1.f; Q = 1.f; cd = 0.f;
                        } else {
                            const float np = Q * a2;
                            cd *= a2;
                            if (np < RESCALE_THRESHOLD) {
                                mul = np; flag = 1.f; Q = 1.f;
                            } else {
                                Q = np;
                            }
                        }
                        s_p[t2] = Q;
                        s_w[t2] = s_dt[t2] / Q;
                        s_mul[t2] = mul;
                        s_flag[t2] = flag;
                    }
                    s_misc[0] = Q;
                    s_misc[1] = cd;
                }
            }
        }
        if (more) cp_async_wait<1>();
        else cp_async_wait<0>();
        __syncthreads();
        const T* bx = sx(buf);
        const T* bb = sB(buf);
        const T* bc = sC(buf);
        {
            // Every thread runs the steps (the reductions are warp-wide); a thread past the
            // block's rows works on row 0 and stores nothing.
            const int qx = active ? qi * QR : 0;
            // Which of the QR row sums this lane stores (r % G == g), decided once.
            unsigned wmask = 0;
#pragma unroll
            for (int r = 0; r < QR; ++r)
                if (active && r % G == g) wmask |= 1u << r;
#pragma unroll 2
            for (int t = 0; t < tn; ++t) {
                if (s_flag[t] != 0.f) {
                    const float m = s_mul[t];
#pragma unroll
                    for (int r = 0; r < QR; ++r)
#pragma unroll
                        for (int s = 0; s < NR; ++s) R[r][s] *= m;
                }
                const float w = s_w[t];
                float xs[QR], bv[NR];
                lds_cvt<T, QR>(xs, bx + t * qb + qx);
                lds_cvt<T, NR>(bv, bb + t * NPAD + n0);
#pragma unroll
                for (int r = 0; r < QR; ++r) {
                    const float xw = xs[r] * w;
#pragma unroll
                    for (int s = 0; s < NR; ++s) R[r][s] = fmaf(xw, bv[s], R[r][s]);
                }
                if (MODE == 0) {
                    float cv[NR], y[QR];
                    lds_cvt<T, NR>(cv, bc + t * NPAD + n0);
#pragma unroll
                    for (int r = 0; r < QR; ++r) {
                        float y0 = 0.f, y1 = 0.f;
#pragma unroll
                        for (int s = 0; s < NR; s += 2) {
                            y0 = fmaf(cv[s], R[r][s], y0);
                            y1 = fmaf(cv[s + 1], R[r][s + 1], y1);
                        }
                        y[r] = y0 + y1;
                    }
                    // Sum over the G lanes that share these rows (aligned, contiguous).
                    for (int o = G >> 1; o > 0; o >>= 1) {
#pragma unroll
                        for (int r = 0; r < QR; ++r) y[r] += __shfl_xor_sync(0xffffffffu, y[r], o);
                    }
#pragma unroll
                    for (int r = 0; r < QR; ++r)
                        if (wmask & (1u << r)) s_y[t * qb + qi * QR + r] = y[r];
                }
            }
            const float pend = s_misc[0];
#pragma unroll
            for (int r = 0; r < QR; ++r)
#pragma unroll
                for (int s = 0; s < NR; ++s) R[r][s] *= pend;
        }
        __syncthreads();
        if (MODE == 0) {
            const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
            for (int t = warp; t < tn; t += nwarps) {
                const long long tt = t0 + t;
                const float pt = s_p[t];
                for (int q = lane; q < qn; q += 32) {
                    const int idx = t * qb + q;
                    float y = s_y[idx] * pt;
                    const float xv = ldf(bx + idx);
                    if (p.D) y += (p.d_per_channel ? p.D[j * P + q0 + q] : dj) * xv;
                    if (zp) y *= silu_f(ldf(zp + i * p.z_sb + tt * p.z_st + (long long)j * P + q0 + q));
                    out[i * p.out_sb + tt * p.out_st + (long long)j * P + q0 + q] = cvt<T>(y);
                }
            }
            __syncthreads();
        }
    }
    float* dst = nullptr;
    if (MODE == 1) dst = p.chunk_states + (head * p.nchunks + kc) * pN;
    else if (p.nchunks == 1 && p.final_states) dst = p.final_states + head * pN;
    if (dst && active) {
#pragma unroll
        for (int r = 0; r < QR; ++r)
#pragma unroll
            for (int s = 0; s < NR; ++s) {
                const int q = qrow0 + r, n = n0 + s;
                if (q < P && n < N) dst[(size_t)q * N + n] = R[r][s];
            }
    }
    if (MODE == 1 && tid == 0 && qt == 0) p.chunk_decay[head * p.nchunks + kc] = s_misc[1];
}

// Passes states across chunks: chunk_states holds each chunk's local final state on
// entry and each chunk's incoming state on exit; the last state goes to final_states.
extern "C" __global__ void ssd_combine(const __grid_constant__ SsdParams p) {
    const size_t pN = (size_t)p.headdim * p.dstate;
    const size_t total = (size_t)p.batch * p.nheads * pN;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t head = idx / pN, e_ = idx % pN;
        float S = p.init ? p.init[idx] : 0.f;
        const int K = p.nchunks;
        // Eight chunks at a time: their loads are in flight together.
        for (int k0 = 0; k0 < K; k0 += 8) {
            float loc[8], dec[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int k = k0 + e;
                loc[e] = k < K ? p.chunk_states[(head * K + k) * pN + e_] : 0.f;
                dec[e] = k < K ? p.chunk_decay[head * K + k] : 0.f;
            }
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int k = k0 + e;
                if (k < K) {
                    p.chunk_states[(head * K + k) * pN + e_] = S;
                    S = dec[e] * S + loc[e];
                }
            }
        }
        if (p.final_states) p.final_states[idx] = S;
    }
}

#define SSD_INST(T, NAME, QR, NR)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256, 2) ssd_fwd_##NAME##_q##QR##_n##NR(const __grid_constant__ SsdParams p) {   \
        ssd_fwd<T, QR, NR, 0>(p);                                                                                   \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(256, 2) ssd_states_##NAME##_q##QR##_n##NR(const __grid_constant__ SsdParams p) { \
        ssd_fwd<T, QR, NR, 1>(p);                                                                                   \
    }

#define SSD_ALL(T, NAME) SSD_INST(T, NAME, 1, 4) SSD_INST(T, NAME, 2, 8) SSD_INST(T, NAME, 4, 8) SSD_INST(T, NAME, 4, 16)

SSD_ALL(float, f32)
SSD_ALL(bf16_t, bf16)
SSD_ALL(f16_t, f16)
