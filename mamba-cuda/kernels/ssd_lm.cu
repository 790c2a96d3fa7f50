// SPEC 2, the SSD forward at the language-model shape in bf16 (and, VAR 28 only, f16) (Q 128,
// N 128, p tiles of 64):
// the chunk-walking states kernel of `ssdl` with several heads per block (seventh session,
// helper A; the rest of the `ssdl` kernels are in ssd_chunk.cu).
//
// `ssdlb_states2_bf16_q128_n*` (MAMBA_CUDA_SSDL_VAR 22, 23): `ssdl_statesw` (ssd_chunk.cu)
// with HB heads of one group per block (HB x 256 threads): B of each chunk staged once for
// the HB heads (the one-head form stages it once per head: at the LM shape 335 MB of L2
// reads, as much as x and the chunk states together). Each block walks the chunks of its
// heads' 64 x NB state tiles: per chunk every head's 256 threads scale their x by w_t =
// exp2(c2_end - c2_t) dt_t, store the incoming state S_in(c) (bf16, where the outputs
// kernel reads it), scale S by the chunk decay and add X^T diag(w) B on the tensor cores
// into the same f32 accumulators; the next chunk's headers, x and B are in flight
// (cp.async, two buffers). The final state is S after the last chunk.
#include "common.cuh"

