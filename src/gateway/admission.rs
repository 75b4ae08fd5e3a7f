//! Overload refusal: whether the gateway takes one more call, decided before
//! anything is answered.
//!
//! A call the gateway cannot serve gets `503 Service Unavailable` with
//! `Retry-After` before any 200 OK, never an answer and then starvation.
//! Three signals, each cheap to read on every INVITE:
//! - calls in progress at `--max-calls`;
//! - the attempt log's writer behind (its backlog past its limit): taking
//!   more calls would mean queueing rows without end;
//! - the event loop late: the runtime's scheduling lag (a 20 ms probe's
//!   lateness, smoothed) past `--max-loop-lag`, the sign that the CPU is
//!   saturated and every call's media is about to suffer.
//!
//! While any holds, OPTIONS is answered 503 too, so a dispatcher in front
//! (Kamailio) sends new calls to another node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::store::AttemptLog;

/// What `Retry-After` says on a refusal, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why a call was refused before answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// `--max-calls` calls in progress.
    Calls,
    /// The attempt log's writer is behind.
    AttemptLog,
    /// The event loop runs late (CPU saturated).
    LoopLag,
    /// The store did not answer in time.
    Store,
}

impl Shed {
    /// The `reason` label of `dialgate_calls_shed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Calls => "max_calls",
            Shed::AttemptLog => "attempt_log",
            Shed::LoopLag => "loop_lag",
            Shed::Store => "store",
        }
    }
}

pub struct Admission {
    max_calls: usize,
    max_lag: Duration,
    calls: AtomicUsize,
    /// Smoothed event-loop lag, in microseconds.
    lag_us: AtomicU64,
    attempts: AttemptLog,
}

/// One call's place; dropping it frees the place.
#[must_use = "the call's place is freed when this is dropped"]
pub struct CallSlot(Arc<Admission>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max_calls: usize, max_lag: Duration, attempts: AttemptLog) -> Arc<Admission> {
        Arc::new(Admission {
            max_calls,
            max_lag,
            calls: AtomicUsize::new(0),
            lag_us: AtomicU64::new(0),
            attempts,
        })
    }

    /// Calls holding a place now.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Acquire)
    }

    /// The smoothed event-loop lag.
    pub fn loop_lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    /// Why the gateway refuses new calls now, if it does.
    pub fn shedding(&self) -> Option<Shed> {
        if self.calls() >= self.max_calls {
            Some(Shed::Calls)
        } else if self.attempts.behind() {
            Some(Shed::AttemptLog)
        } else if !self.max_lag.is_zero() && self.loop_lag() > self.max_lag {
            Some(Shed::LoopLag)
        } else {
            None
        }
    }

    /// A place for one more call, or why there is none.
    pub fn admit(self: &Arc<Self>) -> Result<CallSlot, Shed> {
        if let Some(why) = self.shedding() {
            return Err(why);
        }
        // Checked then taken without a race: the one endpoint task admits.
        self.calls.fetch_add(1, Ordering::AcqRel);
        Ok(CallSlot(self.clone()))
    }

    /// Counts a refusal in the metrics.
    pub fn count_shed(why: Shed) {
        metrics::counter!("dialgate_calls_shed_total", "reason" => why.as_str()).increment(1);
    }

    /// Measures the event loop's lag for ever: a 20 ms timer's lateness,
    /// smoothed over about a second (new = 7/8 old + 1/8 sample).
    pub async fn watch_loop_lag(self: Arc<Self>) {
        const PERIOD: Duration = Duration::from_millis(20);
        let mut next = tokio::time::Instant::now() + PERIOD;
        loop {
            tokio::time::sleep_until(next).await;
            let now = tokio::time::Instant::now();
            let late = now.saturating_duration_since(next).as_micros();
            let late = u64::try_from(late).unwrap_or(u64::MAX);
            let old = self.lag_us.load(Ordering::Relaxed);
            let smoothed = old - old / 8 + late / 8;
            self.lag_us.store(smoothed, Ordering::Relaxed);
            metrics::gauge!("dialgate_event_loop_lag_seconds").set(smoothed as f64 / 1e6);
            metrics::gauge!("dialgate_calls_in_progress").set(self.calls() as f64);
            next = now + PERIOD;
        }
    }
}
