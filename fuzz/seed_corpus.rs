//! Writes the fuzz targets' first corpus (`fuzz/src/seed.rs`) into a
//! folder per target: `cargo run --example fuzz_seed_corpus -- DIR`.
//! `./dev fuzz` runs it before the fuzzers.

#[path = "src/seed.rs"]
mod seed;
#[path = "src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::path::{Path, PathBuf};

fn main() {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seed_corpus DIR");
        std::process::exit(2);
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = match seed::seeds(repo) {
        Ok(seeds) => seeds,
        Err(e) => {
            eprintln!("fuzz_seed_corpus: {e}");
            std::process::exit(1);
        }
    };
    for s in &seeds {
        let dir = out.join(s.target);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(&s.name), &s.bytes));
        if let Err(e) = written {
            eprintln!("fuzz_seed_corpus: {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
    println!(
        "fuzz_seed_corpus: {} seeds in {}",
        seeds.len(),
        out.display()
    );
}
