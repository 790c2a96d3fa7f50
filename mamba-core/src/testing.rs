//! Test support that every backend's test suite reuses (feature `testing`).
//!
//! - [`Rng`]: a small deterministic random number generator (SplitMix64), so a failing
//!   case is reproduced from its seed on any machine.
//! - One owned *case* per operation ([`ScanCase`], [`SsdCase`], [`ConvCase`],
//!   [`StateUpdateCase`], [`ConvUpdateCase`]): buffers, shapes, options and upstream
//!   gradients, drawn at random from a *config* ([`ScanConfig`], ...) with realistic
//!   values. A case is generic over its storage types (`f32` by default); `cast`
//!   converts it, and `args` borrows the operation's arguments from it.
//! - [`rel_l2`] and the SPEC's [`Tolerance`]s.
//! - Property checks usable against any backend `B: Kernels<T> + ?Sized` (so
//!   `&dyn Backend` works): agreement with the `f64` oracle (forward and backward),
//!   streaming (a split sequence carries its state), decode (one step of ops 4 and 5
//!   equals a step of ops 1, 2 and 3), and the chunk-size invariance of `ssd`. Each
//!   returns a [`Report`] with every error it measured, or a [`Failure`] that names
//!   the worst one.
//!
//! A backend's test suite calls the checks on its own backend:
//!
//! ```
//! use mamba_core::testing::{self, Rng, ScanCase, ScanConfig, Tolerance};
//! use mamba_core::{bf16, Backend, Reference};
//!
//! let backend: Box<dyn Backend> = Box::new(Reference::new());
//! let mut rng = Rng::new(42);
//! let case = ScanCase::random(&ScanConfig::random(&mut rng), &mut rng);
//! // Forward and backward against the f64 oracle, with f32 and bf16 storage.
//! let report = testing::check_selective_scan::<f32, _>(&*backend, &case, Tolerance::F32)?;
//! assert!(report.passed());
//! testing::check_selective_scan::<bf16, _>(&*backend, &case, Tolerance::BF16)?;
//! // Or every check on every operation, a few random cases each.
//! let sweep = testing::conformance::<f32, _>(&*backend, 1, 2, Tolerance::F32)?;
//! assert!(sweep.unsupported.is_empty());
//! # Ok::<(), testing::Failure>(())
//! ```

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::backend::Kernels;
use crate::element::{convert, DType, Element};
use crate::error::Error;
use crate::ops::conv1d::{
    Activation, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs, ConvLayout,
};
use crate::ops::selective_scan::{SelectiveScanArgs, SelectiveScanGrads};
use crate::ops::ssd::{SsdArgs, SsdGrads, DEFAULT_CHUNK_SIZE};
use crate::ops::state_update::SelectiveStateUpdateArgs;
use crate::reference::Reference;
use crate::tensor::{Shape, Tensor, TensorMut};

// ---------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough for test inputs; the same seed gives the
/// same numbers everywhere.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub const fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An independent generator (for a sub-task whose draws must not shift the rest).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
    }

    /// Uniform in `0..n`; 0 when `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// `true` with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// One of the items, uniformly.
    pub fn pick<E: Copy>(&mut self, items: &[E]) -> E {
        items[self.below(items.len())]
    }

    /// `n` normal values times `scale`.
    pub fn normals(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn uniforms(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi) as f32).collect()
    }

    /// A random divisor of `n` (`n >= 1`).
    pub fn divisor(&mut self, n: usize) -> usize {
        let divisors: Vec<usize> = (1..=n).filter(|k| n.is_multiple_of(*k)).collect();
        self.pick(&divisors)
    }
}

// ---------------------------------------------------------------------------------
// Errors and tolerances
// ---------------------------------------------------------------------------------

/// SPEC: f32 storage, forward outputs and states.
pub const TOL_F32_FORWARD: f64 = 1e-5;
/// SPEC: f32 storage, gradients.
pub const TOL_F32_GRAD: f64 = 1e-4;
/// SPEC: bf16 storage.
pub const TOL_BF16: f64 = 2e-2;
/// SPEC: f16 storage.
pub const TOL_F16: f64 = 5e-3;
/// The norm floor of the checks' comparisons (see [`Tolerance::floor`]).
pub const DEFAULT_FLOOR: f64 = 0.1;

/// The largest relative L2 errors a comparison accepts.
///
/// The checks measure [`rel_l2_floor`]`(got, expected, floor)`: the SPEC's relative L2
/// error, except that the norm of `expected` counts as at least `floor * sqrt(n)`. The
/// generators make values of unit scale, so only a tensor whose RMS falls below
/// `floor` feels it: one that cancels to nearly zero (a single output element that is a
/// sum of terms of both signs) or underflows (a gradient through `exp(-100)`), where
/// f32 rounding of unit-scale terms would otherwise look like a large relative error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// For forward outputs and states.
    pub forward: f64,
    /// For gradients.
    pub grad: f64,
    /// The smallest RMS a tensor's norm is measured against.
    pub floor: f64,
}

impl Tolerance {
    /// f32 storage (SPEC).
    pub const F32: Tolerance = Tolerance {
        forward: TOL_F32_FORWARD,
        grad: TOL_F32_GRAD,
        floor: DEFAULT_FLOOR,
    };
    /// bf16 storage (SPEC).
    pub const BF16: Tolerance = Tolerance {
        forward: TOL_BF16,
        grad: TOL_BF16,
        floor: DEFAULT_FLOOR,
    };
    /// f16 storage (SPEC).
    pub const F16: Tolerance = Tolerance {
        forward: TOL_F16,
        grad: TOL_F16,
        floor: DEFAULT_FLOOR,
    };

    /// The SPEC's tolerance for a storage type. `f64` storage gets the `f32` one:
    /// arithmetic accumulates in `f32` on every backend, whatever the storage.
    pub const fn of(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 | DType::F64 => Tolerance::F32,
            DType::BF16 => Tolerance::BF16,
            DType::F16 => Tolerance::F16,
        }
    }

    /// The SPEC's tolerance for storage type `T`.
    pub const fn for_type<T: Element>() -> Tolerance {
        Tolerance::of(T::DTYPE)
    }

    /// Both tolerances multiplied by `k` (for a check whose error compounds).
    pub fn scaled(self, k: f64) -> Tolerance {
        Tolerance {
            forward: self.forward * k,
            grad: self.grad * k,
            floor: self.floor,
        }
    }
}

/// Relative L2 error `||got - expected|| / ||expected||`, in `f64` (the SPEC's measure).
///
/// `+inf` when the lengths differ or any value of either side is NaN or infinite
/// (NaN never passes). When `expected` is all zeros the absolute error `||got||` is
/// returned (0 when both are zero), so an exact zero is neither a division by zero nor
/// an automatic pass.
pub fn rel_l2<G: Element, E: Element>(got: &[G], expected: &[E]) -> f64 {
    rel_l2_floor(got, expected, 0.0)
}

/// [`rel_l2`] with the norm of `expected` taken as at least `floor * sqrt(n)`: an
/// absolute comparison for tensors whose RMS is below `floor` (see [`Tolerance`]).
pub fn rel_l2_floor<G: Element, E: Element>(got: &[G], expected: &[E], floor: f64) -> f64 {
    if got.len() != expected.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &e) in got.iter().zip(expected) {
        let (g, e) = (g.to_f64(), e.to_f64());
        if !g.is_finite() || !e.is_finite() {
            return f64::INFINITY;
        }
        num += (g - e) * (g - e);
        den += e * e;
    }
    if !num.is_finite() || !den.is_finite() {
        return f64::INFINITY;
    }
    let den = den.sqrt().max(floor * (expected.len() as f64).sqrt());
    if den == 0.0 {
        num.sqrt()
    } else {
        num.sqrt() / den
    }
}

/// One measured error.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// What was compared, e.g. `out` or `grad A`.
    pub label: String,
    /// Its relative L2 error.
    pub error: f64,
    /// The tolerance it was held to.
    pub tol: f64,
}

impl Comparison {
    /// The error is within the tolerance (NaN never is).
    pub fn passed(&self) -> bool {
        self.error <= self.tol
    }
}

/// Every error a check measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The check, e.g. `selective_scan vs f64 oracle (f32)`.
    pub check: String,
    /// The comparisons, in the order made.
    pub comparisons: Vec<Comparison>,
}

impl Report {
    /// The comparison with the largest error relative to its tolerance.
    pub fn worst(&self) -> Option<&Comparison> {
        let ratio = |c: &Comparison| {
            if c.error.is_nan() {
                f64::INFINITY
            } else {
                c.error / c.tol
            }
        };
        self.comparisons
            .iter()
            .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
    }

    /// Every comparison passed.
    pub fn passed(&self) -> bool {
        self.comparisons.iter().all(Comparison::passed)
    }

    /// The largest error of any comparison.
    pub fn worst_error(&self) -> f64 {
        self.comparisons
            .iter()
            .map(|c| {
                if c.error.is_nan() {
                    f64::INFINITY
                } else {
                    c.error
                }
            })
            .fold(0.0, f64::max)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.check)?;
        match self.worst() {
            None => f.write_str("nothing compared"),
            Some(w) => write!(
                f,
                "worst `{}` rel. L2 error {:.3e} (tolerance {:.1e}); all: [{}]",
                w.label,
                w.error,
                w.tol,
                self.comparisons
                    .iter()
                    .map(|c| format!("{} {:.2e}", c.label, c.error))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Why a check failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// A kernel call returned an error (for instance `Unsupported`).
    Kernel {
        /// The check.
        check: String,
        /// The call that failed, e.g. `backend selective_scan_backward`.
        call: String,
        /// Its error (boxed: `Error` is large, and checks return `Result`s).
        error: Box<Error>,
    },
    /// Some comparison exceeded its tolerance; the report says which and by how much.
    Tolerance(Report),
}

impl Failure {
    /// The failure is a backend's `Unsupported` error, not a wrong result.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Failure::Kernel { error, .. } if matches!(**error, Error::Unsupported { .. })
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Kernel { check, call, error } => {
                write!(f, "{check}: {call} failed: {error}")
            }
            Failure::Tolerance(r) => write!(f, "FAILED {r}"),
        }
    }
}

impl std::error::Error for Failure {}

/// What every check returns.
pub type CheckResult = core::result::Result<Report, Failure>;

/// Collects the comparisons of one check.
struct Checker {
    report: Report,
    floor: f64,
}

impl Checker {
    fn new(tol: Tolerance, check: String) -> Checker {
        Checker {
            report: Report {
                check,
                comparisons: Vec::new(),
            },
            floor: tol.floor,
        }
    }

    /// Turns a kernel error into a [`Failure`].
    fn call<R>(&self, call: &str, r: crate::Result<R>) -> core::result::Result<R, Failure> {
        r.map_err(|error| Failure::Kernel {
            check: self.report.check.clone(),
            call: call.into(),
            error: Box::new(error),
        })
    }

    fn cmp<G: Element, E: Element>(&mut self, label: &str, got: &[G], expected: &[E], tol: f64) {
        self.report.comparisons.push(Comparison {
            label: label.into(),
            error: rel_l2_floor(got, expected, self.floor),
            tol,
        });
    }

    /// Compares optional gradients; one present and the other absent is an infinite error.
    fn cmp_opt<G: Element, E: Element>(
        &mut self,
        label: &str,
        got: &Option<Vec<G>>,
        expected: &Option<Vec<E>>,
        tol: f64,
    ) {
        match (got, expected) {
            (Some(g), Some(e)) => self.cmp(label, g, e, tol),
            (None, None) => {}
            (g, _) => self.report.comparisons.push(Comparison {
                label: format!(
                    "{label} ({})",
                    if g.is_some() {
                        "returned but not expected"
                    } else {
                        "missing"
                    }
                ),
                error: f64::INFINITY,
                tol,
            }),
        }
    }

    fn finish(self) -> CheckResult {
        if self.report.passed() {
            Ok(self.report)
        } else {
            Err(Failure::Tolerance(self.report))
        }
    }
}

// ---------------------------------------------------------------------------------
// Buffer helpers
// ---------------------------------------------------------------------------------

