// SPEC 3-5 and the pieces of the Mamba2Block: causal depthwise conv1d (any width,
// either layout, with states), the two decode steps, a fallback GEMM, and the gated
// RMS norm.
#include "common.cuh"
#include "conv.cuh"

#include <type_traits>

// `gated_rmsnorm_pairs`' column pairs per thread (the host's `GATED_NORM_PAIRS`): at 256
// threads a group of up to 2048 columns.
#define GATED_NORM_PAIRS 4

// Dynamic shared memory (the host emulator, emu/emu_misc.cpp, gives its own buffer).
#ifndef MISC_DYN_SMEM
#define MISC_DYN_SMEM(name) extern __shared__ float name[]
#endif

// SPEC 3, the generic form (widths other than 2-4, grids past the tiled forms' limits; the
// tiled forms are in conv.cuh). One thread per output element, threads running along the dense dimension
// (time for channel-first, channels for channel-last) so loads and stores coalesce;
// the tail of the grid writes the final states (the last W-1 columns of [init, x]).
template <typename T>
__device__ void conv1d_fwd(const ConvParams& p) {
    const T* x = static_cast<const T*>(p.x);
    T* out = static_cast<T*>(p.out);
    const long long C = p.channels, L = p.seqlen, W = p.width;
    const long long n_out = (long long)p.batch * C * L;
    const long long n_fin = p.final_states ? (long long)p.batch * C * (W - 1) : 0;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n_out + n_fin;
         idx += (long long)gridDim.x * blockDim.x) {
        if (idx < n_out) {
            long long i, ch, t;
            if (p.channel_last) {
                ch = idx % C; t = (idx / C) % L; i = idx / (C * L);
            } else {
                t = idx % L; ch = (idx / L) % C; i = idx / (C * L);
            }
            const T* xr = x + i * p.x_sb + ch * p.x_sc;
            const float* init = p.init ? p.init + (i * C + ch) * (W - 1) : nullptr;
            float acc = p.bias ? p.bias[ch] : 0.f;
            for (long long kk = 0; kk < W; ++kk) {
                const long long pos = t + kk - (W - 1);
                const float v = pos >= 0 ? ldf(xr + pos * p.x_st) : (init ? init[W - 1 + pos] : 0.f);
                acc = fmaf(p.w[ch * W + kk], v, acc);
            }
            if (p.silu) acc = silu_f(acc);
            out[i * p.o_sb + ch * p.o_sc + t * p.o_st] = cvt<T>(acc);
        } else {
            const long long j = idx - n_out;
            const long long kk = j % (W - 1), ch = (j / (W - 1)) % C, i = j / ((W - 1) * C);
            const long long pos = L + kk - (W - 1);
            float v;
            if (pos >= 0) v = ldf(x + i * p.x_sb + ch * p.x_sc + pos * p.x_st);
            else v = p.init ? p.init[(i * C + ch) * (W - 1) + W - 1 + pos] : 0.f;
            p.final_states[j] = v;
        }
    }
}

// SPEC 4. One warp per state row (batch, head, p); lanes run along N.
template <typename T>
__device__ void state_update(const StateUpdateParams& p) {
    const T* x = static_cast<const T*>(p.x);
    const T* dt = static_cast<const T*>(p.dt);
    const T* Bp = static_cast<const T*>(p.B);
    const T* Cp = static_cast<const T*>(p.C);
    const T* zp = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const int lane = threadIdx.x % 32;
    const long long rows = (long long)p.batch * p.nheads * p.headdim;
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (row >= rows) return;
    const int hp = p.nheads * p.headdim;
    const long long i = row / hp;
    const int r = (int)(row % hp);
    const int j = r / p.headdim;
    const int k = j / (p.nheads / p.ngroups);
    const float raw = ldf(dt + row) + (p.dt_bias ? p.dt_bias[r] : 0.f);
    const float s = step_size(raw, p.softplus, p.has_limit, p.lo, p.hi);
    const float xv = ldf(x + row);
    const T* b = Bp + (i * p.ngroups + k) * p.dstate;
    const T* c = Cp + (i * p.ngroups + k) * p.dstate;
    float* st = p.state + row * p.dstate;
    const float* a = p.A + (long long)r * p.dstate;
    float y = 0.f;
    for (int n = lane; n < p.dstate; n += 32) {
        const float v = expf(s * a[n]) * st[n] + s * ldf(b + n) * xv;
        st[n] = v;
        y = fmaf(v, ldf(c + n), y);
    }
    y = warp_sum(y);
    if (lane == 0) {
        if (p.D) y += p.D[r] * xv;
        if (zp) y *= silu_f(ldf(zp + row));
        out[row] = cvt<T>(y);
    }
}

