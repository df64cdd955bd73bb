//! The multilayer perceptron on jet batches: parameters in one flat vector, the jet forward pass, its
//! adjoint, and the hard-boundary ansatz `u(x) = (1 − ‖x‖²)·MLP(x)` (f64 reference).

use crate::batch::{JetBatch, JetBatchRef, JetShape};
use crate::reference;
use crate::series::{self, Unary};

/// Hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `tanh` (the paper's choice).
    Tanh,
    /// `sin` (SIREN-style).
    Sin,
}

impl Activation {
    /// The jet rule implementing it.
    pub fn unary(self) -> Unary {
        match self {
            Activation::Tanh => Unary::Tanh,
            Activation::Sin => Unary::Sin,
        }
    }

    /// Its name in configs and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Sin => "sin",
        }
    }
}

/// The architecture of an MLP `R^d → R`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MlpShape {
    /// Layer widths from input to output, e.g. `[d, 128, 128, 128, 1]` for 4 linear layers.
    pub dims: Vec<usize>,
    /// Activation after every linear layer but the last.
    pub activation: Activation,
}

impl MlpShape {
    /// `depth` linear layers of `width` hidden units from `input_dim` to one output.
    ///
    /// # Panics
    /// If `depth == 0`, `width == 0` or `input_dim == 0`.
    #[track_caller]
    pub fn new(input_dim: usize, width: usize, depth: usize, activation: Activation) -> Self {
        assert!(depth >= 1 && width >= 1 && input_dim >= 1, "empty MLP");
        let mut dims = vec![input_dim];
        dims.extend(std::iter::repeat_n(width, depth - 1));
        dims.push(1);
        Self { dims, activation }
    }

    /// Number of linear layers.
    pub fn n_layers(&self) -> usize {
        self.dims.len() - 1
    }

    /// `(weight offset, bias offset)` of layer `l` in the flat parameter vector. Each layer stores its
    /// weight `out × in` row-major, then its bias.
    pub fn offsets(&self, l: usize) -> (usize, usize) {
        let mut off = 0;
        for i in 0..l {
            off += self.dims[i + 1] * (self.dims[i] + 1);
        }
        (off, off + self.dims[l + 1] * self.dims[l])
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        (0..self.n_layers())
            .map(|l| self.dims[l + 1] * (self.dims[l] + 1))
            .sum()
    }
}

/// An MLP with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Architecture.
    pub shape: MlpShape,
    /// Flat parameters (see [`MlpShape::offsets`]).
    pub params: Vec<f64>,
}

/// Intermediate batches of a jet forward pass, kept for the adjoint.
#[derive(Clone, Debug)]
pub struct MlpTape {
    /// Input of every linear layer (the model input first).
    pub inputs: Vec<JetBatch>,
    /// Pre-activations of the hidden layers.
    pub pre: Vec<JetBatch>,
    /// The output batch (width 1).
    pub output: JetBatch,
}

impl Mlp {
    /// PyTorch's default initialisation: every weight and bias uniform in `±1/√fan_in`, drawn from
    /// `uniform` (numbers in `[0, 1)`) layer by layer, weights before biases.
    pub fn init(shape: MlpShape, mut uniform: impl FnMut() -> f64) -> Self {
        let mut params = vec![0.0; shape.n_params()];
        for l in 0..shape.n_layers() {
            let (w, b) = shape.offsets(l);
            let bound = 1.0 / (shape.dims[l] as f64).sqrt();
            let end = b + shape.dims[l + 1];
            for p in &mut params[w..end] {
                *p = (2.0 * uniform() - 1.0) * bound;
            }
        }
        Self { shape, params }
    }

    /// Weight (`out × in`) and bias of layer `l`.
    pub fn layer(&self, l: usize) -> (&[f64], &[f64]) {
        let (w, b) = self.shape.offsets(l);
        (
            &self.params[w..b],
            &self.params[b..b + self.shape.dims[l + 1]],
        )
    }

    /// Plain evaluation at row-major points `n × d`.
    pub fn eval(&self, points: &[f64]) -> Vec<f64> {
        let d = self.shape.dims[0];
        let shape = JetShape {
            order: 1,
            n_dirs: 1,
            n_points: points.len() / d,
            width: d,
            collapsed: false,
        };
        let input = reference::constant_batch(shape, points);
        let tape = self.jet_forward(input);
        let out = tape.output;
        (0..shape.n_points).map(|n| out.get(0, 0, n, 0)).collect()
    }

    /// Pushes a jet batch through the network.
    ///
    /// # Panics
    /// If the input width differs from the model's input dimension.
    #[track_caller]
    pub fn jet_forward(&self, input: JetBatch) -> MlpTape {
        assert_eq!(input.shape().width, self.shape.dims[0], "input width");
        let op = self.shape.activation.unary();
        let mut inputs = vec![input];
        let mut pre = Vec::new();
        let n_layers = self.shape.n_layers();
        for l in 0..n_layers {
            let (w, b) = self.layer(l);
            let z = reference::linear_forward(inputs[l].as_ref(), w, b);
            if l + 1 == n_layers {
                return MlpTape {
                    inputs,
                    pre,
                    output: z,
                };
            }
            let h = reference::unary_forward(op, z.as_ref());
            pre.push(z);
            inputs.push(h);
        }
        unreachable!("an MLP has at least one layer")
    }

