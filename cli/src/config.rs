//! Resolving a `TrainConfig` from defaults, an optional TOML file and command-line flags, and
//! writing it back as TOML.

use std::path::Path;

use stde_core::train::TrainConfig;

use crate::args::ConfigFlags;
use crate::error::CliError;

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

/// Reads `path` and lays its keys over `base`. Keys are those of [`TrainConfig`] in kebab-case;
/// any key the file omits keeps the value of `base`.
///
/// # Errors
/// [`CliError::ConfigFile`] naming the file for an unreadable file, a TOML syntax error, an
/// unknown key or a value of the wrong type.
pub fn overlay_file(base: &TrainConfig, path: &Path) -> Result<TrainConfig, CliError> {
    let bad = |reason: String| CliError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: toml::Table = toml::from_str(&text).map_err(|e| bad(one_line(&e.to_string())))?;
    // The base is serialized so that the file is checked against the config's own field list: a
    // field added to TrainConfig is accepted here without touching the CLI.
    let mut merged = toml::Table::try_from(base).map_err(|e| bad(e.to_string()))?;
    for (key, value) in file {
        if !merged.contains_key(&key) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "unknown key `{key}`; known keys: {}",
                known.join(", ")
            )));
        }
        merged.insert(key, value);
    }
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| bad(one_line(&e.to_string())))
}

/// `base`, overlaid with `--config` (if given) and then with every flag that was given.
///
/// # Errors
/// As [`overlay_file`].
pub fn resolve(base: &TrainConfig, flags: &ConfigFlags) -> Result<TrainConfig, CliError> {
    let mut cfg = match &flags.config {
        Some(path) => overlay_file(base, path)?,
        None => base.clone(),
    };
    let f = flags;
    if let Some(v) = &f.equation {
        cfg.equation.clone_from(v);
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
    Ok(cfg)
}

/// The configuration as a TOML document that `--config` reads back.
pub fn to_toml(cfg: &TrainConfig) -> String {
    // A plain struct of numbers, strings and enums always serializes.
    let body = toml::to_string(cfg).unwrap_or_default();
    format!(
        "# The resolved configuration of this run; `stde train --config config.toml` repeats it.\n{}\n",
        body.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_config_reads_back_through_overlay() {
        let cfg = TrainConfig {
            dim: 7,
            lr: 3e-4,
            collapsed: false,
            ..TrainConfig::default()
        };
        let path = std::env::temp_dir().join(format!("stde-config-rt-{}.toml", std::process::id()));
        std::fs::write(&path, to_toml(&cfg)).unwrap();
        let back = overlay_file(&TrainConfig::default(), &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn flags_override_file_and_file_overrides_base() {
        let path =
            std::env::temp_dir().join(format!("stde-config-prec-{}.toml", std::process::id()));
        std::fs::write(&path, "dim = 9\nwidth = 32\n").unwrap();
        let flags = ConfigFlags {
            config: Some(path.clone()),
            dim: Some(11),
            ..ConfigFlags::default()
        };
        let cfg = resolve(&TrainConfig::default(), &flags).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            (cfg.dim, cfg.width, cfg.depth),
            (11, 32, TrainConfig::default().depth)
        );
    }
}
