// SPEC 1, the Mamba-1 selective scan forward for few channels and a long-ish sequence
// (the seed shape: b2 d384 N64 L400-800), `s1s_fwd_*`: one pass, small blocks.
//
// A block owns CPB channels of one batch row and of one "segment" (B and C groups
// constant inside), 16 threads per channel, each thread holding 4 of the channel's (at
// most 64) states in registers: state n = g + 16 s (g = thread of the channel, s < 4), so
// the B / C rows a quarter-warp reads are in distinct banks. With CPB 8 (4 warps) the
// seed has 96 blocks: no SM holds more than one, no scheduler more than one warp.
// Time goes in tiles of 32 steps through a ring of S1S_NST shared-memory stages filled
// with cp.async (16-byte copies when every row is 16-byte aligned, else 4-byte copies for
// f32 and plain loads for 16-bit types) S1S_NST - 1 tiles ahead: the raw B and C rows of
// the tile ([n][t], rows n >= N zero-filled), and the raw delta, u, z rows of the
// block's channels. Per tile: dt (bias, softplus) and dt*u into f32 arrays (two
// elements per thread), then the step loop: 4 steps at a time, one 16-byte read per
// state of B and of C (4 steps of one state) and one of dt and dt*u; y partials of the
// 4 steps go to shared memory as one float4; after the tile the 16 partials of each
// (channel, step) are summed, D u added, the gate applied and the outputs stored.
// Steps past L have dt = 0 and B = 0 (zero-filled), so the loop has no tail checks.
#include "common.cuh"

#define S1S_TT 32
#define S1S_NST 3
#define S1S_G 16

#ifndef DYN_SMEM
#define DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif


// 16 bytes global -> shared; src_bytes < 16 zero-fills the rest (0: no read).
__device__ __forceinline__ void s1s_cp16(void* dst, const void* src, int src_bytes) {
#ifdef MAMBA_EMU
    emu_cp_async(dst, src, src_bytes, 16);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
#endif
}
__device__ __forceinline__ void s1s_cp4(void* dst, const void* src, int src_bytes) {
#ifdef MAMBA_EMU
    emu_cp_async(dst, src, src_bytes, 4);
#else
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
#endif
}
__device__ __forceinline__ void s1s_commit() {
#ifdef MAMBA_EMU
    emu_cp_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int K>
__device__ __forceinline__ void s1s_wait() {
#ifdef MAMBA_EMU
    emu_cp_wait(K);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(K) : "memory");
#endif
}

// mbarriers (the forms IL 6 / 7): init, arrive (release), arrive once this thread's
// earlier cp.async copies have landed (counts as one arrival: `.noinc`), wait (acquire)
// for the completion of the phase of the given parity.
__device__ __forceinline__ void s1s_mb_init(unsigned long long* b, unsigned count) {
#ifdef MAMBA_EMU
    emu_mb_init(b, count);
#else
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"((unsigned)__cvta_generic_to_shared(b)), "r"(count) : "memory");
#endif
}
__device__ __forceinline__ void s1s_mb_arrive(unsigned long long* b) {
#ifdef MAMBA_EMU
    emu_mb_arrive(b);
#else
    asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(b))
                 : "memory");
#endif
}
__device__ __forceinline__ void s1s_mb_cp_arrive(unsigned long long* b) {
#ifdef MAMBA_EMU
    emu_mb_cp_arrive(b);
#else
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"((unsigned)__cvta_generic_to_shared(b)) : "memory");
#endif
}
__device__ __forceinline__ void s1s_mb_wait(unsigned long long* b, unsigned parity) {
#ifdef MAMBA_EMU
    emu_mb_wait(b, parity);
#else
    asm volatile(
        "{\n .reg .pred P1;\n S1S_WAIT:\n"
        " mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
        " @P1 bra S1S_DONE;\n bra S1S_WAIT;\n S1S_DONE:\n}\n" ::"r"((unsigned)__cvta_generic_to_shared(b)),
        "r"(parity)
        : "memory");
#endif
}

// Row stride (elements) of a staged 32-step row of T: 16-byte aligned, and for f32 144
// bytes, so 8 rows g = 0..7 read 16 bytes at the same column in distinct bank quads.
template <typename T>
__host__ __device__ constexpr int s1s_rs() {
    return sizeof(T) == 4 ? 36 : 40;
}

// Shared memory (bytes): NST stages of [B 64 rows][C 64 rows][delta, u, z CPB rows each]
// of T, then f32 dt and dt*u [CPB][36], the y partials [CPB][16][36].
template <typename T>
__host__ __device__ constexpr int s1s_stage_elems(int cpb) {
    return (128 + 3 * cpb) * s1s_rs<T>();
}
template <typename T>
__host__ __device__ constexpr int s1s_smem_bytes(int cpb) {
    return S1S_NST * ((s1s_stage_elems<T>(cpb) * (int)sizeof(T) + 15) & ~15) + 4 * (2 * cpb * 36 + cpb * 16 * 36);
}

// Four consecutive staged elements (16 bytes of f32, 8 of bf16/f16) as floats.
template <typename T>
__device__ __forceinline__ float4 s1s_ld4(const T* p) {
    if constexpr (sizeof(T) == 4) {
        return *reinterpret_cast<const float4*>(p);
    } else {
        const uint2 q = *reinterpret_cast<const uint2*>(p);
        const unsigned short e[4] = {(unsigned short)(q.x & 0xffffu), (unsigned short)(q.x >> 16),
                                     (unsigned short)(q.y & 0xffffu), (unsigned short)(q.y >> 16)};
        return make_float4(ldf(reinterpret_cast<const T*>(&e[0])), ldf(reinterpret_cast<const T*>(&e[1])),
                           ldf(reinterpret_cast<const T*>(&e[2])), ldf(reinterpret_cast<const T*>(&e[3])));
    }
}

