//! Vector elementary functions built from the [`Simd`] primitives, one algorithm for
//! every path: `exp`, `exp2` (the Mamba-1 scan's decays), `ln`, `log1p`, and the
//! SPEC's `softplus`, `sigmoid`, `silu` with their derivatives.

use super::Simd;

/// Below this, `exp` is 0 in `f32` (half the smallest subnormal is `e^-103.97`).
const EXP_LO: f32 = -104.0;
/// Above this, `exp` overflows to infinity in `f32` (the largest finite value is
/// `e^88.72`).
const EXP_HI: f32 = 89.0;
/// `log2(e)`: `exp(x) = 2^(x LOG2E)`.
pub const LOG2E: f32 = core::f32::consts::LOG2_E;
/// `ln 2` split in two so that `k * LN2_HI` is exact for the `k` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` to about one ulp over the whole `f32` range (subnormal results included);
/// `+inf` above 88.72, 0 below -103.97, NaN for NaN.
///
/// Cody-Waite reduction `x = k ln 2 + r` with `|r| <= ln2/2`, the degree-7 Taylor-like
/// minimax polynomial of Cephes' `expf` for `e^r`, then `2^k` by [`Simd::ldexp`].
#[inline(always)]
pub fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    let x = s.clamp(x, s.splat(EXP_LO), s.splat(EXP_HI));
    let k = s.round(s.mul(x, s.splat(LOG2E)));
    let r = s.mul_add(k, s.splat(-LN2_HI), x);
    let r = s.mul_add(k, s.splat(-LN2_LO), r);
    let mut p = s.splat(1.987_569_1e-4);
    p = s.mul_add(p, r, s.splat(1.398_199_9e-3));
    p = s.mul_add(p, r, s.splat(8.333_452e-3));
    p = s.mul_add(p, r, s.splat(4.166_579_6e-2));
    p = s.mul_add(p, r, s.splat(1.666_666_5e-1));
    p = s.mul_add(p, r, s.splat(5e-1));
    let y = s.add(s.mul_add(p, s.mul(r, r), r), s.splat(1.0));
    s.ldexp(y, k)
}

/// Below this, `2^x` is 0 in `f32` (half the smallest subnormal is `2^-150`).
const EXP2_LO: f32 = -151.0;
/// Above this, `2^x` overflows to infinity in `f32`.
const EXP2_HI: f32 = 129.0;

/// `2^x` to about one ulp over the whole `f32` range (subnormal results included);
/// `+inf` above 128, 0 below -150, NaN for NaN.
///
/// `x = k + f` with `k` the nearest integer and `|f| <= 1/2`, a degree-6 polynomial
/// for `2^f` (fitted for relative error: 1.9e-9 in exact arithmetic, 7.9e-8 evaluated
/// in `f32`, against `2^f` in `f64` at 400 001 points), then `2^k` by [`Simd::ldexp`].
/// Four operations fewer than [`exp`] (no Cody-Waite reduction, no final add): the
/// scans' per-state decays `exp(dt A) = 2^(dt log2(e) A)` use it, with `dt log2(e)`
/// formed once per step. The rounding of that product (relative 2^-24 of `x`) makes
/// the decay's relative error about `|x| 2^-24`: small where a decay is near 1 and
/// carries a state far, larger only for decays so small that they carry almost
/// nothing.
#[inline(always)]
pub fn exp2<S: Simd>(s: S, x: S::V) -> S::V {
    let x = s.clamp(x, s.splat(EXP2_LO), s.splat(EXP2_HI));
    let k = s.round(x);
    let f = s.sub(x, k);
    let mut p = s.splat(1.534_581_2e-4);
    p = s.mul_add(p, f, s.splat(1.339_993_1e-3));
    p = s.mul_add(p, f, s.splat(9.618_489e-3));
    p = s.mul_add(p, f, s.splat(5.550_328_6e-2));
    p = s.mul_add(p, f, s.splat(2.402_264_6e-1));
    // The fit's linear coefficient rounds to `ln 2` in f32.
    p = s.mul_add(p, f, s.splat(core::f32::consts::LN_2));
    p = s.mul_add(p, f, s.splat(1.0));
    s.ldexp(p, k)
}

