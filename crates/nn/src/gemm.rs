//! Matrix products on row-major slices, through faer's kernels (sequential).
//!
//! `C = α·op(A)·op(B) + β·C` with `β ∈ {0, 1}`, where `op(X)` is `X` or `Xᵀ`. Shapes are those of
//! the *products*: `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`; a transposed operand
//! is stored row-major in its untransposed shape (`A` stored `k × m` when `a_t`).

use crate::Float;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Operand of [`gemm`]: a row-major slice and whether to use its transpose.
#[derive(Clone, Copy)]
pub struct Op<'a, T> {
    /// The numbers, row-major.
    pub data: &'a [T],
    /// Use the transpose of the stored matrix.
    pub transpose: bool,
}

/// `A` as stored.
pub fn n<T>(data: &[T]) -> Op<'_, T> {
    Op {
        data,
        transpose: false,
    }
}

/// `Aᵀ`.
pub fn t<T>(data: &[T]) -> Op<'_, T> {
    Op {
        data,
        transpose: true,
    }
}

fn view<T: Float>(op: Op<'_, T>, rows: usize, cols: usize) -> MatRef<'_, T> {
    if op.transpose {
        MatRef::from_row_major_slice(op.data, cols, rows).transpose()
    } else {
        MatRef::from_row_major_slice(op.data, rows, cols)
    }
}

/// `C (m × n) = α·op(A)·op(B) (+ C if accumulate)`.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    c: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    a: Op<'_, T>,
    b: Op<'_, T>,
    alpha: T,
    accumulate: bool,
) {
    debug_assert_eq!(c.len(), m * n);
    debug_assert_eq!(a.data.len(), m * k);
    debug_assert_eq!(b.data.len(), k * n);
    if m == 0 || n == 0 {
        return;
    }
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    matmul(dst, accum, view(a, m, k), view(b, k, n), alpha, Par::Seq);
}
