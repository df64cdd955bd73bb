//! `stde-wgpu`: the STDE [`Backend`](stde_core::backend::Backend) on wgpu, with hand-written WGSL
//! kernels, for native GPUs (Vulkan, Metal, DX12) and the browser's WebGPU.
//!
//! ```no_run
//! # async fn run() -> Result<(), stde_core::backend::BackendError> {
//! use stde_wgpu::{WgpuBackend, WgpuParams};
//! let backend = WgpuBackend::new(WgpuParams::default()).await?;
//! println!("{}", backend.describe());
//! # Ok(()) }
//! ```
//!
//! # How it is built
//!
//! * Kernels are WGSL files in `src/shaders/`, addressed by [`kernels::Kernel`]; the jet order (and
//!   a matrix product's layout) is a generated constant prelude, and pipelines are compiled lazily
//!   once per (kernel, order). Order 2, the order of every training step, has its own jet kernels
//!   with the rule written out.
//! * **Two kernel families** ([`KernelVariant`]), chosen by adapter: GPUs get tiled matrix products
//!   staged in workgroup memory and workgroup reductions; software adapters (lavapipe, SwiftShader,
//!   WARP: [`is_software`]) get the `…Simple` variants, which keep a 16 × 8 block of a product in
//!   registers, read operands four values at a time where aligned, and do one output per
//!   invocation elsewhere, with no workgroup memory and no barriers. A CPU-emulated adapter runs a
//!   workgroup as loops over SIMD lanes and turns every buffer or workgroup-memory access into a
//!   lane-by-lane loop, so loads, barriers and integer divisions dominate its time, not arithmetic.
//! * Work is recorded into one command encoder and submitted only when data must come back (a
//!   download), a large upload must land, or the uniform ring is full: a training step is one
//!   submission. Each dispatch's parameters live in a 256-byte slot of a dynamic-offset uniform
//!   ring (WebGPU has no push constants), so bind groups are cached by the buffers they bind and
//!   reused every step; small uploads (a step's probe indices) are staged in an upload ring and
//!   copied in recording order.
//! * **Compiled programs** (`impl ProgramBackend`): problem expressions lowered to
//!   [`stde_core::program::Program`]s become generated WGSL ([`codegen`]): fixed files for the
//!   bindings, entry points and Taylor-series helpers, a constant prelude for the program's sizes and
//!   the series order, and a generated body per program. Primal mode runs per point; series mode
//!   stores each point's reductions once, then runs per (point, direction), re-evaluating only the
//!   windows a one-hot direction moves. See `program.rs` for the variants and their limits.
//! * **Profiling.** `STDE_WGPU_PROFILE=1` (or [`WgpuBackend::set_profiling`]) times every
//!   dispatch alone and accumulates wall time per kernel ([`Profile`]); counters of dispatches,
//!   submissions, uploads and created objects are always kept. `examples/profile_step.rs` prints
//!   both for training steps.
//! * **Large problems.** WebGPU and lavapipe bind at most 128 MiB per storage buffer, yet the first
//!   layer at d = 10⁶ is 512 MiB. Buffers are allocated up to `max_buffer_size` (and split across
//!   several wgpu buffers beyond it); every dispatch binds *windows* of at most the binding limit,
//!   at offsets aligned to `min_storage_buffer_offset_alignment`, and the work is split so that
//!   each dispatch only touches its windows: a GEMM by whole stored rows (the first layer by rows
//!   of `X` and of `W1`, its adjoint by rows of `∂W1` accumulating over windows of points),
//!   elementwise kernels by ranges, per-point kernels by windows of points, and a jet activation
//!   larger than one window by sub-batches of points gathered into scratch buffers. A window that
//!   would straddle two wgpu buffers is copied through a scratch buffer.
//!   [`WgpuParams::max_binding_bytes`] and [`WgpuParams::max_buffer_bytes`] lower both limits so
//!   tests prove the splitting at small sizes.
//! * `download` is truly `async`: a copy into a mappable staging buffer, `map_async`, then on
//!   native a blocking `poll`, on wasm32 an await on the map callback's channel.
//! * Math is f32 throughout; `sin`, `cos`, `exp`, `log` and `tanh` are Cephes-style WGSL functions
//!   (`shaders/common.wgsl`) rather than the builtins, whose specified accuracy (2⁻¹¹ absolute for
//!   `sin`) is far below what the f64 oracle tests demand.
//!
//! # Limits
//!
//! * Jet orders up to [`kernels::MAX_ORDER`] (16).
//! * A `Buf` holds at most `u32::MAX` values (kernels index in 32 bits); larger allocations return
//!   [`BackendError::OutOfMemory`].
//! * What is split is rows and ranges, so a single row must fit in one binding: a point or dense
//!   probe (`d` values: about 33.5 million at 128 MiB), one point's jet (`blocks × width` values),
//!   one block of the first layer's cotangent (`points × width`), the input layer's shared tangent
//!   rows, and what the readout and the compiled programs bind whole (the model output, the ansatz
//!   series and features of a batch, the probe slots; see `generic.rs` and `program.rs`).
//!   Exceeding one is reported by a panic that names it.

