//! The recording machinery under every primitive: pipelines and bind groups (cached), the uniform
//! ring, windows of buffers, scratch buffers, submission and the asynchronous read-back.

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use stde_core::backend::BackendError;

use crate::buffer::{Chunk, RawBuf};
use crate::kernels::{Access, Kernel};
use crate::profile::{KernelTime, Profile};
use crate::{WgpuBackend, BACKEND};

/// Bytes of one dispatch's parameter slot (WebGPU's largest uniform offset alignment).
pub(crate) const SLOT: usize = 256;
/// Size of the uniform ring: dispatches per submission before a forced flush.
pub(crate) const RING_BYTES: u64 = 1024 * SLOT as u64;
/// Size of the upload ring: small uploads staged per submission.
pub(crate) const UPLOAD_RING_BYTES: u64 = 1 << 20;
/// Submissions allowed in flight before recording waits for the oldest (native only), so that a
/// long run without read-backs cannot queue unbounded work.
#[cfg(not(target_arch = "wasm32"))]
const MAX_IN_FLIGHT: usize = 8;
/// Bind groups kept before the cache is cleared (windows of huge buffers make many distinct ones).
const MAX_BIND_GROUPS: usize = 4096;
/// Scratch slots `0..STRADDLE_SLOTS` hold windows that straddle two wgpu buffers; the slots above
/// belong to the sub-batch path of the jet activations.
pub(crate) const STRADDLE_SLOTS: usize = 8;
/// Scratch slot of the partial products of a GEMM with a split inner dimension.
pub(crate) const PARTIAL_SLOT: usize = STRADDLE_SLOTS + 3;

/// Polls a future once and returns its output if it is already complete. wgpu-core (native)
/// resolves error scopes and adapter enumeration immediately; the browser does not, and callers
/// treat `None` as "unknown yet".
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn now<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Whose bind groups and dispatches these are: a kernel of the fixed table, or a pipeline generated
/// at run time (a compiled program's kernel), by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Kernel(Kernel),
    Generated(u64),
}

/// A cached bind group's key: its owner and `(buffer id, offset, size)` of each storage binding.
type BindKey = (Owner, Vec<(u64, u64, u64)>);

/// A compute pipeline built from WGSL generated at run time (a compiled program's kernel), with the
/// conventions of the fixed kernels: one entry point `main`, binding 0 the uniform parameter slot,
/// storage bindings `1..` with the access of `bindings`, `n_params` 4-byte parameters.
#[derive(Clone, Debug)]
pub(crate) struct GeneratedPipeline {
    id: u64,
    label: &'static str,
    bindings: &'static [Access],
    n_params: usize,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    /// Where its id goes when it is dropped, so that its cached bind groups go too.
    freed: Arc<Mutex<Vec<u64>>>,
}

impl Drop for GeneratedPipeline {
    fn drop(&mut self) {
        // A poisoned lock only means another thread panicked; leaking a cache entry is harmless.
        if let Ok(mut freed) = self.freed.lock() {
            freed.push(self.id);
        }
    }
}

/// What one recorded dispatch runs.
struct Recording<'a> {
    owner: Owner,
    label: &'static str,
    bindings: &'static [Access],
    pipeline: &'a wgpu::ComputePipeline,
    bind_group: &'a wgpu::BindGroup,
}

/// A read-back in flight: staging buffer, bytes, and the channel of its `map_async` callback.
type PendingRead = (
    wgpu::Buffer,
    u64,
    futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>,
);

/// A scratch buffer owned by the backend.
pub(crate) struct Scratch {
    pub id: u64,
    pub buffer: wgpu::Buffer,
}

/// Temporary device arrays of the composite primitives, kept between calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Tmp {
    /// The input layer's shared tangent rows or their cotangent sums.
    Tangents,
    /// A compiled program's accumulators and argmax windows per point (its series mode).
    ProgramReductions,
}

