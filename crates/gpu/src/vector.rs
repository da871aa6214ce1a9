//! [`GpuVec`]: an `f32` vector in a wgpu storage buffer implementing [`rk::Vector`], so that the
//! `rk` solvers run unchanged with their state on the GPU.
//!
//! Elementwise operations are one dispatch each; `linear_combination` fuses up to four inputs
//! per dispatch (`out = Σ c_i x_i`, accumulating over chunks of four); `combine_rows` combines
//! up to 4096 rows of one stacked vector in one dispatch (IRDM's interpolation; its
//! coefficients ride in the context's data ring); the weighted RMS error norm is a fused kernel
//! that reduces each workgroup of 256 on the device and reads back one partial sum per
//! workgroup (all norm groups in one readback, through buffers the context keeps). Operations
//! are recorded into one pending command encoder and submitted together when a value is read
//! back, so an adaptive step (stages, error estimate, norm) is one submission and one readback,
//! and creates no buffer.
//!
//! The `Vector` methods cannot return errors: a failed readback yields NaN (which the solver
//! reports as a non-finite error norm) or a NaN-filled host copy.

use crate::context::{Bound, GpuContext, MAX_DISPATCH_DATA, Params, ReduceJob};
use crate::error::GpuError;
use crate::kernel::Kernel;
use rk::{Atol, CheckedNorms, Deferred, Vector};
use std::ops::Range;
use std::sync::Arc;

/// An `f32` vector on the GPU.
pub struct GpuVec {
    ctx: Arc<GpuContext>,
    buf: wgpu::Buffer,
    len: usize,
}

impl Drop for GpuVec {
    /// The buffer goes to the context's pool, for the next vector of this length.
    fn drop(&mut self) {
        self.ctx.recycle(self.buf.clone(), self.len);
    }
}

impl std::fmt::Debug for GpuVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuVec").field("len", &self.len).finish()
    }
}

impl GpuVec {
    /// A zero vector of `len` floats.
    ///
    /// # Panics
    /// If `len` is beyond the device's buffer limit ([`GpuContext::max_buffer_floats`]) or 32-bit
    /// indexing; [`GpuVec::try_zeros`] returns an error instead.
    pub fn zeros(ctx: &Arc<GpuContext>, len: usize) -> Self {
        Self::try_zeros(ctx, len).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A zero vector of `len` floats, or an error if the device cannot hold it.
    pub fn try_zeros(ctx: &Arc<GpuContext>, len: usize) -> Result<Self, GpuError> {
        ctx.check_buffer("GPU vector", len)?;
        if u32::try_from(len).is_err() {
            return Err(GpuError::Invalid {
                what: "GPU vector".into(),
                reason: format!("{len} floats exceed 32-bit indexing"),
            });
        }
        Ok(Self {
            ctx: Arc::clone(ctx),
            buf: ctx.storage(len),
            len,
        })
    }

    /// Uploads host data.
    ///
    /// # Panics
    /// As [`GpuVec::zeros`]; [`GpuVec::try_from_host`] returns an error instead.
    pub fn from_host(ctx: &Arc<GpuContext>, data: &[f32]) -> Self {
        Self::try_from_host(ctx, data).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Uploads host data, or an error if the device cannot hold it.
    pub fn try_from_host(ctx: &Arc<GpuContext>, data: &[f32]) -> Result<Self, GpuError> {
        let v = Self::try_zeros(ctx, data.len())?;
        ctx.write(&v.buf, data);
        Ok(v)
    }

    /// Downloads the values (NaN-filled if the readback fails).
    pub fn to_host(&self) -> Vec<f32> {
        self.ctx
            .read(&self.buf, self.len)
            .unwrap_or_else(|_| vec![f32::NAN; self.len])
    }

    /// Downloads several vectors with one submission and one wait (a training loop reads its
    /// loss inputs and its gradient together: one round trip instead of two).
    ///
    /// Errors: vectors of different contexts, or a failed readback.
    pub fn read_together(vectors: &[&GpuVec]) -> Result<Vec<Vec<f32>>, GpuError> {
        let Some(first) = vectors.first() else {
            return Ok(Vec::new());
        };
        if vectors.iter().any(|v| !Arc::ptr_eq(&v.ctx, &first.ctx)) {
            return Err(GpuError::Invalid {
                what: "GpuVec::read_together".into(),
                reason: "the vectors belong to different GPU contexts".into(),
            });
        }
        let spans: Vec<(&wgpu::Buffer, usize, usize)> =
            vectors.iter().map(|v| (&v.buf, 0, v.len)).collect();
        first.ctx.read_many(&spans)
    }

    /// The storage buffer.
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buf
    }

    /// The context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    fn n(&self) -> u32 {
        u32::try_from(self.len).expect("GpuVec lengths fit in u32")
    }

