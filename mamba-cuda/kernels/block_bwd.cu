// The Mamba2Block's backward on the device (src/gpu/block_bwd.rs): a strided GEMM for
// the projections' backward (any of NN / TN through element strides, split along K
// into f32 partials when the output has too few tiles), the sum of those partials,
// a column-block copy with type conversion (the splits and joins of the in_proj
// output and the conv output), the gated RMS norm's backward, a column sum (the norm
// weight's gradient) and an element-wise product (dA_log = dA * A).
#include "common.cuh"
#include "tf32x3.cuh"

// C (M, N) = sum_k A(i, k) B(k, j), A(i, k) = a[i a_si + k a_sk], B(k, j) =
// b[k b_sk + j b_sj], f32 accumulation; block z sums k in [z kps, (z + 1) kps) and
// writes c + z * split_stride.
struct BbGemmParams {
    const void* a;
    const void* b;
    float* c;
    long long a_si, a_sk, b_sk, b_sj;
    long long ldc, split_stride;
    int m, n, k, kps;
};

// dst[r dld + c] = src[r sld + c] for r < rows, c < cols, converted. vec 4: a thread
// moves 4 columns of a row in one load and one store (the host sets it where both row
// starts are aligned to 4 elements: the pointers and both strides), else 1.
struct BbCopyParams {
    const void* src;
    void* dst;
    long long sld, dld;
    long long rows, cols;
    int vec, pad0;
};

// Up to BB_COPIES copies of one type pair in one launch (blockIdx.z picks the copy).
#define BB_COPIES 8
struct BbCopyNParams {
    BbCopyParams c[BB_COPIES];
    int n;
    int pad0;
};

// out[i] = sum_s parts[s stride + i] for i < count, converted to the output type.
struct BbSumParams {
    const float* parts;
    void* out;
    long long count, stride;
    int splits, pad0;
};

// The norm backward's dynamic shared memory (the host emulator gives its own buffer).
#ifndef BB_DYN_SMEM
#define BB_DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif

// The gated RMS norm's backward per (row, group): dy (m, d_inner) dense, dz at
// dz + r dz_ld (f32, or the storage type for the `_dz16` entries), dwrow (m, d_inner) the
// norm weight's gradient per row (per block of `rpb` rows where rpb > 1: ceil(m / rpb) rows).
struct BbNormBwdParams {
    const void* y;
    const void* z;
    const float* weight;
    const float* dn;
    void* dy;
    void* dz;
    float* dwrow;
    long long z_ld, dz_ld;
    int m, d_inner, group, norm_before_gate;
    float eps;
    // Rows per block: > 1 sums the weight's gradient over the block's rows in shared
    // memory (`group` floats of dynamic shared memory) and writes one row of partial sums
    // per block to dwrow (row blockIdx.x); 1 writes every row's terms.
    int rpb;
};

// dst[c] = sum_r src[r ld + c].
struct BbColsumParams {
    const float* src;
    float* dst;
    long long ld;
    int rows, cols;
};

// out[i] = a[i] * b[i].
struct BbMulParams {
    const float* a;
    const float* b;
    float* out;
    int n, pad0;
};

// `bb_norm_bwd_pairs`' column pairs per thread (block_bwd.rs's `BB_NORM_PAIRS`): at 256
// threads a group of up to 2048 columns.
#define BB_NORM_PAIRS 4

#define BB_TM 64
#define BB_TN 64
#define BB_TK 16

// Stages the K step [k0, k0 + BB_TK) of A's and B's 64-row / 64-column tiles into As[k][i]
// and Bs[k][j] (f32, rows of LD floats), zeros outside the matrices and past kz1; 256 threads,
// four elements each, the loads along whichever index has the unit stride.
template <typename TA, typename TB, int LD>
__device__ __forceinline__ void bb_stage(const BbGemmParams& p, const TA* A, const TB* B, float (*As)[LD],
                                         float (*Bs)[LD], long long i0, long long j0, int k0, int kz1) {
    const int tid = threadIdx.x;
    const bool a_kfast = p.a_sk == 1;
    const bool b_jfast = p.b_sj == 1;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        const int e = tid + 256 * q;
        int ii, kk;
        if (a_kfast) {
            kk = e % BB_TK;
            ii = e / BB_TK;
        } else {
            ii = e % BB_TM;
            kk = e / BB_TM;
        }
        const long long gi = i0 + ii;
        const int gk = k0 + kk;
        As[kk][ii] = (gi < p.m && gk < kz1) ? ldf(A + gi * p.a_si + (long long)gk * p.a_sk) : 0.f;
        int jj;
        if (b_jfast) {
            jj = e % BB_TN;
            kk = e / BB_TN;
        } else {
            kk = e % BB_TK;
            jj = e / BB_TK;
        }
        const long long gj = j0 + jj;
        const int gk2 = k0 + kk;
        Bs[kk][jj] = (gj < p.n && gk2 < kz1) ? ldf(B + (long long)gk2 * p.b_sk + gj * p.b_sj) : 0.f;
    }
}

