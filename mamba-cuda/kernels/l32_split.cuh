// Helpers of the f32 SSD at the language-model shape shared by kernels/ssd_lm32.cu and the
// sm_90a kernels of kernels/ssd_wg.cu: the chunk length, the per-chunk header's size, and
// the split of f32 values into scaled f16 hi / lo halves (the split-f16 products).
#pragma once
#include "common.cuh"

#define L32_Q 128

// The header of one (batch, head, chunk) (`ssdl32_hdr*`): s_cs (f64 cumulative sums of
// dt A inside the chunk, Q), s_ecs = exp(cs) (Q floats from byte 8 Q), s_w = exp(cs_end -
// cs) dt (from byte 12 Q), s_dt (from byte 16 Q), s_misc[0] = exp(cs_end) (byte 20 Q).
__host__ __device__ constexpr int l32_hdr_bytes() { return ((L32_Q * 20 + 16) + 127) / 128 * 128; }

// A shared-memory address (the emulator: the offset in its shared-memory array).
__device__ __forceinline__ unsigned l32_sa(const void* s) {
#ifdef MAMBA_EMU
    return static_cast<unsigned>(static_cast<const unsigned char*>(s) - g_smem_bytes);
#else
    return static_cast<unsigned>(__cvta_generic_to_shared(s));
#endif
}

__device__ __forceinline__ unsigned short l32_f2h(float x) {
#ifdef MAMBA_EMU
    return emu_f2h(x);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
#endif
}
__device__ __forceinline__ float l32_h2f(unsigned short h) {
#ifdef MAMBA_EMU
    return emu_h2f(h);
#else
    float x;
    asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
    return x;
#endif
}
// The scale 2^(15 - e) for a largest |value| f 2^e (f in [0.5, 1)); 1 where it is 0 or not
// finite (NaN / inf then reach the output as they are); at most 2^126.
__device__ __forceinline__ float l32_hscale(float mx) {
    if (!(mx > 0.f) || !(mx <= 3.0e38f)) return 1.f;
    int e;
    frexpf(mx, &e);
    return ldexpf(1.f, min(15 - e, 126));
}
// Two values times s as f16 hi / lo pairs (the first value in the low half).
__device__ __forceinline__ void l32_hsplit2(float a, float b, float s, unsigned& hi, unsigned& lo) {
    const float x = a * s, y = b * s;
    const unsigned short xh = l32_f2h(x), yh = l32_f2h(y);
    hi = (unsigned)xh | ((unsigned)yh << 16);
    lo = (unsigned)l32_f2h(x - l32_h2f(xh)) | ((unsigned)l32_f2h(y - l32_h2f(yh)) << 16);
}

// As l32_hsplit2 with a scale per value.
__device__ __forceinline__ void l32_hsplit2s(float a, float b, float sa, float sb, unsigned& hi, unsigned& lo) {
    const float x = a * sa, y = b * sb;
    const unsigned short xh = l32_f2h(x), yh = l32_f2h(y);
    hi = (unsigned)xh | ((unsigned)yh << 16);
    lo = (unsigned)l32_f2h(x - l32_h2f(xh)) | ((unsigned)l32_f2h(y - l32_h2f(yh)) << 16);
}
