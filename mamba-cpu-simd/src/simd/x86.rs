//! The x86-64 paths: AVX2 with FMA (8 lanes) and AVX-512F (16 lanes).
//!
//! Each token method is one intrinsic inside an `unsafe` block (the intrinsics need
//! their target feature, which the token proves) or a call of a small
//! `#[target_feature]` helper in which the intrinsics are safe to call.

use core::arch::x86_64::*;

use super::{Simd, SimdLevel};

/// Proof that the CPU has AVX2 and FMA: only [`Avx2::try_new`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// The token, if the CPU has AVX2 and FMA.
    pub fn try_new() -> Option<Avx2> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            .then_some(Avx2 { _private: () })
    }
}

/// Proof that the CPU has AVX-512F (and the AVX2 and FMA it implies): only
/// [`Avx512::try_new`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512 {
    _private: (),
}

impl Avx512 {
    /// The token, if the CPU has AVX-512F (with AVX2 and FMA).
    pub fn try_new() -> Option<Avx512> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma"))
        .then_some(Avx512 { _private: () })
    }
}

const ROUND_NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

mod avx2 {
    //! Multi-instruction helpers of the AVX2 path; intrinsics are safe to call here.
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn ldexp(x: __m256, k: __m256) -> __m256 {
        // Split 2^k into two normal powers of two so that neither overflows nor
        // underflows on its own; the products then round as IEEE says.
        let k = _mm256_cvtps_epi32(k);
        let k1 = _mm256_srai_epi32::<1>(k);
        let k2 = _mm256_sub_epi32(k, k1);
        let bias = _mm256_set1_epi32(127);
        let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k1, bias)));
        let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k2, bias)));
        _mm256_mul_ps(_mm256_mul_ps(x, s1), s2)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn frexp(x: __m256) -> (__m256, __m256) {
        let bits = _mm256_castps_si256(x);
        let e = _mm256_sub_epi32(
            _mm256_and_si256(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(0xff)),
            _mm256_set1_epi32(126),
        );
        let m = _mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x807f_ffffu32 as i32)),
            _mm256_set1_epi32(0x3f00_0000),
        );
        (_mm256_castsi256_ps(m), _mm256_cvtepi32_ps(e))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn select_lt(a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn clamp(x: __m256, lo: __m256, hi: __m256) -> __m256 {
        // MAXPS/MINPS return their second operand when either is NaN, so a NaN `x`
        // passes through both.
        _mm256_min_ps(hi, _mm256_max_ps(lo, x))
    }

    /// The lane sums of 8 vectors, in order: a transposition by shuffles whose
    /// additions sum as they go.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn reduce8(v: [__m256; 8]) -> __m256 {
        // Halves: a[i] holds 4 partial sums of v[2i], then 4 of v[2i + 1].
        let mut a = [_mm256_setzero_ps(); 4];
        for (i, ai) in a.iter_mut().enumerate() {
            let (x, y) = (v[2 * i], v[2 * i + 1]);
            *ai = _mm256_add_ps(
                _mm256_permute2f128_ps::<0x20>(x, y),
                _mm256_permute2f128_ps::<0x31>(x, y),
            );
        }
        // Quarters: in 128-bit lane k, 2 partials of v[4m + k], then 2 of v[4m + 2 + k].
        let mut b = [_mm256_setzero_ps(); 2];
        for (m, bm) in b.iter_mut().enumerate() {
            let (x, y) = (a[2 * m], a[2 * m + 1]);
            *bm = _mm256_add_ps(
                _mm256_shuffle_ps::<0b01_00_01_00>(x, y),
                _mm256_shuffle_ps::<0b11_10_11_10>(x, y),
            );
        }
        // Sums: position 4k + m holds the sum of v[2m + k].
        let d = _mm256_add_ps(
            _mm256_shuffle_ps::<0b10_00_10_00>(b[0], b[1]),
            _mm256_shuffle_ps::<0b11_01_11_01>(b[0], b[1]),
        );
        _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn reduce_sums(vs: &[f32], out: &mut [f32]) {
        let groups = out.len() / 8;
        for g in 0..groups {
            let src = &vs[g * 64..(g + 1) * 64];
            let mut v = [_mm256_setzero_ps(); 8];
            for (i, vi) in v.iter_mut().enumerate() {
                // SAFETY: `src` holds 64 floats, so 8 are readable at 8 i.
                *vi = unsafe { _mm256_loadu_ps(src[i * 8..].as_ptr()) };
            }
            let sums = reduce8(v);
            let dst = &mut out[g * 8..(g + 1) * 8];
            // SAFETY: `dst` holds 8 writable floats.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), sums) };
        }
        for i in groups * 8..out.len() {
            let src = &vs[i * 8..(i + 1) * 8];
            // SAFETY: `src` holds 8 readable floats.
            out[i] = reduce_sum(unsafe { _mm256_loadu_ps(src.as_ptr()) });
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn reduce_sum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
}

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    const LEVEL: SimdLevel = SimdLevel::Avx2;

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: the token proves the CPU has AVX.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        let s = &s[..8];
        // SAFETY: `s` holds 8 readable f32s (checked by the slice above); the token
        // proves AVX; the load is unaligned.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m256) {
        let s = &mut s[..8];
        // SAFETY: `s` holds 8 writable f32s (checked by the slice above); the token
        // proves AVX; the store is unaligned.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn clamp(self, x: __m256, lo: __m256, hi: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX2 and FMA, the helper's features.
        unsafe { avx2::clamp(x, lo, hi) }
    }
    #[inline(always)]
    fn select_lt(self, a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX2 and FMA, the helper's features.
        unsafe { avx2::select_lt(a, b, x, y) }
    }
    #[inline(always)]
    fn round(self, x: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX.
        unsafe { _mm256_round_ps::<ROUND_NEAREST>(x) }
    }
    #[inline(always)]
    fn ldexp(self, x: __m256, k: __m256) -> __m256 {
        // SAFETY: the token proves the CPU has AVX2 and FMA, the helper's features.
        unsafe { avx2::ldexp(x, k) }
    }
    #[inline(always)]
    fn frexp(self, x: __m256) -> (__m256, __m256) {
        // SAFETY: the token proves the CPU has AVX2 and FMA, the helper's features.
        unsafe { avx2::frexp(x) }
    }
    #[inline(always)]
    fn reduce_sum(self, v: __m256) -> f32 {
        // SAFETY: the token proves the CPU has AVX2 and FMA, the helper's features.
        unsafe { avx2::reduce_sum(v) }
    }
    #[inline(always)]
    fn reduce_sums(self, vs: &[f32], out: &mut [f32]) {
        // SAFETY: the token proves the CPU has AVX2 and FMA, the helper's features.
        unsafe { avx2::reduce_sums(vs, out) }
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        #[target_feature(enable = "avx2,fma")]
        fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the token proves the CPU has AVX2 and FMA.
        unsafe { with_avx2(f) }
    }
}

