//! `history.csv`: one row per logged step, appended across resumptions, and read back for plots.
//!
//! Columns: `step,loss,rel_l2,rel_l1,lr`, then the direction variance (`loss_var`, and for every
//! term `var_<term>,rel_var_<term>`; see [`header`]), then `seconds` last.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use stde_core::train::Evaluation;
use stde_core::variance::DirectionVariance;

use crate::error::CliError;
use crate::files::{self, Budgeted};

/// The header of files written before the direction-variance columns existed; a resumed run
/// upgrades such a file by inserting empty variance columns into its rows.
const LEGACY_HEADER: &str = "step,loss,rel_l2,rel_l1,lr,seconds";

/// The header line (without newline) of a run whose residual has these terms:
/// `step,loss,rel_l2,rel_l1,lr,loss_var,var_<t>,rel_var_<t>,…,seconds`.
///
/// * `loss_var`: the variance of the step's loss over its random directions (estimated within the
///   step; [`stde_core::variance`]);
/// * `var_<t>`: the variance of term `t`'s estimate over the directions, averaged over the points;
/// * `rel_var_<t>`: that divided by the mean squared estimate (the squared relative standard
///   deviation).
///
/// A cell is empty where nothing was measured: a row between measurements, a term or run with no
/// random direction (its estimate is exact), `V = 1`, or `--variance-every off`.
pub fn header(terms: &[String]) -> String {
    let mut h = String::from("step,loss,rel_l2,rel_l1,lr,loss_var");
    for t in terms {
        h.push_str(&format!(",var_{t},rel_var_{t}"));
    }
    h.push_str(",seconds");
    h
}

/// One logged step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row<'a> {
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
    /// The direction variance measured at that step, if any.
    pub variance: Option<&'a DirectionVariance>,
}

/// An open `history.csv`, appending.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    out: BufWriter<Budgeted<File>>,
    /// Terms of the residual (one pair of variance columns each).
    n_terms: usize,
}

