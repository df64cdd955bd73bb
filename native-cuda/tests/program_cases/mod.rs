//! Programs for the tests of generated CUDA C (`tests/nvrtc_programs.rs`, `tests/emulated.rs`):
//! hand-built ones that together use every op, function and reduction kind in both bodies, every
//! scalar/series mix of the series helpers, window offsets on both sides, fixed coordinates and the
//! time inside loops, empty ranges and max ties; a proptest strategy for random programs on safe
//! domains; and checks of any [`Engine`] (emulated or real) against the f64 interpreter. Inputs come
//! from the counter-based generator, rounded to f32 as the device sees them.

#![allow(dead_code)]

use proptest::prelude::*;
use stde_core::backend::{Backend, ProbeKind, ProgramBackend, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, CheckResult, Tolerance};
use stde_core::program::interp::{self, HostProbes};
use stde_core::program::{conformance, Accumulator, Func, Loop, NodeId, Op, Program, ReduceKind};
use stde_core::rng::Philox;
use stde_cuda::codegen::PointLayout;
use stde_cuda::exec::{Engine, Executor};

/// A node list under construction.
#[derive(Debug, Default)]
pub struct Nodes(pub Vec<Op>);

impl Nodes {
    /// Appends an op and returns its id.
    pub fn push(&mut self, op: Op) -> NodeId {
        self.0.push(op);
        (self.0.len() - 1) as NodeId
    }

    /// `1 + a²`: a positive argument for log, sqrt, quotients and real powers.
    pub fn positive(&mut self, a: NodeId) -> NodeId {
        let one = self.push(Op::Const(1.0));
        let sq = self.push(Op::PowInt(a, 2));
        self.push(Op::Add(one, sq))
    }
}

fn sum(value: NodeId) -> Accumulator {
    Accumulator {
        kind: ReduceKind::Sum,
        value,
    }
}

fn max(value: NodeId) -> Accumulator {
    Accumulator {
        kind: ReduceKind::Max,
        value,
    }
}

