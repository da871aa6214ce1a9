// The forward kernels of the concat-squash net (appended to common.wgsl when the pipelines are
// built; its bindings, Dims and helpers): the seeds, one layer (layer_forward), the whole net in
// one dispatch (net_forward, with IRDM's interpolated state) and the value with the divergence
// (write_value). Launched from forward.rs.

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
