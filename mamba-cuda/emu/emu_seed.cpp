// A host emulator for kernels/seed.cu (f32): every CUDA thread of a block is a
// std::thread; blocks run one after another in blockIdx order, which is also their ticket
// order, so every wait on an earlier chunk's flag finds it published. Checks the outputs
// and final states against an f64 recurrence (SPEC 2).
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_seed.cpp -o /tmp/emu_seed && /tmp/emu_seed
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "emu_cuda.h"

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

static std::unique_ptr<std::barrier<>> g_block_bar;
static std::mutex g_atomic;
alignas(16) static unsigned char g_smem[1 << 17];

inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline unsigned atomicExch(unsigned* a, unsigned v) {
    std::lock_guard<std::mutex> g(g_atomic);
    const unsigned old = *a;
    *a = v;
    return old;
}
inline unsigned atomicAdd(unsigned* a, unsigned v) {
    std::lock_guard<std::mutex> g(g_atomic);
    const unsigned old = *a;
    *a = old + v;
    return old;
}
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __ldcg(const float* p) { return *p; }
inline float4 __ldcg(const float4* p) { return *p; }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned ld_acquire_u32(const unsigned* p) {
    return std::atomic_ref<unsigned>(*const_cast<unsigned*>(p)).load(std::memory_order_acquire);
}
inline void st_release_u32(unsigned* p, unsigned v) { std::atomic_ref<unsigned>(*p).store(v, std::memory_order_release); }
static std::unique_ptr<std::barrier<>> g_warp_bar[32];
static double g_shd[32][32];
inline double __shfl_up_sync(unsigned, double v, int d) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shd[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const double r = g_shd[w][l >= d ? l - d : l];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
inline double __shfl_sync(unsigned, double v, int src) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shd[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const double r = g_shd[w][src];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
inline unsigned __ballot_sync(unsigned, bool) { return 0; }  // (common.cuh's look-back: unused here)
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
using std::max;
using std::min;

#include "../kernels/seed.cu"

static int g_q = 32;
static void launch_seed(const SeedSsdParams& sp, unsigned blocks) {
    blockDim = {256, 1, 1};
    gridDim = {blocks, 1, 1};
    for (unsigned bx = 0; bx < blocks; ++bx) {
        std::memset(g_smem, 0xff, sizeof(g_smem));  // NaN garbage
        g_block_bar = std::make_unique<std::barrier<>>(256);
        for (unsigned w = 0; w < 8; ++w) g_warp_bar[w] = std::make_unique<std::barrier<>>(32);
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < 256; ++t)
            ts.emplace_back([&, t] {
                threadIdx = {t, 0, 0};
                blockIdx = {bx, 0, 0};
                double* s_cs = reinterpret_cast<double*>(g_smem);
                float* sm = reinterpret_cast<float*>(g_smem + 8 * (seed::SQ + 2));
                if (g_q == 16) seed_ssd_body<float, 0, 16>(sp, sm, s_cs);
                else seed_ssd_body<float, 1, 32>(sp, sm, s_cs);
            });
        for (auto& t : ts) t.join();
    }
}

static void launch_scan1(const Scan1Params& p, unsigned blocks, unsigned threads) {
    blockDim = {threads, 1, 1};
    gridDim = {blocks, 1, 1};
    for (unsigned bx = 0; bx < blocks; ++bx) {
        std::memset(g_smem, 0xff, sizeof(g_smem));
        g_block_bar = std::make_unique<std::barrier<>>(threads);
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                threadIdx = {t, 0, 0};
                blockIdx = {bx, 0, 0};
                seed_scan1_body<float>(p, reinterpret_cast<float*>(g_smem));
            });
        for (auto& t : ts) t.join();
    }
}

// Mamba-1 (SPEC 1) with B / C (b, G, N, L).
struct Case1 {
    int b, d, N, L, bg, cg, group;
    bool h0, hlast, z, D, bias, softplus;
};

