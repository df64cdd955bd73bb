//! Weight sharing: the optional first block that maps `x ∈ R^d` to `d/B` features with one shared
//! `B → 1` linear map and `tanh` (the paper's network for millions of dimensions), its parameter
//! layout and initialisation, its f64 host evaluation, and the first layer of the network on any
//! backend through [`GenericStep::shared_block_forward`] and its adjoint.
//!
//! # The model
//!
//! The `d` space coordinates are cut into `d/B` blocks of `B` consecutive coordinates. One weight
//! vector `w ∈ R^B` and one bias `c` map every block to `y_b = w·x_{bB..bB+B} + c`, and
//! `h_b = tanh(y_b)`. The MLP then reads the `d/B` features `h`, followed, for a time-dependent
//! problem, by the time `t` itself (unshared, no activation): its first layer is
//! `z = W1·h + W1t·t + b1`.
//!
//! Along a probe direction the block map is linear, so the jets of `y` are block sums of `w` times
//! the probe's coefficients: a one-hot probe `e_j` touches block `j / B` alone, with coefficient
//! `w_{j mod B}` (no `O(d)` work per direction); `tanh` then runs through the backend's jet
//! activation and the next layer is an ordinary matrix product on stacked rows. The time's jets
//! are the series of the program `t` (compiled from the problem's scope, like every other
//! expression) along the same probes, and enter through `W1t` as products of inner dimension 1; a
//! collapsed top block takes every direction's top time coefficient.
//!
//! # Parameter layout
//!
//! The MLP's parameters come first, exactly as for an unshared network whose input width is `d/B`
//! ([`crate::mlp::MlpShape::offsets`]); then `w` (`B` values), `c`, and the first layer's weights of
//! the pass-through inputs `W1t` (`width × n_pass`, row-major; `n_pass` is 1 with a time column,
//! else 0). [`SharedNet::offset`] is where `w` starts.
//!
//! # Initialisation
//!
//! PyTorch's default `U(±1/√fan_in)` throughout, from the same `INIT_WEIGHTS` stream as an unshared
//! network: the MLP as one whose first layer reads all `d/B + n_pass` inputs (so `W1` and `W1t` share
//! the bound `1/√(d/B + n_pass)`), then `w` and `c` as a `B → 1` linear layer, bound `1/√B`. With
//! points in the unit ball the block sums `w·x_b` are then small and every `h_b` starts near
//! `tanh(c)`, in the linear range of `tanh`; the jets along a probe carry `w_{j mod B}` of order
//! `1/√B`.

use crate::backend::{Gemm, GenericStep, SharedBlocks, SlotProbes};
use crate::batch::JetShape;
use crate::mlp::{Activation, Mlp, MlpShape};
use crate::rng::{streams, Philox};
use crate::train::TrainConfig;

/// The shared block's activation (the paper's; independent of the hidden layers' `--activation`).
pub const BLOCK_ACTIVATION: Activation = Activation::Tanh;

/// The weight-shared first block of a network and where its parameters live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SharedNet {
    /// Coordinates per block, `B`.
    pub block: usize,
    /// Blocks `d/B`: the MLP's input width besides the pass-through inputs.
    pub n_blocks: usize,
    /// Inputs that pass through to the MLP unshared (the time column: 0 or 1).
    pub n_pass: usize,
    /// The MLP's first hidden width (the rows of `W1t`).
    pub width: usize,
    /// Offset of `w` in the flat parameters (the MLP's parameter count).
    pub offset: usize,
}

impl SharedNet {
    /// Parameters of the block beyond the MLP: `w`, `c` and `W1t`.
    pub fn n_params(&self) -> usize {
        self.block + 1 + self.width * self.n_pass
    }

    /// Offset of the bias `c`.
    pub fn bias_offset(&self) -> usize {
        self.offset + self.block
    }

    /// Offset of the pass-through weights `W1t` (`width × n_pass`).
    pub fn pass_weight_offset(&self) -> usize {
        self.offset + self.block + 1
    }

    /// The block map on point rows of `n_blocks·B + n_pass` values.
    pub fn map(&self) -> SharedBlocks {
        SharedBlocks {
            block: self.block,
            n_blocks: self.n_blocks,
            stride: self.n_blocks * self.block + self.n_pass,
            offset: self.offset,
        }
    }

