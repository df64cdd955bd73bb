//! The command line: subcommands and flags (clap derive), and the value types behind them.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stde_core::mlp::Activation;
use stde_core::train::{EstimatorKind, Schedule};

/// Stochastic Taylor Derivative Estimator: train physics-informed networks on high-dimensional PDEs.
#[derive(Debug, Parser)]
#[command(
    name = "stde",
    version,
    about,
    propagate_version = true,
    args_override_self = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a PINN, evaluate it, and write metrics, history, plots and a checkpoint.
    Train(TrainArgs),
    /// Time a fixed number of training steps and record steps/s and peak memory.
    Bench(BenchArgs),
    /// List the problems, estimators and backends.
    List,
    /// Print the probe plan of a problem: jets, slots and orders, contamination analysis,
    /// unbiasedness, and the work of a step.
    Plan(PlanArgs),
    /// Serve the browser page (built by web/build.sh) on 127.0.0.1 and print its address.
    Web(WebArgs),
}

/// `stde plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Configuration flags.
    #[command(flatten)]
    pub cfg: ConfigFlags,
}

/// `stde web`.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Port on 127.0.0.1 (0 picks any free port)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The page's directory (relative to the working directory or the repository root)
    #[arg(long, value_name = "DIR", default_value = "web/www")]
    pub dir: PathBuf,
}

/// A non-negative integer flag. Negative numbers reach this parser (instead of being taken for
/// flags) so that `--steps -5` gets a message about the value, not about an unknown option.
fn count<T: FromStr>(s: &str) -> Result<T, String> {
    if s.trim_start().starts_with('-') {
        return Err("must be a positive integer".into());
    }
    // clap shows the value itself; repeating it here would double a long one.
    s.parse().map_err(|_| {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            format!("too large (at most {})", u64::MAX)
        } else {
            "not a positive integer".into()
        }
    })
}

/// A number flag (`1e8`, `inf`), refusing NaN.
fn number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_nan() => Err("not a number".into()),
        Ok(v) => Ok(v),
        Err(_) => Err("not a number".into()),
    }
}

/// The flags that make up a training configuration, shared by `train` and `bench`. Every one is
/// optional so that a `--config` file can supply it; precedence is defaults < file < flags.
#[derive(Debug, Default, Args)]
pub struct ConfigFlags {
    /// Shipped problem to solve (see `stde list`) [default: sine-gordon-two-body]
    #[arg(long, value_parser = shipped_problem, conflicts_with = "problem")]
    pub equation: Option<String>,
    /// A problem file (TOML, in the problem language) to solve instead of a shipped problem
    #[arg(long, value_name = "FILE")]
    pub problem: Option<PathBuf>,
    /// Dimension d [default: 1000]
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true)]
    pub dim: Option<usize>,
    /// Residual points per step [default: 100]
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Sampled dimensions (sparse) or probe vectors (dense) per step, V [default: 16]
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true)]
    pub rand_dims: Option<usize>,
    /// Estimator of the Laplacian [default: sparse]
    #[arg(long, value_enum)]
    pub estimator: Option<EstimatorArg>,
    /// Hidden width [default: 128]
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true)]
    pub width: Option<usize>,
    /// Number of linear layers [default: 4]
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true)]
    pub depth: Option<usize>,
    /// Hidden activation [default: tanh]
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
    /// Peak learning rate [default: 0.001]
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Learning-rate schedule [default: linear]
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Seed of every random draw (points, probes, solution coefficients, initial weights) [default: 0]
    #[arg(long, value_parser = count::<u64>, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Number of fixed test points for the relative errors [default: 20000]
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true)]
    pub test_points: Option<usize>,
    /// Propagate every top Taylor coefficient instead of their collapsed sum
    #[arg(long)]
    pub no_collapse: bool,
    /// Weight sharing: map every B consecutive coordinates to one feature with one shared
    /// B → 1 linear map and tanh before the MLP (B must divide d) [default: off]
    #[arg(long, value_name = "B", value_parser = count::<usize>, allow_negative_numbers = true)]
    pub share_blocks: Option<usize>,
    /// TOML file with kebab-case configuration keys (e.g. `rand-dims = 16`); flags override it
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Device to compute on [default: auto; a resumed run keeps the backend it was saved from]
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
}

