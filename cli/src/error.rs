//! `CliError`: every way a command can fail, each with one line of text and an exit code.

use std::path::PathBuf;

use stde_core::backend::BackendError;
use stde_core::checkpoint::CheckpointError;
use stde_core::train::{ConfigError, TrainError};

/// Exit code of a runtime failure (divergence, device, file system).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of bad input (usage errors, invalid configuration, unusable paths given by the user).
pub const EXIT_INPUT: i32 = 2;

/// A failed command. `Display` is the one line printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A configuration value is out of range or names an unknown problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `--config` file could not be read or is not a valid configuration.
    #[error("config file {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (the TOML parser's message, flattened to one line).
        reason: String,
    },
    /// A flag outside the training configuration has an unusable value.
    #[error("invalid --{flag}: {reason}")]
    Flag {
        /// The flag without dashes.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// The output directory cannot be created or written.
    #[error("cannot write to output directory {}: {source}", path.display())]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A fresh run would overwrite the checkpoint of an earlier one.
    #[error(
        "{} already holds a checkpoint; continue it with --resume {} or choose another --out",
        dir.display(),
        dir.display()
    )]
    WouldOverwrite {
        /// The directory.
        dir: PathBuf,
    },
    /// `--resume` names a directory without a checkpoint.
    #[error("no checkpoint to resume in {} (expected {})", dir.display(), file.display())]
    NoCheckpoint {
        /// The directory given.
        dir: PathBuf,
        /// The file looked for.
        file: PathBuf,
    },
    /// The checkpoint to resume is unreadable or belongs to another configuration.
    #[error("cannot resume {}: {source}", dir.display())]
    Resume {
        /// The directory given.
        dir: PathBuf,
        /// Why.
        #[source]
        source: CheckpointError,
    },
    /// Writing a checkpoint failed (the previous one is intact).
    #[error("saving the checkpoint failed: {0}")]
    CheckpointSave(#[source] CheckpointError),
    /// The loss, the test error or the parameters stopped being finite.
    #[error(
        "training diverged at step {step}: {what} (try a smaller --lr); the last good checkpoint, \
         if any, is kept"
    )]
    Diverged {
        /// The step (counted from 1) at which it was detected.
        step: u64,
        /// What was not finite.
        what: String,
    },
    /// The device failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("drawing {} failed: {reason}", path.display())]
    Plot {
        /// The image file.
        path: PathBuf,
        /// The plotting library's message.
        reason: String,
    },
    /// An existing CSV file has columns other than the ones this command writes.
    #[error(
        "{} has a different header than `stde bench` writes; use another --csv file",
        path.display()
    )]
    CsvHeader {
        /// The file.
        path: PathBuf,
    },
}

impl CliError {
    /// The process exit code: [`EXIT_INPUT`] for anything the user can fix by changing the
    /// command line or its files before a run starts, [`EXIT_RUNTIME`] otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_)
            | CliError::ConfigFile { .. }
            | CliError::Flag { .. }
            | CliError::OutDir { .. }
            | CliError::WouldOverwrite { .. }
            | CliError::NoCheckpoint { .. }
            | CliError::Resume { .. }
            | CliError::CsvHeader { .. } => EXIT_INPUT,
            CliError::CheckpointSave(_)
            | CliError::Diverged { .. }
            | CliError::Backend(_)
            | CliError::Io { .. }
            | CliError::Plot { .. } => EXIT_RUNTIME,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }
}

impl From<TrainError> for CliError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Config(c) => CliError::Config(c),
            TrainError::Backend(b) => CliError::Backend(b),
            TrainError::Diverged { step, loss } => CliError::Diverged {
                step,
                what: format!("loss is {loss}"),
            },
        }
    }
}
