//! Problem files: the TOML form of a [`ProblemSpec`], read with every error located at a file,
//! line and column (expression errors inside a string are mapped back to their place in the file).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{
    ConstraintSpec, Defaults, Domain, ParamInit, ParamSpec, PdeSpec, ProblemSpec, ReferenceSpec,
    Rhs, Source, TermOperator, TermSpec, TimeSpec,
};
use crate::expr::{self, DimExpr, ParamShape};
use crate::train::EstimatorKind;

/// Why a problem file could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ProblemFileError {
    /// The file (or the name of an embedded problem).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a problem file"
)]
struct RawFile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    min_dim: Option<Spanned<usize>>,
    max_dim: Option<Spanned<usize>>,
    time: Option<RawTime>,
    #[serde(default)]
    params: BTreeMap<Spanned<String>, Spanned<RawParam>>,
    #[serde(default)]
    terms: BTreeMap<Spanned<String>, Spanned<RawTerm>>,
    pde: RawPde,
    ansatz: Option<RawAnsatz>,
    exact: Option<RawExact>,
    #[serde(default)]
    constraint: Vec<RawConstraint>,
    defaults: Option<RawDefaults>,
    reference: Option<Spanned<RawReference>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a [reference] table"
)]
struct RawReference {
    #[serde(default)]
    x: f64,
    t: Option<f64>,
    value: Option<f64>,
    values: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a [defaults] table"
)]
struct RawDefaults {
    estimator: Option<Spanned<String>>,
    rand_dims: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a [time] table with its `end`"
)]
struct RawTime {
    end: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a parameter table such as { value = 1.0 } or { len = \"d\", draw = \"normal\" }"
)]
struct RawParam {
    len: Option<String>,
    draw: Option<String>,
    #[serde(default = "unit")]
    scale: f64,
    value: Option<f64>,
}

fn unit() -> f64 {
    1.0
}

#[derive(Debug)]
enum RawTerm {
    Name(String),
    Table(RawTermTable),
}

// By hand rather than `untagged`, so that a mistake inside a table is reported as itself (an unknown
// key, a negative order) at its place instead of as "did not match any variant".
impl<'de> Deserialize<'de> for RawTerm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NameOrTable(
            "an operator name such as \"laplacian\", or a table { operator = \"…\", … }",
            RawTerm::Name,
            RawTerm::Table,
        ))
    }
}

/// A visitor for a value given either by name or as a table.
struct NameOrTable<T, V>(&'static str, fn(String) -> V, fn(T) -> V);

impl<'de, T: Deserialize<'de>, V> serde::de::Visitor<'de> for NameOrTable<T, V> {
    type Value = V;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<V, E> {
        Ok((self.1)(v.to_owned()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<V, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(self.2)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a term table { operator = \"…\", … }"
)]
struct RawTermTable {
    operator: String,
    order: Option<usize>,
    orders: Option<Vec<u32>>,
    index: Option<Vec<(usize, u32)>>,
    along: Option<String>,
}

#[derive(Debug)]
enum RawDomain {
    Name(String),
    Table(RawDomainTable),
}

impl<'de> Deserialize<'de> for RawDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NameOrTable(
            "a domain name such as \"ball\", or a table { box = [lo, hi] } or { gaussian = std }",
            RawDomain::Name,
            RawDomain::Table,
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a domain table { box = [lo, hi] } or { gaussian = std }"
)]
struct RawDomainTable {
    #[serde(rename = "box")]
    bounds: Option<(f64, f64)>,
    gaussian: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a [pde] table"
)]
struct RawPde {
    domain: Spanned<RawDomain>,
    lhs: Spanned<String>,
    rhs: Spanned<String>,
    weight: Option<Spanned<f64>>,
    gradient_weight: Option<Spanned<f64>>,
    gradient_coordinates: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "an [ansatz] table"
)]
struct RawAnsatz {
    a: Option<Spanned<String>>,
    b: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "an [exact] table"
)]
struct RawExact {
    solution: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a [[constraint]] table"
)]
struct RawConstraint {
    domain: Spanned<RawDomain>,
    at_time: Option<Spanned<f64>>,
    equation: Spanned<String>,
    weight: Option<Spanned<f64>>,
    gradient_weight: Option<Spanned<f64>>,
    points: Option<Spanned<usize>>,
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `str::floor_char_boundary` for older toolchains.
trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
}

