//! Tabular data for density estimation: CSV and NumPy `.npy` readers, the split and
//! standardization of the MAF/FFJORD preprocessing, and a 43-dimensional stand-in for miniboone
//! derived from Fashion-MNIST by PCA.
//!
//! * **Split** (MAF's `datasets` code, which FFJORD reuses): of `N` rows in file order, the last
//!   `⌊N/10⌋` are the test set; of the rest, the last tenth is the validation set and the others
//!   the training set.
//! * **Standardization**: every column `x_j ← (x_j − μ_j)/σ_j` with the mean and the population
//!   standard deviation of the training and validation rows together (a constant column keeps
//!   `σ_j = 1`).
//! * **PCA stand-in**: images `X` (`N × 784`, pixels in `[0, 1]`), centred, thin SVD
//!   `X − 1μᵀ = U Σ Vᵀ` (faer), and the rows projected on the first `k` right singular vectors,
//!   `Y = (X − 1μᵀ) V_k`: a real `k`-dimensional data set with the shape of miniboone (`k = 43`)
//!   that needs no download. It is a stand-in, not miniboone.

use crate::error::{NnError, Result};
use std::path::Path;

/// A table of `rows × cols` numbers, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows × cols` values.
    pub data: Vec<f64>,
}

impl Table {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    fn check(self, source: &str) -> Result<Self> {
        if self.rows == 0 || self.cols == 0 {
            return Err(bad(source, "no data"));
        }
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(bad(
                source,
                &format!(
                    "non-finite value at row {}, column {}",
                    i / self.cols + 1,
                    i % self.cols + 1
                ),
            ));
        }
        Ok(self)
    }
}

fn bad(source: &str, reason: &str) -> NnError {
    NnError::BadFile {
        path: source.into(),
        reason: reason.into(),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| NnError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a CSV file of numbers (comma-separated; blank lines skipped; a first line that is not
/// numeric is a header and skipped). Every row must have the same number of columns, and
/// `expected_cols` that number when given.
pub fn read_csv(path: impl AsRef<Path>, expected_cols: Option<usize>) -> Result<Table> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_csv(&bytes, &path.display().to_string(), expected_cols)
}

/// [`read_csv`] on bytes (`source` names them in errors).
pub fn parse_csv(bytes: &[u8], source: &str, expected_cols: Option<usize>) -> Result<Table> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| bad(source, &format!("not UTF-8 text: {e}")))?;
    let mut cols = expected_cols;
    let mut data = Vec::new();
    let mut rows = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: std::result::Result<Vec<f64>, _> =
            fields.iter().map(|f| f.parse::<f64>()).collect();
        let values = match parsed {
            Ok(v) => v,
            Err(_) if rows == 0 && data.is_empty() && n == 0 => continue, // a header
            Err(e) => {
                return Err(bad(source, &format!("line {}: not a number ({e})", n + 1)));
            }
        };
        match cols {
            Some(c) if c != values.len() => {
                return Err(bad(
                    source,
                    &format!("line {}: {} columns, expected {c}", n + 1, values.len()),
                ));
            }
            _ => cols = Some(values.len()),
        }
        data.extend(values);
        rows += 1;
    }
    Table {
        rows,
        cols: cols.unwrap_or(0),
        data,
    }
    .check(source)
}

/// Reads a NumPy `.npy` file holding a 2-D array of `f4` or `f8` (little-endian, C order), the
/// format the MAF repository ships miniboone in.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_npy(&bytes, &path.display().to_string())
}

/// [`read_npy`] on bytes (`source` names them in errors).
pub fn parse_npy(bytes: &[u8], source: &str) -> Result<Table> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(source, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(source, &format!("unsupported .npy version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(source, "header runs past the end of the file"))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| bad(source, "header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| bad(source, "header without 'descr'"))?;
    let width = if descr.starts_with("'<f8'") {
        8
    } else if descr.starts_with("'<f4'") {
        4
    } else {
        return Err(bad(
            source,
            &format!(
                "dtype {}: expected '<f4' or '<f8'",
                descr.split(',').next().unwrap_or("")
            ),
        ));
    };
    if field("fortran_order").is_none_or(|v| !v.starts_with("False")) {
        return Err(bad(source, "only C-order arrays (fortran_order False)"));
    }
    let shape = field("shape").ok_or_else(|| bad(source, "header without 'shape'"))?;
    let inside = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(source, "malformed shape"))?;
    let dims: std::result::Result<Vec<usize>, _> = inside
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect();
    let dims = dims.map_err(|_| bad(source, &format!("malformed shape ({inside})")))?;
    let [rows, cols] = dims[..] else {
        return Err(bad(
            source,
            &format!("a {}-D array; expected 2-D (rows, columns)", dims.len()),
        ));
    };
    let count = rows
        .checked_mul(cols)
        .filter(|&c| c.checked_mul(width).is_some_and(|b| b == bytes.len() - end))
        .ok_or_else(|| {
            bad(
                source,
                &format!("shape ({rows}, {cols}) of {width}-byte floats does not match the {} data bytes", bytes.len() - end),
            )
        })?;
    let body = &bytes[end..];
    let data: Vec<f64> = if width == 8 {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
            .collect()
    };
    debug_assert_eq!(data.len(), count);
    Table { rows, cols, data }.check(source)
}

