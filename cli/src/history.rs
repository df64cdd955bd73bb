//! `history.csv`: one row per logged step, appended across resumptions, and read back for plots.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use stde_core::train::Evaluation;

use crate::error::CliError;
use crate::files::{self, Budgeted};

/// The header line (without newline).
pub const HEADER: &str = "step,loss,rel_l2,rel_l1,lr,seconds";

/// One logged step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Steps completed.
    pub step: u64,
    /// Mean squared residual of that step.
    pub loss: f64,
    /// The evaluation made at that step, if any.
    pub eval: Option<Evaluation>,
    /// Learning rate the step used.
    pub lr: f64,
    /// Wall-clock seconds since the run started (across resumptions).
    pub seconds: f64,
}

/// An open `history.csv`, appending.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    out: BufWriter<Budgeted<File>>,
}

impl History {
    /// Starts a fresh history at `path`, or, when resuming from a checkpoint at `resume_step`, keeps
    /// the rows up to that step and appends after them. Rows logged after the checkpoint by the
    /// interrupted process are dropped: the resumed run recomputes those steps, and keeping both
    /// would list them twice.
    ///
    /// # Errors
    /// [`CliError::Io`] if the file cannot be read or written.
    pub fn open(path: &Path, resume_step: Option<u64>) -> Result<Self, CliError> {
        let io = || CliError::io(path);
        match resume_step {
            None => files::write_atomic(path, format!("{HEADER}\n").as_bytes()).map_err(io())?,
            Some(step) => {
                let kept = match File::open(path) {
                    Ok(f) => {
                        let mut kept = String::new();
                        for line in BufReader::new(f).lines() {
                            let line = line.map_err(io())?;
                            let row_step =
                                line.split(',').next().and_then(|s| s.parse::<u64>().ok());
                            // The header and any row at or before the checkpoint survive.
                            if row_step.is_none_or(|s| s <= step) {
                                kept.push_str(&line);
                                kept.push('\n');
                            }
                        }
                        kept
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{HEADER}\n"),
                    Err(e) => return Err(io()(e)),
                };
                // Rewritten through a temporary file so that a crash here cannot lose the rows.
                files::write_atomic(path, kept.as_bytes()).map_err(io())?;
            }
        }
        let file = OpenOptions::new().append(true).open(path).map_err(io())?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(Budgeted(file)),
        })
    }

    /// Appends a row (buffered; see [`History::flush`]).
    ///
    /// # Errors
    /// [`CliError::Io`] if the write fails.
    pub fn push(&mut self, row: &Row) -> Result<(), CliError> {
        // An error that is not known (a problem judged at a point without a reference value at
        // this dimension) is left empty, like a row without an evaluation.
        let known = |v: f64| {
            if v.is_finite() {
                v.to_string()
            } else {
                String::new()
            }
        };
        let (l2, l1) = match row.eval {
            Some(e) => (known(e.rel_l2), known(e.rel_l1)),
            None => (String::new(), String::new()),
        };
        writeln!(
            self.out,
            "{},{},{l2},{l1},{},{:.3}",
            row.step, row.loss, row.lr, row.seconds
        )
        .map_err(CliError::io(&self.path))
    }

    /// Writes buffered rows to the file.
    ///
    /// # Errors
    /// [`CliError::Io`] if the write fails.
    pub fn flush(&mut self) -> Result<(), CliError> {
        self.out.flush().map_err(CliError::io(&self.path))
    }
}

/// The `(step, loss, rel_l2)` columns of a history file, skipping unparsable lines.
///
/// # Errors
/// [`CliError::Io`] if the file cannot be read.
pub fn read_curves(path: &Path) -> Result<Vec<(u64, f64, Option<f64>)>, CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::io(path))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split(',');
            let step = cols.next()?.parse().ok()?;
            let loss = cols.next()?.parse().ok()?;
            let rel_l2 = cols.next().and_then(|s| s.parse().ok());
            Some((step, loss, rel_l2))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_rows_up_to_the_checkpoint_and_appends() {
        let path = std::env::temp_dir().join(format!("stde-history-{}.csv", std::process::id()));
        let row = |step| Row {
            step,
            loss: 0.5,
            eval: None,
            lr: 1e-3,
            seconds: step as f64,
        };
        let mut h = History::open(&path, None).unwrap();
        for s in [10, 20, 30] {
            h.push(&row(s)).unwrap();
        }
        h.flush().unwrap();
        drop(h);
        let mut h = History::open(&path, Some(20)).unwrap();
        h.push(&row(25)).unwrap();
        h.flush().unwrap();
        let steps: Vec<u64> = read_curves(&path).unwrap().iter().map(|r| r.0).collect();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(steps, [10, 20, 25]);
    }
}