/// Elements `[t0, t1)` of the middle axis of a row-major buffer seen as
/// `(outer, len, inner)`.
pub fn slice_axis<E: Copy>(
    v: &[E],
    outer: usize,
    len: usize,
    inner: usize,
    t0: usize,
    t1: usize,
) -> Vec<E> {
    let mut out = Vec::with_capacity(outer * (t1 - t0) * inner);
    for o in 0..outer {
        out.extend_from_slice(&v[(o * len + t0) * inner..(o * len + t1) * inner]);
    }
    out
}

/// Concatenates `(outer, len_a, inner)` and `(outer, len_b, inner)` along the middle axis.
pub fn concat_axis<E: Copy>(
    a: &[E],
    b: &[E],
    outer: usize,
    len_a: usize,
    len_b: usize,
    inner: usize,
) -> Vec<E> {
    let mut out = Vec::with_capacity(outer * (len_a + len_b) * inner);
    for o in 0..outer {
        out.extend_from_slice(&a[o * len_a * inner..(o + 1) * len_a * inner]);
        out.extend_from_slice(&b[o * len_b * inner..(o + 1) * len_b * inner]);
    }
    out
}

/// A buffer of NaNs: an output a kernel fails to write then fails every comparison.
pub fn nan_filled<E: Element>(n: usize) -> Vec<E> {
    vec![E::from_f32(f32::NAN); n]
}

fn cast_opt<A: Element, B: Element>(v: &Option<Vec<A>>) -> Option<Vec<B>> {
    v.as_deref().map(convert)
}

fn shape(dims: &[usize]) -> Shape {
    Shape::from_slice(dims, "testing").expect("test shapes have few dimensions")
}

/// `A` of a stable recurrence: `-exp(uniform(lo, hi))`, as `A = -exp(A_log)` in Mamba.
fn negative_a(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n).map(|_| -(rng.range(lo, hi).exp()) as f32).collect()
}

/// The softplus threshold (SPEC: `softplus(v) = v` for `v > 20`).
const THRESHOLD: f64 = 20.0;
/// Raw steps stay this far from the softplus threshold, and effective steps this far
/// (relative) from the `dt_limit` bounds, so that finite differences and f32-vs-f64
/// comparisons never straddle a kink.
const KINK_MARGIN: f64 = 1e-2;

/// Options shared by the step-size generators of ops 1, 2 and 4.
#[derive(Clone, Copy, Debug)]
struct StepSpec {
    softplus: bool,
    big: bool,
    limit: Option<(f32, f32)>,
}

impl StepSpec {
    /// A random bias in the range mamba-ssm initialises it to (the inverse softplus of
    /// a step in `[1e-3, 1e-1]` with softplus; a small positive shift without).
    fn bias(&self, rng: &mut Rng) -> f32 {
        if self.softplus {
            rng.range(-3.0, -1.0) as f32
        } else {
            rng.range(0.0, 0.05) as f32
        }
    }

    /// Whether `raw` sits within the margin of a kink.
    fn near_kink(&self, raw: f64) -> bool {
        if self.softplus && (raw - THRESHOLD).abs() < KINK_MARGIN {
            return true;
        }
        if let Some((lo, hi)) = self.limit {
            let s = if self.softplus && raw <= THRESHOLD {
                raw.exp().ln_1p()
            } else {
                raw
            };
            for bound in [lo as f64, hi as f64] {
                if bound.is_finite() && (s - bound).abs() < KINK_MARGIN * bound.abs().max(1e-2) {
                    return true;
                }
            }
        }
        false
    }

    /// A raw step `dt` (before `bias`), away from every kink: with softplus
    /// `dt + bias` lies mostly in `[-6, 0]` (steps 0.0025..0.7); without, `dt` is a
    /// small positive step; with `big`, about one in three lies in `[18, 24]`
    /// (around and above the softplus threshold).
    fn draw(&self, rng: &mut Rng, bias: f32) -> f32 {
        let bias = bias as f64;
        for _ in 0..64 {
            let dt = if self.big && rng.chance(0.35) {
                rng.range(18.0, 24.0) - bias
            } else if self.softplus {
                rng.range(-3.0, 1.0)
            } else {
                rng.range(0.001, 0.25)
            };
            // The value as stored, so the kink test sees what the kernel sees.
            let dt = dt as f32;
            if !self.near_kink(dt as f64 + bias) {
                return dt;
            }
        }
        // Practically unreachable; a value far from every kink.
        (1.0 - bias) as f32
    }
}

/// A random `dt_limit` that clamps some of the steps [`StepSpec::draw`] makes.
fn random_dt_limit(rng: &mut Rng) -> (f32, f32) {
    (rng.range(0.005, 0.05) as f32, rng.range(0.1, 0.4) as f32)
}

// ---------------------------------------------------------------------------------
// selective_scan
// ---------------------------------------------------------------------------------

/// The layout of `B` or `C` of a selective scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BcKind {
    /// Time-invariant, (d, N).
    Shared,
    /// Per step, (b, N, L).
    Varying,
    /// Grouped per step, (b, g, N, L) with `d % g == 0`.
    Grouped(usize),
}

impl BcKind {
    /// The tensor's shape.
    pub fn shape(self, batch: usize, dim: usize, dstate: usize, seqlen: usize) -> Shape {
        match self {
            BcKind::Shared => Shape::new([dim, dstate]),
            BcKind::Varying => Shape::new([batch, dstate, seqlen]),
            BcKind::Grouped(g) => Shape::new([batch, g, dstate, seqlen]),
        }
    }

    /// The number of groups of a per-step layout (`None` for [`BcKind::Shared`]).
    pub fn groups(self) -> Option<usize> {
        match self {
            BcKind::Shared => None,
            BcKind::Varying => Some(1),
            BcKind::Grouped(g) => Some(g),
        }
    }

    /// Index of `(batch i, channel c, state n, time t)`.
    pub fn index(
        self,
        dim: usize,
        dstate: usize,
        seqlen: usize,
        i: usize,
        c: usize,
        n: usize,
        t: usize,
    ) -> usize {
        match self {
            BcKind::Shared => c * dstate + n,
            BcKind::Varying => (i * dstate + n) * seqlen + t,
            BcKind::Grouped(g) => ((i * g + c / (dim / g)) * dstate + n) * seqlen + t,
        }
    }

    /// A random layout for `dim` channels (groups a random divisor of `dim`).
    pub fn random(rng: &mut Rng, dim: usize) -> BcKind {
        match rng.below(3) {
            0 => BcKind::Shared,
            1 => BcKind::Varying,
            _ => BcKind::Grouped(rng.divisor(dim)),
        }
    }
}

/// Shapes and options of a random [`ScanCase`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScanConfig {
    /// `b`.
    pub batch: usize,
    /// `d`.
    pub dim: usize,
    /// `L`.
    pub seqlen: usize,
    /// `N`.
    pub dstate: usize,
    /// Layout of `B`.
    pub b_kind: BcKind,
    /// Layout of `C`.
    pub c_kind: BcKind,
    /// Give `D`.
    pub d: bool,
    /// Give `z`.
    pub z: bool,
    /// Give `delta_bias`.
    pub delta_bias: bool,
    /// Give `initial_state`.
    pub initial_state: bool,
    /// `delta_softplus`.
    pub delta_softplus: bool,
    /// Give an upstream gradient of `last_state`.
    pub dlast_state: bool,
    /// About a third of the raw steps in `[18, 24]`, around the softplus threshold.
    pub big_steps: bool,
}

impl ScanConfig {
    /// The given shapes, shared `B` and `C`, every option off.
    pub fn new(batch: usize, dim: usize, seqlen: usize, dstate: usize) -> ScanConfig {
        ScanConfig {
            batch,
            dim,
            seqlen,
            dstate,
            b_kind: BcKind::Shared,
            c_kind: BcKind::Shared,
            d: false,
            z: false,
            delta_bias: false,
            initial_state: false,
            delta_softplus: false,
            dlast_state: false,
            big_steps: false,
        }
    }

    /// Every option on (`D`, `z`, `delta_bias`, `initial_state`, softplus,
    /// `dlast_state`), layouts unchanged.
    pub fn all_options(self) -> ScanConfig {
        ScanConfig {
            d: true,
            z: true,
            delta_bias: true,
            initial_state: true,
            delta_softplus: true,
            dlast_state: true,
            ..self
        }
    }

    /// Small random shapes (b <= 2, d <= 6, L <= 9, N <= 4) and random options.
    pub fn random(rng: &mut Rng) -> ScanConfig {
        let dim = rng.int(1, 3) * rng.int(1, 2);
        ScanConfig {
            batch: rng.int(1, 2),
            dim,
            seqlen: rng.int(1, 9),
            dstate: rng.int(1, 4),
            b_kind: BcKind::random(rng, dim),
            c_kind: BcKind::random(rng, dim),
            d: rng.coin(),
            z: rng.coin(),
            delta_bias: rng.coin(),
            initial_state: rng.coin(),
            delta_softplus: rng.coin(),
            dlast_state: rng.coin(),
            big_steps: rng.chance(0.2),
        }
    }
}

/// An owned `selective_scan` case: inputs, options, and the upstream gradients of a
/// backward pass. `T` is the activations' storage type, `P` the parameters'.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanCase<T = f32, P = f32> {
    /// `b`.
    pub batch: usize,
    /// `d`.
    pub dim: usize,
    /// `L`.
    pub seqlen: usize,
    /// `N`.
    pub dstate: usize,
    /// Layout of `B`.
    pub b_kind: BcKind,
    /// Layout of `C`.
    pub c_kind: BcKind,
    /// (b, d, L).
    pub u: Vec<T>,
    /// (b, d, L).
    pub delta: Vec<T>,
    /// (d, N), negative.
    pub a: Vec<P>,
    /// In `b_kind`'s layout.
    pub b: Vec<T>,
    /// In `c_kind`'s layout.
    pub c: Vec<T>,
    /// (d).
    pub d: Option<Vec<P>>,
    /// (b, d, L).
    pub z: Option<Vec<T>>,
    /// (d).
    pub delta_bias: Option<Vec<P>>,
    /// (b, d, N).
    pub initial_state: Option<Vec<P>>,
    /// Softplus on the step.
    pub delta_softplus: bool,
    /// Upstream gradient of `out`, (b, d, L).
    pub dout: Vec<T>,
    /// Upstream gradient of `last_state`, (b, d, N).
    pub dlast_state: Option<Vec<P>>,
}

impl ScanCase {
    /// Random inputs of the config's shapes: `u, B, C, z` standard normal, `A =
    /// -exp(U(-1, 1.5))`, steps of a realistic size (see [`ScanConfig::big_steps`]).
    pub fn random(cfg: &ScanConfig, rng: &mut Rng) -> ScanCase {
        let (bt, d, l, n) = (cfg.batch, cfg.dim, cfg.seqlen, cfg.dstate);
        let io = bt * d * l;
        let steps = StepSpec {
            softplus: cfg.delta_softplus,
            big: cfg.big_steps,
            limit: None,
        };
        let delta_bias: Option<Vec<f32>> = cfg
            .delta_bias
            .then(|| (0..d).map(|_| steps.bias(rng)).collect());
        let mut delta = vec![0.0f32; io];
        for (r, v) in delta.iter_mut().enumerate() {
            let c = (r / l) % d;
            *v = steps.draw(rng, delta_bias.as_ref().map_or(0.0, |b| b[c]));
        }
        let u = rng.normals(io, 1.0);
        let a = negative_a(rng, d * n, -1.0, 1.5);
        let b = rng.normals(cfg.b_kind.shape(bt, d, n, l).numel(), 1.0);
        let c = rng.normals(cfg.c_kind.shape(bt, d, n, l).numel(), 1.0);
        let dskip = cfg.d.then(|| rng.normals(d, 1.0));
        let z = cfg.z.then(|| rng.normals(io, 1.0));
        let initial_state = cfg.initial_state.then(|| rng.normals(bt * d * n, 0.5));
        let dout = rng.normals(io, 1.0);
        let dlast_state = cfg.dlast_state.then(|| rng.normals(bt * d * n, 1.0));
        ScanCase {
            batch: bt,
            dim: d,
            seqlen: l,
            dstate: n,
            b_kind: cfg.b_kind,
            c_kind: cfg.c_kind,
            u,
            delta,
            a,
            b,
            c,
            d: dskip,
            z,
            delta_bias,
            initial_state,
            delta_softplus: cfg.delta_softplus,
            dout,
            dlast_state,
        }
    }
}

