// A host emulator for the f32 kernels of kernels/bwd.cu: every CUDA thread of a block is
// a std::thread, __syncthreads and __syncwarp are barriers, shuffles go through memory,
// atomics take a lock. Blocks run one after another. It checks the backward kernels
// (and the launch shapes of src/gpu/bwd.rs, mirrored below) against an f64 port of the
// reference backward on random cases, where no GPU is at hand.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu.cpp -o /tmp/emu && /tmp/emu
// (`/tmp/emu ssdbc`: the chunked SSD backward of kernels/ssd_bwdc.cu; `/tmp/emu conv`: the
// conv1d cases only, the generic backward and the tiled forms of kernels/conv.cuh)
//
// Exit status 0 when every gradient is within 1e-4 relative L2 of the f64 reference.
#include <algorithm>
#include <cstdint>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include "emu_cuda.h"

static std::unique_ptr<std::barrier<>> g_block_bar;
static std::vector<std::unique_ptr<std::barrier<>>> g_warp_bar;
static std::mutex g_atomic;
alignas(16) static float g_smem[1 << 18];

#define DYN_SMEM(name) float* name = g_smem

inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline void __syncwarp() { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
// A shuffle: lane l of the warp reads lane src(l)'s v (one exchange buffer per value type).
template <typename V, typename F>
inline V emu_shfl(V v, F src) {
    static V sh[64][32];
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    sh[w][l] = v;
    __syncwarp();
    const V r = sh[w][src(l) & 31];
    __syncwarp();
    return r;
}
inline float __shfl_xor_sync(unsigned, float v, int o) { return emu_shfl(v, [o](int l) { return l ^ o; }); }
inline float __shfl_sync(unsigned, float v, int src) { return emu_shfl(v, [src](int) { return src; }); }
inline double __shfl_sync(unsigned, double v, int src) { return emu_shfl(v, [src](int) { return src; }); }
inline float atomicAdd(float* a, float v) {
    std::lock_guard<std::mutex> g(g_atomic);
    const float old = *a;
    *a = old + v;
    return old;
}
struct float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
struct uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
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
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
using std::max;
using std::min;

// Used by common.cuh's forward look-back only (not by bwd.cu); present so that it builds.
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
// The whole warp's predicates (ssd_bwdc.cu's `sbc_prep`: the sequence starts of a chunk).
inline unsigned __ballot_sync(unsigned, bool pred) {
    static bool sh[64][32];
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    sh[w][l] = pred;
    __syncwarp();
    unsigned m = 0;
    for (int e = 0; e < 32; ++e) m |= (sh[w][e] ? 1u : 0u) << e;
    __syncwarp();
    return m;
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(unsigned v) { return v ? __builtin_ctz(v) + 1 : 0; }

// tf32 (cvt.rna: round to nearest, ties away, 10 explicit mantissa bits); EMU_TF32_EXACT=1
// passes the f32 value through, so that only the indexing of the products is checked.
inline unsigned emu_tf32_rna(float v) {
    static const bool exact = std::getenv("EMU_TF32_EXACT") != nullptr;
    const unsigned u = __float_as_uint(v);
    if (exact || !std::isfinite(v)) return u;
    return (u + 0x1000u) & 0xffffe000u;
}
// mma.sync m16n8k8 tf32 (row.col): lanes publish their registers, each lane computes its
// four outputs from the whole operands in the PTX fragment layouts (operands truncated to
// tf32 as the tensor cores read them, unless EMU_TF32_EXACT).
// ldmatrix (b16, x4 / x2) read as 32-bit words: lane l gives the row address of matrix l / 8
// (row l % 8); lane T gets the word at row T / 4, word T % 4 of each matrix.
static const float* g_ldm[16][32];
inline void emu_ldm32(unsigned* r, int cnt, const float* addr) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_ldm[w][l] = addr;
    __syncwarp();
    for (int i = 0; i < cnt; ++i) {
        const float* row = g_ldm[w][i * 8 + l / 4];
        if (reinterpret_cast<uintptr_t>(row) % 16 != 0) {
            std::fprintf(stderr, "ldmatrix row not 16-byte aligned\n");
            std::abort();
        }
        std::memcpy(&r[i], row + l % 4, 4);
    }
    __syncwarp();
}
static unsigned g_ma[16][32][4], g_mb[16][32][2];
inline void emu_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    static const bool exact = std::getenv("EMU_TF32_EXACT") != nullptr;
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, g = l >> 2, c = l & 3;
    for (int e = 0; e < 4; ++e) g_ma[w][l][e] = a[e];
    for (int e = 0; e < 2; ++e) g_mb[w][l][e] = b[e];
    __syncwarp();
    auto rd = [&](unsigned u) { return __uint_as_float(exact ? u : (u & 0xffffe000u)); };
    auto A = [&](int m, int k) { return rd(g_ma[w][(m % 8) * 4 + k % 4][(m >= 8) + 2 * (k >= 4)]); };
    auto B = [&](int k, int n) { return rd(g_mb[w][n * 4 + k % 4][k >= 4]); };
    for (int e = 0; e < 4; ++e) {
        const int m = g + (e >> 1) * 8, n = 2 * c + (e & 1);
        double acc = d[e];
        for (int k = 0; k < 8; ++k) acc += (double)A(m, k) * B(k, n);
        d[e] = (float)acc;
    }
    __syncwarp();
}

#include "../kernels/bwd.cu"
#include "../kernels/ssd_bwdc.cu"

template <typename P>
void launch(void (*k)(P), unsigned gx, unsigned gy, unsigned threads, const P& p, unsigned gz = 1) {
    blockDim = {threads, 1, 1};
    gridDim = {gx, gy, gz};
    for (unsigned bz = 0; bz < gz; ++bz)
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            std::memset(g_smem, 0xff, sizeof(g_smem));  // NaN garbage: uninitialised reads show
            g_block_bar = std::make_unique<std::barrier<>>(threads);
            g_warp_bar.clear();
            for (unsigned w = 0; w < threads / 32; ++w) g_warp_bar.push_back(std::make_unique<std::barrier<>>(32));
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bx, by, bz};
                    k(p);
                });
            for (auto& t : ts) t.join();
        }
}

// ------------------------------------------------------------ launch shapes (src/gpu/bwd.rs)

struct Shape {
    int s, w, r, nseg;
    size_t smem;
};
static Shape scan_shape(int l, int n, int seg, int ctiles = 0) {
    const int q = (n + 31) / 32;
    const int s = q <= 1 ? 1 : q == 2 ? 2 : q <= 4 ? 4 : 8;
    const int np = 32 * s;
    const int r = std::max(1, (n + BT - 1) / BT);
    const int nseg = ((ctiles ? ctiles : (l + BT - 1) / BT) + r - 1) / r;
    const size_t block = 2 * BT * (np + 1) + BT;
    const size_t per_warp = BT * (np + 1) + r * np + 2 * BT * (BT + 1) + RV_COUNT * BT;
    auto fits = [&](size_t budget) { return (budget / 4 > block ? budget / 4 - block : 0) / per_warp; };
    // As bwd.rs for few rows (every case here): the most rows that fit one block per SM.
    int w = (int)std::min<size_t>({fits(227 * 1024), 8, (size_t)seg});
    return {s, w, r, nseg, 4 * (block + w * per_warp)};
}

// ------------------------------------------------------------ random helpers

// EMU_SEED (a measurement aid): another seed for every case's data (default 7, the cases in
// `cargo test`).
static std::mt19937_64 rng(std::getenv("EMU_SEED") ? std::strtoull(std::getenv("EMU_SEED"), nullptr, 10) : 7);
static std::vector<float> normals(size_t n, double s = 1.0) {
    std::normal_distribution<double> d(0.0, s);
    std::vector<float> v(n);
    for (auto& x : v) x = (float)d(rng);
    return v;
}
static std::vector<float> uniforms(size_t n, double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = (float)d(rng);
    return v;
}
static double rel_l2(const std::vector<float>& g, const std::vector<double>& e) {
    double num = 0, den = 0;
    for (size_t i = 0; i < g.size(); ++i) {
        if (!std::isfinite(g[i])) return INFINITY;
        num += (g[i] - e[i]) * (g[i] - e[i]);
        den += e[i] * e[i];
    }
    den = std::max(std::sqrt(den), 0.1 * std::sqrt((double)e.size()));
    return std::sqrt(num) / den;
}
static int failures = 0;
static void cmp(const char* what, const std::vector<float>& g, const std::vector<double>& e) {
    const double err = rel_l2(g, e);
    // EMU_TOL: another bound (the tf32 products of EMU_SBC_TC=1 on f32 data).
    static const double tol = std::getenv("EMU_TOL") ? std::atof(std::getenv("EMU_TOL")) : 1e-4;
    const bool bad = !(err <= tol);
    if (bad) ++failures;
    std::printf("   %-16s %.3e%s\n", what, err, bad ? "   <-- FAIL" : "");
}

static double sp(double v) { return v > 20 ? v : std::log1p(std::exp(v)); }
static double sp_grad(double v) { return v > 20 ? 1 : 1 / (1 + std::exp(-v)); }
static double sig(double v) { return 1 / (1 + std::exp(-v)); }

// ------------------------------------------------------------ a generic case: SPEC 1 or 2

// One case of the generic scan: rows r of batch i; for SPEC 1 rows = d and B/C layouts by
// groups (0 shared); for SPEC 2 rows = h*p.
struct Case {
    bool ssd;
    int b, rows, L, N, H = 1, P = 1, bg = 0, cg = 0, ng = 1;
    bool softplus = false, limit = false, has_D = false, dpc = false, has_z = false, has_bias = false,
         has_h0 = false, has_dlast = false, has_seq = false;
    float lo = 0, hi = INFINITY;
    std::vector<float> u, delta, A, B, C, D, z, bias, h0, dout, dlast;
    std::vector<int> seq;
};

static size_t bc_len(const Case& c, int groups) {
    if (c.ssd) return (size_t)c.b * c.L * c.ng * c.N;
    return groups == 0 ? (size_t)c.rows * c.N : (size_t)c.b * groups * c.N * c.L;
}
static size_t bc_index(const Case& c, int groups, int i, int r, int n, int t) {
    if (c.ssd) {
        const int k = (r / c.P) / (c.H / c.ng);
        return (((size_t)i * c.L + t) * c.ng + k) * c.N + n;
    }
    if (groups == 0) return (size_t)r * c.N + n;
    const int grp = r / (c.rows / groups);
    return (((size_t)i * groups + grp) * c.N + n) * c.L + t;
}
static size_t elem(const Case& c, int i, int r, int t) {
    return c.ssd ? ((size_t)i * c.L + t) * c.rows + r : ((size_t)i * c.rows + r) * c.L + t;
}
static size_t delem(const Case& c, int i, int r, int t) {
    return c.ssd ? ((size_t)i * c.L + t) * c.H + r / c.P : elem(c, i, r, t);
}
static int head(const Case& c, int r) { return c.ssd ? r / c.P : r; }
static int didx(const Case& c, int r) { return c.ssd ? (c.dpc ? r : r / c.P) : r; }

struct Grads {
    std::vector<double> du, ddelta, dA, dB, dC, dD, dz, dbias, dh0;
};

