// SPEC 2 backward in chunks of 64 steps, as a few GEMM-like passes (`ssdbl_*`, included by
// kernels/ssd_bwdc.cu; host src/gpu/ssd_bwdc.rs `run`). For P = 64, N = 128 or 64, no z,
// seq_idx through the prep's cumulative sums (`SBC_RESET`, ssd_bwdc.cu). The walks, the steps and their 32-step cumulative sums are those of the
// 32-step form (`ssdbc_prep`, `ssdbc_walks_*`, with `q64` set they store only S_c and G_c of
// 64-step chunk c: their S[2c] and G[min(2c + 1, K - 1)]), and the cumulative sum over the 64-step chunk is the
// 32-step one plus, in its second half, the first half's last value. With the notation of
// ssd_bwdc.cu (cs_t now within the 64-step chunk, e_ts = e^{cs_t - cs_s}, S = S_c,
// G = G_{c+1}, the gradients summed over the heads of a group where the operand is shared):
//   DX_ts = dy_t . x_s (per head), Wm_ts = e_ts s_s DX_ts (t >= s), dCB = sum_heads Wm,
//   dB_s = sum_t dCB_ts C_t + s_s e^{cs_last - cs_s} G^T x_s,
//   dC_t = sum_s dCB_ts B_s + e^{cs_t} S^T dy_t,
//   dxh_s = sum_{t >= s} e_ts (C_t . B_s) dy_t + e^{cs_last - cs_s} G B_s,
//   dL/dcs_t = sum_{s < t} W_ts - sum_{t' > t} W_t't + e^{cs_t} dy_t . S C_t - s_t u_t
//              + [t = 63] (e^{cs_last} <G, S> + sum_s s_s u_s),
//   (the u terms summed into da_s = sum_{t >= s} dL/dcs_t as sum_{t < s} s_t u_t, `sbl_fin`),
//   W = Wm o CB, u_s = e^{cs_last - cs_s} x_s . G B_s.
// So the Q x Q x N products (dCB C, dCB B) run once per group and chunk, not per head, and
// every other product is 64 x 64 x 64 or 64 x 64 x N per head: `ssdbl_cb` (C B^T per group and
// chunk), `ssdbl_x` (per head and chunk: DX and its sums, dCB by atomics, dx, x . dxh, u),
// `ssdbl_s` (per group, chunk and 64 columns of N, looping over the group's heads with dB and
// dC in registers: G^T x, S^T dy and the rows' dy . S C), `ssdbl_cbg` (dCB C, dCB B) and
// `ssdbl_fin` (da by a suffix sum over the chunk, d dt, dA, d dt_bias). Products on the
// tensor cores as `sbc_tc` (MODE 1: tf32 operands, rounded when staged; MODE 3: 3xTF32).

#define SBL_Q 64
#define SBL_LP 68  // row stride of 64-wide tiles (= 4 mod 32 words)
#define SBL_WQ 65  // row stride of W's 64 x 64 tile (`sbl_dx_w`, `sbl_rect_*`)

struct SsdblParams {
    SsdbcParams b;
    float* cb;    // (b, K64, g, 64, 64): C_t . B_s of each 64-step chunk
    float* dcb;   // (b, K64, g, 64, 64), zeroed: dCB
    float* dcs;   // (b, h, K64 64), zeroed: dL/dcs
    float* dsd;   // (b, h, K64 64): x_s . dxh_s
    float* last;  // (b, h, K64), zeroed: the chunk's last-step term e^{cs_last} <G, S>
    float* su;    // (b, h, K64 64): s_t u_t
    float* rq;    // (b, h, K64 64): R_u = sum_{t >= u, s < u} W_ts (`sbl_rect_rows`)
    int k64;      // chunks of 64 steps
    int hpb;      // heads per block of `ssdbl_s` (a divisor of h / g)
    int hpbx;     // heads per block of `ssdbl_x` (a divisor of h / g)
    int pad;
};

__device__ __forceinline__ size_t sbl_hv(const SsdblParams& q, int i, int j, int t) {
    return ((size_t)i * q.b.nheads + j) * ((size_t)q.k64 * SBL_Q) + t;
}
// S_c and G_{c+1} of 64-step chunk c as the walks store them with `q64` set.
__device__ __forceinline__ const float* sbl_s_of(const SsdblParams& q, int i, int j, int c) {
    return q.b.S + (((size_t)i * q.b.nheads + j) * (q.k64 + 1) + c) * (size_t)(q.b.headdim * q.b.dstate);
}
__device__ __forceinline__ const float* sbl_g_of(const SsdblParams& q, int i, int j, int c) {
    return q.b.G + (((size_t)i * q.b.nheads + j) * q.k64 + c) * (size_t)(q.b.headdim * q.b.dstate);
}
__device__ __forceinline__ size_t sbl_cbi(const SsdblParams& q, int i, int c, int k) {
    return (((size_t)i * q.k64 + c) * q.b.ngroups + k) * (SBL_Q * SBL_Q);
}

// Step r of 64-step chunk c: its cumulative log-decay within the chunk, the step and its
// derivative factor (from `ssdbc_prep`'s 32-step arrays).
// `lo`: the cumulative sum within the step's 32-step half (cs = lo, or lo + the first half's
// last lo in the second half). Decays between two steps are taken from these (`sbl_dcs`), not
// as differences of cs: with large steps |cs| reaches hundreds over 64 steps, and f32's
// rounding of cs then costs the decays ~1e-5 of relative accuracy (the golden ssd_05, A down
// to -13: dA 1.2e-4 off against 1.1e-5 for the 32-step kernels, before this).
// `le`: lo's f32 remainder (`SsdbcParams::cse`), so that the decays need not take f32's
// rounding of the sums at all (fifty-eighth session).
__device__ __forceinline__ void sbl_step(const SsdbcParams& p, const SbcIdx& ix, int i, int j, int c, int r, float& cs,
                                         float& s, float& ds, float& lo, float& le) {
    const int t = SBL_Q * c + r, t32 = ix.K * SBC_Q;
    if (r < SBC_Q || t < t32) {
        const size_t h = ix.hv(i, j, t);
        cs = lo = p.csv[h];
        le = p.cse[h];
        s = p.sv[h];
        ds = p.dsv[h];
        if (r >= SBC_Q) cs += p.csv[ix.hv(i, j, SBL_Q * c + SBC_Q - 1)];
    } else {
        // The second half of a chunk past the walks' last 32-step chunk: no steps.
        cs = p.csv[ix.hv(i, j, SBL_Q * c + SBC_Q - 1)];
        lo = le = s = ds = 0.f;
    }
}
// cs_t - cs_s (t >= s) from the halves' local sums and their remainders, v[r] = (lo, le) of
// step r (`sbl_step`): within a half the differences, across the halves lo_t + (lo_31 - lo_s),
// each with its remainders' counterpart (`sbc_dcs`). E: with the remainders (f32 storage;
// the 16-bit types' inputs are rounded far beyond what they restore, and the two additions per
// decay cost ~1.5% of the LM shape's backward).
template <bool E>
__device__ __forceinline__ float sbl_dcs(const float2* v, int t, int s) {
    const float2 a = v[t], b = v[s];
    if (((t ^ s) & 32) == 0) return E ? (a.x - b.x) + (a.y - b.y) : a.x - b.x;
    const float2 m = v[SBC_Q - 1];
    return E ? (a.x + (m.x - b.x)) + (a.y + (m.y - b.y)) : a.x + (m.x - b.x);
}

