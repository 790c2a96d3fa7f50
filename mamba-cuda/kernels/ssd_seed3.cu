// `ssdz_*` (src/gpu/seed.rs `ssdz_wanted` / `ssdz_launch`): the SSD forward at the seed
// shapes in its chunked (state-space-dual) form in ONE launch, the chunk-to-chunk state
// passing done inside a thread-block cluster, so there is no sequential walk over the steps
// and no second launch. Three kernels (eleventh session; the default at 200 <= L <= 1024
// with few (batch, head) pairs, f32, p and N 33..64, since the thirteenth session):
// - `ssdz_f32` (eighth session, helper D; `MAMBA_CUDA_SSDZ_V=0`): the form described below,
//   the exchange through distributed shared memory;
// - `ssdz_f32_v7` (`MAMBA_CUDA_SSDZ_V=7`; the default for chunks of at most 64 steps until
//   the thirteenth session): the same on the CUDA cores with the exchange through global
//   scratch (V bit 4), snake-ordered Y warps and M X before the cluster wait (bits 1, 2);
// - `ssdz_f32_tc` (the default): every product on the tensor cores in 3xTF32
//   (`ssdz_tc_body`, further down); `ssdz_bf16_tc` / `ssdz_f16_tc` (twenty-first session,
//   the 16-bit types' default at 16 <= L <= 1024 in the same region) are the same kernel
//   with x, B, C, dt, z loaded as 16-bit values and widened to f32, and the outputs rounded
//   once when stored (the states stay f32, as the ABI has them).
// The form of `ssdz_f32`:
//
// Grid (CL = 8 chunks, heads, batch), `__cluster_dims__(CL, 1, 1)`: the CL blocks of a
// cluster are the CL chunks of one (batch, head); chunk c covers steps [c Q, c Q + Q) with
// Q = p.chunk_len (a multiple of 4, <= QMAX = 128; so L <= 1024). Block c:
//   1. warp 0: dt_t = step_size(dt + bias) and the inclusive cumulative sum cs_t of dt_t A
//      in f64 over the chunk (4 steps per lane, then a warp scan); w_t = exp(cs_end - cs_t)
//      dt_t, e_t = exp(cs_t), the chunk's total log-decay cs_end (read by later chunks);
//      meanwhile every thread has its share of x, B, C in flight;
//   2. stages x [t][p], x * w [t][p], B^T and C^T [n][t] (f32, zero padded to 64 x 64);
//   3. its local end state S_c[n][q] = sum_s B[s][n] w_s x[s][q] (split over s in two
//      halves of 256 threads, 4 x 4 register tiles, 4 steps per pass); then it arrives on
//      the cluster barrier (release);
//   4. M[t][s] = (C_t . B_s) exp(cs_t - cs_s) dt_s for s <= t (lower triangle, 4 x 4 tiles);
//   5. waits on the cluster barrier (acquire), then S_in[n][q] = sum_{c' < c}
//      exp(sum_{c' < k < c} tot_k) S_c'[n][q] + exp(sum_{k < c} tot_k) h0[q][n], the S_c'
//      and tot_k read from the earlier blocks' shared memory (DSMEM); the last block
//      writes the final state exp(tot_c) S_in + S_c; second cluster arrive (the remote
//      reads are done);
//   6. Y[t][q] = sum_{s <= t} M[t][s] x[s][q] + e_t sum_n C[t][n] S_in[n][q] + D x, the z
//      gate, stores; then waits on the second cluster barrier (no block leaves while a
//      later one may read its shared memory).
// Every exponent argument is <= 0 (A < 0). Plain f32 FMAs on the CUDA cores (f32 needs
// 1e-5; single TF32 would miss it). Packed sequences (fifty-fifth session): with seq_idx the
// scan adds -SSDZ_RESET at each sequence's first step, so every decay across it (each an
// exp of an f64 difference of the sums, later minus earlier, or of a sum of chunk totals)
// is 0, the SPEC's reset, and one inside a sequence keeps its bits (the sums are f64; as
// ssd_lm32.cu's L32_RESET). Applies to f32 (seq_idx since then), p <= 64, N <= 64,
// 1 <= L <= CL * QMAX (groups, D per head or channel, z, dt_bias, softplus, dt limits,
// initial and final states); the host falls back to `ssdq` / `ssdr` elsewhere.
// Launch: grid (CL, h, b), NT = 512 threads, dynamic shared memory = ssdz_smem in seed.rs.
#include "common.cuh"
#include "tf32x3.cuh"
#ifndef MAMBA_EMU
#include <cooperative_groups.h>
#endif

#define SSDZ_RESET 1048576.0

namespace ssdz {
constexpr int CL = 8;      // chunks = blocks per cluster
constexpr int NT = 512;    // threads per block
constexpr int SP = 64;     // headdim, padded
constexpr int SN = 64;     // dstate, padded
constexpr int QMAX = 128;  // longest chunk
}  // namespace ssdz

// SSDZ_TRACE (the device probe mamba-cuda/scripts/ssdz_probe.cu only): lane 0 of every warp
// stores %globaltimer at the phase marks of `ssdz_tc_body` into `ssdz_trace`.
#ifdef SSDZ_TRACE
__device__ unsigned long long ssdz_trace[96 * 16 * 16];
#define SSDZ_MARK(k)                                                                              \
    do {                                                                                          \
        if ((threadIdx.x & 31) == 0) {                                                            \
            unsigned long long t_;                                                                \
            asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_));                                \
            const int b_ = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);        \
            if (b_ < 96) ssdz_trace[(b_ * 16 + (threadIdx.x >> 5)) * 16 + (k)] = t_;              \
        }                                                                                         \
    } while (0)
#else
#define SSDZ_MARK(k) \
    do {             \
    } while (0)
#endif

// Probe-only timing forms (WRONG outputs): SSDZ_TG1 / SSDZ_TMX1 run G / M X on one tf32 mma
// (hi x hi) instead of three.

