//! Tests for `catalog`.

use super::*;
use crate::provision::Schedule;

async fn setup() -> (tempfile::TempDir, Provisioner) {
    let (dir, p) = crate::provision::test_provisioner(7).await;
    p.add_tenant("acme").await.unwrap();
    p.add_tenant("globex").await.unwrap();
    p.add_number("+15550100", "acme", "en").await.unwrap();
    p.add_room("acme", "main", Some("111"), None, &Default::default())
        .await
        .unwrap();
    p.add_room("acme", "side", Some("222"), None, &Default::default())
        .await
        .unwrap();
    (dir, p)
}

#[tokio::test]
async fn bad_field_in_a_room_change_writes_nothing() {
    let (_d, p) = setup().await;
    let before = p.room_by_id(1).await.unwrap();
    let change = RoomChange {
        name: Some("renamed"),
        access_code: Some("12a"),
        ..RoomChange::default()
    };
    let err = p.update_room(1, &change).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::Invalid {
                field: "access_code",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(p.room_by_id(1).await.unwrap(), before);
}

#[tokio::test]
async fn room_code_that_prefixes_another_is_a_conflict() {
    let (_d, p) = setup().await;
    let change = RoomChange {
        access_code: Some("2223"),
        ..RoomChange::default()
    };
    let err = p.update_room(1, &change).await.unwrap_err();
    assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
    assert_eq!(p.room_by_id(1).await.unwrap().access_code, "111");
}

#[tokio::test]
async fn room_rename_and_new_code_are_written() {
    let (_d, p) = setup().await;
    let change = RoomChange {
        name: Some("board"),
        access_code: Some("0333"),
        security_code: Some("55"),
        ..Default::default()
    };
    let room = p.update_room(1, &change).await.unwrap();
    assert_eq!(
        (room.name.as_str(), room.access_code.as_str()),
        ("board", "0333")
    );
    assert!(room.security_code_hash.is_some());
    let cleared = RoomChange {
        security_code: Some(""),
        ..RoomChange::default()
    };
    assert!(
        p.update_room(1, &cleared)
            .await
            .unwrap()
            .security_code_hash
            .is_none()
    );
}

#[tokio::test]
async fn tenant_with_numbers_or_rooms_is_not_deleted() {
    let (_d, p) = setup().await;
    let err = p.delete_tenant(1).await.unwrap_err();
    assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
    assert_eq!(p.delete_tenant(2).await.unwrap().name, "globex");
    assert!(matches!(
        p.tenant_by_id(2).await.unwrap_err(),
        ProvisionError::NotFound { .. }
    ));
}

#[tokio::test]
async fn tenant_rename_to_a_taken_name_is_a_conflict() {
    let (_d, p) = setup().await;
    let change = TenantChange {
        name: Some("globex"),
        ..TenantChange::default()
    };
    let err = p.update_tenant(1, &change).await.unwrap_err();
    assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
    assert_eq!(p.tenant_by_id(1).await.unwrap().name, "acme");
}

#[tokio::test]
async fn number_moves_tenant_and_language() {
    let (_d, p) = setup().await;
    let change = NumberChange {
        tenant: Some("globex"),
        language: Some("de"),
    };
    let n = p.update_number(1, &change).await.unwrap();
    assert_eq!((n.tenant.as_str(), n.language.as_str()), ("globex", "de"));
    let bad = NumberChange {
        language: Some("not a tag"),
        ..NumberChange::default()
    };
    assert!(p.update_number(1, &bad).await.is_err());
    p.delete_number(1).await.unwrap();
    assert!(p.list_numbers().await.unwrap().is_empty());
}

#[tokio::test]
async fn room_with_a_meeting_to_come_is_not_deleted_until_cancelled() {
    let (_d, p) = setup().await;
    let now = Utc::now();
    let start = crate::store::format_time(now + chrono::Duration::hours(1));
    let req = Schedule {
        room: "main",
        start: &start,
        duration: Some("30m"),
        one_time: Some(true),
        ..Schedule::default()
    };
    let meeting = p.schedule_meeting(&req, now).await.unwrap();
    let err = p.delete_room(1, now).await.unwrap_err();
    assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
    p.cancel_meeting(meeting.id, now).await.unwrap();
    assert_eq!(p.delete_room(1, now).await.unwrap().name, "main");
    assert!(p.list_meetings(None).await.unwrap().is_empty());
    assert_eq!(p.list_rooms().await.unwrap().len(), 1);
}

fn host(code: &'static str) -> RoomChange<'static> {
    RoomChange {
        settings: RoomSettings {
            host_code: Some(code),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn host_code_is_prefix_free_against_every_code_of_the_tenant() {
    let (_d, p) = setup().await;
    // Room 1 has 111, room 2 has 222.
    for taken in ["222", "22", "2225"] {
        let err = p.update_room(1, &host(taken)).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Conflict(_)), "{taken}: {err}");
    }
    let own = p.update_room(1, &host("111")).await.unwrap_err();
    assert!(
        matches!(
            own,
            ProvisionError::Invalid {
                field: "host_code",
                ..
            }
        ),
        "the room's own access code: {own}"
    );
    let room = p.update_room(1, &host("9090")).await.unwrap();
    assert_eq!(room.host_code.as_deref(), Some("9090"));
    // Now 9090 blocks other rooms' codes, and keying it again is a no-op.
    let clash = RoomChange {
        access_code: Some("90"),
        ..Default::default()
    };
    assert!(matches!(
        p.update_room(2, &clash).await.unwrap_err(),
        ProvisionError::Conflict(_)
    ));
    assert!(p.update_room(1, &host("9090")).await.is_ok());
    let found = p
        .store()
        .room_by_host_code(room.tenant_id, "9090")
        .await
        .unwrap();
    assert_eq!(found.map(|r| r.id), Some(1));
}

#[tokio::test]
async fn waiting_for_a_host_needs_a_host_code_and_limits_are_checked() {
    let (_d, p) = setup().await;
    let wait = RoomChange {
        settings: RoomSettings {
            wait_for_host: Some(true),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = p.update_room(1, &wait).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::Invalid {
                field: "host_code",
                ..
            }
        ),
        "{err}"
    );
    let limit = |n| RoomChange {
        settings: RoomSettings {
            max_members: Some(n),
            ..Default::default()
        },
        ..Default::default()
    };
    for bad in [-1, MAX_MEMBERS_LIMIT + 1] {
        let err = p.update_room(1, &limit(bad)).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProvisionError::Invalid {
                    field: "max_members",
                    ..
                }
            ),
            "{err}"
        );
    }
    let full = RoomChange {
        settings: RoomSettings {
            host_code: Some("77"),
            wait_for_host: Some(true),
            end_with_host: Some(true),
            host_admits: Some(true),
            max_members: Some(5),
        },
        ..Default::default()
    };
    let room = p.update_room(1, &full).await.unwrap();
    assert_eq!(
        (
            room.wait_for_host,
            room.end_with_host,
            room.host_admits,
            room.max_members
        ),
        (1, 1, 1, Some(5))
    );
    let room = p.update_room(1, &limit(0)).await.unwrap();
    assert_eq!(room.max_members, None, "0 removes the limit");
    // Removing the host code while the room waits for one is refused.
    let err = p.update_room(1, &host("")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::Invalid {
                field: "host_code",
                ..
            }
        ),
        "{err}"
    );
}
