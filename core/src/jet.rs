//! `Jet`: a scalar truncated Taylor series of runtime order `K` (`1 ≤ K ≤ 16`) with natural arithmetic.
//!
//! # Conventions
//!
//! A jet of order `K` describes a curve through a point, truncated after `t^K`. Two equivalent ways to
//! write its coefficients are in use (see `STDE.md` §2):
//!
//! * **Taylor coefficients** `c_0..=c_K`: the curve is `x(t) = Σ_k c_k·t^k`. This is what a [`Jet`]
//!   stores, because every propagation rule (Cauchy products, the recurrences in
//!   [`crate::series`]) is free of factorials in this form.
//! * **Derivative coefficients** `y_0..=y_K`: `y_k = dᵏ/dtᵏ x(t)` at `t = 0`, i.e. the curve is
//!   `x(t) = Σ_k y_k·t^k / k!` (the `jax.experimental.jet` convention). Pushing the curve
//!   `a + v_1·t + v_2·t²/2! + …` through `f` yields `y_k = dᵏ/dtᵏ f(x(t))|_{t=0}`, which is what the STDE
//!   estimators read off.
//!
//! The conversion is `y_k = k!·c_k` and `c_k = y_k / k!`. Use [`Jet::from_derivatives`] /
//! [`Jet::derivatives`] at the boundary and [`Jet::from_taylor`] / [`Jet::taylor`] inside.
//!
//! # Example
//!
//! ```
//! use stde_core::jet::Jet;
//! // f(x) = x·sin(x) along x(t) = 0.5 + t, so derivatives()[k] = f^(k)(0.5).
//! let x = Jet::variable(0.5, 3);
//! let f = &x * &x.sin();
//! let d = f.derivatives();
//! assert!((d[1] - (0.5f64.sin() + 0.5 * 0.5f64.cos())).abs() < 1e-14);
//! ```

use crate::series::{self, Unary};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// The largest supported jet order `K`.
pub const MAX_ORDER: usize = 16;

/// Panics unless `1 ≤ order ≤ MAX_ORDER`.
#[track_caller]
fn check_order(order: usize) {
    assert!(
        (1..=MAX_ORDER).contains(&order),
        "jet order must be in 1..={MAX_ORDER}, got {order}"
    );
}

/// A scalar jet: the Taylor coefficients `c_0..=c_K` of a curve `x(t) = Σ_k c_k·t^k`, `1 ≤ K ≤ 16`.
///
/// Every operation returns a new jet of the same order; binary operations require equal orders.
/// See the [module documentation](self) for the Taylor vs. derivative coefficient conventions.
#[derive(Clone, Debug, PartialEq)]
pub struct Jet {
    coeffs: Vec<f64>,
}

impl Jet {
    /// The constant curve `x(t) = c` of order `order`.
    ///
    /// # Panics
    /// If `order` is 0 or greater than [`MAX_ORDER`].
    #[track_caller]
    pub fn constant(c: f64, order: usize) -> Self {
        check_order(order);
        Self {
            coeffs: series::constant(c, order + 1),
        }
    }

    /// The independent variable `x(t) = x0 + t` of order `order`: pushing it through `f` gives
    /// `derivatives()[k] = f^(k)(x0)`.
    ///
    /// # Panics
    /// If `order` is 0 or greater than [`MAX_ORDER`].
    #[track_caller]
    pub fn variable(x0: f64, order: usize) -> Self {
        let mut j = Self::constant(x0, order);
        j.coeffs[1] = 1.0;
        j
    }

    /// A jet from Taylor coefficients `c_0..=c_K` (`x(t) = Σ c_k t^k`); the order is `len − 1`.
    ///
    /// # Panics
    /// If the order `coeffs.len() − 1` is 0 (or the vector is empty) or greater than [`MAX_ORDER`].
    #[track_caller]
    pub fn from_taylor(coeffs: Vec<f64>) -> Self {
        check_order(coeffs.len().saturating_sub(1));
        Self { coeffs }
    }

