// Speed of the f32 outputs kernel's C S^T block product in the two f32-on-tensor-core forms
// (seventeenth session): one 256-thread block computes D (128 x 64) = A (128 x 128) S^T
// (S: 64 x 128), warp w rows 16 w .. + 15, R times over tiles staged once in shared memory.
// T: 3xTF32 as `l32_out` does it (f32 tiles, each warp splits its fragments: hi = v & ~0x1fff,
// lo = v - hi; 3 mma m16n8k8 per k8). H: the operands split once into f16 hi / lo tiles
// (after a power-of-2 scale), fragments by ldmatrix, 3 mma m16n8k16 per k16. Prints the
// useful TFLOP/s of each and the two results' max difference (both against the same data).
//   nvcc -O3 -arch=sm_90 split_f16_speed.cu -o split_f16_speed && ./split_f16_speed
#include <cstdio>
#include <cuda_fp16.h>
#include <random>
#include <vector>

constexpr int M = 128, K = 128, P = 64, LDF = K + 4, LDH = K + 8, R = 64;

__device__ __forceinline__ void mma_f16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void ldm4(unsigned (&r)[4], const void* p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void split_t(float v, unsigned& hi, unsigned& lo) {
    hi = __float_as_uint(v) & 0xffffe000u;
    lo = __float_as_uint(v - __uint_as_float(hi));
}

// T: A and S as f32 in shared memory (row strides LDF), the l32_out k permutation (lane c4
// holds k = 4 c4 .. 4 c4 + 3 of each k16 step).
__global__ void __launch_bounds__(256, 2) prod_t(const float* gA, const float* gS, float* out) {
    extern __shared__ __align__(16) float sm[];
    float* sA = sm;
    float* sS = sA + M * LDF;
    for (int e = threadIdx.x; e < M * K; e += 256) sA[(e / K) * LDF + e % K] = gA[e];
    for (int e = threadIdx.x; e < P * K; e += 256) sS[(e / K) * LDF + e % K] = gS[e];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c4 = lane & 3;
    float y[8][4] = {};
    const float* a0p = sA + (16 * warp + g) * LDF + 4 * c4;
    const float* a1p = a0p + 8 * LDF;
    const float* sb = sS + g * LDF + 4 * c4;
    for (int r = 0; r < R; ++r) {
#pragma unroll 2
        for (int kk = 0; kk < K; kk += 16) {
            const float4 ca = *reinterpret_cast<const float4*>(a0p + kk), cb = *reinterpret_cast<const float4*>(a1p + kk);
            unsigned ah0[4], al0[4], ah1[4], al1[4];
            split_t(ca.x, ah0[0], al0[0]); split_t(cb.x, ah0[1], al0[1]); split_t(ca.y, ah0[2], al0[2]); split_t(cb.y, ah0[3], al0[3]);
            split_t(ca.z, ah1[0], al1[0]); split_t(cb.z, ah1[1], al1[1]); split_t(ca.w, ah1[2], al1[2]); split_t(cb.w, ah1[3], al1[3]);
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                const float4 sv = *reinterpret_cast<const float4*>(sb + 8 * t * LDF + kk);
                unsigned bh0[2], bl0[2], bh1[2], bl1[2];
                split_t(sv.x, bh0[0], bl0[0]); split_t(sv.y, bh0[1], bl0[1]);
                split_t(sv.z, bh1[0], bl1[0]); split_t(sv.w, bh1[1], bl1[1]);
                mma_tf32(y[t], al0, bh0); mma_tf32(y[t], ah0, bl0); mma_tf32(y[t], ah0, bh0);
                mma_tf32(y[t], al1, bh1); mma_tf32(y[t], ah1, bl1); mma_tf32(y[t], ah1, bh1);
            }
        }
    }
    // D[row][col]: tile t col 8 t + g'... (the permuted B columns: tile t, lane g -> S row 8 t + g)
    for (int t = 0; t < 8; ++t) {
        const int row = 16 * warp + g, col = 8 * t + 2 * c4;
        float* o = out + (size_t)blockIdx.x * M * P;
        o[row * P + col] = y[t][0]; o[row * P + col + 1] = y[t][1];
        o[(row + 8) * P + col] = y[t][2]; o[(row + 8) * P + col + 1] = y[t][3];
    }
}

