//! `stde train`: resolving the run (configuration, output directory, resumption), the training loop
//! with logging, evaluation and checkpoints, and the files and summary a run leaves behind.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use stde_core::backend::Backend;
use stde_core::checkpoint::{self, Checkpoint};
use stde_core::pde::Problem;
use stde_core::train::{Evaluation, HostState, TrainConfig, Trainer};

use crate::args::{BackendArg, TrainArgs};
use crate::backends::{with_backend, Chosen};
use crate::config;
use crate::error::CliError;
use crate::history::{self, History, Row};
use crate::plot;
use crate::system;
use crate::{note, say};

/// Checkpoint metadata keys of the CLI's own accounting, carried across resumptions.
const WALL_SECONDS: &str = "stde-cli.wall-seconds";
const TRAIN_SECONDS: &str = "stde-cli.train-seconds";
const PEAK_MEMORY: &str = "stde-cli.peak-memory-bytes";
const BACKEND: &str = "stde-cli.backend";

/// Values of the points plotted in `profile.png` kept in memory at once (f64), which bounds the
/// number of points at very large `d`.
const PROFILE_VALUES: usize = 1 << 24;

/// The defaults of a fresh run: [`TrainConfig::default`] with the CLI's documented `d = 1000`.
pub fn cli_defaults() -> TrainConfig {
    TrainConfig {
        dim: 1000,
        ..TrainConfig::default()
    }
}

/// Everything decided before the first step.
#[derive(Debug)]
struct Plan {
    cfg: TrainConfig,
    problem: Problem,
    out: PathBuf,
    backend: Chosen,
    resume: Option<Checkpoint>,
    log_every: u64,
    checkpoint_every: Option<u64>,
    stop_after: Option<u64>,
    quiet: bool,
}

/// Runs `stde train`.
///
/// # Errors
/// Any [`CliError`]; nothing is written before the inputs are checked, and a checkpoint is only
/// ever replaced by a newer finite one.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let plan = plan(args)?;
    if let Some(ckpt) = &plan.resume {
        let done = ckpt.state.progress.step;
        if done >= plan.cfg.steps {
            say!(
                "the run in {} already finished ({done} of {} steps); nothing to do",
                plan.out.display(),
                plan.cfg.steps
            );
            return Ok(());
        }
    }
    with_backend!(plan.backend, b => execute(b, plan))
}

fn plan(args: &TrainArgs) -> Result<Plan, CliError> {
    let (base, resume) = match &args.resume {
        Some(dir) => {
            let file = checkpoint::path_in(dir);
            if !file.is_file() {
                return Err(CliError::NoCheckpoint {
                    dir: dir.clone(),
                    file,
                });
            }
            let ckpt = checkpoint::load_checkpoint(dir).map_err(|source| CliError::Resume {
                dir: dir.clone(),
                source,
            })?;
            // Without a config file the saved configuration is the base, so `--resume DIR` alone
            // continues exactly the saved run; flags may still restate (or relax) values.
            let base = if args.cfg.config.is_some() {
                cli_defaults()
            } else {
                ckpt.config.clone()
            };
            (base, Some(ckpt))
        }
        None => (cli_defaults(), None),
    };
    let mut cfg = config::resolve(&base, &args.cfg)?;
    if let Some(steps) = args.steps {
        cfg.steps = steps;
    }
    if let Some(every) = args.eval_every {
        cfg.eval_every = every;
    }
    if let (Some(ckpt), Some(dir)) = (&resume, &args.resume) {
        checkpoint::check_compatible(&ckpt.config, &cfg).map_err(|source| CliError::Resume {
            dir: dir.clone(),
            source,
        })?;
    }
    let problem = cfg.validate()?;
    let positive = |flag, v: Option<u64>| match v {
        Some(0) => Err(CliError::Flag {
            flag,
            reason: "must be at least 1".into(),
        }),
        _ => Ok(v),
    };
    let log_every = positive("log-every", Some(args.log_every))?.unwrap_or(1);
    let checkpoint_every = positive("checkpoint-every", args.checkpoint_every)?;
    let stop_after = positive("stop-after", args.stop_after)?;
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
    prepare_out_dir(&out, resume.is_none())?;
    // A resumed run stays on the backend it was saved from unless told otherwise: a backend of
    // other precision would continue with other numbers.
    let saved_backend = resume
        .as_ref()
        .and_then(|c| c.extra.get(BACKEND))
        .and_then(|name| Chosen::ALL.into_iter().find(|b| b.name() == name));
    let backend = match (args.cfg.backend, saved_backend) {
        (Some(arg), _) => arg.resolve(),
        (None, Some(saved)) => saved,
        (None, None) => BackendArg::Auto.resolve(),
    };
    Ok(Plan {
        cfg,
        problem,
        out,
        backend,
        resume,
        log_every,
        checkpoint_every,
        stop_after,
        quiet: args.quiet,
    })
}

