//! Running the command line's commands: provisioning over the service
//! layer (`provision`) on the store the command names, and `calls` over a
//! running gateway's REST API. One line on stderr and exit 2 for bad
//! input, a missing tenant or a conflict.

use std::process::ExitCode;

use serde::Serialize;

use super::{
    Command, InviteeCommand, MeetingCommand, NumberCommand, RoomCommand, TenantCommand,
    TokenCommand,
};
use crate::access::secret::Secret;
use crate::provision::{
    MeetingView, ProvisionError, Provisioner, Schedule, TenantSettings, summarise,
};
use crate::store::Store;

/// Lists live calls through the API of a running gateway.
pub fn run_calls(api: &str, token: &str, json: bool) -> ExitCode {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{api}/v1/calls?limit=1000");
    let mut response = match agent
        .get(&url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach the gateway API at {api}: {e}");
            return ExitCode::from(1);
        }
    };
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        eprintln!("error: the API answered {status}: {}", body.trim());
        return ExitCode::from(if status == 401 { 2 } else { 1 });
    }
    if json {
        println!("{}", body.trim());
        return ExitCode::SUCCESS;
    }
    let calls: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    for c in calls {
        println!(
            "{}\t{}\t{}\t{}\troom={}\t{}\tsince {}",
            c["id"],
            c["number"].as_str().unwrap_or(""),
            c["caller_id"].as_str().unwrap_or(""),
            c["state"].as_str().unwrap_or(""),
            c["room_id"],
            c["codec"].as_str().unwrap_or(""),
            c["since"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        match serde_json::to_string(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        print!("{}", human(value));
    }
}

fn meeting_line(m: &MeetingView) -> String {
    format!(
        "meeting {} room={} {}..{} active_from={} one_time_code={}{}\n",
        m.id,
        m.room,
        m.starts_at,
        m.ends_at,
        m.active_from,
        m.one_time_code.as_deref().unwrap_or("-"),
        if m.cancelled { " cancelled" } else { "" }
    )
}

fn fail(e: ProvisionError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        ProvisionError::Store(_) => ExitCode::from(1),
        _ => ExitCode::from(2),
    }
}

/// Runs a provisioning command.
pub async fn run_provisioning(command: Command) -> ExitCode {
    let common = match &command {
        Command::Serve { .. }
        | Command::Fixture { .. }
        | Command::Replay { .. }
        | Command::Calls { .. }
        | Command::Openapi => {
            return ExitCode::from(2);
        }
        Command::Tenant(TenantCommand::Add { common, .. } | TenantCommand::Set { common, .. })
        | Command::Meeting(
            MeetingCommand::Schedule { common, .. }
            | MeetingCommand::List { common, .. }
            | MeetingCommand::Cancel { common, .. }
            | MeetingCommand::Invite { common, .. },
        )
        | Command::Invitee(InviteeCommand::Revoke { common, .. })
        | Command::Attempts { common, .. }
        | Command::Token(
            TokenCommand::Create { common, .. } | TokenCommand::Revoke { common, .. },
        )
        | Command::Room(RoomCommand::RotateCode { common, .. })
        | Command::Number(NumberCommand::Add { common, .. } | NumberCommand::List { common })
        | Command::Room(RoomCommand::Add { common, .. } | RoomCommand::List { common }) => {
            common.clone()
        }
    };
    let store = match Store::open(&common.database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let secret = match Secret::load_or_create(&common.secret_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let p = Provisioner::new(store).with_secret(secret);
    let json = common.json;
    let result = match command {
        Command::Serve { .. }
        | Command::Fixture { .. }
        | Command::Replay { .. }
        | Command::Calls { .. }
        | Command::Openapi => {
            return ExitCode::from(2);
        }
        Command::Tenant(TenantCommand::Add { name, .. }) => p
            .add_tenant(&name)
            .await
            .map(|t| print(json, &t, |t| format!("tenant {} {}\n", t.id, t.name))),
        Command::Tenant(TenantCommand::Set {
            name,
            one_time_default,
            early_join,
            grace,
            code_length,
            default_security_code,
            invite_webhook,
            ..
        }) => {
            let settings = TenantSettings {
                one_time_default,
                early_join: early_join.as_deref(),
                grace: grace.as_deref(),
                code_length,
                default_security_code: default_security_code.as_deref(),
                invite_webhook: invite_webhook.as_deref(),
            };
            p.set_tenant(&name, &settings).await.map(|t| {
                print(json, &t, |t| {
                    format!(
                        "tenant {} {} one_time_default={} early_join={}s grace={}s code_length={}\n",
                        t.id,
                        t.name,
                        t.one_time_default != 0,
                        t.early_join_secs,
                        t.grace_secs,
                        t.code_length
                    )
                })
            })
        }
        Command::Meeting(MeetingCommand::Schedule {
            room,
            tenant,
            start,
            duration,
            end,
            one_time,
            no_one_time,
            security_code,
            ..
        }) => {
            let req = Schedule {
                security_code: security_code.as_deref(),
                room: &room,
                tenant: tenant.as_deref(),
                start: &start,
                duration: duration.as_deref(),
                end: end.as_deref(),
                one_time: if one_time {
                    Some(true)
                } else if no_one_time {
                    Some(false)
                } else {
                    None
                },
            };
            p.schedule_meeting(&req, chrono::Utc::now())
                .await
                .map(|m| print(json, &m, meeting_line))
        }
        Command::Meeting(MeetingCommand::List { room, tenant, .. }) => p
            .list_meetings(room.as_deref().map(|r| (r, tenant.as_deref())))
            .await
            .map(|ms| print(json, &ms, |ms| ms.iter().map(meeting_line).collect())),
        Command::Meeting(MeetingCommand::Invite {
            meeting,
            name,
            phone,
            email,
            ..
        }) => p
            .invite(
                meeting,
                &name,
                phone.as_deref(),
                email.as_deref(),
                chrono::Utc::now(),
            )
            .await
            .map(|i| {
                print(json, &i, |i| {
                    format!(
                        "invitee {} meeting={} {} personal_code={} webhook={:?}\n",
                        i.id, i.meeting_id, i.name, i.personal_code, i.webhook
                    )
                })
            }),
        Command::Attempts {
            since,
            number,
            room,
            tenant,
            summary,
            ..
        } => p
            .attempts(
                since.as_deref(),
                number.as_deref(),
                room.as_deref().map(|r| (r, tenant.as_deref())),
            )
            .await
            .map(|rows| {
                if summary {
                    print(json, &summarise(&rows), |s| {
                        let mut out = format!("attempts {} failures {}\n", s.attempts, s.failures);
                        for (room, n) in &s.failures_by_room {
                            out.push_str(&format!("room {room}: {n} failures\n"));
                        }
                        for (number, n) in &s.failures_by_number {
                            out.push_str(&format!("number {number}: {n} failures\n"));
                        }
                        out
                    })
                } else {
                    print(json, &rows, |rows| {
                        rows.iter()
                            .map(|r| {
                                format!(
                                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                                    r.at, r.number, r.caller_id, r.source, r.stage, r.outcome
                                )
                            })
                            .collect()
                    })
                }
            }),
        Command::Room(RoomCommand::RotateCode {
            room,
            tenant,
            access_code,
            ..
        }) => p
            .rotate_room_code(&room, tenant.as_deref(), access_code.as_deref())
            .await
            .map(|r| {
                print(json, &r, |r| {
                    format!("room {} {} access_code={}\n", r.id, r.name, r.access_code)
                })
            }),
        Command::Token(TokenCommand::Create { name, .. }) => {
            p.create_token(&name, chrono::Utc::now()).await.map(|t| {
                print(json, &t, |t| {
                    format!("token {} {}: {}\n", t.id, t.name, t.token)
                })
            })
        }
        Command::Token(TokenCommand::Revoke { id, .. }) => {
            p.revoke_token(id, chrono::Utc::now()).await.map(|()| {
                print(
                    json,
                    &serde_json::json!({"id": id, "revoked": true}),
                    |_| format!("token {id} revoked\n"),
                )
            })
        }
        Command::Invitee(InviteeCommand::Revoke { id, .. }) => p
            .revoke_invitee(id, chrono::Utc::now())
            .await
            .map(|i| print(json, &i, |i| format!("invitee {} revoked\n", i.id))),
        Command::Meeting(MeetingCommand::Cancel { id, .. }) => p
            .cancel_meeting(id, chrono::Utc::now())
            .await
            .map(|m| print(json, &m, meeting_line)),
        Command::Number(NumberCommand::Add {
            number,
            tenant,
            language,
            ..
        }) => p.add_number(&number, &tenant, &language).await.map(|n| {
            print(json, &n, |n| {
                format!(
                    "number {} {} tenant={} language={}\n",
                    n.id, n.number, n.tenant, n.language
                )
            })
        }),
        Command::Number(NumberCommand::List { .. }) => p.list_numbers().await.map(|ns| {
            print(json, &ns, |ns| {
                ns.iter()
                    .map(|n| format!("{}\t{}\t{}\t{}\n", n.id, n.number, n.tenant, n.language))
                    .collect()
            })
        }),
        Command::Room(RoomCommand::Add {
            tenant,
            name,
            access_code,
            security_code,
            host_code,
            wait_for_host,
            host_admits,
            end_with_host,
            max_members,
            ..
        }) => p
            .add_room(
                &tenant,
                &name,
                access_code.as_deref(),
                security_code.as_deref(),
                &crate::provision::RoomSettings {
                    host_code: host_code.as_deref(),
                    wait_for_host: Some(wait_for_host),
                    host_admits: Some(host_admits),
                    end_with_host: Some(end_with_host),
                    max_members,
                },
            )
            .await
            .map(|r| {
                print(json, &r, |r| {
                    format!(
                        "room {} {} tenant={} access_code={}\n",
                        r.id, r.name, r.tenant, r.access_code
                    )
                })
            }),
        Command::Room(RoomCommand::List { .. }) => p.list_rooms().await.map(|rs| {
            print(json, &rs, |rs| {
                rs.iter()
                    .map(|r| format!("{}\t{}\t{}\t{}\n", r.id, r.tenant, r.name, r.access_code))
                    .collect()
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