#ifndef MAMBA_EMU
__device__ __forceinline__ void ssdz_cluster_arrive() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void ssdz_cluster_wait() {
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// The address of the same shared-memory object in block `rank` of the cluster.
template <typename V>
__device__ __forceinline__ const V* ssdz_map(const V* ptr, int rank) {
    return cooperative_groups::this_cluster().map_shared_rank(const_cast<V*>(ptr), (unsigned)rank);
}
#endif

__device__ __forceinline__ float ssdz_c(const float4& v, int e) { return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w; }

// V bit 4: the local end states S_c and the chunk totals go to global scratch
// (p.chunk_states (b, h, CL, 64, 64), p.chunk_decay as doubles (b, h, CL)) before the
// cluster arrive, and the later chunks read them from L2 (`__ldcg`) after the wait, instead
// of through distributed shared memory (measured on the H200: the DSMEM reads cost 6-10 us
// per call, generic loads through the shared window); one cluster barrier instead of two.
// V bit 1: the Y tiles' warps permuted so that the four schedulers of an SM get about
// the same causal work (snake order of the t-group pairs); bit 2: M X computed before the
// cluster wait (it needs no incoming state), so it overlaps the slowest chunk's S_c.
// p.mode (`MAMBA_CUDA_SSDZ_DIAG`, timing only, WRONG outputs): bit 1 no Y loops, 2 no M,
// 4 no S_c, 8 no DSMEM reads.
template <int V>
__device__ __forceinline__ void ssdz_body(const SsdParams& p, unsigned char* smraw) {
    using namespace ssdz;
    const int tid = threadIdx.x;
    const int diag = p.mode;
    const int c = blockIdx.x;  // the chunk = the block's rank in its cluster
    const int j = blockIdx.y, i = blockIdx.z;
    const int H = p.nheads, P = p.headdim, N = p.dstate, L = p.seqlen;
    const int Q = p.chunk_len;
    const int QS = ((Q + 7) & ~7) + 4;  // row stride of B^T / C^T (conflict-free staging)
    const int kg = j / (H / p.ngroups);
    const int t0 = c * Q;
    const int tn = max(0, min(Q, L - t0));
    const int tn4 = (tn + 3) & ~3;
    const int nk = (N + 3) & ~3;

    double* s_cs = reinterpret_cast<double*>(smraw);  // [QMAX]
    double* s_tot = s_cs + QMAX;                      // [2]: [0] the chunk's total log-decay
    float* s_dt = reinterpret_cast<float*>(s_tot + 2);
    float* s_w = s_dt + QMAX;
    float* s_e = s_w + QMAX;
    float* s_Sc = s_e + QMAX;      // [SN][SP]: the local end state (read by later chunks)
    float* s_Sin = s_Sc + SN * SP;  // [SN][SP]: the incoming state (and reduction scratch)
    float* s_x = s_Sin + SN * SP;   // [Q][SP]
    float* s_bt = s_x + Q * SP;     // [SN][QS]
    float* s_ct = s_bt + SN * QS;   // [SN][QS]
    float* s_m = s_ct + SN * QS;    // x * w [Q][SP] in step 3, then M [t][s] (row stride Q)

    const float* xg = static_cast<const float*>(p.x) + i * p.x_sb + (long long)j * P;
    const float* Bg = static_cast<const float*>(p.B) + i * p.B_sb + (long long)kg * N;
    const float* Cg = static_cast<const float*>(p.C) + i * p.C_sb + (long long)kg * N;

    // 1. Loads of x, B, C (registers), the steps on warp 0.
    constexpr int KS = QMAX * SP / 4 / NT;
    const int nslot = Q * 16;
    float4 xv[KS], bv[KS], cv[KS];
#pragma unroll
    for (int k = 0; k < KS; ++k) {
        const int e = tid + k * NT;
        xv[k] = make_float4(0.f, 0.f, 0.f, 0.f);
        bv[k] = xv[k];
        cv[k] = xv[k];
        if (e < nslot) {
            const int t = e >> 4, q0 = (e & 15) * 4;
            if (t < tn) {
                const float* src = xg + (long long)(t0 + t) * p.x_st + q0;
                xv[k].x = q0 < P ? src[0] : 0.f;
                xv[k].y = q0 + 1 < P ? src[1] : 0.f;
                xv[k].z = q0 + 2 < P ? src[2] : 0.f;
                xv[k].w = q0 + 3 < P ? src[3] : 0.f;
            }
            const int n = e & 63, tb = (e >> 6) * 4;
            if (n < N) {
                const long long o = (long long)(t0 + tb) * p.B_st + n, oc = (long long)(t0 + tb) * p.C_st + n;
                bv[k].x = tb < tn ? Bg[o] : 0.f;
                bv[k].y = tb + 1 < tn ? Bg[o + p.B_st] : 0.f;
                bv[k].z = tb + 2 < tn ? Bg[o + 2 * p.B_st] : 0.f;
                bv[k].w = tb + 3 < tn ? Bg[o + 3 * p.B_st] : 0.f;
                cv[k].x = tb < tn ? Cg[oc] : 0.f;
                cv[k].y = tb + 1 < tn ? Cg[oc + p.C_st] : 0.f;
                cv[k].z = tb + 2 < tn ? Cg[oc + 2 * p.C_st] : 0.f;
                cv[k].w = tb + 3 < tn ? Cg[oc + 3 * p.C_st] : 0.f;
            }
        }
    }
    if (tid < 32) {
        const double A = (double)p.A[j];
        const float bias = p.dt_bias ? p.dt_bias[j] : 0.f;
        const float* dtg = static_cast<const float*>(p.dt) + i * p.dt_sb + j;
        float d[4];
        double loc[4], run = 0.0;
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int t = 4 * tid + a;
            d[a] = t < tn ? step_size(dtg[(long long)(t0 + t) * p.dt_st] + bias, p.softplus, p.has_limit, p.lo, p.hi)
                          : 0.f;
            run += (double)d[a] * A - (t < tn && ssd_starts_seg(p, i, t0 + t) ? SSDZ_RESET : 0.0);
            loc[a] = run;
        }
        double incl = run;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double v = __shfl_up_sync(0xffffffffu, incl, o);
            if (tid >= o) incl += v;
        }
        const double excl = incl - run;
        const double cse = __shfl_sync(0xffffffffu, incl, 31);
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int t = 4 * tid + a;
            if (t < Q) {
                const double cs = excl + loc[a];
                s_cs[t] = cs;
                s_dt[t] = d[a];
                s_w[t] = expf((float)(cse - cs)) * d[a];
                s_e[t] = expf((float)cs);
            }
        }
        if (tid == 0) {
            s_tot[0] = cse;
            if (V & 4) reinterpret_cast<double*>(p.chunk_decay)[((size_t)i * H + j) * CL + c] = cse;
        }
    }
    __syncthreads();
    // 2. Stage x, x * w, B^T, C^T.
