//! stde-tests: the workspace's cross-backend tests (compiled expressions against the f64 jet
//! oracle on every backend, end-to-end training of problems that exist only as TOML files), the
//! helpers they share, and [`minimal_backend`], a complete backend kept small as an example.

pub mod exprs;
pub mod minimal_backend;
