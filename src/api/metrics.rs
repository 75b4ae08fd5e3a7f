//! Prometheus metrics: one process-wide recorder, rendered at `/metrics`.
//!
//! Names: `dialgate_calls_active{state}` (gauge, set from the live-call
//! list at scrape time), `dialgate_calls_total{outcome}`,
//! `dialgate_attempts_total{stage,outcome}`, `dialgate_dtmf_digits_total{source}`,
//! `dialgate_rtp_packets_total{direction}`, `dialgate_mixer_tick_seconds`
//! (histogram). Codes never appear in labels.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process; `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "dialgate_mixer_tick_seconds".into(),
                    ),
                    &[
                        0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.02,
                    ],
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .clone()
}
