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
//! unique); otherwise it cancels the contaminants with further pushforwards: the same slot orders
//! restricted to subsets of the variables remove every contaminant that misses a variable
//! (inclusion–exclusion), and exact elimination across several slot choices removes the rest.
//! [`plan_with_slots`] does the same for a slot choice made by hand (the 1D g-KdV jets).
//! [`expand`] and [`analyze`] report exactly what a hand-built jet yields, so constructions such as the
//! paper's 2D KdV 13-jet can be checked (it is contaminated; see STDE.md §3).
//!
//! Coefficients are computed exactly in `u128` (they are integers: they count the set partitions of
//! `k` labelled items into blocks of the given sizes) and plan weights exactly as `i128` rationals;
//! both are converted to `f64` only at the API boundary, so a plan's weights are correctly rounded.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use thiserror::Error;

/// The largest read order [`expand`] accepts, and the cap on [`PlannerParams::max_order`]: `33!`
/// still fits in a `u128` (and an `i128`), which keeps every coefficient exact.
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
    expand_with_min(slots, k, 0)
}

/// The terms of `y_k` that use every slot of `slots` at least once (with one slot per variable:
/// the derivatives that involve every variable).
fn full_support_terms(slots: &[(usize, usize)], k: usize) -> Vec<(MultiIndex, u128)> {
    expand_with_min(slots, k, 1)
}

/// The partitions of `k` in which every slot is used at least `min_count` times. Enumerating the
/// remainder `k − min_count·Σ j` directly avoids generating the partitions that would be dropped.
fn expand_with_min(
    slots: &[(usize, usize)],
    k: usize,
    min_count: usize,
) -> Vec<(MultiIndex, u128)> {
    let floor: usize = slots.iter().map(|&(j, _)| j * min_count).sum();
    let Some(rest) = k.checked_sub(floor) else {
        return Vec::new();
    };
    let k_fact = factorial_u128(k);
    let mut merged: BTreeMap<MultiIndex, u128> = BTreeMap::new();
    let mut counts = vec![0usize; slots.len()];
    partitions(slots, 0, rest, &mut counts, &mut |extra| {
        // k! / Π_j (p_j! (j!)^{p_j}) is an integer (a count of set partitions), so dividing the
        // exact k! by the exact denominator loses nothing; every factor divides k!, so no overflow.
        let mut denom: u128 = 1;
        let mut pairs = Vec::with_capacity(slots.len());
        for (&(j, var), &e) in slots.iter().zip(extra.iter()) {
            let p = e + min_count;
            denom *= factorial_u128(p) * factorial_u128(j).pow(p as u32);
            if p > 0 {
                pairs.push((var, p as u32));
            }
        }
        *merged.entry(MultiIndex::new(&pairs)).or_insert(0) += k_fact / denom;
    });
    merged.into_iter().collect()
}