impl History {
    /// Starts a fresh history at `path`, or, when resuming from a checkpoint at `resume_step`, keeps
    /// the rows up to that step and appends after them. Rows logged after the checkpoint by the
    /// interrupted process are dropped: the resumed run recomputes those steps, and keeping both
    /// would list them twice. `terms` name the residual's terms (see [`header`]).
    ///
    /// # Errors
    /// [`CliError::Io`] if the file cannot be read or written.
    pub fn open(path: &Path, resume_step: Option<u64>, terms: &[String]) -> Result<Self, CliError> {
        let io = || CliError::io(path);
        let header = header(terms);
        // Empty cells inserted before `seconds` when upgrading a legacy file.
        let padding = ",".repeat(1 + 2 * terms.len());
        match resume_step {
            None => files::write_atomic(path, format!("{header}\n").as_bytes()).map_err(io())?,
            Some(step) => {
                let kept = match File::open(path) {
                    Ok(f) => {
                        let mut kept = String::new();
                        let mut legacy = false;
                        for (i, line) in BufReader::new(f).lines().enumerate() {
                            let line = line.map_err(io())?;
                            if i == 0 && line == LEGACY_HEADER {
                                legacy = true;
                                kept.push_str(&header);
                                kept.push('\n');
                                continue;
                            }
                            let row_step =
                                line.split(',').next().and_then(|s| s.parse::<u64>().ok());
                            // The header and any row at or before the checkpoint survive.
                            if row_step.is_none_or(|s| s <= step) {
                                match line.rsplit_once(',') {
                                    Some((head, seconds)) if legacy && row_step.is_some() => {
                                        kept.push_str(&format!("{head}{padding},{seconds}"));
                                    }
                                    _ => kept.push_str(&line),
                                }
                                kept.push('\n');
                            }
                        }
                        kept
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{header}\n"),
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
            n_terms: terms.len(),
        })
    }

    /// Appends a row (buffered; see [`History::flush`]).
    ///
    /// # Errors
    /// [`CliError::Io`] if the write fails.
    pub fn push(&mut self, row: &Row<'_>) -> Result<(), CliError> {
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
        let mut variance = String::new();
        match row.variance {
            Some(v) => {
                variance.push_str(&known(v.loss_variance));
                for k in 0..self.n_terms {
                    let var = v.term_variance.get(k).copied().flatten();
                    let rel = v.relative_term_variance(k);
                    variance.push_str(&format!(
                        ",{},{}",
                        var.map_or_else(String::new, known),
                        rel.map_or_else(String::new, known)
                    ));
                }
            }
            None => variance.push_str(&",".repeat(2 * self.n_terms)),
        }
        writeln!(
            self.out,
            "{},{},{l2},{l1},{},{variance},{:.3}",
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

/// One row of a history file that measured the direction variance.
#[derive(Clone, Debug, PartialEq)]
pub struct VarianceRow {
    /// The step.
    pub step: u64,
    /// Its loss.
    pub loss: f64,
    /// `loss_var`.
    pub loss_var: Option<f64>,
    /// `rel_var_<t>` per term, in [`VarianceCurves::terms`] order.
    pub rel_var: Vec<Option<f64>>,
}

/// The direction-variance columns of a history file, for the variance plot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VarianceCurves {
    /// Term names, in column order.
    pub terms: Vec<String>,
    /// Every row that measured something.
    pub rows: Vec<VarianceRow>,
}

/// Reads the variance columns of a history file (by their names in the header).
///
/// # Errors
/// [`CliError::Io`] if the file cannot be read.
pub fn read_variance(path: &Path) -> Result<VarianceCurves, CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::io(path))?;
    let mut lines = text.lines();
    let names: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let loss_var = names.iter().position(|n| *n == "loss_var");
    let rel: Vec<(String, usize)> = names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.strip_prefix("rel_var_").map(|t| (t.to_owned(), i)))
        .collect();
    let number = |cols: &[&str], i: usize| cols.get(i).and_then(|s| s.parse::<f64>().ok());
    let rows = lines
        .filter_map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            let step = cols.first()?.parse().ok()?;
            let loss = number(&cols, 1)?;
            let loss_var = loss_var.and_then(|i| number(&cols, i));
            let rel_var: Vec<Option<f64>> = rel.iter().map(|(_, i)| number(&cols, *i)).collect();
            (loss_var.is_some() || rel_var.iter().any(Option::is_some)).then_some(VarianceRow {
                step,
                loss,
                loss_var,
                rel_var,
            })
        })
        .collect();
    Ok(VarianceCurves {
        terms: rel.into_iter().map(|(t, _)| t).collect(),
        rows,
    })
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
            variance: None,
        };
        let terms = ["lap".to_string()];
        let mut h = History::open(&path, None, &terms).unwrap();
        for s in [10, 20, 30] {
            h.push(&row(s)).unwrap();
        }
        h.flush().unwrap();
        drop(h);
        let mut h = History::open(&path, Some(20), &terms).unwrap();
        h.push(&row(25)).unwrap();
        h.flush().unwrap();
        let steps: Vec<u64> = read_curves(&path).unwrap().iter().map(|r| r.0).collect();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(steps, [10, 20, 25]);
    }

    /// Measured values land under their names, unmeasured cells stay empty, and a file written
    /// before the variance columns existed is upgraded on resume without losing a row.
    #[test]
    fn variance_columns_are_written_read_and_added_to_old_files() {
        let path =
            std::env::temp_dir().join(format!("stde-history-var-{}.csv", std::process::id()));
        let terms = ["lap".to_string(), "ut".to_string()];
        let measured = DirectionVariance {
            step: 9,
            n_points: 1,
            estimates: vec![2.0, 1.0],
            variances: vec![0.5, f64::NAN],
            term_variance: vec![Some(0.5), None],
            term_mean_square: vec![4.0, 1.0],
            loss_variance: 0.25,
        };
        let mut h = History::open(&path, None, &terms).unwrap();
        for (step, variance) in [(10, Some(&measured)), (20, None)] {
            h.push(&Row {
                step,
                loss: 1.0,
                eval: None,
                lr: 1e-3,
                seconds: 1.0,
                variance,
            })
            .unwrap();
        }
        h.flush().unwrap();
        drop(h);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "step,loss,rel_l2,rel_l1,lr,loss_var,var_lap,rel_var_lap,var_ut,rel_var_ut,seconds",
                "10,1,,,0.001,0.25,0.5,0.125,,,1.000",
                "20,1,,,0.001,,,,,,1.000",
            ]
        );
        let curves = read_variance(&path).unwrap();
        assert_eq!(curves.terms, ["lap", "ut"]);
        assert_eq!(
            curves.rows,
            [VarianceRow {
                step: 10,
                loss: 1.0,
                loss_var: Some(0.25),
                rel_var: vec![Some(0.125), None],
            }]
        );
        std::fs::write(
            &path,
            "step,loss,rel_l2,rel_l1,lr,seconds\n10,0.5,,,0.001,1.500\n",
        )
        .unwrap();
        drop(History::open(&path, Some(10), &terms).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [lines[0], "10,0.5,,,0.001,,,,,,1.500"]
        );
    }
}