impl Reader<'_> {
    fn at(&self, offset: usize, message: impl Into<String>) -> ProblemFileError {
        let (line, col) = line_col(self.text, offset);
        ProblemFileError {
            file: self.file.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// The expression in a TOML string, parsed, with its position in the file.
    fn expression(&self, s: &Spanned<String>) -> Result<Source, ProblemFileError> {
        let raw = &self.text[s.span()];
        // Where the string's content starts: after `"`/`'`, or after `"""`/`'''` and an
        // immediately following newline, which TOML trims.
        let mut start = s.span().start;
        if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            start += 3;
            if self.text[start..].starts_with('\n') {
                start += 1;
            } else if self.text[start..].starts_with("\r\n") {
                start += 2;
            }
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            start += 1;
        }
        let parsed = expr::parse(s.get_ref()).map_err(|e| self.expr_error(start, s, &e))?;
        Ok(Source {
            text: s.get_ref().clone(),
            file: self.file.to_owned(),
            start,
            file_text_line_col: line_col(self.text, start),
            parsed,
        })
    }

    fn expr_error(
        &self,
        start: usize,
        s: &Spanned<String>,
        e: &expr::ExprError,
    ) -> ProblemFileError {
        let _ = s;
        let offset = if e.span.is_known() {
            start + e.span.start as usize
        } else {
            start
        };
        self.at(offset, e.kind.to_string())
    }
}

fn dim_expr(text: &str) -> Option<DimExpr> {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Ok(n) = t.parse::<i64>() {
        return Some(DimExpr::constant(n));
    }
    let rest = t.strip_prefix('d')?;
    if rest.is_empty() {
        return Some(DimExpr::dim_plus(0));
    }
    let (sign, num) = rest.split_at(1);
    let n: i64 = num.parse().ok()?;
    match sign {
        "+" => Some(DimExpr::dim_plus(n)),
        "-" => Some(DimExpr::dim_plus(-n)),
        _ => None,
    }
}

fn domain(r: &Reader<'_>, d: &Spanned<RawDomain>) -> Result<Domain, ProblemFileError> {
    let here = |m: String| r.at(d.span().start, m);
    match d.get_ref() {
        RawDomain::Name(n) => match n.as_str() {
            "ball" => Ok(Domain::Ball),
            "sphere" => Ok(Domain::Sphere),
            "sde-marginal" => Ok(Domain::SdeMarginal),
            other => Err(here(format!(
                "unknown domain {other:?} (known: \"ball\", \"sphere\", \"sde-marginal\", \
                 {{ box = [lo, hi] }}, {{ gaussian = std }})"
            ))),
        },
        RawDomain::Table(t) => match (t.bounds, t.gaussian) {
            (Some((lo, hi)), None) if lo < hi && lo.is_finite() && hi.is_finite() => {
                Ok(Domain::Box { lo, hi })
            }
            (Some((lo, hi)), None) => Err(here(format!(
                "a box needs finite bounds lo < hi, got [{lo}, {hi}]"
            ))),
            (None, Some(std)) if std > 0.0 && std.is_finite() => Ok(Domain::Gaussian { std }),
            (None, Some(std)) => Err(here(format!(
                "a Gaussian domain needs a positive standard deviation, got {std}"
            ))),
            _ => Err(here(
                "a domain table holds exactly one of `box` or `gaussian`".into(),
            )),
        },
    }
}

