//! The mixed-partial planner: which univariate Taylor-mode pushforwards (jets) and which weighted output
//! coefficients give an arbitrary mixed partial derivative `∂^α u`, derived from the partition formula.
//!
//! # The formula
//! Push the jet `x(t) = a + Σ_j v_j t^j/j!` through `u`. In the derivative convention (STDE.md §2),
//! `y_k = d^k/dt^k u(x(t))|_{t=0}` is a sum over every way of writing `k` as a sum of *active* slot
//! orders — a multiset with `p_j` copies of slot order `j` — of
//! `k! / Π_j (p_j! · (j!)^{p_j}) · D^{Σp} u[v_j repeated p_j times, …]`.
//! When every active slot `j` carries a coordinate direction `v_j = e_{i_j}`, each of those terms is a
//! mixed partial `∂^β u` with `β_{i_j} += p_j`.
//!
//! # The strategy
//! To get `∂^α u = ∂^{q_1+…+q_T} u / ∂x_{i_1}^{q_1}…∂x_{i_T}^{q_T}`, give each variable its own slot
//! order `j_t` and read order `k = Σ q_t·j_t`. The target appears with coefficient
//! `k! / Π_t (q_t! (j_t!)^{q_t})`; every *other* partition of `k` into the active slot orders is a
//! contaminating derivative. [`plan`] searches slot orders for a *clean* choice (the partition is
//! unique), and otherwise subtracts the contaminants with further pushforwards planned recursively.
//! [`expand`] and [`analyze`] report exactly what a hand-built jet yields, so constructions such as the
//! paper's 2D KdV 13-jet can be checked (it is contaminated; see STDE.md §3).
//!
//! Coefficients are computed exactly in `u128` (they are integers: they count the set partitions of
//! `k` labelled items into blocks of the given sizes) and only converted to `f64` at the API boundary.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use thiserror::Error;

/// The largest read order [`expand`] accepts: `33!` still fits in a `u128`, which keeps every
/// coefficient exact before it is converted to `f64`.
pub const MAX_EXPAND_ORDER: usize = 33;

/// A mixed partial derivative `∂^α`: a sorted list of `(variable index, multiplicity ≥ 1)`.
///
/// The empty multi-index is the identity (`∂^0 u = u`); [`plan`] rejects it as a target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MultiIndex {
    /// Sorted by variable, each variable once, every multiplicity ≥ 1.
    entries: Vec<(usize, u32)>,
}

impl MultiIndex {
    /// Builds `∂^α` from `(variable, multiplicity)` pairs in any order: repeated variables have their
    /// multiplicities added and zero multiplicities are dropped, so equal derivatives compare equal.
    pub fn new(entries: &[(usize, u32)]) -> Self {
        let mut merged: BTreeMap<usize, u32> = BTreeMap::new();
        for &(var, mult) in entries {
            *merged.entry(var).or_insert(0) += mult;
        }
        Self {
            entries: merged.into_iter().filter(|&(_, m)| m > 0).collect(),
        }
    }

    /// Builds `∂^α` from the list of differentiation variables, e.g. `[0, 0, 1]` is `∂³/∂x0²∂x1`.
    pub fn from_vars(vars: &[usize]) -> Self {
        let pairs: Vec<(usize, u32)> = vars.iter().map(|&v| (v, 1)).collect();
        Self::new(&pairs)
    }

    /// The `(variable, multiplicity)` pairs, sorted by variable.
    pub fn entries(&self) -> &[(usize, u32)] {
        &self.entries
    }

    /// The total order `|α| = Σ multiplicities`.
    pub fn total_order(&self) -> usize {
        self.entries.iter().map(|&(_, m)| m as usize).sum()
    }

    /// How many times `var` is differentiated (0 if not at all).
    pub fn multiplicity(&self, var: usize) -> u32 {
        self.entries
            .iter()
            .find(|&&(v, _)| v == var)
            .map_or(0, |&(_, m)| m)
    }

    /// The number of distinct variables differentiated.
    pub fn num_vars(&self) -> usize {
        self.entries.len()
    }

