//! stde-core: jets, adjoints, the mixed-partial planner, STDE estimators, models and the f64 reference.
#![deny(unsafe_code)]

pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod conformance;
pub mod cost;
pub mod estimator;
pub mod expr;
pub mod generic_conformance;
pub mod jet;
pub mod mlp;
pub mod pde;
pub mod planner;
pub mod problem;
pub mod program;
pub mod reference;
pub mod report;
pub mod residual_gradient;
pub mod rng;
pub mod series;
pub mod shared;
pub mod step_plan;
pub mod train;
pub mod trainer;
pub mod variance;
