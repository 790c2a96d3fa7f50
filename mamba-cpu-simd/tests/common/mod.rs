//! Shared test support: the backends to test (one per instruction-set path this host
//! has), random inputs, the f64 oracle's inputs and the SPEC's error measure.

#![allow(dead_code)]

use mamba_core::Element;
use mamba_cpu_simd::{CpuSimd, SimdLevel, TimeChunking};

/// Forward tolerance for `f32` storage (SPEC).
pub const FWD_TOL: f64 = 1e-5;
/// Gradient tolerance for `f32` storage (SPEC).
pub const GRAD_TOL: f64 = 1e-4;

/// The paths to test: every one this host supports, or only the one `MAMBA_SIMD`
/// names. Paths the host lacks are reported once per test.
pub fn levels() -> Vec<SimdLevel> {
    if let Ok(v) = std::env::var(mamba_cpu_simd::SIMD_ENV) {
        if !v.trim().is_empty() {
            let level =
                SimdLevel::parse(&v).unwrap_or_else(|| panic!("MAMBA_SIMD={v:?} names no path"));
            if !level.is_available() {
                eprintln!("skipping {level}: host lacks it (MAMBA_SIMD={v})");
                return Vec::new();
            }
            return vec![level];
        }
    }
    let mut out = Vec::new();
    for level in SimdLevel::ALL {
        if level.is_available() {
            out.push(level);
        } else {
            eprintln!("skipping {level}: host lacks it");
        }
    }
    out
}

/// One backend per path, with `threads` threads and the given chunking.
pub fn backends(threads: usize, chunking: TimeChunking) -> Vec<CpuSimd> {
    levels()
        .into_iter()
        .map(|l| {
            CpuSimd::with_threads(threads)
                .with_simd(l)
                .expect("available path")
                .with_time_chunking(chunking)
        })
        .collect()
}

/// `||got - expected|| / ||expected||`; infinite when anything is not finite or the
/// lengths differ. An all-zero expectation compares absolutely.
pub fn rel_l2<G: Element>(got: &[G], expected: &[f64]) -> f64 {
    if got.len() != expected.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &e) in got.iter().zip(expected) {
        let g = g.to_f64();
        if !g.is_finite() || !e.is_finite() {
            return f64::INFINITY;
        }
        num += (g - e) * (g - e);
        den += e * e;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// How far beyond the SPEC tolerance a result may miss in an ill-conditioned case: its
/// error must then stay within this many times the case's input sensitivity (see
/// [`assert_within`]).
pub const COND_FACTOR: f64 = 50.0;

/// The SPEC's check, guarded against ill-conditioned random cases.
///
/// A result passes when its relative L2 error is at most `tol`. Failing that, it passes
/// only when the error is within `COND_FACTOR` times `sens()`: how far the f64 oracle's
/// result moves when every input moves by one f32 rounding (see [`input_sensitivity`]).
/// Why: a sum whose terms cancel has no f32 evaluation within the tolerance, and random
/// shapes draw such sums as whole results: with one SSD head, dA and d(dt_bias) are
/// single sums; with one channel and one step, a scan's output is one `C h` sum. Over
/// 1200 random one-head SSD cases (L 50, p 13, N 3, initial states, packed sequences),
/// the plain f32 reference recurrence missed 5e-5 in dA as often as the SIMD backend
/// did, and the SIMD backend's error was at most 7.7 times the input sensitivity
/// (median 0.45). A wrong result misses by orders of magnitude more. `sens` is only
/// evaluated on a miss, which is reported.
#[track_caller]
pub fn assert_within<G: Element>(
    what: &str,
    got: &[G],
    expected: &[f64],
    tol: f64,
    sens: impl FnOnce() -> f64,
) {
    assert!(
        expected.iter().all(|v| v.is_finite()),
        "{what}: the oracle is not finite (a bad case)"
    );
    let err = rel_l2(got, expected);
    if err <= tol {
        return;
    }
    let sens = sens();
    assert!(
        err.is_finite() && err <= COND_FACTOR * sens,
        "{what}: relative L2 error {err:e} > {tol:e}, and more than {COND_FACTOR} \
         times the input sensitivity {sens:e}"
    );
    eprintln!(
        "note: {what}: relative L2 error {err:e} > {tol:e} in an ill-conditioned case \
         (input sensitivity {sens:e}); passes within {COND_FACTOR}x of it"
    );
}

/// Checks a forward result pair (output, state) at `FWD_TOL` with [`assert_within`]'s
/// guard; `jittered(k)` is the oracle's pair for draw `k` of the jittered case.
#[track_caller]
pub fn check_forward<G: Element, S: Element>(
    what: &str,
    names: [&str; 2],
    got: (&[G], &[S]),
    expected: &(Vec<f64>, Vec<f64>),
    jittered: impl Fn(u64) -> (Vec<f64>, Vec<f64>),
) {
    let draws = std::cell::OnceCell::new();
    let draws = || draws.get_or_init(|| (0..JITTER_DRAWS).map(&jittered).collect::<Vec<_>>());
    let (e0, e1) = expected;
    assert_within(
        &format!("{} of {what}", names[0]),
        got.0,
        e0,
        FWD_TOL,
        || input_sensitivity(e0, draws().iter().map(|j| Some(&j.0[..]))),
    );
    assert_within(
        &format!("{} of {what}", names[1]),
        got.1,
        e1,
        FWD_TOL,
        || input_sensitivity(e1, draws().iter().map(|j| Some(&j.1[..]))),
    );
}

/// The gradient checks of one case: each at `GRAD_TOL` with [`assert_within`]'s guard,
/// the jittered oracle gradients (`jittered(k)`, draw `k`) computed on the first miss.
pub struct GradCheck<'a, J, F: Fn(u64) -> J> {
    what: &'a str,
    draws: std::cell::OnceCell<Vec<J>>,
    jittered: F,
}