/// How many count vectors `p ≥ 0` solve `Σ p_t·js_t = k` (saturating at 2: callers only ask whether
/// the solution is unique). Coin-change counting, `O(|js|·k)`, far cheaper than enumerating.
fn count_partitions(js: &[usize], k: usize) -> u8 {
    let mut ways = vec![0u8; k + 1];
    ways[0] = 1;
    for &j in js {
        for s in j..=k {
            ways[s] = ways[s].saturating_add(ways[s - j]).min(2);
        }
    }
    ways[k]
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
                builder.add_f64(offset + r.target, &p.jets[r.jet].slots, r.order, r.weight);
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
    /// The largest jet order a plan may use (read orders are ≤ this too). Values above
    /// [`MAX_EXPAND_ORDER`] are treated as [`MAX_EXPAND_ORDER`].
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
        /// [`PlannerParams::max_order`] (capped at [`MAX_EXPAND_ORDER`]).
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

/// Plans `target` with searched slot orders. Every candidate gives each variable `x_{i_t}` of the target
/// a distinct slot order `j_t ≥ 1` and reads order `k = Σ q_t·j_t ≤ max_order`; candidates are ranked
/// by (smallest `k` — the jet order —, smallest largest slot order, lexicographic slot orders by
/// variable). Three strategies are tried in turn:
///
/// 1. **Clean**: the first candidate whose partition of `k` is unique, so `y_k = coefficient·target`
///    from one jet.
/// 2. **Support-clean** (needs `allow_cancellation`): the first candidate whose only partition using
///    *every* target variable is the target's own. The contaminants then all live on strict subsets
///    of the variables, and pushing the same slot orders restricted to each subset `T` cancels them
///    exactly by inclusion–exclusion: `Σ_T (−1)^{|S∖T|} y_k(J_T)` keeps only the terms that use all
///    of `S` (`2^|S| − 1` jets at most, all of order `k`; the g-KdV `u_t = J2[4] − J1[4]` is the
///    same idea with one subset).
/// 3. **Elimination** (needs `allow_cancellation`): the same inclusion–exclusion readouts of many
///    candidates are linear equations in the full-support derivatives; they are added in rank order
///    and eliminated exactly (rational arithmetic) until the target is isolated. This is the
///    simultaneous form of "subtract every contaminant by planning it recursively": contaminants of
///    one candidate are often contaminated by the target itself (e.g. `∂⁶/∂x0²∂x1²∂x2²`), which a
///    one-at-a-time recursion cannot untangle.
///
/// Weights are computed exactly and rounded once. With the default `max_order = 16` a plan takes
/// milliseconds; the search grows quickly with `max_order` (seconds for four variables at 33).
///
/// # Errors
/// [`PlanError::EmptyTarget`] for `∂^0`; [`PlanError::OrderTooHigh`] when even the cheapest candidate
/// needs `k > max_order`; [`PlanError::Contaminated`] (describing the first candidate) when no
/// strategy allowed by `params` succeeds within `max_order`. Some targets are out of reach of
/// one-slot-per-variable jets altogether at a given order (e.g. `∂⁷/∂x0³∂x1³∂x2` within 16: no
/// combination of such readouts isolates it).
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
/// The read order is `k = Σ q_t·j_t` over the target's variables. Each contaminant is cancelled with
/// a pushforward that keeps the *same* slot orders restricted to the contaminant's variables when
/// that is clean (g-KdV: `u_t = J2[4] − J1[4]` with `J1 = v1 = e_x` alone), and otherwise with
/// [`plan`].
///
/// # Errors
/// [`PlanError::InvalidSlots`] for a slot order 0, repeated slot orders or variables, or a target
/// variable without a slot; [`PlanError::EmptyTarget`]; [`PlanError::OrderTooHigh`] if
/// `k > max_order` (or `k > MAX_EXPAND_ORDER`); [`PlanError::Contaminated`] if the readout is
/// contaminated and cancellation is disallowed or fails.
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
    let max = params.max_order.min(MAX_EXPAND_ORDER);
    if k > max {
        return Err(PlanError::OrderTooHigh { needed: k, max });
    }
    // Internally slots are (slot order, variable), sorted: the JetSpec normal form.
    let swapped: Vec<(usize, usize)> = slots.iter().map(|&(v, j)| (j, v)).collect();
    let jet_slots = JetSpec::new(k, &swapped).slots;
    let terms = expand_exact(&jet_slots, k);
    let (coef, contaminants) = split_terms(&terms, target);
    let coef = Ratio::from_u128(coef);
    let contaminated = || contaminated_error(target, &jet_slots, k, &terms);
    let mut readouts = vec![RawReadout {
        slots: jet_slots.clone(),
        order: k,
        weight: coef.recip(),
    }];
    if !contaminants.is_empty() && !params.allow_cancellation {
        return Err(contaminated());
    }
    let mut solver = Solver::new(params);
    for (m, c_m) in &contaminants {
        // target = y_k/c − Σ_m (c_m/c)·m
        let scale = Ratio::from_u128(*c_m)
            .div(coef)
            .map(Ratio::neg)
            .ok_or_else(contaminated)?;
        // The same slot orders on the contaminant's variables alone.
        let restricted: Vec<(usize, usize)> = jet_slots
            .iter()
            .copied()
            .filter(|&(_, v)| m.multiplicity(v) > 0)
            .collect();
        let sub_terms = expand_exact(&restricted, k);
        let sub = if sub_terms.len() == 1 && &sub_terms[0].0 == m {
            vec![RawReadout {
                slots: restricted,
                order: k,
                weight: Ratio::from_u128(sub_terms[0].1).recip(),
            }]
        } else {
            solver.solve(m).map_err(|_| contaminated())?
        };
        for r in sub {
            let weight = r.weight.mul(scale).ok_or_else(contaminated)?;
            readouts.push(RawReadout { weight, ..r });
        }
    }
    let readouts = merge_raw(readouts).ok_or_else(contaminated)?;
    Ok(PlanBuilder::single(target, &readouts))
}

