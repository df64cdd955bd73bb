//! The conformance suite of compiled programs: every [`ProgramBackend`] runs a fixed set of programs
//! (the shapes of the paper's forcing terms, exact solutions and ansatz factors, every op and
//! function, time columns) and random ones, in primal and series mode, against the f64 interpreter
//! of [`super::interp`].

use super::interp::{self, HostProbes};
use super::{Accumulator, Func, Loop, NodeId, Op, Program, ReduceKind};
use crate::backend::{ProbeKind, ProgramBackend, SlotProbes};
use crate::batch::JetShape;
use crate::conformance::{compare, dl, up, up_idx, CheckResult, Tolerance};
use crate::rng::Philox;

/// A node list under construction.
#[derive(Debug, Default)]
struct Nodes(Vec<Op>);

impl Nodes {
    fn push(&mut self, op: Op) -> NodeId {
        self.0.push(op);
        (self.0.len() - 1) as NodeId
    }
}

/// Deterministic uniforms.
#[derive(Debug)]
struct Draw {
    philox: Philox,
    counter: u32,
}

impl Draw {
    fn new(seed: u64) -> Self {
        Self {
            philox: Philox::new(seed),
            counter: 0,
        }
    }

    fn uniform(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f64> {
        let mut out = vec![0.0f32; len];
        self.counter += 1;
        self.philox.fill_uniform_f32(1001, self.counter, &mut out);
        out.iter().map(|&u| lo + (hi - lo) * f64::from(u)).collect()
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.uniform(1, 0.0, 1.0)[0] * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// `(1 − ‖x‖²)·Σ_{i<d−1} c_i sin(x_i + cos x_{i+1} + x_{i+1} cos x_i)` and a forcing-like
/// combination of three sums sharing `θ_i`, with parameters `c` at offset 0.
pub fn pair_windows(dim: u32) -> Program {
    let mut body = Nodes::default();
    let a = body.push(Op::WinCoord(0));
    let b = body.push(Op::WinCoord(1));
    let c = body.push(Op::WinParam { base: 0, k: 0 });
    let ca = body.push(Op::Call(Func::Cos, a));
    let cb = body.push(Op::Call(Func::Cos, b));
    let bca = body.push(Op::Mul(b, ca));
    let s1 = body.push(Op::Add(a, cb));
    let theta = body.push(Op::Add(s1, bca));
    let sin_t = body.push(Op::Call(Func::Sin, theta));
    let cos_t = body.push(Op::Call(Func::Cos, theta));
    let term = body.push(Op::Mul(c, sin_t));
    let term2 = body.push(Op::Mul(c, cos_t));
    let mut sq = Nodes::default();
    let x = sq.push(Op::WinCoord(0));
    let x2 = sq.push(Op::PowInt(x, 2));
    let mut main = Nodes::default();
    let s = main.push(Op::Reduced(0));
    let s2 = main.push(Op::Reduced(1));
    let r = main.push(Op::Reduced(2));
    let one = main.push(Op::Const(1.0));
    let phi = main.push(Op::Sub(one, r));
    let u = main.push(Op::Mul(phi, s));
    let su = main.push(Op::Call(Func::Sin, u));
    let g = main.push(Op::Add(su, s2));
    Program {
        dim,
        has_time: false,
        n_features: 0,
        n_params: dim.saturating_sub(1).max(1),
        loops: vec![
            Loop {
                lo: 0,
                hi: dim.saturating_sub(1),
                nodes: body.0,
                accumulators: vec![
                    Accumulator {
                        kind: ReduceKind::Sum,
                        value: term,
                    },
                    Accumulator {
                        kind: ReduceKind::Sum,
                        value: term2,
                    },
                ],
            },
            Loop {
                lo: 0,
                hi: dim,
                nodes: sq.0,
                accumulators: vec![Accumulator {
                    kind: ReduceKind::Sum,
                    value: x2,
                }],
            },
        ],
        nodes: main.0,
        outputs: vec![u, g, phi],
    }
}

/// `Σ_{i<d−2} c_i exp(x_i x_{i+1} x_{i+2})`, `atan(max_i x_i)` and `t`-dependent factors, with a time
/// column, parameters `c` at offset 1 and a scalar parameter at 0.
pub fn triple_windows_time(dim: u32) -> Program {
    let mut body = Nodes::default();
    let a = body.push(Op::WinCoord(0));
    let b = body.push(Op::WinCoord(1));
    let e = body.push(Op::WinCoord(2));
    let c = body.push(Op::WinParam { base: 1, k: 0 });
    let ab = body.push(Op::Mul(a, b));
    let p = body.push(Op::Mul(ab, e));
    let ep = body.push(Op::Call(Func::Exp, p));
    let term = body.push(Op::Mul(c, ep));
    let mut mx = Nodes::default();
    let x = mx.push(Op::WinCoord(0));
    let t = mx.push(Op::Time);
    let xt = mx.push(Op::Mul(x, t));
    let xpt = mx.push(Op::Add(x, xt));
    let mut main = Nodes::default();
    let s = main.push(Op::Reduced(0));
    let m = main.push(Op::Reduced(1));
    let t = main.push(Op::Time);
    let k = main.push(Op::Param(0));
    let at = main.push(Op::Call(Func::Atan, m));
    let nt = main.push(Op::Neg(t));
    let kt = main.push(Op::Mul(k, nt));
    let decay = main.push(Op::Call(Func::Exp, kt));
    let out0 = main.push(Op::Mul(decay, s));
    let x0 = main.push(Op::Coord(0));
    let out1 = main.push(Op::Add(at, x0));
    Program {
        dim,
        has_time: true,
        n_features: 0,
        n_params: 1 + dim.saturating_sub(2).max(1),
        loops: vec![
            Loop {
                lo: 0,
                hi: dim.saturating_sub(2),
                nodes: body.0,
                accumulators: vec![Accumulator {
                    kind: ReduceKind::Sum,
                    value: term,
                }],
            },
            Loop {
                lo: 0,
                hi: dim,
                nodes: mx.0,
                accumulators: vec![Accumulator {
                    kind: ReduceKind::Max,
                    value: xpt,
                }],
            },
        ],
        nodes: main.0,
        outputs: vec![out0, out1],
    }
}

/// Every op and function on safe arguments, reading two features (primal mode only).
pub fn every_op(dim: u32) -> Program {
    let mut main = Nodes::default();
    let x0 = main.push(Op::Coord(0));
    let x1 = main.push(Op::Coord(dim.saturating_sub(1)));
    let u = main.push(Op::Feature(0));
    let lap = main.push(Op::Feature(1));
    let one = main.push(Op::Const(1.0));
    let half = main.push(Op::Const(0.5));
    let sq = main.push(Op::PowInt(x0, 2));
    let pos = main.push(Op::Add(one, sq));
    let mut outs = Vec::new();
    for f in Func::ALL {
        let arg = match f {
            Func::Log | Func::Sqrt => pos,
            _ => x1,
        };
        outs.push(main.push(Op::Call(f, arg)));
    }
    let dv = main.push(Op::Div(u, pos));
    let mn = main.push(Op::Min(x0, x1));
    let mxx = main.push(Op::Max(x0, lap));
    let pw = main.push(Op::Pow(pos, half));
    let pi = main.push(Op::PowInt(pos, -3));
    let sb = main.push(Op::Sub(lap, u));
    let ng = main.push(Op::Neg(sb));
    outs.extend([dv, mn, mxx, pw, pi, ng]);
    Program {
        dim,
        has_time: false,
        n_features: 2,
        n_params: 0,
        loops: vec![],
        nodes: main.0,
        outputs: outs,
    }
}

/// A random program with one or two loops over windows of width up to 3, on safe arguments
/// (logs, roots and quotients of `1 + a²`), without features (so it runs in both modes).
pub fn random_program(seed: u64, dim: u32, has_time: bool) -> Program {
    let mut draw = Draw::new(seed);
    let width = (1 + draw.below(3) as u32).min(dim.max(1));
    let mut loops = Vec::new();
    let n_loops = 1 + draw.below(2);
    for l in 0..n_loops {
        let w = if l == 0 { width } else { 1 };
        let mut body = Nodes::default();
        let mut ids: Vec<NodeId> = Vec::new();
        for k in 0..w {
            ids.push(body.push(Op::WinCoord(k as i32)));
        }
        ids.push(body.push(Op::WinParam { base: 0, k: 0 }));
        if has_time {
            ids.push(body.push(Op::Time));
        }
        random_ops(&mut draw, &mut body, &mut ids, 6);
        let last = *ids.last().unwrap_or(&0);
        let kind = if draw.below(4) == 0 {
            ReduceKind::Max
        } else {
            ReduceKind::Sum
        };
        loops.push(Loop {
            lo: 0,
            hi: dim + 1 - w.min(dim + 1),
            nodes: body.0,
            accumulators: vec![Accumulator { kind, value: last }],
        });
    }
    let mut main = Nodes::default();
    // Sums grow with the number of windows: squash them so that random compositions stay finite.
    let mut ids: Vec<NodeId> = (0..n_loops as u32)
        .map(|a| {
            let r = main.push(Op::Reduced(a));
            main.push(Op::Call(Func::Tanh, r))
        })
        .collect();
    ids.push(main.push(Op::Coord(draw.below(dim as usize) as u32)));
    ids.push(main.push(Op::Param(0)));
    if has_time {
        ids.push(main.push(Op::Time));
    }
    random_ops(&mut draw, &mut main, &mut ids, 8);
    let outputs = vec![ids[ids.len() - 1], ids[ids.len() - 2]];
    Program {
        dim,
        has_time,
        n_features: 0,
        n_params: dim.max(1),
        loops,
        nodes: main.0,
        outputs,
    }
}

/// Appends `count` random ops on earlier values, guarding every argument that needs a domain.
fn random_ops(draw: &mut Draw, nodes: &mut Nodes, ids: &mut Vec<NodeId>, count: usize) {
    for _ in 0..count {
        let a = ids[draw.below(ids.len())];
        let b = ids[draw.below(ids.len())];
        let op = match draw.below(12) {
            0 => Op::Add(a, b),
            1 => Op::Sub(a, b),
            2 => Op::Mul(a, b),
            3 => Op::Neg(a),
            4 => Op::PowInt(a, 1 + draw.below(3) as i32),
            5 => Op::Min(a, b),
            6 => Op::Max(a, b),
            7 => Op::Call(Func::Sin, a),
            8 => Op::Call(Func::Tanh, a),
            9 => Op::Call(Func::Atan, a),
            _ => {
                // A function that needs a positive argument, on 1 + a².
                let one = nodes.push(Op::Const(1.0));
                let sq = nodes.push(Op::PowInt(a, 2));
                let pos = nodes.push(Op::Add(one, sq));
                match draw.below(4) {
                    0 => Op::Call(Func::Log, pos),
                    1 => Op::Call(Func::Sqrt, pos),
                    2 => Op::Div(b, pos),
                    _ => {
                        // A bounded exponent keeps the power finite.
                        let tb = nodes.push(Op::Call(Func::Tanh, b));
                        Op::Pow(pos, tb)
                    }
                }
            }
        };
        ids.push(nodes.push(op));
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Random one-hot probes: every direction fills a random subset of slots with coordinates of the
/// row (time included) and random coefficients.
fn random_one_hot(draw: &mut Draw, n_dirs: usize, order: usize, stride: usize) -> HostProbes {
    let mut slot_index = Vec::with_capacity(n_dirs * order);
    let mut slot_coeff = Vec::with_capacity(n_dirs * order);
    for s in 0..n_dirs {
        for k in 1..=order {
            // Slot 1 of every direction is set, so each moves.
            if k == 1 || draw.below(2) == 0 {
                slot_index.push(((s * 7 + k * 3 + draw.below(stride)) % stride) as u32);
                slot_coeff.push(draw.uniform(1, -1.0, 1.0)[0]);
            } else {
                slot_index.push(HostProbes::EMPTY);
                slot_coeff.push(0.0);
            }
        }
    }
    HostProbes {
        kind: ProbeKind::OneHot,
        slot_index,
        slot_coeff,
        dense: vec![0.0],
    }
}

/// Points with coordinates in `[−h, h]`, `h = 0.7·min(1, 3/√d)`, and times in `[0.5, 1.2]`.
fn points(draw: &mut Draw, n: usize, p: &Program) -> Vec<f64> {
    let stride = p.point_stride();
    // Coordinates of unit-ball size: at high d each is about 1/√d, as the samplers draw them (with
    // [−0.7, 0.7]^d, ‖x‖² would be in the hundreds and f32 rounding of u would be magnified past
    // any fair tolerance by the series of sin u).
    let half = 0.7 * (3.0 / f64::from(p.dim.max(1)).sqrt()).min(1.0);
    let mut pts = draw.uniform(n * stride, -half, half);
    if p.has_time {
        for row in pts.chunks_mut(stride) {
            row[stride - 1] = 0.5 + row[stride - 1] * 0.7;
        }
    }
    pts
}

/// Checks one program in primal mode at `n` points.
///
/// # Errors
/// The first output value out of tolerance.
pub fn check_primal<B: ProgramBackend>(
    b: &B,
    case: &str,
    p: &Program,
    n: usize,
    tol: Tolerance,
) -> CheckResult {
    let mut draw = Draw::new(u64::from(p.dim) * 31 + n as u64);
    let pts = points(&mut draw, n, p);
    let feats = draw.uniform(n * p.n_features as usize, -1.0, 1.0);
    let params = draw.uniform(p.n_params as usize, -1.0, 1.0);
    // The reference sees the same f32-rounded inputs as the device.
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| f64::from(x as f32)).collect() };
    let (pts, feats, params) = (round(&pts), round(&feats), round(&params));
    let expected = interp::run_primal(p, n, &pts, &feats, &params);
    let compiled = b.compile_program(p).expect("program compiles");
    let (pb, fb, qb) = (
        up(b, &f32s(&pts)),
        up(b, &f32s(&feats)),
        up(b, &f32s(&params)),
    );
    let mut out = b
        .alloc(expected.len().max(1), "conformance outputs")
        .expect("alloc failed");
    b.run_program(&compiled, n, &pb, &fb, &qb, &mut out);
    let got = dl(b, &out, expected.len());
    compare(&format!("{case} primal"), &got, &f32s(&expected), tol)
}

/// Checks one program in series mode with one-hot and dense probes.
///
/// # Errors
/// The first coefficient out of tolerance.
pub fn check_series<B: ProgramBackend>(
    b: &B,
    case: &str,
    p: &Program,
    n: usize,
    order: usize,
    n_dirs: usize,
    tol: Tolerance,
) -> CheckResult {
    let mut draw = Draw::new(u64::from(p.dim) * 37 + (order * 5 + n_dirs) as u64);
    let stride = p.point_stride();
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| f64::from(x as f32)).collect() };
    let pts = round(&points(&mut draw, n, p));
    let params = round(&draw.uniform(p.n_params as usize, -1.0, 1.0));
    let shape = JetShape {
        order,
        n_dirs,
        n_points: n,
        width: p.n_outputs(),
        collapsed: false,
    };
    let compiled = b.compile_program(p).expect("program compiles");
    let (pb, qb) = (up(b, &f32s(&pts)), up(b, &f32s(&params)));
    for kind in [ProbeKind::OneHot, ProbeKind::Dense] {
        let mut probes = random_one_hot(&mut draw, n_dirs, order, stride);
        probes.slot_coeff = round(&probes.slot_coeff);
        if kind == ProbeKind::Dense {
            probes.kind = ProbeKind::Dense;
            probes.dense = round(&draw.uniform(n_dirs * stride, -1.0, 1.0));
        }
        let expected = interp::run_series(p, shape, &pts, &probes, &params);
        let idx = up_idx(b, &probes.slot_index);
        let coeff = up(b, &f32s(&probes.slot_coeff));
        let dense = up(b, &f32s(&probes.dense));
        let sp = SlotProbes::<B> {
            kind,
            slot_index: &idx,
            slot_coeff: &coeff,
            dense: &dense,
        };
        let mut out = b
            .alloc(shape.len().max(1), "conformance series")
            .expect("alloc failed");
        b.run_program_series(&compiled, shape, &pb, &sp, &qb, &mut out);
        let got = dl(b, &out, shape.len());
        compare(
            &format!("{case} series K={order} V={n_dirs} {kind:?}"),
            &got,
            &f32s(&expected),
            tol,
        )?;
    }
    Ok(())
}

/// The whole suite: fixed programs at dimensions that cross lane and workgroup boundaries, then
/// random programs, in primal and series mode.
///
/// # Errors
/// The first mismatch.
pub fn check_programs<B: ProgramBackend>(b: &B, tol: Tolerance) -> CheckResult {
    for dim in [2u32, 3, 17, 257, 1000] {
        let two = pair_windows(dim);
        check_primal(b, &format!("two-body-like d={dim}"), &two, 5, tol)?;
        check_series(b, &format!("two-body-like d={dim}"), &two, 3, 2, 4, tol)?;
        let three = triple_windows_time(dim.max(3));
        check_primal(b, &format!("three-body-time d={dim}"), &three, 4, tol)?;
        for order in 1..=4 {
            check_series(
                b,
                &format!("three-body-time d={dim}"),
                &three,
                2,
                order,
                3,
                tol,
            )?;
        }
        check_primal(b, &format!("every-op d={dim}"), &every_op(dim), 7, tol)?;
    }
    for seed in 0..24u64 {
        let dim = [1u32, 2, 5, 40, 300][seed as usize % 5];
        let p = random_program(seed, dim, seed % 3 == 0);
        let case = format!("random program seed={seed} d={dim}");
        check_primal(b, &case, &p, 3, tol)?;
        check_series(b, &case, &p, 2, 1 + seed as usize % 4, 2, tol)?;
    }
    Ok(())
}
