// Kernels of the GPU concat-squash net (see concat_squash.rs for the mathematics). Stacked
// matrices are row-major with R = (1 + K)·B rows: K = D tangents for the CNF's exact
// divergence, K = 0 for a plain ODE net (the state then has no Δlogp part). Rows [0, B) are the
// primal batch, rows [k·B, (k+1)·B) the tangent seeded with e_{k-1}. Row-wise kernels run one
// invocation per (batch point b, unit j) and handle all 1 + K rows of that point: net_forward
// takes every layer in one dispatch (rows in workgroup memory), layer_forward one layer, and
// backward a layer's parameter partials and input cotangent share one dispatch
// (layer_backward, first_layer_backward). Every layer's X, U and Y are stacked layer after
// layer in one buffer each (offsets x_at, uy_at); the backward pass's Ȳ and Ū of two layers
// side by side in ybar and ubar.

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

// X0 of every row (where the first layer's product is tiled and needs it in memory first;
// dst = the stacked X of every layer, X0 first).
@compute @workgroup_size(256)
fn seed_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.din) { return; }
    let r = i / d.din;
    dst[i] = seed_value(r / d.batch, r % d.batch, i % d.din);
}

// Weight W[j, q] of layer_forward's layer: from θ (row-major, dout × din), or with bit 9 from
// the transposed copy in src2 (din × dout at the same offset), where the invocations of one
// point, which take consecutive units j, read consecutive addresses instead of addresses din
// apart (one memory transaction per q instead of one per unit).
fn forward_weight(j: u32, q: u32) -> f32 {
    if ((d.mode & 512u) == 512u) {
        return src2[d.w + q * d.dout + j];
    }
    return theta[d.w + j * d.din + q];
}

// Every layer's W transposed into dst at the same offset (dst[w + q·dout + j] = θ[w + j·din + q]),
// for layer_forward's bit 9: one invocation per weight of every layer, the layers found in the
// table that reduce_final reads (ring_layers; first item, din, dout and W of each layer).
@compute @workgroup_size(256)
fn transpose_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let at = layer_of(i) * LAYER_WORDS;
    let e = i - ring_layers[at];
    let din = ring_layers[at + 1u];
    let dout = ring_layers[at + 2u];
    if (e >= din * dout) { return; }
    let w = ring_layers[at + 3u];
    dst[w + (e % din) * dout + e / din] = theta[w + e];
}

// Input rows of point b, column q of layer_forward: X0 from the state and the seeds (bit 6,
// the first layer) or X (dst4, at x_at).
fn input_rows(b: u32, q: u32) -> Rows {
    if ((d.mode & 64u) == 64u) {
        return seed_rows(b, q);
    }
    return x_rows(d.x_at + b * d.din + q, d.batch * d.din);
}

// One layer for point b, unit j, all rows: U = X Wᵀ (+ b1), Y = U g (+ t b3) on the primal row;
// with an activation, X' = φ(Y) on the primal row and φ′(Y_primal) Y on tangent rows.
// dst4 = the stacked X of every layer (this layer's at x_at, X' to x_next; bit 6: X0 from the
// state in src instead), dst = U, dst2 = Y (at uy_at); bit 7: X0 into dst4, columns j,
// j + dout, … by this invocation; bit 8 (the last layer, no activation): the value into dst3
// at `at_out` as write_value does. With bit 8 and a divergence, each workgroup takes whole
// points (⌊256 / dout⌋ of them; the host sizes the dispatch so): the invocation of unit m
// leaves its term in workgroup memory (exact: the diagonal tangent entry Y[m + 1, b, m];
// Hutchinson: ε_m Y[1, b, m], ε from src3), and the one of unit 0 sums the point's D terms
// into dΔlogp.
var<workgroup> diagonal: array<f32, 256>;

@compute @workgroup_size(256)
fn layer_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let lid = i % 256u;
    let grouped = (d.mode & 256u) == 256u && with_divergence();
    var b = i / d.dout;
    var j = i % d.dout;
    var live = i < d.batch * d.dout;
    if (grouped) {
        let per = 256u / d.dout;
        b = (i / 256u) * per + lid / d.dout;
        j = lid % d.dout;
        live = lid < per * d.dout && b < d.batch;
    }
    var mine = 0.0;
    if (live) {
        mine = layer_forward_at(b, j);
    }
    if (grouped) {
        diagonal[lid] = mine;
        workgroupBarrier();
        if (live && j == 0u) {
            var div = 0.0;
            for (var m = 0u; m < d.dout; m = m + 1u) {
                div = div + diagonal[lid + m];
            }
            dst3[d.at_out + d.batch * d.dout + b] = -div;
        }
    }
}

