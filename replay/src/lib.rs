//! dialgate's load tool (`dialgate-replay`, also `dialgate replay`):
//! recorded calls read from traces, rewritten per virtual call and played
//! against a gateway at a rate, and the caller side synthesised when a test
//! needs one. A crate of its own, over the server's library (`dialgate`'s
//! SIP, RTP, DTMF and refusal causes): the server links none of it.
//!
//! - [`trace`]: pcap, pcapng and text captures as timed datagrams.
//! - [`script`]: the caller's side of one call, and other codes keyed in it.
//! - [`rewrite`]: a fresh identity per virtual call, messages rewritten to it.
//! - [`engine`]: virtual calls at a rate against a target; [`report`] sums them.
//! - [`codes`]: the `--codes` CSV; [`net`]: UDP, or memory for tests.
//! - [`synth`] and [`pcap`]: keyed codes as RTP and pcap files; [`fixture`]
//!   writes them (`dialgate-replay fixture`).
//! - [`command`]: the command line of a replay.

// Nothing a gateway sends may panic the tool: no `unwrap`/`expect`
// outside tests (CI's clippy checks both).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod codes;
pub mod command;
pub mod engine;
pub mod fixture;
pub mod net;
pub mod pcap;
pub mod report;
pub mod rewrite;
pub mod script;
pub mod synth;
pub mod trace;