    /// A jet from derivative coefficients `y_0..=y_K` (`x(t) = Σ y_k t^k / k!`), stored as
    /// `c_k = y_k / k!`; the order is `len − 1`.
    ///
    /// # Panics
    /// If the order `derivs.len() − 1` is 0 (or the slice is empty) or greater than [`MAX_ORDER`].
    #[track_caller]
    pub fn from_derivatives(derivs: &[f64]) -> Self {
        check_order(derivs.len().saturating_sub(1));
        Self {
            coeffs: series::derivative_to_taylor(derivs),
        }
    }

    /// The order `K` (the jet has `K + 1` coefficients).
    pub fn order(&self) -> usize {
        self.coeffs.len() - 1
    }

    /// The Taylor coefficients `c_0..=c_K`.
    pub fn taylor(&self) -> &[f64] {
        &self.coeffs
    }

    /// The derivative coefficients `y_k = k!·c_k`, `k = 0..=K`.
    pub fn derivatives(&self) -> Vec<f64> {
        series::taylor_to_derivative(&self.coeffs)
    }

    /// The primal value `c_0 = y_0 = x(0)`.
    pub fn value(&self) -> f64 {
        self.coeffs[0]
    }

    /// Panics unless both jets have the same order.
    #[track_caller]
    fn check_same_order(&self, other: &Jet) {
        assert_eq!(
            self.order(),
            other.order(),
            "jet orders differ: {} vs {}",
            self.order(),
            other.order()
        );
    }

    /// Applies a binary series kernel to two jets of equal order.
    #[track_caller]
    fn binary(&self, other: &Jet, kernel: fn(&[f64], &[f64], &mut [f64])) -> Jet {
        self.check_same_order(other);
        let mut out = vec![0.0; self.coeffs.len()];
        kernel(&self.coeffs, &other.coeffs, &mut out);
        Jet { coeffs: out }
    }

    /// `σ(x(t))` for any elementwise [`Unary`] rule of [`crate::series`].
    pub fn unary(&self, op: Unary) -> Jet {
        Jet {
            coeffs: series::unary(op, &self.coeffs),
        }
    }

    /// `σ(x(t))` together with the Taylor series of `σ'(x(t))` (what the adjoint
    /// [`series::unary_adjoint`] consumes), both as jets.
    pub fn unary_with_derivative(&self, op: Unary) -> (Jet, Jet) {
        let n = self.coeffs.len();
        let mut out = vec![0.0; n];
        let mut deriv = vec![0.0; n];
        series::unary_forward(op, &self.coeffs, &mut out, &mut deriv);
        (Jet { coeffs: out }, Jet { coeffs: deriv })
    }

    /// `self + other`.
    ///
    /// # Panics
    /// If the orders differ.
    #[track_caller]
    pub fn add(&self, other: &Jet) -> Jet {
        self.binary(other, series::add)
    }

    /// `self − other`.
    ///
    /// # Panics
    /// If the orders differ.
    #[track_caller]
    pub fn sub(&self, other: &Jet) -> Jet {
        self.binary(other, series::sub)
    }

    /// `self · other` (Cauchy product of the Taylor coefficients).
    ///
    /// # Panics
    /// If the orders differ.
    #[track_caller]
    pub fn mul(&self, other: &Jet) -> Jet {
        self.binary(other, series::mul)
    }

    /// `self / other` (needs `other.value() ≠ 0`).
    ///
    /// # Panics
    /// If the orders differ.
    #[track_caller]
    pub fn div(&self, other: &Jet) -> Jet {
        self.binary(other, series::div)
    }

    /// `−self`.
    pub fn neg(&self) -> Jet {
        self.unary(Unary::Neg)
    }

    /// `s·self`.
    pub fn scale(&self, s: f64) -> Jet {
        self.unary(Unary::Scale(s))
    }

    /// `1 / self` (needs `value() ≠ 0`).
    pub fn recip(&self) -> Jet {
        self.unary(Unary::Recip)
    }

    /// `e^self`.
    pub fn exp(&self) -> Jet {
        self.unary(Unary::Exp)
    }

    /// `ln(self)` (needs `value() > 0`).
    pub fn log(&self) -> Jet {
        self.unary(Unary::Log)
    }

