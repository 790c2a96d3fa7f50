//! The aarch64 path: NEON (ASIMD), 4 lanes.
//!
//! NEON is part of the aarch64 baseline, but the token is still made by a detecting
//! constructor so that every path follows the same rule.

use core::arch::aarch64::*;

use super::{Simd, SimdLevel};

/// Proof that the CPU has NEON: only [`Neon::try_new`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _private: (),
}

impl Neon {
    /// The token, if the CPU has NEON.
    pub fn try_new() -> Option<Neon> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon { _private: () })
    }
}

mod imp {
    //! The NEON operations; intrinsics are safe to call inside these functions.
    use core::arch::aarch64::*;

    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn splat(x: f32) -> float32x4_t {
        vdupq_n_f32(x)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vaddq_f32(a, b)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vsubq_f32(a, b)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vmulq_f32(a, b)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn div(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vdivq_f32(a, b)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        vfmaq_f32(c, a, b)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn clamp(x: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> float32x4_t {
        // FMAX/FMIN return NaN when either input is NaN.
        vminq_f32(hi, vmaxq_f32(lo, x))
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn select_lt(
        a: float32x4_t,
        b: float32x4_t,
        x: float32x4_t,
        y: float32x4_t,
    ) -> float32x4_t {
        vbslq_f32(vcltq_f32(a, b), x, y)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn round(x: float32x4_t) -> float32x4_t {
        vrndnq_f32(x)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn ldexp(x: float32x4_t, k: float32x4_t) -> float32x4_t {
        // Two normal powers of two, as in the other paths.
        let k = vcvtq_s32_f32(k);
        let k1 = vshrq_n_s32::<1>(k);
        let k2 = vsubq_s32(k, k1);
        let bias = vdupq_n_s32(127);
        let s1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(k1, bias)));
        let s2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(k2, bias)));
        vmulq_f32(vmulq_f32(x, s1), s2)
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn frexp(x: float32x4_t) -> (float32x4_t, float32x4_t) {
        let bits = vreinterpretq_u32_f32(x);
        let e = vsubq_s32(
            vreinterpretq_s32_u32(vandq_u32(vshrq_n_u32::<23>(bits), vdupq_n_u32(0xff))),
            vdupq_n_s32(126),
        );
        let m = vorrq_u32(
            vandq_u32(bits, vdupq_n_u32(0x807f_ffff)),
            vdupq_n_u32(0x3f00_0000),
        );
        (vreinterpretq_f32_u32(m), vcvtq_f32_s32(e))
    }
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn reduce_sum(v: float32x4_t) -> f32 {
        vaddvq_f32(v)
    }
    /// The lane sums of 4 vectors at a time by pairwise additions.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn reduce_sums(vs: &[f32], out: &mut [f32]) {
        let groups = out.len() / 4;
        for g in 0..groups {
            let src = &vs[g * 16..(g + 1) * 16];
            let mut v = [vdupq_n_f32(0.0); 4];
            for (i, vi) in v.iter_mut().enumerate() {
                // SAFETY: `src` holds 16 floats, so 4 are readable at 4 i.
                *vi = unsafe { vld1q_f32(src[i * 4..].as_ptr()) };
            }
            let sums = vpaddq_f32(vpaddq_f32(v[0], v[1]), vpaddq_f32(v[2], v[3]));
            let dst = &mut out[g * 4..(g + 1) * 4];
            // SAFETY: `dst` holds 4 writable floats.
            unsafe { vst1q_f32(dst.as_mut_ptr(), sums) };
        }
        for i in groups * 4..out.len() {
            let src = &vs[i * 4..(i + 1) * 4];
            // SAFETY: `src` holds 4 readable floats.
            out[i] = vaddvq_f32(unsafe { vld1q_f32(src.as_ptr()) });
        }
    }
}

impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;
    const LEVEL: SimdLevel = SimdLevel::Neon;

    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::splat(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        let s = &s[..4];
        // SAFETY: `s` holds 4 readable f32s (checked by the slice above); the token
        // proves NEON.
        unsafe { vld1q_f32(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: float32x4_t) {
        let s = &mut s[..4];
        // SAFETY: `s` holds 4 writable f32s (checked by the slice above); the token
        // proves NEON.
        unsafe { vst1q_f32(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::add(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::sub(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::mul(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::div(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::mul_add(a, b, c) }
    }
    #[inline(always)]
    fn clamp(self, x: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::clamp(x, lo, hi) }
    }
    #[inline(always)]
    fn select_lt(
        self,
        a: float32x4_t,
        b: float32x4_t,
        x: float32x4_t,
        y: float32x4_t,
    ) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::select_lt(a, b, x, y) }
    }
    #[inline(always)]
    fn round(self, x: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::round(x) }
    }
    #[inline(always)]
    fn ldexp(self, x: float32x4_t, k: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::ldexp(x, k) }
    }
    #[inline(always)]
    fn frexp(self, x: float32x4_t) -> (float32x4_t, float32x4_t) {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::frexp(x) }
    }
    #[inline(always)]
    fn reduce_sum(self, v: float32x4_t) -> f32 {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::reduce_sum(v) }
    }
    #[inline(always)]
    fn reduce_sums(self, vs: &[f32], out: &mut [f32]) {
        // SAFETY: the token proves the CPU has NEON.
        unsafe { imp::reduce_sums(vs, out) }
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        #[target_feature(enable = "neon")]
        fn with_neon<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the token proves the CPU has NEON.
        unsafe { with_neon(f) }
    }
}