static Grads reference(const Case& c) {
    Grads g;
    const size_t io = (size_t)c.b * c.L * c.rows;
    g.du.assign(io, 0);
    g.dz.assign(io, 0);
    g.ddelta.assign(c.ssd ? (size_t)c.b * c.L * c.H : io, 0);
    g.dA.assign(c.A.size(), 0);
    g.dB.assign(bc_len(c, c.bg), 0);
    g.dC.assign(bc_len(c, c.cg), 0);
    g.dD.assign(c.D.size(), 0);
    g.dbias.assign(c.ssd ? c.H : c.rows, 0);
    g.dh0.assign((size_t)c.b * c.rows * c.N, 0);
    const int N = c.N, L = c.L;
    for (int i = 0; i < c.b; ++i)
        for (int r = 0; r < c.rows; ++r) {
            std::vector<double> hs((L + 1) * N, 0.0), step(L), dstep(L), ys(L);
            std::vector<char> reset(L, 0);
            for (int n = 0; n < N; ++n) hs[n] = c.has_h0 ? c.h0[((size_t)i * c.rows + r) * N + n] : 0;
            auto Aat = [&](int n) { return c.ssd ? (double)c.A[head(c, r)] : (double)c.A[(size_t)r * N + n]; };
            for (int t = 0; t < L; ++t) {
                double raw = c.delta[delem(c, i, r, t)] + (c.has_bias ? c.bias[head(c, r)] : 0.0);
                double s = raw, ds = 1;
                if (c.softplus) { s = sp(raw); ds = sp_grad(raw); }
                if (c.limit) {
                    if (s < c.lo) { s = c.lo; ds = 0; }
                    else if (s > c.hi) { s = c.hi; ds = 0; }
                }
                step[t] = s;
                dstep[t] = ds;
                reset[t] = c.has_seq && t > 0 && c.seq[(size_t)i * L + t] != c.seq[(size_t)i * L + t - 1];
                const double u = c.u[elem(c, i, r, t)];
                double y = 0;
                for (int n = 0; n < N; ++n) {
                    const double prev = reset[t] ? 0 : hs[t * N + n];
                    const double h = std::exp(s * Aat(n)) * prev + s * c.B[bc_index(c, c.bg, i, r, n, t)] * u;
                    hs[(t + 1) * N + n] = h;
                    y += c.C[bc_index(c, c.cg, i, r, n, t)] * h;
                }
                ys[t] = y + (c.has_D ? c.D[didx(c, r)] : 0.0) * u;
            }
            std::vector<double> gg(N);
            for (int n = 0; n < N; ++n) gg[n] = c.has_dlast ? c.dlast[((size_t)i * c.rows + r) * N + n] : 0;
            for (int t = L - 1; t >= 0; --t) {
                const size_t e = elem(c, i, r, t);
                const double go = c.dout[e];
                double dy = go;
                if (c.has_z) {
                    const double zv = c.z[e], sg = sig(zv);
                    g.dz[e] = go * ys[t] * sg * (1 + zv * (1 - sg));
                    dy = go * zv * sg;
                }
                const double u = c.u[e];
                double du = 0;
                if (c.has_D) {
                    g.dD[didx(c, r)] += dy * u;
                    du += dy * c.D[didx(c, r)];
                }
                double ddt = 0;
                for (int n = 0; n < N; ++n) {
                    const double a = Aat(n), s = step[t];
                    const size_t bi = bc_index(c, c.bg, i, r, n, t), ci = bc_index(c, c.cg, i, r, n, t);
                    const double bv = c.B[bi], cv = c.C[ci];
                    const double h = hs[(t + 1) * N + n], prev = reset[t] ? 0 : hs[t * N + n];
                    const double decay = std::exp(s * a);
                    gg[n] += dy * cv;
                    g.dC[ci] += dy * h;
                    ddt += gg[n] * (decay * a * prev + bv * u);
                    g.dA[c.ssd ? head(c, r) : (size_t)r * N + n] += gg[n] * decay * s * prev;
                    g.dB[bi] += gg[n] * s * u;
                    du += gg[n] * s * bv;
                    gg[n] = reset[t] ? 0 : gg[n] * decay;
                }
                const double draw = ddt * dstep[t];
                g.ddelta[delem(c, i, r, t)] += draw;
                g.dbias[head(c, r)] += draw;
                g.du[e] = du;
            }
            for (int n = 0; n < N; ++n) g.dh0[((size_t)i * c.rows + r) * N + n] = gg[n];
        }
    return g;
}

static int g_ssdt_rp = 0;
static int g_q = 0;   // > 0: Mamba-1 cases with tk run scan1_bwd_q (8 or 4 warps)
static int g_qr = 0;  // > 0: its checkpoint interval R (tiles)
  // > 0: SSD cases run ssd_bwd_t with RP rows per warp

