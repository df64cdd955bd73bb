//! The problems the page offers: every shipped problem whose run fits a browser tab, each with the
//! dimensions the page allows, the settings its file suggests and the run the page starts it from;
//! and the same description of a problem typed into the page.

use std::sync::OnceLock;

use serde::Serialize;
use stde_core::problem::{self, ProblemSpec};
use stde_core::train::{EstimatorKind, TrainConfig};

use crate::form::{default_config, FormFields, CUSTOM, MAX_DIM};

/// Floating-point operations (as [`stde_core::cost::StepCost`] counts them) a shipped problem's
/// default run may take for the page to offer it: about the work SwiftShader, the software WebGPU
/// adapter, does in a minute and a half, and a small fraction of it on a GPU.
pub const RUN_FLOP_BUDGET: f64 = 2e11;

/// Smallest dimension the page runs: the heatmaps show the slice `(x₁, x₂, 0, …, 0)`.
pub const MIN_DIM: usize = 2;

/// A problem as the page describes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProblemInfo {
    /// Name (the `<option>`'s value for a shipped problem).
    pub name: String,
    /// One line.
    pub description: String,
    /// Smallest `d` the page runs it at.
    pub min_dim: usize,
    /// Largest `d` the page runs it at (the problem's own `max-dim`, or the page's limit).
    pub max_dim: usize,
    /// The end `T` of its time interval, for a time-dependent problem.
    pub time_end: Option<f64>,
    /// Whether it has an exact solution (the test error and the heatmap of `u*`).
    pub exact: bool,
    /// For a problem judged at one point: where, and at which `d` its value is known.
    pub reference: Option<ReferenceInfo>,
    /// The estimator its file suggests, if any.
    pub suggested_estimator: Option<&'static str>,
    /// The `V` its file suggests, if any.
    pub suggested_rand_dims: Option<usize>,
    /// The form the page fills in when it is chosen.
    pub defaults: FormFields,
    /// The file (for "copy into the editor"); empty for a problem typed into the page.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// The point a problem is judged at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferenceInfo {
    /// Every coordinate of the point.
    pub x: f64,
    /// Its time.
    pub t: f64,
    /// The dimensions with a known value, or `None` when the value is known at every `d`.
    pub known_dims: Option<Vec<usize>>,
}

/// The page's run of one shipped problem where the generic one ([`default_run`]) does not suit it:
/// measured with `stde train --backend cpu` (seed 0, width 32, depth 3, batch 64) to end within the
/// rel L2 error noted, in the number of steps given.
///
/// The generic run, measured likewise, ends at 3·10⁻² on the two-body problems, 5·10⁻³ on the
/// three-body ones, 2.4·10⁻² on kdv-2d (d = 2, exact), and within 4·10⁻³ (heat-parabolic,
/// allen-cahn-parabolic) and 1.4·10⁻² (sine-gordon-parabolic) of the reference value of u(0, 0)
/// (d = 10, sparse, V = 10 as their files suggest).
struct Tuned {
    name: &'static str,
    dim: usize,
    estimator: EstimatorKind,
    rand_dims: usize,
    steps: u64,
    lr: f64,
}

const TUNED: [Tuned; 5] = [
    // 3.0·10⁻² after 500 steps (V = 4 at d = 10: 0.21 after 300).
    Tuned {
        name: "advection-diffusion",
        dim: 5,
        estimator: EstimatorKind::Sparse,
        rand_dims: 5,
        steps: 500,
        lr: 1e-2,
    },
    // 3.2·10⁻² after 500 steps; every direction (the exact estimator its file suggests).
    Tuned {
        name: "heat",
        dim: 3,
        estimator: EstimatorKind::Exact,
        rand_dims: 3,
        steps: 500,
        lr: 1e-2,
    },
    // 3.8·10⁻² after 300 steps.
    Tuned {
        name: "third-order-mixed",
        dim: 4,
        estimator: EstimatorKind::Exact,
        rand_dims: 4,
        steps: 300,
        lr: 5e-3,
    },
    // 1.1·10⁻¹ after 300 steps (best 7·10⁻²): fourth-order Gaussian probes are noisy, and 64 of
    // them per step make it the slowest problem the page offers.
    Tuned {
        name: "biharmonic",
        dim: 4,
        estimator: EstimatorKind::Dense,
        rand_dims: 64,
        steps: 300,
        lr: 2e-3,
    },
    // 2.7·10⁻² after 800 steps (0.22 after the 300 of the generic run).
    Tuned {
        name: "kp-2d",
        dim: 2,
        estimator: EstimatorKind::Exact,
        rand_dims: 2,
        steps: 800,
        lr: 1e-2,
    },
];