// SPEC 5. One thread per (batch, channel): outputs first (they read the old state),
// then the state shifts left by Ln in place, in ascending order (each read is ahead
// of every write).
template <typename T>
__device__ void conv_update(const ConvUpdateParams& p) {
    const T* x = static_cast<const T*>(p.x);
    T* out = static_cast<T*>(p.out);
    const long long rows = (long long)p.batch * p.channels;
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < rows;
         row += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(row % p.channels);
        const int S = p.state_len, Ln = p.steps, W = p.width;
        float* st = p.state + row * S;
        const T* xr = x + row * Ln;
        const float* w = p.w + (long long)ch * W;
        for (int t = 0; t < Ln; ++t) {
            float acc = p.bias ? p.bias[ch] : 0.f;
            const int first = S + t + 1 - W;
            for (int kk = 0; kk < W; ++kk) {
                const int pos = first + kk;
                const float v = pos < S ? st[pos] : ldf(xr + pos - S);
                acc = fmaf(w[kk], v, acc);
            }
            if (p.silu) acc = silu_f(acc);
            out[row * Ln + t] = cvt<T>(acc);
        }
        for (int kk = 0; kk < S; ++kk) {
            const int pos = Ln + kk;
            st[kk] = pos < S ? st[pos] : ldf(xr + pos - S);
        }
    }
}

// A Mamba2Block's decode step, conv part: one thread per (batch, channel) computes the
// step's output from the state and the new input, then shifts the state left by one.
template <typename T>
__device__ void block_conv_step(const BlockConvStepParams& p) {
    const T* x = static_cast<const T*>(p.x);
    T* out = static_cast<T*>(p.out);
    const long long rows = (long long)p.batch * p.channels;
    const int S = p.width - 1;
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < rows;
         row += (long long)gridDim.x * blockDim.x) {
        const long long i = row / p.channels;
        const int ch = (int)(row % p.channels);
        float* st = p.state + row * S;
        const float* w = p.w + (long long)ch * p.width;
        const float xv = ldf(x + i * p.x_ld + ch);
        float acc = p.bias ? p.bias[ch] : 0.f;
        for (int kk = 0; kk < S; ++kk) acc = fmaf(w[kk], st[kk], acc);
        acc = fmaf(w[S], xv, acc);
        out[row] = cvt<T>(silu_f(acc));
        for (int kk = 0; kk + 1 < S; ++kk) st[kk] = st[kk + 1];
        st[S - 1] = xv;
    }
}

// A Mamba2Block's decode step, SSM part: one warp per state row (batch, head, p), lanes
// along N; A, dt, dt_bias and D are per head, so the decay is one exponential per row.
template <typename T>
__device__ void block_ssm_step(const BlockSsmStepParams& p) {
    const T* xbc = static_cast<const T*>(p.xbc);
    const T* dtp = static_cast<const T*>(p.dt);
    T* yp = static_cast<T*>(p.y);
    const int lane = threadIdx.x % 32;
    const int hp = p.nheads * p.headdim;
    const long long rows = (long long)p.batch * hp;
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (row >= rows) return;
    const long long i = row / hp;
    const int r = (int)(row % hp);
    const int j = r / p.headdim;
    const int k = j / (p.nheads / p.ngroups);
    const T* xr = xbc + i * p.xbc_ld;
    const float raw = ldf(dtp + i * p.dt_ld + j) + p.dt_bias[j];
    const float s = step_size(raw, p.softplus, p.has_limit, p.lo, p.hi);
    const float xv = ldf(xr + r);
    const float da = expf(s * p.A[j]);
    const float sx = s * xv;
    const T* b = xr + hp + (long long)k * p.dstate;
    const T* c = xr + hp + (long long)(p.ngroups + k) * p.dstate;
    float* st = p.state + row * p.dstate;
    float y = 0.f;
    for (int n = lane; n < p.dstate; n += 32) {
        const float v = fmaf(da, st[n], sx * ldf(b + n));
        st[n] = v;
        y = fmaf(v, ldf(c + n), y);
    }
    y = warp_sum(y);
    if (lane == 0) {
        if (p.D) y = fmaf(p.D[j], xv, y);
        yp[row] = cvt<T>(y);
    }
}

