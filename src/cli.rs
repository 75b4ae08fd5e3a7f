//! The `dialgate` command line: `serve`, and provisioning commands over the
//! same service layer the REST API will use (`provision`).
//!
//! Provisioning commands take `--database URL` and `--json` after the
//! subcommand. Bad input, a missing tenant or a conflict exit 2 with one line
//! on stderr and write nothing.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{DEFAULT_DATABASE, ServeOptions};
use crate::provision::{ProvisionError, Provisioner};
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
        options: ServeOptions,
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
    /// Test fixtures: what a caller sends, as files SIPp can play.
    #[command(subcommand)]
    Fixture(FixtureCommand),
}

#[derive(Subcommand, Debug)]
pub enum FixtureCommand {
    /// A pcap of RTP keying CODE as RFC 4733 telephone-events between G.711 silence.
    KeypadPcap {
        /// Keys to press, e.g. 123456789#
        #[arg(long)]
        code: String,
        /// Output file
        #[arg(long)]
        out: std::path::PathBuf,
        /// telephone-event payload type
        #[arg(long, default_value_t = 101)]
        event_payload_type: u8,
        /// How long each key is held, e.g. 100ms
        #[arg(long, default_value = "100ms")]
        press: String,
    },
}

/// Writes a fixture file.
pub fn run_fixture(command: FixtureCommand) -> ExitCode {
    let FixtureCommand::KeypadPcap {
        code,
        out,
        event_payload_type,
        press,
    } = command;
    let press = match crate::config::parse_duration(&press) {
        Ok(p) if !p.is_zero() => p,
        _ => {
            eprintln!("error: invalid press: use a duration such as 100ms");
            return ExitCode::from(2);
        }
    };
    let keying = crate::replay::synth::Keying {
        event_payload_type,
        press,
        ..Default::default()
    };
    let packets = match crate::replay::synth::keyed_code(&code, &keying) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: invalid code: {e}");
            return ExitCode::from(2);
        }
    };
    let file = match std::fs::File::create(&out) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("error: cannot create {}: {e}", out.display());
            return ExitCode::from(1);
        }
    };
    let src = "127.0.0.1:40000".parse().expect("literal address");
    let dst = "127.0.0.1:20000".parse().expect("literal address");
    match crate::replay::pcap::write_udp(file, src, dst, 1_700_000_000, &packets) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Database URL (sqlite:// or postgres://)
    #[arg(long, default_value = DEFAULT_DATABASE)]
    pub database: String,
    /// One JSON object or array on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        name: String,
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
        #[command(flatten)]
        common: Common,
    },
    /// List rooms with their access codes.
    List {
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
        Command::Serve { .. } | Command::Fixture(_) => return ExitCode::from(2),
        Command::Tenant(TenantCommand::Add { common, .. })
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
    let p = Provisioner::new(store);
    let json = common.json;
    let result = match command {
        Command::Serve { .. } | Command::Fixture(_) => return ExitCode::from(2),
        Command::Tenant(TenantCommand::Add { name, .. }) => p
            .add_tenant(&name)
            .await
            .map(|t| print(json, &t, |t| format!("tenant {} {}\n", t.id, t.name))),
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
            ..
        }) => p
            .add_room(&tenant, &name, access_code.as_deref())
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