// Helpers as in ssd_chunk.cu (the host emulator includes that file first and defines
// SSDLB_HAVE_HELPERS).
#ifndef SSDLB_HAVE_HELPERS
#define SSDC_WARPS 8
#define SSDC_THREADS (SSDC_WARPS * 32)
__device__ __forceinline__ void ssdc_cp16(void* smem, const void* gmem, int bytes) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void ssdc_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void ssdc_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ unsigned ssdm_pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&v);
}
__device__ __forceinline__ void ssdm_mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <bool TR>
__device__ __forceinline__ void ssdl_ldm(unsigned (&r)[4], const void* addr) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(addr));
    if constexpr (TR)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s));
}
__device__ __forceinline__ unsigned ssdl_mul_bf2(unsigned a, unsigned b) {
    unsigned d;
    asm("mul.rn.bf16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
    return d;
}
#include "ssd16.cuh"
template <typename T>
__device__ __forceinline__ void ssdl_scale16(T* r, float w) {
    uint4 u = *reinterpret_cast<const uint4*>(r);
    const T* h = reinterpret_cast<const T*>(&u);
    uint4 o;
    o.x = Ssdl16<T>::pack(ldf(h + 0) * w, ldf(h + 1) * w);
    o.y = Ssdl16<T>::pack(ldf(h + 2) * w, ldf(h + 3) * w);
    o.z = Ssdl16<T>::pack(ldf(h + 4) * w, ldf(h + 5) * w);
    o.w = Ssdl16<T>::pack(ldf(h + 6) * w, ldf(h + 7) * w);
    *reinterpret_cast<uint4*>(r) = o;
}
__device__ __forceinline__ float* ssdl_cb_base(const SsdParams& p) {
    return p.chunk_decay + (((size_t)p.batch * p.nheads * p.nchunks + 3) & ~(size_t)3);
}
__device__ __forceinline__ float* ssdl_hdr_base(const SsdParams& p) {
    return ssdl_cb_base(p) + (size_t)p.batch * p.ngroups * p.nchunks * p.chunk_len * p.chunk_len;
}
#endif

// Stages `rows` rows of `cols` 16-bit values (a multiple of 8) with 16-byte async copies by the
// threads tid < nthr: src row r at src + r st, dst row r at dst + r ld; rows >= nvalid
// are zero-filled (src not read).
template <typename T>
__device__ __forceinline__ void lmb_stage(T* dst, int ld, const T* src, long long st, int rows, int nvalid, int cols,
                                          int tid, int nthr) {
    const int vc = cols / 8, rstep = nthr / vc;
    if (tid >= rstep * vc) return;
    const int col = (tid % vc) * 8;
    for (int r = tid / vc; r < rows; r += rstep)
        ssdc_cp16(dst + r * ld + col, r < nvalid ? src + r * st + col : src, r < nvalid ? 16 : 0);
}

// NS: buffers (NS - 1 stages in flight while one computes); QS: steps per stage (Q or
// Q / 2: each chunk in two stages, the header staged with both). V16 (VAR 28): S_in goes
// out in 16-byte stores (each quad of lanes transposes its 4 x 4 pairs of four n8 tiles
// with two shuffle exchanges, so lane c4 holds 8 consecutive columns of tile 4 G + c4)
// instead of 4-byte stores: a quarter of the store instructions, whole 32-byte sectors
// per lane pair (ncu, VAR 19: the states kernel at 75% of the L2 throughput, DRAM 31%).
template <int NB, int HB, int NS = 2, int QS = 128, bool V16 = false, typename T = bf16_t>
__device__ void lmb_states(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_raw = g_smem_bytes;
#else
    extern __shared__ __align__(128) unsigned char smem_raw[];
#endif
    constexpr int Q = 128, PB = 64, KS = 16, ldP = PB + 8, ldB = NB + 8, NT = HB * SSDC_THREADS;
    constexpr int prt = PB / 16, ncg = SSDC_WARPS / prt, WN = NB / ncg, NW = WN / 8;
    static_assert(prt * ncg == SSDC_WARPS && WN % 16 == 0, "warp tiles");
    // Per buffer: HB (header c2 | dt, x), then B.
    constexpr int SPC = Q / QS;
    static_assert(SPC * QS == Q && QS % 16 == 0, "stages");
    constexpr int HD_B = 2 * Q * 4, X_B = QS * ldP * 2, HX_B = HD_B + X_B, BUF_B = HB * HX_B + QS * ldB * 2;
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks, N = p.dstate;
    const int tid = threadIdx.x, hh = tid / SSDC_THREADS, ltid = tid % SSDC_THREADS;
    const int warp = ltid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
#ifndef MAMBA_EMU
    __builtin_assume(tid < NT);
#endif
    const int nsp = N / NB, pt = (int)blockIdx.x / nsp, ns = (int)blockIdx.x - pt * nsp;
    const int q0 = pt * PB, n0 = ns * NB, j = blockIdx.y * HB + hh, i = blockIdx.z, k = j / (H / p.ngroups);
    const size_t head = (size_t)i * H + j;
    const T* xrow = static_cast<const T*>(p.x) + i * p.x_sb + (long long)j * P + q0;
    const T* brow = static_cast<const T*>(p.B) + i * p.B_sb + (long long)k * N + n0;
    const float* hdr = ssdl_hdr_base(p) + head * K * 2 * Q;
    auto buf = [&](int u) { return smem_raw + u * BUF_B; };
    auto stage = [&](int st, int u) {
        if (st < K * SPC) {
            const int c = st / SPC, t0 = c * Q + (st - c * SPC) * QS;
            unsigned char* b = buf(u);
            float* hd = reinterpret_cast<float*>(b + hh * HX_B);
            const float* hs = hdr + (size_t)c * 2 * Q;
            for (int v = ltid; v < 2 * Q / 4; v += SSDC_THREADS) ssdc_cp16(hd + 4 * v, hs + 4 * v, 16);
            lmb_stage(reinterpret_cast<T*>(b + hh * HX_B + HD_B), ldP, xrow + (long long)t0 * p.x_st, p.x_st, QS, L - t0,
                      PB, ltid, SSDC_THREADS);
            lmb_stage(reinterpret_cast<T*>(b + HB * HX_B), ldB, brow + (long long)t0 * p.B_st, p.B_st, QS, L - t0, NB,
                      tid, NT);
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
#pragma unroll
    for (int c = 0; c < NS - 1; ++c) stage(c, c);
    unsigned* cs = reinterpret_cast<unsigned*>(p.chunk_states);
    for (int st = 0; st < K * SPC; ++st) {
        const int u = st % NS, c = st / SPC, hf = st - c * SPC;
        ssdc_wait<NS - 2>();  // stage st (one group per stage, empty past the last)
        __syncthreads();  // ... visible to all; every warp is past stage st - 1, whose buffer
        stage(st + NS - 1, (st + NS - 1) % NS);  // takes stage st + NS - 1
        const float* s_hd = reinterpret_cast<const float*>(buf(u) + hh * HX_B);
        T* bx = reinterpret_cast<T*>(buf(u) + hh * HX_B + HD_B);
        const T* bb = reinterpret_cast<const T*>(buf(u) + HB * HX_B);
        // This head's x scaled by w_t in place (rows past L: x and dt 0).
        const float c2e = s_hd[Q - 1];
        for (int v = ltid; v < QS * (PB / 8); v += SSDC_THREADS) {
            const int t = v / (PB / 8), e = (v - t * (PB / 8)) * 8, tc = hf * QS + t;
            ssdl_scale16(bx + t * ldP + e, exp2f(c2e - s_hd[tc]) * s_hd[Q + tc]);
        }
        // At a chunk's first stage: S_in(c) out (bf16), then S scaled by the chunk decay.
        if (hf == 0 && V16) {
            static_assert(!V16 || NW % 4 == 0, "V16: groups of four n8 tiles");
            const size_t base = ((head * K + c) * P + q0) * (size_t)N + n0;
            const float dec = exp2f(c2e);
            const bool b1 = (c4 >> 1) & 1, b0 = c4 & 1;
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2)
#pragma unroll
                for (int G = 0; G < NW / 4; ++G) {
                    unsigned in[4];
#pragma unroll
                    for (int jj = 0; jj < 4; ++jj) in[jj] = Ssdl16<T>::pack(S[4 * G + jj][2 * h2], S[4 * G + jj][2 * h2 + 1]);
                    // Exchange 1 (lane ^ 2): pairs 0, 1 <-> 2, 3.
                    const unsigned r0 = __shfl_sync(0xffffffffu, b1 ? in[0] : in[2], lane ^ 2);
                    const unsigned r1 = __shfl_sync(0xffffffffu, b1 ? in[1] : in[3], lane ^ 2);
                    const unsigned m0 = b1 ? r0 : in[0], m1 = b1 ? r1 : in[1], m2 = b1 ? in[2] : r0, m3 = b1 ? in[3] : r1;
                    // Exchange 2 (lane ^ 1): pairs 0, 2 <-> 1, 3.
                    const unsigned u0 = __shfl_sync(0xffffffffu, b0 ? m0 : m1, lane ^ 1);
                    const unsigned u1 = __shfl_sync(0xffffffffu, b0 ? m2 : m3, lane ^ 1);
                    uint4 o;
                    o.x = b0 ? u0 : m0;
                    o.y = b0 ? m1 : u0;
                    o.z = b0 ? u1 : m2;
                    o.w = b0 ? m3 : u1;
                    const size_t e = base + (size_t)(rt * 16 + g + 8 * h2) * N + cg * WN + (4 * G + c4) * 8;
                    *reinterpret_cast<uint4*>(reinterpret_cast<T*>(p.chunk_states) + e) = o;
                }
#pragma unroll
            for (int s = 0; s < NW; ++s)
#pragma unroll
                for (int e = 0; e < 4; ++e) S[s][e] *= dec;
        } else if (hf == 0) {
            const size_t base = ((head * K + c) * P + q0) * (size_t)N + n0;
            const float dec = exp2f(c2e);
#pragma unroll
            for (int s = 0; s < NW; ++s)
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2) {
                    const size_t e = base + (size_t)(rt * 16 + g + 8 * h2) * N + cg * WN + s * 8 + 2 * c4;
                    cs[e / 2] = Ssdl16<T>::pack(S[s][2 * h2], S[s][2 * h2 + 1]);
                    S[s][2 * h2] *= dec;
                    S[s][2 * h2 + 1] *= dec;
                }
        }
        __syncthreads();  // the scaled x
#pragma unroll 2
        for (int kk = 0; kk < QS; kk += KS) {
            const int r = lane & 7, mi = lane >> 3;
            unsigned a[4];
            ssdl_ldm<true>(a, bx + (kk + r + 8 * (mi >> 1)) * ldP + rt * 16 + 8 * (mi & 1));
#pragma unroll
            for (int s = 0; s < NW; s += 2) {
                unsigned b4[4];
                ssdl_ldm<true>(b4, bb + (kk + r + 8 * (mi & 1)) * ldB + cg * WN + (s + (mi >> 1)) * 8);
                const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
                Ssdl16<T>::mma(S[s], a, b0);
                Ssdl16<T>::mma(S[s + 1], a, b1);
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

// kernels/ssd_wg.cu includes this file for its helpers only.
#ifndef SSD_LM_HELPERS_ONLY
// VAR 22: two heads x 64 x 128 (145 KB of shared memory, one block per SM); VAR 23: two
// heads x 64 x 64 (112 KB, two blocks per SM).
extern "C" __global__ void __launch_bounds__(2 * SSDC_THREADS, 1) ssdlb_states2_bf16_q128_n128(const __grid_constant__ SsdParams p) {
    lmb_states<128, 2>(p);
}
extern "C" __global__ void __launch_bounds__(2 * SSDC_THREADS, 2) ssdlb_states2_bf16_q128_n64(const __grid_constant__ SsdParams p) {
    lmb_states<64, 2>(p);
}
// VAR 24-27: one head per block with more stages in flight: 64 x 64 and three buffers of
// a chunk (111 KB, two blocks per SM); 64 x 128 and three buffers of a chunk (159 KB, one
// block per SM); 64 x 128 and four / three buffers of half a chunk (108 / 81 KB, two blocks
// per SM).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_bf16_q128_n64_s3(const __grid_constant__ SsdParams p) {
    lmb_states<64, 1, 3>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 1) ssdlb_states1_bf16_q128_n128_s3(const __grid_constant__ SsdParams p) {
    lmb_states<128, 1, 3>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_bf16_q128_n128_h4(const __grid_constant__ SsdParams p) {
    lmb_states<128, 1, 4, 64>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_bf16_q128_n128_h3(const __grid_constant__ SsdParams p) {
    lmb_states<128, 1, 3, 64>(p);
}
// VAR 28 (the bf16 LM default since the seventh session's merged tree; H200: 418-425 us vs 476-480 for VAR 19): `ssdl_statesw_bf16_q128_p64n128` (VAR 19) with S_in
// in 16-byte stores (V16).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_bf16_q128_n128_v(const __grid_constant__ SsdParams p) {
    lmb_states<128, 1, 2, 128, true>(p);
}
// VAR 28 at N 64 / 32 (twenty-fifth session; the generic kernels before): 64 x 64 / 64 x 32
// state tiles (at N 32 a warp holds two n8 tiles: S_in in 4-byte stores, not V16's 16-byte).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_bf16_q128_n64_v(const __grid_constant__ SsdParams p) {
    lmb_states<64, 1, 2, 128, true>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_bf16_q128_n32_v(const __grid_constant__ SsdParams p) {
    lmb_states<32, 1, 2, 128, false>(p);
}
#ifdef SSDL_HAVE_F16
// f16 storage (twenty-fifth session): VAR 28's states kernel with f16 operands; S_in in f16.
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_f16_q128_n128_v(const __grid_constant__ SsdParams p) {
    lmb_states<128, 1, 2, 128, true, f16_t>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_f16_q128_n64_v(const __grid_constant__ SsdParams p) {
    lmb_states<64, 1, 2, 128, true, f16_t>(p);
}
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2) ssdlb_states1_f16_q128_n32_v(const __grid_constant__ SsdParams p) {
    lmb_states<32, 1, 2, 128, false, f16_t>(p);
}
#endif
#endif  // SSD_LM_HELPERS_ONLY
