//! Native code for the CPU backend's primal loops: a compiled [`Tape`] is translated to C, built
//! with the system C compiler into a shared library (cached on disk by the hash of its source) and
//! loaded at run time, so that a window sum runs as one fused loop whose intermediates live in
//! registers instead of one pass over lane slots per instruction.
//!
//! The C code is the tape, instruction for instruction: the same f32 operations in the same order,
//! the same fast `exp`/`ln`/`sin`/`cos`/`tanh`/`atan` polynomials (ported from [`super::super::simd`]
//! and [`crate::rng::ln_f32`]), the same per-lane f32 partial sums folded into f64 every
//! [`FOLD_BLOCKS`] blocks. It is compiled with `-ffp-contract=off` (no fused multiply-adds, which
//! Rust never forms either) and without `-ffast-math`, so its results are bit for bit those of the
//! tape; `core/tests/program_cpu.rs` checks exactly that on random programs.
//!
//! The one structural difference is where the tape recomputes a lane whose argument falls outside a
//! fast function's range (with `std` in f64): the vectorised C loop only notes that it happened, and
//! the block is then run again from a copy of its partial sums by a second, scalar copy of the loop
//! that applies those fix-ups lane by lane as the tape does.
//!
//! Only loops whose accumulators are all sums are compiled (a max needs the tape's argmax search),
//! and only where a C compiler works: otherwise, and under [`NativePrograms::Never`], loops run on
//! the tape.

// Off Unix nothing loads a library, so the C generator below is compiled but unused there.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::fmt::Write as _;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
#[cfg(unix)]
use std::sync::{Arc, Mutex};

use super::{Arith, BinOp, CpuLoop, Form, Instr, Out, Src, Tape, UnOp, BLOCK, FOLD_BLOCKS};
use crate::expr::Func;

/// When the CPU backend compiles loops to native code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NativePrograms {
    /// Loops of at least [`AUTO_MIN_WINDOWS`] windows, when a C compiler works (else the tape,
    /// with one line on stderr saying so).
    #[default]
    Auto,
    /// Every loop that can be compiled, whatever its size; a compiler that fails is an error.
    Always,
    /// Never: every loop runs on the tape.
    Never,
}

impl NativePrograms {
    /// The policy named by `STDE_CPU_PROGRAMS` (`auto`, `native` or `tape`), else [`Self::Auto`].
    /// An unknown value is reported once on stderr and read as `auto`.
    pub fn from_env() -> Self {
        match std::env::var("STDE_CPU_PROGRAMS").as_deref() {
            Err(_) | Ok("auto") | Ok("") => Self::Auto,
            Ok("native") => Self::Always,
            Ok("tape") => Self::Never,
            Ok(other) => {
                static WARNED: OnceLock<()> = OnceLock::new();
                WARNED.get_or_init(|| {
                    eprintln!(
                        "stde: STDE_CPU_PROGRAMS={other:?} is not one of auto, native, tape; using auto"
                    );
                });
                Self::Auto
            }
        }
    }
}

/// Under [`NativePrograms::Auto`], loops with fewer windows stay on the tape: compiling costs
/// ~0.1 s once, and a short loop is cheap either way.
pub const AUTO_MIN_WINDOWS: usize = 256;

#[cfg(unix)]
/// `void loop(row, params, scalars, lo, hi, totals)`.
type LoopFn = unsafe extern "C" fn(*const f32, *const f32, *const f32, i64, i64, *mut f64);

/// A loop compiled to native code, with the extents it reads (checked before every call, since C
/// does not check them).
#[cfg(unix)]
#[derive(Clone)]
pub(super) struct NativeLoop {
    f: LoopFn,
    /// Keeps the library that holds `f` loaded.
    _lib: Arc<libloading::Library>,
    /// The row must hold at least this many values.
    row_len: usize,
    /// The parameters must hold at least this many values.
    params_len: usize,
    /// The scalars must hold at least this many values.
    scalars_len: usize,
}

/// Off Unix there is no loader: every loop runs on the tape.
#[cfg(not(unix))]
#[derive(Clone, Debug)]
pub(super) enum NativeLoop {}

#[cfg(not(unix))]
impl NativeLoop {
    pub(super) fn run(&self, _: &CpuLoop, _: &[f32], _: &[f32], _: &[f32], _: &mut [f64]) -> bool {
        match *self {}
    }
}

#[cfg(unix)]
impl std::fmt::Debug for NativeLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeLoop")
            .field("row_len", &self.row_len)
            .field("params_len", &self.params_len)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
