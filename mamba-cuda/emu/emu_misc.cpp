// A host emulator for kernels of kernels/misc.cu: `gemv_vec` (a decode step's projection of
// a few rows, one warp per output column, in f32, bf16 and f16 storage, every row-count
// instance, with and without the add into C), the decode step (`block_conv_step` +
// `block_ssm_step` against `block_step_fused` + the norm's conv-state shift), SPEC 4 and 5
// (`state_update`, `conv_update`), the training step's AdamW / sum of squares / axpy, the
// fallback products where cuBLASLt is absent
// (`gemm_few`, `gemm_nt`), the split f32 product's scale and split kernels (`split_max_f32`,
// `split_f32`, against f64 and against plain f32 sums), and the gated RMS norm at 256 and 1024 threads per block (both
// gate orders, with the fused step's deferred conv-state shift), each against a plain double
// loop over the same (rounded) inputs. Every CUDA thread of a block is a
// std::thread, as in emu_bb.cpp.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_misc.cpp -o /tmp/emu_misc && /tmp/emu_misc
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include "emu_cuda.h"
#include "emu_half.h"

struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
struct alignas(8) uint2 {
    unsigned x, y;
};
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
// bf16 storage (conversions in emu_half.h).
struct bf16_t {
    unsigned short v;
};
// f16 storage (conversions in emu_half.h).
struct f16_t {
    unsigned short v;
};
struct __half2 {
    unsigned short x, y;
};
inline float2 __half22float2(__half2 h) { return {emu_h2f(h.x), emu_h2f(h.y)}; }

static std::unique_ptr<std::barrier<>> g_block_bar;
static std::unique_ptr<std::barrier<>> g_warp_bar[32];
inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
static float g_shfl[32][32];
inline float __shfl_xor_sync(unsigned, float v, int o) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shfl[w][l] = v;
    __syncwarp();
    const float r = g_shfl[w][l ^ o];
    __syncwarp();
    return r;
}
static double g_shfl_d[32][32];
inline double __shfl_xor_sync(unsigned, double v, int o) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shfl_d[w][l] = v;
    __syncwarp();
    const double r = g_shfl_d[w][l ^ o];
    __syncwarp();
    return r;
}
template <typename V>
inline V __ldg(const V* p) {
    return *p;
}
inline float __expf(float v) { return std::exp(v); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float atomicAdd(float* p, float v) {
    static std::mutex m;
    std::lock_guard<std::mutex> g(m);
    const float o = *p;
    *p = o + v;
    return o;
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
    static std::mutex m;
    std::lock_guard<std::mutex> g(m);
    const unsigned o = *p;
    *p = o + v;
    return o;
}
inline double atomicAdd(double* p, double v) {
    static std::mutex m;
    std::lock_guard<std::mutex> g(m);
    const double o = *p;
    *p = o + v;
    return o;
}
alignas(16) static float g_smem[16384];
#define MISC_DYN_SMEM(name) float* name = g_smem
inline unsigned ld_acquire_u32(const unsigned* p) { return *p; }
inline void st_release_u32(unsigned* p, unsigned v) { *p = v; }
inline unsigned __ballot_sync(unsigned, bool) { return 0; }
static unsigned g_shfl_u[32][32];
inline unsigned __shfl_xor_sync(unsigned, unsigned v, int o) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    g_shfl_u[w][l] = v;
    __syncwarp();
    const unsigned r = g_shfl_u[w][l ^ o];
    __syncwarp();
    return r;
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
    static std::mutex m;
    std::lock_guard<std::mutex> g(m);
    const unsigned o = *p;
    *p = std::max(o, v);
    return o;
}
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
using std::max;
using std::min;

#include "../kernels/common.cuh"
template <> inline float ldf<bf16_t>(const bf16_t* p) { return emu_bf2f(p->v); }
template <> inline bf16_t cvt<bf16_t>(float v) { return bf16_t{emu_f2bf(v)}; }
template <> inline float ldf<f16_t>(const f16_t* p) { return emu_h2f(p->v); }
template <> inline f16_t cvt<f16_t>(float v) { return f16_t{emu_f2h(v)}; }

// The split products' f16 (kernels/misc.cu `split_f32`).
typedef f16_t __half;
inline __half __float2half_rn(float v) { return f16_t{emu_f2h(v)}; }
inline float __half2float(__half h) { return emu_h2f(h.v); }
inline __half2 __halves2half2(__half a, __half b) { return __half2{a.v, b.v}; }

#include "../kernels/misc.cu"

template <typename F, typename P>
void launch(F k, unsigned gx, unsigned gy, unsigned gz, unsigned threads, const P& p) {
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

static std::mt19937 rng(11);
static int fails = 0;
static void check(const char* what, const std::vector<double>& want, const std::vector<double>& got, double tol) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double d = got[i] - want[i];
        num += std::isfinite(d) ? d * d : 1e300;
        den += want[i] * want[i];
    }
    const double rel = std::sqrt(num / (den + 1e-300));
    printf("%-52s rel %.3e %s\n", what, rel, rel <= tol ? "ok" : "FAIL");
    if (!(rel <= tol)) ++fails;
}