impl<T: Element, P: Element> ScanCase<T, P> {
    /// The same case in other storage types (rounded to nearest).
    pub fn cast<T2: Element, P2: Element>(&self) -> ScanCase<T2, P2> {
        ScanCase {
            batch: self.batch,
            dim: self.dim,
            seqlen: self.seqlen,
            dstate: self.dstate,
            b_kind: self.b_kind,
            c_kind: self.c_kind,
            u: convert(&self.u),
            delta: convert(&self.delta),
            a: convert(&self.a),
            b: convert(&self.b),
            c: convert(&self.c),
            d: cast_opt(&self.d),
            z: cast_opt(&self.z),
            delta_bias: cast_opt(&self.delta_bias),
            initial_state: cast_opt(&self.initial_state),
            delta_softplus: self.delta_softplus,
            dout: convert(&self.dout),
            dlast_state: cast_opt(&self.dlast_state),
        }
    }

    /// (b, d, L).
    pub fn io_shape(&self) -> [usize; 3] {
        [self.batch, self.dim, self.seqlen]
    }

    /// (b, d, N).
    pub fn state_shape(&self) -> [usize; 3] {
        [self.batch, self.dim, self.dstate]
    }

    /// The arguments, borrowed from the case.
    pub fn args(&self) -> SelectiveScanArgs<'_, T, P> {
        let (bt, d, l, n) = (self.batch, self.dim, self.seqlen, self.dstate);
        let mut args = SelectiveScanArgs::new(
            Tensor::new(&self.u, [bt, d, l]),
            Tensor::new(&self.delta, [bt, d, l]),
            Tensor::new(&self.a, [d, n]),
            Tensor::new(&self.b, self.b_kind.shape(bt, d, n, l)),
            Tensor::new(&self.c, self.c_kind.shape(bt, d, n, l)),
        )
        .with_delta_softplus(self.delta_softplus);
        if let Some(v) = &self.d {
            args = args.with_d(Tensor::new(v, [d]));
        }
        if let Some(v) = &self.z {
            args = args.with_z(Tensor::new(v, [bt, d, l]));
        }
        if let Some(v) = &self.delta_bias {
            args = args.with_delta_bias(Tensor::new(v, [d]));
        }
        if let Some(v) = &self.initial_state {
            args = args.with_initial_state(Tensor::new(v, [bt, d, n]));
        }
        args
    }

    /// Steps `t0..t1` of the sequence (per-step `B`/`C` sliced along L); the initial
    /// state and `dlast_state` are kept as they are.
    pub fn slice_time(&self, t0: usize, t1: usize) -> ScanCase<T, P> {
        let (bt, d, l, n) = (self.batch, self.dim, self.seqlen, self.dstate);
        let io = |v: &Vec<T>| slice_axis(v, bt * d, l, 1, t0, t1);
        let bc = |kind: BcKind, v: &Vec<T>| match kind {
            BcKind::Shared => v.clone(),
            BcKind::Varying => slice_axis(v, bt * n, l, 1, t0, t1),
            BcKind::Grouped(g) => slice_axis(v, bt * g * n, l, 1, t0, t1),
        };
        ScanCase {
            seqlen: t1 - t0,
            u: io(&self.u),
            delta: io(&self.delta),
            b: bc(self.b_kind, &self.b),
            c: bc(self.c_kind, &self.c),
            z: self.z.as_ref().map(io),
            dout: io(&self.dout),
            ..self.clone()
        }
    }
}

fn scan_grads_cmp<T: Element>(
    ck: &mut Checker,
    got: &SelectiveScanGrads<T, f32>,
    exp: &SelectiveScanGrads<f64, f64>,
    tol: f64,
) {
    ck.cmp("grad u", &got.u, &exp.u, tol);
    ck.cmp("grad delta", &got.delta, &exp.delta, tol);
    ck.cmp("grad A", &got.a, &exp.a, tol);
    ck.cmp("grad B", &got.b, &exp.b, tol);
    ck.cmp("grad C", &got.c, &exp.c, tol);
    ck.cmp_opt("grad D", &got.d, &exp.d, tol);
    ck.cmp_opt("grad z", &got.z, &exp.z, tol);
    ck.cmp_opt("grad delta_bias", &got.delta_bias, &exp.delta_bias, tol);
    ck.cmp_opt(
        "grad initial_state",
        &got.initial_state,
        &exp.initial_state,
        tol,
    );
}

/// Property (a) for `selective_scan`: forward (`out` with and without `last_state`,
/// `last_state`) and backward (every gradient, with the case's `dout` and
/// `dlast_state`) of `backend` in storage type `T` against the `f64` oracle, evaluated
/// on the same (rounded) inputs.
pub fn check_selective_scan<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ScanCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(tol, format!("selective_scan vs f64 oracle ({})", T::DTYPE));
    let ct = case.cast::<T, f32>();
    let co = ct.cast::<f64, f64>();
    let oracle = Reference::<f64>::oracle();
    let io: usize = ct.io_shape().iter().product();
    let st: usize = ct.state_shape().iter().product();

    let (mut out, mut last) = (nan_filled::<T>(io), nan_filled::<f32>(st));
    ck.call(
        "backend selective_scan",
        backend.selective_scan(&ct.args(), &mut out, Some(&mut last)),
    )?;
    let mut out_only = nan_filled::<T>(io);
    ck.call(
        "backend selective_scan (no last_state)",
        backend.selective_scan(&ct.args(), &mut out_only, None),
    )?;
    let (mut eout, mut elast) = (vec![0.0f64; io], vec![0.0f64; st]);
    ck.call(
        "oracle selective_scan",
        oracle.selective_scan(&co.args(), &mut eout, Some(&mut elast)),
    )?;
    ck.cmp("out", &out, &eout, tol.forward);
    ck.cmp("out (no last_state)", &out_only, &eout, tol.forward);
    ck.cmp("last_state", &last, &elast, tol.forward);

    let g = ck.call(
        "backend selective_scan_backward",
        backend.selective_scan_backward(&ct.args(), &ct.dout, ct.dlast_state.as_deref()),
    )?;
    let ge = ck.call(
        "oracle selective_scan_backward",
        oracle.selective_scan_backward(&co.args(), &co.dout, co.dlast_state.as_deref()),
    )?;
    scan_grads_cmp(&mut ck, &g, &ge, tol.grad);
    ck.finish()
}

/// Property (b) for `selective_scan`: steps `0..split` then `split..L`, the second
/// starting from the first's `last_state`, give the `out` and `last_state` of the whole
/// sequence (same backend, same storage type). `split` is clamped to `1..L`; a case
/// with `L < 2` compares nothing.
pub fn check_selective_scan_streaming<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ScanCase,
    split: usize,
    tol: Tolerance,
) -> CheckResult {
    let l = case.seqlen;
    let mut ck = Checker::new(
        tol,
        format!(
            "selective_scan streaming, split at {split} of L = {l} ({})",
            T::DTYPE
        ),
    );
    if l < 2 {
        return ck.finish();
    }
    let split = split.clamp(1, l - 1);
    let ct = case.cast::<T, f32>();
    let rows = ct.batch * ct.dim;
    let st: usize = ct.state_shape().iter().product();
    let run = |ck: &Checker, c: &ScanCase<T, f32>| {
        let mut out = nan_filled::<T>(rows * c.seqlen);
        let mut last = nan_filled::<f32>(st);
        ck.call(
            "backend selective_scan",
            backend.selective_scan(&c.args(), &mut out, Some(&mut last)),
        )?;
        Ok::<_, Failure>((out, last))
    };
    let (out, last) = run(&ck, &ct)?;
    let (out1, last1) = run(&ck, &ct.slice_time(0, split))?;
    let mut second = ct.slice_time(split, l);
    second.initial_state = Some(last1);
    let (out2, last2) = run(&ck, &second)?;
    ck.cmp(
        "out",
        &concat_axis(&out1, &out2, rows, split, l - split, 1),
        &out,
        tol.forward,
    );
    ck.cmp("last_state", &last2, &last, tol.forward);
    ck.finish()
}

/// Property (c) for Mamba-1: `L` successive `selective_state_update` calls (Mamba-1
/// layout, state starting at `initial_state`) give `selective_scan`'s `out` step by
/// step and its `last_state`. `B`/`C` pass as (b, N) when both are (b, N, L), as
/// (b, g, N) when both have `g` groups, and otherwise per channel, (b, d, N).
pub fn check_state_update_vs_scan<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ScanCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(
        tol,
        format!("selective_state_update vs selective_scan ({})", T::DTYPE),
    );
    let c = case.cast::<T, f32>();
    let (bt, d, l, n) = (c.batch, c.dim, c.seqlen, c.dstate);
    let mut out = nan_filled::<T>(bt * d * l);
    let mut last = nan_filled::<f32>(bt * d * n);
    ck.call(
        "backend selective_scan",
        backend.selective_scan(&c.args(), &mut out, Some(&mut last)),
    )?;

    let (groups, bc_shape) = match (c.b_kind, c.c_kind) {
        (BcKind::Varying, BcKind::Varying) => (1, Shape::new([bt, n])),
        (x, y) if x.groups().is_some() && x.groups() == y.groups() => {
            let g = x.groups().unwrap_or(1);
            (g, Shape::new([bt, g, n]))
        }
        _ => (d, Shape::new([bt, d, n])),
    };
    // B or C at step t in the decode layout: group k's first channel stands for it.
    let step_bc = |kind: BcKind, src: &[T], t: usize| -> Vec<T> {
        let mut v = Vec::with_capacity(bt * groups * n);
        for i in 0..bt {
            for k in 0..groups {
                for s in 0..n {
                    v.push(src[kind.index(d, n, l, i, k * (d / groups), s, t)]);
                }
            }
        }
        v
    };
    let mut state = c
        .initial_state
        .clone()
        .unwrap_or_else(|| vec![0.0; bt * d * n]);
    let mut decoded = nan_filled::<T>(bt * d * l);
    let mut step_out = nan_filled::<T>(bt * d);
    for t in 0..l {
        let at_t = |v: &[T]| (0..bt * d).map(|r| v[r * l + t]).collect::<Vec<T>>();
        let (x, dt) = (at_t(&c.u), at_t(&c.delta));
        let z = c.z.as_deref().map(at_t);
        let (bm, cm) = (step_bc(c.b_kind, &c.b, t), step_bc(c.c_kind, &c.c, t));
        let mut args = SelectiveStateUpdateArgs::new(
            Tensor::new(&x, [bt, d]),
            Tensor::new(&dt, [bt, d]),
            Tensor::new(&c.a, [d, n]),
            Tensor::new(&bm, bc_shape),
            Tensor::new(&cm, bc_shape),
        )
        .with_dt_softplus(c.delta_softplus);
        if let Some(v) = &c.d {
            args = args.with_d(Tensor::new(v, [d]));
        }
        if let Some(v) = &z {
            args = args.with_z(Tensor::new(v, [bt, d]));
        }
        if let Some(v) = &c.delta_bias {
            args = args.with_dt_bias(Tensor::new(v, [d]));
        }
        ck.call(
            "backend selective_state_update",
            backend.selective_state_update(&args, &mut state, &mut step_out),
        )?;
        for r in 0..bt * d {
            decoded[r * l + t] = step_out[r];
        }
    }
    ck.cmp("out", &decoded, &out, tol.forward);
    ck.cmp("state", &state, &last, tol.forward);
    ck.finish()
}

// ---------------------------------------------------------------------------------
// ssd
// ---------------------------------------------------------------------------------

/// The shape of `D` of an `ssd` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DShape {
    /// (h).
    PerHead,
    /// (h, p).
    PerChannel,
}