impl NativeLoop {
    /// The loop's accumulators at one point into `totals`, or `false` (nothing done) when a buffer
    /// is shorter than the loop reads, so that the caller's tape reports it.
    pub(super) fn run(
        &self,
        lp: &CpuLoop,
        row: &[f32],
        params: &[f32],
        scalars: &[f32],
        totals: &mut [f64],
    ) -> bool {
        if row.len() < self.row_len
            || params.len() < self.params_len
            || scalars.len() < self.scalars_len
            || totals.len() < lp.sums.len()
        {
            return false;
        }
        #[allow(unsafe_code)]
        // SAFETY: the function was generated from `lp`'s tape; it reads `row` below `row_len`,
        // `params` below `params_len` and `scalars` below `scalars_len` (computed from the same
        // tape, checked above), writes `totals[..n_acc]`, and keeps no pointer after returning.
        unsafe {
            (self.f)(
                row.as_ptr(),
                params.as_ptr(),
                scalars.as_ptr(),
                lp.lo as i64,
                lp.hi as i64,
                totals.as_mut_ptr(),
            );
        }
        true
    }
}

/// The C functions every generated file starts with: the fast f32 functions of the tape.
const PRELUDE: &str = r#"/* stde: a CPU program loop, generated from its tape (do not edit; cached by source hash). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <float.h>

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float of_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
#define ROUND_MAGIC 12582912.0f
#define EXP_FAST(v) ((v) >= -87.0f && (v) <= 88.0f)
#define LN_FAST(v) ((v) >= FLT_MIN && (v) <= FLT_MAX)
#define SINCOS_FAST(v) (fabsf(v) <= 8192.0f)

static inline float f_exp(float v) {
    v = v < -87.0f ? -87.0f : v;
    v = v > 88.0f ? 88.0f : v;
    float t = v * 1.44269504088896340736f + ROUND_MAGIC;
    float n = t - ROUND_MAGIC;
    float r = v - n * 0.693359375f - n * -2.12194440e-4f;
    float z = r * r;
    float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
        + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * z + r + 1.0f;
    uint32_t n_int = bits_of(t) - bits_of(ROUND_MAGIC);
    return p * of_bits((n_int + 127u) << 23);
}

static inline float f_ln(float x) {
    uint32_t b = bits_of(x);
    int32_t exponent = (int32_t)((b >> 23) & 0xffu) - 127;
    float mantissa = of_bits((b & 0x007fffffu) | 0x3f800000u);
    int big = mantissa > 1.41421356237309504880f;
    float m = big ? mantissa * 0.5f : mantissa;
    float e = (float)(exponent + big);
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float s2 = s * s;
    float poly = 1.0f + s2 * (1.0f / 3.0f + s2 * (0.2f + s2 * (1.0f / 7.0f + s2 * (1.0f / 9.0f))));
    return e * 0.69314575f + (e * 1.4286068e-6f + 2.0f * s * poly);
}

typedef struct { float s, c; } sincos_t;
static inline sincos_t f_sincos(float v) {
    float t = v * 0.636619772367581343076f + ROUND_MAGIC;
    float j = t - ROUND_MAGIC;
    uint32_t q = bits_of(t) - bits_of(ROUND_MAGIC);
    float r = v - j * 1.5703125f - j * 4.837512969970703125e-4f - j * 7.549789954891882e-8f;
    float z = r * r;
    float sr = r + r * z * ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f);
    float cr = 1.0f - 0.5f * z
        + z * z * ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f);
    int swap = (q & 1u) != 0;
    float ss = swap ? cr : sr;
    float cc = swap ? sr : cr;
    sincos_t out;
    out.s = of_bits(bits_of(ss) ^ ((q & 2u) << 30));
    out.c = of_bits(bits_of(cc) ^ (((q + 1u) & 2u) << 30));
    return out;
}

static inline float f_tanh(float v) {
    const float clamp = 7.905311107635498f;
    float c = v > clamp ? clamp : v;
    c = c < -clamp ? -clamp : c;
    float x2 = c * c;
    float p = ((((((-2.76076847742355e-16f * x2 + 2.00018790482477e-13f) * x2
        - 8.60467152213735e-11f) * x2 + 5.12229709037114e-8f) * x2 + 1.48572235717979e-5f) * x2
        + 6.37261928875436e-4f) * x2 + 4.89352455891786e-3f) * c;
    float q = ((1.19825839466702e-6f * x2 + 1.18534705686654e-4f) * x2 + 2.26843463243900e-3f) * x2
        + 4.89352518554385e-3f;
    return fabsf(v) < 4e-4f ? v : p / q;
}

