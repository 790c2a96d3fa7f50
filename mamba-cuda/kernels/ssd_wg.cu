// SPEC 2, the SSD forward at the language-model shape in bf16 / f16 (Q 128, p tiles of 64):
// VAR 28's chunk-walking states kernel (`lmb_states`, kernels/ssd_lm.cu) on the Hopper
// warpgroup tensor cores (`wgmma.mma_async`, sm_90a only: this file is compiled for sm_90a
// and loaded only on compute capability 9.0; twenty-sixth session).
//
// `ssdlw_states_*_q128_n{NB}_h{HB}s{NS}`: HB heads of one group per block, one warpgroup
// (128 threads) per head; each walks the chunks of its head's 64 x NB state tile. Per chunk
// the warpgroup scales its x by w_t = exp2(c2_end - c2_t) dt_t in place (bf16, as VAR 28),
// stores the incoming state S_in(c) (16-bit, in 16-byte stores: VAR 28's layout, read by
// `ssdl_out_*_hy`), scales S by the chunk decay and adds X^T diag(w) B with Q / 16
// `wgmma m64nNBk16` whose A (x^T, 16 rows of p per warp) comes from registers by
// ldmatrix.trans and whose B is read by the tensor cores from shared memory. The 64 x NB
// f32 state stays in the wgmma accumulators (NB / 2 registers per thread).
//
// Shared memory, per buffer (NS buffers; 1024-byte aligned): B (Q rows of NB values, in
// panels of 64 columns: row t of a panel is 128 bytes at t 128, its 16-byte chunks XOR-
// swizzled by t & 7, the "128-byte swizzle, N-major" layout of the wgmma descriptor: LBO =
// the panel stride, SBO = 1024 bytes per 8 rows; probed on the H200 with
// scripts/wgmma_probe.cu), then per head x (Q rows of 64 values, 128 bytes, the same
// swizzle: conflict-free ldmatrix.trans) and the chunk header (c2, dt).
// (The host emulator, emu/emu_ssdc.cpp, has included ssd_lm.cu with its kernels already,
// and models wgmma with `emu_wgmma`.)
#ifndef MAMBA_EMU
#define SSD_LM_HELPERS_ONLY
#include "ssd_lm.cu"
#endif
#include "l32_split.cuh"

template <int NB>
struct LmwMma;
// d += A (4 registers: m16 k16 per warp) . B (descriptor), B N-major (TB: trans-b 1) or
// K-major: wgmma m64nNBk16 with f32 accumulators (NB / 2 per thread); TY the operand type
// ("bf16" or "f16").
#define LMW_WGMMA128(TY)                                                                                           \
    asm volatile(                                                                                                  \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " "                                               \
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"  \
        "%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,"     \
        "%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, 1, 1, 1, %69;\n"                    \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),          \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),    \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),               \
          "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),               \
          "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),               \
          "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),               \
          "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),               \
          "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),               \
          "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                             \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(TB ? 1 : 0))
#define LMW_WGMMA64(TY)                                                                                            \
    asm volatile(                                                                                                  \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " "                                                \
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"  \
        "%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, 1, 1, 1, %37;\n"                                                \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),          \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),    \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),               \
          "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),               \
          "+f"(d[30]), "+f"(d[31])                                                                                 \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(TB ? 1 : 0))
template <>
struct LmwMma<128> {
    template <typename T, bool TB = true>
    static __device__ __forceinline__ void mma(float (&d)[64], const unsigned (&a)[4], uint64_t db) {
#ifdef MAMBA_EMU
        emu_wgmma<T>(d, a, db, 128, TB);
#else
        if constexpr (std::is_same<T, bf16_t>::value) {
            LMW_WGMMA128("bf16");
        } else {
            LMW_WGMMA128("f16");
        }
#endif
    }
};
template <>
struct LmwMma<64> {
    template <typename T, bool TB = true>
    static __device__ __forceinline__ void mma(float (&d)[32], const unsigned (&a)[4], uint64_t db) {
#ifdef MAMBA_EMU
        emu_wgmma<T>(d, a, db, 64, TB);
#else
        if constexpr (std::is_same<T, bf16_t>::value) {
            LMW_WGMMA64("bf16");
        } else {
            LMW_WGMMA64("f16");
        }
#endif
    }
};
#undef LMW_WGMMA128
#undef LMW_WGMMA64

