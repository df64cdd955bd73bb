//! The backend traits: the 23 device primitives that one STDE training step is built from.
//!
//! A backend implements three traits, layered so that each can be tested on its own:
//!
//! * [`Backend`] (13 methods): memory, transfers, matrix products, biases, jet activations and their
//!   adjoints, counter-based draws and the fused Adam update;
//! * [`ProgramBackend`] (3 methods): compiles a [`Program`] (the problem's expressions, lowered by
//!   [`crate::program::lower`]) and runs it in primal mode or as Taylor series along probe directions;
//! * [`GenericStep`] (7 methods): the input layer with probes in any slot and its adjoint, the
//!   shared block map of a weight-shared first block with probes in any slot and its adjoint, the
//!   ansatz-and-readout from model jets to term estimates and its adjoint, and the point samplers.
//!
//! Everything above these primitives (the problem, its expressions, the estimators and the probe
//! plan, the training loop, checkpoints) is written once in `stde-core`. A backend owns device memory
//! and runs kernels; it never knows a problem: equations, exact solutions, forcing, nonlinearities
//! and ansatz factors reach it only as compiled programs, and operators only as probe tangents and
//! readout weights.
//!
//! # Data layout (shared by every method)
//!
//! * Buffers hold `f32` ([`Backend::Buf`]) or `u32` ([`Backend::Idx`]); lengths are fixed at
//!   allocation. A backend may compute in higher precision (the reference uses f64).
//! * Jet activations use the stacked-row layout of [`crate::batch`]: `n_blocks · n_points` rows of
//!   `width` values, row-major, block 0 the primal, then coefficient `k` of direction `s` at block
//!   `1 + (k−1)·V + s` (collapsed: one summed block for `k = K`). Values are Taylor coefficients.
//! * A linear layer's weight is `out × in` row-major, its bias `out`, stored back to back in the flat
//!   parameter buffer at the offsets of [`crate::mlp::MlpShape::offsets`]. A weight-shared first
//!   block keeps its parameters after the MLP's ([`crate::shared::SharedNet`]).
//! * Points are row-major `n × stride` (`stride = d`, plus one for a time column).
//!
//! # Invariants
//!
//! * Methods enqueue work in order; a later method sees the results of earlier ones (one stream).
//! * Only [`Backend::download`] brings data back to the host, and it is `async` because a browser
//!   cannot block on the GPU. Native callers use `pollster::block_on` or any executor.
//! * Shape errors are caller bugs and may panic; device failures return [`BackendError`].
//!
//! A new backend implements these methods and runs [`crate::conformance`] against itself (the
//! [`conformance_tests!`](crate::conformance_tests) macro). A backend whose buffers are host vectors
//! can reuse the host implementations of [`host_step`] and the program interpreter of
//! [`crate::program::interp`].

pub mod cpu;
pub mod host_step;
pub mod reference;

pub use cpu::CpuBackend;

use crate::program::Program;

use std::future::Future;

use crate::batch::JetShape;
use crate::mlp::Activation;

/// Runtime failures of a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// An allocation did not fit in device memory.
    #[error(
        "out of device memory: {requested_bytes} bytes requested ({what}); try a smaller --batch, \
         fewer --rand-dims or a smaller --dim"
    )]
    OutOfMemory {
        /// Bytes asked for.
        requested_bytes: u64,
        /// What the allocation was for.
        what: &'static str,
    },
    /// No usable device was found.
    #[error("no {backend} device available: {reason}")]
    NoDevice {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// The device stopped responding or was removed.
    #[error("the {backend} device was lost: {reason}")]
    DeviceLost {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
}

/// A matrix product on row-major buffers at element offsets:
/// `C[m×n] = alpha·op(A)·op(B) + beta·C`, with `op(A)` `m × k` and `op(B)` `k × n`.
/// `A` is stored `m × k` (or `k × m` when `trans_a`), `B` `k × n` (or `n × k` when `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Whether `A` is stored transposed.
    pub trans_a: bool,
    /// Whether `B` is stored transposed.
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old `C` (`0` overwrites, so `C` may hold garbage).
    pub beta: f32,
    /// Element offset of `A` in its buffer.
    pub a_offset: usize,
    /// Element offset of `B` in its buffer.
    pub b_offset: usize,
    /// Element offset of `C` in its buffer.
    pub c_offset: usize,
}

impl Gemm {
    /// `C = A·Bᵀ` without offsets: the shape of a linear layer's forward pass.
    pub fn nt(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
            a_offset: 0,
            b_offset: 0,
            c_offset: 0,
        }
    }
}

