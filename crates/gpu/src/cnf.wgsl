// Kernels of the GPU continuous normalizing flow (see cnf.rs for the mathematics). Stacked
// matrices are row-major with R = (1 + D)·B rows: rows [0, B) are the primal batch, rows
// [k·B, (k+1)·B) the tangent seeded with e_{k-1}. One invocation per output element.

struct Dims {
    rows: u32,    // R
    batch: u32,   // B
    din: u32,     // layer input width (reductions: columns of the second operand)
    dout: u32,    // layer output width
    w: u32,       // parameter offsets of the layer: W, b1, c, b2, b3
    b1: u32,
    c: u32,
    b2: u32,
    b3: u32,
    at_in: u32,   // offset of the first input value in `src` (state vectors)
    at_out: u32,  // offset of the first output value in `dst` (state vectors)
    mode: u32,    // activation: 0 tanh, 1 softplus; reduction: 0 matrix, 1 ones, 2 diagonal
    r0: u32,      // reductions: row range [r0, r1); reduce_final: number of chunks in r0
    r1: u32,
    t: f32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> theta: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst2: array<f32>;
@group(0) @binding(5) var<uniform> d: Dims;

const CHUNK: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// (φ, φ′, φ″) of the activation.
fn act3(y: f32) -> vec3<f32> {
    if (d.mode == 1u) {
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

// X0: primal rows from the state z (at `at_in`), tangent rows the unit seeds.
@compute @workgroup_size(256)
fn seed_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.din) { return; }
    let r = i / d.din;
    let col = i % d.din;
    if (r < d.batch) {
        dst[i] = src[d.at_in + r * d.din + col];
    } else {
        dst[i] = select(0.0, 1.0, col + 1u == r / d.batch);
    }
}

// U = X Wᵀ (+ b1 on primal rows); Y = U ⊙ σ(t c + b2) (+ t b3 on primal rows).
@compute @workgroup_size(256)
fn affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.dout) { return; }
    let r = i / d.dout;
    let j = i % d.dout;
    var u = 0.0;
    for (var k = 0u; k < d.din; k = k + 1u) {
        u = u + src[r * d.din + k] * theta[d.w + j * d.din + k];
    }
    let primal = r < d.batch;
    if (primal) { u = u + theta[d.b1 + j]; }
    let g = sigmoid(d.t * theta[d.c + j] + theta[d.b2 + j]);
    var y = u * g;
    if (primal) { y = y + d.t * theta[d.b3 + j]; }
    dst[i] = u;
    dst2[i] = y;
}

// X' = φ(Y) on primal rows, φ′(Y_primal) ⊙ Y on tangent rows.
@compute @workgroup_size(256)
fn activate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.dout) { return; }
    let r = i / d.dout;
    let j = i % d.dout;
    let a = act3(src[(r % d.batch) * d.dout + j]);
    if (r < d.batch) {
        dst[i] = a.x;
    } else {
        dst[i] = a.y * src[i];
    }
}

// dz = Y[primal], dΔlogp = −Σ_k Y[tangent k, k] (written at `at_out`).
@compute @workgroup_size(256)
fn write_value(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = index(gid, nwg);
    if (b >= d.batch) { return; }
    let D = d.dout;
    var div = 0.0;
    for (var k = 0u; k < D; k = k + 1u) {
        dst[d.at_out + b * D + k] = src[b * D + k];
        div = div + src[((k + 1u) * d.batch + b) * D + k];
    }
    dst[d.at_out + d.batch * D + b] = -div;
}

// Output cotangents: a_z on primal rows, −a_l e_{k-1} on tangent rows (a read at `at_in`).
@compute @workgroup_size(256)
fn seed_cotangent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.dout) { return; }
    let D = d.dout;
    let r = i / D;
    let col = i % D;
    if (r < d.batch) {
        dst[i] = src[d.at_in + r * D + col];
    } else {
        let b = r % d.batch;
        dst[i] = select(0.0, -src[d.at_in + d.batch * D + b], col + 1u == r / d.batch);
    }
}