// A staged product operand: MODE 1 rounded to tf32, MODE 3 as it is.
template <int MODE>
__device__ __forceinline__ float sbl_op(float v) {
    if constexpr (MODE == 1) return __uint_as_float(sbc_tf32(v));
    else return v;
}

// d[q][h] += A(m0 + 16 q .., k) B(k, n0 + 8 h ..) over k < KD (the m16n8k8 fragment layouts of
// `sbc_tc`), A(m, k) = a[m am + k ak], B(k, n) = b[k bk + n bn] in shared memory. An operand
// stored along k (ak == 1 / bk == 1, rows of 16-byte multiples: every caller's strides) is
// read with ldmatrix (`sbc_ldm4`: A's four 8 x 4 quarters, B's two k halves of two n tiles),
// the other with 4-byte loads. RB: B is raw f32, rounded to tf32 as it is loaded (MODE 1).
template <int MODE, int TMI, int TNJ, bool RB = false>
__device__ __forceinline__ void sbl_mma(float (&d)[TMI][TNJ][4], const float* a, int am, int ak, const float* b,
                                        int bk, int bn, int m0, int n0, int KD) {
    static_assert(TNJ % 2 == 0, "B tiles go in pairs");
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3, lr = lane & 7, mi = lane >> 3;
#pragma unroll 2
    for (int k0 = 0; k0 < KD; k0 += 8) {
        unsigned ua[TMI][4], ub[TNJ][2];
#pragma unroll
        for (int q = 0; q < TMI; ++q) {
            if (ak == 1) {
                sbc_ldm4(ua[q], a + (m0 + 16 * q + lr + 8 * (mi & 1)) * am + k0 + 4 * (mi >> 1));
            } else {
                const float* ap = a + (m0 + 16 * q + g) * am + (k0 + t4) * ak;
                ua[q][0] = __float_as_uint(ap[0]);
                ua[q][1] = __float_as_uint(ap[8 * am]);
                ua[q][2] = __float_as_uint(ap[4 * ak]);
                ua[q][3] = __float_as_uint(ap[8 * am + 4 * ak]);
            }
        }
#pragma unroll
        for (int h = 0; h < TNJ; h += 2) {
            if (bk == 1) {
                unsigned r[4];
                sbc_ldm4(r, b + (n0 + 8 * (h + (mi >> 1)) + lr) * bn + k0 + 4 * (mi & 1));
                ub[h][0] = r[0];
                ub[h][1] = r[1];
                ub[h + 1][0] = r[2];
                ub[h + 1][1] = r[3];
            } else {
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    const float* bp = b + (n0 + 8 * (h + u) + g) * bn + (k0 + t4) * bk;
                    ub[h + u][0] = __float_as_uint(bp[0]);
                    ub[h + u][1] = __float_as_uint(bp[4 * bk]);
                }
            }
            if constexpr (MODE == 1 && RB) {
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    ub[h + u][0] = sbc_tf32(__uint_as_float(ub[h + u][0]));
                    ub[h + u][1] = sbc_tf32(__uint_as_float(ub[h + u][1]));
                }
            }
        }
#pragma unroll
        for (int q = 0; q < TMI; ++q)
#pragma unroll
            for (int h = 0; h < TNJ; ++h) sbc_mma_u<MODE, false, false>(d[q][h], ua[q], ub[h]);
    }
}

// The accumulators' elements: f(row, column, value index e, value) for e < 4 of tile [0][h]
// (rows m0 + g, m0 + g + 8; columns n0 + 8 h + 2 t4, + 1).
template <int TNJ, typename F>
__device__ __forceinline__ void sbl_each(const float (&d)[1][TNJ][4], int m0, int n0, F f) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int h = 0; h < TNJ; ++h)
#pragma unroll
        for (int e = 0; e < 4; ++e) f(m0 + g + 8 * (e >> 1), n0 + 8 * h + 2 * t4 + (e & 1), e, d[0][h][e]);
}

// Sums v over the 4 lanes of a quad (the lanes holding one accumulator row).
__device__ __forceinline__ float sbl_quad(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}
__device__ __forceinline__ float sbl_warp(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Adds a and b to p[0], p[1] (8-byte aligned): one vector reduction on sm_90.
__device__ __forceinline__ void sbl_red2(float* p, float a, float b) {
#ifdef MAMBA_EMU
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#else
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(p), "f"(a), "f"(b) : "memory");
#endif
}

// Adds a block's dB (rows s) and dC (rows t) tiles of chunk c, group k, columns n00 .. into
// the f32 accumulators (steps past L dropped), two adjacent columns per reduction.
template <int TNJ>
__device__ __forceinline__ void sbl_add_dbc(const SsdbcParams& p, const SbcIdx& ix, const float (&ab)[1][TNJ][4],
                                            const float (&ac)[1][TNJ][4], int i, int c, int k, int n00, int m0,
                                            int n0) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int h = 0; h < TNJ; ++h)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int t = SBL_Q * c + m0 + g + 8 * hf, n = n00 + n0 + 8 * h + 2 * t4;
            if (t < ix.L) {
                sbl_red2(p.dB + ix.acc(i, t, k, n), ab[0][h][2 * hf], ab[0][h][2 * hf + 1]);
                sbl_red2(p.dC + ix.acc(i, t, k, n), ac[0][h][2 * hf], ac[0][h][2 * hf + 1]);
            }
        }
}

// Adds a block's Wm (rows t, columns s; zero above the diagonal) into dCB, two adjacent
// columns per reduction where the first is on or below the diagonal.
__device__ __forceinline__ void sbl_add_dcb(float* dcb, const float (&wacc)[1][2][4], int m0, int n0) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int t = m0 + g + 8 * hf, s = n0 + 8 * h + 2 * t4;
            if (t >= s) sbl_red2(dcb + t * SBL_Q + s, wacc[0][h][2 * hf], wacc[0][h][2 * hf + 1]);
        }
}

// C B^T of group k, batch row i, chunk c: 256 threads, warp w the outputs rows
// 16 (w >> 1) .., columns 32 (w & 1) ...
template <typename T, int NC, int MODE>
__device__ void sbl_cb(const SsdblParams& q) {
    const SsdbcParams& p = q.b;
    const SbcIdx ix = sbc_idx(p);
    const int c = blockIdx.x, k = blockIdx.y, i = blockIdx.z, tid = threadIdx.x;
    constexpr int LN = NC + 4;
    DYN_SMEM(sm);
    float* cs = sm;             // [64][LN] C_t
    float* bs = sm + 64 * LN;   // [64][LN] B_s
    for (int e = tid; e < SBL_Q * NC; e += 256) {
        const int r = e / NC, n = e - r * NC, t = SBL_Q * c + r;
        float cv = 0.f, bv = 0.f;
        if (t < ix.L) {
            cv = ldf(static_cast<const T*>(p.C) + ix.c(i, t, k, n));
            bv = ldf(static_cast<const T*>(p.B) + ix.b(i, t, k, n));
        }
        cs[r * LN + n] = sbl_op<MODE>(cv);
        bs[r * LN + n] = sbl_op<MODE>(bv);
    }
    __syncthreads();
    const int w = tid >> 5, m0 = 16 * (w >> 1), n0 = 32 * (w & 1);
    float d[1][4][4] = {};
    sbl_mma<MODE, 1, 4>(d, cs, LN, 1, bs, 1, LN, m0, n0, NC);
    float* out = q.cb + sbl_cbi(q, i, c, k);
    sbl_each<4>(d, m0, n0, [&](int t, int s, int, float v) { out[t * SBL_Q + s] = v; });
}

