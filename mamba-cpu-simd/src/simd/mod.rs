//! Instruction sets, their tokens, run-time detection and the dispatch point.
//!
//! Every kernel is written once, generic over [`Simd`], and compiled once per
//! instruction set. A token type (for example [`Avx2`]) can only be made by its
//! detecting constructor, so holding one proves the CPU has the instructions; the
//! crate's one dispatch point per kernel runs it inside a
//! `#[target_feature]` function so that the intrinsics the token's methods call are
//! inlined with the right features enabled.

pub(crate) mod math;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use core::fmt;

#[cfg(target_arch = "aarch64")]
pub use neon::Neon;
pub use scalar::Scalar;
#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

/// The widest vector any path uses, in `f32` lanes (AVX-512): the size of the
/// stack buffers that hold a partial vector.
pub const MAX_LANES: usize = 16;

/// A vector instruction set: the `f32` vector operations every kernel is built from.
///
/// Implemented by zero-sized tokens that only a detecting constructor can create, so
/// the safe methods may use the instructions. Every method is `#[inline(always)]`:
/// it is meant to be inlined into a kernel that the dispatch point runs with the
/// instruction set's target features enabled.
pub trait Simd: Copy + Send + Sync + fmt::Debug + 'static {
    /// A vector of [`Simd::LANES`] `f32` values.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// The instruction set this token stands for.
    const LEVEL: SimdLevel;

    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Loads the first `LANES` values of `s`; panics if `s` is shorter.
    fn load(self, s: &[f32]) -> Self::V;
    /// Stores into the first `LANES` values of `s`; panics if `s` is shorter.
    fn store(self, s: &mut [f32], v: Self::V);
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, fused where the instruction set has it.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `x` clamped to `[lo, hi]`; a NaN stays NaN.
    fn clamp(self, x: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
    /// `a < b ? x : y`, lane by lane.
    fn select_lt(self, a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// Rounds to the nearest integer, ties to even.
    fn round(self, x: Self::V) -> Self::V;
    /// `x * 2^k` for integral `k` in `[-160, 160]`, with IEEE overflow and underflow.
    fn ldexp(self, x: Self::V, k: Self::V) -> Self::V;
    /// For positive normal `x`: `(m, e)` with `x = m * 2^e`, `m` in `[0.5, 1)`.
    fn frexp(self, x: Self::V) -> (Self::V, Self::V);
    /// The sum of the lanes.
    fn reduce_sum(self, v: Self::V) -> f32;
    /// The lane sums of `out.len()` vectors stored one after another in `vs`:
    /// `out[i] = sum(vs[i * LANES..(i + 1) * LANES])`. Vector paths transpose groups of
    /// vectors with shuffles, a few instructions per sum instead of a reduction tree
    /// each.
    #[inline(always)]
    fn reduce_sums(self, vs: &[f32], out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.reduce_sum(self.load(&vs[i * Self::LANES..]));
        }
    }
    /// Runs `f` where this instruction set's target features are enabled, so that
    /// `#[inline(always)]` code in `f` is compiled for them.
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R;

    /// All lanes zero.
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.splat(0.0)
    }
}

/// A kernel body, generic over the instruction set; run it with [`Isa::dispatch`].
pub(crate) trait Kernel {
    /// What the kernel returns.
    type Output;
    /// The body; implementations are `#[inline(always)]` so that the body is compiled
    /// inside the dispatching `#[target_feature]` function.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// The name of an instruction-set path, as the `MAMBA_SIMD` variable spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain scalar code, always compiled and always available.
    Scalar,
    /// x86-64 AVX2 with FMA, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes.
    Avx512,
    /// aarch64 NEON (ASIMD), 4 lanes.
    Neon,
}

impl SimdLevel {
    /// Every level, in order of preference from the least to the most capable.
    pub const ALL: [SimdLevel; 4] = [
        SimdLevel::Scalar,
        SimdLevel::Neon,
        SimdLevel::Avx2,
        SimdLevel::Avx512,
    ];