/// Windows reading `x[i−1..=i+1]` and parameters on both sides of `i`, every mix of scalar and
/// series operands, a constant accumulated value, a loop that reads only fixed coordinates and the
/// time, an empty loop, and a main body with every function on series and on scalars.
pub fn mixed_operands(dim: u32) -> Program {
    assert!(dim >= 4);
    let mut body = Nodes::default();
    let a = body.push(Op::WinCoord(-1));
    let b = body.push(Op::WinCoord(0));
    let c = body.push(Op::WinCoord(1));
    let p = body.push(Op::WinParam { base: 3, k: -1 });
    let q = body.push(Op::WinParam { base: 3, k: 1 });
    let t = body.push(Op::Time);
    let x0 = body.push(Op::Coord(0));
    let c25 = body.push(Op::Const(2.5));
    let ab = body.push(Op::Mul(a, b)); // series · series
    let s1 = body.push(Op::Add(ab, p)); // series + scalar
    let s2 = body.push(Op::Add(q, s1)); // scalar + series
    let s3 = body.push(Op::Sub(s2, c25)); // series − scalar
    let s4 = body.push(Op::Sub(c25, s3)); // scalar − series
    let s5 = body.push(Op::Mul(p, s4)); // scalar · series
    let three = body.push(Op::Const(3.0));
    let q3 = body.push(Op::Add(q, three)); // scalar
    let s6 = body.push(Op::Div(s5, q3)); // series / scalar
    let pc = body.positive(c);
    let s7 = body.push(Op::Div(p, pc)); // scalar / series
    let s8 = body.push(Op::Add(s6, s7));
    let sn = body.push(Op::Call(Func::Sin, s8));
    let mn = body.push(Op::Min(sn, p)); // series vs scalar
    let tenth = body.push(Op::Const(0.1));
    let mx = body.push(Op::Max(tenth, c)); // scalar vs series
    let b2 = body.push(Op::PowInt(b, 2));
    let onehalf = body.push(Op::Const(1.5));
    let base = body.push(Op::Add(onehalf, b2));
    let pw = body.push(Op::Pow(base, p)); // series ^ scalar
    let qq = body.push(Op::Mul(q, q));
    let two = body.push(Op::Const(2.0));
    let cbase = body.push(Op::Add(two, qq)); // scalar > 0
    let point3 = body.push(Op::Const(0.3));
    let a3 = body.push(Op::Mul(a, point3));
    let pw2 = body.push(Op::Pow(cbase, a3)); // scalar ^ series
    let tx = body.push(Op::Mul(t, x0)); // fixed reads
    let u1 = body.push(Op::Add(mn, mx));
    let u2 = body.push(Op::Add(pw, pw2));
    let u3 = body.push(Op::Mul(u1, u2));
    let term = body.push(Op::Add(u3, tx));
    let pq = body.push(Op::Mul(p, q)); // a constant accumulated value
    let at = body.push(Op::Mul(a, t));
    let window = Loop {
        lo: 1,
        hi: dim - 1,
        nodes: body.0,
        accumulators: vec![sum(term), max(at), sum(pq), max(pq)],
    };
    // Only fixed coordinates and the time: every window moves with coordinate 2 or the time.
    let mut fixed = Nodes::default();
    let x2 = fixed.push(Op::Coord(2));
    let t = fixed.push(Op::Time);
    let w = fixed.push(Op::WinParam { base: 0, k: 0 });
    let x2t = fixed.push(Op::Mul(x2, t));
    let f = fixed.push(Op::Mul(x2t, w));
    let fixed = Loop {
        lo: 0,
        hi: dim,
        nodes: fixed.0,
        accumulators: vec![sum(f)],
    };
    let mut empty = Nodes::default();
    let e = empty.push(Op::WinCoord(0));
    let empty = Loop {
        lo: 2,
        hi: 2,
        nodes: empty.0,
        accumulators: vec![sum(e), max(e)],
    };
    let mut main = Nodes::default();
    let r: Vec<NodeId> = (0..7).map(|a| main.push(Op::Reduced(a))).collect();
    let sq = main.push(Op::Call(Func::Tanh, r[0]));
    let t = main.push(Op::Time);
    let x1 = main.push(Op::Coord(1));
    let k = main.push(Op::Param(1));
    let half = main.push(Op::Const(0.5));
    // The empty max is −∞: seen through a max with a coordinate (a comparison with ∞ has no error).
    let empty_max = main.push(Op::Max(r[6], x1));
    let mut outs = vec![r[0], r[1], r[2], r[3], r[4], r[5], empty_max];
    for f in Func::ALL {
        let arg = match f {
            Func::Log | Func::Sqrt => main.positive(sq),
            _ => sq,
        };
        outs.push(main.push(Op::Call(f, arg)));
        // The same function on a scalar.
        let sarg = match f {
            Func::Log | Func::Sqrt => main.positive(k),
            _ => k,
        };
        outs.push(main.push(Op::Call(f, sarg)));
    }
    let pos = main.positive(x1);
    let inv = main.push(Op::PowInt(pos, -3));
    let zero = main.push(Op::PowInt(x1, 0));
    let pw = main.push(Op::Pow(pos, t));
    let ht = main.push(Op::Mul(half, t));
    let dv = main.push(Op::Div(ht, pos));
    let mn = main.push(Op::Min(x1, sq));
    let mx = main.push(Op::Max(sq, x1));
    let ng = main.push(Op::Neg(mx));
    let sb = main.push(Op::Sub(ng, mn));
    let cst = main.push(Op::Const(-0.375));
    outs.extend([inv, zero, pw, dv, sb, cst, t, k]);
    Program {
        dim,
        has_time: true,
        n_features: 0,
        n_params: dim + 4,
        loops: vec![window, fixed, empty],
        nodes: main.0,
        outputs: outs,
    }
}

