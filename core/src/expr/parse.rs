//! The text syntax of the problem language: the lexer, the recursive-descent parser with exact
//! source positions, and the language reference.
//!
//! # The language
//!
//! An expression is a formula in the coordinates `x[0]` … `x[d-1]`, the time `t`, the solution
//! value `u`, named differential terms of the problem (such as `lap`) and named parameters (such as
//! the scalar `g` or the array element `c[i]`). The same language writes PDE residuals, forcing
//! terms, exact solutions, ansatz factors and boundary data:
//!
//! ```text
//! lap + sin(u) - g                                   # a Sine-Gordon residual
//! (1 - norm2(x)) * sum(i in 0..d-1, c[i]*sin(x[i] + cos(x[i+1]) + x[i+1]*cos(x[i])))
//! sum(i in 0..d-2, c[i]*exp(x[i]*x[i+1]*x[i+2]))
//! atan(max(i in 0..d, x[i]))
//! ```
//!
//! ## Grammar
//!
//! In EBNF (`{ … }` repeats, `[ … ]` is optional, terminals are quoted):
//!
//! ```text
//! expr           = additive ;
//! additive       = multiplicative , { ( "+" | "-" ) , multiplicative } ;
//! multiplicative = unary , { ( "*" | "/" ) , unary } ;
//! unary          = "-" , unary | power ;
//! power          = atom , [ "^" , unary ] ;
//! atom           = NUMBER | "pi" | "d" | "t" | "u"
//!                | "x" , "[" , index , "]"
//!                | NAME | NAME , "[" , index , "]"
//!                | call
//!                | "(" , expr , ")" ;
//! call           = FUNC , "(" , expr , ")"
//!                | ( "min" | "max" ) , "(" , expr , "," , expr , ")"
//!                | ( "sum" | "max" ) , "(" , VAR , "in" , bound , ".." , bound , "," , expr , ")"
//!                | "norm2" , "(" , "x" , ")" ;
//! index          = VAR , [ ( "+" | "-" ) , INT ]      (* a window, relative to the reduction variable *)
//!                | bound ;                            (* a fixed element *)
//! bound          = [ "-" ] , INT | "d" , [ ( "+" | "-" ) , INT ] ;
//! FUNC           = "exp" | "log" | "sin" | "cos" | "tanh" | "atan" | "sqrt" | "abs" ;
//! NAME, VAR      = ( letter | "_" ) , { letter | digit | "_" } ;   (* ASCII, not a reserved word *)
//! INT            = digit , { digit } ;
//! NUMBER         = ( INT , [ "." , { digit } ] | "." , INT ) , [ ( "e" | "E" ) , [ "+" | "-" ] , INT ] ;
//! ```
//!
//! The reserved words are `x t u d pi in min max sum norm2` and the function names.
//!
//! ## Precedence
//!
//! From loosest to tightest: `+ -` (left-associative), `* /` (left-associative), unary `-`, `^`
//! (right-associative), then atoms. So `a-b-c` is `(a-b)-c`, `2^3^2` is `2^(3^2) = 512`,
//! `-x[0]^2` is `-(x[0]^2)`, and an exponent may carry its own sign: `2^-1`.
//!
//! ## Meaning
//!
//! * A `NUMBER` is an `f64` (`2`, `0.5`, `.5`, `2.`, `1e-3`, `6.02E23`); one that overflows to
//!   infinity is rejected. `pi` is [`std::f64::consts::PI`] and `d` is the dimension, as a number.
//! * `x[j]` is a coordinate. `x` alone is a type error: it is the whole coordinate vector.
//! * A bare `NAME` is a term (such as `lap`) or a scalar parameter; the parser leaves it as
//!   [`ExprKind::Term`] and [`check`](super::check::check) resolves it against a
//!   [`Scope`](super::Scope). `NAME[index]` is an element of an array parameter
//!   ([`ExprKind::Param`]).
//! * `sum(i in lo..hi, body)` adds `body` for `i = lo, lo+1, …, hi-1` (a half-open range; an empty
//!   one sums to 0) and `max(i in lo..hi, body)` takes the largest value. Inside `body`, `x[i+k]` and
//!   `c[i-k]` read relative to `i` (an [`Index::Window`]); the variable cannot be used in any other
//!   way, a window names the variable of its own reduction (`x[j]` in `sum(i in …)` is an error),
//!   and reductions do not nest. Bounds are integers, `d`, or `d` plus or minus an integer.
//! * `norm2(x)` is `sum(i in 0..d, x[i]^2)`, and parses to that tree.
//!
//! Whitespace, newlines included, may appear between any two tokens, and `#` starts a comment that
//! runs to the end of the line. Lines and columns in errors are 1-based; columns count characters,
//! so a tab is one column.
//!
//! ## Errors
//!
//! Parsing stops at the first mistake and returns one [`ExprError`] at its position: an unexpected
//! character, an unexpected token ("expected `)`, found `,`"), an unclosed `(` (at that `(`) or a
//! stray `)` (at it), an unknown function (with the list of known ones), a call with the wrong
//! number of arguments (at the function name), a malformed number (`1e`, `1.2.3`), empty input,
//! trailing tokens, a window index outside a reduction or naming another variable, a nested
//! reduction, and input nested more than [`MAX_NESTING`] levels (parentheses, signs and exponents)
//! or building a tree taller than [`MAX_HEIGHT`] nodes. Checks that need a scope (names, time,
//! the solution, index ranges) are [`check`](super::check::check)'s.

