//! The WGSL kernels: a typed [`Kernel`] enum, the shader files each one is built from, its storage
//! bindings and the fields of its uniform parameter block.
//!
//! A kernel's source is a generated prelude (`const K: u32 = 4u;` and friends, so the jet order is
//! a compile-time constant that sizes private arrays) followed by real `.wgsl` files embedded with
//! `include_str!`: `common.wgsl` (math), optionally `philox.wgsl` or an activation rule, then the
//! kernel's own file. Nothing is spliced into the middle of a file.
//!
//! Every kernel has one entry point, `main`, and one bind group: binding 0 is its uniform parameter
//! block (a slot of a dynamic-offset ring buffer), bindings 1.. are storage buffers in the order
//! and with the access of [`Kernel::bindings`]. `tests/shaders_validate.rs` checks both lists, and
//! the parameter field names of [`Kernel::param_names`], against the parsed shaders.

/// Highest jet order the jet kernels are built for.
pub const MAX_ORDER: usize = 16;

const COMMON: &str = include_str!("shaders/common.wgsl");
const PHILOX: &str = include_str!("shaders/philox.wgsl");
const ACT_TANH: &str = include_str!("shaders/act_tanh.wgsl");
const ACT_SIN: &str = include_str!("shaders/act_sin.wgsl");
const GEMM: &str = include_str!("shaders/gemm.wgsl");
const GEMM_TILE64: &str = include_str!("shaders/gemm_tile64.wgsl");
const GEMM_TILE16: &str = include_str!("shaders/gemm_tile16.wgsl");
const GEMM_REDUCE: &str = include_str!("shaders/gemm_reduce.wgsl");
const ADD_BIAS: &str = include_str!("shaders/add_bias.wgsl");
const BIAS_GRAD: &str = include_str!("shaders/bias_grad.wgsl");
const JET_FORWARD: &str = include_str!("shaders/jet_forward.wgsl");
const JET_BACKWARD: &str = include_str!("shaders/jet_backward.wgsl");
const INPUT_GATHER: &str = include_str!("shaders/input_gather.wgsl");
const INPUT_FILL: &str = include_str!("shaders/input_fill.wgsl");
const COLUMN_SUMS: &str = include_str!("shaders/column_sums.wgsl");
const SCATTER_ADD: &str = include_str!("shaders/scatter_add.wgsl");
const ROW_SQ_NORM: &str = include_str!("shaders/row_sq_norm.wgsl");
const ROW_DOTS: &str = include_str!("shaders/row_dots.wgsl");
const GATHER_DOTS: &str = include_str!("shaders/gather_dots.wgsl");
const RESIDUAL: &str = include_str!("shaders/residual.wgsl");
const FORCING: &str = include_str!("shaders/forcing.wgsl");
const SAMPLE_BALL: &str = include_str!("shaders/sample_ball.wgsl");
const SAMPLE_FLAT: &str = include_str!("shaders/sample_flat.wgsl");
const ADAM: &str = include_str!("shaders/adam.wgsl");

/// How a kernel uses one of its storage bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// Every compute kernel of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// Tiled matrix product on one block of a split `Gemm`: 64×64 tiles.
    Gemm,
    /// The same with 16×16 tiles, for thin blocks.
    GemmSmall,
    /// Sum of the partial products of a split inner dimension.
    GemmReduce,
    /// Bias added to primal rows.
    AddBias,
    /// Bias gradient: reduction over points.
    BiasGrad,
    /// Jet rule of tanh.
    JetTanhForward,
    /// Adjoint of the jet rule of tanh.
    JetTanhBackward,
    /// Jet rule of sin.
    JetSinForward,
    /// Adjoint of the jet rule of sin.
    JetSinBackward,
    /// One-hot first layer: gather of the probed columns of `W1`.
    InputGather,
    /// First layer: the non-primal rows from the shared tangents.
    InputFill,
    /// First layer adjoint: per-direction sums of the slot-1 cotangents over points.
    ColumnSums,
    /// One-hot first layer adjoint: scatter-add into the probed columns of `∂W1`.
    ScatterAdd,
    /// Squared norms of rows.
    RowSqNorm,
    /// Dot products of point rows with dense probe rows.
    RowDots,
    /// Coordinates of points at one-hot probe indices.
    GatherDots,
    /// PINN residual, loss terms and output cotangent.
    Residual,
    /// Closed-form forcing and exact values.
    Forcing,
    /// Unit-ball points.
    SampleBall,
    /// Flat Rademacher or Gaussian fills.
    SampleFlat,
    /// Fused Adam update.
    Adam,
}

use Access::{Read, ReadWrite};

