//! # mamba-cpu-simd
//!
//! The multithreaded SIMD CPU backend of the Mamba kernels: every operation of
//! `mamba-core` (SPEC sections 1-5, forward, backward and decode), for `f32`, `f16`
//! and `bf16` storage with `f32` arithmetic, vectorised with AVX2+FMA, AVX-512 or
//! NEON (chosen at run time) and spread over a fixed number of threads.
//!
//! ```
//! use mamba_core::{Backend, Kernels, Reference, SelectiveScanArgs, Tensor};
//! use mamba_cpu_simd::CpuSimd;
//!
//! // One batch, two channels, three steps, state size two.
//! let (b, d, l, n) = (1, 2, 3, 2);
//! let u = [1.0f32, 0.5, -0.25, 2.0, 0.0, 1.0];
//! let delta = [0.1f32; 6];
//! let a = [-1.0f32, -0.5, -2.0, -0.25];
//! let bmat = [1.0f32, 0.0, 0.5, 0.5];
//! let cmat = [1.0f32, 1.0, 0.0, 2.0];
//! let args = SelectiveScanArgs::new(
//!     Tensor::new(&u, [b, d, l]),
//!     Tensor::new(&delta, [b, d, l]),
//!     Tensor::new(&a, [d, n]),
//!     Tensor::new(&bmat, [d, n]),
//!     Tensor::new(&cmat, [d, n]),
//! )
//! .with_delta_softplus(true);
//!
//! // Two threads, the best instruction set of this CPU (or the one `MAMBA_SIMD` names).
//! let backend = CpuSimd::with_threads(2);
//! assert_eq!(backend.name(), "cpu-simd");
//! let mut out = [0.0f32; 6];
//! backend.selective_scan(&args, &mut out, None)?;
//!
//! // The reference backend is the oracle.
//! let mut expected = [0.0f32; 6];
//! Reference::new().selective_scan(&args, &mut expected, None)?;
//! for (x, y) in out.iter().zip(&expected) {
//!     assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0));
//! }
//! # Ok::<(), mamba_core::Error>(())
//! ```
//!
//! | feature | how |
//! |---------|-----|
//! | operations | `selective_scan`, `ssd`, `causal_conv1d` (channel-first and channel-last) with their backward passes; `selective_state_update` and `causal_conv1d_update`; every option of the SPEC |
//! | storage types | `f32`, `f16`, `bf16` activations; `f32` parameters, states and arithmetic |
//! | instruction sets | AVX2+FMA and AVX-512F on x86-64, NEON on aarch64, scalar everywhere; detected at run time ([`SimdLevel`]), forced with `MAMBA_SIMD=scalar\|avx2\|avx512\|neon` or [`CpuSimd::with_simd`] |
//! | threads | a private rayon pool of [`CpuSimd::with_threads`] threads (default: `MAMBA_CPU_THREADS`, else the available parallelism); results are bitwise identical run to run for a fixed thread count |
//! | long sequences | with fewer rows than threads, scans split time into chunks ([`TimeChunking`]) so that one sequence uses every core |
//! | `exp` | a vectorised `exp` accurate to about one ulp over the whole `f32` range ([`simd_exp`]) |
//! | few-row products | [`matmul_nt_few_rows`]: `x wᵀ` for up to [`FEW_ROWS_MAX`] rows (a decode step's projections) reading each row of `w` once, on rayon's current pool; bitwise the same whatever the thread count |
//! | packed products | [`PackedNt`] / [`matmul_nt_packed`]: the same product on weights packed once into panels of [`PANEL`] outputs, vectorised across outputs (no horizontal sums): about twice [`matmul_nt_few_rows`]'s rate at 4-32 rows, each output one chain over its inputs, so a row's result does not depend on the other rows or the threads |
//! | cost model | FLOP and `exp` counts of every kernel for fraction-of-peak reports ([`cost`]); [`simd_level_name`] for the report line |
//!
//! ## How the kernels are built
//!
//! - **One source, several instruction sets.** Every kernel is written once, generic
//!   over [`simd::Simd`], whose implementations are zero-sized tokens ([`simd::Avx2`],
//!   [`simd::Avx512`], `simd::Neon`, [`simd::Scalar`]) that only a detecting
//!   constructor makes. Each kernel has one dispatch point that runs it inside a
//!   `#[target_feature]` function of the detected set, and every parallel task
//!   re-enters that context, so the intrinsics are inlined with the right features.
//! - **Rows in parallel, SIMD inside a row.** Mamba-1 rows (batch x channel) and conv
//!   rows are independent; SSD splits into (batch, head) tasks. A Mamba-1 row is
//!   vectorised across the state size `N`, with `exp(dt A)` computed by the
//!   vectorised `exp` and the state kept in registers; SSD keeps a block of the `p x N`
//!   state in registers (rows across lanes, up to 16 columns) for the whole sequence,
//!   three vector operations per state element and step.
//! - **Time chunks when rows are few.** With fewer rows than twice the threads (or when
//!   [`TimeChunking::Fixed`] asks), a sequence is cut into chunks scanned in parallel
//!   from zero states, a short sequential pass carries the states across chunks, and a
//!   parallel fix-up adds the carried state's contribution; the backward pass does the
//!   same for the adjoint.
//! - **Backward by recomputation.** The backward passes keep the states of a range
//!   of up to 2 MiB per task (or checkpoint and recompute block by block), walk back with the
//!   adjoint, and reduce partial sums of shared gradients (`A`, `D`, biases, and `B`, `C`
//!   shared across channels or heads) in task order, so that results are reproducible
//!   bit for bit for a fixed thread count.
//! - **Storage types at the edges.** Activations are read as `f32` (borrowed when they
//!   are `f32`), all arithmetic is `f32`, and outputs are rounded into the storage type
//!   once.