// (The emulator's wgmma is synchronous: these are no-ops there.)
#ifdef MAMBA_EMU
__device__ __forceinline__ void lmw_fence() {}
__device__ __forceinline__ void lmw_commit() {}
template <int N>
__device__ __forceinline__ void lmw_wait() {}
__device__ __forceinline__ void lmw_proxy_fence() {}
#else
__device__ __forceinline__ void lmw_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void lmw_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void lmw_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// This thread's async copies are read by the async proxy (wgmma).
__device__ __forceinline__ void lmw_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#endif
// The accumulators as operands of an empty asm: the compiler may not move their uses across
// a wgmma fence / wait (CUTLASS's warpgroup_fence_operand).
template <int R>
__device__ __forceinline__ void lmw_pin(float (&d)[R]) {
#ifndef MAMBA_EMU
#pragma unroll
    for (int r = 0; r < R; ++r) asm volatile("" : "+f"(d[r])::"memory");
#endif
}
// A shared-memory address (l32_split.cuh).
__device__ __forceinline__ unsigned lmw_sa(const void* s) { return l32_sa(s); }
// The named barrier of warpgroup `hh` (ids 1, 2: constant ids; an id in a register makes
// ptxas reserve all 16).
__device__ __forceinline__ void lmw_wg_bar(int hh) {
#ifdef MAMBA_EMU
    g_wg_bar[hh]->arrive_and_wait();
#else
    if (hh == 0) {
        asm volatile("bar.sync 1, 128;\n" ::: "memory");
    } else {
        asm volatile("bar.sync 2, 128;\n" ::: "memory");
    }
#endif
}
// A shared-memory descriptor: 128-byte swizzle, leading (panel) and stride (8-row) offsets.
__device__ __forceinline__ uint64_t lmw_desc(const void* s, unsigned lbo, unsigned sbo) {
    const unsigned a = lmw_sa(s);
    return (uint64_t)((a & 0x3ffff) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           (1ull << 62);
}

// RO: chunk c - 1's products waited for after chunk c's x is scaled and its A fragments
// loaded (B of chunk c + NS - 1 staged only then); STM: S_in out through shared memory by
// stmatrix (needs RO's order) instead of VAR 28's shuffle transposition.
template <int NB, int HB, int NS, typename T, bool RO = false, bool STM = false>
__device__ void lmw_states(const SsdParams& p) {
    static_assert(!STM || (RO && NB == 128), "STM: RO order, 64 x 128 tiles (the x region holds them)");
#ifdef MAMBA_EMU
    unsigned char* smem_dyn = g_smem_bytes;
#else
    extern __shared__ __align__(1024) unsigned char smem_dyn[];
#endif
    // The swizzle is on absolute address bits: every buffer starts on 1024 bytes (the host
    // asks for 1 KB more).
    unsigned char* smem_raw = smem_dyn + ((1024u - (lmw_sa(smem_dyn) & 1023u)) & 1023u);
    constexpr int Q = 128, PB = 64, NT = HB * 128, NW = NB / 8, R = NB / 2;
    constexpr int B_B = Q * NB * 2, X_B = Q * PB * 2, HD_B = 2 * Q * 4;
    constexpr int BUF_B = B_B + HB * (X_B + HD_B);
    static_assert(BUF_B % 1024 == 0 && NB % 64 == 0, "1024-byte buffers, panels of 64 columns");
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks, N = p.dstate;
    const int tid = threadIdx.x, hh = tid / 128, ltid = tid % 128;
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
    // Fixed staging slots per thread (the row steps below keep t & 7, so the swizzled
    // column too): x rows xr0 + 16 it, 16-byte chunk xc; B rows br0 + BRS it, chunk bcc.
    constexpr int BCH = NB / 8, BRS = NT / BCH;
    static_assert(BRS % 8 == 0 && Q % BRS == 0, "B staging rows keep t & 7");
    const int xr0 = ltid >> 3, xc = ltid & 7, br0 = tid / BCH, bcc = tid % BCH;
    const int xso = xr0 * 128 + ((xc ^ (xr0 & 7)) << 4);
    const int bso = (bcc >> 3) * (Q * 128) + br0 * 128 + (((bcc & 7) ^ (br0 & 7)) << 4);
    const T* xg = xrow + (long long)xr0 * p.x_st + xc * 8;
    const T* bg = brow + (long long)br0 * p.B_st + bcc * 8;
    const long long xstep = 16 * p.x_st, bstep = BRS * p.B_st;
    // The header and x of chunk c into buffer u (read by this warpgroup only, never by the
    // async proxy), and B (read by wgmma); the caller commits.
    auto stage_x = [&](int c, int u) {
        if (c < K) {
            const int t0 = c * Q, nv = L - t0;
            unsigned char* b = buf(u);
            float* hd = reinterpret_cast<float*>(b + B_B + HB * X_B + hh * HD_B);
            const float* hs = hdr + (size_t)c * 2 * Q;
            if (ltid < 2 * Q / 4) ssdc_cp16(hd + 4 * ltid, hs + 4 * ltid, 16);
            unsigned char* xs = b + B_B + hh * X_B + xso;
            const T* xsrc = xg + (long long)t0 * p.x_st;
#pragma unroll
            for (int it = 0; it < Q / 16; ++it) {
                const bool ok = xr0 + 16 * it < nv;
                ssdc_cp16(xs + it * 16 * 128, ok ? xsrc : xrow, ok ? 16 : 0);
                xsrc += xstep;
            }
        }
    };
    auto stage_b = [&](int c, int u) {
        if (c < K) {
            const int t0 = c * Q, nv = L - t0;
            unsigned char* bs = buf(u) + bso;
            const T* bsrc = bg + (long long)t0 * p.B_st;
#pragma unroll
            for (int it = 0; it < Q / BRS; ++it) {
                const bool ok = br0 + BRS * it < nv;
                ssdc_cp16(bs + it * BRS * 128, ok ? bsrc : brow, ok ? 16 : 0);
                bsrc += bstep;
            }
        }
    };
    // S: d[4 s + 2 h2 + e] = row q0 + 16 warp + g + 8 h2, column n0 + 8 s + 2 c4 + e.
    float S[R];
#pragma unroll
    for (int s = 0; s < NW; ++s)
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
            const size_t e = (head * P + q0 + warp * 16 + g + 8 * h2) * (size_t)N + n0 + s * 8 + 2 * c4;
            float2 v = make_float2(0.f, 0.f);
            if (p.init) v = *reinterpret_cast<const float2*>(p.init + e);
            S[4 * s + 2 * h2] = v.x;
            S[4 * s + 2 * h2 + 1] = v.y;
        }
#pragma unroll
    for (int c = 0; c < NS - 1; ++c) {
        stage_x(c, c);
        stage_b(c, c);
        ssdc_commit();
    }
    const int r = lane & 7, mi = lane >> 3;
    const bool b1 = (c4 >> 1) & 1, b0 = c4 & 1;
    auto wg_bar = [&]() { lmw_wg_bar(HB == 1 ? 0 : hh); };
    for (int c = 0; c < K; ++c) {
        const int u = c % NS, un = (c + NS - 1) % NS;
        if constexpr (!RO) {
            lmw_wait<0>();  // chunk c - 1's products: S is final, its buffer free
            lmw_pin(S);
        }
        ssdc_wait<NS - 2>();  // chunk c's copies (the stages before c + NS - 1)
        lmw_proxy_fence();  // this thread's copies (B) are read by wgmma
        __syncthreads();
        // RO: x and the header of chunk c + NS - 1 now (wgmma reads only B of that buffer),
        // its B once chunk c - 1's products are done.
        stage_x(c + NS - 1, un);
        if constexpr (!RO) {
            stage_b(c + NS - 1, un);
            ssdc_commit();
        }
        const float* s_hd = reinterpret_cast<const float*>(buf(u) + B_B + HB * X_B + hh * HD_B);
        unsigned char* xs = buf(u) + B_B + hh * X_B;
        const float c2e = s_hd[Q - 1];
        // This head's x scaled by w_t in place (rows past L: x and dt 0); each thread
        // scales the 16-byte chunks it staged.
#pragma unroll
        for (int it = 0; it < Q / 16; ++it) {
            const int t = xr0 + 16 * it;
            ssdl_scale16(reinterpret_cast<T*>(xs + xso + it * 16 * 128), exp2f(c2e - s_hd[t]) * s_hd[Q + t]);
        }
        wg_bar();  // the scaled x of this head
        unsigned a[Q / 16][4];
#pragma unroll
        for (int kk = 0; kk < Q / 16; ++kk) {
            const int t = kk * 16 + r + 8 * (mi >> 1);
            ssdl_ldm<true>(a[kk], xs + t * 128 + (((2 * warp + (mi & 1)) ^ (t & 7)) << 4));
        }
        // Every A fragment loaded before the first wgmma (else ptxas may put them all in
        // one register quad and serialize the wgmmas on it).
#ifndef MAMBA_EMU
#pragma unroll
        for (int kk = 0; kk < Q / 16; ++kk)
            asm volatile("" : "+r"(a[kk][0]), "+r"(a[kk][1]), "+r"(a[kk][2]), "+r"(a[kk][3])::"memory");
#endif
        if constexpr (RO) {
            lmw_wait<0>();  // chunk c - 1's products (overlapped with the scaling above)
            lmw_pin(S);
            if constexpr (HB > 1) __syncthreads();  // every head's: B of buffer un is free
            stage_b(c + NS - 1, un);
            ssdc_commit();
        }
        // S_in(c) out (16-bit), then S scaled by the decay.
        const size_t base = ((head * K + c) * P + q0) * (size_t)N + n0;
        if constexpr (STM) {
            // Through this head's x region (every warp has its A fragments): stmatrix of the
            // warp's 16 rows (256 bytes each, 16-byte chunks XOR-swizzled by row & 7), then
            // 16-byte row reads and stores.
            wg_bar();
            unsigned char* sw = xs + warp * 16 * 256;
#pragma unroll
            for (int s = 0; s < NW; s += 2) {
                unsigned v[4];
#pragma unroll
                for (int m = 0; m < 4; ++m)
                    v[m] = Ssdl16<T>::pack(S[4 * (s + (m >> 1)) + 2 * (m & 1)], S[4 * (s + (m >> 1)) + 2 * (m & 1) + 1]);
                const int row = r + 8 * (mi & 1), ch = s + (mi >> 1);
#ifdef MAMBA_EMU
                emu_stmatrix(sw + row * 256 + ((ch ^ (row & 7)) << 4), v);
#else
                const unsigned sa = lmw_sa(sw + row * 256 + ((ch ^ (row & 7)) << 4));
                asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(sa), "r"(v[0]),
                             "r"(v[1]), "r"(v[2]), "r"(v[3])
                             : "memory");
#endif
            }
            __syncwarp();
#pragma unroll
            for (int it = 0; it < 16 * (NB / 8) / 32; ++it) {
                const int v = it * 32 + lane, row = v / (NB / 8), ch = v % (NB / 8);
                const uint4 o = *reinterpret_cast<const uint4*>(sw + row * 256 + ((ch ^ (row & 7)) << 4));
                *reinterpret_cast<uint4*>(reinterpret_cast<T*>(p.chunk_states) + base +
                                          (size_t)(warp * 16 + row) * N + ch * 8) = o;
            }
        } else {
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2)
#pragma unroll
                for (int G = 0; G < NW / 4; ++G) {
                    unsigned in[4];
#pragma unroll
                    for (int jj = 0; jj < 4; ++jj)
                        in[jj] = Ssdl16<T>::pack(S[4 * (4 * G + jj) + 2 * h2], S[4 * (4 * G + jj) + 2 * h2 + 1]);
                    const unsigned r0 = __shfl_sync(0xffffffffu, b1 ? in[0] : in[2], lane ^ 2);
                    const unsigned r1 = __shfl_sync(0xffffffffu, b1 ? in[1] : in[3], lane ^ 2);
                    const unsigned m0 = b1 ? r0 : in[0], m1 = b1 ? r1 : in[1], m2 = b1 ? in[2] : r0, m3 = b1 ? in[3] : r1;
                    const unsigned u0 = __shfl_sync(0xffffffffu, b0 ? m0 : m1, lane ^ 1);
                    const unsigned u1 = __shfl_sync(0xffffffffu, b0 ? m2 : m3, lane ^ 1);
                    uint4 o;
                    o.x = b0 ? u0 : m0;
                    o.y = b0 ? m1 : u0;
                    o.z = b0 ? u1 : m2;
                    o.w = b0 ? m3 : u1;
                    const size_t e = base + (size_t)(warp * 16 + g + 8 * h2) * N + (4 * G + c4) * 8;
                    *reinterpret_cast<uint4*>(reinterpret_cast<T*>(p.chunk_states) + e) = o;
                }
        }
        const float dec = exp2f(c2e);