// 512 threads; warp w (of 16) holds the outputs rows 16 (w >> 2) .., columns 16 (w & 3) .. of
// each 64 x 64 product (two m16n8 tiles).
#define SBL_NT 512
// The 8 x 8 values of this thread in a 64 x 64 tile of T rows (x, dy): row tid / 8, columns
// 8 (tid % 8) ..; one 16-byte load (two for f32) per tile and thread. DY: dout's layout, else x's.
template <typename T, bool DY>
__device__ __forceinline__ void sbl_fetch_rows(SbcV8<T>& v, const SbcIdx& ix, const T* base, int i, int c, int j) {
    const int tid = threadIdx.x, t = SBL_Q * c + (tid >> 3);
    const bool ok = t < ix.L;
    sbc_ld8(v, base + (ok ? (DY ? ix.y(i, t, j, 8 * (tid & 7)) : ix.x(i, t, j, 8 * (tid & 7))) : 0), ok);
}
template <typename T, int MODE>
__device__ __forceinline__ void sbl_put_rows(float* dst, const SbcV8<T>& v, float scale_row = 1.f) {
    const int tid = threadIdx.x;
    float* d = dst + (tid >> 3) * SBL_LP + 8 * (tid & 7);
    float f[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = sbl_op<MODE>(scale_row * sbc_at(v, e));
    *reinterpret_cast<float4*>(d) = make_float4(f[0], f[1], f[2], f[3]);
    *reinterpret_cast<float4*>(d + 4) = make_float4(f[4], f[5], f[6], f[7]);
}

// DX = dy x^T (rows t, columns s) of the warp's 16 x 16 tile: Wm_ts = e_ts s_s DX_ts (t >= s)
// added to wacc, W = Wm o CB's strict lower triangle stored to wq (rows t, columns s, row stride
// SBL_WQ; zero on and above the diagonal) for `sbl_rect_cols` / `sbl_rect_rows`. cb(t, s) = C_t . B_s.
template <int MODE, bool E, typename CB>
__device__ __forceinline__ void sbl_dx_w(float (&wacc)[1][2][4], const float* dys, const float* xs, const float2* vlo,
                                         const float* vs, float* wq, int m0, int n0, CB cb) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    float d[1][2][4] = {};
    sbl_mma<MODE, 1, 2>(d, dys, SBL_LP, 1, xs, 1, SBL_LP, m0, n0, 64);
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int t = m0 + g + 8 * (e >> 1), s = n0 + 8 * h + 2 * t4 + (e & 1);
            float wv = 0.f;
            if (t >= s) {
                const float wm = expf(sbl_dcs<E>(vlo, t, s)) * vs[s] * d[0][h][e];
                wacc[0][h][e] += wm;
                if (t > s) wv = wm * cb(t, s);
            }
            wq[t * SBL_WQ + s] = wv;
        }
}

// da's W part, R_u = sum_{t >= u, s < u} W_ts (the W terms of the steps after u that reach back
// before u), summed as the rectangle it is. As prefix sums of W's column sums minus its row sums
// (R_{u+1} - R_u) it telescopes: where the decays are strong W sits next to the diagonal, each
// W_(v+1)v enters one column sum and the next row sum, rounded differently, and the rounding of
// every such pair before u stays in R_u; dA, a sum of s_u R_u that may cancel further, came out
// 1.07e-4 off on the emulator's large-decay case (the gradients' tolerance is 1e-4) and up to
// 5.4e-5 over 24 fresh draws of it, against 1.4e-5 and 6e-7 - 4.4e-5 for the rectangle, the
// 32-step kernels' range on the same draws (fifty-seventh session; what is left is the f32
// rounding of the cumulative sums, shared by both). Two passes over wq (after a barrier
// behind `sbl_dx_w`), 512 threads, a barrier between them:
// `sbl_rect_cols`: 8 threads per column s, 8 rows each: wq[t][s] <- sum_{t' >= t} W_t's (in place);
// `sbl_rect_rows`: 8 threads per row u: R_u = sum_{s < u} wq[u][s], returned to all 8.
__device__ __forceinline__ void sbl_rect_cols(float* wq) {
    const int tid = threadIdx.x, s = tid >> 3, r = tid & 7, lane = tid & 31;
    float v[8], acc = 0.f;
#pragma unroll
    for (int e = 7; e >= 0; --e) {
        acc += wq[(8 * r + e) * SBL_WQ + s];
        v[e] = acc;
    }
    // The later row segments of the column (its 8 threads are 8 consecutive lanes): an inclusive
    // suffix scan, then the next lane's value.
    float inc = acc;
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) {
        const float x = __shfl_sync(0xffffffffu, inc, r + o < 8 ? lane + o : lane);
        if (r + o < 8) inc += x;
    }
    float ex = __shfl_sync(0xffffffffu, inc, r < 7 ? lane + 1 : lane);
    if (r == 7) ex = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) wq[(8 * r + e) * SBL_WQ + s] = v[e] + ex;
}
__device__ __forceinline__ float sbl_rect_rows(const float* wq) {
    const int tid = threadIdx.x, u = tid >> 3, r = tid & 7;
    float acc = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        const int s = 8 * r + e;
        if (s < u) acc += wq[u * SBL_WQ + s];
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    acc += __shfl_xor_sync(0xffffffffu, acc, 4);
    return acc;
}

// Stores a, b as T to p[0], p[1] (aligned to two elements) in one store.
template <typename T>
__device__ __forceinline__ void sbl_st2(T* p, float a, float b) {
    if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float2*>(p) = make_float2(a, b);
    } else {
        struct alignas(2 * sizeof(T)) Pair {
            T x, y;
        };
        *reinterpret_cast<Pair*>(p) = Pair{cvt<T>(a), cvt<T>(b)};
    }
}

