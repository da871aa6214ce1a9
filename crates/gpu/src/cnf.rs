//! [`GpuCnf`]: the continuous normalizing flow of FFJORD's toy experiments with every number on
//! the GPU, as a right-hand side on [`GpuVec`] with its adjoint system ([`adjoint::VectorVjp`]),
//! so that `adjoint::forward_on` runs RDM and IRDM on it unchanged.
//!
//! The same model as `nn::Cnf` with exact divergence (and the same parameter layout, so weights
//! move between the two): a net of concat-squash layers `d_0 = D → … → D`,
//!
//! ```text
//!     u = x Wᵀ + b1,   y = u ⊙ σ(t c + b2) + t b3,   x' = φ(y)   (φ = tanh or softplus;
//!                                                                 none after the last layer)
//!     dz/dt = f(t, z),   dΔlogp/dt = −tr ∂f/∂z = −Σ_k (J e_k)_k
//! ```
//!
//! evaluated on a batch of `B` points together with the `D` forward-mode tangents seeded with the
//! unit vectors, stacked into `R = (1 + D)B` rows (rows `[kB, (k+1)B)` carry tangent `k`), one
//! kernel per layer stage. The adjoint right-hand side reverses the stacked computation with
//! output cotangents `a_z` on the primal rows and `−a_l e_k` on tangent rows `k` (the
//! second-order terms of the divergence enter through `φ″`, as in `nn::net`); parameter
//! gradients are column reductions over all rows, summed per chunk of 256 rows and then over
//! chunks. WGSL has no floating-point atomics, so no kernel accumulates across invocations.

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::vector::GpuVec;
use adjoint::VectorVjp;
use rk::Rhs;
use std::ops::Range;
use std::sync::Arc;

/// Activation between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuActivation {
    /// `tanh`.
    Tanh,
    /// `log(1 + eˣ)`.
    Softplus,
}

/// Rows per partial sum of the parameter reductions (`CHUNK` in `cnf.wgsl`).
const CHUNK: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Layer {
    din: usize,
    dout: usize,
    w: usize,
    b1: usize,
    c: usize,
    b2: usize,
    b3: usize,
}

/// Uniform block `Dims` of `cnf.wgsl`.
#[derive(Debug, Clone, Copy, Default)]
struct Dims {
    rows: u32,
    batch: u32,
    din: u32,
    dout: u32,
    w: u32,
    b1: u32,
    c: u32,
    b2: u32,
    b3: u32,
    at_in: u32,
    at_out: u32,
    mode: u32,
    r0: u32,
    r1: u32,
    t: f32,
    scale: f32,
}

impl Dims {
    fn words(&self) -> [u32; 16] {
        [
            self.rows,
            self.batch,
            self.din,
            self.dout,
            self.w,
            self.b1,
            self.c,
            self.b2,
            self.b3,
            self.at_in,
            self.at_out,
            self.mode,
            self.r0,
            self.r1,
            self.t.to_bits(),
            self.scale.to_bits(),
        ]
    }
}

const ENTRIES: [&str; 12] = [
    "seed_input",
    "affine",
    "activate",
    "write_value",
    "seed_cotangent",
    "act_backward",
    "gate_rows",
    "reduce_partial",
    "reduce_final",
    "gate_grad",
    "input_backward",
    "write_adj_z",
];

struct Kernels {
    seed_input: wgpu::ComputePipeline,
    affine: wgpu::ComputePipeline,
    activate: wgpu::ComputePipeline,
    write_value: wgpu::ComputePipeline,
    seed_cotangent: wgpu::ComputePipeline,
    act_backward: wgpu::ComputePipeline,
    gate_rows: wgpu::ComputePipeline,
    reduce_partial: wgpu::ComputePipeline,
    reduce_final: wgpu::ComputePipeline,
    gate_grad: wgpu::ComputePipeline,
    input_backward: wgpu::ComputePipeline,
    write_adj_z: wgpu::ComputePipeline,
}