/// The page's dimensions for `spec`: its own range within [`MIN_DIM`]`..=`[`MAX_DIM`] (empty, with
/// `hi < lo`, for a problem defined below [`MIN_DIM`] only).
pub fn page_dims(spec: &ProblemSpec) -> (usize, usize) {
    let lo = spec.min_dim.max(MIN_DIM);
    let hi = spec.max_dim.unwrap_or(usize::MAX).min(MAX_DIM as usize);
    (lo, hi)
}

/// Why the page cannot run `spec` at any dimension, if it cannot.
pub fn no_page_dims(spec: &ProblemSpec) -> Option<String> {
    let (lo, hi) = page_dims(spec);
    (hi < lo).then(|| {
        format!(
            "`{}` is defined for d = {} … {} only, and the page runs d ≥ {MIN_DIM} (its heatmaps \
             show the plane of x₁ and x₂)",
            spec.name,
            spec.min_dim,
            spec.max_dim.unwrap_or(spec.min_dim)
        )
    })
}

/// The run the page starts `spec` from: the tuned one of a shipped problem, else [`default_config`]
/// at `d = 10` (or the nearest the problem allows, or the smallest with a reference value) with
/// the estimator and `V` its file suggests.
pub fn default_run(spec: &ProblemSpec, shipped: bool) -> TrainConfig {
    let base = TrainConfig {
        equation: spec.name.clone(),
        ..default_config()
    };
    if let Some(t) = TUNED.iter().find(|t| shipped && t.name == spec.name) {
        return TrainConfig {
            dim: t.dim,
            estimator: t.estimator,
            rand_dims: t.rand_dims,
            steps: t.steps,
            lr: t.lr,
            ..base
        };
    }
    let (lo, hi) = page_dims(spec);
    let mut dim = base.dim.clamp(lo, hi.max(lo));
    if let Some(r) = &spec.reference {
        if r.value_at(dim).is_none() {
            if let Some(&(d, _)) = r.by_dim.iter().find(|(d, _)| (lo..=hi).contains(d)) {
                dim = d;
            }
        }
    }
    let estimator = spec.defaults.estimator.unwrap_or(base.estimator);
    let mut rand_dims = spec.defaults.rand_dims.unwrap_or(base.rand_dims);
    if estimator != EstimatorKind::Dense {
        rand_dims = rand_dims.min(dim);
    }
    TrainConfig {
        dim,
        estimator,
        rand_dims,
        ..base
    }
}

/// Describes `spec`; `text` is its file for a shipped problem (empty for the text box's, whose
/// defaults then name [`CUSTOM`] and carry `custom_text`).
pub fn describe(spec: &ProblemSpec, text: &str, custom_text: Option<&str>) -> ProblemInfo {
    let (min_dim, max_dim) = page_dims(spec);
    let cfg = default_run(spec, custom_text.is_none());
    let mut defaults = FormFields::from_config(&cfg, custom_text.unwrap_or(""));
    if custom_text.is_some() {
        defaults.equation = CUSTOM.into();
    }
    ProblemInfo {
        name: spec.name.clone(),
        description: spec.description.clone(),
        min_dim,
        max_dim,
        time_end: spec.time.map(|t| t.end),
        exact: spec.exact.is_some(),
        reference: spec.reference.as_ref().map(|r| ReferenceInfo {
            x: r.x,
            t: r.t,
            known_dims: r
                .value
                .is_none()
                .then(|| r.by_dim.iter().map(|&(d, _)| d).collect()),
        }),
        suggested_estimator: spec.defaults.estimator.map(EstimatorKind::name),
        suggested_rand_dims: spec.defaults.rand_dims,
        defaults,
        text: text.to_string(),
    }
}