    /// `self = base + Σ c_i x_i` (no base: `Σ c_i x_i`), up to eight terms per dispatch (four
    /// where the device binds fewer than nine storage buffers per kernel); later dispatches
    /// accumulate.
    fn lincomb(&mut self, base: Option<&Self>, coeffs: &[f32], xs: &[Self]) {
        let n = self.n();
        let (kernel, width) = match &self.ctx.pipelines.lincomb8 {
            Some(k) => (k, 8),
            None => (&self.ctx.pipelines.lincomb4, 4),
        };
        let offset = usize::from(base.is_some());
        let terms = offset + coeffs.len().min(xs.len());
        // Term i: the base with coefficient 1, then the pairs (c, x).
        let term = |i: usize| match (i, base) {
            (0, Some(b)) => (1.0, &b.buf),
            _ => (coeffs[i - offset], &xs[i - offset].buf),
        };
        for first in (0..terms).step_by(width) {
            let last = (first + width).min(terms) - 1;
            let mut c = [0.0f32; 8];
            // Unused slots repeat the last input with coefficient 0.
            let mut inputs = [term(last).1; 8];
            for (slot, i) in (first..=last).enumerate() {
                (c[slot], inputs[slot]) = term(i);
            }
            let params = Params {
                n,
                mode: u32::from(first > 0),
                c: [c[0], c[1], c[2], c[3]],
                c2: [c[4], c[5], c[6], c[7]],
                ..Params::default()
            };
            let bound = [
                (0, &self.buf),
                (1, inputs[0]),
                (2, inputs[1]),
                (3, inputs[2]),
                (4, inputs[3]),
                (7, inputs[4]),
                (8, inputs[5]),
                (9, inputs[6]),
                (10, inputs[7]),
            ];
            self.ctx.dispatch(kernel, n, params, &bound[..1 + width]);
        }
        if terms == 0 {
            // No terms: the result is zero.
            self.fill(0.0);
        }
    }

    /// Σ over `[start, end)` of a reduction kernel's per-element values (one readback).
    fn reduce(&self, kernel: &Kernel, range: Range<usize>, inputs: &[(u32, &wgpu::Buffer)]) -> f32 {
        match self
            .ctx
            .reduce_ranges(kernel, &[range], Params::default(), inputs)
        {
            Ok(v) => sum_f64(&v[0]),
            Err(_) => f32::NAN,
        }
    }
}

/// Most groups of one norm per `err_sq` dispatch (three words each in the data ring).
const ERR_GROUPS: usize = MAX_DISPATCH_DATA / 3;

/// Partial sums added in `f64` on the host.
fn sum_f64(v: &[f32]) -> f32 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() as f32
}

/// [`Vector::error_norm`] of each of `errs` with the same weights and, for each of `checked`,
/// whether it is entirely finite (its non-finite entries counted on the device): every
/// reduction is recorded first and all partial sums come back in one readback (one submission
/// and one wait, however many groups and vectors).
/// The tables of a grouped reduction (`err_sq`, `max_abs`): the non-empty `groups` in
/// dispatches of up to [`ERR_GROUPS`] each, per dispatch the table (per group its start, end and
/// first workgroup, as f32 bits, read from the data ring) and each group's workgroup count.
fn group_tables(groups: &[&Range<usize>]) -> Vec<(Vec<f32>, Vec<usize>)> {
    groups
        .chunks(ERR_GROUPS)
        .map(|chunk| {
            let (mut table, mut workgroups, mut first) = (Vec::new(), Vec::new(), 0);
            for g in chunk {
                let n = g.len().div_ceil(256);
                table.extend([g.start, g.end, first].map(|v| f32::from_bits(v as u32)));
                workgroups.push(n);
                first += n;
            }
            (table, workgroups)
        })
        .collect()
}