    /// The differentiated variables, sorted.
    pub fn vars(&self) -> impl Iterator<Item = usize> + '_ {
        self.entries.iter().map(|&(v, _)| v)
    }

    /// Whether this is the identity (order 0).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Display for MultiIndex {
    /// `∂^3/∂x0^2∂x1`; first order is written `∂/∂x0` and the identity `∂^0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "∂^0");
        }
        match self.total_order() {
            1 => write!(f, "∂/")?,
            n => write!(f, "∂^{n}/")?,
        }
        for &(var, mult) in &self.entries {
            write!(f, "∂x{var}")?;
            if mult > 1 {
                write!(f, "^{mult}")?;
            }
        }
        Ok(())
    }
}

/// A pushforward with one-hot tangents: the `order`-jet `x(t) = a + Σ_j v_j t^j/j!` with
/// `v_j = e_var` for every listed `(j, var)` and all other slots zero.
///
/// Slot orders must be distinct and ≥ 1 (each slot holds one vector). A variable may appear at several
/// slots; their counts then add up in every term. A slot above `order` is cut off by the truncation:
/// plans keep such slots so that jets built from one slot choice compare equal and can be shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JetSpec {
    /// The truncation order `K` of the jet (the highest output coefficient it produces).
    pub order: usize,
    /// `(slot order j ≥ 1, variable)` pairs: `v_j = e_variable`.
    pub slots: Vec<(usize, usize)>,
}

impl JetSpec {
    /// Builds a spec with its slots sorted by slot order, the normal form the planner uses.
    pub fn new(order: usize, slots: &[(usize, usize)]) -> Self {
        let mut slots = slots.to_vec();
        slots.sort_unstable();
        Self { order, slots }
    }

    /// The variable whose unit vector sits at slot order `slot`, if that slot is active.
    pub fn slot_variable(&self, slot: usize) -> Option<usize> {
        self.slots
            .iter()
            .find(|&&(j, _)| j == slot)
            .map(|&(_, var)| var)
    }

    /// The input coefficient at slot order `slot` as `(variable, value)`, in the *Taylor* convention
    /// that series kernels consume: the input coefficient at slot `j` is `e_var / j!`, because the
    /// derivative-convention tangent `v_j = e_var` enters the curve as `v_j t^j / j!`. `None` when the
    /// slot is inactive (its coefficient is zero). The constant coefficient (slot 0) is the base point
    /// and is not part of the spec.
    pub fn input_taylor_coefficient(&self, slot: usize) -> Option<(usize, f64)> {
        self.slot_variable(slot)
            .map(|var| (var, 1.0 / crate::series::factorial(slot)))
    }
}

impl fmt::Display for JetSpec {
    /// `7-jet [v2=e_x0, v3=e_x1]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-jet [", self.order)?;
        for (n, &(j, var)) in self.slots.iter().enumerate() {
            if n > 0 {
                write!(f, ", ")?;
            }
            write!(f, "v{j}=e_x{var}")?;
        }
        write!(f, "]")
    }
}

/// One term `coefficient · ∂^derivative u` of an output coefficient `y_k`.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// The mixed partial this term multiplies.
    pub derivative: MultiIndex,
    /// Its exact integer coefficient (as `f64`; exact for read orders ≤ 18, since `18! < 2^53`).
    pub coefficient: f64,
}

impl fmt::Display for Term {
    /// `105·∂^3/∂x0^2∂x1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}·{}", self.coefficient, self.derivative)
    }
}

/// `n!` exactly. Callers keep `n ≤ MAX_EXPAND_ORDER`.
fn factorial_u128(n: usize) -> u128 {
    (1..=n as u128).product()
}

/// Panics unless the slot list is usable by the partition formula.
#[track_caller]
fn check_slots(slots: &[(usize, usize)]) {
    let mut orders: Vec<usize> = slots.iter().map(|&(j, _)| j).collect();
    assert!(
        orders.iter().all(|&j| j >= 1),
        "slot orders must be ≥ 1 (slot 0 is the base point): {slots:?}"
    );
    orders.sort_unstable();
    assert!(
        orders.windows(2).all(|w| w[0] != w[1]),
        "slot orders must be distinct (one vector per slot): {slots:?}"
    );
}

