//! dialgate — a telephony dial-in gateway.
//!
//! Callers dial a provisioned number; a SIP/RTP user agent answers, plays
//! prompts, decodes the caller's keypad (RFC 4733 telephone-events, SIP INFO
//! and in-band tones) through a sans-IO IVR state machine, checks the access code against
//! the store and bridges authorised callers into the room's N-1 audio mix.
//!
//! Pure cores (`sip::transaction`, `sip::endpoint`, `ivr`, `dtmf`, the
//! mixer, the rules of `access`, the call's control) take time as an
//! argument; the thin
//! async shell (`gateway`) owns sockets, timers and the database. Layers
//! only point down, from `os`, `media` and `store` at the bottom to the
//! shell and the command line on top; `tests/layers.rs` holds the order
//! and fails when an arrow runs back up. `ARCHITECTURE.md` draws one call
//! through the modules.
// One `unsafe` block, on a measured hot path: `media::socket`.
#![deny(unsafe_code)]
// Nothing from the network, the store or an operator may panic the
// gateway: no `unwrap`/`expect` outside tests (tests may; CI's clippy
// checks both).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod api;
pub mod cause;
pub mod cli;
pub mod conference;
pub mod config;
pub mod dtmf;
pub mod gateway;
pub mod ids;
pub mod ivr;
pub mod live;
pub mod media;
mod os;
pub mod provision;
pub mod sip;
pub mod store;
