//! Writing the files of a run: atomic replacement through per-process temporary names, a check that
//! a PNG is complete, and the write budget that simulates a full disk in tests.
//!
//! # Test hook: `STDE_TEST_WRITE_LIMIT`
//!
//! With `STDE_TEST_WRITE_LIMIT=N` in the environment, the process may write `N` bytes in all to
//! the files of a run and of `stde bench` (`config.toml`, `history.csv`, `metrics.json`, the plots,
//! the checkpoints, the lock file, the CSV and JSON of `bench`). The write that crosses the limit is
//! cut at the limit and fails with "No space left on device", as it would on a full disk, and so
//! does every later write. A checkpoint is charged whole before it is written (its bytes are
//! written by `stde-core`). The reliability tests use it where mounting a small tmpfs is not
//! allowed; it has no other use.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable of the write budget (see the module documentation).
pub const WRITE_LIMIT_VAR: &str = "STDE_TEST_WRITE_LIMIT";

/// Bytes written so far under the budget.
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// The budget, read once.
fn limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| std::env::var(WRITE_LIMIT_VAR).ok()?.trim().parse().ok())
}

/// The error a write past the budget gets.
fn disk_full() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!("No space left on device (simulated by {WRITE_LIMIT_VAR})"),
    )
}

/// Takes up to `n` bytes from the budget and returns how many were granted (all of them without a
/// budget). Zero granted for a non-empty request means the disk is full.
fn take(n: u64) -> u64 {
    let Some(limit) = limit() else {
        return n;
    };
    let mut granted = 0;
    let _ = WRITTEN.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
        granted = n.min(limit.saturating_sub(used));
        Some(used + granted)
    });
    granted
}

/// Charges `n` bytes written by someone else (a checkpoint) before they are written.
///
/// # Errors
/// "No space left on device" when the budget cannot hold them all.
pub fn reserve(n: u64) -> io::Result<()> {
    if take(n) < n {
        return Err(disk_full());
    }
    Ok(())
}

/// A writer whose bytes count against the budget.
#[derive(Debug)]
pub struct Budgeted<W>(pub W);

impl<W: Write> Write for Budgeted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let granted = take(buf.len() as u64) as usize;
        if granted == 0 {
            return Err(disk_full());
        }
        // A short write: the caller's write_all comes back for the rest and gets the error.
        self.0.write(&buf[..granted])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A temporary name next to `path`, unique to this process, with the same extension (plotters
/// picks the image format from it).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = match path.extension() {
        Some(ext) => format!(
            ".{}.{}.tmp.{}",
            name.strip_suffix(&format!(".{}", ext.to_string_lossy()))
                .unwrap_or(&name),
            std::process::id(),
            ext.to_string_lossy()
        ),
        None => format!(".{name}.{}.tmp", std::process::id()),
    };
    path.with_file_name(tmp)
}

/// Writes `bytes` to `path` atomically: to a temporary file, flushed to disk, then renamed over
/// `path`. On failure `path` is untouched and the temporary file is removed.
///
/// # Errors
/// The operating system's error (or the simulated full disk).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let written = (|| {
        let file = File::create(&temp)?;
        let mut out = Budgeted(file);
        out.write_all(bytes)?;
        out.0.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Makes the file that another library wrote at `temp` the file `path`: charges its size to the
/// budget (cutting it short when the budget runs out), flushes it to disk and renames it. On
/// failure `path` is untouched and `temp` is removed.
///
/// # Errors
/// The operating system's error (or the simulated full disk).
pub fn commit(temp: &Path, path: &Path) -> io::Result<()> {
    let done = (|| {
        let file = OpenOptions::new().write(true).open(temp)?;
        let len = file.metadata()?.len();
        let granted = take(len);
        if granted < len {
            file.set_len(granted)?;
            return Err(disk_full());
        }
        file.sync_all()?;
        std::fs::rename(temp, path)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    done
}

/// Whether `path` is a complete PNG: the signature first and the `IEND` chunk last, so a file cut
/// short by a full disk or a crash is not taken for a finished plot.
pub fn is_complete_png(path: &Path) -> bool {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    const IEND: &[u8] = b"\0\0\0\0IEND\xae\x42\x60\x82";
    std::fs::read(path).is_ok_and(|b| b.starts_with(SIGNATURE) && b.ends_with(IEND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_keep_the_extension_and_name_the_process() {
        let pid = std::process::id();
        assert_eq!(
            temp_path(Path::new("/r/loss.png")),
            PathBuf::from(format!("/r/.loss.{pid}.tmp.png"))
        );
        assert_eq!(
            temp_path(Path::new("/r/metrics.json")),
            PathBuf::from(format!("/r/.metrics.{pid}.tmp.json"))
        );
        assert_eq!(
            temp_path(Path::new("/r/LOCK")),
            PathBuf::from(format!("/r/.LOCK.{pid}.tmp"))
        );
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("stde-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A write into a missing directory fails and leaves nothing behind.
        assert!(write_atomic(&dir.join("no/such.json"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