    /// The features of host points (rows of `n_blocks·B + n_pass` values) the MLP reads, in f64:
    /// rows of `[tanh(y_0) … tanh(y_{n_blocks−1}), pass-through inputs]`.
    pub fn features(&self, params: &[f64], points: &[f64]) -> Vec<f64> {
        let map = self.map();
        let w = &params[self.offset..self.offset + self.block];
        let c = params[self.bias_offset()];
        let width = self.n_blocks + self.n_pass;
        let mut out = Vec::with_capacity(points.len() / map.stride.max(1) * width);
        for row in points.chunks_exact(map.stride) {
            for x in row[..map.mapped()].chunks_exact(self.block) {
                let y: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + c;
                out.push(y.tanh());
            }
            out.extend_from_slice(&row[map.mapped()..]);
        }
        out
    }

    /// The MLP on the features of [`SharedNet::features`] as one plain network: its first layer
    /// reads `n_blocks + n_pass` inputs, with weight `[W1 | W1t]`.
    pub fn feature_mlp(&self, mlp: &MlpShape, params: &[f64]) -> Mlp {
        let inputs = self.n_blocks + self.n_pass;
        let mut dims = mlp.dims.clone();
        dims[0] = inputs;
        let shape = MlpShape {
            dims,
            activation: mlp.activation,
        };
        let mut out = Vec::with_capacity(shape.n_params());
        let (_, b1) = mlp.offsets(0);
        let w1 = &params[..b1];
        let w1t = &params
            [self.pass_weight_offset()..self.pass_weight_offset() + self.width * self.n_pass];
        for h in 0..self.width {
            out.extend_from_slice(&w1[h * self.n_blocks..(h + 1) * self.n_blocks]);
            out.extend_from_slice(&w1t[h * self.n_pass..(h + 1) * self.n_pass]);
        }
        out.extend_from_slice(&params[b1..self.offset]);
        Mlp { shape, params: out }
    }

    /// The network's value at host points (rows of `n_blocks·B + n_pass` values), in f64.
    pub fn eval(&self, mlp: &MlpShape, params: &[f64], points: &[f64]) -> Vec<f64> {
        self.feature_mlp(mlp, params)
            .eval(&self.features(params, points))
    }
}

/// The network of a configuration whose point rows hold `stride` values (`d`, plus one for a time
/// column): the MLP, and the shared block when `cfg.share_blocks` is set.
///
/// # Panics
/// If `cfg.share_blocks` does not divide `cfg.dim` or `stride < cfg.dim` (configurations are
/// checked by [`TrainConfig::validate_generic`] first).
#[track_caller]
pub fn net_shape(cfg: &TrainConfig, stride: usize) -> (MlpShape, Option<SharedNet>) {
    match cfg.share_blocks {
        None => (
            MlpShape::new(stride, cfg.width, cfg.depth, cfg.activation),
            None,
        ),
        Some(block) => {
            assert!(
                block > 0 && cfg.dim.is_multiple_of(block) && stride >= cfg.dim,
                "share-blocks {block} at d = {} and a row of {stride}",
                cfg.dim
            );
            let n_blocks = cfg.dim / block;
            let mlp = MlpShape::new(n_blocks, cfg.width, cfg.depth, cfg.activation);
            let net = SharedNet {
                block,
                n_blocks,
                n_pass: stride - cfg.dim,
                width: cfg.width,
                offset: mlp.n_params(),
            };
            (mlp, Some(net))
        }
    }
}

/// Parameters of the network of [`net_shape`].
pub fn n_params(cfg: &TrainConfig, stride: usize) -> usize {
    let (mlp, net) = net_shape(cfg, stride);
    mlp.n_params() + net.map_or(0, |n| n.n_params())
}

