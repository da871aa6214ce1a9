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
//! Forward, for nets at most 64 wide with simple products: one dispatch (`net_forward`) in
//! which a workgroup takes two points, an invocation per point and unit computes all `1 + K`
//! rows of a layer (affine map, gate, activation), every layer's rows of its points stay in
//! workgroup memory and its weights pass through it 16 inputs at a time (read coalesced), from the state and the tangent seeds to the value `f` and either
//! divergence (exact: the diagonal tangent entries; Hutchinson: `εᵀ` times the tangent row);
//! the adjoint right-hand side also writes every layer's `X`, `U` and `Y` for the backward
//! pass (stacked layer after layer, one buffer each). Otherwise per layer: one dispatch of the
//! same per-point work, the first layer reading `X0` straight from the state and the seeds
//! (writing it for the backward pass) and the last writing the value (with the exact
//! divergence, each workgroup takes whole points, each unit leaves its diagonal tangent entry
//! in workgroup memory and unit 0 of each point sums them; Hutchinson's estimate takes a
//! `write_value` dispatch); for layers at least 16 wide with tiled products
//! the products `X Wᵀ` come first from a tiled kernel (64 × 64 tiles through workgroup memory,
//! a 4 × 4 block per invocation; `X0` then needs a dispatch of its own). Layer by layer, from
//! [`TRANSPOSED_WEIGHT_ROWS`] rows on the simple products read a transposed copy of the
//! weights, made by one more dispatch.
//!
//! Backward, per layer: the row cotangents `Ȳ, Ū = Ȳ ⊙ g` (through `φ′`, and `φ″` for the
//! divergence's second-order terms, as in `nn::net`; the last layer seeds `a_z` on the primal
//! rows and `−a_l e_k` on tangent rows `k`, or `−a_l ε` on Hutchinson's one tangent row);
//! partial sums over chunks of 16 to 256 rows (short where the batch is small) of `W̄ = Ūᵀ X`
//! (tiled as above for layers up to 64 wide) and of `Σ Ȳ ⊙ U` and `Σ_primal Ȳ`; their totals
//! (`b̄1 = g Σ_primal Ȳ`, `b̄3 = t Σ_primal Ȳ`, `c̄ = t ḡ g(1−g)`, `b̄2 = ḡ g(1−g)`); and
//! `X̄ = Ū W`, which one kernel takes straight on through the layer below's activation and
//! gate to that layer's `Ȳ, Ū` (all rows of a point in registers; for wide layers with tiled
//! backward kernels, a tiled product and then the row kernel). With the simple kernels a layer
//! is one dispatch: its first invocations sum the parameter partials (weights and units
//! together, each layer's in its own part of the partial-sum buffers), the rest take `X̄` on
//! through the rows of the layer below (`Ȳ, Ū` of two layers side by side, one read and one
//! written) or, in the first layer, into the state's cotangent. One final reduction finishes
//! every layer's partials (a table of the layers in the dispatch's data). So for the toy CNF
//! with simple kernels `f` is one dispatch and an adjoint right-hand side `L + 3` (RDM's `f`
//! included); tiled backward kernels take a dispatch of their own for each layer's weight
//! partials and, in wide layers, one for the product `X̄` and one for the rows below.
//! WGSL has no floating-point atomics, so no kernel accumulates across invocations.

use crate::context::{GpuContext, MAX_DISPATCH_DATA};
use crate::error::GpuError;
use crate::kernel::Kernel;
use crate::vector::GpuVec;

use std::ops::Range;
use std::sync::Arc;

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
/// `concat_squash.wgsl`).
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
    /// 16 wide (forward, input cotangent) and the weight cotangents of layers up to 64 wide.
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
/// `concat_squash.wgsl`).
const NET_WIDTH: usize = 64;

/// Points per workgroup of `net_forward` (`NET_POINTS`).
const NET_POINTS: usize = 2;

/// Widest layer the tiled weight-cotangent kernel takes (`reduce_weights` in `concat_squash.wgsl`).
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