    /// `scalar`, `avx2`, `avx512` or `neon`.
    pub const fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Neon => "neon",
        }
    }

    /// The description used in [`Backend::detail`](mamba_core::Backend::detail),
    /// e.g. `avx2+fma`.
    pub const fn description(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2+fma",
            SimdLevel::Avx512 => "avx512f",
            SimdLevel::Neon => "neon",
        }
    }

    /// Parses a name as [`SimdLevel::name`] writes it (case-insensitive).
    pub fn parse(s: &str) -> Option<SimdLevel> {
        SimdLevel::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s.trim()))
    }

    /// `f32` lanes per vector.
    pub const fn lanes(self) -> usize {
        match self {
            SimdLevel::Scalar => 1,
            SimdLevel::Avx2 => 8,
            SimdLevel::Avx512 => 16,
            SimdLevel::Neon => 4,
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        Isa::new(self).is_some()
    }

    /// The most capable path this CPU can run.
    pub fn best() -> SimdLevel {
        Isa::best().level()
    }

    /// The paths this CPU can run, the scalar one first.
    pub fn available() -> Vec<SimdLevel> {
        SimdLevel::ALL
            .into_iter()
            .filter(|l| l.is_available())
            .collect()
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A detected instruction set: holds the token that proves the CPU supports it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Isa {
    Scalar(Scalar),
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
}

impl Isa {
    /// The token for `level`, if this CPU supports it.
    pub(crate) fn new(level: SimdLevel) -> Option<Isa> {
        match level {
            SimdLevel::Scalar => Some(Isa::Scalar(Scalar)),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => Avx2::try_new().map(Isa::Avx2),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => Avx512::try_new().map(Isa::Avx512),
            #[cfg(target_arch = "aarch64")]
            SimdLevel::Neon => Neon::try_new().map(Isa::Neon),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The most capable supported instruction set.
    pub(crate) fn best() -> Isa {
        SimdLevel::ALL
            .into_iter()
            .rev()
            .find_map(Isa::new)
            .unwrap_or(Isa::Scalar(Scalar))
    }

    pub(crate) fn level(self) -> SimdLevel {
        match self {
            Isa::Scalar(_) => SimdLevel::Scalar,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(_) => SimdLevel::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(_) => SimdLevel::Avx512,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon(_) => SimdLevel::Neon,
        }
    }

    /// Lanes per vector of this instruction set.
    pub(crate) fn lanes(self) -> usize {
        self.level().lanes()
    }

    /// The one dispatch point of every kernel: runs `k` compiled for this instruction
    /// set.
    #[inline]
    pub(crate) fn dispatch<K: Kernel>(self, k: K) -> K::Output {
        match self {
            Isa::Scalar(s) => s.vectorize(
                #[inline(always)]
                || k.run(s),
            ),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(s) => s.vectorize(
                #[inline(always)]
                || k.run(s),
            ),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(s) => s.vectorize(
                #[inline(always)]
                || k.run(s),
            ),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon(s) => s.vectorize(
                #[inline(always)]
                || k.run(s),
            ),
        }
    }
}

/// Rounds `n` up to a multiple of `lanes`: the padding of buffers read a vector at a
/// time, so that no kernel needs a masked tail.
#[inline]
pub(crate) const fn pad(n: usize, lanes: usize) -> usize {
    n.div_ceil(lanes) * lanes
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sums<'a> {
        vs: &'a [f32],
        out: &'a mut [f32],
    }

    impl Kernel for Sums<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            s.reduce_sums(self.vs, self.out);
        }
    }

    /// `reduce_sums` puts every vector's sum in its place, for whole groups and a tail,
    /// on every path this host has.
    #[test]
    fn reduce_sums_every_path() {
        for level in SimdLevel::available() {
            let isa = Isa::new(level).expect("available");
            let lanes = isa.lanes();
            for count in [1usize, 3, lanes, lanes + 1, 2 * lanes + 5] {
                // Lane j of vector i is i * 100 + j, so every sum is distinct.
                let vs: Vec<f32> = (0..count * lanes)
                    .map(|k| ((k / lanes) * 100 + k % lanes) as f32)
                    .collect();
                let mut out = vec![0.0f32; count];
                isa.dispatch(Sums {
                    vs: &vs,
                    out: &mut out,
                });
                for (i, &o) in out.iter().enumerate() {
                    let expected: f32 = vs[i * lanes..(i + 1) * lanes].iter().sum();
                    assert_eq!(o, expected, "{level}: sum {i} of {count}");
                }
            }
        }
    }
}
