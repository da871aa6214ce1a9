// The tiled products of the concat-squash net (appended to common.wgsl, forward.wgsl and
// backward.wgsl when the pipelines are built; it uses their bindings, Dims and helpers). Every
// one is a 64 × 64 tile of C = A B per workgroup of 256, K in steps of 16 through workgroup
// memory, a 4 × 4 block per invocation: rows 4·ti … 4·ti + 3 and columns 4·tj … 4·tj + 3. Both
// tiles are stored k-major, as vectors of four consecutive rows (A) or columns (B), TILE_PITCH =
// 17 vectors (68 words) per k: an invocation reads its block's four A values and four B values
// as two 16-byte loads per k (eight FMAs per load; with one word per load, as before, the
// workgroup memory rather than the arithmetic bounded the loop), the 16 invocations of a block
// row read 16 consecutive vectors of the B tile and share one of A, and the padding vector keeps
// the scalar stores of 16 consecutive k of one row to two words per bank. Each step's loads are
// issued together, the next step's before the current one is multiplied. Two products share the
// loop (tile_product) and differ in what they load and what follows it:
//
// * layer_tiled (PRODUCT_LAYER): a whole forward layer, U = X Wᵀ and the rest of
//   layer_forward's work on it in the same invocation.
// * cotangent_tiled (PRODUCT_COTANGENT): a layer's input cotangent X̄ = Ū W taken on through
//   the layer below's activation and gate (input_backward_rows' work).
//
// Both take whole points per tile, LAYER_POINTS = ⌊64 / (1 + K)⌋ of them with all
// their rows (tile row i: tangent i / LAYER_POINTS of point i % LAYER_POINTS), so what one
// row's epilogue needs from the point's other rows is in the tile: passed through workgroup
// memory (the tiles' storage, free after the last step; LAYER_POINTS · 64 ≤ 2 048 words when
// K > 0) between barriers.
const TILE_PITCH: u32 = 17u;
const TILE_WORDS: u32 = 1088u;
var<workgroup> tile_a: array<vec4<f32>, 272>;
var<workgroup> tile_w: array<vec4<f32>, 272>;

const PRODUCT_LAYER: u32 = 0u;
const PRODUCT_COTANGENT: u32 = 1u;

override LAYER_POINTS: u32 = 64u / POINT_ROWS;

// Element idx of a step from k0: A at tile row idx / 16, k idx % 16, and B at a column and k
// laid out for loading along B's unit stride; with the words they go to in tile_a and
// tile_w (k · 68 + row or column).
struct TileElement {
    a: f32,
    w: f32,
    at_a: u32,
    at_w: u32,
}

// Stacked row of tile row i of point tile p (x), and whether it is a row of the batch (y).
fn layer_row(p: u32, i: u32) -> vec2<u32> {
    let k = i / LAYER_POINTS;
    let b = p * LAYER_POINTS + i % LAYER_POINTS;
    return vec2<u32>(k * d.batch + b, select(0u, 1u, k < POINT_ROWS && b < d.batch));
}

// Element idx of step k0 of product `which` in tile (p, tc) (p: the tile of points).
fn tile_load(which: u32, idx: u32, k0: u32, p: u32, tc: u32) -> TileElement {
    let row = idx / 16u;
    let kq = idx % 16u;
    let r = layer_row(p, row);
    var a = 0.0;
    var wv = 0.0;
    if (which == PRODUCT_LAYER) {
        // A = X (dst4 at x_at, din wide), B = Wᵀ (W row-major, dout × din: unit k stride, so
        // loaded along k, consecutive invocations reading consecutive words).
        let c = tc * 64u + row;
        if (r.y == 1u && k0 + kq < d.din) { a = dst4[d.x_at + r.x * d.din + k0 + kq]; }
        if (c < d.dout && k0 + kq < d.din) { wv = theta[d.w + c * d.din + k0 + kq]; }
        return TileElement(a, wv, kq * 4u * TILE_PITCH + row, kq * 4u * TILE_PITCH + row);
    }
    // A = Ū (ubar at side_in, dout wide), B = W (unit column stride, so loaded along the
    // columns): K = dout, N = din.
    let col = idx % 64u;
    let kw = idx / 64u;
    let c = tc * 64u + col;
    if (r.y == 1u && k0 + kq < d.dout) { a = ubar[d.side_in + r.x * d.dout + k0 + kq]; }
    if (c < d.din && k0 + kw < d.dout) { wv = theta[d.w + (k0 + kw) * d.din + c]; }
    return TileElement(a, wv, kq * 4u * TILE_PITCH + row, kw * 4u * TILE_PITCH + col);
}