// dxh (rows s, columns p) = Mt dy + e^{cs_last - cs_s} B G^T of the warp's 16 x 16 tile (el0 /
// el1: e^{cs_last - cs_s} of its two rows), and from it dx (stored in pairs of columns),
// x . dxh into rd1 and u = x . (e^{cs_last - cs} B G^T) into rd2. B and G have rows of NC + 4;
// G is rounded as it is loaded where RB.
template <typename T, int NC, int MODE, bool RB>
__device__ __forceinline__ void sbl_dxh(const SsdbcParams& p, const SbcIdx& ix, const float* mt, const float* dys,
                                        const float* xs, const float* bs, const float* gs, const float* vs, float* rd1,
                                        float* rd2, int i, int c, int j, int m0, int n0, float el0, float el1) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    constexpr int LP = SBL_LP, LN = NC + 4, P = 64;
    float a1[1][2][4] = {}, a2[1][2][4] = {};
    sbl_mma<MODE, 1, 2>(a1, mt, LP, 1, dys, LP, 1, m0, n0, SBL_Q);
    sbl_mma<MODE, 1, 2, RB>(a2, bs, LN, 1, gs, 1, LN, m0, n0, NC);
    const bool dpc = p.d_per_channel != 0;
    float x0 = 0.f, x1 = 0.f, u0 = 0.f, u1 = 0.f, dxv[2];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int s = m0 + g + 8 * (e >> 1), qq = n0 + 8 * h + 2 * t4 + (e & 1);
            const float v2 = (e < 2 ? el0 : el1) * a2[0][h][e];
            const float dxh = a1[0][h][e] + v2;
            const float xv = xs[s * LP + qq], dyv = dys[s * LP + qq];
            const float dv = p.D ? (dpc ? p.D[j * P + qq] : p.D[j]) : 0.f;
            dxv[e & 1] = vs[s] * dxh + dv * dyv;
            // dx of columns qq - 1, qq in one store.
            if ((e & 1) && SBL_Q * c + s < ix.L)
                sbl_st2<T>(static_cast<T*>(p.dx) + ix.dx(i, SBL_Q * c + s, j, qq - 1), dxv[0], dxv[1]);
            if (e < 2) {
                x0 = fmaf(xv, dxh, x0);
                u0 = fmaf(xv, v2, u0);
            } else {
                x1 = fmaf(xv, dxh, x1);
                u1 = fmaf(xv, v2, u1);
            }
        }
    x0 = sbl_quad(x0);
    x1 = sbl_quad(x1);
    u0 = sbl_quad(u0);
    u1 = sbl_quad(u1);
    if (t4 == 0) {
        atomicAdd(rd1 + m0 + g, x0);
        atomicAdd(rd1 + m0 + g + 8, x1);
        atomicAdd(rd2 + m0 + g, u0);
        atomicAdd(rd2 + m0 + g + 8, u1);
    }
}

// dD of head j: per channel (a thread per column, one atomic each); per head this warp's
// partial sum in red[warp] (the caller adds the warps' after a barrier).
__device__ __forceinline__ void sbl_dd(const SsdbcParams& p, const float* dys, const float* xs, int j, float* red) {
    const int tid = threadIdx.x;
    constexpr int LP = SBL_LP, P = 64;
    if (!p.dD) return;
    if (p.d_per_channel != 0) {
        if (tid < P) {
            float v = 0.f;
            for (int t = 0; t < SBL_Q; ++t) v = fmaf(dys[t * LP + tid], xs[t * LP + tid], v);
            if (v != 0.f) atomicAdd(p.dD + j * P + tid, v);
        }
    } else {
        float v = 0.f;
        for (int e = tid; e < SBL_Q * P; e += SBL_NT) v = fmaf(dys[(e >> 6) * LP + (e & 63)], xs[(e >> 6) * LP + (e & 63)], v);
        v = sbl_warp(v);
        if ((tid & 31) == 0) red[tid >> 5] = v;
    }
}

// Per chunk and q.hpbx heads of one group (blockIdx.y = k (hpg / hpbx) + hx): DX = dy x^T (its
// W row / column sums per head, Wm summed over the block's heads in registers and added to
// dCB once), dxh and dx, x . dxh, u, dD. B and C B^T staged once per block; the next head's
// x, dy and G are loaded into registers while the current one computes.
template <typename T, int NC, int MODE>
__device__ void sbl_x(const SsdblParams& q) {
    const SsdbcParams& p = q.b;
    const SbcIdx ix = sbc_idx(p);
    const int c = blockIdx.x, i = blockIdx.z, tid = threadIdx.x;
    const int hpg = ix.H / ix.G, nxb = hpg / q.hpbx, k = blockIdx.y / nxb;
    const int j0 = k * hpg + (blockIdx.y - k * nxb) * q.hpbx;
    constexpr int LP = SBL_LP, LN = NC + 4, NG4 = NC / 32;
    DYN_SMEM(sm);
    float* dys = sm;              // [64 t][LP] dy
    float* xs = dys + 64 * LP;    // [64 s][LP] x
    float* mt = xs + 64 * LP;     // [64 s][LP] e_ts CB_ts (t >= s)
    float* cbs = mt + 64 * LP;    // [64 t][LP] CB (f32)
    float* bs = cbs + 64 * LP;    // [64 s][LN] B
    float* gs = bs + 64 * LN;     // [64 p][LN] G
    float* vs = gs + 64 * LN;     // [64] s
    float* rd1 = vs + 64;         // [64] x . dxh
    float* rd2 = rd1 + 64;        // [64] u
    float2* vlo = reinterpret_cast<float2*>(rd2 + 64);  // [64] (lo, le) of `sbl_step`
    constexpr bool E = sizeof(T) == 4;  // decays with cs's remainders (`sbl_dcs`)
    float* red = rd2 + 64 + 128;  // [16]
    float* wq = red + 16;         // [64 t][SBL_WQ] W (strict lower)
    const float* cbg = q.cb + sbl_cbi(q, i, c, k);
    for (int v = tid; v < SBL_Q * (NC / 8); v += SBL_NT) {
        const int r = v / (NC / 8), cc = 8 * (v - r * (NC / 8)), t = SBL_Q * c + r;
        SbcV8<T> bv;
        sbc_ld8(bv, static_cast<const T*>(p.B) + (t < ix.L ? ix.b(i, t, k, cc) : 0), t < ix.L);
#pragma unroll
        for (int e = 0; e < 8; ++e) bs[r * LN + cc + e] = sbl_op<MODE>(sbc_at(bv, e));
    }
    for (int v = tid; v < SBL_Q * SBL_Q / 4; v += SBL_NT) {
        const int t = v >> 4, s4 = 4 * (v & 15);
        *reinterpret_cast<float4*>(cbs + t * LP + s4) = reinterpret_cast<const float4*>(cbg)[v];
    }
    SbcV8<T> px, py;
    float4 pg[NG4];
    auto fetch = [&](int j) {
        sbl_fetch_rows<T, false>(px, ix, static_cast<const T*>(p.x), i, c, j);
        sbl_fetch_rows<T, true>(py, ix, static_cast<const T*>(p.dout), i, c, j);
        const float4* g4 = reinterpret_cast<const float4*>(sbl_g_of(q, i, j, c));
#pragma unroll
        for (int u = 0; u < NG4; ++u) pg[u] = g4[tid + u * SBL_NT];
    };
    fetch(j0);
    const int w = tid >> 5, g = (tid & 31) >> 2, m0 = 16 * (w >> 2), n0 = 16 * (w & 3);
    float wacc[1][2][4] = {};
    const bool dpc = p.d_per_channel != 0;
    for (int jj = 0; jj < q.hpbx; ++jj) {
        const int j = j0 + jj;
        __syncthreads();  // the previous head's tiles are read
        if (tid < SBL_Q) {
            float cs, sv, ds, lo, le;
            sbl_step(p, ix, i, j, c, tid, cs, sv, ds, lo, le);
            vs[tid] = sv;
            vlo[tid] = make_float2(lo, le);
            rd1[tid] = rd2[tid] = 0.f;
        }
        sbl_put_rows<T, MODE>(xs, px);
        sbl_put_rows<T, MODE>(dys, py);
#pragma unroll
        for (int u = 0; u < NG4; ++u) {
            const int v = tid + u * SBL_NT, r = v / (NC / 4), cc = 4 * (v - r * (NC / 4));
            *reinterpret_cast<float4*>(gs + r * LN + cc) = make_float4(sbl_op<MODE>(pg[u].x), sbl_op<MODE>(pg[u].y),
                                                                       sbl_op<MODE>(pg[u].z), sbl_op<MODE>(pg[u].w));
        }
        if (jj + 1 < q.hpbx) fetch(j + 1);
        __syncthreads();
        for (int e = tid; e < SBL_Q * SBL_Q; e += SBL_NT) {
            const int t = e >> 6, s = e & 63;
            mt[s * LP + t] = sbl_op<MODE>(t >= s ? expf(sbl_dcs<E>(vlo, t, s)) * cbs[t * LP + s] : 0.f);
        }
        __syncthreads();
        sbl_dx_w<MODE, E>(wacc, dys, xs, vlo, vs, wq, m0, n0, [&](int t, int s) { return cbs[t * LP + s]; });
        sbl_dxh<T, NC, MODE, false>(p, ix, mt, dys, xs, bs, gs, vs, rd1, rd2, i, c, j, m0, n0,
                                    expf(sbl_dcs<E>(vlo, SBL_Q - 1, m0 + g)), expf(sbl_dcs<E>(vlo, SBL_Q - 1, m0 + g + 8)));
        sbl_dd(p, dys, xs, j, red);
        __syncthreads();
        sbl_rect_cols(wq);
        if (p.dD && !dpc && tid == 0) {
            float v = 0.f;
            for (int u = 0; u < SBL_NT / 32; ++u) v += red[u];
            if (v != 0.f) atomicAdd(p.dD + j, v);
        }
        if (tid < SBL_Q) {
            const int s = tid;
            const size_t h = sbl_hv(q, i, j, SBL_Q * c + s);
            q.dsd[h] = rd1[s];
            q.su[h] = vs[s] * rd2[s];
        }
        __syncthreads();
        {
            const float rr = sbl_rect_rows(wq);
            if ((tid & 7) == 0) q.rq[sbl_hv(q, i, j, SBL_Q * c + (tid >> 3))] = rr;
        }
    }
    float* dcb = q.dcb + sbl_cbi(q, i, c, k);
    sbl_add_dcb(dcb, wacc, m0, n0);
}

