// The H200's mma.sync rates (the ceilings quoted in NOTES.md, seventeenth session):
// each warp issues a long run of independent mma.sync on registers (8 accumulator tiles,
// no memory traffic), every SM full of warps. Prints TFLOP/s per form.
//   nvcc -O3 -arch=sm_90 mma_peak.cu -o mma_peak && ./mma_peak
#include <cstdio>
#include <cuda_runtime.h>

template <int KIND>
__global__ void __launch_bounds__(256) peak(float* out, int iters) {
    float d[8][4] = {};
    unsigned a[4] = {threadIdx.x, threadIdx.x * 3u, threadIdx.x * 5u, threadIdx.x * 7u};
    unsigned b[2] = {threadIdx.x * 11u, threadIdx.x * 13u};
    for (int it = 0; it < iters; ++it) {
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            if constexpr (KIND == 0) {  // tf32 m16n8k8
                asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                             : "+f"(d[t][0]), "+f"(d[t][1]), "+f"(d[t][2]), "+f"(d[t][3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
            } else if constexpr (KIND == 1) {  // bf16 m16n8k16
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                             : "+f"(d[t][0]), "+f"(d[t][1]), "+f"(d[t][2]), "+f"(d[t][3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
            } else {  // f16 m16n8k16
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                             : "+f"(d[t][0]), "+f"(d[t][1]), "+f"(d[t][2]), "+f"(d[t][3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
            }
        }
    }
    float s = 0.f;
    for (int t = 0; t < 8; ++t) s += d[t][0] + d[t][1] + d[t][2] + d[t][3];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

int main() {
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const int blocks = sms * 8, threads = 256, iters = 4096;
    float* out;
    cudaMalloc(&out, sizeof(float) * blocks * threads);
    const char* names[3] = {"tf32 m16n8k8", "bf16 m16n8k16", "f16 m16n8k16"};
    const double flop_per[3] = {2.0 * 16 * 8 * 8, 2.0 * 16 * 8 * 16, 2.0 * 16 * 8 * 16};
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int k = 0; k < 3; ++k) {
        float best = 1e30f;
        for (int rep = 0; rep < 5; ++rep) {
            cudaEventRecord(e0);
            if (k == 0) peak<0><<<blocks, threads>>>(out, iters);
            else if (k == 1) peak<1><<<blocks, threads>>>(out, iters);
            else peak<2><<<blocks, threads>>>(out, iters);
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            float ms = 0.f;
            cudaEventElapsedTime(&ms, e0, e1);
            if (ms < best) best = ms;
        }
        const double flops = flop_per[k] * 8.0 * iters * (blocks * threads / 32.0);
        std::printf("%-16s %8.1f TFLOP/s (%.3f ms)\n", names[k], flops / (best * 1e-3) / 1e12, best);
    }
    std::printf("%s\n", cudaGetErrorString(cudaGetLastError()));
    return 0;
}
