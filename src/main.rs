//! The `dialgate` binary: parses the command line and hands over.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;
use dialgate::cli::{Cli, Command};
use dialgate::config::ServeOptions;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The load tool is its own binary: no runtime here for it.
    let cli = match cli.command {
        Command::Replay { args } => return dialgate::cli::run_load_tool(None, args),
        Command::Fixture { args } => return dialgate::cli::run_load_tool(Some("fixture"), args),
        command => Cli { command },
    };
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
    match cli.command {
        Command::Serve { config, options } => {
            let file = match config.as_deref().map(ServeOptions::from_file).transpose() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let settings = match options.over(file).resolve() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            dialgate::gateway::init_logging(settings.json_logs);
            match runtime.block_on(dialgate::gateway::serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Calls { api, token, json } => dialgate::cli::run_calls(&api, &token, json),
        Command::Openapi => match dialgate::api::openapi().to_pretty_json() {
            Ok(doc) => {
                println!("{doc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        other => runtime.block_on(dialgate::cli::run_provisioning(other)),
    }
}