// layer_forward for point b, unit j; returns the unit's term of the divergence: its diagonal
// tangent entry Y[j + 1, b, j] (zero past the tangent rows), or with Hutchinson's noise
// ε_j Y[1, b, j].
fn layer_forward_at(b: u32, j: u32) -> f32 {
    let g = gate(j);
    // All rows at once, so each weight is loaded once per invocation; four inputs per pass,
    // their loads issued together.
    var acc = rows_zero();
    var q = 0u;
    for (; q + 4u <= d.din; q = q + 4u) {
        let w0 = forward_weight(j, q);
        let w1 = forward_weight(j, q + 1u);
        let w2 = forward_weight(j, q + 2u);
        let w3 = forward_weight(j, q + 3u);
        let x0 = input_rows(b, q);
        let x1 = input_rows(b, q + 1u);
        let x2 = input_rows(b, q + 2u);
        let x3 = input_rows(b, q + 3u);
        acc = rows_fma(rows_fma(rows_fma(rows_fma(acc, x0, w0), x1, w1), x2, w2), x3, w3);
    }
    for (; q < d.din; q = q + 1u) {
        acc = rows_fma(acc, input_rows(b, q), forward_weight(j, q));
    }
    if ((d.mode & 128u) == 128u) {
        for (var q = j; q < d.din; q = q + d.dout) {
            for (var k = 0u; k < POINT_ROWS; k = k + 1u) {
                dst4[d.x_at + (k * d.batch + b) * d.din + q] = seed_value(k, b, q);
            }
        }
    }
    var slope = 0.0;
    var diag = 0.0;
    for (var k = 0u; k < POINT_ROWS; k = k + 1u) {
        let r = k * d.batch + b;
        var u = row(acc, k);
        var y = 0.0;
        if (k == 0u) {
            u = u + theta[d.b1 + j];
            y = u * g + d.t * theta[d.b3 + j];
        } else {
            y = u * g;
        }
        if (hutchinson()) {
            if (k == 1u) { diag = src3[b * d.dout + j] * y; }
        } else if (k == j + 1u) {
            diag = y;
        }
        let o = r * d.dout + j;
        if ((d.mode & 16u) == 0u) {
            dst[d.uy_at + o] = u;
            dst2[d.uy_at + o] = y;
        }
        if (k == 0u && (d.mode & 256u) == 256u) {
            dst3[d.at_out + b * d.dout + j] = y;
        }
        if ((d.mode & 2u) == 2u) {
            if (k == 0u) {
                let a = act3(y);
                dst4[d.x_next + o] = a.x;
                slope = a.y;
            } else {
                dst4[d.x_next + o] = slope * y;
            }
        }
    }
    return diag;
}

// The whole forward pass in one dispatch, for nets at most NET_WIDTH wide: a workgroup takes
// NET_POINTS points, invocation (p, j) = unit j of point p, and every layer's input and output
// rows of its points stay in workgroup memory (two halves, one read and one written per layer,
// a barrier between layers), the layer's weights passing through workgroup memory NET_TILE
// inputs at a time (w_tile); the layers come from reduce_final's table (ring_layers; d.r0
// layers). The first layer's input is the state (src, at `at_in`) and the tangent seeds
// (seed_value: d.din is the state's width); layer by layer U = X Wᵀ + b1, Y = U g + t b3 on
// the primal row and U = X Wᵀ, Y = U g on tangent rows, X' = φ(Y) and φ′(Y_primal) Y below the
// last layer (as layer_forward). Bit 10: every layer's X, U and Y also go to memory for the
// backward pass (dst4, dst, dst2, stacked layer after layer as layer_forward leaves them).
// Bit 8: the last layer's primal row is dz (into dst3 at `at_out`), and the invocation of unit
// 0 adds dΔlogp from its tangent rows: −Σ_k Y[k + 1, k] (exact) or −Σ_k ε_k Y[1, k]
// (Hutchinson, ε = src3). Bit 11: the state interpolated from node states, the rows of src.
const NET_WIDTH: u32 = 64u;
const NET_POINTS: u32 = 2u;
// Rows of point p, column q in half h: the vectors net_rows[net_at(h, p, q)] (rows 0–3) and
// the one after it (rows 4–7).
const NET_HALF: u32 = 256u; // NET_POINTS · NET_WIDTH · 2 vectors
var<workgroup> net_rows: array<vec4<f32>, 512>;
// A layer's weights W[·, q0 .. q0 + NET_TILE) at a time, k-major (w_tile[qq·W_PITCH + j]):
// loaded along W's rows (consecutive invocations, consecutive q), read along its columns
// (consecutive units, consecutive words: no bank conflicts; the padding word spreads the
// stores over the banks).
const NET_TILE: u32 = 16u;
const W_PITCH: u32 = 65u;
var<workgroup> w_tile: array<f32, 1040>; // NET_TILE · W_PITCH

fn net_at(h: u32, p: u32, q: u32) -> u32 {
    return h * NET_HALF + (p * NET_WIDTH + q) * 2u;
}

fn net_load(at: u32) -> Rows {
    var r = rows_zero();
    r.lo = net_rows[at];
    if (POINT_ROWS > 4u) { r.hi = net_rows[at + 1u]; }
    return r;
}

fn net_store(at: u32, r: Rows) {
    net_rows[at] = r.lo;
    if (POINT_ROWS > 4u) { net_rows[at + 1u] = r.hi; }
}

