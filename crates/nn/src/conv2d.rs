//! Batched 2-D convolution by `im2col` and one matrix product, with its VJP.
//!
//! For a batch `x (B × C × H × W)` (row-major), a kernel `k × k`, stride `s`, zero padding `p`,
//! the output is `B × C' × H' × W'` with `H' = (H + 2p − k)/s + 1` (same for `W'`):
//!
//! ```text
//!     y[b, o, i, j] = bias[o] + Σ_{c, u, v} Wt[o, c, u, v] · x[b, c, s·i + u − p, s·j + v − p]
//! ```
//!
//! (zero outside the image). With `cols (K × B·P)`, `K = C k²`, `P = H'W'`, holding in column
//! `b·P + i·W' + j` the patch under output pixel `(i, j)` of image `b`, this is one product
//! `Y = Wt · cols` (`C' × B·P`) for the whole batch, permuted to `B × C' × P`. Optionally a
//! constant channel `t` is prepended to the input (torchdiffeq's `ConcatConv2d`; zero-padded like
//! the image). The VJP, with `Ȳ` the permuted output cotangent:
//!
//! ```text
//!     W̄t += Ȳ colsᵀ,   b̄ += Σ_columns Ȳ,   x̄ = col2im(Wtᵀ Ȳ)
//! ```
//!
//! where `col2im` adds each column entry back to the pixel it was copied from (the time channel's
//! cotangent is dropped: `t` is not trained).

use crate::Float;
use crate::gemm::{gemm, n as nop, t as top};

/// Geometry of one convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels (without the time channel).
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size `k` (square).
    pub kernel: usize,
    /// Stride `s`.
    pub stride: usize,
    /// Zero padding `p` on every side.
    pub padding: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Prepend the constant time channel (`ConcatConv2d`).
    pub time_channel: bool,
}

impl Conv2d {
    /// Output height `(H + 2p − k)/s + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Whether the geometry is valid: every size ≥ 1 and the kernel fits the padded image.
    pub fn is_valid(&self) -> bool {
        self.in_channels > 0
            && self.out_channels > 0
            && self.kernel > 0
            && self.stride > 0
            && self.height + 2 * self.padding >= self.kernel
            && self.width + 2 * self.padding >= self.kernel
    }

    /// Input channels including the time channel.
    fn channels_with_time(&self) -> usize {
        self.in_channels + usize::from(self.time_channel)
    }

    /// Rows of `cols`: `K = (C + time) k²`.
    pub fn patch_len(&self) -> usize {
        self.channels_with_time() * self.kernel * self.kernel
    }

