//! Per-source message limits in front of the SIP endpoint, sans-IO.
//!
//! Every SIP message (a UDP datagram or a framed TCP message) from a source
//! IP takes a token from that source's bucket, checked before the message
//! is copied or parsed; a source whose bucket is empty has its messages
//! dropped, unanswered, so a flood costs the sender and draws no reflected
//! traffic. The proxies and trunks in front (`--trusted-peers`) carry
//! everyone's calls and are never limited.
//!
//! A source that starts being limited is an episode: [`SourceLimit::check`]
//! says when one begins, [`SourceLimit::sweep`] when it has ended (the
//! source's bucket refilled), with what was dropped, for the operator's log.
//!
//! The table of sources is bounded: past [`MAX_SOURCES`] the sweep forgets
//! sources whose buckets are full again, and a source that finds the table
//! full of busy ones is let through untracked (a flood of forged source
//! addresses is beyond what a per-source limit can stop).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources tracked at most.
pub const MAX_SOURCES: usize = 65_536;

/// How often a source still over its rate is reported again.
pub const REPEAT: Duration = Duration::from_secs(10);

/// How much each source may send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Messages per second, sustained; 0 turns the limit off.
    pub per_second: u32,
    /// Messages a quiet source may send at once.
    pub burst: u32,
}

/// What to do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Drop it: the source is over its rate.
    Drop,
    /// Drop it, and log it: the source's first drop since it was last
    /// under its rate, or [`REPEAT`] since it was last logged.
    DropFirst,
}

/// A source that was limited and is under its rate again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    pub source: IpAddr,
    pub dropped: u64,
    /// From the first drop to the last.
    pub lasted: Duration,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The episode under way: first drop, last drop, drops.
    limited: Option<(Instant, Instant, u64)>,
    /// When the episode was last reported ([`Verdict::DropFirst`]).
    told: Instant,
}

#[derive(Debug)]
pub struct SourceLimit {
    rate: Rate,
    exempt: Vec<IpAddr>,
    sources: HashMap<IpAddr, Bucket>,
    max_sources: usize,
    /// When a full table was last swept for room.
    swept: Option<Instant>,
}

impl SourceLimit {
    pub fn new(rate: Rate, exempt: Vec<IpAddr>) -> SourceLimit {
        SourceLimit::with_capacity(rate, exempt, MAX_SOURCES)
    }

    /// Whether `source` is never limited (a trusted peer).
    pub fn exempt(&self, source: IpAddr) -> bool {
        self.exempt.contains(&source.to_canonical())
    }

