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
//!   bias `[C]`; computed for the whole batch as one product `W · im2col(x)` ([`crate::conv2d`]
//!   states it and its VJP; the time channel's cotangent is dropped: `t` is not trained);
//! * `GN` is group normalization with `G = min(32, C)` groups, `ε = 1e−5`, affine `γ, β`:
//!   `x̂ = (x − μ_g)/√(σ²_g + ε)`, `y = γ_c x̂ + β_c` ([`crate::norm`] states its VJP);
//! * `relu(x) = max(x, 0)`.
//!
//! Parameter names follow torchdiffeq's `ODEfunc`: `norm1.weight`, `norm1.bias`,
//! `conv1._layer.weight`, `conv1._layer.bias`, `norm2.*`, `conv2._layer.*`, `norm3.*`.

use crate::conv2d::{Conv2d, ConvWork};
use crate::norm::{GroupNorm, NormCache, relu, relu_vjp};
use crate::params::ParamLayout;
use crate::rng::Rng;
use crate::{Float, NnError, Result};
use adjoint::Vjp;
use rk::Rhs;
use std::ops::Range;

/// torchdiffeq's MNIST ODE block as a right-hand side with VJP, for batches of a settable size.
#[derive(Debug, Clone)]
pub struct ConvOdeFunc<T> {
    batch: usize,
    conv: Conv2d,
    norm: GroupNorm,
    /// Tensors in order: norm1 γ, β; conv1 W, b; norm2 γ, β; conv2 W, b; norm3 γ, β.
    layout: ParamLayout,
    // Forward caches: inputs of every stage.
    n1: NormCache<T>,
    r1: Vec<T>,
    w1: ConvWork<T>,
    c1: Vec<T>,
    n2: NormCache<T>,
    r2: Vec<T>,
    w2: ConvWork<T>,
    c2: Vec<T>,
    n3: NormCache<T>,
    scratch: Vec<T>,
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
        let conv = Conv2d {
            in_channels: c,
            out_channels: c,
            kernel: 3,
            stride: 1,
            padding: 1,
            height,
            width,
            time_channel: true,
        };
        let mut layout = ParamLayout::default();
        for (name, shape) in [
            ("norm1.weight", vec![c]),
            ("norm1.bias", vec![c]),
            ("conv1._layer.weight", conv.weight_shape().to_vec()),
            ("conv1._layer.bias", vec![c]),
            ("norm2.weight", vec![c]),
            ("norm2.bias", vec![c]),
            ("conv2._layer.weight", conv.weight_shape().to_vec()),
            ("conv2._layer.bias", vec![c]),
            ("norm3.weight", vec![c]),
            ("norm3.bias", vec![c]),
        ] {
            layout.push(name, &shape);
        }
        let mut f = Self {
            batch: 0,
            conv,
            norm: GroupNorm::torchdiffeq(c, height * width),
            layout,
            n1: NormCache::default(),
            r1: Vec::new(),
            w1: ConvWork::default(),
            c1: Vec::new(),
            n2: NormCache::default(),
            r2: Vec::new(),
            w2: ConvWork::default(),
            c2: Vec::new(),
            n3: NormCache::default(),
            scratch: Vec::new(),
            bar_a: Vec::new(),
            bar_b: Vec::new(),
        };
        f.set_batch(batch)?;
        Ok(f)
    }

    /// Changes the batch size (the state length becomes `batch · C·H·W`); buffers grow as
    /// needed and are kept.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(NnError::Invalid {
                name: "conv block batch".into(),
                reason: "must be >= 1".into(),
            });
        }
        self.batch = batch;
        let n = batch * self.conv.in_len();
        for v in [
            &mut self.r1,
            &mut self.c1,
            &mut self.r2,
            &mut self.c2,
            &mut self.scratch,
            &mut self.bar_a,
            &mut self.bar_b,
        ] {
            v.resize(n, T::zero());
        }
        Ok(())
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The parameter layout (torchdiffeq names).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// FLOPs of the two convolutions of one evaluation for one image (the matrix products; the
    /// norms and ReLUs are `O(C·H·W)`). A VJP costs three times this: the forward pass again,
    /// then `W̄` and `x̄` products of the same size.
    pub fn flops_per_image(&self) -> usize {
        2 * self.conv.flops_per_image()
    }

    /// PyTorch's defaults: group-norm `γ = 1`, `β = 0`; convolutions uniform in `±1/√fan_in`
    /// with `fan_in = 9 (C + 1)`.
    pub fn init_params(&self, rng: &mut Rng) -> Vec<T> {
        let mut p = vec![T::zero(); self.layout.len()];
        let bound = 1.0 / (self.conv.patch_len() as f64).sqrt();
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
        let (b, conv, norm) = (self.batch, self.conv, self.norm);
        let mut tmp = std::mem::take(&mut self.scratch);
        norm.forward(
            x,
            self.slice(p, 0),
            self.slice(p, 1),
            &mut tmp,
            &mut self.n1,
        );
        relu(&tmp, &mut self.r1);
        conv.forward(
            t,
            &self.r1,
            self.slice(p, 2),
            self.slice(p, 3),
            b,
            &mut self.w1,
            &mut self.c1,
        );
        norm.forward(
            &self.c1,
            self.slice(p, 4),
            self.slice(p, 5),
            &mut tmp,
            &mut self.n2,
        );
        relu(&tmp, &mut self.r2);
        conv.forward(
            t,
            &self.r2,
            self.slice(p, 6),
            self.slice(p, 7),
            b,
            &mut self.w2,
            &mut self.c2,
        );
        norm.forward(
            &self.c2,
            self.slice(p, 8),
            self.slice(p, 9),
            out,
            &mut self.n3,
        );
        self.scratch = tmp;
    }

    fn backward(&mut self, p: &[T], ybar: &[T], xbar: &mut [T], pbar: &mut [T]) {
        let (conv, norm) = (self.conv, self.norm);
        pbar.fill(T::zero());
        let r = |k: usize, layout: &ParamLayout| layout.entries()[k].range();
        let (mut a, mut b) = (
            std::mem::take(&mut self.bar_a),
            std::mem::take(&mut self.bar_b),
        );
        let (gw, gb) = split2(pbar, r(8, &self.layout), r(9, &self.layout));
        norm.vjp(ybar, self.slice(p, 8), &self.n3, &mut a, gw, gb);
        let (gw, gb) = split2(pbar, r(6, &self.layout), r(7, &self.layout));
        conv.vjp(&a, self.slice(p, 6), &mut self.w2, Some(&mut b), gw, gb);
        relu_vjp(&self.r2, &mut b);
        let (gw, gb) = split2(pbar, r(4, &self.layout), r(5, &self.layout));
        norm.vjp(&b, self.slice(p, 4), &self.n2, &mut a, gw, gb);
        let (gw, gb) = split2(pbar, r(2, &self.layout), r(3, &self.layout));
        conv.vjp(&a, self.slice(p, 2), &mut self.w1, Some(&mut b), gw, gb);
        relu_vjp(&self.r1, &mut b);
        let (gw, gb) = split2(pbar, r(0, &self.layout), r(1, &self.layout));
        norm.vjp(&b, self.slice(p, 0), &self.n1, xbar, gw, gb);
        self.bar_a = a;
        self.bar_b = b;
    }
}

/// Two disjoint mutable ranges of one slice (`a` before `b`).
pub(crate) fn split2<T>(p: &mut [T], a: Range<usize>, b: Range<usize>) -> (&mut [T], &mut [T]) {
    debug_assert!(a.end <= b.start);
    let (head, tail) = p.split_at_mut(b.start);
    (&mut head[a], &mut tail[..b.end - b.start])
}

impl<T: Float> Rhs<Vec<T>> for ConvOdeFunc<T> {
    fn eval(&mut self, t: T, x: &Vec<T>, p: &Vec<T>, dx: &mut Vec<T>) {
        self.forward(t, x, p, dx);
    }
}

impl<T: Float> Vjp<T> for ConvOdeFunc<T> {
    fn state_len(&self) -> usize {
        self.batch * self.conv.in_len()
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