mod conv;
mod convert;
pub mod cost;
mod decode;
mod gemv;
mod par;
mod scan;
pub mod simd;
mod ssd;

use mamba_core::{
    Backend, CausalConv1dArgs, CausalConv1dGrads, CausalConv1dUpdateArgs, Error, Kernels, Result,
    SelectiveScanArgs, SelectiveScanGrads, SelectiveStateUpdateArgs, SsdArgs, SsdGrads, TensorMut,
};

pub use gemv::{matmul_nt_few_rows, matmul_nt_packed, PackedNt, FEW_ROWS_MAX, PANEL};
pub use par::TimeChunking;
pub use simd::SimdLevel;

use simd::Isa;

/// The environment variable that forces an instruction-set path:
/// `scalar`, `avx2`, `avx512` or `neon`.
pub const SIMD_ENV: &str = "MAMBA_SIMD";

/// The environment variable that sets the thread count of [`CpuSimd::new`] (and so of
/// the backend the registry picks): a positive integer. Unset or empty, the machine's
/// available parallelism is used.
pub const THREADS_ENV: &str = "MAMBA_CPU_THREADS";

/// The multithreaded SIMD CPU backend.
///
/// Cheap to clone (the thread pool is shared). Every kernel validates its arguments
/// with the same typed errors as the reference backend before doing anything.
#[derive(Clone, Debug)]
pub struct CpuSimd {
    isa: Isa,
    par: par::Par,
}

impl Default for CpuSimd {
    fn default() -> Self {
        CpuSimd::new()
    }
}

impl CpuSimd {
    /// As many threads as `MAMBA_CPU_THREADS` says or else as the machine offers, and
    /// the instruction set `MAMBA_SIMD` names or else the best one this CPU has.
    ///
    /// A `MAMBA_CPU_THREADS` that is not a positive integer is reported on standard
    /// error and the machine's available parallelism is used instead.
    pub fn new() -> CpuSimd {
        let machine = || std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match env_threads() {
            Ok(Some(n)) => n,
            Ok(None) => machine(),
            Err(e) => {
                let n = machine();
                eprintln!("mamba-cpu-simd: {e}; using {n} threads");
                n
            }
        };
        CpuSimd::with_threads(threads)
    }

    /// `threads` threads (at least one; one runs on the caller's thread), and the
    /// instruction set `MAMBA_SIMD` names or else the best one this CPU has.
    ///
    /// A `MAMBA_SIMD` that names an unknown path or one this CPU lacks is reported on
    /// standard error and the best available path is used instead; use
    /// [`CpuSimd::from_env`] to get that as an error.
    pub fn with_threads(threads: usize) -> CpuSimd {
        let isa = match env_level() {
            Ok(Some(level)) => Isa::new(level).unwrap_or_else(|| {
                eprintln!(
                    "mamba-cpu-simd: {SIMD_ENV}={level} but this CPU lacks it; using {}",
                    SimdLevel::best()
                );
                Isa::best()
            }),
            Ok(None) => Isa::best(),
            Err(e) => {
                eprintln!("mamba-cpu-simd: {e}; using {}", SimdLevel::best());
                Isa::best()
            }
        };
        CpuSimd {
            isa,
            par: par::Par::new(threads),
        }
    }

