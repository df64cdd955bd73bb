//! stde-tests: the workspace's cross-backend tests (compiled expressions against the f64 jet
//! oracle on every backend, end-to-end training of problems that exist only as TOML files) and
//! helpers they share.

pub mod exprs;