/// An exact rational `num/den` (`den > 0`, lowest terms) with checked arithmetic: plan weights are
/// ratios of partition coefficients, and exact elimination is what tells a true zero from rounding.
/// `None` from an operation means overflow; callers turn it into a planning failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ratio {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    const ZERO: Ratio = Ratio { num: 0, den: 1 };
    const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// A partition coefficient; they stay below `MAX_EXPAND_ORDER! < i128::MAX`.
    fn from_u128(n: u128) -> Self {
        Self {
            num: i128::try_from(n).expect("partition coefficients fit in i128"),
            den: 1,
        }
    }

    fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (num, den) = (num / g, den / g);
        if den < 0 {
            Some(Self {
                num: num.checked_neg()?,
                den: den.checked_neg()?,
            })
        } else {
            Some(Self { num, den })
        }
    }

    fn is_zero(self) -> bool {
        self.num == 0
    }

    fn neg(self) -> Self {
        // num = i128::MIN never occurs: every value is reduced from products far below it.
        Self {
            num: -self.num,
            den: self.den,
        }
    }

    /// `1/self`; only called on non-zero values (target coefficients and pivots).
    fn recip(self) -> Self {
        Self::new(self.den, self.num).expect("reciprocal of a non-zero ratio")
    }

    fn add(self, o: Self) -> Option<Self> {
        let g = gcd(self.den, o.den);
        let num = self
            .num
            .checked_mul(o.den / g)?
            .checked_add(o.num.checked_mul(self.den / g)?)?;
        Self::new(num, (self.den / g).checked_mul(o.den)?)
    }

    fn sub(self, o: Self) -> Option<Self> {
        self.add(o.neg())
    }

    fn mul(self, o: Self) -> Option<Self> {
        // Cross-cancel first so intermediate products stay small.
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        Self::new(
            (self.num / g1).checked_mul(o.num / g2)?,
            (self.den / g2).checked_mul(o.den / g1)?,
        )
    }

    fn div(self, o: Self) -> Option<Self> {
        if o.is_zero() {
            return None;
        }
        self.mul(o.recip())
    }

    fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// A readout before jets are indexed: `weight · y_order(jet with these slots)`, weight exact.
#[derive(Clone, Debug)]
struct RawReadout {
    /// `(slot order, variable)`, sorted.
    slots: Vec<(usize, usize)>,
    order: usize,
    weight: Ratio,
}

/// Sums readouts of the same coefficient of the same jet exactly and drops those that cancel.
/// `None` on overflow.
fn merge_raw(readouts: Vec<RawReadout>) -> Option<Vec<RawReadout>> {
    let mut merged: BTreeMap<(Vec<(usize, usize)>, usize), Ratio> = BTreeMap::new();
    for r in readouts {
        let acc = merged.entry((r.slots, r.order)).or_insert(Ratio::ZERO);
        *acc = acc.add(r.weight)?;
    }
    Some(
        merged
            .into_iter()
            .filter(|(_, w)| !w.is_zero())
            .map(|((slots, order), weight)| RawReadout {
                slots,
                order,
                weight,
            })
            .collect(),
    )
}

