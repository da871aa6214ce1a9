//! Pointwise activations with their first and second derivatives (the second is needed to
//! differentiate a divergence).
//!
//! | name | φ(x) | φ′(x) | φ″(x) |
//! |---|---|---|---|
//! | tanh | `tanh x` | `1 − φ²` | `−2φ(1 − φ²)` |
//! | softplus | `log(1 + eˣ)` | `σ(x)` | `σ(1 − σ)` |
//! | ReLU | `max(x, 0)` | `[x > 0]` | `0` |
//! | ELU | `x` or `eˣ − 1` | `1` or `eˣ` | `0` or `eˣ` |
//! | sigmoid | `σ(x) = 1/(1 + e⁻ˣ)` | `σ(1 − σ)` | `σ(1 − σ)(1 − 2σ)` |

use crate::Float;
use serde::{Deserialize, Serialize};

/// A pointwise nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Hyperbolic tangent.
    Tanh,
    /// `log(1 + eˣ)`, computed stably.
    Softplus,
    /// Rectified linear unit.
    Relu,
    /// Exponential linear unit with `α = 1`.
    Elu,
    /// Logistic sigmoid.
    Sigmoid,
}

/// Numerically stable logistic sigmoid.
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

impl Activation {
    /// `(φ(x), φ′(x), φ″(x))`.
    #[inline]
    pub fn eval3<T: Float>(self, x: T) -> (T, T, T) {
        let one = T::one();
        let two = one + one;
        match self {
            Activation::Tanh => {
                let y = x.tanh();
                let d = one - y * y;
                (y, d, -two * y * d)
            }
            Activation::Softplus => {
                let s = sigmoid(x);
                // log(1 + eˣ) = max(x, 0) + log(1 + e^{−|x|})
                let y = x.max(T::zero()) + (-x.abs()).exp().ln_1p();
                (y, s, s * (one - s))
            }
            Activation::Relu => {
                if x > T::zero() {
                    (x, one, T::zero())
                } else {
                    (T::zero(), T::zero(), T::zero())
                }
            }
            Activation::Elu => {
                if x > T::zero() {
                    (x, one, T::zero())
                } else {
                    let e = x.exp();
                    (e - one, e, e)
                }
            }
            Activation::Sigmoid => {
                let s = sigmoid(x);
                let d = s * (one - s);
                (s, d, d * (one - two * s))
            }
        }
    }

    /// Applies the activation to a slice, writing `φ`, `φ′` and `φ″` (the derivatives are kept
    /// for the tangent and reverse passes). `tanh` goes through [`Float::tanh_into`], the fast
    /// vectorized kernel in `f32`.
    pub fn apply<T: Float>(self, x: &[T], y: &mut [T], d1: &mut [T], d2: &mut [T]) {
        if self == Activation::Tanh {
            T::tanh_into(x, y);
            let two = T::one() + T::one();
            for ((&yi, a), b) in y.iter().zip(d1.iter_mut()).zip(d2.iter_mut()) {
                *a = T::one() - yi * yi;
                *b = -two * yi * *a;
            }
            return;
        }
        for (i, &xi) in x.iter().enumerate() {
            let (a, b, c) = self.eval3(xi);
            y[i] = a;
            d1[i] = b;
            d2[i] = c;
        }
    }

    /// PyTorch-style name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
            Activation::Relu => "relu",
            Activation::Elu => "elu",
            Activation::Sigmoid => "sigmoid",
        }
    }
}

/// The scalar body of the vectorized `f32` tanh (see `Float::tanh_into` for `f32`).
#[inline(always)]
pub fn tanh_f32(v: f32) -> f32 {
    let xc = v.clamp(-9.0, 9.0);
    let z = 2.0 * xc;
    // Cody–Waite: z = n ln2 + r.
    // Round to nearest by the 1.5·2²³ trick: plain additions, so the loop vectorizes on
    // baseline x86-64 (where `round` is a library call).
    const SHIFTER: f32 = 12_582_912.0;
    let shifted = z * std::f32::consts::LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    // The low mantissa bits of `shifted` hold n; 2ⁿ is built from them without a float→int cast.
    let scale = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(SHIFTER.to_bits())
            .wrapping_add(127)
            << 23,
    );
    let r = (z - n * 0.693_145_75) - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let e = p * scale;
    let big = (e - 1.0) / (e + 1.0);
    let x2 = xc * xc;
    let small = xc * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))));
    if xc.abs() < 0.125 { small } else { big }
}
