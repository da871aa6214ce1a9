// The reductions' last step without subgroup operations (appended to kernels.wgsl): a tree
// through workgroup memory, eight barriers per workgroup of 256.

var<workgroup> partial: array<f32, 256>;

// The workgroup's sum (or, with `take_max`, maximum) of v into out[out_at + wid].
fn reduce_and_store(lid: u32, wid: u32, v: f32, take_max: bool) {
    partial[lid] = v;
    workgroupBarrier();
    var stride = 128u;
    loop {
        if (stride == 0u) { break; }
        if (lid < stride) {
            let other = partial[lid + stride];
            partial[lid] = select(partial[lid] + other, max(partial[lid], other), take_max);
        }
        workgroupBarrier();
        stride = stride / 2u;
    }
    if (lid == 0u) { out[p.out_at + wid] = partial[0]; }
}

@compute @workgroup_size(256)
fn err_sq(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = wid.x + wid.y * nwg.x;
    reduce_and_store(lid.x, w, err_sq_value(w, lid.x), false);
}

@compute @workgroup_size(256)
fn dot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
       @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    reduce_and_store(lid.x, wid.x + wid.y * nwg.x, dot_value(index(gid, nwg)), false);
}

@compute @workgroup_size(256)
fn max_abs(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = wid.x + wid.y * nwg.x;
    reduce_and_store(lid.x, w, max_abs_value(w, lid.x), true);
}

@compute @workgroup_size(256)
fn nonfinite(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    reduce_and_store(lid.x, wid.x + wid.y * nwg.x, nonfinite_value(index(gid, nwg)), false);
}
