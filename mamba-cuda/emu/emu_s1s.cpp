// A host emulator for the seed-shape Mamba-1 forward (kernels/scan1_seed.cu, `s1s_fwd`,
// f32), in the manner of emu_lm1.cpp: every CUDA thread of a block is a std::thread,
// blocks run one after another, a cp.async lands at the wait_group that covers it
// (emu_cuda.h; zero fill past the source bytes); shared memory starts as NaN garbage. Checks
// against an f64 reference.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_s1s.cpp -o /tmp/emu_s1s && /tmp/emu_s1s
#include <algorithm>
#include <atomic>
#include <barrier>
#include <map>
#include <mutex>
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

struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(8) float2 {
    float x, y;
};
struct alignas(8) uint2 {
    unsigned x, y;
};

static std::unique_ptr<std::barrier<>> g_block_bar;
alignas(16) static float g_smem[1 << 17];

#define DYN_SMEM(name) float* name = g_smem

inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline unsigned __ballot_sync(unsigned, bool v) { return v; }
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline float __shfl_sync(unsigned, float v, int) { return v; }
// A real xor shuffle (the `_g64` output pass): per-warp barriers around an exchange slot.
static std::vector<std::unique_ptr<std::barrier<>>> g_warp_bar;
static float g_xchg[1024];
inline float __shfl_xor_sync(unsigned, float v, int m) {
    const unsigned t = threadIdx.x;
    auto& b = *g_warp_bar[t / 32];
    g_xchg[t] = v;
    b.arrive_and_wait();
    const float r = g_xchg[(t & ~31u) | ((t & 31u) ^ (unsigned)m)];
    b.arrive_and_wait();
    return r;
}
using std::max;
using std::min;

// cp.async as the hardware may do it (emu_cuda.h's model: the copies of a group land when a
// wait_group of the thread covers it), so a read of a stage before its wait sees the NaN
// garbage or an older tile.
inline void emu_cp_async(void* dst, const void* src, int bytes, int size) { emu_cp(dst, src, bytes, size); }

inline void __syncwarp() { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
// mbarriers (IL 6 / 7): the 8 bytes hold (completed phases << 32 | pending arrivals), the
// expected count in a side table; a cp.async arrival lands the thread's pending copies
// first (the copies of a tile land when its last staging thread arrives, never earlier).
static std::mutex g_mb_mu;
static std::map<void*, unsigned> g_mb_count;
inline void emu_mb_init(unsigned long long* b, unsigned count) {
    std::lock_guard<std::mutex> lk(g_mb_mu);
    g_mb_count[b] = count;
    std::atomic_ref<unsigned long long>(*b).store(count);
}
inline void emu_mb_arrive(unsigned long long* b) {
    std::this_thread::yield();
    std::lock_guard<std::mutex> lk(g_mb_mu);
    std::atomic_ref<unsigned long long> a(*b);
    const unsigned long long v = a.load();
    unsigned pend = (unsigned)v, ph = (unsigned)(v >> 32);
    if (pend == 0) { std::printf("mbarrier over-arrival\n"); std::abort(); }
    if (--pend == 0) { ++ph; pend = g_mb_count[b]; }
    a.store(((unsigned long long)ph << 32) | pend);
}
inline void emu_mb_cp_arrive(unsigned long long* b) {
    emu_cp_wait_all();
    emu_mb_arrive(b);
}
inline void emu_mb_wait(unsigned long long* b, unsigned parity) {
    std::atomic_ref<unsigned long long> a(*b);
    for (long it = 0;; ++it) {
        const unsigned ph = (unsigned)(a.load() >> 32);
        if ((ph & 1) != parity) return;
        std::this_thread::yield();
        if (it > 200000000L) { std::printf("mbarrier wait timed out\n"); std::abort(); }
    }
}

#include "../kernels/scan1_seed.cu"

static int g_form = 2;
void launch(unsigned gx, unsigned gy, unsigned threads, const Scan1Params& p) {
    blockDim = {threads, 1, 1};
    gridDim = {gx, gy, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            std::memset(g_smem, 0xff, sizeof(g_smem));
            g_block_bar = std::make_unique<std::barrier<>>(threads);
            g_warp_bar.clear();
            for (unsigned w = 0; w < (threads + 31) / 32; ++w)
                g_warp_bar.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - 32 * w)));
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    threadIdx = {t, 0, 0};
                    g_cp_groups.clear();
                    g_cp_open.clear();
                    blockIdx = {bx, by, 0};
                    if (g_form == 1) s1s_fwd<float>(p);
                    else if (g_form == 3) s1s_fwd2<float, 16, true>(p);
                    else if (g_form == 4) s1s_fwd2<float, 32, false>(p);
                    else if (g_form == 5) s1s_fwd2<float, 32, true>(p);
                    else if (g_form == 6) s1s_fwd2<float, 64, false>(p);
                    else if (g_form == 7) s1s_fwd3<float>(p);
                    else if (g_form == 8) s1s_fwd2<float, 32, false, true>(p);
                    else if (g_form == 9) s1s_fwd5<float>(p);
                    else if (g_form == 10) s1s_fwd2<float, 32, false, false, 1>(p);
                    else if (g_form == 11) s1s_fwd2<float, 32, false, false, 2>(p);
                    else if (g_form == 12) s1s_fwd2<float, 32, false, false, 3>(p);
                    else if (g_form == 13) s1s_fwd2<float, 32, false, false, 4>(p);
                    else if (g_form == 14) s1s_fwd2<float, 32, false, false, 5>(p);
                    else if (g_form == 15) s1s_fwd2<float, 32, false, false, 6>(p);
                    else if (g_form == 16) s1s_fwd2<float, 32, false, false, 7>(p);
                    else if (g_form == 17) s1s_fwd2<float, 32, false, false, 8>(p);
                    else if (g_form == 18) s1s_fwd2<float, 32, false, false, 9>(p);
                    else if (g_form == 19) s1s_fwd2<float, 32, false, false, 10>(p);
                    else s1s_fwd2<float, 16, false>(p);
                });
            for (auto& t : ts) t.join();
        }
}