use super::ast::{BinOp, DimExpr, Expr, ExprKind, Func, Index, ReduceKind, Span};
use super::print::window_text;
use super::{ExprError, ExprErrorKind};

/// How deeply parentheses, unary signs and exponents may nest in the text.
pub const MAX_NESTING: usize = 200;

/// The tallest tree the parser builds and the checker accepts (a sum of `n` terms is `n` tall).
pub const MAX_HEIGHT: usize = 1000;

/// Words that are never term, parameter or reduction-variable names.
pub(crate) const RESERVED: [&str; 18] = [
    "x", "t", "u", "d", "pi", "in", "min", "max", "sum", "norm2", "exp", "log", "sin", "cos",
    "tanh", "atan", "sqrt", "abs",
];

/// The callable names, as listed in [`ExprErrorKind::UnknownFunction`].
const KNOWN_FUNCTIONS: &str = "exp, log, sin, cos, tanh, atan, sqrt, abs, min, max, sum, norm2";

/// Whether `s` can name a term, a parameter or a reduction variable.
pub(crate) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !RESERVED.contains(&s)
}

/// Parses one expression (the grammar is in the [module documentation](self)).
///
/// Bare names stay [`ExprKind::Term`] until [`check`](super::check::check) resolves them.
///
/// # Errors
/// The first syntax error, with its line and column.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let (toks, last) = lex(src);
    let mut p = Parser {
        toks,
        last,
        pos: 0,
        nesting: 0,
        open_parens: 0,
        reduce_var: None,
    };
    let node = p.expr().map_err(|e| *e)?;
    match &p.peek().tok {
        Tok::Eof => Ok(*node.e),
        Tok::RParen => Err(*stray_paren(p.peek().span)),
        _ => Err(*p.unexpected("an operator or end of input")),
    }
}

impl std::str::FromStr for Expr {
    type Err = ExprError;

    /// [`parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A number; `int` when its text is digits only.
    Num {
        value: f64,
        int: bool,
        text: String,
    },
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Comma,
    DotDot,
    Eof,
    /// A lexical error: the parser reports it when it reaches this point.
    Error(ExprError),
}

#[derive(Clone, Debug, PartialEq)]
struct Token {
    tok: Tok,
    span: Span,
}

/// Where a token starts: byte offset, line, column.
#[derive(Clone, Copy)]
struct Mark {
    byte: usize,
    line: u32,
    col: u32,
}

