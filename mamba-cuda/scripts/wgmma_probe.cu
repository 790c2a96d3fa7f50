// Which shared-memory descriptor reads a B operand stored N-major (row k of 128 bytes = 64
// consecutive n, 128-byte swizzle, panels of 64 n) for wgmma m64n128k16 bf16 with A from
// registers (ldmatrix.trans of x stored [k][m], as the LM states kernel stages it).
// nvcc -arch=sm_90a -O2 wgmma_probe.cu -o wgmma_probe && ./wgmma_probe
#include <cuda_bf16.h>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cmath>
#include <vector>

#define WG_D64(X) \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) \
    X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28) X(29) X(30) X(31) X(32) X(33) X(34) X(35) X(36) X(37) \
    X(38) X(39) X(40) X(41) X(42) X(43) X(44) X(45) X(46) X(47) X(48) X(49) X(50) X(51) X(52) X(53) X(54) X(55) \
    X(56) X(57) X(58) X(59) X(60) X(61) X(62) X(63)

template <int TB>
__device__ __forceinline__ void wg_mma(float (&d)[64], const unsigned (&a)[4], uint64_t db) {
#define WG_OUT(i) "+f"(d[i]),
    asm volatile(
        "{\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"
        "%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,"
        "%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, 1, 1, 1, %69;\n"
        "}\n"
        : WG_D64(WG_OUT) "+r"(a[0])
        : "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(TB));
#undef WG_OUT
}

__device__ __forceinline__ void ldm_t(unsigned (&r)[4], const void* addr) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(addr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

__device__ __forceinline__ uint64_t desc_of(const void* p, unsigned lbo, unsigned sbo) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
    return (uint64_t)((s & 0x3ffff) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           (1ull << 62);
}

constexpr int K = 128, M = 64, NN = 128, ldX = M + 8;

template <int TB>
__global__ void probe(const __nv_bfloat16* x, const __nv_bfloat16* b, float* out, unsigned lbo, unsigned sbo) {
    extern __shared__ __align__(1024) unsigned char sm[];
    __nv_bfloat16* bs = reinterpret_cast<__nv_bfloat16*>(sm);              // 32 KB, 1024-aligned
    __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(sm + 32768);      // [K][ldX]
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    for (int v = tid; v < K * NN / 8; v += 128) {
        const int k = v / (NN / 8), n8 = v % (NN / 8), pn = n8 / 8, ch = n8 % 8;
        const uint4 w = *reinterpret_cast<const uint4*>(b + k * NN + n8 * 8);
        *reinterpret_cast<uint4*>(sm + pn * 16384 + k * 128 + ((ch ^ (k & 7)) * 16)) = w;
    }
    for (int v = tid; v < K * M / 8; v += 128) {
        const int k = v / (M / 8), m8 = v % (M / 8);
        *reinterpret_cast<uint4*>(xs + k * ldX + m8 * 8) = *reinterpret_cast<const uint4*>(x + k * M + m8 * 8);
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    float d[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) d[i] = 0.f;
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < K; kk += 16) {
        const int r = lane & 7, mi = lane >> 3;
        unsigned a[4];
        ldm_t(a, xs + (kk + r + 8 * (mi >> 1)) * ldX + warp * 16 + 8 * (mi & 1));
        wg_mma<TB>(d, a, desc_of(sm + kk * 128, lbo, sbo));
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#pragma unroll
    for (int i = 0; i < 16; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = warp * 16 + g + 8 * h, col = 8 * i + 2 * c4;
            out[row * NN + col] = d[4 * i + 2 * h];
            out[row * NN + col + 1] = d[4 * i + 2 * h + 1];
        }
}

// Mode 1: B K-major (B^T = S[q][n] stored with n contiguous, as the outputs kernel stages the
// chunk states): atoms of 64 K-elements (128-byte rows, 16-byte chunks XOR row & 7), one atom
// of 64 rows q per 64 K (8 KB apart); per k16 step the start address moves 32 bytes inside the
// atom. A = C[m][n] (n contiguous) from registers by ldmatrix (non-trans). m64n64k16.
__device__ __forceinline__ void wg_mma64(float (&d)[32], const unsigned (&a)[4], uint64_t db) {
    asm volatile(
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"
        "%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, 1, 1, 1, 0;\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
__device__ __forceinline__ void ldm_n(unsigned (&r)[4], const void* addr) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(addr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
constexpr int ldC = 128 + 8;
__global__ void probe_k(const __nv_bfloat16* cm, const __nv_bfloat16* sq, float* out, unsigned lbo, unsigned sbo) {
    extern __shared__ __align__(1024) unsigned char sm[];
    __nv_bfloat16* cs = reinterpret_cast<__nv_bfloat16*>(sm + 16384);  // [64][ldC]
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c4 = lane & 3;
    for (int v = tid; v < 64 * 16; v += 128) {  // S[q][n]: 64 x 128
        const int q = v / 16, cc = v % 16, kp = cc >> 3, ch = cc & 7;
        *reinterpret_cast<uint4*>(sm + kp * 8192 + q * 128 + ((ch ^ (q & 7)) << 4)) =
            *reinterpret_cast<const uint4*>(sq + q * 128 + cc * 8);
    }
    for (int v = tid; v < 64 * 16; v += 128) {
        const int m = v / 16, cc = v % 16;
        *reinterpret_cast<uint4*>(cs + m * ldC + cc * 8) = *reinterpret_cast<const uint4*>(cm + m * 128 + cc * 8);
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    float d[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) d[i] = 0.f;
    const int r = lane & 7, mi = lane >> 3;
    unsigned a[8][4];
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) ldm_n(a[kk], cs + (warp * 16 + r + 8 * (mi & 1)) * ldC + kk * 16 + 8 * (mi >> 1));
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) wg_mma64(d, a[kk], desc_of(sm + (kk >> 2) * 8192 + (kk & 3) * 32, lbo, sbo));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = warp * 16 + g + 8 * h, col = 8 * i + 2 * c4;
            out[row * 64 + col] = d[4 * i + 2 * h];
            out[row * 64 + col + 1] = d[4 * i + 2 * h + 1];
        }
}

int main(int argc, char** argv) {
    if (argc > 1 && atoi(argv[1]) == 2) {
        // mode 1: argv: 2 lbo sbo
        const unsigned lbo = argc > 2 ? atoi(argv[2]) : 16, sbo = argc > 3 ? atoi(argv[3]) : 1024;
        std::vector<__nv_bfloat16> hc(64 * 128), hs(64 * 128);
        std::vector<float> fc(64 * 128), fs(64 * 128);
        srand(9);
        for (int i = 0; i < 64 * 128; ++i) {
            hc[i] = __float2bfloat16((rand() / (float)RAND_MAX) * 2.f - 1.f);
            fc[i] = __bfloat162float(hc[i]);
            hs[i] = __float2bfloat16((rand() / (float)RAND_MAX) * 2.f - 1.f);
            fs[i] = __bfloat162float(hs[i]);
        }
        std::vector<double> ref(64 * 64, 0.0);
        for (int m = 0; m < 64; ++m)
            for (int q = 0; q < 64; ++q) {
                double acc = 0;
                for (int n = 0; n < 128; ++n) acc += (double)fc[m * 128 + n] * fs[q * 128 + n];
                ref[m * 64 + q] = acc;
            }
        __nv_bfloat16 *dc, *ds;
        float* dout;
        cudaMalloc(&dc, 64 * 128 * 2);
        cudaMalloc(&ds, 64 * 128 * 2);
        cudaMalloc(&dout, 64 * 64 * 4);
        cudaMemcpy(dc, hc.data(), 64 * 128 * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(ds, hs.data(), 64 * 128 * 2, cudaMemcpyHostToDevice);
        const int smem = 16384 + 64 * ldC * 2;
        cudaFuncSetAttribute(probe_k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        probe_k<<<1, 128, smem>>>(dc, ds, dout, lbo, sbo);
        const cudaError_t e = cudaDeviceSynchronize();
        std::vector<float> o(64 * 64);
        cudaMemcpy(o.data(), dout, 64 * 64 * 4, cudaMemcpyDeviceToHost);
        double num = 0, den = 0;
        for (int i = 0; i < 64 * 64; ++i) {
            num += (o[i] - ref[i]) * (o[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        printf("K-major B lbo %5u sbo %5u: %s rel-L2 %.3e\n", lbo, sbo, cudaGetErrorString(e), std::sqrt(num / den));
        return 0;
    }
    // argv: trans-b lbo sbo (one variant per process: a fault poisons the context).
    const int tb_arg = argc > 1 ? atoi(argv[1]) : 1;
    const unsigned lbo_arg = argc > 2 ? atoi(argv[2]) : 16384, sbo_arg = argc > 3 ? atoi(argv[3]) : 1024;
    std::vector<__nv_bfloat16> hx(K * M), hb(K * NN);
    std::vector<float> fx(K * M), fb(K * NN);
    srand(7);
    for (int i = 0; i < K * M; ++i) {
        hx[i] = __float2bfloat16((rand() / (float)RAND_MAX) * 2.f - 1.f);
        fx[i] = __bfloat162float(hx[i]);
    }
    for (int i = 0; i < K * NN; ++i) {
        hb[i] = __float2bfloat16((rand() / (float)RAND_MAX) * 2.f - 1.f);
        fb[i] = __bfloat162float(hb[i]);
    }
    std::vector<double> ref(M * NN, 0.0);
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < NN; ++n) {
            double s = 0;
            for (int k = 0; k < K; ++k) s += (double)fx[k * M + m] * fb[k * NN + n];
            ref[m * NN + n] = s;
        }
    __nv_bfloat16 *dx, *db;
    float* dout;
    cudaMalloc(&dx, K * M * 2);
    cudaMalloc(&db, K * NN * 2);
    cudaMalloc(&dout, M * NN * 4);
    cudaMemcpy(dx, hx.data(), K * M * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(db, hb.data(), K * NN * 2, cudaMemcpyHostToDevice);
    const int smem = 32768 + K * ldX * 2;
    cudaFuncSetAttribute(probe<0>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaFuncSetAttribute(probe<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    const unsigned combos[1][2] = {{lbo_arg, sbo_arg}};
    for (int tb = tb_arg; tb == tb_arg; ++tb)
        for (auto& c : combos) {
            cudaMemset(dout, 0, M * NN * 4);
            if (tb) probe<1><<<1, 128, smem>>>(dx, db, dout, c[0], c[1]);
            else probe<0><<<1, 128, smem>>>(dx, db, dout, c[0], c[1]);
            const cudaError_t e = cudaDeviceSynchronize();
            std::vector<float> o(M * NN);
            cudaMemcpy(o.data(), dout, M * NN * 4, cudaMemcpyDeviceToHost);
            double num = 0, den = 0;
            for (int i = 0; i < M * NN; ++i) {
                num += (o[i] - ref[i]) * (o[i] - ref[i]);
                den += ref[i] * ref[i];
            }
            printf("trans-b %d lbo %5u sbo %5u: %s rel-L2 %.3e\n", tb, c[0], c[1], cudaGetErrorString(e),
                   std::sqrt(num / den));
            if (e != cudaSuccess) return 1;
        }
    return 0;
}