// A Mamba2Block's decode step, conv and SSM in one launch. Block (x, y, z) = rows
// [8 x, 8 x + 8) of head y of batch row z, one warp per row (lanes along N, as
// block_ssm_step). First the block's threads compute the conv outputs it needs into shared
// memory, rounded to the storage type as block_conv_step stores them: the group's B and C
// channels (2N, recomputed by every block of the group; their conv state is left for the
// gated norm to shift, since other blocks still read it) and its 8 x channels (whose conv
// state only this block reads: shifted here). Same arithmetic as block_conv_step followed
// by block_ssm_step, so the same bits.
#define BLOCK_STEP_ROWS 8
template <typename T>
__device__ void block_step_fused(const BlockStepParams& p) {
    MISC_DYN_SMEM(sv);  // [0, N): B, [N, 2N): C, [2N, 2N + 8): x
    const int N = p.dstate, S = p.width - 1;
    const int j = blockIdx.y, r0 = blockIdx.x * BLOCK_STEP_ROWS;
    const long long i = blockIdx.z;
    const int hp = p.nheads * p.headdim;
    const int k = j / (p.nheads / p.ngroups);
    const int cd = hp + 2 * p.ngroups * N;
    const T* xr = static_cast<const T*>(p.xin) + i * p.xin_ld;
    for (int t = threadIdx.x; t < 2 * N + BLOCK_STEP_ROWS; t += blockDim.x) {
        int ch;
        const bool own = t >= 2 * N;
        if (!own) {
            ch = hp + (t < N ? k * N + t : (p.ngroups + k) * N + (t - N));
        } else {
            const int pp = r0 + (t - 2 * N);
            if (pp >= p.headdim) continue;
            ch = j * p.headdim + pp;
        }
        float* st = p.conv_state + (i * cd + ch) * S;
        const float* w = p.conv_w + (long long)ch * p.width;
        const float xv = ldf(xr + ch);
        float acc = p.conv_b ? p.conv_b[ch] : 0.f;
        for (int kk = 0; kk < S; ++kk) acc = fmaf(w[kk], st[kk], acc);
        acc = fmaf(w[S], xv, acc);
        const T o = cvt<T>(silu_f(acc));
        sv[t] = ldf(&o);
        if (own) {
            for (int kk = 0; kk + 1 < S; ++kk) st[kk] = st[kk + 1];
            st[S - 1] = xv;
        }
    }
    __syncthreads();
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    const int pp = r0 + w;
    if (w >= BLOCK_STEP_ROWS || pp >= p.headdim) return;
    const long long row = i * hp + (long long)j * p.headdim + pp;
    const float raw = ldf(static_cast<const T*>(p.dt) + i * p.dt_ld + j) + p.dt_bias[j];
    const float s = step_size(raw, p.softplus, p.has_limit, p.lo, p.hi);
    const float xv = sv[2 * N + w];
    const float da = expf(s * p.A[j]);
    const float sx = s * xv;
    float* st = p.state + row * N;
    float y = 0.f;
    for (int n = lane; n < N; n += 32) {
        const float v = fmaf(da, st[n], sx * sv[n]);
        st[n] = v;
        y = fmaf(v, sv[N + n], y);
    }
    y = warp_sum(y);
    if (lane == 0) {
        if (p.D) y = fmaf(p.D[j], xv, y);
        static_cast<T*>(p.y)[row] = cvt<T>(y);
    }
}

// C (M, N) = A (M, K) . W (N, K)^T for few rows (M <= GEMM_FEW_M, a decode step's):
// one warp per output column n, lanes along K, the M sums in registers; each weight row
// is read once, A's rows (shared by every warp) come from the caches.
#define GEMM_FEW_M 16
template <typename T>
__device__ void gemm_few(const GemmParams& p) {
    const T* A = static_cast<const T*>(p.a);
    const T* Wt = static_cast<const T*>(p.w);
    T* Cm = static_cast<T*>(p.c);
    const int lane = threadIdx.x % 32;
    const long long n = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (n >= p.N) return;
    const T* w = Wt + n * (long long)p.K;
    float acc[GEMM_FEW_M];
#pragma unroll
    for (int r = 0; r < GEMM_FEW_M; ++r) acc[r] = 0.f;
    for (int k = lane; k < p.K; k += 32) {
        const float wv = ldf(w + k);
#pragma unroll
        for (int r = 0; r < GEMM_FEW_M; ++r)
            if (r < p.M) acc[r] = fmaf(ldf(A + r * p.lda + k), wv, acc[r]);
    }
#pragma unroll
    for (int r = 0; r < GEMM_FEW_M; ++r) {
        if (r < p.M) {
            float v = acc[r];
            v = warp_sum(v);
            if (lane == 0) {
                T* cp = Cm + r * p.ldc + n;
                *cp = cvt<T>(p.add ? v + ldf(cp) : v);
            }
        }
    }
}

// 16 bytes of storage-type values -> their dot product with another 16 bytes, added to acc.
template <typename T>
__device__ __forceinline__ float gv_dot(const uint4& a, const uint4& b, float acc) {
    if constexpr (sizeof(T) == 4) {
        acc = fmaf(__uint_as_float(a.x), __uint_as_float(b.x), acc);
        acc = fmaf(__uint_as_float(a.y), __uint_as_float(b.y), acc);
        acc = fmaf(__uint_as_float(a.z), __uint_as_float(b.z), acc);
        acc = fmaf(__uint_as_float(a.w), __uint_as_float(b.w), acc);
    } else {
        const unsigned av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            float2 x, y;
            if constexpr (std::is_same<T, bf16_t>::value) {
                x = make_float2(__uint_as_float(av[q] << 16), __uint_as_float(av[q] & 0xffff0000u));
                y = make_float2(__uint_as_float(bv[q] << 16), __uint_as_float(bv[q] & 0xffff0000u));
            } else {
                x = __half22float2(*reinterpret_cast<const __half2*>(&av[q]));
                y = __half22float2(*reinterpret_cast<const __half2*>(&bv[q]));
            }
            acc = fmaf(x.x, y.x, acc);
            acc = fmaf(x.y, y.y, acc);
        }
    }
    return acc;
}