/// Floating-point operations of `steps` steps of `fields`' run, as
/// [`stde_core::cost::StepCost::of_plan`] counts a step (the residual's programs included).
///
/// # Errors
/// Why the run cannot start.
pub fn run_flops(fields: &FormFields, spec: &ProblemSpec) -> Result<f64, String> {
    let checked = fields
        .check_against(spec.clone())
        .map_err(|e| e.to_string())?;
    let cfg = &checked.config;
    let (instance, plan) =
        stde_core::trainer::check_config(cfg, spec).map_err(|e| e.to_string())?;
    let ansatz = instance.ansatz_program().map_err(|e| e.to_string())?;
    let loss = stde_core::trainer::loss_program(
        &instance.residual,
        &instance.scope,
        instance.spec.pde.weight,
        cfg.batch,
    )
    .map_err(|e| e.to_string())?;
    let program_flops =
        stde_core::cost::program_flops(&ansatz) + stde_core::cost::program_flops(&loss);
    let step = stde_core::cost::StepCost::of_plan(cfg, &plan, program_flops);
    Ok(step.flops * cfg.steps as f64)
}

/// Whether the page offers a shipped problem: its default run starts (the form's checks, the
/// activation limit among them) and costs at most [`RUN_FLOP_BUDGET`].
///
/// # Errors
/// Why not, in words.
pub fn fits(info: &ProblemInfo, spec: &ProblemSpec) -> Result<f64, String> {
    if let Some(reason) = no_page_dims(spec) {
        return Err(reason);
    }
    let flops = run_flops(&info.defaults, spec)?;
    if flops > RUN_FLOP_BUDGET {
        return Err(format!(
            "its default run takes {flops:.1e} floating-point operations (the page allows \
             {RUN_FLOP_BUDGET:.0e})"
        ));
    }
    Ok(flops)
}

struct Entry {
    info: ProblemInfo,
    spec: ProblemSpec,
}

/// A shipped problem the page leaves out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// Its name.
    pub name: String,
    /// Why, in words.
    pub reason: String,
}

struct Entries {
    offered: Vec<Entry>,
    excluded: Vec<Excluded>,
}

fn entries_all() -> &'static Entries {
    static ENTRIES: OnceLock<Entries> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let mut all = Entries {
            offered: Vec::new(),
            excluded: Vec::new(),
        };
        for (name, text) in problem::BUILTIN {
            let spec = match problem::builtin(name) {
                Some(Ok(spec)) => spec,
                // A shipped file that does not read is a defect the core's tests catch.
                Some(Err(e)) => {
                    all.excluded.push(Excluded {
                        name: name.to_string(),
                        reason: e.to_string(),
                    });
                    continue;
                }
                None => continue,
            };
            let info = describe(&spec, text, None);
            match fits(&info, &spec) {
                Ok(_) => all.offered.push(Entry { info, spec }),
                Err(reason) => all.excluded.push(Excluded {
                    name: name.to_string(),
                    reason,
                }),
            }
        }
        all
    })
}

fn entries() -> &'static [Entry] {
    &entries_all().offered
}

/// The shipped problems the page leaves out, and why.
pub fn excluded() -> &'static [Excluded] {
    &entries_all().excluded
}

/// The shipped problems the page offers, in the order of [`problem::BUILTIN`].
pub fn catalog() -> Vec<&'static ProblemInfo> {
    entries().iter().map(|e| &e.info).collect()
}

/// An offered problem by name.
pub fn info(name: &str) -> Option<&'static ProblemInfo> {
    entries()
        .iter()
        .find(|e| e.info.name == name)
        .map(|e| &e.info)
}

