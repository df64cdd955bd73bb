//! The two-body sine-Gordon forcing `g = Δu* + sin u*` (and `u*`) built by hand as a [`Program`]:
//! three sums over `i < d − 1` sharing `sin`/`cos` of `θ_i` plus `‖x‖²`, for tests and the speed
//! example.

use stde_core::program::{Accumulator, Func, Loop, NodeId, Op, Program, ReduceKind};

/// Appends `op` and returns its id.
fn push(nodes: &mut Vec<Op>, op: Op) -> NodeId {
    nodes.push(op);
    (nodes.len() - 1) as NodeId
}

/// Outputs `[g, u*]` with `u* = (1 − ‖x‖²) Σ c_i sin θ_i`, `θ_i = x_i + cos x_{i+1} + x_{i+1} cos x_i`,
/// `Δu* = φ·ΔS − 4·x·∇S − 2d·S` (see `stde_core::pde::ExactSolution::TwoBody`); `c` are
/// parameters `0..d−1`.
pub fn two_body_forcing(dim: u32) -> Program {
    let mut b = Vec::new();
    let xa = push(&mut b, Op::WinCoord(0));
    let xb = push(&mut b, Op::WinCoord(1));
    let c = push(&mut b, Op::WinParam { base: 0, k: 0 });
    let one = push(&mut b, Op::Const(1.0));
    let sa = push(&mut b, Op::Call(Func::Sin, xa));
    let ca = push(&mut b, Op::Call(Func::Cos, xa));
    let sb = push(&mut b, Op::Call(Func::Sin, xb));
    let cb = push(&mut b, Op::Call(Func::Cos, xb));
    let bca = push(&mut b, Op::Mul(xb, ca));
    let t1 = push(&mut b, Op::Add(xa, cb));
    let theta = push(&mut b, Op::Add(t1, bca));
    let st = push(&mut b, Op::Call(Func::Sin, theta));
    let ct = push(&mut b, Op::Call(Func::Cos, theta));
    let bsa = push(&mut b, Op::Mul(xb, sa));
    let ta = push(&mut b, Op::Sub(one, bsa));
    let tb = push(&mut b, Op::Sub(ca, sb));
    let taa = push(&mut b, Op::Neg(bca));
    let tbb = push(&mut b, Op::Neg(cb));
    let s_ab = push(&mut b, Op::Add(taa, tbb));
    let ta2 = push(&mut b, Op::Mul(ta, ta));
    let tb2 = push(&mut b, Op::Mul(tb, tb));
    let q = push(&mut b, Op::Add(ta2, tb2));
    let ct_s = push(&mut b, Op::Mul(ct, s_ab));
    let st_q = push(&mut b, Op::Mul(st, q));
    let lap_term = push(&mut b, Op::Sub(ct_s, st_q));
    let acc_lap = push(&mut b, Op::Mul(c, lap_term));
    let acc_s = push(&mut b, Op::Mul(c, st));
    let ata = push(&mut b, Op::Mul(xa, ta));
    let btb = push(&mut b, Op::Mul(xb, tb));
    let g1 = push(&mut b, Op::Add(ata, btb));
    let ctg = push(&mut b, Op::Mul(ct, g1));
    let acc_xg = push(&mut b, Op::Mul(c, ctg));

    let mut sq = Vec::new();
    let x = push(&mut sq, Op::WinCoord(0));
    let x2 = push(&mut sq, Op::Mul(x, x));

    let mut m = Vec::new();
    let s = push(&mut m, Op::Reduced(0));
    let lap_s = push(&mut m, Op::Reduced(1));
    let xg = push(&mut m, Op::Reduced(2));
    let r2 = push(&mut m, Op::Reduced(3));
    let one = push(&mut m, Op::Const(1.0));
    let phi = push(&mut m, Op::Sub(one, r2));
    let four = push(&mut m, Op::Const(4.0));
    let two_d = push(&mut m, Op::Const(2.0 * f64::from(dim)));
    let a = push(&mut m, Op::Mul(phi, lap_s));
    let bb = push(&mut m, Op::Mul(four, xg));
    let cc = push(&mut m, Op::Mul(two_d, s));
    let a_b = push(&mut m, Op::Sub(a, bb));
    let lap = push(&mut m, Op::Sub(a_b, cc));
    let u = push(&mut m, Op::Mul(phi, s));
    let sin_u = push(&mut m, Op::Call(Func::Sin, u));
    let g = push(&mut m, Op::Add(lap, sin_u));
    let sum = |value| Accumulator {
        kind: ReduceKind::Sum,
        value,
    };
    Program {
        dim,
        has_time: false,
        n_features: 0,
        n_params: dim.saturating_sub(1).max(1),
        loops: vec![
            Loop {
                lo: 0,
                hi: dim.saturating_sub(1),
                nodes: b,
                accumulators: vec![sum(acc_s), sum(acc_lap), sum(acc_xg)],
            },
            Loop {
                lo: 0,
                hi: dim,
                nodes: sq,
                accumulators: vec![sum(x2)],
            },
        ],
        nodes: m,
        outputs: vec![g, u],
    }
}