/// `stde train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Configuration flags.
    #[command(flatten)]
    pub cfg: ConfigFlags,
    /// Optimisation steps [default: 10000]
    #[arg(long, value_parser = count::<u64>, allow_negative_numbers = true)]
    pub steps: Option<u64>,
    /// Evaluate the test error every N steps (and at the end) [default: 1000]
    #[arg(long, value_name = "N", value_parser = count::<u64>, allow_negative_numbers = true)]
    pub eval_every: Option<u64>,
    /// Output directory [default: runs/<equation>-d<dim>-<estimator>-s<seed>]
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run whose checkpoint is in DIR (writing into DIR); without configuration
    /// flags or --config, the saved configuration is used
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Write a checkpoint every N steps and at the end [default: at every evaluation and at the end]
    #[arg(long, value_name = "N", value_parser = count::<u64>, allow_negative_numbers = true)]
    pub checkpoint_every: Option<u64>,
    /// Also write a checkpoint once S seconds have passed since the last one; 0: never [default: 60]
    #[arg(long, value_name = "S", value_parser = count::<u64>, allow_negative_numbers = true)]
    pub checkpoint_seconds: Option<u64>,
    /// Read the loss back (for the progress bar and history.csv) every N steps [default: 10]
    #[arg(long, value_name = "N", value_parser = count::<u64>, allow_negative_numbers = true)]
    pub log_every: Option<u64>,
    /// Stop as diverged when a logged loss exceeds its best so far by this factor; inf: never
    /// [default: 1e8]
    #[arg(long, value_name = "X", value_parser = number, allow_negative_numbers = true)]
    pub max_loss_ratio: Option<f64>,
    /// Stop as diverged when an evaluation's relative L2 error exceeds this; inf: never
    /// [default: 1e3]
    #[arg(long, value_name = "X", value_parser = number, allow_negative_numbers = true)]
    pub max_rel_error: Option<f64>,
    /// Measure the variance of the term estimates and of the loss over the step's random
    /// directions every N steps (an extra forward pass on a collapsed plan), or `off`
    /// [default: every 100 steps and the last; none for a deterministic plan]
    #[arg(long, value_name = "N|off", value_parser = variance_every, allow_negative_numbers = true)]
    pub variance_every: Option<VarianceEvery>,
    /// No progress bar; print one line per evaluation instead
    #[arg(long)]
    pub quiet: bool,
    /// Stop after N steps with a checkpoint, as if the process were killed right after saving it
    /// (for testing resumption)
    #[arg(long, value_name = "N", hide = true, value_parser = count::<u64>)]
    pub stop_after: Option<u64>,
}

/// `stde bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Configuration flags.
    #[command(flatten)]
    pub cfg: ConfigFlags,
    /// Timed steps
    #[arg(long, default_value_t = 200, value_parser = count::<u64>, allow_negative_numbers = true)]
    pub steps: u64,
    /// Untimed steps before the timed ones (first-touch allocation, caches, kernel compilation)
    #[arg(long, default_value_t = 20, value_parser = count::<u64>, allow_negative_numbers = true)]
    pub warmup: u64,
    /// Evaluate the relative errors on the test set after the timed steps
    #[arg(long)]
    pub eval: bool,
    /// Append one row to this CSV file (written with a header if new)
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Append one JSON object, on one line, to this file (JSON Lines)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Train once per V in this list (same seed, --steps each after --warmup), measuring the
    /// direction variance and the test error along the way, and print the trade-off table
    #[arg(long, value_name = "V1,V2,...", value_parser = rand_dims_list, conflicts_with = "rand_dims")]
    pub sweep_rand_dims: Option<RandDimsList>,
    /// In a sweep, measure the direction variance every N steps [default: --steps/20]
    #[arg(long, value_name = "N|off", value_parser = variance_every, allow_negative_numbers = true,
          requires = "sweep_rand_dims")]
    pub variance_every: Option<VarianceEvery>,
}

