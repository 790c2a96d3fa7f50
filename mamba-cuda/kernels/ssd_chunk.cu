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
    emu_cp16(smem, gmem, bytes);  // lands at the wait that covers its group (emu/emu_cuda.h)
#else
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
#endif
}
__device__ __forceinline__ void ssdc_commit() {
#ifndef MAMBA_EMU
    asm volatile("cp.async.commit_group;\n" ::);
#else
    emu_cp_commit();
#endif
}
template <int N>
__device__ __forceinline__ void ssdc_wait() {
#ifndef MAMBA_EMU
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#else
    emu_cp_wait(N);
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

// Packed sequences in `ssdc`, `ssdm` and `split3` (fifty-sixth session): their f64 scans
// (ssdc_fwd, ssdm_fwd) take SSDM_RESET off cs at each sequence's first step, so every decay
// across it (exp of a later cs minus an earlier one, of cs from the chunk's start, or of the
// chunk's total) is 0, the SPEC's reset, and one inside a sequence keeps its bits (as
// ssd_seed3.cu's SSDZ_RESET).
#define SSDM_RESET 1048576.0
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
                loc += (double)(dtv[e] * Aj) - (t < tn && ssd_starts_seg(p, i, t0 + t) ? SSDM_RESET : 0.0);
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

// ---------------------------------------------------------------------------------------
// The same chunked SSD with mma.sync (m16n8k16 bf16, m16n8k8 3xTF32) and fragments in
// registers: the state S stays in accumulators, M = mask(C B^T) goes from the C B^T
// accumulators straight into A fragments, Y = diag(exp(cs)) C S^T + M X is written from
// its accumulators, so a chunk needs two block barriers and one shared buffer (S in the
// operand type) besides the staged x, B, C. Fragment layouts (PTX ISA, "Matrix fragments
// for mma.m16n8k16 / m16n8k8"), g = lane / 4, c = lane % 4:
//   bf16 A (16x16): a0 (g, 2c..2c+1), a1 (g+8, 2c..), a2 (g, 2c+8..), a3 (g+8, 2c+8..)
//   bf16 B (16x8):  b0 (k 2c..2c+1, n g), b1 (k 2c+8.., n g)
//   tf32 A (16x8):  a0 (g, c), a1 (g+8, c), a2 (g, c+4), a3 (g+8, c+4)
//   tf32 B (8x8):   b0 (k c, n g), b1 (k c+4, n g)
//   f32 C/D (16x8): d0, d1 (g, 2c..2c+1), d2, d3 (g+8, 2c..2c+1)

__device__ __forceinline__ unsigned ssdm_pack(float lo, float hi) {
#ifdef MAMBA_EMU
    return (unsigned)emu_f2bf(lo) | ((unsigned)emu_f2bf(hi) << 16);
#else
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
#endif
}

// d += a b, bf16 operands (a: 4 regs of 2, b: 2 regs of 2), f32 accumulators.
__device__ __forceinline__ void ssdm_mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef MAMBA_EMU
    emu_mma_bf16(d, a, b);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ unsigned ssdm_tf32(float v) {
#ifdef MAMBA_EMU
    const float r = wmma::__float_to_tf32(v);
    unsigned u;
    std::memcpy(&u, &r, 4);
    return u;
#else
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(v));
    return u;
#endif
}

// d += a b in 3xTF32 (a: 4 f32, b: 2 f32).
__device__ __forceinline__ void ssdm_mma(float (&d)[4], const float (&a)[4], const float (&b)[2]) {
    unsigned ah[4], al[4], bh[2], bl[2];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        ah[e] = ssdm_tf32(a[e]);
        al[e] = ssdm_tf32(a[e] - __uint_as_float(ah[e]));
    }
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        bh[e] = ssdm_tf32(b[e]);
        bl[e] = ssdm_tf32(b[e] - __uint_as_float(bh[e]));
    }
#ifdef MAMBA_EMU
    emu_mma_tf32(d, al, bh);
    emu_mma_tf32(d, ah, bl);
    emu_mma_tf32(d, ah, bh);
#else
#define SSDM_TF32(A, B)                                                                                  \
    asm volatile(                                                                                        \
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "     \
        "{%0,%1,%2,%3};\n"                                                                               \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                                 \
        : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));
    SSDM_TF32(al, bh)
    SSDM_TF32(ah, bl)
    SSDM_TF32(ah, bh)
#undef SSDM_TF32
#endif
}

template <typename T> struct Ssdl16;  // the 16-bit operand helpers (ssd16.cuh)

// Operand fragments of one k step (16 for bf16, 8 for tf32) from shared memory.
template <typename T> struct SsdmFrag;
template <> struct SsdmFrag<float> {
    static constexpr int KS = 8;
    using A = float[4];
    using B = float[2];
    // A(m, k) at p[m * ld + k]
    static __device__ __forceinline__ void a_row(float (&a)[4], const float* p, int ld, int g, int c) {
        a[0] = p[g * ld + c];
        a[1] = p[(g + 8) * ld + c];
        a[2] = p[g * ld + c + 4];
        a[3] = p[(g + 8) * ld + c + 4];
    }
    // A(m, k) = p[k * ld + m] * w[k]
    static __device__ __forceinline__ void a_col(float (&a)[4], const float* p, int ld, const float* w, int g, int c) {
        const float w0 = w[c], w1 = w[c + 4];
        a[0] = p[c * ld + g] * w0;
        a[1] = p[c * ld + g + 8] * w0;
        a[2] = p[(c + 4) * ld + g] * w1;
        a[3] = p[(c + 4) * ld + g + 8] * w1;
    }
    // B(k, n) at p[n * ld + k]
    static __device__ __forceinline__ void b_nmaj(float (&b)[2], const float* p, int ld, int g, int c) {
        b[0] = p[g * ld + c];
        b[1] = p[g * ld + c + 4];
    }
    // B(k, n) at p[k * ld + n]
    static __device__ __forceinline__ void b_kmaj(float (&b)[2], const float* p, int ld, int g, int c) {
        b[0] = p[c * ld + g];
        b[1] = p[(c + 4) * ld + g];
    }
    // A of k step kk from accumulators (16 x 8 tiles along k): tf32 A wants (g, c) and
    // (g, c+4) of tile kk, which lanes g*4 + c/2 and g*4 + c/2 + 2 hold.
    static __device__ __forceinline__ void a_acc(float (&a)[4], const float (&t)[4], int lane) {
        const int c = lane & 3, base = lane & ~3, s0 = base + (c >> 1), s1 = s0 + 2;
        const bool odd = c & 1;
        const float v00 = __shfl_sync(0xffffffffu, t[0], s0), v01 = __shfl_sync(0xffffffffu, t[1], s0);
        const float v02 = __shfl_sync(0xffffffffu, t[2], s0), v03 = __shfl_sync(0xffffffffu, t[3], s0);
        const float v10 = __shfl_sync(0xffffffffu, t[0], s1), v11 = __shfl_sync(0xffffffffu, t[1], s1);
        const float v12 = __shfl_sync(0xffffffffu, t[2], s1), v13 = __shfl_sync(0xffffffffu, t[3], s1);
        a[0] = odd ? v01 : v00;
        a[1] = odd ? v03 : v02;
        a[2] = odd ? v11 : v10;
        a[3] = odd ? v13 : v12;
    }
};
#if !defined(MAMBA_EMU) || defined(MAMBA_EMU_BF16)
// bf16, and f16 since the twenty-fifth session (the generic `ssdl` kernels at N != 128).
template <typename T> struct SsdmFrag16 {
    static constexpr int KS = 16;
    using A = unsigned[4];
    using B = unsigned[2];
    static __device__ __forceinline__ unsigned u32(const T* p) { return *reinterpret_cast<const unsigned*>(p); }
    static __device__ __forceinline__ unsigned two(const T* p0, const T* p1) {
        return (unsigned)*reinterpret_cast<const unsigned short*>(p0) |
               ((unsigned)*reinterpret_cast<const unsigned short*>(p1) << 16);
    }
    static __device__ __forceinline__ void a_row(unsigned (&a)[4], const T* p, int ld, int g, int c) {
        a[0] = u32(p + g * ld + 2 * c);
        a[1] = u32(p + (g + 8) * ld + 2 * c);
        a[2] = u32(p + g * ld + 2 * c + 8);
        a[3] = u32(p + (g + 8) * ld + 2 * c + 8);
    }
    static __device__ __forceinline__ void a_col(unsigned (&a)[4], const T* p, int ld, const float* w, int g, int c) {
        const int k0 = 2 * c, k1 = 2 * c + 8;
        const float w0 = w[k0], w1 = w[k0 + 1], w2 = w[k1], w3 = w[k1 + 1];
        a[0] = Ssdl16<T>::pack(ldf(p + k0 * ld + g) * w0, ldf(p + (k0 + 1) * ld + g) * w1);
        a[1] = Ssdl16<T>::pack(ldf(p + k0 * ld + g + 8) * w0, ldf(p + (k0 + 1) * ld + g + 8) * w1);
        a[2] = Ssdl16<T>::pack(ldf(p + k1 * ld + g) * w2, ldf(p + (k1 + 1) * ld + g) * w3);
        a[3] = Ssdl16<T>::pack(ldf(p + k1 * ld + g + 8) * w2, ldf(p + (k1 + 1) * ld + g + 8) * w3);
    }
    static __device__ __forceinline__ void b_nmaj(unsigned (&b)[2], const T* p, int ld, int g, int c) {
        b[0] = u32(p + g * ld + 2 * c);
        b[1] = u32(p + g * ld + 2 * c + 8);
    }
    static __device__ __forceinline__ void b_kmaj(unsigned (&b)[2], const T* p, int ld, int g, int c) {
        b[0] = two(p + 2 * c * ld + g, p + (2 * c + 1) * ld + g);
        b[1] = two(p + (2 * c + 8) * ld + g, p + (2 * c + 9) * ld + g);
    }
    // A of k step kk from accumulators: tiles 2kk and 2kk+1 (16 x 8 each) hold it as is.
    static __device__ __forceinline__ void a_acc2(unsigned (&a)[4], const float (&t0)[4], const float (&t1)[4]) {
        a[0] = Ssdl16<T>::pack(t0[0], t0[1]);
        a[1] = Ssdl16<T>::pack(t0[2], t0[3]);
        a[2] = Ssdl16<T>::pack(t1[0], t1[1]);
        a[3] = Ssdl16<T>::pack(t1[2], t1[3]);
    }
};
template <> struct SsdmFrag<bf16_t> : SsdmFrag16<bf16_t> {};
#endif
#if !defined(MAMBA_EMU) || defined(MAMBA_EMU_F16)
template <> struct SsdmFrag<f16_t> : SsdmFrag16<f16_t> {};
#endif

// Stores two consecutive f32 values as T (shared memory, aligned).
template <typename T>
__device__ __forceinline__ void ssdm_st2(T* p, float a, float b) {
    if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float2*>(p) = make_float2(a, b);
    } else {
        *reinterpret_cast<unsigned*>(p) = Ssdl16<T>::pack(a, b);
    }
}

// Shared memory of the mma kernel (src/gpu/ops.rs `ssdm_smem` repeats it).
struct SsdmLayout {
    int ldN, ldP;
    int o_x, o_b, o_c, bstride, o_s, total;
};
// MODE 0 (one pass): two stage buffers of x, B, C; MODE 1 (chunk states): one buffer,
// no C; MODE 2 (outputs): one buffer.
__host__ __device__ inline SsdmLayout ssdm_layout(int es, int Q, int PB, int N, int mode = 0) {
    SsdmLayout l;
    const int pad = 16 / es;
    l.ldN = N + pad;
    l.ldP = PB + pad;
    int o = ssdc_a128(Q * (8 + 4 + 4 + 4) + 16);
    l.o_x = o;
    l.o_b = l.o_x + ssdc_a128(Q * l.ldP * es);
    l.o_c = l.o_b + ssdc_a128(Q * l.ldN * es);
    l.bstride = (mode == 1 ? l.o_c : l.o_c + ssdc_a128(Q * l.ldN * es)) - l.o_x;
    o = l.o_x + (mode == 0 ? 2 : 1) * l.bstride;
    l.o_s = o;
    if (mode != 1) o += ssdc_a128(PB * l.ldN * es);  // MODE 1 keeps S in registers only
    l.total = o;
    return l;
}

#define SSDM_SJ 8  // state n8 tiles per warp at most
// MODE 0: one block per (batch, head, PB rows) walks every chunk (state in registers).
// MODE 1 and 2 (the three-kernel form, `split3`): one block per (batch, head, chunk, PB
// rows); blockIdx.x = chunk * (P / PB) + row tile. MODE 1 writes the chunk's local end
// state (from a zero state) to chunk_states (b, h, K, p, N) and exp(cs_end) to
// chunk_decay (b, h, K); ssd_combine (ssd.cu) then turns them into incoming states;
// MODE 2 reads the incoming state and writes the chunk's outputs.
// SB (bf16 storage only): chunk_states holds bf16 (the outputs kernel rounds S to bf16
// for its operand anyway); chunk_decay stays f32.
template <typename T, int Q, int MODE, bool SB = false>
__device__ void ssdm_fwd(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    using F = SsdmFrag<T>;
    constexpr int es = sizeof(T), KS = F::KS, E = Q / 32, QT = Q / 16;
    constexpr int YCG = SSDC_WARPS / QT;  // warps per 16-row slab of Y
    const int N = p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen, PB = p.qb;
    const SsdmLayout lay = ssdm_layout(es, Q, PB, N, MODE);
    const int ldN = lay.ldN, ldP = lay.ldP;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int ptiles = P / PB;
    const int cidx = MODE ? (int)blockIdx.x / ptiles : 0;
    const int q0 = (MODE ? (int)blockIdx.x - cidx * ptiles : (int)blockIdx.x) * PB, j = blockIdx.y, i = blockIdx.z;
    const int k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;

    double* s_cs = reinterpret_cast<double*>(smem_raw);
    float* s_ecs = reinterpret_cast<float*>(s_cs + Q);
    float* s_w = s_ecs + Q;
    float* s_dt = s_w + Q;
    float* s_misc = s_dt + Q;
    T* s_s = reinterpret_cast<T*>(smem_raw + lay.o_s);

    const T* x = static_cast<const T*>(p.x);
    const T* dtp = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    const int nchunks = (L + Q - 1) / Q;

    constexpr int EPV = 16 / es;
    const int vx = PB / EPV, vn = N / EPV;
    auto bx_of = [&](int b) { return reinterpret_cast<T*>(smem_raw + lay.o_x + b * lay.bstride); };
    auto bb_of = [&](int b) { return reinterpret_cast<T*>(smem_raw + lay.o_b + b * lay.bstride); };
    auto bc_of = [&](int b) { return reinterpret_cast<T*>(smem_raw + lay.o_c + b * lay.bstride); };
    auto stage = [&](int c, int b) {
        const int t0 = c * Q;
        T* bx = bx_of(b);
        T* bbm = bb_of(b);
        T* bcm = bc_of(b);
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
            if (MODE != 1)
                ssdc_cp16(bcm + t * ldN + e, Cp + i * p.C_sb + tt * p.C_st + (long long)k * N + e, ok ? 16 : 0);
        }
        ssdc_commit();
    };
    float raw[E];
    auto load_dt = [&](int c) {
#pragma unroll
        for (int e = 0; e < E; ++e) {
            const int t = c * Q + lane * E + e;
            raw[e] = t < L ? ldf(dtp + i * p.dt_sb + (long long)t * p.dt_st + j) : 0.f;
        }
    };

    // State tiles of this warp: rows rt*16.., n8 tiles jn = cg + ncg * s.
    const int prt = PB / 16, ncg = SSDC_WARPS / prt;
    const int rt = warp % prt, cg = warp / prt;
    const int n8 = N / 8;
    float sacc[SSDM_SJ][4];