// Per group, chunk and 64 columns of N (blockIdx.y = (k NB + nb) HS + hs), over q.hpb heads of
// the group: dB += (s e^{cs_last - cs} x)^T G, dC += (e^{cs} dy) S, the rows' (e^{cs_t} dy_t) .
// S C_t into dcs, e^{cs_last} <G, S> into last. 512 threads, warp tiles as `sbl_x`; the next
// head's x, dy, G and S are loaded into registers while the current one computes.
template <typename T, int NC, int MODE>
__device__ void sbl_s(const SsdblParams& q) {
    const SsdbcParams& p = q.b;
    const SbcIdx ix = sbc_idx(p);
    constexpr int LP = SBL_LP, P = 64, NB = NC / 64;
    const int c = blockIdx.x, i = blockIdx.z, tid = threadIdx.x;
    const int hs_n = (ix.H / ix.G) / q.hpb;
    const int hs = blockIdx.y % hs_n, kn = blockIdx.y / hs_n, nb = kn % NB, k = kn / NB;
    const int n00 = 64 * nb;
    DYN_SMEM(sm);
    float* xsc = sm;              // [64 s][LP] s_s e^{cs_last - cs_s} x_s
    float* ysc = xsc + 64 * LP;   // [64 t][LP] e^{cs_t} dy_t
    float* gn = ysc + 64 * LP;    // [64 p][LP] G (the block's columns)
    float* sn = gn + 64 * LP;     // [64 p][LP] S
    float* cn = sn + 64 * LP;     // [64 t][LP] C (f32, unrounded)
    float* fx = cn + 64 * LP;     // [64] x scale
    float* fy = fx + 64;          // [64] dy scale
    float* rdot = fy + 64;        // [64]
    float2* vlo = reinterpret_cast<float2*>(rdot + 64);  // [64] (lo, le) of `sbl_step`
    constexpr bool E = sizeof(T) == 4;  // decays with cs's remainders (`sbl_dcs`)
    float* red = rdot + 64 + 128;  // [16]
    for (int v = tid; v < SBL_Q * 8; v += SBL_NT) {
        const int r = v >> 3, cc = 8 * (v & 7), t = SBL_Q * c + r;
        SbcV8<T> cv;
        sbc_ld8(cv, static_cast<const T*>(p.C) + (t < ix.L ? ix.c(i, t, k, n00 + cc) : 0), t < ix.L);
#pragma unroll
        for (int e = 0; e < 8; ++e) cn[r * LP + cc + e] = sbc_at(cv, e);
    }
    const int w = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3, m0 = 16 * (w >> 2), n0 = 16 * (w & 3);
    float ab[1][2][4] = {}, ac[1][2][4] = {};
    const int j0 = k * (ix.H / ix.G) + hs * q.hpb;
    // The 64 x 64 f32 tiles of G and S: float4 v = tid + 512 u, row v / 16, columns 4 (v % 16) ...
    SbcV8<T> px, py;
    float4 pg[2], ps[2];
    auto fetch = [&](int j) {
        sbl_fetch_rows<T, false>(px, ix, static_cast<const T*>(p.x), i, c, j);
        sbl_fetch_rows<T, true>(py, ix, static_cast<const T*>(p.dout), i, c, j);
        const float* gsrc = sbl_g_of(q, i, j, c) + n00;
        const float* ssrc = sbl_s_of(q, i, j, c) + n00;
#pragma unroll
        for (int u = 0; u < 2; ++u) {
            const int v = tid + u * SBL_NT, r = v >> 4, cc = 4 * (v & 15);
            pg[u] = *reinterpret_cast<const float4*>(gsrc + (size_t)r * NC + cc);
            ps[u] = *reinterpret_cast<const float4*>(ssrc + (size_t)r * NC + cc);
        }
    };
    fetch(j0);
    for (int jj = 0; jj < q.hpb; ++jj) {
        const int j = j0 + jj;
        __syncthreads();  // the previous head's tiles are read
        if (tid < SBL_Q) {
            float cs, sv, ds, lo, le;
            sbl_step(p, ix, i, j, c, tid, cs, sv, ds, lo, le);
            fy[tid] = cs;
            fx[tid] = sv;
            vlo[tid] = make_float2(lo, le);
        }
        __syncthreads();
        const float csl = fy[SBL_Q - 1];
        // This thread's row of x / dy and its scales (read before the barrier below).
        const int r = tid >> 3;
        const float xf = expf(sbl_dcs<E>(vlo, SBL_Q - 1, r)) * fx[r], yf = expf(fy[r]);
        float gsum = 0.f;
#pragma unroll
        for (int u = 0; u < 2; ++u) {
            const int v = tid + u * SBL_NT, rr = v >> 4, cc = 4 * (v & 15);
            gsum = fmaf(pg[u].x, ps[u].x, fmaf(pg[u].y, ps[u].y, fmaf(pg[u].z, ps[u].z, fmaf(pg[u].w, ps[u].w, gsum))));
            *reinterpret_cast<float4*>(gn + rr * LP + cc) = make_float4(sbl_op<MODE>(pg[u].x), sbl_op<MODE>(pg[u].y),
                                                                        sbl_op<MODE>(pg[u].z), sbl_op<MODE>(pg[u].w));
            *reinterpret_cast<float4*>(sn + rr * LP + cc) = make_float4(sbl_op<MODE>(ps[u].x), sbl_op<MODE>(ps[u].y),
                                                                        sbl_op<MODE>(ps[u].z), sbl_op<MODE>(ps[u].w));
        }
        sbl_put_rows<T, MODE>(xsc, px, xf);
        sbl_put_rows<T, MODE>(ysc, py, yf);
        if (jj + 1 < q.hpb) fetch(j + 1);
        gsum = sbl_warp(gsum);
        if (lane == 0) red[w] = gsum;
        __syncthreads();
        if (tid < SBL_Q) rdot[tid] = 0.f;
        if (tid == 0) {
            float v = 0.f;
            for (int u = 0; u < SBL_NT / 32; ++u) v += red[u];
            atomicAdd(q.last + ((size_t)i * ix.H + j) * q.k64 + c, expf(csl) * v);
        }
        __syncthreads();
        // dB (rows s, columns n) += xsc^T G: A(s, p) = xsc[s][p], B(p, n) = gn[p][n].
        sbl_mma<MODE, 1, 2>(ab, xsc, LP, 1, gn, LP, 1, m0, n0, P);
        // (e^{cs} dy) S (rows t, columns n).
        float tq[1][2][4] = {};
        sbl_mma<MODE, 1, 2>(tq, ysc, LP, 1, sn, LP, 1, m0, n0, P);
        float r0 = 0.f, r1 = 0.f;
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int t = m0 + g + 8 * (e >> 1), n = n0 + 8 * h + 2 * t4 + (e & 1);
                const float v = tq[0][h][e];
                ac[0][h][e] += v;
                if (e < 2) r0 = fmaf(v, cn[t * LP + n], r0);
                else r1 = fmaf(v, cn[t * LP + n], r1);
            }
        r0 = sbl_quad(r0);
        r1 = sbl_quad(r1);
        if (t4 == 0) {
            atomicAdd(rdot + m0 + g, r0);
            atomicAdd(rdot + m0 + g + 8, r1);
        }
        __syncthreads();
        if (tid < SBL_Q) atomicAdd(q.dcs + sbl_hv(q, i, j, SBL_Q * c + tid), rdot[tid]);
    }
    sbl_add_dbc<2>(p, ix, ab, ac, i, c, k, n00, m0, n0);
}

