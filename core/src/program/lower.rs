//! Lowering of checked expressions to a [`Program`]: names become feature and parameter slots,
//! reductions over the same range share one loop, equal subexpressions are computed once, and
//! constant subexpressions are folded.

use std::collections::HashMap;

use super::{Accumulator, Loop, NodeId, Op, Program};
use crate::expr::{
    BinOp, DimExpr, Expr, ExprError, ExprErrorKind, ExprKind, Index, ParamShape, Scope, Span,
};

/// Where the problem's names live in a program's inputs: feature 0 is `u`, feature `1 + j` is term
/// `j` of the scope, and parameters are stored back to back in scope order.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Offset and length of every parameter in the flat buffer, in scope order.
    pub params: Vec<(String, u32, u32)>,
    /// Total parameter values.
    pub n_params: u32,
    /// Term names (feature `1 + j`).
    pub terms: Vec<String>,
}

impl Layout {
    /// The layout of a scope's parameters at its dimension.
    ///
    /// # Errors
    /// A parameter array whose length is negative at this dimension.
    pub fn of(scope: &Scope) -> Result<Self, ExprError> {
        let mut params = Vec::new();
        let mut offset = 0u32;
        for (name, shape) in &scope.params {
            let len = match shape {
                ParamShape::Scalar => 1,
                ParamShape::Array(e) => {
                    let n = e.at(scope.dim);
                    u32::try_from(n).map_err(|_| {
                        ExprError::new(
                            Span::NONE,
                            ExprErrorKind::Type(format!(
                                "parameter `{name}` has length {e} = {n} at d = {}",
                                scope.dim
                            )),
                        )
                    })?
                }
            };
            params.push((name.clone(), offset, len));
            offset += len;
        }
        Ok(Self {
            params,
            n_params: offset,
            terms: scope.terms.clone(),
        })
    }

    fn param(&self, name: &str) -> Option<(u32, u32)> {
        self.params
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|&(_, o, l)| (o, l))
    }
}

/// A node list with hash-consing and constant folding.
#[derive(Debug, Default)]
struct Builder {
    nodes: Vec<Op>,
    seen: HashMap<String, NodeId>,
}

impl Builder {
    fn push(&mut self, op: Op) -> NodeId {
        if let Some(c) = self.fold(&op) {
            return self.push_raw(Op::Const(c));
        }
        self.push_raw(op)
    }

    fn push_raw(&mut self, op: Op) -> NodeId {
        let key = format!("{op:?}");
        if let Some(&id) = self.seen.get(&key) {
            return id;
        }
        self.nodes.push(op);
        let id = (self.nodes.len() - 1) as NodeId;
        self.seen.insert(key, id);
        id
    }

    fn constant(&self, id: NodeId) -> Option<f64> {
        match self.nodes[id as usize] {
            Op::Const(c) => Some(c),
            _ => None,
        }
    }

    /// The value of an op whose operands are all constants.
    fn fold(&self, op: &Op) -> Option<f64> {
        let c = |id: NodeId| self.constant(id);
        Some(match *op {
            Op::Neg(a) => -c(a)?,
            Op::Add(a, b) => c(a)? + c(b)?,
            Op::Sub(a, b) => c(a)? - c(b)?,
            Op::Mul(a, b) => c(a)? * c(b)?,
            Op::Div(a, b) => c(a)? / c(b)?,
            Op::Min(a, b) => c(a)?.min(c(b)?),
            Op::Max(a, b) => c(a)?.max(c(b)?),
            Op::PowInt(a, n) => crate::expr::eval::powi(c(a)?, n),
            Op::Pow(a, b) => c(a)?.powf(c(b)?),
            Op::Call(f, a) => crate::expr::eval::apply_func(f, c(a)?),
            _ => return None,
        })
    }
}

/// Lowers expressions into one program whose outputs are the expressions in order.
#[derive(Debug)]
struct Lowering<'a> {
    scope: &'a Scope,
    layout: &'a Layout,
    main: Builder,
    /// `(lo, hi, body, accumulators)` per loop, in creation order.
    loops: Vec<(u32, u32, Builder, Vec<Accumulator>)>,
    /// Main-body placeholders `Reduced(p)`: `p` indexes this list of `(loop, local accumulator)`.
    reduced: Vec<(usize, usize)>,
}

