// SPEC 2: the Mamba-2 SSD forward in chunked (matrix) form on tensor cores.
//
// A block owns one (batch, head) and PB rows of the head's p-by-N state, and walks the
// sequence in chunks of Q steps, keeping the state S (PB x N, f32) in accumulator
// fragments across chunks. Per chunk, with cs_t the cumulative sum of dt*A inside the
// chunk (in f64, so that differences of cumulative sums lose nothing):
//   M[t][s] = (C_t . B_s) exp(cs_t - cs_s) dt_s   for s <= t, else 0
//   Y       = diag(exp(cs_t)) C S_in^T + M X      (+ D x, then * silu(z))
//   S_out   = exp(cs_end) S_in + X^T diag(exp(cs_end - cs_t) dt_t) B
// Every exponent is <= 0, so nothing overflows. The products run on tensor cores
// (wmma): bf16 operands with f32 accumulation for bf16 storage; for f32 storage, 3xTF32
// (a = a_hi + a_lo in tf32, a_hi b_hi + a_hi b_lo + a_lo b_hi), close to f32 accuracy.
//
// Not covered here (the host falls back to the recurrent kernels of ssd.cu): seq_idx,
// f16 storage, N or p not a multiple of 16, N > 128, rows not 16-byte aligned.
#include "common.cuh"
#include <type_traits>
#ifndef MAMBA_EMU
#include <mma.h>
using namespace nvcuda;
#endif

#define SSDC_WARPS 8
#define SSDC_THREADS (SSDC_WARPS * 32)
#define SSDC_MAX_STILES 4  // state tiles (16 x 16) per warp: PB/16 * N/16 <= 32

template <typename T> struct SsdcK;
template <> struct SsdcK<float> { static constexpr int K = 8; };
#ifndef MAMBA_EMU
template <> struct SsdcK<bf16_t> { static constexpr int K = 16; };
#endif
template <typename T> using SsdcAcc = wmma::fragment<wmma::accumulator, 16, 16, SsdcK<T>::K, float>;

// acc += A[16 x (k1-k0)] B[(k1-k0) x 16]: A and B in shared memory with layouts LA/LB
// and leading dimensions lda/ldb; a and b point at element (row 0, k 0) / (k 0, col 0).
template <typename T, typename LA, typename LB>
__device__ __forceinline__ void ssdc_mma(SsdcAcc<T>& acc, const T* a, int lda, const T* b, int ldb, int kn) {
    constexpr int KK = SsdcK<T>::K;
    constexpr bool arow = std::is_same<LA, wmma::row_major>::value;
    constexpr bool brow = std::is_same<LB, wmma::row_major>::value;
    for (int kk = 0; kk < kn; kk += KK) {
        const T* ap = arow ? a + kk : a + (size_t)kk * lda;
        const T* bp = brow ? b + (size_t)kk * ldb : b + kk;
        if constexpr (sizeof(T) == 4) {
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> ah, al;
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> bh, bl;
            wmma::load_matrix_sync(ah, ap, lda);
            wmma::load_matrix_sync(bh, bp, ldb);
#pragma unroll
            for (int e = 0; e < ah.num_elements; ++e) {
                const float v = ah.x[e];
                const float h = wmma::__float_to_tf32(v);
                ah.x[e] = h;
                al.x[e] = wmma::__float_to_tf32(v - h);
            }
#pragma unroll
            for (int e = 0; e < bh.num_elements; ++e) {
                const float v = bh.x[e];
                const float h = wmma::__float_to_tf32(v);
                bh.x[e] = h;
                bl.x[e] = wmma::__float_to_tf32(v - h);
            }
            wmma::mma_sync(acc, al, bh, acc);
            wmma::mma_sync(acc, ah, bl, acc);
            wmma::mma_sync(acc, ah, bh, acc);
        } else {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> af;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> bf;
            wmma::load_matrix_sync(af, ap, lda);
            wmma::load_matrix_sync(bf, bp, ldb);
            wmma::mma_sync(acc, af, bf, acc);
        }
    }
}

