// 3xTF32 on mma.sync m16n8k8 (ssd_lm32.cu, ssd_seed3.cu; a header of its own so that the
// kernels which include only mma_tf32.cuh compile from the same source as before).
#pragma once
#include "mma_tf32.cuh"

// 3xTF32 (ssd_lm32.cu, ssd_seed3.cu): a b ~ a_lo b_hi + a_hi b_lo + a_hi b_hi with f32
// accumulation. hi = v & 0xffffe000 is exact (the tensor cores read a tf32 operand
// truncated) and lo = v - hi is exact in f32; lo is passed as is and truncated by the
// hardware (an error of 2^-11 of lo, ~2^-21 of v). The split is done once per loaded
// fragment value and reused by every tile it feeds.
__device__ __forceinline__ void tf32x3_split(float v, unsigned& hi, unsigned& lo) {
    hi = __float_as_uint(v) & 0xffffe000u;
    lo = __float_as_uint(v - __uint_as_float(hi));
#ifdef MAMBA_EMU
    lo &= 0xffffe000u;  // the hardware truncates the tf32 operand
#endif
}
struct Tf32x3A {
    unsigned h[4], l[4];
};
struct Tf32x3B {
    unsigned h[2], l[2];
};
__device__ __forceinline__ void tf32x3_a(Tf32x3A& a, float a0, float a1, float a2, float a3) {
    tf32x3_split(a0, a.h[0], a.l[0]);
    tf32x3_split(a1, a.h[1], a.l[1]);
    tf32x3_split(a2, a.h[2], a.l[2]);
    tf32x3_split(a3, a.h[3], a.l[3]);
}
__device__ __forceinline__ void tf32x3_b(Tf32x3B& b, float b0, float b1) {
    tf32x3_split(b0, b.h[0], b.l[0]);
    tf32x3_split(b1, b.h[1], b.l[1]);
}
// d += a b in 3xTF32 (the small terms first).
__device__ __forceinline__ void mma_tf32x3(float (&d)[4], const Tf32x3A& a, const Tf32x3B& b) {
    mma_tf32_16x8x8(d, a.l, b.h);
    mma_tf32_16x8x8(d, a.h, b.l);
    mma_tf32_16x8x8(d, a.h, b.h);
}