static double run_case1(const Case1& cs, std::mt19937& rng, double& ferr) {
    const int b = cs.b, d = cs.d, N = cs.N, L = cs.L, bg = cs.bg, cg = cs.cg;
    std::uniform_real_distribution<float> U(-1.f, 1.f);
    auto rnd = [&](size_t n, float sc, float off) { std::vector<float> v(n); for (auto& x : v) x = off + sc * U(rng); return v; };
    auto u = rnd((size_t)b * d * L, 1, 0), delta = rnd((size_t)b * d * L, 0.5f, cs.softplus ? -1.f : 0.6f);
    auto A = rnd((size_t)d * N, 0.5f, -0.8f);
    auto B = rnd((size_t)b * bg * N * L, 1, 0), C = rnd((size_t)b * cg * N * L, 1, 0);
    auto D = rnd(d, 1, 0), z = rnd((size_t)b * d * L, 2, 0), bias = rnd(d, 0.3f, 0), h0 = rnd((size_t)b * d * N, 1, 0);
    std::vector<float> out((size_t)b * d * L, NAN), hl((size_t)b * d * N, NAN);
    std::vector<double> ro(out.size()), rh(hl.size());
    for (int i = 0; i < b; ++i)
        for (int c = 0; c < d; ++c) {
            std::vector<double> h(N);
            for (int n = 0; n < N; ++n) h[n] = cs.h0 ? h0[((size_t)i * d + c) * N + n] : 0.0;
            for (int t = 0; t < L; ++t) {
                const size_t o = ((size_t)i * d + c) * L + t;
                double dt = delta[o] + (cs.bias ? bias[c] : 0.0);
                if (cs.softplus) dt = dt > 20 ? dt : std::log1p(std::exp(dt));
                double y = 0;
                for (int n = 0; n < N; ++n) {
                    const double bv = B[(((size_t)i * bg + c / (d / bg)) * N + n) * L + t];
                    const double cv = C[(((size_t)i * cg + c / (d / cg)) * N + n) * L + t];
                    h[n] = std::exp(dt * A[(size_t)c * N + n]) * h[n] + dt * bv * u[o];
                    y += cv * h[n];
                }
                if (cs.D) y += D[c] * u[o];
                if (cs.z) y *= z[o] / (1 + std::exp(-(double)z[o]));
                ro[o] = y;
            }
            for (int n = 0; n < N; ++n) rh[((size_t)i * d + c) * N + n] = h[n];
        }
    // The host's shape (seed.rs): RB = the largest power of two <= 16 dividing the group sizes.
    const int seg = std::gcd(d / bg, d / cg);
    int RB = 16;
    while (seg % RB) RB /= 2;
    const int K = (L + seed1::Q - 1) / seed1::Q, BD = b * d, NRG = BD / RB;
    const int G = cs.group <= 0 ? std::max(1, (int)std::ceil(std::sqrt((double)K))) : std::min(cs.group, K), ng = (K + G - 1) / G;
    std::vector<float> loc((size_t)K * BD * 64, NAN), pend(loc.size(), NAN), agg((size_t)2 * ng * BD * 64, NAN);
    std::vector<unsigned> flags(1 + (size_t)(K + ng) * NRG, 5u);
    flags[0] = 0;
    Scan1Params p{};
    p.u = u.data(); p.delta = delta.data(); p.A = A.data(); p.B = B.data(); p.C = C.data();
    p.D = cs.D ? D.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.delta_bias = cs.bias ? bias.data() : nullptr;
    p.h0 = cs.h0 ? h0.data() : nullptr; p.out = out.data(); p.hlast = cs.hlast ? hl.data() : nullptr;
    p.chunk_states = loc.data(); p.chunk_dtsum = pend.data(); p.chunk_incl = agg.data(); p.flags = flags.data();
    p.batch = b; p.dim = d; p.seqlen = L; p.dstate = N; p.b_groups = bg; p.c_groups = cg; p.softplus = cs.softplus;
    p.cb = RB; p.nchunks = K; p.chunk_len = seed1::Q; p.flag_base = 9; p.reserved = G;
    launch_scan1(p, K * NRG, RB * 16);
    double num = 0, den = 0;
    for (size_t e = 0; e < out.size(); ++e) { num += (out[e] - ro[e]) * (out[e] - ro[e]); den += ro[e] * ro[e]; }
    ferr = 0;
    if (cs.hlast) {
        double n2 = 0, d2 = 0;
        for (size_t e = 0; e < hl.size(); ++e) { n2 += (hl[e] - rh[e]) * (hl[e] - rh[e]); d2 += rh[e] * rh[e]; }
        ferr = std::sqrt(n2 / std::max(d2, 1e-300));
    }
    if (flags[0] != 0) std::printf("ticket counter not reset: %u\n", flags[0]);
    return std::sqrt(num / std::max(den, 1e-300));
}