// Element e of the weight slice W[·, q0 .. q0 + NET_TILE) of a layer (W at w, dout × din).
fn net_weight(e: u32, q0: u32, din: u32, dout: u32, w: u32) -> f32 {
    let jj = e / NET_TILE;
    let qq = e % NET_TILE;
    if (jj < dout && q0 + qq < din) { return theta[w + jj * din + q0 + qq]; }
    return 0.0;
}

fn net_weight_store(e: u32, v: f32) {
    w_tile[(e % NET_TILE) * W_PITCH + e / NET_TILE] = v;
}

// The eight elements e + 128·s (s < 8) of a weight slice that invocation e stages.
struct WeightSlice {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn net_weights(e: u32, q0: u32, din: u32, dout: u32, w: u32) -> WeightSlice {
    return WeightSlice(
        vec4<f32>(net_weight(e, q0, din, dout, w), net_weight(e + 128u, q0, din, dout, w),
                  net_weight(e + 256u, q0, din, dout, w), net_weight(e + 384u, q0, din, dout, w)),
        vec4<f32>(net_weight(e + 512u, q0, din, dout, w), net_weight(e + 640u, q0, din, dout, w),
                  net_weight(e + 768u, q0, din, dout, w), net_weight(e + 896u, q0, din, dout, w)));
}

fn net_weights_store(e: u32, v: WeightSlice) {
    net_weight_store(e, v.a.x);
    net_weight_store(e + 128u, v.a.y);
    net_weight_store(e + 256u, v.a.z);
    net_weight_store(e + 384u, v.a.w);
    net_weight_store(e + 512u, v.b.x);
    net_weight_store(e + 640u, v.b.y);
    net_weight_store(e + 768u, v.b.z);
    net_weight_store(e + 896u, v.b.w);
}

// Bit 11 of net_forward: entry e of z = Σ_i c_i src[i·node_len + e] over d.nodes node rows,
// the c_i in ring_layers after the table of layers; four nodes per pass, their loads issued
// together.
fn interpolated_state(e: u32) -> f32 {
    let c0 = d.r0 * LAYER_WORDS;
    var z = vec4<f32>(0.0);
    var i = 0u;
    for (; i + 4u <= d.nodes; i = i + 4u) {
        let c = vec4<f32>(bitcast<f32>(ring_layers[c0 + i]), bitcast<f32>(ring_layers[c0 + i + 1u]),
                          bitcast<f32>(ring_layers[c0 + i + 2u]), bitcast<f32>(ring_layers[c0 + i + 3u]));
        let v = vec4<f32>(src[i * d.node_len + e], src[(i + 1u) * d.node_len + e],
                          src[(i + 2u) * d.node_len + e], src[(i + 3u) * d.node_len + e]);
        z = z + c * v;
    }
    var zs = z.x + z.y + z.z + z.w;
    for (; i < d.nodes; i = i + 1u) {
        zs = zs + bitcast<f32>(ring_layers[c0 + i]) * src[i * d.node_len + e];
    }
    return zs;
}

@compute @workgroup_size(128)
fn net_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = lid.x / NET_WIDTH;
    let j = lid.x % NET_WIDTH;
    let b = (wid.x + wid.y * nwg.x) * NET_POINTS + p;
    let live = b < d.batch;
    let keep = (d.mode & 1024u) == 1024u;
    if (live && j < d.din) {
        var x0 = seed_rows(b, j);
        if ((d.mode & 2048u) == 2048u) {
            // Bit 11: z interpolated from the node states; the tangent rows stay the seeds.
            x0.lo.x = interpolated_state(b * d.din + j);
        }
        net_store(net_at(0u, p, j), x0);
        if (keep) {
            for (var k = 0u; k < POINT_ROWS; k = k + 1u) {
                dst4[(k * d.batch + b) * d.din + j] = row(x0, k);
            }
        }
    }
    workgroupBarrier();
    var h = 0u;
    var width = d.din;
    // Offsets of this layer's X and of its U and Y in memory (bit 10).
    var x_at = 0u;
    var uy_at = 0u;
    for (var l = 0u; l < d.r0; l = l + 1u) {
        let at = l * LAYER_WORDS;
        let din = ring_layers[at + 1u];
        let dout = ring_layers[at + 2u];
        let w = ring_layers[at + 3u];
        let last = l + 1u == d.r0;
        let x_next = x_at + d.rows * din;
        var acc = rows_zero();
        // Eight weights of each slice per invocation, their loads issued together, the next
        // slice's before the current one is multiplied.
        var slice = net_weights(lid.x, 0u, din, dout, w);
        for (var q0 = 0u; q0 < din; q0 = q0 + NET_TILE) {
            net_weights_store(lid.x, slice);
            workgroupBarrier();
            slice = net_weights(lid.x, q0 + NET_TILE, din, dout, w);
            if (live && j < dout) {
                let n = min(NET_TILE, din - q0);
                for (var qq = 0u; qq < n; qq = qq + 1u) {
                    acc = rows_fma(acc, net_load(net_at(h, p, q0 + qq)), w_tile[qq * W_PITCH + j]);
                }
            }
            workgroupBarrier();
        }
        if (live && j < dout) {
            let g = sigmoid(d.t * theta[ring_layers[at + 5u] + j] + theta[ring_layers[at + 6u] + j]);
            // U = X Wᵀ (+ b1 on the primal row), Y = U g (+ t b3 on the primal row).
            var u = acc;
            u.lo.x = u.lo.x + theta[ring_layers[at + 4u] + j];
            var y = Rows(u.lo * g, u.hi * g);
            y.lo.x = y.lo.x + d.t * theta[ring_layers[at + 7u] + j];
            // X' = φ(Y) on the primal row, φ′(Y_primal) Y on tangent rows; the last layer's
            // output is Y itself.
            var xo = y;
            if (!last) {
                let a = act3(y.lo.x);
                xo = Rows(y.lo * a.y, y.hi * a.y);
                xo.lo.x = a.x;
            } else if ((d.mode & 256u) == 256u) {
                dst3[d.at_out + b * dout + j] = y.lo.x;
            }
            if (keep) {
                for (var k = 0u; k < POINT_ROWS; k = k + 1u) {
                    let o = (k * d.batch + b) * dout + j;
                    dst[uy_at + o] = row(u, k);
                    dst2[uy_at + o] = row(y, k);
                    if (!last) { dst4[x_next + o] = row(xo, k); }
                }
            }
            net_store(net_at(1u - h, p, j), xo);
        }
        workgroupBarrier();
        h = 1u - h;
        width = dout;
        x_at = x_next;
        uy_at = uy_at + d.rows * dout;
    }
    if (live && j == 0u && with_divergence() && (d.mode & 256u) == 256u) {
        var div = 0.0;
        for (var m = 0u; m < width; m = m + 1u) {
            let y = net_load(net_at(h, p, m));
            if (hutchinson()) {
                div = div + src3[b * width + m] * y.lo.y;
            } else {
                div = div + row(y, m + 1u);
            }
        }
        dst3[d.at_out + d.batch * width + b] = -div;
    }
}

