//! The reduction plan of the parameter cotangents at one batch size.

use super::*;

/// How every layer's parameter cotangents are reduced at one batch size, worked out once per
/// batch: each layer's partial sums side by side (so that one dispatch finishes them all, sized
/// by the simple reduction's chunks, at least as many as the tiled one's), and for either
/// choice of backward kernels the rows per chunk of each layer and `reduce_final`'s table.
pub(super) struct ReducePlan {
    /// Offset of each layer's weight partials (chunks × weights).
    pub(super) weights_at: Vec<usize>,
    /// Offset of each layer's per-unit partials (chunks × 2 × units).
    pub(super) units_at: Vec<usize>,
    /// Floats of the two partial-sum buffers.
    pub(super) weight_floats: usize,
    pub(super) unit_floats: usize,
    /// Indexed by whether the backward kernels are tiled: rows per chunk of each layer.
    pub(super) chunk: [Vec<usize>; 2],
    /// Likewise: `reduce_final`'s table of layers (`LAYER_WORDS` words each, as f32 bits).
    pub(super) table: [Vec<f32>; 2],
    /// Items of `reduce_final`: weights and units of every layer.
    pub(super) items: usize,
}

impl ReducePlan {
    pub(super) fn new(layers: &[Layer], rows: usize) -> Self {
        let chunk = [false, true].map(|tiled_backward| {
            layers
                .iter()
                .map(|l| {
                    if tiled_reduction(l, tiled_backward) {
                        tiled_chunk_rows(rows)
                    } else {
                        chunk_rows(rows, reduce_items(l))
                    }
                })
                .collect::<Vec<usize>>()
        });
        // Room for the partials of either choice: the more chunks of the two.
        let (mut weights_at, mut units_at) = (Vec::new(), Vec::new());
        let (mut w_at, mut u_at) = (0, 0);
        for (i, l) in layers.iter().enumerate() {
            let chunks = rows.div_ceil(chunk[0][i].min(chunk[1][i]));
            weights_at.push(w_at);
            units_at.push(u_at);
            w_at += chunks * l.din * l.dout;
            u_at += chunks * 2 * l.dout;
        }
        let table = chunk.clone().map(|chunk| {
            let mut first = 0;
            let mut words = Vec::with_capacity(layers.len() * LAYER_WORDS);
            for (i, l) in layers.iter().enumerate() {
                let row = [
                    first,
                    l.din,
                    l.dout,
                    l.w,
                    l.b1,
                    l.c,
                    l.b2,
                    l.b3,
                    rows.div_ceil(chunk[i]),
                    weights_at[i],
                    units_at[i],
                ];
                words.extend(row.map(|v| f32::from_bits(v as u32)));
                first += l.din * l.dout + l.dout;
            }
            words
        });
        let items = layers.iter().map(|l| l.din * l.dout + l.dout).sum();
        Self {
            weights_at,
            units_at,
            weight_floats: w_at,
            unit_floats: u_at,
            chunk,
            table,
            items,
        }
    }
}