/// The toy CNF on the GPU for batches of a fixed size.
pub struct GpuCnf {
    ctx: Arc<GpuContext>,
    kernels: Kernels,
    layers: Vec<Layer>,
    act: GpuActivation,
    batch: usize,
    dim: usize,
    param_len: usize,
    /// Per layer: input `X_l` (R × d_l), affine `U_l` and pre-activation `Y_l` (R × d_{l+1}).
    xs: Vec<wgpu::Buffer>,
    us: Vec<wgpu::Buffer>,
    ys: Vec<wgpu::Buffer>,
    /// Backward scratch (R × max width): X̄ (two, ping-pong), Ȳ, Ū; partial sums; ḡ.
    xbar: [wgpu::Buffer; 2],
    ybar: wgpu::Buffer,
    ubar: wgpu::Buffer,
    partials: wgpu::Buffer,
    gbar: wgpu::Buffer,
}

impl std::fmt::Debug for GpuCnf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCnf")
            .field("batch", &self.batch)
            .field("layers", &self.layers)
            .field("act", &self.act)
            .finish()
    }
}

impl GpuCnf {
    /// A CNF with layer widths `dims` (`D → … → D`, at least two) for batches of `batch` points.
    ///
    /// Errors: fewer than two widths, a zero width or batch, `dims[0] ≠ dims[last]`, or sizes
    /// beyond 32-bit indexing.
    pub fn new(
        ctx: &Arc<GpuContext>,
        dims: &[usize],
        act: GpuActivation,
        batch: usize,
    ) -> Result<Self, GpuError> {
        let invalid = |reason: String| GpuError::Invalid {
            what: "GPU CNF".into(),
            reason,
        };
        if dims.len() < 2 || dims.contains(&0) || batch == 0 {
            return Err(invalid(format!(
                "needs at least two positive widths and batch >= 1, got {dims:?}, batch {batch}"
            )));
        }
        let dim = dims[0];
        if dims[dims.len() - 1] != dim {
            return Err(invalid(format!("input and output widths differ: {dims:?}")));
        }
        let rows = (1 + dim) * batch;
        let max_width = *dims.iter().max().unwrap_or(&1);
        if rows
            .checked_mul(max_width * max_width)
            .is_none_or(|v| v > u32::MAX as usize)
        {
            return Err(invalid(format!(
                "batch {batch} with widths {dims:?} exceeds 32-bit indexing"
            )));
        }
        let mut layers = Vec::new();
        let mut off = 0;
        for w in dims.windows(2) {
            let (din, dout) = (w[0], w[1]);
            let l = Layer {
                din,
                dout,
                w: off,
                b1: off + dout * din,
                c: off + dout * din + dout,
                b2: off + dout * din + 2 * dout,
                b3: off + dout * din + 3 * dout,
            };
            off += dout * din + 4 * dout;
            layers.push(l);
        }
        let p = ctx.pipelines("cnf kernels", include_str!("cnf.wgsl"), &ENTRIES);
        let mut it = p.into_iter();
        let mut next = || it.next().expect("one pipeline per entry");
        let kernels = Kernels {
            seed_input: next(),
            affine: next(),
            activate: next(),
            write_value: next(),
            seed_cotangent: next(),
            act_backward: next(),
            gate_rows: next(),
            reduce_partial: next(),
            reduce_final: next(),
            gate_grad: next(),
            input_backward: next(),
            write_adj_z: next(),
        };
        let xs = layers.iter().map(|l| ctx.storage(rows * l.din)).collect();
        let us = layers.iter().map(|l| ctx.storage(rows * l.dout)).collect();
        let ys = layers.iter().map(|l| ctx.storage(rows * l.dout)).collect();
        let wide = rows * max_width;
        let chunks = rows.div_ceil(CHUNK);
        Ok(Self {
            kernels,
            layers,
            act,
            batch,
            dim,
            param_len: off,
            xs,
            us,
            ys,
            xbar: [ctx.storage(wide), ctx.storage(wide)],
            ybar: ctx.storage(wide),
            ubar: ctx.storage(wide),
            partials: ctx.storage(chunks * max_width * max_width),
            gbar: ctx.storage(max_width),
            ctx: Arc::clone(ctx),
        })
    }

    /// FFJORD's toy model: `2 → 64 → 64 → 2`.
    pub fn toy(ctx: &Arc<GpuContext>, batch: usize, act: GpuActivation) -> Result<Self, GpuError> {
        Self::new(ctx, &[2, 64, 64, 2], act, batch)
    }

