//! The load tool's parts: recorded calls read from traces, rewritten per
//! virtual call, and the caller side synthesised when a test needs one.
//!
//! - [`trace`]: pcap, pcapng and text captures as timed datagrams.
//! - [`script`]: the caller's side of one call, and other codes keyed in it.
//! - [`rewrite`]: a fresh identity per virtual call, messages rewritten to it.
//! - [`engine`]: virtual calls at a rate against a target; [`report`] sums them.
//! - [`codes`]: the `--codes` CSV.
//! - [`synth`] and [`pcap`]: keyed codes as RTP and pcap files (fixtures).

pub mod codes;
pub mod command;
pub mod engine;
pub mod pcap;
pub mod report;
pub mod rewrite;
pub mod script;
pub mod synth;
pub mod trace;