// `want` time chunks, as src/gpu/bwd.rs cuts them (tiles per chunk, then the count).
static void run_case(const char* name, Case& c, int want = 1, bool tk = false) {
    const int ntiles = (c.L + BT - 1) / BT;
    const int ctiles = (ntiles + std::clamp(want, 1, ntiles) - 1) / std::clamp(want, 1, ntiles);
    const int K = (ntiles + ctiles - 1) / ctiles;
    std::printf("%s, K=%d (ctiles %d)%s\n", name, K, ctiles, tk ? " [scan1t]" : "");
    const size_t io = (size_t)c.b * c.L * c.rows;
    const int seg = c.ssd ? (c.H / c.ng) * c.P
                          : std::gcd(c.bg ? c.rows / c.bg : c.rows, c.cg ? c.rows / c.cg : c.rows);
    const Shape sh = scan_shape(c.L, c.N, seg, ctiles);
    if (sh.smem > sizeof(g_smem)) { std::printf("smem too large\n"); ++failures; return; }
    const int np = 32 * sh.s;
    std::vector<float> du(io, NAN), ddelta(c.ssd ? 0 : io, NAN), dz(io, NAN), ddt_acc(c.ssd ? (size_t)c.b * c.L * c.H : 0, 0);
    std::vector<float> dA(c.A.size(), 0), dB(bc_len(c, c.bg), 0), dC(bc_len(c, c.cg), 0), dD(c.D.size(), 0),
        dbias(c.ssd ? c.H : c.rows, 0), dh0((size_t)c.b * c.rows * c.N, NAN);
    std::vector<float> ckpt((size_t)c.b * c.rows * K * sh.nseg * np, NAN);
    std::vector<float> loc((size_t)c.b * c.rows * K * 3 * np, NAN);
    ScanBwdSplit spp{};
    spp.loc = K > 1 ? loc.data() : nullptr;
    spp.K = K;
    spp.ctiles = ctiles;
    ScanBwdParams& p = spp.p;
    p.u = c.u.data();
    p.delta = c.delta.data();
    p.A = c.A.data();
    p.B = c.B.data();
    p.C = c.C.data();
    p.D = c.has_D ? c.D.data() : nullptr;
    p.z = c.has_z ? c.z.data() : nullptr;
    p.bias = c.has_bias ? c.bias.data() : nullptr;
    p.h0 = c.has_h0 ? c.h0.data() : nullptr;
    p.seq_idx = c.has_seq ? c.seq.data() : nullptr;
    p.dout = c.dout.data();
    p.dlast = c.has_dlast ? c.dlast.data() : nullptr;
    p.du = du.data();
    p.ddelta = c.ssd ? nullptr : ddelta.data();
    p.dz = c.has_z ? dz.data() : nullptr;
    p.ddt_acc = c.ssd ? ddt_acc.data() : nullptr;
    p.dA = dA.data();
    p.dB = dB.data();
    p.dC = dC.data();
    p.dD = c.has_D ? dD.data() : nullptr;
    p.dbias = c.has_bias ? dbias.data() : nullptr;
    p.dh0 = dh0.data();
    p.ckpt = ckpt.data();
    p.batch = c.b;
    p.rows = c.rows;
    p.seqlen = c.L;
    p.dstate = c.N;
    p.nheads = c.H;
    p.headdim = c.P;
    p.b_groups = c.ssd ? c.ng : c.bg;
    p.c_groups = c.ssd ? c.ng : c.cg;
    p.softplus = c.softplus;
    p.has_limit = c.limit;
    p.lo = c.lo;
    p.hi = c.hi;
    p.d_per_channel = c.dpc;
    p.seg = seg;
    p.W = sh.w;
    p.blocks_per_seg = (seg + sh.w - 1) / sh.w;
    p.R = sh.r;
    p.nseg = sh.nseg;
    std::printf("   shape: S=%d W=%d R=%d nseg=%d seg=%d smem=%zu\n", sh.s, sh.w, sh.r, sh.nseg, seg, sh.smem);
    auto k = c.ssd ? (sh.s == 1 ? bwd_ssd_f32_s1 : sh.s == 2 ? bwd_ssd_f32_s2 : sh.s == 4 ? bwd_ssd_f32_s4 : bwd_ssd_f32_s8)
                   : (sh.s == 1 ? bwd_scan1_f32_s1 : sh.s == 2 ? bwd_scan1_f32_s2 : sh.s == 4 ? bwd_scan1_f32_s4 : bwd_scan1_f32_s8);
    auto kl = c.ssd ? (sh.s == 1 ? bwd_ssd_loc_f32_s1 : sh.s == 2 ? bwd_ssd_loc_f32_s2 : sh.s == 4 ? bwd_ssd_loc_f32_s4 : bwd_ssd_loc_f32_s8)
                    : (sh.s == 1 ? bwd_scan1_loc_f32_s1 : sh.s == 2 ? bwd_scan1_loc_f32_s2 : sh.s == 4 ? bwd_scan1_loc_f32_s4 : bwd_scan1_loc_f32_s8);
    const unsigned gx = (unsigned)((c.rows / seg) * p.blocks_per_seg);
    // EMU_VLOC=1|2 (with EMU_QV): the "v" kernels' time split in 8-step units with the
    // local pass scan1_loc_v (1: it stores the checkpoints, the main kernel skips its
    // forward pass; 2: it does not), as src/gpu/bwd.rs split_v with a forced K.
    const int vloc = (tk && g_q && std::getenv("EMU_QV") && std::getenv("EMU_VLOC")) ? std::atoi(std::getenv("EMU_VLOC")) : 0;
    if (K > 1 && !vloc) launch(kl, gx, (unsigned)c.b, (unsigned)(sh.w * 32), spp, (unsigned)K);
    if (tk && g_q) {
        // scan1_bwd_q (src/gpu/bwd.rs, QShape): NL = 4 (N <= 16) or 8 lanes per channel, 4 states
        // per lane, NW warps (g_q: 8, or 4 for the n16w4 kernel), tiles of 8 steps.
        const char* qenv = std::getenv("EMU_QV");
        const bool only8 = qenv && (qenv[0] == 'x' || qenv[1] == 'd');  // kernels of 8 warps only
        const bool w16 = std::getenv("EMU_NW16") && c.N > 32;  // the n64vdw kernel (16 warps)
        const int NL = c.N <= 16 ? 4 : c.N <= 32 ? 8 : 16, S = 4, NW = w16 ? 16 : (c.N <= 16 && g_q == 4 && !only8) ? 4 : 8, TQ_ = 8;
        const int NP = NL * S, NS = NP + 1, CB = NW * 32 / NL;
        const int R = g_qr ? g_qr : std::getenv("EMU_QR") ? std::atoi(std::getenv("EMU_QR")) : std::max(1, (c.N + 2 * TQ_ - 1) / (2 * TQ_));
        const int nseg = (ctiles * (32 / TQ_) + R - 1) / R;
        std::vector<float> ck2((size_t)c.b * c.rows * K * nseg * NP, NAN);
        ScanBwdSplit tp = spp;
        tp.pad0 = np;
        tp.p.ckpt = ck2.data();
        tp.p.R = R;
        tp.p.nseg = nseg;
        tp.p.W = CB;
        tp.p.blocks_per_seg = (seg + CB - 1) / CB;
        const bool vv = std::getenv("EMU_QV") != nullptr;  // the bwd_scan1q_*v kernels (scan1_bwd_v)
        const char* qv = vv ? std::getenv("EMU_QV") : "";
        const bool xx = vv && qv[0] == 'x';                 // EMU_QV=x|xd: the *x kernels
        const bool dd = vv && std::strlen(qv) >= 2 && qv[1] == 'd';  // EMU_QV=vd|xd|vdo|xdo: decays recomputed
        const bool ob = vv && std::strlen(qv) == 3 && qv[2] == 'o';   // EMU_QV=vdo|xdo: outputs staged
        const size_t smem = vv ? 4 * (size_t)(2 * TQ_ * NP + 6 * CB * (TQ_ + 1) + CB * (2 * NP * TQ_ + (xx ? 16 : NL)) + R * S * NW * 32 + CB + (ob ? 3 * CB * 16 : 0) + 4 * NW * 32)
                               : 4 * (size_t)(2 * TQ_ * NS + 6 * CB * (TQ_ + 1) + CB * (2 * NP * TQ_ + 1) + R * S * NW * 32 + CB);
        std::printf("   scan1q: NL=%d S=%d NW=%d R=%d nseg=%d smem=%zu\n", NL, S, NW, R, nseg, smem);
        if (smem > sizeof(g_smem)) { std::printf("smem too large\n"); ++failures; return; }
        auto kt = w16 ? bwd_scan1q_f32_n64vdw : (ob && xx && c.N <= 16) ? bwd_scan1q_f32_n16xdo : (ob && c.N <= 16) ? bwd_scan1q_f32_n16vdo : (ob && c.N > 32) ? bwd_scan1q_f32_n64vdo
                : (dd && xx && c.N > 32) ? bwd_scan1q_f32_n64xd
                : (dd && xx && c.N <= 16) ? bwd_scan1q_f32_n16xd : (dd && c.N <= 16) ? bwd_scan1q_f32_n16vd : (dd && c.N > 32) ? bwd_scan1q_f32_n64vd
                : xx ? (c.N <= 16 ? bwd_scan1q_f32_n16x : c.N <= 32 ? bwd_scan1q_f32_n32x : bwd_scan1q_f32_n64x)
                : vv ? (c.N <= 16 ? (NW == 4 ? bwd_scan1q_f32_n16vr3 : bwd_scan1q_f32_n16v) : c.N <= 32 ? bwd_scan1q_f32_n32v : bwd_scan1q_f32_n64v)
                     : c.N <= 16 ? (NW == 4 ? bwd_scan1q_f32_n16w4 : bwd_scan1q_f32_n16) : bwd_scan1q_f32_n32;
        std::vector<float> loc2, cks, ck3;
        unsigned KV = (unsigned)K;
        if (vloc) {
            const int w = std::clamp(want, 1, 32);
            const int clen = ((c.L + w - 1) / w + TQ_ - 1) / TQ_ * TQ_;
            KV = (unsigned)((c.L + clen - 1) / clen);
            const int nsegv = (clen / TQ_ + R - 1) / R;
            std::printf("   vloc %d: K=%u clen=%d nseg=%d\n", vloc, KV, clen, nsegv);
            loc2.assign((size_t)c.b * c.rows * KV * 3 * NP, NAN);
            cks.assign((size_t)c.b * c.rows * KV * nsegv, NAN);
            ck3.assign((size_t)c.b * c.rows * KV * nsegv * NP, NAN);
            tp.K = (int)KV;
            tp.pad0 = NP;
            tp.loc = KV > 1 ? loc2.data() : nullptr;
            tp.clen = clen;
            tp.pre = (vloc == 1) | (std::getenv("EMU_VEC4") && c.L % 4 == 0 ? 4 : 0);
            if (std::getenv("EMU_ZERO") && KV > 1) {
                // The local pass zeroes the accumulated gradients: NaN garbage before.
                tp.pre |= 8;
                for (auto* v : {&dA, &dB, &dC, &dD, &dbias}) std::fill(v->begin(), v->end(), NAN);
            }
            tp.cks = vloc == 1 ? cks.data() : nullptr;
            tp.p.ckpt = ck3.data();
            tp.p.nseg = nsegv;
            const int ls = std::getenv("EMU_LOCS") ? std::atoi(std::getenv("EMU_LOCS")) : 4;
            const bool u8 = std::getenv("EMU_LOCU") != nullptr;  // the unrolled local pass (S = 4)
            const bool v2 = std::getenv("EMU_LOCV") != nullptr;  // scan1_loc_v2 (S = 4, 8 or 16 warps)
            auto kl2 = (v2 && ls == 2 && NP == 64) ? bwd_scan1q_loc_f32_n64s2v2
                     : (v2 && ls == 4 && NW == 8) ? (c.N <= 16 ? bwd_scan1q_loc_f32_n16w8v2 : c.N <= 32 ? bwd_scan1q_loc_f32_n32w8v2 : bwd_scan1q_loc_f32_n64w8v2)
                     : (v2 && ls == 4 && w16) ? bwd_scan1q_loc_f32_n64w16v2
                     : (u8 && ls == 4) ? (c.N <= 16 ? (NW == 4 ? bwd_scan1q_loc_f32_n16w4u : bwd_scan1q_loc_f32_n16w8u)
                                         : c.N <= 32 ? bwd_scan1q_loc_f32_n32w8u : w16 ? bwd_scan1q_loc_f32_n64w16u : bwd_scan1q_loc_f32_n64w8u)
                     : ls == 1 ? (NP == 16 ? bwd_scan1q_loc_f32_n16s1 : NP == 32 ? bwd_scan1q_loc_f32_n32s1 : bwd_scan1q_loc_f32_n64s1)
                     : (ls == 2 && NP == 64) ? bwd_scan1q_loc_f32_n64s2
                     : c.N <= 16 ? (NW == 4 ? bwd_scan1q_loc_f32_n16w4 : bwd_scan1q_loc_f32_n16w8)
                     : c.N <= 32 ? bwd_scan1q_loc_f32_n32w8 : w16 ? bwd_scan1q_loc_f32_n64w16 : bwd_scan1q_loc_f32_n64w8;
            const int lcb = (ls == 1 || (ls == 2 && NP == 64)) ? 256 / (NP / (ls == 1 ? 1 : 2)) : CB;
            ScanBwdSplit lp = tp;
            lp.p.blocks_per_seg = (seg + lcb - 1) / lcb;
            std::printf("   local pass: S=%d CB=%d%s\n", ls, lcb, (v2 && ((ls == 4 && (NW == 8 || w16)) || (ls == 2 && NP == 64))) ? " v2" : "");
            if (KV > 1) launch(kl2, (unsigned)((c.rows / seg) * lp.p.blocks_per_seg), (unsigned)c.b, (unsigned)(lcb == CB ? NW * 32 : 256), lp, KV);
        }
        launch(kt, (unsigned)((c.rows / seg) * tp.p.blocks_per_seg), (unsigned)c.b, (unsigned)(NW * 32), tp, KV);
    } else if (tk) {
        // scan1_bwd_t (src/gpu/bwd.rs, scan1t_run): NL lanes per channel, S states per lane, NW warps.
        // N <= 16: EMU_N16=w16|w8|o3|o4 picks the kernel as MAMBA_CUDA_BWD1_VAR (default o4).
        const char* var = std::getenv("EMU_N16") ? std::getenv("EMU_N16") : "o4";
        const bool w8 = c.N <= 16 && std::strcmp(var, "w16") != 0;
        const int NL = c.N <= 16 ? 16 : 32, S = c.N <= 32 ? 1 : 2, NW = (c.N <= 32 && !w8) ? 16 : 8;
        const int NP = NL * S, NS = NP + 1, CB = NW * 32 / NL, R = (c.N + 15) / 16;
        const int nseg = (ctiles * 2 + R - 1) / R;
        std::vector<float> ck2((size_t)c.b * c.rows * K * nseg * NP, NAN);
        ScanBwdSplit tp = spp;
        tp.pad0 = np;
        tp.p.ckpt = ck2.data();
        tp.p.R = R;
        tp.p.nseg = nseg;
        tp.p.W = CB;
        tp.p.blocks_per_seg = (seg + CB - 1) / CB;
        const size_t smem = 4 * (size_t)(2 * 16 * NS + 6 * CB * 16 + NW * 2 * 16 * NS + R * S * NW * 32);
        std::printf("   scan1t: NL=%d S=%d NW=%d R=%d nseg=%d smem=%zu\n", NL, S, NW, R, nseg, smem);
        auto k16 = !w8 ? bwd_scan1t_f32_n16
                       : std::strcmp(var, "w8") == 0 ? bwd_scan1t_f32_n16w8
                       : std::strcmp(var, "o3") == 0 ? bwd_scan1t_f32_n16o3 : bwd_scan1t_f32_n16o4;
        auto kt = c.N <= 16 ? k16 : c.N <= 32 ? bwd_scan1t_f32_n32 : bwd_scan1t_f32_n64;
        launch(kt, (unsigned)((c.rows / seg) * tp.p.blocks_per_seg), (unsigned)c.b, (unsigned)(NW * 32), tp, (unsigned)K);
    } else if (c.ssd && g_ssdt_rp) {
        // ssd_bwd_t (src/gpu/bwd.rs, SsdTShape): 8 warps, RP rows per warp, tiles of 16 / RP steps.
        const int RP = g_ssdt_rp, NW = 8, S = c.N <= 32 ? 1 : c.N <= 64 ? 2 : 4, TS = 16 / RP;
        const int NP = 32 * S, NS = NP + 1, CB = NW * RP, R = (c.N + TS - 1) / TS;
        const int nseg = ((c.L + TS - 1) / TS + R - 1) / R;
        std::vector<float> ck2((size_t)c.b * c.rows * nseg * NP, NAN);
        ScanBwdSplit tp = spp;
        tp.p.ckpt = ck2.data();
        tp.p.R = R;
        tp.p.nseg = nseg;
        tp.p.W = CB;
        tp.p.blocks_per_seg = (seg + CB - 1) / CB;
        const size_t smem = 4 * (size_t)(2 * TS * NS + 9 * CB * TS + NW * 2 * TS * NS);
        std::printf("   ssdt: S=%d RP=%d R=%d nseg=%d smem=%zu\n", S, RP, R, nseg, smem);
        auto kt = S == 1 ? bwd_ssdt_f32_s1_r2 : S == 2 ? bwd_ssdt_f32_s2_r2
                : RP == 1 ? bwd_ssdt_f32_s4_r1 : RP == 2 ? bwd_ssdt_f32_s4_r2 : bwd_ssdt_f32_s4_r4;
        if (S < 4 && RP != 2) { std::printf("   (no such variant)\n"); return; }
        launch(kt, (unsigned)((c.rows / seg) * tp.p.blocks_per_seg), (unsigned)c.b, (unsigned)(NW * 32), tp, 1u);
    } else {
        launch(k, gx, (unsigned)c.b, (unsigned)(sh.w * 32), spp, (unsigned)K);
    }
    const Grads e = reference(c);
    cmp("du", du, e.du);
    if (c.ssd) cmp("ddt", ddt_acc, e.ddelta);
    else cmp("ddelta", ddelta, e.ddelta);
    cmp("dA", dA, e.dA);
    cmp("dB", dB, e.dB);
    cmp("dC", dC, e.dC);
    if (c.has_D) cmp("dD", dD, e.dD);
    if (c.has_z) cmp("dz", dz, e.dz);
    if (c.has_bias) cmp("dbias", dbias, e.dbias);
    cmp("dh0", dh0, e.dh0);
}

static Case scan_case(int b, int d, int L, int N, int bg, int cg, bool all, bool big = false) {
    Case c{};
    c.ssd = false;
    c.b = b; c.rows = d; c.L = L; c.N = N; c.bg = bg; c.cg = cg;
    c.softplus = c.has_D = c.has_z = c.has_bias = c.has_h0 = c.has_dlast = all;
    c.u = normals((size_t)b * d * L);
    c.delta = c.softplus ? uniforms((size_t)b * d * L, -3, 1) : uniforms((size_t)b * d * L, 0.001, 0.25);
    if (big) for (size_t e = 0; e < c.delta.size(); e += 3) c.delta[e] = (float)(18 + 6 * (e % 7) / 7.0);
    c.A = uniforms((size_t)d * N, -3, -0.3);
    c.B = normals(bc_len(c, bg));
    c.C = normals(bc_len(c, cg));
    c.D = normals(d);
    c.z = normals((size_t)b * d * L);
    c.bias = uniforms(d, -1, 0);
    c.h0 = normals((size_t)b * d * N, 0.5);
    c.dout = normals((size_t)b * d * L);
    c.dlast = normals((size_t)b * d * N);
    return c;
}

static Case ssd_case(int b, int L, int H, int P, int ng, int N, bool all, bool dpc = false) {
    Case c{};
    c.ssd = true;
    c.b = b; c.L = L; c.H = H; c.P = P; c.ng = ng; c.N = N; c.rows = H * P;
    c.softplus = c.has_D = c.has_z = c.has_bias = c.has_h0 = c.has_dlast = c.has_seq = c.limit = all;
    c.dpc = dpc;
    c.lo = 0.01f; c.hi = 0.2f;
    c.u = normals((size_t)b * L * H * P);
    c.delta = c.softplus ? uniforms((size_t)b * L * H, -4, 0) : uniforms((size_t)b * L * H, 0.001, 0.25);
    c.A = uniforms(H, -3, -0.3);
    c.B = normals(bc_len(c, ng));
    c.C = normals(bc_len(c, ng));
    c.D = normals(dpc ? H * P : H);
    c.z = normals((size_t)b * L * H * P);
    c.bias = uniforms(H, -1, 0);
    c.h0 = normals((size_t)b * H * P * N, 0.5);
    c.dout = normals((size_t)b * L * H * P);
    c.dlast = normals((size_t)b * H * P * N);
    c.seq.resize((size_t)b * L);
    for (int i = 0; i < b; ++i) {
        int s = 0;
        for (int t = 0; t < L; ++t) {
            // EMU_SEQ_EVERY=k (a measurement aid): a start every k steps instead.
            static const int every = std::getenv("EMU_SEQ_EVERY") ? std::atoi(std::getenv("EMU_SEQ_EVERY")) : 0;
            if (every > 0 ? (t > 0 && t % every == 0) : (t > 0 && rng() % 4 == 0)) s += 1 + rng() % 2;
            c.seq[(size_t)i * L + t] = s;
        }
    }
    return c;
}

