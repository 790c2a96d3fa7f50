// SPEC 3, the causal depthwise conv1d: the tiled forward (`conv1d_fwdt_*`, kernels/misc.cu)
// and the fused backward (`bwd_convt_*`, kernels/bwd.cu) for widths W = 2, 3, 4 (the
// generic one-thread-per-element kernels take every other width). With xp = [init, x] along
// time (init: the W - 1 initial states, or zeros), per (batch row i, channel ch):
//   pre_t = bias + sum_k w_k xp[t + k],  out_t = act(pre_t),
//   final_k = xp[L + k] (k < W - 1),
//   dpre_t = dout_t act'(pre_t),
//   dxp[s] = sum_k w_k dpre[s - k] (0 <= s - k < L) + dfinal[s - L] (s >= L),
//   dx_u = dxp[u + W - 1], dinit_j = dxp[j], dw_k = sum_t dpre_t xp[t + k], dbias = sum_t dpre_t.
// In x's index u (xp[s] = x[s - W + 1]): pre_t reads x[t - W + 1 .. t], dx_u reads
// dpre[u .. u + W - 1], and u < 0 is the initial states' part.
//
// Two layouts, as the call's strides make them (the backward's dout and dx have strides of
// their own, `d_*` and `dx_*`):
// - CL, channels dense (x_sc == 1, and o_sc == 1 for the forward): a thread per channel
//   walks a segment of time, x_t loaded once per thread into a window of W registers (a
//   warp reads 32 consecutive channels per step). Forward: grid (ceil(C / 128), segments,
//   b), segments of ceil(L / gridDim.y) steps. Backward: a block is 32 channels x 4
//   segments (a warp per segment), grid (ceil(C / 32), ceil(segments / 4), b), segments of
//   ceil(L / (4 gridDim.y)) steps; a thread recomputes pre and dpre over its segment plus
//   the W - 1 steps after it (a window of W dpre values), writes dx as soon as the window
//   covers it, and the block sums dw / dbias over its 4 segments before W + 1 atomics per
//   channel (a thread's own atomics contended: 200 per address at b2 L800).
// - CF, time dense (x_st == 1, and o_st == 1 for the forward, d_st == dx_st == 1 for the
//   backward; any other strides take CL's form): a block per (time tile of
//   CONVT_TL steps, channel, batch row) stages the tile's x (with the W - 1 steps before it,
//   and for the backward the W - 1 after it and dout) in shared memory by coalesced loads,
//   then every thread takes CONVT_TL / 128 outputs; the backward keeps dpre of the tile in
//   shared memory and sums dw / dbias over the block before W + 1 atomics.
// The row pointers are `__restrict__` (x and dout are never written by the call: dx must not
// alias them, as the host's checks require), so that the loads of later steps may be issued
// before the stores of earlier ones. The generic kernels index every element by 64-bit divisions and re-read each input W
// times from global memory; the backward took three launches and a (b, c, L) f32 scratch.
#pragma once
#include <type_traits>

#include "common.cuh"

// The sum of v over the 32 lanes of a warp, in every lane (for the kernels of misc.cu and
// bwd.cu, the two files that include this one; not in common.cuh, which the host
// emulators of other kernels include without a __shfl_xor_sync).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#define CONVT_NT 128
#define CONVT_TL 512
#define CONVT_CH 8  // the CL forms' steps per batch of loads

// x at position pos (< L) of a row, or the initial state (pos < 0; zero without one).
template <typename T, int W>
__device__ __forceinline__ float convt_xp(const T* xr, long long st, const float* init, int pos) {
    return pos >= 0 ? ldf(xr + (long long)pos * st) : (init ? init[W - 1 + pos] : 0.f);
}

// The time-dense forms' stage: xs[e] = xp at t0 - W + 1 + e for e < n (0 at or past L).
template <typename T, int W>
__device__ __forceinline__ void convt_stage_cf(float* xs, int n, const T* xr, const float* init, int t0, int L) {
    for (int e = threadIdx.x; e < n; e += CONVT_NT) {
        const int pos = t0 - (W - 1) + e;
        xs[e] = pos < L ? convt_xp<T, W>(xr, 1, init, pos) : 0.f;
    }
}