#pragma unroll
        for (int e = 0; e < R; ++e) S[e] *= dec;
        lmw_pin(S);
        lmw_fence();
#pragma unroll
        for (int kk = 0; kk < Q / 16; ++kk)
            LmwMma<NB>::template mma<T>(S, a[kk], lmw_desc(buf(u) + kk * 16 * 128, Q * 128, 1024));
        lmw_commit();
    }
    lmw_wait<0>();
    lmw_pin(S);
    if (p.final_states) {
#pragma unroll
        for (int s = 0; s < NW; ++s)
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const size_t e = (head * P + q0 + warp * 16 + g + 8 * h2) * (size_t)N + n0 + s * 8 + 2 * c4;
                *reinterpret_cast<float2*>(p.final_states + e) = make_float2(S[4 * s + 2 * h2], S[4 * s + 2 * h2 + 1]);
            }
    }
    ssdc_wait<0>();
}

// The outputs of the chunked SSD at the LM shape on wgmma (VAR 70: VAR 60 with this kernel
// in place of `ssdl_out_*_q128_hy`): one block per (chunk, 64 columns of p, batch row,
// HB heads of one group), two warpgroups; warpgroup wg holds rows 64 wg .. 64 wg + 63 of
// the chunk (warp w: the 16-row slab ti = w), the heads walked in turn with the next head's
// header, S_in and x in flight. Per head:
// - C S_in^T: `wgmma m64n64k16` x 8 with A = C (register fragments kept for every head) and B
//   = S_in from shared memory (K-major: 64 rows q of 128 n in two 128-byte swizzled atoms);
//   rows scaled by exp2(c2_t) once the products are done;
// - M X: A = M[t][s] = CB[t][s] exp2(c2_t - c2_s) dt_s built in registers per 16 x 16 tile
//   while C S^T runs (off the diagonal from the C B^T image times u'_t sigma v_s, each
//   factor <= 1: u'_t = exp2(c2_t - F), F = c2 at the slab's first row, sigma = exp2(F -
//   c2 at the s tile's last row), v_s = exp2(that - c2_s) dt_s; the diagonal tile
//   elementwise; zero right of it), B = x from shared memory (N-major as the states
//   kernel's B);
// - Y + D x (* silu(z)) out through a 16-row region per warp (stmatrix) in 16-byte stores.
// PIPE (VAR 71): M X's A fragments built one s tile at a time into two register sets, each
// wgmma issued as soon as its tile is built, `wgmma.wait_group 1` freeing the set of the
// tile before (72 live operand registers instead of 96: 8 bytes of spills at 128 registers,
// against 60 for VAR 70).
template <typename T, bool PIPE = false>
__device__ void lmw_out(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_dyn = g_smem_bytes;
#else
    extern __shared__ __align__(1024) unsigned char smem_dyn[];
#endif
    unsigned char* smem_raw = smem_dyn + ((1024u - (lmw_sa(smem_dyn) & 1023u)) & 1023u);
    constexpr int Q = 128, N = 128, PB = 64, QT = Q / 16, NTI = QT * (QT + 1) / 2, ldC = N + 8, ldY = PB + 8;
    constexpr int O_BUF = NTI * 512;  // 18432: 1024-aligned
    constexpr int S_B = PB * N * 2, X_B = Q * PB * 2, HD_B = 2 * Q * 4, BUF_B = S_B + X_B + HD_B;
    constexpr int O_Y = O_BUF + 2 * BUF_B;
    static_assert(O_BUF % 1024 == 0 && BUF_B % 1024 == 0, "1024-byte aligned tiles");
    static_assert(Q * ldC * 2 <= BUF_B + 8 * 16 * ldY * 2, "C is staged over buffer 1 and the Y regions");
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int ti = warp;
#ifndef MAMBA_EMU
    __builtin_assume(tid < 256);
#endif
    const int ptiles = P / PB, HB = H / (int)gridDim.y;
    const int c = (int)blockIdx.x / ptiles, pt = (int)blockIdx.x - c * ptiles, j0 = blockIdx.y * HB, i = ssd_rev_i(p);
    const int q0 = pt * PB, k = j0 / (H / p.ngroups), t0 = c * Q, tn = min(Q, L - t0);
    const T* xrow = static_cast<const T*>(p.x) + i * p.x_sb + (long long)t0 * p.x_st + q0;
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    auto buf = [&](int u) { return smem_raw + O_BUF + u * BUF_B; };
    // Fixed staging slots: S rows sq0 + 16 it, chunk sc (16 per row); x rows xr0 + 32 it,
    // chunk xc (8 per row): the swizzle of a slot does not change with it.
    const int sq0 = tid >> 4, sc = tid & 15, xr0 = tid >> 3, xc = tid & 7;
    const int sso = (sc >> 3) * (PB * 128) + sq0 * 128 + (((sc & 7) ^ (sq0 & 7)) << 4);
    const int xso = xr0 * 128 + ((xc ^ (xr0 & 7)) << 4);
    auto stage_head = [&](int hh, int u) {
        const size_t head = (size_t)i * H + j0 + hh;
        unsigned char* b = buf(u);
        if (tid < 2 * Q / 4)
            ssdc_cp16(b + S_B + X_B + 16 * tid, ssdl_hdr_base(p) + (head * K + c) * 2 * Q + 4 * tid, 16);
        const T* ss = reinterpret_cast<const T*>(p.chunk_states) + ((head * K + c) * P + q0 + sq0) * (size_t)N + sc * 8;
#pragma unroll
        for (int it = 0; it < PB / 16; ++it) ssdc_cp16(b + sso + it * 16 * 128, ss + (size_t)it * 16 * N, 16);
        const T* xs = xrow + (long long)(j0 + hh) * P + (long long)xr0 * p.x_st + xc * 8;
#pragma unroll
        for (int it = 0; it < Q / 32; ++it) {
            const bool ok = xr0 + 32 * it < L - t0;
            ssdc_cp16(b + S_B + xso + it * 32 * 128, ok ? xs + (long long)it * 32 * p.x_st : xrow, ok ? 16 : 0);
        }
    };
    // C (rows ldC) over buffer 1 and the Y regions, and the image; then head 0.
    {
        const T* cg = static_cast<const T*>(p.C) + i * p.C_sb + (long long)t0 * p.C_st + (long long)k * N;
        T* cs = reinterpret_cast<T*>(buf(1));
        for (int v = tid; v < Q * (N / 8); v += 256) {
            const int t = v / (N / 8), e = (v % (N / 8)) * 8;
            const bool ok = t < L - t0;
            ssdc_cp16(cs + t * ldC + e, ok ? cg + (long long)t * p.C_st + e : cg, ok ? 16 : 0);
        }
        const float* cbg = ssdl_cb_base(p) + (((size_t)i * p.ngroups + k) * K + c) * (size_t)Q * Q;
        for (int v = tid; v < NTI * 128 / 4; v += 256) ssdc_cp16(smem_raw + 16 * v, cbg + 4 * v, 16);
    }
    stage_head(0, 0);
    ssdc_commit();
    ssdc_wait<0>();
    lmw_proxy_fence();  // read by wgmma
    __syncthreads();
    const int r = lane & 7, mi = lane >> 3;
    unsigned cf[N / 16][4];
    {
        const T* cs = reinterpret_cast<const T*>(buf(1));
#pragma unroll
        for (int kk = 0; kk < N / 16; ++kk)
            ssdl_ldm<false>(cf[kk], cs + (ti * 16 + r + 8 * (mi & 1)) * ldC + kk * 16 + 8 * (mi >> 1));
    }
    const T* cbi = reinterpret_cast<const T*>(smem_raw);
    const int tr0 = ti * 16 + g, tr1 = tr0 + 8;
    T* yw = reinterpret_cast<T*>(smem_raw + O_Y) + warp * 16 * ldY;
    for (int hh = 0; hh < HB; ++hh) {
        const float dj = p.D && !p.d_per_channel ? __ldg(p.D + j0 + hh) : 0.f;
        // Every warp is past head hh - 1 (for hh 0: past its C fragments): the other buffer
        // and the Y regions are free.
        __syncthreads();
        if (hh + 1 < HB) stage_head(hh + 1, (hh + 1) & 1);
        ssdc_commit();
        unsigned char* b = buf(hh & 1);
        const float* s_c2 = reinterpret_cast<const float*>(b + S_B + X_B);
        const float* s_dt = s_c2 + Q;
        float acc[32];
#pragma unroll
        for (int e = 0; e < 32; ++e) acc[e] = 0.f;
        lmw_pin(acc);
        lmw_fence();
#pragma unroll
        for (int kk = 0; kk < N / 16; ++kk)
            LmwMma<64>::template mma<T, false>(acc, cf[kk],
                                               lmw_desc(b + (kk >> 2) * (PB * 128) + (kk & 3) * 32, 16, 1024));
        lmw_commit();
        // M X's A fragments while the tensor cores run C S^T.
        const float F = s_c2[ti * 16], c20 = s_c2[tr0], c21 = s_c2[tr1];
        const float u0 = exp2f(c20 - F), u1 = exp2f(c21 - F);
        if constexpr (!PIPE) {
            unsigned am[QT][4];
    #pragma unroll
            for (int kq = 0; kq < QT; ++kq) {
                if (kq < ti) {
                    const float ce = s_c2[kq * 16 + 15], sg = exp2f(F - ce);
                    const int s0 = kq * 16 + 2 * c4;
                    const float2 ca = *reinterpret_cast<const float2*>(s_c2 + s0);
                    const float2 cb2 = *reinterpret_cast<const float2*>(s_c2 + s0 + 8);
                    const float2 da = *reinterpret_cast<const float2*>(s_dt + s0);
                    const float2 db = *reinterpret_cast<const float2*>(s_dt + s0 + 8);
                    const float v0 = sg * exp2f(ce - ca.x) * da.x, v1 = sg * exp2f(ce - ca.y) * da.y;
                    const float v2 = sg * exp2f(ce - cb2.x) * db.x, v3 = sg * exp2f(ce - cb2.y) * db.y;
                    const int rr = r + 8 * (mi & 1);
                    ssdl_ldm<false>(am[kq], cbi + (ti * (ti + 1) / 2 + kq) * 256 + rr * 16 + (((mi >> 1) ^ ((rr >> 2) & 1)) << 3));
                    am[kq][0] = Ssdl16<T>::mul2(am[kq][0], Ssdl16<T>::pack(u0 * v0, u0 * v1));
                    am[kq][1] = Ssdl16<T>::mul2(am[kq][1], Ssdl16<T>::pack(u1 * v0, u1 * v1));
                    am[kq][2] = Ssdl16<T>::mul2(am[kq][2], Ssdl16<T>::pack(u0 * v2, u0 * v3));
                    am[kq][3] = Ssdl16<T>::mul2(am[kq][3], Ssdl16<T>::pack(u1 * v2, u1 * v3));
                } else if (kq == ti) {
                    // The diagonal tile: M[t][s] = CB[t][s] exp2(c2_t - c2_s) dt_s for s <= t.
                    const T* tile = cbi + (ti * (ti + 1) / 2 + ti) * 256;
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
                        am[kq][e] = Ssdl16<T>::pack(m0, m1);
                    }
                } else {
    #pragma unroll
                    for (int e = 0; e < 4; ++e) am[kq][e] = 0u;
                }
            }
            lmw_wait<0>();
            lmw_pin(acc);
            {
                const float e0 = exp2f(c20), e1 = exp2f(c21);
    #pragma unroll
                for (int s = 0; s < PB / 8; ++s) {
                    acc[4 * s] *= e0;
                    acc[4 * s + 1] *= e0;
                    acc[4 * s + 2] *= e1;
                    acc[4 * s + 3] *= e1;
                }
            }
            lmw_pin(acc);
            lmw_fence();
            // Every warpgroup takes all 8 s tiles (warpgroup 0's last four are zero: a branch on
            // the warpgroup makes ptxas serialize the wgmmas).
    #pragma unroll
            for (int kq = 0; kq < QT; ++kq)
                LmwMma<64>::template mma<T, true>(acc, am[kq], lmw_desc(b + S_B + kq * 16 * 128, 8192, 1024));
            lmw_commit();
            lmw_wait<0>();
            lmw_pin(acc);
        } else {
            // The A fragment of M X's s tile kq (off the diagonal, the diagonal, or zero).
            auto mx_tile = [&](int kq, unsigned (&a)[4]) {
                if (kq < ti) {
                    const float ce = s_c2[kq * 16 + 15], sg = exp2f(F - ce);
                    const int s0 = kq * 16 + 2 * c4;
                    const float2 ca = *reinterpret_cast<const float2*>(s_c2 + s0);
                    const float2 cb2 = *reinterpret_cast<const float2*>(s_c2 + s0 + 8);
                    const float2 da = *reinterpret_cast<const float2*>(s_dt + s0);
                    const float2 db = *reinterpret_cast<const float2*>(s_dt + s0 + 8);
                    const float v0 = sg * exp2f(ce - ca.x) * da.x, v1 = sg * exp2f(ce - ca.y) * da.y;
                    const float v2 = sg * exp2f(ce - cb2.x) * db.x, v3 = sg * exp2f(ce - cb2.y) * db.y;
                    const int rr = r + 8 * (mi & 1);
                    ssdl_ldm<false>(a, cbi + (ti * (ti + 1) / 2 + kq) * 256 + rr * 16 + (((mi >> 1) ^ ((rr >> 2) & 1)) << 3));
                    a[0] = Ssdl16<T>::mul2(a[0], Ssdl16<T>::pack(u0 * v0, u0 * v1));
                    a[1] = Ssdl16<T>::mul2(a[1], Ssdl16<T>::pack(u1 * v0, u1 * v1));
                    a[2] = Ssdl16<T>::mul2(a[2], Ssdl16<T>::pack(u0 * v2, u0 * v3));
                    a[3] = Ssdl16<T>::mul2(a[3], Ssdl16<T>::pack(u1 * v2, u1 * v3));
                } else if (kq == ti) {
                    // The diagonal tile: M[t][s] = CB[t][s] exp2(c2_t - c2_s) dt_s for s <= t.
                    const T* tile = cbi + (ti * (ti + 1) / 2 + ti) * 256;
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
                } else {
    #pragma unroll
                    for (int e = 0; e < 4; ++e) a[e] = 0u;
                }
            };
            unsigned am[2][4];
            mx_tile(0, am[0]);
            mx_tile(1, am[1]);
            lmw_wait<0>();
            lmw_pin(acc);
            {
                const float e0 = exp2f(c20), e1 = exp2f(c21);
    #pragma unroll
                for (int s = 0; s < PB / 8; ++s) {
                    acc[4 * s] *= e0;
                    acc[4 * s + 1] *= e0;
                    acc[4 * s + 2] *= e1;
                    acc[4 * s + 3] *= e1;
                }
            }
            lmw_pin(acc);
            lmw_fence();
#pragma unroll
            for (int kq = 0; kq < QT; ++kq) {
                if (kq >= 2) {
                    lmw_wait<1>();  // tile kq - 2's product: its register set is free
                    mx_tile(kq, am[kq & 1]);
                    lmw_fence();
                }
                LmwMma<64>::template mma<T, true>(acc, am[kq & 1], lmw_desc(b + S_B + kq * 16 * 128, 8192, 1024));
                lmw_commit();
            }
            lmw_wait<0>();
            lmw_pin(acc);
        }
        // Y + D x (* silu(z)) through the warp's Y region (twenty-seventh session: 329 -> ~150
        // instructions per warp and head). Two loops, a per-head D (or none) and a per-channel
        // D (a select of the two per element made every element a global load, 32 LDG per
        // warp and head); x two values per 4-byte load, its address one XOR per column group:
        // row t's 16-byte chunk s is at (s ^ (t & 7)) << 4 and t & 7 = g, on a base whose
        // bits 4-6 are clear (1024-aligned buffers, 128-byte rows). (A compile-time no-D
        // loop made ptxas spill 8 bytes in the f16 kernel: check -Xptxas -v after edits.)
        const int j = j0 + hh;
        const int xo = (int)(b + S_B - smem_raw) + 4 * c4 + (g << 4);
        auto epi = [&](auto dq) {
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const int rl = g + 8 * h2, xr = xo + (ti * 16 + rl) * 128;
#pragma unroll
                for (int s = 0; s < PB / 8; ++s) {
                    const int q = s * 8 + 2 * c4;
                    float y0 = acc[4 * s + 2 * h2], y1 = acc[4 * s + 2 * h2 + 1];
                    if (p.D) {
                        const unsigned xv = *reinterpret_cast<const unsigned*>(smem_raw + (xr ^ (s << 4)));
                        y0 = fmaf(dq(q), Ssdl16<T>::lo(xv), y0);
                        y1 = fmaf(dq(q + 1), Ssdl16<T>::hi(xv), y1);
                    }
                    *reinterpret_cast<unsigned*>(yw + rl * ldY + q) = Ssdl16<T>::pack(y0, y1);
                }
            }
        };
        if (p.D && p.d_per_channel) {
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
                const uint4 yv = *reinterpret_cast<const uint4*>(yw + rl * ldY + e);
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
        ssdc_wait<0>();  // head hh + 1 (published by the next barrier)
        lmw_proxy_fence();
    }
}

