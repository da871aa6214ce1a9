// The adapter's f32 arithmetic throughput: independent chains of multiply-adds and nothing
// else (no memory traffic beyond one float written per invocation).
//
// Invocation i keeps four vec4 accumulators (16 chains), starts chain c at
// x0 = c / 4 + (i mod 64) / 64 and applies x <- a x + b to each 4 * steps times (the loop body
// is unrolled four times), then writes the sum of its 16 chains. One invocation thus performs
// 128 * steps floating-point operations (a multiply-add counts as two), the count the host
// divides by the time, and the sum has the closed form sum_c (c* + a^(4 steps) (x0_c - c*)),
// c* = b / (1 - a), which the host checks so that a result is never a rate of skipped work.

struct PeakParams {
    n: u32,      // invocations
    steps: u32,  // trips through the loop body
    a: f32,
    b: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: PeakParams;

@compute @workgroup_size(256)
fn fma_chains(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) { return; }
    let s = f32(i % 64u) / 64.0;
    var x0 = vec4<f32>(0.0, 0.25, 0.5, 0.75) + s;
    var x1 = x0 + 1.0;
    var x2 = x0 + 2.0;
    var x3 = x0 + 3.0;
    let a = vec4<f32>(p.a);
    let b = vec4<f32>(p.b);
    for (var k = 0u; k < p.steps; k++) {
        x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b); x3 = fma(x3, a, b);
        x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b); x3 = fma(x3, a, b);
        x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b); x3 = fma(x3, a, b);
        x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b); x3 = fma(x3, a, b);
    }
    out[i] = dot(x0 + x1 + x2 + x3, vec4<f32>(1.0));
}
