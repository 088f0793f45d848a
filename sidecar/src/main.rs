//! `rendition`: the sidecar service and its command-line tools.

mod mask_cmd;
mod optimize_cmd;
mod serve_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rendition",
    version,
    about = "Self-hosted, in-path image optimizer for Envoy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show which capability mask a client's request headers give, and why.
    Mask(mask_cmd::MaskArgs),
    /// Run the variant pipeline on image files and write every variant and a JSON report.
    Optimize(optimize_cmd::OptimizeArgs),
    /// Run the sidecar service (generate, store and serve variants).
    Serve(Box<serve_cmd::ServeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mask(args) => mask_cmd::run(&args),
        Command::Optimize(args) => optimize_cmd::run(&args),
        Command::Serve(args) => serve_cmd::run(&args),
    }
}