// dz = Y[primal] and, with the divergence, dΔlogp = −Σ_k Y[tangent k, k], or with Hutchinson's
// noise −Σ_k ε_k Y[tangent, k] (written at `at_out`).
@compute @workgroup_size(256)
fn write_value(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = index(gid, nwg);
    if (b >= d.batch) { return; }
    let D = d.dout;
    for (var k = 0u; k < D; k = k + 1u) {
        dst[d.at_out + b * D + k] = src[d.uy_at + b * D + k];
    }
    if (!with_divergence()) { return; }
    var div = 0.0;
    if (hutchinson()) {
        for (var k = 0u; k < D; k = k + 1u) {
            div = div + src3[b * D + k] * src[d.uy_at + (d.batch + b) * D + k];
        }
    } else {
        for (var k = 0u; k < D; k = k + 1u) {
            div = div + src[d.uy_at + ((k + 1u) * d.batch + b) * D + k];
        }
    }
    dst[d.at_out + d.batch * D + b] = -div;
}

// The last layer's Ȳ and Ū = Ȳ g for point b, unit j, all rows, into ybar and ubar at
// side_in: Ȳ is the seeded cotangent, a_z on the primal row and −a_l e_{k−1} on tangent rows
// (−a_l ε with Hutchinson's noise), read from the state src2 at `at_in`.
@compute @workgroup_size(256)
fn layer_backward_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.batch * d.dout) { return; }
    let b = i / d.dout;
    let j = i % d.dout;
    let g = gate(j);
    let D = d.dout;
    var al = 0.0;
    if (with_divergence()) { al = src2[d.at_in + d.batch * D + b]; }
    for (var k = 0u; k < POINT_ROWS; k = k + 1u) {
        let o = d.side_in + (k * d.batch + b) * D + j;
        var yb = 0.0;
        if (k == 0u) {
            yb = src2[d.at_in + b * D + j];
        } else if (hutchinson()) {
            yb = -al * src3[b * D + j];
        } else if (j + 1u == k) {
            yb = -al;
        }
        ybar[o] = yb;
        ubar[o] = yb * g;
    }
}

// Ȳ and Ū = Ȳ g of point b, unit j of a layer `width` wide, from X̄' of all its rows (xb),
// through the activation at Y (src, at y_at): primal X̄'φ′ + Σ_k X̄'_k Y_k φ″, tangent rows
// X̄'φ′; into ybar and ubar at `at`.
fn rows_backward(b: u32, j: u32, width: u32, xb: Rows, at: u32, y_at: u32) {
    let g = gate(j);
    let p = b * width + j;
    let a = act3(src[y_at + p]);
    var primal = xb.lo.x * a.y;
    for (var k = 1u; k < POINT_ROWS; k = k + 1u) {
        let o = (k * d.batch + b) * width + j;
        let xk = row(xb, k);
        primal = primal + xk * src[y_at + o] * a.z;
        let yb = xk * a.y;
        ybar[at + o] = yb;
        ubar[at + o] = yb * g;
    }
    ybar[at + p] = primal;
    ubar[at + p] = primal * g;
}