template <typename T>
__device__ __forceinline__ void s1s_fwd(const Scan1Params& p) {
    DYN_SMEM(smem);
    constexpr int RS = s1s_rs<T>();
    constexpr int EPC = 16 / (int)sizeof(T);  // elements per 16-byte chunk
    constexpr int CH = S1S_TT / EPC;          // chunks per staged row
    const int CPB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int nthreads = blockDim.x, tid = threadIdx.x;
    const int bx = blockIdx.x, i = blockIdx.y;
    const int seg_id = bx / p.blocks_per_seg, blk = bx % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CPB;
    const int cn = min(CPB, (seg_id + 1) * p.seg - c0);
    const int cl = tid / S1S_G, g = tid % S1S_G;
    const bool active = cl < cn;

    const int stage_bytes = (s1s_stage_elems<T>(CPB) * (int)sizeof(T) + 15) & ~15;
    char* stages = reinterpret_cast<char*>(smem);
    float* s_dt = reinterpret_cast<float*>(stages + S1S_NST * stage_bytes);
    float* s_du = s_dt + CPB * 36;
    float* s_y = s_du + CPB * 36;

    const size_t rbase = (size_t)i * dim + c0;  // (batch, first channel) row
    const T* u = static_cast<const T*>(p.u) + rbase * L;
    const T* delta = static_cast<const T*>(p.delta) + rbase * L;
    const T* zp = p.z ? static_cast<const T*>(p.z) + rbase * L : nullptr;
    T* out = static_cast<T*>(p.out) + rbase * L;
    const T* brow = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L;
    const T* crow = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L;
    const int ntiles = (L + S1S_TT - 1) / S1S_TT;
    const int nrows = 128 + 3 * CPB;  // staged rows per tile

    // Row r of a stage: B rows 0..63, C rows 64..127, then delta, u, z of each channel.
    auto src_row = [&](int r, bool& ok) -> const T* {
        if (r < 64) {
            ok = r < N;
            return brow + (size_t)min(r, N - 1) * L;
        }
        if (r < 128) {
            ok = r - 64 < N;
            return crow + (size_t)min(r - 64, N - 1) * L;
        }
        const int q = r - 128, k = q / CPB, c = q % CPB;
        ok = c < cn && (k < 2 || zp);
        const T* base = k == 0 ? delta : k == 1 ? u : (zp ? zp : u);
        return base + (size_t)min(c, cn - 1) * L;
    };
    auto stage_tile = [&](int tile) {
        T* dst = reinterpret_cast<T*>(stages + (tile % S1S_NST) * stage_bytes);
        const int t0 = tile * S1S_TT;
        if (sizeof(T) == 4 ? p.async_copy != 0 : p.async_copy == 1) {
            for (int e = tid; e < nrows * CH; e += nthreads) {
                const int r = e / CH, k = e % CH;
                bool ok;
                const T* src = src_row(r, ok);
                const int t = t0 + k * EPC;
                ok = ok && t < L;
                s1s_cp16(dst + r * RS + k * EPC, ok ? src + t : src, ok ? 16 : 0);
            }
        } else if constexpr (sizeof(T) == 4) {
            for (int e = tid; e < nrows * S1S_TT; e += nthreads) {
                const int r = e / S1S_TT, k = e % S1S_TT;
                bool ok;
                const T* src = src_row(r, ok);
                const int t = t0 + k;
                ok = ok && t < L;
                s1s_cp4(dst + r * RS + k, ok ? src + t : src, ok ? 4 : 0);
            }
        } else {
            for (int e = tid; e < nrows * S1S_TT; e += nthreads) {
                const int r = e / S1S_TT, k = e % S1S_TT;
                bool ok;
                const T* src = src_row(r, ok);
                const int t = t0 + k;
                dst[r * RS + k] = (ok && t < L) ? src[t] : cvt<T>(0.f);
            }
        }
    };

    const int c = c0 + cl;
    float h[4], a2[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        const int n = g + S1S_G * s;
        const bool ok = active && n < N;
        h[s] = (ok && p.h0) ? p.h0[((size_t)i * dim + c) * N + n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
    }
    const float bias = (active && p.delta_bias) ? p.delta_bias[c] : 0.f;

    // The first NST - 1 tiles in flight (one commit group per tile, empty past the end).
#pragma unroll
    for (int k = 0; k < S1S_NST - 1; ++k) {
        if (k < ntiles) stage_tile(k);
        s1s_commit();
    }
    // This thread's elements of the prep (dt, dt*u) and of the output pass: channel
    // tid / 16, steps 2 (tid % 16) and 2 (tid % 16) + 1.
    const int pc = tid / 16, pt = 2 * (tid % 16);
    const bool pact = pc < cn;
    const float pbias = (pact && p.delta_bias) ? p.delta_bias[c0 + pc] : 0.f;
    const float pD = (pact && p.D) ? p.D[c0 + pc] : 0.f;
    (void)bias;

    for (int tile = 0; tile < ntiles; ++tile) {
        s1s_wait<S1S_NST - 2>();
        __syncthreads();  // tile's stage complete; everyone is done with tile - 1
        if (tile + S1S_NST - 1 < ntiles) stage_tile(tile + S1S_NST - 1);
        s1s_commit();
        const T* st = reinterpret_cast<const T*>(stages + (tile % S1S_NST) * stage_bytes);
        const T* sB = st;
        const T* sC = st + 64 * RS;
        const T* sdl = st + 128 * RS;
        const T* su = sdl + CPB * RS;
        const T* sz = su + CPB * RS;
        const int t0 = tile * S1S_TT;
        // dt and dt * u of the tile (0 past L and for channels past cn).
        if (pc < CPB) {
#pragma unroll
            for (int k = 0; k < 2; ++k) {
                const int t = pt + k;
                float dt = 0.f, du = 0.f;
                if (pact && t0 + t < L) {
                    dt = ldf(sdl + pc * RS + t) + pbias;
                    if (p.softplus) dt = softplus_f(dt);
                    du = dt * ldf(su + pc * RS + t);
                }
                s_dt[pc * 36 + t] = dt;
                s_du[pc * 36 + t] = du;
            }
        }
        __syncthreads();
        {
            const float* tdt = s_dt + cl * 36;
            const float* tdu = s_du + cl * 36;
            float* ty = s_y + (cl * S1S_G + g) * 36;
#pragma unroll
            for (int q = 0; q < S1S_TT; q += 4) {
                const float4 dt4 = *reinterpret_cast<const float4*>(tdt + q);
                const float4 du4 = *reinterpret_cast<const float4*>(tdu + q);
                float4 bv[4], cv[4];
#pragma unroll
                for (int s = 0; s < 4; ++s) {
                    bv[s] = s1s_ld4(sB + (g + S1S_G * s) * RS + q);
                    cv[s] = s1s_ld4(sC + (g + S1S_G * s) * RS + q);
                }
                const float dts[4] = {dt4.x, dt4.y, dt4.z, dt4.w};
                const float dus[4] = {du4.x, du4.y, du4.z, du4.w};
                float y[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    float e[4];
#pragma unroll
                    for (int s = 0; s < 4; ++s) e[s] = ex2_fast(dts[j] * a2[s]);
                    float acc = 0.f;
#pragma unroll
                    for (int s = 0; s < 4; ++s) {
                        const float bj = j == 0 ? bv[s].x : j == 1 ? bv[s].y : j == 2 ? bv[s].z : bv[s].w;
                        const float cj = j == 0 ? cv[s].x : j == 1 ? cv[s].y : j == 2 ? cv[s].z : cv[s].w;
                        h[s] = fmaf(e[s], h[s], dus[j] * bj);
                        acc = fmaf(cj, h[s], acc);
                    }
                    y[j] = acc;
                }
                *reinterpret_cast<float4*>(ty + q) = make_float4(y[0], y[1], y[2], y[3]);
            }
        }
        __syncthreads();
        // Outputs: sum the 16 partials, + D u, * silu(z).
        if (pact) {
            const float* row = s_y + pc * S1S_G * 36 + pt;
            float y0 = 0.f, y1 = 0.f, w0 = 0.f, w1 = 0.f;
#pragma unroll
            for (int gg = 0; gg < S1S_G; gg += 2) {
                const float2 a = *reinterpret_cast<const float2*>(row + gg * 36);
                const float2 b = *reinterpret_cast<const float2*>(row + (gg + 1) * 36);
                y0 += a.x;
                y1 += a.y;
                w0 += b.x;
                w1 += b.y;
            }
            float ys[2] = {y0 + w0, y1 + w1};
#pragma unroll
            for (int k = 0; k < 2; ++k) {
                const int t = pt + k;
                if (t0 + t < L) {
                    float y = ys[k];
                    if (p.D) y += pD * ldf(su + pc * RS + t);
                    if (zp) y *= silu_f(ldf(sz + pc * RS + t));
                    out[(size_t)pc * L + t0 + t] = cvt<T>(y);
                }
            }
        }
    }
    s1s_wait<0>();
    if (p.hlast && active) {
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const int n = g + S1S_G * s;
            if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = h[s];
        }
    }
}



// The second form (`s1s_fwd_*`; the first is `_v1`): one barrier per tile. A ring of
// S1S_NST2 stages, tiles S1S_NST2 - 1 ahead; iteration k runs the step loop of tile k,
// then (each thread on the same (channel, 2 steps) elements, so no barrier between) the
// outputs of tile k - 1 and the prep of tile k + 1: dt, dt*u, D*u and silu(z) into
// double-buffered f32 arrays, so the raw stage of a tile is free once prepped. Staging
// walks rows with one pointer per thread (the chunk column is fixed per thread).
#define S1S_NST2 4
template <typename T>
__host__ __device__ constexpr int s1s2_smem_bytes(int cpb, int gt) {
    return S1S_NST2 * ((s1s_stage_elems<T>(cpb) * (int)sizeof(T) + 15) & ~15) + 4 * (2 * 4 * cpb * 36 + 2 * cpb * gt * 36);
}