struct Case {
    int b, d, N, L, CPB, bg, cg, vec;
    bool h0, hlast, z, D, bias, softplus;
};

static double run_case(const Case& cs, std::mt19937& rng) {
    const int b = cs.b, d = cs.d, N = cs.N, L = cs.L;
    std::uniform_real_distribution<float> U(-1.f, 1.f);
    auto rnd = [&](size_t n, float sc, float off) {
        std::vector<float> v(n);
        for (auto& x : v) x = off + sc * U(rng);
        return v;
    };
    const int bgn = cs.bg, cgn = cs.cg;
    auto u = rnd((size_t)b * d * L, 1, 0), delta = rnd((size_t)b * d * L, 0.5f, cs.softplus ? -1.f : 0.6f);
    auto A = rnd((size_t)d * N, 0.5f, -0.8f);
    auto B = rnd((size_t)b * bgn * N * L, 1, 0);
    auto C = rnd((size_t)b * cgn * N * L, 1, 0);
    auto D = rnd(d, 1, 0), z = rnd((size_t)b * d * L, 2, 0), bias = rnd(d, 0.3f, 0), h0 = rnd((size_t)b * d * N, 1, 0);
    std::vector<float> out((size_t)b * d * L, NAN), hl((size_t)b * d * N, NAN);

    std::vector<double> ro((size_t)b * d * L), rh((size_t)b * d * N);
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
                    const double bv = B[(((size_t)i * bgn + c / (d / bgn)) * N + n) * L + t];
                    const double cv = C[(((size_t)i * cgn + c / (d / cgn)) * N + n) * L + t];
                    h[n] = std::exp(dt * A[(size_t)c * N + n]) * h[n] + dt * bv * u[o];
                    y += cv * h[n];
                }
                if (cs.D) y += D[c] * u[o];
                if (cs.z) y *= z[o] / (1 + std::exp(-(double)z[o]));
                ro[o] = y;
            }
            for (int n = 0; n < N; ++n) rh[((size_t)i * d + c) * N + n] = h[n];
        }

    const int seg = std::gcd(d / bgn, d / cgn);
    const int cpb = (g_form == 6 || g_form == 7 || g_form == 9) ? std::min(cs.CPB, 6) : cs.CPB;
    const int bps = (seg + cpb - 1) / cpb, nseg = d / seg;
    Scan1Params p{};
    p.u = u.data(); p.delta = delta.data(); p.A = A.data(); p.B = B.data(); p.C = C.data();
    p.D = cs.D ? D.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.delta_bias = cs.bias ? bias.data() : nullptr;
    p.h0 = cs.h0 ? h0.data() : nullptr; p.out = out.data(); p.hlast = cs.hlast ? hl.data() : nullptr;
    p.batch = b; p.dim = d; p.seqlen = L; p.dstate = N; p.b_groups = cs.bg; p.c_groups = cs.cg;
    p.softplus = cs.softplus; p.seg = seg; p.cb = cpb; p.G = 16; p.blocks_per_seg = bps; p.nchunks = 1; p.chunk_len = L;
    p.async_copy = cs.vec && L % 4 == 0;
    const int gt = g_form == 6 ? 64 : g_form >= 4 ? 32 : 16;  // 7, 8, 10-19: 32
    if (s1s2_smem_bytes<float>(cpb, gt) + 64 + 576 * cpb > (int)sizeof(g_smem)) { std::printf("smem too big\n"); return 1e30; }
    if (g_form == 9 && s1s5_smem_bytes<float>(cpb, 32 * ((L + 63) / 64)) > (int)sizeof(g_smem)) { std::printf("smem too big\n"); return 1e30; }
    launch(nseg * bps, b, g_form == 7 ? 32 * (cpb + S1S_HW) : g_form == 9 ? 64 * cpb : gt * cpb, p);
    double num = 0, den = 0, hn = 0, hd = 0;
    for (size_t k = 0; k < ro.size(); ++k) num += (out[k] - ro[k]) * (out[k] - ro[k]), den += ro[k] * ro[k];
    if (cs.hlast)
        for (size_t k = 0; k < rh.size(); ++k) hn += (hl[k] - rh[k]) * (hl[k] - rh[k]), hd += rh[k] * rh[k];
    const double e = std::max(std::sqrt(num / den), cs.hlast ? std::sqrt(hn / hd) : 0.0);
    return std::isnan(e) ? 1e30 : e;
}

