//! `rendition`: the sidecar service and its command-line tools.

mod cli;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use cli::{check_config, mask, optimize, quality, remote, serve};
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
    /// Run the sidecar service (generate, store and serve variants).
    Serve(Box<serve::ServeArgs>),
    /// Validate a configuration and print the effective one, as `serve` would run it.
    CheckConfig(Box<check_config::CheckConfigArgs>),
    /// Show a running sidecar's counters, and the bytes its variants saved.
    Stats(remote::StatsArgs),
    /// Purge sources from a running sidecar (regenerated from the origin on the next request).
    Purge(remote::PurgeArgs),
    /// Run the variant pipeline on image files and write every variant and a JSON report.
    Optimize(optimize::OptimizeArgs),
    /// Show which capability mask a client's request headers give, and why.
    Mask(mask::MaskArgs),
    /// Training data for the quality model: quality sweeps of real images (make corpus/train).
    #[command(hide = true)]
    Label(quality::LabelArgs),
    /// Evaluate the compiled quality model on the held-out labels (make eval).
    #[command(hide = true)]
    Eval(quality::EvalArgs),
}

fn main() -> ExitCode {
    // `serve` and `check-config` show each flag's default, read from the code's defaults.
    let command = Cli::command()
        .mut_subcommand("serve", serve::with_defaults_in_help)
        .mut_subcommand("check-config", serve::with_defaults_in_help);
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::CheckConfig(args) => check_config::run(&args),
        Command::Stats(args) => remote::stats(&args),
        Command::Purge(args) => remote::purge(&args),
        Command::Optimize(args) => optimize::run(&args),
        Command::Mask(args) => mask::run(&args),
        Command::Label(args) => quality::label(&args),
        Command::Eval(args) => quality::eval(&args),
    }
}
