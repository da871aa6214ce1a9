// The reductions' last step with subgroup operations (appended to kernels.wgsl where the device
// has wgpu::Features::SUBGROUP; wgpu 30's WGSL front end takes them without an `enable`): each
// subgroup sums (or takes the maximum of) its values in registers, its first invocation
// leaves the result in workgroup memory at the subgroup's index, and after one barrier
// invocation 0 adds the subgroups' results in index order: one barrier per workgroup instead
// of eight, and a sum in an order fixed by the adapter's subgroup layout.

var<workgroup> partial: array<f32, 256>;

// The workgroup's sum (or, with `take_max`, maximum) of v into out[out_at + wid]; sg: this
// invocation's index in its subgroup, its subgroup's index and the number of subgroups.
fn reduce_and_store(lid: u32, wid: u32, v: f32, take_max: bool, sg: vec3<u32>) {
    let lane = sg.x;
    let n_sg = sg.z;
    // Both, then the one asked for: subgroup operations stay out of branches.
    let total = subgroupAdd(v);
    let largest = subgroupMax(v);
    if (lane == 0u) { partial[sg.y] = select(total, largest, take_max); }
    workgroupBarrier();
    if (lid == 0u) {
        var r = partial[0];
        for (var k = 1u; k < n_sg; k = k + 1u) {
            r = select(r + partial[k], max(r, partial[k]), take_max);
        }
        out[p.out_at + wid] = r;
    }
}

@compute @workgroup_size(256)
fn err_sq(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32,
          @builtin(num_subgroups) n_sg: u32) {
    let w = wid.x + wid.y * nwg.x;
    reduce_and_store(lid.x, w, err_sq_value(w, lid.x), false, vec3<u32>(lane, sg, n_sg));
}

@compute @workgroup_size(256)
fn dot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
       @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) n_sg: u32) {
    reduce_and_store(lid.x, wid.x + wid.y * nwg.x, dot_value(index(gid, nwg)), false, vec3<u32>(lane, sg, n_sg));
}

@compute @workgroup_size(256)
fn max_abs(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32,
           @builtin(num_subgroups) n_sg: u32) {
    let w = wid.x + wid.y * nwg.x;
    reduce_and_store(lid.x, w, max_abs_value(w, lid.x), true, vec3<u32>(lane, sg, n_sg));
}

@compute @workgroup_size(256)
fn nonfinite(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) n_sg: u32) {
    reduce_and_store(lid.x, wid.x + wid.y * nwg.x, nonfinite_value(index(gid, nwg)), false, vec3<u32>(lane, sg, n_sg));
}
