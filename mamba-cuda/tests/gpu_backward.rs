//! The backward ops of SPEC 1-3 on the GPU against the f64 oracle, through the shared
//! checks of `mamba_core::testing` (each compares the forward and every gradient), on
//! fresh random inputs with many option combinations, in f32, bf16 and f16; plus
//! forward+backward timings at the benchmark shapes (`MAMBA_GPU_BWD_BENCH=1`).
//!
//! Skips (with a message) when the plugin or a device is missing: CI has no GPU.
//! `MAMBA_GPU_TEST_ROUNDS` sets the random rounds per type (default 12).

use std::collections::BTreeMap;

use mamba_core::abi::{
    self, SelectiveScanBwdDesc, SelectiveScanDesc, SsdBwdDesc, SsdDesc, TensorDesc,
};
use mamba_core::plugin::{self, median, CudaBackend, DeviceBuffer};
use mamba_core::testing::{
    check_causal_conv1d, check_causal_conv1d_backward_into, check_selective_scan,
    check_selective_scan_backward_into, check_ssd, check_ssd_backward_into, BcKind, CheckResult,
    ConvCase, ConvConfig, DShape, Rng, ScanCase, ScanConfig, SsdCase, SsdConfig, Tolerance,
};
use mamba_core::{bf16, f16, Activation, ConvLayout, Element};

mod sweep;

fn backend() -> Option<&'static CudaBackend> {
    // Overrides set at run time (the SSD kernel choice below) are read only when this is
    // set before the plugin's first call; timings keep the per-call path without reads.
    if std::env::var("MAMBA_GPU_BWD_BENCH").ok().as_deref() != Some("1") {
        std::env::set_var("MAMBA_CUDA_ENV_LIVE", "1");
    }
    match plugin::load() {
        Ok(b) => {
            eprintln!("GPU backward tests on {}", b.describe());
            Some(b)
        }
        Err(e) => {
            eprintln!("skipping the GPU backward tests: {e}");
            None
        }
    }
}

/// `MAMBA_GPU_QUICK=1` (the compute-sanitizer runs): fewer and shorter cases.
fn quick() -> bool {
    std::env::var_os("MAMBA_GPU_QUICK").is_some_and(|v| v != "0")
}

/// In quick runs, only the configs of at most 300 steps; says whether the run is quick.
fn quick_configs(cfgs: &mut Vec<ScanConfig>) -> bool {
    let quick = quick();
    if quick {
        cfgs.retain(|c| c.seqlen <= 300);
    }
    quick
}

fn rounds() -> usize {
    std::env::var("MAMBA_GPU_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// The worst error per compared label, and the failures.
#[derive(Default)]
struct Tally {
    checks: usize,
    worst: BTreeMap<String, f64>,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, what: &str, r: CheckResult) {
        self.checks += 1;
        let report = match r {
            Ok(rep) => rep,
            Err(mamba_core::testing::Failure::Tolerance(rep)) => {
                self.failures.push(format!("{what}: {rep}"));
                rep
            }
            Err(e) => {
                self.failures.push(format!("{what}: {e}"));
                return;
            }
        };
        for c in &report.comparisons {
            let key = format!("{} {}", label_type(&report.check), c.label);
            let e = self.worst.entry(key).or_insert(0.0);
            if c.error.is_nan() || c.error > *e {
                *e = c.error;
            }
        }
    }

    fn finish(self, name: &str) {
        eprintln!("{name}: {} checks; worst rel-L2 per output:", self.checks);
        for (k, v) in &self.worst {
            eprintln!("  {k:<40} {v:.3e}");
        }
        assert!(self.checks > 0, "{name}: nothing compared");
        assert!(
            self.failures.is_empty(),
            "{name}: {} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// The storage type named in a check's title, e.g. "(bf16" -> "bf16".
fn label_type(check: &str) -> String {
    check
        .split('(')
        .nth(1)
        .map(|s| s.split([',', ')']).next().unwrap_or("").to_string())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ SPEC 1

fn scan_configs(rng: &mut Rng) -> Vec<ScanConfig> {
    let mut v = vec![
        // Several tiles, one segment per tile (N <= 32), varying B and C.
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            ..ScanConfig::new(2, 8, 100, 16).all_options()
        },
        // N = 64: two states per lane, two tiles per checkpoint segment; grouped B,
        // shared C; L not a multiple of the tile.
        ScanConfig {
            b_kind: BcKind::Grouped(3),
            c_kind: BcKind::Shared,
            ..ScanConfig::new(1, 6, 203, 64).all_options()
        },
        // N = 100 (four states per lane, partly idle), shared B, varying C, no options.
        ScanConfig {
            b_kind: BcKind::Shared,
            c_kind: BcKind::Varying,
            ..ScanConfig::new(2, 4, 70, 100)
        },
        // N = 200 (eight states per lane), seven tiles per segment.
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Grouped(3),
            ..ScanConfig::new(1, 3, 260, 200).all_options()
        },
        // Segments of gcd(3, 6) = 3 channels; more rows than a block holds.
        ScanConfig {
            b_kind: BcKind::Grouped(4),
            c_kind: BcKind::Grouped(2),
            ..ScanConfig::new(2, 12, 33, 5).all_options()
        },
        // Many channels of one group (blocks of 8 rows sum dB/dC before the atomics).
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            delta_softplus: true,
            d: true,
            z: true,
            ..ScanConfig::new(2, 40, 65, 16)
        },
        // Steps around the softplus threshold.
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Shared,
            big_steps: true,
            ..ScanConfig::new(1, 5, 50, 8).all_options()
        },
        // One step.
        ScanConfig::new(1, 2, 1, 3).all_options(),
        // Long runs of few rows: the time split (up to 16 chunks of whole tiles; the
        // last chunk partial as L is not a multiple of 32), with and without h0 and
        // dlast_state. `MAMBA_CUDA_BWD_SPLIT=K` forces K chunks everywhere.
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            ..ScanConfig::new(2, 4, 1001, 16).all_options()
        },
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Shared,
            initial_state: true,
            z: true,
            ..ScanConfig::new(1, 3, 517, 64)
        },
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            c_kind: BcKind::Varying,
            dlast_state: true,
            delta_softplus: true,
            ..ScanConfig::new(2, 2, 300, 40)
        },
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            ..ScanConfig::new(1, 2, 97, 200).all_options()
        },
        // The kernel with time in registers (B and C both vary, N <= 64; bwd_scan1t_*):
        // N = 64 (two states per lane, a checkpoint every 4 tiles of 16 steps, grouped B),
        // L not a multiple of 16; N = 32 with more channels than a block holds (16) in
        // groups of 10; N = 5 (lanes partly idle) in 37 channels (3 blocks, the last
        // partial); a long N = 64 run of few channels (split in time); N = 24 with
        // grouped B and C of different group counts.
        ScanConfig {
            b_kind: BcKind::Grouped(3),
            c_kind: BcKind::Varying,
            ..ScanConfig::new(1, 6, 203, 64).all_options()
        },
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            c_kind: BcKind::Varying,
            ..ScanConfig::new(2, 20, 150, 32).all_options()
        },
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            delta_softplus: true,
            d: true,
            z: true,
            ..ScanConfig::new(1, 37, 77, 5)
        },
        ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            ..ScanConfig::new(1, 6, 700, 64).all_options()
        },
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            c_kind: BcKind::Grouped(4),
            dlast_state: true,
            delta_softplus: true,
            ..ScanConfig::new(2, 36, 49, 24)
        },
    ];
    for _ in 0..rounds() {
        v.push(ScanConfig::random(rng));
    }
    v
}

fn scan_type<T: Element>(be: &CudaBackend, cfgs: &[ScanConfig], seed: u64, t: &mut Tally) {
    let mut rng = Rng::new(seed);
    for cfg in cfgs {
        let case = ScanCase::random(cfg, &mut rng);
        let r = check_selective_scan::<T, _>(be, &case, Tolerance::for_type::<T>());
        t.add(&format!("{cfg:?}"), r);
    }
}

#[test]
fn selective_scan_backward_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let cfgs = scan_configs(&mut Rng::new(11));
    let mut t = Tally::default();
    scan_type::<f32>(be, &cfgs, 1, &mut t);
    scan_type::<bf16>(be, &cfgs, 2, &mut t);
    scan_type::<f16>(be, &cfgs, 3, &mut t);
    t.finish("selective_scan (forward + backward)");
}

/// `rounds()` random Mamba-1 configurations (1-150 channels, 1-300 steps, N up to
/// `max_n`, random B/C groups and options) for the backward tests.
fn random_scan_configs(rng: &mut Rng, max_n: usize) -> Vec<ScanConfig> {
    let mut v = Vec::new();
    for _ in 0..rounds() {
        let dim = rng.int(1, 150);
        let groups = |rng: &mut Rng| {
            let g = rng.int(1, 4);
            if rng.coin() && dim.is_multiple_of(g) {
                BcKind::Grouped(g)
            } else {
                BcKind::Varying
            }
        };
        v.push(ScanConfig {
            batch: rng.int(1, 2),
            dim,
            seqlen: rng.int(1, 300),
            dstate: rng.int(1, max_n),
            b_kind: groups(rng),
            c_kind: groups(rng),
            d: rng.coin(),
            z: rng.coin(),
            delta_bias: rng.coin(),
            initial_state: rng.coin(),
            delta_softplus: rng.coin(),
            dlast_state: rng.coin(),
            big_steps: rng.chance(0.2),
        });
    }
    v
}

/// Shapes for `bwd_scan1q_*` (B and C both vary or are grouped, N <= 32): fixed odd
/// shapes (L not a multiple of the 8-step tile, channels not a multiple of the block's
/// 64 / 32, N = 3 .. 64, one step, long runs split in time) plus random ones.
fn scanq_configs(rng: &mut Rng) -> Vec<ScanConfig> {
    let vv = |b, d, l, n| ScanConfig {
        b_kind: BcKind::Varying,
        c_kind: BcKind::Varying,
        ..ScanConfig::new(b, d, l, n)
    };
    let mut v = vec![
        vv(2, 8, 100, 16).all_options(),
        ScanConfig {
            delta_softplus: true,
            d: true,
            z: true,
            ..vv(2, 70, 65, 16)
        },
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            ..vv(1, 130, 41, 16).all_options()
        },
        ScanConfig {
            delta_softplus: true,
            z: true,
            ..vv(1, 37, 77, 5)
        },
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            c_kind: BcKind::Grouped(4),
            dlast_state: true,
            delta_softplus: true,
            ..vv(2, 36, 49, 24)
        },
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            ..vv(2, 20, 150, 32).all_options()
        },
        vv(2, 4, 1001, 16).all_options(),
        ScanConfig {
            initial_state: true,
            z: true,
            ..vv(1, 3, 517, 13)
        },
        ScanConfig {
            big_steps: true,
            ..vv(1, 20, 40, 8).all_options()
        },
        vv(1, 2, 1, 3).all_options(),
        vv(2, 9, 9, 16).all_options(),
        // N <= 64 (taken by the "v" variants only): two channels per warp.
        ScanConfig {
            b_kind: BcKind::Grouped(3),
            ..vv(1, 6, 203, 64).all_options()
        },
        ScanConfig {
            initial_state: true,
            z: true,
            ..vv(2, 17, 90, 40)
        },
        vv(1, 6, 700, 64).all_options(),
        // Seed-like runs (L % 4 == 0: the float4 B / C loads of scan1_loc_v2), channels
        // not a multiple of the block.
        vv(2, 40, 800, 64).all_options(),
        ScanConfig {
            delta_softplus: true,
            d: true,
            z: true,
            ..vv(1, 50, 404, 64)
        },
    ];
    v.extend(random_scan_configs(rng, 64));
    v
}

