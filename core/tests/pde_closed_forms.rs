//! Tests of the PDE suite's closed forms against independent jet evaluations and finite differences.

use stde_core::pde::{Equation, ExactSolution, Problem, ProblemError, ProblemKind};
use stde_core::rng::{sample_ball_points, streams};
use stde_core::series::{self, Unary};

/// Jet length: coefficients c_0, c_1, c_2 of a second-order Taylor series.
const LEN: usize = 3;

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    series::add(a, b, &mut out);
    out
}

fn mul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    series::mul(a, b, &mut out);
    out
}

fn unary(op: Unary, a: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    let mut deriv = vec![0.0; a.len()];
    series::unary_forward(op, a, &mut out, &mut deriv);
    out
}

/// The Taylor series of `u*(x + e_j t)`, built from the definition of `u*` with series arithmetic only.
fn exact_along_axis(p: &Problem, x: &[f64], j: usize) -> Vec<f64> {
    let xs: Vec<Vec<f64>> = x
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let mut s = series::constant(v, LEN);
            if k == j {
                s[1] = 1.0;
            }
            s
        })
        .collect();
    let mut phi = series::constant(1.0, LEN);
    for s in &xs {
        let sq = mul(s, s);
        let mut next = vec![0.0; LEN];
        series::sub(&phi, &sq, &mut next);
        phi = next;
    }
    let mut sum = series::constant(0.0, LEN);
    for (i, &c) in p.coeffs.iter().enumerate() {
        let term = match p.solution {
            ExactSolution::TwoBody => {
                let (a, b) = (&xs[i], &xs[i + 1]);
                // θ = a + cos b + b·cos a
                let theta = add(
                    &add(a, &unary(Unary::Cos, b)),
                    &mul(b, &unary(Unary::Cos, a)),
                );
                unary(Unary::Sin, &theta)
            }
            ExactSolution::ThreeBody => {
                let prod = mul(&mul(&xs[i], &xs[i + 1]), &xs[i + 2]);
                unary(Unary::Exp, &prod)
            }
        };
        sum = add(&sum, &unary(Unary::Scale(c), &term));
    }
    mul(&phi, &sum)
}

/// `(u*, ∇u*, Δu*)` from jets along every axis: `u* = c_0`, `∂_j u* = c_1`, `∂²_j u* = 2·c_2`.
fn jet_reference(p: &Problem, x: &[f64]) -> (f64, Vec<f64>, f64) {
    let mut value = f64::NAN;
    let mut grad = vec![0.0; x.len()];
    let mut lap = 0.0;
    for j in 0..x.len() {
        let s = exact_along_axis(p, x, j);
        value = s[0];
        grad[j] = s[1];
        lap += 2.0 * s[2];
    }
    (value, grad, lap)
}