// C (M, N) = A (M, K) . W (N, K)^T for up to MM rows (a decode step's; MM 1-4, 8, 16, rows
// past p.M skipped): one warp per output column, 16-byte loads of W and A along K, four of a lane's W loads issued
// before their FMAs (cuBLAS's f32 GEMV and cuBLASLt's bf16 kernels read a 768-wide block's
// weights at ~0.7-0.8 TB/s at one row). Needs K a multiple of 16 bytes of values, W, A and
// lda 16-byte aligned (the host checks).
template <typename T, int M>
__device__ void gemv_vec(const GemmParams& p) {
    const int m = p.M;
    constexpr int V = 16 / sizeof(T);
    const int lane = threadIdx.x % 32;
    const long long n = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (n >= p.N) return;
    const int kv = p.K / V;
    const uint4* w = reinterpret_cast<const uint4*>(static_cast<const T*>(p.w) + n * (long long)p.K);
    const uint4* a[M];
#pragma unroll
    for (int r = 0; r < M; ++r) a[r] = reinterpret_cast<const uint4*>(static_cast<const T*>(p.a) + (r < m ? r : 0) * p.lda);
    float acc[M];
#pragma unroll
    for (int r = 0; r < M; ++r) acc[r] = 0.f;
    int c = lane;
    for (; c + 96 < kv; c += 128) {
        uint4 wv[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) wv[u] = __ldg(w + c + 32 * u);
#pragma unroll
        for (int u = 0; u < 4; ++u)
#pragma unroll
            for (int r = 0; r < M; ++r)
                if (r < m) acc[r] = gv_dot<T>(wv[u], __ldg(a[r] + c + 32 * u), acc[r]);
    }
    for (; c < kv; c += 32) {
        const uint4 wv = __ldg(w + c);
#pragma unroll
        for (int r = 0; r < M; ++r)
            if (r < m) acc[r] = gv_dot<T>(wv, __ldg(a[r] + c), acc[r]);
    }
#pragma unroll
    for (int r = 0; r < M; ++r) {
        if (r >= m) break;
        const float v = warp_sum(acc[r]);
        if (lane == 0) {
            T* cp = static_cast<T*>(p.c) + r * p.ldc + n;
            *cp = cvt<T>(p.add ? v + ldf(cp) : v);
        }
    }
}

// C (M, N) = A (M, K) . W (N, K)^T with f32 accumulation: 64x64 tiles, 256 threads,
// 4x4 outputs each. The fallback when cuBLASLt is not there.
template <typename T>
__device__ void gemm_nt(const GemmParams& p) {
    __shared__ float As[16][64 + 4];
    __shared__ float Ws[16][64 + 4];
    const T* A = static_cast<const T*>(p.a);
    const T* Wt = static_cast<const T*>(p.w);
    T* Cm = static_cast<T*>(p.c);
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * 64, col0 = blockIdx.x * 64;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < p.K; k0 += 16) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int idx = tid + r * 256;
            const int rr = idx / 16, kk = idx % 16;
            const int gr = row0 + rr, gc = col0 + rr, gk = k0 + kk;
            As[kk][rr] = (gr < p.M && gk < p.K) ? ldf(A + (long long)gr * p.lda + gk) : 0.f;
            Ws[kk][rr] = (gc < p.N && gk < p.K) ? ldf(Wt + (long long)gc * p.K + gk) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int r = 0; r < 4; ++r) { a[r] = As[kk][ty * 4 + r]; b[r] = Ws[kk][tx * 4 + r]; }
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int s = 0; s < 4; ++s) acc[r][s] = fmaf(a[r], b[s], acc[r][s]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const int gr = row0 + ty * 4 + r, gc = col0 + tx * 4 + s;
            if (gr < p.M && gc < p.N) {
                T* cp = Cm + (long long)gr * p.ldc + gc;
                *cp = cvt<T>(p.add ? acc[r][s] + ldf(cp) : acc[r][s]);
            }
        }
}

// The sum of v over the block (blockDim.x a multiple of 32, at most 1024), in every thread;
// `red` 32 floats of shared memory.
__device__ __forceinline__ float norm_block_sum(float v, float* red) {
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float t = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.f;
        t = warp_sum(t);
        if (threadIdx.x == 0) red[0] = t;
    }
    __syncthreads();
    return red[0];
}

// SPEC 6 step 5: gated RMS norm per (token, group). One block per pair.
template <typename T>
__device__ void gated_rmsnorm(const NormParams& p) {
    __shared__ float red[32];
    const T* y = static_cast<const T*>(p.y);
    const T* z = static_cast<const T*>(p.z);
    T* out = static_cast<T*>(p.out);
    const long long m = blockIdx.x;
    const int gi = blockIdx.y;
    const int gs = p.group;
    const T* yr = y + m * p.d_inner + (long long)gi * gs;
    const T* zr = z + m * p.z_ld + (long long)gi * gs;
    float ss = 0.f;
    for (int e = threadIdx.x; e < gs; e += blockDim.x) {
        float v = ldf(yr + e);
        if (!p.norm_before_gate) v *= silu_f(ldf(zr + e));
        ss = fmaf(v, v, ss);
    }
    const float rstd = 1.f / sqrtf(norm_block_sum(ss, red) / gs + p.eps);
    if (p.shift_state && gi == 0) {
        // The fused decode step's B / C conv-state shift for token m (every block of the
        // step kernel has read the old state by now: this kernel runs after it).
        const int S = p.shift_width - 1;
        const T* xr = static_cast<const T*>(p.shift_x) + m * p.shift_x_ld;
        for (int ch = p.shift_lo + threadIdx.x; ch < p.shift_hi; ch += blockDim.x) {
            float* st = p.shift_state + (m * p.shift_cd + ch) * S;
            for (int kk = 0; kk + 1 < S; ++kk) st[kk] = st[kk + 1];
            st[S - 1] = ldf(xr + ch);
        }
    }
    T* orow = out + m * p.d_inner + (long long)gi * gs;
    for (int e = threadIdx.x; e < gs; e += blockDim.x) {
        const float zv = ldf(zr + e);
        float v = ldf(yr + e);
        if (!p.norm_before_gate) v *= silu_f(zv);
        float o = v * rstd * p.weight[gi * gs + e];
        if (p.norm_before_gate) o *= silu_f(zv);
        orow[e] = cvt<T>(o);
    }
}

