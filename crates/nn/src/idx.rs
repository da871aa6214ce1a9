//! The IDX format of MNIST and Fashion-MNIST, and the Fashion-MNIST data set.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte (`0x08` = unsigned byte),
//! the number of dimensions `d`, then `d` sizes as `u32` — followed by the values, row-major.
//! Labels are `d = 1` (magic `0x00000801`), images `d = 3` (magic `0x00000803`, `n × rows ×
//! cols`). Files may be gzip-compressed (recognized by the gzip magic `1f 8b`, not by name).
//!
//! [`FashionMnist`] reads the four files of the Debian package `dataset-fashion-mnist`
//! ([`DEFAULT_FASHION_MNIST_DIR`]) and scales pixels to `[0, 1]`.

use crate::error::{NnError, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package installs the data set.
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

fn invalid(name: &str, reason: impl Into<String>) -> NnError {
    NnError::Invalid {
        name: name.into(),
        reason: reason.into(),
    }
}

/// Decodes an IDX byte stream (plain or gzip) named `source` in error messages.
///
/// Errors: a wrong magic number or element type, a truncated body, trailing bytes, or a corrupt
/// gzip stream.
pub fn parse_idx(bytes: &[u8], source: &str) -> Result<IdxArray> {
    let owned;
    let raw: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| invalid(source, format!("corrupt gzip stream: {e}")))?;
        owned = out;
        &owned
    } else {
        bytes
    };
    if raw.len() < 4 {
        return Err(invalid(
            source,
            format!("too short for an IDX header ({} bytes)", raw.len()),
        ));
    }
    if raw[0] != 0 || raw[1] != 0 {
        return Err(invalid(
            source,
            format!(
                "bad IDX magic number {:02x}{:02x}{:02x}{:02x} (expected 0000 08 dd)",
                raw[0], raw[1], raw[2], raw[3]
            ),
        ));
    }
    if raw[2] != 0x08 {
        return Err(invalid(
            source,
            format!(
                "IDX element type {:#04x} is not supported (only 0x08, unsigned byte)",
                raw[2]
            ),
        ));
    }
    let ndim = raw[3] as usize;
    if ndim == 0 {
        return Err(invalid(source, "IDX header declares zero dimensions"));
    }
    let header = 4 + 4 * ndim;
    if raw.len() < header {
        return Err(invalid(
            source,
            format!("truncated IDX header: {ndim} dimensions need {header} bytes"),
        ));
    }
    let dims: Vec<usize> = raw[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(source, format!("IDX sizes {dims:?} overflow")))?;
    let body = &raw[header..];
    if body.len() != count {
        return Err(invalid(
            source,
            format!(
                "IDX sizes {dims:?} need {count} bytes of data, found {} ({})",
                body.len(),
                if body.len() < count {
                    "truncated file"
                } else {
                    "trailing bytes"
                }
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Reads and decodes an IDX file (plain or gzip).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_idx(&bytes, &path.display().to_string())
}

/// Labelled grayscale images with pixels in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `n × rows × cols` pixels, row-major.
    pub pixels: Vec<f32>,
    /// `n` class labels.
    pub labels: Vec<u8>,
}

impl ImageSet {
    /// Pairs an image array (`n × rows × cols`) with a label array (`n`).
    ///
    /// Errors: wrong ranks or differing counts.
    pub fn from_idx(images: IdxArray, labels: IdxArray) -> Result<Self> {
        if images.dims.len() != 3 {
            return Err(invalid(
                "IDX images",
                format!(
                    "expected 3 dimensions (n × rows × cols), got {:?}",
                    images.dims
                ),
            ));
        }
        if labels.dims.len() != 1 {
            return Err(invalid(
                "IDX labels",
                format!("expected 1 dimension, got {:?}", labels.dims),
            ));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(invalid(
                "IDX images and labels",
                format!("{} images but {} labels", images.dims[0], labels.dims[0]),
            ));
        }
        Ok(Self {
            rows: images.dims[1],
            cols: images.dims[2],
            pixels: images.data.iter().map(|&v| f32::from(v) / 255.0).collect(),
            labels: labels.data,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of one image.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The first `n` images (all if fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.rows * self.cols);
        self.labels.truncate(n);
        self
    }
}

/// The Fashion-MNIST training and test sets.
#[derive(Debug, Clone, PartialEq)]
pub struct FashionMnist {
    /// 60 000 training images.
    pub train: ImageSet,
    /// 10 000 test images.
    pub test: ImageSet,
}

impl FashionMnist {
    /// Number of classes.
    pub const CLASSES: usize = 10;

    /// Reads `train-{images-idx3,labels-idx1}-ubyte[.gz]` and `t10k-…` from `dir`.
    ///
    /// Errors: a missing directory (with how to install the Debian package), a missing file, or
    /// any decoding error of [`parse_idx`] and [`ImageSet::from_idx`].
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(invalid(
                "Fashion-MNIST directory",
                format!(
                    "{} does not exist; install the data set with \
                     `apt-get install dataset-fashion-mnist` (it goes to {DEFAULT_FASHION_MNIST_DIR}) \
                     or pass the directory that holds its IDX files",
                    dir.display()
                ),
            ));
        }
        let find = |stem: &str| -> Result<PathBuf> {
            for name in [format!("{stem}.gz"), stem.to_string()] {
                let p = dir.join(name);
                if p.is_file() {
                    return Ok(p);
                }
            }
            Err(invalid(
                "Fashion-MNIST file",
                format!("neither {stem}.gz nor {stem} in {}", dir.display()),
            ))
        };
        let set = |prefix: &str| -> Result<ImageSet> {
            ImageSet::from_idx(
                read_idx(&find(&format!("{prefix}-images-idx3-ubyte"))?)?,
                read_idx(&find(&format!("{prefix}-labels-idx1-ubyte"))?)?,
            )
        };
        Ok(Self {
            train: set("train")?,
            test: set("t10k")?,
        })
    }
}