template <typename TA, typename TB>
__device__ void bb_gemm(const BbGemmParams& p) {
    __shared__ float As[BB_TK][BB_TM + 4];
    __shared__ float Bs[BB_TK][BB_TN + 4];
    const TA* A = static_cast<const TA*>(p.a);
    const TB* B = static_cast<const TB*>(p.b);
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const long long i0 = (long long)blockIdx.y * BB_TM, j0 = (long long)blockIdx.x * BB_TN;
    const int kz0 = blockIdx.z * p.kps;
    const int kz1 = min(p.k, kz0 + p.kps);
    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.f;
    for (int k0 = kz0; k0 < kz1; k0 += BB_TK) {
        bb_stage(p, A, B, As, Bs, i0, j0, k0, kz1);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BB_TK; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int r = 0; r < 4; ++r) av[r] = As[kk][ty + 16 * r];
#pragma unroll
            for (int c = 0; c < 4; ++c) bv[c] = Bs[kk][tx + 16 * c];
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
        }
        __syncthreads();
    }
    float* C = p.c + (long long)blockIdx.z * p.split_stride;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const long long gi = i0 + ty + 16 * r;
        if (gi >= p.m) continue;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const long long gj = j0 + tx + 16 * c;
            if (gj < p.n) C[gi * p.ldc + gj] = acc[r][c];
        }
    }
}

// bb_gemm's tiles on the tensor cores in 3xTF32 (tf32x3.cuh: f32 accuracy, ~1e-6 relative):
// the same 64 x 64 output tile per block and the same staging (K in steps of 16, rows
// padded to 72 floats so that a fragment's 32 reads fall on 32 banks); warp w owns rows
// 16 (w % 4) .. + 15 and columns 32 (w / 4) .. + 31 (four m16n8k8 tiles).
#define BBT_LD (BB_TM + 8)
template <typename TA, typename TB>
__device__ void bb_gemm_tc(const BbGemmParams& p) {
    __shared__ float As[BB_TK][BBT_LD];
    __shared__ float Bs[BB_TK][BBT_LD];
    const TA* A = static_cast<const TA*>(p.a);
    const TB* B = static_cast<const TB*>(p.b);
    const int tid = threadIdx.x;
    const int lane = tid % 32, warp = tid / 32;
    const int g = lane >> 2, t = lane & 3;
    const int wm = 16 * (warp % 4), wn = 32 * (warp / 4);
    const long long i0 = (long long)blockIdx.y * BB_TM, j0 = (long long)blockIdx.x * BB_TN;
    const int kz0 = blockIdx.z * p.kps;
    const int kz1 = min(p.k, kz0 + p.kps);
    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.f;
    for (int k0 = kz0; k0 < kz1; k0 += BB_TK) {
        bb_stage(p, A, B, As, Bs, i0, j0, k0, kz1);
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < BB_TK; ks += 8) {
            Tf32x3A a;
            tf32x3_a(a, As[ks + t][wm + g], As[ks + t][wm + g + 8], As[ks + t + 4][wm + g],
                     As[ks + t + 4][wm + g + 8]);
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
                Tf32x3B b;
                tf32x3_b(b, Bs[ks + t][wn + 8 * nt + g], Bs[ks + t + 4][wn + 8 * nt + g]);
                mma_tf32x3(acc[nt], a, b);
            }
        }
        __syncthreads();
    }
    float* C = p.c + (long long)blockIdx.z * p.split_stride;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const long long gi = i0 + wm + g + 8 * (e >> 1);
            const long long gj = j0 + wn + 8 * nt + 2 * t + (e & 1);
            if (gi < p.m && gj < p.n) C[gi * p.ldc + gj] = acc[nt][e];
        }
}

template <typename TO>
__device__ void bb_sum(const BbSumParams& p) {
    TO* out = static_cast<TO*>(p.out);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.count;
         i += (long long)gridDim.x * blockDim.x) {
        float s = 0.f;
        for (int z = 0; z < p.splits; ++z) s += p.parts[z * p.stride + i];
        out[i] = cvt<TO>(s);
    }
}