mod avx512 {
    //! Multi-instruction helpers of the AVX-512 path; intrinsics are safe to call here.
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) fn frexp(x: __m512) -> (__m512, __m512) {
        let bits = _mm512_castps_si512(x);
        let e = _mm512_sub_epi32(
            _mm512_and_si512(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(0xff)),
            _mm512_set1_epi32(126),
        );
        let m = _mm512_or_si512(
            _mm512_and_si512(bits, _mm512_set1_epi32(0x807f_ffffu32 as i32)),
            _mm512_set1_epi32(0x3f00_0000),
        );
        (_mm512_castsi512_ps(m), _mm512_cvtepi32_ps(e))
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) fn select_lt(a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), y, x)
    }

    /// The lane sums of 16 vectors, in order: a transposition by shuffles whose
    /// additions sum as they go.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) fn reduce16(v: [__m512; 16]) -> __m512 {
        // Halves: a[i] holds 8 partial sums of v[2i], then 8 of v[2i + 1].
        let mut a = [_mm512_setzero_ps(); 8];
        for (i, ai) in a.iter_mut().enumerate() {
            let (x, y) = (v[2 * i], v[2 * i + 1]);
            *ai = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
            );
        }
        // Quarters: 128-bit lane k of b[j] holds 4 partials of v[4j + k].
        let mut b = [_mm512_setzero_ps(); 4];
        for (j, bj) in b.iter_mut().enumerate() {
            let (x, y) = (a[2 * j], a[2 * j + 1]);
            *bj = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
            );
        }
        // Eighths: lane k of c[m] holds 2 partials of v[8m + k], then 2 of v[8m + 4 + k].
        let mut c = [_mm512_setzero_ps(); 2];
        for (m, cm) in c.iter_mut().enumerate() {
            let (x, y) = (b[2 * m], b[2 * m + 1]);
            *cm = _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(x, y),
                _mm512_shuffle_ps::<0b11_10_11_10>(x, y),
            );
        }
        // Sums: position 4k + m holds the sum of v[4m + k].
        let d = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(c[0], c[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(c[0], c[1]),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, d)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) fn reduce_sums(vs: &[f32], out: &mut [f32]) {
        let groups = out.len() / 16;
        for g in 0..groups {
            let src = &vs[g * 256..(g + 1) * 256];
            let mut v = [_mm512_setzero_ps(); 16];
            for (i, vi) in v.iter_mut().enumerate() {
                // SAFETY: `src` holds 256 floats, so 16 are readable at 16 i.
                *vi = unsafe { _mm512_loadu_ps(src[i * 16..].as_ptr()) };
            }
            let sums = reduce16(v);
            let dst = &mut out[g * 16..(g + 1) * 16];
            // SAFETY: `dst` holds 16 writable floats.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), sums) };
        }
        for i in groups * 16..out.len() {
            let src = &vs[i * 16..(i + 1) * 16];
            // SAFETY: `src` holds 16 readable floats.
            out[i] = _mm512_reduce_add_ps(unsafe { _mm512_loadu_ps(src.as_ptr()) });
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) fn clamp(x: __m512, lo: __m512, hi: __m512) -> __m512 {
        // VMAXPS/VMINPS return their second operand when either is NaN, so a NaN `x`
        // passes through both.
        _mm512_min_ps(hi, _mm512_max_ps(lo, x))
    }
}

impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    const LEVEL: SimdLevel = SimdLevel::Avx512;

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        let s = &s[..16];
        // SAFETY: `s` holds 16 readable f32s (checked by the slice above); the token
        // proves AVX-512F; the load is unaligned.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m512) {
        let s = &mut s[..16];
        // SAFETY: `s` holds 16 writable f32s (checked by the slice above); the token
        // proves AVX-512F; the store is unaligned.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn clamp(self, x: __m512, lo: __m512, hi: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA, the helper's
        // features.
        unsafe { avx512::clamp(x, lo, hi) }
    }
    #[inline(always)]
    fn select_lt(self, a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA, the helper's
        // features.
        unsafe { avx512::select_lt(a, b, x, y) }
    }
    #[inline(always)]
    fn round(self, x: __m512) -> __m512 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_roundscale_ps::<ROUND_NEAREST>(x) }
    }
    #[inline(always)]
    fn ldexp(self, x: __m512, k: __m512) -> __m512 {
        // VSCALEFPS computes x * 2^floor(k) with IEEE overflow and underflow in one
        // instruction; `k` is integral here.
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_scalef_ps(x, k) }
    }
    #[inline(always)]
    fn frexp(self, x: __m512) -> (__m512, __m512) {
        // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA, the helper's
        // features.
        unsafe { avx512::frexp(x) }
    }
    #[inline(always)]
    fn reduce_sum(self, v: __m512) -> f32 {
        // SAFETY: the token proves the CPU has AVX-512F.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn reduce_sums(self, vs: &[f32], out: &mut [f32]) {
        // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA, the helper's
        // features.
        unsafe { avx512::reduce_sums(vs, out) }
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA.
        unsafe { with_avx512(f) }
    }
}