// Rows k < POINT_ROWS (or the primal row alone) of a column of Ū (ubar) whose row k is at
// `base + k · stride`.
fn ubar_rows(base: u32, stride: u32, all_rows: bool) -> Rows {
    var r = rows_zero();
    r.lo.x = ubar[base];
    if (!all_rows) { return r; }
    if (POINT_ROWS > 1u) { r.lo.y = ubar[base + stride]; }
    if (POINT_ROWS > 2u) { r.lo.z = ubar[base + 2u * stride]; }
    if (POINT_ROWS > 3u) { r.lo.w = ubar[base + 3u * stride]; }
    if (POINT_ROWS > 4u) {
        r.hi.x = ubar[base + 4u * stride];
        if (POINT_ROWS > 5u) { r.hi.y = ubar[base + 5u * stride]; }
        if (POINT_ROWS > 6u) { r.hi.z = ubar[base + 6u * stride]; }
        if (POINT_ROWS > 7u) { r.hi.w = ubar[base + 7u * stride]; }
    }
    return r;
}

// X̄ = Ū W (Ū in ubar at side_in) for point b, input unit q: every row of the point, or
// (all_rows false) the primal row only; each weight loaded once for all of them, four units
// per pass with their loads issued together.
fn input_cotangent(b: u32, q: u32, all_rows: bool) -> Rows {
    var acc = rows_zero();
    let base = d.side_in + b * d.dout;
    let stride = d.batch * d.dout;
    let w = d.w + q;
    var j = 0u;
    for (; j + 4u <= d.dout; j = j + 4u) {
        let w0 = theta[w + j * d.din];
        let w1 = theta[w + (j + 1u) * d.din];
        let w2 = theta[w + (j + 2u) * d.din];
        let w3 = theta[w + (j + 3u) * d.din];
        let u0 = ubar_rows(base + j, stride, all_rows);
        let u1 = ubar_rows(base + j + 1u, stride, all_rows);
        let u2 = ubar_rows(base + j + 2u, stride, all_rows);
        let u3 = ubar_rows(base + j + 3u, stride, all_rows);
        acc = rows_fma(rows_fma(rows_fma(rows_fma(acc, u0, w0), u1, w1), u2, w2), u3, w3);
    }
    for (; j < d.dout; j = j + 1u) {
        acc = rows_fma(acc, ubar_rows(base + j, stride, all_rows), theta[w + j * d.din]);
    }
    return acc;
}

// Invocation i < B·din: layer l's input cotangent X̄ = Ū W for point b, input unit q, all rows
// in registers, taken straight on through layer l − 1's activation and gate (what
// layer_backward_rows does for unit q of layer l − 1, without X̄ going through memory):
// src = Y_{l−1} (at y_below); Ȳ_{l−1}, Ū_{l−1} into ybar and ubar at side_out. d.din, d.dout and d.w are
// layer l's; d.c and d.b2 (the gate) layer l − 1's.
fn input_rows_at(i: u32) {
    if (i >= d.batch * d.din) { return; }
    let b = i / d.din;
    let q = i % d.din;
    rows_backward(b, q, d.din, input_cotangent(b, q, true), d.side_out, d.y_below);
}

@compute @workgroup_size(256)
fn input_backward_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    input_rows_at(index(gid, nwg));
}

// Invocation i of the first layer's input cotangent, scaled: X̄ = Ū W of the primal rows into
// the state cotangent dst3[adj ..], and (with the divergence) zeros for its Δlogp part.
fn first_input_at(i: u32) {
    let n = d.batch * d.din;
    if (i < n) {
        let acc = input_cotangent(i / d.din, i % d.din, false);
        dst3[d.adj + i] = d.scale * acc.lo.x;
    } else if (with_divergence() && i < n + d.batch) {
        dst3[d.adj + i] = 0.0;
    }
}

@compute @workgroup_size(256)
fn input_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    first_input_at(index(gid, nwg));
}

// Invocations of the simple parameter reduction of a layer (reduce_at): items of QB weights
// and units, each over chunks of d.r0 rows.
fn reduce_invocations() -> u32 {
    let blocks = (d.din + QB - 1u) / QB;
    let chunks = (d.rows + d.r0 - 1u) / d.r0;
    return (d.dout * blocks + d.dout) * chunks;
}