/// Creates `out` and proves it writable before any training time is spent; refuses to start a
/// fresh run over another run's checkpoint.
fn prepare_out_dir(out: &Path, fresh: bool) -> Result<(), CliError> {
    let fail = |source| CliError::OutDir {
        path: out.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out).map_err(fail)?;
    if fresh && checkpoint::path_in(out).exists() {
        return Err(CliError::WouldOverwrite {
            dir: out.to_path_buf(),
        });
    }
    let probe = out.join(".stde-write-probe");
    std::fs::write(&probe, b"probe").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

/// How the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Completed,
    Stopped,
    Diverged,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Stopped => "stopped",
            Status::Diverged => "diverged",
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
            prior_peak: get(PEAK_MEMORY).and_then(|v| v.parse().ok()),
        }
    }

    fn wall_seconds(&self) -> f64 {
        self.prior_wall + self.started.elapsed().as_secs_f64()
    }

    fn train_seconds(&self) -> f64 {
        self.prior_train + self.train.as_secs_f64()
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

    fn status(&self, loss: f64, steps_per_s: f64, last: Option<Evaluation>) {
        if let Some(bar) = &self.bar {
            let rel = last.map_or_else(|| "-".into(), |e| format!("{:.3e}", e.rel_l2));
            bar.set_message(format!(
                "loss {loss:.3e} | {steps_per_s:.1} steps/s | rel L2 {rel}"
            ));
        }
    }

    fn evaluation(&self, steps: u64, loss: f64, eval: Evaluation, steps_per_s: f64) {
        let line = format!(
            "step {}/{steps}  loss {loss:.4e}  rel L2 {:.4e}  rel L1 {:.4e}  {steps_per_s:.1} steps/s",
            eval.step, eval.rel_l2, eval.rel_l1
        );
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
    last_loss: Option<f64>,
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
}

fn execute<B: Backend>(backend: &B, plan: Plan) -> Result<(), CliError> {
    let out = plan.out.clone();
    let config_path = out.join("config.toml");
    std::fs::write(&config_path, config::to_toml(&plan.cfg)).map_err(CliError::io(&config_path))?;
    let resume_step = plan.resume.as_ref().map(|c| c.state.progress.step);
    let history = History::open(&out.join("history.csv"), resume_step)?;
    let clock = Clock::new(plan.resume.as_ref().map(|c| &c.extra));
    let start_step = resume_step.unwrap_or(0);
    let display = Display::new(plan.quiet, plan.cfg.steps, start_step);
    let mut plan = plan;
    let state = plan.resume.take().map(|c| c.state);
    let mut run = Run {
        plan,
        clock,
        history,
        display,
        start_step,
        last_loss: None,
    };
    let trainer = Trainer::new(backend, run.plan.cfg.clone(), state)?;
    let result = train_loop(backend, &mut run, trainer);
    run.display.finish();
    let flushed = run.history.flush();
    match result {
        Ok((status, trainer)) => {
            flushed?;
            let progress = trainer.progress().clone();
            write_metrics(&run, backend, status, &progress, None)?;
            if status == Status::Completed {
                draw_plots(&run, &trainer)?;
            }
            summary(&run, status, &progress);
            Ok(())
        }
        Err(failure) => {
            let (e, progress) = *failure;
            if let (CliError::Diverged { .. }, Some(progress)) = (&e, &progress) {
                // The record of a failed run is still worth having; a failure to write it must
                // not hide the divergence itself.
                let _ = write_metrics(&run, backend, Status::Diverged, progress, Some(&e));
            }
            Err(e)
        }
    }
}

/// A failure and the progress counters at that moment, when they are known (boxed: the error path
/// is cold and the pair is large).
type Failure = Box<(CliError, Option<stde_core::train::Progress>)>;

fn train_loop<'b, B: Backend>(
    backend: &'b B,
    run: &mut Run,
    mut trainer: Trainer<'b, B>,
) -> Result<(Status, Trainer<'b, B>), Failure> {
    let cfg = run.plan.cfg.clone();
    let fail = |e: CliError, t: &Trainer<'b, B>| Box::new((e, Some(t.progress().clone())));
    loop {
        let lr = trainer.current_lr();
        let timer = Instant::now();
        trainer.step();
        let step = trainer.progress().step;
        let finished = trainer.finished();
        let stopping = run.plan.stop_after == Some(step) && !finished;
        let eval_due = step % cfg.eval_every == 0 || finished;
        let checkpoint_due = match run.plan.checkpoint_every {
            Some(every) => step % every == 0,
            None => eval_due,
        } || finished
            || stopping;
        // A checkpoint is only written after a finite loss has been seen for its step.
        let log_due = step % run.plan.log_every == 0 || eval_due || checkpoint_due;
        run.display.step(step);
        if !log_due {
            run.clock.train += timer.elapsed();
            continue;
        }
        let loss = pollster::block_on(trainer.loss());
        run.clock.train += timer.elapsed();
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
            if !(eval.rel_l2.is_finite() && eval.rel_l1.is_finite()) {
                let e = CliError::Diverged {
                    step,
                    what: format!("the test error is {}", eval.rel_l2),
                };
                return Err(fail(e, &trainer));
            }
            Some(eval)
        } else {
            None
        };
        let steps_per_s = run.steps_per_second(step);
        run.display
            .status(loss, steps_per_s, trainer.progress().last);
        if let Some(eval) = eval {
            run.display.evaluation(cfg.steps, loss, eval, steps_per_s);
        }
        run.history
            .push(&Row {
                step,
                loss,
                eval,
                lr,
                seconds: run.clock.wall_seconds(),
            })
            .map_err(|e| fail(e, &trainer))?;
        if checkpoint_due {
            let state =
                pollster::block_on(trainer.host_state()).map_err(|e| fail(e.into(), &trainer))?;
            if let Some(what) = non_finite(&state) {
                return Err(fail(CliError::Diverged { step, what }, &trainer));
            }
            run.history.flush().map_err(|e| fail(e, &trainer))?;
            checkpoint::save_with_extra(
                &run.plan.out,
                &cfg,
                &state,
                &run.clock.extra(run.plan.backend),
            )
            .map_err(|e| fail(CliError::CheckpointSave(e), &trainer))?;
            if finished {
                return Ok((Status::Completed, trainer));
            }
            if stopping {
                return Ok((Status::Stopped, trainer));
            }
            // The run continues from exactly what was saved. A backend may hold more precision
            // than the f32 checkpoint (the reference keeps f64), so without this a resumed run
            // would drift from an uninterrupted one with the same checkpoints.
            let progress = state.progress.clone();
            drop(trainer);
            trainer = Trainer::new(backend, cfg.clone(), Some(state))
                .map_err(|e| Box::new((CliError::from(e), Some(progress))))?;
        }
    }
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
    final_loss: Option<f64>,
    steps_per_second: Option<f64>,
    peak_memory_bytes: Option<u64>,
    wall_seconds: f64,
    train_seconds: f64,
    seed: u64,
    error: Option<String>,
    config: &'a TrainConfig,
}

