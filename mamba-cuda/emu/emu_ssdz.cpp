// A host emulator for kernels/ssd_seed3.cu (`ssdz_f32`): every CUDA thread is a std::thread;
// the CL = 8 blocks of a cluster (the chunks of one (batch, head)) run together, each
// with its own shared memory, so the cluster barriers (a std::barrier over all 8 * 512
// threads, split arrive / wait) and the DSMEM reads (`ssdz_map`: the same offset in
// another block's shared memory) are exercised; clusters run one after another. Checks
// outputs and final states against an f64 recurrence (SPEC 2).
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_ssdz.cpp -o /tmp/emu_ssdz && /tmp/emu_ssdz
// (`EMU_QUICK=1`: fewer cases; `EMU_V=0..4, 6, 7` (template V of `ssdz_body`), 8 (`ssdz_tc_body`): the kernel variant;
// `EMU_SEQ=1`: packed sequences; `EMU_SEG=K`: each call in K time segments, as the host runs L > 1024.)
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "emu_cuda.h"

struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
using std::max;
using std::min;

constexpr int EMU_CL = 8, EMU_NT = 512;
alignas(16) static unsigned char g_smem[EMU_CL][1 << 18];
static std::unique_ptr<std::barrier<>> g_bar[EMU_CL];
static std::unique_ptr<std::barrier<>> g_wbar[EMU_CL][EMU_NT / 32];
static std::unique_ptr<std::barrier<>> g_cbar;
thread_local std::barrier<>::arrival_token* g_tok = nullptr;
static double g_shd[EMU_CL][EMU_NT / 32][32];

inline void __syncthreads() { g_bar[blockIdx.x]->arrive_and_wait(); }
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
inline double __shfl_up_sync(unsigned, double v, int d) {
    const int b = blockIdx.x, w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shd[b][w][l] = v;
    g_wbar[b][w]->arrive_and_wait();
    const double r = g_shd[b][w][l >= d ? l - d : l];
    g_wbar[b][w]->arrive_and_wait();
    return r;
}
inline double __shfl_sync(unsigned, double v, int src) {
    const int b = blockIdx.x, w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shd[b][w][l] = v;
    g_wbar[b][w]->arrive_and_wait();
    const double r = g_shd[b][w][src];
    g_wbar[b][w]->arrive_and_wait();
    return r;
}
template <typename V>
inline V __ldcg(const V* p) { return *p; }
template <typename V>
inline V __ldg(const V* p) { return *p; }
template <typename V>
inline void __stcg(V* p, V v) { *p = v; }
// mma.sync m16n8k8 tf32 (row.col) for `ssdz_f32_tc`: the lanes of a warp publish their
// fragments, each lane computes its four outputs in the PTX layouts from the operands
// truncated to tf32 (as the tensor cores read them), in f64, then rounds to f32.
static unsigned g_ma[EMU_CL][EMU_NT / 32][32][4], g_mb[EMU_CL][EMU_NT / 32][32][2];
inline void emu_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    const int bx = blockIdx.x, w = threadIdx.x / 32, l = threadIdx.x % 32, g = l >> 2, c = l & 3;
    for (int e = 0; e < 4; ++e) g_ma[bx][w][l][e] = a[e];
    for (int e = 0; e < 2; ++e) g_mb[bx][w][l][e] = b[e];
    g_wbar[bx][w]->arrive_and_wait();
    auto rd = [](unsigned u) { return __uint_as_float(u & 0xffffe000u); };
    auto A = [&](int m, int k) { return rd(g_ma[bx][w][(m % 8) * 4 + k % 4][(m >= 8) + 2 * (k >= 4)]); };
    auto B = [&](int k, int n) { return rd(g_mb[bx][w][n * 4 + k % 4][k >= 4]); };
    float r[4];
    for (int e = 0; e < 4; ++e) {
        const int m = g + (e >> 1) * 8, n = 2 * c + (e & 1);
        double acc = d[e];
        for (int k = 0; k < 8; ++k) acc += (double)A(m, k) * B(k, n);
        r[e] = (float)acc;
    }
    g_wbar[bx][w]->arrive_and_wait();
    for (int e = 0; e < 4; ++e) d[e] = r[e];
}
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline unsigned __ballot_sync(unsigned, bool) { return 0; }  // (common.cuh's look-back: unused here)
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline void ssdz_cluster_arrive() {
    if (g_tok) { std::printf("cluster arrive twice\n"); std::abort(); }
    g_tok = new std::barrier<>::arrival_token(g_cbar->arrive());
}
inline void ssdz_cluster_wait() {
    if (!g_tok) { std::printf("cluster wait without arrive\n"); std::abort(); }
    g_cbar->wait(std::move(*g_tok));
    delete g_tok;
    g_tok = nullptr;
}
template <typename V>
inline const V* ssdz_map(const V* ptr, int rank) {
    const unsigned char* me = g_smem[blockIdx.x];
    const std::ptrdiff_t off = reinterpret_cast<const unsigned char*>(ptr) - me;
    if (off < 0 || off >= (std::ptrdiff_t)sizeof(g_smem[0]) || rank < 0 || rank >= EMU_CL) {
        std::printf("bad map\n");
        std::abort();
    }
    return reinterpret_cast<const V*>(g_smem[rank] + off);
}
#include "../kernels/ssd_seed3.cu"

