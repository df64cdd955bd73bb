//! The WGSL kernels: a typed [`Kernel`] enum, the shader files each one is built from, its storage
//! bindings and the fields of its uniform parameter block.
//!
//! A kernel's source is a generated prelude (`const K: u32 = 4u;` and friends, so the jet order is
//! a compile-time constant that sizes private arrays; `TRANS_A`/`TRANS_B` for a
//! [`Kernel::GemmSimple`] layout) followed by real `.wgsl` files embedded with `include_str!`:
//! `common.wgsl` (math), optionally `philox.wgsl`, an activation rule or an operand loader and
//! result writer, then the kernel's own file. Nothing is spliced into the middle of a file.
//!
//! Kernels come in two families (see [`crate::KernelVariant`]): the GPU kernels, which reduce and
//! tile through workgroup memory, and `…Simple` variants for CPU-emulated adapters, which do one
//! output (or one register block) per invocation with no workgroup memory and no barriers. A simple
//! variant has the bindings and parameter block of its GPU counterpart, so the host code only
//! changes the kernel and the grid.
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
const GEMM_SIMPLE: &str = include_str!("shaders/gemm_simple.wgsl");
const GEMM_LOAD_VEC4: &str = include_str!("shaders/gemm_load_vec4.wgsl");
const GEMM_LOAD_SCALAR: &str = include_str!("shaders/gemm_load_scalar.wgsl");
const GEMM_STORE_VEC4: &str = include_str!("shaders/gemm_store_vec4.wgsl");
const GEMM_STORE_SCALAR: &str = include_str!("shaders/gemm_store_scalar.wgsl");
const ADD_BIAS: &str = include_str!("shaders/add_bias.wgsl");
const ADD_BIAS_SIMPLE: &str = include_str!("shaders/add_bias_simple.wgsl");
const BIAS_GRAD: &str = include_str!("shaders/bias_grad.wgsl");
const BIAS_GRAD_SIMPLE: &str = include_str!("shaders/bias_grad_simple.wgsl");
const JET_FORWARD: &str = include_str!("shaders/jet_forward.wgsl");
const JET_BACKWARD: &str = include_str!("shaders/jet_backward.wgsl");
const DERIV_TANH: &str = include_str!("shaders/deriv_tanh.wgsl");
const DERIV_SIN: &str = include_str!("shaders/deriv_sin.wgsl");
const JET2_FORWARD: &str = include_str!("shaders/jet2_forward.wgsl");
const JET2_BACKWARD: &str = include_str!("shaders/jet2_backward.wgsl");
const JET2_LANES1: &str = include_str!("shaders/jet2_lanes1.wgsl");
const JET2_LANES4: &str = include_str!("shaders/jet2_lanes4.wgsl");
const INPUT_FILL: &str = include_str!("shaders/input_fill.wgsl");
const INPUT_FILL_SIMPLE: &str = include_str!("shaders/input_fill_simple.wgsl");
const COLUMN_SUMS: &str = include_str!("shaders/column_sums.wgsl");
const SAMPLE_BALL: &str = include_str!("shaders/sample_ball.wgsl");
const SAMPLE_BALL_SIMPLE: &str = include_str!("shaders/sample_ball_simple.wgsl");
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

/// The operand layout a [`Kernel::GemmSimple`] variant is compiled for: the transposes
/// (compile-time constants, so that the block loads have no run-time branches) and whether
/// operands and result are accessed four values at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GemmLayout {
    /// `A` is stored transposed.
    pub trans_a: bool,
    /// `B` is stored transposed.
    pub trans_b: bool,
    /// `A` and `B` are bound as `array<vec4<f32>>`: needs bases, row lengths and window offsets
    /// that are multiples of four values (the host checks).
    pub load_vec4: bool,
    /// `C` is bound as `array<vec4<f32>>`: needs its base, row length, block width and window
    /// offset to be multiples of four values (the host checks).
    pub store_vec4: bool,
}

