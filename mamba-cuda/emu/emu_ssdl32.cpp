// A host emulator for the f32 LM-shape SSD forward of kernels/ssd_lm32.cu (`ssdl32_*`):
// the thread emulator, mma.sync and the inputs of emu_ssdc.cpp (included with its main
// renamed), the tf32 operands truncated as the tensor cores read them. Runs C B^T
// (`ssdl_cb_f32_q128`), the chunk states (HB heads per block), the combine and the
// outputs against an f64 recurrence (SPEC 2) on odd shapes.
//
//   g++ -std=c++20 -O1 -pthread mamba-cuda/emu/emu_ssdl32.cpp -o /tmp/emu_ssdl32 && /tmp/emu_ssdl32
#define main emu_ssdc_main
#include "emu_ssdc.cpp"
#undef main
// mma.sync m8n8k4 f64: lane (g, c4) gives A[g][c4] and B[c4][g], gets D[g][2 c4], D[g][2 c4 + 1].
static double g_da[32][32], g_db[32][32];
inline void emu_dmma(double (&d)[2], double a, double b) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, g = l >> 2, c4 = l & 3;
    g_da[w][l] = a;
    g_db[w][l] = b;
    __syncwarp();
    for (int j = 0; j < 2; ++j)
        for (int kk = 0; kk < 4; ++kk) d[j] = std::fma(g_da[w][4 * g + kk], g_db[w][4 * (2 * c4 + j) + kk], d[j]);
    __syncwarp();
}
// emu_f2h, emu_h2f and emu_mma_f16 (the `_pfh` outputs kernel and `ssdl32_csplit`): emu_ssdc.cpp.
template <typename V>
inline V __shfl_xor_sync(unsigned, V v, int m) {
    return shfl_any(v, (int)(threadIdx.x % 32) ^ m);
}
#define L32_WG  // `ssdlw_out_f32_pfw` (ssd_wg.cu is included by emu_ssdc.cpp)
#include "../kernels/ssd_lm32.cu"

// emu_launch with `threads` threads per block (the 512-thread `ssdl32_sseq_w16_*`).
static void emu_launch_t(void (*kern)(SsdParams), const SsdParams& p, int gx, int gy, int gz, unsigned threads) {
    blockDim = {threads, 1, 1};
    gridDim = {(unsigned)gx, (unsigned)gy, (unsigned)gz};
    for (int bz = 0; bz < gz; ++bz)
        for (int by = 0; by < gy; ++by)
            for (int bx = 0; bx < gx; ++bx) {
                std::memset(g_smem_bytes, 0xff, sizeof(g_smem_bytes));
                g_block_bar = std::make_unique<std::barrier<>>(threads);
                for (unsigned w = 0; w < threads / 32; ++w) g_warp_bar[w] = std::make_unique<std::barrier<>>(32);
                for (unsigned w = 0; w < threads / 128; ++w) g_wg_bar[w] = std::make_unique<std::barrier<>>(128);
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < threads; ++t)
                    ts.emplace_back([&, t] {
                        threadIdx = {t, 0, 0};
                        blockIdx = {(unsigned)bx, (unsigned)by, (unsigned)bz};
                        kern(p);
                    });
                for (auto& t : ts) t.join();
            }
}

struct Case32 {
    int b, L, h, p, g, N, hb;
    int D;
    bool z, bias, init, fin, softplus, limit;
};

