//! Tests for `config`.

use super::*;

#[test]
fn durations_in_the_house_format() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("5x").is_err());
}

#[test]
fn defaults_resolve() {
    let s = ServeOptions::default().resolve().unwrap();
    assert_eq!(s.sip_listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(s.rtp_ports, (20000, 29999));
    assert_eq!(s.ivr.first_digit_timeout, Duration::from_secs(10));
    assert_eq!(s.ivr.inter_digit_timeout, Duration::from_secs(5));
    assert_eq!(s.ivr.max_attempts, 3);
    assert_eq!(s.drain_timeout, Duration::from_secs(60));
    let no_drain = ServeOptions {
        drain_timeout: Some("0s".into()),
        ..ServeOptions::default()
    };
    assert_eq!(no_drain.resolve().unwrap().drain_timeout, Duration::ZERO);
}

#[test]
fn flags_win_over_the_file() {
    let file: ServeOptions =
        toml::from_str("sip-listen = \"127.0.0.1:5099\"\nmax-attempts = 5\n").unwrap();
    let flags = ServeOptions {
        max_attempts: Some(2),
        ..ServeOptions::default()
    };
    let s = flags.over(file).resolve().unwrap();
    assert_eq!(s.sip_listen.port(), 5099);
    assert_eq!(s.ivr.max_attempts, 2);
}

#[test]
fn unknown_toml_key_and_bad_values_are_errors() {
    assert!(toml::from_str::<ServeOptions>("sip-lissen = \"x\"").is_err());
    let bad = ServeOptions {
        rtp_ports: Some("30000-20000".into()),
        ..ServeOptions::default()
    };
    assert!(matches!(
        bad.resolve(),
        Err(ConfigError::Invalid {
            key: "rtp-ports",
            ..
        })
    ));
    let wild = ServeOptions {
        sip_listen: Some("0.0.0.0:5060".into()),
        ..ServeOptions::default()
    };
    assert!(matches!(
        wild.resolve(),
        Err(ConfigError::Invalid {
            key: "advertise",
            ..
        })
    ));
    let peers = ServeOptions {
        trusted_peers: Some("10.0.0.1, ::1".into()),
        ..ServeOptions::default()
    };
    assert_eq!(peers.resolve().unwrap().trusted_peers.len(), 2);
    let bad_peers = ServeOptions {
        trusted_peers: Some("kamailio.local".into()),
        ..ServeOptions::default()
    };
    assert!(matches!(
        bad_peers.resolve(),
        Err(ConfigError::Invalid {
            key: "trusted-peers",
            ..
        })
    ));
}

#[test]
fn flood_and_tcp_limits_have_defaults_and_refuse_zeros() {
    let settings = ServeOptions::default().resolve().unwrap();
    assert_eq!(settings.sip_source_rate.per_second, DEFAULT_SIP_SOURCE_RATE);
    assert_eq!(settings.sip_tcp.idle, Duration::from_secs(120));
    assert_eq!(settings.sip_tcp.message_within, Duration::from_secs(5));
    assert_eq!(settings.sip_tcp.per_source, 32);
    assert!((16..=10_000).contains(&settings.sip_tcp.max_connections));
    let off = ServeOptions {
        sip_source_rate: Some(0),
        ..ServeOptions::default()
    };
    assert_eq!(off.resolve().unwrap().sip_source_rate.per_second, 0);
    let refused = |opts: ServeOptions, want: &str| {
        assert!(
            matches!(opts.resolve(), Err(ConfigError::Invalid { key, .. }) if key == want),
            "{want}"
        );
    };
    refused(
        ServeOptions {
            sip_tcp_idle: Some("0s".into()),
            ..ServeOptions::default()
        },
        "sip-tcp-idle",
    );
    refused(
        ServeOptions {
            sip_tcp_message_timeout: Some("soon".into()),
            ..ServeOptions::default()
        },
        "sip-tcp-message-timeout",
    );
    refused(
        ServeOptions {
            sip_tcp_per_source: Some(0),
            ..ServeOptions::default()
        },
        "sip-tcp-per-source",
    );
    refused(
        ServeOptions {
            sip_tcp_max_connections: Some(0),
            ..ServeOptions::default()
        },
        "sip-tcp-max-connections",
    );
}

#[test]
fn codec_list_is_an_ordered_set_of_known_names() {
    let with = |codecs: &str| {
        ServeOptions {
            codecs: Some(codecs.to_owned()),
            ..ServeOptions::default()
        }
        .resolve()
    };
    assert_eq!(
        with("PCMA, opus").map(|s| s.codecs).ok(),
        Some(vec![Codec::Pcma, Codec::Opus])
    );
    assert_eq!(
        ServeOptions::default().resolve().map(|s| s.codecs).ok(),
        Some(ALL_CODECS.to_vec())
    );
    assert!(with("pcmu,pcmu").is_err());
    assert!(with("gsm").is_err());
    assert!(with(" , ").is_err());
}

#[test]
fn rtp_timeout_defaults_to_a_minute_and_0s_turns_it_off() {
    let with = |t: Option<&str>| {
        ServeOptions {
            rtp_timeout: t.map(str::to_owned),
            ..ServeOptions::default()
        }
        .resolve()
        .map(|s| s.rtp_timeout)
        .ok()
    };
    assert_eq!(with(None), Some(Some(Duration::from_secs(60))));
    assert_eq!(with(Some("0s")), Some(None));
    assert_eq!(with(Some("90s")), Some(Some(Duration::from_secs(90))));
    assert_eq!(with(Some("soon")), None);
}

#[test]
fn dtmf_mode_defaults_to_auto_and_refuses_other_words() {
    use crate::dtmf::InbandMode;
    let with = |m: Option<&str>| {
        ServeOptions {
            dtmf_mode: m.map(str::to_owned),
            ..ServeOptions::default()
        }
        .resolve()
        .map(|s| s.dtmf_mode)
    };
    assert_eq!(with(None).ok(), Some(InbandMode::Auto));
    assert_eq!(with(Some("inband")).ok(), Some(InbandMode::Inband));
    assert_eq!(with(Some("never")).ok(), Some(InbandMode::Never));
    let err = with(Some("always")).expect_err("not a mode").to_string();
    assert!(err.contains("dtmf-mode"), "{err}");
}

#[test]
fn durations_that_would_overflow_the_clock_are_refused() {
    assert!(parse_duration("18446744073709551615s1s").is_err());
    assert!(parse_duration("1000000000000h").is_err());
    assert!(parse_duration("87600h").is_ok(), "10 years is the limit");
}

#[test]
fn node_id_is_checked_and_defaults_to_the_host_name() {
    let given = |id: &str| {
        ServeOptions {
            node_id: Some(id.into()),
            ..ServeOptions::default()
        }
        .resolve()
    };
    assert_eq!(given("edge-a.eu_1").unwrap().node_id, "edge-a.eu_1");
    for bad in ["", "edge a", "edge/a", "ü", &"x".repeat(65)] {
        assert!(
            matches!(given(bad), Err(ConfigError::Invalid { key: "node-id", .. })),
            "{bad:?}"
        );
    }
    let default = ServeOptions::default().resolve().unwrap().node_id;
    assert!(check_node_id(&default).is_ok(), "{default:?}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("Linux host name");
    assert!(
        host.trim().starts_with(&default),
        "{default:?} from {host:?}"
    );
}