/// Every partition of `k` into the slot orders of `slots`, as `(derivative, exact coefficient)`,
/// merged by derivative and sorted. `slots` must satisfy [`check_slots`] and `k ≤ MAX_EXPAND_ORDER`.
fn expand_exact(slots: &[(usize, usize)], k: usize) -> Vec<(MultiIndex, u128)> {
    // Slots above k can never be a part of a partition of k.
    let active: Vec<(usize, usize)> = slots.iter().copied().filter(|&(j, _)| j <= k).collect();
    let k_fact = factorial_u128(k);
    let mut merged: BTreeMap<MultiIndex, u128> = BTreeMap::new();
    let mut counts = vec![0usize; active.len()];
    partitions(&active, 0, k, &mut counts, &mut |counts| {
        // k! / Π_j (p_j! (j!)^{p_j}) is an integer (a count of set partitions), so dividing the
        // exact k! by the exact denominator loses nothing.
        let mut denom: u128 = 1;
        let mut pairs = Vec::with_capacity(active.len());
        for (&(j, var), &p) in active.iter().zip(counts.iter()) {
            denom *= factorial_u128(p) * factorial_u128(j).pow(p as u32);
            if p > 0 {
                pairs.push((var, p as u32));
            }
        }
        *merged.entry(MultiIndex::new(&pairs)).or_insert(0) += k_fact / denom;
    });
    merged.into_iter().collect()
}

/// Calls `emit` with every count vector `p` such that `Σ p_s·j_s = rest` over `slots[s..]`.
fn partitions(
    slots: &[(usize, usize)],
    s: usize,
    rest: usize,
    counts: &mut Vec<usize>,
    emit: &mut dyn FnMut(&[usize]),
) {
    if s == slots.len() {
        if rest == 0 {
            emit(counts);
        }
        return;
    }
    let j = slots[s].0;
    for p in 0..=rest / j {
        counts[s] = p;
        partitions(slots, s + 1, rest - p * j, counts, emit);
    }
    counts[s] = 0;
}

/// What the output coefficient `y_{read_order}` of `spec` holds: every partition of `read_order` into
/// the active slot orders with its exact coefficient, merged when two partitions give the same
/// derivative (a variable at two slots), sorted by derivative.
///
/// `read_order = 0` gives the single term `1·∂^0` (`y_0 = u(a)`).
///
/// # Panics
/// If a slot order is 0 or repeated, if `read_order > spec.order` (the jet does not produce that
/// coefficient), or if `read_order > MAX_EXPAND_ORDER`.
#[track_caller]
pub fn expand(spec: &JetSpec, read_order: usize) -> Vec<Term> {
    check_slots(&spec.slots);
    assert!(
        read_order <= spec.order,
        "read order {read_order} exceeds the order of {spec}"
    );
    assert!(
        read_order <= MAX_EXPAND_ORDER,
        "read order {read_order} exceeds MAX_EXPAND_ORDER = {MAX_EXPAND_ORDER}"
    );
    expand_exact(&spec.slots, read_order)
        .into_iter()
        .map(|(derivative, c)| Term {
            derivative,
            coefficient: c as f64,
        })
        .collect()
}

/// The full content of one output coefficient of a hand-built jet, with queries for a target.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// The jet analysed.
    pub spec: JetSpec,
    /// The output coefficient analysed.
    pub read_order: usize,
    /// `y_{read_order} = Σ coefficient·∂^derivative u` (see [`expand`]).
    pub terms: Vec<Term>,
}

impl Analysis {
    /// The coefficient of `target` in `y_{read_order}` (0 when it does not appear).
    pub fn coefficient_of(&self, target: &MultiIndex) -> f64 {
        self.terms
            .iter()
            .find(|t| &t.derivative == target)
            .map_or(0.0, |t| t.coefficient)
    }

    /// Whether `y_{read_order}` is a multiple of `target` alone, so `target = y / coefficient`.
    pub fn is_clean_for(&self, target: &MultiIndex) -> bool {
        self.terms.len() == 1 && &self.terms[0].derivative == target
    }

    /// Every term other than `target`: what must be subtracted to isolate it.
    pub fn contaminants(&self, target: &MultiIndex) -> Vec<Term> {
        self.terms
            .iter()
            .filter(|t| &t.derivative != target)
            .cloned()
            .collect()
    }
}

impl fmt::Display for Analysis {
    /// `y7 of 7-jet [v2=e_x0, v3=e_x1] = 105·∂^3/∂x0^2∂x1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "y{} of {} = {}",
            self.read_order,
            self.spec,
            join_terms(&self.terms)
        )
    }
}

/// Analyses output coefficient `read_order` of `spec`; see [`expand`] (same panics).
#[track_caller]
pub fn analyze(spec: &JetSpec, read_order: usize) -> Analysis {
    Analysis {
        spec: spec.clone(),
        read_order,
        terms: expand(spec, read_order),
    }
}