struct Lexer<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    i: usize,
    line: u32,
    col: u32,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).map(|&(_, c)| c)
    }

    fn byte(&self) -> usize {
        self.chars.get(self.i).map_or(self.src.len(), |&(b, _)| b)
    }

    fn bump(&mut self) {
        if let Some(&(_, c)) = self.chars.get(self.i) {
            self.i += 1;
            if c == '\n' {
                self.line = self.line.saturating_add(1);
                self.col = 1;
            } else {
                self.col = self.col.saturating_add(1);
            }
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            byte: self.byte(),
            line: self.line,
            col: self.col,
        }
    }

    fn span_from(&self, m: Mark) -> Span {
        Span {
            line: m.line,
            col: m.col,
            start: to_u32(m.byte),
            end: to_u32(self.byte()),
        }
    }

    fn text_from(&self, m: Mark) -> String {
        self.src.get(m.byte..self.byte()).unwrap_or("").to_string()
    }

    fn next_token(&mut self) -> Result<Token, ExprError> {
        loop {
            match self.peek(0) {
                Some('#') => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some(c) if c.is_whitespace() => self.bump(),
                _ => break,
            }
        }
        let m = self.mark();
        let Some(c) = self.peek(0) else {
            return Ok(Token {
                tok: Tok::Eof,
                span: self.span_from(m),
            });
        };
        let next_is_digit = self.peek(1).is_some_and(|n| n.is_ascii_digit());
        let tok = match c {
            c if c.is_ascii_alphabetic() || c == '_' => {
                while self
                    .peek(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.bump();
                }
                Tok::Ident(self.text_from(m))
            }
            c if c.is_ascii_digit() => return self.number(m),
            '.' if next_is_digit => return self.number(m),
            '.' if self.peek(1) == Some('.') => {
                self.bump();
                self.bump();
                Tok::DotDot
            }
            _ => {
                self.bump();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    '+' => Tok::Plus,
                    '-' => Tok::Minus,
                    '*' => Tok::Star,
                    '/' => Tok::Slash,
                    '^' => Tok::Caret,
                    ',' => Tok::Comma,
                    _ => {
                        return Err(ExprError::new(
                            self.span_from(m),
                            ExprErrorKind::UnexpectedChar(c),
                        ))
                    }
                }
            }
        };
        Ok(Token {
            tok,
            span: self.span_from(m),
        })
    }

    fn eat_digits(&mut self) -> usize {
        let mut n = 0;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            n += 1;
        }
        n
    }

    /// The rest of a malformed number, so that the error quotes all of it.
    fn bad_number(&mut self, m: Mark) -> ExprError {
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.bump();
        }
        ExprError::new(
            self.span_from(m),
            ExprErrorKind::BadNumber(self.text_from(m)),
        )
    }

    fn number(&mut self, m: Mark) -> Result<Token, ExprError> {
        let mut int = self.eat_digits() > 0;
        // `0..d` leaves both dots to the range.
        if self.peek(0) == Some('.') && self.peek(1) != Some('.') {
            int = false;
            self.bump();
            self.eat_digits();
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            int = false;
            self.bump();
            if matches!(self.peek(0), Some('+' | '-')) {
                self.bump();
            }
            if self.eat_digits() == 0 {
                return Err(self.bad_number(m));
            }
        }
        if self.peek(0) == Some('.') && self.peek(1) != Some('.') {
            return Err(self.bad_number(m));
        }
        let text = self.text_from(m);
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Token {
                tok: Tok::Num { value, int, text },
                span: self.span_from(m),
            }),
            _ => Err(ExprError::new(
                self.span_from(m),
                ExprErrorKind::BadNumber(text),
            )),
        }
    }
}

