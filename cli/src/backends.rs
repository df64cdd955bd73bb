//! Choosing the backend at the edge: `--backend` resolves to a [`Chosen`] and [`with_backend!`]
//! instantiates the generic code once per backend type (no `dyn Backend`, per the design).

use crate::args::BackendArg;

/// A concrete backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// `stde_core::backend::cpu::CpuBackend`.
    Cpu,
    /// `stde_core::backend::reference::ReferenceBackend`.
    Reference,
}

impl Chosen {
    /// Every backend this build knows, in the order `stde list` shows them.
    pub const ALL: [Chosen; 2] = [Chosen::Cpu, Chosen::Reference];

    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            Chosen::Cpu => "cpu",
            Chosen::Reference => "reference",
        }
    }

    /// One line on what it is.
    pub fn summary(self) -> &'static str {
        match self {
            Chosen::Cpu => "multithreaded f32 on the host",
            Chosen::Reference => "f64 with the obvious loops; slow, the oracle for tests",
        }
    }

    /// Whether it can run on this machine (host backends always can).
    pub fn available(self) -> bool {
        match self {
            Chosen::Cpu | Chosen::Reference => true,
        }
    }
}

impl BackendArg {
    /// The backend to use; `auto` takes the fastest available one.
    pub fn resolve(self) -> Chosen {
        match self {
            BackendArg::Auto | BackendArg::Cpu => Chosen::Cpu,
            BackendArg::Reference => Chosen::Reference,
        }
    }
}

/// Runs `$body` with `$b` bound to a reference to the chosen backend.
macro_rules! with_backend {
    ($chosen:expr, $b:ident => $body:expr) => {
        match $chosen {
            $crate::backends::Chosen::Reference => {
                let $b = &::stde_core::backend::reference::ReferenceBackend;
                $body
            }
            $crate::backends::Chosen::Cpu => {
                let $b = &::stde_core::backend::cpu::CpuBackend::new();
                $body
            }
        }
    };
}
pub(crate) use with_backend;