// cp.async of 16 bytes into shared memory, its commit and the wait for every committed copy.
__device__ __forceinline__ void sbl_cp16(float* dst, const float* src) {
#ifdef MAMBA_EMU
    emu_cp16(dst, src, 16);  // lands at the wait that covers its group (emu/emu_cuda.h)
#else
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
#endif
}
__device__ __forceinline__ void sbl_cp_commit() {
#ifdef MAMBA_EMU
    emu_cp_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void sbl_cp_wait0() {
#ifdef MAMBA_EMU
    emu_cp_wait(0);
#else
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

// `sbl_x` and `sbl_s` in one pass (`ssdbl_xs`): per chunk and q.hpbx heads of one group
// (blockIdx.y as `sbl_x`), every product of both over all N, so each head's x, dy, G and S are
// read once (x and dy three times at N 128 and G twice with the two kernels). dB and dC are
// summed over the block's heads in registers (warp tiles of 16 rows and N / 4 columns), Wm as
// in `sbl_x`; x, dy and G of the next head are loaded into registers and S by cp.async while
// the current head computes. G and S stay f32 in shared memory (rounded to tf32 as operands
// in MODE 1), so <G, S> is taken from them as `sbl_s` takes it. This block is the only writer
// of its heads' dcs, dsd, su and last (stores, not atomics).
template <typename T, int NC, int MODE>
__device__ void sbl_xs(const SsdblParams& q) {
    const SsdbcParams& p = q.b;
    const SbcIdx ix = sbc_idx(p);
    const int c = blockIdx.x, i = blockIdx.z, tid = threadIdx.x;
    const int hpg = ix.H / ix.G, nxb = hpg / q.hpbx, k = blockIdx.y / nxb;
    const int j0 = k * hpg + (blockIdx.y - k * nxb) * q.hpbx;
    // S's rows are 8 mod 32 words apart: its only product reads it across rows (k = p), free
    // of bank conflicts at that stride (4 mod 32: two-way).
    constexpr int LP = SBL_LP, LN = NC + 4, LS = NC + 8, P = 64, NG4 = NC / 32, TNB = NC / 32;
    DYN_SMEM(sm);
    float* dys = sm;              // [64 t][LP] dy
    float* xs = dys + 64 * LP;    // [64 s][LP] x
    float* mt = xs + 64 * LP;     // [64 s][LP] e_ts CB_ts (t >= s)
    float* cbt = mt + 64 * LP;    // [64 s][LP] CB transposed: cbt[s][t] = C_t . B_s (f32)
    float* bs = cbt + 64 * LP;    // [64 s][LN] B (an operand)
    float* cn = bs + 64 * LN;     // [64 t][LN] C (f32)
    float* gs = cn + 64 * LN;     // [64 p][LN] G (f32)
    float* sn = gs + 64 * LN;     // [64 p][LS] S (f32)
    float* vs = sn + 64 * LS;     // [64] s
    float2* vlo = reinterpret_cast<float2*>(vs + 64);  // [64] (lo, le) of `sbl_step`
    constexpr bool E = sizeof(T) == 4;  // decays with cs's remainders (`sbl_dcs`)
    float* vcs = vs + 64 + 128;   // [64] cs
    float* rd1 = vcs + 64;        // [64] x . dxh
    float* rd2 = rd1 + 64;        // [64] u
    float* rdot = rd2 + 64;       // [64] (e^{cs} dy) . S C
    float* red = rdot + 64;       // [32] dD per head (16 warps), <G, S> (16)
    float* wq = red + 32;         // [64 t][SBL_WQ] W (strict lower)
    const float* cbg = q.cb + sbl_cbi(q, i, c, k);
    for (int v = tid; v < SBL_Q * (NC / 8); v += SBL_NT) {
        const int r = v / (NC / 8), cc = 8 * (v - r * (NC / 8)), t = SBL_Q * c + r;
        const bool ok = t < ix.L;
        SbcV8<T> bv, cv;
        sbc_ld8(bv, static_cast<const T*>(p.B) + (ok ? ix.b(i, t, k, cc) : 0), ok);
        sbc_ld8(cv, static_cast<const T*>(p.C) + (ok ? ix.c(i, t, k, cc) : 0), ok);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
            bs[r * LN + cc + e] = sbl_op<MODE>(sbc_at(bv, e));
            cn[r * LN + cc + e] = sbc_at(cv, e);
        }
    }
    // Transposed (lanes along t), so that the per-head passes over it (mt, W's sums) read and
    // write rows of it without bank conflicts.
    for (int e = tid; e < SBL_Q * SBL_Q; e += SBL_NT) {
        const int t = e & 63, s = e >> 6;
        cbt[s * LP + t] = cbg[t * SBL_Q + s];
    }
    // The 64 x NC f32 tiles of G and S: float4 v = tid + 512 u, row v / (NC / 4).
    SbcV8<T> px, py;
    float4 pg[NG4];
    auto fetch = [&](int j) {
        sbl_fetch_rows<T, false>(px, ix, static_cast<const T*>(p.x), i, c, j);
        sbl_fetch_rows<T, true>(py, ix, static_cast<const T*>(p.dout), i, c, j);
        const float4* g4 = reinterpret_cast<const float4*>(sbl_g_of(q, i, j, c));
#pragma unroll
        for (int u = 0; u < NG4; ++u) pg[u] = g4[tid + u * SBL_NT];
    };
    fetch(j0);
    const int w = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int m0 = 16 * (w >> 2), n0 = 16 * (w & 3), nw = (NC / 4) * (w & 3);
    float wacc[1][2][4] = {}, ab[1][TNB][4] = {}, ac[1][TNB][4] = {};
    const bool dpc = p.d_per_channel != 0;
    for (int jj = 0; jj < q.hpbx; ++jj) {
        const int j = j0 + jj;
        __syncthreads();  // the previous head's tiles are read
        {
            const float* src = sbl_s_of(q, i, j, c);
#pragma unroll
            for (int u = 0; u < NG4; ++u) {
                const int v = tid + u * SBL_NT, r = v / (NC / 4), cc = 4 * (v - r * (NC / 4));
                sbl_cp16(sn + r * LS + cc, src + 4 * (size_t)v);
            }
            sbl_cp_commit();
        }
        if (tid < SBL_Q) {
            float cs, sv, ds, lo, le;
            sbl_step(p, ix, i, j, c, tid, cs, sv, ds, lo, le);
            vs[tid] = sv;
            vlo[tid] = make_float2(lo, le);
            vcs[tid] = cs;
            rd1[tid] = rd2[tid] = rdot[tid] = 0.f;
        }
        sbl_put_rows<T, MODE>(xs, px);
        sbl_put_rows<T, MODE>(dys, py);
#pragma unroll
        for (int u = 0; u < NG4; ++u) {
            const int v = tid + u * SBL_NT, r = v / (NC / 4), cc = 4 * (v - r * (NC / 4));
            *reinterpret_cast<float4*>(gs + r * LN + cc) = pg[u];
        }
        if (jj + 1 < q.hpbx) fetch(j + 1);
        __syncthreads();
        for (int e = tid; e < SBL_Q * SBL_Q; e += SBL_NT) {
            const int t = e & 63, s = e >> 6;
            mt[s * LP + t] = sbl_op<MODE>(t >= s ? expf(sbl_dcs<E>(vlo, t, s)) * cbt[s * LP + t] : 0.f);
        }
        __syncthreads();
        sbl_dx_w<MODE, E>(wacc, dys, xs, vlo, vs, wq, m0, n0, [&](int t, int s) { return cbt[s * LP + t]; });
        // e^{cs_last - cs_s} of this thread's two accumulator rows.
        const float el0 = expf(sbl_dcs<E>(vlo, SBL_Q - 1, m0 + g)), el1 = expf(sbl_dcs<E>(vlo, SBL_Q - 1, m0 + g + 8));
        sbl_dxh<T, NC, MODE, true>(p, ix, mt, dys, xs, bs, gs, vs, rd1, rd2, i, c, j, m0, n0, el0, el1);
        {
            // dB (rows s, columns n) += s_s e^{cs_last - cs_s} (x^T G)_s.
            float d[1][TNB][4] = {};
            sbl_mma<MODE, 1, TNB, true>(d, xs, LP, 1, gs, LN, 1, m0, nw, P);
            const float f0 = el0 * vs[m0 + g], f1 = el1 * vs[m0 + g + 8];
#pragma unroll
            for (int h = 0; h < TNB; ++h)
#pragma unroll
                for (int e = 0; e < 4; ++e) ab[0][h][e] = fmaf(e < 2 ? f0 : f1, d[0][h][e], ab[0][h][e]);
        }
        sbl_dd(p, dys, xs, j, red);
        sbl_cp_wait0();
        __syncthreads();  // S has landed for every thread (and W is in wq)
        sbl_rect_cols(wq);
        {
            // dC (rows t, columns n) += e^{cs_t} (dy S)_t, and the rows' (e^{cs_t} dy_t S) . C_t.
            float d[1][TNB][4] = {};
            sbl_mma<MODE, 1, TNB, true>(d, dys, LP, 1, sn, LS, 1, m0, nw, P);
            const float y0 = expf(vcs[m0 + g]), y1 = expf(vcs[m0 + g + 8]);
            float r0 = 0.f, r1 = 0.f;
#pragma unroll
            for (int h = 0; h < TNB; ++h)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int t = m0 + g + 8 * (e >> 1), n = nw + 8 * h + 2 * t4 + (e & 1);
                    const float v = (e < 2 ? y0 : y1) * d[0][h][e];
                    ac[0][h][e] += v;
                    if (e < 2) r0 = fmaf(v, cn[t * LN + n], r0);
                    else r1 = fmaf(v, cn[t * LN + n], r1);
                }
            r0 = sbl_quad(r0);
            r1 = sbl_quad(r1);
            if (t4 == 0) {
                atomicAdd(rdot + m0 + g, r0);
                atomicAdd(rdot + m0 + g + 8, r1);
            }
        }
        {
            // <G, S> over this thread's float4 groups.
            float gsum = 0.f;
#pragma unroll
            for (int u = 0; u < NG4; ++u) {
                const int v = tid + u * SBL_NT, r = v / (NC / 4), cc = 4 * (v - r * (NC / 4));
                const float4 a = *reinterpret_cast<const float4*>(gs + r * LN + cc);
                const float4 b = *reinterpret_cast<const float4*>(sn + r * LS + cc);
                gsum = fmaf(a.x, b.x, fmaf(a.y, b.y, fmaf(a.z, b.z, fmaf(a.w, b.w, gsum))));
            }
            gsum = sbl_warp(gsum);
            if (lane == 0) red[16 + w] = gsum;
        }
        __syncthreads();
        if (tid < SBL_Q) {
            const int s = tid;
            const size_t h = sbl_hv(q, i, j, SBL_Q * c + s);
            q.dsd[h] = rd1[s];
            q.su[h] = vs[s] * rd2[s];
            q.dcs[h] = rdot[s];
        }
        {
            const float rr = sbl_rect_rows(wq);
            if ((tid & 7) == 0) q.rq[sbl_hv(q, i, j, SBL_Q * c + (tid >> 3))] = rr;
        }
        if (tid == 0) {
            float v = 0.f;
            for (int u = 0; u < SBL_NT / 32; ++u) v += red[16 + u];
            q.last[((size_t)i * ix.H + j) * q.k64 + c] = expf(vcs[SBL_Q - 1]) * v;
            if (p.dD && !dpc) {
                float dd = 0.f;
                for (int u = 0; u < SBL_NT / 32; ++u) dd += red[u];
                if (dd != 0.f) atomicAdd(p.dD + j, dd);
            }
        }
    }
    float* dcb = q.dcb + sbl_cbi(q, i, c, k);
    sbl_add_dcb(dcb, wacc, m0, n0);
    sbl_add_dbc<TNB>(p, ix, ab, ac, i, c, k, 0, m0, nw);
}

