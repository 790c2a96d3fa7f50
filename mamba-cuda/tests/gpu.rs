//! Every forward op of SPEC 1-5 and the Mamba2Block of SPEC 6 on the GPU, against the
//! f64 oracle (`Reference::<f64>::oracle()`) and an f64 host implementation of the
//! block, on fresh random inputs with many option combinations.
//!
//! Skips (with a message) when the plugin or a device is missing: CI has no GPU.
//! On the GPU machine: `MAMBA_CUDA_PLUGIN=path/to/libmamba_cuda.so` and run the test
//! binary; `MAMBA_GPU_TEST_ROUNDS` sets the random rounds (default 6).

use mamba_core::abi::{self, BlockConfigC, TensorDesc};
use mamba_core::plugin::{self, BlockWeights, CudaBackend};
use mamba_core::{
    bf16, f16, Activation, CausalConv1dArgs, CausalConv1dUpdateArgs, ConvLayout, Element, Error,
    Kernels, Reference, SelectiveScanArgs, SelectiveStateUpdateArgs, SsdArgs, Tensor, TensorMut,
};

mod sweep;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn normals(&mut self, n: usize, s: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * s) as f32
            })
            .collect()
    }
    fn uniforms(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi) as f32).collect()
    }
    fn divisor(&mut self, n: usize) -> usize {
        let ds: Vec<usize> = (1..=n).filter(|d| n.is_multiple_of(*d)).collect();
        ds[self.int(0, ds.len() - 1)]
    }
}

fn backend() -> Option<&'static CudaBackend> {
    // These tests change launch-shape overrides at run time: the plugin must read them on
    // every call (it reads none when none was set at its first look).
    std::env::set_var("MAMBA_CUDA_ENV_LIVE", "1");
    match plugin::load() {
        Ok(b) => {
            eprintln!("GPU tests on {}", b.describe());
            Some(b)
        }
        Err(e) => {
            eprintln!("skipping the GPU tests: {e}");
            None
        }
    }
}

/// Sets an environment variable, or removes it where `v` is empty (launch-shape overrides).
fn set_env(k: &str, v: &str) {
    if v.is_empty() {
        std::env::remove_var(k);
    } else {
        std::env::set_var(k, v);
    }
}

