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
    for (name, run) in targets::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("regression entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            eprintln!("{name}: {}", path.display());
            run(&std::fs::read(&path).expect("regression input"));
            ran += 1;
        }
    }
    let kept = std::fs::read_dir(&dir)
        .map(|d| d.count())
        .unwrap_or_default();
    assert!(
        kept == 0 || ran > 0,
        "fuzz/regressions holds no input a target ran"
    );
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
