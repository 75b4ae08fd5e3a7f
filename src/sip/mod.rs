//! SIP (RFC 3261) for a dial-in user agent server.
//!
//! - [`message`]: reading (our own grammar) and writing.
//! - [`transaction`]: §17 server and client transactions, timers as data.
//! - [`dialog`]: §12 dialogs, response and in-dialog request builders.
//! - [`endpoint`]: the sans-IO UA core tying them together.
//! - [`sdp`]: RFC 3264 offer/answer for the codecs of [`crate::media::payload`]
//!   and telephone-event.
//! - [`identity`]: who is calling (source, caller-ID), through trusted
//!   proxies or not.
//! - [`command`]: what a call asks of the endpoint's task.
//! - [`flood`]: per-source message limits, checked before parsing.
//! - [`transport`]: the async shell — UDP and TCP on one port.
//!
//! Left out for now: TLS, outgoing INVITEs, PRACK/100rel, authentication,
//! DNS (only IP-literal targets are followed; anything else goes back along
//! the flow the INVITE came on).

pub mod command;
pub mod dialog;
pub mod endpoint;
pub mod flood;
pub mod identity;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod transport;
