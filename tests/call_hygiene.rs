//! Call hygiene: a caller whose RTP stops is hung up after `--rtp-timeout`,
//! with a BYE that says why; one that keeps sending stays.

mod support;

use std::time::Duration;

use support::Gateway;
use support::caller::{Caller, Dial, sine_frame};

const CODE: &str = "7700";

#[tokio::test]
async fn silent_caller_gets_a_bye_after_the_rtp_timeout() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &["--rtp-timeout", "1s"]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733(&format!("{CODE}#")).await;
    // 2 s of audio, twice the timeout: sending keeps the call up.
    caller
        .talk_and_listen(100, |i| sine_frame(440.0, 4000.0, i))
        .await;
    assert!(
        caller.wait_bye(Duration::from_millis(200)).await.is_none(),
        "no BYE while media flows"
    );
    // Then silence: the BYE comes about a second later.
    let bye = caller
        .wait_bye(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("a BYE after the RTP timeout: {}", gw.log()));
    let reason = bye.header("Reason").unwrap_or_default().to_owned();
    assert!(reason.contains("RTP timeout"), "Reason: {reason}");
    assert!(gw.log().contains("no RTP from the caller"), "{}", gw.log());
}