#pragma unroll
    for (int s = 0; s < SSDM_SJ; ++s) {
        const int jn = cg + ncg * s;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int q = rt * 16 + g + (e >> 1) * 8, n = jn * 8 + 2 * c4 + (e & 1);
            sacc[s][e] = (MODE == 0 && p.init && jn < n8) ? p.init[(head * P + q0 + q) * N + n] : 0.f;
        }
    }
    // Y tiles of this warp: slab ti (rows ti*16..), n8 tiles jq = ycg + YCG * s of PB/8.
    const int ti = warp % QT, ycg = warp / QT;
    constexpr int YJ = 64 / 8 / YCG;  // PB <= 64
    const int py8 = PB / 8;

    const int cbeg = MODE ? cidx : 0, cend = MODE ? cidx + 1 : nchunks;
    if (warp == 0) load_dt(cbeg);
    stage(cbeg, 0);
    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
    for (int c = cbeg; c < cend; ++c) {
        const int b = (c - cbeg) & 1;
        const int t0 = c * Q, tn = min(Q, L - t0);
        __syncthreads();  // the previous chunk is done with the other buffer and s_s
        if (c + 1 < cend) stage(c + 1, b ^ 1);
        if (warp == 0) {
            float dtv[E];
            double pre[E];
            double loc = 0.0;
#pragma unroll
            for (int e = 0; e < E; ++e) {
                const int t = lane * E + e;
                dtv[e] = t < tn ? step_size(raw[e] + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
                loc += (double)(dtv[e] * Aj) - (t < tn && ssd_starts_seg(p, i, t0 + t) ? SSDM_RESET : 0.0);
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
            if (c + 1 < cend) load_dt(c + 1);
        }
        // The incoming state, in the operand type, for C S^T.
        if constexpr (MODE == 0) {
#pragma unroll
            for (int s = 0; s < SSDM_SJ; ++s) {
                const int jn = cg + ncg * s;
                if (jn < n8) {
                    T* d = s_s + (rt * 16 + g) * ldN + jn * 8 + 2 * c4;
                    ssdm_st2<T>(d, sacc[s][0], sacc[s][1]);
                    ssdm_st2<T>(d + 8 * ldN, sacc[s][2], sacc[s][3]);
                }
            }
        } else if constexpr (MODE == 2 && SB) {
            const unsigned* s_in =
                reinterpret_cast<const unsigned*>(p.chunk_states) + ((head * nchunks + c) * P + q0) * (size_t)N / 2;
            for (int e = tid; e < PB * N / 2; e += SSDC_THREADS) {
                const int q = e / (N / 2), n = (e - q * (N / 2)) * 2;
                *reinterpret_cast<unsigned*>(s_s + q * ldN + n) = s_in[((size_t)q * N + n) / 2];
            }
        } else if constexpr (MODE == 2) {
            // From ssd_combine: chunk_states (b, h, K, p, N) holds each chunk's incoming state.
            const float* s_in = p.chunk_states + ((head * nchunks + c) * P + q0) * (size_t)N;
            for (int e = tid; e < PB * N / 2; e += SSDC_THREADS) {
                const int q = e / (N / 2), n = (e - q * (N / 2)) * 2;
                const float2 v = *reinterpret_cast<const float2*>(s_in + (size_t)q * N + n);
                ssdm_st2<T>(s_s + q * ldN + n, v.x, v.y);
            }
        }
        if (c + 1 < cend) ssdc_wait<1>();
        else ssdc_wait<0>();
        __syncthreads();
        const T* bx = bx_of(b);
        const T* bbm = bb_of(b);
        const T* bcm = bc_of(b);

        if (MODE == 1 && q0 == 0 && tid == 0) p.chunk_decay[head * nchunks + c] = s_misc[0];
        // ---- Y for slab ti: C S^T (scaled by exp(cs_t)), then + M X.
        if constexpr (MODE != 1) {
            float yacc[YJ][4];
            float cb[QT * 2][4];  // C B^T of the slab, n8 tiles over s (only 2(ti+1) used)
#pragma unroll
            for (int s = 0; s < YJ; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) yacc[s][e] = 0.f;
#pragma unroll
            for (int s = 0; s < QT * 2; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) cb[s][e] = 0.f;
            const T* crow = bcm + ti * 16 * ldN;
            for (int kk = 0; kk < N; kk += KS) {
                typename F::A a;
                F::a_row(a, crow + kk, ldN, g, c4);
#pragma unroll
                for (int s = 0; s < YJ; ++s) {
                    const int jq = ycg + YCG * s;
                    if (jq < py8) {
                        typename F::B bf;
                        F::b_nmaj(bf, s_s + jq * 8 * ldN + kk, ldN, g, c4);
                        ssdm_mma(yacc[s], a, bf);
                    }
                }
#pragma unroll
                for (int s = 0; s < QT * 2; ++s) {
                    if (s < 2 * (ti + 1)) {
                        typename F::B bf;
                        F::b_nmaj(bf, bbm + s * 8 * ldN + kk, ldN, g, c4);
                        ssdm_mma(cb[s], a, bf);
                    }
                }
            }
            const int tr0 = ti * 16 + g, tr1 = tr0 + 8;
            {
                const float e0 = s_ecs[tr0], e1 = s_ecs[tr1];
#pragma unroll
                for (int s = 0; s < YJ; ++s) {
                    yacc[s][0] *= e0;
                    yacc[s][1] *= e0;
                    yacc[s][2] *= e1;
                    yacc[s][3] *= e1;
                }
            }
            // M = C B^T * exp(cs_t - cs_s) * dt_s for s <= t.
            const double cs0 = s_cs[tr0], cs1 = s_cs[tr1];
#pragma unroll
            for (int s = 0; s < QT * 2; ++s) {
                if (s < 2 * (ti + 1)) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int t = e < 2 ? tr0 : tr1, sc = s * 8 + 2 * c4 + (e & 1);
                        const double ct = e < 2 ? cs0 : cs1;
                        cb[s][e] = sc <= t ? cb[s][e] * expf((float)(ct - s_cs[sc])) * s_dt[sc] : 0.f;
                    }
                }
            }
            // + M X over s < 16 (ti + 1).
            if constexpr (KS == 16) {
#pragma unroll
                for (int kq = 0; kq < QT; ++kq) {
                    if (kq <= ti) {
                        unsigned a[4];
                        SsdmFrag<T>::a_acc2(a, cb[2 * kq], cb[2 * kq + 1]);
#pragma unroll
                        for (int s = 0; s < YJ; ++s) {
                            const int jq = ycg + YCG * s;
                            if (jq < py8) {
                                typename F::B bf;
                                F::b_kmaj(bf, bx + kq * 16 * ldP + jq * 8, ldP, g, c4);
                                ssdm_mma(yacc[s], a, bf);
                            }
                        }
                    }
                }
            } else {
#pragma unroll
                for (int kq = 0; kq < 2 * QT; ++kq) {
                    if (kq < 2 * (ti + 1)) {
                        float a[4];
                        SsdmFrag<float>::a_acc(a, cb[kq], lane);
#pragma unroll
                        for (int s = 0; s < YJ; ++s) {
                            const int jq = ycg + YCG * s;
                            if (jq < py8) {
                                typename F::B bf;
                                F::b_kmaj(bf, bx + kq * 8 * ldP + jq * 8, ldP, g, c4);
                                ssdm_mma(yacc[s], a, bf);
                            }
                        }
                    }
                }
            }
            // Outputs: + D x, * silu(z).
#pragma unroll
            for (int s = 0; s < YJ; ++s) {
                const int jq = ycg + YCG * s;
                if (jq < py8) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int t = e < 2 ? tr0 : tr1, q = jq * 8 + 2 * c4 + (e & 1);
                        if (t < tn) {
                            const long long tt = t0 + t;
                            float y = yacc[s][e];
                            if (p.D) y += (p.d_per_channel ? p.D[j * P + q0 + q] : dj) * ldf(bx + t * ldP + q);
                            if (zp) y *= silu_f(ldf(zp + i * p.z_sb + tt * p.z_st + (long long)j * P + q0 + q));
                            out[i * p.out_sb + tt * p.out_st + (long long)j * P + q0 + q] = cvt<T>(y);
                        }
                    }
                }
            }
        }
        // ---- S = exp(cs_end) S + (X w)^T B.
        if constexpr (MODE != 2) {
            const float dec = s_misc[0];
#pragma unroll
            for (int s = 0; s < SSDM_SJ; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) sacc[s][e] *= dec;
#pragma unroll
            for (int kk = 0; kk < Q; kk += KS) {
                typename F::A a;
                F::a_col(a, bx + kk * ldP + rt * 16, ldP, s_w + kk, g, c4);
#pragma unroll
                for (int s = 0; s < SSDM_SJ; ++s) {
                    const int jn = cg + ncg * s;
                    if (jn < n8) {
                        typename F::B bf;
                        F::b_kmaj(bf, bbm + kk * ldN + jn * 8, ldN, g, c4);
                        ssdm_mma(sacc[s], a, bf);
                    }
                }
            }
        }
    }
    if (MODE == 0 && p.final_states) {
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s) {
            const int jn = cg + ncg * s;
            if (jn < n8) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int q = rt * 16 + g + (e >> 1) * 8, n = jn * 8 + 2 * c4 + (e & 1);
                    p.final_states[(head * P + q0 + q) * N + n] = sacc[s][e];
                }
            }
        }
    }
    if constexpr (MODE == 1) {
        float* so = p.chunk_states + ((head * nchunks + cidx) * P + q0) * (size_t)N;
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s) {
            const int jn = cg + ncg * s;
            if (jn < n8) {
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int q = rt * 16 + g + h2 * 8, n = jn * 8 + 2 * c4;
                    if constexpr (SB)
                        reinterpret_cast<unsigned*>(p.chunk_states)[(((head * nchunks + cidx) * P + q0) * (size_t)N + (size_t)q * N + n) / 2] =
                            ssdm_pack(sacc[s][2 * h2], sacc[s][2 * h2 + 1]);
                    else
                        *reinterpret_cast<float2*>(so + (size_t)q * N + n) = make_float2(sacc[s][2 * h2], sacc[s][2 * h2 + 1]);
                }
            }
        }
    }
}

#define SSDM_INST(T, NAME, Q, MINB, SFX)                                                         \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssdm_fwd_##NAME##_q##Q##SFX( \
        const __grid_constant__ SsdParams p) {                                                    \
        ssdm_fwd<T, Q, 0>(p);                                                                     \
    }
SSDM_INST(float, f32, 32, 1, )
SSDM_INST(float, f32, 64, 1, )
#if !defined(MAMBA_EMU) || defined(MAMBA_EMU_BF16)
SSDM_INST(bf16_t, bf16, 32, 1, )
SSDM_INST(bf16_t, bf16, 64, 1, )
SSDM_INST(bf16_t, bf16, 64, 2, _m2)
SSDM_INST(bf16_t, bf16, 32, 2, _m2)
#endif

// The three-kernel form (`split3`): ssd3_states_* (MODE 1), ssd_combine (ssd.cu), then
// ssd3_out_* (MODE 2), each over (chunk x row tiles, heads, batch).
#define SSD3_INST(T, NAME, Q, MINB)                                                                              \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssd3_states_##NAME##_q##Q(                   \
        const __grid_constant__ SsdParams p) {                                                                     \
        ssdm_fwd<T, Q, 1>(p);                                                                                      \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssd3_out_##NAME##_q##Q(                      \
        const __grid_constant__ SsdParams p) {                                                                     \
        ssdm_fwd<T, Q, 2>(p);                                                                                      \
    }
SSD3_INST(float, f32, 32, 1)
SSD3_INST(float, f32, 64, 1)
SSD3_INST(float, f32, 128, 1)
#if !defined(MAMBA_EMU) || defined(MAMBA_EMU_BF16)
SSD3_INST(bf16_t, bf16, 32, 1)
SSD3_INST(bf16_t, bf16, 64, 1)
SSD3_INST(bf16_t, bf16, 128, 1)
#define SSD3_INST_SB(Q)                                                                                          \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 1) ssd3_states_bf16_q##Q##_sb(                     \
        const __grid_constant__ SsdParams p) {                                                                     \
        ssdm_fwd<bf16_t, Q, 1, true>(p);                                                                           \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 1) ssd3_out_bf16_q##Q##_sb(                        \
        const __grid_constant__ SsdParams p) {                                                                     \
        ssdm_fwd<bf16_t, Q, 2, true>(p);                                                                           \
    }
SSD3_INST_SB(32)
SSD3_INST_SB(64)
SSD3_INST_SB(128)
// `_m2`: capped at 128 registers (two blocks per SM).
#define SSD3_INST_M2(T, NAME, Q, SB, SFX)                                                                        \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssd3_states_##NAME##_q##Q##SFX##_m2(            \
        const __grid_constant__ SsdParams p) {                                                                     \
        ssdm_fwd<T, Q, 1, SB>(p);                                                                                  \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssd3_out_##NAME##_q##Q##SFX##_m2(               \
        const __grid_constant__ SsdParams p) {                                                                     \
        ssdm_fwd<T, Q, 2, SB>(p);                                                                                  \
    }
SSD3_INST_M2(bf16_t, bf16, 64, true, _sb)
SSD3_INST_M2(bf16_t, bf16, 128, true, _sb)
SSD3_INST_M2(float, f32, 64, false, )

// ssd_combine (ssd.cu) over bf16 chunk states: f32 running state, bf16 storage, f32
// final state.
extern "C" __global__ void ssd3_combine_bf16(const __grid_constant__ SsdParams p) {
    bf16_t* cs = reinterpret_cast<bf16_t*>(p.chunk_states);
    const size_t pN = (size_t)p.headdim * p.dstate;
    const size_t total = (size_t)p.batch * p.nheads * pN;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t head = idx / pN, e_ = idx % pN;
        float S = p.init ? p.init[idx] : 0.f;
        const int K = p.nchunks;
        for (int k0 = 0; k0 < K; k0 += 8) {
            float loc[8], dec[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int k = k0 + e;
                loc[e] = k < K ? ldf(cs + (head * K + k) * pN + e_) : 0.f;
                dec[e] = k < K ? p.chunk_decay[head * K + k] : 0.f;
            }
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const int k = k0 + e;
                if (k < K) {
                    cs[(head * K + k) * pN + e_] = cvt<bf16_t>(S);
                    S = dec[e] * S + loc[e];
                }
            }
        }
        if (p.final_states) p.final_states[idx] = S;
    }
}
#endif

// ---------------------------------------------------------------------------------------
// `ssdl_*` (branch h-c): the chunked SSD as four well-occupied kernels, for long
// sequences with many (batch, head) pairs (the language-model shape):
//   1. ssdl_cb_*     C_c B_c^T per (batch, group, chunk), f32, lower 16 x 16 tiles only
//                    (shared by every head of the group: computed once, not per head);
//   2. ssdl_states_* each chunk's local end state S_c = X^T diag(w) B from a zero state,
//                    w_t = exp(cs_end - cs_t) dt_t, into chunk_states, exp(cs_end) into
//                    chunk_decay;
//   3. ssd3_combine_bf16 / ssd_combine: incoming states in place, final state;
//   4. ssdl_out_*    Y = diag(exp(cs)) C S_in^T + (CB o decay mask o dt) X + D x, * silu(z).
// bf16 operands are loaded with ldmatrix (x4; .trans where the tile is stored k-major);
// f32 storage uses 3xTF32 with the scalar fragment loads of ssdm. The C B^T scratch lies
// after chunk_decay: cb = chunk_decay + align4(b * h * K), (b, g, K, Q, Q) floats.

// Four 8 x 8 b16 matrices; lane l gives the row address of matrix l / 8, row l % 8.
// Without TR lane T gets (row T/4, cols 2(T%4)..+1) of each; with TR (cols ... of the
// stored rows 2(T%4), 2(T%4)+1 at column T/4), i.e. the transposed matrix.
template <bool TR>
__device__ __forceinline__ void ssdl_ldm(unsigned (&r)[4], const void* addr) {
#ifdef MAMBA_EMU
    emu_ldmatrix(r, addr, TR);
#else
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(addr));
    if constexpr (TR)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s));
#endif
}

struct SsdlLayout {
    int ldN, ldP, o_x, o_b, o_c, o_s, total;
};
// kind 0: states (header, x, B); 1: outputs (header, x, C, S); 2: C B^T (C, B);
// 3: one pass (header, x, C, S, B).
__host__ __device__ inline SsdlLayout ssdl_layout(int es, int Q, int PB, int N, int kind) {
    SsdlLayout l;
    const int pad = 16 / es;
    l.ldN = N + pad;
    l.ldP = PB + pad;
    const int hdr = kind == 2 ? 0 : ssdc_a128(Q * (8 + 4 + 4 + 4) + 16);
    const int xs = kind == 2 ? 0 : ssdc_a128(Q * l.ldP * es), ns = ssdc_a128(Q * l.ldN * es);
    const int sts = ssdc_a128(PB * l.ldN * es);
    l.o_x = hdr;
    l.o_b = l.o_x + xs;  // kind 0, 2
    l.o_c = kind == 2 ? 0 : l.o_x + xs;  // kind 1, 2, 3
    if (kind == 2) l.o_b = ns;
    l.o_s = l.o_c + ns;  // kind 1, 3
    if (kind == 3) l.o_b = l.o_s + sts;
    l.total = kind == 0 ? l.o_b + ns : kind == 1 ? l.o_s + sts : kind == 2 ? 2 * ns : l.o_b + ns;
    return l;
}