impl GemmLayout {
    /// All sixteen layouts.
    pub const ALL: [GemmLayout; 16] = {
        let mut out = [GemmLayout {
            trans_a: false,
            trans_b: false,
            load_vec4: false,
            store_vec4: false,
        }; 16];
        let mut i = 0;
        while i < 16 {
            out[i] = GemmLayout {
                trans_a: i & 1 != 0,
                trans_b: i & 2 != 0,
                load_vec4: i & 4 != 0,
                store_vec4: i & 8 != 0,
            };
            i += 1;
        }
        out
    };
}

/// Which order-2 jet kernel a [`Kernel::Jet2`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jet2 {
    /// sin rather than tanh.
    pub sin: bool,
    /// The adjoint rather than the rule.
    pub backward: bool,
    /// Four values per invocation, read and written as vec4 (software adapters, on batches whose
    /// block stride, bases and windows are multiples of four values).
    pub vec4: bool,
}

impl Jet2 {
    /// All eight.
    pub const ALL: [Jet2; 8] = {
        let mut out = [Jet2 {
            sin: false,
            backward: false,
            vec4: false,
        }; 8];
        let mut i = 0;
        while i < 8 {
            out[i] = Jet2 {
                sin: i & 1 != 0,
                backward: i & 2 != 0,
                vec4: i & 4 != 0,
            };
            i += 1;
        }
        out
    };
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
    /// Matrix product for software adapters: register blocks, no workgroup memory.
    GemmSimple(GemmLayout),
    /// Bias added to primal rows.
    AddBias,
    /// Bias added to primal rows, one invocation per row.
    AddBiasSimple,
    /// Bias gradient: reduction over points.
    BiasGrad,
    /// Bias gradient, one invocation per feature.
    BiasGradSimple,
    /// Jet rule of tanh.
    JetTanhForward,
    /// Adjoint of the jet rule of tanh.
    JetTanhBackward,
    /// Jet rule of sin.
    JetSinForward,
    /// Adjoint of the jet rule of sin.
    JetSinBackward,
    /// A jet rule or its adjoint at order 2 (the training steps' order), written out.
    Jet2(Jet2),
    /// First layer: the non-primal rows from the shared tangents.
    InputFill,
    /// First layer's non-primal rows, one invocation per row.
    InputFillSimple,
    /// First layer adjoint: sums over points of non-primal cotangent blocks, one row per block.
    ColumnSums,
    /// Unit-ball points.
    SampleBall,
    /// Unit-ball points, one invocation per point.
    SampleBallSimple,
    /// Flat Rademacher or Gaussian fills.
    SampleFlat,
    /// Fused Adam update.
    Adam,
}

use Access::{Read, ReadWrite};

impl Kernel {
    /// All kernels.
    pub const ALL: [Kernel; 42] = {
        let fixed = [
            Kernel::Gemm,
            Kernel::GemmSmall,
            Kernel::GemmReduce,
            Kernel::AddBias,
            Kernel::AddBiasSimple,
            Kernel::BiasGrad,
            Kernel::BiasGradSimple,
            Kernel::JetTanhForward,
            Kernel::JetTanhBackward,
            Kernel::JetSinForward,
            Kernel::JetSinBackward,
            Kernel::InputFill,
            Kernel::InputFillSimple,
            Kernel::ColumnSums,
            Kernel::SampleBall,
            Kernel::SampleBallSimple,
            Kernel::SampleFlat,
            Kernel::Adam,
        ];
        let mut out = [Kernel::Gemm; 42];
        let mut i = 0;
        while i < fixed.len() {
            out[i] = fixed[i];
            i += 1;
        }
        let mut j = 0;
        while j < GemmLayout::ALL.len() {
            out[i] = Kernel::GemmSimple(GemmLayout::ALL[j]);
            i += 1;
            j += 1;
        }
        j = 0;
        while j < Jet2::ALL.len() {
            out[i] = Kernel::Jet2(Jet2::ALL[j]);
            i += 1;
            j += 1;
        }
        out
    };

