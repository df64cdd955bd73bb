//! The residual-gradient (gPINN) loss `w·(r² + C·mean_j (∂_j r)²)` of the two-body problems, checked against
//! an independent computation: the model evaluated in f64 by `Mlp::eval`, the Laplacian and the
//! residual's gradient by nested central finite differences, the forcing in closed form (`pde.rs`).

use stde_core::backend::reference::ReferenceBackend;
use stde_core::mlp::Mlp;
use stde_core::pde::Problem;
use stde_core::rng::{self, streams};
use stde_core::step_plan::StepPlan;
use stde_core::train::{initial_params_for, EstimatorKind, TrainConfig, Trainer};

/// `C` of the shipped gPINN problems.
const GRADIENT_WEIGHT: f64 = 0.1;

fn config(equation: &str, estimator: EstimatorKind, rand_dims: usize) -> TrainConfig {
    TrainConfig {
        equation: equation.into(),
        dim: 3,
        steps: 10,
        batch: 4,
        rand_dims,
        estimator,
        width: 8,
        depth: 3,
        seed: 7,
        test_points: 10,
        ..TrainConfig::default()
    }
}

/// The first step's residual points, as the trainer draws them (f32, widened).
fn residual_points(cfg: &TrainConfig) -> Vec<f64> {
    let mut pts = vec![0.0f32; cfg.batch * cfg.dim];
    rng::sample_ball_points(
        cfg.seed,
        streams::RESIDUAL_POINTS,
        0,
        cfg.batch,
        cfg.dim,
        &mut pts,
    );
    pts.iter().map(|&p| f64::from(p)).collect()
}

/// The residual `Δu + f(u) − g` of the model `u = (1 − ‖x‖²)·MLP(x)` and of the closed-form
/// forcing, with the Laplacian by central differences.
struct Residual {
    mlp: Mlp,
    problem: Problem,
}

impl Residual {
    fn new(cfg: &TrainConfig, params: Vec<f64>) -> Self {
        let base = cfg.equation.trim_end_matches("-gpinn");
        let mut problem = Problem::from_kind(base.parse().unwrap(), cfg.dim, cfg.seed).unwrap();
        // The device holds the coefficients in f32.
        for c in &mut problem.coeffs {
            *c = f64::from(*c as f32);
        }
        Self {
            mlp: Mlp {
                shape: cfg.mlp_shape(),
                params,
            },
            problem,
        }
    }

    fn u(&self, x: &[f64]) -> f64 {
        let r2: f64 = x.iter().map(|v| v * v).sum();
        (1.0 - r2) * self.mlp.eval(x)[0]
    }

    fn laplacian(&self, x: &[f64]) -> f64 {
        let h = 1e-3;
        let u0 = self.u(x);
        let mut y = x.to_vec();
        let mut sum = 0.0;
        for j in 0..x.len() {
            y[j] = x[j] + h;
            let up = self.u(&y);
            y[j] = x[j] - h;
            let down = self.u(&y);
            y[j] = x[j];
            sum += (up - 2.0 * u0 + down) / (h * h);
        }
        sum
    }

    fn r(&self, x: &[f64]) -> f64 {
        self.laplacian(x) + self.problem.nonlinearity(self.u(x)) - self.problem.forcing(x)
    }

    /// `∂r/∂x_j` by central differences of `r`.
    fn gradient(&self, x: &[f64]) -> Vec<f64> {
        let h = 2e-3;
        (0..x.len())
            .map(|j| {
                let mut y = x.to_vec();
                y[j] = x[j] + h;
                let up = self.r(&y);
                y[j] = x[j] - h;
                (up - self.r(&y)) / (2.0 * h)
            })
            .collect()
    }

    /// The loss `mean(r² + C·mean_j (∂_j r)²)` over row-major points.
    fn loss(&self, points: &[f64], d: usize) -> f64 {
        let n = points.len() / d;
        points
            .chunks(d)
            .map(|x| {
                let g2: f64 = self.gradient(x).iter().map(|g| g * g).sum();
                self.r(x).powi(2) + GRADIENT_WEIGHT * g2 / d as f64
            })
            .sum::<f64>()
            / n as f64
    }
}

fn initial(cfg: &TrainConfig) -> Vec<f64> {
    initial_params_for(cfg, cfg.dim)
        .iter()
        .map(|&p| f64::from(p))
        .collect()
}

