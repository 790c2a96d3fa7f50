// A host emulator for the Mamba-1 forward kernel for many channels (kernels/scan1_lm.cu,
// `lm1_fwd_f32_*`), in the manner of emu_fwd.cpp: every CUDA thread of a block is a
// std::thread, blocks run one after another, a cp.async lands at the wait_group that covers
// it (emu_cuda.h); shared memory starts as NaN garbage. Checks against an f64 reference.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_lm1.cpp -o /tmp/emu_lm1 && /tmp/emu_lm1
// (EMU_PLB=1: the `_w` kernels' batched element loads where a case has vec 0; EMU_CPW=1:
// their 8- / 4-byte cp.async rows there; EMU_AL=1: the aligned-only `_w6a` / `_w9a` / `_w6cka` /
// `_w9cka` where vec is 1)
// (modes `wide6ck` / `wide9ck`: the training forward's checkpoints, the state before every
// step 8 k in natural order, checked too)
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "emu_cuda.h"

struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(8) uint2 {
    unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

static std::unique_ptr<std::barrier<>> g_block_bar;
alignas(16) static float g_smem[1 << 16];

#define DYN_SMEM(name) float* name = g_smem

inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
static std::unique_ptr<std::barrier<>> g_warp_bar[32];
static float g_shfl[32][32];
inline float __shfl_xor_sync(unsigned, float v, int m) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shfl[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const float r = g_shfl[w][l ^ m];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
inline void __syncwarp() { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
// common.cuh's look-back (unused here) needs these names.
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline unsigned __ballot_sync(unsigned, bool v) { return v; }
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline float __shfl_sync(unsigned, float v, int src) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shfl[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const float r = g_shfl[w][src & 31];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
using std::max;
using std::min;

#include "../kernels/scan1_lm.cu"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif
// The shared memory the launch asked for (-fsanitize=address: the rest of g_smem poisoned).
static size_t g_smem_bytes = sizeof(g_smem);
void launch(void (*k)(Scan1Params), unsigned gx, unsigned gy, unsigned threads, const Scan1Params& p) {
    blockDim = {threads, 1, 1};
    gridDim = {gx, gy, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            ASAN_UNPOISON_MEMORY_REGION(g_smem, sizeof(g_smem));
            std::memset(g_smem, 0xff, sizeof(g_smem));
            ASAN_POISON_MEMORY_REGION(reinterpret_cast<char*>(g_smem) + g_smem_bytes, sizeof(g_smem) - g_smem_bytes);
            g_block_bar = std::make_unique<std::barrier<>>(threads);
            for (unsigned w = 0; w < threads / 32; ++w) g_warp_bar[w] = std::make_unique<std::barrier<>>(32);
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bx, by, 0};
                    k(p);
                });
            for (auto& t : ts) t.join();
        }
}

struct Case {
    int b, d, N, L, CB, G, bg, cg, vec;
    bool h0, hlast, z, D, bias, softplus;
};

static double run_case(const Case& cs, std::mt19937& rng, bool poly, bool prep, bool rs = false, int wide = 0) {
    const int b = cs.b, d = cs.d, N = cs.N, L = cs.L;
    std::uniform_real_distribution<float> U(-1.f, 1.f);
    auto rnd = [&](size_t n, float sc, float off) {
        std::vector<float> v(n);
        for (auto& x : v) x = off + sc * U(rng);
        return v;
    };
    const int bgn = cs.bg ? cs.bg : 1, cgn = cs.cg ? cs.cg : 1;
    auto u = rnd((size_t)b * d * L, 1, 0), delta = rnd((size_t)b * d * L, 0.5f, cs.softplus ? -1.f : 0.6f);
    auto A = rnd((size_t)d * N, 0.5f, -0.8f);
    auto B = cs.bg ? rnd((size_t)b * bgn * N * L, 1, 0) : rnd((size_t)d * N, 1, 0);
    auto C = cs.cg ? rnd((size_t)b * cgn * N * L, 1, 0) : rnd((size_t)d * N, 1, 0);
    auto D = rnd(d, 1, 0), z = rnd((size_t)b * d * L, 2, 0), bias = rnd(d, 0.3f, 0), h0 = rnd((size_t)b * d * N, 1, 0);
    std::vector<float> out((size_t)b * d * L, NAN), hl((size_t)b * d * N, NAN);

    // f64 reference
    std::vector<double> ro((size_t)b * d * L), rh((size_t)b * d * N);
    const bool ckm = wide >= 100;
    const int nck = (L + 7) / 8;
    std::vector<double> rck((size_t)b * d * nck * 16, 0.0);
    std::vector<float> ck((size_t)b * d * nck * 16, NAN);
    for (int i = 0; i < b; ++i)
        for (int c = 0; c < d; ++c) {
            std::vector<double> h(N);
            for (int n = 0; n < N; ++n) h[n] = cs.h0 ? h0[((size_t)i * d + c) * N + n] : 0.0;
            for (int t = 0; t < L; ++t) {
                const size_t o = ((size_t)i * d + c) * L + t;
                if (t % 8 == 0)
                    for (int n = 0; n < N; ++n) rck[(((size_t)i * nck + t / 8) * d + c) * 16 + n] = h[n];
                double dt = delta[o] + (cs.bias ? bias[c] : 0.0);
                if (cs.softplus) dt = dt > 20 ? dt : std::log1p(std::exp(dt));
                double y = 0;
                for (int n = 0; n < N; ++n) {
                    const double bv = cs.bg ? B[(((size_t)i * bgn + c / (d / bgn)) * N + n) * L + t] : B[(size_t)c * N + n];
                    const double cv = cs.cg ? C[(((size_t)i * cgn + c / (d / cgn)) * N + n) * L + t] : C[(size_t)c * N + n];
                    h[n] = std::exp(dt * A[(size_t)c * N + n]) * h[n] + dt * bv * u[o];
                    y += cv * h[n];
                }
                if (cs.D) y += D[c] * u[o];
                if (cs.z) y *= z[o] / (1 + std::exp(-(double)z[o]));
                ro[o] = y;
            }
            for (int n = 0; n < N; ++n) rh[((size_t)i * d + c) * N + n] = h[n];
        }

    const int NS = N <= 8 ? 8 : 16;
    auto gsize = [&](int gr) { return d / gr; };
    const int seg = std::gcd(gsize(cs.bg), gsize(cs.cg));
    const int cb = std::min(cs.CB, seg);
    const int bps = (seg + cb - 1) / cb, nseg = d / seg;
    Scan1Params p{};
    p.u = u.data(); p.delta = delta.data(); p.A = A.data(); p.B = B.data(); p.C = C.data();
    p.D = cs.D ? D.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.delta_bias = cs.bias ? bias.data() : nullptr;
    p.h0 = cs.h0 ? h0.data() : nullptr; p.out = out.data(); p.hlast = cs.hlast ? hl.data() : nullptr;
    p.batch = b; p.dim = d; p.seqlen = L; p.dstate = N; p.b_groups = cs.bg; p.c_groups = cs.cg;
    p.softplus = cs.softplus; p.seg = seg; p.cb = cb; p.G = cs.G; p.blocks_per_seg = bps; p.nchunks = 1; p.chunk_len = L;
    // EMU_PLB=1: the `_w` kernels' batched element loads (`async_copy` 2) where vec is 0.
    p.async_copy = cs.vec == 0 && wide && std::getenv("EMU_PLB") ? 2 : cs.vec;
    // EMU_CPW=1: the `_w` kernels' 8- / 4-byte cp.async rows (`async_copy` 8 / 4: f32 rows
    // 8-byte aligned at even L, else 4) where vec is 0.
    if (cs.vec == 0 && wide && std::getenv("EMU_CPW")) p.async_copy = cs.L % 2 == 0 ? 8 : 4;
    if (lm_smem_bytes(4, cb, NS, prep) > (int)sizeof(g_smem)) { std::printf("smem too big\n"); return 1e30; }
    void (*k)(Scan1Params) = nullptr;
    if (ckm) p.chunk_states = ck.data();
    if (ckm) k = wide == 109 ? lm1_fwd_f32_n16_g8_w9ck : lm1_fwd_f32_n16_g8_w6ck; else
    if (wide) k = wide == 9 ? lm1_fwd_f32_n16_g8_w9 : wide == 8 ? lm1_fwd_f32_n16_g8_w8 : wide == 7 ? lm1_fwd_f32_n16_g8_w7 : wide == 6 ? lm1_fwd_f32_n16_g8_w6 : wide == 5 ? lm1_fwd_f32_n16_g8_w5 : wide == 4 ? lm1_fwd_f32_n16_g8_w4 : wide == 3 ? lm1_fwd_f32_n16_g8_w3 : wide == 2 ? lm1_fwd_f32_n16_g8_w2 : lm1_fwd_f32_n16_g8_w; else
    // EMU_AL=1: the aligned-only kernels (`_w6a`, `_w9a`, `_w6cka`, `_w9cka`) where async_copy is 1.
    if (std::getenv("EMU_AL") && p.async_copy == 1) {
        if (wide == 109) k = lm1_fwd_f32_n16_g8_w9cka;
        if (wide == 106) k = lm1_fwd_f32_n16_g8_w6cka;
        if (wide == 9) k = lm1_fwd_f32_n16_g8_w9a;
        if (wide == 6) k = lm1_fwd_f32_n16_g8_w6a;
    }
    if (!k)
    switch (NS * 10 + cs.G + 1000 * (poly && NS == 16) + 2000 * prep + 3000 * rs) {
        case 3164: k = lm1_fwd_f32_n16_g4_r; break; case 3162: k = lm1_fwd_f32_n16_g2_r; break;
        case 3082: k = lm1_fwd_f32_n8_g2_r; break;
        case 2161: k = lm1_fwd_f32_n16_g1_q; break; case 2162: k = lm1_fwd_f32_n16_g2_q; break;
        case 2164: k = lm1_fwd_f32_n16_g4_q; break; case 2081: k = lm1_fwd_f32_n8_g1_q; break;
        case 2082: k = lm1_fwd_f32_n8_g2_q; break;
        case 1161: k = lm1_fwd_f32_n16_g1_p; break; case 1162: k = lm1_fwd_f32_n16_g2_p; break;
        case 161: k = lm1_fwd_f32_n16_g1; break; case 162: k = lm1_fwd_f32_n16_g2; break;
        case 164: k = lm1_fwd_f32_n16_g4; break;
        case 81: k = lm1_fwd_f32_n8_g1; break; case 82: k = lm1_fwd_f32_n8_g2; break;
    }
    const unsigned threads = (cb * (wide ? 8 : cs.G) + 31) / 32 * 32;
    g_smem_bytes = wide ? lmw_smem_bytes(4, cb, wide == 4, wide == 9 || wide == 109 ? 64 : LM_TT) : sizeof(g_smem);
    launch(k, nseg * bps, b, threads, p);
    double num = 0, den = 0, hn = 0, hd = 0;
    for (size_t k = 0; k < ro.size(); ++k) num += (out[k] - ro[k]) * (out[k] - ro[k]), den += ro[k] * ro[k];
    if (cs.hlast)
        for (size_t k = 0; k < rh.size(); ++k) hn += (hl[k] - rh[k]) * (hl[k] - rh[k]), hd += rh[k] * rh[k];
    double e = std::max(std::sqrt(num / den), cs.hlast ? std::sqrt(hn / hd) : 0.0);
    if (ckm) {
        double cn2 = 0, cd2 = 0;
        for (size_t k = 0; k < rck.size(); ++k) cn2 += (ck[k] - rck[k]) * (ck[k] - rck[k]), cd2 += rck[k] * rck[k];
        e = std::max(e, cd2 > 0 ? std::sqrt(cn2 / cd2) : std::sqrt(cn2));
    }
    return std::isnan(e) ? 1e30 : e;
}

int main() {
    std::mt19937 rng(7);
    const Case cases[] = {
        // b d N L CB G bg cg vec h0 hlast z D bias softplus
        {2, 64, 16, 100, 32, 1, 1, 1, 1, true, true, true, true, true, true},
        {2, 64, 16, 100, 32, 2, 1, 1, 1, true, true, true, true, true, true},
        {2, 64, 16, 100, 32, 1, 1, 1, 0, true, true, true, true, true, true},
        {1, 48, 5, 75, 32, 1, 1, 1, 0, true, true, true, true, true, true},
        {1, 48, 5, 75, 16, 2, 1, 1, 0, false, true, false, false, false, false},
        {2, 40, 16, 64, 32, 2, 2, 1, 1, false, true, true, true, false, true},
        {1, 24, 12, 33, 32, 1, 3, 2, 0, true, true, true, true, true, true},
        {1, 24, 12, 36, 32, 2, 3, 2, 1, true, true, true, true, true, true},
        {1, 32, 8, 1, 32, 1, 1, 1, 0, true, true, true, true, true, true},
        {1, 32, 8, 4, 32, 2, 1, 1, 1, true, true, true, true, true, true},
        {1, 32, 1, 96, 32, 1, 1, 1, 1, true, true, true, true, true, true},
        {1, 130, 16, 40, 64, 1, 1, 1, 1, true, true, true, true, true, true},
        {2, 64, 16, 600, 32, 1, 1, 1, 1, true, true, true, true, true, true},
        {2, 64, 16, 600, 32, 2, 1, 1, 1, true, true, true, true, true, true},
        {2, 64, 16, 100, 32, 4, 1, 1, 1, true, true, true, true, true, true},
        {2, 64, 16, 100, 16, 4, 1, 1, 0, true, true, true, true, true, true},
        {1, 40, 12, 77, 64, 4, 2, 1, 0, true, true, true, true, true, true},
        {1, 40, 9, 64, 8, 4, 2, 4, 1, false, true, false, true, false, true},
        {1, 40, 16, 64, 64, 4, 1, 1, 1, true, true, false, false, false, false},
        {2, 64, 16, 200, 64, 1, 1, 1, 1, true, true, true, true, true, true},
        {1, 40, 16, 129, 32, 1, 1, 1, 0, true, true, true, true, true, true},
    };
    int bad = 0;
    const bool only_random = std::getenv("EMU_ONLY_RANDOM") != nullptr;
    for (const int mode : {14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 0, 1, 2, 3})
        for (const auto& cs : cases) {
            if (only_random) break;
            const bool poly = mode == 1, prep = mode == 2, rs = mode == 3;
            const int wide = mode == 13 ? 106 : mode == 14 ? 109 : mode == 4 ? 1 : mode == 5 ? 2 : mode == 6 ? 3 : mode == 7 ? 4 : mode == 8 ? 5 : mode == 9 ? 6 : mode == 10 ? 7 : mode == 11 ? 8 : mode == 12 ? 9 : 0;
            if (poly && (cs.N <= 8 || cs.G == 4)) continue;
            if (rs && (cs.G == 1 || (cs.G == 4 && cs.N <= 8))) continue;
            const double e = run_case(cs, rng, poly, prep, rs, wide);
            const bool ok = e < 1e-5;
            bad += !ok;
            std::printf("%s b%d d%d N%d L%d CB%d G%d bg%d cg%d vec%d%s: rel err %.3g\n", ok ? "ok  " : "FAIL", cs.b, cs.d,
                        cs.N, cs.L, cs.CB, cs.G, cs.bg, cs.cg, cs.vec, wide == 109 ? " wide9ck" : wide == 106 ? " wide6ck" : wide == 9 ? " wide9" : wide == 8 ? " wide8" : wide == 7 ? " wide7" : wide == 6 ? " wide6" : wide == 5 ? " wide5" : wide == 4 ? " wide4" : wide == 3 ? " wide3" : wide == 2 ? " wide2" : wide ? " wide" : poly ? " poly" : prep ? " prep" : rs ? " rs" : "", e);
        }
    // Random shapes for the G 8 forms (EMU_RANDOM=N cases; `_w9` and `_w6`), as the device
    // test draws them: L 1..300 or multiples of 8, N 9..16, groups, CB 16 / 40 / 64.
    const int nr = std::getenv("EMU_RANDOM") ? std::atoi(std::getenv("EMU_RANDOM")) : 0;
    std::mt19937 r2(11);
    for (int k = 0; k < nr; ++k) {
        auto ri = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(r2); };
        const int d = ri(1, 120), L = ri(0, 1) ? 8 * ri(1, 40) : ri(1, 300);
        auto div = [&]() { std::vector<int> v; for (int x = 1; x <= d; ++x) if (d % x == 0) v.push_back(x); return v[ri(0, (int)v.size() - 1)]; };
        const int N = std::vector<int>{9, 13, 16}[ri(0, 2)];
        const int CB = std::vector<int>{64, 16, 40, 12}[ri(0, 3)];
        Case cs{ri(1, 3), d, N, L, CB, 1, ri(0, 1) ? div() : 1, ri(0, 1) ? div() : 1, L % 4 == 0, (bool)ri(0, 1), true, (bool)ri(0, 1), (bool)ri(0, 1), (bool)ri(0, 1), (bool)ri(0, 1)};
        for (int wide : {9, 6, 109, 106}) {
            const double e = run_case(cs, rng, false, false, false, wide);
            const bool ok = e < 1e-5;
            bad += !ok;
            std::printf("%s random b%d d%d N%d L%d CB%d bg%d cg%d vec%d wide%d: rel err %.3g\n", ok ? "ok  " : "FAIL", cs.b, cs.d, cs.N, cs.L, cs.CB, cs.bg, cs.cg, cs.vec, wide, e);
        }
    }
    return bad ? 1 : 0;
}