static inline float f_atan(float v) {
    float x = fabsf(v);
    int big = x > 2.414213562373095f;
    int mid = x > 0.414213562373095f;
    float num = big ? -1.0f : (mid ? x - 1.0f : x);
    float den = big ? x : (mid ? x + 1.0f : 1.0f);
    float base = big ? 1.57079632679489661923f : (mid ? 0.785398163397448309616f : 0.0f);
    float r = num / den;
    float z = r * r;
    float p = (((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z
        - 3.33329491539e-1f) * z * r + r;
    float y = base + p;
    return of_bits(bits_of(y) | (bits_of(v) & 0x80000000u));
}

static void fold(float *lanes, double *total) {
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int c = 0; c < BLOCK; c += 8)
        for (int l = 0; l < 8; l++) part[l] += (double)lanes[c + l];
    double s = -0.0;
    for (int l = 0; l < 8; l++) s += part[l];
    *total += s;
    for (int h = 0; h < BLOCK; h++) lanes[h] = 0.0f;
}
"#;

/// How a slot's current value is read in the generated C.
#[derive(Clone, Debug)]
enum Def {
    /// Not written yet.
    None,
    /// A scalar variable (a broadcast slot, or a value of the body loop).
    Var(String),
    /// An array of the hoist loop, indexed by lane.
    Array(String),
}

/// Which of the two copies of a loop body is generated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Vectorised: fast functions everywhere, `bad` set where the tape would recompute a lane.
    Fast,
    /// Scalar: the tape's lane-by-lane fix-ups in f64.
    Exact,
}

/// The C code of one loop, and the extents it reads.
struct LoopSource {
    code: String,
    row_len: usize,
    params_len: usize,
    scalars_len: usize,
}

/// Builds the C text of one tape, as a sequence of statements per lane `h`.
struct Emitter<'a> {
    tape: &'a Tape,
    /// Current definition of every slot.
    defs: Vec<Def>,
    /// Fresh variable counter.
    next: usize,
    /// Largest row index read relative to `i0 + h` at lane 0 (`k`, plus the span in the hoist).
    row_hi: i64,
    row_lo: i64,
    par_hi: i64,
    par_lo: i64,
    scalars_len: usize,
    variant: Variant,
    /// Per accumulator: whether the fast body already saved its lanes for a re-run.
    saved: Vec<bool>,
}

/// A loop's native code, or why it runs on the tape (shown by [`super::CpuProgram::listing`]).
pub(super) type NativeOrTape = Result<NativeLoop, &'static str>;

/// Why a tape is left to the interpreter.
#[derive(Debug)]
struct Unsupported(&'static str);

fn arith(op: Arith) -> &'static str {
    match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
    }
}