template <typename T>
static T st(float v) {
    return cvt<T>(v);
}
template <typename T>
static double ld(const T& v) {
    return ldf<T>(&v);
}
template <typename T>
static const char* tname() {
    return std::is_same_v<T, float> ? "f32" : std::is_same_v<T, bf16_t> ? "bf16" : "f16";
}
// The output's rounding to the storage type, relative (an f32 sum of K products in any
// order is within ~1e-6 of the double one at these sizes).
template <typename T>
static double out_tol() {
    return std::is_same_v<T, float> ? 2e-6 : std::is_same_v<T, bf16_t> ? 6e-3 : 8e-4;
}

// C (m, n) (row stride ldc) [+]= A (m, k) (row stride lda) . W (n, k)^T on the kernel `run`
// launches (`kind` names it); C has `rows` rows, those past m and the columns past n stay
// untouched.
template <typename T, typename F>
static void product_case(const char* kind, int rows, int m, int n, int k, int lda, int ldc, bool add, F run) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<T> a((size_t)rows * lda), w((size_t)n * k), c((size_t)(rows + 1) * ldc);
    for (auto& v : a) v = st<T>(d(rng));
    for (auto& v : w) v = st<T>(d(rng));
    for (auto& v : c) v = st<T>(d(rng));
    const std::vector<T> c0 = c;
    GemmParams p{};
    p.a = a.data();
    p.w = w.data();
    p.c = c.data();
    p.lda = lda;
    p.ldc = ldc;
    p.M = m;
    p.N = n;
    p.K = k;
    p.add = add;
    run(p);
    std::vector<double> want, got, kept_w, kept_g;
    for (int r = 0; r < rows + 1; ++r)
        for (int j = 0; j < ldc; ++j) {
            const size_t o = (size_t)r * ldc + j;
            if (r < m && j < n) {
                double acc = add ? ld(c0[o]) : 0.0;
                for (int q = 0; q < k; ++q) acc += ld(a[(size_t)r * lda + q]) * ld(w[(size_t)j * k + q]);
                want.push_back(acc);
                got.push_back(ld(c[o]));
            } else {
                kept_w.push_back(ld(c0[o]));
                kept_g.push_back(ld(c[o]));
            }
        }
    char name[128];
    snprintf(name, sizeof name, "%s %s m%d n%d k%d lda%d%s", kind, tname<T>(), m, n, k, lda, add ? " add" : "");
    check(name, want, got, out_tol<T>());
    snprintf(name, sizeof name, "  the rest of C untouched");
    check(name, kept_w, kept_g, 0.0);
}

// `gemv_{T}_m{MM}`: one warp per output column, 8 a block.
template <typename T, int MM>
static void gemv_case(int m, int n, int k, int lda, int ldc, bool add) {
    char kind[16];
    snprintf(kind, sizeof kind, "gemv_m%d", MM);
    product_case<T>(kind, MM, m, n, k, lda, ldc, add,
                    [&](const GemmParams& p) { launch(gemv_vec<T, MM>, (unsigned)((n + 7) / 8), 1, 1, 256, p); });
}

// The fallbacks where cuBLASLt is absent: `gemm_few` (up to 16 rows, a warp per column) and
// `gemm_nt` (64 x 64 tiles).
template <typename T>
static void fallback_all() {
    auto few = [](int m, int n, int k, int lda, int ldc, bool add) {
        product_case<T>("gemm_few", m, m, n, k, lda, ldc, add,
                        [&](const GemmParams& p) { launch(gemm_few<T>, (unsigned)((n + 7) / 8), 1, 1, 256, p); });
    };
    auto nt = [](int m, int n, int k, int lda, int ldc, bool add) {
        product_case<T>("gemm_nt", m, m, n, k, lda, ldc, add, [&](const GemmParams& p) {
            launch(gemm_nt<T>, (unsigned)((n + 63) / 64), (unsigned)((m + 63) / 64), 1, 256, p);
        });
    };
    few(1, 9, 37, 40, 11, false);
    few(16, 13, 100, 100, 13, true);
    few(5, 20, 3, 7, 21, false);
    nt(70, 90, 33, 33, 90, false);
    nt(65, 129, 100, 104, 130, true);
    nt(3, 5, 200, 200, 5, false);
}

template <typename T>
static void gemv_all() {
    constexpr int V = 16 / sizeof(T);
    // K: one 16-byte chunk per lane and less (tail loop only), the 4-chunk main loop with
    // and without a tail; N past a block's 8 columns; lda wider than K.
    gemv_case<T, 1>(1, 13, V, V, 13, false);
    gemv_case<T, 1>(1, 9, 37 * V, 40 * V, 11, true);
    gemv_case<T, 2>(2, 16, 128 * V, 128 * V, 16, false);
    gemv_case<T, 3>(3, 21, 200 * V, 208 * V, 24, true);
    gemv_case<T, 3>(2, 5, 3 * V, 3 * V, 5, false);  // an instance with fewer rows than it holds
    gemv_case<T, 4>(4, 17, 129 * V, 129 * V, 20, false);
    gemv_case<T, 8>(7, 8, 64 * V, 65 * V, 8, true);
    gemv_case<T, 16>(16, 3, 33 * V, 33 * V, 3, false);
}