// Grid (ceil(cols / (V blockDim.x)), rows' blocks): threads along the columns, V columns
// each, blocks y walking the rows (no division per element; it was a 64-bit one), four
// rows' loads issued before their stores (the pointers `__restrict__`: one launch's copies
// never overlap). With V > 1 a thread whose columns run past `cols` takes them one by one.
template <typename TS, typename TD, int V>
__device__ void bb_copy_v(const BbCopyParams& p) {
    const TS* __restrict__ src = static_cast<const TS*>(p.src);
    TD* __restrict__ dst = static_cast<TD*>(p.dst);
    const long long c = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c >= p.cols) return;
    const bool full = c + V <= p.cols;
    const long long step = gridDim.y;
    for (long long r0 = blockIdx.y; r0 < p.rows; r0 += 4 * step) {
        float v[4][V];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const long long r = r0 + i * step;
            const TS* sr = src + r * p.sld + c;
            if (r < p.rows && full) {
                const VecN<TS, V> x = *reinterpret_cast<const VecN<TS, V>*>(sr);
#pragma unroll
                for (int j = 0; j < V; ++j) v[i][j] = ldf(&x.v[j]);
            } else {
#pragma unroll
                for (int j = 0; j < V; ++j) v[i][j] = r < p.rows && c + j < p.cols ? ldf(sr + j) : 0.f;
            }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const long long r = r0 + i * step;
            if (r >= p.rows) continue;
            TD* dr = dst + r * p.dld + c;
            if (full) {
                VecN<TD, V> x;
#pragma unroll
                for (int j = 0; j < V; ++j) x.v[j] = cvt<TD>(v[i][j]);
                *reinterpret_cast<VecN<TD, V>*>(dr) = x;
            } else {
#pragma unroll
                for (int j = 0; j < V; ++j)
                    if (c + j < p.cols) dr[j] = cvt<TD>(v[i][j]);
            }
        }
    }
}

template <typename TS, typename TD>
__device__ void bb_copy(const BbCopyParams& p) {
    if (p.vec == 4)
        bb_copy_v<TS, TD, 4>(p);
    else
        bb_copy_v<TS, TD, 1>(p);
}

// The copies of `p` in one launch: grid (ceil(widest cols / (vec blockDim.x)), rows' blocks, n);
// a copy narrower than the grid leaves its extra blocks idle.
template <typename TS, typename TD>
__device__ void bb_copyn(const BbCopyNParams& p) {
    if ((int)blockIdx.z < p.n) bb_copy<TS, TD>(p.c[blockIdx.z]);
}

__device__ __forceinline__ float bb_sigmoid(float v) { return 1.f / (1.f + expf(-v)); }

