//! `rendition mask -H 'Accept: ...' -H 'User-Agent: ...'`: answers "which variant does this
//! client get, and why" with the same code the filter runs.

use clap::Args;
use rendition_shared::{
    ClientProfile, DensityReason, ImageFormat, Selection, SlotSet, ViewportReason,
};
use std::process::ExitCode;

#[derive(Args)]
pub struct MaskArgs {
    /// A request header, `Name: value` (repeatable, as in curl).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Print only the mask in hex.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: &MaskArgs) -> ExitCode {
    let mut pairs = Vec::with_capacity(args.headers.len());
    for h in &args.headers {
        match h.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                pairs.push((name.trim().to_owned(), value.trim().to_owned()))
            }
            _ => {
                eprintln!("rendition mask: header {h:?} is not of the form 'Name: value'");
                return ExitCode::from(2);
            }
        }
    }
    let profile =
        ClientProfile::from_headers(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    if args.quiet {
        println!("{:x}", profile.mask);
    } else {
        print!("{}", explain(&profile));
    }
    ExitCode::SUCCESS
}

/// The human explanation printed by `rendition mask`.
pub fn explain(p: &ClientProfile) -> String {
    let m = p.mask;
    let accepted: Vec<&str> = ImageFormat::ALL
        .into_iter()
        .filter(|f| p.accepts.contains(*f))
        .map(ImageFormat::name)
        .collect();
    let viewport_why = match p.viewport_reason {
        ViewportReason::WidthHint => "viewport-width client hint",
        ViewportReason::MobileHint => "Sec-CH-UA-Mobile: ?1",
        ViewportReason::UserAgentTablet => "tablet marker in User-Agent",
        ViewportReason::UserAgentMobile => "mobile marker in User-Agent",
        ViewportReason::MobileHintOverride => {
            "mobile User-Agent overridden by Sec-CH-UA-Mobile: ?0"
        }
        ViewportReason::Default => "no mobile or tablet signal",
    };
    let density_why = match p.density_reason {
        DensityReason::DprHint => "DPR client hint",
        DensityReason::UserAgentApple => "iPhone/iPad/iPod User-Agent (all Retina)",
        DensityReason::Default => "no DPR hint",
    };
    let chain = fallback_chain(p);
    let used: Vec<&str> = p.used.names().collect();
    format!(
        "mask      {:x}\n\
         format    {:<9} (bits 0-1)  accepted: {}\n\
         viewport  {:<9} (bits 2-3)  {}\n\
         density   {:<9} (bit 4)     {}\n\
         save-data {:<9} (bit 5)\n\
         encoding  {:<9} (bits 6-7)  (images do not vary on it)\n\
         slot      {:x}      the stored variant this client wants\n\
         fallback  {}\n\
         vary on   {}\n",
        m,
        m.format().name(),
        accepted.join(", "),
        m.viewport().name(),
        viewport_why,
        m.density().name(),
        density_why,
        if m.save_data() { "on" } else { "off" },
        m.transfer().name(),
        m.slot(),
        chain.join(" -> "),
        if used.is_empty() {
            "-".to_owned()
        } else {
            used.join(", ")
        },
    )
}

/// The order in which stored slots would be tried for this client, found by asking the real
/// selector with one slot removed at a time (so the CLI cannot drift from the filter).
fn fallback_chain(p: &ClientProfile) -> Vec<String> {
    let mut stored = SlotSet::ALL;
    let mut chain = Vec::new();
    while let Selection::Variant { slot, step } = rendition_shared::select(stored, p) {
        chain.push(format!("{:x} {}", slot, step.name()));
        stored.remove(slot);
    }
    chain.push("origin".to_owned());
    chain
}
