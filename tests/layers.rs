//! The layers only point down: a module of the gateway may use the modules
//! of lower layers, never one of its own layer or above. Read from the
//! `crate::…` paths in `src/` (code and tests alike; comments aside), so an
//! arrow that runs back up fails here with the file and line that drew it.
//!
//! From the bottom: what the OS says and typed ids; audio and the store; SIP and the
//! keypad; access rules; why calls end (`cause`), the IVR and the rooms;
//! settings and the live-call
//! registry; provisioning; the API; the shell (gateway); the command line.
//! The load tool is a crate of its own (`replay/`) above all of them: see
//! the last test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LAYERS: &[&[&str]] = &[
    &["os", "ids"],
    &["media", "store"],
    &["sip", "dtmf"],
    &["access"],
    &["cause", "ivr", "conference"],
    &["config", "live"],
    &["provision"],
    &["api"],
    &["gateway"],
    &["cli"],
];

/// The crate root and the binary: they hold the module list and `main`.
const ROOTS: &[&str] = &["lib", "main"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::<module>` a line of code names (a `//` comment aside).
fn crate_paths(line: &str) -> Vec<String> {
    paths_under(line, "crate::")
}

/// Every `<root><module>` a line of code names (a `//` comment aside).
fn paths_under(line: &str, root: &str) -> Vec<String> {
    let code = match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    };
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(root) {
        let before = rest[..i].chars().last();
        rest = &rest[i + root.len()..];
        // `dialgate_crate::` or `$crate::` are not ours.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b}`: each first segment.
            let inner = group.split('}').next().unwrap_or("");
            out.extend(
                inner
                    .split(',')
                    .filter_map(|p| p.trim().split("::").next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn every_arrow_between_layers_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "found the sources ({})", files.len());
    let mut wrong = Vec::new();
    let mut arrows: BTreeMap<(String, String), usize> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        if ROOTS.contains(&from.as_str()) {
            continue;
        }
        let Some(from_layer) = layer_of(&from) else {
            wrong.push(format!(
                "{}: module `{from}` is in no layer (add it to LAYERS)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in crate_paths(line) {
                if to == from {
                    continue;
                }
                *arrows.entry((from.clone(), to.clone())).or_default() += 1;
                match layer_of(&to) {
                    Some(to_layer) if to_layer < from_layer => {}
                    Some(_) => wrong.push(format!(
                        "{}:{}: `{from}` uses `{to}`, which is not below it",
                        file.display(),
                        n + 1
                    )),
                    None => wrong.push(format!(
                        "{}:{}: `{from}` uses `{to}`, which is in no layer",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that do not point down:\n{}",
        wrong.join("\n")
    );
    // The check sees real arrows (it would pass vacuously otherwise).
    for (from, to) in [("gateway", "sip"), ("sip", "media"), ("api", "live")] {
        assert!(
            arrows.contains_key(&(from.to_owned(), to.to_owned())),
            "expected `{from}` → `{to}` among {arrows:?}"
        );
    }
}

#[test]
fn the_reader_sees_grouped_and_qualified_paths_and_skips_comments() {
    assert_eq!(crate_paths("use crate::sip::sdp::Negotiated;"), ["sip"]);
    assert_eq!(
        crate_paths("use crate::{media::Codec, store::Store};"),
        ["media", "store"]
    );
    assert_eq!(
        crate_paths("let t = crate::dtmf::tap::ToneTap::new(crate::media::Codec::Pcmu);"),
        ["dtmf", "media"]
    );
    assert!(crate_paths("let x = 1; // see crate::gateway").is_empty());
    assert!(crate_paths("$crate::foo!()").is_empty());
}

/// What the load tool (`replay/`, the crate `dialgate-replay`) may use of
/// the server's library: the protocol and its words (SIP, RTP and codecs,
/// the keypad, outcomes and causes, durations as the settings spell them),
/// never the server's shell, store, rooms or API: it talks to a gateway
/// over the wire like any caller.
const LOAD_TOOL_USES: &[&str] = &["sip", "media", "dtmf", "access", "cause", "config"];

#[test]
fn the_load_tool_uses_only_the_servers_protocol_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("replay/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() > 5,
        "found the load tool's sources ({})",
        files.len()
    );
    let mut wrong = Vec::new();
    let mut used = BTreeMap::<String, usize>::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for module in paths_under(line, "dialgate::") {
                *used.entry(module.clone()).or_default() += 1;
                if !LOAD_TOOL_USES.contains(&module.as_str()) {
                    wrong.push(format!(
                        "{}:{}: the load tool uses the server's `{module}`",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        used.contains_key("sip"),
        "the check sees real paths: {used:?}"
    );
    assert_eq!(
        paths_under("use dialgate::{sip::message, gateway::X};", "dialgate::"),
        ["sip", "gateway"]
    );
}