/// The tokens before the end, and the end: [`Tok::Eof`] or the first lexical error.
fn lex(src: &str) -> (Vec<Token>, Token) {
    let mut lx = Lexer {
        src,
        chars: src.char_indices().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut toks = Vec::new();
    loop {
        match lx.next_token() {
            Ok(t) if t.tok == Tok::Eof => return (toks, t),
            Ok(t) => toks.push(t),
            Err(e) => {
                let span = e.span;
                return (
                    toks,
                    Token {
                        tok: Tok::Error(e),
                        span,
                    },
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

/// A parsed node and its height (a leaf is 1).
struct Node {
    e: Box<Expr>,
    h: usize,
}

/// Errors travel boxed inside the parser, which keeps the recursive frames small.
type Fail = Box<ExprError>;

type PResult = Result<Node, Fail>;

fn fail(span: Span, kind: ExprErrorKind) -> Fail {
    Box::new(ExprError::new(span, kind))
}

struct Parser {
    toks: Vec<Token>,
    /// Always the last token: the end of input or a lexical error.
    last: Token,
    pos: usize,
    /// Current depth of `unary` calls, which every recursive cycle passes through.
    nesting: usize,
    /// Parentheses opened and not yet closed, to tell a stray `)` from a misplaced one.
    open_parens: usize,
    /// The variable of the reduction whose body is being parsed.
    reduce_var: Option<String>,
}

/// The span from the start of `a` to the end of `b`.
fn join(a: Span, b: Span) -> Span {
    Span {
        line: a.line,
        col: a.col,
        start: a.start,
        end: b.end.max(a.end),
    }
}

fn describe(t: &Tok) -> String {
    let s = match t {
        Tok::Num { text, .. } => return format!("number `{text}`"),
        Tok::Ident(n) => return format!("`{n}`"),
        Tok::Eof | Tok::Error(_) => return "end of input".to_string(),
        Tok::LParen => "`(`",
        Tok::RParen => "`)`",
        Tok::LBracket => "`[`",
        Tok::RBracket => "`]`",
        Tok::Plus => "`+`",
        Tok::Minus => "`-`",
        Tok::Star => "`*`",
        Tok::Slash => "`/`",
        Tok::Caret => "`^`",
        Tok::Comma => "`,`",
        Tok::DotDot => "`..`",
    };
    s.to_string()
}

fn stray_paren(span: Span) -> Fail {
    fail(
        span,
        ExprErrorKind::Unbalanced("this `)` has no matching `(`".to_string()),
    )
}

impl Parser {
    fn peek_at(&self, ahead: usize) -> &Token {
        self.toks.get(self.pos + ahead).unwrap_or(&self.last)
    }

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    /// Consumes the current token and returns its span.
    fn bump(&mut self) -> Span {
        let span = self.peek().span;
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        span
    }

    /// The error for an unexpected current token (or the lexical error found there).
    fn unexpected(&self, expected: &str) -> Fail {
        let t = self.peek();
        if let Tok::Error(e) = &t.tok {
            return Box::new(e.clone());
        }
        fail(
            t.span,
            ExprErrorKind::Expected {
                expected: expected.to_string(),
                found: describe(&t.tok),
            },
        )
    }

    fn is(&self, tok: &Tok) -> bool {
        &self.peek().tok == tok
    }

    fn node(&self, kind: ExprKind, span: Span, h: usize, at: Span) -> PResult {
        if h > MAX_HEIGHT {
            return Err(fail(at, ExprErrorKind::TooDeep { limit: MAX_HEIGHT }));
        }
        Ok(Node {
            e: Box::new(Expr::at(kind, span)),
            h,
        })
    }

    fn binary(&self, op: BinOp, a: Node, b: Node, at: Span) -> PResult {
        let span = join(a.e.span, b.e.span);
        let h = 1 + a.h.max(b.h);
        self.node(ExprKind::Binary(op, a.e, b.e), span, h, at)
    }

    fn expr(&mut self) -> PResult {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            let at = self.bump();
            let rhs = self.multiplicative()?;
            lhs = self.binary(op, lhs, rhs, at)?;
        }
    }

    fn multiplicative(&mut self) -> PResult {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            let at = self.bump();
            let rhs = self.unary()?;
            lhs = self.binary(op, lhs, rhs, at)?;
        }
    }

    fn unary(&mut self) -> PResult {
        if self.nesting >= MAX_NESTING {
            return Err(self.too_deep());
        }
        self.nesting += 1;
        let r = self.unary_inner();
        self.nesting -= 1;
        r
    }

    // The functions on the recursive path (`expr` … `atom`, `group`, `name`, `call`, `args`) keep
    // their frames small and leave error building to helpers, so that input at the nesting limit
    // fits a 2 MiB thread stack even in unoptimised builds.

    fn unary_inner(&mut self) -> PResult {
        if matches!(self.peek().tok, Tok::Minus) {
            return self.negation();
        }
        let base = self.atom()?;
        if matches!(self.peek().tok, Tok::Caret) {
            return self.power(base);
        }
        Ok(base)
    }

    fn negation(&mut self) -> PResult {
        let minus = self.bump();
        let a = self.unary()?;
        let span = join(minus, a.e.span);
        self.node(ExprKind::Neg(a.e), span, a.h + 1, minus)
    }

    fn power(&mut self, base: Node) -> PResult {
        let caret = self.bump();
        let exponent = self.unary()?;
        self.binary(BinOp::Pow, base, exponent, caret)
    }

    fn too_deep(&self) -> Fail {
        fail(
            self.peek().span,
            ExprErrorKind::TooDeep { limit: MAX_NESTING },
        )
    }

    fn leaf(kind: ExprKind, span: Span) -> Node {
        Node {
            e: Box::new(Expr::at(kind, span)),
            h: 1,
        }
    }

    fn atom(&mut self) -> PResult {
        match self.peek().tok {
            Tok::Num { value, .. } => {
                let span = self.bump();
                Ok(Self::leaf(ExprKind::Const(value), span))
            }
            Tok::Ident(_) => self.name(),
            Tok::LParen => self.group(),
            _ => Err(self.atom_error()),
        }
    }

    fn atom_error(&self) -> Fail {
        if matches!(self.peek().tok, Tok::RParen) && self.open_parens == 0 {
            stray_paren(self.peek().span)
        } else {
            self.unexpected("an expression")
        }
    }

    /// `( expr )`.
    fn group(&mut self) -> PResult {
        let open = self.bump();
        self.open_parens += 1;
        let mut inner = self.expr()?;
        let close = self.close(open)?;
        inner.e.span = join(open, close);
        Ok(inner)
    }

    /// Consumes the `)` closing the `(` at `open`.
    fn close(&mut self, open: Span) -> Result<Span, Fail> {
        if matches!(self.peek().tok, Tok::RParen) {
            self.open_parens = self.open_parens.saturating_sub(1);
            return Ok(self.bump());
        }
        Err(self.close_error(open))
    }

    fn close_error(&self, open: Span) -> Fail {
        if matches!(self.peek().tok, Tok::Eof) {
            fail(
                open,
                ExprErrorKind::Unbalanced("this `(` is never closed".to_string()),
            )
        } else {
            self.unexpected("`)` or an operator")
        }
    }

    /// An atom starting with a name.
    fn name(&mut self) -> PResult {
        #[derive(Clone, Copy)]
        enum What {
            Func(Func),
            Min,
            Max,
            Sum,
            Norm2,
            X,
            Other,
        }
        let t = self.peek();
        let span = t.span;
        let what = match &t.tok {
            Tok::Ident(name) => match (Func::from_name(name), name.as_str()) {
                (Some(f), _) => What::Func(f),
                (None, "min") => What::Min,
                (None, "max") => What::Max,
                (None, "sum") => What::Sum,
                (None, "norm2") => What::Norm2,
                (None, "x") => What::X,
                _ => What::Other,
            },
            _ => What::Other,
        };
        match what {
            What::Func(f) => self.call(f, span),
            What::Min => self.min_max(BinOp::Min, span),
            What::Max if self.max_is_reduction() => self.reduction(ReduceKind::Max, span),
            What::Max => self.min_max(BinOp::Max, span),
            What::Sum => self.reduction(ReduceKind::Sum, span),
            What::Norm2 => self.norm2(span),
            What::X => self.coordinate(span),
            What::Other => self.plain_name(),
        }
    }

    /// Whether `max` at the current token opens a reduction (`max(i in …`) rather than `max(a, b)`.
    fn max_is_reduction(&self) -> bool {
        self.peek_at(1).tok == Tok::LParen
            && matches!(&self.peek_at(2).tok, Tok::Ident(_))
            && matches!(&self.peek_at(3).tok, Tok::Ident(w) if w == "in")
    }

    /// `pi`, `d`, `t`, `u`, a bare name or `name[index]`.
    fn plain_name(&mut self) -> PResult {
        let t = self.peek();
        let span = t.span;
        let Tok::Ident(name) = &t.tok else {
            return Err(self.unexpected("a name"));
        };
        let name = name.clone();
        let simple = match name.as_str() {
            "pi" => Some(ExprKind::Const(std::f64::consts::PI)),
            "d" => Some(ExprKind::Dim),
            "t" => Some(ExprKind::Time),
            "u" => Some(ExprKind::Solution),
            _ => None,
        };
        if let Some(kind) = simple {
            self.bump();
            return match self.peek().tok {
                Tok::LBracket => Err(fail(
                    span,
                    ExprErrorKind::Type(format!("`{name}` is a number and cannot be indexed")),
                )),
                Tok::LParen => Err(unknown_function(name, span)),
                _ => Ok(Self::leaf(kind, span)),
            };
        }
        match name.as_str() {
            "in" => Err(self.unexpected("an expression")),
            _ => {
                self.bump();
                match self.peek().tok {
                    Tok::LParen => Err(unknown_function(name, span)),
                    Tok::LBracket => {
                        let (index, end) = self.bracket_index()?;
                        Ok(Self::leaf(
                            ExprKind::Param {
                                name,
                                index: Some(index),
                            },
                            join(span, end),
                        ))
                    }
                    _ if self.reduce_var.as_deref() == Some(name.as_str()) => {
                        Err(fail(
                            span,
                            ExprErrorKind::Type(format!(
                                "the reduction variable `{name}` can only index, as in x[{name}] or c[{name}+1]"
                            )),
                        ))
                    }
                    _ => Ok(Self::leaf(ExprKind::Term(name), span)),
                }
            }
        }
    }

    /// `x[index]`, with `x` at `span`.
    fn coordinate(&mut self, span: Span) -> PResult {
        self.bump();
        if !self.is(&Tok::LBracket) {
            return Err(fail(
                span,
                ExprErrorKind::Type(
                    "`x` is the coordinate vector; read one coordinate, as in x[0], or x[i] inside a reduction"
                        .to_string(),
                ),
            ));
        }
        let (index, end) = self.bracket_index()?;
        Ok(Self::leaf(ExprKind::Coord(index), join(span, end)))
    }

    /// `[ index ]`: the index and the span of the `]`.
    fn bracket_index(&mut self) -> Result<(Index, Span), Fail> {
        self.bump();
        let index = self.index()?;
        if !self.is(&Tok::RBracket) {
            return Err(self.unexpected("`]`"));
        }
        Ok((index, self.bump()))
    }

    fn index(&mut self) -> Result<Index, Fail> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Ident(v) if v != "d" => {
                match &self.reduce_var {
                    Some(var) if *var == v => {}
                    Some(var) => {
                        return Err(fail(
                            t.span,
                            ExprErrorKind::UnknownName {
                                name: v,
                                hint: format!("; the reduction variable here is `{var}`"),
                            },
                        ))
                    }
                    None => {
                        self.bump();
                        let k = self.signed_offset().unwrap_or(0);
                        return Err(fail(
                            t.span,
                            ExprErrorKind::WindowOutsideReduction(window_text(&v, k)),
                        ));
                    }
                }
                self.bump();
                Ok(Index::Window(self.signed_offset()?))
            }
            Tok::Ident(_) | Tok::Num { .. } | Tok::Minus => Ok(Index::Fixed(self.bound()?)),
            _ => {
                Err(self.unexpected("an index: an integer, `d`, `d-1`, or the reduction variable"))
            }
        }
    }

    /// An optional `+ INT` or `- INT` (0 when absent).
    fn signed_offset(&mut self) -> Result<i64, Fail> {
        let negative = match self.peek().tok {
            Tok::Plus => false,
            Tok::Minus => true,
            _ => return Ok(0),
        };
        self.bump();
        let k = self.int()?;
        Ok(if negative { -k } else { k })
    }

    fn int(&mut self) -> Result<i64, Fail> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Num {
                int: true, text, ..
            } => {
                self.bump();
                text.parse::<i64>()
                    .map_err(|_| fail(t.span, ExprErrorKind::BadNumber(text)))
            }
            _ => Err(self.unexpected("an integer")),
        }
    }

    fn bound(&mut self) -> Result<DimExpr, Fail> {
        match &self.peek().tok {
            Tok::Ident(d) if d == "d" => {
                self.bump();
                Ok(DimExpr::dim_plus(self.signed_offset()?))
            }
            Tok::Minus => {
                self.bump();
                Ok(DimExpr::constant(-self.int()?))
            }
            Tok::Num { .. } => Ok(DimExpr::constant(self.int()?)),
            _ => Err(self.unexpected("a bound: an integer, `d`, or `d` plus or minus an integer")),
        }
    }

    /// Consumes `name (` and returns the span of the `(`.
    fn open_call(&mut self, name: &str) -> Result<Span, Fail> {
        self.bump();
        if !self.is(&Tok::LParen) {
            return Err(self.unexpected(&format!("`(` after `{name}`")));
        }
        self.open_parens += 1;
        Ok(self.bump())
    }

    /// Comma-separated arguments up to and including the `)` closing `open`.
    fn args(&mut self, open: Span) -> Result<(Vec<Node>, Span), Fail> {
        let mut args = Vec::new();
        if !matches!(self.peek().tok, Tok::RParen) {
            loop {
                args.push(self.expr()?);
                if !matches!(self.peek().tok, Tok::Comma) {
                    break;
                }
                self.bump();
            }
        }
        let close = self.close(open)?;
        Ok((args, close))
    }

    fn call(&mut self, f: Func, span: Span) -> PResult {
        let open = self.open_call(f.name())?;
        let (args, close) = self.args(open)?;
        self.finish_call(f, span, args, close)
    }

    fn finish_call(&self, f: Func, span: Span, args: Vec<Node>, close: Span) -> PResult {
        let got = args.len();
        let mut it = args.into_iter();
        match (it.next(), it.next()) {
            (Some(a), None) => self.node(ExprKind::Call(f, a.e), join(span, close), a.h + 1, span),
            _ => Err(arity(f.name(), "1", got, span)),
        }
    }

    fn min_max(&mut self, op: BinOp, span: Span) -> PResult {
        let name = if op == BinOp::Min { "min" } else { "max" };
        let open = self.open_call(name)?;
        let (args, close) = self.args(open)?;
        self.finish_min_max(op, span, args, close)
    }

    fn finish_min_max(&self, op: BinOp, span: Span, args: Vec<Node>, close: Span) -> PResult {
        let name = if op == BinOp::Min { "min" } else { "max" };
        let got = args.len();
        let mut it = args.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), None) => {
                let h = 1 + a.h.max(b.h);
                self.node(ExprKind::Binary(op, a.e, b.e), join(span, close), h, span)
            }
            _ => Err(arity(name, "2", got, span)),
        }
    }

    fn reduction(&mut self, kind: ReduceKind, span: Span) -> PResult {
        let name = if kind == ReduceKind::Sum {
            "sum"
        } else {
            "max"
        };
        if self.reduce_var.is_some() {
            return Err(fail(span, ExprErrorKind::NestedReduction));
        }
        let open = self.open_call(name)?;
        let var = match &self.peek().tok {
            Tok::Ident(v) if is_name(v) => v.clone(),
            _ => {
                return Err(self.unexpected(&format!(
                    "a reduction variable, as in {name}(i in 0..d, x[i])"
                )))
            }
        };
        self.bump();
        if self.peek().tok != Tok::Ident("in".to_string()) {
            return Err(self.unexpected("`in`"));
        }
        self.bump();
        let lo = self.bound()?;
        if !self.is(&Tok::DotDot) {
            return Err(self.unexpected("`..`"));
        }
        self.bump();
        let hi = self.bound()?;
        if !self.is(&Tok::Comma) {
            return Err(self.unexpected(&format!("`,` and the body of `{name}`")));
        }
        self.bump();
        self.reduce_var = Some(var.clone());
        let body = self.args(open);
        self.reduce_var = None;
        let (args, close) = body?;
        let got = 1 + args.len();
        let mut it = args.into_iter();
        match (it.next(), it.next()) {
            (Some(body), None) => self.node(
                ExprKind::Reduce {
                    kind,
                    var,
                    lo,
                    hi,
                    body: body.e,
                },
                join(span, close),
                body.h + 1,
                span,
            ),
            _ => Err(arity(name, "2 (a range and a body)", got, span)),
        }
    }

    fn norm2(&mut self, span: Span) -> PResult {
        if self.reduce_var.is_some() {
            return Err(fail(span, ExprErrorKind::NestedReduction));
        }
        let open = self.open_call("norm2")?;
        if self.peek().tok != Tok::Ident("x".to_string()) {
            return Err(self.unexpected("`x` (norm2 takes the coordinate vector: norm2(x))"));
        }
        self.bump();
        let close = self.close(open)?;
        let whole = join(span, close);
        let at = |kind| Box::new(Expr::at(kind, whole));
        let body = ExprKind::Binary(
            BinOp::Pow,
            at(ExprKind::Coord(Index::Window(0))),
            at(ExprKind::Const(2.0)),
        );
        Ok(Node {
            e: Box::new(Expr::at(
                ExprKind::Reduce {
                    kind: ReduceKind::Sum,
                    var: "i".to_string(),
                    lo: DimExpr::constant(0),
                    hi: DimExpr::dim_plus(0),
                    body: at(body),
                },
                whole,
            )),
            h: 3,
        })
    }
}

