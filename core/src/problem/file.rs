//! Problem files: the TOML form of a [`ProblemSpec`], read with every error located at a file,
//! line and column (expression errors inside a string are mapped back to their place in the file).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{
    ConstraintSpec, Defaults, Domain, ParamInit, ParamSpec, PdeSpec, ProblemSpec, Rhs, Source,
    TermOperator, TermSpec, TimeSpec,
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
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawFile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default = "one")]
    min_dim: usize,
    max_dim: Option<usize>,
    time: Option<RawTime>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<RawParam>>,
    #[serde(default)]
    terms: BTreeMap<String, Spanned<RawTerm>>,
    pde: RawPde,
    ansatz: Option<RawAnsatz>,
    exact: Option<RawExact>,
    #[serde(default)]
    constraint: Vec<RawConstraint>,
    defaults: Option<RawDefaults>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawDefaults {
    estimator: Option<Spanned<String>>,
    rand_dims: Option<usize>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawTime {
    end: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
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

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTerm {
    Name(String),
    Table(RawTermTable),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawTermTable {
    operator: String,
    order: Option<usize>,
    orders: Option<Vec<u32>>,
    index: Option<Vec<(usize, u32)>>,
    along: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDomain {
    Name(String),
    Table(RawDomainTable),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawDomainTable {
    #[serde(rename = "box")]
    bounds: Option<(f64, f64)>,
    gaussian: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawPde {
    domain: Spanned<RawDomain>,
    lhs: Spanned<String>,
    rhs: Spanned<String>,
    #[serde(default = "unit")]
    weight: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawAnsatz {
    a: Option<Spanned<String>>,
    b: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawExact {
    solution: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawConstraint {
    domain: Spanned<RawDomain>,
    at_time: Option<f64>,
    equation: Spanned<String>,
    #[serde(default = "unit")]
    weight: f64,
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
                 mixed-window (orders), directional (along)";
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
        other => return Err(here(format!("unknown operator `{other}` (known: {known})"))),
    })
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
    let mut params = Vec::new();
    for (pname, p) in &raw.params {
        let here = |m: String| r.at(p.span().start, format!("parameter `{pname}`: {m}"));
        let pr = p.get_ref();
        let shape = match &pr.len {
            None => ParamShape::Scalar,
            Some(l) => ParamShape::Array(
                dim_expr(l)
                    .ok_or_else(|| here(format!("length {l:?} is not `N`, `d`, `d+N` or `d-N`")))?,
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
    for (tname, t) in &raw.terms {
        terms.push(TermSpec {
            name: tname.clone(),
            operator: term_operator(&r, tname, t)?,
        });
    }
    let rhs = if raw.pde.rhs.get_ref().trim() == "manufactured" {
        Rhs::Manufactured
    } else {
        Rhs::Expr(r.expression(&raw.pde.rhs)?)
    };
    let pde = PdeSpec {
        domain: domain(&r, &raw.pde.domain)?,
        lhs: r.expression(&raw.pde.lhs)?,
        rhs,
        weight: raw.pde.weight,
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
        constraints.push(ConstraintSpec {
            domain: domain(&r, &c.domain)?,
            at_time: c.at_time,
            equation: r.expression(&c.equation)?,
            weight: c.weight,
        });
    }
    if let Some(t) = &raw.time {
        if !(t.end.is_finite() && t.end > 0.0) {
            return Err(r.at(0, format!("time end must be positive, got {}", t.end)));
        }
    }
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
        defaults.rand_dims = d.rand_dims;
    }
    Ok(ProblemSpec {
        defaults,
        name,
        description: raw.description,
        min_dim: raw.min_dim.max(1),
        max_dim: raw.max_dim,
        time: raw.time.map(|t| TimeSpec { end: t.end }),
        params,
        terms,
        pde,
        ansatz,
        exact,
        constraints,
    })
}