// Invocation i of a layer's parameter partial sums over chunks of r0 rows (chosen by the host:
// short chunks where the batch is small, so that each invocation's serial loop is short).
// Invocations [0, E·C), E = dout·din, C chunks: W̄ partial Σ_r Ū[r, j] X[r, q] (Ū in ubar at
// side_in, src2 = X at x_at) into dst[c·E + e]. Invocations [E·C, E·C + dout·C): for unit j, Σ_all Ȳ U
// and Σ_primal Ȳ (Ȳ in ybar at side_in, src4 = U at uy_at) into dst2[c·2·dout + j] and
// dst2[c·2·dout + dout + j].
fn reduce_at(i: u32) {
    let entries = d.dout * d.din;
    // Each invocation: QB neighbouring inputs q0 … q0 + QB − 1 of one unit j, so each Ū value
    // is loaded once for QB products.
    let blocks = (d.din + QB - 1u) / QB;
    let items = d.dout * blocks;
    let chunk_rows = d.r0;
    let chunks = (d.rows + chunk_rows - 1u) / chunk_rows;
    if (i < items * chunks) {
        let item = i % items;
        let chunk = i / items;
        let j = item / blocks;
        let q0 = (item % blocks) * QB;
        let start = chunk * chunk_rows;
        let end = min(start + chunk_rows, d.rows);
        // Four rows per pass, their loads issued together.
        var acc = vec4<f32>(0.0);
        var r = start;
        for (; r + 4u <= end; r = r + 4u) {
            let u0 = ubar[d.side_in + r * d.dout + j];
            let u1 = ubar[d.side_in + (r + 1u) * d.dout + j];
            let u2 = ubar[d.side_in + (r + 2u) * d.dout + j];
            let u3 = ubar[d.side_in + (r + 3u) * d.dout + j];
            let x0 = reduce_inputs(r, q0);
            let x1 = reduce_inputs(r + 1u, q0);
            let x2 = reduce_inputs(r + 2u, q0);
            let x3 = reduce_inputs(r + 3u, q0);
            acc = acc + u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3;
        }
        for (; r < end; r = r + 1u) {
            acc = acc + ubar[d.side_in + r * d.dout + j] * reduce_inputs(r, q0);
        }
        for (var b = 0u; b < QB; b = b + 1u) {
            if (q0 + b < d.din) {
                dst[d.at_in + chunk * entries + j * d.din + q0 + b] = acc[b];
            }
        }
        return;
    }
    unit_sums(i - items * chunks, chunks, chunk_rows);
}

// X[r, q0 .. q0 + QB) (src2 at x_at; zeros past the layer's inputs).
fn reduce_inputs(r: u32, q0: u32) -> vec4<f32> {
    let at = d.x_at + r * d.din + q0;
    var x = vec4<f32>(0.0);
    x.x = src2[at];
    if (q0 + 1u < d.din) { x.y = src2[at + 1u]; }
    if (q0 + 2u < d.din) { x.z = src2[at + 2u]; }
    if (q0 + 3u < d.din) { x.w = src2[at + 3u]; }
    return x;
}

@compute @workgroup_size(256)
fn reduce_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    reduce_at(index(gid, nwg));
}

// A layer above the first, fused: its parameter partials (reduce_at, the first
// reduce_invocations() invocations) and, in the invocations after them, its input cotangent
// straight through the layer below's rows (input_rows_at). Both read this layer's Ū; the rows
// go to the other side of ybar and ubar.
@compute @workgroup_size(256)
fn layer_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let n = reduce_invocations();
    if (i < n) {
        reduce_at(i);
    } else {
        input_rows_at(i - n);
    }
}

// The first layer, fused: its parameter partials and its input cotangent into the state's
// (first_input_at) in the invocations after them.
@compute @workgroup_size(256)
fn first_layer_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let n = reduce_invocations();
    if (i < n) {
        reduce_at(i);
    } else {
        first_input_at(i - n);
    }
}

// Every layer's parameter cotangents, scaled, into dst at at_out + the layer's offsets, in one
// dispatch after all layers' partial sums. ring_layers holds d.r0 layers of LAYER_WORDS words:
// first item, din, dout, W, b1, c, b2, b3, chunks, offset of the weight partials (in src),
// offset of the unit partials (in src2). A layer's items [0, E) sum W̄ over its chunks; items
// [E, E + dout) finish unit j from ḡ and s = Σ_primal Ȳ: b̄1 = g s, b̄3 = t s,
// c̄ = t ḡ g(1 − g), b̄2 = ḡ g(1 − g). A workgroup takes 16 items, 16 invocations each summing
// every 16th chunk, then a tree through workgroup memory: a large batch has over a thousand
// chunks, which one invocation per item would walk alone.
const LAYER_WORDS: u32 = 11u;

// The layer of item i in the table of d.r0 layers (ring_layers): the last whose first item is
// at most i.
fn layer_of(i: u32) -> u32 {
    var l = 0u;
    for (var m = 1u; m < d.r0; m = m + 1u) {
        if (ring_layers[m * LAYER_WORDS] <= i) { l = m; }
    }
    return l;
}
var<workgroup> slices: array<f32, 512>;