fn rounds() -> usize {
    std::env::var("MAMBA_GPU_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// `MAMBA_GPU_QUICK=1` (for compute-sanitizer runs, which are 100x slower): the longest
/// tests take a few small odd shapes and fewer launch variants.
fn quick() -> bool {
    std::env::var_os("MAMBA_GPU_QUICK").is_some_and(|v| v != "0")
}

fn rel_l2<G: Element>(got: &[G], exp: &[f64]) -> f64 {
    assert_eq!(got.len(), exp.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, e) in got.iter().zip(exp) {
        let g = g.to_f64();
        if !g.is_finite() {
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

fn to<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}
fn f64s<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}
fn nan<T: Element>(n: usize) -> Vec<T> {
    vec![T::from_f32(f32::NAN); n]
}

/// Tolerance by storage type (SPEC "Tolerances").
fn tol<T: Element>() -> f64 {
    match T::DTYPE {
        mamba_core::DType::F32 => 1e-5,
        mamba_core::DType::BF16 => 2e-2,
        _ => 5e-3,
    }
}

#[derive(Default)]
struct Tally {
    checks: usize,
    worst: f64,
    failures: Vec<String>,
}
impl Tally {
    fn check(&mut self, what: &str, err: f64, tol: f64) {
        self.checks += 1;
        if err > self.worst {
            self.worst = err;
        }
        if err.is_nan() || err > tol {
            self.failures
                .push(format!("{what}: rel-L2 {err:.3e} > {tol:.0e}"));
        }
    }
    fn finish(self, name: &str) {
        eprintln!(
            "{name}: {} comparisons, worst rel-L2 {:.3e}",
            self.checks, self.worst
        );
        assert!(self.checks > 0, "{name}: nothing compared");
        assert!(
            self.failures.is_empty(),
            "{name}: {} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

// ------------------------------------------------------------------ SPEC 1

#[derive(Clone, Copy, Debug)]
enum Bc {
    Shared,
    Varying,
    Grouped(usize),
}

#[derive(Clone, Copy, Debug)]
struct ScanCfg {
    b: usize,
    d: usize,
    l: usize,
    n: usize,
    bl: Bc,
    cl: Bc,
    d_skip: bool,
    z: bool,
    bias: bool,
    init: bool,
    softplus: bool,
}

fn bc_shape(k: Bc, c: &ScanCfg) -> Vec<usize> {
    match k {
        Bc::Shared => vec![c.d, c.n],
        Bc::Varying => vec![c.b, c.n, c.l],
        Bc::Grouped(g) => vec![c.b, g, c.n, c.l],
    }
}

fn scan_check<T: Element>(be: &CudaBackend, rng: &mut Rng, c: &ScanCfg, t: &mut Tally) {
    let io = c.b * c.d * c.l;
    let u = to::<T>(&rng.normals(io, 1.0));
    // Raw steps: anything under softplus, positive without it (a negative step grows
    // the state exponentially, in the oracle too).
    let delta = if c.softplus {
        to::<T>(&rng.uniforms(io, -3.0, 0.5))
    } else {
        to::<T>(&rng.uniforms(io, 0.001, 0.5))
    };
    let a: Vec<f32> = (0..c.d * c.n)
        .map(|_| -(rng.range(0.5, 8.0) as f32))
        .collect();
    let bsh = bc_shape(c.bl, c);
    let csh = bc_shape(c.cl, c);
    let bm = to::<T>(&rng.normals(bsh.iter().product(), 1.0));
    let cm = to::<T>(&rng.normals(csh.iter().product(), 1.0));
    let dv = rng.normals(c.d, 1.0);
    let z = to::<T>(&rng.normals(io, 1.0));
    let bias = if c.softplus {
        rng.uniforms(c.d, -4.0, -1.0)
    } else {
        rng.uniforms(c.d, 0.0, 0.3)
    };
    let h0 = rng.normals(c.b * c.d * c.n, 1.0);
    // Backend, storage T.
    let mut args = SelectiveScanArgs::new(
        Tensor::new(&u, [c.b, c.d, c.l]),
        Tensor::new(&delta, [c.b, c.d, c.l]),
        Tensor::new(&a, [c.d, c.n]),
        Tensor {
            data: &bm,
            shape: mamba_core::Shape::from_slice(&bsh, "B").unwrap(),
        },
        Tensor {
            data: &cm,
            shape: mamba_core::Shape::from_slice(&csh, "C").unwrap(),
        },
    )
    .with_delta_softplus(c.softplus);
    if c.d_skip {
        args = args.with_d(Tensor::new(&dv, [c.d]));
    }
    if c.z {
        args = args.with_z(Tensor::new(&z, [c.b, c.d, c.l]));
    }
    if c.bias {
        args = args.with_delta_bias(Tensor::new(&bias, [c.d]));
    }
    if c.init {
        args = args.with_initial_state(Tensor::new(&h0, [c.b, c.d, c.n]));
    }
    let mut out = nan::<T>(io);
    let mut last = nan::<f32>(c.b * c.d * c.n);
    Kernels::<T>::selective_scan(be, &args, &mut out, Some(&mut last))
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    // Oracle on the same (rounded) values in f64.
    let (u6, de6, a6, b6, c6, d6, z6, bi6, h6) = (
        f64s(&u),
        f64s(&delta),
        f64s(&a),
        f64s(&bm),
        f64s(&cm),
        f64s(&dv),
        f64s(&z),
        f64s(&bias),
        f64s(&h0),
    );
    let mut oargs = SelectiveScanArgs::new(
        Tensor::new(&u6, [c.b, c.d, c.l]),
        Tensor::new(&de6, [c.b, c.d, c.l]),
        Tensor::new(&a6, [c.d, c.n]),
        Tensor {
            data: &b6,
            shape: args.b.shape,
        },
        Tensor {
            data: &c6,
            shape: args.c.shape,
        },
    )
    .with_delta_softplus(c.softplus);
    if c.d_skip {
        oargs = oargs.with_d(Tensor::new(&d6, [c.d]));
    }
    if c.z {
        oargs = oargs.with_z(Tensor::new(&z6, [c.b, c.d, c.l]));
    }
    if c.bias {
        oargs = oargs.with_delta_bias(Tensor::new(&bi6, [c.d]));
    }
    if c.init {
        oargs = oargs.with_initial_state(Tensor::new(&h6, [c.b, c.d, c.n]));
    }
    let mut eo = vec![0f64; io];
    let mut el = vec![0f64; c.b * c.d * c.n];
    Reference::<f64>::oracle()
        .selective_scan(&oargs, &mut eo, Some(&mut el))
        .unwrap();
    let what = format!("scan {} {c:?}", T::DTYPE);
    t.check(&format!("{what} out"), rel_l2(&out, &eo), tol::<T>());
    t.check(
        &format!("{what} last_state"),
        rel_l2(&last, &el),
        tol::<T>().max(1e-5),
    );
    // Without last_state the output is the same.
    let mut out2 = nan::<T>(io);
    Kernels::<T>::selective_scan(be, &args, &mut out2, None).unwrap();
    t.check(
        &format!("{what} out (no state)"),
        rel_l2(&out2, &eo),
        tol::<T>(),
    );
}

/// A Mamba-1 case of the given shape and B / C layouts with each option drawn at random.
fn scan_cfg_random_options(
    rng: &mut Rng,
    b: usize,
    d: usize,
    l: usize,
    n: usize,
    bl: Bc,
    cl: Bc,
) -> ScanCfg {
    ScanCfg {
        b,
        d,
        l,
        n,
        bl,
        cl,
        d_skip: rng.coin(),
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        softplus: rng.coin(),
    }
}

fn random_scan_cfg(rng: &mut Rng) -> ScanCfg {
    let d = rng.int(1, 40);
    let n = *[1usize, 3, 4, 7, 16, 33, 64].get(rng.int(0, 6)).unwrap();
    let pick = |rng: &mut Rng| match rng.int(0, 2) {
        0 => Bc::Shared,
        1 => Bc::Varying,
        _ => Bc::Grouped(rng.divisor(d)),
    };
    ScanCfg {
        b: rng.int(1, 3),
        d,
        l: rng.int(1, 150),
        n,
        bl: pick(rng),
        cl: pick(rng),
        d_skip: rng.coin(),
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        softplus: rng.coin(),
    }
}

#[test]
fn selective_scan_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(1);
    let mut t = Tally::default();
    let all = |b, d, l, n, bl, cl| ScanCfg {
        b,
        d,
        l,
        n,
        bl,
        cl,
        d_skip: true,
        z: true,
        bias: true,
        init: true,
        softplus: true,
    };
    let fixed = [
        all(2, 24, 100, 64, Bc::Varying, Bc::Varying),
        all(1, 8, 257, 16, Bc::Grouped(4), Bc::Shared),
        all(2, 6, 33, 300, Bc::Varying, Bc::Grouped(3)),
        all(1, 1, 1, 1, Bc::Shared, Bc::Shared),
        all(3, 7, 65, 5, Bc::Grouped(7), Bc::Varying),
    ];
    for c in fixed {
        scan_check::<f32>(be, &mut rng, &c, &mut t);
        scan_check::<bf16>(be, &mut rng, &c, &mut t);
        scan_check::<f16>(be, &mut rng, &c, &mut t);
    }
    for _ in 0..rounds() * 4 {
        let c = random_scan_cfg(&mut rng);
        scan_check::<f32>(be, &mut rng, &c, &mut t);
        scan_check::<bf16>(be, &mut rng, &c, &mut t);
    }
    // The seed shapes, split in time (chunks of one and two tiles), in one launch (the
    // default at L = 100) and in three, with and without an initial state.
    // (The older forms: the parallel-in-time form is the default there, tested below.)
    std::env::set_var("MAMBA_CUDA_SCAN1_PAR", "0");
    for fused in ["1", "0"] {
        std::env::set_var("MAMBA_CUDA_SCAN1_FUSED", fused);
        for (l, init) in [(100, true), (400, true), (800, false), (333, false)] {
            let c = ScanCfg {
                init,
                ..all(2, 384, l, 64, Bc::Varying, Bc::Varying)
            };
            scan_check::<f32>(be, &mut rng, &c, &mut t);
        }
        scan_check::<f16>(
            be,
            &mut rng,
            &all(2, 384, 800, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
    }
    std::env::remove_var("MAMBA_CUDA_SCAN1_FUSED");
    // Every states-per-thread variant, whole and split in time chunks (one fused launch
    // or three launches; chunks of two tiles and of one), and the lighter variant of
    // S = 2 and 4.
    for s in ["1", "2", "4", "8", "16", "2-lite", "4-lite"] {
        let (s, lite) = s.split_once('-').unwrap_or((s, ""));
        std::env::set_var(
            "MAMBA_CUDA_SCAN1_LITE",
            if lite.is_empty() { "0" } else { "1" },
        );
        std::env::set_var("MAMBA_CUDA_SCAN1_S", s);
        for (chunks, fused) in [("1", "1"), ("3", "0"), ("3", "1"), ("7", "0"), ("7", "1")] {
            std::env::set_var("MAMBA_CUDA_SCAN1_CHUNKS", chunks);
            std::env::set_var("MAMBA_CUDA_SCAN1_FUSED", fused);
            let c = all(2, 10, 170, 37, Bc::Varying, Bc::Grouped(5));
            scan_check::<f32>(be, &mut rng, &c, &mut t);
            let c = ScanCfg {
                init: false,
                ..all(1, 12, 130, 16, Bc::Shared, Bc::Varying)
            };
            scan_check::<bf16>(be, &mut rng, &c, &mut t);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SCAN1_FUSED");
    std::env::remove_var("MAMBA_CUDA_SCAN1_CHUNKS");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LITE");
    std::env::remove_var("MAMBA_CUDA_SCAN1_S");
    std::env::remove_var("MAMBA_CUDA_SCAN1_PAR");
    t.finish("selective_scan");
}

/// The parallel-in-time form (`scan1_par`) forced on, in every block shape (channel quads
/// x warps splitting N), at the seed shape and odd sizes: L not a multiple of its 64-step
/// chunk (and under one chunk), L not a multiple of 4 (4-byte copies), N not a multiple
/// of the state groups (and under them), channel runs not a multiple of 4 (B/C groups),
/// with and without initial state, every storage type.
#[test]
fn selective_scan_parallel_in_time_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(11);
    let mut t = Tally::default();
    let all = |b, d, l, n, bl, cl| ScanCfg {
        b,
        d,
        l,
        n,
        bl,
        cl,
        d_skip: true,
        z: true,
        bias: true,
        init: true,
        softplus: true,
    };
    std::env::set_var("MAMBA_CUDA_SCAN1_PAR", "1");
    for (cq, nsg) in [
        ("1", "8"),
        ("1", "2"),
        ("2", "4"),
        ("1", "16"),
        ("4", "4"),
        ("2", "3"),
    ] {
        std::env::set_var("MAMBA_CUDA_SCAN1_PAR_CQ", cq);
        std::env::set_var("MAMBA_CUDA_SCAN1_PAR_NSG", nsg);
        for (l, init) in [
            (1, true),
            (63, false),
            (64, true),
            (65, true),
            (400, true),
            (333, false),
        ] {
            let c = ScanCfg {
                init,
                ..all(2, 384, l, 64, Bc::Varying, Bc::Varying)
            };
            scan_check::<f32>(be, &mut rng, &c, &mut t);
        }
        scan_check::<f32>(
            be,
            &mut rng,
            &all(2, 384, 800, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
        scan_check::<bf16>(
            be,
            &mut rng,
            &all(2, 384, 130, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
        scan_check::<f16>(
            be,
            &mut rng,
            &all(1, 40, 200, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
        let odd = [
            all(2, 10, 170, 37, Bc::Varying, Bc::Grouped(5)),
            all(3, 7, 65, 5, Bc::Grouped(7), Bc::Varying),
            all(1, 12, 131, 16, Bc::Grouped(2), Bc::Grouped(3)),
            all(2, 6, 300, 1, Bc::Varying, Bc::Varying),
            all(1, 9, 97, 128, Bc::Varying, Bc::Varying),
            ScanCfg {
                softplus: false,
                bias: false,
                z: false,
                d_skip: false,
                ..all(2, 24, 100, 64, Bc::Varying, Bc::Varying)
            },
        ];
        for c in odd {
            scan_check::<f32>(be, &mut rng, &c, &mut t);
            scan_check::<bf16>(be, &mut rng, &c, &mut t);
        }
    }
    // The f32 form with one state at a time (MAMBA_CUDA_SCAN1_PAR_V=0).
    std::env::set_var("MAMBA_CUDA_SCAN1_PAR_V", "0");
    for (cq, nsg) in [("1", "8"), ("2", "3")] {
        std::env::set_var("MAMBA_CUDA_SCAN1_PAR_CQ", cq);
        std::env::set_var("MAMBA_CUDA_SCAN1_PAR_NSG", nsg);
        for c in [
            all(2, 384, 800, 64, Bc::Varying, Bc::Varying),
            all(2, 384, 65, 64, Bc::Varying, Bc::Varying),
            all(2, 10, 170, 37, Bc::Varying, Bc::Grouped(5)),
            all(1, 12, 131, 16, Bc::Grouped(2), Bc::Grouped(3)),
        ] {
            scan_check::<f32>(be, &mut rng, &c, &mut t);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SCAN1_PAR_V");
    // Too many states for its shared memory: the older forms take over.
    scan_check::<f32>(
        be,
        &mut rng,
        &all(1, 8, 70, 300, Bc::Varying, Bc::Varying),
        &mut t,
    );
    std::env::remove_var("MAMBA_CUDA_SCAN1_PAR_CQ");
    std::env::remove_var("MAMBA_CUDA_SCAN1_PAR_NSG");
    std::env::remove_var("MAMBA_CUDA_SCAN1_PAR");
    // The time-parallel tiles (`scan1_tp`, MAMBA_CUDA_SCAN1_TP=1), channels per block 1-8.
    std::env::set_var("MAMBA_CUDA_SCAN1_TP", "1");
    for cb in ["2", "1", "3", "8"] {
        std::env::set_var("MAMBA_CUDA_SCAN1_TP_CB", cb);
        for (l, init) in [
            (1, true),
            (31, false),
            (32, true),
            (65, true),
            (400, true),
            (333, false),
        ] {
            let c = ScanCfg {
                init,
                ..all(2, 384, l, 64, Bc::Varying, Bc::Varying)
            };
            scan_check::<f32>(be, &mut rng, &c, &mut t);
        }
        scan_check::<f32>(
            be,
            &mut rng,
            &all(2, 384, 800, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
        scan_check::<bf16>(
            be,
            &mut rng,
            &all(2, 384, 130, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
        scan_check::<f16>(
            be,
            &mut rng,
            &all(1, 40, 200, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
        let odd = [
            all(2, 10, 170, 37, Bc::Varying, Bc::Grouped(5)),
            all(3, 7, 65, 5, Bc::Grouped(7), Bc::Varying),
            all(1, 12, 131, 16, Bc::Grouped(2), Bc::Grouped(3)),
            all(2, 6, 300, 1, Bc::Varying, Bc::Varying),
            all(1, 9, 97, 128, Bc::Varying, Bc::Varying),
            ScanCfg {
                softplus: false,
                bias: false,
                z: false,
                d_skip: false,
                ..all(2, 24, 100, 64, Bc::Varying, Bc::Varying)
            },
        ];
        for c in odd {
            scan_check::<f32>(be, &mut rng, &c, &mut t);
            scan_check::<bf16>(be, &mut rng, &c, &mut t);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SCAN1_TP_CB");
    std::env::remove_var("MAMBA_CUDA_SCAN1_TP");
    // The default choice at the seed shapes.
    for l in [1, 100, 400, 800] {
        scan_check::<f32>(
            be,
            &mut rng,
            &all(2, 384, l, 64, Bc::Varying, Bc::Varying),
            &mut t,
        );
    }
    t.finish("selective_scan (parallel in time)");
}

/// The kernel for many channels (`lm1_fwd`, kernels/scan1_lm.cu) forced on
/// (`MAMBA_CUDA_SCAN1_LM=1`) in its block shapes (threads per channel, channels per
/// block): channel counts not a multiple of the block, L not a multiple of its 32-step
/// tile and not of 4 or 8 (4- / 8-byte cp.async in the `_w` kernels, else plain loads), N under 8, between 8 and 16
/// and 16, B/C groups, every option on and off, every storage type. Calls it does not
/// support (time-invariant B or C, N > 16) go to the older kernels and are compared too.
#[test]
fn selective_scan_lm_path_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(21);
    let mut t = Tally::default();
    let all = |b, d, l, n, bl, cl| ScanCfg {
        b,
        d,
        l,
        n,
        bl,
        cl,
        d_skip: true,
        z: true,
        bias: true,
        init: true,
        softplus: true,
    };
    std::env::set_var("MAMBA_CUDA_SCAN1_LM", "1");
    // (threads per channel, channels per block, form: 0 plain, 1 `_p`, 2 `_q`, 3 `_r`,
    // 4 `_w`, 5 `_w2`, 6 `_w3`, 7 `_w4`, 8 `_w5`, 9 `_w6`, 10 `_w7`, 11 `_w8`: G = 8, N > 8 only, G = 2 below)
    let variants: &[(&str, &str, &str)] = if quick() {
        &[
            ("1", "", "0"),
            ("2", "", "1"),
            ("4", "", "0"),
            ("4", "", "2"),
            ("2", "", "2"),
            ("8", "", "6"),
            ("8", "", "8"),
            ("8", "", "9"),
            ("8", "", "10"),
            ("8", "", "11"),
            ("8", "", "12"),
        ]
    } else {
        &[
            ("1", "", "0"),
            ("2", "", "0"),
            ("4", "", "0"),
            ("4", "32", "0"),
            ("1", "", "1"),
            ("2", "", "1"),
            ("1", "32", "0"),
            ("2", "64", "1"),
            ("1", "48", "0"),
            ("2", "16", "0"),
            ("1", "", "2"),
            ("2", "", "2"),
            ("4", "", "2"),
            ("4", "16", "2"),
            ("2", "48", "2"),
            ("4", "", "3"),
            ("2", "", "3"),
            ("4", "16", "3"),
            ("2", "48", "3"),
            ("8", "", "4"),
            ("8", "64", "4"),
            ("8", "", "5"),
            ("8", "40", "5"),
            ("8", "", "6"),
            ("8", "64", "6"),
            ("8", "12", "6"),
            ("8", "40", "6"),
            ("8", "", "7"),
            ("8", "20", "7"),
            ("8", "", "8"),
            ("8", "64", "8"),
            ("8", "24", "8"),
            ("8", "", "9"),
            ("8", "64", "9"),
            ("8", "12", "9"),
            ("8", "", "10"),
            ("8", "64", "10"),
            ("8", "16", "10"),
            ("8", "40", "10"),
            ("8", "", "11"),
            ("8", "64", "11"),
            ("8", "16", "11"),
            ("8", "12", "11"),
            ("8", "", "12"),
            ("8", "64", "12"),
            ("8", "16", "12"),
            ("8", "40", "12"),
        ]
    };
    // MAMBA_GPU_LM1_FORMS="6,8": only these forms, and not the default choice (for the
    // sanitizers).
    let forms = std::env::var("MAMBA_GPU_LM1_FORMS").ok();
    for &(gth, cb, form) in variants {
        if forms
            .as_deref()
            .is_some_and(|f| !f.split(',').any(|x| x == form))
        {
            continue;
        }
        if forms.is_some() {
            eprintln!("lm1 variant: G {gth} CB {cb:?} form {form}");
        }
        std::env::set_var("MAMBA_CUDA_SCAN1_LM_G", gth);
        std::env::set_var(
            "MAMBA_CUDA_SCAN1_LM_POLY",
            if form == "1" { "1" } else { "0" },
        );
        std::env::set_var(
            "MAMBA_CUDA_SCAN1_LM_PREP",
            if form == "2" { "1" } else { "0" },
        );
        std::env::set_var(
            "MAMBA_CUDA_SCAN1_LM_RS",
            if form == "3" { "1" } else { "0" },
        );
        std::env::set_var(
            "MAMBA_CUDA_SCAN1_LM_WV",
            match form {
                "4" => "1",
                "5" => "2",
                "7" => "4",
                "8" => "5",
                "9" => "6",
                "10" => "7",
                "11" => "8",
                "12" => "9",
                _ => "3",
            },
        );
        if cb.is_empty() {
            std::env::remove_var("MAMBA_CUDA_SCAN1_LM_CB");
        } else {
            std::env::set_var("MAMBA_CUDA_SCAN1_LM_CB", cb);
        }
        let fixed = [
            all(2, 300, 100, 16, Bc::Varying, Bc::Varying),
            all(1, 96, 64, 16, Bc::Varying, Bc::Varying),
            all(2, 40, 77, 5, Bc::Grouped(2), Bc::Varying),
            all(1, 130, 33, 12, Bc::Varying, Bc::Grouped(5)),
            all(3, 24, 1, 16, Bc::Varying, Bc::Varying),
            all(2, 64, 264, 8, Bc::Grouped(4), Bc::Grouped(2)),
            all(1, 20, 200, 9, Bc::Varying, Bc::Varying),
            // Rows aligned to 8 / 4 bytes only (the `_w` kernels' 8- / 4-byte copies): f32
            // L102 8, L93 4; bf16 / f16 L92 8, L102 4, L93 plain loads.
            all(2, 100, 102, 16, Bc::Varying, Bc::Grouped(2)),
            all(1, 70, 92, 16, Bc::Varying, Bc::Varying),
            all(1, 50, 93, 11, Bc::Varying, Bc::Varying),
            ScanCfg {
                softplus: false,
                bias: false,
                z: false,
                d_skip: false,
                init: false,
                ..all(2, 150, 136, 16, Bc::Varying, Bc::Varying)
            },
            ScanCfg {
                z: false,
                init: false,
                ..all(1, 33, 40, 1, Bc::Varying, Bc::Varying)
            },
        ];
        for c in fixed {
            scan_check::<f32>(be, &mut rng, &c, &mut t);
            scan_check::<bf16>(be, &mut rng, &c, &mut t);
            scan_check::<f16>(be, &mut rng, &c, &mut t);
        }
        let rounds = if quick() { 1 } else { rounds() };
        for _ in 0..rounds {
            let d = rng.int(1, 300);
            let pick = |rng: &mut Rng| match rng.int(0, 3) {
                0 => Bc::Grouped(rng.divisor(d)),
                1 if rng.coin() => Bc::Shared,
                _ => Bc::Varying,
            };
            let c = ScanCfg {
                b: rng.int(1, 3),
                d,
                l: if rng.coin() {
                    8 * rng.int(1, 40)
                } else {
                    rng.int(1, 300)
                },
                n: *[1usize, 3, 4, 7, 8, 9, 13, 16, 17]
                    .get(rng.int(0, 8))
                    .unwrap(),
                bl: pick(&mut rng),
                cl: pick(&mut rng),
                d_skip: rng.coin(),
                z: rng.coin(),
                bias: rng.coin(),
                init: rng.coin(),
                softplus: rng.coin(),
            };
            scan_check::<f32>(be, &mut rng, &c, &mut t);
            scan_check::<bf16>(be, &mut rng, &c, &mut t);
            scan_check::<f16>(be, &mut rng, &c, &mut t);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM_G");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM_CB");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM_POLY");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM_PREP");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM_RS");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM_WV");
    std::env::remove_var("MAMBA_CUDA_SCAN1_LM");
    // The default choice at a few channel-rich shapes.
    // (`MAMBA_GPU_LM1_DEFAULTS=1`: the default choice too, with a forms filter.)
    let defaults = if forms.is_some() && std::env::var("MAMBA_GPU_LM1_DEFAULTS").is_err() {
        0
    } else {
        9
    };
    for c in [
        all(2, 512, 256, 16, Bc::Varying, Bc::Varying),
        all(4, 3200, 262, 16, Bc::Varying, Bc::Varying),
        all(4, 3200, 261, 16, Bc::Varying, Bc::Varying),
        all(1, 2048, 64, 16, Bc::Varying, Bc::Varying),
        all(4, 3200, 260, 16, Bc::Varying, Bc::Varying),
        ScanCfg {
            init: false,
            ..all(4, 3200, 256, 12, Bc::Varying, Bc::Grouped(2))
        },
        all(3, 3000, 264, 8, Bc::Varying, Bc::Varying),
        all(1, 4000, 300, 16, Bc::Varying, Bc::Varying),
        ScanCfg {
            z: false,
            bias: false,
            ..all(2, 2048, 512, 13, Bc::Varying, Bc::Varying)
        },
    ]
    .into_iter()
    .take(defaults)
    {
        scan_check::<f32>(be, &mut rng, &c, &mut t);
        scan_check::<bf16>(be, &mut rng, &c, &mut t);
        scan_check::<f16>(be, &mut rng, &c, &mut t);
    }
    t.finish("selective_scan (lm1)");
}

/// `MAMBA_GPU_LM1_BENCH=1`: the language-model shape (b8 d2048 N16 L2048; D, z,
/// delta_bias, softplus, B/C (b, N, L)) with the older kernels and the `lm1` variants on
/// the same device buffers: medians of CUDA-event times, and each output's relative L2
/// distance from the older kernels' output. No assertion on times.
#[test]
fn selective_scan_lm_timings() {
    if std::env::var("MAMBA_GPU_LM1_BENCH").ok().as_deref() != Some("1") {
        eprintln!("timings skipped (set MAMBA_GPU_LM1_BENCH=1)");
        return;
    }
    let Some(be) = backend() else { return };
    lm_timings::<f32>(be, (8, 2048, 16, 2048), "");
    lm_timings::<bf16>(be, (8, 2048, 16, 2048), "");
    // Half and a quarter of the channels (62 and 31 per SM; the default takes lm1 from 60).
    lm_timings::<f32>(be, (4, 2048, 16, 2048), "b4 ");
    lm_timings::<f32>(be, (2, 2048, 16, 2048), "b2 ");
}

fn lm_timings<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    (b, d, n, l): (usize, usize, usize, usize),
    tag: &str,
) {
    let s = be.stream().unwrap();
    let mut rng = Rng(5);
    let io = b * d * l;
    let up = |v: Vec<f32>| be.upload(&to::<T>(&v), &s).unwrap();
    let u = up(rng.uniforms(io, -1.0, 1.0));
    let delta = up(rng.uniforms(io, -3.0, 0.0));
    let z = up(rng.uniforms(io, -1.0, 1.0));
    let bm = up(rng.uniforms(b * n * l, -1.0, 1.0));
    let cm = up(rng.uniforms(b * n * l, -1.0, 1.0));
    let a = be.upload(&rng.uniforms(d * n, -8.0, -0.5), &s).unwrap();
    let dv = be.upload(&rng.uniforms(d, -1.0, 1.0), &s).unwrap();
    let bias = be.upload(&rng.uniforms(d, -4.0, -1.0), &s).unwrap();
    let out = be.alloc::<T>(io).unwrap();
    let last = be.alloc::<f32>(b * d * n).unwrap();
    let io3 = [b, d, l];
    let desc = abi::SelectiveScanDesc {
        u: u.desc(&io3),
        delta: delta.desc(&io3),
        a: a.desc(&[d, n]),
        b: bm.desc(&[b, n, l]),
        c: cm.desc(&[b, n, l]),
        d: dv.desc(&[d]),
        z: z.desc(&io3),
        delta_bias: bias.desc(&[d]),
        initial_state: TensorDesc::NONE,
        out: out.desc(&io3),
        last_state: last.desc(&[b, d, n]),
        delta_softplus: 1,
        reserved: 0,
    };
    let only = std::env::var("MAMBA_GPU_LM1_VARIANTS").unwrap_or_default();
    let mut reference: Option<(Vec<f64>, Vec<f64>)> = None;
    for (name, lm, gth, cb, poly, prep, rs) in [
        ("old", "0", "1", "", "", "", ""),
        ("lm1 g2", "1", "2", "", "", "0", "0"),
        ("lm1 g4", "1", "4", "", "", "0", "0"),
        ("lm1 g4 rs", "1", "4", "", "", "0", "1"),
        ("lm1 g8 w", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w", "1", "8", "64", "", "0", "0"),
        ("lm1 g8 w2", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w2", "1", "8", "64", "", "0", "0"),
        ("lm1 g8 w3", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w3", "1", "8", "64", "", "0", "0"),
        ("lm1 g8 w4", "1", "8", "", "", "0", "0"),
        ("lm1 g8 w5", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w5", "1", "8", "64", "", "0", "0"),
        ("lm1 g8 w6", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w6", "1", "8", "64", "", "0", "0"),
        ("lm1 g8 w7", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w7", "1", "8", "64", "", "0", "0"),
        ("lm1 g8 w8", "1", "8", "", "", "0", "0"),
        ("lm1 g8 cb64 w8", "1", "8", "64", "", "0", "0"),
        ("lm1 g2 rs", "1", "2", "", "", "0", "1"),
        ("lm1 g2 cb64 rs", "1", "2", "64", "", "0", "1"),
        ("lm1 g4 prep", "1", "4", "", "", "1", "0"),
        ("lm1 g1", "1", "1", "", "", "0", "0"),
        ("lm1 g2 cb64", "1", "2", "64", "", "0", "0"),
        ("default", "", "", "", "", "", ""),
    ] {
        let only = if tag.is_empty() {
            only.clone()
        } else {
            "lm1 g4,lm1 g4 rs,lm1 g8 w3,lm1 g8 w5,lm1 g8 w6,lm1 g8 w7,lm1 g8 w8,default".to_string()
        };
        if !only.is_empty() && !name.starts_with("old") && !only.split(',').any(|o| o == name) {
            continue;
        }
        for (k, v) in [
            ("MAMBA_CUDA_SCAN1_LM", lm),
            ("MAMBA_CUDA_SCAN1_LM_G", gth),
            ("MAMBA_CUDA_SCAN1_LM_CB", cb),
            ("MAMBA_CUDA_SCAN1_LM_POLY", poly),
            ("MAMBA_CUDA_SCAN1_LM_PREP", prep),
            ("MAMBA_CUDA_SCAN1_LM_RS", rs),
            // The G 8 version named last in the row's name (else the default).
            (
                "MAMBA_CUDA_SCAN1_LM_WV",
                if name.ends_with(" w") {
                    "1"
                } else if name.ends_with(" w2") {
                    "2"
                } else if name.ends_with(" w3") {
                    "3"
                } else if name.ends_with(" w4") {
                    "4"
                } else if name.ends_with(" w5") {
                    "5"
                } else if name.ends_with(" w6") {
                    "6"
                } else if name.ends_with(" w7") {
                    "7"
                } else if name.ends_with(" w8") {
                    "8"
                } else {
                    ""
                },
            ),
        ] {
            if v.is_empty() {
                std::env::remove_var(k);
            } else {
                std::env::set_var(k, v);
            }
        }
        // SAFETY: every descriptor points to a live buffer of its shape, alive until the
        // stream is synchronised (time_calls waits for its last event).
        let times = be
            .time_calls(&s, 10, 50, || unsafe {
                be.selective_scan_device(&desc, &s)
            })
            .unwrap();
        let o = f64s(&out.to_vec(&s).unwrap());
        let h = f64s(&last.to_vec(&s).unwrap());
        let (eo, eh) = match &reference {
            None => (0.0, 0.0),
            Some((ro, rh)) => (rel_l2_64(&o, ro), rel_l2_64(&h, rh)),
        };
        if reference.is_none() {
            reference = Some((o, h));
        }
        eprintln!(
            "TIMING lm {tag}{} {name}: median {:.1} us (min {:.1}); vs old: out {eo:.2e}, last_state {eh:.2e}",
            T::DTYPE,
            plugin::median(&times),
            times.iter().cloned().fold(f64::INFINITY, f64::min),
        );
    }
    for k in [
        "MAMBA_CUDA_SCAN1_LM",
        "MAMBA_CUDA_SCAN1_LM_G",
        "MAMBA_CUDA_SCAN1_LM_CB",
        "MAMBA_CUDA_SCAN1_LM_POLY",
        "MAMBA_CUDA_SCAN1_LM_PREP",
        "MAMBA_CUDA_SCAN1_LM_RS",
        "MAMBA_CUDA_SCAN1_LM_WV",
    ] {
        std::env::remove_var(k);
    }
}

fn rel_l2_64(got: &[f64], exp: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, e) in got.iter().zip(exp) {
        if !g.is_finite() {
            return f64::INFINITY;
        }
        num += (g - e) * (g - e);
        den += e * e;
    }
    (num / den.max(1e-300)).sqrt()
}

/// The seed Mamba-1 kernel (kernels/seed.cu `seed_scan1_*`, `MAMBA_CUDA_SEED=1`): one
/// launch, one exponential per (state, step), chunks of 16 steps folded in groups. The
/// seed shapes, L not a multiple of 16 and L < 16, N not a multiple of 4 (N <= 64),
/// B / C groups with channel runs that are not multiples of 16 (fewer rows per block),
/// every option on and off (initial and last states included), every fold grouping,
/// f32 / bf16 / f16; shared B / C and N > 64 fall back to the older forms.
#[test]
fn selective_scan_seed_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(22);
    std::env::set_var("MAMBA_CUDA_SEED", "1");
    let cfg = scan_cfg_random_options;
    let v = Bc::Varying;
    let shapes = [
        (2, 384, 400, 64, v, v),
        (2, 384, 800, 64, v, v),
        (2, 384, 1, 64, v, v),
        (1, 32, 15, 64, v, v),
        (1, 48, 16, 64, v, v),
        (2, 16, 17, 37, v, v),
        (1, 24, 333, 5, Bc::Grouped(3), Bc::Grouped(2)),
        (2, 6, 100, 64, Bc::Grouped(2), Bc::Grouped(3)),
        (1, 40, 257, 16, Bc::Grouped(5), v),
        (1, 64, 1000, 1, v, Bc::Grouped(4)),
    ];
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    for &(b, d, l, n, bl, cl) in &shapes {
        let c = cfg(&mut rng, b, d, l, n, bl, cl);
        scan_check::<f32>(be, &mut rng, &c, &mut t32);
        scan_check::<bf16>(be, &mut rng, &c, &mut t16);
        scan_check::<f16>(be, &mut rng, &c, &mut th);
        let all = ScanCfg {
            d_skip: true,
            z: true,
            bias: true,
            init: true,
            softplus: true,
            ..c
        };
        scan_check::<f32>(be, &mut rng, &all, &mut t32);
        let none = ScanCfg {
            d_skip: false,
            z: false,
            bias: false,
            init: false,
            softplus: false,
            ..c
        };
        scan_check::<f32>(be, &mut rng, &none, &mut t32);
    }
    for group in ["1", "2", "3", "7", "1000"] {
        std::env::set_var("MAMBA_CUDA_SEED_GROUP", group);
        for &(b, d, l, n, bl, cl) in &[shapes[0], shapes[6], (1, 16, 300, 64, v, v)] {
            let c = cfg(&mut rng, b, d, l, n, bl, cl);
            scan_check::<f32>(be, &mut rng, &c, &mut t32);
            scan_check::<bf16>(be, &mut rng, &c, &mut t16);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SEED_GROUP");
    // Fallbacks: shared B / C, N > 64.
    for c in [
        cfg(&mut rng, 1, 16, 100, 16, Bc::Shared, v),
        cfg(&mut rng, 1, 16, 100, 128, v, v),
    ] {
        scan_check::<f32>(be, &mut rng, &c, &mut t32);
    }
    // Several in a row on the same stream (the kept flags and ticket counter).
    for _ in 0..3 {
        let c = cfg(&mut rng, 2, 384, 800, 64, v, v);
        scan_check::<f32>(be, &mut rng, &c, &mut t32);
    }
    std::env::remove_var("MAMBA_CUDA_SEED");
    t32.finish("selective_scan seed f32");
    t16.finish("selective_scan seed bf16");
    th.finish("selective_scan seed f16");
}

/// The one-pass Mamba-1 kernel for few channels (kernels/scan1_seed.cu `s1s_fwd_*`,
/// `MAMBA_CUDA_S1S=1`): small blocks, tiles through a cp.async ring. The seed shapes,
/// L 1 and L not a multiple of the 32-step tile (nor of 4 or 8: the unaligned staging),
/// N 1 / 5 / 16 / 37 / 64, channel runs that are not multiples of the block (B / C
/// groups), every option on and off (initial and last states included), channels per
/// block 1-16, f32 / bf16 / f16; shared B / C and N > 64 fall back to the older forms.
/// `MAMBA_GPU_S1S_CPBS` and `MAMBA_GPU_S1S_FORMS` (comma lists) restrict the block
/// shapes and the forms (1: `_v1`, 2, 3: `_p`; with `g32`: 32 threads per channel, the
/// default; `2g64`: 64 threads per channel, one state each, at most 6 channels per block;
/// `4`: the warp-specialised `_ws`, at most 6 channels per block; `5g32`: `_g32f`; `6`:
/// the time split in two halves `_t2`, at most 6 channels per block). The default list
/// keeps the older forms only (the test's time); the four selectable-only forms of the
/// fourth session passed on the H200 with `MAMBA_GPU_S1S_FORMS=2g64` / `4` / `5g32` /
/// `6` and `MAMBA_GPU_S1S_CPBS=6,3,1` (`5g32` also 8). Sixth session: `7g32` .. `11g32`
/// (`_g32i` .. `_g32m`: the outputs and the prep inside the step loop, and more); `10g32`
/// (`_g32l`) was the default form up to the sixth session, then `8g32` (`_g32j`);
/// `2g32` is `_g32`. Seventh session: `12g32` / `13g32` (`_g32n` / `_g32o`: the
/// mbarrier ring, and with the staging by warps 2 and 3), `14g32` / `15g32` (`_g32q` /
/// `_g32r`: the staging, and the outputs, by warps 2 and 3), `16g32` (`_g32s`: the
/// outputs of the paired warps' channels by warps 2 and 3); `14g32` is the default form
/// (first in the default list), the others selectable only.
#[test]
fn selective_scan_seed1_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(31);
    std::env::set_var("MAMBA_CUDA_S1S", "1");
    let cfg = scan_cfg_random_options;
    let v = Bc::Varying;
    let shapes = [
        (2, 384, 400, 64, v, v),
        (2, 384, 800, 64, v, v),
        (2, 384, 1, 64, v, v),
        (1, 32, 31, 64, v, v),
        (1, 48, 33, 64, v, v),
        (2, 16, 17, 37, v, v),
        (1, 24, 333, 5, Bc::Grouped(3), Bc::Grouped(2)),
        (2, 6, 100, 64, Bc::Grouped(2), Bc::Grouped(3)),
        (1, 40, 257, 16, Bc::Grouped(5), v),
        (1, 64, 1000, 1, v, Bc::Grouped(4)),
        (3, 13, 72, 64, v, v),
        (1, 10, 68, 20, v, v),
        // Seventh session: L 16 / 63 / 127 / 1025 (odd tile tails, 4-byte staging).
        (1, 20, 16, 64, v, v),
        (1, 12, 63, 64, v, v),
        (2, 14, 127, 48, v, v),
        (1, 8, 1025, 64, v, v),
    ];
    let cpbs: Vec<String> = std::env::var("MAMBA_GPU_S1S_CPBS")
        .unwrap_or_else(|_| "6,8,4,1,3,16".to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    // Forms: 2 (one barrier per tile), 1 (`_v1`), 3 (`_p`): MAMBA_CUDA_S1S_V; a `g32`
    // suffix: 32 threads per channel (the default), else 16 (MAMBA_CUDA_S1S_G).
    let forms: Vec<String> = std::env::var("MAMBA_GPU_S1S_FORMS")
        .unwrap_or_else(|_| "14g32,10g32,8g32,2g32,3g32,2,1,3".to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    // `MAMBA_GPU_S1S_SHAPES` (a comma list of indices into `shapes`; compute-sanitizer's
    // racecheck): only these shapes, and neither the random shapes nor the default choice.
    let only: Option<Vec<usize>> = std::env::var("MAMBA_GPU_S1S_SHAPES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    for (form, cpb) in forms.iter().flat_map(|f| cpbs.iter().map(move |c| (f, c))) {
        let nv = form
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(form.len());
        std::env::set_var("MAMBA_CUDA_S1S_V", &form[..nv]);
        std::env::set_var(
            "MAMBA_CUDA_S1S_G",
            if form.ends_with("g32") {
                "32"
            } else if form.ends_with("g64") {
                "64"
            } else {
                "16"
            },
        );
        std::env::set_var("MAMBA_CUDA_S1S_CPB", cpb);
        // `MAMBA_GPU_QUICK` (compute-sanitizer runs): the small shapes only.
        for (_, &(b, d, l, n, bl, cl)) in shapes.iter().enumerate().filter(|(k, s)| {
            only.as_ref()
                .map_or(!quick() || s.1 * s.2 <= 100_000, |o| o.contains(k))
        }) {
            let c = cfg(&mut rng, b, d, l, n, bl, cl);
            scan_check::<f32>(be, &mut rng, &c, &mut t32);
            scan_check::<bf16>(be, &mut rng, &c, &mut t16);
            scan_check::<f16>(be, &mut rng, &c, &mut th);
            let all = ScanCfg {
                d_skip: true,
                z: true,
                bias: true,
                init: true,
                softplus: true,
                ..c
            };
            scan_check::<f32>(be, &mut rng, &all, &mut t32);
            let none = ScanCfg {
                d_skip: false,
                z: false,
                bias: false,
                init: false,
                softplus: false,
                ..c
            };
            scan_check::<f32>(be, &mut rng, &none, &mut t32);
        }
    }
    std::env::remove_var("MAMBA_CUDA_S1S_CPB");
    std::env::remove_var("MAMBA_CUDA_S1S_V");
    std::env::remove_var("MAMBA_CUDA_S1S_G");
    if only.is_some() {
        std::env::remove_var("MAMBA_CUDA_S1S");
        t32.finish("selective_scan s1s f32");
        t16.finish("selective_scan s1s bf16");
        th.finish("selective_scan s1s f16");
        return;
    }
    // Random shapes and options (time-invariant B / C and N > 64 fall back).
    for _ in 0..rounds() {
        let c = random_scan_cfg(&mut rng);
        scan_check::<f32>(be, &mut rng, &c, &mut t32);
        scan_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    for c in [
        cfg(&mut rng, 1, 16, 100, 16, Bc::Shared, v),
        cfg(&mut rng, 1, 16, 100, 128, v, v),
    ] {
        scan_check::<f32>(be, &mut rng, &c, &mut t32);
    }
    std::env::remove_var("MAMBA_CUDA_S1S");
    // The default choice at the seed shapes (s1s at 16 <= L <= 4096 with 16-byte-aligned
    // rows: L a multiple of 4 in f32, of 8 in the 16-bit types here; the older paths
    // elsewhere), each length in every type (until the twenty-first session s1s took every
    // L in 128 ..= 1024, aligned or not).
    let lens: &[usize] = if quick() {
        &[1, 96, 128]
    } else {
        &[
            1, 16, 63, 96, 100, 127, 128, 200, 300, 400, 800, 1024, 1025, 1100, 2048, 4096,
        ]
    };
    for &l in lens {
        let c = cfg(&mut rng, 2, 384, l, 64, v, v);
        scan_check::<f32>(be, &mut rng, &c, &mut t32);
        scan_check::<bf16>(be, &mut rng, &c, &mut t16);
        scan_check::<f16>(be, &mut rng, &c, &mut th);
    }
    t32.finish("selective_scan s1s f32");
    t16.finish("selective_scan s1s bf16");
    th.finish("selective_scan s1s f16");
}

// ------------------------------------------------------------------ SPEC 2

#[derive(Clone, Copy, Debug)]
struct SsdCfg {
    b: usize,
    l: usize,
    h: usize,
    p: usize,
    g: usize,
    n: usize,
    d: u8, // 0 none, 1 (h), 2 (h, p)
    z: bool,
    bias: bool,
    init: bool,
    seq: bool,
    softplus: bool,
    limit: Option<(f32, f32)>,
}

fn ssd_check<T: Element>(be: &CudaBackend, rng: &mut Rng, c: &SsdCfg, t: &mut Tally) {
    ssd_check_seq::<T>(be, rng, c, None, t);
}

/// [`ssd_check`] with the seq_idx of `ids` (b L values) where given and `c.seq` is set.
fn ssd_check_seq<T: Element>(
    be: &CudaBackend,
    rng: &mut Rng,
    c: &SsdCfg,
    ids: Option<&[i32]>,
    t: &mut Tally,
) {
    let io = c.b * c.l * c.h * c.p;
    let bc = c.b * c.l * c.g * c.n;
    let st = c.b * c.h * c.p * c.n;
    let x = to::<T>(&rng.normals(io, 1.0));
    let dt = if c.softplus {
        to::<T>(&rng.uniforms(c.b * c.l * c.h, -3.0, 1.0))
    } else {
        to::<T>(&rng.uniforms(c.b * c.l * c.h, 0.001, 0.7))
    };
    // Odd heads decay slowly (A in [-0.05, -0.01]): with A in [-8, -0.5] only, the terms of
    // steps far back are so small that a chunked form that drops them passes (nineteenth
    // session, host emulators with EMU_SLOW).
    let a: Vec<f32> = (0..c.h)
        .map(|j| {
            if j % 2 == 1 {
                -(rng.range(0.01, 0.05) as f32)
            } else {
                -(rng.range(0.5, 8.0) as f32)
            }
        })
        .collect();
    let bm = to::<T>(&rng.normals(bc, 1.0));
    let cm = to::<T>(&rng.normals(bc, 1.0));
    let dv = rng.normals(if c.d == 2 { c.h * c.p } else { c.h }, 1.0);
    let z = to::<T>(&rng.normals(io, 1.0));
    let bias = if c.softplus {
        rng.uniforms(c.h, -3.0, 0.0)
    } else {
        rng.uniforms(c.h, 0.0, 0.3)
    };
    let init = rng.normals(st, 1.0);
    let mut seq = random_seq(rng, c.b, c.l, 0.02);
    if let Some(ids) = ids {
        seq.copy_from_slice(ids);
    }
    macro_rules! args {
        ($x:expr, $dt:expr, $a:expr, $b:expr, $c:expr, $d:expr, $z:expr, $bias:expr, $init:expr) => {{
            let mut a = SsdArgs::new(
                Tensor::new($x, [c.b, c.l, c.h, c.p]),
                Tensor::new($dt, [c.b, c.l, c.h]),
                Tensor::new($a, [c.h]),
                Tensor::new($b, [c.b, c.l, c.g, c.n]),
                Tensor::new($c, [c.b, c.l, c.g, c.n]),
            )
            .with_dt_softplus(c.softplus);
            match c.d {
                1 => a = a.with_d(Tensor::new($d, [c.h])),
                2 => a = a.with_d(Tensor::new($d, [c.h, c.p])),
                _ => {}
            }
            if c.z {
                a = a.with_z(Tensor::new($z, [c.b, c.l, c.h, c.p]));
            }
            if c.bias {
                a = a.with_dt_bias(Tensor::new($bias, [c.h]));
            }
            if c.init {
                a = a.with_initial_states(Tensor::new($init, [c.b, c.h, c.p, c.n]));
            }
            if c.seq {
                a = a.with_seq_idx(Tensor::new(&seq, [c.b, c.l]));
            }
            if let Some((lo, hi)) = c.limit {
                a = a.with_dt_limit(lo, hi);
            }
            a
        }};
    }
    let args = args!(&x, &dt, &a, &bm, &cm, &dv, &z, &bias, &init);
    let mut out = nan::<T>(io);
    let mut fin = nan::<f32>(st);
    Kernels::<T>::ssd(be, &args, &mut out, Some(&mut fin)).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let (x6, dt6, a6, b6, c6, d6, z6, bi6, in6) = (
        f64s(&x),
        f64s(&dt),
        f64s(&a),
        f64s(&bm),
        f64s(&cm),
        f64s(&dv),
        f64s(&z),
        f64s(&bias),
        f64s(&init),
    );
    let oargs = args!(&x6, &dt6, &a6, &b6, &c6, &d6, &z6, &bi6, &in6);
    let mut eo = vec![0f64; io];
    let mut ef = vec![0f64; st];
    Reference::<f64>::oracle()
        .ssd(&oargs, &mut eo, Some(&mut ef))
        .unwrap();
    let what = format!("ssd {} {c:?}", T::DTYPE);
    t.check(&format!("{what} out"), rel_l2(&out, &eo), tol::<T>());
    t.check(
        &format!("{what} final_states"),
        rel_l2(&fin, &ef),
        tol::<T>().max(1e-5),
    );
}

impl SsdCfg {
    /// Every option on: D per channel, z, dt_bias, initial states, softplus and a clamping
    /// dt limit (seq_idx as it was).
    /// Every option off (D, z, dt_bias, initial states, softplus, dt limits); seq_idx as it
    /// is.
    fn no_options(self) -> Self {
        SsdCfg {
            d: 0,
            z: false,
            bias: false,
            init: false,
            softplus: false,
            limit: None,
            ..self
        }
    }

    fn all_options(self) -> Self {
        SsdCfg {
            d: 2,
            z: true,
            bias: true,
            init: true,
            softplus: true,
            limit: Some((0.001, 1.5)),
            ..self
        }
    }
}

/// A configuration at a given shape with random options (D none / per head / per channel,
/// z, dt_bias, initial states, softplus, dt limits); no seq_idx.
fn shape_ssd_cfg(
    rng: &mut Rng,
    b: usize,
    l: usize,
    h: usize,
    p: usize,
    g: usize,
    n: usize,
) -> SsdCfg {
    SsdCfg {
        b,
        l,
        h,
        p,
        g,
        n,
        d: rng.int(0, 2) as u8,
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        seq: false,
        softplus: rng.coin(),
        limit: if rng.coin() { Some((0.001, 1.5)) } else { None },
    }
}

fn random_ssd_cfg(rng: &mut Rng) -> SsdCfg {
    let h = rng.int(1, 6);
    SsdCfg {
        b: rng.int(1, 3),
        l: rng.int(1, 300),
        h,
        p: *[1usize, 3, 8, 16, 64].get(rng.int(0, 4)).unwrap(),
        g: rng.divisor(h),
        n: *[1usize, 5, 16, 32, 64, 128].get(rng.int(0, 5)).unwrap(),
        d: rng.int(0, 2) as u8,
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        seq: rng.coin(),
        softplus: rng.coin(),
        limit: if rng.coin() { Some((0.01, 2.0)) } else { None },
    }
}

#[test]
fn ssd_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(2);
    let mut t = Tally::default();
    let all = |b, l, h, p, g, n| SsdCfg {
        b,
        l,
        h,
        p,
        g,
        n,
        d: 2,
        z: true,
        bias: true,
        init: true,
        seq: true,
        softplus: true,
        limit: Some((0.001, 1.5)),
    };
    let fixed = [
        all(2, 400, 6, 64, 1, 64),
        all(1, 1000, 2, 16, 2, 128),
        all(1, 37, 4, 5, 2, 7),
        all(1, 1, 1, 1, 1, 1),
        all(2, 129, 3, 64, 3, 256),
    ];
    for c in fixed {
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        ssd_check::<f16>(be, &mut rng, &c, &mut t);
    }
    for _ in 0..rounds() * 4 {
        let c = random_ssd_cfg(&mut rng);
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
    }
    // Every register tile, with and without the time split.
    for tile in ["q1n4", "q2n8", "q4n8", "q4n16"] {
        std::env::set_var("MAMBA_CUDA_SSD_TILE", tile);
        for chunks in ["1", "5"] {
            std::env::set_var("MAMBA_CUDA_SSD_CHUNKS", chunks);
            let c = all(2, 300, 4, 24, 2, 40);
            ssd_check::<f32>(be, &mut rng, &c, &mut t);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSD_TILE");
    std::env::remove_var("MAMBA_CUDA_SSD_CHUNKS");
    t.finish("ssd");
}

/// The chunked SSD (kernels/ssd_chunk.cu): all three forms (mma.sync `chunked`, the first
/// `wmma` one, the three-kernel `split3`), f32 and bf16 without seq_idx, p and N
/// multiples of 16, every chunk length (32, 64; 128 for `split3`), rows per block (16,
/// 32, 64) and register variant, L not a multiple of the chunk, with and without each
/// option (initial and final states included). The kernel is forced where it applies;
/// a test running beside this one then checks the chunked form where it would have
/// checked the recurrent one, which is as good a check.
#[test]
fn ssd_chunked_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(12);
    let mut rng_wg = Rng(26);
    let cfg = shape_ssd_cfg;
    let shapes = [
        (2, 300, 4, 64, 2, 128),
        (1, 1000, 2, 32, 1, 64),
        (2, 129, 3, 16, 3, 16),
        (1, 1, 1, 16, 1, 16),
        (1, 65, 2, 48, 1, 80),
        (2, 400, 6, 64, 1, 64),
        (1, 33, 8, 64, 2, 32),
        (1, 2048, 2, 64, 1, 128),
    ];
    let quick_shapes = [shapes[2], shapes[4], shapes[6]];
    let shapes: &[_] = if quick() { &quick_shapes } else { &shapes };
    // The lm `_s` / `_d` / `_m` variants: mostly N 128 with p a multiple of 64 (odd L, L < Q,
    // groups, two p tiles), N 64 / 32 (VAR 28's `_n64` / `_n32` kernels since the
    // twenty-fifth session; the generic kernels for the other VARs).
    // ("" in that column: the default, 19 where it applies.)
    let var_shapes = [
        (2, 300, 4, 64, 2, 128),
        (1, 2048, 2, 64, 1, 128),
        (2, 129, 3, 128, 3, 128),
        (1, 1, 2, 64, 1, 128),
        (1, 65, 2, 64, 1, 128),
        (2, 200, 8, 64, 1, 128),
        (1, 129, 12, 64, 2, 128),
        (2, 300, 3, 64, 3, 64),
        (2, 300, 3, 64, 3, 32),
        (1, 400, 2, 64, 1, 64),
        (2, 200, 8, 128, 2, 64),
        (1, 129, 4, 128, 2, 32),
    ];
    let var_shapes: &[_] = if quick() {
        &var_shapes[2..9]
    } else {
        &var_shapes
    };
    let set = set_env;
    // (MAMBA_CUDA_SSD_Q, _PB, _MINB, MAMBA_CUDA_SSD3_STATES); "" leaves the default.
    let one_pass: &[[&str; 4]] = &[
        ["", "", "", ""],
        ["32", "16", "", ""],
        ["32", "64", "", ""],
        ["64", "32", "", ""],
        ["64", "64", "", ""],
        ["64", "64", "2", ""],
        ["32", "32", "2", ""],
    ];
    // split3: bf16 chunk states on the bf16 path unless `f32`; `_m2` (MINB 2) exists for
    // bf16 states with Q 64 / 128 and for f32 with Q 64 (elsewhere it is ignored).
    let split3: &[[&str; 4]] = &[
        ["", "", "", ""],
        ["", "", "", "f32"],
        ["128", "64", "", ""],
        ["128", "64", "2", ""],
        ["128", "16", "", "f32"],
        ["128", "32", "", ""],
        ["64", "64", "", "f32"],
        ["64", "64", "2", ""],
        ["64", "32", "2", "f32"],
        ["32", "32", "", ""],
    ];
    // lm (`ssdl`, four kernels): Q 64 / 128 / 256, PB 16-64 (f32 Q 256 halves PB or Q
    // where the shared memory does not fit).
    // The last column is MAMBA_CUDA_SSDL_FUSE here (1: the state pass chained in the
    // states kernel; 2: one pass after C B^T), the third MAMBA_CUDA_SSDL_VAR (1: the `_s`
    // kernels, 2: `_s` states and `_d` outputs, 3: `_m` states (several heads per block) and
    // `_s` outputs, 4: `_m` states and `_d` outputs, 5: 4 with the per-chunk headers of
    // `ssdl_hdr` (no dt scan in the two kernels), 6: 5 with the M X balanced over the
    // warps, 7 / 8: 5 / 6 with the combine folded into the states kernel, 9: 5 with HB
    // heads per outputs block (`_h`, MAMBA_CUDA_SSDL_HBO), 10: 9 with C B^T and the
    // headers in one launch, 11: 10 with `_mw` states, 12: 10 with `_hv` outputs, 13: 11
    // with `_hv`, 14: 12 with `_mxk` states, 15: 14 with `_hy` outputs (Y in
    // 16-byte row stores), 16-18: 14 with the chunk states and the state pass in one
    // kernel (`ssdl_statesw`, PB x NB 64 x 128, 64 x 64, 32 x 128; no combine), 19: 16
    // with `_hy` (the default), 20 / 21: 16 / 17 with w on the x fragments, 22 / 23: 19 with
    // two heads per states block (kernels/ssd_lm.cu; 64 x 128 / 64 x 64 tiles; odd heads per
    // group: the one-head kernel), 24-27: 19 with more stages in flight in the states kernel
    // (64 x 64 / 64 x 128 with three buffers of a chunk, 64 x 128 with four / three buffers of
    // half a chunk), 28: 19 with the states in 16-byte stores (the default since the seventh session),
    // 60-67: 28 with the states kernel on wgmma (kernels/ssd_wg.cu; sm_90a, else 28), 70: 60 with
    // the outputs on wgmma too, 71: 70 with its M X tiles pipelined;
    // bf16 at Q 128, N 128, PB 64, else ignored).
    let lm: &[[&str; 4]] = &[
        ["", "", "", ""],
        ["", "", "14", ""],
        ["", "", "12", ""],
        ["", "", "9", ""],
        ["", "", "10", ""],
        ["", "", "11", ""],
        ["", "", "13", ""],
        ["", "", "15", ""],
        ["", "", "16", ""],
        ["", "", "17", ""],
        ["", "", "18", ""],
        ["", "", "19", ""],
        ["", "", "20", ""],
        ["", "", "21", ""],
        ["", "", "22", ""],
        ["", "", "23", ""],
        ["", "", "24", ""],
        ["", "", "25", ""],
        ["", "", "26", ""],
        ["", "", "27", ""],
        ["", "", "28", ""],
        ["", "", "60", ""],
        ["", "", "61", ""],
        ["", "", "62", ""],
        ["", "", "63", ""],
        ["", "", "64", ""],
        ["", "", "65", ""],
        ["", "", "66", ""],
        ["", "", "67", ""],
        ["", "", "70", ""],
        ["", "", "71", ""],
        ["", "", "5", ""],
        ["", "", "4", ""],
        ["", "", "6", ""],
        ["", "", "7", ""],
        ["", "", "8", ""],
        ["", "", "3", ""],
        ["", "", "0", ""],
        ["", "", "1", ""],
        ["", "", "2", ""],
        ["128", "64", "2", ""],
        ["", "", "2", "1"],
        ["", "", "5", "1"],
        ["", "", "12", "1"],
        ["", "", "", "1"],
        ["", "", "", "2"],
        ["256", "64", "", "1"],
        ["256", "64", "", "2"],
        ["64", "64", "", ""],
        ["64", "64", "", "2"],
        ["128", "16", "", "1"],
        ["128", "32", "", "2"],
        ["64", "32", "", "1"],
        ["256", "32", "", ""],
    ];
    // MAMBA_GPU_SSD_IMPLS (comma-separated) restricts the forms checked (device rounds).
    let only = std::env::var("MAMBA_GPU_SSD_IMPLS").ok();
    for imp in ["lm", "chunked", "wmma", "split3"] {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|v| v == imp))
        {
            continue;
        }
        let (mut t32, mut t16) = (Tally::default(), Tally::default());
        set("MAMBA_CUDA_SSD_IMPL", imp);
        let variants = match imp {
            "split3" => split3,
            "lm" => lm,
            _ => one_pass,
        };
        // MAMBA_GPU_SSDL_FUSES (comma-separated 0, 1, 2) restricts the lm variants, and
        // MAMBA_GPU_SSDL_VARS (0-28, 60-67, 70, 71) likewise (quick: every listed one, else the first 3).
        let fuses = std::env::var("MAMBA_GPU_SSDL_FUSES").ok();
        let vars = std::env::var("MAMBA_GPU_SSDL_VARS").ok();
        let variants = if quick() && (imp != "lm" || vars.is_none()) {
            &variants[..3]
        } else {
            variants
        };
        for &[q, pb, minb, states] in variants {
            let fz = if states.is_empty() { "0" } else { states };
            let vz = if minb.is_empty() { "0" } else { minb };
            if imp == "lm"
                && (fuses
                    .as_ref()
                    .is_some_and(|f| !f.split(',').any(|v| v == fz))
                    || vars
                        .as_ref()
                        .is_some_and(|f| !f.split(',').any(|v| v == vz)))
            {
                continue;
            }
            set("MAMBA_CUDA_SSD_Q", q);
            set("MAMBA_CUDA_SSD_PB", pb);
            if imp == "lm" {
                set("MAMBA_CUDA_SSDL_VAR", minb);
                set("MAMBA_CUDA_SSDL_FUSE", states);
            } else {
                set("MAMBA_CUDA_SSD_MINB", minb);
                set("MAMBA_CUDA_SSD3_STATES", states);
            }
            let shapes = if imp == "lm" && !minb.is_empty() {
                var_shapes
            } else {
                shapes
            };
            // The wgmma VARs (60 on, twenty-sixth session) draw their data from a generator
            // of their own, so that the data every later check sees does not depend on how
            // many of them are listed.
            let rng = if imp == "lm" && minb.parse::<usize>().is_ok_and(|v| v >= 60) {
                &mut rng_wg
            } else {
                &mut rng
            };
            for &(b, l, h, p, g, n) in shapes {
                let c = cfg(rng, b, l, h, p, g, n);
                ssd_check::<f32>(be, rng, &c, &mut t32);
                ssd_check::<bf16>(be, rng, &c, &mut t16);
            }
        }
        set("MAMBA_CUDA_SSD_Q", "");
        set("MAMBA_CUDA_SSD_PB", "");
        set("MAMBA_CUDA_SSD_MINB", "");
        set("MAMBA_CUDA_SSD3_STATES", "");
        set("MAMBA_CUDA_SSDL_FUSE", "");
        set("MAMBA_CUDA_SSDL_VAR", "");
        // Every option on, both types, default shape.
        for &(b, l, h, p, g, n) in &shapes[..shapes.len().min(4)] {
            let c = cfg(&mut rng, b, l, h, p, g, n).all_options();
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        }
        t32.finish(&format!("ssd {imp} f32"));
        t16.finish(&format!("ssd {imp} bf16"));
    }
    // The fused forms at N 64 / 32 with enough (batch, head) pairs for VAR 28's default
    // (twenty-fifth session): they must take the generic fused kernels, not the `_s` / `_d`
    // ones, whose N is fixed at 128 (a fault the first N 64 build had; not yet run on the
    // device when written).
    if only
        .as_ref()
        .is_none_or(|o| o.split(',').any(|v| v == "lm"))
    {
        let mut t = Tally::default();
        set("MAMBA_CUDA_SSD_IMPL", "lm");
        set("MAMBA_CUDA_SSDL_FUSE", "1");
        for n in [64, 32] {
            let c = cfg(&mut rng, 2, 300, 36, 64, 1, n);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        }
        set("MAMBA_CUDA_SSDL_FUSE", "");
        set("MAMBA_CUDA_SSD_IMPL", "");
        t.finish("ssd lm fused bf16 (N 64 / 32, h36)");
    }
    // f16 (twenty-fifth session): `ssdl` in VAR 28's form where it fits (Q 128, N 64 / 128,
    // PB 64: odd L, L < Q, groups, two p tiles, many heads per outputs block; these shapes
    // have too few blocks for the default to take it, so it is forced: MAMBA_CUDA_SSDL_VAR
    // 28), the generic `ssdl` kernels elsewhere (N 16-80, p 16-64, and the default at few
    // blocks), forced (`lm`) and by default.
    if only
        .as_ref()
        .is_none_or(|o| o.split(',').any(|v| v == "lm16"))
    {
        let mut t = Tally::default();
        // 60 / 70 / 71 (twenty-sixth session: the wgmma forms, f16 at N 128; elsewhere 28 or
        // the generic kernels) draw from their own generator, as in the lm block above.
        for (imp, var) in [
            ("lm", "28"),
            ("lm", ""),
            ("", ""),
            ("lm", "60"),
            ("lm", "70"),
            ("lm", "71"),
        ] {
            set("MAMBA_CUDA_SSD_IMPL", imp);
            set("MAMBA_CUDA_SSDL_VAR", var);
            let rng = if var.parse::<usize>().is_ok_and(|v| v >= 60) {
                &mut rng_wg
            } else {
                &mut rng
            };
            for &(b, l, h, p, g, n) in var_shapes.iter().chain(shapes) {
                let c = cfg(rng, b, l, h, p, g, n);
                ssd_check::<f16>(be, rng, &c, &mut t);
            }
            for &(b, l, h, p, g, n) in &var_shapes[..4] {
                let c = cfg(rng, b, l, h, p, g, n).all_options();
                ssd_check::<f16>(be, rng, &c, &mut t);
            }
        }
        set("MAMBA_CUDA_SSDL_VAR", "");
        t.finish("ssd lm f16");
    }
    // lm32 (`ssdl32`, f32 on 3xTF32 tensor cores: Q 128, PB 64, N 64 / 128, p a multiple of
    // 64; elsewhere the call falls back): odd L, L < Q, two p tiles, groups, heads per group
    // not a multiple of the heads per states block (MAMBA_CUDA_SSD32_HB 1 / 2 / 4 / 8), and
    // shapes where it does not apply (N 32, p 48).
    if only
        .as_ref()
        .is_none_or(|o| o.split(',').any(|v| v == "lm32"))
    {
        set("MAMBA_CUDA_SSD_IMPL", "lm32");
        let lm32_shapes = [
            (2, 300, 4, 64, 2, 128),
            (1, 2048, 2, 64, 1, 128),
            (2, 129, 3, 128, 3, 128),
            (1, 1, 2, 64, 1, 128),
            (1, 65, 2, 64, 1, 64),
            (2, 200, 8, 64, 1, 128),
            (1, 129, 12, 64, 2, 128),
            (1, 400, 6, 64, 3, 64),
            (1, 33, 8, 64, 2, 32),
            (1, 65, 2, 48, 1, 128),
        ];
        let lm32_shapes: &[_] = if quick() {
            &lm32_shapes[2..7]
        } else {
            &lm32_shapes
        };
        let mut t = Tally::default();
        for hb in ["", "1", "2", "8"] {
            set("MAMBA_CUDA_SSD32_HB", hb);
            for &(b, l, h, p, g, n) in lm32_shapes {
                let c = cfg(&mut rng, b, l, h, p, g, n);
                ssd_check::<f32>(be, &mut rng, &c, &mut t);
            }
            if quick() {
                break;
            }
        }
        set("MAMBA_CUDA_SSD32_HB", "");
        for &(b, l, h, p, g, n) in &lm32_shapes[..4] {
            let c = cfg(&mut rng, b, l, h, p, g, n).all_options();
            ssd_check::<f32>(be, &mut rng, &c, &mut t);
        }
        t.finish("ssd lm32 f32");
        // (The loops above run the default: `ssdl32_cb`, `ssdl32_hdr8`, `ssdl32_bsplit_n*` and
        // `ssdl32_sseqh_n*` (n128 at N 128), `ssdl32_csplit_m` and the `_pfm` outputs (N 128;
        // `_pf` at N 64), i.e. "6phcfm" below; where the sm_90a module is loaded `_pfm` as
        // `ssdlw_out_f32_pfw2`, and the states pass as `ssdl32_sseqh_n*e`, i.e. "6phcfmoe".)
        // The combine folded into the states pass (`ssdl32_sseq_*`, MAMBA_CUDA_SSD32_SEQ
        // 0-4; 5 / 6 the split-f16 `ssdl32_sseqh_n64` / `_n128`; a "p" after it sets
        // MAMBA_CUDA_SSD32_OPF=1, the outputs kernel's C B^T prefetch, else 0; then an "h"
        // MAMBA_CUDA_SSD32_HDR=1, the headers in rows of 8 heads, else 0; then a "c"
        // MAMBA_CUDA_SSD32_CB=1, C B^T on the f64 tensor cores, else 0;
        // then an "f" MAMBA_CUDA_SSD32_F16=1, C S^T on the f16 tensor cores (`_pfh`, N 128
        // with the prefetch; the N 64 shapes keep `_pf`), else 0 (3xTF32);
        // then a "b" MAMBA_CUDA_SSD32_OBAL=1 (`_pfhb`, the M X balanced over the warps) or a
        // "t" MAMBA_CUDA_SSD32_OBAL=3 (`_pfh3`, three blocks per SM); then an "m"
        // MAMBA_CUDA_SSD32_MX16=1 (`_pfm`, M X left of the diagonal on the f16 tensor cores,
        // the default), else 0; then a "w" MAMBA_CUDA_SSD32_WG=1 (the N 128 states pass on
        // wgmma, `ssdlw_states_f32_q128_n128`, where the sm_90a module is loaded), else 0;
        // then an "o" MAMBA_CUDA_SSD32_OWG=1 (`_pfm` with C S^T on wgmma, `ssdlw_out_f32_pfw`,
        // where the sm_90a module is loaded), else 0; then an "e" MAMBA_CUDA_SSD32_SE=1 (the
        // split-f16 states pass with less staging between chunks, `ssdl32_sseqh_n*e`, the
        // default), else 0; then a "d" MAMBA_CUDA_SSD32_MXD=1 (`ssdlw_out_f32_pfw`, M X's C B^T
        // quads one tile ahead; `_pfw2`, two ahead, is the default), else unset;
        // MAMBA_GPU_SSD32_SEQS picks them): the same shapes, then every option on.
        let seqs = std::env::var("MAMBA_GPU_SSD32_SEQS").unwrap_or_else(|_| {
            "0,1,2,4,0p,3ph,3pc,3phc,3phcf,5phcf,6phcfb,6phcft,5phc,6phcfm,6phfm,6phcfmw,6phcfmo,6phcfmwo,5phcfe,6phcfmoe,6phcfmoed".into()
        });
        for seq in seqs.split(',').filter(|v| !v.is_empty()) {
            let (sq, mxd) = seq.strip_suffix('d').map_or((seq, ""), |m| (m, "1"));
            let (sq, se) = sq.strip_suffix('e').map_or((sq, "0"), |m| (m, "1"));
            let (sq, owg) = sq.strip_suffix('o').map_or((sq, "0"), |m| (m, "1"));
            let (sq, wg) = sq.strip_suffix('w').map_or((sq, "0"), |m| (m, "1"));
            let (m, mx16) = sq.strip_suffix('m').map_or((sq, "0"), |m| (m, "1"));
            let (m, obal) = m.strip_suffix('b').map_or((m, ""), |m| (m, "1"));
            let (m, obal) = m.strip_suffix('t').map_or((m, obal), |m| (m, "3"));
            let (m, f16) = m.strip_suffix('f').map_or((m, "0"), |m| (m, "1"));
            let (m, cb) = m.strip_suffix('c').map_or((m, "0"), |m| (m, "1"));
            let (m, hd) = m.strip_suffix('h').map_or((m, "0"), |m| (m, "1"));
            let (m, pf) = m.strip_suffix('p').map_or((m, "0"), |m| (m, "1"));
            set("MAMBA_CUDA_SSD32_SEQ", m);
            set("MAMBA_CUDA_SSD32_OPF", pf);
            set("MAMBA_CUDA_SSD32_HDR", hd);
            set("MAMBA_CUDA_SSD32_CB", cb);
            set("MAMBA_CUDA_SSD32_F16", f16);
            set("MAMBA_CUDA_SSD32_OBAL", obal);
            set("MAMBA_CUDA_SSD32_MX16", mx16);
            set("MAMBA_CUDA_SSD32_WG", wg);
            set("MAMBA_CUDA_SSD32_OWG", owg);
            set("MAMBA_CUDA_SSD32_SE", se);
            set("MAMBA_CUDA_SSD32_MXD", mxd);
            let mut t = Tally::default();
            for &(b, l, h, p, g, n) in lm32_shapes {
                let c = cfg(&mut rng, b, l, h, p, g, n);
                ssd_check::<f32>(be, &mut rng, &c, &mut t);
            }
            for &(b, l, h, p, g, n) in &lm32_shapes[..4] {
                let c = cfg(&mut rng, b, l, h, p, g, n).all_options();
                ssd_check::<f32>(be, &mut rng, &c, &mut t);
            }
            t.finish(&format!("ssd lm32 sseq{seq} f32"));
        }
        set("MAMBA_CUDA_SSD32_SEQ", "");
        set("MAMBA_CUDA_SSD32_OPF", "");
        set("MAMBA_CUDA_SSD32_HDR", "");
        set("MAMBA_CUDA_SSD32_CB", "");
        set("MAMBA_CUDA_SSD32_F16", "");
        set("MAMBA_CUDA_SSD32_WG", "");
        set("MAMBA_CUDA_SSD32_OWG", "");
        set("MAMBA_CUDA_SSD32_SE", "");
        set("MAMBA_CUDA_SSD32_MXD", "");
        set("MAMBA_CUDA_SSD32_OBAL", "");
        set("MAMBA_CUDA_SSD32_MX16", "");
    }
    std::env::remove_var("MAMBA_CUDA_SSD_IMPL");
    // `auto` in MAMBA_GPU_SSD_IMPLS runs the checks of the default choice below.
    if quick()
        || only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|v| v == "auto"))
    {
        return;
    }
    // The default (`auto`) takes the chunked kernel for bf16 with >= 2 (batch, head)
    // pairs per SM (Q = 32, PB = 64, the 128-register variant) ...
    let mut t = Tally::default();
    let c = cfg(&mut rng, 2, 100, 132, 64, 1, 64);
    ssd_check::<bf16>(be, &mut rng, &c, &mut t);
    t.finish("ssd auto bf16 (b2 h132)");
    // ... and ssdl there at L >= 128 (1024 until the twenty-first session; odd L, groups,
    // every option on and random ones), in f16 too since the twenty-fifth session (VAR 28 at
    // N 32 / 64 / 128 from half the SMs' worth of states blocks on, else the generic ssdl
    // kernels).
    let (mut t, mut th) = (Tally::default(), Tally::default());
    for (l, h, g, p, n) in [
        (1030, 132, 1, 32, 32),
        (1100, 136, 2, 32, 32),
        (1030, 132, 1, 64, 128),
        (128, 132, 1, 64, 128),
        (301, 136, 2, 64, 64),
        (301, 136, 2, 64, 128),
        // VAR 28 from half the SMs' worth of states blocks on (twenty-fifth session): 48
        // blocks (the generic kernels), 96 (VAR 28, N 64 / 32).
        (1000, 24, 1, 64, 64),
        (1000, 24, 1, 64, 128),
        (1000, 48, 1, 64, 64),
        (1000, 48, 2, 64, 32),
    ] {
        let c = cfg(&mut rng, 2, l, h, p, g, n);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        ssd_check::<f16>(be, &mut rng, &c, &mut th);
        let c = cfg(&mut rng, 2, l, h, p, g, n).all_options();
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        ssd_check::<f16>(be, &mut rng, &c, &mut th);
    }
    t.finish("ssd auto bf16 (b2 h132-136, L >= 128: ssdl; p64 N128: the LM kernels)");
    th.finish("ssd auto f16 (the same shapes)");
    // ... and the seed shape at 640 <= L <= 1024 in f32 (split3 once; `ssdz` since the
    // eleventh session), with every option on and without.
    let mut t = Tally::default();
    for l in [640, 800, 1024] {
        let c = cfg(&mut rng, 2, l, 6, 64, 1, 64);
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
        let c = cfg(&mut rng, 2, l, 6, 64, 1, 64).all_options();
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
    }
    t.finish("ssd auto f32 (b2 h6, L 640-1024)");
    // ... and ssdl32 for f32 with >= 2 (batch, head) pairs per SM at L >= 128 (N 128 with
    // random options; N 64, two groups, every option on; L 128 and an odd L under 1024).
    let mut t = Tally::default();
    let c = cfg(&mut rng, 2, 1030, 132, 64, 1, 128);
    ssd_check::<f32>(be, &mut rng, &c, &mut t);
    let c = cfg(&mut rng, 2, 1100, 136, 64, 2, 64).all_options();
    ssd_check::<f32>(be, &mut rng, &c, &mut t);
    let c = cfg(&mut rng, 2, 128, 132, 64, 1, 128).all_options();
    ssd_check::<f32>(be, &mut rng, &c, &mut t);
    let c = cfg(&mut rng, 2, 301, 136, 64, 2, 128);
    ssd_check::<f32>(be, &mut rng, &c, &mut t);
    t.finish("ssd auto f32 (b2 h132-136, L >= 128: ssdl32)");
    // ... and, since the twenty-second session, at fewer (batch, head) pairs wherever the
    // seed forms do not take the call (b2 h24; the seed width past 1024 steps in bf16).
    let mut t = Tally::default();
    for (b, l, h, g, p, n) in [
        (2, 512, 24, 1, 64, 64),
        (2, 1030, 24, 2, 64, 128),
        (2, 1500, 6, 1, 64, 64),
    ] {
        let c = cfg(&mut rng, b, l, h, p, g, n).all_options();
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        let c = cfg(&mut rng, b, l, h, p, g, n);
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
    }
    t.finish("ssd auto f32 / bf16 (b2 h6-24: ssdl32 / ssdl, f32 L1500 h6: ssdz segments)");
    // ... and the twenty-third session's rules: f32 from 16 (batch, head) pairs takes ssdl32
    // in split3's old region too (b2 h24 L700, b1 h16 N128 L800); fewer pairs at N128 keep
    // split3 (L800) or the recurrent kernels (L300); N 16 at the seed width takes the seed
    // kernel instead of `ssdr`; bf16 past one wave of the seed kernel's blocks takes ssdl
    // (b2 h12 L400: 312 blocks), within it the seed kernel (L300: 240), f16 the seed kernel.
    let mut t = Tally::default();
    for (b, l, h, g, p, n) in [
        (2, 700, 24, 1, 64, 64),
        (1, 800, 16, 2, 64, 128),
        (2, 800, 6, 1, 64, 128),
        (2, 300, 6, 1, 64, 128),
        (2, 400, 6, 1, 64, 16),
    ] {
        let c = cfg(&mut rng, b, l, h, p, g, n).all_options();
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
        let c = cfg(&mut rng, b, l, h, p, g, n);
        ssd_check::<f32>(be, &mut rng, &c, &mut t);
    }
    for l in [300, 400] {
        let c = cfg(&mut rng, 2, l, 12, 64, 1, 64).all_options();
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        ssd_check::<f16>(be, &mut rng, &c, &mut t);
        let c = cfg(&mut rng, 2, l, 12, 64, 1, 64);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
        ssd_check::<f16>(be, &mut rng, &c, &mut t);
    }
    t.finish("ssd auto (twenty-third session: ssdl32 from 16 pairs, N 16 / 128 seeds, bf16 ssdl past one seed wave)");
}

/// A seq_idx (b L values) whose sequences start at each step past 0 with probability `rate`.
fn random_seq(rng: &mut Rng, b: usize, l: usize, rate: f64) -> Vec<i32> {
    let mut seq = vec![0i32; b * l];
    for i in 0..b {
        let mut id = 0;
        for tt in 0..l {
            if tt > 0 && rng.uniform() < rate {
                id += 1;
            }
            seq[i * l + tt] = id;
        }
    }
    seq
}

/// The seq_idx (b L values) of sequences starting at `starts` (steps past 0) in every row.
fn seq_from_starts(b: usize, l: usize, starts: &[usize]) -> Vec<i32> {
    (0..b * l)
        .map(|e| starts.iter().filter(|&&s| s <= e % l).count() as i32)
        .collect()
}

/// The SSD forward's language-model kernels with packed sequences (fifty-fifth session: their
/// header kernels reset the state at each sequence's first step, `L32_RESET` /
/// `SSDL_RESET2`): f32 (`ssdl32`, forced, with its older forms by env, and in two parts of
/// batch rows), bf16 and f16 (`ssdl` forced: the generic kernels, VARs 28, 60, 70, 71), then
/// the default rule at
/// widths where it takes them, against the f64 oracle. Three kinds of seq_idx per shape:
/// sequences starting at random (2% of the steps), at and beside the chunk edges (1, 2, 15,
/// 16, 127, 128, 129, 255, 256, 257, L - 1), and many short ones (30% of the steps, so
/// sequences of one step side by side).
#[test]
fn ssd_lm_packed_sequences_match_the_oracle() {
    let Some(be) = backend() else { return };
    let set = set_env;
    let mut rng = Rng(55);
    let cfg = shape_ssd_cfg;
    // Each kind of seq_idx for one configuration: None = `ssd_check`'s random 2%.
    let kinds = |rng: &mut Rng, c: &SsdCfg| -> Vec<Option<Vec<i32>>> {
        let edges: Vec<usize> = [1, 2, 15, 16, 127, 128, 129, 255, 256, 257]
            .into_iter()
            .chain([c.l.saturating_sub(1)])
            .filter(|&s| s > 0 && s < c.l)
            .collect();
        let dense = random_seq(rng, c.b, c.l, 0.3);
        vec![None, Some(seq_from_starts(c.b, c.l, &edges)), Some(dense)]
    };
    let check = |rng: &mut Rng, c: &SsdCfg, f32_only: bool, t: &mut Tally| {
        let c = SsdCfg { seq: true, ..*c };
        for ids in kinds(rng, &c) {
            if f32_only {
                ssd_check_seq::<f32>(be, rng, &c, ids.as_deref(), t);
            } else {
                ssd_check_seq::<bf16>(be, rng, &c, ids.as_deref(), t);
                ssd_check_seq::<f16>(be, rng, &c, ids.as_deref(), t);
            }
        }
    };
    let shapes = [
        (2, 300, 4, 64, 2, 128),
        (1, 2048, 2, 64, 1, 128),
        (2, 129, 3, 128, 3, 128),
        (1, 400, 6, 64, 3, 64),
        (2, 200, 8, 64, 1, 128),
    ];
    let shapes: &[_] = if quick() { &shapes[2..4] } else { &shapes };
    let mut t = Tally::default();
    set("MAMBA_CUDA_SSD_IMPL", "lm32");
    for &(b, l, h, p, g, n) in shapes {
        let c = cfg(&mut rng, b, l, h, p, g, n);
        check(&mut rng, &c, true, &mut t);
        check(&mut rng, &c.all_options(), true, &mut t);
    }
    // The older f32 forms (every one takes its decays from the headers): the one-warp
    // header kernel, the chunk states with a separate combine, the 3xTF32 states pass, the
    // 3xTF32 outputs, `_pfm` without wgmma; and two parts of batch rows.
    for (k, v) in [
        ("MAMBA_CUDA_SSD32_HDR", "0"),
        ("MAMBA_CUDA_SSD32_SEQ", "0"),
        ("MAMBA_CUDA_SSD32_SEQ", "3"),
        ("MAMBA_CUDA_SSD32_F16", "0"),
        ("MAMBA_CUDA_SSD32_OWG", "0"),
        ("MAMBA_CUDA_SSD_SPLIT", "2"),
    ] {
        set(k, v);
        for &(b, l, h, p, g, n) in &shapes[..2] {
            let c = cfg(&mut rng, b, l, h, p, g, n).all_options();
            check(&mut rng, &c, true, &mut t);
        }
        set(k, "");
    }
    t.finish("ssd lm32 f32 with seq_idx");
    let mut t = Tally::default();
    set("MAMBA_CUDA_SSD_IMPL", "lm");
    // "": the default VAR, at these shapes (few blocks) the generic kernels (VAR 0, their
    // own scan), also at p / N of no other form.
    let generic = [(2, 200, 3, 32, 1, 48), (1, 130, 2, 16, 2, 16)];
    for var in ["", "28", "60", "70", "71"] {
        set("MAMBA_CUDA_SSDL_VAR", var);
        let extra: &[_] = if var.is_empty() { &generic } else { &[] };
        for &(b, l, h, p, g, n) in shapes.iter().chain(extra) {
            let c = cfg(&mut rng, b, l, h, p, g, n);
            check(&mut rng, &c, false, &mut t);
            check(&mut rng, &c.all_options(), false, &mut t);
        }
    }
    set("MAMBA_CUDA_SSDL_VAR", "");
    t.finish("ssd lm bf16 / f16 with seq_idx");
    // The default rule where it takes the LM kernels: f32 from two (batch, head) pairs per SM
    // (`ssdl32`), bf16 / f16 from half the SMs in VAR 28 states blocks (`ssdl` VAR 71), below
    // that the generic `ssdl` kernels; at the seed shape `ssdz`.
    set("MAMBA_CUDA_SSD_IMPL", "");
    let mut t = Tally::default();
    let c = cfg(&mut rng, 4, 256, 80, 64, 1, 128).all_options();
    check(&mut rng, &c, true, &mut t);
    let c = cfg(&mut rng, 1, 384, 80, 64, 1, 128).all_options();
    check(&mut rng, &c, false, &mut t);
    // Fewer blocks: bf16 / f16 on the generic kernels (VAR 0).
    let c = cfg(&mut rng, 2, 512, 24, 64, 1, 128).all_options();
    check(&mut rng, &c, false, &mut t);
    // The seed shape (`ssdz` with its own resets).
    let c = cfg(&mut rng, 2, 800, 6, 64, 1, 64).all_options();
    check(&mut rng, &c, true, &mut t);
    check(&mut rng, &c, false, &mut t);
    t.finish("ssd default with seq_idx at the LM widths");
}

/// The chunked SSD forms beside the LM ones with packed sequences (fifty-sixth session:
/// their f64 scans reset the state where a sequence starts, kernels/ssd_chunk.cu
/// `SSDM_RESET`): `wmma` (`ssdc`, f32), `chunked` (`ssdm`) and `split3` forced, f32 and
/// bf16, every chunk length, with seq_idx at random, at and beside the chunk edges, and
/// dense (sequences of one step); then the default rule where `split3` takes f32 calls
/// (fewer than 16 (batch, head) pairs at 640-1024 steps, N 128, where `ssdz` does not apply).
#[test]
fn ssd_chunked_packed_sequences_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(56);
    let (mut t32, mut t16) = (Tally::default(), Tally::default());
    let shapes = [
        (2, 300, 4, 64, 2, 64),
        (1, 129, 2, 32, 1, 128),
        (2, 77, 3, 16, 3, 32),
    ];
    let forms: [(&str, &[usize]); 3] = [
        ("wmma", &[32, 64]),
        ("chunked", &[32, 64]),
        ("split3", &[32, 64, 128]),
    ];
    for (imp, qs) in forms {
        set_env("MAMBA_CUDA_SSD_IMPL", imp);
        for &q in qs {
            set_env("MAMBA_CUDA_SSD_Q", &q.to_string());
            for &(b, l, h, p, g, n) in &shapes {
                let c = SsdCfg {
                    seq: true,
                    ..shape_ssd_cfg(&mut rng, b, l, h, p, g, n)
                };
                let edges: Vec<usize> = (1..=l / q)
                    .flat_map(|k| [k * q - 1, k * q, k * q + 1])
                    .chain([1, l - 1])
                    .filter(|&s| s > 0 && s < l)
                    .collect();
                let at = seq_from_starts(b, l, &edges);
                let dense = random_seq(&mut rng, b, l, 0.3);
                for ids in [None, Some(&at[..]), Some(&dense[..])] {
                    ssd_check_seq::<f32>(be, &mut rng, &c, ids, &mut t32);
                    if imp != "wmma" {
                        ssd_check_seq::<bf16>(be, &mut rng, &c, ids, &mut t16);
                    }
                }
            }
        }
    }
    set_env("MAMBA_CUDA_SSD_Q", "");
    set_env("MAMBA_CUDA_SSD_IMPL", "");
    for (b, l, h) in [(1, 800, 8), (2, 700, 4), (1, 1024, 12)] {
        let c = SsdCfg {
            seq: true,
            ..shape_ssd_cfg(&mut rng, b, l, h, 64, 1, 128)
        };
        let dense = random_seq(&mut rng, b, l, 0.3);
        for ids in [None, Some(&dense[..])] {
            ssd_check_seq::<f32>(be, &mut rng, &c, ids, &mut t32);
        }
    }
    t32.finish("ssd chunked forms f32 with seq_idx");
    t16.finish("ssd chunked forms bf16 with seq_idx");
}

/// The SSD forward on the language-model kernels with the batch rows in parts, each part
/// on a stream of its own (`MAMBA_CUDA_SSD_SPLIT`, ops.rs `ssd_split_parts`: 2 by default
/// for `ssdl32` past 1024 steps): 2 and 3 parts of 3 and 4 rows (uneven parts included), `ssdl` (bf16) and
/// `ssdl32` (f32) forced, every option on (initial and final states included) and random
/// ones. Each check reads the output right after the call, so a part left unjoined on
/// the caller's stream shows as the NaN the output was filled with.
#[test]
fn ssd_batch_split_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(29);
    let set = set_env;
    let mut t = Tally::default();
    for parts in ["2", "3"] {
        set("MAMBA_CUDA_SSD_SPLIT", parts);
        for imp in ["lm", "lm32"] {
            set("MAMBA_CUDA_SSD_IMPL", imp);
            for (b, l, h, g, n) in [
                (3, 1030, 4, 1, 128),
                (4, 300, 6, 2, 64),
                (2, 129, 2, 1, 128),
            ] {
                let all = shape_ssd_cfg(&mut rng, b, l, h, 64, g, n).all_options();
                let some = shape_ssd_cfg(&mut rng, b, l, h, 64, g, n);
                for c in [all, some] {
                    if imp == "lm" {
                        ssd_check::<bf16>(be, &mut rng, &c, &mut t);
                    } else {
                        ssd_check::<f32>(be, &mut rng, &c, &mut t);
                    }
                }
            }
        }
    }
    set("MAMBA_CUDA_SSD_IMPL", "");
    set("MAMBA_CUDA_SSD_SPLIT", "");
    t.finish("ssd with the batch rows in parts on streams of their own (ssdl bf16, ssdl32 f32)");
}

/// `final_states` may alias `initial_states` (abi.rs; the Mamba2Block passes one state
/// buffer for both): a call with one buffer for both gives what a call with two gives, at
/// the shapes of each default form (the seed shapes, where `ssdz` reads the initial state
/// in every block of a cluster while the last block writes the final state; an odd shape;
/// the f32 language-model path in two runs of batch rows). Before the twentieth session's
/// copy in `ssd_dispatch`, the Mamba2Block golden case 00 failed through `ssdz` (rel 1e-3).
#[test]
fn ssd_aliased_states_match_separate_buffers() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(37);
    let mut n_checks = 0;
    for (b, l, h, p, g, n) in [
        (2, 400, 6, 64, 1, 64),
        (2, 800, 6, 64, 1, 64),
        (1, 257, 16, 64, 1, 128),
        (2, 33, 6, 16, 2, 16),
        (2, 100, 3, 64, 1, 64),
        (4, 1024, 72, 64, 1, 128),
    ] {
        n_checks += ssd_alias_case::<f32>(be, &mut rng, (b, l, h, p, g, n));
        n_checks += ssd_alias_case::<bf16>(be, &mut rng, (b, l, h, p, g, n));
    }
    eprintln!("ssd with final_states aliasing initial_states: {n_checks} comparisons");
}

fn ssd_alias_case<T: Element + plugin::DeviceElement>(
    be: &CudaBackend,
    rng: &mut Rng,
    (b, l, h, p, g, n): (usize, usize, usize, usize, usize, usize),
) -> usize {
    let s = be.stream().unwrap();
    let (io, bc, st) = (b * l * h * p, b * l * g * n, b * h * p * n);
    let up = |v: Vec<f32>| be.upload(&to::<T>(&v), &s).unwrap();
    let x = up(rng.normals(io, 1.0));
    let dt = up(rng.uniforms(b * l * h, -3.0, 1.0));
    let bm = up(rng.normals(bc, 1.0));
    let cm = up(rng.normals(bc, 1.0));
    let a: Vec<f32> = (0..h)
        .map(|j| {
            -(if j % 2 == 1 {
                rng.range(0.01, 0.05)
            } else {
                rng.range(0.5, 8.0)
            }) as f32
        })
        .collect();
    let a = be.upload(&a, &s).unwrap();
    let dv = be.upload(&rng.normals(h, 1.0), &s).unwrap();
    let bias = be.upload(&rng.uniforms(h, -3.0, 0.0), &s).unwrap();
    let init = rng.normals(st, 1.0);
    let sep_in = be.upload(&init, &s).unwrap();
    let sep_fin = be.alloc::<f32>(st).unwrap();
    let both = be.upload(&init, &s).unwrap();
    let (out1, out2) = (be.alloc::<T>(io).unwrap(), be.alloc::<T>(io).unwrap());
    let desc = |init: TensorDesc, fin: TensorDesc, out: TensorDesc| abi::SsdDesc {
        x: x.desc(&[b, l, h, p]),
        dt: dt.desc(&[b, l, h]),
        a: a.desc(&[h]),
        b: bm.desc(&[b, l, g, n]),
        c: cm.desc(&[b, l, g, n]),
        d: dv.desc(&[h]),
        dt_bias: bias.desc(&[h]),
        initial_states: init,
        out,
        final_states: fin,
        dt_softplus: 1,
        ..Default::default()
    };
    let shape = [b, h, p, n];
    let d1 = desc(
        sep_in.desc(&shape),
        sep_fin.desc(&shape),
        out1.desc(&[b, l, h, p]),
    );
    let d2 = desc(
        both.desc(&shape),
        both.desc(&shape),
        out2.desc(&[b, l, h, p]),
    );
    // SAFETY: every descriptor points to a live buffer of its shape; the reads below
    // synchronise the stream before the buffers drop.
    unsafe { be.ssd_device(&d1, &s) }.unwrap();
    // SAFETY: as above.
    unsafe { be.ssd_device(&d2, &s) }.unwrap();
    let what = format!("ssd {} b{b} L{l} h{h} p{p} g{g} N{n}", T::DTYPE);
    let (o1, o2) = (
        f64s(&out1.to_vec(&s).unwrap()),
        f64s(&out2.to_vec(&s).unwrap()),
    );
    let (f1, f2) = (
        f64s(&sep_fin.to_vec(&s).unwrap()),
        f64s(&both.to_vec(&s).unwrap()),
    );
    assert!(o1.iter().all(|v| v.is_finite()), "{what}: out not finite");
    let (eo, ef) = (rel_l2_64(&o2, &o1), rel_l2_64(&f2, &f1));
    assert!(
        eo <= 1e-6,
        "{what}: out with aliased states differs (rel-L2 {eo:.3e})"
    );
    assert!(
        ef <= 1e-6,
        "{what}: final states with aliased states differ (rel-L2 {ef:.3e})"
    );
    2
}

/// The seed SSD (kernels/seed.cu, `MAMBA_CUDA_SEED=1`): one launch, each block folds the
/// local states of all earlier chunks of its (batch, head). Seed shapes, L not a multiple
/// of the 32-step chunk, L < chunk, p / N not multiples of 4 (p, N <= 64), groups, every
/// option on and off (initial and final states included), f32 / bf16 / f16; seq_idx and
/// p or N above 64 fall back to the older paths.
#[test]
fn ssd_seed_matches_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(21);
    std::env::set_var("MAMBA_CUDA_SEED", "1");
    let cfg = shape_ssd_cfg;
    let shapes = [
        (2, 400, 6, 64, 1, 64),
        (2, 800, 6, 64, 1, 64),
        (1, 1, 1, 1, 1, 1),
        (1, 31, 2, 5, 1, 7),
        (1, 32, 4, 64, 2, 64),
        (2, 33, 3, 40, 3, 17),
        (1, 97, 4, 3, 2, 64),
        (2, 130, 6, 64, 3, 33),
        (1, 1000, 2, 16, 1, 64),
        (2, 257, 4, 64, 4, 16),
    ];
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    for &(b, l, h, p, g, n) in &shapes {
        let c = cfg(&mut rng, b, l, h, p, g, n);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        let all = c.all_options();
        ssd_check::<f32>(be, &mut rng, &all, &mut t32);
        let none = c.no_options();
        ssd_check::<f32>(be, &mut rng, &none, &mut t32);
        ssd_check::<f16>(be, &mut rng, &c, &mut th);
    }
    // Random shapes and options (the ones past p, N = 64 or with seq_idx fall back).
    for _ in 0..rounds() * 4 {
        let c = random_ssd_cfg(&mut rng);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    // Every fold grouping (1: each chunk its own group; 1000: all earlier locals).
    for group in ["1", "2", "3", "5", "1000"] {
        std::env::set_var("MAMBA_CUDA_SEED_GROUP", group);
        for &(b, l, h, p, g, n) in &[shapes[0], shapes[5], shapes[8], (1, 300, 2, 64, 1, 64)] {
            let c = cfg(&mut rng, b, l, h, p, g, n);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SEED_GROUP");
    // The 16-step form (the default is 32 steps), then the compact one (rolled k loops).
    std::env::set_var("MAMBA_CUDA_SEED_Q", "16");
    for &(b, l, h, p, g, n) in &[shapes[0], shapes[1], shapes[3], shapes[5], shapes[7]] {
        let c = cfg(&mut rng, b, l, h, p, g, n);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    std::env::set_var("MAMBA_CUDA_SEED_Q", "32");
    std::env::set_var("MAMBA_CUDA_SEED_COMPACT", "1");
    for &(b, l, h, p, g, n) in &[shapes[0], shapes[3], shapes[5], shapes[7]] {
        let c = cfg(&mut rng, b, l, h, p, g, n);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    std::env::remove_var("MAMBA_CUDA_SEED_COMPACT");
    std::env::remove_var("MAMBA_CUDA_SEED_Q");
    // Several in a row on the same stream (the kept flags and ticket counter).
    for _ in 0..3 {
        let c = cfg(&mut rng, 2, 800, 6, 64, 1, 64);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
    }
    std::env::remove_var("MAMBA_CUDA_SEED");
    // The default (`auto`: the seed kernel for few (batch, head) pairs at 256 <= L <= 1024).
    for l in [256, 400, 800, 1024] {
        let c = cfg(&mut rng, 2, l, 6, 64, 1, 64);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    t32.finish("ssd seed f32");
    t16.finish("ssd seed bf16");
    th.finish("ssd seed f16");
}

/// The recurrent SSD over many small blocks (`ssdr_*`, `MAMBA_CUDA_SSDR=1`): the seed
/// shapes, L 1 and L not a multiple of the 32-step tile, p and N not multiples of the
/// thread tile (4 states) or of the rows per block, N up to 128, groups, seq_idx, every
/// option on and off (initial and final states included), f32 / bf16 / f16; every block
/// size (`MAMBA_CUDA_SSDR_WARPS`), the plain step forced everywhere
/// (`MAMBA_CUDA_SSDR_SLOW=1`), unaligned B / C rows (4-byte copies); then the default.
#[test]
fn ssd_recurrent_blocks_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(23);
    std::env::set_var("MAMBA_CUDA_SSDR", "1");
    // The `ssdr` forms of ssd_seed.cu (`_p` and its options), not `ssdq` (the seed-shape
    // default since the sixth session; `ssd_recurrent_blocks_q_match_the_oracle`).
    std::env::set_var("MAMBA_CUDA_SSDR_Q", "0");
    let cfg = |rng: &mut Rng, b, l, h, p, g, n, seq| SsdCfg {
        b,
        l,
        h,
        p,
        g,
        n,
        d: rng.int(0, 2) as u8,
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        seq,
        softplus: rng.coin(),
        limit: if rng.coin() { Some((0.001, 1.5)) } else { None },
    };
    let shapes = [
        (2, 400, 6, 64, 1, 64),
        (2, 800, 6, 64, 1, 64),
        // L = 1, p = 1, N = 1 in four heads: a single output element can cancel (C s
        // against D x), and its relative error is then unbounded in any f32 arithmetic
        // (a plain f32 evaluation of the step misses 1e-5 as often, emu_ssdr.cpp); four
        // elements keep the relative L2 error well-conditioned.
        (1, 1, 4, 1, 1, 1),
        (1, 31, 2, 5, 1, 7),
        (1, 32, 4, 64, 2, 64),
        (2, 33, 3, 40, 3, 17),
        (1, 97, 4, 3, 2, 64),
        (2, 130, 6, 64, 3, 33),
        (1, 1000, 2, 16, 1, 64),
        (2, 257, 4, 64, 4, 16),
        (1, 70, 2, 66, 1, 128),
        (2, 45, 2, 12, 2, 100),
    ];
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    let quick = std::env::var("MAMBA_GPU_QUICK").is_ok();
    // Both forms: without and with the helper warp (`MAMBA_CUDA_SSDR_H`).
    for helper in ["0", "1"] {
        std::env::set_var("MAMBA_CUDA_SSDR_H", helper);
        for warps in ["2", "1", "4", "8"] {
            std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
            for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
                if quick && warps != "2" && si % 3 != 0 {
                    continue;
                }
                let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
                ssd_check::<f32>(be, &mut rng, &c, &mut t32);
                ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
                if warps != "2" {
                    continue;
                }
                let all = SsdCfg {
                    seq: true,
                    ..c.all_options()
                };
                ssd_check::<f32>(be, &mut rng, &all, &mut t32);
                let none = SsdCfg {
                    seq: false,
                    ..c.no_options()
                };
                ssd_check::<f32>(be, &mut rng, &none, &mut t32);
                ssd_check::<f16>(be, &mut rng, &c, &mut th);
            }
        }
        std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
        // Random shapes and options (N up to 128; seq_idx on half of them).
        for _ in 0..rounds() * 3 {
            let c = random_ssd_cfg(&mut rng);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        }
        // The plain step everywhere.
        std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
        for &(b, l, h, p, g, n) in &[shapes[0], shapes[3], shapes[5], shapes[7], shapes[10]] {
            let c = cfg(&mut rng, b, l, h, p, g, n, false);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        }
        std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
        // Several in a row on one stream.
        for _ in 0..2 {
            let c = cfg(&mut rng, 2, 800, 6, 64, 1, 64, false);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
    }
    // The helper-warp form without the seed shape's folded constants.
    std::env::set_var("MAMBA_CUDA_SSDR_FIX", "0");
    for &(b, l, h, p, g, n) in &[shapes[0], shapes[1], shapes[7]] {
        let c = cfg(&mut rng, b, l, h, p, g, n, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_FIX");
    // The epilogues on a helper warp (`MAMBA_CUDA_SSDR_EPI=1`), the split helpers
    // (`MAMBA_CUDA_SSDR_SPLIT=1`) and the pipelined step loop (`MAMBA_CUDA_SSDR_PIPE=1`),
    // both block sizes.
    for (epi, split, pipe) in [
        ("0", "0", "0"),
        ("1", "0", "0"),
        ("0", "1", "0"),
        ("1", "1", "0"),
        ("0", "0", "1"),
        ("1", "0", "1"),
        ("1", "1", "1"),
    ] {
        std::env::set_var("MAMBA_CUDA_SSDR_EPI", epi);
        std::env::set_var("MAMBA_CUDA_SSDR_SPLIT", split);
        std::env::set_var("MAMBA_CUDA_SSDR_PIPE", pipe);
        for warps in ["2", "4"] {
            std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
            for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
                let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
                ssd_check::<f32>(be, &mut rng, &c, &mut t32);
                if warps == "2" {
                    ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
                }
            }
        }
        // The plain step everywhere.
        std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
        for &(b, l, h, p, g, n) in &[shapes[0], shapes[5]] {
            let c = cfg(&mut rng, b, l, h, p, g, n, false);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
        std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
    std::env::remove_var("MAMBA_CUDA_SSDR_EPI");
    std::env::remove_var("MAMBA_CUDA_SSDR_SPLIT");
    std::env::remove_var("MAMBA_CUDA_SSDR_PIPE");
    // `_q1` / `_q2` (`MAMBA_CUDA_SSDR_Q`: the dt chain before the wait for x, 1 or 2 tiles
    // of copy look-ahead), epilogues on a helper or on the compute warps.
    for (q, epi) in [("1", "1"), ("2", "1"), ("2", "0")] {
        std::env::set_var("MAMBA_CUDA_SSDR_Q", q);
        std::env::set_var("MAMBA_CUDA_SSDR_EPI", epi);
        for warps in ["2", "4"] {
            std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
            for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
                let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
                ssd_check::<f32>(be, &mut rng, &c, &mut t32);
                if warps == "2" {
                    ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
                }
            }
        }
        std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
        for &(b, l, h, p, g, n) in &[shapes[0], shapes[5]] {
            let c = cfg(&mut rng, b, l, h, p, g, n, false);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
        std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
    }
    // `_q1` with 3 compute warps (`ssdr_h_f32_g16_w3_q1`, 6 rows per block: x copied 4 bytes
    // at a time) where it applies (f32, 33 <= N <= 64), the generic kernels elsewhere.
    std::env::set_var("MAMBA_CUDA_SSDR_Q", "1");
    std::env::set_var("MAMBA_CUDA_SSDR_WARPS", "3");
    for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
        let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_Q");
    std::env::remove_var("MAMBA_CUDA_SSDR_EPI");
    std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
    std::env::remove_var("MAMBA_CUDA_SSDR_H");
    std::env::remove_var("MAMBA_CUDA_SSDR");
    // The default at the seed shapes.
    for l in [256, 400, 800, 1024] {
        let c = cfg(&mut rng, 2, l, 6, 64, 1, 64, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    t32.finish("ssd ssdr f32");
    t16.finish("ssd ssdr bf16");
    th.finish("ssd ssdr f16");
}

/// `ssdr_h3_*` (`MAMBA_CUDA_SSDR_Q=3`: the whole dt chain at the start, one helper warp)
/// forced over the ssdr test's shapes (L 1-1024, L not a multiple of 32, p 1-66, N 1-128,
/// groups, seq_idx), random options, every block size, the plain step, both look-aheads
/// at the seed shape, and L 1025 (past its limit: the older form takes it).
#[test]
fn ssd_recurrent_blocks_r_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(29);
    std::env::set_var("MAMBA_CUDA_SSDR", "1");
    std::env::set_var("MAMBA_CUDA_SSDR_Q", "3");
    let cfg = |rng: &mut Rng, b, l, h, p, g, n, seq| SsdCfg {
        b,
        l,
        h,
        p,
        g,
        n,
        d: rng.int(0, 2) as u8,
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        seq,
        softplus: rng.coin(),
        limit: if rng.coin() { Some((0.001, 1.5)) } else { None },
    };
    let shapes = [
        (2, 400, 6, 64, 1, 64),
        (2, 800, 6, 64, 1, 64),
        (1, 1, 4, 1, 1, 1),
        (1, 31, 2, 5, 1, 7),
        (1, 32, 4, 64, 2, 64),
        (2, 33, 3, 40, 3, 17),
        (1, 97, 4, 3, 2, 64),
        (2, 130, 6, 64, 3, 33),
        (1, 1000, 2, 16, 1, 64),
        (2, 257, 4, 64, 4, 16),
        (1, 70, 2, 66, 1, 128),
        (2, 45, 2, 12, 2, 100),
        (1, 1024, 2, 64, 1, 64),
        (1, 1025, 2, 64, 1, 64),
        (2, 799, 6, 64, 1, 64),
    ];
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    let quick = std::env::var("MAMBA_GPU_QUICK").is_ok();
    for warps in ["2", "1", "4", "8"] {
        std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
        for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
            if quick && warps != "2" && si % 3 != 0 {
                continue;
            }
            let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
            if warps != "2" {
                continue;
            }
            let all = SsdCfg {
                seq: true,
                ..c.all_options()
            };
            ssd_check::<f32>(be, &mut rng, &all, &mut t32);
            let none = SsdCfg {
                seq: false,
                ..c.no_options()
            };
            ssd_check::<f32>(be, &mut rng, &none, &mut t32);
            ssd_check::<f16>(be, &mut rng, &c, &mut th);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
    // Random shapes and options (N up to 128; seq_idx on half of them).
    for _ in 0..rounds() * 3 {
        let c = random_ssd_cfg(&mut rng);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    // The plain step everywhere.
    std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
    for &(b, l, h, p, g, n) in &[shapes[0], shapes[3], shapes[5], shapes[7], shapes[10]] {
        let c = cfg(&mut rng, b, l, h, p, g, n, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
    // One tile of look-ahead (`_r1`, seed shape kernel), and several calls in a row.
    for la in ["1", "2"] {
        std::env::set_var("MAMBA_CUDA_SSDR_LA", la);
        for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
            if n <= 32 || n > 64 {
                continue;
            }
            let c = cfg(&mut rng, b, l, h, p, g, n, si % 2 == 1);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
        for _ in 0..2 {
            let c = cfg(&mut rng, 2, 800, 6, 64, 1, 64, false);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_LA");
    // The epilogues on the compute warps (`MAMBA_CUDA_SSDR_EPI=0`), two block sizes, both
    // step forms.
    std::env::set_var("MAMBA_CUDA_SSDR_EPI", "0");
    for warps in ["2", "4"] {
        std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
        for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
            let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            if warps == "2" {
                ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
            }
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
    std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
    for &(b, l, h, p, g, n) in &[shapes[0], shapes[5], shapes[14]] {
        let c = cfg(&mut rng, b, l, h, p, g, n, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
    std::env::remove_var("MAMBA_CUDA_SSDR_EPI");
    std::env::remove_var("MAMBA_CUDA_SSDR_Q");
    std::env::remove_var("MAMBA_CUDA_SSDR");
    // The default at the seed shapes.
    for l in [256, 400, 800, 1024] {
        let c = cfg(&mut rng, 2, l, 6, 64, 1, 64, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    t32.finish("ssd ssdr_h3 f32");
    t16.finish("ssd ssdr_h3 bf16");
    th.finish("ssd ssdr_h3 f16");
}

/// `ssdq_*` (`MAMBA_CUDA_SSDR_Q=4`, kernels/ssd_seed2.cu: the `_p` roles decoupled by
/// mbarrier rings, the epilogues on a third helper warp) forced over the ssdr shapes
/// (L 1-1025, L not a multiple of 32, p 1-66, N 1-128, groups, seq_idx), random options
/// and every option on / off, every block size, f32 / bf16 / f16, the plain step, both
/// ring depths of the seed-shape kernels (`MAMBA_CUDA_SSDR_NS`, 2, 3 and 4 compute warps; two
/// epilogue warps, two rows per thread), the
/// generic kernel at the seed shape, calls in a row; then the default at the seed shapes.
#[test]
fn ssd_recurrent_blocks_q_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(31);
    std::env::set_var("MAMBA_CUDA_SSDR", "1");
    std::env::set_var("MAMBA_CUDA_SSDR_Q", "4");
    let cfg = |rng: &mut Rng, b, l, h, p, g, n, seq| SsdCfg {
        b,
        l,
        h,
        p,
        g,
        n,
        d: rng.int(0, 2) as u8,
        z: rng.coin(),
        bias: rng.coin(),
        init: rng.coin(),
        seq,
        softplus: rng.coin(),
        limit: if rng.coin() { Some((0.001, 1.5)) } else { None },
    };
    let shapes = [
        (2, 400, 6, 64, 1, 64),
        (2, 800, 6, 64, 1, 64),
        (1, 1, 4, 1, 1, 1),
        (1, 31, 2, 5, 1, 7),
        (1, 32, 4, 64, 2, 64),
        (2, 33, 3, 40, 3, 17),
        (1, 97, 4, 3, 2, 64),
        (2, 130, 6, 64, 3, 33),
        (1, 1000, 2, 16, 1, 64),
        (2, 257, 4, 64, 4, 16),
        (1, 70, 2, 66, 1, 128),
        (2, 45, 2, 12, 2, 100),
        (1, 65, 2, 64, 1, 64),
        (1, 1025, 2, 64, 1, 64),
        (2, 799, 6, 64, 1, 64),
    ];
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    let quick = quick();
    for warps in ["2", "1", "4", "8"] {
        std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
        for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
            if quick && warps != "2" && si % 3 != 0 {
                continue;
            }
            let c = cfg(&mut rng, b, l, h, p, g, n, si % 4 == 3);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
            if warps != "2" {
                continue;
            }
            let all = SsdCfg {
                seq: true,
                ..c.all_options()
            };
            ssd_check::<f32>(be, &mut rng, &all, &mut t32);
            let none = SsdCfg {
                seq: false,
                ..c.no_options()
            };
            ssd_check::<f32>(be, &mut rng, &none, &mut t32);
            ssd_check::<f16>(be, &mut rng, &c, &mut th);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
    // Random shapes and options (N up to 128; seq_idx on half of them).
    for _ in 0..rounds() * 3 {
        let c = random_ssd_cfg(&mut rng);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    // The plain step everywhere.
    std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
    for &(b, l, h, p, g, n) in &[shapes[0], shapes[3], shapes[5], shapes[7], shapes[10]] {
        let c = cfg(&mut rng, b, l, h, p, g, n, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
    // The seed-shape kernel with rings of 3 and 4 slots, the generic kernel there, and
    // several calls in a row.
    for (ns, fix, warps) in [
        ("3", "1", "2"),
        ("4", "1", "2"),
        ("4", "0", "2"),
        ("3", "1", "3"),
        ("4", "1", "3"),
        ("3", "1", "4"),
        ("4", "1", "4"),
        ("3", "e2", "2"),
        ("3", "r2", "2"),
        ("3", "r2e2", "2"),
    ] {
        // `fix` "e2" / "r2" / "r2e2": two epilogue warps (`MAMBA_CUDA_SSDR_EW=2`), two rows
        // per thread (`MAMBA_CUDA_SSDR_R2=1`), both.
        std::env::set_var(
            "MAMBA_CUDA_SSDR_EW",
            if fix.contains("e2") { "2" } else { "1" },
        );
        std::env::set_var(
            "MAMBA_CUDA_SSDR_R2",
            if fix.contains("r2") { "1" } else { "0" },
        );
        let fix = if fix == "0" { "0" } else { "1" };
        std::env::set_var("MAMBA_CUDA_SSDR_NS", ns);
        std::env::set_var("MAMBA_CUDA_SSDR_FIX", fix);
        std::env::set_var("MAMBA_CUDA_SSDR_WARPS", warps);
        for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
            if n <= 32 || n > 64 {
                continue;
            }
            let c = cfg(&mut rng, b, l, h, p, g, n, si % 2 == 1);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
        for _ in 0..2 {
            let c = cfg(&mut rng, 2, 800, 6, 64, 1, 64, false);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
        std::env::set_var("MAMBA_CUDA_SSDR_SLOW", "1");
        let c = cfg(&mut rng, 2, 400, 6, 64, 1, 64, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        std::env::remove_var("MAMBA_CUDA_SSDR_SLOW");
    }
    std::env::remove_var("MAMBA_CUDA_SSDR_NS");
    std::env::remove_var("MAMBA_CUDA_SSDR_FIX");
    std::env::remove_var("MAMBA_CUDA_SSDR_WARPS");
    std::env::remove_var("MAMBA_CUDA_SSDR_EW");
    std::env::remove_var("MAMBA_CUDA_SSDR_R2");
    std::env::remove_var("MAMBA_CUDA_SSDR_Q");
    std::env::remove_var("MAMBA_CUDA_SSDR");
    // The default at the seed shapes, and (f32, N 33..64, few (batch, head) pairs) at every
    // L up to 4096, where `ssdq` `_e2` is the automatic choice since the sixth session.
    for (l, n) in [
        (256, 64),
        (400, 64),
        (800, 64),
        (1000, 64),
        (1024, 64),
        (1, 64),
        (17, 40),
        (100, 64),
        (255, 33),
        (1500, 64),
        (4096, 64),
    ] {
        let c = cfg(&mut rng, 2, l, 6, 64, 1, n, false);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
    }
    t32.finish("ssd ssdq f32");
    t16.finish("ssd ssdq bf16");
    th.finish("ssd ssdq f16");
}

/// The SSD forward past `ssdz`'s 1024 steps in segments of `ssdz` calls, the state carried
/// between them through scratch (src/gpu/seed.rs `ssdz_segments`, twenty-second session):
/// f32 by default, the 16-bit types with `MAMBA_CUDA_SSDZ_SEG=1`. Lengths one step past a
/// segment, odd lengths (last segment shorter, not a multiple of 4), two to five segments,
/// groups, p / N below 64; every option on and off (the caller's initial state into the
/// first segment, the final state out of the last). Then `MAMBA_CUDA_SSDZ_SEG=0` (the other
/// forms) at one length. Then packed sequences (seq_idx) at every shape: random starts,
/// starts at and beside the segments' first steps, and dense ones.
#[test]
fn ssd_ssdz_segments_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(41);
    std::env::remove_var("MAMBA_CUDA_SSDZ");
    std::env::remove_var("MAMBA_CUDA_SSDZ_SEG");
    let shapes = [
        (2, 1025, 6, 64, 1, 64),
        (2, 2048, 6, 64, 1, 64),
        (1, 1501, 4, 64, 2, 64),
        (2, 3001, 6, 48, 3, 40),
        (1, 4100, 2, 64, 1, 64),
    ];
    let (mut t32, mut t16) = (Tally::default(), Tally::default());
    let (mut s32, mut s16) = (Tally::default(), Tally::default());
    let quick = quick();
    for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
        if quick && si > 1 {
            continue;
        }
        let c = shape_ssd_cfg(&mut rng, b, l, h, p, g, n);
        let none = c.no_options();
        for cfg in [c, c.all_options(), none] {
            ssd_check::<f32>(be, &mut rng, &cfg, &mut t32);
        }
        std::env::set_var("MAMBA_CUDA_SSDZ_SEG", "1");
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        ssd_check::<bf16>(be, &mut rng, &c.all_options(), &mut t16);
        ssd_check::<f16>(be, &mut rng, &c.all_options(), &mut t16);
        std::env::set_var("MAMBA_CUDA_SSDZ_SEG", "0");
        if si == 0 {
            ssd_check::<f32>(be, &mut rng, &c.all_options(), &mut t32);
        }
        std::env::remove_var("MAMBA_CUDA_SSDZ_SEG");
        // Packed sequences (fifty-sixth session: each segment reads seq_idx rows L apart and
        // looks one step back): starts at random, at and beside the segments' first steps,
        // and dense (sequences of one step); f32 by the default rule, the 16-bit types forced.
        let seg = l.div_ceil(l.div_ceil(1024)).div_ceil(4) * 4;
        let edges: Vec<usize> = (1..l.div_ceil(seg))
            .flat_map(|k| [k * seg - 1, k * seg, k * seg + 1])
            .chain([1, l - 1])
            .filter(|&s| s > 0 && s < l)
            .collect();
        // Row 0 starts at the edges, row 1 (where b > 1) only beside them.
        let mut at_edges = seq_from_starts(b, l, &edges);
        if b > 1 {
            let beside: Vec<usize> = edges.iter().copied().filter(|s| s % seg != 0).collect();
            at_edges[l..2 * l].copy_from_slice(&seq_from_starts(1, l, &beside));
        }
        let dense = random_seq(&mut rng, b, l, 0.3);
        let cs = SsdCfg { seq: true, ..c };
        for ids in [None, Some(&at_edges[..]), Some(&dense[..])] {
            for cfg in [cs, cs.all_options(), cs.no_options()] {
                ssd_check_seq::<f32>(be, &mut rng, &cfg, ids, &mut s32);
            }
            std::env::set_var("MAMBA_CUDA_SSDZ_SEG", "1");
            ssd_check_seq::<bf16>(be, &mut rng, &cs.all_options(), ids, &mut s16);
            ssd_check_seq::<f16>(be, &mut rng, &cs, ids, &mut s16);
            std::env::remove_var("MAMBA_CUDA_SSDZ_SEG");
        }
    }
    t32.finish("ssd ssdz segments f32");
    t16.finish("ssd ssdz segments bf16 / f16");
    s32.finish("ssd ssdz segments f32 with seq_idx");
    s16.finish("ssd ssdz segments bf16 / f16 with seq_idx");
}

/// `ssdz_*` (kernels/ssd_seed3.cu, `MAMBA_CUDA_SSDZ=1`): the chunked SSD forward in one
/// launch, the chunk states passed between the 8 blocks of a cluster. Seed shapes and odd
/// ones (L 1 to 1024, L not a multiple of 8 or 32, p 1-64, N 1-64, groups, every option on /
/// off, initial states), in f32, bf16 and f16 (the 16-bit types since the twenty-first
/// session: `ssdz_{bf16,f16}_tc`, unaligned rows through the scalar loads), with seq_idx
/// (fifty-fifth session: random starts and starts at the chunk edges), calls in a row,
/// and shapes where it does not apply (L > 1024, N 128: the other forms); then
/// each form forced, with and without seq_idx. `MAMBA_GPU_SSDZ_SAN=1`:
/// four small shapes only (for compute-sanitizer, whose racecheck is slow on these blocks).
#[test]
fn ssd_cluster_chunks_z_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(37);
    std::env::set_var("MAMBA_CUDA_SSDZ", "1");
    let cfg = shape_ssd_cfg;
    let shapes = [
        (2, 400, 6, 64, 1, 64),
        (2, 800, 6, 64, 1, 64),
        (1, 1, 4, 1, 1, 1),
        (2, 7, 6, 64, 1, 64),
        (2, 100, 6, 64, 1, 64),
        (2, 399, 6, 64, 1, 64),
        (1, 1000, 2, 64, 1, 64),
        (1, 1024, 2, 64, 2, 64),
        (1, 31, 2, 5, 1, 7),
        (2, 33, 3, 40, 3, 17),
        (1, 97, 4, 3, 2, 64),
        (2, 130, 6, 64, 3, 33),
        (2, 257, 4, 64, 4, 16),
        (1, 65, 2, 64, 1, 64),
        (2, 799, 6, 64, 1, 64),
        (2, 2048, 6, 64, 1, 64),
    ];
    let (mut t32, mut t16, mut th) = (Tally::default(), Tally::default(), Tally::default());
    let san = std::env::var("MAMBA_GPU_SSDZ_SAN").is_ok();
    let quick = quick() || san;
    let skip = |si: usize| {
        if san {
            !matches!(si, 2 | 3 | 6 | 8)
        } else {
            quick && si > 4
        }
    };
    for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
        if skip(si) {
            continue;
        }
        let c = cfg(&mut rng, b, l, h, p, g, n);
        ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        let all = c.all_options();
        ssd_check::<f32>(be, &mut rng, &all, &mut t32);
        let none = c.no_options();
        ssd_check::<f32>(be, &mut rng, &none, &mut t32);
        let d1 = SsdCfg {
            d: 1,
            init: false,
            ..c
        };
        ssd_check::<f32>(be, &mut rng, &d1, &mut t32);
        // The 16-bit types: the same shapes and options.
        ssd_check::<bf16>(be, &mut rng, &c, &mut t16);
        ssd_check::<bf16>(be, &mut rng, &all, &mut t16);
        ssd_check::<bf16>(be, &mut rng, &none, &mut t16);
        ssd_check::<f16>(be, &mut rng, &c, &mut th);
        ssd_check::<f16>(be, &mut rng, &all, &mut th);
        // seq_idx: since the fifty-fifth session `ssdz` itself (its scan resets the state;
        // past 1024 steps the other forms), at random starts and at the chunk edges.
        let sq = SsdCfg { seq: true, ..c };
        let edges = seq_from_starts(b, l, &[1, 2, 63, 64, 65, 127, 128, 250]);
        ssd_check::<f32>(be, &mut rng, &sq, &mut t32);
        ssd_check::<bf16>(be, &mut rng, &sq, &mut t16);
        ssd_check::<f16>(be, &mut rng, &sq, &mut th);
        ssd_check_seq::<f32>(be, &mut rng, &sq.all_options(), Some(&edges), &mut t32);
        ssd_check_seq::<bf16>(be, &mut rng, &sq.all_options(), Some(&edges), &mut t16);
    }
    if !quick {
        // Random shapes and options (N up to 128, seq_idx on half of them: those fall back).
        for _ in 0..rounds() * 2 {
            let c = random_ssd_cfg(&mut rng);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
        }
        // Calls in a row at the seed shapes.
        for _ in 0..3 {
            for l in [400, 800] {
                let c = cfg(&mut rng, 2, l, 6, 64, 1, 64);
                ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            }
        }
    }
    // The forms (`MAMBA_CUDA_SSDZ_V`): 0 the exchange through distributed shared memory, 7
    // through global scratch, 8 the products on the tensor cores (3xTF32, the default).
    for v in ["0", "7", "8"] {
        std::env::set_var("MAMBA_CUDA_SSDZ_V", v);
        for (si, &(b, l, h, p, g, n)) in shapes.iter().enumerate() {
            if skip(si) || l > 1024 {
                continue;
            }
            let c = cfg(&mut rng, b, l, h, p, g, n);
            ssd_check::<f32>(be, &mut rng, &c, &mut t32);
            ssd_check::<f32>(be, &mut rng, &SsdCfg { seq: true, ..c }, &mut t32);
        }
    }
    std::env::remove_var("MAMBA_CUDA_SSDZ_V");
    std::env::remove_var("MAMBA_CUDA_SSDZ");
    t32.finish("ssd ssdz f32");
    t16.finish("ssd ssdz bf16");
    th.finish("ssd ssdz f16");
}

// ------------------------------------------------------------------ SPEC 3

fn conv_check<T: Element>(
    be: &CudaBackend,
    rng: &mut Rng,
    t: &mut Tally,
    b: usize,
    c: usize,
    l: usize,
    w: usize,
    opts: (bool, bool, bool, bool),
) {
    let (bias_on, init_on, silu, last) = opts;
    let x = to::<T>(&rng.normals(b * c * l, 1.0));
    let wt = rng.normals(c * w, 0.5);
    let bias = rng.normals(c, 0.5);
    let init = rng.normals(b * c * (w - 1), 1.0);
    let layout = if last {
        ConvLayout::ChannelLast
    } else {
        ConvLayout::ChannelFirst
    };
    let xs = if last { [b, l, c] } else { [b, c, l] };
    macro_rules! args {
        ($x:expr, $w:expr, $bias:expr, $init:expr) => {{
            let mut a = CausalConv1dArgs::new(Tensor::new($x, xs), Tensor::new($w, [c, w]))
                .with_layout(layout);
            if bias_on {
                a = a.with_bias(Tensor::new($bias, [c]));
            }
            if init_on {
                a = a.with_initial_states(Tensor::new($init, [b, c, w - 1]));
            }
            if silu {
                a = a.with_activation(Activation::Silu);
            }
            a
        }};
    }
    let args = args!(&x, &wt, &bias, &init);
    let mut out = nan::<T>(b * c * l);
    let mut fin = nan::<f32>(b * c * (w - 1));
    Kernels::<T>::causal_conv1d(be, &args, &mut out, Some(&mut fin)).unwrap();
    let (x6, w6, b6, i6) = (f64s(&x), f64s(&wt), f64s(&bias), f64s(&init));
    let oargs = args!(&x6, &w6, &b6, &i6);
    let mut eo = vec![0f64; b * c * l];
    let mut ef = vec![0f64; b * c * (w - 1)];
    Reference::<f64>::oracle()
        .causal_conv1d(&oargs, &mut eo, Some(&mut ef))
        .unwrap();
    let what = format!("conv {} b{b} c{c} L{l} W{w} {opts:?}", T::DTYPE);
    t.check(&format!("{what} out"), rel_l2(&out, &eo), tol::<T>());
    if w > 1 {
        t.check(&format!("{what} final"), rel_l2(&fin, &ef), 1e-6);
    }
}

/// Every conv form against the oracle: the defaults, then the channel-last forward staged
/// through shared memory forced (`MAMBA_CUDA_CONV_FWD_CLS=1`: where channels are a multiple of
/// a 16-byte vector's elements) with shapes that take it (a whole channel tile, two and a
/// part, several time tiles, one step).
#[test]
fn causal_conv1d_matches_the_oracle() {
    let Some(be) = backend() else { return };
    const KEY: &str = "MAMBA_CUDA_CONV_FWD_CLS";
    let before = std::env::var(KEY).ok();
    let mut rng = Rng(3);
    let mut t = Tally::default();
    for staged in [false, true] {
        if staged {
            std::env::set_var(KEY, "1");
        }
        for _ in 0..rounds() * 6 {
            let (b, c, l, w) = (rng.int(1, 3), rng.int(1, 70), rng.int(1, 90), rng.int(1, 6));
            let opts = (rng.coin(), rng.coin(), rng.coin(), rng.coin());
            conv_check::<f32>(be, &mut rng, &mut t, b, c, l, w, opts);
            conv_check::<bf16>(be, &mut rng, &mut t, b, c, l, w, opts);
            conv_check::<f16>(be, &mut rng, &mut t, b, c, l, w, opts);
        }
        // Shorter than the window: the final state takes columns of the initial state.
        conv_check::<f32>(be, &mut rng, &mut t, 2, 5, 2, 4, (true, true, true, false));
        conv_check::<f32>(be, &mut rng, &mut t, 2, 5, 2, 4, (true, true, true, true));
        for (b, c, l, w) in [(2, 64, 70, 4), (1, 136, 33, 3), (3, 8, 1, 2), (1, 16, 2, 4)] {
            for opts in [(true, true, true, true), (false, false, false, true)] {
                conv_check::<f32>(be, &mut rng, &mut t, b, c, l, w, opts);
                conv_check::<bf16>(be, &mut rng, &mut t, b, c, l, w, opts);
                conv_check::<f16>(be, &mut rng, &mut t, b, c, l, w, opts);
            }
        }
    }
    match before {
        Some(v) => std::env::set_var(KEY, v),
        None => std::env::remove_var(KEY),
    }
    t.finish("causal_conv1d");
}

// ------------------------------------------------------------------ SPEC 4, 5

fn state_update_check<T: Element>(be: &CudaBackend, rng: &mut Rng, t: &mut Tally, multihead: bool) {
    let b = rng.int(1, 3);
    let h = rng.int(1, 6);
    let p = if multihead { rng.int(1, 8) } else { 1 };
    let n = rng.int(1, 80);
    let g = if multihead || rng.coin() {
        rng.divisor(h)
    } else {
        0
    };
    let xd: Vec<usize> = if multihead { vec![b, h, p] } else { vec![b, h] };
    let pd: Vec<usize> = if multihead { vec![h, p] } else { vec![h] };
    let mut ad = pd.clone();
    ad.push(n);
    let bd: Vec<usize> = if g == 0 { vec![b, n] } else { vec![b, g, n] };
    let mut sd = xd.clone();
    sd.push(n);
    let nx: usize = xd.iter().product();
    let x = to::<T>(&rng.normals(nx, 1.0));
    let sp = rng.coin();
    let dt = if sp {
        to::<T>(&rng.uniforms(nx, -3.0, 1.0))
    } else {
        to::<T>(&rng.uniforms(nx, 0.001, 0.7))
    };
    let a: Vec<f32> = (0..ad.iter().product())
        .map(|_| -(rng.range(0.5, 8.0) as f32))
        .collect();
    let bm = to::<T>(&rng.normals(bd.iter().product(), 1.0));
    let cm = to::<T>(&rng.normals(bd.iter().product(), 1.0));
    let dv = rng.normals(pd.iter().product(), 1.0);
    let z = to::<T>(&rng.normals(nx, 1.0));
    let bias = if sp {
        rng.uniforms(pd.iter().product(), -2.0, 0.0)
    } else {
        rng.uniforms(pd.iter().product(), 0.0, 0.3)
    };
    let state0 = rng.normals(sd.iter().product(), 1.0);
    let (use_d, use_z, use_b, lim) = (rng.coin(), rng.coin(), rng.coin(), rng.coin());
    let shape = |d: &[usize]| mamba_core::Shape::from_slice(d, "t").unwrap();
    macro_rules! args {
        ($x:expr, $dt:expr, $a:expr, $b:expr, $c:expr, $d:expr, $z:expr, $bias:expr) => {{
            let mut s = SelectiveStateUpdateArgs::new(
                Tensor {
                    data: $x,
                    shape: shape(&xd),
                },
                Tensor {
                    data: $dt,
                    shape: shape(&xd),
                },
                Tensor {
                    data: $a,
                    shape: shape(&ad),
                },
                Tensor {
                    data: $b,
                    shape: shape(&bd),
                },
                Tensor {
                    data: $c,
                    shape: shape(&bd),
                },
            )
            .with_dt_softplus(sp);
            if use_d {
                s = s.with_d(Tensor {
                    data: $d,
                    shape: shape(&pd),
                });
            }
            if use_z {
                s = s.with_z(Tensor {
                    data: $z,
                    shape: shape(&xd),
                });
            }
            if use_b {
                s = s.with_dt_bias(Tensor {
                    data: $bias,
                    shape: shape(&pd),
                });
            }
            if lim {
                s = s.with_dt_limit(0.01, 1.0);
            }
            s
        }};
    }
    let args = args!(&x, &dt, &a, &bm, &cm, &dv, &z, &bias);
    let mut state = state0.clone();
    let mut out = nan::<T>(nx);
    Kernels::<T>::selective_state_update(be, &args, &mut state, &mut out).unwrap();
    let (x6, dt6, a6, b6, c6, d6, z6, bi6) = (
        f64s(&x),
        f64s(&dt),
        f64s(&a),
        f64s(&bm),
        f64s(&cm),
        f64s(&dv),
        f64s(&z),
        f64s(&bias),
    );
    let oargs = args!(&x6, &dt6, &a6, &b6, &c6, &d6, &z6, &bi6);
    let mut es = f64s(&state0);
    let mut eo = vec![0f64; nx];
    Reference::<f64>::oracle()
        .selective_state_update(&oargs, &mut es, &mut eo)
        .unwrap();
    let what = format!(
        "state_update {} mh={multihead} b{b} h{h} p{p} N{n} g{g}",
        T::DTYPE
    );
    t.check(&format!("{what} out"), rel_l2(&out, &eo), tol::<T>());
    t.check(
        &format!("{what} state"),
        rel_l2(&state, &es),
        tol::<T>().max(1e-5),
    );
}

fn conv_update_check<T: Element>(be: &CudaBackend, rng: &mut Rng, t: &mut Tally) {
    let (b, c, w) = (rng.int(1, 3), rng.int(1, 40), rng.int(1, 5));
    let s = w - 1 + rng.int(0, 3);
    let ln = rng.int(1, 4);
    let three = ln > 1 || rng.coin();
    let xd: Vec<usize> = if three { vec![b, c, ln] } else { vec![b, c] };
    let x = to::<T>(&rng.normals(b * c * ln, 1.0));
    let wt = rng.normals(c * w, 0.5);
    let bias = rng.normals(c, 0.5);
    let st0 = rng.normals(b * c * s, 1.0);
    let (use_b, silu) = (rng.coin(), rng.coin());
    let shape = mamba_core::Shape::from_slice(&xd, "x").unwrap();
    macro_rules! args {
        ($x:expr, $w:expr, $bias:expr) => {{
            let mut a =
                CausalConv1dUpdateArgs::new(Tensor { data: $x, shape }, Tensor::new($w, [c, w]));
            if use_b {
                a = a.with_bias(Tensor::new($bias, [c]));
            }
            if silu {
                a = a.with_activation(Activation::Silu);
            }
            a
        }};
    }
    let args = args!(&x, &wt, &bias);
    let mut st = st0.clone();
    let mut out = nan::<T>(b * c * ln);
    Kernels::<T>::causal_conv1d_update(be, &args, TensorMut::new(&mut st, [b, c, s]), &mut out)
        .unwrap();
    let (x6, w6, b6) = (f64s(&x), f64s(&wt), f64s(&bias));
    let oargs = args!(&x6, &w6, &b6);
    let mut es = f64s(&st0);
    let mut eo = vec![0f64; b * c * ln];
    Reference::<f64>::oracle()
        .causal_conv1d_update(&oargs, TensorMut::new(&mut es, [b, c, s]), &mut eo)
        .unwrap();
    let what = format!("conv_update {} b{b} c{c} W{w} S{s} Ln{ln}", T::DTYPE);
    t.check(&format!("{what} out"), rel_l2(&out, &eo), tol::<T>());
    t.check(&format!("{what} state"), rel_l2(&st, &es), 1e-6);
}

#[test]
fn decode_steps_match_the_oracle() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(4);
    let mut t = Tally::default();
    for _ in 0..rounds() * 4 {
        state_update_check::<f32>(be, &mut rng, &mut t, false);
        state_update_check::<f32>(be, &mut rng, &mut t, true);
        state_update_check::<bf16>(be, &mut rng, &mut t, true);
        state_update_check::<f16>(be, &mut rng, &mut t, false);
        conv_update_check::<f32>(be, &mut rng, &mut t);
        conv_update_check::<bf16>(be, &mut rng, &mut t);
    }
    t.finish("decode");
}

// ------------------------------------------------------------------ SPEC 6

struct HostBlock {
    cfg: BlockConfigC,
    in_proj: Vec<f32>,
    conv_w: Vec<f32>,
    conv_b: Vec<f32>,
    dt_bias: Vec<f32>,
    a_log: Vec<f32>,
    d: Vec<f32>,
    norm: Vec<f32>,
    out_proj: Vec<f32>,
}

impl HostBlock {
    fn random(cfg: BlockConfigC, rng: &mut Rng) -> HostBlock {
        let (dm, di, h, cd, w) = (
            cfg.d_model as usize,
            cfg.d_inner(),
            cfg.nheads(),
            cfg.conv_dim(),
            cfg.d_conv as usize,
        );
        HostBlock {
            cfg,
            in_proj: rng.normals(cfg.d_in_proj() * dm, 1.0 / (dm as f64).sqrt()),
            conv_w: rng.normals(cd * w, 0.5),
            conv_b: rng.normals(cd, 0.2),
            dt_bias: rng.uniforms(h, -4.0, -1.0),
            a_log: rng.uniforms(h, 0.0, 2.5),
            d: rng.normals(h, 1.0),
            norm: rng.uniforms(di, 0.5, 1.5),
            out_proj: rng.normals(dm * di, 1.0 / (di as f64).sqrt()),
        }
    }

    fn weights(&self) -> BlockWeights<'_> {
        BlockWeights {
            in_proj: &self.in_proj,
            conv_weight: &self.conv_w,
            conv_bias: Some(&self.conv_b),
            dt_bias: &self.dt_bias,
            a_log: &self.a_log,
            d: &self.d,
            norm_weight: &self.norm,
            out_proj: &self.out_proj,
        }
    }

    /// SPEC 6 in f64, continuing from (conv_state, ssm_state) and updating them.
    fn forward(
        &self,
        u: &[f64],
        b: usize,
        l: usize,
        conv_state: &mut [f64],
        ssm: &mut [f64],
    ) -> Vec<f64> {
        let c = &self.cfg;
        let (dm, di, h, p, n, g, cd, w) = (
            c.d_model as usize,
            c.d_inner(),
            c.nheads(),
            c.headdim as usize,
            c.d_state as usize,
            c.ngroups as usize,
            c.conv_dim(),
            c.d_conv as usize,
        );
        let dip = c.d_in_proj();
        let silu = |v: f64| v / (1.0 + (-v).exp());
        let softplus = |v: f64| if v > 20.0 { v } else { v.exp().ln_1p() };
        let mut out = vec![0f64; b * l * dm];
        for i in 0..b {
            // 1. projection
            let mut zx = vec![0f64; l * dip];
            for t in 0..l {
                for o in 0..dip {
                    let mut acc = 0.0;
                    for k in 0..dm {
                        acc += u[(i * l + t) * dm + k] * self.in_proj[o * dm + k] as f64;
                    }
                    zx[t * dip + o] = acc;
                }
            }
            // 2. conv + silu over xBC
            let mut xbc = vec![0f64; l * cd];
            for ch in 0..cd {
                let st = &mut conv_state[(i * cd + ch) * (w - 1)..(i * cd + ch + 1) * (w - 1)];
                let mut xp: Vec<f64> = st.to_vec();
                xp.extend((0..l).map(|t| zx[t * dip + di + ch]));
                for t in 0..l {
                    let mut acc = self.conv_b[ch] as f64;
                    for k in 0..w {
                        acc += self.conv_w[ch * w + k] as f64 * xp[t + k];
                    }
                    xbc[t * cd + ch] = silu(acc);
                }
                st.copy_from_slice(&xp[l..l + w - 1]);
            }
            // 3-4. ssd
            let mut y = vec![0f64; l * di];
            for j in 0..h {
                let k = j / (h / g);
                let a = -(self.a_log[j] as f64).exp();
                let s = &mut ssm[(i * h + j) * p * n..(i * h + j + 1) * p * n];
                for t in 0..l {
                    let mut dt = softplus(zx[t * dip + dip - h + j] + self.dt_bias[j] as f64);
                    if c.has_dt_limit != 0 {
                        dt = dt.clamp(c.dt_lo as f64, c.dt_hi as f64);
                    }
                    let decay = (dt * a).exp();
                    for q in 0..p {
                        let xv = xbc[t * cd + j * p + q];
                        let mut acc = 0.0;
                        for nn in 0..n {
                            let bv = xbc[t * cd + di + k * n + nn];
                            let cv = xbc[t * cd + di + g * n + k * n + nn];
                            let e = &mut s[q * n + nn];
                            *e = decay * *e + dt * xv * bv;
                            acc += *e * cv;
                        }
                        y[t * di + j * p + q] = acc + self.d[j] as f64 * xv;
                    }
                }
            }
            // 5. gated RMS norm per group
            let gs = di / g;
            let mut yn = vec![0f64; l * di];
            for t in 0..l {
                for gi in 0..g {
                    let vals: Vec<f64> = (0..gs)
                        .map(|e| {
                            let ch = gi * gs + e;
                            let yv = y[t * di + ch];
                            if c.norm_before_gate != 0 {
                                yv
                            } else {
                                yv * silu(zx[t * dip + ch])
                            }
                        })
                        .collect();
                    let ms = vals.iter().map(|v| v * v).sum::<f64>() / gs as f64;
                    let r = 1.0 / (ms + c.rmsnorm_eps as f64).sqrt();
                    for e in 0..gs {
                        let ch = gi * gs + e;
                        let mut o = vals[e] * r * self.norm[ch] as f64;
                        if c.norm_before_gate != 0 {
                            o *= silu(zx[t * dip + ch]);
                        }
                        yn[t * di + ch] = o;
                    }
                }
            }
            // 6. out projection
            for t in 0..l {
                for o in 0..dm {
                    let mut acc = 0.0;
                    for k in 0..di {
                        acc += yn[t * di + k] * self.out_proj[o * di + k] as f64;
                    }
                    out[(i * l + t) * dm + o] = acc;
                }
            }
        }
        out
    }
}

fn block_check(
    be: &CudaBackend,
    rng: &mut Rng,
    t: &mut Tally,
    cfg: BlockConfigC,
    b: usize,
    l: usize,
) {
    let hb = HostBlock::random(cfg, rng);
    let dev = be.block(&cfg, &hb.weights()).unwrap();
    let u = rng.normals(b * l * cfg.d_model as usize, 1.0);
    let (csn, ssn) = (dev.conv_state_len(b), dev.ssm_state_len(b));
    let cs0 = rng.normals(csn, 0.5);
    let ss0 = rng.normals(ssn, 0.5);
    // Whole sequence from a given state.
    let mut cs = cs0.clone();
    let mut ss = ss0.clone();
    let mut out = vec![f32::NAN; u.len()];
    dev.forward_host(be, &u, b, l, &mut cs, &mut ss, &mut out)
        .unwrap();
    let u64_: Vec<f64> = if cfg.dtype == abi::dtype::BF16 {
        u.iter().map(|&v| bf16::from_f32(v).to_f64()).collect()
    } else {
        u.iter().map(|&v| v as f64).collect()
    };
    let mut ecs: Vec<f64> = cs0.iter().map(|&v| v as f64).collect();
    let mut ess: Vec<f64> = ss0.iter().map(|&v| v as f64).collect();
    let eo = hb.forward(&u64_, b, l, &mut ecs, &mut ess);
    let tolr = if cfg.dtype == abi::dtype::BF16 {
        2e-2
    } else {
        1e-5
    };
    let what = format!("block {} {cfg:?} b{b} L{l}", abi::dtype::name(cfg.dtype));
    t.check(&format!("{what} out"), rel_l2(&out, &eo), tolr);
    t.check(&format!("{what} conv_state"), rel_l2(&cs, &ecs), tolr);
    t.check(&format!("{what} ssm_state"), rel_l2(&ss, &ess), tolr);
    if cfg.dtype != abi::dtype::F32 || l < 2 {
        return;
    }
    // Chunked processing equals whole-sequence processing (device-resident, one stream).
    let split = l / 3 + 1;
    let dm = cfg.d_model as usize;
    let stream = be.stream().unwrap();
    let mut dcs = be.upload(&cs0, &stream).unwrap();
    let mut dss = be.upload(&ss0, &stream).unwrap();
    let mut parts = Vec::new();
    for (t0, t1) in [(0, split), (split, l)] {
        let mut piece = Vec::new();
        for i in 0..b {
            piece.extend_from_slice(&u[(i * l + t0) * dm..(i * l + t1) * dm]);
        }
        let din = be.upload(&piece, &stream).unwrap();
        let mut dout = be.alloc::<f32>(piece.len()).unwrap();
        dev.forward(
            &din,
            b,
            t1 - t0,
            &mut dout,
            Some((&mut dcs, &mut dss)),
            true,
            &stream,
        )
        .unwrap();
        parts.push(dout.to_vec(&stream).unwrap());
    }
    let mut joined = vec![0f32; u.len()];
    for i in 0..b {
        for (k, (t0, t1)) in [(0, split), (split, l)].into_iter().enumerate() {
            let len = (t1 - t0) * dm;
            joined[(i * l + t0) * dm..(i * l + t1) * dm]
                .copy_from_slice(&parts[k][i * len..(i + 1) * len]);
        }
    }
    t.check(&format!("{what} chunked out"), rel_l2(&joined, &eo), tolr);
    t.check(
        &format!("{what} chunked ssm_state"),
        rel_l2(&dss.to_vec(&stream).unwrap(), &ess),
        tolr,
    );
}

#[test]
fn mamba2_block_matches_spec6() {
    let Some(be) = backend() else { return };
    let mut rng = Rng(5);
    let mut t = Tally::default();
    let base = BlockConfigC::new(48, 16);
    let mut cfgs = vec![
        BlockConfigC {
            headdim: 16,
            ..base
        },
        BlockConfigC {
            headdim: 8,
            ngroups: 2,
            norm_before_gate: 1,
            ..base
        },
        BlockConfigC {
            headdim: 32,
            d_conv: 3,
            has_dt_limit: 1,
            dt_lo: 0.01,
            dt_hi: 0.5,
            ..base
        },
        BlockConfigC {
            d_model: 32,
            headdim: 16,
            d_state: 64,
            ..base
        },
        BlockConfigC {
            headdim: 16,
            dtype: abi::dtype::BF16,
            ..base
        },
    ];
    cfgs.push(BlockConfigC {
        d_model: 192,
        d_state: 64,
        ..BlockConfigC::new(192, 64)
    });
    for (k, cfg) in cfgs.into_iter().enumerate() {
        let (b, l) = if k == 5 { (2, 40) } else { (2, 1 + 23 * k) };
        block_check(be, &mut rng, &mut t, cfg, b, l);
    }
    // The seed block at a length where the f32 SSD takes split3 (640 <= L <= 1024).
    block_check(be, &mut rng, &mut t, BlockConfigC::new(192, 64), 2, 700);
    t.finish("Mamba2Block");
}

// ------------------------------------------------------------------ errors

#[test]
fn device_errors_come_back_typed() {
    let Some(be) = backend() else { return };
    // Out of memory: a typed Backend error that says so.
    match be.alloc::<f32>(1 << 45) {
        Err(Error::Backend { backend, message }) => {
            assert_eq!(backend, "cuda");
            assert!(message.contains("out of memory"), "{message}");
        }
        other => panic!("expected an out-of-memory error, got {other:?}"),
    }
    // A bad descriptor: a typed error naming the argument.
    let stream = be.stream().unwrap();
    let buf = be.zeros::<f32>(64, &stream).unwrap();
    let mut desc = mamba_core::abi::Conv1dDesc {
        x: buf.desc(&[1, 4, 16]),
        weight: buf.desc(&[4, 3]),
        out: buf.desc(&[1, 4, 16]),
        ..Default::default()
    };
    desc.weight = TensorDesc {
        dims: [5, 3, 0, 0, 0, 0],
        ..desc.weight
    };
    // SAFETY: the descriptor's pointers are a live buffer of 64 floats.
    let err = unsafe { be.causal_conv1d_device(&desc, &stream) }.unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
    // Mamba-1's last state must not alias its initial state (abi.rs): an Invalid error.
    let sdesc = mamba_core::abi::SelectiveScanDesc {
        u: buf.desc(&[1, 2, 8]),
        delta: buf.desc(&[1, 2, 8]),
        a: buf.desc(&[2, 4]),
        b: buf.desc(&[2, 4]),
        c: buf.desc(&[2, 4]),
        initial_state: buf.desc(&[1, 2, 4]),
        out: buf.desc(&[1, 2, 8]),
        last_state: buf.desc(&[1, 2, 4]),
        ..Default::default()
    };
    // SAFETY: as above (the call is rejected before any launch).
    let err = unsafe { be.selective_scan_device(&sdesc, &stream) }.unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { .. }) && err.to_string().contains("alias"),
        "{err}"
    );
    // The backward ops run on host slices too (through device copies).
    Kernels::<f32>::selective_scan_backward(be, &dummy_scan_args(), &[0.0; 2], None).unwrap();
    drop(buf);
}

fn dummy_scan_args() -> SelectiveScanArgs<'static, f32> {
    static U: [f32; 2] = [0.0; 2];
    static A: [f32; 1] = [-1.0];
    SelectiveScanArgs::new(
        Tensor::new(&U, [1, 1, 2]),
        Tensor::new(&U, [1, 1, 2]),
        Tensor::new(&A, [1, 1]),
        Tensor::new(&A, [1, 1]),
        Tensor::new(&A, [1, 1]),
    )
}

/// A length drawn for the default-rule sweeps: half the time one of the lengths where a
/// rule changes form (or one step either side), else log-uniform in 1..=max.
fn sweep_len(rng: &mut Rng, max: usize) -> usize {
    const EDGES: [usize; 18] = [
        1, 2, 15, 16, 17, 63, 64, 100, 127, 128, 129, 199, 200, 256, 400, 639, 640, 800,
    ];
    const LONG: [usize; 8] = [1000, 1023, 1024, 1025, 1500, 2047, 2048, 2049];
    if rng.coin() {
        let all: Vec<usize> = EDGES.iter().chain(LONG.iter()).copied().collect();
        return all[rng.int(0, all.len() - 1)].min(max);
    }
    (rng.range(0.0, (max as f64).ln()).exp().round() as usize).clamp(1, max)
}

/// The SSD and Mamba-1 forwards under the default rules (no `MAMBA_CUDA_*` set), at sizes
/// drawn across the regions where the rules pick their kernels: the seed widths (few batch
/// rows and heads, `ssdz` / the seed kernels, `ssdz` in segments past 1024 steps), the
/// language-model widths (`ssdl`, `ssdl32`, `lm1`) and the boundaries between them (lengths
/// at and beside each rule's edge, head and channel counts around the SM count), with
/// every option drawn at random, packed sequences in a third of the SSD calls, all three
/// storage types, against the f64 oracle. Each case is capped in size so the oracle stays
/// quick; `MAMBA_GPU_SWEEP=N` sets the number of cases of each kind (default 12),
/// `MAMBA_GPU_SWEEP_SEED` the draw, `MAMBA_GPU_SWEEP_SCALE=k` k times the size caps.
/// (Every other test forces forms by env or fixes its shapes: this one checks what a user
/// gets. Run it alone: the env of the tests beside it changes the rules.)
#[test]
fn default_rules_match_the_oracle_at_random_sizes() {
    let Some(be) = backend() else { return };
    sweep::clear_overrides();
    let sweep::Sweep { cases, seed, scale } = sweep::settings(if quick() { 3 } else { 12 });
    let mut rng = Rng(seed);
    let (mut ts, mut tm) = (Tally::default(), Tally::default());
    // SSD: (b L h p N) capped at 6e7 state updates.
    for _ in 0..cases {
        let p = *[64usize, 64, 64, 32, 16, 48, 8, 128]
            .get(rng.int(0, 7))
            .unwrap();
        let n = *[64usize, 128, 128, 64, 32, 16, 48, 17]
            .get(rng.int(0, 7))
            .unwrap();
        let b = *[1usize, 2, 2, 4, 8].get(rng.int(0, 4)).unwrap();
        let h = match rng.int(0, 3) {
            0 => rng.int(1, 8),
            1 => *[6usize, 12, 15, 16, 17, 24, 33].get(rng.int(0, 6)).unwrap(),
            2 => rng.int(9, 40),
            _ => rng.int(40, 96),
        };
        let cap = 60_000_000 * scale / (b * h * p * n);
        if cap == 0 {
            continue;
        }
        let l = sweep_len(&mut rng, cap.min(4200 * scale.min(4)));
        let g = if rng.coin() { 1 } else { rng.divisor(h) };
        let mut c = shape_ssd_cfg(&mut rng, b, l, h, p, g, n);
        c.seq = rng.int(0, 2) == 0;
        let rate = rng_rate(&mut rng);
        let ids = c.seq.then(|| random_seq(&mut rng, b, l, rate));
        let ids = ids.as_deref();
        match rng.int(0, 2) {
            0 => ssd_check_seq::<f32>(be, &mut rng, &c, ids, &mut ts),
            1 => ssd_check_seq::<bf16>(be, &mut rng, &c, ids, &mut ts),
            _ => ssd_check_seq::<f16>(be, &mut rng, &c, ids, &mut ts),
        }
    }
    // Mamba-1: (b d L N) capped at 3e7 state updates.
    for _ in 0..cases {
        let n = *[16usize, 16, 64, 64, 4, 32, 7].get(rng.int(0, 6)).unwrap();
        let b = *[1usize, 2, 2, 4, 8].get(rng.int(0, 4)).unwrap();
        let d = match rng.int(0, 3) {
            0 => *[384usize, 383, 385, 768, 1024, 1536, 2048, 2049]
                .get(rng.int(0, 7))
                .unwrap(),
            1 => rng.int(1, 64),
            2 => rng.int(64, 1024),
            _ => rng.int(1024, 4096),
        };
        let cap = 30_000_000 * scale / (b * d * n);
        if cap == 0 {
            continue;
        }
        let l = sweep_len(&mut rng, cap.min(4200 * scale.min(4)));
        let pick = |rng: &mut Rng| match rng.int(0, 3) {
            0 => Bc::Shared,
            1 | 2 => Bc::Varying,
            _ => Bc::Grouped(rng.divisor(d)),
        };
        let (bl, cl) = (pick(&mut rng), pick(&mut rng));
        let c = scan_cfg_random_options(&mut rng, b, d, l, n, bl, cl);
        match rng.int(0, 2) {
            0 => scan_check::<f32>(be, &mut rng, &c, &mut tm),
            1 => scan_check::<bf16>(be, &mut rng, &c, &mut tm),
            _ => scan_check::<f16>(be, &mut rng, &c, &mut tm),
        }
    }
    ts.finish("ssd, default rules, random sizes");
    tm.finish("selective_scan, default rules, random sizes");
}

/// A start rate for packed sequences: a few long sequences, many short ones, or one step
/// each in places.
fn rng_rate(rng: &mut Rng) -> f64 {
    *[0.001f64, 0.01, 0.05, 0.3].get(rng.int(0, 3)).unwrap()
}