#pragma unroll
    for (int k = 0; k < KS; ++k) {
        const int e = tid + k * NT;
        if (e < nslot) {
            const int t = e >> 4, q0 = (e & 15) * 4;
            *reinterpret_cast<float4*>(s_x + t * SP + q0) = xv[k];
            const float w = s_w[t];
            *reinterpret_cast<float4*>(s_m + t * SP + q0) = make_float4(xv[k].x * w, xv[k].y * w, xv[k].z * w, xv[k].w * w);
            const int n = e & 63, tb = (e >> 6) * 4;
            *reinterpret_cast<float4*>(s_bt + n * QS + tb) = bv[k];
            *reinterpret_cast<float4*>(s_ct + n * QS + tb) = cv[k];
        }
    }
    __syncthreads();
    // 3. The local end state S_c = B^T diag(w) X: thread (half, 4 x 4 tile of [n][q]).
    {
        const int half = tid >> 8, r = tid & 255;
        const int n0 = (r >> 4) * 4, q0 = (r & 15) * 4;
        const int sh = ((Q >> 1) + 3) & ~3;
        const int sb = half ? sh : 0, se = half ? tn4 : min(sh, tn4);
        float acc[4][4];
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int b = 0; b < 4; ++b) acc[a][b] = 0.f;
        if (n0 < nk && !(diag & 4)) {
#pragma unroll 2
            for (int s = sb; s < se; s += 4) {
                float4 bq[4], xq[4];
#pragma unroll
                for (int a = 0; a < 4; ++a) bq[a] = *reinterpret_cast<const float4*>(s_bt + (n0 + a) * QS + s);
#pragma unroll
                for (int e = 0; e < 4; ++e) xq[e] = *reinterpret_cast<const float4*>(s_m + (s + e) * SP + q0);
#pragma unroll
                for (int e = 0; e < 4; ++e)
#pragma unroll
                    for (int a = 0; a < 4; ++a) {
                        const float bb = ssdz_c(bq[a], e);
                        acc[a][0] = fmaf(bb, xq[e].x, acc[a][0]);
                        acc[a][1] = fmaf(bb, xq[e].y, acc[a][1]);
                        acc[a][2] = fmaf(bb, xq[e].z, acc[a][2]);
                        acc[a][3] = fmaf(bb, xq[e].w, acc[a][3]);
                    }
            }
        }
        if (half) {
#pragma unroll
            for (int a = 0; a < 4; ++a)
                *reinterpret_cast<float4*>(s_Sin + (n0 + a) * SP + q0) = make_float4(acc[a][0], acc[a][1], acc[a][2], acc[a][3]);
        }
        __syncthreads();
        if (!half) {
            float* gsc = p.chunk_states + (((size_t)i * H + j) * CL + c) * (SN * SP);
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const float4 o = *reinterpret_cast<const float4*>(s_Sin + (n0 + a) * SP + q0);
                const float4 v = make_float4(acc[a][0] + o.x, acc[a][1] + o.y, acc[a][2] + o.z, acc[a][3] + o.w);
                *reinterpret_cast<float4*>(s_Sc + (n0 + a) * SP + q0) = v;
                if (V & 4) __stcg(reinterpret_cast<float4*>(gsc + (n0 + a) * SP + q0), v);
            }
        }
    }
    // S_c and the total log-decay are published to the later chunks of the cluster.
    ssdz_cluster_arrive();
    // 4. M [t][s] (row stride Q): the lower triangle of 4 x 4 tiles, row-major.
    {
        const int nt = Q >> 2, T = nt * (nt + 1) / 2;
        for (int k = tid; k < T; k += NT) {
            int ti = (int)((sqrtf(8.f * (float)k + 1.f) - 1.f) * 0.5f);
            while ((ti + 1) * (ti + 2) / 2 <= k) ++ti;
            while (ti * (ti + 1) / 2 > k) --ti;
            const int si = k - ti * (ti + 1) / 2;
            const int ta = 4 * ti, sa = 4 * si;
            float g[4][4];
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) g[a][b] = 0.f;
            if (sa < tn && ta < tn && !(diag & 2)) {
#pragma unroll 4
                for (int n = 0; n < nk; ++n) {
                    const float4 cc = *reinterpret_cast<const float4*>(s_ct + n * QS + ta);
                    const float4 bb = *reinterpret_cast<const float4*>(s_bt + n * QS + sa);
#pragma unroll
                    for (int a = 0; a < 4; ++a) {
                        const float ca = ssdz_c(cc, a);
                        g[a][0] = fmaf(ca, bb.x, g[a][0]);
                        g[a][1] = fmaf(ca, bb.y, g[a][1]);
                        g[a][2] = fmaf(ca, bb.z, g[a][2]);
                        g[a][3] = fmaf(ca, bb.w, g[a][3]);
                    }
                }
            }
            float ds[4];
            double css[4];
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                ds[b] = s_dt[sa + b];
                css[b] = s_cs[sa + b];
            }
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const int t = ta + a;
                const double ct = s_cs[t];
                float m[4];
