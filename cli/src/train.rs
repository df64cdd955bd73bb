//! `stde train`: resolving the run (configuration, output directory, resumption), the training loop
//! with logging, evaluation and checkpoints, and the files and summary a run leaves behind.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use stde_core::backend::GenericStep;
use stde_core::checkpoint::{self, Checkpoint, CheckpointError};
use stde_core::problem::ProblemSpec;
use stde_core::train::{ConfigError, Evaluation, HostState, TrainConfig, Trainer};
use stde_core::variance::{DirectionVariance, VarianceSupport};

use crate::args::{BackendArg, TrainArgs, VarianceEvery};
use crate::backends::{with_backend, Chosen};
use crate::config::{self, RunSettings};
use crate::error::CliError;
use crate::files;
use crate::history::{self, History, Row};
use crate::lock::RunLock;
use crate::plot;
use crate::signals::{self, Signal};
use crate::system;
use crate::text;
use crate::{note, say};

/// Checkpoint metadata keys of the CLI's own accounting, carried across resumptions.
const WALL_SECONDS: &str = "stde-cli.wall-seconds";
const TRAIN_SECONDS: &str = "stde-cli.train-seconds";
/// Seconds spent measuring the direction variance (not counted in the training seconds).
const VARIANCE_SECONDS: &str = "stde-cli.variance-seconds";
const PEAK_MEMORY: &str = "stde-cli.peak-memory-bytes";
const BACKEND: &str = "stde-cli.backend";
/// The run's [`RunSettings`] as TOML, so a resumed run keeps its intervals and guards.
const RUN_SETTINGS: &str = "stde-cli.run";
/// The latest loss read and the best logged loss (the divergence guard's reference).
const LAST_LOSS: &str = "stde-cli.last-loss";
const BEST_LOSS: &str = "stde-cli.best-loss";

/// Values of the points plotted in `profile.png` kept in memory at once (f64), which bounds the
/// number of points at very large `d`.
const PROFILE_VALUES: usize = 1 << 24;

/// The largest count the random generator can address: points and coordinates are numbered by
/// 32-bit counters, so larger sets would repeat draws.
const MAX_COUNT: usize = u32::MAX as usize - 1;

/// The deepest network accepted (each layer is a few buffers and kernel launches).
const MAX_DEPTH: usize = 1000;

/// The defaults of a fresh run: [`TrainConfig::default`] with the CLI's documented `d = 1000`.
pub fn cli_defaults() -> TrainConfig {
    TrainConfig {
        dim: 1000,
        ..TrainConfig::default()
    }
}

/// Refuses sizes the core accepts but no machine could run as intended.
///
/// # Errors
/// [`CliError::Config`] naming the field.
pub fn check_limits(cfg: &TrainConfig) -> Result<(), CliError> {
    for (field, value) in [
        ("dim", cfg.dim),
        ("batch", cfg.batch),
        ("rand-dims", cfg.rand_dims),
        ("test-points", cfg.test_points),
    ] {
        if value > MAX_COUNT {
            return Err(ConfigError::Invalid {
                field,
                reason: format!(
                    "at most {MAX_COUNT}: the random generator numbers its draws with 32-bit \
                     counters; got {value}"
                ),
            }
            .into());
        }
    }
    if cfg.depth > MAX_DEPTH {
        return Err(ConfigError::Invalid {
            field: "depth",
            reason: format!("at most {MAX_DEPTH} layers; got {}", cfg.depth),
        }
        .into());
    }
    Ok(())
}

/// Everything decided before the first step.
#[derive(Debug)]
struct Plan {
    cfg: TrainConfig,
    problem: ProblemSpec,

    out: PathBuf,
    backend: Chosen,
    resume: Option<Checkpoint>,
    settings: RunSettings,
    stop_after: Option<u64>,
    quiet: bool,
    /// Held for the whole run; dropping it releases the directory.
    _lock: RunLock,
}

/// Runs `stde train`.
///
/// # Errors
/// Any [`CliError`]; nothing is written before the inputs are checked, and a checkpoint is only
/// ever replaced by a newer finite one.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    signals::install();
    let plan = plan(args)?;
    if let Some(ckpt) = &plan.resume {
        let done = ckpt.state.progress.step;
        if done >= plan.cfg.steps {
            let plots = plot_names(measures_variance(&plan.cfg, &plan.problem, &plan.settings));
            if outputs_complete(&plan.out, plan.cfg.steps, &plots) {
                say!(
                    "the run in {} already finished ({done} of {} steps); nothing to do",
                    text::path(&plan.out),
                    plan.cfg.steps
                );
                return Ok(());
            }
            note!(
                "the run in {} finished training but its outputs are incomplete; writing them",
                text::path(&plan.out)
            );
        }
    }
    with_backend!(plan.backend, b => execute(b, plan))
}

