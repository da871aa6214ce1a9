//! The floating-point types the solvers are generic over (`f32` and `f64`).

use num_traits::{Float, FloatConst};
use std::fmt::{Debug, Display};

/// A real floating-point scalar: implemented for `f32` and `f64`.
pub trait Scalar: Float + FloatConst + Debug + Display + Default + Send + Sync + 'static {
    /// The nearest value of this type to `x`.
    fn of(x: f64) -> Self;
    /// The value as an `f64`.
    fn as_f64(self) -> f64;
}

impl Scalar for f32 {
    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Scalar for f64 {
    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
}