impl<'a, J, F: Fn(u64) -> J> GradCheck<'a, J, F> {
    pub fn new(what: &'a str, jittered: F) -> Self {
        GradCheck {
            what,
            draws: std::cell::OnceCell::new(),
            jittered,
        }
    }

    /// Checks one gradient; `pick` takes the same gradient from a jittered result.
    #[track_caller]
    pub fn check<G: Element>(
        &self,
        name: &str,
        got: &[G],
        expected: &[f64],
        pick: fn(&J) -> Option<&[f64]>,
    ) {
        assert_within(
            &format!("{name} of {}", self.what),
            got,
            expected,
            GRAD_TOL,
            || {
                let draws = self
                    .draws
                    .get_or_init(|| (0..JITTER_DRAWS).map(&self.jittered).collect());
                input_sensitivity(expected, draws.iter().map(pick))
            },
        );
    }

    /// Checks an optional gradient: present exactly when expected, and close.
    #[track_caller]
    pub fn check_opt<G: Element>(
        &self,
        name: &str,
        got: &Option<Vec<G>>,
        expected: &Option<Vec<f64>>,
        pick: fn(&J) -> Option<&[f64]>,
    ) {
        match (got, expected) {
            (Some(g), Some(e)) => self.check(name, g, e, pick),
            (None, None) => {}
            _ => panic!("{name} of {}: present in one result only", self.what),
        }
    }
}

/// Moves every element of the `inputs` and of the present `optional` buffers by one f32
/// rounding step (relative 2^-24, random sign), with signs drawn from `seed`.
pub fn jitter(seed: u64, inputs: &mut [&mut Vec<f32>], optional: &mut [&mut Option<Vec<f32>>]) {
    let mut rng = Rng::new(seed);
    let bufs = inputs
        .iter_mut()
        .map(|v| &mut v[..])
        .chain(optional.iter_mut().filter_map(|v| v.as_deref_mut()));
    for v in bufs {
        for x in v.iter_mut() {
            let r = if rng.coin() { 1.0 } else { -1.0 };
            *x = (*x as f64 * (1.0 + r * 2f64.powi(-24))) as f32;
        }
    }
}

/// The largest relative L2 change of `expected` over jittered oracle results.
pub fn input_sensitivity<'a>(
    expected: &[f64],
    jittered: impl IntoIterator<Item = Option<&'a [f64]>>,
) -> f64 {
    let norm = expected.iter().map(|v| v * v).sum::<f64>().sqrt();
    jittered
        .into_iter()
        .map(|j| match j {
            Some(j) if j.len() == expected.len() => {
                let d = j
                    .iter()
                    .zip(expected)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                if norm == 0.0 {
                    d
                } else {
                    d / norm
                }
            }
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}

/// How many jittered oracle runs [`input_sensitivity`] takes the worst of.
pub const JITTER_DRAWS: u64 = 3;

/// SplitMix64: deterministic inputs from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// `f32` to `f64`, exactly.
pub fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// An optional buffer widened to `f64`.
pub fn wide_opt(v: &Option<Vec<f32>>) -> Option<Vec<f64>> {
    v.as_ref().map(|v| wide(v))
}

/// Rounds `f32` data into a storage type.
pub fn narrow<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}

// ---------------------------------------------------------------------------------
// selective_scan

use mamba_core::{Kernels, Reference, SelectiveScanArgs, SelectiveScanGrads, Tensor};

/// Where `B` or `C` of a scan case comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// (d, N).
    Shared,
    /// (b, N, L).
    Varying,
    /// (b, g, N, L).
    Grouped(usize),
}

/// The shape and options of a selective-scan case.
#[derive(Clone, Copy, Debug)]
pub struct ScanShape {
    pub batch: usize,
    pub dim: usize,
    pub seqlen: usize,
    pub dstate: usize,
    pub b_layout: Layout,
    pub c_layout: Layout,
    pub d: bool,
    pub z: bool,
    pub bias: bool,
    pub init: bool,
    pub softplus: bool,
    pub dlast: bool,
}

/// A selective-scan case: inputs and upstream gradients, in `f32`.
#[derive(Clone, Debug)]
pub struct ScanCase {
    pub shape: ScanShape,
    pub u: Vec<f32>,
    pub delta: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub d: Option<Vec<f32>>,
    pub z: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
    pub init: Option<Vec<f32>>,
    pub dout: Vec<f32>,
    pub dlast: Option<Vec<f32>>,
}

fn bc_dims(layout: Layout, s: &ScanShape) -> Vec<usize> {
    match layout {
        Layout::Shared => vec![s.dim, s.dstate],
        Layout::Varying => vec![s.batch, s.dstate, s.seqlen],
        Layout::Grouped(g) => vec![s.batch, g, s.dstate, s.seqlen],
    }
}

