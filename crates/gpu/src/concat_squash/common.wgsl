// Kernels of the GPU concat-squash net (see mod.rs for the mathematics). Stacked
// matrices are row-major with R = (1 + K)·B rows: K = D tangents for the CNF's exact
// divergence, K = 0 for a plain ODE net (the state then has no Δlogp part). Rows [0, B) are the
// primal batch, rows [k·B, (k+1)·B) the tangent seeded with e_{k-1}. Row-wise kernels run one
// invocation per (batch point b, unit j) and handle all 1 + K rows of that point: net_forward
// takes every layer in one dispatch (rows in workgroup memory), layer_forward one layer, and
// backward a layer's parameter partials and input cotangent share one dispatch
// (layer_backward, first_layer_backward). Every layer's X, U and Y are stacked layer after
// layer in one buffer each (offsets x_at, uy_at); the backward pass's Ȳ and Ū of two layers
// side by side in ybar and ubar.
//
// This file holds what every kernel shares: the uniform block, the bindings, the row helpers and
// the activation; the kernels follow in forward.wgsl, backward.wgsl and tiled.wgsl, appended in
// that order when the pipelines are built (SOURCE in mod.rs).

struct Dims {
    rows: u32,    // R
    batch: u32,   // B
    din: u32,     // layer input width
    dout: u32,    // layer output width
    w: u32,       // parameter offsets of the layer: W, b1, c, b2, b3
    b1: u32,
    c: u32,
    b2: u32,
    b3: u32,
    at_in: u32,   // offset of the first input value in a state vector
    at_out: u32,  // offset of the first output value in a state vector
    mode: u32,    // bit 0: softplus (else tanh); bit 1: activation after this layer;
                  // bits 2 and 3: unused;
                  // bit 4: layer_forward or layer_tiled of a hidden layer stores only X'
                  // (an evaluation without a backward pass); bit 5: one
                  // tangent seeded with Hutchinson's noise (src3 = ε, B × D); bit 6:
                  // layer_forward of the first layer reads X0 from the state (src, at
                  // `at_in`) and the seeds; bit 7: it also writes X0 (dst4) for the backward
                  // pass; bit 8: the last layer (layer_forward, layer_tiled, net_forward) writes the value (dst3, at
                  // `at_out`: dz and, with the exact divergence, dΔlogp); bit 9:
                  // layer_forward reads the weights transposed from src2 (transpose_weights);
                  // bit 10: net_forward keeps every layer's X, U and Y in memory;
                  // bit 11: net_forward interpolates the state from node rows
    r0: u32,      // reduce_final: number of layers; reduce_partial: rows per chunk
    t: f32,
    scale: f32,
    side_in: u32,  // backward: offset of this layer's Ȳ and Ū in ybar and ubar
    side_out: u32, // backward: offset of the layer below's Ȳ and Ū (written by the fused rows)
    adj: u32,      // first layer's input cotangent: offset of the state cotangent in dst3
    x_at: u32,     // offset of this layer's input rows X in the stacked X of every layer
    uy_at: u32,    // offset of this layer's U and Y in the stacked U and Y
    x_next: u32,   // layer_forward: offset of X' (the next layer's X)
    y_below: u32,  // fused input cotangent: offset of the layer below's Y
    nodes: u32,    // net_forward, bit 11: node states interpolated (rows of src)
    node_len: u32, // their length (the state's)
}

@group(0) @binding(0) var<storage, read> theta: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst2: array<f32>;
@group(0) @binding(5) var<uniform> d: Dims;
@group(0) @binding(6) var<storage, read_write> dst3: array<f32>;
@group(0) @binding(7) var<storage, read> src3: array<f32>;
@group(0) @binding(8) var<storage, read> src4: array<f32>;
@group(0) @binding(9) var<storage, read_write> dst4: array<f32>;
// reduce_final's table of layers, staged in the context's data ring (see reduce_final).
@group(0) @binding(10) var<storage, read> ring_layers: array<u32>;
// The backward pass's row cotangents Ȳ and Ū = Ȳ g of two layers side by side (R × widest
// layer each, at side_in and side_out): one layer's are read while the next layer down's are
// written, in the same dispatch where the two are fused.
@group(0) @binding(11) var<storage, read_write> ybar: array<f32>;
@group(0) @binding(12) var<storage, read_write> ubar: array<f32>;

