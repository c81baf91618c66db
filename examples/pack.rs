//! Packs a directory and prints what the pack did.
//!
//! `cargo run --release --example pack -- DIR OUT.znippy`

use znippy_uring::{PackOptions, pack};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: pack DIR OUT.znippy".into());
    };
    let opts = PackOptions {
        level: 3,
        exclude: vec!["*.tmp".into()],
        ..PackOptions::default()
    };
    let report = pack(dir.as_ref(), out.as_ref(), &opts)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "{} files, {} bytes -> {} bytes in {} chunks [{}]",
        report.files, report.bytes_in, report.archive_len, report.chunks, report.backend
    );
    Ok(())
}