/// The jobs of one grouped reduction of `kernel` over the tables of [`group_tables`].
fn grouped_jobs<'a>(
    kernel: &'a Kernel,
    bound: &'a Bound<'a>,
    params: Params,
    batches: &'a [(Vec<f32>, Vec<usize>)],
) -> impl Iterator<Item = ReduceJob<'a>> {
    batches.iter().map(move |(table, workgroups)| {
        let params = Params {
            flags: workgroups.len() as u32,
            ..params
        };
        let threads = 256 * workgroups.iter().sum::<usize>();
        (kernel, 0..threads, bound, params, Some(&table[..]))
    })
}

fn error_norms<const K: usize, const C: usize>(
    errs: [&GpuVec; K],
    y0: &GpuVec,
    y1: &GpuVec,
    rtol: f32,
    atol: &Atol<GpuVec>,
    groups: &[Range<usize>],
    checked: [&GpuVec; C],
) -> ([f32; K], [bool; C]) {
    let (mode, atol_scalar) = match atol {
        Atol::Scalar(a) => (0, *a),
        Atol::PerComponent(_) => (1, 0.0),
    };
    // Binding 4 is read only with a per-component atol; otherwise any buffer fills it.
    let inputs = errs.map(|e| {
        let atol_buf = match atol {
            Atol::Scalar(_) => &e.buf,
            Atol::PerComponent(v) => &v.buf,
        };
        [(1, &e.buf), (2, &y0.buf), (3, &y1.buf), (4, atol_buf)]
    });
    let check_inputs = checked.map(|v| [(1, &v.buf)]);
    let live: Vec<&Range<usize>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let batches = group_tables(&live);
    let ctx = &y0.ctx;
    let mut jobs: Vec<ReduceJob<'_>> = Vec::new();
    let params = Params {
        mode,
        a: rtol,
        b: atol_scalar,
        ..Params::default()
    };
    for bound in &inputs {
        jobs.extend(grouped_jobs(
            &ctx.pipelines.err_sq,
            &bound[..],
            params,
            &batches,
        ));
    }
    for (v, bound) in checked.iter().zip(&check_inputs) {
        jobs.push((
            &ctx.pipelines.nonfinite,
            0..v.len,
            &bound[..],
            Params::default(),
            None,
        ));
    }
    let Ok(sums) = ctx.reduce_jobs(&jobs) else {
        return ([f32::NAN; K], [false; C]);
    };
    let norms = std::array::from_fn(|k| {
        let mut worst = 0.0f32;
        let mut g = live.iter();
        for (partials, (_, workgroups)) in sums[k * batches.len()..].iter().zip(&batches) {
            let mut at = 0;
            for &n in workgroups {
                let len = g.next().expect("one group per table row").len();
                let rms = (sum_f64(&partials[at..at + n]) / len as f32).sqrt();
                at += n;
                if rms.is_nan() {
                    return rms;
                }
                worst = worst.max(rms);
            }
        }
        worst
    });
    let finite = std::array::from_fn(|c| {
        checked[c].len == 0 || sum_f64(&sums[K * batches.len() + c]) == 0.0
    });
    (norms, finite)
}

/// The grouped `max_abs` jobs of the vector bound in `bound` over the tables `batches`
/// ([`group_tables`]).
fn max_abs_jobs<'a>(
    ctx: &'a GpuContext,
    bound: &'a Bound<'a>,
    batches: &'a [(Vec<f32>, Vec<usize>)],
) -> Vec<ReduceJob<'a>> {
    grouped_jobs(&ctx.pipelines.max_abs, bound, Params::default(), batches).collect()
}

/// Each of `groups`' largest `|x_i|` from the per-workgroup maxima `partials` of the
/// grouped `max_abs` jobs over `batches` (the non-empty groups' tables; empty groups give zero,
/// a short or failed readback NaN).
fn group_maxima(
    groups: &[Range<usize>],
    partials: &[Vec<f32>],
    batches: &[(Vec<f32>, Vec<usize>)],
) -> Vec<f32> {
    let mut maxima = Vec::with_capacity(groups.len());
    for (p, (_, workgroups)) in partials.iter().zip(batches) {
        let mut at = 0;
        for &n in workgroups {
            maxima.push(p[at..at + n].iter().copied().fold(0.0, f32::max));
            at += n;
        }
    }
    let mut maxima = maxima.into_iter();
    groups
        .iter()
        .map(|g| {
            if g.is_empty() {
                0.0
            } else {
                maxima.next().unwrap_or(f32::NAN)
            }
        })
        .collect()
}

impl Vector for GpuVec {
    type Scalar = f32;