// Four consecutive elements of T in shared memory (16-byte aligned for f32, 8 for bf16).
template <typename T>
__device__ __forceinline__ void ld4(float (&v)[4], const T* p) {
    if constexpr (sizeof(T) == 4) {
        const float4 f = *reinterpret_cast<const float4*>(p);
        v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
    } else {
        const uint2 u = *reinterpret_cast<const uint2*>(p);
        const T* h = reinterpret_cast<const T*>(&u);
#pragma unroll
        for (int e = 0; e < 4; ++e) v[e] = ldf(h + e);
    }
}
template <typename T>
__device__ __forceinline__ void st4(T* p, const float (&v)[4]) {
    if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
        uint2 u;
        T* h = reinterpret_cast<T*>(&u);
#pragma unroll
        for (int e = 0; e < 4; ++e) h[e] = cvt<T>(v[e]);
        *reinterpret_cast<uint2*>(p) = u;
    }
}

// 16-byte async copy; `bytes` = 0 fills the destination with zeros (src is not read).
__device__ __forceinline__ void ssdc_cp16(void* smem, const void* gmem, int bytes) {
#ifdef MAMBA_EMU
    if (bytes) std::memcpy(smem, gmem, 16);
    else std::memset(smem, 0, 16);
#else
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
#endif
}
__device__ __forceinline__ void ssdc_commit() {
#ifndef MAMBA_EMU
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void ssdc_wait() {
#ifndef MAMBA_EMU
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// The shared-memory layout, shared with the host (src/gpu/ops.rs `ssdc_smem` repeats it).
struct SsdcLayout {
    int ldN, ldP, ldQ, ldCB, ldY, ldS;
    int o_x[2], o_b[2], o_c[2], o_f, o_m, o_sf, o_s, o_xw, total;
};
__host__ __device__ __forceinline__ int ssdc_a128(int v) { return (v + 127) & ~127; }
__host__ __device__ inline SsdcLayout ssdc_layout(int es, int Q, int PB, int N) {
    SsdcLayout l;
    const int pad = 16 / es;  // elements: keeps rows 16-byte aligned and shifts banks
    l.ldN = N + pad;
    l.ldP = PB + pad;
    l.ldQ = Q + pad;
    l.ldCB = Q + 4;
    l.ldY = PB + 4;
    l.ldS = N + 4;
    int o = ssdc_a128(Q * (8 + 4 + 4 + 4) + 16);  // cs (f64), exp(cs), w, dt, misc
    for (int b = 0; b < 2; ++b) {
        l.o_x[b] = o;
        o += ssdc_a128(Q * l.ldP * es);
        l.o_b[b] = o;
        o += ssdc_a128(Q * l.ldN * es);
        l.o_c[b] = o;
        o += ssdc_a128(Q * l.ldN * es);
    }
    l.o_f = o;  // f32: C B^T (Q x Q), then Y (Q x PB)
    o += ssdc_a128(4 * (Q * l.ldCB > Q * l.ldY ? Q * l.ldCB : Q * l.ldY));
    l.o_m = o;
    o += ssdc_a128(Q * l.ldQ * es);
    l.o_sf = o;  // f32 state (PB x N)
    o += ssdc_a128(4 * PB * l.ldS);
    if (es == 4) {
        l.o_s = l.o_sf;  // the f32 state is the operand
    } else {
        l.o_s = o;
        o += ssdc_a128(PB * l.ldN * es);
    }
    l.o_xw = o;
    o += ssdc_a128(Q * l.ldP * es);
    l.total = o;
    return l;
}

template <typename T, int Q>
__device__ void ssdc_fwd(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int es = sizeof(T);
    constexpr int E = Q / 32;  // steps per lane in the scalar pass
    const int N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen, PB = p.qb;
    const SsdcLayout lay = ssdc_layout(es, Q, PB, N);
    const int ldN = lay.ldN, ldP = lay.ldP, ldQ = lay.ldQ, ldCB = lay.ldCB, ldY = lay.ldY, ldS = lay.ldS;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = blockIdx.x * PB, j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;

    double* s_cs = reinterpret_cast<double*>(smem_raw);
    float* s_ecs = reinterpret_cast<float*>(s_cs + Q);
    float* s_w = s_ecs + Q;
    float* s_dt = s_w + Q;
    float* s_misc = s_dt + Q;
    const int bstride = lay.o_x[1] - lay.o_x[0];
    auto sx = [&](int b) { return reinterpret_cast<T*>(smem_raw + lay.o_x[0] + b * bstride); };
    auto sb = [&](int b) { return reinterpret_cast<T*>(smem_raw + lay.o_b[0] + b * bstride); };
    auto sc = [&](int b) { return reinterpret_cast<T*>(smem_raw + lay.o_c[0] + b * bstride); };
    float* s_f = reinterpret_cast<float*>(smem_raw + lay.o_f);
    T* s_m = reinterpret_cast<T*>(smem_raw + lay.o_m);
    float* s_sf = reinterpret_cast<float*>(smem_raw + lay.o_sf);
    T* s_s = reinterpret_cast<T*>(smem_raw + lay.o_s);
    T* s_xw = reinterpret_cast<T*>(smem_raw + lay.o_xw);

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    const int nchunks = (L + Q - 1) / Q;

    // Stage chunk c (x rows q0..q0+PB, B and C rows of group k) into buffer b; steps
    // past the end are zero-filled.
    constexpr int EPV = 16 / es;  // elements per 16-byte vector
    const int vx = PB / EPV, vn = N / EPV;
    auto stage = [&](int c, int b) {
        const int t0 = c * Q;
        T* bx = sx(b);
        T* bbm = sb(b);
        T* bcm = sc(b);
        for (int v = tid; v < Q * vx; v += SSDC_THREADS) {
            const int t = v / vx, e = (v - t * vx) * EPV;
            const bool ok = t0 + t < L;
            const T* src = ok ? x + i * p.x_sb + (long long)(t0 + t) * p.x_st + (long long)j * P + q0 + e : x;
            ssdc_cp16(bx + t * ldP + e, src, ok ? 16 : 0);
        }
        for (int v = tid; v < Q * vn; v += SSDC_THREADS) {
            const int t = v / vn, e = (v - t * vn) * EPV;
            const bool ok = t0 + t < L;
            const long long tt = ok ? t0 + t : 0;
            ssdc_cp16(bbm + t * ldN + e, Bp + i * p.B_sb + tt * p.B_st + (long long)k * N + e, ok ? 16 : 0);
            ssdc_cp16(bcm + t * ldN + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + e, ok ? 16 : 0);
        }
        ssdc_commit();
    };
    // Warp 0 keeps the next chunk's raw dt in registers (step lane*E + e).
    float raw[E];
    auto load_dt = [&](int c) {
#pragma unroll
        for (int e = 0; e < E; ++e) {
            const int t = c * Q + lane * E + e;
            raw[e] = t < L ? ldf(dtp + i * p.dt_sb + (long long)t * p.dt_st + j) : 0.f;
        }
    };

    // The state's tiles owned by this warp, in accumulators; the initial state enters
    // through shared memory.
    const int ntn = N / 16, nst = (PB / 16) * ntn;
    SsdcAcc<T> sacc[SSDC_MAX_STILES];
    for (int e = tid; e < PB * N; e += SSDC_THREADS) {
        const int q = e / N, n = e - q * N;
        s_sf[q * ldS + n] = p.init ? p.init[(head * P + q0 + q) * N + n] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int f = 0; f < SSDC_MAX_STILES; ++f) {
        const int tile = warp + f * SSDC_WARPS;
        if (tile < nst) {
            const int tq = tile / ntn, tn = tile - tq * ntn;
            wmma::load_matrix_sync(sacc[f], s_sf + tq * 16 * ldS + tn * 16, ldS, wmma::mem_row_major);
        }
    }

    if (warp == 0) load_dt(0);
    stage(0, 0);
    const int qt = Q / 16, pt = PB / 16;
    for (int c = 0; c < nchunks; ++c) {
        const int b = c & 1;
        const int t0 = c * Q, tn = min(Q, L - t0);
        __syncthreads();  // the previous chunk is done with the other buffer and s_f
        if (c + 1 < nchunks) stage(c + 1, b ^ 1);
        if (warp == 0) {
            // dt, the cumulative sums of dt*A (f64), exp(cs), the state weights.
            float dtv[E];
            double pre[E];
            double loc = 0.0;
#pragma unroll
            for (int e = 0; e < E; ++e) {
                const int t = lane * E + e;
                dtv[e] = t < tn ? step_size(raw[e] + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
                loc += (double)(dtv[e] * Aj);
                pre[e] = loc;
            }
            double incl = loc;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const double v = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += v;
            }
            double excl = __shfl_up_sync(0xffffffffu, incl, 1);
            if (lane == 0) excl = 0.0;
            const double cs_end = __shfl_sync(0xffffffffu, incl, 31);
#pragma unroll
            for (int e = 0; e < E; ++e) {
                const int t = lane * E + e;
                const double cs = excl + pre[e];
                s_cs[t] = cs;
                s_dt[t] = dtv[e];
                s_ecs[t] = expf((float)cs);
                s_w[t] = expf((float)(cs_end - cs)) * dtv[e];
            }
            if (lane == 0) s_misc[0] = expf((float)cs_end);
            if (c + 1 < nchunks) load_dt(c + 1);
        }
        // The incoming state to shared memory (f32) for the C S^T product.
#pragma unroll
        for (int f = 0; f < SSDC_MAX_STILES; ++f) {
            const int tile = warp + f * SSDC_WARPS;
            if (tile < nst) {
                const int tq = tile / ntn, tn2 = tile - tq * ntn;
                wmma::store_matrix_sync(s_sf + tq * 16 * ldS + tn2 * 16, sacc[f], ldS, wmma::mem_row_major);
            }
        }
        if (c + 1 < nchunks) ssdc_wait<1>();
        else ssdc_wait<0>();
        __syncthreads();
        const T* bx = sx(b);
        const T* bbm = sb(b);
        const T* bcm = sc(b);
        // C B^T, lower-triangular 16 x 16 tiles only.
        for (int tile = warp; tile < qt * (qt + 1) / 2; tile += SSDC_WARPS) {
            int ti = 0;
            while ((ti + 1) * (ti + 2) / 2 <= tile) ++ti;
            const int tj = tile - ti * (ti + 1) / 2;
            SsdcAcc<T> acc;
            wmma::fill_fragment(acc, 0.f);
            ssdc_mma<T, wmma::row_major, wmma::col_major>(acc, bcm + ti * 16 * ldN, ldN, bbm + tj * 16 * ldN, ldN, N);
            wmma::store_matrix_sync(s_f + ti * 16 * ldCB + tj * 16, acc, ldCB, wmma::mem_row_major);
        }
        __syncthreads();
        // M (masked, decayed, times dt), the state in the operand type, X weighted.
        // Four consecutive elements per thread (16-byte f32 reads, 8- or 16-byte stores).
        for (int e = tid; e < Q * Q / 4; e += SSDC_THREADS) {
            const int t = e / (Q / 4), s0 = (e - t * (Q / 4)) * 4;
            float v[4] = {0.f, 0.f, 0.f, 0.f};
            if (s0 <= t) {
                const float4 cb = *reinterpret_cast<const float4*>(s_f + t * ldCB + s0);
                const float cbv[4] = {cb.x, cb.y, cb.z, cb.w};
                const double ct = s_cs[t];
#pragma unroll
                for (int u = 0; u < 4; ++u)
                    if (s0 + u <= t) v[u] = cbv[u] * expf((float)(ct - s_cs[s0 + u])) * s_dt[s0 + u];
            }
            st4<T>(s_m + t * ldQ + s0, v);
        }
        if constexpr (es != 4) {
            for (int e = tid; e < PB * N / 4; e += SSDC_THREADS) {
                const int q = e / (N / 4), n0 = (e - q * (N / 4)) * 4;
                const float4 sv = *reinterpret_cast<const float4*>(s_sf + q * ldS + n0);
                const float v[4] = {sv.x, sv.y, sv.z, sv.w};
                st4<T>(s_s + q * ldN + n0, v);
            }
        }
        for (int e = tid; e < Q * PB / 4; e += SSDC_THREADS) {
            const int t = e / (PB / 4), q0_ = (e - t * (PB / 4)) * 4;
            float v[4];
            ld4<T>(v, bx + t * ldP + q0_);
            const float w = s_w[t];
#pragma unroll
            for (int u = 0; u < 4; ++u) v[u] *= w;
            st4<T>(s_xw + t * ldP + q0_, v);
        }
        __syncthreads();
        // Y = diag(exp(cs)) C S^T + M X, one 16 x 16 tile per warp at a time.
        for (int tile = warp; tile < qt * pt; tile += SSDC_WARPS) {
            const int ti = tile / pt, tq = tile - ti * pt;
            float* yt = s_f + ti * 16 * ldY + tq * 16;
            SsdcAcc<T> acc;
            wmma::fill_fragment(acc, 0.f);
            ssdc_mma<T, wmma::row_major, wmma::col_major>(acc, bcm + ti * 16 * ldN, ldN, s_s + tq * 16 * ldN, ldN, N);
            wmma::store_matrix_sync(yt, acc, ldY, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                const int r = e / 16, cc = e % 16;
                yt[r * ldY + cc] *= s_ecs[ti * 16 + r];
            }
            __syncwarp();
            wmma::load_matrix_sync(acc, yt, ldY, wmma::mem_row_major);
            ssdc_mma<T, wmma::row_major, wmma::row_major>(acc, s_m + ti * 16 * ldQ, ldQ, bx + tq * 16, ldP, (ti + 1) * 16);
            __syncwarp();
            wmma::store_matrix_sync(yt, acc, ldY, wmma::mem_row_major);
        }
        // S = exp(cs_end) S + (X w)^T B.
        const float dec = s_misc[0];
#pragma unroll
        for (int f = 0; f < SSDC_MAX_STILES; ++f) {
            const int tile = warp + f * SSDC_WARPS;
            if (tile < nst) {
                const int tq = tile / ntn, tn2 = tile - tq * ntn;
#pragma unroll
                for (int e = 0; e < sacc[f].num_elements; ++e) sacc[f].x[e] *= dec;
                ssdc_mma<T, wmma::col_major, wmma::row_major>(sacc[f], s_xw + tq * 16, ldP, bbm + tn2 * 16, ldN, Q);
            }
        }
        __syncthreads();
        // Outputs: + D x, * silu(z).
        const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
        for (int e = tid; e < tn * PB / 4; e += SSDC_THREADS) {
            const int t = e / (PB / 4), qa = (e - t * (PB / 4)) * 4;
            const long long tt = t0 + t;
            const float4 yv = *reinterpret_cast<const float4*>(s_f + t * ldY + qa);
            float y[4] = {yv.x, yv.y, yv.z, yv.w}, xv[4];
            ld4<T>(xv, bx + t * ldP + qa);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int q = qa + u;
                if (p.D) y[u] += (p.d_per_channel ? p.D[j * P + q0 + q] : dj) * xv[u];
                if (zp) y[u] *= silu_f(ldf(zp + i * p.z_sb + tt * p.z_st + (long long)j * P + q0 + q));
                out[i * p.out_sb + tt * p.out_st + (long long)j * P + q0 + q] = cvt<T>(y[u]);
            }
        }
    }
    if (p.final_states) {
        __syncthreads();
#pragma unroll
        for (int f = 0; f < SSDC_MAX_STILES; ++f) {
            const int tile = warp + f * SSDC_WARPS;
            if (tile < nst) {
                const int tq = tile / ntn, tn2 = tile - tq * ntn;
                wmma::store_matrix_sync(s_sf + tq * 16 * ldS + tn2 * 16, sacc[f], ldS, wmma::mem_row_major);
            }
        }
        __syncthreads();
        for (int e = tid; e < PB * N; e += SSDC_THREADS) {
            const int q = e / N, n = e - q * N;
            p.final_states[(head * P + q0 + q) * N + n] = s_sf[q * ldS + n];
        }
    }
}

#define SSDC_INST(T, NAME, Q, MINB, SFX)                                                         \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssdc_fwd_##NAME##_q##Q##SFX( \
        const __grid_constant__ SsdParams p) {                                                    \
        ssdc_fwd<T, Q>(p);                                                                        \
    }

// `_m2`: registers capped for two blocks per SM (where the shared memory allows it).
SSDC_INST(float, f32, 32, 1, )
SSDC_INST(float, f32, 64, 1, )
SSDC_INST(float, f32, 32, 2, _m2)
#ifndef MAMBA_EMU
SSDC_INST(bf16_t, bf16, 32, 1, )
SSDC_INST(bf16_t, bf16, 64, 1, )
SSDC_INST(bf16_t, bf16, 32, 2, _m2)
#endif