/// Shapes and options of a random [`SsdCase`].
#[derive(Clone, Debug, PartialEq)]
pub struct SsdConfig {
    /// `b`.
    pub batch: usize,
    /// `L`.
    pub seqlen: usize,
    /// `h`.
    pub nheads: usize,
    /// `p`.
    pub headdim: usize,
    /// `g`, dividing `h`.
    pub ngroups: usize,
    /// `N`.
    pub dstate: usize,
    /// `D` and its shape.
    pub d: Option<DShape>,
    /// Give `z`.
    pub z: bool,
    /// Give `dt_bias`.
    pub dt_bias: bool,
    /// Give `initial_states`.
    pub initial_states: bool,
    /// Give a `seq_idx` with random resets.
    pub seq_idx: bool,
    /// `dt_softplus`.
    pub dt_softplus: bool,
    /// `dt_limit`; steps are drawn away from its bounds.
    pub dt_limit: Option<(f32, f32)>,
    /// `chunk_size`.
    pub chunk_size: usize,
    /// Give an upstream gradient of `final_states`.
    pub dfinal_states: bool,
    /// About a third of the raw steps in `[18, 24]`, around the softplus threshold.
    pub big_steps: bool,
}

impl SsdConfig {
    /// The given shapes, every option off, the default chunk size.
    pub fn new(
        batch: usize,
        seqlen: usize,
        nheads: usize,
        headdim: usize,
        ngroups: usize,
        dstate: usize,
    ) -> SsdConfig {
        SsdConfig {
            batch,
            seqlen,
            nheads,
            headdim,
            ngroups,
            dstate,
            d: None,
            z: false,
            dt_bias: false,
            initial_states: false,
            seq_idx: false,
            dt_softplus: false,
            dt_limit: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            dfinal_states: false,
            big_steps: false,
        }
    }

    /// Every option on (`D` per head, `z`, `dt_bias`, `initial_states`, `seq_idx`,
    /// softplus, a clamping `dt_limit`, `dfinal_states`).
    pub fn all_options(self) -> SsdConfig {
        SsdConfig {
            d: Some(DShape::PerHead),
            z: true,
            dt_bias: true,
            initial_states: true,
            seq_idx: true,
            dt_softplus: true,
            dt_limit: Some((0.01, 0.2)),
            dfinal_states: true,
            ..self
        }
    }

    /// Small random shapes (b <= 2, L <= 10, h <= 4, p <= 3, N <= 4), random options and
    /// a random chunk size in 1..=8 or 256.
    pub fn random(rng: &mut Rng) -> SsdConfig {
        let nheads = rng.int(1, 4);
        SsdConfig {
            batch: rng.int(1, 2),
            seqlen: rng.int(1, 10),
            nheads,
            headdim: rng.int(1, 3),
            ngroups: rng.divisor(nheads),
            dstate: rng.int(1, 4),
            d: rng.pick(&[None, Some(DShape::PerHead), Some(DShape::PerChannel)]),
            z: rng.coin(),
            dt_bias: rng.coin(),
            initial_states: rng.coin(),
            seq_idx: rng.chance(0.3),
            dt_softplus: rng.coin(),
            dt_limit: rng.chance(0.3).then(|| random_dt_limit(rng)),
            chunk_size: if rng.coin() {
                rng.int(1, 8)
            } else {
                DEFAULT_CHUNK_SIZE
            },
            dfinal_states: rng.coin(),
            big_steps: rng.chance(0.2),
        }
    }
}

/// An owned `ssd` case: inputs, options and upstream gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct SsdCase<T = f32, P = f32> {
    /// `b`.
    pub batch: usize,
    /// `L`.
    pub seqlen: usize,
    /// `h`.
    pub nheads: usize,
    /// `p`.
    pub headdim: usize,
    /// `g`.
    pub ngroups: usize,
    /// `N`.
    pub dstate: usize,
    /// (b, L, h, p).
    pub x: Vec<T>,
    /// (b, L, h).
    pub dt: Vec<T>,
    /// (h), negative.
    pub a: Vec<P>,
    /// (b, L, g, N).
    pub b: Vec<T>,
    /// (b, L, g, N).
    pub c: Vec<T>,
    /// (h) or (h, p) by `d_shape`.
    pub d: Option<Vec<P>>,
    /// The shape of `d`.
    pub d_shape: DShape,
    /// (b, L, h, p).
    pub z: Option<Vec<T>>,
    /// (h).
    pub dt_bias: Option<Vec<P>>,
    /// (b, h, p, N).
    pub initial_states: Option<Vec<P>>,
    /// (b, L), non-decreasing.
    pub seq_idx: Option<Vec<i32>>,
    /// `dt_softplus`.
    pub dt_softplus: bool,
    /// `dt_limit`.
    pub dt_limit: Option<(f32, f32)>,
    /// `chunk_size`.
    pub chunk_size: usize,
    /// Upstream gradient of `out`, (b, L, h, p).
    pub dout: Vec<T>,
    /// Upstream gradient of `final_states`, (b, h, p, N).
    pub dfinal_states: Option<Vec<P>>,
}

impl SsdCase {
    /// Random inputs of the config's shapes: `x, B, C, z` standard normal, `A =
    /// -exp(U(-1, 2))`, realistic steps away from the clamp's and softplus's kinks,
    /// `seq_idx` rising by 1 or 2 at about a quarter of the steps.
    pub fn random(cfg: &SsdConfig, rng: &mut Rng) -> SsdCase {
        let (bt, l, h, p, g, n) = (
            cfg.batch,
            cfg.seqlen,
            cfg.nheads,
            cfg.headdim,
            cfg.ngroups,
            cfg.dstate,
        );
        let steps = StepSpec {
            softplus: cfg.dt_softplus,
            big: cfg.big_steps,
            limit: crate::ops::ssd::normalize_dt_limit(cfg.dt_limit),
        };
        let dt_bias: Option<Vec<f32>> = cfg
            .dt_bias
            .then(|| (0..h).map(|_| steps.bias(rng)).collect());
        let dt: Vec<f32> = (0..bt * l * h)
            .map(|r| steps.draw(rng, dt_bias.as_ref().map_or(0.0, |b| b[r % h])))
            .collect();
        let x = rng.normals(bt * l * h * p, 1.0);
        let a = negative_a(rng, h, -1.0, 2.0);
        let b = rng.normals(bt * l * g * n, 1.0);
        let c = rng.normals(bt * l * g * n, 1.0);
        let d_shape = cfg.d.unwrap_or(DShape::PerHead);
        let d = cfg.d.map(|s| {
            rng.normals(
                match s {
                    DShape::PerHead => h,
                    DShape::PerChannel => h * p,
                },
                1.0,
            )
        });
        let z = cfg.z.then(|| rng.normals(bt * l * h * p, 1.0));
        let initial_states = cfg.initial_states.then(|| rng.normals(bt * h * p * n, 0.5));
        let seq_idx = cfg.seq_idx.then(|| {
            let mut s = Vec::with_capacity(bt * l);
            for _ in 0..bt {
                let mut v = rng.int(0, 2) as i32;
                for t in 0..l {
                    if t > 0 && rng.chance(0.25) {
                        v += rng.int(1, 2) as i32;
                    }
                    s.push(v);
                }
            }
            s
        });
        let dout = rng.normals(bt * l * h * p, 1.0);
        let dfinal_states = cfg.dfinal_states.then(|| rng.normals(bt * h * p * n, 1.0));
        SsdCase {
            batch: bt,
            seqlen: l,
            nheads: h,
            headdim: p,
            ngroups: g,
            dstate: n,
            x,
            dt,
            a,
            b,
            c,
            d,
            d_shape,
            z,
            dt_bias,
            initial_states,
            seq_idx,
            dt_softplus: cfg.dt_softplus,
            dt_limit: steps.limit,
            chunk_size: cfg.chunk_size,
            dout,
            dfinal_states,
        }
    }
}

impl<T: Element, P: Element> SsdCase<T, P> {
    /// The same case in other storage types (rounded to nearest).
    pub fn cast<T2: Element, P2: Element>(&self) -> SsdCase<T2, P2> {
        SsdCase {
            batch: self.batch,
            seqlen: self.seqlen,
            nheads: self.nheads,
            headdim: self.headdim,
            ngroups: self.ngroups,
            dstate: self.dstate,
            x: convert(&self.x),
            dt: convert(&self.dt),
            a: convert(&self.a),
            b: convert(&self.b),
            c: convert(&self.c),
            d: cast_opt(&self.d),
            d_shape: self.d_shape,
            z: cast_opt(&self.z),
            dt_bias: cast_opt(&self.dt_bias),
            initial_states: cast_opt(&self.initial_states),
            seq_idx: self.seq_idx.clone(),
            dt_softplus: self.dt_softplus,
            dt_limit: self.dt_limit,
            chunk_size: self.chunk_size,
            dout: convert(&self.dout),
            dfinal_states: cast_opt(&self.dfinal_states),
        }
    }

    /// (b, L, h, p).
    pub fn io_shape(&self) -> [usize; 4] {
        [self.batch, self.seqlen, self.nheads, self.headdim]
    }

    /// (b, h, p, N).
    pub fn state_shape(&self) -> [usize; 4] {
        [self.batch, self.nheads, self.headdim, self.dstate]
    }

    /// The shape of `D`.
    pub fn d_dims(&self) -> Shape {
        match self.d_shape {
            DShape::PerHead => Shape::new([self.nheads]),
            DShape::PerChannel => Shape::new([self.nheads, self.headdim]),
        }
    }

    /// `D` of head `j`, channel `q` (0 when absent).
    pub fn d_at(&self, j: usize, q: usize) -> Option<P> {
        self.d.as_ref().map(|d| match self.d_shape {
            DShape::PerHead => d[j],
            DShape::PerChannel => d[j * self.headdim + q],
        })
    }

    /// The arguments, borrowed from the case.
    pub fn args(&self) -> SsdArgs<'_, T, P> {
        let (bt, l, h, p, g, n) = (
            self.batch,
            self.seqlen,
            self.nheads,
            self.headdim,
            self.ngroups,
            self.dstate,
        );
        let mut args = SsdArgs::new(
            Tensor::new(&self.x, [bt, l, h, p]),
            Tensor::new(&self.dt, [bt, l, h]),
            Tensor::new(&self.a, [h]),
            Tensor::new(&self.b, [bt, l, g, n]),
            Tensor::new(&self.c, [bt, l, g, n]),
        )
        .with_dt_softplus(self.dt_softplus)
        .with_chunk_size(self.chunk_size);
        args.dt_limit = self.dt_limit;
        if let Some(v) = &self.d {
            args = args.with_d(Tensor::new(v, self.d_dims()));
        }
        if let Some(v) = &self.z {
            args = args.with_z(Tensor::new(v, [bt, l, h, p]));
        }
        if let Some(v) = &self.dt_bias {
            args = args.with_dt_bias(Tensor::new(v, [h]));
        }
        if let Some(v) = &self.initial_states {
            args = args.with_initial_states(Tensor::new(v, [bt, h, p, n]));
        }
        if let Some(v) = &self.seq_idx {
            args = args.with_seq_idx(Tensor::new(v, [bt, l]));
        }
        args
    }

    /// Steps `t0..t1` of the sequence; `initial_states` and `dfinal_states` kept.
    pub fn slice_time(&self, t0: usize, t1: usize) -> SsdCase<T, P> {
        let (bt, l, h, p, g, n) = (
            self.batch,
            self.seqlen,
            self.nheads,
            self.headdim,
            self.ngroups,
            self.dstate,
        );
        let xs = |v: &Vec<T>| slice_axis(v, bt, l, h * p, t0, t1);
        SsdCase {
            seqlen: t1 - t0,
            x: xs(&self.x),
            dt: slice_axis(&self.dt, bt, l, h, t0, t1),
            b: slice_axis(&self.b, bt, l, g * n, t0, t1),
            c: slice_axis(&self.c, bt, l, g * n, t0, t1),
            z: self.z.as_ref().map(xs),
            seq_idx: self
                .seq_idx
                .as_ref()
                .map(|s| slice_axis(s, bt, l, 1, t0, t1)),
            dout: xs(&self.dout),
            ..self.clone()
        }
    }

    /// Whether the state of batch `i` resets before step `t` (its `seq_idx` changes).
    pub fn resets(&self, i: usize, t: usize) -> bool {
        match &self.seq_idx {
            Some(s) if t > 0 => s[i * self.seqlen + t] != s[i * self.seqlen + t - 1],
            _ => false,
        }
    }
}