/// `bwd_scan1q_*` (four states per lane) in every variant: the defaults ("xd" for
/// N <= 16, "xd" (f32) / "vd" for 32 < N <= 64), the variants `xdo`, `vdo`, `q`, `v` / `x` / `vd` / `xd` / `vr3` / `w4` / `r3`, checkpoints every 2 or 3 tiles, forced time splits.
#[test]
fn selective_scan_backward_four_states_per_lane() {
    let Some(be) = backend() else { return };
    let mut cfgs = scanq_configs(&mut Rng::new(23));
    // MAMBA_GPU_QUICK=1 (compute-sanitizer runs): f32 only, runs of at most 300 steps.
    let quick = quick_configs(&mut cfgs);
    // `MAMBA_GPU_BWD1Q_VARS=i,j,..`: only these entries of the list below.
    let pick: Option<Vec<usize>> = std::env::var("MAMBA_GPU_BWD1Q_VARS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    // (variant, checkpoint interval, chunks, options of the "v" kernels' time split: ""
    // the defaults (the local pass scan1_loc_v storing the checkpoints, zeroing the
    // gradients; 16-byte dB/dC atomics where they apply), "nopre" / "nozero" / "novec"
    // without that part, "old" the old local pass, "s1" / "s2" / "s4" the local pass's
    // states per thread, "u8" its unrolled 8-step runs, "v2" / "v1" the local pass
    // scan1_loc_v2 / scan1_loc_v (default: v2 in f32 at N 33-64, else v1)).
    // "clen152": chunks of 152 steps (`MAMBA_CUDA_BWD_CLEN`; L800: five and a 40-step one).
    let vars: [(&str, &str, &str, &str); 46] = [
        ("", "", "", ""),
        ("xdo", "", "", ""),
        ("vdo", "", "", ""),
        ("xdo", "3", "5", ""),
        ("q", "", "", ""),
        ("v", "", "", ""),
        ("x", "", "", ""),
        ("vd", "", "", ""),
        ("xd", "", "", ""),
        ("x", "2", "7", ""),
        ("vr3", "", "", ""),
        ("w4", "", "", ""),
        ("r3", "", "", ""),
        ("q", "3", "", ""),
        ("v", "3", "5", ""),
        ("q", "", "5", ""),
        ("r3", "2", "16", ""),
        ("v1", "", "", ""),
        ("vd1", "2", "3", ""),
        ("vd", "", "16", ""),
        ("xd", "", "29", ""),
        ("vd", "", "6", "nopre"),
        ("vd", "", "16", "old"),
        ("vr3", "2", "9", ""),
        ("vdw", "", "", ""),
        ("vdw", "2", "7", ""),
        ("", "", "", "s1"),
        ("vd", "3", "5", "s4 nozero"),
        ("", "", "", "novec nozero"),
        ("xd", "", "9", "s1"),
        ("", "", "", "u8"),
        ("vd", "3", "5", "u8"),
        ("vdw", "2", "7", "u8"),
        ("xd", "", "", "v2"),
        ("xd", "", "", "v1"),
        ("xd", "3", "5", "v2 nozero"),
        ("vd", "", "", "v2"),
        ("xd", "", "", "v2 s2"),
        ("xd", "", "16", "old"),
        ("xd", "", "6", "nopre"),
        ("xd", "", "29", "v2"),
        ("v", "", "9", "v2"),
        ("xd", "2", "7", "v2 s2 nozero"),
        ("vd", "", "", "v1"),
        ("", "", "", "clen152"),
        ("xd", "", "", "clen152 v1 nozero"),
    ];
    for (i, (var, r, split, lp)) in vars.iter().enumerate() {
        if pick.as_ref().is_some_and(|p| !p.contains(&i)) {
            continue;
        }
        std::env::set_var("MAMBA_CUDA_BWD1Q_VAR", var);
        std::env::set_var("MAMBA_CUDA_BWD1Q_R", r);
        std::env::set_var("MAMBA_CUDA_BWD_SPLIT", split);
        let off = |x: &str| if lp.contains(x) { "0" } else { "" };
        std::env::set_var("MAMBA_CUDA_BWD1Q_LOC", off("old"));
        std::env::set_var("MAMBA_CUDA_BWD1Q_PRE", off("nopre"));
        std::env::set_var("MAMBA_CUDA_BWD1Q_ZERO", off("nozero"));
        std::env::set_var("MAMBA_CUDA_BWD1Q_VEC4", off("novec"));
        let locs = ["s1", "s2", "s4"].into_iter().find(|x| lp.contains(x));
        std::env::set_var("MAMBA_CUDA_BWD1Q_LOCS", locs.map_or("", |x| &x[1..]));
        let unroll = if lp.contains("u8") { "1" } else { "" };
        std::env::set_var("MAMBA_CUDA_BWD1Q_LOCU", unroll);
        let v2 = ["v1", "v2"].into_iter().find(|x| lp.contains(x));
        let v2 = v2.map_or("", |x| &x[1..]);
        std::env::set_var("MAMBA_CUDA_BWD1Q_LOCV", v2);
        let clen = if lp.contains("clen152") { "152" } else { "" };
        std::env::set_var("MAMBA_CUDA_BWD_CLEN", clen);
        let mut t = Tally::default();
        let seed = 100 + 3 * i as u64;
        scan_type::<f32>(be, &cfgs, seed, &mut t);
        if !quick {
            scan_type::<bf16>(be, &cfgs, seed + 1, &mut t);
            scan_type::<f16>(be, &cfgs, seed + 2, &mut t);
        }
        t.finish(&format!(
            "selective_scan bwd1q #{i} VAR={var:?} R={r:?} SPLIT={split:?} LOC={lp:?}"
        ));
    }
    for v in ["LOC", "PRE", "ZERO", "VEC4", "LOCS", "LOCU", "LOCV"] {
        std::env::remove_var(format!("MAMBA_CUDA_BWD1Q_{v}"));
    }
    std::env::remove_var("MAMBA_CUDA_BWD1Q_VAR");
    std::env::remove_var("MAMBA_CUDA_BWD1Q_R");
    std::env::remove_var("MAMBA_CUDA_BWD_SPLIT");
    std::env::remove_var("MAMBA_CUDA_BWD_CLEN");
}

/// The Mamba-1 seed shape itself (f32 b2 d384 N64, B/C (b, N, L), D, z, delta_bias,
/// softplus) at L800 / L404 with the default choices (L800: the time split with a short
/// last chunk, `split_tail`) and with `MAMBA_CUDA_BWD_SPLIT_TAIL=0`, against the oracle.
#[test]
fn selective_scan_backward_seed_shape() {
    let Some(be) = backend() else { return };
    let seed = |l| ScanConfig {
        b_kind: BcKind::Varying,
        c_kind: BcKind::Varying,
        delta_softplus: true,
        d: true,
        z: true,
        delta_bias: true,
        ..ScanConfig::new(2, 384, l, 64)
    };
    let cfgs = [seed(800), seed(404)];
    for (i, tail) in ["", "0"].into_iter().enumerate() {
        std::env::set_var("MAMBA_CUDA_BWD_SPLIT_TAIL", tail);
        let mut t = Tally::default();
        scan_type::<f32>(be, &cfgs, 400 + i as u64, &mut t);
        t.finish(&format!("selective_scan seed shape SPLIT_TAIL={tail:?}"));
    }
    std::env::remove_var("MAMBA_CUDA_BWD_SPLIT_TAIL");
}

/// Shapes for `bwdlm_*` (kernels/bwd_lm.cu: B and C both vary or are grouped, N <= 16):
/// channels not a multiple of the 32-channel block, L not a multiple of the 16-step tile
/// (odd L: the unpaired loads), one step, grouped B/C, every option; random ones.
fn scanlm_configs(rng: &mut Rng) -> Vec<ScanConfig> {
    let vv = |b, d, l, n| ScanConfig {
        b_kind: BcKind::Varying,
        c_kind: BcKind::Varying,
        ..ScanConfig::new(b, d, l, n)
    };
    let mut v = vec![
        vv(2, 8, 100, 16).all_options(),
        vv(1, 70, 65, 16).all_options(),
        ScanConfig {
            b_kind: BcKind::Grouped(2),
            ..vv(1, 130, 41, 16).all_options()
        },
        ScanConfig {
            delta_softplus: true,
            z: true,
            ..vv(1, 37, 77, 5)
        },
        ScanConfig {
            b_kind: BcKind::Grouped(3),
            c_kind: BcKind::Grouped(2),
            dlast_state: true,
            delta_softplus: true,
            ..vv(2, 36, 49, 12)
        },
        vv(2, 33, 1001, 16).all_options(),
        ScanConfig {
            initial_state: true,
            z: true,
            ..vv(1, 3, 517, 13)
        },
        ScanConfig {
            big_steps: true,
            ..vv(1, 20, 40, 8).all_options()
        },
        vv(1, 2, 1, 3).all_options(),
        vv(1, 40, 2, 16).all_options(),
        vv(2, 9, 9, 1).all_options(),
        vv(1, 64, 32, 16),
        vv(2, 100, 256, 9).all_options(),
    ];
    v.extend(random_scan_configs(rng, 16));
    v
}

/// `bwdlm_*` forced (`MAMBA_CUDA_BWD_LM=1`) on the shapes above (few channels: the `w8`
/// form), then the default choice at a shape with many channels (the path's default rule:
/// any L, bf16 and f16 from 30 channels per SM, f32 from 64; above 64 channels per SM, as
/// here on an H200, the `q4pb` form).
#[test]
fn selective_scan_backward_lm_path() {
    let Some(be) = backend() else { return };
    let mut cfgs = scanlm_configs(&mut Rng::new(31));
    let quick = quick_configs(&mut cfgs);
    std::env::set_var("MAMBA_CUDA_BWD_LM", "1");
    let mut t = Tally::default();
    scan_type::<f32>(be, &cfgs, 201, &mut t);
    if !quick {
        scan_type::<bf16>(be, &cfgs, 202, &mut t);
        scan_type::<f16>(be, &cfgs, 203, &mut t);
    }
    t.finish("selective_scan bwdlm forced");
    std::env::remove_var("MAMBA_CUDA_BWD_LM");
    if quick {
        return;
    }
    let big = |b, d, l| ScanConfig {
        b_kind: BcKind::Varying,
        c_kind: BcKind::Varying,
        ..ScanConfig::new(b, d, l, 16).all_options()
    };
    // Above the default rule for every type (64 channels per SM) on an H200
    // (132 SMs): d not a multiple of the block, L not a multiple of the tile.
    let cfgs = vec![ScanConfig {
        b_kind: BcKind::Grouped(4),
        ..big(5, 1700, 1030)
    }];
    let mut t = Tally::default();
    scan_type::<f32>(be, &cfgs, 211, &mut t);
    scan_type::<bf16>(be, &cfgs, 212, &mut t);
    // f16, and short L (the default for f16 and below L 128 since the twenty-third session).
    scan_type::<f16>(be, &cfgs, 213, &mut t);
    let short = vec![ScanConfig {
        b_kind: BcKind::Grouped(4),
        ..big(5, 1700, 13)
    }];
    scan_type::<f32>(be, &short, 214, &mut t);
    scan_type::<bf16>(be, &short, 215, &mut t);
    scan_type::<f16>(be, &short, 216, &mut t);
    t.finish("selective_scan bwdlm default choice");
}

/// The `q4*` forms of `bwdlm_*` forced (`MAMBA_CUDA_BWD_LM=1`, `MAMBA_CUDA_BWD_LM_V=q4` /
/// `q4s` / `q4h` / `q4r` / `q4p` / `q4pb` / `q4pbo`: four threads per channel, 8-step tiles; `MAMBA_GPU_BWD_LM_FORMS` lists
/// which, comma-separated) on the shapes above with other random draws (N 1-16, channels
/// not multiples of the block, L 1 and not multiples of the tile, grouped B/C, every
/// option), then a shape with many channels (d 1700, L 1030, grouped B). `q4pbo` is `q4pb`
/// with, in f32, 32-bit row and checkpoint offsets (every shape here fits them).
#[test]
fn selective_scan_backward_lm_q4() {
    let Some(be) = backend() else { return };
    let mut cfgs = scanlm_configs(&mut Rng::new(41));
    let quick = quick_configs(&mut cfgs);
    let forms = std::env::var("MAMBA_GPU_BWD_LM_FORMS")
        .unwrap_or_else(|_| "q4,q4s,q4h,q4r,q4p,q4pb,q4pbo".into());
    let old_v = std::env::var_os("MAMBA_CUDA_BWD_LM_V");
    std::env::set_var("MAMBA_CUDA_BWD_LM", "1");
    for form in forms.split(',').filter(|f| !f.is_empty()) {
        std::env::set_var("MAMBA_CUDA_BWD_LM_V", form);
        let mut t = Tally::default();
        // Quick (the sanitizer runs): f32, and bf16 for `q4h` / `q4r` (16-bit staging);
        // both for the `q4p*` forms (f32 and 16-bit copies).
        let both = form.starts_with("q4p");
        let h16 = form == "q4h" || form == "q4r" || both;
        if !quick || !h16 || both {
            scan_type::<f32>(be, &cfgs, 221, &mut t);
        }
        if quick && h16 {
            scan_type::<bf16>(be, &cfgs, 222, &mut t);
        }
        if !quick {
            scan_type::<bf16>(be, &cfgs, 222, &mut t);
            scan_type::<f16>(be, &cfgs, 223, &mut t);
            let big = vec![ScanConfig {
                b_kind: BcKind::Grouped(4),
                c_kind: BcKind::Varying,
                ..ScanConfig::new(5, 1700, 1030, 16).all_options()
            }];
            scan_type::<f32>(be, &big, 224, &mut t);
            scan_type::<bf16>(be, &big, 225, &mut t);
        }
        t.finish(&format!("selective_scan bwdlm {form} forced"));
    }
    std::env::remove_var("MAMBA_CUDA_BWD_LM");
    match old_v {
        Some(v) => std::env::set_var("MAMBA_CUDA_BWD_LM_V", v),
        None => std::env::remove_var("MAMBA_CUDA_BWD_LM_V"),
    }
}

/// The training pair (`selective_scan_forward_saving`: `lm1_fwd_*_w6ck` / `_w9ck` writing
/// checkpoints; `selective_scan_backward_saved`: `bwdlm_*_q4pbs` reading them instead of
/// running its own forward pass) through the host checks (`set_scan_training_path`):
/// `MAMBA_CUDA_SAVED=1` gives every call with B / C varying and N <= 16 a saving form, so
/// the shapes above (N 1-16, grouped B / C, L 1 and not multiples of 8, every option) run
/// it, then a shape in the default region (d 1700 at b5: over 64 channels per SM on an
/// H200, L >= 32) without the override. Also the size rule and the buffer checks.
#[test]
fn selective_scan_saved_path() {
    let Some(be) = backend() else { return };
    // The size rule, from descriptors alone (nothing runs, so the pointers are dummies).
    let desc = |b: usize, d: usize, l: usize, n: usize, code: u32| {
        let t = |dims: &[usize], c: u32| TensorDesc::dense(0x1000, c, dims);
        SelectiveScanDesc {
            u: t(&[b, d, l], code),
            delta: t(&[b, d, l], code),
            a: t(&[d, n], abi::dtype::F32),
            b: t(&[b, n, l], code),
            c: t(&[b, n, l], code),
            d: TensorDesc::NONE,
            z: TensorDesc::NONE,
            delta_bias: TensorDesc::NONE,
            initial_state: TensorDesc::NONE,
            out: t(&[b, d, l], code),
            last_state: TensorDesc::NONE,
            delta_softplus: 1,
            reserved: 0,
        }
    };
    std::env::remove_var("MAMBA_CUDA_SAVED");
    let bf = abi::dtype::BF16;
    let sms = be.device_info().sm_count as usize;
    // SAFETY: only the descriptors' shapes are read.
    let lm = unsafe { be.selective_scan_saved_bytes(&desc(8, 2048, 2048, 16, bf)) }.unwrap();
    let want = if 8 * 2048 >= 30 * sms {
        8 * 2048 * 256 * 64
    } else {
        0
    };
    assert_eq!(lm, want, "saved bytes at the LM shape");
    // The default region (twenty-third session): any L; f32 from 60 channels per SM, bf16
    // and f16 from 30.
    for (b, d, l, code) in [
        (8usize, 2048usize, 32usize, abi::dtype::F32),
        (8, 2048, 1, abi::dtype::F32),
        (4, 2048, 128, abi::dtype::F32),
        (2, 2048, 512, abi::dtype::F32),
        (2, 2048, 512, bf),
        (2, 2048, 7, bf),
        (1, 1024, 512, bf),
        (8, 2048, 512, abi::dtype::F16),
        (2, 2048, 9, abi::dtype::F16),
        (1, 1024, 512, abi::dtype::F16),
    ] {
        let per_sm = if code == abi::dtype::F32 {
            60 * sms
        } else {
            30 * sms
        };
        let on = b * d >= per_sm;
        let want = if on { b * d * l.div_ceil(8) * 64 } else { 0 };
        // SAFETY: as above.
        let got = unsafe { be.selective_scan_saved_bytes(&desc(b, d, l, 16, code)) }.unwrap();
        assert_eq!(got, want, "saved bytes at b{b} d{d} L{l} dtype {code}");
    }
    // SAFETY: as above.
    let seed =
        unsafe { be.selective_scan_saved_bytes(&desc(2, 384, 800, 64, abi::dtype::F32)) }.unwrap();
    assert_eq!(seed, 0, "the seed shape (N 64) has no saving form");
    std::env::set_var("MAMBA_CUDA_SAVED", "1");
    // The saving forward addresses its checkpoints by 32-bit offsets: 2^32 floats or more
    // (here 64 * 4096 * 1024 * 16 = 2^32) have no saving form, one tile fewer has.
    // SAFETY: as above.
    let huge = unsafe { be.selective_scan_saved_bytes(&desc(64, 4096, 8192, 16, bf)) }.unwrap();
    assert_eq!(huge, 0, "2^32 checkpoint floats: no saving form");
    // SAFETY: as above.
    let below = unsafe { be.selective_scan_saved_bytes(&desc(64, 4096, 8184, 16, bf)) }.unwrap();
    assert_eq!(
        below,
        64 * 4096 * 1023 * 64,
        "just under 2^32 checkpoint floats"
    );
    let small = desc(1, 40, 100, 16, bf);
    // SAFETY: as above.
    let sb = unsafe { be.selective_scan_saved_bytes(&small) }.unwrap();
    assert_eq!(sb, 40 * 13 * 64);
    let s = be.stream().unwrap();
    // A wrong size and a null buffer are refused before anything runs.
    // SAFETY: the calls fail in their checks; nothing touches the dummy pointers.
    let e = unsafe { be.selective_scan_forward_saving_device(&small, 0x2000, sb + 64, &s) }
        .unwrap_err();
    assert!(e.to_string().contains("saved buffer"), "{e}");
    // SAFETY: as above.
    let e = unsafe { be.selective_scan_forward_saving_device(&small, 0, sb, &s) }.unwrap_err();
    assert!(e.to_string().contains("saved buffer"), "{e}");

    let mut cfgs = scanlm_configs(&mut Rng::new(51));
    let quick = quick_configs(&mut cfgs);
    be.set_scan_training_path(true);
    let mut t = Tally::default();
    scan_type::<f32>(be, &cfgs, 231, &mut t);
    scan_type::<bf16>(be, &cfgs, 232, &mut t);
    if !quick {
        scan_type::<f16>(be, &cfgs, 233, &mut t);
    }
    t.finish("selective_scan saved path (MAMBA_CUDA_SAVED=1)");
    std::env::remove_var("MAMBA_CUDA_SAVED");
    if !quick {
        // L 1030 and L 300 over 64 channels per SM (f32 and bf16), bf16 at 31 channels per
        // SM (b2 d2048 on an H200; f32 takes the plain pair there), f32 at 62, and L 40.
        let big = vec![
            ScanConfig {
                b_kind: BcKind::Grouped(4),
                c_kind: BcKind::Varying,
                ..ScanConfig::new(5, 1700, 1030, 16).all_options()
            },
            ScanConfig {
                b_kind: BcKind::Grouped(4),
                c_kind: BcKind::Varying,
                ..ScanConfig::new(5, 1700, 300, 16).all_options()
            },
            ScanConfig {
                b_kind: BcKind::Varying,
                c_kind: BcKind::Varying,
                ..ScanConfig::new(2, 2048, 260, 16).all_options()
            },
            // f32 from 60 channels per SM (b4 d2048: 62 on an H200), and L 40.
            ScanConfig {
                b_kind: BcKind::Varying,
                c_kind: BcKind::Varying,
                ..ScanConfig::new(4, 2048, 200, 16).all_options()
            },
            ScanConfig {
                b_kind: BcKind::Varying,
                c_kind: BcKind::Grouped(2),
                ..ScanConfig::new(5, 1700, 40, 16).all_options()
            },
        ];
        let mut t = Tally::default();
        scan_type::<f32>(be, &big, 234, &mut t);
        scan_type::<bf16>(be, &big, 235, &mut t);
        // f16 (in the default region since the twenty-third session: the saving `_w9ck`
        // forward), and lengths under one 8-step tile and 32 (the default from L 1 since then).
        let short = vec![
            ScanConfig {
                b_kind: BcKind::Grouped(4),
                c_kind: BcKind::Varying,
                ..ScanConfig::new(5, 1700, 7, 16).all_options()
            },
            ScanConfig {
                b_kind: BcKind::Varying,
                c_kind: BcKind::Varying,
                ..ScanConfig::new(5, 1700, 21, 16).all_options()
            },
        ];
        scan_type::<f16>(be, &big, 236, &mut t);
        scan_type::<f32>(be, &short, 237, &mut t);
        scan_type::<bf16>(be, &short, 238, &mut t);
        scan_type::<f16>(be, &short, 239, &mut t);
        t.finish("selective_scan saved path (default rule)");
    }
    be.set_scan_training_path(false);
}

// ------------------------------------------------------------------ SPEC 2

fn ssd_configs(rng: &mut Rng) -> Vec<SsdConfig> {
    let mut v = vec![
        // Every option (seq_idx resets, a clamping dt_limit, D per head, z, ...).
        SsdConfig::new(2, 100, 4, 8, 2, 16).all_options(),
        // N = 64, D per channel, rows of a block spanning several heads (p = 5).
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..SsdConfig::new(1, 257, 3, 5, 1, 64).all_options()
        },
        // N = 100, two groups, no options.
        SsdConfig::new(2, 64, 2, 3, 2, 100),
        // Large head: blocks of 8 rows of one head.
        SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            d: Some(DShape::PerHead),
            initial_states: true,
            dfinal_states: true,
            ..SsdConfig::new(1, 80, 2, 64, 1, 32)
        },
        // N = 200.
        SsdConfig {
            seq_idx: true,
            ..SsdConfig::new(1, 45, 2, 2, 2, 200).all_options()
        },
        // Big steps with a clamp.
        SsdConfig {
            big_steps: true,
            dt_limit: Some((0.02, 0.3)),
            ..SsdConfig::new(2, 40, 2, 4, 1, 8).all_options()
        },
        SsdConfig::new(1, 1, 1, 1, 1, 1).all_options(),
        // Long runs of few rows (the time split), with resets, and without options.
        SsdConfig::new(1, 700, 2, 4, 1, 32).all_options(),
        SsdConfig::new(2, 333, 2, 3, 2, 64),
    ];
    for _ in 0..rounds() {
        v.push(SsdConfig::random(rng));
    }
    v
}

