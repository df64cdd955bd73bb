//! End-to-end training of problems that exist only as TOML files under `tests/problems/`: read,
//! planned, compiled and trained on the CPU backend, to an error bar measured against their exact
//! solutions.

use stde_core::backend::cpu::CpuBackend;
use stde_core::problem;
use stde_core::train::{EstimatorKind, TrainConfig};
use stde_core::trainer::Trainer;

fn read(name: &str) -> problem::ProblemSpec {
    let path = format!("{}/problems/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("problem file");
    problem::read(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn train(spec: &problem::ProblemSpec, cfg: TrainConfig) -> f64 {
    let be = CpuBackend::new();
    let mut t = Trainer::with_problem(&be, cfg, spec, None).unwrap_or_else(|e| panic!("{e}"));
    let first = {
        t.step();
        pollster::block_on(t.loss()).expect("loss")
    };
    while !t.finished() {
        t.step();
    }
    let last = pollster::block_on(t.loss()).expect("loss");
    assert!(last < first, "{}: loss {first} → {last}", spec.name);
    pollster::block_on(t.evaluate()).expect("evaluation").rel_l2
}

#[test]
fn poisson_with_soft_boundary_trains_from_its_file() {
    let spec = read("poisson-soft-boundary");
    let cfg = TrainConfig {
        equation: spec.name.clone(),
        dim: 4,
        steps: 1500,
        batch: 64,
        rand_dims: 4,
        estimator: EstimatorKind::Sparse,
        width: 32,
        depth: 3,
        lr: 3e-3,
        test_points: 2000,
        ..TrainConfig::default()
    };
    let err = train(&spec, cfg);
    eprintln!("{}: relative L2 {err:.3e}", spec.name);
    assert!(err < 5e-2, "poisson-soft-boundary: relative L2 {err}");
}

#[test]
fn reaction_on_a_box_trains_from_its_file() {
    let spec = read("reaction-box");
    let cfg = TrainConfig {
        equation: spec.name.clone(),
        dim: 3,
        steps: 1500,
        batch: 64,
        rand_dims: 3,
        estimator: EstimatorKind::Exact,
        width: 32,
        depth: 3,
        lr: 3e-3,
        test_points: 2000,
        ..TrainConfig::default()
    };
    let err = train(&spec, cfg);
    eprintln!("{}: relative L2 {err:.3e}", spec.name);
    assert!(err < 5e-2, "reaction-box: relative L2 {err}");
}