impl Emitter<'_> {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    /// The C expression of `src` at lane `h` (the hoist loop when `hoist`, with `lanes` lanes).
    fn src(&mut self, src: Src, hoist: bool) -> Result<String, Unsupported> {
        Ok(match src {
            Src::Slot(s, off) => match &self.defs[s as usize] {
                Def::Var(v) if off == 0 => v.clone(),
                Def::Array(a) => format!("{a}[h + {off}]"),
                Def::Var(_) => return Err(Unsupported("a lane offset into a body value")),
                Def::None => return Err(Unsupported("a slot read before it is written")),
            },
            Src::Row(k) => {
                let k = i64::from(k);
                self.row_lo = self.row_lo.min(k);
                let extra = if hoist { self.tape.span as i64 } else { 0 };
                self.row_hi = self.row_hi.max(k + extra);
                format!("r[h + ({k})]")
            }
            Src::Par(b) => {
                self.par_lo = self.par_lo.min(b);
                let extra = if hoist { self.tape.span as i64 } else { 0 };
                self.par_hi = self.par_hi.max(b + extra);
                format!("p[h + ({b})]")
            }
            Src::Scalar(s) => {
                self.scalars_len = self.scalars_len.max(s as usize + 1);
                format!("sc{s}")
            }
        })
    }

    /// Writes `value` to slot `dst`: a new variable in the body, a new array in the hoist loop.
    fn store(&mut self, out: &mut String, decls: &mut String, dst: u32, value: &str, hoist: bool) {
        if hoist {
            let name = self.fresh("hz");
            let _ = writeln!(
                decls,
                "    float {name}[BLOCK + SPAN + 16] __attribute__((aligned(64)));"
            );
            let _ = writeln!(out, "            {name}[h] = {value};");
            self.defs[dst as usize] = Def::Array(name);
        } else {
            let name = self.fresh("v");
            let _ = writeln!(out, "            float {name} = {value};");
            self.defs[dst as usize] = Def::Var(name);
        }
    }

    /// Before the fast body's first update of accumulator `acc`: saves its lane, in the same pass
    /// (one store where a separate copy of the block would load and store every lane again), so a
    /// block that needs the exact re-run can restore it.
    fn save(&mut self, out: &mut String, acc: u32) {
        let a = acc as usize;
        if self.variant == Variant::Fast && !self.saved[a] {
            self.saved[a] = true;
            let _ = writeln!(out, "            bak{acc}[h] = acc{acc}[h];");
        }
    }

    /// A fast function of `a` with the tape's fix-up rule.
    fn call(&mut self, out: &mut String, f: Func, a: &str) -> String {
        let fast = |name: &str| format!("{name}({a})");
        let fixed = |fast_expr: String, ok: &str, exact: &str, out: &mut String, v: Variant| match v
        {
            Variant::Fast => {
                let _ = writeln!(out, "            bad |= !({ok});");
                fast_expr
            }
            Variant::Exact => {
                format!("(({ok}) ? {fast_expr} : (float){exact}((double)({a})))")
            }
        };
        let v = self.variant;
        match f {
            Func::Exp => fixed(fast("f_exp"), &format!("EXP_FAST({a})"), "exp", out, v),
            Func::Log => fixed(fast("f_ln"), &format!("LN_FAST({a})"), "log", out, v),
            Func::Sin => fixed(
                format!("f_sincos({a}).s"),
                &format!("SINCOS_FAST({a})"),
                "sin",
                out,
                v,
            ),
            Func::Cos => fixed(
                format!("f_sincos({a}).c"),
                &format!("SINCOS_FAST({a})"),
                "cos",
                out,
                v,
            ),
            Func::Tanh => fast("f_tanh"),
            Func::Atan => fast("f_atan"),
            Func::Sqrt => fast("sqrtf"),
            Func::Abs => fast("fabsf"),
        }
    }

    /// The statements of `ins` at lane `h`.
    fn instr(
        &mut self,
        out: &mut String,
        decls: &mut String,
        ins: &Instr,
        hoist: bool,
    ) -> Result<(), Unsupported> {
        match *ins {
            Instr::Un { op, dst, a } => {
                if matches!(a, Src::Scalar(_)) {
                    return Err(Unsupported("a unary op of a broadcast scalar"));
                }
                let a = self.src(a, hoist)?;
                // Operands are bound to a variable first so that a fix-up reads them once.
                let t = self.fresh("t");
                let _ = writeln!(out, "            float {t} = {a};");
                let value = match op {
                    UnOp::Neg => format!("-{t}"),
                    UnOp::PowInt(n) => {
                        let m = n.unsigned_abs();
                        let pow = match m {
                            0 => "1.0f".to_string(),
                            1 => t.clone(),
                            2 => format!("{t} * {t}"),
                            3 => format!("{t} * {t} * {t}"),
                            _ => {
                                let acc = self.fresh("w");
                                let _ = writeln!(out, "            float {acc} = {t};");
                                for _ in 1..m {
                                    let _ = writeln!(out, "            {acc} *= {t};");
                                }
                                acc
                            }
                        };
                        if n < 0 {
                            format!("1.0f / ({pow})")
                        } else {
                            pow
                        }
                    }
                    UnOp::Call(f) => self.call(out, f, &t),
                };
                self.store(out, decls, dst, &value, hoist);
            }
            Instr::Bin { op, dst, a, b } => {
                if matches!((a, b), (Src::Scalar(_), Src::Scalar(_))) {
                    return Err(Unsupported("a binary op of two broadcast scalars"));
                }
                if op == BinOp::Pow && matches!(a, Src::Scalar(_)) {
                    return Err(Unsupported("a power of a broadcast scalar"));
                }
                let (a, b) = (self.src(a, hoist)?, self.src(b, hoist)?);
                let (x, y) = (self.fresh("t"), self.fresh("t"));
                let _ = writeln!(out, "            float {x} = {a};");
                let _ = writeln!(out, "            float {y} = {b};");
                let value = match op {
                    BinOp::Add => format!("{x} + {y}"),
                    BinOp::Sub => format!("{x} - {y}"),
                    BinOp::Mul => format!("{x} * {y}"),
                    BinOp::Div => format!("{x} / {y}"),
                    BinOp::Min => format!("({y} < {x} ? {y} : {x})"),
                    BinOp::Max => format!("({y} > {x} ? {y} : {x})"),
                    BinOp::Pow => {
                        let l = self.fresh("t");
                        let _ = writeln!(out, "            float {l} = f_ln({x}) * {y};");
                        match self.variant {
                            Variant::Fast => {
                                let _ = writeln!(
                                    out,
                                    "            bad |= !EXP_FAST({l}) | !LN_FAST({x});"
                                );
                                format!("f_exp({l})")
                            }
                            Variant::Exact => format!(
                                "((!LN_FAST({x}) || !EXP_FAST({y} * f_ln({x}))) ? \
                                 (float)exp((double){y} * log((double){x})) : f_exp({l}))"
                            ),
                        }
                    }
                };
                self.store(out, decls, dst, &value, hoist);
            }
            Instr::SinCos { sin, cos, a } => {
                if matches!(a, Src::Scalar(_)) {
                    return Err(Unsupported("sin and cos of a broadcast scalar"));
                }
                let a = self.src(a, hoist)?;
                let (t, sc) = (self.fresh("t"), self.fresh("sc"));
                let _ = writeln!(out, "            float {t} = {a};");
                let _ = writeln!(out, "            sincos_t {sc} = f_sincos({t});");
                // The tape's fix-up for `SinCos` recomputes lanes with |a| > 8192 (not NaN), with
                // the f32 `sinf`/`cosf` (`f32::sin_cos`).
                let (s, c) = match self.variant {
                    Variant::Fast => {
                        let _ = writeln!(out, "            bad |= fabsf({t}) > 8192.0f;");
                        (format!("{sc}.s"), format!("{sc}.c"))
                    }
                    Variant::Exact => (
                        format!("(fabsf({t}) > 8192.0f ? sinf({t}) : {sc}.s)"),
                        format!("(fabsf({t}) > 8192.0f ? cosf({t}) : {sc}.c)"),
                    ),
                };
                self.store(out, decls, sin, &s, hoist);
                self.store(out, decls, cos, &c, hoist);
            }
            Instr::Arith {
                form,
                srcs,
                out: to,
            } => {
                let mut ops = Vec::new();
                for s in srcs.iter().flatten() {
                    ops.push(self.src(*s, hoist)?);
                }
                let get = |i: usize| ops.get(i).cloned().unwrap_or_default();
                let value = match form {
                    Form::Two(p) => format!("({} {} {})", get(0), arith(p), get(1)),
                    Form::Three { p, q, rev } => {
                        let inner = format!("({} {} {})", get(0), arith(p), get(1));
                        if rev {
                            format!("({} {} {inner})", get(2), arith(q))
                        } else {
                            format!("({inner} {} {})", arith(q), get(2))
                        }
                    }
                    Form::Four { p, r, q } => format!(
                        "(({} {} {}) {} ({} {} {}))",
                        get(0),
                        arith(p),
                        get(1),
                        arith(q),
                        get(2),
                        arith(r),
                        get(3)
                    ),
                };
                match to {
                    Out::Store(dst) => self.store(out, decls, dst, &value, hoist),
                    Out::Acc { acc, neg, m } => {
                        if hoist {
                            return Err(Unsupported("an accumulation in the hoist tape"));
                        }
                        let value = match m {
                            None => value,
                            Some(m) => format!("({} * {value})", self.src(m, hoist)?),
                        };
                        let op = if neg { "-=" } else { "+=" };
                        self.save(out, acc);
                        let _ = writeln!(out, "            acc{acc}[h] {op} {value};");
                    }
                }
            }
            Instr::Acc { acc, sum, neg, a } => {
                if hoist || !sum {
                    return Err(Unsupported("a max accumulator"));
                }
                let a = self.src(a, hoist)?;
                let op = if neg { "-=" } else { "+=" };
                self.save(out, acc);
                let _ = writeln!(out, "            acc{acc}[h] {op} {a};");
            }
        }
        Ok(())
    }
}