fn ssd_type<T: Element>(be: &CudaBackend, cfgs: &[SsdConfig], seed: u64, t: &mut Tally) {
    let mut rng = Rng::new(seed);
    for cfg in cfgs {
        let case = SsdCase::random(cfg, &mut rng);
        let r = check_ssd::<T, _>(be, &case, Tolerance::for_type::<T>());
        t.add(&format!("{cfg:?}"), r);
    }
}

/// The `*_backward_into` forms on host slices give the by-value calls' gradients, into
/// junk, into reused vectors and into empty ones (`mamba_core::testing`), within the
/// SPEC's gradient tolerance: the plugin's backward reduces with atomics, so two calls
/// may differ in the last bits (NaN from the junk, or stale values added in, fail).
#[test]
fn backward_into_matches_the_backward() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(71);
    let scan = scan_configs(&mut rng);
    let ssd = ssd_configs(&mut rng);
    // The SPEC's gradient tolerance of each storage type.
    let (t32, tb, th) = (
        Some(Tolerance::F32.grad),
        Some(Tolerance::BF16.grad),
        Some(Tolerance::F16.grad),
    );
    let mut results: Vec<(String, Result<(), String>)> = Vec::new();
    for cfg in scan.iter().take(8) {
        let case = ScanCase::random(cfg, &mut rng);
        results.extend(
            [
                check_selective_scan_backward_into::<f32, _>(be, &case, t32),
                check_selective_scan_backward_into::<bf16, _>(be, &case, tb),
                check_selective_scan_backward_into::<f16, _>(be, &case, th),
            ]
            .map(|r| (format!("{cfg:?}"), r)),
        );
    }
    for cfg in ssd.iter().take(9) {
        let case = SsdCase::random(cfg, &mut rng);
        results.extend(
            [
                check_ssd_backward_into::<f32, _>(be, &case, t32),
                check_ssd_backward_into::<bf16, _>(be, &case, tb),
                check_ssd_backward_into::<f16, _>(be, &case, th),
            ]
            .map(|r| (format!("{cfg:?}"), r)),
        );
    }
    for cfg in conv_configs(&mut rng).iter().take(8) {
        let case = ConvCase::random(cfg, &mut rng);
        results.extend(
            [
                check_causal_conv1d_backward_into::<f32, _>(be, &case, t32),
                check_causal_conv1d_backward_into::<bf16, _>(be, &case, tb),
                check_causal_conv1d_backward_into::<f16, _>(be, &case, th),
            ]
            .map(|r| (format!("{cfg:?}"), r)),
        );
    }
    let checks = results.len();
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(cfg, r)| r.err().map(|e| format!("{cfg}: {e}")))
        .collect();
    eprintln!("backward_into: {checks} checks, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Host-slice forward+backward at the seed shapes, gradients by value against into the
/// same vectors each call (`MAMBA_GPU_BWD_BENCH=1`): wall clock per call, medians of 30,
/// three rounds alternating.
#[test]
fn backward_into_host_timings() {
    if std::env::var("MAMBA_GPU_BWD_BENCH").ok().as_deref() != Some("1") {
        eprintln!("timings skipped (set MAMBA_GPU_BWD_BENCH=1)");
        return;
    }
    use mamba_core::Kernels;
    let Some(be) = backend() else { return };
    let time = |f: &mut dyn FnMut()| {
        for _ in 0..5 {
            f();
        }
        let mut ts: Vec<f64> = (0..30)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        ts.sort_by(f64::total_cmp);
        ts[ts.len() / 2]
    };
    for l in [400, 800] {
        let cfg = ScanConfig {
            b_kind: BcKind::Varying,
            c_kind: BcKind::Varying,
            delta_softplus: true,
            d: true,
            z: true,
            delta_bias: true,
            ..ScanConfig::new(2, 384, l, 64)
        };
        let case = ScanCase::random(&cfg, &mut Rng::new(3));
        let args = case.args();
        let mut out = vec![0.0f32; 2 * 384 * l];
        let mut g = mamba_core::SelectiveScanGrads::default();
        for round in 0..3 {
            let by_value = time(&mut || {
                be.selective_scan(&args, &mut out, None).unwrap();
                let r = be.selective_scan_backward(&args, &case.dout, None).unwrap();
                std::hint::black_box(r);
            });
            let into = time(&mut || {
                be.selective_scan(&args, &mut out, None).unwrap();
                be.selective_scan_backward_into(&args, &case.dout, None, &mut g)
                    .unwrap();
            });
            eprintln!(
                "host-slice selective_scan fwd+bwd b2 d384 N64 L{l} f32 round {round}: by value {by_value:.1} us, into {into:.1} us"
            );
        }
        let cfg = SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            d: Some(DShape::PerHead),
            ..SsdConfig::new(2, l, 6, 64, 1, 64)
        };
        let case = SsdCase::random(&cfg, &mut Rng::new(4));
        let args = case.args();
        let mut out = vec![0.0f32; 2 * l * 6 * 64];
        let mut g = mamba_core::SsdGrads::default();
        for round in 0..3 {
            let by_value = time(&mut || {
                be.ssd(&args, &mut out, None).unwrap();
                let r = be.ssd_backward(&args, &case.dout, None).unwrap();
                std::hint::black_box(r);
            });
            let into = time(&mut || {
                be.ssd(&args, &mut out, None).unwrap();
                be.ssd_backward_into(&args, &case.dout, None, &mut g)
                    .unwrap();
            });
            eprintln!(
                "host-slice ssd fwd+bwd b2 L{l} h6 p64 N64 f32 round {round}: by value {by_value:.1} us, into {into:.1} us"
            );
        }
    }
}

/// The SSD tests set kernel overrides in the environment: one at a time.
static SSD_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn ssd_backward_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let cfgs = ssd_configs(&mut Rng::new(12));
    let mut t = Tally::default();
    ssd_type::<f32>(be, &cfgs, 4, &mut t);
    ssd_type::<bf16>(be, &cfgs, 5, &mut t);
    ssd_type::<f16>(be, &cfgs, 6, &mut t);
    t.finish("ssd (forward + backward)");
}

/// Configurations that `bwd_ssdt_*` (`ssd_bwd_t`) takes: no seq_idx, N <= 128. Odd L
/// (not a multiple of the 8- / 16- / 4-step tiles), several checkpoint segments, rows of
/// a block spanning heads (p = 5, 17, 24) and groups, every option.
fn ssdt_configs(rng: &mut Rng) -> Vec<SsdConfig> {
    let all = |c: SsdConfig| SsdConfig {
        seq_idx: false,
        ..c.all_options()
    };
    let mut v = vec![
        all(SsdConfig::new(2, 100, 4, 8, 2, 16)),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..all(SsdConfig::new(1, 257, 3, 5, 1, 64))
        },
        SsdConfig::new(2, 64, 2, 3, 2, 100),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..all(SsdConfig::new(1, 203, 2, 24, 1, 128))
        },
        all(SsdConfig::new(2, 137, 4, 17, 2, 128)),
        SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            d: Some(DShape::PerHead),
            dfinal_states: true,
            ..SsdConfig::new(1, 301, 2, 64, 1, 128)
        },
        SsdConfig {
            initial_states: true,
            ..SsdConfig::new(1, 77, 2, 20, 1, 50)
        },
        SsdConfig {
            big_steps: true,
            dt_limit: Some((0.02, 0.3)),
            ..all(SsdConfig::new(2, 40, 2, 4, 1, 8))
        },
        all(SsdConfig::new(1, 1, 1, 1, 1, 1)),
        all(SsdConfig::new(1, 700, 2, 4, 1, 32)),
        all(SsdConfig::new(1, 129, 1, 64, 1, 128)),
    ];
    for _ in 0..rounds() {
        let mut c = SsdConfig::random(rng);
        c.seq_idx = false;
        v.push(c);
    }
    v
}

/// Configurations the chunked SSD backward takes (`ssdbc_*`: no seq_idx, p <= 64 and a
/// multiple of 4, N <= 128 and a multiple of 8): L 1, not multiples of the 32-step chunk,
/// several chunks, groups, D per head and per channel, every option, and random shapes.
fn ssdbc_configs(rng: &mut Rng) -> Vec<SsdConfig> {
    let all = |c: SsdConfig| SsdConfig {
        seq_idx: false,
        ..c.all_options()
    };
    let mut v = vec![
        all(SsdConfig::new(2, 100, 4, 8, 2, 16)),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..all(SsdConfig::new(1, 257, 3, 4, 1, 64))
        },
        SsdConfig::new(2, 64, 2, 12, 2, 8),
        all(SsdConfig::new(1, 1, 1, 4, 1, 8)),
        all(SsdConfig::new(1, 33, 2, 64, 1, 128)),
        SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            d: Some(DShape::PerHead),
            dfinal_states: true,
            ..SsdConfig::new(1, 301, 2, 64, 1, 128)
        },
        SsdConfig {
            initial_states: true,
            ..SsdConfig::new(1, 77, 2, 20, 1, 48)
        },
        SsdConfig {
            big_steps: true,
            dt_limit: Some((0.02, 0.3)),
            ..all(SsdConfig::new(2, 40, 2, 4, 1, 8))
        },
        all(SsdConfig::new(1, 700, 2, 4, 1, 32)),
        all(SsdConfig::new(2, 129, 4, 32, 2, 128)),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..all(SsdConfig::new(2, 70, 3, 64, 1, 64))
        },
        SsdConfig {
            dt_softplus: true,
            initial_states: true,
            ..SsdConfig::new(1, 96, 4, 64, 2, 64)
        },
        // Shorter than one chunk at the tensor-core shapes.
        all(SsdConfig::new(1, 1, 2, 64, 1, 64)),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..all(SsdConfig::new(2, 7, 1, 64, 1, 128))
        },
    ];
    for _ in 0..rounds() {
        let mut c = SsdConfig::random(rng);
        c.seq_idx = false;
        c.headdim = 4 * rng.int(1, 16);
        c.dstate = 8 * rng.int(1, 16);
        v.push(c);
    }
    v
}

