//! What a replay run saw: per call an [`Ending`], summed into a [`Report`]
//! with latency histograms (HdrHistogram, microseconds), printed as text
//! or JSON.
//!
//! A call is *answered* when its INVITE got a 2xx. It is then *admitted*
//! when the gateway reported the outcome `admitted` (the `dialgate-outcome`
//! Info Package) and did not refuse it later (a full room); *refused* when
//! the gateway's last word on it was a refusal — a BYE with a `Reason`, or
//! a refused attempt before the caller hung up — by cause; *abandoned* when
//! the caller hung up before any verdict, as the trace did. A *failed* call
//! is one the replay could not play through, by cause: no answer, an error
//! status the trace did not have, a transaction that timed out, a gateway
//! that never hung up where the trace's did, the run's time running out.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// How one virtual call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    Refused(String),
    Abandoned,
    Failed(String),
}

/// One call's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    pub verdict: Verdict,
    pub answered: bool,
    /// INVITE sent → 2xx received.
    pub setup: Option<Duration>,
    /// The last key of the code sent → `admitted` received.
    pub admission: Option<Duration>,
    /// Requests we sent again (no answer in time).
    pub retransmitted: u64,
    /// Requests and 2xx the gateway sent again (it missed our answer or ACK).
    pub retransmissions_received: u64,
    /// Where the gateway's answers differed from the trace's (one line each).
    pub differences: Vec<String>,
    pub rtp_sent: u64,
    pub rtp_received: u64,
}

impl Ending {
    pub fn new() -> Ending {
        Ending {
            verdict: Verdict::Abandoned,
            answered: false,
            setup: None,
            admission: None,
            retransmitted: 0,
            retransmissions_received: 0,
            differences: Vec::new(),
            rtp_sent: 0,
            rtp_received: 0,
        }
    }
}

