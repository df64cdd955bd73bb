//! stde-core: jets, adjoints, the mixed-partial planner, STDE estimators, models and the f64 reference.
#![forbid(unsafe_code)]

pub mod series;
