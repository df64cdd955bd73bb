//! One process per run directory: an operating-system lock (`flock`) on `DIR/.stde.lock`, taken
//! before anything in the directory is read or written and released by the kernel when the process
//! ends, however it ends, so a killed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::CliError;
use crate::files::Budgeted;

/// The lock file's name inside a run directory. It holds the owner's PID while it is locked.
pub const LOCK_FILE: &str = ".stde.lock";

/// The lock on a run directory, held until dropped; dropping removes the file, then releases the
/// lock.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    // Declared after `path` and closed last: the file goes while the lock is still held.
    _file: File,
}

/// Whether the open file `file` is still the one at `path` (its owner may have removed it between
/// our open and our lock, and a lock on a removed file protects nothing).
fn still_linked(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

/// The PID the holder wrote, waiting briefly for a holder that has just taken the lock.
fn holder_pid(path: &Path) -> Option<u32> {
    for _ in 0..20 {
        let mut text = String::new();
        if let Ok(mut f) = File::open(path) {
            let _ = f.read_to_string(&mut text);
        }
        if let Ok(pid) = text.trim().parse() {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

impl RunLock {
    /// Takes the lock of the existing directory `dir`, or fails at once if another process holds it.
    ///
    /// # Errors
    /// [`CliError::Busy`] naming the holder's PID; [`CliError::OutDir`] when the lock file cannot
    /// be created or written (which also proves the directory writable before any work).
    pub fn acquire(dir: &Path) -> Result<Self, CliError> {
        let path = dir.join(LOCK_FILE);
        let out_dir = |source| CliError::OutDir {
            path: dir.to_path_buf(),
            source,
        };
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(out_dir)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(CliError::Busy {
                        dir: dir.to_path_buf(),
                        pid: holder_pid(&path),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(out_dir(e)),
            }
            if !still_linked(&file, &path) {
                continue;
            }
            let written = file.set_len(0).and_then(|()| {
                Budgeted(&file).write_all(format!("{}\n", std::process::id()).as_bytes())
            });
            if let Err(e) = written {
                // Nothing of ours may stay behind in a directory we could not use.
                let _ = std::fs::remove_file(&path);
                return Err(out_dir(e));
            }
            return Ok(Self { path, _file: file });
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Best effort: a file left behind is harmless, the lock itself dies with the process.
        let _ = std::fs::remove_file(&self.path);
    }
}
