//! `stde bench`: time a fixed number of training steps and record the figures as CSV and JSON;
//! with `--sweep-rand-dims`, train once per `V` and tabulate what each buys: speed, the variance
//! over the random directions, and the test error against training time.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use stde_core::backend::GenericStep;
use stde_core::problem::ProblemSpec;
use stde_core::train::{TrainConfig, Trainer};

use crate::args::{BenchArgs, VarianceEvery};
use crate::backends::{with_backend, Chosen};
use crate::config::{self, RunSettings};
use crate::error::CliError;
use crate::files::Budgeted;
use crate::say;
use crate::system;
use crate::train::{check_limits, cli_defaults};

/// One benchmark measurement; the CSV columns are its fields in this order.
#[derive(Debug, Serialize)]
struct Record {
    backend: &'static str,
    equation: String,
    dim: usize,
    batch: usize,
    rand_dims: usize,
    width: usize,
    depth: usize,
    estimator: &'static str,
    collapsed: bool,
    steps: u64,
    warmup: u64,
    seconds: f64,
    steps_per_second: f64,
    ms_per_step: f64,
    peak_memory_bytes: Option<u64>,
    final_loss: f64,
    rel_l2: Option<f64>,
    rel_l1: Option<f64>,
    seed: u64,
    commit: String,
    unix_time: u64,
    flops_per_step: f64,
    bytes_per_step: f64,
    achieved_gflops: f64,
    achieved_gbytes_per_second: f64,
}

const CSV_HEADER: &str = "backend,equation,dim,batch,rand_dims,width,depth,estimator,collapsed,\
steps,warmup,seconds,steps_per_second,ms_per_step,peak_memory_bytes,final_loss,rel_l2,rel_l1,seed,\
commit,unix_time,flops_per_step,bytes_per_step,achieved_gflops,achieved_gbytes_per_second";

impl Record {
    fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.backend,
            self.equation,
            self.dim,
            self.batch,
            self.rand_dims,
            self.width,
            self.depth,
            self.estimator,
            self.collapsed,
            self.steps,
            self.warmup,
            self.seconds,
            self.steps_per_second,
            self.ms_per_step,
            self.peak_memory_bytes
                .map(|v| v.to_string())
                .unwrap_or_default(),
            self.final_loss,
            opt(self.rel_l2),
            opt(self.rel_l1),
            self.seed,
            self.commit,
            self.unix_time,
            self.flops_per_step,
            self.bytes_per_step,
            self.achieved_gflops,
            self.achieved_gbytes_per_second,
        )
    }
}

/// An output file of `stde bench`, opened for appending before any work so that an unusable path
/// fails at once; removed again if the command fails and the file was new.
#[derive(Debug)]
struct Output {
    path: PathBuf,
    file: File,
    created: bool,
}

