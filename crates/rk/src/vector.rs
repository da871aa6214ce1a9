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
use num_traits::{Float, Zero};
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

/// Values asked of a backend now and wanted later ([`Vector::max_abs_groups_deferred`]): a
/// backend that reads results back in round trips brings them with its next readback, so a
/// check recorded before a solver's start costs no round trip of its own. [`Deferred::get`]
/// returns them, reading back then if nothing has since.
pub struct Deferred<S>(DeferredState<S>);

enum DeferredState<S> {
    Ready(Vec<S>),
    Later(Box<dyn FnOnce() -> Vec<S> + Send>),
}

impl<S> Deferred<S> {
    /// Values already known (a host backend computes them at once).
    pub fn ready(values: Vec<S>) -> Self {
        Self(DeferredState::Ready(values))
    }

    /// Values that `resolve` returns when asked (a device backend waits for them there).
    pub fn later(resolve: impl FnOnce() -> Vec<S> + Send + 'static) -> Self {
        Self(DeferredState::Later(Box::new(resolve)))
    }

    /// The values.
    pub fn get(self) -> Vec<S> {
        match self.0 {
            DeferredState::Ready(values) => values,
            DeferredState::Later(resolve) => resolve(),
        }
    }
}

impl<S> std::fmt::Debug for Deferred<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            DeferredState::Ready(_) => "Deferred(ready)",
            DeferredState::Later(_) => "Deferred(later)",
        })
    }
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
    /// `self[at .. at + r.len()] = src[r]` for the component range `r = from`: a part of one
    /// stacked vector moved into another on the backend, without a host round trip (the
    /// adjoint drivers assemble `[z, a, g]` from cotangents and split `dL/dz0`, `dL/dθ` off the
    /// final state this way). Requires `from.end ≤ src.len()` and `at + from.len() ≤
    /// self.len()`.
    fn copy_range(&mut self, at: usize, src: &Self, from: Range<usize>);
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
    /// [`Vector::max_abs_groups`] wanted later: a backend may record the reduction now and
    /// bring the maxima back with its next readback (a GPU backend does; the default computes
    /// them at once). The values are those `max_abs_groups` gives for `self` as it is now,
    /// whatever is done to it afterwards.
    fn max_abs_groups_deferred(&self, groups: &[Range<usize>]) -> Deferred<Self::Scalar> {
        Deferred::ready(self.max_abs_groups(groups))
    }
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

/// Host vectors that keep their components in one contiguous slice. Implementing it (three
/// methods) gives [`Vector`] through the host kernels below, without copies: `Vec<T>` here,
/// `nalgebra::DVector<T>` and `faer::Col<T>` behind the `nalgebra` and `faer` features.
pub trait HostVector: Sized {
    /// The scalar type.
    type Elem: Scalar;
    /// The components.
    fn as_host_slice(&self) -> &[Self::Elem];
    /// The components, mutably.
    fn as_host_slice_mut(&mut self) -> &mut [Self::Elem];
    /// A zero vector of length `len`.
    fn host_zeros(len: usize) -> Self;
}

impl<T: Scalar> HostVector for Vec<T> {
    type Elem = T;
    #[inline]
    fn as_host_slice(&self) -> &[T] {
        self
    }
    #[inline]
    fn as_host_slice_mut(&mut self) -> &mut [T] {
        self
    }
    fn host_zeros(len: usize) -> Self {
        vec![T::zero(); len]
    }
}

impl<V: HostVector> Vector for V {
    type Scalar = V::Elem;

    #[inline]
    fn len(&self) -> usize {
        self.as_host_slice().len()
    }

    fn zeros_like(&self) -> Self {
        V::host_zeros(self.len())
    }

    fn zeros_with_len(&self, len: usize) -> Self {
        V::host_zeros(len)
    }

    fn fill(&mut self, value: V::Elem) {
        self.as_host_slice_mut().fill(value);
    }

    fn copy_from(&mut self, src: &Self) {
        self.as_host_slice_mut()
            .copy_from_slice(src.as_host_slice());
    }

    fn scale(&mut self, c: V::Elem) {
        for v in self.as_host_slice_mut() {
            *v = *v * c;
        }
    }

    fn axpby(&mut self, a: V::Elem, x: &Self, b: V::Elem) {
        debug_assert_eq!(self.len(), x.len());
        for (s, &xv) in self.as_host_slice_mut().iter_mut().zip(x.as_host_slice()) {
            *s = a * xv + b * *s;
        }
    }

    fn linear_combination(&mut self, coeffs: &[V::Elem], xs: &[Self]) {
        lincomb(self.as_host_slice_mut(), None, coeffs, xs);
    }

    fn offset_linear_combination(&mut self, base: &Self, coeffs: &[V::Elem], xs: &[Self]) {
        lincomb(
            self.as_host_slice_mut(),
            Some(base.as_host_slice()),
            coeffs,
            xs,
        );
    }

