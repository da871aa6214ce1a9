//! The concat-squash network on the GPU shared by [`GpuNetRhs`](crate::GpuNetRhs) (a neural
//! ODE `dz/dt = net(t, z)`) and [`GpuCnf`](crate::GpuCnf) (FFJORD's continuous normalizing flow,
//! exact or Hutchinson divergence): its forward pass and its adjoint right-hand side on
//! [`GpuVec`].
//!
//! The same network as `nn::OdeNet` with concat-squash layers (and the same parameter layout,
//! so weights move between host and device): layers `d_0 = D → … → D`,
//!
//! ```text
//!     u = x Wᵀ + b1,   y = u ⊙ σ(t c + b2) + t b3,   x' = φ(y)   (φ = tanh or softplus;
//!                                                                 none after the last layer)
//!     dz/dt = f(t, z)                                 (both)
//!     dΔlogp/dt = −tr ∂f/∂z = −Σ_k (J e_k)_k          (CNF, exact)
//!              ≈ −εᵀ J ε                              (CNF, Hutchinson, fixed noise ε)
//! ```
//!
//! evaluated on a batch of `B` points together with `K` forward-mode tangents stacked into
//! `R = (1 + K)B` rows (rows `[kB, (k+1)B)` carry tangent `k`): `K = D` seeded with the unit
//! vectors for the exact divergence, `K = 1` seeded with each point's `ε` for Hutchinson's,
//! `K = 0` for the plain net.
//!
//! Forward, for nets at most 64 wide with simple products: one dispatch (`net_forward`) in which a
//! workgroup takes two points, an invocation per point and unit computes all `1 + K` rows of a
//! layer (affine map, gate, activation), every layer's rows of its points stay in workgroup memory
//! and its weights pass through it 16 inputs at a time (read coalesced), from the state and the
//! tangent seeds to the value `f` and either divergence (exact: the diagonal tangent entries;
//! Hutchinson: `εᵀ` times the tangent row); the adjoint right-hand side also writes every layer's
//! `X`, `U` and `Y` for the backward pass (stacked layer after layer, one buffer each). Otherwise
//! per layer: one dispatch of the same per-point work, the first layer reading `X0` straight from
//! the state and the seeds (writing it for the backward pass) and the last writing the value (with
//! a divergence, each workgroup takes whole points, each unit leaves its term in workgroup memory,
//! its diagonal tangent entry or `ε_k` times its tangent entry, and unit 0 of each point sums
//! them); layers at least 16 wide with tiled products take one dispatch of a tiled kernel
//! (`layer_tiled`: 64 × 64 tiles of `X Wᵀ` through workgroup memory, a 4 × 4 block per invocation,
//! each tile holding whole points so that the affine map, gate and activation of all their rows
//! follow in the same invocation; `X0` then needs a dispatch of its own, and a tiled last layer of
//! Hutchinson's estimator a `write_value`). Layer by layer, from [`TRANSPOSED_WEIGHT_ROWS`] rows on
//! the simple products read a transposed copy of the weights, made by one more dispatch.
//!
//! Backward, per layer: the row cotangents `Ȳ, Ū = Ȳ ⊙ g` (through `φ′`, and `φ″` for the
//! divergence's second-order terms, as in `nn::net`; the last layer seeds `a_z` on the primal
//! rows and `−a_l e_k` on tangent rows `k`, or `−a_l ε` on Hutchinson's one tangent row);
//! partial sums over chunks of 16 to 256 rows (short where the batch is small) of `W̄ = Ūᵀ X`
//! (tiled as above for layers up to 64 wide) and of `Σ Ȳ ⊙ U` and `Σ_primal Ȳ`; their totals
//! (`b̄1 = g Σ_primal Ȳ`, `b̄3 = t Σ_primal Ȳ`, `c̄ = t ḡ g(1−g)`, `b̄2 = ḡ g(1−g)`); and
//! `X̄ = Ū W`, which one kernel takes straight on through the layer below's activation and
//! gate to that layer's `Ȳ, Ū` (all rows of a point in registers; for wide layers with tiled
//! backward kernels, `cotangent_tiled`: a tiled product whose tiles hold whole points, the
//! activation's second-order sum over a point's tangent rows passed through workgroup memory).
//! With the simple kernels a layer is one dispatch: its first invocations sum the parameter partials (weights and units
//! together, each layer's in its own part of the partial-sum buffers), the rest take `X̄` on
//! through the rows of the layer below (`Ȳ, Ū` of two layers side by side, one read and one
//! written) or, in the first layer, into the state's cotangent. One final reduction finishes
//! every layer's partials (a table of the layers in the dispatch's data). So for the toy CNF
//! with simple kernels `f` is one dispatch and an adjoint right-hand side `L + 3` (RDM's `f`
//! included); tiled backward kernels take a dispatch of their own for each layer's weight
//! partials.
//! WGSL has no floating-point atomics, so no kernel accumulates across invocations.

