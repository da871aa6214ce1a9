//! The convolutional ODE block of torchdiffeq's MNIST example, with hand-written VJPs:
//!
//! ```text
//!     f(t, x) = GN₃(conv₂(t, relu(GN₂(conv₁(t, relu(GN₁(x)))))))
//! ```
//!
//! on a batch of images `x (B × C × H × W)`, row-major, where
//!
//! * `conv(t, x)` is `ConcatConv2d`: a 3×3 convolution, stride 1, zero padding 1, of the input
//!   with the constant channel `t` prepended (`C + 1 → C` channels), weight `[C, C + 1, 3, 3]`,
//!   bias `[C]`; computed as `W · im2col(x)` per image. Its VJP: `W̄ = Σ ȳ colsᵀ`, `b̄ = Σ ȳ`,
//!   `x̄ = col2im(Wᵀ ȳ)` (the time channel's cotangent is dropped: `t` is not trained);
//! * `GN` is group normalization with `G = min(32, C)` groups, `ε = 1e−5`, affine `γ, β`:
//!   `x̂ = (x − μ_g)/√(σ²_g + ε)`, `y = γ_c x̂ + β_c`; its VJP per group with `n` elements,
//!   `u = ȳ γ_c`: `x̄ = (u − mean(u) − x̂ · mean(u x̂)) / √(σ²_g + ε)`, `γ̄_c = Σ ȳ x̂`, `β̄_c = Σ ȳ`;
//! * `relu(x) = max(x, 0)`.
//!
//! Parameter names follow torchdiffeq's `ODEfunc`: `norm1.weight`, `norm1.bias`,
//! `conv1._layer.weight`, `conv1._layer.bias`, `norm2.*`, `conv2._layer.*`, `norm3.*`.

use crate::gemm::{gemm, n as nop, t as top};
use crate::params::ParamLayout;
use crate::rng::Rng;
use crate::{Float, NnError, Result};
use adjoint::Vjp;
use rk::Rhs;
use std::ops::Range;

const EPS: f64 = 1e-5;

/// Shape of one image batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl Shape {
    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    fn len(&self) -> usize {
        self.b * self.image()
    }
}

/// Saved values of one group normalization.
#[derive(Debug, Clone, Default)]
struct NormCache<T> {
    xhat: Vec<T>,
    inv_std: Vec<T>,
}

/// torchdiffeq's MNIST ODE block as a right-hand side with VJP.
#[derive(Debug, Clone)]
pub struct ConvOdeFunc<T> {
    shape: Shape,
    groups: usize,
    /// Tensors in order: norm1 γ, β; conv1 W, b; norm2 γ, β; conv2 W, b; norm3 γ, β.
    layout: ParamLayout,
    // Forward caches: inputs of every stage.
    n1: NormCache<T>,
    r1: Vec<T>,
    c1: Vec<T>,
    n2: NormCache<T>,
    r2: Vec<T>,
    c2: Vec<T>,
    n3: NormCache<T>,
    cols1: Vec<T>,
    cols2: Vec<T>,
    scratch: Vec<T>,
    grad_cols: Vec<T>,
    bar_a: Vec<T>,
    bar_b: Vec<T>,
}

impl<T: Float> ConvOdeFunc<T> {
    /// The block for batches of `batch` images with `channels` channels of `height × width`.
    pub fn new(batch: usize, channels: usize, height: usize, width: usize) -> Result<Self> {
        if batch == 0 || channels == 0 || height == 0 || width == 0 {
            return Err(NnError::Invalid {
                name: "conv block shape".into(),
                reason: format!(
                    "all of batch, channels, height, width must be >= 1, got {batch}×{channels}×{height}×{width}"
                ),
            });
        }
        let c = channels;
        let mut layout = ParamLayout::default();
        for (name, shape) in [
            ("norm1.weight", vec![c]),
            ("norm1.bias", vec![c]),
            ("conv1._layer.weight", vec![c, c + 1, 3, 3]),
            ("conv1._layer.bias", vec![c]),
            ("norm2.weight", vec![c]),
            ("norm2.bias", vec![c]),
            ("conv2._layer.weight", vec![c, c + 1, 3, 3]),
            ("conv2._layer.bias", vec![c]),
            ("norm3.weight", vec![c]),
            ("norm3.bias", vec![c]),
        ] {
            layout.push(name, &shape);
        }
        let shape = Shape {
            b: batch,
            c,
            h: height,
            w: width,
        };
        let n = shape.len();
        let z = T::zero();
        let cols = (c + 1) * 9 * height * width;
        Ok(Self {
            shape,
            groups: c.min(32),
            layout,
            n1: NormCache::default(),
            r1: vec![z; n],
            c1: vec![z; n],
            n2: NormCache::default(),
            r2: vec![z; n],
            c2: vec![z; n],
            n3: NormCache::default(),
            cols1: vec![z; batch * cols],
            cols2: vec![z; batch * cols],
            scratch: vec![z; n],
            grad_cols: vec![z; cols],
            bar_a: vec![z; n],
            bar_b: vec![z; n],
        })
    }

