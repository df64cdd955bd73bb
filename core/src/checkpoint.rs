//! Training checkpoints: the parameters, Adam moments, progress and configuration of a run in one
//! safetensors file, written atomically, and the compatibility check a resumed run must pass.
//!
//! # File layout (`format` = [`FORMAT`])
//!
//! * Tensors `params`, `adam_m`, `adam_v`: 1-D, `F32`, all of the same length.
//! * String metadata `format`, `config` ([`TrainConfig`] as JSON), `progress` ([`Progress`] as
//!   JSON), plus any caller-defined extra keys (the CLI keeps its wall-clock accounting there).
//!
//! The file is first written to a temporary name in the same directory ([`temp_path_in`], unique to
//! the writing process), flushed to disk and then renamed over [`FILE_NAME`]: a rename within one
//! file system is atomic, so a crash at any point leaves either the previous checkpoint or the new
//! one, never a torn file.
//!
//! A checkpoint is validated when it is read: the configuration must be valid, the tensors must have
//! the length of its model and hold finite values (second moments non-negative), and the progress
//! must lie within the run (no step past `steps`, no evaluation after the step).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::train::{HostState, Progress, TrainConfig};

/// The checkpoint's file name inside a run directory.
pub const FILE_NAME: &str = "checkpoint.safetensors";

/// The partially written checkpoint of this process inside `dir` (renamed over [`FILE_NAME`] once
/// complete). The name holds the process id, so two writers never share a temporary file.
pub fn temp_path_in(dir: &Path) -> PathBuf {
    dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()))
}

/// The value of the `format` metadata key; bumped whenever the layout changes incompatibly.
pub const FORMAT: &str = "stde-checkpoint-1";

/// Metadata keys the format itself uses; extra metadata may not reuse them.
const RESERVED_KEYS: [&str; 3] = ["format", "config", "progress"];

/// The tensors of a checkpoint, in file order.
const TENSORS: [&str; 3] = ["params", "adam_m", "adam_v"];

/// Configuration fields that may differ between a checkpoint and the run resuming it: they change
/// neither the trajectory of the parameters nor the meaning of the reported metrics.
const RESUMABLE_FIELDS: [&str; 1] = ["eval-every"];

/// Why a checkpoint could not be written, read or resumed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a checkpoint of this format (truncated, corrupt, or written by another tool).
    #[error("{} is not a valid stde checkpoint: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint was written by a run with a different configuration.
    #[error(
        "the checkpoint was trained with {field} = {saved}, but {field} = {requested} was requested"
    )]
    Mismatch {
        /// The configuration key (kebab-case, as in config files).
        field: String,
        /// The checkpoint's value (JSON).
        saved: String,
        /// The requested value (JSON).
        requested: String,
    },
}

/// Everything a checkpoint file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The configuration of the run that wrote it.
    pub config: TrainConfig,
    /// Parameters, Adam moments and progress.
    pub state: HostState,
    /// Caller-defined metadata beyond the format's own keys.
    pub extra: BTreeMap<String, String>,
}

/// The checkpoint path inside `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// A 1-D `F32` tensor borrowed from a host vector; its little-endian bytes are produced only while
/// the tensor is written, so a save never holds a second copy of every tensor at once.
struct F32View<'a> {
    values: &'a [f32],
    shape: [usize; 1],
}

impl<'a> F32View<'a> {
    fn new(values: &'a [f32]) -> Self {
        Self {
            values,
            shape: [values.len()],
        }
    }
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.values.len() * 4
    }
}

/// Writes `dir/checkpoint.safetensors` atomically.
///
/// # Errors
/// [`CheckpointError::Io`] if the directory is not writable or the disk fails; the previous
/// checkpoint, if any, is then left untouched.
pub fn save(dir: &Path, cfg: &TrainConfig, state: &HostState) -> Result<(), CheckpointError> {
    save_with_extra(dir, cfg, state, &BTreeMap::new())
}

