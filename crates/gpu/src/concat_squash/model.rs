//! The wrappers' shared surface: `concat_squash_model!` gives a model type over
//! [`ConcatSquashNet`] its public methods and its `rk::Rhs` / `adjoint::VectorVjp` impls.

/// The public face of a [`ConcatSquashNet`] wrapper `$name(ConcatSquashNet)`: its accessors,
/// `rk::Rhs` and `adjoint::VectorVjp`, all forwarded to the core.
macro_rules! concat_squash_model {
    ($name:ident) => {
        impl $name {
            /// Number of parameters (the layout of `nn::OdeNet` with concat-squash layers).
            pub fn param_len(&self) -> usize {
                self.0.param_len()
            }

            /// Length of the state vector.
            pub fn state_len(&self) -> usize {
                self.0.state_len()
            }

            /// Batch size.
            pub fn batch(&self) -> usize {
                self.0.batch()
            }

            /// Changes the batch size (say, for a held-out set): new buffers, the compiled
            /// kernels kept. Hutchinson's noise restarts as the fixed draw.
            ///
            /// Errors: a zero batch, or one beyond 32-bit indexing or the device's buffer
            /// limit; the model keeps its old batch then.
            pub fn set_batch(&mut self, batch: usize) -> Result<(), $crate::GpuError> {
                self.0.set_batch(batch)
            }

            /// FLOPs of the matrix products of one evaluation (over the stacked rows):
            /// `2R Σ_l d_l d_{l+1}`. A VJP adds about twice that (the `W̄` and `X̄` products).
            pub fn flops_per_eval(&self) -> usize {
                self.0.flops_per_eval()
            }

            /// Chooses the matrix-product kernels (default [`GpuKernels::Auto`](crate::GpuKernels::Auto)). All give the
            /// same numbers up to rounding (tested); `cargo xtask bench --gpu` times simple and
            /// tiled side by side.
            pub fn set_kernels(&mut self, kernels: $crate::GpuKernels) {
                self.0.set_kernels(kernels);
            }

            /// Times the simple and the tiled products on this device at the current batch with
            /// the parameters `params` (`reps` calls per timing, the fastest of three rounds;
            /// an evaluation and an adjoint right-hand side each) and keeps the faster forward
            /// and the faster backward ones: [`GpuKernels::Simple`](crate::GpuKernels::Simple),
            /// [`TiledForward`](crate::GpuKernels::TiledForward),
            /// [`TiledBackward`](crate::GpuKernels::TiledBackward) or
            /// [`Tiled`](crate::GpuKernels::Tiled), returned. Which is faster depends on the
            /// adapter and the batch (the H200 and lavapipe disagree), so a long training run
            /// gains from tuning once per batch size; the choices agree up to f32 rounding, so
            /// the choice (made by timing) may move results in their last bits. Call again
            /// after [`set_batch`](Self::set_batch).
            ///
            /// Errors: `params` of the wrong length, `reps == 0`, or scratch vectors beyond the
            /// device's buffer limit.
            pub fn tune_kernels(
                &mut self,
                params: &$crate::GpuVec,
                reps: usize,
            ) -> Result<$crate::GpuKernels, $crate::GpuError> {
                self.0.tune_kernels(params, reps)
            }

            /// [`GpuKernels::Tiled`](crate::GpuKernels::Tiled) (`true`) or
            /// [`GpuKernels::Simple`](crate::GpuKernels::Simple) (`false`).
            pub fn set_tiled(&mut self, tiled: bool) {
                self.0.set_kernels(if tiled {
                    $crate::GpuKernels::Tiled
                } else {
                    $crate::GpuKernels::Simple
                });
            }

            /// The kernel choice.
            pub fn kernels(&self) -> $crate::GpuKernels {
                self.0.kernels()
            }

            /// Whether the forward products are tiled at the current batch.
            pub fn is_tiled(&self) -> bool {
                self.0.tiles_forward()
            }

            /// Whether the backward products (input and weight cotangents) are tiled at the
            /// current batch.
            pub fn is_tiled_backward(&self) -> bool {
                self.0.tiles_backward()
            }
        }

        impl rk::Rhs<$crate::GpuVec> for $name {
            fn eval(
                &mut self,
                t: f32,
                z: &$crate::GpuVec,
                params: &$crate::GpuVec,
                dz: &mut $crate::GpuVec,
            ) {
                self.0.eval(t, z, params, dz);
            }
        }

        impl adjoint::VectorVjp<$crate::GpuVec> for $name {
            fn state_len(&self) -> usize {
                self.0.state_len()
            }

            fn param_len(&self) -> usize {
                self.0.param_len()
            }

            fn adjoint_rhs(
                &mut self,
                t: f32,
                z_vec: &$crate::GpuVec,
                z_at: usize,
                params: &$crate::GpuVec,
                x: &$crate::GpuVec,
                a_at: usize,
                dx: &mut $crate::GpuVec,
                value_at: Option<usize>,
                adj_at: usize,
            ) {
                self.0
                    .adjoint_rhs(t, z_vec, z_at, params, x, a_at, dx, value_at, adj_at);
            }

            fn adjoint_rhs_interpolated(
                &mut self,
                t: f32,
                coeffs: &[f32],
                values: &$crate::GpuVec,
                scratch: &mut $crate::GpuVec,
                params: &$crate::GpuVec,
                x: &$crate::GpuVec,
                dx: &mut $crate::GpuVec,
            ) {
                self.0
                    .adjoint_rhs_interpolated(t, coeffs, values, scratch, params, x, dx);
            }

            fn state_groups(&self) -> Vec<std::ops::Range<usize>> {
                self.0.state_groups()
            }

            fn param_groups(&self) -> Vec<std::ops::Range<usize>> {
                self.0.param_groups()
            }
        }
    };
}

pub(crate) use concat_squash_model;
