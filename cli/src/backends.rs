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
    /// `stde_wgpu::WgpuBackend`.
    Wgpu,
    /// `stde_cuda::CudaBackend`.
    Cuda,
}

/// Whether a hardware (not software-rasterised) wgpu adapter exists.
fn hardware_wgpu_adapter() -> bool {
    stde_wgpu::enumerate_adapters()
        .iter()
        .any(|a| !a.is_software)
}

impl Chosen {
    /// Every backend this build knows, in the order `stde list` shows them.
    pub const ALL: [Chosen; 4] = [Chosen::Cuda, Chosen::Wgpu, Chosen::Cpu, Chosen::Reference];

    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            Chosen::Cpu => "cpu",
            Chosen::Reference => "reference",
            Chosen::Wgpu => "wgpu",
            Chosen::Cuda => "cuda",
        }
    }

    /// One line on what it is.
    pub fn summary(self) -> &'static str {
        match self {
            Chosen::Cpu => "multithreaded f32 on the host",
            Chosen::Reference => "f64 with the obvious loops; slow, the oracle for tests",
            Chosen::Wgpu => "WGSL kernels on Vulkan/Metal/DX12 (or WebGPU in a browser)",
            Chosen::Cuda => "CUDA kernels compiled by NVRTC, cuBLAS matrix products",
        }
    }

    /// Whether it can run on this machine (host backends always can).
    pub fn available(self) -> bool {
        match self {
            Chosen::Cpu | Chosen::Reference => true,
            Chosen::Wgpu => !stde_wgpu::enumerate_adapters().is_empty(),
            Chosen::Cuda => stde_cuda::cuda_available(),
        }
    }
}

impl BackendArg {
    /// The backend to use; `auto` takes the fastest available one.
    pub fn resolve(self) -> Chosen {
        match self {
            BackendArg::Auto => {
                // A software adapter (lavapipe, SwiftShader) is slower than the CPU backend.
                if stde_cuda::cuda_available() {
                    Chosen::Cuda
                } else if hardware_wgpu_adapter() {
                    Chosen::Wgpu
                } else {
                    Chosen::Cpu
                }
            }
            BackendArg::Cpu => Chosen::Cpu,
            BackendArg::Reference => Chosen::Reference,
            BackendArg::Wgpu => Chosen::Wgpu,
            BackendArg::Cuda => Chosen::Cuda,
        }
    }
}

impl From<Chosen> for BackendArg {
    fn from(c: Chosen) -> Self {
        match c {
            Chosen::Cpu => BackendArg::Cpu,
            Chosen::Reference => BackendArg::Reference,
            Chosen::Wgpu => BackendArg::Wgpu,
            Chosen::Cuda => BackendArg::Cuda,
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
            $crate::backends::Chosen::Wgpu => {
                let backend = ::pollster::block_on(::stde_wgpu::WgpuBackend::new(
                    ::stde_wgpu::WgpuParams::default(),
                ))
                .map_err($crate::error::CliError::from)?;
                let $b = &backend;
                $body
            }
            $crate::backends::Chosen::Cuda => {
                let backend = ::stde_cuda::CudaBackend::new(::stde_cuda::CudaParams::default())
                    .map_err($crate::error::CliError::from)?;
                let $b = &backend;
                $body
            }
        }
    };
}
pub(crate) use with_backend;