/// The chunked SSD backward forced (`MAMBA_CUDA_SSD_BWDC=1`) against the oracle in f32,
/// bf16 and f16, with several heads per chunk-kernel block forced, then its default choice
/// at a shape with many rows (b2 h16 p64), and that shape with 8 heads per block.
#[test]
fn ssd_backward_chunked_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let cfgs = ssdbc_configs(&mut Rng::new(61));
    let quick = quick();
    let mut t = Tally::default();
    std::env::set_var("MAMBA_CUDA_SSD_BWDC", "1");
    ssd_type::<f32>(be, &cfgs, 62, &mut t);
    if !quick {
        ssd_type::<bf16>(be, &cfgs, 63, &mut t);
        ssd_type::<f16>(be, &cfgs, 64, &mut t);
    }
    // The fixed shapes (p 64, N 128 / 64) take the tensor-core chunk kernels by default (tf32
    // for the 16-bit types, 3xTF32 for f32); the other forms by `MAMBA_CUDA_SSD_BWDC_TC`:
    // 0 the CUDA cores (`_w`), 3 3xTF32 for the 16-bit types too.
    let fixed: Vec<SsdConfig> = cfgs
        .iter()
        .filter(|c| c.headdim == 64 && (c.dstate == 128 || c.dstate == 64))
        .cloned()
        .collect();
    assert!(fixed.len() >= 4, "the fixed shapes are covered");
    if quick {
        // The tf32 kernels (the 16-bit types' default) in quick runs too (compute-sanitizer).
        ssd_type::<bf16>(be, &fixed, 63, &mut t);
    }
    for tc in ["0", "3"] {
        std::env::set_var("MAMBA_CUDA_SSD_BWDC_TC", tc);
        if tc == "0" {
            ssd_type::<f32>(be, &fixed, 67, &mut t);
        }
        if !quick {
            ssd_type::<bf16>(be, &fixed, 68, &mut t);
            if tc == "0" {
                ssd_type::<f16>(be, &fixed, 69, &mut t);
            }
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC_TC");
    // Several heads per chunk-kernel block (the largest divisor of the heads per group up to
    // the value; by default only where the blocks still fill the device).
    for hpb in ["3", "4"] {
        std::env::set_var("MAMBA_CUDA_SSD_BWDC_HPB", hpb);
        ssd_type::<f32>(be, &cfgs, 70, &mut t);
        if !quick {
            ssd_type::<bf16>(be, &cfgs, 71, &mut t);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC_HPB");
    // The golden ssd_05's regime (`large_decay_draws`) through the 3xTF32 and the CUDA-core
    // chunk kernels.
    for tc in ["3", "0"] {
        std::env::set_var("MAMBA_CUDA_SSD_BWDC_TC", tc);
        large_decay_draws(be, 74, if quick { 2 } else { 8 }, tc, &mut t);
    }
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC_TC");
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC");
    if !quick {
        let big = [SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            z: true,
            d: Some(DShape::PerHead),
            ..SsdConfig::new(2, 150, 16, 64, 1, 128)
        }];
        ssd_type::<f32>(be, &big, 65, &mut t);
        ssd_type::<bf16>(be, &big, 66, &mut t);
        // Eight heads per block (the LM shapes' default) at this shape too.
        std::env::set_var("MAMBA_CUDA_SSD_BWDC_HPB", "8");
        ssd_type::<f32>(be, &big, 72, &mut t);
        ssd_type::<bf16>(be, &big, 73, &mut t);
        std::env::remove_var("MAMBA_CUDA_SSD_BWDC_HPB");
    }
    t.finish("ssd, chunked backward (forward + backward)");
}

/// f32 draws in the golden ssd_05's regime, strong decays (A in [-13, -7], raw steps in [-1.8,
/// 1.8] through softplus; N 64 and 128 by turns), through whichever chunked backward the
/// environment forces, every gradient held to 1e-5 (the SPEC's tolerance is 1e-4). dA sums terms
/// that cancel, and with |cs| in the hundreds a decay taken as the difference of two f32
/// cumulative sums carried ~3e-5 of relative error: dA came out up to 5.4e-5 (64-step) / 4.7e-5
/// (32-step kernels) from f64 over the emulator's draws before the fifty-eighth session (f64
/// sums kept as two f32 values, `sbc_dcs`; the 32-step W rectangle summed directly), ~1e-6 since.
/// (Before the fifty-seventh session the 64-step kernels reached 1.07e-4 on such a draw.)
fn large_decay_draws(be: &CudaBackend, seed: u64, draws: usize, tag: &str, t: &mut Tally) {
    let tol = Tolerance {
        grad: 1e-5,
        ..Tolerance::F32
    };
    let mut rng = Rng::new(seed);
    for k in 0..draws {
        let cfg = SsdConfig {
            dt_softplus: true,
            d: Some(DShape::PerHead),
            ..SsdConfig::new(1, 200, 2, 64, 1, if k % 2 == 0 { 64 } else { 128 })
        };
        let mut case = SsdCase::random(&cfg, &mut rng);
        case.a = (0..2).map(|_| -rng.range(7.0, 13.0) as f32).collect();
        case.dt = (0..case.dt.len())
            .map(|_| rng.range(-1.8, 1.8) as f32)
            .collect();
        let r = check_ssd::<f32, _>(be, &case, tol);
        t.add(&format!("large decays {tag}{k} {cfg:?}"), r);
    }
}

/// The 64-step chunked SSD backward (kernels/ssd_bwdl.cuh: p 64, N 128 / 64, no z; the
/// default of the chunked path there at many (row, head, chunk) triples), forced
/// (`MAMBA_CUDA_SSD_BWDL=1`), against the oracle in f32, bf16 and f16: lengths from
/// one step to several chunks with a partial last one (odd numbers of 32-step chunks
/// included), one and two groups, D per head and per channel, every step option; then with
/// several heads per `ssdbl_x` / `ssdbl_s` block, with 3xTF32 for a 16-bit type, and at a
/// shape with 16 heads per group (8 per x block and 16 per s block, or 16 per `ssdbl_xs`
/// block); all of it with the x and s passes as two kernels and as one (`ssdbl_xs`,
/// `MAMBA_CUDA_SSD_BWDL_XS`).
#[test]
fn ssd_backward_q64_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let nz = |c: SsdConfig| SsdConfig {
        seq_idx: false,
        z: false,
        ..c.all_options()
    };
    let cfgs = vec![
        nz(SsdConfig::new(1, 1, 2, 64, 1, 64)),
        nz(SsdConfig::new(2, 7, 1, 64, 1, 128)),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..nz(SsdConfig::new(1, 33, 3, 64, 1, 128))
        },
        SsdConfig::new(1, 64, 2, 64, 1, 64),
        SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            d: Some(DShape::PerHead),
            dfinal_states: true,
            ..SsdConfig::new(1, 301, 2, 64, 1, 128)
        },
        SsdConfig {
            dt_softplus: true,
            initial_states: true,
            ..SsdConfig::new(1, 96, 4, 64, 2, 64)
        },
        nz(SsdConfig::new(2, 160, 4, 64, 2, 128)),
        SsdConfig {
            d: Some(DShape::PerChannel),
            ..nz(SsdConfig::new(2, 130, 6, 64, 1, 64))
        },
        SsdConfig {
            big_steps: true,
            dt_limit: Some((0.02, 0.3)),
            ..nz(SsdConfig::new(1, 200, 2, 64, 1, 128))
        },
    ];
    let mut t = Tally::default();
    std::env::set_var("MAMBA_CUDA_SSD_BWDC", "1");
    std::env::set_var("MAMBA_CUDA_SSD_BWDL", "1");
    // The x and s passes as two kernels and as one (`ssdbl_xs`).
    for xs in ["0", "1"] {
        std::env::set_var("MAMBA_CUDA_SSD_BWDL_XS", xs);
        ssd_type::<f32>(be, &cfgs, 81, &mut t);
        ssd_type::<bf16>(be, &cfgs, 82, &mut t);
        if !quick() {
            ssd_type::<f16>(be, &cfgs, 83, &mut t);
            // Several heads per block of `ssdbl_x` and `ssdbl_s` (forced: the default takes one at
            // these small shapes; the LM shapes take 8 and 20).
            for hpb in ["2", "3", "4"] {
                std::env::set_var("MAMBA_CUDA_SSD_BWDL_HPB", hpb);
                std::env::set_var("MAMBA_CUDA_SSD_BWDL_HPBX", hpb);
                ssd_type::<f32>(be, &cfgs, 84, &mut t);
                ssd_type::<bf16>(be, &cfgs, 85, &mut t);
            }
            std::env::remove_var("MAMBA_CUDA_SSD_BWDL_HPB");
            std::env::remove_var("MAMBA_CUDA_SSD_BWDL_HPBX");
            // 3xTF32 for a 16-bit type.
            std::env::set_var("MAMBA_CUDA_SSD_BWDC_TC", "3");
            ssd_type::<bf16>(be, &cfgs, 86, &mut t);
            std::env::remove_var("MAMBA_CUDA_SSD_BWDC_TC");
            // Many heads per group: 8 heads per x block and 16 per s block, as at the LM shapes
            // with the two kernels; 16 per block with `ssdbl_xs`, as at the LM shapes.
            let big = [SsdConfig {
                dt_softplus: true,
                dt_bias: true,
                d: Some(DShape::PerHead),
                ..SsdConfig::new(2, 150, 16, 64, 1, 128)
            }];
            std::env::set_var("MAMBA_CUDA_SSD_BWDL_HPB", "16");
            std::env::set_var(
                "MAMBA_CUDA_SSD_BWDL_HPBX",
                if xs == "1" { "16" } else { "8" },
            );
            ssd_type::<f32>(be, &big, 87, &mut t);
            ssd_type::<bf16>(be, &big, 88, &mut t);
            std::env::remove_var("MAMBA_CUDA_SSD_BWDL_HPB");
            std::env::remove_var("MAMBA_CUDA_SSD_BWDL_HPBX");
        }
        // The golden ssd_05's regime (`large_decay_draws`).
        large_decay_draws(be, 89, if quick() { 4 } else { 16 }, "", &mut t);
    }
    std::env::remove_var("MAMBA_CUDA_SSD_BWDL_XS");
    // With a gate z: f32 and bf16 run the gate's backward around the 64-step kernels
    // (`run_gated`: the ungated forward, `bwd_ssd_gate_*`, the ungated backward), f16 keeps
    // the 32-step kernel; every option but seq_idx, lengths from one step to a partial
    // 64-step chunk, D per head and per channel, two groups, a clamp.
    let gated = vec![
        SsdConfig {
            seq_idx: false,
            ..SsdConfig::new(1, 1, 2, 64, 1, 64).all_options()
        },
        SsdConfig {
            seq_idx: false,
            d: Some(DShape::PerChannel),
            ..SsdConfig::new(2, 130, 3, 64, 1, 128).all_options()
        },
        SsdConfig {
            seq_idx: false,
            big_steps: true,
            dt_limit: Some((0.02, 0.3)),
            ..SsdConfig::new(1, 200, 4, 64, 2, 64).all_options()
        },
        SsdConfig {
            dt_softplus: true,
            dt_bias: true,
            z: true,
            d: Some(DShape::PerHead),
            ..SsdConfig::new(2, 96, 4, 64, 1, 128)
        },
    ];
    assert!(gated.iter().all(|c| c.z && !c.seq_idx));
    ssd_type::<f32>(be, &gated, 89, &mut t);
    ssd_type::<bf16>(be, &gated, 90, &mut t);
    ssd_type::<f16>(be, &gated, 91, &mut t);
    // The same through the 32-step kernel (`MAMBA_CUDA_SSD_BWDL_GATE=0`), as before.
    std::env::set_var("MAMBA_CUDA_SSD_BWDL_GATE", "0");
    ssd_type::<f32>(be, &gated, 92, &mut t);
    ssd_type::<bf16>(be, &gated, 93, &mut t);
    std::env::remove_var("MAMBA_CUDA_SSD_BWDL_GATE");
    std::env::remove_var("MAMBA_CUDA_SSD_BWDL");
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC");
    t.finish("ssd, 64-step chunked backward (forward + backward)");
}