#pragma unroll
                for (int b = 0; b < 4; ++b)
                    m[b] = sa + b <= t ? g[a][b] * expf((float)(ct - css[b])) * ds[b] : 0.f;
                *reinterpret_cast<float4*>(s_m + t * Q + sa) = make_float4(m[0], m[1], m[2], m[3]);
            }
        }
    }
    __syncthreads();
    // The Y tile of this thread: 4 steps from ta, 4 columns from qy.
    const int nt = Q >> 2;
    int ta, qy;
    bool yact;
    if (V & 1) {
        const int w = tid >> 5, nw = (nt + 1) >> 1, r = w >> 2, sc = w & 3;
        const int pw = (r + 1) * 4 <= nw ? r * 4 + ((r & 1) ? 3 - sc : sc) : w;
        const int tg = 2 * pw + ((tid >> 4) & 1);
        yact = w < nw && tg < nt;
        ta = 4 * tg;
    } else {
        yact = tid < Q * 4;
        ta = (tid >> 4) * 4;
    }
    qy = (tid & 15) * 4;
    float Y[4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) Y[a][b] = 0.f;
    // M X (the intra-chunk part).
    auto mx = [&]() {
        const int q0 = qy;
        const int smax = (diag & 1) ? 0 : min(ta + 4, tn4);
#pragma unroll 2
        for (int s = 0; s < smax; s += 4) {
            float4 mq[4], xq[4];
#pragma unroll
            for (int a = 0; a < 4; ++a) mq[a] = *reinterpret_cast<const float4*>(s_m + (ta + a) * Q + s);
#pragma unroll
            for (int e = 0; e < 4; ++e) xq[e] = *reinterpret_cast<const float4*>(s_x + (s + e) * SP + q0);
#pragma unroll
            for (int e = 0; e < 4; ++e)
#pragma unroll
                for (int a = 0; a < 4; ++a) {
                    const float mm = ssdz_c(mq[a], e);
                    Y[a][0] = fmaf(mm, xq[e].x, Y[a][0]);
                    Y[a][1] = fmaf(mm, xq[e].y, Y[a][1]);
                    Y[a][2] = fmaf(mm, xq[e].z, Y[a][2]);
                    Y[a][3] = fmaf(mm, xq[e].w, Y[a][3]);
                }
        }
    };
    if ((V & 2) && yact) mx();
    // 5. The incoming state from the earlier chunks' shared memory: thread (n, 8 columns).
    ssdz_cluster_wait();
    {
        const int n = tid >> 3, q0 = (tid & 7) * 8;
        double tots[CL];
        float4 v0[CL], v1[CL];
#pragma unroll
        for (int cc = 0; cc < CL; ++cc) {
            if (cc < c && !(diag & 8)) {
                if (V & 4) {
                    // Through L2: the earlier chunks wrote S_c and their totals to global
                    // scratch before the cluster barrier's arrive (release).
                    const size_t bh = (size_t)i * H + j;
                    const float* rs = p.chunk_states + (bh * CL + cc) * (SN * SP) + n * SP + q0;
                    tots[cc] = __ldcg(reinterpret_cast<const double*>(p.chunk_decay) + bh * CL + cc);
                    v0[cc] = __ldcg(reinterpret_cast<const float4*>(rs));
                    v1[cc] = __ldcg(reinterpret_cast<const float4*>(rs + 4));
                } else {
                    const double* rt = ssdz_map(s_tot, cc);
                    const float* rs = ssdz_map(s_Sc, cc) + n * SP + q0;
                    tots[cc] = *rt;
                    v0[cc] = *reinterpret_cast<const float4*>(rs);
                    v1[cc] = *reinterpret_cast<const float4*>(rs + 4);
                }
            }
        }
        float acc[8];
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[b] = 0.f;
        double sum = 0.0;  // log-decay from the end of chunk cc to the start of chunk c
#pragma unroll
        for (int cc = CL - 1; cc >= 0; --cc) {
            if (cc < c && !(diag & 8)) {
                const float dec = expf((float)sum);
                acc[0] = fmaf(dec, v0[cc].x, acc[0]);
                acc[1] = fmaf(dec, v0[cc].y, acc[1]);
                acc[2] = fmaf(dec, v0[cc].z, acc[2]);
                acc[3] = fmaf(dec, v0[cc].w, acc[3]);
                acc[4] = fmaf(dec, v1[cc].x, acc[4]);
                acc[5] = fmaf(dec, v1[cc].y, acc[5]);
                acc[6] = fmaf(dec, v1[cc].z, acc[6]);
                acc[7] = fmaf(dec, v1[cc].w, acc[7]);
                sum += tots[cc];
            }
        }
        if (p.init && n < N) {
            const float dec = expf((float)sum);
            const float* src = p.init + ((size_t)i * H + j) * P * N + n;
#pragma unroll
            for (int b = 0; b < 8; ++b)
                if (q0 + b < P) acc[b] = fmaf(dec, src[(size_t)(q0 + b) * N], acc[b]);
        }
        *reinterpret_cast<float4*>(s_Sin + n * SP + q0) = make_float4(acc[0], acc[1], acc[2], acc[3]);
        *reinterpret_cast<float4*>(s_Sin + n * SP + q0 + 4) = make_float4(acc[4], acc[5], acc[6], acc[7]);
        if (!(V & 4)) ssdz_cluster_arrive();
        if (c == CL - 1 && p.final_states && n < N) {
            const float dl = expf((float)s_tot[0]);
            float* dst = p.final_states + ((size_t)i * H + j) * P * N + n;
#pragma unroll
            for (int b = 0; b < 8; ++b)
                if (q0 + b < P) dst[(size_t)(q0 + b) * N] = fmaf(dl, acc[b], s_Sc[n * SP + q0 + b]);
        }
    }
    __syncthreads();
    // 6. Y = M X + diag(e) C S_in + D x, z gate, store: thread (4 steps, 4 columns).
    if (yact) {
        const int q0 = qy;
        if (!(V & 2)) mx();
        if ((c > 0 || p.init) && ta < tn && !(diag & 1)) {
            float Z[4][4];
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) Z[a][b] = 0.f;
#pragma unroll 2
            for (int n = 0; n < nk; n += 4) {
                float4 cq[4], sq[4];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    cq[e] = *reinterpret_cast<const float4*>(s_ct + (n + e) * QS + ta);
                    sq[e] = *reinterpret_cast<const float4*>(s_Sin + (n + e) * SP + q0);
                }
#pragma unroll
                for (int e = 0; e < 4; ++e)
#pragma unroll
                    for (int a = 0; a < 4; ++a) {
                        const float cc = ssdz_c(cq[e], a);
                        Z[a][0] = fmaf(cc, sq[e].x, Z[a][0]);
                        Z[a][1] = fmaf(cc, sq[e].y, Z[a][1]);
                        Z[a][2] = fmaf(cc, sq[e].z, Z[a][2]);
                        Z[a][3] = fmaf(cc, sq[e].w, Z[a][3]);
                    }
            }
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const float ex = s_e[ta + a];
#pragma unroll
                for (int b = 0; b < 4; ++b) Y[a][b] = fmaf(ex, Z[a][b], Y[a][b]);
            }
        }
        float dv[4] = {0.f, 0.f, 0.f, 0.f};
        if (p.D) {
#pragma unroll
            for (int b = 0; b < 4; ++b)
                dv[b] = p.d_per_channel ? (q0 + b < P ? p.D[j * P + q0 + b] : 0.f) : p.D[j];
        }
        const float* zg = p.z ? static_cast<const float*>(p.z) + i * p.z_sb + (long long)j * P + q0 : nullptr;
        float* og = static_cast<float*>(p.out) + i * p.out_sb + (long long)j * P + q0;
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int t = ta + a;
            if (t < tn && q0 < P) {
                const long long tt = t0 + t;
                const float4 xx = *reinterpret_cast<const float4*>(s_x + t * SP + q0);
                float y[4] = {fmaf(dv[0], xx.x, Y[a][0]), fmaf(dv[1], xx.y, Y[a][1]), fmaf(dv[2], xx.z, Y[a][2]),
                              fmaf(dv[3], xx.w, Y[a][3])};
                if (zg) {
                    const float* zr = zg + tt * p.z_st;
#pragma unroll
                    for (int b = 0; b < 4; ++b)
                        if (q0 + b < P) y[b] *= silu_f(zr[b]);
                }
                float* o = og + tt * p.out_st;
                if (q0 + 3 < P && (reinterpret_cast<uintptr_t>(o) & 15) == 0) {
                    *reinterpret_cast<float4*>(o) = make_float4(y[0], y[1], y[2], y[3]);
                } else {
#pragma unroll
                    for (int b = 0; b < 4; ++b)
                        if (q0 + b < P) o[b] = y[b];
                }
            }
        }
    }
    // No block leaves while a later chunk may still read its shared memory (V bit 4: the
    // exchange went through global memory, nothing reads this block's shared memory).
    if (!(V & 4)) ssdz_cluster_wait();
}


// ---------------------------------------------------------------------------------------
// `ssdz_f32_tc` (`MAMBA_CUDA_SSDZ_V=8`, eleventh session): the same chunked form with every
// product on the tensor cores, mma.sync m16n8k8 tf32 in 3xTF32 (a b ~ a_lo b_hi + a_hi b_lo
// + a_hi b_hi, f32 accumulation; hi = v & 0xffffe000 is exact, lo = v - hi exact, ~2^-21 of
// v lost when the hardware truncates lo), and the exchange through global scratch (V bit 4).
// Chunk rows are padded to Q16 = round16(Q) (zero x, B, C, dt past the chunk).
//   S_c [n][q] = sum_s (w B)[s][n] x[s][q]: warp w computes rows 16 (w >> 2) .. of n and
//     columns 16 (w & 3) .. of q (two n8 tiles), natural k order;
//   G [t][s] = C_t . B_s per 16 x 8 tile in registers, turned into M (decay, dt, causal
//     mask) in place: its accumulator layout (rows g, g + 8; columns 2c, 2c + 1) is the A
//     fragment of the k8 step s0 .. s0 + 7 with k permuted (slot c <-> s0 + 2c, slot c + 4
//     <-> s0 + 2c + 1), so M X takes it with x rows read in the same permuted order; M never
//     goes to shared memory;
//   Y [t][q] = M X (before the cluster wait) + (e_t C_t) S_in (after it; k over n permuted
//     the same way), then D x and the z gate.
// A 16-row strip of t is shared by two warps: half 0 takes the s tiles 0 .. i and n 0 .. 31
// of C S_in, half 1 the s tiles i + 1 .. 2 i + 1 and n 32 .. 63; half 1's partial Y goes
// through shared memory to half 0, which finishes the rows. Strips 0-3 sit on warps 0-7,
// strips 4.. on warps 8-15 in reverse order (strip nst - 1 - k with warp k), so that the four
// schedulers get about the same causal work.
// Shared memory (floats): x [Q16][68] (rows 2c, 2c + 1 read by column g: 4 mod 32), x,
// B, C [Q16][72] (rows c / float2 along rows g: 8 mod 32), S_in, S_c [64][68]; dt, w, e
// [QMAX], the f64 cumulative sums [QMAX] and the total.
namespace ssdz {
constexpr int SX = 68;  // row stride of x, S_in, S_c
constexpr int SW = 72;  // row stride of the second copy of x, B, C (and the half-1 partials of Y)
}  // namespace ssdz