// The drop of cs log2(e) at a packed sequence's first step (see `ssdl_hdr_base`).
#define SSDL_RESET2 64.0

// Warp 0: the chunk's steps and f64 cumulative sums into the header (as ssdm does):
// s_cs (f64), s_ecs = exp(cs), s_w = exp(cs_end - cs) dt, s_dt, s_misc[0] = exp(cs_end).
// CS2 (the bf16 outputs kernel): s_w holds cs * log2(e) in f32 instead (M's exponents
// as exp2 of f32 differences; bf16 tolerates the f32 rounding of cs).
template <typename T, int Q, bool CS2 = false>
__device__ __forceinline__ void ssdl_scan(const SsdParams& p, unsigned char* smem, int i, int j, int c, int lane) {
    constexpr int E = Q / 32;
    double* s_cs = reinterpret_cast<double*>(smem);
    float* s_ecs = reinterpret_cast<float*>(s_cs + Q);
    float* s_w = s_ecs + Q;
    float* s_dt = s_w + Q;
    float* s_misc = s_dt + Q;
    const T* dtp = static_cast<const T*>(p.dt);
    const float Aj = p.A[j];
    const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    const int t0 = c * Q, tn = min(Q, p.seqlen - t0);
    float dtv[E];
    double pre[E];
    double loc = 0.0;
#pragma unroll
    for (int e = 0; e < E; ++e) {
        const int t = lane * E + e;
        const float raw = t < tn ? ldf(dtp + i * p.dt_sb + (long long)(t0 + t) * p.dt_st + j) : 0.f;
        dtv[e] = t < tn ? step_size(raw + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
        // A packed sequence's first step: the reset term of `ssdl_hdr_k` (SSDL_RESET2).
        loc += (double)(dtv[e] * Aj) - (t < tn && ssd_starts(p, i, t0 + t) ? SSDL_RESET2 / 1.4426950408889634 : 0.0);
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
        s_w[t] = CS2 ? (float)(cs * 1.4426950408889634) : expf((float)(cs_end - cs)) * dtv[e];
    }
    if (lane == 0) s_misc[0] = expf((float)cs_end);
}

// Stages `rows` rows of `cols` elements (a multiple of 16 bytes) with 16-byte async
// copies: src row r at src + r * st, dst row r at dst + r * ld; rows >= nvalid are
// zero-filled (src not read). Each thread keeps one column and steps its pointers.
template <typename T>
__device__ __forceinline__ void ssdl_stage(T* dst, int ld, const T* src, long long st, int rows, int nvalid, int cols) {
    constexpr int EPV = 16 / sizeof(T);
    const int vc = cols / EPV, rstep = SSDC_THREADS / vc, tid = threadIdx.x;
    if (tid >= rstep * vc) return;
    const int col = (tid % vc) * EPV;
    int r = tid / vc;
    const T* sp = src + r * st + col;
    T* dp = dst + r * ld + col;
    const long long sstep = rstep * st;
    const int dstep = rstep * ld;
    for (; r < rows; r += rstep, sp += sstep, dp += dstep) ssdc_cp16(dp, r < nvalid ? sp : src, r < nvalid ? 16 : 0);
}

template <typename T> struct Ssdl16;  // the 16-bit operand helpers (below)

// Eight elements of T at r (16-byte aligned) times w, in place.
template <typename T>
__device__ __forceinline__ void ssdl_scale16(T* r, float w) {
    if constexpr (sizeof(T) == 2) {
        uint4 u = *reinterpret_cast<const uint4*>(r);
        const T* h = reinterpret_cast<const T*>(&u);
        uint4 o;
        o.x = Ssdl16<T>::pack(ldf(h + 0) * w, ldf(h + 1) * w);
        o.y = Ssdl16<T>::pack(ldf(h + 2) * w, ldf(h + 3) * w);
        o.z = Ssdl16<T>::pack(ldf(h + 4) * w, ldf(h + 5) * w);
        o.w = Ssdl16<T>::pack(ldf(h + 6) * w, ldf(h + 7) * w);
        *reinterpret_cast<uint4*>(r) = o;
    } else {
        for (int u = 0; u < 16 / (int)sizeof(T); u += 2) ssdm_st2<T>(r + u, ldf(r + u) * w, ldf(r + u + 1) * w);
    }
}

// Eight elements of T at src (16-byte aligned) times w, to dst.
template <typename T>
__device__ __forceinline__ void ssdl_scale16_to(T* dst, const T* src, float w) {
    static_assert(sizeof(T) == 2, "bf16 only");
    const uint4 u = *reinterpret_cast<const uint4*>(src);
    const T* h = reinterpret_cast<const T*>(&u);
    uint4 o;
    o.x = Ssdl16<T>::pack(ldf(h + 0) * w, ldf(h + 1) * w);
    o.y = Ssdl16<T>::pack(ldf(h + 2) * w, ldf(h + 3) * w);
    o.z = Ssdl16<T>::pack(ldf(h + 4) * w, ldf(h + 5) * w);
    o.w = Ssdl16<T>::pack(ldf(h + 6) * w, ldf(h + 7) * w);
    *reinterpret_cast<uint4*>(dst) = o;
}

// bf16x2 times bf16x2, each rounded to nearest (the product of two bf16 is exact in f32).
__device__ __forceinline__ unsigned ssdl_mul_bf2(unsigned a, unsigned b) {
#ifdef MAMBA_EMU
    auto lo = [](unsigned v) { return emu_bf2f((unsigned short)(v & 0xffffu)); };
    auto hi = [](unsigned v) { return emu_bf2f((unsigned short)(v >> 16)); };
    return ssdm_pack(lo(a) * lo(b), hi(a) * hi(b));
#else
    unsigned d;
    asm("mul.rn.bf16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
    return d;
#endif
}

#include "ssd16.cuh"

// The generic `ssdl` kernels' products and packs by storage type: f32 3xTF32 (float
// fragments), bf16 / f16 through Ssdl16 (unsigned fragments).
template <typename T, typename A, typename B>
__device__ __forceinline__ void ssdl_mma(float (&d)[4], const A& a, const B& b) {
    if constexpr (sizeof(T) == 2)
        Ssdl16<T>::mma(d, a, b);
    else
        ssdm_mma(d, a, b);
}
template <typename T>
__device__ __forceinline__ unsigned ssdl_pack(float lo, float hi) {
    if constexpr (sizeof(T) == 2)
        return Ssdl16<T>::pack(lo, hi);
    else
        return ssdm_pack(lo, hi);  // (the f32 kernels pack bf16 nowhere; as before)
}

// An A fragment of x^T (bf16; this lane's columns t = t0, t0 + 1, t0 + 8, t0 + 9) times
// w_t = exp2(c2e - c2_t) dt_t, from a header of Q log2-scaled cumulative sums then Q dt.
__device__ __forceinline__ void ssdl_w_a(unsigned (&a)[4], const float* hd, int Q, int t0, float c2e) {
    const float2 ca = *reinterpret_cast<const float2*>(hd + t0);
    const float2 cb2 = *reinterpret_cast<const float2*>(hd + t0 + 8);
    const float2 da = *reinterpret_cast<const float2*>(hd + Q + t0);
    const float2 db = *reinterpret_cast<const float2*>(hd + Q + t0 + 8);
    const unsigned wlo = ssdm_pack(exp2f(c2e - ca.x) * da.x, exp2f(c2e - ca.y) * da.y);
    const unsigned whi = ssdm_pack(exp2f(c2e - cb2.x) * db.x, exp2f(c2e - cb2.y) * db.y);
    a[0] = ssdl_mul_bf2(a[0], wlo);
    a[1] = ssdl_mul_bf2(a[1], wlo);
    a[2] = ssdl_mul_bf2(a[2], whi);
    a[3] = ssdl_mul_bf2(a[3], whi);
}

__device__ __forceinline__ float* ssdl_cb_base(const SsdParams& p) {
    return p.chunk_decay + (((size_t)p.batch * p.nheads * p.nchunks + 3) & ~(size_t)3);
}

// The per-chunk headers of `ssdl_hdr_*` (VAR 5, 6): after the C B^T scratch, per (batch,
// head, chunk) 2 Q floats: cs log2(e) | dt (Q = p.chunk_len). The kernels derive exp(cs)
// and w = exp(cs_end - cs) dt from them (exp2 of f32 differences, as the bf16 M build).
// Packed sequences (fifty-fifth session; p.seq_ids, see `ssd_starts`): the first step of a
// sequence adds -SSDL_RESET2 / log2(e) to the sum, so cs log2(e) drops by 64 there. The
// kernels of VAR 28 and 60-71 take every decay as exp2 of a later step's value minus an
// earlier one's (or of one value: from the chunk's start), each factor <= 1, so a decay
// across a start is <= 2^-64 (the SPEC's reset: the incoming state and the earlier
// sequence's terms drop out, to 5e-20 of their size) and one inside a sequence is
// unchanged but for the f32 rounding of values 64 larger per start (2^-17 of relative
// accuracy at one start in the chunk, where the 16-bit operands carry 2^-8 / 2^-11).
// (`ssdl_scan`, the generic kernels' own scan, adds the same term.)
__device__ __forceinline__ float* ssdl_hdr_base(const SsdParams& p) {
    return ssdl_cb_base(p) + (size_t)p.batch * p.ngroups * p.nchunks * p.chunk_len * p.chunk_len;
}

// Stages n floats (a multiple of 4, 16-byte aligned both sides) into shared memory.
__device__ __forceinline__ void ssdl_stage_f(float* dst, const float* src, int n) {
    for (int v = threadIdx.x; v < n / 4; v += SSDC_THREADS) ssdc_cp16(dst + 4 * v, src + 4 * v, 16);
}

// 0. The headers (VAR 5): grid (K, ceil(h / 8), b); warp w scans head 8 blockIdx.y + w
// of the chunk as ssdl_scan does (the same arithmetic, so the same values) and writes
// its header and the chunk decay exp(cs_end): the states and outputs kernels stage the
// header with their tiles instead of scanning dt on warp 0 while 7 warps wait.
// UNR (`ssdl_cbh3_*`, `MAMBA_CUDA_SSDL_CBH=3`): the Q * 8 / 256 loads of a thread issued
// before any softplus (the loop above them waits one global round trip per iteration);
// the same values.
template <typename T, int Q, bool UNR = false>
__device__ void ssdl_hdr_k(const SsdParams& p, int by) {
#ifdef MAMBA_EMU
    float* s_dt = reinterpret_cast<float*>(g_smem_bytes);
    float* s_rs = s_dt + Q * 8;
#else
    __shared__ float s_dt[Q * 8];
    __shared__ float s_rs[Q];  // the reset term of each step (0 but at a sequence's start)
#endif
    constexpr int E = Q / 32;
    const int H = p.nheads, L = p.seqlen, K = p.nchunks;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int c = blockIdx.x, j0 = by * 8, i = blockIdx.z, t0 = c * Q, tn = min(Q, L - t0);
    const T* dtp = static_cast<const T*>(p.dt);
    if (tid < Q) s_rs[tid] = tid < tn && ssd_starts(p, i, t0 + tid) ? (float)(-SSDL_RESET2 / 1.4426950408889634) : 0.f;
    if constexpr (UNR) {
        constexpr int NV = Q * 8 / SSDC_THREADS;
        const int jj = tid % 8, tt = tid / 8, j = j0 + jj;
        const bool on = j < H;
        const T* src = dtp + i * p.dt_sb + (long long)(t0 + tt) * p.dt_st + (on ? j : 0);
        const long long st = (long long)(SSDC_THREADS / 8) * p.dt_st;
        float raw[NV];
#pragma unroll
        for (int u = 0; u < NV; ++u) raw[u] = on && tt + 32 * u < tn ? ldf(src + u * st) : 0.f;
        const float bias = on && p.dt_bias ? p.dt_bias[j] : 0.f;
#pragma unroll
        for (int u = 0; u < NV; ++u) {
            const int t = tt + 32 * u;
            s_dt[jj * Q + t] = on && t < tn ? step_size(raw[u] + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
        }
    } else {
        for (int v = tid; v < Q * 8; v += SSDC_THREADS) {
            const int t = v / 8, jj = v % 8, j = j0 + jj;
            float s = 0.f;
            if (t < tn && j < H) {
                const float raw = ldf(dtp + i * p.dt_sb + (long long)(t0 + t) * p.dt_st + j);
                s = step_size(raw + (p.dt_bias ? p.dt_bias[j] : 0.f), p.softplus, p.has_limit, p.lo, p.hi);
            }
            s_dt[jj * Q + t] = s;
        }
    }
    __syncthreads();
    const int j = j0 + warp;
    if (j >= H) return;
    const float Aj = p.A[j];
    float dtv[E];
    double pre[E];
    double loc = 0.0;
#pragma unroll
    for (int e = 0; e < E; ++e) {
        dtv[e] = s_dt[warp * Q + lane * E + e];
        loc += (double)(dtv[e] * Aj) + (double)s_rs[lane * E + e];
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
    const size_t hc = ((size_t)i * H + j) * K + c;
    float* hd = ssdl_hdr_base(p) + hc * 2 * Q;
    float c2[E];
#pragma unroll
    for (int e = 0; e < E; ++e) c2[e] = (float)((excl + pre[e]) * 1.4426950408889634);
    if constexpr (E == 4) {
        *reinterpret_cast<float4*>(hd + lane * E) = make_float4(c2[0], c2[1], c2[2], c2[3]);
        *reinterpret_cast<float4*>(hd + Q + lane * E) = make_float4(dtv[0], dtv[1], dtv[2], dtv[3]);
    } else {
#pragma unroll
        for (int e = 0; e < E; ++e) {
            hd[lane * E + e] = c2[e];
            hd[Q + lane * E + e] = dtv[e];
        }
    }
    if (lane == 0) p.chunk_decay[hc] = expf((float)cs_end);
}

// 1. C B^T of one (batch, group, chunk): grid (K, g, b). Tiles (ti, 16-column tile sj)
// with sj <= ti, spread over the warps.
// VAR 9: the C B^T tile image (`ssdl_cbi_off`, ssd16.cuh).

// acc + a . b (four f32 products, exact in f64, summed in f64).
__device__ __forceinline__ double ssdl_dot4(double acc, float4 a, float4 b) {
    acc = fma((double)a.x, (double)b.x, acc);
    acc = fma((double)a.y, (double)b.y, acc);
    acc = fma((double)a.z, (double)b.z, acc);
    return fma((double)a.w, (double)b.w, acc);
}

template <typename T> struct SsdlFrag { using type = SsdmFrag<T>; };
#ifdef SSDL_HAVE_F16
template <> struct SsdlFrag<f16_t> { using type = SsdmFrag<bf16_t>; };
#endif

template <typename T, int Q, bool IMG = false>
__device__ void ssdl_cb_k(const SsdParams& p, int by) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    using F = typename SsdlFrag<T>::type;  // f32 / bf16 (f16 takes the bf16 mma path below)
    constexpr int es = sizeof(T), EPV = 16 / es, QT = Q / 16, KS = F::KS;
    const int N = p.dstate, L = p.seqlen;
    const SsdlLayout lay = ssdl_layout(es, Q, 16, N, 2);
    const int ldN = lay.ldN;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int c = blockIdx.x, k = by, i = blockIdx.z, t0 = c * Q;
    T* sc = reinterpret_cast<T*>(smem_raw + lay.o_c);
    T* sb = reinterpret_cast<T*>(smem_raw + lay.o_b);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    (void)EPV;
    ssdl_stage(sb, ldN, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N, p.B_st, Q, L - t0, N);
    ssdl_stage(sc, ldN, Cp + i * p.C_sb + (long long)t0 * p.C_st + (long long)k * N, p.C_st, Q, L - t0, N);
    ssdc_commit();
    ssdc_wait<0>();
    __syncthreads();
    float* cb = ssdl_cb_base(p) + (((size_t)i * p.ngroups + k) * p.nchunks + c) * (size_t)Q * Q;
    constexpr int NT = QT * (QT + 1) / 2;
    for (int it = warp; it < NT; it += SSDC_WARPS) {
        int ti = 0;
        while ((ti + 1) * (ti + 2) / 2 <= it) ++ti;
        const int sj = it - ti * (ti + 1) / 2;
        float acc[2][4] = {};
        if constexpr (es == 4) {
            // f32: C B^T in double, by FMA on the CUDA cores. The products of two f32 are
            // exact in f64, so each entry is the sum over N rounded once to f32, however much
            // the sum cancels. 3xTF32 (the other kernels' f32 mma) keeps ~22 bits per product:
            // where the sum over N cancels, that error grows with the cancellation (an L 1
            // case, where the output is C B^T dt x + D x, measured 2.0e-5 against the 1e-5
            // tolerance; NOTES.md). Lane (g, c4) holds rows g, g + 8 and columns 2 c4, 2 c4 + 1
            // of each 16 x 8 half, as the mma accumulators do.
            const float* s_c = reinterpret_cast<const float*>(sc);
            const float* s_b = reinterpret_cast<const float*>(sb);
            const float* c0 = s_c + (ti * 16 + g) * ldN;
            const float* c1 = c0 + 8 * ldN;
            double d[2][4] = {};
            for (int kk = 0; kk < N; kk += 4) {
                const float4 a0 = *reinterpret_cast<const float4*>(c0 + kk);
                const float4 a1 = *reinterpret_cast<const float4*>(c1 + kk);
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const float* bp = s_b + (sj * 16 + h2 * 8 + 2 * c4) * ldN + kk;
                    const float4 b0 = *reinterpret_cast<const float4*>(bp);
                    const float4 b1 = *reinterpret_cast<const float4*>(bp + ldN);
                    d[h2][0] = ssdl_dot4(d[h2][0], a0, b0);
                    d[h2][1] = ssdl_dot4(d[h2][1], a0, b1);
                    d[h2][2] = ssdl_dot4(d[h2][2], a1, b0);
                    d[h2][3] = ssdl_dot4(d[h2][3], a1, b1);
                }
            }
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[h2][e] = static_cast<float>(d[h2][e]);
        }
        for (int kk = 0; es == 2 && kk < N; kk += KS) {
            if constexpr (es == 2) {
                unsigned a[4], b4[4];
                const int r = lane & 7, mi = lane >> 3;
                // A = C rows (row-major): matrix mi: rows +8(mi&1), cols +8(mi>>1).
                ssdl_ldm<false>(a, sc + (ti * 16 + r + 8 * (mi & 1)) * ldN + kk + 8 * (mi >> 1));
                // B(k = n, col = s) = B[s][n] (n-major): matrix mi: tile mi>>1, k +8(mi&1).
                ssdl_ldm<false>(b4, sb + (sj * 16 + r + 8 * (mi >> 1)) * ldN + kk + 8 * (mi & 1));
                const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                Ssdl16<T>::mma(acc[0], a, b0);
                Ssdl16<T>::mma(acc[1], a, b1);
            } else {
                typename F::A a;
                F::a_row(a, sc + ti * 16 * ldN + kk, ldN, g, c4);
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    typename F::B bf;
                    F::b_nmaj(bf, sb + (sj * 16 + h2 * 8) * ldN + kk, ldN, g, c4);
                    ssdm_mma(acc[h2], a, bf);
                }
            }
        }
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
            if constexpr (IMG) {
                // bf16 tile image (VAR 9): the chunk's slot of the f32 scratch holds it.
                unsigned* img = reinterpret_cast<unsigned*>(cb) + (size_t)it * 128;
                const int col = h2 * 8 + 2 * c4;
                img[ssdl_cbi_off(g, col) / 2] = Ssdl16<T>::pack(acc[h2][0], acc[h2][1]);
                img[ssdl_cbi_off(g + 8, col) / 2] = Ssdl16<T>::pack(acc[h2][2], acc[h2][3]);
            } else {
                const int col = sj * 16 + h2 * 8 + 2 * c4, r0 = ti * 16 + g;
                *reinterpret_cast<float2*>(cb + (size_t)r0 * Q + col) = make_float2(acc[h2][0], acc[h2][1]);
                *reinterpret_cast<float2*>(cb + (size_t)(r0 + 8) * Q + col) = make_float2(acc[h2][2], acc[h2][3]);
            }
        }
    }
}

