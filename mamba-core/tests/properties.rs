//! Property tests of the reference backend over random shapes and options.
//!
//! - `Reference<f32>` (the backend under test) against the `f64` oracle, forward and
//!   backward, and the streaming, decode and chunk-size properties of
//!   `mamba_core::testing`.
//! - The `f64` oracle's gradients (`T = P = f64`) against central finite differences
//!   of `loss = sum(dout * out) + sum(dstate * state)`, for every input that has a
//!   gradient, along random directions and at random coordinates.
#![cfg(feature = "testing")]

use mamba_core::math::{softplus, SOFTPLUS_THRESHOLD};
use mamba_core::testing::{
    check_causal_conv1d, check_causal_conv1d_streaming, check_conv_update,
    check_conv_update_vs_conv, check_selective_scan, check_selective_scan_streaming, check_ssd,
    check_ssd_chunk_sizes, check_ssd_streaming, check_state_update, check_state_update_vs_scan,
    check_state_update_vs_ssd, BcKind, CheckResult, ConvCase, ConvConfig, ConvUpdateCase,
    ConvUpdateConfig, DShape, Rng, ScanCase, ScanConfig, SsdCase, SsdConfig, StateUpdateCase,
    StateUpdateConfig, Tolerance, UpdateLayout, SSD_CHUNK_SIZES,
};
use mamba_core::{
    Activation, CausalConv1dGrads, ConvLayout, Kernels, Reference, SelectiveScanGrads, SsdGrads,
};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::RngSeed;

/// 24 cases per property from a fixed seed, so that a run is reproducible and a
/// tolerance is never failed by chance on one run and not the next (the whole file runs
/// in well under a second). `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override both, for
/// a longer or different search.
fn config() -> ProptestConfig {
    let env = |name: &str| std::env::var_os(name).is_some();
    let mut config = ProptestConfig {
        // Failures print their (shrunk) input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if !env("PROPTEST_CASES") {
        config.cases = 24;
    }
    if !env("PROPTEST_RNG_SEED") {
        config.rng_seed = RngSeed::Fixed(0x6d61_6d62_6132);
    }
    config
}

fn reference() -> Reference<f32> {
    Reference::new()
}

/// Turns a check's outcome into a proptest outcome.
fn pass(r: CheckResult) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(f) => Err(TestCaseError::fail(f.to_string())),
    }
}

/// A split point in `1..L` (any value when `L < 2`; the checks then compare nothing).
fn split_of(l: usize, idx: &Index) -> usize {
    if l < 2 {
        1
    } else {
        1 + idx.index(l - 1)
    }
}

// ---------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|k| n.is_multiple_of(*k)).collect()
}

fn bc_kind(dim: usize) -> impl Strategy<Value = BcKind> {
    prop_oneof![
        Just(BcKind::Shared),
        Just(BcKind::Varying),
        select(divisors(dim)).prop_map(BcKind::Grouped),
    ]
}

fn scan_config() -> impl Strategy<Value = ScanConfig> {
    (1..=2usize, 1..=3usize, 1..=2usize, 1..=8usize, 1..=4usize)
        .prop_flat_map(|(b, g, k, l, n)| {
            let dim = g * k;
            (
                Just((b, dim, l, n)),
                bc_kind(dim),
                bc_kind(dim),
                any::<[bool; 6]>(),
                proptest::bool::weighted(0.25),
            )
        })
        .prop_map(|((b, d, l, n), bk, ck, f, big)| ScanConfig {
            b_kind: bk,
            c_kind: ck,
            d: f[0],
            z: f[1],
            delta_bias: f[2],
            initial_state: f[3],
            delta_softplus: f[4],
            dlast_state: f[5],
            big_steps: big,
            ..ScanConfig::new(b, d, l, n)
        })
}

fn dt_limit() -> impl Strategy<Value = Option<(f32, f32)>> {
    prop_oneof![
        2 => Just(None),
        1 => (0.005f32..0.05, 0.1f32..0.4).prop_map(Some),
    ]
}

