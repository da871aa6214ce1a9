//! Small reference right-hand sides with hand-written VJPs (f64): a linear system, torchdiffeq's
//! cubic spiral and a tanh MLP. They serve the tests, examples and benchmarks, and show how to implement [`Vjp`].
//!
//! * [`Linear`]: `f(t, z; A) = A z`, `θ = A` row-major; `aᵀ∂f/∂z = Aᵀa`, `aᵀ∂f/∂A = a zᵀ`.
//! * [`Spiral`]: `dy/dt = (y³) A` (a row vector times `A`, cubes elementwise), `θ = A` row-major
//!   `2 × 2`; `aᵀ∂f/∂y_i = 3 y_i² (A a)_i`, `aᵀ∂f/∂A_ij = y_i³ a_j`. With
//!   `A = [[−0.1, 2], [−2, −0.1]]` and `y(0) = [2, 0]` ([`Spiral::A`], [`Spiral::Y0`]) it is
//!   torchdiffeq's `ode_demo`, whose many slow-down oscillations over `t ∈ [0, 25]` make a long
//!   horizon for IRDM.
//! * [`Mlp`]: `f(t, z) = W2 tanh(W1 z + b1 + t c) + b2`; with `u = W1 z + b1 + t c`,
//!   `h = tanh u`, `ū = (W2ᵀ a) ⊙ (1 − h²)`: `∂/∂W2 = a hᵀ`, `∂/∂b2 = a`, `∂/∂W1 = ū zᵀ`,
//!   `∂/∂b1 = ū`, `∂/∂c = t ū`, `aᵀ∂f/∂z = W1ᵀ ū`.

use crate::vjp::Vjp;
use rk::Rhs;

/// `dz/dt = A z` with `θ = A` (row-major `n × n`).
pub struct Linear {
    /// State dimension.
    pub n: usize,
}

impl Linear {
    /// `out = A z` with `A = p` (row-major `n × n`).
    fn apply(&self, z: &[f64], p: &[f64], out: &mut [f64]) {
        let n = self.n;
        for (i, o) in out.iter_mut().enumerate().take(n) {
            *o = (0..n).map(|j| p[i * n + j] * z[j]).sum();
        }
    }
}

impl Rhs<Vec<f64>> for Linear {
    fn eval(&mut self, _t: f64, z: &Vec<f64>, p: &Vec<f64>, dz: &mut Vec<f64>) {
        self.apply(z, p, dz);
    }
}

impl Vjp<f64> for Linear {
    fn state_len(&self) -> usize {
        self.n
    }
    fn param_len(&self) -> usize {
        self.n * self.n
    }
    fn vjp(
        &mut self,
        _t: f64,
        z: &[f64],
        p: &[f64],
        a: &[f64],
        value: Option<&mut [f64]>,
        adj_z: &mut [f64],
        adj_p: &mut [f64],
    ) {
        let n = self.n;
        if let Some(v) = value {
            self.apply(z, p, v);
        }
        for j in 0..n {
            adj_z[j] = (0..n).map(|i| a[i] * p[i * n + j]).sum();
        }
        for i in 0..n {
            for j in 0..n {
                adj_p[i * n + j] = a[i] * z[j];
            }
        }
    }
}

/// torchdiffeq's cubic spiral `dy/dt = (y³) A`, `θ = A` row-major `2 × 2`.
pub struct Spiral;

impl Spiral {
    /// `A` of torchdiffeq's `ode_demo`.
    pub const A: [f64; 4] = [-0.1, 2.0, -2.0, -0.1];
    /// `y(0)` of torchdiffeq's `ode_demo`.
    pub const Y0: [f64; 2] = [2.0, 0.0];

    fn apply(y: &[f64], a: &[f64], out: &mut [f64]) {
        let c = [y[0].powi(3), y[1].powi(3)];
        out[0] = c[0] * a[0] + c[1] * a[2];
        out[1] = c[0] * a[1] + c[1] * a[3];
    }
}

impl Rhs<Vec<f64>> for Spiral {
    fn eval(&mut self, _t: f64, y: &Vec<f64>, a: &Vec<f64>, dy: &mut Vec<f64>) {
        Self::apply(y, a, dy);
    }
}

impl Vjp<f64> for Spiral {
    fn state_len(&self) -> usize {
        2
    }
    fn param_len(&self) -> usize {
        4
    }
    fn vjp(
        &mut self,
        _t: f64,
        y: &[f64],
        a: &[f64],
        w: &[f64],
        value: Option<&mut [f64]>,
        adj_z: &mut [f64],
        adj_p: &mut [f64],
    ) {
        if let Some(v) = value {
            Self::apply(y, a, v);
        }
        for i in 0..2 {
            let aw = a[2 * i] * w[0] + a[2 * i + 1] * w[1];
            adj_z[i] = 3.0 * y[i] * y[i] * aw;
            let cube = y[i].powi(3);
            adj_p[2 * i] = cube * w[0];
            adj_p[2 * i + 1] = cube * w[1];
        }
    }
}

/// `f(t, z) = W2 tanh(W1 z + b1 + t c) + b2`, hidden width `h`.
/// `θ = [W1 (h×n), b1 (h), c (h), W2 (n×h), b2 (n)]`.
pub struct Mlp {
    /// State dimension.
    pub n: usize,
    /// Hidden width.
    pub h: usize,
    hidden: Vec<f64>,
}

