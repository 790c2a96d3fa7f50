// `ssdz_*` (eighth session, helper D; src/gpu/seed.rs `ssdz_launch`, `MAMBA_CUDA_SSDZ=1`):
// the SSD forward at the seed shapes in its chunked (state-space-dual) form in ONE launch,
// the chunk-to-chunk state passing done through distributed shared memory inside a
// thread-block cluster, so there is no sequential walk over the steps and no second launch.
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
// 1e-5; single TF32 would miss it). Applies to f32 without seq_idx, p <= 64, N <= 64,
// 1 <= L <= CL * QMAX (groups, D per head or channel, z, dt_bias, softplus, dt limits,
// initial and final states); the host falls back to `ssdq` / `ssdr` elsewhere.
// Launch: grid (CL, h, b), NT = 512 threads, dynamic shared memory = ssdz_smem in seed.rs.
#include "common.cuh"
#ifndef MAMBA_EMU
#include <cooperative_groups.h>
#endif

namespace ssdz {
constexpr int CL = 8;      // chunks = blocks per cluster
constexpr int NT = 512;    // threads per block
constexpr int SP = 64;     // headdim, padded
constexpr int SN = 64;     // dstate, padded
constexpr int QMAX = 128;  // longest chunk
}  // namespace ssdz

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
            run += (double)d[a] * A;
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

#ifndef MAMBA_EMU
#define SSDZ_INST(V, NAME)                                                                     \
    extern "C" __global__ void __cluster_dims__(8, 1, 1) __launch_bounds__(512, 1)             \
        NAME(const __grid_constant__ SsdParams p) {                                            \
        extern __shared__ __align__(16) unsigned char ssdz_sm[];                               \
        ssdz_body<V>(p, ssdz_sm);                                                              \
    }
SSDZ_INST(0, ssdz_f32)
SSDZ_INST(1, ssdz_f32_v1)
SSDZ_INST(2, ssdz_f32_v2)
SSDZ_INST(3, ssdz_f32_v3)
SSDZ_INST(4, ssdz_f32_v4)
SSDZ_INST(6, ssdz_f32_v6)
SSDZ_INST(7, ssdz_f32_v7)
#endif