fn error(span: Span, kind: ExprErrorKind) -> ExprError {
    ExprError::new(span, kind)
}

use crate::expr::eval::integer_exponent;

impl Lowering<'_> {
    fn dim_value(&self, e: &DimExpr, span: Span) -> Result<u32, ExprError> {
        let v = e.at(self.scope.dim);
        u32::try_from(v).map_err(|_| {
            error(
                span,
                ExprErrorKind::WindowOutOfRange(format!("{e} = {v} at d = {}", self.scope.dim)),
            )
        })
    }

    /// Lowers `e` into the main body (`in_loop = None`) or into loop `l`'s body.
    fn lower(&mut self, e: &Expr, in_loop: Option<usize>) -> Result<NodeId, ExprError> {
        let span = e.span;
        let op = match &e.kind {
            ExprKind::Const(c) => Op::Const(*c),
            ExprKind::Dim => Op::Const(self.scope.dim as f64),
            ExprKind::Time => {
                if !self.scope.has_time {
                    return Err(error(span, ExprErrorKind::NoTime));
                }
                Op::Time
            }
            ExprKind::Solution => {
                if in_loop.is_some() {
                    return Err(error(
                        span,
                        ExprErrorKind::Type("`u` cannot be read inside a reduction".into()),
                    ));
                }
                Op::Feature(0)
            }
            ExprKind::Term(name) => {
                if in_loop.is_some() {
                    return Err(error(
                        span,
                        ExprErrorKind::Type(format!(
                            "term `{name}` cannot be read inside a reduction"
                        )),
                    ));
                }
                let j = self
                    .layout
                    .terms
                    .iter()
                    .position(|t| t == name)
                    .ok_or_else(|| {
                        error(
                            span,
                            ExprErrorKind::UndefinedTerm {
                                name: name.clone(),
                                defined: self.layout.terms.join(", "),
                            },
                        )
                    })?;
                Op::Feature(1 + j as u32)
            }
            ExprKind::Coord(Index::Fixed(j)) => {
                let j = self.dim_value(j, span)?;
                if j as usize >= self.scope.dim {
                    return Err(error(
                        span,
                        ExprErrorKind::WindowOutOfRange(format!(
                            "x[{j}] is outside x[0..{}]",
                            self.scope.dim
                        )),
                    ));
                }
                Op::Coord(j)
            }
            ExprKind::Coord(Index::Window(k)) => {
                if in_loop.is_none() {
                    return Err(error(
                        span,
                        ExprErrorKind::WindowOutsideReduction("i".into()),
                    ));
                }
                Op::WinCoord(*k as i32)
            }
            ExprKind::Param { name, index } => {
                let (base, len) = self.layout.param(name).ok_or_else(|| {
                    error(
                        span,
                        ExprErrorKind::UnknownName {
                            name: name.clone(),
                            hint: String::new(),
                        },
                    )
                })?;
                match index {
                    None => Op::Param(base),
                    Some(Index::Fixed(j)) => {
                        let j = self.dim_value(j, span)?;
                        if j >= len {
                            return Err(error(
                                span,
                                ExprErrorKind::WindowOutOfRange(format!(
                                    "{name}[{j}] is outside {name}[0..{len}]"
                                )),
                            ));
                        }
                        Op::Param(base + j)
                    }
                    Some(Index::Window(k)) => {
                        if in_loop.is_none() {
                            return Err(error(
                                span,
                                ExprErrorKind::WindowOutsideReduction("i".into()),
                            ));
                        }
                        Op::WinParam { base, k: *k as i32 }
                    }
                }
            }
            ExprKind::Call(f, a) => Op::Call(*f, self.lower(a, in_loop)?),
            ExprKind::Neg(a) => Op::Neg(self.lower(a, in_loop)?),
            ExprKind::Binary(op, a, b) => {
                if *op == BinOp::Pow {
                    if let Some(n) = integer_exponent(b) {
                        let a = self.lower(a, in_loop)?;
                        return Ok(self.push(in_loop, Op::PowInt(a, n)));
                    }
                }
                let (a, b) = (self.lower(a, in_loop)?, self.lower(b, in_loop)?);
                match op {
                    BinOp::Add => Op::Add(a, b),
                    BinOp::Sub => Op::Sub(a, b),
                    BinOp::Mul => Op::Mul(a, b),
                    BinOp::Div => Op::Div(a, b),
                    BinOp::Pow => Op::Pow(a, b),
                    BinOp::Min => Op::Min(a, b),
                    BinOp::Max => Op::Max(a, b),
                }
            }
            ExprKind::Reduce {
                kind, lo, hi, body, ..
            } => {
                if in_loop.is_some() {
                    return Err(error(span, ExprErrorKind::NestedReduction));
                }
                let (lo, hi) = (self.dim_value(lo, span)?, self.dim_value(hi, span)?);
                let hi = hi.max(lo);
                // A sum of a constant (`Δ‖x‖² = Σ 2`) is the window count times it: no pass over
                // the coordinates.
                if let (crate::expr::ReduceKind::Sum, ExprKind::Const(c)) = (kind, &body.kind) {
                    return Ok(self.push(None, Op::Const((hi - lo) as f64 * c)));
                }
                let l = match self
                    .loops
                    .iter()
                    .position(|(a, b, _, _)| *a == lo && *b == hi)
                {
                    Some(l) => l,
                    None => {
                        self.loops.push((lo, hi, Builder::default(), Vec::new()));
                        self.loops.len() - 1
                    }
                };
                let value = self.lower(body, Some(l))?;
                let acc = Accumulator { kind: *kind, value };
                let accs = &mut self.loops[l].3;
                let local = match accs.iter().position(|a| *a == acc) {
                    Some(i) => i,
                    None => {
                        accs.push(acc);
                        accs.len() - 1
                    }
                };
                let p = match self.reduced.iter().position(|&r| r == (l, local)) {
                    Some(p) => p,
                    None => {
                        self.reduced.push((l, local));
                        self.reduced.len() - 1
                    }
                };
                Op::Reduced(p as u32)
            }
        };
        Ok(self.push(in_loop, op))
    }

    fn push(&mut self, in_loop: Option<usize>, op: Op) -> NodeId {
        match in_loop {
            None => self.main.push(op),
            Some(l) => self.loops[l].2.push(op),
        }
    }
}