// VAR 60-65 (`ssdl_var`): (NB, HB, NS) = (128, 1, 2), (128, 2, 2), (64, 1, 2), (64, 2, 2),
// (64, 1, 3), (128, 1, 3).
#define LMW_K(TN, T, NB, HB, NS, MINB, SX, RO, STM)                                                     \
    extern "C" __global__ void __launch_bounds__(HB * 128, MINB)                                       \
        ssdlw_states_##TN##_q128_n##NB##_h##HB##s##NS##SX(const __grid_constant__ SsdParams p) {        \
        lmw_states<NB, HB, NS, T, RO, STM>(p);                                                          \
    }
LMW_K(bf16, bf16_t, 128, 1, 2, 2, , false, false)
LMW_K(bf16, bf16_t, 128, 2, 2, 1, , false, false)
LMW_K(bf16, bf16_t, 64, 1, 2, 3, , false, false)
LMW_K(bf16, bf16_t, 64, 2, 2, 2, , false, false)
LMW_K(bf16, bf16_t, 64, 1, 3, 2, , false, false)
LMW_K(bf16, bf16_t, 128, 1, 3, 1, , false, false)
// f16 storage: VAR 60's kernel with f16 operands (S_in in f16, as VAR 28's f16 form).
LMW_K(f16, f16_t, 128, 1, 2, 2, , false, false)
// VAR 66 / 67: 60 with the RO order, and with STM too (slower: 127 / 130 us against 120 for
// 60's kernel, ncu; the B copies issued later wait longer).
LMW_K(bf16, bf16_t, 128, 1, 2, 2, r, true, false)
LMW_K(bf16, bf16_t, 128, 1, 2, 2, m, true, true)
// VAR 70: the outputs on wgmma (`lmw_out`).
extern "C" __global__ void __launch_bounds__(256, 2) ssdlw_out_bf16_q128(const __grid_constant__ SsdParams p) {
    lmw_out<bf16_t>(p);
}
// VAR 71: 70 with PIPE (emulator-checked; not yet run on the device).
extern "C" __global__ void __launch_bounds__(256, 2) ssdlw_out_bf16_q128p(const __grid_constant__ SsdParams p) {
    lmw_out<bf16_t, true>(p);
}
// f16: 70 and 71 with f16 operands (emulator-checked; not yet run on the device).
extern "C" __global__ void __launch_bounds__(256, 2) ssdlw_out_f16_q128(const __grid_constant__ SsdParams p) {
    lmw_out<f16_t>(p);
}
extern "C" __global__ void __launch_bounds__(256, 2) ssdlw_out_f16_q128p(const __grid_constant__ SsdParams p) {
    lmw_out<f16_t, true>(p);
}

