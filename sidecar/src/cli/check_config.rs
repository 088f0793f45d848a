//! `rendition check-config [FILE] [serve flags]`: resolves the configuration exactly as `serve`
//! would (defaults, the file, `RENDITION_*` variables, flags), validates it and prints the
//! effective configuration as TOML, without opening the store or binding the port.
//!
//! Exit codes: 0 valid (warnings on stderr), 2 invalid (the message names the key).

use super::serve::ServeArgs;
use clap::Args;
use rendition_sidecar::config::Exposure;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    /// The TOML file to check (the same as --config FILE).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
}

pub fn run(args: &CheckConfigArgs) -> ExitCode {
    let mut config = match args.serve.config_from(args.file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rendition check-config: {e}");
            return ExitCode::from(2);
        }
    };
    let workers = config.workers();
    if let Some(token) = &mut config.admin_token {
        // Never print a secret; its length is what validation checked.
        *token = format!("<redacted: {} characters>", token.len());
    }
    let text = match toml::to_string(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rendition check-config: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("# rendition check-config: valid. The effective configuration: defaults, then the");
    println!(
        "# file, then RENDITION_* variables, then flags. queue.workers resolves to {workers} here."
    );
    print!("{text}");
    match config.exposure() {
        Some(Exposure::Open(why)) => eprintln!("rendition check-config: warning: {why}"),
        Some(Exposure::Token(why)) => eprintln!("rendition check-config: note: {why}"),
        None => {}
    }
    ExitCode::SUCCESS
}