/// Indexes jets (shared by slots) and readouts into a [`Plan`].
#[derive(Default)]
struct PlanBuilder {
    targets: Vec<MultiIndex>,
    jets: Vec<JetSpec>,
    jet_index: HashMap<Vec<(usize, usize)>, usize>,
    /// (target, jet, order) → weight.
    readouts: BTreeMap<(usize, usize, usize), f64>,
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
        let normal = JetSpec::new(order, slots);
        if let Some(&i) = self.jet_index.get(&normal.slots) {
            self.jets[i].order = self.jets[i].order.max(order);
            return i;
        }
        let i = self.jets.len();
        self.jet_index.insert(normal.slots.clone(), i);
        self.jets.push(normal);
        i
    }

    fn add(&mut self, target: usize, r: &RawReadout) {
        self.add_f64(target, &r.slots, r.order, r.weight.to_f64());
    }

    fn add_f64(&mut self, target: usize, slots: &[(usize, usize)], order: usize, weight: f64) {
        let jet = self.jet(slots, order);
        *self.readouts.entry((target, jet, order)).or_insert(0.0) += weight;
    }

    fn build(self) -> Plan {
        let readouts = self
            .readouts
            .into_iter()
            .map(|((target, jet, order), weight)| Readout {
                target,
                jet,
                order,
                weight,
            })
            .collect();
        Plan {
            targets: self.targets,
            jets: self.jets,
            readouts,
        }
    }
}

/// The target's coefficient (0 if absent) and every other term, from an exact expansion.
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

/// The [`PlanError::Contaminated`] describing readout `k` of the jet with `slots`.
fn contaminated_error(
    target: &MultiIndex,
    slots: &[(usize, usize)],
    k: usize,
    terms: &[(MultiIndex, u128)],
) -> PlanError {
    let (coef, contaminants) = split_terms(terms, target);
    PlanError::Contaminated {
        target: target.clone(),
        spec: JetSpec::new(k, slots),
        read_order: k,
        coefficient: coef as f64,
        contaminants: contaminants
            .into_iter()
            .map(|(derivative, c)| Term {
                derivative,
                coefficient: c as f64,
            })
            .collect(),
    }
}

/// At most this many slot assignments are generated, and this many equations examined, by
/// elimination, so that a large `max_order` with many variables fails in bounded time instead of
/// enumerating millions. Never reached with `max_order = 16`.
const MAX_EQUATIONS: usize = 50_000;
/// Elimination gives up once this many independent equations have not isolated the target. With
/// `max_order = 16` every success (up to 4 variables) needs fewer than 60; at `max_order = 33` some
/// need about 300.
const MAX_ROWS: usize = 400;

/// One candidate (or elimination equation): slot orders for the target's variables and a read order.
struct Candidate {
    /// `(slot order, variable)`, sorted by slot order.
    slots: Vec<(usize, usize)>,
    k: usize,
}

/// The planning search of [`plan`], memoised across the targets of [`plan_many`].
struct Solver<'a> {
    params: &'a PlannerParams,
    memo: HashMap<MultiIndex, Result<Vec<RawReadout>, PlanError>>,
}

impl<'a> Solver<'a> {
    fn new(params: &'a PlannerParams) -> Self {
        Self {
            params,
            memo: HashMap::new(),
        }
    }

    /// The searched order limit: expansions beyond `MAX_EXPAND_ORDER` would not be exact.
    fn max_order(&self) -> usize {
        self.params.max_order.min(MAX_EXPAND_ORDER)
    }