// The same norm with a row's values kept in registers between the sum and the output, two
// columns per access: thread t takes the group's column pairs t + k blockDim (k < NP). The
// host takes it where the group is even and at most 2 NP blockDim wide, every row start of
// y, z and out is aligned to two elements, and no conv-state shift is asked (decode steps
// keep the kernel above). The same operations per element as `gated_rmsnorm` (the sum of
// squares in another order).
template <typename T, int NP>
__device__ void gated_rmsnorm_pairs(const NormParams& p) {
    __shared__ float red[32];
    const long long m = blockIdx.x;
    const int gi = blockIdx.y;
    const int gs = p.group, np = gs / 2;
    const T* yr = static_cast<const T*>(p.y) + m * p.d_inner + (long long)gi * gs;
    const T* zr = static_cast<const T*>(p.z) + m * p.z_ld + (long long)gi * gs;
    float v[NP][2], gt[NP][2];
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
        const int e = threadIdx.x + k * blockDim.x;
        if (e < np) {
            const VecN<T, 2> yy = *reinterpret_cast<const VecN<T, 2>*>(yr + 2 * e);
            const VecN<T, 2> zz = *reinterpret_cast<const VecN<T, 2>*>(zr + 2 * e);
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const float sz = silu_f(ldf(&zz.v[j]));
                float x = ldf(&yy.v[j]);
                if (!p.norm_before_gate) x *= sz;
                v[k][j] = x;
                gt[k][j] = p.norm_before_gate ? sz : 1.f;
                ss = fmaf(x, x, ss);
            }
        }
    }
    const float rstd = 1.f / sqrtf(norm_block_sum(ss, red) / gs + p.eps);
    T* orow = static_cast<T*>(p.out) + m * p.d_inner + (long long)gi * gs;
    const float* wr = p.weight + (long long)gi * gs;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
        const int e = threadIdx.x + k * blockDim.x;
        if (e < np) {
            VecN<T, 2> o;
#pragma unroll
            for (int j = 0; j < 2; ++j) o.v[j] = cvt<T>(v[k][j] * rstd * wr[2 * e + j] * gt[k][j]);
            *reinterpret_cast<VecN<T, 2>*>(orow + 2 * e) = o;
        }
    }
}

template <typename T>
__device__ void axpy(const AxpyParams& p) {
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        y[i] = cvt<T>(fmaf(p.alpha, ldf(x + i), ldf(y + i)));
    }
}

// AdamW over f32 tensors (the plugin's `adamw` entry): mamba-model's `AdamW::step` in
// the same order, every operation rounded on its own (no contraction into FMAs), so the
// device's update equals the host's bit for bit. bc1 / bc2: 1 - beta^t, from the host.
struct AdamWParams {
    float* param;
    const float* grad;
    float* m;
    float* v;
    long long n;
    float lr, beta1, beta2, eps, weight_decay, bc1, bc2, grad_scale;
};

// f32 products on the f16 tensor cores (gemm.rs `Gemm::run_split`). Each operand is scaled
// by one power of two (its largest |x| lands in [2^14, 2^15)) and split into f16 hi =
// f16(x s) and lo = f16(x s - hi) (11 + 11 significant bits); the f16 product of
// [A hi | A hi | A lo] (M, 3 kp) and [B hi | B lo | B hi] (N, 3 kp) sums A_hi B_hi + A_hi B_lo +
// A_lo B_hi in f32 (the term dropped, A_lo B_lo, is 2^-22 of A_hi B_hi), scaled back by
// alpha = 1 / (s_a s_b). Tiles of 32 rows x 32 columns; the lanes run along whichever of
// rows or columns is dense in memory.
#define SPLIT_T 32
// Bits of the largest |x| of each operand into p.amax[op] (non-negative floats order as
// their bits; NaN's bits exceed +inf's). The operand as outer x inner with the inner
// dimension the dense one: blocks stride over outer indices, threads over inner ones, by
// 16-byte loads where the rows allow.
__device__ __forceinline__ unsigned split_abs_bits(float v) { return __float_as_uint(fabsf(v)); }
// V2 (`split_max_f32_v2`, `MAMBA_CUDA_SPLIT_V2=1`; `split_max_f32` the first form): four
// rows of a block's stride in flight per thread in the 16-byte form (the narrow rows of the
// LM-width block, 768 or 1536 floats, gave each thread one load at a time).
template <bool V2>
__device__ __forceinline__ void split_max_body(const SplitParams& p) {
    const SplitOp& o = p.op[blockIdx.y];
    const int tid = threadIdx.x;
    const bool kin = o.sk == 1 || o.sr != 1;  // k is the inner dimension
    const int ni = kin ? o.k : o.rows, no = kin ? o.rows : o.k;
    const long long si = kin ? o.sk : o.sr, so = kin ? o.sr : o.sk;
    const bool v4 = si == 1 && ni % 4 == 0 && so % 4 == 0 && (reinterpret_cast<size_t>(o.x) & 15) == 0;
    unsigned m = 0;
    if (V2 && v4) {
        const int G = gridDim.x;
        for (int a = blockIdx.x; a < no; a += 4 * G) {
            const float* row = o.x + a * so;
            for (int q = 4 * tid; q < ni; q += 4 * 256) {
                float4 v[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    v[j] = a + j * G < no ? *reinterpret_cast<const float4*>(row + j * G * so + q) : make_float4(0.f, 0.f, 0.f, 0.f);
                }
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    m = max(m, max(max(split_abs_bits(v[j].x), split_abs_bits(v[j].y)), max(split_abs_bits(v[j].z), split_abs_bits(v[j].w))));
                }
            }
        }
    } else {
        for (int a = blockIdx.x; a < no; a += gridDim.x) {
            const float* row = o.x + a * so;
            if (v4) {
                for (int q = 4 * tid; q < ni; q += 4 * 256) {
                    const float4 v = *reinterpret_cast<const float4*>(row + q);
                    m = max(m, max(max(split_abs_bits(v.x), split_abs_bits(v.y)), max(split_abs_bits(v.z), split_abs_bits(v.w))));
                }
            } else {
                for (int q = tid; q < ni; q += 256) m = max(m, split_abs_bits(row[q * si]));
            }
        }
    }
