//! The scalar path: one lane, plain `f32` arithmetic. Always compiled and always
//! available; it runs the same algorithms (including the polynomial `exp`) as the
//! vector paths, so every path agrees to rounding.

use super::{Simd, SimdLevel};

/// The scalar "instruction set": available on every CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;

impl Simd for Scalar {
    type V = f32;
    const LANES: usize = 1;
    const LEVEL: SimdLevel = SimdLevel::Scalar;

    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: f32) {
        s[0] = v;
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        // A separate multiply and add: `f32::mul_add` is a slow library call on CPUs
        // without FMA, and the scalar path is the one for those CPUs.
        a * b + c
    }
    #[inline(always)]
    fn clamp(self, x: f32, lo: f32, hi: f32) -> f32 {
        // Written with comparisons so that a NaN falls through unchanged.
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }
    #[inline(always)]
    fn select_lt(self, a: f32, b: f32, x: f32, y: f32) -> f32 {
        if a < b {
            x
        } else {
            y
        }
    }
    #[inline(always)]
    fn round(self, x: f32) -> f32 {
        // Adding and taking off 1.5 * 2^23 rounds to the nearest integer, ties to even,
        // for |x| < 2^22 (larger floats are integers already); this avoids a library
        // call in the scalar `exp`.
        const MAGIC: f32 = 12_582_912.0;
        if x.abs() < 4_194_304.0 {
            (x + MAGIC) - MAGIC
        } else {
            x
        }
    }
    #[inline(always)]
    fn ldexp(self, x: f32, k: f32) -> f32 {
        // Two factors, each a normal power of two, so that results from the largest
        // finite value down to the subnormals come out rounded once or twice but right.
        let k = k as i32;
        let k1 = k >> 1;
        let k2 = k - k1;
        x * f32::from_bits(((k1 + 127) as u32) << 23) * f32::from_bits(((k2 + 127) as u32) << 23)
    }
    #[inline(always)]
    fn frexp(self, x: f32) -> (f32, f32) {
        let bits = x.to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 126;
        let m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
        (m, e as f32)
    }
    #[inline(always)]
    fn reduce_sum(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
}
