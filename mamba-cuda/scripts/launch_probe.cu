// Where the host time of one kernel launch goes (sixty-eighth session). The plugin's seed
// calls spend ~3.2-4.3 us of host time per call, nearly all in `cuLaunchKernel`, where a
// 4-byte `cuMemsetD8Async` takes ~1.2 us; with CUDA events around a call that time adds to
// what a user measures whenever the GPU waits for the launch. This probe times
// `cuLaunchKernel` on the host (median of 2000 calls, each between two event records as the
// bench does) for launches that differ in one thing each: the parameter size, the
// dynamic shared memory attribute and request, the grid, the module's form (cubin / PTX),
// and the runtime API.
// Build and run on the GPU machine:
//   nvcc -O2 -arch=sm_90 -cubin -o /tmp/lp.cubin launch_probe.cu -DKERNELS_ONLY
//   nvcc -O2 -arch=sm_90 -o /tmp/lp launch_probe.cu -lcuda && /tmp/lp /tmp/lp.cubin
#include <cuda.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

struct P8 {
    unsigned long long a;
};
struct P184 {
    unsigned long long p[15];
    int i[16];
};
struct P512 {
    unsigned long long p[64];
};

extern "C" __global__ void k_p8(const __grid_constant__ P8 p) {
    if (p.a == 1 && threadIdx.x == 1000) printf("x");
}
extern "C" __global__ void k_p184(const __grid_constant__ P184 p) {
    if (p.p[0] == 1 && threadIdx.x == 1000) printf("x");
}
extern "C" __global__ void k_p512(const __grid_constant__ P512 p) {
    if (p.p[0] == 1 && threadIdx.x == 1000) printf("x");
}
extern "C" __global__ void k_smem(const __grid_constant__ P184 p) {
    extern __shared__ float sm[];
    if (p.p[0] == 1) sm[threadIdx.x] = 1.f;
    if (p.p[1] == 1 && threadIdx.x == 1000) printf("%f", sm[0]);
}
// As k_smem, a separate function so that its attribute is set apart from k_smem's.
extern "C" __global__ void k_smem_max(const __grid_constant__ P184 p) {
    extern __shared__ float sm[];
    if (p.p[0] == 1) sm[threadIdx.x] = 1.f;
    if (p.p[1] == 1 && threadIdx.x == 1000) printf("%f", sm[0]);
}

#ifndef KERNELS_ONLY
#define CK(x)                                                                   \
    do {                                                                        \
        CUresult r_ = (x);                                                      \
        if (r_ != CUDA_SUCCESS) {                                               \
            const char* s_ = nullptr;                                           \
            cuGetErrorString(r_, &s_);                                          \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_);      \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static double med(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct Case {
    const char* name;
    CUfunction f;
    void* prm;
    unsigned grid, block, smem;
};

int main(int argc, char** argv) {
    CK(cuInit(0));
    CUdevice dev;
    CK(cuDeviceGet(&dev, 0));
    CUcontext ctx;
    CK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(cuCtxSetCurrent(ctx));
    int optin = 0;
    CK(cuDeviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev));
    FILE* fp = fopen(argv[1], "rb");
    if (!fp) return 1;
    std::vector<char> bin(1 << 24);
    bin.resize(fread(bin.data(), 1, bin.size(), fp));
    fclose(fp);
    CUmodule m;
    CK(cuModuleLoadData(&m, bin.data()));
    CUfunction f8, f184, f512, fs, fsm;
    CK(cuModuleGetFunction(&f8, m, "k_p8"));
    CK(cuModuleGetFunction(&f184, m, "k_p184"));
    CK(cuModuleGetFunction(&f512, m, "k_p512"));
    CK(cuModuleGetFunction(&fs, m, "k_smem"));
    CK(cuModuleGetFunction(&fsm, m, "k_smem_max"));
    CK(cuFuncSetAttribute(fs, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 72 * 1024));
    CK(cuFuncSetAttribute(fsm, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, optin));
    CUstream st;
    CK(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
    CUevent e0, e1;
    CK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    P8 p8{};
    P184 p184{};
    P512 p512{};
    std::vector<Case> cases = {
        {"p8 1x32", f8, &p8, 1, 32, 0},
        {"p184 1x32", f184, &p184, 1, 32, 0},
        {"p512 1x32", f512, &p512, 1, 32, 0},
        {"p184 128x192", f184, &p184, 128, 192, 0},
        {"smem attr72K, 0 dyn, 128x192", fs, &p184, 128, 192, 0},
        {"smem attr72K, 70K dyn, 128x192", fs, &p184, 128, 192, 70 * 1024},
        {"smem attr max, 0 dyn, 128x192", fsm, &p184, 128, 192, 0},
        {"smem attr max, 70K dyn, 128x192", fsm, &p184, 128, 192, 70 * 1024},
        {"smem attr max, 200K dyn, 128x192", fsm, &p184, 128, 192, 200 * 1024},
        {"p8 1x32 (again)", f8, &p8, 1, 32, 0},
    };
    // 2200 calls of `enqueue` between two event records, the first 200 dropped: the medians of
    // the host time of the first record, of `enqueue` itself, and between the events.
    auto timed = [&](auto&& enqueue, double& rec, double& host, double& dev) {
        std::vector<double> r, h, d;
        for (int it = 0; it < 2200; ++it) {
            auto t0 = std::chrono::steady_clock::now();
            CK(cuEventRecord(e0, st));
            auto t1 = std::chrono::steady_clock::now();
            enqueue();
            auto t2 = std::chrono::steady_clock::now();
            CK(cuEventRecord(e1, st));
            CK(cuEventSynchronize(e1));
            float ms = 0;
            CK(cuEventElapsedTime(&ms, e0, e1));
            if (it >= 200) {
                r.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
                h.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
                d.push_back(ms * 1e3);
            }
        }
        rec = med(r), host = med(h), dev = med(d);
    };
    for (int round = 0; round < 2; ++round) {
        double rec, host, dev;
        for (auto& c : cases) {
            void* args[] = {c.prm};
            timed([&] { CK(cuLaunchKernel(c.f, c.grid, 1, 1, c.block, 1, 1, c.smem, st, args, nullptr)); }, rec, host,
                  dev);
            printf("round %d %-36s launch host %6.2f us  event record %5.2f us  events %6.2f us\n", round, c.name, host,
                   rec, dev);
        }
        // A memset between the same events (the bench's floor).
        CUdeviceptr d;
        CK(cuMemAlloc(&d, 256));
        timed([&] { CK(cuMemsetD8Async(d, 0, 4, st)); }, rec, host, dev);
        printf("round %d %-36s launch host %6.2f us  events %6.2f us\n", round, "memset 4 B", host, dev);
        CK(cuMemFree(d));
        // Back-to-back launches with no sync between (the pipelined host cost).
        for (auto& c : {cases[1], cases[7]}) {
            void* args[] = {c.prm};
            std::vector<double> host;
            for (int rep = 0; rep < 20; ++rep) {
                CK(cuStreamSynchronize(st));
                auto t1 = std::chrono::steady_clock::now();
                for (int it = 0; it < 100; ++it)
                    CK(cuLaunchKernel(c.f, c.grid, 1, 1, c.block, 1, 1, c.smem, st, args, nullptr));
                auto t2 = std::chrono::steady_clock::now();
                host.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / 100);
            }
            printf("round %d %-36s back-to-back host %6.2f us per launch\n", round, c.name, med(host));
        }
    }
    return 0;
}
#endif