@compute @workgroup_size(256)
fn reduce_final(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = lid.x;
    let lane = t % 16u;
    let slice = t / 16u;
    let global_item = (wid.x + wid.y * nwg.x) * 16u + lane;
    let at = layer_of(global_item) * LAYER_WORDS;
    let item = global_item - ring_layers[at];
    let din = ring_layers[at + 1u];
    let dout = ring_layers[at + 2u];
    let chunks = ring_layers[at + 8u];
    let wp = ring_layers[at + 9u];
    let up = ring_layers[at + 10u];
    let entries = dout * din;
    var a = 0.0;
    var b = 0.0;
    if (item < entries) {
        // Four chunks per pass, their loads issued together.
        var c = slice;
        for (; c + 48u < chunks; c = c + 64u) {
            a = a + src[wp + c * entries + item] + src[wp + (c + 16u) * entries + item]
                + src[wp + (c + 32u) * entries + item] + src[wp + (c + 48u) * entries + item];
        }
        for (; c < chunks; c = c + 16u) {
            a = a + src[wp + c * entries + item];
        }
    } else if (item < entries + dout) {
        let j = item - entries;
        for (var c = slice; c < chunks; c = c + 16u) {
            a = a + src2[up + c * 2u * dout + j];
            b = b + src2[up + c * 2u * dout + dout + j];
        }
    }
    slices[t] = a;
    slices[256u + t] = b;
    workgroupBarrier();
    for (var s = 8u; s > 0u; s = s / 2u) {
        if (slice < s) {
            slices[t] = slices[t] + slices[t + 16u * s];
            slices[256u + t] = slices[256u + t] + slices[256u + t + 16u * s];
        }
        workgroupBarrier();
    }
    if (slice != 0u) { return; }
    if (item < entries) {
        dst[d.at_out + ring_layers[at + 3u] + item] = d.scale * slices[t];
    } else if (item < entries + dout) {
        let j = item - entries;
        let gsum = slices[t];
        let psum = slices[256u + t];
        let g = sigmoid(d.t * theta[ring_layers[at + 5u] + j] + theta[ring_layers[at + 6u] + j]);
        let dg = gsum * g * (1.0 - g);
        dst[d.at_out + ring_layers[at + 4u] + j] = d.scale * g * psum;
        dst[d.at_out + ring_layers[at + 7u] + j] = d.scale * d.t * psum;
        dst[d.at_out + ring_layers[at + 5u] + j] = d.scale * d.t * dg;
        dst[d.at_out + ring_layers[at + 6u] + j] = d.scale * dg;
    }
}

// Tiled weight cotangent for layers with dout, din <= 64: one workgroup per chunk of d.r0 rows
// (a multiple of 16 chosen by the host) accumulates the whole dout × din block
// Σ_r Ū[r, j] X[r, q] (Ū in ubar at side_in, src2 = X at x_at), 16 rows at a time through workgroup memory, each
// invocation a 4 × 4 sub-block in registers (units 4·ti … 4·ti + 3, inputs 4·tj … 4·tj + 3:
// the tiles hold vectors of four consecutive columns, so that each of the 16 steps of a row
// reads the block's four Ū and four X values as two 16-byte loads, the 16 invocations of a
// row of the block 16 consecutive vectors, and stores 64 consecutive entries); partial of chunk c, entry j·din + q at
// dst[c · dout · din + j · din + q]. Alongside, the chunk's per-unit sums of `unit_sums`
// (Ȳ in ybar at side_in, src4 = U at uy_at into dst2): invocation t adds unit t % 64 of rows t / 64, t / 64 + 4, …
// of each step in registers, loaded with the step's tiles, and the four parts of a unit meet in
// workgroup memory at the end. A layer's parameter partials are one dispatch.
var<workgroup> tile_u: array<vec4<f32>, 256>;
var<workgroup> tile_x: array<vec4<f32>, 256>;

// Element idx of reduce_weights' step at row r0: (Ū, X, Ȳ·U, primal Ȳ) of row r0 + idx / 64,
// column idx % 64 (zeros outside the chunk or the layer).
fn reduce_load(idx: u32, r0: u32, end: u32) -> vec4<f32> {
    let r = r0 + idx / 64u;
    let col = idx % 64u;
    var v = vec4<f32>(0.0);
    if (r < end) {
        if (col < d.dout) {
            let o = r * d.dout + col;
            let yb = ybar[d.side_in + o];
            v.x = ubar[d.side_in + o];
            v.z = yb * src4[d.uy_at + o];
            if (r < d.batch) { v.w = yb; }
        }
        if (col < d.din) { v.y = src2[d.x_at + r * d.din + col]; }
    }
    return v;
}

// Partial W̄ entries of unit j, inputs 4·tj … 4·tj + 3 (those inside the layer).
fn store_weight_partials(base: u32, j: u32, tj: u32, v: vec4<f32>) {
    if (j >= d.dout) { return; }
    for (var b = 0u; b < 4u; b = b + 1u) {
        let q = 4u * tj + b;
        if (q < d.din) { dst[base + j * d.din + q] = v[b]; }
    }
}