    fn solve(&mut self, target: &MultiIndex) -> Result<Vec<RawReadout>, PlanError> {
        if target.is_empty() {
            return Err(PlanError::EmptyTarget);
        }
        if let Some(r) = self.memo.get(target) {
            return r.clone();
        }
        let result = self.solve_uncached(target);
        self.memo.insert(target.clone(), result.clone());
        result
    }

    fn solve_uncached(&self, target: &MultiIndex) -> Result<Vec<RawReadout>, PlanError> {
        let max = self.max_order();
        let vars: Vec<usize> = target.vars().collect();
        let q: Vec<usize> = target.entries().iter().map(|&(_, m)| m as usize).collect();
        let candidates = target_candidates(&vars, &q, max);
        let Some(first) = candidates.first() else {
            // Rearrangement: the largest multiplicity gets slot 1, the next slot 2, …
            let mut sorted = q.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let needed = sorted.iter().enumerate().map(|(i, &m)| (i + 1) * m).sum();
            return Err(PlanError::OrderTooHigh { needed, max });
        };
        let failure = || {
            let terms = expand_exact(&first.slots, first.k);
            contaminated_error(target, &first.slots, first.k, &terms)
        };

        let slot_orders = |c: &Candidate| c.slots.iter().map(|&(j, _)| j).collect::<Vec<_>>();
        // 1. Clean: the partition of k is unique.
        for c in &candidates {
            if count_partitions(&slot_orders(c), c.k) == 1 {
                let terms = expand_exact(&c.slots, c.k);
                let weight = Ratio::from_u128(terms[0].1).recip();
                return Ok(vec![RawReadout {
                    slots: c.slots.clone(),
                    order: c.k,
                    weight,
                }]);
            }
        }
        if !self.params.allow_cancellation {
            return Err(failure());
        }

        // 2. Support-clean: the target is the only term that uses every variable, i.e. the partition
        // of the remainder k − Σ j_t (after one part per slot) is unique.
        for c in &candidates {
            let js = slot_orders(c);
            if count_partitions(&js, c.k - js.iter().sum::<usize>()) == 1 {
                let full = full_support_terms(&c.slots, c.k);
                let weight = Ratio::from_u128(full[0].1).recip();
                if let Some(readouts) = inclusion_exclusion(&c.slots, c.k, weight) {
                    return Ok(readouts);
                }
            }
        }

        // 3. Exact elimination over the full-support derivatives.
        eliminate(target, &vars, max).ok_or_else(failure)
    }
}

/// Every assignment of distinct slot orders to `vars` (multiplicities `q`) with read order
/// `k = Σ q_t·j_t ≤ max`, ranked by (k, largest slot order, slot orders by variable).
fn target_candidates(vars: &[usize], q: &[usize], max: usize) -> Vec<Candidate> {
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for_each_assignment(q.len(), max, &mut |js| {
        let partial: usize = js.iter().zip(q).map(|(j, m)| j * m).sum();
        if js.len() == q.len() && partial <= max {
            out.push((partial, js.to_vec()));
        }
        // Every later variable needs at least slot order 1.
        partial + q[js.len()..].iter().sum::<usize>() <= max
    });
    rank_and_build(vars, out)
}

/// Ranks `(k, slot orders by variable)` pairs and builds the candidates.
fn rank_and_build(vars: &[usize], mut list: Vec<(usize, Vec<usize>)>) -> Vec<Candidate> {
    list.sort_by(|(ka, ja), (kb, jb)| (ka, ja.iter().max(), ja).cmp(&(kb, jb.iter().max(), jb)));
    list.into_iter()
        .map(|(k, js)| {
            let pairs: Vec<(usize, usize)> = js.into_iter().zip(vars.iter().copied()).collect();
            Candidate {
                slots: JetSpec::new(k, &pairs).slots,
                k,
            }
        })
        .collect()
}

