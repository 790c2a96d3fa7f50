// The 16-bit storage types' conversions of the emulators (emu_ssdc.cpp, emu_misc.cpp):
// f32 -> bf16 and f16 round to nearest even (f16 with subnormals, inf / NaN), and back.
#pragma once
#include <cmath>
#include <cstring>

inline unsigned short emu_f2bf(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
inline float emu_bf2f(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
inline unsigned short emu_f2h(float f) {
    unsigned x;
    std::memcpy(&x, &f, 4);
    const unsigned sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (unsigned short)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    float a;
    std::memcpy(&a, &ax, 4);
    if (a >= 65520.f) return (unsigned short)(sign | 0x7c00u);
    if (a < 6.103515625e-05f) return (unsigned short)(sign | (unsigned)std::nearbyint((double)a * 16777216.0));
    int e;
    const double m = std::frexp((double)a, &e);
    double r = std::nearbyint(m * 2048.0);
    if (r == 2048.0) {
        r = 1024.0;
        ++e;
    }
    const unsigned ex = (unsigned)(e - 1 + 15);
    if (ex >= 31) return (unsigned short)(sign | 0x7c00u);
    return (unsigned short)(sign | (ex << 10) | ((unsigned)r - 1024u));
}
inline float emu_h2f(unsigned short h) {
    const unsigned ex = (h >> 10) & 31u, man = h & 0x3ffu;
    float v;
    if (ex == 0) v = std::ldexp((float)man, -24);
    else if (ex == 31) v = man ? NAN : INFINITY;
    else v = std::ldexp((float)(man | 0x400u), (int)ex - 25);
    return (h & 0x8000u) ? -v : v;
}
