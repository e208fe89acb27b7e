//! `huduma`: the registrar's, agency's and auditor's CLI. Today: offline number checks.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "huduma", version, about = "The Huduma Registry CLI")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Huduma numbers, offline.
    Number {
        #[command(subcommand)]
        command: NumberCmd,
    },
}

#[derive(Subcommand)]
enum NumberCmd {
    /// Check a number's length, digits and check digit without calling the registry.
    Check { number: String },
}

/// Exit code for input that is not valid.
const EXIT_INVALID: u8 = 3;

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Number { command: NumberCmd::Check { number } } => match huduma_sdk::check_number(&number) {
            Ok(n) => {
                println!("valid: {n}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid Huduma number {number:?}: {e}");
                ExitCode::from(EXIT_INVALID)
            }
        },
    }
}