impl ScanCase {
    pub fn random(shape: ScanShape, seed: u64) -> ScanCase {
        let mut rng = Rng::new(seed);
        let s = shape;
        let io = s.batch * s.dim * s.seqlen;
        let st = s.batch * s.dim * s.dstate;
        let bn: usize = bc_dims(s.b_layout, &s).iter().product();
        let cn: usize = bc_dims(s.c_layout, &s).iter().product();
        // Realistic values: softplus of a negative delta gives small steps; A is the
        // S4D-real -(1..N) with noise.
        let delta = if s.softplus {
            rng.vec(io, -4.0, 1.0)
        } else {
            rng.vec(io, 0.001, 0.3)
        };
        let a = (0..s.dim * s.dstate)
            .map(|k| -((k % s.dstate) as f32 + 1.0) * rng.uniform(0.5, 1.5))
            .collect();
        ScanCase {
            shape,
            u: rng.vec(io, -1.0, 1.0),
            delta,
            a,
            b: rng.vec(bn, -1.0, 1.0),
            c: rng.vec(cn, -1.0, 1.0),
            d: s.d.then(|| rng.vec(s.dim, -1.0, 1.0)),
            z: s.z.then(|| rng.vec(io, -3.0, 3.0)),
            // Without softplus the step is delta + bias itself and must stay positive.
            bias: s.bias.then(|| {
                if s.softplus {
                    rng.vec(s.dim, -1.0, 0.5)
                } else {
                    rng.vec(s.dim, 0.0, 0.1)
                }
            }),
            init: s.init.then(|| rng.vec(st, -1.0, 1.0)),
            dout: rng.vec(io, -1.0, 1.0),
            dlast: s.dlast.then(|| rng.vec(st, -1.0, 1.0)),
        }
    }

    fn args<'a, T: Element, P: Element>(
        &self,
        bufs: &'a ScanBufs<T, P>,
    ) -> SelectiveScanArgs<'a, T, P> {
        let s = &self.shape;
        let io = [s.batch, s.dim, s.seqlen];
        let mut args = SelectiveScanArgs::new(
            Tensor::new(&bufs.u, io),
            Tensor::new(&bufs.delta, io),
            Tensor::new(&bufs.a, [s.dim, s.dstate]),
            tensor(&bufs.b, &bc_dims(s.b_layout, s)),
            tensor(&bufs.c, &bc_dims(s.c_layout, s)),
        )
        .with_delta_softplus(s.softplus);
        if let Some(d) = &bufs.d {
            args = args.with_d(Tensor::new(d, [s.dim]));
        }
        if let Some(z) = &bufs.z {
            args = args.with_z(Tensor::new(z, io));
        }
        if let Some(b) = &bufs.bias {
            args = args.with_delta_bias(Tensor::new(b, [s.dim]));
        }
        if let Some(h) = &bufs.init {
            args = args.with_initial_state(Tensor::new(h, [s.batch, s.dim, s.dstate]));
        }
        args
    }

    pub fn bufs<T: Element, P: Element>(&self) -> ScanBufs<T, P> {
        let t = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
        let p = |v: &[f32]| v.iter().map(|&x| P::from_f32(x)).collect::<Vec<P>>();
        ScanBufs {
            u: t(&self.u),
            delta: t(&self.delta),
            a: p(&self.a),
            b: t(&self.b),
            c: t(&self.c),
            d: self.d.as_deref().map(p),
            z: self.z.as_deref().map(t),
            bias: self.bias.as_deref().map(p),
            init: self.init.as_deref().map(p),
        }
    }

    /// The oracle's forward: (out, last_state).
    pub fn oracle_forward(&self) -> (Vec<f64>, Vec<f64>) {
        let bufs = self.bufs::<f64, f64>();
        let args = self.args(&bufs);
        let s = &self.shape;
        let mut out = vec![0.0; s.batch * s.dim * s.seqlen];
        let mut last = vec![0.0; s.batch * s.dim * s.dstate];
        Reference::oracle()
            .selective_scan(&args, &mut out, Some(&mut last))
            .expect("oracle");
        (out, last)
    }

    /// The oracle's gradients.
    pub fn oracle_backward(&self) -> SelectiveScanGrads<f64, f64> {
        let bufs = self.bufs::<f64, f64>();
        let args = self.args(&bufs);
        let dout = wide(&self.dout);
        let dlast = wide_opt(&self.dlast);
        Reference::oracle()
            .selective_scan_backward(&args, &dout, dlast.as_deref())
            .expect("oracle")
    }

    /// Runs the forward on `be` with storage `T`: (out, last_state).
    pub fn forward<T: Element, B: Kernels<T>>(&self, be: &B) -> (Vec<T>, Vec<f32>) {
        let bufs = self.bufs::<T, f32>();
        let args = self.args(&bufs);
        let s = &self.shape;
        let mut out = vec![T::default(); s.batch * s.dim * s.seqlen];
        let mut last = vec![0.0; s.batch * s.dim * s.dstate];
        be.selective_scan(&args, &mut out, Some(&mut last))
            .expect("forward");
        (out, last)
    }

    /// Runs the backward on `be` with storage `T`.
    pub fn backward<T: Element, B: Kernels<T>>(&self, be: &B) -> SelectiveScanGrads<T, f32> {
        let bufs = self.bufs::<T, f32>();
        let args = self.args(&bufs);
        let dout = narrow::<T>(&self.dout);
        be.selective_scan_backward(&args, &dout, self.dlast.as_deref())
            .expect("backward")
    }

    /// Checks forward and backward on `be` (f32 storage) against the oracle.
    pub fn check(&self, be: &mamba_cpu_simd::CpuSimd) {
        let what = format!("{:?} on {} x{}", self.shape, be.simd_level(), be.threads());
        let (out, last) = self.forward::<f32, _>(be);
        let expected = self.oracle_forward();
        check_forward(
            &what,
            ["out", "last_state"],
            (&out, &last),
            &expected,
            |k| self.jittered(k).oracle_forward(),
        );
        let g = self.backward::<f32, _>(be);
        let e = self.oracle_backward();
        let gc = GradCheck::new(&what, |k| self.jittered(k).oracle_backward());
        gc.check("du", &g.u, &e.u, |j| Some(&j.u));
        gc.check("ddelta", &g.delta, &e.delta, |j| Some(&j.delta));
        gc.check("dA", &g.a, &e.a, |j| Some(&j.a));
        gc.check("dB", &g.b, &e.b, |j| Some(&j.b));
        gc.check("dC", &g.c, &e.c, |j| Some(&j.c));
        gc.check_opt("dD", &g.d, &e.d, |j| j.d.as_deref());
        gc.check_opt("dz", &g.z, &e.z, |j| j.z.as_deref());
        gc.check_opt("ddelta_bias", &g.delta_bias, &e.delta_bias, |j| {
            j.delta_bias.as_deref()
        });
        gc.check_opt("dinitial_state", &g.initial_state, &e.initial_state, |j| {
            j.initial_state.as_deref()
        });
    }

    /// The case with every input moved by one f32 rounding ([`jitter`]), draw `k`.
    pub fn jittered(&self, k: u64) -> Self {
        let mut c = self.clone();
        jitter(
            0x6a17_7e55 + k,
            &mut [
                &mut c.u,
                &mut c.delta,
                &mut c.a,
                &mut c.b,
                &mut c.c,
                &mut c.dout,
            ],
            &mut [&mut c.d, &mut c.z, &mut c.bias, &mut c.init, &mut c.dlast],
        );
        c
    }
}