fn ssd_grads_cmp<T: Element, E: Element, F: Element>(
    ck: &mut Checker,
    prefix: &str,
    got: &SsdGrads<T, f32>,
    exp: &SsdGrads<E, F>,
    tol: f64,
) {
    ck.cmp(&format!("{prefix}grad x"), &got.x, &exp.x, tol);
    ck.cmp(&format!("{prefix}grad dt"), &got.dt, &exp.dt, tol);
    ck.cmp(&format!("{prefix}grad A"), &got.a, &exp.a, tol);
    ck.cmp(&format!("{prefix}grad B"), &got.b, &exp.b, tol);
    ck.cmp(&format!("{prefix}grad C"), &got.c, &exp.c, tol);
    ck.cmp_opt(&format!("{prefix}grad D"), &got.d, &exp.d, tol);
    ck.cmp_opt(&format!("{prefix}grad z"), &got.z, &exp.z, tol);
    ck.cmp_opt(
        &format!("{prefix}grad dt_bias"),
        &got.dt_bias,
        &exp.dt_bias,
        tol,
    );
    ck.cmp_opt(
        &format!("{prefix}grad initial_states"),
        &got.initial_states,
        &exp.initial_states,
        tol,
    );
}

/// Property (a) for `ssd`: forward and backward of `backend` in storage type `T`
/// against the `f64` oracle.
pub fn check_ssd<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &SsdCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(
        tol,
        format!(
            "ssd vs f64 oracle ({}, chunk_size {})",
            T::DTYPE,
            case.chunk_size
        ),
    );
    let ct = case.cast::<T, f32>();
    let co = ct.cast::<f64, f64>();
    let oracle = Reference::<f64>::oracle();
    let io: usize = ct.io_shape().iter().product();
    let st: usize = ct.state_shape().iter().product();
    let (mut out, mut fin) = (nan_filled::<T>(io), nan_filled::<f32>(st));
    ck.call(
        "backend ssd",
        backend.ssd(&ct.args(), &mut out, Some(&mut fin)),
    )?;
    let mut out_only = nan_filled::<T>(io);
    ck.call(
        "backend ssd (no final_states)",
        backend.ssd(&ct.args(), &mut out_only, None),
    )?;
    let (mut eout, mut efin) = (vec![0.0f64; io], vec![0.0f64; st]);
    ck.call(
        "oracle ssd",
        oracle.ssd(&co.args(), &mut eout, Some(&mut efin)),
    )?;
    ck.cmp("out", &out, &eout, tol.forward);
    ck.cmp("out (no final_states)", &out_only, &eout, tol.forward);
    ck.cmp("final_states", &fin, &efin, tol.forward);
    let g = ck.call(
        "backend ssd_backward",
        backend.ssd_backward(&ct.args(), &ct.dout, ct.dfinal_states.as_deref()),
    )?;
    let ge = ck.call(
        "oracle ssd_backward",
        oracle.ssd_backward(&co.args(), &co.dout, co.dfinal_states.as_deref()),
    )?;
    ssd_grads_cmp(&mut ck, "", &g, &ge, tol.grad);
    ck.finish()
}

/// Property (b) for `ssd`: steps `0..split` then `split..L`, the second starting from
/// the first's `final_states`, give the whole sequence's `out` and `final_states`.
/// Where `seq_idx` changes exactly at `split`, the whole sequence resets the state, so
/// that batch's second half starts from zeros. `split` is clamped to `1..L`.
pub fn check_ssd_streaming<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &SsdCase,
    split: usize,
    tol: Tolerance,
) -> CheckResult {
    let l = case.seqlen;
    let mut ck = Checker::new(
        tol,
        format!("ssd streaming, split at {split} of L = {l} ({})", T::DTYPE),
    );
    if l < 2 {
        return ck.finish();
    }
    let split = split.clamp(1, l - 1);
    let ct = case.cast::<T, f32>();
    let (bt, hp) = (ct.batch, ct.nheads * ct.headdim);
    let st: usize = ct.state_shape().iter().product();
    let run = |ck: &Checker, c: &SsdCase<T, f32>| {
        let mut out = nan_filled::<T>(bt * c.seqlen * hp);
        let mut fin = nan_filled::<f32>(st);
        ck.call(
            "backend ssd",
            backend.ssd(&c.args(), &mut out, Some(&mut fin)),
        )?;
        Ok::<_, Failure>((out, fin))
    };
    let (out, fin) = run(&ck, &ct)?;
    let (out1, mut fin1) = run(&ck, &ct.slice_time(0, split))?;
    let per_batch = st / bt;
    for i in 0..bt {
        if ct.resets(i, split) {
            fin1[i * per_batch..(i + 1) * per_batch].fill(0.0);
        }
    }
    let mut second = ct.slice_time(split, l);
    second.initial_states = Some(fin1);
    let (out2, fin2) = run(&ck, &second)?;
    ck.cmp(
        "out",
        &concat_axis(&out1, &out2, bt, split, l - split, hp),
        &out,
        tol.forward,
    );
    ck.cmp("final_states", &fin2, &fin, tol.forward);
    ck.finish()
}

/// Property (c) for Mamba-2: `L` successive `selective_state_update` calls in the
/// multi-head layout (A, dt, dt_bias and D per head repeated over p; state zeroed where
/// `seq_idx` resets) give `ssd`'s `out` step by step and its `final_states`.
pub fn check_state_update_vs_ssd<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &SsdCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(tol, format!("selective_state_update vs ssd ({})", T::DTYPE));
    let c = case.cast::<T, f32>();
    let (bt, l, h, p, g, n) = (c.batch, c.seqlen, c.nheads, c.headdim, c.ngroups, c.dstate);
    let (hp, st) = (h * p, bt * h * p * n);
    let mut out = nan_filled::<T>(bt * l * hp);
    let mut fin = nan_filled::<f32>(st);
    ck.call(
        "backend ssd",
        backend.ssd(&c.args(), &mut out, Some(&mut fin)),
    )?;

    let a_rep: Vec<f32> = (0..hp * n).map(|e| c.a[e / (p * n)]).collect();
    let bias_rep: Option<Vec<f32>> = c
        .dt_bias
        .as_ref()
        .map(|b| (0..hp).map(|r| b[r / p]).collect());
    let d_rep: Option<Vec<f32>> = c.d.as_ref().map(|_| {
        (0..hp)
            .map(|r| c.d_at(r / p, r % p).unwrap_or(0.0))
            .collect()
    });
    let mut state = c.initial_states.clone().unwrap_or_else(|| vec![0.0; st]);
    let mut decoded = nan_filled::<T>(bt * l * hp);
    let mut step_out = nan_filled::<T>(bt * hp);
    for t in 0..l {
        for i in 0..bt {
            if c.resets(i, t) {
                state[i * hp * n..(i + 1) * hp * n].fill(0.0);
            }
        }
        let x = slice_axis(&c.x, bt, l, hp, t, t + 1);
        let z = c.z.as_ref().map(|z| slice_axis(z, bt, l, hp, t, t + 1));
        let dt: Vec<T> = (0..bt * hp)
            .map(|r| c.dt[(r / hp * l + t) * h + (r % hp) / p])
            .collect();
        let bm = slice_axis(&c.b, bt, l, g * n, t, t + 1);
        let cm = slice_axis(&c.c, bt, l, g * n, t, t + 1);
        let mut args = SelectiveStateUpdateArgs::new(
            Tensor::new(&x, [bt, h, p]),
            Tensor::new(&dt, [bt, h, p]),
            Tensor::new(&a_rep, [h, p, n]),
            Tensor::new(&bm, [bt, g, n]),
            Tensor::new(&cm, [bt, g, n]),
        )
        .with_dt_softplus(c.dt_softplus);
        args.dt_limit = c.dt_limit;
        if let Some(v) = &d_rep {
            args = args.with_d(Tensor::new(v, [h, p]));
        }
        if let Some(v) = &z {
            args = args.with_z(Tensor::new(v, [bt, h, p]));
        }
        if let Some(v) = &bias_rep {
            args = args.with_dt_bias(Tensor::new(v, [h, p]));
        }
        ck.call(
            "backend selective_state_update",
            backend.selective_state_update(&args, &mut state, &mut step_out),
        )?;
        for i in 0..bt {
            decoded[(i * l + t) * hp..(i * l + t + 1) * hp]
                .copy_from_slice(&step_out[i * hp..(i + 1) * hp]);
        }
    }
    ck.cmp("out", &decoded, &out, tol.forward);
    ck.cmp("state", &state, &fin, tol.forward);
    ck.finish()
}

/// The chunk sizes property (d) compares by default.
pub const SSD_CHUNK_SIZES: [usize; 4] = [1, 3, 16, 256];

/// Property (d): `ssd` forward and backward give the same results for every chunk size
/// (compared with the first one's; `chunk_sizes` empty means [`SSD_CHUNK_SIZES`]).
pub fn check_ssd_chunk_sizes<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &SsdCase,
    chunk_sizes: &[usize],
    tol: Tolerance,
) -> CheckResult {
    let sizes = if chunk_sizes.is_empty() {
        &SSD_CHUNK_SIZES[..]
    } else {
        chunk_sizes
    };
    let mut ck = Checker::new(
        tol,
        format!("ssd chunk sizes {sizes:?} agree ({})", T::DTYPE),
    );
    let base = case.cast::<T, f32>();
    let io: usize = base.io_shape().iter().product();
    let st: usize = base.state_shape().iter().product();
    // The first chunk size's out, final_states and gradients.
    type Results<T> = (Vec<T>, Vec<f32>, SsdGrads<T, f32>);
    let mut first: Option<Results<T>> = None;
    for &cs in sizes {
        let c = SsdCase {
            chunk_size: cs,
            ..base.clone()
        };
        let (mut out, mut fin) = (nan_filled::<T>(io), nan_filled::<f32>(st));
        ck.call(
            &format!("backend ssd (chunk_size {cs})"),
            backend.ssd(&c.args(), &mut out, Some(&mut fin)),
        )?;
        let grads = ck.call(
            &format!("backend ssd_backward (chunk_size {cs})"),
            backend.ssd_backward(&c.args(), &c.dout, c.dfinal_states.as_deref()),
        )?;
        match &first {
            None => first = Some((out, fin, grads)),
            Some((out0, fin0, grads0)) => {
                let prefix = format!("chunk {cs}: ");
                ck.cmp(&format!("{prefix}out"), &out, out0, tol.forward);
                ck.cmp(&format!("{prefix}final_states"), &fin, fin0, tol.forward);
                ssd_grads_cmp(&mut ck, &prefix, &grads, grads0, tol.grad);
            }
        }
    }
    ck.finish()
}

// ---------------------------------------------------------------------------------
// causal_conv1d
// ---------------------------------------------------------------------------------

/// Shapes and options of a random [`ConvCase`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvConfig {
    /// `b`.
    pub batch: usize,
    /// `c`.
    pub channels: usize,
    /// `L`.
    pub seqlen: usize,
    /// `W >= 1`.
    pub width: usize,
    /// Give `bias`.
    pub bias: bool,
    /// Give `initial_states`.
    pub initial_states: bool,
    /// The activation.
    pub activation: Activation,
    /// The layout of `x` and `out`.
    pub layout: ConvLayout,
    /// Give an upstream gradient of `final_states`.
    pub dfinal_states: bool,
}

impl ConvConfig {
    /// The given shapes, channel-first, every option off.
    pub fn new(batch: usize, channels: usize, seqlen: usize, width: usize) -> ConvConfig {
        ConvConfig {
            batch,
            channels,
            seqlen,
            width,
            bias: false,
            initial_states: false,
            activation: Activation::None,
            layout: ConvLayout::ChannelFirst,
            dfinal_states: false,
        }
    }

