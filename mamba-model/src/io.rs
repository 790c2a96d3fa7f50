//! Reading tensors from safetensors files as `f32`, `f64` or `i32`, whatever their
//! stored type.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::ModelError;

/// One tensor read from a file: its shape and its values widened to `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f64>,
}

impl HostTensor {
    /// The values rounded to `f32`.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
    /// The values as `i32` (for integer tensors such as `seq_idx`).
    pub fn to_i32(&self) -> Vec<i32> {
        self.data.iter().map(|&v| v as i32).collect()
    }
}

/// All tensors of a file and its metadata.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: HashMap<String, HostTensor>,
    /// The `__metadata__` strings.
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads a whole safetensors file.
    pub fn read(path: &Path) -> Result<TensorFile, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&bytes).map_err(|reason| ModelError::Io {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses safetensors bytes.
    pub fn parse(bytes: &[u8]) -> Result<TensorFile, String> {
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = decode(view.dtype(), view.data()).ok_or_else(|| {
                format!("tensor `{name}` has unsupported dtype {:?}", view.dtype())
            })?;
            tensors.insert(
                name,
                HostTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(TensorFile {
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
        })
    }
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        bytes.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
    }
    Some(match dtype {
        Dtype::F64 => chunks::<8>(bytes).map(f64::from_le_bytes).collect(),
        Dtype::F32 => chunks::<4>(bytes)
            .map(|b| f32::from_le_bytes(b) as f64)
            .collect(),
        Dtype::F16 => chunks::<2>(bytes)
            .map(|b| mamba_core::f16::from_le_bytes(b).to_f64())
            .collect(),
        Dtype::BF16 => chunks::<2>(bytes)
            .map(|b| mamba_core::bf16::from_le_bytes(b).to_f64())
            .collect(),
        Dtype::I64 => chunks::<8>(bytes)
            .map(|b| i64::from_le_bytes(b) as f64)
            .collect(),
        Dtype::I32 => chunks::<4>(bytes)
            .map(|b| i32::from_le_bytes(b) as f64)
            .collect(),
        Dtype::I16 => chunks::<2>(bytes)
            .map(|b| i16::from_le_bytes(b) as f64)
            .collect(),
        Dtype::I8 => bytes.iter().map(|&b| b as i8 as f64).collect(),
        Dtype::U8 => bytes.iter().map(|&b| b as f64).collect(),
        Dtype::BOOL => bytes.iter().map(|&b| (b != 0) as u8 as f64).collect(),
        _ => return None,
    })
}