    /// The parameter layout (torchdiffeq names).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// PyTorch's defaults: group-norm `γ = 1`, `β = 0`; convolutions uniform in `±1/√fan_in`
    /// with `fan_in = 9 (C + 1)`.
    pub fn init_params(&self, rng: &mut Rng) -> Vec<T> {
        let mut p = vec![T::zero(); self.layout.len()];
        let bound = 1.0 / ((9 * (self.shape.c + 1)) as f64).sqrt();
        for e in self.layout.entries() {
            for v in &mut p[e.range()] {
                *v = if e.name.starts_with("norm") {
                    <T as rk::Scalar>::of(if e.name.ends_with("weight") { 1.0 } else { 0.0 })
                } else {
                    <T as rk::Scalar>::of(rng.uniform_in(-bound, bound))
                };
            }
        }
        p
    }

    fn slice<'a>(&self, p: &'a [T], k: usize) -> &'a [T] {
        let e = &self.layout.entries()[k];
        &p[e.range()]
    }

    fn forward(&mut self, t: T, x: &[T], p: &[T], out: &mut [T]) {
        let s = self.shape;
        let g = self.groups;
        let mut tmp = std::mem::take(&mut self.scratch);
        group_norm(
            x,
            self.slice(p, 0),
            self.slice(p, 1),
            s,
            g,
            &mut tmp,
            &mut self.n1,
        );
        relu(&tmp, &mut self.r1);
        conv(
            t,
            &self.r1,
            self.slice(p, 2),
            self.slice(p, 3),
            s,
            &mut self.cols1,
            &mut self.c1,
        );
        group_norm(
            &self.c1,
            self.slice(p, 4),
            self.slice(p, 5),
            s,
            g,
            &mut tmp,
            &mut self.n2,
        );
        relu(&tmp, &mut self.r2);
        conv(
            t,
            &self.r2,
            self.slice(p, 6),
            self.slice(p, 7),
            s,
            &mut self.cols2,
            &mut self.c2,
        );
        group_norm(
            &self.c2,
            self.slice(p, 8),
            self.slice(p, 9),
            s,
            g,
            out,
            &mut self.n3,
        );
        self.scratch = tmp;
    }

    fn backward(&mut self, p: &[T], ybar: &[T], xbar: &mut [T], pbar: &mut [T]) {
        let s = self.shape;
        let g = self.groups;
        pbar.fill(T::zero());
        let r = |k: usize, layout: &ParamLayout| layout.entries()[k].range();
        let (mut a, mut b) = (
            std::mem::take(&mut self.bar_a),
            std::mem::take(&mut self.bar_b),
        );
        // norm3
        let (gw, gb) = split2(pbar, r(8, &self.layout), r(9, &self.layout));
        group_norm_vjp(ybar, self.slice(p, 8), &self.n3, s, g, &mut a, gw, gb);
        // conv2
        let (gw, gb) = split2(pbar, r(6, &self.layout), r(7, &self.layout));
        conv_vjp(
            &a,
            self.slice(p, 6),
            &self.cols2,
            s,
            &mut self.grad_cols,
            &mut b,
            gw,
            gb,
        );
        // relu2
        relu_vjp(&self.r2, &mut b);
        // norm2
        let (gw, gb) = split2(pbar, r(4, &self.layout), r(5, &self.layout));
        group_norm_vjp(&b, self.slice(p, 4), &self.n2, s, g, &mut a, gw, gb);
        // conv1
        let (gw, gb) = split2(pbar, r(2, &self.layout), r(3, &self.layout));
        conv_vjp(
            &a,
            self.slice(p, 2),
            &self.cols1,
            s,
            &mut self.grad_cols,
            &mut b,
            gw,
            gb,
        );
        relu_vjp(&self.r1, &mut b);
        let (gw, gb) = split2(pbar, r(0, &self.layout), r(1, &self.layout));
        group_norm_vjp(&b, self.slice(p, 0), &self.n1, s, g, xbar, gw, gb);
        self.bar_a = a;
        self.bar_b = b;
    }
}