/// Every function inside a window body (on series), summed, and a max whose ties (`min(x_i, 1/4)`)
/// must take the first window.
pub fn window_functions(dim: u32) -> Program {
    let mut body = Nodes::default();
    let a = body.push(Op::WinCoord(0));
    let b = body.push(Op::WinCoord(2));
    let ab = body.push(Op::Mul(a, b));
    let mut terms = Vec::new();
    for f in Func::ALL {
        let arg = match f {
            Func::Log | Func::Sqrt => body.positive(ab),
            Func::Abs => a,
            _ => ab,
        };
        terms.push(body.push(Op::Call(f, arg)));
    }
    let mut acc = terms[0];
    for &t in &terms[1..] {
        acc = body.push(Op::Add(acc, t));
    }
    let quarter = body.push(Op::Const(0.25));
    let capped = body.push(Op::Min(a, quarter));
    let neg = body.push(Op::Neg(b));
    let windows = Loop {
        lo: 0,
        hi: dim - 2,
        nodes: body.0,
        accumulators: vec![sum(acc), max(capped), max(neg)],
    };
    let mut main = Nodes::default();
    let s = main.push(Op::Reduced(0));
    let m = main.push(Op::Reduced(1));
    let m2 = main.push(Op::Reduced(2));
    let sm = main.push(Op::Mul(s, m));
    let e = main.push(Op::Call(Func::Exp, m2));
    let out = main.push(Op::Sub(sm, e));
    Program {
        dim,
        has_time: false,
        n_features: 0,
        n_params: 0,
        loops: vec![windows],
        nodes: main.0,
        outputs: vec![out, m, s],
    }
}

/// A main body alone (no loops, no accumulators), with a time column.
pub fn no_loops(dim: u32) -> Program {
    let mut main = Nodes::default();
    let x0 = main.push(Op::Coord(0));
    let xl = main.push(Op::Coord(dim - 1));
    let t = main.push(Op::Time);
    let p = main.push(Op::Param(0));
    let xt = main.push(Op::Mul(x0, t));
    let e = main.push(Op::Call(Func::Exp, xt));
    let s = main.push(Op::Call(Func::Sin, xl));
    let ps = main.push(Op::Mul(p, s));
    let out = main.push(Op::Add(e, ps));
    Program {
        dim,
        has_time: true,
        n_features: 0,
        n_params: 1,
        loops: vec![],
        nodes: main.0,
        outputs: vec![out, t],
    }
}

/// The hand-built programs that run in series mode, by name.
pub fn series_programs() -> Vec<(String, Program)> {
    vec![
        ("mixed-operands d=6".into(), mixed_operands(6)),
        ("mixed-operands d=40".into(), mixed_operands(40)),
        ("window-functions d=5".into(), window_functions(5)),
        ("window-functions d=300".into(), window_functions(300)),
        ("no-loops d=3".into(), no_loops(3)),
        ("pair-windows d=17".into(), conformance::pair_windows(17)),
        (
            "triple-windows-time d=1000".into(),
            conformance::triple_windows_time(1000),
        ),
    ]
}

/// Every hand-built program, by name (the last ones read features: primal mode only).
pub fn all_programs() -> Vec<(String, Program)> {
    let mut v = series_programs();
    v.push(("every-op d=4".into(), conformance::every_op(4)));
    v.push(("every-op d=1".into(), conformance::every_op(1)));
    v
}

