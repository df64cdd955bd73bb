//! `stde-web`: the browser page that trains a PINN live in the tab, on WebGPU (`stde-wgpu`) or,
//! without an adapter, on the CPU backend compiled to WebAssembly.
//!
//! The platform-independent parts (the problems it offers, the form's checks, the tick-by-tick
//! driver, the heatmaps' data) build and are tested natively; the wasm-bindgen
//! [`Session`](bindings) exists on wasm32 only.
//! `web/build.sh` turns the crate into `web/www/pkg/`; `stde web` serves `web/www/`.

pub mod driver;
pub mod form;
pub mod problems;
pub mod slice;

#[cfg(target_arch = "wasm32")]
pub mod bindings;
