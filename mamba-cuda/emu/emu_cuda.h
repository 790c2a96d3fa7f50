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
#include <vector>

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

// cp.async of 16 bytes (the `ssdc_*` helpers of kernels/ssd_chunk.cu and the `l32_*` ones of
// kernels/ssd_lm32.cu; thirty-sixth session): a copy lands in shared memory only when a
// wait_group of its thread covers its committed group, as on the device, so that a read
// before the wait (or of a group still in flight) sees stale bytes and fails the checks.
// The source is read at issue; a zero-size copy writes zeros.
struct EmuCopy {
    unsigned char* dst;
    unsigned char data[16];
};
thread_local std::vector<EmuCopy> g_cp_open;
thread_local std::vector<std::vector<EmuCopy>> g_cp_groups;
inline void emu_cp16(void* dst, const void* src, int bytes) {
#ifdef EMU_CP_IMMEDIATE  // the old model, for comparison: the copy lands at issue
    if (bytes) std::memcpy(dst, src, 16);
    else std::memset(dst, 0, 16);
    return;
#endif
    EmuCopy c;
    c.dst = static_cast<unsigned char*>(dst);
    if (bytes) std::memcpy(c.data, src, 16);
    else std::memset(c.data, 0, 16);
    g_cp_open.push_back(c);
}
inline void emu_cp_commit() {
    g_cp_groups.push_back(std::move(g_cp_open));
    g_cp_open.clear();
}
// Lands every committed group but the n newest.
inline void emu_cp_wait(int n) {
    while ((int)g_cp_groups.size() > n) {
        for (const auto& c : g_cp_groups.front()) std::memcpy(c.dst, c.data, 16);
        g_cp_groups.erase(g_cp_groups.begin());
    }
}
