//! Tests of the mixed-partial planner (`stde_core::planner`): STDE.md §3's table, g-KdV, exhaustive
//! execution of plans on polynomials against symbolic derivatives, and the error cases.
//!
//! Expected coefficients are worked out by hand from `k! / Π (p_j! (j!)^{p_j})` (the arithmetic is in
//! the comments) or by symbolic differentiation of monomials, never copied from the planner's output.

use std::collections::BTreeMap;

use stde_core::planner::{
    analyze, expand, plan, plan_many, plan_with_slots, JetSpec, MultiIndex, Plan, PlanError,
    PlannerParams, Readout,
};
use stde_core::series;

/// The table's letters i, j as variables x0, x1.
const I: usize = 0;
const J: usize = 1;

fn mi(vars: &[usize]) -> MultiIndex {
    MultiIndex::from_vars(vars)
}

/// The terms of an expansion as a map derivative → coefficient, for order-free comparison.
fn terms_of(spec: &JetSpec, k: usize) -> BTreeMap<MultiIndex, f64> {
    expand(spec, k)
        .into_iter()
        .map(|t| (t.derivative, t.coefficient))
        .collect()
}

fn expect_terms(spec: &JetSpec, k: usize, expected: &[(&[usize], f64)]) {
    let want: BTreeMap<MultiIndex, f64> = expected.iter().map(|&(v, c)| (mi(v), c)).collect();
    assert_eq!(terms_of(spec, k), want, "y{k} of {spec}");
}

// ---------------------------------------------------------------------------------------------
// Polynomial machinery: a dense polynomial in n variables, evaluated along a jet with series
// arithmetic (exact composition), and differentiated symbolically.
// ---------------------------------------------------------------------------------------------

/// Deterministic xorshift64*: tests need reproducible "random" numbers without extra crates.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `Σ c · x^e` over monomials with exponent vectors `e`, in `nvars` variables.
struct Poly {
    nvars: usize,
    monomials: Vec<(Vec<u32>, f64)>,
}

impl Poly {
    /// Every monomial of degree ≤ `deg` in `nvars` variables, with integer coefficients in
    /// [-5, 5] ∖ {0} (never 0, so every derivative is exercised).
    fn random(nvars: usize, deg: u32, rng: &mut Rng) -> Self {
        fn exps(nvars: usize, deg: u32, cur: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
            if cur.len() == nvars {
                out.push(cur.clone());
                return;
            }
            let used: u32 = cur.iter().sum();
            for e in 0..=deg - used {
                cur.push(e);
                exps(nvars, deg, cur, out);
                cur.pop();
            }
        }
        let mut all = Vec::new();
        exps(nvars, deg, &mut Vec::new(), &mut all);
        let monomials = all
            .into_iter()
            .map(|e| {
                let mut coef = (rng.next_u64() % 10) as f64 - 5.0;
                if coef >= 0.0 {
                    coef += 1.0;
                }
                (e, coef)
            })
            .collect();
        Self { nvars, monomials }
    }

    /// `∂^α p (x)` by exponent arithmetic: `∂^q x^e = e!/(e−q)! x^{e−q}`.
    fn derivative(&self, alpha: &MultiIndex, x: &[f64]) -> f64 {
        assert!(alpha.vars().all(|v| v < self.nvars));
        let mut total = 0.0;
        for (e, c) in &self.monomials {
            let mut term = *c;
            for var in 0..self.nvars {
                let q = alpha.multiplicity(var);
                if q > e[var] {
                    term = 0.0;
                    break;
                }
                for f in (e[var] - q + 1)..=e[var] {
                    term *= f as f64;
                }
                term *= x[var].powi((e[var] - q) as i32);
            }
            total += term;
        }
        total
    }

    /// The sum of |terms| of `∂^α p (x)`: a scale for tolerances that stays meaningful when the
    /// derivative itself happens to be near 0.
    fn derivative_scale(&self, alpha: &MultiIndex, x: &[f64]) -> f64 {
        let abs = Poly {
            nvars: self.nvars,
            monomials: self
                .monomials
                .iter()
                .map(|(e, c)| (e.clone(), c.abs()))
                .collect(),
        };
        let x_abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
        abs.derivative(alpha, &x_abs)
    }

