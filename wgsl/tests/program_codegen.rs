//! The WGSL generated from programs parses and validates with naga (no GPU needed) and initialises
//! every function-scope `var` (see `common::vars_without_initializer`): hand-built programs
//! covering every op, function and reduction kind, time columns and orders 1..=6, and random
//! programs from a proptest generator; every kernel's bindings and uniform fields agree with what
//! the host binds and writes; constants are printed exactly; invalid programs are rejected.

mod common;

use proptest::prelude::*;
use stde_core::program::conformance::{
    every_op, pair_windows, random_program, triple_windows_time,
};
use stde_core::program::{Accumulator, Func, Loop, NodeId, Op, Program, ReduceKind};
use stde_wgpu::codegen::{self, f32_literal, ProgramError, ProgramKernel};
use stde_wgpu::kernels::Access;
use wgpu::naga;

/// Every kernel a program can be compiled to, with the order and workgroup size to test.
fn variants(p: &Program, order: usize) -> Vec<(ProgramKernel, usize, u32)> {
    let mut out = vec![
        (ProgramKernel::Primal, 0, 8),
        (ProgramKernel::PrimalGroup, 0, 128),
        (ProgramKernel::Reduce, 0, 64),
        (ProgramKernel::ReduceGroup, 0, 64),
    ];
    if !p.reads_features() {
        out.push((ProgramKernel::Series, order, 8));
        out.push((ProgramKernel::SeriesGroup, order, 128));
    }
    out
}

fn parse_and_validate(case: &str, p: &Program, kernel: ProgramKernel, order: usize, wg: u32) {
    let src = codegen::source(p, kernel, order, wg)
        .unwrap_or_else(|e| panic!("{case}: {} (K = {order}) not generated: {e}", kernel.name()));
    common::assert_vars_initialised(&format!("{case}: {} (K = {order})", kernel.name()), &src);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
        panic!(
            "{case}: {} (K = {order}) does not parse:\n{}",
            kernel.name(),
            e.emit_to_string(&src)
        )
    });
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    if let Err(e) = validator.validate(&module) {
        panic!(
            "{case}: {} (K = {order}) does not validate:\n{}\n{src}",
            kernel.name(),
            e.emit_to_string(&src)
        );
    }
}

fn validate_all(case: &str, p: &Program, orders: &[usize]) {
    for &order in orders {
        for (kernel, k, wg) in variants(p, order) {
            if k == 0 && order != orders[0] {
                continue;
            }
            parse_and_validate(case, p, kernel, k, wg);
        }
    }
}

/// A node list under construction.
#[derive(Default)]
struct Nodes(Vec<Op>);