/// SSD with packed sequences (seq_idx) as one call per sequence (`MAMBA_CUDA_SSD_SEGMENTS=1`:
/// gpu/segments.rs), forward and backward against the oracle in f32, bf16 and f16: the
/// configurations of the other SSD tests that have a seq_idx (sequences of a few steps),
/// then sequences of 1 to 300 steps at p 64, N 64 / 128 (the chunked kernels per sequence),
/// with every option, D per head and per channel; then the default rule at a width where
/// the chunked backward takes the call (h p N = 2^17), the chunked backward forced with its
/// resets (fifty-fifth session: the 64-step and the 32-step kernels), and the recurrent
/// kernels forced (`MAMBA_CUDA_SSD_SEGMENTS=0`, `MAMBA_CUDA_SSD_BWDC_SEQ=0`) on the same cases.
#[test]
fn ssd_packed_sequences_match_the_oracle() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(95);
    let few: Vec<SsdConfig> = ssd_configs(&mut rng)
        .into_iter()
        .filter(|c| c.seq_idx)
        .collect();
    assert!(few.len() >= 3, "seq_idx cases are covered");
    // (config, the sequences' first steps after 0)
    let long: Vec<(SsdConfig, Vec<usize>)> = vec![
        (
            SsdConfig::new(2, 300, 4, 64, 1, 128).all_options(),
            vec![100, 230],
        ),
        (
            SsdConfig {
                d: Some(DShape::PerChannel),
                ..SsdConfig::new(1, 257, 3, 64, 1, 64).all_options()
            },
            vec![1, 2, 64, 200, 256],
        ),
        (
            SsdConfig {
                z: false,
                ..SsdConfig::new(2, 200, 4, 64, 2, 128).all_options()
            },
            vec![],
        ),
    ];
    let wide = (
        SsdConfig {
            z: false,
            ..SsdConfig::new(1, 400, 16, 64, 1, 128).all_options()
        },
        vec![130, 270],
    );
    let mut t = Tally::default();
    let run_long = |cases: &[(SsdConfig, Vec<usize>)], seed: u64, t: &mut Tally| {
        let mut rng = Rng::new(seed);
        for (cfg, starts) in cases {
            let mut case = SsdCase::random(cfg, &mut rng);
            let ids: Vec<i32> = (0..cfg.batch * cfg.seqlen)
                .map(|e| starts.iter().filter(|&&s| s <= e % cfg.seqlen).count() as i32)
                .collect();
            case.seq_idx = Some(ids);
            let tag = format!("{cfg:?} sequences from {starts:?}");
            t.add(
                &tag,
                check_ssd::<f32, _>(be, &case, Tolerance::for_type::<f32>()),
            );
            t.add(
                &tag,
                check_ssd::<bf16, _>(be, &case, Tolerance::for_type::<bf16>()),
            );
            t.add(
                &tag,
                check_ssd::<f16, _>(be, &case, Tolerance::for_type::<f16>()),
            );
        }
    };
    std::env::set_var("MAMBA_CUDA_SSD_SEGMENTS", "1");
    ssd_type::<f32>(be, &few, 96, &mut t);
    ssd_type::<bf16>(be, &few, 97, &mut t);
    ssd_type::<f16>(be, &few, 98, &mut t);
    run_long(&long, 99, &mut t);
    std::env::remove_var("MAMBA_CUDA_SSD_SEGMENTS");
    run_long(std::slice::from_ref(&wide), 100, &mut t);
    // The chunked backward with the resets in its prep kernel (fifty-fifth session): the
    // 64-step kernels (p 64; with z, f32 / bf16 through `run_gated`) and the 32-step kernel,
    // forced, then the recurrent kernels (`MAMBA_CUDA_SSD_BWDC_SEQ=0`, no per-sequence form).
    std::env::set_var("MAMBA_CUDA_SSD_BWDC", "1");
    std::env::set_var("MAMBA_CUDA_SSD_BWDL", "1");
    run_long(&long, 101, &mut t);
    std::env::set_var("MAMBA_CUDA_SSD_BWDL", "0");
    ssd_type::<f32>(be, &few, 102, &mut t);
    ssd_type::<bf16>(be, &few, 103, &mut t);
    ssd_type::<f16>(be, &few, 104, &mut t);
    run_long(&long, 105, &mut t);
    std::env::remove_var("MAMBA_CUDA_SSD_BWDL");
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC");
    std::env::set_var("MAMBA_CUDA_SSD_SEGMENTS", "0");
    std::env::set_var("MAMBA_CUDA_SSD_BWDC_SEQ", "0");
    run_long(&long, 99, &mut t);
    run_long(std::slice::from_ref(&wide), 100, &mut t);
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC_SEQ");
    std::env::remove_var("MAMBA_CUDA_SSD_SEGMENTS");
    t.finish("ssd with packed sequences (forward + backward)");
}

/// The gated SSD backward through the 64-step kernels when the caller asks for no dz (the
/// ABI allows it; the host slices always ask): no forward is run, and the other gradients
/// are those of the call that asks for dz, within the gradient tolerance (the plugin's
/// reductions use atomics), in f32 and bf16.
#[test]
fn ssd_backward_gated_without_dz() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("MAMBA_CUDA_SSD_BWDC", "1");
    std::env::set_var("MAMBA_CUDA_SSD_BWDL", "1");
    let r32 = gated_without_dz::<f32>(be, Tolerance::F32.grad);
    let r16 = gated_without_dz::<bf16>(be, Tolerance::BF16.grad);
    std::env::remove_var("MAMBA_CUDA_SSD_BWDL");
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC");
    eprintln!("gated SSD backward without dz: f32 {r32:?}, bf16 {r16:?}");
    assert!(r32.is_ok() && r16.is_ok(), "f32 {r32:?}, bf16 {r16:?}");
}

fn gated_without_dz<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    tol: f64,
) -> Result<(), String> {
    let (b, l, h, p, n) = (2, 150, 3, 64, 128);
    let s = be.stream().unwrap();
    let mut rng = Rng::new(17);
    let io = [b, l, h, p];
    let x = up::<T>(be, &s, &rng.uniforms(b * l * h * p, -1.0, 1.0));
    let z = up::<T>(be, &s, &rng.uniforms(b * l * h * p, -3.0, 3.0));
    let dt = up::<T>(be, &s, &rng.uniforms(b * l * h, -3.0, 0.0));
    let a: Vec<f32> = rng.uniforms(h, 0.5, 1.5).iter().map(|v| -v).collect();
    let a = be.upload(&a, &s).unwrap();
    let bb = up::<T>(be, &s, &rng.uniforms(b * l * n, -1.0, 1.0));
    let cc = up::<T>(be, &s, &rng.uniforms(b * l * n, -1.0, 1.0));
    let dd = be.upload(&rng.uniforms(h, -1.0, 1.0), &s).unwrap();
    let dout = up::<T>(be, &s, &rng.uniforms(b * l * h * p, -1.0, 1.0));
    let out = be.alloc::<T>(b * l * h * p).unwrap();
    let fwd = SsdDesc {
        x: x.desc(&io),
        dt: dt.desc(&[b, l, h]),
        a: a.desc(&[h]),
        b: bb.desc(&[b, l, 1, n]),
        c: cc.desc(&[b, l, 1, n]),
        d: dd.desc(&[h]),
        z: z.desc(&io),
        dt_bias: TensorDesc::NONE,
        initial_states: TensorDesc::NONE,
        seq_idx: TensorDesc::NONE,
        out: out.desc(&io),
        final_states: TensorDesc::NONE,
        dt_softplus: 1,
        has_dt_limit: 0,
        dt_lo: 0.0,
        dt_hi: f32::INFINITY,
        chunk_size: 0,
        reserved: 0,
    };
    // Gradients of one call: dx, ddt, dB, dC (storage type), dA, dD (f32).
    let grads = |with_dz: bool| {
        let gx = be.alloc::<T>(b * l * h * p).unwrap();
        let gdt = be.alloc::<T>(b * l * h).unwrap();
        let gb = be.alloc::<T>(b * l * n).unwrap();
        let gc = be.alloc::<T>(b * l * n).unwrap();
        let gz = be.alloc::<T>(b * l * h * p).unwrap();
        let ga = be.alloc::<f32>(h).unwrap();
        let gd = be.alloc::<f32>(h).unwrap();
        let bwd = SsdBwdDesc {
            fwd,
            dout: dout.desc(&io),
            dfinal_states: TensorDesc::NONE,
            dx: gx.desc(&io),
            ddt: gdt.desc(&[b, l, h]),
            da: ga.desc(&[h]),
            db: gb.desc(&[b, l, 1, n]),
            dc: gc.desc(&[b, l, 1, n]),
            dd: gd.desc(&[h]),
            dz: if with_dz {
                gz.desc(&io)
            } else {
                TensorDesc::NONE
            },
            ddt_bias: TensorDesc::NONE,
            dinitial_states: TensorDesc::NONE,
        };
        // SAFETY: every descriptor names a live buffer of its shape, allocated above.
        unsafe { be.ssd_backward_device(&bwd, &s) }.unwrap();
        let f = |v: Vec<T>| v.iter().map(|e| e.to_f32() as f64).collect::<Vec<f64>>();
        let g = |v: Vec<f32>| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
        vec![
            ("dx", f(gx.to_vec(&s).unwrap())),
            ("ddt", f(gdt.to_vec(&s).unwrap())),
            ("dB", f(gb.to_vec(&s).unwrap())),
            ("dC", f(gc.to_vec(&s).unwrap())),
            ("dA", g(ga.to_vec(&s).unwrap())),
            ("dD", g(gd.to_vec(&s).unwrap())),
        ]
    };
    let with = grads(true);
    let without = grads(false);
    for ((name, a), (_, b)) in with.iter().zip(&without) {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let den: f64 = a.iter().map(|x| x * x).sum();
        let rel = (num / den.max(f64::MIN_POSITIVE)).sqrt();
        // NaN fails too (a NaN comparison is false).
        if rel.is_nan() || rel > tol || den == 0.0 {
            return Err(format!("{name}: rel-L2 {rel:.2e} (|with dz|^2 {den:.3e})"));
        }
    }
    Ok(())
}

/// The SSD backward on strided views (sixty-fourth session): x, B, C and dt as slices of one
/// row buffer per (batch row, step) and dout in padded rows, as the Mamba2Block passes its
/// conv output and in_proj rows; dx, dB, dC and d dt as slices of one output row buffer. Each
/// path against the same call on dense tensors: the 64-step kernels, the 32-step tensor-core
/// and CUDA-core chunk kernels, rows too misaligned for the tensor cores, packed sequences,
/// and the paths that work on dense copies (a gate z, the recurrent kernels). Padding (NaN)
/// stays untouched, and a gradient over an input's bytes is refused.
#[test]
fn ssd_backward_strided_matches_dense() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let keys = ["MAMBA_CUDA_SSD_BWDC", "MAMBA_CUDA_SSD_BWDL"];
    let mut cases = 0;
    // (bwdc, bwdl, (b, l, h, p, g, N), z, seq_idx, odd row strides)
    #[allow(clippy::type_complexity)]
    let table: &[(
        &str,
        &str,
        (usize, usize, usize, usize, usize, usize),
        bool,
        bool,
        bool,
    )] = &[
        ("1", "1", (2, 300, 4, 64, 1, 128), false, false, false),
        ("1", "1", (1, 200, 4, 64, 2, 64), false, true, false),
        ("1", "0", (2, 150, 3, 64, 1, 64), false, false, false),
        ("1", "0", (1, 100, 4, 16, 2, 32), false, false, false),
        ("1", "1", (2, 130, 2, 64, 1, 128), false, false, true),
        ("1", "1", (2, 120, 2, 64, 1, 128), true, false, false),
        ("0", "0", (2, 90, 3, 32, 1, 16), false, false, false),
    ];
    for &(bwdc, bwdl, dims, z, seq, odd) in table {
        std::env::set_var(keys[0], bwdc);
        std::env::set_var(keys[1], bwdl);
        ssd_strided_case::<f32>(be, dims, z, seq, odd, 1e-6, 71 + cases);
        ssd_strided_case::<bf16>(be, dims, z, seq, odd, 1e-2, 79 + cases);
        cases += 1;
    }
    for k in keys {
        std::env::remove_var(k);
    }
    println!("SSD backward strided: {cases} cases x 2 types pass");
}

