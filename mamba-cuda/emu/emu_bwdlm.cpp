// A host emulator for the Mamba-1 LM backward (kernels/bwd_lm.cu, `bwdlm_f32`): every CUDA
// thread of a block is a std::thread, blocks run one after another, shared memory starts as
// NaN garbage. Checks every gradient against an f64 reference backward.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_bwdlm.cpp -o /tmp/emu_bwdlm && /tmp/emu_bwdlm
// (-DEMU_LEAN: the `_lean` variant; -DEMU_Q4: `_q4`, four threads per channel; -DEMU_Q4
// -DEMU_Q4S: `_q4s`; -DEMU_Q4 -DBQ_EMU_H16=1: `_q4h`'s 16-bit B/C staging, B/C rounded to bf16;
// add -DEMU_Q4R: `_q4r`; -DEMU_Q4 -DEMU_Q4P: `_q4p` (f32 copies), with -DBQ_EMU_H16=1 its 16-bit
// copies; -DEMU_Q4PB: `_q4pb`; -DEMU_Q4PB -DEMU_Q4PBS: `_q4pbs`, the checkpoints given in natural
// order from the f64 forward, as the training forward saves them; -DEMU_Q4PB -DEMU_Q4PBO:
// `_q4pbo`, `_q4pb` with 32-bit row and checkpoint offsets)
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
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
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

static std::unique_ptr<std::barrier<>> g_block_bar;
alignas(16) static float g_smem[1 << 15];
static std::mutex g_atomic;

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
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline unsigned __ballot_sync(unsigned, bool v) { return v; }
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline float atomicAdd(float* a, float v) {
    std::lock_guard<std::mutex> g(g_atomic);
    const float old = *a;
    *a = old + v;
    return old;
}
inline void atomicAdd(float2* a, float2 v) {
    if (reinterpret_cast<uintptr_t>(a) % 8 != 0) {
        std::fprintf(stderr, "misaligned float2 atomic\n");
        std::abort();
    }
    std::lock_guard<std::mutex> g(g_atomic);
    a->x += v.x;
    a->y += v.y;
}
inline void atomicAdd(float4* a, float4 v) {
    if (reinterpret_cast<uintptr_t>(a) % 16 != 0) {
        std::fprintf(stderr, "misaligned float4 atomic\n");
        std::abort();
    }
    std::lock_guard<std::mutex> g(g_atomic);
    a->x += v.x;
    a->y += v.y;
    a->z += v.z;
    a->w += v.w;
}
using std::max;
using std::min;

#include "../kernels/bwd_lm.cu"

static void launch(unsigned gx, unsigned gy, const BwdLmParams& p) {
#ifdef EMU_Q4
    const unsigned threads = BQ_NT;
#else
    const unsigned threads = 256;
#endif
    blockDim = {threads, 1, 1};
    gridDim = {gx, gy, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            std::memset(g_smem, 0xff, sizeof(g_smem));
            g_block_bar = std::make_unique<std::barrier<>>(threads);
            for (unsigned w = 0; w < threads / 32; ++w) g_warp_bar[w] = std::make_unique<std::barrier<>>(32);
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bx, by, 0};
#if defined(EMU_Q4) && defined(EMU_Q4PBS)
                    bwdlm_f32_q4pbs(p);
#elif defined(EMU_Q4) && defined(EMU_Q4PBO)
                    bwdlm_f32_q4pbo(p);
#elif defined(EMU_Q4) && defined(EMU_Q4PB)
                    bwdlm_f32_q4pb(p);
#elif defined(EMU_Q4) && defined(EMU_Q4P)
                    bwdlm_f32_q4p(p);
#elif defined(EMU_Q4) && BQ_EMU_H16 && defined(EMU_Q4R)
                    bwdlm_f32_q4r(p);
#elif defined(EMU_Q4) && BQ_EMU_H16
                    bwdlm_f32_q4h(p);
#elif defined(EMU_Q4) && defined(EMU_Q4S)
                    bwdlm_f32_q4s(p);
#elif defined(EMU_Q4)
                    bwdlm_f32_q4(p);
#elif defined(EMU_LEAN)
                    bwdlm_f32_lean(p);
#else
                    bwdlm_f32(p);
#endif
                });
            for (auto& t : ts) t.join();
        }
}