/// Mutable recording state, behind the backend's mutex.
#[derive(Default)]
pub(crate) struct State {
    encoder: Option<wgpu::CommandEncoder>,
    /// The parameter slots of the dispatches recorded since the last submission.
    uniforms: Vec<u8>,
    /// The bytes of the small uploads recorded since the last submission (see `write`).
    uploads: Vec<u8>,
    pipelines: HashMap<(Kernel, u32), wgpu::ComputePipeline>,
    layouts: HashMap<Kernel, wgpu::BindGroupLayout>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    scratch: Vec<Option<Scratch>>,
    next_slot: usize,
    staging: Vec<wgpu::Buffer>,
    pub tmp: HashMap<Tmp, RawBuf>,
    /// The generic step's kernels ([`crate::generic::GenericKernel`]), built on first use.
    pub generic: HashMap<crate::generic::GenericKernel, Arc<GeneratedPipeline>>,
    #[cfg(not(target_arch = "wasm32"))]
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    /// Counters (always) and per-kernel times (when `profiling`).
    pub profile: Profile,
    /// Whether every dispatch is submitted and waited for alone, to time it.
    pub profiling: bool,
}

/// What one storage binding of a dispatch binds.
pub(crate) struct Window {
    id: u64,
    buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
    /// The logical value at the start of the binding: kernels index `value − origin`.
    pub origin: usize,
    /// Copies from a straddle scratch back to the chunks, recorded after a writing dispatch:
    /// `(destination, destination offset, source offset, bytes)`.
    copy_back: Vec<(wgpu::Buffer, u64, u64, u64)>,
}

impl Window {
    /// `value − origin` as a kernel index.
    ///
    /// # Panics
    /// If `value` lies before the window (a bug in the split planning).
    #[track_caller]
    pub fn base(&self, value: usize) -> u32 {
        let rel = value
            .checked_sub(self.origin)
            .expect("a value before its bound window");
        u32::try_from(rel).expect("a window index above u32")
    }
}