struct Case {
    int b, L, h, P, g, N;
    int d;  // 0 none, 1 (h), 2 (h, p)
    bool z, bias, init, fin, softplus, limit;
};

static double run_case(const Case& cs, std::mt19937& rng, double& ferr, int group) {
    const int b = cs.b, L = cs.L, H = cs.h, P = cs.P, G = cs.g, N = cs.N;
    std::normal_distribution<float> Nd(0.f, 1.f);
    std::uniform_real_distribution<float> U(0.f, 1.f);
    auto nrm = [&](size_t n) { std::vector<float> v(n); for (auto& x : v) x = Nd(rng); return v; };
    auto uni = [&](size_t n, float lo, float hi) { std::vector<float> v(n); for (auto& x : v) x = lo + (hi - lo) * U(rng); return v; };
    auto x = nrm((size_t)b * L * H * P), B = nrm((size_t)b * L * G * N), C = nrm((size_t)b * L * G * N);
    auto dt = cs.softplus ? uni((size_t)b * L * H, -3, 1) : uni((size_t)b * L * H, 0.001f, 0.7f);
    auto A = uni(H, -8, -0.5f), D = nrm(cs.d == 2 ? H * P : H), z = nrm((size_t)b * L * H * P);
    auto bias = cs.softplus ? uni(H, -3, 0) : uni(H, 0, 0.3f), init = nrm((size_t)b * H * P * N);
    const float lo = 0.01f, hi = 2.f;
    std::vector<float> out((size_t)b * L * H * P, NAN), fin((size_t)b * H * P * N, NAN);
    std::vector<double> ro(out.size()), rf(fin.size());
    for (int i = 0; i < b; ++i)
        for (int j = 0; j < H; ++j) {
            const int k = j / (H / G);
            std::vector<double> S((size_t)P * N);
            for (size_t e = 0; e < S.size(); ++e) S[e] = cs.init ? init[((size_t)i * H + j) * P * N + e] : 0.0;
            for (int t = 0; t < L; ++t) {
                double d_ = (double)dt[((size_t)i * L + t) * H + j] + (cs.bias ? bias[j] : 0.0);
                if (cs.softplus) d_ = d_ > 20 ? d_ : std::log1p(std::exp(d_));
                if (cs.limit) d_ = std::min<double>(std::max<double>(d_, lo), hi);
                const double a = std::exp(d_ * A[j]);
                const float* bt = &B[(((size_t)i * L + t) * G + k) * N];
                const float* ct = &C[(((size_t)i * L + t) * G + k) * N];
                for (int q = 0; q < P; ++q) {
                    const size_t xo = (((size_t)i * L + t) * H + j) * P + q;
                    double y = 0;
                    for (int n = 0; n < N; ++n) {
                        double& s = S[(size_t)q * N + n];
                        s = a * s + d_ * bt[n] * x[xo];
                        y += ct[n] * s;
                    }
                    if (cs.d) y += (cs.d == 2 ? D[j * P + q] : D[j]) * (double)x[xo];
                    if (cs.z) y *= z[xo] / (1 + std::exp(-(double)z[xo]));
                    ro[xo] = y;
                }
            }
            for (size_t e = 0; e < S.size(); ++e) rf[((size_t)i * H + j) * P * N + e] = S[e];
        }
    const int K = (L + g_q - 1) / g_q, BH = b * H;
    const int FG = group <= 0 ? K : std::min(group, K), ng = (K + FG - 1) / FG;
    std::vector<float> states((size_t)BH * K * seed::SN * seed::SP, NAN);
    std::vector<float> decay((((size_t)BH * K + 3) & ~(size_t)3) + (size_t)BH * ng * seed::SN * seed::SP, NAN);
    std::vector<unsigned> flags(1 + (size_t)(K + ng) * BH, 5u);
    flags[0] = 0;
    SeedSsdParams sp{};
    SsdParams& p = sp.s;
    p.x = x.data(); p.dt = dt.data(); p.A = A.data(); p.B = B.data(); p.C = C.data();
    p.D = cs.d ? D.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.dt_bias = cs.bias ? bias.data() : nullptr;
    p.init = cs.init ? init.data() : nullptr; p.out = out.data(); p.final_states = cs.fin ? fin.data() : nullptr;
    p.chunk_states = states.data(); p.chunk_decay = decay.data();
    p.x_sb = (long long)L * H * P; p.x_st = H * P; p.dt_sb = (long long)L * H; p.dt_st = H;
    p.B_sb = (long long)L * G * N; p.B_st = G * N; p.C_sb = p.B_sb; p.C_st = p.B_st;
    p.z_sb = p.x_sb; p.z_st = p.x_st; p.out_sb = p.x_sb; p.out_st = p.x_st;
    p.batch = b; p.seqlen = L; p.nheads = H; p.headdim = P; p.ngroups = G; p.dstate = N;
    p.d_per_channel = cs.d == 2; p.softplus = cs.softplus; p.has_limit = cs.limit; p.lo = lo; p.hi = hi;
    p.nchunks = K; p.chunk_len = g_q;
    sp.flags = flags.data(); sp.flag_base = 7; sp.group = FG;
    launch_seed(sp, K * BH);
    double num = 0, den = 0;
    for (size_t e = 0; e < out.size(); ++e) { num += (out[e] - ro[e]) * (out[e] - ro[e]); den += ro[e] * ro[e]; }
    ferr = 0;
    if (cs.fin) {
        double n2 = 0, d2 = 0;
        for (size_t e = 0; e < fin.size(); ++e) { n2 += (fin[e] - rf[e]) * (fin[e] - rf[e]); d2 += rf[e] * rf[e]; }
        ferr = std::sqrt(n2 / std::max(d2, 1e-300));
    }
    if (flags[0] != 0) std::printf("ticket counter not reset: %u\n", flags[0]);
    return std::sqrt(num / std::max(den, 1e-300));
}