// Inputs per invocation of reduce_partial (REDUCE_BLOCK in concat_squash.rs).
const QB: u32 = 4u;
// Rows per point of this model (1 + K), fixed when the pipelines are built: the row loops then
// have a constant trip count, which a driver can unroll and keep in registers.
override POINT_ROWS: u32 = 1u;

// The 1 + K rows of one point at one column, in two vectors (rows 0–3 in lo, 4–7 in hi; the
// rows past POINT_ROWS zero). Kernels keep per-row values in these rather than in arrays
// indexed in loops, which a driver may place in memory instead of registers; code for hi is
// guarded by POINT_ROWS, a constant when the pipeline is built.
struct Rows {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn rows_zero() -> Rows {
    return Rows(vec4<f32>(0.0), vec4<f32>(0.0));
}

// Row k of r.
fn row(r: Rows, k: u32) -> f32 {
    if (k < 4u) { return r.lo[k]; }
    return r.hi[k - 4u];
}

// r with row k set to v: by lane masks, so that the rows stay values in registers (writing a
// vector's component at a loop index could make a driver keep the variable in memory).
fn rows_set(r: Rows, k: u32, v: f32) -> Rows {
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    let at = vec4<u32>(k);
    return Rows(select(r.lo, vec4<f32>(v), lanes == at), select(r.hi, vec4<f32>(v), lanes + 4u == at));
}

// a + x w, row by row.
fn rows_fma(a: Rows, x: Rows, w: f32) -> Rows {
    var o = a;
    o.lo = a.lo + x.lo * w;
    if (POINT_ROWS > 4u) { o.hi = a.hi + x.hi * w; }
    return o;
}

// Rows k < POINT_ROWS of a column whose row k is at `base + k · stride` of the stacked
// activations `dst4` (the layers' X).
fn x_rows(base: u32, stride: u32) -> Rows {
    var r = rows_zero();
    r.lo.x = dst4[base];
    if (POINT_ROWS > 1u) { r.lo.y = dst4[base + stride]; }
    if (POINT_ROWS > 2u) { r.lo.z = dst4[base + 2u * stride]; }
    if (POINT_ROWS > 3u) { r.lo.w = dst4[base + 3u * stride]; }
    if (POINT_ROWS > 4u) {
        r.hi.x = dst4[base + 4u * stride];
        if (POINT_ROWS > 5u) { r.hi.y = dst4[base + 5u * stride]; }
        if (POINT_ROWS > 6u) { r.hi.z = dst4[base + 6u * stride]; }
        if (POINT_ROWS > 7u) { r.hi.w = dst4[base + 7u * stride]; }
    }
    return r;
}

// Rows k < POINT_ROWS of column q of the seeded input X0 of point b (seed_value).
fn seed_rows(b: u32, q: u32) -> Rows {
    var r = rows_zero();
    for (var k = 0u; k < POINT_ROWS; k = k + 1u) {
        let v = seed_value(k, b, q);
        r = rows_set(r, k, v);
    }
    return r;
}

// Whether the rows carry divergence tangents (K > 0).
fn with_divergence() -> bool {
    return d.rows > d.batch;
}

// Whether the one tangent row of each point is seeded with Hutchinson's noise.
fn hutchinson() -> bool {
    return (d.mode & 32u) == 32u;
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn gate(j: u32) -> f32 {
    return sigmoid(d.t * theta[d.c + j] + theta[d.b2 + j]);
}

// (φ, φ′, φ″) of the activation.
fn act3(y: f32) -> vec3<f32> {
    if ((d.mode & 1u) == 1u) {
        let s = sigmoid(y);
        let v = max(y, 0.0) + log(1.0 + exp(-abs(y)));
        return vec3<f32>(v, s, s * (1.0 - s));
    }
    // tanh through exp of a non-positive argument (no overflow).
    let e = exp(-2.0 * abs(y));
    let th = sign(y) * (1.0 - e) / (1.0 + e);
    let d1 = 1.0 - th * th;
    return vec3<f32>(th, d1, -2.0 * th * d1);
}

// X0 at row k of point b, column q: the state z (src, at `at_in`) on the primal row, the
// tangent seeds below it (the unit vector e_{k−1}, or Hutchinson's noise from src3).
fn seed_value(k: u32, b: u32, q: u32) -> f32 {
    if (k == 0u) {
        return src[d.at_in + b * d.din + q];
    }
    if (hutchinson()) {
        return src3[b * d.din + q];
    }
    return select(0.0, 1.0, q + 1u == k);
}

