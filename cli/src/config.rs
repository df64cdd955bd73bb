//! Resolving a `TrainConfig` and the run's own settings from defaults, an optional TOML file and
//! command-line flags, and writing both back as the TOML that `--config` reads.
//!
//! # The file
//!
//! Top-level keys are the fields of [`TrainConfig`] in kebab-case; a `[run]` table holds the
//! [`RunSettings`] (checkpoint intervals, logging, divergence guards, backend). TOML integers are
//! signed 64-bit, so a seed of 2^63 or more is written as a decimal string (`seed =
//! "18446744073709551615"`); both forms are read.

use std::path::Path;

use serde::{Deserialize, Serialize};
use stde_core::train::TrainConfig;

use crate::args::{BackendArg, ConfigFlags, VarianceEvery};
use crate::error::CliError;
use crate::text;

/// The run's settings beyond the training configuration: they change how a run is recorded and
/// guarded, not its numbers, and are saved with the run so that a resumed run keeps them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RunSettings {
    /// Write a checkpoint every this many steps (and at the end); `None`: at every evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
    /// Also write a checkpoint when this many seconds have passed since the last one; 0: never.
    pub checkpoint_seconds: u64,
    /// Read the loss back (for the progress display and `history.csv`) every this many steps.
    pub log_every: u64,
    /// The run has diverged when a logged loss exceeds its best by more than this factor.
    pub max_loss_ratio: f64,
    /// The run has diverged when an evaluation's relative L2 error exceeds this.
    pub max_rel_error: f64,
    /// The device; `None`: the backend a resumed run was saved from, else `auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendArg>,
    /// How often the direction variance is measured; `None`: every 100 steps and at the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variance_every: Option<VarianceEvery>,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            checkpoint_every: None,
            checkpoint_seconds: 60,
            log_every: 10,
            max_loss_ratio: 1e8,
            max_rel_error: 1e3,
            backend: None,
            variance_every: None,
        }
    }
}

impl RunSettings {
    /// Checks every value.
    ///
    /// # Errors
    /// [`CliError::Flag`] naming the first bad setting by its flag.
    pub fn validate(&self) -> Result<(), CliError> {
        let bad = |flag, reason: &str| {
            Err(CliError::Flag {
                flag,
                reason: reason.into(),
            })
        };
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint-every", "must be at least 1");
        }
        if self.log_every == 0 {
            return bad("log-every", "must be at least 1");
        }
        if self.variance_every == Some(VarianceEvery::Every(0)) {
            return bad("variance-every", "must be at least 1 (or off)");
        }
        // NaN fails both checks; infinity switches a guard off.
        if self.max_loss_ratio.is_nan() || self.max_loss_ratio <= 1.0 {
            return bad(
                "max-loss-ratio",
                "must be a number above 1 (inf switches it off)",
            );
        }
        if self.max_rel_error.is_nan() || self.max_rel_error <= 0.0 {
            return bad(
                "max-rel-error",
                "must be a positive number (inf switches it off)",
            );
        }
        Ok(())
    }

    /// The settings as TOML (the `[run]` table of `config.toml`, and checkpoint metadata).
    pub fn to_toml(&self) -> String {
        // Numbers, an optional integer and an enum always serialize.
        toml::to_string(self).unwrap_or_default()
    }

    /// Reads [`RunSettings::to_toml`]'s output back.
    ///
    /// # Errors
    /// The parser's message when the text is not a valid settings table.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| one_line(&e.to_string()))
    }
}

/// Collapses a multi-line parser message into one line. TOML errors quote the offending source
/// line in a `N | …` gutter; the position is already in the first line, so the quote is dropped.
fn one_line(msg: &str) -> String {
    let is_gutter = |l: &str| {
        let rest = l.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        rest.starts_with('|')
    };
    let parts: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_gutter(l))
        .collect();
    match parts.split_first() {
        // "TOML parse error at line L, column C" is a heading for the message below it.
        Some((first, rest)) if first.starts_with("TOML parse error") && !rest.is_empty() => {
            format!("{first}: {}", rest.join(" "))
        }
        _ => parts.join(" "),
    }
}

/// Keys of [`TrainConfig`] that are left out of its table when unset.
const OPTIONAL_KEYS: [&str; 1] = ["share-blocks"];

/// A seed as TOML: an integer when it fits TOML's signed 64-bit integers, else a decimal string.
fn seed_to_toml(seed: u64) -> toml::Value {
    match i64::try_from(seed) {
        Ok(v) => toml::Value::Integer(v),
        Err(_) => toml::Value::String(seed.to_string()),
    }
}

/// A seed read from TOML: a non-negative integer or a decimal string of a `u64`.
fn seed_from_toml(value: &toml::Value) -> Result<u64, String> {
    let range = "a seed is an integer from 0 to 18446744073709551615 (write seeds of 2^63 or \
                 more as a string, e.g. seed = \"18446744073709551615\")";
    match value {
        toml::Value::Integer(v) => u64::try_from(*v).map_err(|_| format!("seed = {v}: {range}")),
        toml::Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("seed = {}: {range}", text::quote(s))),
        other => Err(format!("seed is a {}: {range}", other.type_str())),
    }
}