// A channel's taps into w (P: ConvParams or ConvBwdParams); returns its bias (0 without one).
template <int W, class P>
__device__ __forceinline__ float convt_taps(const P& p, int ch, float (&w)[W]) {
#pragma unroll
    for (int k = 0; k < W; ++k) w[k] = p.w[ch * W + k];
    return p.bias ? p.bias[ch] : 0.f;
}

template <typename T, int W>
__device__ void conv1d_fwd_cl(const ConvParams& p) {
    const int C = p.channels, L = p.seqlen;
    const int ch = blockIdx.x * CONVT_NT + threadIdx.x, i = blockIdx.z;
    const int ts = (L + (int)gridDim.y - 1) / (int)gridDim.y;
    const int t0 = blockIdx.y * ts, t1 = min(t0 + ts, L);
    if (ch >= C || t0 >= L) return;
    const T* __restrict__ xr = static_cast<const T*>(p.x) + i * p.x_sb + ch * p.x_sc;
    T* __restrict__ orow = static_cast<T*>(p.out) + i * p.o_sb + ch * p.o_sc;
    const float* init = p.init ? p.init + ((long long)i * C + ch) * (W - 1) : nullptr;
    float w[W], win[W];
    const float bias = convt_taps<W>(p, ch, w);
#pragma unroll
    for (int k = 0; k < W - 1; ++k) win[k] = convt_xp<T, W>(xr, p.x_st, init, t0 - (W - 1) + k);
    // CONVT_CH steps at a time: their loads first (all in flight), then the arithmetic.
    for (int tc = t0; tc < t1; tc += CONVT_CH) {
        float xv[CONVT_CH];
#pragma unroll
        for (int j = 0; j < CONVT_CH; ++j) xv[j] = tc + j < t1 ? ldf(xr + (long long)(tc + j) * p.x_st) : 0.f;
#pragma unroll
        for (int j = 0; j < CONVT_CH; ++j) {
            const int t = tc + j;
            if (t >= t1) break;
            win[W - 1] = xv[j];
            float acc = bias;
#pragma unroll
            for (int k = 0; k < W; ++k) acc = fmaf(w[k], win[k], acc);
            if (p.silu) acc = silu_f(acc);
            orow[(long long)t * p.o_st] = cvt<T>(acc);
#pragma unroll
            for (int k = 0; k < W - 1; ++k) win[k] = win[k + 1];
        }
    }
    // After the last step the window holds x[L - W + 1 .. L - 1] = xp[L .. L + W - 2].
    if (p.final_states && t1 == L) {
#pragma unroll
        for (int k = 0; k < W - 1; ++k) p.final_states[((long long)i * C + ch) * (W - 1) + k] = win[k];
    }
}

template <typename T, int W>
__device__ void conv1d_fwd_cf(const ConvParams& p) {
    __shared__ float xs[CONVT_TL + W - 1];  // x at t0 - W + 1 .. t0 + CONVT_TL - 1
    const int C = p.channels, L = p.seqlen;
    const int t0 = blockIdx.x * CONVT_TL, ch = blockIdx.y, i = blockIdx.z, tid = threadIdx.x;
    const T* xr = static_cast<const T*>(p.x) + i * p.x_sb + ch * p.x_sc;
    const float* init = p.init ? p.init + ((long long)i * C + ch) * (W - 1) : nullptr;
    convt_stage_cf<T, W>(xs, CONVT_TL + W - 1, xr, init, t0, L);
    float w[W];
    const float bias = convt_taps<W>(p, ch, w);
    __syncthreads();
    T* orow = static_cast<T*>(p.out) + i * p.o_sb + ch * p.o_sc;
#pragma unroll
    for (int r = 0; r < CONVT_TL / CONVT_NT; ++r) {
        const int e = tid + r * CONVT_NT, t = t0 + e;
        if (t < L) {
            float acc = bias;
#pragma unroll
            for (int k = 0; k < W; ++k) acc = fmaf(w[k], xs[e + k], acc);
            if (p.silu) acc = silu_f(acc);
            orow[t] = cvt<T>(acc);
        }
    }
    // The tile holding step L - 1 holds xp[L .. L + W - 2] at xs[L - t0 .. ].
    if (p.final_states && L - 1 < t0 + CONVT_TL && tid < W - 1)
        p.final_states[((long long)i * C + ch) * (W - 1) + tid] = xs[L - t0 + tid];
}