use crate::context::{GpuContext, MAX_DISPATCH_DATA};
use crate::error::GpuError;
use crate::kernel::Kernel;
use crate::vector::GpuVec;

use std::ops::Range;
use std::sync::Arc;

mod backward;
mod buffers;
mod forward;
mod model;
mod plan;
#[cfg(test)]
mod tests;
mod tune;

use buffers::Buffers;

/// Where `net_forward` takes the state from.
enum NetInput<'a> {
    /// A state vector and the offset of the state in it.
    State(&'a GpuVec, usize),
    /// Interpolated node states: the dispatch's data (the table of layers, then the `nodes`
    /// coefficients) and the node states stacked as rows.
    Nodes {
        data: &'a [f32],
        nodes: usize,
        values: &'a GpuVec,
    },
}

/// How the model's divergence `tr ∂f/∂z` is computed, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DivergenceKind {
    /// No `Δlogp` (a plain neural ODE).
    None,
    /// `D` tangents seeded with the unit vectors: `Σ_k (J e_k)_k`.
    Exact,
    /// One tangent seeded with the noise `ε` of each point: `εᵀ J ε`.
    Hutchinson,
}

/// Activation between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuActivation {
    /// `tanh`.
    Tanh,
    /// `log(1 + eˣ)`.
    Softplus,
}

/// Rows per point `1 + D` the row-wise kernels hold in registers (two vectors, `Rows` in
/// `common.wgsl`).
const MAX_ROWS: usize = 8;

/// Which matrix-product kernels a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuKernels {
    /// Chosen by size from the H200 measurements in docs/gpu.md: tiled products from
    /// [`AUTO_TILED_ROWS`] stacked rows on (with their blocks in registers they were 4–7 times
    /// faster than the simple ones at batch 10⁴ and 10⁵ of the toy CNF), simple ones below
    /// (faster at batch 100). Where the choice matters, the models' `tune_kernels` times the
    /// choices on the adapter in use instead.
    Auto,
    /// One output per invocation everywhere (from [`TRANSPOSED_WEIGHT_ROWS`] stacked rows on,
    /// the layer-by-layer forward products of a net with a wide layer read a transposed copy of
    /// the weights; `net_forward` stages them through workgroup memory).
    Simple,
    /// Workgroup-memory tiles with 4 × 4 register blocks for every product of layers at least
    /// 16 wide (forward, input cotangent: each fused with the activation that follows it) and
    /// the weight cotangents of layers up to 64 wide.
    Tiled,
    /// Tiled forward products ([`GpuKernels::Tiled`]'s), simple backward ones.
    TiledForward,
    /// Simple forward products, tiled backward ones (input and weight cotangents as in
    /// [`GpuKernels::Tiled`]).
    TiledBackward,
}

impl GpuKernels {
    /// The fixed choice with tiled forward and/or backward products.
    pub fn from_parts(forward_tiled: bool, backward_tiled: bool) -> Self {
        match (forward_tiled, backward_tiled) {
            (false, false) => Self::Simple,
            (true, false) => Self::TiledForward,
            (false, true) => Self::TiledBackward,
            (true, true) => Self::Tiled,
        }
    }
}

/// Stacked rows `R = (1 + K)B` from which [`GpuKernels::Auto`] tiles the products.
pub const AUTO_TILED_ROWS: usize = 16_384;

/// Stacked rows `R` from which the simple layer-by-layer forward products (nets wider than
/// `net_forward` takes) of a net with a layer at least 16 wide each way read a transposed copy
/// of the weights, made by one more dispatch per
/// evaluation (`transpose_weights`): with an invocation per point and unit, consecutive units
/// reading `W[j, q]` straight from `θ` touch addresses `din` apart, one memory transaction per
/// unit instead of one per 32; below this size the extra dispatch costs more than it saves.
pub const TRANSPOSED_WEIGHT_ROWS: usize = 2048;

