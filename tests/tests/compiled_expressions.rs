//! Random expression trees, parsed, checked, lowered and compiled on every backend (reference, CPU,
//! wgpu), against the f64 evaluation and jet oracle of `stde_core::expr::eval` in primal and series
//! (one-hot and dense) mode.
//!
//! Without a wgpu adapter the wgpu test prints one `skipped: no wgpu adapter (…)` line and returns,
//! unless `STDE_REQUIRE_GPU=1`, which turns that into a failure.

use stde_core::backend::cpu::CpuBackend;
use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{BackendError, ProbeKind, ProgramBackend, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::expr::eval::{eval, eval_series, Env, SeriesEnv};
use stde_core::expr::{check::check, parse, DimExpr, Expr, ParamShape, Scope};
use stde_core::program::lower::lower;
use stde_tests::exprs::{random_text, Rng};
use stde_wgpu::{WgpuBackend, WgpuParams};

/// One random case: expressions, the scope, points (rows of `stride`), parameters.
struct Case {
    text: String,
    exprs: Vec<Expr>,
    scope: Scope,
    points: Vec<f64>,
    params: Vec<f64>,
}

fn case(seed: u64) -> Case {
    let mut rng = Rng(seed);
    let dim = [1usize, 2, 3, 5, 17, 70][rng.below(6)];
    let time = rng.below(2) == 0;
    let scope = Scope {
        dim,
        has_time: time,
        has_solution: false,
        terms: vec![],
        params: vec![("c".into(), ParamShape::Array(DimExpr::dim_plus(0)))],
    };
    let texts: Vec<String> = (0..2)
        .map(|_| random_text(&mut rng, dim, time, 4))
        .collect();
    let exprs = texts
        .iter()
        .map(|t| {
            let parsed =
                parse(t).unwrap_or_else(|e| panic!("generated text does not parse: {t}: {e}"));
            check(&parsed, &scope)
                .unwrap_or_else(|e| panic!("generated text does not check: {t}: {e}"))
        })
        .collect();
    let stride = dim + usize::from(time);
    let n = 3;
    // f32-representable inputs, so that every backend sees the same numbers.
    let points = (0..n * stride)
        .map(|_| f64::from(rng.uniform(-0.8, 0.8) as f32))
        .collect();
    let params = (0..dim)
        .map(|_| f64::from(rng.uniform(-1.0, 1.0) as f32))
        .collect();
    Case {
        text: texts.join(" ; "),
        exprs,
        scope,
        points,
        params,
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn within(got: f32, want: f64, scale: f64, rel: f64) -> bool {
    (f64::from(got) - want).abs() <= rel * (scale + want.abs()) + 1e-6
}

/// The oracle in primal mode: `n_outputs` columns of `n` values.
fn oracle_primal(c: &Case) -> Vec<f64> {
    let stride = c.scope.dim + usize::from(c.scope.has_time);
    let n = c.points.len() / stride;
    let params = [c.params.clone()];
    let mut out = vec![0.0; c.exprs.len() * n];
    for p in 0..n {
        let row = &c.points[p * stride..(p + 1) * stride];
        let env = Env {
            scope: &c.scope,
            x: &row[..c.scope.dim],
            t: if c.scope.has_time {
                row[c.scope.dim]
            } else {
                0.0
            },
            u: 0.0,
            terms: &[],
            params: &params,
        };
        for (o, e) in c.exprs.iter().enumerate() {
            out[o * n + p] = eval(e, &env);
        }
    }
    out
}

/// The oracle in series mode along `x + τ·v_1 + τ²·v_2` for one direction: Taylor coefficients of
/// every output at every point.
fn oracle_series(c: &Case, order: usize, tangent: &[Vec<f64>]) -> Vec<Vec<Vec<f64>>> {
    let stride = c.scope.dim + usize::from(c.scope.has_time);
    let n = c.points.len() / stride;
    let params = [c.params.clone()];
    (0..n)
        .map(|p| {
            let row = &c.points[p * stride..(p + 1) * stride];
            let series: Vec<Vec<f64>> = (0..stride)
                .map(|j| {
                    let mut s = vec![0.0; order + 1];
                    s[0] = row[j];
                    for k in 1..=order {
                        s[k] = tangent[k - 1][j];
                    }
                    s
                })
                .collect();
            let t = if c.scope.has_time {
                series[c.scope.dim].clone()
            } else {
                vec![0.0; order + 1]
            };
            let env = SeriesEnv {
                scope: &c.scope,
                order,
                x: &series[..c.scope.dim],
                t: &t,
                u: &[],
                terms: &[],
                params: &params,
            };
            c.exprs.iter().map(|e| eval_series(e, &env)).collect()
        })
        .collect()
}

fn check_backend<B: ProgramBackend>(b: &B, name: &str, seeds: std::ops::Range<u64>, rel: f64) {
    let mut checked = 0;
    let total = seeds.end - seeds.start;
    for seed in seeds {
        let c = case(seed);
        let want = oracle_primal(&c);
        if want.iter().any(|v| !v.is_finite() || v.abs() > 1e6) {
            continue;
        }
        checked += 1;
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let program = lower(&c.exprs, &c.scope).expect("lowers");
        let compiled = b.compile_program(&program).expect("compiles");
        let stride = program.point_stride();
        let n = c.points.len() / stride;
        let up = |v: &[f64]| {
            let mut buf = b.alloc(v.len().max(1), "test").expect("alloc");
            b.upload(&mut buf, 0, &f32s(v));
            buf
        };
        let (pb, qb, fb) = (up(&c.points), up(&c.params), up(&[0.0]));
        let mut out = b.alloc(want.len(), "out").expect("alloc");
        b.run_program(&compiled, n, &pb, &fb, &qb, &mut out);
        let got = pollster::block_on(b.download(&out, 0, want.len())).expect("download");
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                within(g, w, scale, rel),
                "{name}, seed {seed}: {}\nprimal value {i}: got {g}, oracle {w}",
                c.text
            );
        }
        // Series: one one-hot direction with slots 1 and 2 set, and one dense slot-1 direction.
        let order = 2;
        let mut rng = Rng(seed ^ 0xABCD);
        let (j1, j2) = (rng.below(stride), rng.below(stride));
        let (c1, c2) = (
            f64::from(rng.uniform(0.3, 1.0) as f32),
            f64::from(rng.uniform(-1.0, 1.0) as f32),
        );
        let dense_row: Vec<f64> = (0..stride)
            .map(|_| f64::from(rng.uniform(-1.0, 1.0) as f32))
            .collect();
        for kind in [ProbeKind::OneHot, ProbeKind::Dense] {
            let mut tangent = vec![vec![0.0; stride]; order];
            match kind {
                ProbeKind::OneHot => {
                    tangent[0][j1] += c1;
                    tangent[1][j2] += c2;
                }
                ProbeKind::Dense => tangent[0].clone_from(&dense_row),
            }
            let want = oracle_series(&c, order, &tangent);
            if want
                .iter()
                .flatten()
                .flatten()
                .any(|v| !v.is_finite() || v.abs() > 1e6)
            {
                continue;
            }
            let scale = want
                .iter()
                .flatten()
                .flatten()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            let shape = JetShape {
                order,
                n_dirs: 1,
                n_points: n,
                width: c.exprs.len(),
                collapsed: false,
            };
            let mut idx_buf = b.alloc_idx(2, "idx").expect("alloc");
            b.upload_idx(&mut idx_buf, &[j1 as u32, j2 as u32]);
            let coeff = up(&[c1, c2]);
            let dense = up(&dense_row);
            let probes = SlotProbes::<B> {
                kind,
                slot_index: &idx_buf,
                slot_coeff: &coeff,
                dense: &dense,
            };
            let mut out = b.alloc(shape.len(), "series").expect("alloc");
            b.run_program_series(&compiled, shape, &pb, &probes, &qb, &mut out);
            let got = pollster::block_on(b.download(&out, 0, shape.len())).expect("download");
            for p in 0..n {
                for (o, w) in want[p].iter().enumerate() {
                    for k in 0..=order {
                        let g = got[shape.index(shape.block(k, 0), p, o)];
                        assert!(
                            within(g, w[k], scale, rel),
                            "{name}, seed {seed}, {kind:?}: {}\npoint {p} output {o} coefficient {k}: got {g}, oracle {}",
                            c.text,
                            w[k]
                        );
                    }
                }
            }
        }
    }
    // Cases whose value leaves the f32 range of interest are skipped; most must be checked.
    assert!(
        2 * checked >= total,
        "{name}: only {checked} of {total} random cases were checked"
    );
}

#[test]
fn random_expressions_agree_with_the_oracle_on_the_reference_backend() {
    check_backend(&ReferenceBackend, "reference", 0..300, 1e-6);
}

#[test]
fn random_expressions_agree_with_the_oracle_on_the_cpu_backend() {
    check_backend(&CpuBackend::new(), "cpu", 0..300, 2e-4);
}

/// The wgpu backend with its default kernel family, or `None` (after one `skipped:` line on stderr)
/// when no adapter exists, unless `STDE_REQUIRE_GPU=1`.
fn wgpu_backend() -> Option<WgpuBackend> {
    match pollster::block_on(WgpuBackend::new(WgpuParams::default())) {
        Ok(b) => Some(b),
        Err(BackendError::NoDevice { reason, .. }) => {
            if std::env::var("STDE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("STDE_REQUIRE_GPU=1 but no wgpu adapter is available: {reason}");
            }
            eprintln!("skipped: no wgpu adapter ({reason})");
            None
        }
        Err(e) => panic!("creating the wgpu backend failed: {e}"),
    }
}

/// Generated WGSL on the device, in f32 (every case compiles its own kernels, so fewer seeds than
/// the host backends: a software adapter takes a while to build a pipeline).
#[test]
fn random_expressions_agree_with_the_oracle_on_the_wgpu_backend() {
    let Some(b) = wgpu_backend() else {
        return;
    };
    let name = format!("wgpu ({})", b.describe());
    check_backend(&b, &name, 0..100, 2e-4);
}