fn ssd_config() -> impl Strategy<Value = SsdConfig> {
    (1..=2usize, 1..=9usize, 1..=4usize, 1..=3usize, 1..=4usize)
        .prop_flat_map(|(b, l, h, p, n)| {
            (
                Just((b, l, h, p, n)),
                select(divisors(h)),
                prop_oneof![
                    Just(None),
                    Just(Some(DShape::PerHead)),
                    Just(Some(DShape::PerChannel))
                ],
                any::<[bool; 6]>(),
                dt_limit(),
                prop_oneof![1..=8usize, Just(256usize)],
                proptest::bool::weighted(0.25),
            )
        })
        .prop_map(|((b, l, h, p, n), g, d, f, limit, cs, big)| SsdConfig {
            d,
            z: f[0],
            dt_bias: f[1],
            initial_states: f[2],
            seq_idx: f[3],
            dt_softplus: f[4],
            dt_limit: limit,
            chunk_size: cs,
            dfinal_states: f[5],
            big_steps: big,
            ..SsdConfig::new(b, l, h, p, g, n)
        })
}

fn conv_config() -> impl Strategy<Value = ConvConfig> {
    (
        1..=2usize,
        1..=4usize,
        1..=8usize,
        1..=5usize,
        any::<[bool; 5]>(),
    )
        .prop_map(|(b, c, l, w, f)| ConvConfig {
            bias: f[0],
            initial_states: f[1],
            activation: if f[2] {
                Activation::Silu
            } else {
                Activation::None
            },
            layout: if f[3] {
                ConvLayout::ChannelLast
            } else {
                ConvLayout::ChannelFirst
            },
            dfinal_states: f[4],
            ..ConvConfig::new(b, c, l, w)
        })
}

fn update_layout() -> impl Strategy<Value = UpdateLayout> {
    prop_oneof![
        (1..=6usize)
            .prop_flat_map(|d| (Just(d), proptest::option::of(select(divisors(d)))))
            .prop_map(|(dim, groups)| UpdateLayout::Mamba1 { dim, groups }),
        (1..=4usize, 1..=3usize)
            .prop_flat_map(|(h, p)| (Just((h, p)), select(divisors(h))))
            .prop_map(|((nheads, headdim), ngroups)| UpdateLayout::Multihead {
                nheads,
                headdim,
                ngroups
            }),
    ]
}

fn state_update_config() -> impl Strategy<Value = StateUpdateConfig> {
    (
        1..=3usize,
        update_layout(),
        1..=5usize,
        any::<[bool; 4]>(),
        dt_limit(),
    )
        .prop_map(|(batch, layout, dstate, f, limit)| StateUpdateConfig {
            batch,
            layout,
            dstate,
            d: f[0],
            z: f[1],
            dt_bias: f[2],
            dt_softplus: f[3],
            dt_limit: limit,
        })
}

fn conv_update_config() -> impl Strategy<Value = ConvUpdateConfig> {
    (
        1..=2usize,
        1..=4usize,
        1..=5usize,
        0..=3usize,
        proptest::option::of(1..=4usize),
        any::<[bool; 2]>(),
    )
        .prop_map(
            |(batch, channels, width, extra, steps, f)| ConvUpdateConfig {
                batch,
                channels,
                width,
                state_len: width - 1 + extra,
                steps,
                bias: f[0],
                activation: if f[1] {
                    Activation::Silu
                } else {
                    Activation::None
                },
            },
        )
}

// ---------------------------------------------------------------------------------
// Finite differences of the f64 oracle
// ---------------------------------------------------------------------------------

const FD_STEP: f64 = 1e-6;
/// Relative to `||grad|| * ||direction||` (the largest a directional derivative can be).
const FD_REL_TOL: f64 = 1e-6;