/// How every layer's parameter cotangents are reduced at one batch size, worked out once per
/// batch: each layer's partial sums side by side (so that one dispatch finishes them all, sized
/// by the simple reduction's chunks, at least as many as the tiled one's), and for either
/// choice of backward kernels the rows per chunk of each layer and `reduce_final`'s table.
struct ReducePlan {
    /// Offset of each layer's weight partials (chunks × weights).
    weights_at: Vec<usize>,
    /// Offset of each layer's per-unit partials (chunks × 2 × units).
    units_at: Vec<usize>,
    /// Floats of the two partial-sum buffers.
    weight_floats: usize,
    unit_floats: usize,
    /// Indexed by whether the backward kernels are tiled: rows per chunk of each layer.
    chunk: [Vec<usize>; 2],
    /// Likewise: `reduce_final`'s table of layers (`LAYER_WORDS` words each, as f32 bits).
    table: [Vec<f32>; 2],
    /// Items of `reduce_final`: weights and units of every layer.
    items: usize,
}

impl ReducePlan {
    fn new(layers: &[Layer], rows: usize) -> Self {
        let chunk = [false, true].map(|tiled_backward| {
            layers
                .iter()
                .map(|l| {
                    if tiled_reduction(l, tiled_backward) {
                        tiled_chunk_rows(rows)
                    } else {
                        chunk_rows(rows, reduce_items(l))
                    }
                })
                .collect::<Vec<usize>>()
        });
        // Room for the partials of either choice: the more chunks of the two.
        let (mut weights_at, mut units_at) = (Vec::new(), Vec::new());
        let (mut w_at, mut u_at) = (0, 0);
        for (i, l) in layers.iter().enumerate() {
            let chunks = rows.div_ceil(chunk[0][i].min(chunk[1][i]));
            weights_at.push(w_at);
            units_at.push(u_at);
            w_at += chunks * l.din * l.dout;
            u_at += chunks * 2 * l.dout;
        }
        let table = chunk.clone().map(|chunk| {
            let mut first = 0;
            let mut words = Vec::with_capacity(layers.len() * LAYER_WORDS);
            for (i, l) in layers.iter().enumerate() {
                let row = [
                    first,
                    l.din,
                    l.dout,
                    l.w,
                    l.b1,
                    l.c,
                    l.b2,
                    l.b3,
                    rows.div_ceil(chunk[i]),
                    weights_at[i],
                    units_at[i],
                ];
                words.extend(row.map(|v| f32::from_bits(v as u32)));
                first += l.din * l.dout + l.dout;
            }
            words
        });
        let items = layers.iter().map(|l| l.din * l.dout + l.dout).sum();
        Self {
            weights_at,
            units_at,
            weight_floats: w_at,
            unit_floats: u_at,
            chunk,
            table,
            items,
        }
    }
}

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