mod backend;
mod buffer;
pub mod codegen;
mod context;
pub mod generic;
pub mod kernels;
mod plan;
mod profile;
mod program;

use std::sync::{Arc, Mutex};

use stde_core::backend::BackendError;

pub use buffer::{WgpuBuf, WgpuIdx};
pub use profile::{KernelTime, Profile};
pub use program::WgpuProgram;
pub use wgpu;

use context::State;

/// The backend name used in errors.
const BACKEND: &str = "wgpu";

/// Knobs of [`WgpuBackend::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgpuParams {
    /// Which adapter to prefer when several are present.
    pub power_preference: wgpu::PowerPreference,
    /// Only accept a software adapter (lavapipe, SwiftShader, WARP): reproducible CI runs.
    pub force_software: bool,
    /// Bind at most this many bytes of a buffer per storage binding (default: the adapter's
    /// `max_storage_buffer_binding_size`). Tests lower it to force the split paths at small sizes.
    pub max_binding_bytes: Option<u64>,
    /// Store at most this many bytes per wgpu buffer (default: the adapter's `max_buffer_size`);
    /// larger `Buf`s are split across several wgpu buffers. Tests lower it.
    pub max_buffer_bytes: Option<u64>,
    /// Which family of kernel variants to use (default: by adapter). Tests force each one.
    pub kernel_variant: KernelVariant,
}

/// The family of kernel variants a backend runs.
///
/// GPUs and CPU-emulated adapters want opposite code: a GPU hides latency with many small
/// invocations sharing tiles through workgroup memory, while a software adapter (lavapipe,
/// SwiftShader) runs each workgroup as SIMD loops on one core, where workgroup memory is ordinary
/// memory reached lane by lane and every barrier splits the shader into resumable pieces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KernelVariant {
    /// [`KernelVariant::Simple`] on software adapters ([`is_software`]), else
    /// [`KernelVariant::Tiled`]. In a browser the adapter's name is its `description`, which may be
    /// empty, and only a fallback adapter reports the CPU device type: a page that knows better
    /// (e.g. from `GPUAdapterInfo.architecture == "swiftshader"`) should pick the variant itself.
    #[default]
    Auto,
    /// Kernels tuned for GPUs: tiled matrix products staged in workgroup memory.
    Tiled,
    /// Kernels tuned for CPU-emulated adapters: no workgroup memory or barriers in the matrix
    /// products, more work per invocation, fewer and larger workgroups.
    Simple,
}

impl Default for WgpuParams {
    fn default() -> Self {
        Self {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_software: false,
            max_binding_bytes: None,
            max_buffer_bytes: None,
            kernel_variant: KernelVariant::Auto,
        }
    }
}

/// One adapter as `stde list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API it runs on.
    pub backend: wgpu::Backend,
    /// Integrated, discrete, CPU, …
    pub device_type: wgpu::DeviceType,
    /// Whether it is a software rasteriser ([`is_software`]).
    pub is_software: bool,
}

/// Whether an adapter runs on the CPU: lavapipe/llvmpipe, SwiftShader, WARP, or any adapter that
/// reports the CPU device type.
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_ascii_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || [
            "llvmpipe",
            "lavapipe",
            "swiftshader",
            "microsoft basic render",
            "warp",
        ]
        .iter()
        .any(|s| name.contains(s))
}