    fn len(&self) -> usize {
        self.len
    }

    fn zeros_like(&self) -> Self {
        Self::zeros(&self.ctx, self.len)
    }

    fn zeros_with_len(&self, len: usize) -> Self {
        Self::zeros(&self.ctx, len)
    }

    fn fill(&mut self, value: f32) {
        let params = Params {
            n: self.n(),
            a: value,
            ..Params::default()
        };
        self.ctx.dispatch(
            &self.ctx.pipelines.fill,
            self.n(),
            params,
            &[(0, &self.buf)],
        );
    }

    fn copy_from(&mut self, src: &Self) {
        self.ctx.copy(&src.buf, &self.buf, self.len);
    }

    fn scale(&mut self, c: f32) {
        let params = Params {
            n: self.n(),
            a: c,
            ..Params::default()
        };
        self.ctx.dispatch(
            &self.ctx.pipelines.scale,
            self.n(),
            params,
            &[(0, &self.buf)],
        );
    }

    fn axpby(&mut self, a: f32, x: &Self, b: f32) {
        let params = Params {
            n: self.n(),
            a,
            b,
            ..Params::default()
        };
        self.ctx.dispatch(
            &self.ctx.pipelines.axpby,
            self.n(),
            params,
            &[(0, &self.buf), (1, &x.buf)],
        );
    }

    fn linear_combination(&mut self, coeffs: &[f32], xs: &[Self]) {
        self.lincomb(None, coeffs, xs);
    }

    fn offset_linear_combination(&mut self, base: &Self, coeffs: &[f32], xs: &[Self]) {
        // The base as a term with coefficient 1: no copy (which would also end the shared
        // compute pass).
        self.lincomb(Some(base), coeffs, xs);
    }

    fn set_row(&mut self, k: usize, src: &Self) {
        debug_assert!((k + 1) * src.len <= self.len);
        self.ctx.copy_at(&src.buf, &self.buf, k * src.len, src.len);
    }

    fn copy_range(&mut self, at: usize, src: &Self, from: Range<usize>) {
        debug_assert!(from.end <= src.len && at + from.len() <= self.len);
        self.ctx
            .copy_span((&src.buf, from.start), (&self.buf, at), from.len());
    }

    fn combine_rows(&mut self, coeffs: &[f32], rows: &Self) {
        self.combine_strided_rows(coeffs, rows, 0, 1);
    }

    fn combine_strided_rows(&mut self, coeffs: &[f32], rows: &Self, first: usize, stride: usize) {
        debug_assert!(stride >= 1);
        debug_assert!(
            coeffs.is_empty() || (first + (coeffs.len() - 1) * stride + 1) * self.len <= rows.len
        );
        if coeffs.is_empty() {
            self.fill(0.0);
            return;
        }
        // The coefficients travel with the kernel parameters (staged, uploaded with the
        // submission): no buffer per call. Beyond MAX_DISPATCH_DATA rows (never for IRDM's
        // grids) further dispatches add their chunk's rows.
        for (chunk, c) in coeffs.chunks(MAX_DISPATCH_DATA).enumerate() {
            let params = Params {
                n: self.n(),
                mode: c.len() as u32,
                start: (first + chunk * MAX_DISPATCH_DATA * stride) as u32,
                flags: u32::from(chunk > 0),
                stride: stride as u32,
                ..Params::default()
            };
            self.ctx.dispatch_with_data(
                &self.ctx.pipelines.combine_rows,
                self.n(),
                params,
                &[(0, &self.buf), (1, &rows.buf)],
                c,
            );
        }
    }

