//! An image classifier with one ODE block: torchdiffeq's `odenet_mnist` (the paper's §4.3 model
//! family), trained through any gradient method of the `adjoint` crate.
//!
//! For `28 × 28` grayscale images and width `C`:
//!
//! ```text
//!     stem:  conv 3×3 (1 → C) → GN → ReLU → conv 4×4/2 pad 1 → GN → ReLU → conv 4×4/2 pad 1
//!            28×28 → 26×26 → 13×13 → 6×6                                         (h₀, B×C×6×6)
//!     ODE:   h₁ = h₀ + ∫₀¹ f(t, h(t)) dt,  f = ConvOdeFunc (GN, ReLU, ConcatConv 3×3, twice, GN)
//!     head:  GN → ReLU → global average pool → linear (C → 10) → logits ℓ
//!     loss:  L = (1/B) Σ_b [log Σ_k exp ℓ_bk − ℓ_b,y_b]                    (softmax cross-entropy)
//! ```
//!
//! The backward pass runs the head's VJP (`∂L/∂ℓ = (softmax(ℓ) − onehot(y))/B`, the pool spreads
//! `1/P` to each pixel), hands `∂L/∂h₁` to the chosen adjoint method, which returns `∂L/∂h₀` and
//! the ODE block's parameter gradient, then runs the stem's VJP. Parameter names follow the
//! `nn.Sequential` of torchdiffeq's example (`0.weight` … `7.odefunc.norm1.weight` … `12.bias`).

use crate::Float;
use crate::conv::{ConvOdeFunc, split2};
use crate::conv2d::{Conv2d, ConvWork};
use crate::error::{NnError, Result, check_finite, shape_err};
use crate::norm::{GroupNorm, NormCache, relu_in_place, relu_vjp};
use crate::optim::Optimizer;
use crate::params::ParamLayout;
use crate::rng::Rng;
use adjoint::{Config, Info, Method};
use std::ops::Range;

/// Input image side (pixels).
pub const IMAGE_SIDE: usize = 28;
/// Number of classes.
pub const CLASSES: usize = 10;

/// Loss, accuracy and solver counts of one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Correctly classified images (arg-max of the logits).
    pub correct: usize,
    /// Images in the batch.
    pub images: usize,
    /// Counts and memory of the ODE block's forward (and backward, when a gradient was taken)
    /// solves.
    pub info: Info,
}

/// The classifier's shapes, work buffers and ODE block. Parameters live outside, in one flat
/// vector laid out by [`OdeClassifier::layout`].
#[derive(Debug, Clone)]
pub struct OdeClassifier<T> {
    channels: usize,
    batch: usize,
    stem: [Conv2d; 3],
    stem_norm: [GroupNorm; 2],
    head_norm: GroupNorm,
    layout: ParamLayout,
    ode_range: Range<usize>,
    ode: ConvOdeFunc<T>,
    work: [ConvWork<T>; 3],
    // Stem activations: conv outputs, norm caches, ReLU outputs.
    a0: Vec<T>,
    n0: NormCache<T>,
    r0: Vec<T>,
    a1: Vec<T>,
    n1: NormCache<T>,
    r1: Vec<T>,
    h0: Vec<T>,
    // Head activations.
    hn: NormCache<T>,
    hr: Vec<T>,
    pooled: Vec<T>,
    logits: Vec<T>,
    // Cotangent scratch.
    g_big: Vec<T>,
    g_mid: Vec<T>,
    g_h: Vec<T>,
    t_mid: Vec<T>,
    t_big: Vec<T>,
}

fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    side: usize,
) -> Conv2d {
    Conv2d {
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
        height: side,
        width: side,
        time_channel: false,
    }
}