// 2. The chunk's local end state: grid ((p / PB) x K, h, b), blockIdx.x = chunk * (p / PB)
// + row tile. Warps: PB/16 row tiles x (8 / (PB/16)) groups of n8 tiles (interleaved).
// FUSE (`ssdl_statesf_*`): the state pass runs here too, chained over the chunks: blocks
// take tickets (chunk-major, so a block waits only on an earlier ticket), chunk c waits
// for chunk c-1 of its row, reads S_in[c] (f32, a two-slot ring per row), writes it in
// the operand type for the outputs kernel, and passes S_out = exp(cs_end) S_in + S_loc
// on (or to final_states). Flags: p.seq_idx (unused by the chunked forms) holds the
// flag words ([0] the ticket, then one per (chunk, row)); p.mode this call's flag value.
// The ring lies after the C B^T scratch.
template <typename T, int Q, bool SB, bool FUSE = false, int NC = 0, int PBC = 0>
__device__ void ssdl_states_k(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    using F = SsdmFrag<T>;
    constexpr int es = sizeof(T), EPV = 16 / es, KS = F::KS;
    // NC / PBC (`_s` variants): N and PB fixed at compile time (no bounds tests, immediate
    // shared-memory offsets in the mma loops); 0: from the parameters.
    const int N = NC ? NC : p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen, PB = PBC ? PBC : p.qb,
              K = p.nchunks;
    const SsdlLayout lay = ssdl_layout(es, Q, PB, N, 0);
    const int ldN = lay.ldN, ldP = lay.ldP;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
#ifndef MAMBA_EMU
    if constexpr (NC != 0) __builtin_assume(tid < SSDC_THREADS);  // folds the tile bounds tests
#endif
    const int ptiles = P / PB;
    const float* s_w = reinterpret_cast<const float*>(smem_raw) + 2 * Q + Q;  // after s_cs (f64) and s_ecs
    const float* s_misc = s_w + 2 * Q;
    int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j = blockIdx.y, i = blockIdx.z;
    unsigned* flags = reinterpret_cast<unsigned*>(const_cast<int*>(p.seq_idx));
    const int nrows = ptiles * H * p.batch;
    if constexpr (FUSE) {
        int* s_tk = reinterpret_cast<int*>(smem_raw) + 5 * Q + 2;
        if (tid == 0) {
            const unsigned tk = atomicAdd(flags, 1u);
            // The last ticket resets the counter for the next call on the stream.
            if (tk == (unsigned)(nrows * K) - 1u) atomicExch(flags, 0u);
            *s_tk = (int)tk;
        }
        __syncthreads();
        const int tk = *s_tk;
        c = tk / nrows;
        const int rem = tk - c * nrows;
        pt = rem % ptiles;
        j = (rem / ptiles) % H;
        i = rem / (ptiles * H);
        __syncthreads();  // s_tk is read before the header is written
    }
    const int q0 = pt * PB, row = (i * H + j) * ptiles + pt;
    const int k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;
    T* bx = reinterpret_cast<T*>(smem_raw + lay.o_x);
    T* bb = reinterpret_cast<T*>(smem_raw + lay.o_b);
    const T* x = static_cast<const T*>(p.x);
    const T* Bp = static_cast<const T*>(p.B);
    const int t0 = c * Q, vx = PB / EPV;
    // NC (`_s`, bf16): B in a second copy group, waited for after x is scaled.
    constexpr bool G2 = NC != 0 && es == 2;
    ssdl_stage(bx, ldP, x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0, p.x_st, Q, L - t0, PB);
    if constexpr (G2) ssdc_commit();
    ssdl_stage(bb, ldN, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N, p.B_st, Q, L - t0, N);
    ssdc_commit();
    if (warp == 0) ssdl_scan<T, Q>(p, smem_raw, i, j, c, lane);
    ssdc_wait<G2 ? 1 : 0>();
    __syncthreads();
    if constexpr (es == 2) {
        // x rows scaled by w in place (the A operand X^T diag(w) then loads as is).
        for (int v = tid; v < Q * vx; v += SSDC_THREADS) {
            const int t = v / vx, e = (v - t * vx) * EPV;
            ssdl_scale16(bx + t * ldP + e, s_w[t]);
        }
        if constexpr (G2) ssdc_wait<0>();
        __syncthreads();
    }
    if (q0 == 0 && tid == 0) p.chunk_decay[head * K + c] = s_misc[0];
    const int prt = PB / 16, ncg = SSDC_WARPS / prt;
    const int rt = warp % prt, cg = warp / prt;
    const int n8 = N / 8;
    float acc[SSDM_SJ][4];
#pragma unroll
    for (int s = 0; s < SSDM_SJ; ++s)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[s][e] = 0.f;
#pragma unroll 2
    for (int kk = 0; kk < Q; kk += KS) {
        if constexpr (es == 2) {
            const int r = lane & 7, mi = lane >> 3;
            unsigned a[4];
            // A(m = p, k = t) = xw[t][p], stored k-major: matrix mi: k +8(mi>>1), m +8(mi&1).
            ssdl_ldm<true>(a, bx + (kk + r + 8 * (mi >> 1)) * ldP + rt * 16 + 8 * (mi & 1));
#pragma unroll
            for (int s = 0; s < SSDM_SJ; s += 2) {
                const int ja = cg + ncg * s, jb = cg + ncg * (s + 1);
                if (ja < n8) {
                    // B(k = t, n) = B[t][n], k-major: matrix mi: k +8(mi&1), tile (mi>>1 ? jb : ja).
                    const int jt = (mi >> 1) && jb < n8 ? jb : ja;
                    unsigned b4[4];
                    ssdl_ldm<true>(b4, bb + (kk + r + 8 * (mi & 1)) * ldN + jt * 8);
                    const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                    ssdl_mma<T>(acc[s], a, b0);
                    if (jb < n8) ssdl_mma<T>(acc[s + 1], a, b1);
                }
            }
        } else {
            typename F::A a;
            F::a_col(a, bx + kk * ldP + rt * 16, ldP, s_w + kk, g, c4);
#pragma unroll
            for (int s = 0; s < SSDM_SJ; ++s) {
                const int jn = cg + ncg * s;
                if (jn < n8) {
                    typename F::B bf;
                    F::b_kmaj(bf, bb + kk * ldN + jn * 8, ldN, g, c4);
                    ssdl_mma<T>(acc[s], a, bf);
                }
            }
        }
    }
    const size_t base = ((head * K + c) * P + q0) * (size_t)N;
    if constexpr (FUSE) {
        if (c > 0) {
            if (tid == 0) {
                const unsigned* f = flags + 1 + (size_t)(c - 1) * nrows + row;
                while (ld_acquire_u32(f) != (unsigned)p.mode) {
                }
                __threadfence();
            }
            __syncthreads();
        }
        float* ring = ssdl_cb_base(p) + (size_t)p.batch * p.ngroups * K * Q * Q;
        const float* rin = ring + ((size_t)row * 2 + (c & 1)) * PB * N;
        float* rout = ring + ((size_t)row * 2 + ((c + 1) & 1)) * PB * N;
        const float dec = s_misc[0];
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s) {
            const int jn = cg + ncg * s;
            if (jn < n8) {
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int q = rt * 16 + g + h2 * 8, n = jn * 8 + 2 * c4;
                    float2 si = make_float2(0.f, 0.f);
                    if (c > 0) si = __ldcg(reinterpret_cast<const float2*>(rin + (size_t)q * N + n));
                    else if (p.init) si = *reinterpret_cast<const float2*>(p.init + (head * P + q0 + q) * (size_t)N + n);
                    if constexpr (SB)
                        reinterpret_cast<unsigned*>(p.chunk_states)[(base + (size_t)q * N + n) / 2] = ssdl_pack<T>(si.x, si.y);
                    else
                        *reinterpret_cast<float2*>(p.chunk_states + base + (size_t)q * N + n) = si;
                    const float2 so = make_float2(fmaf(dec, si.x, acc[s][2 * h2]), fmaf(dec, si.y, acc[s][2 * h2 + 1]));
                    if (c + 1 < K)
                        *reinterpret_cast<float2*>(rout + (size_t)q * N + n) = so;
                    else if (p.final_states)
                        *reinterpret_cast<float2*>(p.final_states + (head * P + q0 + q) * (size_t)N + n) = so;
                }
            }
        }
        if (c + 1 < K) {
            __threadfence();
            __syncthreads();
            if (tid == 0) st_release_u32(flags + 1 + (size_t)c * nrows + row, (unsigned)p.mode);
        }
        return;
    }
#pragma unroll
    for (int s = 0; s < SSDM_SJ; ++s) {
        const int jn = cg + ncg * s;
        if (jn < n8) {
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const int q = rt * 16 + g + h2 * 8, n = jn * 8 + 2 * c4;
                if constexpr (SB)
                    reinterpret_cast<unsigned*>(p.chunk_states)[(base + (size_t)q * N + n) / 2] =
                        ssdl_pack<T>(acc[s][2 * h2], acc[s][2 * h2 + 1]);
                else
                    *reinterpret_cast<float2*>(p.chunk_states + base + (size_t)q * N + n) =
                        make_float2(acc[s][2 * h2], acc[s][2 * h2 + 1]);
            }
        }
    }
}

