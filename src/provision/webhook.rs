//! Delivering personal codes: a JSON POST to the tenant's invite webhook,
//! retried with exponential backoff. The payload holds the code, so it is
//! never logged; failures are reported with the status or transport error.
//! The code is not stored in plain text anywhere, so there is no durable
//! outbox: delivery happens while the invite is made, and the CLI prints
//! the code too.

use std::time::Duration;

/// How delivery went, as `meeting invite` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The tenant has no webhook.
    None,
    Delivered,
    Failed,
}

/// Tries used and the first backoff (doubling after each failure).
pub const TRIES: u32 = 4;
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Per request, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks an operator-given webhook URL.
pub fn valid_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2000
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Posts `body` to `url` until a 2xx or `TRIES` attempts (blocking: run it
/// on a blocking thread).
pub fn deliver(url: &str, body: &str) -> Delivery {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=TRIES {
        match agent
            .post(url)
            .header("content-type", "application/json")
            .send(body)
        {
            Ok(_) => return Delivery::Delivered,
            // The error names a status or a transport failure, never the body.
            Err(e) => tracing::warn!(attempt, error = %e, "invite webhook failed"),
        }
        if attempt < TRIES {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
    Delivery::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(valid_url("https://hooks.example.com/invites"));
        assert!(valid_url("http://127.0.0.1:8000/x"));
        assert!(!valid_url("ftp://example.com"));
        assert!(!valid_url("https://a b"));
    }
}
