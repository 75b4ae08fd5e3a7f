//! Tests for `meetings`.

use chrono::TimeZone;

use super::*;
use crate::access::Outcome;
use crate::access::resolve::{Caller, Decision, resolve};
use crate::access::secret::Secret;
use crate::ids::TenantId;
use crate::store::Store;

async fn setup() -> (tempfile::TempDir, Provisioner, Secret) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let secret = Secret::from_key([9; 32]);
    let p = Provisioner::new(store).with_secret(secret.clone());
    p.add_tenant("acme").await.unwrap();
    p.add_room("acme", "main", Some("1"), None, &Default::default())
        .await
        .unwrap();
    (dir, p, secret)
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, h, m, s).unwrap()
}

fn req<'a>(start: &'a str, one_time: Option<bool>, security: Option<&'a str>) -> Schedule<'a> {
    Schedule {
        room: "main",
        start,
        duration: Some("45m"),
        one_time,
        security_code: security,
        ..Schedule::default()
    }
}

const START: &str = "2030-01-02T10:00:00Z";

#[tokio::test]
async fn tenant_default_decides_one_time_codes_and_the_request_overrides_it() {
    let (_d, p, _) = setup().await;
    let now = at(9, 0, 0);
    assert!(
        p.schedule_meeting(&req(START, None, None), now)
            .await
            .unwrap()
            .one_time_code
            .is_none()
    );
    let on = TenantSettings {
        one_time_default: Some(true),
        code_length: Some(7),
        ..TenantSettings::default()
    };
    p.set_tenant("acme", &on).await.unwrap();
    let m = p
        .schedule_meeting(&req(START, None, None), now)
        .await
        .unwrap();
    assert_eq!(m.one_time_code.map(|c| c.len()), Some(7));
    assert!(
        p.schedule_meeting(&req(START, Some(false), None), now)
            .await
            .unwrap()
            .one_time_code
            .is_none()
    );
}

#[tokio::test]
async fn security_code_on_a_meeting_needs_a_one_time_code() {
    let (_d, p, _) = setup().await;
    let err = p
        .schedule_meeting(&req(START, Some(false), Some("12")), at(9, 0, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::Invalid {
                field: "security_code",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        p.schedule_meeting(&req(START, Some(true), Some("12")), at(9, 0, 0))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn stored_one_time_code_admits_from_15_minutes_before_to_the_end_pinned_to_the_second() {
    let (_d, p, secret) = setup().await;
    let m = p
        .schedule_meeting(&req(START, Some(true), None), at(9, 0, 0))
        .await
        .unwrap();
    let code = m.one_time_code.unwrap();
    let caller = Caller {
        caller_id: "+15551234",
    };
    let check = |now| {
        let (store, secret, code) = (p.store().clone(), secret.clone(), code.clone());
        async move {
            resolve(&store, &secret, TenantId(1), &code, caller, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        check(at(9, 44, 59)).await,
        Decision::Refuse(Outcome::NotStarted)
    );
    assert!(matches!(check(at(9, 45, 0)).await, Decision::Admit { .. }));
    assert!(matches!(
        check(at(10, 44, 59)).await,
        Decision::Admit { .. }
    ));
    assert_eq!(check(at(10, 45, 0)).await, Decision::Refuse(Outcome::Ended));
}

#[tokio::test]
async fn tenant_default_security_code_follows_a_one_time_code() {
    let (_d, p, secret) = setup().await;
    let s = TenantSettings {
        default_security_code: Some("4321"),
        ..TenantSettings::default()
    };
    p.set_tenant("acme", &s).await.unwrap();
    let m = p
        .schedule_meeting(&req(START, Some(true), None), at(9, 0, 0))
        .await
        .unwrap();
    let caller = Caller { caller_id: "x" };
    let d = resolve(
        p.store(),
        &secret,
        TenantId(1),
        &m.one_time_code.unwrap(),
        caller,
        at(10, 0, 0),
    )
    .await
    .unwrap();
    let Decision::Admit {
        security: Some(hash),
        ..
    } = d
    else {
        panic!("{d:?}")
    };
    assert!(secret.verify(crate::access::secret::SECURITY, "4321", &hash));
}

#[tokio::test]
async fn personal_code_is_refused_once_revoked() {
    let (_d, p, secret) = setup().await;
    let m = p
        .schedule_meeting(&req(START, Some(true), None), at(9, 0, 0))
        .await
        .unwrap();
    let inv = p
        .invite(m.id, "Ada", None, None, at(9, 0, 0))
        .await
        .unwrap();
    let caller = Caller {
        caller_id: "+15551234",
    };
    let d = resolve(
        p.store(),
        &secret,
        TenantId(1),
        &inv.personal_code,
        caller,
        at(10, 0, 0),
    )
    .await
    .unwrap();
    assert!(matches!(
        d,
        Decision::Admit {
            invitee: Some(_),
            ..
        }
    ));
    p.revoke_invitee(inv.id, at(10, 1, 0)).await.unwrap();
    let d = resolve(
        p.store(),
        &secret,
        TenantId(1),
        &inv.personal_code,
        caller,
        at(10, 2, 0),
    )
    .await
    .unwrap();
    assert_eq!(d, Decision::Refuse(Outcome::Revoked));
}