/// A case whose loss the oracle evaluates and differentiates, all in `f64`.
trait Differentiable: Clone {
    type Grads;
    /// `sum(dout * out) + sum(dstate * state)`, and the sum of the absolute values of
    /// its terms (which sets the rounding error of the loss).
    fn loss_and_scale(&self) -> (f64, f64);
    fn loss(&self) -> f64 {
        self.loss_and_scale().0
    }
    /// The oracle's gradients of [`Differentiable::loss`].
    fn grads(&self) -> Self::Grads;
    /// The inputs that have a gradient, as given in this case.
    fn inputs(&self) -> Vec<&'static str>;
    fn input_mut(&mut self, name: &str) -> &mut Vec<f64>;
    fn grad<'g>(g: &'g Self::Grads, name: &str) -> &'g [f64];
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `sum(a * b)` and `sum(|a * b|)`.
fn dot_and_scale(a: &[f64], b: &[f64]) -> (f64, f64) {
    a.iter()
        .zip(b)
        .fold((0.0, 0.0), |(s, m), (x, y)| (s + x * y, m + (x * y).abs()))
}

/// The loss and its scale from the output and the (optional) state terms.
fn loss_terms(out: &[f64], dout: &[f64], state: &[f64], dstate: Option<&[f64]>) -> (f64, f64) {
    let (l1, s1) = dot_and_scale(out, dout);
    let (l2, s2) = dstate.map_or((0.0, 0.0), |d| dot_and_scale(state, d));
    (l1 + l2, s1 + s2)
}

/// Central differences of the loss along two random directions and at two random
/// coordinates of every input, against the oracle's gradient.
fn fd_check<C: Differentiable>(case: &C, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let grads = case.grads();
    let (loss, loss_scale) = case.loss_and_scale();
    prop_assert!(loss.is_finite(), "loss {loss}");
    for name in case.inputs() {
        let g = C::grad(&grads, name).to_vec();
        let n = g.len();
        prop_assert!(n > 0);
        let mut directions: Vec<Vec<f64>> = (0..2)
            .map(|_| (0..n).map(|_| rng.normal()).collect())
            .collect();
        for _ in 0..2 {
            let mut e = vec![0.0; n];
            e[rng.below(n)] = 1.0;
            directions.push(e);
        }
        for v in directions {
            let shifted = |sign: f64| {
                let mut c = case.clone();
                for (x, dv) in c.input_mut(name).iter_mut().zip(&v) {
                    *x += sign * FD_STEP * dv;
                }
                c.loss()
            };
            let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * FD_STEP);
            let an = dot(&g, &v);
            let scale = norm(&g) * norm(&v);
            // The rounding of each loss is about 1e-16 times the sum of the absolute
            // values of its terms, divided by the step: 1e-10 of that sum, and 10x margin.
            let allowed = FD_REL_TOL * scale + 1e-9 * (1.0 + loss_scale);
            prop_assert!(
                (fd - an).abs() <= allowed,
                "d loss / d {name}: finite difference {fd:.10e}, gradient {an:.10e} \
                 (|diff| {:.3e} > {allowed:.3e}; ||grad|| {:.3e})",
                (fd - an).abs(),
                norm(&g)
            );
        }
    }
    Ok(())
}

type Scan64 = ScanCase<f64, f64>;

