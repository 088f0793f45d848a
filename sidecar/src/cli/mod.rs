//! The `rendition` command line: one module per command. These are the binary's own modules
//! (the library has no CLI); each parses its flags with clap and calls into the library.

pub mod mask;
pub mod optimize;
pub mod quality;
pub mod serve;