fn tile_store(e: TileElement) {
    tile_a[e.at_a / 4u][e.at_a % 4u] = e.a;
    tile_w[e.at_w / 4u][e.at_w % 4u] = e.w;
}

// An invocation's 4 × 4 block of C: rows 4·ti + a in component a of the struct, columns
// 4·tj + b in component b of each vector.
struct Block {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

// The block of invocation t of tile (p, tc) of product `which`, over `depth` values of k.
// Ends with a barrier: the tiles' storage is free for the epilogue.
fn tile_product(which: u32, t: u32, p: u32, tc: u32, depth: u32) -> Block {
    let ti = t / 16u;
    let tj = t % 16u;
    var acc = Block(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var v0 = tile_load(which, t, 0u, p, tc);
    var v1 = tile_load(which, t + 256u, 0u, p, tc);
    var v2 = tile_load(which, t + 512u, 0u, p, tc);
    var v3 = tile_load(which, t + 768u, 0u, p, tc);
    for (var k0 = 0u; k0 < depth; k0 = k0 + 16u) {
        tile_store(v0);
        tile_store(v1);
        tile_store(v2);
        tile_store(v3);
        workgroupBarrier();
        let next = k0 + 16u;
        v0 = tile_load(which, t, next, p, tc);
        v1 = tile_load(which, t + 256u, next, p, tc);
        v2 = tile_load(which, t + 512u, next, p, tc);
        v3 = tile_load(which, t + 768u, next, p, tc);
        for (var kq = 0u; kq < 16u; kq = kq + 1u) {
            let a = tile_a[kq * TILE_PITCH + ti];
            let w = tile_w[kq * TILE_PITCH + tj];
            acc.r0 = acc.r0 + a.x * w;
            acc.r1 = acc.r1 + a.y * w;
            acc.r2 = acc.r2 + a.z * w;
            acc.r3 = acc.r3 + a.w * w;
        }
        workgroupBarrier();
    }
    return acc;
}

// Where invocation lid of workgroup wid works, in a product `width` columns wide: its tile of
// points p and of columns tc, its first column c0 (columns c0 … c0 + 3, c0 = 64 tc + 4 tj)
// and its first tile row i (rows i … i + 3).
struct PointTile {
    p: u32,
    tc: u32,
    c0: u32,
    i: u32,
}

fn point_tile(lid: u32, wid: vec3<u32>, nwg: vec3<u32>, width: u32) -> PointTile {
    let tiles_n = (width + 63u) / 64u;
    let tile = wid.x + wid.y * nwg.x;
    let tc = tile % tiles_n;
    return PointTile(tile / tiles_n, tc, tc * 64u + 4u * (lid % 16u), (lid / 16u) * 4u);
}

// Words of workgroup memory for the epilogues: word `at` < 2 176 of the two tiles.
fn shared_store(at: u32, v: f32) {
    if (at < TILE_WORDS) {
        tile_a[at / 4u][at % 4u] = v;
    } else {
        tile_w[(at - TILE_WORDS) / 4u][at % 4u] = v;
    }
}

fn shared_load(at: u32) -> f32 {
    if (at < TILE_WORDS) { return tile_a[at / 4u][at % 4u]; }
    return tile_w[(at - TILE_WORDS) / 4u][at % 4u];
}

// The gates σ(t c + b2) of an invocation's four columns c0 + b below `width` (d.c and d.b2:
// the layer whose gate it is), computed once for all its rows.
fn gates(c0: u32, width: u32) -> vec4<f32> {
    var g = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q = q + 1u) {
        if (c0 + q < width) { g[q] = gate(c0 + q); }
    }
    return g;
}

// layer_tiled's epilogue of tile row i (products v at columns c0 + b, gates g): the primal rows with `primal` (they leave φ′(Y) in workgroup memory), the tangent
// rows without. Written as layer_forward writes them: U and Y to dst and dst2 at uy_at unless
// bit 4, X' = φ(Y) on the primal row and φ′(Y_primal) Y on tangent rows to dst4 at x_next with
// bit 1, the primal Y as the value into dst3 at `at_out` with bit 8 (no divergence sum: not for
// the last layer of a CNF).
fn layer_epilogue(p: u32, i: u32, c0: u32, v: vec4<f32>, g: vec4<f32>, primal: bool) {
    let r = layer_row(p, i);
    let k = i / LAYER_POINTS;
    if (r.y == 0u || (k == 0u) != primal) { return; }
    let b = r.x - k * d.batch;
    let cj = c0 % 64u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let c = c0 + q;
        if (c >= d.dout) { continue; }
        var u = v[q];
        var y = 0.0;
        var xn = 0.0;
        if (primal) {
            u = u + theta[d.b1 + c];
            y = u * g[q] + d.t * theta[d.b3 + c];
            if ((d.mode & 2u) == 2u) {
                let a = act3(y);
                xn = a.x;
                if (POINT_ROWS > 1u) { shared_store(i * 64u + cj + q, a.y); }
            }
            if ((d.mode & 256u) == 256u) { dst3[d.at_out + b * d.dout + c] = y; }
        } else {
            y = u * g[q];
            xn = shared_load((i % LAYER_POINTS) * 64u + cj + q) * y;
        }
        let o = r.x * d.dout + c;
        if ((d.mode & 16u) == 0u) {
            dst[d.uy_at + o] = u;
            dst2[d.uy_at + o] = y;
        }
        if ((d.mode & 2u) == 2u) { dst4[d.x_next + o] = xn; }
    }
}