    /// A label for pipelines and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::GemmSmall => "gemm_small",
            Kernel::GemmReduce => "gemm_reduce",
            Kernel::GemmSimple(l) => {
                const NAMES: [&str; 16] = [
                    "gemm_simple_nn",
                    "gemm_simple_tn",
                    "gemm_simple_nt",
                    "gemm_simple_tt",
                    "gemm_simple_nn_load4",
                    "gemm_simple_tn_load4",
                    "gemm_simple_nt_load4",
                    "gemm_simple_tt_load4",
                    "gemm_simple_nn_store4",
                    "gemm_simple_tn_store4",
                    "gemm_simple_nt_store4",
                    "gemm_simple_tt_store4",
                    "gemm_simple_nn_load4_store4",
                    "gemm_simple_tn_load4_store4",
                    "gemm_simple_nt_load4_store4",
                    "gemm_simple_tt_load4_store4",
                ];
                NAMES[usize::from(l.trans_a)
                    | usize::from(l.trans_b) << 1
                    | usize::from(l.load_vec4) << 2
                    | usize::from(l.store_vec4) << 3]
            }
            Kernel::AddBias => "add_bias",
            Kernel::AddBiasSimple => "add_bias_simple",
            Kernel::BiasGrad => "bias_grad",
            Kernel::BiasGradSimple => "bias_grad_simple",
            Kernel::JetTanhForward => "jet_tanh_forward",
            Kernel::JetTanhBackward => "jet_tanh_backward",
            Kernel::JetSinForward => "jet_sin_forward",
            Kernel::JetSinBackward => "jet_sin_backward",
            Kernel::Jet2(j) => {
                const NAMES: [&str; 8] = [
                    "jet2_tanh_forward",
                    "jet2_sin_forward",
                    "jet2_tanh_backward",
                    "jet2_sin_backward",
                    "jet2_tanh_forward_vec4",
                    "jet2_sin_forward_vec4",
                    "jet2_tanh_backward_vec4",
                    "jet2_sin_backward_vec4",
                ];
                NAMES[usize::from(j.sin) | usize::from(j.backward) << 1 | usize::from(j.vec4) << 2]
            }
            Kernel::InputFill => "input_fill",
            Kernel::InputFillSimple => "input_fill_simple",
            Kernel::ColumnSums => "column_sums",
            Kernel::SampleBall => "sample_ball",
            Kernel::SampleBallSimple => "sample_ball_simple",
            Kernel::SampleFlat => "sample_flat",
            Kernel::Adam => "adam",
        }
    }

    /// Invocations per workgroup of a kernel that does one output per invocation (the `…Simple`
    /// variants; [`Kernel::GemmSimple`] does one 16 × 8 block).
    pub const SIMPLE_WG: usize = 8;

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
            Kernel::GemmSimple(l) => match (l.load_vec4, l.store_vec4) {
                (false, false) => &[COMMON, GEMM_LOAD_SCALAR, GEMM_STORE_SCALAR, GEMM_SIMPLE],
                (true, false) => &[COMMON, GEMM_LOAD_VEC4, GEMM_STORE_SCALAR, GEMM_SIMPLE],
                (false, true) => &[COMMON, GEMM_LOAD_SCALAR, GEMM_STORE_VEC4, GEMM_SIMPLE],
                (true, true) => &[COMMON, GEMM_LOAD_VEC4, GEMM_STORE_VEC4, GEMM_SIMPLE],
            },
            Kernel::AddBias => &[COMMON, ADD_BIAS],
            Kernel::AddBiasSimple => &[COMMON, ADD_BIAS_SIMPLE],
            Kernel::BiasGrad => &[COMMON, BIAS_GRAD],
            Kernel::BiasGradSimple => &[COMMON, BIAS_GRAD_SIMPLE],
            Kernel::JetTanhForward => &[COMMON, ACT_TANH, JET_FORWARD],
            Kernel::JetTanhBackward => &[COMMON, ACT_TANH, JET_BACKWARD],
            Kernel::JetSinForward => &[COMMON, ACT_SIN, JET_FORWARD],
            Kernel::JetSinBackward => &[COMMON, ACT_SIN, JET_BACKWARD],
            Kernel::Jet2(j) => {
                const PARTS: [[&str; 4]; 8] = [
                    [COMMON, DERIV_TANH, JET2_LANES1, JET2_FORWARD],
                    [COMMON, DERIV_SIN, JET2_LANES1, JET2_FORWARD],
                    [COMMON, DERIV_TANH, JET2_LANES1, JET2_BACKWARD],
                    [COMMON, DERIV_SIN, JET2_LANES1, JET2_BACKWARD],
                    [COMMON, DERIV_TANH, JET2_LANES4, JET2_FORWARD],
                    [COMMON, DERIV_SIN, JET2_LANES4, JET2_FORWARD],
                    [COMMON, DERIV_TANH, JET2_LANES4, JET2_BACKWARD],
                    [COMMON, DERIV_SIN, JET2_LANES4, JET2_BACKWARD],
                ];
                &PARTS[usize::from(j.sin) | usize::from(j.backward) << 1 | usize::from(j.vec4) << 2]
            }
            Kernel::InputFill => &[COMMON, INPUT_FILL],
            Kernel::InputFillSimple => &[COMMON, INPUT_FILL_SIMPLE],
            Kernel::ColumnSums => &[COMMON, COLUMN_SUMS],
            Kernel::SampleBall => &[COMMON, PHILOX, SAMPLE_BALL],
            Kernel::SampleBallSimple => &[COMMON, PHILOX, SAMPLE_BALL_SIMPLE],
            Kernel::SampleFlat => &[COMMON, PHILOX, SAMPLE_FLAT],
            Kernel::Adam => &[COMMON, ADAM],
        }
    }

    /// Access of storage bindings `1, 2, …` (binding 0 is the uniform parameter block).
    pub fn bindings(self) -> &'static [Access] {
        match self {
            Kernel::Gemm | Kernel::GemmSmall | Kernel::GemmSimple(_) => &[Read, Read, ReadWrite],
            Kernel::GemmReduce => &[Read, ReadWrite],
            Kernel::AddBias | Kernel::AddBiasSimple => &[Read, ReadWrite],
            Kernel::BiasGrad | Kernel::BiasGradSimple => &[Read, ReadWrite],
            Kernel::JetTanhForward | Kernel::JetSinForward => &[Read, ReadWrite],
            Kernel::Jet2(j) if !j.backward => &[Read, ReadWrite],
            Kernel::JetTanhBackward | Kernel::JetSinBackward | Kernel::Jet2(_) => {
                &[Read, Read, ReadWrite]
            }
            Kernel::InputFill | Kernel::InputFillSimple => &[Read, ReadWrite],
            Kernel::ColumnSums => &[Read, ReadWrite],
            Kernel::SampleBall | Kernel::SampleBallSimple => &[ReadWrite],
            Kernel::SampleFlat => &[ReadWrite],
            Kernel::Adam => &[ReadWrite, ReadWrite, ReadWrite, ReadWrite],
        }
    }

    /// Field names of the kernel's uniform `Params` struct, in declaration order (every field is a
    /// 4-byte `u32` or `f32`, so field `i` sits at byte `4·i`).
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Kernel::Gemm | Kernel::GemmSmall | Kernel::GemmSimple(_) => &[
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
            Kernel::AddBias | Kernel::AddBiasSimple => {
                &["count", "width", "e0", "bias_base", "z_base"]
            }
            Kernel::BiasGrad | Kernel::BiasGradSimple => &["rows", "width", "z_base", "g_base"],
            Kernel::JetTanhForward | Kernel::JetSinForward => &[
                "n_points",
                "width",
                "n_dirs",
                "collapsed",
                "z_base",
                "h_base",
            ],
            Kernel::Jet2(j) if !j.backward => &[
                "n_points",
                "width",
                "n_dirs",
                "collapsed",
                "z_base",
                "h_base",
            ],
            Kernel::JetTanhBackward | Kernel::JetSinBackward | Kernel::Jet2(_) => &[
                "n_points",
                "width",
                "n_dirs",
                "collapsed",
                "z_base",
                "hb_base",
                "zb_base",
            ],
            Kernel::InputFill | Kernel::InputFillSimple => &[
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
            Kernel::SampleBall | Kernel::SampleBallSimple => &[
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
        if let Kernel::GemmSimple(l) = self {
            src.push_str(&format!(
                "const TRANS_A: bool = {};\nconst TRANS_B: bool = {};\n",
                l.trans_a, l.trans_b
            ));
        }
        for part in self.parts() {
            src.push('\n');
            src.push_str(part);
        }
        src
    }
}
