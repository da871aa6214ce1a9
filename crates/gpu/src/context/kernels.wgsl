// Elementwise and reduction kernels of GpuVec (f32). One invocation per element; reductions
// write one partial sum per workgroup of 256 (from out[out_at] on), summed on the host.

struct Params {
    n: u32,       // end index (exclusive)
    mode: u32,    // lincomb: 1 = accumulate into out; err_sq: 1 = per-component atol in x3
    start: u32,   // first index (reductions)
    out_at: u32,  // reductions: index of this dispatch's first partial sum in out
    a: f32,       // fill value, scale, axpby a, err_sq rtol
    b: f32,       // axpby b, err_sq scalar atol
    flags: u32,   // combine_rows: 1 = accumulate into out; err_sq: number of groups
    stride: u32,  // combine_rows: rows between two combined rows
    c: vec4<f32>, // lincomb coefficients 0-3
    c2: vec4<f32>, // lincomb8 coefficients 4-7
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read> x1: array<f32>;
@group(0) @binding(3) var<storage, read> x2: array<f32>;
@group(0) @binding(4) var<storage, read> x3: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
// Small per-dispatch arrays staged in the context's data ring (bound with a dynamic offset).
@group(0) @binding(6) var<storage, read> ring_coeffs: array<f32>;
// Inputs 4-7 of lincomb8 (compiled only where a kernel may bind nine storage buffers).
@group(0) @binding(7) var<storage, read> x4: array<f32>;
@group(0) @binding(8) var<storage, read> x5: array<f32>;
@group(0) @binding(9) var<storage, read> x6: array<f32>;
@group(0) @binding(10) var<storage, read> x7: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = p.a; }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = p.a * out[i]; }
}

@compute @workgroup_size(256)
fn axpby(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = p.a * x0[i] + p.b * out[i]; }
}

@compute @workgroup_size(256)
fn lincomb4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        var acc = p.c.x * x0[i] + p.c.y * x1[i] + p.c.z * x2[i] + p.c.w * x3[i];
        if (p.mode == 1u) { acc = acc + out[i]; }
        out[i] = acc;
    }
}

@compute @workgroup_size(256)
fn lincomb8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        var acc = p.c.x * x0[i] + p.c.y * x1[i] + p.c.z * x2[i] + p.c.w * x3[i]
            + p.c2.x * x4[i] + p.c2.y * x5[i] + p.c2.z * x6[i] + p.c2.w * x7[i];
        if (p.mode == 1u) { acc = acc + out[i]; }
        out[i] = acc;
    }
}

// The workgroup's sum or maximum of one value per invocation (reduce_and_store) and the four
// reduction entry points come from reduce_shared.wgsl (a tree through workgroup memory) or,
// where the adapter has subgroup operations, reduce_subgroup.wgsl; the entry points call the
// per-invocation values below.

// A grouped reduction's component for invocation lid of workgroup w, and its group's end:
// ring_coeffs holds, per group (p.flags of them), its first and end component and its first
// workgroup (u32 bits); a group's workgroups follow one another, so its partials are
// out[out_at + first …] (every group in one dispatch).
fn grouped_index(w: u32, lid: u32) -> vec2<u32> {
    var g = 0u;
    for (var k = 1u; k < p.flags; k = k + 1u) {
        if (bitcast<u32>(ring_coeffs[3u * k + 2u]) <= w) { g = k; }
    }
    let end = bitcast<u32>(ring_coeffs[3u * g + 1u]);
    let i = bitcast<u32>(ring_coeffs[3u * g]) + (w - bitcast<u32>(ring_coeffs[3u * g + 2u])) * 256u + lid;
    return vec2<u32>(i, end);
}

// err_sq's value of invocation lid of workgroup w: Σ (e / (atol + rtol·max(|y0|, |y1|)))² over
// each of p.flags groups of components, one partial sum per workgroup (grouped_index): x0 = e,
// x1 = y0, x2 = y1, x3 = atol (mode 1).
fn err_sq_value(w: u32, lid: u32) -> f32 {
    let at = grouped_index(w, lid);
    let i = at.x;
    var v = 0.0;
    if (i < at.y) {
        var atol = p.b;
        if (p.mode == 1u) { atol = x3[i]; }
        let wt = atol + p.a * max(abs(x1[i]), abs(x2[i]));
        let r = x0[i] / wt;
        v = r * r;
    }
    return v;
}

// dot's value of invocation i: Σ x0·x1 over [start, n).
fn dot_value(i: u32) -> f32 {
    let j = p.start + i;
    var v = 0.0;
    if (j < p.n) { v = x0[j] * x1[j]; }
    return v;
}

// Whether x is ±inf or NaN (exponent bits all ones), tested on the bits because WGSL
// implementations may assume floats are finite in comparisons.
fn nonfinite_bits(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// max_abs's value: the largest |x0| over each of p.flags groups of components (grouped_index),
// one partial maximum per workgroup; non-finite entries count as +inf (tested on the bits).
fn max_abs_value(w: u32, lid: u32) -> f32 {
    let at = grouped_index(w, lid);
    let i = at.x;
    var v = 0.0;
    if (i < at.y) {
        if (nonfinite_bits(x0[i])) {
            v = bitcast<f32>(0x7f800000u);
        } else {
            v = abs(x0[i]);
        }
    }
    return v;
}

// nonfinite's value of invocation i: the count of non-finite entries (exponent bits all ones:
// ±inf or NaN) over [start, n).
fn nonfinite_value(i: u32) -> f32 {
    let j = p.start + i;
    var v = 0.0;
    if (j < p.n) {
        if (nonfinite_bits(x0[j])) { v = 1.0; }
    }
    return v;
}

// Entry i of row k of combine_rows' stacked rows.
fn row_entry(k: u32, i: u32) -> f32 {
    return x0[(p.start + k * p.stride) * p.n + i];
}

// out (+)= Σ_k c[k] · x0[(start + k·stride)·n + i] over mode rows from row start (x0 = stacked
// rows, c = their coefficients from the data ring); flags 1 adds to out.
@compute @workgroup_size(256)
fn combine_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        // Four rows per pass, their loads issued together.
        var acc4 = vec4<f32>(0.0);
        var k = 0u;
        for (; k + 4u <= p.mode; k = k + 4u) {
            let c = vec4<f32>(ring_coeffs[k], ring_coeffs[k + 1u], ring_coeffs[k + 2u], ring_coeffs[k + 3u]);
            let x = vec4<f32>(row_entry(k, i), row_entry(k + 1u, i), row_entry(k + 2u, i),
                              row_entry(k + 3u, i));
            acc4 = acc4 + c * x;
        }
        var acc = acc4.x + acc4.y + acc4.z + acc4.w;
        for (; k < p.mode; k = k + 1u) {
            acc = acc + ring_coeffs[k] * row_entry(k, i);
        }
        if (p.flags == 1u) { acc = acc + out[i]; }
        out[i] = acc;
    }
}