/// The hoist and body loops of one block, for one variant.
fn block_loops<'t>(
    tape: &'t Tape,
    variant: Variant,
    decls: &mut String,
    n_acc: usize,
) -> Result<(String, Emitter<'t>), Unsupported> {
    let mut e = Emitter {
        tape,
        defs: vec![Def::None; tape.n_slots],
        next: 0,
        row_hi: i64::MIN,
        row_lo: i64::MAX,
        par_hi: i64::MIN,
        par_lo: i64::MAX,
        scalars_len: 0,
        variant,
        saved: vec![false; n_acc],
    };
    for &(slot, s) in &tape.bcast {
        e.defs[slot as usize] = Def::Var(format!("sc{s}"));
        e.scalars_len = e.scalars_len.max(s as usize + 1);
    }
    let mut code = String::new();
    if !tape.hoist.is_empty() {
        code.push_str("        for (long h = 0; h < len + SPAN; h++) {\n");
        for ins in &tape.hoist {
            e.instr(&mut code, decls, ins, true)?;
        }
        code.push_str("        }\n");
    }
    code.push_str("        for (long h = 0; h < len; h++) {\n");
    for ins in &tape.body {
        e.instr(&mut code, decls, ins, false)?;
    }
    code.push_str("        }\n");
    Ok((code, e))
}