    fn set_row(&mut self, k: usize, src: &Self) {
        let m = src.len();
        self.as_host_slice_mut()[k * m..(k + 1) * m].copy_from_slice(src.as_host_slice());
    }

    fn copy_range(&mut self, at: usize, src: &Self, from: Range<usize>) {
        let len = from.len();
        self.as_host_slice_mut()[at..at + len].copy_from_slice(&src.as_host_slice()[from]);
    }

    fn combine_rows(&mut self, coeffs: &[V::Elem], rows: &Self) {
        self.combine_strided_rows(coeffs, rows, 0, 1);
    }

    fn combine_strided_rows(
        &mut self,
        coeffs: &[V::Elem],
        rows: &Self,
        first: usize,
        stride: usize,
    ) {
        let out = self.as_host_slice_mut();
        let rows = rows.as_host_slice();
        let m = out.len();
        debug_assert!(stride >= 1);
        out.fill(V::Elem::zero());
        for (k, &c) in coeffs.iter().enumerate() {
            if c == V::Elem::zero() {
                continue;
            }
            let r = first + k * stride;
            for (o, &v) in out.iter_mut().zip(&rows[r * m..(r + 1) * m]) {
                *o = *o + c * v;
            }
        }
    }

    fn max_abs_groups(&self, groups: &[Range<usize>]) -> Vec<V::Elem> {
        let x = self.as_host_slice();
        groups
            .iter()
            .map(|g| {
                x[g.clone()].iter().fold(V::Elem::zero(), |acc, v| {
                    if v.is_finite() {
                        acc.max(v.abs())
                    } else {
                        V::Elem::of(f64::INFINITY)
                    }
                })
            })
            .collect()
    }

    fn error_norm(
        &self,
        y0: &Self,
        y1: &Self,
        rtol: V::Elem,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> V::Elem {
        let (e, y0, y1) = (self.as_host_slice(), y0.as_host_slice(), y1.as_host_slice());
        let mut worst = V::Elem::zero();
        for g in groups {
            if g.is_empty() {
                continue;
            }
            let mut sum = V::Elem::zero();
            for i in g.clone() {
                let a = match atol {
                    Atol::Scalar(a) => *a,
                    Atol::PerComponent(v) => v.as_host_slice()[i],
                };
                let w = a + rtol * y0[i].abs().max(y1[i].abs());
                let r = e[i] / w;
                sum = sum + r * r;
            }
            let rms = (sum / V::Elem::of(g.len() as f64)).sqrt();
            // `max` would drop a NaN; keep it visible.
            if rms.is_nan() {
                return rms;
            }
            worst = worst.max(rms);
        }
        worst
    }

    fn all_finite(&self) -> bool {
        self.as_host_slice().iter().all(|v| v.is_finite())
    }

    fn dot(&self, other: &Self) -> V::Elem {
        self.as_host_slice()
            .iter()
            .zip(other.as_host_slice())
            .fold(V::Elem::zero(), |acc, (&a, &b)| acc + a * b)
    }

    fn copy_to_host(&self, out: &mut [V::Elem]) {
        out.copy_from_slice(self.as_host_slice());
    }

    fn copy_from_host(&mut self, data: &[V::Elem]) {
        self.as_host_slice_mut().copy_from_slice(data);
    }
}

/// `out = base + Σ c_i x_i`, blocked four vectors at a time so that `out` is read and written
/// once per block rather than once per term.
fn lincomb<V: HostVector>(
    out: &mut [V::Elem],
    base: Option<&[V::Elem]>,
    coeffs: &[V::Elem],
    xs: &[V],
) {
    debug_assert!(coeffs.len() <= xs.len());
    match base {
        Some(b) => out.copy_from_slice(b),
        None => out.fill(V::Elem::zero()),
    }
    let mut i = 0;
    while i + 4 <= coeffs.len() {
        let (c0, c1, c2, c3) = (coeffs[i], coeffs[i + 1], coeffs[i + 2], coeffs[i + 3]);
        let (x0, x1, x2, x3) = (
            xs[i].as_host_slice(),
            xs[i + 1].as_host_slice(),
            xs[i + 2].as_host_slice(),
            xs[i + 3].as_host_slice(),
        );
        for (j, o) in out.iter_mut().enumerate() {
            *o = *o + c0 * x0[j] + c1 * x1[j] + c2 * x2[j] + c3 * x3[j];
        }
        i += 4;
    }
    for (c, x) in coeffs[i..].iter().zip(&xs[i..]) {
        if *c == V::Elem::zero() {
            continue;
        }
        for (o, &v) in out.iter_mut().zip(x.as_host_slice()) {
            *o = *o + *c * v;
        }
    }
}
