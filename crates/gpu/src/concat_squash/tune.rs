//! Choosing the product kernels by timing them on the adapter: the simple and the tiled
//! forward and backward products at the current batch, the faster of each kept.

use super::*;

impl ConcatSquashNet {
    /// Times the simple and the tiled products on this device at the current batch and keeps
    /// the faster forward and the faster backward ones (see the wrappers' `tune_kernels`).
    pub(crate) fn tune_kernels(
        &mut self,
        params: &GpuVec,
        reps: usize,
    ) -> Result<GpuKernels, GpuError> {
        let invalid = |reason: String| GpuError::Invalid {
            what: format!("{} kernel tuning", self.what),
            reason,
        };
        if rk::Vector::len(params) != self.param_len {
            return Err(invalid(format!(
                "{} parameters, the model has {}",
                rk::Vector::len(params),
                self.param_len
            )));
        }
        if reps == 0 {
            return Err(invalid("needs at least one call per timing".into()));
        }
        let n = self.state_len();
        let state: Vec<f32> = (0..n).map(|i| 0.1 * (i % 7) as f32 - 0.3).collect();
        let z = GpuVec::try_from_host(&self.ctx, &state)?;
        let mut dz = GpuVec::try_zeros(&self.ctx, n)?;
        let mut x = state;
        x.extend(std::iter::repeat_n(0.0, self.param_len));
        let x = GpuVec::try_from_host(&self.ctx, &x)?;
        let mut dx = GpuVec::try_zeros(&self.ctx, rk::Vector::len(&x))?;
        // Seconds per evaluation and per adjoint right-hand side: the fastest of three rounds
        // of `reps` calls closed by a readback, after one warm-up call of each.
        let mut time = |net: &mut Self, kernels: GpuKernels| -> (f64, f64) {
            net.set_kernels(kernels);
            let (mut eval, mut vjp) = (f64::INFINITY, f64::INFINITY);
            for round in 0..4 {
                let start = std::time::Instant::now();
                for _ in 0..if round == 0 { 1 } else { reps } {
                    net.eval(0.5, &z, params, &mut dz);
                }
                let _ = rk::Vector::dot(&dz, &dz);
                let e = start.elapsed().as_secs_f64();
                let start = std::time::Instant::now();
                for _ in 0..if round == 0 { 1 } else { reps } {
                    net.adjoint_rhs(0.5, &z, 0, params, &x, 0, &mut dx, None, 0);
                }
                let _ = rk::Vector::dot(&dx, &dx);
                let v = start.elapsed().as_secs_f64();
                if round > 0 {
                    eval = eval.min(e / reps as f64);
                    vjp = vjp.min(v / reps as f64);
                }
            }
            (eval, vjp)
        };
        let (eval_simple, vjp_simple) = time(self, GpuKernels::Simple);
        let (eval_tiled, vjp_tiled) = time(self, GpuKernels::Tiled);
        // An adjoint right-hand side is a forward pass and a backward pass.
        let forward_tiled = eval_tiled < eval_simple;
        let backward_tiled = vjp_tiled - eval_tiled < vjp_simple - eval_simple;
        let chosen = GpuKernels::from_parts(forward_tiled, backward_tiled);
        self.set_kernels(chosen);
        Ok(chosen)
    }
}