// dout act'(pre): silu' = sg (1 + pre (1 - sg)).
__device__ __forceinline__ float convt_dpre(float d, float pre, int silu) {
    if (!silu) return d;
    const float sg = __fdividef(1.f, 1.f + __expf(-pre));  // 0 where e^-pre overflows
    return d * (sg * (1.f + pre * (1.f - sg)));
}

// CP adjacent channels of a row, loaded (stored) by one access: CP 1 any layout; CP 2 where
// channels are dense and every row start is aligned to two elements (the host checks).
template <typename T, int CP>
__device__ __forceinline__ void convt_ldn(const T* p, float (&v)[CP]) {
    if constexpr (CP == 1) {
        v[0] = ldf(p);
    } else if constexpr (sizeof(T) == 4) {
        const float2 r = *reinterpret_cast<const float2*>(p);
        v[0] = r.x;
        v[1] = r.y;
    } else {
#ifndef MAMBA_EMU
        const unsigned r = *reinterpret_cast<const unsigned*>(p);
        if constexpr (std::is_same_v<T, bf16_t>) {
            v[0] = __uint_as_float(r << 16);
            v[1] = __uint_as_float(r & 0xffff0000u);
        } else {
            const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&r));
            v[0] = f.x;
            v[1] = f.y;
        }
#endif
    }
}
template <typename T, int CP>
__device__ __forceinline__ void convt_stn(T* p, const float (&v)[CP]) {
    if constexpr (CP == 1) {
        *p = cvt<T>(v[0]);
    } else if constexpr (sizeof(T) == 4) {
        *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
    } else {
#ifndef MAMBA_EMU
        if constexpr (std::is_same_v<T, bf16_t>) {
            *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
        } else {
            *reinterpret_cast<__half2*>(p) = __floats2half2_rn(v[0], v[1]);
        }
#endif
    }
}