// out (m, di) = norm(y, z) per group of `group`, on `gated_rmsnorm` with `threads` per block,
// and the fused step's conv-state shift of channels [lo, hi) by the first group's blocks.
// `pairs`: on `gated_rmsnorm_pairs` (no shift there; z's rows two-element aligned).
template <typename T>
static void norm_case(int m, int di, int groups, bool nbg, int threads, bool pairs = false) {
    std::normal_distribution<float> d(0.f, 1.f);
    const int gs = di / groups, zld = di + (pairs ? 6 : 5), cd = 40, width = 4, S = width - 1, xld = 50;
    const int lo = 3, hi = 31;
    std::vector<T> y((size_t)m * di), z((size_t)m * zld), out((size_t)m * di), x((size_t)m * xld);
    std::vector<float> w(di), state((size_t)m * cd * S);
    for (auto& v : y) v = st<T>(d(rng));
    for (auto& v : z) v = st<T>(d(rng));
    for (auto& v : x) v = st<T>(d(rng));
    for (auto& v : w) v = d(rng);
    for (auto& v : state) v = d(rng);
    for (auto& v : out) v = st<T>(NAN);
    const std::vector<float> state0 = state;
    NormParams p{};
    p.y = y.data();
    p.z = z.data();
    p.weight = w.data();
    p.out = out.data();
    p.z_ld = zld;
    p.M = m;
    p.d_inner = di;
    p.group = gs;
    p.norm_before_gate = nbg;
    p.eps = 1e-5f;
    if (pairs) {
        launch(gated_rmsnorm_pairs<T, GATED_NORM_PAIRS>, m, groups, 1, threads, p);
    } else {
        p.shift_state = state.data();
        p.shift_x = x.data();
        p.shift_x_ld = xld;
        p.shift_lo = lo;
        p.shift_hi = hi;
        p.shift_cd = cd;
        p.shift_width = width;
        launch(gated_rmsnorm<T>, m, groups, 1, threads, p);
    }
    std::vector<double> want, got, sw, sg;
    for (int r = 0; r < m; ++r)
        for (int g = 0; g < groups; ++g) {
            std::vector<double> v(gs);
            double ss = 0;
            for (int e = 0; e < gs; ++e) {
                const double zv = ld(z[(size_t)r * zld + g * gs + e]), sz = zv / (1 + std::exp(-zv));
                v[e] = ld(y[(size_t)r * di + g * gs + e]) * (nbg ? 1.0 : sz);
                ss += v[e] * v[e];
            }
            const double rstd = 1 / std::sqrt(ss / gs + 1e-5);
            for (int e = 0; e < gs; ++e) {
                const double zv = ld(z[(size_t)r * zld + g * gs + e]), sz = zv / (1 + std::exp(-zv));
                want.push_back(v[e] * rstd * w[g * gs + e] * (nbg ? sz : 1.0));
                got.push_back(ld(out[(size_t)r * di + g * gs + e]));
            }
        }
    for (int r = 0; r < m; ++r)
        for (int ch = 0; ch < cd; ++ch)
            for (int q = 0; q < S; ++q) {
                const size_t o = ((size_t)r * cd + ch) * S;
                double v = state0[o + q];
                if (!pairs && ch >= lo && ch < hi) v = q + 1 < S ? state0[o + q + 1] : ld(x[(size_t)r * xld + ch]);
                sw.push_back(v);
                sg.push_back(state[o + q]);
            }
    char name[128];
    snprintf(name, sizeof name, "norm%s %s m%d di%d g%d nbg%d threads %d", pairs ? " pairs" : "", tname<T>(), m, di, groups, nbg,
             threads);
    check(name, want, got, std::is_same_v<T, float> ? 2e-6 : out_tol<T>());
    snprintf(name, sizeof name, "  conv-state shift");
    check(name, sw, sg, 0.0);
}