// ------------------------------------------------------------ SPEC 3

static void conv_case(const char* name, int b, int C, int L, int W, bool cl, bool all) {
    std::printf("%s\n", name);
    std::vector<float> x = normals((size_t)b * C * L), w = normals((size_t)C * W, 1 / std::sqrt((double)W)),
                       bias = normals(C, 0.3), init = normals((size_t)b * C * (W - 1)), dout = normals((size_t)b * C * L),
                       dfin = normals((size_t)b * C * (W - 1));
    auto xi = [&](int i, int ch, int t) { return cl ? ((size_t)i * L + t) * C + ch : ((size_t)i * C + ch) * L + t; };
    // reference
    std::vector<double> edx(x.size()), edw((size_t)C * W, 0), edb(C, 0), edi((size_t)b * C * (W - 1), 0);
    std::vector<double> eout(x.size()), efin((size_t)b * C * (W - 1));
    for (int i = 0; i < b; ++i)
        for (int ch = 0; ch < C; ++ch) {
            std::vector<double> xp(W - 1 + L), dxp(W - 1 + L, 0);
            for (int k = 0; k < W - 1; ++k) xp[k] = all ? init[((size_t)i * C + ch) * (W - 1) + k] : 0;
            for (int t = 0; t < L; ++t) xp[W - 1 + t] = x[xi(i, ch, t)];
            if (all) for (int k = 0; k < W - 1; ++k) dxp[L + k] += dfin[((size_t)i * C + ch) * (W - 1) + k];
            for (int t = 0; t < L; ++t) {
                double pre = all ? bias[ch] : 0;
                for (int k = 0; k < W; ++k) pre += w[ch * W + k] * xp[t + k];
                double sg = sig(pre);
                eout[xi(i, ch, t)] = all ? pre * sg : pre;
                double dpre = dout[xi(i, ch, t)] * (all ? sg * (1 + pre * (1 - sg)) : 1.0);
                edb[ch] += dpre;
                for (int k = 0; k < W; ++k) {
                    edw[ch * W + k] += dpre * xp[t + k];
                    dxp[t + k] += dpre * w[ch * W + k];
                }
            }
            for (int t = 0; t < L; ++t) edx[xi(i, ch, t)] = dxp[W - 1 + t];
            for (int k = 0; k < W - 1; ++k) efin[((size_t)i * C + ch) * (W - 1) + k] = xp[L + k];
            for (int k = 0; k < W - 1; ++k) edi[((size_t)i * C + ch) * (W - 1) + k] = dxp[k];
        }
    std::vector<float> dpre((size_t)b * C * L, NAN), dx(x.size(), NAN), dw((size_t)C * W, 0), db(C, 0),
        di((size_t)b * C * (W - 1), NAN);
    ConvBwdParams p{};
    p.x = x.data();
    p.w = w.data();
    p.bias = all ? bias.data() : nullptr;
    p.init = all && W > 1 ? init.data() : nullptr;
    p.dout = dout.data();
    p.dfinal = all && W > 1 ? dfin.data() : nullptr;
    p.dpre = dpre.data();
    p.dx = dx.data();
    p.dw = dw.data();
    p.dbias = all ? db.data() : nullptr;
    p.dinit = W > 1 ? di.data() : nullptr;
    p.x_sb = (long long)C * L;
    p.x_sc = cl ? 1 : L;
    p.x_st = cl ? C : 1;
    p.d_sb = p.dx_sb = p.x_sb;
    p.d_sc = p.dx_sc = p.x_sc;
    p.d_st = p.dx_st = p.x_st;
    p.batch = b; p.channels = C; p.seqlen = L; p.width = W; p.silu = all; p.channel_last = cl;
    auto blocks = [](size_t total) { return (unsigned)std::clamp<size_t>((total + 255) / 256, 1, 1 << 20); };
    launch(bwd_conv_dpre_f32, blocks((size_t)b * C * L), 1, 256, p);
    launch(bwd_conv_dx_f32, blocks((size_t)b * C * (L + W - 1)), 1, 256, p);
    launch(bwd_conv_dw_f32, (unsigned)C, (unsigned)b, 256, p);
    cmp("dx", dx, edx);
    cmp("dw", dw, edw);
    if (all) cmp("dbias", db, edb);
    if (W > 1) cmp("dinit", di, edi);
    // The tiled forward and the fused backward of conv.cuh (W 2..4): the layout's kernel, and
    // for channel-last several segment counts (segments of one step, uneven segments, one).
    auto tiled = [&](auto wc) {
        constexpr int WT = decltype(wc)::value;
        ConvParams f{};
        f.x = x.data();
        f.w = w.data();
        f.bias = all ? bias.data() : nullptr;
        f.init = all ? init.data() : nullptr;
        f.x_sb = f.o_sb = (long long)C * L;
        f.x_sc = f.o_sc = cl ? 1 : L;
        f.x_st = f.o_st = cl ? C : 1;
        f.batch = b; f.channels = C; f.seqlen = L; f.width = W; f.silu = all; f.channel_last = cl;
        std::vector<unsigned> segs = {1u};
        if (cl) segs = {1u, (unsigned)std::min(L, 3), (unsigned)L, (unsigned)std::max(1, L - 1)};
        for (unsigned sg : segs) {
            std::printf("  tiled (%s, %u segments)\n", cl ? "cl" : "cf", cl ? sg : (unsigned)((L + CONVT_TL - 1) / CONVT_TL));
            std::vector<float> out(x.size(), NAN), fin((size_t)b * C * (W - 1), NAN);
            f.out = out.data();
            f.final_states = fin.data();
            if (cl) launch(+[](ConvParams q) { conv1d_fwd_cl<float, WT>(q); }, (unsigned)(C + CONVT_NT - 1) / CONVT_NT, sg, CONVT_NT, f, (unsigned)b);
            else launch(+[](ConvParams q) { conv1d_fwd_cf<float, WT>(q); }, (unsigned)(L + CONVT_TL - 1) / CONVT_TL, (unsigned)C, CONVT_NT, f, (unsigned)b);
            cmp("fwd out", out, eout);
            cmp("fwd final", fin, efin);
            std::vector<float> dx2(x.size(), NAN), dw2((size_t)C * W, 0), db2(C, 0), di2((size_t)b * C * (W - 1), NAN);
            ConvBwdParams q = p;
            q.dpre = nullptr;
            q.dx = dx2.data();
            q.dw = dw2.data();
            q.dbias = all ? db2.data() : nullptr;
            q.dinit = di2.data();
            if (cl) launch(+[](ConvBwdParams r) { conv_bwd_cl<float, WT>(r); }, (unsigned)(C + 31) / 32, (sg + 3) / 4, CONVT_NT, q, (unsigned)b);
            else launch(+[](ConvBwdParams r) { conv_bwd_cf<float, WT>(r); }, (unsigned)(L + CONVT_TL - 1) / CONVT_TL, (unsigned)C, CONVT_NT, q, (unsigned)b);
            cmp("bwd dx", dx2, edx);
            cmp("bwd dw", dw2, edw);
            if (all) cmp("bwd dbias", db2, edb);
            cmp("bwd dinit", di2, edi);
            if (cl && C % 2 == 0) {  // two channels per thread (`bwd_convt_cl2_*`)
                std::fill(dx2.begin(), dx2.end(), NAN);
                std::fill(dw2.begin(), dw2.end(), 0.f);
                std::fill(db2.begin(), db2.end(), 0.f);
                std::fill(di2.begin(), di2.end(), NAN);
                launch(+[](ConvBwdParams r) { conv_bwd_cl<float, WT, 2>(r); }, (unsigned)(C / 2 + 31) / 32, (sg + 3) / 4, CONVT_NT, q, (unsigned)b);
                cmp("bwd2 dx", dx2, edx);
                cmp("bwd2 dw", dw2, edw);
                if (all) cmp("bwd2 dbias", db2, edb);
                cmp("bwd2 dinit", di2, edi);
            }
            if (cl && C % 4 == 0 && sg == 1) {  // staged through shared memory (`*_cls_*`)
                const unsigned nt = (unsigned)((L + CONVS_TT - 1) / CONVS_TT);
                for (unsigned ny : {1u, 2u, nt}) {
                    std::printf("  staged (cls, %u of %u tiles per row)\n", ny, nt);
                    std::fill(out.begin(), out.end(), NAN);
                    std::fill(fin.begin(), fin.end(), NAN);
                    launch(+[](ConvParams r) { conv1d_fwd_cls<float, WT>(r); }, (unsigned)(C + CONVS_CT - 1) / CONVS_CT, ny, CONVT_NT, f, (unsigned)b);
                    cmp("fwds out", out, eout);
                    cmp("fwds final", fin, efin);
                    std::fill(dx2.begin(), dx2.end(), NAN);
                    std::fill(dw2.begin(), dw2.end(), 0.f);
                    std::fill(db2.begin(), db2.end(), 0.f);
                    std::fill(di2.begin(), di2.end(), NAN);
                    launch(+[](ConvBwdParams r) { conv_bwd_cls<float, WT>(r); }, (unsigned)(C + CONVS_CT - 1) / CONVS_CT, ny, CONVT_NT, q, (unsigned)b);
                    cmp("bwds dx", dx2, edx);
                    cmp("bwds dw", dw2, edw);
                    if (all) cmp("bwds dbias", db2, edb);
                    cmp("bwds dinit", di2, edi);
                }
            }
        }
    };
    if (W == 2) tiled(std::integral_constant<int, 2>{});
    if (W == 3) tiled(std::integral_constant<int, 3>{});
    if (W == 4) tiled(std::integral_constant<int, 4>{});
    // The backward on strided x, dout and dx, each padded differently (channel-last: rows of
    // channels padded; channel-first: rows of steps), as slices of wider activations are (the
    // block's conv input in in_proj's output). Padding is NaN: a read of it spoils the sums,
    // and a write to dx's shows as a non-NaN element outside the tensor.
    // A second set of pads keeps every row start aligned to 16 bytes (the staged form's
    // vectors) where C is a multiple of 4.
    for (int ps = 0; ps < (cl && C % 4 == 0 ? 2 : 1); ++ps) {
        const long long pads[3] = {4, ps ? 8 : 6, ps ? 12 : 2};  // x, dout, dx
        long long sb[3], sc[3], st[3];
        for (int k = 0; k < 3; ++k) {
            sc[k] = cl ? 1 : L + pads[k];
            st[k] = cl ? C + pads[k] : 1;
            sb[k] = (cl ? (long long)L * st[k] : (long long)C * sc[k]) + 8;
        }
        auto at = [&](int k, int i, int ch, int t) { return (size_t)(i * sb[k] + ch * sc[k] + t * st[k]); };
        std::vector<float> xs((size_t)b * sb[0], NAN), ds((size_t)b * sb[1], NAN);
        for (int i = 0; i < b; ++i)
            for (int ch = 0; ch < C; ++ch)
                for (int t = 0; t < L; ++t) {
                    xs[at(0, i, ch, t)] = x[xi(i, ch, t)];
                    ds[at(1, i, ch, t)] = dout[xi(i, ch, t)];
                }
        ConvBwdParams q = p;
        q.x = xs.data();
        q.dout = ds.data();
        q.x_sb = sb[0]; q.x_sc = sc[0]; q.x_st = st[0];
        q.d_sb = sb[1]; q.d_sc = sc[1]; q.d_st = st[1];
        q.dx_sb = sb[2]; q.dx_sc = sc[2]; q.dx_st = st[2];
        auto check = [&](const char* what, const std::vector<float>& dxs, const std::vector<float>& dw3,
                         const std::vector<float>& db3, const std::vector<float>& di3) {
            std::vector<float> d(x.size());
            size_t written = 0;
            for (float v : dxs) written += !std::isnan(v);
            for (int i = 0; i < b; ++i)
                for (int ch = 0; ch < C; ++ch)
                    for (int t = 0; t < L; ++t) d[xi(i, ch, t)] = dxs[at(2, i, ch, t)];
            std::printf("  strided %s\n", what);
            if (written != x.size()) {
                std::printf("FAIL strided %s: %zu elements of dx's buffer written, want %zu\n", what, written, x.size());
                ++failures;
            }
            cmp("strided dx", d, edx);
            cmp("strided dw", dw3, edw);
            if (all) cmp("strided dbias", db3, edb);
            if (W > 1) cmp("strided dinit", di3, edi);
        };
        auto run = [&](bool fused, auto launcher) {
            std::vector<float> dxs((size_t)b * sb[2], NAN), dw3((size_t)C * W, 0), db3(C, 0), di3((size_t)b * C * (W - 1), NAN),
                dp3((size_t)b * C * L, NAN);
            ConvBwdParams r = q;
            r.dpre = fused ? nullptr : dp3.data();
            r.dx = dxs.data();
            r.dw = dw3.data();
            r.dbias = all ? db3.data() : nullptr;
            r.dinit = W > 1 ? di3.data() : nullptr;
            launcher(r);
            check(fused ? (cl ? "tiled cl" : "tiled cf") : "generic", dxs, dw3, db3, di3);
        };
        const bool aligned4 = cl && C % 4 == 0 && st[0] % 4 == 0 && st[1] % 4 == 0 && st[2] % 4 == 0 && sb[0] % 4 == 0 &&
                              sb[1] % 4 == 0 && sb[2] % 4 == 0;
        run(false, [&](const ConvBwdParams& r) {
            launch(bwd_conv_dpre_f32, blocks((size_t)b * C * L), 1, 256, r);
            launch(bwd_conv_dx_f32, blocks((size_t)b * C * (L + W - 1)), 1, 256, r);
            launch(bwd_conv_dw_f32, (unsigned)C, (unsigned)b, 256, r);
        });
        auto fused = [&](auto wc) {
            constexpr int WT = decltype(wc)::value;
            run(true, [&](const ConvBwdParams& r) {
                if (cl) launch(+[](ConvBwdParams v) { conv_bwd_cl<float, WT>(v); }, (unsigned)(C + 31) / 32, (unsigned)std::max(1, std::min(L, 3)), CONVT_NT, r, (unsigned)b);
                else launch(+[](ConvBwdParams v) { conv_bwd_cf<float, WT>(v); }, (unsigned)(L + CONVT_TL - 1) / CONVT_TL, (unsigned)C, CONVT_NT, r, (unsigned)b);
            });
            // Two channels per thread where C (so every stride here) is even.
            if (cl && C % 2 == 0 && st[0] % 2 == 0 && st[1] % 2 == 0 && st[2] % 2 == 0 && sb[0] % 2 == 0 && sb[1] % 2 == 0 && sb[2] % 2 == 0)
                run(true, [&](const ConvBwdParams& r) {
                    launch(+[](ConvBwdParams v) { conv_bwd_cl<float, WT, 2>(v); }, (unsigned)(C / 2 + 31) / 32, 2u, CONVT_NT, r, (unsigned)b);
                });
            if (aligned4) {
                std::printf("  strided staged (cls)\n");
                run(true, [&](const ConvBwdParams& r) {
                    launch(+[](ConvBwdParams v) { conv_bwd_cls<float, WT>(v); }, (unsigned)(C + CONVS_CT - 1) / CONVS_CT, 2u, CONVT_NT, r, (unsigned)b);
                });
            }
        };
        if (W == 2) fused(std::integral_constant<int, 2>{});
        if (W == 3) fused(std::integral_constant<int, 3>{});
        if (W == 4) fused(std::integral_constant<int, 4>{});
    }
}

