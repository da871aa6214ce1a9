//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong in `nn`.
#[derive(Debug, Error)]
pub enum NnError {
    /// A tensor or vector has the wrong shape or length.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which object.
        what: String,
        /// Expected shape or length, as text.
        expected: String,
        /// Found shape or length, as text.
        got: String,
    },
    /// A weights file lacks a tensor the model needs.
    #[error("missing tensor {name:?} in {source_name}")]
    MissingTensor {
        /// The tensor name (PyTorch `state_dict` naming).
        name: String,
        /// The file or buffer it was looked up in.
        source_name: String,
    },
    /// A tensor has an unsupported element type.
    #[error("tensor {name:?} has dtype {dtype}; expected F32 or F64")]
    DType {
        /// The tensor name.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// Parameters or data contain NaN or infinity.
    #[error("{what} contains a non-finite value at index {index}")]
    NonFinite {
        /// Which object.
        what: String,
        /// First offending index.
        index: usize,
    },
    /// An invalid setting (learning rate, batch size, data set name …).
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// Which setting.
        name: String,
        /// Why.
        reason: String,
    },
    /// A gradient computation failed.
    #[error(transparent)]
    Adjoint(#[from] adjoint::AdjointError),
    /// A safetensors file could not be parsed or written.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// A file was read but its contents are not what was expected (a truncated or corrupt
    /// safetensors file, a checkpoint without its metadata), with the file named.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file (or the name given to the bytes).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another rank of a data-parallel group left it (an error, a panic, a kill): this rank
    /// stops instead of waiting for it.
    #[error("rank {rank} of the training group was lost ({reason})")]
    RankLost {
        /// The lost rank.
        rank: usize,
        /// What is known of why.
        reason: String,
    },
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Shorthand for `Result<T, NnError>`.
pub type Result<T> = std::result::Result<T, NnError>;

pub(crate) fn shape_err(
    what: impl Into<String>,
    expected: impl ToString,
    got: impl ToString,
) -> NnError {
    NnError::Shape {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

pub(crate) fn check_finite<T: crate::Float>(what: &str, xs: &[T]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(NnError::NonFinite {
            what: what.into(),
            index,
        }),
        None => Ok(()),
    }
}