    /// Like [`CpuSimd::with_threads`], but an invalid or unavailable `MAMBA_SIMD` is
    /// an [`Error::Unavailable`].
    pub fn from_env(threads: usize) -> Result<CpuSimd> {
        let be = CpuSimd::with_threads(threads);
        match env_level()? {
            Some(level) => be.with_simd(level),
            None => Ok(be),
        }
    }

    /// The same backend on the instruction set `level`, or [`Error::Unavailable`] if
    /// this CPU lacks it.
    pub fn with_simd(mut self, level: SimdLevel) -> Result<CpuSimd> {
        self.isa = Isa::new(level).ok_or_else(|| Error::Unavailable {
            backend: "cpu-simd",
            reason: format!("the {level} path needs instructions this CPU lacks"),
        })?;
        Ok(self)
    }

    /// The same backend with another time-chunking policy for the scans.
    pub fn with_time_chunking(mut self, chunking: TimeChunking) -> CpuSimd {
        self.par.chunking = chunking;
        self
    }

    /// The instruction set the kernels run on.
    pub fn simd_level(&self) -> SimdLevel {
        self.isa.level()
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.par.threads
    }

    /// The time-chunking policy.
    pub fn time_chunking(&self) -> TimeChunking {
        self.par.chunking
    }
}

/// The thread count `MAMBA_CPU_THREADS` sets, `None` when it is unset, empty or not a
/// positive integer: for work that runs outside the backend's pool (the model crate's
/// projections on rayon's global pool) to keep to the same count.
pub fn env_thread_count() -> Option<usize> {
    env_threads().ok().flatten()
}

/// The thread count `MAMBA_CPU_THREADS` gives, `None` when it is unset or empty.
fn env_threads() -> Result<Option<usize>> {
    match std::env::var(THREADS_ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::Unavailable {
                backend: "cpu-simd",
                reason: format!("{THREADS_ENV}={v:?} is not a positive integer"),
            }),
        },
        Err(_) => Ok(None),
    }
}

/// The level `MAMBA_SIMD` names, `None` when it is unset or empty.
fn env_level() -> Result<Option<SimdLevel>> {
    match std::env::var(SIMD_ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => SimdLevel::parse(&v)
            .map(Some)
            .ok_or_else(|| Error::Unavailable {
                backend: "cpu-simd",
                reason: format!("{SIMD_ENV}={v:?} is none of scalar, avx2, avx512, neon"),
            }),
        Err(_) => Ok(None),
    }
}

/// The name of the instruction set [`CpuSimd::new`] would use on this machine
/// (`scalar`, `avx2`, `avx512`, `neon`), for reports.
pub fn simd_level_name() -> &'static str {
    CpuSimd::with_threads(1).simd_level().name()
}

/// The vectorised `exp` of the kernels, on the instruction set `level`: `out[i] =
/// e^x[i]`. Exposed so that its accuracy can be measured; `None` if this CPU lacks
/// `level`.
pub fn simd_exp(level: SimdLevel, x: &[f32], out: &mut [f32]) -> Option<()> {
    map_level(level, x, out, false)
}

/// The vectorised `2^x` of the scans' decays, on the instruction set `level`:
/// `out[i] = 2^x[i]`. Exposed so that its accuracy can be measured; `None` if this CPU
/// lacks `level`.
pub fn simd_exp2(level: SimdLevel, x: &[f32], out: &mut [f32]) -> Option<()> {
    map_level(level, x, out, true)
}

/// `out[i] = e^x[i]` (or `2^x[i]` with `base2`) on the instruction set `level`.
fn map_level(level: SimdLevel, x: &[f32], out: &mut [f32], base2: bool) -> Option<()> {
    struct ExpKernel<'a> {
        x: &'a [f32],
        out: &'a mut [f32],
        base2: bool,
    }
    impl simd::Kernel for ExpKernel<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: simd::Simd>(self, s: S) {
            if self.base2 {
                simd::math::map(
                    s,
                    self.x,
                    self.out,
                    #[inline(always)]
                    |v| simd::math::exp2(s, v),
                );
            } else {
                simd::math::map(
                    s,
                    self.x,
                    self.out,
                    #[inline(always)]
                    |v| simd::math::exp(s, v),
                );
            }
        }
    }
    Isa::new(level)?.dispatch(ExpKernel { x, out, base2 });
    Some(())
}

