//! The caller side of calls, synthesised: what a phone sends when its user
//! keys a code, as timed RTP packets, and as pcap files SIPp can play.
//!
//! The load tool (issue 6) grows here: trace reading, per-call rewriting and
//! the replay engine. Today it serves the test caller and `sip-fixtures/`.

pub mod pcap;
pub mod synth;
