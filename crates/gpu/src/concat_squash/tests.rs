//! Unit tests of the net's kernels and plans.

use super::plan::ReducePlan;
use super::*;

/// Every kernel binds at most 8 storage buffers (the data ring included): the portable
/// limit, which every device allows.
#[test]
fn kernels_fit_the_portable_storage_limit() {
    let counts = crate::kernel::storage_buffers(SOURCE, &ENTRIES);
    for (entry, n) in ENTRIES.iter().zip(&counts) {
        assert!(*n <= 8, "{entry}: {n} storage buffers");
    }
}

/// The tiled reduction's chunks: enough workgroups at small batch, at most `FEW_CHUNKS`
/// unless `CHUNK` long; the partial-sum buffers hold the more chunks of either choice.
#[test]
fn tiled_chunks_follow_the_batch() {
    assert_eq!(tiled_chunk_rows(300), 16);
    assert_eq!(tiled_chunk_rows(3_000), 16);
    assert_eq!(tiled_chunk_rows(30_000), 128);
    assert_eq!(tiled_chunk_rows(300_000), 256);
    for rows in [1, 7, 300, 4_097, 30_000, 3_000_000] {
        let c = tiled_chunk_rows(rows);
        assert!(c.is_power_of_two() && (MIN_CHUNK..=CHUNK).contains(&c));
        assert!(c == CHUNK || rows.div_ceil(c) <= FEW_CHUNKS);
    }
    let (layers, _) = layers_of(&[2, 64, 64, 2]);
    for rows in [300, 3_000, 30_000] {
        let plan = ReducePlan::new(&layers, rows);
        for tiled in [0, 1] {
            let mut w_end = 0;
            for (i, l) in layers.iter().enumerate() {
                let chunks = rows.div_ceil(plan.chunk[tiled][i]);
                w_end = w_end.max(plan.weights_at[i] + chunks * l.din * l.dout);
                let next = plan.weights_at.get(i + 1).copied();
                assert!(next.is_none_or(|n| n >= plan.weights_at[i] + chunks * l.din * l.dout));
                let u_next = plan.units_at.get(i + 1).copied();
                assert!(u_next.is_none_or(|n| n >= plan.units_at[i] + chunks * 2 * l.dout));
                assert!(plan.units_at[i] + chunks * 2 * l.dout <= plan.unit_floats);
            }
            assert!(w_end <= plan.weight_floats);
        }
    }
}

/// The simple reduction's chunks: short at small batch, `CHUNK` at large, always a power of
/// two in range, and few enough for the final reduction unless already `CHUNK` long.
#[test]
fn chunk_rows_follow_the_batch() {
    // The toy CNF (2-64-64-2, exact divergence: 3 rows per point), middle layer.
    assert_eq!(chunk_rows(300, 64 * 64), 16);
    assert_eq!(chunk_rows(3_000, 64 * 64), 128);
    assert_eq!(chunk_rows(30_000, 64 * 64), 256);
    assert_eq!(chunk_rows(300_000, 64 * 64), 256);
    // Its first and last layers (128 weights).
    assert_eq!(chunk_rows(300, 128), 16);
    assert_eq!(chunk_rows(30_000, 128), 128);
    for rows in [1, 7, 300, 1_000, 4_097, 30_000, 300_000, 3_000_000] {
        for entries in [1, 4, 128, 4_096, 65_536] {
            let c = chunk_rows(rows, entries);
            assert!(c.is_power_of_two() && (MIN_CHUNK..=CHUNK).contains(&c));
            assert!(
                c == CHUNK || rows.div_ceil(c) <= FEW_CHUNKS,
                "{rows} {entries}"
            );
        }
    }
}