/// `a + b + c`, or `0` for no terms.
fn join_terms(terms: &[Term]) -> String {
    if terms.is_empty() {
        return "0".to_owned();
    }
    terms
        .iter()
        .map(Term::to_string)
        .collect::<Vec<_>>()
        .join(" + ")
}

/// One weighted output coefficient of a plan: target `target` gets `weight · y_order(jets[jet])`.
#[derive(Clone, Debug, PartialEq)]
pub struct Readout {
    /// Index into [`Plan::targets`] (0 for single-target plans).
    pub target: usize,
    /// Index into [`Plan::jets`].
    pub jet: usize,
    /// Which derivative coefficient `y_order` of that jet to read.
    pub order: usize,
    /// Its weight in the target.
    pub weight: f64,
}

/// A set of pushforwards and weighted readouts: `targets[i] = Σ_{r: r.target = i} r.weight ·
/// y_{r.order}(jets[r.jet])`, with `y` in the derivative convention.
///
/// Jets with identical slots are shared; a shared jet's order is the largest order read from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The derivatives the plan computes.
    pub targets: Vec<MultiIndex>,
    /// The distinct pushforwards to run (slots sorted by slot order).
    pub jets: Vec<JetSpec>,
    /// Sorted by target, then jet, then order.
    pub readouts: Vec<Readout>,
}

impl Plan {
    /// Combines jet outputs into target values: `jet_outputs[j]` holds the derivative coefficients
    /// `y_0..` of `jets[j]` (at least `jets[j].order + 1` of them). Returns one value per target.
    ///
    /// # Panics
    /// If `jet_outputs` has fewer entries than `jets`, or an output is too short for a readout.
    pub fn combine<S: AsRef<[f64]>>(&self, jet_outputs: &[S]) -> Vec<f64> {
        assert!(
            jet_outputs.len() >= self.jets.len(),
            "{} jet outputs for {} jets",
            jet_outputs.len(),
            self.jets.len()
        );
        let mut values = vec![0.0; self.targets.len()];
        for r in &self.readouts {
            values[r.target] += r.weight * jet_outputs[r.jet].as_ref()[r.order];
        }
        values
    }

    /// The readouts of target `target`.
    pub fn readouts_for(&self, target: usize) -> impl Iterator<Item = &Readout> + '_ {
        self.readouts.iter().filter(move |r| r.target == target)
    }

    /// Concatenates plans into one: targets keep their order (plan by plan), jets with identical
    /// slots are shared across plans (order = the largest), readouts are re-indexed.
    pub fn merge(plans: impl IntoIterator<Item = Plan>) -> Plan {
        let mut builder = PlanBuilder::default();
        for p in plans {
            let offset = builder.targets.len();
            builder.targets.extend(p.targets.iter().cloned());
            for jet in &p.jets {
                builder.jet(&jet.slots, jet.order);
            }
            for r in &p.readouts {
                builder.add(
                    offset + r.target,
                    &RawReadout::new(p.jets[r.jet].slots.clone(), r.order, r.weight),
                );
            }
        }
        builder.build()
    }
}