// `ssdz_tc_body`'s element access for T = f32, bf16, f16 (twenty-first session: the 16-bit
// types take the same kernel, their values widened to f32 as they are loaded; every product
// and state stays f32 / 3xTF32, and the outputs are rounded once when stored).
template <typename T>
__device__ __forceinline__ float4 ssdz_ld4(const T* s) {
    if constexpr (sizeof(T) == 4) {
        return __ldg(reinterpret_cast<const float4*>(s));
    } else {
#ifndef MAMBA_EMU
        const uint2 w = __ldg(reinterpret_cast<const uint2*>(s));
        const T* h = reinterpret_cast<const T*>(&w);
        return make_float4(ldf<T>(h), ldf<T>(h + 1), ldf<T>(h + 2), ldf<T>(h + 3));
#endif
    }
}
// Two adjacent outputs (o aligned to 2 elements).
template <typename T>
__device__ __forceinline__ void ssdz_st2(T* o, float a, float b) {
    if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float2*>(o) = make_float2(a, b);
    } else {
#ifndef MAMBA_EMU
        const T v[2] = {cvt<T>(a), cvt<T>(b)};
        *reinterpret_cast<unsigned*>(o) = *reinterpret_cast<const unsigned*>(v);
#endif
    }
}

// p.mode (`MAMBA_CUDA_SSDZ_DIAG`, timing only, WRONG outputs): bit 1 no Y products, 2 no
// G / M X, 4 no S_c, 8 no exchange reads, 16 no x / B / C loads, 32 no output stores.
// Two accumulators per G tile (k steps even / odd): chains of 12 dependent mma instead of
// 24 (measured: 26.6-28.3 us at L800 against 27.9-28.4 with one, 28.2-29.5 with four, which
// spills).
template <typename T = float>
__device__ __forceinline__ void ssdz_tc_body(const SsdParams& p, unsigned char* smraw) {
    using namespace ssdz;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g8 = lane >> 2, c4 = lane & 3;
    const int diag = p.mode;
    const int c = blockIdx.x;
    const int j = blockIdx.y, i = blockIdx.z;
    const int H = p.nheads, P = p.headdim, N = p.dstate, L = p.seqlen;
    const int Q = p.chunk_len;
    const int Q16 = (Q + 15) & ~15;
    const int kg = j / (H / p.ngroups);
    const int t0 = c * Q;
    const int tn = max(0, min(Q, L - t0));
    const size_t bh = (size_t)i * H + j;

    double* s_cs = reinterpret_cast<double*>(smraw);  // [QMAX]
    double* s_tot = s_cs + QMAX;                      // [2]
    float* s_dt = reinterpret_cast<float*>(s_tot + 2);
    float* s_w = s_dt + QMAX;
    float* s_e = s_w + QMAX;
    float* s_Sc = s_e + QMAX;          // [SN][SX]
    float* s_Sin = s_Sc + SN * SX;     // [SN][SX]
    float* s_x = s_Sin + SN * SX;      // [Q16][SX]
    float* s_x8 = s_x + QMAX * SX;     // x again [Q16][SW]; later the half-1 partials [8][16][SW]
    float* s_b = s_x8 + QMAX * SW;     // [Q16][SW]
    float* s_c = s_b + QMAX * SW;      // [Q16][SW]
    float* s_D = s_c + QMAX * SW;      // [SP]: D of every column

    const T* xg = static_cast<const T*>(p.x) + i * p.x_sb + (long long)j * P;
    const T* Bg = static_cast<const T*>(p.B) + i * p.B_sb + (long long)kg * N;
    const T* Cg = static_cast<const T*>(p.C) + i * p.C_sb + (long long)kg * N;

    SSDZ_MARK(0);
    // 0. Warp 0's dt (and A, dt_bias) loads go out first: the scan below is on the path to
    // the first barrier, and issued after the block's x / B / C loads they came back behind
    // ~100 KB of them (measured: the scan ended 1.4 us after the staging). Warp 1 puts D of
    // every column into shared memory for the epilogue (read there after the output stores
    // began, a global load waited the full latency at the end of the kernel).
    float draw[4] = {0.f, 0.f, 0.f, 0.f};
    double Aj = 0.0;
    float bias = 0.f;
    if (tid < 32) {
        const T* dtg = static_cast<const T*>(p.dt) + i * p.dt_sb + j;
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int t = 4 * tid + a;
            if (t < tn) draw[a] = ldf<T>(dtg + (long long)(t0 + t) * p.dt_st);
        }
        Aj = (double)p.A[j];
        bias = p.dt_bias ? p.dt_bias[j] : 0.f;
    } else if (warp == 1) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int q = lane + 32 * e;
            s_D[q] = !p.D ? 0.f : !p.d_per_channel ? p.D[j] : q < P ? p.D[j * P + q] : 0.f;
        }
    }
    // 1. x, B, C rows (4 consecutive columns per slot) into registers (16-byte loads where
    // p = N = 64 and the rows are 16-byte aligned); the steps on warp 0.
    const bool vec = P == SP && N == SN && ((p.x_st | p.B_st | p.C_st) & 3) == 0 &&
                     ((reinterpret_cast<uintptr_t>(xg) | reinterpret_cast<uintptr_t>(Bg) |
                       reinterpret_cast<uintptr_t>(Cg)) & (4 * sizeof(T) - 1)) == 0;
    // The loads and the staging are on warps 1-15 only (slot e = tid - 32 + k NL): warp 0's
    // scan then ends before they land (measured: with its own share of x / B / C, warp 0
    // staged ~0.8 us after the others).
    constexpr int NL = NT - 32;
    constexpr int KS = (QMAX * SP / 4 + NL - 1) / NL;
    const int nslot = Q16 * 16;
    const int lt = warp ? tid - 32 : nslot;  // warp 0: no slot
    float4 xv[KS], bv[KS], cv[KS];