static int scan1t_only() {
    // The Mamba-1 kernel with time in registers (B and C both vary, N <= 64).
    struct T { int b, d, L, N, bg, cg; bool all; std::vector<int> wants; };
    for (const T& t : std::vector<T>{{2, 8, 100, 16, 1, 1, true, {1, 3, 16}},
                                     {2, 40, 65, 16, 1, 1, true, {1, 2}},
                                     {1, 6, 203, 64, 3, 2, true, {1, 3, 16}},
                                     {2, 5, 70, 5, 1, 1, true, {1, 3}},
                                     {1, 4, 130, 32, 2, 1, false, {1, 5}},
                                     {1, 3, 1001, 16, 1, 1, true, {1, 5, 16}},
                                     {2, 2, 517, 64, 1, 1, false, {1, 4, 9}},
                                     {1, 2, 300, 40, 1, 1, true, {2, 10}},
                                     {1, 2, 1, 3, 1, 1, true, {1}},
                                     {1, 34, 47, 24, 2, 2, true, {1, 2}}}) {
        Case c = scan_case(t.b, t.d, t.L, t.N, t.bg, t.cg, t.all);
        char name[128];
        std::snprintf(name, sizeof name, "scan1t b%d d%d L%d N%d g%d/%d %s", t.b, t.d, t.L, t.N, t.bg, t.cg, t.all ? "all" : "none");
        for (int want : t.wants) { Case cc = c; run_case(name, cc, want, true); }
    }
    {
        Case c = scan_case(1, 20, 40, 8, 1, 1, true, true);
        run_case("scan1t b1 d20 L40 N8 all big steps", c, 1, true);
        Case c2 = scan_case(2, 3, 90, 64, 1, 1, false);
        c2.has_h0 = true;
        for (int want : {1, 3}) { Case cc = c2; run_case("scan1t b2 d3 L90 N64 h0 only", cc, want, true); }
    }
    std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

static int scan1q_only() {
    // The Mamba-1 kernel with four states per lane (B and C both vary, N <= 32).
    struct T { int b, d, L, N, bg, cg; bool all; std::vector<int> wants; };
    const std::vector<T> cases{{2, 8, 100, 16, 1, 1, true, {1, 3, 16}},
                               {2, 70, 65, 16, 1, 1, true, {1, 2}},
                               {2, 5, 70, 5, 1, 1, true, {1, 3}},
                               {1, 4, 130, 32, 2, 1, false, {1, 5}},
                               {1, 3, 1001, 16, 1, 1, true, {1, 5, 16}},
                               {1, 2, 300, 20, 1, 1, true, {2, 10}},
                               {1, 2, 1, 3, 1, 1, true, {1}},
                               {1, 34, 47, 24, 2, 2, true, {1, 2}},
                               {1, 130, 41, 16, 2, 1, true, {1}}};
    for (int w : {8, 4}) {
        if (std::getenv("EMU_VONLY")) break;  // only the N <= 64 "v" cases below
        g_q = w;
        for (const T& t : cases) {
            if ((w == 4 && t.N > 16) || t.N > 32) continue;
            Case c = scan_case(t.b, t.d, t.L, t.N, t.bg, t.cg, t.all);
            char name[128];
            std::snprintf(name, sizeof name, "scan1q w%d b%d d%d L%d N%d g%d/%d %s", w, t.b, t.d, t.L, t.N, t.bg, t.cg, t.all ? "all" : "none");
            for (int want : t.wants) { Case cc = c; run_case(name, cc, want, true); }
        }
    }
    if (std::getenv("EMU_QV")) {
        // N <= 64 (v only): two channels per warp, lane pairs finish a step.
        g_q = 8;
        for (const T& t : std::vector<T>{{1, 20, 96, 64, 2, 1, true, {1, 3, 5}},
                                         {2, 3, 64, 50, 1, 1, false, {1, 2}},
                                         {1, 6, 203, 64, 3, 2, true, {1, 3, 16}},
                                         {2, 5, 77, 40, 1, 1, true, {1, 2}},
                                         {1, 17, 90, 64, 1, 1, false, {1, 4}},
                                         {2, 2, 517, 64, 1, 1, false, {1, 9}}}) {
            Case c = scan_case(t.b, t.d, t.L, t.N, t.bg, t.cg, t.all);
            char name[128];
            std::snprintf(name, sizeof name, "scan1q v b%d d%d L%d N%d g%d/%d %s", t.b, t.d, t.L, t.N, t.bg, t.cg, t.all ? "all" : "none");
            for (int want : t.wants) { Case cc = c; run_case(name, cc, want, true); }
        }
    }
    g_q = 8;
    {
        Case c = scan_case(1, 20, 40, 8, 1, 1, true, true);
        run_case("scan1q b1 d20 L40 N8 all big steps", c, 1, true);
        Case c2 = scan_case(2, 3, 90, 16, 1, 1, false);
        c2.has_h0 = true;
        for (int want : {1, 3}) { Case cc = c2; run_case("scan1q b2 d3 L90 N16 h0 only", cc, want, true); }
        Case c3 = scan_case(1, 9, 200, 16, 1, 1, false);
        c3.has_dlast = true;
        g_qr = 3;
        for (int want : {1, 2}) { Case cc = c3; run_case("scan1q b1 d9 L200 N16 dlast only R3", cc, want, true); }
        g_qr = 0;
    }
    g_q = 0;
    std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

static int ssdt_only() {
    // The SSD kernel with time in registers (no seq_idx, no time split), every variant.
    struct T { int b, L, H, P, ng, N; bool all, dpc; };
    for (const T& t : std::vector<T>{{2, 100, 4, 8, 2, 16, true, false},
                                     {1, 80, 3, 5, 1, 64, true, true},
                                     {2, 64, 2, 3, 2, 100, false, false},
                                     {1, 40, 2, 16, 1, 32, true, false},
                                     {1, 1, 1, 1, 1, 1, true, false},
                                     {1, 203, 2, 24, 1, 128, true, false},
                                     {1, 137, 4, 6, 2, 128, true, true},
                                     {2, 77, 2, 20, 1, 50, true, false},
                                     {1, 300, 1, 17, 1, 128, false, false}}) {
        Case c = ssd_case(t.b, t.L, t.H, t.P, t.ng, t.N, t.all, t.dpc);
        c.has_seq = false;
        char name[128];
        std::snprintf(name, sizeof name, "ssdt b%d L%d h%d p%d g%d N%d %s%s", t.b, t.L, t.H, t.P, t.ng, t.N,
                      t.all ? "all" : "none", t.dpc ? " D per channel" : "");
        for (int rp : {1, 2, 4}) {
            if (t.N <= 64 && rp != 2) continue;
            g_ssdt_rp = rp;
            Case cc = c;
            run_case(name, cc, 1);
        }
    }
    {
        // dlast only, h0 only.
        Case c = ssd_case(1, 150, 2, 8, 1, 128, false);
        c.has_dlast = true;
        g_ssdt_rp = 2;
        { Case cc = c; run_case("ssdt dlast only", cc, 1); }
        c.has_dlast = false; c.has_h0 = true; c.softplus = true; c.delta = uniforms((size_t)150 * 2, -4, 0);
        { Case cc = c; run_case("ssdt h0 only softplus", cc, 1); }
    }
    g_ssdt_rp = 0;
    std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

// The chunked backward's parameters from a case (inputs, options) and the outputs and scratch
// the caller holds (the optional ones given only where the case has them).
struct SbcOut {
    float *dx, *dz, *ddt, *dA, *dD, *dbias, *dinit, *dB, *dC, *sv, *csv, *dsv, *wv, *ev, *S, *G, *cse;
};
static SsdbcParams sbc_params(Case& c, int K, const SbcOut& o) {
    SsdbcParams p{};
    p.x = c.u.data(); p.dt = c.delta.data(); p.A = c.A.data(); p.B = c.B.data(); p.C = c.C.data();
    p.D = c.has_D ? c.D.data() : nullptr; p.z = c.has_z ? c.z.data() : nullptr;
    p.dt_bias = c.has_bias ? c.bias.data() : nullptr; p.init = c.has_h0 ? c.h0.data() : nullptr;
    p.dout = c.dout.data(); p.dfinal = c.has_dlast ? c.dlast.data() : nullptr;
    p.dx = o.dx; p.ddt = o.ddt; p.dA = o.dA; p.dD = c.has_D ? o.dD : nullptr;
    p.dz = c.has_z ? o.dz : nullptr; p.ddt_bias = c.has_bias ? o.dbias : nullptr; p.dinit = o.dinit;
    p.dB = o.dB; p.dC = o.dC; p.sv = o.sv; p.csv = o.csv; p.dsv = o.dsv;
    p.S = o.S; p.G = o.G; p.wv = o.wv; p.ev = o.ev; p.cse = o.cse;
    p.batch = c.b; p.seqlen = c.L; p.nheads = c.H; p.headdim = c.P; p.ngroups = c.ng; p.dstate = c.N; p.nchunks = K;
    p.softplus = c.softplus; p.has_limit = c.limit; p.d_per_channel = c.dpc; p.lo = c.lo; p.hi = c.hi;
    p.seq_idx = c.has_seq ? c.seq.data() : nullptr;
    const long long L = c.L, hp = (long long)c.H * c.P, gn = (long long)c.ng * c.N;
    p.x_st = p.y_st = p.dx_st = hp;
    p.x_sb = p.y_sb = p.dx_sb = L * hp;
    p.b_st = p.c_st = gn;
    p.b_sb = p.c_sb = L * gn;
    p.dt_st = p.ddt_st = c.H;
    p.dt_sb = p.ddt_sb = L * c.H;
    return p;
}

// Strided views (sixty-fourth session, EMU_SBC_STRIDED=1 or `g_sbc_strided`): x, B, C and dt as
// slices of one row buffer per (batch row, step) (x first, as the Mamba2Block's conv output
// and in_proj rows), dout in rows with padding, dx and ddt slices of one output row buffer;
// batch strides past L rows. Input padding is NaN (a read of it poisons the gradients); output
// padding holds a sentinel that must survive. Offsets and strides are multiples of 4 floats
// (16-byte rows, as the tensor-core kernels' vector loads need).
static bool g_sbc_strided = false;
struct SbcStrided {
    std::vector<float> in, dy, out;
    long long in_st, in_sb, dy_st, dy_sb, out_st, out_sb, ob, oc, odt, oddt;
    static constexpr float SENT = 7777.f;
};
static long long r4(long long v) { return (v + 3) / 4 * 4; }
static void sbc_make_strided(SbcStrided& w, SsdbcParams& p, const Case& c) {
    const long long L = c.L, hp = (long long)c.H * c.P, gn = (long long)c.ng * c.N, H = c.H;
    w.ob = 4 + r4(hp) + 4;
    w.oc = w.ob + r4(gn) + 4;
    w.odt = w.oc + r4(gn) + 4;
    w.in_st = w.odt + r4(H) + 4;
    w.in_sb = L * w.in_st + 8;
    w.in.assign((size_t)(c.b * w.in_sb), NAN);
    w.dy_st = r4(hp) + 8;
    w.dy_sb = L * w.dy_st + 4;
    w.dy.assign((size_t)(c.b * w.dy_sb), NAN);
    w.oddt = r4(hp) + 4;
    w.out_st = w.oddt + r4(H) + 4;
    w.out_sb = L * w.out_st + 12;
    w.out.assign((size_t)(c.b * w.out_sb), SbcStrided::SENT);
    for (int i = 0; i < c.b; ++i)
        for (long long t = 0; t < L; ++t) {
            float* row = w.in.data() + i * w.in_sb + t * w.in_st;
            const size_t r = (size_t)i * L + t;
            for (long long e = 0; e < hp; ++e) row[4 + e] = c.u[r * hp + e];
            for (long long e = 0; e < gn; ++e) row[w.ob + e] = c.B[r * gn + e], row[w.oc + e] = c.C[r * gn + e];
            for (long long e = 0; e < H; ++e) row[w.odt + e] = c.delta[r * H + e];
            float* yr = w.dy.data() + i * w.dy_sb + t * w.dy_st;
            for (long long e = 0; e < hp; ++e) yr[e] = c.dout[r * hp + e];
        }
    p.x = w.in.data() + 4;
    p.B = w.in.data() + w.ob;
    p.C = w.in.data() + w.oc;
    p.dt = w.in.data() + w.odt;
    p.x_sb = p.b_sb = p.c_sb = p.dt_sb = w.in_sb;
    p.x_st = p.b_st = p.c_st = p.dt_st = w.in_st;
    p.dout = w.dy.data();
    p.y_sb = w.dy_sb;
    p.y_st = w.dy_st;
    p.dx = w.out.data();
    p.ddt = w.out.data() + w.oddt;
    p.dx_sb = p.ddt_sb = w.out_sb;
    p.dx_st = p.ddt_st = w.out_st;
}
// dx and ddt from the output rows into the dense vectors; every padding value untouched.
static void sbc_take_strided(const SbcStrided& w, const Case& c, std::vector<float>& dx, std::vector<float>& ddt) {
    const long long L = c.L, hp = (long long)c.H * c.P, H = c.H;
    std::vector<char> mine(w.out.size(), 0);
    for (int i = 0; i < c.b; ++i)
        for (long long t = 0; t < L; ++t) {
            const size_t o = (size_t)(i * w.out_sb + t * w.out_st), r = (size_t)i * L + t;
            for (long long e = 0; e < hp; ++e) dx[r * hp + e] = w.out[o + e], mine[o + e] = 1;
            for (long long e = 0; e < H; ++e) ddt[r * H + e] = w.out[o + w.oddt + e], mine[o + w.oddt + e] = 1;
        }
    size_t bad = 0;
    for (size_t e = 0; e < w.out.size(); ++e)
        if (!mine[e] && w.out[e] != SbcStrided::SENT) ++bad;
    if (bad) {
        std::printf("   FAIL: %zu padding values of the strided output rows written\n", bad);
        ++failures;
    } else {
        std::printf("   strided views: padding untouched\n");
    }
}

// Packed sequences for the chunked backward's cases (fifty-fifth session): `ssd_case`'s dense
// seq_idx (a start at a quarter of the steps), or sparse ones: starts at the 32- and 64-step
// edges (1, 31, 32, 33, 63, 64, 65, 127, 128) inside L and at 3% of the other steps.
static void sbc_sparse_seq(Case& c) {
    for (int i = 0; i < c.b; ++i) {
        int s = 0;
        for (int t = 0; t < c.L; ++t) {
            const bool edge = t == 1 || t == 31 || t == 32 || t == 33 || t == 63 || t == 64 || t == 65 || t == 127 || t == 128;
            if (t > 0 && (edge || rng() % 100 < 3)) ++s;
            c.seq[(size_t)i * c.L + t] = s;
        }
    }
}

// The chunked SSD backward (kernels/ssd_bwdc.cu, src/gpu/ssd_bwdc.rs): prep, states,
// gstates, chunk, as the host launches them; gradients against the f64 reference.
static void ssdbc_case(const char* name, Case& c) {
    std::printf("%s\n", name);
    const Grads e = reference(c);
    const int Q = SBC_Q, K = (c.L + Q - 1) / Q, H = c.H, P = c.P, N = c.N, b = c.b;
    const size_t io = (size_t)b * c.L * H * P;
    std::vector<float> dx(io, NAN), dz(io, NAN), ddt((size_t)b * c.L * H, NAN), dA(H, 0), dD(c.D.size(), 0),
        dbias(H, 0), dinit((size_t)b * H * P * N, NAN);
    std::vector<float> dB(bc_len(c, c.ng) + 4, 0), dC(bc_len(c, c.ng) + 4, 0);
    std::vector<float> sv((size_t)b * H * K * Q, NAN), csv(sv.size(), NAN), dsv(sv.size(), NAN), wv(sv.size(), NAN),
        ev(sv.size(), NAN), cse(sv.size(), NAN);
    std::vector<float> S((size_t)b * H * (K + 1) * P * N, NAN), G((size_t)b * H * K * P * N, NAN);
    SsdbcParams p = sbc_params(c, K, {dx.data(), dz.data(), ddt.data(), dA.data(), dD.data(), dbias.data(), dinit.data(),
                                      dB.data(), dC.data(), sv.data(), csv.data(), dsv.data(), wv.data(), ev.data(),
                                      S.data(), G.data(), cse.data()});
    SbcStrided sw;
    const bool strided = g_sbc_strided && !c.has_z;  // the host passes a gate only with dense views
    if (strided) sbc_make_strided(sw, p, c);
    launch(ssdbc_prep_f32, (unsigned)K, (unsigned)H, 32, p, (unsigned)b);
    const unsigned wt = (unsigned)(((P / 4) * (N / 8) + 31) / 32 * 32);
    const bool s128 = P == 64 && N == 128, s64 = P == 64 && N == 64;
    std::printf("   kernels: %s\n", s128 ? "_p64n128" : s64 ? "_p64n64" : "generic");
    // EMU_SBC_W=1: the 512-thread chunk kernel; EMU_SBC_TC=1 / 3: the tensor-core forms of the
    // walk and chunk kernels (tf32 / 3xTF32; fixed shapes only).
    const bool wide = (s128 || s64) && std::getenv("EMU_SBC_W");
    const int tcm = (s128 || s64) && std::getenv("EMU_SBC_TC") ? std::atoi(std::getenv("EMU_SBC_TC")) : 0;
    if (tcm == 1) {
        // Both walks in one launch (grid z 0 / 1), as the host launches them.
        launch(s128 ? ssdbc_walks_f32_p64n128_tc : ssdbc_walks_f32_p64n64_tc, (unsigned)H, (unsigned)b, 256u, p, 2u);
    } else if (tcm == 3) {
        launch(s128 ? ssdbc_states_f32_p64n128_tc3 : ssdbc_states_f32_p64n64_tc3, (unsigned)H, (unsigned)b, 256u, p);
        launch(s128 ? ssdbc_gstates_f32_p64n128_tc3 : ssdbc_gstates_f32_p64n64_tc3, (unsigned)H, (unsigned)b, 256u, p);
    } else {
        launch(s128 ? ssdbc_states_f32_p64n128 : s64 ? ssdbc_states_f32_p64n64 : ssdbc_states_f32, (unsigned)H, (unsigned)b, wt, p);
        launch(s128 ? ssdbc_gstates_f32_p64n128 : s64 ? ssdbc_gstates_f32_p64n64 : ssdbc_gstates_f32, (unsigned)H, (unsigned)b, wt, p);
    }
    if ((size_t)sbc_chunk_floats(P, N) > sizeof(g_smem) / 4) { std::printf("smem too large\n"); ++failures; return; }
    if (wide || tcm) std::printf("   chunk kernel: %s (512 threads)\n", tcm == 1 ? "_tc" : tcm == 3 ? "_tc3" : "_w");
    if (tcm && (size_t)sbc_chunk_floats(P, N, 4) > sizeof(g_smem) / 4) { std::printf("smem too large\n"); ++failures; return; }
    auto chunk = tcm == 1 ? (s128 ? ssdbc_chunk_f32_p64n128_tc : ssdbc_chunk_f32_p64n64_tc)
               : tcm == 3 ? (s128 ? ssdbc_chunk_f32_p64n128_tc3 : ssdbc_chunk_f32_p64n64_tc3)
               : wide ? (s128 ? ssdbc_chunk_f32_p64n128_w : ssdbc_chunk_f32_p64n64_w)
                      : s128 ? ssdbc_chunk_f32_p64n128 : s64 ? ssdbc_chunk_f32_p64n64 : ssdbc_chunk_f32;
    // Heads per block: the largest divisor of h / g up to EMU_SBC_HPB (default 4; the host: 8), as the host.
    {
        const int want = std::getenv("EMU_SBC_HPB") ? std::atoi(std::getenv("EMU_SBC_HPB")) : 4;
        p.hpb = 1;
        for (int d = 1; d <= want; ++d)
            if ((H / c.ng) % d == 0) p.hpb = d;
        std::printf("   heads per block: %d\n", p.hpb);
    }
    launch(chunk, (unsigned)K, (unsigned)(H / p.hpb), (wide || tcm) ? 512u : (unsigned)SBC_NT, p, (unsigned)b);
    if (strided) sbc_take_strided(sw, c, dx, ddt);
    dB.resize(bc_len(c, c.ng));
    dC.resize(bc_len(c, c.ng));
    cmp("dx", dx, e.du);
    cmp("ddt", ddt, e.ddelta);
    cmp("dA", dA, e.dA);
    cmp("dB", dB, e.dB);
    cmp("dC", dC, e.dC);
    if (c.has_D) cmp("dD", dD, e.dD);
    if (c.has_z) cmp("dz", dz, e.dz);
    if (c.has_bias) cmp("ddt_bias", dbias, e.dbias);
    cmp("dinit", dinit, e.dh0);
}

static int ssdbc_only() {
    struct T { int b, L, H, P, ng, N; bool all, dpc; };
    for (const T& t : std::vector<T>{{2, 100, 4, 8, 2, 16, true, false},
                                     {1, 80, 3, 4, 1, 64, true, true},
                                     {2, 64, 2, 12, 2, 8, false, false},
                                     {1, 40, 2, 16, 1, 32, true, false},
                                     {1, 1, 1, 4, 1, 8, true, false},
                                     {1, 203, 2, 24, 1, 128, true, false},
                                     {1, 137, 4, 8, 2, 128, true, true},
                                     {2, 77, 2, 20, 1, 48, true, false},
                                     {1, 96, 2, 64, 1, 128, true, false},
                                     {2, 70, 2, 64, 1, 64, true, true},
                                     {1, 33, 3, 64, 1, 128, false, false},
                                     {1, 300, 1, 4, 1, 128, false, false},
                                     {1, 1, 2, 64, 1, 64, true, false},
                                     {2, 7, 1, 64, 1, 128, true, true}}) {
        Case c = ssd_case(t.b, t.L, t.H, t.P, t.ng, t.N, t.all, t.dpc);
        c.has_seq = false;
        char name[128];
        std::snprintf(name, sizeof name, "ssdbc b%d L%d h%d p%d g%d N%d %s%s", t.b, t.L, t.H, t.P, t.ng, t.N,
                      t.all ? "all" : "none", t.dpc ? " D per channel" : "");
        ssdbc_case(name, c);
    }
    // Packed sequences: dense and sparse seq_idx (`sbc_sparse_seq`), every option.
    for (const T& t : std::vector<T>{{2, 100, 4, 8, 2, 16, true, false},
                                     {1, 203, 2, 24, 1, 128, true, false},
                                     {1, 96, 2, 64, 1, 128, true, false},
                                     {2, 70, 2, 64, 1, 64, true, true}}) {
        for (int sparse = 0; sparse < 2; ++sparse) {
            Case c = ssd_case(t.b, t.L, t.H, t.P, t.ng, t.N, t.all, t.dpc);
            c.has_seq = true;
            if (sparse) sbc_sparse_seq(c);
            char name[128];
            std::snprintf(name, sizeof name, "ssdbc b%d L%d h%d p%d g%d N%d all, %s seq_idx", t.b, t.L, t.H, t.P, t.ng,
                          t.N, sparse ? "sparse" : "dense");
            ssdbc_case(name, c);
        }
    }
    // Strided views (`sbc_make_strided`): x, B, C, dt slices of one row buffer, dout with
    // padded rows, dx and ddt slices of one output row buffer.
    g_sbc_strided = true;
    for (const T& t : std::vector<T>{{2, 100, 4, 8, 2, 16, true, false},
                                     {1, 96, 2, 64, 1, 128, true, false},
                                     {2, 70, 2, 64, 1, 64, true, true},
                                     {1, 33, 3, 64, 1, 128, false, false}}) {
        Case c = ssd_case(t.b, t.L, t.H, t.P, t.ng, t.N, t.all, t.dpc);
        c.has_seq = t.L == 70;
        c.has_z = false;  // the host passes a gate only with dense views
        char name[128];
        std::snprintf(name, sizeof name, "ssdbc strided b%d L%d h%d p%d g%d N%d %s%s%s", t.b, t.L, t.H, t.P, t.ng, t.N,
                      t.all ? "all" : "none", t.dpc ? " D per channel" : "", c.has_seq ? ", seq_idx" : "");
        ssdbc_case(name, c);
    }
    g_sbc_strided = false;
    {
        Case c = ssd_case(1, 150, 2, 8, 1, 128, false);
        c.has_dlast = true;
        { Case cc = c; ssdbc_case("ssdbc dlast only", cc); }
        c.has_dlast = false; c.has_h0 = true; c.softplus = true; c.delta = uniforms((size_t)150 * 2, -4, 0);
        { Case cc = c; ssdbc_case("ssdbc h0 only softplus", cc); }
    }
    std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

// The 64-step chunked SSD backward (kernels/ssd_bwdl.cuh, src/gpu/ssd_bwdc.rs `run_q64`): prep
// and the walks of the 32-step form, then cb, x, s, cbg, fin, as the host launches them. P 64,
// N 128 / 64, no z, no seq_idx. MODE 3 (3xTF32, the f32 default) or 1 (EMU_SBL_MODE=1: tf32,
// the 16-bit types' form; errors ~4e-4 on f32 data, so with EMU_TOL).
// The x and s passes as two kernels and as one (`ssdbl_xs`, as MAMBA_CUDA_SSD_BWDL_XS): every
// case runs both, unless EMU_SBL_XS=0 / 1 picks one.
static bool g_sbl_xs = false;
static bool sbl_xs_on() { return g_sbl_xs; }
static void ssdbl_case_form(const char* name, Case& c, int hpb_want);
static void ssdbl_case(const char* name, Case& c, int hpb_want) {
    // EMU_ONLY: only the cases whose name holds it (the others' data are still drawn, so a
    // case sees the same data as in the whole run).
    if (const char* only = std::getenv("EMU_ONLY"); only && !std::strstr(name, only)) return;
    const char* e = std::getenv("EMU_SBL_XS");
    for (int f = 0; f < 2; ++f) {
        if (e && (std::atoi(e) != 0) != (f == 1)) continue;
        g_sbl_xs = f == 1;
        Case cc = c;
        ssdbl_case_form(name, cc, hpb_want);
    }
}
static void ssdbl_case_form(const char* name, Case& c, int hpb_want) {
    c.has_z = false;
    std::printf("%s\n", name);
    const Grads e = reference(c);
    const int Q = SBC_Q, K = (c.L + Q - 1) / Q, K64 = (c.L + 63) / 64, H = c.H, P = c.P, N = c.N, b = c.b;
    const int mode = std::getenv("EMU_SBL_MODE") ? std::atoi(std::getenv("EMU_SBL_MODE")) : 3;
    const size_t io = (size_t)b * c.L * H * P;
    std::vector<float> dx(io, NAN), ddt((size_t)b * c.L * H, NAN), dA(H, 0), dD(c.D.size(), 0), dbias(H, 0),
        dinit((size_t)b * H * P * N, NAN);
    std::vector<float> dB(bc_len(c, c.ng) + 4, 0), dC(bc_len(c, c.ng) + 4, 0);
    std::vector<float> sv((size_t)b * H * K * Q, NAN), csv(sv.size(), NAN), dsv(sv.size(), NAN), wv(sv.size(), NAN),
        ev(sv.size(), NAN), cse(sv.size(), NAN);
    // The walks store only the 64-step chunks' states (q64), as the host sizes them.
    std::vector<float> S((size_t)b * H * (K64 + 1) * P * N, NAN), G((size_t)b * H * K64 * P * N, NAN);
    std::vector<float> cb((size_t)b * K64 * c.ng * 4096, NAN), dcb(cb.size(), 0), dcs((size_t)b * H * K64 * 64, 0),
        dsd(dcs.size(), NAN), su(dcs.size(), NAN), rq(dcs.size(), NAN), last((size_t)b * H * K64, 0);
    SsdbcParams p = sbc_params(c, K, {dx.data(), nullptr, ddt.data(), dA.data(), dD.data(), dbias.data(), dinit.data(),
                                      dB.data(), dC.data(), sv.data(), csv.data(), dsv.data(), wv.data(), ev.data(),
                                      S.data(), G.data(), cse.data()});
    p.q64 = 1;
    SbcStrided sw;
    if (g_sbc_strided) sbc_make_strided(sw, p, c);
    launch(ssdbc_prep_f32, (unsigned)K, (unsigned)H, 32, p, (unsigned)b);
    const bool s128 = N == 128;
    if (mode == 1) {
        launch(s128 ? ssdbc_walks_f32_p64n128_tc : ssdbc_walks_f32_p64n64_tc, (unsigned)H, (unsigned)b, 256u, p, 2u);
    } else {
        launch(s128 ? ssdbc_states_f32_p64n128_tc3 : ssdbc_states_f32_p64n64_tc3, (unsigned)H, (unsigned)b, 256u, p);
        launch(s128 ? ssdbc_gstates_f32_p64n128_tc3 : ssdbc_gstates_f32_p64n64_tc3, (unsigned)H, (unsigned)b, 256u, p);
    }
    SsdblParams q{};
    q.b = p;
    q.cb = cb.data(); q.dcb = dcb.data(); q.dcs = dcs.data(); q.dsd = dsd.data(); q.last = last.data(); q.su = su.data(); q.rq = rq.data();
    q.k64 = K64;
    q.hpb = 1;
    for (int d = 1; d <= hpb_want; ++d)
        if ((H / c.ng) % d == 0) q.hpb = d;
    // Heads per x block: EMU_SBL_HPBX bounds it (default: as for s).
    const int hx_want = std::getenv("EMU_SBL_HPBX") ? std::atoi(std::getenv("EMU_SBL_HPBX")) : hpb_want;
    q.hpbx = 1;
    for (int d = 1; d <= hx_want; ++d)
        if ((H / c.ng) % d == 0) q.hpbx = d;
    const int nb = N / 64;
    std::printf("   mode %d, heads per s block %d, per x block %d%s\n", mode, q.hpb, q.hpbx,
                sbl_xs_on() ? ", x and s in one kernel" : "");
#define SBL_PICK(KN) (mode == 1 ? (s128 ? KN##_f32_n128_m1 : KN##_f32_n64_m1) : (s128 ? KN##_f32_n128_m3 : KN##_f32_n64_m3))
    launch(SBL_PICK(ssdbl_cb), (unsigned)K64, (unsigned)c.ng, 256u, q, (unsigned)b);
    if (sbl_xs_on()) {
        launch(SBL_PICK(ssdbl_xs), (unsigned)K64, (unsigned)(c.ng * (H / c.ng / q.hpbx)), 512u, q, (unsigned)b);
    } else {
        launch(SBL_PICK(ssdbl_x), (unsigned)K64, (unsigned)(c.ng * (H / c.ng / q.hpbx)), 512u, q, (unsigned)b);
        launch(SBL_PICK(ssdbl_s), (unsigned)K64, (unsigned)(c.ng * nb * (H / c.ng / q.hpb)), 512u, q, (unsigned)b);
    }
    launch(SBL_PICK(ssdbl_cbg), (unsigned)K64, (unsigned)(c.ng * nb), 256u, q, (unsigned)b);
#undef SBL_PICK
    launch(ssdbl_fin_f32, (unsigned)K64, (unsigned)H, 64u, q, (unsigned)b);
    if (g_sbc_strided) sbc_take_strided(sw, c, dx, ddt);
    dB.resize(bc_len(c, c.ng));
    dC.resize(bc_len(c, c.ng));
    cmp("dx", dx, e.du);
    cmp("ddt", ddt, e.ddelta);
    cmp("dA", dA, e.dA);
    cmp("dB", dB, e.dB);
    cmp("dC", dC, e.dC);
    if (c.has_D) cmp("dD", dD, e.dD);
    if (c.has_bias) cmp("ddt_bias", dbias, e.dbias);
    cmp("dinit", dinit, e.dh0);
}

static int ssdbl_only() {
    struct T { int b, L, H, ng, N; bool all, dpc; int hpb; };
    if (const char* e = std::getenv("EMU_SBL_CASE")) {
        // One case "b,L,h,g,N" with softplus and D per head (the golden ssd_05's options),
        // through the 64-step kernels and the 32-step chunk kernels (3xTF32, CUDA cores) on
        // the same data.
        int b, L, H, ng, N;
        if (std::sscanf(e, "%d,%d,%d,%d,%d", &b, &L, &H, &ng, &N) != 5) return 2;
        Case c = ssd_case(b, L, H, 64, ng, N, false);
        c.has_seq = false; c.softplus = true; c.has_D = true;
        c.delta = uniforms((size_t)b * L * H, -4, 0);
        if (std::getenv("EMU_SBL_BIGA")) {
            // The golden ssd_05's ranges: A in [-13, -7], raw steps in [-1.8, 1.8].
            c.A = uniforms(H, -13, -7);
            c.delta = uniforms((size_t)b * L * H, -1.8, 1.8);
        }
        { Case cc = c; ssdbl_case("ssdbl one case", cc, 8); }
        setenv("EMU_SBC_TC", "3", 1);
        { Case cc = c; ssdbc_case("ssdbc (tc3) one case", cc); }
        unsetenv("EMU_SBC_TC");
        { Case cc = c; ssdbc_case("ssdbc (CUDA cores) one case", cc); }
        std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
        return failures ? 1 : 0;
    }
    for (const T& t : std::vector<T>{{1, 96, 2, 1, 128, true, false, 2},
                                     {2, 70, 2, 1, 64, true, true, 1},
                                     {1, 33, 3, 1, 128, false, false, 3},
                                     {1, 160, 4, 2, 64, true, false, 2},
                                     {2, 7, 1, 1, 128, true, true, 1},
                                     {1, 200, 2, 1, 128, true, false, 1},
                                     {1, 128, 1, 1, 64, false, false, 1}}) {
        Case c = ssd_case(t.b, t.L, t.H, 64, t.ng, t.N, t.all, t.dpc);
        c.has_seq = false;
        char name[128];
        std::snprintf(name, sizeof name, "ssdbl b%d L%d h%d p64 g%d N%d %s%s", t.b, t.L, t.H, t.ng, t.N,
                      t.all ? "all" : "none", t.dpc ? " D per channel" : "");
        ssdbl_case(name, c, t.hpb);
    }
    // Packed sequences: dense and sparse seq_idx (`sbc_sparse_seq`), every option but z.
    for (const T& t : std::vector<T>{{1, 96, 2, 1, 128, true, false, 2},
                                     {2, 70, 2, 1, 64, true, true, 1},
                                     {1, 200, 2, 1, 128, true, false, 1}}) {
        for (int sparse = 0; sparse < 2; ++sparse) {
            Case c = ssd_case(t.b, t.L, t.H, 64, t.ng, t.N, t.all, t.dpc);
            c.has_seq = true;
            if (sparse) sbc_sparse_seq(c);
            char name[128];
            std::snprintf(name, sizeof name, "ssdbl b%d L%d h%d p64 g%d N%d all, %s seq_idx", t.b, t.L, t.H, t.ng, t.N,
                          sparse ? "sparse" : "dense");
            ssdbl_case(name, c, t.hpb);
        }
    }
    // Strided views (`sbc_make_strided`), both forms of the x and s passes.
    g_sbc_strided = true;
    for (const T& t : std::vector<T>{{1, 96, 2, 1, 128, true, false, 2},
                                     {2, 70, 2, 1, 64, true, true, 1},
                                     {1, 160, 4, 2, 64, true, false, 2}}) {
        Case c = ssd_case(t.b, t.L, t.H, 64, t.ng, t.N, t.all, t.dpc);
        c.has_seq = t.L == 70;
        char name[128];
        std::snprintf(name, sizeof name, "ssdbl strided b%d L%d h%d p64 g%d N%d %s%s%s", t.b, t.L, t.H, t.ng, t.N,
                      t.all ? "all" : "none", t.dpc ? " D per channel" : "", c.has_seq ? ", seq_idx" : "");
        ssdbl_case(name, c, t.hpb);
    }
    g_sbc_strided = false;
    {
        Case c = ssd_case(1, 100, 2, 64, 1, 64, false);
        c.has_dlast = true;
        { Case cc = c; ssdbl_case("ssdbl dlast only", cc, 2); }
        c.has_dlast = false; c.has_h0 = true; c.softplus = true; c.delta = uniforms((size_t)100 * 2, -4, 0);
        { Case cc = c; ssdbl_case("ssdbl h0 only softplus", cc, 1); }
    }
    {
        // The golden ssd_05's large decays (A in [-13, -7], raw steps in [-1.8, 1.8], softplus,
        // D per head): dA is sensitive to f32 cancellation in the chunk's sums (1.2e-4 off
        // with W's diagonal in its row and column sums; 9.5e-5 with the prefix sums of W's
        // column minus row sums, 1.07e-4 at EMU_SEED=1; 1.4e-5 with W's part as a rectangle,
        // `sbl_rect_*`, fifty-seventh session; ~1e-6 with the decays from f64 sums kept as two
        // f32 values, `sbc_dcs`, fifty-eighth session).
        Case c = ssd_case(1, 200, 2, 64, 1, 64, false);
        c.has_seq = false; c.softplus = true; c.has_D = true;
        c.A = uniforms(2, -13, -7);
        c.delta = uniforms((size_t)200 * 2, -1.8, 1.8);
        ssdbl_case("ssdbl large decays", c, 2);
    }
    std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

// The SSD gate's backward (`bwd_ssd_gate_f32`, kernels/bwd.cu): dz = dout y silu'(z) and
// dy = dout silu(z) over y, against f64; the 16-byte path (n a multiple of 4, aligned) and
// the element path (odd n, or arrays one element past an aligned address), with and without
// dz (then y is only written). Few threads, so that every thread runs several grid steps.
static void gate_case(const char* name, size_t n, size_t off, bool with_dz, unsigned blocks) {
    std::printf("%s\n", name);
    std::vector<float> dout = uniforms(n + off, -2, 2), z = uniforms(n + off, -9, 9), y = uniforms(n + off, -3, 3);
    std::vector<float> dz(n + off, NAN), y0 = y;
    std::vector<double> edz(n), edy(n);
    for (size_t i = 0; i < n; ++i) {
        const double g = dout[off + i], zv = z[off + i], s = sig(zv);
        edz[i] = g * y0[off + i] * s * (1 + zv * (1 - s));
        edy[i] = g * zv * s;
    }
    GateBwdParams p{};
    p.dout = dout.data() + off;
    p.z = z.data() + off;
    p.y = y.data() + off;
    p.dz = with_dz ? dz.data() + off : nullptr;
    p.n = (long long)n;
    launch(bwd_ssd_gate_f32, blocks, 1, 32, p);
    cmp("dy", std::vector<float>(y.begin() + off, y.end()), edy);
    if (with_dz) cmp("dz", std::vector<float>(dz.begin() + off, dz.end()), edz);
}

static void gate_all() {
    gate_case("gate n 4096 vector dz", 4096, 0, true, 3);
    gate_case("gate n 4100 vector no dz", 4100, 0, false, 2);
    gate_case("gate n 1001 element dz", 1001, 0, true, 3);
    gate_case("gate n 400 offset element dz", 400, 1, true, 2);
    gate_case("gate n 1 dz", 1, 0, true, 1);
}

static void conv_all() {
    conv_case("conv b2 c16 L100 W4 all", 2, 16, 100, 4, false, true);
    conv_case("conv b2 c24 L77 W4 channel-last all", 2, 24, 77, 4, true, true);
    conv_case("conv b1 c5 L2 W4 all", 1, 5, 2, 4, false, true);
    conv_case("conv b2 c4 L9 W1 all", 2, 4, 9, 1, false, true);
    conv_case("conv b1 c7 L50 W9 none channel-last", 1, 7, 50, 9, true, false);
    conv_case("conv b2 c3 L1100 W4 all", 2, 3, 1100, 4, false, true);
    conv_case("conv b1 c2 L1030 W3 none", 1, 2, 1030, 3, false, false);
    conv_case("conv b2 c130 L40 W3 channel-last all", 2, 130, 40, 3, true, true);
    conv_case("conv b1 c5 L7 W2 channel-last none", 1, 5, 7, 2, true, false);
    conv_case("conv b2 c4 L2 W3 channel-last all", 2, 4, 2, 3, true, true);
    conv_case("conv b1 c3 L513 W2 all", 1, 3, 513, 2, false, true);
    // The staged channel-last form: a whole tile of channels, two and a part, one step.
    conv_case("conv b2 c64 L200 W4 channel-last all", 2, 64, 200, 4, true, true);
    conv_case("conv b1 c136 L130 W3 channel-last all", 1, 136, 130, 3, true, true);
    conv_case("conv b2 c8 L1 W2 channel-last all", 2, 8, 1, 2, true, true);
    conv_case("conv b1 c192 L64 W4 channel-last none", 1, 192, 64, 4, true, false);
}

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "conv") == 0) {
        conv_all();
        gate_all();
        std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
        return failures ? 1 : 0;
    }
    if (argc > 1 && std::strcmp(argv[1], "ssdbc") == 0) return ssdbc_only();
    if (argc > 1 && std::strcmp(argv[1], "ssdbl") == 0) return ssdbl_only();
    if (argc > 1 && std::strcmp(argv[1], "scan1t") == 0) return scan1t_only();
    if (argc > 1 && std::strcmp(argv[1], "ssdt") == 0) return ssdt_only();
    if (argc > 1 && std::strcmp(argv[1], "scan1q") == 0) return scan1q_only();
    {
        Case c = scan_case(2, 8, 100, 16, 1, 1, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 b2 d8 L100 N16 var/var all", cc, want); }
    }
    {
        Case c = scan_case(1, 6, 203, 64, 3, 0, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 b1 d6 L203 N64 grouped3/shared all", cc, want); }
    }
    {
        Case c = scan_case(2, 4, 70, 100, 0, 1, false);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 b2 d4 L70 N100 shared/var none", cc, want); }
    }
    {
        Case c = scan_case(1, 3, 100, 200, 1, 3, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 b1 d3 L100 N200 var/grouped3 all", cc, want); }
    }
    {
        Case c = scan_case(2, 12, 33, 5, 4, 2, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 b2 d12 L33 N5 grouped4/grouped2 all", cc, want); }
    }
    {
        Case c = scan_case(1, 20, 40, 8, 1, 0, true, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 b1 d20 L40 N8 var/shared all big steps", cc, want); }
    }
    {
        Case c = scan_case(1, 2, 1, 3, 0, 0, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("scan1 L1", cc, want); }
    }
    {
        Case c = ssd_case(2, 100, 4, 8, 2, 16, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("ssd b2 L100 h4 p8 g2 N16 all", cc, want); }
    }
    {
        Case c = ssd_case(1, 80, 3, 5, 1, 64, true, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("ssd b1 L80 h3 p5 g1 N64 all D per channel", cc, want); }
    }
    {
        Case c = ssd_case(2, 64, 2, 3, 2, 100, false);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("ssd b2 L64 h2 p3 g2 N100 none", cc, want); }
    }
    {
        Case c = ssd_case(1, 40, 2, 16, 1, 32, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("ssd b1 L40 h2 p16 g1 N32 all", cc, want); }
    }
    {
        Case c = ssd_case(1, 1, 1, 1, 1, 1, true);
        for (int want : {1, 3, 16}) { Case cc = c; run_case("ssd L1", cc, want); }
    }
    {
        // Long runs cut in many chunks: L not a multiple of 32, with and without h0 / dlast.
        Case c = scan_case(1, 3, 1001, 16, 1, 1, true);
        for (int want : {5, 16, 32}) { Case cc = c; run_case("scan1 b1 d3 L1001 N16 all", cc, want); }
        Case c2 = scan_case(2, 2, 517, 64, 0, 1, false);
        c2.has_h0 = true;
        for (int want : {4, 9}) { Case cc = c2; run_case("scan1 b2 d2 L517 N64 h0 only", cc, want); }
        Case c3 = scan_case(1, 2, 300, 40, 1, 0, false);
        c3.has_dlast = true; c3.softplus = true; c3.delta = uniforms((size_t)2 * 300, -3, 1);
        for (int want : {2, 10}) { Case cc = c3; run_case("scan1 b1 d2 L300 N40 dlast only", cc, want); }
        Case c4 = ssd_case(1, 700, 2, 4, 1, 32, true);
        for (int want : {3, 16}) { Case cc = c4; run_case("ssd b1 L700 h2 p4 N32 all (resets)", cc, want); }
        Case c5 = ssd_case(1, 333, 2, 3, 2, 64, true);
        c5.has_seq = false;
        for (int want : {4, 11}) { Case cc = c5; run_case("ssd b1 L333 h2 p3 g2 N64 no resets", cc, want); }
    }
    conv_all();
    gate_all();
    std::printf("%s: %d failures\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