fn term_operator(
    r: &Reader<'_>,
    name: &str,
    t: &Spanned<RawTerm>,
) -> Result<TermOperator, ProblemFileError> {
    let here = |m: String| r.at(t.span().start, format!("term `{name}`: {m}"));
    let known = "laplacian, biharmonic, time-derivative, diagonal (order), partial (index), \
                 mixed-window (orders), directional (along), sigma-trace (along)";
    let (op, table) = match t.get_ref() {
        RawTerm::Name(n) => (n.as_str(), None),
        RawTerm::Table(tb) => (tb.operator.as_str(), Some(tb)),
    };
    let need = |what: &str| here(format!("operator `{op}` needs `{what}`"));
    Ok(match op {
        "laplacian" => TermOperator::Laplacian,
        "biharmonic" => TermOperator::Biharmonic,
        "time-derivative" => TermOperator::TimeDerivative,
        "diagonal" => {
            let order = table.and_then(|t| t.order).ok_or_else(|| need("order"))?;
            if order == 0 {
                return Err(here(
                    "the diagonal derivative order must be at least 1".into(),
                ));
            }
            TermOperator::Diagonal { order }
        }
        "partial" => {
            let index = table
                .and_then(|t| t.index.clone())
                .ok_or_else(|| need("index"))?;
            if index.is_empty() || index.iter().any(|&(_, q)| q == 0) {
                return Err(here(
                    "`index` lists [coordinate, order] pairs with orders of at least 1".into(),
                ));
            }
            TermOperator::Partial { index }
        }
        "mixed-window" => {
            let orders = table
                .and_then(|t| t.orders.clone())
                .ok_or_else(|| need("orders"))?;
            if orders.is_empty() || orders.iter().all(|&q| q == 0) {
                return Err(here("`orders` needs at least one positive order".into()));
            }
            TermOperator::MixedWindow { orders }
        }
        "directional" => {
            let along = table
                .and_then(|t| t.along.clone())
                .ok_or_else(|| need("along"))?;
            TermOperator::Directional { along }
        }
        "sigma-trace" => {
            let along = table
                .and_then(|t| t.along.clone())
                .ok_or_else(|| need("along"))?;
            TermOperator::SigmaTrace { along }
        }
        other => return Err(here(format!("unknown operator `{other}` (known: {known})"))),
    })
}

/// The largest constant part of a parameter's length: a larger array is a mistake (and would not
/// fit in memory).
const MAX_PARAM_LEN: i64 = 1 << 24;