fn write_metrics<B: Backend>(
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
        final_loss: run.last_loss,
        steps_per_second: (train > 0.0).then(|| progress.step as f64 / train),
        peak_memory_bytes: run.clock.peak_memory(),
        wall_seconds: run.clock.wall_seconds(),
        train_seconds: train,
        seed: cfg.seed,
        error: error.map(ToString::to_string),
        config: cfg,
    };
    let path = run.plan.out.join("metrics.json");
    let mut text = serde_json::to_string_pretty(&m).unwrap_or_default();
    text.push('\n');
    std::fs::write(&path, text).map_err(CliError::io(&path))
}

fn draw_plots<B: Backend>(run: &Run, trainer: &Trainer<'_, B>) -> Result<(), CliError> {
    let cfg = &run.plan.cfg;
    let out = &run.plan.out;
    let title = format!(
        "{}, d = {}, {} STDE",
        cfg.equation,
        cfg.dim,
        cfg.estimator.name()
    );
    let curves = history::read_curves(&out.join("history.csv"))?;
    plot::loss_plot(&out.join("loss.png"), &title, &curves, cfg.steps)?;
    let d = cfg.dim;
    let n = (PROFILE_VALUES / d).clamp(11, 201);
    let scale = 1.0 / (d as f64).sqrt();
    let t: Vec<f64> = (0..n)
        .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
        .collect();
    let mut points = vec![0.0; n * d];
    for (row, &ti) in points.chunks_exact_mut(d).zip(&t) {
        row.fill(ti * scale);
    }
    let model = pollster::block_on(trainer.predict(&points))?;
    let exact: Vec<f64> = points
        .chunks_exact(d)
        .map(|x| run.plan.problem.exact(x))
        .collect();
    plot::profile_plot(&out.join("profile.png"), &title, &t, &model, &exact)
}

fn summary(run: &Run, status: Status, progress: &stde_core::train::Progress) {
    let cfg = &run.plan.cfg;
    let out = run.plan.out.display();
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
    if train > 0.0 {
        say!("speed         {:.1} steps/s", progress.step as f64 / train);
    }
    say!(
        "peak memory   {}",
        system::format_bytes(run.clock.peak_memory())
    );
    say!("output        {out}");
}