#pragma unroll
    for (int x = 16; x > 0; x >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, x));
    if ((tid & 31) == 0 && m != 0) atomicMax(p.amax + blockIdx.y, m);
}
extern "C" __global__ void __launch_bounds__(256) split_max_f32(const __grid_constant__ SplitParams p) { split_max_body<false>(p); }
extern "C" __global__ void __launch_bounds__(256) split_max_f32_v2(const __grid_constant__ SplitParams p) { split_max_body<true>(p); }
// The exponent shift of an operand: 15 - e with |x|max = f 2^e, f in [0.5, 1); 0 where the
// operand is all zero or not finite (its non-finite values then reach the product as they are).
__device__ __forceinline__ int split_shift(unsigned m) {
    if (m == 0 || m >= 0x7f800000u) return 0;
    int e;
    frexpf(__uint_as_float(m), &e);
    return 15 - e;
}
// Two values times 2^sh as f16 hi = f16(v) and lo = f16(v - hi) pairs (the first value in
// the low half of each).
__device__ __forceinline__ void split_pair(float v0, float v1, int sh, __half2& hi, __half2& lo) {
    const float vs0 = ldexpf(v0, sh), vs1 = ldexpf(v1, sh);
    const __half h0 = __float2half_rn(vs0), h1 = __float2half_rn(vs1);
    hi = __halves2half2(h0, h1);
    lo = __halves2half2(__float2half_rn(vs0 - __half2float(h0)), __float2half_rn(vs1 - __half2float(h1)));
}
// Writes the split operands (a block per tile of 32 rows x 64 columns, p.start[nops] blocks:
// operand z's tiles from p.start[z], row-major; columns k .. kp - 1 zero) and, from block 0,
// alpha and beta. The first form (and V2 where k is not dense): a tile of 32 rows x 64 columns goes
// through shared memory: read with the lanes along the dense dimension, written as pairs of
// columns (4-byte stores, 128 bytes per warp and store).
// V2 (`split_f32_v2`, `MAMBA_CUDA_SPLIT_V2=1`; `split_f32` the first form): where k is dense
// in memory, no shared-memory tile: thread t takes columns 4 (t % 16) .. + 3 of rows t / 16
// and t / 16 + 16 (one 16-byte load each where the row allows, both issued first) and writes
// each third as one 8-byte store (a warp: two rows x 128 bytes per store).
template <bool V2>
__device__ __forceinline__ void split_body(const SplitParams& p) {
    __shared__ float tile[SPLIT_T][2 * SPLIT_T + 1];
    int z = 0;
    while (z + 1 < p.nops && (int)blockIdx.x >= p.start[z + 1]) ++z;
    const SplitOp& o = p.op[z];
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int sh = split_shift(p.amax[z]);
    const int tiles_x = (o.kp + 2 * SPLIT_T - 1) / (2 * SPLIT_T), local = blockIdx.x - p.start[z];
    if (blockIdx.x == 0 && tid == 0) {
        const int s0 = split_shift(p.amax[0]);
        p.scale[0] = ldexpf(1.f, -(s0 + split_shift(p.amax[1])));
        p.scale[1] = p.add ? 1.f : 0.f;
        if (p.nops > 2) {
            // The second product, op[0] . op[2].
            p.scale[2] = ldexpf(1.f, -(s0 + split_shift(p.amax[2])));
            p.scale[3] = p.add ? 1.f : 0.f;
        }
    }
    const int r0 = (local / tiles_x) * SPLIT_T, k0 = (local % tiles_x) * 2 * SPLIT_T;
    if (r0 >= o.rows || k0 >= o.kp) return;
    const bool kdense = o.sk == 1 || o.sr != 1;
    __half* out = static_cast<__half*>(o.out);
    const long long ld = 3LL * o.kp;
    if (V2 && kdense) {
        const int cg = tid & 15, q = k0 + 4 * cg;
        // kp is a multiple of 8: q .. q + 3 are all inside or all outside it.
        if (q >= o.kp) return;
        const bool v4 = o.sk == 1 && o.sr % 4 == 0 && (reinterpret_cast<size_t>(o.x) & 15) == 0;
        float v[2][4];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int r = r0 + (tid >> 4) + 16 * e;
#pragma unroll
            for (int j = 0; j < 4; ++j) v[e][j] = 0.f;
            if (r < o.rows) {
                const float* x = o.x + r * o.sr;
                if (v4 && q + 3 < o.k) {
                    const float4 f = *reinterpret_cast<const float4*>(x + q);
                    v[e][0] = f.x;
                    v[e][1] = f.y;
                    v[e][2] = f.z;
                    v[e][3] = f.w;
                } else {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        if (q + j < o.k) v[e][j] = x[(q + j) * o.sk];
                    }
                }
            }
        }
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int r = r0 + (tid >> 4) + 16 * e;
            if (r >= o.rows) continue;
            unsigned hw[2], lw[2];
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                __half2 hi, lo;
                split_pair(v[e][2 * j], v[e][2 * j + 1], sh, hi, lo);
                hw[j] = *reinterpret_cast<const unsigned*>(&hi);
                lw[j] = *reinterpret_cast<const unsigned*>(&lo);
            }
            const uint2 hi = make_uint2(hw[0], hw[1]), lo = make_uint2(lw[0], lw[1]);
            __half* row = out + r * ld + q;
            *reinterpret_cast<uint2*>(row) = hi;
            *reinterpret_cast<uint2*>(row + o.kp) = o.role == 0 ? hi : lo;
            *reinterpret_cast<uint2*>(row + 2 * o.kp) = o.role == 0 ? lo : hi;
        }
        return;
    }
    if (kdense) {
        // Lane: columns 2 lane, 2 lane + 1 (one 8-byte load where the row allows).
        const bool v2 = o.sk == 1 && o.sr % 2 == 0 && (reinterpret_cast<size_t>(o.x) & 7) == 0;
#pragma unroll
        for (int e = 0; e < SPLIT_T / 8; ++e) {
            const int a = w + 8 * e, r = r0 + a, q = k0 + 2 * lane;
            float v0 = 0.f, v1 = 0.f;
            if (r < o.rows) {
                const float* x = o.x + r * o.sr;
                if (v2 && q + 1 < o.k) {
                    const float2 v = *reinterpret_cast<const float2*>(x + q);
                    v0 = v.x;
                    v1 = v.y;
                } else {
                    if (q < o.k) v0 = x[q * o.sk];
                    if (q + 1 < o.k) v1 = x[(q + 1) * o.sk];
                }
            }
            tile[a][2 * lane] = v0;
            tile[a][2 * lane + 1] = v1;
        }
    } else {
        // Lane: row r0 + lane; warp w: columns w + 8 e.
#pragma unroll
        for (int e = 0; e < 2 * SPLIT_T / 8; ++e) {
            const int a = w + 8 * e, r = r0 + lane, q = k0 + a;
            tile[lane][a] = r < o.rows && q < o.k ? o.x[r * o.sr + q * o.sk] : 0.f;
        }
    }
    __syncthreads();
    const int q = k0 + 2 * lane;  // kp is a multiple of 8: q and q + 1 are both inside or both outside
    if (q >= o.kp) return;