// CL's backward; CP (1 or 2) channels per thread (`bwd_convt_cl2_*`: a warp's accesses 64
// channels wide, half the load / store instructions per element).
template <typename T, int W, int CP = 1>
__device__ void conv_bwd_cl(const ConvBwdParams& p) {
    constexpr int NW = CONVT_NT / 32, CW = 32 * CP;
    __shared__ float red[W + 1][NW][CW];
    const int C = p.channels, L = p.seqlen;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int ch = (blockIdx.x * 32 + lane) * CP, i = blockIdx.z;
    const int nseg = (int)gridDim.y * NW;
    const int ts = (L + nseg - 1) / nseg;
    const int u0 = (blockIdx.y * NW + warp) * ts, u1 = min(u0 + ts, L);
    float dw[CP][W], db[CP];
#pragma unroll
    for (int c = 0; c < CP; ++c) {
        db[c] = 0.f;
#pragma unroll
        for (int k = 0; k < W; ++k) dw[c][k] = 0.f;
    }
    if (ch < C && u0 < L) {
        const long long st = p.x_st, dst = p.d_st, xst = p.dx_st;
        const T* __restrict__ xr = static_cast<const T*>(p.x) + i * p.x_sb + ch * p.x_sc;
        const T* __restrict__ dr = static_cast<const T*>(p.dout) + i * p.d_sb + ch * p.d_sc;
        T* __restrict__ dxr = static_cast<T*>(p.dx) + i * p.dx_sb + ch * p.dx_sc;
        const long long sr = ((long long)i * C + ch) * (W - 1);  // channel c's: sr + c (W - 1)
        float w[CP][W], xw[CP][W], dpw[CP][W], bias[CP];
#pragma unroll
        for (int c = 0; c < CP; ++c) {
            bias[c] = convt_taps<W>(p, ch + c, w[c]);
#pragma unroll
            for (int k = 0; k < W; ++k) dpw[c][k] = 0.f;
#pragma unroll
            for (int k = 0; k < W - 1; ++k) {
                const int pos = u0 - (W - 1) + k;
                xw[c][k] = pos >= 0 ? ldf(xr + (long long)pos * st + c) : (p.init ? p.init[sr + c * (W - 1) + W - 1 + pos] : 0.f);
            }
        }
        // Step t: dpre_t (0 past L) into the window dpw = dpre[t - W + 1 .. t], then dx of
        // u = t - W + 1 (the segment's own u, and for the first segment the initial states').
        const int tend = u1 + W - 1, tl = min(tend, L);
        // CONVT_CH steps at a time: their x and dout loads first (all in flight).
        for (int tc = u0; tc < tend; tc += CONVT_CH) {
            float xv[CONVT_CH][CP], dv[CONVT_CH][CP];
#pragma unroll
            for (int j = 0; j < CONVT_CH; ++j) {
                if (tc + j < tl) {
                    convt_ldn<T, CP>(xr + (long long)(tc + j) * st, xv[j]);
                    convt_ldn<T, CP>(dr + (long long)(tc + j) * dst, dv[j]);
                } else {
#pragma unroll
                    for (int c = 0; c < CP; ++c) xv[j][c] = dv[j][c] = 0.f;
                }
            }
#pragma unroll
            for (int j = 0; j < CONVT_CH; ++j) {
                const int t = tc + j;
                if (t >= tend) break;
                const int u = t - (W - 1);
                const bool emit = u >= u0 || (u0 == 0 && u >= -(W - 1));
                float v[CP];
#pragma unroll
                for (int c = 0; c < CP; ++c) {
                    float d = 0.f;
                    if (t < L) {
                        xw[c][W - 1] = xv[j][c];
                        float pre = bias[c];
#pragma unroll
                        for (int k = 0; k < W; ++k) pre = fmaf(w[c][k], xw[c][k], pre);
                        d = convt_dpre(dv[j][c], pre, p.silu);
                        if (t < u1) {
#pragma unroll
                            for (int k = 0; k < W; ++k) dw[c][k] = fmaf(d, xw[c][k], dw[c][k]);
                            db[c] += d;
                        }
#pragma unroll
                        for (int k = 0; k < W - 1; ++k) xw[c][k] = xw[c][k + 1];
                    }
#pragma unroll
                    for (int k = 0; k < W - 1; ++k) dpw[c][k] = dpw[c][k + 1];
                    dpw[c][W - 1] = d;
                    v[c] = 0.f;
#pragma unroll
                    for (int k = 0; k < W; ++k) v[c] = fmaf(w[c][k], dpw[c][W - 1 - k], v[c]);
                    if (p.dfinal && u >= L - (W - 1)) v[c] += p.dfinal[sr + c * (W - 1) + u - (L - (W - 1))];
                }
                if (emit) {
                    if (u >= 0) {
                        convt_stn<T, CP>(dxr + (long long)u * xst, v);
                    } else if (p.dinit) {
#pragma unroll
                        for (int c = 0; c < CP; ++c) p.dinit[sr + c * (W - 1) + u + W - 1] = v[c];
                    }
                }
            }
        }
    }
    // dw / dbias: the block's NW segments summed per channel, then W + 1 atomics.
#pragma unroll
    for (int c = 0; c < CP; ++c) {
#pragma unroll
        for (int k = 0; k < W; ++k) red[k][warp][lane * CP + c] = dw[c][k];
        red[W][warp][lane * CP + c] = db[c];
    }
    __syncthreads();
    if (warp == 0 && ch < C) {
#pragma unroll
        for (int c = 0; c < CP; ++c) {
#pragma unroll
            for (int k = 0; k <= W; ++k) {
                float v = 0.f;
#pragma unroll
                for (int q = 0; q < NW; ++q) v += red[k][q][lane * CP + c];
                if (k < W) atomicAdd(&p.dw[(ch + c) * W + k], v);
                else if (p.dbias) atomicAdd(&p.dbias[ch + c], v);
            }
        }
    }
}

#define CONVS_CT 64  // the staged forms' channels per block
#define CONVS_TT 32  // their steps per time tile
#define CONVS_BPS 8  // their blocks per SM (__launch_bounds__: <= 64 registers)

// 16 bytes global -> shared by cp.async (ok false: 16 zero bytes, nothing read), and the wait
// for all of a thread's copies.
__device__ __forceinline__ void convs_cp16(void* dst, const void* src, bool ok) {
#ifdef MAMBA_EMU
    emu_cp(dst, src, ok ? 16 : 0, 16);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(ok ? 16 : 0) : "memory");
