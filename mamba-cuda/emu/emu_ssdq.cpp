// A host emulator for kernels/ssd_seed2.cu (`ssdq_*`, f32): every CUDA thread of a block
// is a std::thread, blocks run one after another; a cp.async lands at the wait that
// covers it (emu_cuda.h; zero fill where the source size is 0); the mbarriers are a
// counter and a phase per barrier (waits spin), and arrivals sometimes yield, so the roles
// drift against each other.
// Checks outputs and final states against an f64 recurrence (SPEC 2), over shapes,
// options, block sizes, ring depths and both step forms.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_ssdq.cpp -o /tmp/emu_ssdq && /tmp/emu_ssdq && /tmp/emu_ssdq f
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <memory>
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
using std::max;
using std::min;

static std::unique_ptr<std::barrier<>> g_block_bar;
alignas(16) static unsigned char g_smem[1 << 18];
inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
static std::unique_ptr<std::barrier<>> g_warp_bar[32];
static float g_shf[32][32];
static int g_shi[32][32];
inline float __shfl_up_sync(unsigned, float v, int d) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shf[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const float r = g_shf[w][l >= d ? l - d : l];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
inline bool __all_sync(unsigned, bool v) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shi[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    bool r = true;
    for (int e = 0; e < 32; ++e) r = r && g_shi[w][e];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
static bool g_misaligned = false;
inline void ssdq_cp16(void* smem, const void* gmem, bool valid) {
    if (reinterpret_cast<uintptr_t>(smem) % 16 || reinterpret_cast<uintptr_t>(gmem) % 16) g_misaligned = true;
    emu_cp(smem, gmem, valid ? 16 : 0, 16);
}
inline void ssdq_cp4(void* smem, const void* gmem, bool valid) {
    emu_cp(smem, gmem, valid ? 4 : 0, 4);
}
inline void ssdq_commit() { emu_cp_commit(); }
inline void ssdr_wait1() { emu_cp_wait(1); }
template <int NW>
inline void ssdq_wait() { emu_cp_wait(NW); }
inline void __syncwarp() { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
inline float __shfl_sync(unsigned, float v, int src) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shf[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const float r = g_shf[w][src];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline unsigned __ballot_sync(unsigned, bool) { return 0; }  // (common.cuh's look-back: unused here)
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline void ssdr_wait_all() { emu_cp_wait(0); }


// mbarriers: the 8 bytes hold (completed phases << 32 | pending arrivals); the expected
// count per barrier in a side table.
static std::mutex g_mb_mu;
static std::map<void*, unsigned> g_mb_count;
static std::atomic<unsigned> g_mb_rng{1};
inline void mb_init(unsigned long long* b, unsigned count) {
    std::lock_guard<std::mutex> lk(g_mb_mu);
    g_mb_count[b] = count;
    std::atomic_ref<unsigned long long>(*b).store(count);
}
inline void mb_arrive(unsigned long long* b) {
    if ((g_mb_rng.fetch_add(1) * 2654435761u) % 7 == 0) std::this_thread::yield();
    std::lock_guard<std::mutex> lk(g_mb_mu);
    std::atomic_ref<unsigned long long> a(*b);
    unsigned long long v = a.load();
    unsigned pend = (unsigned)v, ph = (unsigned)(v >> 32);
    if (pend == 0) { std::printf("mbarrier over-arrival\n"); std::abort(); }
    if (--pend == 0) { ++ph; pend = g_mb_count[b]; }
    a.store(((unsigned long long)ph << 32) | pend);
}
// cp.async.mbarrier.arrive.noinc: the arrival once every earlier copy of the thread has landed.
inline void mb_cp_arrive(unsigned long long* b) {
    emu_cp_wait_all();
    mb_arrive(b);
}
inline void mb_wait(unsigned long long* b, unsigned parity) {
    std::atomic_ref<unsigned long long> a(*b);
    for (long it = 0;; ++it) {
        const unsigned ph = (unsigned)(a.load() >> 32);
        if ((ph & 1) != parity) return;
        std::this_thread::yield();
        if (it > 200000000L) { std::printf("mbarrier wait timed out\n"); std::abort(); }
    }
}
#include "../kernels/ssd_seed2.cu"

struct Case {
    int b, L, h, P, g, N;
    int d;  // 0 none, 1 (h), 2 (h, p)
    bool z, bias, init, fin, softplus, limit, seq;
};

static bool g_fix = false;
static int g_ns = 4;
// Seed-shape variants (EMU_VAR): 1 two epilogue warps, 2 two rows per thread, 3 both.
static int g_var = std::getenv("EMU_VAR") ? std::atoi(std::getenv("EMU_VAR")) : 0;
static double run_case(const Case& cs, std::mt19937& rng, double& ferr, int warps, int slow, bool vec_ok) {
    const int b = cs.b, L = cs.L, H = cs.h, P = cs.P, G = cs.g, N = cs.N;
    std::normal_distribution<float> Nd(0.f, 1.f);
    std::uniform_real_distribution<float> U(0.f, 1.f);
    auto nrm = [&](size_t n) { std::vector<float> v(n); for (auto& x : v) x = Nd(rng); return v; };
    auto uni = [&](size_t n, float lo, float hi) { std::vector<float> v(n); for (auto& x : v) x = lo + (hi - lo) * U(rng); return v; };
    // 16-byte aligned buffers (std::vector<float> of this size is, with glibc).
    auto x = nrm((size_t)b * L * H * P), B = nrm((size_t)b * L * G * N), C = nrm((size_t)b * L * G * N);
    auto dt = cs.softplus ? uni((size_t)b * L * H, -3, 1) : uni((size_t)b * L * H, 0.001f, 0.7f);
    auto A = uni(H, -8, -0.5f), D = nrm(cs.d == 2 ? H * P : H), z = nrm((size_t)b * L * H * P);
    auto bias = uni(H, -1, 0.5f), init = nrm((size_t)b * H * P * N);
    std::vector<int> seq((size_t)b * L);
    for (int i = 0; i < b; ++i) {
        int id = 0;
        for (int t = 0; t < L; ++t) {
            if (t > 0 && U(rng) < 0.05f) ++id;
            seq[(size_t)i * L + t] = id;
        }
    }
    const float lo = 0.001f, hi = 1.5f;
    std::vector<float> out((size_t)b * L * H * P, NAN), fin((size_t)b * H * P * N, NAN);
    std::vector<double> ro(out.size()), rf(fin.size());
    for (int i = 0; i < b; ++i)
        for (int j = 0; j < H; ++j) {
            const int k = j / (H / G);
            std::vector<double> S((size_t)P * N);
            for (size_t e = 0; e < S.size(); ++e) S[e] = cs.init ? init[((size_t)i * H + j) * P * N + e] : 0.0;
            for (int t = 0; t < L; ++t) {
                double d = dt[((size_t)i * L + t) * H + j] + (cs.bias ? bias[j] : 0.0);
                if (cs.softplus) d = d > 20 ? d : std::log1p(std::exp(d));
                if (cs.limit) d = std::min(std::max(d, (double)lo), (double)hi);
                double a = std::exp(d * A[j]);
                if (cs.seq && t > 0 && seq[(size_t)i * L + t] != seq[(size_t)i * L + t - 1]) a = 0;
                for (int q = 0; q < P; ++q) {
                    const double xv = x[(((size_t)i * L + t) * H + j) * P + q];
                    double y = 0;
                    for (int n = 0; n < N; ++n) {
                        const size_t bi = (((size_t)i * L + t) * G + k) * N + n;
                        double& s = S[(size_t)q * N + n];
                        s = a * s + d * xv * B[bi];
                        y += C[bi] * s;
                    }
                    if (cs.d == 1) y += D[j] * xv;
                    if (cs.d == 2) y += D[j * P + q] * xv;
                    const size_t o = (((size_t)i * L + t) * H + j) * P + q;
                    if (cs.z) y *= z[o] / (1 + std::exp(-(double)z[o]));
                    ro[o] = y;
                }
            }
            for (size_t e = 0; e < S.size(); ++e) rf[((size_t)i * H + j) * P * N + e] = S[e];
        }
    SsdParams p{};
    p.x = x.data(); p.dt = dt.data(); p.A = A.data(); p.B = B.data(); p.C = C.data();
    p.D = cs.d ? D.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.dt_bias = cs.bias ? bias.data() : nullptr;
    p.init = cs.init ? init.data() : nullptr; p.seq_idx = cs.seq ? seq.data() : nullptr; p.out = out.data();
    p.final_states = cs.fin ? fin.data() : nullptr;
    p.x_sb = (long long)L * H * P; p.x_st = H * P; p.dt_sb = (long long)L * H; p.dt_st = H;
    p.B_sb = (long long)L * G * N; p.B_st = G * N; p.C_sb = p.B_sb; p.C_st = p.B_st;
    p.z_sb = p.x_sb; p.z_st = p.x_st; p.out_sb = p.x_sb; p.out_st = p.x_st;
    p.batch = b; p.seqlen = L; p.nheads = H; p.headdim = P; p.ngroups = G; p.dstate = N;
    p.d_per_channel = cs.d == 2; p.softplus = cs.softplus; p.has_limit = cs.limit; p.lo = lo; p.hi = hi;
    // The host's shape (seed.rs ssdr_launch).
    int gth = 1;
    while (gth * 4 < N) gth *= 2;
    gth = std::max(gth, 4);
    const int ew = g_fix && warps == 2 && (g_var & 1) ? 2 : 1;
    const int threads = (g_fix && warps == 2 && g_var >= 2 ? 32 : warps * 32) + 64 + 32 * ew, rb = warps * 32 / gth;
    p.qb = rb; p.G = gth;
    p.async_copy = (vec_ok && N % 4 == 0) | ((vec_ok && P % 4 == 0 && rb % 4 == 0) << 1);
    p.mode = slow;
    blockDim = {(unsigned)threads, 1, 1};
    gridDim = {(unsigned)((P + rb - 1) / rb), (unsigned)H, (unsigned)b};
    for (unsigned bz = 0; bz < gridDim.z; ++bz)
        for (unsigned by = 0; by < gridDim.y; ++by)
            for (unsigned bx = 0; bx < gridDim.x; ++bx) {
                std::memset(g_smem, 0xff, sizeof(g_smem));  // NaN garbage
                g_block_bar = std::make_unique<std::barrier<>>(threads);
                for (int w = 0; w < threads / 32; ++w) g_warp_bar[w] = std::make_unique<std::barrier<>>(32);
                std::vector<std::thread> ts;
                for (int t = 0; t < threads; ++t)
                    ts.emplace_back([&, t] {
                        threadIdx = {(unsigned)t, 0, 0};
                        blockIdx = {bx, by, bz};
                        float* sm = reinterpret_cast<float*>(g_smem);
                        if (g_fix && gth == 16 && warps == 2 && g_var == 1) ssdq_body<float, 16, 2, 3, 2>(p, sm);
                        else if (g_fix && gth == 16 && warps == 2 && g_var == 2) ssdq_body<float, 16, 1, 3, 1, true>(p, sm);
                        else if (g_fix && gth == 16 && warps == 2 && g_var == 3) ssdq_body<float, 16, 1, 3, 2, true>(p, sm);
                        else if (g_fix && gth == 16 && warps == 2 && g_ns == 4) ssdq_body<float, 16, 2, 4>(p, sm);
                        else if (g_fix && gth == 16 && warps == 2) ssdq_body<float, 16, 2, 3>(p, sm);
                        else if (g_fix && gth == 16 && warps == 3 && g_ns == 4) ssdq_body<float, 16, 3, 4>(p, sm);
                        else if (g_fix && gth == 16 && warps == 3) ssdq_body<float, 16, 3, 3>(p, sm);
                        else if (g_fix && gth == 16 && warps == 4 && g_ns == 4) ssdq_body<float, 16, 4, 4>(p, sm);
                        else if (g_fix && gth == 16 && warps == 4) ssdq_body<float, 16, 4, 3>(p, sm);
                        else ssdq_body<float, 0, 0, 3>(p, sm);
                    });
                for (auto& t : ts) t.join();
            }
    double num = 0, den = 0;
    for (size_t e = 0; e < out.size(); ++e) { num += (out[e] - ro[e]) * (out[e] - ro[e]); den += ro[e] * ro[e]; }
    ferr = 0;
    if (cs.fin) {
        double n2 = 0, d2 = 0;
        for (size_t e = 0; e < fin.size(); ++e) { n2 += (fin[e] - rf[e]) * (fin[e] - rf[e]); d2 += rf[e] * rf[e]; }
        ferr = std::sqrt(n2 / std::max(d2, 1e-300));
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

// Cases out of tolerance: the exit status.
static int g_bad = 0;
int main(int argc, char** argv) {
    std::mt19937 rng(5);
    g_fix = argc > 1 && argv[1][0] == 'f';
    const bool only16 = g_fix;
    const bool quick = std::getenv("EMU_QUICK") != nullptr;
    std::printf("variant: %s\n", g_fix ? "ssdq_f32_g16_w2 (ring 4 and 3)" : "ssdq (generic, ring 3)");
    const Case cases[] = {
        {1, 1, 1, 1, 1, 1, 0, false, false, false, true, false, false, false},
        {1, 31, 2, 5, 1, 7, 1, true, true, true, true, true, false, false},
        {1, 70, 2, 64, 1, 64, 2, true, true, true, true, true, true, true},
        {2, 33, 3, 40, 3, 17, 1, false, true, true, true, true, true, true},
        {1, 97, 4, 3, 2, 64, 2, true, false, true, true, false, false, false},
        {1, 45, 2, 12, 2, 100, 1, true, true, true, true, true, false, true},
        {1, 64, 1, 66, 1, 128, 1, false, true, false, true, true, false, false},
        {2, 100, 2, 64, 1, 64, 1, false, true, false, true, true, false, false},
        {1, 130, 2, 16, 1, 64, 0, false, false, true, true, false, false, false},
        {1, 1000, 1, 4, 1, 64, 1, true, true, true, true, true, true, false},
        {1, 800, 1, 8, 1, 64, 2, false, true, true, true, true, false, true},
    };
    double worst = 0;
    int n = 0;
    for (const auto& cs : cases)
        for (int warps : {2, 1, 4, 8, 3})
            for (int slow : {0, 1})
                for (bool vec : {true, false})
                    for (int ns : {4, 3}) {
                    if (cs.L * cs.b * cs.h > 300 && (warps == 8 || !vec)) continue;
                    if (only16 && (cs.N <= 32 || cs.N > 64 || warps == 1 || warps == 8)) continue;
                    if (!only16 && warps == 3) continue;
                    if (!only16 && ns == 3) continue;
                    if (quick && (slow || warps == 8 || (warps == 4 && cs.L > 100))) continue;
                    g_ns = ns;
                    double fe = 0;
                    g_misaligned = false;
                    const double e = run_case(cs, rng, fe, warps, slow, vec);
                    ++n;
                    worst = std::max({worst, e, fe});
                    const bool bad = !(e < 1e-5) || !(fe < 1e-5) || g_misaligned;
                    g_bad += bad;
                    if (bad || n % 8 == 1)
                        std::printf("%s b%d L%d h%d p%d g%d N%d warps %d slow %d vec %d ns %d: out %.2e fin %.2e%s\n", bad ? "FAIL" : "ok",
                                    cs.b, cs.L, cs.h, cs.P, cs.g, cs.N, warps, slow, vec, ns, e, fe, g_misaligned ? " MISALIGNED" : "");
                }
    std::printf("%d cases, worst %.2e\n", n, worst);
    return g_bad ? 1 : 0;
}