/// `base` as a TOML table with its seed set to 0 (TOML cannot hold every `u64`; the caller puts the
/// seed in).
fn config_table(base: &TrainConfig) -> Result<toml::Table, String> {
    let mut plain = base.clone();
    plain.seed = 0;
    toml::Table::try_from(&plain).map_err(|e| e.to_string())
}

/// Lays the keys of `file` over `base`, refusing keys `base` does not have.
fn overlay_table(base: toml::Table, file: toml::Table, what: &str) -> Result<toml::Table, String> {
    let mut merged = base;
    for (key, value) in file {
        if !merged.contains_key(&key) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            let table = if what.is_empty() {
                " and a [run] table"
            } else {
                ""
            };
            return Err(format!(
                "unknown {what}key {}; known keys: {}{table}",
                text::quote(&key),
                known.join(", ")
            ));
        }
        merged.insert(key, value);
    }
    Ok(merged)
}

/// Reads `path` and lays its keys over `base` and `base_run`. Keys are those of [`TrainConfig`]
/// in kebab-case plus the `[run]` table of [`RunSettings`]; any key the file omits keeps its base
/// value.
///
/// # Errors
/// [`CliError::ConfigFile`] naming the file for an unreadable file, a TOML syntax error, an
/// unknown key or a value of the wrong type.
pub fn overlay_file(
    base: &TrainConfig,
    base_run: &RunSettings,
    path: &Path,
) -> Result<(TrainConfig, RunSettings), CliError> {
    let bad = |reason: String| CliError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut file: toml::Table = toml::from_str(&text).map_err(|e| bad(one_line(&e.to_string())))?;
    let run_file = match file.remove("run") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            return Err(bad(format!(
                "`run` must be a table ([run]), not a {}",
                other.type_str()
            )))
        }
    };
    let seed = match file.remove("seed") {
        None => base.seed,
        Some(v) => seed_from_toml(&v).map_err(bad)?,
    };
    // The base is serialized so that the file is checked against the config's own field list: a
    // field added to TrainConfig is accepted here without touching the CLI.
    // Optional keys an unset base leaves out of its table are known keys too; a placeholder the
    // file does not replace is taken out again.
    let mut base_table = config_table(base).map_err(bad)?;
    let missing: Vec<&str> = OPTIONAL_KEYS
        .into_iter()
        .filter(|k| !base_table.contains_key(*k))
        .collect();
    let unset: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|k| !file.contains_key(*k))
        .collect();
    for key in missing {
        base_table.insert(key.into(), toml::Value::Integer(0));
    }
    let mut merged = overlay_table(base_table, file, "").map_err(bad)?;
    for key in unset {
        merged.remove(key);
    }
    let mut cfg: TrainConfig = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| bad(one_line(&e.to_string())))?;
    cfg.seed = seed;
    let run_base = toml::Table::try_from(RunSettings {
        // Every key is present in the base so that the file may set any of them.
        checkpoint_every: base_run.checkpoint_every.or(Some(0)),
        backend: base_run.backend.or(Some(BackendArg::Auto)),
        variance_every: base_run.variance_every.or(Some(VarianceEvery::Off)),
        ..base_run.clone()
    })
    .map_err(|e| bad(e.to_string()))?;
    let run_merged = overlay_table(run_base, run_file.clone(), "[run] ").map_err(bad)?;
    let mut run: RunSettings = toml::Value::Table(run_merged)
        .try_into()
        .map_err(|e: toml::de::Error| bad(format!("[run]: {}", one_line(&e.to_string()))))?;
    // Keys the file did not set keep the base's value, `None` included.
    if !run_file.contains_key("checkpoint-every") {
        run.checkpoint_every = base_run.checkpoint_every;
    }
    if !run_file.contains_key("backend") {
        run.backend = base_run.backend;
    }
    if !run_file.contains_key("variance-every") {
        run.variance_every = base_run.variance_every;
    }
    Ok((cfg, run))
}

