//! Cost of the per-call and per-tick hot paths, in one run, as figures:
//! security/personal code verification (HMAC-SHA256 + constant-time
//! compare), one-time code drawing against live codes, and the N-1 mix.
//!
//! `cargo bench --bench access` runs it; under `cargo test` it only smoke-runs.
//! Compare figures from the same run: these machines are shared and noisy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use dialgate::access::codes;
use dialgate::access::secret::{SECURITY, Secret};
use dialgate::conference::mixer::{Frame, mix_minus};

fn time<F: FnMut()>(iterations: u32, mut f: F) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 200_000 } else { 100 };

    let secret = Secret::from_key([42; 32]);
    let stored = secret.hash(SECURITY, "00428571");
    let verify = time(n, || {
        black_box(secret.verify(SECURITY, black_box("00428571"), &stored));
    });
    println!(
        "security code verify: {:>8.2} µs/op  ({:.0} verifications/s per core)",
        verify.as_secs_f64() * 1e6,
        1.0 / verify.as_secs_f64()
    );

    let live: Vec<String> = (0..1000).map(|i| format!("{:09}", i * 999_983)).collect();
    let draw = time(n / 10, || {
        black_box(codes::draw(9, &live, 64));
    });
    println!(
        "one-time code draw vs 1,000 live codes: {:>8.2} µs/op",
        draw.as_secs_f64() * 1e6
    );

    for members in [3usize, 10, 100] {
        let inputs: Vec<Option<Frame>> = (0..members)
            .map(|i| Some([i16::try_from(i % 100).unwrap_or(0); dialgate::media::pcm::PCM_FRAME]))
            .collect();
        let mut out = Vec::with_capacity(members);
        let tick = time(n / 10, || {
            mix_minus(black_box(&inputs), &mut out);
            black_box(&out);
        });
        println!(
            "N-1 mix, {members:>3} members: {:>8.2} µs/tick  ({:.3} µs per member per tick)",
            tick.as_secs_f64() * 1e6,
            tick.as_secs_f64() * 1e6 / members as f64
        );
    }
}