struct Case {
    int b, d, N, L, bg, cg, vec;
    bool h0, dlast, z, D, bias, softplus;
};

static double rel(const std::vector<float>& a, const std::vector<double>& r) {
    double num = 0, den = 0;
    for (size_t k = 0; k < r.size(); ++k) num += (a[k] - r[k]) * (a[k] - r[k]), den += r[k] * r[k];
    if (den == 0) return num == 0 ? 0 : 1e30;
    const double e = std::sqrt(num / den);
    return std::isnan(e) ? 1e30 : e;
}

static double run_case(const Case& cs, std::mt19937& rng) {
    const int b = cs.b, d = cs.d, N = cs.N, L = cs.L;
    std::uniform_real_distribution<float> U(-1.f, 1.f);
    auto rnd = [&](size_t n, float sc, float off) {
        std::vector<float> v(n);
        for (auto& x : v) x = off + sc * U(rng);
        return v;
    };
    const int bgn = cs.bg, cgn = cs.cg;
    const size_t io = (size_t)b * d * L, st = (size_t)b * d * N;
    auto u = rnd(io, 1, 0), delta = rnd(io, 0.5f, cs.softplus ? -1.f : 0.6f);
    auto A = rnd((size_t)d * N, 0.5f, -0.8f);
    auto B = rnd((size_t)b * bgn * N * L, 1, 0), C = rnd((size_t)b * cgn * N * L, 1, 0);
#if BQ_EMU_H16
    // `q4h` stages B / C as bf16: the inputs rounded to bf16 first (then exact).
    for (auto* v : {&B, &C})
        for (auto& x : *v) x = __uint_as_float(bq_to_bf16(x) << 16);
#endif
    auto D = rnd(d, 1, 0), z = rnd(io, 2, 0), bias = rnd(d, 0.3f, 0), h0 = rnd(st, 1, 0);
    auto dout = rnd(io, 1, 0), dlast = rnd(st, 1, 0);
    auto Bv = [&](int i, int c, int n, int t) { return (double)B[(((size_t)i * bgn + c / (d / bgn)) * N + n) * L + t]; };
    auto Cv = [&](int i, int c, int n, int t) { return (double)C[(((size_t)i * cgn + c / (d / cgn)) * N + n) * L + t]; };
#ifdef EMU_Q4PBS
    std::vector<float> ckref((size_t)b * d * ((L + 7) / 8) * 16 + 4, NAN);
#endif
    // f64 reference backward.
    std::vector<double> rdu(io), rdd(io), rdz(io), rdA((size_t)d * N), rdB(B.size()), rdC(C.size()), rdD(d), rdb(d), rdh0(st);
    for (int i = 0; i < b; ++i)
        for (int c = 0; c < d; ++c) {
            const size_t ro = ((size_t)i * d + c) * L;
            std::vector<double> dt(L), sg(L), dy(L), hs((size_t)(L + 1) * N);
            for (int n = 0; n < N; ++n) hs[n] = cs.h0 ? h0[((size_t)i * d + c) * N + n] : 0.0;
            for (int t = 0; t < L; ++t) {
                const double v = delta[ro + t] + (cs.bias ? bias[c] : 0.0);
                dt[t] = cs.softplus ? (v > 20 ? v : std::log1p(std::exp(v))) : v;
                sg[t] = cs.softplus ? 1 / (1 + std::exp(-v)) : 1.0;
                double y = 0;
                for (int n = 0; n < N; ++n) {
                    const double h = std::exp(dt[t] * A[(size_t)c * N + n]) * hs[(size_t)t * N + n] + dt[t] * Bv(i, c, n, t) * u[ro + t];
                    hs[(size_t)(t + 1) * N + n] = h;
                    y += Cv(i, c, n, t) * h;
                }
                if (cs.D) y += D[c] * u[ro + t];
                const double zz = z[ro + t], s = 1 / (1 + std::exp(-zz));
                if (cs.z) {
                    dy[t] = dout[ro + t] * zz * s;
                    rdz[ro + t] = dout[ro + t] * y * s * (1 + zz * (1 - s));
                } else {
                    dy[t] = dout[ro + t];
                }
            }
#ifdef EMU_Q4PBS
            for (int k = 0; k * 8 < L; ++k)
                for (int n = 0; n < 16; ++n)
                    ckref[(((size_t)i * ((L + 7) / 8) + k) * d + c) * 16 + n] = n < N ? (float)hs[(size_t)(8 * k) * N + n] : 0.f;
#endif
            std::vector<double> g(N);
            for (int n = 0; n < N; ++n) g[n] = cs.dlast ? dlast[((size_t)i * d + c) * N + n] : 0.0;
            for (int t = L - 1; t >= 0; --t) {
                double ddt = 0, du = cs.D ? D[c] * dy[t] : 0.0;
                for (int n = 0; n < N; ++n) {
                    const double a = A[(size_t)c * N + n], dA = std::exp(dt[t] * a);
                    g[n] += Cv(i, c, n, t) * dy[t];
                    const double hp = hs[(size_t)t * N + n];
                    rdC[(((size_t)i * cgn + c / (d / cgn)) * N + n) * L + t] += dy[t] * hs[(size_t)(t + 1) * N + n];
                    rdB[(((size_t)i * bgn + c / (d / bgn)) * N + n) * L + t] += g[n] * dt[t] * u[ro + t];
                    du += g[n] * dt[t] * Bv(i, c, n, t);
                    ddt += g[n] * (a * dA * hp + Bv(i, c, n, t) * u[ro + t]);
                    rdA[(size_t)c * N + n] += g[n] * dt[t] * dA * hp;
                    g[n] *= dA;
                }
                rdu[ro + t] = du;
                rdd[ro + t] = ddt * sg[t];
                rdb[c] += ddt * sg[t];
                rdD[c] += dy[t] * u[ro + t];
            }
            for (int n = 0; n < N; ++n) rdh0[((size_t)i * d + c) * N + n] = g[n];
        }

    const int seg = std::gcd(d / bgn, d / cgn);
#ifdef EMU_Q4
    const int bps = (seg + BQ_CB - 1) / BQ_CB, nseg = d / seg;
    const int ntiles = (L + BQ_TT - 1) / BQ_TT;
#if defined(EMU_Q4P) || defined(EMU_Q4PB) || defined(EMU_Q4PBS)
    const int smem_floats = bq_smem_floats_p();
#else
    const int smem_floats = bq_smem_floats();
#endif
#else
    const int bps = (seg + BL_CB - 1) / BL_CB, nseg = d / seg;
    const int ntiles = (L + BL_TT - 1) / BL_TT;
    const int smem_floats = bl_smem_floats();
#endif
    std::vector<float> du(io, NAN), dd(io, NAN), dz(io, NAN), dA((size_t)d * N, 0.f), dB(B.size(), 0.f), dC(C.size(), 0.f);
    std::vector<float> dD(d, 0.f), db(d, 0.f), dh0(st, NAN), ck((size_t)b * d * ntiles * 16 + 4, NAN);
    // 16-byte aligned accumulators
    std::vector<float4> dB4(B.size() / 4 + 1), dC4(C.size() / 4 + 1);
    float* pdB = reinterpret_cast<float*>(dB4.data());
    float* pdC = reinterpret_cast<float*>(dC4.data());
    std::memset(pdB, 0, dB4.size() * 16);
    std::memset(pdC, 0, dC4.size() * 16);
    BwdLmParams p{};
    p.u = u.data(); p.delta = delta.data(); p.A = A.data(); p.B = B.data(); p.C = C.data();
    p.D = cs.D ? D.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.bias = cs.bias ? bias.data() : nullptr;
    p.h0 = cs.h0 ? h0.data() : nullptr; p.dout = dout.data(); p.dlast = cs.dlast ? dlast.data() : nullptr;
    p.du = du.data(); p.ddelta = dd.data(); p.dz = cs.z ? dz.data() : nullptr; p.dA = dA.data();
    p.dD = cs.D ? dD.data() : nullptr; p.dbias = cs.bias ? db.data() : nullptr; p.dh0 = dh0.data();
    p.db = pdB; p.dc = pdC; p.ck = ck.data();
#ifdef EMU_Q4PBS
    // The saved checkpoints ((b, ceil(L / 8), d, 16): the state before step 8 k, natural
    // order, zeros past N: what `lm1_fwd_*_w6ck` writes), from the f64 forward above.
    p.ck = ckref.data();
#endif
    p.batch = b; p.dim = d; p.seqlen = L; p.dstate = N; p.b_groups = bgn; p.c_groups = cgn;
    p.softplus = cs.softplus; p.seg = seg; p.blocks_per_seg = bps; p.vec = cs.vec && L % 2 == 0;
    p.vec4 = L % 4 == 0;
    if (smem_floats > (int)(sizeof(g_smem) / 4)) { std::printf("smem too big\n"); return 1e30; }
    launch(nseg * bps, b, p);
    std::memcpy(dB.data(), pdB, dB.size() * 4);
    std::memcpy(dC.data(), pdC, dC.size() * 4);
    double e = 0;
    const char* names[] = {"du", "ddelta", "dz", "dA", "dB", "dC", "dD", "dbias", "dh0"};
    double es[9] = {rel(du, rdu), rel(dd, rdd), cs.z ? rel(dz, rdz) : 0, rel(dA, rdA), rel(dB, rdB), rel(dC, rdC),
                    cs.D ? rel(dD, rdD) : 0, cs.bias ? rel(db, rdb) : 0, rel(dh0, rdh0)};
    for (int k = 0; k < 9; ++k) {
        if (es[k] > 1e-5) std::printf("   %s %.3g\n", names[k], es[k]);
        e = std::max(e, es[k]);
    }
    return e;
}