impl Mlp {
    /// An MLP for states of length `n` with `h` hidden units.
    pub fn new(n: usize, h: usize) -> Self {
        Self {
            n,
            h,
            hidden: vec![0.0; h],
        }
    }

    /// Deterministic parameters in `[-scale, scale)` from a seed (a linear congruential generator).
    pub fn params(&self, seed: u64, scale: f64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..self.param_len())
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                scale * (((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
            })
            .collect()
    }

    fn hidden(&mut self, t: f64, z: &[f64], p: &[f64]) {
        let (n, h) = (self.n, self.h);
        let (w1, rest) = p.split_at(h * n);
        let (b1, rest) = rest.split_at(h);
        let c = &rest[..h];
        for k in 0..h {
            let u: f64 = (0..n).map(|j| w1[k * n + j] * z[j]).sum::<f64>() + b1[k] + t * c[k];
            self.hidden[k] = u.tanh();
        }
    }

    fn output(&self, p: &[f64], out: &mut [f64]) {
        let (n, h) = (self.n, self.h);
        let w2 = &p[h * n + 2 * h..h * n + 2 * h + n * h];
        let b2 = &p[h * n + 2 * h + n * h..];
        for i in 0..n {
            out[i] = (0..h).map(|k| w2[i * h + k] * self.hidden[k]).sum::<f64>() + b2[i];
        }
    }
}

impl Rhs<Vec<f64>> for Mlp {
    fn eval(&mut self, t: f64, z: &Vec<f64>, p: &Vec<f64>, dz: &mut Vec<f64>) {
        self.hidden(t, z, p);
        self.output(p, dz);
    }
}

impl Vjp<f64> for Mlp {
    fn state_len(&self) -> usize {
        self.n
    }
    fn param_len(&self) -> usize {
        2 * self.h * self.n + 2 * self.h + self.n
    }
    fn vjp(
        &mut self,
        t: f64,
        z: &[f64],
        p: &[f64],
        a: &[f64],
        value: Option<&mut [f64]>,
        adj_z: &mut [f64],
        adj_p: &mut [f64],
    ) {
        let (n, h) = (self.n, self.h);
        self.hidden(t, z, p);
        if let Some(v) = value {
            self.output(p, v);
        }
        let o_w1 = 0;
        let o_b1 = h * n;
        let o_c = o_b1 + h;
        let o_w2 = o_c + h;
        let o_b2 = o_w2 + n * h;
        for i in 0..n {
            for k in 0..h {
                adj_p[o_w2 + i * h + k] = a[i] * self.hidden[k];
            }
            adj_p[o_b2 + i] = a[i];
        }
        adj_z.fill(0.0);
        for k in 0..h {
            let ha: f64 = (0..n).map(|i| p[o_w2 + i * h + k] * a[i]).sum();
            let ua = ha * (1.0 - self.hidden[k] * self.hidden[k]);
            adj_p[o_b1 + k] = ua;
            adj_p[o_c + k] = t * ua;
            for j in 0..n {
                adj_p[o_w1 + k * n + j] = ua * z[j];
                adj_z[j] += p[o_w1 + k * n + j] * ua;
            }
        }
    }
    fn param_groups(&self) -> Vec<std::ops::Range<usize>> {
        let (n, h) = (self.n, self.h);
        let o_b1 = h * n;
        let o_c = o_b1 + h;
        let o_w2 = o_c + h;
        let o_b2 = o_w2 + n * h;
        vec![0..o_b1, o_b1..o_c, o_c..o_w2, o_w2..o_b2, o_b2..o_b2 + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wᵀ∂f/∂y` and `wᵀ∂f/∂A` of [`Spiral`] against central differences of `f`.
    #[test]
    fn spiral_vjp_matches_finite_differences() {
        let (y, a, w) = ([0.7, -1.3], [-0.3, 1.7, -2.2, 0.4], [0.9, -0.6]);
        let (mut adj_y, mut adj_a, mut value) = ([0.0; 2], [0.0; 4], [0.0; 2]);
        Spiral.vjp(0.0, &y, &a, &w, Some(&mut value), &mut adj_y, &mut adj_a);
        let f = |y: &[f64], a: &[f64]| {
            let mut out = vec![0.0; 2];
            Spiral.eval(0.0, &y.to_vec(), &a.to_vec(), &mut out);
            out[0] * w[0] + out[1] * w[1]
        };
        let h = 1e-6;
        for i in 0..2 {
            let (mut up, mut down) = (y, y);
            up[i] += h;
            down[i] -= h;
            let fd = (f(&up, &a) - f(&down, &a)) / (2.0 * h);
            assert!((fd - adj_y[i]).abs() < 1e-7, "y[{i}]: {fd} vs {}", adj_y[i]);
        }
        for k in 0..4 {
            let (mut up, mut down) = (a, a);
            up[k] += h;
            down[k] -= h;
            let fd = (f(&y, &up) - f(&y, &down)) / (2.0 * h);
            assert!((fd - adj_a[k]).abs() < 1e-7, "A[{k}]: {fd} vs {}", adj_a[k]);
        }
        let mut dy = vec![0.0; 2];
        Spiral.eval(0.0, &y.to_vec(), &a.to_vec(), &mut dy);
        // The same arithmetic; only `powi`'s rounding may differ between a folded and a runtime
        // call.
        for (v, d) in value.iter().zip(&dy) {
            assert!((v - d).abs() <= 1e-14 * d.abs(), "{value:?} vs {dy:?}");
        }
    }
}