/// How the probe tangents of one step are given (see [`SlotProbes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Every slot of a direction holds a scaled one-hot tangent (sparse and exact STDE, the planner's
    /// mixed partials): the tangent rows of the first layer are scaled columns of `W1` (a gather) and
    /// their adjoint a scatter-add.
    OneHot,
    /// Direction `s` has a dense tangent, row `s` of a `V × stride` buffer, in slot 1 (dense STDE).
    Dense,
}

/// Adam hyper-parameters of one update (`t` counts from 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
    /// Step number, from 1 (for bias correction).
    pub t: u32,
}

/// What a sampling kernel draws; all from the counter-based generator of [`crate::rng`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Points `first..first + n` (each `d` long) of the unit-ball sampler: radius `U[0,1]` times a
    /// normalised Gaussian direction ([`crate::rng::sample_ball_points_from`]).
    BallPoints {
        /// Index of the first point (to draw a large set in chunks).
        first: usize,
        /// Points.
        n: usize,
        /// Dimension.
        d: usize,
        /// Generator stream.
        stream: u32,
    },
    /// `count` Rademacher signs of the `DENSE_TANGENTS` stream: element `e` is the sign of word
    /// `e % 4` of block `e / 4` ([`crate::rng::Philox::fill_rademacher_f32`]).
    Rademacher {
        /// How many.
        count: usize,
    },
    /// `count` standard normals of the `DENSE_TANGENTS` stream: element `e` is normal `e % 4` of
    /// block `e / 4` ([`crate::rng::Philox::fill_normal_f32`]; equal to it to rounding).
    Gaussian {
        /// How many.
        count: usize,
    },
}

/// The device primitives of one training step. See the module documentation for layouts.
pub trait Backend {
    /// A device buffer of `f32`.
    type Buf;
    /// A device buffer of `u32`.
    type Idx;

    /// A human-readable description (backend and device).
    fn describe(&self) -> String;

    /// A zeroed buffer of `len` values; `what` names it in out-of-memory errors.
    fn alloc(&self, len: usize, what: &'static str) -> Result<Self::Buf, BackendError>;

    /// A zeroed index buffer.
    fn alloc_idx(&self, len: usize, what: &'static str) -> Result<Self::Idx, BackendError>;

    /// Copies host data into `dst[offset..offset + src.len()]`.
    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[f32]);

    /// Copies host indices into `dst` (from the start).
    fn upload_idx(&self, dst: &mut Self::Idx, src: &[u32]);

    /// Reads `src[offset..offset + len]` back, after all work enqueued so far.
    fn download(
        &self,
        src: &Self::Buf,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>>;

    /// A matrix product (see [`Gemm`]). `c` must not alias `a` or `b`.
    fn gemm(&self, g: Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf);

    /// Adds the bias `params[bias_offset..+width]` to the primal rows (block 0) of a batch.
    fn add_bias(&self, shape: JetShape, params: &Self::Buf, bias_offset: usize, z: &mut Self::Buf);

    /// Accumulates `grad[bias_offset + h] += Σ_n z_bar[primal row n, h]`.
    fn bias_grad(
        &self,
        shape: JetShape,
        z_bar: &Self::Buf,
        grad: &mut Self::Buf,
        bias_offset: usize,
    );

    /// The jet rule of `act` on every (point, direction, feature) of `z`, written to `h` (same shape).
    ///
    /// In a collapsed shape the top block holds `Σ_s z_K^s`: every direction's series is formed
    /// with its own top coefficient taken as 0, and the top block of `h` is the sum over directions
    /// of those tops plus `σ'(z_0)·Σ_s z_K^s` once (the top enters linearly); the adjoint carries
    /// the matching `σ''(z_0)·z_K·h̄_K` term into the primal cotangent. `crate::reference` is the
    /// executable specification.
    fn jet_activation_forward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h: &mut Self::Buf,
    );

    /// Adjoint of [`Backend::jet_activation_forward`]: `z_bar` from `z` and `h_bar` (overwrites).
    fn jet_activation_backward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h_bar: &Self::Buf,
        z_bar: &mut Self::Buf,
    );

    /// Draws from the counter-based generator at `(seed, step)` into `out`.
    fn sample(&self, what: Sampling, seed: u64, step: u32, out: &mut Self::Buf);

    /// One fused Adam update of `params` from `grad`, then zeroes `grad`.
    fn adam(
        &self,
        step: AdamStep,
        params: &mut Self::Buf,
        grad: &mut Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
    );
}