// 2'. `ssdl_states_*_m` (bf16, N and PB fixed): the chunk states of HB = H / gridDim.y
// consecutive heads of one group per block, grid ((p / PB) x K, H / HB, b): B is staged
// once for the HB heads (not once per head), and x of the next head is prefetched (a
// second x buffer) while the current head's mma run. Per head: warp 0 scans dt into the
// header, x is scaled by w in place, then the same mma and stores as ssdl_states_k.
// HDR (`_mx`, VAR 5): cs log2(e) and dt come from the `ssdl_hdr` header, staged with x
// (the next head's with the next head's x), w_t = exp2(c2_end - c2_t) dt_t; no scan, no
// decay write (the header kernel wrote it).
// CMB (`_mxc`, VAR 7 / 8; with HDR): the combine folded in: the last of the K chunk blocks
// of a (batch, head block, p tile) (a ticket per group in p.seq_idx, zeroed by the host)
// runs the state pass of its HB heads and PB rows while the local states are fresh in L2:
// each thread owns 4 16-byte vectors of a (head, chunk) slice (PB x N contiguous), slices
// stream through a 4-stage cp.async ring in the block's shared memory (each thread reads
// only what it copied), S_in replaces the local state in place, S_out goes to
// final_states; no `ssdl_combine_bf16` launch.
// WA (`_mw`, VAR 11; with HDR): x is not scaled in shared memory: each lane scales its A
// fragments of x^T (pairs of consecutive t) by (w_t, w_t+1) in bf16x2, so one barrier per
// head; the headers of two heads alternate in the header space (2 x 2 Q floats).
// CK (`_mxk`, VAR 14): each warp's n8 column tiles contiguous (cg (N / 8 / ncg) + s instead
// of cg + ncg s), so both 16-byte halves of a 32-byte sector of the stored states come
// from the same warp in consecutive stores (fewer partial-sector writes).
template <int Q, int NC, int PBC, bool HDR = false, bool CMB = false, bool WA = false, bool CK = false>
__device__ void ssdl_states_mh(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    using T = bf16_t;
    constexpr int es = 2, EPV = 8, KS = 16, N = NC, PB = PBC;
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks;
    const SsdlLayout lay = ssdl_layout(es, Q, PB, N, 0);
    constexpr int ldN = N + 8, ldP = PB + 8;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
#ifndef MAMBA_EMU
    __builtin_assume(tid < SSDC_THREADS);
#endif
    const int ptiles = P / PB, HB = H / (int)gridDim.y;
    const float* s_w = reinterpret_cast<const float*>(smem_raw) + 2 * Q + Q;
    const float* s_misc = s_w + 2 * Q;
    const int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j0 = blockIdx.y * HB, i = blockIdx.z;
    const int q0 = pt * PB, k = j0 / (H / p.ngroups);
    // The two x buffers: o_x and, after the states layout, lay.total.
    auto xbuf = [&](int u) { return reinterpret_cast<T*>(smem_raw + (u ? lay.total : lay.o_x)); };
    T* bb = reinterpret_cast<T*>(smem_raw + lay.o_b);
    const T* x = static_cast<const T*>(p.x);
    const T* Bp = static_cast<const T*>(p.B);
    const int t0 = c * Q;
    constexpr int vx = PB / EPV;
    const T* xrow = x + i * p.x_sb + (long long)t0 * p.x_st + q0;
    // HDR: c2 | dt of head j at the start of the header space.
    float* s_hd = reinterpret_cast<float*>(smem_raw);
    const float* hdr = ssdl_hdr_base(p) + (((size_t)i * H + j0) * K + c) * 2 * Q;
    static_assert(!WA || (HDR && !CMB), "WA: with the headers, no folded combine");
    static_assert(4 * Q * 4 <= 20 * Q, "WA: two headers in the header space");
    ssdl_stage(xbuf(0), ldP, xrow + (long long)j0 * P, p.x_st, Q, L - t0, PB);
    if constexpr (HDR) ssdl_stage_f(s_hd, hdr, 2 * Q);
    ssdl_stage(bb, ldN, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N, p.B_st, Q, L - t0, N);
    ssdc_commit();
    constexpr int prt = PB / 16, ncg = SSDC_WARPS / prt, n8 = N / 8;
    const int rt = warp % prt, cg = warp / prt;
    for (int hh = 0; hh < HB; ++hh) {
        const int j = j0 + hh;
        const size_t head = (size_t)i * H + j;
        T* bx = xbuf(hh & 1);
        // The header was last read before the previous head's second barrier.
        if constexpr (!HDR)
            if (warp == 0) ssdl_scan<T, Q>(p, smem_raw, i, j, c, lane);
        ssdc_wait<0>();  // x of this head (and B)
        __syncthreads();
        if constexpr (WA) {
            // Every warp is past the previous head's mma: the other x buffer and header
            // slot take the next head.
            if (hh + 1 < HB) {
                ssdl_stage(xbuf((hh + 1) & 1), ldP, xrow + (long long)(j + 1) * P, p.x_st, Q, L - t0, PB);
                ssdl_stage_f(s_hd + ((hh + 1) & 1) * 2 * Q, hdr + (size_t)(hh + 1) * K * 2 * Q, 2 * Q);
                ssdc_commit();
            }
        } else
        for (int v = tid; v < Q * vx; v += SSDC_THREADS) {
            const int t = v / vx, e = (v - t * vx) * EPV;
            ssdl_scale16(bx + t * ldP + e, HDR ? exp2f(s_hd[Q - 1] - s_hd[t]) * s_hd[Q + t] : s_w[t]);
        }
        if constexpr (!HDR)
            if (q0 == 0 && tid == 0) p.chunk_decay[head * K + c] = s_misc[0];
        if constexpr (!WA) __syncthreads();
        // Every warp is past the previous head's mma: its x buffer takes the next head
        // (HDR: and the header, read only before the barrier above, the next head's).
        if (!WA && hh + 1 < HB) {
            ssdl_stage(xbuf((hh + 1) & 1), ldP, xrow + (long long)(j + 1) * P, p.x_st, Q, L - t0, PB);
            if constexpr (HDR) ssdl_stage_f(s_hd, hdr + (size_t)(hh + 1) * K * 2 * Q, 2 * Q);
            ssdc_commit();
        }
        float acc[SSDM_SJ][4];
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[s][e] = 0.f;
        [[maybe_unused]] const float* s_hw = s_hd + (WA ? (hh & 1) * 2 * Q : 0);
        [[maybe_unused]] const float c2e = WA ? s_hw[Q - 1] : 0.f;
#pragma unroll 2
        for (int kk = 0; kk < Q; kk += KS) {
            const int r = lane & 7, mi = lane >> 3;
            unsigned a[4];
            ssdl_ldm<true>(a, bx + (kk + r + 8 * (mi >> 1)) * ldP + rt * 16 + 8 * (mi & 1));
            if constexpr (WA) {
                ssdl_w_a(a, s_hw, Q, kk + 2 * c4, c2e);
            }
#pragma unroll
            for (int s = 0; s < SSDM_SJ; s += 2) {
                const int ja = CK ? cg * (n8 / ncg) + s : cg + ncg * s, jb = CK ? ja + 1 : cg + ncg * (s + 1);
                if (ja < n8) {
                    const int jt = (mi >> 1) && jb < n8 ? jb : ja;
                    unsigned b4[4];
                    ssdl_ldm<true>(b4, bb + (kk + r + 8 * (mi & 1)) * ldN + jt * 8);
                    const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                    ssdm_mma(acc[s], a, b0);
                    if (jb < n8) ssdm_mma(acc[s + 1], a, b1);
                }
            }
        }
        const size_t base = ((head * K + c) * P + q0) * (size_t)N;
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s) {
            const int jn = CK ? cg * (n8 / ncg) + s : cg + ncg * s;
            if (jn < n8) {
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int q = rt * 16 + g + h2 * 8, n = jn * 8 + 2 * c4;
                    reinterpret_cast<unsigned*>(p.chunk_states)[(base + (size_t)q * N + n) / 2] =
                        ssdm_pack(acc[s][2 * h2], acc[s][2 * h2 + 1]);
                }
            }
        }
    }
    if constexpr (CMB) {
        static_assert(HDR, "CMB: with the header kernel (the chunk decays)");
        constexpr int NS = 4, NV = PB * N / 8 / SSDC_THREADS;  // stages; vectors per thread
        static_assert(NV * 8 * SSDC_THREADS == PB * N, "CMB: PB N a multiple of 2048");
        unsigned* cnt = reinterpret_cast<unsigned*>(const_cast<int*>(p.seq_idx));
        const int grp = ((int)blockIdx.z * (int)gridDim.y + (int)blockIdx.y) * ptiles + pt;
        int* s_last = reinterpret_cast<int*>(smem_raw) + 4 * Q;  // past the header's c2 | dt
        __threadfence();  // this block's local states, before its ticket
        __syncthreads();
        if (tid == 0) *s_last = atomicAdd(cnt + grp, 1u) == (unsigned)(K - 1);
        __syncthreads();
        if (!*s_last) return;
        __threadfence();
        T* cs = reinterpret_cast<T*>(p.chunk_states);
        T* ring = reinterpret_cast<T*>(smem_raw + lay.o_x);  // NS slices of PB x N
        const int nst = HB * K;
        auto slice = [&](int st) { return cs + (((size_t)i * H + j0 + st / K) * K + st % K) * P * N + (size_t)q0 * N; };
        auto issue = [&](int st) {
            if (st < nst) {
                const T* src = slice(st);
                T* dst = ring + (st % NS) * PB * N;
#pragma unroll
                for (int r = 0; r < NV; ++r) ssdc_cp16(dst + (tid + r * SSDC_THREADS) * 8, src + (tid + r * SSDC_THREADS) * 8, 16);
            }
            ssdc_commit();
        };
#pragma unroll
        for (int st = 0; st < NS - 1; ++st) issue(st);
        float S[NV][8];
        for (int st = 0; st < nst; ++st) {
            issue(st + NS - 1);  // its stage was last read by this thread in step st - 1
            ssdc_wait<NS - 1>();
            const int hh = st / K, kc = st - hh * K;
            const size_t head = (size_t)i * H + j0 + hh;
            if (kc == 0) {
#pragma unroll
                for (int r = 0; r < NV; ++r)
#pragma unroll
                    for (int e = 0; e < 8; ++e)
                        S[r][e] = p.init ? p.init[(head * P + q0) * (size_t)N + (tid + r * SSDC_THREADS) * 8 + e] : 0.f;
            }
            const float dec = p.chunk_decay[head * K + kc];
            T* dst = slice(st);
            const T* loc = ring + (st % NS) * PB * N;
#pragma unroll
            for (int r = 0; r < NV; ++r) {
                const int v8 = (tid + r * SSDC_THREADS) * 8;
                const uint4 lv = *reinterpret_cast<const uint4*>(loc + v8);
                const T* l = reinterpret_cast<const T*>(&lv);
                uint4 o;
                o.x = ssdm_pack(S[r][0], S[r][1]);
                o.y = ssdm_pack(S[r][2], S[r][3]);
                o.z = ssdm_pack(S[r][4], S[r][5]);
                o.w = ssdm_pack(S[r][6], S[r][7]);
                *reinterpret_cast<uint4*>(dst + v8) = o;
#pragma unroll
                for (int e = 0; e < 8; ++e) S[r][e] = fmaf(dec, S[r][e], ldf(l + e));
                if (kc == K - 1 && p.final_states) {
                    float* fo = p.final_states + (head * P + q0) * (size_t)N + v8;
                    *reinterpret_cast<float4*>(fo) = make_float4(S[r][0], S[r][1], S[r][2], S[r][3]);
                    *reinterpret_cast<float4*>(fo + 4) = make_float4(S[r][4], S[r][5], S[r][6], S[r][7]);
                }
            }
        }
        ssdc_wait<0>();
    }
}

// 4. Outputs of one (batch, head, chunk, PB columns of p): grid as the states kernel.
// 16-row slabs of Y: Q 64: two warps per slab (PB/16 n8 tiles each); Q 128: one slab
// per warp; Q 256: slabs w and 15 - w per warp (balances the triangular M X).
// ONE (`ssdl_one_*`): the whole forward in one launch: each block also computes its
// chunk's local state (B staged, scaled by w in place for bf16), takes S_in from the
// chain as `ssdl_statesf` does (tickets, flags in p.seq_idx, a two-slot f32 ring per row
// after the C B^T scratch) straight into shared memory, passes S_out on, then writes Y:
// x is read once and no chunk state goes through global memory but the ring.
// NC / PBC as in ssdl_states_k. DS (`_d`, bf16 only): M X off the diagonal 16 x 16 tiles
// as diag(u) CB diag(v) X with u_t = exp(cs_t - e), v_s = exp(e - cs_s) dt_s, e = cs at
// the last row of the s tile (both exponents <= 0): the rows of x are scaled by v once
// per block (into the C tile's space once C S^T is done) and each tile's A fragment needs
// two exponentials instead of eight; the diagonal tiles keep the elementwise build.
// HDR (`_dx`, VAR 5; with DS): cs log2(e) and dt come from the `ssdl_hdr` header, staged
// with C and S into the s_c2 | s_dt slots (no scan on warp 0); exp(cs) = exp2(c2).
// BAL (`_dxb`, VAR 6; Q 128 with DS): the triangular M X balanced over the warps: warp w
// takes slabs w % 4 and 7 - w % 4 (1 + w % 4 and 8 - w % 4 tiles of M X: 9 each) and the
// n8 column tiles w / 4 + 2 s of them (two warps per slab pair), instead of slab w alone
// (warp 7: 8 tiles, warp 0: one); C S^T of both slabs first, then x is scaled (DS), then
// M X of both.
template <typename T, int Q, bool SB, bool ONE = false, int NC = 0, int PBC = 0, bool DS = false, bool HDR = false,
          bool BAL = false>
__device__ void ssdl_out_k(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    using F = SsdmFrag<T>;
    constexpr int es = sizeof(T), EPV = 16 / es, KS = F::KS, QT = Q / 16;
    static_assert(!BAL || (Q == 128 && DS), "BAL: Q 128 with DS");
    constexpr int NSL = BAL ? 2 : QT > SSDC_WARPS ? QT / SSDC_WARPS : 1;  // slabs per warp
    constexpr int YCG = BAL ? 2 : QT < SSDC_WARPS ? SSDC_WARPS / QT : 1;  // warps per slab
    constexpr int YJ = 8 / YCG;                                // n8 tiles per warp (PB <= 64)
    const int N = NC ? NC : p.dstate, P = p.headdim, H = p.nheads, L = p.seqlen, PB = PBC ? PBC : p.qb,
              K = p.nchunks;
    const SsdlLayout lay = ssdl_layout(es, Q, PB, N, ONE ? 3 : 1);
    static_assert(!DS || (sizeof(T) == 2 && !ONE), "DS: the bf16 four-kernel outputs only");
    static_assert(!HDR || DS, "HDR: with DS only");
    const int ldN = lay.ldN, ldP = lay.ldP;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
#ifndef MAMBA_EMU
    if constexpr (NC != 0) __builtin_assume(tid < SSDC_THREADS);  // folds the tile bounds tests
#endif
    const int ptiles = P / PB;
    int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j = blockIdx.y, i = blockIdx.z;
    unsigned* flags = reinterpret_cast<unsigned*>(const_cast<int*>(p.seq_idx));
    const int nrows = ptiles * H * p.batch;
    if constexpr (ONE) {
        int* s_tk = reinterpret_cast<int*>(smem_raw) + 5 * Q + 2;
        if (tid == 0) {
            const unsigned tk = atomicAdd(flags, 1u);
            if (tk == (unsigned)(nrows * K) - 1u) atomicExch(flags, 0u);
            *s_tk = (int)tk;
        }
        __syncthreads();
        const int tk = *s_tk;
        c = tk / nrows;
        const int rem = tk - c * nrows;
        pt = rem % ptiles;
        j = (rem / ptiles) % H;
        i = rem / (ptiles * H);
        __syncthreads();
    }
    const int q0 = pt * PB, row = (i * H + j) * ptiles + pt;
    const int k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;
    const double* s_cs = reinterpret_cast<const double*>(smem_raw);
    const float* s_ecs = reinterpret_cast<const float*>(s_cs + Q);
    const float* s_dt = s_ecs + 2 * Q;
    T* bx = reinterpret_cast<T*>(smem_raw + lay.o_x);
    T* bc = reinterpret_cast<T*>(smem_raw + lay.o_c);
    T* ss = reinterpret_cast<T*>(smem_raw + lay.o_s);
    const T* x = static_cast<const T*>(p.x);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const int t0 = c * Q, tn = min(Q, L - t0), vx = PB / EPV, vn = N / EPV;
    // DS: x goes in a second copy group, waited for only after C S^T (which needs C and S).
    if constexpr (!DS)
        ssdl_stage(bx, ldP, x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0, p.x_st, Q, L - t0, PB);
    ssdl_stage(bc, ldN, Cp + i * p.C_sb + (long long)t0 * p.C_st + (long long)k * N, p.C_st, Q, L - t0, N);
    if constexpr (ONE) {
        T* bb = reinterpret_cast<T*>(smem_raw + lay.o_b);
        const T* Bp = static_cast<const T*>(p.B);
        ssdl_stage(bb, ldN, Bp + i * p.B_sb + (long long)t0 * p.B_st + (long long)k * N, p.B_st, Q, L - t0, N);
    } else {
        // The incoming state (b, h, K, p, N) in the operand type (SB: bf16 storage).
        const T* sin = reinterpret_cast<const T*>(p.chunk_states) + ((head * K + c) * P + q0) * (size_t)N;
        ssdl_stage(ss, ldN, sin, N, PB, PB, N);
    }
    constexpr bool CS2 = es == 2 && !ONE;
    if constexpr (HDR)
        ssdl_stage_f(reinterpret_cast<float*>(smem_raw) + 3 * Q, ssdl_hdr_base(p) + (head * K + c) * 2 * Q, 2 * Q);
    ssdc_commit();
    if constexpr (DS) {
        ssdl_stage(bx, ldP, x + i * p.x_sb + (long long)t0 * p.x_st + (long long)j * P + q0, p.x_st, Q, L - t0, PB);
        ssdc_commit();
    }
    if constexpr (!HDR)
        if (warp == 0) ssdl_scan<T, Q, CS2>(p, smem_raw, i, j, c, lane);
    ssdc_wait<DS ? 1 : 0>();
    __syncthreads();
    if constexpr (ONE) {
        T* bb = reinterpret_cast<T*>(smem_raw + lay.o_b);
        const float* s_w = s_ecs + Q;
        const float* s_misc = s_ecs + 3 * Q;
        if constexpr (es == 2) {
            // B rows scaled by w in place (x stays as is for M X and D x).
            for (int v = tid; v < Q * vn; v += SSDC_THREADS) {
                const int t = v / vn, e = (v - t * vn) * EPV;
                ssdl_scale16(bb + t * ldN + e, s_w[t]);
            }
            __syncthreads();
        }
        const int prt = PB / 16, ncg = SSDC_WARPS / prt;
        const int rt = warp % prt, cg = warp / prt;
        const int n8 = N / 8;
        float acc[SSDM_SJ][4];
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[s][e] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < Q; kk += KS) {
            if constexpr (es == 2) {
                const int r = lane & 7, mi = lane >> 3;
                unsigned a[4];
                ssdl_ldm<true>(a, bx + (kk + r + 8 * (mi >> 1)) * ldP + rt * 16 + 8 * (mi & 1));
#pragma unroll
                for (int s = 0; s < SSDM_SJ; s += 2) {
                    const int ja = cg + ncg * s, jb = cg + ncg * (s + 1);
                    if (ja < n8) {
                        const int jt = (mi >> 1) && jb < n8 ? jb : ja;
                        unsigned b4[4];
                        ssdl_ldm<true>(b4, bb + (kk + r + 8 * (mi & 1)) * ldN + jt * 8);
                        const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                        ssdl_mma<T>(acc[s], a, b0);
                        if (jb < n8) ssdl_mma<T>(acc[s + 1], a, b1);
                    }
                }
            } else {
                typename F::A a;
                F::a_col(a, bx + kk * ldP + rt * 16, ldP, s_w + kk, g, c4);
#pragma unroll
                for (int s = 0; s < SSDM_SJ; ++s) {
                    const int jn = cg + ncg * s;
                    if (jn < n8) {
                        typename F::B bf;
                        F::b_kmaj(bf, bb + kk * ldN + jn * 8, ldN, g, c4);
                        ssdl_mma<T>(acc[s], a, bf);
                    }
                }
            }
        }
        // The chain: S_in from chunk c-1 (or the initial state), S_out on.
        if (c > 0) {
            if (tid == 0) {
                const unsigned* f = flags + 1 + (size_t)(c - 1) * nrows + row;
                while (ld_acquire_u32(f) != (unsigned)p.mode) {
                }
                __threadfence();
            }
            __syncthreads();
        }
        float* ring = ssdl_cb_base(p) + (size_t)p.batch * p.ngroups * K * Q * Q;
        const float* rin = ring + ((size_t)row * 2 + (c & 1)) * PB * N;
        float* rout = ring + ((size_t)row * 2 + ((c + 1) & 1)) * PB * N;
        const float dec = s_misc[0];
#pragma unroll
        for (int s = 0; s < SSDM_SJ; ++s) {
            const int jn = cg + ncg * s;
            if (jn < n8) {
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int q = rt * 16 + g + h2 * 8, n = jn * 8 + 2 * c4;
                    float2 si = make_float2(0.f, 0.f);
                    if (c > 0) si = __ldcg(reinterpret_cast<const float2*>(rin + (size_t)q * N + n));
                    else if (p.init) si = *reinterpret_cast<const float2*>(p.init + (head * P + q0 + q) * (size_t)N + n);
                    ssdm_st2<T>(ss + q * ldN + n, si.x, si.y);
                    const float2 so = make_float2(fmaf(dec, si.x, acc[s][2 * h2]), fmaf(dec, si.y, acc[s][2 * h2 + 1]));
                    if (c + 1 < K)
                        *reinterpret_cast<float2*>(rout + (size_t)q * N + n) = so;
                    else if (p.final_states)
                        *reinterpret_cast<float2*>(p.final_states + (head * P + q0 + q) * (size_t)N + n) = so;
                }
            }
        }
        __threadfence();
        __syncthreads();  // ss is complete; the ring slot is out
        if (c + 1 < K && tid == 0) st_release_u32(flags + 1 + (size_t)c * nrows + row, (unsigned)p.mode);
    }
    const float* cbm = ssdl_cb_base(p) + (((size_t)i * p.ngroups + k) * K + c) * (size_t)Q * Q;
    const int py8 = PB / 8;
    float yacc[NSL][YJ][4];
    // BAL: two phases (C S^T of every slab of the warp; x scaled; M X of every slab),
    // otherwise one (C S^T and M X per slab; DS: x scaled in between).
    constexpr int NPH = BAL ? 2 : 1;
    const float* s_c2 = s_ecs + Q;  // CS2: cs * log2(e)
    // DS: x rows scaled by v_s = exp(e - cs_s) dt_s (e = cs at the s tile's last row)
    // into the C tile's space (C is no longer read once every warp is past C S^T).
    T* bxs = bc;