// H: hi / lo f16 tiles (A scaled per row, S per row p), row strides LDH halves.
__global__ void __launch_bounds__(256, 2) prod_h(const __half* gAh, const __half* gAl, const __half* gSh, const __half* gSl,
                                                 const float* sa, const float* ss, float* out) {
    extern __shared__ __align__(16) __half hm[];
    __half* Ah = hm;
    __half* Al = Ah + M * LDH;
    __half* Sh = Al + M * LDH;
    __half* Sl = Sh + P * LDH;
    for (int e = threadIdx.x; e < M * K; e += 256) {
        Ah[(e / K) * LDH + e % K] = gAh[e];
        Al[(e / K) * LDH + e % K] = gAl[e];
    }
    for (int e = threadIdx.x; e < P * K; e += 256) {
        Sh[(e / K) * LDH + e % K] = gSh[e];
        Sl[(e / K) * LDH + e % K] = gSl[e];
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c4 = lane & 3;
    const int r8 = lane & 7, mi = lane >> 3;
    float y[8][4] = {};
    // A x4: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
    const int aoff = (16 * warp + r8 + 8 * (mi & 1)) * LDH + 8 * (mi >> 1);
    // S x4 for tiles (t, t + 1): (p 8 t + r8, k 0-7), (8 t + r8, k 8-15), (8 (t + 1) + r8, k 0-7), (.., k 8-15).
    const int soff = (8 * (mi >> 1) + r8) * LDH + 8 * (mi & 1);
    for (int r = 0; r < R; ++r) {
#pragma unroll 2
        for (int kk = 0; kk < K; kk += 16) {
            unsigned ah[4], al[4];
            ldm4(ah, Ah + aoff + kk);
            ldm4(al, Al + aoff + kk);
#pragma unroll
            for (int t = 0; t < 8; t += 2) {
                unsigned bh[4], bl[4];
                ldm4(bh, Sh + soff + 8 * t * LDH + kk);
                ldm4(bl, Sl + soff + 8 * t * LDH + kk);
                const unsigned bh0[2] = {bh[0], bh[1]}, bh1[2] = {bh[2], bh[3]};
                const unsigned bl0[2] = {bl[0], bl[1]}, bl1[2] = {bl[2], bl[3]};
                mma_f16(y[t], ah, bl0); mma_f16(y[t], al, bh0); mma_f16(y[t], ah, bh0);
                mma_f16(y[t + 1], ah, bl1); mma_f16(y[t + 1], al, bh1); mma_f16(y[t + 1], ah, bh1);
            }
        }
    }
    for (int t = 0; t < 8; ++t) {
        const int row = 16 * warp + g, col = 8 * t + 2 * c4;
        float* o = out + (size_t)blockIdx.x * M * P;
        const float s0 = sa[row], s1 = sa[row + 8], p0 = ss[col], p1 = ss[col + 1];
        o[row * P + col] = y[t][0] / (s0 * p0); o[row * P + col + 1] = y[t][1] / (s0 * p1);
        o[(row + 8) * P + col] = y[t][2] / (s1 * p0); o[(row + 8) * P + col + 1] = y[t][3] / (s1 * p1);
    }
}

static float scale_of(float mx) {
    if (mx == 0.f) return 1.f;
    int e;
    std::frexp(mx, &e);
    return std::ldexp(1.f, 15 - e);
}

int main() {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> A(M * K), S(P * K);
    for (auto& v : A) v = nd(rng);
    for (auto& v : S) v = nd(rng) * 0.01f;
    std::vector<float> sa(M), ss(P);
    std::vector<__half> Ah(M * K), Al(M * K), Sh(P * K), Sl(P * K);
    // Rows of K values: a power-of-2 scale per row, then the f16 hi / lo halves.
    auto split_rows = [](const std::vector<float>& v, int rows, std::vector<float>& sc, std::vector<__half>& hi,
                         std::vector<__half>& lo) {
        for (int r = 0; r < rows; ++r) {
            float mx = 0.f;
            for (int k = 0; k < K; ++k) mx = std::fmax(mx, std::fabs(v[r * K + k]));
            sc[r] = scale_of(mx);
            for (int k = 0; k < K; ++k) {
                const float x = v[r * K + k] * sc[r];
                hi[r * K + k] = __float2half_rn(x);
                lo[r * K + k] = __float2half_rn(x - __half2float(hi[r * K + k]));
            }
        }
    };
    split_rows(A, M, sa, Ah, Al);
    split_rows(S, P, ss, Sh, Sl);
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const int blocks = sms * 2 * 8;
    float *dA, *dS, *dsa, *dss, *o1, *o2;
    __half *dAh, *dAl, *dSh, *dSl;
    cudaMalloc(&dA, A.size() * 4); cudaMalloc(&dS, S.size() * 4);
    cudaMalloc(&dsa, M * 4); cudaMalloc(&dss, P * 4);
    cudaMalloc(&dAh, A.size() * 2); cudaMalloc(&dAl, A.size() * 2); cudaMalloc(&dSh, S.size() * 2); cudaMalloc(&dSl, S.size() * 2);
    cudaMalloc(&o1, (size_t)blocks * M * P * 4); cudaMalloc(&o2, (size_t)blocks * M * P * 4);
    cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dS, S.data(), S.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dsa, sa.data(), M * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dss, ss.data(), P * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dAh, Ah.data(), A.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dAl, Al.data(), A.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dSh, Sh.data(), S.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dSl, Sl.data(), S.size() * 2, cudaMemcpyHostToDevice);
    const int smt = (M + P) * LDF * 4, smh = 2 * (M + P) * LDH * 2;
    cudaFuncSetAttribute(prod_t, cudaFuncAttributeMaxDynamicSharedMemorySize, smt);
    cudaFuncSetAttribute(prod_h, cudaFuncAttributeMaxDynamicSharedMemorySize, smh);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    const double flops = 2.0 * M * K * P * R * blocks;
    for (int rep = 0; rep < 3; ++rep) {
        float mt = 0.f, mh = 0.f;
        cudaEventRecord(e0);
        prod_t<<<blocks, 256, smt>>>(dA, dS, o1);
        cudaEventRecord(e1); cudaEventSynchronize(e1); cudaEventElapsedTime(&mt, e0, e1);
        cudaEventRecord(e0);
        prod_h<<<blocks, 256, smh>>>(dAh, dAl, dSh, dSl, dsa, dss, o2);
        cudaEventRecord(e1); cudaEventSynchronize(e1); cudaEventElapsedTime(&mh, e0, e1);
        std::printf("3xTF32 (split per warp) %.3f ms %.1f TFLOP/s | f16 split tiles + ldmatrix %.3f ms %.1f TFLOP/s | ratio %.2f\n",
                    mt, flops / (mt * 1e-3) / 1e12, mh, flops / (mh * 1e-3) / 1e12, mt / mh);
    }
    // Check: both against f64 (block 0; R sums of the same product).
    std::vector<float> r1(M * P), r2(M * P);
    cudaMemcpy(r1.data(), o1, M * P * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(r2.data(), o2, M * P * 4, cudaMemcpyDeviceToHost);
    double n1 = 0, n2 = 0, den = 0;
    for (int m = 0; m < M; ++m)
        for (int p = 0; p < P; ++p) {
            double ref = 0;
            for (int k = 0; k < K; ++k) ref += (double)A[m * K + k] * S[p * K + k];
            ref *= R;
            n1 += (r1[m * P + p] - ref) * (r1[m * P + p] - ref);
            n2 += (r2[m * P + p] - ref) * (r2[m * P + p] - ref);
            den += ref * ref;
        }
    std::printf("rel-L2 against f64: 3xTF32 %.2e, f16 split %.2e\n%s\n", std::sqrt(n1 / den), std::sqrt(n2 / den),
                cudaGetErrorString(cudaGetLastError()));
    return 0;
}
