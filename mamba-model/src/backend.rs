//! Choosing the backend at run time, and the one line that says which and why.
//!
//! `auto` tries the CUDA plugin, then cpu-simd; `MAMBA_BACKEND=auto|cuda|cpu-simd|reference`
//! forces one. A forced backend that is unavailable is an error that says why, never
//! a silent fallback. The choice is reported once per process on stderr and is
//! available from [`report`].
//!
//! The plugin loading itself (search order, ABI check) lives in `mamba-core`; this
//! module composes it with the CPU backends, which `mamba-core` cannot depend on.

use std::fmt;
use std::sync::{Arc, OnceLock};

use mamba_core::plugin::CudaBackend;
use mamba_core::{Backend, Reference};
use mamba_cpu_simd::CpuSimd;

use crate::error::ModelError;

/// The backends, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The exact, single-threaded reference.
    Reference,
    /// The multithreaded SIMD CPU backend.
    CpuSimd,
    /// The CUDA plugin.
    Cuda,
}

impl BackendKind {
    /// `reference`, `cpu-simd` or `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Reference => "reference",
            BackendKind::CpuSimd => "cpu-simd",
            BackendKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendPreference {
    /// The fastest available: CUDA, then cpu-simd.
    #[default]
    Auto,
    /// Exactly this backend, or an error.
    Force(BackendKind),
}

impl BackendPreference {
    /// Parses `auto`, `cuda`, `cpu-simd` (or `cpu`, `simd`) and `reference` (or `ref`).
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => BackendPreference::Auto,
            "cuda" | "gpu" => BackendPreference::Force(BackendKind::Cuda),
            "cpu-simd" | "cpu_simd" | "cpu" | "simd" => {
                BackendPreference::Force(BackendKind::CpuSimd)
            }
            "reference" | "ref" => BackendPreference::Force(BackendKind::Reference),
            other => {
                return Err(ModelError::BackendUnavailable {
                    name: other.to_string(),
                    reason: "unknown backend; expected auto, cuda, cpu-simd or reference".into(),
                })
            }
        })
    }

    /// From the `MAMBA_BACKEND` environment variable (`auto` when unset).
    pub fn from_env() -> Result<Self, ModelError> {
        match std::env::var("MAMBA_BACKEND") {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(BackendPreference::Auto),
        }
    }
}

/// A chosen backend and the line that reports the choice.
#[derive(Clone)]
pub struct Selection {
    /// Which backend.
    pub kind: BackendKind,
    /// The kernels.
    pub backend: Arc<dyn Backend>,
    /// The report, e.g. `mamba: backend cpu-simd (avx2+fma, 2 threads); cuda unavailable: ...`.
    pub report: String,
}

impl fmt::Debug for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selection")
            .field("kind", &self.kind)
            .field("report", &self.report)
            .finish()
    }
}

/// Loads the CUDA plugin (once per process; the library is never unloaded): the
/// handle, or the reason it is unavailable.
pub fn cuda_backend() -> Result<&'static CudaBackend, String> {
    mamba_core::plugin::load().map_err(|e| match e {
        mamba_core::Error::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    })
}

fn cuda() -> Result<Arc<dyn Backend>, String> {
    cuda_backend().map(|c| Arc::new(c) as Arc<dyn Backend>)
}

fn simd() -> Arc<dyn Backend> {
    static SIMD: OnceLock<Arc<CpuSimd>> = OnceLock::new();
    SIMD.get_or_init(|| Arc::new(CpuSimd::new())).clone()
}

/// Builds a backend of the given kind.
pub fn build(kind: BackendKind) -> Result<Selection, ModelError> {
    select(BackendPreference::Force(kind))
}

/// Chooses a backend by preference. Does not print; see [`default_selection`].
pub fn select(pref: BackendPreference) -> Result<Selection, ModelError> {
    let make = |kind: BackendKind, backend: Arc<dyn Backend>, why: Option<String>| {
        let mut report = format!("mamba: backend {} ({})", kind, backend.detail());
        if let Some(why) = why {
            report.push_str(&format!("; cuda unavailable: {why}"));
        }
        Selection {
            kind,
            backend,
            report,
        }
    };
    match pref {
        BackendPreference::Force(BackendKind::Reference) => Ok(make(
            BackendKind::Reference,
            Arc::new(Reference::new()),
            None,
        )),
        BackendPreference::Force(BackendKind::CpuSimd) => {
            Ok(make(BackendKind::CpuSimd, simd(), None))
        }
        BackendPreference::Force(BackendKind::Cuda) => match cuda() {
            Ok(c) => Ok(make(BackendKind::Cuda, c, None)),
            Err(reason) => Err(ModelError::BackendUnavailable {
                name: "cuda".into(),
                reason,
            }),
        },
        BackendPreference::Auto => match cuda() {
            Ok(c) => Ok(make(BackendKind::Cuda, c, None)),
            Err(reason) => Ok(make(BackendKind::CpuSimd, simd(), Some(reason))),
        },
    }
}

static DEFAULT: OnceLock<Result<Selection, ModelError>> = OnceLock::new();

/// The process-wide backend chosen from `MAMBA_BACKEND` on first use; the first call
/// prints the report line to stderr.
pub fn default_selection() -> Result<&'static Selection, ModelError> {
    DEFAULT
        .get_or_init(|| {
            let sel = BackendPreference::from_env().and_then(select);
            match &sel {
                Ok(s) => eprintln!("{}", s.report),
                Err(e) => eprintln!("mamba: {e}"),
            }
            sel
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The report line of the process-wide choice, once it has been made.
pub fn report() -> Option<&'static str> {
    DEFAULT
        .get()
        .and_then(|r| r.as_ref().ok())
        .map(|s| s.report.as_str())
}