/// One random op on earlier values, from raw numbers (so that proptest shrinks them); arguments that
/// need a domain are taken through `1 + a²`, and exponents stay small so that values stay finite.
fn random_op(nodes: &mut Nodes, ids: &[NodeId], (kind, a, b, c): (u8, u16, u16, i8)) -> NodeId {
    let a = ids[a as usize % ids.len()];
    let b = ids[b as usize % ids.len()];
    let op = match kind % 15 {
        0 => Op::Add(a, b),
        1 => Op::Sub(a, b),
        2 => Op::Mul(a, b),
        3 => Op::Neg(a),
        4 => Op::PowInt(a, 1 + i32::from(c.rem_euclid(3))),
        5 => Op::Min(a, b),
        6 => Op::Max(a, b),
        7 => Op::Call(Func::Sin, a),
        8 => Op::Call(Func::Cos, a),
        9 => Op::Call(Func::Tanh, a),
        10 => Op::Call(Func::Atan, a),
        11 => Op::Call(Func::Abs, a),
        12 => {
            let t = nodes.push(Op::Call(Func::Tanh, a));
            Op::Call(Func::Exp, t)
        }
        _ => {
            let pos = nodes.positive(a);
            match c.rem_euclid(5) {
                0 => Op::Call(Func::Log, pos),
                1 => Op::Call(Func::Sqrt, pos),
                2 => Op::Div(b, pos),
                3 => Op::PowInt(pos, -1 - i32::from(c.rem_euclid(2))),
                _ => {
                    let tb = nodes.push(Op::Call(Func::Tanh, b));
                    Op::Pow(pos, tb)
                }
            }
        }
    };
    nodes.push(op)
}

/// The raw numbers of one random op.
type OpSpec = (u8, u16, u16, i8);

/// The raw numbers of one random loop: first offset (−1 or 0), width, start and end trims, whether it
/// reads the time and a fixed coordinate, a constant, its ops, and its accumulators (max or sum, node).
type LoopSpec = (
    bool,
    u8,
    u8,
    u8,
    bool,
    bool,
    i8,
    Vec<OpSpec>,
    Vec<(bool, u16)>,
);

fn op_spec() -> impl Strategy<Value = OpSpec> {
    (any::<u8>(), any::<u16>(), any::<u16>(), any::<i8>())
}

fn loop_spec() -> impl Strategy<Value = LoopSpec> {
    (
        any::<bool>(),
        1u8..=3,
        0u8..=2,
        0u8..=2,
        any::<bool>(),
        any::<bool>(),
        any::<i8>(),
        prop::collection::vec(op_spec(), 1..8),
        prop::collection::vec((any::<bool>(), any::<u16>()), 1..3),
    )
}

/// Random programs without features (they run in both modes): 0–2 loops over windows of width 1–3
/// starting at offset −1 or 0, over dimensions 3–24, with or without a time column.
pub fn arb_program() -> impl Strategy<Value = Program> {
    (
        3u32..=24,
        any::<bool>(),
        prop::collection::vec(loop_spec(), 0..=2),
        prop::collection::vec(op_spec(), 1..10),
        prop::collection::vec(any::<u16>(), 1..=3),
    )
        .prop_map(|(dim, has_time, loops, main_ops, outs)| {
            build_random(dim, has_time, &loops, &main_ops, &outs)
        })
}

