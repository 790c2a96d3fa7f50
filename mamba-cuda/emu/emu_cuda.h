// What the host emulators (emu.cpp, emu_fwd.cpp, emu_ssdc.cpp) share: the CUDA
// qualifiers as no-ops and the thread / block indices, one std::thread per CUDA thread.
#pragma once

#define MAMBA_EMU 1
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __maxnreg__(...)
#define __grid_constant__
#define __shared__ static
#define __align__(n)

#include <cstring>

// The bit casts of the CUDA intrinsics.
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}

struct uint3e {
    unsigned x, y, z;
};
thread_local uint3e threadIdx, blockIdx;
uint3e blockDim, gridDim;