impl Default for Ending {
    fn default() -> Self {
        Ending::new()
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The sum of a run.
pub struct Report {
    pub attempted: u64,
    pub answered: u64,
    pub admitted: u64,
    pub refused: BTreeMap<String, u64>,
    pub abandoned: u64,
    pub failed: BTreeMap<String, u64>,
    pub retransmitted: u64,
    pub retransmissions_received: u64,
    pub differences: BTreeMap<String, u64>,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    setup: Histogram<u64>,
    admission: Histogram<u64>,
    /// From the first INVITE to the last call's end.
    pub elapsed: Duration,
    /// From the first INVITE to the last.
    pub launching: Duration,
}

/// The report as printed by `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub attempted: u64,
    pub answered: u64,
    pub admitted: u64,
    pub refused: u64,
    pub refused_by_cause: BTreeMap<String, u64>,
    pub abandoned: u64,
    pub failed: u64,
    pub failed_by_cause: BTreeMap<String, u64>,
    /// Calls started per second while starting them.
    pub cps: f64,
    pub elapsed_s: f64,
    pub setup_latency: Latency,
    pub admission_latency: Latency,
    pub retransmissions_sent: u64,
    pub retransmissions_received: u64,
    pub differences_from_trace: BTreeMap<String, u64>,
    pub rtp_packets_sent: u64,
    pub rtp_packets_received: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant figures. Bounds are constants that
    // hdrhistogram accepts; the fallback is never taken.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

impl Report {
    pub fn new() -> Report {
        Report {
            attempted: 0,
            answered: 0,
            admitted: 0,
            refused: BTreeMap::new(),
            abandoned: 0,
            failed: BTreeMap::new(),
            retransmitted: 0,
            retransmissions_received: 0,
            differences: BTreeMap::new(),
            rtp_sent: 0,
            rtp_received: 0,
            setup: histogram(),
            admission: histogram(),
            elapsed: Duration::ZERO,
            launching: Duration::ZERO,
        }
    }

    pub fn add(&mut self, e: &Ending) {
        self.attempted += 1;
        self.answered += u64::from(e.answered);
        match &e.verdict {
            Verdict::Admitted => self.admitted += 1,
            Verdict::Refused(cause) => *self.refused.entry(cause.clone()).or_default() += 1,
            Verdict::Abandoned => self.abandoned += 1,
            Verdict::Failed(cause) => *self.failed.entry(cause.clone()).or_default() += 1,
        }
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Some(d) = e.setup {
            self.setup.saturating_record(us(d));
        }
        if let Some(d) = e.admission {
            self.admission.saturating_record(us(d));
        }
        self.retransmitted += e.retransmitted;
        self.retransmissions_received += e.retransmissions_received;
        for d in &e.differences {
            *self.differences.entry(d.clone()).or_default() += 1;
        }
        self.rtp_sent += e.rtp_sent;
        self.rtp_received += e.rtp_received;
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn summary(&self) -> Summary {
        let launching = self.launching.as_secs_f64();
        Summary {
            attempted: self.attempted,
            answered: self.answered,
            admitted: self.admitted,
            refused: self.refused_total(),
            refused_by_cause: self.refused.clone(),
            abandoned: self.abandoned,
            failed: self.failed_total(),
            failed_by_cause: self.failed.clone(),
            cps: if launching > 0.0 {
                (self.attempted.saturating_sub(1)) as f64 / launching
            } else {
                0.0
            },
            elapsed_s: self.elapsed.as_secs_f64(),
            setup_latency: latency(&self.setup),
            admission_latency: latency(&self.admission),
            retransmissions_sent: self.retransmitted,
            retransmissions_received: self.retransmissions_received,
            differences_from_trace: self.differences.clone(),
            rtp_packets_sent: self.rtp_sent,
            rtp_packets_received: self.rtp_received,
        }
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let s = self.summary();
        let causes = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!(" ({})", parts.join(", "))
            }
        };
        let lat = |l: &Latency| {
            if l.count == 0 {
                "-".to_owned()
            } else {
                format!(
                    "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} calls)",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
                )
            }
        };
        let mut out = String::new();
        out.push_str(&format!("calls attempted    {}\n", s.attempted));
        out.push_str(&format!("  answered         {}\n", s.answered));
        out.push_str(&format!("  admitted         {}\n", s.admitted));
        out.push_str(&format!(
            "  refused          {}{}\n",
            s.refused,
            causes(&s.refused_by_cause)
        ));
        out.push_str(&format!("  abandoned        {}\n", s.abandoned));
        out.push_str(&format!(
            "  failed           {}{}\n",
            s.failed,
            causes(&s.failed_by_cause)
        ));
        out.push_str(&format!("calls per second   {:.1}\n", s.cps));
        out.push_str(&format!("elapsed            {:.1} s\n", s.elapsed_s));
        out.push_str(&format!("setup latency      {}\n", lat(&s.setup_latency)));
        out.push_str(&format!(
            "admission latency  {}\n",
            lat(&s.admission_latency)
        ));
        out.push_str(&format!(
            "retransmissions    {} sent, {} received\n",
            s.retransmissions_sent, s.retransmissions_received
        ));
        out.push_str(&format!(
            "RTP packets        {} sent, {} received\n",
            s.rtp_packets_sent, s.rtp_packets_received
        ));
        if !s.differences_from_trace.is_empty() {
            out.push_str("differences from the trace:\n");
            for (what, n) in &s.differences_from_trace {
                out.push_str(&format!("  {n} × {what}\n"));
            }
        }
        out
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(verdict: Verdict, setup_ms: u64) -> Ending {
        Ending {
            verdict,
            answered: true,
            setup: Some(Duration::from_millis(setup_ms)),
            ..Ending::new()
        }
    }

    #[test]
    fn counts_and_percentiles_add_up() {
        let mut r = Report::new();
        for ms in 1..=100 {
            r.add(&ending(Verdict::Admitted, ms));
        }
        r.add(&ending(Verdict::Refused("wrong".into()), 5));
        r.add(&ending(Verdict::Refused("wrong".into()), 5));
        r.add(&Ending {
            verdict: Verdict::Failed("no_answer".into()),
            ..Ending::new()
        });
        r.launching = Duration::from_secs(2);
        let s = r.summary();
        assert_eq!(s.attempted, 103);
        assert_eq!(s.answered, 102);
        assert_eq!(s.admitted, 100);
        assert_eq!(s.refused, 2);
        assert_eq!(s.refused_by_cause["wrong"], 2);
        assert_eq!(s.failed_by_cause["no_answer"], 1);
        assert_eq!(s.setup_latency.count, 102);
        assert!((s.setup_latency.p50_ms - 49.0).abs() < 1.0, "{s:?}");
        assert!((s.setup_latency.max_ms - 100.0).abs() < 0.2, "{s:?}");
        assert!((s.cps - 51.0).abs() < 1e-9);
        let text = r.text();
        assert!(text.contains("refused          2 (wrong 2)"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["failed_by_cause"]["no_answer"], 1);
    }
}
