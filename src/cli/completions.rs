//! `znippy-uring completions SHELL`: a shell completion script (clap_complete).

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<()> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut cmd, "znippy-uring", &mut std::io::stdout());
    Ok(())
}
