// Accuracy probe for f32 products on the f16 tensor cores (seventeenth session): each f32
// operand split into two f16 values after a power-of-2 scale per row of A and per column
// of B (hi = f16(v s), lo = f16(v s - hi)), d = A_hi B_lo + A_lo B_hi + A_hi B_hi on
// mma.sync m16n8k16 with f32 accumulation, then d / (s_a s_b). Compared against f64 and
// against 3xTF32 (the present f32 path) on the same data. One warp per 16 x 8 tile.
//   nvcc -O3 -arch=sm_90 split_f16_probe.cu -o split_f16_probe && ./split_f16_probe
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cuda_fp16.h>
#include <random>
#include <vector>

__device__ __forceinline__ unsigned pack_h2(__half a, __half b) {
    return (unsigned)__half_as_ushort(a) | ((unsigned)__half_as_ushort(b) << 16);
}
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
__device__ __forceinline__ void split_h(float v, float s, __half& hi, __half& lo) {
    const float x = v * s;
    hi = __float2half_rn(x);
    lo = __float2half_rn(x - __half2float(hi));
}
__device__ __forceinline__ void split_t(float v, unsigned& hi, unsigned& lo) {
    hi = __float_as_uint(v) & 0xffffe000u;
    lo = __float_as_uint(v - __uint_as_float(hi));
}

// A (M x K) row-major, B (K x N) row-major, sa[M], sb[N] power-of-2 scales.
__global__ void f16x3(const float* A, const float* B, const float* sa, const float* sb, float* D, int M, int N, int K) {
    const int lane = threadIdx.x & 31, g = lane >> 2, c4 = lane & 3;
    const int tm = blockIdx.x * 16, tn = blockIdx.y * 8;
    const float s0 = sa[tm + g], s1 = sa[tm + g + 8], sbn = sb[tn + g];
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    for (int k0 = 0; k0 < K; k0 += 16) {
        unsigned ah[4], al[4], bh[2], bl[2];
        for (int r = 0; r < 4; ++r) {
            const int row = tm + g + 8 * (r & 1), col = k0 + 2 * c4 + 8 * (r >> 1);
            const float s = (r & 1) ? s1 : s0;
            __half h0, l0, h1, l1;
            split_h(A[(size_t)row * K + col], s, h0, l0);
            split_h(A[(size_t)row * K + col + 1], s, h1, l1);
            ah[r] = pack_h2(h0, h1);
            al[r] = pack_h2(l0, l1);
        }
        for (int r = 0; r < 2; ++r) {
            const int k = k0 + 2 * c4 + 8 * r, col = tn + g;
            __half h0, l0, h1, l1;
            split_h(B[(size_t)k * N + col], sbn, h0, l0);
            split_h(B[(size_t)(k + 1) * N + col], sbn, h1, l1);
            bh[r] = pack_h2(h0, h1);
            bl[r] = pack_h2(l0, l1);
        }
        mma_f16(d, ah, bl);
        mma_f16(d, al, bh);
        mma_f16(d, ah, bh);
    }
    const int r0 = tm + g, cc = tn + 2 * c4;
    const float sb0 = sb[cc], sb1 = sb[cc + 1];
    D[(size_t)r0 * N + cc] = d[0] / (s0 * sb0);
    D[(size_t)r0 * N + cc + 1] = d[1] / (s0 * sb1);
    D[(size_t)(r0 + 8) * N + cc] = d[2] / (s1 * sb0);
    D[(size_t)(r0 + 8) * N + cc + 1] = d[3] / (s1 * sb1);
}

__global__ void tf32x3(const float* A, const float* B, float* D, int M, int N, int K) {
    const int lane = threadIdx.x & 31, g = lane >> 2, c4 = lane & 3;
    const int tm = blockIdx.x * 16, tn = blockIdx.y * 8;
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    for (int k0 = 0; k0 < K; k0 += 8) {
        unsigned ah[4], al[4], bh[2], bl[2];
        for (int r = 0; r < 4; ++r) {
            const int row = tm + g + 8 * (r & 1), col = k0 + c4 + 4 * (r >> 1);
            split_t(A[(size_t)row * K + col], ah[r], al[r]);
        }
        for (int r = 0; r < 2; ++r) split_t(B[(size_t)(k0 + c4 + 4 * r) * N + tn + g], bh[r], bl[r]);
        mma_tf32(d, al, bh);
        mma_tf32(d, ah, bl);
        mma_tf32(d, ah, bh);
    }
    const int r0 = tm + g, cc = tn + 2 * c4;
    D[(size_t)r0 * N + cc] = d[0];
    D[(size_t)r0 * N + cc + 1] = d[1];
    D[(size_t)(r0 + 8) * N + cc] = d[2];
    D[(size_t)(r0 + 8) * N + cc + 1] = d[3];
}