// layer_epilogue on an invocation's four rows (i … i + 3).
fn layer_rows(p: u32, i: u32, c0: u32, acc: Block, g: vec4<f32>, primal: bool) {
    layer_epilogue(p, i, c0, acc.r0, g, primal);
    layer_epilogue(p, i + 1u, c0, acc.r1, g, primal);
    layer_epilogue(p, i + 2u, c0, acc.r2, g, primal);
    layer_epilogue(p, i + 3u, c0, acc.r3, g, primal);
}

// A whole layer with a tiled product (layer_forward's work for layers at least 16 wide with
// tiled forward products): U never goes to memory and back, one dispatch instead of two.
@compute @workgroup_size(256)
fn layer_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let at = point_tile(lid.x, wid, nwg, d.dout);
    let p = at.p;
    if (p * LAYER_POINTS >= d.batch) { return; }
    let acc = tile_product(PRODUCT_LAYER, lid.x, p, at.tc, d.din);
    let c0 = at.c0;
    let i = at.i;
    let g = gates(c0, d.dout);
    layer_rows(p, i, c0, acc, g, true);
    if (POINT_ROWS > 1u) {
        workgroupBarrier();
        layer_rows(p, i, c0, acc, g, false);
    }
}

// Steps of cotangent_tiled's epilogue on tile row i (X̄' in v at columns c0 + b of the layer
// below, gates g of the layer below), each between barriers, through one word of
// workgroup memory per point and column:
//   COTANGENT_SLOPE   primal rows: φ′(Y_primal) into the word;
//   COTANGENT_TANGENT tangent rows: Ȳ = X̄' φ′(Y_primal) (from the word), Ū = Ȳ g;
//   phase k ≥ 1       tangent k's rows: X̄'_k Y_k into the word (k = 1) or added to it;
//   COTANGENT_PRIMAL  primal rows: Ȳ = X̄'φ′ + (Σ_k X̄'_k Y_k) φ″, Ū = Ȳ g;
// so φ′ and φ″ are computed twice per point and column, not once per row.
const COTANGENT_SLOPE: u32 = 100u;
const COTANGENT_TANGENT: u32 = 101u;
const COTANGENT_PRIMAL: u32 = 102u;