/// The run settings saved in a checkpoint (defaults for checkpoints written before they were).
fn saved_settings(ckpt: &Checkpoint, dir: &Path) -> Result<RunSettings, CliError> {
    let invalid = |reason: String| CliError::Resume {
        dir: dir.to_path_buf(),
        source: CheckpointError::Format {
            path: checkpoint::path_in(dir),
            reason,
        },
    };
    let settings = match ckpt.extra.get(RUN_SETTINGS) {
        None => RunSettings::default(),
        Some(text) => RunSettings::from_toml(text)
            .map_err(|e| invalid(format!("metadata {RUN_SETTINGS:?}: {e}")))?,
    };
    settings
        .validate()
        .map_err(|e| invalid(format!("metadata {RUN_SETTINGS:?}: {e}")))?;
    for key in [
        LAST_LOSS,
        BEST_LOSS,
        WALL_SECONDS,
        TRAIN_SECONDS,
        VARIANCE_SECONDS,
    ] {
        if let Some(v) = ckpt.extra.get(key) {
            if !v.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0) {
                return Err(invalid(format!(
                    "metadata {key:?} is {}, not a non-negative number",
                    text::quote(v)
                )));
            }
        }
    }
    if let Some(name) = ckpt.extra.get(BACKEND) {
        if !Chosen::ALL.iter().any(|b| b.name() == name) {
            return Err(invalid(format!(
                "metadata {BACKEND:?} names no backend: {}",
                text::quote(name)
            )));
        }
    }
    Ok(settings)
}

fn plan(args: &TrainArgs) -> Result<Plan, CliError> {
    let (base, base_run, resume, lock) = match &args.resume {
        Some(dir) => {
            let file = checkpoint::path_in(dir);
            let missing = || CliError::NoCheckpoint {
                dir: dir.clone(),
                file: file.clone(),
            };
            if !dir.is_dir() {
                return Err(missing());
            }
            // Locked before the checkpoint is read: a running process may be about to replace it.
            let lock = RunLock::acquire(dir)?;
            if !file.is_file() {
                return Err(missing());
            }
            let ckpt = checkpoint::load_checkpoint(dir).map_err(|source| CliError::Resume {
                dir: dir.clone(),
                source,
            })?;
            let saved = saved_settings(&ckpt, dir)?;
            // Without a config file the saved configuration is the base, so `--resume DIR` alone
            // continues exactly the saved run; flags may still restate (or relax) values.
            let (base, base_run) = if args.cfg.config.is_some() {
                (cli_defaults(), RunSettings::default())
            } else {
                (ckpt.config.clone(), saved)
            };
            (base, base_run, Some(ckpt), Some(lock))
        }
        None => (cli_defaults(), RunSettings::default(), None, None),
    };
    let (mut cfg, mut settings) = config::resolve(&base, &base_run, &args.cfg)?;
    if let Some(steps) = args.steps {
        cfg.steps = steps;
    }
    if let Some(every) = args.eval_every {
        cfg.eval_every = every;
    }
    if let Some(v) = args.checkpoint_every {
        settings.checkpoint_every = Some(v);
    }
    if let Some(v) = args.checkpoint_seconds {
        settings.checkpoint_seconds = v;
    }
    if let Some(v) = args.log_every {
        settings.log_every = v;
    }
    if let Some(v) = args.max_loss_ratio {
        settings.max_loss_ratio = v;
    }
    if let Some(v) = args.max_rel_error {
        settings.max_rel_error = v;
    }
    if let Some(v) = args.variance_every {
        settings.variance_every = Some(v);
    }
    settings.validate()?;
    if args.stop_after == Some(0) {
        return Err(CliError::Flag {
            flag: "stop-after",
            reason: "must be at least 1".into(),
        });
    }
    if let (Some(ckpt), Some(dir)) = (&resume, &args.resume) {
        checkpoint::check_compatible(&ckpt.config, &cfg).map_err(|source| CliError::Resume {
            dir: dir.clone(),
            source,
        })?;
    }
    let (problem, problem_text) = crate::problem::load(&cfg, args.resume.as_deref())?;
    if resume.is_none() {
        crate::problem::apply_defaults(&mut cfg, &problem, &args.cfg);
    }
    check_limits(&cfg)?;
    stde_core::trainer::check_config(&cfg, &problem)?;
    let out = match (&args.resume, &args.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => PathBuf::from("runs").join(format!(
            "{}-d{}-{}-s{}",
            cfg.equation,
            cfg.dim,
            cfg.estimator.name(),
            cfg.seed
        )),
    };
    let lock = match lock {
        Some(lock) => lock,
        None => prepare_out_dir(&out)?,
    };
    if let (Some(text), None) = (&problem_text, &resume) {
        // A resumed run reads this copy, so it solves the same problem even if the file changes.
        let copy = out.join(crate::problem::RUN_COPY);
        files::write_atomic(&copy, text.as_bytes()).map_err(CliError::io(copy))?;
    }
    // A resumed run stays on the backend it was saved from unless told otherwise: a backend of
    // other precision would continue with other numbers.
    let saved_backend = resume
        .as_ref()
        .and_then(|c| c.extra.get(BACKEND))
        .and_then(|name| Chosen::ALL.into_iter().find(|b| b.name() == name));
    let backend = match (settings.backend, saved_backend) {
        (Some(arg), _) => arg.resolve(),
        (None, Some(saved)) => saved,
        (None, None) => BackendArg::Auto.resolve(),
    };
    settings.backend = Some(backend.into());
    Ok(Plan {
        cfg,
        problem,
        out,
        backend,
        resume,
        settings,
        stop_after: args.stop_after,
        quiet: args.quiet,
        _lock: lock,
    })
}

/// Creates `out`, takes its lock (which proves it writable) before any training time is spent,
/// and refuses to start a fresh run over another run's checkpoint.
fn prepare_out_dir(out: &Path) -> Result<RunLock, CliError> {
    std::fs::create_dir_all(out).map_err(|source| CliError::OutDir {
        path: out.to_path_buf(),
        source,
    })?;
    let lock = RunLock::acquire(out)?;
    if checkpoint::path_in(out).exists() {
        return Err(CliError::WouldOverwrite {
            dir: out.to_path_buf(),
        });
    }
    Ok(lock)
}

