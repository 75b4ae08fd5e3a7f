//! The `dialgate` command line: `serve`, and provisioning commands over the
//! same service layer the REST API uses (`provision`).
//!
//! Provisioning commands take `--database URL` and `--json` after the
//! subcommand. Bad input, a missing tenant or a conflict exit 2 with one line
//! on stderr and write nothing.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::access::secret::Secret;
use crate::config::{DEFAULT_DATABASE, DEFAULT_SECRET_FILE, ServeOptions};
use crate::provision::{
    MeetingView, ProvisionError, Provisioner, Schedule, TenantSettings, summarise,
};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(name = "dialgate", version, about = "Telephony dial-in gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// TOML file with the same keys as the flags (flags win)
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        options: Box<ServeOptions>,
    },
    /// Tenants (accounts).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Dial-in numbers.
    #[command(subcommand)]
    Number(NumberCommand),
    /// Conference rooms.
    #[command(subcommand)]
    Room(RoomCommand),
    /// Scheduled meetings with one-time codes.
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Meeting invitees.
    #[command(subcommand)]
    Invitee(InviteeCommand),
    /// Bearer tokens for the REST API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Live calls of a running gateway, read through its REST API.
    Calls {
        /// The gateway's API address
        #[arg(long, default_value = crate::config::DEFAULT_API_LISTEN)]
        api: String,
        /// Bearer token (or DIALGATE_TOKEN)
        #[arg(long, env = "DIALGATE_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long)]
        json: bool,
    },
    /// The attempt log (never any code): rows, or failure counts with --summary.
    Attempts {
        /// Only attempts newer than this, e.g. 1h
        #[arg(long)]
        since: Option<String>,
        /// Only calls to this number
        #[arg(long)]
        number: Option<String>,
        /// Only attempts that named this room (id or name)
        #[arg(long)]
        room: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Failure counts per room and per number instead of rows
        #[arg(long)]
        summary: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Load test: replays recorded calls (pcap, pcapng, text) against a gateway at a rate
    /// (the `dialgate-replay` binary beside this one; `dialgate replay --help` for its flags).
    #[command(disable_help_flag = true)]
    Replay {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Test fixtures: what a caller sends, as files SIPp can play (`dialgate-replay fixture`).
    #[command(disable_help_flag = true)]
    Fixture {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Prints the REST API's OpenAPI 3 document (as served at /v1/openapi.json).
    Openapi,
}

/// The load tool's binary, built beside this one (`cargo build` builds both).
pub const REPLAY_BIN: &str = "dialgate-replay";

/// `dialgate replay …` and `dialgate fixture …` run the load tool, which is
/// a crate of its own (`replay/`) so the server links none of it: this
/// replaces the process with `dialgate-replay` from the same directory,
/// with the same arguments (`fixture` kept in front of a fixture's).
pub fn run_load_tool(prefix: Option<&str>, args: Vec<std::ffi::OsString>) -> ExitCode {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(REPLAY_BIN)));
    let Some(bin) = bin.filter(|b| b.is_file()) else {
        eprintln!(
            "error: {REPLAY_BIN} is not beside this binary: build it with `cargo build --release -p {REPLAY_BIN}` (or run it as `cargo run --release -p {REPLAY_BIN} -- …`)"
        );
        return ExitCode::from(2);
    };
    let mut command = std::process::Command::new(&bin);
    command.args(prefix).args(args);
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    eprintln!("error: cannot run {}: {error}", bin.display());
    ExitCode::from(1)
}

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

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Database URL (sqlite:// or postgres://)
    #[arg(long, default_value = DEFAULT_DATABASE)]
    pub database: String,
    /// One JSON object or array on stdout
    #[arg(long)]
    pub json: bool,
    /// Server key for hashing security codes (created when absent)
    #[arg(long, default_value = DEFAULT_SECRET_FILE)]
    pub secret_file: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Change a tenant's meeting settings (effective for the next call).
    Set {
        name: String,
        /// Scheduled meetings get a one-time code unless told otherwise
        #[arg(long)]
        one_time_default: Option<bool>,
        /// One-time codes admit from this long before the start, e.g. 15m
        #[arg(long)]
        early_join: Option<String>,
        /// … and until this long after the end, e.g. 5m
        #[arg(long)]
        grace: Option<String>,
        /// Digits in new one-time codes (6-12)
        #[arg(long)]
        code_length: Option<usize>,
        /// Security code one-time meetings ask for by default ("" clears it)
        #[arg(long)]
        default_security_code: Option<String>,
        /// URL personal codes are POSTed to as JSON ("" clears it)
        #[arg(long)]
        invite_webhook: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum MeetingCommand {
    /// Schedule a meeting on a room.
    Schedule {
        /// Room id or name
        #[arg(long)]
        room: String,
        /// Tenant, when several have a room of this name
        #[arg(long)]
        tenant: Option<String>,
        /// Start, RFC 3339 with any offset
        #[arg(long)]
        start: String,
        /// Length, e.g. 45m or 1h30m
        #[arg(long, conflicts_with = "end")]
        duration: Option<String>,
        /// End, RFC 3339
        #[arg(long)]
        end: Option<String>,
        /// Give the meeting a one-time access code
        #[arg(long, conflicts_with = "no_one_time")]
        one_time: bool,
        /// Use the room's regular code instead
        #[arg(long)]
        no_one_time: bool,
        /// Asked for after the one-time code (needs a one-time code)
        #[arg(long)]
        security_code: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List meetings (of one room).
    List {
        #[arg(long)]
        room: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a meeting: its one-time code stops working at once.
    Cancel {
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Invite a person: prints their personal single-use code (shown once).
    Invite {
        #[arg(long)]
        meeting: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; it is printed once ({"token": …} with --json).
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a token by id.
    Revoke {
        id: i64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum InviteeCommand {
    /// Revoke an invitee: their personal code fails at once.
    Revoke {
        id: i64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum NumberCommand {
    /// Provision a dial-in number (E.164) for a tenant.
    Add {
        number: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "en")]
        language: String,
        #[command(flatten)]
        common: Common,
    },
    /// List dial-in numbers.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoomCommand {
    /// Add a room; without --access-code a unique 9-digit code is generated.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        access_code: Option<String>,
        /// A standing security code asked for after the access code
        #[arg(long)]
        security_code: Option<String>,
        /// A host code, keyed in place of the access code by hosts
        #[arg(long)]
        host_code: Option<String>,
        /// Participants wait, hearing hold music, until a host joins
        #[arg(long)]
        wait_for_host: bool,
        /// Participants wait until admitted through the API
        #[arg(long)]
        host_admits: bool,
        /// Hang everyone up when the last host leaves
        #[arg(long)]
        end_with_host: bool,
        /// At most this many callers in the room (waiting ones included)
        #[arg(long)]
        max_members: Option<i64>,
        #[command(flatten)]
        common: Common,
    },
    /// List rooms with their access codes.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Give a room a new regular access code (random unless given).
    RotateCode {
        #[arg(long)]
        room: String,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        access_code: Option<String>,
        #[command(flatten)]
        common: Common,
    },
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
