// mma.sync m16n8k8 tf32 (row.col, f32 accumulation): d += a b with the PTX fragment layouts
// (operands as tf32 bit patterns; the tensor cores read the top 19 bits). Used by
// ssd_lm32.cu and ssd_bwdc.cu; the host emulators provide emu_mma_tf32.
#pragma once

__device__ __forceinline__ void mma_tf32_16x8x8(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef MAMBA_EMU
    emu_mma_tf32(d, a, b);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