// Sums two values over the block (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ float2 bb_block_sum2(float a, float b, float2* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
    }
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = make_float2(a, b);
    __syncthreads();
    if (threadIdx.x < 32) {
        float2 v = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : make_float2(0.f, 0.f);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            v.x += __shfl_xor_sync(0xffffffffu, v.x, o);
            v.y += __shfl_xor_sync(0xffffffffu, v.y, o);
        }
        if (threadIdx.x == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

// The rows [r0, r1) of block blockIdx.x (p.rpb rows per block where it is > 1, else one);
// returns the rows per block.
__device__ __forceinline__ int bb_norm_rows(const BbNormBwdParams& p, long long& r0, long long& r1) {
    const int rpb = p.rpb > 1 ? p.rpb : 1;
    r0 = (long long)blockIdx.x * rpb;
    r1 = min(r0 + rpb, (long long)p.m);
    return rpb;
}

// One block per (`rpb` rows, group). v = y (norm before gate) or y silu(z); out = v rstd w
// (times silu(z) when the gate follows). With g = dout w gate: dv = rstd g - v rstd^3
// <g, v> / gs. The weight's gradient terms dn gate normed go to dwrow per row (rpb 1) or
// summed over the block's rows (each thread owns its columns of the shared sums).
template <typename T, typename TZ = float>
__device__ void bb_norm_bwd(const BbNormBwdParams& p) {
    __shared__ float2 red[33];
    BB_DYN_SMEM(dwacc);
    const T* y = static_cast<const T*>(p.y);
    const T* z = static_cast<const T*>(p.z);
    T* dy = static_cast<T*>(p.dy);
    const int gi = blockIdx.y;
    const int gs = p.group;
    const long long off = (long long)gi * gs;
    const float* wr = p.weight + off;
    long long r0, r1;
    const int rpb = bb_norm_rows(p, r0, r1);
    if (rpb > 1)
        for (int e = threadIdx.x; e < gs; e += blockDim.x) dwacc[e] = 0.f;
    for (long long r = r0; r < r1; ++r) {
        const T* yr = y + r * p.d_inner + off;
        const T* zr = z + r * p.z_ld + off;
        const float* dnr = p.dn + r * p.d_inner + off;
        float ss = 0.f, dot = 0.f;
        for (int e = threadIdx.x; e < gs; e += blockDim.x) {
            const float zv = ldf(zr + e);
            const float sg = zv * bb_sigmoid(zv);
            float v = ldf(yr + e);
            if (!p.norm_before_gate) v *= sg;
            const float gv = dnr[e] * wr[e] * (p.norm_before_gate ? sg : 1.f);
            ss = fmaf(v, v, ss);
            dot = fmaf(gv, v, dot);
        }
        const float2 s = bb_block_sum2(ss, dot, red);
        const float rstd = 1.f / sqrtf(s.x / gs + p.eps);
        const float coef = rstd * rstd * rstd * s.y / gs;
        T* dyr = dy + r * p.d_inner + off;
        TZ* dzr = static_cast<TZ*>(p.dz) + r * p.dz_ld + off;
        float* dwr = p.dwrow + r * p.d_inner + off;
        for (int e = threadIdx.x; e < gs; e += blockDim.x) {
            const float zv = ldf(zr + e);
            const float sig = bb_sigmoid(zv);
            const float sg = zv * sig;
            const float dsg = sig * (1.f + zv * (1.f - sig));
            const float yv = ldf(yr + e);
            const float v = p.norm_before_gate ? yv : yv * sg;
            const float dn = dnr[e];
            const float w = wr[e];
            const float gate = p.norm_before_gate ? sg : 1.f;
            const float gv = dn * w * gate;
            const float normed = v * rstd;
            if (rpb > 1)
                dwacc[e] += dn * gate * normed;
            else
                dwr[e] = dn * gate * normed;
            const float dv = rstd * gv - v * coef;
            if (p.norm_before_gate) {
                dyr[e] = cvt<T>(dv);
                dzr[e] = cvt<TZ>(dn * normed * w * dsg);
            } else {
                dyr[e] = cvt<T>(dv * sg);
                dzr[e] = cvt<TZ>(dv * yv * dsg);
            }
        }
    }
    if (rpb > 1) {
        float* dwb = p.dwrow + (long long)blockIdx.x * p.d_inner + off;
        for (int e = threadIdx.x; e < gs; e += blockDim.x) dwb[e] = dwacc[e];
    }
}

// The same backward with a row's values kept in registers between the block sums and the
// outputs, two columns per access: thread t takes the group's column pairs t + k blockDim
// (k < NP). The host takes it where the group is even and at most 2 NP blockDim wide and
// every row start of y, z, dn, dy and dz is aligned to two elements. The same operations per
// element as `bb_norm_bwd` (the block sums in another order). PF (`_pairspf`, sixty-fourth
// session): the next row's y, z and dn are loaded before this row's block sums, so that their
// latency overlaps the sums and the outputs (the block's rows otherwise wait on each row's loads
// in turn).
template <typename T, typename TZ, int NP, bool PF = false>
__device__ void bb_norm_bwd_pairs(const BbNormBwdParams& p) {
    __shared__ float2 red[33];
    BB_DYN_SMEM(dwacc);
    const int gi = blockIdx.y;
    const int gs = p.group, np = gs / 2;
    const long long off = (long long)gi * gs;
    const float* wr = p.weight + off;
    long long r0, r1;
    const int rpb = bb_norm_rows(p, r0, r1);
    // Each thread's own column pairs of the block sums (zeroed, added to and written by it).
    if (rpb > 1)
#pragma unroll
        for (int k = 0; k < NP; ++k) {
            const int e = threadIdx.x + k * blockDim.x;
            if (e < np) dwacc[2 * e] = dwacc[2 * e + 1] = 0.f;
        }
    // Row r's y, z, dn pairs (as loaded: converted where they are used).
    using V2 = VecN<T, 2>;
    using F2 = VecN<float, 2>;
    V2 ny[NP] = {}, nz[NP] = {};
    F2 nd[NP] = {};
    auto fetch = [&](long long r) {
        const T* yr = static_cast<const T*>(p.y) + r * p.d_inner + off;
        const T* zr = static_cast<const T*>(p.z) + r * p.z_ld + off;
        const float* dnr = p.dn + r * p.d_inner + off;
#pragma unroll
        for (int k = 0; k < NP; ++k) {
            const int e = threadIdx.x + k * blockDim.x;
            if (e < np) {
                ny[k] = *reinterpret_cast<const V2*>(yr + 2 * e);
                nz[k] = *reinterpret_cast<const V2*>(zr + 2 * e);
                nd[k] = *reinterpret_cast<const F2*>(dnr + 2 * e);
            }
        }
    };
    if (PF && r0 < r1) fetch(r0);
    for (long long r = r0; r < r1; ++r) {
        if (!PF) fetch(r);
        float zv[NP][2], yv[NP][2], dnv[NP][2];
#pragma unroll
        for (int k = 0; k < NP; ++k)
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                zv[k][j] = ldf(&nz[k].v[j]);
                yv[k][j] = ldf(&ny[k].v[j]);
                dnv[k][j] = nd[k].v[j];
            }
        if (PF && r + 1 < r1) fetch(r + 1);
        float ss = 0.f, dot = 0.f;
#pragma unroll
        for (int k = 0; k < NP; ++k) {
            const int e = threadIdx.x + k * blockDim.x;
            if (e < np) {
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    const float sg = zv[k][j] * bb_sigmoid(zv[k][j]);
                    float v = yv[k][j];
                    if (!p.norm_before_gate) v *= sg;
                    const float gv = dnv[k][j] * wr[2 * e + j] * (p.norm_before_gate ? sg : 1.f);
                    ss = fmaf(v, v, ss);
                    dot = fmaf(gv, v, dot);
                }
            }
        }
        const float2 s = bb_block_sum2(ss, dot, red);
        const float rstd = 1.f / sqrtf(s.x / gs + p.eps);
        const float coef = rstd * rstd * rstd * s.y / gs;
        T* dyr = static_cast<T*>(p.dy) + r * p.d_inner + off;
        TZ* dzr = static_cast<TZ*>(p.dz) + r * p.dz_ld + off;
        float* dwr = p.dwrow + r * p.d_inner + off;
#pragma unroll
        for (int k = 0; k < NP; ++k) {
            const int e = threadIdx.x + k * blockDim.x;
            if (e < np) {
                VecN<T, 2> dyo;
                VecN<TZ, 2> dzo;
                VecN<float, 2> dwo;
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    const float z = zv[k][j];
                    const float sig = bb_sigmoid(z);
                    const float sg = z * sig;
                    const float dsg = sig * (1.f + z * (1.f - sig));
                    const float v = p.norm_before_gate ? yv[k][j] : yv[k][j] * sg;
                    const float dn = dnv[k][j];
                    const float w = wr[2 * e + j];
                    const float gate = p.norm_before_gate ? sg : 1.f;
                    const float gv = dn * w * gate;
                    const float normed = v * rstd;
                    dwo.v[j] = dn * gate * normed;
                    const float dv = rstd * gv - v * coef;
                    if (p.norm_before_gate) {
                        dyo.v[j] = cvt<T>(dv);
                        dzo.v[j] = cvt<TZ>(dn * normed * w * dsg);
                    } else {
                        dyo.v[j] = cvt<T>(dv * sg);
                        dzo.v[j] = cvt<TZ>(dv * yv[k][j] * dsg);
                    }
                }
                *reinterpret_cast<VecN<T, 2>*>(dyr + 2 * e) = dyo;
                *reinterpret_cast<VecN<TZ, 2>*>(dzr + 2 * e) = dzo;
                if (rpb > 1) {
                    dwacc[2 * e] += dwo.v[0];
                    dwacc[2 * e + 1] += dwo.v[1];
                } else {
                    *reinterpret_cast<VecN<float, 2>*>(dwr + 2 * e) = dwo;
                }
            }
        }
    }
    if (rpb > 1) {
        float* dwb = p.dwrow + (long long)blockIdx.x * p.d_inner + off;
#pragma unroll
        for (int k = 0; k < NP; ++k) {
            const int e = threadIdx.x + k * blockDim.x;
            if (e < np) {
                VecN<float, 2> o;
                o.v[0] = dwacc[2 * e];
                o.v[1] = dwacc[2 * e + 1];
                *reinterpret_cast<VecN<float, 2>*>(dwb + 2 * e) = o;
            }
        }
    }
}

