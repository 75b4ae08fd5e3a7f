//! The `dialgate` command line: `serve`, and provisioning commands over the
//! same service layer the REST API uses (`provision`).
//!
//! Provisioning commands take `--database URL` and `--json` after the
//! subcommand. Bad input, a missing tenant or a conflict exit 2 with one line
//! on stderr and write nothing.
//!
//! Here: the commands and their flags. Running them (provisioning through
//! the service layer, `calls` through a gateway's API) is `cli/run.rs`.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{DEFAULT_DATABASE, DEFAULT_SECRET_FILE, ServeOptions};

mod run;

pub use run::{run_calls, run_provisioning};

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

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Database URL (sqlite:// or postgres://; or DIALGATE_DATABASE)
    #[arg(long, env = "DIALGATE_DATABASE", hide_env_values = true, default_value = DEFAULT_DATABASE)]
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