/// [`save`] with extra string metadata (read back by [`load_checkpoint`]).
///
/// # Errors
/// As [`save`].
///
/// # Panics
/// If `extra` uses one of the format's own keys (`format`, `config`, `progress`).
#[track_caller]
pub fn save_with_extra(
    dir: &Path,
    cfg: &TrainConfig,
    state: &HostState,
    extra: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    for key in RESERVED_KEYS {
        assert!(
            !extra.contains_key(key),
            "checkpoint metadata key {key:?} is reserved by the format"
        );
    }
    let target = path_in(dir);
    let temp = temp_path_in(dir);
    let format_error = |reason: String| CheckpointError::Format {
        path: target.clone(),
        reason,
    };
    let mut metadata: HashMap<String, String> =
        extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert(
        "config".into(),
        serde_json::to_string(cfg).map_err(|e| format_error(format!("config: {e}")))?,
    );
    // serde_json writes a non-finite f64 as `null`, which would not read back: refuse it here
    // rather than write a checkpoint that cannot be loaded.
    metadata.insert(
        "progress".into(),
        progress_json(&state.progress).map_err(format_error)?,
    );
    let tensors = [
        (TENSORS[0], F32View::new(&state.params)),
        (TENSORS[1], F32View::new(&state.adam_m)),
        (TENSORS[2], F32View::new(&state.adam_v)),
    ];
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    let written = safetensors::serialize_to_file(tensors, Some(metadata), &temp)
        .map_err(|e| match e {
            safetensors::SafeTensorError::IoError(source) => CheckpointError::Io {
                path: temp.clone(),
                source,
            },
            other => format_error(other.to_string()),
        })
        // The bytes must be on disk before the rename makes them the checkpoint, or a power loss
        // could leave a renamed but empty file.
        .and_then(|()| {
            File::open(&temp)
                .and_then(|f| f.sync_all())
                .map_err(io(&temp))
        })
        .and_then(|()| std::fs::rename(&temp, &target).map_err(io(&target)));
    if let Err(e) = written {
        // Best effort: the temporary file is garbage either way and the old checkpoint is intact.
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    // Persist the rename itself; without a directory sync a crash may forget it. Not every
    // platform can open a directory, and the data is already safe, so failures here are ignored.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn progress_json(progress: &Progress) -> Result<String, String> {
    for eval in [progress.best, progress.last].into_iter().flatten() {
        if !(eval.rel_l2.is_finite() && eval.rel_l1.is_finite() && eval.exact_rms.is_finite()) {
            return Err(format!(
                "progress: the evaluation at step {} is not finite",
                eval.step
            ));
        }
    }
    serde_json::to_string(progress).map_err(|e| format!("progress: {e}"))
}

/// Reads `dir/checkpoint.safetensors`.
///
/// # Errors
/// [`CheckpointError::Io`] if it cannot be read (including when it does not exist),
/// [`CheckpointError::Format`] if it is not a complete checkpoint of this format.
pub fn load(dir: &Path) -> Result<(TrainConfig, HostState), CheckpointError> {
    let ckpt = load_checkpoint(dir)?;
    Ok((ckpt.config, ckpt.state))
}

/// [`load`], also returning the extra metadata.
///
/// # Errors
/// As [`load`].
pub fn load_checkpoint(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let path = path_in(dir);
    let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        source,
    })?;
    parse(&bytes)
        .and_then(|ckpt| validate(&ckpt).map(|()| ckpt))
        .map_err(|reason| CheckpointError::Format { path, reason })
}

