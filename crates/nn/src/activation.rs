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