/// Training, validation and test rows, standardized.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training rows.
    pub train: Table,
    /// Validation rows.
    pub validation: Table,
    /// Test rows.
    pub test: Table,
    /// Column means used.
    pub mean: Vec<f64>,
    /// Column standard deviations used.
    pub std: Vec<f64>,
}

/// The MAF/FFJORD split and standardization (module docs). Needs at least 10 rows, so that
/// each part gets at least one.
pub fn split_and_standardize(table: &Table) -> Result<Splits> {
    let n = table.rows;
    if n < 10 {
        return Err(NnError::Invalid {
            name: "tabular data".into(),
            reason: format!("{n} rows; the split needs at least 10"),
        });
    }
    let c = table.cols;
    let n_test = n / 10;
    let rest = n - n_test;
    let n_val = (rest / 10).max(1);
    let n_train = rest - n_val;
    let mut mean = vec![0.0; c];
    for i in 0..rest {
        for (m, v) in mean.iter_mut().zip(table.row(i)) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rest as f64);
    let mut std = vec![0.0; c];
    for i in 0..rest {
        for ((s, v), m) in std.iter_mut().zip(table.row(i)).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    for s in &mut std {
        *s = (*s / rest as f64).sqrt();
        if *s == 0.0 {
            *s = 1.0;
        }
    }
    let part = |from: usize, to: usize| Table {
        rows: to - from,
        cols: c,
        data: (from..to)
            .flat_map(|i| {
                table
                    .row(i)
                    .iter()
                    .zip(&mean)
                    .zip(&std)
                    .map(|((v, m), s)| (v - m) / s)
                    .collect::<Vec<_>>()
            })
            .collect(),
    };
    Ok(Splits {
        train: part(0, n_train),
        validation: part(n_train, rest),
        test: part(rest, n),
        mean,
        std,
    })
}

/// Rows of `images` (`n × pixels`, row-major) projected on their first `k` principal
/// components (module docs), by faer's thin SVD of the centred data.
pub fn pca(images: &[f32], n: usize, pixels: usize, k: usize) -> Result<Table> {
    if n == 0 || pixels == 0 || images.len() != n * pixels || k == 0 || k > pixels.min(n) {
        return Err(NnError::Invalid {
            name: "PCA".into(),
            reason: format!(
                "{} values for {n} × {pixels} and {k} components (1 ≤ k ≤ min(n, pixels))",
                images.len()
            ),
        });
    }
    let mut mean = vec![0.0f64; pixels];
    for row in images.chunks_exact(pixels) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred = faer::Mat::<f64>::from_fn(n, pixels, |i, j| {
        f64::from(images[i * pixels + j]) - mean[j]
    });
    let svd = centred.thin_svd().map_err(|e| NnError::Invalid {
        name: "PCA".into(),
        reason: format!("the SVD did not converge: {e:?}"),
    })?;
    let v = svd.V();
    let mut data = vec![0.0; n * k];
    for i in 0..n {
        for c in 0..k {
            let mut s = 0.0;
            for j in 0..pixels {
                s += centred[(i, j)] * v[(j, c)];
            }
            data[i * k + c] = s;
        }
    }
    Table {
        rows: n,
        cols: k,
        data,
    }
    .check("PCA projection")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let mut h = header.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h);
        out.extend(body);
        out
    }

    #[test]
    fn csv_and_npy_read_the_same_table() {
        let csv = parse_csv(b"a,b,c\n1,2,3\n\n4.5,-5,6e1\n", "t.csv", Some(3)).unwrap();
        assert_eq!((csv.rows, csv.cols), (2, 3));
        assert_eq!(csv.data, [1.0, 2.0, 3.0, 4.5, -5.0, 60.0]);
        let body: Vec<u8> = csv.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse_npy(&npy("<f8", "(2, 3)", &body), "t.npy").unwrap(),
            csv
        );
        let body32: Vec<u8> = csv
            .data
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy("<f4", "(2, 3)", &body32), "t.npy").unwrap(),
            csv
        );
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let cases: Vec<(std::result::Result<Table, NnError>, &str)> = vec![
            (
                parse_csv(b"1,2\n3\n", "f.csv", None),
                "line 2: 1 columns, expected 2",
            ),
            (
                parse_csv(b"1,2\n3,4\n", "f.csv", Some(3)),
                "line 1: 2 columns, expected 3",
            ),
            (
                parse_csv(b"1,nan\n", "f.csv", None),
                "non-finite value at row 1, column 2",
            ),
            (
                parse_csv(b"1,2\n3,x\n", "f.csv", None),
                "line 2: not a number",
            ),
            (parse_csv(b"", "f.csv", None), "no data"),
            (parse_csv(b"h1,h2\n", "f.csv", None), "no data"),
            (parse_npy(b"", "f.npy"), "not a .npy file"),
            (
                parse_npy(&npy("<i8", "(1, 1)", &[0; 8]), "f.npy"),
                "expected '<f4' or '<f8'",
            ),
            (
                parse_npy(&npy("<f8", "(2, 3)", &[0; 8]), "f.npy"),
                "does not match",
            ),
            (
                parse_npy(&npy("<f8", "(3,)", &[0; 24]), "f.npy"),
                "a 1-D array",
            ),
            (
                parse_npy(&npy("<f8", "(1, 1)", &f64::NAN.to_le_bytes()), "f.npy"),
                "non-finite",
            ),
        ];
        for (result, needle) in cases {
            let e = result.expect_err(needle).to_string();
            assert!(
                e.contains(needle) && (e.contains("f.csv") || e.contains("f.npy")),
                "{e}"
            );
        }
        let e = read_csv("/nonexistent/data.csv", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/data.csv"), "{e}");
    }

    #[test]
    fn the_split_and_standardization_follow_maf() {
        let rows = 105;
        let table = Table {
            rows,
            cols: 2,
            data: (0..rows).flat_map(|i| [i as f64, 7.0]).collect(),
        };
        let s = split_and_standardize(&table).unwrap();
        assert_eq!((s.train.rows, s.validation.rows, s.test.rows), (86, 9, 10));
        // Mean and population std of the first 95 rows (0 … 94): 47 and sqrt((95² − 1)/12).
        assert!((s.mean[0] - 47.0).abs() < 1e-12);
        assert!((s.std[0] - ((95.0f64 * 95.0 - 1.0) / 12.0).sqrt()).abs() < 1e-9);
        assert_eq!(
            (s.mean[1], s.std[1]),
            (7.0, 1.0),
            "a constant column keeps σ = 1"
        );
        assert_eq!(s.test.row(0)[0], (95.0 - 47.0) / s.std[0]);
        assert!(
            split_and_standardize(&Table {
                rows: 9,
                cols: 1,
                data: vec![0.0; 9]
            })
            .is_err()
        );
    }

    #[test]
    fn pca_recovers_a_low_rank_structure() {
        // Points on a 2-D plane in 6 dimensions plus tiny noise: two components carry it all.
        let n = 200;
        let mut rng = crate::Rng::new(3);
        let mut x = Vec::new();
        for _ in 0..n {
            let (a, b) = (rng.normal(), 0.5 * rng.normal());
            let row = [a, b, a + b, a - b, 2.0 * a, -b];
            x.extend(row.iter().map(|v| (v + 1e-4 * rng.normal()) as f32));
        }
        let y = pca(&x, n, 6, 3).unwrap();
        let var = |c: usize| (0..n).map(|i| y.row(i)[c].powi(2)).sum::<f64>() / n as f64;
        assert!(
            var(0) > var(1) && var(1) > 1e3 * var(2),
            "{} {} {}",
            var(0),
            var(1),
            var(2)
        );
        assert!(pca(&x, n, 6, 7).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Random and mutated bytes: a table or a typed error, never a panic.
        #[test]
        fn loaders_survive_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                        flip in 0usize..120, value in any::<u8>()) {
            let _ = parse_csv(&bytes, "fuzz.csv", None);
            let _ = parse_npy(&bytes, "fuzz.npy");
            let mut good = npy("<f8", "(2, 1)", &[0; 16]);
            let at = flip % good.len();
            good[at] = value;
            let _ = parse_npy(&good, "fuzz.npy");
            let mut text = b"1,2\n3,4\n".to_vec();
            let at = flip % text.len();
            text[at] = value;
            let _ = parse_csv(&text, "fuzz.csv", Some(2));
        }
    }
}