impl Output {
    fn open(flag: &'static str, path: &Path) -> Result<Self, CliError> {
        let fail = |source| CliError::OutputFile {
            flag,
            path: path.to_path_buf(),
            source,
        };
        if path.is_dir() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            created: !existed,
        })
    }

    /// Appends `line`, first writing `header` if the file is empty.
    fn append(&mut self, line: &str, header: Option<&str>) -> Result<(), CliError> {
        let io = || CliError::io(&self.path);
        let empty = self.file.metadata().map_err(io())?.len() == 0;
        let mut text = String::new();
        if let (true, Some(h)) = (empty, header) {
            text.push_str(h);
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        Budgeted(&self.file)
            .write_all(text.as_bytes())
            .map_err(io())
    }

    /// Removes the file if this command created it and wrote nothing.
    fn discard(self) {
        if self.created && self.file.metadata().is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs `stde bench`.
///
/// # Errors
/// [`CliError`] for a bad configuration, an unusable output file or an existing CSV file with
/// other columns (all before any work), a device failure, divergence, or a failed write.
pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    if args.steps == 0 {
        return Err(CliError::Flag {
            flag: "steps",
            reason: "must be at least 1".into(),
        });
    }
    if let Some(list) = &args.sweep_rand_dims {
        return sweep(args, &list.0);
    }
    let (mut cfg, settings) = config::resolve(&cli_defaults(), &RunSettings::default(), &args.cfg)?;
    // The schedule spans warm-up and timed steps, as in a real run of that length.
    cfg.steps = args
        .warmup
        .checked_add(args.steps)
        .ok_or_else(|| CliError::Flag {
            flag: "warmup",
            reason: "--warmup plus --steps exceeds the largest step count".into(),
        })?;
    cfg.eval_every = cfg.steps;
    let (spec, _) = crate::problem::load(&cfg, None)?;
    crate::problem::apply_defaults(&mut cfg, &spec, &args.cfg);
    check_limits(&cfg)?;
    stde_core::trainer::check_config(&cfg, &spec)?;
    let (mut csv, mut json) = open_outputs(args, CSV_HEADER)?;
    let chosen = settings.backend.unwrap_or_default().resolve();
    let measured = (|| with_backend!(chosen, b => measure(b, chosen, &cfg, &spec, args)))();
    let record = match measured {
        Ok(record) => record,
        Err(e) => {
            csv.into_iter().chain(json).for_each(Output::discard);
            return Err(e);
        }
    };
    say!(
        "{} {} d={} batch={} V={} {} width={} depth={}{}{}: {} steps in {:.3} s",
        record.backend,
        record.equation,
        record.dim,
        record.batch,
        record.rand_dims,
        record.estimator,
        record.width,
        record.depth,
        cfg.share_blocks
            .map_or(String::new(), |b| format!(" share-blocks={b}")),
        if record.collapsed {
            ""
        } else {
            " (not collapsed)"
        },
        record.steps,
        record.seconds
    );
    say!("steps/s       {:.2}", record.steps_per_second);
    say!("ms/step       {:.3}", record.ms_per_step);
    say!(
        "peak memory   {}",
        system::format_bytes(record.peak_memory_bytes)
    );
    say!(
        "work/step     {:.3e} FLOP, {:.3e} bytes (floor counted by stde_core::cost)",
        record.flops_per_step,
        record.bytes_per_step
    );
    say!(
        "achieved      {:.1} GFLOP/s, {:.1} GB/s",
        record.achieved_gflops,
        record.achieved_gbytes_per_second
    );
    say!("final loss    {:.4e}", record.final_loss);
    if let (Some(l2), Some(l1)) = (record.rel_l2, record.rel_l1) {
        say!("rel L2        {l2:.4e}");
        say!("rel L1        {l1:.4e}");
    }
    if let Some(out) = &mut csv {
        out.append(&record.csv_row(), Some(CSV_HEADER))?;
    }
    if let Some(out) = &mut json {
        out.append(&serde_json::to_string(&record).unwrap_or_default(), None)?;
    }
    Ok(())
}

fn measure<B: GenericStep>(
    backend: &B,
    chosen: Chosen,
    cfg: &TrainConfig,
    spec: &ProblemSpec,
    args: &BenchArgs,
) -> Result<Record, CliError> {
    let mut trainer = Trainer::with_problem(backend, cfg.clone(), spec, None)?;
    for _ in 0..args.warmup {
        trainer.step();
    }
    if args.warmup > 0 {
        // Reading the loss waits for the warm-up work, so none of it lands in the timed part.
        pollster::block_on(trainer.loss())?;
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        trainer.step();
    }
    // One read-back at the end, as a run that logs rarely would; it also waits for the device.
    let final_loss = pollster::block_on(trainer.loss())?;
    let seconds = start.elapsed().as_secs_f64();
    let eval = if args.eval {
        Some(pollster::block_on(trainer.evaluate())?)
    } else {
        None
    };
    let cost = trainer.step_cost();
    let per_second = args.steps as f64 / seconds;
    Ok(Record {
        flops_per_step: cost.flops,
        bytes_per_step: cost.bytes,
        achieved_gflops: cost.flops * per_second / 1e9,
        achieved_gbytes_per_second: cost.bytes * per_second / 1e9,
        backend: chosen.name(),
        equation: cfg.equation.clone(),
        dim: cfg.dim,
        batch: cfg.batch,
        rand_dims: cfg.rand_dims,
        width: cfg.width,
        depth: cfg.depth,
        estimator: cfg.estimator.name(),
        collapsed: cfg.collapsed,
        steps: args.steps,
        warmup: args.warmup,
        seconds,
        steps_per_second: args.steps as f64 / seconds,
        ms_per_step: seconds * 1e3 / args.steps as f64,
        peak_memory_bytes: system::peak_memory_bytes(),
        final_loss,
        rel_l2: eval.map(|e| e.rel_l2),
        rel_l1: eval.map(|e| e.rel_l1),
        seed: cfg.seed,
        commit: system::git_commit(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// Fails before any work if `path` exists with a header other than [`CSV_HEADER`].
/// Opens `--csv` (checking that an existing file has `header`) and `--json`; on an error, neither
/// is left behind.
fn open_outputs(
    args: &BenchArgs,
    header: &str,
) -> Result<(Option<Output>, Option<Output>), CliError> {
    let csv = args
        .csv
        .as_deref()
        .map(|p| Output::open("csv", p))
        .transpose()?;
    let opened = match &csv {
        Some(out) => check_csv_header(&out.path, header),
        None => Ok(()),
    }
    .and_then(|()| {
        args.json
            .as_deref()
            .map(|p| Output::open("json", p))
            .transpose()
    });
    match opened {
        Ok(json) => Ok((csv, json)),
        Err(e) => {
            csv.into_iter().for_each(Output::discard);
            Err(e)
        }
    }
}

/// Fails before any work if `path` exists with a header other than `header`.
fn check_csv_header(path: &Path, header: &str) -> Result<(), CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.lines().next() {
            None => Ok(()),
            Some(first) if first == header => Ok(()),
            Some(_) => Err(CliError::CsvHeader {
                path: path.to_path_buf(),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::OutputFile {
            flag: "csv",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// One `V` of a sweep; the sweep's CSV columns are its fields in this order (maps as
/// `name=value` joined by `;`).
#[derive(Debug, Serialize)]
struct SweepRecord {
    backend: &'static str,
    equation: String,
    dim: usize,
    batch: usize,
    rand_dims: usize,
    width: usize,
    depth: usize,
    estimator: &'static str,
    collapsed: bool,
    steps: u64,
    warmup: u64,
    seed: u64,
    commit: String,
    unix_time: u64,
    /// Seconds of the timed steps (without evaluations and variance measurements).
    train_seconds: f64,
    steps_per_second: f64,
    /// Seconds spent measuring the direction variance.
    variance_seconds: f64,
    /// Measurements of the direction variance.
    variance_measurements: usize,
    /// Mean over the measurements of the loss's variance over its directions.
    loss_variance: Option<f64>,
    /// Mean over the measurements of `√loss_var / loss`.
    loss_relative_sd: Option<f64>,
    /// Per random term: the mean over the measurements of its estimate's variance (mean over
    /// points).
    term_variance: BTreeMap<String, f64>,
    /// Per random term: the mean over the measurements of `√(variance / mean squared estimate)`.
    term_relative_sd: BTreeMap<String, f64>,
    final_rel_l2: f64,
    /// The error every `V` of the sweep reached by its end: the largest final error.
    target_rel_l2: f64,
    /// Training seconds until an evaluation first reached `target_rel_l2`.
    seconds_to_target: Option<f64>,
    /// Steps until then.
    steps_to_target: Option<u64>,
    /// `(step, training seconds, rel L2)` of every evaluation.
    evaluations: Vec<(u64, f64, f64)>,
}

const SWEEP_CSV_HEADER: &str = "backend,equation,dim,batch,rand_dims,width,depth,estimator,\
collapsed,steps,warmup,seed,commit,unix_time,train_seconds,steps_per_second,variance_seconds,\
variance_measurements,loss_variance,loss_relative_sd,term_variance,term_relative_sd,final_rel_l2,\
target_rel_l2,seconds_to_target,steps_to_target";

/// Evaluations of the test error per `V` of a sweep (besides the last step).
const SWEEP_EVALUATIONS: u64 = 10;

/// Variance measurements per `V` of a sweep when `--variance-every` is not given.
const SWEEP_MEASUREMENTS: u64 = 20;

impl SweepRecord {
    fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let map = |m: &BTreeMap<String, f64>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        [
            self.backend.to_string(),
            self.equation.clone(),
            self.dim.to_string(),
            self.batch.to_string(),
            self.rand_dims.to_string(),
            self.width.to_string(),
            self.depth.to_string(),
            self.estimator.to_string(),
            self.collapsed.to_string(),
            self.steps.to_string(),
            self.warmup.to_string(),
            self.seed.to_string(),
            self.commit.clone(),
            self.unix_time.to_string(),
            self.train_seconds.to_string(),
            self.steps_per_second.to_string(),
            self.variance_seconds.to_string(),
            self.variance_measurements.to_string(),
            opt(self.loss_variance),
            opt(self.loss_relative_sd),
            map(&self.term_variance),
            map(&self.term_relative_sd),
            self.final_rel_l2.to_string(),
            self.target_rel_l2.to_string(),
            opt(self.seconds_to_target),
            self.steps_to_target
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ]
        .join(",")
    }
}

/// `stde bench --sweep-rand-dims V1,V2,…`: every `V` is checked before any work, then trained in
/// turn on the same seed.
fn sweep(args: &BenchArgs, list: &[usize]) -> Result<(), CliError> {
    let (mut base, settings) =
        config::resolve(&cli_defaults(), &RunSettings::default(), &args.cfg)?;
    base.steps = args
        .warmup
        .checked_add(args.steps)
        .ok_or_else(|| CliError::Flag {
            flag: "warmup",
            reason: "--warmup plus --steps exceeds the largest step count".into(),
        })?;
    base.eval_every = base.steps;
    let (spec, _) = crate::problem::load(&base, None)?;
    crate::problem::apply_defaults(&mut base, &spec, &args.cfg);
    if base.estimator == stde_core::train::EstimatorKind::Exact {
        return Err(CliError::Flag {
            flag: "sweep-rand-dims",
            reason: "the exact estimator takes every direction whatever V is; sweep with \
                     --estimator sparse or dense"
                .into(),
        });
    }
    let every = match args.variance_every {
        Some(VarianceEvery::Every(0)) => {
            return Err(CliError::Flag {
                flag: "variance-every",
                reason: "must be at least 1 (or off)".into(),
            })
        }
        Some(VarianceEvery::Every(n)) => Some(n),
        Some(VarianceEvery::Off) => None,
        None => Some((args.steps / SWEEP_MEASUREMENTS).max(1)),
    };
    let mut configs = Vec::new();
    for &v in list {
        let cfg = TrainConfig {
            rand_dims: v,
            ..base.clone()
        };
        check_limits(&cfg)
            .and_then(|()| Ok(stde_core::trainer::check_config(&cfg, &spec).map(drop)?))
            .map_err(|e| {
                // The plan's message names the flag of a single run; the sweep names its V.
                let message = e.to_string();
                let prefix = format!("--rand-dims {v}: ");
                CliError::Flag {
                    flag: "sweep-rand-dims",
                    reason: format!(
                        "V = {v}: {}",
                        message.strip_prefix(&prefix).unwrap_or(&message)
                    ),
                }
            })?;
        configs.push(cfg);
    }
    let (mut csv, mut json) = open_outputs(args, SWEEP_CSV_HEADER)?;
    let chosen = settings.backend.unwrap_or_default().resolve();
    say!(
        "sweep over V: {} d={} batch={} {} width={} depth={} seed={}{} on {}: {} steps per V after \
         {} warm-up steps; variance {}, test error every {} steps",
        base.equation,
        base.dim,
        base.batch,
        base.estimator.name(),
        base.width,
        base.depth,
        base.seed,
        if base.collapsed { "" } else { " (not collapsed)" },
        chosen.name(),
        args.steps,
        args.warmup,
        every.map_or_else(|| "off".into(), |n| format!("every {n} steps")),
        (args.steps / SWEEP_EVALUATIONS).max(1),
    );
    let mut records = Vec::new();
    for cfg in &configs {
        let measured =
            (|| with_backend!(chosen, b => sweep_one(b, chosen, cfg, &spec, args, every)))();
        match measured {
            Ok(r) => records.push(r),
            Err(e) => {
                csv.into_iter().chain(json).for_each(Output::discard);
                return Err(e);
            }
        }
    }
    // The error every V reached by its end; how long each took to first reach it.
    let target = records
        .iter()
        .map(|r| r.final_rel_l2)
        .fold(f64::NEG_INFINITY, f64::max);
    for r in &mut records {
        r.target_rel_l2 = target;
        if let Some(&(step, seconds, _)) = r.evaluations.iter().find(|e| e.2 <= target) {
            r.seconds_to_target = Some(seconds);
            r.steps_to_target = Some(step);
        }
    }
    print_sweep(&records, target);
    for r in &records {
        if let Some(out) = &mut csv {
            out.append(&r.csv_row(), Some(SWEEP_CSV_HEADER))?;
        }
        if let Some(out) = &mut json {
            out.append(&serde_json::to_string(r).unwrap_or_default(), None)?;
        }
    }
    Ok(())
}

/// One direction-variance measurement of a sweep.
struct Measurement {
    loss: f64,
    loss_variance: f64,
    /// Per term; `None` for a deterministic term.
    terms: Vec<Option<TermMeasurement>>,
}

/// One term's part of a [`Measurement`].
struct TermMeasurement {
    variance: f64,
    relative: Option<f64>,
}

/// Trains one `V` of a sweep: warm-up, then the timed steps with variance measurements and test
/// evaluations outside the timing.
fn sweep_one<B: GenericStep>(
    backend: &B,
    chosen: Chosen,
    cfg: &TrainConfig,
    spec: &ProblemSpec,
    args: &BenchArgs,
    every: Option<u64>,
) -> Result<SweepRecord, CliError> {
    let mut trainer = Trainer::with_problem(backend, cfg.clone(), spec, None)?;
    for _ in 0..args.warmup {
        trainer.step();
    }
    if args.warmup > 0 {
        pollster::block_on(trainer.loss())?;
    }
    let measuring = trainer.variance_support().is_measured();
    let eval_every = (args.steps / SWEEP_EVALUATIONS).max(1);
    let mut train = Duration::ZERO;
    let mut variance_time = Duration::ZERO;
    let mut measurements: Vec<Measurement> = Vec::new();
    let mut evaluations = Vec::new();
    for i in 1..=args.steps {
        let measure = measuring && every.is_some_and(|n| i % n == 0);
        let evaluate = i % eval_every == 0 || i == args.steps;
        let start = Instant::now();
        if measure {
            trainer.accumulate_gradient();
            // Waits for the step, so the measurement is timed apart from it.
            let loss = pollster::block_on(trainer.loss())?;
            train += start.elapsed();
            let timer = Instant::now();
            if let Some(v) = pollster::block_on(trainer.direction_variance())? {
                let terms = (0..v.term_variance.len())
                    .map(|k| {
                        v.term_variance[k].map(|variance| TermMeasurement {
                            variance,
                            relative: v.relative_term_variance(k),
                        })
                    })
                    .collect();
                measurements.push(Measurement {
                    loss,
                    loss_variance: v.loss_variance,
                    terms,
                });
            }
            variance_time += timer.elapsed();
            let resume = Instant::now();
            trainer.apply_update();
            train += resume.elapsed();
        } else {
            trainer.step();
            if evaluate {
                pollster::block_on(trainer.loss())?;
            }
            train += start.elapsed();
        }
        if evaluate {
            let e = pollster::block_on(trainer.evaluate())?;
            evaluations.push((i, train.as_secs_f64(), e.rel_l2));
        }
    }
    let seconds = train.as_secs_f64();
    let mean = |values: Vec<f64>| -> Option<f64> {
        let finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
    };
    let mut term_variance = BTreeMap::new();
    let mut term_relative_sd = BTreeMap::new();
    for (k, name) in trainer.plan().terms.iter().enumerate() {
        let of = |f: fn(&TermMeasurement) -> Option<f64>| {
            mean(
                measurements
                    .iter()
                    .filter_map(|m| m.terms[k].as_ref().and_then(f))
                    .collect(),
            )
        };
        if let Some(v) = of(|t| Some(t.variance)) {
            term_variance.insert(name.clone(), v);
        }
        if let Some(v) = of(|t| t.relative.map(f64::sqrt)) {
            term_relative_sd.insert(name.clone(), v);
        }
    }
    let final_rel_l2 = evaluations.last().map_or(f64::NAN, |e| e.2);
    Ok(SweepRecord {
        backend: chosen.name(),
        equation: cfg.equation.clone(),
        dim: cfg.dim,
        batch: cfg.batch,
        rand_dims: cfg.rand_dims,
        width: cfg.width,
        depth: cfg.depth,
        estimator: cfg.estimator.name(),
        collapsed: cfg.collapsed,
        steps: args.steps,
        warmup: args.warmup,
        seed: cfg.seed,
        commit: system::git_commit(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        train_seconds: seconds,
        steps_per_second: args.steps as f64 / seconds,
        variance_seconds: variance_time.as_secs_f64(),
        variance_measurements: measurements.len(),
        loss_variance: mean(measurements.iter().map(|m| m.loss_variance).collect()),
        loss_relative_sd: mean(
            measurements
                .iter()
                .map(|m| m.loss_variance.sqrt() / m.loss.abs())
                .collect(),
        ),
        term_variance,
        term_relative_sd,
        final_rel_l2,
        target_rel_l2: f64::NAN,
        seconds_to_target: None,
        steps_to_target: None,
        evaluations,
    })
}

/// The sweep's table on stdout.
fn print_sweep(records: &[SweepRecord], target: f64) {
    let terms: Vec<String> = records
        .iter()
        .flat_map(|r| r.term_relative_sd.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let sci = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2e}"));
    let mut head = format!("{:>7} {:>9}", "V", "steps/s");
    for t in &terms {
        head.push_str(&format!(
            " {:>11} {:>11}",
            format!("var({t})"),
            format!("sd/rms({t})")
        ));
    }
    head.push_str(&format!(
        " {:>10} {:>10} {:>12} {:>9} {:>12}",
        "var(loss)",
        "sd/loss",
        "final relL2",
        "train s",
        format!("s to {target:.2e}")
    ));
    say!("{head}");
    for r in records {
        let mut line = format!("{:>7} {:>9.1}", r.rand_dims, r.steps_per_second);
        for t in &terms {
            line.push_str(&format!(
                " {:>11} {:>11}",
                sci(r.term_variance.get(t).copied()),
                sci(r.term_relative_sd.get(t).copied())
            ));
        }
        line.push_str(&format!(
            " {:>10} {:>10} {:>12.4e} {:>9.2} {:>12}",
            sci(r.loss_variance),
            sci(r.loss_relative_sd),
            r.final_rel_l2,
            r.train_seconds,
            r.seconds_to_target
                .map_or_else(|| "-".to_string(), |s| format!("{s:.2}"))
        ));
        say!("{line}");
    }
    say!(
        "var: mean over the measurements of the variance over the step's random directions \
         (terms: mean over points); sd/rms, sd/loss: relative standard deviations; s to X: \
         training seconds until the test error first reached X, the largest final error of the \
         sweep"
    );
}
