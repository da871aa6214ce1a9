//! The forward pass of the net: `f` (and the divergence) in one dispatch (`net_forward`) or
//! layer by layer with simple or tiled products, writing what the adjoint needs.

use super::*;

impl ConcatSquashNet {
    /// Whether a layer is wide enough for the tiled product.
    pub(super) fn wide(l: &Layer) -> bool {
        l.din >= 16 && l.dout >= 16
    }

    /// Invocations of a tiled kernel whose tiles hold whole points (`layer_tiled`,
    /// `cotangent_tiled`): `⌊TILE_ROWS / (1 + K)⌋` points by 64 of the `width` output columns
    /// per workgroup of 256.
    pub(super) fn point_tile_threads(&self, width: usize) -> usize {
        self.batch.div_ceil(TILE_ROWS / (1 + self.tangents)) * width.div_ceil(64) * 256
    }

    /// One dispatch of `kernel` over `threads` invocations with the buffers of `buffers` at the
    /// bindings it uses (callers pass what the fused and the separate kernels of one step need
    /// together; the context leaves the rest out).
    pub(super) fn run(
        &self,
        kernel: &Kernel,
        threads: usize,
        dims: Dims,
        buffers: &[(u32, &wgpu::Buffer)],
    ) {
        self.ctx
            .dispatch_words(kernel, threads as u32, &dims.words(), buffers);
    }

