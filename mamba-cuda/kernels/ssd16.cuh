// The 16-bit operand type of the `ssdl` VAR 28 kernels (`ssdl_cbh_*_q128_i`,
// `ssdlb_states1_*_v`, `ssdl_out_*_hy`): bf16, and f16 since the twenty-fifth session (the
// same fragment layouts; mma.sync m16n8k16 .f16 and mul.rn.f16x2 where bf16 has .bf16 and
// mul.rn.bf16x2). Included after ssdm_pack, ssdm_mma and ssdl_mul_bf2 (ssd_chunk.cu, or
// ssd_lm.cu's own helpers). The emulator defines MAMBA_EMU_F16 where it mocks f16_t.
#pragma once
#include "mma_f16.cuh"
#if !defined(MAMBA_EMU) || defined(MAMBA_EMU_F16)
#define SSDL_HAVE_F16 1
#endif
// VAR 9 on: the C B^T tile image of `ssdl_cb_*_q128_i` / `ssdl_out_*_q128_h` (and the wgmma
// outputs kernel of ssd_wg.cu): the lower 16 x 16 tiles (ti, s) with s <= ti at
// ti (ti + 1) / 2 + s, 256 16-bit values each; row r at 16 r, its two 8-element halves
// swapped where (r >> 2) & 1 (ldmatrix reads 8 rows of 16 bytes without bank conflicts).
// The element offset of (r, col) in a tile:
__host__ __device__ inline int ssdl_cbi_off(int r, int col) { return r * 16 + (((col >> 3) ^ ((r >> 2) & 1)) << 3) + (col & 7); }
template <typename T> struct Ssdl16;
template <> struct Ssdl16<bf16_t> {
    static __device__ __forceinline__ unsigned pack(float lo, float hi) { return ssdm_pack(lo, hi); }
    // The low / high value of a packed pair as f32 (one instruction each on the device).
    static __device__ __forceinline__ float lo(unsigned v) {
#ifdef MAMBA_EMU
        return emu_bf2f((unsigned short)(v & 0xffffu));
#else
        return __uint_as_float(v << 16);
#endif
    }
    static __device__ __forceinline__ float hi(unsigned v) {
#ifdef MAMBA_EMU
        return emu_bf2f((unsigned short)(v >> 16));
#else
        return __uint_as_float(v & 0xffff0000u);
#endif
    }
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        ssdm_mma(d, a, b);
    }
    static __device__ __forceinline__ unsigned mul2(unsigned a, unsigned b) { return ssdl_mul_bf2(a, b); }
};
#ifdef SSDL_HAVE_F16
template <> struct Ssdl16<f16_t> {
    static __device__ __forceinline__ unsigned pack(float lo, float hi) {
#ifdef MAMBA_EMU
        return (unsigned)emu_f2h(lo) | ((unsigned)emu_f2h(hi) << 16);
#else
        const __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const unsigned*>(&v);
#endif
    }
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        mma_f16_16816(d, a, b);
    }
    static __device__ __forceinline__ float lo(unsigned v) {
#ifdef MAMBA_EMU
        return emu_h2f((unsigned short)(v & 0xffffu));
#else
        return __half2float(__ushort_as_half((unsigned short)(v & 0xffffu)));
#endif
    }
    static __device__ __forceinline__ float hi(unsigned v) {
#ifdef MAMBA_EMU
        return emu_h2f((unsigned short)(v >> 16));
#else
        return __half2float(__ushort_as_half((unsigned short)(v >> 16)));
#endif
    }
    // f16x2 times f16x2, each rounded to nearest (the product of two f16 is exact in f32).
    static __device__ __forceinline__ unsigned mul2(unsigned a, unsigned b) {
#ifdef MAMBA_EMU
        auto lo = [](unsigned v) { return emu_h2f((unsigned short)(v & 0xffffu)); };
        auto hi = [](unsigned v) { return emu_h2f((unsigned short)(v >> 16)); };
        return pack(lo(a) * lo(b), hi(a) * hi(b));
#else
        unsigned d;
        asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
        return d;
#endif
    }
};
#endif
