// The backward kernels of the concat-squash net (appended to common.wgsl and forward.wgsl when
// the pipelines are built): the row cotangents Ȳ and Ū layer by layer, the input cotangent, and
// the parameter cotangents reduced over the batch (reduce_partial, reduce_final, the tiled
// reduce_weights). Launched from backward.rs.

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