// Column sums: blocks of 32 columns, 8 row lanes each summing every 8th row.
// 1024 threads per block of 32 columns (32 row lanes, four sums each: the grid is only
// cols / 32 blocks, so each block keeps many loads in flight).
__device__ void bb_colsum(const BbColsumParams& p) {
    __shared__ float red[32][33];
    const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
    const int c = blockIdx.x * 32 + tx;
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    if (c < p.cols) {
        int r = ty;
        for (; r + 96 < p.rows; r += 128) {
#pragma unroll
            for (int q = 0; q < 4; ++q) s[q] += p.src[(long long)(r + 32 * q) * p.ld + c];
        }
        for (; r < p.rows; r += 32) s[0] += p.src[(long long)r * p.ld + c];
    }
    red[ty][tx] = (s[0] + s[1]) + (s[2] + s[3]);
    __syncthreads();
    if (ty == 0 && c < p.cols) {
        float t = 0.f;
#pragma unroll
        for (int q = 0; q < 32; ++q) t += red[q][tx];
        p.dst[c] = t;
    }
}

__device__ void bb_mul(const BbMulParams& p) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += gridDim.x * blockDim.x)
        p.out[i] = p.a[i] * p.b[i];
}

extern "C" __global__ void __launch_bounds__(1024) bb_colsum_f32(const __grid_constant__ BbColsumParams p) {
    bb_colsum(p);
}
extern "C" __global__ void bb_mul_f32(const __grid_constant__ BbMulParams p) { bb_mul(p); }