/// Whether a run measures its direction variance: its plan draws random directions (in groups of
/// at least two) and `--variance-every` is not `off`.
fn measures_variance(cfg: &TrainConfig, problem: &ProblemSpec, settings: &RunSettings) -> bool {
    settings.variance_every != Some(VarianceEvery::Off)
        && stde_core::trainer::check_config(cfg, problem).is_ok_and(|(instance, plan)| {
            stde_core::trainer::variance_support(cfg, &instance, &plan).is_measured()
        })
}

/// The plots a completed run leaves.
fn plot_names(variance: bool) -> Vec<&'static str> {
    let mut names = vec!["loss.png", "profile.png"];
    if variance {
        names.push("variance.png");
    }
    names
}

/// Whether a finished run left every output: `metrics.json` saying completed for all its steps,
/// and every plot complete.
fn outputs_complete(out: &Path, steps: u64, plots: &[&str]) -> bool {
    let metrics = std::fs::read_to_string(out.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let completed = metrics
        .is_some_and(|m| m["status"] == "completed" && m["steps_done"].as_u64() == Some(steps));
    completed
        && out.join("config.toml").is_file()
        && plots
            .iter()
            .all(|name| files::is_complete_png(&out.join(name)))
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Completed,
    Stopped,
    Interrupted(Signal),
    Diverged,
    Failed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Stopped => "stopped",
            Status::Interrupted(_) => "interrupted",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}

/// Time and memory accounting, continued across resumptions through checkpoint metadata.
#[derive(Clone, Copy, Debug)]
struct Clock {
    started: Instant,
    prior_wall: f64,
    prior_train: f64,
    train: Duration,
    prior_variance: f64,
    /// Time spent measuring the direction variance, apart from `train`.
    variance: Duration,
    prior_peak: Option<u64>,
}

impl Clock {
    fn new(extra: Option<&BTreeMap<String, String>>) -> Self {
        let get = |key: &str| extra.and_then(|m| m.get(key));
        Self {
            started: Instant::now(),
            prior_wall: get(WALL_SECONDS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            prior_train: get(TRAIN_SECONDS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            train: Duration::ZERO,
            prior_variance: get(VARIANCE_SECONDS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            variance: Duration::ZERO,
            prior_peak: get(PEAK_MEMORY).and_then(|v| v.parse().ok()),
        }
    }

    fn wall_seconds(&self) -> f64 {
        self.prior_wall + self.started.elapsed().as_secs_f64()
    }

    fn train_seconds(&self) -> f64 {
        self.prior_train + self.train.as_secs_f64()
    }

    fn variance_seconds(&self) -> f64 {
        self.prior_variance + self.variance.as_secs_f64()
    }

    fn peak_memory(&self) -> Option<u64> {
        match (self.prior_peak, system::peak_memory_bytes()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn extra(&self, backend: Chosen) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(BACKEND.into(), backend.name().into());
        m.insert(WALL_SECONDS.into(), self.wall_seconds().to_string());
        m.insert(TRAIN_SECONDS.into(), self.train_seconds().to_string());
        m.insert(VARIANCE_SECONDS.into(), self.variance_seconds().to_string());
        if let Some(p) = self.peak_memory() {
            m.insert(PEAK_MEMORY.into(), p.to_string());
        }
        m
    }
}

/// Progress display: a bar on a terminal, else one line per evaluation on stderr.
struct Display {
    bar: Option<ProgressBar>,
}

impl Display {
    fn new(quiet: bool, steps: u64, start: u64) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(start);
            bar
        });
        Self { bar }
    }

    fn step(&self, step: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        }
    }

    /// The bar's message; `noise` is [`Variance::brief`] of the latest measurement.
    fn status(&self, loss: f64, steps_per_s: f64, last: Option<Evaluation>, noise: &str) {
        if let Some(bar) = &self.bar {
            let (what, rel) = match last {
                None => ("rel L2", "-".into()),
                Some(e) if e.point_value.is_some() => ("point err", format!("{:.3e}", e.rel_l2)),
                Some(e) => ("rel L2", format!("{:.3e}", e.rel_l2)),
            };
            bar.set_message(format!(
                "loss {loss:.3e} | {steps_per_s:.1} steps/s | {what} {rel} | dir. sd {noise}"
            ));
        }
    }

    /// The line of an evaluation; `noise` is the direction variance measured at that step.
    fn evaluation(
        &self,
        steps: u64,
        loss: f64,
        eval: Evaluation,
        steps_per_s: f64,
        noise: Option<&str>,
    ) {
        let line = match eval.point_value {
            Some(value) => format!(
                "step {}/{steps}  loss {loss:.4e}  u(point) {value:.6}  point rel err {}  \
                 {steps_per_s:.1} steps/s",
                eval.step,
                if eval.rel_l2.is_finite() {
                    format!("{:.4e}", eval.rel_l2)
                } else {
                    "- (no reference value at this dimension)".into()
                }
            ),
            None => format!(
                "step {}/{steps}  loss {loss:.4e}  rel L2 {:.4e}  rel L1 {:.4e}  {steps_per_s:.1} \
                 steps/s",
                eval.step, eval.rel_l2, eval.rel_l1
            ),
        };
        let line = match noise {
            Some(noise) => format!("{line}  dir. sd {noise}"),
            None => line,
        };
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The state of the loop besides the trainer.
struct Run {
    plan: Plan,
    clock: Clock,
    history: History,
    display: Display,
    start_step: u64,
    /// The latest loss read back.
    last_loss: Option<f64>,
    /// The smallest loss logged (the divergence guard's reference).
    best_loss: Option<f64>,
    /// For a problem judged at one point: the model's value there and its relative error (NaN
    /// without a reference value at this dimension), at the latest evaluation.
    last_point: Option<(f64, f64)>,
    /// The direction-variance measurements.
    variance: Variance,
}

/// What the run measures of the variance over its random directions, and the latest measurement.
struct Variance {
    support: VarianceSupport,
    every: Option<VarianceEvery>,
    /// The residual's term names.
    terms: Vec<String>,
    last: Option<DirectionVariance>,
    /// The loss of the step measured last.
    last_loss: f64,
}

/// Steps between measurements of the variance over the directions unless `--variance-every`
/// says otherwise (and the last step).
const DEFAULT_VARIANCE_EVERY: u64 = 100;

impl Variance {
    /// Whether anything is measured in this run.
    fn measuring(&self) -> bool {
        self.support.is_measured() && self.every != Some(VarianceEvery::Off)
    }

    /// Whether the step that completes `step` of `steps` steps is measured.
    fn due(&self, step: u64, steps: u64) -> bool {
        self.measuring()
            && match self.every {
                // One measurement costs about half a step: every DEFAULT_VARIANCE_EVERY steps keeps
                // the diagnostic under 1 % of the training time.
                None => step.is_multiple_of(DEFAULT_VARIANCE_EVERY) || step == steps,
                Some(VarianceEvery::Every(n)) => step.is_multiple_of(n.max(1)),
                Some(VarianceEvery::Off) => false,
            }
    }

    /// `loss ±2.1%, lap ±35%`: the standard deviations over the directions relative to the loss
    /// and to each random term's RMS estimate; `none` or `off` when nothing is measured.
    fn brief(&self) -> String {
        if self.every == Some(VarianceEvery::Off) {
            return "off".into();
        }
        if !self.support.is_measured() {
            return "none".into();
        }
        let Some(v) = &self.last else {
            return "-".into();
        };
        let mut parts = vec![format!(
            "loss {}",
            percent(v.loss_variance.sqrt() / self.last_loss.abs())
        )];
        for (k, name) in self.terms.iter().enumerate() {
            if let Some(rel) = v.relative_term_variance(k) {
                parts.push(format!("{name} {}", percent(rel.sqrt())));
            }
        }
        parts.join(", ")
    }

    /// What the summary and `metrics.json` say when nothing is measured.
    fn absence(&self) -> Option<String> {
        if self.every == Some(VarianceEvery::Off) {
            return Some("off (--variance-every off)".into());
        }
        self.support.reason().map(|r| format!("none: {r}"))
    }
}

/// A relative standard deviation as `±2.1%`.
fn percent(x: f64) -> String {
    let p = 100.0 * x;
    if !p.is_finite() {
        "-".into()
    } else if p >= 10.0 {
        format!("±{p:.0}%")
    } else if p >= 1.0 {
        format!("±{p:.1}%")
    } else if p >= 0.01 {
        format!("±{p:.2}%")
    } else {
        format!("±{p:.0e}%")
    }
}

impl Run {
    fn steps_per_second(&self, step: u64) -> f64 {
        let secs = self.clock.train.as_secs_f64();
        if secs > 0.0 {
            (step - self.start_step) as f64 / secs
        } else {
            0.0
        }
    }

    /// The checkpoint metadata of the CLI: accounting, backend, settings and losses.
    fn extra(&self) -> BTreeMap<String, String> {
        let mut m = self.clock.extra(self.plan.backend);
        m.insert(RUN_SETTINGS.into(), self.plan.settings.to_toml());
        for (key, value) in [(LAST_LOSS, self.last_loss), (BEST_LOSS, self.best_loss)] {
            if let Some(v) = value {
                m.insert(key.into(), v.to_string());
            }
        }
        m
    }

    /// Why a logged loss or an evaluation means the run has run away, if it does.
    fn runaway(&self, loss: f64, eval: Option<Evaluation>) -> Option<String> {
        let s = &self.plan.settings;
        if let Some(best) = self.best_loss.filter(|b| *b > 0.0) {
            if loss > s.max_loss_ratio * best {
                return Some(format!(
                    "the loss {loss:.4e} is more than {:e} times its best {best:.4e} \
                     (--max-loss-ratio)",
                    s.max_loss_ratio
                ));
            }
        }
        match eval {
            Some(e) if e.rel_l2 > s.max_rel_error => Some(format!(
                "the relative L2 test error is {:.4e}, above {:e} (--max-rel-error)",
                e.rel_l2, s.max_rel_error
            )),
            _ => None,
        }
    }
}

fn execute<B: GenericStep>(backend: &B, plan: Plan) -> Result<(), CliError> {
    let out = plan.out.clone();
    let config_path = out.join("config.toml");
    files::write_atomic(
        &config_path,
        config::to_toml(&plan.cfg, &plan.settings).as_bytes(),
    )
    .map_err(CliError::io(&config_path))?;
    let resume_step = plan.resume.as_ref().map(|c| c.state.progress.step);
    let terms: Vec<String> = plan.problem.terms.iter().map(|t| t.name.clone()).collect();
    let history = History::open(&out.join("history.csv"), resume_step, &terms)?;
    let extra = plan.resume.as_ref().map(|c| &c.extra);
    let clock = Clock::new(extra);
    let saved_loss = |key: &str| extra.and_then(|m| m.get(key)).and_then(|v| v.parse().ok());
    let (last_loss, best_loss) = (saved_loss(LAST_LOSS), saved_loss(BEST_LOSS));
    let start_step = resume_step.unwrap_or(0);
    let display = Display::new(plan.quiet, plan.cfg.steps, start_step);
    let mut plan = plan;
    let state = plan.resume.take().map(|c| c.state);
    let last_point = state
        .as_ref()
        .and_then(|s| s.progress.last)
        .and_then(|e| e.point_value.map(|v| (v, e.rel_l2)));
    let every = plan.settings.variance_every;
    let mut run = Run {
        plan,
        clock,
        history,
        display,
        start_step,
        last_loss,
        best_loss,
        last_point,
        variance: Variance {
            support: VarianceSupport::Measured,
            every,
            terms,
            last: None,
            last_loss: f64::NAN,
        },
    };
    let trainer = Trainer::with_problem(backend, run.plan.cfg.clone(), &run.plan.problem, state)?;
    run.variance.support = trainer.variance_support();
    // A resumed run that had finished training only lacks its outputs.
    let result = if trainer.finished() {
        Ok((Status::Completed, trainer))
    } else {
        train_loop(backend, &mut run, trainer)
    };
    run.display.finish();
    let flushed = run.history.flush();
    match result {
        Ok((status, trainer)) => {
            let progress = trainer.progress().clone();
            if let Err(e) = flushed {
                let _ = write_metrics(&run, backend, Status::Failed, &progress, Some(&e));
                return Err(e);
            }
            match status {
                Status::Completed => finish(&run, backend, &trainer),
                Status::Interrupted(signal) => {
                    write_metrics(&run, backend, status, &progress, None)?;
                    Err(CliError::Interrupted {
                        signal,
                        step: progress.step,
                        steps: run.plan.cfg.steps,
                        dir: run.plan.out.clone(),
                    })
                }
                _ => {
                    write_metrics(&run, backend, status, &progress, None)?;
                    summary(&run, status, &progress);
                    Ok(())
                }
            }
        }
        Err(failure) => {
            let (e, progress) = *failure;
            if let Some(progress) = &progress {
                let status = match e {
                    CliError::Diverged { .. } => Status::Diverged,
                    _ => Status::Failed,
                };
                // The record of a failed run is still worth having; a failure to write it must
                // not hide the failure itself.
                let _ = write_metrics(&run, backend, status, progress, Some(&e));
            }
            Err(e)
        }
    }
}

/// Draws the plots, then records the run as completed: a run whose plots failed is not.
fn finish<B: GenericStep>(
    run: &Run,
    backend: &B,
    trainer: &Trainer<'_, B>,
) -> Result<(), CliError> {
    let progress = trainer.progress().clone();
    if let Err(e) = draw_plots(run, trainer) {
        let _ = write_metrics(run, backend, Status::Failed, &progress, Some(&e));
        return Err(e);
    }
    write_metrics(run, backend, Status::Completed, &progress, None)?;
    summary(run, Status::Completed, &progress);
    Ok(())
}

/// A failure and the progress counters at that moment, when they are known (boxed: the error path
/// is cold and the pair is large).
type Failure = Box<(CliError, Option<stde_core::train::Progress>)>;

fn train_loop<'b, B: GenericStep>(
    backend: &'b B,
    run: &mut Run,
    mut trainer: Trainer<'b, B>,
) -> Result<(Status, Trainer<'b, B>), Failure> {
    let cfg = run.plan.cfg.clone();
    let settings = run.plan.settings.clone();
    let timed_every = Duration::from_secs(settings.checkpoint_seconds);
    let mut last_checkpoint = Instant::now();
    let fail = |e: CliError, t: &Trainer<'b, B>| Box::new((e, Some(t.progress().clone())));
    // Whether the step that completes `step` steps logs a row of history.csv.
    let logs = |step: u64| {
        step.is_multiple_of(settings.log_every)
            || step.is_multiple_of(cfg.eval_every)
            || step >= cfg.steps
    };
    loop {
        let lr = trainer.current_lr();
        let next = trainer.progress().step + 1;
        let measure = run.variance.due(next, cfg.steps);
        let timer = Instant::now();
        // A measured step reads its loss before the update (the same numbers: the update changes
        // neither), so that the measurement, timed apart, starts after the step's own work.
        let mut early_loss = None;
        let mut measured = None;
        let mut measuring = Duration::ZERO;
        if measure {
            trainer.accumulate_gradient();
            let loss = pollster::block_on(trainer.loss());
            if loss.is_ok() {
                let start = Instant::now();
                measured = pollster::block_on(trainer.direction_variance())
                    .map_err(|e| fail(e.into(), &trainer))?;
                measuring = start.elapsed();
                run.clock.variance += measuring;
            }
            // A failed read is repeated after the update, whose step count the error names.
            early_loss = loss.ok();
            trainer.apply_update();
        } else {
            trainer.step();
        }
        let step = trainer.progress().step;
        let finished = trainer.finished();
        let signal = if finished { None } else { signals::pending() };
        let stopping = run.plan.stop_after == Some(step) && !finished;
        let eval_due = step % cfg.eval_every == 0 || finished;
        // Checkpoints at fixed steps; the run continues from what they saved (see below).
        let regular = match settings.checkpoint_every {
            Some(every) => step % every == 0,
            None => eval_due,
        } || finished;
        // Checkpoints at moments that depend on the clock or the user.
        let timed = settings.checkpoint_seconds > 0 && last_checkpoint.elapsed() >= timed_every;
        let checkpoint_due = regular || timed || stopping || signal.is_some();
        // Rows of history.csv and the divergence guard follow the step count alone, so a run's
        // records do not depend on when it was checkpointed or interrupted.
        let row_due = logs(step) || measure;
        // A checkpoint is only written after a finite loss has been seen for its step.
        let log_due = row_due || checkpoint_due;
        run.display.step(step);
        if !log_due {
            run.clock.train += timer.elapsed();
            continue;
        }
        let loss = match early_loss {
            Some(loss) => Ok(loss),
            None => pollster::block_on(trainer.loss()),
        };
        run.clock.train += timer.elapsed().saturating_sub(measuring);
        let loss = match loss {
            Ok(loss) => loss,
            Err(e) => {
                let e = CliError::from(e);
                if matches!(e, CliError::Diverged { .. }) {
                    let row = Row {
                        step,
                        loss: f64::NAN,
                        eval: None,
                        lr,
                        seconds: run.clock.wall_seconds(),
                        variance: None,
                    };
                    // Best effort: the divergence is the error to report.
                    let _ = run.history.push(&row);
                }
                return Err(fail(e, &trainer));
            }
        };
        run.last_loss = Some(loss);
        let eval = if eval_due {
            let eval =
                pollster::block_on(trainer.evaluate()).map_err(|e| fail(e.into(), &trainer))?;
            let finite = match eval.point_value {
                // Judged at a point: its value must be finite (its error is NaN where the problem
                // has no reference value at this dimension).
                Some(v) => v.is_finite(),
                None => eval.rel_l2.is_finite() && eval.rel_l1.is_finite(),
            };
            if !finite {
                let e = CliError::Diverged {
                    step,
                    what: format!(
                        "the test error is {}",
                        eval.point_value.map_or(eval.rel_l2, |v| v)
                    ),
                };
                return Err(fail(e, &trainer));
            }
            if let Some(v) = eval.point_value {
                run.last_point = Some((v, eval.rel_l2));
            }
            Some(eval)
        } else {
            None
        };
        if row_due {
            if let Some(what) = run.runaway(loss, eval) {
                let row = Row {
                    step,
                    loss,
                    eval,
                    lr,
                    seconds: run.clock.wall_seconds(),
                    variance: measured.as_ref(),
                };
                let _ = run.history.push(&row);
                return Err(fail(CliError::Diverged { step, what }, &trainer));
            }
            run.best_loss = Some(run.best_loss.map_or(loss, |b| b.min(loss)));
        }
        if let Some(v) = measured {
            run.variance.last = Some(v);
            run.variance.last_loss = loss;
        }
        let measured = measure.then_some(run.variance.last.as_ref()).flatten();
        let steps_per_s = run.steps_per_second(step);
        let noise = run.variance.brief();
        run.display
            .status(loss, steps_per_s, trainer.progress().last, &noise);
        if let Some(eval) = eval {
            let noise = measured.map(|_| noise.as_str());
            run.display
                .evaluation(cfg.steps, loss, eval, steps_per_s, noise);
        }
        if row_due {
            run.history
                .push(&Row {
                    step,
                    loss,
                    eval,
                    lr,
                    seconds: run.clock.wall_seconds(),
                    variance: measured,
                })
                .map_err(|e| fail(e, &trainer))?;
        }
        if checkpoint_due {
            let state =
                pollster::block_on(trainer.host_state()).map_err(|e| fail(e.into(), &trainer))?;
            if let Some(what) = non_finite(&state) {
                return Err(fail(CliError::Diverged { step, what }, &trainer));
            }
            run.history.flush().map_err(|e| fail(e, &trainer))?;
            save_checkpoint(run, &cfg, &state).map_err(|e| fail(e, &trainer))?;
            last_checkpoint = Instant::now();
            if finished {
                return Ok((Status::Completed, trainer));
            }
            if let Some(signal) = signal {
                return Ok((Status::Interrupted(signal), trainer));
            }
            if stopping {
                return Ok((Status::Stopped, trainer));
            }
            if regular {
                // The run continues from exactly what was saved. A backend may hold more precision
                // than the f32 checkpoint (the reference keeps f64), so without this a resumed run
                // would drift from an uninterrupted one with the same checkpoints. Timed
                // checkpoints do not reload: their steps depend on the clock, and an uninterrupted
                // run must not.
                let progress = state.progress.clone();
                drop(trainer);
                trainer =
                    Trainer::with_problem(backend, cfg.clone(), &run.plan.problem, Some(state))
                        .map_err(|e| Box::new((CliError::from(e), Some(progress))))?;
            }
        }
    }
}

/// Writes the checkpoint, charging its size to the write budget first (see [`files`]).
fn save_checkpoint(run: &Run, cfg: &TrainConfig, state: &HostState) -> Result<(), CliError> {
    // Three f32 tensors and a header of JSON metadata (a few KiB).
    let size = 12 * state.params.len() as u64 + 8192;
    files::reserve(size).map_err(|source| {
        CliError::CheckpointSave(CheckpointError::Io {
            path: checkpoint::temp_path_in(&run.plan.out),
            source,
        })
    })?;
    checkpoint::save_with_extra(&run.plan.out, cfg, state, &run.extra())
        .map_err(CliError::CheckpointSave)
}

/// What is not finite in a state about to be saved, if anything.
fn non_finite(state: &HostState) -> Option<String> {
    for (name, values) in [
        ("parameters", &state.params),
        ("Adam first moments", &state.adam_m),
        ("Adam second moments", &state.adam_v),
    ] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Some(format!(
                "{name} are not finite (index {i} is {})",
                values[i]
            ));
        }
    }
    None
}

