//! The OpenAPI document at `/v1/openapi.json` against the API it describes:
//! every route in the document is called on a real gateway (with a live
//! call for the call routes), each answer's status must be one the
//! document lists for that operation and its JSON body must fit the listed
//! schema, and the test fails if any operation of the document went
//! uncalled. Every operation but `/healthz` must answer 401 without a token.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::caller::{Caller, Dial};
use support::http::{call, request, token};
use support::{Gateway, schema};

const CODE: &str = "8642097";

struct Exerciser {
    api: String,
    token: String,
    doc: Value,
    called: BTreeSet<(String, String)>,
}

impl Exerciser {
    /// Calls `concrete` (an instance of `template`), expects `status`, and
    /// checks the answer against the document; returns the JSON body.
    async fn exercise(
        &mut self,
        method: &str,
        template: &str,
        concrete: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let body = body.map(|b| b.to_string());
        let (got, text) = request(
            &self.api,
            method,
            concrete,
            Some(&self.token),
            body.as_deref(),
        )
        .await;
        assert_eq!(got, status, "{method} {concrete}: {text}");
        let op = self
            .doc
            .pointer(&format!(
                "/paths/{}/{}",
                template.replace('~', "~0").replace('/', "~1"),
                method.to_lowercase()
            ))
            .unwrap_or_else(|| panic!("{method} {template} is not in the document"))
            .clone();
        let response = op
            .pointer(&format!("/responses/{got}"))
            .unwrap_or_else(|| panic!("{method} {template}: status {got} is not documented"));
        self.called.insert((method.to_owned(), template.to_owned()));
        let json_schema = response.pointer("/content/application~1json/schema");
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(Err(why)) = json_schema.map(|s| schema::check(&self.doc, s, &value, "body")) {
            panic!("{method} {concrete} answered {got} off the document: {why}\n{text}");
        }
        value
    }
}