// ---- f32: the states pass on wgmma with split-f16 operands (`ssdlw_states_f32_q128_n128`,
// twenty-eighth session; `MAMBA_CUDA_SSD32_WG=1`, not the default: 298 us per run of 4 batch
// rows at the LM shape against 207 for `ssdl32_sseqh_n128`, NOTES.md) ----
// The f32 LM path (src/gpu/ssdl32.rs) at N 128: `ssdl32_sseqh_n128`'s walk (the chunk
// products X^T diag(w) B as split-f16 products, S in f32 registers, S_in of every chunk and
// the final state out) with the products on wgmma, per (head, 64 columns of p). Per part of
// a chunk (see the kernel for the parts):
// - x (f32) staged as it is; each warp scales its rows by w_t (columns 2 lane, + 1), the
//   column maxima go through shared memory, s_q = l32_hscale(max |x w|) over the part, and
//   the hi / lo halves of x w s_q are written over x (all of it read before the barrier) as
//   the A operand of wgmma, M-major ([t][q], 128-byte rows of 64 halves, 16-byte chunks
//   XOR-swizzled by t & 7: the B layout of `lmw_states` with m for n);
// - B split once per call by `ssdl32_bsplit_n128` (its rows: per 8 columns n 16 bytes of hi
//   halves, then 16 of lo), staged into two tiles (hi, lo), each two panels of 64 columns,
//   N-major as `lmw_states` stages B;
// - acc = X_lo B_hi + X_hi B_lo + X_hi B_hi: 3 `wgmma` per k16 step, both operands from
//   shared memory (trans-a, trans-b), into accumulators zeroed per part; then
//   S = dec S + acc / (s_q s_n) (dec at a chunk's first part only); S_in(c) is stored before
//   the chunk's first part is added.
// Rows t >= L: x and B zero-filled, w 0 (the header's dt).
#define LMW_WGMMA_SS64_F16                                                                                         \
    asm volatile(                                                                                                  \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "                                                      \
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"  \
        "%28,%29,%30,%31}, %32, %33, 1, 1, 1, 1, 1;\n"                                                              \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),          \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),    \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),               \
          "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),               \
          "+f"(d[30]), "+f"(d[31])                                                                                 \
        : "l"(da), "l"(db))