/// The direction variance in `metrics.json`.
#[derive(Debug, Serialize)]
struct VarianceMetrics {
    /// Whether the run measures it.
    measured: bool,
    /// Why not (`none: …` for a plan without random directions or with `V = 1`, `off …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Measured every this many steps; absent: on the steps history.csv logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    every: Option<u64>,
    /// The latest measurement (absent before the first one).
    #[serde(skip_serializing_if = "Option::is_none")]
    last: Option<VarianceLast>,
}

/// The latest direction-variance measurement in `metrics.json`.
#[derive(Debug, Serialize)]
struct VarianceLast {
    /// The step it measured (steps completed).
    step: u64,
    loss: f64,
    /// The variance of that step's loss over its directions.
    loss_variance: Option<f64>,
    /// Per random term: the variance of its estimate (mean over points) and that over the mean
    /// squared estimate.
    terms: BTreeMap<String, TermVariance>,
}

/// One term's direction variance.
#[derive(Debug, Serialize)]
struct TermVariance {
    variance: Option<f64>,
    relative_variance: Option<f64>,
}

impl VarianceMetrics {
    fn of(v: &Variance) -> Self {
        let finite = |x: f64| x.is_finite().then_some(x);
        Self {
            measured: v.measuring(),
            reason: v.absence(),
            every: match v.every {
                Some(VarianceEvery::Every(n)) => Some(n),
                _ => None,
            },
            last: v.last.as_ref().map(|m| VarianceLast {
                // The measurement is of the step before the update that completed it.
                step: m.step + 1,
                loss: v.last_loss,
                loss_variance: finite(m.loss_variance),
                terms: v
                    .terms
                    .iter()
                    .enumerate()
                    .filter_map(|(k, name)| {
                        let variance = m.term_variance[k]?;
                        Some((
                            name.clone(),
                            TermVariance {
                                variance: finite(variance),
                                relative_variance: m.relative_term_variance(k).and_then(finite),
                            },
                        ))
                    })
                    .collect(),
            }),
        }
    }
}