    /// Number of parameters (the layout of `nn::OdeNet` with concat-squash layers).
    pub fn param_len(&self) -> usize {
        self.param_len
    }

    /// State length `B (D + 1)`.
    pub fn state_len(&self) -> usize {
        self.batch * (self.dim + 1)
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// FLOPs of the matrix products of one evaluation (stacked rows): `2R Σ_l d_l d_{l+1}`.
    /// A VJP adds about twice that (the `W̄` and `X̄` products).
    pub fn flops_per_eval(&self) -> usize {
        let rows = (1 + self.dim) * self.batch;
        2 * rows * self.layers.iter().map(|l| l.din * l.dout).sum::<usize>()
    }

    fn rows(&self) -> usize {
        (1 + self.dim) * self.batch
    }

    fn base(&self, l: &Layer) -> Dims {
        Dims {
            rows: self.rows() as u32,
            batch: self.batch as u32,
            din: l.din as u32,
            dout: l.dout as u32,
            w: l.w as u32,
            b1: l.b1 as u32,
            c: l.c as u32,
            b2: l.b2 as u32,
            b3: l.b3 as u32,
            mode: match self.act {
                GpuActivation::Tanh => 0,
                GpuActivation::Softplus => 1,
            },
            ..Dims::default()
        }
    }

    fn run(
        &self,
        pipeline: &wgpu::ComputePipeline,
        threads: usize,
        dims: Dims,
        buffers: &[(u32, &wgpu::Buffer)],
    ) {
        self.ctx
            .dispatch_words(pipeline, threads as u32, &dims.words(), buffers);
    }

    /// The stacked forward pass from `z = z_vec[z_at ..]`; leaves `Y_L` (the output rows).
    fn forward(&self, t: f32, z_vec: &GpuVec, z_at: usize, params: &GpuVec) {
        let k = &self.kernels;
        let rows = self.rows();
        let first = self.layers[0];
        self.run(
            &k.seed_input,
            rows * self.dim,
            Dims {
                din: first.din as u32,
                at_in: z_at as u32,
                ..self.base(&first)
            },
            &[(1, z_vec.buffer()), (3, &self.xs[0])],
        );
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let dims = Dims { t, ..self.base(l) };
            self.run(
                &k.affine,
                rows * l.dout,
                dims,
                &[
                    (0, params.buffer()),
                    (1, &self.xs[i]),
                    (3, &self.us[i]),
                    (4, &self.ys[i]),
                ],
            );
            if i < last {
                self.run(
                    &k.activate,
                    rows * l.dout,
                    dims,
                    &[(1, &self.ys[i]), (3, &self.xs[i + 1])],
                );
            }
        }
    }

    /// Reduction `dst[at ..] = scale · Σ_{r ∈ [r0, r1)} A[r, j] · (B[r, col] | 1 | B[r, j])`.
    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &self,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        dout: usize,
        din: usize,
        mode: u32,
        rows: Range<usize>,
        dst: &wgpu::Buffer,
        at: usize,
        scale: f32,
    ) {
        let k = &self.kernels;
        let cols = if mode == 0 { din } else { 1 };
        let entries = dout * cols;
        let chunks = rows.len().div_ceil(CHUNK).max(1);
        let dims = Dims {
            dout: dout as u32,
            din: din as u32,
            mode,
            r0: rows.start as u32,
            r1: rows.end as u32,
            ..Dims::default()
        };
        self.run(
            &k.reduce_partial,
            entries * chunks,
            dims,
            &[(1, a), (2, b), (3, &self.partials)],
        );
        let fin = Dims {
            din: entries as u32,
            r0: chunks as u32,
            at_out: at as u32,
            scale,
            ..Dims::default()
        };
        self.run(
            &k.reduce_final,
            entries,
            fin,
            &[(1, &self.partials), (3, dst)],
        );
    }
}

impl Rhs<GpuVec> for GpuCnf {
    fn eval(&mut self, t: f32, z: &GpuVec, params: &GpuVec, dz: &mut GpuVec) {
        self.forward(t, z, 0, params);
        let last = self.layers[self.layers.len() - 1];
        self.run(
            &self.kernels.write_value,
            self.batch,
            Dims {
                at_out: 0,
                ..self.base(&last)
            },
            &[(1, &self.ys[self.layers.len() - 1]), (3, dz.buffer())],
        );
    }
}