// GT threads per channel (16 or 32), S = 64 / GT states each (n = g + GT s); the prep
// and the outputs take E = 32 / GT steps per thread. The B / C / dt reads of the next
// 4-step group are issued before the current group's arithmetic.
// POLY: 1 of every 8 exponentials of a thread on the FMA pipe.
// GT 64 (`_g64`, 384 threads at CPB 6: three warps per scheduler): one state per
// thread; the prep and the outputs take one step per thread pair (hh = tid & 1 sums the
// partial rows 32 hh .., the pair adds by a shuffle, hh = 0 preps and stores).
// F (`_g32f`, GT 32): the 16-byte staging from per-thread slots set up once (a source
// pointer or none, a destination offset: no per-tile row walk) where at most S1S_NSL
// rows per thread, and the outputs' 32 partials summed by 16-byte reads (a lane: 4 steps
// x 8 rows) and two xor-shuffle rounds that leave each lane one step.
// IL (`_g32i`, GT 32): the outputs of tile k - 1 and the prep of tile k + 1 are written
// without branches and placed inside the step loop of tile k (the 32 partial rows summed
// 4 per 4-step group, the prep after the second group, the store after the last), so
// their latency chains (shared loads, the softplus series, the stores) overlap the step
// loop's independent work instead of running after it with a warp's full latency.
// IL 2 (`_g32j`): also the staging of tile k + 3 issued after the step loop of tile k
// instead of before it (its slot, tile k - 1's, is free in both places; the wait counts
// are the same), so that the step loop starts right after the barrier.
// IL 3 (`_g32k`): IL 1 with the exponentials of each 4-step group computed one group
// ahead (during the previous group's arithmetic) from dt read two groups ahead.
// IL 4 (`_g32l`): IL 2 and IL 3 together. IL 5 (`_g32m`): IL 4 with the 16-byte staging
// from per-thread slots set up once (as F: no per-tile row walk).
// IL 6 (`_g32n`, seventh session): IL 4 without the per-tile __syncthreads: per ring slot
// an mbarrier "full" (one `cp.async.mbarrier.arrive.noinc` per staging thread and tile:
// the slot's copies landed) and one "free" (one arrival per warp once it is done with the
// slot: its step loop of the tile, after its prep of the tile one iteration earlier).
// A warp waits only for the slot of tile k + 1 (the prep inside the step loop of tile k
// reads its delta / u / z; its B / C are read in the next iteration); a staging thread
// waits for "free" of tile k - 1 before it stages tile k + 3 into that slot. Everything
// else a warp reads (dt, dt u, D u, gate, the y partials) was written by its own lanes,
// so a __syncwarp per tile orders it. The warps drift apart by up to a tile instead of
// meeting at every tile. IL 7 (`_g32o`): IL 6 with the staging by warps 2 and 3 only (with
// 6 warps per block, the warps of the two schedulers that hold no second warp; warps w
// and w + 4 share scheduler w) where the block has at least 4 warps.
// IL 8 (`_g32q`): IL 4 (the __syncthreads ring) with the staging by warps 2 and 3 only,
// as IL 7. IL 9 (`_g32r`): IL 8 and the outputs of every channel by warps 2 and 3 too
// (thread stid of the 64: elements stid + 64 j, channel e / 32, step e % 32), so that the
// two schedulers that hold two warps carry only their step loops and preps; the f32
// per-step arrays get a third buffer (tile % 3: the prep of tile k + 1 by the channel's
// own warp no longer shares a buffer with the outputs of tile k - 1 read by other warps).
// IL 10 (`_g32s`): IL 8, and at 6 warps the outputs of the channels of warps 0, 1, 4, 5
// (which share schedulers) by warps 2 and 3 (channels w - 2, w, w + 2 of warp w), with the
// third buffer; each warp runs a step loop specialised for its output count (no branches
// inside the straight-line code, where IL 9's per-group branches broke it up).
#define S1S_NSL 8
template <int V>
struct s1s_ic {
    static constexpr int value = V;
};
template <typename T, int GT, bool POLY, bool F = false, int IL = 0>
__device__ __forceinline__ void s1s_fwd2(const Scan1Params& p) {
    static_assert(!IL || (GT == 32 && !F), "IL: the 32-thread form only");
    constexpr int S = 64 / GT, E = GT == 64 ? 1 : 32 / GT;
    DYN_SMEM(smem);
    constexpr int RS = s1s_rs<T>();
    constexpr int EPC = 16 / (int)sizeof(T);  // elements per 16-byte chunk
    constexpr int CH = S1S_TT / EPC;          // chunks per staged row
    constexpr int NST = S1S_NST2;
    const int CPB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int nthreads = blockDim.x, tid = threadIdx.x;
    const int bx = blockIdx.x, i = blockIdx.y;
    const int seg_id = bx / p.blocks_per_seg, blk = bx % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CPB;
    const int cn = min(CPB, (seg_id + 1) * p.seg - c0);
    const int cl = tid / GT, g = tid % GT;
    const bool active = cl < cn;

    const int stage_bytes = (s1s_stage_elems<T>(CPB) * (int)sizeof(T) + 15) & ~15;
    char* stages = reinterpret_cast<char*>(smem);
    // f32 per (channel, step), two buffers each: dt, dt*u, D*u, gate; then y partials x 2.
    float* s_pp = reinterpret_cast<float*>(stages + NST * stage_bytes);
    const int PB = CPB * 36;  // one array of one buffer
    // IL 9: three buffers of the per-step arrays (index tile % 3), else two (tile & 1).
    constexpr int NPB = IL == 9 || IL == 10 ? 3 : 2;
    float* s_y = s_pp + 4 * NPB * PB;
    auto ppb = [&](int tile) { return (NPB == 3 ? tile % 3 : tile & 1) * 4 * PB; };

    const size_t rbase = (size_t)i * dim + c0;
    const T* u = static_cast<const T*>(p.u) + rbase * L;
    const T* delta = static_cast<const T*>(p.delta) + rbase * L;
    const T* zp = p.z ? static_cast<const T*>(p.z) + rbase * L : nullptr;
    T* out = static_cast<T*>(p.out) + rbase * L;
    const T* brow = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L;
    const T* crow = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L;
    const int ntiles = (L + S1S_TT - 1) / S1S_TT;

    // Staging: in the 16-byte form thread tid copies chunk column kk = tid % CH of rows
    // tid / CH, + RSTEP, ...; rows: B 0..63, C 0..63 (zero past N), then delta, u, z of
    // the block's channels (zero past cn; z absent: zeros).
    // (f32: `async_copy` is 0 or 1; the test on != 0 keeps its code as it was measured.)
    const bool vec = sizeof(T) == 4 ? p.async_copy != 0 : p.async_copy == 1;
    constexpr bool MB = IL == 6 || IL == 7;  // the mbarrier ring
    constexpr bool SWS = IL >= 7;            // the staging by warps 2, 3
    // The staging threads: all, or (SWS, 4 to 8 warps) the 64 threads of warps 2, 3.
    const bool sws = SWS && CPB >= 4 && CPB <= 8;
    const int sw0 = sws ? 64 : 0;
    const int nstg = sws ? 64 : nthreads;
    const bool stager = !SWS || (tid >= sw0 && tid < sw0 + nstg);
    const int stid = !SWS ? tid : stager ? tid - sw0 : 0;
    const int kk = stid % CH, r0 = stid / CH, RSTEP = nstg / CH;
    // 16-byte staging sources of this thread (chunk column kk), set up once: B / C rows
    // r0 + k RSTEP (nbr of them below 64, nbv below N) and its delta / u / z rows (at most
    // 2: there are 3 CPB of them and RSTEP = GT CPB / CH >= 2 CPB; IL 7: RSTEP = 64 / CH
    // >= CPB, so at most 3).
    constexpr int NDR = SWS ? 3 : 2;
    const int nbr = r0 < 64 ? (64 - r0 + RSTEP - 1) / RSTEP : 0;
    const int nbv = r0 < N ? (min(N, 64) - r0 + RSTEP - 1) / RSTEP : 0;
    const T* bsrc = brow + (size_t)r0 * L + kk * EPC;
    const T* csrc = crow + (size_t)r0 * L + kk * EPC;
    const size_t bstep = (size_t)RSTEP * L;
    const T* dsrc[NDR] = {};
    int ddst[NDR] = {};
    int ndr = 0;
#pragma unroll
    for (int k = 0; k < NDR; ++k) {
        const int r = r0 + k * RSTEP;
        if (r < 3 * CPB) {
            const int kq = r / CPB, cc = r - kq * CPB;
            const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
            dsrc[k] = (cc < cn && base) ? base + (size_t)cc * L + kk * EPC : nullptr;
            ddst[k] = (128 + r) * RS + kk * EPC;
            ndr = k + 1;
        }
    }
    // F: slot k = staged row r0 + k RSTEP (all rows: B, C, delta, u, z), set up once.
    const int nrows_all = 128 + 3 * CPB;
    constexpr bool FS = F || IL == 5;  // the staging from slots
    const bool slots = FS && vec && (nrows_all + RSTEP - 1) / RSTEP <= S1S_NSL;
    const int nsl = (nrows_all - r0 + RSTEP - 1) / RSTEP;
    const T* ssrc[FS ? S1S_NSL : 1];  // never null (rows without a source: brow, 0 bytes)
    int sdst[FS ? S1S_NSL : 1];
    unsigned svalid = 0;  // bit k: slot k has a source row
    if constexpr (FS) {
#pragma unroll
        for (int k = 0; k < S1S_NSL; ++k) {
            const int r = r0 + k * RSTEP;
            const T* src = nullptr;
            if (r < 64) src = r < N ? brow + (size_t)r * L + kk * EPC : nullptr;
            else if (r < 128) src = r - 64 < N ? crow + (size_t)(r - 64) * L + kk * EPC : nullptr;
            else if (r < nrows_all) {
                const int q = r - 128, kq = q / CPB, cc = q - kq * CPB;
                const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
                src = (cc < cn && base) ? base + (size_t)cc * L + kk * EPC : nullptr;
            }
            ssrc[k] = src ? src : brow;
            svalid |= src ? 1u << k : 0u;
            sdst[k] = r * RS + kk * EPC;
        }
    }
    auto stage_tile = [&](int tile) {
        T* dst = reinterpret_cast<T*>(stages + (tile % NST) * stage_bytes);
        const int t0 = tile * S1S_TT;
        if (FS && slots) {
            const unsigned ok = t0 + kk * EPC < L ? svalid : 0u;
#pragma unroll
            for (int k = 0; k < (FS ? S1S_NSL : 1); ++k) {
                if (k < nsl) s1s_cp16(dst + sdst[k], ssrc[k] + t0, (ok >> k) & 1u ? 16 : 0);
            }
        } else if (vec) {
            // Rows from the per-thread sources set up once (below): B and C rows r0,
            // r0 + RSTEP, ... (the first nbv of them below N; the rest stay zero from the
            // first NST tiles), and at most two delta / u / z rows.
            const bool tin = t0 + kk * EPC < L;
            T* d = dst + r0 * RS + kk * EPC;
            const T* pb = bsrc + t0;
            const T* pc = csrc + t0;
            const int nrow = tile < NST ? nbr : nbv;
            for (int k = 0; k < nrow; ++k) {
                const bool ok = tin && k < nbv;
                s1s_cp16(d, ok ? pb : brow, ok ? 16 : 0);
                s1s_cp16(d + 64 * RS, ok ? pc : crow, ok ? 16 : 0);
                d += RSTEP * RS;
                pb += bstep;
                pc += bstep;
            }
#pragma unroll
            for (int k = 0; k < NDR; ++k) {
                if (k < ndr) {
                    const bool ok = tin && dsrc[k] != nullptr;
                    s1s_cp16(dst + ddst[k], ok ? dsrc[k] + t0 : delta, ok ? 16 : 0);
                }
            }
        } else if (sizeof(T) == 2 && p.async_copy == 2) {
            // 16-bit rows that are 4-byte aligned (L even, twenty-first session): element
            // pairs by 4-byte copies (t even and L even: both or neither in range). The
            // element-wise loads below are synchronous and took bf16 L 100 to 88 us.
            const int nrows = 128 + 3 * CPB;
            constexpr int TP = S1S_TT / 2;
            for (int e = stid; e < nrows * TP; e += nstg) {
                const int r = e / TP, k = 2 * (e % TP);
                const int t = t0 + k;
                const T* src = nullptr;
                if (t < L) {
                    if (r < 64) src = r < N ? brow + (size_t)r * L : nullptr;
                    else if (r < 128) src = r - 64 < N ? crow + (size_t)(r - 64) * L : nullptr;
                    else {
                        const int q = r - 128, kq = q / CPB, cc = q - kq * CPB;
                        const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
                        src = (cc < cn && base) ? base + (size_t)cc * L : nullptr;
                    }
                }
                s1s_cp4(dst + r * RS + k, src ? src + t : delta, src ? 4 : 0);
            }
        } else {
            const int nrows = 128 + 3 * CPB;
            for (int e = stid; e < nrows * S1S_TT; e += nstg) {
                const int r = e / S1S_TT, k = e % S1S_TT;
                const int t = t0 + k;
                const T* src = nullptr;
                if (t < L) {
                    if (r < 64) src = r < N ? brow + (size_t)r * L : nullptr;
                    else if (r < 128) src = r - 64 < N ? crow + (size_t)(r - 64) * L : nullptr;
                    else {
                        const int q = r - 128, kq = q / CPB, cc = q - kq * CPB;
                        const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
                        src = (cc < cn && base) ? base + (size_t)cc * L : nullptr;
                    }
                }
                if constexpr (sizeof(T) == 4) s1s_cp4(dst + r * RS + k, src ? src + t : delta, src ? 4 : 0);
                else dst[r * RS + k] = src ? src[t] : cvt<T>(0.f);
            }
        }
    };

    const int c = c0 + cl;
    float h[S], a2[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g + GT * s;
        const bool ok = active && n < N;
        h[s] = (ok && p.h0) ? p.h0[((size_t)i * dim + c) * N + n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
    }
    // Prep / output elements of this thread: channel pc, steps pt .. pt + E - 1.
    // F (GT 32): lane g sums rows 8 (g >> 3) .. of steps 4 (g & 7) ..; after the two
    // shuffle rounds it holds step 4 (g & 7) + 2 ((g >> 4) & 1) + ((g >> 3) & 1).
    const int pc = tid / GT;
    const int pt = GT == 64 ? (tid % GT) >> 1
                   : (F && GT == 32) ? 4 * (tid & 7) + 2 * ((tid >> 4) & 1) + ((tid >> 3) & 1)
                                     : E * (tid % GT);
    const int hh = GT == 64 ? (tid & 1) : 0;
    const bool pact = pc < cn;
    const float pbias = (pact && p.delta_bias) ? p.delta_bias[c0 + pc] : 0.f;
    const float pD = (pact && p.D) ? p.D[c0 + pc] : 0.f;
    const bool has_z = zp != nullptr;
    // IL 9 (4 to 8 warps): the outputs of the step loop by warps 2, 3 (the stagers),
    // noe elements per thread.
    const bool ow = IL == 9 && sws;
    const int noe = (CPB + 1) / 2;
    // IL 10 at 6 warps: the outputs of warps 0, 1, 4, 5 by warps 2, 3 (lone).
    const bool xo = IL == 10 && CPB == 6;
    const bool lone = xo && (tid >> 5) >= 2 && (tid >> 5) < 4;

    auto prep = [&](int tile) {
        if (GT == 64 && hh) return;
        const T* st = reinterpret_cast<const T*>(stages + (tile % NST) * stage_bytes);
        const T* sdl = st + 128 * RS + pc * RS;
        const T* su = sdl + CPB * RS;
        const T* sz = su + CPB * RS;
        float* pp = s_pp + ppb(tile) + pc * 36 + pt;
        const int t0 = tile * S1S_TT;
#pragma unroll
        for (int k = 0; k < E; ++k) {
            const int t = pt + k;
            float dt = 0.f, du = 0.f, dd = 0.f, gt = 1.f;
            if (pact && t0 + t < L) {
                const float uv = ldf(su + t);
                dt = ldf(sdl + t) + pbias;
                if (p.softplus) dt = softplus_series(dt);
                du = dt * uv;
                dd = pD * uv;
                if (has_z) gt = silu_f(ldf(sz + t));
            }
            pp[k] = dt;
            pp[PB + k] = du;
            pp[2 * PB + k] = dd;
            pp[3 * PB + k] = gt;
        }
    };
    auto output = [&](int tile) {
        if (!pact) return;  // warp-uniform (a warp holds one channel's threads)
        const float* row = s_y + (tile & 1) * CPB * GT * 36 + pc * GT * 36 + pt;
        const float* pp = s_pp + ppb(tile) + pc * 36 + pt;
        float ys[E];
        if constexpr (F && GT == 32) {
            const int gl = tid & 31, sg = gl & 7, rg = gl >> 3;
            const float* rb = s_y + (tile & 1) * CPB * GT * 36 + (pc * GT + 8 * rg) * 36 + 4 * sg;
            float4 a = *reinterpret_cast<const float4*>(rb);
#pragma unroll
            for (int r = 1; r < 8; ++r) {
                const float4 v = *reinterpret_cast<const float4*>(rb + r * 36);
                a.x += v.x;
                a.y += v.y;
                a.z += v.z;
                a.w += v.w;
            }
            const bool b1 = (gl >> 4) & 1, b0 = (gl >> 3) & 1;
            float k0 = b1 ? a.z : a.x, k1 = b1 ? a.w : a.y;
            k0 += __shfl_xor_sync(0xffffffffu, b1 ? a.x : a.z, 16);
            k1 += __shfl_xor_sync(0xffffffffu, b1 ? a.y : a.w, 16);
            const float kf = b0 ? k1 : k0;
            ys[0] = kf + __shfl_xor_sync(0xffffffffu, b0 ? k0 : k1, 8);
        } else if constexpr (GT == 64) {
            // Rows 32 hh + ((k + 4 hh) & 31): the two halves of a warp read banks 16 apart
            // (two base pointers, so every read has an immediate offset).
            const float* r1 = row + (hh ? 36 : 0) * 36;  // k < 28: rows 0.. / 36..
            const float* r2 = row + (hh ? 32 : 28) * 36;  // k >= 28: rows 28.. / 32..
            float a[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int k = 0; k < 28; ++k) a[k & 3] += r1[k * 36];
#pragma unroll
            for (int k = 0; k < 4; ++k) a[k] += r2[k * 36];
            const float v = (a[0] + a[1]) + (a[2] + a[3]);
            ys[0] = v + __shfl_xor_sync(0xffffffffu, v, 1);
            if (hh) return;
        } else if constexpr (E == 2) {
            float y0 = 0.f, y1 = 0.f, w0 = 0.f, w1 = 0.f;
#pragma unroll
            for (int gg = 0; gg < GT; gg += 2) {
                const float2 a = *reinterpret_cast<const float2*>(row + gg * 36);
                const float2 b = *reinterpret_cast<const float2*>(row + (gg + 1) * 36);
                y0 += a.x;
                y1 += a.y;
                w0 += b.x;
                w1 += b.y;
            }
            ys[0] = y0 + w0;
            ys[1] = y1 + w1;
        } else {
            float a[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int gg = 0; gg < GT; ++gg) a[gg & 3] += row[gg * 36];
            ys[0] = (a[0] + a[1]) + (a[2] + a[3]);
        }
        const int t0 = tile * S1S_TT;
#pragma unroll
        for (int k = 0; k < E; ++k) {
            if (t0 + pt + k < L) out[(size_t)pc * L + t0 + pt + k] = cvt<T>((ys[k] + pp[2 * PB + k]) * pp[3 * PB + k]);
        }
    };

    // IL: the prep of a tile without branches (every load in range: stage rows past L or
    // of absent channels are zero-filled, and the values of steps past L are replaced).
    auto prep_il = [&](int tile) {
        const T* st = reinterpret_cast<const T*>(stages + (tile % NST) * stage_bytes);
        const T* sdl = st + 128 * RS + pc * RS + pt;
        const float uv0 = ldf(sdl + CPB * RS), dl = ldf(sdl), zv = has_z ? ldf(sdl + 2 * CPB * RS) : 0.f;
        const bool ok = pact && tile * S1S_TT + pt < L;
        const float x = dl + pbias;
        const float sp = softplus_series(x);
        const float dt = ok ? (p.softplus ? sp : x) : 0.f;
        const float uv = ok ? uv0 : 0.f;
        const float sz = silu_f(zv);
        float* pp = s_pp + ppb(tile) + pc * 36 + pt;
        pp[0] = dt;
        pp[PB] = dt * uv;
        pp[2 * PB] = pD * uv;
        pp[3 * PB] = (ok && has_z) ? sz : 1.f;
    };

    // Prologue: tiles 0 .. NST - 2 in flight (one group per tile, empty past the end);
    // tile 0 prepped.
    // MB: full[NST] (count: the staging threads), then free[NST] (count: the warps).
    unsigned long long* mbar = reinterpret_cast<unsigned long long*>(s_y + 2 * CPB * GT * 36);  // (MB only)
    auto full_arrive = [&](int tile) {
        // cp.async (16-byte, or 4-byte f32) copies: arrive once they landed; the plain
        // stores of the 16-bit unaligned path: a release arrival.
        if (vec || sizeof(T) == 4) s1s_mb_cp_arrive(&mbar[tile % NST]);
        else s1s_mb_arrive(&mbar[tile % NST]);
    };
    if constexpr (MB) {
        if (tid == 0) {
#pragma unroll
            for (int s = 0; s < NST; ++s) {
                s1s_mb_init(&mbar[s], nstg);
                s1s_mb_init(&mbar[NST + s], nthreads / 32);
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < NST - 1; ++k) {
            if (k < ntiles && stager) {
                stage_tile(k);
                full_arrive(k);
            }
        }
        s1s_mb_wait(&mbar[0], 0);
    } else {
#pragma unroll
        for (int k = 0; k < NST - 1; ++k) {
            if (k < ntiles && stager) stage_tile(k);
            s1s_commit();
        }
        s1s_wait<NST - 2>();
        __syncthreads();
    }
    prep(0);

    for (int tile = 0; tile < ntiles; ++tile) {
        // Tiles <= tile + 1 landed (tile + 1 is prepped in this iteration); everyone is
        // done with the step loop of tile - 1 and the prep of tile (MB: this warp).
        if constexpr (MB) {
            if (tile + 1 < ntiles) s1s_mb_wait(&mbar[(tile + 1) % NST], ((tile + 1) / NST) & 1);
            __syncwarp();
        } else {
            s1s_wait<NST - 3>();
            __syncthreads();
        }
        if constexpr (IL != 2 && IL < 4) {
            if (tile + NST - 1 < ntiles) stage_tile(tile + NST - 1);
            s1s_commit();
        }
        // The tile's step loop; NO: the output channels of this thread (1: its own; IL 10
        // at 6 warps: 0 for warps 0, 1, 4, 5, 3 for warps 2, 3: channels pc - 2, pc, pc + 2).
        auto blk = [&](auto tag) {
            constexpr int NO = decltype(tag)::value;
            const T* st = reinterpret_cast<const T*>(stages + (tile % NST) * stage_bytes);
            const T* sB = st + g * RS;
            const T* sC = st + (64 + g) * RS;
            const float* tdt = s_pp + ppb(tile) + cl * 36;
            const float* tdu = tdt + PB;
            float* ty = s_y + (tile & 1) * CPB * GT * 36 + (cl * GT + g) * 36;
            float4 dt4 = *reinterpret_cast<const float4*>(tdt);
            float4 du4 = *reinterpret_cast<const float4*>(tdu);
            float4 bv[S], cv[S];
#pragma unroll
            for (int s = 0; s < S; ++s) {
                bv[s] = s1s_ld4(sB + GT * s * RS);
                cv[s] = s1s_ld4(sC + GT * s * RS);
            }
            // IL: the outputs of tile - 1 (buffer (tile - 1) & 1; nothing is stored at
            // tile 0): its D u and gate read first (the prep of tile + 1 overwrites them).
            const float* orow = s_y + ((tile - 1) & 1) * CPB * GT * 36 + pc * GT * 36 + pt;
            const float* opp = s_pp + ppb(tile + 2 * NPB - 1) + pc * 36 + pt;
            float oa[4] = {0.f, 0.f, 0.f, 0.f}, odd = 0.f, ogt = 0.f;
            // IL 9: warps 2, 3 (ow) sum the outputs of elements stid + 64 j (at most 4 of
            // them at CPB <= 8) for every channel; the other warps none.
            constexpr int NOE = IL == 9 ? 4 : 1;
            const float* orw[NOE];
            float oe[NOE][2], odj[NOE], ogj[NOE];
            if constexpr (IL == 9) {
#pragma unroll
                for (int j = 0; j < NOE; ++j) {
                    const int e = min(stid + 64 * j, 32 * CPB - 1);
                    orw[j] = s_y + ((tile - 1) & 1) * CPB * GT * 36 + (e >> 5) * GT * 36 + (e & 31);
                    const float* q = s_pp + ppb(tile + 2 * NPB - 1) + (e >> 5) * 36 + (e & 31);
                    oe[j][0] = oe[j][1] = 0.f;
                    odj[j] = ogj[j] = 0.f;
                    if (ow && stager && j < noe) {
                        odj[j] = q[2 * PB];
                        ogj[j] = q[3 * PB];
                    }
                }
            }
            if constexpr (IL) {
                if (!ow) {
                    odd = opp[2 * PB];
                    ogt = opp[3 * PB];
                }
            }
            // IL 10: the NO output channels' row pointers, D u and gate (tile - 1).
            constexpr int NOA = NO > 0 ? NO : 1;
            const float* orx[NOA];
            float ox[NOA][2], oxd[NOA], oxg[NOA];
            if constexpr (IL == 10) {
#pragma unroll
                for (int j = 0; j < NOA; ++j) {
                    const int ch = NO == 3 ? pc - 2 + 2 * j : pc;
                    orx[j] = s_y + ((tile - 1) & 1) * CPB * GT * 36 + ch * GT * 36 + pt;
                    const float* qq = s_pp + ppb(tile + 2 * NPB - 1) + ch * 36 + pt;
                    ox[j][0] = ox[j][1] = 0.f;
                    oxd[j] = NO ? qq[2 * PB] : 0.f;
                    oxg[j] = NO ? qq[3 * PB] : 0.f;
                }
            }
            // IL 3: the exponentials one group ahead (ep: those of the current group), from
            // dt read two groups ahead (dt1: the next group's).
            float ep[4][S];
            float4 dt1 = dt4;
            if constexpr (IL >= 3) {
                const float dts[4] = {dt4.x, dt4.y, dt4.z, dt4.w};
#pragma unroll
                for (int j = 0; j < 4; ++j)
#pragma unroll
                    for (int s = 0; s < S; ++s) ep[j][s] = ex2_fast(dts[j] * a2[s]);
                dt1 = *reinterpret_cast<const float4*>(tdt + 4);
            }
#pragma unroll
            for (int q = 0; q < S1S_TT; q += 4) {
                if constexpr (IL == 10) {
#pragma unroll
                    for (int j = 0; j < NO; ++j)
#pragma unroll
                        for (int k = 0; k < 4; ++k) ox[j][k & 1] += orx[j][(q + k) * 36];
                } else if constexpr (IL == 9) {
                    if (ow) {
                        if (stager) {
#pragma unroll
                            for (int j = 0; j < NOE; ++j) {
                                if (j < noe) {
#pragma unroll
                                    for (int k = 0; k < 4; ++k) oe[j][k & 1] += orw[j][(q + k) * 36];
                                }
                            }
                        }
                    } else {
#pragma unroll
                        for (int k = 0; k < 4; ++k) oa[k] += orow[(q + k) * 36];
                    }
                } else if constexpr (IL) {
#pragma unroll
                    for (int k = 0; k < 4; ++k) oa[k] += orow[(q + k) * 36];
                }
                // The next group's reads first.
                float4 dtn = dt4, dun = du4, bn[S], cnx[S];
                if (q + 4 < S1S_TT) {
                    dtn = *reinterpret_cast<const float4*>(tdt + q + 4);
                    dun = *reinterpret_cast<const float4*>(tdu + q + 4);
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        bn[s] = s1s_ld4(sB + GT * s * RS + q + 4);
                        cnx[s] = s1s_ld4(sC + GT * s * RS + q + 4);
                    }
                } else {
#pragma unroll
                    for (int s = 0; s < S; ++s) bn[s] = cnx[s] = bv[s];
                }
                const float dts[4] = {dt4.x, dt4.y, dt4.z, dt4.w};
                const float dus[4] = {du4.x, du4.y, du4.z, du4.w};
                float e[4][S];
                if constexpr (IL >= 3) {
                    // dt two groups ahead; the next group's exponentials now.
                    if (q + 8 < S1S_TT) dtn = *reinterpret_cast<const float4*>(tdt + q + 8);
                    const float d1[4] = {dt1.x, dt1.y, dt1.z, dt1.w};
#pragma unroll
                    for (int j = 0; j < 4; ++j)
#pragma unroll
                        for (int s = 0; s < S; ++s) {
                            e[j][s] = ep[j][s];
                            if (q + 4 < S1S_TT) ep[j][s] = ex2_fast(d1[j] * a2[s]);
                        }
                    dt1 = dtn;
                } else {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
#pragma unroll
                        for (int s = 0; s < S; ++s) {
                            const bool poly = POLY && s == S - 1 && (S == 4 ? (j & 1) == 1 : j == 1);
                            e[j][s] = poly ? ex2_poly(dts[j] * a2[s]) : ex2_fast(dts[j] * a2[s]);
                        }
                    }
                }
                float y[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    float acc = 0.f;
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        const float bj = j == 0 ? bv[s].x : j == 1 ? bv[s].y : j == 2 ? bv[s].z : bv[s].w;
                        const float cj = j == 0 ? cv[s].x : j == 1 ? cv[s].y : j == 2 ? cv[s].z : cv[s].w;
                        h[s] = fmaf(e[j][s], h[s], dus[j] * bj);
                        acc = fmaf(cj, h[s], acc);
                    }
                    y[j] = acc;
                }
                *reinterpret_cast<float4*>(ty + q) = make_float4(y[0], y[1], y[2], y[3]);
                if constexpr (IL) {
                    if (q == 4) prep_il(tile + 1);
                    if (q == S1S_TT - 4 && IL == 10) {
#pragma unroll
                        for (int j = 0; j < NO; ++j) {
                            const int ch = NO == 3 ? pc - 2 + 2 * j : pc;
                            const int to = (tile - 1) * S1S_TT + pt;
                            if (tile > 0 && ch < cn && to < L)
                                out[(size_t)ch * L + to] = cvt<T>((ox[j][0] + ox[j][1] + oxd[j]) * oxg[j]);
                        }
                    } else if (q == S1S_TT - 4) {
                        if (!ow) {
                            const int to = (tile - 1) * S1S_TT + pt;
                            const float yo = (oa[0] + oa[1]) + (oa[2] + oa[3]);
                            if (tile > 0 && pact && to < L) out[(size_t)pc * L + to] = cvt<T>((yo + odd) * ogt);
                        } else if constexpr (IL == 9) {
                            if (stager) {
#pragma unroll
                                for (int j = 0; j < NOE; ++j) {
                                    const int e = stid + 64 * j;
                                    const int to = (tile - 1) * S1S_TT + (e & 31);
                                    if (j < noe && tile > 0 && e < 32 * cn && to < L)
                                        out[(size_t)(e >> 5) * L + to] = cvt<T>((oe[j][0] + oe[j][1] + odj[j]) * ogj[j]);
                                }
                            }
                        }
                    }
                }
                dt4 = dtn;
                du4 = dun;
#pragma unroll
                for (int s = 0; s < S; ++s) {
                    bv[s] = bn[s];
                    cv[s] = cnx[s];
                }
            }
        };
        if constexpr (IL == 10) {
            if (!xo) blk(s1s_ic<1>{});
            else if (lone) blk(s1s_ic<3>{});
            else blk(s1s_ic<0>{});
        } else {
            blk(s1s_ic<1>{});
        }
        // Same elements per thread: the outputs of tile - 1 read its gate / D u before the
        // prep of tile + 1 (same buffer) overwrites them.
        if constexpr (!IL) {
            if (tile > 0) output(tile - 1);
            if (tile + 1 < ntiles) prep(tile + 1);
        }
        if constexpr (MB) {
            // This warp is done with the slot of tile (B / C read, delta / u / z prepped
            // in the previous iteration). Tile + NST - 1 goes into the slot of tile - 1
            // once every warp is done with that.
            __syncwarp();
            if ((tid & 31) == 0) s1s_mb_arrive(&mbar[NST + tile % NST]);
            const int nt = tile + NST - 1;
            if (nt < ntiles && stager) {
                if (tile >= 1) s1s_mb_wait(&mbar[NST + (tile - 1) % NST], ((tile - 1) / NST) & 1);
                stage_tile(nt);
                full_arrive(nt);
            }
        } else if constexpr (IL == 2 || IL >= 4) {
            if (tile + NST - 1 < ntiles && stager) stage_tile(tile + NST - 1);
            s1s_commit();
        }
    }
    if constexpr (MB) __syncwarp();
    else __syncthreads();
    output(ntiles - 1);
    s1s_wait<0>();
    if (p.hlast && active) {
#pragma unroll
        for (int s = 0; s < S; ++s) {
            const int n = g + GT * s;
            if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = h[s];
        }
    }
}