struct Case {
    int b, L, h, P, g, N;
    int d;  // 0 none, 1 (h), 2 (h, p)
    bool z, bias, init, fin, softplus, limit;
};

// EMU_SEG=K: each call in K time segments (as the host runs L > 1024; 1: one call).
static const int g_nseg = std::getenv("EMU_SEG") ? std::max(1, std::atoi(std::getenv("EMU_SEG"))) : 1;
// EMU_V: the kernel variant (template V of ssdz_body: 0-4, 6, 7).
static int g_v = std::getenv("EMU_V") ? std::atoi(std::getenv("EMU_V")) : 0;
static double run_case(const Case& cs, std::mt19937& rng, double& ferr) {
    const int b = cs.b, L = cs.L, H = cs.h, P = cs.P, G = cs.g, N = cs.N;
    std::normal_distribution<float> Nd(0.f, 1.f);
    std::uniform_real_distribution<float> U(0.f, 1.f);
    auto nrm = [&](size_t n) { std::vector<float> v(n); for (auto& x : v) x = Nd(rng); return v; };
    auto uni = [&](size_t n, float lo, float hi) { std::vector<float> v(n); for (auto& x : v) x = lo + (hi - lo) * U(rng); return v; };
    auto x = nrm((size_t)b * L * H * P), B = nrm((size_t)b * L * G * N), C = nrm((size_t)b * L * G * N);
    auto dt = cs.softplus ? uni((size_t)b * L * H, -3, 1) : uni((size_t)b * L * H, 0.001f, 0.7f);
    auto A = uni(H, -8, -0.5f), D = nrm(cs.d == 2 ? H * P : H), z = nrm((size_t)b * L * H * P);
    auto bias = uni(H, -1, 0.5f), init = nrm((size_t)b * H * P * N);
    const float lo = 0.001f, hi = 1.5f;
    // EMU_SEQ=1: packed sequences (seq_idx; the scan's resets, fifty-fifth session), starting
    // at steps 1, 2, 63, 64, 65, 127, 128 and 250 inside L and at 5% of the others.
    const bool seqs = std::getenv("EMU_SEQ") && std::atoi(std::getenv("EMU_SEQ")) == 1;
    // With EMU_SEG: even rows also start a sequence at each segment's first step, odd rows
    // one step before and after it but not there (the state passed between segments kept).
    const int nsg = g_nseg;
    const int sgl = ((L + nsg - 1) / nsg + 3) / 4 * 4;
    std::vector<int> ids((size_t)b * L, 0);
    for (int i = 0; i < b && seqs; ++i) {
        int id = 0;
        for (int t = 1; t < L; ++t) {
            const bool edge = t == 1 || t == 2 || t == 63 || t == 64 || t == 65 || t == 127 || t == 128 || t == 250;
            const int ts = nsg > 1 ? t % sgl : -1;
            const bool sedge = (i % 2 == 0) ? ts == 0 : (ts == 1 || ts == sgl - 1);
            const bool keep = nsg > 1 && i % 2 == 1 && ts == 0;
            const bool r = U(rng) < 0.05f;
            id += !keep && (edge || sedge || r);
            ids[(size_t)i * L + t] = id;
        }
    }
    std::vector<float> out((size_t)b * L * H * P, NAN), fin((size_t)b * H * P * N, NAN);
    std::vector<double> ro(out.size()), rf(fin.size());
    for (int i = 0; i < b; ++i)
        for (int j = 0; j < H; ++j) {
            const int k = j / (H / G);
            std::vector<double> S((size_t)P * N);
            for (size_t e = 0; e < S.size(); ++e) S[e] = cs.init ? init[((size_t)i * H + j) * P * N + e] : 0.0;
            for (int t = 0; t < L; ++t) {
                if (t > 0 && ids[(size_t)i * L + t] != ids[(size_t)i * L + t - 1]) std::fill(S.begin(), S.end(), 0.0);
                double d = dt[((size_t)i * L + t) * H + j] + (cs.bias ? bias[j] : 0.0);
                if (cs.softplus) d = d > 20 ? d : std::log1p(std::exp(d));
                if (cs.limit) d = std::min(std::max(d, (double)lo), (double)hi);
                const double a = std::exp(d * A[j]);
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
    p.init = cs.init ? init.data() : nullptr; p.seq_idx = seqs ? ids.data() : nullptr; p.out = out.data();
    p.final_states = cs.fin ? fin.data() : nullptr;
    p.x_sb = (long long)L * H * P; p.x_st = H * P; p.dt_sb = (long long)L * H; p.dt_st = H;
    p.B_sb = (long long)L * G * N; p.B_st = G * N; p.C_sb = p.B_sb; p.C_st = p.B_st;
    p.z_sb = p.x_sb; p.z_st = p.x_st; p.out_sb = p.x_sb; p.out_st = p.x_st;
    p.batch = b; p.seqlen = L; p.nheads = H; p.headdim = P; p.ngroups = G; p.dstate = N;
    p.d_per_channel = cs.d == 2; p.softplus = cs.softplus; p.has_limit = cs.limit; p.lo = lo; p.hi = hi;
    // V bit 4: the exchange scratch (NaN garbage, as a reused buffer may hold).
    std::vector<float> xs((size_t)b * H * EMU_CL * 64 * 64, NAN);
    std::vector<double> xd((size_t)b * H * EMU_CL, NAN);
    p.chunk_states = xs.data();
    p.chunk_decay = reinterpret_cast<float*>(xd.data());
    // EMU_SEG=K: the call in K time segments as the host runs L > 1024 (seed.rs
    // `ssdz_segments` / `ssdz_segmented_launch`): segment lengths ceil(ceil(L / K) / 4) * 4, the
    // state passed through scratch, seq_idx rows L apart with a look back after the first.
    const int nseg = g_nseg;
    const int seg = ((L + nseg - 1) / nseg + 3) / 4 * 4;
    const int ks = (L + seg - 1) / seg;
    std::vector<float> pass[2] = {std::vector<float>(fin.size(), NAN), std::vector<float>(fin.size(), NAN)};
    for (int si = 0; si < ks; ++si) {
    SsdParams p0 = p;
    if (ks > 1) {
        const int t0 = si * seg, len = std::min(seg, L - t0);
        p.seqlen = len;
        p.x = x.data() + (size_t)t0 * p.x_st; p.dt = dt.data() + (size_t)t0 * p.dt_st;
        p.B = B.data() + (size_t)t0 * p.B_st; p.C = C.data() + (size_t)t0 * p.C_st;
        if (cs.z) p.z = z.data() + (size_t)t0 * p.z_st;
        p.out = out.data() + (size_t)t0 * p.out_st;
        p.init = si == 0 ? p0.init : pass[(si - 1) % 2].data();
        p.final_states = si + 1 == ks ? p0.final_states : pass[si % 2].data();
        if (seqs) {
            p.seq_idx = ids.data() + t0;
            p.seq_st = L;
            p.seq_back = si > 0;
        }
    }
    // The host's shape (seed.rs ssdz_launch).
    const int q = ((p.seqlen + EMU_CL - 1) / EMU_CL + 3) / 4 * 4;
    p.chunk_len = q;
    p.nchunks = EMU_CL;
    blockDim = {(unsigned)EMU_NT, 1, 1};
    gridDim = {(unsigned)EMU_CL, (unsigned)H, (unsigned)b};
    for (unsigned bz = 0; bz < gridDim.z; ++bz)
        for (unsigned by = 0; by < gridDim.y; ++by) {
            std::memset(g_smem, 0xff, sizeof(g_smem));  // NaN garbage
            for (int k = 0; k < EMU_CL; ++k) {
                g_bar[k] = std::make_unique<std::barrier<>>(EMU_NT);
                for (int w = 0; w < EMU_NT / 32; ++w) g_wbar[k][w] = std::make_unique<std::barrier<>>(32);
            }
            g_cbar = std::make_unique<std::barrier<>>(EMU_CL * EMU_NT);
            std::vector<std::thread> ts;
            for (int bx = 0; bx < EMU_CL; ++bx)
                for (int t = 0; t < EMU_NT; ++t)
                    ts.emplace_back([&, bx, t] {
                        threadIdx = {(unsigned)t, 0, 0};
                        blockIdx = {(unsigned)bx, by, bz};
                        switch (g_v) {
                            case 1: ssdz_body<1>(p, g_smem[bx]); break;
                            case 2: ssdz_body<2>(p, g_smem[bx]); break;
                            case 3: ssdz_body<3>(p, g_smem[bx]); break;
                            case 4: ssdz_body<4>(p, g_smem[bx]); break;
                            case 6: ssdz_body<6>(p, g_smem[bx]); break;
                            case 7: ssdz_body<7>(p, g_smem[bx]); break;
                            case 8: ssdz_tc_body(p, g_smem[bx]); break;
                            default: ssdz_body<0>(p, g_smem[bx]);
                        }
                        if (g_tok) { std::printf("cluster arrival left\n"); std::abort(); }
                    });
            for (auto& t : ts) t.join();
        }
    p = p0;
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
int main() {
    std::mt19937 rng(5);
    const bool quick = std::getenv("EMU_QUICK") != nullptr;
    const Case cases[] = {
        {1, 1, 1, 1, 1, 1, 0, false, false, false, true, false, false},
        {1, 7, 1, 64, 1, 64, 1, true, true, true, true, true, false},
        {1, 31, 2, 5, 1, 7, 1, true, true, true, true, true, false},
        {1, 100, 1, 64, 1, 64, 2, false, true, true, true, true, true},
        {2, 33, 3, 40, 3, 17, 1, false, true, true, true, true, true},
        {1, 97, 4, 3, 2, 64, 2, true, false, true, true, false, false},
        {1, 130, 1, 16, 1, 64, 0, false, false, true, true, false, false},
        {1, 400, 1, 64, 1, 64, 1, false, true, false, true, true, false},
        {1, 399, 1, 64, 1, 36, 2, true, true, true, true, true, true},
        {1, 600, 1, 64, 1, 64, 1, true, true, true, true, true, true},
        {1, 800, 1, 64, 1, 64, 1, false, true, true, true, true, false},
        {1, 1000, 1, 8, 1, 64, 1, true, true, true, true, true, true},
        {1, 1024, 1, 64, 1, 64, 1, false, true, true, true, true, false},
        // Past one ssdz call (the host's segments; run with EMU_SEG=2 or 3).
        {2, 1500, 1, 16, 1, 64, 1, true, true, true, true, true, false},
        {1, 2049, 1, 8, 1, 32, 0, false, false, true, true, false, false},
    };
    double worst = 0;
    int n = 0;
    for (const auto& cs : cases) {
        // One call takes at most 1024 steps; EMU_SEG=K runs the cases of L >= 1024 only, in K
        // segments.
        const int nseg = g_nseg;
        if (nseg == 1 ? cs.L > 1024 || (quick && cs.L > 400) : cs.L < 1024 || (cs.L + nseg - 1) / nseg > 1024) continue;
        double fe = 0;
        const double e = run_case(cs, rng, fe);
        ++n;
        worst = std::max({worst, e, fe});
        const bool bad = !(e < 1e-5) || !(fe < 1e-5);
        g_bad += bad;
        std::printf("%s b%d L%d h%d p%d g%d N%d d%d z%d init%d: out %.2e fin %.2e\n", bad ? "FAIL" : "ok", cs.b, cs.L,
                    cs.h, cs.P, cs.g, cs.N, cs.d, cs.z, cs.init, e, fe);
        std::fflush(stdout);
    }
    std::printf("%d cases, worst %.2e\n", n, worst);
    return g_bad ? 1 : 0;
}