static int run32(const Case32& cs, std::mt19937& rng, double* eo, double* ef) {
    const int b = cs.b, L = cs.L, h = cs.h, P = cs.p, g = cs.g, N = cs.N, Q = 128, PB = 64;
    std::uniform_real_distribution<float> U(0.f, 1.f);
    std::normal_distribution<float> Nd(0.f, 1.f);
    auto normals = [&](size_t n) {
        std::vector<float> v(n);
        for (auto& x : v) x = Nd(rng);
        return v;
    };
    auto unif = [&](size_t n, float lo, float hi) {
        std::vector<float> v(n);
        for (auto& x : v) x = lo + (hi - lo) * U(rng);
        return v;
    };
    const size_t io = (size_t)b * L * h * P, bc = (size_t)b * L * g * N, st = (size_t)b * h * P * N;
    auto x = normals(io), Bm = normals(bc), Cm = normals(bc), z = normals(io), init = normals(st);
    auto dt = cs.softplus ? unif((size_t)b * L * h, -3, 1) : unif((size_t)b * L * h, 0.001f, 0.7f);
    // EMU_SLOW=1: slowly decaying heads (A in [-0.05, -0.01]), so the M X tiles far from the
    // diagonal weigh in the outputs (with the default data a form that drops them passes).
    auto A = std::getenv("EMU_SLOW") ? unif(h, -0.05f, -0.01f) : unif(h, -8, -0.5f);
    auto Dv = normals(cs.D == 2 ? h * P : h);
    auto bias = cs.softplus ? unif(h, -3, 0) : unif(h, 0, 0.3f);
    const float lo = 0.001f, hi = 1.5f;
    // EMU_SEQ=1: packed sequences (seq_idx; the header kernels' resets, fifty-fifth session).
    const bool seqs = std::getenv("EMU_SEQ") && std::atoi(std::getenv("EMU_SEQ")) == 1;
    const std::vector<int> ids = emu_packed_ids(b, L, seqs, rng);  // emu_ssdc.cpp
    std::vector<float> out(io, NAN), fin(st, NAN);
    std::vector<double> ro(io), rf(st);
    for (int i = 0; i < b; ++i)
        for (int j = 0; j < h; ++j) {
            const int k = j / (h / g);
            std::vector<double> S((size_t)P * N);
            for (size_t e = 0; e < S.size(); ++e) S[e] = cs.init ? init[((size_t)i * h + j) * P * N + e] : 0.0;
            for (int t = 0; t < L; ++t) {
                if (t > 0 && ids[(size_t)i * L + t] != ids[(size_t)i * L + t - 1]) std::fill(S.begin(), S.end(), 0.0);
                double s = (double)dt[((size_t)i * L + t) * h + j] + (cs.bias ? bias[j] : 0.0);
                if (cs.softplus) s = s > 20 ? s : std::log1p(std::exp(s));
                if (cs.limit) s = std::min<double>(std::max<double>(s, lo), hi);
                const double a = std::exp(s * A[j]);
                const float* bt = &Bm[(((size_t)i * L + t) * g + k) * N];
                const float* ct = &Cm[(((size_t)i * L + t) * g + k) * N];
                for (int q = 0; q < P; ++q) {
                    const size_t o = (((size_t)i * L + t) * h + j) * P + q;
                    double y = 0;
                    for (int n = 0; n < N; ++n) {
                        double& v = S[(size_t)q * N + n];
                        v = a * v + s * x[o] * bt[n];
                        y += v * ct[n];
                    }
                    if (cs.D) y += (cs.D == 2 ? Dv[j * P + q] : Dv[j]) * (double)x[o];
                    if (cs.z) y *= z[o] / (1 + std::exp(-(double)z[o]));
                    ro[o] = y;
                }
            }
            for (size_t e = 0; e < S.size(); ++e) rf[((size_t)i * h + j) * P * N + e] = S[e];
        }
    SsdParams p{};
    p.x = x.data(); p.dt = dt.data(); p.A = A.data(); p.B = Bm.data(); p.C = Cm.data();
    p.D = cs.D ? Dv.data() : nullptr; p.z = cs.z ? z.data() : nullptr; p.dt_bias = cs.bias ? bias.data() : nullptr;
    p.init = cs.init ? init.data() : nullptr; p.out = out.data(); p.final_states = cs.fin ? fin.data() : nullptr;
    p.x_sb = (long long)L * h * P; p.x_st = (long long)h * P;
    p.dt_sb = (long long)L * h; p.dt_st = h;
    p.B_sb = p.C_sb = (long long)L * g * N; p.B_st = p.C_st = (long long)g * N;
    p.z_sb = p.out_sb = p.x_sb; p.z_st = p.out_st = p.x_st;
    p.batch = b; p.seqlen = L; p.nheads = h; p.headdim = P; p.ngroups = g; p.dstate = N;
    p.d_per_channel = cs.D == 2; p.softplus = cs.softplus; p.has_limit = cs.limit; p.lo = lo; p.hi = hi;
    p.qb = PB;
    const int K = (L + Q - 1) / Q;
    p.nchunks = K;
    p.chunk_len = Q;
    std::vector<float> states((size_t)b * h * K * P * N, NAN);
    const size_t dpad = ((size_t)b * h * K + 3) & ~(size_t)3;
    std::vector<float> decay(dpad + (size_t)b * g * K * Q * Q, NAN);
    std::vector<float> hdrs((size_t)b * h * K * l32_hdr_bytes() / 4, NAN);
    p.chunk_states = states.data();
    p.chunk_decay = decay.data();
    p.seq_idx = reinterpret_cast<const int*>(hdrs.data());
    p.seq_ids = seqs ? ids.data() : nullptr;
    // EMU_CB=1: C B^T on the f64 tensor cores (`ssdl32_cb`).
    if (std::getenv("EMU_CB") && std::atoi(std::getenv("EMU_CB")) == 1) emu_launch(ssdl32_cb, p, K, g, b);
    else emu_launch(ssdl_cb_f32_q128, p, K, g, b);
    // EMU_HDR=1: the headers with dt read in rows of 8 heads (`ssdl32_hdr8`).
    if (std::getenv("EMU_HDR") && std::atoi(std::getenv("EMU_HDR")) == 1) emu_launch(ssdl32_hdr8, p, (h + 7) / 8, K, b);
    else emu_launch(ssdl32_hdr, p, (b * h * K + 7) / 8, 1, 1);
    // EMU_SSEQ=1 / 2: the states with the combine folded in (`ssdl32_sseq_s1` / `_s2`); 4
    // `_w16_n*`; 5 / 6 the split-f16 states (`ssdl32_sseqh_n64` / `_n128`, N 64: `_n64`); 7
    // those on wgmma at N 128 (`ssdlw_states_f32_q128_n128`).
    const char* sq = std::getenv("EMU_SSEQ");
    const int sseq = sq ? std::atoi(sq) : 0;
    if (sseq) {
        std::fprintf(stderr, "(sseq %d)\n", sseq);
        if (sseq == 4) emu_launch_t(N == 128 ? ssdl32_sseq_w16_n128 : ssdl32_sseq_w16_n64, p, P / PB, h, b, 512);
        else if (sseq >= 5 && sseq <= 7) {
            // The split-f16 states (`ssdl32_bsplit_n*`, then `ssdl32_sseqh_n64` / `_n128`, or
            // with 7 at N 128 `ssdlw_states_f32_q128_n128`, kernels/ssd_wg.cu, on wgmma).
            const int nb = sseq == 5 || N == 64 ? 64 : 128;
            std::vector<float> bsp((size_t)b * L * g * N, NAN), bin((size_t)b * K * g * N, NAN);
            SsdParams pb = p;
            pb.out = bsp.data();
            pb.init = bin.data();
            emu_launch(N == 128 ? ssdl32_bsplit_n128 : ssdl32_bsplit_n64, pb, K, g, b);
            SsdParams ps = p;
            ps.B = bsp.data();
            ps.B_sb = (long long)L * g * N;
            ps.B_st = (long long)g * N;
            ps.out = bin.data();
            if (sseq == 7 && N == 128) emu_launch_t(ssdlw_states_f32_q128_n128, ps, P / PB, h, b, 256);
            else if (std::getenv("EMU_SE") && std::atoi(std::getenv("EMU_SE")) == 1) {
                // EMU_SE=1: the forms with less staging between chunks (`_n64e` / `_n128e`, the
                // plugin's default).
                std::fprintf(stderr, "(sseqh e)\n");
                emu_launch(nb == 64 ? ssdl32_sseqh_n64e : ssdl32_sseqh_n128e, ps, (P / PB) * (N / nb), h, b);
            } else emu_launch(nb == 64 ? ssdl32_sseqh_n64 : ssdl32_sseqh_n128, ps, (P / PB) * (N / nb), h, b);
        } else emu_launch(sseq == 2 ? ssdl32_sseq_s2 : ssdl32_sseq_s1, p, (P / PB) * (N / 64), h, b);
    } else {
        emu_launch(N == 128 ? ssdl32_states_n128 : ssdl32_states_n64, p, K * (P / PB), h / cs.hb, b);
        blockDim = {1, 1, 1};
        gridDim = {1, 1, 1};
        threadIdx = {0, 0, 0};
        blockIdx = {0, 0, 0};
        ssdl32_combine(p);
    }
    // EMU_OPF=1: the outputs kernel with the C B^T prefetch (`_pf`); EMU_F16=1 (N 128): the
    // split C (`ssdl32_csplit`) and C S^T on the f16 tensor cores (`_pfh`).
    const bool opf = std::getenv("EMU_OPF") && std::atoi(std::getenv("EMU_OPF")) == 1;
    const bool f16 = N == 128 && std::getenv("EMU_F16") && std::atoi(std::getenv("EMU_F16")) == 1;
    const int Lp = (L + 15) / 16 * 16;
    std::vector<float> chl((size_t)b * Lp * g * N, NAN), isc((size_t)b * Lp * g, NAN);
    if (f16) {
        SsdParams pc = p;
        pc.out = chl.data();
        pc.init = isc.data();
        // EMU_MX16=1: M X left of the diagonal on the f16 tensor cores too (`ssdl32_csplit_m`
        // splits C B^T in place, `_pfm`).
        const bool mx16 = std::getenv("EMU_MX16") && std::atoi(std::getenv("EMU_MX16")) == 1;
        emu_launch(mx16 ? ssdl32_csplit_m : ssdl32_csplit, pc, (b * Lp * g / 2 + 7) / 8, 1, 1);
        SsdParams po = p;
        po.C = chl.data();
        po.init = isc.data();
        // EMU_OBAL=1: the causal M X balanced over the warps (`_pfhb`; `_pfh3` is `_pfh`
        // with other launch bounds).
        const bool bal = std::getenv("EMU_OBAL") && std::atoi(std::getenv("EMU_OBAL")) == 1;
        // EMU_OWG=1 (with EMU_MX16=1): `_pfm` with C S^T on wgmma (`ssdlw_out_f32_pfw`).
        const bool owg = mx16 && std::getenv("EMU_OWG") && std::atoi(std::getenv("EMU_OWG")) == 1;
        // EMU_MXD=2 (with EMU_OWG=1): `_pfw2`, M X's C B^T quads two tiles ahead.
        const bool d2 = owg && std::getenv("EMU_MXD") && std::atoi(std::getenv("EMU_MXD")) == 2;
        if (owg) std::fprintf(stderr, d2 ? "(pfw2)\n" : "(pfw)\n");
        emu_launch(d2 ? ssdlw_out_f32_pfw2 : owg ? ssdlw_out_f32_pfw : mx16 ? ssdl32_out_n128_pfm : bal ? ssdl32_out_n128_pfhb : ssdl32_out_n128_pfh, po,
                   K * (P / PB), h, b);
    } else if (opf) emu_launch(N == 128 ? ssdl32_out_n128_pf : ssdl32_out_n64_pf, p, K * (P / PB), h, b);
    else emu_launch(N == 128 ? ssdl32_out_n128 : ssdl32_out_n64, p, K * (P / PB), h, b);
    std::vector<double> go(io), gf(st);
    for (size_t e = 0; e < io; ++e) go[e] = out[e];
    for (size_t e = 0; e < st; ++e) gf[e] = fin[e];
    *ef = cs.fin ? emu_rel(gf, rf) : 0.0;
    *eo = emu_rel(go, ro);
    return 0;
}