impl Differentiable for Scan64 {
    type Grads = SelectiveScanGrads<f64, f64>;
    fn loss_and_scale(&self) -> (f64, f64) {
        let mut out = vec![0.0; self.u.len()];
        let mut last = vec![0.0; self.batch * self.dim * self.dstate];
        Reference::<f64>::oracle()
            .selective_scan(&self.args(), &mut out, Some(&mut last))
            .unwrap();
        loss_terms(&out, &self.dout, &last, self.dlast_state.as_deref())
    }
    fn grads(&self) -> Self::Grads {
        Reference::<f64>::oracle()
            .selective_scan_backward(&self.args(), &self.dout, self.dlast_state.as_deref())
            .unwrap()
    }
    fn inputs(&self) -> Vec<&'static str> {
        let mut v = vec!["u", "delta", "A", "B", "C"];
        for (name, given) in [
            ("D", self.d.is_some()),
            ("z", self.z.is_some()),
            ("delta_bias", self.delta_bias.is_some()),
            ("initial_state", self.initial_state.is_some()),
        ] {
            if given {
                v.push(name);
            }
        }
        v
    }
    fn input_mut(&mut self, name: &str) -> &mut Vec<f64> {
        match name {
            "u" => &mut self.u,
            "delta" => &mut self.delta,
            "A" => &mut self.a,
            "B" => &mut self.b,
            "C" => &mut self.c,
            "D" => self.d.as_mut().unwrap(),
            "z" => self.z.as_mut().unwrap(),
            "delta_bias" => self.delta_bias.as_mut().unwrap(),
            "initial_state" => self.initial_state.as_mut().unwrap(),
            _ => unreachable!("{name}"),
        }
    }
    fn grad<'g>(g: &'g Self::Grads, name: &str) -> &'g [f64] {
        match name {
            "u" => &g.u,
            "delta" => &g.delta,
            "A" => &g.a,
            "B" => &g.b,
            "C" => &g.c,
            "D" => g.d.as_deref().unwrap(),
            "z" => g.z.as_deref().unwrap(),
            "delta_bias" => g.delta_bias.as_deref().unwrap(),
            "initial_state" => g.initial_state.as_deref().unwrap(),
            _ => unreachable!("{name}"),
        }
    }
}

type Ssd64 = SsdCase<f64, f64>;

impl Differentiable for Ssd64 {
    type Grads = SsdGrads<f64, f64>;
    fn loss_and_scale(&self) -> (f64, f64) {
        let mut out = vec![0.0; self.x.len()];
        let mut fin = vec![0.0; self.state_shape().iter().product()];
        Reference::<f64>::oracle()
            .ssd(&self.args(), &mut out, Some(&mut fin))
            .unwrap();
        loss_terms(&out, &self.dout, &fin, self.dfinal_states.as_deref())
    }
    fn grads(&self) -> Self::Grads {
        Reference::<f64>::oracle()
            .ssd_backward(&self.args(), &self.dout, self.dfinal_states.as_deref())
            .unwrap()
    }
    fn inputs(&self) -> Vec<&'static str> {
        let mut v = vec!["x", "dt", "A", "B", "C"];
        for (name, given) in [
            ("D", self.d.is_some()),
            ("z", self.z.is_some()),
            ("dt_bias", self.dt_bias.is_some()),
            ("initial_states", self.initial_states.is_some()),
        ] {
            if given {
                v.push(name);
            }
        }
        v
    }
    fn input_mut(&mut self, name: &str) -> &mut Vec<f64> {
        match name {
            "x" => &mut self.x,
            "dt" => &mut self.dt,
            "A" => &mut self.a,
            "B" => &mut self.b,
            "C" => &mut self.c,
            "D" => self.d.as_mut().unwrap(),
            "z" => self.z.as_mut().unwrap(),
            "dt_bias" => self.dt_bias.as_mut().unwrap(),
            "initial_states" => self.initial_states.as_mut().unwrap(),
            _ => unreachable!("{name}"),
        }
    }
    fn grad<'g>(g: &'g Self::Grads, name: &str) -> &'g [f64] {
        match name {
            "x" => &g.x,
            "dt" => &g.dt,
            "A" => &g.a,
            "B" => &g.b,
            "C" => &g.c,
            "D" => g.d.as_deref().unwrap(),
            "z" => g.z.as_deref().unwrap(),
            "dt_bias" => g.dt_bias.as_deref().unwrap(),
            "initial_states" => g.initial_states.as_deref().unwrap(),
            _ => unreachable!("{name}"),
        }
    }
}

type Conv64 = ConvCase<f64, f64>;