// dB += dCB^T C, dC += dCB B per group, chunk and 64 columns of N (blockIdx.y = k NB + nb).
template <typename T, int NC, int MODE>
__device__ void sbl_cbg(const SsdblParams& q) {
    const SsdbcParams& p = q.b;
    const SbcIdx ix = sbc_idx(p);
    constexpr int LP = SBL_LP, NB = NC / 64;
    const int c = blockIdx.x, i = blockIdx.z, tid = threadIdx.x, nb = blockIdx.y % NB, k = blockIdx.y / NB;
    const int n00 = 64 * nb;
    DYN_SMEM(sm);
    float* dcb = sm;             // [64 t][LP]
    float* cn = dcb + 64 * LP;   // [64 t][LP]
    float* bn = cn + 64 * LP;    // [64 s][LP]
    const float* src = q.dcb + sbl_cbi(q, i, c, k);
    for (int e = tid; e < SBL_Q * 64; e += 256) {
        const int r = e >> 6, n = e & 63, t = SBL_Q * c + r;
        dcb[r * LP + n] = sbl_op<MODE>(src[e]);
        float cv = 0.f, bv = 0.f;
        if (t < ix.L) {
            cv = ldf(static_cast<const T*>(p.C) + ix.c(i, t, k, n00 + n));
            bv = ldf(static_cast<const T*>(p.B) + ix.b(i, t, k, n00 + n));
        }
        cn[r * LP + n] = sbl_op<MODE>(cv);
        bn[r * LP + n] = sbl_op<MODE>(bv);
    }
    __syncthreads();
    const int w = tid >> 5, m0 = 16 * (w >> 1), n0 = 32 * (w & 1);
    float ab[1][4][4] = {}, ac[1][4][4] = {};
    // dB (rows s): A(s, t) = dcb[t][s], B(t, n) = cn[t][n]. dC (rows t): A(t, s) = dcb[t][s], B(s, n) = bn[s][n].
    sbl_mma<MODE, 1, 4>(ab, dcb, 1, LP, cn, LP, 1, m0, n0, SBL_Q);
    sbl_mma<MODE, 1, 4>(ac, dcb, LP, 1, bn, LP, 1, m0, n0, SBL_Q);
    sbl_add_dbc<4>(p, ix, ab, ac, i, c, k, n00, m0, n0);
}

