//! `znippy-uring man`: the manual page in roff (clap_mangen), the top-level page
//! followed by each command's options.

use anyhow::{Context, Result};
use std::io::Write;

pub fn run() -> Result<()> {
    let cmd = <super::Cli as clap::CommandFactory>::command();
    let mut w = std::io::stdout().lock();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut w)
        .context("writing the manual page")?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let about = (sub.get_long_about().or(sub.get_about()))
            .map(|a| a.to_string().replace("\n\n", "\n.PP\n"))
            .unwrap_or_default();
        writeln!(
            w,
            ".SH \"{} COMMAND\"\n{about}",
            sub.get_name().to_uppercase()
        )?;
        clap_mangen::Man::new(sub.clone())
            .render_options_section(&mut w)
            .context("writing the manual page")?;
    }
    Ok(())
}
