//! `rendition`: the sidecar service and its command-line tools.

mod mask_cmd;
mod optimize_cmd;
mod quality_cmd;
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
    /// Training data for the quality model: quality sweeps of real images (make corpus/train).
    #[command(hide = true)]
    Label(quality_cmd::LabelArgs),
    /// Evaluate the compiled quality model on the held-out labels (make eval).
    #[command(hide = true)]
    Eval(quality_cmd::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mask(args) => mask_cmd::run(&args),
        Command::Optimize(args) => optimize_cmd::run(&args),
        Command::Serve(args) => serve_cmd::run(&args),
        Command::Label(args) => quality_cmd::label(&args),
        Command::Eval(args) => quality_cmd::eval(&args),
    }
}