impl<T: Float> OdeClassifier<T> {
    /// The model of width `channels` for batches of `batch` images.
    pub fn new(channels: usize, batch: usize) -> Result<Self> {
        if channels == 0 {
            return Err(NnError::Invalid {
                name: "classifier width".into(),
                reason: "channels must be >= 1".into(),
            });
        }
        let c = channels;
        let c0 = conv(1, c, 3, 1, 0, IMAGE_SIDE);
        let c1 = conv(c, c, 4, 2, 1, c0.out_height());
        let c2 = conv(c, c, 4, 2, 1, c1.out_height());
        let side = c2.out_height();
        let ode = ConvOdeFunc::new(batch.max(1), c, side, side)?;
        let mut layout = ParamLayout::default();
        layout.push("0.weight", &c0.weight_shape());
        layout.push("0.bias", &[c]);
        layout.push("1.weight", &[c]);
        layout.push("1.bias", &[c]);
        layout.push("3.weight", &c1.weight_shape());
        layout.push("3.bias", &[c]);
        layout.push("4.weight", &[c]);
        layout.push("4.bias", &[c]);
        layout.push("6.weight", &c2.weight_shape());
        layout.push("6.bias", &[c]);
        let ode_start = layout.len();
        for e in ode.layout().with_prefix("7.odefunc").entries() {
            layout.push(e.name.clone(), &e.shape);
        }
        let ode_range = ode_start..layout.len();
        layout.push("8.weight", &[c]);
        layout.push("8.bias", &[c]);
        layout.push("12.weight", &[CLASSES, c]);
        layout.push("12.bias", &[CLASSES]);
        let mut model = Self {
            channels: c,
            batch: 0,
            stem: [c0, c1, c2],
            stem_norm: [
                GroupNorm::torchdiffeq(c, c0.out_pixels()),
                GroupNorm::torchdiffeq(c, c1.out_pixels()),
            ],
            head_norm: GroupNorm::torchdiffeq(c, c2.out_pixels()),
            layout,
            ode_range,
            ode,
            work: Default::default(),
            a0: Vec::new(),
            n0: NormCache::default(),
            r0: Vec::new(),
            a1: Vec::new(),
            n1: NormCache::default(),
            r1: Vec::new(),
            h0: Vec::new(),
            hn: NormCache::default(),
            hr: Vec::new(),
            pooled: Vec::new(),
            logits: Vec::new(),
            g_big: Vec::new(),
            g_mid: Vec::new(),
            g_h: Vec::new(),
            t_mid: Vec::new(),
            t_big: Vec::new(),
        };
        model.set_batch(batch)?;
        Ok(model)
    }