/// Lowers `exprs` (checked against `scope`) into one program with one output per expression.
///
/// # Errors
/// A name missing from the scope, a window outside a reduction, a nested reduction, `u` or a term
/// inside a reduction, or an index outside its array.
pub fn lower(exprs: &[Expr], scope: &Scope) -> Result<Program, ExprError> {
    let layout = Layout::of(scope)?;
    let mut lw = Lowering {
        scope,
        layout: &layout,
        main: Builder::default(),
        loops: Vec::new(),
        reduced: Vec::new(),
    };
    let mut outputs = Vec::with_capacity(exprs.len());
    for e in exprs {
        outputs.push(lw.lower(e, None)?);
    }
    // Number accumulators over the loops in order, then renumber the main body's placeholders.
    let mut first = Vec::with_capacity(lw.loops.len());
    let mut total = 0u32;
    for (_, _, _, accs) in &lw.loops {
        first.push(total);
        total += accs.len() as u32;
    }
    let reduced = lw.reduced;
    let nodes = lw
        .main
        .nodes
        .into_iter()
        .map(|op| match op {
            Op::Reduced(p) => {
                let (l, local) = reduced[p as usize];
                Op::Reduced(first[l] + local as u32)
            }
            other => other,
        })
        .collect();
    let loops = lw
        .loops
        .into_iter()
        .map(|(lo, hi, body, accumulators)| Loop {
            lo,
            hi,
            nodes: body.nodes,
            accumulators,
        })
        .collect();
    Ok(Program {
        dim: scope.dim as u32,
        has_time: scope.has_time,
        // Features exist where the solution may be read: `u` and the terms.
        n_features: if scope.has_solution {
            1 + layout.terms.len() as u32
        } else {
            0
        },
        n_params: layout.n_params,
        loops,
        nodes,
        outputs,
    })
}