// A Mamba2Block decode step both ways the plugin runs it: `block_conv_step` then
// `block_ssm_step` (two launches), and `block_step_fused` followed by the gated norm's
// deferred shift of the B / C channels' conv state. The two give the same bits (outputs, SSM
// state, conv state), and the two-launch outputs match a double loop.
template <typename T>
static void step_case(int b, int h, int p, int g, int N, int width, bool softplus, bool limit) {
    std::normal_distribution<float> d(0.f, 1.f);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    const int hp = h * p, cd = hp + 2 * g * N, S = width - 1;
    const int xld = cd + 2 * hp + h + 3, dtoff = cd + hp;  // in_proj's row: [z | xBC | dt] as the block lays it
    std::vector<T> xin((size_t)b * xld);
    for (auto& v : xin) v = st<T>(d(rng));
    std::vector<float> cw((size_t)cd * width), cb(cd), A(h), D(h), dtb(h), cs((size_t)b * cd * S), ss((size_t)b * hp * N);
    for (auto& v : cw) v = 0.5f * d(rng);
    for (auto& v : cb) v = 0.3f * d(rng);
    for (auto& v : A) v = -u(rng);
    for (auto& v : D) v = d(rng);
    for (auto& v : dtb) v = 0.5f * d(rng);
    for (auto& v : cs) v = d(rng);
    for (auto& v : ss) v = d(rng);
    const T* xbc_in = xin.data() + hp;  // xBC starts after z (hp columns)
    const T* dt_in = xin.data() + dtoff;
    // Two launches.
    std::vector<float> cs1 = cs, ss1 = ss;
    std::vector<T> conv_out((size_t)b * cd), y1((size_t)b * hp);
    BlockConvStepParams c{};
    c.x = xbc_in;
    c.state = cs1.data();
    c.w = cw.data();
    c.bias = cb.data();
    c.out = conv_out.data();
    c.x_ld = xld;
    c.batch = b;
    c.channels = cd;
    c.width = width;
    launch(block_conv_step<T>, (unsigned)((b * cd + 127) / 128), 1, 1, 128, c);
    BlockSsmStepParams q{};
    q.xbc = conv_out.data();
    q.dt = dt_in;
    q.state = ss1.data();
    q.A = A.data();
    q.D = D.data();
    q.dt_bias = dtb.data();
    q.y = y1.data();
    q.xbc_ld = cd;
    q.dt_ld = xld;
    q.batch = b;
    q.nheads = h;
    q.headdim = p;
    q.ngroups = g;
    q.dstate = N;
    q.softplus = softplus;
    q.has_limit = limit;
    q.lo = 0.05f;
    q.hi = 1.5f;
    launch(block_ssm_step<T>, (unsigned)((b * hp * 32 + 127) / 128), 1, 1, 128, q);
    // One launch, then the norm's shift of the B / C channels.
    std::vector<float> cs2 = cs, ss2 = ss;
    std::vector<T> y2((size_t)b * hp);
    BlockStepParams f{};
    f.xin = xbc_in;
    f.dt = dt_in;
    f.conv_state = cs2.data();
    f.conv_w = cw.data();
    f.conv_b = cb.data();
    f.state = ss2.data();
    f.A = A.data();
    f.D = D.data();
    f.dt_bias = dtb.data();
    f.y = y2.data();
    f.xin_ld = xld;
    f.dt_ld = xld;
    f.batch = b;
    f.nheads = h;
    f.headdim = p;
    f.ngroups = g;
    f.dstate = N;
    f.width = width;
    f.softplus = softplus;
    f.has_limit = limit;
    f.lo = 0.05f;
    f.hi = 1.5f;
    launch(block_step_fused<T>, (unsigned)((p + 7) / 8), (unsigned)h, (unsigned)b, 256, f);
    std::vector<T> zz((size_t)b * hp), normed((size_t)b * hp);
    for (auto& v : zz) v = st<T>(d(rng));
    std::vector<float> nw(hp, 1.f);
    NormParams n{};
    n.y = y2.data();
    n.z = zz.data();
    n.weight = nw.data();
    n.out = normed.data();
    n.z_ld = hp;
    n.M = b;
    n.d_inner = hp;
    n.group = hp;
    n.eps = 1e-5f;
    n.shift_state = cs2.data();
    n.shift_x = xbc_in;
    n.shift_x_ld = xld;
    n.shift_lo = hp;
    n.shift_hi = cd;
    n.shift_cd = cd;
    n.shift_width = width;
    launch(gated_rmsnorm<T>, (unsigned)b, 1, 1, 256, n);
    auto bits_equal = [](const void* a, const void* bb, size_t bytes) { return std::memcmp(a, bb, bytes) == 0; };
    char name[128];
    const bool same = bits_equal(y1.data(), y2.data(), y1.size() * sizeof(T)) &&
                      bits_equal(ss1.data(), ss2.data(), ss1.size() * 4) &&
                      bits_equal(cs1.data(), cs2.data(), cs1.size() * 4);
    snprintf(name, sizeof name, "step %s b%d h%d p%d g%d N%d W%d sp%d lim%d: fused = two launches", tname<T>(), b, h, p, g, N,
             width, softplus, limit);
    printf("%-52s %s\n", name, same ? "ok" : "FAIL");
    if (!same) ++fails;
    // The two-launch step against doubles (the conv outputs rounded to T as the kernels
    // store them).
    std::vector<double> want, got;
    for (int i = 0; i < b; ++i) {
        std::vector<double> xc(cd);
        for (int ch = 0; ch < cd; ++ch) {
            double acc = cb[ch];
            for (int kk = 0; kk < S; ++kk) acc += (double)cw[(size_t)ch * width + kk] * cs[((size_t)i * cd + ch) * S + kk];
            acc += (double)cw[(size_t)ch * width + S] * ld(xbc_in[(size_t)i * xld + ch]);
            xc[ch] = ld(st<T>((float)(acc / (1 + std::exp(-acc)))));
        }
        for (int j = 0; j < h; ++j) {
            const int k = j / (h / g);
            double s = ld(dt_in[(size_t)i * xld + j]) + dtb[j];
            if (softplus) s = s > 20 ? s : std::log1p(std::exp(s));
            if (limit) s = std::min(std::max(s, 0.05), 1.5);
            const double da = std::exp(s * A[j]);
            for (int pp = 0; pp < p; ++pp) {
                const double xv = xc[j * p + pp];
                double y = D[j] * xv;
                for (int nn = 0; nn < N; ++nn) {
                    const double v = da * ss[(((size_t)i * h + j) * p + pp) * N + nn] + s * xv * xc[hp + k * N + nn];
                    y += v * xc[hp + (g + k) * N + nn];
                }
                want.push_back(y);
                got.push_back(ld(y1[(size_t)i * hp + j * p + pp]));
            }
        }
    }
    snprintf(name, sizeof name, "  two launches against doubles");
    check(name, want, got, std::is_same_v<T, float> ? 2e-6 : out_tol<T>());
}