fn build_random(
    dim: u32,
    has_time: bool,
    loop_specs: &[LoopSpec],
    main_ops: &[OpSpec],
    outs: &[u16],
) -> Program {
    let n_params = dim + 4;
    let mut loops = Vec::new();
    for (left, width, trim_lo, trim_hi, time, fixed, konst, ops, accs) in loop_specs {
        let first = if *left { -1i32 } else { 0 };
        let width = i32::from(*width);
        let last = first + width - 1;
        let mut body = Nodes::default();
        let mut ids: Vec<NodeId> = (first..=last).map(|k| body.push(Op::WinCoord(k))).collect();
        ids.push(body.push(Op::WinParam { base: 2, k: first }));
        ids.push(body.push(Op::Const(f64::from(*konst) / 16.0)));
        if *time && has_time {
            ids.push(body.push(Op::Time));
        }
        if *fixed {
            ids.push(body.push(Op::Coord(dim / 2)));
        }
        for &spec in ops {
            let id = random_op(&mut body, &ids, spec);
            ids.push(id);
        }
        let lo = (-first) as u32 + u32::from(*trim_lo);
        let hi = (dim as i32 - last) as u32 - u32::from(*trim_hi).min((dim as i32 - last) as u32);
        let accumulators = accs
            .iter()
            .map(|&(is_max, pick)| Accumulator {
                kind: if is_max {
                    ReduceKind::Max
                } else {
                    ReduceKind::Sum
                },
                value: ids[pick as usize % ids.len()],
            })
            .collect();
        loops.push(Loop {
            lo,
            hi: hi.max(lo),
            nodes: body.0,
            accumulators,
        });
    }
    let n_acc: usize = loops.iter().map(|l| l.accumulators.len()).sum();
    let mut main = Nodes::default();
    // Sums grow with the number of windows: squash them so that compositions stay moderate.
    let mut ids: Vec<NodeId> = (0..n_acc as u32)
        .map(|a| {
            let r = main.push(Op::Reduced(a));
            main.push(Op::Call(Func::Tanh, r))
        })
        .collect();
    ids.push(main.push(Op::Coord(dim - 1)));
    ids.push(main.push(Op::Param(1)));
    if has_time {
        ids.push(main.push(Op::Time));
    }
    for &spec in main_ops {
        let id = random_op(&mut main, &ids, spec);
        ids.push(id);
    }
    let outputs = outs
        .iter()
        .map(|&o| ids[ids.len() - 1 - o as usize % ids.len().min(4)])
        .collect();
    Program {
        dim,
        has_time,
        n_features: 0,
        n_params,
        loops,
        nodes: main.0,
        outputs,
    }
}

/// `len` uniforms in `[lo, hi)`, rounded to f32 (as the device sees them), from stream `stream`.
pub fn uniforms(seed: u64, stream: u32, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut out = vec![0.0f32; len];
    Philox::new(seed).fill_uniform_f32(stream, 0, &mut out);
    out.iter()
        .map(|&u| f64::from((lo + (hi - lo) * f64::from(u)) as f32))
        .collect()
}

/// Points with coordinates in `[−0.7, 0.7)` and times in `[0.5, 1.2)`.
pub fn points(seed: u64, n: usize, p: &Program) -> Vec<f64> {
    let stride = p.point_stride();
    let mut pts = uniforms(seed, 1, n * stride, -0.7, 0.7);
    if p.has_time {
        for row in pts.chunks_mut(stride) {
            row[stride - 1] = f64::from((row[stride - 1] / 2.0 + 0.85) as f32);
        }
    }
    pts
}