    /// The stacked forward pass from `z = z_vec[z_at ..]`; leaves `Y_L` (the output rows) and,
    /// with `keep`, every layer's `X_l`, `U_l` and `Y_l` for the backward pass (without, the
    /// hidden layers write only `X_{l+1}`: a third of their stores, or nothing at all in
    /// `net_forward`).
    ///
    /// With `value = Some((out, at))` the value (`dz` and, with the divergence, `dΔlogp`) goes
    /// into `out` from `at` on, where [`ConcatSquashNet::forward_writes_value`] says so (else
    /// the caller adds `write_value`). Nets at most [`NET_WIDTH`] wide with simple forward
    /// products take one dispatch (`net_forward`), others one per layer.
    pub(super) fn forward(
        &self,
        t: f32,
        z_vec: &GpuVec,
        z_at: usize,
        params: &GpuVec,
        keep: bool,
        value: Option<(&GpuVec, usize)>,
    ) {
        let k = &self.kernels;
        let rows = self.rows();
        let first = self.layers[0];
        // Where the value goes, or a placeholder binding that is not written.
        let (value_out, value_at) = match value {
            Some((out, at)) => (out.buffer(), at),
            None => (&self.buf.placeholder, 0),
        };
        if let Some(kernel) = self.one_dispatch_forward() {
            self.net_forward(kernel, t, NetInput::State(z_vec, z_at), params, keep, value);
            return;
        }
        let transposed = self.transposes_weights();
        if transposed {
            self.transpose_weights(params);
        }
        let transposed_mode = if transposed { 512 } else { 0 };
        // The first layer reads X0 straight from the state and the seeds (and writes it for
        // the backward pass), unless its product is tiled and needs X0 in memory first.
        let seed_separately = self.tiles_forward() && Self::wide(&first);
        if seed_separately {
            self.run(
                &k.seed_input,
                rows * self.dim,
                Dims {
                    at_in: z_at as u32,
                    ..self.base(&first)
                },
                &[(1, z_vec.buffer()), (3, &self.buf.xs), (7, &self.buf.noise)],
            );
        }
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let (x_at, uy_at) = (self.buf.x_at[i], self.buf.uy_at[i]);
            let mut dims = Dims {
                t,
                x_at: x_at as u32,
                uy_at: uy_at as u32,
                x_next: self.buf.x_at.get(i + 1).copied().unwrap_or(0) as u32,
                ..self.base(l)
            };
            let tiled = self.tiles_forward() && Self::wide(l);
            if !tiled {
                dims.mode |= transposed_mode;
            }
            if i < last {
                dims.mode |= 2;
                if !keep {
                    dims.mode |= 16;
                }
            } else if value.is_some() && self.value_in_last_layer() {
                // No activation: the value goes where X' would.
                dims.mode |= 256;
                dims.at_out = value_at as u32;
            }
            if i == 0 && !seed_separately {
                // The input is the state; X0 goes to memory where a backward pass follows.
                dims.mode |= 64;
                dims.at_in = z_at as u32;
                if keep {
                    dims.mode |= 128;
                }
            }
            if tiled {
                // The tiled product and the rest of the layer in one dispatch. It sums no
                // divergence: the exact divergence's last layer is D ≤ 7 wide (never tiled),
                // a tiled last layer of Hutchinson's takes `write_value`.
                debug_assert!(dims.mode & 256 == 0 || !self.has_divergence());
                self.run(
                    &k.layer_tiled,
                    self.point_tile_threads(l.dout),
                    dims,
                    &[
                        (0, params.buffer()),
                        (3, &self.buf.us),
                        (4, &self.buf.ys),
                        (6, value_out),
                        (9, &self.buf.xs),
                        // Bound, not read: the tiled products share their loads.
                        (12, &self.buf.ubar),
                    ],
                );
                continue;
            }
            // With the value and a divergence, each workgroup takes whole points (⌊256 / dout⌋)
            // and sums their divergence terms in workgroup memory.
            let threads = if dims.mode & 256 != 0 && self.has_divergence() {
                self.batch.div_ceil(LAYER_FORWARD_GROUP / l.dout) * LAYER_FORWARD_GROUP
            } else {
                self.batch * l.dout
            };
            self.run(
                &k.layer_forward,
                threads,
                dims,
                &[
                    (0, params.buffer()),
                    (1, z_vec.buffer()),
                    (2, &self.weights_t),
                    (3, &self.buf.us),
                    (4, &self.buf.ys),
                    (6, value_out),
                    (7, &self.buf.noise),
                    (9, &self.buf.xs),
                ],
            );
        }
    }

    /// The forward pass in one dispatch (`net_forward`; see [`ConcatSquashNet::forward`]) from
    /// the state or from interpolated node states.
    pub(super) fn net_forward(
        &self,
        kernel: &Kernel,
        t: f32,
        input: NetInput<'_>,
        params: &GpuVec,
        keep: bool,
        value: Option<(&GpuVec, usize)>,
    ) {
        let first = self.layers[0];
        // Where the value goes, or a placeholder binding that is not written.
        let (value_out, value_at, value_mode) = match value {
            Some((out, at)) => (out.buffer(), at, 256),
            None => (&self.buf.placeholder, 0, 0),
        };
        let mut dims = Dims {
            t,
            r0: self.layers.len() as u32,
            at_out: value_at as u32,
            mode: self.base(&first).mode | value_mode | if keep { 1024 } else { 0 },
            ..self.base(&first)
        };
        let (source, data) = match input {
            NetInput::State(z, at) => {
                dims.at_in = at as u32;
                (z, &self.buf.plan.table[0][..])
            }
            NetInput::Nodes {
                data,
                nodes,
                values,
            } => {
                dims.mode |= 2048;
                dims.nodes = nodes as u32;
                dims.node_len = self.state_len() as u32;
                (values, data)
            }
        };
        self.ctx.dispatch_words_with_data(
            kernel,
            (self.batch.div_ceil(NET_POINTS) * 256) as u32,
            &dims.words(),
            &[
                (0, params.buffer()),
                (1, source.buffer()),
                (3, &self.buf.us),
                (4, &self.buf.ys),
                (6, value_out),
                (7, &self.buf.noise),
                (9, &self.buf.xs),
            ],
            data,
        );
    }

    /// Whether [`ConcatSquashNet::forward`] writes the value itself (else `write_value`
    /// follows): always in `net_forward`; layer by layer, the last layer's kernel writes it
    /// without a divergence or with the exact one.
    pub(super) fn forward_writes_value(&self) -> bool {
        self.one_dispatch_forward().is_some() || self.value_in_last_layer()
    }
    /// `dz = f(t, z)` (and `dΔlogp` with the divergence).
    pub(crate) fn eval(&mut self, t: f32, z: &GpuVec, params: &GpuVec, dz: &mut GpuVec) {
        self.forward(t, z, 0, params, false, Some((dz, 0)));
        if !self.forward_writes_value() {
            self.write_value(dz, 0);
        }
    }

    /// `dz` and Hutchinson's `dΔlogp` from the last layer's `Y` into `out` from `at` on.
    pub(super) fn write_value(&self, out: &GpuVec, at: usize) {
        let n = self.layers.len();
        self.run(
            &self.kernels.write_value,
            self.batch,
            Dims {
                at_out: at as u32,
                uy_at: self.buf.uy_at[n - 1] as u32,
                ..self.base(&self.layers[n - 1])
            },
            &[(1, &self.buf.ys), (3, out.buffer()), (7, &self.buf.noise)],
        );
    }
}