    /// Small random shapes (b <= 2, c <= 5, L <= 9, W <= 5) and random options.
    pub fn random(rng: &mut Rng) -> ConvConfig {
        ConvConfig {
            batch: rng.int(1, 2),
            channels: rng.int(1, 5),
            seqlen: rng.int(1, 9),
            width: rng.int(1, 5),
            bias: rng.coin(),
            initial_states: rng.coin(),
            activation: rng.pick(&[Activation::None, Activation::Silu]),
            layout: rng.pick(&[ConvLayout::ChannelFirst, ConvLayout::ChannelLast]),
            dfinal_states: rng.coin(),
        }
    }
}

/// An owned `causal_conv1d` case.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvCase<T = f32, P = f32> {
    /// `b`.
    pub batch: usize,
    /// `c`.
    pub channels: usize,
    /// `L`.
    pub seqlen: usize,
    /// `W`.
    pub width: usize,
    /// (b, c, L) or (b, L, c) by `layout`.
    pub x: Vec<T>,
    /// (c, W).
    pub weight: Vec<P>,
    /// (c).
    pub bias: Option<Vec<P>>,
    /// (b, c, W-1).
    pub initial_states: Option<Vec<P>>,
    /// The activation.
    pub activation: Activation,
    /// The layout of `x`, `out` and `dout`.
    pub layout: ConvLayout,
    /// Upstream gradient of `out`, in `x`'s layout.
    pub dout: Vec<T>,
    /// Upstream gradient of `final_states`, (b, c, W-1).
    pub dfinal_states: Option<Vec<P>>,
}

impl ConvCase {
    /// Random inputs: `x` standard normal, weights normal with scale `1/sqrt(W)`.
    pub fn random(cfg: &ConvConfig, rng: &mut Rng) -> ConvCase {
        let (bt, ch, l, w) = (cfg.batch, cfg.channels, cfg.seqlen, cfg.width);
        ConvCase {
            batch: bt,
            channels: ch,
            seqlen: l,
            width: w,
            x: rng.normals(bt * ch * l, 1.0),
            weight: rng.normals(ch * w, 1.0 / (w as f64).sqrt()),
            bias: cfg.bias.then(|| rng.normals(ch, 0.3)),
            initial_states: cfg
                .initial_states
                .then(|| rng.normals(bt * ch * (w - 1), 1.0)),
            activation: cfg.activation,
            layout: cfg.layout,
            dout: rng.normals(bt * ch * l, 1.0),
            dfinal_states: cfg
                .dfinal_states
                .then(|| rng.normals(bt * ch * (w - 1), 1.0)),
        }
    }
}

impl<T: Element, P: Element> ConvCase<T, P> {
    /// The same case in other storage types.
    pub fn cast<T2: Element, P2: Element>(&self) -> ConvCase<T2, P2> {
        ConvCase {
            batch: self.batch,
            channels: self.channels,
            seqlen: self.seqlen,
            width: self.width,
            x: convert(&self.x),
            weight: convert(&self.weight),
            bias: cast_opt(&self.bias),
            initial_states: cast_opt(&self.initial_states),
            activation: self.activation,
            layout: self.layout,
            dout: convert(&self.dout),
            dfinal_states: cast_opt(&self.dfinal_states),
        }
    }

    /// The shape of `x` (and `out`) in the case's layout.
    pub fn x_shape(&self) -> [usize; 3] {
        match self.layout {
            ConvLayout::ChannelFirst => [self.batch, self.channels, self.seqlen],
            ConvLayout::ChannelLast => [self.batch, self.seqlen, self.channels],
        }
    }

    /// (b, c, W-1).
    pub fn state_shape(&self) -> [usize; 3] {
        [self.batch, self.channels, self.width - 1]
    }

    /// The arguments, borrowed from the case.
    pub fn args(&self) -> CausalConv1dArgs<'_, T, P> {
        let mut args = CausalConv1dArgs::new(
            Tensor::new(&self.x, self.x_shape()),
            Tensor::new(&self.weight, [self.channels, self.width]),
        )
        .with_activation(self.activation)
        .with_layout(self.layout);
        if let Some(v) = &self.bias {
            args = args.with_bias(Tensor::new(v, [self.channels]));
        }
        if let Some(v) = &self.initial_states {
            args = args.with_initial_states(Tensor::new(v, self.state_shape()));
        }
        args
    }

    /// `(outer, len, inner)` of the time axis in the case's layout.
    fn time_axis(&self) -> (usize, usize, usize) {
        match self.layout {
            ConvLayout::ChannelFirst => (self.batch * self.channels, self.seqlen, 1),
            ConvLayout::ChannelLast => (self.batch, self.seqlen, self.channels),
        }
    }

    /// Steps `t0..t1`; `initial_states` and `dfinal_states` kept.
    pub fn slice_time(&self, t0: usize, t1: usize) -> ConvCase<T, P> {
        let (o, l, i) = self.time_axis();
        ConvCase {
            seqlen: t1 - t0,
            x: slice_axis(&self.x, o, l, i, t0, t1),
            dout: slice_axis(&self.dout, o, l, i, t0, t1),
            ..self.clone()
        }
    }
}

/// Property (a) for `causal_conv1d`: forward and backward against the `f64` oracle.
pub fn check_causal_conv1d<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ConvCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(tol, format!("causal_conv1d vs f64 oracle ({})", T::DTYPE));
    let ct = case.cast::<T, f32>();
    let co = ct.cast::<f64, f64>();
    let oracle = Reference::<f64>::oracle();
    let io = ct.x.len();
    let st: usize = ct.state_shape().iter().product();
    let (mut out, mut fin) = (nan_filled::<T>(io), nan_filled::<f32>(st));
    ck.call(
        "backend causal_conv1d",
        backend.causal_conv1d(&ct.args(), &mut out, Some(&mut fin)),
    )?;
    let mut out_only = nan_filled::<T>(io);
    ck.call(
        "backend causal_conv1d (no final_states)",
        backend.causal_conv1d(&ct.args(), &mut out_only, None),
    )?;
    let (mut eout, mut efin) = (vec![0.0f64; io], vec![0.0f64; st]);
    ck.call(
        "oracle causal_conv1d",
        oracle.causal_conv1d(&co.args(), &mut eout, Some(&mut efin)),
    )?;
    ck.cmp("out", &out, &eout, tol.forward);
    ck.cmp("out (no final_states)", &out_only, &eout, tol.forward);
    ck.cmp("final_states", &fin, &efin, tol.forward);
    let g: CausalConv1dGrads<T, f32> = ck.call(
        "backend causal_conv1d_backward",
        backend.causal_conv1d_backward(&ct.args(), &ct.dout, ct.dfinal_states.as_deref()),
    )?;
    let ge = ck.call(
        "oracle causal_conv1d_backward",
        oracle.causal_conv1d_backward(&co.args(), &co.dout, co.dfinal_states.as_deref()),
    )?;
    ck.cmp("grad x", &g.x, &ge.x, tol.grad);
    ck.cmp("grad weight", &g.weight, &ge.weight, tol.grad);
    ck.cmp_opt("grad bias", &g.bias, &ge.bias, tol.grad);
    ck.cmp_opt(
        "grad initial_states",
        &g.initial_states,
        &ge.initial_states,
        tol.grad,
    );
    ck.finish()
}

/// Property (b) for `causal_conv1d`: steps `0..split` then `split..L`, the second
/// starting from the first's `final_states`, give the whole sequence's `out` and
/// `final_states` (also when `split < W-1`). `split` is clamped to `1..L`.
pub fn check_causal_conv1d_streaming<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ConvCase,
    split: usize,
    tol: Tolerance,
) -> CheckResult {
    let l = case.seqlen;
    let mut ck = Checker::new(
        tol,
        format!(
            "causal_conv1d streaming, split at {split} of L = {l} ({})",
            T::DTYPE
        ),
    );
    if l < 2 {
        return ck.finish();
    }
    let split = split.clamp(1, l - 1);
    let ct = case.cast::<T, f32>();
    let st: usize = ct.state_shape().iter().product();
    let run = |ck: &Checker, c: &ConvCase<T, f32>| {
        let mut out = nan_filled::<T>(c.x.len());
        let mut fin = nan_filled::<f32>(st);
        ck.call(
            "backend causal_conv1d",
            backend.causal_conv1d(&c.args(), &mut out, Some(&mut fin)),
        )?;
        Ok::<_, Failure>((out, fin))
    };
    let (out, fin) = run(&ck, &ct)?;
    let (out1, fin1) = run(&ck, &ct.slice_time(0, split))?;
    let mut second = ct.slice_time(split, l);
    second.initial_states = Some(fin1);
    let (out2, fin2) = run(&ck, &second)?;
    let (o, _, inner) = ct.time_axis();
    ck.cmp(
        "out",
        &concat_axis(&out1, &out2, o, split, l - split, inner),
        &out,
        tol.forward,
    );
    ck.cmp("final_states", &fin2, &fin, tol.forward);
    ck.finish()
}

// ---------------------------------------------------------------------------------
// selective_state_update
// ---------------------------------------------------------------------------------

/// The layout of a [`StateUpdateCase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateLayout {
    /// Mamba-1: `x` (b, d), `A` (d, N), `B`/`C` (b, N) when `groups` is `None`, else
    /// (b, g, N).
    Mamba1 {
        /// `d`.
        dim: usize,
        /// `g`, dividing `d`; `None` for the (b, N) layout.
        groups: Option<usize>,
    },
    /// Multi-head: `x` (b, h, p), `A` (h, p, N), `B`/`C` (b, g, N).
    Multihead {
        /// `h`.
        nheads: usize,
        /// `p`.
        headdim: usize,
        /// `g`, dividing `h`.
        ngroups: usize,
    },
}

impl UpdateLayout {
    /// `(rows, p, g)`: rows of `x` per batch (`d` or `h*p`), `p` (1 for Mamba-1), groups.
    fn dims(self) -> (usize, usize, usize) {
        match self {
            UpdateLayout::Mamba1 { dim, groups } => (dim, 1, groups.unwrap_or(1)),
            UpdateLayout::Multihead {
                nheads,
                headdim,
                ngroups,
            } => (nheads * headdim, headdim, ngroups),
        }
    }

    /// A random layout with small dimensions.
    pub fn random(rng: &mut Rng) -> UpdateLayout {
        if rng.coin() {
            let dim = rng.int(1, 6);
            UpdateLayout::Mamba1 {
                dim,
                groups: rng.coin().then(|| rng.divisor(dim)),
            }
        } else {
            let nheads = rng.int(1, 4);
            UpdateLayout::Multihead {
                nheads,
                headdim: rng.int(1, 3),
                ngroups: rng.divisor(nheads),
            }
        }
    }
}

/// Shapes and options of a random [`StateUpdateCase`].
#[derive(Clone, Debug, PartialEq)]
pub struct StateUpdateConfig {
    /// `b`.
    pub batch: usize,
    /// The layout and its dimensions.
    pub layout: UpdateLayout,
    /// `N`.
    pub dstate: usize,
    /// Give `D`.
    pub d: bool,
    /// Give `z`.
    pub z: bool,
    /// Give `dt_bias`.
    pub dt_bias: bool,
    /// `dt_softplus`.
    pub dt_softplus: bool,
    /// `dt_limit`.
    pub dt_limit: Option<(f32, f32)>,
}

impl StateUpdateConfig {
    /// Small random shapes and random options.
    pub fn random(rng: &mut Rng) -> StateUpdateConfig {
        StateUpdateConfig {
            batch: rng.int(1, 3),
            layout: UpdateLayout::random(rng),
            dstate: rng.int(1, 5),
            d: rng.coin(),
            z: rng.coin(),
            dt_bias: rng.coin(),
            dt_softplus: rng.coin(),
            dt_limit: rng.chance(0.3).then(|| random_dt_limit(rng)),
        }
    }
}