int main() {
    std::mt19937 rng(7);
    const Case cases[] = {
        // b d N L bg cg vec h0 dlast z D bias softplus
        {1, 32, 16, 32, 1, 1, 1, false, false, true, true, true, true},
        {2, 64, 16, 100, 1, 1, 1, true, true, true, true, true, true},
        {1, 48, 5, 75, 1, 1, 0, true, true, true, true, true, true},
        {1, 48, 5, 75, 1, 1, 1, false, false, false, false, false, false},
        {2, 40, 16, 64, 2, 1, 1, false, true, true, true, false, true},
        {1, 24, 12, 33, 3, 2, 0, true, true, true, true, true, true},
        {1, 24, 12, 36, 3, 2, 1, true, true, true, true, true, true},
        {1, 32, 8, 1, 1, 1, 0, true, true, true, true, true, true},
        {1, 32, 8, 2, 1, 1, 1, true, true, true, true, true, true},
        {1, 32, 1, 96, 1, 1, 1, true, true, true, true, true, true},
        {1, 130, 16, 40, 1, 1, 1, true, true, true, true, true, true},
        {1, 40, 9, 66, 2, 4, 1, false, true, false, true, false, true},
        {1, 33, 16, 130, 1, 1, 1, true, true, true, true, true, true},
    };
    int bad = 0;
    for (const auto& cs : cases) {
        const double e = run_case(cs, rng);
        const bool ok = e < 1e-5;
        bad += !ok;
        std::printf("%s b%d d%d N%d L%d bg%d cg%d vec%d: rel err %.3g\n", ok ? "ok  " : "FAIL", cs.b, cs.d, cs.N, cs.L, cs.bg,
                    cs.cg, cs.vec, e);
    }
    return bad ? 1 : 0;
}