impl Kernel {
    /// All kernels.
    pub const ALL: [Kernel; 21] = [
        Kernel::Gemm,
        Kernel::GemmSmall,
        Kernel::GemmReduce,
        Kernel::AddBias,
        Kernel::BiasGrad,
        Kernel::JetTanhForward,
        Kernel::JetTanhBackward,
        Kernel::JetSinForward,
        Kernel::JetSinBackward,
        Kernel::InputGather,
        Kernel::InputFill,
        Kernel::ColumnSums,
        Kernel::ScatterAdd,
        Kernel::RowSqNorm,
        Kernel::RowDots,
        Kernel::GatherDots,
        Kernel::Residual,
        Kernel::Forcing,
        Kernel::SampleBall,
        Kernel::SampleFlat,
        Kernel::Adam,
    ];

    /// A label for pipelines and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::GemmSmall => "gemm_small",
            Kernel::GemmReduce => "gemm_reduce",
            Kernel::AddBias => "add_bias",
            Kernel::BiasGrad => "bias_grad",
            Kernel::JetTanhForward => "jet_tanh_forward",
            Kernel::JetTanhBackward => "jet_tanh_backward",
            Kernel::JetSinForward => "jet_sin_forward",
            Kernel::JetSinBackward => "jet_sin_backward",
            Kernel::InputGather => "input_gather",
            Kernel::InputFill => "input_fill",
            Kernel::ColumnSums => "column_sums",
            Kernel::ScatterAdd => "scatter_add",
            Kernel::RowSqNorm => "row_sq_norm",
            Kernel::RowDots => "row_dots",
            Kernel::GatherDots => "gather_dots",
            Kernel::Residual => "residual",
            Kernel::Forcing => "forcing",
            Kernel::SampleBall => "sample_ball",
            Kernel::SampleFlat => "sample_flat",
            Kernel::Adam => "adam",
        }
    }

    /// Whether the source depends on the jet order `K` (one pipeline per order); other kernels are
    /// built once, with `K = 0` in their prelude.
    pub fn depends_on_order(self) -> bool {
        matches!(
            self,
            Kernel::JetTanhForward
                | Kernel::JetTanhBackward
                | Kernel::JetSinForward
                | Kernel::JetSinBackward
        )
    }

    /// The files after the prelude, in order.
    pub fn parts(self) -> &'static [&'static str] {
        match self {
            Kernel::Gemm => &[COMMON, GEMM_TILE64, GEMM],
            Kernel::GemmSmall => &[COMMON, GEMM_TILE16, GEMM],
            Kernel::GemmReduce => &[COMMON, GEMM_REDUCE],
            Kernel::AddBias => &[COMMON, ADD_BIAS],
            Kernel::BiasGrad => &[COMMON, BIAS_GRAD],
            Kernel::JetTanhForward => &[COMMON, ACT_TANH, JET_FORWARD],
            Kernel::JetTanhBackward => &[COMMON, ACT_TANH, JET_BACKWARD],
            Kernel::JetSinForward => &[COMMON, ACT_SIN, JET_FORWARD],
            Kernel::JetSinBackward => &[COMMON, ACT_SIN, JET_BACKWARD],
            Kernel::InputGather => &[COMMON, INPUT_GATHER],
            Kernel::InputFill => &[COMMON, INPUT_FILL],
            Kernel::ColumnSums => &[COMMON, COLUMN_SUMS],
            Kernel::ScatterAdd => &[COMMON, SCATTER_ADD],
            Kernel::RowSqNorm => &[COMMON, ROW_SQ_NORM],
            Kernel::RowDots => &[COMMON, ROW_DOTS],
            Kernel::GatherDots => &[COMMON, GATHER_DOTS],
            Kernel::Residual => &[COMMON, RESIDUAL],
            Kernel::Forcing => &[COMMON, FORCING],
            Kernel::SampleBall => &[COMMON, PHILOX, SAMPLE_BALL],
            Kernel::SampleFlat => &[COMMON, PHILOX, SAMPLE_FLAT],
            Kernel::Adam => &[COMMON, ADAM],
        }
    }

    /// Access of storage bindings `1, 2, …` (binding 0 is the uniform parameter block).
    pub fn bindings(self) -> &'static [Access] {
        match self {
            Kernel::Gemm | Kernel::GemmSmall => &[Read, Read, ReadWrite],
            Kernel::GemmReduce => &[Read, ReadWrite],
            Kernel::AddBias => &[Read, ReadWrite],
            Kernel::BiasGrad => &[Read, ReadWrite],
            Kernel::JetTanhForward | Kernel::JetSinForward => &[Read, ReadWrite],
            Kernel::JetTanhBackward | Kernel::JetSinBackward => &[Read, Read, ReadWrite],
            Kernel::InputGather => &[Read, Read, ReadWrite],
            Kernel::InputFill => &[Read, ReadWrite],
            Kernel::ColumnSums => &[Read, ReadWrite],
            Kernel::ScatterAdd => &[Read, Read, ReadWrite],
            Kernel::RowSqNorm => &[Read, ReadWrite],
            Kernel::RowDots => &[Read, Read, ReadWrite],
            Kernel::GatherDots => &[Read, Read, ReadWrite],
            Kernel::Residual => &[Read, Read, Read, ReadWrite, ReadWrite],
            Kernel::Forcing => &[Read, Read, ReadWrite, ReadWrite],
            Kernel::SampleBall => &[ReadWrite],
            Kernel::SampleFlat => &[ReadWrite],
            Kernel::Adam => &[ReadWrite, ReadWrite, ReadWrite, ReadWrite],
        }
    }

    /// Field names of the kernel's uniform `Params` struct, in declaration order (every field is a
    /// 4-byte `u32` or `f32`, so field `i` sits at byte `4·i`).
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Kernel::Gemm | Kernel::GemmSmall => &[
                "m",
                "n",
                "k",
                "trans_a",
                "trans_b",
                "a_base",
                "b_base",
                "c_base",
                "lda",
                "ldb",
                "ldc",
                "alpha",
                "beta",
                "k_split",
                "out_stride",
            ],
            Kernel::GemmReduce => &[
                "m", "n", "splits", "stride", "p_base", "c_base", "ldc", "alpha", "beta",
            ],
            Kernel::AddBias => &["count", "width", "e0", "bias_base", "z_base"],
            Kernel::BiasGrad => &["rows", "width", "z_base", "g_base"],
            Kernel::JetTanhForward | Kernel::JetSinForward => &[
                "n_points",
                "width",
                "n_dirs",
                "collapsed",
                "z_base",
                "h_base",
            ],
            Kernel::JetTanhBackward | Kernel::JetSinBackward => &[
                "n_points",
                "width",
                "n_dirs",
                "collapsed",
                "z_base",
                "hb_base",
                "zb_base",
            ],
            Kernel::InputGather => &[
                "n_dirs", "h_count", "dim", "width", "h0", "w_base", "i_base", "t_base",
            ],
            Kernel::InputFill => &[
                "count",
                "e0",
                "n_points",
                "width",
                "n_dirs",
                "one_block",
                "t_base",
                "z_base",
            ],
            Kernel::ColumnSums => &[
                "n_points",
                "width",
                "s_count",
                "s0",
                "one_block",
                "z_base",
                "g_base",
            ],
            Kernel::ScatterAdd => &[
                "n_dirs", "h_count", "dim", "width", "h0", "g_base", "i_base", "t_base",
            ],
            Kernel::RowSqNorm => &["rows", "len", "ld", "x_base", "o_base"],
            Kernel::RowDots => &[
                "rows", "s_count", "dim", "x_base", "y_base", "o_base", "o_stride",
            ],
            Kernel::GatherDots => &["rows", "n_dirs", "dim", "x_base", "i_base", "o_base"],
            Kernel::Residual => &[
                "n_points",
                "n_dirs",
                "order",
                "collapsed",
                "hard",
                "one_hot",
                "nonlinearity",
                "weight",
                "inv_n",
                "m_base",
                "d_base",
                "f_base",
                "l_base",
                "mb_base",
            ],
            Kernel::Forcing => &[
                "rows",
                "dim",
                "n_terms",
                "solution",
                "nonlinearity",
                "x_base",
                "c_base",
                "g_base",
                "e_base",
            ],
            Kernel::SampleBall => &[
                "rows", "dim", "key0", "key1", "step", "stream", "first", "o_base",
            ],
            Kernel::SampleFlat => &[
                "count", "e0", "key0", "key1", "step", "stream", "kind", "o_base",
            ],
            Kernel::Adam => &[
                "count", "lr", "beta1", "beta2", "eps", "corr1", "corr2", "p_base", "g_base",
                "m_base", "v_base",
            ],
        }
    }

    /// The generated prelude: the jet order `K`, `KP1 = K + 1` (private array length) and
    /// `KM1 = max(K, 1) − 1` (so that `K − 1` never underflows in a constant expression at
    /// `K = 0`).
    pub fn prelude(order: u32) -> String {
        format!(
            "// Generated prelude: the jet order this variant is specialised for.\n\
             const K: u32 = {order}u;\nconst KP1: u32 = {}u;\nconst KM1: u32 = {}u;\n",
            order + 1,
            order.max(1) - 1
        )
    }

    /// The full WGSL source of the variant for jet order `order` (ignored unless
    /// [`Kernel::depends_on_order`]).
    pub fn source(self, order: u32) -> String {
        let order = if self.depends_on_order() { order } else { 0 };
        let mut src = Self::prelude(order);
        for part in self.parts() {
            src.push('\n');
            src.push_str(part);
        }
        src
    }
}