// d += A . B, A (64 x 16) M-major and B (16 x 64) N-major, both from shared memory (f16;
// trans-a, trans-b): wgmma m64n64k16 with f32 accumulators (32 per thread).
__device__ __forceinline__ void lmw_mma_ss64_f16(float (&d)[32], uint64_t da, uint64_t db) {
#ifdef MAMBA_EMU
    emu_wgmma_ss<f16_t>(d, da, db, 64);
#else
    LMW_WGMMA_SS64_F16;
#endif
}
#undef LMW_WGMMA_SS64_F16

// Two warpgroups per block, warpgroup hh holding columns n 64 hh .. 64 hh + 63 of the state
// (`wgmma m64n64k16`, the same A for both), the split and the copies shared by all 8 warps.
// Each chunk runs as four quarters of 32 rows t through a ring of four buffers: quarter u's
// copies are issued three quarters ahead, and its products run while quarter u + 1 is split
// (S = dec S + acc_u / (s_q,u s_n) at the chunk's first quarter, S += acc_u / (s_q,u s_n) at
// the others; s_q per quarter). Measured forms before it (twenty-eighth session, H200, per
// run of 4 batch rows, against 207 us for `ssdl32_sseqh_n128`): the whole chunk in one
// buffer with one warpgroup (308 us, 255 registers), two halves (323 us), two halves with
// two warpgroups (334 us): each waited for its copies and its products in turn. This form:
// 298 us (more instructions: a split and a fold per quarter).
// Shared memory from a 1024-byte boundary (the host asks for 1 KB more): per quarter buffer
// r (24 KB at 24 KB r) B hi (32 rows of 128 halves, two panels of 64 columns 4 KB apart), B
// lo (+ 8 KB), x (+ 16 KB: 32 x 64 f32; then A hi, A lo, 4 KB each); then per buffer s_w
// (32 floats), per chunk parity exp(cs_end) (16 bytes) and 1 / s_n (128 floats), the
// per-warp column maxima (8 x 64), 1 / s_q per quarter parity (2 x 64).
#define LW32_RB 24576
#define LW32_BL 8192
#define LW32_X 16384
#define LW32_W 98304
#define LW32_DEC (LW32_W + 512)
#define LW32_IN (LW32_DEC + 32)
#define LW32_RED (LW32_IN + 1024)
#define LW32_IQ (LW32_RED + 2048)
#define LW32_SMEM (LW32_IQ + 512)
__device__ void lmw32_states(const SsdParams& p) {
#ifdef MAMBA_EMU
    unsigned char* smem_dyn = g_smem_bytes;
#else
    extern __shared__ __align__(1024) unsigned char smem_dyn[];
#endif
    unsigned char* sm = smem_dyn + ((1024u - (lmw_sa(smem_dyn) & 1023u)) & 1023u);
    constexpr int Q = L32_Q, QQ = Q / 4, NW = 8, R = 32;
    const int P = p.headdim, H = p.nheads, L = p.seqlen, K = p.nchunks, N = p.dstate, G = p.ngroups;
    const int tid = threadIdx.x, hh = tid >> 7, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    const int ww = warp & 3;  // the warp in its warpgroup: accumulator rows 16 ww + g (+ 8)
#ifndef MAMBA_EMU
    __builtin_assume(tid < 256);
#endif
    const int q0 = blockIdx.x * 64, j = blockIdx.y, i = blockIdx.z, k = j / (H / G);
    const size_t head = (size_t)i * H + j;
    const float* xrow = static_cast<const float*>(p.x) + i * p.x_sb + (long long)j * P + q0;
    const float* brow = static_cast<const float*>(p.B) + i * p.B_sb + (long long)k * N;
    const unsigned char* hdr = reinterpret_cast<const unsigned char*>(p.seq_idx) + head * K * l32_hdr_bytes();
    const float* inv_b = static_cast<const float*>(p.out) + (size_t)i * K * G * N + (size_t)k * N;
    // Staging slots: x rows xr0 + 16 it, 16-byte chunk xc (16 per row); B rows br0 + 8 it,
    // chunk bc (32 per row: columns 8 (bc >> 1) .., hi for even bc, lo for odd; row & 7 = br0).
    const int xr0 = tid >> 4, xc = tid & 15, br0 = tid >> 5, bc = tid & 31, bn8 = bc >> 1;
    const int bdst = (bc & 1) * LW32_BL + (bn8 >> 3) * (QQ * 128) + br0 * 128 + (((bn8 & 7) ^ br0) << 4);
    const int xdst = LW32_X + xr0 * 256 + 16 * xc;
    const long long xstep = 16 * p.x_st, bstep = 8 * p.B_st;
    const int U = 4 * K;  // quarters
    // Quarter u (chunk u / 4) into buffer u % 4 (and, with a chunk's first quarter, its
    // exp(cs_end) and 1 / s_n into slot (u / 4) & 1); one commit group per call, empty past
    // the last quarter.
    auto stage = [&](int u) {
        if (u < U) {
            const int c = u >> 2, qr = u & 3, t0 = c * Q + qr * QQ, nv = L - t0;
            unsigned char* rb = sm + (u & 3) * LW32_RB;
            const float* xs = xrow + (long long)(t0 + xr0) * p.x_st + 4 * xc;
#pragma unroll
            for (int it = 0; it < QQ / 16; ++it) {
                const bool ok = xr0 + 16 * it < nv;
                ssdc_cp16(rb + xdst + it * 16 * 256, ok ? xs : xrow, ok ? 16 : 0);
                xs += xstep;
            }
            const float* bs = brow + (long long)(t0 + br0) * p.B_st + 4 * bc;
#pragma unroll
            for (int it = 0; it < QQ / 8; ++it) {
                const bool ok = br0 + 8 * it < nv;
                ssdc_cp16(rb + bdst + it * 8 * 128, ok ? bs : brow, ok ? 16 : 0);
                bs += bstep;
            }
            const unsigned char* hs = hdr + (size_t)c * l32_hdr_bytes();
            if (tid < 8) {
                ssdc_cp16(sm + LW32_W + (u & 3) * 128 + 16 * tid, hs + 12 * Q + qr * 128 + 16 * tid, 16);
            } else if (qr == 0 && tid == 8) {
                ssdc_cp16(sm + LW32_DEC + 16 * (c & 1), hs + 20 * Q, 16);
            } else if (qr == 0 && tid >= 64 && tid < 96) {
                ssdc_cp16(sm + LW32_IN + 512 * (c & 1) + 16 * (tid - 64), inv_b + (size_t)c * G * N + 4 * (tid - 64), 16);
            }
        }
        ssdc_commit();
    };
    // S[4 s + 2 h2 + e]: row q0 + 16 ww + g + 8 h2, column 64 hh + 8 s + 2 c4 + e (the wgmma
    // accumulator layout).
    float S[R], acc[R];
    auto s_off = [&](int s, int h2) { return (size_t)(ww * 16 + g + 8 * h2) * N + 64 * hh + s * 8 + 2 * c4; };
#pragma unroll
    for (int s = 0; s < NW; ++s)
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
            float2 v = make_float2(0.f, 0.f);
            if (p.init) v = *reinterpret_cast<const float2*>(p.init + (head * P + q0) * N + s_off(s, h2));
            S[4 * s + 2 * h2] = v.x;
            S[4 * s + 2 * h2 + 1] = v.y;
        }
    float* red = reinterpret_cast<float*>(sm + LW32_RED);
    // The products of quarter u folded into S.
    auto fold = [&](int u) {
        lmw_wait<0>();
        lmw_pin(acc);
        const int c = u >> 2;
        const float dec = (u & 3) == 0 ? *reinterpret_cast<const float*>(sm + LW32_DEC + 16 * (c & 1)) : 1.f;
        const float* s_in = reinterpret_cast<const float*>(sm + LW32_IN + 512 * (c & 1)) + 64 * hh;
        const float* s_iq = reinterpret_cast<const float*>(sm + LW32_IQ) + 64 * (u & 1);
        const float iq[2] = {s_iq[16 * ww + g], s_iq[16 * ww + g + 8]};
#pragma unroll
        for (int s = 0; s < NW; ++s) {
            const float2 in = *reinterpret_cast<const float2*>(s_in + 8 * s + 2 * c4);
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2) {
                const int e = 4 * s + 2 * h2;
                S[e] = fmaf(acc[e] * iq[h2], in.x, dec * S[e]);
                S[e + 1] = fmaf(acc[e + 1] * iq[h2], in.y, dec * S[e + 1]);
            }
        }
    };
    stage(0);
    stage(1);
    stage(2);
