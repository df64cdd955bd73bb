//! Adapter discovery and the runtime errors a user can cause: describing the device, listing
//! adapters, and allocations beyond what the kernels can address.

mod common;

use stde_core::backend::{Backend, BackendError};

#[test]
fn describe_names_the_adapter() {
    let b = backend_or_skip!();
    let text = b.describe();
    assert!(text.starts_with("wgpu: "), "{text}");
    assert!(text.contains(&b.adapter_info().name), "{text}");
}

#[test]
fn enumerated_adapters_include_the_one_in_use() {
    let b = backend_or_skip!();
    let adapters = stde_wgpu::enumerate_adapters();
    let info = b.adapter_info();
    let found = adapters
        .iter()
        .find(|a| a.name == info.name && a.backend == info.backend)
        .unwrap_or_else(|| panic!("{} not among {adapters:?}", info.name));
    assert_eq!(found.is_software, stde_wgpu::is_software(info));
    if info.name.contains("llvmpipe") {
        assert!(found.is_software, "llvmpipe is a software adapter");
    }
}

#[test]
fn oversized_allocation_is_out_of_memory() {
    let b = backend_or_skip!();
    let len = u32::MAX as usize + 1;
    match b.alloc(len, "huge test buffer") {
        Err(BackendError::OutOfMemory {
            requested_bytes,
            what,
        }) => {
            assert_eq!(requested_bytes, len as u64 * 4);
            assert_eq!(what, "huge test buffer");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
}

#[test]
fn empty_buffers_round_trip() {
    let b = backend_or_skip!();
    let buf = b.alloc(0, "empty").unwrap();
    assert!(buf.is_empty());
    let back = pollster::block_on(b.download(&buf, 0, 0)).unwrap();
    assert!(back.is_empty());
}

#[test]
fn backend_and_buffers_can_cross_threads() {
    // Native callers (the CLI's progress thread, test harnesses) may share the backend.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<stde_wgpu::WgpuBackend>();
    send_sync::<stde_wgpu::WgpuBuf>();
    send_sync::<stde_wgpu::WgpuIdx>();
}