    /// Derivative coefficients `y_0..=y_K` of `p(x(t))` for the jet `spec` at base point `a`.
    fn push_jet(&self, spec: &JetSpec, a: &[f64]) -> Vec<f64> {
        let n = spec.order + 1;
        // Input curve per variable in Taylor coefficients: a_var + Σ_{slots of var} t^j / j!.
        let mut curves: Vec<Vec<f64>> = a.iter().map(|&av| series::constant(av, n)).collect();
        for &(j, var) in &spec.slots {
            assert!(var < self.nvars, "variable x{var} out of range");
            if j < n {
                curves[var][j] += 1.0 / series::factorial(j);
            }
        }
        // Powers x_var(t)^e by repeated Cauchy products.
        let max_deg = self
            .monomials
            .iter()
            .flat_map(|(e, _)| e.iter().copied())
            .max()
            .unwrap_or(0) as usize;
        let powers: Vec<Vec<Vec<f64>>> = curves
            .iter()
            .map(|c| {
                let mut pw = vec![series::constant(1.0, n)];
                for d in 1..=max_deg {
                    let mut next = vec![0.0; n];
                    series::mul(&pw[d - 1], c, &mut next);
                    pw.push(next);
                }
                pw
            })
            .collect();
        let mut total = vec![0.0; n];
        let mut prod = vec![0.0; n];
        let mut tmp = vec![0.0; n];
        for (e, c) in &self.monomials {
            prod.copy_from_slice(&series::constant(*c, n));
            for var in 0..self.nvars {
                series::mul(&prod, &powers[var][e[var] as usize], &mut tmp);
                prod.copy_from_slice(&tmp);
            }
            tmp.copy_from_slice(&total);
            series::add(&tmp, &prod, &mut total);
        }
        series::taylor_to_derivative(&total)
    }
}