// da by a suffix sum over the chunk, d dt, dA, d dt_bias: 64 threads per (chunk, head, row).
template <typename T>
__device__ void sbl_fin(const SsdblParams& q) {
    const SsdbcParams& p = q.b;
    const SbcIdx ix = sbc_idx(p);
    const int c = blockIdx.x, j = blockIdx.y, i = blockIdx.z, r = threadIdx.x, lane = r & 31;
    __shared__ float sh[4];
    float cs, s, ds, lo, le;
    sbl_step(p, ix, i, j, c, r, cs, s, ds, lo, le);
    const size_t h = sbl_hv(q, i, j, SBL_Q * c + r);
    float v = q.dcs[h];
    if (r == SBL_Q - 1) v += q.last[((size_t)i * ix.H + j) * q.k64 + c];
    // da_r = sum_{t >= r} dcs_t + sum_{t < r} s_t u_t: the u terms, -s_t u_t at every t and
    // their total at the last step, as the prefix sum they come to (summed as written they
    // cancel to it, losing f32 digits where the decays are strong: dA 1.2e-4 off against
    // 2e-5 for the 32-step kernels on the emulator's EMU_SBL_BIGA case).
    // Suffix sums of dcs and prefix sums of s u over each warp, then across the two warps.
    float a = v, pu = q.su[h];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float u = __shfl_sync(0xffffffffu, a, lane + o < 32 ? lane + o : lane);
        const float w = __shfl_sync(0xffffffffu, pu, lane >= o ? lane - o : lane);
        if (lane + o < 32) a += u;
        if (lane >= o) pu += w;
    }
    if (r == 32) sh[0] = a;
    if (r == 31) sh[1] = pu;
    __syncthreads();
    if (r < 32) a += sh[0];
    else pu += sh[1];
    // Exclusive: without s_r u_r itself; then W's part, R_r (`sbl_rect_rows`).
    a += pu - q.su[h];
    a += q.rq[h];
    const int t = SBL_Q * c + r;
    const float dstep = q.dsd[h] + p.A[j] * a;
    float dav = s * a, draw = dstep * ds;
    if (t < ix.L) static_cast<T*>(p.ddt)[ix.ddt(i, t, j)] = cvt<T>(draw);
    else dav = draw = 0.f;
    dav = sbl_warp(dav);
    draw = sbl_warp(draw);
    __syncthreads();
    if (lane == 0) {
        sh[2 * (r >> 5)] = dav;
        sh[2 * (r >> 5) + 1] = draw;
    }
    __syncthreads();
    if (r == 0) {
        atomicAdd(p.dA + j, sh[0] + sh[2]);
        if (p.ddt_bias) atomicAdd(p.ddt_bias + j, sh[1] + sh[3]);
    }
}

// Shared memory (bytes) of the kernels.
__host__ __device__ constexpr int sbl_cb_smem(int nc) { return 4 * 2 * 64 * (nc + 4); }
__host__ __device__ constexpr int sbl_x_smem(int nc) { return 4 * (4 * 64 * SBL_LP + 2 * 64 * (nc + 4) + 5 * 64 + 16 + 64 * SBL_WQ); }
__host__ __device__ constexpr int sbl_s_smem() { return 4 * (5 * 64 * SBL_LP + 5 * 64 + 16); }
__host__ __device__ constexpr int sbl_cbg_smem() { return 4 * 3 * 64 * SBL_LP; }
__host__ __device__ constexpr int sbl_xs_smem(int nc) { return 4 * (4 * 64 * SBL_LP + 3 * 64 * (nc + 4) + 64 * (nc + 8) + 7 * 64 + 32 + 64 * SBL_WQ); }

#define SBL_SHAPE(T, SFX, NC, MODE)                                                                                         \
    extern "C" __global__ void __launch_bounds__(256, 2) ssdbl_cb_##SFX##_n##NC##_m##MODE(const __grid_constant__ SsdblParams q) {  \
        sbl_cb<T, NC, MODE>(q);                                                                                             \
    }                                                                                                                       \
    extern "C" __global__ void __launch_bounds__(SBL_NT, 1) ssdbl_x_##SFX##_n##NC##_m##MODE(const __grid_constant__ SsdblParams q) { \
        sbl_x<T, NC, MODE>(q);                                                                                              \
    }                                                                                                                       \
    extern "C" __global__ void __launch_bounds__(SBL_NT, 1) ssdbl_s_##SFX##_n##NC##_m##MODE(const __grid_constant__ SsdblParams q) { \
        sbl_s<T, NC, MODE>(q);                                                                                              \
    }                                                                                                                       \
    extern "C" __global__ void __launch_bounds__(SBL_NT, 1) ssdbl_xs_##SFX##_n##NC##_m##MODE(const __grid_constant__ SsdblParams q) { \
        sbl_xs<T, NC, MODE>(q);                                                                                             \
    }                                                                                                                       \
    extern "C" __global__ void __launch_bounds__(256, 2) ssdbl_cbg_##SFX##_n##NC##_m##MODE(const __grid_constant__ SsdblParams q) { \
        sbl_cbg<T, NC, MODE>(q);                                                                                            \
    }
#define SBL_KERNELS(T, SFX)                                                                                       \
    extern "C" __global__ void __launch_bounds__(64) ssdbl_fin_##SFX(const __grid_constant__ SsdblParams q) {     \
        sbl_fin<T>(q);                                                                                            \
    }                                                                                                             \
    SBL_SHAPE(T, SFX, 128, 1)                                                                                     \
    SBL_SHAPE(T, SFX, 128, 3)                                                                                     \
    SBL_SHAPE(T, SFX, 64, 1)                                                                                      \
    SBL_SHAPE(T, SFX, 64, 3)

SBL_KERNELS(float, f32)
#ifndef MAMBA_EMU
SBL_KERNELS(bf16_t, bf16)
SBL_KERNELS(f16_t, f16)
#endif