#pragma unroll 1
    for (int u = 0; u < U; ++u) {
        unsigned char* rb = sm + (u & 3) * LW32_RB;
        const float* s_w = reinterpret_cast<const float*>(sm + LW32_W + (u & 3) * 128);
        ssdc_wait<2>();     // quarter u (the next two may be in flight)
        lmw_proxy_fence();  // this thread's copies (B) are read by wgmma
        __syncthreads();
        // x w of columns 2 lane, + 1 at rows 8 m + warp, and their largest |x w|.
        float v[QQ / 8][2], m0 = 0.f, m1 = 0.f;
#pragma unroll
        for (int m = 0; m < QQ / 8; ++m) {
            const int t = 8 * m + warp;
            const float2 xv = *reinterpret_cast<const float2*>(rb + LW32_X + t * 256 + 8 * lane);
            const float w = s_w[t];
            v[m][0] = xv.x * w;
            v[m][1] = xv.y * w;
            m0 = fmaxf(m0, fabsf(v[m][0]));
            m1 = fmaxf(m1, fabsf(v[m][1]));
        }
        *reinterpret_cast<float2*>(red + warp * 64 + 2 * lane) = make_float2(m0, m1);
        __syncthreads();  // the maxima, and every read of x
#pragma unroll
        for (int w = 0; w < 8; ++w) {
            const float2 o = *reinterpret_cast<const float2*>(red + w * 64 + 2 * lane);
            m0 = fmaxf(m0, o.x);
            m1 = fmaxf(m1, o.y);
        }
        const float s0 = l32_hscale(m0), s1 = l32_hscale(m1);
#pragma unroll
        for (int m = 0; m < QQ / 8; ++m) {
            const int t = 8 * m + warp;  // t & 7 = warp
            unsigned hi, lo;
            l32_hsplit2s(v[m][0], v[m][1], s0, s1, hi, lo);
            const int o = t * 128 + (((lane >> 2) ^ warp) << 4) + 4 * (lane & 3);
            *reinterpret_cast<unsigned*>(rb + LW32_X + o) = hi;
            *reinterpret_cast<unsigned*>(rb + LW32_X + QQ * 128 + o) = lo;
        }
        if (warp == 0)
            *reinterpret_cast<float2*>(sm + LW32_IQ + 256 * (u & 1) + 8 * lane) = make_float2(1.f / s0, 1.f / s1);
        lmw_proxy_fence();  // the halves are read by wgmma
        // Quarter u - 1's products (they ran during this split) into S; S_in(c) out at a
        // chunk's first quarter.
        if (u > 0) fold(u - 1);
        if ((u & 3) == 0) {
            float* base = p.chunk_states + ((head * K + (u >> 2)) * P + q0) * (size_t)N;
#pragma unroll
            for (int s = 0; s < NW; ++s)
#pragma unroll
                for (int h2 = 0; h2 < 2; ++h2)
                    *reinterpret_cast<float2*>(base + s_off(s, h2)) = make_float2(S[4 * s + 2 * h2], S[4 * s + 2 * h2 + 1]);
        }
        __syncthreads();  // quarter u split; quarter u - 1's buffer and 1 / s_q free
        stage(u + 3);
#pragma unroll
        for (int e = 0; e < R; ++e) acc[e] = 0.f;
        lmw_pin(acc);
        lmw_fence();
#pragma unroll
        for (int kk = 0; kk < QQ / 16; ++kk) {
            const uint64_t ah = lmw_desc(rb + LW32_X + kk * 2048, QQ * 128, 1024);
            const uint64_t al = lmw_desc(rb + LW32_X + QQ * 128 + kk * 2048, QQ * 128, 1024);
            const uint64_t bh = lmw_desc(rb + hh * (QQ * 128) + kk * 2048, QQ * 128, 1024);
            const uint64_t bl = lmw_desc(rb + LW32_BL + hh * (QQ * 128) + kk * 2048, QQ * 128, 1024);
            lmw_mma_ss64_f16(acc, al, bh);
            lmw_mma_ss64_f16(acc, ah, bl);
            lmw_mma_ss64_f16(acc, ah, bh);
        }
        lmw_commit();
    }
    fold(U - 1);
    ssdc_wait<0>();
    if (p.final_states) {
#pragma unroll
        for (int s = 0; s < NW; ++s)
#pragma unroll
            for (int h2 = 0; h2 < 2; ++h2)
                *reinterpret_cast<float2*>(p.final_states + (head * P + q0) * N + s_off(s, h2)) =
                    make_float2(S[4 * s + 2 * h2], S[4 * s + 2 * h2 + 1]);
    }
}
extern "C" __global__ void __launch_bounds__(256, 2) ssdlw_states_f32_q128_n128(const __grid_constant__ SsdParams p) {
    lmw32_states(p);
}

// ---- f32: `_pfm` (the LM outputs, kernels/ssd_lm32.cu) with C S^T on wgmma
// (`ssdlw_out_f32_pfw`, twenty-ninth session; l32_out's WG). ssd_lm32.cu's own kernels are
// not compiled here (L32_HELPERS_ONLY). The emulator includes ssd_lm32.cu itself, with L32_WG.
#ifndef MAMBA_EMU
#define L32_WG
#define L32_HELPERS_ONLY
#include "ssd_lm32.cu"
#endif