/// Widest layer of a net whose forward pass `net_forward` takes in one dispatch (`NET_WIDTH` in
/// `forward.wgsl`).
const NET_WIDTH: usize = 64;

/// Points per workgroup of `net_forward` (`NET_POINTS`).
const NET_POINTS: usize = 2;

/// Widest layer the tiled weight-cotangent kernel takes (`reduce_weights` in `backward.wgsl`).
const TILE: usize = 64;

/// Most rows per partial sum of the parameter reductions.
const CHUNK: usize = 256;

/// Fewest rows per partial sum of the parameter reductions (a multiple of the tiled one's 16
/// rows per step).
const MIN_CHUNK: usize = 16;

/// Invocations (chunks × items per chunk) the simple reduction aims at: enough to fill a large
/// GPU.
const REDUCE_INVOCATIONS: usize = 1 << 17;

/// Most chunks the simple reduction makes unless its chunks are already [`CHUNK`] long (each of
/// the final reduction's 16 invocations per item then sums at most 16 partials).
const FEW_CHUNKS: usize = 256;

/// The layers of a net with widths `dims` and their parameter offsets (`nn::OdeNet`'s layout:
/// per layer `W` (`dout × din`, row-major), `b1`, `c`, `b2`, `b3`), and the parameter count.
fn layers_of(dims: &[usize]) -> (Vec<Layer>, usize) {
    let mut layers = Vec::new();
    let mut off = 0;
    for w in dims.windows(2) {
        let (din, dout) = (w[0], w[1]);
        layers.push(Layer {
            din,
            dout,
            w: off,
            b1: off + dout * din,
            c: off + dout * din + dout,
            b2: off + dout * din + 2 * dout,
            b3: off + dout * din + 3 * dout,
        });
        off += dout * din + 4 * dout;
    }
    (layers, off)
}

/// Whether a layer's weight cotangents take the tiled kernel (layers up to [`TILE`] wide, with
/// tiled backward kernels).
fn tiled_reduction(l: &Layer, tiled_backward: bool) -> bool {
    tiled_backward && l.dout <= TILE && l.din <= TILE
}

/// Rows per partial sum of the tiled weight-cotangent kernel over `rows` stacked rows (one
/// workgroup per chunk): a power of two in `[MIN_CHUNK, CHUNK]`, at most [`FEW_CHUNKS`] chunks
/// unless they are `CHUNK` long. Chunks of 256 rows at batch 10³ of the toy CNF left 12
/// workgroups, each 16 steps long; chunks of 16 make 188 one step long.
fn tiled_chunk_rows(rows: usize) -> usize {
    rows.div_ceil(FEW_CHUNKS)
        .next_power_of_two()
        .clamp(MIN_CHUNK, CHUNK)
}

/// Workgroup size of `layer_forward` (whole points per workgroup where it sums the
/// divergence: at most this many output units per point).
const LAYER_FORWARD_GROUP: usize = 256;

/// Rows of a tile of the tiled products; `layer_tiled`'s tiles take whole points,
/// `⌊TILE_ROWS / (1 + K)⌋` of them (`LAYER_POINTS` in `tiled.wgsl`).
const TILE_ROWS: usize = 64;

/// Words per layer of `reduce_final`'s table (`LAYER_WORDS` in `backward.wgsl`).
const LAYER_WORDS: usize = 11;

/// Most layers of a model: `reduce_final`'s table fits one dispatch's data.
const MAX_LAYERS: usize = MAX_DISPATCH_DATA / LAYER_WORDS;

/// Inputs `q` per invocation of the simple weight reduction (`QB` in `common.wgsl`).
const REDUCE_BLOCK: usize = 4;

/// Invocations per chunk of the simple weight reduction of a layer: one per unit and block of
/// [`REDUCE_BLOCK`] inputs.
fn reduce_items(l: &Layer) -> usize {
    l.dout * l.din.div_ceil(REDUCE_BLOCK)
}

