//! The `dialgate-replay` binary: `dialgate-replay TRACE… --target ADDR …`
//! replays recorded calls against a gateway at a rate (also reached as
//! `dialgate replay …`); `dialgate-replay fixture …` writes test fixtures
//! (also `dialgate fixture …`).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use dialgate_replay::command::{self, ReplayArgs};
use dialgate_replay::fixture::{self, FixtureCommand};

#[derive(Parser, Debug)]
#[command(
    name = "dialgate-replay",
    version,
    about = "Load test: replays recorded calls (pcap, pcapng, text) against a gateway at a rate",
    after_help = "Test fixtures (keypad pcaps, text traces): dialgate-replay fixture --help"
)]
struct Replay {
    #[command(flatten)]
    args: ReplayArgs,
}

#[derive(Parser, Debug)]
#[command(
    name = "dialgate-replay fixture",
    version,
    about = "Test fixtures: what a caller sends, as files SIPp can play"
)]
struct Fixture {
    #[command(subcommand)]
    command: FixtureCommand,
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "fixture") {
        args.remove(1);
        // Usage lines then read `dialgate-replay fixture …`.
        args[0] = OsString::from("dialgate-replay fixture");
        return fixture::run(Fixture::parse_from(args).command);
    }
    let replay = Replay::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    command::run(replay.args, &runtime)
}