/// The probe tangents of one step in every slot, shared by all points (the general form that
/// compiled programs and the planner's jets use).
///
/// Direction `s` moves the point along `x(τ) = x + Σ_{k=1..K} τ^k·v_k^s` (Taylor coefficients).
/// * [`ProbeKind::OneHot`]: `v_k^s = slot_coeff[s·K + k − 1]·e_j` with `j = slot_index[s·K + k − 1]`;
///   an index of [`SlotProbes::EMPTY`] leaves the slot zero. `j` may be `dim` for the time column.
/// * [`ProbeKind::Dense`]: `v_1^s` is row `s` of the `V × stride` buffer `dense`; higher slots are zero.
#[derive(Debug)]
pub struct SlotProbes<'a, B: Backend + ?Sized> {
    /// Which buffers are read.
    pub kind: ProbeKind,
    /// `V·K` coordinate indices (one-hot).
    pub slot_index: &'a B::Idx,
    /// `V·K` Taylor coefficients (one-hot).
    pub slot_coeff: &'a B::Buf,
    /// `V × stride` tangents (dense).
    pub dense: &'a B::Buf,
}

impl<B: Backend + ?Sized> SlotProbes<'_, B> {
    /// The index of an empty slot.
    pub const EMPTY: u32 = u32::MAX;
}

/// Backends that run compiled [`Program`]s (see [`crate::program`] for the layouts and semantics).
pub trait ProgramBackend: Backend {
    /// A program compiled for this backend.
    type Compiled;

    /// Compiles a program.
    ///
    /// # Errors
    /// [`BackendError`] when the device compiler rejects it or memory runs out.
    fn compile_program(&self, program: &Program) -> Result<Self::Compiled, BackendError>;

    /// Primal mode: every output of the program at points `0..n_points` of `points` (rows of
    /// `program.point_stride()` values), reading `features` (`n_features` columns of `n_points`) and
    /// `params`, into `out` (`n_outputs` columns of `n_points`).
    fn run_program(
        &self,
        program: &Self::Compiled,
        n_points: usize,
        points: &Self::Buf,
        features: &Self::Buf,
        params: &Self::Buf,
        out: &mut Self::Buf,
    );

    /// Series mode: the Taylor coefficients `0..=shape.order` of every output along every probe
    /// direction, in the jet-batch layout of `shape` (width = number of outputs, not collapsed).
    fn run_program_series(
        &self,
        program: &Self::Compiled,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        out: &mut Self::Buf,
    );
}

/// The shared block map of a weight-shared first block ([`GenericStep::shared_block_forward`]):
/// coordinates `0..n_blocks·block` of a point row are cut into `n_blocks` blocks of `block`
/// consecutive coordinates, each mapped by one shared weight vector `w` and bias `c` to
/// `y_b = Σ_{i<B} w_i·x_{bB+i} + c`; the remaining coordinates `n_blocks·block..stride` (the time
/// column of a time-dependent problem) are not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedBlocks {
    /// Coordinates per block, `B`: the length of `w`.
    pub block: usize,
    /// Number of blocks (the width of the block features).
    pub n_blocks: usize,
    /// Row length of the points (`≥ n_blocks·block`).
    pub stride: usize,
    /// Element offset of `w` (`block` values) in the parameter buffer; `c` follows it.
    pub offset: usize,
}

impl SharedBlocks {
    /// Coordinates mapped by the blocks: `n_blocks·block`.
    pub fn mapped(&self) -> usize {
        self.n_blocks * self.block
    }

    /// The jet shape of the block features for a batch of `shape` (width `n_blocks`).
    pub fn features(&self, shape: JetShape) -> JetShape {
        shape.with_width(self.n_blocks)
    }
}

/// The shapes of one readout: the model output `m` (width 1), whether ansatz series are given, and
/// the number of terms estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadoutShape {
    /// The jet shape of the model output (width 1; may be collapsed).
    pub shape: JetShape,
    /// Terms estimated per point.
    pub n_terms: usize,
}

/// The jet shape of the ansatz series `[A, B]` for a model batch of `shape`: the same order,
/// directions and points, width 2, never collapsed.
pub fn ansatz_shape(shape: JetShape) -> JetShape {
    JetShape {
        width: 2,
        collapsed: false,
        ..shape
    }
}

impl ReadoutShape {
    /// The shape of the ansatz series the readout reads ([`ansatz_shape`]).
    pub fn ansatz_shape(&self) -> JetShape {
        ansatz_shape(self.shape)
    }

    /// Features per point: `u` and the terms.
    pub fn n_features(&self) -> usize {
        1 + self.n_terms
    }

    /// Length of the weight table: `n_terms × V × K`.
    pub fn n_weights(&self) -> usize {
        self.n_terms * self.shape.n_dirs * self.shape.order
    }
}