#[allow(clippy::too_many_arguments)]
fn ssd_strided_case<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    (b, l, h, p, ng, n): (usize, usize, usize, usize, usize, usize),
    with_z: bool,
    with_seq: bool,
    odd: bool,
    tol: f64,
    seed: u64,
) {
    let s = be.stream().unwrap();
    let mut rng = Rng::new(seed);
    let (hp, gn) = (h * p, ng * n);
    let x = rng.uniforms(b * l * hp, -1.0, 1.0);
    let dt = rng.uniforms(b * l * h, -3.0, 0.5);
    let bm = rng.uniforms(b * l * gn, -1.0, 1.0);
    let cm = rng.uniforms(b * l * gn, -1.0, 1.0);
    let dout = rng.uniforms(b * l * hp, -1.0, 1.0);
    let zv = rng.uniforms(b * l * hp, -3.0, 3.0);
    let a: Vec<f32> = rng.uniforms(h, 0.5, 1.5).iter().map(|v| -v).collect();
    let a = be.upload(&a, &s).unwrap();
    let dd = be.upload(&rng.uniforms(h, -1.0, 1.0), &s).unwrap();
    let bias = be.upload(&rng.uniforms(h, -1.0, 1.0), &s).unwrap();
    let st = [b, h, p, n];
    let init = be.upload(&rng.uniforms(b * hp * n, -1.0, 1.0), &s).unwrap();
    let dfin = be.upload(&rng.uniforms(b * hp * n, -1.0, 1.0), &s).unwrap();
    let seq: Vec<i32> = (0..b * l).map(|e| ((e % l) * 3 / l) as i32).collect();
    let seq = be.upload(&seq, &s).unwrap();
    let tv = |v: &[f32]| v.iter().map(|&e| T::from_f32(e)).collect::<Vec<T>>();
    // Row layouts (elements): inputs [8 | x | 8 | B | 8 | C | 8 | dt | 8], outputs [dx | 8 | dB
    // | 8 | dC | 8 | dt | 8], dout / z rows padded by 8; rows rounded to 8 (16-byte rows in
    // both types), one element more with `odd`; batch rows 16 elements apart.
    let r8 = |v: usize| v.div_ceil(8) * 8 + odd as usize;
    let (ox, ob) = (8, 8 + hp + 8);
    let (oc, odt) = (ob + gn + 8, ob + 2 * gn + 16);
    let irow = r8(odt + h + 8);
    let (pdb, pdc) = (hp + 8, hp + gn + 16);
    let pddt = hp + 2 * gn + 24;
    let orow = r8(pddt + h + 8);
    let yrow = r8(hp + 8);
    let sb = |row: usize| l * row + 16;
    let nan = T::from_f32(f32::NAN);
    let mut ibuf = vec![nan; b * sb(irow)];
    let mut ybuf = vec![nan; b * sb(yrow)];
    let mut zbuf = vec![nan; b * sb(yrow)];
    for i in 0..b {
        for t in 0..l {
            let r = i * l + t;
            let (ir, yr) = (i * sb(irow) + t * irow, i * sb(yrow) + t * yrow);
            for e in 0..hp {
                ibuf[ir + ox + e] = T::from_f32(x[r * hp + e]);
                ybuf[yr + e] = T::from_f32(dout[r * hp + e]);
                zbuf[yr + e] = T::from_f32(zv[r * hp + e]);
            }
            for e in 0..gn {
                ibuf[ir + ob + e] = T::from_f32(bm[r * gn + e]);
                ibuf[ir + oc + e] = T::from_f32(cm[r * gn + e]);
            }
            for e in 0..h {
                ibuf[ir + odt + e] = T::from_f32(dt[r * h + e]);
            }
        }
    }
    let es = std::mem::size_of::<T>() as u64;
    let io = [b, l, h, p];
    let bcd = [b, l, ng, n];
    // A view of `dims` at element `off` of rows `row` apart.
    let view = |base: u64, off: usize, dims: &[usize], row: usize| {
        let mut stv = vec![0i64; dims.len()];
        stv[dims.len() - 1] = 1;
        if dims.len() == 4 {
            stv[2] = dims[3] as i64;
        }
        stv[1] = row as i64;
        stv[0] = sb(row) as i64;
        TensorDesc::dense(base + off as u64 * es, T::CODE, dims).with_strides(&stv)
    };
    // One call: the gradients (dx, ddt, dB, dC, dz as f64 in dense order; dA, dD, d dt_bias,
    // d initial states), or the error.
    let call = |x: TensorDesc,
                dt: TensorDesc,
                bv: TensorDesc,
                cv: TensorDesc,
                zd: TensorDesc,
                dy: TensorDesc,
                outs: [TensorDesc; 5]| {
        let ga = be.alloc::<f32>(h).unwrap();
        let gd = be.alloc::<f32>(h).unwrap();
        let gbias = be.alloc::<f32>(h).unwrap();
        let ginit = be.alloc::<f32>(b * hp * n).unwrap();
        let fwd = SsdDesc {
            x,
            dt,
            a: a.desc(&[h]),
            b: bv,
            c: cv,
            d: dd.desc(&[h]),
            z: zd,
            dt_bias: bias.desc(&[h]),
            initial_states: init.desc(&st),
            seq_idx: if with_seq {
                seq.desc(&[b, l])
            } else {
                TensorDesc::NONE
            },
            out: TensorDesc::NONE,
            final_states: TensorDesc::NONE,
            dt_softplus: 1,
            has_dt_limit: 0,
            dt_lo: 0.0,
            dt_hi: f32::INFINITY,
            chunk_size: 0,
            reserved: 0,
        };
        let bwd = SsdBwdDesc {
            fwd,
            dout: dy,
            dfinal_states: dfin.desc(&st),
            dx: outs[0],
            ddt: outs[1],
            da: ga.desc(&[h]),
            db: outs[2],
            dc: outs[3],
            dd: gd.desc(&[h]),
            dz: outs[4],
            ddt_bias: gbias.desc(&[h]),
            dinitial_states: ginit.desc(&st),
        };
        // SAFETY: every descriptor names a live buffer of this plugin holding the elements its
        // strides reach.
        unsafe { be.ssd_backward_device(&bwd, &s) }.map(|_| {
            let g = |v: Vec<f32>| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
            [
                g(ga.to_vec(&s).unwrap()),
                g(gd.to_vec(&s).unwrap()),
                g(gbias.to_vec(&s).unwrap()),
                g(ginit.to_vec(&s).unwrap()),
            ]
        })
    };
    let what = format!(
        "{} ({b}, {l}, {h}, {p}, {ng}, {n}) z {with_z} seq_idx {with_seq} odd {odd}",
        std::any::type_name::<T>()
    );
    // Dense. Rows too misaligned for the tensor-core kernels (`odd`) take the CUDA-core
    // chunk kernels in the strided call, so the dense call is held to them too (another
    // algorithm differs by ~2e-6 in f32).
    if odd {
        std::env::set_var("MAMBA_CUDA_SSD_BWDC_TC", "0");
    }
    let xd = be.upload(&tv(&x), &s).unwrap();
    let dtd = be.upload(&tv(&dt), &s).unwrap();
    let bd = be.upload(&tv(&bm), &s).unwrap();
    let cd = be.upload(&tv(&cm), &s).unwrap();
    let yd = be.upload(&tv(&dout), &s).unwrap();
    let zd = be.upload(&tv(&zv), &s).unwrap();
    let gx = be.alloc::<T>(b * l * hp).unwrap();
    let gdt = be.alloc::<T>(b * l * h).unwrap();
    let gb = be.alloc::<T>(b * l * gn).unwrap();
    let gc = be.alloc::<T>(b * l * gn).unwrap();
    let gz = be.alloc::<T>(b * l * hp).unwrap();
    let opt = |on: bool, t: TensorDesc| if on { t } else { TensorDesc::NONE };
    let dense = call(
        xd.desc(&io),
        dtd.desc(&[b, l, h]),
        bd.desc(&bcd),
        cd.desc(&bcd),
        opt(with_z, zd.desc(&io)),
        yd.desc(&io),
        [
            gx.desc(&io),
            gdt.desc(&[b, l, h]),
            gb.desc(&bcd),
            gc.desc(&bcd),
            opt(with_z, gz.desc(&io)),
        ],
    )
    .unwrap_or_else(|e| panic!("{what}: dense call: {e}"));
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC_TC");
    let f = |v: Vec<T>| v.iter().map(|e| e.to_f32() as f64).collect::<Vec<f64>>();
    let dense_io = [
        f(gx.to_vec(&s).unwrap()),
        f(gdt.to_vec(&s).unwrap()),
        f(gb.to_vec(&s).unwrap()),
        f(gc.to_vec(&s).unwrap()),
        f(gz.to_vec(&s).unwrap()),
    ];
    // Strided.
    let ib = be.upload(&ibuf, &s).unwrap();
    let yb = be.upload(&ybuf, &s).unwrap();
    let zb = be.upload(&zbuf, &s).unwrap();
    let obuf = be.upload(&vec![nan; b * sb(orow)], &s).unwrap();
    let gzs = be.upload(&vec![nan; b * sb(yrow)], &s).unwrap();
    let (ip, op) = (ib.ptr(), obuf.ptr());
    let outs = [
        view(op, 0, &io, orow),
        view(op, pddt, &[b, l, h], orow),
        view(op, pdb, &bcd, orow),
        view(op, pdc, &bcd, orow),
        opt(with_z, view(gzs.ptr(), 0, &io, yrow)),
    ];
    let ins = (
        view(ip, ox, &io, irow),
        view(ip, odt, &[b, l, h], irow),
        view(ip, ob, &bcd, irow),
        view(ip, oc, &bcd, irow),
        opt(with_z, view(zb.ptr(), 0, &io, yrow)),
        view(yb.ptr(), 0, &io, yrow),
    );
    let got = call(ins.0, ins.1, ins.2, ins.3, ins.4, ins.5, outs)
        .unwrap_or_else(|e| panic!("{what}: strided call: {e}"));
    let ov = obuf.to_vec(&s).unwrap();
    let zo = gzs.to_vec(&s).unwrap();
    // Gather the strided gradients; everything else must still be NaN.
    let mut seen = vec![false; ov.len()];
    let mut take = |off: usize, cols: usize| {
        let mut v = Vec::with_capacity(b * l * cols);
        for i in 0..b {
            for t in 0..l {
                for e in 0..cols {
                    let k = i * sb(orow) + t * orow + off + e;
                    seen[k] = true;
                    v.push(ov[k].to_f32() as f64);
                }
            }
        }
        v
    };
    let sgx = take(0, hp);
    let sgdt = take(pddt, h);
    let sgb = take(pdb, gn);
    let sgc = take(pdc, gn);
    let touched = ov
        .iter()
        .zip(&seen)
        .filter(|(v, &k)| !k && !v.to_f32().is_nan())
        .count();
    assert_eq!(touched, 0, "{what}: padding of the output rows written");
    let mut sgz = Vec::new();
    if with_z {
        let mut zseen = vec![false; zo.len()];
        for i in 0..b {
            for t in 0..l {
                for e in 0..hp {
                    let k = i * sb(yrow) + t * yrow + e;
                    zseen[k] = true;
                    sgz.push(zo[k].to_f32() as f64);
                }
            }
        }
        let zt = zo
            .iter()
            .zip(&zseen)
            .filter(|(v, &k)| !k && !v.to_f32().is_nan())
            .count();
        assert_eq!(zt, 0, "{what}: padding of dz's rows written");
    }
    let rel = |a: &[f64], e: &[f64]| {
        let num: f64 = a.iter().zip(e).map(|(x, y)| (x - y) * (x - y)).sum();
        let den: f64 = e.iter().map(|y| y * y).sum();
        (num / den.max(f64::MIN_POSITIVE)).sqrt()
    };
    let mut pairs = vec![
        ("dx", &sgx, &dense_io[0]),
        ("ddt", &sgdt, &dense_io[1]),
        ("dB", &sgb, &dense_io[2]),
        ("dC", &sgc, &dense_io[3]),
        ("dA", &got[0], &dense[0]),
        ("dD", &got[1], &dense[1]),
        ("d dt_bias", &got[2], &dense[2]),
        ("dinitial_states", &got[3], &dense[3]),
    ];
    if with_z {
        pairs.push(("dz", &sgz, &dense_io[4]));
    }
    for (name, a, e) in pairs {
        let r = rel(a, e);
        // NaN fails too.
        assert!(
            r <= tol && a.len() == e.len(),
            "{what}: {name} strided vs dense rel-L2 {r:.3e}"
        );
    }
    // dx over x's bytes (the same view) is refused; dB over the input rows' padding columns
    // beside B's would be a disjoint slice, but over B itself is not.
    let e = call(
        ins.0,
        ins.1,
        ins.2,
        ins.3,
        ins.4,
        ins.5,
        [ins.0, outs[1], outs[2], outs[3], outs[4]],
    )
    .unwrap_err();
    assert!(e.to_string().contains("overlap"), "{what}: {e}");
    let e = call(
        ins.0,
        ins.1,
        ins.2,
        ins.3,
        ins.4,
        ins.5,
        [outs[0], outs[1], ins.2, outs[3], outs[4]],
    )
    .unwrap_err();
    assert!(e.to_string().contains("overlap"), "{what}: {e}");
}

/// `bwd_ssdt_*` forced (`MAMBA_CUDA_BWD2=1`) in every variant (rows per warp 1 / 2 / 4
/// at N > 64, one block per SM), then the general kernel forced (`=0`), then the
/// default choice, all against the oracle.
#[test]
fn ssd_backward_time_in_registers_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let cfgs = ssdt_configs(&mut Rng::new(31));
    let mut t = Tally::default();
    let variants = [
        ("1", "2", "0"),
        ("1", "1", "0"),
        ("1", "4", "0"),
        ("1", "2", "1"),
        ("0", "2", "0"),
    ];
    // MAMBA_GPU_QUICK=1 (compute-sanitizer runs): two variants, f32 only.
    let quick = quick();
    let variants = if quick { &variants[..2] } else { &variants[..] };
    // The recurrent kernels under test, not the chunked form (the default at p 64, N 64 / 128).
    std::env::set_var("MAMBA_CUDA_SSD_BWDC", "0");
    for &(force, rp, b1) in variants {
        std::env::set_var("MAMBA_CUDA_BWD2", force);
        std::env::set_var("MAMBA_CUDA_BWD2_RP", rp);
        std::env::set_var("MAMBA_CUDA_BWD2_B1", b1);
        eprintln!("MAMBA_CUDA_BWD2={force} RP={rp} B1={b1}");
        ssd_type::<f32>(be, &cfgs, 41, &mut t);
        if quick {
            continue;
        }
        ssd_type::<bf16>(be, &cfgs, 42, &mut t);
        ssd_type::<f16>(be, &cfgs, 43, &mut t);
    }
    std::env::remove_var("MAMBA_CUDA_BWD2");
    std::env::remove_var("MAMBA_CUDA_BWD2_RP");
    std::env::remove_var("MAMBA_CUDA_BWD2_B1");
    std::env::remove_var("MAMBA_CUDA_SSD_BWDC");
    if quick {
        t.finish("ssd, time in registers (forward + backward, quick)");
        return;
    }
    // The default choice at a shape with many rows (b2 h16 p64: 2048 rows).
    let big = [SsdConfig {
        dt_softplus: true,
        dt_bias: true,
        d: Some(DShape::PerHead),
        ..SsdConfig::new(2, 150, 16, 64, 1, 128)
    }];
    ssd_type::<f32>(be, &big, 44, &mut t);
    ssd_type::<bf16>(be, &big, 45, &mut t);
    t.finish("ssd, time in registers (forward + backward)");
}

// ------------------------------------------------------------------ SPEC 3

fn conv_configs(rng: &mut Rng) -> Vec<ConvConfig> {
    let all = |c: ConvConfig| ConvConfig {
        bias: true,
        initial_states: true,
        activation: Activation::Silu,
        dfinal_states: true,
        ..c
    };
    let mut v = vec![
        all(ConvConfig::new(2, 16, 100, 4)),
        ConvConfig {
            layout: ConvLayout::ChannelLast,
            ..all(ConvConfig::new(2, 24, 77, 4))
        },
        // L shorter than the states.
        all(ConvConfig::new(1, 5, 2, 4)),
        ConvConfig {
            layout: ConvLayout::ChannelLast,
            ..all(ConvConfig::new(2, 3, 1, 6))
        },
        // Width 1 (no states) and a wide kernel.
        all(ConvConfig::new(2, 4, 9, 1)),
        ConvConfig {
            activation: Activation::None,
            ..all(ConvConfig::new(1, 7, 300, 9))
        },
    ];
    for _ in 0..rounds() {
        v.push(ConvConfig::random(rng));
    }
    v
}

fn conv_type<T: Element>(be: &CudaBackend, cfgs: &[ConvConfig], seed: u64, t: &mut Tally) {
    let mut rng = Rng::new(seed);
    for cfg in cfgs {
        let case = ConvCase::random(cfg, &mut rng);
        let r = check_causal_conv1d::<T, _>(be, &case, Tolerance::for_type::<T>());
        t.add(&format!("{cfg:?}"), r);
    }
}

#[test]
fn causal_conv1d_backward_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let cfgs = conv_configs(&mut Rng::new(13));
    let mut t = Tally::default();
    conv_type::<f32>(be, &cfgs, 7, &mut t);
    conv_type::<bf16>(be, &cfgs, 8, &mut t);
    conv_type::<f16>(be, &cfgs, 9, &mut t);
    t.finish("causal_conv1d (forward + backward)");
}