/// One-hot probes: direction `s` fills slot 1 and, on alternate directions, every other slot, with
/// coordinates spread over the row (the time column included) and coefficients in `[−1, 1)`; two
/// slots of one direction may name the same coordinate.
pub fn one_hot(seed: u64, n_dirs: usize, order: usize, stride: usize) -> HostProbes {
    let draws = uniforms(seed, 2, n_dirs * order * 2, 0.0, 1.0);
    let mut slot_index = Vec::new();
    let mut slot_coeff = Vec::new();
    for s in 0..n_dirs {
        for k in 1..=order {
            let at = (s * order + k - 1) * 2;
            if k == 1 || (s + k) % 2 == 0 {
                slot_index.push(((draws[at] * stride as f64) as usize).min(stride - 1) as u32);
                slot_coeff.push(f64::from((draws[at + 1] * 2.0 - 1.0) as f32));
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

/// Dense probes: `n_dirs` rows of `stride` tangents in `[−1, 1)`.
pub fn dense(seed: u64, n_dirs: usize, order: usize, stride: usize) -> HostProbes {
    HostProbes {
        kind: ProbeKind::Dense,
        slot_index: vec![HostProbes::EMPTY; n_dirs * order],
        slot_coeff: vec![0.0; n_dirs * order],
        dense: uniforms(seed, 3, n_dirs * stride, -1.0, 1.0),
    }
}

/// `v` rounded to f32.
pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Uploads `data` as f32.
pub fn upload<E: Executor>(b: &Engine<E>, data: &[f64]) -> E::F32Buf {
    let mut buf = b.alloc(data.len().max(1), "test input").expect("alloc");
    b.upload(&mut buf, 0, &f32s(data));
    buf
}

/// Downloads `len` values.
pub fn download<E: Executor>(b: &Engine<E>, buf: &E::F32Buf, len: usize) -> Vec<f32> {
    pollster::block_on(b.download(buf, 0, len)).expect("download")
}

/// Inputs of one program: points, features and parameters, rounded to f32.
pub fn inputs(p: &Program, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        points(seed, n, p),
        uniforms(seed, 4, n * p.n_features as usize, -1.0, 1.0),
        uniforms(seed, 5, p.n_params as usize, -1.0, 1.0),
    )
}

/// Primal mode at `n` points in `layout` against the interpreter.
pub fn check_primal<E: Executor>(
    b: &Engine<E>,
    case: &str,
    p: &Program,
    n: usize,
    layout: PointLayout,
) -> CheckResult {
    let (pts, feats, params) = inputs(p, n, 11);
    let expected = interp::run_primal(p, n, &pts, &feats, &params);
    let compiled = b
        .compile_program(p)
        .expect("the program builds")
        .with_layout(layout);
    let (pb, fb, qb) = (upload(b, &pts), upload(b, &feats), upload(b, &params));
    let mut out = b.alloc(expected.len().max(1), "outputs").expect("alloc");
    b.run_program(&compiled, n, &pb, &fb, &qb, &mut out);
    compare(
        &format!("{case} primal {layout:?}"),
        &download(b, &out, expected.len()),
        &f32s(&expected),
        Tolerance::F32,
    )
}

/// Series mode at `order` with `n_dirs` one-hot and dense directions against the interpreter.
pub fn check_series<E: Executor>(
    b: &Engine<E>,
    case: &str,
    p: &Program,
    n: usize,
    order: usize,
    n_dirs: usize,
    layout: PointLayout,
) -> CheckResult {
    let (pts, _, params) = inputs(p, n, 13);
    let shape = JetShape {
        order,
        n_dirs,
        n_points: n,
        width: p.n_outputs(),
        collapsed: false,
    };
    let compiled = b
        .compile_program(p)
        .expect("the program builds")
        .with_layout(layout);
    let (pb, qb) = (upload(b, &pts), upload(b, &params));
    let stride = p.point_stride();
    let seed = (order * 100 + n_dirs) as u64;
    for probes in [
        one_hot(seed, n_dirs, order, stride),
        dense(seed, n_dirs, order, stride),
    ] {
        let expected = interp::run_series(p, shape, &pts, &probes, &params);
        let mut idx = b
            .alloc_idx(probes.slot_index.len().max(1), "slots")
            .expect("alloc");
        b.upload_idx(&mut idx, &probes.slot_index);
        let coeff = upload(b, &probes.slot_coeff);
        let dense = upload(b, &probes.dense);
        let sp = SlotProbes::<Engine<E>> {
            kind: probes.kind,
            slot_index: &idx,
            slot_coeff: &coeff,
            dense: &dense,
        };
        // NaN where the kernel must write: a coefficient it skips fails the comparison.
        let mut out = b.alloc(shape.len().max(1), "series").expect("alloc");
        b.upload(&mut out, 0, &vec![f32::NAN; shape.len()]);
        b.run_program_series(&compiled, shape, &pb, &sp, &qb, &mut out);
        compare(
            &format!(
                "{case} series K={order} V={n_dirs} {:?} {layout:?}",
                probes.kind
            ),
            &download(b, &out, shape.len()),
            &f32s(&expected),
            Tolerance::F32,
        )?;
    }
    Ok(())
}