#pragma unroll
    for (int e = 0; e < SPLIT_T / 8; ++e) {
        const int a = w + 8 * e, r = r0 + a;
        if (r >= o.rows) continue;
        __half2 hi, lo;
        split_pair(tile[a][2 * lane], tile[a][2 * lane + 1], sh, hi, lo);
        __half2* row = reinterpret_cast<__half2*>(out + r * ld + q);
        row[0] = hi;
        row[o.kp / 2] = o.role == 0 ? hi : lo;
        row[o.kp] = o.role == 0 ? lo : hi;
    }
}
extern "C" __global__ void __launch_bounds__(256) split_f32(const __grid_constant__ SplitParams p) { split_body<false>(p); }
extern "C" __global__ void __launch_bounds__(256) split_f32_v2(const __grid_constant__ SplitParams p) { split_body<true>(p); }

extern "C" __global__ void adamw_f32(const __grid_constant__ AdamWParams p) {
    const float decay = __fsub_rn(1.0f, __fmul_rn(p.lr, p.weight_decay));
    const float omb1 = __fsub_rn(1.0f, p.beta1);
    const float omb2 = __fsub_rn(1.0f, p.beta2);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        // grad_scale 1 (no clipping) leaves the gradient as it is.
        const float g = __fmul_rn(p.grad[i], p.grad_scale);
        float w = __fmul_rn(p.param[i], decay);
        const float m = __fadd_rn(__fmul_rn(p.beta1, p.m[i]), __fmul_rn(omb1, g));
        const float v = __fadd_rn(__fmul_rn(p.beta2, p.v[i]), __fmul_rn(__fmul_rn(omb2, g), g));
        const float mh = __fdiv_rn(m, p.bc1);
        const float vh = __fdiv_rn(v, p.bc2);
        w = __fsub_rn(w, __fdiv_rn(__fmul_rn(p.lr, mh), __fadd_rn(__fsqrt_rn(vh), p.eps)));
        p.m[i] = m;
        p.v[i] = v;
        p.param[i] = w;
    }
}

