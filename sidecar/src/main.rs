//! `rendition`: the sidecar service and its command-line tools.

mod cli;

use clap::{Parser, Subcommand};
use cli::{mask, optimize, quality, serve};
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
    Mask(mask::MaskArgs),
    /// Run the variant pipeline on image files and write every variant and a JSON report.
    Optimize(optimize::OptimizeArgs),
    /// Run the sidecar service (generate, store and serve variants).
    Serve(Box<serve::ServeArgs>),
    /// Training data for the quality model: quality sweeps of real images (make corpus/train).
    #[command(hide = true)]
    Label(quality::LabelArgs),
    /// Evaluate the compiled quality model on the held-out labels (make eval).
    #[command(hide = true)]
    Eval(quality::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mask(args) => mask::run(&args),
        Command::Optimize(args) => optimize::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Label(args) => quality::label(&args),
        Command::Eval(args) => quality::eval(&args),
    }
}