#pragma unroll
    for (int k = 0; k < KS; ++k) {
        const int e = lt + k * NL;
        xv[k] = make_float4(0.f, 0.f, 0.f, 0.f);
        bv[k] = xv[k];
        cv[k] = xv[k];
        const int t = e >> 4, q0 = (e & 15) * 4;
        if (e < nslot && t < tn && !(diag & 16) && vec) {
            xv[k] = ssdz_ld4<T>(xg + (long long)(t0 + t) * p.x_st + q0);
            bv[k] = ssdz_ld4<T>(Bg + (long long)(t0 + t) * p.B_st + q0);
            cv[k] = ssdz_ld4<T>(Cg + (long long)(t0 + t) * p.C_st + q0);
        } else if (e < nslot && t < tn && !(diag & 16)) {
            const T* xs = xg + (long long)(t0 + t) * p.x_st + q0;
            xv[k].x = q0 < P ? ldf<T>(xs + 0) : 0.f;
            xv[k].y = q0 + 1 < P ? ldf<T>(xs + 1) : 0.f;
            xv[k].z = q0 + 2 < P ? ldf<T>(xs + 2) : 0.f;
            xv[k].w = q0 + 3 < P ? ldf<T>(xs + 3) : 0.f;
            const T* bs = Bg + (long long)(t0 + t) * p.B_st + q0;
            const T* cs = Cg + (long long)(t0 + t) * p.C_st + q0;
            bv[k].x = q0 < N ? ldf<T>(bs + 0) : 0.f;
            bv[k].y = q0 + 1 < N ? ldf<T>(bs + 1) : 0.f;
            bv[k].z = q0 + 2 < N ? ldf<T>(bs + 2) : 0.f;
            bv[k].w = q0 + 3 < N ? ldf<T>(bs + 3) : 0.f;
            cv[k].x = q0 < N ? ldf<T>(cs + 0) : 0.f;
            cv[k].y = q0 + 1 < N ? ldf<T>(cs + 1) : 0.f;
            cv[k].z = q0 + 2 < N ? ldf<T>(cs + 2) : 0.f;
            cv[k].w = q0 + 3 < N ? ldf<T>(cs + 3) : 0.f;
        }
    }
    // 2. Stage x (twice: row strides 68 and 72), B, C (rows past the chunk are zero up to
    // Q16). w goes on S_c's A operand, so warps 1-15 stage as soon as their loads land,
    // without waiting for warp 0's scan (measured: 1-2 us faster than staging x w after the
    // scan).
    auto stage = [&]() {
#pragma unroll
        for (int k = 0; k < KS; ++k) {
            const int e = lt + k * NL;
            if (e < nslot) {
                const int t = e >> 4, q0 = (e & 15) * 4;
                *reinterpret_cast<float4*>(s_x + t * SX + q0) = xv[k];
                *reinterpret_cast<float4*>(s_x8 + t * SW + q0) = xv[k];
                *reinterpret_cast<float4*>(s_b + t * SW + q0) = bv[k];
                *reinterpret_cast<float4*>(s_c + t * SW + q0) = cv[k];
            }
        }
    };
    stage();
    SSDZ_MARK(1);
    if (tid < 32) {
        float d[4];
        double loc[4], run = 0.0;
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int t = 4 * tid + a;
            d[a] = t < tn ? step_size(draw[a] + bias, p.softplus, p.has_limit, p.lo, p.hi) : 0.f;
            run += (double)d[a] * Aj - (t < tn && ssd_starts_seg(p, i, t0 + t) ? SSDZ_RESET : 0.0);
            loc[a] = run;
        }
        double incl = run;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double v = __shfl_up_sync(0xffffffffu, incl, o);
            if (tid >= o) incl += v;
        }
        const double excl = incl - run;
        const double cse = __shfl_sync(0xffffffffu, incl, 31);
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int t = 4 * tid + a;
            const double cs = excl + loc[a];
            s_cs[t] = cs;
            s_dt[t] = d[a];
            s_w[t] = expf((float)(cse - cs)) * d[a];
            s_e[t] = expf((float)cs);
        }
        if (tid == 0) {
            s_tot[0] = cse;
            reinterpret_cast<double*>(p.chunk_decay)[bh * CL + c] = cse;
        }
    }
    SSDZ_MARK(2);
    __syncthreads();
    SSDZ_MARK(3);
    // 3. S_c [n][q] = sum_s (w B)[s][n] x[s][q]: warp -> rows n0 .. n0 + 15, two n8 tiles.
    {
        const int n0 = (warp >> 2) * 16, qa = (warp & 3) * 16;
        // Two accumulators per tile (even / odd k steps: shorter chains of dependent mma).
        float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        float acd[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        if (!(diag & 4)) {
            // (Q16 is a multiple of 16: both k steps of s0 exist.) The four tiles' mma are
            // issued term by term (a_lo b_hi of all four, then a_hi b_lo, then a_hi b_hi), so
            // that no mma waits on the one before it; each accumulator sees the same sequence
            // of products as with `mma_tf32x3` per tile.
#pragma unroll 2  // (measured level with no unroll, thirteenth session; no spills this way)
            for (int s0 = 0; s0 < Q16; s0 += 16) {
                Tf32x3A a[2];
                Tf32x3B b[2][2];
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    const int sk = s0 + 8 * u;
                    const float* br = s_b + (sk + c4) * SW + n0 + g8;
                    const float w0 = s_w[sk + c4], w4 = s_w[sk + c4 + 4];
                    tf32x3_a(a[u], br[0] * w0, br[8] * w0, br[4 * SW] * w4, br[4 * SW + 8] * w4);
#pragma unroll
                    for (int nt = 0; nt < 2; ++nt) {
                        const float* xr = s_x8 + (sk + c4) * SW + qa + nt * 8 + g8;
                        tf32x3_b(b[u][nt], xr[0], xr[4 * SW]);
                    }
                }
#pragma unroll
                for (int u = 0; u < 2; ++u)
#pragma unroll
                    for (int nt = 0; nt < 2; ++nt) mma_tf32_16x8x8(u ? acd[nt] : acc[nt], a[u].l, b[u][nt].h);
#pragma unroll
                for (int u = 0; u < 2; ++u)
#pragma unroll
                    for (int nt = 0; nt < 2; ++nt) mma_tf32_16x8x8(u ? acd[nt] : acc[nt], a[u].h, b[u][nt].l);
#pragma unroll
                for (int u = 0; u < 2; ++u)
#pragma unroll
                    for (int nt = 0; nt < 2; ++nt) mma_tf32_16x8x8(u ? acd[nt] : acc[nt], a[u].h, b[u][nt].h);
            }
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[nt][e] += acd[nt][e];
        }
        float* gsc = p.chunk_states + (bh * CL + c) * (SN * SP);
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
            const int q = qa + nt * 8 + 2 * c4;
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int n = n0 + g8 + 8 * hh;
                const float2 v = make_float2(acc[nt][2 * hh], acc[nt][2 * hh + 1]);
                *reinterpret_cast<float2*>(s_Sc + n * SX + q) = v;
                __stcg(reinterpret_cast<float2*>(gsc + n * SP + q), v);
            }
        }
    }
    SSDZ_MARK(4);
    // S_c and the total are in global memory: the later chunks may read them.
    ssdz_cluster_arrive();
    SSDZ_MARK(5);
    // 4. The strip of this warp and its M X part (needs no incoming state).
    const int nst = Q16 >> 4;
    const int kq = warp & 3, half = (warp >> 2) & 1;
    // Scheduler kq (warps kq, kq + 4, kq + 8, kq + 12) holds strips nst - 1 - kq (warps
    // kq + 8, kq + 12, if >= 4 - sh) and kq - sh (warps kq, kq + 4): at even nst strip kq,
    // at odd nst strip kq - 1, so that at nst 7 every scheduler has 14 s tiles (16 / 16 / 16 /
    // 8 with strip kq) and at nst 5 at most 10 (12). Measured (thirteenth session, the probe,
    // back-to-back launches): L800 18.1-18.3 against 18.6-18.7 us, L600 15.6 against
    // 15.9-16.1; the eleventh session's kernel had measured the same mapping level.
    const int sh = nst & 1;
    const int strip = warp < 8 ? kq - sh : nst - 1 - kq;
    const bool yact = warp < 8 ? strip >= 0 && strip < nst : strip >= 4 - sh;
    const int jb = half ? strip + 1 : 0;
    const int je = min(half ? 2 * strip + 2 : strip + 1, (tn + 7) >> 3);
    const int ta = strip * 16;
    float Y[8][4];
