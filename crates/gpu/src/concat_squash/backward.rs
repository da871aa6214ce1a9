//! The adjoint right-hand side of the net: the layers' cotangents, the parameter partial sums
//! and their reduction, and `X̄` taken down through the layers (module docs of the parent).

use super::*;

impl ConcatSquashNet {
    /// `adjoint::VectorVjp::adjoint_rhs` of the model.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn adjoint_rhs(
        &mut self,
        t: f32,
        z_vec: &GpuVec,
        z_at: usize,
        params: &GpuVec,
        x: &GpuVec,
        a_at: usize,
        dx: &mut GpuVec,
        value_at: Option<usize>,
        adj_at: usize,
    ) {
        self.forward(t, z_vec, z_at, params, true, value_at.map(|v| (&*dx, v)));
        if let Some(v) = value_at.filter(|_| !self.forward_writes_value()) {
            self.write_value(dx, v);
        }
        self.backward(t, params, x, a_at, dx, adj_at);
    }

    /// IRDM's adjoint right-hand side at `z = Σ_j coeffs[j] · values_j` (`adjoint::VectorVjp::
    /// adjoint_rhs_interpolated`): where the forward pass is one dispatch and the coefficients
    /// fit its data, that dispatch reads the node states itself (one `combine_rows` dispatch
    /// fewer per right-hand side); otherwise through `scratch`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn adjoint_rhs_interpolated(
        &mut self,
        t: f32,
        coeffs: &[f32],
        values: &GpuVec,
        scratch: &mut GpuVec,
        params: &GpuVec,
        x: &GpuVec,
        dx: &mut GpuVec,
    ) {
        let fits = self.buf.plan.table[0].len() + coeffs.len() <= MAX_DISPATCH_DATA;
        if self.one_dispatch_forward().is_none() || !fits || coeffs.is_empty() {
            rk::Vector::combine_rows(scratch, coeffs, values);
            self.adjoint_rhs(t, scratch, 0, params, x, 0, dx, None, 0);
            return;
        }
        // The dispatch's data: the table of layers, then the coefficients (kept between calls).
        let mut data = std::mem::take(&mut self.node_data);
        data.clear();
        data.extend_from_slice(&self.buf.plan.table[0]);
        data.extend_from_slice(coeffs);
        if let Some(kernel) = self.one_dispatch_forward() {
            let input = NetInput::Nodes {
                data: &data,
                nodes: coeffs.len(),
                values,
            };
            self.net_forward(kernel, t, input, params, true, None);
        }
        self.backward(t, params, x, 0, dx, 0);
        self.node_data = data;
    }

    /// The adjoint right-hand side after the forward pass (which left every layer's `X`, `U`
    /// and `Y`): `a` from `x[a_at ..]`, `−aᵀJ` and `−aᵀ∂θ` into `dx` from `adj_at` on.
    pub(super) fn backward(
        &self,
        t: f32,
        params: &GpuVec,
        x: &GpuVec,
        a_at: usize,
        dx: &GpuVec,
        adj_at: usize,
    ) {
        let k = &self.kernels;
        let rows = self.rows();
        let n_layers = self.layers.len();
        let p_at = adj_at + self.state_len();
        let plan = &self.buf.plan;
        let tiled = usize::from(self.tiles_backward());
        let (ybar, ubar) = (&self.buf.ybar, &self.buf.ubar);
        // This layer's Ȳ and Ū are on side `side` of ybar and ubar (the input cotangent of
        // the layer above wrote them there).
        let mut side = 0;
        for (i, l) in self.layers.iter().enumerate().rev() {
            let (side_in, side_out) = (side * self.buf.side, (1 - side) * self.buf.side);
            let dims = Dims {
                t,
                side_in: side_in as u32,
                side_out: side_out as u32,
                x_at: self.buf.x_at[i] as u32,
                uy_at: self.buf.uy_at[i] as u32,
                y_below: self.buf.uy_at[i.saturating_sub(1)] as u32,
                ..self.base(l)
            };
            if i == n_layers - 1 {
                // The last layer's Ȳ, Ū for all rows, seeded from the state's cotangent (every
                // layer below has them from the input cotangent of the layer above).
                self.run(
                    &k.layer_backward_rows,
                    self.batch * l.dout,
                    Dims {
                        at_in: a_at as u32,
                        ..dims
                    },
                    &[
                        (0, params.buffer()),
                        (2, x.buffer()),
                        (7, &self.buf.noise),
                        (11, ybar),
                        (12, ubar),
                    ],
                );
            }
            // W̄ = −Ūᵀ X; b̄1, b̄3, c̄, b̄2 from Σ Ȳ ⊙ U and Σ_primal Ȳ: the simple reduction
            // (fused with the input cotangent below where that is not a tiled product) or,
            // for layers up to 64 wide with tiled backward kernels, the tiled one (one
            // workgroup per chunk of rows).
            let chunk = plan.chunk[tiled][i];
            let reduce_dims = Dims {
                r0: chunk as u32,
                at_in: plan.weights_at[i] as u32,
                at_out: plan.units_at[i] as u32,
                ..dims
            };
            // What this layer's kernels bind (each takes the bindings it uses).
            let step_buffers = [
                (0, params.buffer()),
                (1, &self.buf.ys),
                (2, &self.buf.xs),
                (3, &self.buf.partials),
                (4, &self.buf.unit_partials),
                (6, dx.buffer()),
                (8, &self.buf.us),
                // Bound by the tiled input cotangent (whose loads the tiled forward layer
                // shares), not read.
                (9, &self.buf.xs),
                (11, ybar),
                (12, ubar),
            ];
            let reduce_threads = (reduce_items(l) + l.dout) * rows.div_ceil(chunk);
            let tiled_input = i > 0 && self.tiles_backward() && Self::wide(l);
            let fused = !tiled_reduction(l, self.tiles_backward()) && !tiled_input;
            if !fused {
                let (reduce, threads) = if tiled_reduction(l, self.tiles_backward()) {
                    (&k.reduce_weights, rows.div_ceil(chunk) * 256)
                } else {
                    (&k.reduce_partial, reduce_threads)
                };
                self.run(reduce, threads, reduce_dims, &step_buffers);
            }
            if i == 0 {
                // −X̄ = −Ū W of the primal rows into the state part.
                let input_dims = Dims {
                    adj: adj_at as u32,
                    scale: -1.0,
                    ..reduce_dims
                };
                let input_threads = self.batch * (l.din + usize::from(self.has_divergence()));
                let (kernel, threads) = if fused {
                    (&k.first_layer_backward, reduce_threads + input_threads)
                } else {
                    (&k.input_backward, input_threads)
                };
                self.run(kernel, threads, input_dims, &step_buffers);
            } else {
                // X̄ = Ū W straight through the activation and gate of the layer below (as a
                // tiled product in wide layers): its Ȳ and Ū onto the other side.
                let below = &self.layers[i - 1];
                let input_dims = Dims {
                    c: below.c as u32,
                    b2: below.b2 as u32,
                    ..reduce_dims
                };
                let (kernel, threads) = if tiled_input {
                    (&k.cotangent_tiled, self.point_tile_threads(l.din))
                } else if fused {
                    (&k.layer_backward, reduce_threads + self.batch * l.din)
                } else {
                    (&k.input_backward_rows, self.batch * l.din)
                };
                self.run(kernel, threads, input_dims, &step_buffers);
                side = 1 - side;
            }
        }
        // Every layer's parameter cotangents from its partial sums, in one dispatch.
        let dims = Dims {
            r0: n_layers as u32,
            at_out: p_at as u32,
            scale: -1.0,
            t,
            ..Dims::default()
        };
        self.ctx.dispatch_words_with_data(
            &k.reduce_final,
            // 16 items per workgroup of 256.
            (plan.items.div_ceil(16) * 256) as u32,
            &dims.words(),
            &[
                (0, params.buffer()),
                (1, &self.buf.partials),
                (2, &self.buf.unit_partials),
                (3, dx.buffer()),
            ],
            &plan.table[tiled],
        );
    }

    /// `z`, and `Δlogp` with the divergence.
    pub(crate) fn state_groups(&self) -> Vec<Range<usize>> {
        let n = self.batch * self.dim;
        if self.has_divergence() {
            vec![0..n, n..n + self.batch]
        } else {
            std::iter::once(0..n).collect()
        }
    }

    /// Each parameter array of each layer.
    pub(crate) fn param_groups(&self) -> Vec<Range<usize>> {
        let mut g = Vec::new();
        for l in &self.layers {
            g.push(l.w..l.b1);
            g.push(l.b1..l.c);
            g.push(l.c..l.b2);
            g.push(l.b2..l.b3);
            g.push(l.b3..l.b3 + l.dout);
        }
        g
    }
}