    fn with_capacity(rate: Rate, exempt: Vec<IpAddr>, max_sources: usize) -> SourceLimit {
        SourceLimit {
            rate,
            exempt: exempt.into_iter().map(|ip| ip.to_canonical()).collect(),
            sources: HashMap::new(),
            max_sources,
            swept: None,
        }
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Takes a token for one message from `source`.
    pub fn check(&mut self, now: Instant, source: IpAddr) -> Verdict {
        // An IPv4 peer on a dual-stack socket is the same peer.
        let source = source.to_canonical();
        let Rate { per_second, burst } = self.rate;
        if per_second == 0 || self.exempt.contains(&source) {
            return Verdict::Pass;
        }
        let full = f64::from(burst.max(1));
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            // A full table is swept at most once a refill, not per packet:
            // a sweep walks every source.
            if self
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= self.refill_time())
            {
                self.swept = Some(now);
                self.forget_idle(now);
            }
            if self.sources.len() >= self.max_sources {
                return Verdict::Pass;
            }
        }
        let bucket = self.sources.entry(source).or_insert(Bucket {
            tokens: full,
            at: now,
            limited: None,
            told: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(per_second)).min(full);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Pass;
        }
        match &mut bucket.limited {
            Some((_, last, dropped)) => {
                *last = now;
                *dropped += 1;
                // A long flood is told again every REPEAT, so a log
                // watcher counting lines sees it go on.
                if now.saturating_duration_since(bucket.told) >= REPEAT {
                    bucket.told = now;
                    Verdict::DropFirst
                } else {
                    Verdict::Drop
                }
            }
            None => {
                bucket.limited = Some((now, now, 1));
                bucket.told = now;
                Verdict::DropFirst
            }
        }
    }

    /// Ends the episodes of sources back under their rate (their buckets
    /// full again) and forgets quiet sources past the table's bound.
    /// Call it about once a second.
    pub fn sweep(&mut self, now: Instant) -> Vec<Episode> {
        let mut ended = Vec::new();
        let refill = self.refill_time();
        for (source, bucket) in &mut self.sources {
            if let Some((first, last, dropped)) = bucket.limited
                && now.saturating_duration_since(last) >= refill
            {
                bucket.limited = None;
                ended.push(Episode {
                    source: *source,
                    dropped,
                    lasted: last - first,
                });
            }
        }
        // Forget the quiet ones now and then, so the table follows traffic.
        if self.sources.len() > self.max_sources / 2 {
            self.forget_idle(now);
        }
        ended.sort_by_key(|e| e.source);
        ended
    }

    /// How long an empty bucket takes to fill.
    fn refill_time(&self) -> Duration {
        let Rate { per_second, burst } = self.rate;
        if per_second == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(f64::from(burst.max(1)) / f64::from(per_second))
    }

    /// Drops the buckets that would be full by now and have no episode
    /// under way: forgetting them changes nothing.
    fn forget_idle(&mut self, now: Instant) {
        let refill = self.refill_time();
        self.sources
            .retain(|_, b| b.limited.is_some() || now.saturating_duration_since(b.at) < refill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const RATE: Rate = Rate {
        per_second: 100,
        burst: 20,
    };

    /// Messages from `source`, `n` of them `gap` apart from `t`; returns
    /// how many passed and the time after the last.
    fn send(
        limit: &mut SourceLimit,
        source: IpAddr,
        t: Instant,
        n: u32,
        gap: Duration,
    ) -> (u32, Vec<Verdict>, Instant) {
        let mut passed = 0;
        let mut verdicts = Vec::new();
        let mut now = t;
        for _ in 0..n {
            let v = limit.check(now, source);
            if v == Verdict::Pass {
                passed += 1;
            }
            verdicts.push(v);
            now += gap;
        }
        (passed, verdicts, now)
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_the_first_drop_is_marked_once() {
        let mut limit = SourceLimit::new(RATE, Vec::new());
        let t0 = Instant::now();
        let flooder = ip("192.0.2.7");
        // 1,000 messages in 1 s (1 ms apart): the burst, then 100/s.
        let (passed, verdicts, t1) = send(&mut limit, flooder, t0, 1000, Duration::from_millis(1));
        assert!((118..=121).contains(&passed), "{passed} passed");
        let firsts = verdicts
            .iter()
            .filter(|v| **v == Verdict::DropFirst)
            .count();
        assert_eq!(firsts, 1);
        // The burst refills as it is spent (0.1 a message): 22 pass first.
        assert_eq!(verdicts[22], Verdict::DropFirst);
        // Another source is untouched by the flood.
        let (other, _, _) = send(&mut limit, ip("192.0.2.8"), t1, 20, Duration::ZERO);
        assert_eq!(other, 20);
    }

    #[test]
    fn a_long_flood_is_reported_again_every_ten_seconds() {
        let mut limit = SourceLimit::new(RATE, Vec::new());
        let (_, verdicts, _) = send(
            &mut limit,
            ip("192.0.2.7"),
            Instant::now(),
            35_000,
            Duration::from_millis(1),
        );
        let told: Vec<usize> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == Verdict::DropFirst)
            .map(|(i, _)| i)
            .collect();
        // At the first drop (the 23rd message), then 10 s on, and 10 s more.
        assert_eq!(told, vec![22, 10_022, 20_022, 30_022]);
    }

    #[test]
    fn a_source_at_its_rate_is_never_dropped() {
        let mut limit = SourceLimit::new(RATE, Vec::new());
        let (passed, _, _) = send(
            &mut limit,
            ip("192.0.2.9"),
            Instant::now(),
            5000,
            Duration::from_millis(10),
        );
        assert_eq!(passed, 5000);
    }

    #[test]
    fn the_episode_ends_once_the_source_is_quiet_for_a_refill() {
        let mut limit = SourceLimit::new(RATE, Vec::new());
        let t0 = Instant::now();
        let flooder = ip("2001:db8::1");
        let (_, _, t1) = send(&mut limit, flooder, t0, 520, Duration::from_millis(1));
        // Still dropping: nothing ended yet.
        assert_eq!(limit.sweep(t1), Vec::new());
        // A refill (20 / 100 per s = 200 ms) after the last drop, it ends.
        let ended = limit.sweep(t1 + Duration::from_millis(200));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].source, flooder);
        // 520 sent in 520 ms: about 20 + 52 passed.
        assert!((446..=450).contains(&ended[0].dropped), "{ended:?}");
        assert!(ended[0].lasted >= Duration::from_millis(490), "{ended:?}");
        // And is reported once.
        assert_eq!(limit.sweep(t1 + Duration::from_secs(1)), Vec::new());
        // A new flood is a new episode.
        let (_, verdicts, _) = send(
            &mut limit,
            flooder,
            t1 + Duration::from_secs(2),
            30,
            Duration::ZERO,
        );
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == Verdict::DropFirst)
                .count(),
            1
        );
    }

    #[test]
    fn trusted_peers_and_a_zero_rate_are_never_limited() {
        let proxy = ip("10.0.0.1");
        let mut limit = SourceLimit::new(RATE, vec![proxy]);
        let (passed, _, _) = send(&mut limit, proxy, Instant::now(), 10_000, Duration::ZERO);
        assert_eq!(passed, 10_000);
        // Also as an IPv4-mapped address on a dual-stack socket.
        let mapped = ip("::ffff:10.0.0.1");
        assert!(limit.exempt(mapped));
        let (passed, _, _) = send(&mut limit, mapped, Instant::now(), 10_000, Duration::ZERO);
        assert_eq!(passed, 10_000);
        assert_eq!(limit.tracked(), 0);
        let off = Rate {
            per_second: 0,
            burst: 0,
        };
        let mut limit = SourceLimit::new(off, Vec::new());
        let (passed, _, _) = send(
            &mut limit,
            ip("192.0.2.1"),
            Instant::now(),
            10_000,
            Duration::ZERO,
        );
        assert_eq!(passed, 10_000);
    }

    #[test]
    fn the_table_stays_bounded_under_forged_sources() {
        let mut limit = SourceLimit::with_capacity(RATE, Vec::new(), 1000);
        let t0 = Instant::now();
        for i in 0..5000u32 {
            let source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(limit.check(t0, source), Verdict::Pass);
        }
        assert_eq!(limit.tracked(), 1000, "full, and the rest let through");
        // Once the first ones are quiet for a refill, new sources take their place.
        let later = t0 + Duration::from_millis(200);
        assert_eq!(limit.check(later, ip("192.0.2.200")), Verdict::Pass);
        assert_eq!(limit.tracked(), 1);
        // A source mid-episode is never forgotten (its drops are reported).
        let flooder = ip("192.0.2.66");
        send(&mut limit, flooder, later, 50, Duration::ZERO);
        limit.forget_idle(later + Duration::from_secs(5));
        assert_eq!(limit.tracked(), 1);
        let ended = limit.sweep(later + Duration::from_secs(5));
        assert_eq!(ended[0].dropped, 30);
    }
}
