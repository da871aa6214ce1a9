//! Unit tests of the context, and a context of its own for other modules' tests.

use super::bind_groups::MAX_KEPT_GROUPS;
use super::*;

/// A context of its own for a unit test, or `None` (the test says "skipped") without an adapter,
/// unless `IRDM_REQUIRE_GPU=1` (CI), where a missing adapter fails.
pub(crate) fn test_context() -> Option<Arc<GpuContext>> {
    match GpuContext::new() {
        Ok(c) => Some(c),
        Err(e) => {
            assert!(
                std::env::var("IRDM_REQUIRE_GPU").as_deref() != Ok("1"),
                "IRDM_REQUIRE_GPU=1 but {e}"
            );
            eprintln!("skipped: {e}");
            None
        }
    }
}

use crate::GpuVec;
use rk::Vector;

/// Kept bind groups are reused for the same kernel and buffers, and dropped when a buffer is
/// created or released, so that they never keep memory the user has let go of.
#[test]
fn kept_bind_groups_are_reused_and_dropped_when_the_buffers_change() {
    let Some(ctx) = test_context() else { return };
    let mut v = GpuVec::zeros(&ctx, 64);
    let before = ctx.bind_groups_created();
    for _ in 0..10 {
        v.fill(1.0);
    }
    assert_eq!(ctx.bind_groups_created() - before, 1);
    assert_eq!(ctx.kept_bind_groups(), 1);
    v.scale(2.0);
    assert_eq!(ctx.kept_bind_groups(), 2);
    let mut w = GpuVec::zeros(&ctx, 65);
    w.fill(3.0);
    // The creation of w dropped v's groups; only w's is kept.
    assert_eq!(ctx.kept_bind_groups(), 1);
    assert_eq!(ctx.bind_groups_created() - before, 3);
    assert!(w.to_host().iter().all(|&x| x == 3.0));
    // A model's release (here: dropped) drops the kept groups too.
    let cnf = crate::GpuCnf::toy(&ctx, 4, crate::GpuActivation::Tanh).unwrap();
    w.fill(4.0);
    assert_eq!(ctx.kept_bind_groups(), 1);
    drop(cnf);
    w.fill(5.0);
    assert_eq!(ctx.kept_bind_groups(), 1);
    assert_eq!(ctx.bind_groups_created() - before, 5);
    // Beyond the pool's limit a dropped vector's buffer is released, with the same effect.
    ctx.release_cached();
    ctx.set_pool_limit(1500);
    let big = GpuVec::zeros(&ctx, 1000);
    let big2 = GpuVec::zeros(&ctx, 1000);
    drop(big);
    assert_eq!(ctx.pooled_floats(), 1000);
    w.fill(6.0);
    let groups = ctx.bind_groups_created();
    drop(big2);
    assert_eq!(ctx.pooled_floats(), 1000, "over the limit: released");
    w.fill(7.0);
    assert_eq!(ctx.bind_groups_created(), groups + 1);
}

/// However many (kernel, buffers) combinations meet, at most `MAX_KEPT_GROUPS` groups are
/// kept, and the results stay right across the drop.
#[test]
fn kept_bind_groups_are_bounded() {
    let Some(ctx) = test_context() else { return };
    let vs: Vec<GpuVec> = (0..40)
        .map(|i| GpuVec::from_host(&ctx, &[i as f32; 8]))
        .collect();
    let mut out = GpuVec::zeros(&ctx, 8);
    let mut most = 0;
    for (i, a) in vs.iter().enumerate() {
        for (j, b) in vs.iter().enumerate() {
            out.offset_linear_combination(a, &[2.0], std::slice::from_ref(b));
            most = most.max(ctx.kept_bind_groups());
            if (i + j) % 97 == 0 {
                let want = (i + 2 * j) as f32;
                assert!(out.to_host().iter().all(|&x| x == want), "{i} {j}");
            }
        }
    }
    assert!(ctx.bind_groups_created() > MAX_KEPT_GROUPS);
    assert!(most <= MAX_KEPT_GROUPS, "{most}");
}

/// A dropped vector's buffer serves the next vector of its length, zeroed, without a new
/// buffer, and with its bind groups.
#[test]
fn pooled_buffers_come_back_zeroed_with_their_bind_groups() {
    let Some(ctx) = test_context() else { return };
    let mut v = GpuVec::zeros(&ctx, 1000);
    v.fill(5.0);
    let _ = v.to_host();
    drop(v);
    assert_eq!(ctx.pooled_floats(), 1000);
    let (buffers, groups) = (ctx.buffers_created(), ctx.bind_groups_created());
    let mut w = GpuVec::zeros(&ctx, 1000);
    assert_eq!(ctx.buffers_created(), buffers);
    assert_eq!(ctx.pooled_floats(), 0);
    assert!(
        w.to_host().iter().all(|&x| x == 0.0),
        "a pooled buffer comes back zeroed"
    );
    w.fill(2.0);
    assert_eq!(
        ctx.bind_groups_created(),
        groups,
        "v's group for fill serves w"
    );
    assert!(w.to_host().iter().all(|&x| x == 2.0));
    ctx.release_cached();
    drop(w);
    assert_eq!(ctx.pooled_floats(), 1000);
    ctx.release_cached();
    assert_eq!(ctx.pooled_floats(), 0);
}