#pragma unroll
    for (int ph = 0; ph < NPH; ++ph) {
    auto ds_scale = [&]() {
        if constexpr (DS) {
            ssdc_wait<0>();  // x
            __syncthreads();
            for (int v = tid; v < Q * vx; v += SSDC_THREADS) {
                const int t = v / vx, e = (v - t * vx) * EPV;
                ssdl_scale16_to(bxs + t * ldP + e, bx + t * ldP + e, exp2f(s_c2[t | 15] - s_c2[t]) * s_dt[t]);
            }
            __syncthreads();
        }
    };
    if constexpr (BAL)
        if (ph == 1) ds_scale();
#pragma unroll
    for (int u = 0; u < NSL; ++u) {
        const int ti = BAL ? (u == 0 ? warp % 4 : 7 - warp % 4) : NSL == 1 ? warp % QT : (u == 0 ? warp : QT - 1 - warp);
        const int ycg = BAL ? warp / 4 : NSL == 1 ? warp / QT : 0;
        const int tr0 = ti * 16 + g, tr1 = tr0 + 8;
        if (!BAL || ph == 0) {
#pragma unroll
        for (int s = 0; s < YJ; ++s)
#pragma unroll
            for (int e = 0; e < 4; ++e) yacc[u][s][e] = 0.f;
        // C S^T over N.
#pragma unroll(NC ? 8 : 1)
        for (int kk = 0; kk < N; kk += KS) {
            if constexpr (es == 2) {
                const int r = lane & 7, mi = lane >> 3;
                unsigned a[4];
                ssdl_ldm<false>(a, bc + (ti * 16 + r + 8 * (mi & 1)) * ldN + kk + 8 * (mi >> 1));
#pragma unroll
                for (int s = 0; s < YJ; s += 2) {
                    const int ja = ycg + YCG * s, jb = ycg + YCG * (s + 1);
                    if (ja < py8) {
                        // B(k = n, col = q) = S[q][n] (n-major).
                        const int jt = (mi >> 1) && jb < py8 ? jb : ja;
                        unsigned b4[4];
                        ssdl_ldm<false>(b4, ss + (jt * 8 + r) * ldN + kk + 8 * (mi & 1));
                        const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                        ssdl_mma<T>(yacc[u][s], a, b0);
                        if (jb < py8) ssdl_mma<T>(yacc[u][s + 1], a, b1);
                    }
                }
            } else {
                typename F::A a;
                F::a_row(a, bc + ti * 16 * ldN + kk, ldN, g, c4);
#pragma unroll
                for (int s = 0; s < YJ; ++s) {
                    const int jq = ycg + YCG * s;
                    if (jq < py8) {
                        typename F::B bf;
                        F::b_nmaj(bf, ss + jq * 8 * ldN + kk, ldN, g, c4);
                        ssdl_mma<T>(yacc[u][s], a, bf);
                    }
                }
            }
        }
        {
            const float e0 = HDR ? exp2f(s_c2[tr0]) : s_ecs[tr0], e1 = HDR ? exp2f(s_c2[tr1]) : s_ecs[tr1];
#pragma unroll
            for (int s = 0; s < YJ; ++s) {
                yacc[u][s][0] *= e0;
                yacc[u][s][1] *= e0;
                yacc[u][s][2] *= e1;
                yacc[u][s][3] *= e1;
            }
        }
        }
        if (BAL && ph == 0) continue;
        if constexpr (DS && !BAL) {
            static_assert(NSL == 1, "DS: one slab per warp");
            ds_scale();
        }
        // + M X, M[t][s] = CB[t][s] exp(cs_t - cs_s) dt_s for s <= t.
        const double cs0 = s_cs[tr0], cs1 = s_cs[tr1];
        const float c20 = CS2 ? s_c2[tr0] : 0.f, c21 = CS2 ? s_c2[tr1] : 0.f;
        auto mv = [&](int t, double ct, int s2, float2 v, float (&o)[2]) {
            if constexpr (CS2) {
                const float ct2 = t == tr0 ? c20 : c21;
                const float2 c2 = *reinterpret_cast<const float2*>(s_c2 + s2);
                const float2 d2 = *reinterpret_cast<const float2*>(s_dt + s2);
                o[0] = s2 <= t ? v.x * exp2f(ct2 - c2.x) * d2.x : 0.f;
                o[1] = s2 + 1 <= t ? v.y * exp2f(ct2 - c2.y) * d2.y : 0.f;
            } else {
                o[0] = s2 <= t ? v.x * expf((float)(ct - s_cs[s2])) * s_dt[s2] : 0.f;
                o[1] = s2 + 1 <= t ? v.y * expf((float)(ct - s_cs[s2 + 1])) * s_dt[s2 + 1] : 0.f;
            }
        };
        // CB values of a tile for this lane: (tr0, sa), (tr1, sa), (tr0, sa + 8), (tr1, sa + 8).
        auto ldcb = [&](int kq, float2(&o)[4]) {
            const int sa = kq * 16 + 2 * c4;
            o[0] = *reinterpret_cast<const float2*>(cbm + (size_t)tr0 * Q + sa);
            o[1] = *reinterpret_cast<const float2*>(cbm + (size_t)tr1 * Q + sa);
            o[2] = *reinterpret_cast<const float2*>(cbm + (size_t)tr0 * Q + sa + 8);
            o[3] = *reinterpret_cast<const float2*>(cbm + (size_t)tr1 * Q + sa + 8);
        };
        [[maybe_unused]] float2 pf[4];  // DS: the next tile's CB values, loaded one tile ahead
        if constexpr (DS) ldcb(0, pf);
        for (int kq = 0; kq <= ti; ++kq) {
            if constexpr (es == 2) {
                const int sa = kq * 16 + 2 * c4, sb2 = sa + 8;
                unsigned a[4];
                const T* xb = bx;
                if (DS && kq < ti) {
                    // Off the diagonal (s < t always): A = diag(u) CB, B = diag(v) x.
                    const float2 v00 = pf[0], v10 = pf[1], v01 = pf[2], v11 = pf[3];
                    ldcb(kq + 1, pf);
                    const float ce = s_c2[kq * 16 + 15];
                    const float u0 = exp2f(c20 - ce), u1 = exp2f(c21 - ce);
                    a[0] = ssdl_pack<T>(v00.x * u0, v00.y * u0);
                    a[1] = ssdl_pack<T>(v10.x * u1, v10.y * u1);
                    a[2] = ssdl_pack<T>(v01.x * u0, v01.y * u0);
                    a[3] = ssdl_pack<T>(v11.x * u1, v11.y * u1);
                    xb = bxs;
                } else if (DS) {
                    // The diagonal tile (the last one): values from the prefetch.
                    float m00[2], m10[2], m01[2], m11[2];
                    mv(tr0, cs0, sa, pf[0], m00);
                    mv(tr1, cs1, sa, pf[1], m10);
                    mv(tr0, cs0, sb2, pf[2], m01);
                    mv(tr1, cs1, sb2, pf[3], m11);
                    a[0] = ssdl_pack<T>(m00[0], m00[1]);
                    a[1] = ssdl_pack<T>(m10[0], m10[1]);
                    a[2] = ssdl_pack<T>(m01[0], m01[1]);
                    a[3] = ssdl_pack<T>(m11[0], m11[1]);
                } else {
                    float m00[2], m10[2], m01[2], m11[2];
                    mv(tr0, cs0, sa, *reinterpret_cast<const float2*>(cbm + (size_t)tr0 * Q + sa), m00);
                    mv(tr1, cs1, sa, *reinterpret_cast<const float2*>(cbm + (size_t)tr1 * Q + sa), m10);
                    mv(tr0, cs0, sb2, *reinterpret_cast<const float2*>(cbm + (size_t)tr0 * Q + sb2), m01);
                    mv(tr1, cs1, sb2, *reinterpret_cast<const float2*>(cbm + (size_t)tr1 * Q + sb2), m11);
                    a[0] = ssdl_pack<T>(m00[0], m00[1]);
                    a[1] = ssdl_pack<T>(m10[0], m10[1]);
                    a[2] = ssdl_pack<T>(m01[0], m01[1]);
                    a[3] = ssdl_pack<T>(m11[0], m11[1]);
                }
                const int r = lane & 7, mi = lane >> 3;
#pragma unroll
                for (int s = 0; s < YJ; s += 2) {
                    const int ja = ycg + YCG * s, jb = ycg + YCG * (s + 1);
                    if (ja < py8) {
                        // B(k = s, col = q) = x[s][q], k-major.
                        const int jt = (mi >> 1) && jb < py8 ? jb : ja;
                        unsigned b4[4];
                        ssdl_ldm<true>(b4, xb + (kq * 16 + r + 8 * (mi & 1)) * ldP + jt * 8);
                        const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                        ssdl_mma<T>(yacc[u][s], a, b0);
                        if (jb < py8) ssdl_mma<T>(yacc[u][s + 1], a, b1);
                    }
                }
            } else {
#pragma unroll
                for (int h8 = 0; h8 < 2; ++h8) {
                    // tf32 A (16 x 8): (g, c), (g+8, c), (g, c+4), (g+8, c+4).
                    const int sa = kq * 16 + h8 * 8 + c4, sb2 = sa + 4;
                    auto one = [&](int t, double ct, int s2) {
                        return s2 <= t ? cbm[(size_t)t * Q + s2] * expf((float)(ct - s_cs[s2])) * s_dt[s2] : 0.f;
                    };
                    float a[4] = {one(tr0, cs0, sa), one(tr1, cs1, sa), one(tr0, cs0, sb2), one(tr1, cs1, sb2)};
#pragma unroll
                    for (int s = 0; s < YJ; ++s) {
                        const int jq = ycg + YCG * s;
                        if (jq < py8) {
                            typename F::B bf;
                            F::b_kmaj(bf, bx + (kq * 16 + h8 * 8) * ldP + jq * 8, ldP, g, c4);
                            ssdl_mma<T>(yacc[u][s], a, bf);
                        }
                    }
                }
            }
        }
    }
    }
    __syncthreads();  // every warp is done reading x: Y (+ D x) replaces it in place
    const float dj = p.D && !p.d_per_channel ? p.D[j] : 0.f;
#pragma unroll
    for (int u = 0; u < NSL; ++u) {
        const int ti = BAL ? (u == 0 ? warp % 4 : 7 - warp % 4) : NSL == 1 ? warp % QT : (u == 0 ? warp : QT - 1 - warp);
        const int ycg = BAL ? warp / 4 : NSL == 1 ? warp / QT : 0;
#pragma unroll
        for (int s = 0; s < YJ; ++s) {
            const int jq = ycg + YCG * s;
            if (jq < py8) {
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int t = ti * 16 + g + h2 * 8, q = jq * 8 + 2 * c4;
                    T* r = bx + t * ldP + q;
                    float y0 = yacc[u][s][2 * h2], y1 = yacc[u][s][2 * h2 + 1];
                    if (p.D) {
                        y0 += (p.d_per_channel ? p.D[j * P + q0 + q] : dj) * ldf(r);
                        y1 += (p.d_per_channel ? p.D[j * P + q0 + q + 1] : dj) * ldf(r + 1);
                    }
                    ssdm_st2<T>(r, y0, y1);
                }
            }
        }
    }
    __syncthreads();
    for (int v = tid; v < tn * vx; v += SSDC_THREADS) {
        const int t = v / vx, e = (v - t * vx) * EPV;
        const long long tt = t0 + t;
        const long long col = (long long)j * P + q0 + e;
        const uint4 yv = *reinterpret_cast<const uint4*>(bx + t * ldP + e);
        if (zp) {
            uint4 zv = *reinterpret_cast<const uint4*>(zp + i * p.z_sb + tt * p.z_st + col);
            const T* yh = reinterpret_cast<const T*>(&yv);
            T* zh = reinterpret_cast<T*>(&zv);
#pragma unroll
            for (int u = 0; u < EPV; ++u) zh[u] = cvt<T>(ldf(yh + u) * silu_f(ldf(zh + u)));
            *reinterpret_cast<uint4*>(out + i * p.out_sb + tt * p.out_st + col) = zv;
        } else {
            *reinterpret_cast<uint4*>(out + i * p.out_sb + tt * p.out_st + col) = yv;
        }
    }
}

#define SSDL_INST(T, NAME, Q, SB, MINB)                                                                  \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cb_##NAME##_q##Q(                   \
        const __grid_constant__ SsdParams p) {                                                             \
        ssdl_cb_k<T, Q>(p, blockIdx.y);                                                                                \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssdl_states_##NAME##_q##Q(            \
        const __grid_constant__ SsdParams p) {                                                             \
        ssdl_states_k<T, Q, SB>(p);                                                                        \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssdl_statesf_##NAME##_q##Q(           \
        const __grid_constant__ SsdParams p) {                                                             \
        ssdl_states_k<T, Q, SB, true>(p);                                                                  \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssdl_out_##NAME##_q##Q(               \
        const __grid_constant__ SsdParams p) {                                                             \
        ssdl_out_k<T, Q, SB>(p);                                                                           \
    }                                                                                                      \
    extern "C" __global__ void __launch_bounds__(SSDC_THREADS, MINB) ssdl_one_##NAME##_q##Q(               \
        const __grid_constant__ SsdParams p) {                                                             \
        ssdl_out_k<T, Q, SB, true>(p);                                                                     \
    }