fn cotangent_epilogue(p: u32, i: u32, c0: u32, v: vec4<f32>, g: vec4<f32>, step: u32) {
    let r = layer_row(p, i);
    let k = i / LAYER_POINTS;
    if (r.y == 0u) { return; }
    let on_primal = step == COTANGENT_SLOPE || step == COTANGENT_PRIMAL;
    if (on_primal != (k == 0u)) { return; }
    if (step < COTANGENT_SLOPE && k != step) { return; }
    let b = r.x - k * d.batch;
    let pt = i % LAYER_POINTS;
    let cj = c0 % 64u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let c = c0 + q;
        if (c >= d.din) { continue; }
        let o = r.x * d.din + c;
        let at = pt * 64u + cj + q;
        if (step == COTANGENT_SLOPE) {
            shared_store(at, act3(src[d.y_below + o]).y);
        } else if (step == COTANGENT_TANGENT) {
            let yb = v[q] * shared_load(at);
            ybar[d.side_out + o] = yb;
            ubar[d.side_out + o] = yb * g[q];
        } else if (step == COTANGENT_PRIMAL) {
            let a = act3(src[d.y_below + o]);
            var yb = v[q] * a.y;
            if (POINT_ROWS > 1u) { yb = yb + shared_load(at) * a.z; }
            ybar[d.side_out + o] = yb;
            ubar[d.side_out + o] = yb * g[q];
        } else {
            var sum = v[q] * src[d.y_below + o];
            if (step > 1u) { sum = sum + shared_load(at); }
            shared_store(at, sum);
        }
    }
}

// One step of cotangent_tiled's epilogue on an invocation's four rows (i … i + 3).
fn cotangent_rows(p: u32, i: u32, c0: u32, acc: Block, g: vec4<f32>, step: u32) {
    cotangent_epilogue(p, i, c0, acc.r0, g, step);
    cotangent_epilogue(p, i + 1u, c0, acc.r1, g, step);
    cotangent_epilogue(p, i + 2u, c0, acc.r2, g, step);
    cotangent_epilogue(p, i + 3u, c0, acc.r3, g, step);
}

// Layer l's input cotangent X̄ = Ū W (Ū in ubar at side_in) as a tiled product, taken on in
// the same invocation through layer l − 1's activation and gate (src = Y_{l−1} at y_below):
// Ȳ_{l−1}, Ū_{l−1} into ybar and ubar at side_out, as input_backward_rows writes them (d.din,
// d.dout and d.w are layer l's; d.c and d.b2 layer l − 1's). X̄ never goes to memory and
// back, one dispatch instead of two.
@compute @workgroup_size(256)
fn cotangent_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let at = point_tile(lid.x, wid, nwg, d.din);
    let p = at.p;
    if (p * LAYER_POINTS >= d.batch) { return; }
    let acc = tile_product(PRODUCT_COTANGENT, lid.x, p, at.tc, d.dout);
    let c0 = at.c0;
    let i = at.i;
    let g = gates(c0, d.din);
    if (POINT_ROWS > 1u) {
        cotangent_rows(p, i, c0, acc, g, COTANGENT_SLOPE);
        workgroupBarrier();
        cotangent_rows(p, i, c0, acc, g, COTANGENT_TANGENT);
        workgroupBarrier();
        for (var phase = 1u; phase < POINT_ROWS; phase = phase + 1u) {
            cotangent_rows(p, i, c0, acc, g, phase);
            workgroupBarrier();
        }
    }
    cotangent_rows(p, i, c0, acc, g, COTANGENT_PRIMAL);
}
