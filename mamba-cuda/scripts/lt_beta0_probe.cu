// Sixty-fifth session: does cublasLtMatmul read C when beta = 0 is given through device memory
// (CUBLASLT_POINTER_MODE_DEVICE, as gemm.rs `run_split` passes it)? The output is filled with
// NaN bits first; the f16 product of the split operands' layout (A^T read transposed, f32 C / D,
// compute 32F) at two shapes; prints the NaN count of D (0: C was not read) and the max error.
// nvcc -O2 -arch=sm_90 lt_beta0_probe.cu -lcublasLt -o /tmp/probe && /tmp/probe
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cstdio>
#include <vector>
#include <cmath>
#define CK(x) do { auto s_ = (x); if (s_ != 0) { printf("%s: %d\n", #x, (int)s_); return 1; } } while (0)
int run(cublasLtHandle_t h, int m, int n, int k, int mode) {
    // C^T (n x m) = W (n x k, stored k x n col-major, transposed) . A^T (k x m)
    std::vector<__half> ha((size_t)m * k), hw((size_t)n * k);
    std::vector<float> fa((size_t)m * k), fw((size_t)n * k);
    unsigned s = 1;
    auto rnd = [&] { s = s * 1664525u + 1013904223u; return ((s >> 8) & 0xffff) / 65536.f - 0.5f; };
    for (size_t i = 0; i < ha.size(); ++i) { ha[i] = __float2half(rnd()); fa[i] = __half2float(ha[i]); }
    for (size_t i = 0; i < hw.size(); ++i) { hw[i] = __float2half(rnd()); fw[i] = __half2float(hw[i]); }
    __half *da, *dw; float *dd, *dsc; void* ws;
    cudaMalloc(&da, ha.size() * 2); cudaMalloc(&dw, hw.size() * 2);
    cudaMalloc(&dd, (size_t)m * n * 4); cudaMalloc(&dsc, 8); cudaMalloc(&ws, 32 << 20);
    cudaMemcpy(da, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dw, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice);
    cudaMemset(dd, 0xff, (size_t)m * n * 4);  // NaN
    float sc[2] = {1.f, 0.f};
    cudaMemcpy(dsc, sc, 8, cudaMemcpyHostToDevice);
    cublasLtMatmulDesc_t desc; CK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t t = CUBLAS_OP_T, nn = CUBLAS_OP_N;
    CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, 4));
    CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &nn, 4));
    int pm = mode;
    CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, 4));
    cublasLtMatrixLayout_t la, lb, lc;
    CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16F, k, n, k));
    CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16F, k, m, k));
    CK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, n, m, n));
    cublasLtMatmulPreference_t pref; CK(cublasLtMatmulPreferenceCreate(&pref));
    size_t wsz = 32 << 20;
    CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, 8));
    cublasLtMatmulHeuristicResult_t res[8]; int cnt = 0;
    CK(cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, lc, lc, pref, 8, res, &cnt));
    float ha_ = 1.f, hb_ = 0.f;
    const void* pa = mode == 1 ? (const void*)dsc : (const void*)&ha_;
    const void* pb = mode == 1 ? (const void*)(dsc + 1) : (const void*)&hb_;
    for (int c = 0; c < cnt; ++c) {
        cudaMemset(dd, 0xff, (size_t)m * n * 4);
        int st = cublasLtMatmul(h, desc, pa, dw, la, da, lb, pb, dd, lc, dd, lc, &res[c].algo, ws, wsz, 0);
        cudaDeviceSynchronize();
        std::vector<float> out((size_t)m * n);
        cudaMemcpy(out.data(), dd, out.size() * 4, cudaMemcpyDeviceToHost);
        size_t nan = 0; double err = 0;
        for (int i = 0; i < m; i += 1031) for (int j = 0; j < n; j += 13) {
            float v = out[(size_t)i * n + j];
            if (std::isnan(v)) { ++nan; continue; }
            double w = 0; for (int q = 0; q < k; ++q) w += (double)fa[(size_t)i * k + q] * fw[(size_t)j * k + q];
            err = fmax(err, fabs(v - w));
        }
        size_t nan_all = 0; for (float v : out) nan_all += std::isnan(v);
        printf("m%d n%d k%d mode %d algo %d: status %d, NaN in D %zu, max |err| (sampled rows) %.3g\n", m, n, k, mode, c, st, nan_all, err);
    }
    cudaFree(da); cudaFree(dw); cudaFree(dd); cudaFree(dsc); cudaFree(ws);
    return 0;
}
int main() {
    cublasLtHandle_t h; CK(cublasLtCreate(&h));
    for (int mode : {1, 0}) { run(h, 16384, 3352, 2304, mode); run(h, 800, 902, 576, mode); }
    return 0;
}