impl VectorVjp<GpuVec> for GpuCnf {
    fn state_len(&self) -> usize {
        GpuCnf::state_len(self)
    }

    fn param_len(&self) -> usize {
        self.param_len
    }

    fn adjoint_rhs(
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
        let k = &self.kernels;
        let rows = self.rows();
        let n_layers = self.layers.len();
        self.forward(t, z_vec, z_at, params);
        let last = self.layers[n_layers - 1];
        if let Some(v) = value_at {
            self.run(
                &k.write_value,
                self.batch,
                Dims {
                    at_out: v as u32,
                    ..self.base(&last)
                },
                &[(1, &self.ys[n_layers - 1]), (3, dx.buffer())],
            );
        }
        // Cotangent of the stacked output.
        self.run(
            &k.seed_cotangent,
            rows * self.dim,
            Dims {
                at_in: a_at as u32,
                ..self.base(&last)
            },
            &[(1, x.buffer()), (3, &self.ybar)],
        );
        let n_state = self.state_len();
        let p_at = adj_at + n_state;
        let mut cur = 0;
        for (i, l) in self.layers.iter().enumerate().rev() {
            let dims = Dims { t, ..self.base(l) };
            if i < n_layers - 1 {
                // X̄' (from the layer above, in xbar[cur]) → Ȳ through the activation.
                self.run(
                    &k.act_backward,
                    rows * l.dout,
                    dims,
                    &[(1, &self.ys[i]), (2, &self.xbar[cur]), (3, &self.ybar)],
                );
            }
            self.run(
                &k.gate_rows,
                rows * l.dout,
                dims,
                &[(0, params.buffer()), (1, &self.ybar), (3, &self.ubar)],
            );
            let out = dx.buffer();
            // W̄ = −Ūᵀ X over all rows; b̄1 = −Σ_primal Ū; b̄3 = −t Σ_primal Ȳ; ḡ = Σ Ȳ ⊙ U.
            self.reduce(
                &self.ubar,
                &self.xs[i],
                l.dout,
                l.din,
                0,
                0..rows,
                out,
                p_at + l.w,
                -1.0,
            );
            self.reduce(
                &self.ubar,
                &self.ubar,
                l.dout,
                1,
                1,
                0..self.batch,
                out,
                p_at + l.b1,
                -1.0,
            );
            self.reduce(
                &self.ybar,
                &self.ybar,
                l.dout,
                1,
                1,
                0..self.batch,
                out,
                p_at + l.b3,
                -t,
            );
            self.reduce(
                &self.ybar,
                &self.us[i],
                l.dout,
                1,
                2,
                0..rows,
                &self.gbar,
                0,
                1.0,
            );
            self.run(
                &k.gate_grad,
                l.dout,
                Dims {
                    w: (p_at + l.c) as u32,
                    b1: (p_at + l.b2) as u32,
                    c: l.c as u32,
                    b2: l.b2 as u32,
                    scale: -1.0,
                    ..dims
                },
                &[(0, params.buffer()), (1, &self.gbar), (3, out)],
            );
            // X̄ = Ū W (primal rows only for the first layer).
            let next = 1 - cur;
            let r1 = if i == 0 { self.batch } else { rows };
            self.run(
                &k.input_backward,
                r1 * l.din,
                Dims {
                    r1: r1 as u32,
                    ..dims
                },
                &[(0, params.buffer()), (1, &self.ubar), (3, &self.xbar[next])],
            );
            cur = next;
        }
        self.run(
            &k.write_adj_z,
            n_state,
            Dims {
                batch: self.batch as u32,
                din: self.dim as u32,
                at_out: adj_at as u32,
                scale: -1.0,
                ..Dims::default()
            },
            &[(1, &self.xbar[cur]), (3, dx.buffer())],
        );
    }

    fn state_groups(&self) -> Vec<Range<usize>> {
        let n = self.batch * self.dim;
        vec![0..n, n..n + self.batch]
    }

    fn param_groups(&self) -> Vec<Range<usize>> {
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