/// `n` points of the paper's ball sampler, in f64.
fn ball_points(seed: u64, n: usize, d: usize) -> Vec<Vec<f64>> {
    let mut pts = vec![0.0f32; n * d];
    sample_ball_points(seed, streams::TEST_POINTS, 0, n, d, &mut pts);
    pts.chunks(d)
        .map(|p| p.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

/// The nonlinearities written out again, independently of the crate.
fn f_independent(eq: Equation, u: f64) -> f64 {
    match eq {
        Equation::Poisson => 0.0,
        Equation::AllenCahn => u - u.powi(3),
        Equation::SineGordon => u.sin(),
    }
}

#[track_caller]
fn assert_rel(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(
        err <= tol,
        "{what}: got {got}, expected {want} (relative error {err:e} > {tol:e})"
    );
}

#[test]
fn laplacian_matches_jets() {
    for solution in ExactSolution::ALL {
        for (d, n) in [(2, 40), (3, 40), (5, 30), (17, 20), (200, 2)] {
            if d < solution.min_dim() {
                continue;
            }
            let p = Problem::new(Equation::Poisson, solution, d, 11 + d as u64).unwrap();
            for (k, x) in ball_points(d as u64, n, d).iter().enumerate() {
                let (value, grad, lap) = jet_reference(&p, x);
                let case = format!("{} d={d} point {k}", solution.name());
                assert_rel(&format!("Δu* {case}"), p.laplacian(x), lap, 1e-10);
                assert_rel(&format!("u* {case}"), p.exact(x), value, 1e-12);
                let mut g = vec![0.0; d];
                p.gradient(x, &mut g);
                for j in 0..d {
                    assert_rel(&format!("∂_{j}u* {case}"), g[j], grad[j], 1e-12);
                }
            }
        }
    }
}

#[test]
fn laplacian_matches_finite_differences_in_3d() {
    let h = 1e-4;
    for solution in ExactSolution::ALL {
        let p = Problem::new(Equation::AllenCahn, solution, 3, 5).unwrap();
        for x in ball_points(77, 20, 3) {
            let u0 = p.exact(&x);
            let mut fd = 0.0;
            for j in 0..3 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[j] += h;
                xm[j] -= h;
                fd += (p.exact(&xp) - 2.0 * u0 + p.exact(&xm)) / (h * h);
            }
            assert_rel(
                &format!("{} FD Laplacian at {x:?}", solution.name()),
                p.laplacian(&x),
                fd,
                1e-5,
            );
        }
    }
}

#[test]
fn exact_solution_vanishes_on_the_unit_sphere() {
    for solution in ExactSolution::ALL {
        for d in [3, 8, 50] {
            let p = Problem::new(Equation::SineGordon, solution, d, 2).unwrap();
            let scale: f64 = p.coeffs.iter().map(|c| c.abs()).sum();
            for x in ball_points(9, 10, d) {
                let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
                let on_sphere: Vec<f64> = x.iter().map(|v| v / norm).collect();
                let u = p.exact(&on_sphere);
                assert!(
                    u.abs() <= 1e-13 * scale.max(1.0) * d as f64,
                    "{} d={d}: u* = {u} on the sphere",
                    solution.name()
                );
            }
        }
    }
}

#[test]
fn forcing_is_laplacian_plus_nonlinearity() {
    for kind in ProblemKind::ALL {
        let d = 6;
        let p = Problem::from_kind(kind, d, 21).unwrap();
        for x in ball_points(4, 15, d) {
            let (u, _, lap) = jet_reference(&p, &x);
            let want = lap + f_independent(kind.equation, u);
            assert_rel(&format!("g of {kind}"), p.forcing(&x), want, 1e-10);
            assert_rel(
                &format!("g of {kind} (closed forms)"),
                p.forcing(&x),
                p.laplacian(&x) + p.nonlinearity(p.exact(&x)),
                1e-15,
            );
        }
    }
}

#[test]
fn nonlinearity_derivative_matches_finite_differences() {
    let h = 1e-6;
    for eq in Equation::ALL {
        for u in [-2.0, -0.7, 0.0, 0.3, 1.5] {
            assert_eq!(eq.nonlinearity(u), f_independent(eq, u), "{}", eq.name());
            let fd = (eq.nonlinearity(u + h) - eq.nonlinearity(u - h)) / (2.0 * h);
            assert_rel(
                &format!("f' of {} at {u}", eq.name()),
                eq.nonlinearity_deriv(u),
                fd,
                1e-8,
            );
        }
    }
}

#[test]
fn batch_helpers_match_pointwise_for_f32_and_f64() {
    let (n, d) = (12, 9);
    let p = Problem::new(Equation::AllenCahn, ExactSolution::ThreeBody, d, 8).unwrap();
    let mut pts32 = vec![0.0f32; n * d];
    sample_ball_points(6, streams::RESIDUAL_POINTS, 1, n, d, &mut pts32);
    let pts64: Vec<f64> = pts32.iter().map(|&v| f64::from(v)).collect();
    let (u32_, u64_) = (p.exact_batch(&pts32, n), p.exact_batch(&pts64, n));
    let (g32, g64) = (p.forcing_batch(&pts32, n), p.forcing_batch(&pts64, n));
    assert_eq!(u32_, u64_);
    assert_eq!(g32, g64);
    for i in 0..n {
        let x = &pts64[i * d..(i + 1) * d];
        assert_eq!(u64_[i], p.exact(x));
        assert_eq!(g64[i], p.forcing(x));
    }
}

#[test]
fn coefficients_are_seeded_and_sized_per_solution() {
    let a = Problem::new(Equation::Poisson, ExactSolution::TwoBody, 10, 1).unwrap();
    let b = Problem::new(Equation::Poisson, ExactSolution::TwoBody, 10, 1).unwrap();
    let c = Problem::new(Equation::Poisson, ExactSolution::TwoBody, 10, 2).unwrap();
    let t = Problem::new(Equation::Poisson, ExactSolution::ThreeBody, 10, 1).unwrap();
    assert_eq!(a.coeffs.len(), 9);
    assert_eq!(t.coeffs.len(), 8);
    assert_eq!(a.coeffs, b.coeffs);
    assert!(a.coeffs.iter().zip(&c.coeffs).all(|(x, y)| x != y));
    assert_eq!(t.coeffs[..], a.coeffs[..8]);
}

#[test]
fn too_small_dimensions_are_rejected_with_the_minimum() {
    for (solution, dim, min) in [
        (ExactSolution::TwoBody, 0, 2),
        (ExactSolution::TwoBody, 1, 2),
        (ExactSolution::ThreeBody, 2, 3),
    ] {
        let err = Problem::new(Equation::AllenCahn, solution, dim, 0).unwrap_err();
        assert_eq!(err, ProblemError::DimTooSmall { solution, dim, min });
        let msg = err.to_string();
        assert!(
            msg.contains(solution.name()) && msg.contains(&format!(">= {min}")),
            "unhelpful message: {msg}"
        );
    }
    assert!(Problem::new(Equation::AllenCahn, ExactSolution::TwoBody, 2, 0).is_ok());
    assert!(Problem::new(Equation::AllenCahn, ExactSolution::ThreeBody, 3, 0).is_ok());
}

#[test]
fn names_round_trip_for_all_six_problems() {
    let names = Problem::list();
    assert_eq!(
        names,
        [
            "poisson-two-body",
            "allen-cahn-two-body",
            "sine-gordon-two-body",
            "poisson-three-body",
            "allen-cahn-three-body",
            "sine-gordon-three-body",
        ]
    );
    for name in names {
        let kind: ProblemKind = name.parse().unwrap();
        assert_eq!(kind.to_string(), name);
        assert_eq!(Problem::from_kind(kind, 4, 0).unwrap().name(), name);
    }
    let err = "heat-two-body".parse::<ProblemKind>().unwrap_err();
    assert!(err.to_string().contains("sine-gordon-three-body"), "{err}");
}
