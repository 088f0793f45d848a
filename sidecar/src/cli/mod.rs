//! The `rendition` command line: one module per command. These are the binary's own modules
//! (the library has no CLI); each parses its flags with clap and calls into the library.
//!
//! Exit codes, for every command: 0 done, 1 a failure at run time (the message says what),
//! 2 a usage or configuration error (the message names the flag or key). `optimize` also
//! exits 1 when any input was refused.

pub mod check_config;
pub mod inputs;
pub mod mask;
pub mod optimize;
pub mod quality;
pub mod remote;
pub mod serve;