fn random_point(nvars: usize, rng: &mut Rng) -> Vec<f64> {
    (0..nvars).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Runs every jet of `plan` on `p` at `a` and combines the readouts by hand (and checks
/// `Plan::combine` agrees). Returns one value per target.
fn execute(plan: &Plan, p: &Poly, a: &[f64]) -> Vec<f64> {
    let outputs: Vec<Vec<f64>> = plan.jets.iter().map(|j| p.push_jet(j, a)).collect();
    let mut values = vec![0.0; plan.targets.len()];
    for r in &plan.readouts {
        assert!(r.order <= plan.jets[r.jet].order, "readout above jet order");
        values[r.target] += r.weight * outputs[r.jet][r.order];
    }
    let combined = plan.combine(&outputs);
    for (v, c) in values.iter().zip(&combined) {
        assert!((v - c).abs() <= 1e-12 * v.abs().max(1.0));
    }
    values
}

/// Checks `expand` against execution: y_k of a jet on a random polynomial equals
/// Σ coefficient · (symbolic derivative) over the expected terms.
fn check_expansion_numerically(spec: &JetSpec, k: usize, rng: &mut Rng) {
    let p = Poly::random(3, 7, rng);
    let a = random_point(3, rng);
    let y = p.push_jet(spec, &a)[k];
    let mut predicted = 0.0;
    let mut scale = 0.0;
    for t in expand(spec, k) {
        predicted += t.coefficient * p.derivative(&t.derivative, &a);
        scale += t.coefficient * p.derivative_scale(&t.derivative, &a);
    }
    assert!(
        (y - predicted).abs() <= 1e-10 * scale.max(1.0),
        "y{k} of {spec}: executed {y}, expansion predicts {predicted}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. STDE.md §3's table
// ---------------------------------------------------------------------------------------------

#[test]
fn multi_index_normalises_and_displays() {
    assert_eq!(MultiIndex::new(&[(1, 1), (0, 1), (0, 1)]), mi(&[0, 0, 1]));
    assert_eq!(MultiIndex::new(&[(0, 2), (1, 0)]), mi(&[0, 0]));
    assert_eq!(mi(&[0, 0, 1]).total_order(), 3);
    assert_eq!(mi(&[0, 0, 1]).to_string(), "∂^3/∂x0^2∂x1");
    assert_eq!(mi(&[2]).to_string(), "∂/∂x2");
    assert_eq!(mi(&[0, 1]).to_string(), "∂^2/∂x0∂x1");
    assert_eq!(mi(&[1, 0, 1]).multiplicity(1), 2);
}

#[test]
fn jet_spec_input_coefficients_are_taylor() {
    let spec = JetSpec::new(7, &[(3, J), (2, I)]);
    assert_eq!(spec.slots, vec![(2, I), (3, J)]);
    assert_eq!(spec.input_taylor_coefficient(2), Some((I, 0.5)));
    assert_eq!(spec.input_taylor_coefficient(3), Some((J, 1.0 / 6.0)));
    assert_eq!(spec.input_taylor_coefficient(1), None);
    assert_eq!(spec.to_string(), "7-jet [v2=e_x0, v3=e_x1]");
}

#[test]
fn table_gpinn_u_iij_from_slots_2_3() {
    let spec = JetSpec::new(7, &[(2, I), (3, J)]);
    // 7 = 2+2+3 only: 7!/(2!·2!² · 1!·3!) = 5040/48 = 105.
    expect_terms(&spec, 7, &[(&[I, I, J], 105.0)]);
    // 4 = 2+2: 4!/(2!·2!²) = 3.
    expect_terms(&spec, 4, &[(&[I, I], 3.0)]);
    // 3 = 3: 3!/3! = 1; 2 = 2: 1.
    expect_terms(&spec, 3, &[(&[J], 1.0)]);
    expect_terms(&spec, 2, &[(&[I], 1.0)]);
    let an = analyze(&spec, 7);
    assert!(an.is_clean_for(&mi(&[I, I, J])));
    assert_eq!(an.coefficient_of(&mi(&[I, I, J])), 105.0);
    assert_eq!(an.coefficient_of(&mi(&[I])), 0.0);
}

#[test]
fn table_kp_u_tx_from_slots_2_3() {
    let (t, x) = (0, 1);
    let spec = JetSpec::new(5, &[(2, t), (3, x)]);
    // 5 = 2+3: 5!/(2!·3!) = 10.
    expect_terms(&spec, 5, &[(&[t, x], 10.0)]);
}

#[test]
fn table_u_iij_from_slots_1_3_is_contaminated_by_u_iiiii() {
    let spec = JetSpec::new(5, &[(1, I), (3, J)]);
    // 1+1+1+1+1: 5!/5! = 1; 1+1+3: 5!/(2!·1·3!) = 10.
    expect_terms(&spec, 5, &[(&[I, I, I, I, I], 1.0), (&[I, I, J], 10.0)]);
    let an = analyze(&spec, 5);
    assert!(!an.is_clean_for(&mi(&[I, I, J])));
    assert_eq!(an.contaminants(&mi(&[I, I, J])).len(), 1);
}

#[test]
fn table_kdv_2d_13_jet_is_contaminated() {
    let (x, y, t) = (0, 1, 2);
    let spec = JetSpec::new(13, &[(3, x), (4, y), (7, t)]);
    // 13 = 3+3+3+4: 13!/(3!·3!³·4!) = 6227020800/31104 = 200200;
    // 13 = 3+3+7: 13!/(2!·3!²·7!) = 6227020800/362880 = 17160.
    expect_terms(
        &spec,
        13,
        &[(&[x, x, x, y], 200200.0), (&[x, x, t], 17160.0)],
    );
    let an = analyze(&spec, 13);
    assert!(!an.is_clean_for(&mi(&[x, x, x, y])));
    assert!(!an.is_clean_for(&mi(&[x, x, t])));
    // 6 = 3+3: 6!/(2!·3!²) = 10.
    expect_terms(&spec, 6, &[(&[x, x], 10.0)]);
    // 7 = 3+4: 7!/(3!·4!) = 35; 7 = 7: 1.
    expect_terms(&spec, 7, &[(&[x, y], 35.0), (&[t], 1.0)]);
    // 11 = 4+7: 11!/(4!·7!) = 330; 11 = 3+4+4: 11!/(3!·2!·4!²) = 39916800/6912 = 5775.
    expect_terms(&spec, 11, &[(&[y, t], 330.0), (&[x, y, y], 5775.0)]);
    let text = an.to_string();
    assert!(text.contains("200200·∂^4/∂x0^3∂x1"), "{text}");
    assert!(text.contains("17160·∂^3/∂x0^2∂x2"), "{text}");
}

#[test]
fn table_kdv_2d_9_jet_divisor_is_1260() {
    let (x, y) = (0, 1);
    let spec = JetSpec::new(9, &[(2, x), (3, y)]);
    // 9 = 2+2+2+3: 9!/(3!·2!³·3!) = 362880/288 = 1260; 9 = 3+3+3: 9!/(3!·3!³) = 280.
    expect_terms(&spec, 9, &[(&[x, x, x, y], 1260.0), (&[y, y, y], 280.0)]);
}

/// (slots as `(slot order, variable)`, jet order, read orders to check).
type TableCase = (&'static [(usize, usize)], usize, &'static [usize]);

#[test]
fn table_expansions_match_execution() {
    let mut rng = Rng(0x5eed_0001);
    let cases: &[TableCase] = &[
        (&[(2, 0), (3, 1)], 7, &[2, 3, 4, 7]),
        (&[(1, 0), (3, 1)], 5, &[3, 4, 5]),
        (&[(3, 0), (4, 1), (7, 2)], 13, &[6, 7, 11, 13]),
        (&[(2, 0), (3, 1)], 9, &[9]),
        // A variable at two slots: counts add across slots.
        (&[(1, 0), (2, 0), (3, 1)], 8, &[4, 6, 8]),
    ];
    for &(slots, order, reads) in cases {
        let spec = JetSpec::new(order, slots);
        for &k in reads {
            check_expansion_numerically(&spec, k, &mut rng);
        }
    }
}

#[test]
fn same_variable_at_two_slots_merges_partitions() {
    // v1 = v2 = e_0: x(t) = a + s(t)·e_0 with s = t + t²/2, so d³/dt³ u = u'''·s'³ + 3u''·s's'' =
    // ∂³u + 3·∂²u. Partitions: 1+1+1 → ∂³ (1), 1+2 → ∂² (3!/(1!·2!) = 3).
    let spec = JetSpec::new(3, &[(1, 0), (2, 0)]);
    expect_terms(&spec, 3, &[(&[0, 0, 0], 1.0), (&[0, 0], 3.0)]);
}

// ---------------------------------------------------------------------------------------------
// g-KdV via user-chosen slots
// ---------------------------------------------------------------------------------------------

fn find_jet(plan: &Plan, slots: &[(usize, usize)]) -> usize {
    plan.jets
        .iter()
        .position(|j| j.slots == JetSpec::new(0, slots).slots)
        .unwrap_or_else(|| panic!("no jet with slots {slots:?} in\n{plan}"))
}

fn readouts(plan: &Plan, target: usize) -> Vec<(usize, usize, f64)> {
    let mut r: Vec<(usize, usize, f64)> = plan
        .readouts_for(target)
        .map(|r: &Readout| (r.jet, r.order, r.weight))
        .collect();
    r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    r
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-14 * b.abs().max(1.0)
}

fn assert_readouts(plan: &Plan, target: usize, expected: &[(usize, usize, f64)]) {
    let got = readouts(plan, target);
    let mut want = expected.to_vec();
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got.len(), want.len(), "target {target}:\n{plan}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g.0 == w.0 && g.1 == w.1 && close(g.2, w.2),
            "target {target}: {got:?} vs {want:?}\n{plan}"
        );
    }
}

#[test]
fn gkdv_1d_jet_set() {
    let (x, t) = (0, 1);
    let params = PlannerParams::default();
    let slots = [(x, 1), (t, 4)];
    let u_t = plan_with_slots(&mi(&[t]), &slots, &params).unwrap();
    let u_tx = plan_with_slots(&mi(&[t, x]), &slots, &params).unwrap();
    let u_txxx = plan_with_slots(&mi(&[t, x, x, x]), &slots, &params).unwrap();
    let u_tt = plan(&mi(&[t, t]), &params).unwrap();

    // u_t alone: y4 of J2 = u_t (4!/4! = 1) + u_xxxx (4!/(4!·1!⁴) = 1).
    let j2 = find_jet(&u_t, &[(1, x), (4, t)]);
    let j1 = find_jet(&u_t, &[(1, x)]);
    assert_eq!(u_t.jets.len(), 2);
    assert_eq!(u_t.jets[j2].order, 4);
    assert_readouts(&u_t, 0, &[(j2, 4, 1.0), (j1, 4, -1.0)]);

    let merged = Plan::merge([u_t, u_tx, u_txxx, u_tt]);
    assert_eq!(merged.targets.len(), 4);
    assert_eq!(merged.jets.len(), 3, "{merged}");
    let j2 = find_jet(&merged, &[(1, x), (4, t)]);
    let j1 = find_jet(&merged, &[(1, x)]);
    let j3 = find_jet(&merged, &[(1, t)]);
    assert_eq!(merged.jets[j2].order, 7);
    assert_eq!(merged.jets[j1].order, 7);
    assert_eq!(merged.jets[j3].order, 2);
    assert_readouts(&merged, 0, &[(j2, 4, 1.0), (j1, 4, -1.0)]);
    // 5 = 4+1: 5!/(4!·1!) = 5, 5 = 1·5: 1.
    assert_readouts(&merged, 1, &[(j2, 5, 0.2), (j1, 5, -0.2)]);
    // 7 = 4+1+1+1: 7!/(4!·3!) = 35, 7 = 1·7: 1.
    assert_readouts(&merged, 2, &[(j2, 7, 1.0 / 35.0), (j1, 7, -1.0 / 35.0)]);
    assert_readouts(&merged, 3, &[(j3, 2, 1.0)]);

    // And the set computes the right numbers.
    let mut rng = Rng(0x6bd7);
    let p = Poly::random(2, 7, &mut rng);
    let a = [0.3, -0.7];
    let values = execute(&merged, &p, &a);
    for (target, v) in merged.targets.iter().zip(&values) {
        let want = p.derivative(target, &a);
        assert!((v - want).abs() <= 1e-9 * want.abs().max(1.0), "{target}");
    }
}

#[test]
fn plan_with_slots_validates() {
    let params = PlannerParams::default();
    let bad = |slots: &[(usize, usize)]| {
        matches!(
            plan_with_slots(&mi(&[0, 1]), slots, &params),
            Err(PlanError::InvalidSlots { .. })
        )
    };
    assert!(bad(&[(0, 1)]), "missing variable");
    assert!(bad(&[(0, 1), (1, 1)]), "repeated slot order");
    assert!(bad(&[(0, 0), (1, 1)]), "slot order 0");
    assert!(bad(&[(0, 1), (0, 2), (1, 3)]), "repeated variable");
    assert_eq!(
        plan_with_slots(&MultiIndex::default(), &[(0, 1)], &params),
        Err(PlanError::EmptyTarget)
    );
}

#[test]
fn plan_with_slots_clean_choice_is_one_readout() {
    // u_iij with slots i → 2, j → 3: y7 = 105 u_iij.
    let p = plan_with_slots(
        &mi(&[I, I, J]),
        &[(I, 2), (J, 3)],
        &PlannerParams::default(),
    )
    .unwrap();
    assert_eq!(p.jets, vec![JetSpec::new(7, &[(2, I), (3, J)])]);
    assert_readouts(&p, 0, &[(0, 7, 1.0 / 105.0)]);
}

// ---------------------------------------------------------------------------------------------
// 2. Exhaustive execution
// ---------------------------------------------------------------------------------------------

/// Every multi-index of total order 1..=max in `nvars` variables (each variable may be absent).
fn all_multi_indices(nvars: usize, max: u32) -> Vec<MultiIndex> {
    fn rec(nvars: usize, max: u32, cur: &mut Vec<(usize, u32)>, out: &mut Vec<MultiIndex>) {
        if cur.len() == nvars {
            let m = MultiIndex::new(cur);
            if !m.is_empty() {
                out.push(m);
            }
            return;
        }
        let used: u32 = cur.iter().map(|&(_, q)| q).sum();
        for q in 0..=max - used {
            cur.push((cur.len(), q));
            rec(nvars, max, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(nvars, max, &mut Vec::new(), &mut out);
    out
}

/// Plans every target, runs the plan on `p` (degree 7) at a fresh random point and compares with the
/// symbolic derivative. Returns how many plans were a single clean readout.
fn check_plans_execute(targets: &[MultiIndex], p: &Poly, rng: &mut Rng) -> usize {
    let params = PlannerParams::default();
    let mut clean = 0;
    for target in targets {
        let a = random_point(p.nvars, rng);
        let plan = plan(target, &params).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(plan.targets, vec![target.clone()]);
        assert!(!plan.readouts.is_empty());
        for jet in &plan.jets {
            assert!(jet.order <= 16, "{target}: {jet}");
        }
        if plan.readouts.len() == 1 {
            clean += 1;
        }
        let got = execute(&plan, p, &a)[0];
        let want = p.derivative(target, &a);
        // Relative error, with an absolute floor of 1 for derivatives that happen to be tiny.
        let rel = (got - want).abs() / want.abs().max(1.0);
        assert!(rel <= 1e-9, "{target}: got {got}, want {want}\n{plan}");
    }
    clean
}

#[test]
fn exhaustive_three_variables_up_to_order_6() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let p = Poly::random(3, 7, &mut rng);
    let targets = all_multi_indices(3, 6);
    // C(3 + 6, 3) − 1 multi-indices of order 1..=6.
    assert_eq!(targets.len(), 83);
    let clean = check_plans_execute(&targets, &p, &mut rng);
    // Single-variable targets are always clean (v1 = e_i, y_q = ∂_i^q u): 3·6 = 18 of them.
    assert!(clean >= 18, "{clean}");
}

#[test]
fn exhaustive_four_variables_up_to_order_5() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let p = Poly::random(4, 7, &mut rng);
    let targets = all_multi_indices(4, 5);
    // C(4 + 5, 4) − 1.
    assert_eq!(targets.len(), 125);
    check_plans_execute(&targets, &p, &mut rng);
}

/// The hardest three-variable target of order 6: every candidate within order 16 is contaminated by
/// derivatives whose own candidates are contaminated by it, so only simultaneous elimination works.
#[test]
fn symmetric_sixth_order_needs_elimination_and_is_exact() {
    let target = MultiIndex::new(&[(0, 2), (1, 2), (2, 2)]);
    let plan = plan(&target, &PlannerParams::default()).unwrap();
    assert!(plan.jets.len() > 7, "{plan}");
    for seed in 1..6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let p = Poly::random(3, 7, &mut rng);
        let a = random_point(3, &mut rng);
        let got = execute(&plan, &p, &a)[0];
        let want = p.derivative(&target, &a);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

#[test]
fn plan_many_shares_jets_and_executes() {
    let targets = all_multi_indices(3, 4);
    let params = PlannerParams::default();
    let many = plan_many(&targets, &params).unwrap();
    let separate: usize = targets
        .iter()
        .map(|t| plan(t, &params).unwrap().jets.len())
        .sum();
    assert!(
        many.jets.len() < separate,
        "{} vs {separate}",
        many.jets.len()
    );
    let mut rng = Rng(0xabcdef);
    let p = Poly::random(3, 7, &mut rng);
    let a = [0.4, -0.2, 0.9];
    for (target, v) in targets.iter().zip(execute(&many, &p, &a)) {
        let want = p.derivative(target, &a);
        assert!((v - want).abs() <= 1e-9 * want.abs().max(1.0), "{target}");
    }
}

#[test]
fn plan_prefers_smallest_clean_read_order() {
    let params = PlannerParams::default();
    // ∂_i^3: v1 = e_i, y3.
    let p = plan(&mi(&[0, 0, 0]), &params).unwrap();
    assert_eq!(p.jets, vec![JetSpec::new(3, &[(1, 0)])]);
    assert_readouts(&p, 0, &[(0, 3, 1.0)]);
    // u_xy: a slot 1 is never clean (1+…+1 = j), which rules out every k < 5; (2, 3) at k = 5 is:
    // 5!/(2!·3!) = 10.
    let p = plan(&mi(&[0, 1]), &params).unwrap();
    assert_eq!(p.jets, vec![JetSpec::new(5, &[(2, 0), (3, 1)])]);
    assert_readouts(&p, 0, &[(0, 5, 0.1)]);
    // u_iij: (2, 3) → k = 7 as in the table. Every candidate with k < 7 — (1,2), (1,3), (1,4), (2,1)
    // — uses slot 1, which 1+…+1 reproduces; at k = 7, (2, 3) outranks (3, 1) and (1, 5).
    let p = plan(&mi(&[0, 0, 1]), &params).unwrap();
    assert_eq!(p.jets, vec![JetSpec::new(7, &[(2, 0), (3, 1)])]);
    assert_readouts(&p, 0, &[(0, 7, 1.0 / 105.0)]);
}

// ---------------------------------------------------------------------------------------------
// 3. Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn order_too_high() {
    let small = PlannerParams {
        max_order: 3,
        ..PlannerParams::default()
    };
    // u_xxy: cheapest is x → 1, y → 2: k = 2·1 + 2 = 4.
    assert_eq!(
        plan(&mi(&[0, 0, 1]), &small),
        Err(PlanError::OrderTooHigh { needed: 4, max: 3 })
    );
    // ∂_x^5 needs k = 5.
    assert_eq!(
        plan(&mi(&[0; 5]), &small),
        Err(PlanError::OrderTooHigh { needed: 5, max: 3 })
    );
    assert_eq!(
        plan_with_slots(&mi(&[0, 1]), &[(0, 2), (1, 3)], &small),
        Err(PlanError::OrderTooHigh { needed: 5, max: 3 })
    );
    assert_eq!(
        plan(&MultiIndex::default(), &small),
        Err(PlanError::EmptyTarget)
    );
}

#[test]
fn contaminated_without_cancellation() {
    let params = PlannerParams {
        max_order: 4,
        allow_cancellation: false,
    };
    // u_xy within order 4: (1,2),(2,1) at k = 3 and (1,3),(3,1) at k = 4, none clean. The preferred
    // one is x → 1, y → 2: y3 = 3!/(1!·2!)·u_xy + 3!/3!·u_xxx = 3·u_xy + u_xxx.
    let err = plan(&mi(&[0, 1]), &params).unwrap_err();
    match &err {
        PlanError::Contaminated {
            target,
            spec,
            read_order,
            coefficient,
            contaminants,
        } => {
            assert_eq!(target, &mi(&[0, 1]));
            assert_eq!(spec.slots, vec![(1, 0), (2, 1)]);
            assert_eq!(*read_order, 3);
            assert_eq!(*coefficient, 3.0);
            assert_eq!(contaminants.len(), 1);
            assert_eq!(contaminants[0].derivative, mi(&[0, 0, 0]));
            assert_eq!(contaminants[0].coefficient, 1.0);
        }
        other => panic!("expected Contaminated, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("1·∂^3/∂x0^3"), "{text}");
    assert!(text.contains("3·∂^2/∂x0∂x1"), "{text}");

    // With cancellation the same limit works: u_xy = (y3 − y3[v1 = e_x]) / 3.
    let p = plan(
        &mi(&[0, 1]),
        &PlannerParams {
            max_order: 4,
            allow_cancellation: true,
        },
    )
    .unwrap();
    let main = find_jet(&p, &[(1, 0), (2, 1)]);
    let sub = find_jet(&p, &[(1, 0)]);
    assert_readouts(&p, 0, &[(main, 3, 1.0 / 3.0), (sub, 3, -1.0 / 3.0)]);

    // g-KdV slots without cancellation: u_t is contaminated by u_xxxx.
    let err = plan_with_slots(&mi(&[1]), &[(0, 1), (1, 4)], &params).unwrap_err();
    assert!(err.to_string().contains("1·∂^4/∂x0^4"), "{err}");
}

#[test]
fn high_order_three_variables_have_no_clean_jet_within_16() {
    // u_xxyyzz needs 2(j_x + j_y + j_z) ≤ 16, so the slots are a subset of {1..5} with sum ≤ 8, which
    // always contains slot 1, and 1+…+1 reproduces any other slot: never clean.
    let params = PlannerParams {
        allow_cancellation: false,
        ..PlannerParams::default()
    };
    let err = plan(&mi(&[0, 0, 1, 1, 2, 2]), &params).unwrap_err();
    assert!(matches!(err, PlanError::Contaminated { .. }), "{err}");
}

#[test]
fn support_clean_uses_inclusion_exclusion() {
    // u_xyz: no clean candidate (1+2+3 = 6 is also 3+3, 2+2+2, …), but with slots 1, 2, 3 the only
    // partition of 6 using all three variables is 1+2+3, coefficient 6!/(1!·2!·3!) = 60. The seven
    // subset jets at read order 6 cancel everything else with signs (−1)^{3−|T|}.
    let plan = plan(&mi(&[0, 1, 2]), &PlannerParams::default()).unwrap();
    assert_eq!(plan.jets.len(), 7, "{plan}");
    for r in &plan.readouts {
        let jet = &plan.jets[r.jet];
        assert_eq!(r.order, 6);
        assert_eq!(jet.order, 6);
        let sign = if (3 - jet.slots.len()).is_multiple_of(2) {
            1.0
        } else {
            -1.0
        };
        assert!(close(r.weight, sign / 60.0), "{plan}");
        for (j, var) in &jet.slots {
            assert_eq!(*j, var + 1, "x{var} keeps slot {}", var + 1);
        }
    }
}

#[test]
fn plan_with_slots_falls_back_to_plan_for_unclean_contaminants() {
    // u_xyz with x → 1, y → 2, z → 3 at k = 6: the contaminant u_xxxxy (1+1+1+1+2) restricted to
    // {x → 1, y → 2} is itself contaminated at 6 (by u_xxxxxx, u_xxyy, …), so it is planned afresh.
    let target = mi(&[0, 1, 2]);
    let plan = plan_with_slots(
        &target,
        &[(0, 1), (1, 2), (2, 3)],
        &PlannerParams::default(),
    )
    .unwrap();
    let mut rng = Rng(77);
    let p = Poly::random(3, 7, &mut rng);
    let a = random_point(3, &mut rng);
    let got = execute(&plan, &p, &a)[0];
    let want = p.derivative(&target, &a);
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{got} vs {want}\n{plan}"
    );
}

#[test]
fn unreachable_target_is_reported_not_hung() {
    // x0³x1³x2 within order 16: the elimination equations (every slot assignment, every read order
    // ≤ 16) do not span it, so even with cancellation the planner reports the smallest-k candidate,
    // slots 1, 2, 3 with k = 3·1 + 3·2 + 1·3 = 12 (multiplicity 3 on x0 gets slot 1, …).
    let target = MultiIndex::new(&[(0, 3), (1, 3), (2, 1)]);
    match plan(&target, &PlannerParams::default()) {
        Err(PlanError::Contaminated {
            spec, read_order, ..
        }) => {
            assert_eq!(read_order, 12);
            assert_eq!(spec.slots, vec![(1, 0), (2, 1), (3, 2)]);
        }
        other => panic!("expected Contaminated, got {other:?}"),
    }
}