/// How often a run measures the variance over its random directions (`--variance-every`, and
/// `variance-every` in the `[run]` table: an integer or `"off"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarianceEvery {
    /// Every this many steps (0 is refused by validation).
    Every(u64),
    /// Never.
    Off,
}

impl serde::Serialize for VarianceEvery {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VarianceEvery::Every(n) => s.serialize_u64(*n),
            VarianceEvery::Off => s.serialize_str("off"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for VarianceEvery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = VarianceEvery;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a positive number of steps or \"off\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<VarianceEvery, E> {
                Ok(VarianceEvery::Every(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<VarianceEvery, E> {
                u64::try_from(v).map(VarianceEvery::Every).map_err(|_| {
                    E::custom(format!(
                        "{v} is negative: give a positive number of steps or \"off\""
                    ))
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<VarianceEvery, E> {
                variance_every(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `--variance-every`: a count or `off`.
fn variance_every(s: &str) -> Result<VarianceEvery, String> {
    if s.trim() == "off" {
        return Ok(VarianceEvery::Off);
    }
    count::<u64>(s)
        .map(VarianceEvery::Every)
        .map_err(|e| format!("{e}, or off"))
}

/// The values of `V` of a sweep, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandDimsList(pub Vec<usize>);

/// `--sweep-rand-dims`: a comma-separated list of positive counts, none repeated.
fn rand_dims_list(s: &str) -> Result<RandDimsList, String> {
    let values = s
        .split(',')
        .map(|part| {
            let v: usize = count(part.trim())?;
            if v == 0 {
                return Err("every V must be at least 1".to_string());
            }
            Ok(v)
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let mut seen = values.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != values.len() {
        return Err("a V appears twice".into());
    }
    Ok(RandDimsList(values))
}

/// `--estimator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EstimatorArg {
    /// V coordinates without replacement, scaled by d/V
    Sparse,
    /// V Rademacher vectors (Hutchinson), scaled by 1/V
    Dense,
    /// All d coordinates (exact Laplacian)
    Exact,
}

impl From<EstimatorArg> for EstimatorKind {
    fn from(e: EstimatorArg) -> Self {
        match e {
            EstimatorArg::Sparse => EstimatorKind::Sparse,
            EstimatorArg::Dense => EstimatorKind::Dense,
            EstimatorArg::Exact => EstimatorKind::Exact,
        }
    }
}

/// `--schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// Linear decay to zero (the paper's)
    Linear,
    /// Constant
    Constant,
    /// Half a cosine down to zero
    Cosine,
}

impl From<ScheduleArg> for Schedule {
    fn from(s: ScheduleArg) -> Self {
        match s {
            ScheduleArg::Linear => Schedule::Linear,
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine,
        }
    }
}

/// `--activation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActivationArg {
    /// tanh (the paper's)
    Tanh,
    /// sin
    Sin,
}

impl From<ActivationArg> for Activation {
    fn from(a: ActivationArg) -> Self {
        match a {
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Sin => Activation::Sin,
        }
    }
}

/// `--backend` (and `backend` in the `[run]` table of a config file).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum BackendArg {
    /// The fastest available backend: cuda, else a hardware wgpu adapter, else cpu
    #[default]
    Auto,
    /// NVIDIA GPUs through CUDA (cuBLAS and NVRTC kernels)
    Cuda,
    /// Any GPU through wgpu (Vulkan, Metal, DX12), software adapters included
    Wgpu,
    /// Multithreaded f32 on the host
    Cpu,
    /// f64 reference with the obvious loops; slow, for small problems and checking
    Reference,
}

/// `--equation`: the name of a shipped problem.
fn shipped_problem(name: &str) -> Result<String, String> {
    if stde_core::problem::builtin(name).is_some() {
        Ok(name.to_owned())
    } else {
        Err(crate::problem::unknown_problem_hint(name))
    }
}
