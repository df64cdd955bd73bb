//! Device buffers: a logical array of 4-byte values ([`WgpuBuf`] of `f32`, [`WgpuIdx`] of `u32`)
//! stored in one or more wgpu buffers ("chunks") when it is larger than the adapter's
//! `max_buffer_size`.
//!
//! Kernels never see a chunk boundary: they bind windows of at most the storage binding limit, and
//! a window that would straddle two chunks is copied through a scratch buffer
//! (see `WgpuBackend::window`).

use std::sync::{Arc, Mutex};

/// One wgpu buffer of a logical array.
pub(crate) struct Chunk {
    /// Backend-wide unique id (bind groups are cached by it).
    pub id: u64,
    /// The buffer (`STORAGE | COPY_SRC | COPY_DST`); it holds at least one value, so that even an
    /// empty array can be bound.
    pub buffer: wgpu::Buffer,
}

impl Chunk {
    /// Physical size in bytes.
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }
}

/// A logical array split into chunks of `chunk_elems` values (the last one shorter).
pub(crate) struct RawBuf {
    pub chunks: Vec<Chunk>,
    pub len: usize,
    pub chunk_elems: usize,
    /// Where the ids of dropped chunks go, so that the backend can forget their bind groups (which
    /// would otherwise keep the memory alive).
    pub freed: Arc<Mutex<Vec<u64>>>,
}

impl RawBuf {
    /// The pieces `(chunk, first value in the chunk, values, first value in [lo, hi))` covering the
    /// logical range `[lo, hi)`.
    pub fn pieces(&self, lo: usize, hi: usize) -> Vec<(&Chunk, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut at = lo;
        while at < hi {
            let c = at / self.chunk_elems;
            let start = c * self.chunk_elems;
            let end = (start + self.chunk_elems).min(hi);
            out.push((&self.chunks[c], at - start, end - at, at - lo));
            at = end;
        }
        out
    }
}

impl Drop for RawBuf {
    fn drop(&mut self) {
        // A poisoned lock only means another thread panicked; leaking a cache entry is harmless.
        if let Ok(mut freed) = self.freed.lock() {
            freed.extend(self.chunks.iter().map(|c| c.id));
        }
    }
}

impl std::fmt::Debug for RawBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBuf")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

/// A device buffer of `f32` (the backend's `Buf`). Its length is fixed at allocation.
#[derive(Debug)]
pub struct WgpuBuf {
    pub(crate) raw: RawBuf,
}

impl WgpuBuf {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// Number of wgpu buffers it is stored in (more than one only above `max_buffer_size`).
    pub fn n_chunks(&self) -> usize {
        self.raw.chunks.len()
    }
}

/// A device buffer of `u32` (the backend's `Idx`). Its length is fixed at allocation.
#[derive(Debug)]
pub struct WgpuIdx {
    pub(crate) raw: RawBuf,
}

impl WgpuIdx {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }
}