/// `metrics.json`.
#[derive(Debug, Serialize)]
struct Metrics<'a> {
    status: &'static str,
    equation: &'a str,
    dim: usize,
    backend: &'static str,
    backend_description: String,
    estimator: &'static str,
    rand_dims: usize,
    steps: u64,
    steps_done: u64,
    final_rel_l2: Option<f64>,
    final_rel_l1: Option<f64>,
    final_eval_step: Option<u64>,
    exact_rms: Option<f64>,
    final_rms_error: Option<f64>,
    best_rel_l2: Option<f64>,
    best_rel_l1: Option<f64>,
    best_step: Option<u64>,
    /// For a problem judged at one point: the model's value there at the last evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    point_value: Option<f64>,
    /// For a problem judged at one point: `|u_θ − u_ref| / |u_ref|` there (null without a
    /// reference value at this dimension).
    #[serde(skip_serializing_if = "Option::is_none")]
    point_rel_error: Option<Option<f64>>,
    final_loss: Option<f64>,
    steps_per_second: Option<f64>,
    peak_memory_bytes: Option<u64>,
    wall_seconds: f64,
    train_seconds: f64,
    /// Seconds spent measuring the direction variance (apart from `train_seconds`).
    variance_seconds: f64,
    direction_variance: VarianceMetrics,
    seed: u64,
    /// The signal that interrupted the run (`SIGINT`, `SIGTERM`, `SIGHUP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<&'static str>,
    error: Option<String>,
    config: &'a TrainConfig,
    run: &'a RunSettings,
}