/// Rows per partial sum of the simple reduction of a layer with `items` invocations per chunk
/// ([`reduce_items`]) over `rows` stacked rows: a power of two in `[MIN_CHUNK, CHUNK]`, short
/// where the batch is small. Each invocation sums its chunk serially, so at batch 100 (300 rows)
/// chunks of 256 left two chunks and 256-long loops, a GPU's memory latency 256 times over;
/// chunks of 16 make the loops 16 long and the invocations 16 times as many.
fn chunk_rows(rows: usize, items: usize) -> usize {
    let for_invocations = (rows * items).div_ceil(REDUCE_INVOCATIONS);
    let for_final = rows.div_ceil(FEW_CHUNKS);
    for_invocations
        .max(for_final)
        .next_power_of_two()
        .clamp(MIN_CHUNK, CHUNK)
}

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

/// Uniform block `Dims` of `common.wgsl`.
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
    t: f32,
    scale: f32,
    side_in: u32,
    side_out: u32,
    adj: u32,
    x_at: u32,
    uy_at: u32,
    x_next: u32,
    y_below: u32,
    nodes: u32,
    node_len: u32,
}

impl Dims {
    fn words(&self) -> [u32; 24] {
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
            self.t.to_bits(),
            self.scale.to_bits(),
            self.side_in,
            self.side_out,
            self.adj,
            self.x_at,
            self.uy_at,
            self.x_next,
            self.y_below,
            self.nodes,
            self.node_len,
        ]
    }
}

/// The net's WGSL, one module: the shared bindings and helpers, the forward kernels, the
/// backward kernels and reductions, then the tiled products (each file beside the Rust that
/// launches its kernels).
const SOURCE: &str = concat!(
    include_str!("common.wgsl"),
    include_str!("forward.wgsl"),
    include_str!("backward.wgsl"),
    include_str!("tiled.wgsl")
);

/// The kernels of [`SOURCE`] (at most 8 storage buffers each, the portable limit).
const ENTRIES: [&str; 15] = [
    "seed_input",
    "layer_forward",
    "write_value",
    "layer_backward_rows",
    "reduce_partial",
    "reduce_final",
    "input_backward",
    "input_backward_rows",
    "reduce_weights",
    "transpose_weights",
    "layer_backward",
    "first_layer_backward",
    "net_forward",
    "layer_tiled",
    "cotangent_tiled",
];

struct Kernels {
    seed_input: Kernel,
    layer_forward: Kernel,
    write_value: Kernel,
    layer_backward_rows: Kernel,
    reduce_partial: Kernel,
    reduce_final: Kernel,
    input_backward: Kernel,
    input_backward_rows: Kernel,
    reduce_weights: Kernel,
    transpose_weights: Kernel,
    layer_backward: Kernel,
    first_layer_backward: Kernel,
    net_forward: Kernel,
    layer_tiled: Kernel,
    cotangent_tiled: Kernel,
}

/// The concat-squash network for batches of a fixed size, with or without the divergence
/// tangents (the core of [`GpuNetRhs`](crate::GpuNetRhs) and [`GpuCnf`](crate::GpuCnf)).
pub(crate) struct ConcatSquashNet {
    ctx: Arc<GpuContext>,
    kernels: Kernels,
    layers: Vec<Layer>,
    act: GpuActivation,
    batch: usize,
    dim: usize,
    divergence: DivergenceKind,
    /// Forward-mode tangents stacked under the primal rows: `D` (exact), 1 (Hutchinson) or 0.
    tangents: usize,
    param_len: usize,
    /// Simple or tiled (workgroup-memory) kernels for the products.
    kernels_choice: GpuKernels,
    /// Every layer's `W` transposed (`din × dout` at `W`'s offset; the rest of the parameter
    /// layout unused), for the simple forward products from [`TRANSPOSED_WEIGHT_ROWS`] rows on.
    weights_t: wgpu::Buffer,
    /// Scratch for `net_forward`'s data with interpolation coefficients (kept between calls).
    node_data: Vec<f32>,
    /// Everything sized by the batch.
    buf: Buffers,
    /// Model name in errors.
    what: String,
}

impl Drop for ConcatSquashNet {
    /// The model's buffers are released: kept bind groups must let go of them.
    fn drop(&mut self) {
        self.ctx.buffers_released();
    }
}

impl std::fmt::Debug for ConcatSquashNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcatSquashNet")
            .field("batch", &self.batch)
            .field("layers", &self.layers)
            .field("act", &self.act)
            .field("divergence", &self.divergence)
            .finish()
    }
}

