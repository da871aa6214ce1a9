//! The backend-neutral vector trait, shaped like SUNDIALS' `N_Vector`, and its host
//! implementation over `Vec<f32>` / `Vec<f64>`.
//!
//! The solver only ever touches state through these in-place operations, so a backend that keeps
//! its numbers elsewhere (a wgpu buffer) runs the same stepping code. The one operation that
//! returns a number per step is [`Vector::error_norm`], the weighted RMS norm of the local error
//!
//! ```text
//!     ‖e‖ = max_g sqrt( (1/|g|) Σ_{i∈g} ( e_i / (atol_i + rtol · max(|y0_i|, |y1_i|)) )² )
//! ```
//!
//! over component groups `g` (torchdiffeq's `_mixed_norm` for tuple states; one group over all
//! components is the plain RMS norm; one group over a sub-range is the seminorm of Kidger et al.
//! 2021). Components outside every group are ignored.

use crate::scalar::Scalar;
use std::ops::Range;

/// Absolute tolerance: one number for all components, or one per component.
#[derive(Debug, Clone, PartialEq)]
pub enum Atol<V: Vector> {
    /// The same absolute tolerance for every component.
    Scalar(V::Scalar),
    /// One absolute tolerance per component, stored like the state.
    PerComponent(V),
}

/// Two error norms and whether each of the two vectors is entirely finite
/// ([`Vector::error_norm_pair_checked`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckedNorms<S> {
    /// `(‖self‖, ‖other‖)`.
    pub norms: (S, S),
    /// Whether `self` and `other` are entirely finite.
    pub finite: (bool, bool),
}

/// Where the numbers of a state vector live, and the in-place operations the solver needs.
///
/// Implementations must not allocate in any method but [`Vector::zeros_like`] and
/// [`Vector::zeros_with_len`]. In every method
/// taking other vectors, all vectors have the same length as `self` (callers guarantee it; the
/// host implementation checks it with `debug_assert!`).
pub trait Vector: Sized {
    /// The scalar type.
    type Scalar: Scalar;