/// Natural logarithm of a positive normal `x`, to about one ulp (Cephes' `logf`).
#[inline(always)]
pub fn ln<S: Simd>(s: S, x: S::V) -> S::V {
    let one = s.splat(1.0);
    let (m, e) = s.frexp(x);
    // Move m from [0.5, 1) to [sqrt(1/2), sqrt(2)) and take 1 off, so the polynomial
    // works near zero where it is accurate.
    let sqrth = s.splat(core::f32::consts::FRAC_1_SQRT_2);
    let e = s.select_lt(m, sqrth, s.sub(e, one), e);
    let m = s.select_lt(m, sqrth, s.sub(s.add(m, m), one), s.sub(m, one));
    let z = s.mul(m, m);
    let mut y = s.splat(7.037_683_6e-2);
    y = s.mul_add(y, m, s.splat(-1.151_461e-1));
    y = s.mul_add(y, m, s.splat(1.167_699_9e-1));
    y = s.mul_add(y, m, s.splat(-1.242_014_1e-1));
    y = s.mul_add(y, m, s.splat(1.424_932_3e-1));
    y = s.mul_add(y, m, s.splat(-1.666_805_8e-1));
    y = s.mul_add(y, m, s.splat(2.000_071_5e-1));
    y = s.mul_add(y, m, s.splat(-2.499_999_4e-1));
    y = s.mul_add(y, m, s.splat(3.333_333e-1));
    y = s.mul(s.mul(y, m), z);
    y = s.mul_add(e, s.splat(LN2_LO), y);
    y = s.mul_add(z, s.splat(-0.5), y);
    let r = s.add(m, y);
    s.mul_add(e, s.splat(LN2_HI), r)
}

/// `ln(1 + y)` for `y >= 0`, accurate for tiny `y` too: the rounding of `1 + y` is
/// corrected to first order.
#[inline(always)]
pub fn log1p<S: Simd>(s: S, y: S::V) -> S::V {
    let u = s.add(s.splat(1.0), y);
    let err = s.sub(s.sub(u, s.splat(1.0)), y);
    s.sub(ln(s, u), s.div(err, u))
}

/// SPEC `softplus`: `ln(1 + e^v)`, and exactly `v` when `v > 20`.
#[inline(always)]
pub fn softplus<S: Simd>(s: S, v: S::V) -> S::V {
    let threshold = s.splat(mamba_core::math::SOFTPLUS_THRESHOLD as f32);
    let soft = log1p(s, exp(s, s.clamp(v, s.splat(EXP_LO), threshold)));
    s.select_lt(threshold, v, v, soft)
}

/// The derivative of [`softplus`] as written: `sigmoid(v)`, and 1 when `v > 20`.
#[inline(always)]
pub fn softplus_grad<S: Simd>(s: S, v: S::V) -> S::V {
    let threshold = s.splat(mamba_core::math::SOFTPLUS_THRESHOLD as f32);
    s.select_lt(threshold, v, s.splat(1.0), sigmoid(s, v))
}

/// `1 / (1 + e^-v)`.
#[inline(always)]
pub fn sigmoid<S: Simd>(s: S, v: S::V) -> S::V {
    let one = s.splat(1.0);
    s.div(one, s.add(one, exp(s, s.sub(s.zero(), v))))
}

/// `v / (1 + e^-v)`.
#[inline(always)]
pub fn silu<S: Simd>(s: S, v: S::V) -> S::V {
    s.mul(v, sigmoid(s, v))
}

/// `silu(v)` and its derivative `s (1 + v (1 - s))`, `s = sigmoid(v)`.
#[inline(always)]
pub fn silu_and_grad<S: Simd>(s: S, v: S::V) -> (S::V, S::V) {
    let one = s.splat(1.0);
    let sg = sigmoid(s, v);
    let grad = s.mul(sg, s.mul_add(v, s.sub(one, sg), one));
    (s.mul(v, sg), grad)
}

/// The step of ops 1, 2 and 4 for a vector of raw values (`dt + bias`): softplus if
/// asked, then clamped to `limit` if given. Returns the step and its derivative with
/// respect to the raw value (0 where the clamp is active), as
/// [`mamba_core::math::step_size`] does.
#[inline(always)]
pub fn step_size<S: Simd>(
    s: S,
    raw: S::V,
    softplus_on: bool,
    limit: Option<(f32, f32)>,
) -> (S::V, S::V) {
    let (mut step, mut dstep) = if softplus_on {
        (softplus(s, raw), softplus_grad(s, raw))
    } else {
        (raw, s.splat(1.0))
    };
    if let Some((lo, hi)) = limit {
        let (lo, hi) = (s.splat(lo), s.splat(hi));
        dstep = s.select_lt(step, lo, s.zero(), dstep);
        dstep = s.select_lt(hi, step, s.zero(), dstep);
        step = s.select_lt(step, lo, lo, step);
        step = s.select_lt(hi, step, hi, step);
    }
    (step, dstep)
}

/// Applies `f` to `src` a vector at a time and writes `dst`; the tail shorter than a
/// vector goes through a zero-padded stack buffer.
#[inline(always)]
pub fn map<S: Simd>(s: S, src: &[f32], dst: &mut [f32], mut f: impl FnMut(S::V) -> S::V) {
    let n = src.len().min(dst.len());
    let lanes = S::LANES;
    let full = n - n % lanes;
    let mut i = 0;
    while i < full {
        let v = f(s.load(&src[i..]));
        s.store(&mut dst[i..], v);
        i += lanes;
    }
    if full < n {
        let mut tmp = [0.0f32; super::MAX_LANES];
        tmp[..n - full].copy_from_slice(&src[full..n]);
        let v = f(s.load(&tmp));
        s.store(&mut tmp, v);
        dst[full..n].copy_from_slice(&tmp[..n - full]);
    }
}