/// A case's buffers in storage type `T` and parameter type `P`.
pub struct ScanBufs<T, P> {
    pub u: Vec<T>,
    pub delta: Vec<T>,
    pub a: Vec<P>,
    pub b: Vec<T>,
    pub c: Vec<T>,
    pub d: Option<Vec<P>>,
    pub z: Option<Vec<T>>,
    pub bias: Option<Vec<P>>,
    pub init: Option<Vec<P>>,
}

/// A tensor of any rank up to 4 from a dims slice.
pub fn tensor<'a, T>(data: &'a [T], dims: &[usize]) -> Tensor<'a, T> {
    match *dims {
        [a] => Tensor::new(data, [a]),
        [a, b] => Tensor::new(data, [a, b]),
        [a, b, c] => Tensor::new(data, [a, b, c]),
        [a, b, c, d] => Tensor::new(data, [a, b, c, d]),
        _ => panic!("unsupported rank {}", dims.len()),
    }
}

// ---------------------------------------------------------------------------------
// ssd

use mamba_core::{SsdArgs, SsdGrads};

/// Where `D` of an SSD case is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    None,
    PerHead,
    PerChannel,
}

/// The shape and options of an SSD case.
#[derive(Clone, Copy, Debug)]
pub struct SsdShape {
    pub batch: usize,
    pub seqlen: usize,
    pub nheads: usize,
    pub headdim: usize,
    pub ngroups: usize,
    pub dstate: usize,
    pub d: Skip,
    pub z: bool,
    pub bias: bool,
    pub init: bool,
    /// Number of packed sequences per batch row (1: no seq_idx).
    pub seqs: usize,
    pub softplus: bool,
    pub limit: Option<(f32, f32)>,
    pub chunk_size: usize,
    pub dfinal: bool,
}

#[derive(Clone, Debug)]
pub struct SsdCase {
    pub shape: SsdShape,
    pub x: Vec<f32>,
    pub dt: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub d: Option<Vec<f32>>,
    pub z: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
    pub init: Option<Vec<f32>>,
    pub seq_idx: Option<Vec<i32>>,
    pub dout: Vec<f32>,
    pub dfinal: Option<Vec<f32>>,
}

pub struct SsdBufs<T, P> {
    pub x: Vec<T>,
    pub dt: Vec<T>,
    pub a: Vec<P>,
    pub b: Vec<T>,
    pub c: Vec<T>,
    pub d: Option<Vec<P>>,
    pub z: Option<Vec<T>>,
    pub bias: Option<Vec<P>>,
    pub init: Option<Vec<P>>,
}

impl SsdCase {
    pub fn random(shape: SsdShape, seed: u64) -> SsdCase {
        let mut rng = Rng::new(seed);
        let s = shape;
        let io = s.batch * s.seqlen * s.nheads * s.headdim;
        let bc = s.batch * s.seqlen * s.ngroups * s.dstate;
        let st = s.batch * s.nheads * s.headdim * s.dstate;
        let dt = if s.softplus {
            rng.vec(s.batch * s.seqlen * s.nheads, -4.0, 1.0)
        } else {
            rng.vec(s.batch * s.seqlen * s.nheads, 0.001, 0.3)
        };
        let seq_idx = (s.seqs > 1).then(|| {
            // Non-decreasing ids with up to `seqs` segments per batch row, cut at
            // random points.
            let mut ids = Vec::with_capacity(s.batch * s.seqlen);
            for _ in 0..s.batch {
                let mut cuts: Vec<usize> = (0..s.seqs - 1).map(|_| rng.below(s.seqlen)).collect();
                cuts.sort_unstable();
                for t in 0..s.seqlen {
                    ids.push(cuts.iter().filter(|&&c| c < t).count() as i32 * 3);
                }
            }
            ids
        });
        SsdCase {
            shape,
            x: rng.vec(io, -1.0, 1.0),
            dt,
            a: rng.vec(s.nheads, -2.0, -0.2),
            b: rng.vec(bc, -1.0, 1.0),
            c: rng.vec(bc, -1.0, 1.0),
            d: match s.d {
                Skip::None => None,
                Skip::PerHead => Some(rng.vec(s.nheads, -1.0, 1.0)),
                Skip::PerChannel => Some(rng.vec(s.nheads * s.headdim, -1.0, 1.0)),
            },
            z: s.z.then(|| rng.vec(io, -3.0, 3.0)),
            // Without softplus the step is dt + bias itself and must stay positive.
            bias: s.bias.then(|| {
                if s.softplus {
                    rng.vec(s.nheads, -1.0, 0.5)
                } else {
                    rng.vec(s.nheads, 0.0, 0.1)
                }
            }),
            init: s.init.then(|| rng.vec(st, -1.0, 1.0)),
            seq_idx,
            dout: rng.vec(io, -1.0, 1.0),
            dfinal: s.dfinal.then(|| rng.vec(st, -1.0, 1.0)),
        }
    }