/// Where each layer's part of a stacked buffer starts: `rows` times the widths before it.
fn offsets(widths: impl Iterator<Item = usize>, rows: usize) -> Vec<usize> {
    widths
        .scan(0, |at, w| {
            let this = *at;
            *at += rows * w;
            Some(this)
        })
        .collect()
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

/// Workgroup size of `layer_forward` (whole points per workgroup where it sums the exact
/// divergence; `D ≤ 7` output units per point).
const LAYER_FORWARD_GROUP: usize = 256;

/// Words per layer of `reduce_final`'s table (`LAYER_WORDS` in `concat_squash.wgsl`).
const LAYER_WORDS: usize = 11;

/// Most layers of a model: `reduce_final`'s table fits one dispatch's data.
const MAX_LAYERS: usize = MAX_DISPATCH_DATA / LAYER_WORDS;

/// Inputs `q` per invocation of the simple weight reduction (`QB` in `concat_squash.wgsl`).
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

/// Uniform block `Dims` of `concat_squash.wgsl`.
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

/// The kernels of `concat_squash.wgsl` (at most 8 storage buffers each, the portable limit).
const ENTRIES: [&str; 14] = [
    "seed_input",
    "layer_forward",
    "write_value",
    "layer_backward_rows",
    "reduce_partial",
    "reduce_final",
    "input_backward",
    "input_backward_rows",
    "reduce_weights",
    "gemm_weights",
    "transpose_weights",
    "layer_backward",
    "first_layer_backward",
    "net_forward",
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
    gemm_weights: Kernel,
    transpose_weights: Kernel,
    layer_backward: Kernel,
    first_layer_backward: Kernel,
    net_forward: Kernel,
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

/// The buffers of one batch size.
struct Buffers {
    /// Hutchinson's noise `ε` (`B × D`); a one-float placeholder otherwise (the kernels that
    /// read it bind it in every mode).
    noise: wgpu::Buffer,
    /// Every layer's input `X_l` (R × d_l), affine `U_l` and pre-activation `Y_l`
    /// (R × d_{l+1}), each kind stacked layer after layer in one buffer (so that one kernel
    /// can write every layer's), layer `l`'s from `x_at[l]` and `uy_at[l]` on.
    xs: wgpu::Buffer,
    us: wgpu::Buffer,
    ys: wgpu::Buffer,
    x_at: Vec<usize>,
    uy_at: Vec<usize>,
    /// Backward scratch (R × max width): X̄ (two, ping-pong), Ȳ and Ū (two sides each, `side`
    /// floats apart, in one buffer: one layer's are read while the next layer down's are
    /// written, in one dispatch where the two are fused); partial sums of the weight
    /// cotangents and of the per-unit sums.
    xbar: [wgpu::Buffer; 2],
    ybar: wgpu::Buffer,
    ubar: wgpu::Buffer,
    side: usize,
    partials: wgpu::Buffer,
    unit_partials: wgpu::Buffer,
    /// Where the partial sums go and how they are finished.
    plan: ReducePlan,
}

impl Buffers {
    /// Checks that a batch of `batch` points with `tangents` tangent rows fits 32-bit indexing
    /// and the device's buffer limit, and allocates its buffers (Hutchinson's noise as a fixed
    /// Rademacher draw).
    fn new(
        ctx: &GpuContext,
        what: &str,
        layers: &[Layer],
        batch: usize,
        tangents: usize,
        hutchinson: bool,
    ) -> Result<Self, GpuError> {
        if batch == 0 {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: "batch must be >= 1".into(),
            });
        }
        let rows = (1 + tangents) * batch;
        let dim = layers[0].din;
        let max_width = layers.iter().map(|l| l.din.max(l.dout)).max().unwrap_or(1);
        // The stacked activations of every layer, per row.
        let x_floats: usize = layers.iter().map(|l| l.din).sum();
        let uy_floats: usize = layers.iter().map(|l| l.dout).sum();
        let per_row = (max_width * max_width.max(2)).max(x_floats.max(uy_floats));
        if rows
            .checked_mul(per_row)
            .is_none_or(|v| v > u32::MAX as usize)
        {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: format!(
                    "batch {batch} with layers up to {max_width} wide exceeds 32-bit indexing"
                ),
            });
        }
        // The largest buffers: the two sides of Ȳ and of Ū (2R × widest layer) and the partial
        // sums of every layer's weight cotangents, side by side (see `ReducePlan`).
        let wide = rows * max_width;
        let plan = ReducePlan::new(layers, rows);
        let (partials, unit_partials) = (plan.weight_floats, plan.unit_floats);
        if partials.max(unit_partials) > u32::MAX as usize {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: format!("batch {batch}: the partial sums exceed 32-bit indexing"),
            });
        }
        ctx.check_buffer(what, 2 * wide)?;
        ctx.check_buffer(what, rows * x_floats.max(uy_floats))?;
        ctx.check_buffer(what, partials)?;
        ctx.check_buffer(what, unit_partials)?;
        Ok(Self {
            noise: if hutchinson {
                let v = ctx.storage(batch * dim);
                ctx.write(&v, &rademacher(batch * dim));
                v
            } else {
                ctx.storage(1)
            },
            xs: ctx.storage(rows * x_floats),
            us: ctx.storage(rows * uy_floats),
            ys: ctx.storage(rows * uy_floats),
            x_at: offsets(layers.iter().map(|l| l.din), rows),
            uy_at: offsets(layers.iter().map(|l| l.dout), rows),
            xbar: [ctx.storage(wide), ctx.storage(wide)],
            ybar: ctx.storage(2 * wide),
            ubar: ctx.storage(2 * wide),
            side: wide,
            partials: ctx.storage(partials),
            unit_partials: ctx.storage(unit_partials),
            plan,
        })
    }
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
            include_str!("concat_squash.wgsl"),
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
            gemm_weights: next(),
            transpose_weights: next(),
            layer_backward: next(),
            first_layer_backward: next(),
            net_forward: next(),
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
    /// each invocation writes its own entry, with the exact one (`D ≤ 7`) unit 0's invocation
    /// sums the `D` diagonal tangent entries its point's units leave in workgroup memory;
    /// Hutchinson's estimate (any `D`) takes `write_value`.
    fn value_in_last_layer(&self) -> bool {
        self.divergence != DivergenceKind::Hutchinson
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

    /// Whether a layer is wide enough for the tiled product.
    fn wide(l: &Layer) -> bool {
        l.din >= 16 && l.dout >= 16
    }

    /// `C = A Wᵀ` (`transpose_back = false`: `C[r, j] = Σ_q A[r, q] W[j, q]`, `A` is `rows × din`)
    /// or `C = A W` (`true`: `C[r, q] = Σ_j A[r, j] W[j, q]`, `A` is `rows × dout`), tiled; `A`
    /// starts at `a_at` in `a`, `C` at `c_at` in `c`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        (a, a_at): (&wgpu::Buffer, usize),
        lda: usize,
        l: &Layer,
        transpose_back: bool,
        (c, c_at): (&wgpu::Buffer, usize),
        ldc: usize,
        rows: usize,
        params: &GpuVec,
    ) {
        // C[r, col] = Σ_k A[r·lda + k] θ[w + col·ws_c + k·ws_k].
        let (n, k, ws_c, ws_k) = if transpose_back {
            (l.din, l.dout, 1, l.din)
        } else {
            (l.dout, l.din, l.din, 1)
        };
        let tiles = rows.div_ceil(64) * n.div_ceil(64);
        let dims = Dims {
            rows: rows as u32,
            din: k as u32,
            dout: n as u32,
            w: l.w as u32,
            b1: ws_c as u32,
            c: ws_k as u32,
            at_in: lda as u32,
            at_out: ldc as u32,
            side_in: a_at as u32,
            uy_at: c_at as u32,
            ..Dims::default()
        };
        self.run(
            &self.kernels.gemm_weights,
            tiles * 256,
            dims,
            &[(0, params.buffer()), (1, a), (3, c)],
        );
    }

    /// One dispatch of `kernel` over `threads` invocations with the buffers of `buffers` at the
    /// bindings it uses (callers pass what the fused and the separate kernels of one step need
    /// together; the context leaves the rest out).
    fn run(&self, kernel: &Kernel, threads: usize, dims: Dims, buffers: &[(u32, &wgpu::Buffer)]) {
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
    fn forward(
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
            None => (&self.buf.xbar[0], 0),
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
            if self.tiles_forward() && Self::wide(l) {
                // U = X Wᵀ as a tiled product; layer_forward adds the rest.
                self.gemm(
                    (&self.buf.xs, x_at),
                    l.din,
                    l,
                    false,
                    (&self.buf.us, uy_at),
                    l.dout,
                    rows,
                    params,
                );
                dims.mode |= 8;
            } else {
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
            // With the value and the exact divergence, each workgroup takes whole points
            // (⌊256 / dout⌋) and sums their diagonal tangent entries in workgroup memory.
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
    fn net_forward(
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
            None => (&self.buf.xbar[0], 0, 0),
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
    fn forward_writes_value(&self) -> bool {
        self.one_dispatch_forward().is_some() || self.value_in_last_layer()
    }
}

impl ConcatSquashNet {
    /// `dz = f(t, z)` (and `dΔlogp` with the divergence).
    pub(crate) fn eval(&mut self, t: f32, z: &GpuVec, params: &GpuVec, dz: &mut GpuVec) {
        self.forward(t, z, 0, params, false, Some((dz, 0)));
        if !self.forward_writes_value() {
            self.write_value(dz, 0);
        }
    }

    /// `dz` and Hutchinson's `dΔlogp` from the last layer's `Y` into `out` from `at` on.
    fn write_value(&self, out: &GpuVec, at: usize) {
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
    fn backward(
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
        // X̄ of the layer above (`xbar[cur]`), where it went through memory (tiled products).
        let mut cur = 0;
        // This layer's Ȳ and Ū are on side `side` of ybar and ubar; `ready` when the fused
        // rows of the layer above already wrote them.
        let mut side = 0;
        let mut ready = false;
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
            if !ready {
                // Ȳ, Ū for all rows: from the state's cotangent (last layer) or from X̄'.
                let (mode, cotangent) = if i == n_layers - 1 {
                    (dims.mode | 4, x.buffer())
                } else {
                    (dims.mode, &self.buf.xbar[cur])
                };
                self.run(
                    &k.layer_backward_rows,
                    self.batch * l.dout,
                    Dims {
                        mode,
                        at_in: a_at as u32,
                        ..dims
                    },
                    &[
                        (0, params.buffer()),
                        (1, &self.buf.ys),
                        (2, cotangent),
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
            } else if tiled_input {
                // X̄ = Ū W as a tiled product; the layer below takes it through its rows.
                let next = 1 - cur;
                self.gemm(
                    (ubar, side_in),
                    l.dout,
                    l,
                    true,
                    (&self.buf.xbar[next], 0),
                    l.din,
                    rows,
                    params,
                );
                cur = next;
                ready = false;
            } else {
                // X̄ = Ū W straight through the activation and gate of the layer below: its
                // Ȳ and Ū onto the other side.
                let below = &self.layers[i - 1];
                let input_dims = Dims {
                    c: below.c as u32,
                    b2: below.b2 as u32,
                    ..reduce_dims
                };
                let (kernel, threads) = if fused {
                    (&k.layer_backward, reduce_threads + self.batch * l.din)
                } else {
                    (&k.input_backward_rows, self.batch * l.din)
                };
                self.run(kernel, threads, input_dims, &step_buffers);
                side = 1 - side;
                ready = true;
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

/// A fixed Rademacher draw of `n` signs (SplitMix64 bits), the initial Hutchinson noise.
fn rademacher(n: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z >> 63 == 0 { 1.0 } else { -1.0 }
        })
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel binds at most 8 storage buffers (the data ring included): the portable
    /// limit, which every device allows.
    #[test]
    fn kernels_fit_the_portable_storage_limit() {
        let source = include_str!("concat_squash.wgsl");
        let counts = crate::kernel::storage_buffers(source, &ENTRIES);
        for (entry, n) in ENTRIES.iter().zip(&counts) {
            assert!(*n <= 8, "{entry}: {n} storage buffers");
        }
    }

    /// The tiled reduction's chunks: enough workgroups at small batch, at most `FEW_CHUNKS`
    /// unless `CHUNK` long; the partial-sum buffers hold the more chunks of either choice.
    #[test]
    fn tiled_chunks_follow_the_batch() {
        assert_eq!(tiled_chunk_rows(300), 16);
        assert_eq!(tiled_chunk_rows(3_000), 16);
        assert_eq!(tiled_chunk_rows(30_000), 128);
        assert_eq!(tiled_chunk_rows(300_000), 256);
        for rows in [1, 7, 300, 4_097, 30_000, 3_000_000] {
            let c = tiled_chunk_rows(rows);
            assert!(c.is_power_of_two() && (MIN_CHUNK..=CHUNK).contains(&c));
            assert!(c == CHUNK || rows.div_ceil(c) <= FEW_CHUNKS);
        }
        let (layers, _) = layers_of(&[2, 64, 64, 2]);
        for rows in [300, 3_000, 30_000] {
            let plan = ReducePlan::new(&layers, rows);
            for tiled in [0, 1] {
                let mut w_end = 0;
                for (i, l) in layers.iter().enumerate() {
                    let chunks = rows.div_ceil(plan.chunk[tiled][i]);
                    w_end = w_end.max(plan.weights_at[i] + chunks * l.din * l.dout);
                    let next = plan.weights_at.get(i + 1).copied();
                    assert!(next.is_none_or(|n| n >= plan.weights_at[i] + chunks * l.din * l.dout));
                    let u_next = plan.units_at.get(i + 1).copied();
                    assert!(u_next.is_none_or(|n| n >= plan.units_at[i] + chunks * 2 * l.dout));
                    assert!(plan.units_at[i] + chunks * 2 * l.dout <= plan.unit_floats);
                }
                assert!(w_end <= plan.weight_floats);
            }
        }
    }

    /// The simple reduction's chunks: short at small batch, `CHUNK` at large, always a power of
    /// two in range, and few enough for the final reduction unless already `CHUNK` long.
    #[test]
    fn chunk_rows_follow_the_batch() {
        // The toy CNF (2-64-64-2, exact divergence: 3 rows per point), middle layer.
        assert_eq!(chunk_rows(300, 64 * 64), 16);
        assert_eq!(chunk_rows(3_000, 64 * 64), 128);
        assert_eq!(chunk_rows(30_000, 64 * 64), 256);
        assert_eq!(chunk_rows(300_000, 64 * 64), 256);
        // Its first and last layers (128 weights).
        assert_eq!(chunk_rows(300, 128), 16);
        assert_eq!(chunk_rows(30_000, 128), 128);
        for rows in [1, 7, 300, 1_000, 4_097, 30_000, 300_000, 3_000_000] {
            for entries in [1, 4, 128, 4_096, 65_536] {
                let c = chunk_rows(rows, entries);
                assert!(c.is_power_of_two() && (MIN_CHUNK..=CHUNK).contains(&c));
                assert!(
                    c == CHUNK || rows.div_ceil(c) <= FEW_CHUNKS,
                    "{rows} {entries}"
                );
            }
        }
    }
}
