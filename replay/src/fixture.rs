//! `dialgate-replay fixture`: what a caller sends, as files SIPp and the
//! tests play — a keyed code as an RTP pcap, a capture's SIP as a text trace.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum FixtureCommand {
    /// A pcap of RTP keying CODE: RFC 4733 telephone-events between G.711 silence, in-band tones, or both.
    KeypadPcap {
        /// Keys to press, e.g. 123456789#
        #[arg(long)]
        code: String,
        /// Output file
        #[arg(long)]
        out: std::path::PathBuf,
        /// telephone-event payload type
        #[arg(long, default_value_t = 101)]
        event_payload_type: u8,
        /// How long each key is held, e.g. 100ms
        #[arg(long, default_value = "100ms")]
        press: String,
        /// How the keys are sent: `rfc4733` (events), `inband` (tones in the G.711 audio) or `both`
        #[arg(long, default_value = "rfc4733")]
        signal: String,
    },
    /// A capture's SIP messages as a text trace (`U DATE TIME SRC -> DST` then the message).
    TraceText {
        /// pcap or pcapng file
        capture: std::path::PathBuf,
        /// Output file
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

/// Writes a fixture file.
pub fn run(command: FixtureCommand) -> ExitCode {
    let (code, out, event_payload_type, press, signal) = match command {
        FixtureCommand::KeypadPcap {
            code,
            out,
            event_payload_type,
            press,
            signal,
        } => (code, out, event_payload_type, press, signal),
        FixtureCommand::TraceText { capture, out } => return trace_text(&capture, &out),
    };
    let press = match dialgate::config::parse_duration(&press) {
        Ok(p) if !p.is_zero() => p,
        _ => {
            eprintln!("error: invalid press: use a duration such as 100ms");
            return ExitCode::from(2);
        }
    };
    let Some(signal) = crate::synth::Signal::parse(&signal) else {
        eprintln!("error: invalid signal: use rfc4733, inband or both");
        return ExitCode::from(2);
    };
    let keying = crate::synth::Keying {
        signal,
        event_payload_type,
        press,
        ..Default::default()
    };
    let packets = match crate::synth::keyed_code(&code, &keying) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: invalid code: {e}");
            return ExitCode::from(2);
        }
    };
    let file = match std::fs::File::create(&out) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("error: cannot create {}: {e}", out.display());
            return ExitCode::from(1);
        }
    };
    let src = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 40_000);
    let dst = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 20_000);
    match crate::pcap::write_udp(file, src, dst, 1_700_000_000, &packets) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

/// Writes the SIP of a capture as a text trace, timed from its own start.
fn trace_text(capture: &std::path::Path, out: &std::path::Path) -> ExitCode {
    let trace = match crate::trace::read(capture) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let start = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .unwrap_or_default()
        .naive_utc();
    match std::fs::write(out, crate::trace::to_text(&trace, start)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}