    pub fn bufs<T: Element, P: Element>(&self) -> SsdBufs<T, P> {
        let t = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
        let p = |v: &[f32]| v.iter().map(|&x| P::from_f32(x)).collect::<Vec<P>>();
        SsdBufs {
            x: t(&self.x),
            dt: t(&self.dt),
            a: p(&self.a),
            b: t(&self.b),
            c: t(&self.c),
            d: self.d.as_deref().map(p),
            z: self.z.as_deref().map(t),
            bias: self.bias.as_deref().map(p),
            init: self.init.as_deref().map(p),
        }
    }

    pub fn args<'a, T: Element, P: Element>(
        &'a self,
        bufs: &'a SsdBufs<T, P>,
    ) -> SsdArgs<'a, T, P> {
        let s = &self.shape;
        let io = [s.batch, s.seqlen, s.nheads, s.headdim];
        let bc = [s.batch, s.seqlen, s.ngroups, s.dstate];
        let mut args = SsdArgs::new(
            Tensor::new(&bufs.x, io),
            Tensor::new(&bufs.dt, [s.batch, s.seqlen, s.nheads]),
            Tensor::new(&bufs.a, [s.nheads]),
            Tensor::new(&bufs.b, bc),
            Tensor::new(&bufs.c, bc),
        )
        .with_dt_softplus(s.softplus)
        .with_chunk_size(s.chunk_size);
        if let Some((lo, hi)) = s.limit {
            args = args.with_dt_limit(lo, hi);
        }
        match (&bufs.d, s.d) {
            (Some(d), Skip::PerHead) => args = args.with_d(Tensor::new(d, [s.nheads])),
            (Some(d), Skip::PerChannel) => {
                args = args.with_d(Tensor::new(d, [s.nheads, s.headdim]))
            }
            _ => {}
        }
        if let Some(z) = &bufs.z {
            args = args.with_z(Tensor::new(z, io));
        }
        if let Some(b) = &bufs.bias {
            args = args.with_dt_bias(Tensor::new(b, [s.nheads]));
        }
        if let Some(h) = &bufs.init {
            args =
                args.with_initial_states(Tensor::new(h, [s.batch, s.nheads, s.headdim, s.dstate]));
        }
        if let Some(q) = &self.seq_idx {
            args = args.with_seq_idx(Tensor::new(q, [s.batch, s.seqlen]));
        }
        args
    }

    fn io_len(&self) -> usize {
        let s = &self.shape;
        s.batch * s.seqlen * s.nheads * s.headdim
    }

    fn state_len(&self) -> usize {
        let s = &self.shape;
        s.batch * s.nheads * s.headdim * s.dstate
    }

    pub fn oracle_forward(&self) -> (Vec<f64>, Vec<f64>) {
        let bufs = self.bufs::<f64, f64>();
        let args = self.args(&bufs);
        let mut out = vec![0.0; self.io_len()];
        let mut last = vec![0.0; self.state_len()];
        Reference::oracle()
            .ssd(&args, &mut out, Some(&mut last))
            .expect("oracle");
        (out, last)
    }

    pub fn oracle_backward(&self) -> SsdGrads<f64, f64> {
        let bufs = self.bufs::<f64, f64>();
        let args = self.args(&bufs);
        let dfinal = wide_opt(&self.dfinal);
        Reference::oracle()
            .ssd_backward(&args, &wide(&self.dout), dfinal.as_deref())
            .expect("oracle")
    }

    pub fn forward<T: Element, B: Kernels<T>>(&self, be: &B) -> (Vec<T>, Vec<f32>) {
        let bufs = self.bufs::<T, f32>();
        let args = self.args(&bufs);
        let mut out = vec![T::default(); self.io_len()];
        let mut last = vec![0.0; self.state_len()];
        be.ssd(&args, &mut out, Some(&mut last)).expect("forward");
        (out, last)
    }

    pub fn backward<T: Element, B: Kernels<T>>(&self, be: &B) -> SsdGrads<T, f32> {
        let bufs = self.bufs::<T, f32>();
        let args = self.args(&bufs);
        be.ssd_backward(&args, &narrow::<T>(&self.dout), self.dfinal.as_deref())
            .expect("backward")
    }

    pub fn check(&self, be: &mamba_cpu_simd::CpuSimd) {
        let what = format!("{:?} on {} x{}", self.shape, be.simd_level(), be.threads());
        let (out, last) = self.forward::<f32, _>(be);
        let expected = self.oracle_forward();
        check_forward(
            &what,
            ["out", "final_states"],
            (&out, &last),
            &expected,
            |k| self.jittered(k).oracle_forward(),
        );
        let g = self.backward::<f32, _>(be);
        let e = self.oracle_backward();
        let gc = GradCheck::new(&what, |k| self.jittered(k).oracle_backward());
        gc.check("dx", &g.x, &e.x, |j| Some(&j.x));
        gc.check("ddt", &g.dt, &e.dt, |j| Some(&j.dt));
        gc.check("dA", &g.a, &e.a, |j| Some(&j.a));
        gc.check("dB", &g.b, &e.b, |j| Some(&j.b));
        gc.check("dC", &g.c, &e.c, |j| Some(&j.c));
        gc.check_opt("dD", &g.d, &e.d, |j| j.d.as_deref());
        gc.check_opt("dz", &g.z, &e.z, |j| j.z.as_deref());
        gc.check_opt("ddt_bias", &g.dt_bias, &e.dt_bias, |j| j.dt_bias.as_deref());
        gc.check_opt(
            "dinitial_states",
            &g.initial_states,
            &e.initial_states,
            |j| j.initial_states.as_deref(),
        );
    }

    /// The case with every input moved by one f32 rounding ([`jitter`]), draw `k`.
    pub fn jittered(&self, k: u64) -> Self {
        let mut c = self.clone();
        jitter(
            0x55d_7e55 + k,
            &mut [
                &mut c.x,
                &mut c.dt,
                &mut c.a,
                &mut c.b,
                &mut c.c,
                &mut c.dout,
            ],
            &mut [&mut c.d, &mut c.z, &mut c.bias, &mut c.init, &mut c.dfinal],
        );
        c
    }
}