SSDL_INST(float, f32, 64, false, 1)
SSDL_INST(float, f32, 128, false, 1)
SSDL_INST(float, f32, 256, false, 1)
#if !defined(MAMBA_EMU) || defined(MAMBA_EMU_BF16)
SSDL_INST(bf16_t, bf16, 64, true, 2)
SSDL_INST(bf16_t, bf16, 128, true, 2)
SSDL_INST(bf16_t, bf16, 256, true, 1)
// The LM shape (N 128, PB 64, Q 128) with N and PB fixed at compile time: `_s` (states and
// outputs), `_d` (outputs with the diagonal-scaled M X off the diagonal tiles).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_states_bf16_q128_s(const __grid_constant__ SsdParams p) {
    ssdl_states_k<bf16_t, 128, true, false, 128, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_states_bf16_q128_m(const __grid_constant__ SsdParams p) {
    ssdl_states_mh<128, 128, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_statesf_bf16_q128_s(const __grid_constant__ SsdParams p) {
    ssdl_states_k<bf16_t, 128, true, true, 128, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_out_bf16_q128_s(const __grid_constant__ SsdParams p) {
    ssdl_out_k<bf16_t, 128, true, false, 128, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_out_bf16_q128_d(const __grid_constant__ SsdParams p) {
    ssdl_out_k<bf16_t, 128, true, false, 128, 64, true>(p);
}
// VAR 5: the headers from `ssdl_hdr_bf16_q128` (`_mx` states, `_dx` outputs).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS) ssdl_hdr_bf16_q128(const __grid_constant__ SsdParams p) {
    ssdl_hdr_k<bf16_t, 128>(p, blockIdx.y);
}
// `MAMBA_CUDA_SSDL_CBH=4`: the headers' launch of `=1` with the loads issued at once (and
// of `=6` / `=7`, the default where it applies: ops.rs `CBH_DEFAULT`).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS) ssdl_hdr3_bf16_q128(const __grid_constant__ SsdParams p) {
    ssdl_hdr_k<bf16_t, 128, true>(p, blockIdx.y);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_states_bf16_q128_mx(const __grid_constant__ SsdParams p) {
    ssdl_states_mh<128, 128, 64, true>(p);
}
// VAR 7 / 8: `_mx` with the combine folded in (the last block of each group).
// VAR 14: `_mx` with contiguous n8 column tiles per warp.
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_states_bf16_q128_mxk(const __grid_constant__ SsdParams p) {
    ssdl_states_mh<128, 128, 64, true, false, false, true>(p);
}
// VAR 11, 13: `_mx` with w applied to the A fragments (one barrier per head).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_states_bf16_q128_mw(const __grid_constant__ SsdParams p) {
    ssdl_states_mh<128, 128, 64, true, false, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_states_bf16_q128_mxc(const __grid_constant__ SsdParams p) {
    ssdl_states_mh<128, 128, 64, true, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_out_bf16_q128_dx(const __grid_constant__ SsdParams p) {
    ssdl_out_k<bf16_t, 128, true, false, 128, 64, true, true>(p);
}
// VAR 6: VAR 5 with the M X balanced over the warps (`_dxb`).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_out_bf16_q128_dxb(const __grid_constant__ SsdParams p) {
    ssdl_out_k<bf16_t, 128, true, false, 128, 64, true, true, true>(p);
}
// VAR 9: C B^T as the bf16 tile image (see ssdl_cbi_off).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cb_bf16_q128_i(const __grid_constant__ SsdParams p) {
    ssdl_cb_k<bf16_t, 128, true>(p, blockIdx.y);
}
// VAR 10: the C B^T image and the headers in one launch (`ssdl_cbh_bf16_q128_i`): grid (K,
// g + ceil(h / 8), b); blockIdx.y < g: C B^T of group blockIdx.y (as `ssdl_cb_bf16_q128_i`),
// else the headers of heads 8 (blockIdx.y - g) .. + 7 (as `ssdl_hdr_bf16_q128`). The C B^T
// grid alone (K g b blocks, 128 at the LM shape) does not fill the SMs.
// `ssdl_cbh3` (`MAMBA_CUDA_SSDL_CBH=3`): the same launch with the header blocks' loads
// issued at once (`ssdl_hdr_k` UNR); the same grid and shared memory.
template <typename T, bool UNR>
__device__ __forceinline__ void ssdl_cbh_k(const SsdParams& p) {
    if ((int)blockIdx.y < p.ngroups) {
        ssdl_cb_k<T, 128, true>(p, blockIdx.y);
    } else {
        ssdl_hdr_k<T, 128, UNR>(p, (int)blockIdx.y - p.ngroups);
    }
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cbh_bf16_q128_i(const __grid_constant__ SsdParams p) {
    ssdl_cbh_k<bf16_t, false>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cbh3_bf16_q128_i(const __grid_constant__ SsdParams p) {
    ssdl_cbh_k<bf16_t, true>(p);
}
#ifdef SSDL_HAVE_F16
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cbh_f16_q128_i(const __grid_constant__ SsdParams p) {
    ssdl_cbh_k<f16_t, false>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cbh3_f16_q128_i(const __grid_constant__ SsdParams p) {
    ssdl_cbh_k<f16_t, true>(p);
}
// `MAMBA_CUDA_SSDL_CBH=6` / `=7` in f16 (thirty-fifth session): the two launches of `=4`.
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cb_f16_q128_i(const __grid_constant__ SsdParams p) {
    ssdl_cb_k<f16_t, 128, true>(p, blockIdx.y);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS) ssdl_hdr3_f16_q128(const __grid_constant__ SsdParams p) {
    ssdl_hdr_k<f16_t, 128, true>(p, blockIdx.y);
}
#endif
#ifdef SSDL_HAVE_F16
// f16 (twenty-fifth session): the generic four-kernel form at Q 128 (where VAR 28's kernels do
// not apply: N != 128 or PB != 64), as bf16's; the fused forms are not built in f16.
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_cb_f16_q128(const __grid_constant__ SsdParams p) {
    ssdl_cb_k<f16_t, 128>(p, blockIdx.y);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_states_f16_q128(const __grid_constant__ SsdParams p) {
    ssdl_states_k<f16_t, 128, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_f16_q128(const __grid_constant__ SsdParams p) {
    ssdl_out_k<f16_t, 128, true>(p);
}
#endif

// VAR 9 (`ssdl_out_bf16_q128_h`): the outputs of HB heads of one group per block (grid
// ((p / PB) K, H / HB, b)), the heads walked in turn with the next head's header, S_in
// and x in flight (cp.async, two buffers) while this head computes:
// - C is staged once and each warp keeps its slab's A fragments (16 rows x N) in
//   registers for every head; the C B^T tile image (bf16, 18 KB) is staged once;
// - per head: x scaled by v_s = exp2(c2[s | 15] - c2_s) dt_s into its own buffer, C S^T
//   from the registers, then M X off the diagonal as u'_t sigma (CB diag(v) X): with
//   F = c2 at the slab's first row, sigma = exp2(F - c2 at the s tile's last row) <= 1
//   scales the tile's bf16 A fragment (bf16x2 multiplies), C S^T is scaled by exp2(F)
//   first and the sum by u'_t = exp2(c2_t - F) <= 1 after (every factor <= 1: none
//   overflows, and one that underflows bounds the product it belongs to); the diagonal
//   tile elementwise from the image and the unscaled x;
// - Y + D x (* silu(z)) goes out from the registers (4-byte stores): two barriers per head.
// Shared memory: image | scaled x | two buffers (header c2 | dt, S_in, x); C is staged
// in buffer 1 before head 1's copies.
// VB (`_hv`, VAR 11): no scaled copy of x: each lane scales its B fragments of x (pairs
// of consecutive s) by (v_s, v_s+1) in bf16x2 (4 exponentials per tile and lane), so one
// barrier per head and no scaled-x buffer (90 KB of shared memory).
// YS (`_hy`, VAR 15 and VAR 19-28, verified on the H200 in the seventh session): Y (+ D x) goes through a private 16-row
// region of each warp (after the buffers, 18 KB) and out in 16-byte row stores (whole
// 128-byte rows per 8 lanes) instead of 4-byte stores from the registers.
template <int Q, int NC, int PBC, bool VB = false, bool YS = false, typename T = bf16_t>
__device__ void ssdl_out_h(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int N = NC, PB = PBC, ldN = N + 8, ldP = PB + 8, QT = Q / 16, NTI = QT * (QT + 1) / 2, YJ = PB / 8;
    static_assert(QT == SSDC_WARPS && N % 16 == 0 && PB % 16 == 0, "one 16-row slab per warp");
    constexpr int O_XS = NTI * 512, O_BUF = O_XS + (VB ? 0 : Q * ldP * 2);
    constexpr int HD_B = 2 * Q * 4, S_B = PB * ldN * 2, BUF_B = HD_B + S_B + Q * ldP * 2;
    static_assert(Q * ldN * 2 <= BUF_B, "C is staged in buffer 1");
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
#ifndef MAMBA_EMU
    __builtin_assume(tid < SSDC_THREADS);
#endif
    const int ptiles = P / PB, HB = H / (int)gridDim.y;
    const int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j0 = blockIdx.y * HB, i = ssd_rev_i(p);
    const int q0 = pt * PB, k = j0 / (H / p.ngroups), t0 = c * Q, tn = min(Q, L - t0);
    const T* xrow = static_cast<const T*>(p.x) + i * p.x_sb + (long long)t0 * p.x_st + q0;
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    auto buf = [&](int u) { return smem_raw + O_BUF + u * BUF_B; };
    auto stage_head = [&](int hh, int u) {
        const size_t head = (size_t)i * H + j0 + hh;
        unsigned char* b = buf(u);
        ssdl_stage_f(reinterpret_cast<float*>(b), ssdl_hdr_base(p) + (head * K + c) * 2 * Q, 2 * Q);
        ssdl_stage(reinterpret_cast<T*>(b + HD_B), ldN,
                   reinterpret_cast<const T*>(p.chunk_states) + ((head * K + c) * P + q0) * (size_t)N, N, PB, PB, N);
        ssdl_stage(reinterpret_cast<T*>(b + HD_B + S_B), ldP, xrow + (long long)(j0 + hh) * P, p.x_st, Q, L - t0, PB);
    };
    ssdl_stage(reinterpret_cast<T*>(buf(1)), ldN,
               static_cast<const T*>(p.C) + i * p.C_sb + (long long)t0 * p.C_st + (long long)k * N, p.C_st, Q, L - t0, N);
    ssdl_stage_f(reinterpret_cast<float*>(smem_raw),
                 ssdl_cb_base(p) + (((size_t)i * p.ngroups + k) * K + c) * (size_t)Q * Q, NTI * 128);
    stage_head(0, 0);
    ssdc_commit();
    ssdc_wait<0>();
    __syncthreads();
    const int r = lane & 7, mi = lane >> 3, ti = warp;
    unsigned cf[N / 16][4];
    {
        const T* bc = reinterpret_cast<const T*>(buf(1));
#pragma unroll
        for (int kk = 0; kk < N / 16; ++kk)
            ssdl_ldm<false>(cf[kk], bc + (ti * 16 + r + 8 * (mi & 1)) * ldN + kk * 16 + 8 * (mi >> 1));
    }
    T* xs = reinterpret_cast<T*>(smem_raw + O_XS);
    const T* cbi = reinterpret_cast<const T*>(smem_raw);
    const int tr0 = ti * 16 + g, tr1 = tr0 + 8;
    for (int hh = 0; hh < HB; ++hh) {
        // D of this head, requested here through the read-only path: read at the epilogue,
        // after head hh - 1's stores to `out` (which might alias it), every warp waited the
        // full load latency once per head (thirteenth session).
        const float dj = p.D && !p.d_per_channel ? __ldg(p.D + j0 + hh) : 0.f;
        // Every warp is past head hh - 1 (and, for hh 0, past its C fragments): the
        // other buffer and the scaled x are free.
        __syncthreads();
        if (hh + 1 < HB) {
            stage_head(hh + 1, (hh + 1) & 1);
            ssdc_commit();
        }
        const unsigned char* b = buf(hh & 1);
        const float* s_c2 = reinterpret_cast<const float*>(b);
        const float* s_dt = s_c2 + Q;
        const T* ss = reinterpret_cast<const T*>(b + HD_B);
        const T* bx = reinterpret_cast<const T*>(b + HD_B + S_B);
        if constexpr (!VB)
        for (int v = tid; v < Q * (PB / 8); v += SSDC_THREADS) {
            const int t = v / (PB / 8), e = (v - t * (PB / 8)) * 8;
            ssdl_scale16_to(xs + t * ldP + e, bx + t * ldP + e, exp2f(s_c2[t | 15] - s_c2[t]) * s_dt[t]);
        }
        float acc[YJ][4];
#pragma unroll
        for (int s = 0; s < YJ; ++s)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[s][e] = 0.f;
        // C S^T: B(k = n, col = q) = S[q][n] (n-major).
#pragma unroll
        for (int kk = 0; kk < N / 16; ++kk) {
#pragma unroll
            for (int s = 0; s < YJ; s += 2) {
                unsigned b4[4];
                ssdl_ldm<false>(b4, ss + ((s + (mi >> 1)) * 8 + r) * ldN + kk * 16 + 8 * (mi & 1));
                const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                Ssdl16<T>::mma(acc[s], cf[kk], b0);
                Ssdl16<T>::mma(acc[s + 1], cf[kk], b1);
            }
        }
        const float F = s_c2[ti * 16];
        {
            const float f = exp2f(F);
#pragma unroll
            for (int s = 0; s < YJ; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[s][e] *= f;
        }
        if constexpr (!VB) __syncthreads();  // the scaled x is complete
        for (int kq = 0; kq < ti; ++kq) {
            const float ce = s_c2[kq * 16 + 15], sg = exp2f(F - ce);
            [[maybe_unused]] unsigned vlo = 0, vhi = 0;
            if constexpr (VB) {
                // v_s of this lane's B rows: s = kq 16 + 2 c4 (+1), + 8.
                const int s0 = kq * 16 + 2 * c4;
                const float2 ca = *reinterpret_cast<const float2*>(s_c2 + s0);
                const float2 cb2 = *reinterpret_cast<const float2*>(s_c2 + s0 + 8);
                const float2 da = *reinterpret_cast<const float2*>(s_dt + s0);
                const float2 db = *reinterpret_cast<const float2*>(s_dt + s0 + 8);
                vlo = Ssdl16<T>::pack(exp2f(ce - ca.x) * da.x, exp2f(ce - ca.y) * da.y);
                vhi = Ssdl16<T>::pack(exp2f(ce - cb2.x) * db.x, exp2f(ce - cb2.y) * db.y);
            }
            const unsigned sg2 = Ssdl16<T>::pack(sg, sg);
            const int rr = r + 8 * (mi & 1);
            unsigned a[4];
            ssdl_ldm<false>(a, cbi + (ti * (ti + 1) / 2 + kq) * 256 + rr * 16 + (((mi >> 1) ^ ((rr >> 2) & 1)) << 3));
#pragma unroll
            for (int e = 0; e < 4; ++e) a[e] = Ssdl16<T>::mul2(a[e], sg2);
#pragma unroll
            for (int s = 0; s < YJ; s += 2) {
                unsigned b4[4];
                ssdl_ldm<true>(b4, (VB ? bx : xs) + (kq * 16 + r + 8 * (mi & 1)) * ldP + (s + (mi >> 1)) * 8);
                if constexpr (VB) {
                    b4[0] = Ssdl16<T>::mul2(b4[0], vlo);
                    b4[1] = Ssdl16<T>::mul2(b4[1], vhi);
                    b4[2] = Ssdl16<T>::mul2(b4[2], vlo);
                    b4[3] = Ssdl16<T>::mul2(b4[3], vhi);
                }
                const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                Ssdl16<T>::mma(acc[s], a, b0);
                Ssdl16<T>::mma(acc[s + 1], a, b1);
            }
        }
        {
            const float u0 = exp2f(s_c2[tr0] - F), u1 = exp2f(s_c2[tr1] - F);
#pragma unroll
            for (int s = 0; s < YJ; ++s) {
                acc[s][0] *= u0;
                acc[s][1] *= u0;
                acc[s][2] *= u1;
                acc[s][3] *= u1;
            }
        }
        {
            // The diagonal tile: M[t][s] = CB[t][s] exp2(c2_t - c2_s) dt_s for s <= t.
            const T* tile = cbi + (ti * (ti + 1) / 2 + ti) * 256;
            const float c20 = s_c2[tr0], c21 = s_c2[tr1];
            unsigned a[4];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int rl = g + 8 * (e & 1), cl = 2 * c4 + 8 * (e >> 1), s2 = ti * 16 + cl;
                const unsigned v = *reinterpret_cast<const unsigned*>(tile + ssdl_cbi_off(rl, cl));
                const T* vh = reinterpret_cast<const T*>(&v);
                const float ct = e & 1 ? c21 : c20;
                const float2 cc = *reinterpret_cast<const float2*>(s_c2 + s2);
                const float2 dd = *reinterpret_cast<const float2*>(s_dt + s2);
                const float m0 = cl <= rl ? ldf(vh) * exp2f(ct - cc.x) * dd.x : 0.f;
                const float m1 = cl + 1 <= rl ? ldf(vh + 1) * exp2f(ct - cc.y) * dd.y : 0.f;
                a[e] = Ssdl16<T>::pack(m0, m1);
            }
#pragma unroll
            for (int s = 0; s < YJ; s += 2) {
                unsigned b4[4];
                ssdl_ldm<true>(b4, bx + (ti * 16 + r + 8 * (mi & 1)) * ldP + (s + (mi >> 1)) * 8);
                const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                Ssdl16<T>::mma(acc[s], a, b0);
                Ssdl16<T>::mma(acc[s + 1], a, b1);
            }
        }
        // Y + D x (* silu(z)) straight from the registers.
        const int j = j0 + hh;
        if constexpr (YS) {
            T* yw = reinterpret_cast<T*>(smem_raw + O_BUF + 2 * BUF_B) + warp * 16 * ldP;
            // x two values per 4-byte load; a per-head D (or none) and a per-channel D as two
            // loops (twenty-seventh session: a select of the two per element made every
            // element a global load).
            auto epi = [&](auto dq) {
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const int rl = g + 8 * h2, t = ti * 16 + rl;
#pragma unroll
                    for (int s = 0; s < YJ; ++s) {
                        const int q = s * 8 + 2 * c4;
                        float y0 = acc[s][2 * h2], y1 = acc[s][2 * h2 + 1];
                        if (p.D) {
                            const unsigned xv = *reinterpret_cast<const unsigned*>(bx + t * ldP + q);
                            y0 = fmaf(dq(q), Ssdl16<T>::lo(xv), y0);
                            y1 = fmaf(dq(q + 1), Ssdl16<T>::hi(xv), y1);
                        }
                        *reinterpret_cast<unsigned*>(yw + rl * ldP + q) = Ssdl16<T>::pack(y0, y1);
                    }
                }
            };
            if constexpr (NC == 128) {
                // N 128 (VAR 28 / 60, not the default on sm_90a): the select per element kept,
                // the loops above spill 4 bytes there and measured 2-3 us slower per call.
                epi([&](int q) { return p.d_per_channel ? p.D[j * P + q0 + q] : dj; });
            } else if (p.D && p.d_per_channel) {
                const float* dh = p.D + (size_t)j * P + q0;
                epi([&](int q) { return __ldg(dh + q); });
            } else {
                epi([&](int) { return dj; });
            }
            __syncwarp();
#pragma unroll
            for (int it = 0; it < 16 * (PB / 8) / 32; ++it) {
                const int v = it * 32 + lane, rl = v / (PB / 8), e = (v - rl * (PB / 8)) * 8, t = ti * 16 + rl;
                if (t < tn) {
                    const long long tt = t0 + t, col = (long long)j * P + q0 + e;
                    const uint4 yv = *reinterpret_cast<const uint4*>(yw + rl * ldP + e);
                    if (zp) {
                        uint4 zv = *reinterpret_cast<const uint4*>(zp + i * p.z_sb + tt * p.z_st + col);
                        const T* yh = reinterpret_cast<const T*>(&yv);
                        T* zh = reinterpret_cast<T*>(&zv);
#pragma unroll
                        for (int u = 0; u < 8; ++u) zh[u] = cvt<T>(ldf(yh + u) * silu_f(ldf(zh + u)));
                        *reinterpret_cast<uint4*>(out + i * p.out_sb + tt * p.out_st + col) = zv;
                    } else {
                        *reinterpret_cast<uint4*>(out + i * p.out_sb + tt * p.out_st + col) = yv;
                    }
                }
            }
        } else
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
            const int t = ti * 16 + g + 8 * h2;
            if (t < tn) {
                const long long tt = t0 + t;
#pragma unroll
                for (int s = 0; s < YJ; ++s) {
                    const int q = s * 8 + 2 * c4;
                    const long long col = (long long)j * P + q0 + q;
                    float y0 = acc[s][2 * h2], y1 = acc[s][2 * h2 + 1];
                    if (p.D) {
                        const T* xr = bx + t * ldP + q;
                        y0 += (p.d_per_channel ? p.D[j * P + q0 + q] : dj) * ldf(xr);
                        y1 += (p.d_per_channel ? p.D[j * P + q0 + q + 1] : dj) * ldf(xr + 1);
                    }
                    if (zp) {
                        const T* zr = zp + i * p.z_sb + tt * p.z_st + col;
                        y0 *= silu_f(ldf(zr));
                        y1 *= silu_f(ldf(zr + 1));
                    }
                    *reinterpret_cast<unsigned*>(out + i * p.out_sb + tt * p.out_st + col) = Ssdl16<T>::pack(y0, y1);
                }
            }
        }
        if (hh + 1 < HB) ssdc_wait<0>();  // head hh + 1 (published by the next barrier)
    }
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_bf16_q128_h(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 128, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_bf16_q128_hv(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 128, 64, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_bf16_q128_hy(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 128, 64, true, true>(p);
}
// VAR 28 at N 64 / 32 (twenty-fifth session; the generic kernels before).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_bf16_q128_n64_hy(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 64, 64, true, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_bf16_q128_n32_hy(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 32, 64, true, true>(p);
}
#ifdef SSDL_HAVE_F16
// f16 storage at VAR 28 (twenty-fifth session): `_hy` with f16 operands (the recurrent
// kernels took the f16 LM shape before: 2.77 ms against 0.42 for bf16).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_f16_q128_hy(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 128, 64, true, true, f16_t>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_f16_q128_n64_hy(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 64, 64, true, true, f16_t>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_out_f16_q128_n32_hy(const __grid_constant__ SsdParams p) {
    ssdl_out_h<128, 32, 64, true, true, f16_t>(p);
}
#endif

// VAR 16-19 (`ssdl_statesw_bf16_q128_p*n*`, seventh session): the chunk states and the
// state pass in one kernel, no combine launch. Each block owns PB rows (p) x NB columns
// (N) of one (batch, head)'s state and walks the chunks in order: per chunk it stores
// the incoming state S_in(c) (bf16, where the outputs kernel reads it), scales it by the
// chunk decay and adds X_c^T diag(w) B_c on the tensor cores straight into the same f32
// accumulators (S_in(c + 1)); the next chunk's header, x and B are in flight (cp.async,
// two buffers) while one chunk computes. At the end S is the final state (f32). The
// local states never go through global memory (the combine's read + write of every
// chunk state, 336 MB at the LM shape, and the states kernel's local-state write are
// replaced by one S_in write). Grid ((p / PB) (N / NB), h, b); per buffer the header
// (c2 | dt, 2 Q floats), x (Q x PB) and B (Q x NB); warp (rt = warp % (PB / 16), cg)
// owns 16 rows x NB / (8 / (PB / 16)) contiguous columns. WA (VAR 20, 21): x is not
// scaled in shared memory: each lane scales its A fragments of x^T by (w_t, w_t+1) in
// bf16x2 (as `_mw`), so one barrier per chunk.
template <int PB, int NB, bool WA = false>
__device__ void ssdl_states_w(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    using T = bf16_t;
    constexpr int Q = 128, KS = 16, ldP = PB + 8, ldB = NB + 8;
    constexpr int prt = PB / 16, ncg = SSDC_WARPS / prt, WN = NB / ncg, NW = WN / 8;
    static_assert(prt * ncg == SSDC_WARPS && WN % 16 == 0, "warp tiles");
    constexpr int HD_B = 2 * Q * 4, X_B = Q * ldP * 2, BUF_B = HD_B + X_B + Q * ldB * 2;
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks, N = p.dstate;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
#ifndef MAMBA_EMU
    __builtin_assume(tid < SSDC_THREADS);
#endif
    const int nsp = N / NB, pt = (int)blockIdx.x / nsp, ns = (int)blockIdx.x - pt * nsp;
    const int q0 = pt * PB, n0 = ns * NB, j = blockIdx.y, i = blockIdx.z, k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;
    const T* xrow = static_cast<const T*>(p.x) + i * p.x_sb + (long long)j * P + q0;
    const T* brow = static_cast<const T*>(p.B) + i * p.B_sb + (long long)k * N + n0;
    const float* hdr = ssdl_hdr_base(p) + head * K * 2 * Q;
    auto buf = [&](int u) { return smem_raw + u * BUF_B; };
    auto stage = [&](int c, int u) {
        if (c < K) {
            const int t0 = c * Q;
            unsigned char* b = buf(u);
            ssdl_stage_f(reinterpret_cast<float*>(b), hdr + (size_t)c * 2 * Q, 2 * Q);
            ssdl_stage(reinterpret_cast<T*>(b + HD_B), ldP, xrow + (long long)t0 * p.x_st, p.x_st, Q, L - t0, PB);
            ssdl_stage(reinterpret_cast<T*>(b + HD_B + X_B), ldB, brow + (long long)t0 * p.B_st, p.B_st, Q, L - t0, NB);
        }
        ssdc_commit();
    };
    const int rt = warp % prt, cg = warp / prt;
    // S: rows q0 + rt 16 + g (+ 8), columns n0 + cg WN + 8 s + 2 c4 (+ 1).
    float S[NW][4];
#pragma unroll
    for (int s = 0; s < NW; ++s)
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
            const size_t e = (head * P + q0 + rt * 16 + g + 8 * h2) * (size_t)N + n0 + cg * WN + s * 8 + 2 * c4;
            float2 v = make_float2(0.f, 0.f);
            if (p.init) v = *reinterpret_cast<const float2*>(p.init + e);
            S[s][2 * h2] = v.x;
            S[s][2 * h2 + 1] = v.y;
        }
    stage(0, 0);
    unsigned* cs = reinterpret_cast<unsigned*>(p.chunk_states);
    for (int c = 0; c < K; ++c) {
        const int u = c & 1;
        ssdc_wait<0>();  // chunk c
        __syncthreads();  // ... visible to all; every warp is past chunk c - 1 (buffer u ^ 1 free)
        stage(c + 1, u ^ 1);
        const float* s_hd = reinterpret_cast<const float*>(buf(u));
        T* bx = reinterpret_cast<T*>(buf(u) + HD_B);
        const T* bb = reinterpret_cast<const T*>(buf(u) + HD_B + X_B);
        // x scaled by w_t = exp2(c2_end - c2_t) dt_t in place (rows past L: x and dt 0).
        const float c2e = s_hd[Q - 1];
        if constexpr (!WA)
            for (int v = tid; v < Q * (PB / 8); v += SSDC_THREADS) {
                const int t = v / (PB / 8), e = (v - t * (PB / 8)) * 8;
                ssdl_scale16(bx + t * ldP + e, exp2f(c2e - s_hd[t]) * s_hd[Q + t]);
            }
        // S_in(c) out (bf16), then S scaled by the chunk decay.
        const size_t base = ((head * K + c) * P + q0) * (size_t)N + n0;
        const float dec = exp2f(c2e);
#pragma unroll
        for (int s = 0; s < NW; ++s)
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const size_t e = base + (size_t)(rt * 16 + g + 8 * h2) * N + cg * WN + s * 8 + 2 * c4;
                cs[e / 2] = ssdm_pack(S[s][2 * h2], S[s][2 * h2 + 1]);
                S[s][2 * h2] *= dec;
                S[s][2 * h2 + 1] *= dec;
            }
        if constexpr (!WA) __syncthreads();  // the scaled x
#pragma unroll 2
        for (int kk = 0; kk < Q; kk += KS) {
            const int r = lane & 7, mi = lane >> 3;
            unsigned a[4];
            ssdl_ldm<true>(a, bx + (kk + r + 8 * (mi >> 1)) * ldP + rt * 16 + 8 * (mi & 1));
            if constexpr (WA) {
                ssdl_w_a(a, s_hd, Q, kk + 2 * c4, c2e);
            }
#pragma unroll
            for (int s = 0; s < NW; s += 2) {
                unsigned b4[4];
                ssdl_ldm<true>(b4, bb + (kk + r + 8 * (mi & 1)) * ldB + cg * WN + (s + (mi >> 1)) * 8);
                const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                ssdm_mma(S[s], a, b0);
                ssdm_mma(S[s + 1], a, b1);
            }
        }
    }
    if (p.final_states) {
#pragma unroll
        for (int s = 0; s < NW; ++s)
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const size_t e = (head * P + q0 + rt * 16 + g + 8 * h2) * (size_t)N + n0 + cg * WN + s * 8 + 2 * c4;
                *reinterpret_cast<float2*>(p.final_states + e) = make_float2(S[s][2 * h2], S[s][2 * h2 + 1]);
            }
    }
    ssdc_wait<0>();
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_statesw_bf16_q128_p64n128(const __grid_constant__ SsdParams p) {
    ssdl_states_w<64, 128>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_statesw_bf16_q128_p64n64(const __grid_constant__ SsdParams p) {
    ssdl_states_w<64, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_statesw_bf16_q128_p32n128(const __grid_constant__ SsdParams p) {
    ssdl_states_w<32, 128>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdl_statesw_bf16_q128_p64n128a(const __grid_constant__ SsdParams p) {
    ssdl_states_w<64, 128, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 3) ssdl_statesw_bf16_q128_p64n64a(const __grid_constant__ SsdParams p) {
    ssdl_states_w<64, 64, true>(p);
}
#endif

// ssd3_combine_bf16 with 16-byte accesses: each thread owns 8 consecutive state elements
// of one (batch, head) (p * N is a multiple of 8), four chunks' loads in flight at once.
template <typename T>
__device__ void ssdl_combine_k(const SsdParams& p) {
    T* cs = reinterpret_cast<T*>(p.chunk_states);
    const size_t pN = (size_t)p.headdim * p.dstate, pN8 = pN / 8;
    const size_t total = (size_t)p.batch * p.nheads * pN8;
    const int K = p.nchunks;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t head = idx / pN8, e0 = (idx - head * pN8) * 8;
        float S[8];
        if (p.init) {
            const float4 a = *reinterpret_cast<const float4*>(p.init + head * pN + e0);
            const float4 b = *reinterpret_cast<const float4*>(p.init + head * pN + e0 + 4);
            S[0] = a.x; S[1] = a.y; S[2] = a.z; S[3] = a.w; S[4] = b.x; S[5] = b.y; S[6] = b.z; S[7] = b.w;
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) S[e] = 0.f;
        }
        for (int k0 = 0; k0 < K; k0 += 4) {
            uint4 loc[4];
            float dec[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int k = k0 + u;
                if (k < K) {
                    loc[u] = *reinterpret_cast<const uint4*>(cs + (head * K + k) * pN + e0);
                    dec[u] = p.chunk_decay[head * K + k];
                }
            }
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int k = k0 + u;
                if (k < K) {
                    uint4 o;
                    o.x = Ssdl16<T>::pack(S[0], S[1]);
                    o.y = Ssdl16<T>::pack(S[2], S[3]);
                    o.z = Ssdl16<T>::pack(S[4], S[5]);
                    o.w = Ssdl16<T>::pack(S[6], S[7]);
                    *reinterpret_cast<uint4*>(cs + (head * K + k) * pN + e0) = o;
                    const T* l = reinterpret_cast<const T*>(&loc[u]);
#pragma unroll
                    for (int e = 0; e < 8; ++e) S[e] = fmaf(dec[u], S[e], ldf(l + e));
                }
            }
        }
        if (p.final_states) {
            *reinterpret_cast<float4*>(p.final_states + head * pN + e0) = make_float4(S[0], S[1], S[2], S[3]);
            *reinterpret_cast<float4*>(p.final_states + head * pN + e0 + 4) = make_float4(S[4], S[5], S[6], S[7]);
        }
    }
}
extern "C" __global__ void ssdl_combine_bf16(const __grid_constant__ SsdParams p) { ssdl_combine_k<bf16_t>(p); }
#ifdef SSDL_HAVE_F16
extern "C" __global__ void ssdl_combine_f16(const __grid_constant__ SsdParams p) { ssdl_combine_k<f16_t>(p); }
#endif