/// Checks what a well-formed file may still get wrong: an invalid configuration, tensors that do
/// not fit its model or hold non-finite values, progress outside the run.
fn validate(ckpt: &Checkpoint) -> Result<(), String> {
    let cfg = &ckpt.config;
    cfg.validate_generic().map_err(|e| format!("config: {e}"))?;
    // A run of a problem file names the file's problem; any other run names a shipped problem.
    if cfg.problem_file.is_none() && crate::problem::builtin(&cfg.equation).is_none() {
        return Err(format!("config: unknown problem {:?}", cfg.equation));
    }
    // The model's input is `d` coordinates, plus the time for time-dependent problems (behind a
    // shared first block when `share-blocks` is set); the trainer checks the exact count against
    // its problem when it loads the state.
    let shape_for = |input: usize| crate::shared::n_params(cfg, input);
    let s = &ckpt.state;
    let n = if s.params.len() == shape_for(cfg.dim + 1) {
        shape_for(cfg.dim + 1)
    } else {
        shape_for(cfg.dim)
    };
    for (name, values) in [
        (TENSORS[0], &s.params),
        (TENSORS[1], &s.adam_m),
        (TENSORS[2], &s.adam_v),
    ] {
        if values.len() != n {
            return Err(format!(
                "tensor {name:?} has {} values, but its configuration's model has {n} parameters",
                values.len()
            ));
        }
        let bad = |v: f32| !v.is_finite() || (name == TENSORS[2] && v < 0.0);
        if let Some(i) = values.iter().position(|&v| bad(v)) {
            return Err(format!("tensor {name:?} holds {} at index {i}", values[i]));
        }
    }
    let p = &s.progress;
    if p.step > cfg.steps {
        return Err(format!(
            "progress: step {} is past the run's {} steps",
            p.step, cfg.steps
        ));
    }
    for (what, eval) in [("best", p.best), ("last", p.last)] {
        let Some(e) = eval else { continue };
        if e.step > p.step {
            return Err(format!(
                "progress: the {what} evaluation is of step {}, after step {}",
                e.step, p.step
            ));
        }
        let finite = [e.rel_l2, e.rel_l1, e.exact_rms]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0);
        if !finite {
            return Err(format!(
                "progress: the {what} evaluation holds a negative or non-finite error"
            ));
        }
    }
    Ok(())
}