/// An owned `selective_state_update` case; `state` is the state before the step.
#[derive(Clone, Debug, PartialEq)]
pub struct StateUpdateCase<T = f32, P = f32> {
    /// `b`.
    pub batch: usize,
    /// The layout.
    pub layout: UpdateLayout,
    /// `N`.
    pub dstate: usize,
    /// (b, d, N) or (b, h, p, N).
    pub state: Vec<P>,
    /// (b, d) or (b, h, p).
    pub x: Vec<T>,
    /// As `x`.
    pub dt: Vec<T>,
    /// (d, N) or (h, p, N).
    pub a: Vec<P>,
    /// (b, N) or (b, g, N).
    pub b: Vec<T>,
    /// As `b`.
    pub c: Vec<T>,
    /// (d) or (h, p).
    pub d: Option<Vec<P>>,
    /// As `x`.
    pub z: Option<Vec<T>>,
    /// (d) or (h, p).
    pub dt_bias: Option<Vec<P>>,
    /// `dt_softplus`.
    pub dt_softplus: bool,
    /// `dt_limit`.
    pub dt_limit: Option<(f32, f32)>,
}

impl StateUpdateCase {
    /// Random inputs and a random state (normal, scale 0.5).
    pub fn random(cfg: &StateUpdateConfig, rng: &mut Rng) -> StateUpdateCase {
        let (rows, _, g) = cfg.layout.dims();
        let (bt, n) = (cfg.batch, cfg.dstate);
        let steps = StepSpec {
            softplus: cfg.dt_softplus,
            big: false,
            limit: crate::ops::ssd::normalize_dt_limit(cfg.dt_limit),
        };
        let dt_bias: Option<Vec<f32>> = cfg
            .dt_bias
            .then(|| (0..rows).map(|_| steps.bias(rng)).collect());
        let dt = (0..bt * rows)
            .map(|r| steps.draw(rng, dt_bias.as_ref().map_or(0.0, |b| b[r % rows])))
            .collect();
        StateUpdateCase {
            batch: bt,
            layout: cfg.layout,
            dstate: n,
            state: rng.normals(bt * rows * n, 0.5),
            x: rng.normals(bt * rows, 1.0),
            dt,
            a: negative_a(rng, rows * n, -1.0, 1.5),
            b: rng.normals(bt * g * n, 1.0),
            c: rng.normals(bt * g * n, 1.0),
            d: cfg.d.then(|| rng.normals(rows, 1.0)),
            z: cfg.z.then(|| rng.normals(bt * rows, 1.0)),
            dt_bias,
            dt_softplus: cfg.dt_softplus,
            dt_limit: steps.limit,
        }
    }
}

impl<T: Element, P: Element> StateUpdateCase<T, P> {
    /// The same case in other storage types.
    pub fn cast<T2: Element, P2: Element>(&self) -> StateUpdateCase<T2, P2> {
        StateUpdateCase {
            batch: self.batch,
            layout: self.layout,
            dstate: self.dstate,
            state: convert(&self.state),
            x: convert(&self.x),
            dt: convert(&self.dt),
            a: convert(&self.a),
            b: convert(&self.b),
            c: convert(&self.c),
            d: cast_opt(&self.d),
            z: cast_opt(&self.z),
            dt_bias: cast_opt(&self.dt_bias),
            dt_softplus: self.dt_softplus,
            dt_limit: self.dt_limit,
        }
    }

    /// The shape of `x`, `dt`, `z` and `out`.
    pub fn x_shape(&self) -> Shape {
        match self.layout {
            UpdateLayout::Mamba1 { dim, .. } => Shape::new([self.batch, dim]),
            UpdateLayout::Multihead {
                nheads, headdim, ..
            } => Shape::new([self.batch, nheads, headdim]),
        }
    }

    /// The shape of the state.
    pub fn state_shape(&self) -> Shape {
        let mut dims = Vec::from(self.x_shape().dims());
        dims.push(self.dstate);
        shape(&dims)
    }

    /// The shape of `D` and `dt_bias`.
    pub fn param_shape(&self) -> Shape {
        shape(&self.x_shape().dims()[1..])
    }

    /// The shape of `A`.
    pub fn a_shape(&self) -> Shape {
        let mut dims = Vec::from(self.param_shape().dims());
        dims.push(self.dstate);
        shape(&dims)
    }

    /// The shape of `B` and `C`.
    pub fn bc_shape(&self) -> Shape {
        match self.layout {
            UpdateLayout::Mamba1 { groups: None, .. } => Shape::new([self.batch, self.dstate]),
            UpdateLayout::Mamba1 {
                groups: Some(g), ..
            }
            | UpdateLayout::Multihead { ngroups: g, .. } => {
                Shape::new([self.batch, g, self.dstate])
            }
        }
    }

    /// The arguments, borrowed from the case (the state is passed separately).
    pub fn args(&self) -> SelectiveStateUpdateArgs<'_, T, P> {
        let xs = self.x_shape();
        let mut args = SelectiveStateUpdateArgs::new(
            Tensor::new(&self.x, xs),
            Tensor::new(&self.dt, xs),
            Tensor::new(&self.a, self.a_shape()),
            Tensor::new(&self.b, self.bc_shape()),
            Tensor::new(&self.c, self.bc_shape()),
        )
        .with_dt_softplus(self.dt_softplus);
        args.dt_limit = self.dt_limit;
        if let Some(v) = &self.d {
            args = args.with_d(Tensor::new(v, self.param_shape()));
        }
        if let Some(v) = &self.z {
            args = args.with_z(Tensor::new(v, xs));
        }
        if let Some(v) = &self.dt_bias {
            args = args.with_dt_bias(Tensor::new(v, self.param_shape()));
        }
        args
    }
}

/// `selective_state_update` of `backend` against the `f64` oracle: `out` and the new
/// state.
pub fn check_state_update<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &StateUpdateCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(
        tol,
        format!("selective_state_update vs f64 oracle ({})", T::DTYPE),
    );
    let ct = case.cast::<T, f32>();
    let co = ct.cast::<f64, f64>();
    let mut state = ct.state.clone();
    let mut out = nan_filled::<T>(ct.x.len());
    ck.call(
        "backend selective_state_update",
        backend.selective_state_update(&ct.args(), &mut state, &mut out),
    )?;
    let mut estate = co.state.clone();
    let mut eout = vec![0.0f64; co.x.len()];
    ck.call(
        "oracle selective_state_update",
        Reference::<f64>::oracle().selective_state_update(&co.args(), &mut estate, &mut eout),
    )?;
    ck.cmp("out", &out, &eout, tol.forward);
    ck.cmp("state", &state, &estate, tol.forward);
    ck.finish()
}

// ---------------------------------------------------------------------------------
// causal_conv1d_update
// ---------------------------------------------------------------------------------

/// Shapes and options of a random [`ConvUpdateCase`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvUpdateConfig {
    /// `b`.
    pub batch: usize,
    /// `c`.
    pub channels: usize,
    /// `W >= 1`.
    pub width: usize,
    /// `S >= W-1`.
    pub state_len: usize,
    /// `Some(Ln)`: `x` is (b, c, Ln); `None`: `x` is (b, c).
    pub steps: Option<usize>,
    /// Give `bias`.
    pub bias: bool,
    /// The activation.
    pub activation: Activation,
}

impl ConvUpdateConfig {
    /// Small random shapes (`S` from `W-1` to `W+2`) and random options.
    pub fn random(rng: &mut Rng) -> ConvUpdateConfig {
        let width = rng.int(1, 5);
        ConvUpdateConfig {
            batch: rng.int(1, 2),
            channels: rng.int(1, 5),
            width,
            state_len: width - 1 + rng.int(0, 3),
            steps: rng.coin().then(|| rng.int(1, 4)),
            bias: rng.coin(),
            activation: rng.pick(&[Activation::None, Activation::Silu]),
        }
    }
}

/// An owned `causal_conv1d_update` case; `conv_state` is the state before the call.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvUpdateCase<T = f32, P = f32> {
    /// `b`.
    pub batch: usize,
    /// `c`.
    pub channels: usize,
    /// `W`.
    pub width: usize,
    /// `S`.
    pub state_len: usize,
    /// `Ln`, or `None` for `x` of shape (b, c).
    pub steps: Option<usize>,
    /// (b, c, S).
    pub conv_state: Vec<P>,
    /// (b, c) or (b, c, Ln).
    pub x: Vec<T>,
    /// (c, W).
    pub weight: Vec<P>,
    /// (c).
    pub bias: Option<Vec<P>>,
    /// The activation.
    pub activation: Activation,
}

impl ConvUpdateCase {
    /// Random inputs and state.
    pub fn random(cfg: &ConvUpdateConfig, rng: &mut Rng) -> ConvUpdateCase {
        let (bt, ch, w, s) = (cfg.batch, cfg.channels, cfg.width, cfg.state_len);
        let ln = cfg.steps.unwrap_or(1);
        ConvUpdateCase {
            batch: bt,
            channels: ch,
            width: w,
            state_len: s,
            steps: cfg.steps,
            conv_state: rng.normals(bt * ch * s, 1.0),
            x: rng.normals(bt * ch * ln, 1.0),
            weight: rng.normals(ch * w, 1.0 / (w as f64).sqrt()),
            bias: cfg.bias.then(|| rng.normals(ch, 0.3)),
            activation: cfg.activation,
        }
    }
}

impl<T: Element, P: Element> ConvUpdateCase<T, P> {
    /// The same case in other storage types.
    pub fn cast<T2: Element, P2: Element>(&self) -> ConvUpdateCase<T2, P2> {
        ConvUpdateCase {
            batch: self.batch,
            channels: self.channels,
            width: self.width,
            state_len: self.state_len,
            steps: self.steps,
            conv_state: convert(&self.conv_state),
            x: convert(&self.x),
            weight: convert(&self.weight),
            bias: cast_opt(&self.bias),
            activation: self.activation,
        }
    }

    /// `Ln` (1 for `x` of shape (b, c)).
    pub fn ln(&self) -> usize {
        self.steps.unwrap_or(1)
    }

    /// The shape of `x` and `out`.
    pub fn x_shape(&self) -> Shape {
        match self.steps {
            None => Shape::new([self.batch, self.channels]),
            Some(ln) => Shape::new([self.batch, self.channels, ln]),
        }
    }

    /// (b, c, S).
    pub fn state_shape(&self) -> [usize; 3] {
        [self.batch, self.channels, self.state_len]
    }

    /// The arguments, borrowed from the case (the state is passed separately).
    pub fn args(&self) -> CausalConv1dUpdateArgs<'_, T, P> {
        let mut args = CausalConv1dUpdateArgs::new(
            Tensor::new(&self.x, self.x_shape()),
            Tensor::new(&self.weight, [self.channels, self.width]),
        )
        .with_activation(self.activation);
        if let Some(v) = &self.bias {
            args = args.with_bias(Tensor::new(v, [self.channels]));
        }
        args
    }
}

/// `causal_conv1d_update` of `backend` against the `f64` oracle: `out` and the new
/// state.
pub fn check_conv_update<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ConvUpdateCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(
        tol,
        format!("causal_conv1d_update vs f64 oracle ({})", T::DTYPE),
    );
    let ct = case.cast::<T, f32>();
    let co = ct.cast::<f64, f64>();
    let mut state = ct.conv_state.clone();
    let mut out = nan_filled::<T>(ct.x.len());
    ck.call(
        "backend causal_conv1d_update",
        backend.causal_conv1d_update(
            &ct.args(),
            TensorMut::new(&mut state, ct.state_shape()),
            &mut out,
        ),
    )?;
    let mut estate = co.conv_state.clone();
    let mut eout = vec![0.0f64; co.x.len()];
    ck.call(
        "oracle causal_conv1d_update",
        Reference::<f64>::oracle().causal_conv1d_update(
            &co.args(),
            TensorMut::new(&mut estate, co.state_shape()),
            &mut eout,
        ),
    )?;
    ck.cmp("out", &out, &eout, tol.forward);
    ck.cmp("conv_state", &state, &estate, tol.forward);
    ck.finish()
}

