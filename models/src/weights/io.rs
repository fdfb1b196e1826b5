//! Reading and writing safetensors: a single file, a folder holding `model.safetensors`,
//! or a sharded checkpoint with `model.safetensors.index.json`. bf16/f16/f32/f64 on disk
//! are cast to f32 (master weights).

use crate::ModelError;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A tensor on the host, f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn io_err(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io { path: path.display().to_string(), source }
}

/// The files a checkpoint path stands for.
fn shard_files(path: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = if path.is_dir() {
        let single = path.join("model.safetensors");
        if single.is_file() {
            return Ok(vec![single]);
        }
        path.join("model.safetensors.index.json")
    } else {
        path.to_path_buf()
    };
    if !index.to_string_lossy().ends_with(".json") {
        return Ok(vec![index]);
    }
    let text = std::fs::read_to_string(&index).map_err(|e| io_err(&index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::Weights(format!("{}: {e}", index.display())))?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| ModelError::Weights(format!("{}: no \"weight_map\" object", index.display())))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Load every tensor of a (possibly sharded) checkpoint, cast to f32.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, ModelError> {
    let mut out = BTreeMap::new();
    for file in shard_files(path)? {
        let bytes = std::fs::read(&file).map_err(|e| io_err(&file, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| ModelError::Weights(format!("{}: {e}", file.display())))?;
        for (name, view) in st.tensors() {
            let data = to_f32(view.dtype(), view.data()).ok_or_else(|| {
                ModelError::Weights(format!(
                    "{}: tensor {name} has unsupported dtype {:?}",
                    file.display(),
                    view.dtype()
                ))
            })?;
            out.insert(name, HostTensor { shape: view.shape().to_vec(), data });
        }
    }
    Ok(out)
}

fn to_f32(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F64 => {
            b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
        }
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        Dtype::I64 => {
            b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()
        }
        Dtype::I32 => {
            b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect()
        }
        _ => return None,
    })
}

/// IEEE half → single, including subnormals, infinities and NaN.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: value = m * 2^-24
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Write f32 tensors as one safetensors file (with `{"format": "pt"}` metadata as HF does).
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<(), ModelError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape.clone()))
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| ModelError::Weights(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, meta, path)
        .map_err(|e| ModelError::Weights(format!("{}: {e}", path.display())))
}