/// `base`, overlaid with `--config` (if given) and then with every configuration flag that was
/// given; the run settings likewise (their own flags are applied by the subcommand).
///
/// # Errors
/// As [`overlay_file`].
pub fn resolve(
    base: &TrainConfig,
    base_run: &RunSettings,
    flags: &ConfigFlags,
) -> Result<(TrainConfig, RunSettings), CliError> {
    let (mut cfg, mut run) = match &flags.config {
        Some(path) => overlay_file(base, base_run, path)?,
        None => (base.clone(), base_run.clone()),
    };
    let f = flags;
    if let Some(v) = &f.equation {
        cfg.equation.clone_from(v);
        cfg.problem_file = None;
    }
    if let Some(v) = &f.problem {
        cfg.problem_file = Some(v.to_string_lossy().into_owned());
    }
    if let Some(v) = f.dim {
        cfg.dim = v;
    }
    if let Some(v) = f.batch {
        cfg.batch = v;
    }
    if let Some(v) = f.rand_dims {
        cfg.rand_dims = v;
    }
    if let Some(v) = f.estimator {
        cfg.estimator = v.into();
    }
    if let Some(v) = f.width {
        cfg.width = v;
    }
    if let Some(v) = f.depth {
        cfg.depth = v;
    }
    if let Some(v) = f.activation {
        cfg.activation = v.into();
    }
    if let Some(v) = f.lr {
        cfg.lr = v;
    }
    if let Some(v) = f.schedule {
        cfg.schedule = v.into();
    }
    if let Some(v) = f.seed {
        cfg.seed = v;
    }
    if let Some(v) = f.test_points {
        cfg.test_points = v;
    }
    if f.no_collapse {
        cfg.collapsed = false;
    }
    if let Some(v) = f.share_blocks {
        cfg.share_blocks = Some(v);
    }
    if let Some(v) = f.backend {
        run.backend = Some(v);
    }
    Ok((cfg, run))
}

/// The configuration and settings as a TOML document that `--config` reads back.
pub fn to_toml(cfg: &TrainConfig, run: &RunSettings) -> String {
    // A table of numbers, strings and enums always serializes.
    let body = config_table(cfg)
        .map(|mut t| {
            t.insert("seed".into(), seed_to_toml(cfg.seed));
            t
        })
        .and_then(|t| toml::to_string(&t).map_err(|e| e.to_string()))
        .unwrap_or_default();
    format!(
        "# The resolved configuration of this run; `stde train --config config.toml` repeats it.\n\
         {}\n\n[run]\n{}\n",
        body.trim_end(),
        run.to_toml().trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("stde-config-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn written_config_reads_back_through_overlay() {
        let cfg = TrainConfig {
            dim: 7,
            lr: 3e-4,
            collapsed: false,
            ..TrainConfig::default()
        };
        let run = RunSettings {
            checkpoint_every: Some(25),
            max_loss_ratio: f64::INFINITY,
            backend: Some(BackendArg::Cpu),
            variance_every: Some(VarianceEvery::Every(25)),
            ..RunSettings::default()
        };
        let path = temp_file("rt", &to_toml(&cfg, &run));
        let back = overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, (cfg, run));
    }

    #[test]
    fn share_blocks_reads_from_a_file_and_is_optional() {
        let cfg = TrainConfig {
            dim: 50,
            share_blocks: Some(5),
            ..TrainConfig::default()
        };
        let path = temp_file("share", &to_toml(&cfg, &RunSettings::default()));
        let back = overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.0, cfg);
        let path = temp_file("share-unset", "dim = 50\n");
        let back = overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.0.share_blocks, None);
        let path = temp_file("share-typo", "share-block = 5\n");
        let e = overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(e.to_string().contains("share-blocks"), "{e}");
    }

    #[test]
    fn variance_every_reads_a_count_or_off() {
        for (text, want) in [
            (
                "[run]\nvariance-every = 50\n",
                Some(VarianceEvery::Every(50)),
            ),
            (
                "[run]\nvariance-every = \"off\"\n",
                Some(VarianceEvery::Off),
            ),
            ("[run]\nlog-every = 5\n", None),
        ] {
            let path = temp_file("variance", text);
            let (_, run) =
                overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(run.variance_every, want, "{text}");
            let back = RunSettings::from_toml(&run.to_toml()).unwrap();
            assert_eq!(back, run);
        }
    }

    #[test]
    fn seeds_of_every_size_read_back() {
        for seed in [0, 7, (1 << 63) - 1, 1 << 63, u64::MAX] {
            let cfg = TrainConfig {
                seed,
                ..TrainConfig::default()
            };
            let text = to_toml(&cfg, &RunSettings::default());
            let path = temp_file(&format!("seed-{seed}"), &text);
            let (back, _) =
                overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(back.seed, seed, "{text}");
        }
        let path = temp_file("seed-negative", "seed = -1\n");
        let e = overlay_file(&TrainConfig::default(), &RunSettings::default(), &path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(e.to_string().contains("seed = -1"), "{e}");
    }

    #[test]
    fn flags_override_file_and_file_overrides_base() {
        let path = temp_file("prec", "dim = 9\nwidth = 32\n[run]\nlog-every = 3\n");
        let flags = ConfigFlags {
            config: Some(path.clone()),
            dim: Some(11),
            ..ConfigFlags::default()
        };
        let base_run = RunSettings {
            checkpoint_every: Some(4),
            ..RunSettings::default()
        };
        let (cfg, run) = resolve(&TrainConfig::default(), &base_run, &flags).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            (cfg.dim, cfg.width, cfg.depth),
            (11, 32, TrainConfig::default().depth)
        );
        assert_eq!((run.log_every, run.checkpoint_every), (3, Some(4)));
    }
}