/// The problem of an offered name.
pub fn offered_spec(name: &str) -> Option<ProblemSpec> {
    entries()
        .iter()
        .find(|e| e.info.name == name)
        .map(|e| e.spec.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::{default_fields, EXAMPLE};

    #[test]
    fn every_shipped_problem_the_page_can_show_fits_a_tab() {
        // The only problems left out are those defined below d = 2 alone: every other default run
        // starts and stays within the budget.
        let mut want = Vec::new();
        for (name, _) in problem::BUILTIN {
            let spec = problem::builtin(name).expect("shipped").expect("reads");
            if spec.max_dim.is_some_and(|m| m < MIN_DIM) {
                assert!(no_page_dims(&spec).is_some(), "{name}");
                continue;
            }
            let info = describe(&spec, "", None);
            let flops = fits(&info, &spec).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("{name:<24} {flops:.2e} flops in its default run");
            want.push(name);
        }
        let names: Vec<&str> = catalog().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, want);
        assert_eq!(names.len() + excluded().len(), problem::BUILTIN.len());
        for e in excluded() {
            assert!(e.reason.contains("d ≥ 2"), "{}: {}", e.name, e.reason);
        }
        // The paper's problems and every problem added with the problem language among them.
        for name in [
            "sine-gordon-two-body",
            "heat",
            "biharmonic",
            "heat-parabolic",
        ] {
            assert!(names.contains(&name), "{name}");
        }
    }

    #[test]
    fn each_offer_starts_from_its_own_defaults() {
        for p in catalog() {
            let checked = p
                .defaults
                .to_config()
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let cfg = &checked.config;
            assert_eq!(cfg.equation, p.name);
            assert_eq!(cfg.problem_file, None);
            assert!((p.min_dim..=p.max_dim).contains(&cfg.dim), "{}", p.name);
            assert!(p.min_dim >= MIN_DIM && p.max_dim <= MAX_DIM as usize);
            assert_eq!(
                p.text,
                problem::BUILTIN
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .expect("shipped")
                    .1
            );
            // A problem judged at one point starts at a dimension where its value is known.
            if let Some(r) = &p.reference {
                if let Some(known) = &r.known_dims {
                    assert!(known.contains(&cfg.dim), "{}: d = {}", p.name, cfg.dim);
                }
            }
            // The file's suggestion is taken.
            if let Some(e) = p.suggested_estimator {
                assert_eq!(cfg.estimator.name(), e, "{}", p.name);
            }
        }
        let default = info("sine-gordon-two-body").expect("offered");
        assert_eq!(
            default.defaults,
            FormFields {
                problem_text: String::new(),
                ..default_fields()
            }
        );
    }

    #[test]
    fn sizes_and_judgement_are_described() {
        let tom = info("third-order-mixed").expect("offered");
        assert_eq!((tom.min_dim, tom.max_dim), (2, 64));
        let heat = info("heat").expect("offered");
        // The file allows d = 1; the page's heatmaps need two coordinates.
        assert_eq!((heat.min_dim, heat.max_dim), (2, MAX_DIM as usize));
        assert_eq!(heat.time_end, Some(1.0));
        assert!(heat.exact && heat.reference.is_none());
        let hp = info("heat-parabolic").expect("offered");
        assert!(!hp.exact);
        let r = hp.reference.as_ref().expect("judged at u(0, 0)");
        assert_eq!((r.x, r.t), (0.0, 0.0));
        assert_eq!(r.known_dims.as_deref(), Some(&[10, 100, 1000, 10000][..]));
        assert_eq!(hp.suggested_rand_dims, Some(10));
    }

    #[test]
    fn a_typed_problem_is_described_with_its_defaults() {
        let spec = crate::form::read_text(EXAMPLE).expect("example");
        let p = describe(&spec, "", Some(EXAMPLE));
        assert_eq!(p.defaults.equation, CUSTOM);
        assert_eq!(p.defaults.problem_text, EXAMPLE);
        assert!(p.text.is_empty());
        let checked = p.defaults.to_config().expect("starts");
        assert_eq!(checked.config.equation, spec.name);
    }
}