/// The C function `name` for `lp`, or why it stays on the tape.
fn loop_source(lp: &CpuLoop, name: &str) -> Result<LoopSource, Unsupported> {
    if lp.sums.iter().any(|&s| !s) {
        return Err(Unsupported("a max accumulator"));
    }
    let tape = &lp.tape;
    let mut fast_decls = String::new();
    let (fast, e) = block_loops(tape, Variant::Fast, &mut fast_decls, lp.sums.len())?;
    let (row_lo, row_hi, par_lo, par_hi, n_scalars) =
        (e.row_lo, e.row_hi, e.par_lo, e.par_hi, e.scalars_len);
    let saved = e.saved.clone();
    let mut exact_decls = String::new();
    let (exact, _) = block_loops(tape, Variant::Exact, &mut exact_decls, lp.sums.len())?;
    let (lo, hi) = (lp.lo as i64, lp.hi as i64);
    if lo >= hi {
        return Err(Unsupported("an empty loop"));
    }
    // Extents over all windows: lane `h` of the block at `i0` reads `i0 + h + k`.
    if (row_lo != i64::MAX && lo + row_lo < 0) || (par_lo != i64::MAX && lo + par_lo < 0) {
        return Err(Unsupported("a read before the start of its buffer"));
    }
    // One past the largest index read, `hi − 1 + k`; nothing when the buffer is not read.
    let extent = |k: i64| {
        if k == i64::MIN {
            0
        } else {
            (hi + k).max(0) as usize
        }
    };
    let (row_len, params_len) = (extent(row_hi), extent(par_hi));
    let n_acc = lp.sums.len();
    let mut code = String::new();
    let _ = writeln!(
        code,
        "void {name}(const float *restrict row, const float *restrict params, \
         const float *restrict scalars, long lo, long hi, double *restrict totals) {{"
    );
    for s in 0..n_scalars {
        let _ = writeln!(code, "    const float sc{s} = scalars[{s}];");
    }
    for a in 0..n_acc {
        let _ = writeln!(
            code,
            "    float acc{a}[BLOCK] __attribute__((aligned(64))), bak{a}[BLOCK];\n    \
             for (int h = 0; h < BLOCK; h++) acc{a}[h] = 0.0f;\n    totals[{a}] = 0.0;"
        );
    }
    code.push_str(&fast_decls);
    // The exact copy's arrays have their own names (its counter restarts), so declare them in a
    // block of their own below.
    code.push_str("    long blocks = 0;\n    for (long i0 = lo; i0 < hi; i0 += BLOCK) {\n");
    code.push_str(
        "        long len = hi - i0 < BLOCK ? hi - i0 : BLOCK;\n        \
         const float *r = row + i0; const float *p = params + i0;\n        (void)r; (void)p;\n        \
         int bad = 0;\n",
    );
    code.push_str(&fast);
    code.push_str("        if (bad) {\n");
    // Lanes `len..` and accumulators the body never updates were not touched.
    for a in (0..n_acc).filter(|&a| saved[a]) {
        let _ = writeln!(
            code,
            "            for (long h = 0; h < len; h++) acc{a}[h] = bak{a}[h];"
        );
    }
    code.push_str(&exact_decls.replace("    float", "        float"));
    code.push_str(&exact);
    code.push_str("        }\n");
    let _ = writeln!(code, "        if (++blocks % {FOLD_BLOCKS} == 0) {{");
    for a in 0..n_acc {
        let _ = writeln!(code, "            fold(acc{a}, &totals[{a}]);");
    }
    code.push_str("        }\n    }\n");
    for a in 0..n_acc {
        let _ = writeln!(code, "    fold(acc{a}, &totals[{a}]);");
    }
    code.push_str("}\n");
    Ok(LoopSource {
        code,
        row_len,
        params_len,
        scalars_len: n_scalars,
    })
}

