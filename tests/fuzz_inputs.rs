//! The fuzz targets (`fuzz/`) without a fuzzer: every seed of their first
//! corpus, and every input a fuzzer once failed on (kept under
//! `fuzz/regressions/<target>/`), run through the targets' own code on each
//! `cargo test`. A target panics on a failed check, so each input passing
//! is the assertion.

#[path = "../fuzz/src/seed.rs"]
mod seed;
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_target_has_seeds_and_runs_them() {
    let seeds = seed::seeds(repo()).expect("seed corpus");
    for (name, run) in targets::TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|s| s.target == name).collect();
        assert!(!mine.is_empty(), "target {name} has no seed");
        for s in mine {
            eprintln!("{name}: {}", s.name);
            run(&s.bytes);
        }
    }
}

#[test]
fn every_target_takes_every_other_targets_seeds() {
    let seeds = seed::seeds(repo()).expect("seed corpus");
    for (name, run) in targets::TARGETS {
        for s in &seeds {
            eprintln!("{name}: {} ({})", s.name, s.target);
            run(&s.bytes);
        }
    }
}

#[test]
fn what_the_fuzzers_found_stays_fixed() {
    let dir = repo().join("fuzz/regressions");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let path = entry.expect("regressions entry").path();
        if !path.is_dir() {
            continue;
        }
        let folder = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((name, run)) = targets::TARGETS.iter().find(|(n, _)| *n == folder) else {
            panic!("fuzz/regressions/{folder} names no fuzz target");
        };
        for input in std::fs::read_dir(&path).expect("a target's regressions") {
            let input = input.expect("regression input").path();
            eprintln!("{name}: {}", input.display());
            run(&std::fs::read(&input).expect("regression input"));
            ran += 1;
        }
    }
    assert!(ran >= 9, "only {ran} kept findings ran");
}

#[test]
fn script_chunks_round_trip_and_are_cut_short_at_the_end() {
    let mut script = Vec::new();
    targets::put_chunk(&mut script, b"abc");
    script.push(7);
    let mut s = targets::Script::new(&script);
    assert_eq!(s.chunk(), Some(&b"abc"[..]));
    assert_eq!(s.byte(), Some(7));
    assert_eq!(s.byte(), None);
    // A length past the end takes what is there.
    assert_eq!(targets::Script::new(&[9, 0, b'a']).chunk(), Some(&b"a"[..]));
    assert_eq!(targets::Script::new(&[9]).chunk(), None);
}

/// The fuzzers build the gateway from the same crate versions as the
/// gateway itself: `fuzz/Cargo.lock` agrees with `Cargo.lock` on every
/// package both hold (copy `Cargo.lock` over it and let cargo add the
/// fuzzers' own).
#[test]
fn the_fuzz_lock_file_pins_what_the_gateway_pins() {
    fn packages(path: &Path) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(path).expect("lock file");
        let mut out = Vec::new();
        let mut name = None;
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_owned());
            } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
                out.push((n, v.trim_matches('"').to_owned()));
            }
        }
        out
    }
    let gateway = packages(&repo().join("Cargo.lock"));
    let fuzz = packages(&repo().join("fuzz/Cargo.lock"));
    assert!(gateway.len() > 100 && fuzz.len() > 100);
    // A package may be there in several versions: each of the fuzzers'
    // must be one the gateway has.
    let differ: Vec<_> = fuzz
        .iter()
        .filter(|(n, _)| gateway.iter().any(|(gn, _)| gn == n))
        .filter(|p| !gateway.contains(p))
        .collect();
    assert!(
        differ.is_empty(),
        "fuzz/Cargo.lock differs from Cargo.lock: {differ:?}"
    );
}