/// Depth-first over assignments of distinct slot orders `1..=max` to `n` variables. `visit` sees every
/// prefix (complete assignments have length `n`) and returns whether a prefix is worth extending, so
/// callers prune on a lower bound of the read order.
fn for_each_assignment(n: usize, max: usize, visit: &mut dyn FnMut(&[usize]) -> bool) {
    fn rec(n: usize, max: usize, js: &mut Vec<usize>, visit: &mut dyn FnMut(&[usize]) -> bool) {
        for j in 1..=max {
            if js.contains(&j) {
                continue;
            }
            js.push(j);
            if visit(js) && js.len() < n {
                rec(n, max, js, visit);
            }
            js.pop();
        }
    }
    if n > 0 {
        rec(n, max, &mut Vec::new(), visit);
    }
}

/// `weight · Σ_{∅≠T⊆S} (−1)^{|S∖T|} y_k(J_T)`, where `J_T` keeps the slots of the variables in `T`:
/// by inclusion–exclusion it equals `weight ·` (the terms of `y_k(J_S)` that use every variable).
/// Subsets whose `y_k` is identically zero (no partition) are skipped. `None` on overflow.
fn inclusion_exclusion(
    slots: &[(usize, usize)],
    k: usize,
    weight: Ratio,
) -> Option<Vec<RawReadout>> {
    let n = slots.len();
    let mut out = Vec::new();
    for mask in 1u32..(1 << n) {
        let subset: Vec<(usize, usize)> = (0..n)
            .filter(|&b| mask & (1 << b) != 0)
            .map(|b| slots[b])
            .collect();
        let js: Vec<usize> = subset.iter().map(|&(j, _)| j).collect();
        if count_partitions(&js, k) == 0 {
            continue;
        }
        let w = if (n - subset.len()).is_multiple_of(2) {
            weight
        } else {
            weight.neg()
        };
        out.push(RawReadout {
            slots: subset,
            order: k,
            weight: w,
        });
    }
    merge_raw(out)
}

/// One elimination row: `Σ entries[u]·unknown_u = Σ comb[e]·equation_e`.
struct Row {
    pivot: usize,
    entries: BTreeMap<usize, Ratio>,
    comb: BTreeMap<usize, Ratio>,
}

/// `a −= f·b` on sparse vectors, dropping exact zeros. `None` on overflow.
fn axpy(a: &mut BTreeMap<usize, Ratio>, f: Ratio, b: &BTreeMap<usize, Ratio>) -> Option<()> {
    for (&i, &v) in b {
        let cur = a.get(&i).copied().unwrap_or(Ratio::ZERO);
        let next = cur.sub(f.mul(v)?)?;
        if next.is_zero() {
            a.remove(&i);
        } else {
            a.insert(i, next);
        }
    }
    Some(())
}

/// Reduces `v` by the rows in order (each row is zero on the earlier pivots, so one pass suffices)
/// and returns the accumulated combination `Σ f_i·comb_i` with `v_in = v_out + Σ f_i·row_i`.
fn reduce(v: &mut BTreeMap<usize, Ratio>, rows: &[Row]) -> Option<BTreeMap<usize, Ratio>> {
    let mut acc = BTreeMap::new();
    for row in rows {
        let Some(&x) = v.get(&row.pivot) else {
            continue;
        };
        let f = x.div(row.entries[&row.pivot])?;
        axpy(v, f, &row.entries)?;
        axpy(&mut acc, f.neg(), &row.comb)?;
    }
    Some(acc)
}