int main(int argc, char** argv) {
    std::mt19937 rng(11);
    const int only = argc > 1 ? std::atoi(argv[1]) : -1;
    const Case32 cases[] = {
        {1, 1, 2, 64, 1, 128, 2, 2, true, true, true, true, true, true},
        {1, 33, 3, 64, 3, 64, 1, 1, true, true, true, true, true, true},
        {1, 130, 2, 64, 1, 128, 2, 2, true, true, true, true, true, true},
        {1, 257, 2, 128, 2, 128, 1, 0, false, true, false, true, false, false},
        {2, 200, 4, 64, 1, 64, 4, 1, false, true, true, true, true, false},
        {1, 300, 6, 64, 2, 128, 1, 2, true, false, true, false, true, true},
    };
    int bad = 0, idx = 0;
    for (const auto& c : cases) {
        if (only >= 0 && idx++ != only) continue;
        double eo = 0, ef = 0;
        run32(c, rng, &eo, &ef);
        const bool ok = eo < 1e-5 && ef < 1e-5;
        bad += !ok;
        std::printf("ssdl32 b%d L%d h%d p%d g%d N%d HB%d: out %.3g final %.3g %s\n", c.b, c.L, c.h, c.p, c.g, c.N, c.hb,
                    eo, ef, ok ? "ok" : "FAIL");
        std::fflush(stdout);
    }
    std::printf("%s\n", bad ? "FAILURES" : "all ok");
    return bad != 0;
}