// SPEC 4 (`state_update`: A per (head, p, n), dt per row, D / z / dt_bias present) and SPEC
// 5 (`conv_update`: several steps, a state longer than W - 1) against double loops.
template <typename T>
static void spec45_case(int b, int h, int p, int g, int N, int W, int steps, int slen) {
    std::normal_distribution<float> d(0.f, 1.f);
    const int hp = h * p;
    std::vector<T> x((size_t)b * hp), dt((size_t)b * hp), z((size_t)b * hp), B((size_t)b * g * N), C((size_t)b * g * N), out((size_t)b * hp);
    for (auto* v : {&x, &dt, &z, &B, &C})
        for (auto& e : *v) e = st<T>(d(rng));
    std::vector<float> A((size_t)hp * N), D(hp), dtb(hp), state((size_t)b * hp * N);
    for (auto& v : A) v = -std::exp(0.5f * d(rng));
    for (auto& v : D) v = d(rng);
    for (auto& v : dtb) v = 0.5f * d(rng);
    for (auto& v : state) v = d(rng);
    const std::vector<float> s0 = state;
    StateUpdateParams q{};
    q.state = state.data();
    q.x = x.data();
    q.dt = dt.data();
    q.A = A.data();
    q.B = B.data();
    q.C = C.data();
    q.D = D.data();
    q.z = z.data();
    q.dt_bias = dtb.data();
    q.out = out.data();
    q.batch = b;
    q.nheads = h;
    q.headdim = p;
    q.ngroups = g;
    q.dstate = N;
    q.softplus = 1;
    launch(state_update<T>, (unsigned)((b * hp * 32 + 127) / 128), 1, 1, 128, q);
    std::vector<double> want, got, sw, sg;
    for (int i = 0; i < b; ++i)
        for (int r = 0; r < hp; ++r) {
            const int j = r / p, k = j / (h / g);
            const size_t row = (size_t)i * hp + r;
            double s = ld(dt[row]) + dtb[r];
            s = s > 20 ? s : std::log1p(std::exp(s));
            double y = 0;
            for (int n = 0; n < N; ++n) {
                const double v = std::exp(s * A[(size_t)r * N + n]) * s0[row * N + n] + s * ld(B[((size_t)i * g + k) * N + n]) * ld(x[row]);
                y += v * ld(C[((size_t)i * g + k) * N + n]);
                sw.push_back(v);
                sg.push_back(state[row * N + n]);
            }
            y += D[r] * ld(x[row]);
            const double zv = ld(z[row]);
            want.push_back(y * zv / (1 + std::exp(-zv)));
            got.push_back(ld(out[row]));
        }
    char name[128];
    snprintf(name, sizeof name, "state_update %s b%d h%d p%d g%d N%d", tname<T>(), b, h, p, g, N);
    check(name, want, got, std::is_same_v<T, float> ? 2e-6 : out_tol<T>());
    check("  its state", sw, sg, 2e-6);
    // SPEC 5 on (b, hp) channels.
    std::vector<T> xs((size_t)b * hp * steps), co((size_t)b * hp * steps);
    for (auto& v : xs) v = st<T>(d(rng));
    std::vector<float> w((size_t)hp * W), bias(hp), cst((size_t)b * hp * slen);
    for (auto& v : w) v = 0.5f * d(rng);
    for (auto& v : bias) v = d(rng);
    for (auto& v : cst) v = d(rng);
    const std::vector<float> c0 = cst;
    ConvUpdateParams c{};
    c.state = cst.data();
    c.x = xs.data();
    c.w = w.data();
    c.bias = bias.data();
    c.out = co.data();
    c.batch = b;
    c.channels = hp;
    c.steps = steps;
    c.width = W;
    c.state_len = slen;
    c.silu = 1;
    launch(conv_update<T>, (unsigned)((b * hp + 63) / 64), 1, 1, 64, c);
    want.clear();
    got.clear();
    sw.clear();
    sg.clear();
    for (int row = 0; row < b * hp; ++row) {
        const int ch = row % hp;
        std::vector<double> full;  // [state, x]
        for (int k = 0; k < slen; ++k) full.push_back(c0[(size_t)row * slen + k]);
        for (int t = 0; t < steps; ++t) full.push_back(ld(xs[(size_t)row * steps + t]));
        for (int t = 0; t < steps; ++t) {
            double acc = bias[ch];
            for (int k = 0; k < W; ++k) acc += (double)w[(size_t)ch * W + k] * full[slen + t + 1 - W + k];
            want.push_back(acc / (1 + std::exp(-acc)));
            got.push_back(ld(co[(size_t)row * steps + t]));
        }
        for (int k = 0; k < slen; ++k) {
            sw.push_back(full[steps + k]);
            sg.push_back(cst[(size_t)row * slen + k]);
        }
    }
    snprintf(name, sizeof name, "conv_update %s ch%d W%d steps%d state%d", tname<T>(), hp, W, steps, slen);
    check(name, want, got, std::is_same_v<T, float> ? 2e-6 : out_tol<T>());
    check("  its state", sw, sg, 0.0);
}

