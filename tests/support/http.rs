//! The operator API as a client sees it: one request at a time over
//! loopback with `ureq` (on a blocking thread), any method, optional bearer
//! token and JSON body; statuses are returned, not raised.
#![allow(dead_code)]

/// (status, body text) of one request; `token` is sent as a bearer token.
pub async fn request(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("http://{api}{path}");
    let (method, auth, body) = (
        method.to_owned(),
        token.map(|t| format!("Bearer {t}")),
        body.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A gateway that never answers fails the test, not hangs it.
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        let response = match method.as_str() {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    agent.get(&url)
                } else {
                    agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = if method == "PATCH" {
                    agent.patch(&url)
                } else {
                    agent.post(&url)
                };
                r = r.header("content-type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.send(body.unwrap_or_default())
            }
        };
        let mut response = response.expect("HTTP exchange");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    })
    .await
    .expect("request thread")
}

/// (status, JSON body, or `Null` where the body is not JSON) of one request.
pub async fn call(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, text) = request(api, method, path, token, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A fresh API token, made with the CLI on the gateway's database.
pub fn token(db: &str) -> String {
    let (rc, out, err) = super::cli(db, &["token", "create", "--name", "test", "--json"]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("token JSON");
    v["token"].as_str().expect("token").to_owned()
}
