//! What the fuzz targets run, and where their first corpus comes from.
//!
//! Both files are also compiled into the gateway's own tests
//! (`tests/fuzz_inputs.rs`, by `#[path]`), which run every seed and every
//! kept finding through every target on each `cargo test`: a finding, once
//! fixed, stays fixed without a fuzzer.

pub mod seed;
pub mod targets;