fn at(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn every_documented_route_answers_as_documented() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = token(&db);
    let gw = Gateway::start(dir, db, &[]).await;

    let (status, doc) = call(&gw.api, "GET", "/v1/openapi.json", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let mut api = Exerciser {
        api: gw.api.clone(),
        token: token.clone(),
        doc: doc.clone(),
        called: BTreeSet::new(),
    };
    let served = api
        .exercise("GET", "/v1/openapi.json", "/v1/openapi.json", None, 200)
        .await;
    assert_eq!(served, doc, "the document is stable");
    api.exercise("GET", "/healthz", "/healthz", None, 200).await;
    api.exercise("GET", "/readyz", "/readyz", None, 200).await;
    api.exercise("GET", "/metrics", "/metrics", None, 200).await;
    let nodes = api
        .exercise("GET", "/v1/nodes", "/v1/nodes", None, 200)
        .await;
    assert_eq!(nodes[0]["alive"], true, "{nodes}");

    // Tenants.
    let t = api
        .exercise(
            "POST",
            "/v1/tenants",
            "/v1/tenants",
            Some(json!({"name": "globex"})),
            201,
        )
        .await;
    let tid = t["id"].as_i64().expect("tenant id");
    let tenant = format!("/v1/tenants/{tid}");
    let bad = api
        .exercise(
            "POST",
            "/v1/tenants",
            "/v1/tenants",
            Some(json!({"name": ""})),
            422,
        )
        .await;
    assert_eq!(bad["field"], "name");
    api.exercise(
        "POST",
        "/v1/tenants",
        "/v1/tenants",
        Some(json!({"name": "globex"})),
        409,
    )
    .await;
    let all = api
        .exercise("GET", "/v1/tenants", "/v1/tenants", None, 200)
        .await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    api.exercise("GET", "/v1/tenants", "/v1/tenants?limit=0", None, 422)
        .await;
    api.exercise("GET", "/v1/tenants/{id}", &tenant, None, 200)
        .await;
    api.exercise("GET", "/v1/tenants/{id}", "/v1/tenants/999", None, 404)
        .await;
    let changed = api
        .exercise(
            "PATCH",
            "/v1/tenants/{id}",
            &tenant,
            Some(json!({"name": "globex2", "early_join": "10m", "one_time_default": true})),
            200,
        )
        .await;
    assert_eq!(
        (changed["name"].clone(), changed["early_join_secs"].clone()),
        (json!("globex2"), json!(600))
    );
    let bad = api
        .exercise(
            "PATCH",
            "/v1/tenants/{id}",
            &tenant,
            Some(json!({"early_join": "soon"})),
            422,
        )
        .await;
    assert_eq!(bad["field"], "early_join");
    let unknown = api
        .exercise(
            "PATCH",
            "/v1/tenants/{id}",
            &tenant,
            Some(json!({"colour": "red"})),
            422,
        )
        .await;
    assert_eq!(unknown["field"], "colour", "an unknown field is named");
    api.exercise(
        "PATCH",
        "/v1/tenants/{id}",
        &tenant,
        Some(json!([null])),
        422,
    )
    .await;
    let missing = api
        .exercise("POST", "/v1/tenants", "/v1/tenants", Some(json!({})), 422)
        .await;
    assert_eq!(missing["field"], "name", "a missing field is named");

    // Numbers.
    let n = api
        .exercise(
            "POST",
            "/v1/numbers",
            "/v1/numbers",
            Some(json!({"number": "+15550111", "tenant": "globex2"})),
            201,
        )
        .await;
    let number = format!("/v1/numbers/{}", n["id"].as_i64().expect("number id"));
    let bad = api
        .exercise(
            "POST",
            "/v1/numbers",
            "/v1/numbers",
            Some(json!({"number": "not a number", "tenant": "acme"})),
            422,
        )
        .await;
    assert_eq!(bad["field"], "number");
    api.exercise(
        "POST",
        "/v1/numbers",
        "/v1/numbers",
        Some(json!({"number": "+15550112", "tenant": "nobody"})),
        404,
    )
    .await;
    api.exercise("GET", "/v1/numbers", "/v1/numbers", None, 200)
        .await;
    api.exercise("GET", "/v1/numbers/{id}", &number, None, 200)
        .await;
    let moved = api
        .exercise(
            "PATCH",
            "/v1/numbers/{id}",
            &number,
            Some(json!({"language": "de"})),
            200,
        )
        .await;
    assert_eq!(moved["language"], "de");

    // Rooms.
    let r = api
        .exercise(
            "POST",
            "/v1/rooms",
            "/v1/rooms",
            Some(json!({"tenant": "globex2", "name": "board", "access_code": "4242"})),
            201,
        )
        .await;
    let rid = r["id"].as_i64().expect("room id");
    let room = format!("/v1/rooms/{rid}");
    api.exercise(
        "POST",
        "/v1/rooms",
        "/v1/rooms",
        Some(json!({"tenant": "globex2", "name": "board"})),
        409,
    )
    .await;
    api.exercise("GET", "/v1/rooms", "/v1/rooms?limit=1&offset=1", None, 200)
        .await;
    api.exercise("GET", "/v1/rooms/{id}", &room, None, 200)
        .await;
    let bad = api
        .exercise(
            "PATCH",
            "/v1/rooms/{id}",
            &room,
            Some(json!({"access_code": "42x"})),
            422,
        )
        .await;
    assert_eq!(bad["field"], "access_code");
    let changed = api
        .exercise(
            "PATCH",
            "/v1/rooms/{id}",
            &room,
            Some(json!({"access_code": "4343"})),
            200,
        )
        .await;
    assert_eq!(changed["access_code"], "4343");

    // Meetings and invitees.
    let m = api
        .exercise(
            "POST",
            "/v1/meetings",
            "/v1/meetings",
            Some(json!({"room": rid.to_string(), "start": at(chrono::Duration::hours(1)), "duration": "30m"})),
            201,
        )
        .await;
    assert!(m["one_time_code"].is_string(), "tenant default is one-time");
    let meeting = format!("/v1/meetings/{}", m["id"].as_i64().expect("meeting id"));
    let bad = api
        .exercise(
            "POST",
            "/v1/meetings",
            "/v1/meetings",
            Some(json!({"room": rid.to_string(), "start": "at noon", "duration": "30m"})),
            422,
        )
        .await;
    assert_eq!(bad["field"], "start");
    api.exercise("GET", "/v1/meetings", "/v1/meetings", None, 200)
        .await;
    api.exercise("GET", "/v1/meetings/{id}", &meeting, None, 200)
        .await;
    let start = at(chrono::Duration::hours(2));
    let moved = api
        .exercise(
            "PATCH",
            "/v1/meetings/{id}",
            &meeting,
            Some(json!({"start": start, "duration": "45m"})),
            200,
        )
        .await;
    assert_eq!(moved["one_time_code"], m["one_time_code"]);
    let invitees = format!("{meeting}/invitees");
    let i = api
        .exercise(
            "POST",
            "/v1/meetings/{id}/invitees",
            &invitees,
            Some(json!({"name": "Ann", "email": "ann@example.com"})),
            201,
        )
        .await;
    assert!(i["personal_code"].is_string());
    let invitee = format!("/v1/invitees/{}", i["id"].as_i64().expect("invitee id"));
    let listed = api
        .exercise("GET", "/v1/meetings/{id}/invitees", &invitees, None, 200)
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        listed[0].get("personal_code").is_none(),
        "codes are shown once"
    );
    api.exercise("GET", "/v1/invitees/{id}", &invitee, None, 200)
        .await;
    let fixed = api
        .exercise(
            "PATCH",
            "/v1/invitees/{id}",
            &invitee,
            Some(json!({"name": "Ann Smith", "email": ""})),
            200,
        )
        .await;
    assert_eq!(
        (fixed["name"].clone(), fixed["email"].clone()),
        (json!("Ann Smith"), Value::Null)
    );
    let bad = api
        .exercise(
            "PATCH",
            "/v1/invitees/{id}",
            &invitee,
            Some(json!({"email": "no-at-sign"})),
            422,
        )
        .await;
    assert_eq!(bad["field"], "email");
    api.exercise("DELETE", "/v1/invitees/{id}", &invitee, None, 200)
        .await;
    api.exercise("DELETE", "/v1/invitees/{id}", &invitee, None, 404)
        .await;

    // Deletes refuse while something depends on the row.
    api.exercise("DELETE", "/v1/rooms/{id}", &room, None, 409)
        .await;
    api.exercise("DELETE", "/v1/meetings/{id}", &meeting, None, 200)
        .await;
    api.exercise("DELETE", "/v1/rooms/{id}", &room, None, 200)
        .await;
    api.exercise("GET", "/v1/rooms/{id}", &room, None, 404)
        .await;
    api.exercise("DELETE", "/v1/tenants/{id}", &tenant, None, 409)
        .await;
    api.exercise("DELETE", "/v1/numbers/{id}", &number, None, 200)
        .await;
    api.exercise("DELETE", "/v1/tenants/{id}", &tenant, None, 200)
        .await;

    // A live call, for the call routes.
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733(&format!("{CODE}#")).await;
    let mut id = None;
    for _ in 0..200 {
        let (_, calls) = call(&gw.api, "GET", "/v1/calls", Some(&token), None).await;
        if let Some(c) = calls
            .as_array()
            .and_then(|a| a.iter().find(|c| c["state"] == "in_room"))
        {
            id = c["id"].as_u64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.unwrap_or_else(|| panic!("the call reached the room: {}", gw.log()));
    let listed = api
        .exercise("GET", "/v1/calls", "/v1/calls", None, 200)
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let inside = api
        .exercise(
            "GET",
            "/v1/rooms/{id}/participants",
            "/v1/rooms/1/participants",
            None,
            200,
        )
        .await;
    assert_eq!(inside[0]["id"].as_u64(), Some(id));
    // The room's lease, claimed by this node as the call joined.
    for _ in 0..100 {
        let (_, leases) = call(&gw.api, "GET", "/v1/leases", Some(&token), None).await;
        if leases[0]["held"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leases = api
        .exercise("GET", "/v1/leases", "/v1/leases", None, 200)
        .await;
    assert_eq!(
        (&leases[0]["room_id"], &leases[0]["held"]),
        (&json!(1), &json!(true)),
        "{leases}"
    );
    let locked = api
        .exercise("POST", "/v1/rooms/{id}/lock", "/v1/rooms/1/lock", None, 200)
        .await;
    assert_eq!(locked["locked"], true);
    let unlocked = api
        .exercise(
            "POST",
            "/v1/rooms/{id}/unlock",
            "/v1/rooms/1/unlock",
            None,
            200,
        )
        .await;
    assert_eq!(unlocked["locked"], false);
    api.exercise(
        "POST",
        "/v1/rooms/{id}/lock",
        "/v1/rooms/999/lock",
        None,
        404,
    )
    .await;
    api.exercise(
        "POST",
        "/v1/rooms/{id}/unlock",
        "/v1/rooms/999/unlock",
        None,
        404,
    )
    .await;
    api.exercise("DELETE", "/v1/rooms/{id}", "/v1/rooms/1", None, 409)
        .await;
    let this = format!("/v1/calls/{id}");
    let muted = api
        .exercise(
            "POST",
            "/v1/calls/{id}/mute",
            &format!("{this}/mute"),
            None,
            200,
        )
        .await;
    assert_eq!(muted["muted"], true);
    api.exercise(
        "POST",
        "/v1/calls/{id}/unmute",
        &format!("{this}/unmute"),
        None,
        200,
    )
    .await;
    api.exercise(
        "POST",
        "/v1/calls/{id}/mute",
        "/v1/calls/999/mute",
        None,
        404,
    )
    .await;
    api.exercise(
        "POST",
        "/v1/calls/{id}/unmute",
        "/v1/calls/999/unmute",
        None,
        404,
    )
    .await;
    // In the room already, not waiting: admitting it is a conflict.
    api.exercise(
        "POST",
        "/v1/calls/{id}/admit",
        &format!("{this}/admit"),
        None,
        409,
    )
    .await;
    api.exercise(
        "POST",
        "/v1/calls/{id}/admit",
        "/v1/calls/999/admit",
        None,
        404,
    )
    .await;
    api.exercise("DELETE", "/v1/calls/{id}", &this, None, 204)
        .await;
    assert!(
        caller.wait_bye(Duration::from_secs(10)).await.is_some(),
        "the caller got the BYE"
    );
    api.exercise("DELETE", "/v1/calls/{id}", "/v1/calls/999", None, 404)
        .await;

    // The attempt log saw the admitted call.
    let log = api
        .exercise("GET", "/v1/attempts", "/v1/attempts", None, 200)
        .await;
    assert_eq!(log[0]["outcome"], "admitted");
    api.exercise(
        "GET",
        "/v1/attempts",
        "/v1/attempts?since=forever",
        None,
        422,
    )
    .await;
    let summary = api
        .exercise(
            "GET",
            "/v1/attempts/summary",
            "/v1/attempts/summary?since=1h",
            None,
            200,
        )
        .await;
    assert_eq!(summary["attempts"], 1);

    // The operations the document lists (at the end: every one was called).
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    assert!(documented.len() >= 30, "{} operations", documented.len());

    // An id that is no id, and a paging parameter out of range, get the
    // documented JSON errors (404, and 422 naming the parameter).
    for (method, path) in documented.iter().filter(|(_, p)| p.contains("{id}")) {
        let concrete = path.replace("{id}", "9223372036854775808");
        let body = matches!(method.as_str(), "POST" | "PATCH").then(|| json!({}));
        let e = api.exercise(method, path, &concrete, body, 404).await;
        assert!(e["error"].is_string(), "{method} {path}: {e}");
    }
    for path in ["/v1/tenants", "/v1/calls", "/v1/meetings", "/v1/attempts"] {
        let e = api
            .exercise("GET", path, &format!("{path}?offset=-1"), None, 422)
            .await;
        assert_eq!(e["field"], "offset", "{path}: {e}");
    }

    // Without a token, every operation but /healthz answers 401, as documented.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "1");
        let body = matches!(method.as_str(), "POST" | "PATCH").then_some("{}");
        let (status, _) = request(&gw.api, method, &concrete, None, body).await;
        let op = &doc["paths"][path][method.to_lowercase()];
        let open = op["security"] == json!([{}]);
        if open {
            assert_ne!(status, 401, "{method} {path} needs no token");
        } else {
            assert_eq!(status, 401, "{method} {path} without a token");
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
        }
    }

    // Last, as it stops the node: a drain (no call left, so it exits).
    let draining = api
        .exercise("POST", "/v1/drain", "/v1/drain", None, 202)
        .await;
    assert_eq!(draining["draining"], true);
    let missed: Vec<_> = documented.difference(&api.called).collect();
    assert!(
        missed.is_empty(),
        "documented but not exercised: {missed:?}"
    );
}
