//! stde-core: jets, adjoints, the mixed-partial planner, STDE estimators, models and the f64 reference.
#![deny(unsafe_code)]

pub mod jet;
pub mod planner;
pub mod pde;
pub mod rng;
pub mod series;
pub mod batch;
pub mod reference;
pub mod mlp;
pub mod backend;
pub mod estimator;
pub mod train;
pub mod conformance;
pub mod checkpoint;