#define BB_GEMM(TA, TB, NA, NB)                                                                          \
    extern "C" __global__ void __launch_bounds__(256) bb_gemm_##NA##_##NB(const __grid_constant__ BbGemmParams p) { \
        bb_gemm<TA, TB>(p);                                                                              \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(256) bb_gemmt_##NA##_##NB(const __grid_constant__ BbGemmParams p) { \
        bb_gemm_tc<TA, TB>(p);                                                                           \
    }
#define BB_TYPE(T, NAME)                                                                                  \
    BB_GEMM(T, T, NAME, NAME)                                                                            \
    extern "C" __global__ void bb_sum_##NAME(const __grid_constant__ BbSumParams p) { bb_sum<T>(p); }     \
    extern "C" __global__ void bb_copyn_##NAME##_##NAME(const __grid_constant__ BbCopyNParams p) {       \
        bb_copyn<T, T>(p);                                                                               \
    }                                                                                                    \
    extern "C" __global__ void bb_norm_bwd_##NAME(const __grid_constant__ BbNormBwdParams p) { bb_norm_bwd<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256) bb_norm_bwd_pairs_##NAME(const __grid_constant__ BbNormBwdParams p) { \
        bb_norm_bwd_pairs<T, float, BB_NORM_PAIRS>(p);                                                                  \
    }                                                                                                                   \
    extern "C" __global__ void __launch_bounds__(256, 4) bb_norm_bwd_pairspf_##NAME(const __grid_constant__ BbNormBwdParams p) { \
        bb_norm_bwd_pairs<T, float, BB_NORM_PAIRS, true>(p);                                                              \
    }
#define BB_MIXED(T, NAME)                                                                                 \
    BB_GEMM(float, T, f32, NAME)                                                                         \
    extern "C" __global__ void bb_copyn_##NAME##_f32(const __grid_constant__ BbCopyNParams p) { bb_copyn<T, float>(p); } \
    extern "C" __global__ void bb_copyn_f32_##NAME(const __grid_constant__ BbCopyNParams p) { bb_copyn<float, T>(p); } \
    extern "C" __global__ void bb_norm_bwd_##NAME##_dz16(const __grid_constant__ BbNormBwdParams p) {          \
        bb_norm_bwd<T, T>(p);                                                                                   \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256) bb_norm_bwd_pairs_##NAME##_dz16(const __grid_constant__ BbNormBwdParams p) { \
        bb_norm_bwd_pairs<T, T, BB_NORM_PAIRS>(p);                                                              \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256, 4) bb_norm_bwd_pairspf_##NAME##_dz16(const __grid_constant__ BbNormBwdParams p) { \
        bb_norm_bwd_pairs<T, T, BB_NORM_PAIRS, true>(p);                                                        \
    }

BB_TYPE(float, f32)
#ifndef MAMBA_EMU
BB_TYPE(bf16_t, bf16)
BB_TYPE(f16_t, f16)
BB_MIXED(bf16_t, bf16)
BB_MIXED(f16_t, f16)
#endif
