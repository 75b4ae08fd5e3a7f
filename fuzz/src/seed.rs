//! The first corpus of every target, taken from what the repository
//! already holds: RFC 4475's torture messages (`tests/data/rfc4475`) and
//! the recorded calls and keypad captures under `sip-fixtures/`.

use std::path::Path;

use dialgate::media::rtp;
use dialgate::sip::message;
use dialgate_replay::trace::{self, Datagram};

use crate::targets::put_chunk;

/// One seed input: the target it is for, a file name, the bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// How many datagrams of a call go into one stream seed (libFuzzer reads
/// the first 4 KiB of an input in any case).
const STREAM_PACKETS: usize = 60;

/// Every seed, from the repository at `repo`. Files that cannot be read
/// are an error: a seed corpus silently missing its inputs fuzzes nothing.
pub fn seeds(repo: &Path) -> Result<Vec<Seed>, String> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: String, bytes: Vec<u8>| {
        out.push(Seed {
            target,
            name,
            bytes,
        })
    };

    let torture = repo.join("tests/data/rfc4475");
    for path in sorted_files(&torture, "dat")? {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = stem(&path);
        let mut script = vec![0];
        put_chunk(&mut script, &bytes);
        add("sip_endpoint", format!("rfc4475-{name}"), script);
        sdp_seed(&bytes, &mut |b| add("sdp", format!("rfc4475-{name}"), b));
        add("sip_message", format!("rfc4475-{name}"), bytes);
    }

    let mut traces = sorted_files(&repo.join("sip-fixtures/traces"), "")?;
    traces.extend(sorted_files(&repo.join("sip-fixtures/pcap"), "pcap")?);
    for path in traces {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = stem(&path);
        let read = trace::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        add("trace", name.clone(), bytes);
        call_seeds(&name, &read.datagrams, &mut add);
    }
    Ok(out)
}

/// Seeds from one recorded call: each SIP message, the caller's side as an
/// endpoint script, SDP and INFO bodies, RTP and telephone-event streams.
fn call_seeds(
    name: &str,
    datagrams: &[Datagram],
    add: &mut impl FnMut(&'static str, String, Vec<u8>),
) {
    // The caller is whoever sends the first INVITE, its media what that
    // INVITE's SDP names; in a keypad capture (RTP alone), every packet is
    // the caller's.
    let invite = datagrams.iter().find(|d| d.payload.starts_with(b"INVITE "));
    let caller_sip = invite.map(|d| d.src);
    let caller_media = invite.and_then(|d| {
        let msg = message::parse(&d.payload).ok()?;
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        let port = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))?
            .split(' ')
            .next()?
            .parse::<u16>()
            .ok()?;
        Some(std::net::SocketAddr::new(d.src.ip(), port))
    });
    let mut endpoint = Vec::new();
    let mut media = Vec::new();
    let mut events = Vec::new();
    let mut previous = None;
    let (mut rtp_packets, mut event_packets) = (0, 0);
    let mut event_timestamp = None;
    for (i, d) in datagrams.iter().enumerate() {
        if trace::looks_like_sip(&d.payload) {
            let to_gateway = caller_sip.is_some_and(|c| d.src == c);
            add("sip_message", format!("{name}-{i}"), d.payload.clone());
            sdp_seed(&d.payload, &mut |b| add("sdp", format!("{name}-{i}"), b));
            if let Ok(msg) = message::parse(&d.payload)
                && d.payload.starts_with(b"INFO ")
            {
                let mut info = msg.content_type().unwrap_or_default().as_bytes().to_vec();
                info.push(b'\n');
                info.extend_from_slice(&msg.body);
                add("sip_info", format!("{name}-{i}"), info);
            }
            if to_gateway {
                // Time passes as it did, then the message; an INVITE is
                // answered 200.
                let gap = previous.map_or(0, |at| d.at.saturating_sub(at).as_millis() / 10);
                endpoint.extend([3, u8::try_from(gap).unwrap_or(u8::MAX), 0]);
                put_chunk(&mut endpoint, &d.payload);
                if d.payload.starts_with(b"INVITE ") {
                    endpoint.extend([4, 1]);
                }
                previous = Some(d.at);
            }
            continue;
        }
        // The caller's RTP, and its RTCP on the next port (or the same).
        let from_caller = caller_media.is_some_and(|m| {
            d.src.ip() == m.ip()
                && (d.src.port() == m.port() || m.port().checked_add(1) == Some(d.src.port()))
        });
        if invite.is_some() && !from_caller {
            continue;
        }
        if let Some(pt) = d.payload.get(1).map(|b| b & 0x7f)
            && (72..=76).contains(&pt)
        {
            // RTCP (RFC 5761 §4: packet types 200–204 with the M bit).
            add("rtcp", format!("{name}-{i}"), d.payload.clone());
            continue;
        }
        let Some((header, payload)) = rtp::read(&d.payload) else {
            continue;
        };
        if rtp_packets < STREAM_PACKETS {
            media.push(0);
            put_chunk(&mut media, &d.payload);
            media.push(2);
            rtp_packets += 1;
        }
        if header.payload_type == rtp::PayloadType(101) && event_packets < STREAM_PACKETS {
            if event_packets == 0 {
                add("rfc4733", format!("{name}-{i}"), payload.to_vec());
            }
            // 20 ms on; the timestamp moves (a new press) as it did.
            let jump = match event_timestamp {
                Some(previous) if previous != header.timestamp => {
                    let presses = header.timestamp.wrapping_sub(previous) / 160;
                    0x80 | u8::try_from(presses.min(0x7f)).unwrap_or(0x7f)
                }
                _ => 0,
            };
            event_timestamp = Some(header.timestamp);
            events.extend([4, jump, u8::from(header.marker)]);
            events.extend(payload.iter().take(4));
            event_packets += 1;
        }
    }
    if !endpoint.is_empty() {
        add("sip_endpoint", name.to_owned(), endpoint);
    }
    if !media.is_empty() {
        add("rtp", name.to_owned(), media);
    }
    if !events.is_empty() {
        add("rfc4733", format!("{name}-stream"), events);
    }
}

/// The body of a message that carries SDP.
fn sdp_seed(bytes: &[u8], add: &mut impl FnMut(Vec<u8>)) {
    if let Ok(msg) = message::parse(bytes)
        && msg
            .content_type()
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/sdp"))
        && !msg.body.is_empty()
    {
        add(msg.body);
    }
}

/// Files in `dir` ending in `.ext` (any file for an empty `ext`), by name.
fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<std::path::PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| ext.is_empty() || p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no input files", dir.display()));
    }
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