#[test]
fn exact_gpinn_loss_and_gradient_match_finite_differences() {
    for equation in ["allen-cahn-two-body-gpinn", "sine-gordon-two-body-gpinn"] {
        let cfg = config(equation, EstimatorKind::Exact, 2);
        let points = residual_points(&cfg);
        let params = initial(&cfg);
        let oracle = Residual::new(&cfg, params.clone());
        let want = oracle.loss(&points, cfg.dim);
        // The gradient term is a real part of the loss, not a rounding error.
        let residual_only: f64 = points
            .chunks(cfg.dim)
            .map(|x| oracle.r(x).powi(2))
            .sum::<f64>()
            / cfg.batch as f64;
        assert!(
            want - residual_only > 0.02 * want,
            "{equation}: {want} vs {residual_only}"
        );

        let backend = ReferenceBackend;
        let mut trainer = Trainer::new(&backend, cfg.clone(), None).unwrap();
        assert_eq!(trainer.plan().n_dirs, cfg.dim * cfg.dim);
        assert_eq!(trainer.plan().order, 7);
        trainer.accumulate_gradient();
        let got = pollster::block_on(trainer.loss()).unwrap();
        assert!(
            (got - want).abs() <= 1e-4 * want,
            "{equation}: loss {got}, finite differences {want}"
        );

        // ∂loss/∂θ against central differences of the independent loss, on the largest entries.
        let grad = pollster::block_on(trainer.gradient()).unwrap();
        let mut order: Vec<usize> = (0..grad.len()).collect();
        order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
        for &p in &order[..4] {
            let delta = 1e-3;
            let mut plus = params.clone();
            plus[p] += delta;
            let mut minus = params.clone();
            minus[p] -= delta;
            let fd = (Residual::new(&cfg, plus).loss(&points, cfg.dim)
                - Residual::new(&cfg, minus).loss(&points, cfg.dim))
                / (2.0 * delta);
            let g = f64::from(grad[p]);
            assert!(
                (g - fd).abs() <= 2e-3 * fd.abs().max(1e-3 * want),
                "{equation}: ∂loss/∂θ[{p}] = {g}, finite differences {fd}"
            );
        }
    }
}

/// Under the sparse estimator, two sides with independent `i` estimate each sampled `∂_j r`; their
/// product, over `Q`, is unbiased for `mean_j (∂_j r)²`. Over many draws at fixed points and
/// parameters, the mean of the loss minus its `r̂²` part (recomputed from the downloaded term
/// estimates) converges to `C·mean (∂_j r)²` over points and coordinates.
#[test]
fn sparse_gpinn_gradient_term_is_unbiased() {
    // One coordinate i per side, then two (the inner sum over a side's i), then two coordinates j.
    for (rand_dims, coordinates) in [(2, 1), (4, 1), (4, 2)] {
        sparse_gradient_term_is_unbiased(rand_dims, coordinates);
    }
}

fn sparse_gradient_term_is_unbiased(rand_dims: usize, coordinates: usize) {
    let cfg = config(
        "allen-cahn-two-body-gpinn",
        EstimatorKind::Sparse,
        rand_dims,
    );
    let (n, d) = (cfg.batch, cfg.dim);
    let points = residual_points(&cfg);
    let oracle = Residual::new(&cfg, initial(&cfg));
    let want: f64 = points
        .chunks(d)
        .map(|x| oracle.gradient(x).iter().map(|g| g * g).sum::<f64>())
        .sum::<f64>()
        * GRADIENT_WEIGHT
        / (n * d) as f64;
    let u: Vec<f64> = points.chunks(d).map(|x| oracle.u(x)).collect();
    let g: Vec<f64> = points
        .chunks(d)
        .map(|x| oracle.problem.forcing(x))
        .collect();

    let backend = ReferenceBackend;
    let text = stde_core::problem::BUILTIN
        .iter()
        .find(|(n, _)| *n == cfg.equation)
        .expect("shipped")
        .1
        .replace(
            "gradient-weight = 0.1",
            &format!("gradient-weight = 0.1\ngradient-coordinates = {coordinates}"),
        );
    let spec = stde_core::problem::read("gpinn.toml", &text).unwrap();
    let mut trainer = Trainer::with_problem(&backend, cfg.clone(), &spec, None).unwrap();
    let plan: &StepPlan = trainer.plan();
    assert_eq!(plan.gradient_pairs().map(|p| p.slots), Some(coordinates));
    assert_eq!(plan.n_dirs, rand_dims);
    let draws = 3000;
    let mut samples = Vec::with_capacity(draws);
    for draw in 0..draws as u32 {
        trainer.accumulate_gradient_with_directions(draw);
        let loss = pollster::block_on(trainer.loss()).unwrap();
        // Term 0 is the Laplacian estimate.
        let lap = pollster::block_on(trainer.term_estimates()).unwrap();
        let r2: f64 = (0..n)
            .map(|p| {
                let r = f64::from(lap[p]) + u[p] - u[p].powi(3) - g[p];
                r * r
            })
            .sum::<f64>()
            / n as f64;
        samples.push(loss - r2);
    }
    let mean = samples.iter().sum::<f64>() / draws as f64;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (draws - 1) as f64;
    let se = (var / draws as f64).sqrt();
    assert!(
        (mean - want).abs() <= 4.0 * se + 1e-3 * want,
        "mean gradient term {mean} ± {se} over {draws} draws, exact {want}"
    );
    eprintln!(
        "V = {rand_dims}, Q = {coordinates}: gradient term: mean {mean} ± {se} over {draws} draws, exact {want}"
    );
    // The draws do vary: this is a test of the estimator, not of a constant.
    assert!(se > 1e-6 * want, "se {se}");
}