/// The initial parameters of a shared network (see the module documentation), from the
/// `INIT_WEIGHTS` stream of the seed.
///
/// # Panics
/// As [`net_shape`], and if `cfg.share_blocks` is not set.
#[track_caller]
pub fn initial_params(cfg: &TrainConfig, stride: usize) -> Vec<f32> {
    let (mlp, net) = net_shape(cfg, stride);
    let net = net.expect("a shared network");
    let mut full = mlp.clone();
    full.dims[0] = net.n_blocks + net.n_pass;
    let mut raw = vec![0.0f32; full.n_params() + net.block + 1];
    Philox::new(cfg.seed).fill_uniform_f32(streams::INIT_WEIGHTS, 0, &mut raw);
    let mut it = raw.iter().map(|&u| f64::from(u));
    let plain = Mlp::init(full, || it.next().unwrap_or(0.5));
    let bound = 1.0 / (net.block as f64).sqrt();
    let mut params = vec![0.0f64; mlp.n_params() + net.n_params()];
    // Split the plain first layer `[W1 | W1t]` into the shared layout.
    let inputs = net.n_blocks + net.n_pass;
    let (_, b1) = mlp.offsets(0);
    for h in 0..net.width {
        let row = &plain.params[h * inputs..(h + 1) * inputs];
        params[h * net.n_blocks..(h + 1) * net.n_blocks].copy_from_slice(&row[..net.n_blocks]);
        let t = net.pass_weight_offset() + h * net.n_pass;
        params[t..t + net.n_pass].copy_from_slice(&row[net.n_blocks..]);
    }
    params[b1..net.offset].copy_from_slice(&plain.params[net.width * inputs..]);
    for p in &mut params[net.offset..=net.bias_offset()] {
        *p = (2.0 * it.next().unwrap_or(0.5) - 1.0) * bound;
    }
    params.iter().map(|&p| p as f32).collect()
}

/// The first layer of a weight-shared network on a backend: the block map, `tanh`, and the time
/// column's jets as a compiled program (the time reaches the MLP unshared).
pub struct SharedLayer<B: GenericStep> {
    /// The block and its parameter layout.
    pub net: SharedNet,
    /// The program `t`, whose series along the probes are the time's jets, when the problem has a
    /// time column.
    time: Option<B::Compiled>,
}

impl<B: GenericStep> std::fmt::Debug for SharedLayer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLayer")
            .field("net", &self.net)
            .field("time", &self.time.is_some())
            .finish()
    }
}

/// Device buffers of a shared first layer for one batch shape.
#[derive(Debug)]
pub struct SharedBuffers<B: GenericStep> {
    /// The block features ([`GenericStep::shared_block_forward`]'s output).
    pub y: B::Buf,
    /// `tanh` of the block features.
    pub h: B::Buf,
    /// The time's jets (uncollapsed, width 1), for a problem with a time column.
    pub t: Option<B::Buf>,
}

/// Consecutive rows of the time's jets (an uncollapsed batch of width 1) and the rows of a batch of
/// `shape` they enter: `(rows, first time row, first batch row)`. A collapsed top block takes every
/// direction's top coefficient.
fn time_segments(shape: JetShape) -> Vec<(usize, usize, usize)> {
    let n = shape.n_points;
    if !shape.collapsed {
        return vec![(shape.n_rows(), 0, 0)];
    }
    let low = 1 + (shape.order - 1) * shape.n_dirs;
    let mut out = vec![(n * low, 0, 0)];
    out.extend((0..shape.n_dirs).map(|s| (n, (low + s) * n, low * n)));
    out
}

impl<B: GenericStep> SharedLayer<B> {
    /// The layer of `net` for `instance` (compiling the program `t` when the problem has time).
    ///
    /// # Errors
    /// [`crate::train::TrainError`] when the program does not lower or compile.
    pub fn new(
        be: &B,
        net: SharedNet,
        instance: &crate::problem::Instance,
    ) -> Result<Self, crate::train::TrainError> {
        let time = if net.n_pass > 0 {
            let t = crate::expr::Expr::new(crate::expr::ExprKind::Time);
            // The program reads neither `u` nor a term: it has no features.
            let scope = crate::expr::Scope {
                has_solution: false,
                terms: Vec::new(),
                ..instance.scope.clone()
            };
            let program = crate::program::lower::lower(&[t], &scope).map_err(|e| {
                crate::train::ConfigError::Invalid {
                    field: "share-blocks",
                    reason: e.to_string(),
                }
            })?;
            Some(be.compile_program(&program)?)
        } else {
            None
        };
        Ok(Self { net, time })
    }

    /// Buffers for batches of `shape` (any width).
    ///
    /// # Errors
    /// [`crate::backend::BackendError`] when memory runs out.
    pub fn buffers(
        &self,
        be: &B,
        shape: JetShape,
    ) -> Result<SharedBuffers<B>, crate::backend::BackendError> {
        let fshape = self.net.map().features(shape);
        let tshape = JetShape {
            collapsed: false,
            ..shape.with_width(1)
        };
        Ok(SharedBuffers {
            y: be.alloc(fshape.len().max(1), "shared block features")?,
            h: be.alloc(fshape.len().max(1), "shared block activations")?,
            t: match self.time {
                Some(_) => Some(be.alloc(tshape.len(), "time jets")?),
                None => None,
            },
        })
    }