/// The conv backward on strided x, dout and dx (each padded differently, as slices of wider
/// activations are: Mamba2Block's conv input inside in_proj's output) against the same call
/// on dense copies: dx equal bit for bit, dweight / dbias / dinitial_states to the atomics'
/// order, the padding of dx's buffer untouched; and a dx overlapping x refused. Both
/// layouts, the fused widths (one and two channels per thread) and the generic one (W 5),
/// f32 and bf16.
#[test]
fn causal_conv1d_backward_strided_matches_dense() {
    let Some(be) = backend() else { return };
    let keys = ["MAMBA_CUDA_CONV_BWD_CL2", "MAMBA_CUDA_CONV_BWD_CLS"];
    let before = keys.map(|k| std::env::var(k).ok());
    let mut checks = 0;
    // One and two channels per thread (`cl2`, where channels are dense and rows even), and
    // staged through shared memory (`cls`, where every row start is aligned to 16 bytes: the
    // pads multiples of 8 there, so that both the dense and the strided call take it).
    for (cl2, cls, pads) in [
        ("0", "0", [4, 6, 2]),
        ("1", "0", [4, 6, 2]),
        ("0", "1", [8, 16, 24]),
    ] {
        std::env::set_var(keys[0], cl2);
        std::env::set_var(keys[1], cls);
        for (cl, w, (b, c, l)) in [
            (true, 4, (2, 72, 300)),
            (true, 3, (3, 40, 33)),
            (true, 2, (1, 7, 90)),
            (false, 4, (2, 24, 700)),
            (true, 5, (2, 16, 50)),
            (false, 2, (1, 9, 1030)),
            (true, 4, (2, 136, 200)),
            (true, 3, (1, 64, 64)),
            (true, 2, (3, 8, 1)),
        ] {
            conv_strided_case::<f32>(be, cl, w, (b, c, l), pads, 31 + checks);
            conv_strided_case::<bf16>(be, cl, w, (b, c, l), pads, 37 + checks);
            checks += 1;
        }
    }
    for (k, v) in keys.iter().zip(before) {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    println!("conv backward strided: {checks} cases x 2 types pass");
}

fn conv_strided_case<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    cl: bool,
    w: usize,
    (b, c, l): (usize, usize, usize),
    pads: [usize; 3],
    seed: u64,
) {
    let s = be.stream().unwrap();
    let mut rng = Rng::new(seed);
    let n = b * c * l;
    let dims = if cl { [b, l, c] } else { [b, c, l] };
    // Element (i, ch, t) of a tensor whose rows (channels for channel-last, steps for
    // channel-first) are padded by `pad` and whose batch rows by 8 more elements.
    let layout = |pad: usize| -> ([i64; 3], usize) {
        let (inner, outer) = if cl { (c, l) } else { (l, c) };
        let row = inner + pad;
        let sb = outer * row + 8;
        ([sb as i64, row as i64, 1], b * sb)
    };
    let idx = |st: &[i64; 3], i: usize, ch: usize, t: usize| {
        let (o, n) = if cl { (t, ch) } else { (ch, t) };
        i * st[0] as usize + o * st[1] as usize + n
    };
    let dense_st: [i64; 3] = if cl {
        [(l * c) as i64, c as i64, 1]
    } else {
        [(c * l) as i64, l as i64, 1]
    };
    let mut normals = |k: usize| -> Vec<f32> { (0..k).map(|_| rng.normal() as f32).collect() };
    let x: Vec<T> = normals(n).iter().map(|&v| T::from_f32(v)).collect();
    let dout: Vec<T> = normals(n).iter().map(|&v| T::from_f32(v)).collect();
    let wt: Vec<f32> = normals(c * w).iter().map(|v| v * 0.5).collect();
    let bias = normals(c);
    let init = normals(b * c * (w - 1));
    let dfin = normals(b * c * (w - 1));
    let up_f = |v: &[f32]| be.upload(v, &s).unwrap();
    let (wd, bd, id, fd) = (up_f(&wt), up_f(&bias), up_f(&init), up_f(&dfin));
    let st = [b, c, w - 1];
    let run = |xd: TensorDesc, dd: TensorDesc, dxd: TensorDesc| {
        let dw = be.alloc::<f32>(c * w).unwrap();
        let db = be.alloc::<f32>(c).unwrap();
        let di = be.alloc::<f32>(b * c * (w - 1)).unwrap();
        let desc = abi::Conv1dBwdDesc {
            fwd: abi::Conv1dDesc {
                x: xd,
                weight: wd.desc(&[c, w]),
                bias: bd.desc(&[c]),
                initial_states: id.desc(&st),
                out: TensorDesc::NONE,
                final_states: TensorDesc::NONE,
                activation: abi::activation::SILU,
                channel_last: cl as u32,
            },
            dout: dd,
            dfinal_states: fd.desc(&st),
            dx: dxd,
            dweight: dw.desc(&[c, w]),
            dbias: db.desc(&[c]),
            dinitial_states: di.desc(&st),
        };
        // SAFETY: every descriptor names a live buffer of this plugin that holds the
        // elements its strides reach.
        unsafe { be.causal_conv1d_backward_device(&desc, &s) }.map(|_| {
            (
                dw.to_vec(&s).unwrap(),
                db.to_vec(&s).unwrap(),
                di.to_vec(&s).unwrap(),
            )
        })
    };
    // Dense.
    let xd = be.upload(&x, &s).unwrap();
    let dd = be.upload(&dout, &s).unwrap();
    let dxd = be.alloc::<T>(n).unwrap();
    let dense = run(xd.desc(&dims), dd.desc(&dims), dxd.desc(&dims)).unwrap();
    let dx_dense = dxd.to_vec(&s).unwrap();
    // Strided: x, dout and dx padded by `pads` (4, 6 and 2 are even: `cl2` applies where c is).
    let place = |v: &[T], pad: usize| -> (Vec<T>, [i64; 3]) {
        let (stv, len) = layout(pad);
        let mut out = vec![T::from_f32(f32::NAN); len];
        for i in 0..b {
            for ch in 0..c {
                for t in 0..l {
                    out[idx(&stv, i, ch, t)] = v[idx(&dense_st, i, ch, t)];
                }
            }
        }
        (out, stv)
    };
    let (xs, xst) = place(&x, pads[0]);
    let (ds, dst) = place(&dout, pads[1]);
    let (dxs0, dxst) = place(&vec![T::from_f32(f32::NAN); n], pads[2]);
    let (xsb, dsb) = (be.upload(&xs, &s).unwrap(), be.upload(&ds, &s).unwrap());
    let dxsb = be.upload(&dxs0, &s).unwrap();
    // The strides are in the descriptor's own dimension order: (b, L, c) or (b, c, L).
    let strided =
        |buf: u64, stv: &[i64; 3]| TensorDesc::dense(buf, T::CODE, &dims).with_strides(stv);
    let got = run(
        strided(xsb.ptr(), &xst),
        strided(dsb.ptr(), &dst),
        strided(dxsb.ptr(), &dxst),
    )
    .unwrap();
    let dx_str = dxsb.to_vec(&s).unwrap();
    let what = format!(
        "{} cl {cl} W {w} ({b}, {c}, {l})",
        std::any::type_name::<T>()
    );
    let written = dx_str.iter().filter(|v| !v.to_f32().is_nan()).count();
    assert_eq!(
        written, n,
        "{what}: elements written into dx's padded buffer"
    );
    for i in 0..b {
        for ch in 0..c {
            for t in 0..l {
                let (a, e) = (
                    dx_str[idx(&dxst, i, ch, t)].to_f32(),
                    dx_dense[idx(&dense_st, i, ch, t)].to_f32(),
                );
                assert_eq!(a.to_bits(), e.to_bits(), "{what}: dx at ({i}, {ch}, {t})");
            }
        }
    }
    for (name, a, e) in [
        ("dweight", &got.0, &dense.0),
        ("dbias", &got.1, &dense.1),
        ("dinitial_states", &got.2, &dense.2),
    ] {
        let (num, den) = a
            .iter()
            .zip(e.iter())
            .fold((0f64, 0f64), |(n, d), (&x, &y)| {
                (n + ((x - y) as f64).powi(2), d + (y as f64).powi(2))
            });
        let rel = (num / den.max(1e-30)).sqrt();
        assert!(
            rel <= 1e-6,
            "{what}: {name} strided vs dense rel-L2 {rel:.3e}"
        );
    }
    // dx over x's bytes is refused.
    let e = run(
        strided(xsb.ptr(), &xst),
        strided(dsb.ptr(), &dst),
        strided(xsb.ptr(), &xst),
    )
    .unwrap_err();
    assert!(e.to_string().contains("overlap"), "{what}: {e}");
}

// ------------------------------------------------------------------ timings

fn up<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    s: &plugin::CudaStream,
    v: &[f32],
) -> DeviceBuffer<T> {
    let t: Vec<T> = v.iter().map(|&x| T::from_f32(x)).collect();
    be.upload(&t, s).unwrap()
}

/// Mamba-1 forward + backward per call, as mamba-ssm's usual call: B/C (b, N, L), D, z,
/// delta_bias, softplus.
/// Per call (us): forward, forward + backward, backward; then, where the call has a
/// saving form (`selective_scan_saved_bytes` > 0), the saving forward and the training
/// pair (saving forward + backward from its checkpoints), else NaN.
fn time_scan<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    (b, d, n, l): (usize, usize, usize, usize),
) -> (f64, f64, f64, f64, f64) {
    let s = be.stream().unwrap();
    let mut rng = Rng::new(5);
    let code = T::CODE;
    let io = [b, d, l];
    let u = up::<T>(be, &s, &rng.uniforms(b * d * l, -1.0, 1.0));
    let delta = up::<T>(be, &s, &rng.uniforms(b * d * l, -3.0, 0.0));
    let a: Vec<f32> = rng
        .uniforms(d * n, 0.0, 1.0)
        .iter()
        .map(|v| -(v + 0.5))
        .collect();
    let a = be.upload(&a, &s).unwrap();
    let bb = up::<T>(be, &s, &rng.uniforms(b * n * l, -1.0, 1.0));
    let cc = up::<T>(be, &s, &rng.uniforms(b * n * l, -1.0, 1.0));
    let dd = be.upload(&rng.uniforms(d, -1.0, 1.0), &s).unwrap();
    let z = up::<T>(be, &s, &rng.uniforms(b * d * l, -1.0, 1.0));
    let bias = be.upload(&rng.uniforms(d, -1.0, 0.0), &s).unwrap();
    let dout = up::<T>(be, &s, &rng.uniforms(b * d * l, -1.0, 1.0));
    let out = be.alloc::<T>(b * d * l).unwrap();
    let grads: Vec<DeviceBuffer<T>> = (0..3).map(|_| be.alloc::<T>(b * d * l).unwrap()).collect();
    let gbc: Vec<DeviceBuffer<T>> = (0..2).map(|_| be.alloc::<T>(b * n * l).unwrap()).collect();
    let ga = be.alloc::<f32>(d * n).unwrap();
    let gd: Vec<DeviceBuffer<f32>> = (0..2).map(|_| be.alloc::<f32>(d).unwrap()).collect();
    let fwd = SelectiveScanDesc {
        u: u.desc(&io),
        delta: delta.desc(&io),
        a: a.desc(&[d, n]),
        b: bb.desc(&[b, n, l]),
        c: cc.desc(&[b, n, l]),
        d: dd.desc(&[d]),
        z: z.desc(&io),
        delta_bias: bias.desc(&[d]),
        initial_state: TensorDesc::NONE,
        out: out.desc(&io),
        last_state: TensorDesc::NONE,
        delta_softplus: 1,
        reserved: 0,
    };
    let bwd = SelectiveScanBwdDesc {
        fwd,
        dout: dout.desc(&io),
        dlast_state: TensorDesc::NONE,
        du: grads[0].desc(&io),
        ddelta: grads[1].desc(&io),
        da: ga.desc(&[d, n]),
        db: gbc[0].desc(&[b, n, l]),
        dc: gbc[1].desc(&[b, n, l]),
        dd: gd[0].desc(&[d]),
        dz: grads[2].desc(&io),
        ddelta_bias: gd[1].desc(&[d]),
        dinitial_state: TensorDesc::NONE,
    };
    assert_eq!(code, bwd.du.dtype);
    // SAFETY: every descriptor points to a live buffer of its shape, alive until the
    // stream is synchronised (time_calls waits for its last event).
    let fwd_only = be
        .time_calls(&s, 5, 20, || unsafe { be.selective_scan_device(&fwd, &s) })
        .unwrap();
    let both = be
        .time_calls(&s, 3, 20, || {
            // SAFETY: as above.
            unsafe { be.selective_scan_device(&fwd, &s) }?;
            // SAFETY: as above.
            unsafe { be.selective_scan_backward_device(&bwd, &s) }
        })
        .unwrap();
    let bwd_only = be
        .time_calls(&s, 3, 20, || {
            // SAFETY: as above.
            unsafe { be.selective_scan_backward_device(&bwd, &s) }
        })
        .unwrap();
    // SAFETY: only the descriptor's shapes are read.
    let sb = unsafe { be.selective_scan_saved_bytes(&fwd) }.unwrap();
    let (mut fs, mut pair) = (f64::NAN, f64::NAN);
    if sb > 0 {
        let ck = be.alloc::<f32>(sb / 4).unwrap();
        let ckp = ck.desc(&[sb / 4]).ptr;
        fs = median(
            &be.time_calls(&s, 5, 20, || {
                // SAFETY: as above; `ck` holds `sb` bytes.
                unsafe { be.selective_scan_forward_saving_device(&fwd, ckp, sb, &s) }
            })
            .unwrap(),
        );
        pair = median(
            &be.time_calls(&s, 3, 20, || {
                // SAFETY: as above.
                unsafe { be.selective_scan_forward_saving_device(&fwd, ckp, sb, &s) }?;
                // SAFETY: as above; the forward just wrote `ck`.
                unsafe { be.selective_scan_backward_saved_device(&bwd, ckp, sb, &s) }
            })
            .unwrap(),
        );
        s.synchronize(be).unwrap();
    }
    s.synchronize(be).unwrap();
    (
        median(&fwd_only),
        median(&both),
        median(&bwd_only),
        fs,
        pair,
    )
}

/// SSD forward + backward per call: D (h), dt_bias, softplus, no z.
fn time_ssd<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    shape: (usize, usize, usize, usize, usize),
) -> (f64, f64) {
    time_ssd_z::<T>(be, shape, false, 0)
}

/// SSD forward + backward per call: D (h), dt_bias, softplus, a gate z (with its gradient)
/// where `gated`, and with `segments` > 0 a seq_idx cutting each row into that many
/// sequences of equal length (packed sequences).
fn time_ssd_z<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    (b, l, h, p, n): (usize, usize, usize, usize, usize),
    gated: bool,
    segments: usize,
) -> (f64, f64) {
    let s = be.stream().unwrap();
    let mut rng = Rng::new(6);
    let io = [b, l, h, p];
    let x = up::<T>(be, &s, &rng.uniforms(b * l * h * p, -1.0, 1.0));
    let dt = up::<T>(be, &s, &rng.uniforms(b * l * h, -3.0, 0.0));
    let a: Vec<f32> = rng
        .uniforms(h, 0.0, 1.0)
        .iter()
        .map(|v| -(v + 0.5))
        .collect();
    let a = be.upload(&a, &s).unwrap();
    let bb = up::<T>(be, &s, &rng.uniforms(b * l * n, -1.0, 1.0));
    let cc = up::<T>(be, &s, &rng.uniforms(b * l * n, -1.0, 1.0));
    let dd = be.upload(&rng.uniforms(h, -1.0, 1.0), &s).unwrap();
    let bias = be.upload(&rng.uniforms(h, -1.0, 0.0), &s).unwrap();
    let dout = up::<T>(be, &s, &rng.uniforms(b * l * h * p, -1.0, 1.0));
    let out = be.alloc::<T>(b * l * h * p).unwrap();
    let gx = be.alloc::<T>(b * l * h * p).unwrap();
    let gdt = be.alloc::<T>(b * l * h).unwrap();
    let gbc: Vec<DeviceBuffer<T>> = (0..2).map(|_| be.alloc::<T>(b * l * n).unwrap()).collect();
    let gh: Vec<DeviceBuffer<f32>> = (0..3).map(|_| be.alloc::<f32>(h).unwrap()).collect();
    // The gate and its gradient (drawn last, so the other inputs are those of the ungated row).
    let zz = gated.then(|| {
        (
            up::<T>(be, &s, &rng.uniforms(b * l * h * p, -3.0, 3.0)),
            be.alloc::<T>(b * l * h * p).unwrap(),
        )
    });
    let seq: Vec<i32> = (0..b * l)
        .map(|e| ((e % l) * segments / l) as i32)
        .collect();
    let seq = (segments > 0).then(|| be.upload(&seq, &s).unwrap());
    let fwd = SsdDesc {
        x: x.desc(&io),
        dt: dt.desc(&[b, l, h]),
        a: a.desc(&[h]),
        b: bb.desc(&[b, l, 1, n]),
        c: cc.desc(&[b, l, 1, n]),
        d: dd.desc(&[h]),
        z: zz.as_ref().map_or(TensorDesc::NONE, |(z, _)| z.desc(&io)),
        dt_bias: bias.desc(&[h]),
        initial_states: TensorDesc::NONE,
        seq_idx: seq.as_ref().map_or(TensorDesc::NONE, |q| q.desc(&[b, l])),
        out: out.desc(&io),
        final_states: TensorDesc::NONE,
        dt_softplus: 1,
        has_dt_limit: 0,
        dt_lo: 0.0,
        dt_hi: f32::INFINITY,
        chunk_size: 0,
        reserved: 0,
    };
    let bwd = SsdBwdDesc {
        fwd,
        dout: dout.desc(&io),
        dfinal_states: TensorDesc::NONE,
        dx: gx.desc(&io),
        ddt: gdt.desc(&[b, l, h]),
        da: gh[0].desc(&[h]),
        db: gbc[0].desc(&[b, l, 1, n]),
        dc: gbc[1].desc(&[b, l, 1, n]),
        dd: gh[1].desc(&[h]),
        dz: zz.as_ref().map_or(TensorDesc::NONE, |(_, gz)| gz.desc(&io)),
        ddt_bias: gh[2].desc(&[h]),
        dinitial_states: TensorDesc::NONE,
    };
    // SAFETY: as in time_scan.
    let fwd_only = be
        .time_calls(&s, 5, 20, || unsafe { be.ssd_device(&fwd, &s) })
        .unwrap();
    let both = be
        .time_calls(&s, 3, 10, || {
            // SAFETY: as above.
            unsafe { be.ssd_device(&fwd, &s) }?;
            // SAFETY: as above.
            unsafe { be.ssd_backward_device(&bwd, &s) }
        })
        .unwrap();
    s.synchronize(be).unwrap();
    (median(&fwd_only), median(&both))
}