/// Property (c) for the convolution: `causal_conv1d_update` equals `causal_conv1d` of
/// the `Ln` new samples with the state's last `W-1` columns as `initial_states` (the
/// last `Ln` positions of the convolution of state and input), its new state is the
/// last `S` columns of state and input, and that state's last `W-1` columns are the
/// convolution's `final_states`.
pub fn check_conv_update_vs_conv<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ConvUpdateCase,
    tol: Tolerance,
) -> CheckResult {
    let mut ck = Checker::new(
        tol,
        format!("causal_conv1d_update vs causal_conv1d ({})", T::DTYPE),
    );
    let c = case.cast::<T, f32>();
    let (bt, ch, w, s, ln) = (c.batch, c.channels, c.width, c.state_len, c.ln());
    let rows = bt * ch;
    let mut state = c.conv_state.clone();
    let mut out = nan_filled::<T>(rows * ln);
    ck.call(
        "backend causal_conv1d_update",
        backend.causal_conv1d_update(
            &c.args(),
            TensorMut::new(&mut state, c.state_shape()),
            &mut out,
        ),
    )?;
    let init = slice_axis(&c.conv_state, rows, s, 1, s + 1 - w, s);
    let mut conv = CausalConv1dArgs::new(
        Tensor::new(&c.x, [bt, ch, ln]),
        Tensor::new(&c.weight, [ch, w]),
    )
    .with_initial_states(Tensor::new(&init, [bt, ch, w - 1]))
    .with_activation(c.activation);
    if let Some(v) = &c.bias {
        conv = conv.with_bias(Tensor::new(v, [ch]));
    }
    let mut cout = nan_filled::<T>(rows * ln);
    let mut fin = nan_filled::<f32>(rows * (w - 1));
    ck.call(
        "backend causal_conv1d",
        backend.causal_conv1d(&conv, &mut cout, Some(&mut fin)),
    )?;
    ck.cmp("out", &out, &cout, tol.forward);
    let xs: Vec<f64> = convert(&c.x);
    let old: Vec<f64> = convert(&c.conv_state);
    let cat = concat_axis(&old, &xs, rows, s, ln, 1);
    ck.cmp(
        "conv_state",
        &state,
        &slice_axis(&cat, rows, s + ln, 1, ln, s + ln),
        tol.forward,
    );
    ck.cmp(
        "final_states = last W-1 columns of conv_state",
        &fin,
        &slice_axis(&state, rows, s, 1, s + 1 - w, s),
        tol.forward,
    );
    ck.finish()
}

// ---------------------------------------------------------------------------------
// Everything at once
// ---------------------------------------------------------------------------------

/// The outcome of [`conformance`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conformance {
    /// The report of every check that ran.
    pub reports: Vec<Report>,
    /// The checks skipped because the backend returned `Unsupported`, with its message.
    pub unsupported: Vec<String>,
}

impl Conformance {
    /// The largest error of any check.
    pub fn worst_error(&self) -> f64 {
        self.reports
            .iter()
            .map(Report::worst_error)
            .fold(0.0, f64::max)
    }
}

/// Runs every check above on `rounds` random cases of every operation (seeded by
/// `seed`), with storage type `T`. The first failure that is not `Unsupported` is
/// returned; `Unsupported` ones are listed in the result.
pub fn conformance<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    seed: u64,
    rounds: usize,
    tol: Tolerance,
) -> core::result::Result<Conformance, Failure> {
    let mut rng = Rng::new(seed);
    let mut result = Conformance::default();
    let record = |r: CheckResult, result: &mut Conformance| match r {
        Ok(report) => {
            result.reports.push(report);
            Ok(())
        }
        Err(f) if f.is_unsupported() => {
            result.unsupported.push(format!("{f}"));
            Ok(())
        }
        Err(f) => Err(f),
    };
    for _ in 0..rounds {
        let scan = ScanCase::random(&ScanConfig::random(&mut rng), &mut rng);
        let split = rng.int(1, scan.seqlen.max(2) - 1);
        record(
            check_selective_scan::<T, B>(backend, &scan, tol),
            &mut result,
        )?;
        record(
            check_selective_scan_streaming::<T, B>(backend, &scan, split, tol),
            &mut result,
        )?;
        record(
            check_state_update_vs_scan::<T, B>(backend, &scan, tol),
            &mut result,
        )?;

        let ssd = SsdCase::random(&SsdConfig::random(&mut rng), &mut rng);
        let split = rng.int(1, ssd.seqlen.max(2) - 1);
        record(check_ssd::<T, B>(backend, &ssd, tol), &mut result)?;
        record(
            check_ssd_streaming::<T, B>(backend, &ssd, split, tol),
            &mut result,
        )?;
        record(
            check_state_update_vs_ssd::<T, B>(backend, &ssd, tol),
            &mut result,
        )?;
        record(
            check_ssd_chunk_sizes::<T, B>(backend, &ssd, &SSD_CHUNK_SIZES, tol),
            &mut result,
        )?;

        let conv = ConvCase::random(&ConvConfig::random(&mut rng), &mut rng);
        let split = rng.int(1, conv.seqlen.max(2) - 1);
        record(
            check_causal_conv1d::<T, B>(backend, &conv, tol),
            &mut result,
        )?;
        record(
            check_causal_conv1d_streaming::<T, B>(backend, &conv, split, tol),
            &mut result,
        )?;

        let upd = StateUpdateCase::random(&StateUpdateConfig::random(&mut rng), &mut rng);
        record(check_state_update::<T, B>(backend, &upd, tol), &mut result)?;

        let cu = ConvUpdateCase::random(&ConvUpdateConfig::random(&mut rng), &mut rng);
        record(check_conv_update::<T, B>(backend, &cu, tol), &mut result)?;
        record(
            check_conv_update_vs_conv::<T, B>(backend, &cu, tol),
            &mut result,
        )?;
    }
    Ok(result)
}

/// The bits of each gradient field by name (`None` for an absent optional one), for the
/// `_into` checks.
type GradBits = Vec<(&'static str, Option<Vec<u32>>)>;

fn field_bits<E: Element>(v: Option<&Vec<E>>) -> Option<Vec<u32>> {
    v.map(|v| v.iter().map(|x| x.to_f32().to_bits()).collect())
}

/// The first field that differs from the by-value call's, as an error message: in its
/// bits (`tol` `None`), or by more than `tol` in relative L2 error (a NaN never passes).
/// Presence and length must match either way.
fn same_grads(
    what: &str,
    got: &GradBits,
    want: &GradBits,
    tol: Option<f64>,
) -> core::result::Result<(), String> {
    for ((name, g), (_, w)) in got.iter().zip(want) {
        let detail = match (g, w) {
            (Some(g), Some(w)) if g.len() == w.len() => match tol {
                None => g.iter().zip(w).position(|(a, b)| a != b).map(|k| {
                    format!(
                        "value {k}: {} against {}",
                        f32::from_bits(g[k]),
                        f32::from_bits(w[k])
                    )
                }),
                Some(t) => {
                    let f = |v: &[u32]| v.iter().map(|&b| f32::from_bits(b)).collect::<Vec<f32>>();
                    let e = rel_l2::<f32, f32>(&f(g), &f(w));
                    (e > t).then(|| format!("relative L2 error {e:.3e} > {t:.1e}"))
                }
            },
            (Some(g), Some(w)) => Some(format!("{} values against {}", g.len(), w.len())),
            (g, w) => (g.is_some() != w.is_some())
                .then(|| format!("present {} against {}", g.is_some(), w.is_some())),
        };
        if let Some(detail) = detail {
            return Err(format!(
                "{what}: grad {name} differs from the by-value call ({detail})"
            ));
        }
    }
    Ok(())
}

/// A vector longer than `n` values, all NaN.
fn junk<E: Element>(n: usize) -> Vec<E> {
    vec![E::from_f32(f32::NAN); n + 17]
}

/// `Some(junk)` where `v` is absent, `None` where it is present.
fn flipped<E: Element>(v: &Option<Vec<E>>) -> Option<Vec<E>> {
    match v {
        Some(_) => None,
        None => Some(junk(3)),
    }
}

/// A gradient struct as the `_into` checks see it.
trait IntoGrads: Default {
    /// Every field's bits, by name.
    fn bits(&self) -> GradBits;
    /// Vectors longer than these, all NaN, with every optional field the other way round.
    fn junk_like(&self) -> Self;
    /// Every value NaN, the lengths kept.
    fn nan_fill(&mut self);
}

macro_rules! into_grads {
    ($ty:ident { $($req:ident),* ; $($opt:ident),* }) => {
        impl<T: Element> IntoGrads for $ty<T, f32> {
            fn bits(&self) -> GradBits {
                vec![
                    $((stringify!($req), field_bits(Some(&self.$req))),)*
                    $((stringify!($opt), field_bits(self.$opt.as_ref())),)*
                ]
            }
            fn junk_like(&self) -> Self {
                $ty { $($req: junk(self.$req.len()),)* $($opt: flipped(&self.$opt),)* }
            }
            fn nan_fill(&mut self) {
                $(self.$req.fill(Element::from_f32(f32::NAN));)*
                $(if let Some(v) = &mut self.$opt {
                    v.fill(Element::from_f32(f32::NAN));
                })*
            }
        }
    };
}

into_grads!(SelectiveScanGrads { u, delta, a, b, c; d, z, delta_bias, initial_state });
into_grads!(SsdGrads { x, dt, a, b, c; d, z, dt_bias, initial_states });
into_grads!(CausalConv1dGrads { x, weight; bias, initial_states });

/// The `_into` check on any gradient struct: `by_value` once, then `into` into
/// [`IntoGrads::junk_like`] vectors, into the same vectors refilled with NaN, and into
/// empty ones, each compared with the by-value gradients.
fn check_into<G: IntoGrads>(
    op: &str,
    by_value: impl FnOnce() -> Result<G, Error>,
    mut into: impl FnMut(&mut G) -> Result<(), Error>,
    tol: Option<f64>,
) -> core::result::Result<(), String> {
    let err = |e: Error| format!("{op}: {e}");
    let w = by_value().map_err(err)?;
    let want = w.bits();
    let mut g = w.junk_like();
    into(&mut g).map_err(err)?;
    same_grads("into junk", &g.bits(), &want, tol)?;
    g.nan_fill();
    into(&mut g).map_err(err)?;
    same_grads("into the last call's vectors", &g.bits(), &want, tol)?;
    let mut g = G::default();
    into(&mut g).map_err(err)?;
    same_grads("into empty vectors", &g.bits(), &want, tol)
}

/// `selective_scan_backward_into` gives what `selective_scan_backward` gives: into
/// longer NaN-filled vectors with every optional field the wrong way round, into the
/// same vectors refilled with NaN (a backend that reuses them must clear what it adds
/// into and overwrite what it writes), and into empty ones. `tol` `None`: the same bits
/// (a backend whose backward is deterministic); `Some(t)`: within relative L2 error `t`
/// per gradient (one whose reductions may sum in another order each call, as the cuda
/// plugin's atomics do), every optional field present or absent as by value.
pub fn check_selective_scan_backward_into<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ScanCase,
    tol: Option<f64>,
) -> core::result::Result<(), String> {
    let ct = case.cast::<T, f32>();
    let (args, dout, dlast) = (ct.args(), &ct.dout, ct.dlast_state.as_deref());
    check_into(
        "selective_scan_backward",
        || backend.selective_scan_backward(&args, dout, dlast),
        |g| backend.selective_scan_backward_into(&args, dout, dlast, g),
        tol,
    )
}

/// [`check_selective_scan_backward_into`] for `ssd_backward_into`.
pub fn check_ssd_backward_into<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &SsdCase,
    tol: Option<f64>,
) -> core::result::Result<(), String> {
    let ct = case.cast::<T, f32>();
    let (args, dout, dfin) = (ct.args(), &ct.dout, ct.dfinal_states.as_deref());
    check_into(
        "ssd_backward",
        || backend.ssd_backward(&args, dout, dfin),
        |g| backend.ssd_backward_into(&args, dout, dfin, g),
        tol,
    )
}

/// [`check_selective_scan_backward_into`] for `causal_conv1d_backward_into`.
pub fn check_causal_conv1d_backward_into<T: Element, B: Kernels<T> + ?Sized>(
    backend: &B,
    case: &ConvCase,
    tol: Option<f64>,
) -> core::result::Result<(), String> {
    let ct = case.cast::<T, f32>();
    let (args, dout, dfin) = (ct.args(), &ct.dout, ct.dfinal_states.as_deref());
    check_into(
        "causal_conv1d_backward",
        || backend.causal_conv1d_backward(&args, dout, dfin),
        |g| backend.causal_conv1d_backward_into(&args, dout, dfin, g),
        tol,
    )
}
