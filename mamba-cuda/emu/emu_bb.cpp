// A host emulator for kernels/block_bwd.cu (the Mamba2Block backward's pieces): the
// strided GEMM (NN and TN, split along K), the sum of the splits, the column copy, the
// gated RMS norm's backward (both gate orders) and the column sum, each against a plain
// double loop. Every CUDA thread of a block is a std::thread, as in emu_fwd.cpp.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_bb.cpp -o /tmp/emu_bb && /tmp/emu_bb
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "emu_cuda.h"

struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
static std::unique_ptr<std::barrier<>> g_block_bar;
static std::unique_ptr<std::barrier<>> g_warp_bar[32];
inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline void __syncwarp() { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
// mma.sync m16n8k8 tf32 (row.col) over the warp's fragments, as the hardware reads them
// (operands truncated to tf32), accumulated in double.
static unsigned g_ma[32][32][4], g_mb[32][32][2];
inline void emu_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]);
static float g_shfl[32][32];
inline float __shfl_xor_sync(unsigned, float v, int o) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shfl[w][l] = v;
    g_warp_bar[w]->arrive_and_wait();
    const float r = g_shfl[w][l ^ o];
    g_warp_bar[w]->arrive_and_wait();
    return r;
}
inline float __expf(float v) { return std::exp(v); }
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline unsigned __ballot_sync(unsigned, bool) { return 0; }  // common.cuh's look-back only
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline float __fdividef(float a, float b) { return a / b; }
using std::max;
using std::min;

// Dynamic shared memory: one buffer, the blocks run one after another.
static float g_smem[16384];
#define BB_DYN_SMEM(name) float* name = g_smem
#include "../kernels/block_bwd.cu"

inline void emu_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, g = l >> 2, c = l & 3;
    for (int e = 0; e < 4; ++e) g_ma[w][l][e] = a[e];
    for (int e = 0; e < 2; ++e) g_mb[w][l][e] = b[e];
    __syncwarp();
    auto rd = [](unsigned u) { return __uint_as_float(u & 0xffffe000u); };
    auto A = [&](int m, int k) { return rd(g_ma[w][(m % 8) * 4 + k % 4][(m >= 8) + 2 * (k >= 4)]); };
    auto B = [&](int k, int n) { return rd(g_mb[w][n * 4 + k % 4][k >= 4]); };
    float out[4];
    for (int e = 0; e < 4; ++e) {
        const int m = g + (e >> 1) * 8, n = 2 * c + (e & 1);
        double acc = d[e];
        for (int k = 0; k < 8; ++k) acc += (double)A(m, k) * B(k, n);
        out[e] = (float)acc;
    }
    __syncwarp();
    for (int e = 0; e < 4; ++e) d[e] = out[e];
}

template <typename P>
void launch(void (*k)(P), unsigned gx, unsigned gy, unsigned gz, unsigned threads, const P& p) {
    blockDim = {threads, 1, 1};
    gridDim = {gx, gy, gz};
    for (unsigned bz = 0; bz < gz; ++bz)
        for (unsigned by = 0; by < gy; ++by)
            for (unsigned bx = 0; bx < gx; ++bx) {
                g_block_bar = std::make_unique<std::barrier<>>(threads);
                for (unsigned w = 0; w < threads / 32; ++w) g_warp_bar[w] = std::make_unique<std::barrier<>>(32);
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

static std::mt19937 rng(7);
static std::vector<float> rnd(size_t n) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}
static int fails = 0;
static void check(const char* what, const std::vector<double>& want, const float* got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    const double rel = std::sqrt(num / (den + 1e-300));
    printf("%-40s rel %.3e %s\n", what, rel, rel < 1e-5 ? "ok" : "FAIL");
    if (!(rel < 1e-5)) ++fails;
}

// C (m, n) = A . B with the strides of the call; split in `splits` parts then summed.
static void gemm_case(const char* what, int m, int n, int k, bool a_t, bool b_t, int splits, bool tc = false) {
    // A(i, k): a_t ? stored (k, m) : (m, k); B(k, j): b_t ? stored (n, k) : (k, n).
    auto a = rnd((size_t)m * k), b = rnd((size_t)k * n);
    BbGemmParams p{};
    p.a = a.data();
    p.b = b.data();
    p.a_si = a_t ? 1 : k;
    p.a_sk = a_t ? m : 1;
    p.b_sk = b_t ? 1 : n;
    p.b_sj = b_t ? k : 1;
    p.m = m;
    p.n = n;
    p.k = k;
    p.kps = ((k + splits - 1) / splits + 15) / 16 * 16;
    const int z = (k + p.kps - 1) / p.kps;
    std::vector<float> parts((size_t)z * m * n, NAN), c((size_t)m * n, NAN);
    p.c = parts.data();
    p.ldc = n;
    p.split_stride = (long long)m * n;
    launch(tc ? bb_gemmt_f32_f32 : bb_gemm_f32_f32, (n + 63) / 64, (m + 63) / 64, z, 256, p);
    BbSumParams s{parts.data(), c.data(), (long long)m * n, (long long)m * n, z, 0};
    launch(bb_sum_f32, 3, 1, 1, 64, s);
    std::vector<double> want((size_t)m * n, 0.0);
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double acc = 0;
            for (int q = 0; q < k; ++q)
                acc += (double)a[a_t ? (size_t)q * m + i : (size_t)i * k + q] * b[b_t ? (size_t)j * k + q : (size_t)q * n + j];
            want[(size_t)i * n + j] = acc;
        }
    check(what, want, c.data(), c.size());
}