    /// Number of components.
    fn len(&self) -> usize;
    /// Whether the vector has no components.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A new vector of the same length (and backend) filled with zeros. Allocates (as does
    /// [`Vector::zeros_with_len`]; no other method may).
    fn zeros_like(&self) -> Self;
    /// A new zero vector of length `len` on the same backend (for stacked states such as an
    /// adjoint system's `[a, g]`). Allocates.
    fn zeros_with_len(&self, len: usize) -> Self;
    /// `self_i = value`.
    fn fill(&mut self, value: Self::Scalar);
    /// `self = src`.
    fn copy_from(&mut self, src: &Self);
    /// `self = c · self`.
    fn scale(&mut self, c: Self::Scalar);
    /// `self = a · x + b · self`.
    fn axpby(&mut self, a: Self::Scalar, x: &Self, b: Self::Scalar);
    /// `self = Σ_i coeffs[i] · xs[i]` (fused: one pass over memory). `coeffs.len() ≤ xs.len()`;
    /// extra vectors are ignored.
    fn linear_combination(&mut self, coeffs: &[Self::Scalar], xs: &[Self]);
    /// `self = base + Σ_i coeffs[i] · xs[i]` (fused). `coeffs.len() ≤ xs.len()`.
    fn offset_linear_combination(&mut self, base: &Self, coeffs: &[Self::Scalar], xs: &[Self]);
    /// `self[k·m .. (k+1)·m] = src` with `m = src.len()`: row `k` of a stacked vector of rows
    /// (IRDM's node values). Requires `(k+1)·m ≤ self.len()`.
    fn set_row(&mut self, k: usize, src: &Self);
    /// `self = Σ_k coeffs[k] · rows[k·m .. (k+1)·m]` with `m = self.len()` (fused: one pass over
    /// the output; on a GPU one dispatch however many rows). Requires
    /// `coeffs.len() · m ≤ rows.len()`.
    fn combine_rows(&mut self, coeffs: &[Self::Scalar], rows: &Self);
    /// `self = Σ_k coeffs[k] · row(first + k·stride)` of the stacked vector `rows` (rows of
    /// `m = self.len()`): [`Vector::combine_rows`] over every `stride`-th row from `first`
    /// (IRDM's nested sub-grids). Requires `stride ≥ 1` and, for `coeffs` non-empty,
    /// `(first + (coeffs.len() − 1)·stride + 1) · m ≤ rows.len()`.
    fn combine_strided_rows(
        &mut self,
        coeffs: &[Self::Scalar],
        rows: &Self,
        first: usize,
        stride: usize,
    );
    /// The largest `|self_i|` over each of `groups` (non-finite entries give `+∞`, empty groups
    /// zero); on a GPU one readback for all groups.
    fn max_abs_groups(&self, groups: &[Range<usize>]) -> Vec<Self::Scalar>;
    /// Weighted RMS error norm of `self` (the local error), see the module docs. `groups` are
    /// component ranges; the result is the maximum of the per-group norms.
    fn error_norm(
        &self,
        y0: &Self,
        y1: &Self,
        rtol: Self::Scalar,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> Self::Scalar;
    /// [`Vector::error_norm`] of `self` and of `other` with the same weights, `(‖self‖,
    /// ‖other‖)`: the initial step selection needs two norms at once, which a GPU backend reads
    /// back together. The default computes them one after the other.
    fn error_norm_pair(
        &self,
        other: &Self,
        y0: &Self,
        y1: &Self,
        rtol: Self::Scalar,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> (Self::Scalar, Self::Scalar) {
        (
            self.error_norm(y0, y1, rtol, atol, groups),
            other.error_norm(y0, y1, rtol, atol, groups),
        )
    }
    /// [`Vector::error_norm_pair`] together with whether `self` and `other` are entirely finite
    /// (what [`Vector::all_finite`] says of each): the solver's start needs all four, which a
    /// GPU backend reads back together. The default computes them one after the other.
    #[allow(clippy::too_many_arguments)]
    fn error_norm_pair_checked(
        &self,
        other: &Self,
        y0: &Self,
        y1: &Self,
        rtol: Self::Scalar,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> CheckedNorms<Self::Scalar> {
        CheckedNorms {
            norms: self.error_norm_pair(other, y0, y1, rtol, atol, groups),
            finite: (self.all_finite(), other.all_finite()),
        }
    }
    /// Whether every component is finite.
    fn all_finite(&self) -> bool;
    /// `Σ_i self_i · other_i`.
    fn dot(&self, other: &Self) -> Self::Scalar;
    /// Copies the components into `out` (length `len()`).
    fn copy_to_host(&self, out: &mut [Self::Scalar]);
    /// Overwrites the components from `data` (length `len()`).
    fn copy_from_host(&mut self, data: &[Self::Scalar]);
}

impl<T: Scalar> Vector for Vec<T> {
    type Scalar = T;

    #[inline]
    fn len(&self) -> usize {
        <[T]>::len(self)
    }

    fn zeros_like(&self) -> Self {
        vec![T::zero(); <[T]>::len(self)]
    }

    fn zeros_with_len(&self, len: usize) -> Self {
        vec![T::zero(); len]
    }

    fn fill(&mut self, value: T) {
        <[T]>::fill(self, value);
    }

    fn copy_from(&mut self, src: &Self) {
        self.copy_from_slice(src);
    }

    fn scale(&mut self, c: T) {
        for v in self.iter_mut() {
            *v = *v * c;
        }
    }

    fn axpby(&mut self, a: T, x: &Self, b: T) {
        debug_assert_eq!(<[T]>::len(self), <[T]>::len(x));
        for (s, &xv) in self.iter_mut().zip(x.iter()) {
            *s = a * xv + b * *s;
        }
    }

    fn linear_combination(&mut self, coeffs: &[T], xs: &[Self]) {
        lincomb(self, None, coeffs, xs);
    }

    fn offset_linear_combination(&mut self, base: &Self, coeffs: &[T], xs: &[Self]) {
        lincomb(self, Some(base), coeffs, xs);
    }

    fn set_row(&mut self, k: usize, src: &Self) {
        let m = <[T]>::len(src);
        self[k * m..(k + 1) * m].copy_from_slice(src);
    }

    fn combine_rows(&mut self, coeffs: &[T], rows: &Self) {
        let m = <[T]>::len(self);
        debug_assert!(coeffs.len() * m <= <[T]>::len(rows));
        self.fill(T::zero());
        for (k, &c) in coeffs.iter().enumerate() {
            if c == T::zero() {
                continue;
            }
            for (o, &v) in self.iter_mut().zip(&rows[k * m..(k + 1) * m]) {
                *o = *o + c * v;
            }
        }
    }

    fn combine_strided_rows(&mut self, coeffs: &[T], rows: &Self, first: usize, stride: usize) {
        let m = <[T]>::len(self);
        debug_assert!(stride >= 1);
        self.fill(T::zero());
        for (k, &c) in coeffs.iter().enumerate() {
            if c == T::zero() {
                continue;
            }
            let r = first + k * stride;
            for (o, &v) in self.iter_mut().zip(&rows[r * m..(r + 1) * m]) {
                *o = *o + c * v;
            }
        }
    }

    fn max_abs_groups(&self, groups: &[Range<usize>]) -> Vec<T> {
        groups
            .iter()
            .map(|g| {
                self[g.clone()].iter().fold(T::zero(), |acc, v| {
                    if v.is_finite() {
                        acc.max(v.abs())
                    } else {
                        T::of(f64::INFINITY)
                    }
                })
            })
            .collect()
    }

    fn error_norm(
        &self,
        y0: &Self,
        y1: &Self,
        rtol: T,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> T {
        let mut worst = T::zero();
        for g in groups {
            if g.is_empty() {
                continue;
            }
            let mut sum = T::zero();
            for i in g.clone() {
                let a = match atol {
                    Atol::Scalar(a) => *a,
                    Atol::PerComponent(v) => v[i],
                };
                let w = a + rtol * y0[i].abs().max(y1[i].abs());
                let r = self[i] / w;
                sum = sum + r * r;
            }
            let rms = (sum / T::of(g.len() as f64)).sqrt();
            // `max` would drop a NaN; keep it visible.
            if rms.is_nan() {
                return rms;
            }
            worst = worst.max(rms);
        }
        worst
    }

    fn all_finite(&self) -> bool {
        self.iter().all(|v| v.is_finite())
    }

    fn dot(&self, other: &Self) -> T {
        self.iter()
            .zip(other.iter())
            .fold(T::zero(), |acc, (&a, &b)| acc + a * b)
    }

    fn copy_to_host(&self, out: &mut [T]) {
        out.copy_from_slice(self);
    }

    fn copy_from_host(&mut self, data: &[T]) {
        self.copy_from_slice(data);
    }
}

/// `out = base + Σ c_i x_i`, blocked four vectors at a time so that `out` is read and written
/// once per block rather than once per term.
fn lincomb<T: Scalar>(out: &mut [T], base: Option<&[T]>, coeffs: &[T], xs: &[Vec<T>]) {
    debug_assert!(coeffs.len() <= xs.len());
    match base {
        Some(b) => out.copy_from_slice(b),
        None => out.fill(T::zero()),
    }
    let mut i = 0;
    while i + 4 <= coeffs.len() {
        let (c0, c1, c2, c3) = (coeffs[i], coeffs[i + 1], coeffs[i + 2], coeffs[i + 3]);
        let (x0, x1, x2, x3) = (&xs[i], &xs[i + 1], &xs[i + 2], &xs[i + 3]);
        for (j, o) in out.iter_mut().enumerate() {
            *o = *o + c0 * x0[j] + c1 * x1[j] + c2 * x2[j] + c3 * x3[j];
        }
        i += 4;
    }
    for (c, x) in coeffs[i..].iter().zip(&xs[i..]) {
        if *c == T::zero() {
            continue;
        }
        for (o, &v) in out.iter_mut().zip(x.iter()) {
            *o = *o + *c * v;
        }
    }
}