/// Strategy 3 of [`plan`]. Equations are the inclusion–exclusion readouts `E_{j,k}` (only terms that
/// use every target variable) of slot assignments `j` at read orders `k ≤ max`, taken in the same rank
/// as candidates (k, then largest slot order, then slot orders by variable). They are added one at a
/// time to an exact row echelon form; as soon as the unit vector of `target` lies in their span, the
/// combination is expanded into readouts. Because equations arrive in rank order, the plan uses the
/// cheapest prefix of them that suffices.
fn eliminate(target: &MultiIndex, vars: &[usize], max: usize) -> Option<Vec<RawReadout>> {
    let n = vars.len();
    // Assignments whose smallest full-support read order Σ j_t fits, ranked within one k.
    let mut assignments: Vec<(usize, Vec<usize>)> = Vec::new();
    for_each_assignment(n, max, &mut |js| {
        let sum: usize = js.iter().sum();
        if js.len() == n && sum <= max && assignments.len() < MAX_EQUATIONS {
            assignments.push((sum, js.to_vec()));
        }
        sum + (n - js.len()) <= max && assignments.len() < MAX_EQUATIONS
    });
    assignments.sort_by(|(_, a), (_, b)| (a.iter().max(), a).cmp(&(b.iter().max(), b)));
    let min_k = assignments.iter().map(|&(sum, _)| sum).min()?;
    let equations = (min_k..=max).flat_map(|k| {
        assignments
            .iter()
            .filter(move |(sum, _)| *sum <= k)
            .map(move |(_, js)| (k, js))
    });

    let mut unknowns: HashMap<MultiIndex, usize> = HashMap::new();
    unknowns.insert(target.clone(), 0);
    let mut rows: Vec<Row> = Vec::new();
    // `e_target − Σ f_i·row_i` reduced by every row so far, and `Σ f_i·comb_i`. A new row is zero on
    // the earlier pivots, so reducing by it alone keeps this up to date in O(row length).
    let mut target_rest = BTreeMap::from([(0usize, Ratio::ONE)]);
    let mut target_comb: BTreeMap<usize, Ratio> = BTreeMap::new();
    // The equation behind each row, by row index (row combinations refer to these indices).
    let mut used: Vec<Candidate> = Vec::new();
    for (k, js) in equations.take(MAX_EQUATIONS) {
        let pairs: Vec<(usize, usize)> = js.iter().copied().zip(vars.iter().copied()).collect();
        let eq = Candidate {
            slots: JetSpec::new(k, &pairs).slots,
            k,
        };
        let terms = full_support_terms(&eq.slots, k);
        // Until the target has appeared, nothing can be isolated; skipping keeps the system small.
        if rows.is_empty() && !terms.iter().any(|(m, _)| m == target) {
            continue;
        }
        let mut entries = BTreeMap::new();
        for (m, c) in terms {
            let next = unknowns.len();
            let u = *unknowns.entry(m).or_insert(next);
            entries.insert(u, Ratio::from_u128(c));
        }
        // After reduction, entries = E_e − Σ f_i·row_i = E_e − acc·E. An equation whose exact
        // reduction overflows is skipped: later (other) equations can still complete the span.
        let Some(acc) = reduce(&mut entries, &rows) else {
            continue;
        };
        let e = used.len();
        let mut comb = BTreeMap::from([(e, Ratio::ONE)]);
        if axpy(&mut comb, Ratio::ONE, &acc).is_none() {
            continue;
        }
        let Some(&first) = entries.keys().next() else {
            // Dependent on the rows already there: it adds nothing.
            continue;
        };
        let pivot = if entries.contains_key(&0) { 0 } else { first };
        rows.push(Row {
            pivot,
            entries,
            comb,
        });
        used.push(eq);
        let mut rest = target_rest.clone();
        let mut comb = target_comb.clone();
        let step = reduce(&mut rest, &rows[rows.len() - 1..])
            .and_then(|acc| axpy(&mut comb, Ratio::ONE.neg(), &acc));
        if step.is_none() {
            rows.pop();
            used.pop();
            continue;
        }
        (target_rest, target_comb) = (rest, comb);
        if target_rest.is_empty() {
            // e_target = Σ f_i·row_i = Σ_e comb_e·E_e.
            let mut readouts = Vec::new();
            for (&eq_index, &coef) in &target_comb {
                let c = &used[eq_index];
                readouts.extend(inclusion_exclusion(&c.slots, c.k, coef)?);
            }
            return merge_raw(readouts);
        }
        if rows.len() >= MAX_ROWS {
            break;
        }
    }
    None
}