    /// `sin(self)`.
    pub fn sin(&self) -> Jet {
        self.unary(Unary::Sin)
    }

    /// `cos(self)`.
    pub fn cos(&self) -> Jet {
        self.unary(Unary::Cos)
    }

    /// `tanh(self)`.
    pub fn tanh(&self) -> Jet {
        self.unary(Unary::Tanh)
    }

    /// The logistic sigmoid `1 / (1 + e^{−self})`.
    pub fn sigmoid(&self) -> Jet {
        self.unary(Unary::Sigmoid)
    }

    /// `ln(1 + e^self)`.
    pub fn softplus(&self) -> Jet {
        self.unary(Unary::Softplus)
    }

    /// `√self` (needs `value() > 0`).
    pub fn sqrt(&self) -> Jet {
        self.unary(Unary::Sqrt)
    }

    /// `self^n` for an integer `n` (negative `n` needs `value() ≠ 0`).
    pub fn powi(&self, n: i32) -> Jet {
        self.unary(Unary::Powi(n))
    }

    /// `self²`.
    pub fn square(&self) -> Jet {
        self.unary(Unary::Square)
    }

    /// `self + c` (shifts the constant coefficient only).
    fn add_scalar(&self, c: f64) -> Jet {
        let mut coeffs = self.coeffs.clone();
        coeffs[0] += c;
        Jet { coeffs }
    }

    /// `self / c`, coefficient by coefficient.
    fn div_scalar(&self, c: f64) -> Jet {
        Jet {
            coeffs: self.coeffs.iter().map(|&x| x / c).collect(),
        }
    }
}

/// Implements a binary operator for every combination of `Jet` / `&Jet` operands.
macro_rules! jet_binop {
    ($trait:ident, $method:ident) => {
        impl $trait<&Jet> for &Jet {
            type Output = Jet;
            #[track_caller]
            fn $method(self, rhs: &Jet) -> Jet {
                Jet::$method(self, rhs)
            }
        }
        impl $trait<Jet> for &Jet {
            type Output = Jet;
            #[track_caller]
            fn $method(self, rhs: Jet) -> Jet {
                Jet::$method(self, &rhs)
            }
        }
        impl $trait<&Jet> for Jet {
            type Output = Jet;
            #[track_caller]
            fn $method(self, rhs: &Jet) -> Jet {
                Jet::$method(&self, rhs)
            }
        }
        impl $trait<Jet> for Jet {
            type Output = Jet;
            #[track_caller]
            fn $method(self, rhs: Jet) -> Jet {
                Jet::$method(&self, &rhs)
            }
        }
    };
}

jet_binop!(Add, add);
jet_binop!(Sub, sub);
jet_binop!(Mul, mul);
jet_binop!(Div, div);

/// Implements `Jet ∘ f64` and `&Jet ∘ f64` through a `&Jet → f64 → Jet` function.
macro_rules! jet_scalar_op {
    ($trait:ident, $method:ident, $f:expr) => {
        impl $trait<f64> for &Jet {
            type Output = Jet;
            fn $method(self, rhs: f64) -> Jet {
                let f: fn(&Jet, f64) -> Jet = $f;
                f(self, rhs)
            }
        }
        impl $trait<f64> for Jet {
            type Output = Jet;
            fn $method(self, rhs: f64) -> Jet {
                let f: fn(&Jet, f64) -> Jet = $f;
                f(&self, rhs)
            }
        }
    };
}

jet_scalar_op!(Add, add, |j, c| j.add_scalar(c));
jet_scalar_op!(Sub, sub, |j, c| j.add_scalar(-c));
jet_scalar_op!(Mul, mul, |j, c| j.scale(c));
jet_scalar_op!(Div, div, |j, c| j.div_scalar(c));

impl Neg for &Jet {
    type Output = Jet;
    fn neg(self) -> Jet {
        Jet::neg(self)
    }
}

impl Neg for Jet {
    type Output = Jet;
    fn neg(self) -> Jet {
        Jet::neg(&self)
    }
}