/// Runs `f` compiled for the instruction set `level`, as the kernels are (plainly
/// where this CPU lacks it): for element-wise loops written elsewhere (the model
/// crate's norms), which the compiler then vectorises at that width instead of the
/// build's baseline (SSE2 on x86-64). Mark the closure `#[inline(always)]` so that it
/// is compiled inside. The arithmetic is what the code says either way (no
/// reassociation, no contraction into fused multiply-adds), so the results are the
/// same bits; only the instructions differ.
pub fn vectorized<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    struct Run<G>(G);
    impl<R, G: FnOnce() -> R> simd::Kernel for Run<G> {
        type Output = R;
        #[inline(always)]
        fn run<S: simd::Simd>(self, _: S) -> R {
            (self.0)()
        }
    }
    Isa::new(level)
        .unwrap_or(Isa::new(SimdLevel::Scalar).expect("scalar is always there"))
        .dispatch(Run(f))
}

/// The kernels for one storage type. Written per type (not as one generic impl) so
/// that the kernels are compiled once, in this crate, rather than again in every crate
/// that calls them.
macro_rules! impl_kernels {
    ($t:ty) => {
        impl Kernels<$t> for CpuSimd {
            fn selective_scan(
                &self,
                args: &SelectiveScanArgs<'_, $t>,
                out: &mut [$t],
                last_state: Option<&mut [f32]>,
            ) -> Result<()> {
                scan::forward(self, args, out, last_state)
            }

            fn selective_scan_backward(
                &self,
                args: &SelectiveScanArgs<'_, $t>,
                dout: &[$t],
                dlast_state: Option<&[f32]>,
            ) -> Result<SelectiveScanGrads<$t>> {
                scan::backward(self, args, dout, dlast_state)
            }

            fn selective_scan_backward_into(
                &self,
                args: &SelectiveScanArgs<'_, $t>,
                dout: &[$t],
                dlast_state: Option<&[f32]>,
                grads: &mut SelectiveScanGrads<$t>,
            ) -> Result<()> {
                scan::backward_into(self, args, dout, dlast_state, grads)
            }

            fn ssd(
                &self,
                args: &SsdArgs<'_, $t>,
                out: &mut [$t],
                final_states: Option<&mut [f32]>,
            ) -> Result<()> {
                ssd::forward(self, args, out, final_states)
            }

            fn ssd_backward(
                &self,
                args: &SsdArgs<'_, $t>,
                dout: &[$t],
                dfinal_states: Option<&[f32]>,
            ) -> Result<SsdGrads<$t>> {
                ssd::backward(self, args, dout, dfinal_states)
            }

            fn causal_conv1d(
                &self,
                args: &CausalConv1dArgs<'_, $t>,
                out: &mut [$t],
                final_states: Option<&mut [f32]>,
            ) -> Result<()> {
                conv::forward(self, args, out, final_states)
            }

            fn causal_conv1d_backward(
                &self,
                args: &CausalConv1dArgs<'_, $t>,
                dout: &[$t],
                dfinal_states: Option<&[f32]>,
            ) -> Result<CausalConv1dGrads<$t>> {
                conv::backward(self, args, dout, dfinal_states)
            }

            fn selective_state_update(
                &self,
                args: &SelectiveStateUpdateArgs<'_, $t>,
                state: &mut [f32],
                out: &mut [$t],
            ) -> Result<()> {
                decode::state_update(self, args, state, out)
            }

            fn causal_conv1d_update(
                &self,
                args: &CausalConv1dUpdateArgs<'_, $t>,
                conv_state: TensorMut<'_, f32>,
                out: &mut [$t],
            ) -> Result<()> {
                decode::conv_update(self, args, conv_state, out)
            }
        }
    };
}

impl_kernels!(f32);
impl_kernels!(mamba_core::f16);
impl_kernels!(mamba_core::bf16);

impl Backend for CpuSimd {
    fn name(&self) -> &'static str {
        "cpu-simd"
    }

    fn detail(&self) -> String {
        let threads = self.threads();
        format!(
            "{}, {threads} thread{}",
            self.simd_level().description(),
            if threads == 1 { "" } else { "s" }
        )
    }
}