fn write_metrics<B: GenericStep>(
    run: &Run,
    backend: &B,
    status: Status,
    progress: &stde_core::train::Progress,
    error: Option<&CliError>,
) -> Result<(), CliError> {
    let cfg = &run.plan.cfg;
    let train = run.clock.train_seconds();
    let finite = |v: f64| v.is_finite().then_some(v);
    let m = Metrics {
        status: status.name(),
        equation: &cfg.equation,
        dim: cfg.dim,
        backend: run.plan.backend.name(),
        backend_description: backend.describe(),
        estimator: cfg.estimator.name(),
        rand_dims: cfg.rand_dims,
        steps: cfg.steps,
        steps_done: progress.step,
        final_rel_l2: progress.last.and_then(|e| finite(e.rel_l2)),
        final_rel_l1: progress.last.and_then(|e| finite(e.rel_l1)),
        final_eval_step: progress.last.map(|e| e.step),
        exact_rms: progress.last.and_then(|e| finite(e.exact_rms)),
        final_rms_error: progress.last.and_then(|e| finite(e.rel_l2 * e.exact_rms)),
        best_rel_l2: progress.best.map(|e| e.rel_l2),
        best_rel_l1: progress.best.map(|e| e.rel_l1),
        best_step: progress.best.map(|e| e.step),
        point_value: run.last_point.and_then(|(v, _)| finite(v)),
        point_rel_error: run.last_point.map(|(_, e)| finite(e)),
        final_loss: run.last_loss,
        steps_per_second: (train > 0.0).then(|| progress.step as f64 / train),
        peak_memory_bytes: run.clock.peak_memory(),
        wall_seconds: run.clock.wall_seconds(),
        train_seconds: train,
        variance_seconds: run.clock.variance_seconds(),
        direction_variance: VarianceMetrics::of(&run.variance),
        seed: cfg.seed,
        signal: match status {
            Status::Interrupted(s) => Some(s.name()),
            _ => None,
        },
        error: error.map(|e| text::one_line(&e.to_string())),
        config: cfg,
        run: &run.plan.settings,
    };
    let path = run.plan.out.join("metrics.json");
    let mut text = serde_json::to_string_pretty(&m).unwrap_or_default();
    text.push('\n');
    files::write_atomic(&path, text.as_bytes()).map_err(CliError::io(&path))
}