int main(int argc, char** argv) {
    std::mt19937 rng(1);
    int fails = 0;
    const Case1 c1[] = {
        {2, 32, 64, 100, 1, 1, 0, true, true, true, true, true, true},
        {1, 16, 64, 400, 1, 1, 0, true, true, true, true, true, true},
        {1, 16, 64, 400, 1, 1, 1, true, true, false, false, false, false},
        {1, 16, 64, 333, 1, 1, 100, false, true, true, true, true, true},
        {1, 24, 5, 37, 3, 2, 0, true, true, true, true, true, false},
        {2, 6, 37, 1, 2, 3, 0, true, true, true, true, true, true},
        {1, 48, 16, 16, 1, 1, 2, false, true, false, true, false, true},
        {1, 16, 64, 17, 1, 1, 3, true, true, true, true, true, true},
    };
    for (const auto& c : c1) {
        double fe = 0;
        const double e = run_case1(c, rng, fe);
        const bool ok = e < 1e-5 && fe < 1e-5;
        fails += !ok;
        std::printf("scan1 %s b%d d%d N%d L%d bg%d cg%d G%d h0%d: out %.2e last %.2e\n", ok ? "ok  " : "FAIL", c.b, c.d, c.N, c.L, c.bg, c.cg,
                    c.group, c.h0, e, fe);
    }
    if (argc > 1) return fails != 0;
    const Case cases[] = {
        {2, 100, 6, 64, 1, 64, 1, false, true, false, true, true, false},
        {1, 1, 1, 1, 1, 1, 2, true, true, true, true, true, true},
        {1, 31, 2, 5, 1, 7, 2, true, false, true, true, false, false},
        {1, 32, 2, 64, 2, 64, 0, false, false, false, true, false, false},
        {1, 33, 4, 40, 2, 17, 2, true, true, true, true, true, true},
        {2, 130, 3, 64, 3, 64, 1, true, true, true, true, true, false},
        {1, 97, 2, 3, 1, 64, 2, false, true, true, true, false, true},
        {1, 200, 1, 64, 1, 33, 1, true, true, true, true, true, true},
        {1, 400, 2, 64, 1, 64, 2, true, true, true, true, true, true},
        {1, 333, 1, 24, 1, 40, 1, false, true, false, true, true, false},
    };
    for (const int q : {16, 32})
    for (const int group : {0, 1, 2, 3})
    for (const auto& c : cases) {
        g_q = q;
        double fe = 0;
        const double e = run_case(c, rng, fe, group);
        const bool ok = e < 1e-5 && fe < 1e-5;
        fails += !ok;
        std::printf("Q%d G%d %s b%d L%d h%d P%d g%d N%d d%d z%d bias%d init%d sp%d lim%d: out %.2e final %.2e\n", q, group, ok ? "ok  " : "FAIL", c.b, c.L,
                    c.h, c.P, c.g, c.N, c.d, c.z, c.bias, c.init, c.softplus, c.limit, e, fe);
    }
    std::printf("%d failures\n", fails);
    return fails != 0;
}