// `rpb` rows per block (the kernel's partial sums of the weight's gradient, one row per
// block, summed by the column sum).
// `pairs`: on `bb_norm_bwd_pairs` (z's rows two-element aligned), threads as block_bwd.rs picks;
// `pf`: its form that loads the next row before the block sums (`bb_norm_bwd_pairspf`).
static void norm_case(int m, int di, int groups, bool nbg, int rpb, bool pairs = false, bool pf = false) {
    const int gs = di / groups, zld = di + (pairs ? 8 : 7);
    auto y = rnd((size_t)m * di), z = rnd((size_t)m * zld), w = rnd(di), dn = rnd((size_t)m * di);
    std::vector<float> dy((size_t)m * di, NAN), dz((size_t)m * zld, NAN), dwrow((size_t)m * di, NAN), dw(di, NAN);
    BbNormBwdParams p{};
    p.y = y.data();
    p.z = z.data();
    p.weight = w.data();
    p.dn = dn.data();
    p.dy = dy.data();
    p.dz = dz.data();
    p.dwrow = dwrow.data();
    p.z_ld = zld;
    p.dz_ld = zld;
    p.m = m;
    p.d_inner = di;
    p.group = gs;
    p.norm_before_gate = nbg;
    p.eps = 1e-5f;
    p.rpb = rpb;
    int threads = 32;
    while (threads < (pairs ? gs / 2 : gs) && threads < 256) threads *= 2;
    const int blocks = (m + rpb - 1) / rpb;
    launch(pf ? bb_norm_bwd_pairspf_f32 : pairs ? bb_norm_bwd_pairs_f32 : bb_norm_bwd_f32, blocks, groups, 1, threads, p);
    BbColsumParams c{dwrow.data(), dw.data(), di, blocks, di};
    launch(bb_colsum_f32, (di + 31) / 32, 1, 1, 1024, c);
    // Central differences of the f64 forward give the reference.
    auto fwd = [&](const std::vector<double>& yy, const std::vector<double>& zz, const std::vector<double>& ww, int r, int k) {
        double ss = 0, loss = 0;
        std::vector<double> v(gs);
        for (int e = 0; e < gs; ++e) {
            const double zv = zz[(size_t)r * zld + k * gs + e], sg = zv / (1 + std::exp(-zv));
            v[e] = nbg ? yy[(size_t)r * di + k * gs + e] : yy[(size_t)r * di + k * gs + e] * sg;
            ss += v[e] * v[e];
        }
        const double rstd = 1 / std::sqrt(ss / gs + 1e-5);
        for (int e = 0; e < gs; ++e) {
            const double zv = zz[(size_t)r * zld + k * gs + e], sg = zv / (1 + std::exp(-zv));
            double o = v[e] * rstd * ww[k * gs + e];
            if (nbg) o *= sg;
            loss += o * dn[(size_t)r * di + k * gs + e];
        }
        return loss;
    };
    std::vector<double> yd(y.begin(), y.end()), zd(z.begin(), z.end()), wd(w.begin(), w.end());
    std::vector<double> wdy((size_t)m * di), wdz((size_t)m * di), wdw(di, 0.0);
    std::vector<float> gdz((size_t)m * di);
    const double h = 1e-6;
    for (int r = 0; r < m; ++r)
        for (int i = 0; i < di; ++i) {
            const int k = i / gs;
            double s = yd[(size_t)r * di + i];
            yd[(size_t)r * di + i] = s + h;
            double lp = fwd(yd, zd, wd, r, k);
            yd[(size_t)r * di + i] = s - h;
            double lm = fwd(yd, zd, wd, r, k);
            yd[(size_t)r * di + i] = s;
            wdy[(size_t)r * di + i] = (lp - lm) / (2 * h);
            s = zd[(size_t)r * zld + i];
            zd[(size_t)r * zld + i] = s + h;
            lp = fwd(yd, zd, wd, r, k);
            zd[(size_t)r * zld + i] = s - h;
            lm = fwd(yd, zd, wd, r, k);
            zd[(size_t)r * zld + i] = s;
            wdz[(size_t)r * di + i] = (lp - lm) / (2 * h);
            gdz[(size_t)r * di + i] = dz[(size_t)r * zld + i];
            s = wd[i];
            wd[i] = s + h;
            lp = fwd(yd, zd, wd, r, k);
            wd[i] = s - h;
            lm = fwd(yd, zd, wd, r, k);
            wd[i] = s;
            wdw[i] += (lp - lm) / (2 * h);
        }
    char name[96];
    const char* form = pf ? " pairs pf" : pairs ? " pairs" : "";
    snprintf(name, sizeof name, "norm%s m%d di%d g%d nbg%d rpb%d dy", form, m, di, groups, nbg, rpb);
    check(name, wdy, dy.data(), dy.size());
    snprintf(name, sizeof name, "norm%s m%d di%d g%d nbg%d rpb%d dz", form, m, di, groups, nbg, rpb);
    check(name, wdz, gdz.data(), gdz.size());
    snprintf(name, sizeof name, "norm%s m%d di%d g%d nbg%d rpb%d dw", form, m, di, groups, nbg, rpb);
    check(name, wdw, dw.data(), dw.size());
}