    /// The network's first layer on a jet batch of `shape` (its width the first hidden width):
    /// the block map, `tanh`, the time's jets, and `z = W1·h + W1t·t + b1` into `z` (`mlp`'s layer
    /// 0 reads `h`). `problem_params` are the problem's parameters (the time program reads none).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        be: &B,
        mlp: &MlpShape,
        shape: JetShape,
        points: &B::Buf,
        probes: &SlotProbes<'_, B>,
        params: &B::Buf,
        problem_params: &B::Buf,
        bufs: &mut SharedBuffers<B>,
        z: &mut B::Buf,
    ) {
        let net = &self.net;
        let map = net.map();
        let fshape = map.features(shape);
        let rows = shape.n_rows();
        let (w1, b1) = mlp.offsets(0);
        be.shared_block_forward(map, shape, points, probes, params, &mut bufs.y);
        be.jet_activation_forward(BLOCK_ACTIVATION, fshape, &bufs.y, &mut bufs.h);
        be.gemm(
            Gemm {
                b_offset: w1,
                ..Gemm::nt(rows, shape.width, net.n_blocks)
            },
            &bufs.h,
            params,
            z,
        );
        if let (Some(program), Some(t)) = (&self.time, bufs.t.as_mut()) {
            if shape.order == 0 {
                // The program has no features: any buffer stands in for them.
                be.run_program(
                    program,
                    shape.n_points,
                    points,
                    problem_params,
                    problem_params,
                    t,
                );
            } else {
                let tshape = JetShape {
                    collapsed: false,
                    ..shape.with_width(1)
                };
                be.run_program_series(program, tshape, points, probes, problem_params, t);
            }
            for (count, t_row, z_row) in time_segments(shape) {
                be.gemm(
                    Gemm {
                        beta: 1.0,
                        a_offset: t_row,
                        b_offset: net.pass_weight_offset(),
                        c_offset: z_row * shape.width,
                        ..Gemm::nt(count, shape.width, 1)
                    },
                    t,
                    params,
                    z,
                );
            }
        }
        be.add_bias(shape, params, b1, z);
    }

    /// Adjoint of [`SharedLayer::forward`]: from the cotangent of `z` in `z_bar` (which it
    /// overwrites), accumulates the gradients of `W1`, `b1`, `W1t`, `w` and `c`. `scratch` holds at
    /// least `shape.n_rows()·n_blocks` values, and so does `z_bar`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        be: &B,
        mlp: &MlpShape,
        shape: JetShape,
        points: &B::Buf,
        probes: &SlotProbes<'_, B>,
        params: &B::Buf,
        bufs: &SharedBuffers<B>,
        z_bar: &mut B::Buf,
        scratch: &mut B::Buf,
        grad: &mut B::Buf,
    ) {
        let net = &self.net;
        let map = net.map();
        let fshape = map.features(shape);
        let rows = shape.n_rows();
        let (w1, b1) = mlp.offsets(0);
        be.gemm(
            Gemm {
                m: shape.width,
                n: net.n_blocks,
                k: rows,
                trans_a: true,
                trans_b: false,
                alpha: 1.0,
                beta: 1.0,
                a_offset: 0,
                b_offset: 0,
                c_offset: w1,
            },
            z_bar,
            &bufs.h,
            grad,
        );
        if let Some(t) = &bufs.t {
            for (count, t_row, z_row) in time_segments(shape) {
                be.gemm(
                    Gemm {
                        m: shape.width,
                        n: 1,
                        k: count,
                        trans_a: true,
                        trans_b: false,
                        alpha: 1.0,
                        beta: 1.0,
                        a_offset: z_row * shape.width,
                        b_offset: t_row,
                        c_offset: net.pass_weight_offset(),
                    },
                    z_bar,
                    t,
                    grad,
                );
            }
        }
        be.bias_grad(shape, z_bar, grad, b1);
        // h̄ = z̄·W1, then the activation's adjoint gives ȳ (into z_bar, no longer needed).
        be.gemm(
            Gemm {
                m: rows,
                n: net.n_blocks,
                k: shape.width,
                trans_a: false,
                trans_b: false,
                alpha: 1.0,
                beta: 0.0,
                a_offset: 0,
                b_offset: w1,
                c_offset: 0,
            },
            z_bar,
            params,
            scratch,
        );
        be.jet_activation_backward(BLOCK_ACTIVATION, fshape, &bufs.y, scratch, z_bar);
        be.shared_block_backward(map, shape, points, probes, z_bar, grad);
    }
}