// The training step's pieces: `adamw_f32` against the update in doubles (the device test
// checks it bit for bit against mamba-model's AdamW), `sumsq_f32` (f64 sum of squares,
// several blocks adding into one value), `axpy` in bf16.
static void train_pieces() {
    std::normal_distribution<float> d(0.f, 1.f);
    const int n = 1000;
    std::vector<float> w(n), g(n), m(n), v(n);
    for (int i = 0; i < n; ++i) {
        w[i] = d(rng);
        g[i] = d(rng);
        m[i] = 0.1f * d(rng);
        v[i] = std::fabs(0.1f * d(rng));
    }
    std::vector<float> w2 = w, m2 = m, v2 = v;
    AdamWParams p{w.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.f - 0.9f * 0.9f * 0.9f,
                  1.f - 0.999f * 0.999f * 0.999f, 0.5f};
    launch(adamw_f32, 3, 1, 1, 128, p);  // fewer threads than elements: the stride loop
    std::vector<double> pw, pg, mw, mg, vw, vg;
    for (int i = 0; i < n; ++i) {
        const double gg = (double)g[i] * p.grad_scale;
        const double mm = p.beta1 * (double)m2[i] + (1.0 - p.beta1) * gg;
        const double vv = p.beta2 * (double)v2[i] + (1.0 - p.beta2) * gg * gg;
        const double wn = w2[i] * (1.0 - (double)p.lr * p.weight_decay) - p.lr * (mm / p.bc1) / (std::sqrt(vv / p.bc2) + p.eps);
        pw.push_back(wn);
        pg.push_back(w[i]);
        mw.push_back(mm);
        mg.push_back(m[i]);
        vw.push_back(vv);
        vg.push_back(v[i]);
    }
    check("adamw_f32 n1000: parameters", pw, pg, 1e-6);
    check("  first moments", mw, mg, 1e-6);
    check("  second moments", vw, vg, 1e-6);
    double out = 0.0, want = 0.0;
    for (float x : g) want += (double)x * x;
    SumSqParams q{g.data(), &out, n};
    launch(sumsq_f32, 3, 1, 1, 256, q);
    check("sumsq_f32 n1000, 3 blocks", {want}, {out}, 1e-13);
    std::vector<bf16_t> xb(n), yb(n);
    for (auto& e : xb) e = st<bf16_t>(d(rng));
    for (auto& e : yb) e = st<bf16_t>(d(rng));
    std::vector<double> aw, ag;
    for (int i = 0; i < n; ++i) aw.push_back(ld(st<bf16_t>((float)(1.5 * ld(xb[i]) + ld(yb[i])))));
    AxpyParams a{xb.data(), yb.data(), n, 1.5f, 0};
    launch(axpy<bf16_t>, 2, 1, 1, 128, a);
    for (auto& e : yb) ag.push_back(ld(e));
    check("axpy bf16 n1000", aw, ag, 1e-2 / 256);
}

// `split_f32`'s grid as gemm.rs `split_operands` lays it out: a block per tile of 32 rows x 64
// columns, operand after operand (p.start).
static int split_blocks(SplitParams& p) {
    int total = 0;
    for (int i = 0; i < p.nops; ++i) {
        p.start[i] = total;
        total += (p.op[i].kp + 63) / 64 * ((p.op[i].rows + 31) / 32);
    }
    p.start[p.nops] = total;
    return total;
}

// Which forms of the split kernels the split cases run: the max pass's and the split's, each
// the first (`split_max_f32`, `split_f32`) or the second (`_v2`). The plugin's default is the
// max pass's second form with the split's first; `MAMBA_CUDA_SPLIT_V2=1` / `0` both second /
// both first.
static bool g_max_v2 = false, g_split_v2 = false;

// The bits of the largest |x| (NaN's above inf's), as `split_max_f32` leaves them.
static unsigned max_bits(const std::vector<float>& v) {
    unsigned m = 0;
    for (float x : v) {
        unsigned b;
        const float ax = std::fabs(x);
        std::memcpy(&b, &ax, 4);
        m = std::max(m, b);
    }
    return m;
}