/// The checks of a file that need no expression, each at the place of the mistake: dimensions,
/// time, names, weights, the estimator's `V`, and a manufactured right-hand side's exact solution.
fn validate(r: &Reader<'_>, raw: &RawFile) -> Result<(), ProblemFileError> {
    if let Some(m) = raw.min_dim.as_ref().filter(|m| *m.get_ref() == 0) {
        return Err(r.at(m.span().start, "min-dim must be at least 1"));
    }
    let min_dim = raw.min_dim.as_ref().map_or(1, |m| *m.get_ref());
    if let Some(m) = raw.max_dim.as_ref().filter(|m| *m.get_ref() < min_dim) {
        return Err(r.at(
            m.span().start,
            format!("max-dim {} is below min-dim {min_dim}", m.get_ref()),
        ));
    }
    if let Some(t) = &raw.time {
        let end = *t.end.get_ref();
        if !(end.is_finite() && end > 0.0) {
            return Err(r.at(
                t.end.span().start,
                format!("time end must be positive and finite, got {end}"),
            ));
        }
    }
    let names = raw.params.keys().map(|k| ("parameter", k));
    for (what, key) in names.chain(raw.terms.keys().map(|k| ("term", k))) {
        if !expr::parse::is_name(key.get_ref()) {
            return Err(r.at(
                key.span().start,
                format!(
                    "{what} name {:?} is not a name: ASCII letters, digits and `_`, not starting \
                     with a digit, and not a reserved word ({})",
                    key.get_ref(),
                    expr::parse::RESERVED.join(", ")
                ),
            ));
        }
    }
    if let Some(key) = raw.terms.keys().find(|k| raw.params.contains_key(*k)) {
        return Err(r.at(
            key.span().start,
            format!(
                "term `{}` has the name of a parameter; give it another name",
                key.get_ref()
            ),
        ));
    }
    let weights = raw.pde.weight.iter().map(|w| ("weight", w));
    let weights = weights.chain(
        raw.pde
            .gradient_weight
            .iter()
            .map(|w| ("gradient-weight", w)),
    );
    let weights = weights.chain(
        raw.constraint
            .iter()
            .filter_map(|c| c.weight.as_ref().map(|w| ("weight", w))),
    );
    for (what, w) in weights {
        let v = *w.get_ref();
        if !(v.is_finite() && v >= 0.0) {
            return Err(r.at(
                w.span().start,
                format!("{what} must be finite and non-negative, got {v}"),
            ));
        }
    }
    for c in &raw.constraint {
        let Some(at) = &c.at_time else { continue };
        let v = *at.get_ref();
        match &raw.time {
            None => {
                return Err(r.at(
                    at.span().start,
                    "at-time given but the problem has no [time]",
                ))
            }
            Some(t) if !(v.is_finite() && v >= 0.0 && v <= *t.end.get_ref()) => {
                return Err(r.at(
                    at.span().start,
                    format!(
                        "at-time {v} is outside the time interval [0, {}]",
                        t.end.get_ref()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(v) = raw
        .defaults
        .as_ref()
        .and_then(|d| d.rand_dims.as_ref())
        .filter(|v| *v.get_ref() == 0)
    {
        return Err(r.at(v.span().start, "rand-dims must be at least 1"));
    }
    if raw.exact.is_none() && raw.pde.rhs.get_ref().trim() == "manufactured" {
        return Err(r.at(
            raw.pde.rhs.span().start,
            "rhs = \"manufactured\" applies the left-hand side to the exact solution, but the \
             problem has no [exact] table",
        ));
    }
    Ok(())
}

/// What a term's operator needs of the rest of the file: a time variable, or the parameter it
/// reads.
fn term_needs(
    r: &Reader<'_>,
    raw: &RawFile,
    name: &str,
    t: &Spanned<RawTerm>,
    op: &TermOperator,
) -> Result<(), ProblemFileError> {
    let here = |m: String| r.at(t.span().start, format!("term `{name}`: {m}"));
    match op {
        TermOperator::TimeDerivative if raw.time.is_none() => Err(here(
            "∂u/∂t needs a time variable: add a [time] table with its `end`".into(),
        )),
        TermOperator::Directional { along } | TermOperator::SigmaTrace { along } => {
            match raw.params.iter().find(|(k, _)| k.get_ref() == along) {
                None => Err(here(format!(
                    "`along` names `{along}`, which is not a parameter (parameters: {})",
                    if raw.params.is_empty() {
                        "none".to_owned()
                    } else {
                        raw.params
                            .keys()
                            .map(|k| k.get_ref().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))),
                Some((_, p)) if p.get_ref().len.is_none() => Err(here(format!(
                    "`along` names the scalar parameter `{along}`; {} needs an array of length d",
                    op.describe()
                ))),
                Some(_) => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// A domain that points are drawn from, with or without a time variable and at a fixed time or
/// not: the SDE marginal draws `x` from the time, so it needs a time variable that is sampled.
fn sampled_domain(
    r: &Reader<'_>,
    d: &Spanned<RawDomain>,
    has_time: bool,
    at_time: Option<&Spanned<f64>>,
) -> Result<Domain, ProblemFileError> {
    let domain = domain(r, d)?;
    if domain == Domain::SdeMarginal {
        if !has_time {
            return Err(r.at(
                d.span().start,
                "the \"sde-marginal\" domain draws x ~ N(0, 2t·I) and needs a [time] table",
            ));
        }
        if at_time.is_some() {
            return Err(r.at(
                d.span().start,
                "the \"sde-marginal\" domain samples the time, so it cannot be used with \
                 at-time; use { gaussian = std } for points at a fixed time",
            ));
        }
    }
    Ok(domain)
}

/// The span of the first use of the bare name `name` in a parsed (unchecked) expression.
fn term_span(e: &expr::Expr, name: &str) -> Option<expr::Span> {
    match &e.kind {
        expr::ExprKind::Term(n) if n == name => Some(e.span),
        expr::ExprKind::Call(_, a) | expr::ExprKind::Neg(a) => term_span(a, name),
        expr::ExprKind::Binary(_, a, b) => term_span(a, name).or_else(|| term_span(b, name)),
        expr::ExprKind::Reduce { body, .. } => term_span(body, name),
        _ => None,
    }
}

/// Reads a problem file's text (`file` names it in errors).
///
/// # Errors
/// [`ProblemFileError`] at the place of the first mistake: TOML syntax, unknown or missing keys,
/// unknown domains or operators, or an expression that does not parse.
pub fn read(file: &str, text: &str) -> Result<ProblemSpec, ProblemFileError> {
    let r = Reader { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        r.at(offset, e.message().trim().to_owned())
    })?;
    let name = raw.name.get_ref().trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(r.at(
            raw.name.span().start,
            "a problem name uses letters, digits, `-` and `_` only",
        ));
    }
    validate(&r, &raw)?;
    let mut params = Vec::new();
    for (pkey, p) in &raw.params {
        let pname = pkey.get_ref();
        let here = |m: String| r.at(p.span().start, format!("parameter `{pname}`: {m}"));
        let pr = p.get_ref();
        let shape = match &pr.len {
            None => ParamShape::Scalar,
            Some(l) => ParamShape::Array(
                dim_expr(l)
                    .filter(|e| e.offset.abs() <= MAX_PARAM_LEN && (e.with_dim || e.offset >= 1))
                    .ok_or_else(|| {
                        here(format!(
                            "length {l:?} is not `N`, `d`, `d+N` or `d-N` with N in \
                             1..={MAX_PARAM_LEN} (or up to {MAX_PARAM_LEN} added to `d`)"
                        ))
                    })?,
            ),
        };
        let init = match (pr.value, pr.draw.as_deref()) {
            (Some(v), None) if v.is_finite() => ParamInit::Value(v),
            (None, Some("normal")) => ParamInit::Normal { scale: pr.scale },
            (None, Some("uniform")) => ParamInit::Uniform { scale: pr.scale },
            (None, Some(other)) => {
                return Err(here(format!(
                    "unknown draw {other:?} (known: \"normal\", \"uniform\")"
                )))
            }
            _ => {
                return Err(here(
                    "give exactly one of `value` (finite) or `draw`".into(),
                ))
            }
        };
        if !pr.scale.is_finite() {
            return Err(here("`scale` must be finite".into()));
        }
        params.push(ParamSpec {
            name: pname.clone(),
            shape,
            init,
        });
    }
    let mut terms = Vec::new();
    for (tkey, t) in &raw.terms {
        let tname = tkey.get_ref();
        let operator = term_operator(&r, tname, t)?;
        term_needs(&r, &raw, tname, t, &operator)?;
        let (line, col) = line_col(text, t.span().start);
        terms.push(TermSpec {
            name: tname.clone(),
            operator,
            place: Some(super::Place {
                file: file.to_owned(),
                line,
                col,
            }),
        });
    }
    let rhs = if raw.pde.rhs.get_ref().trim() == "manufactured" {
        Rhs::Manufactured
    } else {
        Rhs::Expr(r.expression(&raw.pde.rhs)?)
    };
    if let Some(q) = &raw.pde.gradient_coordinates {
        if *q.get_ref() == 0 {
            return Err(r.at(q.span().start, "gradient-coordinates must be at least 1"));
        }
        if raw.pde.gradient_weight.is_none() {
            return Err(r.at(
                q.span().start,
                "gradient-coordinates is the sampling of the residual gradient; give a \
                 gradient-weight too",
            ));
        }
    }
    let pde = PdeSpec {
        domain: sampled_domain(&r, &raw.pde.domain, raw.time.is_some(), None)?,
        lhs: r.expression(&raw.pde.lhs)?,
        rhs,
        weight: raw.pde.weight.as_ref().map_or(1.0, |w| *w.get_ref()),
        gradient_weight: raw
            .pde
            .gradient_weight
            .as_ref()
            .map_or(0.0, |w| *w.get_ref()),
        gradient_coordinates: raw
            .pde
            .gradient_coordinates
            .as_ref()
            .map_or(1, |q| *q.get_ref()),
    };
    let ansatz = match raw.ansatz {
        None => None,
        Some(a) => Some((
            a.a.as_ref().map(|s| r.expression(s)).transpose()?,
            a.b.as_ref().map(|s| r.expression(s)).transpose()?,
        )),
    };
    let exact = raw.exact.map(|e| r.expression(&e.solution)).transpose()?;
    let mut constraints = Vec::new();
    for c in &raw.constraint {
        let gradient_weight = match &c.gradient_weight {
            None => 0.0,
            Some(g) if g.get_ref().is_finite() && *g.get_ref() >= 0.0 => *g.get_ref(),
            Some(g) => {
                return Err(r.at(
                    g.span().start,
                    format!(
                        "gradient-weight must be finite and non-negative, got {}",
                        g.get_ref()
                    ),
                ))
            }
        };
        if let Some(p) = c.points.as_ref().filter(|p| *p.get_ref() == 0) {
            return Err(r.at(p.span().start, "points must be at least 1"));
        }
        let equation = r.expression(&c.equation)?;
        if exact.is_none() {
            if let Some(span) = term_span(&equation.parsed, "exact") {
                let mut e = equation.locate(&expr::ExprError::new(
                    span,
                    expr::ExprErrorKind::NoSolution(String::new()),
                ));
                e.message = "`exact` names the exact solution, but the problem has no [exact] \
                             table"
                    .into();
                return Err(e);
            }
        }
        constraints.push(ConstraintSpec {
            domain: sampled_domain(&r, &c.domain, raw.time.is_some(), c.at_time.as_ref())?,
            at_time: c.at_time.as_ref().map(|t| *t.get_ref()),
            equation,
            weight: c.weight.as_ref().map_or(1.0, |w| *w.get_ref()),
            gradient_weight,
            points: c.points.as_ref().map(|p| *p.get_ref()),
        });
    }
    let reference = raw
        .reference
        .as_ref()
        .map(|rf| reference(&r, rf, raw.time.is_some()))
        .transpose()?;
    let mut defaults = Defaults::default();
    if let Some(d) = &raw.defaults {
        if let Some(e) = &d.estimator {
            defaults.estimator = Some(match e.get_ref().as_str() {
                "sparse" => EstimatorKind::Sparse,
                "dense" => EstimatorKind::Dense,
                "exact" => EstimatorKind::Exact,
                other => {
                    return Err(r.at(
                        e.span().start,
                        format!(
                            "unknown estimator {other:?} (known: \"sparse\", \"dense\", \"exact\")"
                        ),
                    ))
                }
            });
        }
        defaults.rand_dims = d.rand_dims.as_ref().map(|v| *v.get_ref());
    }
    Ok(ProblemSpec {
        defaults,
        name,
        description: raw.description,
        min_dim: raw.min_dim.as_ref().map_or(1, |m| *m.get_ref()),
        max_dim: raw.max_dim.as_ref().map(|m| *m.get_ref()),
        time: raw.time.as_ref().map(|t| TimeSpec {
            end: *t.end.get_ref(),
        }),
        params,
        terms,
        pde,
        ansatz,
        exact,
        constraints,
        reference,
    })
}

/// The `[reference]` table: a value of the solution at one point, for every dimension or by
/// dimension.
fn reference(
    r: &Reader<'_>,
    raw: &Spanned<RawReference>,
    has_time: bool,
) -> Result<ReferenceSpec, ProblemFileError> {
    let at = |m: String| r.at(raw.span().start, format!("[reference]: {m}"));
    let rf = raw.get_ref();
    if !rf.x.is_finite() {
        return Err(at(format!("x must be finite, got {}", rf.x)));
    }
    let t = match (rf.t, has_time) {
        (Some(t), true) if t.is_finite() => t,
        (Some(t), true) => return Err(at(format!("t must be finite, got {t}"))),
        (None, true) => return Err(at("give the time `t` of the reference point".into())),
        (Some(_), false) => return Err(at("`t` given but the problem has no [time]".into())),
        (None, false) => 0.0,
    };
    let mut by_dim = Vec::new();
    for (key, &v) in rf.values.iter().flatten() {
        let dim: usize = key
            .trim()
            .parse()
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| at(format!("values: key {key:?} is not a positive dimension")))?;
        if !v.is_finite() {
            return Err(at(format!("values: the value at d = {dim} is not finite")));
        }
        by_dim.push((dim, v));
    }
    by_dim.sort_by_key(|&(d, _)| d);
    let value = match rf.value {
        Some(v) if !v.is_finite() => return Err(at(format!("value must be finite, got {v}"))),
        v => v,
    };
    if value.is_some() != by_dim.is_empty() {
        return Err(at(
            "give exactly one of `value` (every dimension) or `values` (by dimension)".into(),
        ));
    }
    Ok(ReferenceSpec {
        x: rf.x,
        t,
        value,
        by_dim,
    })
}
