//! One flat parameter vector with named, shaped views (PyTorch `state_dict` names).

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One named tensor inside the flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamEntry {
    /// PyTorch-style name, e.g. `layers.0._layer.weight`.
    pub name: String,
    /// Shape, PyTorch layout (`nn.Linear.weight` is `[out, in]`).
    pub shape: Vec<usize>,
    /// Offset in the flat vector.
    pub offset: usize,
}

impl ParamEntry {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Range in the flat vector.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The layout of a flat parameter vector: named tensors, back to back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParamLayout {
    entries: Vec<ParamEntry>,
}

impl ParamLayout {
    /// Appends a tensor and returns its offset.
    pub fn push(&mut self, name: impl Into<String>, shape: &[usize]) -> usize {
        let offset = self.len();
        self.entries.push(ParamEntry {
            name: name.into(),
            shape: shape.to_vec(),
            offset,
        });
        offset
    }

    /// Total number of parameters.
    pub fn len(&self) -> usize {
        self.entries.last().map_or(0, |e| e.offset + e.len())
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tensors, in order.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// The tensor with this name.
    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The values of the tensor `name` inside `params`.
    pub fn view<'a, T>(&self, params: &'a [T], name: &str) -> Option<&'a [T]> {
        self.get(name).and_then(|e| params.get(e.range()))
    }

    /// The same layout with every name prefixed (`prefix.name`).
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|e| ParamEntry {
                    name: format!("{prefix}.{}", e.name),
                    ..e.clone()
                })
                .collect(),
        }
    }

    /// One range per tensor (the backward error norm's parameter groups).
    pub fn groups(&self) -> Vec<Range<usize>> {
        self.entries.iter().map(ParamEntry::range).collect()
    }
}