// The split f32 product (gemm.rs `run_split`): `split_max_f32` and `split_f32` here, then the
// f16 product of the split operands (f32 sums, as the tensor cores keep them) times the
// device alpha (+ beta c), against an f64 product of the f32 operands. `kdense`: A's and
// B^T's k along memory (else their rows); `spread`: log-uniform magnitudes 1e-6 .. 1e2 and
// a row of A 1e-5 of the rest.
static void split_case(int m, int n, int k, bool kdense, bool spread, bool add, bool nan) {
    std::uniform_real_distribution<float> u(-1.f, 1.f), lg(-6.f, 2.f);
    auto val = [&] { return spread ? u(rng) * std::pow(10.f, lg(rng)) : u(rng); };
    std::vector<float> a((size_t)m * k), bt((size_t)n * k), c((size_t)m * n);
    const long long asr = kdense ? k : 1, ask = kdense ? 1 : m, bsr = kdense ? k : 1, bsk = kdense ? 1 : n;
    for (int i = 0; i < m; ++i)
        for (int q = 0; q < k; ++q) a[i * asr + q * ask] = val() * (spread && i == 1 ? 1e-5f : 1.f);
    for (int j = 0; j < n; ++j)
        for (int q = 0; q < k; ++q) bt[j * bsr + q * bsk] = val();
    for (auto& x : c) x = u(rng);
    if (nan) a[2 * asr + 3 * ask] = NAN;
    const int kp = (k + 7) / 8 * 8;
    std::vector<f16_t> ao((size_t)m * 3 * kp, f16_t{0x7e00}), bo((size_t)n * 3 * kp, f16_t{0x7e00});
    unsigned amax[2] = {0, 0};
    float scale[2] = {NAN, NAN};
    SplitParams p{};
    p.op[0] = SplitOp{a.data(), asr, ask, ao.data(), m, k, kp, 0};
    p.op[1] = SplitOp{bt.data(), bsr, bsk, bo.data(), n, k, kp, 1};
    p.amax = amax;
    p.scale = scale;
    p.add = add;
    p.nops = 2;
    launch(g_max_v2 ? split_max_f32_v2 : split_max_f32, 5, 2, 1, 256, p);
    const bool max_ok = amax[0] == max_bits(a) && amax[1] == max_bits(bt);
    launch(g_split_v2 ? split_f32_v2 : split_f32, split_blocks(p), 1, 1, 256, p);
    std::vector<double> want((size_t)m * n), got((size_t)m * n), f32((size_t)m * n);
    bool pad_zero = true;
    for (int i = 0; i < m; ++i)
        for (int q = k; q < kp; ++q)
            for (int s = 0; s < 3; ++s) pad_zero &= ao[(size_t)i * 3 * kp + s * kp + q].v == 0;
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double w = 0;
            for (int q = 0; q < k; ++q) w += (double)a[i * asr + q * ask] * bt[j * bsr + q * bsk];
            float acc = 0.f, plain = 0.f;
            for (int q = 0; q < k; ++q) plain += a[i * asr + q * ask] * bt[j * bsr + q * bsk];
            f32[(size_t)i * n + j] = (double)plain + (add ? c[(size_t)i * n + j] : 0.0);
            for (int q = 0; q < 3 * kp; ++q)
                acc += emu_h2f(ao[(size_t)i * 3 * kp + q].v) * emu_h2f(bo[(size_t)j * 3 * kp + q].v);
            want[(size_t)i * n + j] = w + (add ? c[(size_t)i * n + j] : 0.0);
            got[(size_t)i * n + j] = (double)(scale[0] * acc + scale[1] * c[(size_t)i * n + j]);
        }
    char what[96];
    snprintf(what, sizeof what, "split f32 product m%d n%d k%d %s%s%s%s", m, n, k, kdense ? "k-dense" : "row-dense",
             spread ? " spread" : "", add ? " add" : "", nan ? " nan" : "");
    if (nan) {
        // Non-finite in, non-finite out (no silent numbers).
        bool nonfinite = false;
        for (double v : got) nonfinite |= !std::isfinite(v);
        printf("%-52s %s\n", what, nonfinite ? "ok" : "FAIL");
        if (!nonfinite) ++fails;
        return;
    }
    if (!pad_zero) {
        printf("%-52s pad FAIL\n", what);
        ++fails;
    }
    if (!max_ok) {
        printf("%-52s largest |x| FAIL\n", what);
        ++fails;
    }
    // As accurate as the same sums in f32 (their error, measured here, plus 1e-6).
    double num = 0, den = 0;
    for (size_t e = 0; e < want.size(); ++e) num += (f32[e] - want[e]) * (f32[e] - want[e]), den += want[e] * want[e];
    const double base = std::sqrt(num / den);
    printf("  (plain f32 sums: rel %.3e)\n", base);
    check(what, want, got, 2 * base + 1e-6);
    // The row at 1e-5 of the rest keeps its own relative accuracy.
    if (spread) {
        std::vector<double> w1(want.begin() + n, want.begin() + 2 * n), g1(got.begin() + n, got.begin() + 2 * n);
        if (add)
            for (int j = 0; j < n; ++j) w1[j] -= c[n + j], g1[j] -= c[n + j];
        check("  its small row", w1, g1, 1e-5);
    }
}