/// FNV-1a, 64 bits: a stable name for a cached library (not for security: the cache directory is
/// the user's own).
fn fnv1a(text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(unix)]
/// Where compiled loops are kept: `$STDE_CACHE_DIR`, else `$XDG_CACHE_HOME/stde/programs`, else
/// `~/.cache/stde/programs`, else the system temporary directory.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STDE_CACHE_DIR") {
        return PathBuf::from(d).join("programs");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("stde").join("programs");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h)
            .join(".cache")
            .join("stde")
            .join("programs");
    }
    std::env::temp_dir().join("stde-programs")
}

#[cfg(unix)]
/// The C compiler: `$STDE_CC`, else `cc`.
fn compiler() -> String {
    std::env::var("STDE_CC").unwrap_or_else(|_| "cc".to_string())
}

#[cfg(unix)]
/// Flags: no fused multiply-adds and IEEE semantics (bit-identical to the tape), no `errno` (so
/// `sqrtf` vectorises), the machine's own vector width.
fn flags() -> Vec<&'static str> {
    let mut f = vec![
        "-O3",
        "-std=c11",
        "-ffp-contract=off",
        "-fno-math-errno",
        "-fPIC",
        "-shared",
    ];
    if cfg!(target_arch = "x86_64") {
        f.extend(["-march=native", "-mprefer-vector-width=512"]);
    } else if cfg!(target_arch = "aarch64") {
        f.push("-mcpu=native");
    }
    f
}

#[cfg(unix)]
/// Compiles `source` into `lib` (through a temporary file renamed into place, so that concurrent
/// compilations of the same source never load a half-written library).
fn compile(source: &str, dir: &Path, lib: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    remove_stale_temporaries(dir);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let src_path = dir.join(format!("tmp-{unique}.c"));
    let tmp_lib = dir.join(format!("tmp-{unique}.so"));
    std::fs::write(&src_path, source)
        .map_err(|e| format!("cannot write {}: {e}", src_path.display()))?;
    let cc = compiler();
    let output = std::process::Command::new(&cc)
        .args(flags())
        .arg("-o")
        .arg(&tmp_lib)
        .arg(&src_path)
        .arg("-lm")
        .output()
        .map_err(|e| format!("cannot run `{cc}`: {e}"));
    let output = output?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&src_path);
        let _ = std::fs::remove_file(&tmp_lib);
        let err = String::from_utf8_lossy(&output.stderr);
        let first = err.lines().find(|l| l.contains("error")).unwrap_or("");
        return Err(format!("`{cc}` failed ({}): {first}", output.status));
    }
    // The source stays beside its library, for whoever wants to read what runs.
    let _ = std::fs::rename(&src_path, lib.with_extension("c"));
    std::fs::rename(&tmp_lib, lib).map_err(|e| format!("cannot move the library into place: {e}"))
}

/// Removes temporary files over an hour old: what a process killed while compiling left behind
/// (a live compilation takes well under a second, so nothing in use is that old).
#[cfg(unix)]
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let hour = std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with("tmp-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > hour);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
/// Set once a compiler has failed under [`NativePrograms::Auto`]: later programs go straight to
/// the tape instead of failing again.
static AUTO_DISABLED: OnceLock<String> = OnceLock::new();

#[cfg(unix)]
/// Libraries loaded in this process, by source hash.
#[cfg(unix)]
type Loaded = Mutex<Vec<(u64, Arc<libloading::Library>)>>;

/// Libraries already loaded in this process, by source hash.
#[cfg(unix)]
fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(Vec::new()))
}

/// What `-march=native` compiles for: the processor's model and feature flags, so that a cache
/// directory shared between machines (a home directory on a cluster) never hands one machine a
/// library built for instructions it lacks.
#[cfg(unix)]
fn machine() -> &'static str {
    static MACHINE: OnceLock<String> = OnceLock::new();
    MACHINE.get_or_init(|| {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let first = |key: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or("")
                .to_string()
        };
        let mut id = format!(
            "{} {} {}",
            std::env::consts::ARCH,
            first("model name"),
            first("flags")
        );
        #[cfg(target_arch = "x86_64")]
        for (name, has) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
        ] {
            id.push_str(if has { " +" } else { " -" });
            id.push_str(name);
        }
        id
    })
}