impl Differentiable for Conv64 {
    type Grads = CausalConv1dGrads<f64, f64>;
    fn loss_and_scale(&self) -> (f64, f64) {
        let mut out = vec![0.0; self.x.len()];
        let mut fin = vec![0.0; self.state_shape().iter().product()];
        Reference::<f64>::oracle()
            .causal_conv1d(&self.args(), &mut out, Some(&mut fin))
            .unwrap();
        loss_terms(&out, &self.dout, &fin, self.dfinal_states.as_deref())
    }
    fn grads(&self) -> Self::Grads {
        Reference::<f64>::oracle()
            .causal_conv1d_backward(&self.args(), &self.dout, self.dfinal_states.as_deref())
            .unwrap()
    }
    fn inputs(&self) -> Vec<&'static str> {
        let mut v = vec!["x", "weight"];
        if self.bias.is_some() {
            v.push("bias");
        }
        // With W = 1 the state is empty: nothing to differentiate.
        if self.initial_states.as_ref().is_some_and(|s| !s.is_empty()) {
            v.push("initial_states");
        }
        v
    }
    fn input_mut(&mut self, name: &str) -> &mut Vec<f64> {
        match name {
            "x" => &mut self.x,
            "weight" => &mut self.weight,
            "bias" => self.bias.as_mut().unwrap(),
            "initial_states" => self.initial_states.as_mut().unwrap(),
            _ => unreachable!("{name}"),
        }
    }
    fn grad<'g>(g: &'g Self::Grads, name: &str) -> &'g [f64] {
        match name {
            "x" => &g.x,
            "weight" => &g.weight,
            "bias" => g.bias.as_deref().unwrap(),
            "initial_states" => g.initial_states.as_deref().unwrap(),
            _ => unreachable!("{name}"),
        }
    }
}

/// Every optional input (and upstream state gradient) given, so each has a gradient.
fn scan_all_inputs(cfg: ScanConfig) -> ScanConfig {
    ScanConfig {
        d: true,
        z: true,
        delta_bias: true,
        initial_state: true,
        dlast_state: true,
        ..cfg
    }
}

fn ssd_all_inputs(cfg: SsdConfig) -> SsdConfig {
    SsdConfig {
        d: Some(cfg.d.unwrap_or(DShape::PerHead)),
        z: true,
        dt_bias: true,
        initial_states: true,
        dfinal_states: true,
        ..cfg
    }
}

fn conv_all_inputs(cfg: ConvConfig) -> ConvConfig {
    ConvConfig {
        bias: true,
        initial_states: true,
        dfinal_states: true,
        ..cfg
    }
}

/// The effective step `s` of `raw` (SPEC step 1) and whether the clamp is active.
fn step_of(raw: f64, softplus_on: bool, limit: Option<(f32, f32)>) -> (f64, bool) {
    let s = if softplus_on { softplus(raw) } else { raw };
    match limit {
        Some((lo, _)) if s < lo as f64 => (lo as f64, true),
        Some((_, hi)) if s > hi as f64 => (hi as f64, true),
        _ => (s, false),
    }
}

/// Where the clamp is active, the oracle's `d/d dt` is exactly zero.
fn assert_clamp_blocks_gradient(case: &Ssd64) -> Result<usize, TestCaseError> {
    let g = case.grads();
    let mut clamped = 0;
    for (r, &dt) in case.dt.iter().enumerate() {
        let bias = case.dt_bias.as_ref().map_or(0.0, |b| b[r % case.nheads]);
        let (_, active) = step_of(dt + bias, case.dt_softplus, case.dt_limit);
        if active {
            clamped += 1;
            prop_assert_eq!(g.dt[r], 0.0, "clamped step {} has gradient", r);
        }
    }
    Ok(clamped)
}