fn parse(bytes: &[u8]) -> Result<Checkpoint, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let mut metadata = header
        .metadata()
        .clone()
        .ok_or("the file has no metadata")?;
    let mut take = |key: &str| {
        metadata
            .remove(key)
            .ok_or_else(|| format!("metadata key {key:?} is missing"))
    };
    let format = take("format")?;
    if format != FORMAT {
        return Err(format!("format is {format:?}, expected {FORMAT:?}"));
    }
    let config: TrainConfig =
        serde_json::from_str(&take("config")?).map_err(|e| format!("config: {e}"))?;
    let progress: Progress =
        serde_json::from_str(&take("progress")?).map_err(|e| format!("progress: {e}"))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let read = |name: &str| -> Result<Vec<f32>, String> {
        let t = tensors
            .tensor(name)
            .map_err(|_| format!("tensor {name:?} is missing"))?;
        if t.dtype() != Dtype::F32 || t.shape().len() != 1 {
            return Err(format!(
                "tensor {name:?} is {:?} of shape {:?}, expected 1-D F32",
                t.dtype(),
                t.shape()
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let params = read(TENSORS[0])?;
    let adam_m = read(TENSORS[1])?;
    let adam_v = read(TENSORS[2])?;
    if adam_m.len() != params.len() || adam_v.len() != params.len() {
        return Err(format!(
            "tensor lengths differ: params {}, adam_m {}, adam_v {}",
            params.len(),
            adam_m.len(),
            adam_v.len()
        ));
    }
    Ok(Checkpoint {
        config,
        state: HostState {
            params,
            adam_m,
            adam_v,
            progress,
        },
        extra: metadata.into_iter().collect(),
    })
}

/// Checks that a run configured as `requested` may continue a checkpoint written with `saved`.
///
/// Every field must match except `eval-every`: the learning-rate schedule depends on `steps`, and
/// `test-points` defines the reported metric, so changing either would silently produce a run that
/// is neither the saved one nor a fresh one.
///
/// # Errors
/// [`CheckpointError::Mismatch`] naming the first differing field (kebab-case).
pub fn check_compatible(
    saved: &TrainConfig,
    requested: &TrainConfig,
) -> Result<(), CheckpointError> {
    let fields = |cfg: &TrainConfig| match serde_json::to_value(cfg) {
        Ok(serde_json::Value::Object(map)) => map,
        // A struct always serializes to a JSON object.
        _ => serde_json::Map::new(),
    };
    let (saved, requested) = (fields(saved), fields(requested));
    // Optional fields are left out when unset, so a field only one side has is compared too.
    let only_requested = requested.keys().filter(|k| !saved.contains_key(*k));
    let keys: Vec<&String> = saved.keys().chain(only_requested).collect();
    for field in keys {
        if RESUMABLE_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let s = saved.get(field).unwrap_or(&serde_json::Value::Null);
        let r = requested.get(field).unwrap_or(&serde_json::Value::Null);
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "none".to_string(),
            v => v.to_string(),
        };
        if s != r {
            return Err(CheckpointError::Mismatch {
                field: field.clone(),
                saved: show(s),
                requested: show(r),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Evaluation;

    /// A fresh, empty directory under the system temp dir, unique to this test and process.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "stde-checkpoint-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config() -> TrainConfig {
        TrainConfig {
            dim: 5,
            steps: 60,
            rand_dims: 2,
            width: 8,
            depth: 3,
            ..TrainConfig::default()
        }
    }

    fn state(offset: f32) -> HostState {
        let n = config().mlp_shape().n_params();
        HostState {
            params: (0..n).map(|i| i as f32 * 0.25 + offset).collect(),
            adam_m: (0..n).map(|i| -(i as f32) * 1e-3 + offset).collect(),
            adam_v: (0..n).map(|i| (i as f32).sqrt() * 1e-7).collect(),
            progress: Progress {
                step: 20,
                best: Some(Evaluation {
                    step: 20,
                    rel_l2: 0.125,
                    rel_l1: 0.1,
                    exact_rms: 3.5,
                    point_value: None,
                }),
                last: Some(Evaluation {
                    step: 20,
                    rel_l2: 0.125,
                    rel_l1: 0.1,
                    exact_rms: 3.5,
                    point_value: None,
                }),
            },
        }
    }

    #[test]
    fn checkpoint_round_trips_exactly() {
        let dir = temp_dir("round-trip");
        let mut s = state(0.5);
        // Values whose bits must survive: subnormal, negative zero, extremes.
        s.params[0] = f32::MIN_POSITIVE / 3.0;
        s.params[1] = -0.0;
        s.params[2] = f32::MAX;
        let extra = BTreeMap::from([("wall_seconds".to_owned(), "1.5".to_owned())]);
        save_with_extra(&dir, &config(), &s, &extra).unwrap();
        let ckpt = load_checkpoint(&dir).unwrap();
        assert_eq!(ckpt.config, config());
        assert_eq!(ckpt.extra, extra);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ckpt.state.params), bits(&s.params));
        assert_eq!(ckpt.state.adam_m, s.adam_m);
        assert_eq!(ckpt.state.adam_v, s.adam_v);
        assert_eq!(ckpt.state.progress, s.progress);
        let (cfg, st) = load(&dir).unwrap();
        assert_eq!((cfg, st.progress), (config(), s.progress));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overwrite_replaces_atomically_and_failed_save_keeps_old() {
        let dir = temp_dir("atomic");
        save(&dir, &config(), &state(1.0)).unwrap();
        save(&dir, &config(), &state(2.0)).unwrap();
        assert_eq!(load(&dir).unwrap().1, state(2.0));
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        // A save that cannot create its temporary file must fail without touching the checkpoint.
        std::fs::create_dir(temp_path_in(&dir)).unwrap();
        let err = save(&dir, &config(), &state(3.0)).unwrap_err();
        assert!(matches!(err, CheckpointError::Io { .. }), "{err:?}");
        assert_eq!(load(&dir).unwrap().1, state(2.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_finite_progress_is_refused() {
        let dir = temp_dir("non-finite");
        let mut s = state(0.0);
        s.progress.last = Some(Evaluation {
            step: 20,
            rel_l2: f64::NAN,
            rel_l1: 0.1,
            exact_rms: 3.5,
            point_value: None,
        });
        let err = save(&dir, &config(), &s).unwrap_err();
        assert!(err.to_string().contains("not finite"), "{err}");
        assert!(!path_in(&dir).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn share_blocks_must_match_on_resume() {
        let plain = config();
        let shared = TrainConfig {
            share_blocks: Some(5),
            ..config()
        };
        let halves = TrainConfig {
            share_blocks: Some(1),
            ..config()
        };
        for (saved, requested, want) in [
            (&plain, &shared, "share-blocks = none, but share-blocks = 5"),
            (&shared, &plain, "share-blocks = 5, but share-blocks = none"),
            (&shared, &halves, "share-blocks = 5, but share-blocks = 1"),
        ] {
            let msg = check_compatible(saved, requested).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg}");
        }
        assert!(check_compatible(&shared, &shared).is_ok());
    }

    #[test]
    fn shared_checkpoint_round_trips_and_is_sized_by_its_model() {
        let dir = temp_dir("shared");
        let cfg = TrainConfig {
            share_blocks: Some(5),
            ..config()
        };
        let n = crate::shared::n_params(&cfg, cfg.dim);
        assert_ne!(n, config().mlp_shape().n_params());
        let shared_state = HostState {
            params: (0..n).map(|i| i as f32 * 1e-3).collect(),
            adam_m: vec![0.5; n],
            adam_v: vec![0.25; n],
            progress: Progress {
                step: 3,
                best: None,
                last: None,
            },
        };
        save(&dir, &cfg, &shared_state).unwrap();
        let ckpt = load_checkpoint(&dir).unwrap();
        assert_eq!((&ckpt.config, &ckpt.state), (&cfg, &shared_state));
        // The tensors of a shared model under an unshared configuration, and the other way round,
        // do not fit the configuration's model.
        for (c, st) in [(&config(), &shared_state), (&cfg, &state(0.0))] {
            save(&dir, c, st).unwrap();
            let err = load(&dir).unwrap_err().to_string();
            assert!(err.contains("but its configuration's model has"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mismatch_names_the_field() {
        let saved = config();
        assert!(check_compatible(&saved, &saved).is_ok());
        let relaxed = TrainConfig {
            eval_every: 7,
            ..saved.clone()
        };
        assert!(check_compatible(&saved, &relaxed).is_ok());
        let other = TrainConfig {
            rand_dims: 3,
            ..saved.clone()
        };
        let err = check_compatible(&saved, &other).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("rand-dims = 2") && msg.contains("rand-dims = 3"),
            "{msg}"
        );
        let longer = TrainConfig {
            steps: 61,
            ..saved.clone()
        };
        assert!(matches!(
            check_compatible(&saved, &longer),
            Err(CheckpointError::Mismatch { field, .. }) if field == "steps"
        ));
    }

    #[test]
    fn invalid_contents_are_refused_on_load() {
        let dir = temp_dir("invalid");
        let check = |s: &HostState, cfg: &TrainConfig, phrase: &str| {
            save(&dir, cfg, s).unwrap();
            let err = load(&dir).unwrap_err();
            assert!(matches!(err, CheckpointError::Format { .. }), "{err:?}");
            assert!(err.to_string().contains(phrase), "{err} lacks {phrase:?}");
        };
        let mut s = state(0.0);
        s.adam_m[3] = f32::NAN;
        check(&s, &config(), "tensor \"adam_m\" holds NaN at index 3");
        let mut s = state(0.0);
        s.params[0] = f32::INFINITY;
        check(&s, &config(), "tensor \"params\" holds inf at index 0");
        let mut s = state(0.0);
        s.adam_v[1] = -1.0;
        check(&s, &config(), "tensor \"adam_v\" holds -1 at index 1");
        let mut s = state(0.0);
        s.progress.step = 1_000_000_000;
        check(&s, &config(), "step 1000000000 is past the run's 60 steps");
        let mut s = state(0.0);
        s.progress.step = 10;
        check(
            &s,
            &config(),
            "the best evaluation is of step 20, after step 10",
        );
        let wider = TrainConfig {
            width: 9,
            ..config()
        };
        check(&state(0.0), &wider, "but its configuration's model has");
        let unknown = TrainConfig {
            equation: "wave".into(),
            ..config()
        };
        check(&state(0.0), &unknown, "config: unknown problem");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_file_is_a_format_error() {
        let dir = temp_dir("corrupt");
        save(&dir, &config(), &state(0.0)).unwrap();
        let path = path_in(&dir);
        let bytes = std::fs::read(&path).unwrap();
        // Truncated (a crash without the atomic rename would leave this).
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load(&dir).unwrap_err();
        assert!(matches!(err, CheckpointError::Format { .. }), "{err:?}");
        // Garbage.
        std::fs::write(&path, b"not a checkpoint at all").unwrap();
        let err = load(&dir).unwrap_err();
        assert!(matches!(err, CheckpointError::Format { .. }), "{err:?}");
        assert!(
            err.to_string().contains("not a valid stde checkpoint"),
            "{err}"
        );
        // A valid safetensors file without our metadata.
        let plain = [("params", F32View::new(&[1.0, 2.0]))];
        safetensors::serialize_to_file(plain, None, &path).unwrap();
        let err = load(&dir).unwrap_err();
        assert!(err.to_string().contains("no metadata"), "{err}");
        // Missing file.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(load(&dir), Err(CheckpointError::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