impl WgpuBackend {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic here is a caller bug (a shape mismatch) caught before anything was recorded, or
        // a planning bug; either way the state stays consistent, so recover rather than turn one
        // panic into a poisoned backend.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A device failure recorded by a callback, if any.
    pub(crate) fn fault(&self) -> Option<BackendError> {
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    pub(crate) fn set_fault(&self, e: BackendError) {
        if let Ok(mut f) = self.fault.lock() {
            f.get_or_insert(e);
        }
    }

    fn encoder<'s>(&self, st: &'s mut State) -> &'s mut wgpu::CommandEncoder {
        st.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("stde"),
                })
        })
    }

    /// Submits everything recorded so far (with its parameter slots).
    pub(crate) fn flush(&self, st: &mut State) {
        let Some(encoder) = st.encoder.take() else {
            return;
        };
        if !st.uniforms.is_empty() {
            // Queue writes land before the next submission and after every earlier one, so the
            // ring can be rewritten from slot 0 for each submission.
            self.queue.write_buffer(&self.ring, 0, &st.uniforms);
            st.uniforms.clear();
        }
        if !st.uploads.is_empty() {
            // Likewise the upload ring (see `write`).
            self.queue.write_buffer(&self.upload_ring, 0, &st.uploads);
            st.uploads.clear();
        }
        let _index = self.queue.submit([encoder.finish()]);
        st.profile.submits += 1;
        #[cfg(not(target_arch = "wasm32"))]
        {
            st.in_flight.push_back(_index);
            if st.in_flight.len() > MAX_IN_FLIGHT {
                let oldest = st.in_flight.pop_front();
                let _ = self.device.poll(wgpu::PollType::Wait {
                    submission_index: oldest,
                    timeout: None,
                });
            } else {
                // Lets wgpu-core retire finished submissions and free their resources.
                let _ = self.device.poll(wgpu::PollType::Poll);
            }
        }
    }

    /// Allocates a logical array of `len` 4-byte values, zeroed (wgpu zero-initialises buffers).
    pub(crate) fn alloc_raw(&self, len: usize, what: &'static str) -> Result<RawBuf, BackendError> {
        let requested_bytes = (len as u64).saturating_mul(4);
        // Kernels index with u32.
        if len > u32::MAX as usize {
            return Err(BackendError::OutOfMemory {
                requested_bytes,
                what,
            });
        }
        let ce = self.chunk_elems;
        let n_chunks = len.div_ceil(ce).max(1);
        #[cfg(not(target_arch = "wasm32"))]
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let chunks: Vec<Chunk> = (0..n_chunks)
            .map(|c| {
                let elems = (len - (c * ce).min(len)).min(ce);
                // Whole 16-byte groups, so that a kernel may bind the buffer as vec4 values
                // without losing its last ones (a chunk is a multiple of `align`, so this stays
                // within it whenever `vec4_ok`).
                let mut size = elems.max(1) as u64 * 4;
                if self.vec4_ok {
                    size = size.next_multiple_of(16);
                }
                self.buffers_created.fetch_add(1, Ordering::Relaxed);
                let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(what),
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                Chunk {
                    id: self.next_id(),
                    buffer,
                }
            })
            .collect();
        // On wasm32 the scope could only be awaited; an allocation failure there reaches the
        // uncaptured-error handler instead and is returned by the next download.
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(Some(_)) = now(scope.pop()) {
            return Err(BackendError::OutOfMemory {
                requested_bytes,
                what,
            });
        }
        Ok(RawBuf {
            chunks,
            len,
            chunk_elems: ce,
            freed: self.freed.clone(),
        })
    }

    /// A temporary array of at least `len` values, kept for later calls. `None` (with the fault
    /// recorded for the next download) if the device is out of memory.
    pub(crate) fn take_tmp(&self, st: &mut State, which: Tmp, len: usize) -> Option<RawBuf> {
        if let Some(t) = st.tmp.remove(&which) {
            if t.len >= len {
                return Some(t);
            }
        }
        match self.alloc_raw(len.max(1), "temporary") {
            Ok(t) => Some(t),
            Err(e) => {
                self.set_fault(e);
                None
            }
        }
    }

    /// A scratch buffer of at least `bytes` (at most one binding) in `slot`.
    pub(crate) fn scratch(&self, st: &mut State, slot: usize, bytes: u64) -> (u64, wgpu::Buffer) {
        if st.scratch.len() <= slot {
            st.scratch.resize_with(slot + 1, || None);
        }
        if let Some(s) = &st.scratch[slot] {
            if s.buffer.size() >= bytes {
                return (s.id, s.buffer.clone());
            }
        }
        let size = bytes
            .next_power_of_two()
            .max(1 << 16)
            .min(self.bind_bytes)
            .max(bytes);
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stde scratch"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let id = self.next_id();
        if let Some(old) = st.scratch[slot].replace(Scratch {
            id,
            buffer: buffer.clone(),
        }) {
            st.bind_groups
                .retain(|(_, key), _| key.iter().all(|b| b.0 != old.id));
        }
        (id, buffer)
    }

    /// A whole scratch buffer as a binding.
    pub(crate) fn scratch_window(id: u64, buffer: wgpu::Buffer) -> Window {
        Window {
            id,
            offset: 0,
            size: buffer.size(),
            buffer,
            origin: 0,
            copy_back: Vec::new(),
        }
    }

    /// Records copies of the logical values `[lo, hi)` of `raw` into `dst` at byte `dst_off`.
    pub(crate) fn copy_out(
        &self,
        st: &mut State,
        raw: &RawBuf,
        lo: usize,
        hi: usize,
        dst: &wgpu::Buffer,
        dst_off: u64,
    ) {
        let pieces = raw.pieces(lo, hi);
        st.profile.copies += pieces.len() as u64;
        let enc = self.encoder(st);
        for (chunk, off, count, rel) in pieces {
            enc.copy_buffer_to_buffer(
                &chunk.buffer,
                off as u64 * 4,
                dst,
                dst_off + rel as u64 * 4,
                count as u64 * 4,
            );
        }
    }

    /// Records copies from `src` at byte `src_off` into the logical values `[lo, hi)` of `raw`.
    pub(crate) fn copy_in(
        &self,
        st: &mut State,
        src: &wgpu::Buffer,
        src_off: u64,
        raw: &RawBuf,
        lo: usize,
        hi: usize,
    ) {
        let pieces = raw.pieces(lo, hi);
        st.profile.copies += pieces.len() as u64;
        let enc = self.encoder(st);
        for (chunk, off, count, rel) in pieces {
            enc.copy_buffer_to_buffer(
                src,
                src_off + rel as u64 * 4,
                &chunk.buffer,
                off as u64 * 4,
                count as u64 * 4,
            );
        }
    }

    /// A binding that covers the logical values `[lo, hi)` of `raw`.
    ///
    /// Within one wgpu buffer it is the whole buffer when that fits in one binding (so the same
    /// bind group serves every call), else an aligned window of at most the binding limit. Across
    /// two wgpu buffers the values are copied into a scratch buffer first (and back after a
    /// writing dispatch).
    ///
    /// # Panics
    /// If `[lo, hi)` spans more than [`WgpuBackend::win_elems`] values (a planning bug).
    #[track_caller]
    pub(crate) fn window(&self, st: &mut State, raw: &RawBuf, lo: usize, hi: usize) -> Window {
        let hi = hi.max(lo + 1);
        assert!(
            hi - lo <= self.win_elems,
            "window of {} values exceeds the binding limit of {} values",
            hi - lo,
            self.win_elems
        );
        let ce = raw.chunk_elems;
        let (c0, c1) = (lo / ce, (hi - 1) / ce);
        if c0 == c1 || raw.chunks.len() == 1 {
            let chunk = &raw.chunks[c0.min(raw.chunks.len() - 1)];
            let lo_b = (lo - c0 * ce) as u64 * 4;
            let (offset, size) = if chunk.bytes() <= self.bind_bytes {
                (0, chunk.bytes())
            } else {
                let off = lo_b / self.align * self.align;
                (off, (chunk.bytes() - off).min(self.bind_bytes))
            };
            debug_assert!((hi - c0 * ce) as u64 * 4 <= offset + size);
            return Window {
                id: chunk.id,
                buffer: chunk.buffer.clone(),
                offset,
                size,
                origin: c0 * ce + (offset / 4) as usize,
                copy_back: Vec::new(),
            };
        }
        let slot = st.next_slot;
        assert!(
            slot < STRADDLE_SLOTS,
            "too many straddling windows in one dispatch"
        );
        st.next_slot += 1;
        let bytes = (hi - lo) as u64 * 4;
        let (id, buffer) = self.scratch(st, slot, bytes);
        self.copy_out(st, raw, lo, hi, &buffer, 0);
        let copy_back = raw
            .pieces(lo, hi)
            .into_iter()
            .map(|(chunk, off, count, rel)| {
                (
                    chunk.buffer.clone(),
                    off as u64 * 4,
                    rel as u64 * 4,
                    count as u64 * 4,
                )
            })
            .collect();
        Window {
            id,
            size: buffer.size(),
            buffer,
            offset: 0,
            origin: lo,
            copy_back,
        }
    }

    fn layout(&self, st: &mut State, kernel: Kernel) -> wgpu::BindGroupLayout {
        st.layouts
            .entry(kernel)
            .or_insert_with(|| {
                self.device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: Some(kernel.name()),
                        entries: &Self::layout_entries(kernel.bindings()),
                    })
            })
            .clone()
    }

    /// Binding 0, the uniform slot, then storage bindings with the given access.
    fn layout_entries(bindings: &[Access]) -> Vec<wgpu::BindGroupLayoutEntry> {
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: NonZeroU64::new(SLOT as u64),
            },
            count: None,
        }];
        for (i, access) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        entries
    }

    fn pipeline(&self, st: &mut State, kernel: Kernel, order: u32) -> wgpu::ComputePipeline {
        let order = if kernel.depends_on_order() { order } else { 0 };
        if let Some(p) = st.pipelines.get(&(kernel, order)) {
            return p.clone();
        }
        let layout = self.layout(st, kernel);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name()),
                source: wgpu::ShaderSource::Wgsl(kernel.source(order).into()),
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        st.profile.pipelines_created += 1;
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name()),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        st.pipelines.insert((kernel, order), pipeline.clone());
        pipeline
    }

    fn purge_freed(&self, st: &mut State) {
        let freed: Vec<u64> = match self.freed.lock() {
            Ok(mut f) if !f.is_empty() => std::mem::take(&mut *f),
            _ => return,
        };
        // Buffer and generated-pipeline ids come from one counter, so one list serves both.
        st.bind_groups.retain(|(owner, key), _| {
            let dropped = matches!(owner, Owner::Generated(id) if freed.contains(id));
            !dropped && key.iter().all(|b| !freed.contains(&b.0))
        });
    }

    fn bind_group(&self, st: &mut State, kernel: Kernel, wins: &[&Window]) -> wgpu::BindGroup {
        let layout = self.layout(st, kernel);
        self.cached_bind_group(st, Owner::Kernel(kernel), kernel.name(), &layout, wins)
    }

    fn cached_bind_group(
        &self,
        st: &mut State,
        owner: Owner,
        label: &str,
        layout: &wgpu::BindGroupLayout,
        wins: &[&Window],
    ) -> wgpu::BindGroup {
        let key: Vec<(u64, u64, u64)> = wins.iter().map(|w| (w.id, w.offset, w.size)).collect();
        if let Some(bg) = st.bind_groups.get(&(owner, key.clone())) {
            return bg.clone();
        }
        if st.bind_groups.len() >= MAX_BIND_GROUPS {
            st.bind_groups.clear();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.ring,
                offset: 0,
                size: NonZeroU64::new(SLOT as u64),
            }),
        }];
        for (i, w) in wins.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &w.buffer,
                    offset: w.offset,
                    size: NonZeroU64::new(w.size),
                }),
            });
        }
        st.profile.bind_groups_created += 1;
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout,
            entries: &entries,
        });
        st.bind_groups.insert((owner, key), bg.clone());
        bg
    }

    /// Records one dispatch of `groups` workgroups (laid out on a 2-D grid when above the
    /// per-dimension limit; kernels linearise the workgroup id).
    ///
    /// # Panics
    /// If the parameters or windows do not match the kernel's declaration.
    #[track_caller]
    pub(crate) fn dispatch(
        &self,
        st: &mut State,
        kernel: Kernel,
        order: u32,
        params: &[u32],
        wins: &[&Window],
        groups: usize,
    ) {
        let grid = self.grid(groups);
        self.dispatch_grid(st, kernel, order, params, wins, grid);
    }

    /// `groups` workgroups on a grid: x up to the per-dimension limit, spilling onto y.
    ///
    /// # Panics
    /// If even the 2-D grid is too small.
    #[track_caller]
    fn grid(&self, groups: usize) -> (u32, u32, u32) {
        let max = self.max_groups as usize;
        let (x, y) = if groups <= max {
            (groups, 1)
        } else {
            (max, groups.div_ceil(max))
        };
        assert!(y <= max, "{groups} workgroups exceed the dispatch grid");
        (x as u32, y as u32, 1)
    }

    /// Records one dispatch on an explicit grid.
    #[track_caller]
    pub(crate) fn dispatch_grid(
        &self,
        st: &mut State,
        kernel: Kernel,
        order: u32,
        params: &[u32],
        wins: &[&Window],
        grid: (u32, u32, u32),
    ) {
        assert_eq!(
            params.len(),
            kernel.param_names().len(),
            "{} parameters",
            kernel.name()
        );
        assert_eq!(
            wins.len(),
            kernel.bindings().len(),
            "{} bindings",
            kernel.name()
        );
        st.next_slot = 0;
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return;
        }
        self.purge_freed(st);
        let pipeline = self.pipeline(st, kernel, order);
        let bind_group = self.bind_group(st, kernel, wins);
        let run = Recording {
            owner: Owner::Kernel(kernel),
            label: kernel.name(),
            bindings: kernel.bindings(),
            pipeline: &pipeline,
            bind_group: &bind_group,
        };
        self.record(st, run, params, wins, grid);
    }

    /// Records one dispatch of a generated pipeline on `groups` workgroups (see
    /// [`WgpuBackend::dispatch`]).
    ///
    /// # Panics
    /// If the parameters or windows do not match the pipeline's declaration.
    #[track_caller]
    pub(crate) fn dispatch_generated(
        &self,
        st: &mut State,
        gp: &GeneratedPipeline,
        params: &[u32],
        wins: &[&Window],
        groups: usize,
    ) {
        assert!(
            Arc::ptr_eq(&gp.freed, &self.freed),
            "a program compiled by another backend"
        );
        assert_eq!(params.len(), gp.n_params, "{} parameters", gp.label);
        assert_eq!(wins.len(), gp.bindings.len(), "{} bindings", gp.label);
        st.next_slot = 0;
        if groups == 0 {
            return;
        }
        let grid = self.grid(groups);
        self.purge_freed(st);
        let owner = Owner::Generated(gp.id);
        let bind_group = self.cached_bind_group(st, owner, gp.label, &gp.layout, wins);
        let run = Recording {
            owner,
            label: gp.label,
            bindings: gp.bindings,
            pipeline: &gp.pipeline,
            bind_group: &bind_group,
        };
        self.record(st, run, params, wins, grid);
    }

    /// Builds a pipeline from generated WGSL (see [`GeneratedPipeline`]).
    ///
    /// # Errors
    /// [`BackendError::OutOfMemory`] if the device could not allocate it, and
    /// [`BackendError::DeviceLost`] (naming the kernel) if the device rejected it. On wasm32 error
    /// scopes could only be awaited: such errors reach the uncaptured-error handler instead.
    pub(crate) fn create_generated(
        &self,
        label: &'static str,
        source: String,
        bindings: &'static [Access],
        n_params: usize,
    ) -> Result<GeneratedPipeline, BackendError> {
        #[cfg(not(target_arch = "wasm32"))]
        let scopes = [
            self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            self.device.push_error_scope(wgpu::ErrorFilter::Internal),
            self.device.push_error_scope(wgpu::ErrorFilter::Validation),
        ];
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &Self::layout_entries(bindings),
            });
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        self.lock().profile.pipelines_created += 1;
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Innermost scope first.
            let [oom, internal, validation] = scopes;
            let errors = [now(validation.pop()), now(internal.pop()), now(oom.pop())];
            if let Some(e) = errors.into_iter().flatten().flatten().next() {
                return Err(match e {
                    wgpu::Error::OutOfMemory { .. } => BackendError::OutOfMemory {
                        requested_bytes: 0,
                        what: "a compiled program's kernel",
                    },
                    e => BackendError::DeviceLost {
                        backend: BACKEND,
                        reason: format!("the device rejected the generated kernel {label}: {e}"),
                    },
                });
            }
        }
        Ok(GeneratedPipeline {
            id: self.next_id(),
            label,
            bindings,
            n_params,
            layout,
            pipeline,
            freed: self.freed.clone(),
        })
    }

    /// The dispatch count and time of what `owner` names.
    fn kernel_time<'p>(
        profile: &'p mut Profile,
        owner: Owner,
        label: &'static str,
    ) -> &'p mut KernelTime {
        match owner {
            Owner::Kernel(kernel) => profile.kernels.entry(kernel).or_default(),
            Owner::Generated(_) => profile.programs.entry(label).or_default(),
        }
    }

    /// Records a dispatch: its parameter slot, the compute pass, the copies back of straddling
    /// windows it wrote, and (when profiling) its time alone.
    fn record(
        &self,
        st: &mut State,
        run: Recording<'_>,
        params: &[u32],
        wins: &[&Window],
        grid: (u32, u32, u32),
    ) {
        Self::kernel_time(&mut st.profile, run.owner, run.label).dispatches += 1;
        // Profiling: finish what was recorded before (copies, uploads) so that the dispatch is
        // timed alone (pipeline and bind group creation above are host work, left out).
        #[cfg(not(target_arch = "wasm32"))]
        let started = if st.profiling {
            let t = std::time::Instant::now();
            self.flush_and_wait(st);
            st.profile.other_seconds += t.elapsed().as_secs_f64();
            Some(std::time::Instant::now())
        } else {
            None
        };
        if st.uniforms.len() + SLOT > RING_BYTES as usize {
            self.flush(st);
        }
        let offset = st.uniforms.len();
        st.uniforms.extend_from_slice(bytemuck::cast_slice(params));
        st.uniforms.resize(offset + SLOT, 0);
        let enc = self.encoder(st);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(run.label),
                timestamp_writes: None,
            });
            pass.set_pipeline(run.pipeline);
            pass.set_bind_group(0, run.bind_group, &[offset as u32]);
            pass.dispatch_workgroups(grid.0, grid.1, grid.2);
        }
        for (w, access) in wins.iter().zip(run.bindings) {
            if *access == Access::ReadWrite {
                for (dst, dst_off, src_off, bytes) in &w.copy_back {
                    enc.copy_buffer_to_buffer(&w.buffer, *src_off, dst, *dst_off, *bytes);
                }
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(t) = started {
            self.flush_and_wait(st);
            Self::kernel_time(&mut st.profile, run.owner, run.label).seconds +=
                t.elapsed().as_secs_f64();
        }
    }

    /// Submits what was recorded and waits for the device to finish it (profiling only).
    #[cfg(not(target_arch = "wasm32"))]
    fn flush_and_wait(&self, st: &mut State) {
        self.flush(st);
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// Uploads host values into `[offset, offset + len)` of `raw`.
    pub(crate) fn write(&self, raw: &RawBuf, offset: usize, bytes: &[u8]) {
        let len = bytes.len() / 4;
        if len == 0 {
            return;
        }
        let mut st = self.lock();
        let n = bytes.len();
        if n <= UPLOAD_RING_BYTES as usize / 4 {
            // Small uploads (a step's probe indices) go through the upload ring: the bytes are
            // written to it just before the next submission and copied from it by a command
            // recorded in order, so nothing needs submitting now.
            if st.uploads.len() + n > UPLOAD_RING_BYTES as usize {
                self.flush(&mut st);
            }
            let at = st.uploads.len() as u64;
            st.uploads.extend_from_slice(bytes);
            st.profile.staged_uploads += 1;
            let pieces = raw.pieces(offset, offset + len);
            st.profile.copies += pieces.len() as u64;
            let enc = self.encoder(&mut st);
            for (chunk, off, count, rel) in pieces {
                enc.copy_buffer_to_buffer(
                    &self.upload_ring,
                    at + rel as u64 * 4,
                    &chunk.buffer,
                    off as u64 * 4,
                    count as u64 * 4,
                );
            }
            return;
        }
        st.profile.direct_uploads += 1;
        // Queue writes land before the next submission: submit what was recorded first, or work
        // enqueued before this upload would see the new values.
        self.flush(&mut st);
        for (chunk, off, count, rel) in raw.pieces(offset, offset + len) {
            self.queue.write_buffer(
                &chunk.buffer,
                off as u64 * 4,
                &bytes[rel * 4..(rel + count) * 4],
            );
        }
    }

    /// Reads `[offset, offset + len)` of `raw` back after all recorded work.
    pub(crate) fn read(
        &self,
        raw: &RawBuf,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>> + '_ {
        #[cfg(not(target_arch = "wasm32"))]
        let timer = std::time::Instant::now();
        // Everything up to the submission happens now, so later work cannot leak into the result.
        let started = self.start_read(raw, offset, len);
        async move {
            let pieces = started?;
            #[cfg(not(target_arch = "wasm32"))]
            if !pieces.is_empty() {
                self.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| BackendError::DeviceLost {
                        backend: BACKEND,
                        reason: format!("waiting for the GPU failed: {e}"),
                    })?;
            }
            let mut out = Vec::with_capacity(len);
            let mut failed = None;
            for (staging, bytes, rx) in pieces {
                let mapped = rx.await;
                match mapped {
                    Ok(Ok(())) => {
                        let read = match staging.slice(..bytes).get_mapped_range() {
                            Ok(view) => {
                                out.extend(
                                    view.chunks_exact(4)
                                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                                );
                                true
                            }
                            Err(_) => false,
                        };
                        staging.unmap();
                        if !read {
                            failed.get_or_insert(BackendError::DeviceLost {
                                backend: BACKEND,
                                reason: "a mapped read-back buffer could not be viewed".into(),
                            });
                            continue;
                        }
                        let mut st = self.lock();
                        if st.staging.len() < 4 {
                            st.staging.push(staging);
                        }
                    }
                    _ => {
                        failed.get_or_insert(BackendError::DeviceLost {
                            backend: BACKEND,
                            reason: "mapping a read-back buffer failed".into(),
                        });
                    }
                }
            }
            {
                let mut st = self.lock();
                st.profile.downloads += 1;
                #[cfg(not(target_arch = "wasm32"))]
                if st.profiling {
                    st.profile.download_seconds += timer.elapsed().as_secs_f64();
                }
            }
            if let Some(e) = self.fault() {
                return Err(e);
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(out),
            }
        }
    }

    /// The eager half of [`WgpuBackend::read`]: copies into staging buffers, submits, maps.
    fn start_read(
        &self,
        raw: &RawBuf,
        offset: usize,
        len: usize,
    ) -> Result<Vec<PendingRead>, BackendError> {
        if let Some(e) = self.fault() {
            return Err(e);
        }
        let mut st = self.lock();
        let mut pieces = Vec::new();
        if len == 0 {
            return Ok(pieces);
        }
        // One staging buffer per piece of at most a binding's size keeps each mapping modest.
        let piece = self.win_elems;
        let mut plan = Vec::new();
        for (a, b) in crate::plan::ranges(len, piece) {
            let bytes = (b - a) as u64 * 4;
            let pos = st.staging.iter().position(|s| s.size() >= bytes);
            let staging = match pos {
                Some(i) => st.staging.swap_remove(i),
                None => {
                    self.buffers_created.fetch_add(1, Ordering::Relaxed);
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("stde read-back"),
                        // Rounded up so that the buffer serves later reads too, within the buffer
                        // limit.
                        size: bytes
                            .next_power_of_two()
                            .max(1 << 12)
                            .min(self.chunk_elems as u64 * 4)
                            .max(bytes),
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                }
            };
            self.copy_out(&mut st, raw, offset + a, offset + b, &staging, 0);
            plan.push((staging, bytes));
        }
        self.flush(&mut st);
        drop(st);
        for (staging, bytes) in plan {
            let (tx, rx) = futures_channel::oneshot::channel();
            staging.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
                // The receiver is gone only if the future was dropped; nothing to report then.
                let _ = tx.send(r);
            });
            pieces.push((staging, bytes, rx));
        }
        Ok(pieces)
    }
}