// 2^(14 - e), e the exponent of the largest |v| (so that the scaled largest lies in
// [2^14, 2^15), under the f16 maximum 65504).
static float scale_of(float mx) {
    if (mx == 0.f) return 1.f;
    int e;
    std::frexp(mx, &e);  // mx = f 2^e, f in [0.5, 1)
    return std::ldexp(1.f, 15 - e);
}

int main() {
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::uniform_real_distribution<float> ud(0.f, 1.f);
    const int M = 512, N = 256;
    const char* names[4] = {"normal", "rows x 1e+-3", "log-uniform 1e-6..1e2", "decayed columns"};
    for (int K : {128, 2048}) {
        for (int kind = 0; kind < 4; ++kind) {
            std::vector<float> A((size_t)M * K), B((size_t)K * N);
            for (int m = 0; m < M; ++m) {
                const float rs = kind == 1 ? std::pow(10.f, 6.f * ud(rng) - 3.f) : 1.f;
                for (int k = 0; k < K; ++k) {
                    float v = nd(rng) * rs;
                    if (kind == 2) v = (nd(rng) < 0 ? -1.f : 1.f) * std::pow(10.f, 8.f * ud(rng) - 6.f);
                    A[(size_t)m * K + k] = v;
                }
            }
            for (int k = 0; k < K; ++k)
                for (int n = 0; n < N; ++n) {
                    float v = nd(rng);
                    if (kind == 2) v = (nd(rng) < 0 ? -1.f : 1.f) * std::pow(10.f, 8.f * ud(rng) - 6.f);
                    if (kind == 3) v *= std::exp(-0.05f * k);  // a state-like decay along k
                    B[(size_t)k * N + n] = v;
                }
            std::vector<float> sa(M), sb(N);
            for (int m = 0; m < M; ++m) {
                float mx = 0.f;
                for (int k = 0; k < K; ++k) mx = std::fmax(mx, std::fabs(A[(size_t)m * K + k]));
                sa[m] = scale_of(mx);
            }
            for (int n = 0; n < N; ++n) {
                float mx = 0.f;
                for (int k = 0; k < K; ++k) mx = std::fmax(mx, std::fabs(B[(size_t)k * N + n]));
                sb[n] = scale_of(mx);
            }
            float *dA, *dB, *dsa, *dsb, *dD1, *dD2;
            cudaMalloc(&dA, A.size() * 4);
            cudaMalloc(&dB, B.size() * 4);
            cudaMalloc(&dsa, M * 4);
            cudaMalloc(&dsb, N * 4);
            cudaMalloc(&dD1, (size_t)M * N * 4);
            cudaMalloc(&dD2, (size_t)M * N * 4);
            cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dsa, sa.data(), M * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dsb, sb.data(), N * 4, cudaMemcpyHostToDevice);
            f16x3<<<dim3(M / 16, N / 8), 32>>>(dA, dB, dsa, dsb, dD1, M, N, K);
            tf32x3<<<dim3(M / 16, N / 8), 32>>>(dA, dB, dD2, M, N, K);
            std::vector<float> D1((size_t)M * N), D2((size_t)M * N);
            cudaMemcpy(D1.data(), dD1, D1.size() * 4, cudaMemcpyDeviceToHost);
            cudaMemcpy(D2.data(), dD2, D2.size() * 4, cudaMemcpyDeviceToHost);
            double n1 = 0, n2 = 0, den = 0, w1 = 0, w2 = 0;
            for (int m = 0; m < M; ++m)
                for (int n = 0; n < N; ++n) {
                    double r = 0, ra = 0;
                    for (int k = 0; k < K; ++k) {
                        const double t = (double)A[(size_t)m * K + k] * B[(size_t)k * N + n];
                        r += t;
                        ra += std::fabs(t);
                    }
                    const double e1 = D1[(size_t)m * N + n] - r, e2 = D2[(size_t)m * N + n] - r;
                    n1 += e1 * e1;
                    n2 += e2 * e2;
                    den += r * r;
                    if (ra > 0) {
                        w1 = std::fmax(w1, std::fabs(e1) / ra);
                        w2 = std::fmax(w2, std::fabs(e2) / ra);
                    }
                }
            std::printf("K %4d %-22s rel-L2: f16x3 %.2e  tf32x3 %.2e   worst |err| / sum|terms|: f16x3 %.2e  tf32x3 %.2e\n", K,
                        names[kind], std::sqrt(n1 / den), std::sqrt(n2 / den), w1, w2);
            cudaFree(dA);
            cudaFree(dB);
            cudaFree(dsa);
            cudaFree(dsb);
            cudaFree(dD1);
            cudaFree(dD2);
        }
    }
    std::printf("%s\n", cudaGetErrorString(cudaGetLastError()));
    return 0;
}