impl Nodes {
    fn push(&mut self, op: Op) -> NodeId {
        self.0.push(op);
        (self.0.len() - 1) as NodeId
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

/// Loops of every shape: windows reading `x[i − 1], x[i], x[i + 1]` and a parameter array with a
/// negative offset, a fixed coordinate and (with `has_time`) the time in a body, maxima beside sums,
/// a max-only loop, empty ranges of both kinds, a loop whose body never moves, every op and
/// function in the main body, and non-finite constants.
fn every_shape(dim: u32, has_time: bool) -> Program {
    let mut body = Nodes::default();
    let a = body.push(Op::WinCoord(-1));
    let b = body.push(Op::WinCoord(0));
    let c = body.push(Op::WinCoord(1));
    let w = body.push(Op::WinParam { base: 2, k: -1 });
    let f = body.push(Op::Coord(0));
    let t = body.push(if has_time { Op::Time } else { Op::Const(0.25) });
    let ab = body.push(Op::Mul(a, b));
    let abc = body.push(Op::Mul(ab, c));
    let wt = body.push(Op::Mul(w, t));
    let s1 = body.push(Op::Add(abc, wt));
    let s2 = body.push(Op::Mul(s1, f));
    let e = body.push(Op::Call(Func::Exp, s2));
    let mx = body.push(Op::Sub(b, c));
    let shapes = Loop {
        lo: 1,
        hi: dim - 1,
        nodes: body.0,
        accumulators: vec![sum(e), max(mx), sum(s2)],
    };
    let mut mx_body = Nodes::default();
    let x = mx_body.push(Op::WinCoord(0));
    let nx = mx_body.push(Op::Neg(x));
    let max_only = Loop {
        lo: 0,
        hi: dim,
        nodes: mx_body.0,
        accumulators: vec![max(x), max(nx)],
    };
    let empty = Loop {
        lo: 2,
        hi: 2,
        nodes: vec![Op::WinCoord(0)],
        accumulators: vec![sum(0), max(0)],
    };
    let mut st = Nodes::default();
    let p0 = st.push(Op::WinParam { base: 0, k: 0 });
    let p2 = st.push(Op::PowInt(p0, 2));
    let static_loop = Loop {
        lo: 0,
        hi: 2,
        nodes: st.0,
        accumulators: vec![sum(p2)],
    };
    let mut m = Nodes::default();
    let x0 = m.push(Op::Coord(0));
    let x1 = m.push(Op::Coord(dim - 1));
    let tt = m.push(if has_time { Op::Time } else { Op::Const(0.5) });
    let q = m.push(Op::Param(1));
    let reduced: Vec<NodeId> = (0..8).map(|a| m.push(Op::Reduced(a))).collect();
    let one = m.push(Op::Const(1.0));
    let inf = m.push(Op::Const(f64::INFINITY));
    let ninf = m.push(Op::Const(f64::NEG_INFINITY));
    let huge = m.push(Op::Const(1e300));
    let nan = m.push(Op::Const(f64::NAN));
    let sq = m.push(Op::PowInt(x1, 2));
    let pos = m.push(Op::Add(one, sq));
    let mut outs = vec![];
    for func in Func::ALL {
        let arg = match func {
            Func::Log | Func::Sqrt => pos,
            _ => x0,
        };
        outs.push(m.push(Op::Call(func, arg)));
    }
    let ops = [
        Op::Neg(x0),
        Op::Add(x0, q),
        Op::Add(q, x0),
        Op::Sub(x0, tt),
        Op::Sub(q, x0),
        Op::Sub(x0, q),
        Op::Mul(x0, x1),
        Op::Mul(q, x1),
        Op::Div(x0, pos),
        Op::Div(q, pos),
        Op::Div(x0, q),
        Op::Min(x0, x1),
        Op::Min(x0, inf),
        Op::Min(nan, huge),
        Op::Max(reduced[0], ninf),
        Op::Max(q, x1),
        Op::PowInt(x0, 3),
        Op::PowInt(pos, -2),
        Op::PowInt(x0, 0),
        Op::PowInt(pos, i32::MIN),
        Op::Pow(pos, x0),
        Op::Pow(pos, q),
        Op::Pow(q, x0),
        Op::Mul(reduced[1], reduced[7]),
        Op::Add(reduced[2], reduced[3]),
        Op::Sub(reduced[4], reduced[5]),
        Op::Mul(reduced[6], tt),
    ];
    for op in ops {
        outs.push(m.push(op));
    }
    outs.push(reduced[7]);
    outs.push(q);
    Program {
        dim,
        has_time,
        n_features: 0,
        n_params: dim + 4,
        loops: vec![shapes, max_only, empty, static_loop],
        nodes: m.0,
        outputs: outs,
    }
}

#[test]
fn hand_built_programs_validate_at_every_order() {
    let orders: Vec<usize> = (1..=6).collect();
    for has_time in [false, true] {
        for dim in [3u32, 40] {
            let p = every_shape(dim, has_time);
            codegen::check(&p).unwrap_or_else(|e| panic!("every_shape: {e}"));
            validate_all(&format!("every_shape d={dim} t={has_time}"), &p, &orders);
        }
    }
    validate_all("pair_windows", &pair_windows(17), &orders);
    validate_all("triple_windows_time", &triple_windows_time(17), &orders);
    validate_all("every_op (features)", &every_op(5), &[1]);
    for seed in 0..8 {
        let p = random_program(seed, 7, seed % 2 == 0);
        validate_all(
            &format!("random_program {seed}"),
            &p,
            &[1 + seed as usize % 6],
        );
    }
}

#[test]
fn series_mode_rejects_features_and_unsupported_orders() {
    let p = every_op(4);
    assert_eq!(
        codegen::source(&p, ProgramKernel::Series, 2, 8),
        Err(ProgramError::ReadsFeatures)
    );
    let q = pair_windows(4);
    for order in [0, stde_wgpu::kernels::MAX_ORDER + 1] {
        assert_eq!(
            codegen::source(&q, ProgramKernel::Series, order, 8),
            Err(ProgramError::UnsupportedOrder { order })
        );
    }
}

#[test]
fn invalid_programs_are_rejected() {
    let base = pair_windows(5);
    let mut forward = base.clone();
    forward.nodes[0] = Op::Neg(3);
    assert!(matches!(
        codegen::check(&forward),
        Err(ProgramError::ForwardReference { .. })
    ));
    let mut window = base.clone();
    window.loops[0].hi = 5;
    assert!(matches!(
        codegen::check(&window),
        Err(ProgramError::OutOfRange {
            what: "coordinate",
            ..
        })
    ));
    let mut time = base.clone();
    time.nodes.push(Op::Time);
    assert!(matches!(
        codegen::check(&time),
        Err(ProgramError::Misplaced { .. })
    ));
    let mut output = base.clone();
    output.outputs.push(99);
    assert!(matches!(
        codegen::check(&output),
        Err(ProgramError::MissingNode { .. })
    ));
    let mut reduced = base;
    reduced.nodes.push(Op::Reduced(7));
    assert!(matches!(
        codegen::check(&reduced),
        Err(ProgramError::OutOfRange {
            what: "accumulator",
            ..
        })
    ));
}

#[test]
fn program_kernel_bindings_match_the_rust_layout() {
    let p = pair_windows(6);
    for kernel in ProgramKernel::ALL {
        let src = codegen::source(&p, kernel, 2, 64).expect("generated");
        let module = naga::front::wgsl::parse_str(&src).expect("parses");
        let mut storage = Vec::new();
        let mut uniform = None;
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            assert_eq!(binding.group, 0, "{}", kernel.name());
            match var.space {
                naga::AddressSpace::Uniform => uniform = Some((binding.binding, var.ty)),
                naga::AddressSpace::Storage { access } => {
                    let a = if access.contains(naga::StorageAccess::STORE) {
                        Access::ReadWrite
                    } else {
                        Access::Read
                    };
                    storage.push((binding.binding, a));
                }
                other => panic!("{}: unexpected address space {other:?}", kernel.name()),
            }
        }
        storage.sort_by_key(|(b, _)| *b);
        let expected: Vec<(u32, Access)> = kernel
            .bindings()
            .iter()
            .enumerate()
            .map(|(i, &a)| (i as u32 + 1, a))
            .collect();
        assert_eq!(storage, expected, "{}: storage bindings", kernel.name());
        let (slot, ty) = uniform.expect("a uniform block");
        assert_eq!(slot, 0, "{}", kernel.name());
        let naga::TypeInner::Struct { members, .. } = &module.types[ty].inner else {
            panic!("{}: the uniform block is not a struct", kernel.name());
        };
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(names, kernel.param_names(), "{}", kernel.name());
        for (i, m) in members.iter().enumerate() {
            assert_eq!(m.offset, 4 * i as u32, "{}: field {i}", kernel.name());
        }
        let entries: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(entries, ["main"], "{}", kernel.name());
    }
}

/// The f32 value naga reads from a generated literal.
fn parsed_constant(literal: &str) -> f32 {
    let src = format!(
        "fn f32_bits(b: u32) -> f32 {{ return bitcast<f32>(b); }}\nconst C: f32 = {literal};"
    );
    let is_bits = literal.starts_with("f32_bits");
    if is_bits {
        let hex = literal
            .trim_start_matches("f32_bits(0x")
            .trim_end_matches("u)");
        return f32::from_bits(u32::from_str_radix(hex, 16).expect("hex bits"));
    }
    let module = naga::front::wgsl::parse_str(&src).expect("the literal parses");
    let (_, c) = module.constants.iter().next().expect("one constant");
    match module.global_expressions[c.init] {
        naga::Expression::Literal(naga::Literal::F32(v)) => v,
        ref other => panic!("{literal}: not an f32 literal: {other:?}"),
    }
}

proptest! {
    #[test]
    fn f32_literals_are_exact(bits in any::<u32>()) {
        let v = f32::from_bits(bits);
        let lit = f32_literal(f64::from(v));
        let back = parsed_constant(&lit);
        if v.is_nan() {
            prop_assert!(back.is_nan(), "{lit}");
        } else {
            prop_assert_eq!(back.to_bits(), v.to_bits(), "{}", lit);
        }
    }
}

/// One step of a random program: an op code and operand choices, mapped onto valid ops by
/// [`build`].
#[derive(Clone, Debug)]
struct Step {
    code: u8,
    a: u32,
    b: u32,
    n: i32,
}

fn step() -> impl Strategy<Value = Step> {
    (any::<u8>(), any::<u32>(), any::<u32>(), -4i32..=4).prop_map(|(code, a, b, n)| Step {
        code,
        a,
        b,
        n,
    })
}

/// A random loop: window offsets `kmin..=kmax` (each in `−1..=1`), body steps and accumulators.
#[derive(Clone, Debug)]
struct LoopRecipe {
    kmin: i32,
    kmax: i32,
    steps: Vec<Step>,
    accs: Vec<(bool, u32)>,
}

#[derive(Clone, Debug)]
struct Recipe {
    dim: u32,
    has_time: bool,
    loops: Vec<LoopRecipe>,
    main: Vec<Step>,
    outputs: Vec<u32>,
    order: usize,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    let lp = (
        -1i32..=0,
        0i32..=1,
        prop::collection::vec(step(), 1..10),
        prop::collection::vec((any::<bool>(), any::<u32>()), 0..3),
    )
        .prop_map(|(kmin, kmax, steps, accs)| LoopRecipe {
            kmin,
            kmax,
            steps,
            accs,
        });
    (
        1u32..=6,
        any::<bool>(),
        prop::collection::vec(lp, 0..3),
        prop::collection::vec(step(), 1..14),
        prop::collection::vec(any::<u32>(), 1..4),
        1usize..=6,
    )
        .prop_map(|(dim, has_time, loops, main, outputs, order)| Recipe {
            dim,
            has_time,
            loops,
            main,
            outputs,
            order,
        })
}

/// Appends the op of one step to `nodes`: leaves from `leaf` when the step asks for one (or no
/// operand exists yet), else an op on earlier nodes.
fn push_step(nodes: &mut Vec<Op>, s: &Step, leaf: &dyn Fn(&Step) -> Op) {
    let len = nodes.len() as u32;
    if len == 0 || s.code % 24 < 6 {
        nodes.push(leaf(s));
        return;
    }
    let (a, b) = (s.a % len, s.b % len);
    let op = match s.code % 24 {
        6 => Op::Neg(a),
        7 => Op::Add(a, b),
        8 => Op::Sub(a, b),
        9 => Op::Mul(a, b),
        10 => Op::Div(a, b),
        11 => Op::Min(a, b),
        12 => Op::Max(a, b),
        13 => Op::PowInt(a, s.n),
        14 => Op::Pow(a, b),
        c => Op::Call(Func::ALL[(c as usize - 15) % Func::ALL.len()], a),
    };
    nodes.push(op);
}

fn build(r: &Recipe) -> Program {
    let dim = r.dim;
    let n_params = 2 * dim + 4;
    let mut loops = Vec::new();
    let mut n_acc = 0u32;
    for lr in &r.loops {
        let lo = (-lr.kmin) as u32;
        let hi = (dim as i32 - lr.kmax).max(lo as i32) as u32;
        let mut nodes = Vec::new();
        let leaf = |s: &Step| match s.code % 6 {
            0 => Op::Const(f64::from(s.n) * 0.75),
            1 => Op::WinCoord(lr.kmin + (s.a % (lr.kmax - lr.kmin + 1) as u32) as i32),
            2 => Op::WinParam {
                base: dim + 1,
                k: lr.kmin + (s.b % (lr.kmax - lr.kmin + 1) as u32) as i32,
            },
            3 => Op::Coord(s.a % dim),
            4 if r.has_time => Op::Time,
            _ => Op::Param(s.b % n_params),
        };
        for s in &lr.steps {
            push_step(&mut nodes, s, &leaf);
        }
        let len = nodes.len() as u32;
        let accumulators: Vec<Accumulator> = lr
            .accs
            .iter()
            .map(|&(is_max, pick)| Accumulator {
                kind: if is_max {
                    ReduceKind::Max
                } else {
                    ReduceKind::Sum
                },
                value: pick % len,
            })
            .collect();
        n_acc += accumulators.len() as u32;
        loops.push(Loop {
            lo,
            hi,
            nodes,
            accumulators,
        });
    }
    let mut nodes = Vec::new();
    let leaf = |s: &Step| match s.code % 6 {
        0 => Op::Const(f64::from(s.n) * 0.75),
        1 | 2 if n_acc > 0 => Op::Reduced(s.a % n_acc),
        3 => Op::Coord(s.a % dim),
        4 if r.has_time => Op::Time,
        _ => Op::Param(s.b % n_params),
    };
    for s in &r.main {
        push_step(&mut nodes, s, &leaf);
    }
    let len = nodes.len() as u32;
    Program {
        dim,
        has_time: r.has_time,
        n_features: 0,
        n_params,
        loops,
        nodes,
        outputs: r.outputs.iter().map(|o| o % len).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_programs_validate(r in recipe()) {
        let p = build(&r);
        prop_assert_eq!(codegen::check(&p), Ok(()));
        for (kernel, order, wg) in variants(&p, r.order) {
            parse_and_validate("random", &p, kernel, order, wg);
        }
    }
}
