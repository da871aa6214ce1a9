//! Weights as safetensors, with PyTorch `state_dict` names and layouts (`nn.Linear.weight` is
//! `[out, in]`), read as F32 or F64 into either float type, and written atomically.

use crate::Float;
use crate::error::{NnError, Result, check_finite, shape_err};
use crate::params::ParamLayout;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// A safetensors buffer read from a file or memory.
pub struct Weights {
    bytes: Vec<u8>,
    source: String,
}

impl Weights {
    /// Reads a `.safetensors` file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| NnError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(bytes, path.display().to_string())
    }

    /// Wraps bytes in safetensors format (`source` names them in errors).
    pub fn from_bytes(bytes: Vec<u8>, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        if let Err(e) = SafeTensors::deserialize(&bytes) {
            return Err(NnError::BadFile {
                path: source,
                reason: format!(
                    "not a readable safetensors file ({} bytes: {e}); truncated or corrupt?",
                    bytes.len()
                ),
            });
        }
        Ok(Self { bytes, source })
    }

    /// The name the bytes were read under (the file's path), for errors.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated in from_bytes")
    }

    /// Tensor names.
    pub fn names(&self) -> Vec<String> {
        self.st().names().into_iter().map(String::from).collect()
    }

    /// The free-form `__metadata__` map, if any.
    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes)?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    /// Shape and values of tensor `name`, converted to `T`.
    pub fn tensor<T: Float>(&self, name: &str) -> Result<(Vec<usize>, Vec<T>)> {
        let st = self.st();
        let view = st.tensor(name).map_err(|_| NnError::MissingTensor {
            name: name.into(),
            source_name: self.source.clone(),
        })?;
        let data = view.data();
        let values: Vec<T> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| {
                    <T as rk::Scalar>::of(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                })
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| <T as rk::Scalar>::of(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            other => {
                return Err(NnError::DType {
                    name: name.into(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok((view.shape().to_vec(), values))
    }

    /// A flat parameter vector for `layout`, reading tensor `prefix.name` (or `name` when
    /// `prefix` is empty) for every entry, checking shapes and finiteness.
    pub fn params<T: Float>(&self, layout: &ParamLayout, prefix: &str) -> Result<Vec<T>> {
        let mut out = vec![T::zero(); layout.len()];
        for e in layout.entries() {
            let name = if prefix.is_empty() {
                e.name.clone()
            } else {
                format!("{prefix}.{}", e.name)
            };
            let (shape, values) = self.tensor::<T>(&name)?;
            if shape != e.shape {
                return Err(shape_err(
                    format!("tensor {name}"),
                    format!("{:?}", e.shape),
                    format!("{shape:?}"),
                ));
            }
            check_finite(&format!("tensor {name}"), &values)?;
            out[e.range()].copy_from_slice(&values);
        }
        Ok(out)
    }
}

fn to_bytes<T: Float>(values: &[T]) -> (Dtype, Vec<u8>) {
    if std::mem::size_of::<T>() == 4 {
        let b = values
            .iter()
            .flat_map(|v| (<T as rk::Scalar>::as_f64(*v) as f32).to_le_bytes())
            .collect();
        (Dtype::F32, b)
    } else {
        let b = values
            .iter()
            .flat_map(|v| <T as rk::Scalar>::as_f64(*v).to_le_bytes())
            .collect();
        (Dtype::F64, b)
    }
}

/// A named tensor to write: `(name, shape, values)`.
pub type NamedTensor<'a, T> = (String, Vec<usize>, &'a [T]);

/// The tensors of a flat parameter vector, named `prefix.name`.
pub fn param_tensors<'a, T>(
    layout: &ParamLayout,
    prefix: &str,
    params: &'a [T],
) -> Vec<NamedTensor<'a, T>> {
    layout
        .entries()
        .iter()
        .map(|e| {
            let name = if prefix.is_empty() {
                e.name.clone()
            } else {
                format!("{prefix}.{}", e.name)
            };
            (name, e.shape.clone(), &params[e.range()])
        })
        .collect()
}

/// Serializes tensors (F32 for `f32`, F64 for `f64`) with optional metadata.
pub fn to_safetensors<T: Float>(
    tensors: &[NamedTensor<'_, T>],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let encoded: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            if shape.iter().product::<usize>() != values.len() {
                return Err(shape_err(
                    format!("tensor {name}"),
                    format!("{shape:?}"),
                    values.len(),
                ));
            }
            let (dtype, bytes) = to_bytes(values);
            Ok((name.clone(), shape.clone(), dtype, bytes))
        })
        .collect::<Result<_>>()?;
    let views = encoded
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            Ok((name.clone(), TensorView::new(*dtype, shape.clone(), bytes)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, metadata)?)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and synced,
/// then renamed over `path`, and the folder synced so that the rename itself is durable. A crash
/// leaves either the old file or the new one, never a torn one; a failed write removes its
/// temporary file.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let io = |source| NnError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // The rename lives in the folder's entry table: sync it too (where the platform allows
    // opening a folder; elsewhere the rename is as durable as the platform makes it).
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().map_err(io)?;
    }
    Ok(())
}

/// Saves tensors as a safetensors file, atomically.
pub fn save<T: Float>(
    path: impl AsRef<Path>,
    tensors: &[NamedTensor<'_, T>],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    write_atomic(path, &to_safetensors(tensors, metadata)?)
}
