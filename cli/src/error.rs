//! `CliError`: every way a command can fail, each with one line of text and an exit code.

use std::path::PathBuf;

use stde_core::backend::BackendError;
use stde_core::checkpoint::CheckpointError;
use stde_core::train::{ConfigError, TrainError};

use crate::text;

/// Exit code of a runtime failure (divergence, device, full disk, a failed plot).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of bad input (usage errors, invalid configuration or checkpoint, unusable paths given
/// by the user, a run directory in use by another process).
pub const EXIT_INPUT: i32 = 2;

/// A failed command. `Display` is the one line printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A configuration value is out of range or names an unknown problem.
    #[error("{}", config_message(.0))]
    Config(#[from] ConfigError),
    /// A `--config` file could not be read or is not a valid configuration.
    #[error("config file {}: {}", text::path(path), text::clip_quoted(reason))]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (the TOML parser's message, flattened to one line).
        reason: String,
    },
    /// A problem file cannot be read or is not a valid problem (the message names the file, line
    /// and column of the mistake).
    #[error("{}", text::clip_quoted(&text::one_line(message)))]
    Problem {
        /// `file:line:col: what`.
        message: String,
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
    #[error("cannot write to output directory {}: {source}", text::path(path))]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An output file of `stde bench` cannot be written.
    #[error("cannot write --{flag} file {}: {source}", text::path(path))]
    OutputFile {
        /// The flag without dashes.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the run directory's lock.
    #[error(
        "{} is in use by another stde process{}; wait for it to end or stop it",
        text::path(dir),
        pid.map_or_else(String::new, |p| format!(" (PID {p})"))
    )]
    Busy {
        /// The run directory.
        dir: PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
    },
    /// A fresh run would overwrite the checkpoint of an earlier one.
    #[error(
        "{} already holds a checkpoint; continue it with --resume {} or choose another --out",
        text::path(dir),
        text::path(dir)
    )]
    WouldOverwrite {
        /// The directory.
        dir: PathBuf,
    },
    /// `--resume` names a directory without a checkpoint.
    #[error(
        "no checkpoint to resume in {} (expected {})",
        text::path(dir),
        text::path(file)
    )]
    NoCheckpoint {
        /// The directory given.
        dir: PathBuf,
        /// The file looked for.
        file: PathBuf,
    },
    /// The checkpoint to resume is unreadable, invalid or belongs to another configuration.
    #[error("cannot resume {}: {}", text::path(dir), text::clip_quoted(&source.to_string()))]
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
    /// The loss, the test error or the parameters stopped being finite, or ran away.
    #[error(
        "training diverged at step {step}: {what} (try a smaller --lr); the last good checkpoint, \
         if any, is kept"
    )]
    Diverged {
        /// The step (counted from 1) at which it was detected.
        step: u64,
        /// What went wrong.
        what: String,
    },
    /// A signal stopped the run after it saved its state.
    #[error(
        "interrupted by {} after step {step} of {steps}; the checkpoint is saved, continue with: \
         stde train --resume {}",
        signal.name(),
        text::path(dir)
    )]
    Interrupted {
        /// The signal.
        signal: crate::signals::Signal,
        /// Steps done and saved.
        step: u64,
        /// Steps of the whole run.
        steps: u64,
        /// The run directory.
        dir: PathBuf,
    },
    /// The device failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file could not be read or written.
    #[error("{}: {source}", text::path(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("drawing {} failed: {reason}", text::path(path))]
    Plot {
        /// The image file.
        path: PathBuf,
        /// The plotting library's message.
        reason: String,
    },
    /// An existing CSV file has columns other than the ones this command writes.
    #[error(
        "{} has a different header than `stde bench` writes; use another --csv file",
        text::path(path)
    )]
    CsvHeader {
        /// The file.
        path: PathBuf,
    },
}

/// A configuration error with the user's value quoted and cut (an unknown problem name can be any
/// string of any length).
fn config_message(e: &ConfigError) -> String {
    text::clip_quoted(&text::one_line(&e.to_string()))
}

/// Whether an I/O error is about the path the user gave (missing, not a directory, not writable)
/// rather than the machine's condition (a full disk, a failing device).
fn is_path_problem(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::NotFound
            | K::AlreadyExists
            | K::NotADirectory
            | K::IsADirectory
            | K::ReadOnlyFilesystem
            | K::InvalidFilename
            | K::InvalidInput
    )
}

impl CliError {
    /// The process exit code: [`EXIT_INPUT`] for anything the user can fix by changing the
    /// command line or its files before a run starts, [`EXIT_RUNTIME`] otherwise, and 128 plus the
    /// signal's number for a run stopped by a signal.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::OutDir { source, .. } | CliError::OutputFile { source, .. }
                if !is_path_problem(source) =>
            {
                EXIT_RUNTIME
            }
            CliError::Config(_)
            | CliError::ConfigFile { .. }
            | CliError::Problem { .. }
            | CliError::Flag { .. }
            | CliError::OutDir { .. }
            | CliError::OutputFile { .. }
            | CliError::Busy { .. }
            | CliError::WouldOverwrite { .. }
            | CliError::NoCheckpoint { .. }
            | CliError::Resume { .. }
            | CliError::CsvHeader { .. } => EXIT_INPUT,
            CliError::Interrupted { signal, .. } => signal.exit_code(),
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