/// The generic primitives of a training step beyond compiled programs: inputs with tangents in any
/// slot (through a plain first layer or a weight-shared first block), the ansatz-and-readout from
/// model jets to per-point features, its adjoint, and the point samplers of
/// [`crate::rng::sample_points_from`].
pub trait GenericStep: ProgramBackend {
    /// The input layer on a jet batch: primal rows `x·W1ᵀ + b1` and, for every direction `s` and slot
    /// `k`, the tangent rows `W1·v_k^s` (a scaled column gather for one-hot probes), broadcast to every
    /// point; a collapsed shape stores `Σ_s W1·v_K^s` in its top block. `stride` is the row length of
    /// `points` and the column count of `W1`. Order 0 computes the primal rows only.
    fn input_layer_forward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        weight_offset: usize,
        z: &mut Self::Buf,
    );

    /// Adjoint of [`GenericStep::input_layer_forward_slots`] for `W1` and `b1`, accumulated into
    /// `grad` (a scatter-add into the probed columns for one-hot probes).
    fn input_layer_backward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        z_bar: &Self::Buf,
        grad: &mut Self::Buf,
        weight_offset: usize,
    );

    /// The shared block map of a weight-shared first block ([`SharedBlocks`]) on a jet batch, with
    /// `w = params[map.offset..+B]` and `c = params[map.offset + B]`: writes the block features
    /// into `out`, a batch of `map.features(shape)` (width `n_blocks`; the width of `shape` is
    /// ignored). Primal rows `y_b = w·x_{bB..bB+B} + c`; for every direction `s` and slot `k` the
    /// tangent rows `Σ_i w_i·v_k^s[bB + i]`, broadcast to every point (the map is linear, so no
    /// higher term appears). A one-hot tangent `a·e_j` gives `a·w_{j mod B}` in column `j / B` and
    /// zero elsewhere (zero everywhere when `j` is not a mapped coordinate); a collapsed shape
    /// stores the sum of the directions' top slots in its top block.
    ///
    /// Order 0 writes the primal rows only and reads no probe.
    fn shared_block_forward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        out: &mut Self::Buf,
    );

    /// Adjoint of [`GenericStep::shared_block_forward`] for `w` and `c`, from the cotangent of the
    /// block features (`y_bar`, a batch of `map.features(shape)`), accumulated into
    /// `grad[map.offset..=map.offset + B]`: `∂w_i += Σ_{n,b} ȳ_0[n,b]·x_{n,bB+i} +
    /// Σ_{s,k} Σ_b (Σ_n ȳ_{k,s}[n,b])·v_k^s[bB+i]` and `∂c += Σ_{n,b} ȳ_0[n,b]` (the summed top
    /// block of a collapsed shape stands for every direction's top slot).
    fn shared_block_backward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        y_bar: &Self::Buf,
        grad: &mut Self::Buf,
    );

    /// The ansatz `u = A + B·m` along every direction (Cauchy products of the series of `A` and `B`
    /// in `ansatz`, a jet batch of width 2 with the model's order, directions and points, never
    /// collapsed) and the readout of the terms: writes `features` (`1 + n_terms` columns of `N`):
    /// column 0 is `u_0`, column `1 + j` is `Σ_s Σ_{k=1..K} W[j][s][k−1]·k!·u_k^s` with `W` the weight
    /// table (`n_terms × V × K`, weights on derivative coefficients). A collapsed `m` holds
    /// `Σ_s m_K^s` in its top block and the top weights must be equal across directions
    /// (`W[j][0][K−1]` is used).
    fn readout_forward(
        &self,
        r: ReadoutShape,
        m: &Self::Buf,
        ansatz: &Self::Buf,
        weights: &Self::Buf,
        features: &mut Self::Buf,
    );

    /// Adjoint of [`GenericStep::readout_forward`]: the cotangent of `m` (overwritten, same shape as
    /// `m`) from the features' cotangents (`1 + n_terms` columns of `N`).
    fn readout_backward(
        &self,
        r: ReadoutShape,
        ansatz: &Self::Buf,
        weights: &Self::Buf,
        feature_bar: &Self::Buf,
        m_bar: &mut Self::Buf,
    );

    /// Points `first .. first + n` of a sampler ([`crate::rng::sample_points_from`]) into `out`.
    fn sample_points(&self, s: PointSampling, seed: u64, step: u32, out: &mut Self::Buf);
}

/// One draw of points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointSampling {
    /// The space sampler.
    pub sampler: crate::rng::PointSampler,
    /// The time column.
    pub time: crate::rng::TimeSampler,
    /// First point index.
    pub first: usize,
    /// Points.
    pub n: usize,
    /// Space dimension.
    pub d: usize,
    /// Generator stream.
    pub stream: u32,
}

impl PointSampling {
    /// Row length: `d`, plus one with a time column.
    pub fn stride(&self) -> usize {
        self.d + usize::from(self.time.has_time())
    }
}
