//! The znippy-uring command line: a thin layer over the library. Each command is a
//! module of [`cli`]; this file parses, sets up logging and signals, dispatches, and
//! prints the error that ends a failed command.
//!
//! Exit status: 0 success; 1 failure (the one-line message names the file and the
//! problem; for `verify`, damage was found); 2 invalid command line; 3 `pack` wrote
//! the archive without entries it could not read (each named in a warning).

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix filters, stop quietly when the reader of our output goes away
    // (`znippy-uring cat ... | head`); Rust ignores SIGPIPE by default.
    // SAFETY: restoring a default signal disposition at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = cli::Cli::parse();
    let level = match cli.global.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let fuser_level = if cli.global.verbose >= 2 {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Error
    };
    env_logger::Builder::new()
        .filter_level(level)
        // fuser warns of every request a read-only file system leaves to the kernel's
        // defaults (ioctl, lseek, locks); those are answered, not errors.
        .filter_module("fuser", fuser_level)
        .format_timestamp(None)
        .format_target(false)
        .init();
    znippy_uring::remove_temporaries_on_signal();
    let out = cli.global.reporting();
    match cli::run(cli.command, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cli::Incomplete>() => {
            eprintln!("znippy-uring: warning: {}", message(&e));
            match e.downcast::<cli::Incomplete>() {
                Ok(incomplete) => ExitCode::from(incomplete.status),
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) if e.is::<cli::Usage>() => {
            eprintln!("znippy-uring: error: {}", message(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("znippy-uring: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. The library's errors already show their
/// cause, so a text that ends the message so far is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !msg.ends_with(&cause) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&cause);
        }
    }
    msg
}