// One operand split for two products (gemm.rs `SharedSplit`): X (m, k) with W (k, n1) and
// U (m, n2) in one `split_max_f32` / `split_f32` pair of three operands, then C1 = X W as
// one f16 product over 3 kp and C2 = X^T U as one over 3 m (the thirds of X's and U's split
// rows read as rows of their own, with the second scale pair; what C held before times beta
// 0), each product's sums in f32 as the tensor cores keep them; both against f64. `spread`: as
// `split_case`, with a column of X (a row of C2) at 1e-5 of the rest.
static void shared_case(int m, int k, int n1, int n2, bool xdense, bool spread) {
    std::uniform_real_distribution<float> u(-1.f, 1.f), lg(-6.f, 2.f);
    auto val = [&] { return spread ? u(rng) * std::pow(10.f, lg(rng)) : u(rng); };
    std::vector<float> x((size_t)m * k), w((size_t)k * n1), uu((size_t)m * n2);
    // X row-dense (dzx, dout) or column-dense; W (k, n1) row-major; U (m, n2) row-major.
    const long long xs0 = xdense ? k : 1, xs1 = xdense ? 1 : m;
    for (int i = 0; i < m; ++i)
        for (int q = 0; q < k; ++q) x[i * xs0 + q * xs1] = val() * (spread && q == 2 ? 1e-5f : 1.f);
    for (auto& e : w) e = val();
    for (auto& e : uu) e = val();
    const int kp = (k + 7) / 8 * 8, kpu = (n2 + 7) / 8 * 8;
    std::vector<f16_t> xo((size_t)m * 3 * kp, f16_t{0x7e00}), wo((size_t)n1 * 3 * kp, f16_t{0x7e00}),
        uo((size_t)m * 3 * kpu, f16_t{0x7e00});
    unsigned amax[3] = {0, 0, 0};
    float scale[4] = {NAN, NAN, NAN, NAN};
    SplitParams p{};
    p.op[0] = SplitOp{x.data(), xs0, xs1, xo.data(), m, k, kp, 0};
    // W^T (n1, k): element (j, q) = W(q, j).
    p.op[1] = SplitOp{w.data(), 1, n1, wo.data(), n1, k, kp, 1};
    p.op[2] = SplitOp{uu.data(), n2, 1, uo.data(), m, n2, kpu, 1};
    p.amax = amax;
    p.scale = scale;
    p.add = 0;
    p.nops = 3;
    launch(g_max_v2 ? split_max_f32_v2 : split_max_f32, 5, 3, 1, 256, p);
    if (amax[0] != max_bits(x) || amax[1] != max_bits(w) || amax[2] != max_bits(uu)) {
        printf("shared split m%d k%d: largest |x| FAIL\n", m, k);
        ++fails;
    }
    launch(g_split_v2 ? split_f32_v2 : split_f32, split_blocks(p), 1, 1, 256, p);
    std::vector<double> w1((size_t)m * n1), g1((size_t)m * n1), w2((size_t)k * n2), g2((size_t)k * n2, 0.0);
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n1; ++j) {
            double want = 0;
            for (int q = 0; q < k; ++q) want += (double)x[i * xs0 + q * xs1] * w[(size_t)q * n1 + j];
            float acc = 0.f;
            for (int q = 0; q < 3 * kp; ++q)
                acc += emu_h2f(xo[(size_t)i * 3 * kp + q].v) * emu_h2f(wo[(size_t)j * 3 * kp + q].v);
            w1[(size_t)i * n1 + j] = want;
            g1[(size_t)i * n1 + j] = (double)(scale[0] * acc + scale[1] * 12345.f);
        }
    for (int q = 0; q < k; ++q)
        for (int j = 0; j < n2; ++j) {
            double want = 0;
            for (int i = 0; i < m; ++i) want += (double)x[i * xs0 + q * xs1] * uu[(size_t)i * n2 + j];
            w2[(size_t)q * n2 + j] = want;
            // X' (3 m, kp) and U' (3 m, kpu): the split rows' thirds as rows, ld kp / kpu.
            float acc = 0.f;
            for (int r = 0; r < 3 * m; ++r) acc += emu_h2f(uo[(size_t)r * kpu + j].v) * emu_h2f(xo[(size_t)r * kp + q].v);
            g2[(size_t)q * n2 + j] = (double)(scale[2] * acc + scale[3] * 12345.f);
        }
    char what[96];
    snprintf(what, sizeof what, "shared split m%d k%d n1 %d n2 %d %s%s", m, k, n1, n2, xdense ? "row-dense" : "col-dense",
             spread ? " spread" : "");
    check((std::string(what) + " X.W").c_str(), w1, g1, 2e-6);
    check((std::string(what) + " X^T.U").c_str(), w2, g2, 2e-6);
    if (spread) {
        // X's column at 1e-5 of the rest: C2's row 2 keeps its own relative accuracy.
        std::vector<double> wr(w2.begin() + 2 * n2, w2.begin() + 3 * n2), gr(g2.begin() + 2 * n2, g2.begin() + 3 * n2);
        check("  its small row", wr, gr, 1e-5);
    }
}

int main() {
    const char* forms[3] = {"both first forms (MAMBA_CUDA_SPLIT_V2=0)", "both second forms (MAMBA_CUDA_SPLIT_V2=1)",
                            "the max pass's second form, the split's first (the default)"};
    for (int f = 0; f < 3; ++f) {
        g_max_v2 = f >= 1;
        g_split_v2 = f == 1;
        printf("split kernels: %s\n", forms[f]);
        shared_case(50, 37, 20, 13, true, false);
        shared_case(300, 64, 40, 24, true, true);
        shared_case(70, 45, 9, 33, false, true);
        shared_case(1100, 16, 8, 8, true, false);
        split_case(40, 24, 100, true, false, false, false);
        split_case(33, 70, 67, false, true, false, false);
        split_case(64, 40, 300, true, true, true, false);
        split_case(20, 9, 2048, false, false, true, false);
        split_case(17, 12, 67, true, false, false, false);  // odd row stride: element loads
        split_case(8, 8, 40, true, false, false, true);
    }
    gemv_all<float>();
    gemv_all<bf16_t>();
    gemv_all<f16_t>();
    fallback_all<float>();
    fallback_all<bf16_t>();
    for (int threads : {256, 1024}) {
        norm_case<float>(2, 1536, 1, false, threads);  // six / two values a thread
        norm_case<float>(1, 300, 3, true, threads);    // groups smaller than the block
        norm_case<bf16_t>(3, 1000, 2, false, threads);
        norm_case<f16_t>(1, 1536, 1, true, threads);
    }
    // The pairs form: 4 / 3 / 1 pairs a thread (2048 = the most it takes, 1536 the LM width),
    // groups of odd pair counts, both gate orders, each type.
    norm_case<float>(2, 2048, 1, false, 256, true);
    norm_case<bf16_t>(3, 1536, 1, true, 256, true);
    norm_case<f16_t>(2, 1536, 1, false, 256, true);
    norm_case<float>(2, 300, 3, true, 64, true);  // 50 pairs a group on 64 threads
    norm_case<bf16_t>(1, 1000, 2, false, 256, true);
    step_case<float>(2, 4, 12, 2, 40, 4, true, false);  // a partial 8-row block, N past 32 lanes
    step_case<float>(1, 3, 8, 1, 16, 2, false, true);
    step_case<bf16_t>(2, 2, 20, 1, 64, 3, true, true);
    step_case<f16_t>(1, 4, 9, 4, 8, 4, true, false);
    spec45_case<float>(2, 4, 5, 2, 40, 4, 3, 5);
    spec45_case<bf16_t>(1, 2, 33, 1, 16, 2, 1, 1);
    spec45_case<f16_t>(2, 3, 4, 3, 8, 5, 6, 4);
    train_pieces();
    printf(fails ? "FAILURES: %d\n" : "all ok\n", fails);
    return fails != 0;
}