#pragma unroll
    for (int qq = 0; qq < 8; ++qq)
#pragma unroll
        for (int e = 0; e < 4; ++e) Y[qq][e] = 0.f;
    if (yact && !(diag & 3) && jb < je) {
        const double ct0 = s_cs[ta + g8], ct1 = s_cs[ta + g8 + 8];
        const int tt0 = ta + g8, tt1 = ta + g8 + 8;
        // G = C B^T of s tile js (two k steps, n0 and n0 + 8, per pass into accumulators 0
        // and 1; their mma issued term by term: each accumulator sees the products in the
        // same order as with `mma_tf32x3` per step).
        auto gtile = [&](int js, float (&gk)[2][4]) {
            const int s0 = js * 8;
#pragma unroll
            for (int u = 0; u < 2; ++u)
#pragma unroll
                for (int e = 0; e < 4; ++e) gk[u][e] = 0.f;
#pragma unroll
            for (int n0 = 0; n0 < SN; n0 += 16) {
                Tf32x3A a[2];
                Tf32x3B b[2];
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                    const int nn = n0 + 8 * u;
                    const float2 ca = *reinterpret_cast<const float2*>(s_c + tt0 * SW + nn + 2 * c4);
                    const float2 cb = *reinterpret_cast<const float2*>(s_c + tt1 * SW + nn + 2 * c4);
                    const float2 bb = *reinterpret_cast<const float2*>(s_b + (s0 + g8) * SW + nn + 2 * c4);
                    tf32x3_a(a[u], ca.x, cb.x, ca.y, cb.y);
                    tf32x3_b(b[u], bb.x, bb.y);
                }
#ifdef SSDZ_TG1
#pragma unroll
                for (int u = 0; u < 2; ++u) mma_tf32_16x8x8(gk[u], a[u].h, b[u].h);
#else
#pragma unroll
                for (int u = 0; u < 2; ++u) mma_tf32_16x8x8(gk[u], a[u].l, b[u].h);
#pragma unroll
                for (int u = 0; u < 2; ++u) mma_tf32_16x8x8(gk[u], a[u].h, b[u].l);
#pragma unroll
                for (int u = 0; u < 2; ++u) mma_tf32_16x8x8(gk[u], a[u].h, b[u].h);
#endif
            }
        };
        // Software-pipelined by one tile: G of tile js + 1 is issued before M X of tile js
        // (independent chains of mma).
        float gk[2][4];
        gtile(jb, gk);
        for (int js = jb; js < je; ++js) {
            const int s0 = js * 8;
            float gm[4];
#pragma unroll
            for (int e = 0; e < 4; ++e) gm[e] = gk[0][e] + gk[1][e];
            if (js + 1 < je) gtile(js + 1, gk);
            // M in place: element (t, s) for c0 (tt0, s0 + 2c), c1 (tt0, +1), c2 (tt1, ..), c3.
            // The exponent is clamped at 0 above the diagonal (those elements are selected
            // away), so that no branch splits the body.
            const int sa = s0 + 2 * c4;
            const double cs0 = s_cs[sa], cs1 = s_cs[sa + 1];
            const float d0 = s_dt[sa], d1 = s_dt[sa + 1];
            const float e0 = expf(fminf((float)(ct0 - cs0), 0.f)), e1 = expf(fminf((float)(ct0 - cs1), 0.f));
            const float e2 = expf(fminf((float)(ct1 - cs0), 0.f)), e3 = expf(fminf((float)(ct1 - cs1), 0.f));
            const float m0 = sa <= tt0 ? gm[0] * e0 * d0 : 0.f;
            const float m1 = sa + 1 <= tt0 ? gm[1] * e1 * d1 : 0.f;
            const float m2 = sa <= tt1 ? gm[2] * e2 * d0 : 0.f;
            const float m3 = sa + 1 <= tt1 ? gm[3] * e3 * d1 : 0.f;
            Tf32x3A a;
            tf32x3_a(a, m0, m2, m1, m3);
            const float* xr = s_x + sa * SX + g8;
            // The eight column tiles' mma term by term (no mma waits on the one before it).
            Tf32x3B bq[8];
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) tf32x3_b(bq[qq], xr[qq * 8], xr[SX + qq * 8]);
#ifdef SSDZ_TMX1
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) mma_tf32_16x8x8(Y[qq], a.h, bq[qq].h);
#else
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) mma_tf32_16x8x8(Y[qq], a.l, bq[qq].h);
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) mma_tf32_16x8x8(Y[qq], a.h, bq[qq].l);
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) mma_tf32_16x8x8(Y[qq], a.h, bq[qq].h);
#endif
        }
    }
    SSDZ_MARK(6);
    // 5. The incoming state from the earlier chunks (global scratch, written before their
    // arrive): thread (n, 8 columns). (Measured: this fold on only the warps without Y work,
    // while the others ran M X, took 11 us in the last chunk: 8 passes of dependent L2 reads;
    // all 512 threads after M X take 1.2-1.8 us.)
    ssdz_cluster_wait();
    SSDZ_MARK(7);
    {
        const int n = tid >> 3, q0 = (tid & 7) * 8;
        double tots[CL];
        float4 v0[CL], v1[CL];
#pragma unroll
        for (int cc = 0; cc < CL; ++cc) {
            if (cc < c && !(diag & 8)) {
                const float* rs = p.chunk_states + (bh * CL + cc) * (SN * SP) + n * SP + q0;
                tots[cc] = __ldcg(reinterpret_cast<const double*>(p.chunk_decay) + bh * CL + cc);
                v0[cc] = __ldcg(reinterpret_cast<const float4*>(rs));
                v1[cc] = __ldcg(reinterpret_cast<const float4*>(rs + 4));
            }
        }
        float acc[8];
#pragma unroll
        for (int b = 0; b < 8; ++b) acc[b] = 0.f;
        double sum = 0.0;
#pragma unroll
        for (int cc = CL - 1; cc >= 0; --cc) {
            if (cc < c && !(diag & 8)) {
                const float dec = expf((float)sum);
                acc[0] = fmaf(dec, v0[cc].x, acc[0]);
                acc[1] = fmaf(dec, v0[cc].y, acc[1]);
                acc[2] = fmaf(dec, v0[cc].z, acc[2]);
                acc[3] = fmaf(dec, v0[cc].w, acc[3]);
                acc[4] = fmaf(dec, v1[cc].x, acc[4]);
                acc[5] = fmaf(dec, v1[cc].y, acc[5]);
                acc[6] = fmaf(dec, v1[cc].z, acc[6]);
                acc[7] = fmaf(dec, v1[cc].w, acc[7]);
                sum += tots[cc];
            }
        }
        if (p.init && n < N) {
            const float dec = expf((float)sum);
            const float* src = p.init + bh * P * N + n;
#pragma unroll
            for (int b = 0; b < 8; ++b)
                if (q0 + b < P) acc[b] = fmaf(dec, src[(size_t)(q0 + b) * N], acc[b]);
        }
        *reinterpret_cast<float4*>(s_Sin + n * SX + q0) = make_float4(acc[0], acc[1], acc[2], acc[3]);
        *reinterpret_cast<float4*>(s_Sin + n * SX + q0 + 4) = make_float4(acc[4], acc[5], acc[6], acc[7]);
        if (c == CL - 1 && p.final_states && n < N) {
            const float dl = expf((float)s_tot[0]);
            float* dst = p.final_states + bh * P * N + n;
#pragma unroll
            for (int b = 0; b < 8; ++b)
                if (q0 + b < P) dst[(size_t)(q0 + b) * N] = fmaf(dl, acc[b], s_Sc[n * SX + q0 + b]);
        }
    }
    SSDZ_MARK(8);
    __syncthreads();
    SSDZ_MARK(9);
    // 6. Y += (e_t C_t) S_in over this half's n range (k permuted: slot c <-> n0 + 2c).
    if (yact && (c > 0 || p.init) && ta < tn && !(diag & 1)) {
        const float e0 = s_e[ta + g8], e1 = s_e[ta + g8 + 8];
        const int nb = half * 32;
#pragma unroll
        for (int n0 = nb; n0 < nb + 32; n0 += 8) {
            const float2 ca = *reinterpret_cast<const float2*>(s_c + (ta + g8) * SW + n0 + 2 * c4);
            const float2 cb = *reinterpret_cast<const float2*>(s_c + (ta + g8 + 8) * SW + n0 + 2 * c4);
            Tf32x3A a;
            tf32x3_a(a, e0 * ca.x, e1 * cb.x, e0 * ca.y, e1 * cb.y);
            const float* sr = s_Sin + (n0 + 2 * c4) * SX + g8;
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) {
                Tf32x3B b;
                tf32x3_b(b, sr[qq * 8], sr[SX + qq * 8]);
                mma_tf32x3(Y[qq], a, b);
            }
        }
    }
    // 7. Half 1's partials through shared memory (the second copy of x is no longer read) to
    // half 0.
    float* yp = s_x8 + strip * 16 * SW;
    if (yact && half) {
#pragma unroll
        for (int qq = 0; qq < 8; ++qq) {
            *reinterpret_cast<float2*>(yp + g8 * SW + qq * 8 + 2 * c4) = make_float2(Y[qq][0], Y[qq][1]);
            *reinterpret_cast<float2*>(yp + (g8 + 8) * SW + qq * 8 + 2 * c4) = make_float2(Y[qq][2], Y[qq][3]);
        }
    }
    SSDZ_MARK(10);
    __syncthreads();
    SSDZ_MARK(11);
    if (yact && !half && !(diag & 32)) {
        const T* zg = p.z ? static_cast<const T*>(p.z) + i * p.z_sb + (long long)j * P : nullptr;
        T* og = static_cast<T*>(p.out) + i * p.out_sb + (long long)j * P;
        // The usual case (p = 64, 8-byte aligned rows, no z) has its own branch-free loop:
        // the general one below costs ~730 instructions per warp, ~3 us at the end of the
        // kernel (measured with the phase marks).
        const bool lean = P == SP && !zg && (p.out_st & 1) == 0 && (reinterpret_cast<uintptr_t>(og) & (2 * sizeof(T) - 1)) == 0;
        if (lean) {
            const bool hasd = p.D != nullptr;
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int t = ta + g8 + 8 * hh;
                if (t < tn) {
                    T* o = og + (long long)(t0 + t) * p.out_st + 2 * c4;
                    const float* pr = yp + (g8 + 8 * hh) * SW + 2 * c4;
                    const float* xr = s_x + t * SX + 2 * c4;
#pragma unroll
                    for (int qq = 0; qq < 8; ++qq) {
                        const float2 pv = *reinterpret_cast<const float2*>(pr + qq * 8);
                        const float2 xx = *reinterpret_cast<const float2*>(xr + qq * 8);
                        const float2 dd = *reinterpret_cast<const float2*>(s_D + qq * 8 + 2 * c4);
                        float y0 = Y[qq][2 * hh] + pv.x, y1 = Y[qq][2 * hh + 1] + pv.y;
                        if (hasd) {
                            y0 = fmaf(dd.x, xx.x, y0);
                            y1 = fmaf(dd.y, xx.y, y1);
                        }
                        ssdz_st2<T>(o + qq * 8, y0, y1);
                    }
                }
            }
        }
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            const int t = ta + g8 + 8 * hh;
            if (lean || t >= tn) continue;
            const long long tt = t0 + t;
            T* o = og + tt * p.out_st;
            // The z gate of the row, loaded before its stores.
            float gz[8][2];
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) {
                const int q = qq * 8 + 2 * c4;
                gz[qq][0] = zg && q < P ? silu_f(ldf<T>(zg + tt * p.z_st + q)) : 1.f;
                gz[qq][1] = zg && q + 1 < P ? silu_f(ldf<T>(zg + tt * p.z_st + q + 1)) : 1.f;
            }
