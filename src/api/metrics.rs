//! Prometheus metrics: one process-wide recorder, rendered at `/metrics`.
//!
//! Names: `dialgate_calls_active{state}` (gauge, set from the live-call
//! list at scrape time), `dialgate_calls_total{outcome}`,
//! `dialgate_attempts_total{stage,outcome}`, `dialgate_dtmf_digits_total{source}`,
//! `dialgate_rtp_packets_total{direction}`, `dialgate_rtp_packets_lost_total`
//! (RFC 3550 A.3: expected − received),
//! `dialgate_jitter_frames_total{event}` (lost, late, duplicate,
//! drift_drop, underrun, fec_recovered; added when a caller leaves its room), `dialgate_mixer_tick_seconds` and
//! `dialgate_db_query_seconds{op}` (histograms; `op` is the call path's
//! query: `number` (the dialled number's route with the caller's failure
//! counts, before answering), `failures` (the counts again when a code is
//! checked, with the settings of the room a right code opens), `resolve`,
//! `invitee`, `record_attempt` — one batch of the attempt log's writer —
//! and `wal_checkpoint` on SQLite), `dialgate_calls_shed_total{reason}`
//! (`max_calls`, `attempt_log`, `loop_lag`, `store`, `store_latency`:
//! refused with 503 before answering), `dialgate_store_latency_seconds`, `dialgate_attempt_log_backlog`, `dialgate_attempt_rows_written_total`,
//! `dialgate_event_loop_lag_seconds`, `dialgate_calls_in_progress`,
//! `dialgate_admission_seconds{stage}` (histogram: the key that completed a
//! code → the IVR's verdict on it, lookups and lockout counts included).
//! Codes never appear in labels.

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
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("dialgate_db_query_seconds".into()),
                    &[
                        0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                    ],
                )
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("dialgate_admission_seconds".into()),
                    &[
                        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
                    ],
                )
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "dialgate_rtcp_fraction_lost".into(),
                    ),
                    &[0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
                )
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "dialgate_rtcp_jitter_seconds".into(),
                    ),
                    &[0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2],
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .clone()
}