    /// Output pixels per channel `P = H'W'`.
    pub fn out_pixels(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// Floats of one input image.
    pub fn in_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Floats of one output image.
    pub fn out_len(&self) -> usize {
        self.out_channels * self.out_pixels()
    }

    /// Weight shape `[C', C + time, k, k]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.channels_with_time(),
            self.kernel,
            self.kernel,
        ]
    }

    /// Number of weights.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    /// Multiply-adds of one image's forward pass, times two (FLOPs).
    pub fn flops_per_image(&self) -> usize {
        2 * self.out_channels * self.patch_len() * self.out_pixels()
    }

    /// `cols` for a batch of `batch` images (`t` fills the time channel).
    fn im2col<T: Float>(&self, t: T, x: &[T], batch: usize, cols: &mut [T]) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (h, w) = (self.height, self.width);
        let (oh, ow) = (self.out_height(), self.out_width());
        let pix = oh * ow;
        let bp = batch * pix;
        let time = usize::from(self.time_channel);
        for ci in 0..self.channels_with_time() {
            for ky in 0..k {
                for kx in 0..k {
                    let row = ((ci * k + ky) * k + kx) * bp;
                    let (lo, hi) = self.valid_columns(kx);
                    for b in 0..batch {
                        let dst = &mut cols[row + b * pix..row + (b + 1) * pix];
                        let src = (ci >= time).then(|| {
                            let c = ci - time;
                            &x[b * self.in_len() + c * h * w..b * self.in_len() + (c + 1) * h * w]
                        });
                        for oy in 0..oh {
                            let sy = (oy * s + ky) as isize - p as isize;
                            let row_dst = &mut dst[oy * ow..(oy + 1) * ow];
                            if sy < 0 || sy >= h as isize || lo >= hi {
                                row_dst.fill(T::zero());
                                continue;
                            }
                            row_dst[..lo].fill(T::zero());
                            row_dst[hi..].fill(T::zero());
                            let inside = &mut row_dst[lo..hi];
                            match src {
                                None => inside.fill(t),
                                Some(img) => {
                                    let first = sy as usize * w + lo * s + kx - p;
                                    if s == 1 {
                                        inside.copy_from_slice(&img[first..first + (hi - lo)]);
                                    } else {
                                        for (q, d) in inside.iter_mut().enumerate() {
                                            *d = img[first + q * s];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The output columns `ox ∈ [lo, hi)` whose input column `ox·s + kx − p` lies inside the
    /// image (an empty range when none does).
    fn valid_columns(&self, kx: usize) -> (usize, usize) {
        let (s, p, w, ow) = (self.stride, self.padding, self.width, self.out_width());
        // ox·s + kx ≥ p  and  ox·s + kx − p ≤ w − 1.
        let lo = p.saturating_sub(kx).div_ceil(s);
        let hi = if w + p > kx {
            ((w - 1 + p - kx) / s + 1).min(ow)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Adds the columns' entries back to the input pixels they came from (`xbar` is overwritten).
    fn col2im<T: Float>(&self, gcols: &[T], batch: usize, xbar: &mut [T]) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (h, w) = (self.height, self.width);
        let (oh, ow) = (self.out_height(), self.out_width());
        let pix = oh * ow;
        let bp = batch * pix;
        let time = usize::from(self.time_channel);
        xbar.fill(T::zero());
        for ci in time..self.channels_with_time() {
            let c = ci - time;
            for ky in 0..k {
                for kx in 0..k {
                    let row = ((ci * k + ky) * k + kx) * bp;
                    let (lo, hi) = self.valid_columns(kx);
                    if lo >= hi {
                        continue;
                    }
                    for b in 0..batch {
                        let src = &gcols[row + b * pix..row + (b + 1) * pix];
                        let base = b * self.in_len() + c * h * w;
                        for oy in 0..oh {
                            let sy = (oy * s + ky) as isize - p as isize;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            let first = base + sy as usize * w + lo * s + kx - p;
                            let from = &src[oy * ow + lo..oy * ow + hi];
                            if s == 1 {
                                for (d, &v) in xbar[first..first + (hi - lo)].iter_mut().zip(from) {
                                    *d += v;
                                }
                            } else {
                                for (q, &v) in from.iter().enumerate() {
                                    xbar[first + q * s] += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Work buffers of one [`Conv2d`] for batches of up to `capacity` images; reused across calls
/// (no allocation per call once sized).
#[derive(Debug, Clone, Default)]
pub struct ConvWork<T> {
    /// `cols` of the last forward pass (kept for the VJP).
    cols: Vec<T>,
    /// `C' × B·P` product / permuted cotangent.
    product: Vec<T>,
    /// `K × B·P` column cotangents.
    gcols: Vec<T>,
    /// Batch size of the last forward pass.
    batch: usize,
}

impl<T: Float> ConvWork<T> {
    fn ensure(&mut self, conv: &Conv2d, batch: usize) {
        let bp = batch * conv.out_pixels();
        let need = conv.patch_len() * bp;
        if self.cols.len() < need {
            self.cols.resize(need, T::zero());
        }
        if self.product.len() < conv.out_channels * bp {
            self.product.resize(conv.out_channels * bp, T::zero());
        }
    }

    /// Floats held.
    pub fn floats(&self) -> usize {
        self.cols.len() + self.product.len() + self.gcols.len()
    }
}

impl Conv2d {
    /// `y = conv(x)` for `batch` images; `t` fills the time channel (ignored without one).
    /// Keeps `cols` in `work` for [`Conv2d::vjp`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward<T: Float>(
        &self,
        t: T,
        x: &[T],
        weight: &[T],
        bias: &[T],
        batch: usize,
        work: &mut ConvWork<T>,
        y: &mut [T],
    ) {
        debug_assert_eq!(x.len(), batch * self.in_len());
        debug_assert_eq!(y.len(), batch * self.out_len());
        debug_assert_eq!(weight.len(), self.weight_len());
        work.ensure(self, batch);
        work.batch = batch;
        let (kk, pix) = (self.patch_len(), self.out_pixels());
        let bp = batch * pix;
        let cols = &mut work.cols[..kk * bp];
        self.im2col(t, x, batch, cols);
        let prod = &mut work.product[..self.out_channels * bp];
        gemm(
            prod,
            self.out_channels,
            bp,
            kk,
            nop(weight),
            nop(cols),
            T::one(),
            false,
        );
        for b in 0..batch {
            for (o, &bv) in bias.iter().enumerate() {
                let src = &prod[o * bp + b * pix..o * bp + (b + 1) * pix];
                let dst = &mut y[b * self.out_len() + o * pix..b * self.out_len() + (o + 1) * pix];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s + bv;
                }
            }
        }
    }

    /// The VJP of the last [`Conv2d::forward`] run with `work`: accumulates `W̄t`, `b̄` into
    /// `wbar`, `bbar`, and writes `x̄` when `xbar` is given (skipped for a first layer).
    #[allow(clippy::too_many_arguments)]
    pub fn vjp<T: Float>(
        &self,
        ybar: &[T],
        weight: &[T],
        work: &mut ConvWork<T>,
        xbar: Option<&mut [T]>,
        wbar: &mut [T],
        bbar: &mut [T],
    ) {
        let batch = work.batch;
        debug_assert_eq!(ybar.len(), batch * self.out_len());
        let (kk, pix) = (self.patch_len(), self.out_pixels());
        let bp = batch * pix;
        let prod = &mut work.product[..self.out_channels * bp];
        for b in 0..batch {
            for o in 0..self.out_channels {
                prod[o * bp + b * pix..o * bp + (b + 1) * pix].copy_from_slice(
                    &ybar[b * self.out_len() + o * pix..b * self.out_len() + (o + 1) * pix],
                );
            }
        }
        let cols = &work.cols[..kk * bp];
        gemm(
            wbar,
            self.out_channels,
            kk,
            bp,
            nop(prod),
            top(cols),
            T::one(),
            true,
        );
        for (row, bv) in prod.chunks_exact(bp).zip(bbar.iter_mut()) {
            *bv = row.iter().fold(*bv, |a, &v| a + v);
        }
        if let Some(xbar) = xbar {
            if work.gcols.len() < kk * bp {
                work.gcols.resize(kk * bp, T::zero());
            }
            let gcols = &mut work.gcols[..kk * bp];
            gemm(
                gcols,
                kk,
                bp,
                self.out_channels,
                top(weight),
                nop(prod),
                T::one(),
                false,
            );
            self.col2im(gcols, batch, xbar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defining sum, evaluated directly.
    fn direct(c: &Conv2d, t: f64, x: &[f64], w: &[f64], bias: &[f64], batch: usize) -> Vec<f64> {
        let (oh, ow) = (c.out_height(), c.out_width());
        let cw = c.channels_with_time();
        let mut y = vec![0.0; batch * c.out_len()];
        for b in 0..batch {
            for o in 0..c.out_channels {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut s = bias[o];
                        for ci in 0..cw {
                            for u in 0..c.kernel {
                                for v in 0..c.kernel {
                                    let sy = (c.stride * i + u) as isize - c.padding as isize;
                                    let sx = (c.stride * j + v) as isize - c.padding as isize;
                                    if sy < 0
                                        || sx < 0
                                        || sy >= c.height as isize
                                        || sx >= c.width as isize
                                    {
                                        continue;
                                    }
                                    let xv = if c.time_channel && ci == 0 {
                                        t
                                    } else {
                                        let cc = ci - usize::from(c.time_channel);
                                        x[b * c.in_len()
                                            + (cc * c.height + sy as usize) * c.width
                                            + sx as usize]
                                    };
                                    s += w[((o * cw + ci) * c.kernel + u) * c.kernel + v] * xv;
                                }
                            }
                        }
                        y[b * c.out_len() + (o * oh + i) * ow + j] = s;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::Rng::new(seed);
        (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect()
    }

    fn geometries() -> Vec<Conv2d> {
        let g = |in_channels, out_channels, kernel, stride, padding, height, width, time| Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            height,
            width,
            time_channel: time,
        };
        vec![
            g(1, 3, 3, 1, 0, 7, 6, false),
            g(2, 3, 4, 2, 1, 7, 8, false),
            g(3, 2, 3, 1, 1, 5, 5, true),
            g(2, 2, 1, 1, 0, 3, 4, false),
            g(1, 2, 3, 2, 0, 9, 8, false),
            g(2, 1, 3, 1, 2, 4, 5, true),
            g(1, 1, 5, 3, 2, 7, 6, false),
        ]
    }

    #[test]
    fn forward_matches_the_defining_sum() {
        for (k, c) in geometries().into_iter().enumerate() {
            assert!(c.is_valid());
            let batch = 3;
            let x = values(batch * c.in_len(), 1 + k as u64);
            let w = values(c.weight_len(), 10 + k as u64);
            let bias = values(c.out_channels, 20 + k as u64);
            let mut y = vec![0.0; batch * c.out_len()];
            let mut work = ConvWork::default();
            c.forward(0.7, &x, &w, &bias, batch, &mut work, &mut y);
            let want = direct(&c, 0.7, &x, &w, &bias, batch);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{c:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn vjp_is_the_adjoint_of_the_linear_map() {
        // y is linear in each of x, W, b: Σ ⟨ȳ, y(·+d·) − y⟩ over the three must equal
        // ⟨x̄, dx⟩ + ⟨W̄, dW⟩ + ⟨b̄, db⟩ up to rounding.
        for (k, c) in geometries().into_iter().enumerate() {
            let batch = 2;
            let seed = 100 + 10 * k as u64;
            let x = values(batch * c.in_len(), seed);
            let w = values(c.weight_len(), seed + 1);
            let bias = values(c.out_channels, seed + 2);
            let dx = values(x.len(), seed + 3);
            let dw = values(w.len(), seed + 4);
            let db = values(bias.len(), seed + 5);
            let ybar = values(batch * c.out_len(), seed + 6);
            let plus =
                |a: &[f64], d: &[f64]| a.iter().zip(d).map(|(a, d)| a + d).collect::<Vec<_>>();
            let y0 = direct(&c, 0.3, &x, &w, &bias, batch);
            // One perturbation at a time: y is linear in each of x, W, b separately.
            let ys = [
                direct(&c, 0.3, &plus(&x, &dx), &w, &bias, batch),
                direct(&c, 0.3, &x, &plus(&w, &dw), &bias, batch),
                direct(&c, 0.3, &x, &w, &plus(&bias, &db), batch),
            ];
            let lhs: f64 = ys
                .iter()
                .map(|y1| {
                    ybar.iter()
                        .zip(y1.iter().zip(&y0))
                        .map(|(g, (a, b))| g * (a - b))
                        .sum::<f64>()
                })
                .sum();
            let mut work = ConvWork::default();
            let mut y = vec![0.0; y0.len()];
            c.forward(0.3, &x, &w, &bias, batch, &mut work, &mut y);
            let (mut xbar, mut wbar, mut bbar) = (
                vec![0.0; x.len()],
                vec![0.0; w.len()],
                vec![0.0; bias.len()],
            );
            c.vjp(&ybar, &w, &mut work, Some(&mut xbar), &mut wbar, &mut bbar);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
            let rhs = dot(&xbar, &dx) + dot(&wbar, &dw) + dot(&bbar, &db);
            assert!(
                (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
                "{c:?}: {lhs} vs {rhs}"
            );
        }
    }
}
