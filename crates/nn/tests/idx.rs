//! The IDX reader on files written here: plain and gzip, and every kind of corruption.

use nn::idx::{parse_idx, read_idx};
use nn::{FashionMnist, ImageSet};
use std::io::Write;

fn header(ndim: u8, dims: &[u32]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, ndim];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = header(3, &[n, rows, cols]);
    v.extend((0..n * rows * cols).map(|i| (i * 37 % 256) as u8));
    v
}

fn labels(n: u32) -> Vec<u8> {
    let mut v = header(1, &[n]);
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn plain_and_gzip_decode_the_same() {
    let raw = images(3, 4, 5);
    let a = parse_idx(&raw, "plain").unwrap();
    let b = parse_idx(&gzip(&raw), "gz").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.dims, vec![3, 4, 5]);
    assert_eq!(a.data.len(), 60);
    assert_eq!(a.data[7], (7 * 37 % 256) as u8);
}

#[test]
fn image_set_pairs_images_with_labels_and_scales_pixels() {
    let set = ImageSet::from_idx(
        parse_idx(&images(3, 2, 2), "i").unwrap(),
        parse_idx(&labels(3), "l").unwrap(),
    )
    .unwrap();
    assert_eq!((set.len(), set.rows, set.cols), (3, 2, 2));
    assert_eq!(set.labels, vec![0, 1, 2]);
    // Image 1 starts at pixel 4: 4 · 37 = 148.
    assert_eq!(set.image(1)[0], 148.0 / 255.0);
    assert!(set.pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let t = set.truncated(2);
    assert_eq!((t.len(), t.pixels.len()), (2, 8));
    // Mismatched counts and ranks.
    let e = ImageSet::from_idx(
        parse_idx(&images(3, 2, 2), "i").unwrap(),
        parse_idx(&labels(4), "l").unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("3 images but 4 labels"), "{e}");
    let e = ImageSet::from_idx(
        parse_idx(&labels(3), "l").unwrap(),
        parse_idx(&labels(3), "l").unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("3 dimensions"), "{e}");
}

#[test]
fn corrupt_files_are_clear_errors() {
    let err = |bytes: &[u8]| parse_idx(bytes, "test.idx").unwrap_err().to_string();
    let mut bad_magic = images(1, 2, 2);
    bad_magic[0] = 7;
    assert!(
        err(&bad_magic).contains("bad IDX magic"),
        "{}",
        err(&bad_magic)
    );
    let mut bad_type = images(1, 2, 2);
    bad_type[2] = 0x0d;
    assert!(err(&bad_type).contains("element type"));
    let full = images(2, 3, 3);
    let e = err(&full[..full.len() - 1]);
    assert!(
        e.contains("truncated file") && e.contains("test.idx"),
        "{e}"
    );
    assert!(err(&full[..9]).contains("truncated IDX header"));
    assert!(err(&[0, 0]).contains("too short"));
    let mut trailing = full.clone();
    trailing.push(1);
    assert!(err(&trailing).contains("trailing bytes"));
    assert!(err(&[0, 0, 8, 0]).contains("zero dimensions"));
    // A gzip stream cut short.
    let gz = gzip(&full);
    assert!(err(&gz[..gz.len() / 2]).contains("corrupt gzip"));
}

#[test]
fn files_and_directories() {
    let dir = std::env::temp_dir().join(format!("irdm-idx-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A missing directory says how to install the data set.
    let e = FashionMnist::load(&dir.join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
    // A directory without the files names the file it wanted.
    let e = FashionMnist::load(&dir).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    // Plain training files, gzip test files.
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(4, 28, 28)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(4)).unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte.gz"),
        gzip(&images(2, 28, 28)),
    )
    .unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels(2))).unwrap();
    let d = FashionMnist::load(&dir).unwrap();
    assert_eq!((d.train.len(), d.test.len()), (4, 2));
    assert!(read_idx(&dir.join("missing")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