// The sum of squares of n f32, accumulated in f64 into *out (`sum_squares`: gradient norms).
struct SumSqParams {
    const float* x;
    double* out;
    long long n;
};

extern "C" __global__ void __launch_bounds__(256) sumsq_f32(const __grid_constant__ SumSqParams p) {
    __shared__ double part[8];
    double acc = 0.0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        const double v = p.x[i];
        acc = fma(v, v, acc);
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < (int)(blockDim.x >> 5); ++w) t += part[w];
        atomicAdd(p.out, t);
    }
}

// A block's weight image from f32 master weights on the device (`block_set_weights_device`):
// one segment per weight (blockIdx.y), each a copy (mode 0), a conversion to the storage
// type (1), a rounding through the storage type kept as f32 (2), or A = -exp(A_log) (3).
struct ImageSeg {
    const float* src;
    void* dst;
    long long n;
    int mode;
    int pad0;
};

#define IMAGE_SEGS 10
struct ImageParams {
    ImageSeg seg[IMAGE_SEGS];
};

template <typename T>
__device__ void set_image(const ImageParams& p) {
    const ImageSeg& s = p.seg[blockIdx.y];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < s.n; i += stride) {
        const float x = s.src[i];
        switch (s.mode) {
        case 1: static_cast<T*>(s.dst)[i] = cvt<T>(x); break;
        case 2: {
            const T t = cvt<T>(x);
            static_cast<float*>(s.dst)[i] = ldf(&t);
            break;
        }
        case 3: static_cast<float*>(s.dst)[i] = -expf(x); break;
        default: static_cast<float*>(s.dst)[i] = x; break;
        }
    }
}

#define MISC_INST(T, NAME)                                                                                            \
    extern "C" __global__ void axpy_##NAME(const __grid_constant__ AxpyParams p) { axpy<T>(p); }                      \
    extern "C" __global__ void set_image_##NAME(const __grid_constant__ ImageParams p) { set_image<T>(p); }           \
    extern "C" __global__ void conv1d_fwd_##NAME(const __grid_constant__ ConvParams p) { conv1d_fwd<T>(p); }          \
    extern "C" __global__ void state_update_##NAME(const __grid_constant__ StateUpdateParams p) { state_update<T>(p); } \
    extern "C" __global__ void conv_update_##NAME(const __grid_constant__ ConvUpdateParams p) { conv_update<T>(p); }  \
    extern "C" __global__ void block_conv_step_##NAME(const __grid_constant__ BlockConvStepParams p) { block_conv_step<T>(p); } \
    extern "C" __global__ void block_ssm_step_##NAME(const __grid_constant__ BlockSsmStepParams p) { block_ssm_step<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256) block_step_fused_##NAME(const __grid_constant__ BlockStepParams p) { block_step_fused<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemm_nt_##NAME(const __grid_constant__ GemmParams p) { gemm_nt<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemm_few_##NAME(const __grid_constant__ GemmParams p) { gemm_few<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_m1(const __grid_constant__ GemmParams p) { gemv_vec<T, 1>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_m2(const __grid_constant__ GemmParams p) { gemv_vec<T, 2>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_m3(const __grid_constant__ GemmParams p) { gemv_vec<T, 3>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_m4(const __grid_constant__ GemmParams p) { gemv_vec<T, 4>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_m8(const __grid_constant__ GemmParams p) { gemv_vec<T, 8>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NAME##_m16(const __grid_constant__ GemmParams p) { gemv_vec<T, 16>(p); } \
    extern "C" __global__ void gated_rmsnorm_##NAME(const __grid_constant__ NormParams p) { gated_rmsnorm<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256) gated_rmsnorm_pairs_##NAME(const __grid_constant__ NormParams p) { \
        gated_rmsnorm_pairs<T, GATED_NORM_PAIRS>(p);                                                                      \
    }

MISC_INST(float, f32)
MISC_INST(bf16_t, bf16)
MISC_INST(f16_t, f16)

// The tiled conv1d forward (conv.cuh): `conv1d_fwdt_{cl,cf,cls}_{type}_w{2,3,4}`.
#define CONVT_FWD_INST(T, NAME, W)                                                                                    \
    extern "C" __global__ void __launch_bounds__(CONVT_NT) conv1d_fwdt_cl_##NAME##_w##W(const __grid_constant__ ConvParams p) { \
        conv1d_fwd_cl<T, W>(p);                                                                                        \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(CONVT_NT) conv1d_fwdt_cf_##NAME##_w##W(const __grid_constant__ ConvParams p) { \
        conv1d_fwd_cf<T, W>(p);                                                                                        \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(CONVT_NT, CONVS_BPS) conv1d_fwdt_cls_##NAME##_w##W(const __grid_constant__ ConvParams p) { \
        conv1d_fwd_cls<T, W>(p);                                                                                       \
    }
#define CONVT_FWD_ALL(T, NAME) CONVT_FWD_INST(T, NAME, 2) CONVT_FWD_INST(T, NAME, 3) CONVT_FWD_INST(T, NAME, 4)
CONVT_FWD_ALL(float, f32)
CONVT_FWD_ALL(bf16_t, bf16)
CONVT_FWD_ALL(f16_t, f16)