    fn error_norm(
        &self,
        y0: &Self,
        y1: &Self,
        rtol: f32,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> f32 {
        let ([norm], []) = error_norms([self], y0, y1, rtol, atol, groups, []);
        norm
    }

    fn error_norm_pair(
        &self,
        other: &Self,
        y0: &Self,
        y1: &Self,
        rtol: f32,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> (f32, f32) {
        let ([a, b], []) = error_norms([self, other], y0, y1, rtol, atol, groups, []);
        (a, b)
    }

    fn error_norm_pair_checked(
        &self,
        other: &Self,
        y0: &Self,
        y1: &Self,
        rtol: f32,
        atol: &Atol<Self>,
        groups: &[Range<usize>],
    ) -> CheckedNorms<f32> {
        let ([a, b], [fa, fb]) =
            error_norms([self, other], y0, y1, rtol, atol, groups, [self, other]);
        CheckedNorms {
            norms: (a, b),
            finite: (fa, fb),
        }
    }

    fn max_abs_groups(&self, groups: &[Range<usize>]) -> Vec<f32> {
        // Per-workgroup maxima of every group from one dispatch (per ERR_GROUPS groups) and
        // one readback; the host takes each group's largest.
        let live: Vec<&Range<usize>> = groups.iter().filter(|g| !g.is_empty()).collect();
        if live.is_empty() {
            return vec![0.0; groups.len()];
        }
        let batches = group_tables(&live);
        let bound = [(1, &self.buf)];
        let jobs = max_abs_jobs(&self.ctx, &bound, &batches);
        let partials = self.ctx.reduce_jobs(&jobs);
        match partials {
            Ok(partials) => group_maxima(groups, &partials, &batches),
            Err(_) => vec![f32::NAN; groups.len()],
        }
    }

    fn max_abs_groups_deferred(&self, groups: &[Range<usize>]) -> Deferred<f32> {
        // As `max_abs_groups`, with the partials brought by the next readback.
        let live: Vec<&Range<usize>> = groups.iter().filter(|g| !g.is_empty()).collect();
        if live.is_empty() {
            return Deferred::ready(vec![0.0; groups.len()]);
        }
        let batches = group_tables(&live);
        let bound = [(1, &self.buf)];
        let slot = self
            .ctx
            .reduce_jobs_deferred(&max_abs_jobs(&self.ctx, &bound, &batches));
        let (ctx, groups) = (Arc::clone(&self.ctx), groups.to_vec());
        Deferred::later(move || {
            let partials = ctx.resolve_deferred(&slot);
            group_maxima(&groups, &partials, &batches)
        })
    }

    fn all_finite(&self) -> bool {
        // Counted on the device (exponent bits), one float per workgroup read back.
        self.len == 0
            || self.reduce(
                &self.ctx.pipelines.nonfinite,
                0..self.len,
                &[(1, &self.buf)],
            ) == 0.0
    }

    fn dot(&self, other: &Self) -> f32 {
        self.reduce(
            &self.ctx.pipelines.dot,
            0..self.len,
            &[(1, &self.buf), (2, &other.buf)],
        )
    }

    fn copy_to_host(&self, out: &mut [f32]) {
        out.copy_from_slice(&self.to_host());
    }

    fn copy_from_host(&mut self, data: &[f32]) {
        self.ctx.write(&self.buf, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear combinations of 0 to 12 vectors, plain and offset, with eight inputs per dispatch
    /// and with four (the fallback for devices that bind fewer than nine storage buffers).
    #[test]
    fn linear_combinations_with_either_kernel_match_the_host() {
        let Some(mut ctx) = crate::context::test_context() else {
            return;
        };
        let n = 300;
        let host: Vec<Vec<f32>> = (0..12)
            .map(|i| {
                (0..n)
                    .map(|j| ((i * 31 + j * 7) % 17) as f32 * 0.1 - 0.8)
                    .collect()
            })
            .collect();
        let base: Vec<f32> = (0..n).map(|j| (j % 5) as f32).collect();
        for eight in [true, false] {
            if !eight {
                Arc::get_mut(&mut ctx)
                    .expect("no other handle yet")
                    .pipelines
                    .lincomb8 = None;
            }
            let xs: Vec<GpuVec> = host.iter().map(|x| GpuVec::from_host(&ctx, x)).collect();
            let vbase = GpuVec::from_host(&ctx, &base);
            let mut out = GpuVec::zeros(&ctx, n);
            for m in 0..=12 {
                let cs: Vec<f32> = (0..m).map(|i| 0.3 * i as f32 - 1.1).collect();
                let want: Vec<f32> = (0..n)
                    .map(|j| (0..m).map(|i| cs[i] * host[i][j]).sum())
                    .collect();
                out.linear_combination(&cs, &xs[..m]);
                for (g, w) in out.to_host().iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "eight {eight}, {m} terms: {g} vs {w}");
                }
                out.offset_linear_combination(&vbase, &cs, &xs[..m]);
                for ((g, w), b) in out.to_host().iter().zip(&want).zip(&base) {
                    assert!(
                        (g - (w + b)).abs() < 1e-5,
                        "eight {eight}, offset, {m} terms"
                    );
                }
            }
            drop(xs);
            drop(vbase);
            drop(out);
        }
    }
}