// ---------------------------------------------------------------------------------
// causal_conv1d and the decode steps

use mamba_core::{
    Activation, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs, ConvLayout,
    SelectiveStateUpdateArgs, TensorMut,
};

#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub batch: usize,
    pub channels: usize,
    pub seqlen: usize,
    pub width: usize,
    pub bias: bool,
    pub init: bool,
    pub silu: bool,
    pub channel_last: bool,
    pub dfinal: bool,
}

#[derive(Clone, Debug)]
pub struct ConvCase {
    pub shape: ConvShape,
    pub x: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub init: Option<Vec<f32>>,
    pub dout: Vec<f32>,
    pub dfinal: Option<Vec<f32>>,
}

impl ConvCase {
    pub fn random(shape: ConvShape, seed: u64) -> ConvCase {
        let mut rng = Rng::new(seed);
        let s = shape;
        let io = s.batch * s.channels * s.seqlen;
        let st = s.batch * s.channels * (s.width - 1);
        ConvCase {
            shape,
            x: rng.vec(io, -2.0, 2.0),
            weight: rng.vec(s.channels * s.width, -1.0, 1.0),
            bias: s.bias.then(|| rng.vec(s.channels, -1.0, 1.0)),
            init: s.init.then(|| rng.vec(st, -2.0, 2.0)),
            dout: rng.vec(io, -1.0, 1.0),
            dfinal: s.dfinal.then(|| rng.vec(st, -1.0, 1.0)),
        }
    }

    fn x_dims(&self) -> [usize; 3] {
        let s = &self.shape;
        if s.channel_last {
            [s.batch, s.seqlen, s.channels]
        } else {
            [s.batch, s.channels, s.seqlen]
        }
    }