#[cfg(unix)]
/// Loads (compiling it first unless cached) the library of `source`.
fn library(source: &str) -> Result<Arc<libloading::Library>, String> {
    let hash = fnv1a(&format!(
        "{source}\n{} {:?}\n{}",
        compiler(),
        flags(),
        machine()
    ));
    let mut cache = loaded().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, lib)) = cache.iter().find(|(h, _)| *h == hash) {
        return Ok(Arc::clone(lib));
    }
    let dir = cache_dir();
    let path = dir.join(format!("loop-{hash:016x}.so"));
    #[allow(unsafe_code)]
    // SAFETY: the library is one this module compiled from C code it generated; its only
    // initialisers are the C runtime's.
    let open = |p: &Path| unsafe { libloading::Library::new(p) };
    let lib = match path.exists().then(|| open(&path)) {
        Some(Ok(lib)) => lib,
        // Not cached, or a damaged file: compile (again).
        _ => {
            compile(source, &dir, &path)?;
            open(&path).map_err(|e| format!("cannot load {}: {e}", path.display()))?
        }
    };
    let lib = Arc::new(lib);
    cache.push((hash, Arc::clone(&lib)));
    Ok(lib)
}

#[cfg(unix)]
/// Compiles the loops of a program that `policy` selects; `None` for the others (on the tape).
///
/// # Errors
/// Under [`NativePrograms::Always`], a compiler that fails.
pub(super) fn compile_loops(
    loops: &[CpuLoop],
    policy: NativePrograms,
) -> Result<Vec<NativeOrTape>, String> {
    let mut out: Vec<NativeOrTape> = vec![Err("native programs are off"); loops.len()];
    let min_windows = match policy {
        NativePrograms::Never => return Ok(out),
        NativePrograms::Auto if AUTO_DISABLED.get().is_some() => {
            out.fill(Err("no working C compiler"));
            return Ok(out);
        }
        NativePrograms::Auto => AUTO_MIN_WINDOWS,
        NativePrograms::Always => 1,
    };
    let mut source = format!("#define BLOCK {BLOCK}\n{PRELUDE}");
    let mut chosen = Vec::new();
    for (l, lp) in loops.iter().enumerate() {
        if !lp.live {
            out[l] = Err("its sums are not read");
            continue;
        }
        if lp.hi.saturating_sub(lp.lo) < min_windows {
            out[l] = Err("too few windows to be worth compiling");
            continue;
        }
        let name = format!("stde_loop_{l}");
        match loop_source(lp, &name) {
            Ok(src) => {
                let _ = writeln!(
                    source,
                    "\n#define SPAN {}\n{}#undef SPAN",
                    lp.tape.span, src.code
                );
                chosen.push((l, name, src));
            }
            Err(Unsupported(why)) => out[l] = Err(why),
        }
    }
    if chosen.is_empty() {
        return Ok(out);
    }
    let lib = match library(&source) {
        Ok(lib) => lib,
        Err(e) if policy == NativePrograms::Auto => {
            AUTO_DISABLED.get_or_init(|| {
                eprintln!("stde: CPU programs run on the tape interpreter: {e}");
                e
            });
            for (l, _, _) in chosen {
                out[l] = Err("no working C compiler");
            }
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    for (l, name, src) in chosen {
        #[allow(unsafe_code)]
        // SAFETY: `name` is defined in the generated source with exactly the `LoopFn` signature.
        let f: LoopFn = unsafe {
            *lib.get::<LoopFn>(format!("{name}\0").as_bytes())
                .map_err(|e| format!("symbol {name}: {e}"))?
        };
        out[l] = Ok(NativeLoop {
            f,
            _lib: Arc::clone(&lib),
            row_len: src.row_len,
            params_len: src.params_len,
            scalars_len: src.scalars_len,
        });
    }
    Ok(out)
}

/// Off Unix: no loop is compiled; [`NativePrograms::Always`] is an error.
#[cfg(not(unix))]
pub(super) fn compile_loops(
    loops: &[CpuLoop],
    policy: NativePrograms,
) -> Result<Vec<NativeOrTape>, String> {
    match policy {
        NativePrograms::Always => Err("native CPU programs need a Unix C toolchain".into()),
        _ => Ok(vec![Err("native programs need Unix"); loops.len()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_stable() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