// The warp-specialised form (`_ws`): CPB compute warps (32 threads per channel, 2 states
// each) run only the step loop; S1S_HW helper warps do the staging, the prep and the
// outputs of the tile for all the block's channels (with 6 channels, 8 warps: two per
// scheduler, each scheduler carrying two step loops or one step loop and one helper,
// where `_g32` put the whole per-tile work of two channels on two of the four).
// The same one-barrier schedule as `s1s_fwd2`: in iteration k the helpers stage tile
// k + NST - 1, write the outputs of tile k - 1 and prep tile k + 1 (each helper thread
// owns fixed (channel, step) elements for both, so its output reads of a per-step
// buffer come before its prep writes to it), while the compute warps run tile k.
#define S1S_HW 2
template <typename T>
__device__ __forceinline__ void s1s_fwd3(const Scan1Params& p) {
    constexpr int GT = 32, S = 2;
    DYN_SMEM(smem);
    constexpr int RS = s1s_rs<T>();
    constexpr int EPC = 16 / (int)sizeof(T);  // elements per 16-byte chunk
    constexpr int CH = S1S_TT / EPC;          // chunks per staged row
    constexpr int NST = S1S_NST2;
    constexpr int NH = 32 * S1S_HW;           // helper threads
    constexpr int MAXE = 4;                   // elements per helper thread (CPB <= 8)
    constexpr int RSTEP = NH / CH;            // staged rows per pass
    constexpr int MAXD = (3 * 8 + RSTEP - 1) / RSTEP;  // delta / u / z rows per helper
    const int CPB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int tid = threadIdx.x;
    const int bx = blockIdx.x, i = blockIdx.y;
    const int seg_id = bx / p.blocks_per_seg, blk = bx % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CPB;
    const int cn = min(CPB, (seg_id + 1) * p.seg - c0);
    const bool helper = tid >= GT * CPB;  // whole warps
    const int hid = tid - GT * CPB;

    const int stage_bytes = (s1s_stage_elems<T>(CPB) * (int)sizeof(T) + 15) & ~15;
    char* stages = reinterpret_cast<char*>(smem);
    float* s_pp = reinterpret_cast<float*>(stages + NST * stage_bytes);
    const int PB = CPB * 36;
    float* s_y = s_pp + 8 * PB;

    const size_t rbase = (size_t)i * dim + c0;
    const T* u = static_cast<const T*>(p.u) + rbase * L;
    const T* delta = static_cast<const T*>(p.delta) + rbase * L;
    const T* zp = p.z ? static_cast<const T*>(p.z) + rbase * L : nullptr;
    T* out = static_cast<T*>(p.out) + rbase * L;
    const T* brow = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L;
    const T* crow = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L;
    const int ntiles = (L + S1S_TT - 1) / S1S_TT;

    // Helpers: staging sources (as s1s_fwd2, over the NH helper threads), elements.
    // (f32: `async_copy` is 0 or 1; the test on != 0 keeps its code as it was measured.)
    const bool vec = sizeof(T) == 4 ? p.async_copy != 0 : p.async_copy == 1;
    const int kk = helper ? hid % CH : 0, r0 = helper ? hid / CH : 0;
    const int nbr = (64 - r0 + RSTEP - 1) / RSTEP;
    const int nbv = r0 < N ? (min(N, 64) - r0 + RSTEP - 1) / RSTEP : 0;
    const T* bsrc = brow + (size_t)r0 * L + kk * EPC;
    const T* csrc = crow + (size_t)r0 * L + kk * EPC;
    const size_t bstep = (size_t)RSTEP * L;
    const T* dsrc[MAXD];
    int ddst[MAXD];
    int ndr = 0;
#pragma unroll
    for (int k = 0; k < MAXD; ++k) {
        const int r = r0 + k * RSTEP;
        dsrc[k] = nullptr;
        ddst[k] = 0;
        if (r < 3 * CPB) {
            const int kq = r / CPB, cc = r - kq * CPB;
            const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
            dsrc[k] = (cc < cn && base) ? base + (size_t)cc * L + kk * EPC : nullptr;
            ddst[k] = (128 + r) * RS + kk * EPC;
            ndr = k + 1;
        }
    }
    auto stage_tile = [&](int tile) {
        T* dst = reinterpret_cast<T*>(stages + (tile % NST) * stage_bytes);
        const int t0 = tile * S1S_TT;
        if (vec) {
            const bool tin = t0 + kk * EPC < L;
            T* d = dst + r0 * RS + kk * EPC;
            const T* pb = bsrc + t0;
            const T* pc = csrc + t0;
            const int nrow = tile < NST ? nbr : nbv;
            for (int k = 0; k < nrow; ++k) {
                const bool ok = tin && k < nbv;
                s1s_cp16(d, ok ? pb : brow, ok ? 16 : 0);
                s1s_cp16(d + 64 * RS, ok ? pc : crow, ok ? 16 : 0);
                d += RSTEP * RS;
                pb += bstep;
                pc += bstep;
            }
#pragma unroll
            for (int k = 0; k < MAXD; ++k) {
                if (k < ndr) {
                    const bool ok = tin && dsrc[k] != nullptr;
                    s1s_cp16(dst + ddst[k], ok ? dsrc[k] + t0 : delta, ok ? 16 : 0);
                }
            }
        } else {
            const int nrows = 128 + 3 * CPB;
            for (int e = hid; e < nrows * S1S_TT; e += NH) {
                const int r = e / S1S_TT, k = e % S1S_TT;
                const int t = t0 + k;
                const T* src = nullptr;
                if (t < L) {
                    if (r < 64) src = r < N ? brow + (size_t)r * L : nullptr;
                    else if (r < 128) src = r - 64 < N ? crow + (size_t)(r - 64) * L : nullptr;
                    else {
                        const int q = r - 128, kq = q / CPB, cc = q - kq * CPB;
                        const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
                        src = (cc < cn && base) ? base + (size_t)cc * L : nullptr;
                    }
                }
                if constexpr (sizeof(T) == 4) s1s_cp4(dst + r * RS + k, src ? src + t : delta, src ? 4 : 0);
                else dst[r * RS + k] = src ? src[t] : cvt<T>(0.f);
            }
        }
    };
    // Helper elements j: e = hid + NH j < 32 CPB, channel e / 32, step e % 32.
    const int ne = helper ? (32 * CPB - hid + NH - 1) / NH : 0;
    const bool has_z = zp != nullptr;
    auto prep = [&](int tile) {
        const T* st = reinterpret_cast<const T*>(stages + (tile % NST) * stage_bytes);
        const int t0 = tile * S1S_TT;
#pragma unroll
        for (int j = 0; j < MAXE; ++j) {
            if (j < ne) {
                const int e = hid + NH * j, pc = e >> 5, pt = e & 31;
                const T* sdl = st + (128 + pc) * RS;
                const T* su = sdl + CPB * RS;
                const T* sz = su + CPB * RS;
                float* pp = s_pp + (tile & 1) * 4 * PB + pc * 36 + pt;
                float dt = 0.f, du = 0.f, dd = 0.f, gt = 1.f;
                if (pc < cn && t0 + pt < L) {
                    const float uv = ldf(su + pt);
                    dt = ldf(sdl + pt) + (p.delta_bias ? p.delta_bias[c0 + pc] : 0.f);
                    if (p.softplus) dt = softplus_series(dt);
                    du = dt * uv;
                    dd = (p.D ? p.D[c0 + pc] : 0.f) * uv;
                    if (has_z) gt = silu_f(ldf(sz + pt));
                }
                pp[0] = dt;
                pp[PB] = du;
                pp[2 * PB] = dd;
                pp[3 * PB] = gt;
            }
        }
    };
    auto output = [&](int tile) {
        const int t0 = tile * S1S_TT;
#pragma unroll
        for (int j = 0; j < MAXE; ++j) {
            if (j < ne) {
                const int e = hid + NH * j, pc = e >> 5, pt = e & 31;
                if (pc < cn && t0 + pt < L) {
                    const float* row = s_y + (tile & 1) * CPB * GT * 36 + pc * GT * 36 + pt;
                    const float* pp = s_pp + (tile & 1) * 4 * PB + pc * 36 + pt;
                    float a[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                    for (int gg = 0; gg < GT; ++gg) a[gg & 3] += row[gg * 36];
                    const float y = (a[0] + a[1]) + (a[2] + a[3]);
                    out[(size_t)pc * L + t0 + pt] = cvt<T>((y + pp[2 * PB]) * pp[3 * PB]);
                }
            }
        }
    };

    // Compute threads: channel cl, states g + 32 s.
    const int cl = tid / GT, g = tid % GT;
    const bool active = !helper && cl < cn;
    const int c = c0 + cl;
    float h[S], a2[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g + GT * s;
        const bool ok = active && n < N;
        h[s] = (ok && p.h0) ? p.h0[((size_t)i * dim + c) * N + n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
    }

    if (helper) {
#pragma unroll
        for (int k = 0; k < NST - 1; ++k) {
            if (k < ntiles) stage_tile(k);
            s1s_commit();
        }
        s1s_wait<NST - 2>();
    }
    __syncthreads();
    if (helper) prep(0);

    for (int tile = 0; tile < ntiles; ++tile) {
        // Tiles <= tile + 1 landed; the prep of tile and the step loop of tile - 1 done.
        if (helper) s1s_wait<NST - 3>();
        __syncthreads();
        if (helper) {
            if (tile + NST - 1 < ntiles) stage_tile(tile + NST - 1);
            s1s_commit();
            if (tile > 0) output(tile - 1);
            if (tile + 1 < ntiles) prep(tile + 1);
        } else {
            const T* st = reinterpret_cast<const T*>(stages + (tile % NST) * stage_bytes);
            const T* sB = st + g * RS;
            const T* sC = st + (64 + g) * RS;
            const float* tdt = s_pp + (tile & 1) * 4 * PB + cl * 36;
            const float* tdu = tdt + PB;
            float* ty = s_y + (tile & 1) * CPB * GT * 36 + (cl * GT + g) * 36;
            float4 dt4 = *reinterpret_cast<const float4*>(tdt);
            float4 du4 = *reinterpret_cast<const float4*>(tdu);
            float4 bv[S], cv[S];
#pragma unroll
            for (int s = 0; s < S; ++s) {
                bv[s] = s1s_ld4(sB + GT * s * RS);
                cv[s] = s1s_ld4(sC + GT * s * RS);
            }
#pragma unroll
            for (int q = 0; q < S1S_TT; q += 4) {
                float4 dtn = dt4, dun = du4, bn[S], cnx[S];
                if (q + 4 < S1S_TT) {
                    dtn = *reinterpret_cast<const float4*>(tdt + q + 4);
                    dun = *reinterpret_cast<const float4*>(tdu + q + 4);
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        bn[s] = s1s_ld4(sB + GT * s * RS + q + 4);
                        cnx[s] = s1s_ld4(sC + GT * s * RS + q + 4);
                    }
                } else {
#pragma unroll
                    for (int s = 0; s < S; ++s) bn[s] = cnx[s] = bv[s];
                }
                const float dts[4] = {dt4.x, dt4.y, dt4.z, dt4.w};
                const float dus[4] = {du4.x, du4.y, du4.z, du4.w};
                float e[4][S];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
#pragma unroll
                    for (int s = 0; s < S; ++s) e[j][s] = ex2_fast(dts[j] * a2[s]);
                }
                float y[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    float acc = 0.f;
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        const float bj = j == 0 ? bv[s].x : j == 1 ? bv[s].y : j == 2 ? bv[s].z : bv[s].w;
                        const float cj = j == 0 ? cv[s].x : j == 1 ? cv[s].y : j == 2 ? cv[s].z : cv[s].w;
                        h[s] = fmaf(e[j][s], h[s], dus[j] * bj);
                        acc = fmaf(cj, h[s], acc);
                    }
                    y[j] = acc;
                }
                *reinterpret_cast<float4*>(ty + q) = make_float4(y[0], y[1], y[2], y[3]);
                dt4 = dtn;
                du4 = dun;
#pragma unroll
                for (int s = 0; s < S; ++s) {
                    bv[s] = bn[s];
                    cv[s] = cnx[s];
                }
            }
        }
    }
    __syncthreads();
    if (helper) {
        output(ntiles - 1);
        s1s_wait<0>();
    } else if (p.hlast && active) {
#pragma unroll
        for (int s = 0; s < S; ++s) {
            const int n = g + GT * s;
            if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = h[s];
        }
    }
}