    fn run<T: Element, P: Element, R>(
        &self,
        f: impl FnOnce(&CausalConv1dArgs<'_, T, P>) -> R,
    ) -> R {
        let s = &self.shape;
        let x = narrow::<T>(&self.x);
        let w: Vec<P> = self.weight.iter().map(|&v| P::from_f32(v)).collect();
        let bias: Option<Vec<P>> = self
            .bias
            .as_ref()
            .map(|b| b.iter().map(|&v| P::from_f32(v)).collect());
        let init: Option<Vec<P>> = self
            .init
            .as_ref()
            .map(|b| b.iter().map(|&v| P::from_f32(v)).collect());
        let mut args = CausalConv1dArgs::new(
            Tensor::new(&x, self.x_dims()),
            Tensor::new(&w, [s.channels, s.width]),
        )
        .with_activation(if s.silu {
            Activation::Silu
        } else {
            Activation::None
        })
        .with_layout(if s.channel_last {
            ConvLayout::ChannelLast
        } else {
            ConvLayout::ChannelFirst
        });
        if let Some(b) = &bias {
            args = args.with_bias(Tensor::new(b, [s.channels]));
        }
        if let Some(h) = &init {
            args = args.with_initial_states(Tensor::new(h, [s.batch, s.channels, s.width - 1]));
        }
        f(&args)
    }

    fn state_len(&self) -> usize {
        let s = &self.shape;
        s.batch * s.channels * (s.width - 1)
    }

    pub fn oracle_forward(&self) -> (Vec<f64>, Vec<f64>) {
        self.run::<f64, f64, _>(|args| {
            let mut out = vec![0.0; self.x.len()];
            let mut last = vec![0.0; self.state_len()];
            Reference::oracle()
                .causal_conv1d(args, &mut out, Some(&mut last))
                .expect("oracle");
            (out, last)
        })
    }

    pub fn oracle_backward(&self) -> CausalConv1dGrads<f64, f64> {
        let dfinal = wide_opt(&self.dfinal);
        self.run::<f64, f64, _>(|args| {
            Reference::oracle()
                .causal_conv1d_backward(args, &wide(&self.dout), dfinal.as_deref())
                .expect("oracle")
        })
    }

    pub fn forward<T: Element, B: Kernels<T>>(&self, be: &B) -> (Vec<T>, Vec<f32>) {
        self.run::<T, f32, _>(|args| {
            let mut out = vec![T::default(); self.x.len()];
            let mut last = vec![0.0; self.state_len()];
            be.causal_conv1d(args, &mut out, Some(&mut last))
                .expect("forward");
            (out, last)
        })
    }

    pub fn backward<T: Element, B: Kernels<T>>(&self, be: &B) -> CausalConv1dGrads<T, f32> {
        self.run::<T, f32, _>(|args| {
            be.causal_conv1d_backward(args, &narrow::<T>(&self.dout), self.dfinal.as_deref())
                .expect("backward")
        })
    }

    pub fn check(&self, be: &mamba_cpu_simd::CpuSimd) {
        let what = format!("{:?} on {} x{}", self.shape, be.simd_level(), be.threads());
        let (out, last) = self.forward::<f32, _>(be);
        let expected = self.oracle_forward();
        check_forward(
            &what,
            ["out", "final_states"],
            (&out, &last),
            &expected,
            |k| self.jittered(k).oracle_forward(),
        );
        let g = self.backward::<f32, _>(be);
        let e = self.oracle_backward();
        let gc = GradCheck::new(&what, |k| self.jittered(k).oracle_backward());
        gc.check("dx", &g.x, &e.x, |j| Some(&j.x));
        gc.check("dweight", &g.weight, &e.weight, |j| Some(&j.weight));
        gc.check_opt("dbias", &g.bias, &e.bias, |j| j.bias.as_deref());
        gc.check_opt(
            "dinitial_states",
            &g.initial_states,
            &e.initial_states,
            |j| j.initial_states.as_deref(),
        );
    }

    /// The case with every input moved by one f32 rounding ([`jitter`]), draw `k`.
    pub fn jittered(&self, k: u64) -> Self {
        let mut c = self.clone();
        jitter(
            0xc0_7e55 + k,
            &mut [&mut c.x, &mut c.weight, &mut c.dout],
            &mut [&mut c.bias, &mut c.init, &mut c.dfinal],
        );
        c
    }
}

/// A decode step of SPEC 4: Mamba-1 (`headdim == 0` means the (b, d) layout) or
/// multi-head.
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub batch: usize,
    pub nheads: usize,
    /// 0: the Mamba-1 layout.
    pub headdim: usize,
    pub ngroups: usize,
    pub dstate: usize,
    pub d: bool,
    pub z: bool,
    pub bias: bool,
    pub softplus: bool,
    pub limit: Option<(f32, f32)>,
}

#[derive(Clone, Debug)]
pub struct StepCase {
    pub shape: StepShape,
    pub x: Vec<f32>,
    pub dt: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub d: Option<Vec<f32>>,
    pub z: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
    pub state: Vec<f32>,
}

impl StepCase {
    /// The case with every input moved by one f32 rounding ([`jitter`]), draw `k`.
    pub fn jittered(&self, k: u64) -> Self {
        let mut c = self.clone();
        jitter(
            0x57e9_7e55 + k,
            &mut [
                &mut c.x,
                &mut c.dt,
                &mut c.a,
                &mut c.b,
                &mut c.c,
                &mut c.state,
            ],
            &mut [&mut c.d, &mut c.z, &mut c.bias],
        );
        c
    }

    pub fn random(shape: StepShape, seed: u64) -> StepCase {
        let mut rng = Rng::new(seed);
        let s = shape;
        let rows = s.nheads * s.headdim.max(1);
        let xs = s.batch * rows;
        StepCase {
            shape,
            x: rng.vec(xs, -1.0, 1.0),
            dt: rng.vec(xs, -3.0, 1.0),
            a: rng.vec(rows * s.dstate, -3.0, -0.1),
            b: rng.vec(s.batch * s.ngroups * s.dstate, -1.0, 1.0),
            c: rng.vec(s.batch * s.ngroups * s.dstate, -1.0, 1.0),
            d: s.d.then(|| rng.vec(rows, -1.0, 1.0)),
            z: s.z.then(|| rng.vec(xs, -3.0, 3.0)),
            bias: s.bias.then(|| rng.vec(rows, -1.0, 0.5)),
            state: rng.vec(xs * s.dstate, -1.0, 1.0),
        }
    }

