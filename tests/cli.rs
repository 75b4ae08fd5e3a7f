//! The provisioning CLI against a real SQLite file.

mod support;

use support::{add_room, cli};

fn db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    (dir, url)
}

#[test]
fn provisioning_round_trip_in_json() {
    let (_d, db) = db();
    let (rc, out, _) = cli(&db, &["tenant", "add", "acme", "--json"]);
    assert_eq!(rc, 0);
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["name"], "acme");
    let (rc, out, _) = cli(
        &db,
        &[
            "number",
            "add",
            "tel:+1-555-0100",
            "--tenant",
            "acme",
            "--json",
        ],
    );
    assert_eq!(rc, 0);
    let n: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(n["number"], "+15550100");
    assert_eq!(n["language"], "en");
    let (rc, out, _) = cli(
        &db,
        &[
            "room",
            "add",
            "--tenant",
            "acme",
            "--name",
            "board",
            "--access-code",
            "007 123",
            "--json",
        ],
    );
    assert_eq!(rc, 0);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["access_code"], "007123",
        "leading zeros kept, spaces dropped"
    );
    let (rc, out, _) = cli(&db, &["room", "list", "--json"]);
    assert_eq!(rc, 0);
    let rooms: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rooms.as_array().map(Vec::len), Some(1));
    let (rc, out, _) = cli(&db, &["number", "list", "--json"]);
    assert_eq!(rc, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["tenant"],
        "acme"
    );
}

#[test]
fn generated_room_code_is_nine_digits_and_unique() {
    let (_d, db) = db();
    assert_eq!(cli(&db, &["tenant", "add", "acme"]).0, 0);
    let mut codes = std::collections::HashSet::new();
    for i in 0..5 {
        let (rc, out, err) = cli(
            &db,
            &[
                "room",
                "add",
                "--tenant",
                "acme",
                "--name",
                &format!("r{i}"),
                "--json",
            ],
        );
        assert_eq!(rc, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        let code = r["access_code"].as_str().unwrap().to_owned();
        assert_eq!(code.len(), 9);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(codes.insert(code));
    }
}

#[test]
fn bad_input_exits_2_with_one_line_and_writes_nothing() {
    let (_d, db) = db();
    assert_eq!(cli(&db, &["tenant", "add", "acme"]).0, 0);
    let cases: [&[&str]; 5] = [
        &["number", "add", "not a number", "--tenant", "acme"],
        &["number", "add", "+15550100", "--tenant", "nobody"],
        &["room", "add", "--tenant", "nobody", "--name", "x"],
        &[
            "room",
            "add",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--access-code",
            "12ab",
        ],
        &["tenant", "add", "acme"],
    ];
    for args in cases {
        let (rc, out, err) = cli(&db, args);
        assert_eq!(rc, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let (_, out, _) = cli(&db, &["number", "list", "--json"]);
    assert_eq!(out.trim(), "[]");
    let (_, out, _) = cli(&db, &["room", "list", "--json"]);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn duplicate_access_code_in_a_tenant_is_a_conflict() {
    let (_d, db) = db();
    assert_eq!(cli(&db, &["tenant", "add", "acme"]).0, 0);
    assert_eq!(add_room(&db, "acme", "a", "111", &[]).0, 0);
    let (rc, _, err) = add_room(&db, "acme", "b", "111", &[]);
    assert_eq!(rc, 2);
    assert!(err.contains("conflict"), "{err}");
}

#[test]
fn a_room_code_that_prefixes_another_is_a_conflict() {
    let (_d, db) = db();
    assert_eq!(cli(&db, &["tenant", "add", "acme"]).0, 0);
    assert_eq!(add_room(&db, "acme", "a", "1234", &[]).0, 0);
    for code in ["12", "123456"] {
        let (rc, _, err) = add_room(&db, "acme", "b", code, &[]);
        assert_eq!(rc, 2, "{code}: {err}");
        assert!(err.contains("prefix"), "{err}");
    }
    // Another tenant may use it: codes are unique within a tenant.
    assert_eq!(cli(&db, &["tenant", "add", "other"]).0, 0);
    assert_eq!(add_room(&db, "other", "b", "12", &[]).0, 0);
}

#[test]
fn rotating_a_room_code_replaces_it_and_keeps_the_rules() {
    let (_d, db) = db();
    assert_eq!(cli(&db, &["tenant", "add", "acme"]).0, 0);
    assert_eq!(add_room(&db, "acme", "a", "1234", &[]).0, 0);
    assert_eq!(add_room(&db, "acme", "b", "5678", &[]).0, 0);
    let (rc, out, err) = cli(&db, &["room", "rotate-code", "--room", "a", "--json"]);
    assert_eq!(rc, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let new = r["access_code"].as_str().unwrap();
    assert_eq!(new.len(), 9);
    assert_ne!(new, "1234");
    // A given code that prefixes another room's code is refused; the old code is free again.
    let (rc, _, err) = cli(
        &db,
        &["room", "rotate-code", "--room", "a", "--access-code", "56"],
    );
    assert_eq!(rc, 2, "{err}");
    let (rc, _, err) = cli(
        &db,
        &[
            "room",
            "rotate-code",
            "--room",
            "b",
            "--access-code",
            "1234",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = cli(&db, &["attempts", "--since", "forever"]);
    assert_eq!(rc, 2, "{err}");
}