#pragma unroll
            for (int qq = 0; qq < 8; ++qq) {
                const int q = qq * 8 + 2 * c4;
                if (q >= P) continue;
                const float2 pv = *reinterpret_cast<const float2*>(yp + (g8 + 8 * hh) * SW + q);
                const float2 xx = *reinterpret_cast<const float2*>(s_x + t * SX + q);
                float y0 = Y[qq][2 * hh] + pv.x, y1 = Y[qq][2 * hh + 1] + pv.y;
                if (p.D) {
                    const float2 dd = *reinterpret_cast<const float2*>(s_D + q);
                    y0 = fmaf(dd.x, xx.x, y0);
                    y1 = fmaf(dd.y, xx.y, y1);
                }
                y0 *= gz[qq][0];
                y1 *= gz[qq][1];
                if (q + 1 < P && (reinterpret_cast<uintptr_t>(o + q) & (2 * sizeof(T) - 1)) == 0) {
                    ssdz_st2<T>(o + q, y0, y1);
                } else {
                    o[q] = cvt<T>(y0);
                    if (q + 1 < P) o[q + 1] = cvt<T>(y1);
                }
            }
        }
    }
    SSDZ_MARK(12);
}

#ifndef MAMBA_EMU
#define SSDZ_INST(V, NAME)                                                                     \
    extern "C" __global__ void __cluster_dims__(8, 1, 1) __launch_bounds__(512, 1)             \
        NAME(const __grid_constant__ SsdParams p) {                                            \
        extern __shared__ __align__(16) unsigned char ssdz_sm[];                               \
        ssdz_body<V>(p, ssdz_sm);                                                              \
    }
SSDZ_INST(0, ssdz_f32)
SSDZ_INST(7, ssdz_f32_v7)
extern "C" __global__ void __cluster_dims__(8, 1, 1) __launch_bounds__(512, 1) ssdz_f32_tc(const __grid_constant__ SsdParams p) {
    extern __shared__ __align__(16) unsigned char ssdz_sm[];
    ssdz_tc_body<float>(p, ssdz_sm);
}
extern "C" __global__ void __cluster_dims__(8, 1, 1) __launch_bounds__(512, 1) ssdz_bf16_tc(const __grid_constant__ SsdParams p) {
    extern __shared__ __align__(16) unsigned char ssdz_sm[];
    ssdz_tc_body<bf16_t>(p, ssdz_sm);
}
extern "C" __global__ void __cluster_dims__(8, 1, 1) __launch_bounds__(512, 1) ssdz_f16_tc(const __grid_constant__ SsdParams p) {
    extern __shared__ __align__(16) unsigned char ssdz_sm[];
    ssdz_tc_body<f16_t>(p, ssdz_sm);
}
#endif