int main() {
    gemm_case("gemm NN 70x90x33", 70, 90, 33, false, false, 1);
    gemm_case("gemm TN 65x129x100 split 3", 65, 129, 100, true, false, 3);
    gemm_case("gemm NT 17x5x40", 17, 5, 40, false, true, 1);
    gemm_case("gemm TT 33x64x64 split 2", 33, 64, 64, true, true, 2);
    // The 3xTF32 tensor-core form: partial tiles on both edges, K not a multiple of 16,
    // split along K, and each operand layout of the block's products.
    gemm_case("gemmt NN 70x90x33", 70, 90, 33, false, false, 1, true);
    gemm_case("gemmt TN 65x129x100 split 3", 65, 129, 100, true, false, 3, true);
    gemm_case("gemmt NT 17x5x40", 17, 5, 40, false, true, 1, true);
    gemm_case("gemmt TT 130x64x200 split 2", 130, 64, 200, true, true, 2, true);
    {
        auto s = rnd(5 * 11);
        std::vector<float> d(5 * 4, NAN);
        BbCopyNParams p{};
        p.c[0] = BbCopyParams{s.data() + 3, d.data(), 11, 4, 5, 4};
        p.n = 1;
        launch(bb_copyn_f32_f32, 1, 2, 1, 32, p);  // as block_bwd.rs: columns on x, rows on y
        std::vector<double> want(20);
        for (int r = 0; r < 5; ++r)
            for (int c = 0; c < 4; ++c) want[r * 4 + c] = s[r * 11 + 3 + c];
        check("copy 5x4 from ld 11", want, d.data(), 20);
    }
    {
        // Three copies in one launch, of different widths and row counts: more columns
        // than a block's threads, rows walked by fewer blocks than rows, and a copy
        // narrower than the grid (its extra blocks idle).
        auto s = rnd(9 * 80);
        std::vector<float> d0(7 * 70, NAN), d1(9 * 3, NAN), d2(4 * 33, NAN);
        BbCopyNParams p{};
        p.c[0] = BbCopyParams{s.data() + 5, d0.data(), 80, 70, 7, 70};
        p.c[1] = BbCopyParams{s.data() + 77, d1.data(), 80, 3, 9, 3};
        p.c[2] = BbCopyParams{s.data() + 40, d2.data(), 80, 33, 4, 33};
        p.n = 3;
        launch(bb_copyn_f32_f32, 3, 3, 3, 32, p);
        std::vector<double> w0(7 * 70), w1(9 * 3), w2(4 * 33);
        for (int r = 0; r < 7; ++r)
            for (int c = 0; c < 70; ++c) w0[r * 70 + c] = s[r * 80 + 5 + c];
        for (int r = 0; r < 9; ++r)
            for (int c = 0; c < 3; ++c) w1[r * 3 + c] = s[r * 80 + 77 + c];
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 33; ++c) w2[r * 33 + c] = s[r * 80 + 40 + c];
        check("copies[0] 7x70 from ld 80", w0, d0.data(), 7 * 70);
        check("copies[1] 9x3 from ld 80", w1, d1.data(), 9 * 3);
        check("copies[2] 4x33 from ld 80", w2, d2.data(), 4 * 33);
    }
    {
        // Four columns per thread (vec 4, as block_bwd.rs sets where the row starts are
        // aligned): a width that is no multiple of 4 (the last thread's columns one by one),
        // rows past one block's, beside a vec 1 copy in the same launch; the grid's x as the
        // host computes it (the widest copy's ceil(cols / vec) threads).
        auto s = rnd(11 * 80);
        std::vector<float> d0(11 * 72, NAN), d1(6 * 5, NAN);
        BbCopyNParams p{};
        p.c[0] = BbCopyParams{s.data() + 8, d0.data(), 80, 72, 11, 70, 4, 0};
        p.c[1] = BbCopyParams{s.data() + 75, d1.data(), 80, 5, 6, 5, 1, 0};
        p.n = 2;
        launch(bb_copyn_f32_f32, 1, 2, 2, 32, p);  // 18 threads of 4 columns cover 70
        std::vector<double> w0(11 * 72), w1(6 * 5);
        for (int r = 0; r < 11; ++r)
            for (int c = 0; c < 72; ++c) w0[r * 72 + c] = c < 70 ? s[r * 80 + 8 + c] : NAN;
        for (int r = 0; r < 6; ++r)
            for (int c = 0; c < 5; ++c) w1[r * 5 + c] = s[r * 80 + 75 + c];
        // Columns 70 and 71 of each destination row must stay untouched (NaN).
        int spill = 0;
        for (int r = 0; r < 11; ++r)
            for (int c = 70; c < 72; ++c) spill += !std::isnan(d0[r * 72 + c]);
        if (spill) {
            printf("copy vec4: %d writes past cols\n", spill);
            ++fails;
        }
        for (int r = 0; r < 11; ++r) w0[r * 72 + 70] = w0[r * 72 + 71] = 0, d0[r * 72 + 70] = d0[r * 72 + 71] = 0;
        check("copy vec4 11x70 from ld 80 to ld 72", w0, d0.data(), 11 * 72);
        check("copy vec1 6x5 beside it", w1, d1.data(), 6 * 5);
    }
    // A row per block, and 16 / 5 rows per block with a partial last block.
    for (int rpb : {1, 16, 5}) {
        norm_case(3, 40, 1, false, rpb);
        norm_case(2, 48, 3, true, rpb);
        norm_case(2, 300, 2, false, rpb);
        norm_case(301, 40, 1, true, rpb);  // rows past the column sums' 4-way main loop
        norm_case(37, 300, 2, true, rpb);
        // The pairs form: 1, 3 and 4 pairs a thread (2048 columns, the most it takes).
        norm_case(3, 40, 1, false, rpb, true);
        norm_case(2, 300, 2, true, rpb, true);
        norm_case(5, 1536, 1, false, rpb, true);
        norm_case(2, 2048, 1, true, rpb, true);
        norm_case(37, 96, 3, false, rpb, true);
        // Prefetching the next row (`pf`): one row, several, a partial last block.
        norm_case(3, 40, 1, false, rpb, true, true);
        norm_case(2, 300, 2, true, rpb, true, true);
        norm_case(7, 1536, 1, false, rpb, true, true);
        norm_case(37, 96, 3, true, rpb, true, true);
    }
    printf(fails ? "FAILURES: %d\n" : "all ok\n", fails);
    return fails != 0;
}
