//! Who is calling, for lockouts and personal-code rejoin: for calls through
//! a trusted peer (a proxy or SBC in front, listed in `--trusted-peers`)
//! the source is the first untrusted Via (its `received`, else its sent-by
//! host) and the caller-ID is P-Asserted-Identity; otherwise the packet's
//! source and the From user — a P-Asserted-Identity from an untrusted source
//! is ignored, since anyone can write one.

use std::net::{IpAddr, SocketAddr};

use super::dialog::split_list;
use super::message::{param, uri_of, uri_user};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub caller_id: String,
    pub source_ip: IpAddr,
    /// For the attempt log: `ip:port` of the packet, or the Via's address.
    pub source: String,
}

fn via_host(via: &str) -> Option<IpAddr> {
    if let Some(received) = param(via, "received") {
        return received.trim_matches(['[', ']']).parse().ok();
    }
    let sent_by = via.split_whitespace().nth(1)?.split(';').next()?;
    if let Ok(sa) = sent_by.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let host = match sent_by.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !h.ends_with(':') => h,
        _ => sent_by,
    };
    host.trim_matches(['[', ']']).parse().ok()
}

pub fn identify(
    trusted: &[IpAddr],
    packet_source: SocketAddr,
    vias: &[String],
    p_asserted_identity: Option<&str>,
    from_user: &str,
) -> Identity {
    if !trusted.contains(&packet_source.ip()) {
        return Identity {
            caller_id: from_user.to_owned(),
            source_ip: packet_source.ip(),
            source: packet_source.to_string(),
        };
    }
    let first_untrusted = vias
        .iter()
        .flat_map(|v| split_list(v))
        .filter_map(via_host)
        .find(|ip| !trusted.contains(ip));
    let caller_id = p_asserted_identity
        .and_then(|p| uri_user(uri_of(p)).map(str::to_owned))
        .unwrap_or_else(|| from_user.to_owned());
    match first_untrusted {
        Some(ip) => Identity {
            caller_id,
            source_ip: ip,
            source: ip.to_string(),
        },
        None => Identity {
            caller_id,
            source_ip: packet_source.ip(),
            source: packet_source.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "10.0.0.1";

    fn vias() -> Vec<String> {
        vec![
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-p".to_owned(),
            "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-c;received=198.51.100.7;rport=4000"
                .to_owned(),
        ]
    }

    #[test]
    fn through_a_trusted_proxy_the_caller_is_pai_and_the_first_untrusted_via() {
        let id = identify(
            &[PROXY.parse().unwrap()],
            "10.0.0.1:5060".parse().unwrap(),
            &vias(),
            Some("<sip:+15551234@carrier.example>"),
            "proxyuser",
        );
        assert_eq!(id.caller_id, "+15551234");
        assert_eq!(id.source_ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn untrusted_sources_cannot_set_their_caller_id_with_pai() {
        let id = identify(
            &[PROXY.parse().unwrap()],
            "203.0.113.9:5060".parse().unwrap(),
            &vias(),
            Some("<sip:+15551234@forged>"),
            "mallory",
        );
        assert_eq!(id.caller_id, "mallory");
        assert_eq!(id.source, "203.0.113.9:5060");
    }

    #[test]
    fn via_hosts_read_received_then_sent_by() {
        assert_eq!(
            via_host("SIP/2.0/UDP [::1]:5060;branch=x"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            via_host("SIP/2.0/TCP 127.0.0.1;branch=x"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(via_host("SIP/2.0/UDP host.example:5060;branch=x"), None);
    }
}