#endif
}
__device__ __forceinline__ void convs_cp_wait() {
#ifdef MAMBA_EMU
    emu_cp_wait_all();
#else
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Rows [s0, s0 + R) of a (steps x channels) tensor (row stride st, from the block's first
// channel) into tile[R][CONVS_CT] of the storage type by 16-byte cp.async: zeros for rows
// outside [0, L) and channels past C.
template <typename T, int R>
__device__ __forceinline__ void convs_stage(T (*tile)[CONVS_CT], const T* base, long long st, int s0, int L, int cleft) {
    constexpr int VE = 16 / sizeof(T), VR = CONVS_CT / VE;
    for (int e = threadIdx.x; e < R * VR; e += CONVT_NT) {
        const int r = e / VR, q = e % VR, s = s0 + r;
        const bool ok = s >= 0 && s < L && q * VE < cleft;
        convs_cp16(&tile[r][q * VE], ok ? base + (long long)s * st + q * VE : base, ok);
    }
}

// Rows [0, R) of tile (the storage type) to rows [s0, s0 + R) of a tensor, stopping at L and
// at channel C, by 16-byte stores.
template <typename T, int R>
__device__ __forceinline__ void convs_store(T* base, long long st, const T (*tile)[CONVS_CT], int s0, int L, int cleft) {
    constexpr int VE = 16 / sizeof(T), VR = CONVS_CT / VE;
    for (int e = threadIdx.x; e < R * VR; e += CONVT_NT) {
        const int r = e / VR, q = e % VR;
        if (s0 + r < L && q * VE < cleft)
            *reinterpret_cast<uint4*>(base + (long long)(s0 + r) * st + q * VE) = *reinterpret_cast<const uint4*>(&tile[r][q * VE]);
    }
}

// CL's forward staged through shared memory (`conv1d_fwdt_cls_*`; channels dense and every
// row start of x and out aligned to 16 bytes, C a multiple of 16 / sizeof(T): the host
// checks). A block takes CONVS_CT channels of a batch row and walks time tiles of CONVS_TT
// steps (tile = blockIdx.y, + gridDim.y, ...): x at t0 - W + 1 .. t0 + TT - 1 copied by
// cp.async into shared memory in the storage type (x before 0 from the initial states, kept
// in f32), out computed by a thread per (channel, half of the rows) into shared memory and
// stored by 16-byte vectors; the tile holding step L - 1 writes the final states.
template <typename T, int W>
__device__ void conv1d_fwd_cls(const ConvParams& p) {
    constexpr int CT = CONVS_CT, TT = CONVS_TT, XR = TT + W - 1, G = CONVT_NT / CT;
    static_assert(CONVT_NT % CT == 0 && (CT * sizeof(T)) % 16 == 0, "tile shape");
    __shared__ __align__(16) T xs[XR][CT];  // x at t0 - W + 1 + r
    __shared__ __align__(16) T os[TT][CT];  // out at t0 + r
    __shared__ float xi[W > 1 ? W - 1 : 1][CT];  // the initial states (the first tile's rows < W - 1)
    const int C = p.channels, L = p.seqlen, i = blockIdx.z, c0 = blockIdx.x * CT;
    const int tid = threadIdx.x, cl = tid % CT, g = tid / CT, ch = c0 + cl;
    const int ntile = (L + TT - 1) / TT;
    float w[W], bias = 0.f;
#pragma unroll
    for (int k = 0; k < W; ++k) w[k] = 0.f;
    if (ch < C) bias = convt_taps<W>(p, ch, w);
    const T* __restrict__ xb = static_cast<const T*>(p.x) + i * p.x_sb + c0;
    T* __restrict__ ob = static_cast<T*>(p.out) + i * p.o_sb + c0;
    const long long sr = ((long long)i * C + ch) * (W - 1);
    if (g == 0) {
#pragma unroll
        for (int r = 0; r < W - 1; ++r) xi[r][cl] = ch < C && p.init ? p.init[sr + r] : 0.f;
    }
    for (int tile = blockIdx.y; tile < ntile; tile += gridDim.y) {
        const int t0 = tile * TT;
        __syncthreads();  // the previous tile's reads of xs / os are done
        convs_stage<T, XR>(xs, xb, p.x_st, t0 - (W - 1), L, C - c0);
        convs_cp_wait();
        __syncthreads();
        const int r0 = g * (TT / G), r1 = min(r0 + TT / G, L - t0);
        float xw[W];
#pragma unroll
        for (int k = 0; k < W - 1; ++k) xw[k] = t0 + r0 + k < W - 1 ? xi[r0 + k][cl] : ldf(&xs[r0 + k][cl]);
#pragma unroll 4
        for (int r = r0; r < r1; ++r) {
            xw[W - 1] = ldf(&xs[r + W - 1][cl]);
            float acc = bias;
#pragma unroll
            for (int k = 0; k < W; ++k) acc = fmaf(w[k], xw[k], acc);
            os[r][cl] = cvt<T>(p.silu ? silu_f(acc) : acc);
#pragma unroll
            for (int k = 0; k < W - 1; ++k) xw[k] = xw[k + 1];
        }
        // The final states: xp[L + k] = x[L - W + 1 + k], at xs row L - t0 + k (< W - 1 of
        // the first tile: the initial states').
        if (p.final_states && g == 1 && ch < C && L - 1 < t0 + TT) {
#pragma unroll
            for (int k = 0; k < W - 1; ++k) {
                const int r = L - t0 + k;
                p.final_states[sr + k] = t0 + r < W - 1 ? xi[r][cl] : ldf(&xs[r][cl]);
            }
        }
        __syncthreads();
        convs_store<T, TT>(ob, p.o_st, os, t0, L, C - c0);
    }
}

// CL's backward staged through shared memory (`bwd_convt_cls_*`; channels dense and every row
// start of x, dout and dx aligned to 16 bytes, C a multiple of 16 / sizeof(T): the host
// checks). A block takes CONVS_CT channels of a batch row and walks time tiles of CONVS_TT
// steps (tile = blockIdx.y, + gridDim.y, ...). Per tile: (1) x at t0 - W + 1 .. t0 + TT +
// W - 2 and dout at t0 .. t0 + TT + W - 2 copied by cp.async into shared memory in the
// storage type (zeros past L and past C; x before 0 from the initial states, kept in f32);
// (2) a thread per (channel, half of the rows) computes dpre (f32, shared memory) and sums
// dw / dbias over the tile's own steps; (3) dx_u = sum_k w_k dpre[u + W - 1 - k] (+ dfinal
// at the end; the first tile also writes dinit) into shared memory in the storage type; (4)
// dx stored by 16-byte vectors. dw / dbias: summed over the two halves, W + 1 atomics per
// channel and block. The channel-walking `cl` form issues a 2-byte load per element and
// thread (latency-bound at the LM width: ncu 267 us, DRAM 19%).
template <typename T, int W>
__device__ void conv_bwd_cls(const ConvBwdParams& p) {
    constexpr int CT = CONVS_CT, TT = CONVS_TT, XR = TT + 2 * (W - 1), DR = TT + W - 1, G = CONVT_NT / CT;
    static_assert(CONVT_NT % CT == 0 && (CT * sizeof(T)) % 16 == 0 && (W + 1) * G <= DR, "tile shape");
    __shared__ __align__(16) T xs[XR][CT];      // x at t0 - W + 1 + r
    __shared__ __align__(16) T ds[DR][CT];      // dout at t0 + r (0 at or past L)
    __shared__ __align__(16) T dxs[TT][CT];     // dx at t0 + r
    __shared__ __align__(16) float dp[DR][CT];  // dpre at t0 + r (0 at or past L); at the end dw / dbias
    __shared__ float xi[W > 1 ? W - 1 : 1][CT];  // the initial states (the first tile's rows < W - 1)
    const int C = p.channels, L = p.seqlen, i = blockIdx.z, c0 = blockIdx.x * CT;
    const int tid = threadIdx.x, cl = tid % CT, g = tid / CT, ch = c0 + cl;
    const int ntile = (L + TT - 1) / TT;
    float w[W], dw[W], db = 0.f, bias = 0.f;
#pragma unroll
    for (int k = 0; k < W; ++k) w[k] = dw[k] = 0.f;
    if (ch < C) bias = convt_taps<W>(p, ch, w);
    const T* __restrict__ xb = static_cast<const T*>(p.x) + i * p.x_sb + c0;
    const T* __restrict__ dob = static_cast<const T*>(p.dout) + i * p.d_sb + c0;
    T* __restrict__ dxb = static_cast<T*>(p.dx) + i * p.dx_sb + c0;
    const long long sr = ((long long)i * C + ch) * (W - 1);
    if (g == 0) {
#pragma unroll
        for (int r = 0; r < W - 1; ++r) xi[r][cl] = ch < C && p.init ? p.init[sr + r] : 0.f;
    }
    for (int tile = blockIdx.y; tile < ntile; tile += gridDim.y) {
        const int t0 = tile * TT;
        __syncthreads();  // the previous tile's reads of xs / ds / dxs are done
        convs_stage<T, XR>(xs, xb, p.x_st, t0 - (W - 1), L, C - c0);
        convs_stage<T, DR>(ds, dob, p.d_st, t0, L, C - c0);
        convs_cp_wait();
        __syncthreads();
        // (2) dpre over rows [g PR, (g + 1) PR) of DR, x's window in registers.
        {
            constexpr int PR = (DR + G - 1) / G;
            const int e0 = g * PR, e1 = min(min(e0 + PR, DR), L - t0);
            float xw[W];
#pragma unroll
            for (int k = 0; k < W - 1; ++k) xw[k] = t0 + e0 + k < W - 1 ? xi[e0 + k][cl] : ldf(&xs[e0 + k][cl]);
#pragma unroll 2
            for (int e = e0; e < e1; ++e) {
                xw[W - 1] = ldf(&xs[e + W - 1][cl]);
                float pre = bias;
#pragma unroll
                for (int k = 0; k < W; ++k) pre = fmaf(w[k], xw[k], pre);
                const float d = convt_dpre(ldf(&ds[e][cl]), pre, p.silu);
                if (e < TT) {
#pragma unroll
                    for (int k = 0; k < W; ++k) dw[k] = fmaf(d, xw[k], dw[k]);
                    db += d;
                }
                dp[e][cl] = d;
#pragma unroll
                for (int k = 0; k < W - 1; ++k) xw[k] = xw[k + 1];
            }
            for (int e = max(e1, e0); e < min(e0 + PR, DR); ++e) dp[e][cl] = 0.f;  // at or past L
        }
        __syncthreads();
        // (3) dx at u = t0 + r over rows [g TT / G, (g + 1) TT / G); the first tile's dinit
        // (r < 0) by the first half.
        {
            const int r0 = g * (TT / G), r1 = min(r0 + TT / G, L - t0);
            const bool tail = p.dfinal && ch < C && t0 + TT > L - (W - 1);
            if (t0 == 0 && g == 0) {
#pragma unroll
                for (int r = -(W - 1); r < 0; ++r) {
                    float v = 0.f;
#pragma unroll
                    for (int k = 0; k < W; ++k)
                        if (r + W - 1 - k >= 0) v = fmaf(w[k], dp[r + W - 1 - k][cl], v);
                    if (tail && r >= L - (W - 1)) v += p.dfinal[sr + r - (L - (W - 1))];
                    if (p.dinit && ch < C) p.dinit[sr + r + W - 1] = v;
                }
            }
            float dw_[W];
#pragma unroll
            for (int k = 0; k < W - 1; ++k) dw_[k] = dp[r0 + k][cl];  // dpre[u .. u + W - 2]
#pragma unroll 4
            for (int r = r0; r < r1; ++r) {
                dw_[W - 1] = dp[r + W - 1][cl];
                float v = 0.f;
#pragma unroll
                for (int k = 0; k < W; ++k) v = fmaf(w[k], dw_[W - 1 - k], v);
                if (tail && t0 + r >= L - (W - 1)) v += p.dfinal[sr + t0 + r - (L - (W - 1))];
                dxs[r][cl] = cvt<T>(v);
#pragma unroll
                for (int k = 0; k < W - 1; ++k) dw_[k] = dw_[k + 1];
            }
        }
        __syncthreads();
        convs_store<T, TT>(dxb, p.dx_st, dxs, t0, L, C - c0);
    }
    // dw / dbias: the two halves summed per channel (in dp, whose last reads were before the
    // last tile's final barrier), then W + 1 atomics.
    float (*red)[CT] = dp;  // row k G + g
#pragma unroll
    for (int k = 0; k < W; ++k) red[k * G + g][cl] = dw[k];
    red[W * G + g][cl] = db;
    __syncthreads();
    if (g == 0 && ch < C && (int)blockIdx.y < ntile) {
#pragma unroll
        for (int k = 0; k <= W; ++k) {
            float v = 0.f;
#pragma unroll
            for (int q = 0; q < G; ++q) v += red[k * G + q][cl];
            if (k < W) atomicAdd(&p.dw[ch * W + k], v);
            else if (p.dbias) atomicAdd(&p.dbias[ch], v);
        }
    }
}

template <typename T, int W>
__device__ void conv_bwd_cf(const ConvBwdParams& p) {
    constexpr int TL = CONVT_TL, NW = CONVT_NT / 32;
    __shared__ float xs[TL + 2 * (W - 1)];  // x at u0 - W + 1 .. u0 + TL + W - 2
    __shared__ float dp[TL + W - 1];        // dpre at u0 .. u0 + TL + W - 2 (0 past L)
    __shared__ float red[W + 1][NW];
    const int C = p.channels, L = p.seqlen;
    const int u0 = blockIdx.x * TL, ch = blockIdx.y, i = blockIdx.z, tid = threadIdx.x;
    const T* xr = static_cast<const T*>(p.x) + i * p.x_sb + ch * p.x_sc;
    const T* dr = static_cast<const T*>(p.dout) + i * p.d_sb + ch * p.d_sc;
    const long long sr = ((long long)i * C + ch) * (W - 1);
    const float* init = p.init ? p.init + sr : nullptr;
    convt_stage_cf<T, W>(xs, TL + 2 * (W - 1), xr, init, u0, L);
    float w[W];
    const float bias = convt_taps<W>(p, ch, w);
    __syncthreads();
    float dw[W], db = 0.f;
#pragma unroll
    for (int k = 0; k < W; ++k) dw[k] = 0.f;
    for (int e = tid; e < TL + W - 1; e += CONVT_NT) {
        const int t = u0 + e;
        float d = 0.f;
        if (t < L) {
            float pre = bias;
#pragma unroll
            for (int k = 0; k < W; ++k) pre = fmaf(w[k], xs[e + k], pre);
            d = convt_dpre(ldf(dr + t), pre, p.silu);
            if (e < TL) {
#pragma unroll
                for (int k = 0; k < W; ++k) dw[k] = fmaf(d, xs[e + k], dw[k]);
                db += d;
            }
        }
        dp[e] = d;
    }
    __syncthreads();
    const float* dfin = p.dfinal ? p.dfinal + sr : nullptr;
    T* dxr = static_cast<T*>(p.dx) + i * p.dx_sb + ch * p.dx_sc;
    auto dxp = [&](int u) {  // dxp[u + W - 1] for u >= u0 - W + 1 (dpre before u0 counted 0)
        float v = 0.f;
#pragma unroll
        for (int k = 0; k < W; ++k) {
            const int e = u + W - 1 - k - u0;
            if (e >= 0) v = fmaf(w[k], dp[e], v);
        }
        if (dfin && u >= L - (W - 1)) v += dfin[u - (L - (W - 1))];
        return v;
    };
#pragma unroll
    for (int r = 0; r < TL / CONVT_NT; ++r) {
        const int u = u0 + tid + r * CONVT_NT;
        if (u < L) dxr[u] = cvt<T>(dxp(u));
    }
    if (u0 == 0 && p.dinit && tid < W - 1) p.dinit[sr + tid] = dxp(tid - (W - 1));
    // dw / dbias: the block's sums, then W + 1 atomics.
    const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int k = 0; k <= W; ++k) {
        const float v = warp_sum(k < W ? dw[k] : db);
        if (lane == 0) red[k][warp] = v;
    }
    __syncthreads();
    if (tid <= W && (tid < W || p.dbias)) {
        float v = 0.f;
#pragma unroll
        for (int q = 0; q < NW; ++q) v += red[tid][q];
        atomicAdd(tid < W ? &p.dw[ch * W + tid] : &p.dbias[ch], v);
    }
}