impl ConcatSquashNet {
    /// A net with layer widths `dims` (`D → … → D`, at least two) for batches of `batch`
    /// points; with a divergence, the state carries `Δlogp` and the tangents are stacked
    /// (Hutchinson's noise starts as a fixed Rademacher draw). `what` names the model in errors.
    pub(crate) fn new(
        ctx: &Arc<GpuContext>,
        dims: &[usize],
        act: GpuActivation,
        batch: usize,
        divergence: DivergenceKind,
        what: &str,
    ) -> Result<Self, GpuError> {
        let invalid = |reason: String| GpuError::Invalid {
            what: what.into(),
            reason,
        };
        if dims.len() < 2 || dims.contains(&0) || batch == 0 {
            return Err(invalid(format!(
                "needs at least two positive widths and batch >= 1, got {dims:?}, batch {batch}"
            )));
        }
        let dim = dims[0];
        if dims.len() - 1 > MAX_LAYERS {
            return Err(invalid(format!(
                "{} layers; at most {MAX_LAYERS} (the final reduction's table of layers rides in one dispatch's data)",
                dims.len() - 1
            )));
        }
        if dims[dims.len() - 1] != dim {
            return Err(invalid(format!("input and output widths differ: {dims:?}")));
        }
        let tangents = match divergence {
            DivergenceKind::None => 0,
            DivergenceKind::Exact => dim,
            DivergenceKind::Hutchinson => 1,
        };
        if tangents + 1 > MAX_ROWS {
            return Err(invalid(format!(
                "state width {dim} is above {} (the exact divergence keeps 1 + D rows per point in registers; Hutchinson's estimator takes any width)",
                MAX_ROWS - 1
            )));
        }
        let (layers, off) = layers_of(dims);
        let p = ctx.pipelines(
            "concat-squash kernels",
            SOURCE,
            &ENTRIES,
            &[("POINT_ROWS", (1 + tangents) as f64)],
        );
        let mut it = p.into_iter();
        let mut next = || it.next().expect("one pipeline per entry");
        let kernels = Kernels {
            seed_input: next(),
            layer_forward: next(),
            write_value: next(),
            layer_backward_rows: next(),
            reduce_partial: next(),
            reduce_final: next(),
            input_backward: next(),
            input_backward_rows: next(),
            reduce_weights: next(),
            transpose_weights: next(),
            layer_backward: next(),
            first_layer_backward: next(),
            net_forward: next(),
            layer_tiled: next(),
            cotangent_tiled: next(),
        };
        let buf = Buffers::new(
            ctx,
            what,
            &layers,
            batch,
            tangents,
            divergence == DivergenceKind::Hutchinson,
        )?;
        Ok(Self {
            kernels_choice: GpuKernels::Auto,
            kernels,
            layers,
            act,
            batch,
            dim,
            divergence,
            tangents,
            param_len: off,
            weights_t: ctx.storage(off),
            node_data: Vec::new(),
            buf,
            what: what.into(),
            ctx: Arc::clone(ctx),
        })
    }

    /// Changes the batch size: new buffers for `batch` points (the compiled kernels stay;
    /// Hutchinson's noise restarts as the fixed draw).
    ///
    /// Errors: a zero batch, or one beyond 32-bit indexing or the device's buffer limit (the
    /// model keeps its old batch then).
    pub(crate) fn set_batch(&mut self, batch: usize) -> Result<(), GpuError> {
        self.buf = Buffers::new(
            &self.ctx,
            &self.what,
            &self.layers,
            batch,
            self.tangents,
            self.divergence == DivergenceKind::Hutchinson,
        )?;
        // The old buffers are gone: kept bind groups must let go of them.
        self.ctx.buffers_released();
        self.batch = batch;
        Ok(())
    }

    /// Whether the last layer's forward kernel writes the value itself: without a divergence
    /// each invocation writes its own entry; with one, unit 0's invocation of each point sums
    /// the `D` terms its point's units leave in workgroup memory (exact: the diagonal tangent
    /// entries, `D ≤ 7`; Hutchinson: `ε_k` times the tangent row's entry `k`), so Hutchinson's
    /// estimate takes `write_value` only where `D` is above [`LAYER_FORWARD_GROUP`] or the last
    /// layer's product is tiled (`layer_tiled` sums nothing).
    fn value_in_last_layer(&self) -> bool {
        let last = self.layers[self.layers.len() - 1];
        self.divergence != DivergenceKind::Hutchinson
            || (last.dout <= LAYER_FORWARD_GROUP && !(self.tiles_forward() && Self::wide(&last)))
    }