    fn run<T: Element, P: Element, R>(
        &self,
        f: impl FnOnce(&SelectiveStateUpdateArgs<'_, T, P>) -> R,
    ) -> R {
        let s = &self.shape;
        let x = narrow::<T>(&self.x);
        let dt = narrow::<T>(&self.dt);
        let b = narrow::<T>(&self.b);
        let c = narrow::<T>(&self.c);
        let z = self.z.as_ref().map(|v| narrow::<T>(v));
        let p = |v: &[f32]| v.iter().map(|&x| P::from_f32(x)).collect::<Vec<P>>();
        let a = p(&self.a);
        let d = self.d.as_deref().map(p);
        let bias = self.bias.as_deref().map(p);
        let (xd, pd, ad): (Vec<usize>, Vec<usize>, Vec<usize>) = if s.headdim == 0 {
            (
                vec![s.batch, s.nheads],
                vec![s.nheads],
                vec![s.nheads, s.dstate],
            )
        } else {
            (
                vec![s.batch, s.nheads, s.headdim],
                vec![s.nheads, s.headdim],
                vec![s.nheads, s.headdim, s.dstate],
            )
        };
        let bd: Vec<usize> = if s.headdim == 0 && s.ngroups == 1 {
            vec![s.batch, s.dstate]
        } else {
            vec![s.batch, s.ngroups, s.dstate]
        };
        let mut args = SelectiveStateUpdateArgs::new(
            tensor(&x, &xd),
            tensor(&dt, &xd),
            tensor(&a, &ad),
            tensor(&b, &bd),
            tensor(&c, &bd),
        )
        .with_dt_softplus(s.softplus);
        if let Some((lo, hi)) = s.limit {
            args = args.with_dt_limit(lo, hi);
        }
        if let Some(d) = &d {
            args = args.with_d(tensor(d, &pd));
        }
        if let Some(z) = &z {
            args = args.with_z(tensor(z, &xd));
        }
        if let Some(bias) = &bias {
            args = args.with_dt_bias(tensor(bias, &pd));
        }
        f(&args)
    }

    /// The oracle's (out, new state).
    pub fn oracle(&self) -> (Vec<f64>, Vec<f64>) {
        self.run::<f64, f64, _>(|args| {
            let mut state = wide(&self.state);
            let mut out = vec![0.0; self.x.len()];
            Reference::oracle()
                .selective_state_update(args, &mut state, &mut out)
                .expect("oracle");
            (out, state)
        })
    }

    pub fn step<T: Element, B: Kernels<T>>(&self, be: &B) -> (Vec<T>, Vec<f32>) {
        self.run::<T, f32, _>(|args| {
            let mut state = self.state.clone();
            let mut out = vec![T::default(); self.x.len()];
            be.selective_state_update(args, &mut state, &mut out)
                .expect("step");
            (out, state)
        })
    }

    pub fn check(&self, be: &mamba_cpu_simd::CpuSimd) {
        let what = format!("{:?} on {} x{}", self.shape, be.simd_level(), be.threads());
        let (out, state) = self.step::<f32, _>(be);
        let expected = self.oracle();
        check_forward(&what, ["out", "state"], (&out, &state), &expected, |k| {
            self.jittered(k).oracle()
        });
    }
}

/// A convolution decode step of SPEC 5.
#[derive(Clone, Debug)]
pub struct ConvStepCase {
    pub batch: usize,
    pub channels: usize,
    pub state_len: usize,
    pub steps: usize,
    pub width: usize,
    pub silu: bool,
    pub x: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub state: Vec<f32>,
}

impl ConvStepCase {
    /// The case with every input moved by one f32 rounding ([`jitter`]), draw `k`.
    pub fn jittered(&self, k: u64) -> Self {
        let mut c = self.clone();
        jitter(
            0xc57_7e55 + k,
            &mut [&mut c.x, &mut c.weight, &mut c.state],
            &mut [&mut c.bias],
        );
        c
    }

    #[allow(clippy::too_many_arguments)]
    pub fn random(
        batch: usize,
        channels: usize,
        state_len: usize,
        steps: usize,
        width: usize,
        bias: bool,
        silu: bool,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        ConvStepCase {
            batch,
            channels,
            state_len,
            steps,
            width,
            silu,
            x: rng.vec(batch * channels * steps, -2.0, 2.0),
            weight: rng.vec(channels * width, -1.0, 1.0),
            bias: bias.then(|| rng.vec(channels, -1.0, 1.0)),
            state: rng.vec(batch * channels * state_len, -2.0, 2.0),
        }
    }

    fn run<T: Element, P: Element, R>(
        &self,
        f: impl FnOnce(&CausalConv1dUpdateArgs<'_, T, P>) -> R,
    ) -> R {
        let x = narrow::<T>(&self.x);
        let w: Vec<P> = self.weight.iter().map(|&v| P::from_f32(v)).collect();
        let bias: Option<Vec<P>> = self
            .bias
            .as_ref()
            .map(|b| b.iter().map(|&v| P::from_f32(v)).collect());
        let xt = if self.steps == 1 {
            Tensor::new(&x[..], [self.batch, self.channels])
        } else {
            Tensor::new(&x[..], [self.batch, self.channels, self.steps])
        };
        let mut args =
            CausalConv1dUpdateArgs::new(xt, Tensor::new(&w, [self.channels, self.width]))
                .with_activation(if self.silu {
                    Activation::Silu
                } else {
                    Activation::None
                });
        if let Some(b) = &bias {
            args = args.with_bias(Tensor::new(b, [self.channels]));
        }
        f(&args)
    }

    pub fn oracle(&self) -> (Vec<f64>, Vec<f64>) {
        self.run::<f64, f64, _>(|args| {
            let mut state = wide(&self.state);
            let mut out = vec![0.0; self.x.len()];
            let st = TensorMut::new(&mut state[..], [self.batch, self.channels, self.state_len]);
            Reference::oracle()
                .causal_conv1d_update(args, st, &mut out)
                .expect("oracle");
            (out, state)
        })
    }

    pub fn step<T: Element, B: Kernels<T>>(&self, be: &B) -> (Vec<T>, Vec<f32>) {
        self.run::<T, f32, _>(|args| {
            let mut state = self.state.clone();
            let mut out = vec![T::default(); self.x.len()];
            let st = TensorMut::new(&mut state[..], [self.batch, self.channels, self.state_len]);
            be.causal_conv1d_update(args, st, &mut out).expect("step");
            (out, state)
        })
    }

    pub fn check(&self, be: &mamba_cpu_simd::CpuSimd) {
        let what = format!(
            "conv update b{} c{} S{} Ln{} W{} on {}",
            self.batch,
            self.channels,
            self.state_len,
            self.steps,
            self.width,
            be.simd_level()
        );
        let (out, state) = self.step::<f32, _>(be);
        let expected = self.oracle();
        check_forward(&what, ["out", "state"], (&out, &state), &expected, |k| {
            self.jittered(k).oracle()
        });
    }
}
