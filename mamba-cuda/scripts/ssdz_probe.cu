// A device-side probe of `ssdz_f32_tc` (kernels/ssd_seed3.cu) without the Rust host: builds
// with the GPU machine's nvcc, checks the kernel against an f64 recurrence at the seed shape
// (b 2, h 6, p 64, N 64, one group; D per head, dt_bias, softplus), times it with CUDA
// events (median of 300 calls, one event pair per call, as mamba-cuda-bench), and with
// -DSSDZ_TRACE prints the %globaltimer phase marks of every warp (the SSDZ_MARK points).
//   nvcc -O3 -arch=sm_90 -std=c++17 [-DSSDZ_TRACE] -I mamba-cuda/kernels \
//        mamba-cuda/scripts/ssdz_probe.cu -o /tmp/ssdz_probe && /tmp/ssdz_probe [L] [diag]
#include "ssd_seed3.cu"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#define CK(x)                                                                  \
    do {                                                                       \
        cudaError_t e_ = (x);                                                  \
        if (e_) {                                                              \
            printf("%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static double urand(unsigned long long& s) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((s >> 11) * (1.0 / 9007199254740992.0));
}

int main(int argc, char** argv) {
    const int b = 2, h = 6, P = 64, N = 64;
    const int L = argc > 1 ? atoi(argv[1]) : 800;
    const int diag = argc > 2 ? atoi(argv[2]) : 0;
    const int var = argc > 3 ? atoi(argv[3]) : 8;  // 8: ssdz_f32_tc, 7: ssdz_f32_v7
    unsigned long long seed = 12345;
    std::vector<float> x((size_t)b * L * h * P), dt((size_t)b * L * h), A(h), Bm((size_t)b * L * N),
        Cm((size_t)b * L * N), D(h), bias(h);
    for (auto& v : x) v = (float)(urand(seed) * 2 - 1);
    for (auto& v : dt) v = (float)(urand(seed) * 2 - 1.5);
    for (auto& v : A) v = (float)(-(0.5 + urand(seed) * 4));
    for (auto& v : Bm) v = (float)(urand(seed) * 2 - 1);
    for (auto& v : Cm) v = (float)(urand(seed) * 2 - 1);
    for (auto& v : D) v = (float)(urand(seed));
    for (auto& v : bias) v = (float)(urand(seed) * 0.5 - 0.25);
    auto up = [](const std::vector<float>& v) {
        float* d;
        CK(cudaMalloc(&d, v.size() * 4));
        CK(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
        return d;
    };
    float *dx = up(x), *ddt = up(dt), *dA = up(A), *dB = up(Bm), *dC = up(Cm), *dD = up(D), *dbias = up(bias);
    float *dout, *dfin, *dscr;
    CK(cudaMalloc(&dout, x.size() * 4));
    CK(cudaMalloc(&dfin, (size_t)b * h * P * N * 4));
    const size_t states = (size_t)b * h * 8 * 64 * 64 * 4;
    CK(cudaMalloc(&dscr, states + (size_t)b * h * 8 * 8));
    SsdParams p{};
    p.x = dx; p.dt = ddt; p.A = dA; p.B = dB; p.C = dC; p.D = dD; p.z = nullptr; p.dt_bias = dbias;
    p.init = nullptr; p.seq_idx = nullptr; p.out = dout; p.final_states = dfin;
    p.chunk_states = dscr; p.chunk_decay = dscr + states / 4;
    p.x_sb = (long long)L * h * P; p.x_st = h * P;
    p.dt_sb = (long long)L * h; p.dt_st = h;
    p.B_sb = (long long)L * N; p.B_st = N;
    p.C_sb = (long long)L * N; p.C_st = N;
    p.z_sb = 0; p.z_st = 0;
    p.out_sb = p.x_sb; p.out_st = p.x_st;
    p.batch = b; p.seqlen = L; p.nheads = h; p.headdim = P; p.ngroups = 1; p.dstate = N;
    p.d_per_channel = 0; p.softplus = 1; p.has_limit = 0; p.lo = 0; p.hi = 0;
    p.nchunks = 8; p.chunk_len = ((L + 7) / 8 + 3) / 4 * 4; p.mode = diag;
    const int q = p.chunk_len, qs = (q + 7) / 8 * 8 + 4;
    const int smem = var == 7 ? 8 * 128 + 16 + 4 * (3 * 128 + 2 * 64 * 64 + q * 64 + 2 * 64 * qs + std::max(q * q, q * 64))
                              : 8 * (128 + 2) + 4 * (3 * 128 + 2 * 64 * 68 + 128 * 68 + 3 * 128 * 72 + 64);
    CK(cudaFuncSetAttribute(ssdz_f32_tc, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CK(cudaFuncSetAttribute(ssdz_f32_v7, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    dim3 grid(8, h, b);
    auto launch = [&] {
        if (var == 7)
            ssdz_f32_v7<<<grid, 512, smem, s>>>(p);
        else
            ssdz_f32_tc<<<grid, 512, smem, s>>>(p);
    };
    launch();
    CK(cudaStreamSynchronize(s));
    CK(cudaGetLastError());
    // f64 recurrence
    std::vector<float> out(x.size()), fin((size_t)b * h * P * N);
    CK(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(fin.data(), dfin, fin.size() * 4, cudaMemcpyDeviceToHost));
    double num = 0, den = 0, fnum = 0, fden = 0;
    std::vector<double> hs((size_t)P * N);
    for (int i = 0; i < b; ++i)
        for (int j = 0; j < h; ++j) {
            std::fill(hs.begin(), hs.end(), 0.0);
            for (int t = 0; t < L; ++t) {
                double r = (double)dt[((size_t)i * L + t) * h + j] + bias[j];
                double d = r > 20 ? r : std::log1p(std::exp(r));
                double a = std::exp(d * A[j]);
                const float* xr = &x[(((size_t)i * L + t) * h + j) * P];
                const float* br = &Bm[((size_t)i * L + t) * N];
                const float* cr = &Cm[((size_t)i * L + t) * N];
                for (int q = 0; q < P; ++q) {
                    double y = 0;
                    for (int n = 0; n < N; ++n) {
                        double& hv = hs[(size_t)q * N + n];
                        hv = a * hv + d * xr[q] * br[n];
                        y += cr[n] * hv;
                    }
                    y += D[j] * xr[q];
                    double g = out[(((size_t)i * L + t) * h + j) * P + q];
                    num += (g - y) * (g - y);
                    den += y * y;
                }
            }
            for (int q = 0; q < P; ++q)
                for (int n = 0; n < N; ++n) {
                    double e = fin[(((size_t)i * h + j) * P + q) * N + n] - hs[(size_t)q * N + n];
                    fnum += e * e;
                    fden += hs[(size_t)q * N + n] * hs[(size_t)q * N + n];
                }
        }
    printf("%s L %d diag %d: out rel-L2 %.3e, final state rel-L2 %.3e\n", var == 7 ? "v7" : "tc", L, diag, std::sqrt(num / den),
           std::sqrt(fnum / fden));
    // timing
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int k = 0; k < 30; ++k) launch();
    CK(cudaStreamSynchronize(s));
    std::vector<float> ts;
    for (int k = 0; k < 300; ++k) {
        cudaEventRecord(e0, s);
        launch();
        cudaEventRecord(e1, s);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        ts.push_back(ms * 1000);
    }
    std::sort(ts.begin(), ts.end());
    cudaEventRecord(e0, s);
    for (int k = 0; k < 200; ++k) launch();
    cudaEventRecord(e1, s);
    cudaEventSynchronize(e1);
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    printf("  call median %.2f us (min %.2f, p90 %.2f); back-to-back %.2f us per launch\n", ts[150], ts[0], ts[270],
           ms * 1000 / 200);
#ifdef SSDZ_TRACE
    // One traced call after the timed ones: the marks relative to the earliest kernel entry.
    std::vector<unsigned long long> tr(96 * 16 * 16, 0);
    CK(cudaMemcpyToSymbol(ssdz_trace, tr.data(), tr.size() * 8));
    for (int rep = 0; rep < 3; ++rep) {
        launch();
        CK(cudaStreamSynchronize(s));
    }
    CK(cudaMemcpyFromSymbol(tr.data(), ssdz_trace, tr.size() * 8));
    const int nb = 8 * h * b;
    unsigned long long t0 = ~0ull;
    for (int bl = 0; bl < nb; ++bl)
        for (int w = 0; w < 16; ++w) t0 = std::min(t0, tr[(bl * 16 + w) * 16 + 0]);
    printf("  marks (ns after the earliest entry; per block the max over its warps, then min / median / max over "
           "blocks; chunk-0 and chunk-7 medians)\n");
    for (int k = 0; k <= 12; ++k) {
        std::vector<double> v, v0, v7;
        for (int bl = 0; bl < nb; ++bl) {
            unsigned long long m = 0;
            for (int w = 0; w < 16; ++w) m = std::max(m, tr[(bl * 16 + w) * 16 + k]);
            if (m == 0) continue;
            v.push_back((double)(m - t0));
            if (bl % 8 == 0) v0.push_back((double)(m - t0));
            if (bl % 8 == 7) v7.push_back((double)(m - t0));
        }
        if (v.empty()) continue;
        std::sort(v.begin(), v.end());
        std::sort(v0.begin(), v0.end());
        std::sort(v7.begin(), v7.end());
        printf("  mark %2d: %7.0f %7.0f %7.0f   c0 %7.0f  c7 %7.0f\n", k, v.front(), v[v.size() / 2], v.back(),
               v0[v0.size() / 2], v7[v7.size() / 2]);
    }
    // Per-warp phase lengths (ns) in block (chunk 7, head 0, batch 0): S_c (3 -> 4), M X (5 -> 6),
    // C S_in (9 -> 10), outputs (11 -> 12).
    {
        const int bl = 7;
        printf("  block c7: warp: S_c / M X / C S_in / out (ns)\n   ");
        for (int w = 0; w < 16; ++w) {
            const unsigned long long* m = &tr[(bl * 16 + w) * 16];
            printf(" w%d %llu/%llu/%llu/%llu", w, m[4] - m[3], m[6] - m[5], m[10] - m[9], m[12] - m[11]);
        }
        printf("\n");
    }
#endif
    return 0;
}
