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

#include <cstdlib>
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

// cp.async of 4, 8 or 16 bytes (the `ssdc_*` helpers of kernels/ssd_chunk.cu and the `l32_*`
// ones of kernels/ssd_lm32.cu since the thirty-sixth session; the `lm_*` ones of
// kernels/scan1_lm.cu, the `cp_async*` ones of kernels/scan1.cu, the `s1s_*` ones of
// kernels/scan1_seed.cu, the `sbc_*` ones of kernels/ssd_bwdc.cu and the `ssdr_*` / `ssdq_*`
// ones of the SSD seed kernels since the thirty-seventh): a copy lands in shared memory only
// when a wait_group (or wait_all) of its thread covers its committed group, as on the device,
// so that a read before the wait (or of a group still in flight) sees stale bytes and fails
// the checks. The source is read at issue: `bytes` of it, the rest of the `size`-byte
// destination zero-filled (cp.async's src-size operand; `bytes` 0 writes zeros). As on the
// device, a wait_group does not cover copies not yet committed; `emu_cp_wait_all` (as
// `cp.async.wait_all`) commits them first.
struct EmuCopy {
    unsigned char* dst;
    int size;
    unsigned char data[16];
};
thread_local std::vector<EmuCopy> g_cp_open;
thread_local std::vector<std::vector<EmuCopy>> g_cp_groups;
inline void emu_cp(void* dst, const void* src, int bytes, int size) {
    if (bytes < 0 || bytes > size || size > 16) std::abort();  // not a cp.async shape
#ifdef EMU_CP_IMMEDIATE  // the old model, for comparison: the copy lands at issue
    if (bytes) std::memcpy(dst, src, bytes);
    if (bytes < size) std::memset(static_cast<unsigned char*>(dst) + bytes, 0, size - bytes);
    return;
#endif
    EmuCopy c;
    c.dst = static_cast<unsigned char*>(dst);
    c.size = size;
    std::memset(c.data, 0, sizeof c.data);
    if (bytes) std::memcpy(c.data, src, bytes);
    g_cp_open.push_back(c);
}
inline void emu_cp16(void* dst, const void* src, int bytes) { emu_cp(dst, src, bytes ? 16 : 0, 16); }
inline void emu_cp_commit() {
    g_cp_groups.push_back(std::move(g_cp_open));
    g_cp_open.clear();
}
// Lands every committed group but the n newest.
inline void emu_cp_wait(int n) {
    while ((int)g_cp_groups.size() > n) {
        for (const auto& c : g_cp_groups.front()) std::memcpy(c.dst, c.data, c.size);
        g_cp_groups.erase(g_cp_groups.begin());
    }
}
inline void emu_cp_wait_all() {
    emu_cp_commit();
    emu_cp_wait(0);
}