// The time split in two halves inside the block (`_t2`): CPB channels x 2 halves x 32
// threads (2 states each; 12 warps at CPB 6: three per scheduler). Half 0 runs steps
// [0, LH) from h0, half 1 steps [LH, L) from zero (LH = 32 ceil(L / 64)), both through
// the same tile loop (a ring of S1S_NST5 stages, each with a sub-buffer per half; two
// barriers per tile, one y-partial buffer per half). Half 1 keeps S_t (the sum of its
// steps' dt) per (channel, step) in shared memory; after the loop its outputs get the
// part of half 0's end state h_mid: out_t += gate_t sum_n C_t[n] h_mid[n] 2^(a2[n] S_t)
// (one lane per step, a loop over the states; C and z read again from global memory),
// and its last state becomes h' + 2^(a2 S_end) h_mid.
#define S1S_NST5 3
template <typename T>
__host__ __device__ constexpr int s1s5_smem_bytes(int cpb, int lh) {
    return 2 * S1S_NST5 * ((s1s_stage_elems<T>(cpb) * (int)sizeof(T) + 15) & ~15) +
           4 * (2 * 8 * cpb * 36 + 2 * cpb * 32 * 36 + cpb * lh + 2 * cpb * 64);
}
template <typename T>
__device__ __forceinline__ void s1s_fwd5(const Scan1Params& p) {
    constexpr int GT = 32, S = 2;
    DYN_SMEM(smem);
    constexpr int RS = s1s_rs<T>();
    constexpr int EPC = 16 / (int)sizeof(T);
    constexpr int CH = S1S_TT / EPC;
    constexpr int NST = S1S_NST5;
    const int CPB = p.cb, N = p.dstate, L = p.seqlen, dim = p.dim;
    const int nth = GT * CPB;  // threads per half
    const int hf = threadIdx.x / nth, tid = threadIdx.x % nth;
    const int bx = blockIdx.x, i = blockIdx.y;
    const int seg_id = bx / p.blocks_per_seg, blk = bx % p.blocks_per_seg;
    const int c0 = seg_id * p.seg + blk * CPB;
    const int cn = min(CPB, (seg_id + 1) * p.seg - c0);
    const int cl = tid / GT, g = tid % GT;
    const bool active = cl < cn;
    const int ntiles = (L + 2 * S1S_TT - 1) / (2 * S1S_TT);
    const int LH = ntiles * S1S_TT;
    const int T0 = hf * LH, Ln = hf ? max(0, L - LH) : min(L, LH);

    const int stage_bytes = (s1s_stage_elems<T>(CPB) * (int)sizeof(T) + 15) & ~15;
    char* stages = reinterpret_cast<char*>(smem);
    float* s_pp = reinterpret_cast<float*>(stages + 2 * NST * stage_bytes) + hf * 8 * CPB * 36;
    const int PB = CPB * 36;
    float* s_y = reinterpret_cast<float*>(stages + 2 * NST * stage_bytes) + 2 * 8 * PB + hf * CPB * GT * 36;
    float* s_S = reinterpret_cast<float*>(stages + 2 * NST * stage_bytes) + 2 * 8 * PB + 2 * CPB * GT * 36;
    float* s_h = s_S + CPB * LH;
    float* s_a = s_h + CPB * 64;

    const size_t rbase = (size_t)i * dim + c0;
    const T* u = static_cast<const T*>(p.u) + rbase * L + T0;
    const T* delta = static_cast<const T*>(p.delta) + rbase * L + T0;
    const T* zp = p.z ? static_cast<const T*>(p.z) + rbase * L + T0 : nullptr;
    T* out = static_cast<T*>(p.out) + rbase * L + T0;
    const T* brow = static_cast<const T*>(p.B) + ((size_t)i * p.b_groups + c0 / (dim / p.b_groups)) * N * (size_t)L + T0;
    const T* crow = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L + T0;

    // Staging of this half's rows by this half's threads (as s1s_fwd2; bounds Ln).
    // (f32: `async_copy` is 0 or 1; the test on != 0 keeps its code as it was measured.)
    const bool vec = sizeof(T) == 4 ? p.async_copy != 0 : p.async_copy == 1;
    const int kk = tid % CH, r0 = tid / CH, RSTEP = nth / CH;
    const int nbr = r0 < 64 ? (64 - r0 + RSTEP - 1) / RSTEP : 0;
    const int nbv = r0 < N ? (min(N, 64) - r0 + RSTEP - 1) / RSTEP : 0;
    const T* bsrc = brow + (size_t)r0 * L + kk * EPC;
    const T* csrc = crow + (size_t)r0 * L + kk * EPC;
    const size_t bstep = (size_t)RSTEP * L;
    const T* dsrc[2] = {nullptr, nullptr};
    int ddst[2] = {0, 0};
    int ndr = 0;
#pragma unroll
    for (int k = 0; k < 2; ++k) {
        const int r = r0 + k * RSTEP;
        if (r < 3 * CPB) {
            const int kq = r / CPB, cc = r - kq * CPB;
            const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
            dsrc[k] = (cc < cn && base) ? base + (size_t)cc * L + kk * EPC : nullptr;
            ddst[k] = (128 + r) * RS + kk * EPC;
            ndr = k + 1;
        }
    }
    auto stage_ptr = [&](int tile) {
        return reinterpret_cast<T*>(stages + ((tile % NST) * 2 + hf) * stage_bytes);
    };
    auto stage_tile = [&](int tile) {
        T* dst = stage_ptr(tile);
        const int t0 = tile * S1S_TT;
        if (vec) {
            const bool tin = t0 + kk * EPC < Ln;
            T* d = dst + r0 * RS + kk * EPC;
            const T* pb = bsrc + t0;
            const T* pc = csrc + t0;
            const int nrow = tile < NST ? nbr : nbv;
            for (int k = 0; k < nrow; ++k) {
                const bool ok = tin && k < nbv;
                s1s_cp16(d, ok ? pb : brow, ok ? 16 : 0);
                s1s_cp16(d + 64 * RS, ok ? pc : crow, ok ? 16 : 0);
                d += RSTEP * RS;
                pb += bstep;
                pc += bstep;
            }
#pragma unroll
            for (int k = 0; k < 2; ++k) {
                if (k < ndr) {
                    const bool ok = tin && dsrc[k] != nullptr;
                    s1s_cp16(dst + ddst[k], ok ? dsrc[k] + t0 : delta, ok ? 16 : 0);
                }
            }
        } else {
            const int nrows = 128 + 3 * CPB;
            for (int e = tid; e < nrows * S1S_TT; e += nth) {
                const int r = e / S1S_TT, k = e % S1S_TT;
                const int t = t0 + k;
                const T* src = nullptr;
                if (t < Ln) {
                    if (r < 64) src = r < N ? brow + (size_t)r * L : nullptr;
                    else if (r < 128) src = r - 64 < N ? crow + (size_t)(r - 64) * L : nullptr;
                    else {
                        const int q = r - 128, kq = q / CPB, cc = q - kq * CPB;
                        const T* base = kq == 0 ? delta : kq == 1 ? u : zp;
                        src = (cc < cn && base) ? base + (size_t)cc * L : nullptr;
                    }
                }
                if constexpr (sizeof(T) == 4) s1s_cp4(dst + r * RS + k, src ? src + t : delta, src ? 4 : 0);
                else dst[r * RS + k] = src ? src[t] : cvt<T>(0.f);
            }
        }
    };

    const int c = c0 + cl;
    float h[S], a2[S];
#pragma unroll
    for (int s = 0; s < S; ++s) {
        const int n = g + GT * s;
        const bool ok = active && n < N;
        h[s] = (ok && p.h0 && hf == 0) ? p.h0[((size_t)i * dim + c) * N + n] : 0.f;
        a2[s] = ok ? p.A[(size_t)c * N + n] * LOG2E_F : 0.f;
    }
    const int pc = tid / GT, pt = tid % GT;
    const bool pact = pc < cn;
    const float pbias = (pact && p.delta_bias) ? p.delta_bias[c0 + pc] : 0.f;
    const float pD = (pact && p.D) ? p.D[c0 + pc] : 0.f;
    const bool has_z = zp != nullptr;
    auto prep = [&](int tile) {
        const T* st = stage_ptr(tile);
        const T* sdl = st + (128 + pc) * RS;
        const T* su = sdl + CPB * RS;
        const T* sz = su + CPB * RS;
        float* pp = s_pp + (tile & 1) * 4 * PB + pc * 36 + pt;
        const int t0 = tile * S1S_TT;
        float dt = 0.f, du = 0.f, dd = 0.f, gt = 1.f;
        if (pact && t0 + pt < Ln) {
            const float uv = ldf(su + pt);
            dt = ldf(sdl + pt) + pbias;
            if (p.softplus) dt = softplus_series(dt);
            du = dt * uv;
            dd = pD * uv;
            if (has_z) gt = silu_f(ldf(sz + pt));
        }
        pp[0] = dt;
        pp[PB] = du;
        pp[2 * PB] = dd;
        pp[3 * PB] = gt;
    };
    auto output = [&](int tile) {
        const int t0 = tile * S1S_TT;
        if (!pact || t0 + pt >= Ln) return;
        const float* row = s_y + pc * GT * 36 + pt;
        const float* pp = s_pp + (tile & 1) * 4 * PB + pc * 36 + pt;
        float a[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int gg = 0; gg < GT; ++gg) a[gg & 3] += row[gg * 36];
        const float y = (a[0] + a[1]) + (a[2] + a[3]);
        out[(size_t)pc * L + t0 + pt] = cvt<T>((y + pp[2 * PB]) * pp[3 * PB]);
    };

#pragma unroll
    for (int k = 0; k < NST - 1; ++k) {
        if (k < ntiles) stage_tile(k);
        s1s_commit();
    }
    s1s_wait<NST - 2>();
    __syncthreads();
    prep(0);
    float srun = 0.f;  // half 1: the sum of its steps' dt so far

    for (int tile = 0; tile < ntiles; ++tile) {
        // Everyone is done with the outputs of tile - 1 (s_y) and the prep of tile.
        __syncthreads();
        if (tile + NST - 1 < ntiles) stage_tile(tile + NST - 1);
        s1s_commit();
        {
            const T* st = stage_ptr(tile);
            const T* sB = st + g * RS;
            const T* sC = st + (64 + g) * RS;
            const float* tdt = s_pp + (tile & 1) * 4 * PB + cl * 36;
            const float* tdu = tdt + PB;
            float* ty = s_y + (cl * GT + g) * 36;
            float* tS = s_S + cl * LH + tile * S1S_TT;
            float4 dt4 = *reinterpret_cast<const float4*>(tdt);
            float4 du4 = *reinterpret_cast<const float4*>(tdu);
            float4 bv[S], cv[S];
#pragma unroll
            for (int s = 0; s < S; ++s) {
                bv[s] = s1s_ld4(sB + GT * s * RS);
                cv[s] = s1s_ld4(sC + GT * s * RS);
            }
#pragma unroll
            for (int q = 0; q < S1S_TT; q += 4) {
                float4 dtn = dt4, dun = du4, bn[S], cnx[S];
                if (q + 4 < S1S_TT) {
                    dtn = *reinterpret_cast<const float4*>(tdt + q + 4);
                    dun = *reinterpret_cast<const float4*>(tdu + q + 4);
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        bn[s] = s1s_ld4(sB + GT * s * RS + q + 4);
                        cnx[s] = s1s_ld4(sC + GT * s * RS + q + 4);
                    }
                } else {
#pragma unroll
                    for (int s = 0; s < S; ++s) bn[s] = cnx[s] = bv[s];
                }
                const float dts[4] = {dt4.x, dt4.y, dt4.z, dt4.w};
                const float dus[4] = {du4.x, du4.y, du4.z, du4.w};
                float e[4][S];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
#pragma unroll
                    for (int s = 0; s < S; ++s) e[j][s] = ex2_fast(dts[j] * a2[s]);
                }
                float y[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    float acc = 0.f;
#pragma unroll
                    for (int s = 0; s < S; ++s) {
                        const float bj = j == 0 ? bv[s].x : j == 1 ? bv[s].y : j == 2 ? bv[s].z : bv[s].w;
                        const float cj = j == 0 ? cv[s].x : j == 1 ? cv[s].y : j == 2 ? cv[s].z : cv[s].w;
                        h[s] = fmaf(e[j][s], h[s], dus[j] * bj);
                        acc = fmaf(cj, h[s], acc);
                    }
                    y[j] = acc;
                }
                *reinterpret_cast<float4*>(ty + q) = make_float4(y[0], y[1], y[2], y[3]);
                if (hf == 1) {
                    const float s0 = srun + dts[0], s1 = s0 + dts[1], s2 = s1 + dts[2], s3 = s2 + dts[3];
                    srun = s3;
                    if (g == 0) *reinterpret_cast<float4*>(tS + q) = make_float4(s0, s1, s2, s3);
                }
                dt4 = dtn;
                du4 = dun;
#pragma unroll
                for (int s = 0; s < S; ++s) {
                    bv[s] = bn[s];
                    cv[s] = cnx[s];
                }
            }
        }
        // Tile + 1 landed (for its prep); the step loop of tile done (its y partials).
        s1s_wait<NST - 2>();
        __syncthreads();
        output(tile);
        if (tile + 1 < ntiles) prep(tile + 1);
    }
    s1s_wait<0>();
    // Half 0's end state and the decays' exponents for half 1's correction.
    if (hf == 0) {
#pragma unroll
        for (int s = 0; s < S; ++s) {
            s_h[cl * 64 + g + GT * s] = h[s];
            s_a[cl * 64 + g + GT * s] = a2[s];
        }
    }
    __syncthreads();
    const int L1 = L - LH;  // half 1's length (<= 0: none)
    if (hf == 1 && active && p.hlast) {
        const float send = L1 > 0 ? s_S[cl * LH + L1 - 1] : 0.f;
#pragma unroll
        for (int s = 0; s < S; ++s) {
            const int n = g + GT * s;
            if (n < N) p.hlast[((size_t)i * dim + c) * N + n] = fmaf(ex2_fast(a2[s] * send), s_h[cl * 64 + n], h[s]);
        }
    }
    if (L1 > 0) {
        // One lane per step of half 1; items (channel, 32-step block) over all warps.
        const int nb1 = (L1 + 31) / 32, nwarps = 2 * CPB, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        const T* crow1 = static_cast<const T*>(p.C) + ((size_t)i * p.c_groups + c0 / (dim / p.c_groups)) * N * (size_t)L + LH;
        T* out1 = static_cast<T*>(p.out) + rbase * L + LH;
        const T* z1 = p.z ? static_cast<const T*>(p.z) + rbase * L + LH : nullptr;
        for (int it = warp; it < cn * nb1; it += nwarps) {
            const int cc = it / nb1, t = (it % nb1) * 32 + lane;
            if (t >= L1) continue;
            const float sv = s_S[cc * LH + t];
            const float* hm = s_h + cc * 64;
            const float* am = s_a + cc * 64;
            float acc0 = 0.f, acc1 = 0.f;
            int n = 0;
            for (; n + 2 <= N; n += 2) {
                const float cv0 = ldf(crow1 + (size_t)n * L + t), cv1 = ldf(crow1 + (size_t)(n + 1) * L + t);
                acc0 = fmaf(cv0 * hm[n], ex2_fast(am[n] * sv), acc0);
                acc1 = fmaf(cv1 * hm[n + 1], ex2_fast(am[n + 1] * sv), acc1);
            }
            if (n < N) acc0 = fmaf(ldf(crow1 + (size_t)n * L + t) * hm[n], ex2_fast(am[n] * sv), acc0);
            const float gt = z1 ? silu_f(ldf(z1 + (size_t)cc * L + t)) : 1.f;
            T* o = out1 + (size_t)cc * L + t;
            *o = cvt<T>(ldf(o) + gt * (acc0 + acc1));
        }
    }
}

#ifndef MAMBA_EMU
#define S1S_KERNEL(NAME, T) \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_v1(const __grid_constant__ Scan1Params p) { s1s_fwd<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 16, false>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_p(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 16, true>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32_p(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, true>(p); } \
    extern "C" __global__ void __launch_bounds__(384, 1) s1s_fwd_##NAME##_g64(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 64, false>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_ws(const __grid_constant__ Scan1Params p) { s1s_fwd3<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32f(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, true>(p); } \
    extern "C" __global__ void __launch_bounds__(384, 1) s1s_fwd_##NAME##_t2(const __grid_constant__ Scan1Params p) { s1s_fwd5<T>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32i(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 1>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32j(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 2>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32k(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 3>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32l(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 4>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32m(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 5>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32n(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 6>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32o(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 7>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32q(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 8>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32r(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 9>(p); } \
    extern "C" __global__ void __launch_bounds__(256, 1) s1s_fwd_##NAME##_g32s(const __grid_constant__ Scan1Params p) { s1s_fwd2<T, 32, false, false, 10>(p); }
S1S_KERNEL(f32, float)
S1S_KERNEL(bf16, bf16_t)
S1S_KERNEL(f16, f16_t)
#endif
