//! Neural right-hand sides for ODEs with hand-written vector-Jacobian products.
//!
//! * [`OdeNet`] — a batched sequential net of FFJORD concat-squash (or plain linear) layers with
//!   activations ([`Activation`]), evaluated together with forward-mode tangents and reversed
//!   through both ([`net`] states the formulas); matrix products through faer ([`gemm`]).
//! * [`NetRhs`] — `dz/dt = net(t, z)`; [`Cnf`] — a continuous normalizing flow on `(z, Δlogp)`
//!   with exact or Hutchinson divergence and the VJP of the whole augmented right-hand side,
//!   second-order terms included. Both implement [`adjoint::Vjp`], so every gradient method of
//!   the `adjoint` crate trains them.
//! * [`io`] — safetensors weights with PyTorch names, atomic writes.
//! * [`optim`] — Adam and SGD with PyTorch's update rules.
//! * [`data`] — FFJORD's toy 2-D data sets, seeded.
//! * [`train`] — a toy-CNF training loop with observer hooks and atomic checkpoints.
//! * [`ConvOdeFunc`] — torchdiffeq's MNIST ODE block (group norm, ReLU, 3×3 convolutions with
//!   the time as an extra channel) with its VJP.
//! * [`Conv2d`] — batched convolution by `im2col` and one matrix product; [`norm`] — group
//!   norm and ReLU; both with VJPs.
//! * [`OdeClassifier`] — torchdiffeq's `odenet_mnist` (conv stem, one ODE block, linear head)
//!   trained through any `adjoint` method; [`idx`] reads MNIST-format data ([`FashionMnist`]).
//! * [`ParamLayout`] — one flat parameter vector with PyTorch `state_dict` names.
//! * [`Rng`] — a seeded generator whose streams never change between versions.

pub mod activation;
pub mod classifier;
pub mod cnf;
pub mod collective;
pub mod conditioned_cnf;
pub mod conv;
pub mod conv2d;
pub mod data;
pub mod data_parallel;
mod error;
pub mod gemm;
pub mod idx;
pub mod io;
#[cfg(feature = "mpi")]
pub mod mpi_group;
pub mod multiblock;
pub mod net;
pub mod norm;
pub mod optim;
pub mod params;
pub mod rng;
pub mod shards;
pub mod tabular;
pub mod train;
pub mod vae;

pub use activation::Activation;
pub use classifier::{BatchStats, OdeClassifier};
pub use cnf::{Cnf, Divergence, NetRhs, Noise, nll_loss, toy_cnf};
pub use collective::{Collective, LocalGroup, SingleProcess};
pub use conditioned_cnf::ConditionedCnf;
pub use conv::ConvOdeFunc;
pub use conv2d::{Conv2d, ConvWork};
pub use data_parallel::{DataParallel, ParallelRecord};
pub use error::{NnError, Result};
pub use idx::{FashionMnist, ImageSet};
pub use io::Weights;
pub use multiblock::{BlockGradient, BlockSpec, MultiBlockCnf};
pub use net::{LayerKind, OdeNet};
pub use params::{ParamEntry, ParamLayout};
pub use rng::Rng;
pub use vae::{CnfVae, VaeGradient, VaeSpec};

/// Scalars of the networks: `f32` or `f64` (a gradient-driver float with faer kernels).
pub trait Float: adjoint::Real + faer::traits::ComplexField {
    /// `y = tanh(x)` elementwise.
    fn tanh_into(x: &[Self], y: &mut [Self]);
}

impl Float for f64 {
    fn tanh_into(x: &[f64], y: &mut [f64]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v.tanh();
        }
    }
}

impl Float for f32 {
    /// A branch-free kernel that the compiler vectorizes (glibc's `tanhf` costs 10–35 ns per
    /// call and dominated a toy-CNF evaluation): `tanh x = (e − 1)/(e + 1)`, `e = exp(2x)` with
    /// `exp` by Cody–Waite reduction `2x = n ln2 + r`, `|r| ≤ ln2/2`, and a degree-7 Taylor
    /// polynomial (truncation `< 6e−9` relative), scaled by `2ⁿ` through the exponent bits; for
    /// `|x| < 0.125` the odd series `x − x³/3 + 2x⁵/15 − 17x⁷/315` instead, where the quotient
    /// would lose relative accuracy. Within a few ulps of `f32::tanh` everywhere (tested).
    fn tanh_into(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = activation::tanh_f32(v);
        }
    }
}

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
