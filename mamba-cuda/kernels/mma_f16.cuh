// mma.sync m16n8k16 with f16 operands and f32 accumulators (d += a b; a: 4 registers of two
// f16, b: 2): the f16 `ssdl` kernels (ssd16.cuh) and the split-f16 products of ssd_lm32.cu.
// The host emulators define emu_mma_f16.
#pragma once
__device__ __forceinline__ void mma_f16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef MAMBA_EMU
    emu_mma_f16(d, a, b);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