#[test]
fn forward_backward_timings() {
    if std::env::var("MAMBA_GPU_BWD_BENCH").ok().as_deref() != Some("1") {
        eprintln!("timings skipped (set MAMBA_GPU_BWD_BENCH=1)");
        return;
    }
    let Some(be) = backend() else { return };
    let _ = abi::ABI_VERSION;
    // `MAMBA_GPU_BWD_BENCH_ONLY=SUBSTR`: only the cases whose name contains SUBSTR.
    let only = std::env::var("MAMBA_GPU_BWD_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| name.contains(only.as_str());
    // `MAMBA_GPU_BWD_BENCH_SEED_L=l,l,...`: the seed rows' lengths (default 100, 400, 800).
    let seed_l: Vec<usize> = std::env::var("MAMBA_GPU_BWD_BENCH_SEED_L")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![100, 400, 800]);
    // The seed shapes in every storage type (a default chosen by f32 measurements alone
    // can be far off for the 16-bit types: twentieth session).
    for &l in &seed_l {
        for ty in ["f32", "bf16", "f16"] {
            if !run(&format!("scan1 {ty} b2 d384 N64 L{l}")) {
                continue;
            }
            let shape = (2, 384, 64, l);
            let (f, fb, bw, _, _) = match ty {
                "f32" => time_scan::<f32>(be, shape),
                "bf16" => time_scan::<bf16>(be, shape),
                _ => time_scan::<f16>(be, shape),
            };
            eprintln!(
                "TIMING scan1 {ty} b2 d384 N64 L{l}: fwd {f:.1} us, fwd+bwd {fb:.1} us, bwd {bw:.1} us"
            );
        }
    }
    // `MAMBA_GPU_BWD_BENCH_LM_B=b`: the LM rows at batch b instead of 8.
    let lb: usize = std::env::var("MAMBA_GPU_BWD_BENCH_LM_B")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    // `MAMBA_GPU_BWD_BENCH_LM_L=l,l,...`: the Mamba-1 LM rows' lengths (default 2048).
    let lm_l: Vec<usize> = std::env::var("MAMBA_GPU_BWD_BENCH_LM_L")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![2048]);
    for &ll in &lm_l {
        for name in ["f32", "bf16", "f16"] {
            if !run(&format!("scan1 {name} b{lb} d2048 N16 L{ll}")) {
                continue;
            }
            let shape = (lb, 2048, 16, ll);
            let (f, fb, bw, fs, pair) = match name {
                "f32" => time_scan::<f32>(be, shape),
                "bf16" => time_scan::<bf16>(be, shape),
                _ => time_scan::<f16>(be, shape),
            };
            eprintln!(
                "TIMING scan1 {name} b{lb} d2048 N16 L{ll}: fwd {f:.1} us, fwd+bwd {fb:.1} us, bwd {bw:.1} us; \
                 training pair (saved checkpoints): fwd {fs:.1} us, fwd+bwd {pair:.1} us"
            );
        }
    }
    for &l in &seed_l {
        for ty in ["f32", "bf16", "f16"] {
            if !run(&format!("ssd {ty} b2 L{l} h6 p64 N64")) {
                continue;
            }
            let shape = (2, l, 6, 64, 64);
            let (f, fb) = match ty {
                "f32" => time_ssd::<f32>(be, shape),
                "bf16" => time_ssd::<bf16>(be, shape),
                _ => time_ssd::<f16>(be, shape),
            };
            eprintln!("TIMING ssd {ty} b2 L{l} h6 p64 N64: fwd {f:.1} us, fwd+bwd {fb:.1} us");
        }
    }
    if run("ssd bf16 b8 L2048 h80 p64 N128") {
        let (f, fb) = time_ssd::<bf16>(be, (8, 2048, 80, 64, 128));
        eprintln!("TIMING ssd bf16 b8 L2048 h80 p64 N128: fwd {f:.1} us, fwd+bwd {fb:.1} us");
    }
    if run("ssd f16 b8 L2048 h80 p64 N128") {
        let (f, fb) = time_ssd::<f16>(be, (8, 2048, 80, 64, 128));
        eprintln!("TIMING ssd f16 b8 L2048 h80 p64 N128: fwd {f:.1} us, fwd+bwd {fb:.1} us");
    }
    if run("ssd f32 b8 L2048 h80 p64 N128") {
        let (f, fb) = time_ssd::<f32>(be, (8, 2048, 80, 64, 128));
        eprintln!("TIMING ssd f32 b8 L2048 h80 p64 N128: fwd {f:.1} us, fwd+bwd {fb:.1} us");
    }
    // With a gate z (and dz): f32 and bf16 through the 64-step kernels (`run_gated`),
    // `MAMBA_CUDA_SSD_BWDL_GATE=0` through the 32-step kernel.
    for ty in ["bf16", "f32", "f16"] {
        let name = format!("ssd {ty} b8 L2048 h80 p64 N128 gated");
        if !run(&name) {
            continue;
        }
        let shape = (8, 2048, 80, 64, 128);
        let (f, fb) = match ty {
            "f32" => time_ssd_z::<f32>(be, shape, true, 0),
            "bf16" => time_ssd_z::<bf16>(be, shape, true, 0),
            _ => time_ssd_z::<f16>(be, shape, true, 0),
        };
        eprintln!("TIMING {name}: fwd {f:.1} us, fwd+bwd {fb:.1} us");
    }
    // Packed sequences: seq_idx with 8 sequences per row (no gate), at the LM shape, at 24
    // heads and at the seed width; 64 per row at the LM shape (the backward's recurrent
    // kernels: past `segments::MAX_PER_ROW`).
    for (b, l, h, n, k) in [
        (8, 2048, 80, 128, 8),
        (8, 2048, 80, 128, 64),
        (2, 2048, 24, 128, 8),
        (2, 800, 6, 64, 4),
    ] {
        for ty in ["bf16", "f32"] {
            let name = format!("ssd {ty} b{b} L{l} h{h} p64 N{n} seq_idx {k}x{}", l / k);
            if !run(&name) {
                continue;
            }
            let shape = (b, l, h, 64, n);
            let (f, fb) = match ty {
                "f32" => time_ssd_z::<f32>(be, shape, false, k),
                _ => time_ssd_z::<bf16>(be, shape, false, k),
            };
            eprintln!("TIMING {name}: fwd {f:.1} us, fwd+bwd {fb:.1} us");
        }
    }
    // Any other SSD shapes: MAMBA_GPU_BWD_SSD_SHAPE="b,L,h,N[,k];..." (p 64), in f32 and
    // bf16; k > 0: seq_idx with k sequences per row.
    if let Ok(v) = std::env::var("MAMBA_GPU_BWD_SSD_SHAPE") {
        for one in v.split(';').filter(|s| !s.trim().is_empty()) {
            let d: Vec<usize> = one
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            assert!(
                d.len() == 4 || d.len() == 5,
                "MAMBA_GPU_BWD_SSD_SHAPE is b,L,h,N[,k];..."
            );
            let k = d.get(4).copied().unwrap_or(0);
            let shape = (d[0], d[1], d[2], 64, d[3]);
            for ty in ["f32", "bf16"] {
                let (f, fb) = match ty {
                    "f32" => time_ssd_z::<f32>(be, shape, false, k),
                    _ => time_ssd_z::<bf16>(be, shape, false, k),
                };
                let seq = d[1]
                    .checked_div(k)
                    .map(|per| format!(" seq_idx {k}x{per}"))
                    .unwrap_or_default();
                eprintln!(
                    "TIMING ssd {ty} b{} L{} h{} p64 N{}{seq}: fwd {f:.1} us, fwd+bwd {fb:.1} us",
                    d[0], d[1], d[2], d[3]
                );
            }
        }
    }
}

/// A length for the default-rule sweep: half the time one at or beside a rule's edge, else
/// log-uniform in 1..=max.
fn sweep_len(rng: &mut Rng, max: usize) -> usize {
    const EDGES: [usize; 24] = [
        1, 2, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 400, 640, 800, 1023, 1024,
        1025, 1500, 2047, 2048,
    ];
    if rng.coin() {
        return rng.pick(&EDGES).min(max);
    }
    (rng.range(0.0, (max as f64).ln()).exp().round() as usize).clamp(1, max)
}

/// Forward + backward of SSD and Mamba-1 under the default rules (no `MAMBA_CUDA_*` set),
/// at sizes drawn across the regions where the rules pick their kernels (seed widths, the
/// language-model widths, and the edges between them: lengths at and beside the 32- / 64-
/// step chunks and the 1024-step limits, head and channel counts around the SM count),
/// every option at random (packed sequences in a third of the SSD calls, the Mamba-1
/// training path, saving forward then the backward from its checkpoints, in half of its
/// calls), all three storage types, against the f64 oracle. Each case is capped in size
/// for the oracle; `MAMBA_GPU_SWEEP=N` sets the number of cases of each kind (default 8),
/// `MAMBA_GPU_SWEEP_SEED` the draw, `MAMBA_GPU_SWEEP_SCALE=k` k times the size caps. (Run it
/// alone: the tests beside it change the rules' env.)
#[test]
fn default_rules_backward_at_random_sizes() {
    let Some(be) = backend() else { return };
    let _env = SSD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    sweep::clear_overrides();
    let sweep::Sweep { cases, seed, scale } = sweep::settings(if quick() { 2 } else { 8 });
    let mut rng = Rng::new(seed);
    let (mut ts, mut tm) = (Tally::default(), Tally::default());
    // SSD: (b L h p N) capped at 1.5e7 state updates.
    let mut ssd = Vec::new();
    while ssd.len() < cases {
        let p = rng.pick(&[64usize, 64, 64, 32, 16, 48, 8]);
        let n = rng.pick(&[64usize, 128, 128, 64, 32, 16, 17]);
        let b = rng.pick(&[1usize, 2, 2, 4, 8]);
        let h = match rng.int(0, 3) {
            0 => rng.int(1, 8),
            1 => rng.pick(&[6usize, 12, 15, 16, 17, 24, 33]),
            2 => rng.int(9, 40),
            _ => rng.int(40, 96),
        };
        let cap = 15_000_000 * scale / (b * h * p * n);
        if cap == 0 {
            continue;
        }
        let l = sweep_len(&mut rng, cap.min(2100 * scale.min(4)));
        let g = if rng.coin() { 1 } else { rng.divisor(h) };
        ssd.push(SsdConfig {
            d: rng.pick(&[None, Some(DShape::PerHead), Some(DShape::PerChannel)]),
            z: rng.coin(),
            dt_bias: rng.coin(),
            initial_states: rng.coin(),
            seq_idx: rng.chance(0.33),
            dt_softplus: rng.chance(0.75),
            dt_limit: rng.chance(0.2).then_some((0.001, 1.5)),
            dfinal_states: rng.coin(),
            ..SsdConfig::new(b, l, h, p, g, n)
        });
    }
    for (e, cfg) in ssd.iter().enumerate() {
        let one = std::slice::from_ref(cfg);
        match e % 3 {
            0 => ssd_type::<f32>(be, one, seed + e as u64, &mut ts),
            1 => ssd_type::<bf16>(be, one, seed + e as u64, &mut ts),
            _ => ssd_type::<f16>(be, one, seed + e as u64, &mut ts),
        }
    }
    // Mamba-1: (b d L N) capped at 1e7 state updates.
    let mut scan = Vec::new();
    while scan.len() < cases {
        let n = rng.pick(&[16usize, 16, 64, 64, 4, 32, 7]);
        let b = rng.pick(&[1usize, 2, 2, 4, 8]);
        let dim = match rng.int(0, 3) {
            0 => rng.pick(&[384usize, 383, 385, 768, 1024, 1536, 2048, 2049]),
            1 => rng.int(1, 64),
            2 => rng.int(64, 1024),
            _ => rng.int(1024, 4096),
        };
        let cap = 10_000_000 * scale / (b * dim * n);
        if cap == 0 {
            continue;
        }
        let seqlen = sweep_len(&mut rng, cap.min(2100 * scale.min(4)));
        let kind = |rng: &mut Rng| match rng.int(0, 3) {
            0 => BcKind::Shared,
            1 | 2 => BcKind::Varying,
            _ => BcKind::Grouped(rng.divisor(dim)),
        };
        scan.push(ScanConfig {
            b_kind: kind(&mut rng),
            c_kind: kind(&mut rng),
            d: rng.coin(),
            z: rng.coin(),
            delta_bias: rng.coin(),
            initial_state: rng.coin(),
            delta_softplus: rng.chance(0.75),
            dlast_state: rng.coin(),
            ..ScanConfig::new(b, dim, seqlen, n)
        });
    }
    for (e, cfg) in scan.iter().enumerate() {
        let one = std::slice::from_ref(cfg);
        be.set_scan_training_path(e % 2 == 1);
        match e % 3 {
            0 => scan_type::<f32>(be, one, seed + 100 + e as u64, &mut tm),
            1 => scan_type::<bf16>(be, one, seed + 100 + e as u64, &mut tm),
            _ => scan_type::<f16>(be, one, seed + 100 + e as u64, &mut tm),
        }
    }
    be.set_scan_training_path(false);
    ts.finish("ssd forward + backward, default rules, random sizes");
    tm.finish("selective_scan forward + backward, default rules, random sizes");
}