impl fmt::Display for Plan {
    /// One line per jet, then one line per target: `∂^2/∂x0∂x1 = 0.333…·y3[J0] − …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, jet) in self.jets.iter().enumerate() {
            writeln!(f, "J{n}: {jet}")?;
        }
        for (t, target) in self.targets.iter().enumerate() {
            write!(f, "{target} =")?;
            for r in self.readouts_for(t) {
                write!(f, " {:+}·J{}[{}]", r.weight, r.jet, r.order)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Knobs of [`plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlannerParams {
    /// The largest jet order a plan may use (read orders are ≤ this too).
    pub max_order: usize,
    /// Whether a contaminated readout may be used with its contaminants subtracted by extra
    /// pushforwards. When false, only clean readouts are accepted.
    pub allow_cancellation: bool,
}

impl Default for PlannerParams {
    /// `max_order = 16`, cancellation allowed.
    fn default() -> Self {
        Self {
            max_order: 16,
            allow_cancellation: true,
        }
    }
}

/// Why no plan was produced.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum PlanError {
    /// The target is `∂^0` (nothing to differentiate).
    #[error("the target is the empty multi-index (∂^0); nothing to plan")]
    EmptyTarget,
    /// Even the cheapest slot assignment needs a read order above `max`.
    #[error("the target needs read order {needed}, above the maximum jet order {max}")]
    OrderTooHigh {
        /// The smallest read order any slot assignment needs.
        needed: usize,
        /// [`PlannerParams::max_order`].
        max: usize,
    },
    /// No clean readout exists within the limits and the contaminants could not be (or were not
    /// allowed to be) cancelled. Reports the preferred readout and what contaminates it.
    #[error(
        "{target} has no clean pushforward: {spec} read at order {read_order} gives \
         {coefficient}·{target} plus {}",
        join_terms(.contaminants)
    )]
    Contaminated {
        /// The derivative that was asked for.
        target: MultiIndex,
        /// The preferred (smallest read order) pushforward for it.
        spec: JetSpec,
        /// The output coefficient read from `spec`.
        read_order: usize,
        /// The coefficient of `target` in that output.
        coefficient: f64,
        /// Every other term of that output.
        contaminants: Vec<Term>,
    },
    /// [`plan_with_slots`] got an unusable slot choice.
    #[error("invalid slot choice: {reason}")]
    InvalidSlots {
        /// What is wrong with it.
        reason: String,
    },
}

/// Plans `target` with searched slot orders.
///
/// Every assignment of distinct slot orders `j_t ≥ 1` to the target's variables with read order
/// `k = Σ q_t·j_t ≤ max_order` is considered, in the order (smallest `k`, smallest largest slot order,
/// lexicographic slot orders by variable). The first *clean* one (unique partition, so
/// `y_k = coefficient·target`) wins. Otherwise, with cancellation allowed, the assignments are tried in
/// the same order with every contaminant planned recursively and subtracted; the recursion never
/// re-enters a derivative already being planned and is bounded in depth and work.
///
/// # Errors
/// [`PlanError::EmptyTarget`] for `∂^0`; [`PlanError::OrderTooHigh`] when even the cheapest
/// assignment exceeds `max_order`; [`PlanError::Contaminated`] (describing the smallest-`k`
/// assignment) when nothing clean exists and cancellation is disallowed or fails.
pub fn plan(target: &MultiIndex, params: &PlannerParams) -> Result<Plan, PlanError> {
    let mut solver = Solver::new(params);
    let readouts = solver.solve(target)?;
    Ok(PlanBuilder::single(target, &readouts))
}

/// Plans several targets (e.g. the partials of one operator) as one plan: `readouts[r].target`
/// indexes `targets`, and identical jets are shared between targets.
///
/// # Errors
/// The first error of [`plan`] on any target.
pub fn plan_many(targets: &[MultiIndex], params: &PlannerParams) -> Result<Plan, PlanError> {
    let mut solver = Solver::new(params);
    let mut builder = PlanBuilder::default();
    for (t, target) in targets.iter().enumerate() {
        let readouts = solver.solve(target)?;
        builder.targets.push(target.clone());
        for r in &readouts {
            builder.add(t, r);
        }
    }
    Ok(builder.build())
}

/// Plans `target` with user-chosen slot orders `slots = [(variable, slot order)]`, e.g. the 1D g-KdV
/// choice `x → 1, t → 4`. Every target variable must have a slot; extra variables may have slots
/// too (they ride along and are what contaminates), and all of them are pushed forward together so
/// that plans for several targets share one jet.
///
/// The read order is `k = Σ q_t·j_t` over the target's variables. Contaminants are cancelled with a
/// pushforward that keeps the *same* slot orders restricted to the contaminant's variables when that
/// is clean (g-KdV: `u_t = J2[4] − J1[4]` with `J1 = v1 = e_x` alone), and otherwise with [`plan`].
///
/// # Errors
/// [`PlanError::InvalidSlots`] for a slot order 0, repeated slot orders or variables, or a target
/// variable without a slot; [`PlanError::EmptyTarget`]; [`PlanError::OrderTooHigh`] if
/// `k > max_order`; [`PlanError::Contaminated`] if the readout is contaminated and cancellation is
/// disallowed or fails.
pub fn plan_with_slots(
    target: &MultiIndex,
    slots: &[(usize, usize)],
    params: &PlannerParams,
) -> Result<Plan, PlanError> {
    if target.is_empty() {
        return Err(PlanError::EmptyTarget);
    }
    let invalid = |reason: String| Err(PlanError::InvalidSlots { reason });
    if let Some(&(var, _)) = slots.iter().find(|&&(_, j)| j == 0) {
        return invalid(format!("variable x{var} has slot order 0 (the base point)"));
    }
    for (n, &(var, j)) in slots.iter().enumerate() {
        if slots[..n].iter().any(|&(v, _)| v == var) {
            return invalid(format!("variable x{var} has more than one slot"));
        }
        if slots[..n].iter().any(|&(_, i)| i == j) {
            return invalid(format!("slot order {j} is used twice"));
        }
    }
    let mut k = 0;
    for &(var, q) in target.entries() {
        match slots.iter().find(|&&(v, _)| v == var) {
            Some(&(_, j)) => k += q as usize * j,
            None => return invalid(format!("target variable x{var} has no slot")),
        }
    }
    if k > params.max_order {
        return Err(PlanError::OrderTooHigh {
            needed: k,
            max: params.max_order,
        });
    }
    // Internally slots are (slot order, variable), sorted: the JetSpec normal form.
    let jet_slots = JetSpec::new(k, &slots.iter().map(|&(v, j)| (j, v)).collect::<Vec<_>>()).slots;
    let terms = expand_exact(&jet_slots, k);
    let (coef, contaminants) = split_terms(&terms, target);
    let mut readouts = vec![RawReadout::new(jet_slots.clone(), k, 1.0 / coef as f64)];
    if !contaminants.is_empty() {
        let contaminated = || contaminated_error(target, &jet_slots, k, coef, &contaminants);
        if !params.allow_cancellation {
            return Err(contaminated());
        }
        let mut solver = Solver::new(params);
        for (m, c_m) in &contaminants {
            let scale = -(*c_m as f64) / coef as f64;
            // The same slot orders on the contaminant's variables alone.
            let restricted: Vec<(usize, usize)> = jet_slots
                .iter()
                .copied()
                .filter(|&(_, v)| m.multiplicity(v) > 0)
                .collect();
            let sub_terms = expand_exact(&restricted, k);
            if sub_terms.len() == 1 && &sub_terms[0].0 == m {
                let w = scale / sub_terms[0].1 as f64;
                readouts.push(RawReadout::new(restricted, k, w));
            } else {
                let sub = solver.solve(m).map_err(|_| contaminated())?;
                readouts.extend(sub.iter().map(|r| r.scaled(scale)));
            }
        }
    }
    Ok(PlanBuilder::single(target, &merge_raw(readouts)))
}

/// A readout before jets are indexed: `weight · y_order(jet with these slots)`.
#[derive(Clone, Debug)]
struct RawReadout {
    /// `(slot order, variable)`, sorted.
    slots: Vec<(usize, usize)>,
    order: usize,
    weight: f64,
    /// Σ |contributions| summed into `weight`: a weight below rounding of this is an exact
    /// cancellation (two paths reading the same coefficient with opposite signs) and is dropped.
    magnitude: f64,
}

impl RawReadout {
    fn new(slots: Vec<(usize, usize)>, order: usize, weight: f64) -> Self {
        Self {
            slots,
            order,
            weight,
            magnitude: weight.abs(),
        }
    }

    fn scaled(&self, s: f64) -> Self {
        Self {
            slots: self.slots.clone(),
            order: self.order,
            weight: self.weight * s,
            magnitude: self.magnitude * s.abs(),
        }
    }

    /// Whether the accumulated weight is only rounding left over from a cancellation.
    fn cancelled(&self) -> bool {
        self.weight.abs() <= 64.0 * f64::EPSILON * self.magnitude
    }
}

/// Sums readouts of the same coefficient of the same jet and drops the cancelled ones.
fn merge_raw(readouts: Vec<RawReadout>) -> Vec<RawReadout> {
    let mut merged: BTreeMap<(Vec<(usize, usize)>, usize), RawReadout> = BTreeMap::new();
    for r in readouts {
        match merged.get_mut(&(r.slots.clone(), r.order)) {
            Some(acc) => {
                acc.weight += r.weight;
                acc.magnitude += r.magnitude;
            }
            None => {
                merged.insert((r.slots.clone(), r.order), r);
            }
        }
    }
    merged.into_values().filter(|r| !r.cancelled()).collect()
}

/// Indexes jets (shared by slots) and readouts into a [`Plan`].
#[derive(Default)]
struct PlanBuilder {
    targets: Vec<MultiIndex>,
    jets: Vec<JetSpec>,
    jet_index: HashMap<Vec<(usize, usize)>, usize>,
    /// (target, jet, order) → accumulated readout.
    readouts: BTreeMap<(usize, usize, usize), RawReadout>,
}

impl PlanBuilder {
    fn single(target: &MultiIndex, readouts: &[RawReadout]) -> Plan {
        let mut b = Self::default();
        b.targets.push(target.clone());
        for r in readouts {
            b.add(0, r);
        }
        b.build()
    }

    /// The index of the jet with these slots, raising its order to at least `order`.
    fn jet(&mut self, slots: &[(usize, usize)], order: usize) -> usize {
        if let Some(&i) = self.jet_index.get(slots) {
            self.jets[i].order = self.jets[i].order.max(order);
            return i;
        }
        let i = self.jets.len();
        self.jets.push(JetSpec::new(order, slots));
        self.jet_index.insert(self.jets[i].slots.clone(), i);
        i
    }

    fn add(&mut self, target: usize, r: &RawReadout) {
        let jet = self.jet(&r.slots, r.order);
        match self.readouts.get_mut(&(target, jet, r.order)) {
            Some(acc) => {
                acc.weight += r.weight;
                acc.magnitude += r.magnitude;
            }
            None => {
                self.readouts.insert((target, jet, r.order), r.clone());
            }
        }
    }

    fn build(self) -> Plan {
        let readouts = self
            .readouts
            .into_iter()
            .filter(|(_, r)| !r.cancelled())
            .map(|((target, jet, order), r)| Readout {
                target,
                jet,
                order,
                weight: r.weight,
            })
            .collect();
        Plan {
            targets: self.targets,
            jets: self.jets,
            readouts,
        }
    }
}

/// The target's coefficient and every other term, from an exact expansion.
fn split_terms(
    terms: &[(MultiIndex, u128)],
    target: &MultiIndex,
) -> (u128, Vec<(MultiIndex, u128)>) {
    let coef = terms
        .iter()
        .find(|(m, _)| m == target)
        .map_or(0, |&(_, c)| c);
    let others = terms.iter().filter(|(m, _)| m != target).cloned().collect();
    (coef, others)
}

fn contaminated_error(
    target: &MultiIndex,
    slots: &[(usize, usize)],
    k: usize,
    coef: u128,
    contaminants: &[(MultiIndex, u128)],
) -> PlanError {
    PlanError::Contaminated {
        target: target.clone(),
        spec: JetSpec::new(k, slots),
        read_order: k,
        coefficient: coef as f64,
        contaminants: contaminants
            .iter()
            .map(|(m, c)| Term {
                derivative: m.clone(),
                coefficient: *c as f64,
            })
            .collect(),
    }
}

/// A slot assignment for one target and what its readout holds.
struct Candidate {
    /// `(slot order, variable)`, sorted.
    slots: Vec<(usize, usize)>,
    k: usize,
    coef: u128,
    contaminants: Vec<(MultiIndex, u128)>,
}

/// How deep cancellation may nest. Contaminants with fewer variables bottom out at single-variable
/// derivatives (always clean), so this only bites on same-variable cycles.
const MAX_DEPTH: usize = 12;
/// How many derivatives one top-level call may try to plan before giving up, so that a hopeless
/// target fails in bounded time instead of exploring every assignment of every contaminant.
const MAX_SOLVES: usize = 20_000;

/// The recursive search of [`plan`], with the state that keeps it bounded and fast.
struct Solver<'a> {
    params: &'a PlannerParams,
    /// Results that do not depend on the recursion stack: successes always, failures only when no
    /// cycle cut or budget limit was hit below them.
    memo: HashMap<MultiIndex, Result<Vec<RawReadout>, PlanError>>,
    /// Derivatives currently being planned: re-entering one would loop.
    stack: Vec<MultiIndex>,
    solves: usize,
    /// Bumped whenever a branch is cut for stack-dependent reasons (cycle, depth, budget).
    cuts: usize,
}

impl<'a> Solver<'a> {
    fn new(params: &'a PlannerParams) -> Self {
        Self {
            params,
            memo: HashMap::new(),
            stack: Vec::new(),
            solves: 0,
            cuts: 0,
        }
    }

    /// Every assignment of distinct slot orders with `k ≤ max_order`, in preference order.
    fn assignments(&self, target: &MultiIndex) -> Vec<(usize, Vec<usize>)> {
        fn rec(
            q: &[u32],
            t: usize,
            k: usize,
            max: usize,
            js: &mut Vec<usize>,
            out: &mut Vec<(usize, Vec<usize>)>,
        ) {
            if t == q.len() {
                out.push((k, js.clone()));
                return;
            }
            // Every later variable needs at least slot order 1.
            let later: usize = q[t + 1..].iter().map(|&m| m as usize).sum();
            let q_t = q[t] as usize;
            let mut j = 1;
            while k + q_t * j + later <= max {
                if !js.contains(&j) {
                    js.push(j);
                    rec(q, t + 1, k + q_t * j, max, js, out);
                    js.pop();
                }
                j += 1;
            }
        }
        let q: Vec<u32> = target.entries().iter().map(|&(_, m)| m).collect();
        let mut out = Vec::new();
        rec(&q, 0, 0, self.params.max_order, &mut Vec::new(), &mut out);
        out.sort_by(|(ka, ja), (kb, jb)| {
            let max_a = ja.iter().max();
            let max_b = jb.iter().max();
            (ka, max_a, ja).cmp(&(kb, max_b, jb))
        });
        out
    }

    fn candidate(target: &MultiIndex, k: usize, js: &[usize]) -> Candidate {
        let pairs: Vec<(usize, usize)> = js.iter().copied().zip(target.vars()).collect();
        let slots = JetSpec::new(k, &pairs).slots;
        let terms = expand_exact(&slots, k);
        let (coef, contaminants) = split_terms(&terms, target);
        Candidate {
            slots,
            k,
            coef,
            contaminants,
        }
    }

    fn solve(&mut self, target: &MultiIndex) -> Result<Vec<RawReadout>, PlanError> {
        if target.is_empty() {
            return Err(PlanError::EmptyTarget);
        }
        if let Some(r) = self.memo.get(target) {
            return r.clone();
        }
        self.solves += 1;
        let cuts_before = self.cuts;
        let result = self.solve_uncached(target);
        if result.is_ok() || self.cuts == cuts_before {
            self.memo.insert(target.clone(), result.clone());
        }
        result
    }

    fn solve_uncached(&mut self, target: &MultiIndex) -> Result<Vec<RawReadout>, PlanError> {
        let assignments = self.assignments(target);
        if assignments.is_empty() {
            // Rearrangement: the largest multiplicity gets slot 1, the next slot 2, …
            let mut q: Vec<usize> = target.entries().iter().map(|&(_, m)| m as usize).collect();
            q.sort_unstable_by(|a, b| b.cmp(a));
            let needed = q.iter().enumerate().map(|(i, &m)| (i + 1) * m).sum();
            return Err(PlanError::OrderTooHigh {
                needed,
                max: self.params.max_order,
            });
        }
        let mut candidates = Vec::with_capacity(assignments.len());
        for (k, js) in &assignments {
            let c = Self::candidate(target, *k, js);
            if c.contaminants.is_empty() {
                return Ok(vec![RawReadout::new(c.slots, c.k, 1.0 / c.coef as f64)]);
            }
            candidates.push(c);
        }
        let first = &candidates[0];
        let failure = contaminated_error(
            target,
            &first.slots,
            first.k,
            first.coef,
            &first.contaminants,
        );
        if !self.params.allow_cancellation {
            return Err(failure);
        }
        if self.stack.contains(target) || self.stack.len() >= MAX_DEPTH {
            self.cuts += 1;
            return Err(failure);
        }
        self.stack.push(target.clone());
        let mut found = None;
        'candidates: for c in &candidates {
            let mut readouts = vec![RawReadout::new(c.slots.clone(), c.k, 1.0 / c.coef as f64)];
            // Fewer variables first: those always succeed, so a hopeless candidate fails on its
            // hard contaminants only after the cheap ones are memoised for the next candidate.
            let mut order: Vec<&(MultiIndex, u128)> = c.contaminants.iter().collect();
            order.sort_by_key(|(m, _)| (m.num_vars(), m.total_order()));
            for (m, c_m) in order {
                if self.solves >= MAX_SOLVES {
                    self.cuts += 1;
                    break 'candidates;
                }
                match self.solve(m) {
                    Ok(sub) => {
                        let scale = -(*c_m as f64) / c.coef as f64;
                        readouts.extend(sub.iter().map(|r| r.scaled(scale)));
                    }
                    Err(_) => continue 'candidates,
                }
            }
            found = Some(merge_raw(readouts));
            break;
        }
        self.stack.pop();
        found.ok_or(failure)
    }
}
