//! stde-core: jets, adjoints, the mixed-partial planner, STDE estimators, models and the f64 reference.
#![deny(unsafe_code)]

pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod conformance;
pub mod cost;
pub mod estimator;
pub mod jet;
pub mod mlp;
pub mod pde;
pub mod planner;
pub mod reference;
pub mod rng;
pub mod series;
pub mod train;