    /// Changes the batch size; buffers grow as needed and are kept.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(NnError::Invalid {
                name: "classifier batch".into(),
                reason: "must be >= 1".into(),
            });
        }
        self.batch = batch;
        self.ode.set_batch(batch)?;
        let [c0, c1, c2] = self.stem;
        let z = T::zero();
        self.a0.resize(batch * c0.out_len(), z);
        self.r0.resize(batch * c0.out_len(), z);
        self.g_big.resize(batch * c0.out_len(), z);
        self.a1.resize(batch * c1.out_len(), z);
        self.r1.resize(batch * c1.out_len(), z);
        self.g_mid.resize(batch * c1.out_len(), z);
        self.h0.resize(batch * c2.out_len(), z);
        self.hr.resize(batch * c2.out_len(), z);
        self.g_h.resize(batch * c2.out_len(), z);
        self.pooled.resize(batch * self.channels, z);
        self.logits.resize(batch * CLASSES, z);
        Ok(())
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The parameter layout (torchdiffeq `odenet_mnist` names).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Where the ODE block's parameters sit in the flat vector.
    pub fn ode_params(&self) -> Range<usize> {
        self.ode_range.clone()
    }

    /// The ODE block.
    pub fn ode_block(&self) -> &ConvOdeFunc<T> {
        &self.ode
    }

    /// PyTorch's default initialization: convolution and linear weights and biases uniform in
    /// `±1/√fan_in`, group norms `γ = 1`, `β = 0`.
    pub fn init_params(&self, rng: &mut Rng) -> Vec<T> {
        let mut p = vec![T::zero(); self.layout.len()];
        let ode_init = self.ode.init_params(rng);
        p[self.ode_range.clone()].copy_from_slice(&ode_init);
        let of = <T as rk::Scalar>::of;
        let fan_in = |name: &str| -> Option<usize> {
            let s = &self.layout.get(name)?.shape;
            Some(s[1..].iter().product())
        };
        for e in self.layout.entries() {
            if e.name.starts_with("7.") {
                continue;
            }
            let layer = e.name.split('.').next().unwrap_or_default();
            let is_norm = matches!(layer, "1" | "4" | "8");
            for v in &mut p[e.range()] {
                *v = if is_norm {
                    of(if e.name.ends_with("weight") { 1.0 } else { 0.0 })
                } else {
                    let bound =
                        1.0 / (fan_in(&format!("{layer}.weight")).unwrap_or(1) as f64).sqrt();
                    of(rng.uniform_in(-bound, bound))
                };
            }
        }
        p
    }

    fn param<'a>(&self, p: &'a [T], name: &str) -> &'a [T] {
        let e = self.layout.get(name).expect("layout names are fixed");
        &p[e.range()]
    }

    fn check_batch(&self, params: &[T], images: &[T], labels: &[u8]) -> Result<()> {
        if params.len() != self.layout.len() {
            return Err(shape_err(
                "classifier parameters",
                self.layout.len(),
                params.len(),
            ));
        }
        let per = IMAGE_SIDE * IMAGE_SIDE;
        if labels.len() != self.batch || images.len() != self.batch * per {
            return Err(shape_err(
                "classifier batch (images, labels)",
                format!("({}, {})", self.batch * per, self.batch),
                format!("({}, {})", images.len(), labels.len()),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| usize::from(l) >= CLASSES) {
            return Err(NnError::Invalid {
                name: "label".into(),
                reason: format!("label {} at index {i} is not below {CLASSES}", labels[i]),
            });
        }
        check_finite("classifier parameters", params)?;
        check_finite("images", images)
    }

    /// Stem: images → `h₀` (kept in `self.h0`).
    fn stem_forward(&mut self, p: &[T], images: &[T]) {
        let b = self.batch;
        let [c0, c1, c2] = self.stem;
        let z = T::zero();
        let w0 = self.param(p, "0.weight");
        let b0 = self.param(p, "0.bias");
        c0.forward(z, images, w0, b0, b, &mut self.work[0], &mut self.a0);
        let (g, be) = (self.param(p, "1.weight"), self.param(p, "1.bias"));
        self.stem_norm[0].forward(&self.a0, g, be, &mut self.r0, &mut self.n0);
        relu_in_place(&mut self.r0);
        let (w1, b1) = (self.param(p, "3.weight"), self.param(p, "3.bias"));
        c1.forward(z, &self.r0, w1, b1, b, &mut self.work[1], &mut self.a1);
        let (g, be) = (self.param(p, "4.weight"), self.param(p, "4.bias"));
        self.stem_norm[1].forward(&self.a1, g, be, &mut self.r1, &mut self.n1);
        relu_in_place(&mut self.r1);
        let (w2, b2) = (self.param(p, "6.weight"), self.param(p, "6.bias"));
        c2.forward(z, &self.r1, w2, b2, b, &mut self.work[2], &mut self.h0);
    }

    /// Head on `h₁`: logits, mean loss and correct count.
    fn head_forward(&mut self, p: &[T], h1: &[T], labels: &[u8]) -> (f64, usize) {
        let (g, be) = (self.param(p, "8.weight"), self.param(p, "8.bias"));
        self.head_norm
            .forward(h1, g, be, &mut self.hr, &mut self.hn);
        relu_in_place(&mut self.hr);
        let pix = self.head_norm.pixels;
        let inv = <T as rk::Scalar>::of(1.0 / pix as f64);
        for (o, ch) in self.pooled.iter_mut().zip(self.hr.chunks_exact(pix)) {
            *o = ch.iter().fold(T::zero(), |a, &v| a + v) * inv;
        }
        let (w, bias) = (self.param(p, "12.weight"), self.param(p, "12.bias"));
        let c = self.channels;
        let (mut loss, mut correct) = (0.0, 0);
        for (bi, &label) in labels.iter().enumerate() {
            let x = &self.pooled[bi * c..(bi + 1) * c];
            let row = &mut self.logits[bi * CLASSES..(bi + 1) * CLASSES];
            for (k, l) in row.iter_mut().enumerate() {
                *l = w[k * c..(k + 1) * c]
                    .iter()
                    .zip(x)
                    .fold(bias[k], |a, (&wv, &xv)| a + wv * xv);
            }
            let (lse, arg) = log_sum_exp_argmax(row);
            loss += lse - <T as rk::Scalar>::as_f64(row[usize::from(label)]);
            correct += usize::from(arg == usize::from(label));
        }
        (loss / labels.len() as f64, correct)
    }

    /// Head VJP: `∂L/∂h₁` into `self.g_h`, head parameter gradients into `grad`.
    fn head_backward(&mut self, p: &[T], labels: &[u8], grad: &mut [T]) {
        let c = self.channels;
        let b = self.batch;
        let of = <T as rk::Scalar>::of;
        let scale = 1.0 / b as f64;
        let w = self.param(p, "12.weight");
        let wr = self.layout.get("12.weight").expect("fixed").range();
        let br = self.layout.get("12.bias").expect("fixed").range();
        let pix = self.head_norm.pixels;
        let inv_pix = of(1.0 / pix as f64);
        let mut dpooled = vec![T::zero(); c];
        for (bi, &label) in labels.iter().enumerate() {
            let row = &self.logits[bi * CLASSES..(bi + 1) * CLASSES];
            let (lse, _) = log_sum_exp_argmax(row);
            dpooled.fill(T::zero());
            for k in 0..CLASSES {
                let prob = (<T as rk::Scalar>::as_f64(row[k]) - lse).exp();
                let dl = of((prob - if k == usize::from(label) { 1.0 } else { 0.0 }) * scale);
                grad[br.start + k] += dl;
                let x = &self.pooled[bi * c..(bi + 1) * c];
                for j in 0..c {
                    grad[wr.start + k * c + j] += dl * x[j];
                    dpooled[j] += dl * w[k * c + j];
                }
            }
            let image = &mut self.g_h[bi * c * pix..(bi + 1) * c * pix];
            for (dst, &d) in image.chunks_exact_mut(pix).zip(&dpooled) {
                dst.fill(d * inv_pix);
            }
        }
        relu_vjp(&self.hr, &mut self.g_h);
        let gamma = self.param(p, "8.weight");
        let (gr, br) = (
            self.layout.get("8.weight").expect("fixed").range(),
            self.layout.get("8.bias").expect("fixed").range(),
        );
        let (gg, gb) = split2(grad, gr, br);
        let mut dh1 = std::mem::take(&mut self.g_mid);
        dh1.resize(self.g_h.len(), T::zero());
        self.head_norm
            .vjp(&self.g_h, gamma, &self.hn, &mut dh1, gg, gb);
        self.g_h.copy_from_slice(&dh1);
        self.g_mid = dh1;
    }

    /// Stem VJP from `∂L/∂h₀` (in `dh0`): stem parameter gradients into `grad`.
    fn stem_backward(&mut self, p: &[T], dh0: &[T], grad: &mut [T]) {
        let [c0, c1, c2] = self.stem;
        let range = |name: &str| self.layout.get(name).expect("fixed").range();
        let b = self.batch;
        let mut g_mid = std::mem::take(&mut self.g_mid);
        g_mid.resize(b * c1.out_len(), T::zero());
        let mut g_big = std::mem::take(&mut self.g_big);
        g_big.resize(b * c0.out_len(), T::zero());
        let mut tmp_mid = std::mem::take(&mut self.t_mid);
        tmp_mid.resize(g_mid.len(), T::zero());
        let mut tmp_big = std::mem::take(&mut self.t_big);
        tmp_big.resize(g_big.len(), T::zero());
        {
            let (gw, gb) = split2(grad, range("6.weight"), range("6.bias"));
            c2.vjp(
                dh0,
                self.param(p, "6.weight"),
                &mut self.work[2],
                Some(&mut g_mid),
                gw,
                gb,
            );
        }
        relu_vjp(&self.r1, &mut g_mid);
        {
            let (gg, gb) = split2(grad, range("4.weight"), range("4.bias"));
            self.stem_norm[1].vjp(
                &g_mid,
                self.param(p, "4.weight"),
                &self.n1,
                &mut tmp_mid,
                gg,
                gb,
            );
        }
        {
            let (gw, gb) = split2(grad, range("3.weight"), range("3.bias"));
            c1.vjp(
                &tmp_mid,
                self.param(p, "3.weight"),
                &mut self.work[1],
                Some(&mut g_big),
                gw,
                gb,
            );
        }
        relu_vjp(&self.r0, &mut g_big);
        {
            let (gg, gb) = split2(grad, range("1.weight"), range("1.bias"));
            self.stem_norm[0].vjp(
                &g_big,
                self.param(p, "1.weight"),
                &self.n0,
                &mut tmp_big,
                gg,
                gb,
            );
        }
        {
            let (gw, gb) = split2(grad, range("0.weight"), range("0.bias"));
            c0.vjp(
                &tmp_big,
                self.param(p, "0.weight"),
                &mut self.work[0],
                None,
                gw,
                gb,
            );
        }
        self.g_mid = g_mid;
        self.g_big = g_big;
        self.t_mid = tmp_mid;
        self.t_big = tmp_big;
    }

    /// Loss and correct count of one batch (forward only; the ODE block solved with `config`).
    ///
    /// Errors: wrong lengths, labels ≥ 10, non-finite inputs, or a failed solve.
    pub fn evaluate(
        &mut self,
        params: &[T],
        images: &[T],
        labels: &[u8],
        config: &Config<T>,
    ) -> Result<BatchStats> {
        self.check_batch(params, images, labels)?;
        self.stem_forward(params, images);
        let theta = &params[self.ode_range.clone()];
        let ts = [T::zero(), T::one()];
        let rdm = Method::Rdm {
            norm: adjoint::BackwardNorm::Full,
        };
        let fwd = adjoint::forward(&mut self.ode, theta, &self.h0, &ts, rdm, config)?;
        let h1 = &fwd.outputs()[1];
        let (loss, correct) = self.head_forward(params, h1, labels);
        Ok(BatchStats {
            loss,
            correct,
            images: labels.len(),
            info: fwd.info().clone(),
        })
    }

    /// Loss of one batch and its gradient with respect to every parameter (written to `grad`),
    /// the ODE block differentiated by `method`.
    ///
    /// Errors: as [`OdeClassifier::evaluate`], plus a failed backward solve and a non-finite
    /// gradient.
    pub fn loss_and_gradient(
        &mut self,
        params: &[T],
        images: &[T],
        labels: &[u8],
        method: Method,
        config: &Config<T>,
        grad: &mut [T],
    ) -> Result<BatchStats> {
        self.check_batch(params, images, labels)?;
        if grad.len() != params.len() {
            return Err(shape_err("classifier gradient", params.len(), grad.len()));
        }
        grad.fill(T::zero());
        self.stem_forward(params, images);
        let theta = &params[self.ode_range.clone()];
        let ts = [T::zero(), T::one()];
        let fwd = adjoint::forward(&mut self.ode, theta, &self.h0, &ts, method, config)?;
        let h1 = fwd.outputs()[1].clone();
        let (loss, correct) = self.head_forward(params, &h1, labels);
        self.head_backward(params, labels, grad);
        let cot = vec![vec![T::zero(); h1.len()], self.g_h.clone()];
        let g = fwd.backward(&mut self.ode, theta, &cot)?;
        grad[self.ode_range.clone()].copy_from_slice(&g.dtheta);
        self.stem_backward(params, &g.dz0, grad);
        check_finite("classifier gradient", grad)?;
        Ok(BatchStats {
            loss,
            correct,
            images: labels.len(),
            info: g.info,
        })
    }

    /// One optimizer step on one batch: [`OdeClassifier::loss_and_gradient`] then `opt.step`.
    /// `grad` is the caller's buffer (length of the parameters), reused across steps.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step(
        &mut self,
        params: &mut [T],
        grad: &mut [T],
        opt: &mut dyn Optimizer<T>,
        images: &[T],
        labels: &[u8],
        method: Method,
        config: &Config<T>,
    ) -> Result<BatchStats> {
        let stats = self.loss_and_gradient(params, images, labels, method, config, grad)?;
        opt.step(params, grad)?;
        Ok(stats)
    }
}

/// `(log Σ exp ℓ_k, argmax ℓ)`, computed stably in `f64`.
fn log_sum_exp_argmax<T: Float>(row: &[T]) -> (f64, usize) {
    let v: Vec<f64> = row.iter().map(|&x| <T as rk::Scalar>::as_f64(x)).collect();
    let (arg, max) =
        v.iter()
            .copied()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(ai, am), (i, x)| {
                if x > am { (i, x) } else { (ai, am) }
            });
    let s: f64 = v.iter().map(|&x| (x - max).exp()).sum();
    (max + s.ln(), arg)
}