/// Draws one plot into a temporary file and makes it `path` only once it is complete.
fn draw_into(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let temp = files::temp_path(path);
    if let Err(e) = draw(&temp) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    files::commit(&temp, path).map_err(|e| CliError::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn draw_plots<B: GenericStep>(run: &Run, trainer: &Trainer<'_, B>) -> Result<(), CliError> {
    let cfg = &run.plan.cfg;
    let out = &run.plan.out;
    let title = format!(
        "{}, d = {}, {} STDE",
        cfg.equation,
        cfg.dim,
        cfg.estimator.name()
    );
    let curves = history::read_curves(&out.join("history.csv"))?;
    draw_into(&out.join("loss.png"), |p| {
        plot::loss_plot(p, &title, &curves, cfg.steps)
    })?;
    let d = cfg.dim;
    let stride = trainer.input_width();
    let n = (PROFILE_VALUES / d).clamp(11, 201);
    let scale = 1.0 / (d as f64).sqrt();
    let t: Vec<f64> = (0..n)
        .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
        .collect();
    // The diagonal of the unit ball, at the middle of the time interval for time-dependent problems.
    let mid_time = run.plan.problem.time.map_or(0.0, |t| t.end / 2.0);
    let mut points = vec![0.0; n * stride];
    for (row, &ti) in points.chunks_exact_mut(stride).zip(&t) {
        row[..d].fill(ti * scale);
        if stride > d {
            row[d] = mid_time;
        }
    }
    let model = pollster::block_on(trainer.predict(&points))?;
    let exact = trainer.exact_at(&points);
    draw_into(&out.join("profile.png"), |p| {
        plot::profile_plot(p, &title, &t, &model, exact.as_deref())
    })?;
    if run.variance.measuring() {
        let curves = history::read_variance(&out.join("history.csv"))?;
        draw_into(&out.join("variance.png"), |p| {
            plot::variance_plot(p, &title, &curves, cfg.steps)
        })?;
    }
    Ok(())
}

fn summary(run: &Run, status: Status, progress: &stde_core::train::Progress) {
    let cfg = &run.plan.cfg;
    let out = text::path(&run.plan.out);
    if status == Status::Stopped {
        say!(
            "stopped after step {} of {}; continue with: stde train --resume {out}",
            progress.step,
            cfg.steps
        );
        return;
    }
    let fmt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.4e}"));
    let train = run.clock.train_seconds();
    if let Some((value, err)) = run.last_point {
        say!(
            "u(point)      {value:.6}  (the problem's reference point, step {})",
            progress.step
        );
        say!(
            "point error   {}",
            if err.is_finite() {
                format!("{err:.4e}  (relative to the reference value)")
            } else {
                "-  (the problem gives no reference value at this dimension)".into()
            }
        );
    } else {
        say!(
            "final rel L2  {}  (step {})",
            fmt(progress.last.map(|e| e.rel_l2)),
            progress.step
        );
        match progress.best {
            Some(b) => say!(
                "best rel L2   {}  (step {}; best during training)",
                fmt(Some(b.rel_l2)),
                b.step
            ),
            None => say!("best rel L2   -"),
        }
        say!("final rel L1  {}", fmt(progress.last.map(|e| e.rel_l1)));
        if let Some(e) = progress.last {
            say!(
                "final RMS err {}  (‖u*‖ RMS on the test set {:.4})",
                fmt(Some(e.rel_l2 * e.exact_rms)),
                e.exact_rms
            );
        }
    }
    match (run.variance.absence(), &run.variance.last) {
        (Some(absence), _) => say!("dir. sd       {absence}"),
        (None, Some(v)) => say!(
            "dir. sd       {}  (over the step's random directions, step {}; history.csv, \
             variance.png)",
            run.variance.brief(),
            v.step + 1
        ),
        (None, None) => {}
    }
    if let Some(b) = cfg.share_blocks {
        say!(
            "weight share  {} blocks of {b} coordinates, one shared {b} → 1 map and tanh \
             (--share-blocks {b})",
            cfg.dim / b
        );
    }
    if train > 0.0 {
        say!("speed         {:.1} steps/s", progress.step as f64 / train);
    }
    say!(
        "peak memory   {}",
        system::format_bytes(run.clock.peak_memory())
    );
    say!("output        {out}");
}