fn unknown_function(name: String, span: Span) -> Fail {
    fail(
        span,
        ExprErrorKind::UnknownFunction {
            name,
            known: KNOWN_FUNCTIONS.to_string(),
        },
    )
}

fn arity(name: &str, expected: &str, got: usize, span: Span) -> Fail {
    fail(
        span,
        ExprErrorKind::Arity {
            name: name.to_string(),
            expected: expected.to_string(),
            got,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> ExprError {
        match parse(src) {
            Ok(e) => panic!("{src:?} parsed to {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn numbers_lex_in_every_documented_form() {
        for (src, v) in [
            ("2", 2.0),
            ("0.5", 0.5),
            (".5", 0.5),
            ("2.", 2.0),
            ("1e-3", 1e-3),
            ("6.02E23", 6.02e23),
            ("2.e1", 20.0),
            ("1e+2", 100.0),
        ] {
            let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.kind, ExprKind::Const(v), "{src}");
        }
    }

    #[test]
    fn range_dots_are_not_a_decimal_point() {
        let e = parse("sum(i in 0..d, x[i])").unwrap_or_else(|e| panic!("{e}"));
        let ExprKind::Reduce { lo, hi, .. } = e.kind else {
            panic!("not a reduction");
        };
        assert_eq!((lo, hi), (DimExpr::constant(0), DimExpr::dim_plus(0)));
    }

    #[test]
    fn spans_count_lines_and_characters_with_tabs_as_one_column() {
        let e = parse("1 +\n\t# comment\n\t  \tfoo(x[0])").err();
        let e = e.unwrap_or_else(|| panic!("parsed"));
        assert_eq!((e.span.line, e.span.col), (3, 5));
        // A multi-byte character counts as one column; the byte offsets stay exact.
        let e = err("# é\n  é");
        assert_eq!((e.span.line, e.span.col), (2, 3));
        assert_eq!((e.span.start, e.span.end), (7, 9));
    }

    #[test]
    fn binary_span_covers_both_operands_and_parentheses() {
        let e = parse("  (a + b) * c ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.span.col, e.span.start, e.span.end), (3, 2, 13));
        let ExprKind::Binary(BinOp::Mul, a, b) = &e.kind else {
            panic!("not a product");
        };
        assert_eq!((a.span.start, a.span.end), (2, 9));
        assert_eq!((b.span.start, b.span.end), (12, 13));
    }

    #[test]
    fn lexical_error_after_a_syntax_error_is_not_reported_first() {
        let e = err("a b $");
        assert!(matches!(e.kind, ExprErrorKind::Expected { .. }), "{e}");
        assert_eq!(e.span.col, 3);
    }

    #[test]
    fn names_exclude_reserved_words() {
        assert!(is_name("lap") && is_name("_c2") && is_name("u_t"));
        assert!(!is_name("x") && !is_name("sin") && !is_name("2a") && !is_name(""));
    }
}
