//! dialgate — a telephony dial-in gateway.
//!
//! Callers dial a provisioned number; a SIP/RTP user agent answers, plays
//! prompts, decodes the caller's keypad (RFC 4733 telephone-events and SIP
//! INFO) through a sans-IO IVR state machine, checks the access code against
//! the store and bridges authorised callers into the room's N-1 audio mix.
//!
//! Layers follow `DESIGN.md`: pure cores (`sip::transaction`, `ivr`, `dtmf`,
//! `conference::mixer`, `access`) take time as an argument; the thin async
//! shell (`gateway`) owns sockets, timers and the database.
// One `unsafe` block, on a measured hot path: `media::socket`.
#![deny(unsafe_code)]

pub mod access;
pub mod api;
pub mod cli;
pub mod conference;
pub mod config;
pub mod dtmf;
pub mod gateway;
pub mod ivr;
pub mod media;
pub mod provision;
pub mod replay;
pub mod sip;
pub mod store;
