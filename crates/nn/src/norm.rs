//! Group normalization and ReLU on image batches, with their VJPs.
//!
//! Group normalization of `x (B × C × P)` with `G` groups of `C/G` channels, `n = (C/G)·P`
//! elements per group, `ε = 1e−5`, affine `γ, β` per channel:
//!
//! ```text
//!     x̂ = (x − μ_g)/√(σ²_g + ε),   y = γ_c x̂ + β_c
//! ```
//!
//! (`σ²` the biased variance, as PyTorch's `GroupNorm`). Its VJP per group, with `u = ȳ γ_c`:
//! `x̄ = (u − mean(u) − x̂ · mean(u x̂)) / √(σ²_g + ε)`, `γ̄_c = Σ ȳ x̂`, `β̄_c = Σ ȳ`.
//! `relu(x) = max(x, 0)`, whose VJP masks the cotangent where the output is zero.

use crate::Float;

const EPS: f64 = 1e-5;

/// A group normalization over `channels` channels of `pixels` values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupNorm {
    /// Channels `C`.
    pub channels: usize,
    /// Groups `G` (divides `C`).
    pub groups: usize,
    /// Values per channel `P`.
    pub pixels: usize,
}

/// Values a [`GroupNorm`] forward pass keeps for its VJP.
#[derive(Debug, Clone, Default)]
pub struct NormCache<T> {
    xhat: Vec<T>,
    inv_std: Vec<T>,
}

impl<T> NormCache<T> {
    /// Floats held.
    pub fn floats(&self) -> usize {
        self.xhat.len() + self.inv_std.len()
    }
}

impl GroupNorm {
    /// torchdiffeq's `norm(dim)`: `min(32, C)` groups.
    pub fn torchdiffeq(channels: usize, pixels: usize) -> Self {
        Self {
            channels,
            groups: channels.min(32),
            pixels,
        }
    }

    fn image(&self) -> usize {
        self.channels * self.pixels
    }

    /// `y = GN(x)` for `x.len() / (C·P)` images; keeps `x̂` and `1/σ` in `cache`.
    pub fn forward<T: Float>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        y: &mut [T],
        cache: &mut NormCache<T>,
    ) {
        let batch = x.len() / self.image();
        let cg = self.channels / self.groups;
        let n = cg * self.pixels;
        let nf = <T as rk::Scalar>::of(n as f64);
        cache.xhat.resize(x.len(), T::zero());
        cache.inv_std.resize(batch * self.groups, T::zero());
        for bi in 0..batch {
            for gi in 0..self.groups {
                let start = bi * self.image() + gi * n;
                let xs = &x[start..start + n];
                let mean = xs.iter().fold(T::zero(), |a, &v| a + v) / nf;
                let var = xs
                    .iter()
                    .fold(T::zero(), |a, &v| a + (v - mean) * (v - mean))
                    / nf;
                let inv = T::one() / (var + <T as rk::Scalar>::of(EPS)).sqrt();
                cache.inv_std[bi * self.groups + gi] = inv;
                for (k, &v) in xs.iter().enumerate() {
                    let c = gi * cg + k / self.pixels;
                    let xh = (v - mean) * inv;
                    cache.xhat[start + k] = xh;
                    y[start + k] = gamma[c] * xh + beta[c];
                }
            }
        }
    }

    /// The VJP of the forward pass that filled `cache`: writes `x̄`, accumulates `γ̄`, `β̄`.
    pub fn vjp<T: Float>(
        &self,
        ybar: &[T],
        gamma: &[T],
        cache: &NormCache<T>,
        xbar: &mut [T],
        gbar: &mut [T],
        bbar: &mut [T],
    ) {
        let batch = ybar.len() / self.image();
        let cg = self.channels / self.groups;
        let n = cg * self.pixels;
        let nf = <T as rk::Scalar>::of(n as f64);
        for bi in 0..batch {
            for gi in 0..self.groups {
                let start = bi * self.image() + gi * n;
                let inv = cache.inv_std[bi * self.groups + gi];
                let (mut mu, mut mux) = (T::zero(), T::zero());
                for k in 0..n {
                    let c = gi * cg + k / self.pixels;
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
                    let c = gi * cg + k / self.pixels;
                    let u = ybar[start + k] * gamma[c];
                    xbar[start + k] = (u - mu - cache.xhat[start + k] * mux) * inv;
                }
            }
        }
    }
}

/// `y = max(x, 0)`.
pub fn relu<T: Float>(x: &[T], y: &mut [T]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.max(T::zero());
    }
}

/// In place: `g ← g · [y > 0]` where `y` is the ReLU output.
pub fn relu_vjp<T: Float>(y: &[T], g: &mut [T]) {
    for (gv, &yv) in g.iter_mut().zip(y) {
        if yv <= T::zero() {
            *gv = T::zero();
        }
    }
}

/// In place: `x ← max(x, 0)`.
pub fn relu_in_place<T: Float>(x: &mut [T]) {
    for v in x.iter_mut() {
        *v = v.max(T::zero());
    }
}