/// The adapters wgpu can see (native only; the browser exposes one adapter at a time).
#[cfg(not(target_arch = "wasm32"))]
pub fn enumerate_adapters() -> Vec<AdapterSummary> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    // Native enumeration completes immediately; the future is only there for the web.
    context::now(instance.enumerate_adapters(wgpu::Backends::all()))
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                is_software: is_software(&info),
                name: info.name,
                backend: info.backend,
                device_type: info.device_type,
            }
        })
        .collect()
}

/// The STDE backend on a wgpu device. See the crate documentation.
pub struct WgpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Largest binding, a multiple of `align`.
    bind_bytes: u64,
    /// Values a planned window may span: `(bind_bytes − align) / 4`, so that aligning its start
    /// down still leaves it inside one binding.
    win_elems: usize,
    /// `min_storage_buffer_offset_alignment`.
    align: u64,
    /// Values per wgpu buffer of a `Buf`.
    chunk_elems: usize,
    /// `max_compute_workgroups_per_dimension`.
    max_groups: u32,
    /// Whether the `…Simple` kernel variants run (resolved from [`WgpuParams::kernel_variant`]).
    simple: bool,
    /// Whether operands may be bound as `array<vec4<f32>>`: window offsets (multiples of
    /// `align`) and buffer sizes are then multiples of 16 bytes.
    vec4_ok: bool,
    /// The uniform ring: one 256-byte parameter slot per dispatch of a submission.
    ring: wgpu::Buffer,
    /// The upload ring: the small uploads of a submission, copied from here in order.
    upload_ring: wgpu::Buffer,
    next_id: std::sync::atomic::AtomicU64,
    /// wgpu buffers created (kept apart from [`State`] because allocation runs without its lock).
    buffers_created: std::sync::atomic::AtomicU64,
    /// Whether the profile is printed to stderr on drop (`STDE_WGPU_PROFILE=1`).
    report_on_drop: bool,
    /// Ids of dropped chunks whose cached bind groups must go.
    freed: Arc<Mutex<Vec<u64>>>,
    /// A device loss or out-of-memory reported by a callback, returned by the next download.
    fault: Arc<Mutex<Option<BackendError>>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBackend")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("bind_bytes", &self.bind_bytes)
            .field("chunk_elems", &self.chunk_elems)
            .finish_non_exhaustive()
    }
}