// Ȳ from X̄' through the activation: primal rows X̄'φ′ + Σ_k X̄'_k ⊙ Y_k φ″, tangent rows X̄'φ′.
// src = Y (pre-activations), src2 = X̄'.
@compute @workgroup_size(256)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.dout) { return; }
    let r = i / d.dout;
    let j = i % d.dout;
    let b = r % d.batch;
    let a = act3(src[b * d.dout + j]);
    if (r < d.batch) {
        var acc = src2[i] * a.y;
        let k_count = d.rows / d.batch;
        for (var k = 1u; k < k_count; k = k + 1u) {
            let rr = (k * d.batch + b) * d.dout + j;
            acc = acc + src2[rr] * src[rr] * a.z;
        }
        dst[i] = acc;
    } else {
        dst[i] = src2[i] * a.y;
    }
}

// Ū = Ȳ ⊙ g.
@compute @workgroup_size(256)
fn gate_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.rows * d.dout) { return; }
    let j = i % d.dout;
    dst[i] = src[i] * sigmoid(d.t * theta[d.c + j] + theta[d.b2 + j]);
}

// Partial sums over chunks of CHUNK rows in [r0, r1) of A[r, j] · B[r, col]:
// mode 0: B (rows × din), entries dout × din; mode 1: B = 1, entries dout; mode 2: B[r, j].
// Partial of chunk c, entry e at dst[c · entries + e].
@compute @workgroup_size(256)
fn reduce_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    var cols = d.din;
    if (d.mode != 0u) { cols = 1u; }
    let entries = d.dout * cols;
    let chunks = (d.r1 - d.r0 + CHUNK - 1u) / CHUNK;
    if (i >= entries * chunks) { return; }
    let e = i % entries;
    let chunk = i / entries;
    let j = e / cols;
    let col = e % cols;
    let start = d.r0 + chunk * CHUNK;
    let end = min(start + CHUNK, d.r1);
    var acc = 0.0;
    for (var r = start; r < end; r = r + 1u) {
        let a = src[r * d.dout + j];
        if (d.mode == 0u) {
            acc = acc + a * src2[r * d.din + col];
        } else if (d.mode == 1u) {
            acc = acc + a;
        } else {
            acc = acc + a * src2[r * d.dout + j];
        }
    }
    dst[i] = acc;
}

// dst[at_out + e] = scale · Σ_c partials[c · entries + e], entries = din, chunks = r0.
@compute @workgroup_size(256)
fn reduce_final(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(gid, nwg);
    if (e >= d.din) { return; }
    var acc = 0.0;
    for (var c = 0u; c < d.r0; c = c + 1u) {
        acc = acc + src[c * d.din + e];
    }
    dst[d.at_out + e] = d.scale * acc;
}

// From ḡ (src): c̄ = scale · t ḡ g(1−g) at dst[w], b̄2 = scale · ḡ g(1−g) at dst[b1].
@compute @workgroup_size(256)
fn gate_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    if (j >= d.dout) { return; }
    let g = sigmoid(d.t * theta[d.c + j] + theta[d.b2 + j]);
    let dg = src[j] * g * (1.0 - g);
    dst[d.w + j] = d.scale * d.t * dg;
    dst[d.b1 + j] = d.scale * dg;
}

// X̄ = Ū W for rows [0, r1).
@compute @workgroup_size(256)
fn input_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= d.r1 * d.din) { return; }
    let r = i / d.din;
    let k = i % d.din;
    var acc = 0.0;
    for (var j = 0u; j < d.dout; j = j + 1u) {
        acc = acc + src[r * d.dout + j] * theta[d.w + j * d.din + k];
    }
    dst[i] = acc;
}

// dx[at_out ..]: scale · X̄ on the z part (primal rows), 0 on the Δlogp part.
@compute @workgroup_size(256)
fn write_adj_z(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let nz = d.batch * d.din;
    if (i >= nz + d.batch) { return; }
    if (i < nz) {
        dst[d.at_out + i] = d.scale * src[i];
    } else {
        dst[d.at_out + i] = 0.0;
    }
}