// ---------------------------------------------------------------------------------
// selective_scan
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scan_f32_matches_oracle(cfg in scan_config(), seed in any::<u64>()) {
        let case = ScanCase::random(&cfg, &mut Rng::new(seed));
        pass(check_selective_scan::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn scan_streaming(cfg in scan_config(), seed in any::<u64>(), idx in any::<Index>()) {
        let case = ScanCase::random(&cfg, &mut Rng::new(seed));
        let split = split_of(case.seqlen, &idx);
        pass(check_selective_scan_streaming::<f32, _>(&reference(), &case, split, Tolerance::F32))?;
    }

    #[test]
    fn scan_decode_steps(cfg in scan_config(), seed in any::<u64>()) {
        let case = ScanCase::random(&cfg, &mut Rng::new(seed));
        pass(check_state_update_vs_scan::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn scan_oracle_gradients_match_finite_differences(cfg in scan_config(), seed in any::<u64>()) {
        let case: Scan64 = ScanCase::random(&scan_all_inputs(cfg), &mut Rng::new(seed)).cast();
        fd_check(&case, seed)?;
    }

    /// Steps above the softplus threshold, grouped B and C, L = 1 or longer.
    #[test]
    fn scan_gradients_big_steps_groups(
        l in prop_oneof![Just(1usize), 2..=6usize],
        softplus_on in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cfg = ScanConfig {
            b_kind: BcKind::Grouped(2),
            c_kind: BcKind::Grouped(4),
            delta_softplus: softplus_on,
            big_steps: true,
            ..scan_all_inputs(ScanConfig::new(2, 4, l, 3))
        };
        let case = ScanCase::random(&cfg, &mut Rng::new(seed));
        let raw: Vec<f64> = (0..case.delta.len())
            .map(|r| case.delta[r] as f64 + case.delta_bias.as_ref().unwrap()[(r / l) % 4] as f64)
            .collect();
        // With softplus, the generator keeps raw steps off the threshold itself.
        prop_assert!(!softplus_on || raw.iter().all(|v| (v - SOFTPLUS_THRESHOLD).abs() >= 1e-3));
        fd_check::<Scan64>(&case.cast(), seed)?;
        pass(check_selective_scan::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }
}

// ---------------------------------------------------------------------------------
// ssd
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ssd_f32_matches_oracle(cfg in ssd_config(), seed in any::<u64>()) {
        let case = SsdCase::random(&cfg, &mut Rng::new(seed));
        pass(check_ssd::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn ssd_streaming(cfg in ssd_config(), seed in any::<u64>(), idx in any::<Index>()) {
        let case = SsdCase::random(&cfg, &mut Rng::new(seed));
        let split = split_of(case.seqlen, &idx);
        pass(check_ssd_streaming::<f32, _>(&reference(), &case, split, Tolerance::F32))?;
    }

    #[test]
    fn ssd_decode_steps(cfg in ssd_config(), seed in any::<u64>()) {
        let case = SsdCase::random(&cfg, &mut Rng::new(seed));
        pass(check_state_update_vs_ssd::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn ssd_chunk_size_invariance(cfg in ssd_config(), seed in any::<u64>()) {
        let case = SsdCase::random(&cfg, &mut Rng::new(seed));
        pass(check_ssd_chunk_sizes::<f32, _>(&reference(), &case, &SSD_CHUNK_SIZES, Tolerance::F32))?;
    }

    #[test]
    fn ssd_oracle_gradients_match_finite_differences(cfg in ssd_config(), seed in any::<u64>()) {
        let case: Ssd64 = SsdCase::random(&ssd_all_inputs(cfg), &mut Rng::new(seed)).cast();
        fd_check(&case, seed)?;
        assert_clamp_blocks_gradient(&case)?;
    }

    /// A clamping `dt_limit`, `seq_idx` with resets (at least one), steps above the
    /// softplus threshold, several groups, L = 1 or longer.
    #[test]
    fn ssd_gradients_clamp_resets_big_steps_groups(
        l in prop_oneof![Just(1usize), 2..=8usize],
        softplus_on in any::<bool>(),
        d_shape in prop_oneof![Just(DShape::PerHead), Just(DShape::PerChannel)],
        seed in any::<u64>(),
    ) {
        let cfg = SsdConfig {
            d: Some(d_shape),
            seq_idx: true,
            dt_softplus: softplus_on,
            dt_limit: Some((0.02, 0.15)),
            big_steps: true,
            ..ssd_all_inputs(SsdConfig::new(2, l, 4, 2, 2, 3))
        };
        let mut case = SsdCase::random(&cfg, &mut Rng::new(seed));
        if l >= 2 {
            // Batch 1 always has a reset at the middle.
            let s = case.seq_idx.as_mut().unwrap();
            for t in l / 2..l {
                s[l + t] = s[l + l / 2 - 1] + 1;
            }
        }
        let c64: Ssd64 = case.cast();
        fd_check(&c64, seed)?;
        let clamped = assert_clamp_blocks_gradient(&c64)?;
        // Big steps are above `hi`, so something is clamped.
        prop_assert!(clamped > 0 || l == 1);
        pass(check_ssd::<f32, _>(&reference(), &case, Tolerance::F32))?;
        pass(check_ssd_chunk_sizes::<f32, _>(&reference(), &case, &SSD_CHUNK_SIZES, Tolerance::F32))?;
    }
}

// ---------------------------------------------------------------------------------
// causal_conv1d
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv_f32_matches_oracle(cfg in conv_config(), seed in any::<u64>()) {
        let case = ConvCase::random(&cfg, &mut Rng::new(seed));
        pass(check_causal_conv1d::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn conv_streaming(cfg in conv_config(), seed in any::<u64>(), idx in any::<Index>()) {
        let case = ConvCase::random(&cfg, &mut Rng::new(seed));
        let split = split_of(case.seqlen, &idx);
        pass(check_causal_conv1d_streaming::<f32, _>(&reference(), &case, split, Tolerance::F32))?;
    }

    #[test]
    fn conv_oracle_gradients_match_finite_differences(cfg in conv_config(), seed in any::<u64>()) {
        let case: Conv64 = ConvCase::random(&conv_all_inputs(cfg), &mut Rng::new(seed)).cast();
        fd_check(&case, seed)?;
    }

    /// W = 1 (no state) and L = 1 (the state is mostly the initial state).
    #[test]
    fn conv_gradients_width_one_and_length_one(
        w in 1..=4usize,
        l in 1..=3usize,
        silu in any::<bool>(),
        channel_last in any::<bool>(),
        seed in any::<u64>(),
    ) {
        for (w, l) in [(1, l), (w, 1)] {
            let cfg = ConvConfig {
                activation: if silu { Activation::Silu } else { Activation::None },
                layout: if channel_last { ConvLayout::ChannelLast } else { ConvLayout::ChannelFirst },
                ..conv_all_inputs(ConvConfig::new(2, 3, l, w))
            };
            let case = ConvCase::random(&cfg, &mut Rng::new(seed));
            fd_check::<Conv64>(&case.cast(), seed)?;
            pass(check_causal_conv1d::<f32, _>(&reference(), &case, Tolerance::F32))?;
        }
    }
}

// ---------------------------------------------------------------------------------
// Decode steps
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn state_update_f32_matches_oracle(cfg in state_update_config(), seed in any::<u64>()) {
        let case = StateUpdateCase::random(&cfg, &mut Rng::new(seed));
        pass(check_state_update::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn conv_update_f32_matches_oracle(cfg in conv_update_config(), seed in any::<u64>()) {
        let case = ConvUpdateCase::random(&cfg, &mut Rng::new(seed));
        pass(check_conv_update::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }

    #[test]
    fn conv_update_is_the_tail_of_conv(cfg in conv_update_config(), seed in any::<u64>()) {
        let case = ConvUpdateCase::random(&cfg, &mut Rng::new(seed));
        pass(check_conv_update_vs_conv::<f32, _>(&reference(), &case, Tolerance::F32))?;
    }
}