/// Two disjoint mutable ranges of one slice (`a` before `b`).
fn split2<T>(p: &mut [T], a: Range<usize>, b: Range<usize>) -> (&mut [T], &mut [T]) {
    debug_assert!(a.end <= b.start);
    let (head, tail) = p.split_at_mut(b.start);
    (&mut head[a], &mut tail[..b.end - b.start])
}

fn relu<T: Float>(x: &[T], y: &mut [T]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.max(T::zero());
    }
}

/// In place: `g ← g · [y > 0]` where `y` is the ReLU output.
fn relu_vjp<T: Float>(y: &[T], g: &mut [T]) {
    for (gv, &yv) in g.iter_mut().zip(y) {
        if yv <= T::zero() {
            *gv = T::zero();
        }
    }
}

fn group_norm<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    s: Shape,
    groups: usize,
    y: &mut [T],
    cache: &mut NormCache<T>,
) {
    let hw = s.h * s.w;
    let cg = s.c / groups;
    let n = cg * hw;
    let nf = <T as rk::Scalar>::of(n as f64);
    cache.xhat.resize(x.len(), T::zero());
    cache.inv_std.resize(s.b * groups, T::zero());
    for bi in 0..s.b {
        for gi in 0..groups {
            let start = bi * s.image() + gi * n;
            let xs = &x[start..start + n];
            let mean = xs.iter().fold(T::zero(), |a, &v| a + v) / nf;
            let var = xs
                .iter()
                .fold(T::zero(), |a, &v| a + (v - mean) * (v - mean))
                / nf;
            let inv = T::one() / (var + <T as rk::Scalar>::of(EPS)).sqrt();
            cache.inv_std[bi * groups + gi] = inv;
            for (k, &v) in xs.iter().enumerate() {
                let c = gi * cg + k / hw;
                let xh = (v - mean) * inv;
                cache.xhat[start + k] = xh;
                y[start + k] = gamma[c] * xh + beta[c];
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn group_norm_vjp<T: Float>(
    ybar: &[T],
    gamma: &[T],
    cache: &NormCache<T>,
    s: Shape,
    groups: usize,
    xbar: &mut [T],
    gbar: &mut [T],
    bbar: &mut [T],
) {
    let hw = s.h * s.w;
    let cg = s.c / groups;
    let n = cg * hw;
    let nf = <T as rk::Scalar>::of(n as f64);
    for bi in 0..s.b {
        for gi in 0..groups {
            let start = bi * s.image() + gi * n;
            let inv = cache.inv_std[bi * groups + gi];
            let (mut mu, mut mux) = (T::zero(), T::zero());
            for k in 0..n {
                let c = gi * cg + k / hw;
                let u = ybar[start + k] * gamma[c];
                let xh = cache.xhat[start + k];
                mu += u;
                mux += u * xh;
                gbar[c] += ybar[start + k] * xh;
                bbar[c] += ybar[start + k];
            }
            mu /= nf;
            mux /= nf;
            for k in 0..n {
                let c = gi * cg + k / hw;
                let u = ybar[start + k] * gamma[c];
                xbar[start + k] = (u - mu - cache.xhat[start + k] * mux) * inv;
            }
        }
    }
}

/// `im2col` of `[t; x]` for one image: rows `(channel, ky, kx)`, columns pixels.
fn im2col<T: Float>(t: T, x: &[T], c: usize, h: usize, w: usize, cols: &mut [T]) {
    let hw = h * w;
    for ci in 0..=c {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = (ci * 9 + ky * 3 + kx) * hw;
                for y in 0..h {
                    for xx in 0..w {
                        let (sy, sx) = (y + ky, xx + kx);
                        let inside = sy >= 1 && sy <= h && sx >= 1 && sx <= w;
                        cols[row + y * w + xx] = if !inside {
                            T::zero()
                        } else if ci == 0 {
                            t
                        } else {
                            x[(ci - 1) * hw + (sy - 1) * w + (sx - 1)]
                        };
                    }
                }
            }
        }
    }
}

fn conv<T: Float>(t: T, x: &[T], weight: &[T], bias: &[T], s: Shape, cols: &mut [T], y: &mut [T]) {
    let hw = s.h * s.w;
    let k = (s.c + 1) * 9;
    for bi in 0..s.b {
        let xb = &x[bi * s.image()..(bi + 1) * s.image()];
        let cb = &mut cols[bi * k * hw..(bi + 1) * k * hw];
        im2col(t, xb, s.c, s.h, s.w, cb);
        let yb = &mut y[bi * s.image()..(bi + 1) * s.image()];
        gemm(yb, s.c, hw, k, nop(weight), nop(cb), T::one(), false);
        for (row, &bv) in yb.chunks_exact_mut(hw).zip(bias) {
            for v in row.iter_mut() {
                *v += bv;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_vjp<T: Float>(
    ybar: &[T],
    weight: &[T],
    cols: &[T],
    s: Shape,
    grad_cols: &mut [T],
    xbar: &mut [T],
    wbar: &mut [T],
    bbar: &mut [T],
) {
    let hw = s.h * s.w;
    let k = (s.c + 1) * 9;
    for bi in 0..s.b {
        let yb = &ybar[bi * s.image()..(bi + 1) * s.image()];
        let cb = &cols[bi * k * hw..(bi + 1) * k * hw];
        gemm(wbar, s.c, k, hw, nop(yb), top(cb), T::one(), true);
        for (row, bv) in yb.chunks_exact(hw).zip(bbar.iter_mut()) {
            *bv = row.iter().fold(*bv, |a, &v| a + v);
        }
        gemm(grad_cols, k, hw, s.c, top(weight), nop(yb), T::one(), false);
        // col2im, skipping the time channel (ci = 0).
        let xb = &mut xbar[bi * s.image()..(bi + 1) * s.image()];
        xb.fill(T::zero());
        for ci in 1..=s.c {
            for ky in 0..3 {
                for kx in 0..3 {
                    let row = (ci * 9 + ky * 3 + kx) * hw;
                    for y in 0..s.h {
                        for xx in 0..s.w {
                            let (sy, sx) = (y + ky, xx + kx);
                            if sy >= 1 && sy <= s.h && sx >= 1 && sx <= s.w {
                                let dst = (ci - 1) * hw + (sy - 1) * s.w + (sx - 1);
                                xb[dst] += grad_cols[row + y * s.w + xx];
                            }
                        }
                    }
                }
            }
        }
    }
}

impl<T: Float> Rhs<Vec<T>> for ConvOdeFunc<T> {
    fn eval(&mut self, t: T, x: &Vec<T>, p: &Vec<T>, dx: &mut Vec<T>) {
        self.forward(t, x, p, dx);
    }
}

impl<T: Float> Vjp<T> for ConvOdeFunc<T> {
    fn state_len(&self) -> usize {
        self.shape.len()
    }
    fn param_len(&self) -> usize {
        self.layout.len()
    }
    fn vjp(
        &mut self,
        t: T,
        x: &[T],
        p: &[T],
        a: &[T],
        value: Option<&mut [T]>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    ) {
        let mut out = std::mem::take(&mut self.bar_b);
        self.forward(t, x, p, &mut out);
        if let Some(v) = value {
            v.copy_from_slice(&out);
        }
        self.bar_b = out;
        self.backward(p, a, adj_z, adj_p);
    }
    fn param_groups(&self) -> Vec<Range<usize>> {
        self.layout.groups()
    }
}
