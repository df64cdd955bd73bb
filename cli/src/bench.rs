//! `stde bench`: time a fixed number of training steps and record the figures as CSV and JSON.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use stde_core::backend::GenericStep;
use stde_core::problem::ProblemSpec;
use stde_core::train::{TrainConfig, Trainer};

use crate::args::BenchArgs;
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
    let mut csv = args
        .csv
        .as_deref()
        .map(|p| Output::open("csv", p))
        .transpose()?;
    let opened = match &csv {
        Some(out) => check_csv_header(&out.path),
        None => Ok(()),
    }
    .and_then(|()| {
        args.json
            .as_deref()
            .map(|p| Output::open("json", p))
            .transpose()
    });
    let mut json = match opened {
        Ok(json) => json,
        Err(e) => {
            csv.into_iter().for_each(Output::discard);
            return Err(e);
        }
    };
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
        "{} {} d={} batch={} V={} {} width={} depth={}{}: {} steps in {:.3} s",
        record.backend,
        record.equation,
        record.dim,
        record.batch,
        record.rand_dims,
        record.estimator,
        record.width,
        record.depth,
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
fn check_csv_header(path: &Path) -> Result<(), CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.lines().next() {
            None => Ok(()),
            Some(first) if first == CSV_HEADER => Ok(()),
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