@compute @workgroup_size(256)
fn reduce_weights(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.x + wid.y * nwg.x;
    let chunk_rows = d.r0;
    let chunks = (d.rows + chunk_rows - 1u) / chunk_rows;
    if (chunk >= chunks) { return; }
    let t = lid.x;
    let ti = t / 16u;
    let tj = t % 16u;
    // The 4 × 4 block in four vectors (units 4·ti + a, inputs 4·tj + b in component b): plain
    // registers, where an array indexed in loops may be placed in memory by the driver.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var gsum = 0.0;
    var psum = 0.0;
    let start = chunk * chunk_rows;
    let end = min(start + chunk_rows, d.rows);
    // Each step's four loads per invocation issued together, the next step's before the
    // current one is multiplied (their latency hidden behind its arithmetic).
    var v0 = reduce_load(t, start, end);
    var v1 = reduce_load(t + 256u, start, end);
    var v2 = reduce_load(t + 512u, start, end);
    var v3 = reduce_load(t + 768u, start, end);
    for (var r0 = start; r0 < end; r0 = r0 + 16u) {
        // Word t + 256·m is component t % 4 of vector t / 4 + 64·m.
        tile_u[t / 4u][t % 4u] = v0.x;
        tile_u[t / 4u + 64u][t % 4u] = v1.x;
        tile_u[t / 4u + 128u][t % 4u] = v2.x;
        tile_u[t / 4u + 192u][t % 4u] = v3.x;
        tile_x[t / 4u][t % 4u] = v0.y;
        tile_x[t / 4u + 64u][t % 4u] = v1.y;
        tile_x[t / 4u + 128u][t % 4u] = v2.y;
        tile_x[t / 4u + 192u][t % 4u] = v3.y;
        // Row r, unit t % 64 of the per-unit sums.
        gsum = gsum + v0.z + v1.z + v2.z + v3.z;
        psum = psum + v0.w + v1.w + v2.w + v3.w;
        workgroupBarrier();
        let next = r0 + 16u;
        v0 = reduce_load(t, next, end);
        v1 = reduce_load(t + 256u, next, end);
        v2 = reduce_load(t + 512u, next, end);
        v3 = reduce_load(t + 768u, next, end);
        for (var rr = 0u; rr < 16u; rr = rr + 1u) {
            let u = tile_u[rr * 16u + ti];
            let x = tile_x[rr * 16u + tj];
            acc0 = acc0 + u.x * x;
            acc1 = acc1 + u.y * x;
            acc2 = acc2 + u.z * x;
            acc3 = acc3 + u.w * x;
        }
        workgroupBarrier();
    }
    let base = d.at_in + chunk * d.dout * d.din;
    store_weight_partials(base, ti * 4u, tj, acc0);
    store_weight_partials(base, ti * 4u + 1u, tj, acc1);
    store_weight_partials(base, ti * 4u + 2u, tj, acc2);
    store_weight_partials(base, ti * 4u + 3u, tj, acc3);
    // The four parts of each unit's sums (the tiles are free after the last barrier above).
    // Word t of each tile; the four parts of unit t < 64 are words t, t + 64, t + 128, t + 192,
    // component t % 4 of vectors t / 4 + 16·m.
    tile_u[t / 4u][t % 4u] = gsum;
    tile_x[t / 4u][t % 4u] = psum;
    workgroupBarrier();
    if (t < d.dout) {
        let o = d.at_out + chunk * 2u * d.dout;
        let v = t / 4u;
        let q = t % 4u;
        dst2[o + t] = tile_u[v][q] + tile_u[v + 16u][q] + tile_u[v + 32u][q] + tile_u[v + 48u][q];
        dst2[o + d.dout + t] = tile_x[v][q] + tile_x[v + 16u][q] + tile_x[v + 32u][q]
            + tile_x[v + 48u][q];
    }
}

// Row r's terms of unit j's sums: (Ȳ U, Ȳ on a primal row).
fn unit_terms(r: u32, j: u32) -> vec2<f32> {
    let o = r * d.dout + j;
    let yb = ybar[d.side_in + o];
    return vec2<f32>(yb * src4[d.uy_at + o], select(0.0, yb, r < d.batch));
}

// Unit j of chunk c (v = c·dout + j) of `chunk_rows` rows: Σ_all Ȳ U into dst2[c·2·dout + j]
// and Σ_primal Ȳ into dst2[c·2·dout + dout + j] (Ȳ in ybar at side_in, src4 = U at uy_at).
fn unit_sums(v: u32, chunks: u32, chunk_rows: u32) {
    if (v >= d.dout * chunks) { return; }
    let j = v % d.dout;
    let chunk = v / d.dout;
    let start = chunk * chunk_rows;
    let end = min(start + chunk_rows, d.rows);
    // Four rows per pass, their loads issued together.
    var sums = vec2<f32>(0.0);
    var r = start;
    for (; r + 4u <= end; r = r + 4u) {
        sums = sums + unit_terms(r, j) + unit_terms(r + 1u, j) + unit_terms(r + 2u, j)
            + unit_terms(r + 3u, j);
    }
    for (; r < end; r = r + 1u) {
        sums = sums + unit_terms(r, j);
    }
    let gsum = sums.x;
    let psum = sums.y;
    dst2[d.at_out + chunk * 2u * d.dout + j] = gsum;
    dst2[d.at_out + chunk * 2u * d.dout + d.dout + j] = psum;
}