    fn has_divergence(&self) -> bool {
        self.divergence != DivergenceKind::None
    }

    /// Replaces Hutchinson's noise (`B × D`, row-major).
    ///
    /// Errors: not a Hutchinson model, a wrong length, or a non-finite entry.
    pub(crate) fn set_noise(&mut self, noise: &[f32]) -> Result<(), GpuError> {
        let invalid = |reason: String| GpuError::Invalid {
            what: "Hutchinson noise".into(),
            reason,
        };
        if self.divergence != DivergenceKind::Hutchinson {
            return Err(invalid("the model has no Hutchinson estimator".into()));
        }
        if noise.len() != self.batch * self.dim {
            return Err(invalid(format!(
                "{} floats, expected batch × D = {}",
                noise.len(),
                self.batch * self.dim
            )));
        }
        if let Some(i) = noise.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!("entry {i} is {}", noise[i])));
        }
        self.ctx.write(&self.buf.noise, noise);
        Ok(())
    }

    pub(crate) fn param_len(&self) -> usize {
        self.param_len
    }

    /// `B D`, plus `B` for `Δlogp` with the divergence.
    pub(crate) fn state_len(&self) -> usize {
        self.batch * (self.dim + usize::from(self.has_divergence()))
    }

    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    /// `2R Σ_l d_l d_{l+1}` over the `R` stacked rows.
    pub(crate) fn flops_per_eval(&self) -> usize {
        2 * self.rows() * self.layers.iter().map(|l| l.din * l.dout).sum::<usize>()
    }

    fn rows(&self) -> usize {
        (1 + self.tangents) * self.batch
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
            } | if self.divergence == DivergenceKind::Hutchinson {
                32
            } else {
                0
            },
            ..Dims::default()
        }
    }

    pub(crate) fn set_kernels(&mut self, kernels: GpuKernels) {
        self.kernels_choice = kernels;
    }

    pub(crate) fn kernels(&self) -> GpuKernels {
        self.kernels_choice
    }

    /// Whether the forward products are tiled at the current batch.
    pub(crate) fn tiles_forward(&self) -> bool {
        match self.kernels_choice {
            GpuKernels::Tiled | GpuKernels::TiledForward => true,
            GpuKernels::Simple | GpuKernels::TiledBackward => false,
            GpuKernels::Auto => self.rows() >= AUTO_TILED_ROWS,
        }
    }

    /// Whether the simple layer-by-layer forward products read the transposed weights: from
    /// [`TRANSPOSED_WEIGHT_ROWS`] rows on, where the forward pass is not one `net_forward` and a
    /// layer at least 16 wide each way has a simple product (in a narrower layer, few units share a point or few weights are read per unit,
    /// and the strided reads cost about what the extra dispatch does).
    fn transposes_weights(&self) -> bool {
        self.rows() >= TRANSPOSED_WEIGHT_ROWS
            && !self.tiles_forward()
            && self.one_dispatch_forward().is_none()
            && self.layers.iter().any(Self::wide)
    }

    /// Every layer's `W` transposed into `weights_t` (one dispatch).
    fn transpose_weights(&self, params: &GpuVec) {
        self.ctx.dispatch_words_with_data(
            &self.kernels.transpose_weights,
            self.buf.plan.items as u32,
            &Dims {
                r0: self.layers.len() as u32,
                ..Dims::default()
            }
            .words(),
            &[(0, params.buffer()), (3, &self.weights_t)],
            &self.buf.plan.table[0],
        );
    }

    /// The `net_forward` kernel where the forward pass is one dispatch of it (every layer with
    /// its rows in workgroup memory): with simple forward products and layers at most
    /// [`NET_WIDTH`] wide.
    fn one_dispatch_forward(&self) -> Option<&Kernel> {
        let fits = self.layers.iter().all(|l| l.din.max(l.dout) <= NET_WIDTH);
        Some(&self.kernels.net_forward).filter(|_| fits && !self.tiles_forward())
    }

    /// Whether the backward pass's products and weight cotangents are tiled.
    pub(crate) fn tiles_backward(&self) -> bool {
        match self.kernels_choice {
            GpuKernels::Tiled | GpuKernels::TiledBackward => true,
            GpuKernels::Simple | GpuKernels::TiledForward => false,
            GpuKernels::Auto => self.rows() >= AUTO_TILED_ROWS,
        }
    }
}

pub(crate) use model::concat_squash_model;