    /// Adjoint of [`Mlp::jet_forward`]: accumulates the parameter gradient into `grad` and returns the
    /// cotangent of the input batch.
    pub fn jet_backward(&self, tape: &MlpTape, out_bar: JetBatch, grad: &mut [f64]) -> JetBatch {
        let op = self.shape.activation.unary();
        let mut g = out_bar;
        for l in (0..self.shape.n_layers()).rev() {
            if l + 1 < self.shape.n_layers() {
                g = reference::unary_adjoint(op, tape.pre[l].as_ref(), g.as_ref());
            }
            let (w_off, b_off) = self.shape.offsets(l);
            let (w, _) = self.layer(l);
            let (gw, rest) = grad[w_off..].split_at_mut(b_off - w_off);
            g = reference::linear_adjoint(
                tape.inputs[l].as_ref(),
                w,
                g.as_ref(),
                gw,
                &mut rest[..self.shape.dims[l + 1]],
            );
        }
        g
    }
}

/// The series of `φ(x(t)) = 1 − ‖x(t)‖²` for every (direction, point) of a dense input batch: the
/// hard-boundary factor, as a batch of width 1.
pub fn ball_factor(input: JetBatchRef<'_>) -> JetBatch {
    let shape = input.shape();
    let order = shape.order;
    let out_shape = shape.with_width(1);
    let mut out = JetBatch::zeros(out_shape);
    let mut sq = vec![0.0; order + 1];
    for n in 0..shape.n_points {
        let mut top_sum = 0.0;
        let mut primal = 1.0;
        for s in 0..shape.n_dirs {
            let mut phi = series::constant(1.0, order + 1);
            for i in 0..shape.width {
                let mut xi = input.series(s, n, i);
                if shape.collapsed {
                    xi[order] = 0.0;
                }
                series::mul(&xi, &xi, &mut sq);
                for k in 0..=order {
                    phi[k] -= sq[k];
                }
            }
            primal = phi[0];
            let upper = if shape.collapsed { order - 1 } else { order };
            for k in 1..=upper {
                out.set(k, s, n, 0, phi[k]);
            }
            top_sum += phi[order];
        }
        out.set(0, 0, n, 0, primal);
        if shape.collapsed {
            // The top of −‖x‖² is linear in x_K: −2·x_0·Σ_s x_K^s.
            let mut lin = 0.0;
            for i in 0..shape.width {
                lin += input.get(0, 0, n, i) * input.get(order, 0, n, i);
            }
            out.set(order, 0, n, 0, top_sum - 2.0 * lin);
        }
    }
    out
}

/// A PINN model: the MLP, optionally multiplied by the unit-ball factor so that `u = 0` on the sphere.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The network.
    pub mlp: Mlp,
    /// Whether `u(x) = (1 − ‖x‖²)·MLP(x)`.
    pub hard_ball_boundary: bool,
}

/// A model's forward pass on a jet batch, kept for the adjoint.
#[derive(Clone, Debug)]
pub struct ModelTape {
    /// The MLP's tape.
    pub mlp: MlpTape,
    /// The boundary factor, if any.
    pub factor: Option<JetBatch>,
    /// The output `u` as a jet batch of width 1.
    pub output: JetBatch,
}

impl Model {
    /// Pushes a dense input batch through the model.
    pub fn jet_forward(&self, input: JetBatch) -> ModelTape {
        let factor = self.hard_ball_boundary.then(|| ball_factor(input.as_ref()));
        let mlp = self.mlp.jet_forward(input);
        let output = match &factor {
            Some(f) => reference::mul_forward(f.as_ref(), mlp.output.as_ref()),
            None => mlp.output.clone(),
        };
        ModelTape {
            mlp,
            factor,
            output,
        }
    }

    /// Adjoint: accumulates the parameter gradient and returns the cotangent of the input batch along
    /// the network path only. The boundary factor depends on `x` but not on `θ`, so its path to the
    /// input is not propagated (parameter gradients are complete).
    pub fn jet_backward(&self, tape: &ModelTape, out_bar: JetBatch, grad: &mut [f64]) -> JetBatch {
        let mlp_bar = match &tape.factor {
            Some(f) => {
                reference::mul_adjoint(f.as_ref(), tape.mlp.output.as_ref(), out_bar.as_ref()).1
            }
            None => out_bar,
        };
        self.mlp.jet_backward(&tape.mlp, mlp_bar, grad)
    }

    /// Plain evaluation `u(x)` at row-major points.
    pub fn eval(&self, points: &[f64]) -> Vec<f64> {
        let d = self.mlp.shape.dims[0];
        let m = self.mlp.eval(points);
        if !self.hard_ball_boundary {
            return m;
        }
        m.iter()
            .zip(points.chunks_exact(d))
            .map(|(v, x)| v * (1.0 - x.iter().map(|c| c * c).sum::<f64>()))
            .collect()
    }
}
