//! Scalar definitions shared by every backend (SPEC "shared definitions").

use crate::element::Real;

/// Above this, `softplus(v) = v` exactly (and its derivative is 1).
pub const SOFTPLUS_THRESHOLD: f64 = 20.0;

/// `ln(1 + e^v)`, and exactly `v` when `v > 20`.
#[inline]
pub fn softplus<R: Real>(v: R) -> R {
    if v > R::c(SOFTPLUS_THRESHOLD) {
        v
    } else {
        v.exp().ln_1p()
    }
}

/// Derivative of [`softplus`] as written: `sigmoid(v)`, and 1 when `v > 20`.
#[inline]
pub fn softplus_grad<R: Real>(v: R) -> R {
    if v > R::c(SOFTPLUS_THRESHOLD) {
        R::one()
    } else {
        sigmoid(v)
    }
}

/// `1 / (1 + e^-v)`.
#[inline]
pub fn sigmoid<R: Real>(v: R) -> R {
    R::one() / (R::one() + (-v).exp())
}

/// `v / (1 + e^-v)`.
#[inline]
pub fn silu<R: Real>(v: R) -> R {
    v * sigmoid(v)
}

/// Derivative of [`silu`]: `s (1 + v (1 - s))` with `s = sigmoid(v)`.
#[inline]
pub fn silu_grad<R: Real>(v: R) -> R {
    let s = sigmoid(v);
    s * (R::one() + v * (R::one() - s))
}

/// The effective step of ops 1, 2 and 4: `raw + bias`, softplus if asked, clamped to
/// `limit` if given. Returns the step and its derivative with respect to `raw`
/// (0 where the clamp is active).
#[inline]
pub fn step_size<R: Real>(raw: R, softplus_on: bool, limit: Option<(f32, f32)>) -> (R, R) {
    let (mut s, mut ds) = if softplus_on {
        (softplus(raw), softplus_grad(raw))
    } else {
        (raw, R::one())
    };
    if let Some((lo, hi)) = limit {
        let (lo, hi) = (R::of(lo), R::of(hi));
        if s < lo {
            s = lo;
            ds = R::zero();
        } else if s > hi {
            s = hi;
            ds = R::zero();
        }
    }
    (s, ds)
}
