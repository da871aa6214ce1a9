//! Output files of the bench commands: every I/O error names the path and what was being done,
//! and an output folder is checked (created, a folder, writable) before any run starts.

use std::path::{Path, PathBuf};

/// `relative` under the workspace root (found from where xtask was built), so that defaults
/// such as `target/bench/…` and `../shared/anchors/…` mean the same from any working folder;
/// `relative` itself when the root is not there (a binary moved to another machine, run from
/// a checkout).
pub fn in_workspace(relative: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if root.join("Cargo.toml").is_file() {
        root.join(relative)
    } else {
        PathBuf::from(relative)
    }
}

/// Creates `dir` (and its parents) and checks that it is a writable folder, with an error that
/// names the folder.
pub fn prepare_out_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "--out {}: exists and is not a folder",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("--out {}: cannot create the folder: {e}", dir.display()))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| format!("--out {}: the folder is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path`, with an error that names the file.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_output_folders_are_named() {
        let base = std::env::temp_dir().join(format!("xtask-files-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let file = base.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = prepare_out_dir(&file).unwrap_err();
        assert!(
            err.contains(&file.display().to_string()) && err.contains("not a folder"),
            "{err}"
        );
        let under_file = file.join("sub");
        let err = prepare_out_dir(&under_file).unwrap_err();
        assert!(err.contains(&under_file.display().to_string()), "{err}");
        let err = prepare_out_dir(Path::new("/proc/x")).unwrap_err();
        assert!(err.contains("/proc/x"), "{err}");
        let fresh = base.join("fresh/deeper");
        prepare_out_dir(&fresh).unwrap();
        assert!(fresh.is_dir());
        assert_eq!(
            std::fs::read_dir(&fresh).unwrap().count(),
            0,
            "no probe left"
        );
        let err = write(&base.join("missing/x.md"), "text").unwrap_err();
        assert!(err.contains("missing/x.md"), "{err}");
        std::fs::remove_dir_all(base).unwrap();
    }
}