impl WgpuBackend {
    /// Requests an adapter and a device with the adapter's own limits (not WebGPU's defaults: the
    /// larger bindings, buffers and workgroup memory are what large problems need).
    ///
    /// # Errors
    /// [`BackendError::NoDevice`] if no adapter is found (or no software one with
    /// `force_software`), or the device cannot be created.
    pub async fn new(params: WgpuParams) -> Result<Self, BackendError> {
        let no_device = |reason: String| BackendError::NoDevice {
            backend: BACKEND,
            reason,
        };
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: params.power_preference,
                force_fallback_adapter: params.force_software,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| {
                no_device(format!(
                    "{e}{}; on Linux install a Vulkan driver (e.g. Mesa's lavapipe: \
                     mesa-vulkan-drivers, libvulkan1)",
                    if params.force_software {
                        " (a software adapter was required)"
                    } else {
                        ""
                    }
                ))
            })?;
        let info = adapter.get_info();
        if params.force_software && !is_software(&info) {
            return Err(no_device(format!(
                "a software adapter was required, but wgpu offered {} ({:?})",
                info.name, info.device_type
            )));
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("stde"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| no_device(format!("{} refused a device: {e}", info.name)))?;

        let fault: Arc<Mutex<Option<BackendError>>> = Arc::new(Mutex::new(None));
        let lost = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason == wgpu::DeviceLostReason::Destroyed {
                return;
            }
            if let Ok(mut f) = lost.lock() {
                f.get_or_insert(BackendError::DeviceLost {
                    backend: BACKEND,
                    reason: format!("{reason:?}: {message}"),
                });
            }
        });
        let uncaptured = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let err = match e {
                wgpu::Error::OutOfMemory { .. } => BackendError::OutOfMemory {
                    requested_bytes: 0,
                    what: "device work (a buffer or pipeline the device could not allocate)",
                },
                // A validation error is a bug in this crate, never a user's mistake: fail loudly,
                // as wgpu's default handler does.
                wgpu::Error::Validation { description, .. } => {
                    panic!("wgpu validation error (a bug in stde-wgpu): {description}")
                }
                wgpu::Error::Internal { description, .. } => BackendError::DeviceLost {
                    backend: BACKEND,
                    reason: format!("internal error: {description}"),
                },
            };
            if let Ok(mut f) = uncaptured.lock() {
                f.get_or_insert(err);
            }
        }));

        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
        let max_buffer = params
            .max_buffer_bytes
            .map_or(limits.max_buffer_size, |b| b.min(limits.max_buffer_size));
        let chunk_bytes = (max_buffer / align * align).max(align);
        let bind = params
            .max_binding_bytes
            .map_or(limits.max_storage_buffer_binding_size, |b| {
                b.min(limits.max_storage_buffer_binding_size)
            })
            .min(chunk_bytes);
        let bind_bytes = (bind / align * align).max(4 * align);
        let upload_ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stde upload ring"),
            size: context::UPLOAD_RING_BYTES,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stde uniform ring"),
            size: context::RING_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        #[cfg(not(target_arch = "wasm32"))]
        let profiling = std::env::var("STDE_WGPU_PROFILE").is_ok_and(|v| v == "1");
        #[cfg(target_arch = "wasm32")]
        let profiling = false;
        let mut state = State::default();
        state.profiling = profiling;
        let simple = match params.kernel_variant {
            KernelVariant::Auto => is_software(&info),
            KernelVariant::Tiled => false,
            KernelVariant::Simple => true,
        };
        Ok(Self {
            device,
            queue,
            info,
            bind_bytes,
            win_elems: ((bind_bytes - align) / 4) as usize,
            align,
            chunk_elems: (chunk_bytes / 4) as usize,
            max_groups: limits.max_compute_workgroups_per_dimension.max(1),
            simple,
            vec4_ok: align.is_multiple_of(16),
            ring,
            upload_ring,
            next_id: std::sync::atomic::AtomicU64::new(1),
            buffers_created: std::sync::atomic::AtomicU64::new(0),
            report_on_drop: profiling,
            freed: Arc::new(Mutex::new(Vec::new())),
            fault,
            state: Mutex::new(state),
        })
    }

    /// `wgpu: <adapter> (<backend>, <device type>)`.
    pub fn describe(&self) -> String {
        format!(
            "wgpu: {} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// The adapter in use.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The largest storage binding used, in bytes (after [`WgpuParams::max_binding_bytes`]).
    pub fn max_binding_bytes(&self) -> u64 {
        self.bind_bytes
    }

    /// Whether the adapter is a software implementation ([`is_software`]).
    pub fn is_software(&self) -> bool {
        is_software(&self.info)
    }

    /// The kernel family in use: [`KernelVariant::Auto`] resolved for the adapter.
    pub fn kernel_variant(&self) -> KernelVariant {
        if self.simple {
            KernelVariant::Simple
        } else {
            KernelVariant::Tiled
        }
    }

    /// Switches per-dispatch timing on or off (native only; see [`Profile`]). While on, every
    /// dispatch is submitted and waited for alone.
    pub fn set_profiling(&self, on: bool) {
        let mut st = self.lock();
        self.flush(&mut st);
        st.profiling = on && cfg!(not(target_arch = "wasm32"));
    }

    /// The counters and times since creation or the last [`WgpuBackend::reset_profile`].
    pub fn profile(&self) -> Profile {
        let mut p = self.lock().profile.clone();
        p.buffers_created = self
            .buffers_created
            .load(std::sync::atomic::Ordering::Relaxed);
        p
    }

    /// Zeroes the counters and times.
    pub fn reset_profile(&self) {
        self.lock().profile = Profile::default();
        self.buffers_created
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for WgpuBackend {
    fn drop(&mut self) {
        if self.report_on_drop {
            eprintln!(
                "stde-wgpu profile ({}), totals over the backend's life:\n{}",
                self.info.name,
                self.profile().report(1)
            );
        }
    }
}