int main() {
    std::mt19937 rng(7);
    const Case cases[] = {
        // b d N L CPB bg cg vec h0 hlast z D bias softplus
        {2, 16, 64, 100, 8, 1, 1, 1, true, true, true, true, true, true},
        {2, 16, 64, 100, 4, 1, 1, 0, true, true, true, true, true, true},
        {1, 20, 64, 75, 8, 1, 1, 0, true, true, true, true, true, true},
        {1, 20, 37, 128, 8, 1, 1, 1, false, true, false, false, false, false},
        {1, 12, 5, 33, 2, 1, 1, 1, true, true, true, true, true, true},
        {1, 12, 1, 1, 8, 1, 1, 1, true, true, true, true, true, true},
        {1, 24, 16, 64, 8, 3, 2, 1, true, true, true, true, true, false},
        {2, 30, 64, 400, 8, 2, 3, 1, true, true, true, true, true, true},
        {1, 9, 64, 37, 16, 1, 1, 0, true, true, true, true, true, true},
        {1, 8, 64, 800, 8, 1, 1, 1, false, true, true, true, true, true},
        {1, 3, 64, 96, 1, 1, 1, 1, true, true, true, true, true, true},
        {1, 5, 64, 97, 3, 1, 1, 0, true, true, false, true, false, true},
        {1, 7, 64, 128, 3, 1, 1, 1, true, true, true, false, true, false},
        {1, 4, 20, 64, 4, 1, 1, 1, true, true, true, true, true, true},
        {1, 12, 64, 200, 6, 1, 1, 1, true, true, true, true, true, true},
        {1, 7, 37, 100, 6, 1, 1, 1, true, true, true, false, true, true},
    };
    int bad = 0;
    const char* fe = std::getenv("EMU_FORMS");  // e.g. "6" or "46"; "a" .. "j": forms 10 .. 19 (`_g32i` .. `_g32s`)
    std::vector<int> forms;
    for (const char* c = fe ? fe : "123456789abcdefghij"; *c; ++c) forms.push_back(*c >= 'a' ? 10 + (*c - 'a') : *c - '0');
    for (const int form : forms)
    for (const auto& cs : cases) {
        g_form = form;
        const double e = run_case(cs, rng);
        const bool ok = e < 1e-5;
        bad += !ok;
        std::printf("%s form%d b%d d%d N%d L%d CPB%d bg%d cg%d vec%d: rel err %.3g\n", ok ? "ok  " : "FAIL", form, cs.b, cs.d,
                    cs.N, cs.L, cs.CPB, cs.bg, cs.cg, cs.vec, e);
    }
    return bad ? 1 : 0;
}
